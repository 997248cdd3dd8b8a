//! `vpcsim down LAB|FILE`: remove everything of a lab. Succeeds when there
//! is nothing left to remove.

use super::{require_root, usage};
use crate::state::{LabLock, LabState};
use crate::{teardown, topology};
use std::path::Path;

pub fn run(target: &str) -> anyhow::Result<()> {
    require_root("down")?;
    let path = Path::new(target);
    let (name, file_plan) = if target.ends_with(".toml") || path.is_file() {
        let plan = topology::load(path).map_err(|e| usage(e.to_string()))?;
        (plan.name.clone(), Some(plan))
    } else {
        (target.to_string(), None)
    };
    let lock = LabLock::acquire(&name)?;
    // The state's plan names what `up` actually built (the file may have
    // changed since); a corrupt state falls back to the file, then to names.
    let state_plan = LabState::load(&name).ok().flatten().map(|s| s.plan);
    let plan = state_plan.or(file_plan);
    let done = teardown::teardown(&name, plan.as_ref())?;
    drop(lock);
    LabLock::remove(&name);
    if done.namespaces.is_empty() {
        crate::outln!("lab `{name}`: nothing to remove");
    } else {
        crate::outln!(
            "lab `{name}` removed: {} namespaces, {} processes",
            done.namespaces.len(),
            done.processes.len()
        );
    }
    Ok(())
}
