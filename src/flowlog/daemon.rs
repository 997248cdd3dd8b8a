//! The flow log daemon of a lab (`vpcsim flow-log-daemon`, started by `up`
//! in the fabric namespace): reads the packets the fabric's ruleset logs to
//! NFLOG, aggregates them per flow log, ENI, flow and action, and appends
//! one record per aggregate when its flow log's interval ends.
//!
//! Owns: aggregation and writing records. Must not touch: netlink (`nflog.rs`).

use super::nflog::{if_name, Logged, NflogSocket};
use super::{FlowLogError, Record};
use crate::firewall::fabric::NFLOG_GROUP;
use crate::state::LabState;
use crate::topology::plan::Lab;
use crate::topology::plan::{FlowAction, ACCOUNT_ID};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long one `recv` waits: the granularity of interval ends.
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    flow_log: usize,
    eni: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    protocol: u8,
    action: FlowAction,
}

#[derive(Debug, Clone, Copy)]
struct Totals {
    packets: u64,
    bytes: u64,
    start: u64,
    end: u64,
}

pub struct Aggregator<'a> {
    lab: &'a Lab,
    by_ip: HashMap<Ipv4Addr, usize>,
    by_if: HashMap<String, usize>,
    window_start: Vec<u64>,
    flows: BTreeMap<Key, Totals>,
}

impl<'a> Aggregator<'a> {
    pub fn new(lab: &'a Lab, now: u64) -> Self {
        Aggregator {
            lab,
            by_ip: lab
                .enis
                .iter()
                .enumerate()
                .map(|(i, e)| (e.private_ip, i))
                .collect(),
            by_if: lab
                .enis
                .iter()
                .enumerate()
                .map(|(i, e)| (e.host_if.clone(), i))
                .collect(),
            window_start: vec![now; lab.flow_logs.len()],
            flows: BTreeMap::new(),
        }
    }

    /// Accepted packets count for both ENIs; a drop on the sender's side is
    /// a REJECT of the sender only, a drop on the receiver's side was
    /// accepted out of the sender and rejected at the receiver.
    pub fn add(&mut self, p: &Logged, interface: Option<&str>, now: u64) {
        let by_ip = |ip| self.by_ip.get(&ip).copied();
        let sender = by_ip(p.src).or_else(|| interface.and_then(|i| self.by_if.get(i).copied()));
        let receiver = by_ip(p.dst);
        let verdicts = if p.prefix == "vpcsim:A" {
            [(sender, FlowAction::Accept), (receiver, FlowAction::Accept)]
        } else if p.prefix.starts_with("vpcsim:S:") {
            [(sender, FlowAction::Reject), (None, FlowAction::Reject)]
        } else if p.prefix.starts_with("vpcsim:D:") {
            [(sender, FlowAction::Accept), (receiver, FlowAction::Reject)]
        } else {
            return;
        };
        for (eni, action) in verdicts {
            let Some(eni) = eni else { continue };
            for (i, fl) in self.lab.flow_logs.iter().enumerate() {
                if !fl.covers(self.lab, eni) || !fl.wants(action) {
                    continue;
                }
                let key = Key {
                    flow_log: i,
                    eni,
                    src: p.src,
                    dst: p.dst,
                    sport: p.sport,
                    dport: p.dport,
                    protocol: p.protocol,
                    action,
                };
                let t = self.flows.entry(key).or_insert(Totals {
                    packets: 0,
                    bytes: 0,
                    start: now,
                    end: now,
                });
                t.packets += 1;
                t.bytes += p.bytes as u64;
                t.end = now;
            }
        }
    }

    /// Records of every flow log whose interval has ended at `now`.
    pub fn flush(&mut self, now: u64) -> Vec<Record> {
        let due: Vec<usize> = (0..self.lab.flow_logs.len())
            .filter(|&i| now >= self.window_start[i] + self.lab.flow_logs[i].interval_s as u64)
            .collect();
        let mut out = Vec::new();
        for i in due {
            self.window_start[i] = now;
            let keys: Vec<Key> = self
                .flows
                .keys()
                .filter(|k| k.flow_log == i)
                .copied()
                .collect();
            for k in keys {
                let t = self.flows.remove(&k).expect("key listed");
                out.push(Record {
                    version: 2,
                    account_id: ACCOUNT_ID.to_string(),
                    interface_id: self.lab.enis[k.eni].id.clone(),
                    srcaddr: k.src,
                    dstaddr: k.dst,
                    srcport: k.sport,
                    dstport: k.dport,
                    protocol: k.protocol,
                    packets: t.packets,
                    bytes: t.bytes,
                    start: t.start,
                    end: t.end,
                    action: k.action.name().to_string(),
                    log_status: "OK".to_string(),
                });
            }
        }
        out
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs until killed (teardown ends it with the lab's other processes).
pub fn run(lab: &str) -> Result<(), FlowLogError> {
    let state = LabState::load(lab)?.ok_or_else(|| FlowLogError::NotUp(lab.into()))?;
    let plan = state.plan;
    let nflog = |source| FlowLogError::Nflog {
        group: NFLOG_GROUP,
        source,
    };
    let mut sock = NflogSocket::bind(NFLOG_GROUP, POLL).map_err(nflog)?;
    let file = |path: PathBuf| move |source| FlowLogError::File { path, source };
    let path = super::log_file(lab);
    let mut out = crate::logfile::CappedLog::open(&path).map_err(file(path.clone()))?;
    let ready = super::ready_file(lab);
    std::fs::write(&ready, b"").map_err(file(ready.clone()))?;
    let mut agg = Aggregator::new(&plan, unix_now());
    let mut names: HashMap<u32, Option<String>> = HashMap::new();
    loop {
        let packets = sock.recv().map_err(nflog)?;
        let now = unix_now();
        for p in &packets {
            // The interface only matters for the source check, whose
            // forged source address names no ENI.
            let interface = if p.prefix.starts_with("vpcsim:S:") && p.indev != 0 {
                names
                    .entry(p.indev)
                    .or_insert_with(|| if_name(p.indev))
                    .clone()
            } else {
                None
            };
            agg.add(p, interface.as_deref(), now);
        }
        let records = agg.flush(now);
        if !records.is_empty() {
            let text: String = records.iter().map(|r| format!("{r}\n")).collect();
            out.write_all(text.as_bytes()).map_err(file(path.clone()))?;
        }
    }
}
