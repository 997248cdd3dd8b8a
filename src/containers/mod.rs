//! Docker containers on lab instances (`[[container]]`), driven through the
//! engine's API (bollard). vpcsim creates each one with no network
//! (`network_mode: none`) and wires it into its host instance's namespace
//! itself ([`attach`]), the way dockerd's bridge does on a VM.
//!
//! Containers carry the labels `vpcsim.lab` and `vpcsim.node`: teardown
//! finds them by label, so `down` removes them even when `up` was killed
//! before it could record anything.
//!
//! Owns: the lab's containers and images through the engine's API, and their wiring
//! inside the host instance. Must not touch: the fabric (its bridges, routes and
//! nftables) or the root namespace (no `docker0`, no port published there).

mod attach;
pub mod image;

use crate::fabric::netns::{self, NetnsError};
use crate::firewall::FirewallError;
use crate::state::lab_dir;
use crate::topology::plan::ContainerPlan;
use crate::topology::plan::{namespace, Lab};
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, HostConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const LAB_LABEL: &str = "vpcsim.lab";
pub const NODE_LABEL: &str = "vpcsim.node";
/// Seconds `stop` gives the container after SIGTERM (Docker's default).
const STOP_TIMEOUT_S: i32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(
        "this topology has containers but no Docker engine answers at {endpoint} ({source}); \
         start Docker (`systemctl start docker`, or `dockerd &`) or point DOCKER_HOST at it. \
         Nothing was built"
    )]
    Unreachable {
        endpoint: String,
        source: Box<DockerError>,
    },
    #[error("docker: {what}: {source}")]
    Docker {
        what: String,
        source: Box<DockerError>,
    },
    #[error(
        "image `{image}` is not on this machine and vpcsim never pulls: build or load it first \
         (`docker build -t {image} DIR`, `docker load -i FILE`); images vpcsim builds itself: {shipped}"
    )]
    ImageMissing { image: String, shipped: String },
    #[error("building image {image}: {message}")]
    Build { image: String, message: String },
    #[error("attaching a container: {what}: {message}")]
    Attach { what: String, message: String },
    #[error("{ns}: {what}: {source}")]
    Netlink {
        ns: String,
        what: String,
        source: Box<rtnetlink::Error>,
    },
    #[error("container {name} of lab {lab}: {message}")]
    State {
        lab: String,
        name: String,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
}

impl ContainerError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        ContainerError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    fn docker(what: impl Into<String>, source: DockerError) -> Self {
        ContainerError::Docker {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

fn not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Docker's name for a lab's container.
pub fn docker_name(lab: &str, node: &str) -> String {
    namespace(lab, node)
}

fn endpoint() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// The local engine, at the newest API version both sides speak (Docker
/// 20.10 stops at 1.41).
async fn connect(timeout: Duration) -> Result<Docker, ContainerError> {
    let unreachable = |source| ContainerError::Unreachable {
        endpoint: endpoint(),
        source: Box::new(source),
    };
    let docker = Docker::connect_with_local_defaults()
        .map_err(unreachable)?
        .with_timeout(timeout);
    docker.negotiate_version().await.map_err(unreachable)
}

fn runtime() -> Result<tokio::runtime::Runtime, ContainerError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ContainerError::io(Path::new("tokio runtime"), e))
}

fn block_on<T>(
    f: impl std::future::Future<Output = Result<T, ContainerError>>,
) -> Result<T, ContainerError> {
    runtime()?.block_on(f)
}

/// Before `up`, `apply` or `deploy` changes anything: the engine answers
/// and every image is on this machine (shipped ones are built now). Labs
/// without containers never touch Docker.
pub fn preflight(lab: &Lab) -> Result<(), ContainerError> {
    if lab.containers.is_empty() {
        return Ok(());
    }
    block_on(async {
        let docker = connect(Duration::from_secs(10)).await?;
        let mut images: Vec<&str> = lab.containers.iter().map(|c| c.image.as_str()).collect();
        images.sort_unstable();
        images.dedup();
        for img in images {
            image::ensure(&docker, img).await?;
        }
        Ok(())
    })
}

/// Before `up` builds a lab: containers a failed `down` left for this lab
/// name go. Never for a running lab (`apply`, `deploy`): those are its own.
pub fn remove_leftovers(lab: &Lab) -> Result<(), ContainerError> {
    if lab.containers.is_empty() {
        return Ok(());
    }
    block_on(async {
        let docker = connect(Duration::from_secs(10)).await?;
        remove_labelled(&docker, &lab.name).await.map(|_| ())
    })
}

/// What vpcsim knows about a lab's container between commands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Record {
    id: String,
    /// PID of the container's init when vpcsim attached it; another PID
    /// means Docker started it again without its network.
    attached_pid: i64,
    /// Stopped by `vpcsim stop`.
    stopped: bool,
}

fn records_file(lab: &str) -> PathBuf {
    lab_dir(lab).join("containers.json")
}

fn load_records(lab: &str) -> HashMap<String, Record> {
    std::fs::read(records_file(lab))
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_default()
}

fn save_records(lab: &str, records: &HashMap<String, Record>) -> Result<(), ContainerError> {
    let path = records_file(lab);
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let text = serde_json::to_vec_pretty(records).expect("records serialize");
    std::fs::write(&tmp, text).map_err(|e| ContainerError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| ContainerError::io(&path, e))
}

fn plan_of<'a>(lab: &'a Lab, node: &str) -> Option<&'a ContainerPlan> {
    lab.containers.iter().find(|c| c.name == node)
}

/// Whether `node` names one of the lab's containers.
pub fn is_container(lab: &Lab, node: &str) -> bool {
    plan_of(lab, node).is_some()
}

/// Whether a container must be recreated to become `b` (Docker changes
/// none of these in place).
pub fn must_recreate(a: &ContainerPlan, b: &ContainerPlan) -> bool {
    a.host != b.host
        || a.image != b.image
        || a.ports != b.ports
        || a.env != b.env
        || a.ip != b.ip
        || a.bridge != b.bridge
}

/// Creates, starts and attaches every container of the lab (part of `up`).
pub fn start_all(lab: &Lab) -> Result<(), ContainerError> {
    start_some(lab, &lab.containers.iter().collect::<Vec<_>>())
}

/// A change to a running lab (`apply`): the containers `new` no longer has,
/// or has differently, or whose host instance was replaced (`hosts_gone`),
/// are removed (`docker rm -f`); new and changed ones are created and
/// started as `up` does. Returns how many it touched.
pub fn change(old: &Lab, new: &Lab, hosts_gone: &[String]) -> Result<usize, ContainerError> {
    let stays = |a: &ContainerPlan, b: &ContainerPlan| {
        !must_recreate(a, b) && !hosts_gone.contains(&a.host)
    };
    let gone: Vec<&ContainerPlan> = old
        .containers
        .iter()
        .filter(|c| plan_of(new, &c.name).is_none_or(|n| !stays(c, n)))
        .collect();
    let fresh: Vec<&ContainerPlan> = new
        .containers
        .iter()
        .filter(|c| plan_of(old, &c.name).is_none_or(|o| !stays(o, c)))
        .collect();
    if !gone.is_empty() {
        block_on(async {
            let docker = connect(Duration::from_secs(30)).await?;
            let mut records = load_records(&old.name);
            for c in &gone {
                if let Some(rec) = records.remove(&c.name) {
                    let options = RemoveContainerOptionsBuilder::default().force(true).build();
                    match docker.remove_container(&rec.id, Some(options)).await {
                        Ok(()) => {}
                        Err(e) if not_found(&e) => {}
                        Err(e) => {
                            return Err(ContainerError::docker(format!("remove {}", c.name), e))
                        }
                    }
                }
                save_records(&old.name, &records)?;
                // A host that is gone took the container's link with it.
                let host_stays =
                    !hosts_gone.contains(&c.host) && new.eni_by_node(&c.host).is_some();
                if host_stays && netns::exists(&new.namespace(&c.host)) {
                    let _ = attach::detach(old, c).await;
                    publish(new, &c.host, &records)?;
                }
            }
            Ok(())
        })?;
    }
    start_some(new, &fresh)?;
    Ok(gone.len() + fresh.len())
}

fn start_some(lab: &Lab, containers: &[&ContainerPlan]) -> Result<(), ContainerError> {
    if containers.is_empty() {
        return Ok(());
    }
    block_on(async {
        let docker = connect(Duration::from_secs(30)).await?;
        let mut records = load_records(&lab.name);
        for c in containers {
            let id = create(&docker, lab, c).await?;
            records.insert(
                c.name.clone(),
                Record {
                    id: id.clone(),
                    ..Record::default()
                },
            );
            // Recorded before it runs: a crash from here on leaves a known container.
            save_records(&lab.name, &records)?;
            docker
                .start_container(
                    &id,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await
                .map_err(|e| ContainerError::docker(format!("start {}", c.name), e))?;
            connect_running(&docker, lab, c, &id, &mut records).await?;
        }
        Ok(())
    })
}

async fn create(docker: &Docker, lab: &Lab, c: &ContainerPlan) -> Result<String, ContainerError> {
    let name = docker_name(&lab.name, &c.name);
    let body = ContainerCreateBody {
        image: Some(c.image.clone()),
        env: Some(c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(HashMap::from([
            (LAB_LABEL.to_string(), lab.name.clone()),
            (NODE_LABEL.to_string(), c.name.clone()),
        ])),
        host_config: Some(HostConfig {
            // vpcsim wires the network itself, inside the host instance.
            network_mode: Some("none".into()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            // An init as PID 1 passes SIGTERM on: `stop` is quick.
            init: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| ContainerError::docker(format!("create {name} from {}", c.image), e))?;
    Ok(created.id)
}

/// Attaches a running container and publishes its ports, recording it. If
/// any step fails it is killed and detached again: never half-attached.
async fn connect_running(
    docker: &Docker,
    lab: &Lab,
    c: &ContainerPlan,
    id: &str,
    records: &mut HashMap<String, Record>,
) -> Result<(), ContainerError> {
    let attached = async {
        let pid = running_pid(docker, id)
            .await?
            .ok_or_else(|| ContainerError::State {
                lab: lab.name.clone(),
                name: c.name.clone(),
                message: format!("exited right after starting; see `vpcsim logs {}`", c.name),
            })?;
        attach::attach(lab, c, pid).await?;
        records.insert(
            c.name.clone(),
            Record {
                id: id.to_string(),
                attached_pid: pid,
                stopped: false,
            },
        );
        publish(lab, &c.host, records)
    }
    .await;
    if attached.is_err() {
        let _ = docker
            .kill_container(id, None::<bollard::query_parameters::KillContainerOptions>)
            .await;
        let _ = attach::detach(lab, c).await;
        if let Some(r) = records.get_mut(&c.name) {
            r.attached_pid = 0;
        }
    }
    save_records(&lab.name, records)?;
    attached
}

/// Loads the host's DNAT rules for the containers running attached on it:
/// like dockerd, a stopped container publishes nothing, so its host port
/// refuses connections instead of leading nowhere.
fn publish(lab: &Lab, host: &str, records: &HashMap<String, Record>) -> Result<(), ContainerError> {
    let live: Vec<&ContainerPlan> = lab
        .containers
        .iter()
        .filter(|c| c.host == host)
        .filter(|c| {
            records
                .get(&c.name)
                .is_some_and(|r| !r.stopped && r.attached_pid > 0)
        })
        .collect();
    attach::apply_rules(lab, host, &live)
}

async fn running_pid(docker: &Docker, id: &str) -> Result<Option<i64>, ContainerError> {
    let info = docker
        .inspect_container(
            id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .map_err(|e| ContainerError::docker(format!("inspect {id}"), e))?;
    let state = info.state.unwrap_or_default();
    Ok(match (state.running, state.pid) {
        (Some(true), Some(pid)) if pid > 0 => Some(pid),
        _ => None,
    })
}

fn record_of(lab: &Lab, node: &str) -> Result<(HashMap<String, Record>, Record), ContainerError> {
    let records = load_records(&lab.name);
    let rec = records
        .get(node)
        .cloned()
        .ok_or_else(|| ContainerError::State {
            lab: lab.name.clone(),
            name: node.into(),
            message: "was never created (was the lab brought up with --network-only?)".into(),
        })?;
    Ok((records, rec))
}

/// A host instance stopping takes its running containers down with it; with
/// restart policy `no`, its `start` does not bring them back (as on a VM).
pub fn stop_hosted(lab: &Lab, host: &str) -> Result<(), ContainerError> {
    let records = load_records(&lab.name);
    for c in lab.containers.iter().filter(|c| c.host == host) {
        if records.get(&c.name).is_some_and(|r| !r.stopped) {
            stop(lab, &c.name)?;
        }
    }
    Ok(())
}

/// `vpcsim stop NODE`: `docker stop` (SIGTERM, SIGKILL after 10 s). Its
/// network namespace goes with it, and with it the veth.
pub fn stop(lab: &Lab, node: &str) -> Result<(), ContainerError> {
    let (mut records, rec) = record_of(lab, node)?;
    block_on(async {
        let docker = connect(Duration::from_secs(STOP_TIMEOUT_S as u64 + 20)).await?;
        let options = StopContainerOptionsBuilder::default()
            .t(STOP_TIMEOUT_S)
            .build();
        match docker.stop_container(&rec.id, Some(options)).await {
            // 304: already stopped.
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(e) => return Err(ContainerError::docker(format!("stop {node}"), e)),
        }
        records.insert(
            node.into(),
            Record {
                stopped: true,
                ..rec
            },
        );
        save_records(&lab.name, &records)?;
        let c = plan_of(lab, node).expect("callers check is_container");
        publish(lab, &c.host, &records)?;
        attach::detach(lab, c).await
    })
}

/// `vpcsim start NODE`: starts the stopped container and attaches its new
/// network namespace; a running container that lost its network (Docker
/// restarted it) is attached again.
pub fn start(lab: &Lab, node: &str) -> Result<(), ContainerError> {
    let c = plan_of(lab, node).expect("callers check is_container");
    let (mut records, rec) = record_of(lab, node)?;
    block_on(async {
        let docker = connect(Duration::from_secs(30)).await?;
        match running_pid(&docker, &rec.id).await? {
            Some(pid) if pid == rec.attached_pid => Err(ContainerError::State {
                lab: lab.name.clone(),
                name: node.into(),
                message: "is already running".into(),
            }),
            // Running without its network: Docker started it again.
            Some(_) => connect_running(&docker, lab, c, &rec.id, &mut records).await,
            None => {
                docker
                    .start_container(
                        &rec.id,
                        None::<bollard::query_parameters::StartContainerOptions>,
                    )
                    .await
                    .map_err(|e| ContainerError::docker(format!("start {node}"), e))?;
                connect_running(&docker, lab, c, &rec.id, &mut records).await
            }
        }
    })
}

/// Removes (forced) every container labelled with the lab. With no engine
/// reachable this returns at once: an error only if the lab's plan has
/// containers (without a plan there is nothing to say they exist).
pub fn remove_lab(lab: &str, plan: Option<&Lab>) -> Result<usize, ContainerError> {
    let expected = plan.is_some_and(|p| !p.containers.is_empty());
    block_on(async {
        let docker = match connect(Duration::from_secs(30)).await {
            Ok(d) => d,
            Err(_) if !expected => return Ok(0),
            Err(e) => return Err(e),
        };
        remove_labelled(&docker, lab).await
    })
}

async fn remove_labelled(docker: &Docker, lab: &str) -> Result<usize, ContainerError> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LAB_LABEL}={lab}")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let found = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| ContainerError::docker("list containers", e))?;
    let mut removed = 0;
    for c in found {
        let Some(id) = c.id else { continue };
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match docker.remove_container(&id, Some(options)).await {
            Ok(()) => removed += 1,
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(ContainerError::docker(format!("remove {id}"), e)),
        }
    }
    Ok(removed)
}

/// Teardown's step: containers go first. A failure is reported, not fatal:
/// the rest of the lab is still removed, and the labels let a later `down`
/// finish the job.
pub fn teardown(lab: &str, plan: Option<&Lab>) {
    match remove_lab(lab, plan) {
        Ok(_) => {}
        Err(e) => eprintln!(
            "warning: containers of lab {lab} not removed: {e}; once Docker answers, `vpcsim down {lab}` removes them"
        ),
    }
}

/// `vpcsim logs NODE [-f]`: the container's stdout and stderr.
pub fn logs(lab: &Lab, node: &str, follow: bool) -> Result<(), ContainerError> {
    use std::io::Write;
    let name = docker_name(&lab.name, node);
    block_on(async {
        // Following runs until interrupted: a year is "no deadline".
        let timeout = if follow { 365 * 86_400 } else { 30 };
        let docker = connect(Duration::from_secs(timeout)).await?;
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .build();
        let mut stream = docker.logs(&name, Some(options));
        let mut out = std::io::stdout().lock();
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| ContainerError::docker(format!("logs {node}"), e))?;
            let _ = out.write_all(&chunk.into_bytes());
            if follow {
                let _ = out.flush();
            }
        }
        Ok(())
    })
}

/// A container as `vpcsim status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerStatus {
    pub name: String,
    pub host: String,
    pub image: String,
    pub docker_name: String,
    pub ip: String,
    /// `80->8000/tcp`, …
    pub ports: Vec<String>,
    /// Docker's state (`running`, `exited`, …), `missing`, or `unknown`
    /// when the engine does not answer.
    pub state: String,
    /// Running with the network vpcsim gave it (a container Docker started
    /// again on its own has none: its target is down until `vpcsim start`).
    pub attached: bool,
    /// Stopped by `vpcsim stop`.
    pub stopped: bool,
}

/// Live status of every container of the lab (asks the engine).
pub fn status(lab: &Lab) -> Vec<ContainerStatus> {
    if lab.containers.is_empty() {
        return vec![];
    }
    let records = load_records(&lab.name);
    let live: HashMap<String, (String, Option<i64>)> = block_on(async {
        let docker = connect(Duration::from_secs(5)).await?;
        let mut live = HashMap::new();
        for c in &lab.containers {
            let name = docker_name(&lab.name, &c.name);
            let entry = match docker
                .inspect_container(
                    &name,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await
            {
                Ok(info) => {
                    let st = info.state.unwrap_or_default();
                    let state = st
                        .status
                        .unwrap_or(ContainerStateStatusEnum::EMPTY)
                        .to_string();
                    (state, st.pid.filter(|_| st.running == Some(true)))
                }
                Err(e) if not_found(&e) => ("missing".to_string(), None),
                Err(e) => return Err(ContainerError::docker(format!("inspect {name}"), e)),
            };
            live.insert(c.name.clone(), entry);
        }
        Ok(live)
    })
    .unwrap_or_default();
    lab.containers
        .iter()
        .map(|c| {
            let rec = records.get(&c.name).cloned().unwrap_or_default();
            let (state, pid) = live
                .get(&c.name)
                .cloned()
                .unwrap_or(("unknown".into(), None));
            ContainerStatus {
                name: c.name.clone(),
                host: c.host.clone(),
                image: c.image.clone(),
                docker_name: docker_name(&lab.name, &c.name),
                ip: c.ip.to_string(),
                ports: c.ports.iter().map(|p| p.to_string()).collect(),
                state,
                attached: pid.is_some() && pid == Some(rec.attached_pid),
                stopped: rec.stopped,
            }
        })
        .collect()
}

/// The `status` table's container section (empty without containers).
pub fn render_table(containers: &[ContainerStatus]) -> String {
    let mut out = String::new();
    if containers.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "\n{:<14} {:<14} {:<22} {:<12} {:<13} PORTS\n",
        "CONTAINER", "HOST", "IMAGE", "STATE", "IP"
    ));
    for c in containers {
        let state = match (c.state.as_str(), c.attached, c.stopped) {
            ("running", false, _) => "running, no network: `vpcsim start` attaches it".to_string(),
            ("exited", _, true) => "stopped".to_string(),
            (s, _, _) => s.to_string(),
        };
        out.push_str(&format!(
            "{:<14} {:<14} {:<22} {:<12} {:<13} {}\n",
            c.name,
            c.host,
            c.image,
            state,
            c.ip,
            c.ports.join(", ")
        ));
    }
    out
}
