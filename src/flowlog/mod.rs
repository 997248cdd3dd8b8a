//! VPC Flow Logs: `[[flow_log]]` on the VPC, a subnet or a node, records in
//! AWS's default version 2 format, one per flow per ENI per aggregation
//! interval, ACCEPT or REJECT.
//!
//! Capture is done by the kernel: with flow logs configured, the fabric's
//! ruleset sends accepted packets and every counted drop to NFLOG group
//! [`NFLOG_GROUP`](crate::firewall::fabric::NFLOG_GROUP) with a prefix telling
//! the verdict ([`prefix`](crate::firewall::fabric::prefix)). A per-lab
//! daemon in the fabric namespace ([`daemon`]) reads them over netlink
//! ([`nflog`]), aggregates and appends records to
//! `/run/vpcsim/<lab>/flow-logs.log`.
//!
//! Owns: the record format, the daemon and its log file. Must not touch: the ruleset
//! that feeds it (`firewall/fabric.rs` decides what is logged, with which prefix).

pub mod daemon;
pub mod nflog;

use crate::state::StateError;
use serde::Serialize;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// What went wrong starting or running the flow log daemon.
#[derive(Debug, thiserror::Error)]
pub enum FlowLogError {
    #[error("lab `{0}` is not up")]
    NotUp(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("starting the flow log daemon: {0}")]
    Spawn(io::Error),
    #[error("flow log daemon did not start; see {}", .log.display())]
    NotStarted { log: PathBuf },
    #[error("NFLOG group {group}: {source}")]
    Nflog { group: u16, source: io::Error },
    #[error("{}: {source}", .path.display())]
    File { path: PathBuf, source: io::Error },
}

/// One flow log record, AWS default format version 2 (as JSON, with the
/// format's field names: `account-id`, `interface-id`, `log-status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Record {
    pub version: u8,
    pub account_id: String,
    pub interface_id: String,
    pub srcaddr: Ipv4Addr,
    pub dstaddr: Ipv4Addr,
    pub srcport: u16,
    pub dstport: u16,
    pub protocol: u8,
    pub packets: u64,
    pub bytes: u64,
    pub start: u64,
    pub end: u64,
    pub action: String,
    pub log_status: String,
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} {} {} {} {} {} {} {} {}",
            self.version,
            self.account_id,
            self.interface_id,
            self.srcaddr,
            self.dstaddr,
            self.srcport,
            self.dstport,
            self.protocol,
            self.packets,
            self.bytes,
            self.start,
            self.end,
            self.action,
            self.log_status
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not a version 2 flow log record: {0}")]
pub struct ParseError(String);

impl std::str::FromStr for Record {
    type Err = ParseError;
    fn from_str(line: &str) -> Result<Record, ParseError> {
        let bad = || ParseError(line.to_string());
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 14 || f[0] != "2" || !matches!(f[12], "ACCEPT" | "REJECT") {
            return Err(bad());
        }
        let n = |i: usize| f[i].parse::<u64>().map_err(|_| bad());
        Ok(Record {
            version: 2,
            account_id: f[1].to_string(),
            interface_id: f[2].to_string(),
            srcaddr: f[3].parse().map_err(|_| bad())?,
            dstaddr: f[4].parse().map_err(|_| bad())?,
            srcport: f[5].parse().map_err(|_| bad())?,
            dstport: f[6].parse().map_err(|_| bad())?,
            protocol: f[7].parse().map_err(|_| bad())?,
            packets: n(8)?,
            bytes: n(9)?,
            start: n(10)?,
            end: n(11)?,
            action: f[12].to_string(),
            log_status: f[13].to_string(),
        })
    }
}

/// The flow log daemon's process role in the lab's state.
pub const ROLE: &str = "flow-logs";

pub fn log_file(lab: &str) -> PathBuf {
    crate::state::lab_dir(lab).join("flow-logs.log")
}

fn ready_file(lab: &str) -> PathBuf {
    crate::state::lab_dir(lab).join("flow-logs.ready")
}

/// Starts the lab's flow log daemon in the fabric namespace when the lab
/// has flow logs, and waits until it listens to the kernel.
pub fn start(state: &mut crate::state::LabState) -> Result<(), FlowLogError> {
    if state.plan.flow_logs.is_empty() {
        return Ok(());
    }
    let lab = state.plan.name.clone();
    let _ = std::fs::remove_file(ready_file(&lab));
    let log = crate::state::log_dir(&lab).join("flow-logs-daemon.log");
    let mut cmd = std::process::Command::new(std::env::current_exe().map_err(FlowLogError::Spawn)?);
    cmd.args(["flow-log-daemon", "--lab", &lab]);
    let rec = crate::workloads::process::spawn_detached(
        &lab,
        crate::topology::plan::FABRIC,
        ROLE,
        crate::workloads::process::Reach::Hypervisor,
        cmd,
        &log,
    )
    .map_err(FlowLogError::Spawn)?;
    state.processes.push(rec.clone());
    state.save()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready_file(&lab).exists() {
        if !rec.is_alive() || std::time::Instant::now() > deadline {
            return Err(FlowLogError::NotStarted { log });
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::plan::{FlowLogPlan, FlowLogResource, TrafficType};

    #[test]
    fn records_round_trip_in_the_aws_format() {
        let line = "2 123456789012 eni-0a1b2c3d 10.0.10.23 10.0.20.16 49152 8000 6 10 840 1700000000 1700000060 ACCEPT OK";
        let r: Record = line.parse().unwrap();
        assert_eq!(r.dstport, 8000);
        assert_eq!(r.to_string(), line);
        assert!("2 x".parse::<Record>().is_err());
    }

    #[test]
    fn fabric_logs_drops_with_their_side_only_when_flow_logs_exist() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/canary.toml");
        let mut lab = crate::topology::load(&path).unwrap();
        let plain = crate::firewall::fabric::render(&lab).to_nft();
        assert!(!plain.contains(" log "));
        lab.flow_logs.push(FlowLogPlan {
            id: "fl-0".into(),
            resource: FlowLogResource::Vpc,
            traffic_type: TrafficType::All,
            interval_s: 60,
        });
        let text = crate::firewall::fabric::render(&lab).to_nft();
        for rule in [
            "counter log prefix \"vpcsim:D:nacl private inbound rule * deny\" group 1 drop",
            "counter log prefix \"vpcsim:S:nacl public outbound rule * deny\" group 1 drop",
            "counter log prefix \"vpcsim:D:sg sg-backend ingress: no rule allows it\" group 1 drop",
            "counter log prefix \"vpcsim:S:igw: source has no public IP\" group 1 drop",
            "log prefix \"vpcsim:A\" group 1",
        ] {
            assert!(text.contains(rule), "missing `{rule}` in\n{text}");
        }
        // Allow rules are not logged one by one: the chain's end logs them.
        assert!(!text.contains("allow\" group"));
    }
}
