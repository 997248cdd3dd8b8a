//! WAF logs: one JSON object per line in AWS WAF's log format
//! (docs.aws.amazon.com/waf/latest/developerguide/logging-fields.html),
//! one file per lab (the ALB writes it: `lb/waf_log.rs`).

use super::field::{Field, WafRequest};
use super::statement::MatchDetail;
use super::{Hit, Verdict, WebAclPlan};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// A web ACL's logging configuration (AWS's `PutLoggingConfiguration`):
/// without one, the web ACL writes no log. The destination is the lab's WAF
/// log file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Logging {
    /// `None`: every request is logged.
    pub filter: Option<LogFilter>,
    /// Components logged as `REDACTED`: only the method, the URI path, the
    /// query string and single headers (what AWS can redact).
    pub redacted: Vec<Field>,
}

/// AWS's `LoggingFilter`: the first filter whose conditions a record meets
/// keeps or drops it; a record no filter meets gets the default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogFilter {
    pub default_keep: bool,
    pub filters: Vec<FilterRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterRule {
    pub keep: bool,
    /// `MEETS_ALL` (true) or `MEETS_ANY`.
    pub meets_all: bool,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Action(LogAction),
    /// A fully qualified label a matching rule added.
    Label(String),
}

/// AWS's `ActionCondition` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogAction {
    Allow,
    Block,
    Count,
    /// Accepted as AWS accepts them; this WAF has no CAPTCHA or challenge
    /// actions, so no record meets them.
    Captcha,
    Challenge,
    ExcludedAsCount,
}

impl LogAction {
    pub const ALL: [LogAction; 6] = [
        LogAction::Allow,
        LogAction::Block,
        LogAction::Count,
        LogAction::Captcha,
        LogAction::Challenge,
        LogAction::ExcludedAsCount,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LogAction::Allow => "ALLOW",
            LogAction::Block => "BLOCK",
            LogAction::Count => "COUNT",
            LogAction::Captcha => "CAPTCHA",
            LogAction::Challenge => "CHALLENGE",
            LogAction::ExcludedAsCount => "EXCLUDED_AS_COUNT",
        }
    }
}

impl Condition {
    /// Whether a record of `v` contains this action or label. The action is
    /// any the record shows: the final one (ALLOW, BLOCK), a counting rule
    /// of the web ACL or of a group (COUNT), an excluded group rule or one
    /// overridden to count (EXCLUDED_AS_COUNT, which AWS matches on both).
    fn met_by(&self, v: &Verdict) -> bool {
        match self {
            Condition::Label(l) => v.labels.iter().any(|x| x == l),
            Condition::Action(a) => match a {
                LogAction::Allow => matches!(v.action, super::Action::Allow),
                LogAction::Block => v.blocked(),
                LogAction::Count => {
                    !v.non_terminating.is_empty()
                        || v.groups.iter().any(|g| !g.non_terminating.is_empty())
                }
                LogAction::ExcludedAsCount => v
                    .groups
                    .iter()
                    .any(|g| !g.excluded.is_empty() || !g.non_terminating.is_empty()),
                LogAction::Captcha | LogAction::Challenge => false,
            },
        }
    }
}

impl Logging {
    /// Whether `v`'s record goes to the log: decided before it is built, so
    /// a dropped request costs a few comparisons.
    pub fn keeps(&self, v: &Verdict) -> bool {
        let Some(f) = &self.filter else {
            return true;
        };
        f.filters
            .iter()
            .find(|r| {
                let mut met = r.conditions.iter().map(|c| c.met_by(v));
                if r.meets_all {
                    met.all(|m| m)
                } else {
                    met.any(|m| m)
                }
            })
            .map_or(f.default_keep, |r| r.keep)
    }

    /// One line for a plan: `keep BLOCK or COUNT, else drop; redacted URI_PATH`.
    pub fn summary(&self) -> String {
        let mut out = match &self.filter {
            None => "every request".to_string(),
            Some(f) => {
                let word = |keep: bool| if keep { "keep" } else { "drop" };
                let mut parts: Vec<String> = f
                    .filters
                    .iter()
                    .map(|r| {
                        let cs: Vec<&str> = r
                            .conditions
                            .iter()
                            .map(|c| match c {
                                Condition::Action(a) => a.name(),
                                Condition::Label(l) => l,
                            })
                            .collect();
                        let join = if r.meets_all { " and " } else { " or " };
                        format!("{} {}", word(r.keep), cs.join(join))
                    })
                    .collect();
                parts.push(format!("else {}", word(f.default_keep)));
                parts.join(", ")
            }
        };
        if !self.redacted.is_empty() {
            let r: Vec<String> = self.redacted.iter().map(Field::label).collect();
            out.push_str(&format!("; redacted {}", r.join(", ")));
        }
        out
    }

    fn redacts(&self, f: &Field) -> bool {
        self.redacted.contains(f)
    }

    fn redacts_header(&self, name: &str) -> bool {
        self.redacted
            .iter()
            .any(|f| matches!(f, Field::Header { name: n } if n.eq_ignore_ascii_case(name)))
    }
}

/// What AWS writes in place of a redacted value.
const REDACTED: &str = "REDACTED";

// The record as borrowed structs, serialised straight to a line: no
// intermediate JSON tree (a `serde_json::Value` per request cost the ALB
// more than evaluating the web ACL did).

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Detail<'a> {
    condition_type: &'a str,
    /// For SQL_INJECTION only, as AWS logs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    sensitivity_level: Option<&'static str>,
    location: &'a str,
    matched_field_name: &'a str,
    matched_data: Vec<&'a str>,
}

/// A match's details; its data `REDACTED` when the rule inspected a
/// redacted component (AWS redacts only what names that very component: a
/// redacted header, not all headers).
fn match_details<'a>(d: Option<&'a MatchDetail>, logging: &Logging) -> Vec<Detail<'a>> {
    match d {
        Some(d) if !d.location.is_empty() && d.condition != "IP_SET" => vec![Detail {
            condition_type: &d.condition,
            sensitivity_level: d.sensitivity.map(|s| s.name()),
            location: &d.location,
            matched_field_name: &d.field,
            matched_data: if logging.redacted.iter().any(|f| f.label() == d.field) {
                vec![REDACTED]
            } else {
                d.data.split_whitespace().take(10).collect()
            },
        }],
        _ => vec![],
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleHit<'a> {
    rule_id: &'a str,
    action: &'a str,
    rule_match_details: Vec<Detail<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Excluded<'a> {
    exclusion_type: &'static str,
    rule_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Group<'a> {
    rule_group_id: &'a str,
    terminating_rule: Option<RuleHit<'a>>,
    non_terminating_matching_rules: Vec<RuleHit<'a>>,
    excluded_rules: Option<Vec<Excluded<'a>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rate<'a> {
    rate_based_rule_id: &'a str,
    rate_based_rule_name: &'a str,
    limit_key: &'a str,
    max_rate_allowed: u64,
    evaluation_window_sec: String,
    limit_value: &'a str,
}

#[derive(Serialize)]
struct Header<'a> {
    name: &'a str,
    value: &'a str,
}

/// The request's headers as AWS logs them, written as they are read: no
/// list built per request.
struct Headers<'a> {
    r: &'a WafRequest<'a>,
    logging: &'a Logging,
}

impl Serialize for Headers<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.r.headers.iter().map(|(name, value)| Header {
            name,
            value: if self.logging.redacts_header(name) {
                REDACTED
            } else {
                value
            },
        }))
    }
}

/// An address written with its `Display`, not through a `String`.
struct Ip(std::net::IpAddr);

impl Serialize for Ip {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpRequest<'a> {
    client_ip: Ip,
    country: &'static str,
    headers: Headers<'a>,
    uri: &'a str,
    args: &'a str,
    http_version: &'a str,
    http_method: &'a str,
    request_id: &'a str,
}

#[derive(Serialize)]
struct Label<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    timestamp: u64,
    format_version: u32,
    webacl_id: &'a str,
    terminating_rule_id: &'a str,
    terminating_rule_type: &'a str,
    action: &'a str,
    terminating_rule_match_details: Vec<Detail<'a>>,
    http_source_name: &'static str,
    http_source_id: &'a str,
    rule_group_list: Vec<Group<'a>>,
    rate_based_rule_list: Vec<Rate<'a>>,
    non_terminating_matching_rules: Vec<RuleHit<'a>>,
    request_headers_inserted: Option<()>,
    response_code_sent: Option<u16>,
    http_request: HttpRequest<'a>,
    labels: Vec<Label<'a>>,
}

fn hit<'a>(h: &'a Hit, rule_id: &'a str, logging: &Logging) -> RuleHit<'a> {
    RuleHit {
        rule_id,
        action: &h.action,
        rule_match_details: match_details(h.detail.as_ref(), logging),
    }
}

/// What one request's record is made of.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub acl: &'a WebAclPlan,
    pub logging: &'a Logging,
    pub verdict: &'a Verdict,
    pub request: &'a WafRequest<'a>,
    /// The load balancer's `httpSourceId`.
    pub lb_id: &'a str,
    pub request_id: &'a str,
    pub now: SystemTime,
}

/// The log record of one request, in AWS's field names, appended to `out`
/// as one JSON line without its newline.
pub fn write_record(out: &mut Vec<u8>, src: &Source<'_>) {
    let Source {
        acl,
        logging,
        verdict: v,
        request: r,
        lb_id,
        request_id,
        now,
    } = *src;
    let ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64;
    let groups = v
        .groups
        .iter()
        .map(|g| Group {
            rule_group_id: &g.group,
            terminating_rule: g.terminating.as_ref().map(|h| RuleHit {
                rule_id: h.group_rule.as_deref().unwrap_or_default(),
                action: "BLOCK",
                rule_match_details: match_details(h.detail.as_ref(), logging),
            }),
            non_terminating_matching_rules: g
                .non_terminating
                .iter()
                .map(|h| hit(h, h.group_rule.as_deref().unwrap_or(&h.rule), logging))
                .collect(),
            excluded_rules: (!g.excluded.is_empty()).then(|| {
                g.excluded
                    .iter()
                    .map(|h| Excluded {
                        exclusion_type: "EXCLUDED_AS_COUNT",
                        rule_id: h.group_rule.as_deref().unwrap_or_default(),
                    })
                    .collect()
            }),
        })
        .collect();
    let redact = |value, f: Field| {
        if logging.redacts(&f) {
            REDACTED
        } else {
            value
        }
    };
    let custom_status = match &v.action {
        super::Action::Block { status, .. } if *status != 403 => Some(*status),
        _ => None,
    };
    let rec = Record {
        timestamp: ms,
        format_version: 1,
        webacl_id: &acl.arn,
        terminating_rule_id: v.terminating_rule_id(),
        terminating_rule_type: &v.terminating_type,
        action: v.action.log_name(),
        terminating_rule_match_details: match_details(
            v.terminating.as_ref().and_then(|h| h.detail.as_ref()),
            logging,
        ),
        http_source_name: "ALB",
        http_source_id: lb_id,
        rule_group_list: groups,
        rate_based_rule_list: v
            .rate
            .iter()
            .map(|x| Rate {
                rate_based_rule_id: &x.rule,
                rate_based_rule_name: &x.rule,
                limit_key: &x.limit_key,
                max_rate_allowed: x.max_rate_allowed,
                evaluation_window_sec: x.window_s.to_string(),
                limit_value: &x.limit_value,
            })
            .collect(),
        non_terminating_matching_rules: v
            .non_terminating
            .iter()
            .map(|h| hit(h, &h.rule, logging))
            .collect(),
        request_headers_inserted: None,
        response_code_sent: custom_status,
        http_request: HttpRequest {
            client_ip: Ip(r.client_ip),
            country: "-",
            headers: Headers { r, logging },
            uri: redact(&r.uri, Field::UriPath),
            args: redact(&r.query, Field::QueryString),
            http_version: &r.http_version,
            http_method: redact(&r.method, Field::Method),
            request_id,
        },
        labels: v.labels.iter().map(|name| Label { name }).collect(),
    };
    serde_json::to_writer(out, &rec).expect("a WAF log record serialises")
}

#[cfg(test)]
mod tests {
    use super::super::field::tests::request;
    use super::super::managed::ManagedGroup;
    use super::super::statement::Statement;
    use super::super::*;
    use super::*;

    /// The record of `r` as one line (a fixed load balancer and request id).
    fn record(acl: &WebAclPlan, logging: &Logging, v: &Verdict, r: &WafRequest<'_>) -> String {
        let mut out = Vec::new();
        let src = Source {
            acl,
            logging,
            verdict: v,
            request: r,
            lb_id: "app/alb/1",
            request_id: "Root=1-x",
            now: SystemTime::now(),
        };
        write_record(&mut out, &src);
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    #[test]
    fn blocked_request_in_aws_fields() {
        let acl = WebAcl::new(WebAclPlan {
            name: "waf-canary".into(),
            id: "id".into(),
            arn: "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/waf-canary/id".into(),
            default_action: Action::Allow,
            load_balancers: vec![0],
            rules: vec![Rule {
                name: "sqli".into(),
                priority: 10,
                body: RuleBody::Managed {
                    group: ManagedGroup::Sqli,
                    override_count: false,
                    excluded: vec![],
                    overrides: vec![],
                },
            }],
            logging: None,
        });
        let r = request("GET", "/x?id=1%27%20or%201=1--", &[("Host", "alb")], "");
        let v = acl.evaluate(&r, std::time::Instant::now());
        let line = record(&acl.plan, &Logging::default(), &v, &r);
        let j: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(j["action"], "BLOCK");
        assert_eq!(j["terminatingRuleId"], "sqli");
        assert_eq!(j["terminatingRuleType"], "MANAGED_RULE_GROUP");
        assert_eq!(j["httpRequest"]["clientIp"], "203.0.113.10");
        assert_eq!(j["httpRequest"]["args"], "id=1%27%20or%201=1--");
        assert_eq!(j["httpRequest"]["headers"][0]["name"], "Host");
        let g = &j["ruleGroupList"][0];
        assert_eq!(g["ruleGroupId"], "AWS#AWSManagedRulesSQLiRuleSet");
        assert_eq!(g["terminatingRule"]["ruleId"], "SQLi_QUERYARGUMENTS");
        // AWS's order and fields for a SQL injection match, the level LOW
        // of the managed SQLi rules.
        let d = &j["terminatingRuleMatchDetails"][0];
        assert!(
            line.contains(
                r#""terminatingRuleMatchDetails":[{"conditionType":"SQL_INJECTION","sensitivityLevel":"LOW","location":"QUERY_STRING","#
            ),
            "{line}"
        );
        assert_eq!(d["conditionType"], "SQL_INJECTION");
        assert_eq!(d["sensitivityLevel"], "LOW");
        assert_eq!(d["location"], "QUERY_STRING");
        assert_eq!(d["matchedData"], serde_json::json!(["1'", "or", "1=1--"]));
        assert_eq!(g["terminatingRule"]["ruleMatchDetails"][0], *d);
        // A statement at HIGH logs HIGH; other conditions log no level.
        let high = Statement::SqliMatch {
            field: field::Field::AllQueryArgs,
            transforms: vec![transform::Transform::UrlDecode],
            sensitivity: statement::Sensitivity::High,
        };
        let xss = Statement::XssMatch {
            field: field::Field::AllQueryArgs,
            transforms: vec![transform::Transform::UrlDecode],
        };
        for (s, target, level) in [
            (high, "/x?id=1%27%20or%201=1--", Some("HIGH")),
            (xss, "/x?q=%3Cscript%3Ealert(1)%3C/script%3E", None),
        ] {
            let acl = WebAcl::new(WebAclPlan {
                rules: vec![Rule {
                    name: "custom".into(),
                    priority: 1,
                    body: RuleBody::Regular {
                        statement: s,
                        action: Action::block(),
                    },
                }],
                ..acl.plan.clone()
            });
            let r = request("GET", target, &[("Host", "alb")], "");
            let v = acl.evaluate(&r, std::time::Instant::now());
            let line = record(&acl.plan, &Logging::default(), &v, &r);
            let j: serde_json::Value = serde_json::from_str(&line).unwrap();
            let d = &j["terminatingRuleMatchDetails"][0];
            assert_eq!(d["sensitivityLevel"].as_str(), level, "{line}");
        }
    }

    /// `acl`'s verdict on a GET of `target` with one User-Agent header.
    fn get(acl: &WebAcl, target: &str, ua: (&str, &str)) -> Verdict {
        acl.evaluate(
            &request("GET", target, &[ua], ""),
            std::time::Instant::now(),
        )
    }

    /// The canary's web ACL (one managed group, one counting rule on a
    /// header) with `logging`.
    fn logged_acl(logging: Logging) -> WebAcl {
        WebAcl::new(WebAclPlan {
            name: "w".into(),
            id: "id".into(),
            arn: "arn".into(),
            default_action: Action::Allow,
            load_balancers: vec![0],
            rules: vec![
                Rule {
                    name: "ua".into(),
                    priority: 1,
                    body: RuleBody::Regular {
                        statement: Statement::ByteMatch {
                            field: field::Field::Header {
                                name: "user-agent".into(),
                            },
                            positional: statement::Positional::Contains,
                            value: "scanner".into(),
                            transforms: vec![],
                        },
                        action: Action::Count,
                    },
                },
                Rule {
                    name: "sqli".into(),
                    priority: 2,
                    body: RuleBody::Managed {
                        group: ManagedGroup::Sqli,
                        override_count: false,
                        excluded: vec![],
                        overrides: vec![],
                    },
                },
            ],
            logging: Some(logging),
        })
    }

    #[test]
    fn a_filter_keeps_what_it_names_and_drops_the_rest() {
        let keep_block_count = Logging {
            filter: Some(LogFilter {
                default_keep: false,
                filters: vec![FilterRule {
                    keep: true,
                    meets_all: false,
                    conditions: vec![
                        Condition::Action(LogAction::Block),
                        Condition::Action(LogAction::Count),
                    ],
                }],
            }),
            redacted: vec![],
        };
        let acl = logged_acl(keep_block_count.clone());
        let ua = ("User-Agent", "Mozilla/5.0");
        let verdict = |target: &str, ua: (&str, &str)| get(&acl, target, ua);
        let allowed = verdict("/x?id=42", ua);
        let blocked = verdict("/x?id=1%27%20or%201=1--", ua);
        let counted = verdict("/x?id=42", ("User-Agent", "scanner/1"));
        assert!(!keep_block_count.keeps(&allowed));
        assert!(keep_block_count.keeps(&blocked));
        assert!(keep_block_count.keeps(&counted));
        // No filter: everything.
        assert!(Logging::default().keeps(&allowed));
        // MEETS_ALL of a label and an action; filters in order, then the
        // default.
        let label = "awswaf:managed:aws:sql-database:SQLi_QueryArguments";
        let all = Logging {
            filter: Some(LogFilter {
                default_keep: true,
                filters: vec![
                    FilterRule {
                        keep: false,
                        meets_all: true,
                        conditions: vec![
                            Condition::Label(label.into()),
                            Condition::Action(LogAction::Block),
                        ],
                    },
                    FilterRule {
                        keep: true,
                        meets_all: false,
                        conditions: vec![Condition::Action(LogAction::Block)],
                    },
                ],
            }),
            redacted: vec![],
        };
        assert!(!all.keeps(&blocked));
        assert!(all.keeps(&allowed));
        let xss = verdict("/x?q=%3Cscript%3Ealert(1)%3C/script%3E", ua);
        assert!(!xss.blocked(), "the SQLi group alone lets XSS through");
        assert!(all.keeps(&xss));
    }

    #[test]
    fn excluded_as_count_is_met_by_an_excluded_group_rule_only() {
        let logging = Logging {
            filter: Some(LogFilter {
                default_keep: false,
                filters: vec![FilterRule {
                    keep: true,
                    meets_all: false,
                    conditions: vec![Condition::Action(LogAction::ExcludedAsCount)],
                }],
            }),
            redacted: vec![],
        };
        let mut plan = logged_acl(logging.clone()).plan.clone();
        let RuleBody::Managed { excluded, .. } = &mut plan.rules[1].body else {
            unreachable!("rule 1 is the SQLi group")
        };
        excluded.extend([
            "SQLi_QUERYARGUMENTS".into(),
            "SQLiExtendedPatterns_QUERYARGUMENTS".into(),
        ]);
        let acl = WebAcl::new(plan);
        let ua = ("User-Agent", "Mozilla/5.0");
        let verdict = |target: &str, ua: (&str, &str)| get(&acl, target, ua);
        let excluded = verdict("/x?id=1%27%20or%201=1--", ua);
        assert!(!excluded.blocked(), "the excluded rule only counts");
        assert!(logging.keeps(&excluded));
        // A web ACL rule in count mode is COUNT, not EXCLUDED_AS_COUNT.
        assert!(!logging.keeps(&verdict("/x?id=42", ("User-Agent", "scanner/1"))));
        assert!(!logging.keeps(&verdict("/x?id=42", ua)));
    }

    #[test]
    fn redacted_fields_are_logged_as_aws_redacts_them() {
        let logging = Logging {
            filter: None,
            redacted: vec![
                field::Field::UriPath,
                field::Field::QueryString,
                field::Field::Header {
                    name: "user-agent".into(),
                },
            ],
        };
        let acl = logged_acl(logging.clone());
        let r = request(
            "GET",
            "/secret/path?token=abc",
            &[("Host", "alb"), ("User-Agent", "scanner/1")],
            "",
        );
        let v = acl.evaluate(&r, std::time::Instant::now());
        let line = record(&acl.plan, &logging, &v, &r);
        assert!(!line.contains("secret") && !line.contains("token") && !line.contains("scanner"));
        let j: serde_json::Value = serde_json::from_str(&line).unwrap();
        let h = &j["httpRequest"];
        assert_eq!(h["uri"], "REDACTED");
        assert_eq!(h["args"], "REDACTED");
        assert_eq!(h["httpMethod"], "GET");
        assert_eq!(h["headers"][0]["value"], "alb");
        assert_eq!(h["headers"][1]["name"], "User-Agent");
        assert_eq!(h["headers"][1]["value"], "REDACTED");
        // The rule that inspected the redacted header: its data too.
        let d = &j["nonTerminatingMatchingRules"][0]["ruleMatchDetails"][0];
        assert_eq!(d["matchedFieldName"], "HEADER:user-agent");
        assert_eq!(d["matchedData"], serde_json::json!(["REDACTED"]));
    }
}
