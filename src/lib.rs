//! vpcsim: an AWS VPC architecture emulated on Linux network namespaces.
//!
//! Layers, lowest first (a module uses its own layer or lower ones; the
//! README's code map says more, `tests/layers.rs` keeps it true):
//! - model: [`topology`] (the file, its validation, the resolved
//!   [`topology::plan::Lab`]), [`waf`], [`cloudformation`];
//! - system: [`fabric`] (namespaces, netlink), [`state`], [`cgroup`], [`connlimit`],
//!   [`logfile`] (capped request logs);
//! - rules: [`firewall`] (SGs, NACLs, IGW, NAT gateway as nftables);
//! - lab components: [`workloads`], [`containers`], [`lb`], [`services`],
//!   [`flowlog`];
//! - whole-lab operations: [`analysis`], [`teardown`];
//! - command line: [`commands`], [`output`] (the only code that knows about
//!   arguments, usage errors and exit codes).

pub mod analysis;
pub mod apply;
pub mod cgroup;
pub mod cloudformation;
pub mod commands;
pub mod connlimit;
pub mod containers;
pub mod fabric;
pub mod firewall;
pub mod flowlog;
pub mod lb;
pub mod logfile;
pub mod output;
pub mod services;
pub mod state;
pub mod teardown;
pub mod topology;
pub mod utc;
pub mod waf;
pub mod workloads;
