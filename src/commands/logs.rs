//! `vpcsim logs NODE [-f]`: a node's console log (user data and workload
//! output); `alb` is the load balancer daemon's log.

use super::resolve_lab;
use super::usage;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

pub fn run(lab: Option<&str>, node: &str, follow: bool) -> anyhow::Result<()> {
    let state = resolve_lab(lab)?;
    let name = &state.plan.name;
    if crate::containers::is_container(&state.plan, node) {
        return Ok(crate::containers::logs(&state.plan, node, follow)?);
    }
    let path = if node == "alb" {
        crate::state::log_dir(name).join("alb.log")
    } else {
        if state.plan.eni_by_node(node).is_none() {
            let nodes: Vec<&str> = state.plan.enis.iter().map(|e| e.node.as_str()).collect();
            return Err(usage(format!(
                "no node {node} in lab {name} (nodes: {}, alb)",
                nodes.join(", ")
            )));
        }
        crate::workloads::console_log(name, node)
    };
    let mut out = std::io::stdout().lock();
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        // Nothing ran on the node yet: an empty console.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => loop {
            std::thread::sleep(Duration::from_millis(200));
            if let Ok(f) = std::fs::File::open(&path) {
                break f;
            }
        },
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n > 0 {
            out.write_all(&buf[..n])?;
            continue;
        }
        if !follow {
            return Ok(());
        }
        out.flush()?;
        std::thread::sleep(Duration::from_millis(200));
        // Truncated (a new `up` of the same lab): start over.
        let pos = file.stream_position()?;
        if std::fs::metadata(&path)
            .map(|m| m.len() < pos)
            .unwrap_or(false)
        {
            file.seek(SeekFrom::Start(0))?;
        }
    }
}
