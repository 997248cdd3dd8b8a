//! `vpcsim up FILE`: validate, plan, build, start workloads; on any failure
//! remove whatever was built, so a failed `up` leaves nothing behind.

use super::{require_root, usage};
use crate::cloudformation::stacks;
use crate::containers::ContainerError;
use crate::fabric::build;
use crate::firewall::{self, fabric as fabric_fw, nat_gateway};
use crate::state::{LabLock, LabState};
use crate::topology;
use crate::topology::plan::{Lab, FABRIC, INTERNET, S3};
use crate::{teardown, workloads};
use anyhow::Context;
use std::path::Path;
use std::time::Instant;

/// CloudFormation options of `up` (templates only).
#[derive(Default)]
pub struct TemplateOptions {
    pub name: Option<String>,
    pub region: Option<String>,
    pub params: Vec<String>,
    pub runs: Vec<String>,
}

pub fn run(
    files: &[std::path::PathBuf],
    json: bool,
    network_only: bool,
    cfn: &TemplateOptions,
) -> anyhow::Result<()> {
    let file = files
        .first()
        .ok_or_else(|| usage("`vpcsim up` needs a topology file or templates"))?
        .as_path();
    let read = Instant::now();
    let (plan, stacks) = if stacks::is_template(file) {
        let (plan, imported) = load_templates(files, cfn)?;
        (plan, Some(imported))
    } else {
        if files.len() > 1 || !cfn.params.is_empty() || !cfn.runs.is_empty() || cfn.name.is_some() {
            return Err(usage(format!(
                "{} is a topology file: several files, --param, --run and --name are for CloudFormation templates (.yaml, .yml, .json)",
                file.display()
            )));
        }
        (
            topology::load(file).map_err(|e| usage(e.to_string()))?,
            None,
        )
    };
    let templates_read = read.elapsed();
    require_root("up")?;
    preflight()?;
    let _lock = LabLock::acquire(&plan.name)?;
    if LabState::load(&plan.name)?.is_some() {
        return Err(usage(format!(
            "lab `{}` is already up: `vpcsim down {}` first (or pick another `name` in {})",
            plan.name,
            plan.name,
            file.display()
        )));
    }
    let leftovers: Vec<String> = plan
        .node_names()
        .iter()
        .map(|n| plan.namespace(n))
        .filter(|ns| crate::fabric::netns::exists(ns))
        .collect();
    if !leftovers.is_empty() {
        return Err(usage(format!(
            "namespaces of lab `{}` exist without state ({}): run `vpcsim down {}` first",
            plan.name,
            leftovers.join(", "),
            plan.name
        )));
    }
    // Docker answers and images exist before anything is built.
    crate::containers::preflight(&plan).map_err(preflight_error)?;
    let started = Instant::now();
    let mut state = LabState {
        plan,
        topology: std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()),
        ready: false,
        processes: vec![],
    };
    // Written before anything exists: `down` after a crash reads it.
    state.save()?;
    if let Err(e) = build_lab(&mut state, network_only) {
        let _ = teardown::teardown(&state.plan.name, Some(&state.plan));
        return Err(e.context(format!(
            "building lab `{}` (nothing was left behind)",
            state.plan.name
        )));
    }
    state.ready = true;
    state.save()?;
    let elapsed = started.elapsed();
    if let Some(imported) = &stacks {
        save_stacks(&state.plan.name, &imported.stacks)?;
        for w in &imported.warnings {
            eprintln!("warning: {w}");
        }
    }
    if json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&super::status::summary(&state))?
        );
    } else {
        // Templates: how long reading, evaluating and validating them took.
        let templates = match &stacks {
            Some(s) => format!(
                ", {} stacks read in {:.1} ms",
                s.stacks.len(),
                templates_read.as_secs_f64() * 1000.0
            ),
            None => String::new(),
        };
        crate::outln!(
            "lab `{}` is up in {:.0} ms ({} namespaces{templates})\n",
            state.plan.name,
            elapsed.as_secs_f64() * 1000.0,
            state.plan.node_names().len()
        );
        crate::out!("{}", super::status::render_table(&state));
        crate::out!("{}", super::status::render_stacks(&state.plan.name));
    }
    Ok(())
}

/// Templates -> stacks -> the topology -> the same validation as TOML.
fn load_templates(
    files: &[std::path::PathBuf],
    cfn: &TemplateOptions,
) -> anyhow::Result<(Lab, stacks::Imported)> {
    let opts = stacks::Options {
        name: cfn.name.clone(),
        region: cfn.region.clone().unwrap_or_else(|| "us-east-1".into()),
        params: cfn.params.clone(),
        runs: cfn.runs.clone(),
    };
    let mut imported = stacks::load(files, &opts).map_err(|e| usage(e.to_string()))?;
    let base = files[0].parent().unwrap_or(Path::new("."));
    let plan = crate::topology::validate::validate(&imported.topology, base).map_err(|diags| {
        let mut msg = format!(
            "{} error{} in the lab the templates describe, nothing was built\n",
            diags.len(),
            if diags.len() == 1 { "" } else { "s" }
        );
        for d in diags {
            msg.push_str(&format!("{}: {}\n    fix: {}\n", d.path, d.message, d.hint));
        }
        usage(msg)
    })?;
    imported.finish(&plan);
    Ok((plan, imported))
}

/// Where `status` finds a template lab's stacks, outputs and exports.
pub fn stacks_file(lab: &str) -> std::path::PathBuf {
    crate::state::lab_dir(lab).join("stacks.json")
}

fn save_stacks(lab: &str, records: &[stacks::StackRecord]) -> anyhow::Result<()> {
    let f = stacks_file(lab);
    std::fs::write(&f, serde_json::to_string_pretty(records)?)
        .with_context(|| f.display().to_string())
}

/// Missing system pieces are the user's to fix: exit 2 with the fix.
fn preflight() -> anyhow::Result<()> {
    if which("nft").is_none() {
        return Err(usage(
            "nft (nftables) is not installed: `apt-get install nftables` (scripts/setup installs everything)",
        ));
    }
    if !Path::new("/proc/sys/net/bridge").exists()
        && !Path::new("/sys/module/br_netfilter").exists()
    {
        tracing::warn!(
            "br_netfilter not visible: security groups inside one subnet may not be enforced"
        );
    }
    Ok(())
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.is_file())
    })
}

/// Logs how long each stage of `up` took (`VPCSIM_LOG=vpcsim::timing=debug`):
/// where a big lab's time goes.
struct Stages(Instant);

impl Stages {
    fn done(&mut self, stage: &str) {
        tracing::debug!(target: "vpcsim::timing", "{stage}: {:.1} ms", self.0.elapsed().as_secs_f64() * 1e3);
        self.0 = Instant::now();
    }
}

fn build_lab(state: &mut LabState, network_only: bool) -> anyhow::Result<()> {
    let mut stages = Stages(Instant::now());
    let lab = state.plan.clone();
    // Rendered before anything is built: a rendering bug fails here, early.
    let mut rulesets = vec![(lab.fabric_ns(), fabric_fw::render(&lab).to_nft())];
    for nat in &lab.nat_gateways {
        let eni = &lab.enis[nat.eni];
        rulesets.push((
            lab.namespace(&eni.node),
            nat_gateway::render(&lab, eni).to_nft(),
        ));
    }
    stages.done("render rulesets");
    // Before the first process: every one joins it (`down` ends them all).
    crate::cgroup::create(&lab.name)?;
    build::create_namespaces(&lab).context("creating namespaces")?;
    stages.done("namespaces");
    crash_point("namespaces");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(build::configure(&lab))
        .context("configuring links and routes")?;
    stages.done("links, addresses, routes");
    crash_point("links");
    let pending = rulesets
        .iter()
        .map(|(ns, rules)| firewall::spawn_apply(ns, rules))
        .collect::<Result<Vec<_>, _>>()?;
    for p in pending {
        p.wait()?;
    }
    stages.done("nftables");
    crash_point("firewall");
    write_etc(&lab)?;
    stages.done("etc files");
    // Before any workload sends a packet, so flow logs see it all.
    crate::flowlog::start(state)?;
    // The VPC's DNS and S3 are part of the network, up even with --network-only.
    crate::services::start(state)?;
    stages.done("flow logs, DNS, S3");
    if !network_only {
        workloads::start_all(state)?;
        stages.done("workloads");
    }
    crash_point("workloads");
    Ok(())
}

/// Crash injection for the teardown tests: `VPCSIM_CRASH_AT=<stage>` makes
/// `up` SIGKILL itself after that stage, exactly like `kill -9` would.
fn crash_point(stage: &str) {
    if std::env::var("VPCSIM_CRASH_AT").is_ok_and(|s| s == stage) {
        // SAFETY: raising a signal on ourselves.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}

/// A node's hostname: EC2's for an ENI (`ip-10-0-20-16`, what a student's
/// shell prompt shows on AWS), the node's name for `fabric`, `internet`, `s3`.
pub fn hostname(lab: &Lab, node: &str) -> String {
    match lab.eni_by_node(node) {
        Some(eni) => ec2_hostname(eni.private_ip),
        None => node.to_string(),
    }
}

fn ec2_hostname(ip: std::net::Ipv4Addr) -> String {
    let o = ip.octets();
    format!("ip-{}-{}-{}-{}", o[0], o[1], o[2], o[3])
}

/// The nodes' /etc/hosts and resolv.conf, bind-mounted over /etc by
/// `vpcsim exec` and for workloads: instance names and the load balancers'
/// DNS names resolve inside the lab. One copy for the lab; a node gets its
/// own only where it differs (the internet's resolver; nodes without an
/// ENI, whose own name is not in the lab's list).
fn write_etc(lab: &Lab) -> anyhow::Result<()> {
    let mut hosts = String::from("127.0.0.1\tlocalhost\n");
    for eni in &lab.enis {
        let host = ec2_hostname(eni.private_ip);
        hosts.push_str(&format!(
            "{}\t{} {host}.ec2.internal {host}\n",
            eni.private_ip, eni.node
        ));
    }
    for lb in &lab.load_balancers {
        for &n in &lb.nodes {
            if let Some(ip) = lab.enis[n].public_ip {
                hosts.push_str(&format!("{ip}\t{}\n", lb.dns_name));
            }
        }
    }
    let dir = workloads::process::lab_etc_dir(&lab.name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("hosts"), &hosts)?;
    let resolv = crate::services::resolv_conf(lab, FABRIC);
    std::fs::write(dir.join("resolv.conf"), &resolv)?;
    std::fs::write(
        dir.join("environment"),
        crate::services::node_environment(lab),
    )?;
    // Each node's hostname (`ip-10-0-20-16`): a line per node, in the lab's
    // list above for ENIs.
    let named = lab
        .enis
        .iter()
        .map(|e| (e.node.clone(), ec2_hostname(e.private_ip)));
    let others = [FABRIC, INTERNET, S3].map(|n| (n.to_string(), n.to_string()));
    for (node, host) in others.into_iter().chain(named) {
        let dir = workloads::process::etc_dir(&lab.name, &node);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("hostname"), format!("{host}\n"))?;
    }
    for node in [FABRIC, INTERNET, S3] {
        if !lab.node_names().iter().any(|n| n == node) {
            continue;
        }
        let dir = workloads::process::etc_dir(&lab.name, node);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("hosts"), format!("{hosts}127.0.1.1\t{node}\n"))?;
        let own = crate::services::resolv_conf(lab, node);
        if own != resolv {
            std::fs::write(dir.join("resolv.conf"), own)?;
        }
    }
    Ok(())
}

/// What the user must fix before containers can start (no engine, no
/// image) is bad input, exit code 2; anything else is a failure.
fn preflight_error(e: ContainerError) -> anyhow::Error {
    match e {
        ContainerError::Unreachable { .. } | ContainerError::ImageMissing { .. } => {
            usage(e.to_string())
        }
        other => other.into(),
    }
}
