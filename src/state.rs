//! What a lab owns, on disk under /run/vpcsim/<lab>/ (tmpfs: gone on reboot,
//! like the namespaces it describes).
//!
//! The plan, which names every namespace the lab will have, is written before
//! the first namespace is created. That is what makes teardown crash-safe:
//! whatever point `up` died at, `down` knows every name it might have made.

use crate::topology::plan::Lab;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const STATE_ROOT: &str = "/run/vpcsim";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is owned by uid {uid}, not root: another user could read or change every lab's state; remove it (`sudo rm -r {path}`) and run the command again")]
    NotRootOwned { path: PathBuf, uid: u32 },
    #[error("lab `{lab}` is busy: {holder} has held its lock ({path}) for {waited} s; gave up waiting (set VPCSIM_LOCK_TIMEOUT=SECONDS to wait longer, or end that process)")]
    LockTimeout {
        lab: String,
        path: PathBuf,
        holder: String,
        waited: u64,
    },
    #[error("{path}: corrupt state ({source}); `vpcsim down` still removes the lab's namespaces")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub plan: Lab,
    /// The topology file `up` was given (absolute).
    pub topology: PathBuf,
    /// False until `up` has finished.
    pub ready: bool,
    pub processes: Vec<ProcessRecord>,
    /// The plan a change (`apply`) is carrying the lab to, recorded before
    /// the first step: after a crash mid-change `down` knows every name
    /// either plan has. None between changes.
    #[serde(default)]
    pub changing_to: Option<Lab>,
    /// Brought up with `--network-only`: a change starts no workloads either.
    #[serde(default)]
    pub network_only: bool,
}

/// A process vpcsim started. `start_time` (clock ticks since boot, from
/// /proc/PID/stat) guards against signalling a recycled PID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub node: String,
    /// What it is: `model-v1`, `user-data`, `alb`, …
    pub role: String,
    pub pid: i32,
    pub start_time: u64,
    /// Stopped on purpose by `vpcsim stop`; not a crash.
    #[serde(default)]
    pub stopped: bool,
}

pub fn lab_dir(lab: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(lab)
}

pub fn state_file(lab: &str) -> PathBuf {
    lab_dir(lab).join("state.json")
}

/// WAF logs of the lab's web ACLs, AWS's JSON format, one record a line.
pub fn waf_log_file(lab: &str) -> PathBuf {
    lab_dir(lab).join("waf-logs.log")
}

pub fn log_dir(lab: &str) -> PathBuf {
    lab_dir(lab).join("logs")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl LabState {
    pub fn load(lab: &str) -> Result<Option<LabState>, StateError> {
        let path = state_file(lab);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|source| StateError::Corrupt { path, source })
    }

    /// Atomic replace: a reader (or a crash) never sees half a file.
    pub fn save(&self) -> Result<(), StateError> {
        let dir = lab_dir(&self.plan.name);
        ensure_state_root()?;
        std::fs::create_dir_all(log_dir(&self.plan.name)).map_err(io(&dir))?;
        let path = state_file(&self.plan.name);
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let text = serde_json::to_vec_pretty(self).expect("state serializes");
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Every lab that is up (or was being built).
    pub fn list() -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(STATE_ROOT) else {
            return vec![];
        };
        // Only lab directories with a state file: not `<lab>.lock` files, and
        // not a directory `down` is emptying.
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| state_file(name).is_file())
            .collect();
        v.sort();
        v
    }
}

/// /run/vpcsim, root's only (0700): other users can neither read a lab's
/// state and logs nor open, and so flock, its lock file. An older vpcsim's
/// 0755 directory is tightened; one owned by another user is refused.
pub fn ensure_state_root() -> Result<(), StateError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let root = Path::new(STATE_ROOT);
    match std::fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(root)(e)),
    }
    let meta = std::fs::symlink_metadata(root).map_err(io(root))?;
    if meta.uid() != 0 || !meta.is_dir() {
        return Err(StateError::NotRootOwned {
            path: root.to_path_buf(),
            uid: meta.uid(),
        });
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700)).map_err(io(root))?;
    }
    Ok(())
}

/// How long a command waits for another one's lock on the same lab before
/// giving up: `VPCSIM_LOCK_TIMEOUT` seconds, default 120 (a large `up`).
fn lock_timeout() -> std::time::Duration {
    let secs = std::env::var("VPCSIM_LOCK_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    std::time::Duration::from_secs(secs)
}

/// The process holding the flock on `file`, from /proc/locks: `PID 123
/// (vpcsim up canary.toml)`.
fn lock_holder(file: &std::fs::File) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = file.metadata() else {
        return "another process".into();
    };
    let dev = meta.dev();
    let key = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        meta.ino()
    );
    let pid = std::fs::read_to_string("/proc/locks").ok().and_then(|t| {
        t.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&key.as_str()))
            .and_then(|f| f.get(4)?.parse::<i32>().ok())
    });
    match pid {
        Some(pid) => {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .split('\0')
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            format!("PID {pid} ({cmd})")
        }
        None => "another process".into(),
    }
}

/// Serialises commands that modify one lab (`up`, `down`, `stop`, …): an
/// exclusive flock on /run/vpcsim/<lab>.lock (0600 in a 0700 directory),
/// released when dropped or when the holder dies (even by `kill -9`). A
/// command that has to wait says who holds it, and gives up after
/// `VPCSIM_LOCK_TIMEOUT` seconds.
pub struct LabLock {
    _file: std::fs::File,
}

impl LabLock {
    pub fn acquire(lab: &str) -> Result<LabLock, StateError> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        ensure_state_root()?;
        let path = Path::new(STATE_ROOT).join(format!("{lab}.lock"));
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        // An older vpcsim's lock file was 0644.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io(&path))?;
        let started = std::time::Instant::now();
        let timeout = lock_timeout();
        let mut said = false;
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(LabLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(&path)(err));
            }
            if !said {
                eprintln!(
                    "waiting for lab `{lab}`: {} holds its lock (up to {} s)",
                    lock_holder(&file),
                    timeout.as_secs()
                );
                said = true;
            }
            if started.elapsed() >= timeout {
                return Err(StateError::LockTimeout {
                    lab: lab.into(),
                    holder: lock_holder(&file),
                    path,
                    waited: started.elapsed().as_secs(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Deletes the lock file once the lab is gone.
    pub fn remove(lab: &str) {
        let _ = std::fs::remove_file(Path::new(STATE_ROOT).join(format!("{lab}.lock")));
    }
}

/// What vpcsim reads of /proc/PID/stat.
pub struct ProcStat {
    /// `R`, `S`, `Z`, …
    pub state: char,
    pub session: i32,
    /// Clock ticks since boot at which the process started.
    pub start_time: u64,
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: split after its ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        session: fields.get(3)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Clock ticks since boot at which `pid` started, or None if it is gone.
pub fn process_start_time(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|s| s.start_time)
}

/// The process started as `pid` at `start_time` still runs: not exited,
/// not a zombie, and its PID not recycled by another process.
pub fn still_running(pid: i32, start_time: u64) -> bool {
    proc_stat(pid).is_some_and(|s| s.start_time == start_time && !matches!(s.state, 'Z' | 'X'))
}

impl ProcessRecord {
    pub fn is_alive(&self) -> bool {
        still_running(self.pid, self.start_time)
    }
}

/// SIGTERM, up to `grace` for the processes to exit, then SIGKILL for
/// whatever is left. Each target is a (pid, start time) pair, so a PID the
/// kernel has given to another process meanwhile is never signalled.
pub fn terminate(targets: &[(i32, u64)], grace: Duration) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let running = |&(p, t): &(i32, u64)| still_running(p, t);
    for &(p, _) in targets.iter().filter(|x| running(x)) {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while targets.iter().any(running) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for &(p, _) in targets.iter().filter(|x| running(x)) {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_this_process() {
        let me = std::process::id() as i32;
        let s = proc_stat(me).expect("our own /proc entry");
        assert!(matches!(s.state, 'R' | 'S'), "{}", s.state);
        assert_eq!(s.session, nix::unistd::getsid(None).unwrap().as_raw());
        assert!(still_running(me, s.start_time));
        assert!(
            !still_running(me, s.start_time + 1),
            "a recycled PID is not ours"
        );
        assert!(proc_stat(i32::MAX).is_none());
    }
}
