//! Builds a lab's namespaces and links with in-process netlink (rtnetlink):
//! no `ip` processes, one socket per namespace, requests to different
//! namespaces in flight together.
//!
//! Owns: creating namespaces, bridges, veths and addresses, and the sysctls of each
//! namespace. Must not touch: which routes a table holds (`routes.rs`) or nftables.

use super::netns::{self, NetnsError};
use crate::topology::plan::*;
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, InfoData, InfoVeth, LinkAttribute, LinkInfo,
};
use netlink_packet_route::route::{RouteScope, RouteType};
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

/// Sysctls of the namespaces that are not a plain ENI's node: no IPv6
/// (keeps router solicitations and DAD out of captures and flow logs). A
/// node that only holds an ENI gets no sysctl: its `eth0` is brought up
/// with no IPv6 address generated (`Ns::up_without_ipv6`), which keeps it as
/// silent. Each sysctl write walks /proc/sys dentry chains as long as the
/// machine's number of namespaces, so one per instance made `up` O(N^2).
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

/// Creates the namespaces of `nodes` (all of them on `up`, the new ones on
/// `apply`), with their sysctls.
pub fn create_namespaces(lab: &Lab, nodes: &[String]) -> Result<(), FabricError> {
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
    let eni_nodes: std::collections::HashSet<&str> =
        lab.enis.iter().map(|e| e.node.as_str()).collect();
    let namespaces: Vec<netns::NewNamespace> = nodes
        .iter()
        .map(|node| {
            let router = routers.contains(node);
            let aws = super::aws_side::sysctls(lab, node);
            let plain_eni = eni_nodes.contains(node.as_str()) && !router && aws.is_empty();
            let mut sysctls = vec![];
            if !plain_eni {
                sysctls.extend_from_slice(BASE_SYSCTLS);
            }
            if router {
                sysctls.extend_from_slice(ROUTER_SYSCTLS);
            }
            sysctls.extend_from_slice(aws);
            (lab.namespace(node), sysctls)
        })
        .collect();
    Ok(netns::create_all(&namespaces)?)
}

/// The parts of a lab to build in namespaces that exist: everything on
/// `up`, what a change adds on `apply` (indexes into the new plan).
#[derive(Debug, Default)]
pub struct Additions {
    /// The fabric's and the internet's own links and addresses (`up` only).
    pub base: bool,
    /// The S3 side (the lab's first bucket or endpoint).
    pub s3: bool,
    pub subnets: Vec<usize>,
    pub enis: Vec<usize>,
    pub endpoints: Vec<usize>,
}

impl Additions {
    pub fn everything(lab: &Lab) -> Additions {
        Additions {
            base: true,
            s3: lab.s3.is_some(),
            subnets: (0..lab.subnets.len()).collect(),
            enis: (0..lab.enis.len()).collect(),
            endpoints: (0..lab.vpc_endpoints.len()).collect(),
        }
    }
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
            .await;
        // The kernel answers a name it does not know with ENODEV.
        let link = match link {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => None,
            other => other.map_err(self.err(format!("get link {name}")))?,
        };
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

    /// Brings link `index` up with no IPv6 address generated for it (no
    /// link-local address, so no DAD, router solicitation or MLD report):
    /// IPv6 stays off without a sysctl. Two requests, the mode first: in one
    /// request the kernel brings the link up before it reads the mode, and a
    /// new veth whose carrier state the kernel has not settled yet counts as
    /// ready, so it would get its link-local address right then.
    async fn up_without_ipv6(&self, index: u32) -> Result<(), FabricError> {
        const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
        let mut req = self.handle.link().set(index);
        req.message_mut()
            .attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(IN6_ADDR_GEN_MODE_NONE)],
            )]));
        req.execute()
            .await
            .map_err(self.err(format!("set link {index} without IPv6")))?;
        self.up(index).await
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
    /// `eth0` in namespace `peer_ns`, with an ENI's MAC (which the fabric's
    /// ARP filter knows) and interface index when `eni` is given. One
    /// request.
    async fn veth(
        &self,
        local: &str,
        peer_ns: &str,
        master: Option<u32>,
        eni: Option<([u8; 6], u32)>,
    ) -> Result<(), FabricError> {
        let peer_fd = netns::open(peer_ns)?;
        let mut req = veth_into(&self.handle, local, "eth0", peer_fd.as_raw_fd(), master);
        if let Some((mac, index)) = eni {
            push_peer_attribute(&mut req, LinkAttribute::Address(mac.to_vec()));
            for_peer(&mut req, |p| p.header.index = index);
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
    for_peer(req, |p| p.attributes.push(attr.clone()));
}

/// Runs `f` on the peer half of a veth creation request.
fn for_peer(
    req: &mut LinkAddRequest,
    mut f: impl FnMut(&mut netlink_packet_route::link::LinkMessage),
) {
    for a in req.message_mut().attributes.iter_mut() {
        if let LinkAttribute::LinkInfo(infos) = a {
            for info in infos.iter_mut() {
                if let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) = info {
                    f(p);
                }
            }
        }
    }
}

pub(super) const MAIN_TABLE: u32 = 254;

/// Builds the links and addresses of `add` in namespaces that exist, then
/// turns the routes and rules of `old` (None: nothing) into `lab`'s.
pub async fn configure(lab: &Lab, old: Option<&Lab>, add: &Additions) -> Result<(), FabricError> {
    let fabric = Ns::open(lab.fabric_ns())?;
    if add.base {
        fabric.up(1).await?; // lo is ifindex 1 in every new namespace
    }
    // One bridge per subnet, holding the VPC router address (.1).
    for &i in &add.subnets {
        let s = &lab.subnets[i];
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
    }
    if add.base {
        // The IGW link: fabric `igw` <-> internet `eth0`.
        fabric.veth(IGW_IF, &lab.internet_ns(), None, None).await?;
        let igw = fabric.index(IGW_IF).await?;
        fabric.addr(igw, IGW_FABRIC_IP, 30).await?;
    }
    // Every ENI: a bridge port in the fabric (created up), `eth0` in its
    // node with the index a fresh namespace hands out first (the namespace
    // is new on `up` and on `apply` alike), so it needs no lookup.
    let eth0 = netns::first_free_ifindex()?;
    let mut bridges = std::collections::HashMap::new();
    for &e in &add.enis {
        let subnet = lab.enis[e].subnet;
        if let std::collections::hash_map::Entry::Vacant(v) = bridges.entry(subnet) {
            v.insert(fabric.index(&lab.subnets[subnet].bridge).await?);
        }
    }
    let veths = add.enis.iter().map(|&e| {
        let eni = &lab.enis[e];
        let node_ns = lab.namespace(&eni.node);
        let fabric = &fabric;
        let bridge = bridges[&eni.subnet];
        async move {
            fabric
                .veth(
                    &eni.host_if,
                    &node_ns,
                    Some(bridge),
                    Some((eni.mac(), eth0)),
                )
                .await
        }
    });
    bounded(veths).await?;
    let nodes = bounded(
        add.enis
            .iter()
            .map(|&e| configure_eni(lab, &lab.enis[e], eth0)),
    );
    let internet = async {
        if add.base {
            configure_internet(lab).await
        } else {
            Ok(())
        }
    };
    futures::try_join!(nodes, internet)?;
    super::aws_side::configure(lab, &fabric, add).await?;
    sync_routing(lab, old, &fabric).await
}

/// ENIs in flight at once: each holds a descriptor or two while it is
/// built (its namespace's file, a netlink socket in its namespace), and a
/// lab of thousands must not need thousands (a login shell's soft limit on
/// open files is 1,024 on Debian). More would not be faster: the kernel
/// takes one request at a time (RTNL).
const IN_FLIGHT: usize = 64;

/// Runs `jobs` with at most `IN_FLIGHT` of them in flight; the first error
/// stops the rest.
async fn bounded<F>(jobs: impl Iterator<Item = F>) -> Result<(), FabricError>
where
    F: std::future::Future<Output = Result<(), FabricError>>,
{
    use futures::StreamExt;
    futures::stream::iter(jobs)
        .buffer_unordered(IN_FLIGHT)
        .try_for_each(|()| async { Ok(()) })
        .await
}

/// Routes and rules of the fabric, the internet and the S3 side, from
/// `old`'s to `lab`'s.
async fn sync_routing(lab: &Lab, old: Option<&Lab>, fabric: &Ns) -> Result<(), FabricError> {
    use super::routes::*;
    let empty = Routes::new();
    let pick = |f: fn(&Lab) -> Routes| old.map(f).unwrap_or_default();
    let tables = async {
        sync_routes(fabric, &pick(fabric_routes), &fabric_routes(lab)).await?;
        let old_rules = old.map(fabric_rules).unwrap_or_default();
        sync_rules(fabric, &old_rules, &fabric_rules(lab)).await
    };
    let internet = async {
        let (old_r, new_r) = (pick(internet_routes), internet_routes(lab));
        if old_r == new_r {
            return Ok(0);
        }
        let ns = Ns::open(lab.internet_ns())?;
        sync_routes(&ns, &old_r, &new_r).await
    };
    let s3 = async {
        let new_r = s3_routes(lab);
        // A lab that loses its S3 side loses the namespace with its routes.
        if new_r == empty {
            return Ok(0);
        }
        let old_r = pick(s3_routes);
        if old_r == new_r {
            return Ok(0);
        }
        let ns = Ns::open(lab.namespace(S3))?;
        sync_routes(&ns, &old_r, &new_r).await
    };
    futures::try_join!(tables, internet, s3)?;
    Ok(())
}

/// Removes links of the fabric that a change retires: subnets' bridges
/// (after their ENIs' namespaces are gone) and endpoints' links (their S3
/// ends go with them). Links already gone are not an error.
pub async fn remove_links(lab: &Lab, names: &[String]) -> Result<(), FabricError> {
    if names.is_empty() {
        return Ok(());
    }
    let fabric = Ns::open(lab.fabric_ns())?;
    for name in names {
        let idx = match fabric.index(name).await {
            Ok(i) => i,
            Err(FabricError::MissingLink { .. }) => continue,
            Err(e) => return Err(e),
        };
        match fabric.handle.link().del(idx).execute().await {
            Ok(()) => {}
            // Gone between the lookup and the delete: the kernel finished
            // removing the namespace that took it along.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {}
            Err(e) => return Err(fabric.err(format!("delete link {name}"))(e)),
        }
    }
    Ok(())
}

/// An ENI's node: `lo` up, `eth0` (index `eth0`) up without IPv6, its
/// address and the default route: five requests.
async fn configure_eni(lab: &Lab, eni: &Eni, eth0: u32) -> Result<(), FabricError> {
    let ns = Ns::open(lab.namespace(&eni.node))?;
    let subnet = &lab.subnets[eni.subnet];
    ns.up(1).await?;
    ns.up_without_ipv6(eth0).await?;
    ns.addr(eth0, eni.private_ip, subnet.cidr.prefix_len())
        .await?;
    ns.route(
        MAIN_TABLE,
        Ipv4Net::default(),
        Some(subnet.router),
        Some(eth0),
        RouteType::Unicast,
    )
    .await
}

/// The emulated internet: its client hosts on `eth0` (its routes back to
/// the VPC's public IPs are `routes::internet_routes`).
async fn configure_internet(lab: &Lab) -> Result<(), FabricError> {
    let ns = Ns::open(lab.internet_ns())?;
    ns.up(1).await?;
    let eth0 = ns.index("eth0").await?;
    ns.addr(eth0, IGW_INTERNET_IP, 30).await?;
    for host in &lab.internet.hosts {
        ns.addr(eth0, *host, 32).await?;
    }
    ns.up(eth0).await
}
