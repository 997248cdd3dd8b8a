//! `vpcsim logs SOURCE [-f] [--json]`: every node and every service of a lab
//! has a log here. A node's log is what runs in it (an instance's console, the
//! load balancer daemon for an ALB node, the DNS/S3 and flow log daemons for
//! `fabric`); the services' logs are the ALB access log, the S3 server access
//! log, the DNS query log and the VPC Flow Log records.

use super::resolve_lab;
use super::usage;
use crate::logfile::Tail;
use crate::state::{log_dir, LabState};
use crate::topology::plan::{EniOwner, FABRIC, INTERNET, S3};
use std::path::PathBuf;
use std::time::Duration;

/// One file a source reads, with the label its lines carry when a source has
/// several.
struct LogFile {
    label: &'static str,
    path: PathBuf,
}

/// The service logs, by the name `logs` takes, and what they are.
pub const SERVICES: [(&str, &str); 4] = [
    ("alb-access", "ALB access log"),
    ("s3-access", "S3 server access log"),
    ("dns", "DNS query log of the Amazon DNS"),
    ("flow-logs", "VPC Flow Log records"),
];

fn files(state: &LabState, source: &str) -> anyhow::Result<Vec<LogFile>> {
    let plan = &state.plan;
    let lab = plan.name.as_str();
    let logs = log_dir(lab);
    let one = |label, path| Ok(vec![LogFile { label, path }]);
    match source {
        "alb-access" => return one("alb-access", crate::lb::access_log_path(lab)),
        "s3-access" => return one("s3-access", crate::services::s3_access_log(lab)),
        "dns" => return one("dns", crate::services::dns_query_log(lab)),
        "flow-logs" => return one("flow-logs", crate::flowlog::log_file(lab)),
        // The load balancer daemon serves every ALB node of the lab.
        "alb" => return one("alb", logs.join("alb.log")),
        FABRIC => {
            return Ok(vec![
                LogFile {
                    label: "aws-services",
                    path: logs.join("aws-services.log"),
                },
                LogFile {
                    label: "flow-logs-daemon",
                    path: logs.join("flow-logs-daemon.log"),
                },
            ])
        }
        // S3's node: what it serves is its access log.
        S3 if plan.s3.is_some() => return one("s3-access", crate::services::s3_access_log(lab)),
        INTERNET => return one("internet", crate::workloads::console_log(lab, INTERNET)),
        _ => {}
    }
    if plan.load_balancers.iter().any(|l| l.name == source) {
        return one("alb", logs.join("alb.log"));
    }
    if let Some(eni) = plan.eni_by_node(source) {
        return Ok(match eni.owner {
            EniOwner::LoadBalancerNode(..) => vec![LogFile {
                label: "alb",
                path: logs.join("alb.log"),
            }],
            _ => vec![LogFile {
                label: "console",
                path: crate::workloads::console_log(lab, source),
            }],
        });
    }
    let mut names = plan.node_names();
    names.extend(plan.containers.iter().map(|c| c.name.clone()));
    names.extend(plan.load_balancers.iter().map(|l| l.name.clone()));
    Err(usage(format!(
        "lab `{lab}` has no node or log `{source}`; nodes: {}; service logs: {}",
        names.join(", "),
        SERVICES
            .iter()
            .map(|(n, what)| format!("{n} ({what})"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Why a source has no line yet, said on stderr so a student does not stare
/// at an empty screen.
fn empty_note(state: &LabState, source: &str) -> String {
    let plan = &state.plan;
    match source {
        "alb-access" if plan.load_balancers.is_empty() => "the lab has no load balancer".into(),
        "s3-access" | S3 if plan.s3.is_none() => "the lab has no S3 (no bucket, no endpoint)".into(),
        "flow-logs" if plan.flow_logs.is_empty() => {
            "the lab has no [[flow_log]]: add one (resource = \"vpc\") to record flows".into()
        }
        INTERNET => "vpcsim runs nothing on the internet host; `vpcsim exec internet -- CMD` output goes to your terminal".into(),
        _ if plan
            .eni_by_node(source)
            .is_some_and(|e| matches!(e.owner, EniOwner::NatGateway(_))) =>
        {
            "a NAT gateway runs no workload (AWS shows no console for it either)".into()
        }
        _ => "nothing logged yet".into(),
    }
}

#[derive(serde::Serialize)]
struct JsonLine<'a> {
    source: &'a str,
    line: &'a str,
}

pub fn run(lab: Option<&str>, source: &str, follow: bool, json: bool) -> anyhow::Result<()> {
    let state = resolve_lab(lab)?;
    if crate::containers::is_container(&state.plan, source) {
        if json {
            return Err(usage(format!(
                "{source} is a container: its log comes from Docker as it is; drop --json"
            )));
        }
        return Ok(crate::containers::logs(&state.plan, source, follow)?);
    }
    let files = files(&state, source)?;
    let labelled = files.len() > 1;
    let mut readers: Vec<(LogFile, Tail, Vec<u8>)> = files
        .into_iter()
        .map(|f| {
            let tail = Tail::new(&f.path);
            (f, tail, Vec::new())
        })
        .collect();
    let mut printed = false;
    loop {
        for (lf, tail, partial) in readers.iter_mut() {
            tail.read_new(partial)?;
            // Whole lines only: a line being written is printed when done.
            let Some(end) = partial.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            let rest = partial.split_off(end + 1);
            let chunk = std::mem::replace(partial, rest);
            for line in String::from_utf8_lossy(&chunk).lines() {
                printed = true;
                let label = if labelled { lf.label } else { source };
                if json {
                    crate::outln!(
                        "{}",
                        serde_json::to_string(&JsonLine {
                            source: label,
                            line
                        })?
                    );
                } else if labelled {
                    crate::outln!("[{label}] {line}");
                } else {
                    crate::outln!("{line}");
                }
            }
        }
        if crate::output::closed() {
            return Ok(());
        }
        if !follow {
            if !printed {
                eprintln!("({source}: {})", empty_note(&state, source));
            }
            return Ok(());
        }
        // The lab went down: nothing more will come.
        if LabState::load(&state.plan.name)?.is_none() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
