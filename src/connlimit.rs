//! Bounds on the client connections a lab server holds (ALB nodes, S3):
//! a global and a per-client limit, where a new connection over a limit
//! sheds the oldest *idle* connection (no request in progress) instead of
//! being refused, so an idle-connection flood cannot deny service to other
//! clients; connections idle longer than the idle timeout are closed, as
//! AWS closes them; and an accept loop that backs off on errors such as
//! EMFILE instead of spinning.

use hyper::body::{Body, Frame, SizeHint};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What a server admits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Client connections at once.
    pub max: usize,
    /// Client connections at once from one source address.
    pub per_client: usize,
    /// A connection without a request in progress for this long is closed.
    pub idle: Duration,
}

impl Limits {
    /// `max` connections (at least 2), a quarter of them per client.
    pub fn new(max: usize, idle: Duration) -> Limits {
        let max = max.max(2);
        Limits {
            max,
            per_client: (max / 4).max(1),
            idle,
        }
    }
}

/// One admitted client connection.
pub struct Conn {
    id: u64,
    ip: IpAddr,
    /// Requests in progress (head received, response not yet sent in full).
    busy: AtomicU32,
    /// When it last finished a request, ms since the registry's epoch.
    last: AtomicU64,
    /// The registry's epoch, so that a request's end touches nothing the
    /// connections of other threads share.
    epoch: Instant,
    shed: Notify,
}

impl Conn {
    /// Resolves when the registry sheds this connection: the connection's
    /// task then drops it (closing the socket).
    pub async fn shed(&self) {
        self.shed.notified().await
    }

    /// Marks a request in progress until the guard is dropped.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        Busy { conn: self.clone() }
    }
}

/// A request in progress on a connection.
pub struct Busy {
    conn: Arc<Conn>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.conn.epoch.elapsed().as_millis() as u64;
        self.conn.last.store(now, Ordering::Relaxed);
        self.conn.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Inner {
    next: u64,
    /// By admission order: the first idle one is the oldest.
    conns: BTreeMap<u64, Arc<Conn>>,
    per_client: HashMap<IpAddr, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> bool {
        let Some(c) = self.conns.remove(&id) else {
            return false;
        };
        if let Some(n) = self.per_client.get_mut(&c.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&c.ip);
            }
        }
        true
    }

    /// Closes the oldest idle connection (of `ip` only, if given).
    fn shed_oldest_idle(&mut self, ip: Option<IpAddr>) -> bool {
        let victim = self
            .conns
            .values()
            .find(|c| ip.is_none_or(|ip| c.ip == ip) && c.busy.load(Ordering::Relaxed) == 0)
            .cloned();
        match victim {
            Some(c) => {
                self.remove(c.id);
                c.shed.notify_one();
                true
            }
            None => false,
        }
    }
}

/// The connections of one server (one ALB node, or the S3 daemon).
pub struct Registry {
    limits: Limits,
    /// `limits.idle` in ms; a load balancer's idle timeout changes live.
    idle_ms: AtomicU64,
    epoch: Instant,
    inner: Mutex<Inner>,
    /// Connections closed to make room or for idleness, and refused ones.
    shed: AtomicU64,
    refused: AtomicU64,
}

/// A connection's place in the registry: dropping it frees the place.
pub struct Admitted {
    pub conn: Arc<Conn>,
    reg: Arc<Registry>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.reg.lock().remove(self.conn.id);
    }
}

impl Registry {
    pub fn new(limits: Limits) -> Arc<Registry> {
        Arc::new(Registry {
            idle_ms: AtomicU64::new(limits.idle.as_millis() as u64),
            limits,
            epoch: Instant::now(),
            inner: Mutex::default(),
            shed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    pub fn limits(&self) -> Limits {
        Limits {
            idle: Duration::from_millis(self.idle_ms.load(Ordering::Relaxed)),
            ..self.limits
        }
    }

    /// A new idle timeout, for connections idle from now on too.
    pub fn set_idle(&self, idle: Duration) {
        self.idle_ms
            .store(idle.as_millis() as u64, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Admits a connection from `ip`, shedding the oldest idle connection
    /// of that client (over its limit) or of anyone (over the global one);
    /// None when every connection over the limit is busy: the caller closes
    /// the new one.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let mut inner = self.lock();
        let mine = inner.per_client.get(&ip).copied().unwrap_or(0);
        let room = if mine >= self.limits.per_client {
            inner.shed_oldest_idle(Some(ip))
        } else if inner.conns.len() >= self.limits.max {
            inner.shed_oldest_idle(None)
        } else {
            true
        };
        if !room {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if mine >= self.limits.per_client || inner.conns.len() >= self.limits.max {
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
        inner.next += 1;
        let conn = Arc::new(Conn {
            id: inner.next,
            ip,
            busy: AtomicU32::new(0),
            last: AtomicU64::new(self.now_ms()),
            epoch: self.epoch,
            shed: Notify::new(),
        });
        inner.conns.insert(conn.id, conn.clone());
        *inner.per_client.entry(ip).or_insert(0) += 1;
        Some(Admitted {
            conn,
            reg: self.clone(),
        })
    }

    /// Frees one place (the oldest idle connection): what to do when the
    /// process is out of descriptors.
    pub fn shed_one(&self) -> bool {
        let shed = self.lock().shed_oldest_idle(None);
        if shed {
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
        shed
    }

    /// Closes connections idle for longer than the idle timeout.
    fn reap(&self) {
        let now = self.now_ms();
        let idle_ms = self.idle_ms.load(Ordering::Relaxed);
        let mut inner = self.lock();
        let expired: Vec<Arc<Conn>> = inner
            .conns
            .values()
            .filter(|c| {
                c.busy.load(Ordering::Relaxed) == 0
                    && now.saturating_sub(c.last.load(Ordering::Relaxed)) >= idle_ms
            })
            .cloned()
            .collect();
        for c in expired {
            inner.remove(c.id);
            c.shed.notify_one();
            self.shed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs the idle-timeout sweep for as long as the registry lives, at a
    /// quarter of the idle timeout in force.
    pub async fn reap_forever(self: Arc<Self>) {
        loop {
            let tick =
                (self.limits().idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
            tokio::time::sleep(tick).await;
            self.reap();
        }
    }

    pub fn stats(&self) -> ConnStats {
        ConnStats {
            open: self.lock().conns.len(),
            shed: self.shed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// Counters a server reports in its status.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct ConnStats {
    pub open: usize,
    pub shed: u64,
    pub refused: u64,
}

/// A response body that keeps its connection marked busy until it has been
/// sent in full (or dropped).
pub struct Tracked<B> {
    inner: B,
    busy: Option<Busy>,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, busy: Busy) -> Tracked<B> {
        Tracked {
            inner,
            busy: Some(busy),
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.busy = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Accepts connections for ever, handing each admitted one to `serve`.
/// Errors (EMFILE, ENFILE, ENOBUFS…) free the oldest idle connection and
/// back off exponentially (10 ms to 1 s) instead of spinning on a listener
/// that stays readable.
pub async fn accept_loop<F, Fut>(listener: tokio::net::TcpListener, reg: Arc<Registry>, serve: F)
where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr, Admitted) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    const FIRST: Duration = Duration::from_millis(10);
    let mut backoff = FIRST;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = FIRST;
                // Over the limit with every connection busy: close it.
                if let Some(adm) = reg.admit(peer.ip()) {
                    let conn = adm.conn.clone();
                    let fut = serve(stream, peer, adm);
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = fut => {}
                            _ = conn.shed() => {}
                        }
                    });
                }
            }
            Err(e) => {
                tracing::warn!("accept: {e}; retrying in {} ms", backoff.as_millis());
                reg.shed_one();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Raises the soft limit on open files to the hard limit; returns it.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// `VPCSIM_MAX_CONNECTIONS` (a positive number) when set: lowers the
/// default limit of a server, e.g. to test shedding with few connections.
pub fn max_from_env(default: usize) -> usize {
    std::env::var("VPCSIM_MAX_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([203, 0, 113, last])
    }

    #[test]
    fn over_the_limit_the_oldest_idle_connection_goes() {
        let reg = Registry::new(Limits {
            max: 4,
            per_client: 3,
            idle: Duration::from_secs(60),
        });
        let a: Vec<Admitted> = (0..3).map(|_| reg.admit(ip(10)).unwrap()).collect();
        let _busy = a[0].conn.busy();
        // Over its own limit, client .10 loses its oldest idle connection
        // (not the busy one).
        let _a4 = reg.admit(ip(10)).unwrap();
        assert_eq!(reg.stats().open, 3);
        assert!(reg.lock().conns.contains_key(&a[0].conn.id));
        assert!(!reg.lock().conns.contains_key(&a[1].conn.id));
        // Another client still gets in, shedding globally when full.
        let _b = reg.admit(ip(20)).unwrap();
        let _c = reg.admit(ip(30)).unwrap();
        assert_eq!(reg.stats().open, 4);
        assert!(reg.lock().conns.contains_key(&a[0].conn.id));
    }

    #[test]
    fn all_busy_refuses() {
        let reg = Registry::new(Limits::new(2, Duration::from_secs(60)));
        let a = reg.admit(ip(10)).unwrap();
        let b = reg.admit(ip(20)).unwrap();
        let (_x, _y) = (a.conn.busy(), b.conn.busy());
        assert!(reg.admit(ip(30)).is_none());
        assert_eq!(reg.stats().refused, 1);
        drop(a);
        assert!(reg.admit(ip(30)).is_some());
    }

    #[test]
    fn a_shorter_idle_timeout_applies_to_connections_already_open() {
        let reg = Registry::new(Limits::new(10, Duration::from_secs(60)));
        let idle = reg.admit(ip(10)).unwrap();
        let busy = reg.admit(ip(20)).unwrap();
        let _req = busy.conn.busy();
        reg.reap();
        assert_eq!(reg.stats().open, 2);
        reg.set_idle(Duration::ZERO);
        assert_eq!(reg.limits().idle, Duration::ZERO);
        reg.reap();
        assert_eq!(reg.stats().open, 1);
        assert!(reg.lock().conns.contains_key(&busy.conn.id));
        assert!(!reg.lock().conns.contains_key(&idle.conn.id));
    }
}
