//! `vpcsim deploy --lab LAB TEMPLATE [--param …] [--run …]`: one more
//! CloudFormation stack onto a running lab brought up from templates, the
//! way `aws cloudformation deploy` is used stack by stack. The stacks the lab
//! has (as deployed, with the parameters they were given) and the new one are
//! read again in order, so `Fn::ImportValue` and `--param @STACK.NAME` see
//! the earlier stacks; the lab that results is validated pinned to the
//! running one and carried out by the apply core. A template named like an
//! existing stack updates it.

use super::{require_root, up, usage};
use crate::apply::{self, ApplyError};
use crate::cloudformation::{import, stacks};
use crate::state::LabLock;
use std::path::Path;
use std::time::Instant;

pub struct DeployArgs<'a> {
    pub lab: Option<&'a str>,
    pub template: &'a Path,
    pub params: &'a [String],
    pub runs: &'a [String],
    pub dry_run: bool,
    pub json: bool,
}

pub fn run(a: &DeployArgs) -> anyhow::Result<()> {
    if !stacks::is_template(a.template) {
        return Err(usage(format!(
            "{} is not a CloudFormation template (.yaml, .yml, .json): a topology file changes its lab with `vpcsim apply`",
            a.template.display()
        )));
    }
    let lab = super::resolve_lab(a.lab)?.plan.name;
    require_root("deploy")?;
    let _lock = LabLock::acquire(&lab)?;
    let mut state = super::apply::running(&lab, a.template)?;
    let mut records = super::status::stacks_of(&lab);
    let Some(first) = records.first() else {
        return Err(usage(format!(
            "lab `{lab}` was not brought up from templates: `deploy` adds a stack to a lab from `vpcsim up TEMPLATE…` (a TOML lab changes with `vpcsim apply`)"
        )));
    };
    // Relative paths (a bucket's seed_dir) are the first stack's, as at `up`.
    let base = first.file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let stem = a
        .template
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("stack");
    let name = import::kebab(stem, 64);
    let updated = records.iter().position(|r| r.name == name);

    // The earlier stacks as deployed, with what they were given; then this one.
    let mut files = vec![];
    let mut params = vec![];
    let mut runs = vec![];
    for r in records.iter().filter(|r| r.name != name) {
        files.push(r.template.clone().ok_or_else(|| {
            usage(format!(
                "stack `{}` of lab `{lab}` has no deployed copy (a lab from an older vpcsim): bring the lab up again",
                r.name
            ))
        })?);
        params.extend(
            r.parameters
                .iter()
                .map(|(k, v)| format!("{}.{k}={v}", r.name)),
        );
        runs.extend(r.runs.iter().cloned());
    }
    // An update keeps the stack's place in the order.
    let at = updated.unwrap_or(files.len());
    files.insert(at, a.template.to_path_buf());
    for p in a.params {
        match p.split_once('=').map(|(k, _)| k.split_once('.')) {
            Some(Some((stack, _))) if stack != name => {
                return Err(usage(format!(
                    "--param {p}: `deploy` gives parameters to the stack it deploys (`{name}`); write --param KEY=VALUE"
                )))
            }
            Some(Some(_)) => params.push(p.clone()),
            _ => params.push(format!("{name}.{p}")),
        }
    }
    runs.extend(a.runs.iter().cloned());
    let opts = stacks::Options {
        name: Some(lab.clone()),
        region: state.plan.region.clone(),
        params,
        runs,
    };
    // What the lab's stacks already warned about is not this stack's news.
    let earlier: Vec<String> = {
        let mut without = files.clone();
        without.remove(at);
        let params = opts
            .params
            .iter()
            .filter(|p| !p.starts_with(&format!("{name}.")))
            .cloned()
            .collect();
        stacks::load(
            &without,
            &stacks::Options {
                params,
                ..opts.clone()
            },
        )
        .map(|i| i.warnings.clone())
        .unwrap_or_default()
    };
    let read = Instant::now();
    let mut imported = stacks::load(&files, &opts).map_err(|e| usage(e.to_string()))?;
    let new = up::validate_templates(&imported, &base, Some(&state.plan))?;
    imported.finish(&new);
    let read_ms = read.elapsed().as_secs_f64() * 1e3;
    let plan = apply::diff(&state.plan, &new);
    if !plan.refusals.is_empty() {
        return Err(usage(ApplyError::Refused(plan.refusals).to_string()));
    }
    if a.dry_run {
        return super::apply::print(&lab, &plan, None, None, a.json);
    }
    if !a.json {
        crate::out!("{plan}");
    }
    crate::containers::preflight(&new).map_err(up::preflight_error)?;
    let started = Instant::now();
    let report = if plan.is_empty() {
        None
    } else {
        Some(apply::change(&mut state, new).map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "deploying {} as stack `{name}` onto lab `{lab}` (`vpcsim down {lab}` removes whatever it left)",
                a.template.display()
            ))
        })?)
    };
    let ms = started.elapsed().as_secs_f64() * 1e3;
    // The records: earlier stacks keep their files and copies, this one is new.
    let mut fresh = imported.stacks.clone();
    for r in &mut fresh {
        if r.name == name {
            r.runs = a.runs.to_vec();
        } else if let Some(old) = records.iter_mut().find(|o| o.name == r.name) {
            r.file = old.file.clone();
            r.template = old.template.take();
            r.runs = std::mem::take(&mut old.runs);
        }
    }
    up::save_stacks(&lab, &mut fresh)?;
    for w in imported.warnings.iter().filter(|w| !earlier.contains(w)) {
        eprintln!("warning: {w}");
    }
    if a.json {
        return super::apply::print(&lab, &plan, report.as_ref(), Some(ms), true);
    }
    let changes = match plan.changes.len() {
        0 => "no change to the lab".to_string(),
        1 => format!("1 change applied in {ms:.1} ms"),
        n => format!("{n} changes applied in {ms:.1} ms"),
    };
    crate::outln!(
        "stack `{name}` {} on lab `{lab}`: {changes} ({} stacks read in {read_ms:.1} ms)",
        if updated.is_some() {
            "updated"
        } else {
            "deployed"
        },
        fresh.len()
    );
    if let Some(r) = fresh.iter().find(|r| r.name == name) {
        crate::out!("{}", super::status::render_stack(r));
    }
    Ok(())
}
