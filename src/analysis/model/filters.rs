//! Where a NACL or a security group decides: AWS's evaluation of their
//! rules against one packet, and how a verdict names the rule.

use super::*;

impl Model<'_> {
    /// The subnet's NACL in one direction; pushes its hop, false on deny.
    pub(super) fn nacl(&self, subnet: usize, dir: Dir, pkt: Packet, hops: &mut Vec<Hop>) -> bool {
        let hop = nacl_hop(&self.lab.nacls[self.lab.subnets[subnet].nacl], dir, pkt);
        let pass = !hop.blocks();
        hops.push(hop);
        pass
    }

    /// Security groups of ENI `e`: the union of their rules.
    /// The ENI's groups on a connection's first packet. A pass by a rule that
    /// leaves the connection untracked at this ENI (unless `tracked` anyway)
    /// says so: its every packet meets the rules, and a change cuts it.
    pub(super) fn security_groups(&self, e: usize, dir: Dir, pkt: Packet, tracked: bool) -> Hop {
        let lab = self.lab;
        let mut groups = lab.enis[e].security_groups.clone();
        groups.sort_unstable();
        groups.dedup();
        let (component, word, prep, peer) = match dir {
            Dir::Inbound => (Component::SgIngress, "ingress", "from", pkt.src),
            Dir::Outbound => (Component::SgEgress, "egress", "to", pkt.dst),
        };
        for &g in &groups {
            let sg = &lab.security_groups[g];
            let rules = match dir {
                Dir::Inbound => &sg.ingress,
                Dir::Outbound => &sg.egress,
            };
            for r in rules {
                if !protocol_matches(r.protocol, pkt.protocol) {
                    continue;
                }
                if pkt.protocol.has_ports()
                    && !r
                        .ports
                        .is_none_or(|p| p.from <= pkt.dport.from && pkt.dport.to <= p.to)
                {
                    continue;
                }
                let (matches, peer_name) = match &r.peer {
                    SgPeer::Cidr(c) => (c.contains(&peer), c.to_string()),
                    SgPeer::Group(p) => (
                        lab.sg_members(*p).any(|m| m == peer),
                        lab.security_groups[*p].name.clone(),
                    ),
                };
                if matches {
                    let hop = Hop::pass(
                        component,
                        &sg.name,
                        format!(
                            "sg {} {word} {} {prep} {peer_name}",
                            sg.name,
                            describe(r.protocol, r.ports)
                        ),
                    );
                    let everywhere = matches!(r.peer, SgPeer::Cidr(c) if c.prefix_len() == 0);
                    let untracked = everywhere
                        && !tracked
                        && pkt.protocol.has_ports()
                        && lab.allows_all_responses(
                            &groups,
                            matches!(dir, Dir::Outbound),
                            pkt.protocol,
                        );
                    return if untracked {
                        hop.with_detail(format!(
                            "untracked at {}: every packet meets this rule, removing it cuts the connection at once",
                            lab.enis[e].node
                        ))
                    } else {
                        hop
                    };
                }
            }
        }
        let names: Vec<&str> = groups
            .iter()
            .map(|&g| lab.security_groups[g].name.as_str())
            .collect();
        let names = names.join("+");
        Hop::deny(
            component,
            &names,
            format!("sg {names} {word}: no rule allows it"),
            format!(
                "{names} has no {word} rule for {} {prep} {peer}",
                packet_service(pkt)
            ),
        )
    }
}

fn protocol_matches(rule: Protocol, packet: Protocol) -> bool {
    rule == Protocol::All || rule == packet
}

/// `tcp/8000`, `icmp`: how rules and packets are named in verdicts.
fn describe(protocol: Protocol, ports: Option<PortRange>) -> String {
    match ports {
        Some(r) if protocol.has_ports() => format!("{}/{r}", protocol.name()),
        _ => protocol.name().to_string(),
    }
}

fn packet_service(pkt: Packet) -> String {
    describe(pkt.protocol, Some(pkt.dport))
}

/// First match in rule-number order, `*` deny last. With a range of
/// destination ports (a reply to an ephemeral port) each port is decided
/// by its own first matching rule.
pub(super) fn nacl_hop(nacl: &NaclPlan, dir: Dir, pkt: Packet) -> Hop {
    let (entries, peer, component, word) = match dir {
        Dir::Inbound => (&nacl.inbound, pkt.src, Component::NaclInbound, "inbound"),
        Dir::Outbound => (&nacl.outbound, pkt.dst, Component::NaclOutbound, "outbound"),
    };
    let label = |e: Option<&NaclEntry>| match e {
        Some(e) => format!(
            "nacl {} {word} rule {} {}",
            nacl.name,
            e.rule,
            match e.action {
                Action::Allow => "allow",
                Action::Deny => "deny",
            }
        ),
        None => format!("nacl {} {word} rule * deny", nacl.name),
    };
    // (ports, deciding entry); `None` entry: the final `*` rule.
    let mut decided: Vec<(PortRange, Option<&NaclEntry>)> = Vec::new();
    let mut open = vec![if pkt.protocol.has_ports() {
        pkt.dport
    } else {
        ALL_PORTS
    }];
    for e in entries {
        if open.is_empty() {
            break;
        }
        if !protocol_matches(e.protocol, pkt.protocol) || !e.cidr.contains(&peer) {
            continue;
        }
        let covered = if pkt.protocol.has_ports() {
            e.ports.unwrap_or(ALL_PORTS)
        } else {
            ALL_PORTS
        };
        let mut rest = Vec::new();
        for r in open {
            let (inside, outside) = split(r, covered);
            decided.extend(inside.map(|i| (i, Some(e))));
            rest.extend(outside);
        }
        open = rest;
    }
    decided.extend(open.into_iter().map(|r| (r, None)));
    let allowed = |e: &Option<&NaclEntry>| e.is_some_and(|e| e.action == Action::Allow);
    let service = packet_service(pkt);
    let peer_word = match dir {
        Dir::Inbound => format!("from {peer}"),
        Dir::Outbound => format!("to {peer}"),
    };
    let first_denied = decided.iter().find(|(_, e)| !allowed(e));
    match first_denied {
        None => {
            let e = decided.first().and_then(|(_, e)| *e);
            Hop::pass(component, &nacl.name, label(e))
        }
        Some((_, e)) if decided.iter().all(|(_, e)| !allowed(e)) => Hop::deny(
            component,
            &nacl.name,
            label(*e),
            format!("{service} {peer_word} is denied"),
        ),
        Some((_, e)) => {
            let list = |want: bool| {
                decided
                    .iter()
                    .filter(|(_, x)| allowed(x) == want)
                    .map(|(r, x)| format!("{r} ({})", label(*x)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Hop {
                component,
                resource: nacl.name.clone(),
                verdict: Verdict::Partial,
                rule: label(*e),
                detail: format!(
                    "{} {peer_word}: ports {} pass, ports {} are denied",
                    pkt.protocol.name(),
                    list(true),
                    list(false)
                ),
            }
        }
    }
}

/// The parts of `r` inside `cover` and outside it (at most two pieces).
fn split(r: PortRange, cover: PortRange) -> (Option<PortRange>, Vec<PortRange>) {
    let lo = r.from.max(cover.from);
    let hi = r.to.min(cover.to);
    if lo > hi {
        return (None, vec![r]);
    }
    let mut outside = Vec::new();
    if r.from < lo {
        outside.push(PortRange {
            from: r.from,
            to: lo - 1,
        });
    }
    if hi < r.to {
        outside.push(PortRange {
            from: hi + 1,
            to: r.to,
        });
    }
    (Some(PortRange { from: lo, to: hi }), outside)
}
