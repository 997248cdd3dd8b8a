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
use crate::topology::plan::*;
use std::collections::BTreeMap;
use std::fmt::Write;

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

pub fn render(lab: &Lab) -> String {
    let mut out = String::from("flush ruleset\n\ntable inet vpcsim {\n");
    render_sets(lab, &mut out);
    render_igw_nat(lab, &mut out);
    let group_sets = group_sets(lab);
    render_forward(lab, &group_sets, &mut out);
    for (i, nacl) in lab.nacls.iter().enumerate() {
        render_nacl(lab, i, nacl, Direction::Inbound, &mut out);
        render_nacl(lab, i, nacl, Direction::Outbound, &mut out);
    }
    for (i, (groups, _)) in group_sets.iter().enumerate() {
        render_sg_chain(lab, i, groups, Direction::Outbound, &mut out);
        render_sg_chain(lab, i, groups, Direction::Inbound, &mut out);
    }
    out.push_str("}\n");
    render_port_table(lab, &mut out);
    out
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

fn elements<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|x| x.to_string()).collect();
    if v.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {} }};", v.join(", "))
    }
}

fn render_sets(lab: &Lab, out: &mut String) {
    let public = lab
        .enis
        .iter()
        .filter(|e| e.public_ip.is_some())
        .map(|e| e.private_ip);
    writeln!(
        out,
        "    set public_enis {{ type ipv4_addr; {};{} }}",
        comment("ENIs with a public IP: the only ones the IGW translates"),
        elements(public)
    )
    .unwrap();
    for (i, sg) in lab.security_groups.iter().enumerate() {
        writeln!(
            out,
            "    set sg{i} {{ type ipv4_addr; {};{} }}",
            comment(&format!("members of {}", sg.name)),
            elements(lab.sg_members(i))
        )
        .unwrap();
    }
}

/// The IGW: 1:1 NAT between each ENI's public and private address, on the
/// link to the internet namespace. The instance never sees its public IP.
fn render_igw_nat(lab: &Lab, out: &mut String) {
    let pairs: Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)> = lab
        .enis
        .iter()
        .filter_map(|e| Some((e.public_ip?, e.private_ip)))
        .collect();
    writeln!(
        out,
        "    map igw_dnat {{ type ipv4_addr : ipv4_addr;{} }}",
        elements(pairs.iter().map(|(p, v)| format!("{p} : {v}")))
    )
    .unwrap();
    writeln!(
        out,
        "    map igw_snat {{ type ipv4_addr : ipv4_addr;{} }}",
        elements(pairs.iter().map(|(p, v)| format!("{v} : {p}")))
    )
    .unwrap();
    writeln!(
        out,
        "    chain igw_prerouting {{\n        type nat hook prerouting priority dstnat; policy accept;\n        iifname \"{IGW_IF}\" dnat ip to ip daddr map @igw_dnat\n    }}"
    )
    .unwrap();
    writeln!(
        out,
        "    chain igw_postrouting {{\n        type nat hook postrouting priority srcnat; policy accept;\n        oifname \"{IGW_IF}\" snat ip to ip saddr map @igw_snat\n    }}"
    )
    .unwrap();
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

fn render_forward(lab: &Lab, group_sets: &[(Vec<usize>, Vec<usize>)], out: &mut String) {
    out.push_str(
        "    chain forward {\n        type filter hook forward priority filter; policy accept;\n",
    );
    writeln!(
        out,
        "        ct state invalid counter drop {}",
        comment("conntrack: invalid packet")
    )
    .unwrap();
    // From the internet only the IGW's translations enter: a packet neither
    // DNATed (to a public IP) nor answering an SNATed flow was sent to a
    // private address directly, which AWS never routes.
    writeln!(
        out,
        "        iifname \"{IGW_IF}\" ct status & (snat | dnat) == 0 counter {}drop {}",
        flow_log(
            lab,
            Side::Destination,
            "igw: destination is not a public IP of this VPC"
        ),
        comment("igw: destination is not a public IP of this VPC")
    )
    .unwrap();
    writeln!(
        out,
        "        oifname \"{IGW_IF}\" ip saddr != @public_enis counter {}drop {}",
        flow_log(lab, Side::Source, "igw: source has no public IP"),
        comment("igw: source has no public IP")
    )
    .unwrap();
    // Gateway endpoints carry connections the VPC opens; S3 never opens one
    // back. Traffic between a subnet and a `vpce-…` link crosses the
    // subnet's NACLs in the `nacl` chain like any other boundary.
    if !lab.vpc_endpoints.is_empty() {
        writeln!(
            out,
            "        iifname \"vpce-*\" ct state new counter drop {}",
            comment("vpce: endpoints carry only connections from the VPC")
        )
        .unwrap();
    }
    out.push_str("        ct state new jump sg_egress\n        jump nacl\n        ct state new jump sg_ingress\n");
    // Whatever reaches the end of the chain is accepted: a flow log packet.
    if !lab.flow_logs.is_empty() {
        writeln!(out, "        {}", flow_log_statement(None)).unwrap();
    }
    out.push_str("    }\n");

    let vmap = |dir: &str| -> String {
        group_sets
            .iter()
            .enumerate()
            .flat_map(|(i, (_, enis))| {
                enis.iter()
                    .map(move |&e| format!("{} : jump sg_{dir}_{i}", lab.enis[e].private_ip))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (chain, field, dir) in [("sg_egress", "saddr", "out"), ("sg_ingress", "daddr", "in")] {
        writeln!(out, "    chain {chain} {{").unwrap();
        if !group_sets.is_empty() {
            writeln!(out, "        ip {field} vmap {{ {} }}", vmap(dir)).unwrap();
        }
        out.push_str("    }\n");
    }

    out.push_str("    chain nacl {\n");
    for s in &lab.subnets {
        writeln!(
            out,
            "        iifname \"{b}\" oifname != \"{b}\" jump nacl_out_{n}",
            b = s.bridge,
            n = s.nacl
        )
        .unwrap();
    }
    for s in &lab.subnets {
        writeln!(
            out,
            "        oifname \"{b}\" iifname != \"{b}\" jump nacl_in_{n}",
            b = s.bridge,
            n = s.nacl
        )
        .unwrap();
    }
    out.push_str("    }\n");
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

fn render_nacl(lab: &Lab, idx: usize, nacl: &NaclPlan, dir: Direction, out: &mut String) {
    let (entries, field) = match dir {
        Direction::Inbound => (&nacl.inbound, "saddr"),
        Direction::Outbound => (&nacl.outbound, "daddr"),
    };
    let short = match dir {
        Direction::Inbound => "in",
        Direction::Outbound => "out",
    };
    writeln!(out, "    chain nacl_{short}_{idx} {{").unwrap();
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
        writeln!(
            out,
            "        {addr}{}counter {log}{verdict} {}",
            proto_match(e.protocol, e.ports),
            comment(&rule)
        )
        .unwrap();
    }
    let rule = format!("nacl {} {} rule * deny", nacl.name, dir.name());
    writeln!(
        out,
        "        counter {}drop {}\n    }}",
        flow_log(lab, dir.side(), &rule),
        comment(&rule)
    )
    .unwrap();
}

fn render_sg_chain(lab: &Lab, idx: usize, groups: &[usize], dir: Direction, out: &mut String) {
    let (short, field, word) = match dir {
        Direction::Inbound => ("in", "saddr", "ingress"),
        Direction::Outbound => ("out", "daddr", "egress"),
    };
    let names: Vec<&str> = groups
        .iter()
        .map(|&g| lab.security_groups[g].name.as_str())
        .collect();
    writeln!(out, "    chain sg_{short}_{idx} {{").unwrap();
    for &g in groups {
        let sg = &lab.security_groups[g];
        let rules = match dir {
            Direction::Inbound => &sg.ingress,
            Direction::Outbound => &sg.egress,
        };
        for r in rules {
            let (addr, peer) = match &r.peer {
                SgPeer::Cidr(c) if c.prefix_len() == 0 => (String::new(), c.to_string()),
                SgPeer::Cidr(c) => (format!("ip {field} {c} "), c.to_string()),
                SgPeer::Group(p) => (
                    format!("ip {field} @sg{p} "),
                    lab.security_groups[*p].name.clone(),
                ),
            };
            writeln!(
                out,
                "        {addr}{}counter return {}",
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
            )
            .unwrap();
        }
    }
    let rule = format!("sg {} {word}: no rule allows it", names.join("+"));
    writeln!(
        out,
        "        counter {}drop {}\n    }}",
        flow_log(lab, dir.side(), &rule),
        comment(&rule)
    )
    .unwrap();
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

fn render_port_table(lab: &Lab, out: &mut String) {
    if lab.enis.is_empty() {
        return;
    }
    let checked: Vec<&Eni> = lab.enis.iter().filter(|e| e.source_dest_check).collect();
    let port = |e: &Eni| format!("\"{}\"", e.host_if);
    writeln!(
        out,
        "\ntable bridge {PORT_TABLE} {{\n    set eni_ports {{ type ifname; {};{} }}\n    set port_mac {{ type ifname . ether_addr; {};{} }}\n    set port_arp {{ type ifname . ipv4_addr . ether_addr; {};{} }}\n    set checked_ports {{ type ifname; {};{} }}\n    set port_addr {{ type ifname . ipv4_addr; {};{} }}\n    chain port_ingress {{\n        type filter hook prerouting priority filter; policy accept;\n        iifname @eni_ports iifname . ether saddr != @port_mac counter drop {}\n        ether type arp iifname @eni_ports iifname . arp saddr ip . arp saddr ether != @port_arp counter drop {}\n        meta protocol ip iifname @checked_ports iifname . ip saddr != @port_addr counter {}drop {}\n    }}\n}}",
        comment("every ENI's port of a subnet bridge"),
        elements(lab.enis.iter().map(port)),
        comment("the MAC each ENI port may send from"),
        elements(lab.enis.iter().map(|e| format!("{} . {}", port(e), e.mac_string()))),
        comment("the address and MAC each ENI port may announce in ARP"),
        elements(
            lab.enis
                .iter()
                .map(|e| format!("{} . {} . {}", port(e), e.private_ip, e.mac_string()))
        ),
        comment("ENI ports whose source/destination check is on"),
        elements(checked.iter().map(|e| port(e))),
        comment("the address each ENI port may send from"),
        elements(checked.iter().map(|e| format!("{} . {}", port(e), e.private_ip))),
        comment("eni: source MAC is not the ENI's"),
        comment("arp: the ENI announces an address or MAC that is not its own"),
        flow_log(lab, Side::Source, "source/destination check: source is not the ENI's address"),
        comment("source/destination check: source is not the ENI's address")
    )
    .unwrap();
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
        let rules = render(&lab);
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
        let rules = render(&lab);
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
        let rules = render(&lab);
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
        let rules = render(&lab);
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
        let rules = render(&lab);
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
        let rules = render(&lab);
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
        let rules = render(&lab);
        assert!(!rules.contains("devices ="));
        assert_eq!(chain(&rules, "port_ingress").len(), 4);
        let addrs = rules.lines().find(|l| l.contains("set port_addr")).unwrap();
        assert_eq!(addrs.matches("\" . 10.0.").count(), 300);
    }

    #[test]
    fn every_eni_port_may_announce_only_its_own_address_and_mac() {
        let lab = canary();
        let rules = render(&lab);
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
}
