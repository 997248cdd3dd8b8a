//! `vpcsim down LAB|FILE`: remove everything of a lab. Succeeds when there
//! is nothing left to remove.

use super::{require_root, usage};
use crate::state::{LabLock, LabState};
use crate::{teardown, topology};
use std::path::Path;

pub fn run(target: &str) -> anyhow::Result<()> {
    require_root("down")?;
    let path = Path::new(target);
    // A file only tells which lab: what is removed is what the lab's state
    // recorded (a file's node names may be another lab's namespaces).
    let name = if target.ends_with(".toml") || path.is_file() {
        topology::load(path).map_err(|e| usage(e.to_string()))?.name
    } else {
        super::check_lab_name(target)?;
        target.to_string()
    };
    let lock = LabLock::acquire(&name)?;
    // A corrupt state falls back to the lab's own namespace prefix.
    let plan = LabState::load(&name).ok().flatten().map(|s| s.plan);
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
