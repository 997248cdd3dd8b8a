//! The lab's network: one namespace per node, one bridge per subnet in the
//! fabric namespace, veth pairs, addresses and per-subnet route tables.

pub mod aws_side;
pub mod build;
pub mod netns;
pub mod routes;
