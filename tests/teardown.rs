//! Teardown is total and crash-safe, the root namespace is never modified,
//! and bad input builds nothing.

mod common;
use common::{lab_name, require_root, vpcsim_bin, TestLab};
use std::process::Command;

const TOPO: &str = r#"name = "x"
[vpc]
cidr = "10.0.0.0/16"

[[subnet]]
name = "public-1"
cidr = "10.0.10.0/24"
az = "us-east-1a"
route_table = "public"
map_public_ip = true

[[subnet]]
name = "private-1"
cidr = "10.0.20.0/24"
az = "us-east-1a"
route_table = "private"
nacl = "private"

[internet_gateway]
name = "igw"

[[nat_gateway]]
name = "nat-1"
subnet = "public-1"

[[route_table]]
name = "public"
routes = [{ destination = "0.0.0.0/0", target = "igw" }]

[[route_table]]
name = "private"
routes = [{ destination = "0.0.0.0/0", target = "nat-1" }]

[[nacl]]
name = "private"
inbound = [{ rule = 100, protocol = "tcp", ports = "8000", cidr = "10.0.10.0/24", action = "allow" }]
outbound = [{ rule = 100, protocol = "tcp", ports = "1024-65535", cidr = "10.0.10.0/24", action = "allow" }]

[[instance]]
name = "web"
subnet = "public-1"
user_data = "sleep 1000"

[[instance]]
name = "app"
subnet = "private-1"
run = "model-v1"
"#;

/// The sysctls a lab could be tempted to set in the root namespace (read
/// from /proc/sys: no tool needed, and an unreadable one fails the test).
const ROOT_SYSCTLS: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/default/forwarding",
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/default/rp_filter",
    "net/ipv4/conf/all/send_redirects",
    "net/ipv4/conf/all/proxy_arp",
    "net/ipv4/conf/all/route_localnet",
    "net/ipv6/conf/all/disable_ipv6",
    "net/ipv6/conf/default/disable_ipv6",
    "net/ipv6/conf/all/forwarding",
];

/// Runs a snapshot command; a failing one fails the test (two empty
/// outputs would otherwise compare equal).
fn checked(argv: &[&str]) -> String {
    let o = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(
        o.status.success(),
        "{argv:?} failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Drops the words that change by themselves on an untouched host: an
/// address's lifetime countdown (`valid_lft 86391sec preferred_lft 86391sec`
/// under DHCP/SLAAC) and a link's queue length.
fn without_volatile(text: &str) -> String {
    text.lines()
        .map(|l| {
            let mut out = Vec::new();
            let mut words = l.split_whitespace();
            while let Some(w) = words.next() {
                if matches!(w, "valid_lft" | "preferred_lft" | "qlen") {
                    words.next();
                } else {
                    out.push(w);
                }
            }
            out.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Everything of the root network namespace a lab could disturb: links,
/// addresses, routes of every table, rules, the nft ruleset, the forwarding
/// sysctls, and whether br_netfilter's knobs appeared.
fn root_snapshot() -> String {
    let mut out = String::new();
    for argv in [
        &["ip", "-o", "link", "show"][..],
        &["ip", "-o", "addr", "show"],
        &["ip", "route", "show", "table", "all"],
        &["ip", "-6", "route", "show", "table", "all"],
        &["ip", "rule", "show"],
        &["ip", "-6", "rule", "show"],
        &["nft", "-s", "list", "ruleset"],
    ] {
        out.push_str(&format!(
            "$ {}\n{}\n",
            argv.join(" "),
            without_volatile(&checked(argv))
        ));
    }
    for key in ROOT_SYSCTLS {
        let path = format!("/proc/sys/{key}");
        let v = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        out.push_str(&format!("{key} = {}", v));
    }
    out.push_str(&format!(
        "net/bridge present: {}\n",
        std::path::Path::new("/proc/sys/net/bridge").exists()
    ));
    out
}

/// Asserts the root namespace is as `before`, naming the first difference.
fn assert_root_unchanged(before: &str, when: &str) {
    let now = root_snapshot();
    if now != before {
        let diff: Vec<String> = before
            .lines()
            .zip(now.lines())
            .filter(|(a, b)| a != b)
            .take(5)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "the root namespace changed ({when}):\n{}\n--- before ---\n{before}\n--- now ---\n{now}",
            diff.join("\n")
        );
    }
}

#[test]
fn snapshot_ignores_lifetimes_and_sees_changes() {
    assert_eq!(
        without_volatile("2: eth0 inet 10.1.2.3/24 scope global dynamic eth0\\       valid_lft 86391sec preferred_lft 86391sec"),
        "2: eth0 inet 10.1.2.3/24 scope global dynamic eth0\\"
    );
    assert_eq!(
        without_volatile("1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue state UNKNOWN qlen 1000"),
        "1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue state UNKNOWN"
    );
}

/// The namespaces of the test lab `base` (prefixed like every test lab).
fn lab_namespaces(base: &str) -> Vec<String> {
    let lab = lab_name(base);
    vpcsim::fabric::netns::list(&vpcsim::topology::plan::lab_prefix(&lab))
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(vpcsim_bin()).args(args).output().unwrap()
}

#[test]
fn up_and_down_leave_the_root_namespace_untouched() {
    if !require_root() {
        return;
    }
    let before = root_snapshot();
    let lab = TestLab::up("t-root", TOPO);
    assert_eq!(lab_namespaces("t-root").len(), 5);
    // While the lab runs and carries traffic (web -> IGW -> internet, a
    // DNS lookup), the root namespace is as it was.
    lab.listen("internet", &["tcp/8080"]);
    assert!(lab.tcp_eventually("web", "203.0.113.10", 8080).is_some());
    assert_eq!(lab.sh("app", "getent hosts ip-10-0-10-9.ec2.internal").0, 0);
    assert_root_unchanged(&before, "while the lab is up");
    let state_dir = format!("/run/vpcsim/{}", lab.name);
    drop(lab);
    assert!(lab_namespaces("t-root").is_empty());
    assert!(!std::path::Path::new(&state_dir).exists());
    assert_root_unchanged(&before, "after down");
}

#[test]
fn down_after_kill_9_at_every_stage_of_up_removes_everything() {
    if !require_root() {
        return;
    }
    let before = root_snapshot();
    for stage in ["namespaces", "links", "firewall", "workloads"] {
        let name = format!("t-crash-{}", &stage[..4]);
        let lab = TestLab::write(&name, TOPO);
        let out = Command::new(vpcsim_bin())
            .args(["up", lab.file.to_str().unwrap()])
            .env("VPCSIM_CRASH_AT", stage)
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "up should have died at {stage}"
        );
        let namespaces = lab_namespaces(&name);
        assert_eq!(namespaces.len(), 5, "{stage}: {namespaces:?}");
        assert_root_unchanged(&before, &format!("half-built lab, killed at {stage}"));
        let pids = vpcsim::teardown::processes_in(&namespaces);
        if stage == "workloads" {
            assert!(!pids.is_empty(), "workloads were started before the crash");
        }
        let down = run(&["down", &lab.name]);
        assert!(
            down.status.success(),
            "{}",
            String::from_utf8_lossy(&down.stderr)
        );
        assert!(lab_namespaces(&name).is_empty(), "{stage}: namespaces left");
        for pid in pids {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists()
                    || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .unwrap_or_default()
                        .contains(") Z"),
                "{stage}: process {pid} survived down"
            );
        }
        assert!(!std::path::Path::new(&format!("/run/vpcsim/{}", lab.name)).exists());
        let cgroup = vpcsim::cgroup::path(&lab.name);
        assert!(
            cgroup.as_ref().is_none_or(|p| !p.exists()),
            "{stage}: cgroup {cgroup:?} left"
        );
        // Twice is fine.
        assert!(run(&["down", &lab.name]).status.success());
    }
    assert_root_unchanged(&before, "after the downs");
}

/// `TOPO` with every kind of lab process: the ALB daemon, flow logs, the
/// S3/DNS daemon, user data and a built-in model server.
fn busy_topology() -> String {
    format!(
        r#"{TOPO}
[[subnet]]
name = "public-2"
cidr = "10.0.30.0/24"
az = "us-east-1b"
route_table = "public"
map_public_ip = true

[[target_group]]
name = "tg"
port = 8000
targets = ["app"]

[[load_balancer]]
name = "alb"
subnets = ["public-1", "public-2"]

[[load_balancer.listener]]
port = 80
default_forward = [{{ target_group = "tg", weight = 1 }}]

[[flow_log]]
resource = "vpc"

[[vpc_endpoint]]
name = "s3"
service = "s3"
type = "gateway"
route_tables = ["private"]

[[s3_bucket]]
name = "crash-bucket"
"#
    )
}

/// After `kill -9` of `up` or `down` at a point in time, one `down` removes
/// everything: namespaces, processes, state, and the root namespace is as
/// before. Asserts it for the lab `lab`, whose processes were `pids`.
fn assert_down_cleans(lab: &TestLab, base: &str, pids: &[i32], before: &str, when: &str) {
    let down = run(&["down", &lab.name]);
    assert!(
        down.status.success(),
        "{when}: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(lab_namespaces(base).is_empty(), "{when}: namespaces left");
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "{when}: process {pid} survived down: {stat}"
        );
    }
    assert!(
        !std::path::Path::new(&format!("/run/vpcsim/{}", lab.name)).exists(),
        "{when}: state left"
    );
    assert!(
        run(&["down", &lab.name]).status.success(),
        "{when}: down twice"
    );
    assert_root_unchanged(before, when);
}

/// Spawns `vpcsim ARGS`, SIGKILLs it (by its pid) after `delay` unless it
/// ended first; returns whether it was killed.
fn kill_after(args: &[&str], delay: std::time::Duration) -> bool {
    let mut child = Command::new(vpcsim_bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap();
    }
    child.wait().unwrap();
    killed
}

/// `kill -9` of `up` at random instants (not only the four crash hooks) and
/// of `down` itself. The instants are drawn over the length of a real `up`
/// and `down` of the same lab; the seed is printed (`VPCSIM_TEST_SEED`
/// replays a run).
#[test]
fn down_after_kill_9_of_up_or_down_at_random_instants_removes_everything() {
    use rand::{Rng, SeedableRng};
    use std::time::Instant;
    if !require_root() {
        return;
    }
    let seed: u64 = std::env::var("VPCSIM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("VPCSIM_TEST_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let before = root_snapshot();
    let base = "t-rand";
    let lab = TestLab::write(base, &busy_topology());
    let file = lab.file.to_str().unwrap().to_string();
    // How long a whole `up` and `down` take here: the span to draw from.
    let t = Instant::now();
    let up = run(&["up", &file]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let up_span = t.elapsed();
    let t = Instant::now();
    assert!(run(&["down", &lab.name]).status.success());
    let down_span = t.elapsed();

    for i in 0..10 {
        let delay = up_span.mul_f64(rng.gen_range(0.0..1.0));
        let killed = kill_after(&["up", &file], delay);
        let pids = vpcsim::teardown::processes_in(&lab_namespaces(base));
        let when = format!("up killed={killed} after {delay:?} (run {i}, seed {seed})");
        eprintln!("{when}: {} processes", pids.len());
        assert_down_cleans(&lab, base, &pids, &before, &when);
    }
    for i in 0..3 {
        let up = run(&["up", &file]);
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        let pids = vpcsim::teardown::processes_in(&lab_namespaces(base));
        assert!(!pids.is_empty());
        let delay = down_span.mul_f64(rng.gen_range(0.0..1.0));
        let killed = kill_after(&["down", &lab.name], delay);
        let when = format!("down killed={killed} after {delay:?} (run {i}, seed {seed})");
        assert_down_cleans(&lab, base, &pids, &before, &when);
    }
}

#[test]
fn invalid_topology_exits_2_and_builds_nothing() {
    if !require_root() {
        return;
    }
    let bad = TOPO.replace("10.0.20.0/24", "10.1.20.0/24");
    let lab = TestLab::write("t-invalid", &bad);
    let out = run(&["up", lab.file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("t-invalid.toml:"), "{err}");
    assert!(err.contains("10.1.20.0/24"), "{err}");
    assert!(lab_namespaces("t-invalid").is_empty());
    assert!(!std::path::Path::new(&format!("/run/vpcsim/{}", lab.name)).exists());
}

#[test]
fn a_lab_that_is_up_cannot_be_upped_twice() {
    if !require_root() {
        return;
    }
    let lab = TestLab::up("t-twice", TOPO);
    let out = run(&["up", lab.file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already up"));
    assert_eq!(
        lab_namespaces("t-twice").len(),
        5,
        "the running lab is untouched"
    );
}

#[test]
fn not_root_exits_2_with_the_fix() {
    if !require_root() {
        return;
    }
    let lab = TestLab::write("t-noroot", TOPO);
    std::fs::set_permissions(
        lab.file.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(vpcsim_bin())
        .args(["up", lab.file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("must run as root"));
    assert!(lab_namespaces("t-noroot").is_empty());
}

/// Where /run/netns is an empty directory on a disk, `up` mounts a tmpfs
/// there (shared, as iproute2 makes its own mount) and the lab's namespace
/// files live in memory: `ip netns list` names them and `down` removes them.
/// Run in a mount namespace of its own, over an empty on-disk directory
/// bind-mounted on /run/netns, so the machine's /run/netns and every other
/// lab are untouched.
#[test]
fn namespace_files_go_to_a_tmpfs_where_run_netns_is_an_empty_disk_directory() {
    if !require_root() {
        return;
    }
    let lab = TestLab::write("t-tmpfs", TOPO);
    let empty =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("netns-{}", lab.name));
    let _ = std::fs::remove_dir_all(&empty);
    std::fs::create_dir_all(&empty).unwrap();
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(&empty)
        .output()
        .unwrap();
    if String::from_utf8_lossy(&fs.stdout).trim() == "tmpfs" {
        eprintln!("skipped: {} is on a tmpfs, not a disk", empty.display());
        return;
    }
    let script = format!(
        "mount --bind {empty} /run/netns && {v} up {file} --network-only >/dev/null && \
         stat -f -c %T /run/netns && findmnt -n -o FSTYPE,PROPAGATION --mountpoint /run/netns | tail -1 && \
         ip netns list | grep -c -- '^vpcsim-{name}-' ; {v} down {name} >/dev/null && ls -A /run/netns | wc -l",
        empty = empty.display(),
        v = vpcsim_bin().display(),
        file = lab.file.display(),
        name = lab.name,
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        vec![vec!["tmpfs"], vec!["tmpfs", "shared"], vec!["5"], vec!["0"]],
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing went to the directory underneath.
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    let _ = std::fs::remove_dir(&empty);
}
