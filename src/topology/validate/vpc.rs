//! The lab name and region, the VPC CIDR, the internet outside it (hosts and
//! public pool), subnets, and each subnet's route table and NACL association.

use super::context::{name_problem, overlaps, truncate15, unique, Ctx, Names};

use super::routing::RouteTables;
use crate::topology::model::Topology;
use crate::topology::plan::SubnetPlan;
use ipnet::Ipv4Net;
use std::collections::HashSet;
use std::net::Ipv4Addr;

pub(super) fn suggest_name(name: &str, max: usize) -> String {
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

pub(super) fn valid_region(r: &str) -> bool {
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

/// The VPC CIDR and the internet outside it.
pub(super) struct Network {
    pub(super) vpc: Option<Ipv4Net>,
    pub(super) hosts: Vec<Ipv4Addr>,
    pub(super) pool: Option<Ipv4Net>,
}

/// Subnet names and CIDRs, before their tables are known.
pub(super) struct Subnets<'t> {
    pub(super) names: Names<'t>,
    /// Per subnet; host bits cleared, `None` if it does not parse.
    pub(super) cidrs: Vec<Option<Ipv4Net>>,
}

impl Ctx {
    /// The lab name (it becomes part of namespace and interface names) and
    /// the region. Returns whether the region is valid, for the AZ checks.
    pub(super) fn lab_name_and_region(&mut self, t: &Topology) -> bool {
        self.lab_name(t);
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

    /// The lab name: it becomes part of namespace and interface names.
    pub(super) fn lab_name(&mut self, t: &Topology) {
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
    }

    /// The VPC CIDR (/16 to /28), the internet hosts (outside the VPC, each
    /// once) and the public pool (outside the VPC).
    pub(super) fn vpc_and_internet(&mut self, t: &Topology) -> Network {
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
    pub(super) fn subnets<'t>(
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

    /// Each subnet's route table (the main one when omitted) and NACL (the
    /// default one when omitted), making its plan: bridge name and router
    /// address. Subnets that do not fully resolve get no plan.
    pub(super) fn subnet_associations(
        &mut self,
        t: &Topology,
        subnets: &Subnets,
        route_tables: &RouteTables,
        nacls: &Names,
    ) -> Vec<SubnetPlan> {
        let mut plans = Vec::new();
        // Bridges that subnets kept from the running lab are taken first.
        let mut bridges: HashSet<String> = t
            .subnets
            .iter()
            .filter_map(|s| self.pins.bridges.get(&s.name).cloned())
            .collect();
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
                    bridge: unique(
                        self.pins.bridges.get(&s.name).cloned(),
                        (0..).map(|k| truncate15(format!("br{}-{}", i + k, s.name))),
                        &mut bridges,
                    ),
                    router: Ipv4Addr::from(u32::from(cidr.network()) + 1),
                    route_table,
                    nacl,
                    map_public_ip: s.map_public_ip,
                });
            }
        }
        plans
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn region_and_lab_name_suggestions() {
        assert!(valid_region("us-east-1") && valid_region("us-gov-west-1"));
        assert!(
            !valid_region("us-east") && !valid_region("useast-1") && !valid_region("US-east-1")
        );
        assert_eq!(suggest_name("My_Lab 2", 16), "my-lab-2");
        assert_eq!(suggest_name("__", 16), "lab");
    }

    #[test]
    fn subnets_inside_the_vpc_without_overlap_in_the_region() {
        let d = errors(
            r#"
name = "t"
[vpc]
cidr = "10.0.0.0/16"
[internet]
public_pool = "10.0.200.0/24"
[[subnet]]
name = "a"
cidr = "10.0.1.0/24"
az = "us-east-1a"
[[subnet]]
name = "b"
cidr = "10.0.1.128/25"
az = "us-east-1b"
[[subnet]]
name = "c"
cidr = "10.1.0.0/24"
az = "us-west-2a"
"#,
        );
        let got: Vec<(&str, &str)> = d
            .iter()
            .map(|d| (d.path.as_str(), d.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "internet.public_pool",
                    "public pool 10.0.200.0/24 overlaps the VPC CIDR 10.0.0.0/16"
                ),
                (
                    "subnet[1].cidr",
                    "subnet b (10.0.1.128/25) overlaps subnet a (10.0.1.0/24)"
                ),
                (
                    "subnet[2].cidr",
                    "subnet c CIDR 10.1.0.0/24 is not inside the VPC CIDR 10.0.0.0/16"
                ),
                (
                    "subnet[2].az",
                    "availability zone `us-west-2a` is not in region us-east-1"
                ),
            ]
        );
    }

    #[test]
    fn subnets_take_the_main_table_and_default_nacl_when_they_name_none() {
        let l = lab(NET);
        assert_eq!(l.subnets[0].route_table, 0);
        assert_eq!(l.route_tables[l.subnets[2].route_table].name, "main");
        assert!(l.subnets.iter().all(|s| l.nacls[s.nacl].name == "default"));
        let d = errors(&format!("{NET}\n[[subnet]]\nname = \"x\"\ncidr = \"10.0.9.0/24\"\naz = \"us-east-1a\"\nroute_table = \"nope\"\nnacl = \"none\"\n"));
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["subnet[3].route_table", "subnet[3].nacl"]);
        assert!(d[0].hint.contains("omit route_table"), "{}", d[0].hint);
    }
}
