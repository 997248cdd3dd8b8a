//! The lab's WAF log file (`vpcsim waf-logs`), written by the ALB: request
//! tasks serialise each record ([`crate::waf::log::write_record`]) straight
//! into a shared buffer; a writer task empties it into the capped file
//! ([`crate::logfile`]), off the request path.

use crate::logfile::CappedLog;
use crate::waf::log::{write_record, Source};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// Records appended to one buffer, written out by a task every 50 ms. A
/// record costs its serialisation into the buffer and nothing else (no
/// allocation, no message, no free on another thread).
#[derive(Clone)]
pub struct WafLog {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Vec<u8>>,
    /// Only the writer task and the last handle's drop write it.
    file: Mutex<CappedLog>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for Shared {
    /// The last handle gone (the lab's web ACLs no longer log): what is
    /// still pending is written.
    fn drop(&mut self) {
        let rest = std::mem::take(&mut *lock(&self.pending));
        let _ = lock(&self.file).write_all(&rest);
    }
}

impl WafLog {
    pub fn start(path: &Path) -> std::io::Result<WafLog> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(1 << 20)),
            file: Mutex::new(CappedLog::open(path)?),
        });
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        tokio::spawn(async move {
            // Swapped with the pending buffer: both keep their capacity.
            let mut out = Vec::with_capacity(1 << 20);
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                std::mem::swap(&mut *lock(&shared.pending), &mut out);
                let _ = lock(&shared.file).write_all(&out);
                out.clear();
            }
        });
        Ok(WafLog { shared })
    }

    /// Appends the record of one request.
    pub fn write(&self, src: &Source<'_>) {
        let mut pending = lock(&self.shared.pending);
        write_record(&mut pending, src);
        pending.push(b'\n');
    }
}
