//! `vpcsim probe`: real connections between every pair of nodes next to
//! what the model predicts.

use crate::analysis::probe::{probe, render_text, topology_ports, PortSpec};
use crate::topology::plan::Protocol;

/// `vpcsim probe`; returns whether reality and model agree everywhere.
/// `protocol` keeps the ports of one protocol (`None`: all of them).
pub fn run(
    lab: Option<&str>,
    ports: &[PortSpec],
    protocol: Option<Protocol>,
    json: bool,
) -> anyhow::Result<bool> {
    super::require_root("probe")?;
    let state = super::resolve_lab(lab)?;
    let ports: Vec<PortSpec> = if ports.is_empty() {
        topology_ports(&state.plan)
    } else {
        ports.to_vec()
    }
    .into_iter()
    .filter(|p| protocol.is_none_or(|want| p.protocol == want))
    .collect();
    anyhow::ensure!(
        !ports.is_empty(),
        "nothing to probe: --ports lists no port of the protocol chosen with --protocol"
    );
    let report = probe(&state.plan, &ports)?;
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::out!("{}", render_text(&report));
    }
    Ok(report.disagreements == 0)
}
