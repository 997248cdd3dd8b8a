//! Topology validation: every file of tests/bad_topologies must fail with the
//! messages its `# expect:` lines name; every shipped topology must load.
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

#[test]
fn bad_topologies_fail_with_expected_messages() {
    let files = files("tests/bad_topologies");
    assert!(files.len() >= 30, "corpus has only {} files", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let expects: Vec<&str> = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("# expect:"))
            .map(str::trim)
            .collect();
        if expects.is_empty() {
            failures.push(format!("{}: no `# expect:` line", f.display()));
            continue;
        }
        match vpcsim::topology::load(f) {
            Ok(_) => failures.push(format!("{}: loaded, but should fail", f.display())),
            Err(e) => {
                let rendered = e.to_string();
                for x in expects {
                    if !rendered.contains(x) {
                        failures.push(format!(
                            "{}: error does not contain {x:?}:\n{rendered}",
                            f.display()
                        ));
                    }
                }
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
