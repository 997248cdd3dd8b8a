//! AWS WAFv2 in templates, both ways: a lab's web ACL as the properties of
//! an `AWS::WAFv2::WebACL` (IP sets as `AWS::WAFv2::IPSet` resources the
//! caller declares), and an `AWS::WAFv2::WebACL` read back into the
//! topology's `[[web_acl]]`, which validation then checks like a TOML one.
//!
//! What the lab cannot evaluate (a geo match, a label match, CAPTCHA, a
//! managed group vpcsim does not have, ...) is never dropped silently: the
//! rule is skipped with a warning that says which and why.

use super::intrinsics::scalar;
use super::template::{Mapping, Value};
use crate::topology::model::{
    WafForwardedIp, WafLogFilter, WafLogFilterRule, WafLogging, WafRedactedField, WafRule,
    WafStatement, WebAcl,
};
use crate::waf::field::Field;
use crate::waf::log::{Condition, Logging};
use crate::waf::rate::RateKey;
use crate::waf::statement::{ForwardedIp, Sensitivity, Statement};
use crate::waf::transform::Transform;
use crate::waf::{Action, Rule, RuleBody, WebAclPlan};
use ipnet::IpNet;
use serde::Serialize;
use std::collections::BTreeMap;

fn s(x: &str) -> Value {
    Value::String(x.into())
}
fn n(x: impl Into<i64>) -> Value {
    Value::Number(x.into().into())
}
fn map(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(s(k), v);
    }
    Value::Mapping(m)
}
fn empty() -> Value {
    Value::Mapping(Mapping::new())
}
fn one(key: &str, v: Value) -> Value {
    map(vec![(key, v)])
}

/// AWS's spelling of a value the lab keeps as an enum (`STARTS_WITH`, `GE`,
/// `NO_MATCH`): the WAF types serialize to exactly that.
fn aws_name<T: Serialize>(x: &T) -> String {
    serde_json::to_value(x)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Declares an IP set (`rule`: the rule it serves, for its name; the
/// addresses, one IP version; `IPV4`/`IPV6`) and returns what references it.
pub type DeclareIpSet<'a> = dyn FnMut(&str, &[IpNet], &str) -> Value + 'a;

/// The properties of the `AWS::WAFv2::WebACL` of `acl`.
pub fn export_web_acl(acl: &WebAclPlan, ip_set: &mut DeclareIpSet) -> Value {
    let mut bodies = Mapping::new();
    let rules = acl
        .rules
        .iter()
        .map(|r| export_rule(r, &mut bodies, ip_set))
        .collect();
    let mut props = vec![
        ("Name", s(&acl.name)),
        ("Scope", s("REGIONAL")),
        (
            "DefaultAction",
            export_action(&acl.default_action, "", &mut bodies),
        ),
        ("Rules", Value::Sequence(rules)),
        ("VisibilityConfig", visibility(&acl.name)),
    ];
    if !bodies.is_empty() {
        props.push(("CustomResponseBodies", Value::Mapping(bodies)));
    }
    map(props)
}

fn visibility(metric: &str) -> Value {
    let metric: String = metric
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    map(vec![
        ("SampledRequestsEnabled", Value::Bool(true)),
        ("CloudWatchMetricsEnabled", Value::Bool(true)),
        ("MetricName", s(&metric)),
    ])
}

/// `{Allow: {}}`, `{Count: {}}`, `{Block: {}}` or a block with its custom
/// response, whose body goes to the web ACL's `CustomResponseBodies`.
fn export_action(a: &Action, rule: &str, bodies: &mut Mapping) -> Value {
    match a {
        Action::Allow => one("Allow", empty()),
        Action::Count => one("Count", empty()),
        Action::Block {
            status: 403,
            body: None,
        } => one("Block", empty()),
        Action::Block { status, body } => {
            let mut response = vec![("ResponseCode", n(*status))];
            if let Some(b) = body {
                let key = format!(
                    "{}-body",
                    rule.replace(
                        |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                        "-"
                    )
                );
                bodies.insert(
                    s(&key),
                    map(vec![("ContentType", s("TEXT_PLAIN")), ("Content", s(b))]),
                );
                response.push(("CustomResponseBodyKey", s(&key)));
            }
            one("Block", one("CustomResponse", map(response)))
        }
    }
}

fn export_rule(r: &Rule, bodies: &mut Mapping, ip_set: &mut DeclareIpSet) -> Value {
    let mut m = vec![("Name", s(&r.name)), ("Priority", n(r.priority))];
    match &r.body {
        RuleBody::Regular { statement, action } => {
            m.push(("Action", export_action(action, &r.name, bodies)));
            m.push(("Statement", export_statement(statement, &r.name, ip_set)));
        }
        RuleBody::RateBased {
            limit,
            window_s,
            key,
            scope_down,
            action,
        } => {
            m.push(("Action", export_action(action, &r.name, bodies)));
            let mut rate = vec![
                ("Limit", n(*limit as i64)),
                ("EvaluationWindowSec", n(*window_s as i64)),
                ("AggregateKeyType", s(key.log_name())),
            ];
            if let RateKey::ForwardedIp {
                header,
                fallback_match,
            } = key
            {
                rate.push((
                    "ForwardedIPConfig",
                    map(vec![
                        ("HeaderName", s(header)),
                        ("FallbackBehavior", s(fallback(*fallback_match))),
                    ]),
                ));
            }
            if let Some(sd) = scope_down {
                rate.push(("ScopeDownStatement", export_statement(sd, &r.name, ip_set)));
            }
            m.push(("Statement", one("RateBasedStatement", map(rate))));
        }
        RuleBody::Managed {
            group,
            override_count,
            excluded,
            overrides,
        } => {
            m.push((
                "OverrideAction",
                one(if *override_count { "Count" } else { "None" }, empty()),
            ));
            let mut g = vec![("VendorName", s("AWS")), ("Name", s(group.name()))];
            if !excluded.is_empty() {
                g.push((
                    "ExcludedRules",
                    Value::Sequence(excluded.iter().map(|x| one("Name", s(x))).collect()),
                ));
            }
            if !overrides.is_empty() {
                let o = overrides
                    .iter()
                    .map(|(name, a)| {
                        map(vec![
                            ("Name", s(name)),
                            ("ActionToUse", export_action(a, name, bodies)),
                        ])
                    })
                    .collect();
                g.push(("RuleActionOverrides", Value::Sequence(o)));
            }
            m.push(("Statement", one("ManagedRuleGroupStatement", map(g))));
        }
    }
    m.push(("VisibilityConfig", visibility(&r.name)));
    map(m)
}

fn fallback(matches: bool) -> &'static str {
    if matches {
        "MATCH"
    } else {
        "NO_MATCH"
    }
}

fn export_statement(st: &Statement, rule: &str, ip_set: &mut DeclareIpSet) -> Value {
    let inspect = |field: &Field, transforms: &[Transform], mut extra: Vec<(&str, Value)>| {
        extra.push(("FieldToMatch", field_to_match(field)));
        extra.push(("TextTransformations", text_transformations(transforms)));
        map(extra)
    };
    let many = |v: &[Statement], ip_set: &mut DeclareIpSet| {
        one(
            "Statements",
            Value::Sequence(
                v.iter()
                    .map(|x| export_statement(x, rule, ip_set))
                    .collect(),
            ),
        )
    };
    match st {
        Statement::ByteMatch {
            field,
            positional,
            value,
            transforms,
        } => one(
            "ByteMatchStatement",
            inspect(
                field,
                transforms,
                vec![
                    ("SearchString", s(value)),
                    ("PositionalConstraint", s(&aws_name(positional))),
                ],
            ),
        ),
        Statement::RegexMatch {
            field,
            pattern,
            transforms,
        } => one(
            "RegexMatchStatement",
            inspect(
                field,
                transforms,
                vec![("RegexString", s(pattern.as_str()))],
            ),
        ),
        Statement::SqliMatch {
            field,
            transforms,
            sensitivity,
        } => {
            // LOW is AWS's default: written only when HIGH.
            let level = match sensitivity {
                Sensitivity::Low => vec![],
                Sensitivity::High => vec![("SensitivityLevel", s("HIGH"))],
            };
            one("SqliMatchStatement", inspect(field, transforms, level))
        }
        Statement::XssMatch { field, transforms } => {
            one("XssMatchStatement", inspect(field, transforms, vec![]))
        }
        Statement::SizeConstraint {
            field,
            comparison,
            size,
            transforms,
        } => one(
            "SizeConstraintStatement",
            inspect(
                field,
                transforms,
                vec![
                    ("ComparisonOperator", s(&aws_name(comparison))),
                    ("Size", n(*size as i64)),
                ],
            ),
        ),
        Statement::IpSet {
            addresses,
            forwarded,
        } => {
            // An AWS IP set holds one IP version: a mixed lab set is two, ORed.
            let (v4, v6): (Vec<IpNet>, Vec<IpNet>) =
                addresses.iter().partition(|a| matches!(a, IpNet::V4(_)));
            let mut refs: Vec<Value> = [(v4, "IPV4"), (v6, "IPV6")]
                .into_iter()
                .filter(|(a, _)| !a.is_empty())
                .map(|(a, version)| {
                    let mut r = vec![("Arn", ip_set(rule, &a, version))];
                    if let Some(f) = forwarded {
                        r.push(("IPSetForwardedIPConfig", forwarded_config(f)));
                    }
                    one("IPSetReferenceStatement", map(r))
                })
                .collect();
            if refs.len() == 1 {
                refs.remove(0)
            } else {
                one("OrStatement", one("Statements", Value::Sequence(refs)))
            }
        }
        Statement::And { statements } => one("AndStatement", many(statements, ip_set)),
        Statement::Or { statements } => one("OrStatement", many(statements, ip_set)),
        Statement::Not { statement } => one(
            "NotStatement",
            one("Statement", export_statement(statement, rule, ip_set)),
        ),
    }
}

fn forwarded_config(f: &ForwardedIp) -> Value {
    map(vec![
        ("HeaderName", s(&f.header)),
        ("FallbackBehavior", s(fallback(f.fallback_match))),
        ("Position", s(&aws_name(&f.position))),
    ])
}

fn field_to_match(f: &Field) -> Value {
    let all = || one("All", empty());
    match f {
        Field::Method => one("Method", empty()),
        Field::UriPath => one("UriPath", empty()),
        Field::QueryString => one("QueryString", empty()),
        Field::QueryArg { name } => one("SingleQueryArgument", one("Name", s(name))),
        Field::AllQueryArgs => one("AllQueryArguments", empty()),
        Field::Header { name } => one("SingleHeader", one("Name", s(name))),
        Field::AllHeaders { scope } => one(
            "Headers",
            map(vec![
                ("MatchPattern", all()),
                ("MatchScope", s(&aws_name(scope))),
                ("OversizeHandling", s("CONTINUE")),
            ]),
        ),
        Field::Cookies { scope } => one(
            "Cookies",
            map(vec![
                ("MatchPattern", all()),
                ("MatchScope", s(&aws_name(scope))),
                ("OversizeHandling", s("CONTINUE")),
            ]),
        ),
        Field::Body { oversize } => one("Body", one("OversizeHandling", s(&aws_name(oversize)))),
        Field::JsonBody {
            scope,
            oversize,
            invalid,
        } => one(
            "JsonBody",
            map(vec![
                ("MatchPattern", all()),
                ("MatchScope", s(&aws_name(scope))),
                ("InvalidFallbackBehavior", s(&aws_name(invalid))),
                ("OversizeHandling", s(&aws_name(oversize))),
            ]),
        ),
    }
}

/// AWS requires at least one transformation: none is `NONE`.
fn text_transformations(t: &[Transform]) -> Value {
    let list: Vec<Value> = if t.is_empty() {
        vec![map(vec![("Priority", n(0)), ("Type", s("NONE"))])]
    } else {
        t.iter()
            .enumerate()
            .map(|(i, x)| map(vec![("Priority", n(i as i64)), ("Type", s(x.name()))]))
            .collect()
    };
    Value::Sequence(list)
}

/// A set a rule references by ARN (`AWS::WAFv2::IPSet`, `RegexPatternSet`).
pub enum Set {
    Ip(Vec<String>),
    Regex(Vec<String>),
}

/// A problem that stops the whole web ACL: (property, message, fix).
pub type AclError = (String, String, String);

/// An `AWS::WAFv2::WebACL`'s properties -> the topology's `[[web_acl]]`
/// (without load balancers: associations name them) and the warnings for
/// the rules skipped. `set` finds an IP or regex pattern set by its ARN.
pub fn import_web_acl(
    name: &str,
    props: &Value,
    set: &dyn Fn(&str) -> Option<Set>,
) -> Result<(WebAcl, Vec<String>), AclError> {
    let default_action = match props.get("DefaultAction").and_then(|a| a.as_mapping()) {
        Some(a) if a.contains_key("Allow") => "allow",
        Some(a) if a.contains_key("Block") => "block",
        _ => {
            return Err((
                "DefaultAction".into(),
                "the web ACL needs a default action".into(),
                "write DefaultAction: {Allow: {}} or {Block: {}}".into(),
            ))
        }
    };
    let mut warnings = vec![];
    if props
        .get("DefaultAction")
        .and_then(|a| a.get("Block"))
        .and_then(|b| b.get("CustomResponse"))
        .is_some()
    {
        warnings.push("the default action's custom response is not emulated: a plain 403".into());
    }
    if let Some(scope) = props.get("Scope").and_then(scalar) {
        if scope != "REGIONAL" {
            return Err((
                "Scope".into(),
                format!("scope {scope}: a lab's web ACLs protect load balancers"),
                "use Scope: REGIONAL (CLOUDFRONT web ACLs protect distributions)".into(),
            ));
        }
    }
    let bodies = props.get("CustomResponseBodies");
    let mut rules = vec![];
    let list = match props.get("Rules") {
        None => &vec![],
        Some(Value::Sequence(r)) => r,
        Some(_) => {
            return Err((
                "Rules".into(),
                "Rules is not a list".into(),
                "write Rules as a list of rules".into(),
            ))
        }
    };
    for (i, r) in list.iter().enumerate() {
        let rule_name = r.get("Name").and_then(scalar);
        let Some(rule_name) = rule_name else {
            return Err((
                format!("Rules[{i}].Name"),
                "the rule has no Name".into(),
                "give every rule a Name".into(),
            ));
        };
        match import_rule(&rule_name, r, bodies, set) {
            Ok((rule, notes)) => {
                warnings.extend(
                    notes
                        .into_iter()
                        .map(|w| format!("rule `{rule_name}`: {w}")),
                );
                rules.push(rule);
            }
            Err(why) => warnings.push(format!(
                "rule `{rule_name}` skipped: {why}; the lab evaluates the web ACL without it"
            )),
        }
    }
    Ok((
        WebAcl {
            name: name.to_string(),
            default_action: default_action.into(),
            load_balancers: vec![],
            rules,
            // An AWS::WAFv2::LoggingConfiguration of the stacks sets it.
            logging: None,
        },
        warnings,
    ))
}

fn get_str(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(scalar)
}

/// The only key of `{Key: body}`.
fn only(v: &Value) -> Option<(String, &Value)> {
    let m = v.as_mapping()?;
    match m.iter().collect::<Vec<_>>().as_slice() {
        [(k, body)] => Some((k.as_str()?.to_string(), *body)),
        _ => None,
    }
}

/// (action, block status, block body) of `{Allow: {}}`, ...
fn import_action(
    a: &Value,
    bodies: Option<&Value>,
) -> Result<(String, Option<i64>, Option<String>), String> {
    let (kind, body) =
        only(a).ok_or("an action is one of {Allow: {}}, {Block: {}}, {Count: {}}")?;
    match kind.as_str() {
        "Allow" => Ok(("allow".into(), None, None)),
        "Count" => Ok(("count".into(), None, None)),
        "Block" => {
            let Some(r) = body.get("CustomResponse") else {
                return Ok(("block".into(), None, None));
            };
            let status = get_str(r, "ResponseCode").and_then(|c| c.parse().ok());
            let text = match get_str(r, "CustomResponseBodyKey") {
                Some(k) => Some(
                    bodies
                        .and_then(|b| b.get(k.as_str()))
                        .and_then(|b| get_str(b, "Content"))
                        .ok_or(format!(
                            "custom response body `{k}` is not in CustomResponseBodies"
                        ))?,
                ),
                None => None,
            };
            Ok(("block".into(), status, text))
        }
        other => Err(format!(
            "action {other} is not emulated (Allow, Block and Count are)"
        )),
    }
}

fn import_rule(
    name: &str,
    r: &Value,
    bodies: Option<&Value>,
    set: &dyn Fn(&str) -> Option<Set>,
) -> Result<(WafRule, Vec<String>), String> {
    let mut notes = vec![];
    let mut rule = WafRule {
        name: name.to_string(),
        priority: get_str(r, "Priority")
            .and_then(|p| p.parse().ok())
            .ok_or("no Priority")?,
        ..WafRule::default()
    };
    if r.get("RuleLabels").is_some() {
        notes.push(
            "RuleLabels are not added (the lab's label matching covers managed groups only)".into(),
        );
    }
    let (kind, body) = r
        .get("Statement")
        .and_then(only)
        .ok_or("its Statement is not one statement")?;
    if kind == "ManagedRuleGroupStatement" {
        if get_str(body, "VendorName").as_deref() != Some("AWS") {
            return Err("only AWS's managed rule groups are emulated".into());
        }
        for unsupported in ["ScopeDownStatement", "ManagedRuleGroupConfigs"] {
            if body.get(unsupported).is_some() {
                return Err(format!("{unsupported} of a managed group is not emulated"));
            }
        }
        rule.managed = get_str(body, "Name");
        rule.override_action = match r.get("OverrideAction").and_then(only) {
            Some((k, _)) if k == "Count" => Some("count".into()),
            _ => None,
        };
        if let Some(Value::Sequence(x)) = body.get("ExcludedRules") {
            rule.excluded = x.iter().filter_map(|e| get_str(e, "Name")).collect();
        }
        if let Some(Value::Sequence(x)) = body.get("RuleActionOverrides") {
            for o in x {
                let rn = get_str(o, "Name").ok_or("a rule action override has no Name")?;
                let (a, ..) = import_action(o.get("ActionToUse").unwrap_or(&Value::Null), None)?;
                rule.rule_action_overrides.insert(rn, a);
            }
        }
        return Ok((rule, notes));
    }
    let (action, status, text) = import_action(r.get("Action").ok_or("no Action")?, bodies)?;
    rule.action = Some(action);
    rule.block_status = status;
    rule.block_body = text;
    if kind == "RateBasedStatement" {
        rule.rate_limit = Some(
            get_str(body, "Limit")
                .and_then(|l| l.parse().ok())
                .ok_or("no Limit")?,
        );
        rule.window = get_str(body, "EvaluationWindowSec").and_then(|w| w.parse().ok());
        rule.aggregate = match get_str(body, "AggregateKeyType").as_deref() {
            None | Some("IP") => None,
            Some("FORWARDED_IP") => Some("forwarded_ip".into()),
            Some("CONSTANT") => Some("constant".into()),
            Some(other) => {
                return Err(format!(
                    "aggregate key {other} is not emulated (IP, FORWARDED_IP and CONSTANT are)"
                ))
            }
        };
        if let Some(f) = body.get("ForwardedIPConfig") {
            rule.forwarded_ip = Some(import_forwarded(f, false));
        }
        if let Some(sd) = body.get("ScopeDownStatement") {
            rule.statement = Some(import_statement(sd, set)?);
        }
        return Ok((rule, notes));
    }
    rule.statement = Some(import_statement(r.get("Statement").expect("checked"), set)?);
    Ok((rule, notes))
}

fn import_forwarded(f: &Value, position: bool) -> WafForwardedIp {
    WafForwardedIp {
        header: get_str(f, "HeaderName").unwrap_or_else(|| "X-Forwarded-For".into()),
        position: if position {
            get_str(f, "Position")
        } else {
            None
        },
        fallback: get_str(f, "FallbackBehavior"),
    }
}

fn import_statement(v: &Value, set: &dyn Fn(&str) -> Option<Set>) -> Result<WafStatement, String> {
    let (kind, body) = only(v).ok_or("a statement is a map with one statement type")?;
    let mut st = WafStatement::default();
    let list = |key: &str| -> Result<Vec<WafStatement>, String> {
        match body.get(key) {
            Some(Value::Sequence(x)) => x.iter().map(|x| import_statement(x, set)).collect(),
            _ => Err(format!("{kind} has no {key} list")),
        }
    };
    let arn = || get_str(body, "Arn").ok_or(format!("{kind} has no Arn"));
    match kind.as_str() {
        "AndStatement" => st.and = Some(list("Statements")?),
        "OrStatement" => {
            let each = list("Statements")?;
            // The IPv4 and IPv6 halves of one lab IP set (see the export).
            let halves = each.iter().all(|x| {
                x.ip_set.is_some() && x.field.is_none() && x.forwarded_ip == each[0].forwarded_ip
            });
            if halves {
                st.forwarded_ip = each[0].forwarded_ip.clone();
                st.ip_set = Some(
                    each.into_iter()
                        .flat_map(|x| x.ip_set.unwrap_or_default())
                        .collect(),
                );
            } else {
                st.or = Some(each);
            }
        }
        "NotStatement" => {
            st.not = Some(Box::new(import_statement(
                body.get("Statement")
                    .ok_or("NotStatement has no Statement")?,
                set,
            )?))
        }
        "IPSetReferenceStatement" => {
            let a = arn()?;
            let Some(Set::Ip(addresses)) = set(&a) else {
                return Err(format!("`{a}` is not an AWS::WAFv2::IPSet of these stacks"));
            };
            st.ip_set = Some(addresses);
            st.forwarded_ip = body
                .get("IPSetForwardedIPConfig")
                .map(|f| import_forwarded(f, true));
        }
        "RegexPatternSetReferenceStatement" => {
            let a = arn()?;
            let Some(Set::Regex(patterns)) = set(&a) else {
                return Err(format!(
                    "`{a}` is not an AWS::WAFv2::RegexPatternSet of these stacks"
                ));
            };
            // A pattern set matches when any of its expressions does.
            let each: Vec<WafStatement> = patterns
                .into_iter()
                .map(|p| {
                    let mut x = WafStatement {
                        regex: Some(p),
                        ..WafStatement::default()
                    };
                    inspected(body, &mut x).map(|_| x)
                })
                .collect::<Result<_, _>>()?;
            match <[WafStatement; 1]>::try_from(each) {
                Ok([single]) => return Ok(single),
                Err(each) => st.or = Some(each),
            }
        }
        other => {
            match other {
                "ByteMatchStatement" => {
                    st.positional = get_str(body, "PositionalConstraint");
                    st.value = match (
                        get_str(body, "SearchString"),
                        get_str(body, "SearchStringBase64"),
                    ) {
                        (Some(x), _) => Some(x),
                        (None, Some(b)) => {
                            use base64::Engine;
                            let bytes = base64::engine::general_purpose::STANDARD
                                .decode(b.trim())
                                .map_err(|_| "SearchStringBase64 is not base64")?;
                            Some(
                                String::from_utf8(bytes)
                                    .map_err(|_| "SearchStringBase64 is not text")?,
                            )
                        }
                        (None, None) => None,
                    };
                }
                "RegexMatchStatement" => st.regex = get_str(body, "RegexString"),
                "SqliMatchStatement" => {
                    st.detect = Some("sqli".into());
                    st.sensitivity = get_str(body, "SensitivityLevel");
                }
                "XssMatchStatement" => st.detect = Some("xss".into()),
                "SizeConstraintStatement" => {
                    st.comparison = get_str(body, "ComparisonOperator");
                    st.size = get_str(body, "Size").and_then(|x| x.parse().ok());
                }
                other => return Err(format!("{other} is not emulated")),
            }
            inspected(body, &mut st)?;
        }
    }
    Ok(st)
}

/// `FieldToMatch` and `TextTransformations` of an inspecting statement.
fn inspected(body: &Value, st: &mut WafStatement) -> Result<(), String> {
    let (field, f) = body
        .get("FieldToMatch")
        .and_then(only)
        .ok_or("no FieldToMatch (one component)")?;
    let all_pattern = |f: &Value| match f.get("MatchPattern").and_then(only) {
        Some((k, _)) if k == "All" => Ok(()),
        _ => Err(format!(
            "{field}: only MatchPattern {{All: {{}}}} is emulated"
        )),
    };
    st.field = Some(
        match field.as_str() {
            "Method" => "method",
            "UriPath" => "uri_path",
            "QueryString" => "query_string",
            "SingleQueryArgument" => {
                st.name = get_str(f, "Name");
                "query_arg"
            }
            "AllQueryArguments" => "all_query_args",
            "SingleHeader" => {
                st.name = get_str(f, "Name");
                "header"
            }
            "Headers" => {
                all_pattern(f)?;
                st.scope = get_str(f, "MatchScope");
                "all_headers"
            }
            "Cookies" => {
                all_pattern(f)?;
                st.scope = get_str(f, "MatchScope");
                "cookies"
            }
            "Body" => {
                st.oversize = get_str(f, "OversizeHandling");
                "body"
            }
            "JsonBody" => {
                all_pattern(f)?;
                st.scope = get_str(f, "MatchScope");
                st.oversize = get_str(f, "OversizeHandling");
                st.invalid_json = get_str(f, "InvalidFallbackBehavior");
                "json_body"
            }
            other => return Err(format!("field {other} is not emulated")),
        }
        .into(),
    );
    let mut t: BTreeMap<i64, String> = BTreeMap::new();
    if let Some(Value::Sequence(list)) = body.get("TextTransformations") {
        for x in list {
            let ty = get_str(x, "Type").unwrap_or_default();
            if Transform::parse(&ty).is_none() {
                return Err(format!("text transformation {ty} is not emulated"));
            }
            t.insert(
                get_str(x, "Priority")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0),
                ty,
            );
        }
    }
    st.transforms = t.into_values().filter(|x| x != "NONE").collect();
    Ok(())
}

/// The properties of an `AWS::WAFv2::LoggingConfiguration` but for
/// `ResourceArn` and `LogDestinationConfigs`, which the caller adds.
pub fn export_logging(l: &Logging) -> Vec<(&'static str, Value)> {
    let behavior = |keep: bool| s(if keep { "KEEP" } else { "DROP" });
    let mut props = vec![];
    if let Some(f) = &l.filter {
        let filters = f
            .filters
            .iter()
            .map(|r| {
                let conditions = r
                    .conditions
                    .iter()
                    .map(|c| match c {
                        Condition::Action(a) => one("ActionCondition", one("Action", s(a.name()))),
                        Condition::Label(l) => one("LabelNameCondition", one("LabelName", s(l))),
                    })
                    .collect();
                map(vec![
                    ("Behavior", behavior(r.keep)),
                    (
                        "Requirement",
                        s(if r.meets_all {
                            "MEETS_ALL"
                        } else {
                            "MEETS_ANY"
                        }),
                    ),
                    ("Conditions", Value::Sequence(conditions)),
                ])
            })
            .collect();
        props.push((
            "LoggingFilter",
            map(vec![
                ("DefaultBehavior", behavior(f.default_keep)),
                ("Filters", Value::Sequence(filters)),
            ]),
        ));
    }
    if !l.redacted.is_empty() {
        let fields = l
            .redacted
            .iter()
            .filter_map(|f| {
                Some(match f {
                    Field::Method => one("Method", empty()),
                    Field::UriPath => one("UriPath", empty()),
                    Field::QueryString => one("QueryString", empty()),
                    Field::Header { name } => one("SingleHeader", one("Name", s(name))),
                    // Validation lets no other component through.
                    _ => return None,
                })
            })
            .collect();
        props.push(("RedactedFields", Value::Sequence(fields)));
    }
    props
}

/// An `AWS::WAFv2::LoggingConfiguration`'s filter and redacted fields ->
/// the topology's `logging` of a web ACL (validation then checks values).
pub fn import_logging(props: &Value) -> Result<WafLogging, AclError> {
    let lower = |v: Option<&Value>| v.and_then(scalar).unwrap_or_default().to_ascii_lowercase();
    let filter = match props.get("LoggingFilter") {
        None => None,
        Some(f) => {
            let Some(Value::Sequence(list)) = f.get("Filters") else {
                return Err((
                    "LoggingFilter.Filters".into(),
                    "the logging filter has no Filters list".into(),
                    "write Filters: [{Behavior, Requirement, Conditions}, …]".into(),
                ));
            };
            let mut filters = vec![];
            for (i, x) in list.iter().enumerate() {
                let mut conditions = vec![];
                let cs = match x.get("Conditions") {
                    Some(Value::Sequence(cs)) => cs.as_slice(),
                    _ => &[],
                };
                for (j, c) in cs.iter().enumerate() {
                    let action = c
                        .get("ActionCondition")
                        .and_then(|a| a.get("Action"))
                        .and_then(scalar);
                    let label = c
                        .get("LabelNameCondition")
                        .and_then(|a| a.get("LabelName"))
                        .and_then(scalar);
                    match (action, label) {
                        (Some(a), None) if !a.contains(':') => conditions.push(a),
                        (None, Some(l)) => conditions.push(l),
                        _ => {
                            return Err((
                                format!("LoggingFilter.Filters[{i}].Conditions[{j}]"),
                                "a condition is one ActionCondition or one LabelNameCondition"
                                    .into(),
                                "write {ActionCondition: {Action: BLOCK}} or {LabelNameCondition: {LabelName: awswaf:…}}".into(),
                            ))
                        }
                    }
                }
                filters.push(WafLogFilterRule {
                    behavior: lower(x.get("Behavior")),
                    requirement: lower(x.get("Requirement")),
                    conditions,
                });
            }
            Some(WafLogFilter {
                default: lower(f.get("DefaultBehavior")),
                filters: Some(filters),
                ..Default::default()
            })
        }
    };
    let mut redacted_fields = vec![];
    if let Some(Value::Sequence(list)) = props.get("RedactedFields") {
        for (i, f) in list.iter().enumerate() {
            let field = |n: &str| WafRedactedField {
                field: n.into(),
                name: None,
            };
            redacted_fields.push(if f.get("Method").is_some() {
                field("method")
            } else if f.get("UriPath").is_some() {
                field("uri_path")
            } else if f.get("QueryString").is_some() {
                field("query_string")
            } else if let Some(h) = f.get("SingleHeader") {
                WafRedactedField {
                    field: "header".into(),
                    name: h.get("Name").and_then(scalar),
                }
            } else {
                return Err((
                    format!("RedactedFields[{i}]"),
                    "AWS redacts only Method, UriPath, QueryString and SingleHeader".into(),
                    "write one of them, e.g. {SingleHeader: {Name: authorization}}".into(),
                ));
            });
        }
    }
    Ok(WafLogging {
        filter,
        redacted_fields,
    })
}

#[cfg(test)]
mod tests {
    use crate::cloudformation::{export, stacks};
    use std::path::Path;

    /// A web ACL with every kind of rule, statement and field, exported and
    /// read back, is the same plan: same rules, same verdicts.
    #[test]
    fn every_rule_round_trips() {
        let toml = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/waf-round-trip.toml");
        let lab = crate::topology::load(&toml).expect("the test topology is valid");
        let dir = std::env::temp_dir().join(format!("vpcsim-wafv2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("waf-rt.yaml");
        std::fs::write(&file, export::export(&lab).render(false)).unwrap();
        let opts = stacks::Options {
            name: Some(lab.name.clone()),
            region: lab.region.clone(),
            params: vec![],
            runs: vec![],
        };
        let imported = stacks::load(&[file], &opts).unwrap_or_else(|e| panic!("{e}"));
        assert!(imported.warnings.is_empty(), "{:?}", imported.warnings);
        let back = crate::topology::validate::validate(&imported.topology, &dir)
            .unwrap_or_else(|d| panic!("{d:?}"));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(back.web_acls.len(), 1);
        for (a, b) in lab.web_acls[0].rules.iter().zip(&back.web_acls[0].rules) {
            assert_eq!(a, b, "rule {}", a.name);
        }
        let logging = lab.web_acls[0].logging.as_ref();
        assert!(logging.is_some_and(|l| l.filter.is_some() && l.redacted.len() == 2));
        assert_eq!(back.web_acls[0].logging.as_ref(), logging);
        assert_eq!(back.web_acls, lab.web_acls);
    }
}
