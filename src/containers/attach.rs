//! Connecting a container (created with `network_mode: none`) the way
//! dockerd's default bridge does on a VM, but inside the host instance's
//! namespace: `docker0` with the gateway address, a veth whose peer is the
//! container's `eth0`, a default route via `docker0`, and nftables for the
//! published ports (DNAT), the containers' way out (masquerade) and forwarding.

use super::ContainerError;
use crate::fabric::netns;
use crate::topology::plan::ContainerPlan;
use crate::topology::plan::{Lab, Protocol};
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use nix::sched::{setns, CloneFlags};
use rtnetlink::Handle;
use std::fmt::Write;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd};

pub const BRIDGE: &str = "docker0";
/// The host instance's interface into its subnet.
const HOST_IF: &str = "eth0";
/// nftables table vpcsim owns in a host instance's namespace.
const TABLE: &str = "vpcsim_docker";

/// Host-side veth name: `veth` + a hash of the container, like dockerd's.
pub fn host_veth(c: &ContainerPlan) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in c.name.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x01000193);
    }
    format!("veth{h:07x}")[..11].to_string()
}

fn nl(ns: &str, what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> ContainerError {
    let (ns, what) = (ns.to_string(), what.into());
    move |source| ContainerError::Netlink {
        ns,
        what,
        source: Box::new(source),
    }
}

/// A netlink handle whose socket lives in the namespace `ns_file` refers to.
fn handle_in(ns_file: &File, label: &str) -> Result<Handle, ContainerError> {
    let home = File::open("/proc/thread-self/ns/net")
        .map_err(|e| ContainerError::io("/proc/thread-self/ns/net".as_ref(), e))?;
    let enter = |f: &File, what: &str| {
        setns(f.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| ContainerError::Attach {
            what: format!("{what} {label}"),
            message: e.to_string(),
        })
    };
    enter(ns_file, "enter")?;
    let conn = rtnetlink::new_connection();
    enter(&home, "leave")?;
    let (conn, handle, _) = conn.map_err(|e| ContainerError::io(label.as_ref(), e))?;
    tokio::spawn(conn);
    Ok(handle)
}

async fn index(h: &Handle, ns: &str, name: &str) -> Result<Option<u32>, ContainerError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(l) => Ok(l.map(|l| l.header.index)),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(nl(ns, format!("get link {name}"))(e)),
    }
}

/// Connects the running container whose init is `pid` to its host. On error
/// the veth is removed again: the container is never left half-attached.
pub async fn attach(lab: &Lab, c: &ContainerPlan, pid: i64) -> Result<(), ContainerError> {
    let host_ns = lab.namespace(&c.host);
    let host_file = netns::open(&host_ns)?;
    let host = handle_in(&host_file, &host_ns)?;
    let veth = host_veth(c);
    let result = connect(lab, c, pid, &host, &host_ns, &veth).await;
    if result.is_err() {
        if let Ok(Some(i)) = index(&host, &host_ns, &veth).await {
            let _ = host.link().del(i).execute().await;
        }
    }
    result
}

/// Removes the host end of a stopped container's veth now, rather than when
/// the kernel gets round to freeing the container's namespace.
pub async fn detach(lab: &Lab, c: &ContainerPlan) -> Result<(), ContainerError> {
    let host_ns = lab.namespace(&c.host);
    let host = handle_in(&netns::open(&host_ns)?, &host_ns)?;
    let veth = host_veth(c);
    if let Some(i) = index(&host, &host_ns, &veth).await? {
        match host.link().del(i).execute().await {
            // Gone meanwhile, with the namespace.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {}
            r => r.map_err(nl(&host_ns, format!("del link {veth}")))?,
        }
    }
    Ok(())
}

async fn connect(
    lab: &Lab,
    c: &ContainerPlan,
    pid: i64,
    host: &Handle,
    host_ns: &str,
    veth: &str,
) -> Result<(), ContainerError> {
    let bridge = ensure_bridge(lab, c, host, host_ns).await?;
    // Left over from an earlier run of this container whose namespace lives on.
    if let Some(i) = index(host, host_ns, veth).await? {
        host.link()
            .del(i)
            .execute()
            .await
            .map_err(nl(host_ns, format!("del link {veth}")))?;
    }
    let cns_path = format!("/proc/{pid}/ns/net");
    let cns = File::open(&cns_path).map_err(|e| ContainerError::io(cns_path.as_ref(), e))?;
    crate::fabric::build::veth_into(host, veth, "eth0", cns.as_raw_fd(), Some(bridge))
        .execute()
        .await
        .map_err(nl(
            host_ns,
            format!("add veth {veth} <-> container {}/eth0", c.name),
        ))?;

    let label = format!("container {}", c.name);
    let inner = handle_in(&cns, &label)?;
    let eth0 = index(&inner, &label, "eth0")
        .await?
        .ok_or_else(|| ContainerError::Attach {
            what: label.clone(),
            message: "eth0 did not arrive in the container's namespace".into(),
        })?;
    inner
        .address()
        .add(eth0, IpAddr::V4(c.ip), c.bridge.prefix_len())
        .execute()
        .await
        .map_err(nl(&label, format!("add address {}", c.ip)))?;
    inner
        .link()
        .set(eth0)
        .up()
        .execute()
        .await
        .map_err(nl(&label, "set eth0 up"))?;
    inner
        .route()
        .add()
        .v4()
        .gateway(c.gateway())
        .execute()
        .await
        .map_err(nl(&label, format!("default route via {}", c.gateway())))?;
    Ok(())
}

/// `docker0` with the gateway address, and forwarding on: what dockerd sets
/// up when it starts on the host.
async fn ensure_bridge(
    lab: &Lab,
    c: &ContainerPlan,
    host: &Handle,
    ns: &str,
) -> Result<u32, ContainerError> {
    if let Some(i) = index(host, ns, BRIDGE).await? {
        return Ok(i);
    }
    host.link()
        .add()
        .bridge(BRIDGE.to_string())
        .execute()
        .await
        .map_err(nl(ns, "add bridge docker0"))?;
    let i = index(host, ns, BRIDGE)
        .await?
        .ok_or_else(|| ContainerError::Attach {
            what: format!("{BRIDGE} in {ns}"),
            message: "missing right after creating it".into(),
        })?;
    host.address()
        .add(i, IpAddr::V4(c.gateway()), c.bridge.prefix_len())
        .execute()
        .await
        .map_err(nl(ns, format!("add address {}", c.gateway())))?;
    host.link()
        .set(i)
        .up()
        .execute()
        .await
        .map_err(nl(ns, "set docker0 up"))?;
    // /proc/sys/net is resolved in the namespace of the thread that opens it.
    netns::run_in(&lab.namespace(&c.host), || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
    })?
    .map_err(|e| ContainerError::io("/proc/sys/net/ipv4/ip_forward".as_ref(), e))?;
    Ok(i)
}

/// Loads the host's ruleset, publishing `live`'s ports, in one nft
/// transaction.
pub fn apply_rules(lab: &Lab, host: &str, live: &[&ContainerPlan]) -> Result<(), ContainerError> {
    let ip = lab.eni_by_node(host).map(|e| e.private_ip);
    let Some(bridge) = lab
        .containers
        .iter()
        .find(|c| c.host == host)
        .map(|c| c.bridge)
    else {
        return Ok(());
    };
    let text = render(bridge, live, ip);
    crate::firewall::spawn_apply(&lab.namespace(host), &text)?.wait()?;
    Ok(())
}

/// The host's Docker ruleset: `-p` DNAT from the subnet (and from the host
/// itself, to its own address), masquerade for containers going out, and a
/// forward chain that only lets published ports and replies in.
fn render(bridge: Ipv4Net, containers: &[&ContainerPlan], host_ip: Option<Ipv4Addr>) -> String {
    let mut dnat = String::new();
    let mut local = String::new();
    for c in containers {
        for m in &c.ports {
            let proto = match m.protocol {
                Protocol::Udp => "udp",
                _ => "tcp",
            };
            let comment = crate::firewall::comment(&format!(
                "docker -p {}:{}/{proto} {}",
                m.host_port, m.container_port, c.name
            ));
            let _ = writeln!(
                dnat,
                "    iifname \"{HOST_IF}\" {proto} dport {} counter dnat to {}:{} {comment}",
                m.host_port, c.ip, m.container_port
            );
            if let Some(ip) = host_ip {
                let _ = writeln!(
                    local,
                    "    ip daddr {ip} {proto} dport {} dnat to {}:{} {comment}",
                    m.host_port, c.ip, m.container_port
                );
            }
        }
    }
    let drop = crate::firewall::comment("docker: container port not published");
    format!(
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n\
         \x20 chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n{dnat}  }}\n\
         \x20 chain output {{\n    type nat hook output priority -100; policy accept;\n{local}  }}\n\
         \x20 chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n\
         \x20   ip saddr {bridge} oifname != \"{BRIDGE}\" masquerade\n  }}\n\
         \x20 chain forward {{\n    type filter hook forward priority filter; policy drop;\n\
         \x20   ct state established,related accept\n\
         \x20   oifname \"{BRIDGE}\" ct status dnat accept\n\
         \x20   iifname \"{BRIDGE}\" oifname != \"{BRIDGE}\" accept\n\
         \x20   counter drop {drop}\n  }}\n}}\n"
    )
}
