//! VPC Flow Logs: `[[flow_log]]` on the VPC, a subnet or a node, records in
//! AWS's default version 2 format, one per flow per ENI per aggregation
//! interval, ACCEPT or REJECT.
//!
//! Capture is done by the kernel: with flow logs configured, the fabric's
//! ruleset sends accepted packets and every counted drop to NFLOG group
//! [`NFLOG_GROUP`] with a prefix telling the verdict ([`prefix`]). A per-lab
//! daemon in the fabric namespace ([`daemon`]) reads them over netlink
//! ([`nflog`]), aggregates and appends records to
//! `/run/vpcsim/<lab>/flow-logs.log`.

pub mod daemon;
pub mod nflog;

use crate::topology::plan::{aws_id, Eni, Lab, SubnetPlan};
use crate::topology::Diagnostic;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// NFLOG group of the fabric namespace (groups are per namespace).
pub const NFLOG_GROUP: u16 = 1;
/// The emulated AWS account in every record.
pub const ACCOUNT_ID: &str = "123456789012";
/// AWS's default aggregation interval.
const DEFAULT_INTERVAL_S: i64 = 600;

/// `[[flow_log]]` as written in the topology file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlowLog {
    /// `vpc`, a subnet name or a node (instance, NAT gateway, ALB node) name.
    pub resource: String,
    pub traffic_type: Option<String>,
    /// Seconds: AWS offers 60 and 600; labs may use 1-600.
    pub max_aggregation_interval: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowLogResource {
    Vpc,
    /// Index into `Lab::subnets`.
    Subnet(usize),
    /// Index into `Lab::enis`.
    Eni(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrafficType {
    All,
    Accept,
    Reject,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowLogPlan {
    /// `fl-…` id, stable for a lab and resource.
    pub id: String,
    pub resource: FlowLogResource,
    pub traffic_type: TrafficType,
    pub interval_s: u32,
}

impl FlowLogPlan {
    pub fn covers(&self, lab: &Lab, eni: usize) -> bool {
        match self.resource {
            FlowLogResource::Vpc => true,
            FlowLogResource::Subnet(s) => lab.enis[eni].subnet == s,
            FlowLogResource::Eni(e) => e == eni,
        }
    }
    pub fn wants(&self, action: FlowAction) -> bool {
        matches!(
            (self.traffic_type, action),
            (TrafficType::All, _)
                | (TrafficType::Accept, FlowAction::Accept)
                | (TrafficType::Reject, FlowAction::Reject)
        )
    }
}

/// Resolves the `[[flow_log]]` entries against the lab's subnets and ENIs.
pub fn resolve(
    lab: &str,
    raw: &[RawFlowLog],
    subnets: &[SubnetPlan],
    enis: &[Eni],
) -> Result<Vec<FlowLogPlan>, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut out = Vec::new();
    for (i, f) in raw.iter().enumerate() {
        let p = format!("flow_log[{i}]");
        let resource = if f.resource == "vpc" {
            Some(FlowLogResource::Vpc)
        } else if let Some(s) = subnets.iter().position(|s| s.name == f.resource) {
            Some(FlowLogResource::Subnet(s))
        } else if let Some(e) = enis.iter().position(|e| e.node == f.resource) {
            Some(FlowLogResource::Eni(e))
        } else {
            let names: Vec<&str> = subnets
                .iter()
                .map(|s| s.name.as_str())
                .chain(enis.iter().map(|e| e.node.as_str()))
                .collect();
            diags.push(Diagnostic {
                path: format!("{p}.resource"),
                message: format!("`{}` is neither `vpc`, a subnet nor a node", f.resource),
                hint: format!("use `vpc` or one of: {}", names.join(", ")),
            });
            None
        };
        let traffic_type = match f.traffic_type.as_deref().unwrap_or("ALL") {
            "ALL" => Some(TrafficType::All),
            "ACCEPT" => Some(TrafficType::Accept),
            "REJECT" => Some(TrafficType::Reject),
            other => {
                diags.push(Diagnostic {
                    path: format!("{p}.traffic_type"),
                    message: format!("unknown traffic type `{other}`"),
                    hint: "use ALL, ACCEPT or REJECT (upper case, as in AWS)".into(),
                });
                None
            }
        };
        let interval = f.max_aggregation_interval.unwrap_or(DEFAULT_INTERVAL_S);
        if !(1..=600).contains(&interval) {
            diags.push(Diagnostic {
                path: format!("{p}.max_aggregation_interval"),
                message: format!("aggregation interval {interval} s is out of range"),
                hint: "AWS offers 60 or 600 seconds; labs may use 1 to 600".into(),
            });
        }
        if let (Some(resource), Some(traffic_type)) = (resource, traffic_type) {
            out.push(FlowLogPlan {
                id: aws_id("fl", lab, &format!("{i}:{}", f.resource)),
                resource,
                traffic_type,
                interval_s: interval.clamp(1, 600) as u32,
            });
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// Which side of a connection a drop rule stands on: the sender's ENI (SG
/// egress, its subnet's NACL outbound, IGW without public IP, source check)
/// or the receiver's (NACL inbound, SG ingress, IGW inbound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

/// NFLOG prefix of a logged packet: `vpcsim:A` accepted, `vpcsim:S:<rule>`
/// dropped on the sender's side, `vpcsim:D:<rule>` on the receiver's.
pub fn prefix(verdict: Option<(Side, &str)>) -> String {
    let p = match verdict {
        None => "vpcsim:A".to_string(),
        Some((Side::Source, rule)) => format!("vpcsim:S:{rule}"),
        Some((Side::Destination, rule)) => format!("vpcsim:D:{rule}"),
    };
    // The kernel keeps 127 bytes of a log prefix.
    p.chars().take(127).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowAction {
    Accept,
    Reject,
}

impl FlowAction {
    pub fn name(self) -> &'static str {
        match self {
            FlowAction::Accept => "ACCEPT",
            FlowAction::Reject => "REJECT",
        }
    }
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

pub fn log_file(lab: &str) -> PathBuf {
    crate::state::lab_dir(lab).join("flow-logs.log")
}

fn ready_file(lab: &str) -> PathBuf {
    crate::state::lab_dir(lab).join("flow-logs.ready")
}

/// Starts the lab's flow log daemon in the fabric namespace when the lab
/// has flow logs, and waits until it listens to the kernel.
pub fn start(state: &mut crate::state::LabState) -> anyhow::Result<()> {
    use anyhow::Context;
    if state.plan.flow_logs.is_empty() {
        return Ok(());
    }
    let lab = state.plan.name.clone();
    let _ = std::fs::remove_file(ready_file(&lab));
    let log = crate::state::log_dir(&lab).join("flow-logs-daemon.log");
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["flow-log-daemon", "--lab", &lab]);
    let rec = crate::workloads::process::spawn_detached(
        &lab,
        crate::topology::plan::FABRIC,
        "flow-logs",
        cmd,
        &log,
    )
    .context("starting the flow log daemon")?;
    state.processes.push(rec.clone());
    state.save()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready_file(&lab).exists() {
        if !rec.is_alive() || std::time::Instant::now() > deadline {
            anyhow::bail!("flow log daemon did not start; see {}", log.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    Ok(())
}

/// `vpcsim flow-logs [--follow] [--json]`: prints the lab's records.
pub fn run(lab: Option<&str>, follow: bool, json: bool) -> anyhow::Result<()> {
    use std::io::{Read, Seek};
    let state = crate::commands::resolve_lab(lab)?;
    if state.plan.flow_logs.is_empty() {
        return Err(crate::commands::usage(format!(
            "lab `{}` has no flow log: add a `[[flow_log]]` (resource = \"vpc\") to its topology",
            state.plan.name
        )));
    }
    let path = log_file(&state.plan.name);
    let mut pos = 0u64;
    loop {
        if let Ok(mut f) = std::fs::File::open(&path) {
            f.seek(std::io::SeekFrom::Start(pos))?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            // Whole lines only: a record being written is read next time.
            let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            pos += end as u64;
            let text = String::from_utf8_lossy(&buf[..end]);
            for line in text.lines() {
                match line.parse::<Record>() {
                    Ok(r) if json => crate::outln!("{}", serde_json::to_string(&r)?),
                    _ => crate::outln!("{line}"),
                }
            }
            if crate::output::closed() {
                return Ok(());
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let plain = crate::firewall::fabric::render(&lab);
        assert!(!plain.contains(" log "));
        lab.flow_logs.push(FlowLogPlan {
            id: "fl-0".into(),
            resource: FlowLogResource::Vpc,
            traffic_type: TrafficType::All,
            interval_s: 60,
        });
        let text = crate::firewall::fabric::render(&lab);
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
