//! The AWS side of a lab: the Amazon-provided DNS and instance metadata
//! addresses in the fabric, and
//! when the lab has S3, the `s3` namespace with its three ways in:
//! - from the internet namespace (link `s3` <-> `internet`), which is also
//!   how public subnets (through the IGW) and NAT gateways reach it;
//! - from each gateway endpoint's link `vpce-…` in the fabric, which the
//!   route tables that have the endpoint use for the S3 prefix list: a more
//!   specific route than `0.0.0.0/0`, no translation on the way.
//!
//! The S3 server tells the paths apart by the link a connection arrived on
//! (one listener per link), never by address guessing.
//!
//! Owns: the `s3` namespace, its links, the endpoint links and the DNS and
//! IMDS addresses. Must not touch: the servers behind them (`services/`).

use super::build::{Additions, FabricError, Ns};
use super::netns;
use crate::topology::plan::*;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

/// The instance metadata service's link-local address, local to the fabric
/// like the Amazon DNS (`services/imds.rs` answers there).
pub const IMDS_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// Internet end and S3 end of the link between them (a /30 of their own).
pub const INTERNET_S3_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
pub const S3_INTERNET_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 2);
/// Link names: `s3` in the internet namespace, `internet` in the S3 one.
pub const INTERNET_TO_S3_IF: &str = "s3";
pub const S3_TO_INTERNET_IF: &str = "internet";

/// Forwarding in the internet namespace (IGW and NAT traffic to S3 transits
/// it); loose reverse-path checks where several links lead to the VPC.
const INTERNET_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
];
const S3_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
];

/// Extra sysctls of `node`'s namespace.
pub fn sysctls(lab: &Lab, node: &str) -> &'static [(&'static str, &'static str)] {
    match (lab.s3.is_some(), node) {
        (true, INTERNET) => INTERNET_SYSCTLS,
        (true, S3) => S3_SYSCTLS,
        _ => &[],
    }
}

/// Runs after the fabric and the internet exist, before routes: the links
/// and addresses of the AWS side that `add` asks for.
pub(super) async fn configure(lab: &Lab, fabric: &Ns, add: &Additions) -> Result<(), FabricError> {
    if add.base {
        // The Amazon DNS answers on the VPC base + 2 from the fabric itself:
        // a local address, so its traffic never enters the forward hook where
        // NACLs and security groups are (AWS does not filter it either).
        fabric.addr(1, lab.dns_ip(), 32).await?;
        // The IMDS too: every instance reaches it through its subnet's
        // router, unfiltered, and only its own ENI's packets get its data.
        fabric.addr(1, IMDS_IP, 32).await?;
    }
    let Some(s3) = &lab.s3 else {
        return Ok(());
    };
    let s3_ns = Ns::open(lab.namespace(S3))?;
    if add.s3 {
        s3_ns.up(1).await?;
        s3_ns.addr(1, s3.address, 32).await?;
        s3_ns.addr(1, s3.public_dns, 32).await?;
        let internet = Ns::open(lab.internet_ns())?;
        veth(
            &internet,
            INTERNET_TO_S3_IF,
            &lab.namespace(S3),
            S3_TO_INTERNET_IF,
        )
        .await?;
        let to_s3 = internet.index(INTERNET_TO_S3_IF).await?;
        internet.addr(to_s3, INTERNET_S3_IP, 30).await?;
        internet.up(to_s3).await?;
        let to_internet = s3_ns.index(S3_TO_INTERNET_IF).await?;
        s3_ns.addr(to_internet, S3_INTERNET_IP, 30).await?;
        s3_ns.up(to_internet).await?;
    }
    for &i in &add.endpoints {
        let e = &lab.vpc_endpoints[i];
        veth(fabric, &e.link, &lab.namespace(S3), &e.link).await?;
        let f = fabric.index(&e.link).await?;
        fabric.addr(f, e.fabric_ip, 30).await?;
        fabric.up(f).await?;
        let s = s3_ns.index(&e.link).await?;
        s3_ns.addr(s, e.service_ip, 30).await?;
        s3_ns.up(s).await?;
    }
    Ok(())
}

/// A veth pair: `local` in `ns`, `remote` in namespace `peer_ns`.
async fn veth(ns: &Ns, local: &str, peer_ns: &str, remote: &str) -> Result<(), FabricError> {
    let peer_fd = netns::open(peer_ns)?;
    super::build::veth_into(&ns.handle, local, remote, peer_fd.as_raw_fd(), None)
        .execute()
        .await
        .map_err(ns.err(format!("add veth {local} <-> {peer_ns}/{remote}")))
}
