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

/// Everything of the root network namespace a lab could disturb.
fn root_snapshot() -> String {
    let mut out = String::new();
    for cmd in [
        "ip -o link show | sed 's/ qlen [0-9]*//'",
        "ip -o addr show",
        "ip route show table all",
        "ip rule show",
        "nft -s list ruleset",
        "sysctl net.ipv4.ip_forward net.ipv4.conf.all.forwarding net.ipv4.conf.all.rp_filter net.ipv4.conf.all.send_redirects net.ipv6.conf.all.disable_ipv6 net.ipv6.conf.all.forwarding",
    ] {
        let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
        out.push_str(&format!("$ {cmd}\n{}", String::from_utf8_lossy(&o.stdout)));
    }
    out
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
    let state_dir = format!("/run/vpcsim/{}", lab.name);
    drop(lab);
    assert!(lab_namespaces("t-root").is_empty());
    assert!(!std::path::Path::new(&state_dir).exists());
    assert_eq!(before, root_snapshot());
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
    assert_eq!(before, root_snapshot());
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
