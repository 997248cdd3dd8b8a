//! The plan of a change: what differs between the running lab and the new
//! one, in the topology's own words (`~ nacl private inbound: + rule 130
//! allow tcp 1024-65535 from 192.0.2.0/24`), and what AWS itself refuses to
//! change in place. Resources are matched by name, never by position, so
//! reordering a file changes nothing.
//!
//! Owns: the wording and the refusals. Must not touch the system.

use crate::topology::plan::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `+` a resource is created.
    Add,
    /// `-` a resource is removed.
    Remove,
    /// `~` a resource changes in place.
    Change,
    /// `-/+` AWS cannot change it in place: it is replaced.
    Replace,
}

impl Action {
    fn sign(self) -> &'static str {
        match self {
            Action::Add => "+",
            Action::Remove => "-",
            Action::Change => "~",
            Action::Replace => "-/+",
        }
    }
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub action: Action,
    /// `instance v1-d`, `nacl private inbound`, `listener alb:80`.
    pub resource: String,
    /// What changes inside it (`+ rule 130 allow …`), or why it is replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.action.sign(), self.resource)?;
        match (&self.detail, self.action) {
            (Some(d), Action::Change) => write!(f, ": {d}"),
            (Some(d), _) => write!(f, " ({d})"),
            (None, _) => Ok(()),
        }
    }
}

/// A change AWS does not make in place and that vpcsim will not fake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub resource: String,
    pub message: String,
    /// AWS's reason and what to do instead.
    pub fix: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}\n    fix: {}",
            self.resource, self.message, self.fix
        )
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub refusals: Vec<Refusal>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.refusals.is_empty()
    }

    fn push(&mut self, action: Action, resource: impl Into<String>, detail: Option<String>) {
        self.changes.push(Change {
            action,
            resource: resource.into(),
            detail,
        });
    }

    /// `~ resource: detail` for each detail.
    fn changed(&mut self, resource: &str, details: Vec<String>) {
        for d in details {
            self.push(Action::Change, resource, Some(d));
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

/// What turns `old` into `new`.
pub fn diff(old: &Lab, new: &Lab) -> Plan {
    let mut plan = Plan::default();
    if old.vpc_cidr != new.vpc_cidr {
        plan.refusals.push(Refusal {
            resource: "vpc".into(),
            message: format!("CIDR {} -> {}", old.vpc_cidr, new.vpc_cidr),
            fix: "AWS cannot change a VPC's primary CIDR block: bring the lab down and up with the new file (on AWS: a new VPC)".into(),
        });
    }
    if old.region != new.region {
        plan.refusals.push(Refusal {
            resource: "region".into(),
            message: format!("{} -> {}", old.region, new.region),
            fix: "a VPC lives in one region: bring the lab down and up with the new file".into(),
        });
    }
    subnets(old, new, &mut plan);
    route_tables(old, new, &mut plan);
    nacls(old, new, &mut plan);
    security_groups(old, new, &mut plan);
    enis(old, new, &mut plan);
    target_groups(old, new, &mut plan);
    load_balancers(old, new, &mut plan);
    endpoints_and_buckets(old, new, &mut plan);
    flow_logs(old, new, &mut plan);
    containers(old, new, &mut plan);
    web_acls(old, new, &mut plan);
    plan
}

/// Adds `+`/`-` lines for names only one side has; returns the names both
/// have.
fn presence<'a>(
    plan: &mut Plan,
    kind: &str,
    old: impl IntoIterator<Item = &'a str>,
    new: impl IntoIterator<Item = &'a str>,
    describe_new: impl Fn(&str) -> Option<String>,
) -> Vec<&'a str> {
    let old: BTreeSet<&str> = old.into_iter().collect();
    let new: BTreeSet<&str> = new.into_iter().collect();
    for n in old.difference(&new) {
        plan.push(Action::Remove, format!("{kind} {n}"), None);
    }
    for n in new.difference(&old) {
        plan.push(Action::Add, format!("{kind} {n}"), describe_new(n));
    }
    old.intersection(&new).copied().collect()
}

/// `+ x` / `- x` for lines only one side has (order kept from `new`/`old`).
fn lines(old: &[String], new: &[String]) -> Vec<String> {
    let mut out: Vec<String> = old
        .iter()
        .filter(|l| !new.contains(l))
        .map(|l| format!("- {l}"))
        .collect();
    out.extend(
        new.iter()
            .filter(|l| !old.contains(l))
            .map(|l| format!("+ {l}")),
    );
    out
}

/// `what a -> b` when they differ.
fn field<T: PartialEq + fmt::Display>(out: &mut Vec<String>, what: &str, a: T, b: T) {
    if a != b {
        out.push(format!("{what} {a} -> {b}"));
    }
}

fn subnets(old: &Lab, new: &Lab, plan: &mut Plan) {
    let by = |lab: &Lab, n: &str| lab.subnets.iter().find(|s| s.name == n).cloned();
    let both = presence(
        plan,
        "subnet",
        old.subnets.iter().map(|s| s.name.as_str()),
        new.subnets.iter().map(|s| s.name.as_str()),
        |n| by(new, n).map(|s| format!("{}, {}", s.cidr, s.az)),
    );
    for n in both {
        let (a, b) = (by(old, n).unwrap(), by(new, n).unwrap());
        if a.cidr != b.cidr || a.az != b.az {
            plan.refusals.push(Refusal {
                resource: format!("subnet {n}"),
                message: format!("{} in {} -> {} in {}", a.cidr, a.az, b.cidr, b.az),
                fix: "AWS cannot change a subnet's CIDR block or Availability Zone: add a subnet with another name and move the instances to it".into(),
            });
            continue;
        }
        let mut d = Vec::new();
        field(
            &mut d,
            "route table",
            &old.route_tables[a.route_table].name,
            &new.route_tables[b.route_table].name,
        );
        field(
            &mut d,
            "nacl",
            &old.nacls[a.nacl].name,
            &new.nacls[b.nacl].name,
        );
        field(&mut d, "map_public_ip", a.map_public_ip, b.map_public_ip);
        plan.changed(&format!("subnet {n}"), d);
    }
}

fn route_target(lab: &Lab, t: RouteTarget) -> String {
    match t {
        RouteTarget::InternetGateway => lab.internet_gateway.clone().unwrap_or("igw".into()),
        RouteTarget::NatGateway(n) => lab.nat_gateways[n].name.clone(),
        RouteTarget::Eni(e) => lab.enis[e].node.clone(),
    }
}

fn routes_of(lab: &Lab, rt: &RouteTablePlan) -> BTreeMap<String, String> {
    rt.routes
        .iter()
        .map(|r| (r.destination.to_string(), route_target(lab, r.target)))
        .collect()
}

fn route_tables(old: &Lab, new: &Lab, plan: &mut Plan) {
    let by = |lab: &Lab, n: &str| lab.route_tables.iter().find(|r| r.name == n).cloned();
    let both = presence(
        plan,
        "route table",
        old.route_tables.iter().map(|r| r.name.as_str()),
        new.route_tables.iter().map(|r| r.name.as_str()),
        |_| None,
    );
    for n in both {
        let (a, b) = (
            routes_of(old, &by(old, n).unwrap()),
            routes_of(new, &by(new, n).unwrap()),
        );
        let mut d = Vec::new();
        for (dest, t) in &a {
            match b.get(dest) {
                None => d.push(format!("- route {dest} -> {t}")),
                Some(t2) if t2 != t => d.push(format!("~ route {dest}: {t} -> {t2}")),
                _ => {}
            }
        }
        for (dest, t) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
            d.push(format!("+ route {dest} -> {t}"));
        }
        plan.changed(&format!("route table {n}"), d);
    }
}

fn nacl_entry(e: &NaclEntry, inbound: bool) -> String {
    let action = match e.action {
        crate::topology::plan::Action::Allow => "allow",
        crate::topology::plan::Action::Deny => "deny",
    };
    let ports = match e.ports {
        Some(p) if e.protocol.has_ports() => format!(" {p}"),
        _ => String::new(),
    };
    let dir = if inbound { "from" } else { "to" };
    format!("{action} {}{ports} {dir} {}", e.protocol.name(), e.cidr)
}

fn nacls(old: &Lab, new: &Lab, plan: &mut Plan) {
    let by = |lab: &Lab, n: &str| lab.nacls.iter().find(|x| x.name == n).cloned();
    let both = presence(
        plan,
        "nacl",
        old.nacls.iter().map(|x| x.name.as_str()),
        new.nacls.iter().map(|x| x.name.as_str()),
        |_| None,
    );
    for n in both {
        let (a, b) = (by(old, n).unwrap(), by(new, n).unwrap());
        for (dir, inbound, ea, eb) in [
            ("inbound", true, &a.inbound, &b.inbound),
            ("outbound", false, &a.outbound, &b.outbound),
        ] {
            let map = |v: &Vec<NaclEntry>| -> BTreeMap<u16, String> {
                v.iter().map(|e| (e.rule, nacl_entry(e, inbound))).collect()
            };
            let (ma, mb) = (map(ea), map(eb));
            let mut d = Vec::new();
            for (rule, text) in &ma {
                match mb.get(rule) {
                    None => d.push(format!("- rule {rule} {text}")),
                    Some(t2) if t2 != text => d.push(format!("~ rule {rule}: {text} -> {t2}")),
                    _ => {}
                }
            }
            for (rule, text) in mb.iter().filter(|(k, _)| !ma.contains_key(*k)) {
                d.push(format!("+ rule {rule} {text}"));
            }
            plan.changed(&format!("nacl {n} {dir}"), d);
        }
    }
}

fn sg_rule(lab: &Lab, r: &SgRulePlan, inbound: bool) -> String {
    let what = match r.ports {
        Some(p) if r.protocol.has_ports() => format!("{}/{p}", r.protocol.name()),
        _ => r.protocol.name().to_string(),
    };
    let peer = match &r.peer {
        SgPeer::Cidr(c) => c.to_string(),
        SgPeer::Group(g) => lab.security_groups[*g].name.clone(),
    };
    format!("{what} {} {peer}", if inbound { "from" } else { "to" })
}

fn security_groups(old: &Lab, new: &Lab, plan: &mut Plan) {
    let by = |lab: &Lab, n: &str| lab.security_groups.iter().find(|x| x.name == n).cloned();
    let both = presence(
        plan,
        "sg",
        old.security_groups.iter().map(|x| x.name.as_str()),
        new.security_groups.iter().map(|x| x.name.as_str()),
        |_| None,
    );
    for n in both {
        let (a, b) = (by(old, n).unwrap(), by(new, n).unwrap());
        for (dir, inbound, ra, rb) in [
            ("ingress", true, &a.ingress, &b.ingress),
            ("egress", false, &a.egress, &b.egress),
        ] {
            let text = |lab: &Lab, v: &Vec<SgRulePlan>| -> Vec<String> {
                v.iter().map(|r| sg_rule(lab, r, inbound)).collect()
            };
            plan.changed(
                &format!("sg {n} {dir}"),
                lines(&text(old, ra), &text(new, rb)),
            );
        }
    }
}

/// What an ENI's node is, for the plan's words.
fn node_kind(lab: &Lab, eni: &Eni) -> String {
    match eni.owner {
        EniOwner::Instance(_) => "instance".into(),
        EniOwner::NatGateway(_) => "nat gateway".into(),
        EniOwner::LoadBalancerNode(l, _) => {
            format!("load balancer {} node", lab.load_balancers[l].name)
        }
    }
}

/// Why an ENI that stays by name must be replaced, if it must.
pub fn replacement(old: &Lab, a: &Eni, new: &Lab, b: &Eni) -> Option<String> {
    if old.subnets[a.subnet].name != new.subnets[b.subnet].name {
        Some(format!(
            "subnet {} -> {}: an instance's subnet cannot change, AWS replaces it",
            old.subnets[a.subnet].name, new.subnets[b.subnet].name
        ))
    } else if a.private_ip != b.private_ip {
        Some(format!(
            "private IP {} -> {}: a primary private IP cannot change, AWS replaces the instance",
            a.private_ip, b.private_ip
        ))
    } else if std::mem::discriminant(&a.owner) != std::mem::discriminant(&b.owner) {
        Some(format!("{} -> {}", node_kind(old, a), node_kind(new, b)))
    } else if a.host_if != b.host_if || a.id != b.id {
        Some("its network interface is recreated".into())
    } else {
        None
    }
}

fn instance_of<'a>(lab: &'a Lab, node: &str) -> Option<&'a InstancePlan> {
    lab.instances.iter().find(|i| lab.enis[i.eni].node == node)
}

fn enis(old: &Lab, new: &Lab, plan: &mut Plan) {
    let by = |lab: &Lab, n: &str| lab.enis.iter().find(|e| e.node == n).cloned();
    let old_names: BTreeSet<&str> = old.enis.iter().map(|e| e.node.as_str()).collect();
    let new_names: BTreeSet<&str> = new.enis.iter().map(|e| e.node.as_str()).collect();
    for n in old_names.difference(&new_names) {
        let e = by(old, n).unwrap();
        plan.push(Action::Remove, format!("{} {n}", node_kind(old, &e)), None);
    }
    for n in new_names.difference(&old_names) {
        let e = by(new, n).unwrap();
        let detail = format!("{}, {}", new.subnets[e.subnet].name, e.private_ip);
        plan.push(
            Action::Add,
            format!("{} {n}", node_kind(new, &e)),
            Some(detail),
        );
    }
    for n in old_names.intersection(&new_names) {
        let (a, b) = (by(old, n).unwrap(), by(new, n).unwrap());
        let resource = format!("{} {n}", node_kind(new, &b));
        if let Some(why) = replacement(old, &a, new, &b) {
            plan.push(Action::Replace, resource, Some(why));
            continue;
        }
        let groups = |lab: &Lab, e: &Eni| -> String {
            let v: Vec<&str> = e
                .security_groups
                .iter()
                .map(|&g| lab.security_groups[g].name.as_str())
                .collect();
            format!("[{}]", v.join(", "))
        };
        let ip = |p: Option<std::net::Ipv4Addr>| p.map_or("none".to_string(), |i| i.to_string());
        let mut d = Vec::new();
        field(&mut d, "security groups", groups(old, &a), groups(new, &b));
        field(&mut d, "public IP", ip(a.public_ip), ip(b.public_ip));
        field(
            &mut d,
            "source/destination check",
            a.source_dest_check,
            b.source_dest_check,
        );
        if let (Some(ia), Some(ib)) = (instance_of(old, n), instance_of(new, n)) {
            let w = |i: &InstancePlan| i.workload.map_or("none", |w| w.name());
            if ia.workload != ib.workload {
                d.push(format!("workload {} -> {} (restarts)", w(ia), w(ib)));
            }
            if ia.user_data != ib.user_data {
                d.push("user data changed (runs again, as after a stop and start)".into());
            }
            // AWS changes these on a running instance (ModifyInstanceMetadataOptions).
            field(
                &mut d,
                "metadata options",
                metadata(&ia.metadata),
                metadata(&ib.metadata),
            );
        }
        plan.changed(&resource, d);
    }
}

fn metadata(m: &MetadataPlan) -> String {
    format!(
        "tokens {}, hop limit {}, endpoint {}",
        if m.tokens_required {
            "required"
        } else {
            "optional"
        },
        m.put_response_hop_limit,
        if m.endpoint_enabled {
            "enabled"
        } else {
            "disabled"
        }
    )
}

fn health(h: &HealthCheckPlan) -> String {
    let port = h.port.map_or("traffic-port".to_string(), |p| p.to_string());
    format!(
        "{} port {port} every {} s timeout {} s healthy {} unhealthy {} codes {}",
        h.path,
        h.interval_s,
        h.timeout_s,
        h.healthy_threshold,
        h.unhealthy_threshold,
        h.http_codes()
    )
}

fn target_groups(old: &Lab, new: &Lab, plan: &mut Plan) {
    let by = |lab: &Lab, n: &str| lab.target_groups.iter().find(|x| x.name == n).cloned();
    let both = presence(
        plan,
        "target group",
        old.target_groups.iter().map(|x| x.name.as_str()),
        new.target_groups.iter().map(|x| x.name.as_str()),
        |_| None,
    );
    for n in both {
        let (a, b) = (by(old, n).unwrap(), by(new, n).unwrap());
        let key = |t: &TargetPlan| format!("{}:{}", t.instance, t.port);
        let ta: Vec<String> = a.targets.iter().map(key).collect();
        let tb: Vec<String> = b.targets.iter().map(key).collect();
        for t in ta.iter().filter(|t| !tb.contains(t)) {
            plan.push(
                Action::Remove,
                format!("target {t} from {n}"),
                Some(format!("draining, {} s", a.deregistration_delay_s)),
            );
        }
        for t in tb.iter().filter(|t| !ta.contains(t)) {
            plan.push(Action::Add, format!("target {t} in {n}"), None);
        }
        let mut d = Vec::new();
        field(&mut d, "port", a.port, b.port);
        field(
            &mut d,
            "health check",
            health(&a.health_check),
            health(&b.health_check),
        );
        field(
            &mut d,
            "algorithm",
            format!("{:?}", a.algorithm),
            format!("{:?}", b.algorithm),
        );
        field(
            &mut d,
            "deregistration delay",
            a.deregistration_delay_s,
            b.deregistration_delay_s,
        );
        field(
            &mut d,
            "stickiness",
            format!("{:?}", a.stickiness_s),
            format!("{:?}", b.stickiness_s),
        );
        plan.changed(&format!("target group {n}"), d);
    }
}

fn weights(lab: &Lab, f: &[WeightedTargetGroup]) -> BTreeMap<String, u16> {
    f.iter()
        .map(|w| (lab.target_groups[w.target_group].name.clone(), w.weight))
        .collect()
}

fn rule_text(lab: &Lab, r: &ListenerRulePlan) -> String {
    let conditions: Vec<String> = r.conditions.iter().map(|c| format!("{c:?}")).collect();
    let forward: Vec<String> = weights(lab, &r.forward)
        .into_iter()
        .map(|(g, w)| format!("{g} {w}"))
        .collect();
    format!(
        "if {} forward {}",
        conditions.join(" and "),
        forward.join(", ")
    )
}

fn load_balancers(old: &Lab, new: &Lab, plan: &mut Plan) {
    let by = |lab: &Lab, n: &str| lab.load_balancers.iter().find(|x| x.name == n).cloned();
    let both = presence(
        plan,
        "load balancer",
        old.load_balancers.iter().map(|x| x.name.as_str()),
        new.load_balancers.iter().map(|x| x.name.as_str()),
        |_| None,
    );
    for n in both {
        let (a, b) = (by(old, n).unwrap(), by(new, n).unwrap());
        let mut d = Vec::new();
        field(&mut d, "idle timeout", a.idle_timeout_s, b.idle_timeout_s);
        plan.changed(&format!("load balancer {n}"), d);
        let port = |l: &ListenerPlan| l.port;
        let pa: BTreeSet<u16> = a.listeners.iter().map(port).collect();
        let pb: BTreeSet<u16> = b.listeners.iter().map(port).collect();
        for p in pa.difference(&pb) {
            plan.push(Action::Remove, format!("listener {n}:{p}"), None);
        }
        for p in pb.difference(&pa) {
            plan.push(Action::Add, format!("listener {n}:{p}"), None);
        }
        for p in pa.intersection(&pb) {
            let la = a.listeners.iter().find(|l| l.port == *p).unwrap();
            let lb = b.listeners.iter().find(|l| l.port == *p).unwrap();
            let (wa, wb) = (
                weights(old, &la.default_forward),
                weights(new, &lb.default_forward),
            );
            let mut d = Vec::new();
            if wa != wb {
                let groups: BTreeSet<&String> = wa.keys().chain(wb.keys()).collect();
                let parts: Vec<String> = groups
                    .into_iter()
                    .filter(|g| wa.get(*g) != wb.get(*g))
                    .map(|g| {
                        let w = |m: &BTreeMap<String, u16>| {
                            m.get(g).map_or("-".into(), |x| x.to_string())
                        };
                        format!("{g} {} -> {}", w(&wa), w(&wb))
                    })
                    .collect();
                d.push(format!("weights {}", parts.join(", ")));
            }
            let rules = |lab: &Lab, l: &ListenerPlan| -> BTreeMap<u32, String> {
                l.rules
                    .iter()
                    .map(|r| (r.priority, rule_text(lab, r)))
                    .collect()
            };
            let (ra, rb) = (rules(old, la), rules(new, lb));
            for (prio, text) in &ra {
                match rb.get(prio) {
                    None => d.push(format!("- rule {prio} {text}")),
                    Some(t2) if t2 != text => d.push(format!("~ rule {prio}: {text} -> {t2}")),
                    _ => {}
                }
            }
            for (prio, text) in rb.iter().filter(|(k, _)| !ra.contains_key(*k)) {
                d.push(format!("+ rule {prio} {text}"));
            }
            plan.changed(&format!("listener {n}:{p}"), d);
        }
    }
}

fn endpoints_and_buckets(old: &Lab, new: &Lab, plan: &mut Plan) {
    let by = |lab: &Lab, n: &str| lab.vpc_endpoints.iter().find(|x| x.name == n).cloned();
    let both = presence(
        plan,
        "vpc endpoint",
        old.vpc_endpoints.iter().map(|x| x.name.as_str()),
        new.vpc_endpoints.iter().map(|x| x.name.as_str()),
        |_| None,
    );
    for n in both {
        let (a, b) = (by(old, n).unwrap(), by(new, n).unwrap());
        let tables = |lab: &Lab, e: &VpcEndpointPlan| -> Vec<String> {
            e.route_tables
                .iter()
                .map(|&r| lab.route_tables[r].name.clone())
                .collect()
        };
        let mut d: Vec<String> = lines(&tables(old, &a), &tables(new, &b))
            .into_iter()
            .map(|l| format!("route table {l}"))
            .collect();
        if a.link != b.link || a.fabric_ip != b.fabric_ip {
            d.push("link recreated".into());
        }
        plan.changed(&format!("vpc endpoint {n}"), d);
    }
    let buckets = |lab: &Lab| -> Vec<BucketPlan> {
        lab.s3
            .as_ref()
            .map(|s| s.buckets.clone())
            .unwrap_or_default()
    };
    let (ba, bb) = (buckets(old), buckets(new));
    let both = presence(
        plan,
        "bucket",
        ba.iter().map(|b| b.name.as_str()),
        bb.iter().map(|b| b.name.as_str()),
        |_| None,
    );
    for n in both {
        let a = ba.iter().find(|b| b.name == n).unwrap();
        let b = bb.iter().find(|b| b.name == n).unwrap();
        let mut d = Vec::new();
        if a.policy != b.policy {
            d.push("bucket policy replaced".into());
        }
        if a.seed_dir != b.seed_dir {
            d.push("seed directory changed (objects stay; new seed files are uploaded)".into());
        }
        plan.changed(&format!("bucket {n}"), d);
    }
}

fn flow_log_text(lab: &Lab, f: &FlowLogPlan) -> String {
    let on = match f.resource {
        FlowLogResource::Vpc => "vpc".to_string(),
        FlowLogResource::Subnet(s) => format!("subnet {}", lab.subnets[s].name),
        FlowLogResource::Eni(e) => format!("eni of {}", lab.enis[e].node),
    };
    format!("{on} {:?} every {} s", f.traffic_type, f.interval_s)
}

fn flow_logs(old: &Lab, new: &Lab, plan: &mut Plan) {
    let text = |lab: &Lab| -> Vec<String> {
        lab.flow_logs
            .iter()
            .map(|f| format!("{} ({})", f.id, flow_log_text(lab, f)))
            .collect()
    };
    let (a, b) = (text(old), text(new));
    for l in a.iter().filter(|l| !b.contains(l)) {
        plan.push(Action::Remove, format!("flow log {l}"), None);
    }
    for l in b.iter().filter(|l| !a.contains(l)) {
        plan.push(Action::Add, format!("flow log {l}"), None);
    }
}

fn containers(old: &Lab, new: &Lab, plan: &mut Plan) {
    let by = |lab: &Lab, n: &str| lab.containers.iter().find(|x| x.name == n).cloned();
    let both = presence(
        plan,
        "container",
        old.containers.iter().map(|x| x.name.as_str()),
        new.containers.iter().map(|x| x.name.as_str()),
        |n| by(new, n).map(|c| format!("{} on {}", c.image, c.host)),
    );
    for n in both {
        let (a, b) = (by(old, n).unwrap(), by(new, n).unwrap());
        if crate::containers::must_recreate(&a, &b) {
            plan.push(
                Action::Replace,
                format!("container {n}"),
                Some("a container's image, host, ports or environment cannot change: it is recreated, as `docker run` again".into()),
            );
        }
    }
}

fn web_acls(old: &Lab, new: &Lab, plan: &mut Plan) {
    let by = |lab: &Lab, n: &str| lab.web_acls.iter().find(|x| x.name == n).cloned();
    let both = presence(
        plan,
        "web acl",
        old.web_acls.iter().map(|x| x.name.as_str()),
        new.web_acls.iter().map(|x| x.name.as_str()),
        |_| None,
    );
    for n in both {
        let (a, b) = (by(old, n).unwrap(), by(new, n).unwrap());
        let lbs = |lab: &Lab, w: &crate::waf::WebAclPlan| -> Vec<String> {
            w.load_balancers
                .iter()
                .map(|&l| lab.load_balancers[l].name.clone())
                .collect()
        };
        let mut d: Vec<String> = lines(&lbs(old, &a), &lbs(new, &b))
            .into_iter()
            .map(|l| format!("association {l}"))
            .collect();
        field(
            &mut d,
            "default action",
            format!("{:?}", a.default_action),
            format!("{:?}", b.default_action),
        );
        let logging = |w: &crate::waf::WebAclPlan| {
            w.logging
                .as_ref()
                .map_or("none".to_string(), |l| format!("({})", l.summary()))
        };
        field(&mut d, "logging", logging(&a), logging(&b));
        let rules = |w: &crate::waf::WebAclPlan| -> Vec<String> {
            w.rules
                .iter()
                .map(|r| serde_json::to_string(r).unwrap_or_default())
                .collect()
        };
        if rules(&a) != rules(&b) {
            let names = |w: &crate::waf::WebAclPlan| -> Vec<String> {
                w.rules.iter().map(|r| r.name.clone()).collect()
            };
            let (na, nb) = (names(&a), names(&b));
            d.extend(lines(&na, &nb).into_iter().map(|l| format!("rule {l}")));
            for (ra, rb) in a.rules.iter().zip(&b.rules) {
                let same_name_changed = ra.name == rb.name
                    && serde_json::to_string(ra).ok() != serde_json::to_string(rb).ok();
                if same_name_changed {
                    d.push(format!("~ rule {}", ra.name));
                }
            }
            if d.is_empty() {
                d.push("rules reordered".into());
            }
        }
        plan.changed(&format!("web acl {n}"), d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary() -> (String, Lab) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        let text = std::fs::read_to_string(dir.join("canary.toml")).unwrap();
        let lab = crate::topology::parse(&text, &dir).unwrap();
        (text, lab)
    }

    fn edited_text(text: &str, from: &str, to: &str) -> String {
        assert!(text.contains(from), "{from}");
        text.replacen(from, to, 1)
    }

    fn edited(text: &str, from: &str, to: &str, previous: &Lab) -> Lab {
        assert!(text.contains(from), "{from}");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
        let table: toml::Table = toml::from_str(&text.replacen(from, to, 1)).unwrap();
        let (topo, diags) = crate::topology::fields::read(toml::Value::Table(table)).unwrap();
        assert!(diags.is_empty());
        crate::topology::validate::validate_with(&topo, &dir, Some(previous)).unwrap()
    }

    #[test]
    fn the_same_file_plans_nothing() {
        let (text, lab) = canary();
        let again = edited(&text, "name", "name", &lab);
        assert!(diff(&lab, &again).is_empty());
    }

    #[test]
    fn a_weight_change_is_one_line_in_the_listeners_words() {
        let (text, lab) = canary();
        let new = edited(
            &edited_text(&text, "\"tg-v1\", weight = 90", "\"tg-v1\", weight = 80"),
            "\"tg-v2\", weight = 10",
            "\"tg-v2\", weight = 20",
            &lab,
        );
        let plan = diff(&lab, &new);
        assert_eq!(plan.changes.len(), 1, "{plan}");
        let line = plan.changes[0].to_string();
        assert!(line.starts_with("~ listener "), "{line}");
        assert!(line.contains("weights "), "{line}");
        assert!(line.contains(" 90 -> 80"), "{line}");
    }

    #[test]
    fn an_added_instance_keeps_everyone_elses_addresses() {
        let (text, lab) = canary();
        // Inserted first: without pins it would take the first free address
        // and renumber every instance after it.
        let first = text.find("[[instance]]").unwrap();
        let subnet = &lab.subnets[lab.enis[lab.instances[0].eni].subnet].name;
        let mut with = text.clone();
        with.insert_str(
            first,
            &format!("[[instance]]\nname = \"newcomer\"\nsubnet = \"{subnet}\"\nsecurity_groups = [\"sg-backend\"]\n\n"),
        );
        let new = edited(&with, "name", "name", &lab);
        for e in &lab.enis {
            let n = new.eni_by_node(&e.node).unwrap();
            assert_eq!(
                (n.private_ip, n.public_ip, &n.host_if),
                (e.private_ip, e.public_ip, &e.host_if),
                "{}",
                e.node
            );
        }
        let plan = diff(&lab, &new);
        assert_eq!(plan.changes.len(), 1, "{plan}");
        assert!(plan.changes[0]
            .to_string()
            .starts_with("+ instance newcomer ("));
    }

    #[test]
    fn a_subnet_az_change_is_refused_with_aws_reason() {
        let (text, lab) = canary();
        let subnet = text.find("name = \"private-2\"").unwrap();
        let mut moved = text.clone();
        moved.replace_range(
            subnet..,
            &text[subnet..].replacen("us-east-1b", "us-east-1c", 1),
        );
        let new = edited(&moved, "name", "name", &lab);
        let plan = diff(&lab, &new);
        assert_eq!(plan.refusals.len(), 1, "{plan:?}");
        assert!(plan.refusals[0].resource == "subnet private-2");
        assert!(plan.refusals[0]
            .fix
            .contains("AWS cannot change a subnet's CIDR block or Availability Zone"));
    }

    #[test]
    fn a_logging_change_is_planned_in_the_files_words() {
        let (text, lab) = canary();
        let new = edited(
            &text,
            "logging = {}",
            "logging = { filter = { default = \"drop\", keep = [\"BLOCK\", \"COUNT\"] } }",
            &lab,
        );
        let plan = diff(&lab, &new);
        assert_eq!(plan.changes.len(), 1, "{plan}");
        let line = plan.changes[0].to_string();
        assert!(
            line.contains("logging (every request) -> (keep BLOCK or COUNT, else drop)"),
            "{line}"
        );
        let none = edited(&text, "logging = {}", "", &lab);
        let line = diff(&lab, &none).changes[0].to_string();
        assert!(line.contains("logging (every request) -> none"), "{line}");
    }
}
