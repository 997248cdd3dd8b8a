//! Checks a parsed [`Topology`] against AWS's rules and resolves it into a
//! [`Lab`]: names become indexes, addresses are parsed and allocated,
//! defaults (main route table, default NACL, default security group) are
//! made explicit.
//!
//! Every mistake of the file is reported at once, each as a [`Diagnostic`]
//! addressed by its TOML path; nothing stops at the first error.
//!
//! One file per kind of resource, all adding to one `context::Ctx` (the
//! diagnostics and the checks every section shares):
//! `vpc` the lab name, region, VPC CIDR, internet and subnets;
//! `routing` route tables and routes; `nacls`; `security_groups`;
//! `instances` instances, NAT gateways, node names and address allocation;
//! `target_groups` target groups and health checks; `load_balancers`
//! load balancer nodes, listeners and rules; `s3` gateway endpoints and
//! buckets; `containers`; `flow_logs`. This file only orders the
//! sections.
//!
//! Owns: the rules a topology file must follow. Must not touch: the system
//! (no namespace, process or socket; reading `user_data_file`, seed
//! directories and policy files is the only I/O).

mod containers;
mod context;
mod flow_logs;
mod instances;
mod load_balancers;
mod nacls;
mod routing;
mod s3;
mod security_groups;
mod target_groups;
mod vpc;
mod waf;
mod waf_logging;
mod waf_statements;

use super::model::Topology;
use super::plan::*;
use super::Diagnostic;
use context::Ctx;
use instances::assemble_enis;
use std::path::Path;

/// Checks the whole topology; returns every error, or the resolved lab.
pub fn validate(t: &Topology, base: &Path) -> Result<Lab, Vec<Diagnostic>> {
    validate_with(t, base, None)
}

/// `validate` for a change to the running lab `previous`: what stays keeps
/// the addresses, interface names and table ids it has (`context::Pins`).
pub fn validate_with(
    t: &Topology,
    base: &Path,
    previous: Option<&Lab>,
) -> Result<Lab, Vec<Diagnostic>> {
    let mut c = Ctx {
        diags: vec![],
        pins: previous.map(context::Pins::of).unwrap_or_default(),
    };
    let mut lab = c.resolve(t, base);
    if let Some(lab) = lab.as_mut() {
        c.s3(t, base, lab);
        c.web_acls(t, lab);
    }
    let lab = c.containers(t, lab);
    if c.diags.is_empty() {
        Ok(lab.expect("a lab is built whenever there is no diagnostic"))
    } else {
        Err(c.diags)
    }
}

/// Only the lab's name: what must be valid before it names a lab's state
/// or namespaces.
pub fn lab_name(t: &Topology) -> Result<(), Vec<Diagnostic>> {
    let mut c = Ctx::default();
    c.lab_name(t);
    if c.diags.is_empty() {
        Ok(())
    } else {
        Err(c.diags)
    }
}

impl Ctx {
    /// Resolves the sections in dependency order. Every section reports all
    /// of its errors; the lab is assembled only if there were none.
    fn resolve(&mut self, t: &Topology, base: &Path) -> Option<Lab> {
        let lab = t.name.as_str();
        let region_ok = self.lab_name_and_region(t);
        let net = self.vpc_and_internet(t);
        let subnets = self.subnets(t, net.vpc, region_ok);
        let targets = self.route_targets(t);
        let route_tables = self.route_tables(t, net.vpc, &targets);
        let nacls = self.nacls(t);
        let subnet_plans = self.subnet_associations(t, &subnets, &route_tables, &nacls.names);
        // Known (and checked for NAT gateways) only once every subnet resolved.
        let public_subnets: Option<Vec<bool>> =
            (subnet_plans.len() == t.subnets.len()).then(|| {
                let public = &route_tables.public;
                subnet_plans.iter().map(|s| public[s.route_table]).collect()
            });
        let sgs = self.security_groups(t, lab);

        // ENIs: instances, then NAT gateways, then load balancer nodes.
        let (mut drafts, instances) = self.instances(t, base, &subnets.names, &sgs.names);
        let nat_gateways = self.nat_gateways(
            t,
            &subnets.names,
            public_subnets.as_deref(),
            targets.igw.as_deref(),
            &mut drafts,
        );
        let lb_nodes = self.load_balancer_nodes(t, &subnets.names, &sgs.names, &mut drafts);
        self.node_names(&drafts);
        let private = self.private_ips(t, &drafts, &subnets.cidrs);
        self.bridge_ports(t, &drafts);
        let public = self.public_ips(&drafts, &net);

        let (tg_names, target_groups) = self.target_groups(t, &targets.instances, &private);
        let load_balancers = self.load_balancers(t, &tg_names, lb_nodes);

        if !self.diags.is_empty() {
            return None;
        }
        let enis = assemble_enis(lab, drafts, &private, &public, &self.pins);
        let flow_logs = self.flow_logs(lab, &t.flow_logs, &subnet_plans, &enis);
        Some(Lab {
            name: t.name.clone(),
            region: t.region.clone(),
            vpc_cidr: net.vpc?,
            vpc_id: aws_id("vpc", lab, "vpc"),
            subnets: subnet_plans,
            route_tables: route_tables.plans,
            nacls: nacls.plans,
            security_groups: sgs.plans,
            enis,
            nat_gateways,
            internet_gateway: targets.igw,
            internet: InternetPlan {
                hosts: net.hosts,
                public_pool: net.pool?,
            },
            instances,
            target_groups,
            load_balancers,
            containers: vec![],
            vpc_endpoints: vec![],
            s3: None,
            flow_logs,
            web_acls: vec![],
            origins: t.origins.clone(),
        })
    }
}

/// Topology snippets and helpers the unit tests of every section share.
#[cfg(test)]
mod testing {
    use super::*;
    use std::net::Ipv4Addr;

    pub(super) fn lab(text: &str) -> Lab {
        lab_in(text, Path::new("."))
    }

    pub(super) fn lab_in(text: &str, base: &Path) -> Lab {
        let t: Topology = toml::from_str(text).expect("toml");
        match validate(&t, base) {
            Ok(l) => l,
            Err(d) => panic!("{d:#?}"),
        }
    }

    pub(super) fn errors(text: &str) -> Vec<Diagnostic> {
        let t: Topology = toml::from_str(text).expect("toml");
        validate(&t, Path::new(".")).expect_err("should fail")
    }

    pub(super) const NET: &str = r#"
name = "t"
[vpc]
cidr = "10.0.0.0/16"
[internet]
hosts = ["198.51.100.12"]
[[subnet]]
name = "public-1"
cidr = "10.0.1.0/24"
az = "us-east-1a"
route_table = "public"
map_public_ip = true
[[subnet]]
name = "public-2"
cidr = "10.0.3.0/24"
az = "us-east-1b"
route_table = "public"
[[subnet]]
name = "a-very-long-subnet-name"
cidr = "10.0.2.0/24"
az = "us-east-1a"
[internet_gateway]
name = "igw"
[[route_table]]
name = "public"
routes = [{ destination = "0.0.0.0/0", target = "igw" }]
"#;

    pub(super) fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::context::ALL_V4;
    use super::load_balancers::elb_number;
    use super::testing::*;
    use crate::topology::plan::*;

    #[test]
    fn implicit_main_table_default_nacl_and_default_sg() {
        let l = lab(&format!(
            "{NET}\n[[instance]]\nname = \"a\"\nsubnet = \"a-very-long-subnet-name\"\n"
        ));
        assert_eq!(l.vpc_id, aws_id("vpc", "t", "vpc"));
        assert_eq!(l.route_tables.len(), 2);
        let main = &l.route_tables[1];
        assert_eq!(
            (main.name.as_str(), main.table_id, main.main),
            ("main", 101, true)
        );
        assert!(main.routes.is_empty());
        assert_eq!(l.route_tables[0].table_id, 100);
        assert!(!l.route_tables[0].main);
        assert_eq!(
            l.route_tables[0].routes[0].target,
            RouteTarget::InternetGateway
        );
        assert_eq!(l.subnets[2].route_table, 1);
        assert_eq!(l.subnets[0].route_table, 0);
        assert_eq!(l.subnets[2].bridge, "br2-a-very-long");
        assert_eq!(l.subnets[2].router, ip("10.0.2.1"));
        // Default NACL: allow all both ways.
        assert_eq!(l.nacls.len(), 1);
        assert_eq!(l.nacls[0].name, "default");
        for dir in [&l.nacls[0].inbound, &l.nacls[0].outbound] {
            assert_eq!(dir.len(), 1);
            assert_eq!(dir[0].rule, 100);
            assert_eq!(dir[0].protocol, Protocol::All);
            assert_eq!(dir[0].action, Action::Allow);
        }
        // Default SG: members of itself in, everything out.
        assert_eq!(l.security_groups.len(), 1);
        let sg = &l.security_groups[0];
        assert_eq!(sg.name, "default");
        assert_eq!(sg.id, aws_id("sg", "t", "default"));
        assert_eq!(sg.ingress[0].peer, SgPeer::Group(0));
        assert_eq!(sg.egress[0].peer, SgPeer::Cidr(ALL_V4));
        assert_eq!(l.enis[0].security_groups, [0]);
        assert_eq!(l.enis[0].public_ip, None);
    }

    #[test]
    fn rules_are_sorted_and_defaults_filled() {
        let l = lab(&format!(
            r#"{NET}
[[nacl]]
name = "n"
inbound = [
  {{ rule = 200, protocol = "-1", cidr = "0.0.0.0/0", action = "Deny" }},
  {{ rule = 100, protocol = "6", ports = "1024-65535", cidr = "10.0.0.0/16", action = "allow" }},
]
outbound = [{{ rule = 100, protocol = "udp", ports = "53", cidr = "0.0.0.0/0", action = "allow" }}]
[[security_group]]
name = "sg-a"
ingress = [{{ protocol = "tcp", ports = "80", source_sg = "sg-a" }}]
[[instance]]
name = "web"
subnet = "public-1"
security_groups = ["sg-a"]
source_dest_check = false
run = "model-v2"
[[instance]]
name = "router"
subnet = "public-1"
security_groups = ["sg-a"]
[[route_table]]
name = "via-router"
routes = [{{ destination = "192.168.0.0/16", target = "router" }}]
[[target_group]]
name = "tg"
port = 8000
targets = ["web"]
[[load_balancer]]
name = "alb"
subnets = ["public-1", "public-2"]
[[load_balancer.listener]]
port = 80
default_forward = [{{ target_group = "tg" }}]
rules = [
  {{ priority = 20, path_pattern = "/b/*", forward = [{{ target_group = "tg" }}] }},
  {{ priority = 10, source_ip = ["203.0.113.0/24"], http_request_method = "GET", forward = [{{ target_group = "tg", weight = 0 }}] }},
]
"#
        ));
        let n = &l.nacls[0];
        assert_eq!(n.inbound[0].rule, 100);
        assert_eq!(n.inbound[0].protocol, Protocol::Tcp);
        assert_eq!(
            n.inbound[0].ports,
            Some(PortRange {
                from: 1024,
                to: 65535
            })
        );
        assert_eq!(n.inbound[1].action, Action::Deny);
        assert_eq!(n.inbound[1].ports, None);
        // The default NACL exists for the subnets that name none, after "n".
        assert_eq!(l.nacls[1].name, "default");
        let sg = &l.security_groups[0];
        assert_eq!(sg.ingress[0].peer, SgPeer::Group(0));
        assert_eq!(sg.egress.len(), 1, "omitted egress = all to 0.0.0.0/0");
        // The ALB has no groups: the default group is appended for it.
        assert_eq!(l.security_groups[1].name, "default");
        assert_eq!(l.enis[2].security_groups, [1]);
        assert_eq!(l.route_tables[1].routes[0].target, RouteTarget::Eni(1));
        assert!(!l.enis[0].source_dest_check);
        assert_eq!(l.instances[0].workload, Some(Workload::ModelV2));
        let tg = &l.target_groups[0];
        let hc = &tg.health_check;
        assert_eq!(hc.path, "/");
        assert_eq!(hc.port, None);
        assert_eq!((hc.interval_s, hc.timeout_s), (30, 5));
        assert_eq!((hc.healthy_threshold, hc.unhealthy_threshold), (5, 2));
        assert_eq!(hc.matcher, [(200, 200)]);
        assert_eq!(tg.algorithm, Algorithm::RoundRobin);
        assert_eq!(tg.deregistration_delay_s, 300);
        assert_eq!(tg.stickiness_s, None);
        let lb = &l.load_balancers[0];
        assert_eq!(lb.idle_timeout_s, 60);
        let digits = elb_number("t", "alb");
        assert_eq!(digits.len(), 10);
        assert_eq!(
            lb.dns_name,
            format!("alb-{digits}.us-east-1.elb.amazonaws.com")
        );
        let li = &lb.listeners[0];
        assert_eq!(li.port, 80);
        assert_eq!(li.default_forward[0].weight, 1);
        let prios: Vec<u32> = li.rules.iter().map(|r| r.priority).collect();
        assert_eq!(prios, [10, 20]);
        assert!(matches!(
            li.rules[0].conditions[0],
            Condition::HttpRequestMethod(_)
        ));
        assert!(matches!(&li.rules[0].conditions[1], Condition::SourceIp(v) if v.len() == 1));
        assert_eq!(li.rules[0].forward[0].weight, 0);
    }

    #[test]
    fn every_error_is_reported() {
        let d = errors(
            r#"
name = "Bad_Name"
region = "us-east-1"
[vpc]
cidr = "10.0.0.0/8"
[[subnet]]
name = "s"
cidr = "10.0.1.1/24"
az = "eu-west-1a"
[[instance]]
name = "i"
subnet = "nope"
"#,
        );
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "name",
                "vpc.cidr",
                "subnet[0].cidr",
                "subnet[0].az",
                "instance[0].subnet"
            ]
        );
        assert!(d[2].hint.contains("10.0.1.0/24"));
    }
}
