//! `vpcsim deregister TG TARGET` / `vpcsim register TG TARGET`: the console's
//! "Deregister" and "Register targets" on a target group, live. A
//! deregistered target drains: no new requests, in-flight ones finish, for
//! up to the group's `deregistration_delay`.

use super::{resolve_lab, usage};

pub fn run(
    lab: Option<&str>,
    target_group: &str,
    target: &str,
    registered: bool,
) -> anyhow::Result<()> {
    let state = resolve_lab(lab)?;
    let plan = &state.plan;
    let Some(tg) = plan.target_groups.iter().find(|g| g.name == target_group) else {
        let names: Vec<&str> = plan.target_groups.iter().map(|g| g.name.as_str()).collect();
        return Err(usage(format!(
            "no target group {target_group} in lab {} (target groups: {})",
            plan.name,
            names.join(", ")
        )));
    };
    if !tg.targets.iter().any(|t| t.instance == target) {
        let names: Vec<&str> = tg.targets.iter().map(|t| t.instance.as_str()).collect();
        return Err(usage(format!(
            "{target} is not a target of {target_group} in the topology (targets: {})",
            names.join(", ")
        )));
    }
    crate::lb::client::set_registration(&plan.name, target_group, target, registered).map_err(
        |e| match e {
            // Refused by the daemon (already registered, not registered): bad input.
            crate::lb::LbError::Refused(m) => usage(m),
            e => e.into(),
        },
    )?;
    if registered {
        crate::outln!(
            "{target} registered with {target_group}: initial until its health checks pass"
        );
        return Ok(());
    }
    // With nothing in flight AWS completes the deregistration at once; say
    // which of the two happened instead of promising a wait.
    let draining = crate::lb::client::query_status(&plan.name)
        .ok()
        .and_then(|s| {
            s.target_groups
                .into_iter()
                .find(|g| g.name == target_group)?
                .targets
                .into_iter()
                .find(|t| t.instance == target)
        })
        .is_some_and(|t| t.state == "draining");
    if draining {
        crate::outln!(
            "{target} draining from {target_group}: no new requests; it leaves when its in-flight requests finish, at most {} s (deregistration_delay); `vpcsim status` shows it `draining` until then",
            tg.deregistration_delay_s
        );
    } else {
        crate::outln!(
            "{target} deregistered from {target_group}: no request was in flight, so it left at once (as on AWS); `vpcsim register {target_group} {target}` brings it back"
        );
    }
    Ok(())
}
