//! Talking to a lab's running ALB daemon from the CLI (blocking).
//!
//! Owns: the control protocol's client side. Must not touch: the daemon's
//! state other than through its socket (and the lab's recorded weights).

use super::control::{ControlRequest, ControlResponse};
use super::router::apply_weights;
use super::status::LbStatus;
use super::LbError;
use crate::state::{LabLock, LabState};
use crate::topology::plan::Lab;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn request(lab: &str, req: &ControlRequest) -> Result<ControlResponse, LbError> {
    let path = super::control_socket(lab);
    let unreachable = |source| LbError::Unreachable {
        path: path.clone(),
        source,
    };
    let mut s = UnixStream::connect(&path).map_err(unreachable)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_vec(req).expect("request serializes");
    line.push(b'\n');
    s.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer)?;
    let resp: ControlResponse = serde_json::from_str(&answer)
        .map_err(|e| LbError::Daemon(format!("unreadable answer ({e}): {answer:?}")))?;
    match resp.error {
        // The daemon's own message, already worded for the user.
        Some(e) => Err(LbError::Refused(e)),
        None => Ok(resp),
    }
}

/// Listeners, weights, target group metrics and target health.
pub fn query_status(lab: &str) -> Result<LbStatus, LbError> {
    request(lab, &ControlRequest::Status)?
        .status
        .ok_or_else(|| LbError::Daemon("answer without status".into()))
}

/// Changes the weights of listener `lb:port`'s default action live, and
/// records them in the lab's state so a daemon restart and `status` agree.
pub fn set_weights(
    lab: &str,
    lb: &str,
    port: u16,
    weights: &[(String, u32)],
) -> Result<(), LbError> {
    let _lock = LabLock::acquire(lab)?;
    let mut state = LabState::load(lab)?.ok_or_else(|| LbError::NotUp(lab.into()))?;
    let plan = state.plan.clone();
    let l = state
        .plan
        .load_balancers
        .iter_mut()
        .find(|l| l.name == lb)
        .ok_or_else(|| LbError::NoLoadBalancer(lb.into()))?;
    let listener = l
        .listeners
        .iter_mut()
        .find(|x| x.port == port)
        .ok_or_else(|| LbError::NoListener {
            lb: lb.into(),
            port,
        })?;
    // Checked here first, so bad input is reported even with no daemon.
    apply_weights(&mut listener.default_forward, &plan, weights)?;
    request(
        lab,
        &ControlRequest::SetWeights {
            lb: lb.into(),
            port,
            weights: weights.to_vec(),
        },
    )?;
    state.save()?;
    Ok(())
}

/// `deregister-targets` (`registered = false`: draining, then gone) or
/// `register-targets` again, for a target of the topology.
pub fn set_registration(
    lab: &str,
    target_group: &str,
    target: &str,
    registered: bool,
) -> Result<(), LbError> {
    let (target_group, target) = (target_group.to_string(), target.to_string());
    let req = if registered {
        ControlRequest::Register {
            target_group,
            target,
        }
    } else {
        ControlRequest::Deregister {
            target_group,
            target,
        }
    };
    request(lab, &req)?;
    Ok(())
}

/// Hands a new plan of `lab` to its running daemon, which takes it live
/// (see `Balancer::reconfigure`): the fabric must already have the plan's
/// ALB node namespaces. The caller records the plan in the lab's state.
pub fn reconfigure(lab: &str, plan: &Lab) -> Result<(), LbError> {
    request(
        lab,
        &ControlRequest::Reconfigure {
            plan: Box::new(plan.clone()),
        },
    )?;
    Ok(())
}
