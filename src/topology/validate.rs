//! Checks a parsed [`Topology`] against AWS's rules and resolves it into a
//! [`Lab`]: names become indexes, addresses are parsed and allocated,
//! defaults (main route table, default NACL, default security group) are
//! made explicit.
//!
//! Every mistake of the file is reported at once, each as a [`Diagnostic`]
//! addressed by its TOML path; nothing stops at the first error.

use super::model::{self, Topology};
use super::plan::*;
use super::Diagnostic;
use ipnet::Ipv4Net;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

/// Checks the whole topology; returns every error, or the resolved lab.
pub fn validate(t: &Topology, base: &Path) -> Result<Lab, Vec<Diagnostic>> {
    let mut c = Ctx::default();
    let mut lab = c.resolve(t, base);
    if let Some(lab) = lab.as_mut() {
        c.diags.extend(super::validate_s3::resolve(t, base, lab));
    }
    let lab = super::containers::resolve(t, lab, &mut c.diags);
    if c.diags.is_empty() {
        Ok(lab.expect("a lab is built whenever there is no diagnostic"))
    } else {
        Err(c.diags)
    }
}

const ALL_V4: Ipv4Net = match Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0) {
    Ok(n) => n,
    Err(_) => panic!("0.0.0.0/0"),
};

#[derive(Default)]
struct Ctx {
    diags: Vec<Diagnostic>,
}

/// Interface names are at most 15 bytes (IFNAMSIZ - 1).
fn truncate15(s: String) -> String {
    s.chars().take(15).collect()
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn quoted_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    if v.is_empty() {
        "(none defined)".into()
    } else {
        v.join(", ")
    }
}

/// Why `name` is not a valid node/lab name (`^[a-z][a-z0-9-]{0,max-1}$`).
fn name_problem(name: &str, max: usize) -> Option<String> {
    let first = name.chars().next()?;
    if name.len() > max {
        return Some(format!(
            "it is {} characters long, at most {max} are allowed",
            name.len()
        ));
    }
    if !first.is_ascii_lowercase() {
        return Some(format!(
            "it starts with `{first}`, it must start with a lowercase letter"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|ch| !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || *ch == '-'))
    {
        return Some(format!(
            "it contains `{bad}`; only lowercase letters, digits and `-` are allowed"
        ));
    }
    None
}

fn suggest_name(name: &str, max: usize) -> String {
    let mut s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_start_matches(|c: char| !c.is_ascii_lowercase());
    let mut s: String = s.chars().take(max).collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() {
        "lab".into()
    } else {
        s
    }
}

fn valid_region(r: &str) -> bool {
    // us-east-1, eu-west-3, ap-southeast-2, us-gov-west-1
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && {
            let last = parts[parts.len() - 1];
            !last.is_empty() && last.chars().all(|c| c.is_ascii_digit())
        }
}

fn parse_protocol(s: &str) -> Option<Protocol> {
    match s.trim().to_ascii_lowercase().as_str() {
        "tcp" | "6" => Some(Protocol::Tcp),
        "udp" | "17" => Some(Protocol::Udp),
        "icmp" | "1" => Some(Protocol::Icmp),
        "all" | "-1" => Some(Protocol::All),
        _ => None,
    }
}

fn parse_ports(s: &str) -> Result<PortRange, String> {
    let s = s.trim();
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let port = |x: &str| -> Result<u16, String> {
        let x = x.trim();
        if x.is_empty() {
            return Err("a port number is missing".into());
        }
        let n: u64 = x
            .parse()
            .map_err(|_| format!("`{x}` is not a port number"))?;
        u16::try_from(n).map_err(|_| format!("port {n} is above 65535"))
    };
    let from = port(a)?;
    let to = port(b)?;
    if from > to {
        return Err(format!("the range goes backwards ({from} > {to})"));
    }
    Ok(PortRange { from, to })
}

/// Status code matcher: `200`, `200-299`, `200,202`.
fn parse_matcher(s: &str) -> Result<Vec<(u16, u16)>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let code = |x: &str| -> Result<u16, String> {
            let n: u16 = x
                .trim()
                .parse()
                .map_err(|_| format!("`{}` is not an HTTP status code", x.trim()))?;
            if !(200..=499).contains(&n) {
                return Err(format!("code {n} is outside 200-499"));
            }
            Ok(n)
        };
        let (a, b) = (code(a)?, code(b)?);
        if a > b {
            return Err(format!("range {a}-{b} goes backwards"));
        }
        out.push((a, b));
    }
    Ok(out)
}

/// `<name>-<10 digits>`: AWS's ELB DNS names carry a numeric id.
fn elb_number(lab: &str, name: &str) -> String {
    let id = aws_id("elb", lab, name);
    let n = u64::from_str_radix(&id[4..], 16).unwrap_or(0);
    format!("{:010}", n % 10_000_000_000)
}

/// AWS's limit of security groups per network interface.
const MAX_SGS_PER_ENI: usize = 5;

/// Whether anything uses the `default` security group, by name or by listing
/// no group at all (then AWS's default group is created).
fn references_default_sg(t: &Topology) -> bool {
    t.instances
        .iter()
        .any(|x| x.security_groups.is_empty() || x.security_groups.iter().any(|g| g == "default"))
        || t.load_balancers.iter().any(|l| {
            l.security_groups.is_empty() || l.security_groups.iter().any(|g| g == "default")
        })
        || t.security_groups.iter().any(|g| {
            g.ingress.iter().chain(g.egress.iter().flatten()).any(|r| {
                r.source_sg.as_deref() == Some("default")
                    || r.destination_sg.as_deref() == Some("default")
            })
        })
}

/// A security group's egress when the file omits it: everything anywhere.
fn allow_all_egress() -> SgRulePlan {
    SgRulePlan {
        protocol: Protocol::All,
        ports: None,
        peer: SgPeer::Cidr(ALL_V4),
    }
}

/// First and last assignable address of a subnet: AWS reserves the first
/// four and the last one.
fn assignable(net: Ipv4Net) -> (u32, u32) {
    (
        u32::from(net.network()) + 4,
        u32::from(net.broadcast()).saturating_sub(1),
    )
}

/// What AWS reserves `ip` (inside `net`) for, if anything.
fn reserved_use(net: Ipv4Net, ip: Ipv4Addr) -> Option<&'static str> {
    match u32::from(ip) - u32::from(net.network()) {
        0 => Some("the network address"),
        1 => Some("the VPC router"),
        2 => Some("the Amazon DNS server"),
        3 => Some("reserved by AWS for future use"),
        _ if ip == net.broadcast() => Some("the broadcast address"),
        _ => None,
    }
}

/// Names of one kind: name -> index (the first of duplicates wins), and the
/// names an "unknown name" hint lists.
struct Names<'t> {
    /// Singular, as in "subnet `x` does not exist"; hints list "{kind}s".
    kind: &'static str,
    index: HashMap<&'t str, usize>,
    listed: Vec<&'t str>,
}

impl<'t> Names<'t> {
    /// Names checked elsewhere (instances and NAT gateways are node names).
    fn unchecked(kind: &'static str, listed: Vec<&'t str>) -> Self {
        let mut index = HashMap::new();
        for (i, n) in listed.iter().enumerate() {
            index.entry(*n).or_insert(i);
        }
        Names {
            kind,
            index,
            listed,
        }
    }

    /// A name the file does not declare (implicit main table, default NACL
    /// or security group); `listed` says whether hints name it.
    fn add_implicit(&mut self, name: &'static str, i: usize, listed: bool) {
        self.index.insert(name, i);
        if listed {
            self.listed.push(name);
        }
    }

    fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

/// The VPC CIDR and the internet outside it.
struct Network {
    vpc: Option<Ipv4Net>,
    hosts: Vec<Ipv4Addr>,
    pool: Option<Ipv4Net>,
}

/// Subnet names and CIDRs, before their tables are known.
struct Subnets<'t> {
    names: Names<'t>,
    /// Per subnet; host bits cleared, `None` if it does not parse.
    cidrs: Vec<Option<Ipv4Net>>,
}

/// What a route may target, by name.
struct RouteTargets<'t> {
    igw: Option<String>,
    nat_gateways: Names<'t>,
    instances: Names<'t>,
}

struct RouteTables<'t> {
    /// With `main` when the main table is implicit.
    names: Names<'t>,
    plans: Vec<RouteTablePlan>,
    /// Per table: whether its 0.0.0.0/0 goes to the internet gateway.
    public: Vec<bool>,
    /// The main table (the implicit one is last).
    main: usize,
}

struct Nacls<'t> {
    /// With `default` when the default NACL is implicit.
    names: Names<'t>,
    plans: Vec<NaclPlan>,
}

struct SecurityGroups<'t> {
    /// With `default` when the default group is implicit.
    names: Names<'t>,
    plans: Vec<SecurityGroupPlan>,
}

/// An ENI before allocation.
/// Ports of one Linux bridge (one subnet): see `bridge_ports`.
pub const MAX_ENIS_PER_SUBNET: usize = 1023;

struct EniDraft {
    node: String,
    owner: EniOwner,
    subnet: Option<usize>,
    /// Path of the field naming the node (for name clashes).
    name_path: String,
    /// Path of the field naming the subnet (for "subnet full").
    subnet_path: String,
    private_ip: Option<Ipv4Addr>,
    elastic_ip: Option<Ipv4Addr>,
    wants_public: bool,
    security_groups: Vec<usize>,
    source_dest_check: bool,
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

/// The final ENIs, named and numbered in draft order.
fn assemble_enis(
    lab: &str,
    drafts: Vec<EniDraft>,
    private: &[Option<Ipv4Addr>],
    public: &[Option<Ipv4Addr>],
) -> Vec<Eni> {
    drafts
        .into_iter()
        .enumerate()
        .map(|(e, d)| Eni {
            id: aws_id("eni", lab, &d.node),
            host_if: truncate15(format!("e{e}-{}", d.node)),
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
    fn err(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diags.push(Diagnostic {
            path: path.into(),
            message: message.into(),
            hint: hint.into(),
        });
    }

    /// A network in CIDR notation with its host bits zero.
    fn cidr(&mut self, s: &str, path: &str) -> Option<Ipv4Net> {
        let s = s.trim();
        let net: Ipv4Net = match s.parse() {
            Ok(n) => n,
            Err(_) => {
                let hint = match s.parse::<Ipv4Addr>() {
                    Ok(ip) => format!("a single address is written as a /32: \"{ip}/32\""),
                    Err(_) => "write an IPv4 network like \"10.0.1.0/24\"".into(),
                };
                self.err(path, format!("`{s}` is not an IPv4 CIDR block"), hint);
                return None;
            }
        };
        if net.addr() != net.network() {
            self.err(
                path,
                format!("`{s}` has host bits set; it is not a network address"),
                format!("use the network address \"{}\"", net.trunc()),
            );
            return Some(net.trunc());
        }
        Some(net)
    }

    fn ip(&mut self, s: &str, path: &str) -> Option<Ipv4Addr> {
        match s.trim().parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(
                    path,
                    format!("`{s}` is not an IPv4 address"),
                    "write a single address like \"10.0.1.10\" (no prefix length)",
                );
                None
            }
        }
    }

    /// Protocol and ports of a NACL or SG rule.
    fn proto_ports(
        &mut self,
        proto: &str,
        ports: Option<&str>,
        path: &str,
    ) -> Option<(Protocol, Option<PortRange>)> {
        let p = parse_protocol(proto);
        if p.is_none() {
            self.err(
                format!("{path}.protocol"),
                format!("unknown protocol `{proto}`"),
                "use tcp, udp, icmp or all (AWS's numbers 6, 17, 1 and -1 are accepted too)",
            );
        }
        let range = match ports {
            None => None,
            Some(s) => match parse_ports(s) {
                Ok(r) => Some(r),
                Err(why) => {
                    self.err(
                        format!("{path}.ports"),
                        format!("invalid ports `{s}`: {why}"),
                        "write one port (\"80\") or an inclusive range (\"1024-65535\"), 0 to 65535",
                    );
                    return None;
                }
            },
        };
        let p = p?;
        if range.is_some() && !p.has_ports() {
            self.err(
                format!("{path}.ports"),
                format!(
                    "ports `{}` given for protocol {}, which has no ports",
                    ports.unwrap_or(""),
                    p.name()
                ),
                "ports only apply to tcp and udp; remove `ports` (or change the protocol)",
            );
            return None;
        }
        Some((p, range))
    }

    fn port(&mut self, v: i64, path: &str) -> Option<u16> {
        if (1..=65535).contains(&v) {
            Some(v as u16)
        } else {
            self.err(
                path,
                format!("port {v} is out of range"),
                "use a port from 1 to 65535",
            );
            None
        }
    }

    /// Unique names of one kind (`key` is its TOML table); reports empty and
    /// duplicate names.
    fn unique_names<'t>(
        &mut self,
        kind: &'static str,
        key: &str,
        names: impl Iterator<Item = &'t str>,
    ) -> Names<'t> {
        let listed: Vec<&str> = names.collect();
        let mut index = HashMap::new();
        for (i, &n) in listed.iter().enumerate() {
            let path = format!("{key}[{i}].name");
            if n.trim().is_empty() {
                self.err(
                    path,
                    format!("{kind} name is empty"),
                    format!("give every {kind} a name"),
                );
                continue;
            }
            if let Some(&j) = index.get(n) {
                self.err(
                    path,
                    format!("duplicate {kind} name `{n}` (also {key}[{j}])"),
                    format!("{kind} names must be unique; rename one of them"),
                );
            } else {
                index.insert(n, i);
            }
        }
        Names {
            kind,
            index,
            listed,
        }
    }

    /// `name`'s index; reports an unknown name at `path` with the valid ones.
    fn lookup(&mut self, names: &Names, name: &str, path: impl Into<String>) -> Option<usize> {
        self.lookup_or(
            names,
            name,
            path,
            || format!("{} `{name}` does not exist", names.kind),
            "",
        )
    }

    /// [`Ctx::lookup`] with the caller's message, and `note` after the list.
    fn lookup_or(
        &mut self,
        names: &Names,
        name: &str,
        path: impl Into<String>,
        message: impl FnOnce() -> String,
        note: &str,
    ) -> Option<usize> {
        let found = names.get(name);
        if found.is_none() {
            self.err(
                path,
                message(),
                format!(
                    "{}s: {}{note}",
                    names.kind,
                    quoted_list(names.listed.iter().copied())
                ),
            );
        }
        found
    }

    /// A node (namespace) name: `^[a-z][a-z0-9-]{0,max-1}$`.
    fn node_name(&mut self, kind: &str, name: &str, max: usize, path: String, note: &str) {
        if let Some(why) = name_problem(name, max) {
            self.err(
                path,
                format!("{kind} name `{name}` is not valid: {why}"),
                format!(
                    "use 1-{max} characters: lowercase letters, digits and `-`, starting with a letter{note}"
                ),
            );
        }
    }

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
        let enis = assemble_enis(lab, drafts, &private, &public);
        let flow_logs = crate::flowlog::resolve(lab, &t.flow_logs, &subnet_plans, &enis)
            .unwrap_or_else(|d| {
                self.diags.extend(d);
                vec![]
            });
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
        })
    }

    /// The lab name (it becomes part of namespace and interface names) and
    /// the region. Returns whether the region is valid, for the AZ checks.
    fn lab_name_and_region(&mut self, t: &Topology) -> bool {
        let problem = if t.name.is_empty() {
            Some("it is empty".to_string())
        } else {
            name_problem(&t.name, 16).or_else(|| {
                if t.name.ends_with('-') {
                    Some("it ends with `-`".into())
                } else if t.name.contains("--") {
                    Some("it contains `--`".into())
                } else {
                    None
                }
            })
        };
        if let Some(why) = problem {
            self.err(
                "name",
                format!("lab name `{}` is not valid: {why}", t.name),
                format!(
                    "use 1-16 characters: lowercase letters, digits and single `-` inside, starting with a letter (it becomes part of namespace and interface names), e.g. \"{}\"",
                    suggest_name(&t.name, 16)
                ),
            );
        }
        let region_ok = valid_region(&t.region);
        if !region_ok {
            self.err(
                "region",
                format!("`{}` is not an AWS region name", t.region),
                "write a region like \"us-east-1\" or \"eu-west-3\"",
            );
        }
        region_ok
    }

    /// The VPC CIDR (/16 to /28), the internet hosts (outside the VPC, each
    /// once) and the public pool (outside the VPC).
    fn vpc_and_internet(&mut self, t: &Topology) -> Network {
        let vpc = self.cidr(&t.vpc.cidr, "vpc.cidr");
        if let Some(v) = vpc {
            if !(16..=28).contains(&v.prefix_len()) {
                self.err(
                    "vpc.cidr",
                    format!(
                        "VPC CIDR {v} is a /{}; AWS allows /16 to /28",
                        v.prefix_len()
                    ),
                    format!(
                        "use a block from /16 (65,536 addresses) to /28 (16), e.g. \"{}/16\"",
                        if v.prefix_len() < 16 {
                            v.network()
                        } else {
                            Ipv4Addr::new(10, 0, 0, 0)
                        }
                    ),
                );
            }
        }

        let mut hosts = Vec::new();
        for (i, h) in t.internet.hosts.iter().enumerate() {
            let path = format!("internet.hosts[{i}]");
            let Some(ip) = self.ip(h, &path) else {
                continue;
            };
            if let Some(v) = vpc.filter(|v| v.contains(&ip)) {
                self.err(
                    &path,
                    format!("internet host {ip} is inside the VPC CIDR {v}"),
                    "internet hosts stand for machines outside AWS; use a public address like 203.0.113.10",
                );
            } else if hosts.contains(&ip) {
                self.err(
                    &path,
                    format!("internet host {ip} is listed twice"),
                    "list each host once",
                );
            }
            hosts.push(ip);
        }
        let pool = self.cidr(&t.internet.public_pool, "internet.public_pool");
        if let (Some(p), Some(v)) = (pool, vpc) {
            if overlaps(p, v) {
                self.err(
                    "internet.public_pool",
                    format!("public pool {p} overlaps the VPC CIDR {v}"),
                    "public IPs come from outside the VPC; use e.g. \"198.51.100.0/24\"",
                );
            }
        }
        Network { vpc, hosts, pool }
    }

    /// Subnet names (unique, usable in a bridge name), CIDRs (/16 to /28,
    /// inside the VPC, not overlapping) and AZs (in the region).
    fn subnets<'t>(
        &mut self,
        t: &'t Topology,
        vpc: Option<Ipv4Net>,
        region_ok: bool,
    ) -> Subnets<'t> {
        let names = self.unique_names(
            "subnet",
            "subnet",
            t.subnets.iter().map(|s| s.name.as_str()),
        );
        let mut cidrs: Vec<Option<Ipv4Net>> = Vec::new();
        for (i, s) in t.subnets.iter().enumerate() {
            let p = format!("subnet[{i}]");
            if let Some(bad) = s
                .name
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            {
                self.err(
                    format!("{p}.name"),
                    format!("subnet name `{}` contains `{bad}`", s.name),
                    "use letters, digits, `-`, `_` and `.` (the name becomes part of a bridge name)",
                );
            }
            let cidr = self.cidr(&s.cidr, &format!("{p}.cidr"));
            if let Some(c) = cidr {
                if !(16..=28).contains(&c.prefix_len()) {
                    self.err(
                        format!("{p}.cidr"),
                        format!(
                            "subnet {} CIDR {c} is a /{}; AWS allows /16 to /28",
                            s.name,
                            c.prefix_len()
                        ),
                        "use a prefix from /16 to /28, e.g. a /24 (251 usable addresses)",
                    );
                }
                if let Some(v) = vpc {
                    if !v.contains(&c) {
                        self.err(
                            format!("{p}.cidr"),
                            format!("subnet {} CIDR {c} is not inside the VPC CIDR {v}", s.name),
                            format!("pick a block inside {v}"),
                        );
                    }
                }
                let clash = cidrs
                    .iter()
                    .enumerate()
                    .find_map(|(j, o)| o.filter(|o| overlaps(c, *o)).map(|o| (j, o)));
                if let Some((j, o)) = clash {
                    self.err(
                        format!("{p}.cidr"),
                        format!(
                            "subnet {} ({c}) overlaps subnet {} ({o})",
                            s.name, t.subnets[j].name
                        ),
                        "subnets of a VPC must not share addresses; pick a block that is free",
                    );
                }
            }
            cidrs.push(cidr);
            if region_ok {
                let az_ok = s.az.len() == t.region.len() + 1
                    && s.az.starts_with(&t.region)
                    && s.az.chars().last().is_some_and(|c| c.is_ascii_lowercase());
                if !az_ok {
                    self.err(
                        format!("{p}.az"),
                        format!("availability zone `{}` is not in region {}", s.az, t.region),
                        format!(
                            "use the region followed by one letter, e.g. \"{}a\"",
                            t.region
                        ),
                    );
                }
            }
        }
        Subnets { names, cidrs }
    }

    /// What routes may target: the internet gateway (its name must not be
    /// empty), NAT gateways and instances. Their other checks come with
    /// their ENIs.
    fn route_targets<'t>(&mut self, t: &'t Topology) -> RouteTargets<'t> {
        let igw = t.internet_gateway.as_ref().map(|g| g.name.clone());
        if igw.as_ref().is_some_and(|g| g.trim().is_empty()) {
            self.err(
                "internet_gateway.name",
                "internet gateway name is empty",
                "name it, e.g. \"igw\"",
            );
        }
        RouteTargets {
            igw,
            nat_gateways: Names::unchecked(
                "NAT gateway",
                t.nat_gateways.iter().map(|n| n.name.as_str()).collect(),
            ),
            instances: Names::unchecked(
                "instance",
                t.instances.iter().map(|x| x.name.as_str()).collect(),
            ),
        }
    }

    /// Route tables: unique names, at most one marked main (an empty
    /// implicit `main` table is added when none is), kernel table ids from
    /// 100, and their routes.
    fn route_tables<'t>(
        &mut self,
        t: &'t Topology,
        vpc: Option<Ipv4Net>,
        targets: &RouteTargets,
    ) -> RouteTables<'t> {
        let mut names = self.unique_names(
            "route table",
            "route_table",
            t.route_tables.iter().map(|r| r.name.as_str()),
        );
        let mains: Vec<usize> = (0..t.route_tables.len())
            .filter(|&i| t.route_tables[i].main)
            .collect();
        for &i in mains.iter().skip(1) {
            self.err(
                format!("route_table[{i}].main"),
                format!(
                    "route tables {} and {} are both marked main; a VPC has one main route table",
                    t.route_tables[mains[0]].name, t.route_tables[i].name
                ),
                "keep main = true on one table only",
            );
        }
        let implicit_main = mains.is_empty();
        if implicit_main {
            if let Some(i) = names.get("main") {
                self.err(
                    format!("route_table[{i}].name"),
                    "route table `main` is not marked main = true, and no other table is; the implicit main table would take its name",
                    "add main = true to it, or rename it",
                );
            }
            names.add_implicit("main", t.route_tables.len(), true);
        }
        let main = mains.first().copied().unwrap_or(t.route_tables.len());
        let mut plans = Vec::new();
        let mut public = Vec::new();
        for (i, rt) in t.route_tables.iter().enumerate() {
            let (routes, to_igw) = self.routes(i, rt, vpc, targets);
            public.push(to_igw);
            plans.push(RouteTablePlan {
                name: rt.name.clone(),
                table_id: 100 + i as u32,
                main: i == main,
                routes,
            });
        }
        if implicit_main {
            public.push(false);
            plans.push(RouteTablePlan {
                name: "main".into(),
                table_id: 100 + t.route_tables.len() as u32,
                main: true,
                routes: vec![],
            });
        }
        RouteTables {
            names,
            plans,
            public,
            main,
        }
    }

    /// The routes of route table `i`: destinations outside the VPC, one
    /// route each, to a known target. Also returns whether 0.0.0.0/0 goes
    /// to the internet gateway.
    fn routes(
        &mut self,
        i: usize,
        rt: &model::RouteTable,
        vpc: Option<Ipv4Net>,
        targets: &RouteTargets,
    ) -> (Vec<RoutePlan>, bool) {
        let mut routes = Vec::new();
        let mut public = false;
        for (k, r) in rt.routes.iter().enumerate() {
            let p = format!("route_table[{i}].routes[{k}]");
            let dest = self.cidr(&r.destination, &format!("{p}.destination"));
            if let (Some(d), Some(v)) = (dest, vpc) {
                // Wider routes (0.0.0.0/0) are fine: longest prefix match
                // keeps the local route; equal or narrower ones would shadow it.
                if v.contains(&d.network()) && d.prefix_len() >= v.prefix_len() {
                    self.err(
                        format!("{p}.destination"),
                        format!("route destination {d} is inside the VPC CIDR {v}; the local route cannot be overridden"),
                        format!("traffic to {v} always uses the local route; routes are for destinations outside the VPC (e.g. \"0.0.0.0/0\")"),
                    );
                }
            }
            if let Some(d) = dest {
                if rt.routes[..k]
                    .iter()
                    .any(|o| o.destination.trim().parse::<Ipv4Net>().map(|n| n.trunc()) == Ok(d))
                {
                    self.err(
                        format!("{p}.destination"),
                        format!("route table {} has two routes to {d}", rt.name),
                        "keep one route per destination",
                    );
                }
            }
            let target = self.route_target(&r.target, &format!("{p}.target"), targets);
            if dest == Some(ALL_V4) && target == Some(RouteTarget::InternetGateway) {
                public = true;
            }
            if let (Some(destination), Some(target)) = (dest, target) {
                routes.push(RoutePlan {
                    destination,
                    target,
                });
            }
        }
        (routes, public)
    }

    /// A route's target: the internet gateway, else a NAT gateway, else an
    /// instance (its ENI).
    fn route_target(
        &mut self,
        name: &str,
        path: &str,
        targets: &RouteTargets,
    ) -> Option<RouteTarget> {
        let igw = targets.igw.as_deref();
        if igw == Some(name) {
            return Some(RouteTarget::InternetGateway);
        }
        if let Some(n) = targets.nat_gateways.get(name) {
            return Some(RouteTarget::NatGateway(n));
        }
        if let Some(n) = targets.instances.get(name) {
            return Some(RouteTarget::Eni(n));
        }
        let mut valid: Vec<&str> = igw.into_iter().collect();
        valid.extend(&targets.nat_gateways.listed);
        valid.extend(&targets.instances.listed);
        let msg = match igw {
            None if name.starts_with("igw") => format!(
                "route target `{name}` looks like an internet gateway, but the file declares no [internet_gateway]"
            ),
            _ => format!(
                "route target `{name}` is not the internet gateway, a NAT gateway or an instance"
            ),
        };
        let hint = if igw.is_none() {
            format!(
                "add [internet_gateway] name = \"{name}\", or use one of: {}",
                quoted_list(valid)
            )
        } else {
            format!("valid targets: {}", quoted_list(valid))
        };
        self.err(path, msg, hint);
        None
    }

    /// NACLs: unique names and rules; an allow-all `default` NACL is added
    /// when a subnet uses it without the file defining it.
    fn nacls<'t>(&mut self, t: &'t Topology) -> Nacls<'t> {
        let mut names = self.unique_names("NACL", "nacl", t.nacls.iter().map(|n| n.name.as_str()));
        let mut plans = Vec::new();
        for (i, n) in t.nacls.iter().enumerate() {
            let inbound = self.nacl_rules(&format!("nacl[{i}]"), &n.name, "inbound", &n.inbound);
            let outbound = self.nacl_rules(&format!("nacl[{i}]"), &n.name, "outbound", &n.outbound);
            plans.push(NaclPlan {
                name: n.name.clone(),
                inbound,
                outbound,
            });
        }
        let uses_default = t
            .subnets
            .iter()
            .any(|s| s.nacl.as_deref().is_none_or(|n| n == "default"));
        if uses_default && names.get("default").is_none() {
            let allow_all = vec![NaclEntry {
                rule: 100,
                protocol: Protocol::All,
                ports: None,
                cidr: ALL_V4,
                action: Action::Allow,
            }];
            // Hints for an unknown NACL mention the default one separately.
            names.add_implicit("default", plans.len(), false);
            plans.push(NaclPlan {
                name: "default".into(),
                inbound: allow_all.clone(),
                outbound: allow_all,
            });
        }
        Nacls { names, plans }
    }

    /// One direction of a NACL: rule numbers 1-32766, unique in the
    /// direction; protocol, ports, CIDR and action. Sorted by rule number.
    fn nacl_rules(
        &mut self,
        nacl_path: &str,
        nacl: &str,
        dir: &str,
        rules: &[model::NaclRule],
    ) -> Vec<NaclEntry> {
        let mut seen: HashMap<i64, usize> = HashMap::new();
        let mut entries = Vec::new();
        for (k, r) in rules.iter().enumerate() {
            let p = format!("{nacl_path}.{dir}[{k}]");
            let mut ok = true;
            if !(1..=32766).contains(&r.rule) {
                self.err(
                    format!("{p}.rule"),
                    format!("rule number {} is out of range; AWS allows 1 to 32766", r.rule),
                    "number rules from 1 to 32766 (32767 is the implicit final `*` deny), e.g. 100, 110, 120",
                );
                ok = false;
            } else if let Some(&j) = seen.get(&r.rule) {
                self.err(
                    format!("{p}.rule"),
                    format!("rule number {} is used twice in NACL {nacl} {dir} (also {dir}[{j}])", r.rule),
                    "give each rule of a direction its own number (the same number may appear once inbound and once outbound)",
                );
                ok = false;
            } else {
                seen.insert(r.rule, k);
            }
            let pp = self.proto_ports(&r.protocol, r.ports.as_deref(), &p);
            let cidr = self.cidr(&r.cidr, &format!("{p}.cidr"));
            let action = match r.action.trim().to_ascii_lowercase().as_str() {
                "allow" => Some(Action::Allow),
                "deny" => Some(Action::Deny),
                _ => {
                    self.err(
                        format!("{p}.action"),
                        format!("unknown NACL action `{}`", r.action),
                        "use \"allow\" or \"deny\"",
                    );
                    None
                }
            };
            if let (true, Some((protocol, ports)), Some(cidr), Some(action)) =
                (ok, pp, cidr, action)
            {
                entries.push(NaclEntry {
                    rule: r.rule as u16,
                    protocol,
                    ports,
                    cidr,
                    action,
                });
            }
        }
        entries.sort_by_key(|e| e.rule);
        entries
    }

    /// Each subnet's route table (the main one when omitted) and NACL (the
    /// default one when omitted), making its plan: bridge name and router
    /// address. Subnets that do not fully resolve get no plan.
    fn subnet_associations(
        &mut self,
        t: &Topology,
        subnets: &Subnets,
        route_tables: &RouteTables,
        nacls: &Names,
    ) -> Vec<SubnetPlan> {
        let mut plans = Vec::new();
        for (i, s) in t.subnets.iter().enumerate() {
            let route_table = match &s.route_table {
                None => Some(route_tables.main),
                Some(n) => self.lookup_or(
                    &route_tables.names,
                    n,
                    format!("subnet[{i}].route_table"),
                    || {
                        format!(
                            "subnet {} uses route table `{n}`, which does not exist",
                            s.name
                        )
                    },
                    " (omit route_table for the main table)",
                ),
            };
            let nacl = self.lookup_or(
                nacls,
                s.nacl.as_deref().unwrap_or("default"),
                format!("subnet[{i}].nacl"),
                || {
                    format!(
                        "subnet {} uses NACL `{}`, which does not exist",
                        s.name,
                        s.nacl.as_deref().unwrap_or_default()
                    )
                },
                " (omit nacl for the default NACL, which allows everything)",
            );
            if let (Some(cidr), Some(route_table), Some(nacl)) =
                (subnets.cidrs[i], route_table, nacl)
            {
                plans.push(SubnetPlan {
                    name: s.name.clone(),
                    cidr,
                    az: s.az.clone(),
                    bridge: truncate15(format!("br{i}-{}", s.name)),
                    router: Ipv4Addr::from(u32::from(cidr.network()) + 1),
                    route_table,
                    nacl,
                    map_public_ip: s.map_public_ip,
                });
            }
        }
        plans
    }

    /// Security groups: unique names, ids and rules; AWS's `default` group
    /// (all from its own members in, all out) is added when something uses
    /// it without the file defining it. An omitted egress allows all.
    fn security_groups<'t>(&mut self, t: &'t Topology, lab: &str) -> SecurityGroups<'t> {
        let mut names = self.unique_names(
            "security group",
            "security_group",
            t.security_groups.iter().map(|s| s.name.as_str()),
        );
        let implicit_default = references_default_sg(t) && names.get("default").is_none();
        if implicit_default {
            names.add_implicit("default", t.security_groups.len(), true);
        }
        let mut plans = Vec::new();
        for (i, g) in t.security_groups.iter().enumerate() {
            let ingress = self.sg_rules(i, g, "ingress", &g.ingress, &names);
            let egress = match &g.egress {
                Some(rules) => self.sg_rules(i, g, "egress", rules, &names),
                None => vec![allow_all_egress()],
            };
            plans.push(SecurityGroupPlan {
                name: g.name.clone(),
                id: aws_id("sg", lab, &g.name),
                ingress,
                egress,
            });
        }
        if implicit_default {
            let me = plans.len();
            plans.push(SecurityGroupPlan {
                name: "default".into(),
                id: aws_id("sg", lab, "default"),
                ingress: vec![SgRulePlan {
                    protocol: Protocol::All,
                    ports: None,
                    peer: SgPeer::Group(me),
                }],
                egress: vec![allow_all_egress()],
            });
        }
        SecurityGroups { names, plans }
    }

    /// One direction of security group `i`: protocol, ports and exactly one
    /// peer, a CIDR or a group (`source_sg` in, `destination_sg` out).
    fn sg_rules(
        &mut self,
        i: usize,
        g: &model::SecurityGroup,
        dir: &str,
        rules: &[model::SgRule],
        names: &Names,
    ) -> Vec<SgRulePlan> {
        let mut out = Vec::new();
        for (k, r) in rules.iter().enumerate() {
            let p = format!("security_group[{i}].{dir}[{k}]");
            let (peer_key, peer_sg, wrong_key, wrong) = if dir == "ingress" {
                (
                    "source_sg",
                    &r.source_sg,
                    "destination_sg",
                    &r.destination_sg,
                )
            } else {
                (
                    "destination_sg",
                    &r.destination_sg,
                    "source_sg",
                    &r.source_sg,
                )
            };
            let pp = self.proto_ports(&r.protocol, r.ports.as_deref(), &p);
            if wrong.is_some() {
                self.err(
                    format!("{p}.{wrong_key}"),
                    format!(
                        "{wrong_key} is not allowed in an {dir} rule of security group {}",
                        g.name
                    ),
                    format!("an {dir} rule names its peer group with {peer_key}"),
                );
                continue;
            }
            let peer = match (&r.cidr, peer_sg) {
                (Some(_), Some(_)) => {
                    self.err(
                        &p,
                        format!("{dir} rule of security group {} has both cidr and {peer_key}", g.name),
                        format!("a rule has exactly one peer: keep cidr or {peer_key}, and write a second rule for the other"),
                    );
                    None
                }
                (None, None) => {
                    self.err(
                        &p,
                        format!("{dir} rule of security group {} has neither cidr nor {peer_key}", g.name),
                        format!("add cidr = \"0.0.0.0/0\" (or a narrower block) or {peer_key} = \"<group name>\""),
                    );
                    None
                }
                (Some(c), None) => self.cidr(c, &format!("{p}.cidr")).map(SgPeer::Cidr),
                (None, Some(n)) => self
                    .lookup(names, n, format!("{p}.{peer_key}"))
                    .map(SgPeer::Group),
            };
            if let (Some((protocol, ports)), Some(peer)) = (pp, peer) {
                out.push(SgRulePlan {
                    protocol,
                    ports,
                    peer,
                });
            }
        }
        out
    }

    /// The security groups of a network interface: the `default` group when
    /// none is listed, at most five, each once.
    fn interface_groups(&mut self, sgs: &Names, list: &[String], path: &str) -> Vec<usize> {
        if list.is_empty() {
            return sgs.get("default").into_iter().collect();
        }
        if list.len() > MAX_SGS_PER_ENI {
            self.err(
                path,
                format!(
                    "{} security groups listed; AWS allows at most {MAX_SGS_PER_ENI} per network interface",
                    list.len()
                ),
                "merge rules into fewer groups",
            );
        }
        let mut out = Vec::new();
        for (k, n) in list.iter().enumerate() {
            if let Some(j) = self.lookup(sgs, n, format!("{path}[{k}]")) {
                if out.contains(&j) {
                    self.err(
                        format!("{path}[{k}]"),
                        format!("security group `{n}` is listed twice"),
                        "list each group once",
                    );
                } else {
                    out.push(j);
                }
            }
        }
        out
    }

    /// Instances: node name, subnet, security groups and fixed addresses
    /// (their ENI drafts, the first ones), and what runs on them (built-in
    /// workload, user data read relative to `base`).
    fn instances(
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
            });
        }
        (drafts, instances)
    }

    /// An instance's built-in workload (`run`).
    fn workload(&mut self, x: &model::Instance, p: &str) -> Option<Workload> {
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
    fn user_data(&mut self, x: &model::Instance, p: &str, base: &Path) -> Option<String> {
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
                match std::fs::read_to_string(&file) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        self.err(
                            format!("{p}.user_data_file"),
                            format!("cannot read {}: {e}", file.display()),
                            "the path is relative to the topology file's directory",
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
    fn nat_gateways(
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

    /// Load balancers: unique valid names, scheme, security groups, and one
    /// subnet per AZ in at least two AZs. Each subnet gets a node
    /// `<name>-<az letter>` whose ENI draft follows the NAT gateways'.
    /// Returns each load balancer's ENIs.
    fn load_balancer_nodes(
        &mut self,
        t: &Topology,
        subnets: &Names,
        sgs: &Names,
        drafts: &mut Vec<EniDraft>,
    ) -> Vec<Vec<usize>> {
        // Unique names; nothing refers to a load balancer by name.
        self.unique_names(
            "load balancer",
            "load_balancer",
            t.load_balancers.iter().map(|l| l.name.as_str()),
        );
        let mut lb_nodes = Vec::new();
        for (l, lb) in t.load_balancers.iter().enumerate() {
            let p = format!("load_balancer[{l}]");
            self.node_name(
                "load balancer",
                &lb.name,
                29,
                format!("{p}.name"),
                " (nodes are named <name>-<az letter>)",
            );
            if lb.scheme != "internet-facing" {
                let msg = if lb.scheme == "internal" {
                    "scheme `internal` is not supported yet".to_string()
                } else {
                    format!("unknown scheme `{}`", lb.scheme)
                };
                self.err(
                    format!("{p}.scheme"),
                    msg,
                    "use scheme = \"internet-facing\" (the default)",
                );
            }
            let security_groups =
                self.interface_groups(sgs, &lb.security_groups, &format!("{p}.security_groups"));
            let mut azs: HashMap<String, usize> = HashMap::new();
            let mut nodes = Vec::new();
            for (k, sname) in lb.subnets.iter().enumerate() {
                let sp = format!("{p}.subnets[{k}]");
                let subnet = self.lookup(subnets, sname, &sp);
                let az = subnet.map(|s| t.subnets[s].az.clone());
                if let Some(az) = &az {
                    if let Some(&other) = azs.get(az) {
                        let msg = if lb.subnets[other] == *sname {
                            format!("subnet {sname} is listed twice")
                        } else {
                            format!("subnets {} and {sname} are both in {az}; a load balancer takes at most one subnet per AZ", lb.subnets[other])
                        };
                        self.err(&sp, msg, "list one subnet per availability zone");
                        continue;
                    }
                    azs.insert(az.clone(), k);
                }
                let letter = az.as_deref().and_then(|a| a.chars().last()).unwrap_or('x');
                nodes.push(drafts.len());
                drafts.push(EniDraft {
                    node: format!("{}-{letter}", lb.name),
                    owner: EniOwner::LoadBalancerNode(l, nodes.len() - 1),
                    subnet,
                    name_path: format!("{p}.name"),
                    subnet_path: sp,
                    private_ip: None,
                    elastic_ip: None,
                    wants_public: true,
                    security_groups: security_groups.clone(),
                    source_dest_check: true,
                });
            }
            if azs.len() < 2 && lb.subnets.iter().all(|s| subnets.get(s).is_some()) {
                let list: Vec<&str> = azs.keys().map(|s| s.as_str()).collect();
                self.err(
                    format!("{p}.subnets"),
                    format!("load balancer {} has subnets in {} AZ{} ({}); AWS requires at least two", lb.name, azs.len(), if azs.len() == 1 { "" } else { "s" }, list.join(", ")),
                    "list subnets in at least two availability zones, e.g. public-1 (…a) and public-2 (…b)",
                );
            }
            lb_nodes.push(nodes);
        }
        lb_nodes
    }

    /// Node names: one namespace each, so distinct and not vpcsim's own.
    fn node_names(&mut self, drafts: &[EniDraft]) {
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
    fn private_ips(
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
        for (e, d) in drafts.iter().enumerate() {
            if d.private_ip.is_some() {
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
    fn bridge_ports(&mut self, t: &Topology, drafts: &[EniDraft]) {
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
    fn public_ips(&mut self, drafts: &[EniDraft], net: &Network) -> Vec<Option<Ipv4Addr>> {
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
        let mut next = first;
        let mut exhausted = false;
        for (e, d) in drafts.iter().enumerate() {
            if d.elastic_ip.is_some() || !d.wants_public {
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

    /// Target groups: unique AWS-valid names, port, protocol (HTTP), targets
    /// (instances, with their private IPs), health check, algorithm,
    /// deregistration delay and stickiness.
    fn target_groups<'t>(
        &mut self,
        t: &'t Topology,
        instances: &Names,
        private: &[Option<Ipv4Addr>],
    ) -> (Names<'t>, Vec<TargetGroupPlan>) {
        let names = self.unique_names(
            "target group",
            "target_group",
            t.target_groups.iter().map(|g| g.name.as_str()),
        );
        let mut target_groups = Vec::new();
        for (i, g) in t.target_groups.iter().enumerate() {
            let p = format!("target_group[{i}]");
            if g.name.len() > 32
                || g.name.starts_with('-')
                || g.name.ends_with('-')
                || g.name
                    .chars()
                    .any(|c| !(c.is_ascii_alphanumeric() || c == '-'))
            {
                self.err(
                    format!("{p}.name"),
                    format!("target group name `{}` is not valid", g.name),
                    "AWS allows 1-32 letters, digits and `-`, not starting or ending with `-`",
                );
            }
            let port = self.port(g.port, &format!("{p}.port"));
            if !g.protocol.eq_ignore_ascii_case("http") {
                self.err(
                    format!("{p}.protocol"),
                    format!("target group protocol `{}` is not supported", g.protocol),
                    "only HTTP target groups are emulated; use protocol = \"HTTP\"",
                );
            }
            let targets = self.targets(g, &p, port, instances, private);
            let health_check = self.health_check(&g.health_check, &format!("{p}.health_check"));
            let algorithm = match g.algorithm.as_deref() {
                None | Some("round_robin") => Algorithm::RoundRobin,
                Some("least_outstanding_requests") => Algorithm::LeastOutstandingRequests,
                Some("weighted_random") => Algorithm::WeightedRandom,
                Some(other) => {
                    self.err(
                        format!("{p}.algorithm"),
                        format!("unknown algorithm `{other}`"),
                        "use round_robin, least_outstanding_requests or weighted_random",
                    );
                    Algorithm::RoundRobin
                }
            };
            let dereg = g.deregistration_delay.unwrap_or(300);
            if !(0..=3600).contains(&dereg) {
                self.err(
                    format!("{p}.deregistration_delay"),
                    format!("deregistration delay {dereg}s is out of range"),
                    "AWS allows 0 to 3600 seconds (default 300)",
                );
            }
            if let Some(s) = g.stickiness {
                if !(1..=604_800).contains(&s) {
                    self.err(
                        format!("{p}.stickiness"),
                        format!("stickiness duration {s}s is out of range"),
                        "AWS allows 1 second to 7 days (604800)",
                    );
                }
            }
            target_groups.push(TargetGroupPlan {
                name: g.name.clone(),
                port: port.unwrap_or(0),
                targets,
                health_check,
                algorithm,
                deregistration_delay_s: dereg.clamp(0, 3600) as u32,
                stickiness_s: g.stickiness.map(|s| s.clamp(1, 604_800) as u32),
            });
        }
        (names, target_groups)
    }

    /// A target group's targets: `instance` (on the group's port) or
    /// `instance:port`, each once.
    fn targets(
        &mut self,
        g: &model::TargetGroup,
        p: &str,
        port: Option<u16>,
        instances: &Names,
        private: &[Option<Ipv4Addr>],
    ) -> Vec<TargetPlan> {
        let mut targets: Vec<TargetPlan> = Vec::new();
        for (k, spec) in g.targets.iter().enumerate() {
            let tp = format!("{p}.targets[{k}]");
            let (name, tport) = match spec.rsplit_once(':') {
                Some((n, pt)) => match pt.parse::<i64>() {
                    Ok(v) => (n, self.port(v, &tp)),
                    Err(_) => {
                        self.err(
                            &tp,
                            format!("`{pt}` in target `{spec}` is not a port"),
                            "write \"instance\" or \"instance:port\"",
                        );
                        (n, None)
                    }
                },
                None => (spec.as_str(), port),
            };
            let Some(x) = self.lookup_or(
                instances,
                name,
                &tp,
                || format!("target `{name}` is not an instance"),
                "",
            ) else {
                continue;
            };
            let (Some(ip), Some(port)) = (private[x], tport) else {
                continue;
            };
            if targets.iter().any(|o| o.instance == name && o.port == port) {
                self.err(
                    &tp,
                    format!("target {name}:{port} is registered twice"),
                    "list each target once",
                );
            } else {
                targets.push(TargetPlan {
                    instance: name.to_string(),
                    ip,
                    port,
                });
            }
        }
        targets
    }

    /// A health check with AWS's defaults and ranges; the timeout must be
    /// shorter than the interval.
    fn health_check(&mut self, h: &model::HealthCheck, hp: &str) -> HealthCheckPlan {
        let interval = self.health_value(h.interval, 30, 5, 300, hp, "interval");
        let timeout = self.health_value(h.timeout, 5, 2, 120, hp, "timeout");
        let healthy_threshold =
            self.health_value(h.healthy_threshold, 5, 2, 10, hp, "healthy_threshold");
        let unhealthy_threshold =
            self.health_value(h.unhealthy_threshold, 2, 2, 10, hp, "unhealthy_threshold");
        if timeout >= interval
            && h.interval.is_none_or(|v| (5..=300).contains(&v))
            && h.timeout.is_none_or(|v| (2..=120).contains(&v))
        {
            self.err(
                format!("{hp}.timeout"),
                format!(
                    "health check timeout {timeout}s is not shorter than the interval {interval}s"
                ),
                "the timeout must be smaller than the interval",
            );
        }
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            self.err(
                format!("{hp}.path"),
                format!("health check path `{path}` does not start with `/`"),
                "write an absolute path like \"/\" or \"/health\"",
            );
        }
        let port = h.port.and_then(|v| self.port(v, &format!("{hp}.port")));
        let matcher = match parse_matcher(h.matcher.as_deref().unwrap_or("200")) {
            Ok(m) => m,
            Err(why) => {
                self.err(
                    format!("{hp}.matcher"),
                    format!(
                        "invalid matcher `{}`: {why}",
                        h.matcher.as_deref().unwrap_or("")
                    ),
                    "write codes 200-499 like \"200\", \"200-299\" or \"200,202\"",
                );
                vec![]
            }
        };
        HealthCheckPlan {
            path,
            port,
            interval_s: interval,
            timeout_s: timeout,
            healthy_threshold,
            unhealthy_threshold,
            matcher,
        }
    }

    /// A health check number (at `{hp}.{field}`) in `lo..=hi`; `default`
    /// when omitted or out of range.
    fn health_value(
        &mut self,
        v: Option<i64>,
        default: u32,
        lo: i64,
        hi: i64,
        hp: &str,
        field: &str,
    ) -> u32 {
        let v = v.unwrap_or(default as i64);
        if !(lo..=hi).contains(&v) {
            self.err(
                format!("{hp}.{field}"),
                format!(
                    "health check {} {v} is out of range ({lo}-{hi})",
                    field.replace('_', " ")
                ),
                format!("AWS allows {lo} to {hi} (default {default})"),
            );
            return default;
        }
        v as u32
    }

    /// Load balancers: idle timeout, DNS name, and listeners (one per port,
    /// HTTP) with their default forward and rules.
    fn load_balancers(
        &mut self,
        t: &Topology,
        target_groups: &Names,
        lb_nodes: Vec<Vec<usize>>,
    ) -> Vec<LoadBalancerPlan> {
        let mut load_balancers = Vec::new();
        for ((l, lb), nodes) in t.load_balancers.iter().enumerate().zip(lb_nodes) {
            let p = format!("load_balancer[{l}]");
            let idle = lb.idle_timeout.unwrap_or(60);
            if !(1..=4000).contains(&idle) {
                self.err(
                    format!("{p}.idle_timeout"),
                    format!("idle timeout {idle}s is out of range"),
                    "AWS allows 1 to 4000 seconds (default 60)",
                );
            }
            let mut listeners = Vec::new();
            let mut ports_seen: HashMap<i64, usize> = HashMap::new();
            for (k, li) in lb.listeners.iter().enumerate() {
                let lp = format!("{p}.listener[{k}]");
                let port = self.port(li.port, &format!("{lp}.port"));
                if let Some(&o) = ports_seen.get(&li.port) {
                    self.err(
                        format!("{lp}.port"),
                        format!(
                            "load balancer {} has two listeners on port {} (also listener[{o}])",
                            lb.name, li.port
                        ),
                        "one listener per port",
                    );
                } else {
                    ports_seen.insert(li.port, k);
                }
                if !li.protocol.eq_ignore_ascii_case("http") {
                    self.err(
                        format!("{lp}.protocol"),
                        format!("listener protocol `{}` is not supported", li.protocol),
                        "only HTTP listeners are emulated; use protocol = \"HTTP\"",
                    );
                }
                let default_forward = self.forward(
                    &li.default_forward,
                    &format!("{lp}.default_forward"),
                    target_groups,
                );
                listeners.push(ListenerPlan {
                    port: port.unwrap_or(0),
                    rules: self.listener_rules(li, &lp, target_groups),
                    default_forward,
                });
            }
            load_balancers.push(LoadBalancerPlan {
                name: lb.name.clone(),
                dns_name: format!(
                    "{}-{}.{}.elb.amazonaws.com",
                    lb.name,
                    elb_number(&t.name, &lb.name),
                    t.region
                ),
                nodes,
                idle_timeout_s: idle.clamp(1, 4000) as u32,
                listeners,
            });
        }
        load_balancers
    }

    /// A listener's rules: priorities 1-50000, unique in the listener; at
    /// least one condition; a forward action. Sorted by priority.
    fn listener_rules(
        &mut self,
        li: &model::Listener,
        lp: &str,
        target_groups: &Names,
    ) -> Vec<ListenerRulePlan> {
        let mut rules = Vec::new();
        let mut prios: HashMap<i64, usize> = HashMap::new();
        for (r, rule) in li.rules.iter().enumerate() {
            let rp = format!("{lp}.rules[{r}]");
            if !(1..=50_000).contains(&rule.priority) {
                self.err(
                    format!("{rp}.priority"),
                    format!("rule priority {} is out of range", rule.priority),
                    "AWS allows priorities 1 to 50000",
                );
            } else if let Some(&o) = prios.get(&rule.priority) {
                self.err(
                    format!("{rp}.priority"),
                    format!(
                        "priority {} is used twice in listener {} (also rules[{o}])",
                        rule.priority, li.port
                    ),
                    "give each rule of a listener its own priority",
                );
            } else {
                prios.insert(rule.priority, r);
            }
            let conditions = self.conditions(rule, &rp);
            if conditions.is_empty() {
                self.err(&rp, format!("rule with priority {} has no condition", rule.priority), "add path_pattern, host_header, http_header, http_request_method or source_ip (the default action covers everything else)");
            }
            let forward = self.forward(&rule.forward, &format!("{rp}.forward"), target_groups);
            rules.push(ListenerRulePlan {
                priority: rule.priority.clamp(0, u32::MAX as i64) as u32,
                conditions,
                forward,
            });
        }
        rules.sort_by_key(|r| r.priority);
        rules
    }

    /// A listener rule's conditions, in a fixed order.
    fn conditions(&mut self, rule: &model::ListenerRule, rp: &str) -> Vec<Condition> {
        let mut conditions = Vec::new();
        if !rule.path_pattern.is_empty() {
            conditions.push(Condition::PathPattern(rule.path_pattern.clone()));
        }
        if !rule.host_header.is_empty() {
            conditions.push(Condition::HostHeader(rule.host_header.clone()));
        }
        for (h, v) in &rule.http_header {
            conditions.push(Condition::HttpHeader(h.clone(), v.clone()));
        }
        if !rule.http_request_method.is_empty() {
            conditions.push(Condition::HttpRequestMethod(
                rule.http_request_method.clone(),
            ));
        }
        if !rule.source_ip.is_empty() {
            let nets: Vec<Ipv4Net> = rule
                .source_ip
                .iter()
                .enumerate()
                .filter_map(|(m, s)| self.cidr(s, &format!("{rp}.source_ip[{m}]")))
                .collect();
            conditions.push(Condition::SourceIp(nets));
        }
        conditions
    }

    /// A weighted forward action: 1-5 distinct target groups, weights 0-999.
    fn forward(
        &mut self,
        list: &[model::WeightedTarget],
        path: &str,
        target_groups: &Names,
    ) -> Vec<WeightedTargetGroup> {
        if list.is_empty() {
            self.err(
                path,
                "forward action has no target group",
                "forward to 1-5 target groups, e.g. [{ target_group = \"tg-v1\", weight = 1 }]",
            );
        } else if list.len() > 5 {
            self.err(
                path,
                format!(
                    "forward action has {} target groups; AWS allows at most 5",
                    list.len()
                ),
                "forward to at most 5 target groups",
            );
        }
        let mut out: Vec<WeightedTargetGroup> = Vec::new();
        for (k, w) in list.iter().enumerate() {
            let p = format!("{path}[{k}]");
            if !(0..=999).contains(&w.weight) {
                self.err(
                    format!("{p}.weight"),
                    format!("weight {} is out of range", w.weight),
                    "AWS weights go from 0 to 999 (share = weight / sum of weights)",
                );
            }
            let Some(g) = self.lookup(target_groups, &w.target_group, format!("{p}.target_group"))
            else {
                continue;
            };
            if out.iter().any(|o| o.target_group == g) {
                self.err(
                    format!("{p}.target_group"),
                    format!(
                        "target group `{}` appears twice in this forward action",
                        w.target_group
                    ),
                    "list each target group once and set its weight",
                );
            } else {
                out.push(WeightedTargetGroup {
                    target_group: g,
                    weight: w.weight.clamp(0, 999) as u16,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(text: &str) -> Lab {
        lab_in(text, Path::new("."))
    }

    fn lab_in(text: &str, base: &Path) -> Lab {
        let t: Topology = toml::from_str(text).expect("toml");
        match validate(&t, base) {
            Ok(l) => l,
            Err(d) => panic!("{d:#?}"),
        }
    }

    fn errors(text: &str) -> Vec<Diagnostic> {
        let t: Topology = toml::from_str(text).expect("toml");
        validate(&t, Path::new(".")).expect_err("should fail")
    }

    const NET: &str = r#"
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

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

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

    #[test]
    fn a_subnet_holds_at_most_1023_interfaces() {
        let mut text = String::from(
            "name = \"t\"\n[vpc]\ncidr = \"10.0.0.0/16\"\n\
             [[subnet]]\nname = \"big\"\ncidr = \"10.0.0.0/20\"\naz = \"us-east-1a\"\n",
        );
        for k in 0..=MAX_ENIS_PER_SUBNET {
            text.push_str(&format!("[[instance]]\nname = \"x{k}\"\nsubnet = \"big\"\n"));
        }
        let d = errors(&text);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].path, "instance[1023].subnet");
        assert!(d[0].message.contains("x1023 is one too many"), "{}", d[0].message);
    }
}
