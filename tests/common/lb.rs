//! Helpers for tests of the load balancer: its view (`query_status`), targets
//! that hold requests open on demand, and requests held in flight.

use super::TestLab;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vpcsim::lb::client::query_status;
use vpcsim::lb::status::LbStatus;

/// The DNS name of the lab's first load balancer.
pub fn dns_name(lab: &TestLab) -> String {
    query_status(&lab.name).expect("ALB status").load_balancers[0]
        .dns_name
        .clone()
}

/// Polls the ALB's view until `ok` holds (bounded; no timing assertion).
pub fn wait_status(lab: &TestLab, what: &str, ok: impl Fn(&LbStatus) -> bool) -> LbStatus {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = query_status(&lab.name).expect("ALB status");
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never reached: {what}\n{s}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A target's state in a group, `None` when the group does not list it.
pub fn target_state(s: &LbStatus, tg: &str, instance: &str) -> Option<String> {
    let g = s.target_groups.iter().find(|g| g.name == tg).unwrap();
    g.targets
        .iter()
        .find(|t| t.instance == instance)
        .map(|t| t.state.clone())
}

/// The requests a target group has served.
pub fn requests(s: &LbStatus, tg: &str) -> u64 {
    s.target_groups
        .iter()
        .find(|g| g.name == tg)
        .unwrap()
        .request_count
}

/// Whether every (group, instance) pair is healthy.
pub fn healthy(s: &LbStatus, pairs: &[(&str, &str)]) -> bool {
    pairs
        .iter()
        .all(|(g, t)| target_state(s, g, t).as_deref() == Some("healthy"))
}

/// An instance in `priv-a` (in `sg-backend`) whose user data serves port
/// 8000: every GET answers with its name, except `/missing…` (404), and
/// `…/hold/TAG` is held until the test creates `<dir>/release-TAG`
/// (announced with `<dir>/held-<name>-TAG`): requests in flight, on demand,
/// with no timing involved.
pub fn holding_server(name: &str, dir: &str) -> String {
    let script = format!(
        r#"cat > hold.py <<'PY'
import http.server, os, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith('/missing'):
            self.send_response(404)
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        if '/hold/' in self.path:
            tag = self.path.rsplit('/', 1)[1]
            open('{dir}/held-{name}-' + tag, 'w').close()
            while not os.path.exists('{dir}/release-' + tag):
                time.sleep(0.05)
        body = b'{name}'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(('0.0.0.0', 8000), H).serve_forever()
PY
exec python3 hold.py
"#
    );
    let user_data = script
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!(
        "[[instance]]\nname = \"{name}\"\nsubnet = \"priv-a\"\nsecurity_groups = [\"sg-backend\"]\nuser_data = \"{user_data}\"\n"
    )
}

/// `n` GETs of `url` from the internet, one after the other: one answer
/// (body) per line.
pub fn get(lab: &TestLab, n: usize, url: &str) -> Vec<String> {
    let (_, out) = lab.sh(
        "internet",
        &format!("for i in $(seq {n}); do curl -s -m 10 {url}; echo; done"),
    );
    out.lines().map(str::to_string).collect()
}

/// Starts `n` parallel GETs of `url` from the internet in the background;
/// joining gives `<body> <status>` per request.
pub fn hold(lab: &TestLab, n: usize, url: &str) -> std::thread::JoinHandle<String> {
    let (name, url) = (lab.name.clone(), url.to_string());
    std::thread::spawn(move || {
        let out = std::process::Command::new(super::vpcsim_bin())
            .args(["exec", "--lab", &name, "internet", "--", "sh", "-c"])
            .arg(format!(
                // One write per answer (a line under PIPE_BUF is never split):
                // curl writes the body and `-w` apart, and the parallel
                // answers would interleave.
                "for i in $(seq {n}); do (r=$(curl -s -m 120 -w ' %{{http_code}}' {url}); echo \"$r\") & done; wait"
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

/// Waits (bounded) until `path` exists.
pub fn wait_file(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vpcsim-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
