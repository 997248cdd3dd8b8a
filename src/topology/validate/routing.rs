//! Route tables (the main one, explicit or implicit) and their routes:
//! destinations outside the VPC, targets the internet gateway, a NAT gateway
//! or an instance.

use super::context::{quoted_list, unique, Ctx, Names, ALL_V4};
use crate::topology::model::{self, Topology};
use crate::topology::plan::{RoutePlan, RouteTablePlan, RouteTarget};
use ipnet::Ipv4Net;
use std::collections::HashSet;

/// What a route may target, by name.
pub(super) struct RouteTargets<'t> {
    pub(super) igw: Option<String>,
    pub(super) nat_gateways: Names<'t>,
    pub(super) instances: Names<'t>,
}

pub(super) struct RouteTables<'t> {
    /// With `main` when the main table is implicit.
    pub(super) names: Names<'t>,
    pub(super) plans: Vec<RouteTablePlan>,
    /// Per table: whether its 0.0.0.0/0 goes to the internet gateway.
    pub(super) public: Vec<bool>,
    /// The main table (the implicit one is last).
    pub(super) main: usize,
}

impl Ctx {
    /// What routes may target: the internet gateway (its name must not be
    /// empty), NAT gateways and instances. Their other checks come with
    /// their ENIs.
    pub(super) fn route_targets<'t>(&mut self, t: &'t Topology) -> RouteTargets<'t> {
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
    pub(super) fn route_tables<'t>(
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
        // Tables that route tables kept from the running lab are taken first.
        let pinned = |name: &str| self.pins.tables.get(name).copied();
        let mut ids: HashSet<u32> = t
            .route_tables
            .iter()
            .filter_map(|rt| pinned(&rt.name))
            .chain(implicit_main.then(|| pinned("main")).flatten())
            .collect();
        let mut table_ids: Vec<u32> = t
            .route_tables
            .iter()
            .map(|rt| unique(pinned(&rt.name), 100.., &mut ids))
            .collect();
        let main_id = implicit_main.then(|| unique(pinned("main"), 100.., &mut ids));
        for (i, rt) in t.route_tables.iter().enumerate() {
            let (routes, to_igw) = self.routes(i, rt, vpc, targets);
            public.push(to_igw);
            plans.push(RouteTablePlan {
                name: rt.name.clone(),
                table_id: table_ids.remove(0),
                main: i == main,
                routes,
            });
        }
        if let Some(table_id) = main_id {
            public.push(false);
            plans.push(RouteTablePlan {
                name: "main".into(),
                table_id,
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
    pub(super) fn routes(
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
    pub(super) fn route_target(
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::topology::plan::RouteTarget;

    #[test]
    fn routes_stay_outside_the_vpc_and_name_a_target() {
        let d = errors(&format!(
            "{NET}\n[[route_table]]\nname = \"r\"\nroutes = [\n  {{ destination = \"10.0.5.0/24\", target = \"igw\" }},\n  {{ destination = \"0.0.0.0/0\", target = \"nat-x\" }},\n  {{ destination = \"0.0.0.0/0\", target = \"igw\" }},\n]\n"
        ));
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "route_table[1].routes[0].destination",
                "route_table[1].routes[1].target",
                "route_table[1].routes[2].destination",
            ]
        );
        assert!(d[0].message.contains("local route cannot be overridden"));
        assert_eq!(d[1].hint, "valid targets: `igw`");
        assert_eq!(d[2].message, "route table r has two routes to 0.0.0.0/0");
    }

    #[test]
    fn an_igw_target_without_an_internet_gateway_says_how_to_add_one() {
        let text = NET.replace("[internet_gateway]\nname = \"igw\"\n", "");
        let d = errors(&text);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(d[0].message.contains("declares no [internet_gateway]"));
        assert!(d[0]
            .hint
            .starts_with("add [internet_gateway] name = \"igw\""));
    }

    #[test]
    fn one_main_table_and_kernel_ids_from_100() {
        let d = errors(&format!(
            "{NET}main = true\n[[route_table]]\nname = \"m2\"\nmain = true\n"
        ));
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].path, "route_table[1].main");
        let l = lab(&format!("{NET}main = true\n"));
        assert_eq!(
            l.route_tables.len(),
            1,
            "no implicit table when one is main"
        );
        assert_eq!(
            (l.route_tables[0].table_id, l.route_tables[0].main),
            (100, true)
        );
        assert_eq!(
            l.route_tables[0].routes[0].target,
            RouteTarget::InternetGateway
        );
    }
}
