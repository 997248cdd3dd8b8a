//! The lab's network: one namespace per node, one bridge per subnet in the
//! fabric namespace, veth pairs, addresses and per-subnet route tables.
//!
//! Owns: namespaces, links, addresses, routes and policy rules, over netlink. Must not
//! touch: nftables (`firewall/`), processes (`workloads/`) or anything in the root
//! namespace.

pub mod aws_side;
pub mod build;
pub mod netns;
pub mod routes;
