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
    crate::lb::client::set_registration(&plan.name, target_group, target, registered)?;
    if registered {
        println!("{target} registered with {target_group}: initial until its health checks pass");
    } else {
        println!(
            "{target} deregistering from {target_group}: draining its in-flight requests (at most {} s)",
            tg.deregistration_delay_s
        );
    }
    Ok(())
}
