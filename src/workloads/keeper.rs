//! The lab's managed daemons (the ALB, the AWS services) restart on their
//! own when they die, as AWS replaces a failed load balancer node: each is
//! started as a small keeper process that runs the daemon as its child and
//! starts it again (after a back-off that grows while it keeps dying at
//! once) until the keeper itself is asked to stop. `down` finds both by
//! namespace and ends them by PID like every lab process.
//!
//! Owns: restarting a daemon and its back-off. Must not touch: what the daemon does.

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The hidden flag that makes a daemon command run the daemon itself.
pub const WORKER_FLAG: &str = "--worker";

static STOP: AtomicBool = AtomicBool::new(false);
/// A SIGHUP (reload: the lab changed) waiting to be passed to the daemon.
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

extern "C" fn on_reload(_: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

/// A daemon that lived this long before dying was working: restart it at
/// once rather than backing off.
const STABLE: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs `vpcsim ARGS --worker` and keeps it running until SIGTERM/SIGINT,
/// which it passes on to the daemon before exiting; a SIGHUP (the lab
/// changed: reload) is passed on as is.
pub fn run(args: &[&str]) -> Result<(), super::WorkloadError> {
    use super::WorkloadError;
    let sys = |what| move |source| WorkloadError::Keeper { what, source };
    let handler = SigAction::new(
        SigHandler::Handler(on_stop),
        // No SA_RESTART: waitpid returns EINTR so the loop sees the flag.
        SaFlags::empty(),
        SigSet::empty(),
    );
    let reload = SigAction::new(
        SigHandler::Handler(on_reload),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handlers only store to an atomic.
    unsafe {
        signal::sigaction(Signal::SIGTERM, &handler).map_err(sys("SIGTERM handler"))?;
        signal::sigaction(Signal::SIGINT, &handler).map_err(sys("SIGINT handler"))?;
        signal::sigaction(Signal::SIGHUP, &reload).map_err(sys("SIGHUP handler"))?;
    }
    let what = format!("starting {}", args.join(" "));
    let exe = super::own_exe(&what)?;
    let mut backoff = Duration::from_millis(250);
    while !STOP.load(Ordering::SeqCst) {
        let started = Instant::now();
        let child = Command::new(&exe)
            .args(args)
            .arg(WORKER_FLAG)
            .spawn()
            .map_err(|source| WorkloadError::Spawn {
                what: what.clone(),
                source,
            })?;
        let pid = Pid::from_raw(child.id() as i32);
        let status = loop {
            match waitpid(pid, None) {
                Ok(s) => break s,
                Err(nix::errno::Errno::EINTR) if STOP.load(Ordering::SeqCst) => {
                    let _ = signal::kill(pid, Signal::SIGTERM);
                }
                Err(nix::errno::Errno::EINTR) if RELOAD.swap(false, Ordering::SeqCst) => {
                    let _ = signal::kill(pid, Signal::SIGHUP);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(sys("waiting for the daemon")(e)),
            }
        };
        if STOP.load(Ordering::SeqCst) {
            break;
        }
        let how = match status {
            WaitStatus::Exited(_, code) => format!("exited with code {code}"),
            WaitStatus::Signaled(_, sig, _) => format!("was killed by {sig}"),
            other => format!("ended ({other:?})"),
        };
        if started.elapsed() >= STABLE {
            backoff = Duration::from_millis(250);
        }
        eprintln!(
            "keeper: `vpcsim {}` (pid {pid}) {how}; restarting in {} ms",
            args.join(" "),
            backoff.as_millis()
        );
        sleep_unless_stopped(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    Ok(())
}

fn sleep_unless_stopped(d: Duration) {
    let until = Instant::now() + d;
    while !STOP.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
}
