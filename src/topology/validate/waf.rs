//! `[[web_acl]]`: AWS WAF web ACLs on load balancers, checked against
//! WAFv2's rules (unique names and priorities, one web ACL per load
//! balancer, rate limits of at least 10 over 60/120/300/600 s, managed
//! groups and their rule names, statements, fields and transformations)
//! and resolved into [`Lab::web_acls`].

use super::context::Ctx;
use crate::topology::model::{Topology, WafForwardedIp, WafRule};
use crate::topology::plan::{wafv2_id, Lab, ACCOUNT_ID};
use crate::waf::managed::ManagedGroup;
use crate::waf::rate::{RateKey, MIN_LIMIT, WINDOWS};
use crate::waf::{Action, Rule, RuleBody, WebAclPlan};

impl Ctx {
    /// Fills `lab.web_acls`.
    pub(super) fn web_acls(&mut self, t: &Topology, lab: &mut Lab) {
        let mut owner: Vec<Option<String>> = vec![None; lab.load_balancers.len()];
        let mut plans = Vec::new();
        for (i, w) in t.web_acls.iter().enumerate() {
            let p = format!("web_acl[{i}]");
            let name_ok = !w.name.is_empty()
                && w.name.len() <= 128
                && w.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !name_ok {
                self.err(
                    format!("{p}.name"),
                    format!("`{}` is not a valid web ACL name", w.name),
                    "1-128 letters, digits, `-` and `_` (AWS's pattern)",
                );
            }
            if t.web_acls[..i].iter().any(|x| x.name == w.name) {
                self.err(
                    format!("{p}.name"),
                    format!("duplicate web ACL name `{}`", w.name),
                    "give each web ACL its own name",
                );
            }
            let default_action = self.keyword(
                format!("{p}.default_action"),
                "default action",
                &w.default_action,
                &[("allow", Action::Allow), ("block", Action::block())],
            );
            let mut lbs = Vec::new();
            for (j, lb) in w.load_balancers.iter().enumerate() {
                let path = format!("{p}.load_balancers[{j}]");
                match lab.load_balancers.iter().position(|x| &x.name == lb) {
                    None => self.err(
                        path,
                        format!("no load balancer named `{lb}`"),
                        format!(
                            "associate one of: {}",
                            super::context::quoted_list(
                                lab.load_balancers.iter().map(|l| l.name.as_str())
                            )
                        ),
                    ),
                    Some(k) => match &owner[k] {
                        Some(other) => self.err(
                            path,
                            format!("load balancer `{lb}` is already associated with web ACL `{other}`"),
                            "AWS associates at most one web ACL with a resource: remove one association",
                        ),
                        None => {
                            owner[k] = Some(w.name.clone());
                            lbs.push(k);
                        }
                    },
                }
            }
            let mut rules = Vec::new();
            for (j, r) in w.rules.iter().enumerate() {
                let rp = format!("{p}.rules[{j}]");
                if w.rules[..j].iter().any(|x| x.name == r.name) {
                    self.err(
                        format!("{rp}.name"),
                        format!("duplicate rule name `{}` in web ACL `{}`", r.name, w.name),
                        "rule names are unique within a web ACL",
                    );
                }
                if let Some(o) = w.rules[..j].iter().find(|x| x.priority == r.priority) {
                    self.err(
                        format!("{rp}.priority"),
                        format!(
                            "priority {} is already used by rule `{}`",
                            r.priority, o.name
                        ),
                        "AWS evaluates rules by priority: give each its own number",
                    );
                }
                if r.priority < 0 || r.priority > i64::from(u32::MAX) {
                    self.err(
                        format!("{rp}.priority"),
                        format!("priority {} is out of range", r.priority),
                        "use a number from 0 upwards",
                    );
                }
                if let Some(body) = self.waf_rule(r, &rp) {
                    rules.push(Rule {
                        name: r.name.clone(),
                        priority: r.priority.clamp(0, i64::from(u32::MAX)) as u32,
                        body,
                    });
                }
            }
            rules.sort_by_key(|r| r.priority);
            // `None`: an error in it (reported); `Some(None)`: no logging.
            let logging = match &w.logging {
                Some(l) => self.waf_logging(l, &format!("{p}.logging")).map(Some),
                None => Some(None),
            };
            let id = wafv2_id(&lab.name, &w.name);
            if let (Some(default_action), Some(logging)) = (default_action, logging) {
                plans.push(WebAclPlan {
                    arn: format!(
                        "arn:aws:wafv2:{}:{ACCOUNT_ID}:regional/webacl/{}/{id}",
                        lab.region, w.name
                    ),
                    name: w.name.clone(),
                    id,
                    default_action,
                    load_balancers: lbs,
                    rules,
                    logging,
                });
            }
        }
        lab.web_acls = plans;
    }

    fn waf_action(&mut self, r: &WafRule, p: &str) -> Option<Action> {
        let action = match r.action.as_deref() {
            Some("allow") => Action::Allow,
            Some("count") => Action::Count,
            Some("block") => Action::Block {
                status: 403,
                body: r.block_body.clone(),
            },
            Some(other) => {
                self.err(
                    format!("{p}.action"),
                    format!("unknown action `{other}`"),
                    "use \"allow\", \"block\" or \"count\"",
                );
                return None;
            }
            None => {
                self.err(
                    format!("{p}.action"),
                    format!("rule `{}` has no action", r.name),
                    "add action = \"allow\", \"block\" or \"count\"",
                );
                return None;
            }
        };
        match (&action, r.block_status) {
            (Action::Block { body, .. }, Some(s)) if (200..=599).contains(&s) => {
                return Some(Action::Block {
                    status: s as u16,
                    body: body.clone(),
                })
            }
            (Action::Block { .. }, Some(s)) => self.err(
                format!("{p}.block_status"),
                format!("status {s} is not allowed for a custom response"),
                "AWS allows 200-599",
            ),
            (_, Some(_)) => self.err(
                format!("{p}.block_status"),
                "a custom response needs action = \"block\"",
                "remove block_status or make the action block",
            ),
            _ => {}
        }
        if r.block_body.is_some() && !matches!(action, Action::Block { .. }) {
            self.err(
                format!("{p}.block_body"),
                "a custom response needs action = \"block\"",
                "remove block_body or make the action block",
            );
        }
        Some(action)
    }

    fn waf_rule(&mut self, r: &WafRule, p: &str) -> Option<RuleBody> {
        let kinds = [
            r.managed.is_some(),
            r.rate_limit.is_some(),
            r.ip_set.is_some(),
            r.statement.is_some() && r.rate_limit.is_none(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            self.err(
                format!("{p}.name"),
                format!("rule `{}` must have exactly one of managed, rate_limit, ip_set, match", r.name),
                "a rule is a managed group, a rate-based rule (match = its scope-down), an IP set or a match statement",
            );
            return None;
        }
        if let Some(g) = &r.managed {
            return self.waf_managed(r, g, p);
        }
        for (set, field, hint) in [
            (
                r.override_action.is_some(),
                "override",
                "only managed groups have an override action",
            ),
            (
                !r.excluded.is_empty(),
                "excluded",
                "only managed groups have excluded rules",
            ),
            (
                !r.rule_action_overrides.is_empty(),
                "rule_action_overrides",
                "only managed groups have rule action overrides",
            ),
        ] {
            if set {
                self.err(
                    format!("{p}.{field}"),
                    format!("rule `{}` is not a managed group", r.name),
                    hint,
                );
            }
        }
        let action = self.waf_action(r, p);
        if let Some(limit) = r.rate_limit {
            return self.waf_rate(r, limit, p, action?);
        }
        for (set, field) in [
            (r.window.is_some(), "window"),
            (r.aggregate.is_some(), "aggregate"),
        ] {
            if set {
                self.err(
                    format!("{p}.{field}"),
                    format!("`{field}` belongs to rate-based rules"),
                    "add rate_limit or remove it",
                );
            }
        }
        let statement = if let Some(set) = &r.ip_set {
            self.ip_set(set, r.forwarded_ip.as_ref(), p)
        } else {
            if r.forwarded_ip.is_some() {
                self.err(
                    format!("{p}.forwarded_ip"),
                    "forwarded_ip belongs to an ip_set or a rate-based rule",
                    "move it into the statement that uses it",
                );
            }
            let s = r.statement.as_ref().expect("one kind is set");
            self.statement(s, &format!("{p}.match"))
        };
        Some(RuleBody::Regular {
            statement: statement?,
            action: action?,
        })
    }

    fn waf_managed(&mut self, r: &WafRule, g: &str, p: &str) -> Option<RuleBody> {
        let Some(group) = ManagedGroup::parse(g) else {
            self.err(
                format!("{p}.managed"),
                format!("no managed rule group `{g}`"),
                format!(
                    "emulated groups: {}",
                    super::context::quoted_list(ManagedGroup::ALL.iter().map(|g| g.name()))
                ),
            );
            return None;
        };
        if r.action.is_some() || r.block_status.is_some() || r.block_body.is_some() {
            self.err(
                format!("{p}.action"),
                "a managed group has no action of its own",
                "use override = \"count\" (or \"none\") and rule_action_overrides",
            );
        }
        let names = group.rule_names();
        let listed = || format!("rules of {}: {}", group.name(), names.join(", "));
        let override_count = match r.override_action.as_deref() {
            None | Some("none") => false,
            Some("count") => true,
            Some(other) => {
                self.err(
                    format!("{p}.override"),
                    format!("unknown override action `{other}`"),
                    "use \"none\" or \"count\"",
                );
                false
            }
        };
        for (k, e) in r.excluded.iter().enumerate() {
            if !names.contains(&e.as_str()) {
                self.err(
                    format!("{p}.excluded[{k}]"),
                    format!("no rule `{e}` in {}", group.name()),
                    listed(),
                );
            }
        }
        let mut overrides = Vec::new();
        for (name, a) in &r.rule_action_overrides {
            let path = format!("{p}.rule_action_overrides.{name}");
            if !names.contains(&name.as_str()) {
                self.err(
                    path.clone(),
                    format!("no rule `{name}` in {}", group.name()),
                    listed(),
                );
            }
            match a.as_str() {
                "allow" => overrides.push((name.clone(), Action::Allow)),
                "block" => overrides.push((name.clone(), Action::block())),
                "count" => overrides.push((name.clone(), Action::Count)),
                other => self.err(
                    path,
                    format!("unknown action `{other}`"),
                    "use \"allow\", \"block\" or \"count\"",
                ),
            }
        }
        for (set, field) in [
            (
                r.rate_limit.is_some() || r.window.is_some() || r.aggregate.is_some(),
                "rate_limit",
            ),
            (r.ip_set.is_some() || r.forwarded_ip.is_some(), "ip_set"),
            (r.statement.is_some(), "match"),
        ] {
            if set {
                self.err(
                    format!("{p}.{field}"),
                    format!("`{field}` has no meaning in a managed group rule"),
                    "put it in a rule of its own",
                );
            }
        }
        Some(RuleBody::Managed {
            group,
            override_count,
            excluded: r.excluded.clone(),
            overrides,
        })
    }

    fn waf_rate(&mut self, r: &WafRule, limit: i64, p: &str, action: Action) -> Option<RuleBody> {
        let mut ok = true;
        if limit < MIN_LIMIT as i64 || limit > 2_000_000_000 {
            ok = false;
            self.err(
                format!("{p}.rate_limit"),
                format!("rate limit {limit} is out of range"),
                format!("AWS allows {MIN_LIMIT} to 2,000,000,000 requests per window"),
            );
        }
        let window = r.window.unwrap_or(300);
        if !WINDOWS.contains(&(window as u64)) {
            ok = false;
            self.err(
                format!("{p}.window"),
                format!("window {window} s is not an AWS evaluation window"),
                "use 60, 120, 300 or 600 (seconds; default 300)",
            );
        }
        let scope_down = match &r.statement {
            Some(s) => Some(self.statement(s, &format!("{p}.match"))?),
            None => None,
        };
        let key = match r.aggregate.as_deref().unwrap_or("ip") {
            "ip" => RateKey::Ip,
            "forwarded_ip" => {
                let f = r.forwarded_ip.clone().unwrap_or(WafForwardedIp {
                    header: "X-Forwarded-For".into(),
                    position: None,
                    fallback: None,
                });
                if f.position.is_some() {
                    self.err(
                        format!("{p}.forwarded_ip.position"),
                        "a rate-based rule always uses the first address",
                        "remove position",
                    );
                }
                RateKey::ForwardedIp {
                    header: f.header,
                    fallback_match: self
                        .fallback(f.fallback.as_deref(), &format!("{p}.forwarded_ip"))?,
                }
            }
            "constant" => {
                if scope_down.is_none() {
                    self.err(
                        format!("{p}.aggregate"),
                        "a constant aggregate needs a scope-down statement",
                        "add match = { … } to choose which requests count together (AWS requires it)",
                    );
                }
                RateKey::Constant
            }
            other => {
                self.err(
                    format!("{p}.aggregate"),
                    format!("unknown aggregate `{other}`"),
                    "use \"ip\", \"forwarded_ip\" or \"constant\"",
                );
                return None;
            }
        };
        if r.forwarded_ip.is_some() && !matches!(key, RateKey::ForwardedIp { .. }) {
            self.err(
                format!("{p}.forwarded_ip"),
                "forwarded_ip is used only with aggregate = \"forwarded_ip\"",
                "set aggregate = \"forwarded_ip\" or remove it",
            );
        }
        ok.then_some(RuleBody::RateBased {
            limit: limit as u64,
            window_s: window as u64,
            key,
            scope_down,
            action,
        })
    }
}
