//! Issue 9's resource-exhaustion attacks, each as a test's input with the
//! limit it must hold as the assertion: load runs against the ALB (memory
//! and descriptors), an idle-connection flood (other clients served), S3
//! uploads the policy denies, idle and slow clients, out-of-descriptor
//! accept loops, AWS's size limits, log forging, and daemons killed with
//! SIGKILL. Every client runs inside a lab namespace; every loop is
//! bounded in count and time.

mod common;

use common::{require_root, vpcsim_bin, TestLab};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vpcsim::lb::client::query_status;

const PATH: &str = "/api/v1/recommendation";

/// The canary without its user data (S3 downloads would compete for the
/// CPUs), with `edits` applied (`(old, new)` text replacements) and relative
/// paths made absolute.
fn canary(edits: &[(&str, &str)]) -> String {
    // Without its web ACL (the file's last section): its rules would block
    // the floods and bodies these tests send to the ALB itself.
    let mut text = canary_with_waf(edits);
    if let Some(i) = text.find("\n[[web_acl]]") {
        text.truncate(i + 1);
    }
    text
}

/// [`canary`] with its web ACL.
fn canary_with_waf(edits: &[(&str, &str)]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut text = std::fs::read_to_string(dir.join("canary.toml")).unwrap();
    text = text.replace("user_data_file = \"canary/user-data.sh\"\n", "");
    for key in ["seed_dir", "policy_file"] {
        text = text.replace(
            &format!("{key} = \""),
            &format!("{key} = \"{}/", dir.display()),
        );
    }
    for (old, new) in edits {
        assert!(text.contains(old), "canary.toml has no {old:?}");
        text = text.replacen(old, new, 1);
    }
    text
}

/// `vpcsim up` with extra environment (inherited by the lab's daemons).
fn up_with_env(name: &str, toml: &str, env: &[(&str, &str)]) -> TestLab {
    let lab = TestLab::write(name, toml);
    let out = Command::new(vpcsim_bin())
        .envs(env.iter().copied())
        .args(["up", lab.file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vpcsim up {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab
}

/// Polls until `ok` (bounded; no timing assertion).
fn eventually(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn all_healthy(lab: &TestLab) {
    eventually("every target healthy", Duration::from_secs(60), || {
        query_status(&lab.name).is_ok_and(|s| {
            s.target_groups
                .iter()
                .all(|g| g.targets.iter().all(|t| t.state == "healthy"))
        })
    });
}

/// The daemon process of a lab role (`alb`, `aws-services`): the child of
/// the keeper `up` recorded (the recorded process itself if it has none).
fn worker_pid(lab: &TestLab, role: &str) -> i32 {
    let state = vpcsim::state::LabState::load(&lab.name).unwrap().unwrap();
    let keeper = state
        .processes
        .iter()
        .find(|p| p.role == role)
        .unwrap_or_else(|| panic!("no {role} process"))
        .pid;
    let mut pid = None;
    eventually(
        &format!("{role} daemon running"),
        Duration::from_secs(20),
        || {
            let children =
                std::fs::read_to_string(format!("/proc/{keeper}/task/{keeper}/children"));
            pid = match children {
                Ok(c) if c.trim().is_empty() => Some(keeper),
                Ok(c) => c.split_whitespace().next().and_then(|p| p.parse().ok()),
                Err(_) => None,
            };
            pid.is_some()
        },
    );
    pid.unwrap()
}

fn rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// User + system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Lowers a process's open-file limit (soft and hard).
fn limit_fds(pid: i32, n: u64) {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: prlimit on a struct we own.
    let r = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut()) };
    assert_eq!(r, 0, "prlimit {pid}");
}

/// Runs a Python script in a node; returns its stdout (asserting success).
fn py(lab: &TestLab, node: &str, script: &str) -> String {
    let out = lab.exec(node, &["python3", "-c", script]);
    assert!(
        out.status.success(),
        "python in {node}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn alb_ip(lab: &TestLab) -> String {
    query_status(&lab.name).unwrap().load_balancers[0].nodes[0]
        .public_ip
        .clone()
        .unwrap()
}

/// Python: `status(host, raw_request, source="")` sends raw bytes and returns
/// the status code of the answer (0 for none within 10 s).
const RAW_HTTP: &str = r#"
import socket
def status(host, raw, port=80, source=""):
    s = socket.create_connection((host, port), timeout=10, source_address=(source, 0))
    try:
        s.sendall(raw)
        data = s.recv(4096)
        return int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") else 0
    except OSError:
        return 0
    finally:
        s.close()
"#;

#[test]
fn alb_memory_and_descriptors_stay_flat_run_after_run() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up(
        "h-flat",
        &canary(&[(
            "security_groups = [\"sg-alb\"]\n",
            "security_groups = [\"sg-alb\"]\nidle_timeout = 3\n",
        )]),
    );
    all_healthy(&lab);
    let pid = worker_pid(&lab, "alb");
    let base_fds = fds(pid);
    let url = format!("http://{}{PATH}", alb_ip(&lab));
    let script = "wrk.method='POST'; wrk.body='{\"user_id\":7}'; wrk.headers['Content-Type']='application/json'";
    let mut samples = Vec::new();
    for _ in 0..6 {
        let (code, out) = lab.sh(
            "internet",
            &format!(
                "echo \"{script}\" > /tmp/h-flat.lua; wrk -t2 -c64 -d3s -s /tmp/h-flat.lua {url}"
            ),
        );
        assert_eq!(code, 0, "{out}");
        samples.push((rss_kb(pid), fds(pid)));
    }
    eprintln!("ALB (rss KB, fds) after each run: {samples:?}; fds before: {base_fds}");
    // Memory: every run within 24 MB of the first run's.
    let first = samples[0].0;
    for (rss, _) in &samples {
        assert!(
            *rss <= first + 24 * 1024,
            "RSS grew run after run: {samples:?}"
        );
    }
    // The access log keeps up: every request routed to a target group is a
    // line naming its group, or counted as dropped. (A request wrk abandons
    // before it is routed is logged too, with no group: not counted here.)
    let log = vpcsim::lb::access_log_path(&lab.name);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = query_status(&lab.name).unwrap();
        let total: u64 = status.target_groups.iter().map(|g| g.request_count).sum();
        assert!(total > 1000, "{total} requests");
        // A load test can outgrow one file of the log: both are read.
        let routed = kept_lines(&log)
            .iter()
            .filter(|l| l.contains(":targetgroup/"))
            .count() as u64;
        let dropped = status.access_log_dropped;
        if routed <= total && routed + dropped >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "access log: {routed} routed lines + {dropped} dropped for {total} requests"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // A client that stops halfway through a request head is closed after
    // the idle timeout (3 s) like an idle one, whatever it sends slowly.
    let ip = alb_ip(&lab);
    let out = py(
        &lab,
        "internet",
        &format!(
            r#"
import socket, time
s = socket.create_connection(("{ip}", 80), timeout=30)
s.sendall(b"POST {PATH} HTTP/1.1\r\nHost: alb\r\n")
for _ in range(5):
    time.sleep(0.5)
    try:
        s.sendall(b"X-Slow: 1\r\n")
    except OSError:
        break
try:
    print("closed" if s.recv(4096) == b"" else "answered")
except OSError:
    print("closed")
"#
        ),
    );
    assert_eq!(
        out.trim(),
        "closed",
        "a half-sent head must not hold a connection"
    );
    // Idle connections to targets close after the idle timeout (3 s).
    eventually(
        "the ALB's idle target connections closed",
        Duration::from_secs(30),
        || fds(pid) <= base_fds + 4,
    );
}

/// The lines a capped log keeps: its older file's, then its own.
fn kept_lines(log: &Path) -> Vec<String> {
    let mut text = std::fs::read_to_string(vpcsim::logfile::rotated(log)).unwrap_or_default();
    text.push_str(&std::fs::read_to_string(log).unwrap_or_default());
    text.lines().map(String::from).collect()
}

/// /run is a tmpfs: a lab's request logs are memory. Under load each stays
/// within its cap in at most two files, and `waf-logs` and `logs` print
/// what both keep, whole records in order.
#[test]
fn request_logs_stay_capped_under_load_and_read_across_rotations() {
    if !require_root() {
        return;
    }
    let cap: u64 = 128 * 1024;
    let lab = up_with_env(
        "h-logcap",
        &canary_with_waf(&[]),
        &[("VPCSIM_LOG_MAX_BYTES", &cap.to_string())],
    );
    all_healthy(&lab);
    let url = format!("http://{}{PATH}", alb_ip(&lab));
    // A browser's User-Agent: the canary's Common group blocks requests without one.
    let script = "wrk.method='POST'; wrk.body='{\"user_id\":7}'; wrk.headers['Content-Type']='application/json'; wrk.headers['User-Agent']='Mozilla/5.0'";
    let (code, out) = lab.sh(
        "internet",
        &format!(
            "echo \"{script}\" > /tmp/h-logcap.lua; wrk -t1 -c8 -d2s -s /tmp/h-logcap.lua {url}"
        ),
    );
    assert_eq!(code, 0, "{out}");
    let waf = vpcsim::state::waf_log_file(&lab.name);
    let access = vpcsim::lb::access_log_path(&lab.name);
    for log in [&waf, &access] {
        // Written every 50 ms: wait for the last of the run.
        let mut before = usize::MAX;
        eventually("the log settles", Duration::from_secs(10), || {
            let n = kept_lines(log).len();
            std::mem::replace(&mut before, n) == n
        });
        let older = vpcsim::logfile::rotated(log);
        for f in [log, &older] {
            let len = std::fs::metadata(f)
                .unwrap_or_else(|e| panic!("{}: {e} (no rotation under load?)", f.display()))
                .len();
            assert!(
                len <= cap,
                "{} holds {len} bytes, past the cap {cap}",
                f.display()
            );
        }
    }
    let kept = kept_lines(&waf);
    assert!(kept.len() > 20, "{} WAF records kept", kept.len());
    for line in &kept {
        let r: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a WAF record split or torn ({e}): {line}"));
        assert_eq!(r["action"], "ALLOW", "{line}");
    }
    let printed = lab.vpcsim(&["waf-logs", "--lab", &lab.name]);
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout)
            .lines()
            .collect::<Vec<_>>(),
        kept,
        "waf-logs prints the older file, then the newer"
    );
    let printed = lab.vpcsim(&["logs", "--lab", &lab.name, "alb-access"]);
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout)
            .lines()
            .collect::<Vec<_>>(),
        kept_lines(&access),
        "logs alb-access prints the older file, then the newer"
    );
}

#[test]
fn alb_idle_flood_does_not_deny_service_and_killed_daemons_come_back() {
    if !require_root() {
        return;
    }
    // 200 connections per ALB node; the daemon may hold 400 descriptors.
    // The idle timeout stays AWS's 60 s: the flood outlives every client's
    // patience (10 s) unless the ALB sheds it.
    let lab = up_with_env(
        "h-flood",
        &canary(&[(
            "hosts = [\"203.0.113.10\"]",
            "hosts = [\"203.0.113.10\", \"203.0.113.20\"]",
        )]),
        &[("VPCSIM_MAX_CONNECTIONS", "200")],
    );
    all_healthy(&lab);
    let pid = worker_pid(&lab, "alb");
    limit_fds(pid, 400);
    let ip = alb_ip(&lab);
    // 800 idle connections from .20, then requests from .10 and .20.
    let out = py(
        &lab,
        "internet",
        &format!(
            r#"{RAW_HTTP}
import json, resource, select, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
flood = []
for i in range(800):
    s = socket.socket()
    s.setblocking(False)
    s.bind(("203.0.113.20", 0))
    s.connect_ex(("{ip}", 80))
    flood.append(s)
time.sleep(2)
req = b"POST {PATH} HTTP/1.1\r\nHost: alb\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{{\"user_id\":7}}"
served = [status("{ip}", req, source=src) for src in ["203.0.113.10"] * 5 + ["203.0.113.20"] * 5]
def closed():
    n = 0
    for s in flood:
        try:
            r, _, _ = select.select([s], [], [], 0)
            if r and s.recv(1) == b"":
                n += 1
        except OSError:
            n += 1
    return n
print(json.dumps({{"served": served, "shed": closed()}}))
"#
        ),
    );
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    eprintln!("{r}");
    assert!(
        r["served"].as_array().unwrap().iter().all(|s| s == 200),
        "other clients must be served during the flood: {r}"
    );
    assert!(
        r["shed"].as_u64().unwrap() >= 600,
        "over the limit the oldest idle connections go: {r}"
    );
    let s = query_status(&lab.name).unwrap();
    let node = &s.load_balancers[0].nodes[0];
    assert!(node.connections.shed >= 600, "{node:?}");
    assert!(fds(pid) < 400);

    // kill -9 of the ALB and of the AWS services: both come back.
    let services = worker_pid(&lab, "aws-services");
    for p in [pid, services] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    let req = format!(
        "curl -s -o /dev/null -w '%{{http_code}}' -m 5 -H 'Content-Type: application/json' -d '{{\"user_id\":7}}' http://{ip}{PATH}"
    );
    eventually("the ALB answers again", Duration::from_secs(30), || {
        lab.sh("internet", &req).1 == "200"
    });
    assert_ne!(worker_pid(&lab, "alb"), pid);
    eventually("S3 and DNS answer again", Duration::from_secs(30), || {
        let (code, out) = lab.sh(
            "v1-a",
            "curl -s -o /dev/null -w '%{http_code}' -m 5 http://s3.us-east-1.amazonaws.com:443/p4-buquet/backend/model_v1_prod.py",
        );
        code == 0 && out == "200"
    });
    assert_ne!(worker_pid(&lab, "aws-services"), services);
}

#[test]
fn s3_authorises_first_times_out_idle_and_slow_clients_and_backs_off() {
    if !require_root() {
        return;
    }
    let scratch = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scratch-policy.json");
    let bucket = format!(
        "[[s3_bucket]]\nname = \"lab-scratch\"\npolicy_file = \"{}\"\n\n[[s3_bucket]]",
        scratch.display()
    );
    let lab = up_with_env(
        "h-s3",
        &canary(&[("[[s3_bucket]]", &bucket)]),
        &[("VPCSIM_MAX_CONNECTIONS", "200")],
    );
    let pid = worker_pid(&lab, "aws-services");
    let rss_before = rss_kb(pid);
    // Eight anonymous 63 MB uploads from the internet, which the policy
    // denies: the answer comes before the body is sent.
    let out = py(
        &lab,
        "internet",
        &format!(
            r#"{RAW_HTTP}
import json, threading
size = 63 << 20
head = b"PUT /p4-buquet/backend/x.bin HTTP/1.1\r\nHost: s3.us-east-1.amazonaws.com\r\nContent-Length: %d\r\n\r\n" % size
early = []
def upload():
    s = socket.create_connection(("s3.us-east-1.amazonaws.com", 443), timeout=10)
    s.sendall(head)
    try:
        early.append(s.recv(4096).split(b" ")[1].decode())
    except (OSError, IndexError):
        early.append("none")
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(63):
            s.sendall(chunk)
    except OSError:
        pass
    s.close()
ts = [threading.Thread(target=upload) for _ in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps(early))
"#
        ),
    );
    let early: Vec<String> = serde_json::from_str(out.trim()).unwrap();
    assert!(
        early.iter().all(|s| s == "403"),
        "denied before the body: {early:?}"
    );
    let rss_after = rss_kb(pid);
    assert!(
        rss_after <= rss_before + 32 * 1024,
        "S3 RSS {rss_before} KB -> {rss_after} KB"
    );

    // Idle connections and a slow upload (allowed: the scratch bucket
    // through the endpoint) are closed / answered RequestTimeout.
    let out = py(
        &lab,
        "v1-a",
        r#"
import json, select, socket, time
host = ("s3.us-east-1.amazonaws.com", 443)
idle = [socket.create_connection(host) for _ in range(20)]
slow = socket.create_connection(host)
slow.sendall(b"PUT /lab-scratch/slow HTTP/1.1\r\nHost: s3.us-east-1.amazonaws.com\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIATEST/x\r\nContent-Length: 100\r\n\r\n0123456789")
slow.settimeout(40)
try:
    answer = slow.recv(4096).decode(errors="replace")
except OSError as e:
    answer = str(e)
def closed(s):
    r, _, _ = select.select([s], [], [], 0)
    try:
        return bool(r) and s.recv(1) == b""
    except OSError:
        return True
deadline = time.time() + 15
while not all(closed(s) for s in idle) and time.time() < deadline:
    time.sleep(0.5)
print(json.dumps({"slow": answer.split("\r\n")[0], "timeout": "RequestTimeout" in answer, "idle_closed": sum(closed(s) for s in idle)}))
"#,
    );
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["slow"], "HTTP/1.1 400 Bad Request", "{r}");
    assert_eq!(r["timeout"], true, "{r}");
    assert_eq!(r["idle_closed"], 20, "{r}");

    // Out of descriptors: the accept loop backs off instead of spinning,
    // and sheds idle connections so a request is still answered.
    limit_fds(pid, 60);
    let ticks = cpu_ticks(pid);
    let t0 = Instant::now();
    let out = py(
        &lab,
        "internet",
        &format!(
            r#"{RAW_HTTP}
import resource, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
flood = []
for i in range(300):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("s3.us-east-1.amazonaws.com", 443))
    flood.append(s)
time.sleep(3)
get = b"GET /p4-buquet/backend/model_v1_prod.py HTTP/1.1\r\nHost: s3.us-east-1.amazonaws.com\r\nConnection: close\r\n\r\n"
print(status("s3.us-east-1.amazonaws.com", get, port=443))
"#
        ),
    );
    let used = (cpu_ticks(pid) - ticks) as f64 / 100.0;
    let wall = t0.elapsed().as_secs_f64();
    eprintln!("aws-services CPU {used:.2} s over {wall:.1} s with no descriptors left");
    assert_eq!(
        out.trim(),
        "403",
        "S3 still answers (the policy denies the internet)"
    );
    assert!(
        used < wall / 2.0,
        "the accept loop spins: {used:.2} s CPU in {wall:.1} s"
    );
}

#[test]
fn limits_aws_enforces() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up("h-limits", &canary(&[]));
    all_healthy(&lab);
    let ip = alb_ip(&lab);
    // ALB: one header over 16 KB -> 400; just under passes; an invalid
    // chunked body from the client -> 400 (its fault, not the target's).
    let out = py(
        &lab,
        "internet",
        &format!(
            r#"{RAW_HTTP}
import json
post = "POST {PATH} HTTP/1.1\r\nHost: alb\r\nContent-Type: application/json\r\n"
body = "Content-Length: 13\r\n\r\n{{\"user_id\":7}}"
big = status("{ip}", (post + "X-Big: " + "a" * 16500 + "\r\n" + body).encode())
fine = status("{ip}", (post + "X-Big: " + "a" * 15000 + "\r\n" + body).encode())
chunked = status("{ip}", (post + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n").encode())
print(json.dumps([big, fine, chunked]))
"#
        ),
    );
    let codes: Vec<u16> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        codes,
        [400, 200, 400],
        "header 16.5 KB, 15 KB, bad chunked body"
    );

    // S3: a key over 1,024 bytes -> KeyTooLongError; a %0A in a key cannot
    // forge an access log line.
    let long = "k".repeat(1025);
    let (_, out) = lab.sh(
        "internet",
        &format!("curl -s -w ' %{{http_code}}' -X PUT --data x http://s3.us-east-1.amazonaws.com/p4-buquet/{long}"),
    );
    assert!(
        out.contains("KeyTooLongError") && out.ends_with(" 400"),
        "{out}"
    );
    let ok = "k".repeat(1024);
    let (_, out) = lab.sh(
        "internet",
        &format!("curl -s -w ' %{{http_code}}' -X PUT --data x http://s3.us-east-1.amazonaws.com/p4-buquet/{ok}"),
    );
    assert!(out.ends_with(" 403"), "a 1,024-byte key is a key: {out}");
    let log = vpcsim::services::s3_access_log(&lab.name);
    let before = std::fs::read_to_string(&log).unwrap().lines().count();
    lab.sh(
        "internet",
        "curl -s -o /dev/null 'http://s3.us-east-1.amazonaws.com/p4-buquet/a%0Avpcsim%20forged%20-%20%5B01/Jan/2026:00:00:00%20+0000%5D'",
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.lines().count(),
        before + 1,
        "one request, one line:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("vpcsim forged")),
        "{text}"
    );
    assert!(
        text.contains("a%0Avpcsim%20forged"),
        "the key is URL-encoded:\n{text}"
    );

    // DNS: a name over 255 octets is a format error (RCODE 1), for both
    // the Amazon DNS and the internet's resolver.
    for (node, server) in [("v1-a", "10.0.0.2"), ("internet", "192.0.2.53")] {
        let out = py(
            &lab,
            node,
            &format!(
                r#"
import socket
q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q, ("{server}", 53))
try:
    r = s.recv(512)
    print(r[3] & 15)
except OSError:
    print("no answer")
"#
            ),
        );
        assert_eq!(out.trim(), "1", "FORMERR from {server}");
    }
}
