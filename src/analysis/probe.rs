//! `vpcsim probe`: real TCP connections between every pair of nodes (and
//! from the internet hosts) on every port the topology's rules mention,
//! compared with what the model predicts. A disagreement is a bug of the
//! emulator (or of the model), printed with the model's trace.
//!
//! Every socket is created inside a lab namespace (`netns::run_in`), never
//! in the root namespace. Listeners are plain sockets the probe itself binds
//! in each target node, so nothing outlives the command; a port already
//! taken by a workload (model server, ALB) is probed as it is.

use super::model::{Loc, Model, Path};
use super::trace::{self, ConnectionTrace, Report, Source, Target};
use crate::fabric::netns;
use crate::topology::plan::*;
use rand::Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// Per connection attempt: a SYN lost to a drop rule is retried after 1 s,
/// so 2 s tells a drop from a slow answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A port no rule should mention, probed as a control.
const CONTROL_PORT: u16 = 9999;

#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub source: String,
    pub destination: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub source_port: u16,
    /// Whether the TCP handshake completed (or was answered by a reset:
    /// the packets went both ways).
    pub actual: bool,
    pub model: bool,
    /// The model's blocking rule, and on which leg.
    pub blocked_by: Option<String>,
    pub blocked_on_reply: bool,
    #[serde(skip)]
    pub path: Path,
}

impl Probe {
    pub fn agrees(&self) -> bool {
        self.actual == self.model
    }
}

#[derive(Debug, Serialize)]
pub struct ProbeReport {
    pub lab: String,
    pub ports: Vec<u16>,
    /// Destinations in table order: the lab's nodes, then S3.
    pub destinations: Vec<String>,
    pub probes: Vec<Probe>,
    /// Fabric drop rules the model blames for failed probes whose nft
    /// counter grew by less than the number of probes blamed on them, or
    /// that are missing from the ruleset: the emulator dropped those packets
    /// somewhere else.
    pub unconfirmed_rules: Vec<String>,
    /// Probes whose outcome differs, plus unconfirmed rules.
    pub disagreements: usize,
    pub elapsed_ms: u128,
}

/// Ports the topology mentions: rule ports (the first of a range), target
/// group, health check and listener ports, plus the control port.
pub fn topology_ports(lab: &Lab) -> Vec<u16> {
    let mut ports = BTreeSet::new();
    let mut add = |p: Option<PortRange>| {
        if let Some(r) = p.filter(|r| r.from > 0) {
            ports.insert(r.from);
        }
    };
    for sg in &lab.security_groups {
        for r in sg.ingress.iter().chain(&sg.egress) {
            add(r.ports.filter(|_| r.protocol.has_ports()));
        }
    }
    for n in &lab.nacls {
        for e in n.inbound.iter().chain(&n.outbound) {
            add(e.ports.filter(|_| e.protocol.has_ports()));
        }
    }
    for tg in &lab.target_groups {
        ports.insert(tg.port);
        ports.extend(tg.health_check.port);
        ports.extend(tg.targets.iter().map(|t| t.port));
    }
    for lb in &lab.load_balancers {
        ports.extend(lb.listeners.iter().map(|l| l.port));
    }
    ports.insert(CONTROL_PORT);
    ports.into_iter().collect()
}

struct Case {
    src: Source,
    ns: String,
    dst_node: String,
    dst: Ipv4Addr,
    port: u16,
}

fn cases(lab: &Lab, ports: &[u16]) -> Vec<Case> {
    // NAT gateways only translate: on AWS they never open a connection.
    let mut sources: Vec<(Source, String)> = lab
        .enis
        .iter()
        .filter(|e| !matches!(e.owner, EniOwner::NatGateway(_)))
        .map(|e| {
            let s = trace::source(lab, &e.node).expect("every node is a source");
            (s, lab.namespace(&e.node))
        })
        .collect();
    for h in &lab.internet.hosts {
        let s = trace::source(lab, &h.to_string()).expect("internet hosts are sources");
        sources.push((s, lab.internet_ns()));
    }
    let mut out = Vec::new();
    for (src, ns) in &sources {
        for e in &lab.enis {
            if src.loc != Loc::Internet && src.addr == e.private_ip {
                continue;
            }
            let Ok((Target::Addr { addr, .. }, _)) =
                trace::destination(lab, src, &format!("{}:1", e.node), Protocol::Tcp)
            else {
                continue;
            };
            for &port in ports {
                out.push(Case {
                    src: src.clone(),
                    ns: ns.clone(),
                    dst_node: e.node.clone(),
                    dst: addr,
                    port,
                });
            }
        }
        // S3 answers on HTTPS, through an endpoint or the internet.
        if let Some(s3) = &lab.s3 {
            out.push(Case {
                src: src.clone(),
                ns: ns.clone(),
                dst_node: "s3".into(),
                dst: s3.address,
                port: 443,
            });
        }
    }
    out
}

/// Binds a listener on every port in every node; ports already in use are
/// kept (whatever listens there answers the probe).
fn listen(lab: &Lab, ports: &[u16]) -> anyhow::Result<Vec<TcpListener>> {
    let mut held = Vec::new();
    for e in &lab.enis {
        let ns = lab.namespace(&e.node);
        for &port in ports {
            match netns::run_in(&ns, || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))? {
                Ok(l) => held.push(l),
                Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {}
                Err(err) => anyhow::bail!("listening on {}:{port}: {err}", e.node),
            }
        }
    }
    Ok(held)
}

/// Drop rules every blamed packet reaches in the fabric. (The IGW's
/// "destination is not a public IP" rule is not one: the emulated internet
/// has no route to private addresses, so such packets never get there.)
const CROSS_CHECKED: &[&str] = &["nacl ", "sg ", "igw: source", "source/destination check"];

/// The fabric drop rules the model blames for real failures that the
/// kernel does not confirm. Probes run in parallel, so a drop cannot be
/// pinned on one probe; but each failed probe blamed on a rule sent at least
/// one packet (its SYN, or the SYN-ACK for a reply-blocked probe) into that
/// rule, so its counter must have grown by at least the number of probes
/// blaming it. A blamed rule missing from the ruleset is unconfirmed too.
fn unconfirmed<'a>(
    blamed_per_probe: impl Iterator<Item = &'a str>,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> Vec<String> {
    let mut blamed: BTreeMap<&str, u64> = BTreeMap::new();
    for r in blamed_per_probe.filter(|r| CROSS_CHECKED.iter().any(|c| r.starts_with(c))) {
        *blamed.entry(r).or_insert(0) += 1;
    }
    blamed
        .into_iter()
        .filter(|(r, n)| match (before.get(*r), after.get(*r)) {
            (Some(b), Some(a)) => a.saturating_sub(*b) < *n,
            _ => true,
        })
        .map(|(r, _)| r.to_string())
        .collect()
}

/// Packet counters of the fabric's commented nft rules, by comment.
fn fabric_counters(lab: &Lab) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut cmd = std::process::Command::new("nft");
    cmd.args(["-j", "list", "ruleset"]);
    crate::workloads::process::enter_node(
        &mut cmd,
        &lab.name,
        FABRIC,
        crate::workloads::process::Reach::Hypervisor,
    )?;
    let out = cmd.output()?;
    anyhow::ensure!(
        out.status.success(),
        "nft list ruleset in the fabric: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut counters = BTreeMap::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let rule = &item["rule"];
        let Some(comment) = rule["comment"].as_str() else {
            continue;
        };
        let packets = rule["expr"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|e| e["counter"]["packets"].as_u64())
            .unwrap_or(0);
        *counters.entry(comment.to_string()).or_insert(0) += packets;
    }
    Ok(counters)
}

/// One connection attempt from inside `ns`, from a random port of the
/// client's ephemeral range; returns (source port, reachable).
async fn attempt(case: &Case) -> anyhow::Result<(u16, bool)> {
    let range = case.src.ports;
    let mut tries = 0;
    let (sock, sport) = loop {
        let sock = netns::run_in(&case.ns, tokio::net::TcpSocket::new_v4)??;
        let sport = rand::thread_rng().gen_range(range.from.max(1)..=range.to);
        match sock.bind(SocketAddr::from((case.src.addr, sport))) {
            Ok(()) => break (sock, sport),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let connected = tokio::time::timeout(
        CONNECT_TIMEOUT,
        sock.connect(SocketAddr::from((case.dst, case.port))),
    )
    .await;
    let reachable = match connected {
        Ok(Ok(_)) => true,
        // A reset came back: both directions passed the filters.
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        Err(_) => false,
    };
    Ok((sport, reachable))
}

pub fn probe(lab: &Lab, ports: &[u16]) -> anyhow::Result<ProbeReport> {
    let started = Instant::now();
    let _listeners = listen(lab, ports)?;
    let cases = cases(lab, ports);
    let before = fabric_counters(lab)?;
    let results = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(futures::future::join_all(cases.iter().map(attempt)));
    let model = Model::new(lab);
    let mut probes = Vec::with_capacity(cases.len());
    for (case, result) in cases.iter().zip(results) {
        let (sport, actual) = result?;
        let pkt = trace::packet(
            case.src.addr,
            case.dst,
            Protocol::Tcp,
            PortRange {
                from: sport,
                to: sport,
            },
            case.port,
        );
        let path = model.connect(case.src.loc, pkt);
        probes.push(Probe {
            source: model.loc_name(case.src.loc),
            destination: case.dst_node.clone(),
            address: case.dst,
            port: case.port,
            source_port: sport,
            actual,
            model: path.reachable,
            blocked_by: path.blocked_by().map(|h| {
                if h.rule.is_empty() {
                    h.detail.clone()
                } else {
                    h.rule.clone()
                }
            }),
            blocked_on_reply: path.request.delivered && !path.reachable,
            path,
        });
    }
    let after = fabric_counters(lab)?;
    let failed = probes.iter().filter(|p| !p.actual && !p.model);
    let unconfirmed_rules = unconfirmed(
        failed.filter_map(|p| p.blocked_by.as_deref()),
        &before,
        &after,
    );
    let disagreements = probes.iter().filter(|p| !p.agrees()).count() + unconfirmed_rules.len();
    Ok(ProbeReport {
        lab: lab.name.clone(),
        ports: ports.to_vec(),
        destinations: lab
            .enis
            .iter()
            .map(|e| e.node.clone())
            .chain(lab.s3.as_ref().map(|_| "s3".to_string()))
            .collect(),
        probes,
        unconfirmed_rules,
        disagreements,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

/// One table per port: sources down, destinations across. `ok` reachable,
/// `.` blocked on the request, `r` request arrived but the reply was
/// dropped; `!` marks a cell where reality and model disagree.
pub fn render_text(r: &ProbeReport) -> String {
    let mut out = String::new();
    let mut sources: Vec<&str> = Vec::new();
    for p in &r.probes {
        if !sources.contains(&p.source.as_str()) {
            sources.push(&p.source);
        }
    }
    let dests: Vec<&str> = r.destinations.iter().map(String::as_str).collect();
    let width = dests.iter().map(|d| d.len()).max().unwrap_or(0).max(4) + 1;
    let first = sources
        .iter()
        .map(|s| s.len())
        .max()
        .unwrap_or(0)
        .max("from \\ to".len())
        + 2;
    writeln!(
        out,
        "rows: source (who connects), columns: destination; ok reachable, . request blocked, r reply blocked, ! reality disagrees with the model\n"
    )
    .unwrap();
    for &port in &r.ports {
        // S3 is probed on 443 only: no empty column elsewhere.
        let dests: Vec<&str> = dests
            .iter()
            .copied()
            .filter(|d| {
                r.probes
                    .iter()
                    .any(|p| p.port == port && p.destination == *d)
            })
            .collect();
        writeln!(out, "tcp/{port}").unwrap();
        write!(out, "{:first$}", "from \\ to").unwrap();
        for d in &dests {
            write!(out, "{d:>width$}").unwrap();
        }
        out.push('\n');
        for s in &sources {
            write!(out, "  {s:<w$}", w = first - 2).unwrap();
            for d in &dests {
                let cell = r
                    .probes
                    .iter()
                    .find(|p| p.port == port && p.source == *s && p.destination == *d)
                    .map(|p| {
                        let mark = if p.model {
                            "ok"
                        } else if p.blocked_on_reply {
                            "r"
                        } else {
                            "."
                        };
                        if p.agrees() {
                            mark.to_string()
                        } else {
                            format!("!{mark}")
                        }
                    })
                    .unwrap_or_default();
                write!(out, "{cell:>width$}").unwrap();
            }
            out.push('\n');
        }
        out.push('\n');
    }
    let reachable = r.probes.iter().filter(|p| p.actual).count();
    let replies = r.probes.iter().filter(|p| p.blocked_on_reply).count();
    writeln!(
        out,
        "legend: ok reachable, . request blocked, r reply blocked (NACLs are stateless), ! reality disagrees with the model"
    )
    .unwrap();
    writeln!(
        out,
        "{} probes in {} ms: {reachable} reachable, {replies} blocked only on the reply, {} disagreement{}",
        r.probes.len(),
        r.elapsed_ms,
        r.disagreements,
        if r.disagreements == 1 { "" } else { "s" }
    )
    .unwrap();
    for rule in &r.unconfirmed_rules {
        writeln!(
            out,
            "\nEMULATOR BUG: the model blames `{rule}` for failed probes, but its nft counter did not count them all (or the rule is missing)"
        )
        .unwrap();
    }
    for p in r.probes.iter().filter(|p| !p.agrees()) {
        writeln!(
            out,
            "\nEMULATOR BUG: {} -> {} ({}) tcp/{} from port {}: traffic {}, model says {}",
            p.source,
            p.destination,
            p.address,
            p.port,
            p.source_port,
            if p.actual { "passed" } else { "was blocked" },
            if p.model { "reachable" } else { "blocked" }
        )
        .unwrap();
        out.push_str(&trace::render_text(&Report::Connection(ConnectionTrace {
            source: p.source.clone(),
            destination: format!("{} ({})", p.destination, p.address),
            path: p.path.clone(),
        })));
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    fn counters(v: &[(&str, u64)]) -> BTreeMap<String, u64> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn a_blamed_rule_must_count_every_probe_blamed_on_it() {
        let deny = "nacl private inbound rule * deny";
        let before = counters(&[(deny, 10)]);
        let blamed = [deny, deny, deny];
        assert!(unconfirmed(blamed.into_iter(), &before, &counters(&[(deny, 13)])).is_empty());
        assert_eq!(
            unconfirmed(blamed.into_iter(), &before, &counters(&[(deny, 12)])),
            [deny]
        );
    }

    #[test]
    fn a_blamed_rule_missing_from_the_ruleset_is_unconfirmed() {
        let sg = "sg sg-web ingress: no rule allows it";
        assert_eq!(
            unconfirmed([sg].into_iter(), &counters(&[]), &counters(&[])),
            [sg]
        );
    }

    #[test]
    fn rules_outside_the_fabric_are_not_cross_checked() {
        let nat = "nat gateway: accepts no connections to itself";
        let route = "route table main: no route to 203.0.113.10";
        assert!(unconfirmed([nat, route].into_iter(), &counters(&[]), &counters(&[])).is_empty());
    }
}
