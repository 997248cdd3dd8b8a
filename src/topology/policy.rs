//! S3 bucket policies (IAM JSON) evaluated as AWS does, for the subset labs
//! use: Allow/Deny statements (an explicit Deny wins, no match = implicit
//! deny), Principal `*`, Action and Resource with `*`/`?` wildcards, and the
//! condition operators StringEquals, StringNotEquals, StringLike,
//! StringNotLike, IpAddress, NotIpAddress on aws:SourceVpce, aws:SourceVpc,
//! aws:SourceIp and aws:VpcSourceIp.
//!
//! The lab's requester (any access key) has no IAM permissions of its own:
//! only the bucket policy grants access, which is what makes a policy like
//! the report's ("GetObject only through vpce-…") deny everything else.

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

#[derive(Debug, Clone)]
pub struct Policy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
struct Statement {
    sid: Option<String>,
    allow: bool,
    actions: Vec<String>,
    resources: Vec<String>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
struct Condition {
    op: Operator,
    /// Lowercase key (`aws:sourcevpce`): keys are case-insensitive.
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operator {
    StringEquals,
    StringNotEquals,
    StringLike,
    StringNotLike,
    IpAddress,
    NotIpAddress,
}

const KEYS: [&str; 4] = [
    "aws:SourceVpce",
    "aws:SourceVpc",
    "aws:SourceIp",
    "aws:VpcSourceIp",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawPolicy {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    id: Option<String>,
    statement: OneOrMany<RawStatement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawStatement {
    sid: Option<String>,
    effect: String,
    principal: Option<Value>,
    action: Option<OneOrMany<String>>,
    resource: Option<OneOrMany<String>>,
    #[serde(default)]
    condition: BTreeMap<String, BTreeMap<String, OneOrMany<String>>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(x) => vec![x],
            OneOrMany::Many(v) => v,
        }
    }
}

/// What a request brings to the evaluation.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// `s3:GetObject`
    pub action: String,
    /// `arn:aws:s3:::bucket/key` or `arn:aws:s3:::bucket`
    pub resource: String,
    /// Condition keys present in the request, by AWS name.
    pub keys: BTreeMap<&'static str, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the statement with this Sid (or index).
    Allow(String),
    /// Explicitly denied by this statement.
    Deny(String),
    /// No statement allows it.
    ImplicitDeny,
}

impl Policy {
    /// Parses a bucket policy for `bucket`; errors name the statement and
    /// element, as the S3 console's "MalformedPolicy" does.
    pub fn parse(text: &str, bucket: &str) -> Result<Policy, String> {
        let raw: RawPolicy =
            serde_json::from_str(text).map_err(|e| format!("invalid policy JSON: {e}"))?;
        if let Some(v) = &raw.version {
            if v != "2012-10-17" && v != "2008-10-17" {
                return Err(format!(
                    "Version `{v}` is not a policy language version (use \"2012-10-17\")"
                ));
            }
        }
        let _ = raw.id;
        let mut statements = Vec::new();
        for (i, s) in raw.statement.into_vec().into_iter().enumerate() {
            let at = |what: &str| format!("Statement[{i}]: {what}");
            let allow = match s.effect.as_str() {
                "Allow" => true,
                "Deny" => false,
                e => return Err(at(&format!("Effect `{e}` must be \"Allow\" or \"Deny\""))),
            };
            match &s.principal {
                Some(p) if principal_is_everyone(p) => {}
                Some(p) => {
                    return Err(at(&format!(
                        "Principal {p} is not supported: vpcsim has one requester, use \"*\""
                    )))
                }
                None => return Err(at("a bucket policy statement needs a Principal")),
            }
            let actions = s.action.ok_or_else(|| at("missing Action"))?.into_vec();
            for a in &actions {
                if !(a == "*" || a.to_ascii_lowercase().starts_with("s3:")) {
                    return Err(at(&format!("Action `{a}` is not an S3 action")));
                }
            }
            let resources = s.resource.ok_or_else(|| at("missing Resource"))?.into_vec();
            for r in &resources {
                let on_bucket = r
                    .strip_prefix("arn:aws:s3:::")
                    .is_some_and(|rest| glob(rest.split('/').next().unwrap_or(""), bucket, false));
                if !on_bucket {
                    return Err(at(&format!("Resource `{r}` is not this bucket (arn:aws:s3:::{bucket} or arn:aws:s3:::{bucket}/…)")));
                }
            }
            let mut conditions = Vec::new();
            for (op, block) in s.condition {
                let op = match op.as_str() {
                    "StringEquals" => Operator::StringEquals,
                    "StringNotEquals" => Operator::StringNotEquals,
                    "StringLike" => Operator::StringLike,
                    "StringNotLike" => Operator::StringNotLike,
                    "IpAddress" => Operator::IpAddress,
                    "NotIpAddress" => Operator::NotIpAddress,
                    other => {
                        return Err(at(&format!(
                            "condition operator `{other}` is not supported"
                        )))
                    }
                };
                for (key, values) in block {
                    if !KEYS.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
                        return Err(at(&format!(
                            "condition key `{key}` is not supported (supported: {})",
                            KEYS.join(", ")
                        )));
                    }
                    let values = values.into_vec();
                    if matches!(op, Operator::IpAddress | Operator::NotIpAddress) {
                        for v in &values {
                            parse_net(v).ok_or_else(|| {
                                at(&format!("`{v}` is not an IPv4 address or CIDR"))
                            })?;
                        }
                    }
                    conditions.push(Condition {
                        op,
                        key: key.to_ascii_lowercase(),
                        values,
                    });
                }
            }
            statements.push(Statement {
                sid: s.sid,
                allow,
                actions,
                resources,
                conditions,
            });
        }
        Ok(Policy { statements })
    }

    pub fn evaluate(&self, req: &RequestContext) -> Decision {
        let mut allowed = None;
        for (i, s) in self.statements.iter().enumerate() {
            if !s.applies(req) {
                continue;
            }
            let name = s.sid.clone().unwrap_or_else(|| format!("Statement[{i}]"));
            if !s.allow {
                return Decision::Deny(name);
            }
            allowed.get_or_insert(name);
        }
        allowed.map_or(Decision::ImplicitDeny, Decision::Allow)
    }
}

fn principal_is_everyone(p: &Value) -> bool {
    match p {
        Value::String(s) => s == "*",
        Value::Object(m) => m.len() == 1 && m.get("AWS").is_some_and(principal_is_everyone),
        Value::Array(v) => v.len() == 1 && principal_is_everyone(&v[0]),
        _ => false,
    }
}

impl Statement {
    fn applies(&self, req: &RequestContext) -> bool {
        self.actions.iter().any(|a| glob(a, &req.action, true))
            && self.resources.iter().any(|r| glob(r, &req.resource, false))
            && self.conditions.iter().all(|c| c.holds(req))
    }
}

impl Condition {
    fn holds(&self, req: &RequestContext) -> bool {
        let present = req
            .keys
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&self.key))
            .map(|(_, v)| v.as_str());
        // A key missing from the request matches no value: positive
        // operators fail, negated ones hold (AWS's rule).
        let Some(v) = present else {
            return matches!(
                self.op,
                Operator::StringNotEquals | Operator::StringNotLike | Operator::NotIpAddress
            );
        };
        let any = |f: &dyn Fn(&str) -> bool| self.values.iter().any(|x| f(x));
        match self.op {
            Operator::StringEquals => any(&|x| x == v),
            Operator::StringNotEquals => !any(&|x| x == v),
            Operator::StringLike => any(&|x| glob(x, v, false)),
            Operator::StringNotLike => !any(&|x| glob(x, v, false)),
            Operator::IpAddress | Operator::NotIpAddress => {
                let hit = v
                    .parse::<Ipv4Addr>()
                    .is_ok_and(|ip| any(&|x| parse_net(x).is_some_and(|n| n.contains(&ip))));
                hit == (self.op == Operator::IpAddress)
            }
        }
    }
}

fn parse_net(s: &str) -> Option<Ipv4Net> {
    s.parse::<Ipv4Net>()
        .ok()
        .or_else(|| s.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))
}

/// IAM wildcard match: `*` any run of characters, `?` one character.
fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let norm = |s: &str| -> Vec<char> {
        if ignore_case {
            s.to_ascii_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, t) = (norm(pattern), norm(text));
    // Iterative matcher with backtracking to the last `*`.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"{
      "Version": "2012-10-17",
      "Statement": [{
        "Sid": "AllowBackendFolderViaVPCE",
        "Effect": "Allow",
        "Principal": "*",
        "Action": ["s3:GetObject"],
        "Resource": "arn:aws:s3:::p4-buquet/backend/*",
        "Condition": { "StringEquals": { "aws:SourceVpce": "vpce-0aa42de173d26c739" } }
      }]
    }"#;

    fn req(action: &str, resource: &str, keys: &[(&'static str, &str)]) -> RequestContext {
        RequestContext {
            action: action.into(),
            resource: resource.into(),
            keys: keys.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }

    #[test]
    fn report_policy_allows_only_through_the_endpoint() {
        let p = Policy::parse(REPORT, "p4-buquet").unwrap();
        let obj = "arn:aws:s3:::p4-buquet/backend/model_v1_prod.py";
        let via = [
            ("aws:SourceVpce", "vpce-0aa42de173d26c739"),
            ("aws:SourceVpc", "vpc-1"),
            ("aws:VpcSourceIp", "10.0.20.16"),
        ];
        assert_eq!(
            p.evaluate(&req("s3:GetObject", obj, &via)),
            Decision::Allow("AllowBackendFolderViaVPCE".into())
        );
        // From the internet / NAT: no endpoint key at all.
        assert_eq!(
            p.evaluate(&req(
                "s3:GetObject",
                obj,
                &[("aws:SourceIp", "198.51.100.20")]
            )),
            Decision::ImplicitDeny
        );
        // Another endpoint, another prefix, another action.
        assert_eq!(
            p.evaluate(&req(
                "s3:GetObject",
                obj,
                &[("aws:SourceVpce", "vpce-1111111111")]
            )),
            Decision::ImplicitDeny
        );
        assert_eq!(
            p.evaluate(&req("s3:GetObject", "arn:aws:s3:::p4-buquet/other", &via)),
            Decision::ImplicitDeny
        );
        assert_eq!(
            p.evaluate(&req("s3:PutObject", obj, &via)),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn explicit_deny_wins_and_negated_operators_hold_on_missing_keys() {
        let p = Policy::parse(
            r#"{"Statement": [
              {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]},
              {"Sid": "OnlyVpce", "Effect": "Deny", "Principal": "*", "Action": "s3:Put*", "Resource": "arn:aws:s3:::b/*",
               "Condition": {"StringNotEquals": {"aws:sourcevpce": ["vpce-11111111", "vpce-22222222"]}}}
            ]}"#,
            "b",
        )
        .unwrap();
        let put = |keys: &[(&'static str, &str)]| {
            p.evaluate(&req("s3:PutObject", "arn:aws:s3:::b/k", keys))
        };
        assert_eq!(
            put(&[("aws:SourceVpce", "vpce-22222222")]),
            Decision::Allow("Statement[0]".into())
        );
        assert_eq!(
            put(&[("aws:SourceVpce", "vpce-33333333")]),
            Decision::Deny("OnlyVpce".into())
        );
        assert_eq!(
            put(&[("aws:SourceIp", "203.0.113.10")]),
            Decision::Deny("OnlyVpce".into())
        );
        // Actions match case-insensitively with wildcards.
        assert_eq!(
            p.evaluate(&req("s3:ListBucket", "arn:aws:s3:::b", &[])),
            Decision::Allow("Statement[0]".into())
        );
    }

    #[test]
    fn ip_conditions_and_string_like() {
        let p = Policy::parse(
            r#"{"Statement": [
              {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*",
               "Condition": {"IpAddress": {"aws:VpcSourceIp": "10.0.20.0/24"}, "StringLike": {"aws:SourceVpc": "vpc-*"}}},
              {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/public/*",
               "Condition": {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}}
            ]}"#,
            "b",
        )
        .unwrap();
        let get = |key: &str, keys: &[(&'static str, &str)]| {
            p.evaluate(&req("s3:GetObject", &format!("arn:aws:s3:::b/{key}"), keys))
        };
        assert!(matches!(
            get(
                "k",
                &[
                    ("aws:VpcSourceIp", "10.0.20.16"),
                    ("aws:SourceVpc", "vpc-0abc")
                ]
            ),
            Decision::Allow(_)
        ));
        assert_eq!(
            get(
                "k",
                &[
                    ("aws:VpcSourceIp", "10.0.40.5"),
                    ("aws:SourceVpc", "vpc-0abc")
                ]
            ),
            Decision::ImplicitDeny
        );
        assert_eq!(
            get("public/x", &[("aws:SourceIp", "203.0.113.10")]),
            Decision::ImplicitDeny
        );
        assert!(matches!(
            get("public/x", &[("aws:SourceIp", "198.51.100.7")]),
            Decision::Allow(_)
        ));
    }

    #[test]
    fn malformed_policies_are_rejected_with_the_element() {
        let bad = |text: &str| Policy::parse(text, "b").unwrap_err();
        assert!(bad(r#"{"Statement": {"Effect": "Permit", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}}"#).contains("Effect"));
        assert!(bad(r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::other/*"}}"#).contains("not this bucket"));
        assert!(bad(r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}}"#).contains("Bool"));
        assert!(bad(r#"{"Statement": {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "s3:*", "Resource": "arn:aws:s3:::b"}}"#).contains("Principal"));
    }

    #[test]
    fn glob_matches_like_iam() {
        assert!(glob("s3:Get*", "s3:GetObject", true));
        assert!(glob("S3:GETOBJECT", "s3:GetObject", true));
        assert!(!glob("arn:aws:s3:::B/*", "arn:aws:s3:::b/k", false));
        assert!(glob("a?c*", "abcdef", false));
        assert!(!glob("a*c", "abd", false));
    }
}
