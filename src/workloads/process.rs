//! Starting processes inside a lab node, the way a VM's init would: in the
//! node's network namespace, with the node's own /etc/hosts and resolv.conf,
//! detached from the terminal, output kept as the node's console log.
//!
//! Owns: spawning into a node (namespace, /etc files, cgroup, log) and process records.
//! Must not touch: which processes a lab runs (`workloads/mod.rs` decides).

use crate::fabric::netns;
use crate::state::{process_start_time, ProcessRecord};
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The lab's files bind-mounted over /etc inside a node's mount namespace
/// (hosts, resolv.conf) and its `environment`: one copy for the lab, so
/// their cost does not grow with the square of the lab's size.
pub fn lab_etc_dir(lab: &str) -> PathBuf {
    crate::state::lab_dir(lab).join("etc")
}

/// A node's own versions of those files, for the few nodes that differ.
pub fn etc_dir(lab: &str, node: &str) -> PathBuf {
    lab_etc_dir(lab).join(node)
}

/// The node's own `file` if it has one, else the lab's, if any.
fn etc_file(lab: &str, node: &str, file: &str) -> Option<PathBuf> {
    [etc_dir(lab, node).join(file), lab_etc_dir(lab).join(file)]
        .into_iter()
        .find(|p| p.exists())
}

/// A node's hostname: its own `hostname` file (the fabric, the internet,
/// S3), else the last name on its line of the lab's hosts file (an ENI's
/// node: `10.0.20.16<TAB>app ip-10-0-20-16.ec2.internal ip-10-0-20-16`).
pub fn hostname(lab: &str, node: &str) -> Option<String> {
    let own = std::fs::read_to_string(etc_dir(lab, node).join("hostname"))
        .ok()
        .map(|h| h.trim().to_string());
    own.or_else(|| {
        let hosts = std::fs::read_to_string(lab_etc_dir(lab).join("hosts")).ok()?;
        hosts.lines().find_map(|l| {
            let mut names = l.split_whitespace().skip(1);
            if names.next() != Some(node) {
                return None;
            }
            names.last().map(str::to_string)
        })
    })
    .filter(|h| !h.is_empty())
}

/// How far a process started in a node can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// vpcsim's own daemons and the operator's shells in AWS-side nodes
    /// (fabric, NAT gateways, ALB nodes): the hypervisor's privileges.
    Hypervisor,
    /// Anything running on an instance (user data, model servers, `vpcsim
    /// exec` into an instance): root of its own network namespace only.
    Instance,
}

/// Prepares `cmd` to run in the node's namespaces: network namespace of the
/// node, private mount namespace with the node's /etc/hosts and resolv.conf,
/// member of the lab's cgroup (so `down` ends it wherever it goes), and for
/// an instance, confined (`super::confine`). Everything that allocates happens
/// here, before fork; the child only makes raw syscalls.
pub fn enter_node(cmd: &mut Command, lab: &str, node: &str, reach: Reach) -> std::io::Result<()> {
    let ns = netns::open(&crate::topology::plan::namespace(lab, node))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()))?;
    let mut binds: Vec<(CString, CString)> = Vec::new();
    for f in ["hosts", "resolv.conf"] {
        if let Some(file) = etc_file(lab, node, f) {
            binds.push((cstr(&file), cstr(&Path::new("/etc").join(f))));
        }
    }
    // The node's environment (`environment` beside its /etc files: the
    // lab's S3 endpoint for the AWS CLI); what the caller set explicitly wins.
    let environment = etc_file(lab, node, "environment");
    if let Some(text) = environment.and_then(|f| std::fs::read_to_string(f).ok()) {
        for (k, v) in text.lines().filter_map(|l| l.split_once('=')) {
            if std::env::var_os(k).is_none() {
                cmd.env(k, v);
            }
        }
    }
    let cgroup = crate::cgroup::procs_file(lab);
    let confinement = match reach {
        Reach::Instance => Some(super::confine::Confinement::prepare(lab, node)),
        Reach::Hypervisor => None,
    };
    let private_mounts = !binds.is_empty() || confinement.is_some();
    // The node's own hostname (`ip-10-0-20-16` on an instance, as EC2 names
    // it), in a UTS namespace of its own so the machine's stays untouched.
    let hostname = hostname(lab, node).map(String::into_bytes);
    let root = cstr(Path::new("/"));
    let ns_fd = ns.as_raw_fd();
    // SAFETY: the closure runs between fork and exec and only calls
    // async-signal-safe syscalls on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &ns;
            // First: whatever fails next, the process is already the lab's.
            if let Some(procs) = &cgroup {
                crate::cgroup::join_in_child(procs.as_raw_fd())?;
            }
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(h) = &hostname {
                if libc::unshare(libc::CLONE_NEWUTS) != 0
                    || libc::sethostname(h.as_ptr().cast(), h.len()) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if private_mounts {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Our bind mounts must not propagate back to the host.
                let flags = libc::MS_REC | libc::MS_SLAVE;
                if libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                for (src, dst) in &binds {
                    if libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            if let Some(c) = &confinement {
                c.apply_in_child()?;
            }
            Ok(())
        });
    }
    Ok(())
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("path without NUL")
}

/// Starts a long-lived process in `node`, detached (own session, stdin from
/// /dev/null) so it outlives the `vpcsim` command; stdout and stderr are
/// appended to `log`.
pub fn spawn_detached(
    lab: &str,
    node: &str,
    role: &str,
    reach: Reach,
    mut cmd: Command,
    log: &Path,
) -> std::io::Result<ProcessRecord> {
    let out = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    enter_node(&mut cmd, lab, node, reach)?;
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    // Reaped by nobody once we exit: the detached child is re-parented to init.
    std::mem::forget(child);
    let start_time = process_start_time(pid).unwrap_or(0);
    Ok(ProcessRecord {
        node: node.to_string(),
        role: role.to_string(),
        pid,
        start_time,
        stopped: false,
    })
}
