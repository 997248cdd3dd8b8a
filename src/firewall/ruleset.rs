//! nftables rulesets as data: tables holding sets, maps and chains.
//!
//! `up` loads a namespace's ruleset whole ([`Ruleset::to_nft`]). A change to
//! a running lab loads only the difference ([`Ruleset::update_from`]): one
//! `nft -f` transaction (atomic: no packet ever meets half old, half new
//! rules) that touches only the chains and sets that changed. Its cost
//! follows the size of the change, not the lab's, and every untouched chain
//! keeps its counters (what `probe`, `trace` and flow logs read).

use super::comment;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    Inet,
    Bridge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub family: Family,
    pub name: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Set(Set),
    Chain(Chain),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    Set,
    Map,
}

/// A named set or map: its declaration (kind, type, comment) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub kind: SetKind,
    pub name: String,
    /// `ipv4_addr`, `ifname . ipv4_addr`; a map's `key : value`.
    pub datatype: &'static str,
    pub comment: Option<String>,
    /// As nft reads them: `10.0.0.4`, `"e0-x" . 10.0.0.4`, `1.2.3.4 : 10.0.0.4`.
    pub elements: Vec<String>,
}

/// A chain: its declaration (the hook, for a base chain) and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub hook: Option<Hook>,
    pub rules: Vec<String>,
}

/// `type filter hook forward priority filter; policy accept;`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    pub kind: &'static str,
    pub hook: &'static str,
    pub priority: &'static str,
    pub policy: &'static str,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Inet => "inet",
            Family::Bridge => "bridge",
        })
    }
}

impl fmt::Display for SetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SetKind::Set => "set",
            SetKind::Map => "map",
        })
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type {} hook {} priority {}; policy {};",
            self.kind, self.hook, self.priority, self.policy
        )
    }
}

impl Set {
    /// `set [FAMILY TABLE] name { type …; comment "…"; elements = { … }; }`
    /// on one line: inside a table block, or as a command's argument.
    fn render(&self, table: Option<&str>) -> String {
        let mut out = format!("{} ", self.kind);
        if let Some(t) = table {
            write!(out, "{t} ").unwrap();
        }
        write!(out, "{} {{ type {};", self.name, self.datatype).unwrap();
        if let Some(c) = &self.comment {
            write!(out, " {};", comment(c)).unwrap();
        }
        if !self.elements.is_empty() {
            write!(out, " elements = {{ {} }};", self.elements.join(", ")).unwrap();
        }
        out + " }"
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "table {} {} {{", self.family, self.name)?;
        for item in &self.items {
            match item {
                Item::Set(s) => writeln!(f, "    {}", s.render(None))?,
                Item::Chain(c) => {
                    writeln!(f, "    chain {} {{", c.name)?;
                    if let Some(h) = &c.hook {
                        writeln!(f, "        {h}")?;
                    }
                    for r in &c.rules {
                        writeln!(f, "        {r}")?;
                    }
                    writeln!(f, "    }}")?;
                }
            }
        }
        writeln!(f, "}}")
    }
}

impl Table {
    pub fn new(family: Family, name: &str) -> Self {
        Table {
            family,
            name: name.into(),
            items: Vec::new(),
        }
    }

    pub fn set<T: fmt::Display>(
        &mut self,
        kind: SetKind,
        name: &str,
        datatype: &'static str,
        comment: Option<&str>,
        elements: impl IntoIterator<Item = T>,
    ) {
        self.items.push(Item::Set(Set {
            kind,
            name: name.into(),
            datatype,
            comment: comment.map(str::to_string),
            elements: elements.into_iter().map(|e| e.to_string()).collect(),
        }));
    }

    /// Adds an empty chain and returns it to add rules to.
    pub fn chain(&mut self, name: &str, hook: Option<Hook>) -> &mut Chain {
        self.items.push(Item::Chain(Chain {
            name: name.into(),
            hook,
            rules: Vec::new(),
        }));
        match self.items.last_mut() {
            Some(Item::Chain(c)) => c,
            _ => unreachable!("just pushed a chain"),
        }
    }

    fn sets(&self) -> BTreeMap<&str, &Set> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Set(s) => Some((s.name.as_str(), s)),
                Item::Chain(_) => None,
            })
            .collect()
    }

    fn chains(&self) -> BTreeMap<&str, &Chain> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Chain(c) => Some((c.name.as_str(), c)),
                Item::Set(_) => None,
            })
            .collect()
    }
}

impl Chain {
    pub fn rule(&mut self, rule: impl Into<String>) -> &mut Self {
        self.rules.push(rule.into());
        self
    }
}

/// The commands of an update, by phase: whatever refers to an object goes
/// before it is deleted, and every object exists before anything refers to
/// it. nft runs the whole script as one transaction.
#[derive(Default)]
struct Script {
    delete_tables: Vec<String>,
    flush_chains: Vec<String>,
    delete_elements: Vec<String>,
    delete_chains: Vec<String>,
    delete_sets: Vec<String>,
    add_chains: Vec<String>,
    add_sets: Vec<String>,
    add_elements: Vec<String>,
    add_rules: Vec<String>,
    add_tables: Vec<String>,
}

impl Script {
    fn finish(self) -> Option<String> {
        let phases = [
            self.delete_tables,
            self.flush_chains,
            self.delete_elements,
            self.delete_chains,
            self.delete_sets,
            self.add_chains,
            self.add_sets,
            self.add_elements,
            self.add_rules,
            self.add_tables,
        ];
        let lines: Vec<String> = phases.into_iter().flatten().collect();
        if lines.is_empty() {
            None
        } else {
            Some(lines.join("\n") + "\n")
        }
    }
}

impl Ruleset {
    /// The whole ruleset as one script for a namespace vpcsim owns: it
    /// replaces whatever the namespace had.
    pub fn to_nft(&self) -> String {
        let mut out = String::from("flush ruleset\n");
        for t in &self.tables {
            write!(out, "\n{t}").unwrap();
        }
        out
    }

    /// The smallest script that turns a namespace holding `old` into one
    /// holding `self`, as one transaction; None when they are equal. Only
    /// changed chains are flushed and refilled, sets change element by
    /// element, and an object whose declaration changed (a base chain's
    /// hook or policy, a set's type) is deleted and made again once nothing
    /// refers to it.
    pub fn update_from(&self, old: &Ruleset) -> Option<String> {
        let mut script = Script::default();
        let key = |t: &Table| (t.family, t.name.clone());
        let olds: BTreeMap<_, &Table> = old.tables.iter().map(|t| (key(t), t)).collect();
        let news: BTreeMap<_, &Table> = self.tables.iter().map(|t| (key(t), t)).collect();
        for (k, t) in &olds {
            if !news.contains_key(k) {
                script
                    .delete_tables
                    .push(format!("delete table {} {}", t.family, t.name));
            }
        }
        for t in &self.tables {
            match olds.get(&key(t)) {
                Some(o) => diff_table(o, t, &mut script),
                None => script.add_tables.push(t.to_string()),
            }
        }
        script.finish()
    }
}

fn diff_table(old: &Table, new: &Table, script: &mut Script) {
    let at = format!("{} {}", new.family, new.name);
    let (old_sets, new_sets) = (old.sets(), new.sets());
    let (old_chains, new_chains) = (old.chains(), new.chains());
    let same_set =
        |a: &Set, b: &Set| a.kind == b.kind && a.datatype == b.datatype && a.comment == b.comment;
    // Objects that stop existing as they are: what refers to them must go
    // before they are deleted.
    let gone_sets: BTreeSet<&str> = old_sets
        .iter()
        .filter(|(n, o)| !new_sets.get(*n).is_some_and(|s| same_set(o, s)))
        .map(|(n, _)| *n)
        .collect();
    let gone_chains: BTreeSet<&str> = old_chains
        .iter()
        .filter(|(n, o)| !new_chains.get(*n).is_some_and(|c| c.hook == o.hook))
        .map(|(n, _)| *n)
        .collect();
    let refers = |text: &str| refers_to(text, &gone_sets, &gone_chains);

    for (name, o) in &old_chains {
        if gone_chains.contains(name) {
            if !o.rules.is_empty() {
                script.flush_chains.push(format!("flush chain {at} {name}"));
            }
            script
                .delete_chains
                .push(format!("delete chain {at} {name}"));
        }
    }
    for (name, c) in &new_chains {
        match old_chains.get(name) {
            Some(o) if !gone_chains.contains(name) => {
                if o.rules == c.rules && !o.rules.iter().any(|r| refers(r)) {
                    continue;
                }
                if !o.rules.is_empty() {
                    script.flush_chains.push(format!("flush chain {at} {name}"));
                }
            }
            _ => script.add_chains.push(match &c.hook {
                Some(h) => format!("add chain {at} {name} {{ {h} }}"),
                None => format!("add chain {at} {name}"),
            }),
        }
        for r in &c.rules {
            script.add_rules.push(format!("add rule {at} {name} {r}"));
        }
    }

    for name in &gone_sets {
        let kind = old_sets[name].kind;
        script
            .delete_sets
            .push(format!("delete {kind} {at} {name}"));
    }
    for (name, s) in &new_sets {
        let Some(o) = old_sets.get(name).filter(|_| !gone_sets.contains(name)) else {
            script.add_sets.push(format!("add {}", s.render(Some(&at))));
            continue;
        };
        let have: BTreeSet<&str> = o.elements.iter().map(String::as_str).collect();
        let want: BTreeSet<&str> = s.elements.iter().map(String::as_str).collect();
        // A map element naming a chain that is made again is re-added too.
        let del: Vec<&str> = have
            .iter()
            .filter(|e| !want.contains(*e) || refers(e))
            .copied()
            .collect();
        let add: Vec<&str> = want
            .iter()
            .filter(|e| !have.contains(*e) || refers(e))
            .copied()
            .collect();
        if !del.is_empty() {
            script.delete_elements.push(format!(
                "delete element {at} {name} {{ {} }}",
                del.join(", ")
            ));
        }
        if !add.is_empty() {
            script
                .add_elements
                .push(format!("add element {at} {name} {{ {} }}", add.join(", ")));
        }
    }
}

/// Whether rule or element text names one of `sets` (`@name`) or jumps to
/// one of `chains` (`jump name`, `goto name`), outside quoted strings.
fn refers_to(text: &str, sets: &BTreeSet<&str>, chains: &BTreeSet<&str>) -> bool {
    if sets.is_empty() && chains.is_empty() {
        return false;
    }
    let code: String = text.split('"').step_by(2).collect::<Vec<_>>().join(" ");
    let mut prev = "";
    for word in code
        .split(|c: char| c.is_whitespace() || ",{};".contains(c))
        .filter(|w| !w.is_empty())
    {
        if word.strip_prefix('@').is_some_and(|s| sets.contains(s))
            || (matches!(prev, "jump" | "goto") && chains.contains(word))
        {
            return true;
        }
        prev = word;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORWARD: Hook = Hook {
        kind: "filter",
        hook: "forward",
        priority: "filter",
        policy: "accept",
    };

    /// A small table in the fabric's shape: a member set, a base chain
    /// jumping to a regular chain that uses the set, and a map.
    fn base() -> Ruleset {
        let mut t = Table::new(Family::Inet, "t");
        t.set(
            SetKind::Set,
            "sg0",
            "ipv4_addr",
            Some("members"),
            ["10.0.0.4", "10.0.0.5"],
        );
        t.set(
            SetKind::Map,
            "dnat",
            "ipv4_addr : ipv4_addr",
            None,
            ["198.51.100.4 : 10.0.0.4"],
        );
        t.chain("forward", Some(FORWARD))
            .rule("ct state new jump sg_in_0")
            .rule("jump nacl_in_0");
        t.chain("sg_in_0", None)
            .rule("ip saddr @sg0 tcp dport 22 counter return comment \"ssh\"")
            .rule("counter drop comment \"sg: no rule allows it\"");
        t.chain("nacl_in_0", None)
            .rule("counter drop comment \"nacl * deny\"");
        Ruleset { tables: vec![t] }
    }

    fn table(r: &mut Ruleset) -> &mut Table {
        &mut r.tables[0]
    }

    fn chain<'a>(r: &'a mut Ruleset, name: &str) -> &'a mut Chain {
        table(r)
            .items
            .iter_mut()
            .find_map(|i| match i {
                Item::Chain(c) if c.name == name => Some(c),
                _ => None,
            })
            .unwrap()
    }

    fn set<'a>(r: &'a mut Ruleset, name: &str) -> &'a mut Set {
        table(r)
            .items
            .iter_mut()
            .find_map(|i| match i {
                Item::Set(s) if s.name == name => Some(s),
                _ => None,
            })
            .unwrap()
    }

    fn lines(script: Option<String>) -> Vec<String> {
        script
            .expect("a change")
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn full_script_replaces_the_namespace_ruleset() {
        let text = base().to_nft();
        assert!(text.starts_with("flush ruleset\n\ntable inet t {\n"));
        assert!(text.contains(
            "    set sg0 { type ipv4_addr; comment \"members\"; elements = { 10.0.0.4, 10.0.0.5 }; }\n"
        ));
        assert!(text.contains("    map dnat { type ipv4_addr : ipv4_addr; elements = { 198.51.100.4 : 10.0.0.4 }; }\n"));
        assert!(text.contains("    chain forward {\n        type filter hook forward priority filter; policy accept;\n        ct state new jump sg_in_0\n"));
    }

    #[test]
    fn equal_rulesets_need_no_update_whatever_the_item_order() {
        let old = base();
        assert_eq!(old.update_from(&old), None);
        let mut shuffled = base();
        table(&mut shuffled).items.reverse();
        assert_eq!(shuffled.update_from(&old), None);
    }

    #[test]
    fn a_changed_rule_refills_only_its_chain() {
        let old = base();
        let mut new = base();
        chain(&mut new, "nacl_in_0").rules.insert(
            0,
            "tcp dport 80 counter return comment \"nacl 100 allow\"".into(),
        );
        assert_eq!(
            lines(new.update_from(&old)),
            [
                "flush chain inet t nacl_in_0",
                "add rule inet t nacl_in_0 tcp dport 80 counter return comment \"nacl 100 allow\"",
                "add rule inet t nacl_in_0 counter drop comment \"nacl * deny\"",
            ]
        );
    }

    #[test]
    fn set_and_map_elements_change_one_by_one() {
        let old = base();
        let mut new = base();
        set(&mut new, "sg0").elements = vec!["10.0.0.5".into(), "10.0.0.6".into()];
        // A map value changes: the old pair goes before the new one comes.
        set(&mut new, "dnat").elements = vec!["198.51.100.4 : 10.0.0.6".into()];
        assert_eq!(
            lines(new.update_from(&old)),
            [
                "delete element inet t dnat { 198.51.100.4 : 10.0.0.4 }",
                "delete element inet t sg0 { 10.0.0.4 }",
                "add element inet t dnat { 198.51.100.4 : 10.0.0.6 }",
                "add element inet t sg0 { 10.0.0.6 }",
            ]
        );
    }

    #[test]
    fn new_objects_exist_before_the_rules_that_use_them() {
        let old = base();
        let mut new = base();
        table(&mut new).set(SetKind::Set, "sg1", "ipv4_addr", None, ["10.0.0.9"]);
        table(&mut new)
            .chain("sg_in_1", None)
            .rule("ip saddr @sg1 counter return");
        chain(&mut new, "forward").rules[0] = "ct state new ip daddr 10.0.0.9 jump sg_in_1".into();
        assert_eq!(
            lines(new.update_from(&old)),
            [
                "flush chain inet t forward",
                "add chain inet t sg_in_1",
                "add set inet t sg1 { type ipv4_addr; elements = { 10.0.0.9 }; }",
                "add rule inet t forward ct state new ip daddr 10.0.0.9 jump sg_in_1",
                "add rule inet t forward jump nacl_in_0",
                "add rule inet t sg_in_1 ip saddr @sg1 counter return",
            ]
        );
    }

    #[test]
    fn removed_objects_go_after_what_referred_to_them() {
        let old = base();
        let mut new = base();
        let t = table(&mut new);
        t.items
            .retain(|i| !matches!(i, Item::Chain(c) if c.name == "sg_in_0"));
        t.items
            .retain(|i| !matches!(i, Item::Set(s) if s.name == "sg0"));
        chain(&mut new, "forward").rules.remove(0);
        assert_eq!(
            lines(new.update_from(&old)),
            [
                "flush chain inet t sg_in_0",
                "flush chain inet t forward",
                "delete chain inet t sg_in_0",
                "delete set inet t sg0",
                "add rule inet t forward jump nacl_in_0",
            ]
        );
    }

    #[test]
    fn a_changed_declaration_replaces_the_object_and_refills_its_users() {
        let old = base();
        let mut new = base();
        // The policy of a base chain, and the comment of a set whose users
        // did not change: the chain using it is refilled all the same.
        chain(&mut new, "forward").hook = Some(Hook {
            policy: "drop",
            ..FORWARD
        });
        set(&mut new, "sg0").comment = Some("members of sg-web".into());
        assert_eq!(
            lines(new.update_from(&old)),
            [
                "flush chain inet t forward",
                "flush chain inet t sg_in_0",
                "delete chain inet t forward",
                "delete set inet t sg0",
                "add chain inet t forward { type filter hook forward priority filter; policy drop; }",
                "add set inet t sg0 { type ipv4_addr; comment \"members of sg-web\"; elements = { 10.0.0.4, 10.0.0.5 }; }",
                "add rule inet t forward ct state new jump sg_in_0",
                "add rule inet t forward jump nacl_in_0",
                "add rule inet t sg_in_0 ip saddr @sg0 tcp dport 22 counter return comment \"ssh\"",
                "add rule inet t sg_in_0 counter drop comment \"sg: no rule allows it\"",
            ]
        );
    }

    #[test]
    fn whole_tables_come_and_go() {
        let old = base();
        let mut new = Ruleset::default();
        let mut ports = Table::new(Family::Bridge, "ports");
        ports.set(SetKind::Set, "p", "ifname", None, ["\"e0\""]);
        new.tables.push(ports);
        assert_eq!(
            new.update_from(&old).unwrap(),
            "delete table inet t\ntable bridge ports {\n    set p { type ifname; elements = { \"e0\" }; }\n}\n\n"
        );
    }

    #[test]
    fn references_are_read_outside_comments() {
        let sets = BTreeSet::from(["sg0"]);
        let chains = BTreeSet::from(["sg_in_0"]);
        assert!(refers_to("ip saddr @sg0 accept", &sets, &BTreeSet::new()));
        assert!(refers_to(
            "ip daddr vmap { 10.0.0.4 : jump sg_in_0, 10.0.0.5 : jump x }",
            &BTreeSet::new(),
            &chains
        ));
        assert!(!refers_to(
            "counter drop comment \"@sg0 jump sg_in_0\"",
            &sets,
            &chains
        ));
        assert!(!refers_to("ip saddr @sg01 accept", &sets, &chains));
    }
}
