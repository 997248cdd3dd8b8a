//! CloudFormation in and out: a tested lab exported as a template for AWS
//! ([`export`]), and templates (several stacks) brought up as a lab.
//!
//! Depends only on [`crate::topology`]: import produces the same
//! [`crate::topology::model::Topology`] a TOML file does, so validation,
//! fabric, firewall and load balancer are the ones every lab uses.
//!
//! Owns: template syntax, intrinsics, stacks and the mapping to and from the
//! topology model. Must not touch: the kernel, a lab's state or the command line.

pub mod export;
pub mod import;
pub mod intrinsics;
pub mod stacks;
pub mod template;
pub mod wafv2;
