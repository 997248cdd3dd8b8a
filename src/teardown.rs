//! Removing a lab: every process in its namespaces, the namespaces (their
//! veths and bridges go with them), and its state. Safe to run at any point
//! after a crash of `up`, and safe to run twice.

use crate::fabric::netns;
use crate::state::{self, LabState};
use crate::topology::plan::{namespace, Lab, PREFIX};
use std::collections::HashSet;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Teardown {
    pub namespaces: Vec<String>,
    pub processes: Vec<i32>,
}

/// Namespaces a lab may own: the planned ones when the plan is known.
/// Without a plan (state lost), every `vpcsim-<lab>-*` namespace that no
/// other lab's plan claims.
fn lab_namespaces(lab: &str, plan: Option<&Lab>) -> Vec<String> {
    if let Some(plan) = plan {
        return plan
            .node_names()
            .iter()
            .map(|n| namespace(lab, n))
            .filter(|ns| netns::exists(ns))
            .collect();
    }
    let claimed: HashSet<String> = LabState::list()
        .into_iter()
        .filter(|other| other != lab)
        .filter_map(|other| LabState::load(&other).ok().flatten())
        .flat_map(|s| {
            s.plan
                .node_names()
                .iter()
                .map(|n| namespace(&s.plan.name, n))
                .collect::<Vec<_>>()
        })
        .collect();
    netns::list(&format!("{PREFIX}-{lab}-"))
        .into_iter()
        .filter(|ns| !claimed.contains(ns))
        .collect()
}

/// PIDs of processes whose network namespace is one of `namespaces`:
/// everything vpcsim started in the lab (workloads, user data, the ALB
/// daemon, `vpcsim exec` shells), found by namespace, never by name.
pub fn processes_in(namespaces: &[String]) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let inodes: HashSet<u64> = namespaces.iter().filter_map(|n| netns::inode(n)).collect();
    if inodes.is_empty() {
        return vec![];
    }
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| inodes.contains(&m.ino()))
                .unwrap_or(false)
        })
        .collect()
}

/// Removes everything of `lab`. `plan` comes from the state file or, when
/// that is gone, from the topology file the user named.
pub fn teardown(lab: &str, plan: Option<&Lab>) -> Result<Teardown, netns::NetnsError> {
    crate::containers::teardown(lab, plan);
    let namespaces = lab_namespaces(lab, plan);
    let mut pids = processes_in(&namespaces);
    if let Ok(Some(st)) = LabState::load(lab) {
        pids.extend(st.processes.iter().filter(|p| p.is_alive()).map(|p| p.pid));
    }
    pids.sort_unstable();
    pids.dedup();
    let targets: Vec<(i32, u64)> = pids
        .iter()
        .filter_map(|&p| Some((p, state::process_start_time(p)?)))
        .collect();
    state::terminate(&targets, Duration::from_millis(500));
    for ns in &namespaces {
        netns::remove(ns)?;
    }
    let _ = std::fs::remove_dir_all(state::lab_dir(lab));
    Ok(Teardown {
        namespaces,
        processes: pids,
    })
}
