//! The kernel's word on `Ruleset::update_from`: over random edits of the
//! shipped labs (the three TOML files and seed 002's stacks), loading the
//! old ruleset and then the update leaves exactly what loading the new
//! ruleset whole leaves (`nft list ruleset`). Runs in two throwaway
//! namespaces of its own (root only; skipped otherwise).

use super::fabric;
use super::ruleset::Ruleset;
use crate::fabric::netns;
use crate::topology::plan::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::Ipv4Addr;
use std::process::Command;

/// A namespace that is removed when the test ends, failed or not.
struct Scratch(String);

impl Scratch {
    fn new(tag: &str) -> Self {
        let prefix = std::env::var("VPCSIM_TEST_LAB_PREFIX").unwrap_or_else(|_| "t".into());
        let name = format!("vpcsim-{prefix}fwupd{}-{tag}", std::process::id());
        netns::create_all(&[(name.clone(), vec![])]).expect("creating a scratch namespace");
        Scratch(name)
    }

    fn load(&self, script: &str) {
        if let Err(e) = super::spawn_apply(&self.0, script).and_then(|p| p.wait()) {
            panic!("{e}\n--- script ---\n{script}");
        }
    }

    /// `nft list ruleset`, with each table's sets and chains in name order:
    /// an update adds objects after the ones that were there, a full load in
    /// the order of the script, and neither order means anything.
    fn list(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "list", "ruleset"])
            .output()
            .expect("running nft");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        canonical(&String::from_utf8_lossy(&out.stdout))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = netns::remove(&self.0);
    }
}

fn canonical(listing: &str) -> String {
    let mut tables: Vec<String> = Vec::new();
    let mut blocks: Vec<String> = Vec::new();
    let mut header = String::new();
    for line in listing.lines() {
        if line.starts_with("table ") {
            header = line.to_string();
            blocks.clear();
        } else if line == "}" {
            blocks.sort();
            tables.push(format!("{header}\n{}}}", blocks.concat()));
        } else if line.starts_with("\t") && !line.starts_with("\t\t") && line.trim() != "}" {
            blocks.push(format!("{line}\n"));
        } else if !line.trim().is_empty() {
            blocks
                .last_mut()
                .expect("a block")
                .push_str(&format!("{line}\n"));
        }
    }
    tables.sort();
    tables.join("\n")
}

fn shipped(file: &str) -> Lab {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    crate::topology::parse(&text, &dir).unwrap_or_else(|e| panic!("{file}: {e:?}"))
}

/// Seed 002's five CloudFormation stacks, as `up` reads them.
fn penguin() -> Lab {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/penguin");
    let files: Vec<_> = [
        "network.yaml",
        "security-groups.yaml",
        "endpoint.yaml",
        "data.yaml",
        "app.yaml",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    let opts = crate::cloudformation::stacks::Options {
        name: Some("penguin".into()),
        region: "us-east-1".into(),
        params: [
            "app.AppSubnets=@network.AppSubnet1,@network.AppSubnet2",
            "app.Ec2SecurityGroup=@security-groups.Ec2SecurityGroup",
            "data.DBPassword=labpassword",
        ]
        .map(String::from)
        .to_vec(),
        runs: vec![],
    };
    let imported = crate::cloudformation::stacks::load(&files, &opts).expect("penguin loads");
    crate::topology::validate::validate_with(&imported.topology, &dir, None)
        .unwrap_or_else(|e| panic!("penguin: {e:?}"))
}

fn cidr(rng: &mut StdRng) -> ipnet::Ipv4Net {
    match rng.gen_range(0..4) {
        0 => "0.0.0.0/0".parse().unwrap(),
        1 => format!("10.0.{}.0/24", rng.gen_range(0..50))
            .parse()
            .unwrap(),
        2 => format!("192.0.2.{}/32", rng.gen_range(1..255))
            .parse()
            .unwrap(),
        _ => "10.0.0.0/16".parse().unwrap(),
    }
}

fn proto_ports(rng: &mut StdRng) -> (Protocol, Option<PortRange>) {
    let protocol =
        [Protocol::All, Protocol::Tcp, Protocol::Udp, Protocol::Icmp][rng.gen_range(0..4)];
    let ports = protocol.has_ports().then(|| match rng.gen_range(0..3) {
        0 => PortRange { from: 0, to: 65535 },
        1 => PortRange {
            from: 1024,
            to: 65535,
        },
        _ => {
            let p = rng.gen_range(1..10000);
            PortRange { from: p, to: p }
        }
    });
    (protocol, ports)
}

fn sg_rule(rng: &mut StdRng, groups: usize) -> SgRulePlan {
    let (protocol, ports) = proto_ports(rng);
    let peer = if rng.gen_bool(0.3) {
        SgPeer::Group(rng.gen_range(0..groups))
    } else {
        SgPeer::Cidr(cidr(rng))
    };
    SgRulePlan {
        protocol,
        ports,
        peer,
    }
}

/// One random edit of the kinds `apply` makes: NACL entries and
/// associations, SG rules and memberships, ENIs, public IPs, the
/// source/destination check, NACLs and groups added, flow logs.
fn edit(lab: &mut Lab, rng: &mut StdRng) {
    let pick = |rng: &mut StdRng, n: usize| rng.gen_range(0..n.max(1));
    match rng.gen_range(0..12) {
        0 => {
            let (protocol, ports) = proto_ports(rng);
            let entry = NaclEntry {
                rule: rng.gen_range(1..32766),
                protocol,
                ports,
                cidr: cidr(rng),
                action: if rng.gen_bool(0.5) {
                    Action::Allow
                } else {
                    Action::Deny
                },
            };
            let n = pick(rng, lab.nacls.len());
            let list = if rng.gen_bool(0.5) {
                &mut lab.nacls[n].inbound
            } else {
                &mut lab.nacls[n].outbound
            };
            let at = pick(rng, list.len() + 1).min(list.len());
            list.insert(at, entry);
        }
        1 => {
            let n = pick(rng, lab.nacls.len());
            let list = &mut lab.nacls[n].inbound;
            if !list.is_empty() {
                let at = pick(rng, list.len());
                list.remove(at);
            }
        }
        2 => {
            let g = pick(rng, lab.security_groups.len());
            let rule = sg_rule(rng, lab.security_groups.len());
            if rng.gen_bool(0.5) {
                lab.security_groups[g].ingress.push(rule);
            } else {
                lab.security_groups[g].egress.push(rule);
            }
        }
        3 => {
            let g = pick(rng, lab.security_groups.len());
            let sg = &mut lab.security_groups[g];
            let list = if rng.gen_bool(0.5) {
                &mut sg.ingress
            } else {
                &mut sg.egress
            };
            if !list.is_empty() {
                let at = pick(rng, list.len());
                list.remove(at);
            }
        }
        4 => {
            // An ENI joins or leaves a group (never its last one).
            let e = pick(rng, lab.enis.len());
            let g = pick(rng, lab.security_groups.len());
            let groups = &mut lab.enis[e].security_groups;
            if groups.is_empty() {
                return; // a NAT gateway's
            }
            if let Some(at) = groups.iter().position(|&x| x == g) {
                if groups.len() > 1 {
                    groups.remove(at);
                }
            } else {
                groups.push(g);
            }
        }
        5 => {
            let e = pick(rng, lab.enis.len());
            let eni = &mut lab.enis[e];
            eni.public_ip = match eni.public_ip {
                Some(_) => None,
                None => Some(Ipv4Addr::new(198, 51, 100, 200 + e as u8)),
            };
        }
        6 => {
            let e = pick(rng, lab.enis.len());
            lab.enis[e].source_dest_check ^= true;
        }
        7 => {
            // A new instance ENI, a copy of an instance's with its own
            // address and port.
            let Some(src) = lab
                .enis
                .iter()
                .find(|e| matches!(e.owner, EniOwner::Instance(_)))
            else {
                return;
            };
            let mut eni = src.clone();
            let n = lab.enis.len();
            eni.id = format!("eni-new{n}");
            eni.node = format!("new{n}");
            eni.host_if = format!("e9-new{n}");
            let base = lab.subnets[eni.subnet].cidr.network().octets();
            eni.private_ip = Ipv4Addr::new(base[0], base[1], base[2], 200 + (n % 50) as u8);
            eni.public_ip = None;
            lab.enis.push(eni);
        }
        8 => {
            // An instance ENI goes (NAT gateways keep theirs).
            let e = pick(rng, lab.enis.len());
            if matches!(lab.enis[e].owner, EniOwner::Instance(_)) {
                lab.enis.remove(e);
                for nat in &mut lab.nat_gateways {
                    if nat.eni > e {
                        nat.eni -= 1;
                    }
                }
            }
        }
        9 => {
            let s = pick(rng, lab.subnets.len());
            lab.subnets[s].nacl = pick(rng, lab.nacls.len());
        }
        10 => {
            // A new NACL for one subnet, or the last NACL goes when unused.
            let last = lab.nacls.len() - 1;
            if rng.gen_bool(0.5) || lab.subnets.iter().any(|s| s.nacl == last) {
                let mut nacl = lab.nacls[pick(rng, lab.nacls.len())].clone();
                nacl.name = format!("nacl-{}", lab.nacls.len());
                lab.nacls.push(nacl);
                let s = pick(rng, lab.subnets.len());
                lab.subnets[s].nacl = lab.nacls.len() - 1;
            } else {
                lab.nacls.pop();
            }
        }
        _ => {
            if rng.gen_bool(0.5) && !lab.flow_logs.is_empty() {
                lab.flow_logs.clear();
            } else if lab.flow_logs.is_empty() {
                lab.flow_logs.push(FlowLogPlan {
                    id: "fl-0".into(),
                    resource: FlowLogResource::Vpc,
                    traffic_type: TrafficType::All,
                    interval_s: 60,
                });
            } else {
                // A new group with a random rule, for one ENI.
                let n = lab.security_groups.len();
                lab.security_groups.push(SecurityGroupPlan {
                    name: format!("sg-new{n}"),
                    id: format!("sg-new{n}"),
                    ingress: vec![sg_rule(rng, n + 1)],
                    egress: vec![sg_rule(rng, n + 1)],
                });
                let e = pick(rng, lab.enis.len());
                if !lab.enis[e].security_groups.is_empty() {
                    lab.enis[e].security_groups.push(n);
                }
            }
        }
    }
}

#[test]
fn updates_leave_what_a_full_load_leaves() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (two scratch network namespaces)");
        return;
    }
    let updated = Scratch::new("a");
    let fresh = Scratch::new("b");
    let labs = [
        "canary.toml",
        "canary-docker.toml",
        "seed-001-literal.toml",
        "penguin",
    ];
    for seed in 0..50u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut lab = match labs[seed as usize % labs.len()] {
            "penguin" => penguin(),
            file => shipped(file),
        };
        let mut old: Ruleset = fabric::render(&lab);
        updated.load(&old.to_nft());
        for step in 0..4 {
            for _ in 0..rng.gen_range(1..4) {
                edit(&mut lab, &mut rng);
            }
            let new = fabric::render(&lab);
            if let Some(script) = new.update_from(&old) {
                updated.load(&script);
            }
            fresh.load(&new.to_nft());
            assert_eq!(
                updated.list(),
                fresh.list(),
                "seed {seed} step {step}: update\n{}",
                new.update_from(&old).unwrap_or_default()
            );
            old = new;
        }
    }
}
