//! Writing a command's answer to stdout when the reader may be gone
//! (`vpcsim up … | head -1`, `| true`): a closed pipe is not an error of the
//! command, so the rest of its output is dropped and the command finishes
//! its work (a lab being built is still built completely). `println!`
//! panics on a closed stdout; every command prints through these macros.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout; after the first broken pipe, writes nothing more.
pub fn write(args: std::fmt::Arguments) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if out.write_fmt(args).and_then(|()| out.flush()).is_err() {
        // EPIPE or any other write error: the reader is gone, and a command
        // must not fail for it after doing its work.
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Whether stdout's reader has gone away (streaming commands stop then).
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// Marks stdout as closed (a streaming writer saw EPIPE itself).
pub fn mark_closed() {
    CLOSED.store(true, Ordering::Relaxed);
}

/// True when `e` (anywhere in its chain) is a write to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
pub fn color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// `text` in bold red when colour is on (a DENY, an unhealthy target).
pub fn red(text: &str, on: bool) -> String {
    paint(text, on, "1;31")
}

/// `text` in green when colour is on (ok, healthy).
pub fn green(text: &str, on: bool) -> String {
    paint(text, on, "32")
}

/// `text` in yellow when colour is on (initial, draining).
pub fn yellow(text: &str, on: bool) -> String {
    paint(text, on, "33")
}

fn paint(text: &str, on: bool, sgr: &str) -> String {
    if on {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `println!` that survives a closed stdout.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that survives a closed stdout.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write(format_args!($($arg)*)) };
}
