//! Instances (workload, user data), NAT gateways, node names, and the ENIs
//! of every node with their private and public addresses: fixed ones first,
//! then allocated in ENI order.

use super::context::{truncate15, unique, Ctx, Names, Pins};
use super::vpc::Network;
use crate::topology::files;
use crate::topology::model::{self, Topology};
use crate::topology::plan::{
    aws_id, Eni, EniOwner, InstancePlan, MetadataPlan, NatGatewayPlan, Workload, FABRIC, INTERNET,
};
use ipnet::Ipv4Net;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::Path;

/// First and last assignable address of a subnet: AWS reserves the first
/// four and the last one.
pub(super) fn assignable(net: Ipv4Net) -> (u32, u32) {
    (
        u32::from(net.network()) + 4,
        u32::from(net.broadcast()).saturating_sub(1),
    )
}

/// What AWS reserves `ip` (inside `net`) for, if anything.
pub(super) fn reserved_use(net: Ipv4Net, ip: Ipv4Addr) -> Option<&'static str> {
    match u32::from(ip) - u32::from(net.network()) {
        0 => Some("the network address"),
        1 => Some("the VPC router"),
        2 => Some("the Amazon DNS server"),
        3 => Some("reserved by AWS for future use"),
        _ if ip == net.broadcast() => Some("the broadcast address"),
        _ => None,
    }
}

/// Ports of one Linux bridge (one subnet): see `bridge_ports`.
pub const MAX_ENIS_PER_SUBNET: usize = 1023;

/// An ENI before allocation.
pub(super) struct EniDraft {
    pub(super) node: String,
    pub(super) owner: EniOwner,
    pub(super) subnet: Option<usize>,
    /// Path of the field naming the node (for name clashes).
    pub(super) name_path: String,
    /// Path of the field naming the subnet (for "subnet full").
    pub(super) subnet_path: String,
    pub(super) private_ip: Option<Ipv4Addr>,
    pub(super) elastic_ip: Option<Ipv4Addr>,
    pub(super) wants_public: bool,
    pub(super) security_groups: Vec<usize>,
    pub(super) source_dest_check: bool,
}

impl EniDraft {
    /// Path of a field of the ENI's owner.
    fn path(&self, field: &str) -> String {
        match self.owner {
            EniOwner::Instance(i) => format!("instance[{i}].{field}"),
            EniOwner::NatGateway(j) => format!("nat_gateway[{j}].{field}"),
            EniOwner::LoadBalancerNode(l, _) => format!("load_balancer[{l}].{field}"),
        }
    }
}

/// The final ENIs, named and numbered in draft order; an ENI the running
/// lab has keeps its port's name.
pub(super) fn assemble_enis(
    lab: &str,
    drafts: Vec<EniDraft>,
    private: &[Option<Ipv4Addr>],
    public: &[Option<Ipv4Addr>],
    pins: &Pins,
) -> Vec<Eni> {
    let pinned = |node: &str| pins.enis.get(node).map(|p| p.3.clone());
    let mut ports: HashSet<String> = drafts.iter().filter_map(|d| pinned(&d.node)).collect();
    drafts
        .into_iter()
        .enumerate()
        .map(|(e, d)| Eni {
            id: aws_id("eni", lab, &d.node),
            host_if: unique(
                pinned(&d.node),
                (e..).map(|k| truncate15(format!("e{k}-{}", d.node))),
                &mut ports,
            ),
            node: d.node,
            owner: d.owner,
            subnet: d.subnet.unwrap_or(0),
            private_ip: private[e].unwrap_or(Ipv4Addr::UNSPECIFIED),
            public_ip: public[e],
            security_groups: d.security_groups,
            source_dest_check: d.source_dest_check,
        })
        .collect()
}

impl Ctx {
    /// Instances: node name, subnet, security groups and fixed addresses
    /// (their ENI drafts, the first ones), and what runs on them (built-in
    /// workload, user data read relative to `base`).
    pub(super) fn instances(
        &mut self,
        t: &Topology,
        base: &Path,
        subnets: &Names,
        sgs: &Names,
    ) -> (Vec<EniDraft>, Vec<InstancePlan>) {
        let mut drafts = Vec::new();
        let mut instances = Vec::new();
        for (i, x) in t.instances.iter().enumerate() {
            let p = format!("instance[{i}]");
            self.node_name("instance", &x.name, 31, format!("{p}.name"), "");
            let subnet = self.lookup(subnets, &x.subnet, format!("{p}.subnet"));
            let security_groups =
                self.interface_groups(sgs, &x.security_groups, &format!("{p}.security_groups"));
            let private_ip = x
                .private_ip
                .as_deref()
                .and_then(|s| self.ip(s, &format!("{p}.private_ip")));
            let elastic_ip = x
                .elastic_ip
                .as_deref()
                .and_then(|s| self.ip(s, &format!("{p}.elastic_ip")));
            let map_public = subnet.is_some_and(|s| t.subnets[s].map_public_ip);
            drafts.push(EniDraft {
                node: x.name.clone(),
                owner: EniOwner::Instance(i),
                subnet,
                name_path: format!("{p}.name"),
                subnet_path: format!("{p}.subnet"),
                private_ip,
                elastic_ip,
                wants_public: x.associate_public_ip.unwrap_or(map_public),
                security_groups,
                source_dest_check: x.source_dest_check,
            });
            instances.push(InstancePlan {
                name: x.name.clone(),
                eni: i,
                workload: self.workload(x, &p),
                user_data: self.user_data(x, &p, base),
                metadata: self.metadata_options(&x.metadata_options, &p),
            });
        }
        (drafts, instances)
    }

    /// An instance's metadata options; AWS's defaults where omitted.
    pub(super) fn metadata_options(&mut self, o: &model::MetadataOptions, p: &str) -> MetadataPlan {
        let mut m = MetadataPlan::default();
        let p = format!("{p}.metadata_options");
        if let Some(t) = &o.http_tokens {
            let choices = [("optional", false), ("required", true)];
            let path = format!("{p}.http_tokens");
            if let Some(v) = self.keyword(path, "http_tokens", t, &choices) {
                m.tokens_required = v;
            }
        }
        if let Some(e) = &o.http_endpoint {
            let choices = [("enabled", true), ("disabled", false)];
            let path = format!("{p}.http_endpoint");
            if let Some(v) = self.keyword(path, "http_endpoint", e, &choices) {
                m.endpoint_enabled = v;
            }
        }
        if let Some(h) = o.http_put_response_hop_limit {
            match u8::try_from(h) {
                Ok(h @ 1..=64) => m.put_response_hop_limit = h,
                _ => self.err(
                    format!("{p}.http_put_response_hop_limit"),
                    format!("hop limit {h} is out of range"),
                    "AWS takes 1 to 64 (2 lets a container behind the instance get a token)",
                ),
            }
        }
        m
    }

    /// An instance's built-in workload (`run`).
    pub(super) fn workload(&mut self, x: &model::Instance, p: &str) -> Option<Workload> {
        match x.run.as_deref() {
            None => None,
            Some("model-v1") => Some(Workload::ModelV1),
            Some("model-v2") => Some(Workload::ModelV2),
            Some(other) => {
                self.err(
                    format!("{p}.run"),
                    format!("unknown workload `{other}`"),
                    "built-in workloads: \"model-v1\", \"model-v2\" (or use user_data)",
                );
                None
            }
        }
    }

    /// An instance's user data: inline, or read from a file relative to
    /// `base`; not both.
    pub(super) fn user_data(
        &mut self,
        x: &model::Instance,
        p: &str,
        base: &Path,
    ) -> Option<String> {
        match (&x.user_data, &x.user_data_file) {
            (Some(_), Some(_)) => {
                self.err(
                    format!("{p}.user_data_file"),
                    format!("instance {} has both user_data and user_data_file", x.name),
                    "keep one of them",
                );
                None
            }
            (Some(u), None) => Some(u.clone()),
            (None, Some(f)) => {
                let file = base.join(f);
                match files::read_text(&file, files::MAX_USER_DATA_BYTES) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        self.err(
                            format!("{p}.user_data_file"),
                            e.to_string(),
                            format!("give a regular file of at most {} bytes (AWS's user data limit); the path is relative to the topology file's directory", files::MAX_USER_DATA_BYTES),
                        );
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    /// NAT gateways: node name, a public subnet (checked when
    /// `public_subnets` is known), an optional Elastic IP; their ENI drafts
    /// follow the instances'.
    pub(super) fn nat_gateways(
        &mut self,
        t: &Topology,
        subnets: &Names,
        public_subnets: Option<&[bool]>,
        igw: Option<&str>,
        drafts: &mut Vec<EniDraft>,
    ) -> Vec<NatGatewayPlan> {
        let mut nat_gateways = Vec::new();
        for (j, n) in t.nat_gateways.iter().enumerate() {
            let p = format!("nat_gateway[{j}]");
            self.node_name("NAT gateway", &n.name, 31, format!("{p}.name"), "");
            let subnet = self.lookup(subnets, &n.subnet, format!("{p}.subnet"));
            if let (Some(s), Some(public)) = (subnet, public_subnets) {
                if !public[s] {
                    self.err(
                        format!("{p}.subnet"),
                        format!("NAT gateway {} is in subnet {}, which has no route 0.0.0.0/0 to an internet gateway", n.name, n.subnet),
                        format!(
                            "a NAT gateway lives in a public subnet: put it in one whose route table has 0.0.0.0/0 -> {}",
                            igw.unwrap_or("the internet gateway")
                        ),
                    );
                }
            }
            let elastic_ip = n
                .elastic_ip
                .as_deref()
                .and_then(|s| self.ip(s, &format!("{p}.elastic_ip")));
            nat_gateways.push(NatGatewayPlan {
                name: n.name.clone(),
                subnet: subnet.unwrap_or(0),
                eni: drafts.len(),
            });
            drafts.push(EniDraft {
                node: n.name.clone(),
                owner: EniOwner::NatGateway(j),
                subnet,
                name_path: format!("{p}.name"),
                subnet_path: format!("{p}.subnet"),
                private_ip: None,
                elastic_ip,
                wants_public: true,
                security_groups: vec![],
                source_dest_check: false,
            });
        }
        nat_gateways
    }

    /// Node names: one namespace each, so distinct and not vpcsim's own.
    pub(super) fn node_names(&mut self, drafts: &[EniDraft]) {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for d in drafts {
            if d.node == FABRIC || d.node == INTERNET {
                self.err(&d.name_path, format!("node name `{}` is reserved", d.node), format!("`{FABRIC}` and `{INTERNET}` are vpcsim's own namespaces; choose another name"));
            }
            if let Some(&other) = seen.get(d.node.as_str()) {
                // Nodes of one load balancer share its name's path.
                if other != d.name_path {
                    self.err(
                        &d.name_path,
                        format!("node name `{}` is already used by {}", d.node, other.trim_end_matches(".name")),
                        "instances, NAT gateways and load balancer nodes (<lb>-<az letter>) each get a namespace and need distinct names",
                    );
                }
            } else {
                seen.insert(&d.node, &d.name_path);
            }
        }
    }

    /// Private IPs: fixed ones first (inside the subnet, not reserved, each
    /// once), then the lowest free address of the subnet for every other ENI.
    pub(super) fn private_ips(
        &mut self,
        t: &Topology,
        drafts: &[EniDraft],
        cidrs: &[Option<Ipv4Net>],
    ) -> Vec<Option<Ipv4Addr>> {
        let mut used: HashMap<Ipv4Addr, usize> = HashMap::new();
        let mut private: Vec<Option<Ipv4Addr>> = vec![None; drafts.len()];
        for (e, d) in drafts.iter().enumerate() {
            let (Some(ip), Some(s)) = (d.private_ip, d.subnet) else {
                continue;
            };
            let Some(net) = cidrs[s] else { continue };
            let path = d.path("private_ip");
            let (first, last) = assignable(net);
            let range_hint = format!(
                "use an address from {} to {}",
                Ipv4Addr::from(first),
                Ipv4Addr::from(last)
            );
            if !net.contains(&ip) {
                self.err(
                    &path,
                    format!(
                        "private IP {ip} is not in subnet {} ({net})",
                        t.subnets[s].name
                    ),
                    range_hint,
                );
                continue;
            }
            if let Some(what) = reserved_use(net, ip) {
                self.err(
                    &path,
                    format!("private IP {ip} is reserved in subnet {} ({what})", t.subnets[s].name),
                    format!("AWS reserves the first four addresses and the last one of every subnet; {range_hint}"),
                );
                continue;
            }
            if let Some(&o) = used.get(&ip) {
                self.err(&path, format!("private IP {ip} is already used by {}", drafts[o].node), "give each interface its own address (or omit private_ip to have one allocated)");
                continue;
            }
            used.insert(ip, e);
            private[e] = Some(ip);
        }
        // What the running lab allocated, where the ENI stays in its subnet.
        for (e, d) in drafts.iter().enumerate() {
            let (Some(s), None) = (d.subnet, d.private_ip) else {
                continue;
            };
            if let Some(&(cidr, ip, _, _)) = self.pins.enis.get(&d.node) {
                if cidrs[s] == Some(cidr) && !used.contains_key(&ip) {
                    used.insert(ip, e);
                    private[e] = Some(ip);
                }
            }
        }
        for (e, d) in drafts.iter().enumerate() {
            if d.private_ip.is_some() || private[e].is_some() {
                continue;
            }
            let Some(s) = d.subnet else { continue };
            let Some(net) = cidrs[s] else { continue };
            let (first, last) = assignable(net);
            match (first..=last)
                .map(Ipv4Addr::from)
                .find(|ip| !used.contains_key(ip))
            {
                Some(ip) => {
                    used.insert(ip, e);
                    private[e] = Some(ip);
                }
                None => self.err(
                    &d.subnet_path,
                    format!(
                        "subnet {} ({net}) has no free address left for {}",
                        t.subnets[s].name, d.node
                    ),
                    "use a larger subnet",
                ),
            }
        }
        private
    }

    /// A subnet is one Linux bridge in the fabric, and a bridge holds at most
    /// MAX_ENIS_PER_SUBNET ports (the kernel's BR_MAX_PORTS, 1,024, less
    /// port 0): an ENI past that could not be attached.
    pub(super) fn bridge_ports(&mut self, t: &Topology, drafts: &[EniDraft]) {
        let mut count = vec![0usize; t.subnets.len()];
        for d in drafts {
            let Some(s) = d.subnet else { continue };
            count[s] += 1;
            if count[s] == MAX_ENIS_PER_SUBNET + 1 {
                self.err(
                    &d.subnet_path,
                    format!(
                        "subnet {} has more than {MAX_ENIS_PER_SUBNET} network interfaces ({} is one too many)",
                        t.subnets[s].name, d.node
                    ),
                    "spread the instances over more subnets: vpcsim emulates a subnet with one Linux bridge, which holds at most 1,023 ports",
                );
            }
        }
    }

    /// Public IPs: Elastic IPs first (outside the VPC, not an internet
    /// host's, each once), then addresses from the public pool, from its
    /// 11th on, for every other ENI that wants one.
    pub(super) fn public_ips(
        &mut self,
        drafts: &[EniDraft],
        net: &Network,
    ) -> Vec<Option<Ipv4Addr>> {
        let hosts = &net.hosts;
        let mut used: HashMap<Ipv4Addr, usize> = HashMap::new();
        let mut public: Vec<Option<Ipv4Addr>> = vec![None; drafts.len()];
        for (e, d) in drafts.iter().enumerate() {
            let Some(ip) = d.elastic_ip else { continue };
            let path = d.path("elastic_ip");
            if let Some(v) = net.vpc.filter(|v| v.contains(&ip)) {
                self.err(&path, format!("elastic IP {ip} is inside the VPC CIDR {v}"), "an Elastic IP is a public address; use one outside the VPC, e.g. from internet.public_pool");
            } else if hosts.contains(&ip) {
                self.err(
                    &path,
                    format!("elastic IP {ip} is an internet host's address"),
                    "pick an address that no internet host uses",
                );
            } else if let Some(&o) = used.get(&ip) {
                self.err(
                    &path,
                    format!("elastic IP {ip} is already used by {}", drafts[o].node),
                    "an Elastic IP belongs to one interface",
                );
            } else {
                used.insert(ip, e);
                public[e] = Some(ip);
            }
        }
        let Some(pool) = net.pool else {
            return public;
        };
        let first = u32::from(pool.network()).saturating_add(10);
        let last = u32::from(pool.broadcast()).saturating_sub(1);
        // Pool addresses the running lab gave ENIs that still want one.
        for (e, d) in drafts.iter().enumerate() {
            if d.elastic_ip.is_some() || !d.wants_public {
                continue;
            }
            let pinned = self.pins.enis.get(&d.node).and_then(|p| p.2);
            if let Some(ip) = pinned.filter(|ip| {
                (first..=last).contains(&u32::from(*ip))
                    && !used.contains_key(ip)
                    && !hosts.contains(ip)
            }) {
                used.insert(ip, e);
                public[e] = Some(ip);
            }
        }
        let mut next = first;
        let mut exhausted = false;
        for (e, d) in drafts.iter().enumerate() {
            if d.elastic_ip.is_some() || !d.wants_public || public[e].is_some() {
                continue;
            }
            while next <= last
                && (used.contains_key(&Ipv4Addr::from(next))
                    || hosts.contains(&Ipv4Addr::from(next)))
            {
                next += 1;
            }
            if next > last {
                if !exhausted {
                    self.err(
                        "internet.public_pool",
                        format!("public pool {pool} has no address left for {}", d.node),
                        "use a larger public_pool (allocation starts at its 11th address)",
                    );
                }
                exhausted = true;
                continue;
            }
            let ip = Ipv4Addr::from(next);
            used.insert(ip, e);
            public[e] = Some(ip);
        }
        public
    }
}

#[cfg(test)]
mod tests {
    use super::super::context::parse_ports;
    use super::super::target_groups::parse_matcher;
    use super::super::testing::*;
    use super::*;
    use crate::topology::plan::PortRange;

    #[test]
    fn private_and_public_ips_are_allocated_in_eni_order() {
        let l = lab(&format!(
            r#"{NET}
[[instance]]
name = "a"
subnet = "public-1"
[[instance]]
name = "b"
subnet = "public-1"
private_ip = "10.0.1.5"
associate_public_ip = false
[[instance]]
name = "c"
subnet = "public-1"
elastic_ip = "198.51.100.11"
[[instance]]
name = "d"
subnet = "a-very-long-subnet-name"
[[nat_gateway]]
name = "nat"
subnet = "public-1"
[[target_group]]
name = "tg"
port = 80
targets = ["d", "a:8080"]
[[load_balancer]]
name = "alb"
subnets = ["public-2", "public-1"]
"#
        ));
        let names: Vec<&str> = l.enis.iter().map(|e| e.node.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "nat", "alb-b", "alb-a"]);
        let private: Vec<Ipv4Addr> = l.enis.iter().map(|e| e.private_ip).collect();
        assert_eq!(
            private,
            [
                ip("10.0.1.4"),
                ip("10.0.1.5"),
                ip("10.0.1.6"),
                ip("10.0.2.4"),
                ip("10.0.1.7"),
                ip("10.0.3.4"),
                ip("10.0.1.8"),
            ]
        );
        // Pool 198.51.100.0/24 from .10, skipping the EIP (.11) and the host (.12).
        let public: Vec<Option<Ipv4Addr>> = l.enis.iter().map(|e| e.public_ip).collect();
        assert_eq!(
            public,
            [
                Some(ip("198.51.100.10")),
                None,
                Some(ip("198.51.100.11")),
                None,
                Some(ip("198.51.100.13")),
                Some(ip("198.51.100.14")),
                Some(ip("198.51.100.15")),
            ]
        );
        assert_eq!(l.enis[4].owner, EniOwner::NatGateway(0));
        assert!(l.enis[4].security_groups.is_empty());
        assert!(!l.enis[4].source_dest_check);
        assert_eq!(l.enis[6].owner, EniOwner::LoadBalancerNode(0, 1));
        assert_eq!(l.load_balancers[0].nodes, [5, 6]);
        assert_eq!(l.nat_gateways[0].eni, 4);
        assert_eq!(l.instances[3].eni, 3);
        assert_eq!(l.enis[3].host_if, "e3-d");
        assert_eq!(l.enis[0].id, aws_id("eni", "t", "a"));
        let tg = &l.target_groups[0];
        assert_eq!(tg.targets[0].ip, ip("10.0.2.4"));
        assert_eq!(tg.targets[0].port, 80);
        assert_eq!(tg.targets[1].port, 8080);
    }

    #[test]
    fn user_data_file_is_read_relative_to_base() {
        let dir = std::env::temp_dir().join(format!("vpcsim-validate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("boot.sh"), "echo hello\n").unwrap();
        let l = lab_in(
            &format!("{NET}\n[[instance]]\nname = \"a\"\nsubnet = \"public-1\"\nuser_data_file = \"boot.sh\"\n"),
            &dir,
        );
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(l.instances[0].user_data.as_deref(), Some("echo hello\n"));
    }

    #[test]
    fn a_subnet_holds_at_most_1023_interfaces() {
        let mut text = String::from(
            "name = \"t\"\n[vpc]\ncidr = \"10.0.0.0/16\"\n\
             [[subnet]]\nname = \"big\"\ncidr = \"10.0.0.0/20\"\naz = \"us-east-1a\"\n",
        );
        for k in 0..=MAX_ENIS_PER_SUBNET {
            text.push_str(&format!(
                "[[instance]]\nname = \"x{k}\"\nsubnet = \"big\"\n"
            ));
        }
        let d = errors(&text);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].path, "instance[1023].subnet");
        assert!(
            d[0].message.contains("x1023 is one too many"),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn subnet_full_and_ports_parse() {
        // A /28 has 11 usable addresses (.4 to .14): the 12th interface fails.
        let mut text = String::from(
            "name = \"t\"\n[vpc]\ncidr = \"10.0.0.0/16\"\n\
             [[subnet]]\nname = \"s\"\ncidr = \"10.0.0.0/28\"\naz = \"us-east-1a\"\n\
             [[instance]]\nname = \"a\"\nsubnet = \"s\"\nprivate_ip = \"10.0.0.4\"\n",
        );
        for k in 0..11 {
            text.push_str(&format!("[[instance]]\nname = \"x{k}\"\nsubnet = \"s\"\n"));
        }
        let d = errors(&text);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(d[0].message.contains("no free address"), "{}", d[0].message);
        assert_eq!(parse_ports("0-65535"), Ok(PortRange { from: 0, to: 65535 }));
        assert!(parse_ports("80-").is_err());
        assert_eq!(
            parse_matcher("200,202-204"),
            Ok(vec![(200, 200), (202, 204)])
        );
    }
}
