//! `vpcsim graph`: the lab as a diagram, with live health and weights when
//! it runs.

use crate::analysis::graph::{dot, mermaid, node_states, svg, Format, Live};

/// `vpcsim graph [FILE|LAB]`: live health and weights when the lab is up.
pub fn run(
    target: Option<&str>,
    format: &str,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let format: Format = format.parse().map_err(super::usage)?;
    let lab = super::load_plan(target)?;
    let state = crate::state::LabState::load(&lab.name)
        .ok()
        .flatten()
        .filter(|s| s.ready);
    let live = state.map(|state| {
        let mut live = if lab.load_balancers.is_empty() {
            Live::default()
        } else {
            crate::lb::client::query_status(&lab.name)
                .map(|s| Live::from_status(&s))
                .unwrap_or_default()
        };
        live.nodes = node_states(&state);
        live
    });
    let text = match format {
        Format::Svg => svg(&lab, live.as_ref()),
        Format::Mermaid => mermaid(&lab, live.as_ref()),
        Format::Dot => dot(&lab, live.as_ref()),
    };
    match output {
        Some(p) => std::fs::write(p, text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display())),
        None => {
            crate::out!("{text}");
            Ok(())
        }
    }
}
