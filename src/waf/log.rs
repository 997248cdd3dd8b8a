//! WAF logs: one JSON object per line in AWS WAF's log format
//! (docs.aws.amazon.com/waf/latest/developerguide/logging-fields.html),
//! one file per lab. Request tasks send the finished record to a writer
//! task, off the request path.

use super::field::WafRequest;
use super::statement::MatchDetail;
use super::{Hit, Verdict, WebAclPlan};
use serde::Serialize;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

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

fn match_details(d: Option<&MatchDetail>) -> Vec<Detail<'_>> {
    match d {
        Some(d) if !d.location.is_empty() && d.condition != "IP_SET" => vec![Detail {
            condition_type: &d.condition,
            sensitivity_level: d.sensitivity.map(|s| s.name()),
            location: &d.location,
            matched_field_name: &d.field,
            matched_data: d.data.split_whitespace().take(10).collect(),
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpRequest<'a> {
    client_ip: String,
    country: &'static str,
    headers: Vec<Header<'a>>,
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

fn hit<'a>(h: &'a Hit, rule_id: &'a str) -> RuleHit<'a> {
    RuleHit {
        rule_id,
        action: &h.action,
        rule_match_details: match_details(h.detail.as_ref()),
    }
}

/// The log record of one request, in AWS's field names: one JSON line.
pub fn record(
    acl: &WebAclPlan,
    v: &Verdict,
    r: &WafRequest<'_>,
    lb_id: &str,
    request_id: &str,
    now: SystemTime,
) -> String {
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
                rule_match_details: match_details(h.detail.as_ref()),
            }),
            non_terminating_matching_rules: g
                .non_terminating
                .iter()
                .map(|h| hit(h, h.group_rule.as_deref().unwrap_or(&h.rule)))
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
        non_terminating_matching_rules: v.non_terminating.iter().map(|h| hit(h, &h.rule)).collect(),
        request_headers_inserted: None,
        response_code_sent: custom_status,
        http_request: HttpRequest {
            client_ip: r.client_ip.to_string(),
            country: "-",
            headers: r
                .headers
                .iter()
                .map(|(name, value)| Header { name, value })
                .collect(),
            uri: &r.uri,
            args: &r.query,
            http_version: &r.http_version,
            http_method: &r.method,
            request_id,
        },
        labels: v.labels.iter().map(|name| Label { name }).collect(),
    };
    serde_json::to_string(&rec).expect("a WAF log record serialises")
}

/// The lab's WAF log writer: one task appending lines in batches.
#[derive(Clone)]
pub struct WafLog {
    tx: mpsc::UnboundedSender<String>,
}

impl WafLog {
    pub fn start(path: &Path) -> std::io::Result<WafLog> {
        let mut file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(1024);
            let mut out = String::with_capacity(64 * 1024);
            // Everything waiting at each turn: a fixed cap per 50 ms would
            // bound the log's rate, and past it the queue would only grow.
            while rx.recv_many(&mut batch, usize::MAX).await > 0 {
                for line in batch.drain(..) {
                    out.push_str(&line);
                    out.push('\n');
                }
                let _ = file.write_all(out.as_bytes());
                out.clear();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Ok(WafLog { tx })
    }

    pub fn send(&self, record: String) {
        let _ = self.tx.send(record);
    }
}

#[cfg(test)]
mod tests {
    use super::super::field::tests::request;
    use super::super::managed::ManagedGroup;
    use super::super::statement::Statement;
    use super::super::*;
    use super::*;

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
        });
        let r = request("GET", "/x?id=1%27%20or%201=1--", &[("Host", "alb")], "");
        let v = acl.evaluate(&r, std::time::Instant::now());
        let line = record(
            &acl.plan,
            &v,
            &r,
            "app/alb/1",
            "Root=1-x",
            SystemTime::now(),
        );
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
            let line = record(&acl.plan, &v, &r, "app/alb/1", "x", SystemTime::now());
            let j: serde_json::Value = serde_json::from_str(&line).unwrap();
            let d = &j["terminatingRuleMatchDetails"][0];
            assert_eq!(d["sensitivityLevel"].as_str(), level, "{line}");
        }
    }
}
