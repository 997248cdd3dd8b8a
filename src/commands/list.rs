//! `vpcsim list [--json]`: the labs that are up, with the file each was
//! built from, so a student finds the name `--lab` and `down` want.

use crate::state::LabState;
use serde::Serialize;

#[derive(Serialize)]
pub struct LabEntry {
    pub lab: String,
    /// False while `up` is still building it (or died doing so: `down` it).
    pub ready: bool,
    pub topology: Option<String>,
    pub vpc_cidr: Option<String>,
    pub nodes: usize,
    pub load_balancers: Vec<String>,
}

pub fn entries() -> Vec<LabEntry> {
    LabState::list()
        .into_iter()
        .map(|name| match LabState::load(&name) {
            Ok(Some(s)) => LabEntry {
                ready: s.ready,
                topology: Some(s.topology.display().to_string()),
                vpc_cidr: Some(s.plan.vpc_cidr.to_string()),
                nodes: s.plan.node_names().len(),
                load_balancers: s
                    .plan
                    .load_balancers
                    .iter()
                    .map(|l| l.dns_name.clone())
                    .collect(),
                lab: name,
            },
            // A corrupt state: still a lab whose namespaces `down` removes.
            _ => LabEntry {
                lab: name,
                ready: false,
                topology: None,
                vpc_cidr: None,
                nodes: 0,
                load_balancers: vec![],
            },
        })
        .collect()
}

pub fn run(json: bool) -> anyhow::Result<()> {
    let labs = entries();
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&labs)?);
        return Ok(());
    }
    if labs.is_empty() {
        crate::outln!("no lab is up: start one with `sudo vpcsim up FILE`");
        return Ok(());
    }
    crate::outln!(
        "{:<16} {:<8} {:<14} {:>5}  TOPOLOGY",
        "LAB",
        "STATE",
        "VPC",
        "NODES"
    );
    for l in &labs {
        crate::outln!(
            "{:<16} {:<8} {:<14} {:>5}  {}",
            l.lab,
            if l.ready { "up" } else { "building" },
            l.vpc_cidr.as_deref().unwrap_or("-"),
            l.nodes,
            l.topology
                .as_deref()
                .unwrap_or("- (corrupt state: `vpcsim down` it)")
        );
    }
    Ok(())
}
