//! `vpcsim up FILE`: validate, plan, build, start workloads; on any failure
//! remove whatever was built, so a failed `up` leaves nothing behind.

use super::{require_root, usage};
use crate::cloudformation::stacks;
use crate::containers::ContainerError;
use crate::state::{LabLock, LabState};
use crate::teardown;
use crate::topology;
use crate::topology::plan::Lab;
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
    let (plan, mut stacks) = if stacks::is_template(file) {
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
    crate::containers::remove_leftovers(&plan).map_err(preflight_error)?;
    let started = Instant::now();
    let mut state = LabState {
        plan,
        topology: std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf()),
        ready: false,
        processes: vec![],
        changing_to: None,
        network_only,
    };
    // Written before anything exists: `down` after a crash reads it.
    state.save()?;
    if let Err(e) = crate::apply::build(&mut state) {
        let _ = teardown::teardown(&state.plan.name, Some(&state.plan));
        return Err(anyhow::Error::new(e).context(format!(
            "building lab `{}` (nothing was left behind)",
            state.plan.name
        )));
    }
    state.ready = true;
    state.save()?;
    let elapsed = started.elapsed();
    if let Some(imported) = &mut stacks {
        save_stacks(&state.plan.name, &mut imported.stacks)?;
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
pub fn load_templates(
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
    let plan = validate_templates(&imported, base, None)?;
    imported.finish(&plan);
    if let Some(first) = imported.stacks.first_mut() {
        first.runs = cfn.runs.clone();
    }
    Ok((plan, imported))
}

/// The lab the templates describe, through the TOML's validation; pinned to
/// what a running lab (`previous`) allocated when a stack is added to it.
pub fn validate_templates(
    imported: &stacks::Imported,
    base: &Path,
    previous: Option<&Lab>,
) -> anyhow::Result<Lab> {
    crate::topology::validate::validate_with(&imported.topology, base, previous).map_err(|diags| {
        let mut msg = format!(
            "{} error{} in the lab the templates describe, nothing was built\n",
            diags.len(),
            if diags.len() == 1 { "" } else { "s" }
        );
        for d in diags {
            msg.push_str(&format!("{}: {}\n    fix: {}\n", d.path, d.message, d.hint));
        }
        usage(msg)
    })
}

/// Where `status` finds a template lab's stacks, outputs and exports.
pub fn stacks_file(lab: &str) -> std::path::PathBuf {
    crate::state::lab_dir(lab).join("stacks.json")
}

/// Writes the stack records; a stack deployed now gets a copy of its
/// template in the lab's state, which `deploy` reads again later.
pub fn save_stacks(lab: &str, records: &mut [stacks::StackRecord]) -> anyhow::Result<()> {
    let dir = crate::state::lab_dir(lab).join("templates");
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    for r in records.iter_mut().filter(|r| r.template.is_none()) {
        let ext = r
            .file
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("yaml");
        let copy = dir.join(format!("{}.{ext}", r.name));
        std::fs::copy(&r.file, &copy)
            .with_context(|| format!("{} -> {}", r.file.display(), copy.display()))?;
        r.template = Some(copy);
    }
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

/// What the user must fix before containers can start (no engine, no
/// image) is bad input, exit code 2; anything else is a failure.
pub(super) fn preflight_error(e: ContainerError) -> anyhow::Error {
    match e {
        ContainerError::Unreachable { .. } | ContainerError::ImageMissing { .. } => {
            usage(e.to_string())
        }
        other => other.into(),
    }
}
