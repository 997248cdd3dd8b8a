//! vpcsim: an AWS VPC architecture emulated on Linux network namespaces.
//!
//! Layout, in the order a lab is built:
//! - [`topology`]: the TOML file, its validation and the resolved [`topology::plan::Lab`];
//! - [`fabric`]: namespaces, bridges, veths, addresses and route tables (netlink);
//! - [`firewall`]: security groups, NACLs, IGW and NAT gateway rendered to nftables;
//! - [`workloads`]: processes on instances (user data, model servers);
//! - [`lb`]: the Application Load Balancer (hyper/tokio);
//! - [`containers`]: Docker containers on instances (bollard);
//! - [`state`] and [`teardown`]: what a lab owns and how it is removed;
//! - [`cloudformation`]: templates in (as a topology) and out (a lab as a template);
//! - [`commands`]: the CLI verbs.

pub mod analysis;
pub mod cloudformation;
pub mod commands;
pub mod connlimit;
pub mod containers;
pub mod fabric;
pub mod firewall;
pub mod flowlog;
pub mod lb;
pub mod output;
pub mod services;
pub mod state;
pub mod teardown;
pub mod topology;
pub mod waf;
pub mod workloads;
