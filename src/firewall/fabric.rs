//! The fabric namespace's ruleset: where security groups, NACLs, the IGW and
//! the source/destination check become nftables rules.
//!
//! Packet path, as on AWS, for a new connection from ENI A to ENI B:
//! SG egress of A -> NACL outbound of A's subnet -> NACL inbound of B's
//! subnet -> SG ingress of B. Replies skip the SGs (conntrack: stateful) but
//! cross both NACLs again (stateless).
//!
//! What makes this work (see shared/design/dataplane-notes.md): with
//! br_netfilter, bridged frames traverse the inet forward hook with
//! iif = oif = the subnet bridge, while routed packets have two different
//! bridges. So "iif != oif" is exactly "crosses a subnet boundary", the only
//! place NACLs apply; SGs are matched by ENI address, which works for both.

use super::comment;
use super::ruleset::{Family, Hook, Ruleset, SetKind, Table};
use crate::topology::plan::*;
use std::collections::BTreeMap;

/// NFLOG group of the fabric namespace (groups are per namespace).
pub const NFLOG_GROUP: u16 = 1;

/// Which side of a connection a drop rule stands on: the sender's ENI (SG
/// egress, its subnet's NACL outbound, IGW without public IP, source check)
/// or the receiver's (NACL inbound, SG ingress, IGW inbound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

/// NFLOG prefix of a logged packet: `vpcsim:A` accepted, `vpcsim:S:<rule>`
/// dropped on the sender's side, `vpcsim:D:<rule>` on the receiver's.
pub fn prefix(verdict: Option<(Side, &str)>) -> String {
    let p = match verdict {
        None => "vpcsim:A".to_string(),
        Some((Side::Source, rule)) => format!("vpcsim:S:{rule}"),
        Some((Side::Destination, rule)) => format!("vpcsim:D:{rule}"),
    };
    // The kernel keeps 127 bytes of a log prefix.
    p.chars().take(127).collect()
}

pub fn render(lab: &Lab) -> Ruleset {
    let mut t = Table::new(Family::Inet, "vpcsim");
    render_sets(lab, &mut t);
    render_igw_nat(lab, &mut t);
    let group_sets = group_sets(lab);
    render_forward(lab, &group_sets, &mut t);
    for (i, nacl) in lab.nacls.iter().enumerate() {
        render_nacl(lab, i, nacl, Direction::Inbound, &mut t);
        render_nacl(lab, i, nacl, Direction::Outbound, &mut t);
    }
    for (groups, _) in &group_sets {
        render_sg_chain(lab, groups, Direction::Outbound, &mut t);
        render_sg_chain(lab, groups, Direction::Inbound, &mut t);
    }
    let mut tables = vec![t];
    tables.extend(render_port_table(lab));
    Ruleset { tables }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// Outbound rules stop a packet at its sender, inbound ones at its receiver.
    fn side(self) -> Side {
        match self {
            Direction::Inbound => Side::Destination,
            Direction::Outbound => Side::Source,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Direction::Inbound => "in",
            Direction::Outbound => "out",
        }
    }
}

/// `log … ` before a drop when the lab has flow logs (NFLOG to the flow
/// log daemon, prefixed with the verdict and the rule); empty otherwise.
fn flow_log(lab: &Lab, side: Side, rule: &str) -> String {
    if lab.flow_logs.is_empty() {
        String::new()
    } else {
        format!("{} ", flow_log_statement(Some((side, rule))))
    }
}

fn flow_log_statement(verdict: Option<(Side, &str)>) -> String {
    format!(
        "log prefix \"{}\" group {NFLOG_GROUP}",
        prefix(verdict).replace('"', "'")
    )
}

const FORWARD: Hook = Hook {
    kind: "filter",
    hook: "forward",
    priority: "filter",
    policy: "accept",
};

fn render_sets(lab: &Lab, t: &mut Table) {
    let public = lab
        .enis
        .iter()
        .filter(|e| e.public_ip.is_some())
        .map(|e| e.private_ip);
    t.set(
        SetKind::Set,
        "public_enis",
        "ipv4_addr",
        Some("ENIs with a public IP: the only ones the IGW translates"),
        public,
    );
    t.set(
        SetKind::Set,
        "nat_gateways",
        "ipv4_addr",
        Some("NAT gateways: connections through them are always tracked"),
        lab.nat_gateways.iter().map(|n| lab.enis[n.eni].private_ip),
    );
    for (i, sg) in lab.security_groups.iter().enumerate() {
        t.set(
            SetKind::Set,
            &format!("sg{i}"),
            "ipv4_addr",
            Some(&format!("members of {}", sg.name)),
            lab.sg_members(i),
        );
    }
}

/// The IGW: 1:1 NAT between each ENI's public and private address, on the
/// link to the internet namespace. The instance never sees its public IP.
fn render_igw_nat(lab: &Lab, t: &mut Table) {
    let pairs: Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)> = lab
        .enis
        .iter()
        .filter_map(|e| Some((e.public_ip?, e.private_ip)))
        .collect();
    let translations = |dnat: bool| {
        pairs.iter().map(move |(p, v)| {
            if dnat {
                format!("{p} : {v}")
            } else {
                format!("{v} : {p}")
            }
        })
    };
    let map = SetKind::Map;
    let addr_map = "ipv4_addr : ipv4_addr";
    t.set(map, "igw_dnat", addr_map, None, translations(true));
    t.set(map, "igw_snat", addr_map, None, translations(false));
    let nat = |hook, priority| Hook {
        kind: "nat",
        hook,
        priority,
        policy: "accept",
    };
    t.chain("igw_prerouting", Some(nat("prerouting", "dstnat")))
        .rule(format!(
            "iifname \"{IGW_IF}\" dnat ip to ip daddr map @igw_dnat"
        ));
    t.chain("igw_postrouting", Some(nat("postrouting", "srcnat")))
        .rule(format!(
            "oifname \"{IGW_IF}\" snat ip to ip saddr map @igw_snat"
        ));
}

/// ENIs grouped by their exact set of security groups: each distinct set
/// gets one egress and one ingress chain holding the union of its rules.
fn group_sets(lab: &Lab) -> Vec<(Vec<usize>, Vec<usize>)> {
    let mut by_set: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
    for (i, eni) in lab.enis.iter().enumerate() {
        if eni.security_groups.is_empty() {
            continue; // NAT gateways: no security group on AWS either
        }
        let mut set = eni.security_groups.clone();
        set.sort_unstable();
        set.dedup();
        by_set.entry(set).or_default().push(i);
    }
    by_set.into_iter().collect()
}

/// The chain of a set of groups in one direction, named after the groups
/// (`sg_in_1_3`), so that adding or removing an ENI renames nothing.
fn sg_chain_name(groups: &[usize], dir: Direction) -> String {
    let ids: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    format!("sg_{}_{}", dir.short(), ids.join("_"))
}

fn render_forward(lab: &Lab, group_sets: &[(Vec<usize>, Vec<usize>)], t: &mut Table) {
    let fwd = t.chain("forward", Some(FORWARD));
    fwd.rule(format!(
        "ct state invalid counter drop {}",
        comment("conntrack: invalid packet")
    ));
    // From the internet only the IGW's translations enter: a packet neither
    // DNATed (to a public IP) nor answering an SNATed flow was sent to a
    // private address directly, which AWS never routes.
    fwd.rule(format!(
        "iifname \"{IGW_IF}\" ct status & (snat | dnat) == 0 counter {}drop {}",
        flow_log(
            lab,
            Side::Destination,
            "igw: destination is not a public IP of this VPC"
        ),
        comment("igw: destination is not a public IP of this VPC")
    ));
    fwd.rule(format!(
        "oifname \"{IGW_IF}\" ip saddr != @public_enis counter {}drop {}",
        flow_log(lab, Side::Source, "igw: source has no public IP"),
        comment("igw: source has no public IP")
    ));
    // Gateway endpoints carry connections the VPC opens; S3 never opens one
    // back. Traffic between a subnet and a `vpce-…` link crosses the
    // subnet's NACLs in the `nacl` chain like any other boundary.
    if !lab.vpc_endpoints.is_empty() {
        fwd.rule(format!(
            "iifname \"vpce-*\" ct state new counter drop {}",
            comment("vpce: endpoints carry only connections from the VPC")
        ));
    }
    // Security groups judge a connection's first packet; conntrack lets the
    // rest of a tracked connection through whatever the rules become. A
    // connection untracked at an ENI (its mark bit, set by that ENI's
    // chain) has every packet judged by that ENI's rules: sent ones by its
    // egress chain (the initiator's in the original direction, the
    // responder's in the reply direction), received ones by its ingress.
    let (i, r) = (UNTRACKED_INITIATOR, UNTRACKED_RESPONDER);
    fwd.rule("ct state new jump sg_egress")
        .rule(format!(
            "ct state established ct direction original ct mark & {i:#x} == {i:#x} jump sg_egress"
        ))
        .rule(format!(
            "ct state established ct direction reply ct mark & {r:#x} == {r:#x} jump sg_egress"
        ))
        .rule(format!(
            "ct state new rt ip nexthop @nat_gateways ct mark set ct mark & {:#x} {}",
            !i,
            comment("tracked: connections through a NAT gateway always are")
        ))
        .rule("jump nacl")
        .rule("ct state new jump sg_ingress")
        .rule(format!(
            "ct state established ct direction original ct mark & {r:#x} == {r:#x} jump sg_ingress"
        ))
        .rule(format!(
            "ct state established ct direction reply ct mark & {i:#x} == {i:#x} jump sg_ingress"
        ));
    // Whatever reaches the end of the chain is accepted: a flow log packet.
    if !lab.flow_logs.is_empty() {
        fwd.rule(flow_log_statement(None));
    }

    for (chain, field, dir) in [
        ("sg_egress", "saddr", Direction::Outbound),
        ("sg_ingress", "daddr", Direction::Inbound),
    ] {
        let c = t.chain(chain, None);
        if !group_sets.is_empty() {
            let vmap: Vec<String> = group_sets
                .iter()
                .flat_map(|(groups, enis)| {
                    let target = sg_chain_name(groups, dir);
                    enis.iter()
                        .map(move |&e| format!("{} : jump {target}", lab.enis[e].private_ip))
                })
                .collect();
            c.rule(format!("ip {field} vmap {{ {} }}", vmap.join(", ")));
        }
    }

    let nacl = t.chain("nacl", None);
    for s in &lab.subnets {
        nacl.rule(format!(
            "iifname \"{b}\" oifname != \"{b}\" jump nacl_out_{n}",
            b = s.bridge,
            n = s.nacl
        ));
    }
    for s in &lab.subnets {
        nacl.rule(format!(
            "oifname \"{b}\" iifname != \"{b}\" jump nacl_in_{n}",
            b = s.bridge,
            n = s.nacl
        ));
    }
}

/// `meta l4proto tcp tcp dport 80-90`-style match; empty for "all".
fn proto_match(protocol: Protocol, ports: Option<PortRange>) -> String {
    match (protocol, ports) {
        (Protocol::All, _) => String::new(),
        (p, Some(r)) if p.has_ports() => format!("{} dport {r} ", p.name()),
        (p, _) => format!("meta l4proto {} ", p.name()),
    }
}

fn describe(protocol: Protocol, ports: Option<PortRange>) -> String {
    match ports {
        Some(r) if protocol.has_ports() => format!("{}/{r}", protocol.name()),
        _ => protocol.name().to_string(),
    }
}

fn render_nacl(lab: &Lab, idx: usize, nacl: &NaclPlan, dir: Direction, t: &mut Table) {
    let (entries, field) = match dir {
        Direction::Inbound => (&nacl.inbound, "saddr"),
        Direction::Outbound => (&nacl.outbound, "daddr"),
    };
    let chain = t.chain(&format!("nacl_{}_{idx}", dir.short()), None);
    for e in entries {
        let addr = if e.cidr.prefix_len() == 0 {
            String::new()
        } else {
            format!("ip {field} {} ", e.cidr)
        };
        let (verdict, action) = match e.action {
            Action::Allow => ("return", "allow"),
            Action::Deny => ("drop", "deny"),
        };
        let rule = format!("nacl {} {} rule {} {action}", nacl.name, dir.name(), e.rule);
        let log = match e.action {
            Action::Allow => String::new(),
            Action::Deny => flow_log(lab, dir.side(), &rule),
        };
        chain.rule(format!(
            "{addr}{}counter {log}{verdict} {}",
            proto_match(e.protocol, e.ports),
            comment(&rule)
        ));
    }
    let rule = format!("nacl {} {} rule * deny", nacl.name, dir.name());
    chain.rule(format!(
        "counter {}drop {}",
        flow_log(lab, dir.side(), &rule),
        comment(&rule)
    ));
}

/// conntrack mark bits of a connection that AWS does not track at the
/// initiator's ENI, at the responder's.
const UNTRACKED_INITIATOR: u32 = 0x1;
const UNTRACKED_RESPONDER: u32 = 0x2;

fn sg_rules(sg: &SecurityGroupPlan, dir: Direction) -> &[SgRulePlan] {
    match dir {
        Direction::Inbound => &sg.ingress,
        Direction::Outbound => &sg.egress,
    }
}

fn everywhere(peer: &SgPeer) -> bool {
    matches!(peer, SgPeer::Cidr(c) if c.prefix_len() == 0)
}

/// The rules that mark a new connection untracked at an ENI with `groups`,
/// AWS's "untracked connections": a rule in `dir` permits the TCP or UDP
/// flow for all addresses (0.0.0.0/0), and a rule in the other direction
/// permits all its responses. ICMP is always tracked. An egress chain marks
/// the initiator's side, an ingress chain the responder's.
fn untracked_marks(lab: &Lab, groups: &[usize], dir: Direction) -> Vec<String> {
    let (bit, word, other, peer_word) = match dir {
        Direction::Outbound => (UNTRACKED_INITIATOR, "egress", "ingress", "to"),
        Direction::Inbound => (UNTRACKED_RESPONDER, "ingress", "egress", "from"),
    };
    // Responses come back the other way: an egress rule's through ingress.
    let responses_in = dir == Direction::Outbound;
    let mut marks = Vec::new();
    for &g in groups {
        let sg = &lab.security_groups[g];
        for r in sg_rules(sg, dir).iter().filter(|r| everywhere(&r.peer)) {
            let candidates: &[Protocol] = match r.protocol {
                Protocol::All => &[Protocol::Tcp, Protocol::Udp],
                Protocol::Tcp => &[Protocol::Tcp],
                Protocol::Udp => &[Protocol::Udp],
                Protocol::Icmp => &[],
            };
            let untracked: Vec<Protocol> = candidates
                .iter()
                .copied()
                .filter(|&p| lab.allows_all_responses(groups, responses_in, p))
                .collect();
            let matches = match (r.protocol, untracked.as_slice()) {
                (_, []) => continue,
                (Protocol::All, [p]) => format!("meta l4proto {} ", p.name()),
                (Protocol::All, _) => "meta l4proto { tcp, udp } ".to_string(),
                (p, _) => proto_match(p, r.ports),
            };
            let names: Vec<&str> = untracked.iter().map(|p| p.name()).collect();
            marks.push(format!(
                "ct state new {matches}counter ct mark set ct mark | {bit:#x} {}",
                comment(&format!(
                    "untracked: sg {} {word} {} {peer_word} 0.0.0.0/0, {other} allows all {} responses",
                    sg.name,
                    describe(r.protocol, r.ports),
                    names.join("/")
                ))
            ));
        }
    }
    marks
}

fn render_sg_chain(lab: &Lab, groups: &[usize], dir: Direction, t: &mut Table) {
    let (field, word) = match dir {
        Direction::Inbound => ("saddr", "ingress"),
        Direction::Outbound => ("daddr", "egress"),
    };
    let names: Vec<&str> = groups
        .iter()
        .map(|&g| lab.security_groups[g].name.as_str())
        .collect();
    let chain = t.chain(&sg_chain_name(groups, dir), None);
    for rule in untracked_marks(lab, groups, dir) {
        chain.rule(rule);
    }
    for &g in groups {
        let sg = &lab.security_groups[g];
        for r in sg_rules(sg, dir) {
            let (addr, peer) = match &r.peer {
                SgPeer::Cidr(c) if c.prefix_len() == 0 => (String::new(), c.to_string()),
                SgPeer::Cidr(c) => (format!("ip {field} {c} "), c.to_string()),
                SgPeer::Group(p) => (
                    format!("ip {field} @sg{p} "),
                    lab.security_groups[*p].name.clone(),
                ),
            };
            chain.rule(format!(
                "{addr}{}counter return {}",
                proto_match(r.protocol, r.ports),
                comment(&format!(
                    "sg {} {word} {} {} {peer}",
                    sg.name,
                    describe(r.protocol, r.ports),
                    if dir == Direction::Inbound {
                        "from"
                    } else {
                        "to"
                    }
                ))
            ));
        }
    }
    let rule = format!("sg {} {word}: no rule allows it", names.join("+"));
    chain.rule(format!(
        "counter {}drop {}",
        flow_log(lab, dir.side(), &rule),
        comment(&rule)
    ));
}

/// The bridge-family table that checks what each ENI port may send:
/// - frames only from the ENI's own MAC, and ARP only for its own address
///   and MAC. On AWS the VPC answers ARP itself, so no instance can claim
///   the gateway's or a neighbour's address; here a gratuitous ARP for the
///   gateway from one instance would otherwise rewrite every other
///   instance's neighbour entry (and a forged source MAC the bridge's
///   forwarding table). Every ENI, source/destination check or not: a NAT
///   instance forwards others' packets but owns one address and MAC.
/// - AWS's source/destination check: a packet whose source is not the
///   ENI's own address never enters the VPC.
///
/// One chain on the bridge prerouting hook sees every frame entering any
/// port of any subnet bridge, before the bridge forwards or routes it (the
/// inet hooks only see the bridge as iif); the port decides through sets
/// keyed by port name. Nothing in it grows per ENI except set elements: a
/// netdev chain would need every port in its device list, which the kernel
/// caps at 256 (`File too large`), and one netdev chain per port costs a
/// hook per device (about 8x slower to load at 1,000 ENIs, BENCHMARKS.md).
pub const PORT_TABLE: &str = "vpcsim_ports";

fn render_port_table(lab: &Lab) -> Option<Table> {
    if lab.enis.is_empty() {
        return None;
    }
    let mut t = Table::new(Family::Bridge, PORT_TABLE);
    let checked: Vec<&Eni> = lab.enis.iter().filter(|e| e.source_dest_check).collect();
    let port = |e: &Eni| format!("\"{}\"", e.host_if);
    let set = SetKind::Set;
    t.set(
        set,
        "eni_ports",
        "ifname",
        Some("every ENI's port of a subnet bridge"),
        lab.enis.iter().map(port),
    );
    t.set(
        set,
        "port_mac",
        "ifname . ether_addr",
        Some("the MAC each ENI port may send from"),
        lab.enis
            .iter()
            .map(|e| format!("{} . {}", port(e), e.mac_string())),
    );
    t.set(
        set,
        "port_arp",
        "ifname . ipv4_addr . ether_addr",
        Some("the address and MAC each ENI port may announce in ARP"),
        lab.enis
            .iter()
            .map(|e| format!("{} . {} . {}", port(e), e.private_ip, e.mac_string())),
    );
    t.set(
        set,
        "checked_ports",
        "ifname",
        Some("ENI ports whose source/destination check is on"),
        checked.iter().map(|e| port(e)),
    );
    t.set(
        set,
        "port_addr",
        "ifname . ipv4_addr",
        Some("the address each ENI port may send from"),
        checked
            .iter()
            .map(|e| format!("{} . {}", port(e), e.private_ip)),
    );
    let hook = Hook {
        kind: "filter",
        hook: "prerouting",
        priority: "filter",
        policy: "accept",
    };
    t.chain("port_ingress", Some(hook))
        .rule(format!(
            "iifname @eni_ports iifname . ether saddr != @port_mac counter drop {}",
            comment("eni: source MAC is not the ENI's")
        ))
        .rule(format!(
            "ether type arp iifname @eni_ports iifname . arp saddr ip . arp saddr ether != @port_arp counter drop {}",
            comment("arp: the ENI announces an address or MAC that is not its own")
        ))
        .rule(format!(
            "meta protocol ip iifname @checked_ports iifname . ip saddr != @port_addr counter {}drop {}",
            flow_log(lab, Side::Source, "source/destination check: source is not the ENI's address"),
            comment("source/destination check: source is not the ENI's address")
        ));
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary() -> Lab {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        let text = std::fs::read_to_string(dir.join("canary.toml")).unwrap();
        crate::topology::parse(&text, &dir).expect("canary.toml is valid")
    }

    /// The lines of chain `name`, trimmed.
    fn chain<'a>(rules: &'a str, name: &str) -> Vec<&'a str> {
        let start = rules
            .find(&format!("chain {name} {{"))
            .unwrap_or_else(|| panic!("no chain {name}"));
        rules[start..]
            .lines()
            .skip(1)
            .take_while(|l| l.trim() != "}")
            .map(str::trim)
            .collect()
    }

    #[test]
    fn nacl_rules_keep_number_order_and_end_in_deny() {
        let lab = canary();
        let rules = render(&lab).to_nft();
        let private = lab.nacls.iter().position(|n| n.name == "private").unwrap();
        let inbound = chain(&rules, &format!("nacl_in_{private}"));
        assert_eq!(
            inbound[..4],
            [
                "ip saddr 10.0.10.0/24 tcp dport 8000 counter return comment \"nacl private inbound rule 100 allow\"",
                "ip saddr 10.0.30.0/24 tcp dport 8000 counter return comment \"nacl private inbound rule 101 allow\"",
                "ip saddr 10.0.10.22/32 tcp dport 22 counter return comment \"nacl private inbound rule 110 allow\"",
                "tcp dport 443 counter return comment \"nacl private inbound rule 120 allow\"",
            ]
        );
        assert_eq!(
            inbound.last().unwrap(),
            &"counter drop comment \"nacl private inbound rule * deny\""
        );
        // Outbound rules match the destination.
        let outbound = chain(&rules, &format!("nacl_out_{private}"));
        assert!(
            outbound[0].starts_with("ip daddr 10.0.10.0/24 tcp dport 1024-65535 counter return")
        );
    }

    #[test]
    fn deny_rules_drop_and_protocols_without_ports_match_l4proto() {
        let text = r#"name = "r"
[vpc]
cidr = "10.0.0.0/16"
[[subnet]]
name = "a"
cidr = "10.0.1.0/24"
az = "us-east-1a"
nacl = "n"
[[nacl]]
name = "n"
inbound = [
  { rule = 5, protocol = "icmp", cidr = "0.0.0.0/0", action = "deny" },
  { rule = 10, protocol = "udp", cidr = "10.0.0.0/8", action = "allow" },
  { rule = 20, protocol = "all", cidr = "0.0.0.0/0", action = "allow" },
]
"#;
        let lab = crate::topology::parse(text, std::path::Path::new(".")).unwrap();
        let rules = render(&lab).to_nft();
        assert_eq!(
            chain(&rules, "nacl_in_0"),
            vec![
                "meta l4proto icmp counter drop comment \"nacl n inbound rule 5 deny\"",
                "ip saddr 10.0.0.0/8 meta l4proto udp counter return comment \"nacl n inbound rule 10 allow\"",
                "counter return comment \"nacl n inbound rule 20 allow\"",
                "counter drop comment \"nacl n inbound rule * deny\"",
            ]
        );
        // A custom NACL without outbound rules denies everything.
        assert_eq!(
            chain(&rules, "nacl_out_0"),
            vec!["counter drop comment \"nacl n outbound rule * deny\""]
        );
    }

    #[test]
    fn nacls_apply_only_across_subnet_bridges() {
        let lab = canary();
        let rules = render(&lab).to_nft();
        let nacl = chain(&rules, "nacl");
        for s in &lab.subnets {
            let out = format!(
                "iifname \"{b}\" oifname != \"{b}\" jump nacl_out_{}",
                s.nacl,
                b = s.bridge
            );
            let inb = format!(
                "oifname \"{b}\" iifname != \"{b}\" jump nacl_in_{}",
                s.nacl,
                b = s.bridge
            );
            assert!(
                nacl.contains(&out.as_str()) && nacl.contains(&inb.as_str()),
                "{nacl:?}"
            );
        }
        // Every outbound check comes before every inbound check, as on AWS.
        let last_out = nacl.iter().rposition(|l| l.contains("nacl_out_")).unwrap();
        let first_in = nacl.iter().position(|l| l.contains("nacl_in_")).unwrap();
        assert!(last_out < first_in);
    }

    #[test]
    fn security_group_references_become_member_sets() {
        let lab = canary();
        let rules = render(&lab).to_nft();
        let alb = lab
            .security_groups
            .iter()
            .position(|g| g.name == "sg-alb")
            .unwrap();
        let members: Vec<String> = lab.sg_members(alb).map(|ip| ip.to_string()).collect();
        assert!(!members.is_empty());
        let set_line = rules
            .lines()
            .find(|l| l.contains(&format!("set sg{alb} ")))
            .unwrap();
        for m in &members {
            assert!(set_line.contains(m), "{set_line}");
        }
        // Backend ENIs: ingress from members of sg-alb on 8000, stateful
        // (only `ct state new` is sent to the SG chains).
        let v1a = lab.eni_by_node("v1-a").unwrap();
        let vmap = chain(&rules, "sg_ingress").join("");
        let needle = format!("{} : jump sg_in_", v1a.private_ip);
        let idx: usize = vmap[vmap.find(&needle).unwrap() + needle.len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .unwrap();
        let ingress = chain(&rules, &format!("sg_in_{idx}"));
        assert!(ingress.contains(
            &format!("ip saddr @sg{alb} tcp dport 8000 counter return comment \"sg sg-backend ingress tcp/8000 from sg-alb\"").as_str()
        ));
        assert_eq!(
            ingress.last().unwrap(),
            &"counter drop comment \"sg sg-backend ingress: no rule allows it\""
        );
        let forward = chain(&rules, "forward");
        assert!(forward.contains(&"ct state new jump sg_egress"));
        assert!(forward.contains(&"ct state new jump sg_ingress"));
        assert!(forward.contains(&"jump nacl"));
    }

    #[test]
    fn igw_maps_every_public_ip_and_nothing_else() {
        let lab = canary();
        let rules = render(&lab).to_nft();
        let dnat = rules.lines().find(|l| l.contains("map igw_dnat")).unwrap();
        let snat = rules.lines().find(|l| l.contains("map igw_snat")).unwrap();
        for eni in &lab.enis {
            match eni.public_ip {
                Some(p) => {
                    assert!(dnat.contains(&format!("{p} : {}", eni.private_ip)));
                    assert!(snat.contains(&format!("{} : {p}", eni.private_ip)));
                }
                None => assert!(!snat.contains(&format!("{} :", eni.private_ip))),
            }
        }
        assert!(
            dnat.contains("198.51.100.20 : "),
            "the NAT gateway's Elastic IP"
        );
    }

    #[test]
    fn source_check_covers_checked_enis_only() {
        let lab = canary();
        let rules = render(&lab).to_nft();
        let ports = rules
            .lines()
            .find(|l| l.contains("set checked_ports"))
            .unwrap();
        let addrs = rules.lines().find(|l| l.contains("set port_addr")).unwrap();
        for eni in &lab.enis {
            let port = format!("\"{}\"", eni.host_if);
            assert_eq!(ports.contains(&port), eni.source_dest_check, "{}", eni.node);
            assert_eq!(
                addrs.contains(&format!("{port} . {}", eni.private_ip)),
                eni.source_dest_check,
                "{}",
                eni.node
            );
        }
        assert!(chain(&rules, "port_ingress")
            .contains(&"meta protocol ip iifname @checked_ports iifname . ip saddr != @port_addr counter drop comment \"source/destination check: source is not the ENI's address\""));
    }

    #[test]
    fn port_checks_do_not_grow_with_the_number_of_enis() {
        // 300 ENIs in one subnet: past the kernel's 256 devices per netdev
        // chain. The check stays one rule; only set elements grow.
        let mut text = String::from(
            "name = \"big\"\n[vpc]\ncidr = \"10.0.0.0/16\"\n[[subnet]]\nname = \"a\"\ncidr = \"10.0.0.0/20\"\naz = \"us-east-1a\"\n",
        );
        for i in 0..300 {
            text.push_str(&format!("[[instance]]\nname = \"i{i}\"\nsubnet = \"a\"\n"));
        }
        let lab = crate::topology::parse(&text, std::path::Path::new(".")).unwrap();
        let rules = render(&lab).to_nft();
        assert!(!rules.contains("devices ="));
        assert_eq!(chain(&rules, "port_ingress").len(), 4);
        let addrs = rules.lines().find(|l| l.contains("set port_addr")).unwrap();
        assert_eq!(addrs.matches("\" . 10.0.").count(), 300);
    }

    #[test]
    fn every_eni_port_may_announce_only_its_own_address_and_mac() {
        let lab = canary();
        let rules = render(&lab).to_nft();
        let arp = rules.lines().find(|l| l.contains("set port_arp")).unwrap();
        let macs = rules.lines().find(|l| l.contains("set port_mac")).unwrap();
        for eni in &lab.enis {
            let port = format!("\"{}\"", eni.host_if);
            assert!(
                arp.contains(&format!(
                    "{port} . {} . {}",
                    eni.private_ip,
                    eni.mac_string()
                )),
                "{}",
                eni.node
            );
            assert!(
                macs.contains(&format!("{port} . {}", eni.mac_string())),
                "{}",
                eni.node
            );
        }
        let distinct: std::collections::HashSet<_> = lab.enis.iter().map(|e| e.mac()).collect();
        assert_eq!(distinct.len(), lab.enis.len());
        let ports = chain(&rules, "port_ingress");
        assert!(ports[1]
            .starts_with("iifname @eni_ports iifname . ether saddr != @port_mac counter drop"));
        assert!(ports[2].starts_with("ether type arp iifname @eni_ports iifname . arp saddr ip . arp saddr ether != @port_arp counter drop"));
    }

    /// One instance in one subnet with group `web` of the given rules, and
    /// a NAT gateway; the lab's ruleset.
    fn web(ingress: &str, egress: &str) -> String {
        let text = format!(
            r#"name = "u"
[vpc]
cidr = "10.0.0.0/16"
[internet_gateway]
name = "igw"
[[subnet]]
name = "a"
cidr = "10.0.1.0/24"
az = "us-east-1a"
route_table = "rt"
[[route_table]]
name = "rt"
routes = [{{ destination = "0.0.0.0/0", target = "igw" }}]
[[nat_gateway]]
name = "nat"
subnet = "a"
[[security_group]]
name = "web"
ingress = [{ingress}]
egress = [{egress}]
[[instance]]
name = "w"
subnet = "a"
security_groups = ["web"]
"#
        );
        let lab = crate::topology::parse(&text, std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{e:?}"));
        render(&lab).to_nft()
    }

    /// The mark rules of chain `name`.
    fn marks<'a>(rules: &'a str, name: &str) -> Vec<&'a str> {
        chain(rules, name)
            .into_iter()
            .filter(|r| r.contains("ct mark set"))
            .collect()
    }

    #[test]
    fn aws_example_port_80_from_anywhere_is_untracked_ssh_and_icmp_are_not() {
        // AWS's own example: ingress 22 from one address, 80 and ICMP from
        // anywhere; egress all traffic to anywhere.
        let rules = web(
            r#"{ protocol = "tcp", ports = "22", cidr = "203.0.113.1/32" },
  { protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" },
  { protocol = "icmp", cidr = "0.0.0.0/0" }"#,
            r#"{ protocol = "all", cidr = "0.0.0.0/0" }"#,
        );
        assert_eq!(
            marks(&rules, "sg_in_0"),
            ["ct state new tcp dport 80 counter ct mark set ct mark | 0x2 comment \"untracked: sg web ingress tcp/80 from 0.0.0.0/0, egress allows all tcp responses\""]
        );
        // The mark comes before the rule that lets the packet in.
        assert!(chain(&rules, "sg_in_0")[0].contains("ct mark set"));
        // Outbound connections: no inbound rule allows all their responses.
        assert!(marks(&rules, "sg_out_0").is_empty());
    }

    #[test]
    fn all_traffic_both_ways_is_untracked_on_both_sides_for_tcp_and_udp_only() {
        let all = r#"{ protocol = "all", cidr = "0.0.0.0/0" }"#;
        let rules = web(all, all);
        assert_eq!(
            marks(&rules, "sg_out_0"),
            ["ct state new meta l4proto { tcp, udp } counter ct mark set ct mark | 0x1 comment \"untracked: sg web egress all to 0.0.0.0/0, ingress allows all tcp/udp responses\""]
        );
        assert_eq!(marks(&rules, "sg_in_0").len(), 1);
        assert!(marks(&rules, "sg_in_0")[0].contains("| 0x2 "));
        // Responses must be allowed for all ports, 0-65535: an ephemeral
        // range is not enough, and a narrower address is not everywhere.
        for egress in [
            r#"{ protocol = "tcp", ports = "1024-65535", cidr = "0.0.0.0/0" }"#,
            r#"{ protocol = "tcp", ports = "0-65535", cidr = "10.0.0.0/8" }"#,
            r#"{ protocol = "udp", ports = "0-65535", cidr = "0.0.0.0/0" }"#,
        ] {
            let rules = web(
                r#"{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }"#,
                egress,
            );
            assert!(marks(&rules, "sg_in_0").is_empty(), "{egress}");
        }
        let rules = web(
            r#"{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0" }"#,
            r#"{ protocol = "tcp", ports = "0-65535", cidr = "0.0.0.0/0" }"#,
        );
        assert_eq!(marks(&rules, "sg_in_0").len(), 1);
    }

    #[test]
    fn canary_connections_are_all_tracked() {
        // Its groups answer on 1024-65535 only: every flow is tracked, so
        // removing a rule never cuts an established connection there.
        let rules = render(&canary()).to_nft();
        assert!(!rules.contains("ct mark set ct mark |"));
    }

    #[test]
    fn marked_connections_meet_the_rules_of_their_untracked_side_on_every_packet() {
        let rules = web(
            r#"{ protocol = "all", cidr = "0.0.0.0/0" }"#,
            r#"{ protocol = "all", cidr = "0.0.0.0/0" }"#,
        );
        let forward = chain(&rules, "forward");
        let at = |r: &str| {
            forward
                .iter()
                .position(|l| *l == r)
                .unwrap_or_else(|| panic!("no `{r}` in {forward:#?}"))
        };
        let egress = [
            at("ct state new jump sg_egress"),
            // the initiator's packets, by its egress; the responder's, by its
            at("ct state established ct direction original ct mark & 0x1 == 0x1 jump sg_egress"),
            at("ct state established ct direction reply ct mark & 0x2 == 0x2 jump sg_egress"),
        ];
        let nacl = at("jump nacl");
        let ingress = [
            at("ct state new jump sg_ingress"),
            at("ct state established ct direction original ct mark & 0x2 == 0x2 jump sg_ingress"),
            at("ct state established ct direction reply ct mark & 0x1 == 0x1 jump sg_ingress"),
        ];
        // SG egress, then NACLs, then SG ingress, as on AWS.
        assert!(egress.iter().all(|&e| e < nacl) && ingress.iter().all(|&i| i > nacl));
        // Through a NAT gateway a connection is tracked at its initiator.
        let nat = at("ct state new rt ip nexthop @nat_gateways ct mark set ct mark & 0xfffffffe comment \"tracked: connections through a NAT gateway always are\"");
        assert!(nat > egress[0]);
        let set = rules
            .lines()
            .find(|l| l.contains("set nat_gateways "))
            .unwrap();
        assert!(set.contains("elements = { 10.0.1."), "{set}");
    }
}
