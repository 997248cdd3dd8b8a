//! The lab's ALB access log, one line per request in AWS's format, written
//! in batches (see [`AccessLog`]).

use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Version};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::Notify;

pub struct Entry {
    pub time: SystemTime,
    pub created: SystemTime,
    /// The load balancer's index in the log's [`Names`].
    pub lb: usize,
    pub port: u16,
    pub client: SocketAddr,
    pub target: Option<SocketAddr>,
    pub request_processing: f64,
    pub target_processing: Option<f64>,
    pub response_processing: Option<f64>,
    pub elb_status: u16,
    pub target_status: Option<u16>,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    pub method: Method,
    pub host: Option<HeaderValue>,
    pub path: Option<PathAndQuery>,
    pub version: Version,
    pub user_agent: Option<HeaderValue>,
    /// The target group's index in the log's [`Names`].
    pub group: Option<usize>,
    pub trace_id: HeaderValue,
    pub priority: Option<u32>,
    /// `actions_executed` when a web ACL took part (`waf,forward`, `waf`,
    /// `waf-failed`); `None` = `forward`.
    pub waf: Option<&'static str>,
}

impl Entry {
    pub fn new(
        req: &Parts,
        lb: usize,
        port: u16,
        client: SocketAddr,
        trace_id: HeaderValue,
    ) -> Entry {
        let now = SystemTime::now();
        let body = req
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        let line = req.method.as_str().len()
            + req.uri.path_and_query().map_or(1, |p| p.as_str().len())
            + 11;
        Entry {
            time: now,
            created: now,
            lb,
            port,
            client,
            target: None,
            request_processing: -1.0,
            target_processing: None,
            response_processing: None,
            elb_status: 0,
            target_status: None,
            received_bytes: line as u64 + super::proxy::head_len(&req.headers) - 17 + body,
            sent_bytes: 0,
            method: req.method.clone(),
            host: req.headers.get(header::HOST).cloned(),
            path: req.uri.path_and_query().cloned(),
            version: req.version,
            user_agent: req.headers.get(header::USER_AGENT).cloned(),
            group: None,
            trace_id,
            priority: None,
            waf: None,
        }
    }
}

/// The pause after a write: lines appear within this delay, and a busy log
/// costs one `write` per buffer per interval.
const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);
/// Bytes a worker's buffer holds at most (a few thousand lines): when the
/// disk cannot keep up, further lines are dropped and counted rather than
/// queued without bound, as real proxies do.
const BUFFER_LIMIT: usize = 4 << 20;

/// The access log of one daemon. Each worker thread formats its records
/// into its own buffer as the requests finish (a record then holds nothing
/// of the connection's, so hyper reuses its read buffer); one writer task
/// swaps the buffers out and writes them, only when some buffer has lines:
/// no per-request channel, wake-up or allocation.
#[derive(Clone)]
pub struct AccessLog(Arc<Shared>);

struct Shared {
    names: Mutex<Names>,
    /// Bumped when a name is added: workers refresh their copies.
    names_version: AtomicU64,
    /// One per worker thread (uncontended but for the writer's swap).
    buffers: Vec<Mutex<Buffer>>,
    /// Signalled when a line goes into an empty buffer.
    lines: Notify,
    dropped: AtomicU64,
}

/// A worker's lines not yet written, and its copy of the names.
#[derive(Default)]
struct Buffer {
    lines: String,
    names: Names,
    names_version: u64,
    second: Second,
}

impl AccessLog {
    /// Formats the record into worker `worker`'s buffer.
    pub fn send(&self, worker: usize, e: Entry) {
        let s = &self.0;
        let mut buf = s.buffers[worker % s.buffers.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if buf.lines.len() >= BUFFER_LIMIT {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // The record's names were interned before it was made: a copy at
        // least this recent has them.
        let version = s.names_version.load(Ordering::Acquire);
        if buf.names_version != version {
            buf.names = s.lock_names().clone();
            buf.names_version = version;
        }
        let was_empty = buf.lines.is_empty();
        let Buffer {
            lines,
            names,
            second,
            ..
        } = &mut *buf;
        format_entry(lines, &e, names, second);
        drop(buf);
        if was_empty {
            s.lines.notify_one();
        }
    }

    /// Records dropped because the writer was behind or the write failed.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// The index that stands for load balancer `elb` (`app/<name>/<id>`) in
    /// records.
    pub fn elb_id(&self, elb: &str) -> usize {
        let s = &self.0;
        s.intern(&mut s.lock_names().elb, elb)
    }

    /// The index that stands for target group `arn` in records.
    pub fn arn_id(&self, arn: &str) -> usize {
        let s = &self.0;
        s.intern(&mut s.lock_names().arn, arn)
    }
}

impl Shared {
    fn lock_names(&self) -> std::sync::MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names only grow: a record formatted after a reconfiguration still
    /// finds the names of the load balancer and group that served it.
    fn intern(&self, names: &mut Vec<String>, name: &str) -> usize {
        match names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                names.push(name.to_string());
                self.names_version.fetch_add(1, Ordering::Release);
                names.len() - 1
            }
        }
    }
}

/// Names the writer needs to print a record.
#[derive(Default, Clone)]
pub struct Names {
    /// `app/<name>/<id>` of load balancers.
    pub elb: Vec<String>,
    /// ARNs of target groups.
    pub arn: Vec<String>,
}

/// Starts the writer task for `workers` worker threads; the log file is
/// appended to (a daemon restart keeps earlier lines) and capped.
pub fn start(path: &Path, workers: usize) -> std::io::Result<AccessLog> {
    let mut file = crate::logfile::CappedLog::open(path)?;
    let log = AccessLog(Arc::new(Shared {
        names: Mutex::default(),
        names_version: AtomicU64::new(0),
        buffers: (0..workers.max(1)).map(|_| Mutex::default()).collect(),
        lines: Notify::new(),
        dropped: AtomicU64::new(0),
    }));
    let s = log.0.clone();
    tokio::spawn(async move {
        let mut spare = String::new();
        loop {
            // A quiet log's line is written at once; the lines that come
            // during the pause after it wait for the next write (a permit
            // of `lines` ends the next wait at once).
            s.lines.notified().await;
            for b in &s.buffers {
                std::mem::swap(
                    &mut b.lock().unwrap_or_else(|e| e.into_inner()).lines,
                    &mut spare,
                );
                if spare.is_empty() {
                    continue;
                }
                // tmpfs: a write is a memory copy, fine on the runtime; the
                // file is capped, so memory is too.
                if file.write_all(spare.as_bytes()).is_err() {
                    let lost = spare.bytes().filter(|&c| c == b'\n').count();
                    s.dropped.fetch_add(lost as u64, Ordering::Relaxed);
                }
                spare.clear();
                // Keep a burst's memory from staying with the buffers.
                spare.shrink_to(64 * 1024);
            }
            tokio::time::sleep(FLUSH_INTERVAL).await;
        }
    });
    Ok(log)
}

/// Writes a duration in seconds to the millisecond, then a space; `-1`
/// when there is none (AWS's way).
fn write_secs(out: &mut String, v: Option<f64>) {
    match v {
        Some(s) if (0.0..1e15).contains(&s) => {
            let ms = (s * 1000.0).round() as u64;
            write_uint(out, ms / 1000, 1);
            out.push('.');
            write_uint(out, ms % 1000, 3);
            out.push(' ');
        }
        Some(s) if s >= 0.0 => {
            let _ = write!(out, "{s:.3} ");
        }
        _ => out.push_str("-1 "),
    }
}

/// Writes `v` or `-`, then a space.
fn write_opt(out: &mut String, v: Option<u64>) {
    match v {
        Some(v) => write_uint(out, v, 1),
        None => out.push('-'),
    }
    out.push(' ');
}

/// Writes a header value with `"` escaped, `-` when absent or not text.
fn write_quoted(out: &mut String, v: Option<&HeaderValue>) {
    let text = v.and_then(|v| v.to_str().ok()).unwrap_or("-");
    for c in text.chars() {
        if c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
}

/// One record, written straight into the batch buffer (no per-field
/// allocation: the writer formats every request the daemon serves).
fn format_entry(out: &mut String, e: &Entry, n: &Names, second: &mut Second) {
    out.push_str("http ");
    write_iso8601(out, e.time, second);
    out.push(' ');
    out.push_str(&n.elb[e.lb]);
    out.push(' ');
    write_addr(out, e.client);
    out.push(' ');
    match e.target {
        Some(t) => write_addr(out, t),
        None => out.push('-'),
    }
    out.push(' ');
    write_secs(out, Some(e.request_processing));
    write_secs(out, e.target_processing);
    write_secs(out, e.response_processing);
    write_uint(out, e.elb_status.into(), 1);
    out.push(' ');
    write_opt(out, e.target_status.map(u64::from));
    let host = e
        .host
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .map_or("-", |h| h.rsplit_once(':').map_or(h, |(h, _)| h));
    write_uint(out, e.received_bytes, 1);
    out.push(' ');
    write_uint(out, e.sent_bytes, 1);
    out.push_str(" \"");
    out.push_str(e.method.as_str());
    out.push_str(" http://");
    out.push_str(host);
    out.push(':');
    write_uint(out, e.port.into(), 1);
    out.push_str(e.path.as_ref().map_or("/", |p| p.as_str()));
    out.push(' ');
    let _ = write!(out, "{:?}", e.version);
    out.push_str("\" \"");
    write_quoted(out, e.user_agent.as_ref());
    out.push_str("\" - - ");
    out.push_str(e.group.map_or("-", |g| n.arn[g].as_str()));
    out.push_str(" \"");
    out.push_str(e.trace_id.to_str().unwrap_or("-"));
    out.push_str("\" \"-\" \"-\" ");
    write_opt(out, e.priority.map(u64::from));
    write_iso8601(out, e.created, second);
    out.push_str(" \"");
    out.push_str(e.waf.unwrap_or("forward"));
    out.push_str("\" \"-\" \"-\" \"");
    match e.target {
        Some(t) => write_addr(out, t),
        None => out.push('-'),
    }
    out.push_str("\" \"");
    match e.target_status {
        Some(s) => write_uint(out, s.into(), 1),
        None => out.push('-'),
    }
    out.push_str("\" \"-\" \"-\"\n");
}

/// `n` in decimal, zero-padded to `width` digits.
fn write_uint(out: &mut String, n: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let text = digits.format(n);
    for _ in text.len()..width {
        out.push('0');
    }
    out.push_str(text);
}

/// `ip:port`, as `SocketAddr`'s `Display` writes it.
fn write_addr(out: &mut String, a: SocketAddr) {
    match a {
        SocketAddr::V4(v4) => {
            for (i, o) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                write_uint(out, o.into(), 1);
            }
            out.push(':');
            write_uint(out, v4.port().into(), 1);
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// The date and time to the second last written by a buffer
/// (`2018-07-02T22:23:00.`): a busy log writes many records a second, and
/// two dates per record.
#[derive(Default)]
struct Second {
    unix: Option<u64>,
    text: String,
}

/// `2018-07-02T22:23:00.186641Z`
fn write_iso8601(out: &mut String, t: SystemTime, last: &mut Second) {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    if last.unix != Some(d.as_secs()) {
        let s = d.as_secs() as i64;
        let (y, mo, da) = crate::utc::civil(s.div_euclid(86_400));
        let r = s.rem_euclid(86_400) as u64;
        let text = &mut last.text;
        text.clear();
        if y < 0 {
            text.push('-');
        }
        write_uint(text, y.unsigned_abs(), 4);
        text.push('-');
        write_uint(text, mo.into(), 2);
        text.push('-');
        write_uint(text, da.into(), 2);
        text.push('T');
        write_uint(text, r / 3600, 2);
        text.push(':');
        write_uint(text, r / 60 % 60, 2);
        text.push(':');
        write_uint(text, r % 60, 2);
        text.push('.');
        last.unix = Some(d.as_secs());
    }
    out.push_str(&last.text);
    write_uint(out, d.subsec_micros().into(), 6);
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn iso8601(t: SystemTime) -> String {
        let mut s = String::new();
        write_iso8601(&mut s, t, &mut Second::default());
        s
    }

    #[test]
    fn dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_530_570_180_186_641);
        assert_eq!(iso8601(t), "2018-07-02T22:23:00.186641Z");
        // A record in the same second reuses the date; the next second not.
        let mut last = Second::default();
        let mut s = String::new();
        for micros in [
            1_530_570_180_186_641,
            1_530_570_180_999_999,
            1_530_570_181_000_007,
        ] {
            write_iso8601(
                &mut s,
                SystemTime::UNIX_EPOCH + Duration::from_micros(micros),
                &mut last,
            );
            s.push(' ');
        }
        assert_eq!(
            s,
            "2018-07-02T22:23:00.186641Z 2018-07-02T22:23:00.999999Z 2018-07-02T22:23:01.000007Z "
        );
    }

    #[test]
    fn numbers_written_as_format_writes_them() {
        for n in [0u64, 7, 10, 999, 1000, 65535, u64::MAX] {
            let mut out = String::new();
            write_uint(&mut out, n, 1);
            assert_eq!(out, n.to_string());
            out.clear();
            write_uint(&mut out, n, 6);
            assert_eq!(out, format!("{n:06}"));
        }
        for a in ["0.0.0.0:0", "203.0.113.10:40000", "[::1]:80"] {
            let a: SocketAddr = a.parse().unwrap();
            let mut out = String::new();
            write_addr(&mut out, a);
            assert_eq!(out, a.to_string());
        }
        for v in [0.0, 0.0001, 0.0512, 0.9996, 1.5, 61.25, 12345.678] {
            let mut out = String::new();
            write_secs(&mut out, Some(v));
            assert_eq!(out, format!("{v:.3} "));
        }
        let mut out = String::new();
        write_secs(&mut out, None);
        write_secs(&mut out, Some(-1.0));
        assert_eq!(out, "-1 -1 ");
    }

    #[test]
    fn line_has_every_aws_field() {
        let req = hyper::Request::builder()
            .method("POST")
            .uri("/api/v1/recommendation?x=1")
            .header("host", "alb-1.us-east-1.elb.amazonaws.com")
            .header("user-agent", "curl/8.5.0")
            .header("content-length", "16")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let mut e = Entry::new(
            &req,
            0,
            80,
            "203.0.113.10:40000".parse().unwrap(),
            HeaderValue::from_static("Root=1-67891233-abcdef012345678912345678"),
        );
        e.target = Some("10.0.20.4:8000".parse().unwrap());
        e.request_processing = 0.0001;
        e.target_processing = Some(0.0512);
        e.response_processing = Some(0.0);
        e.elb_status = 200;
        e.target_status = Some(200);
        e.sent_bytes = 300;
        e.group = Some(0);
        e.priority = Some(0);
        let names = Names {
            elb: vec!["app/alb/0123456789abcdef".into()],
            arn: vec!["arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg-v1/0123456789abcdef".into()],
        };
        let mut out = String::new();
        format_entry(&mut out, &e, &names, &mut Second::default());
        let rest = out.split_once(' ').unwrap().1.split_once(' ').unwrap().1;
        assert!(out.starts_with("http 20"));
        assert_eq!(
            rest,
            format!("app/alb/0123456789abcdef 203.0.113.10:40000 10.0.20.4:8000 0.000 0.051 0.000 200 200 {} 300 \"POST http://alb-1.us-east-1.elb.amazonaws.com:80/api/v1/recommendation?x=1 HTTP/1.1\" \"curl/8.5.0\" - - arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg-v1/0123456789abcdef \"Root=1-67891233-abcdef012345678912345678\" \"-\" \"-\" 0 {} \"forward\" \"-\" \"-\" \"10.0.20.4:8000\" \"200\" \"-\" \"-\"\n", e.received_bytes, iso8601(e.created))
        );
        // 29 space-separated fields outside the quotes, like AWS's.
        let mut n = 0;
        let mut quoted = false;
        for c in out.trim_end().chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => n += 1,
                _ => {}
            }
        }
        assert_eq!(n + 1, 29);
    }
}
