//! Builds a lab's namespaces and links with in-process netlink (rtnetlink):
//! no `ip` processes, one socket per namespace, requests to different
//! namespaces in flight together.

use super::netns::{self, NetnsError};
use crate::topology::plan::*;
use futures::future::try_join_all;
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkInfo};
use netlink_packet_route::route::{RouteScope, RouteType};
use netlink_packet_route::rule::RuleAction;
use rtnetlink::{Handle, LinkAddRequest};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};

#[derive(Debug, thiserror::Error)]
pub enum FabricError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("{ns}: {what}: {source}")]
    Netlink {
        ns: String,
        what: String,
        // Boxed: rtnetlink's error carries a whole netlink message.
        source: Box<rtnetlink::Error>,
    },
    #[error("{ns}: link {name} not found after creating it")]
    MissingLink { ns: String, name: String },
}

/// Sysctls every lab namespace gets at creation: no IPv6 (keeps router
/// solicitations and DAD out of captures and flow logs).
const BASE_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
];

/// Routers (fabric, NAT gateways): forward, and never send ICMP redirects
/// (a NAT gateway sends its traffic back out the interface it came in on).
const ROUTER_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.default.send_redirects", "0"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
];

/// Creates every namespace of the lab, with its sysctls.
pub fn create_namespaces(lab: &Lab) -> Result<(), FabricError> {
    // The internet forwards too: VPC traffic to another public IP of the VPC
    // goes out through the IGW and comes back in, as on AWS.
    let routers: Vec<String> = [FABRIC, INTERNET]
        .into_iter()
        .map(String::from)
        .chain(
            lab.nat_gateways
                .iter()
                .map(|n| lab.enis[n.eni].node.clone()),
        )
        .collect();
    let namespaces: Vec<netns::NewNamespace> = lab
        .node_names()
        .into_iter()
        .map(|node| {
            let mut sysctls = BASE_SYSCTLS.to_vec();
            if routers.contains(&node) {
                sysctls.extend_from_slice(ROUTER_SYSCTLS);
            }
            sysctls.extend_from_slice(super::aws_side::sysctls(lab, &node));
            (lab.namespace(&node), sysctls)
        })
        .collect();
    Ok(netns::create_all(&namespaces)?)
}

pub(super) struct Ns {
    pub(super) name: String,
    pub(super) handle: Handle,
}

impl Ns {
    pub(super) fn open(name: String) -> Result<Ns, FabricError> {
        let (conn, handle, _) = netns::run_in(&name, rtnetlink::new_connection)?.map_err(|e| {
            FabricError::Netns(NetnsError::Io {
                name: name.clone(),
                source: e,
            })
        })?;
        tokio::spawn(conn);
        Ok(Ns { name, handle })
    }

    pub(super) fn err(
        &self,
        what: impl Into<String>,
    ) -> impl FnOnce(rtnetlink::Error) -> FabricError + '_ {
        let what = what.into();
        move |source| FabricError::Netlink {
            ns: self.name.clone(),
            what,
            source: Box::new(source),
        }
    }

    pub(super) async fn index(&self, name: &str) -> Result<u32, FabricError> {
        let link = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await
            .map_err(self.err(format!("get link {name}")))?;
        link.map(|l| l.header.index)
            .ok_or_else(|| FabricError::MissingLink {
                ns: self.name.clone(),
                name: name.into(),
            })
    }

    pub(super) async fn up(&self, index: u32) -> Result<(), FabricError> {
        self.handle
            .link()
            .set(index)
            .up()
            .execute()
            .await
            .map_err(self.err(format!("set link {index} up")))
    }

    pub(super) async fn addr(
        &self,
        index: u32,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), FabricError> {
        self.handle
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .execute()
            .await
            .map_err(self.err(format!("add address {ip}/{prefix}")))
    }

    /// A veth pair: `local` here (a port of bridge `master` when given),
    /// `eth0` in namespace `peer_ns`, with MAC `peer_mac` when given (an
    /// ENI's, which the fabric's ARP filter knows). One request.
    async fn veth(
        &self,
        local: &str,
        peer_ns: &str,
        master: Option<u32>,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<(), FabricError> {
        let peer_fd = netns::open(peer_ns)?;
        let mut req = veth_into(&self.handle, local, "eth0", peer_fd.as_raw_fd(), master);
        if let Some(mac) = peer_mac {
            push_peer_attribute(&mut req, LinkAttribute::Address(mac.to_vec()));
        }
        req.execute()
            .await
            .map_err(self.err(format!("add veth {local} <-> {peer_ns}/eth0")))
    }

    pub(super) async fn route(
        &self,
        table: u32,
        dest: Ipv4Net,
        via: Option<Ipv4Addr>,
        dev: Option<u32>,
        kind: RouteType,
    ) -> Result<(), FabricError> {
        let mut req = self
            .handle
            .route()
            .add()
            .v4()
            .destination_prefix(dest.addr(), dest.prefix_len())
            .table_id(table)
            .kind(kind);
        if let Some(gw) = via {
            req = req.gateway(gw);
        } else if dev.is_some() {
            req = req.scope(RouteScope::Link);
        }
        if let Some(d) = dev {
            req = req.output_interface(d);
        }
        req.execute()
            .await
            .map_err(self.err(format!("add route {dest} table {table}")))
    }
}

/// A veth pair in one netlink request: `local` in `handle`'s namespace, up,
/// a port of bridge `master` when given; `remote` created directly inside
/// the namespace `peer` refers to, so it never exists anywhere else (not
/// even for an instant in the root namespace).
pub fn veth_into(
    handle: &Handle,
    local: &str,
    remote: &str,
    peer: RawFd,
    master: Option<u32>,
) -> LinkAddRequest {
    // rtnetlink's first name is the peer's; it creates `local` up.
    let mut req = handle
        .link()
        .add()
        .veth(remote.to_string(), local.to_string());
    push_peer_attribute(&mut req, LinkAttribute::NetNsFd(peer));
    if let Some(m) = master {
        req.message_mut()
            .attributes
            .push(LinkAttribute::Controller(m));
    }
    req
}

/// Adds `attr` to the peer half of a veth creation request.
fn push_peer_attribute(req: &mut LinkAddRequest, attr: LinkAttribute) {
    for a in req.message_mut().attributes.iter_mut() {
        if let LinkAttribute::LinkInfo(infos) = a {
            for info in infos.iter_mut() {
                if let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) = info {
                    p.attributes.push(attr.clone());
                }
            }
        }
    }
}

pub(super) const MAIN_TABLE: u32 = 254;

/// Builds links, addresses, routes and route tables in namespaces that
/// `create_namespaces` made.
pub async fn configure(lab: &Lab) -> Result<(), FabricError> {
    let fabric = Ns::open(lab.fabric_ns())?;
    fabric.up(1).await?; // lo is ifindex 1 in every new namespace

    // One bridge per subnet, holding the VPC router address (.1).
    let mut bridges = Vec::with_capacity(lab.subnets.len());
    for s in &lab.subnets {
        fabric
            .handle
            .link()
            .add()
            .bridge(s.bridge.clone())
            .execute()
            .await
            .map_err(fabric.err(format!("add bridge {}", s.bridge)))?;
        let idx = fabric.index(&s.bridge).await?;
        fabric.addr(idx, s.router, s.cidr.prefix_len()).await?;
        fabric.up(idx).await?;
        bridges.push(idx);
    }

    // The IGW link: fabric `igw` <-> internet `eth0`.
    fabric.veth(IGW_IF, &lab.internet_ns(), None, None).await?;
    let igw = fabric.index(IGW_IF).await?;
    fabric.addr(igw, IGW_FABRIC_IP, 30).await?;

    // Every ENI: a bridge port in the fabric (created up), `eth0` in its node.
    try_join_all(lab.enis.iter().map(|eni| async {
        let node_ns = lab.namespace(&eni.node);
        fabric
            .veth(
                &eni.host_if,
                &node_ns,
                Some(bridges[eni.subnet]),
                Some(eni.mac()),
            )
            .await
    }))
    .await?;

    let nodes = try_join_all(lab.enis.iter().map(|eni| configure_eni(lab, eni)));
    let internet = configure_internet(lab);
    let tables = configure_route_tables(lab, &fabric, &bridges, igw);
    futures::try_join!(nodes, internet, tables)?;
    super::aws_side::configure(lab, &fabric).await
}

async fn configure_eni(lab: &Lab, eni: &Eni) -> Result<(), FabricError> {
    let ns = Ns::open(lab.namespace(&eni.node))?;
    let subnet = &lab.subnets[eni.subnet];
    ns.up(1).await?;
    let eth0 = ns.index("eth0").await?;
    ns.addr(eth0, eni.private_ip, subnet.cidr.prefix_len())
        .await?;
    ns.up(eth0).await?;
    ns.route(
        MAIN_TABLE,
        Ipv4Net::default(),
        Some(subnet.router),
        Some(eth0),
        RouteType::Unicast,
    )
    .await
}

/// The emulated internet: its client hosts on `eth0`, and a /32 route back
/// through the IGW for every public IP of the lab (nothing else of the VPC
/// is reachable from here, as on AWS).
async fn configure_internet(lab: &Lab) -> Result<(), FabricError> {
    let ns = Ns::open(lab.internet_ns())?;
    ns.up(1).await?;
    let eth0 = ns.index("eth0").await?;
    ns.addr(eth0, IGW_INTERNET_IP, 30).await?;
    for host in &lab.internet.hosts {
        ns.addr(eth0, *host, 32).await?;
    }
    ns.up(eth0).await?;
    let src = lab.internet.hosts.first().copied();
    for ip in lab.enis.iter().filter_map(|e| e.public_ip) {
        let mut req = ns
            .handle
            .route()
            .add()
            .v4()
            .destination_prefix(ip, 32)
            .gateway(IGW_FABRIC_IP)
            .output_interface(eth0);
        if let Some(s) = src {
            req = req.pref_source(s);
        }
        req.execute()
            .await
            .map_err(ns.err(format!("add route {ip}/32 via igw")))?;
    }
    Ok(())
}

/// One kernel table per VPC route table, selected by the bridge a packet
/// came in on (policy routing); a packet no route matches hits the
/// blackhole rule after its table, as AWS drops it at the VPC router.
async fn configure_route_tables(
    lab: &Lab,
    fabric: &Ns,
    bridges: &[u32],
    igw: u32,
) -> Result<(), FabricError> {
    for rt in &lab.route_tables {
        // `local`: every subnet through its bridge; the rest of the VPC CIDR
        // (addresses in no subnet) is dropped.
        for (s, &br) in lab.subnets.iter().zip(bridges) {
            fabric
                .route(rt.table_id, s.cidr, None, Some(br), RouteType::Unicast)
                .await?;
        }
        fabric
            .route(rt.table_id, lab.vpc_cidr, None, None, RouteType::BlackHole)
            .await?;
        for r in &rt.routes {
            let (via, dev) = match r.target {
                RouteTarget::InternetGateway => (IGW_INTERNET_IP, igw),
                RouteTarget::NatGateway(n) => {
                    let eni = &lab.enis[lab.nat_gateways[n].eni];
                    (eni.private_ip, bridges[eni.subnet])
                }
                RouteTarget::Eni(e) => {
                    let eni = &lab.enis[e];
                    (eni.private_ip, bridges[eni.subnet])
                }
            };
            fabric
                .route(
                    rt.table_id,
                    r.destination,
                    Some(via),
                    Some(dev),
                    RouteType::Unicast,
                )
                .await?;
        }
    }
    for (i, s) in lab.subnets.iter().enumerate() {
        let rt = &lab.route_tables[s.route_table];
        let prio = 1000 + 2 * i as u32;
        fabric
            .handle
            .rule()
            .add()
            .v4()
            .input_interface(s.bridge.clone())
            .table_id(rt.table_id)
            .priority(prio)
            .action(RuleAction::ToTable)
            .execute()
            .await
            .map_err(fabric.err(format!("add rule iif {} lookup {}", s.bridge, rt.table_id)))?;
        fabric
            .handle
            .rule()
            .add()
            .v4()
            .input_interface(s.bridge.clone())
            .priority(prio + 1)
            .action(RuleAction::Blackhole)
            .execute()
            .await
            .map_err(fabric.err(format!("add rule iif {} blackhole", s.bridge)))?;
    }
    Ok(())
}
