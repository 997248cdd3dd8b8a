//! `[[container]]`: Docker containers on instances, published like
//! `docker run -p HOST:CONTAINER`; checked once the rest of the lab is
//! resolved (their names must not clash with the lab's nodes).

use super::context::Ctx;
use crate::topology::model::Topology;
use crate::topology::plan::{
    ContainerPlan, Lab, PortMapping, Protocol, FABRIC, INTERNET, MODEL_PORT,
};
use ipnet::Ipv4Net;

use std::collections::HashMap;
use std::net::Ipv4Addr;

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

impl Ctx {
    /// Checks `t.containers` and adds them to `lab` (None when the rest of the
    /// topology already failed: the containers are still checked).
    pub(super) fn containers(&mut self, t: &Topology, lab: Option<Lab>) -> Option<Lab> {
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
            self.err(
                "vpc.cidr",
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
                self.err(
                    format!("{p}.name"),
                    format!("container name `{}` is not valid", c.name),
                    hint,
                );
            } else if let Some(j) = seen.get(c.name.as_str()) {
                self.err(
                    format!("{p}.name"),
                    format!(
                        "duplicate container name `{}` (also container[{j}])",
                        c.name
                    ),
                    "container names must be unique; rename one of them",
                );
            } else if taken.contains(&c.name) {
                self.err(
                format!("{p}.name"),
                format!("container name `{}` is already a node name of the lab", c.name),
                "containers are nodes for `vpcsim logs/stop/start`: choose a name no instance, NAT gateway or load balancer node has",
            );
            }
            seen.entry(&c.name).or_insert(i);
            let host = t.instances.iter().find(|x| x.name == c.host);
            match host {
                None => self.err(
                    format!("{p}.host"),
                    format!(
                        "no instance named `{}` to run container `{}`",
                        c.host, c.name
                    ),
                    format!(
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
                        (h.name.clone(), "tcp", MODEL_PORT),
                        format!(
                            "the instance's own workload `{}`",
                            h.run.as_deref().unwrap_or_default()
                        ),
                    );
                }
                Some(_) => {}
            }
            if c.image.trim().is_empty() {
                self.err(
                format!("{p}.image"),
                "image is empty",
                "name a local image, e.g. `vpcsim/model-v2` (built from images/model-v2 by vpcsim)",
            );
            }
            let mut ports = Vec::new();
            for (k, s) in c.ports.iter().enumerate() {
                match parse_mapping(s) {
                Err(why) => self.err(
                    format!("{p}.ports[{k}]"),
                    format!("bad port mapping `{s}`: {why}"),
                    "write HOST:CONTAINER like `docker run -p`, e.g. \"80:8000\" (\"53:53/udp\" for UDP)",
                ),
                Ok(m) => {
                    let key = (c.host.clone(), m.protocol.name(), m.host_port);
                    if let Some(owner) = published.get(&key) {
                        self.err(
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
                    self.err(
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
        if self.diags.is_empty() {
            lab.containers = plans;
        }
        Some(lab)
    }
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
