//! `vpcsim probe`: real TCP connections, UDP datagrams and ICMP echoes
//! between every pair of nodes (and from the internet hosts) on every port
//! the topology's rules mention, plus a DNS query from every node to the
//! Amazon resolver at VPC base + 2, compared with what the model predicts. A disagreement is a bug of the
//! emulator (or of the model), printed with the model's trace.
//!
//! Every socket is created inside a lab namespace (`netns::run_in`), never
//! in the root namespace. Listeners are plain sockets the probe itself binds
//! in each target node, so nothing outlives the command; a port already
//! taken by a workload (model server, ALB) is probed as it is.

use super::model::{Loc, Model, Path};
use super::trace::{self, ConnectionTrace, Report, Source, Target};
use crate::fabric::aws_side::IMDS_IP;
use crate::fabric::netns::{self, NetnsError};
use crate::topology::plan::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use rand::Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

/// What kept a probe from running (a connection that fails is a result,
/// not an error).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("listening on {node}:{spec}: {source}")]
    Listen {
        node: String,
        spec: PortSpec,
        source: io::Error,
    },
    #[error("reading the fabric's rule counters: {0}")]
    Counters(String),
    #[error("probing {case}: {source}")]
    Attempt { case: String, source: io::Error },
    #[error("the probe's runtime: {0}")]
    Runtime(io::Error),
}

/// Per connection attempt: a SYN lost to a drop rule is retried after 1 s,
/// so 2 s tells a drop from a slow answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A port no rule should mention, probed as a control.
const CONTROL_PORT: u16 = 9999;

#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// `tcp`, `udp` or `icmp` (echo; port 0).
    pub protocol: &'static str,
    pub source: String,
    pub destination: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub source_port: u16,
    /// Whether an answer came back: a completed TCP handshake, a UDP reply,
    /// an echo reply, or a reset / port unreachable (the packets went both
    /// ways).
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
    pub ports: Vec<PortSpec>,
    /// Destinations in table order: the lab's nodes, then S3.
    pub destinations: Vec<String>,
    pub probes: Vec<Probe>,
    /// Fabric drop rules the model blames for failed probes whose nft
    /// counter grew by less than the number of probes blamed on them, or
    /// that are missing from the ruleset: the emulator dropped those packets
    /// somewhere else.
    pub unconfirmed_rules: Vec<String>,
    /// A lab from templates: each resource (`stack.LogicalId`) and its nodes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<(String, Vec<String>)>,
    /// Probes whose outcome differs, plus unconfirmed rules.
    pub disagreements: usize,
    pub elapsed_ms: u128,
}

/// What one table of the report probes: a TCP or UDP port, or ICMP echo
/// (port 0). Written `22` or `tcp/22`, `udp/53`, `icmp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PortSpec {
    #[serde(serialize_with = "protocol_name")]
    pub protocol: Protocol,
    pub port: u16,
}

fn protocol_name<S: serde::Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

impl std::fmt::Display for PortSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.protocol {
            Protocol::Icmp => f.write_str("icmp echo"),
            p => write!(f, "{}/{}", p.name(), self.port),
        }
    }
}

impl std::str::FromStr for PortSpec {
    type Err = String;

    /// A bare number is TCP, as before UDP and ICMP were probed.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        if s == "icmp" {
            return Ok(PortSpec {
                protocol: Protocol::Icmp,
                port: 0,
            });
        }
        let (protocol, port) = match s.split_once('/') {
            Some(("tcp", p)) => (Protocol::Tcp, p),
            Some(("udp", p)) => (Protocol::Udp, p),
            Some((other, _)) => {
                return Err(format!(
                    "unknown protocol `{other}` in `{s}`: write tcp/PORT, udp/PORT or icmp"
                ))
            }
            None => (Protocol::Tcp, s.as_str()),
        };
        match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(PortSpec { protocol, port }),
            _ => Err(format!(
                "`{s}` is not a port: write 22, tcp/22, udp/53 or icmp (ports 1-65535)"
            )),
        }
    }
}

/// Ports the topology mentions: TCP rule ports (the first of a range),
/// target group, health check and listener ports; UDP rule ports and DNS;
/// ICMP echo; plus a control port for TCP and UDP.
pub fn topology_ports(lab: &Lab) -> Vec<PortSpec> {
    let mut ports = BTreeSet::new();
    let mut add = |protocol: Protocol, p: Option<PortRange>| {
        if let Some(r) = p.filter(|r| r.from > 0) {
            for protocol in match protocol {
                Protocol::Tcp | Protocol::Udp => vec![protocol],
                _ => vec![],
            } {
                ports.insert(PortSpec {
                    protocol,
                    port: r.from,
                });
            }
        }
    };
    for sg in &lab.security_groups {
        for r in sg.ingress.iter().chain(&sg.egress) {
            add(r.protocol, r.ports);
        }
    }
    for n in &lab.nacls {
        for e in n.inbound.iter().chain(&n.outbound) {
            add(e.protocol, e.ports);
        }
    }
    let tcp = |port| PortSpec {
        protocol: Protocol::Tcp,
        port,
    };
    for tg in &lab.target_groups {
        ports.insert(tcp(tg.port));
        ports.extend(tg.health_check.port.map(tcp));
        ports.extend(tg.targets.iter().map(|t| tcp(t.port)));
    }
    for lb in &lab.load_balancers {
        ports.extend(lb.listeners.iter().map(|l| tcp(l.port)));
    }
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        ports.insert(PortSpec {
            protocol,
            port: CONTROL_PORT,
        });
    }
    ports.insert(PortSpec {
        protocol: Protocol::Udp,
        port: DNS_PORT,
    });
    ports.insert(PortSpec {
        protocol: Protocol::Icmp,
        port: 0,
    });
    ports.into_iter().collect()
}

const DNS_PORT: u16 = 53;
/// The destination column of the DNS queries to VPC base + 2.
pub const AMAZON_DNS: &str = "amazon-dns";
/// The destination column of the connections to 169.254.169.254:80.
pub const IMDS: &str = "imds";

struct Case {
    src: Source,
    ns: String,
    dst_node: String,
    dst: Ipv4Addr,
    spec: PortSpec,
}

fn cases(lab: &Lab, ports: &[PortSpec]) -> Vec<Case> {
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
            for &spec in ports {
                out.push(Case {
                    src: src.clone(),
                    ns: ns.clone(),
                    dst_node: e.node.clone(),
                    dst: addr,
                    spec,
                });
            }
        }
        // S3 answers on HTTPS, through an endpoint or the internet.
        if let Some(s3) = &lab.s3 {
            if ports.iter().any(|p| p.protocol == Protocol::Tcp) {
                out.push(Case {
                    src: src.clone(),
                    ns: ns.clone(),
                    dst_node: "s3".into(),
                    dst: s3.address,
                    spec: PortSpec {
                        protocol: Protocol::Tcp,
                        port: 443,
                    },
                });
            }
        }
        // Every node asks the Amazon resolver; the internet has its own.
        let dns = PortSpec {
            protocol: Protocol::Udp,
            port: DNS_PORT,
        };
        if src.loc != Loc::Internet && ports.contains(&dns) {
            out.push(Case {
                src: src.clone(),
                ns: ns.clone(),
                dst_node: AMAZON_DNS.into(),
                dst: lab.dns_ip(),
                spec: dns,
            });
        }
        // And the instance metadata service, when HTTP is probed.
        let http = PortSpec {
            protocol: Protocol::Tcp,
            port: 80,
        };
        if src.loc != Loc::Internet && ports.contains(&http) {
            out.push(Case {
                src: src.clone(),
                ns: ns.clone(),
                dst_node: IMDS.into(),
                dst: IMDS_IP,
                spec: http,
            });
        }
    }
    out
}

/// Binds a listener on every TCP and UDP port in every node; ports already
/// in use are kept (whatever listens there answers the probe). The UDP
/// sockets are echoed by [`echo`] while the probes run.
fn listen(lab: &Lab, ports: &[PortSpec]) -> Result<(Vec<TcpListener>, Vec<UdpSocket>), ProbeError> {
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    for e in &lab.enis {
        let ns = lab.namespace(&e.node);
        for spec in ports {
            let addr = (Ipv4Addr::UNSPECIFIED, spec.port);
            let bound = match spec.protocol {
                Protocol::Tcp => {
                    netns::run_in(&ns, || TcpListener::bind(addr))?.map(|l| tcp.push(l))
                }
                Protocol::Udp => netns::run_in(&ns, || UdpSocket::bind(addr))?.map(|s| udp.push(s)),
                _ => Ok(()),
            };
            match bound {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {}
                Err(source) => {
                    return Err(ProbeError::Listen {
                        node: e.node.clone(),
                        spec: *spec,
                        source,
                    })
                }
            }
        }
    }
    Ok((tcp, udp))
}

/// Answers every datagram on a probe's UDP listener with itself.
async fn echo(sock: UdpSocket) -> std::io::Result<()> {
    sock.set_nonblocking(true)?;
    let sock = tokio::net::UdpSocket::from_std(sock)?;
    let mut buf = [0u8; 1500];
    loop {
        let (n, from) = sock.recv_from(&mut buf).await?;
        sock.send_to(&buf[..n], from).await?;
    }
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
fn fabric_counters(lab: &Lab) -> Result<BTreeMap<String, u64>, ProbeError> {
    let mut cmd = std::process::Command::new("nft");
    cmd.args(["-j", "list", "ruleset"]);
    crate::workloads::process::enter_node(
        &mut cmd,
        &lab.name,
        FABRIC,
        crate::workloads::process::Reach::Hypervisor,
    )
    .map_err(|e| ProbeError::Counters(format!("entering the fabric: {e}")))?;
    let out = cmd
        .output()
        .map_err(|e| ProbeError::Counters(format!("running nft: {e}")))?;
    if !out.status.success() {
        return Err(ProbeError::Counters(format!(
            "nft list ruleset in the fabric: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| ProbeError::Counters(format!("nft's JSON: {e}")))?;
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

/// One attempt from inside the source's namespace; returns (source port,
/// or ICMP identifier, and whether an answer came back).
async fn attempt(case: &Case) -> io::Result<(u16, bool)> {
    match case.spec.protocol {
        Protocol::Udp => attempt_udp(case).await,
        Protocol::Icmp => attempt_icmp(case).await,
        _ => attempt_tcp(case).await,
    }
}

/// A random port of the client's ephemeral range.
fn ephemeral(case: &Case) -> u16 {
    let range = case.src.ports;
    rand::thread_rng().gen_range(range.from.max(1)..=range.to)
}

/// A DNS query for the A record of `probe.vpcsim`: any answer, NXDOMAIN
/// included, shows the resolver was reached. Other ports get the same
/// bytes back from the probe's echo listener.
fn dns_query(id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let name = Name::from_ascii("probe.vpcsim.").expect("a valid name");
    m.add_query(Query::query(name, RecordType::A));
    m.to_vec().expect("a query encodes")
}

/// `netns::run_in` inside an attempt, its failure as an I/O error of that
/// attempt.
fn in_ns<T>(ns: &str, f: impl FnOnce() -> T) -> io::Result<T> {
    netns::run_in(ns, f).map_err(io::Error::other)
}

/// One datagram (sent again after 1 s, as a resolver client would) and
/// its answer; a port unreachable counts as an answer, like a TCP reset,
/// and any other error (no route) as no answer.
async fn attempt_udp(case: &Case) -> io::Result<(u16, bool)> {
    let mut tries = 0;
    let (sock, sport) = loop {
        let sport = ephemeral(case);
        match in_ns(&case.ns, || UdpSocket::bind((case.src.addr, sport)))? {
            Ok(s) => break (s, sport),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => tries += 1,
            Err(e) => return Err(e),
        }
    };
    sock.set_nonblocking(true)?;
    let sock = tokio::net::UdpSocket::from_std(sock)?;
    let query = dns_query(sport);
    let mut buf = [0u8; 1500];
    let answer = async {
        sock.connect((case.dst, case.spec.port)).await?;
        for _ in 0..2 {
            sock.send(&query).await?;
            if let Ok(r) = tokio::time::timeout(CONNECT_TIMEOUT / 2, sock.recv(&mut buf)).await {
                return r.map(|_| true);
            }
        }
        Ok(false)
    };
    let reachable = match answer.await {
        Ok(answered) => answered,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    };
    Ok((sport, reachable))
}

/// ICMP checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request on a raw socket of the source's namespace, and its
/// reply: the raw socket sees every ICMP packet of the namespace, so the
/// reply is told by its source address and random identifier. The socket
/// is polled (tokio registers only sockets it owns without `unsafe`).
async fn attempt_icmp(case: &Case) -> io::Result<(u16, bool)> {
    use socket2::{Domain, Socket, Type};
    use std::io::Read;
    let sock = in_ns(&case.ns, || {
        Socket::new(Domain::IPV4, Type::RAW, Some(socket2::Protocol::ICMPV4))
    })??;
    sock.bind(&SocketAddr::from((case.src.addr, 0)).into())?;
    sock.set_nonblocking(true)?;
    let id: u16 = rand::thread_rng().gen();
    let mut req = vec![8, 0, 0, 0];
    req.extend(id.to_be_bytes());
    req.extend(1u16.to_be_bytes());
    req.extend(b"vpcsim probe");
    let sum = checksum(&req);
    req[2..4].copy_from_slice(&sum.to_be_bytes());
    let dst = SocketAddr::from((case.dst, 0)).into();
    let reply = async {
        let mut buf = [0u8; 1500];
        for _ in 0..2 {
            sock.send_to(&req, &dst)?;
            let wait = async {
                loop {
                    let n = match (&sock).read(&mut buf) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let ihl = usize::from(buf[0] & 0x0f) * 4;
                    let from = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
                    let icmp = &buf[ihl.min(n)..n];
                    if from == case.dst
                        && icmp.len() >= 8
                        && icmp[0] == 0
                        && icmp[4..6] == id.to_be_bytes()
                    {
                        return std::io::Result::Ok(());
                    }
                }
            };
            if let Ok(r) = tokio::time::timeout(CONNECT_TIMEOUT / 2, wait).await {
                return r.map(|_| true);
            }
        }
        Ok::<_, std::io::Error>(false)
    };
    // No route, or an error back: no echo reply either (as for TCP).
    Ok((id, reply.await.unwrap_or(false)))
}

/// One connection attempt from a random port of the client's ephemeral
/// range.
async fn attempt_tcp(case: &Case) -> io::Result<(u16, bool)> {
    let mut tries = 0;
    let (sock, sport) = loop {
        let sock = in_ns(&case.ns, tokio::net::TcpSocket::new_v4)??;
        let sport = ephemeral(case);
        match sock.bind(SocketAddr::from((case.src.addr, sport))) {
            Ok(()) => break (sock, sport),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 20 => tries += 1,
            Err(e) => return Err(e),
        }
    };
    let connected = tokio::time::timeout(
        CONNECT_TIMEOUT,
        sock.connect(SocketAddr::from((case.dst, case.spec.port))),
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

pub fn probe(lab: &Lab, ports: &[PortSpec]) -> Result<ProbeReport, ProbeError> {
    let started = Instant::now();
    let (_tcp, udp) = listen(lab, ports)?;
    let cases = cases(lab, ports);
    let before = fabric_counters(lab)?;
    let results = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ProbeError::Runtime)?
        .block_on(async {
            // The echo tasks end with the runtime, after the last attempt.
            for sock in udp {
                tokio::spawn(echo(sock));
            }
            futures::future::join_all(cases.iter().map(attempt)).await
        });
    let model = Model::new(lab);
    let mut probes = Vec::with_capacity(cases.len());
    for (case, result) in cases.iter().zip(results) {
        let (sport, actual) = result.map_err(|source| ProbeError::Attempt {
            case: format!(
                "{} -> {} ({}:{})",
                model.loc_name(case.src.loc),
                case.dst_node,
                case.dst,
                case.spec
            ),
            source,
        })?;
        let pkt = trace::packet(
            case.src.addr,
            case.dst,
            case.spec.protocol,
            PortRange {
                from: sport,
                to: sport,
            },
            case.spec.port,
        );
        let path = model.connect(case.src.loc, pkt);
        probes.push(Probe {
            protocol: case.spec.protocol.name(),
            source: model.loc_name(case.src.loc),
            destination: case.dst_node.clone(),
            address: case.dst,
            port: case.spec.port,
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
            .chain([AMAZON_DNS.to_string(), IMDS.to_string()])
            .collect(),
        probes,
        unconfirmed_rules,
        resources: lab.node_resources(),
        disagreements,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

/// One table per protocol and port: sources down, destinations across. `ok` reachable,
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
    for &spec in &r.ports {
        let is = |p: &Probe| p.protocol == spec.protocol.name() && p.port == spec.port;
        // S3 is probed on tcp/443 only, the resolver on udp/53: no empty
        // column elsewhere.
        let dests: Vec<&str> = dests
            .iter()
            .copied()
            .filter(|d| r.probes.iter().any(|p| is(p) && p.destination == *d))
            .collect();
        writeln!(out, "{spec}").unwrap();
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
                    .find(|p| is(p) && p.source == *s && p.destination == *d)
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
    if !r.resources.is_empty() {
        writeln!(out, "template resources:").unwrap();
        for (resource, nodes) in &r.resources {
            writeln!(out, "  {resource}: {}", nodes.join(", ")).unwrap();
        }
    }
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
            "\nEMULATOR BUG: {} -> {} ({}) {}/{} from port {}: traffic {}, model says {}",
            p.source,
            p.destination,
            p.address,
            p.protocol,
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
    fn port_specs_read_bare_numbers_as_tcp() {
        let spec = |s: &str| s.parse::<PortSpec>();
        assert_eq!(
            spec("22"),
            Ok(PortSpec {
                protocol: Protocol::Tcp,
                port: 22
            })
        );
        assert_eq!(spec("tcp/22"), spec("22"));
        assert_eq!(spec("UDP/53").unwrap().protocol, Protocol::Udp);
        assert_eq!(spec("icmp").unwrap().to_string(), "icmp echo");
        assert!(spec("sctp/9")
            .unwrap_err()
            .contains("unknown protocol `sctp`"));
        assert!(spec("udp/0").is_err());
        assert!(spec("udp/").is_err());
    }

    #[test]
    fn rules_outside_the_fabric_are_not_cross_checked() {
        let nat = "nat gateway: accepts no connections to itself";
        let route = "route table main: no route to 203.0.113.10";
        assert!(unconfirmed([nat, route].into_iter(), &counters(&[]), &counters(&[])).is_empty());
    }
}
