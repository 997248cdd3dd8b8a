//! `vpcsim weights alb:80 tg-v1=100 tg-v2=0`: change a listener's forward
//! weights live (the console's "Edit listener rule" on the default action).
//!
//! Like AWS's `modify-listener`, whose forward action is replaced as a whole,
//! the groups named are the whole action: a group of the current action that
//! is not named gets no traffic. vpcsim keeps it in the action with weight 0
//! (its health checks go on, so naming it again later is instant) and says so.

use super::resolve_lab;
use super::usage;

pub fn run(
    lab: Option<&str>,
    listener: &str,
    weights: &[String],
    json: bool,
) -> anyhow::Result<()> {
    let state = resolve_lab(lab)?;
    let plan = &state.plan;
    let (lb, port) = listener
        .rsplit_once(':')
        .and_then(|(lb, p)| Some((lb, p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            usage(format!(
                "listener {listener:?}: expected NAME:PORT, e.g. alb:80"
            ))
        })?;
    let Some(lbp) = plan.load_balancers.iter().find(|l| l.name == lb) else {
        let names: Vec<&str> = plan
            .load_balancers
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        return Err(usage(format!(
            "no load balancer {lb} in lab {} (load balancers: {})",
            plan.name,
            names.join(", ")
        )));
    };
    let Some(lst) = lbp.listeners.iter().find(|l| l.port == port) else {
        let ports: Vec<String> = lbp.listeners.iter().map(|l| l.port.to_string()).collect();
        return Err(usage(format!(
            "load balancer {lb} has no listener on port {port} (listeners: {})",
            ports.join(", ")
        )));
    };
    if weights.is_empty() {
        return Err(usage("give at least one TARGET_GROUP=WEIGHT"));
    }
    let mut parsed = Vec::with_capacity(weights.len());
    for w in weights {
        let (tg, n) = w
            .split_once('=')
            .ok_or_else(|| usage(format!("{w:?}: expected TARGET_GROUP=WEIGHT")))?;
        if !plan.target_groups.iter().any(|t| t.name == tg) {
            let names: Vec<&str> = plan.target_groups.iter().map(|t| t.name.as_str()).collect();
            return Err(usage(format!(
                "no target group {tg} in lab {} (target groups: {})",
                plan.name,
                names.join(", ")
            )));
        }
        let n: u32 = n
            .parse()
            .ok()
            .filter(|n| *n <= 999)
            .ok_or_else(|| usage(format!("{w:?}: the weight must be a whole number 0-999")))?;
        if parsed.iter().any(|(t, _): &(String, u32)| t == tg) {
            return Err(usage(format!("target group {tg} given twice")));
        }
        parsed.push((tg.to_string(), n));
    }
    // Groups of the action not named: weight 0, as modify-listener drops them.
    let not_named: Vec<String> = lst
        .default_forward
        .iter()
        .map(|w| plan.target_groups[w.target_group].name.clone())
        .filter(|g| !parsed.iter().any(|(t, _)| t == g))
        .collect();
    parsed.extend(not_named.iter().map(|g| (g.clone(), 0)));
    crate::lb::client::set_weights(&plan.name, lb, port, &parsed).map_err(|e| {
        // Bad combinations (all zero, more than 5 groups) are bad input too.
        match e {
            crate::lb::LbError::AllZero
            | crate::lb::LbError::TooManyGroups(_)
            | crate::lb::LbError::BadWeight { .. } => usage(e.to_string()),
            e => e.into(),
        }
    })?;
    let status = crate::lb::client::query_status(&plan.name)?;
    let forward: Vec<&crate::lb::status::ForwardStatus> = status
        .load_balancers
        .iter()
        .filter(|l| l.name == lb)
        .flat_map(|l| l.listeners.iter().filter(|x| x.port == port))
        .filter_map(|li| li.rules.last())
        .flat_map(|d| d.forward.iter())
        .collect();
    if json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "load_balancer": lb,
                "port": port,
                "forward": forward,
                "not_named_set_to_0": not_named,
            }))?
        );
        return Ok(());
    }
    let shares: Vec<String> = forward
        .iter()
        .map(|f| format!("{}={} ({:.1}%)", f.target_group, f.weight, f.share_pct))
        .collect();
    crate::outln!("{lb}:{port} default -> {}", shares.join(", "));
    if !not_named.is_empty() {
        crate::outln!(
            "not named, so weight 0 (the groups named are the whole forward action, as with AWS's modify-listener): {}",
            not_named.join(", ")
        );
    }
    Ok(())
}
