//! Confining what runs on an instance to the instance, the way a VM's root
//! cannot touch the hypervisor.
//!
//! Root inside an instance keeps everything it needs in its own network
//! namespace (addresses, routes, nftables, sysctls under /proc/sys/net, raw
//! sockets, privileged ports, users and file ownership): the capabilities
//! Docker gives a container by default, plus `CAP_NET_ADMIN`. It loses the
//! ones that reach outside: `CAP_SYS_ADMIN` (setns into the root or another
//! lab's namespace, mount and unmount, so the masks below stay), `CAP_SYS_PTRACE`
//! (other processes' memory and namespaces), `CAP_SYS_MODULE`, `CAP_SYS_RAWIO`,
//! `CAP_SYS_BOOT`, `CAP_SYS_TIME`, `CAP_DAC_READ_SEARCH` (open_by_handle_at),
//! `CAP_MKNOD`, `CAP_BPF`, … dropped from every set, bounding set included,
//! so no exec (setuid root or file capabilities) gets them back.
//!
//! Its mount namespace hides what root could still reach through plain
//! files: /run/vpcsim (every lab's state, logs and the ALB's control socket)
//! except the instance's own home, /run/netns, the Docker and containerd
//! sockets, the cgroup hierarchies (so it cannot move itself out of the
//! lab's cgroup), and makes /proc/sys (but /proc/sys/net) and /sys read-only.
//! Not a user namespace: a network namespace belongs to the user namespace
//! that created it, so root of a new user namespace could not configure the
//! instance's own links, routes and nftables.
//!
//! Owns: the capabilities and mounts an instance's processes keep. Must not touch: the
//! instance's network (addresses, routes, nftables are its own to change).

use std::ffi::CString;
use std::path::Path;

/// Capabilities root on an instance keeps (linux/capability.h numbers):
/// Docker's default set without MKNOD, plus NET_ADMIN for the instance's
/// own network configuration.
const KEEP: &[u32] = &[
    0,  // CHOWN
    1,  // DAC_OVERRIDE
    3,  // FOWNER
    4,  // FSETID
    5,  // KILL
    6,  // SETGID
    7,  // SETUID
    8,  // SETPCAP
    10, // NET_BIND_SERVICE
    12, // NET_ADMIN
    13, // NET_RAW
    18, // SYS_CHROOT
    29, // AUDIT_WRITE
    31, // SETFCAP
];

/// Files that give host root to whoever can write them (the ones that
/// exist are covered with /dev/null).
const HOST_FILES: &[&str] = &[
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/dbus/system_bus_socket",
    "/proc/sysrq-trigger",
];

/// Everything the child needs, prepared before fork.
pub struct Confinement {
    /// The instance's home (and the directories above it, outermost
    /// first), re-exposed inside the masked /run/vpcsim.
    home: Option<(CString, Vec<CString>)>,
    state_root: CString,
    /// Directories covered by an empty read-only tmpfs.
    masks: Vec<CString>,
    /// Files covered by /dev/null.
    nulled: Vec<CString>,
    proc_sys: CString,
    proc_sys_net: CString,
    sys: CString,
    dev_null: CString,
    tmpfs: CString,
    tmpfs_options: CString,
    last_cap: u32,
}

fn cstr(p: &str) -> CString {
    CString::new(p).expect("path without NUL")
}

impl Confinement {
    pub fn prepare(lab: &str, node: &str) -> Confinement {
        let home_dir = super::node_dir(lab, node);
        let home = if home_dir.is_dir() {
            // Directories to create in the empty tmpfs, outermost first.
            let root = Path::new(crate::state::STATE_ROOT);
            let rel = home_dir
                .strip_prefix(root)
                .expect("homes live under the state root");
            let mut parents = Vec::new();
            let mut acc = root.to_path_buf();
            for part in rel.components() {
                acc.push(part);
                parents.push(cstr(&acc.to_string_lossy()));
            }
            Some((cstr(&home_dir.to_string_lossy()), parents))
        } else {
            None
        };
        let mut masks = vec![crate::fabric::netns::NETNS_DIR.to_string()];
        if let Some(cg) = crate::cgroup::mount_point() {
            masks.push(cg.to_string_lossy().into_owned());
        }
        masks.push("/sys/fs/cgroup".into());
        masks.dedup();
        let masks = masks
            .into_iter()
            .filter(|m| Path::new(m).is_dir())
            .map(|m| cstr(&m))
            .collect();
        let nulled = HOST_FILES
            .iter()
            .filter(|p| Path::new(p).exists())
            .map(|p| cstr(p))
            .collect();
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        Confinement {
            home,
            state_root: cstr(crate::state::STATE_ROOT),
            masks,
            nulled,
            proc_sys: cstr("/proc/sys"),
            proc_sys_net: cstr("/proc/sys/net"),
            sys: cstr("/sys"),
            dev_null: cstr("/dev/null"),
            tmpfs: cstr("tmpfs"),
            tmpfs_options: cstr("mode=755,size=64k"),
            last_cap,
        }
    }

    /// Between fork and exec, in the node's private mount namespace: only
    /// raw syscalls on memory prepared by `prepare`.
    pub fn apply_in_child(&self) -> std::io::Result<()> {
        use libc::{MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT};
        let none = std::ptr::null::<libc::c_char>();
        let check = |rc: libc::c_int| {
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        // SAFETY (all blocks below): mount/mkdir/prctl/capset with
        // NUL-terminated strings and structs owned by `self` or the stack.
        unsafe {
            // The home, held open across the mask below. Opened here, in
            // the node's mount namespace: a bind mount's source must be.
            let home_fd = match &self.home {
                Some((path, _)) => {
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    );
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Some(fd)
                }
                None => None,
            };
            // /run/vpcsim: empty but for the instance's own home.
            check(libc::mount(
                self.tmpfs.as_ptr(),
                self.state_root.as_ptr(),
                self.tmpfs.as_ptr(),
                MS_NOSUID | MS_NODEV | MS_NOEXEC,
                self.tmpfs_options.as_ptr().cast(),
            ))?;
            if let (Some((path, parents)), Some(fd)) = (&self.home, home_fd) {
                for p in parents {
                    libc::mkdir(p.as_ptr(), 0o755);
                }
                // Bind the directory through its descriptor: its path is
                // hidden now.
                let mut src = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0";
                let n = write_decimal(&mut src[14..24], fd as u32);
                src[14 + n] = 0;
                check(libc::mount(
                    src.as_ptr().cast(),
                    path.as_ptr(),
                    none,
                    MS_BIND,
                    none.cast(),
                ))?;
                libc::close(fd);
            }
            check(libc::mount(
                none,
                self.state_root.as_ptr(),
                none,
                MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                none.cast(),
            ))?;
            for m in &self.masks {
                check(libc::mount(
                    self.tmpfs.as_ptr(),
                    m.as_ptr(),
                    self.tmpfs.as_ptr(),
                    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    self.tmpfs_options.as_ptr().cast(),
                ))?;
            }
            for f in &self.nulled {
                check(libc::mount(
                    self.dev_null.as_ptr(),
                    f.as_ptr(),
                    none,
                    MS_BIND,
                    none.cast(),
                ))?;
            }
            // /proc/sys read-only but the instance's own /proc/sys/net;
            // /sys read-only.
            check(libc::mount(
                self.proc_sys.as_ptr(),
                self.proc_sys.as_ptr(),
                none,
                MS_BIND | MS_REC,
                none.cast(),
            ))?;
            check(libc::mount(
                self.proc_sys_net.as_ptr(),
                self.proc_sys_net.as_ptr(),
                none,
                MS_BIND | MS_REC,
                none.cast(),
            ))?;
            check(libc::mount(
                none,
                self.proc_sys.as_ptr(),
                none,
                MS_BIND | MS_REMOUNT | MS_RDONLY,
                none.cast(),
            ))?;
            check(libc::mount(
                self.sys.as_ptr(),
                self.sys.as_ptr(),
                none,
                MS_BIND,
                none.cast(),
            ))?;
            check(libc::mount(
                none,
                self.sys.as_ptr(),
                none,
                MS_BIND | MS_REMOUNT | MS_RDONLY,
                none.cast(),
            ))?;
            // Capabilities last: the mounts above needed CAP_SYS_ADMIN.
            let mut keep = [0u32; 2];
            for &c in KEEP {
                keep[(c / 32) as usize] |= 1 << (c % 32);
            }
            for cap in 0..=self.last_cap {
                if !KEEP.contains(&cap) {
                    check(libc::prctl(
                        libc::PR_CAPBSET_DROP,
                        cap as libc::c_ulong,
                        0,
                        0,
                        0,
                    ))?;
                }
            }
            check(libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            ))?;
            let header = CapHeader {
                version: LINUX_CAPABILITY_VERSION_3,
                pid: 0,
            };
            let data = [
                CapData {
                    effective: keep[0],
                    permitted: keep[0],
                    inheritable: 0,
                },
                CapData {
                    effective: keep[1],
                    permitted: keep[1],
                    inheritable: 0,
                },
            ];
            if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Writes `n` in decimal into `buf` without allocating; returns its length.
fn write_decimal(buf: &mut [u8], mut n: u32) -> usize {
    let mut tmp = [0u8; 10];
    let mut len = 0;
    loop {
        tmp[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[i] = tmp[len - 1 - i];
    }
    len
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_without_allocation() {
        let mut b = [0u8; 10];
        let n = super::write_decimal(&mut b, 4096);
        assert_eq!(&b[..n], b"4096");
        let n = super::write_decimal(&mut b, 0);
        assert_eq!(&b[..n], b"0");
    }
}
