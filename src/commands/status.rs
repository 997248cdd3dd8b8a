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
    /// Why `alb` is missing on a lab that has load balancers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alb_error: Option<String>,
}

#[derive(Serialize)]
pub struct NodeSummary {
    pub node: String,
    pub kind: &'static str,
    pub namespace: String,
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
            kind: k,
            namespace: lab.namespace(node),
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
            kind: kind(eni.owner),
            namespace: lab.namespace(&eni.node),
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
    Summary {
        lab: lab.name.clone(),
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
    }
}

fn workloads_of(state: &LabState, node: &str) -> Vec<WorkloadSummary> {
    state
        .processes
        .iter()
        .filter(|p| p.node == node)
        .map(|p| WorkloadSummary {
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
    writeln!(
        out,
        "{:<14} {:<12} {:<11} {:<11} {:<15} {:<15} {:<22} WORKLOADS",
        "NODE", "KIND", "SUBNET", "AZ", "PRIVATE IP", "PUBLIC IP", "SECURITY GROUPS"
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
            "{:<14} {:<12} {:<11} {:<11} {:<15} {:<15} {:<22} {}",
            n.node,
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

pub fn run(lab: Option<&str>, json: bool) -> anyhow::Result<()> {
    let state = resolve_lab(lab)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary(&state))?);
    } else {
        print!("{}", render_table(&state));
    }
    Ok(())
}
