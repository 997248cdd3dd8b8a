//! The Application Load Balancer end to end: every request comes from the
//! emulated internet (`internet` node) to the ALB's DNS name, crosses the IGW,
//! the ALB node, SGs and NACLs to the targets, like on AWS.

mod common;

use common::lb::*;
use common::{require_root, TestLab};
use std::time::{Duration, Instant};
use vpcsim::lb::client::query_status;

const PATH: &str = "/api/v1/recommendation";
const V1_BODY: &str = "{\"event_log\":\"User 7 purchase processed.\",\"latency_ms\":0,\"model_id\":\"V1 - Stable\",\"recommendation\":[\"item_X_old_model\",\"item_Y_old_model\"]}";

/// The seed's V1 answer; `latency_ms` is measured, so it may round to 1
/// or more on a busy machine: every other byte must match.
fn is_v1_body(body: &str) -> bool {
    let Some(rest) =
        body.strip_prefix("{\"event_log\":\"User 7 purchase processed.\",\"latency_ms\":")
    else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && V1_BODY.ends_with(&rest[digits..])
}

/// `n` POSTs like the seed's client, from the internet host, in one curl
/// process (sequential on a kept-alive connection: parallel transfers would
/// interleave bodies and status lines); returns (status, body) per response.
fn post_many(lab: &TestLab, n: usize, path: &str) -> Vec<(u16, String)> {
    let url = format!("http://{}{path}", dns_name(lab));
    let script = format!(
        "for i in $(seq {n}); do printf 'url = \"%s\"\\n' '{url}'; done > /tmp/vpcsim-urls-$$; \
         curl -s --no-progress-meter -m 90 -H 'Content-Type: application/json' \
         -d '{{\"user_id\":7}}' -w '\\n@@%{{http_code}}@@\\n' -K /tmp/vpcsim-urls-$$; rm -f /tmp/vpcsim-urls-$$"
    );
    let (code, out) = lab.sh("internet", &script);
    assert_eq!(code, 0, "curl failed: {out}");
    let mut res = Vec::new();
    let mut rest = out.as_str();
    while let Some(i) = rest.find("\n@@") {
        let after = &rest[i + 3..];
        let j = after.find("@@\n").expect("status marker");
        res.push((
            after[..j].parse().unwrap_or(0),
            rest[..i].trim_matches('\n').to_string(),
        ));
        rest = &after[j + 3..];
    }
    assert_eq!(res.len(), n, "{out}");
    res
}

fn vpcsim_ok(lab: &TestLab, args: &[&str]) -> String {
    common::stdout_ok(&lab.vpcsim(args), &format!("vpcsim {args:?}"))
}

#[test]
fn canary_split_follows_the_weights_and_weights_change_live() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up_shipped("alb-split", "canary.toml");
    let lines = post_many(&lab, 2000, PATH);
    let v2: Vec<&String> = lines
        .iter()
        .map(|(_, b)| b)
        .filter(|b| b.contains("V2 - DeepLearning - Canary"))
        .collect();
    // AWS's contract is a share in proportion to the weights, not an exact
    // sequence (the algorithm's exactness is unit-tested in src/lb/router.rs):
    // 10 % of 2,000 is 200; +-60 is over 4 standard deviations.
    assert!(
        (140..=260).contains(&v2.len()),
        "90/10 of 2000 gave {} V2 answers",
        v2.len()
    );
    for (code, body) in &lines {
        assert_eq!(*code, 200, "{body}");
        if !body.contains("V2 -") {
            assert!(is_v1_body(body), "{body}");
        }
    }
    assert!(v2[0].starts_with(
        "{\"event_log\":\"User 7 purchase processed. Metrics available.\",\"latency_ms\":"
    ));
    assert!(v2[0].contains(
        "\"model_id\":\"V2 - DeepLearning - Canary\",\"recommendation\":[\"item_A_new\",\"item_B_new\",\"item_C_new\"]}"
    ));
    // One access log line per request, in AWS's format; the log is written
    // asynchronously, so it is polled (bounded) until every line is there.
    let path = vpcsim::lb::access_log_path(&lab.name);
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = loop {
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        let n = log.lines().filter(|l| l.contains(PATH)).count();
        if n >= 2000 || Instant::now() > deadline {
            assert_eq!(n, 2000, "access log lines for {PATH}");
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(log.lines().next().unwrap().starts_with("http 20"));
    assert!(
        log.contains(" 203.0.113.10:"),
        "client is the internet host"
    );

    // CloudWatch-style metrics per target group in `vpcsim status --json`
    // (health checks are not requests: RequestCount counts only clients').
    let status = lab.status();
    let tgs = status["alb"]["target_groups"].as_array().unwrap();
    let tg = |name: &str| tgs.iter().find(|t| t["name"] == name).unwrap().clone();
    let v2_count = v2.len() as u64;
    assert_eq!(tg("tg-v1")["request_count"], 2000 - v2_count);
    assert_eq!(tg("tg-v2")["request_count"], v2_count);
    assert_eq!(tg("tg-v1")["http_code_target_2xx"], 2000 - v2_count);
    assert_eq!(tg("tg-v1")["http_code_elb_5xx"], 0);
    assert_eq!(tg("tg-v1")["healthy_host_count"], 3);
    assert_eq!(tg("tg-v2")["unhealthy_host_count"], 0);
    assert!(tg("tg-v2")["target_response_time_p99_ms"].is_number());
    let table = String::from_utf8(lab.vpcsim(&["status", &lab.name]).stdout).unwrap();
    assert!(table.contains("target group tg-v2"), "{table}");

    vpcsim_ok(
        &lab,
        &[
            "weights",
            "--lab",
            &lab.name,
            "alb:80",
            "tg-v1=100",
            "tg-v2=0",
        ],
    );
    let lines = post_many(&lab, 300, PATH);
    assert!(
        lines.iter().all(|(c, b)| *c == 200 && is_v1_body(b)),
        "{lines:?}"
    );
    // Saved in the lab's state too.
    let state = vpcsim::state::LabState::load(&lab.name).unwrap().unwrap();
    let fwd = &state.plan.load_balancers[0].listeners[0].default_forward;
    assert_eq!(fwd.iter().map(|w| w.weight).collect::<Vec<_>>(), [100, 0]);

    // Bad input is a usage error (exit 2).
    for bad in [
        vec!["alb:80", "tg-v1=1000"],
        vec!["alb:80", "tg-nope=1"],
        vec!["alb:81", "tg-v1=1"],
        vec!["nope:80", "tg-v1=1"],
        vec!["alb:80", "tg-v1"],
    ] {
        let mut args = vec!["weights", "--lab", &lab.name];
        args.extend(bad.iter());
        assert_eq!(lab.vpcsim(&args).status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn stopped_targets_become_unhealthy_then_fail_open() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up_shipped("alb-fo", "canary.toml");
    vpcsim_ok(
        &lab,
        &[
            "weights", "--lab", &lab.name, "alb:80", "tg-v1=1", "tg-v2=0",
        ],
    );
    wait_status(&lab, "every tg-v1 target healthy", |s| {
        ["v1-a", "v1-b", "v1-c"]
            .iter()
            .all(|i| target_state(s, "tg-v1", i).as_deref() == Some("healthy"))
    });
    vpcsim_ok(&lab, &["stop", "--lab", &lab.name, "v1-a"]);
    let s = wait_status(&lab, "v1-a unhealthy", |s| {
        target_state(s, "tg-v1", "v1-a").as_deref() == Some("unhealthy")
    });
    let g = s.target_groups.iter().find(|g| g.name == "tg-v1").unwrap();
    let t = g.targets.iter().find(|t| t.instance == "v1-a").unwrap();
    assert_eq!(
        t.reason.as_deref(),
        Some("Target.FailedHealthChecks"),
        "{s}"
    );
    assert_eq!(g.unhealthy_host_count, 1);
    assert!(post_many(&lab, 200, PATH).iter().all(|(c, _)| *c == 200));

    // Every target down: the ALB fails open, sends to them anyway, gets
    // connection refused: 502.
    vpcsim_ok(&lab, &["stop", "--lab", &lab.name, "v1-b"]);
    vpcsim_ok(&lab, &["stop", "--lab", &lab.name, "v1-c"]);
    wait_status(&lab, "all of tg-v1 unhealthy", |s| {
        s.target_groups
            .iter()
            .find(|g| g.name == "tg-v1")
            .unwrap()
            .unhealthy_host_count
            == 3
    });
    let lines = post_many(&lab, 30, PATH);
    assert!(
        lines
            .iter()
            .all(|(c, b)| *c == 502 && b.contains("502 Bad Gateway")),
        "{lines:?}"
    );
    let s = query_status(&lab.name).unwrap();
    assert!(s.target_groups[0].http_code_elb_5xx >= 30);

    vpcsim_ok(&lab, &["start", "--lab", &lab.name, "v1-b"]);
    wait_status(&lab, "v1-b healthy again", |s| {
        target_state(s, "tg-v1", "v1-b").as_deref() == Some("healthy")
    });
    assert!(post_many(&lab, 50, PATH).iter().all(|(c, _)| *c == 200));
}

/// A target echoing what it received (`POST /echo`), slow on `GET /slow`,
/// healthy on `GET /`; written by user data, like a student's own script.
const ECHO_SERVER: &str = r#"cat > echo.py <<'EOF'
import http.server, json, time
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, body):
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path.startswith('/slow'):
            time.sleep(3)
        if self.path.startswith('/missing'):
            self.send_response(404)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        if self.path.startswith('/drop'):
            # Counts the attempt, then closes without answering: a 502.
            with open('drops.log', 'a') as f:
                f.write('x')
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.reply(b'ok')
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        self.reply(json.dumps({'headers': dict(self.headers), 'body': body.decode(), 'path': self.path}).encode())
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(('0.0.0.0', 8000), H).serve_forever()
EOF
exec python3 echo.py
"#;

fn small_lab(extra_instances: &str, extra_groups: &str, rules: &str) -> String {
    format!(
        r#"
name = "x"
[vpc]
cidr = "10.1.0.0/16"

[[subnet]]
name = "pub-a"
cidr = "10.1.10.0/24"
az = "us-east-1a"
route_table = "public"
map_public_ip = true

[[subnet]]
name = "pub-b"
cidr = "10.1.30.0/24"
az = "us-east-1b"
route_table = "public"
map_public_ip = true

[[subnet]]
name = "priv-a"
cidr = "10.1.20.0/24"
az = "us-east-1a"

[internet_gateway]
name = "igw"

[[route_table]]
name = "public"
routes = [{{ destination = "0.0.0.0/0", target = "igw" }}]

[[security_group]]
name = "sg-alb"
ingress = [{{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }}]

[[security_group]]
name = "sg-backend"
ingress = [{{ protocol = "tcp", ports = "8000", source_sg = "sg-alb" }}]

{extra_instances}

[[target_group]]
name = "tg-empty"
port = 8000

{extra_groups}

[[load_balancer]]
name = "alb"
subnets = ["pub-a", "pub-b"]
security_groups = ["sg-alb"]
idle_timeout = 1

[[load_balancer.listener]]
port = 80
{rules}
"#
    )
}

#[test]
fn no_targets_503_slow_504_and_forwarded_headers() {
    if !require_root() {
        return;
    }
    let user_data = ECHO_SERVER
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    let toml = small_lab(
        &format!(
            "[[instance]]\nname = \"echo\"\nsubnet = \"priv-a\"\nsecurity_groups = [\"sg-backend\"]\nuser_data = \"{user_data}\"\n"
        ),
        "[[target_group]]\nname = \"tg-echo\"\nport = 8000\ntargets = [\"echo\"]\nhealth_check = { path = \"/\", interval = 5, timeout = 2, healthy_threshold = 2, unhealthy_threshold = 2 }\n\n[[target_group]]\nname = \"tg-mismatch\"\nport = 8000\ntargets = [\"echo\"]\nhealth_check = { path = \"/missing\", interval = 5, timeout = 2, healthy_threshold = 2, unhealthy_threshold = 2 }\n",
        "default_forward = [{ target_group = \"tg-echo\", weight = 1 }]\nrules = [{ priority = 10, path_pattern = \"/empty*\", forward = [{ target_group = \"tg-empty\", weight = 1 }] }, { priority = 20, path_pattern = \"/mismatch*\", forward = [{ target_group = \"tg-mismatch\", weight = 1 }] }]\n",
    );
    let lab = TestLab::up("alb-errs", &toml);
    let dns = dns_name(&lab);
    // The user data server may take a moment to start.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out) = lab.sh("internet", &format!("curl -s -m 5 http://{dns}/"));
        if out == "ok" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "echo target never answered: {out}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, out) = lab.sh(
        "internet",
        &format!("curl -s -m 10 -o /dev/null -w '%{{http_code}}' http://{dns}/empty/x"),
    );
    assert_eq!(out, "503");
    let (_, out) = lab.sh(
        "internet",
        &format!("curl -s -m 10 -w ' %{{http_code}}' http://{dns}/slow"),
    );
    assert!(
        out.ends_with(" 504") && out.contains("504 Gateway Timeout"),
        "{out}"
    );

    // No retries: a target that drops the connection gets the request once
    // and the client a 502.
    let (_, out) = lab.sh(
        "internet",
        &format!("curl -s -m 10 -o /dev/null -w '%{{http_code}}' http://{dns}/drop"),
    );
    assert_eq!(out, "502");
    let drops = std::fs::read_to_string(format!("/run/vpcsim/{}/nodes/echo/drops.log", lab.name))
        .unwrap_or_else(|e| panic!("the target never saw /drop: {e}"));
    assert_eq!(drops, "x", "the ALB retried the failed request");
    // A health check answered with a code outside the matcher: the reason
    // is Target.ResponseCodeMismatch, not a timeout nor a refusal.
    let s = wait_status(&lab, "tg-mismatch unhealthy", |s| {
        target_state(s, "tg-mismatch", "echo").as_deref() == Some("unhealthy")
    });
    let g = s
        .target_groups
        .iter()
        .find(|g| g.name == "tg-mismatch")
        .unwrap();
    assert_eq!(
        g.targets[0].reason.as_deref(),
        Some("Target.ResponseCodeMismatch"),
        "{s}"
    );

    let body = "línea 1\nbinary-ish \u{1} {\"k\": [1,2]}";
    std::fs::write("/tmp/vpcsim-test-alb-body", body).unwrap();
    let (_, out) = lab.sh(
        "internet",
        &format!(
            "curl -s -m 10 -H 'X-Forwarded-For: 192.0.2.99' -H 'X-Custom: a b  c' \
             -H 'Content-Type: text/plain' --data-binary @/tmp/vpcsim-test-alb-body 'http://{dns}/echo?q=1&r=%20'"
        ),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let h = &v["headers"];
    let get = |k: &str| {
        h.as_object()
            .unwrap()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str().unwrap().to_string())
    };
    assert_eq!(v["body"], body);
    assert_eq!(v["path"], "/echo?q=1&r=%20");
    assert_eq!(
        get("X-Forwarded-For").as_deref(),
        Some("192.0.2.99, 203.0.113.10")
    );
    assert_eq!(get("X-Forwarded-Proto").as_deref(), Some("http"));
    assert_eq!(get("X-Forwarded-Port").as_deref(), Some("80"));
    assert_eq!(get("X-Custom").as_deref(), Some("a b  c"));
    assert_eq!(get("Host").as_deref(), Some(dns.as_str()));
    let trace = get("X-Amzn-Trace-Id").unwrap();
    let parts: Vec<&str> = trace.trim_start_matches("Root=").split('-').collect();
    assert_eq!(
        (parts[0], parts[1].len(), parts[2].len()),
        ("1", 8, 24),
        "{trace}"
    );
}

#[test]
fn seed_flask_app_as_user_data_behind_the_alb() {
    if !require_root() {
        return;
    }
    let flask = std::process::Command::new("python3")
        .args(["-c", "import flask"])
        .status()
        .is_ok_and(|s| s.success());
    if !flask {
        if std::env::var_os("CI").is_some() {
            panic!("python3 with flask is needed in CI (pip install flask)");
        }
        eprintln!("skipping: python3 cannot import flask (pip install flask)");
        return;
    }
    // The seed's own file, exactly as the canary's bucket ships it.
    let user_data = format!(
        "exec python3 {}/topologies/canary/bucket/backend/model_v1_prod.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let toml = small_lab(
        &format!(
            "[[instance]]\nname = \"flask\"\nsubnet = \"priv-a\"\nsecurity_groups = [\"sg-backend\"]\nuser_data = \"{user_data}\"\n"
        ),
        "[[target_group]]\nname = \"tg-flask\"\nport = 8000\ntargets = [\"flask\"]\nhealth_check = { path = \"/\", interval = 5, timeout = 2, healthy_threshold = 2, unhealthy_threshold = 2, matcher = \"200-499\" }\n",
        "default_forward = [{ target_group = \"tg-flask\", weight = 1 }]\n",
    );
    let lab = TestLab::up("alb-flask", &toml);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines;
    loop {
        lines = post_many(&lab, 1, PATH);
        if lines[0].0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "flask never answered: {lines:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let lines = post_many(&lab, 20, PATH);
    assert!(
        lines.iter().all(|(c, b)| *c == 200 && is_v1_body(b)),
        "{lines:?}"
    );
}

#[test]
fn literal_seed_topology_fails_where_the_report_works() {
    if !require_root() {
        return;
    }
    let lit = TestLab::up_shipped("alb-lit", "seed-001-literal.toml");
    // The health checks' replies die at the NACLs too: every target is
    // unhealthy for a timeout, not for a bad answer.
    let s = wait_status(&lit, "every target unhealthy", |s| {
        s.target_groups
            .iter()
            .all(|g| g.targets.iter().all(|t| t.state == "unhealthy"))
    });
    for g in &s.target_groups {
        for t in &g.targets {
            assert_eq!(
                t.reason.as_deref(),
                Some("Target.Timeout"),
                "{}: {s}",
                t.instance
            );
        }
    }
    // One request through each ALB node (its public IP): fail-open sends it
    // to a target anyway; the connection never completes: 504.
    let dns = dns_name(&lit);
    let status = lit.status();
    let node_ip = |node: &str| -> String {
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == node)
            .unwrap()["public_ip"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (node, rule) in [
        // alb-a's request gets in; the reply enters the public subnet on an
        // ephemeral port, where only 80 is allowed.
        ("alb-a", "nacl public inbound rule * deny"),
        // alb-b (10.0.30.0/24) is not in the private inbound rule's CIDR.
        ("alb-b", "nacl private inbound rule * deny"),
    ] {
        let before = lit.counters();
        let (_, out) = lit.sh(
            "internet",
            &format!(
                "curl -s -m 120 -o /dev/null -w '%{{http_code}}' -H 'Host: {dns}' -H 'Content-Type: application/json' -d '{{}}' http://{}{PATH}",
                node_ip(node)
            ),
        );
        assert_eq!(out, "504", "literal seed 001 through {node}");
        let after = lit.counters();
        assert!(
            after[rule] > before[rule],
            "{node}: `{rule}` counted nothing"
        );
        // The access log names the target tried; the model blames the same
        // rule for that node -> target connection.
        let log = std::fs::read_to_string(vpcsim::lb::access_log_path(&lit.name)).unwrap();
        let line = log
            .lines()
            .rfind(|l| l.contains(PATH) && l.contains(" 504 "))
            .unwrap_or_else(|| panic!("no 504 line in:\n{log}"));
        let target = line.split(' ').nth(4).unwrap();
        let out = lit.vpcsim(&["trace", "--lab", &lit.name, node, target, "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let named = ["request", "reply"].iter().any(|leg| {
            report[leg]["hops"].as_array().is_some_and(|h| {
                h.iter()
                    .any(|h| h["verdict"] != "pass" && h["rule"] == rule)
            })
        });
        assert!(named, "{node} -> {target}: {report:#}");
    }
    drop(lit);
    let ok = TestLab::up_shipped("alb-lit-ok", "canary.toml");
    assert!(post_many(&ok, 10, PATH).iter().all(|(c, _)| *c == 200));
}

#[test]
fn deregistered_target_drains_in_flight_requests_then_leaves() {
    if !require_root() {
        return;
    }
    let dir = Scratch::new("drain");
    let d = dir.path();
    let toml = small_lab(
        &format!("{}\n{}", holding_server("echo-a", d), holding_server("echo-b", d)),
        "[[target_group]]\nname = \"tg-echo\"\nport = 8000\ntargets = [\"echo-a\", \"echo-b\"]\nderegistration_delay = 120\nhealth_check = { path = \"/\", interval = 5, timeout = 2, healthy_threshold = 2, unhealthy_threshold = 2 }\n\n[[target_group]]\nname = \"tg-short\"\nport = 8000\ntargets = [\"echo-a\", \"echo-b\"]\nderegistration_delay = 1\nhealth_check = { path = \"/\", interval = 5, timeout = 2, healthy_threshold = 2, unhealthy_threshold = 2 }\n",
        "default_forward = [{ target_group = \"tg-echo\", weight = 1 }]\nrules = [{ priority = 10, path_pattern = \"/short/*\", forward = [{ target_group = \"tg-short\", weight = 1 }] }]\n",
    )
    .replace("idle_timeout = 1", "idle_timeout = 60");
    let lab = TestLab::up("alb-drain", &toml);
    let dns = dns_name(&lab);
    wait_status(&lab, "both targets healthy", |s| {
        target_state(s, "tg-echo", "echo-a").as_deref() == Some("healthy")
            && target_state(s, "tg-echo", "echo-b").as_deref() == Some("healthy")
    });
    let who = |n: usize| get(&lab, n, &format!("http://{dns}/who"));

    // Four requests held open: round robin puts some on each target.
    let held = hold(&lab, 4, &format!("http://{dns}/hold/1"));
    wait_file(
        &dir.0.join("held-echo-a-1"),
        "no held request reached echo-a",
    );

    vpcsim_ok(
        &lab,
        &["deregister", "--lab", &lab.name, "tg-echo", "echo-a"],
    );
    let s = query_status(&lab.name).unwrap();
    assert_eq!(
        target_state(&s, "tg-echo", "echo-a").as_deref(),
        Some("draining")
    );
    // No new request goes to a draining target.
    assert!(who(20).iter().all(|w| w == "echo-b"));

    // Released: the requests in flight on echo-a finish normally.
    std::fs::write(dir.0.join("release-1"), "").unwrap();
    let out = held.join().unwrap();
    let answers: Vec<&str> = out.lines().collect();
    assert_eq!(answers.len(), 4, "{out}");
    assert!(answers.iter().all(|a| a.ends_with(" 200")), "{out}");
    assert!(answers.iter().any(|a| a.starts_with("echo-a ")), "{out}");
    // With nothing in flight the deregistration completes before the delay.
    wait_status(&lab, "echo-a deregistered", |s| {
        let g = s
            .target_groups
            .iter()
            .find(|g| g.name == "tg-echo")
            .unwrap();
        g.targets.iter().all(|t| t.instance != "echo-a")
    });

    // Bad names are usage errors.
    assert_eq!(
        lab.vpcsim(&["deregister", "--lab", &lab.name, "tg-echo", "nope"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        lab.vpcsim(&["register", "--lab", &lab.name, "tg-nope", "echo-a"])
            .status
            .code(),
        Some(2)
    );

    vpcsim_ok(&lab, &["register", "--lab", &lab.name, "tg-echo", "echo-a"]);
    wait_status(&lab, "echo-a healthy again", |s| {
        target_state(s, "tg-echo", "echo-a").as_deref() == Some("healthy")
    });
    assert!(who(20).iter().any(|w| w == "echo-a"));

    // A request that never ends does not hold a deregistration forever:
    // draining ends at the group's deregistration_delay (1 s in tg-short).
    wait_status(&lab, "tg-short healthy", |s| {
        target_state(s, "tg-short", "echo-a").as_deref() == Some("healthy")
            && target_state(s, "tg-short", "echo-b").as_deref() == Some("healthy")
    });
    let held = hold(&lab, 4, &format!("http://{dns}/short/hold/2"));
    wait_file(
        &dir.0.join("held-echo-a-2"),
        "no held request reached echo-a in tg-short",
    );
    vpcsim_ok(
        &lab,
        &["deregister", "--lab", &lab.name, "tg-short", "echo-a"],
    );
    wait_status(
        &lab,
        "echo-a leaves tg-short with a request in flight",
        |s| {
            let g = s
                .target_groups
                .iter()
                .find(|g| g.name == "tg-short")
                .unwrap();
            g.targets.iter().all(|t| t.instance != "echo-a")
        },
    );
    assert!(
        !held.is_finished(),
        "the held requests ended before the deregistration did"
    );
    std::fs::write(dir.0.join("release-2"), "").unwrap();
    held.join().unwrap();
}
