//! Explaining a lab: the AWS rules model ([`model`]) and what is built on it:
//! `vpcsim trace` ([`trace`]), `vpcsim probe` ([`probe`]) and `vpcsim graph`
//! ([`graph`]). The model never reads the nftables rendering, so the two can
//! be checked against each other by real traffic.

pub mod graph;
pub mod model;
pub mod probe;
pub mod trace;

use crate::commands::{resolve_lab, usage};
use crate::topology::plan::Lab;
use std::path::Path;

/// A running lab's plan, or a topology file's (for verbs that need no
/// traffic): `None` means the only lab that is up.
pub fn load_plan(lab_or_file: Option<&str>) -> anyhow::Result<Lab> {
    if let Some(arg) = lab_or_file {
        let path = Path::new(arg);
        if arg.ends_with(".toml") || path.is_file() {
            return crate::topology::load(path).map_err(|e| usage(e.to_string()));
        }
    }
    Ok(resolve_lab(lab_or_file)?.plan)
}
