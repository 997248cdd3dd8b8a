//! Explaining a lab: the AWS rules model ([`model`]) and what is built on it:
//! `vpcsim trace` ([`trace`]), `vpcsim probe` ([`probe`]) and `vpcsim graph`
//! ([`graph`]). The model never reads the nftables rendering, so the two can
//! be checked against each other by real traffic.

pub mod graph;
pub mod model;
pub mod probe;
pub mod trace;
