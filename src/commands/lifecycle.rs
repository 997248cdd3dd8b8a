//! `vpcsim stop` / `vpcsim start`: an instance failing and coming back.

use super::{resolve_lab, usage};
use crate::state::{LabLock, LabState};

fn instance_node(state: &LabState, node: &str) -> anyhow::Result<()> {
    let plan = &state.plan;
    if plan.instances.iter().any(|i| plan.enis[i.eni].node == node)
        || crate::containers::is_container(plan, node)
    {
        return Ok(());
    }
    let names: Vec<&str> = plan
        .instances
        .iter()
        .map(|i| plan.enis[i.eni].node.as_str())
        .chain(plan.containers.iter().map(|c| c.name.as_str()))
        .collect();
    Err(usage(format!(
        "{node} is not an instance of lab {} (instances: {})",
        plan.name,
        names.join(", ")
    )))
}

pub fn stop(lab: Option<&str>, node: &str) -> anyhow::Result<()> {
    let name = resolve_lab(lab)?.plan.name;
    let _lock = LabLock::acquire(&name)?;
    // Reloaded under the lock: another command may have changed it.
    let mut state = resolve_lab(Some(&name))?;
    instance_node(&state, node)?;
    crate::workloads::stop_node(&mut state, node)?;
    crate::outln!("{node}: stopped");
    Ok(())
}

pub fn start(lab: Option<&str>, node: &str) -> anyhow::Result<()> {
    let name = resolve_lab(lab)?.plan.name;
    let _lock = LabLock::acquire(&name)?;
    let mut state = resolve_lab(Some(&name))?;
    instance_node(&state, node)?;
    crate::workloads::start_node(&mut state, node)?;
    crate::outln!("{node}: started");
    Ok(())
}
