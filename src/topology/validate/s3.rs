//! `[[vpc_endpoint]]` and `[[s3_bucket]]`: checks against AWS's rules and
//! resolution into [`Lab::vpc_endpoints`] and [`Lab::s3`]. Called by
//! `validate` once the rest of the lab is resolved (route table names and
//! the VPC id are known by then).

use super::context::{unique, Ctx};
use crate::topology::files;
use crate::topology::model::Topology;
use crate::topology::plan::*;
use crate::topology::policy::Policy;
use ipnet::Ipv4Net;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;

/// Addresses standing for S3's public ranges: TEST-NET-1, the documentation
/// range the internet hosts (203.0.113.0/24) and the public pool
/// (198.51.100.0/24) leave free, so lab traffic never looks like real AWS.
const S3_RANGE: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(192, 0, 2, 0), 24) {
    Ok(n) => n,
    Err(_) => panic!("192.0.2.0/24"),
};
const S3_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const PUBLIC_DNS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

impl Ctx {
    /// Fills `lab.vpc_endpoints` and `lab.s3`.
    pub(super) fn s3(&mut self, t: &Topology, base: &Path, lab: &mut Lab) {
        let mut endpoints: Vec<VpcEndpointPlan> = Vec::new();
        // Link subnets that endpoints kept from the running lab come first.
        let mut slots: HashSet<u32> = t
            .vpc_endpoints
            .iter()
            .filter_map(|e| self.pins.endpoint_slots.get(&e.name).copied())
            .collect();
        for (i, e) in t.vpc_endpoints.iter().enumerate() {
            let p = format!("vpc_endpoint[{i}]");
            if endpoints.iter().any(|x| x.name == e.name) {
                self.err(
                    format!("{p}.name"),
                    format!("duplicate endpoint name `{}`", e.name),
                    "give each endpoint its own name",
                );
            }
            if e.service != "s3" {
                self.err(
                    format!("{p}.service"),
                    format!("service `{}` has no emulation", e.service),
                    "vpcsim emulates the S3 service only: service = \"s3\"",
                );
            }
            if e.kind != "gateway" {
                self.err(
                    format!("{p}.type"),
                    format!("endpoint type `{}` is not emulated", e.kind),
                    "S3 gateway endpoints only: type = \"gateway\"",
                );
            }
            let id = match &e.id {
                Some(id) if valid_vpce_id(id) => id.clone(),
                Some(id) => {
                    self.err(
                    format!("{p}.id"),
                    format!("`{id}` is not a VPC endpoint id"),
                    "write `vpce-` and 8 to 17 lowercase hex digits, e.g. \"vpce-0aa42de173d26c739\"",
                );
                    continue;
                }
                None => aws_id("vpce", &lab.name, &e.name),
            };
            let mut tables = Vec::new();
            for (j, name) in e.route_tables.iter().enumerate() {
                match lab.route_tables.iter().position(|r| &r.name == name) {
                Some(rt) if endpoints.iter().any(|x| x.route_tables.contains(&rt)) || tables.contains(&rt) => self.err(
                    format!("{p}.route_tables[{j}]"),
                    format!("route table `{name}` already routes the S3 prefix list to an endpoint"),
                    "a route table holds one route per prefix list: list it in one endpoint only",
                ),
                Some(rt) => tables.push(rt),
                None => self.err(
                    format!("{p}.route_tables[{j}]"),
                    format!("no route table named `{name}`"),
                    format!(
                        "route tables: {}",
                        lab.route_tables.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ),
            }
            }
            if endpoints.len() >= 64 {
                self.err(
                    p,
                    "more than 64 endpoints",
                    "the endpoint links use 169.254.2.0/24 in /30s",
                );
                continue;
            }
            let link: String = id.chars().take(15).collect();
            if endpoints.iter().any(|x| x.link == link) {
                self.err(
                    format!("{p}.id"),
                    format!("`{id}` shares its first 15 characters with another endpoint's id"),
                    "interface names are the id's first 15 characters: make them differ",
                );
            }
            let pinned = self.pins.endpoint_slots.get(&e.name).copied();
            let n = unique(pinned, 0.., &mut slots);
            let base_ip = u32::from(Ipv4Addr::new(169, 254, 2, 0)) + 4 * n;
            endpoints.push(VpcEndpointPlan {
                name: e.name.clone(),
                id,
                route_tables: tables,
                link,
                fabric_ip: Ipv4Addr::from(base_ip + 1),
                service_ip: Ipv4Addr::from(base_ip + 2),
            });
        }

        let mut buckets: Vec<BucketPlan> = Vec::new();
        for (i, b) in t.s3_buckets.iter().enumerate() {
            let p = format!("s3_bucket[{i}]");
            if let Some(problem) = bucket_name_problem(&b.name) {
                self.err(format!("{p}.name"), format!("bucket name `{}` {problem}", b.name), "3-63 characters: lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit");
            }
            if buckets.iter().any(|x| x.name == b.name) {
                self.err(
                    format!("{p}.name"),
                    format!("duplicate bucket `{}`", b.name),
                    "bucket names are unique",
                );
            }
            let seed_dir = b.seed_dir.as_ref().map(|d| base.join(d));
            if let Some(dir) = &seed_dir {
                if let Err(e) = files::check_seed_dir(dir) {
                    self.err(
                        format!("{p}.seed_dir"),
                        e.to_string(),
                        format!("give a directory of regular files (at most {} entries, {} bytes in all, no links, FIFOs or devices); the path is relative to the topology file's directory", files::MAX_SEED_ENTRIES, files::MAX_SEED_BYTES),
                    );
                }
            }
            let policy = match &b.policy_file {
                None => None,
                Some(f) => {
                    let file = base.join(f);
                    match files::read_text(&file, files::MAX_POLICY_BYTES) {
                        Err(e) => {
                            self.err(
                                format!("{p}.policy_file"),
                                e.to_string(),
                                format!("give a regular file of at most {} bytes (AWS's bucket policy limit); the path is relative to the topology file's directory", files::MAX_POLICY_BYTES),
                            );
                            None
                        }
                        Ok(text) => match substitute(&text, lab, &endpoints)
                            .and_then(|text| Policy::parse(&text, &b.name).map(|_| text))
                        {
                            Ok(text) => Some(text),
                            Err(e) => {
                                self.err(format!("{p}.policy_file"), format!("{}: {e}", file.display()), "see README \"S3, the gateway endpoint and DNS\" for the supported policy elements");
                                None
                            }
                        },
                    }
                }
            };
            buckets.push(BucketPlan {
                name: b.name.clone(),
                seed_dir: seed_dir.map(|d| std::fs::canonicalize(&d).unwrap_or(d)),
                policy,
            });
        }

        if !endpoints.is_empty() || !buckets.is_empty() {
            if lab.internet.public_pool.contains(&S3_RANGE.network())
                || S3_RANGE.contains(&lab.internet.public_pool.network())
            {
                self.err(
                    "internet.public_pool",
                    format!(
                        "{} overlaps the S3 range {S3_RANGE}",
                        lab.internet.public_pool
                    ),
                    "pick a pool outside 192.0.2.0/24",
                );
            }
            for (j, h) in lab.internet.hosts.iter().enumerate() {
                if S3_RANGE.contains(h) {
                    self.err(
                        format!("internet.hosts[{j}]"),
                        format!("{h} is inside the S3 range {S3_RANGE}"),
                        "pick an internet host outside 192.0.2.0/24",
                    );
                }
            }
            if let Some(e) = lab.enis.iter().find(|e| e.node == S3) {
                self.err(
                    "instance",
                    format!("node name `{}` is reserved when the lab has S3", e.node),
                    "`s3` is the S3 service's namespace; rename the node",
                );
            }
            lab.s3 = Some(S3Plan {
                prefix_list_id: aws_id("pl", &lab.region, "s3"),
                range: S3_RANGE,
                address: S3_ADDRESS,
                public_dns: PUBLIC_DNS,
                buckets,
            });
        }
        lab.vpc_endpoints = endpoints;
    }
}

fn valid_vpce_id(id: &str) -> bool {
    id.strip_prefix("vpce-").is_some_and(|h| {
        (8..=17).contains(&h.len())
            && h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

/// S3's bucket naming rules (the ones a lab can trip over).
fn bucket_name_problem(name: &str) -> Option<&'static str> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&name.len()) {
        Some("must be 3 to 63 characters long")
    } else if !name.chars().all(ok_char) {
        Some("may hold only lowercase letters, digits, `.` and `-`")
    } else if !edge(name.chars().next()) || !edge(name.chars().last()) {
        Some("must start and end with a letter or digit")
    } else if name.contains("..") || name.parse::<Ipv4Addr>().is_ok() {
        Some("must not contain `..` or look like an IP address")
    } else {
        None
    }
}

/// Replaces `${vpce:NAME}` with the endpoint's id and `${vpc}` with the VPC
/// id, so a policy file can name the lab's own ids.
fn substitute(text: &str, lab: &Lab, endpoints: &[VpcEndpointPlan]) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or("unterminated `${` placeholder")?
            + start;
        let key = &rest[start + 2..end];
        if key == "vpc" {
            out.push_str(&lab.vpc_id);
        } else if let Some(name) = key.strip_prefix("vpce:") {
            let e = endpoints
                .iter()
                .find(|e| e.name == name)
                .ok_or_else(|| format!("`${{{key}}}` names no [[vpc_endpoint]]"))?;
            out.push_str(&e.id);
        } else {
            return Err(format!(
                "unknown placeholder `${{{key}}}` (use `${{vpce:NAME}}` or `${{vpc}}`)"
            ));
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert_eq!(bucket_name_problem("p4-buquet"), None);
        assert!(bucket_name_problem("P4").is_some());
        assert!(bucket_name_problem("-abc").is_some());
        assert!(bucket_name_problem("a_b_c").is_some());
        assert!(bucket_name_problem("10.0.0.1").is_some());
    }

    #[test]
    fn vpce_ids() {
        assert!(valid_vpce_id("vpce-0aa42de173d26c739"));
        assert!(!valid_vpce_id("vpce-XYZ"));
        assert!(!valid_vpce_id("vpc-0aa42de173d26c739"));
    }
}
