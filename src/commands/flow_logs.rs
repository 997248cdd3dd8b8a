//! `vpcsim flow-logs`: prints (or follows) the lab's flow log records.

use crate::flowlog::log_file;

/// `vpcsim flow-logs [--follow]`: prints the lab's records.
pub fn run(lab: Option<&str>, follow: bool) -> anyhow::Result<()> {
    use std::io::{Read, Seek, Write};
    let state = super::resolve_lab(lab)?;
    if state.plan.flow_logs.is_empty() {
        return Err(super::usage(format!(
            "lab `{}` has no flow log: add a `[[flow_log]]` (resource = \"vpc\") to its topology",
            state.plan.name
        )));
    }
    let path = log_file(&state.plan.name);
    let mut pos = 0u64;
    let stdout = std::io::stdout();
    loop {
        if let Ok(mut f) = std::fs::File::open(&path) {
            f.seek(std::io::SeekFrom::Start(pos))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            pos += buf.len() as u64;
            stdout.lock().write_all(&buf)?;
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
