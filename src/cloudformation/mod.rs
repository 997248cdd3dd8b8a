//! CloudFormation in and out: a tested lab exported as a template for AWS
//! ([`export`]), and templates (several stacks) brought up as a lab.
//!
//! Depends only on [`crate::topology`]: import produces the same
//! [`crate::topology::model::Topology`] a TOML file does, so validation,
//! fabric, firewall and load balancer are the ones every lab uses.

pub mod export;
pub mod import;
pub mod intrinsics;
pub mod stacks;
pub mod template;
pub mod wafv2;
