//! `vpcsim exec [--lab LAB] NODE -- CMD…`: run a command inside a node, with
//! the node's /etc/hosts; its exit code is passed through.

use super::{require_root, resolve_lab, usage};
use crate::workloads::process::{enter_node, Reach};
use std::process::Command;

pub fn run(lab: Option<&str>, node: &str, command: &[String]) -> anyhow::Result<i32> {
    require_root("exec")?;
    // `vpcsim exec canary v1-a …`: the lab given where the node goes.
    if lab.is_none() && crate::state::LabState::list().iter().any(|l| l == node) {
        return Err(usage(format!(
            "`{node}` is a lab, not a node: `vpcsim exec --lab {node} NODE -- CMD`"
        )));
    }
    let state = resolve_lab(lab)?;
    let nodes = state.plan.node_names();
    if !nodes.iter().any(|n| n == node) {
        // `vpcsim exec canary v1-a …`: the lab given where the node goes.
        let hint = if crate::state::LabState::list().iter().any(|l| l == node) {
            format!(" (`{node}` is a lab: `vpcsim exec --lab {node} NODE -- CMD`)")
        } else {
            String::new()
        };
        return Err(usage(format!(
            "lab `{}` has no node `{node}`; nodes: {}{hint}",
            state.plan.name,
            nodes.join(", ")
        )));
    }
    let (program, args) = command.split_first().expect("clap requires a command");
    let mut cmd = Command::new(program);
    cmd.args(args);
    // An instance's shell is the instance's root, confined like its
    // workloads; the fabric and AWS-side nodes are the operator's.
    let reach = if state.plan.is_instance(node) {
        Reach::Instance
    } else {
        Reach::Hypervisor
    };
    enter_node(&mut cmd, &state.plan.name, node, reach)?;
    let status = cmd.status().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => usage(format!("{program}: command not found")),
        _ => anyhow::Error::new(e).context(format!("running {program} in {node}")),
    })?;
    Ok(status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    }))
}
