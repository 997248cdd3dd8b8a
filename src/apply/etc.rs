//! The files a lab's nodes see as /etc (bind-mounted by `vpcsim exec` and
//! for workloads): hosts, resolv.conf, hostname, environment. Rewritten
//! whole on every change: they are small, and each is replaced at once (a
//! new file renamed over the old), so a reader never sees half of one.
//!
//! Owns: those files. Must not touch the network.

use crate::topology::plan::{ec2_hostname, private_dns_name, Lab, FABRIC, INTERNET, S3};
use crate::workloads;

/// The nodes' /etc/hosts and resolv.conf, bind-mounted over /etc by
/// `vpcsim exec` and for workloads: instance names and the load balancers'
/// DNS names resolve inside the lab. One copy for the lab; a node gets its
/// own only where it differs (the internet's resolver; nodes without an
/// ENI, whose own name is not in the lab's list).
pub(super) fn write(lab: &Lab) -> std::io::Result<()> {
    let mut hosts = String::from("127.0.0.1\tlocalhost\n");
    for eni in &lab.enis {
        hosts.push_str(&format!(
            "{}\t{} {} {}\n",
            eni.private_ip,
            eni.node,
            private_dns_name(&lab.region, eni.private_ip),
            ec2_hostname(eni.private_ip)
        ));
    }
    for lb in &lab.load_balancers {
        for &n in &lb.nodes {
            if let Some(ip) = lab.enis[n].public_ip {
                hosts.push_str(&format!("{ip}\t{}\n", lb.dns_name));
            }
        }
    }
    let dir = workloads::process::lab_etc_dir(&lab.name);
    std::fs::create_dir_all(&dir)?;
    replace(dir.join("hosts"), &hosts)?;
    let resolv = crate::services::resolv_conf(lab, FABRIC);
    replace(dir.join("resolv.conf"), &resolv)?;
    replace(
        dir.join("environment"),
        crate::services::node_environment(lab),
    )?;
    // The hostname of a node with an ENI is the last name on its line above
    // (`workloads::process::hostname` reads it there): no file per node, so
    // a lab of 1,000 instances writes a handful of files, not 1,000 more.
    // The other nodes are called by their name.
    for node in [FABRIC, INTERNET, S3] {
        if !lab.node_names().iter().any(|n| n == node) {
            continue;
        }
        let dir = workloads::process::etc_dir(&lab.name, node);
        std::fs::create_dir_all(&dir)?;
        replace(dir.join("hostname"), format!("{node}\n"))?;
        replace(dir.join("hosts"), format!("{hosts}127.0.1.1\t{node}\n"))?;
        let own = crate::services::resolv_conf(lab, node);
        if own != resolv {
            replace(dir.join("resolv.conf"), own)?;
        }
    }
    Ok(())
}

/// Writes `path` as a new file renamed over the old one, unless it already
/// says that (a change rewrites only the files it changes).
fn replace(path: std::path::PathBuf, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    if std::fs::read(&path).is_ok_and(|old| old == text.as_ref()) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)
}
