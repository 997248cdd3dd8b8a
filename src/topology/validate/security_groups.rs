//! Security groups: rules with exactly one peer (a CIDR or a group), the
//! default egress, AWS's `default` group, and the groups of one network
//! interface (at most five).

use super::context::{Ctx, Names, ALL_V4};
use crate::topology::model::{self, Topology};
use crate::topology::plan::{aws_id, Protocol, SecurityGroupPlan, SgPeer, SgRulePlan};

/// AWS's limit of security groups per network interface.
pub(super) const MAX_SGS_PER_ENI: usize = 5;

/// AWS's default quota "Inbound or outbound rules per security group"
/// (Amazon VPC quotas page); each direction counts separately.
pub(super) const MAX_RULES_PER_DIRECTION: usize = 60;

/// Whether anything uses the `default` security group, by name or by listing
/// no group at all (then AWS's default group is created).
pub(super) fn references_default_sg(t: &Topology) -> bool {
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
pub(super) fn allow_all_egress() -> SgRulePlan {
    SgRulePlan {
        protocol: Protocol::All,
        ports: None,
        peer: SgPeer::Cidr(ALL_V4),
    }
}

pub(super) struct SecurityGroups<'t> {
    /// With `default` when the default group is implicit.
    pub(super) names: Names<'t>,
    pub(super) plans: Vec<SecurityGroupPlan>,
}

impl Ctx {
    /// Security groups: unique names, ids and rules; AWS's `default` group
    /// (all from its own members in, all out) is added when something uses
    /// it without the file defining it. An omitted egress allows all.
    pub(super) fn security_groups<'t>(&mut self, t: &'t Topology, lab: &str) -> SecurityGroups<'t> {
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
    pub(super) fn sg_rules(
        &mut self,
        i: usize,
        g: &model::SecurityGroup,
        dir: &str,
        rules: &[model::SgRule],
        names: &Names,
    ) -> Vec<SgRulePlan> {
        self.rule_quota(i, g, dir, rules.len());
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

    /// AWS refuses a 61st inbound (or outbound) rule in one group unless the
    /// quota is raised, which the lab does not model.
    fn rule_quota(&mut self, i: usize, g: &model::SecurityGroup, dir: &str, count: usize) {
        if count > MAX_RULES_PER_DIRECTION {
            let way = if dir == "ingress" {
                "inbound"
            } else {
                "outbound"
            };
            self.err(
                format!("security_group[{i}].{dir}"),
                format!(
                    "security group `{}` has {count} {way} rules; AWS's default quota is {MAX_RULES_PER_DIRECTION} {way} rules per security group",
                    g.name
                ),
                format!("use at most {MAX_RULES_PER_DIRECTION} {dir} rules: merge ports or use larger CIDR blocks, or split the rules over several groups (AWS's quota increase is not modelled)"),
            );
        }
    }

    /// The security groups of a network interface: the `default` group when
    /// none is listed, at most five, each once.
    pub(super) fn interface_groups(
        &mut self,
        sgs: &Names,
        list: &[String],
        path: &str,
    ) -> Vec<usize> {
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    fn a_rule_has_exactly_one_peer_on_its_own_side() {
        let d = errors(&format!(
            r#"{NET}
[[security_group]]
name = "g"
ingress = [
  {{ protocol = "tcp", ports = "80", cidr = "0.0.0.0/0", source_sg = "g" }},
  {{ protocol = "tcp", ports = "80" }},
  {{ protocol = "tcp", ports = "80", destination_sg = "g" }},
  {{ protocol = "tcp", ports = "80", source_sg = "nope" }},
]
"#
        ));
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "security_group[0].ingress[0]",
                "security_group[0].ingress[1]",
                "security_group[0].ingress[2].destination_sg",
                "security_group[0].ingress[3].source_sg",
            ]
        );
        assert_eq!(d[3].hint, "security groups: `g`");
    }

    #[test]
    fn at_most_five_groups_per_interface_each_once() {
        let mut text = NET.to_string();
        for k in 0..6 {
            text.push_str(&format!("[[security_group]]\nname = \"g{k}\"\n"));
        }
        text.push_str("[[instance]]\nname = \"a\"\nsubnet = \"public-1\"\nsecurity_groups = [\"g0\", \"g1\", \"g2\", \"g3\", \"g4\", \"g0\"]\n");
        let d = errors(&text);
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "instance[0].security_groups",
                "instance[0].security_groups[5]"
            ]
        );
        assert!(d[0].message.contains("at most 5"));
    }

    #[test]
    fn at_most_sixty_rules_per_direction() {
        let rules = |n: usize| -> String {
            (0..n)
                .map(|k| {
                    format!(
                        "  {{ protocol = \"tcp\", ports = \"{}\", cidr = \"0.0.0.0/0\" }},\n",
                        1000 + k
                    )
                })
                .collect()
        };
        let ok = format!(
            "{NET}[[security_group]]\nname = \"g\"\ningress = [\n{}]\negress = [\n{}]\n",
            rules(60),
            rules(60)
        );
        lab(&ok);
        let bad = format!(
            "{NET}[[security_group]]\nname = \"g\"\ningress = [\n{}]\negress = [\n{}]\n",
            rules(61),
            rules(62)
        );
        let d = errors(&bad);
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            ["security_group[0].ingress", "security_group[0].egress"]
        );
        assert!(
            d[0].message.contains("`g` has 61 inbound rules"),
            "{}",
            d[0].message
        );
        assert!(
            d[1].message.contains("62 outbound rules"),
            "{}",
            d[1].message
        );
    }

    #[test]
    fn no_default_group_unless_something_uses_it() {
        let l = lab(&format!("{NET}[[security_group]]\nname = \"g\"\n[[instance]]\nname = \"a\"\nsubnet = \"public-1\"\nsecurity_groups = [\"g\"]\n"));
        let names: Vec<&str> = l.security_groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["g"]);
        assert!(l.security_groups[0].ingress.is_empty());
    }
}
