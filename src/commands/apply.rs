//! `vpcsim apply FILE [--dry-run] [--json]`: changes a running lab to what
//! the file says, printing the plan first; `vpcsim watch FILE` applies on
//! every save.

use super::{require_root, usage};
use crate::apply::{self, ApplyError, Plan};
use crate::state::{LabLock, LabState};
use crate::topology;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// What `apply --json` prints.
#[derive(serde::Serialize)]
struct Outcome<'a> {
    lab: &'a str,
    plan: &'a Plan,
    applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a apply::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<f64>,
}

pub fn run(file: &Path, dry_run: bool, json: bool) -> anyhow::Result<()> {
    let source = topology::Source::read(file).map_err(|e| usage(e.to_string()))?;
    let name = source
        .lab_name()
        .map_err(|e| usage(e.to_string()))?
        .to_string();
    let invalid = |e: topology::TopologyError| usage(e.to_string());
    // The file's own errors come before "not root" or "not up": validated
    // plain only when there is no running lab to pin it to.
    if let Err(e) = require_root("apply") {
        source.validate(None).map_err(invalid)?;
        return Err(e);
    }
    let _lock = LabLock::acquire(&name)?;
    let mut state = match running(&name, file) {
        Ok(state) => state,
        Err(e) => {
            source.validate(None).map_err(invalid)?;
            return Err(e);
        }
    };
    // Pinned to what the running lab allocated: an edit never renumbers
    // what stays.
    let new = source.validate(Some(&state.plan)).map_err(invalid)?;
    let plan = apply::diff(&state.plan, &new);
    if !plan.refusals.is_empty() {
        return Err(usage(ApplyError::Refused(plan.refusals).to_string()));
    }
    if dry_run || plan.is_empty() {
        print(&name, &plan, None, None, json)?;
        return Ok(());
    }
    if !json {
        crate::out!("{plan}");
    }
    crate::containers::preflight(&new).map_err(super::up::preflight_error)?;
    let started = Instant::now();
    let report = apply::change(&mut state, new).map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "applying {} to lab `{name}` (`vpcsim down {name}` removes whatever it left)",
            file.display()
        ))
    })?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if json {
        print(&name, &plan, Some(&report), Some(ms), true)
    } else {
        crate::outln!(
            "lab `{name}`: {} change{} applied in {ms:.1} ms",
            plan.changes.len(),
            if plan.changes.len() == 1 { "" } else { "s" }
        );
        Ok(())
    }
}

/// The lab `file` names, which must be up and not in the middle of a change.
pub(super) fn running(name: &str, file: &Path) -> anyhow::Result<LabState> {
    let state = LabState::load(name)?.ok_or_else(|| {
        usage(format!(
            "lab `{name}` is not up: `vpcsim up {}` first",
            file.display()
        ))
    })?;
    if !state.ready {
        return Err(usage(format!(
            "lab `{name}` is not ready (its `up` did not finish): `vpcsim down {name}` and up again"
        )));
    }
    if state.changing_to.is_some() {
        return Err(usage(format!(
            "an earlier change to lab `{name}` did not finish (it was interrupted): `vpcsim down {name}` and `vpcsim up {}`",
            file.display()
        )));
    }
    Ok(state)
}

pub(super) fn print(
    lab: &str,
    plan: &Plan,
    report: Option<&apply::Report>,
    elapsed_ms: Option<f64>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let out = Outcome {
            lab,
            plan,
            applied: report.is_some(),
            report,
            elapsed_ms,
        };
        crate::outln!("{}", serde_json::to_string_pretty(&out)?);
    } else if plan.is_empty() {
        crate::outln!("lab `{lab}`: no changes");
    } else {
        crate::out!("{plan}");
        crate::outln!("(dry run: nothing was changed)");
    }
    Ok(())
}

/// `vpcsim watch FILE`: applies the file now and on every save; a file with
/// errors prints them and leaves the lab as it was. Runs until interrupted.
pub fn watch(file: &Path) -> anyhow::Result<()> {
    require_root("watch")?;
    let modified = |f: &Path| std::fs::metadata(f).and_then(|m| m.modified()).ok();
    let mut seen: Option<SystemTime> = None;
    loop {
        let now = modified(file);
        if now.is_some() && now != seen {
            seen = now;
            crate::outln!("--- {}", file.display());
            if let Err(e) = run(file, false, false) {
                eprintln!("error: {e:#}");
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
