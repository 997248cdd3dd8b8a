//! `vpcsim probe`: real connections between every pair of nodes next to
//! what the model predicts.

use crate::analysis::probe::{probe, render_text, topology_ports};

/// `vpcsim probe`; returns whether reality and model agree everywhere.
pub fn run(lab: Option<&str>, ports: &[u16], json: bool) -> anyhow::Result<bool> {
    super::require_root("probe")?;
    let state = super::resolve_lab(lab)?;
    let ports = if ports.is_empty() {
        topology_ports(&state.plan)
    } else {
        ports.to_vec()
    };
    let report = probe(&state.plan, &ports)?;
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::out!("{}", render_text(&report));
    }
    Ok(report.disagreements == 0)
}
