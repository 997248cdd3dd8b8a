//! `vpcsim status [LAB] [--json]`: nodes, addresses, groups, workloads.

use super::resolve_lab;
use crate::lb::status::LbStatus;
use crate::state::LabState;
use crate::topology::plan::{EniOwner, FABRIC, INTERNET, S3};
use serde::Serialize;
use std::fmt::Write;

#[derive(Serialize)]
pub struct Summary {
    pub lab: String,
    pub region: String,
    pub vpc_id: String,
    pub vpc_cidr: String,
    pub ready: bool,
    pub nodes: Vec<NodeSummary>,
    pub load_balancers: Vec<LbSummary>,
    /// Docker containers, as the engine reports them now.
    pub containers: Vec<crate::containers::ContainerStatus>,
    /// The ALB daemon's live view: listeners and weights, CloudWatch-style
    /// metrics per target group, each target's health and reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alb: Option<LbStatus>,
    /// For each unhealthy target, what the AWS rules say about the path of
    /// its health checks: the next step of a student whose target is down.
    pub unhealthy_paths: Vec<UnhealthyPath>,
    /// Why `alb` is missing on a lab that has load balancers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alb_error: Option<String>,
    /// CloudFormation stacks the lab came from, with outputs and exports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<crate::cloudformation::stacks::StackRecord>,
}

/// The stacks of a lab brought up from templates (none for TOML labs).
pub fn stacks_of(lab: &str) -> Vec<crate::cloudformation::stacks::StackRecord> {
    std::fs::read_to_string(super::up::stacks_file(lab))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Each stack: its resources by logical id with their lab names, outputs, exports.
pub fn render_stacks(lab: &str) -> String {
    stacks_of(lab).iter().map(render_stack).collect()
}

/// One stack: its resources by logical id with their lab names, outputs, exports.
pub fn render_stack(s: &crate::cloudformation::stacks::StackRecord) -> String {
    let mut out = String::new();
    {
        let _ = writeln!(out, "\nstack {} ({})", s.name, s.file.display());
        for (logical, ty, physical, name) in &s.resources {
            let _ = writeln!(out, "  {logical:<32} {ty:<44} {name:<24} {physical}");
        }
        for o in &s.outputs {
            let export = o
                .export
                .as_deref()
                .map(|e| format!("  (export {e})"))
                .unwrap_or_default();
            let _ = writeln!(out, "  output {:<25} {}{export}", o.key, o.value);
        }
    }
    out
}

#[derive(Serialize)]
pub struct NodeSummary {
    pub node: String,
    /// The template resource (`stack.LogicalId`) of a lab from templates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub kind: &'static str,
    pub namespace: String,
    /// An instance's `i-…` id (what its IMDS says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub eni: Option<String>,
    pub subnet: Option<String>,
    pub az: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub security_groups: Vec<String>,
    pub workloads: Vec<WorkloadSummary>,
}

#[derive(Serialize)]
pub struct WorkloadSummary {
    pub role: String,
    pub pid: i32,
    /// `running`, `stopped` (by `vpcsim stop`), or `crashed`.
    pub state: &'static str,
}

#[derive(Serialize)]
pub struct UnhealthyPath {
    pub target_group: String,
    pub target: String,
    /// The ALB node the checks come from.
    pub from: String,
    /// `ip:port` the checks go to.
    pub to: String,
    /// Whether the rules let the check and its answer through.
    pub reachable: bool,
    /// The rule that stops it (`nacl public inbound rule * deny`).
    pub blocked_by: Option<String>,
    /// Request or reply.
    pub blocked_on: Option<&'static str>,
    /// The command that shows the whole path.
    pub trace_command: String,
}

/// Traces the health checks of every unhealthy target with the model, from
/// each ALB node that checks it: a NACL or SG that drops them (or their
/// replies) is named instead of leaving the student with `Target.Timeout`.
pub fn unhealthy_paths(lab: &crate::topology::plan::Lab, alb: &LbStatus) -> Vec<UnhealthyPath> {
    use crate::analysis::trace;
    let mut out = vec![];
    for tg in &alb.target_groups {
        let Some((gi, plan)) = lab
            .target_groups
            .iter()
            .enumerate()
            .find(|(_, g)| g.name == tg.name)
        else {
            continue;
        };
        let uses = |l: &crate::topology::plan::ListenerPlan| {
            l.default_forward
                .iter()
                .chain(l.rules.iter().flat_map(|r| r.forward.iter()))
                .any(|w| w.target_group == gi)
        };
        let nodes: Vec<&str> = lab
            .load_balancers
            .iter()
            .filter(|lb| lb.listeners.iter().any(uses))
            .flat_map(|lb| lb.nodes.iter().map(|&n| lab.enis[n].node.as_str()))
            .collect();
        for t in tg.targets.iter().filter(|t| t.state == "unhealthy") {
            let Some(tp) = plan.targets.iter().find(|x| x.instance == t.instance) else {
                continue;
            };
            let port = plan.health_check.port.unwrap_or(tp.port);
            let to = format!("{}:{port}", tp.ip);
            for node in &nodes {
                let Ok(from) = trace::source(lab, node) else {
                    continue;
                };
                let Ok((dst, p)) =
                    trace::destination(lab, &from, &to, crate::topology::plan::Protocol::Tcp)
                else {
                    continue;
                };
                let trace::Report::Connection(c) =
                    trace::trace(lab, &from, &dst, crate::topology::plan::Protocol::Tcp, p)
                else {
                    continue;
                };
                let on_request = c.path.request.blocked_by().is_some();
                out.push(UnhealthyPath {
                    target_group: tg.name.clone(),
                    target: t.instance.clone(),
                    from: node.to_string(),
                    to: to.clone(),
                    reachable: c.path.reachable,
                    blocked_by: c.path.blocked_by().map(|h| h.rule.clone()),
                    blocked_on: c.path.blocked_by().map(|_| {
                        if on_request {
                            "request"
                        } else {
                            "reply"
                        }
                    }),
                    trace_command: format!(
                        "vpcsim trace --lab {} {node} {}:{port}",
                        lab.name, t.instance
                    ),
                });
            }
        }
    }
    out
}

#[derive(Serialize)]
pub struct LbSummary {
    pub name: String,
    pub dns_name: String,
    pub nodes: Vec<String>,
}

fn kind(owner: EniOwner) -> &'static str {
    match owner {
        EniOwner::Instance(_) => "instance",
        EniOwner::NatGateway(_) => "nat-gateway",
        EniOwner::LoadBalancerNode(..) => "alb-node",
    }
}

pub fn summary(state: &LabState) -> Summary {
    let lab = &state.plan;
    let mut nodes = vec![];
    let service_nodes = [
        (FABRIC, "vpc-router"),
        (INTERNET, "internet"),
        (S3, "aws-s3"),
    ];
    let planned = lab.node_names();
    for (node, k) in service_nodes
        .into_iter()
        .filter(|(n, _)| planned.iter().any(|p| p == n))
    {
        nodes.push(NodeSummary {
            node: node.into(),
            resource: None,
            kind: k,
            namespace: lab.namespace(node),
            instance_id: None,
            eni: None,
            subnet: None,
            az: None,
            private_ip: None,
            public_ip: None,
            security_groups: vec![],
            workloads: workloads_of(state, node),
        });
    }
    for eni in &lab.enis {
        let subnet = &lab.subnets[eni.subnet];
        nodes.push(NodeSummary {
            node: eni.node.clone(),
            resource: lab
                .origin(&eni.node)
                .map(|o| format!("{}.{}", o.stack, o.logical_id)),
            kind: kind(eni.owner),
            namespace: lab.namespace(&eni.node),
            instance_id: matches!(eni.owner, EniOwner::Instance(_))
                .then(|| crate::topology::plan::instance_id(&lab.name, &eni.node)),
            eni: Some(eni.id.clone()),
            subnet: Some(subnet.name.clone()),
            az: Some(subnet.az.clone()),
            private_ip: Some(eni.private_ip.to_string()),
            public_ip: eni.public_ip.map(|p| p.to_string()),
            security_groups: eni
                .security_groups
                .iter()
                .map(|&g| lab.security_groups[g].name.clone())
                .collect(),
            workloads: workloads_of(state, &eni.node),
        });
    }
    let (alb, alb_error) = if lab.load_balancers.is_empty() || !state.ready {
        (None, None)
    } else {
        match crate::lb::client::query_status(&lab.name) {
            Ok(st) => (Some(st), None),
            Err(e) => (None, Some(format!("ALB daemon not answering: {e:#}"))),
        }
    };
    let unhealthy_paths = alb
        .as_ref()
        .map(|a| unhealthy_paths(lab, a))
        .unwrap_or_default();
    Summary {
        lab: lab.name.clone(),
        unhealthy_paths,
        region: lab.region.clone(),
        vpc_id: lab.vpc_id.clone(),
        vpc_cidr: lab.vpc_cidr.to_string(),
        ready: state.ready,
        nodes,
        load_balancers: lab
            .load_balancers
            .iter()
            .map(|lb| LbSummary {
                name: lb.name.clone(),
                dns_name: lb.dns_name.clone(),
                nodes: lb.nodes.iter().map(|&n| lab.enis[n].node.clone()).collect(),
            })
            .collect(),
        containers: crate::containers::status(lab),
        alb,
        alb_error,
        stacks: stacks_of(&lab.name),
    }
}

/// The node's current workloads: after `stop` and `start` the records of
/// the previous run stay in the state (as history), but only the newest of
/// each role is what runs on the node now.
fn workloads_of(state: &LabState, node: &str) -> Vec<WorkloadSummary> {
    let mine: Vec<&crate::state::ProcessRecord> =
        state.processes.iter().filter(|p| p.node == node).collect();
    mine.iter()
        .enumerate()
        .filter(|(i, p)| !mine[i + 1..].iter().any(|q| q.role == p.role))
        .map(|(_, p)| WorkloadSummary {
            role: p.role.clone(),
            pid: p.pid,
            state: if p.stopped {
                "stopped"
            } else if p.is_alive() {
                "running"
            } else if p.role == "user-data" {
                "exited"
            } else {
                "crashed"
            },
        })
        .collect()
}

pub fn render_table(state: &LabState) -> String {
    let s = summary(state);
    let mut out = String::new();
    // A lab from templates: the resource each node comes from, after its name.
    let rw = s
        .nodes
        .iter()
        .filter_map(|n| n.resource.as_ref().map(|r| r.len() + 1))
        .max()
        .map_or(0, |w| w.max("RESOURCE ".len()));
    let resource = |r: Option<&str>| format!("{:<rw$}", r.unwrap_or(if rw > 0 { "-" } else { "" }));
    writeln!(
        out,
        "{:<14} {}{:<12} {:<11} {:<11} {:<15} {:<15} {:<22} WORKLOADS",
        "NODE",
        resource(Some("RESOURCE").filter(|_| rw > 0)),
        "KIND",
        "SUBNET",
        "AZ",
        "PRIVATE IP",
        "PUBLIC IP",
        "SECURITY GROUPS"
    )
    .unwrap();
    for n in &s.nodes {
        let dash = || "-".to_string();
        let w: Vec<String> = n
            .workloads
            .iter()
            .map(|w| format!("{}({})", w.role, w.state))
            .collect();
        writeln!(
            out,
            "{:<14} {}{:<12} {:<11} {:<11} {:<15} {:<15} {:<22} {}",
            n.node,
            resource(n.resource.as_deref()),
            n.kind,
            n.subnet.clone().unwrap_or_else(dash),
            n.az.clone().unwrap_or_else(dash),
            n.private_ip.clone().unwrap_or_else(dash),
            n.public_ip.clone().unwrap_or_else(dash),
            if n.security_groups.is_empty() {
                "-".into()
            } else {
                n.security_groups.join(",")
            },
            if w.is_empty() {
                "-".into()
            } else {
                w.join(" ")
            }
        )
        .unwrap();
    }
    for lb in &s.load_balancers {
        writeln!(
            out,
            "\nload balancer {}: http://{}/ (nodes {})",
            lb.name,
            lb.dns_name,
            lb.nodes.join(", ")
        )
        .unwrap();
    }
    match (&s.alb, &s.alb_error) {
        (Some(alb), _) => write!(out, "\n{alb}").unwrap(),
        (None, Some(e)) => writeln!(out, "\n{e}").unwrap(),
        (None, None) => {}
    }
    if let Some(alb) = &s.alb {
        render_deregistered(&mut out, &state.plan, alb);
    }
    render_unhealthy(&mut out, &s.unhealthy_paths);
    out.push_str(&crate::containers::render_table(&s.containers));
    writeln!(
        out,
        "\nnamespaces: {}<node>; run commands with `vpcsim exec --lab {} NODE -- CMD`",
        crate::topology::plan::lab_prefix(&s.lab),
        s.lab
    )
    .unwrap();
    out
}

/// Targets of the topology that `vpcsim deregister` took out of their group
/// (the daemon, like AWS, no longer lists them once drained).
fn render_deregistered(out: &mut String, lab: &crate::topology::plan::Lab, alb: &LbStatus) {
    for tg in &lab.target_groups {
        let Some(live) = alb.target_groups.iter().find(|g| g.name == tg.name) else {
            continue;
        };
        for t in &tg.targets {
            if !live.targets.iter().any(|l| l.instance == t.instance) {
                writeln!(
                    out,
                    "{} {}: deregistered (gets no traffic; `vpcsim register {} {}` brings it back)",
                    tg.name, t.instance, tg.name, t.instance
                )
                .unwrap();
            }
        }
    }
}

/// Under the target health: why each unhealthy target is unhealthy, as far
/// as the network rules tell.
fn render_unhealthy(out: &mut String, paths: &[UnhealthyPath]) {
    if paths.is_empty() {
        return;
    }
    writeln!(
        out,
        "\nunhealthy targets, from the AWS rules (no traffic sent):"
    )
    .unwrap();
    for p in paths {
        match &p.blocked_by {
            Some(rule) => writeln!(
                out,
                "  {} {}: health checks from {} to {} are dropped on the {} by `{rule}`; see `{}`",
                p.target_group,
                p.target,
                p.from,
                p.to,
                p.blocked_on.unwrap_or("request"),
                p.trace_command
            ),
            None => writeln!(
                out,
                "  {} {}: the network lets checks from {} to {} through (`{}`): the target itself does not answer well; see `vpcsim logs {}`",
                p.target_group, p.target, p.from, p.to, p.trace_command, p.target
            ),
        }
        .unwrap();
    }
}

pub fn run(lab: Option<&str>, json: bool) -> anyhow::Result<()> {
    let state = resolve_lab(lab)?;
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&summary(&state))?);
    } else {
        let text = render_table(&state);
        // On a terminal, what needs attention stands out.
        let text = if crate::output::color() {
            let red = |w: &str| crate::output::red(w, true);
            text.replace("unhealthy", &red("unhealthy"))
                .replace("(crashed)", &red("(crashed)"))
                .replace("(stopped)", &crate::output::yellow("(stopped)", true))
        } else {
            text
        };
        crate::out!("{text}");
        crate::out!("{}", render_stacks(&state.plan.name));
    }
    Ok(())
}
