//! `vpcsim apply`: the plan it prints, what it refuses, and crash safety.
//! (What a change does to traffic already flowing: tests/apply_traffic.rs
//! and tests/apply_lb.rs; that it equals a fresh `up`:
//! tests/apply_equivalence.rs; S3 objects kept: tests/s3.rs.)

mod common;

use common::*;
use std::process::Command;

/// The fabric's ruleset and the lab's recorded plan: what a change that
/// must not happen would alter.
fn snapshot(lab: &TestLab) -> (String, serde_json::Value) {
    let ns = format!("vpcsim-{}--fabric", lab.name);
    let nft = Command::new("ip")
        .args(["netns", "exec", &ns, "nft", "list", "ruleset"])
        .output()
        .unwrap();
    let state = std::fs::read_to_string(format!("/run/vpcsim/{}/state.json", lab.name)).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    (
        String::from_utf8_lossy(&nft.stdout).into_owned(),
        state["plan"].clone(),
    )
}

const PRIVATE_IN: &str =
    r#"{ rule = 100, protocol = "tcp", ports = "8000", cidr = "10.0.10.0/24", action = "allow" },"#;

#[test]
fn dry_run_changes_nothing_and_apply_changes_exactly_the_plan() {
    if !require_root() {
        return;
    }
    let lab = TestLab::canary_network_only("apl-plan");
    let (code, before_trace) = lab.trace("alb-a", "v1-a:8000");
    assert_eq!(code, 0, "{before_trace}");
    lab.edit(PRIVATE_IN,
        &format!(
            "{{ rule = 90, protocol = \"tcp\", ports = \"8000\", cidr = \"10.0.10.0/24\", action = \"deny\" }},\n  {PRIVATE_IN}"
        ),
    );
    lab.edit(
        r#"{ target_group = "tg-v1", weight = 90 }"#,
        r#"{ target_group = "tg-v1", weight = 80 }"#,
    );
    lab.edit(
        r#"{ target_group = "tg-v2", weight = 10 }"#,
        r#"{ target_group = "tg-v2", weight = 20 }"#,
    );
    let before = snapshot(&lab);
    let out = lab.vpcsim(&["apply", lab.file.to_str().unwrap(), "--dry-run"]);
    assert!(out.status.success());
    let plan = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        plan.lines().collect::<Vec<_>>(),
        [
            "~ nacl private inbound: + rule 90 deny tcp 8000 from 10.0.10.0/24",
            "~ listener alb:80: weights tg-v1 90 -> 80, tg-v2 10 -> 20",
            "(dry run: nothing was changed)",
        ]
    );
    assert_eq!(before, snapshot(&lab), "--dry-run changed the lab");

    let out = lab.vpcsim(&["apply", lab.file.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["applied"], true);
    let changes = report["plan"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["action"], "change");
    assert_eq!(changes[0]["resource"], "nacl private inbound");
    // The new rule decides at once; only the fabric's ruleset was touched.
    let (code, after) = lab.trace("alb-a", "v1-a:8000");
    assert_eq!(code, 1, "{after}");
    assert!(
        after.contains("nacl private inbound rule 90 deny"),
        "{after}"
    );
    assert_eq!(report["report"]["rulesets"], 1);
    assert_eq!(report["report"]["nodes_added"], 0);
    assert_eq!(report["report"]["nodes_removed"], 0);
    // The same file again: nothing to do.
    let out = lab.apply_file();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("lab `{}`: no changes", lab.name)
    );
}

#[test]
fn what_aws_cannot_change_in_place_and_bad_files_change_nothing() {
    if !require_root() {
        return;
    }
    let lab = TestLab::canary_network_only("apl-ref");
    let before = snapshot(&lab);
    let good = std::fs::read_to_string(&lab.file).unwrap();

    // A subnet's CIDR block: AWS says no, and so does apply.
    lab.edit(r#"cidr = "10.0.40.0/24""#, r#"cidr = "10.0.50.0/24""#);
    let out = lab.apply_file();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("subnet private-2: 10.0.40.0/24 in us-east-1b -> 10.0.50.0/24 in us-east-1b"),
        "{err}"
    );
    assert!(
        err.contains("AWS cannot change a subnet's CIDR block"),
        "{err}"
    );
    assert_eq!(before, snapshot(&lab));

    // A file with an error: the error, exit 2, the lab as it was.
    std::fs::write(
        &lab.file,
        good.replacen(
            r#"security_groups = ["sg-backend"]"#,
            r#"security_groups = ["sg-nope"]"#,
            1,
        ),
    )
    .unwrap();
    let out = lab.apply_file();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("sg-nope"), "{err}");
    assert_eq!(before, snapshot(&lab));
}

#[test]
fn instances_come_and_go_with_their_namespaces_addresses_and_rules() {
    if !require_root() {
        return;
    }
    let lab = TestLab::canary_network_only("apl-inst");
    let ns = |node: &str| format!("vpcsim-{}--{node}", lab.name);
    let exists = |node: &str| std::path::Path::new("/run/netns").join(ns(node)).exists();
    let text = std::fs::read_to_string(&lab.file).unwrap();
    let v1c = "[[instance]]\nname = \"v1-c\"";
    let start = text.find(v1c).unwrap();
    let end = start + text[start + 1..].find("[[").unwrap() + 1;
    // v1-c leaves (and its target), v1-d comes in private-2, in tg-v1.
    let mut next = text[..start].to_string()
        + "[[instance]]\nname = \"v1-d\"\nsubnet = \"private-2\"\nsecurity_groups = [\"sg-backend\"]\n\n"
        + &text[end..];
    next = next.replace(
        r#"targets = ["v1-a", "v1-b", "v1-c"]"#,
        r#"targets = ["v1-a", "v1-b", "v1-d"]"#,
    );
    std::fs::write(&lab.file, next).unwrap();
    let before = lab.status();
    let v1a_ip = before["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "v1-a")
        .unwrap()["private_ip"]
        .clone();
    let plan = lab.apply_ok();
    assert!(plan.contains("- instance v1-c\n"), "{plan}");
    assert!(plan.contains("+ instance v1-d (private-2, "), "{plan}");
    assert!(!exists("v1-c") && exists("v1-d"));
    // Who stays keeps its address.
    let after = lab.status();
    let node = |s: &serde_json::Value, n: &str| {
        s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["node"] == n)
            .cloned()
    };
    assert_eq!(node(&after, "v1-a").unwrap()["private_ip"], v1a_ip);
    // The new instance is in sg-backend: the ALB reaches it on 8000, the
    // bastion does not (no rule), and the model says the same.
    lab.listen("v1-d", &["tcp/8000"]);
    let ip = node(&after, "v1-d").unwrap()["private_ip"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lab.tcp("alb-a", &ip, 8000).is_some());
    assert!(lab.tcp("bastion", &ip, 8000).is_none());
    let (code, t) = lab.trace("alb-b", "v1-d:8000");
    assert_eq!(code, 0, "{t}");
}

#[test]
fn a_change_killed_midway_is_removed_by_down() {
    if !require_root() {
        return;
    }
    let lab = TestLab::canary_network_only("apl-crash");
    let base = std::fs::read_to_string(&lab.file).unwrap();
    let with_doomed = format!("{base}\n[[instance]]\nname = \"doomed\"\nsubnet = \"private-1\"\n");
    for step in ["removed", "namespaces", "links", "firewall"] {
        std::fs::write(&lab.file, &with_doomed).unwrap();
        let out = Command::new(vpcsim_bin())
            .args(["apply", lab.file.to_str().unwrap()])
            .env("VPCSIM_CRASH_AT", step)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), None, "apply was not killed at {step}");
        // The change did not finish: apply says so instead of guessing.
        let out = lab.apply_file();
        assert_eq!(out.status.code(), Some(2), "{step}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("did not finish"));
        let out = lab.vpcsim(&["down", &lab.name]);
        assert!(out.status.success(), "{step}");
        let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let prefix = format!("vpcsim-{}--", lab.name);
        assert!(
            !String::from_utf8_lossy(&left.stdout).contains(&prefix),
            "namespaces left after a crash at {step}"
        );
        std::fs::write(&lab.file, &base).unwrap();
        let out = lab.vpcsim(&["up", lab.file.to_str().unwrap(), "--network-only"]);
        assert!(out.status.success(), "{step}");
    }
}

/// `vpcsim watch`: every save is applied and its plan printed; a save with
/// an error prints it and leaves the lab as it was; the next good save
/// applies again.
#[test]
fn watch_applies_each_save_and_survives_a_broken_one() {
    use std::io::{BufRead, BufReader};
    if !require_root() {
        return;
    }
    let lab = TestLab::canary_network_only("apl-watch");
    let mut watch = Command::new(vpcsim_bin())
        .args(["watch", lab.file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    for stream in [
        Box::new(watch.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(watch.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    // Lines until one contains `want` (30 s at most).
    let until = |want: &str| -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(line) = lines.recv_timeout(std::time::Duration::from_secs(30)) {
            let done = line.contains(want);
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("no `{want}` from vpcsim watch; it printed {seen:?}");
    };
    until("no changes");
    // Saved a second apart: the file's modification time must move.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    lab.edit(PRIVATE_IN,
        &format!("{{ rule = 90, protocol = \"tcp\", ports = \"8000\", cidr = \"10.0.10.0/24\", action = \"deny\" }},\n  {PRIVATE_IN}"),
    );
    let seen = until("applied in");
    assert!(
        seen.iter()
            .any(|l| l == "~ nacl private inbound: + rule 90 deny tcp 8000 from 10.0.10.0/24"),
        "{seen:?}"
    );
    let before = snapshot(&lab);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    lab.edit(r#"nacl = "private""#, r#"nacl = "no-such-nacl""#);
    let seen = until("no-such-nacl");
    assert!(seen.iter().any(|l| l.starts_with("error:")), "{seen:?}");
    assert_eq!(before, snapshot(&lab), "a broken save changed the lab");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    lab.edit(r#"nacl = "no-such-nacl""#, r#"nacl = "private""#);
    until("no changes");
    // Ended by its pid, the only way this test ends a process.
    let _ = watch.kill();
    let _ = watch.wait();
}

/// A flow log added to a running lab starts recording at once; removed, its
/// daemon and the fabric's log statements go, and the records stay.
#[test]
fn flow_logs_come_and_go_with_the_file() {
    if !require_root() {
        return;
    }
    let lab = TestLab::canary_network_only("apl-flow");
    let base = std::fs::read_to_string(&lab.file).unwrap();
    std::fs::write(
        &lab.file,
        format!("{base}\n[[flow_log]]\nresource = \"vpc\"\ntraffic_type = \"ALL\"\nmax_aggregation_interval = 1\n"),
    )
    .unwrap();
    let plan = lab.apply_ok();
    assert!(plan.contains("+ flow log fl-"), "{plan}");
    lab.listen("v1-a", &["tcp/8000"]);
    let v1a = "10.0.20.16";
    let record = lab.eventually(|| {
        lab.tcp("alb-a", v1a, 8000)?;
        let out = lab.vpcsim(&["flow-logs", "--lab", &lab.name]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            // The connection to v1-a: destination port 8000, TCP.
            .find(|l| l.contains(&format!(" {v1a} ")) && l.contains(" 8000 6 "))
            .map(String::from)
    });
    assert!(
        record.is_some_and(|r| r.contains("ACCEPT")),
        "no flow log record of alb-a -> v1-a:8000"
    );

    std::fs::write(&lab.file, &base).unwrap();
    let plan = lab.apply_ok();
    assert!(plan.contains("- flow log fl-"), "{plan}");
    let (ruleset, _) = snapshot(&lab);
    assert!(
        !ruleset.contains("log prefix"),
        "the fabric still logs:\n{ruleset}"
    );
    let state = std::fs::read_to_string(format!("/run/vpcsim/{}/state.json", lab.name)).unwrap();
    assert!(
        !state.contains("\"flow-logs\""),
        "the flow log daemon is still recorded"
    );
    let out = lab.vpcsim(&["flow-logs", "--lab", &lab.name]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" ACCEPT "),
        "the records are gone"
    );
}

/// `apply` reads its file once and validates it pinned to the running lab;
/// when there is no running lab to pin to (not root, not up), the file's own
/// errors still come first, then the reason it cannot be applied.
#[test]
fn apply_names_file_errors_before_root_and_a_lab_that_is_not_up() {
    if !require_root() {
        return;
    }
    let good = shipped_text("canary.toml");
    let bad = good.replacen(
        r#"security_groups = ["sg-backend"]"#,
        r#"security_groups = ["sg-nope"]"#,
        1,
    );
    let lab = TestLab::write("apl-none", &good);
    let dir = lab.file.parent().unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bad_file = dir.join("bad.toml");
    std::fs::write(&bad_file, set_name(&bad, &lab.name)).unwrap();
    let apply = |file: &std::path::Path, as_nobody: bool| {
        let mut cmd = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(vpcsim_bin());
            c
        } else {
            Command::new(vpcsim_bin())
        };
        let out = cmd
            .args(["apply", file.to_str().unwrap()])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = apply(&lab.file, false);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not up"), "{err}");
    let (code, err) = apply(&bad_file, false);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("sg-nope") && !err.contains("is not up"),
        "{err}"
    );
    let (code, err) = apply(&lab.file, true);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("must run as root"), "{err}");
    let (code, err) = apply(&bad_file, true);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("sg-nope") && !err.contains("root"), "{err}");
    // A name that cannot name a lab is refused before it names a state file.
    std::fs::write(&bad_file, set_name(&good, "../x")).unwrap();
    let (code, err) = apply(&bad_file, false);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("lab name `../x` is not valid"), "{err}");
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains(&format!("vpcsim-{}--", lab.name)));
}
