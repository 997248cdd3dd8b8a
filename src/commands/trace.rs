//! `vpcsim trace`: one connection hop by hop from the AWS rules model.

use super::usage;
use crate::analysis::trace::{destination, parse_protocol, render_text, source, trace};

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
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report));
    }
    Ok(report.reachable())
}
