//! Detection benchmark of the WAF engine (`scripts/bench-waf`).
//!
//! Two kinds of input:
//! - `CLASS=FILE`: payloads, one URL-encoded input per line (`#` comments);
//!   each is placed in a query argument and in a form body, with a
//!   browser's headers.
//! - `CLASS=log:FILE`: real requests, one Apache/nginx "combined" access log
//!   line each; each is evaluated as logged (method, path, query string,
//!   Referer, User-Agent; a log carries no body).
//!
//! Prints the share blocked by each managed group alone and by the three
//! together, then which rules blocked what. `BENCH_WAF_SHOW=CLASS` prints
//! every blocked input of that class with its rule (to stderr).
//! `BENCH_WAF_DUMP=FILE` writes every verdict of every web ACL as a JSON
//! line (to compare two builds of the engine input by input).
//!
//! Usage: bench_waf CLASS=FILE|CLASS=log:FILE... (a class may be given
//! several files).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;
use vpcsim::waf::field::{WafRequest, BODY_LIMIT};
use vpcsim::waf::managed::ManagedGroup;
use vpcsim::waf::{Action, Rule, RuleBody, Verdict, WebAcl, WebAclPlan};

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

/// The address payload requests come from (a log line brings its own).
const CLIENT: &str = "198.51.100.7";

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
        logging: None,
    })
}

type Headers = Vec<(Cow<'static, str>, Cow<'static, str>)>;

fn headers(extra: &[(&str, &str)]) -> Headers {
    HEADERS
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string().into(), v.to_string().into()))
        .collect()
}

fn payload_request(method: &str, query: &str, form: Option<&str>) -> WafRequest<'static> {
    let body = form.unwrap_or("").as_bytes();
    let len = body.len().to_string();
    let headers = match form {
        Some(_) => headers(&[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-Length", &len),
        ]),
        None => headers(&[]),
    };
    WafRequest {
        client_ip: CLIENT.parse().expect("address"),
        method: method.to_string().into(),
        uri: "/search".into(),
        query: query.to_string().into(),
        http_version: "HTTP/1.1".into(),
        headers,
        body: body[..body.len().min(BODY_LIMIT)].to_vec().into(),
        body_oversize: body.len() > BODY_LIMIT,
    }
}

/// One "combined" log line as the request it records:
/// `IP - USER [TIME] "METHOD TARGET PROTO" STATUS SIZE "REFERER" "AGENT"`.
/// `None` for a line whose request is not an HTTP request line (`"-"`,
/// TLS bytes sent to a plain port).
fn log_request(line: &str) -> Option<WafRequest<'static>> {
    let quoted: Vec<&str> = line.split('"').collect();
    if quoted.len() < 7 {
        return None;
    }
    let client_ip: IpAddr = line.split_whitespace().next()?.parse().ok()?;
    let mut parts = quoted[1].split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/") || !target.starts_with('/') {
        return None;
    }
    let (uri, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers: Headers = vec![("Host".into(), "www.example.com".into())];
    for (name, value) in [("Referer", quoted[3]), ("User-Agent", quoted[5])] {
        if value != "-" {
            headers.push((name.into(), value.to_string().into()));
        }
    }
    Some(WafRequest {
        client_ip,
        method: method.to_string().into(),
        uri: uri.to_string().into(),
        query: query.to_string().into(),
        http_version: version.to_string().into(),
        headers,
        body: Cow::Borrowed(&[]),
        body_oversize: false,
    })
}

/// The managed rule that blocked, or the web ACL rule when no group rule did.
fn blocking_rule(v: &Verdict) -> String {
    let t = v
        .terminating
        .as_ref()
        .expect("a block has a terminating rule");
    t.group_rule.clone().unwrap_or_else(|| t.rule.clone())
}

/// The inputs of one class: payloads to place, or requests as logged.
enum Inputs {
    Payloads(Vec<String>),
    Logged(Vec<(String, WafRequest<'static>)>),
}

impl Inputs {
    fn len(&self) -> usize {
        match self {
            Inputs::Payloads(p) => p.len(),
            Inputs::Logged(r) => r.len(),
        }
    }
}

/// This thread's CPU time: what a loop costs, whatever else the machine runs.
fn cpu_time() -> std::time::Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// CPU time of the ALB's WAF step for the seed's JSON POST (what
/// `scripts/bench-waf-cost` sends): evaluating the three groups, the same
/// request again and again and with a new `user_id` each time (the engine
/// remembers its answers on values seen before: a repeated request is
/// cheaper than one with a body never seen), the latter with cold caches
/// too, and building and serialising its log record.
fn per_request_cost(name: &str, acl: &WebAcl) {
    let body = br#"{"user_id": "42"}"#;
    let req = WafRequest {
        client_ip: CLIENT.parse().expect("address"),
        method: "POST".into(),
        uri: "/api/v1/recommendation".into(),
        query: "".into(),
        http_version: "HTTP/1.1".into(),
        headers: headers(&[
            ("Content-Type", "application/json"),
            ("Content-Length", "17"),
        ]),
        body: body.to_vec().into(),
        body_oversize: false,
    };
    let n = 20_000u32;
    let start = cpu_time();
    for _ in 0..n {
        assert!(!acl.evaluate(&req, Instant::now()).blocked());
    }
    let eval = (cpu_time() - start) / n;
    let bodies: Vec<Vec<u8>> = (0..n)
        .map(|i| format!(r#"{{"user_id": "{}"}}"#, 10_000_000 + i).into_bytes())
        .collect();
    let mut fresh = req.clone();
    let start = cpu_time();
    for b in &bodies {
        fresh.body = Cow::Borrowed(b);
        assert!(!acl.evaluate(&fresh, Instant::now()).blocked());
    }
    let eval_fresh = (cpu_time() - start) / n;
    // In the ALB the engine's code and tables are cold after each request's
    // trip through hyper and the kernel: the same loop, 4 MB of other
    // memory (past a core's L2 here) touched between requests, only the
    // evaluations timed.
    let mut other = vec![0u8; 4 << 20];
    let mut eval_cold = std::time::Duration::ZERO;
    for (i, b) in bodies.iter().enumerate().take(2_000) {
        for j in (0..other.len()).step_by(64) {
            other[j] = other[j].wrapping_add(i as u8);
        }
        std::hint::black_box(&other);
        fresh.body = Cow::Borrowed(b);
        let start = cpu_time();
        assert!(!acl.evaluate(&fresh, Instant::now()).blocked());
        eval_cold += cpu_time() - start;
    }
    let eval_cold = eval_cold / 2_000;
    let v = acl.evaluate(&req, Instant::now());
    // As the ALB writes it: appended to the log's buffer, emptied by the
    // writer now and then.
    let mut buf = Vec::with_capacity(1 << 20);
    let start = cpu_time();
    for i in 0..n {
        vpcsim::waf::log::write_record(
            &mut buf,
            &vpcsim::waf::log::Source {
                acl: &acl.plan,
                logging: &Default::default(),
                verdict: &v,
                request: &req,
                lb_id: "app/alb/0",
                request_id: "Root=1-0-0",
                now: std::time::SystemTime::now(),
            },
        );
        if i % 256 == 0 {
            std::hint::black_box(&buf);
            buf.clear();
        }
    }
    let log = (cpu_time() - start) / n;
    println!(
        "Per request (the seed's JSON POST), {name}: evaluation {:.1} µs repeated, {:.1} µs with a new body each time, {:.1} µs so with cold caches; log record {:.1} µs (CPU time)",
        eval.as_secs_f64() * 1e6,
        eval_fresh.as_secs_f64() * 1e6,
        eval_cold.as_secs_f64() * 1e6,
        log.as_secs_f64() * 1e6
    );
}

fn main() -> anyhow::Result<()> {
    let mut classes: BTreeMap<String, Inputs> = BTreeMap::new();
    let mut unparsed = 0usize;
    for arg in std::env::args().skip(1) {
        let (class, spec) = arg.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("argument {arg:?}: expected CLASS=FILE or CLASS=log:FILE")
        })?;
        let (is_log, path) = match spec.strip_prefix("log:") {
            Some(p) => (true, p),
            None => (false, spec),
        };
        let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        let text = String::from_utf8_lossy(&bytes);
        let lines = text.lines().map(str::trim_end).filter(|l| !l.is_empty());
        let entry = classes.entry(class.to_string());
        if is_log {
            let inputs = entry.or_insert_with(|| Inputs::Logged(Vec::new()));
            let Inputs::Logged(v) = inputs else {
                anyhow::bail!("class {class}: both payload files and access logs");
            };
            for l in lines {
                match log_request(l) {
                    Some(r) => v.push((l.to_string(), r)),
                    None => unparsed += 1,
                }
            }
        } else {
            let inputs = entry.or_insert_with(|| Inputs::Payloads(Vec::new()));
            let Inputs::Payloads(v) = inputs else {
                anyhow::bail!("class {class}: both payload files and access logs");
            };
            v.extend(lines.filter(|l| !l.starts_with('#')).map(String::from));
        }
    }
    anyhow::ensure!(
        !classes.is_empty(),
        "usage: bench_waf CLASS=FILE|CLASS=log:FILE..."
    );
    let show = std::env::var("BENCH_WAF_SHOW").ok();
    let mut dump = match std::env::var_os("BENCH_WAF_DUMP") {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(&p)?)),
        None => None,
    };

    let mut acls: Vec<(String, WebAcl)> = ManagedGroup::ALL
        .iter()
        .map(|g| (g.name().to_string(), acl(&[*g])))
        .collect();
    acls.push(("all three".into(), acl(&ManagedGroup::ALL)));

    let start = Instant::now();
    let mut evaluated = 0u64;
    let mut by_rule: Vec<(String, BTreeMap<String, usize>)> = Vec::new();
    println!(
        "| inputs | placement | {} |",
        acls.iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|{}", "---|".repeat(acls.len()));
    for (class, inputs) in &classes {
        let rows: Vec<(&str, Vec<(String, WafRequest<'static>)>)> = match inputs {
            Inputs::Payloads(p) => ["query argument", "form body"]
                .into_iter()
                .map(|placement| {
                    let reqs = p
                        .iter()
                        .map(|p| {
                            let arg = format!("q={p}");
                            let r = match placement {
                                "query argument" => payload_request("GET", &arg, None),
                                _ => payload_request("POST", "", Some(&arg)),
                            };
                            (p.clone(), r)
                        })
                        .collect();
                    (placement, reqs)
                })
                .collect(),
            Inputs::Logged(r) => vec![("as logged", r.clone())],
        };
        for (placement, reqs) in rows {
            let mut blocked = vec![0usize; acls.len()];
            let mut rules: BTreeMap<String, usize> = BTreeMap::new();
            for (input, req) in &reqs {
                for (i, (_, acl)) in acls.iter().enumerate() {
                    evaluated += 1;
                    let v = acl.evaluate(req, Instant::now());
                    if let Some(d) = dump.as_mut() {
                        use std::io::Write as _;
                        let v = serde_json::to_string(&v)?;
                        writeln!(d, "{class}\t{placement}\t{i}\t{input}\t{v}")?;
                    }
                    if !v.blocked() {
                        continue;
                    }
                    blocked[i] += 1;
                    if i == acls.len() - 1 {
                        let rule = blocking_rule(&v);
                        if show.as_deref() == Some(class.as_str()) {
                            eprintln!("{class} {placement} {rule}: {input}");
                        }
                        *rules.entry(rule).or_default() += 1;
                    }
                }
            }
            let cells: Vec<String> = blocked
                .iter()
                .map(|b| {
                    format!(
                        "{:.1} % ({b})",
                        100.0 * *b as f64 / inputs.len().max(1) as f64
                    )
                })
                .collect();
            println!(
                "| {class} ({}) | {placement} | {} |",
                inputs.len(),
                cells.join(" | ")
            );
            by_rule.push((format!("{class}, {placement}"), rules));
        }
    }
    println!("\nBlocked by rule (all three groups):\n");
    for (row, rules) in by_rule {
        let mut rules: Vec<_> = rules.into_iter().collect();
        rules.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let list: Vec<String> = rules.iter().map(|(r, n)| format!("{r} {n}")).collect();
        println!(
            "- {row}: {}",
            if list.is_empty() {
                "none".into()
            } else {
                list.join(", ")
            }
        );
    }
    for (name, acl) in &acls {
        per_request_cost(name, acl);
    }
    if unparsed > 0 {
        eprintln!("{unparsed} access log lines hold no HTTP request line: skipped");
    }
    eprintln!(
        "{evaluated} evaluations in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
