//! Named network namespaces, created and removed the way `ip netns` does it,
//! so that `ip netns list` / `ip netns exec` work on every lab namespace.
//!
//! Owns: the files under /run/netns and running code inside a namespace
//! (`run_in`). Must not touch: what is configured inside a namespace.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

pub const NETNS_DIR: &str = "/run/netns";

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("namespace {name}: {op}: {source}")]
    Sys {
        name: String,
        op: &'static str,
        source: nix::Error,
    },
    #[error("namespace {name}: {source}")]
    Io {
        name: String,
        source: std::io::Error,
    },
}

pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Every namespace whose name starts with `prefix`.
pub fn list(prefix: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(NETNS_DIR) else {
        return vec![];
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

pub fn open(name: &str) -> Result<File, NetnsError> {
    File::open(path(name)).map_err(|source| NetnsError::Io {
        name: name.into(),
        source,
    })
}

/// /run/netns must be a shared mount point so namespace bind mounts propagate
/// to other mount namespaces (Docker, `ip netns exec`), as iproute2 does it.
/// Where it is not on a tmpfs yet (/run on a disk, as on this project's
/// machines; Debian mounts /run as tmpfs) and holds no namespace, it gets
/// one: each namespace's file is then an inode in memory, where on ext4
/// creating it after a `down` scanned past every inode that `down` freed
/// (O(N) per file, O(N^2) per lab). A directory that holds namespaces is
/// left as it is: a mount over it would hide them.
fn prepare_dir() -> Result<(), NetnsError> {
    let sys = |op, source| NetnsError::Sys {
        name: NETNS_DIR.into(),
        op,
        source,
    };
    let io = |source| NetnsError::Io {
        name: NETNS_DIR.into(),
        source,
    };
    std::fs::create_dir_all(NETNS_DIR).map_err(io)?;
    // Two vpcsim commands starting together must not both mount a tmpfs
    // (the second would hide what the first created): the check and the
    // mount happen under a lock on the parent directory, and the check goes
    // by path, so a waiter sees the tmpfs the holder mounted.
    let parent = File::open(Path::new(NETNS_DIR).parent().unwrap_or(Path::new("/"))).map_err(io)?;
    // SAFETY: flock on a descriptor we own; released when `parent` closes.
    if unsafe { libc::flock(parent.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(sys("lock", nix::Error::last()));
    }
    let on_tmpfs = nix::sys::statfs::statfs(NETNS_DIR)
        .map_err(|e| sys("statfs", e))?
        .filesystem_type()
        == nix::sys::statfs::TMPFS_MAGIC;
    let empty = std::fs::read_dir(NETNS_DIR).map_err(io)?.next().is_none();
    if !on_tmpfs && empty {
        mount(
            Some("tmpfs"),
            NETNS_DIR,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=0755"),
        )
        .map_err(|e| sys("mount tmpfs on /run/netns", e))?;
    }
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    if mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>).is_err() {
        mount(
            Some(NETNS_DIR),
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| sys("bind /run/netns", e))?;
        mount(None::<&str>, NETNS_DIR, None::<&str>, shared, None::<&str>)
            .map_err(|e| sys("make /run/netns shared", e))?;
    }
    Ok(())
}

/// A namespace to create, with the sysctls to set in it.
pub type NewNamespace = (String, Vec<(&'static str, &'static str)>);

/// Creates named namespaces and sets their sysctls (`net.ipv4.ip_forward`,
/// …), several at once: the kernel builds namespaces in parallel (only
/// parts of it run under the RTNL lock), and one thread makes many, so a
/// lab of 1,000 instances does not spawn 1,000 threads. Each namespace's
/// file is created before the namespace, so a crash between the two steps
/// leaves a name that `remove` still finds. The first error stops the
/// workers and is returned; what was made is the caller's to remove.
pub fn create_all(namespaces: &[NewNamespace]) -> Result<(), NetnsError> {
    static PREPARED: std::sync::Once = std::sync::Once::new();
    let mut prep = Ok(());
    PREPARED.call_once(|| prep = prepare_dir());
    prep?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get() * 2)
        .min(namespaces.len().max(1));
    // unshare() moves the calling thread; the workers are throwaway threads
    // so the caller (and the tokio runtime) stays where it is.
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<(), NetnsError> {
                    use std::sync::atomic::Ordering::Relaxed;
                    while !failed.load(Relaxed) {
                        let Some((name, sysctls)) = namespaces.get(next.fetch_add(1, Relaxed))
                        else {
                            break;
                        };
                        if let Err(e) = create_here(name, sysctls) {
                            failed.store(true, Relaxed);
                            return Err(e);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("namespace thread panicked"))
    })
}

/// Makes a new namespace for the calling thread (which stays in it), names
/// it with a bind mount and sets its sysctls.
fn create_here(name: &str, sysctls: &[(&str, &str)]) -> Result<(), NetnsError> {
    let sys = |op, source| NetnsError::Sys {
        name: name.into(),
        op,
        source,
    };
    let target = path(name);
    File::options()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(|source| NetnsError::Io {
            name: name.into(),
            source,
        })?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| sys("unshare", e))?;
    let tid = nix::unistd::gettid();
    let src = format!("/proc/self/task/{tid}/ns/net");
    mount(
        Some(src.as_str()),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| sys("bind mount", e))?;
    // /proc/sys/net is resolved against the opening thread's namespace.
    for (key, value) in sysctls {
        let file = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&file, value).map_err(|source| NetnsError::Io {
            name: format!("{name} sysctl {key}"),
            source,
        })?;
    }
    Ok(())
}

/// The interface index the first link created in a new namespace gets:
/// one past the links the kernel puts in every new namespace (`lo`, and
/// fallback tunnels such as `sit0` when their modules are loaded, numbered
/// from 1 in creation order). Probed once per process in a throwaway
/// namespace, so a link created into a fresh namespace can be asked for by
/// that index instead of looked up by name afterwards.
pub fn first_free_ifindex() -> Result<u32, NetnsError> {
    static FIRST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if let Some(i) = FIRST.get() {
        return Ok(*i);
    }
    let io = |source| NetnsError::Io {
        name: "probe".into(),
        source,
    };
    // A throwaway thread: unshare() moves only it, and the namespace goes
    // when it exits.
    let count = std::thread::spawn(move || -> Result<usize, NetnsError> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Sys {
            name: "probe".into(),
            op: "unshare",
            source: e,
        })?;
        // Two header lines, then one line per link.
        let dev = std::fs::read_to_string("/proc/thread-self/net/dev").map_err(io)?;
        Ok(dev.lines().count().saturating_sub(2))
    })
    .join()
    .expect("namespace probe thread panicked")?;
    let first = u32::try_from(count).unwrap_or(u32::MAX - 1) + 1;
    Ok(*FIRST.get_or_init(|| first))
}

/// Removes a named namespace; its interfaces go with it once the last process
/// inside has exited. Missing namespaces are not an error.
pub fn remove(name: &str) -> Result<(), NetnsError> {
    let p = path(name);
    // EINVAL: not mounted (crash between create and bind); ENOENT: gone.
    match umount2(&p, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => {
            return Err(NetnsError::Sys {
                name: name.into(),
                op: "umount",
                source: e,
            })
        }
    }
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetnsError::Io {
            name: name.into(),
            source,
        }),
    }
}

/// Runs `f` with the calling thread inside namespace `name`, then moves the
/// thread back. Sockets created inside `f` stay bound to that namespace.
/// Only for short synchronous work: nothing else may run on this thread
/// meanwhile (true on a current-thread runtime between awaits).
pub fn run_in<T>(name: &str, f: impl FnOnce() -> T) -> Result<T, NetnsError> {
    let sys = |op, source| NetnsError::Sys {
        name: name.into(),
        op,
        source,
    };
    let home = File::open("/proc/thread-self/ns/net").map_err(|source| NetnsError::Io {
        name: "self".into(),
        source,
    })?;
    let target = open(name)?;
    setns(target.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| sys("setns", e))?;
    let out = f();
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| sys("setns back", e))?;
    Ok(out)
}

/// Inode of a namespace file: processes whose /proc/PID/ns/net has the same
/// inode live in that namespace.
pub fn inode(name: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path(name)).ok().map(|m| m.ino())
}
