//! `vpcsim trace SRC DST:PORT`: the model's verdict for one connection, hop
//! by hop, request and reply, like AWS Reachability Analyzer. Through a load
//! balancer's DNS name it follows client -> every ALB node -> listener ->
//! every target of the forwarded target groups.

use super::model::{
    Component, Hop, Loc, Model, Packet, Path, Verdict, ELB_NAT_EPHEMERAL, LINUX_EPHEMERAL,
};
use crate::topology::plan::*;
use serde::Serialize;
use std::fmt::Write;
use std::net::Ipv4Addr;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("unknown source `{0}`: give a node ({1}), `internet`, an internet host or `NODE@ADDRESS` for a forged source")]
    Source(String, String),
    #[error("unknown destination `{0}`: give a node ({1}), `internet`, an address or a load balancer's DNS name")]
    Destination(String, String),
    #[error("`{0}` is {1} nodes ({2}): name one of them")]
    Several(String, usize, String),
    #[error("`{0}`: give the destination as DST:PORT (a port from 1 to 65535)")]
    Port(String),
    #[error("unknown protocol `{0}`: use tcp, udp or icmp")]
    Protocol(String),
}

/// Who opens the connection.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub name: String,
    pub loc: Loc,
    pub addr: Ipv4Addr,
    /// Where the client's source port comes from.
    pub ports: PortRange,
}

#[derive(Debug, Clone)]
pub enum Target {
    Addr {
        name: String,
        addr: Ipv4Addr,
    },
    /// Index into `Lab::load_balancers`.
    LoadBalancer(usize),
}

fn node_list(lab: &Lab) -> String {
    lab.enis
        .iter()
        .map(|e| e.node.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The client port range of an ENI's owner: Linux for instances, AWS's
/// 1024-65535 for ALB nodes and NAT gateways.
pub fn ephemeral(eni: &Eni) -> PortRange {
    match eni.owner {
        EniOwner::Instance(_) => LINUX_EPHEMERAL,
        EniOwner::NatGateway(_) | EniOwner::LoadBalancerNode(..) => ELB_NAT_EPHEMERAL,
    }
}

pub fn source(lab: &Lab, text: &str) -> Result<Source, TraceError> {
    let err = || TraceError::Source(text.into(), node_list(lab));
    let internet = |addr: Ipv4Addr| Source {
        name: format!("{INTERNET} ({addr})"),
        loc: Loc::Internet,
        addr,
        ports: LINUX_EPHEMERAL,
    };
    if text == INTERNET {
        return lab
            .internet
            .hosts
            .first()
            .copied()
            .map(internet)
            .ok_or_else(err);
    }
    let (node, forged) = match text.split_once('@') {
        Some((n, a)) => (n, Some(a.parse::<Ipv4Addr>().map_err(|_| err())?)),
        None => (text, None),
    };
    let eni = match node.parse::<Ipv4Addr>() {
        Ok(ip) if forged.is_none() && lab.internet.hosts.contains(&ip) => return Ok(internet(ip)),
        Ok(ip) => lab.enis.iter().position(|e| e.private_ip == ip),
        Err(_) => {
            let node = node_of_resource(lab, node)?;
            lab.enis.iter().position(|e| e.node == node)
        }
    }
    .ok_or_else(err)?;
    let e = &lab.enis[eni];
    let addr = forged.unwrap_or(e.private_ip);
    let label = lab.node_label(&e.node);
    Ok(Source {
        name: if forged.is_some() {
            format!("{label} (forging {addr})")
        } else {
            format!("{label} ({addr})")
        },
        loc: Loc::Eni(eni),
        addr,
        ports: ephemeral(e),
    })
}

/// A node's name as written, or the one node a template resource (logical
/// id, `stack.LogicalId`, Name tag) built; several are an error naming them.
fn node_of_resource(lab: &Lab, text: &str) -> Result<String, TraceError> {
    if lab.eni_by_node(text).is_some() {
        return Ok(text.to_string());
    }
    match lab.nodes_of_resource(text).as_slice() {
        [] => Ok(text.to_string()),
        [one] => Ok(one.clone()),
        many => Err(TraceError::Several(
            text.into(),
            many.len(),
            many.join(", "),
        )),
    }
}

/// `DST:PORT`; the port may be omitted for icmp.
pub fn destination(
    lab: &Lab,
    from: &Source,
    text: &str,
    protocol: Protocol,
) -> Result<(Target, u16), TraceError> {
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| TraceError::Port(text.into()))?,
        ),
        None if !protocol.has_ports() => (text, 0),
        None => return Err(TraceError::Port(text.into())),
    };
    if let Some(lb) = lab
        .load_balancers
        .iter()
        .position(|l| l.dns_name == host || l.name == host)
        .or_else(|| lab.load_balancer_of_resource(host))
    {
        return Ok((Target::LoadBalancer(lb), port));
    }
    let s3 = lab.s3.as_ref().filter(|_| {
        host == "s3"
            || host == "s3.amazonaws.com"
            || host == format!("s3.{}.amazonaws.com", lab.region)
            || host.ends_with(".s3.amazonaws.com")
    });
    let addr = if host == INTERNET {
        lab.internet.hosts.first().copied()
    } else if let Some(s3) = s3 {
        Some(s3.address)
    } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
        Some(ip)
    } else {
        // A node by name: its public IP from the internet (when it has one),
        // its private IP from inside the VPC.
        lab.eni_by_node(&node_of_resource(lab, host)?)
            .map(|e| match (from.loc, e.public_ip) {
                (Loc::Internet, Some(p)) => p,
                _ => e.private_ip,
            })
    };
    let addr = addr.ok_or_else(|| TraceError::Destination(host.into(), node_list(lab)))?;
    let name = lab
        .enis
        .iter()
        .find(|e| e.private_ip == addr || e.public_ip == Some(addr))
        .map(|e| format!("{} ({addr})", lab.node_label(&e.node)))
        .or_else(|| s3.map(|_| format!("s3 ({addr})")))
        .unwrap_or_else(|| addr.to_string());
    Ok((Target::Addr { name, addr }, port))
}

pub fn parse_protocol(s: &str) -> Result<Protocol, TraceError> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "icmp" => Ok(Protocol::Icmp),
        _ => Err(TraceError::Protocol(s.into())),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionTrace {
    pub source: String,
    pub destination: String,
    #[serde(flatten)]
    pub path: Path,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetTrace {
    pub target_group: String,
    pub weight: u16,
    pub target: String,
    pub address: String,
    pub path: Path,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlbNodeTrace {
    pub node: String,
    pub front: Path,
    pub listener: Hop,
    pub targets: Vec<TargetTrace>,
    /// The client reaches this node and it reaches at least one target.
    pub reachable: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlbTrace {
    pub source: String,
    pub load_balancer: String,
    pub dns_name: String,
    pub port: u16,
    pub nodes: Vec<AlbNodeTrace>,
    /// Every node (DNS answers any of them) works end to end.
    pub reachable: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Report {
    Connection(ConnectionTrace),
    LoadBalancer(AlbTrace),
}

impl Report {
    pub fn reachable(&self) -> bool {
        match self {
            Report::Connection(c) => c.path.reachable,
            Report::LoadBalancer(a) => a.reachable,
        }
    }
}

pub fn packet(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: Protocol,
    sport: PortRange,
    dport: u16,
) -> Packet {
    Packet {
        src,
        dst,
        protocol,
        sport,
        dport: PortRange {
            from: dport,
            to: dport,
        },
    }
}

pub fn trace(lab: &Lab, from: &Source, to: &Target, protocol: Protocol, port: u16) -> Report {
    let model = Model::new(lab);
    match to {
        Target::Addr { name, addr } => Report::Connection(ConnectionTrace {
            source: from.name.clone(),
            destination: name.clone(),
            path: model.connect(
                from.loc,
                packet(from.addr, *addr, protocol, from.ports, port),
            ),
        }),
        Target::LoadBalancer(l) => {
            Report::LoadBalancer(trace_alb(lab, &model, from, *l, protocol, port))
        }
    }
}

fn trace_alb(
    lab: &Lab,
    model: &Model,
    from: &Source,
    l: usize,
    protocol: Protocol,
    port: u16,
) -> AlbTrace {
    let lb = &lab.load_balancers[l];
    let listener = lb.listeners.iter().find(|x| x.port == port);
    // Every target group a listener rule or the default action forwards to.
    let mut groups: Vec<(usize, u16)> = Vec::new();
    if let Some(li) = listener {
        for wt in li
            .rules
            .iter()
            .flat_map(|r| &r.forward)
            .chain(&li.default_forward)
        {
            if !groups.iter().any(|(g, _)| *g == wt.target_group) {
                groups.push((wt.target_group, wt.weight));
            }
        }
    }
    let listener_hop = match listener {
        Some(_) => Hop {
            component: Component::LoadBalancer,
            resource: lb.name.clone(),
            verdict: Verdict::Pass,
            rule: format!("listener {port}"),
            detail: format!(
                "forwards to {}",
                groups
                    .iter()
                    .map(|(g, w)| format!("{} (weight {w})", lab.target_groups[*g].name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        None => Hop {
            component: Component::LoadBalancer,
            resource: lb.name.clone(),
            verdict: Verdict::Deny,
            rule: format!("{}: no listener on port {port}", lb.name),
            detail: format!(
                "listeners: {}",
                lb.listeners
                    .iter()
                    .map(|x| x.port.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    let nodes: Vec<AlbNodeTrace> = lb
        .nodes
        .iter()
        .map(|&n| {
            let eni = &lab.enis[n];
            let addr = match (from.loc, eni.public_ip) {
                (Loc::Internet, Some(p)) => p,
                _ => eni.private_ip,
            };
            let front = model.connect(
                from.loc,
                packet(from.addr, addr, protocol, from.ports, port),
            );
            let targets: Vec<TargetTrace> = if listener.is_some() && front.reachable {
                groups
                    .iter()
                    .flat_map(|&(g, weight)| {
                        let tg = &lab.target_groups[g];
                        tg.targets.iter().map(move |t| (tg, weight, t))
                    })
                    .map(|(tg, weight, t)| TargetTrace {
                        target_group: tg.name.clone(),
                        weight,
                        target: lab.node_label(&t.instance),
                        address: format!("{}:{}", t.ip, t.port),
                        path: model.connect(
                            Loc::Eni(n),
                            packet(
                                eni.private_ip,
                                t.ip,
                                Protocol::Tcp,
                                ELB_NAT_EPHEMERAL,
                                t.port,
                            ),
                        ),
                    })
                    .collect()
            } else {
                vec![]
            };
            let reachable =
                front.reachable && targets.iter().any(|t| t.path.reachable && t.weight > 0);
            AlbNodeTrace {
                node: lab.node_label(&eni.node),
                front,
                listener: listener_hop.clone(),
                targets,
                reachable,
            }
        })
        .collect();
    AlbTrace {
        source: from.name.clone(),
        load_balancer: lab.node_label(&lb.name),
        dns_name: lb.dns_name.clone(),
        port,
        reachable: !nodes.is_empty() && nodes.iter().all(|n| n.reachable),
        nodes,
    }
}

fn hop_line(out: &mut String, indent: &str, h: &Hop) {
    let verdict = match h.verdict {
        Verdict::Pass => "ok",
        Verdict::Deny => "DENY",
        Verdict::Partial => "PARTIAL",
    };
    let text = match (h.rule.is_empty(), h.detail.is_empty()) {
        (true, _) => h.detail.clone(),
        (false, true) => h.rule.clone(),
        (false, false) => format!("{}  ({})", h.rule, h.detail),
    };
    // Names longer than the column (template labs' kebab ids) keep a space.
    writeln!(
        out,
        "{indent}{verdict:<8}{:<18}{:<13} {text}",
        h.component.name(),
        h.resource
    )
    .unwrap();
}

fn render_path(out: &mut String, indent: &str, p: &Path) {
    writeln!(out, "{indent}request  {}", p.request.packet).unwrap();
    for h in &p.request.hops {
        hop_line(out, &format!("{indent}  "), h);
    }
    match &p.reply {
        Some(r) => {
            writeln!(out, "{indent}reply    {}", r.packet).unwrap();
            for h in &r.hops {
                hop_line(out, &format!("{indent}  "), h);
            }
        }
        None => writeln!(out, "{indent}reply    none (the request did not arrive)").unwrap(),
    }
}

fn verdict_line(reachable: bool, blocked: Option<&Hop>) -> String {
    match (reachable, blocked) {
        (true, _) => "REACHABLE (request and reply)".to_string(),
        (false, Some(h)) => format!(
            "NOT REACHABLE: {} {} {}: {}",
            h.component.name(),
            h.resource,
            if h.verdict == Verdict::Partial {
                "partially denies"
            } else {
                "denies"
            },
            if h.rule.is_empty() {
                &h.detail
            } else {
                &h.rule
            }
        ),
        (false, None) => "NOT REACHABLE".to_string(),
    }
}

pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    match r {
        Report::Connection(c) => {
            writeln!(out, "trace {} -> {}", c.source, c.destination).unwrap();
            render_path(&mut out, "", &c.path);
            writeln!(
                out,
                "{}",
                verdict_line(c.path.reachable, c.path.blocked_by())
            )
            .unwrap();
        }
        Report::LoadBalancer(a) => {
            writeln!(
                out,
                "trace {} -> {} ({}) port {}",
                a.source, a.load_balancer, a.dns_name, a.port
            )
            .unwrap();
            for n in &a.nodes {
                writeln!(out, "\nALB node {}", n.node).unwrap();
                render_path(&mut out, "  ", &n.front);
                if !n.front.reachable {
                    writeln!(out, "  {}", verdict_line(false, n.front.blocked_by())).unwrap();
                    continue;
                }
                hop_line(&mut out, "  ", &n.listener);
                for t in &n.targets {
                    writeln!(
                        out,
                        "  -> {} {} ({}) weight {}",
                        t.target_group, t.target, t.address, t.weight
                    )
                    .unwrap();
                    render_path(&mut out, "     ", &t.path);
                    writeln!(
                        out,
                        "     {}",
                        verdict_line(t.path.reachable, t.path.blocked_by())
                    )
                    .unwrap();
                }
                writeln!(
                    out,
                    "  node {}: {}",
                    n.node,
                    if n.reachable {
                        "reaches at least one target"
                    } else {
                        "NO target reachable"
                    }
                )
                .unwrap();
            }
            writeln!(
                out,
                "\n{}",
                if a.reachable {
                    "REACHABLE through every ALB node"
                } else {
                    "NOT REACHABLE through every ALB node"
                }
            )
            .unwrap();
        }
    }
    out
}
