//! WAF logs: one JSON object per line in AWS WAF's log format
//! (docs.aws.amazon.com/waf/latest/developerguide/logging-fields.html),
//! one file per lab. Request tasks send the finished record to a writer
//! task, off the request path.

use super::field::WafRequest;
use super::statement::MatchDetail;
use super::{Hit, Verdict, WebAclPlan};
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

fn match_details(d: &Option<MatchDetail>) -> Value {
    match d {
        Some(d) if !d.location.is_empty() && d.condition != "IP_SET" => json!([{
            "conditionType": d.condition,
            "location": d.location,
            "matchedFieldName": d.field,
            "matchedData": d.data.split_whitespace().take(10).collect::<Vec<_>>(),
        }]),
        _ => json!([]),
    }
}

fn hit_json(h: &Hit) -> Value {
    json!({
        "ruleId": h.group_rule.as_deref().unwrap_or(&h.rule),
        "action": h.action,
        "ruleMatchDetails": match_details(&h.detail),
    })
}

/// The log record of one request, in AWS's field names.
pub fn record(
    acl: &WebAclPlan,
    v: &Verdict,
    r: &WafRequest,
    lb_id: &str,
    request_id: &str,
    now: SystemTime,
) -> Value {
    let ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64;
    let groups: Vec<Value> = v
        .groups
        .iter()
        .map(|g| {
            json!({
                "ruleGroupId": g.group,
                "terminatingRule": g.terminating.as_ref().map(|h| json!({
                    "ruleId": h.group_rule,
                    "action": "BLOCK",
                    "ruleMatchDetails": match_details(&h.detail),
                })),
                "nonTerminatingMatchingRules": g.non_terminating.iter().map(hit_json).collect::<Vec<_>>(),
                "excludedRules": if g.excluded.is_empty() { Value::Null } else {
                    g.excluded.iter().map(|h| json!({
                        "exclusionType": "EXCLUDED_AS_COUNT",
                        "ruleId": h.group_rule,
                    })).collect::<Vec<_>>().into()
                },
            })
        })
        .collect();
    let custom_status = match &v.action {
        super::Action::Block { status, .. } if *status != 403 => json!(status),
        _ => Value::Null,
    };
    json!({
        "timestamp": ms,
        "formatVersion": 1,
        "webaclId": acl.arn,
        "terminatingRuleId": v.terminating_rule_id(),
        "terminatingRuleType": v.terminating_type,
        "action": v.action.log_name(),
        "terminatingRuleMatchDetails": match_details(&v.terminating.as_ref().and_then(|h| h.detail.clone())),
        "httpSourceName": "ALB",
        "httpSourceId": lb_id,
        "ruleGroupList": groups,
        "rateBasedRuleList": v.rate.iter().map(|x| json!({
            "rateBasedRuleId": x.rule,
            "rateBasedRuleName": x.rule,
            "limitKey": x.limit_key,
            "maxRateAllowed": x.max_rate_allowed,
            "evaluationWindowSec": x.window_s.to_string(),
            "limitValue": x.limit_value,
        })).collect::<Vec<_>>(),
        "nonTerminatingMatchingRules": v.non_terminating.iter().map(|h| json!({
            "ruleId": h.rule,
            "action": h.action,
            "ruleMatchDetails": match_details(&h.detail),
        })).collect::<Vec<_>>(),
        "requestHeadersInserted": Value::Null,
        "responseCodeSent": custom_status,
        "httpRequest": {
            "clientIp": r.client_ip.to_string(),
            "country": "-",
            "headers": r.headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
            "uri": r.uri,
            "args": r.query,
            "httpVersion": r.http_version,
            "httpMethod": r.method,
            "requestId": request_id,
        },
        "labels": v.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
    })
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
            let mut batch = Vec::with_capacity(256);
            let mut out = String::with_capacity(64 * 1024);
            while rx.recv_many(&mut batch, 256).await > 0 {
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

    pub fn send(&self, record: &Value) {
        let _ = self.tx.send(record.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::super::field::tests::request;
    use super::super::managed::ManagedGroup;
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
        let j = record(
            &acl.plan,
            &v,
            &r,
            "app/alb/1",
            "Root=1-x",
            SystemTime::now(),
        );
        assert_eq!(j["action"], "BLOCK");
        assert_eq!(j["terminatingRuleId"], "sqli");
        assert_eq!(j["terminatingRuleType"], "MANAGED_RULE_GROUP");
        assert_eq!(j["httpRequest"]["clientIp"], "203.0.113.10");
        assert_eq!(j["httpRequest"]["args"], "id=1%27%20or%201=1--");
        assert_eq!(j["httpRequest"]["headers"][0]["name"], "Host");
        let g = &j["ruleGroupList"][0];
        assert_eq!(g["ruleGroupId"], "AWS#AWSManagedRulesSQLiRuleSet");
        assert_eq!(g["terminatingRule"]["ruleId"], "SQLi_QUERYARGUMENTS");
        assert_eq!(
            j["terminatingRuleMatchDetails"][0]["conditionType"],
            "SQL_INJECTION"
        );
    }
}
