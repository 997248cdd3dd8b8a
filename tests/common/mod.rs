//! Shared helpers for integration tests: each test builds its own lab (own
//! name, so tests run in parallel) and tears it down on drop, even on panic.
//! Every probe runs inside a lab namespace, never from the root namespace.
#![allow(dead_code)]

pub mod lb;

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn vpcsim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vpcsim"))
}

/// True when the test may build labs (root, nft and ip present). Outside CI a
/// machine without them skips with a reason; in CI (`CI` set) it fails.
pub fn require_root() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    if root {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("integration tests need root in CI");
    }
    eprintln!("skipping: integration tests build network namespaces and need root");
    false
}

pub struct TestLab {
    pub name: String,
    pub file: PathBuf,
    _dir: tempdir::TempDir,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The lab name a test uses for `base`: `VPCSIM_TEST_LAB_PREFIX` (at most 3
/// characters) in front, so two suites can run side by side on one machine
/// without ever touching each other's labs.
pub fn lab_name(base: &str) -> String {
    let prefix = std::env::var("VPCSIM_TEST_LAB_PREFIX").unwrap_or_default();
    assert!(
        prefix.len() <= 3,
        "VPCSIM_TEST_LAB_PREFIX is at most 3 characters"
    );
    format!("{prefix}{base}")
}

impl TestLab {
    /// Writes `toml` (whose `name = "…"` line is replaced by `name`) next to a
    /// copy of the topologies directory and runs `vpcsim up`; panics with the
    /// command's output if it fails.
    pub fn up(name: &str, toml: &str) -> TestLab {
        Self::up_with(name, toml, &[])
    }

    /// `up` with extra arguments (`--network-only`).
    pub fn up_with(name: &str, toml: &str, args: &[&str]) -> TestLab {
        let lab = Self::write(name, toml);
        let mut up = vec!["up", lab.file.to_str().unwrap()];
        up.extend_from_slice(args);
        let out = lab.vpcsim(&up);
        if !out.status.success() {
            let _ = lab.vpcsim(&["down", name]);
            panic!(
                "vpcsim up {name} failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        lab
    }

    /// Writes the topology without bringing it up.
    pub fn write(name: &str, toml: &str) -> TestLab {
        let name = &lab_name(name);
        let dir = std::env::temp_dir().join(format!("vpcsim-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = set_name(toml, name);
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        // Down first: a previous crashed run of the same test may have left it.
        let _ = Command::new(vpcsim_bin()).args(["down", name]).output();
        TestLab {
            name: name.to_string(),
            file,
            _dir: tempdir::TempDir(dir),
        }
    }

    /// The shipped canary, network only (no workloads, no ALB daemon).
    pub fn canary_network_only(name: &str) -> TestLab {
        Self::up_with(name, &shipped_text("canary.toml"), &["--network-only"])
    }

    /// Loads a shipped topology from topologies/, renamed.
    pub fn up_shipped(name: &str, file: &str) -> TestLab {
        Self::up(name, &shipped_text(file))
    }

    pub fn vpcsim(&self, args: &[&str]) -> Output {
        Command::new(vpcsim_bin()).args(args).output().unwrap()
    }

    /// Runs a command in a node of this lab; returns its output.
    pub fn exec(&self, node: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", "--lab", &self.name, node, "--"];
        args.extend_from_slice(cmd);
        self.vpcsim(&args)
    }

    /// Runs a shell snippet in a node; returns (exit code, stdout).
    pub fn sh(&self, node: &str, script: &str) -> (i32, String) {
        let out = self.exec(node, &["sh", "-c", script]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Whether a TCP connection from `node` to `addr:port` succeeds within 2 s
    /// (one attempt: for connections that must fail).
    pub fn tcp_ok(&self, node: &str, addr: &str, port: u16) -> bool {
        let (code, _) = self.sh(
            node,
            &format!("timeout 2 bash -c '</dev/tcp/{addr}/{port}' 2>/dev/null"),
        );
        code == 0
    }

    /// `vpcsim apply` of the lab's file as it is now.
    pub fn apply_file(&self) -> Output {
        self.vpcsim(&["apply", self.file.to_str().unwrap()])
    }

    /// Writes `toml` (renamed to this lab) over the lab's file and applies
    /// it; the plan it printed. Panics with apply's output if it failed.
    pub fn apply(&self, toml: &str) -> String {
        std::fs::write(&self.file, set_name(toml, &self.name)).unwrap();
        self.apply_ok()
    }

    /// Applies the lab's file as it is now; the plan it printed. Panics with
    /// apply's output if it failed.
    pub fn apply_ok(&self) -> String {
        stdout_ok(&self.apply_file(), "vpcsim apply")
    }

    /// Replaces the first `from` in the lab's file by `to` (which must be there).
    pub fn edit(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.file).unwrap();
        assert!(text.contains(from), "no `{from}` in the lab's file");
        std::fs::write(&self.file, text.replacen(from, to, 1)).unwrap();
    }

    /// `vpcsim trace` from `from` to `to`: (exit code, stdout).
    pub fn trace(&self, from: &str, to: &str) -> (i32, String) {
        let out = self.vpcsim(&["trace", "--lab", &self.name, from, to]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The lab's state as JSON (`vpcsim status --json`).
    pub fn status(&self) -> serde_json::Value {
        let out = self.vpcsim(&["status", &self.name, "--json"]);
        serde_json::from_str(&stdout_ok(&out, "vpcsim status")).unwrap()
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let out = self.vpcsim(&["down", &self.name]);
        if !out.status.success() && !std::thread::panicking() {
            panic!(
                "vpcsim down {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The stdout of a command that must have succeeded; panics with `what`,
/// its stdout and stderr otherwise.
pub fn stdout_ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A shipped topology's text, its relative paths made absolute (they resolve
/// from topologies/), ready to be written elsewhere.
pub fn shipped_text(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("topologies")
        .join(file);
    let mut text = std::fs::read_to_string(&path).unwrap();
    let dir = path.parent().unwrap().display().to_string();
    for key in ["user_data_file", "seed_dir", "policy_file"] {
        text = text.replace(&format!("{key} = \""), &format!("{key} = \"{dir}/"));
    }
    text
}

/// Replaces the top-level `name = "…"` line.
pub fn set_name(toml: &str, name: &str) -> String {
    let mut done = false;
    toml.lines()
        .map(|l| {
            if !done && l.trim_start().starts_with("name") && !l.starts_with(' ') && l.contains('=')
            {
                done = true;
                format!("name = \"{name}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A TCP/UDP server for probes: on every port given, answers each connection
/// (or datagram) with `<node>:<port> from <peer address>` and closes.
const LISTENER: &str = r#"
import socket, sys, threading
node = sys.argv[1]
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    while True:
        c, a = s.accept()
        try: c.sendall(f"{node}:{port} from {a[0]}\n".encode())
        except OSError: pass
        c.close()
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", port))
    while True:
        d, a = s.recvfrom(2048); s.sendto(f"{node}:{port} from {a[0]}\n".encode(), a)
for p in sys.argv[2:]:
    proto, port = p.split("/")
    threading.Thread(target=tcp if proto == "tcp" else udp, args=(int(port),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"#;

impl TestLab {
    /// Starts the probe listener in `node` on `ports` (`tcp/8000`, `udp/53`)
    /// and waits until it is ready. It lives in the lab; `down` ends it.
    pub fn listen(&self, node: &str, ports: &[&str]) {
        use std::io::BufRead;
        let mut args = vec![
            "exec", "--lab", &self.name, node, "--", "python3", "-u", "-c", LISTENER, node,
        ];
        args.extend_from_slice(ports);
        let mut child = Command::new(vpcsim_bin())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "listener in {node} did not start");
        // The child keeps running inside the lab; it is reaped when the test exits.
        std::mem::forget(child);
    }

    /// Connects from `node` to `addr:port` over TCP (2 s budget) and returns
    /// the listener's answer line (`web:80 from 203.0.113.10`), or None if
    /// the connection failed.
    pub fn tcp(&self, node: &str, addr: &str, port: u16) -> Option<String> {
        let (code, out) = self.sh(
            node,
            &format!("timeout 2 bash -c 'exec 3<>/dev/tcp/{addr}/{port} && head -1 <&3'"),
        );
        (code == 0 && !out.trim().is_empty()).then(|| out.trim().to_string())
    }

    /// Same over UDP.
    pub fn udp(&self, node: &str, addr: &str, port: u16) -> Option<String> {
        let (code, out) = self.sh(
            node,
            &format!(
                "timeout 2 bash -c 'exec 3<>/dev/udp/{addr}/{port} && echo x >&3 && head -1 <&3'"
            ),
        );
        (code == 0 && !out.trim().is_empty()).then(|| out.trim().to_string())
    }

    pub fn ping(&self, node: &str, addr: &str) -> bool {
        self.sh(node, &format!("ping -c 1 -W 1 {addr} >/dev/null"))
            .0
            == 0
    }

    /// For positive checks: retries `check` until it gives an answer, for at
    /// most 30 s (a loaded CI machine can miss one short attempt), so a
    /// path that works is never reported broken because the machine was busy.
    pub fn eventually<T>(&self, mut check: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(v) = check() {
                return Some(v);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// `tcp`, retried within a bound: for connections that must work.
    pub fn tcp_eventually(&self, node: &str, addr: &str, port: u16) -> Option<String> {
        self.eventually(|| self.tcp(node, addr, port))
    }

    /// `udp`, retried within a bound.
    pub fn udp_eventually(&self, node: &str, addr: &str, port: u16) -> Option<String> {
        self.eventually(|| self.udp(node, addr, port))
    }

    /// `ping`, retried within a bound.
    pub fn ping_eventually(&self, node: &str, addr: &str) -> bool {
        self.eventually(|| self.ping(node, addr).then_some(()))
            .is_some()
    }

    /// Packet counters of every commented nft rule in the fabric namespace,
    /// by comment (`nacl private inbound rule * deny` → packets).
    pub fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        let out = self.exec("fabric", &["nft", "-j", "list", "ruleset"]);
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut map = std::collections::BTreeMap::new();
        for item in v["nftables"].as_array().unwrap() {
            let Some(rule) = item.get("rule") else {
                continue;
            };
            let Some(comment) = rule.get("comment").and_then(|c| c.as_str()) else {
                continue;
            };
            let packets = rule["expr"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|e| e.get("counter")?.get("packets")?.as_u64())
                .unwrap_or(0);
            *map.entry(comment.to_string()).or_insert(0) += packets;
        }
        map
    }

    /// Runs `probe` and returns the rules whose counters grew meanwhile.
    pub fn dropped_by<T>(&self, probe: impl FnOnce() -> T) -> (T, Vec<String>) {
        let before = self.counters();
        let out = probe();
        let after = self.counters();
        let grew = after
            .into_iter()
            .filter(|(k, v)| v > before.get(k).unwrap_or(&0))
            .map(|(k, _)| k)
            .filter(|k| {
                k.contains("deny")
                    || k.contains("no rule")
                    || k.starts_with("igw")
                    || k.starts_with("source")
                    || k.starts_with("nat")
                    || k.starts_with("vpce")
            })
            .collect();
        (out, grew)
    }
}

/// The topologies vpcsim ships: the `topologies/*.toml` files the README
/// names. A student's own file saved in topologies/ (broken while they work
/// on it) is not one of them, so it cannot fail the suite.
pub fn shipped_topologies() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut v: Vec<PathBuf> = readme
        .split(|c: char| c.is_whitespace() || "`()[]|,".contains(c))
        .filter(|w| w.starts_with("topologies/") && w.ends_with(".toml"))
        .map(|w| root.join(w))
        .collect();
    v.sort();
    v.dedup();
    assert!(!v.is_empty(), "the README names no shipped topology");
    for f in &v {
        assert!(
            f.is_file(),
            "the README names {} but it does not exist",
            f.display()
        );
    }
    v
}
