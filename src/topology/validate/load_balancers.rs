//! Application Load Balancers: one node per subnet (at least two AZs),
//! scheme, idle timeout, DNS name, listeners, listener rules (priority,
//! conditions) and weighted forward actions.

use super::context::{Ctx, Names};
use super::instances::EniDraft;
use crate::topology::model::{self, Topology};
use crate::topology::plan::{
    aws_id, Condition, EniOwner, ListenerPlan, ListenerRulePlan, LoadBalancerPlan,
    WeightedTargetGroup,
};
use ipnet::Ipv4Net;
use std::collections::HashMap;

/// `<name>-<10 digits>`: AWS's ELB DNS names carry a numeric id.
pub(super) fn elb_number(lab: &str, name: &str) -> String {
    let id = aws_id("elb", lab, name);
    let n = u64::from_str_radix(&id[4..], 16).unwrap_or(0);
    format!("{:010}", n % 10_000_000_000)
}

impl Ctx {
    /// Load balancers: unique valid names, scheme, security groups, and one
    /// subnet per AZ in at least two AZs. Each subnet gets a node
    /// `<name>-<az letter>` whose ENI draft follows the NAT gateways'.
    /// Returns each load balancer's ENIs.
    pub(super) fn load_balancer_nodes(
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

    /// Load balancers: idle timeout, DNS name, and listeners (one per port,
    /// HTTP) with their default forward and rules.
    pub(super) fn load_balancers(
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
    pub(super) fn listener_rules(
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
    pub(super) fn conditions(&mut self, rule: &model::ListenerRule, rp: &str) -> Vec<Condition> {
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
    pub(super) fn forward(
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
    use super::super::testing::*;

    const TG: &str = "[[instance]]\nname = \"a\"\nsubnet = \"public-1\"\n[[target_group]]\nname = \"tg\"\nport = 80\ntargets = [\"a\"]\n";

    #[test]
    fn two_azs_one_subnet_each() {
        let d = errors(&format!(
            "{NET}{TG}[[load_balancer]]\nname = \"alb\"\nsubnets = [\"public-1\", \"a-very-long-subnet-name\"]\n"
        ));
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            ["load_balancer[0].subnets[1]", "load_balancer[0].subnets"]
        );
        assert!(d[0].message.contains("both in us-east-1a"));
        assert!(d[1].message.contains("AWS requires at least two"));
    }

    #[test]
    fn listeners_rules_and_forward_actions() {
        let d = errors(&format!(
            r#"{NET}{TG}
[[load_balancer]]
name = "alb"
subnets = ["public-1", "public-2"]
[[load_balancer.listener]]
port = 80
default_forward = [{{ target_group = "tg", weight = 1000 }}, {{ target_group = "tg" }}]
rules = [{{ priority = 1, forward = [{{ target_group = "nope" }}] }}]
[[load_balancer.listener]]
port = 80
default_forward = []
"#
        ));
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "load_balancer[0].listener[0].default_forward[0].weight",
                "load_balancer[0].listener[0].default_forward[1].target_group",
                "load_balancer[0].listener[0].rules[0]",
                "load_balancer[0].listener[0].rules[0].forward[0].target_group",
                "load_balancer[0].listener[1].port",
                "load_balancer[0].listener[1].default_forward",
            ]
        );
    }

    #[test]
    fn nodes_are_named_by_az_letter() {
        let l = lab(&format!(
            "{NET}{TG}[[load_balancer]]\nname = \"alb\"\nsubnets = [\"public-2\", \"public-1\"]\n[[load_balancer.listener]]\nport = 80\ndefault_forward = [{{ target_group = \"tg\" }}]\n"
        ));
        let nodes: Vec<&str> = l.load_balancers[0]
            .nodes
            .iter()
            .map(|&e| l.enis[e].node.as_str())
            .collect();
        assert_eq!(nodes, ["alb-b", "alb-a"]);
        assert!(
            l.enis.iter().skip(1).all(|e| e.public_ip.is_some()),
            "ALB nodes are internet-facing"
        );
    }
}
