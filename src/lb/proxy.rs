//! The request path of an ALB node: client connection (HTTP/1.1 keep-alive)
//! -> listener rules -> target group -> target, over a connection pool whose
//! sockets live in the node's namespace, so node -> target traffic is real
//! traffic of that ENI (SGs, NACLs and routes apply to it).

use super::access_log::{AccessLog, Entry};
use super::balancer::{Group, Target};
use super::config::Config;
use super::daemon::Balancer;
use super::waf_gate::{Blocked, ReqBody};
use crate::connlimit::{Admitted, Tracked};
use crate::fabric::netns;
use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

pub type Body = Either<Upstream, Full<Bytes>>;

/// AWS's fixed limit for establishing a connection to a target (then 504).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept per target and worker thread; the oldest of any
/// more are closed (a burst must not leave hundreds of sockets open).
const MAX_IDLE_PER_TARGET: usize = 64;
/// AWS's HTTP header quotas: request line 16 K, one header 16 K, the whole
/// request header 64 K; over them the ALB answers 400.
const MAX_REQUEST_LINE: usize = 16 * 1024;
const MAX_HEADER: usize = 16 * 1024;
const MAX_HEADERS_TOTAL: usize = 64 * 1024;
/// hyper's read buffer per connection: room for the largest head AWS
/// accepts; a head larger still is refused by the parser itself (431).
const READ_BUFFER: usize = MAX_HEADERS_TOTAL + MAX_REQUEST_LINE + 8 * 1024;

/// Opens a TCP connection to `addr` from namespace `ns`.
pub async fn connect_in(
    ns: &str,
    addr: SocketAddr,
    limit: Duration,
) -> io::Result<tokio::net::TcpStream> {
    let sock = netns::run_in(ns, tokio::net::TcpSocket::new_v4).map_err(io::Error::other)??;
    sock.set_nodelay(true)?;
    match tokio::time::timeout(limit, sock.connect(addr)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect to {addr} timed out"),
        )),
    }
}

/// Idle keep-alive connections from one node to one target, newest last.
#[derive(Default)]
pub struct Slot(Mutex<Vec<(SendRequest<ReqBody>, Instant)>>);

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(SendRequest<ReqBody>, Instant)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self) -> Option<SendRequest<ReqBody>> {
        self.lock().pop().map(|(tx, _)| tx)
    }

    /// Dropping a `SendRequest` ends its connection task: the socket closes.
    fn put(&self, tx: SendRequest<ReqBody>) {
        if !tx.is_closed() {
            let mut idle = self.lock();
            if idle.len() >= MAX_IDLE_PER_TARGET {
                idle.remove(0);
            }
            idle.push((tx, Instant::now()));
        }
    }

    fn close_idle(&self, idle: Duration) {
        self.lock()
            .retain(|(tx, since)| since.elapsed() < idle && !tx.is_closed());
    }
}

/// One node's HTTP/1.1 connections to every target (`[group][target]`),
/// reused across requests and client connections.
pub struct Pool {
    slots: Vec<Vec<Arc<Slot>>>,
}

/// Why a target gave no response.
#[derive(Debug)]
pub enum UpstreamError {
    Connect(io::Error),
    Http(hyper::Error),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "connect: {e}"),
            UpstreamError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl UpstreamError {
    /// Whether the client's own request body failed (invalid chunked
    /// encoding, cut short): the client's fault, 400, not the target's.
    fn is_client_body(&self) -> bool {
        matches!(self, UpstreamError::Http(e) if e.is_user())
    }

    /// Whether the target failed to connect or answer in time (504, not 502).
    fn is_timeout(&self) -> bool {
        let mut src: Option<&(dyn std::error::Error + 'static)> = match self {
            UpstreamError::Connect(e) => Some(e),
            UpstreamError::Http(e) => std::error::Error::source(e),
        };
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<io::Error>() {
                return io.kind() == io::ErrorKind::TimedOut;
            }
            src = s.source();
        }
        false
    }
}

impl Pool {
    /// A pool for `groups`, keeping the connections `old` (a pool for
    /// `old_groups`) has to targets that are still there.
    pub fn renew(groups: &[Group], old: Option<(&Pool, &[Group])>) -> Pool {
        let slot = |g: &Group, t: &Target| -> Option<Arc<Slot>> {
            let (pool, old_groups) = old?;
            let og = old_groups.iter().position(|o| o.plan.name == g.plan.name)?;
            let ot = old_groups[og]
                .targets
                .iter()
                .position(|o| o.instance == t.instance && o.addr == t.addr)?;
            Some(pool.slots[og][ot].clone())
        };
        Pool {
            slots: groups
                .iter()
                .map(|g| {
                    g.targets
                        .iter()
                        .map(|t| slot(g, t).unwrap_or_default())
                        .collect()
                })
                .collect(),
        }
    }

    /// Closes connections idle for `idle` or more, and those the target
    /// closed.
    pub fn close_idle(&self, idle: Duration) {
        for slot in self.slots.iter().flatten() {
            slot.close_idle(idle);
        }
    }

    /// Sends `req` to target `t` of group `g` at `addr` over an idle
    /// connection, or a new one from namespace `ns`.
    async fn send(
        &self,
        ns: &str,
        (g, t): (usize, usize),
        addr: SocketAddr,
        mut req: Request<ReqBody>,
    ) -> Result<Response<Upstream>, UpstreamError> {
        let slot = &self.slots[g][t];
        while let Some(mut tx) = slot.take() {
            if tx.ready().await.is_err() {
                continue;
            }
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(Upstream::wrap(resp, tx, slot)),
                Err(mut e) => match e.take_message() {
                    // The target closed that idle connection first: not sent.
                    Some(r) => req = r,
                    None => return Err(UpstreamError::Http(e.into_error())),
                },
            }
        }
        // Boxed: the connect and handshake states would otherwise make
        // every request's future larger, and it is moved per request.
        Box::pin(Self::send_new(ns, addr, req, slot)).await
    }

    /// Sends `req` over a new connection to `addr` from namespace `ns`.
    async fn send_new(
        ns: &str,
        addr: SocketAddr,
        req: Request<ReqBody>,
        slot: &Arc<Slot>,
    ) -> Result<Response<Upstream>, UpstreamError> {
        let stream = connect_in(ns, addr, CONNECT_TIMEOUT)
            .await
            .map_err(UpstreamError::Connect)?;
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Http)?;
        tokio::spawn(conn);
        let resp = tx.send_request(req).await.map_err(UpstreamError::Http)?;
        Ok(Upstream::wrap(resp, tx, slot))
    }
}

/// A target's response body: once it has been read to the end, its
/// connection goes back to the node's pool; dropped before, it is closed.
pub struct Upstream {
    body: Incoming,
    conn: Option<(SendRequest<ReqBody>, Arc<Slot>)>,
}

impl Upstream {
    fn wrap(
        resp: Response<Incoming>,
        tx: SendRequest<ReqBody>,
        slot: &Arc<Slot>,
    ) -> Response<Upstream> {
        resp.map(|body| Upstream {
            body,
            conn: Some((tx, slot.clone())),
        })
    }

    fn release(&mut self) {
        if let Some((tx, slot)) = self.conn.take() {
            slot.put(tx);
        }
    }
}

impl HttpBody for Upstream {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.body).poll_frame(cx);
        match &r {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if self.body.is_end_stream() {
            self.release();
        }
    }
}

/// Which listener of which node a client connection arrived on, in terms
/// that outlive a reconfiguration (each request looks them up in the
/// configuration current when it arrives).
#[derive(Clone, Copy)]
pub struct Entrance {
    /// `Node::id`.
    pub node: usize,
    pub port: u16,
    /// The node's thread serving the connection (index into
    /// `NodeView::pools`).
    pub worker: usize,
}

/// What every request of one client connection shares: computed once per
/// connection, cloned (a reference count) per request.
#[derive(Clone)]
struct Client {
    peer: SocketAddr,
    /// The peer's address: X-Forwarded-For when the request brings none.
    ip: HeaderValue,
    /// The listener's port: X-Forwarded-Port.
    port: HeaderValue,
}

/// The configuration a connection's last request read, with what its
/// requests share: a request takes a reference to this connection's copy
/// (its counter is the connection's alone) instead of to the configuration
/// itself, whose counter every thread's requests would share. An idle
/// connection keeps an older configuration alive at most until the idle
/// timeout closes it.
struct Current {
    cfg: Arc<Config>,
    client: Client,
}

/// Serves one client connection until it closes (or the node sheds it:
/// see `connlimit`). It counts as busy from a request's head to the end of
/// its response; the node's registry closes it once idle for the load
/// balancer's idle timeout in force (also between a response and the end
/// of the next request's head: no per-request header timer). Once
/// `unbound` turns true (its listener was removed), the request in
/// progress finishes and the connection closes.
pub async fn serve(
    b: Arc<Balancer>,
    at: Entrance,
    mut unbound: watch::Receiver<bool>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    adm: Admitted,
) {
    let _ = stream.set_nodelay(true);
    let conn = adm.conn.clone();
    let client = Client {
        peer,
        ip: HeaderValue::from_str(&peer.ip().to_string()).expect("an address is ASCII"),
        port: HeaderValue::from(at.port),
    };
    let current = std::cell::RefCell::new(Arc::new(Current {
        cfg: b.config(),
        client,
    }));
    let svc = hyper::service::service_fn(move |req| {
        // One snapshot per request: a keep-alive connection follows a new
        // configuration from its next request on.
        let now = {
            let mut cur = current.borrow_mut();
            if let Some(cfg) = b.config_if_not(&cur.cfg) {
                let client = cur.client.clone();
                *cur = Arc::new(Current { cfg, client });
            }
            cur.clone()
        };
        let busy = conn.busy();
        async move {
            let resp = handle(&now.cfg, at, &now.client, req).await;
            Ok::<_, std::convert::Infallible>(resp.map(|body| Tracked::new(body, busy)))
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .title_case_headers(true)
        .header_read_timeout(None)
        .max_buf_size(READ_BUFFER)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => {}
        true = async { unbound.wait_for(|u| *u).await.is_ok() } => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
    drop(adm);
}

/// Whether a request head is over AWS's header quotas.
fn over_header_quotas(parts: &hyper::http::request::Parts) -> bool {
    let line = parts.method.as_str().len()
        + parts.uri.path_and_query().map_or(1, |p| p.as_str().len())
        + 10;
    let mut total = line;
    for (k, v) in &parts.headers {
        let len = k.as_str().len() + v.len() + 4;
        if len > MAX_HEADER {
            return true;
        }
        total += len;
    }
    line > MAX_REQUEST_LINE || total > MAX_HEADERS_TOTAL
}

/// Hop-by-hop headers: they describe one connection, never forwarded.
static HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::UPGRADE,
];
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");

fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Most messages have none: one pass over their names is cheaper than
    // a hashed lookup per hop-by-hop name.
    if !h.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
    if let Some(c) = h.get(header::CONNECTION) {
        // Headers the sender declared connection-specific go too.
        let named: Vec<HeaderName> = c
            .to_str()
            .unwrap_or("")
            .split(',')
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for n in named {
            h.remove(n);
        }
    }
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
}

/// Logs the request as 460 if the client goes away before it is answered
/// (hyper drops the handler future then).
struct Pending<'a> {
    log: &'a AccessLog,
    /// The worker thread whose access log buffer gets the line.
    worker: usize,
    entry: Option<Entry>,
}

impl Pending<'_> {
    fn finish(&mut self, status: u16, sent_bytes: u64) {
        if let Some(mut e) = self.entry.take() {
            e.elb_status = status;
            e.sent_bytes = sent_bytes;
            e.time = SystemTime::now();
            self.log.send(self.worker, e);
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.finish(460, 0);
    }
}

struct Inflight<'a>(&'a AtomicU32);

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle(
    cfg: &Config,
    at: Entrance,
    client: &Client,
    req: Request<Incoming>,
) -> Response<Body> {
    let peer = client.peer;
    let t0 = Instant::now();
    let (mut parts, body) = req.into_parts();
    let trace = match parts.headers.get(&X_AMZN_TRACE_ID) {
        Some(v) if v.as_bytes().starts_with(b"Root=") => v.clone(),
        _ => trace_id(),
    };
    let Some((ni, li)) = cfg.entrance(at.node, at.port) else {
        // The listener was removed under a connection: the request goes
        // unlogged, as no load balancer's listener took it.
        return elb_error(
            &mut Pending {
                log: &cfg.log,
                worker: at.worker,
                entry: None,
            },
            StatusCode::SERVICE_UNAVAILABLE,
        );
    };
    let node = &cfg.nodes[ni];
    let lb = &cfg.lbs[node.lb];
    let listener = &lb.listeners[li];
    let mut pending = Pending {
        log: &cfg.log,
        worker: at.worker,
        entry: Some(Entry::new(
            &parts,
            lb.log_id,
            listener.port,
            peer,
            trace.clone(),
        )),
    };
    if over_header_quotas(&parts) {
        return elb_error(&mut pending, StatusCode::BAD_REQUEST);
    }
    let entry = pending.entry.as_mut().expect("just set");
    let body = match super::waf_gate::check(cfg, node.lb, peer, &parts, body, entry).await {
        Ok(body) => body,
        Err(blocked) => return waf_block(&mut pending, blocked),
    };
    let entry = pending.entry.as_mut().expect("still pending");
    let (priority, forward) = listener.route(&parts, peer.ip());
    entry.priority = Some(priority);
    // Cookies name groups and targets by ids that outlive a change of the
    // configuration (indexes do not).
    let (sticky_group, sticky_target) = sticky_cookies(&parts.headers);
    let sticky_group = sticky_group.and_then(|id| cfg.groups.iter().position(|g| g.log_id == id));
    let Some(g) = forward.choose(sticky_group) else {
        return elb_error(&mut pending, StatusCode::SERVICE_UNAVAILABLE);
    };
    let group = &cfg.groups[g];
    entry.group = Some(group.log_id);
    let metrics = group.metrics.shard(at.worker);
    metrics.requests.fetch_add(1, Ordering::Relaxed);
    let sticky = group
        .plan
        .stickiness_s
        .and_then(|_| sticky_target.filter(|(sg, _)| *sg == group.log_id))
        .and_then(|(_, t)| group.target_by_id(t));
    let Some(t) = group.pick(ni, sticky) else {
        metrics.elb_5xx.fetch_add(1, Ordering::Relaxed);
        return elb_error(&mut pending, StatusCode::SERVICE_UNAVAILABLE);
    };
    let target = &group.targets[t];
    entry.target = Some(target.addr);

    let h = &mut parts.headers;
    strip_hop_by_hop(h);
    let xff = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(old) => HeaderValue::from_str(&format!("{old}, {}", peer.ip())).ok(),
        None => Some(client.ip.clone()),
    };
    if let Some(v) = xff {
        h.insert(X_FORWARDED_FOR.clone(), v);
    }
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    h.insert(X_FORWARDED_PORT.clone(), client.port.clone());
    h.insert(X_AMZN_TRACE_ID.clone(), trace);
    // Targets get origin-form; HTTP/1.0 clients may have sent no Host.
    if parts.uri.authority().is_some() {
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = match Uri::try_from(pq) {
            Ok(u) => u,
            Err(_) => return elb_error(&mut pending, StatusCode::BAD_REQUEST),
        };
    }
    if !parts.headers.contains_key(header::HOST) {
        parts.headers.insert(header::HOST, target.host.clone());
    }
    // ALB always speaks HTTP/1.1 to targets.
    parts.version = Version::HTTP_11;

    target.shared.inflight.fetch_add(1, Ordering::Relaxed);
    let inflight = Inflight(&target.shared.inflight);
    let sent = Instant::now();
    let result = tokio::time::timeout(
        lb.idle_timeout,
        node.pools[at.worker].send(
            &node.node.ns,
            (g, t),
            target.addr,
            Request::from_parts(parts, body),
        ),
    )
    .await;
    drop(inflight);
    let answered = Instant::now();
    let entry = pending.entry.as_mut().expect("still pending");
    entry.request_processing = (sent - t0).as_secs_f64();
    let mut resp = match result {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) if e.is_client_body() => {
            tracing::debug!("{} -> {}: {e:#}", peer, target.addr);
            return elb_error(&mut pending, StatusCode::BAD_REQUEST);
        }
        Ok(Err(e)) => {
            metrics.elb_5xx.fetch_add(1, Ordering::Relaxed);
            let status = if e.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            tracing::debug!("{} -> {}: {e:#}", peer, target.addr);
            return elb_error(&mut pending, status);
        }
        Err(_) => {
            metrics.elb_5xx.fetch_add(1, Ordering::Relaxed);
            return elb_error(&mut pending, StatusCode::GATEWAY_TIMEOUT);
        }
    };
    let status = resp.status().as_u16();
    metrics.target_status(status);
    metrics
        .response_time
        .record((answered - sent).as_micros() as u64);
    entry.target_status = Some(status);
    entry.target_processing = Some((answered - sent).as_secs_f64());
    entry.response_processing = Some(answered.elapsed().as_secs_f64());
    strip_hop_by_hop(resp.headers_mut());
    if let Some(secs) = group.plan.stickiness_s {
        set_sticky_cookies(resp.headers_mut(), group.log_id, target.shared.id, secs);
    }
    let sent_bytes = head_len(resp.headers())
        + resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
    pending.finish(status, sent_bytes);
    resp.map(Either::Left)
}

/// Approximate bytes of a message head, for the access log's byte counts.
pub fn head_len(h: &HeaderMap) -> u64 {
    17 + h
        .iter()
        .map(|(k, v)| (k.as_str().len() + v.len() + 4) as u64)
        .sum::<u64>()
        + 2
}

/// The ALB's own error responses, byte for byte like awselb/2.0's.
fn elb_error(pending: &mut Pending<'_>, status: StatusCode) -> Response<Body> {
    let text = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let body = format!(
        "<html>\r\n<head><title>{text}</title></head>\r\n<body>\r\n<center><h1>{text}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    let len = body.len() as u64;
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static("awselb/2.0"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    let sent = head_len(r.headers()) + len;
    pending.finish(status.as_u16(), sent);
    r
}

/// A web ACL's block: the ALB's own 403 page, or the rule's custom response.
fn waf_block(pending: &mut Pending<'_>, blocked: Blocked) -> Response<Body> {
    let status = StatusCode::from_u16(blocked.status).unwrap_or(StatusCode::FORBIDDEN);
    let Some(text) = blocked.body else {
        return elb_error(pending, status);
    };
    let len = text.len() as u64;
    let mut r = Response::new(Either::Right(Full::new(Bytes::from(text))));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static("awselb/2.0"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let sent = head_len(r.headers()) + len;
    pending.finish(status.as_u16(), sent);
    r
}

/// `Root=1-<epoch seconds, hex>-<96 random bits, hex>`.
fn trace_id() -> HeaderValue {
    let secs = now_secs() as u32;
    let random: [u8; 12] = rand::random();
    let mut v = *b"Root=1-00000000-000000000000000000000000";
    hex::encode_to_slice(secs.to_be_bytes(), &mut v[7..15]).expect("8 hex digits");
    hex::encode_to_slice(random, &mut v[16..]).expect("24 hex digits");
    HeaderValue::from_bytes(&v).expect("ASCII")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The group (AWSALBTG) and target (AWSALB) a client's cookies stick it to,
/// if still valid: `group` and `(group, target)`, as `Group::log_id` and
/// `Registered::id`.
fn sticky_cookies(h: &HeaderMap) -> (Option<usize>, Option<(usize, usize)>) {
    let (mut group, mut target) = (None, None);
    for v in h.get_all(header::COOKIE) {
        for c in v.to_str().unwrap_or("").split(';') {
            match c.trim().split_once('=') {
                Some(("AWSALBTG", v)) => group = decode_cookie(v).map(|(g, _)| g),
                Some(("AWSALB", v)) => target = decode_cookie(v),
                _ => {}
            }
        }
    }
    (group, target)
}

/// Cookie value: expiry (unix seconds), group and target, in hex. Opaque to
/// clients like AWS's encrypted one, but readable when debugging a lab.
fn encode_cookie(expires: u64, group: usize, target: usize) -> String {
    format!("{expires:010x}{group:04x}{target:04x}")
}

fn decode_cookie(v: &str) -> Option<(usize, usize)> {
    if v.len() != 18 || !v.is_ascii() {
        return None;
    }
    let expires = u64::from_str_radix(&v[..10], 16).ok()?;
    let group = usize::from_str_radix(&v[10..14], 16).ok()?;
    let target = usize::from_str_radix(&v[14..], 16).ok()?;
    (expires > now_secs()).then_some((group, target))
}

/// `Mon, 02 Jul 2018 22:23:00 GMT`: a cookie's `Expires`.
fn cookie_date(unix: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(unix))
}

fn set_sticky_cookies(h: &mut HeaderMap, group: usize, target: usize, secs: u32) {
    let expires = now_secs() + secs as u64;
    let value = encode_cookie(expires, group, target);
    let when = cookie_date(expires);
    for name in ["AWSALBTG", "AWSALB"] {
        if let Ok(v) = HeaderValue::from_str(&format!("{name}={value}; Expires={when}; Path=/")) {
            h.append(header::SET_COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_expiry_dates() {
        assert_eq!(cookie_date(1_530_570_180), "Mon, 02 Jul 2018 22:23:00 GMT");
        assert_eq!(cookie_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn cookies_round_trip_and_expire() {
        let v = encode_cookie(now_secs() + 60, 3, 7);
        assert_eq!(decode_cookie(&v), Some((3, 7)));
        assert_eq!(decode_cookie(&encode_cookie(now_secs() - 1, 3, 7)), None);
        assert_eq!(decode_cookie("garbage"), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; AWSALB={v}; AWSALBTG={v}")).unwrap(),
        );
        assert_eq!(sticky_cookies(&h), (Some(3), Some((3, 7))));
    }

    #[test]
    fn hop_by_hop_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn trace_id_shape() {
        let t = trace_id();
        let s = t.to_str().unwrap();
        let parts: Vec<&str> = s.trim_start_matches("Root=").split('-').collect();
        assert_eq!(parts[0], "1");
        assert_eq!(parts[1].len(), 8);
        assert_eq!(parts[2].len(), 24);
    }
}
