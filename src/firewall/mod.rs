//! Security groups, NACLs, the IGW's 1:1 NAT, the NAT gateway's SNAT and the
//! source/destination check, rendered to nftables rulesets.
//!
//! Every rule that can drop a packet carries a counter and a comment naming
//! the AWS rule it stands for (`nacl private inbound rule * deny`), so a drop
//! can be attributed by reading counters (tests, `probe`, flow logs).
//! Each namespace's ruleset is applied in one `nft -f` transaction: it is
//! atomic, and a lab is never half-filtered. A change to a running lab
//! loads only what changed ([`ruleset::Ruleset::update_from`]), in one
//! transaction too.
//!
//! Owns: every nftables rule of a lab, in the fabric and NAT gateway namespaces. Must
//! not touch: links and routes (`fabric/`), instances' own rulesets, or the root
//! namespace's ruleset.

pub mod fabric;
pub mod nat_gateway;
pub mod ruleset;
#[cfg(test)]
mod update_tests;

use crate::fabric::netns;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("nft is not installed: install the Debian package `nftables` (scripts/setup does it)")]
    NftMissing,
    #[error("nft in {ns}: {message}")]
    Nft { ns: String, message: String },
    #[error("namespace {ns}: {source}")]
    Netns {
        ns: String,
        source: netns::NetnsError,
    },
}

/// Starts `nft -f -` inside `ns` with `ruleset` on stdin; `wait` finishes it.
/// Split in two so several namespaces are loaded in parallel.
pub fn spawn_apply(ns: &str, ruleset: &str) -> Result<PendingApply, FirewallError> {
    let file = netns::open(ns).map_err(|source| FirewallError::Netns {
        ns: ns.into(),
        source,
    })?;
    let fd = file.as_raw_fd();
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setns is async-signal-safe; `file` outlives the spawn.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => FirewallError::NftMissing,
        _ => FirewallError::Nft {
            ns: ns.into(),
            message: e.to_string(),
        },
    })?;
    drop(file);
    let mut stdin = child.stdin.take().expect("piped stdin");
    let write = stdin.write_all(ruleset.as_bytes());
    drop(stdin);
    if let Err(e) = write {
        let _ = child.kill();
        let _ = child.wait();
        return Err(FirewallError::Nft {
            ns: ns.into(),
            message: format!("writing ruleset: {e}"),
        });
    }
    Ok(PendingApply {
        ns: ns.into(),
        child,
    })
}

pub struct PendingApply {
    ns: String,
    child: Child,
}

impl PendingApply {
    pub fn wait(self) -> Result<(), FirewallError> {
        let out = self
            .child
            .wait_with_output()
            .map_err(|e| FirewallError::Nft {
                ns: self.ns.clone(),
                message: e.to_string(),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(FirewallError::Nft {
                ns: self.ns,
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

/// nft string literal for a comment (nft comments cannot hold `"`).
pub(crate) fn comment(text: &str) -> String {
    format!("comment \"{}\"", text.replace('"', "'"))
}
