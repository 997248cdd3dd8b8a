//! `vpcsim waf-logs` (the lab's WAF log records) and `vpcsim waf-explain`
//! (which rule of which web ACL decides one HTTP request, without sending
//! it).

use super::usage;
use crate::topology::plan::Lab;
use crate::waf::field::{WafRequest, BODY_LIMIT};
use crate::waf::{Action, Hit, RuleBody, Verdict, WebAcl};
use anyhow::Context;
use std::fmt::Write as _;
use std::time::Instant;

/// `vpcsim waf-logs [--lab LAB] [--follow]`.
pub fn logs(lab: Option<&str>, follow: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let state = super::resolve_lab(lab)?;
    if state.plan.web_acls.is_empty() {
        return Err(usage(format!(
            "lab `{}` has no web ACL: add a `[[web_acl]]` associated with a load balancer",
            state.plan.name
        )));
    }
    // AWS logs a web ACL only with a logging configuration: say which have
    // none and how to add one.
    let unlogged: Vec<&str> = state
        .plan
        .web_acls
        .iter()
        .filter(|w| w.logging.is_none())
        .map(|w| w.name.as_str())
        .collect();
    if !unlogged.is_empty() {
        // A lab from templates is changed with a template, not a TOML file.
        let how = if state.plan.origins.is_empty() {
            "add `logging = {}` to its [[web_acl]] (every request) or \
             `logging = { filter = { default = \"drop\", keep = [\"BLOCK\", \"COUNT\"] } }` \
             (what the WAF acted on), then `vpcsim apply`"
        } else {
            "add an AWS::WAFv2::LoggingConfiguration (ResourceArn: !GetAtt YourWebAcl.Arn, \
             LogDestinationConfigs: an aws-waf-logs- destination, optionally a LoggingFilter) \
             to its template, then `vpcsim deploy`"
        };
        let msg = format!(
            "web ACL {} of lab `{}` {} no logging configuration, so no WAF log: {how}",
            unlogged
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
            state.plan.name,
            if unlogged.len() == 1 { "has" } else { "have" },
        );
        if unlogged.len() == state.plan.web_acls.len() {
            return Err(usage(msg));
        }
        eprintln!("note: {msg}");
    }
    let mut tail = crate::logfile::Tail::new(&crate::state::waf_log_file(&state.plan.name));
    let stdout = std::io::stdout();
    let mut buf = Vec::new();
    loop {
        tail.read_new(&mut buf)?;
        stdout.lock().write_all(&buf)?;
        buf.clear();
        if !follow || crate::state::LabState::load(&state.plan.name)?.is_none() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// One request to explain, as given on the command line.
pub struct ExplainArgs<'a> {
    pub lab: Option<&'a str>,
    pub web_acl: Option<&'a str>,
    pub method: &'a str,
    pub target: &'a str,
    pub headers: &'a [String],
    pub body: Option<&'a str>,
    pub client: &'a str,
    pub json: bool,
}

/// `vpcsim waf-explain`: returns whether the request would be allowed.
pub fn explain(a: &ExplainArgs) -> anyhow::Result<bool> {
    let plan = super::load_plan(a.lab)?;
    let acl = pick(&plan, a.web_acl)?;
    let req = request(&plan, &acl, a)?;
    let w = WebAcl::new(acl);
    let v = w.evaluate(&req, Instant::now());
    if a.json {
        let out = serde_json::json!({
            "web_acl": w.plan.name,
            "request": { "method": req.method, "uri": req.uri, "args": req.query,
                "headers": req.headers, "client_ip": req.client_ip.to_string() },
            "verdict": v,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", render(&plan, &w, &req, &v));
    }
    Ok(!v.blocked())
}

fn pick(plan: &Lab, name: Option<&str>) -> anyhow::Result<crate::waf::WebAclPlan> {
    let names: Vec<&str> = plan.web_acls.iter().map(|w| w.name.as_str()).collect();
    match (name, plan.web_acls.as_slice()) {
        (_, []) => Err(usage(format!(
            "lab `{}` has no web ACL: add a `[[web_acl]]` to its topology",
            plan.name
        ))),
        (None, [only]) => Ok(only.clone()),
        (None, _) => Err(usage(format!(
            "the lab has several web ACLs ({}): choose one with --web-acl",
            names.join(", ")
        ))),
        (Some(n), all) => all.iter().find(|w| w.name == n).cloned().ok_or_else(|| {
            usage(format!(
                "no web ACL `{n}` in lab `{}` (web ACLs: {})",
                plan.name,
                names.join(", ")
            ))
        }),
    }
}

/// The request as an ALB would hand it to the WAF; `Host` (the load
/// balancer's DNS name) and `User-Agent` are added as curl sends them when
/// not given.
fn request(
    plan: &Lab,
    acl: &crate::waf::WebAclPlan,
    a: &ExplainArgs,
) -> anyhow::Result<WafRequest<'static>> {
    let mut headers = Vec::new();
    for h in a.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| usage(format!("header `{h}` is not `Name: value`")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let has = |h: &Vec<(String, String)>, n: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has(&headers, "host") {
        let host = acl
            .load_balancers
            .first()
            .map_or("localhost".to_string(), |&i| {
                plan.load_balancers[i].dns_name.clone()
            });
        headers.insert(0, ("Host".into(), host));
    }
    if !has(&headers, "user-agent") {
        headers.push(("User-Agent".into(), "curl/8.14.1".into()));
    }
    let body = a.body.unwrap_or("").as_bytes();
    if a.body.is_some() && !has(&headers, "content-length") {
        headers.push(("Content-Length".into(), body.len().to_string()));
    }
    if !a.target.starts_with('/') {
        return Err(usage(format!(
            "`{}` is not a path: give it as /path?query",
            a.target
        )));
    }
    let (uri, query) = a.target.split_once('?').unwrap_or((a.target, ""));
    Ok(WafRequest {
        client_ip: a
            .client
            .parse()
            .with_context(|| format!("--client `{}` is not an address", a.client))
            .map_err(|e| usage(format!("{e:#}")))?,
        method: a.method.to_string().into(),
        uri: uri.to_string().into(),
        query: query.to_string().into(),
        http_version: "HTTP/1.1".into(),
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
        body: body[..body.len().min(BODY_LIMIT)].to_vec().into(),
        body_oversize: body.len() > BODY_LIMIT,
    })
}

fn why(h: &Hit) -> String {
    let Some(d) = &h.detail else {
        return String::new();
    };
    if d.condition == "IP_SET" {
        return format!("address {} is in the IP set ({})", d.data, d.field);
    }
    if d.condition == "NOT" {
        return "the negated statement does not match".into();
    }
    let after = if d.transforms.is_empty() {
        "as sent".to_string()
    } else {
        format!(
            "after {}",
            d.transforms
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!("{} in {} {after}: {:?}", d.condition, d.field, d.data)
}

fn render(plan: &Lab, w: &WebAcl, r: &WafRequest<'_>, v: &Verdict) -> String {
    let mut o = String::new();
    let lbs: Vec<&str> = w
        .plan
        .load_balancers
        .iter()
        .map(|&i| plan.load_balancers[i].name.as_str())
        .collect();
    let q = if r.query.is_empty() {
        String::new()
    } else {
        format!("?{}", r.query)
    };
    let _ = writeln!(
        o,
        "web ACL {} (on {}): {} {}{q} from {}",
        w.plan.name,
        lbs.join(", "),
        r.method,
        r.uri,
        r.client_ip
    );
    let mut decided = false;
    for rule in &w.plan.rules {
        let label = format!("  priority {:<5} {:<20}", rule.priority, rule.name);
        if decided {
            let _ = writeln!(o, "{label} not evaluated (a rule before it terminated)");
            continue;
        }
        let kind = match &rule.body {
            RuleBody::Managed { group, .. } => group.name().to_string(),
            RuleBody::RateBased {
                limit, window_s, ..
            } => {
                format!("rate-based, {limit} per {window_s} s")
            }
            RuleBody::Regular { action, .. } => format!("{} rule", action.log_name()),
        };
        let term = v.terminating.as_ref().filter(|h| h.rule == rule.name);
        let counted: Vec<&Hit> = v
            .non_terminating
            .iter()
            .filter(|h| h.rule == rule.name)
            .collect();
        let group = v.groups.iter().find(|g| g.rule == rule.name);
        match (term, counted.first()) {
            (Some(h), _) => {
                decided = true;
                let inner = h
                    .group_rule
                    .as_deref()
                    .map_or(String::new(), |g| format!(" rule {g}"));
                let _ = writeln!(o, "{label} MATCH {kind}{inner}: {} (terminating)", h.action);
                let _ = writeln!(o, "      {}", why(h));
            }
            (None, Some(h)) => {
                let inner = group
                    .and_then(|g| g.terminating.as_ref().or(g.non_terminating.first()))
                    .and_then(|x| x.group_rule.clone())
                    .map_or(String::new(), |g| format!(" rule {g}"));
                let _ = writeln!(o, "{label} MATCH {kind}{inner}: COUNT (goes on)");
                let detail = group
                    .and_then(|g| g.terminating.as_ref().or(g.non_terminating.first()))
                    .unwrap_or(h);
                let _ = writeln!(o, "      {}", why(detail));
            }
            (None, None) => {
                let excluded = group.map(|g| g.excluded.clone()).unwrap_or_default();
                if let RuleBody::Managed { .. } = rule.body {
                    if !excluded.is_empty() {
                        for x in &excluded {
                            let _ = writeln!(
                                o,
                                "{label} {kind} rule {} matched but is excluded (counts only): {}",
                                x.group_rule.as_deref().unwrap_or(""),
                                why(x)
                            );
                        }
                        continue;
                    }
                }
                let note = if matches!(rule.body, RuleBody::RateBased { .. }) {
                    " (rate-based rules match only past their limit; this one request counts 1)"
                } else {
                    ""
                };
                let _ = writeln!(o, "{label} no match ({kind}){note}");
            }
        }
    }
    let verdict = match (&v.action, &v.terminating) {
        (Action::Block { status, .. }, Some(h)) => format!(
            "BLOCK by rule {}{}: the ALB answers {status} and no target sees the request",
            h.rule,
            h.group_rule
                .as_deref()
                .map_or(String::new(), |g| format!(" ({g})"))
        ),
        (Action::Block { status, .. }, None) => {
            format!("BLOCK by the default action: the ALB answers {status}")
        }
        (_, Some(h)) => format!("ALLOW by rule {}: forwarded to the listener rules", h.rule),
        (_, None) => {
            "ALLOW by the default action: no rule terminated, forwarded to the listener rules"
                .into()
        }
    };
    let _ = writeln!(o, "verdict: {verdict}");
    o
}
