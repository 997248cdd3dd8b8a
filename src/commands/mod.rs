//! The CLI verbs. Each returns `anyhow::Result`; `UsageError` in the chain
//! means bad input (exit code 2).
//!
//! Owns: the command line (arguments, usage errors, exit codes, root checks, finding a
//! lab by name) and turning the typed errors of the modules below into messages.
//! Must not hold domain logic: a verb calls typed functions below it.

pub mod apply;
pub mod deploy;
pub mod down;
pub mod exec;
pub mod export;
pub mod flow_logs;
pub mod graph;
pub mod lifecycle;
pub mod list;
pub mod logs;
pub mod probe;
pub mod status;
pub mod targets;
pub mod trace;
pub mod up;
pub mod waf;
pub mod weights;

/// Bad input from the user (topology, names, environment): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

use crate::state::LabState;
use crate::topology::plan::Lab;
use std::path::Path;

/// Labs need root (namespaces, netlink, nftables): say so before anything.
pub fn require_root(verb: &str) -> anyhow::Result<()> {
    if nix::unistd::Uid::effective().is_root() {
        Ok(())
    } else {
        Err(usage(format!(
            "`vpcsim {verb}` must run as root (it creates network namespaces): run `sudo vpcsim {verb} …`"
        )))
    }
}

/// A lab name from the command line, checked before anything named after it
/// (`/run/vpcsim/<lab>`, namespaces) is touched: `../x` is not a lab.
pub fn check_lab_name(name: &str) -> anyhow::Result<()> {
    match crate::topology::plan::lab_name_problem(name) {
        None => Ok(()),
        Some(why) => Err(usage(format!(
            "`{name}` is not a lab name: {why} (labs up: {})",
            list_or_none(&LabState::list())
        ))),
    }
}

/// The lab a command is about: the one named, or the only one running.
pub fn resolve_lab(lab: Option<&str>) -> anyhow::Result<LabState> {
    let name = match lab {
        Some(l) => {
            check_lab_name(l)?;
            l.to_string()
        }
        None => {
            let labs = LabState::list();
            match labs.as_slice() {
                [only] => only.clone(),
                [] => return Err(usage("no lab is up: start one with `vpcsim up FILE`")),
                many => {
                    return Err(usage(format!(
                    "several labs are up ({}): choose one with --lab (`vpcsim list` shows them)",
                    many.join(", ")
                )))
                }
            }
        }
    };
    match LabState::load(&name)? {
        Some(s) => Ok(s),
        None => Err(usage(format!(
            "lab `{name}` is not up (labs up: {})",
            list_or_none(&LabState::list())
        ))),
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// A running lab's plan, or a topology file's or a single template's (for
/// verbs that need no traffic): `None` means the only lab that is up.
pub fn load_plan(lab_or_file: Option<&str>) -> anyhow::Result<Lab> {
    if let Some(arg) = lab_or_file {
        let path = Path::new(arg);
        if crate::cloudformation::stacks::is_template(path) && path.is_file() {
            let (plan, _) = up::load_templates(&[path.to_path_buf()], &Default::default())?;
            return Ok(plan);
        }
        if arg.ends_with(".toml") || path.is_file() {
            return crate::topology::load(path).map_err(|e| usage(e.to_string()));
        }
    }
    Ok(resolve_lab(lab_or_file)?.plan)
}
