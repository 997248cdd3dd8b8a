//! `vpcsim export FILE|LAB [--format cloudformation] [-o FILE] [--json]`.

use super::usage;
use crate::cloudformation::export;
use crate::state::LabState;
use crate::topology;
use anyhow::Context;
use std::path::Path;

pub fn run(target: &str, format: &str, output: Option<&Path>, json: bool) -> anyhow::Result<()> {
    if format != "cloudformation" {
        return Err(usage(format!(
            "--format {format} is not supported: the only export format is `cloudformation`"
        )));
    }
    let path = Path::new(target);
    let lab = if path.is_file() {
        topology::load(path).map_err(|e| usage(e.to_string()))?
    } else {
        match LabState::load(target)? {
            Some(state) => state.plan,
            None => {
                return Err(usage(format!(
                    "`{target}` is neither a topology file nor a lab that is up (labs up: {})",
                    LabState::list().join(", ")
                )))
            }
        }
    };
    let e = export::export(&lab);
    for note in &e.notes {
        eprintln!("warning: not carried to AWS: {note}");
    }
    let text = e.render(json);
    match output {
        Some(o) => std::fs::write(o, text).with_context(|| o.display().to_string())?,
        None => crate::out!("{text}"),
    }
    Ok(())
}
