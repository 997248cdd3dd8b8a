//! Removing a lab: every process in its namespaces, the namespaces (their
//! veths and bridges go with them), and its state. Safe to run at any point
//! after a crash of `up`, and safe to run twice.

use crate::cgroup;
use crate::fabric::netns;
use crate::state::{self, LabState};
use crate::topology::plan::{lab_prefix, namespace, Lab};
use std::collections::HashSet;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Teardown {
    pub namespaces: Vec<String>,
    pub processes: Vec<i32>,
}

/// Namespaces a lab owns: the ones its plan names. Without a plan (state
/// lost or corrupt), the namespaces whose name starts with the lab's own
/// prefix `vpcsim-<lab>--`, which no other lab's names can start with, and
/// that no other lab's plan claims.
fn lab_namespaces(lab: &str, plan: Option<&Lab>) -> Vec<String> {
    if let Some(plan) = plan {
        // A change that crashed midway may have made its new plan's nodes.
        let changing_to = LabState::load(lab)
            .ok()
            .flatten()
            .and_then(|s| s.changing_to);
        let mut names: Vec<String> = plan
            .node_names()
            .iter()
            .chain(
                changing_to
                    .iter()
                    .flat_map(|p| p.node_names())
                    .collect::<Vec<_>>()
                    .iter(),
            )
            .map(|n| namespace(lab, n))
            .filter(|ns| netns::exists(ns))
            .collect();
        names.sort();
        names.dedup();
        return names;
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
    netns::list(&lab_prefix(lab))
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

#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
}

/// Removes everything of `lab`: its processes (in its namespaces, recorded
/// in its state, or members of its cgroup wherever they went), namespaces,
/// cgroup and state. `plan` is the plan `up` recorded in the lab's state
/// (never a topology file's: names in a file prove no ownership).
pub fn teardown(lab: &str, plan: Option<&Lab>) -> Result<Teardown, TeardownError> {
    crate::containers::teardown(lab, plan);
    let namespaces = lab_namespaces(lab, plan);
    let mut pids = processes_in(&namespaces);
    if let Ok(Some(st)) = LabState::load(lab) {
        pids.extend(st.processes.iter().filter(|p| p.is_alive()).map(|p| p.pid));
    }
    pids.extend(cgroup::members(lab));
    pids.sort_unstable();
    pids.dedup();
    let targets: Vec<(i32, u64)> = pids
        .iter()
        .filter_map(|&p| Some((p, state::process_start_time(p)?)))
        .collect();
    state::terminate(&targets, Duration::from_millis(500));
    // What forked meanwhile (a member's child is a member too).
    pids.extend(cgroup::kill_remaining(lab));
    cgroup::remove(lab)?;
    for ns in &namespaces {
        netns::remove(ns)?;
    }
    let _ = std::fs::remove_dir_all(state::lab_dir(lab));
    Ok(Teardown {
        namespaces,
        processes: pids,
    })
}
