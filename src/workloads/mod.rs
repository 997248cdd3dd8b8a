//! What runs on instances: user data scripts, built-in model servers, and
//! the lab's ALB daemon (in the fabric's namespace).
//!
//! Owns: which processes a lab runs, starting, stopping and waiting for
//! them. Must not touch: the network (namespaces, links, rules) or what the
//! daemons do once started (`lb/`, `services/`, `flowlog/`).

pub mod confine;
pub mod keeper;
pub mod model_server;
pub mod process;

use crate::containers::ContainerError;
use crate::fabric::netns;
use crate::state::{lab_dir, log_dir, LabState, ProcessRecord, StateError};
use crate::topology::plan::{InstancePlan, Workload, MODEL_PORT};
use process::Reach;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// What went wrong starting, stopping or running a lab's processes.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Containers(#[from] ContainerError),
    #[error("{}: {source}", .path.display())]
    Dir { path: PathBuf, source: io::Error },
    /// `what` says which process, and on which node.
    #[error("{what}: {source}")]
    Spawn { what: String, source: io::Error },
    #[error("{role} on node {node} exited at start; see {}", .log.display())]
    Exited {
        role: String,
        node: String,
        log: PathBuf,
    },
    #[error("{role} on node {node} not ready after {secs} s; see {}", .log.display())]
    NotReady {
        role: String,
        node: String,
        secs: u64,
        log: PathBuf,
    },
    #[error("ALB listeners not bound: {0}")]
    AlbNotBound(Box<WorkloadError>),
    #[error("{0} is not an instance")]
    NotInstance(String),
    #[error("{0} is already running")]
    AlreadyRunning(String),
    #[error("unknown model {0:?} (v1, v2, model-v1, model-v2)")]
    UnknownModel(String),
    #[error("model server on port {port}: {source}")]
    ModelServer { port: u16, source: io::Error },
    #[error("keeper: {what}: {source}")]
    Keeper {
        what: &'static str,
        source: nix::Error,
    },
}

/// This program, to start one of its own subcommands as `what`.
fn own_exe(what: &str) -> Result<PathBuf, WorkloadError> {
    std::env::current_exe().map_err(|source| WorkloadError::Spawn {
        what: what.to_string(),
        source,
    })
}

/// How long `up`/`start` wait for servers to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A node's home: cwd and `$HOME` of its user data and workloads.
pub fn node_dir(lab: &str, node: &str) -> PathBuf {
    lab_dir(lab).join("nodes").join(node)
}

/// A node's console log (`vpcsim logs <node>`).
pub fn console_log(lab: &str, node: &str) -> PathBuf {
    log_dir(lab).join(format!("{node}.log"))
}

/// Starts the named instances' user data and workloads (instances a change
/// adds, or whose workload or user data it changes) and waits for them.
pub fn start_instances(state: &mut LabState, names: &[String]) -> Result<(), WorkloadError> {
    let waits = spawn_instances(state, names)?;
    wait_all(state, waits)
}

fn spawn_instances(
    state: &mut LabState,
    names: &[String],
) -> Result<Vec<(ProcessRecord, Check)>, WorkloadError> {
    let instances: Vec<InstancePlan> = state
        .plan
        .instances
        .iter()
        .filter(|i| names.contains(&i.name))
        .cloned()
        .collect();
    let mut waits = Vec::new();
    for inst in &instances {
        waits.extend(start_instance(state, inst)?);
    }
    // Once for the lab, not per instance (each save writes the whole state):
    // `down` finds unsaved processes by namespace anyway.
    state.save()?;
    Ok(waits)
}

fn wait_all(state: &LabState, waits: Vec<(ProcessRecord, Check)>) -> Result<(), WorkloadError> {
    for (rec, check) in waits {
        wait_for(&rec, &console_log(&state.plan.name, &rec.node), check)?;
    }
    Ok(())
}

/// The process role of the ALB daemon's keeper.
pub const ALB_ROLE: &str = "alb";

/// Starts the lab's ALB daemon when the lab has a load balancer, and waits
/// until its listeners are bound. It runs in the fabric's namespace, which
/// lives as long as the lab: load balancer nodes come and go with `apply`
/// (the daemon makes each node's sockets in that node's namespace).
pub fn start_alb(state: &mut LabState) -> Result<(), WorkloadError> {
    if state.plan.load_balancers.is_empty() {
        return Ok(());
    }
    let lab = state.plan.name.clone();
    let node = crate::topology::plan::FABRIC.to_string();
    let log = log_dir(&lab).join("alb.log");
    let what = format!("starting the ALB daemon in node {node}");
    let mut cmd = Command::new(own_exe(&what)?);
    cmd.args(["alb-daemon", "--lab", &lab]);
    let rec = process::spawn_detached(&lab, &node, ALB_ROLE, Reach::Hypervisor, cmd, &log)
        .map_err(|source| WorkloadError::Spawn { what, source })?;
    state.processes.push(rec.clone());
    state.save()?;
    wait_for(&rec, &log, || crate::lb::client::query_status(&lab).is_ok())
        .map_err(|e| WorkloadError::AlbNotBound(Box::new(e)))
}

/// Ends the lab's processes of role `role` (a daemon a change restarts or
/// retires) and forgets them.
pub fn stop_role(state: &mut LabState, role: &str) -> Result<(), WorkloadError> {
    let targets: Vec<(i32, u64)> = state
        .processes
        .iter()
        .filter(|p| p.role == role && p.is_alive())
        .map(|p| (p.pid, p.start_time))
        .collect();
    crate::state::terminate(&targets, Duration::from_secs(2));
    state.processes.retain(|p| p.role != role);
    state.save()?;
    Ok(())
}

/// Ends every process of `nodes` (nodes a change removes or replaces, or
/// instances whose workload it restarts), what they left running in their
/// sessions included, and forgets them.
pub fn retire_nodes(state: &mut LabState, nodes: &[String]) -> Result<(), WorkloadError> {
    let mut targets = Vec::new();
    for node in nodes {
        let ino = netns::inode(&state.plan.namespace(node));
        for p in state.processes.iter().filter(|p| &p.node == node) {
            targets.extend(session_members(p, ino));
        }
    }
    crate::state::terminate(&targets, Duration::from_secs(2));
    state.processes.retain(|p| !nodes.contains(&p.node));
    state.save()?;
    Ok(())
}

type Check = Box<dyn Fn() -> bool>;

/// Runs an instance's user data (once, like cloud-init) and starts its
/// built-in workload; returns the readiness checks to wait for. The
/// caller saves the state.
fn start_instance(
    state: &mut LabState,
    inst: &InstancePlan,
) -> Result<Vec<(ProcessRecord, Check)>, WorkloadError> {
    let lab = state.plan.name.clone();
    let node = state.plan.enis[inst.eni].node.clone();
    let home = node_dir(&lab, &node);
    std::fs::create_dir_all(&home).map_err(|source| WorkloadError::Dir {
        path: home.clone(),
        source,
    })?;
    let log = console_log(&lab, &node);
    let mut waits: Vec<(ProcessRecord, Check)> = Vec::new();
    if let Some(script) = &inst.user_data {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script])
            .current_dir(&home)
            .env("HOME", &home);
        let rec = process::spawn_detached(&lab, &node, "user-data", Reach::Instance, cmd, &log)
            .map_err(|source| WorkloadError::Spawn {
                what: format!("running user data on {node}"),
                source,
            })?;
        state.processes.push(rec);
    }
    if let Some(w) = inst.workload {
        let model = match w {
            Workload::ModelV1 => "v1",
            Workload::ModelV2 => "v2",
        };
        let what = format!("starting {} on {node}", w.name());
        let mut cmd = Command::new(own_exe(&what)?);
        cmd.args([
            "model-server",
            "--model",
            model,
            "--port",
            &MODEL_PORT.to_string(),
        ])
        .current_dir(&home)
        .env("HOME", &home);
        let rec = process::spawn_detached(&lab, &node, w.name(), Reach::Instance, cmd, &log)
            .map_err(|source| WorkloadError::Spawn { what, source })?;
        state.processes.push(rec.clone());
        let ns = state.plan.namespace(&node);
        waits.push((rec, Box::new(move || accepts(&ns, MODEL_PORT))));
    }
    Ok(waits)
}

/// Whether something accepts TCP on the node's own loopback (never leaves
/// the namespace).
fn accepts(ns: &str, port: u16) -> bool {
    netns::run_in(ns, || std::net::TcpStream::connect(("127.0.0.1", port)))
        .map(|r| r.is_ok())
        .unwrap_or(false)
}

fn wait_for(
    rec: &ProcessRecord,
    log: &std::path::Path,
    ready: impl Fn() -> bool,
) -> Result<(), WorkloadError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if ready() {
            return Ok(());
        }
        if !rec.is_alive() {
            return Err(WorkloadError::Exited {
                role: rec.role.clone(),
                node: rec.node.clone(),
                log: log.to_path_buf(),
            });
        }
        if Instant::now() > deadline {
            return Err(WorkloadError::NotReady {
                role: rec.role.clone(),
                node: rec.node.clone(),
                secs: READY_TIMEOUT.as_secs(),
                log: log.to_path_buf(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live processes of the session a recorded process leads (`spawn_detached`
/// starts each in its own session), in the node's namespace: what a user
/// data script left running in the background belongs to the node too.
/// Returns (pid, start time) pairs.
fn session_members(rec: &ProcessRecord, ns_inode: Option<u64>) -> Vec<(i32, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    if rec.is_alive() {
        out.push((rec.pid, rec.start_time));
    }
    let Some(ino) = ns_inode else {
        return out;
    };
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == rec.pid {
            continue;
        }
        let Some(stat) = crate::state::proc_stat(pid) else {
            continue;
        };
        let same_ns = std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .map(|m| m.ino())
            .ok()
            == Some(ino);
        if stat.session == rec.pid && same_ns {
            out.push((pid, stat.start_time));
        }
    }
    out
}

/// Stops a node's running processes (an instance failure): SIGTERM, then
/// SIGKILL after 2 s; only processes we started (recorded PID and start
/// time) and what they left running in their session.
pub fn stop_node(state: &mut LabState, node: &str) -> Result<(), WorkloadError> {
    if crate::containers::is_container(&state.plan, node) {
        return Ok(crate::containers::stop(&state.plan, node)?);
    }
    crate::containers::stop_hosted(&state.plan, node)?;
    let ino = netns::inode(&state.plan.namespace(node));
    let mut targets = Vec::new();
    for p in state
        .processes
        .iter_mut()
        .filter(|p| p.node == node && !p.stopped)
    {
        targets.extend(session_members(p, ino));
        p.stopped = true;
    }
    crate::state::terminate(&targets, Duration::from_secs(2));
    state.save()?;
    Ok(())
}

/// Starts a stopped instance again: user data and workload, like a reboot.
pub fn start_node(state: &mut LabState, node: &str) -> Result<(), WorkloadError> {
    if crate::containers::is_container(&state.plan, node) {
        return Ok(crate::containers::start(&state.plan, node)?);
    }
    let inst = state
        .plan
        .instances
        .iter()
        .find(|i| state.plan.enis[i.eni].node == node)
        .cloned()
        .ok_or_else(|| WorkloadError::NotInstance(node.into()))?;
    let ino = netns::inode(&state.plan.namespace(node));
    if state
        .processes
        .iter()
        .any(|p| p.node == node && !p.stopped && !session_members(p, ino).is_empty())
    {
        return Err(WorkloadError::AlreadyRunning(node.into()));
    }
    // The old records stay (stopped) as the node's history.
    let waits = start_instance(state, &inst)?;
    state.save()?;
    for (rec, check) in waits {
        wait_for(&rec, &console_log(&state.plan.name, node), check)?;
    }
    Ok(())
}
