//! `[[container]]` sections: Docker containers on instances, published like
//! `docker run -p HOST:CONTAINER`. Checked and resolved here; validate.rs
//! calls [`resolve`] once the rest of the lab is resolved.

use super::model::Topology;
use super::plan::{Lab, Protocol, FABRIC, INTERNET};
use super::Diagnostic;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerPlan {
    /// Node name (`vpcsim logs/stop/start NAME`).
    pub name: String,
    /// Node name of the instance that is its Docker host.
    pub host: String,
    pub image: String,
    pub ports: Vec<PortMapping>,
    pub env: BTreeMap<String, String>,
    /// The host's `docker0` network; its first address is the bridge's.
    pub bridge: Ipv4Net,
    /// The container's `eth0` address on `bridge`.
    pub ip: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub protocol: Protocol,
    pub host_port: u16,
    pub container_port: u16,
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}->{}/{}",
            self.host_port,
            self.container_port,
            self.protocol.name()
        )
    }
}

impl ContainerPlan {
    /// The host side of `docker0`.
    pub fn gateway(&self) -> Ipv4Addr {
        gateway(self.bridge)
    }
}

fn gateway(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

/// Docker's default bridge is 172.17.0.0/16; like dockerd, take the next
/// free /16 of 172.17-31 when that one overlaps the VPC (the host's routes).
fn bridge_network(vpc: Option<Ipv4Net>) -> Option<Ipv4Net> {
    (17..=31u8)
        .map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("valid /16"))
        .find(|n| vpc.is_none_or(|v| !(v.contains(&n.network()) || n.contains(&v.network()))))
}

/// `80:8000`, `8080:8000/tcp`, `53:53/udp`.
fn parse_mapping(s: &str) -> Result<PortMapping, String> {
    let (ports, proto) = match s.split_once('/') {
        Some((p, proto)) => (p, proto),
        None => (s, "tcp"),
    };
    let protocol = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        other => {
            return Err(format!(
                "protocol `{other}` cannot be published (tcp or udp)"
            ))
        }
    };
    let (host, container) = ports
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not HOST:CONTAINER"))?;
    let port = |p: &str, what: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{what} port `{p}` is not a port number (1-65535)"))
    };
    Ok(PortMapping {
        protocol,
        host_port: port(host, "host")?,
        container_port: port(container, "container")?,
    })
}

fn name_problem(name: &str) -> Option<&'static str> {
    let ok = name.len() <= 31
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (!ok)
        .then_some("use 1-31 characters: lowercase letters, digits and `-`, starting with a letter")
}

/// Checks `t.containers` and adds them to `lab` (None when the rest of the
/// topology already failed: the containers are still checked).
pub fn resolve(t: &Topology, lab: Option<Lab>, diags: &mut Vec<Diagnostic>) -> Option<Lab> {
    let mut err = |path: String, message: String, hint: &str| {
        diags.push(Diagnostic {
            path,
            message,
            hint: hint.to_string(),
        })
    };
    let mut taken: Vec<String> = match &lab {
        Some(l) => l.node_names(),
        None => [FABRIC, INTERNET]
            .into_iter()
            .map(String::from)
            .chain(t.instances.iter().map(|i| i.name.clone()))
            .chain(t.nat_gateways.iter().map(|n| n.name.clone()))
            .collect(),
    };
    // `vpcsim logs alb` is the load balancer's log.
    taken.push("alb".into());
    let bridge = bridge_network(t.vpc.cidr.trim().parse().ok());
    if bridge.is_none() && !t.containers.is_empty() {
        err(
            "vpc.cidr".into(),
            format!(
                "the VPC {} covers every network Docker's bridge could use (172.17-31.0.0/16)",
                t.vpc.cidr
            ),
            "use a VPC CIDR outside 172.16.0.0/12 on a lab with containers",
        );
    }
    let bridge = bridge
        .unwrap_or_else(|| Ipv4Net::new(Ipv4Addr::new(172, 17, 0, 0), 16).expect("valid /16"));
    let mut plans = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    // (host, protocol, port) -> what publishes it there.
    let mut published: HashMap<(String, &'static str, u16), String> = HashMap::new();
    let mut next_ip: HashMap<&str, u32> = HashMap::new();
    for (i, c) in t.containers.iter().enumerate() {
        let p = format!("container[{i}]");
        if let Some(hint) = name_problem(&c.name) {
            err(
                format!("{p}.name"),
                format!("container name `{}` is not valid", c.name),
                hint,
            );
        } else if let Some(j) = seen.get(c.name.as_str()) {
            err(
                format!("{p}.name"),
                format!(
                    "duplicate container name `{}` (also container[{j}])",
                    c.name
                ),
                "container names must be unique; rename one of them",
            );
        } else if taken.contains(&c.name) {
            err(
                format!("{p}.name"),
                format!("container name `{}` is already a node name of the lab", c.name),
                "containers are nodes for `vpcsim logs/stop/start`: choose a name no instance, NAT gateway or load balancer node has",
            );
        }
        seen.entry(&c.name).or_insert(i);
        let host = t.instances.iter().find(|x| x.name == c.host);
        match host {
            None => err(
                format!("{p}.host"),
                format!(
                    "no instance named `{}` to run container `{}`",
                    c.host, c.name
                ),
                &format!(
                    "host must be one of the instances: {}",
                    t.instances
                        .iter()
                        .map(|x| format!("`{}`", x.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Some(h) if h.run.is_some() => {
                // The built-in workload listens on MODEL_PORT (tcp).
                published.insert(
                    (h.name.clone(), "tcp", crate::workloads::MODEL_PORT),
                    format!(
                        "the instance's own workload `{}`",
                        h.run.as_deref().unwrap_or_default()
                    ),
                );
            }
            Some(_) => {}
        }
        if c.image.trim().is_empty() {
            err(
                format!("{p}.image"),
                "image is empty".into(),
                "name a local image, e.g. `vpcsim/model-v2` (built from images/model-v2 by vpcsim)",
            );
        }
        let mut ports = Vec::new();
        for (k, s) in c.ports.iter().enumerate() {
            match parse_mapping(s) {
                Err(why) => err(
                    format!("{p}.ports[{k}]"),
                    format!("bad port mapping `{s}`: {why}"),
                    "write HOST:CONTAINER like `docker run -p`, e.g. \"80:8000\" (\"53:53/udp\" for UDP)",
                ),
                Ok(m) => {
                    let key = (c.host.clone(), m.protocol.name(), m.host_port);
                    if let Some(owner) = published.get(&key) {
                        err(
                            format!("{p}.ports[{k}]"),
                            format!(
                                "host port {}/{} of `{}` is already taken by {owner}",
                                m.host_port,
                                m.protocol.name(),
                                c.host
                            ),
                            "publish the container on another host port (and point the target group there)",
                        );
                    } else {
                        published.insert(key, format!("container `{}`", c.name));
                        ports.push(m);
                    }
                }
            }
        }
        for k in c.env.keys() {
            if k.is_empty() || k.contains('=') {
                err(
                    format!("{p}.env"),
                    format!("environment variable name `{k}` is not valid"),
                    "names are non-empty and hold no `=`",
                );
            }
        }
        let n = next_ip.entry(c.host.as_str()).or_insert(2);
        let ip = Ipv4Addr::from(u32::from(bridge.network()) + *n);
        *n += 1;
        plans.push(ContainerPlan {
            name: c.name.clone(),
            host: c.host.clone(),
            image: c.image.trim().to_string(),
            ports,
            env: c.env.clone(),
            bridge,
            ip,
        });
    }
    let mut lab = lab?;
    if diags.is_empty() {
        lab.containers = plans;
    }
    Some(lab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_like_docker_run_p() {
        let m = parse_mapping("80:8000").unwrap();
        assert_eq!(
            (m.protocol, m.host_port, m.container_port),
            (Protocol::Tcp, 80, 8000)
        );
        assert_eq!(parse_mapping("53:53/udp").unwrap().protocol, Protocol::Udp);
        assert!(parse_mapping("80").is_err());
        assert!(parse_mapping("0:8000").is_err());
        assert!(parse_mapping("80:8000/icmp").is_err());
    }

    #[test]
    fn bridge_avoids_the_vpc() {
        assert_eq!(
            bridge_network("10.0.0.0/16".parse().ok())
                .unwrap()
                .to_string(),
            "172.17.0.0/16"
        );
        assert_eq!(bridge_network("172.16.0.0/12".parse().ok()), None);
        assert_eq!(
            bridge_network("172.17.0.0/16".parse().ok())
                .unwrap()
                .to_string(),
            "172.18.0.0/16"
        );
    }
}
