//! The Application Load Balancer: one daemon per lab serving every node.
//!
//! - [`daemon`]: builds the runtime from the lab plan, binds listeners inside
//!   each ALB node's namespace, runs health checks and the control socket;
//! - `router`: listener rules and the weighted choice between target groups;
//! - `config`: one configuration (what a request reads) built from a lab
//!   plan, taking over the live state of what stays from the previous one;
//! - `balancer`: target groups at run time (algorithms, stickiness, health
//!   state, metrics);
//! - `proxy`: the HTTP path client -> node -> target;
//! - [`client`]: what the CLI uses to talk to a running daemon.
//!
//! Owns: the daemon, its configuration at run time, its logs and control
//! socket. Must not touch: the fabric or the firewall (an ALB node's traffic
//! to targets is ENI traffic, filtered like any other) or the command line.

pub mod client;
pub mod daemon;
pub mod status;

mod access_log;
mod balancer;
mod config;
mod control;
mod health;
mod proxy;
mod router;
mod waf_gate;
mod waf_log;

use std::path::PathBuf;

/// Errors of the load balancer; the CLI edges wrap them in anyhow.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("lab `{0}` is not up")]
    NotUp(String),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("control socket {}: {source}", .path.display())]
    ControlSocket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the load balancer daemon's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("no load balancer {0:?} in this lab")]
    NoLoadBalancer(String),
    #[error("load balancer {lb} has no listener on port {port}")]
    NoListener { lb: String, port: u16 },
    #[error("no target group {0:?} in this lab")]
    NoTargetGroup(String),
    #[error("weight {weight} for {group}: weights are 0-999")]
    BadWeight { group: String, weight: u32 },
    #[error("a forward action takes at most 5 target groups, this one would have {0}")]
    TooManyGroups(usize),
    #[error("every weight of the forward action would be 0; at least one group must get traffic")]
    AllZero,
    #[error("load balancer daemon not reachable at {path}: {source} (is the lab up? see `vpcsim logs alb`)")]
    Unreachable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ALB node {node}: cannot listen on port {port}: {source}")]
    Listen {
        node: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("the plan is for lab {plan}, this daemon serves lab {daemon}")]
    OtherLab { daemon: String, plan: String },
    #[error("load balancer daemon: {0}")]
    Daemon(String),
    /// The daemon's answer to a request it refuses (a target not
    /// registered): already a sentence for the user.
    #[error("{0}")]
    Refused(String),
    #[error("namespace: {0}")]
    Netns(#[from] crate::fabric::netns::NetnsError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The control socket of a lab's daemon.
pub fn control_socket(lab: &str) -> PathBuf {
    crate::state::lab_dir(lab).join("alb.sock")
}

/// The lab's access log (AWS ALB format).
pub fn access_log_path(lab: &str) -> PathBuf {
    crate::state::lab_dir(lab).join("alb-access.log")
}
