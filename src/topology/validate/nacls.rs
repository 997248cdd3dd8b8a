//! Network ACLs: numbered stateless rules per direction, and the allow-all
//! `default` NACL when a subnet uses it without the file defining it.

use super::context::{Ctx, Names, ALL_V4};
use crate::topology::model::{self, Topology};
use crate::topology::plan::{Action, NaclEntry, NaclPlan, Protocol};
use std::collections::HashMap;

pub(super) struct Nacls<'t> {
    /// With `default` when the default NACL is implicit.
    pub(super) names: Names<'t>,
    pub(super) plans: Vec<NaclPlan>,
}

impl Ctx {
    /// NACLs: unique names and rules; an allow-all `default` NACL is added
    /// when a subnet uses it without the file defining it.
    pub(super) fn nacls<'t>(&mut self, t: &'t Topology) -> Nacls<'t> {
        let mut names = self.unique_names("NACL", "nacl", t.nacls.iter().map(|n| n.name.as_str()));
        let mut plans = Vec::new();
        for (i, n) in t.nacls.iter().enumerate() {
            let inbound = self.nacl_rules(&format!("nacl[{i}]"), &n.name, "inbound", &n.inbound);
            let outbound = self.nacl_rules(&format!("nacl[{i}]"), &n.name, "outbound", &n.outbound);
            plans.push(NaclPlan {
                name: n.name.clone(),
                inbound,
                outbound,
            });
        }
        let uses_default = t
            .subnets
            .iter()
            .any(|s| s.nacl.as_deref().is_none_or(|n| n == "default"));
        if uses_default && names.get("default").is_none() {
            let allow_all = vec![NaclEntry {
                rule: 100,
                protocol: Protocol::All,
                ports: None,
                cidr: ALL_V4,
                action: Action::Allow,
            }];
            // Hints for an unknown NACL mention the default one separately.
            names.add_implicit("default", plans.len(), false);
            plans.push(NaclPlan {
                name: "default".into(),
                inbound: allow_all.clone(),
                outbound: allow_all,
            });
        }
        Nacls { names, plans }
    }

    /// One direction of a NACL: rule numbers 1-32766, unique in the
    /// direction; protocol, ports, CIDR and action. Sorted by rule number.
    pub(super) fn nacl_rules(
        &mut self,
        nacl_path: &str,
        nacl: &str,
        dir: &str,
        rules: &[model::NaclRule],
    ) -> Vec<NaclEntry> {
        let mut seen: HashMap<i64, usize> = HashMap::new();
        let mut entries = Vec::new();
        for (k, r) in rules.iter().enumerate() {
            let p = format!("{nacl_path}.{dir}[{k}]");
            let mut ok = true;
            if !(1..=32766).contains(&r.rule) {
                self.err(
                    format!("{p}.rule"),
                    format!("rule number {} is out of range; AWS allows 1 to 32766", r.rule),
                    "number rules from 1 to 32766 (32767 is the implicit final `*` deny), e.g. 100, 110, 120",
                );
                ok = false;
            } else if let Some(&j) = seen.get(&r.rule) {
                self.err(
                    format!("{p}.rule"),
                    format!("rule number {} is used twice in NACL {nacl} {dir} (also {dir}[{j}])", r.rule),
                    "give each rule of a direction its own number (the same number may appear once inbound and once outbound)",
                );
                ok = false;
            } else {
                seen.insert(r.rule, k);
            }
            let pp = self.proto_ports(&r.protocol, r.ports.as_deref(), &p);
            let cidr = self.cidr(&r.cidr, &format!("{p}.cidr"));
            let action = match r.action.trim().to_ascii_lowercase().as_str() {
                "allow" => Some(Action::Allow),
                "deny" => Some(Action::Deny),
                _ => {
                    self.err(
                        format!("{p}.action"),
                        format!("unknown NACL action `{}`", r.action),
                        "use \"allow\" or \"deny\"",
                    );
                    None
                }
            };
            if let (true, Some((protocol, ports)), Some(cidr), Some(action)) =
                (ok, pp, cidr, action)
            {
                entries.push(NaclEntry {
                    rule: r.rule as u16,
                    protocol,
                    ports,
                    cidr,
                    action,
                });
            }
        }
        entries.sort_by_key(|e| e.rule);
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn rule_numbers_are_in_range_and_unique_per_direction() {
        let d = errors(&format!(
            r#"{NET}
[[nacl]]
name = "n"
inbound = [
  {{ rule = 100, protocol = "tcp", ports = "80", cidr = "0.0.0.0/0", action = "allow" }},
  {{ rule = 100, protocol = "tcp", ports = "443", cidr = "0.0.0.0/0", action = "allow" }},
  {{ rule = 32767, protocol = "all", cidr = "0.0.0.0/0", action = "deny" }},
  {{ rule = 200, protocol = "icmp", ports = "8", cidr = "0.0.0.0/0", action = "reject" }},
]
outbound = [{{ rule = 100, protocol = "all", cidr = "0.0.0.0/0", action = "allow" }}]
"#
        ));
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "nacl[0].inbound[1].rule",
                "nacl[0].inbound[2].rule",
                "nacl[0].inbound[3].ports",
                "nacl[0].inbound[3].action",
            ]
        );
        assert!(d[0]
            .message
            .contains("used twice in NACL n inbound (also inbound[0])"));
    }

    #[test]
    fn no_default_nacl_when_every_subnet_names_one() {
        let text = NET
            .replace(
                "route_table = \"public\"\n",
                "route_table = \"public\"\nnacl = \"n\"\n",
            )
            .replace(
                "az = \"us-east-1a\"\n[internet_gateway]",
                "az = \"us-east-1a\"\nnacl = \"n\"\n[internet_gateway]",
            );
        let l = lab(&format!("{text}[[nacl]]\nname = \"n\"\n"));
        assert_eq!(l.nacls.len(), 1);
        assert!(
            l.nacls[0].inbound.is_empty(),
            "a custom NACL without rules denies everything"
        );
    }
}
