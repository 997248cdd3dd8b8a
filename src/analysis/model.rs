//! AWS's reachability rules over a resolved lab, evaluated without sending a
//! packet: the model `trace`, `probe` and tests predict verdicts with.
//!
//! It is written from shared/design/aws-semantics.md, not from the nftables
//! rendering, so that `probe` can check one against the other. Where a
//! verdict coincides with an nft rule, `Hop::rule` is that rule's comment
//! (`nacl private inbound rule * deny`), so a drop counter names the same rule.
//!
//! A connection is walked as a list of segments (ENI to ENI, ENI to the
//! internet, through NAT gateways); its reply walks each segment backwards
//! as an established flow: security groups let it through (stateful), NACLs
//! check it again (stateless), towards the client's ephemeral port.

mod edges;
mod filters;

use crate::fabric::aws_side::IMDS_IP;
use crate::topology::plan::*;
use serde::Serialize;
use std::net::Ipv4Addr;

/// Ephemeral ports of a Linux client (instances, internet hosts).
pub const LINUX_EPHEMERAL: PortRange = PortRange {
    from: 32768,
    to: 60999,
};
/// Ephemeral ports of ELB nodes and NAT gateways.
pub const ELB_NAT_EPHEMERAL: PortRange = PortRange {
    from: 1024,
    to: 65535,
};
const ALL_PORTS: PortRange = PortRange { from: 0, to: 65535 };
/// Transits (NAT gateways, forwarding instances) before a path counts as a loop.
const MAX_TRANSITS: usize = 8;

/// Where a packet is sent from or delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Loc {
    /// Index into `Lab::enis`.
    Eni(usize),
    /// The emulated internet, beyond the internet gateway (S3's public
    /// side included).
    Internet,
    /// S3 behind a gateway VPC endpoint: index into `Lab::vpc_endpoints`.
    Endpoint(usize),
    /// The Amazon DNS (Route 53 Resolver) at the VPC base + 2.
    AmazonDns,
    /// The instance metadata service at 169.254.169.254.
    Imds,
}

/// A packet as it travels; ports are ranges because a client's source port
/// is only known as its ephemeral range until a real socket picks one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Packet {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: Protocol,
    pub sport: PortRange,
    pub dport: PortRange,
}

impl Packet {
    fn reversed(self) -> Packet {
        Packet {
            src: self.dst,
            dst: self.src,
            protocol: self.protocol,
            sport: self.dport,
            dport: self.sport,
        }
    }
}

impl std::fmt::Display for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.protocol.has_ports() {
            write!(
                f,
                "{} {}:{} -> {}:{}",
                self.protocol.name(),
                self.src,
                self.sport,
                self.dst,
                self.dport
            )
        } else {
            write!(f, "{} {} -> {}", self.protocol.name(), self.src, self.dst)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    Eni,
    SourceDestCheck,
    SgEgress,
    RouteTable,
    NaclOutbound,
    NaclInbound,
    InternetGateway,
    NatGateway,
    SgIngress,
    Internet,
    Destination,
    LoadBalancer,
    VpcEndpoint,
    AmazonDns,
    Imds,
}

impl Component {
    pub fn name(self) -> &'static str {
        match self {
            Component::Eni => "eni",
            Component::SourceDestCheck => "source/dest check",
            Component::SgEgress => "sg egress",
            Component::RouteTable => "route table",
            Component::NaclOutbound => "nacl outbound",
            Component::NaclInbound => "nacl inbound",
            Component::InternetGateway => "internet gateway",
            Component::NatGateway => "nat gateway",
            Component::SgIngress => "sg ingress",
            Component::Internet => "internet",
            Component::Destination => "destination",
            Component::LoadBalancer => "load balancer",
            Component::VpcEndpoint => "vpc endpoint",
            Component::AmazonDns => "amazon dns",
            Component::Imds => "imds",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Deny,
    /// Some of the packet's possible ports pass, others are denied: a
    /// connection works or fails depending on the ephemeral port it draws.
    Partial,
}

/// One step of a path and who decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub component: Component,
    /// The AWS resource: `sg-backend`, NACL `public`, route table `private-1`.
    pub resource: String,
    pub verdict: Verdict,
    /// The rule that decided, named like the nft rule comment when one exists.
    pub rule: String,
    /// The same in words, with the packet's addresses.
    pub detail: String,
}

impl Hop {
    fn pass(component: Component, resource: impl Into<String>, rule: impl Into<String>) -> Hop {
        Hop {
            component,
            resource: resource.into(),
            verdict: Verdict::Pass,
            rule: rule.into(),
            detail: String::new(),
        }
    }
    fn deny(
        component: Component,
        resource: impl Into<String>,
        rule: impl Into<String>,
        detail: impl Into<String>,
    ) -> Hop {
        Hop {
            component,
            resource: resource.into(),
            verdict: Verdict::Deny,
            rule: rule.into(),
            detail: detail.into(),
        }
    }
    fn with_detail(mut self, detail: impl Into<String>) -> Hop {
        self.detail = detail.into();
        self
    }
    pub fn blocks(&self) -> bool {
        self.verdict != Verdict::Pass
    }
}

/// One direction of a connection: every hop, and whether it arrived.
#[derive(Debug, Clone, Serialize)]
pub struct Leg {
    pub packet: Packet,
    pub hops: Vec<Hop>,
    pub delivered: bool,
}

impl Leg {
    pub fn blocked_by(&self) -> Option<&Hop> {
        self.hops.iter().find(|h| h.blocks())
    }
}

/// A connection's verdict: the request, and the reply when the request
/// arrived.
#[derive(Debug, Clone, Serialize)]
pub struct Path {
    pub request: Leg,
    pub reply: Option<Leg>,
    pub reachable: bool,
}

impl Path {
    /// The first hop that stops the connection, request first.
    pub fn blocked_by(&self) -> Option<&Hop> {
        self.request
            .blocked_by()
            .or_else(|| self.reply.as_ref().and_then(|r| r.blocked_by()))
    }
}

/// A part of a request between two places where the packet is received:
/// the reply retraces it backwards, from `to` to `from`.
struct Segment {
    from: Loc,
    to: Loc,
    /// The packet as `to` received it.
    seen: Packet,
}

enum End {
    Delivered(Loc, Packet),
    Blocked,
    /// Received by a NAT gateway or forwarding instance, which sends on
    /// `next` (translated or not) from `at`.
    Transit {
        at: Loc,
        seen: Packet,
        next: Packet,
    },
}

struct Walk {
    hops: Vec<Hop>,
    end: End,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Inbound,
    Outbound,
}

enum Route {
    /// The VPC's local route, to a subnet.
    Local(usize),
    Target(RouteTarget),
    /// A gateway endpoint's prefix-list route: index into `Lab::vpc_endpoints`.
    Endpoint(usize),
    None,
}

pub struct Model<'a> {
    lab: &'a Lab,
}

impl<'a> Model<'a> {
    pub fn new(lab: &'a Lab) -> Self {
        Model { lab }
    }

    /// Whether a new connection `pkt` sent from `from` gets there and its
    /// replies get back.
    pub fn connect(&self, from: Loc, pkt: Packet) -> Path {
        let mut hops = Vec::new();
        let mut segments = Vec::new();
        let (mut loc, mut cur) = (from, pkt);
        let delivered = loop {
            if segments.len() > MAX_TRANSITS {
                hops.push(Hop::deny(
                    Component::RouteTable,
                    "",
                    "routing loop",
                    format!("{pkt} passes more than {MAX_TRANSITS} gateways"),
                ));
                break false;
            }
            let w = self.walk(loc, cur, false);
            hops.extend(w.hops);
            match w.end {
                End::Blocked => break false,
                End::Delivered(to, seen) => {
                    segments.push(Segment {
                        from: loc,
                        to,
                        seen,
                    });
                    break true;
                }
                End::Transit { at, seen, next } => {
                    segments.push(Segment {
                        from: loc,
                        to: at,
                        seen,
                    });
                    loc = at;
                    cur = next;
                }
            }
        };
        let request = Leg {
            packet: pkt,
            hops,
            delivered,
        };
        if !delivered {
            return Path {
                request,
                reply: None,
                reachable: false,
            };
        }
        let reply = self.reply(&segments);
        let reachable = reply.delivered && reply.blocked_by().is_none();
        Path {
            request,
            reply: Some(reply),
            reachable,
        }
    }

    /// The reply retraces every segment backwards as an established flow.
    fn reply(&self, segments: &[Segment]) -> Leg {
        let first = segments.last().expect("a delivered request has a segment");
        let mut leg = Leg {
            packet: first.seen.reversed(),
            hops: Vec::new(),
            delivered: false,
        };
        for seg in segments.iter().rev() {
            let w = self.walk(seg.to, seg.seen.reversed(), true);
            leg.hops.extend(w.hops);
            match w.end {
                End::Blocked => return leg,
                End::Delivered(to, _) if to == seg.from => {}
                End::Delivered(to, _) | End::Transit { at: to, .. } => {
                    leg.hops.push(Hop::deny(
                        Component::RouteTable,
                        self.loc_name(seg.to),
                        "asymmetric route",
                        format!(
                            "the reply goes to {} instead of back to {}",
                            self.loc_name(to),
                            self.loc_name(seg.from)
                        ),
                    ));
                    return leg;
                }
            }
        }
        leg.delivered = true;
        leg
    }

    pub fn loc_name(&self, loc: Loc) -> String {
        match loc {
            Loc::Eni(e) => self.lab.enis[e].node.clone(),
            Loc::Internet => INTERNET.to_string(),
            Loc::Endpoint(v) => self.lab.vpc_endpoints[v].name.clone(),
            Loc::AmazonDns => format!("Amazon DNS {}", self.lab.dns_ip()),
            Loc::Imds => format!("IMDS {IMDS_IP}"),
        }
    }

    fn walk(&self, from: Loc, pkt: Packet, established: bool) -> Walk {
        let mut hops = Vec::new();
        let end = match from {
            Loc::Eni(e) => self.walk_from_eni(e, pkt, established, &mut hops),
            Loc::Internet => self.walk_from_internet(pkt, established, &mut hops),
            Loc::Endpoint(v) => self.walk_from_endpoint(v, pkt, established, &mut hops),
            Loc::AmazonDns => self.walk_from_dns(pkt, &mut hops),
            Loc::Imds => self.walk_from_imds(pkt, &mut hops),
        };
        Walk { hops, end }
    }

    fn walk_from_eni(&self, e: usize, pkt: Packet, established: bool, hops: &mut Vec<Hop>) -> End {
        let lab = self.lab;
        let eni = &lab.enis[e];
        let subnet = &lab.subnets[eni.subnet];
        hops.push(
            Hop::pass(Component::Eni, &eni.node, "")
                .with_detail(format!("leaves {} in subnet {}", eni.id, subnet.name)),
        );
        if pkt.src != eni.private_ip && eni.source_dest_check {
            hops.push(Hop::deny(
                Component::SourceDestCheck,
                &eni.node,
                "source/destination check: source is not the ENI's address",
                format!(
                    "{} sends as {} but its address is {}",
                    eni.node, pkt.src, eni.private_ip
                ),
            ));
            return End::Blocked;
        }
        if pkt.dst == lab.dns_ip() {
            return self.to_dns(pkt, hops);
        }
        if pkt.dst == IMDS_IP {
            return self.to_imds(e, pkt, hops);
        }
        let rt = &lab.route_tables[subnet.route_table];
        let route = self.route(subnet.route_table, pkt.dst);
        if !established && !eni.security_groups.is_empty() {
            // AWS tracks every connection through a NAT gateway.
            let nat = matches!(route, Route::Target(RouteTarget::NatGateway(_)));
            let hop = self.security_groups(e, Dir::Outbound, pkt, nat);
            let stop = hop.blocks();
            hops.push(hop);
            if stop {
                return End::Blocked;
            }
        }
        match route {
            Route::None => {
                hops.push(Hop::deny(
                    Component::RouteTable,
                    &rt.name,
                    format!("route table {}: no route to {}", rt.name, pkt.dst),
                    if lab.vpc_cidr.contains(&pkt.dst) {
                        format!("{} is in the VPC but in no subnet", pkt.dst)
                    } else {
                        format!("no route covers {} (and no default route)", pkt.dst)
                    },
                ));
                End::Blocked
            }
            Route::Local(s) => {
                hops.push(
                    Hop::pass(
                        Component::RouteTable,
                        &rt.name,
                        format!("route table {}: {} -> local", rt.name, lab.vpc_cidr),
                    )
                    .with_detail(format!("{} is in subnet {}", pkt.dst, lab.subnets[s].name)),
                );
                if !self.cross(eni.subnet, s, pkt, hops) {
                    return End::Blocked;
                }
                match lab
                    .enis
                    .iter()
                    .position(|x| x.subnet == s && x.private_ip == pkt.dst)
                {
                    Some(j) => self.arrive(j, pkt, established, hops),
                    None => {
                        hops.push(Hop::deny(
                            Component::Destination,
                            &lab.subnets[s].name,
                            format!("no ENI has {}", pkt.dst),
                            format!(
                                "nothing in subnet {} has the address {}",
                                lab.subnets[s].name, pkt.dst
                            ),
                        ));
                        End::Blocked
                    }
                }
            }
            Route::Endpoint(v) => {
                let ep = &lab.vpc_endpoints[v];
                let pl = lab
                    .s3
                    .as_ref()
                    .map(|s| s.prefix_list_id.clone())
                    .unwrap_or_default();
                hops.push(Hop::pass(
                    Component::RouteTable,
                    &rt.name,
                    format!("route table {}: {pl} -> {}", rt.name, ep.id),
                ));
                if !self.nacl(eni.subnet, Dir::Outbound, pkt, hops) {
                    return End::Blocked;
                }
                hops.push(
                    Hop::pass(Component::VpcEndpoint, &ep.name, "")
                        .with_detail(format!("{} carries it to S3 ({})", ep.id, pkt.dst)),
                );
                if let (false, Some(deny)) = (established, self.s3_refuses(pkt)) {
                    hops.push(deny);
                    return End::Blocked;
                }
                End::Delivered(Loc::Endpoint(v), pkt)
            }
            Route::Target(target) => {
                let dest = self.route_destination(subnet.route_table, pkt.dst);
                let target_name = self.target_name(target);
                hops.push(Hop::pass(
                    Component::RouteTable,
                    &rt.name,
                    format!("route table {}: {dest} -> {target_name}", rt.name),
                ));
                match target {
                    RouteTarget::InternetGateway => {
                        if !self.nacl(eni.subnet, Dir::Outbound, pkt, hops) {
                            return End::Blocked;
                        }
                        self.out_to_internet(pkt, established, hops)
                    }
                    RouteTarget::NatGateway(n) => {
                        let k = lab.nat_gateways[n].eni;
                        let nat = &lab.enis[k];
                        if !self.cross(eni.subnet, nat.subnet, pkt, hops) {
                            return End::Blocked;
                        }
                        let sport = if pkt.protocol.has_ports() {
                            ELB_NAT_EPHEMERAL
                        } else {
                            pkt.sport
                        };
                        let next = Packet {
                            src: nat.private_ip,
                            sport,
                            ..pkt
                        };
                        hops.push(
                            Hop::pass(Component::NatGateway, &lab.nat_gateways[n].name, "")
                                .with_detail(format!(
                                    "{} translates {} to {}{}",
                                    lab.nat_gateways[n].name,
                                    pkt.src,
                                    nat.private_ip,
                                    nat.public_ip
                                        .map(|p| format!(" (Elastic IP {p} at the IGW)"))
                                        .unwrap_or_default()
                                )),
                        );
                        End::Transit {
                            at: Loc::Eni(k),
                            seen: pkt,
                            next,
                        }
                    }
                    RouteTarget::Eni(m) => {
                        let via = &lab.enis[m];
                        if !self.cross(eni.subnet, via.subnet, pkt, hops) {
                            return End::Blocked;
                        }
                        if !established && !via.security_groups.is_empty() {
                            let hop = self.security_groups(m, Dir::Inbound, pkt, false);
                            let stop = hop.blocks();
                            hops.push(hop);
                            if stop {
                                return End::Blocked;
                            }
                        }
                        if via.source_dest_check {
                            hops.push(Hop::deny(
                                Component::SourceDestCheck,
                                &via.node,
                                "source/destination check: destination is not the ENI's address",
                                format!(
                                    "{} receives traffic for {} with its source/destination check on",
                                    via.node, pkt.dst
                                ),
                            ));
                            return End::Blocked;
                        }
                        End::Transit {
                            at: Loc::Eni(m),
                            seen: pkt,
                            next: pkt,
                        }
                    }
                }
            }
        }
    }

    /// NACLs of both subnets when the packet crosses a subnet boundary
    /// (none inside one subnet). False when one of them denies.
    fn cross(&self, from: usize, to: usize, pkt: Packet, hops: &mut Vec<Hop>) -> bool {
        from == to
            || (self.nacl(from, Dir::Outbound, pkt, hops) && self.nacl(to, Dir::Inbound, pkt, hops))
    }

    /// The last step of a walk inside the VPC: ENI `j` receives `pkt`.
    fn arrive(&self, j: usize, pkt: Packet, established: bool, hops: &mut Vec<Hop>) -> End {
        let lab = self.lab;
        let eni = &lab.enis[j];
        if !established && !eni.security_groups.is_empty() {
            let hop = self.security_groups(j, Dir::Inbound, pkt, false);
            let stop = hop.blocks();
            hops.push(hop);
            if stop {
                return End::Blocked;
            }
        }
        if let EniOwner::NatGateway(n) = eni.owner {
            if !established {
                hops.push(Hop::deny(
                    Component::NatGateway,
                    &lab.nat_gateways[n].name,
                    "nat gateway: accepts no connections to itself",
                    format!(
                        "{} only translates connections its VPC opens; nothing listens on {}",
                        lab.nat_gateways[n].name, pkt.dst
                    ),
                ));
                return End::Blocked;
            }
        }
        hops.push(
            Hop::pass(Component::Destination, &eni.node, "")
                .with_detail(format!("arrives at {}", eni.id)),
        );
        End::Delivered(Loc::Eni(j), pkt)
    }

    /// Longest prefix match in a route table: the local route's subnets, the
    /// rest of the VPC CIDR (nothing there), then the user routes.
    fn route(&self, rt: usize, dst: Ipv4Addr) -> Route {
        let lab = self.lab;
        let mut best: Option<(u8, Route)> = None;
        let mut consider = |len: u8, r: Route| {
            if best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, r));
            }
        };
        for (i, s) in lab.subnets.iter().enumerate() {
            if s.cidr.contains(&dst) {
                consider(s.cidr.prefix_len(), Route::Local(i));
            }
        }
        if lab.vpc_cidr.contains(&dst) {
            consider(lab.vpc_cidr.prefix_len(), Route::None);
        }
        for r in &lab.route_tables[rt].routes {
            if r.destination.contains(&dst) {
                consider(r.destination.prefix_len(), Route::Target(r.target));
            }
        }
        if let Some(s3) = lab.s3.as_ref().filter(|s3| s3.range.contains(&dst)) {
            if let Some(v) = lab
                .vpc_endpoints
                .iter()
                .position(|v| v.route_tables.contains(&rt))
            {
                consider(s3.range.prefix_len(), Route::Endpoint(v));
            }
        }
        best.map(|(_, r)| r).unwrap_or(Route::None)
    }

    fn route_destination(&self, rt: usize, dst: Ipv4Addr) -> String {
        self.lab.route_tables[rt]
            .routes
            .iter()
            .filter(|r| r.destination.contains(&dst))
            .max_by_key(|r| r.destination.prefix_len())
            .map(|r| r.destination.to_string())
            .unwrap_or_default()
    }

    fn target_name(&self, t: RouteTarget) -> String {
        match t {
            RouteTarget::InternetGateway => self.lab.internet_gateway.clone().unwrap_or_default(),
            RouteTarget::NatGateway(n) => self.lab.nat_gateways[n].name.clone(),
            RouteTarget::Eni(e) => self.lab.enis[e].node.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::filters::nacl_hop;
    use super::*;
    use std::path::Path;

    fn lab(file: &str) -> Lab {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("topologies")
            .join(file);
        crate::topology::load(&path).expect("shipped topology is valid")
    }

    fn eni(lab: &Lab, node: &str) -> usize {
        lab.enis.iter().position(|e| e.node == node).unwrap()
    }

    fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: PortRange, dport: u16) -> Packet {
        Packet {
            src,
            dst,
            protocol: Protocol::Tcp,
            sport,
            dport: PortRange {
                from: dport,
                to: dport,
            },
        }
    }

    #[test]
    fn canary_alb_reaches_targets_both_ways() {
        let l = lab("canary.toml");
        let m = Model::new(&l);
        for node in ["alb-a", "alb-b"] {
            let a = eni(&l, node);
            let p = m.connect(
                Loc::Eni(a),
                tcp(
                    l.enis[a].private_ip,
                    "10.0.20.16".parse().unwrap(),
                    ELB_NAT_EPHEMERAL,
                    8000,
                ),
            );
            assert!(p.reachable, "{node}: {:?}", p.blocked_by());
            let rules: Vec<&str> = p.request.hops.iter().map(|h| h.rule.as_str()).collect();
            assert!(
                rules.contains(&"sg sg-alb egress tcp/8000 to sg-backend"),
                "{rules:?}"
            );
            assert!(
                rules.contains(&"sg sg-backend ingress tcp/8000 from sg-alb"),
                "{rules:?}"
            );
        }
    }

    #[test]
    fn literal_replies_to_the_alb_die_at_the_public_nacl() {
        let l = lab("seed-001-literal.toml");
        let m = Model::new(&l);
        let a = eni(&l, "alb-a");
        let p = m.connect(
            Loc::Eni(a),
            tcp(
                l.enis[a].private_ip,
                "10.0.20.16".parse().unwrap(),
                ELB_NAT_EPHEMERAL,
                8000,
            ),
        );
        assert!(p.request.delivered);
        assert!(!p.reachable);
        let hop = p.blocked_by().unwrap();
        assert_eq!(hop.rule, "nacl public inbound rule * deny");
        assert_eq!(hop.component, Component::NaclInbound);
        // From public-2 the request itself is cut by the private NACL.
        let b = eni(&l, "alb-b");
        let p = m.connect(
            Loc::Eni(b),
            tcp(
                l.enis[b].private_ip,
                "10.0.20.16".parse().unwrap(),
                ELB_NAT_EPHEMERAL,
                8000,
            ),
        );
        assert!(!p.request.delivered);
        assert_eq!(
            p.blocked_by().unwrap().rule,
            "nacl private inbound rule * deny"
        );
    }

    #[test]
    fn internet_reaches_alb_but_not_backends() {
        let l = lab("canary.toml");
        let m = Model::new(&l);
        let a = eni(&l, "alb-a");
        let host = l.internet.hosts[0];
        let p = m.connect(
            Loc::Internet,
            tcp(host, l.enis[a].public_ip.unwrap(), LINUX_EPHEMERAL, 80),
        );
        assert!(p.reachable, "{:?}", p.blocked_by());
        let p = m.connect(
            Loc::Internet,
            tcp(host, "10.0.20.16".parse().unwrap(), LINUX_EPHEMERAL, 8000),
        );
        assert_eq!(
            p.blocked_by().unwrap().rule,
            "igw: destination is not a public IP of this VPC"
        );
    }

    #[test]
    fn nat_gateway_path_is_checked_in_every_nacl_it_crosses() {
        let l = lab("canary.toml");
        let m = Model::new(&l);
        let v = eni(&l, "v1-a");
        let p = m.connect(
            Loc::Eni(v),
            tcp(
                l.enis[v].private_ip,
                l.internet.hosts[0],
                LINUX_EPHEMERAL,
                443,
            ),
        );
        // Canary's public NACL lets 443 in only as ephemeral replies from
        // the private subnets (1024-65535): 443 itself is below that.
        let hop = p.blocked_by().unwrap();
        assert_eq!(hop.rule, "nacl public inbound rule * deny");
        let rules: Vec<&str> = p.request.hops.iter().map(|h| h.rule.as_str()).collect();
        assert!(
            rules.contains(&"route table private-1: 0.0.0.0/0 -> nat-1"),
            "{rules:?}"
        );
    }

    #[test]
    fn partial_ephemeral_range_is_reported_with_both_parts() {
        let l = lab("canary.toml");
        let nacl = &l.nacls[l.subnets[0].nacl];
        let pkt = tcp(
            "10.0.20.16".parse().unwrap(),
            "10.0.10.5".parse().unwrap(),
            PortRange {
                from: 8000,
                to: 8000,
            },
            0,
        );
        let pkt = Packet {
            dport: PortRange {
                from: 500,
                to: 2000,
            },
            ..pkt
        };
        let hop = nacl_hop(nacl, Dir::Inbound, pkt);
        assert_eq!(hop.verdict, Verdict::Partial);
        assert!(hop.detail.contains("1024-2000"), "{}", hop.detail);
    }

    #[test]
    fn no_route_and_spoofing_are_named() {
        let l = lab("canary.toml");
        let m = Model::new(&l);
        let v = eni(&l, "v1-a");
        let p = m.connect(
            Loc::Eni(v),
            tcp(
                l.enis[v].private_ip,
                "10.0.99.9".parse().unwrap(),
                LINUX_EPHEMERAL,
                443,
            ),
        );
        let hop = p.blocked_by().unwrap();
        assert_eq!(hop.rule, "route table private-1: no route to 10.0.99.9");
        let p = m.connect(
            Loc::Eni(v),
            tcp(
                "10.0.20.99".parse().unwrap(),
                "10.0.20.20".parse().unwrap(),
                LINUX_EPHEMERAL,
                22,
            ),
        );
        assert_eq!(
            p.blocked_by().unwrap().rule,
            "source/destination check: source is not the ENI's address"
        );
    }

    #[test]
    fn a_pass_says_when_the_connection_is_untracked_at_that_eni() {
        // AWS's example group on `srv`: 22 from one address, 80 from
        // anywhere, all out; `open` allows everything both ways, on a
        // private instance behind a NAT gateway and a public one.
        let text = r#"name = "m"
[vpc]
cidr = "10.0.0.0/16"
[internet_gateway]
name = "igw"
[[subnet]]
name = "pub"
cidr = "10.0.1.0/24"
az = "us-east-1a"
route_table = "pub"
map_public_ip = true
[[subnet]]
name = "priv"
cidr = "10.0.2.0/24"
az = "us-east-1a"
route_table = "priv"
[[route_table]]
name = "pub"
routes = [{ destination = "0.0.0.0/0", target = "igw" }]
[[route_table]]
name = "priv"
routes = [{ destination = "0.0.0.0/0", target = "nat" }]
[[nat_gateway]]
name = "nat"
subnet = "pub"
[[security_group]]
name = "web"
ingress = [
  { protocol = "tcp", ports = "22", cidr = "10.0.2.0/24" },
  { protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" },
]
egress = [{ protocol = "all", cidr = "0.0.0.0/0" }]
[[security_group]]
name = "open"
ingress = [{ protocol = "all", cidr = "0.0.0.0/0" }]
egress = [{ protocol = "all", cidr = "0.0.0.0/0" }]
[[instance]]
name = "srv"
subnet = "pub"
security_groups = ["web"]
[[instance]]
name = "private"
subnet = "priv"
security_groups = ["open"]
[[instance]]
name = "public"
subnet = "pub"
security_groups = ["open"]
"#;
        let l = crate::topology::parse(text, Path::new(".")).unwrap();
        let m = Model::new(&l);
        let hop = |from: &str, dst: Ipv4Addr, port: u16, c: Component| {
            let e = eni(&l, from);
            let p = m.connect(
                Loc::Eni(e),
                tcp(l.enis[e].private_ip, dst, LINUX_EPHEMERAL, port),
            );
            assert!(p.reachable, "{from} -> {dst}:{port}: {:?}", p.blocked_by());
            let h = p.request.hops.iter().find(|h| h.component == c).unwrap();
            h.detail.clone()
        };
        let srv = l.enis[eni(&l, "srv")].private_ip;
        assert_eq!(
            hop("private", srv, 80, Component::SgIngress),
            "untracked at srv: every packet meets this rule, removing it cuts the connection at once"
        );
        assert_eq!(hop("private", srv, 22, Component::SgIngress), "");
        let internet: Ipv4Addr = "203.0.113.10".parse().unwrap();
        assert!(
            hop("public", internet, 443, Component::SgEgress).starts_with("untracked at public")
        );
        // Through the NAT gateway: tracked, whatever the rules.
        assert_eq!(hop("private", internet, 443, Component::SgEgress), "");
    }
}
