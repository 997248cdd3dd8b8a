//! AWS WAF web ACLs on the load balancer, in WAFv2's model: rules evaluated
//! by priority, the first terminating action (allow, block) wins, count
//! records and goes on, the default action decides when nothing terminated.
//!
//! - [`field`]: the request as the WAF sees it (8 KB of body) and the
//!   components a statement inspects;
//! - [`transform`]: text transformations;
//! - [`statement`]: match statements and AND / OR / NOT;
//! - `engine`: statements compiled for evaluation (each component
//!   extracted and transformed once per request, shared by the rules);
//! - [`managed`]: the AWS Managed Rules groups, AWS's rule names;
//! - [`rate`]: rate-based rules;
//! - [`log`]: WAF logs in AWS's JSON format and the per-lab log file.
//!
//! Owns: the WAF language, its evaluation of one request and its log records. Must not
//! touch: sockets or connections (`lb/` calls it once per request).

mod engine;
pub mod field;
pub mod log;
pub mod managed;
mod memo;
pub mod rate;
pub mod statement;
pub mod transform;

use engine::{Node, Program, Scan};
use field::WafRequest;
use managed::ManagedGroup;
use rate::{RateCounter, RateKey};
use serde::{Deserialize, Serialize};
use statement::{MatchDetail, Statement};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What a rule (or the default action) does with a request it matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Allow,
    /// AWS answers 403 unless a custom response says otherwise.
    Block {
        status: u16,
        body: Option<String>,
    },
    Count,
}

impl Action {
    pub fn block() -> Action {
        Action::Block {
            status: 403,
            body: None,
        }
    }

    /// AWS's spelling in logs.
    pub fn log_name(&self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Block { .. } => "BLOCK",
            Action::Count => "COUNT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleBody {
    Regular {
        statement: Statement,
        action: Action,
    },
    RateBased {
        limit: u64,
        window_s: u64,
        key: RateKey,
        /// Only requests matching it are counted (AWS's scope-down).
        scope_down: Option<Statement>,
        action: Action,
    },
    Managed {
        group: ManagedGroup,
        /// The group's override action `count`: its blocks only count.
        override_count: bool,
        /// Rules set to count (AWS `ExcludedRules`).
        excluded: Vec<String>,
        /// Per-rule action overrides (AWS `RuleActionOverrides`).
        overrides: Vec<(String, Action)>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub name: String,
    pub priority: u32,
    pub body: RuleBody,
}

impl Rule {
    /// AWS's `terminatingRuleType`.
    pub fn log_type(&self) -> &'static str {
        match self.body {
            RuleBody::Regular { .. } => "REGULAR",
            RuleBody::RateBased { .. } => "RATE_BASED",
            RuleBody::Managed { .. } => "MANAGED_RULE_GROUP",
        }
    }
}

/// A web ACL of the lab plan, associated with load balancers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebAclPlan {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub default_action: Action,
    /// Indexes into `Lab::load_balancers`.
    pub load_balancers: Vec<usize>,
    /// In priority order.
    pub rules: Vec<Rule>,
    /// Its logging configuration: `None`, no WAF log (AWS's logging is
    /// opt-in per web ACL).
    #[serde(default)]
    pub logging: Option<log::Logging>,
}

/// A rule that matched: the web ACL rule, the managed rule inside it, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub rule: String,
    pub group_rule: Option<String>,
    pub action: String,
    pub detail: Option<MatchDetail>,
}

/// One managed group's part of the verdict (AWS's `ruleGroupList` entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupHits {
    /// The web ACL rule that runs the group.
    pub rule: String,
    pub group: String,
    pub terminating: Option<Hit>,
    pub non_terminating: Vec<Hit>,
    pub excluded: Vec<Hit>,
}

/// A rate-based rule past its limit (AWS's `rateBasedRuleList` entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateHit {
    pub rule: String,
    pub limit_key: String,
    pub limit_value: String,
    pub max_rate_allowed: u64,
    pub window_s: u64,
}

/// What the web ACL decided about one request, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The final action: allow or block (with its response).
    pub action: Action,
    /// The terminating rule; `None` = the default action decided.
    pub terminating: Option<Hit>,
    pub terminating_type: Cow<'static, str>,
    pub non_terminating: Vec<Hit>,
    pub groups: Vec<GroupHits>,
    pub rate: Vec<RateHit>,
    pub labels: Vec<String>,
}

impl Verdict {
    pub fn blocked(&self) -> bool {
        matches!(self.action, Action::Block { .. })
    }

    pub fn terminating_rule_id(&self) -> &str {
        self.terminating
            .as_ref()
            .map_or("Default_Action", |h| h.rule.as_str())
    }
}

/// CloudWatch's WAF metrics: AllowedRequests, BlockedRequests,
/// CountedRequests for the web ACL (`ALL`) and for each rule.
#[derive(Default)]
pub struct Counters {
    pub allowed: AtomicU64,
    pub blocked: AtomicU64,
    pub counted: AtomicU64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    #[serde(rename = "AllowedRequests")]
    pub allowed: u64,
    #[serde(rename = "BlockedRequests")]
    pub blocked: u64,
    #[serde(rename = "CountedRequests")]
    pub counted: u64,
}

impl Counters {
    fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            allowed: self.allowed.load(Ordering::Relaxed),
            blocked: self.blocked.load(Ordering::Relaxed),
            counted: self.counted.load(Ordering::Relaxed),
        }
    }
}

/// A web ACL's metrics: the whole ACL and each rule by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebAclMetrics {
    pub web_acl: String,
    pub all: MetricsSnapshot,
    pub rules: Vec<(String, MetricsSnapshot)>,
}

/// A plan rule's statements, compiled.
enum Compiled {
    Regular(Node),
    /// The scope-down statement.
    RateBased(Option<Node>),
    /// The group's rules, in its order.
    Managed(Vec<Node>),
}

/// A web ACL ready to evaluate requests: its plan, its statements compiled,
/// rate counters, metrics. Counters are shared with the web ACL it replaced
/// (see [`WebAcl::renew`]).
pub struct WebAcl {
    pub plan: WebAclPlan,
    program: Program,
    /// One per plan rule.
    compiled: Vec<Compiled>,
    rate: Vec<Option<Arc<RateCounter>>>,
    all: Arc<Counters>,
    per_rule: Vec<Arc<Counters>>,
}

impl WebAcl {
    pub fn new(plan: WebAclPlan) -> WebAcl {
        WebAcl::renew(plan, None)
    }

    /// `plan` as a live change of `old` (same web ACL, edited): the ACL's
    /// and each remaining rule's metrics go on counting, and a rate-based
    /// rule that stays keeps the requests it has seen in its window (a
    /// client over the limit stays over it).
    pub fn renew(plan: WebAclPlan, old: Option<&WebAcl>) -> WebAcl {
        // Compile every statement now, not on the first request.
        let mut program = Program::default();
        let compiled = plan
            .rules
            .iter()
            .map(|r| match &r.body {
                RuleBody::Regular { statement, .. } => {
                    Compiled::Regular(program.compile(statement))
                }
                RuleBody::RateBased { scope_down, .. } => {
                    Compiled::RateBased(scope_down.as_ref().map(|s| program.compile(s)))
                }
                RuleBody::Managed { group, .. } => Compiled::Managed(
                    group
                        .rules()
                        .iter()
                        .map(|m| program.compile(&m.statement))
                        .collect(),
                ),
            })
            .collect();
        program.finish();
        let before = |name: &str| {
            let old = old?;
            let i = old.plan.rules.iter().position(|r| r.name == name)?;
            Some((old, i))
        };
        let rate = plan
            .rules
            .iter()
            .map(|r| {
                let RuleBody::RateBased {
                    limit,
                    window_s,
                    key,
                    ..
                } = &r.body
                else {
                    return None;
                };
                let kept = before(&r.name).and_then(|(old, i)| match &old.plan.rules[i].body {
                    RuleBody::RateBased { key: k, .. } if k == key => old.rate[i].as_ref(),
                    _ => None,
                });
                Some(match kept {
                    Some(c) if c.limits() == (*limit, *window_s) => c.clone(),
                    Some(c) => Arc::new(c.with_limits(*limit, *window_s)),
                    None => Arc::new(RateCounter::new(*limit, *window_s)),
                })
            })
            .collect();
        let per_rule = plan
            .rules
            .iter()
            .map(|r| {
                before(&r.name)
                    .map(|(old, i)| old.per_rule[i].clone())
                    .unwrap_or_default()
            })
            .collect();
        WebAcl {
            all: old.map(|o| o.all.clone()).unwrap_or_default(),
            plan,
            program,
            compiled,
            rate,
            per_rule,
        }
    }

    pub fn metrics(&self) -> WebAclMetrics {
        WebAclMetrics {
            web_acl: self.plan.name.clone(),
            all: self.all.snapshot(),
            rules: self
                .plan
                .rules
                .iter()
                .zip(&self.per_rule)
                .map(|(r, c)| (r.name.clone(), c.snapshot()))
                .collect(),
        }
    }

    /// Evaluates `r`: rules in priority order, the first allow or block
    /// terminates, counts are recorded; then the default action.
    pub fn evaluate(&self, r: &WafRequest<'_>, now: Instant) -> Verdict {
        let mut v = Verdict {
            action: self.plan.default_action.clone(),
            terminating: None,
            terminating_type: "REGULAR".into(),
            non_terminating: vec![],
            groups: vec![],
            rate: vec![],
            labels: vec![],
        };
        let mut counted = false;
        let mut terminated_by = None;
        let mut scan = Scan::new(&self.program, r);
        for (i, rule) in self.plan.rules.iter().enumerate() {
            let outcome = self.rule_outcome(i, rule, &mut scan, now, &mut v);
            let Some((action, hit)) = outcome else {
                continue;
            };
            let c = &self.per_rule[i];
            match action {
                Action::Count => {
                    c.counted.fetch_add(1, Ordering::Relaxed);
                    counted = true;
                    v.non_terminating.push(hit);
                }
                Action::Allow | Action::Block { .. } => {
                    v.terminating_type = rule.log_type().into();
                    v.terminating = Some(hit);
                    v.action = action;
                    terminated_by = Some(i);
                    break;
                }
            }
        }
        scan.remember();
        let blocked = v.blocked();
        fn which(c: &Counters, blocked: bool) -> &AtomicU64 {
            if blocked {
                &c.blocked
            } else {
                &c.allowed
            }
        }
        which(&self.all, blocked).fetch_add(1, Ordering::Relaxed);
        if let Some(i) = terminated_by {
            which(&self.per_rule[i], blocked).fetch_add(1, Ordering::Relaxed);
        }
        if counted {
            self.all.counted.fetch_add(1, Ordering::Relaxed);
        }
        v
    }

    /// Whether rule `i` acts on `r`, with what action.
    fn rule_outcome<'p>(
        &'p self,
        i: usize,
        rule: &Rule,
        scan: &mut Scan<'p, '_>,
        now: Instant,
        v: &mut Verdict,
    ) -> Option<(Action, Hit)> {
        let hit = |action: &Action, group_rule: Option<&str>, detail| Hit {
            rule: rule.name.clone(),
            group_rule: group_rule.map(str::to_string),
            action: action.log_name().into(),
            detail,
        };
        match (&rule.body, &self.compiled[i]) {
            (RuleBody::Regular { action, .. }, Compiled::Regular(n)) => {
                let d = scan.eval(n)?;
                Some((action.clone(), hit(action, None, Some(d))))
            }
            (
                RuleBody::RateBased {
                    limit,
                    window_s,
                    key,
                    action,
                    ..
                },
                Compiled::RateBased(scope_down),
            ) => {
                let detail = match scope_down {
                    Some(s) => Some(scan.eval(s)?),
                    None => None,
                };
                let k = key.of(scan.request())?;
                let counter = self.rate[i].as_ref().expect("a counter per rate rule");
                if !counter.hit(&k, now) {
                    return None;
                }
                v.rate.push(RateHit {
                    rule: rule.name.clone(),
                    limit_key: key.log_name().into(),
                    limit_value: k,
                    max_rate_allowed: *limit,
                    window_s: *window_s,
                });
                Some((action.clone(), hit(action, None, detail)))
            }
            (
                RuleBody::Managed {
                    group,
                    override_count,
                    excluded,
                    overrides,
                },
                Compiled::Managed(nodes),
            ) => {
                // Built on the group's first match: most requests match none.
                let mut g: Option<GroupHits> = None;
                let mut result = None;
                for (m, n) in group.rules().iter().zip(nodes) {
                    let Some(d) = scan.eval(n) else {
                        continue;
                    };
                    let g = g.get_or_insert_with(|| GroupHits {
                        rule: rule.name.clone(),
                        group: format!("AWS#{}", group.name()),
                        terminating: None,
                        non_terminating: vec![],
                        excluded: vec![],
                    });
                    v.labels
                        .push(format!("{}:{}", group.label_namespace(), m.label()));
                    let action = if excluded.iter().any(|e| e == m.name) {
                        g.excluded.push(hit(&Action::Count, Some(m.name), Some(d)));
                        continue;
                    } else {
                        overrides
                            .iter()
                            .find(|(n, _)| n == m.name)
                            .map_or(Action::block(), |(_, a)| a.clone())
                    };
                    let h = hit(&action, Some(m.name), Some(d));
                    if action == Action::Count {
                        g.non_terminating.push(h);
                        continue;
                    }
                    g.terminating = Some(h.clone());
                    result = Some(if *override_count {
                        (
                            Action::Count,
                            Hit {
                                action: "COUNT".into(),
                                ..h
                            },
                        )
                    } else {
                        (action, h)
                    });
                    break;
                }
                v.groups.extend(g);
                result
            }
            _ => unreachable!("a compiled rule per plan rule, of its kind"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::field::tests::request;
    use super::field::{Field, BODY_LIMIT};
    use super::statement::Positional;
    use super::*;

    const UA: (&str, &str) = ("User-Agent", "Mozilla/5.0 Firefox/128.0");

    fn rule(name: &str, priority: u32, body: RuleBody) -> Rule {
        Rule {
            name: name.into(),
            priority,
            body,
        }
    }

    fn managed(group: ManagedGroup, override_count: bool, excluded: &[&str]) -> RuleBody {
        RuleBody::Managed {
            group,
            override_count,
            excluded: excluded.iter().map(|s| s.to_string()).collect(),
            overrides: vec![],
        }
    }

    fn acl(default_action: Action, rules: Vec<Rule>) -> WebAcl {
        WebAcl::new(WebAclPlan {
            name: "waf".into(),
            id: "id".into(),
            arn: "arn".into(),
            default_action,
            load_balancers: vec![0],
            rules,
            logging: None,
        })
    }

    fn path_rule(name: &str, priority: u32, path: &str, action: Action) -> Rule {
        rule(
            name,
            priority,
            RuleBody::Regular {
                statement: Statement::ByteMatch {
                    field: Field::UriPath,
                    positional: Positional::StartsWith,
                    value: path.into(),
                    transforms: vec![],
                },
                action,
            },
        )
    }

    #[test]
    fn first_terminating_rule_wins_and_counts_go_on() {
        let w = acl(
            Action::Allow,
            vec![
                path_rule("count-all", 1, "/", Action::Count),
                path_rule("allow-api", 2, "/api", Action::Allow),
                path_rule("block-api", 3, "/api", Action::block()),
            ],
        );
        let v = w.evaluate(&request("GET", "/api/x", &[UA], ""), Instant::now());
        assert_eq!(v.action, Action::Allow);
        assert_eq!(v.terminating_rule_id(), "allow-api");
        assert_eq!(v.non_terminating[0].rule, "count-all");
        let v = w.evaluate(&request("GET", "/other", &[UA], ""), Instant::now());
        assert_eq!(v.terminating_rule_id(), "Default_Action");
        let m = w.metrics();
        assert_eq!(m.all.allowed, 2);
        assert_eq!(m.all.counted, 2);
        assert_eq!(m.rules[0].1.counted, 2);
        assert_eq!(m.rules[1].1.allowed, 1);
    }

    #[test]
    fn default_block_and_custom_response() {
        let custom = Action::Block {
            status: 429,
            body: Some("slow down".into()),
        };
        let w = acl(
            Action::block(),
            vec![path_rule("teapot", 1, "/tea", custom.clone())],
        );
        let v = w.evaluate(&request("GET", "/", &[UA], ""), Instant::now());
        assert_eq!(v.action, Action::block());
        assert_eq!(w.metrics().all.blocked, 1);
        let v = w.evaluate(&request("GET", "/tea", &[UA], ""), Instant::now());
        assert_eq!(v.action, custom);
    }

    #[test]
    fn managed_group_blocks_with_its_rule_name() {
        let w = acl(
            Action::Allow,
            vec![rule("sqli", 10, managed(ManagedGroup::Sqli, false, &[]))],
        );
        let v = w.evaluate(
            &request("GET", "/?id=1%27%20or%201=1--", &[UA], ""),
            Instant::now(),
        );
        assert!(v.blocked());
        assert_eq!(v.terminating_type, "MANAGED_RULE_GROUP");
        let t = v.terminating.unwrap();
        assert_eq!(
            (t.rule.as_str(), t.group_rule.as_deref()),
            ("sqli", Some("SQLi_QUERYARGUMENTS"))
        );
        assert_eq!(v.groups[0].group, "AWS#AWSManagedRulesSQLiRuleSet");
        assert_eq!(
            v.labels,
            ["awswaf:managed:aws:sql-database:SQLi_QueryArguments"]
        );
    }

    #[test]
    fn answers_remembered_across_requests_give_the_verdicts_of_a_first_sight() {
        // The engine remembers its answers per component and value: a
        // request seen again, or sharing components with one seen before,
        // gets the verdict and the reasons a first sight gives.
        let groups = |excluded: &[&str]| {
            vec![
                rule("common", 1, managed(ManagedGroup::Common, false, excluded)),
                rule(
                    "bad-inputs",
                    2,
                    managed(ManagedGroup::KnownBadInputs, false, &[]),
                ),
                rule("sqli", 3, managed(ManagedGroup::Sqli, false, &[])),
            ]
        };
        let json = ("Content-Type", "application/json");
        let requests = [
            request(
                "POST",
                "/api/v1/recommendation",
                &[UA, json],
                r#"{"user_id": "42"}"#,
            ),
            request("GET", "/search?q=1%27%20or%201=1--", &[UA], ""),
            request(
                "POST",
                "/api/v1/recommendation",
                &[UA, json],
                r#"{"user_id": "<script>alert(1)</script>"}"#,
            ),
            // Decided by SizeRestrictions_BODY's oversize handling.
            request("POST", "/upload", &[UA], &"x".repeat(BODY_LIMIT + 1)),
            // NoUserAgent_HEADER: a NOT.
            request("GET", "/api/v1/recommendation", &[], ""),
        ];
        let verdicts = |w: &WebAcl| -> Vec<String> {
            requests
                .iter()
                .map(|r| serde_json::to_string(&w.evaluate(r, Instant::now())).unwrap())
                .collect()
        };
        let w = acl(Action::Allow, groups(&[]));
        let first = verdicts(&w);
        let blocked_by = |i: usize| w.evaluate(&requests[i], Instant::now()).terminating;
        assert_eq!(
            blocked_by(1).and_then(|t| t.detail).map(|d| d.data),
            Some("1' or 1=1--".to_string())
        );
        assert_eq!(
            blocked_by(3).and_then(|t| t.group_rule),
            Some("SizeRestrictions_BODY".to_string())
        );
        assert_eq!(verdicts(&w), first);
        assert_eq!(verdicts(&w), first);
        // Another web ACL of the same rules compiles its own statements:
        // nothing it answers is recalled from the first one's.
        assert_eq!(verdicts(&acl(Action::Allow, groups(&[]))), first);
        // Nor from a web ACL whose rules differ.
        let excluding = acl(Action::Allow, groups(&["SizeRestrictions_BODY"]));
        assert!(!excluding.evaluate(&requests[3], Instant::now()).blocked());
        assert_eq!(verdicts(&w), first);
        // A request that no rule terminates has every answer remembered,
        // matches included: recalled, a counted match keeps its reason.
        let excluded = ["SQLi_QUERYARGUMENTS", "SQLiExtendedPatterns_QUERYARGUMENTS"];
        let counting = acl(
            Action::Allow,
            vec![rule(
                "sqli",
                1,
                managed(ManagedGroup::Sqli, false, &excluded),
            )],
        );
        let counted = || {
            let v = counting.evaluate(&requests[1], Instant::now());
            assert!(!v.blocked());
            let hit = v.groups[0].excluded[0].clone();
            assert_eq!(hit.group_rule.as_deref(), Some("SQLi_QUERYARGUMENTS"));
            assert_eq!(hit.detail.map(|d| d.data).as_deref(), Some("1' or 1=1--"));
            serde_json::to_string(&v).unwrap()
        };
        let seen = counted();
        assert_eq!(counted(), seen);
        assert_eq!(counted(), seen);
    }

    #[test]
    fn override_count_and_excluded_rules() {
        let req = request("GET", "/?q=%3Cscript%3Ealert(1)%3C/script%3E", &[UA], "");
        let counting = acl(
            Action::Allow,
            vec![rule("common", 20, managed(ManagedGroup::Common, true, &[]))],
        );
        let v = counting.evaluate(&req, Instant::now());
        assert_eq!(v.action, Action::Allow);
        assert_eq!(v.non_terminating[0].action, "COUNT");
        assert_eq!(
            v.groups[0]
                .terminating
                .as_ref()
                .unwrap()
                .group_rule
                .as_deref(),
            Some("CrossSiteScripting_QUERYARGUMENTS")
        );
        let excluding = acl(
            Action::Allow,
            vec![rule(
                "common",
                20,
                managed(
                    ManagedGroup::Common,
                    false,
                    &["CrossSiteScripting_QUERYARGUMENTS"],
                ),
            )],
        );
        let v = excluding.evaluate(&req, Instant::now());
        assert_eq!(v.action, Action::Allow);
        assert_eq!(v.groups[0].excluded.len(), 1);
        let overridden = acl(
            Action::Allow,
            vec![rule(
                "common",
                20,
                RuleBody::Managed {
                    group: ManagedGroup::Common,
                    override_count: false,
                    excluded: vec![],
                    overrides: vec![("CrossSiteScripting_QUERYARGUMENTS".into(), Action::Count)],
                },
            )],
        );
        let v = overridden.evaluate(&req, Instant::now());
        assert_eq!(v.action, Action::Allow);
        assert_eq!(v.groups[0].non_terminating.len(), 1);
    }

    #[test]
    fn rate_based_rule_blocks_one_client_past_its_limit() {
        let w = acl(
            Action::Allow,
            vec![rule(
                "rate",
                30,
                RuleBody::RateBased {
                    limit: 10,
                    window_s: 60,
                    key: RateKey::Ip,
                    scope_down: None,
                    action: Action::block(),
                },
            )],
        );
        let t = Instant::now();
        let a = request("GET", "/", &[UA], "");
        let mut b = a.clone();
        b.client_ip = "203.0.113.11".parse().unwrap();
        for _ in 0..10 {
            assert!(!w.evaluate(&a, t).blocked());
        }
        let v = w.evaluate(&a, t);
        assert!(v.blocked());
        assert_eq!(v.rate[0].limit_value, "203.0.113.10");
        assert_eq!(v.terminating_type, "RATE_BASED");
        assert!(!w.evaluate(&b, t).blocked());
    }

    #[test]
    fn renew_keeps_metrics_and_rate_windows_of_rules_that_stay() {
        let rate = |limit| {
            rule(
                "rate",
                30,
                RuleBody::RateBased {
                    limit,
                    window_s: 60,
                    key: RateKey::Ip,
                    scope_down: None,
                    action: Action::block(),
                },
            )
        };
        let old = acl(
            Action::Allow,
            vec![path_rule("count-all", 1, "/", Action::Count), rate(10)],
        );
        let t = Instant::now();
        let a = request("GET", "/", &[UA], "");
        for _ in 0..10 {
            assert!(!old.evaluate(&a, t).blocked());
        }
        assert!(old.evaluate(&a, t).blocked());
        // Same rules: the client is still over the limit, metrics go on.
        let same = WebAcl::renew(old.plan.clone(), Some(&old));
        assert!(same.evaluate(&a, t).blocked());
        assert_eq!(same.metrics().all.blocked, 2);
        assert_eq!(same.metrics().rules[0].1.counted, 12);
        // A higher limit: the requests seen still count toward it.
        let mut plan = old.plan.clone();
        plan.rules[1] = rate(12);
        let raised = WebAcl::renew(plan.clone(), Some(&same));
        assert!(!raised.evaluate(&a, t).blocked());
        assert!(raised.evaluate(&a, t).blocked());
        // A removed rule's metrics go; a new rule of that name starts at 0.
        plan.rules.remove(0);
        let fewer = WebAcl::renew(plan.clone(), Some(&raised));
        assert_eq!(fewer.metrics().rules.len(), 1);
        plan.rules
            .push(path_rule("count-all", 40, "/", Action::Count));
        let again = WebAcl::renew(plan, Some(&fewer));
        assert_eq!(again.metrics().rules[1].1.counted, 0);
    }

    #[test]
    fn plan_round_trips() {
        let w = acl(
            Action::Allow,
            vec![
                rule(
                    "c",
                    1,
                    managed(ManagedGroup::KnownBadInputs, false, &["PROPFIND_METHOD"]),
                ),
                path_rule("p", 2, "/x", Action::Count),
            ],
        );
        let s = serde_json::to_string(&w.plan).unwrap();
        assert_eq!(serde_json::from_str::<WebAclPlan>(&s).unwrap(), w.plan);
    }
}
