//! `vpcsim flow-logs`: prints (or follows) the lab's flow log records.

use crate::flowlog::{log_file, Record};

/// `vpcsim flow-logs [--follow] [--json]`: prints the lab's records.
pub fn run(lab: Option<&str>, follow: bool, json: bool) -> anyhow::Result<()> {
    let state = super::resolve_lab(lab)?;
    let path = log_file(&state.plan.name);
    // Records outlive a flow log removed by `apply`, as a log group keeps
    // them on AWS.
    if state.plan.flow_logs.is_empty() && !path.exists() {
        return Err(super::usage(format!(
            "lab `{}` has no flow log: add a `[[flow_log]]` (resource = \"vpc\") to its topology",
            state.plan.name
        )));
    }
    let mut tail = crate::logfile::Tail::new(&path);
    let mut buf = Vec::new();
    loop {
        tail.read_new(&mut buf)?;
        // Whole lines only: a record being written is printed when done.
        let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in String::from_utf8_lossy(&buf[..end]).lines() {
            match line.parse::<Record>() {
                Ok(r) if json => crate::outln!("{}", serde_json::to_string(&r)?),
                _ => crate::outln!("{line}"),
            }
        }
        buf.drain(..end);
        if crate::output::closed() {
            return Ok(());
        }
        if !follow {
            return Ok(());
        }
        if crate::state::LabState::load(&state.plan.name)?.is_none() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}
