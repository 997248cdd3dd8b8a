//! `vpcsim weights alb:80 tg-v1=100 tg-v2=0`: change a listener's forward
//! weights live (the console's "Edit listener rule" on the default action).

use super::resolve_lab;
use super::usage;

pub fn run(lab: Option<&str>, listener: &str, weights: &[String]) -> anyhow::Result<()> {
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
    if !lbp.listeners.iter().any(|l| l.port == port) {
        let ports: Vec<String> = lbp.listeners.iter().map(|l| l.port.to_string()).collect();
        return Err(usage(format!(
            "load balancer {lb} has no listener on port {port} (listeners: {})",
            ports.join(", ")
        )));
    }
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
    crate::lb::client::set_weights(&plan.name, lb, port, &parsed).map_err(|e| {
        // Bad combinations (all zero, more than 5 groups) are bad input too.
        match e.downcast_ref::<crate::lb::LbError>() {
            Some(
                crate::lb::LbError::AllZero
                | crate::lb::LbError::TooManyGroups(_)
                | crate::lb::LbError::BadWeight { .. },
            ) => usage(e.to_string()),
            _ => e,
        }
    })?;
    let status = crate::lb::client::query_status(&plan.name)?;
    for l in status.load_balancers.iter().filter(|l| l.name == lb) {
        for li in l.listeners.iter().filter(|x| x.port == port) {
            if let Some(d) = li.rules.last() {
                let shares: Vec<String> = d
                    .forward
                    .iter()
                    .map(|f| format!("{}={} ({:.1}%)", f.target_group, f.weight, f.share_pct))
                    .collect();
                println!("{lb}:{port} default -> {}", shares.join(", "));
            }
        }
    }
    Ok(())
}
