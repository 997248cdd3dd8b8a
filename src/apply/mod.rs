//! The one path from a desired lab to the kernel. A change is the
//! difference between the running lab's plan and a new one ([`diff`]: what
//! the user reads, in the topology's words) carried out by [`execute`]:
//! `up` is a change from nothing, `apply` from the running plan; `down`
//! (a change to nothing) is `teardown`, which needs no plan to be total.
//!
//! Crash safety: the plan a change is heading to is recorded in the lab's
//! state before the first step, so `down` after a `kill -9` at any point
//! knows every name either plan has.
//!
//! Owns: the order of a change's steps. Must not touch the command line.

pub mod diff;
mod etc;
mod execute;

pub use diff::{diff, Plan};
pub use execute::{build, change, Report};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// AWS does not make these changes in place.
    #[error("{} change{} AWS does not make in place, nothing was changed:\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<diff::Refusal>),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Fabric(#[from] crate::fabric::build::FabricError),
    #[error(transparent)]
    Netns(#[from] crate::fabric::netns::NetnsError),
    #[error(transparent)]
    Firewall(#[from] crate::firewall::FirewallError),
    #[error(transparent)]
    Containers(#[from] crate::containers::ContainerError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error("writing the nodes' /etc files: {0}")]
    Etc(std::io::Error),
    /// A lab component (workloads, daemons) failed to start or stop.
    #[error("{what}: {source:#}")]
    Component {
        what: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ApplyError {
    fn component<E>(what: &'static str) -> impl FnOnce(E) -> ApplyError
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        move |e| ApplyError::Component {
            what,
            source: e.into(),
        }
    }
}
