//! Topology validation: every file of tests/bad_topologies must fail with the
//! errors its `# error:` lines pin (count, line:col, path, message); every shipped topology must load.
//! No root needed.

mod common;
use std::path::{Path, PathBuf};

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

/// One `# error: LINE:COL PATH: MESSAGE` header line of a bad topology.
struct Expected {
    line: usize,
    col: usize,
    path: String,
    message: String,
}

fn parse_expected(l: &str) -> Option<Expected> {
    let rest = l.strip_prefix("# error:")?.trim();
    let (loc, rest) = rest.split_once(' ')?;
    let (line, col) = loc.split_once(':')?;
    let (path, message) = rest.split_once(": ")?;
    Some(Expected {
        line: line.parse().ok()?,
        col: col.parse().ok()?,
        path: path.to_string(),
        message: message.to_string(),
    })
}

/// Each file pins every error it must produce, in file order, with its
/// line, column and TOML path (`# error:` lines): a missing error, a spurious
/// extra one or a wrong location fails. `# expect:` lines name further text
/// (hints) the rendered report must contain.
#[test]
fn bad_topologies_fail_with_exactly_the_pinned_errors() {
    let files = files("tests/bad_topologies");
    assert!(files.len() >= 30, "corpus has only {} files", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
        let expected: Vec<Expected> = header
            .iter()
            .filter(|l| l.starts_with("# error:"))
            .map(|l| {
                parse_expected(l).unwrap_or_else(|| panic!("{}: malformed line {l:?}", f.display()))
            })
            .collect();
        if expected.is_empty() {
            failures.push(format!("{}: no `# error:` line", f.display()));
            continue;
        }
        let e = match vpcsim::topology::load(f) {
            Ok(_) => {
                failures.push(format!("{}: loaded, but should fail", f.display()));
                continue;
            }
            Err(e) => e,
        };
        let rendered = e.to_string();
        if e.errors.len() != expected.len() {
            failures.push(format!(
                "{}: {} errors, the file pins {}:\n{rendered}",
                f.display(),
                e.errors.len(),
                expected.len()
            ));
            continue;
        }
        for ((line, col, d), x) in e.errors.iter().zip(&expected) {
            if (*line, *col, d.path.as_str()) != (x.line, x.col, x.path.as_str())
                || !d.message.contains(&x.message)
            {
                failures.push(format!(
                    "{}: expected {}:{} {}: {}\n got {line}:{col} {}: {}",
                    f.display(),
                    x.line,
                    x.col,
                    x.path,
                    x.message,
                    d.path,
                    d.message
                ));
            }
        }
        for x in header.iter().filter_map(|l| l.strip_prefix("# expect:")) {
            if !rendered.contains(x.trim()) {
                failures.push(format!(
                    "{}: report does not contain {:?}:\n{rendered}",
                    f.display(),
                    x.trim()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shipped_topologies_validate() {
    for f in common::shipped_topologies() {
        if let Err(e) = vpcsim::topology::load(&f) {
            panic!("{e}");
        }
    }
}

#[test]
fn canary_resolves_like_the_report() {
    use vpcsim::topology::plan::*;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lab = vpcsim::topology::load(&root.join("topologies/canary.toml")).unwrap();
    assert_eq!(lab.name, "canary");
    assert_eq!(lab.subnets.len(), 4);
    let bastion = lab.eni_by_node("bastion").unwrap();
    assert_eq!(bastion.private_ip.to_string(), "10.0.10.22");
    assert!(bastion.public_ip.is_some());
    let nat = lab.eni_by_node("nat-1").unwrap();
    assert_eq!(nat.public_ip.unwrap().to_string(), "198.51.100.20");
    assert!(nat.security_groups.is_empty());
    assert!(!nat.source_dest_check);
    assert!(lab.eni_by_node("alb-a").is_some());
    assert!(lab.eni_by_node("alb-b").is_some());
    for v in ["v1-a", "v1-b", "v1-c", "v2-a"] {
        assert!(lab.eni_by_node(v).unwrap().public_ip.is_none(), "{v}");
    }
    let lb = &lab.load_balancers[0];
    assert_eq!(lb.nodes.len(), 2);
    let fwd: Vec<u16> = lb.listeners[0]
        .default_forward
        .iter()
        .map(|w| w.weight)
        .collect();
    assert_eq!(fwd, vec![90, 10]);
    assert_eq!(lab.target_groups[0].targets.len(), 3);
    assert_eq!(lab.target_groups[0].health_check.matcher, vec![(200, 499)]);
    // Every subnet names its NACL: no implicit default NACL.
    assert_eq!(lab.nacls.len(), 2);
    assert_eq!(lab.nacls[0].inbound.len(), 4);
    // Private route tables go through the NAT gateway.
    assert_eq!(
        lab.route_tables[1].routes[0].target,
        RouteTarget::NatGateway(0)
    );
    // No implicit default security group: everyone names theirs.
    assert!(lab.security_groups.iter().all(|g| g.name != "default"));
    // The main table is implicit (only local), appended last.
    assert_eq!(lab.route_tables.last().unwrap().name, "main");
}

/// A minimal valid topology naming the lab `lab`, with a user data file, a
/// bucket policy file and a seed directory taken from `files`.
fn hostile_topology(lab: &str, user_data: &str, policy: &str, seed: &str) -> String {
    format!(
        r#"name = "{lab}"
[vpc]
cidr = "10.0.0.0/16"
[[subnet]]
name = "private-1"
cidr = "10.0.2.0/24"
az = "us-east-1a"
[[instance]]
name = "a"
subnet = "private-1"
user_data_file = "{user_data}"
[[s3_bucket]]
name = "{lab}-bucket"
seed_dir = "{seed}"
{policy}
"#
    )
}

/// `vpcsim up FILE` under `timeout`: it must return by itself (a FIFO or
/// /dev/zero must not block or fill memory), exit 2, say `expect`, and leave
/// no namespace, state directory or lock file of the lab.
fn refused_promptly(lab: &str, file: &Path, expect: &[&str]) {
    let out = std::process::Command::new("timeout")
        .args(["-s", "KILL", "60"])
        .arg(common::vpcsim_bin())
        .arg("up")
        .arg(file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(124), "timed out: {err}");
    assert_ne!(out.status.code(), None, "killed by timeout: {err}");
    assert_eq!(out.status.code(), Some(2), "{}: {err}", file.display());
    for e in expect {
        assert!(err.contains(e), "expected `{e}` in: {err}");
    }
    let ns = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    assert!(
        !ns.contains(&format!("vpcsim-{lab}")),
        "namespace left: {ns}"
    );
    assert!(!Path::new(&format!("/run/vpcsim/{lab}")).exists());
    assert!(!Path::new(&format!("/run/vpcsim/{lab}.lock")).exists());
}

#[test]
fn hostile_files_are_refused_at_validation_promptly() {
    let lab = common::lab_name("hostile");
    let dir = std::env::temp_dir().join(format!("vpcsim-test-{lab}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("seed")).unwrap();
    let fifo = |p: &Path| {
        assert!(std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap()
            .success())
    };
    fifo(&dir.join("pipe"));
    std::os::unix::fs::symlink(dir.join("loop2"), dir.join("loop1")).unwrap();
    std::os::unix::fs::symlink(dir.join("loop1"), dir.join("loop2")).unwrap();
    std::fs::write(dir.join("big.toml"), "#".repeat(1024 * 1024 + 1)).unwrap();

    // The topology file itself: a FIFO, a device, a symlink loop, too large, a directory.
    refused_promptly(&lab, &dir.join("pipe"), &["is a FIFO, not a regular file"]);
    refused_promptly(&lab, Path::new("/dev/zero"), &["is a device"]);
    refused_promptly(&lab, &dir.join("loop1"), &["cannot open", "loop1"]);
    refused_promptly(
        &lab,
        &dir.join("big.toml"),
        &["larger than the limit of 1048576 bytes"],
    );
    refused_promptly(&lab, &dir.join("seed"), &["is a directory"]);

    // Files the topology names: each refused with its field, line and fix.
    std::fs::write(dir.join("user-data.sh"), "#!/bin/sh\n").unwrap();
    std::fs::write(dir.join("policy.json"), "#".repeat(20 * 1024 + 1)).unwrap();
    std::fs::create_dir(dir.join("seed-bad")).unwrap();
    fifo(&dir.join("seed-bad/pipe"));
    let t = dir.join("t.toml");
    let cases: [(&str, &str, &str, &[&str]); 6] = [
        (
            "pipe",
            "",
            "seed",
            &[
                "instance[0].user_data_file: ",
                "pipe is a FIFO",
                "hint: give a regular file of at most 16384 bytes",
            ],
        ),
        (
            "/dev/zero",
            "",
            "seed",
            &["instance[0].user_data_file: ", "/dev/zero is a device"],
        ),
        (
            "user-data.sh",
            "policy_file = \"policy.json\"",
            "seed",
            &[
                "s3_bucket[0].policy_file: ",
                "larger than the limit of 20480 bytes",
            ],
        ),
        (
            "user-data.sh",
            "policy_file = \"loop1\"",
            "seed",
            &["s3_bucket[0].policy_file: ", "cannot open", "loop1"],
        ),
        (
            "user-data.sh",
            "",
            "seed-bad",
            &[
                "s3_bucket[0].seed_dir: ",
                "seed-bad/pipe is a FIFO",
                "at most 1000 entries",
            ],
        ),
        (
            "user-data.sh",
            "",
            "user-data.sh",
            &[
                "s3_bucket[0].seed_dir: ",
                "is a regular file, not a directory",
            ],
        ),
    ];
    for (user_data, policy, seed, expect) in cases {
        std::fs::write(&t, hostile_topology(&lab, user_data, policy, seed)).unwrap();
        refused_promptly(&lab, &t, expect);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
