//! One cgroup (v2) per lab: every process a lab starts joins it before it
//! runs, and its children inherit it wherever they go (another namespace, a
//! new session, a double fork). `down` ends exactly its members, by PID, and
//! removes it. No controller is enabled: the cgroup only tracks.
//!
//! The v2 hierarchy is found in /proc/self/mountinfo (`/sys/fs/cgroup` on a
//! unified system, `/sys/fs/cgroup/unified` on a hybrid one). Without one, labs
//! still work and `down` finds processes by namespace only (with a warning).

use std::path::{Path, PathBuf};

/// Directory under the v2 root that holds one cgroup per lab.
const PARENT: &str = "vpcsim";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the cgroup v2 hierarchy is mounted, if it is.
pub fn mount_point() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        // `… mount-point options … - fstype source options`
        let (left, right) = line.split_once(" - ")?;
        let mount = left.split(' ').nth(4)?;
        (right.split(' ').next()? == "cgroup2").then(|| PathBuf::from(mount))
    })
}

/// The lab's cgroup directory (it may not exist).
pub fn path(lab: &str) -> Option<PathBuf> {
    Some(mount_point()?.join(PARENT).join(lab))
}

/// Creates the lab's cgroup (before its first process). Returns false when
/// the machine has no cgroup v2 hierarchy.
pub fn create(lab: &str) -> Result<bool, CgroupError> {
    let Some(dir) = path(lab) else {
        tracing::warn!("no cgroup v2 hierarchy mounted: `down` finds processes by namespace only");
        return Ok(false);
    };
    // Another lab's `down` may remove the shared parent in between: retry.
    let mut result = std::fs::create_dir_all(&dir);
    for _ in 0..3 {
        if result.is_ok() {
            break;
        }
        result = std::fs::create_dir_all(&dir);
    }
    result.map_err(|source| CgroupError::Io { path: dir, source })?;
    Ok(true)
}

/// The lab's `cgroup.procs`, opened for a child to join with `join_in_child`
/// between fork and exec. None when the lab has no cgroup.
pub fn procs_file(lab: &str) -> Option<std::fs::File> {
    let p = path(lab)?.join("cgroup.procs");
    std::fs::File::options().write(true).open(p).ok()
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is `fd`
/// (`0` means "the writer"). Async-signal-safe: for `pre_exec`.
pub fn join_in_child(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    // SAFETY: writing two bytes from a static buffer to a descriptor we own.
    if unsafe { libc::write(fd, b"0\n".as_ptr().cast(), 2) } != 2 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// PIDs in the lab's cgroup now.
pub fn members(lab: &str) -> Vec<i32> {
    path(lab).map(|p| members_of(&p)).unwrap_or_default()
}

fn members_of(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// SIGKILLs whatever is still in the lab's cgroup (what forked while `down`
/// was ending the rest) until it is empty; returns those PIDs. With
/// `cgroup.kill` (Linux 5.14) the kernel does it atomically, forks included;
/// otherwise member by member.
pub fn kill_remaining(lab: &str) -> Vec<i32> {
    let Some(dir) = path(lab) else {
        return vec![];
    };
    let mut killed = Vec::new();
    for _ in 0..200 {
        let pids = members_of(&dir);
        if pids.is_empty() {
            break;
        }
        if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
            for &p in &pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        killed.extend(pids);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    killed.sort_unstable();
    killed.dedup();
    killed
}

/// Removes the (empty) lab cgroup; gone already is fine. Members that are
/// still exiting keep it busy for a moment: retry briefly.
pub fn remove(lab: &str) -> Result<(), CgroupError> {
    let Some(dir) = path(lab) else {
        return Ok(());
    };
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(&dir) {
            Ok(()) => {
                // The parent too once no lab uses it (busy otherwise).
                if let Some(parent) = dir.parent() {
                    let _ = std::fs::remove_dir(parent);
                }
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if tries < 100 && e.raw_os_error() == Some(libc::EBUSY) => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(source) => return Err(CgroupError::Io { path: dir, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mount_point_is_a_cgroup2_mount_when_found() {
        if let Some(p) = super::mount_point() {
            assert!(p.join("cgroup.procs").exists(), "{}", p.display());
        }
    }
}
