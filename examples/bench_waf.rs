//! Detection benchmark of the WAF engine (`scripts/bench-waf`): reads attack
//! and benign payload files (one URL-encoded input per line, `#` comments),
//! places each payload in a query argument and in a form body, and prints the
//! share blocked by each managed group alone and by the three together.
//!
//! Usage: bench_waf CLASS=FILE... (CLASS is e.g. sqli, xss or benign; a class
//! may be given several files).

use std::collections::BTreeMap;
use std::time::Instant;
use vpcsim::waf::field::{WafRequest, BODY_LIMIT};
use vpcsim::waf::managed::ManagedGroup;
use vpcsim::waf::{Action, Rule, RuleBody, WebAcl, WebAclPlan};

/// A browser's headers, so that only the payload can trip a rule.
const HEADERS: [(&str, &str); 4] = [
    ("Host", "shop.example.com"),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.5"),
];

fn acl(groups: &[ManagedGroup]) -> WebAcl {
    let rules = groups
        .iter()
        .enumerate()
        .map(|(i, g)| Rule {
            name: g.name().to_string(),
            priority: i as u32,
            body: RuleBody::Managed {
                group: *g,
                override_count: false,
                excluded: Vec::new(),
                overrides: Vec::new(),
            },
        })
        .collect();
    WebAcl::new(WebAclPlan {
        name: "bench".into(),
        id: "bench".into(),
        arn: "arn:aws:wafv2:us-east-1:000000000000:regional/webacl/bench/bench".into(),
        default_action: Action::Allow,
        load_balancers: Vec::new(),
        rules,
    })
}

fn request(method: &str, query: &str, form: Option<&str>) -> WafRequest {
    let mut headers: Vec<(String, String)> = HEADERS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = form.unwrap_or("").as_bytes();
    if form.is_some() {
        headers.push((
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        headers.push(("Content-Length".into(), body.len().to_string()));
    }
    WafRequest {
        client_ip: "198.51.100.7".parse().expect("address"),
        method: method.into(),
        uri: "/search".into(),
        query: query.into(),
        http_version: "HTTP/1.1".into(),
        headers,
        body: body[..body.len().min(BODY_LIMIT)].to_vec(),
        body_oversize: body.len() > BODY_LIMIT,
    }
}

fn main() -> anyhow::Result<()> {
    let mut classes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for arg in std::env::args().skip(1) {
        let (class, path) = arg
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("argument {arg:?}: expected CLASS=FILE"))?;
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        let lines = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from);
        classes.entry(class.to_string()).or_default().extend(lines);
    }
    anyhow::ensure!(!classes.is_empty(), "usage: bench_waf CLASS=FILE...");

    let mut acls: Vec<(String, WebAcl)> = ManagedGroup::ALL
        .iter()
        .map(|g| (g.name().to_string(), acl(&[*g])))
        .collect();
    acls.push(("all three".into(), acl(&ManagedGroup::ALL)));

    let start = Instant::now();
    let mut evaluated = 0u64;
    println!(
        "| payloads | placement | {} |",
        acls.iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|{}", "---|".repeat(acls.len()));
    for (class, payloads) in &classes {
        for placement in ["query argument", "form body"] {
            let mut blocked = vec![0usize; acls.len()];
            for p in payloads {
                let arg = format!("q={p}");
                let req = match placement {
                    "query argument" => request("GET", &arg, None),
                    _ => request("POST", "", Some(&arg)),
                };
                for (i, (_, acl)) in acls.iter().enumerate() {
                    evaluated += 1;
                    if acl.evaluate(&req, Instant::now()).blocked() {
                        blocked[i] += 1;
                    }
                }
            }
            let cells: Vec<String> = blocked
                .iter()
                .map(|b| {
                    format!(
                        "{:.1} % ({b})",
                        100.0 * *b as f64 / payloads.len().max(1) as f64
                    )
                })
                .collect();
            println!(
                "| {class} ({}) | {placement} | {} |",
                payloads.len(),
                cells.join(" | ")
            );
        }
    }
    eprintln!(
        "{evaluated} evaluations in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
