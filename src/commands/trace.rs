//! `vpcsim trace`: one connection hop by hop from the AWS rules model.

use super::usage;
use crate::analysis::trace::{destination, parse_protocol, render_text, source, trace};

/// On a terminal, what stops a connection stands out: DENY and NOT
/// REACHABLE in red, a partial verdict in yellow.
pub fn paint(text: &str, on: bool) -> String {
    use crate::output::{red, yellow};
    if !on {
        return text.to_string();
    }
    text.lines()
        .map(|l| {
            if l.starts_with("NOT REACHABLE") || l.trim_start().starts_with("NOT REACHABLE") {
                red(l, true)
            } else {
                l.replacen(" DENY ", &format!(" {} ", red("DENY", true)), 1)
                    .replacen(" PARTIAL ", &format!(" {} ", yellow("PARTIAL", true)), 1)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// `vpcsim trace`; returns whether the connection works both ways.
pub fn run(
    lab: Option<&str>,
    src: &str,
    dst: &str,
    protocol: &str,
    json: bool,
) -> anyhow::Result<bool> {
    let plan = super::load_plan(lab)?;
    let protocol = parse_protocol(protocol).map_err(|e| usage(e.to_string()))?;
    let from = source(&plan, src).map_err(|e| usage(e.to_string()))?;
    let (to, port) = destination(&plan, &from, dst, protocol).map_err(|e| usage(e.to_string()))?;
    let report = trace(&plan, &from, &to, protocol, port);
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::out!("{}", paint(&render_text(&report), crate::output::color()));
    }
    Ok(report.reachable())
}
