//! A lab's routes and policy rules as data, and the netlink requests that
//! turn one set into another. `up` syncs from nothing; `apply` syncs from
//! the running plan's routes to the new plan's, touching only what differs:
//! a changed route is replaced in one request (`NLM_F_REPLACE`), so a packet
//! never meets a table without it; new routes and rules go in before stale
//! ones go out.
//!
//! Owns the VPC route tables (one kernel table each in the fabric), the
//! per-subnet rules that pick them, the internet's /32 routes back to public
//! IPs and the S3 side's routes. Must not touch links or addresses.

use super::aws_side::{INTERNET_S3_IP, INTERNET_TO_S3_IF, S3_INTERNET_IP, S3_TO_INTERNET_IF};
use super::build::{FabricError, Ns, MAIN_TABLE};
use crate::topology::plan::*;
use ipnet::Ipv4Net;
use netlink_packet_route::route::{RouteScope, RouteType};
use netlink_packet_route::rule::RuleAction;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

/// Where a route sends a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// On the link itself (a subnet's bridge): scope link.
    Link(String),
    Via(Ipv4Addr, String),
    Blackhole,
}

/// What identifies a route to the kernel: table, destination and metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    pub table: u32,
    pub dest: Ipv4Net,
    pub metric: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteValue {
    pub hop: Hop,
    /// Preferred source address of locally sent packets.
    pub src: Option<Ipv4Addr>,
}

pub type Routes = BTreeMap<RouteKey, RouteValue>;

/// A policy rule: packets arriving on `iif` look up `table` (None: dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleSpec {
    pub priority: u32,
    pub table: Option<u32>,
}

pub type Rules = BTreeMap<(u32, String), RuleSpec>;

fn key(table: u32, dest: Ipv4Net) -> RouteKey {
    RouteKey {
        table,
        dest,
        metric: 0,
    }
}

fn value(hop: Hop) -> RouteValue {
    RouteValue { hop, src: None }
}

/// The fabric's routes: per VPC route table the `local` routes (each subnet
/// on its bridge, the rest of the VPC CIDR dropped), the user's routes and
/// the S3 prefix-list route of the gateway endpoints it is associated with.
pub fn fabric_routes(lab: &Lab) -> Routes {
    let mut out = Routes::new();
    for rt in &lab.route_tables {
        for s in &lab.subnets {
            out.insert(key(rt.table_id, s.cidr), value(Hop::Link(s.bridge.clone())));
        }
        out.insert(key(rt.table_id, lab.vpc_cidr), value(Hop::Blackhole));
        for r in &rt.routes {
            let hop = match r.target {
                RouteTarget::InternetGateway => Hop::Via(IGW_INTERNET_IP, IGW_IF.into()),
                RouteTarget::NatGateway(n) => eni_hop(lab, lab.nat_gateways[n].eni),
                RouteTarget::Eni(e) => eni_hop(lab, e),
            };
            out.insert(key(rt.table_id, r.destination), value(hop));
        }
    }
    if let Some(s3) = &lab.s3 {
        for e in &lab.vpc_endpoints {
            for &rt in &e.route_tables {
                out.insert(
                    key(lab.route_tables[rt].table_id, s3.range),
                    value(Hop::Via(e.service_ip, e.link.clone())),
                );
            }
        }
    }
    out
}

fn eni_hop(lab: &Lab, eni: usize) -> Hop {
    let eni = &lab.enis[eni];
    Hop::Via(eni.private_ip, lab.subnets[eni.subnet].bridge.clone())
}

/// Which table a packet from each subnet's bridge looks up; a packet no
/// route matches hits the blackhole rule after it, as AWS drops it at the
/// VPC router.
pub fn fabric_rules(lab: &Lab) -> Rules {
    let mut out = Rules::new();
    for (i, s) in lab.subnets.iter().enumerate() {
        let prio = 1000 + 2 * i as u32;
        let table = lab.route_tables[s.route_table].table_id;
        out.insert(
            (prio, s.bridge.clone()),
            RuleSpec {
                priority: prio,
                table: Some(table),
            },
        );
        out.insert(
            (prio + 1, s.bridge.clone()),
            RuleSpec {
                priority: prio + 1,
                table: None,
            },
        );
    }
    out
}

/// The internet's routes: a /32 back through the IGW for every public IP of
/// the lab (nothing else of the VPC is reachable from there, as on AWS), and
/// S3's public range on the link to the AWS side.
pub fn internet_routes(lab: &Lab) -> Routes {
    let src = lab.internet.hosts.first().copied();
    let mut out = Routes::new();
    for ip in lab.enis.iter().filter_map(|e| e.public_ip) {
        out.insert(
            key(MAIN_TABLE, Ipv4Net::new(ip, 32).expect("/32")),
            RouteValue {
                hop: Hop::Via(IGW_FABRIC_IP, "eth0".into()),
                src,
            },
        );
    }
    if let Some(s3) = &lab.s3 {
        out.insert(
            key(MAIN_TABLE, s3.range),
            RouteValue {
                hop: Hop::Via(S3_INTERNET_IP, INTERNET_TO_S3_IF.into()),
                src,
            },
        );
    }
    out
}

/// The S3 side's routes: replies to public addresses go back to the
/// internet; replies to the VPC leave by the endpoint link their listener
/// is bound to, so each endpoint has its own route (metrics keep them apart).
pub fn s3_routes(lab: &Lab) -> Routes {
    let mut out = Routes::new();
    if lab.s3.is_none() {
        return out;
    }
    out.insert(
        key(MAIN_TABLE, Ipv4Net::default()),
        value(Hop::Via(INTERNET_S3_IP, S3_TO_INTERNET_IF.into())),
    );
    for (i, e) in lab.vpc_endpoints.iter().enumerate() {
        out.insert(
            RouteKey {
                table: MAIN_TABLE,
                dest: lab.vpc_cidr,
                metric: 100 + i as u32,
            },
            value(Hop::Via(e.fabric_ip, e.link.clone())),
        );
    }
    out
}

/// Interface indexes by name, looked up once per sync.
struct Links<'a> {
    ns: &'a Ns,
    known: HashMap<String, u32>,
}

impl Links<'_> {
    async fn index(&mut self, name: &str) -> Result<u32, FabricError> {
        if let Some(&i) = self.known.get(name) {
            return Ok(i);
        }
        let i = self.ns.index(name).await?;
        self.known.insert(name.to_string(), i);
        Ok(i)
    }
}

/// A request naming the route `k` identifies (to add it, or to take its
/// message for a delete).
fn route_request(ns: &Ns, k: &RouteKey) -> rtnetlink::RouteAddRequest<std::net::Ipv4Addr> {
    let req = ns
        .handle
        .route()
        .add()
        .v4()
        .destination_prefix(k.dest.addr(), k.dest.prefix_len())
        .table_id(k.table);
    if k.metric != 0 {
        req.priority(k.metric)
    } else {
        req
    }
}

/// Turns `old` into `new` in `ns`: routes that differ are replaced or
/// added, then routes only `old` has are deleted. Returns how many requests
/// it sent.
pub(super) async fn sync_routes(ns: &Ns, old: &Routes, new: &Routes) -> Result<usize, FabricError> {
    let mut links = Links {
        ns,
        known: HashMap::new(),
    };
    let mut sent = 0;
    for (k, v) in new {
        if old.get(k) == Some(v) {
            continue;
        }
        let mut req = route_request(ns, k).replace();
        req = match &v.hop {
            Hop::Blackhole => req.kind(RouteType::BlackHole),
            Hop::Link(dev) => req
                .scope(RouteScope::Link)
                .output_interface(links.index(dev).await?),
            Hop::Via(gw, dev) => req.gateway(*gw).output_interface(links.index(dev).await?),
        };
        if let Some(src) = v.src {
            req = req.pref_source(src);
        }
        req.execute()
            .await
            .map_err(ns.err(format!("add route {} table {}", k.dest, k.table)))?;
        sent += 1;
    }
    for k in old.keys().filter(|k| !new.contains_key(k)) {
        let msg = route_request(ns, k).message_mut().clone();
        match ns.handle.route().del(msg).execute().await {
            Ok(()) => {}
            // Its link is gone (a removed subnet or endpoint took it along).
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ESRCH => {}
            Err(e) => return Err(ns.err(format!("delete route {} table {}", k.dest, k.table))(e)),
        }
        sent += 1;
    }
    Ok(sent)
}

/// Turns the policy rules `old` into `new`: new rules first (a subnet whose
/// rule changes has both for an instant, never neither), then stale ones.
pub(super) async fn sync_rules(ns: &Ns, old: &Rules, new: &Rules) -> Result<usize, FabricError> {
    let request = |(prio, iif): &(u32, String), spec: &RuleSpec| {
        let req = ns
            .handle
            .rule()
            .add()
            .v4()
            .input_interface(iif.clone())
            .priority(*prio);
        match spec.table {
            Some(t) => req.table_id(t).action(RuleAction::ToTable),
            None => req.action(RuleAction::Blackhole),
        }
    };
    let mut sent = 0;
    for (k, spec) in new {
        if old.get(k) == Some(spec) {
            continue;
        }
        request(k, spec)
            .execute()
            .await
            .map_err(ns.err(format!("add rule iif {} priority {}", k.1, k.0)))?;
        sent += 1;
    }
    for (k, spec) in old {
        if new.get(k) == Some(spec) {
            continue;
        }
        let msg = request(k, spec).message_mut().clone();
        match ns.handle.rule().del(msg).execute().await {
            Ok(()) => {}
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENOENT => {}
            Err(e) => {
                return Err(ns.err(format!("delete rule iif {} priority {}", k.1, k.0))(
                    e,
                ))
            }
        }
        sent += 1;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary() -> Lab {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        let text = std::fs::read_to_string(dir.join("canary.toml")).unwrap();
        crate::topology::parse(&text, &dir).expect("canary.toml is valid")
    }

    #[test]
    fn every_table_has_the_local_routes_and_drops_the_rest_of_the_vpc() {
        let lab = canary();
        let routes = fabric_routes(&lab);
        for rt in &lab.route_tables {
            for s in &lab.subnets {
                assert_eq!(
                    routes[&key(rt.table_id, s.cidr)].hop,
                    Hop::Link(s.bridge.clone())
                );
            }
            assert_eq!(routes[&key(rt.table_id, lab.vpc_cidr)].hop, Hop::Blackhole);
        }
        // The private table's default route goes to the NAT gateway's ENI.
        let private = lab
            .route_tables
            .iter()
            .find(|r| {
                r.routes
                    .iter()
                    .any(|x| matches!(x.target, RouteTarget::NatGateway(_)))
            })
            .unwrap();
        let nat = &lab.enis[lab.nat_gateways[0].eni];
        assert_eq!(
            routes[&key(private.table_id, Ipv4Net::default())].hop,
            Hop::Via(nat.private_ip, lab.subnets[nat.subnet].bridge.clone())
        );
    }

    #[test]
    fn each_subnet_looks_up_its_table_then_drops() {
        let lab = canary();
        let rules = fabric_rules(&lab);
        assert_eq!(rules.len(), 2 * lab.subnets.len());
        for s in &lab.subnets {
            let mine: Vec<&RuleSpec> = rules
                .iter()
                .filter(|((_, iif), _)| iif == &s.bridge)
                .map(|(_, r)| r)
                .collect();
            assert_eq!(
                mine[0].table,
                Some(lab.route_tables[s.route_table].table_id)
            );
            assert_eq!(mine[1].table, None);
            assert_eq!(mine[1].priority, mine[0].priority + 1);
        }
    }

    #[test]
    fn the_internet_reaches_exactly_the_public_ips() {
        let lab = canary();
        let routes = internet_routes(&lab);
        let publics: Vec<Ipv4Addr> = lab.enis.iter().filter_map(|e| e.public_ip).collect();
        for ip in &publics {
            assert!(routes.contains_key(&key(MAIN_TABLE, Ipv4Net::new(*ip, 32).unwrap())));
        }
        let s3 = usize::from(lab.s3.is_some());
        assert_eq!(routes.len(), publics.len() + s3);
    }
}
