//! Explaining a lab: the AWS rules model ([`model`]) and what is built on it:
//! `vpcsim trace` ([`trace`]), `vpcsim probe` ([`probe`]) and `vpcsim graph`
//! ([`graph`]). The model never reads the nftables rendering, so the two can
//! be checked against each other by real traffic.
//!
//! Owns: the model and the answers drawn from it, as typed values. Must not touch:
//! the command line (arguments, output, exit codes) or a lab's state on disk; the only
//! traffic it makes is `probe`'s, from inside lab namespaces.

pub mod graph;
pub mod model;
pub mod probe;
pub mod trace;
