//! The seed's two Flask model servers (001, `model_v1_prod.py` and
//! `model_v2_canary.py`), reimplemented so a lab needs no Python: same routes,
//! status codes, headers and bodies as Flask 3 on Werkzeug's dev server.
//!
//! One deliberate difference: Werkzeug's dev server closes the connection after
//! every response; this one keeps HTTP/1.1 connections alive so the load
//! balancer's connection pool (and the benchmarks) measure the balancer, not
//! TCP handshakes.
//!
//! Owns: the seed apps' HTTP behaviour, byte for byte. Must not touch: anything but its
//! socket: it runs inside an instance, as the seed's Python would.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, SERVER};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const SERVER_HEADER: &str = "Werkzeug/3.0.1 Python/3.11.7";
const ROUTE: &str = "/api/v1/recommendation";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    V1,
    V2,
}

impl Model {
    pub fn parse(s: &str) -> Option<Model> {
        match s {
            "v1" | "model-v1" => Some(Model::V1),
            "v2" | "model-v2" => Some(Model::V2),
            _ => None,
        }
    }
    fn default_id(self) -> &'static str {
        match self {
            Model::V1 => "V1 - Stable",
            Model::V2 => "V2 - DeepLearning - Canary",
        }
    }
}

struct App {
    model: Model,
    model_id: String,
}

pub fn run(model: &str, port: u16) -> Result<(), super::WorkloadError> {
    let m = Model::parse(model).ok_or_else(|| super::WorkloadError::UnknownModel(model.into()))?;
    let failed = |source| super::WorkloadError::ModelServer { port, source };
    let model_id = std::env::var("MODEL_ID").unwrap_or_else(|_| m.default_id().to_string());
    let app = Arc::new(App { model: m, model_id });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(failed)?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
            .await
            .map_err(failed)?;
        banner(model, port);
        serve(listener, app).await;
        Ok(())
    })
}

/// What `app.run(host='0.0.0.0', port=…)` prints on start (to stderr).
fn banner(model: &str, port: u16) {
    let script = match Model::parse(model) {
        Some(Model::V1) => "model_v1_prod",
        _ => "model_v2_canary",
    };
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, " * Serving Flask app '{script}'\n * Debug mode: off");
    let _ = writeln!(e, "WARNING: This is a development server. Do not use it in a production deployment. Use a production WSGI server instead.");
    let _ = writeln!(
        e,
        " * Running on all addresses (0.0.0.0)\n * Running on http://127.0.0.1:{port}"
    );
    // Werkzeug finds the primary address the same way: a UDP "connect" sends nothing.
    if let Some(ip) = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("10.253.155.219:58162").map(|_| s))
        .and_then(|s| s.local_addr())
        .ok()
        .filter(|a| !a.ip().is_unspecified())
    {
        let _ = writeln!(e, " * Running on http://{}:{port}", ip.ip());
    }
    let _ = writeln!(e, "Press CTRL+C to quit");
}

async fn serve(listener: tokio::net::TcpListener, app: Arc<App>) {
    let log = access_log_writer();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            // EMFILE and friends: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let log = log.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let app = app.clone();
                let log = log.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&app, req, peer, &log).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .title_case_headers(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(
    app: &App,
    req: Request<Incoming>,
    peer: SocketAddr,
    log: &mpsc::UnboundedSender<String>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let resp = respond(app, &parts.method, parts.uri.path(), content_type, &body).await;
    // Werkzeug's request log line.
    let _ = log.send(format!(
        "{} - - [{}] \"{} {} {:?}\" {} -\n",
        peer.ip(),
        local_time(),
        parts.method,
        parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        parts.version,
        resp.status().as_u16()
    ));
    resp
}

/// Request log lines go to stderr like the dev server's, written in batches
/// by one task at most 20 times a second: a syscall per request would cost
/// more than the request.
fn access_log_writer() -> mpsc::UnboundedSender<String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(256);
        let mut out = String::with_capacity(64 * 1024);
        while rx.recv_many(&mut batch, 256).await > 0 {
            for line in batch.drain(..) {
                out.push_str(&line);
            }
            // `eprint!`, not a raw write: the test harness captures it, so
            // in-process model servers in unit tests do not flood the output.
            eprint!("{out}");
            out.clear();
            // Lines sent meanwhile just queue, without waking this task.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    tx
}

/// `23/Nov/2026 16:45:04` in local time.
fn local_time() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // SAFETY: localtime_r writes only into the tm we pass.
    let tm = unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    };
    format!(
        "{:02}/{}/{} {:02}:{:02}:{:02}",
        tm.tm_mday,
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The whole Flask app: routing, method check, `request.get_json()`, the view.
async fn respond(
    app: &App,
    method: &Method,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Response<Full<Bytes>> {
    if !route_matches(path) {
        return html_error(StatusCode::NOT_FOUND);
    }
    if method == Method::OPTIONS {
        let mut r = Response::new(Full::new(Bytes::new()));
        set_common(&mut r, "text/html; charset=utf-8");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("OPTIONS, POST"));
        return r;
    }
    if method != Method::POST {
        let mut r = html_error(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("OPTIONS, POST"));
        return r;
    }
    if !is_json(content_type) {
        return html_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let start = Instant::now();
    let data = match parse_json(body) {
        Some(v) => v,
        None => return html_error(StatusCode::BAD_REQUEST),
    };
    // `data.get(...)` on anything but a dict is an AttributeError: 500.
    let PyVal::Dict(fields) = data else {
        return html_error(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let user = fields
        .iter()
        .find(|(k, _)| k == "user_id")
        .map(|(_, v)| py_str(v))
        .unwrap_or_else(|| "N/A".to_string());
    let (event, recs): (String, &[&str]) = match app.model {
        Model::V1 => (
            format!("User {user} purchase processed."),
            &["item_X_old_model", "item_Y_old_model"],
        ),
        Model::V2 => {
            tokio::time::sleep(Duration::from_millis(50)).await;
            (
                format!("User {user} purchase processed. Metrics available."),
                &["item_A_new", "item_B_new", "item_C_new"],
            )
        }
    };
    let latency = round_half_even(start.elapsed().as_secs_f64() * 1000.0);
    if app.model == Model::V2 {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "[LOG] USER:{user}, MODEL:{}, LATENCY:{latency}ms",
            app.model_id
        );
        let _ = out.flush();
    }
    let mut r = Response::new(Full::new(Bytes::from(jsonify(
        &event,
        latency,
        &app.model_id,
        recs,
    ))));
    set_common(&mut r, "application/json");
    r
}

fn set_common<B>(r: &mut Response<B>, content_type: &'static str) {
    let h = r.headers_mut();
    h.insert(SERVER, HeaderValue::from_static(SERVER_HEADER));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
}

/// Werkzeug matches the percent-decoded path, merging repeated slashes.
fn route_matches(path: &str) -> bool {
    if path.len() == ROUTE.len() {
        return path == ROUTE;
    }
    let decoded = percent_decode(path);
    let mut merged = Vec::with_capacity(decoded.len());
    for &b in &decoded {
        if !(b == b'/' && merged.last() == Some(&b'/')) {
            merged.push(b);
        }
    }
    merged == ROUTE.as_bytes()
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Werkzeug's `Request.is_json`.
fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let mt = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mt == "application/json" || (mt.starts_with("application/") && mt.ends_with("+json"))
}

/// Werkzeug's HTML error page for `status`.
pub fn html_error(status: StatusCode) -> Response<Full<Bytes>> {
    let (title, text) = match status.as_u16() {
        400 => ("Bad Request", "The browser (or proxy) sent a request that this server could not understand."),
        404 => ("Not Found", "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."),
        405 => ("Method Not Allowed", "The method is not allowed for the requested URL."),
        415 => ("Unsupported Media Type", "Did not attempt to load JSON data because the request Content-Type was not &#39;application/json&#39;."),
        _ => ("Internal Server Error", "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application."),
    };
    let body = format!(
        "<!doctype html>\n<html lang=en>\n<title>{} {title}</title>\n<h1>{title}</h1>\n<p>{text}</p>\n",
        status.as_u16()
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    set_common(&mut r, "text/html; charset=utf-8");
    r
}

/// Python's `round()`: halves go to the even neighbour.
fn round_half_even(x: f64) -> u64 {
    let f = x.floor();
    let diff = x - f;
    let r = if diff > 0.5 || (diff == 0.5 && (f as u64) % 2 == 1) {
        f + 1.0
    } else {
        f
    };
    r as u64
}

/// Flask's `jsonify` for the view's dict: sorted keys, compact separators,
/// ASCII-only escaping, trailing newline.
fn jsonify(event: &str, latency: u64, model_id: &str, recs: &[&str]) -> String {
    let mut s = String::with_capacity(160);
    s.push_str("{\"event_log\":");
    json_str(&mut s, event);
    s.push_str(&format!(",\"latency_ms\":{latency},\"model_id\":"));
    json_str(&mut s, model_id);
    s.push_str(",\"recommendation\":[");
    for (i, r) in recs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        json_str(&mut s, r);
    }
    s.push_str("]}\n");
    s
}

/// `json.dumps(str)` with `ensure_ascii=True`.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e && (c as u32) != 0x7f => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", u));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A value as Python's `json.loads` builds it.
#[derive(Debug, Clone, PartialEq)]
enum PyVal {
    None,
    Bool(bool),
    /// Arbitrary precision, kept as its decimal digits.
    Int(String),
    Float(f64),
    Str(String),
    List(Vec<PyVal>),
    /// Insertion order; a repeated key keeps its first position, last value.
    Dict(Vec<(String, PyVal)>),
}

/// `json.loads(body)` (UTF-8, BOM allowed, NaN/Infinity accepted like Python).
///
/// `serde_json` does the parsing and validation. Two things it cannot do
/// stay here, small: Python's non-standard `NaN`/`Infinity`/`-Infinity`
/// tokens (masked before parsing, see [`mask_non_finite`]) and numbers as
/// Python reads them (arbitrary-precision ints, `1e400` as `inf`, `-0` as
/// `0`), which need the number's text: every value is taken as a
/// [`RawValue`] and only its own level decoded, so no crate-wide
/// `arbitrary_precision` feature changes what other modules' JSON means.
fn parse_json(body: &[u8]) -> Option<PyVal> {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let text = std::str::from_utf8(body).ok()?;
    let (masked, specials) = mask_non_finite(text);
    let raw: &RawValue = serde_json::from_str(&masked).ok()?;
    let base = masked.as_ptr() as usize;
    to_py(raw, &specials, base, 0)
}

/// Replaces each `NaN`, `Infinity` and `-Infinity` token outside strings by
/// an equally long `0` padded with spaces (so offsets stay put) and returns
/// the offsets with the float Python reads there. A token counts only where
/// a value may start (after `[`, `,`, `:` or at the beginning), so `-NaN` or
/// `1NaN` stay invalid as they are for Python.
fn mask_non_finite(text: &str) -> (String, Vec<(usize, f64)>) {
    let s = text.as_bytes();
    let mut out = s.to_vec();
    let mut specials = Vec::new();
    let (mut i, mut in_str, mut prev) = (0, false, b'[');
    while i < s.len() {
        let c = s[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else if c == b'"' {
            in_str = true;
        } else if matches!(prev, b'[' | b',' | b':') {
            let token = [
                ("NaN", f64::NAN),
                ("Infinity", f64::INFINITY),
                ("-Infinity", f64::NEG_INFINITY),
            ]
            .into_iter()
            .find(|(t, _)| s[i..].starts_with(t.as_bytes()));
            if let Some((t, f)) = token {
                out[i] = b'0';
                out[i + 1..i + t.len()].fill(b' ');
                specials.push((i, f));
                i += t.len();
                prev = b'0';
                continue;
            }
        }
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            prev = c;
        }
        i += 1;
    }
    // Only ASCII bytes were replaced by ASCII bytes.
    (String::from_utf8(out).expect("still UTF-8"), specials)
}

/// One already-validated value: containers are split one level with
/// `serde_json`, leaves decoded as Python would.
fn to_py(raw: &RawValue, specials: &[(usize, f64)], base: usize, depth: usize) -> Option<PyVal> {
    // Python raises RecursionError (a 500 in Flask) long before this.
    if depth > 900 {
        return None;
    }
    let text = raw.get();
    match text.as_bytes().first()? {
        b'{' => {
            let entries: Entries = serde_json::from_str(text).ok()?;
            let mut items: Vec<(String, PyVal)> = Vec::new();
            for (k, v) in entries.0 {
                let v = to_py(v, specials, base, depth + 1)?;
                match items.iter_mut().find(|(ek, _)| *ek == k) {
                    Some(slot) => slot.1 = v,
                    None => items.push((k, v)),
                }
            }
            Some(PyVal::Dict(items))
        }
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            let items: Option<Vec<PyVal>> = items
                .into_iter()
                .map(|v| to_py(v, specials, base, depth + 1))
                .collect();
            items.map(PyVal::List)
        }
        b'"' => serde_json::from_str::<PyString>(text)
            .ok()
            .map(|s| PyVal::Str(s.0)),
        b'-' | b'0'..=b'9' => {
            let at = text.as_ptr() as usize - base;
            if let Some((_, f)) = specials.iter().find(|(o, _)| *o == at) {
                Some(PyVal::Float(*f))
            } else if text.contains(['.', 'e', 'E']) {
                // Rust, like Python's float(), reads an overflow as ±inf.
                text.parse().ok().map(PyVal::Float)
            } else if text == "-0" {
                Some(PyVal::Int("0".into()))
            } else {
                Some(PyVal::Int(text.to_string()))
            }
        }
        _ => match serde_json::from_str(text).ok()? {
            serde_json::Value::Bool(b) => Some(PyVal::Bool(b)),
            _ => Some(PyVal::None),
        },
    }
}

/// An object's members in order, repeated keys included (a map type would
/// drop the order or the repeats, which Python's dict keeps/resolves).
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<PyString>()? {
                    out.push((k.0, m.next_value()?));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON string as Python reads it: lone surrogates are legal there but
/// not in a Rust string, so they are read as bytes (`serde_json` gives
/// WTF-8 for them) and each becomes one U+FFFD.
struct PyString(String);

impl<'de> Deserialize<'de> for PyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PyString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON string")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<PyString, E> {
                let mut out = Vec::with_capacity(b.len());
                let mut i = 0;
                while i < b.len() {
                    // WTF-8 surrogate: ED A0..BF xx (nothing else is invalid here).
                    if b[i] == 0xed && b.get(i + 1).is_some_and(|c| *c >= 0xa0) {
                        out.extend_from_slice("\u{fffd}".as_bytes());
                        i += 3;
                    } else {
                        out.push(b[i]);
                        i += 1;
                    }
                }
                String::from_utf8(out).map(PyString).map_err(E::custom)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Python's `str(value)` (what an f-string prints).
fn py_str(v: &PyVal) -> String {
    match v {
        PyVal::Str(s) => s.clone(),
        other => py_repr(other),
    }
}

fn py_repr(v: &PyVal) -> String {
    match v {
        PyVal::None => "None".into(),
        PyVal::Bool(true) => "True".into(),
        PyVal::Bool(false) => "False".into(),
        PyVal::Int(s) => s.clone(),
        PyVal::Float(f) => py_float(*f),
        PyVal::Str(s) => py_str_repr(s),
        PyVal::List(items) => {
            let inner: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        PyVal::Dict(items) => {
            let inner: Vec<String> = items
                .iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// `repr(float)`: shortest round-trip digits, scientific below 1e-4 or from 1e16.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{:e}", f);
    let (mant, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    if (-4..16).contains(&exp) {
        let s = format!("{}", f);
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// `repr(str)`.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            // Not printable for Python: controls and every space but ' '.
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(model: Model) -> App {
        App {
            model,
            model_id: model.default_id().into(),
        }
    }

    async fn call(
        model: Model,
        method: Method,
        path: &str,
        ct: Option<&str>,
        body: &str,
    ) -> (u16, String, String) {
        let r = respond(&app(model), &method, path, ct, body.as_bytes()).await;
        let status = r.status().as_u16();
        let ct = r.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
        assert_eq!(r.headers()[SERVER], SERVER_HEADER);
        let b = r.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(b.to_vec()).unwrap())
    }

    const J: Option<&str> = Some("application/json");

    #[tokio::test]
    async fn v1_exact_body() {
        let (s, ct, b) = call(Model::V1, Method::POST, ROUTE, J, r#"{"user_id":42}"#).await;
        assert_eq!((s, ct.as_str()), (200, "application/json"));
        // Measured: 0 unless this thread was preempted mid-request.
        let lat = serde_json::from_str::<serde_json::Value>(&b).unwrap()["latency_ms"]
            .as_u64()
            .unwrap();
        assert_eq!(
            b,
            format!("{{\"event_log\":\"User 42 purchase processed.\",\"latency_ms\":{lat},\"model_id\":\"V1 - Stable\",\"recommendation\":[\"item_X_old_model\",\"item_Y_old_model\"]}}\n")
        );
        assert_eq!(
            b.len(),
            140 + lat.to_string().len(),
            "Flask's Content-Length"
        );
        let (_, _, b) = call(Model::V1, Method::POST, ROUTE, J, "{}").await;
        assert!(b.starts_with("{\"event_log\":\"User N/A purchase processed.\""));
    }

    #[tokio::test]
    async fn v2_exact_body_and_latency() {
        let outer = Instant::now();
        let (s, _, b) = call(Model::V2, Method::POST, ROUTE, J, r#"{"user_id":"u7"}"#).await;
        let outer_ms = outer.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(s, 200);
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        let lat = v["latency_ms"].as_u64().unwrap();
        // Behaviour, not a time window: V2 waits its 50 ms before answering
        // (a sleep never ends early), and the field is the time measured
        // inside the call, so it cannot exceed the call as seen from outside.
        assert!(lat >= 50, "V2 answered before its 50 ms wait: {lat}");
        assert!(lat as f64 <= outer_ms.ceil(), "{lat} > {outer_ms} ms");
        assert_eq!(
            b,
            format!("{{\"event_log\":\"User u7 purchase processed. Metrics available.\",\"latency_ms\":{lat},\"model_id\":\"V2 - DeepLearning - Canary\",\"recommendation\":[\"item_A_new\",\"item_B_new\",\"item_C_new\"]}}\n")
        );
    }

    #[tokio::test]
    async fn user_id_printed_like_python() {
        let cases = [
            (r#"{"user_id":true}"#, "True"),
            (r#"{"user_id":null}"#, "None"),
            (r#"{"user_id":1.5e3}"#, "1500.0"),
            (r#"{"user_id":1e400}"#, "inf"),
            (
                r#"{"user_id":12345678901234567890123}"#,
                "12345678901234567890123",
            ),
            (
                r#"{"user_id":[1,"a",false,null,1.5]}"#,
                "[1, 'a', False, None, 1.5]",
            ),
            (
                r#"{"user_id":{"z":1,"y":"it's","z":3}}"#,
                r#"{'z': 3, 'y': \"it's\"}"#,
            ),
            (
                r#"{"user_id":[1e16, 1e-5, 0.1, -0, -0.0, 1E2, 123456789.123,NaN,-Infinity, "\u00a0\u2028\t"]}"#,
                r#"[1e+16, 1e-05, 0.1, 0, -0.0, 100.0, 123456789.123, nan, -inf, '\\xa0\\u2028\\t']"#,
            ),
            (r#"{"user_id":"é\"x\\n"}"#, r#"\u00e9\"x\\n"#),
        ];
        for (body, want) in cases {
            let (s, _, b) = call(Model::V1, Method::POST, ROUTE, J, body).await;
            assert_eq!(s, 200, "{body}");
            assert!(
                b.starts_with(&format!(
                    "{{\"event_log\":\"User {want} purchase processed.\""
                )),
                "{body}: {b}"
            );
        }
    }

    #[tokio::test]
    async fn errors_like_werkzeug() {
        /// Method, path, content type, body, then the status and body length.
        type Case<'a> = (Method, &'a str, Option<&'a str>, &'a str, u16, usize);
        let cases: [Case; 12] = [
            (Method::POST, ROUTE, J, "[1]", 500, 265),
            (Method::POST, ROUTE, J, "\"str\"", 500, 265),
            (Method::POST, ROUTE, J, "{bad", 400, 167),
            (Method::POST, ROUTE, J, "", 400, 167),
            (
                Method::POST,
                ROUTE,
                Some("application/x-www-form-urlencoded"),
                "x=1",
                415,
                215,
            ),
            (Method::POST, ROUTE, None, "", 415, 215),
            (Method::GET, ROUTE, None, "", 405, 153),
            (Method::PUT, ROUTE, None, "", 405, 153),
            (Method::GET, "/", None, "", 404, 207),
            (Method::POST, "/nope", J, "{}", 404, 207),
            (Method::POST, "/api/v1/recommendation/", J, "{}", 404, 207),
            (Method::OPTIONS, "/nope", None, "", 404, 207),
        ];
        for (m, path, ct, body, want, len) in cases {
            let r = respond(&app(Model::V1), &m, path, ct, body.as_bytes()).await;
            assert_eq!(r.status().as_u16(), want, "{m} {path} {body}");
            assert_eq!(
                r.headers()[CONTENT_TYPE],
                "text/html; charset=utf-8",
                "{m} {path}"
            );
            if want == 405 {
                assert_eq!(r.headers()[ALLOW], "OPTIONS, POST");
            }
            let b = r.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(b.len(), len, "{m} {path}: {}", String::from_utf8_lossy(&b));
        }
        let r = respond(&app(Model::V1), &Method::OPTIONS, ROUTE, None, b"").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[ALLOW], "OPTIONS, POST");
    }

    #[tokio::test]
    async fn content_types_and_paths_flask_accepts() {
        for ct in [
            "application/json; charset=utf-8",
            "application/vnd.api+json",
            "Application/JSON",
        ] {
            let (s, _, _) = call(Model::V1, Method::POST, ROUTE, Some(ct), "{}").await;
            assert_eq!(s, 200, "{ct}");
        }
        for p in ["/api/v1/recommend%61tion", "//api/v1/recommendation"] {
            let (s, _, _) = call(Model::V1, Method::POST, p, J, "{}").await;
            assert_eq!(s, 200, "{p}");
        }
    }

    /// Status, content type, Allow and body of a raw HTTP/1.1 exchange.
    fn exchange(port: u16, raw: &str) -> (String, String, String, String) {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .lines()
            .next()
            .unwrap_or("")
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .to_string();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        // Werkzeug builds Allow from a Python set: its order changes with
        // the hash seed, so compare it as a set.
        let mut allow: Vec<String> = header("allow").split(", ").map(str::to_string).collect();
        allow.sort();
        // latency_ms is the time each server took (both measure it): its
        // value is the one thing the two may differ in.
        let measured = regex::Regex::new(r#""latency_ms":\d+,"#).unwrap();
        (
            status,
            header("content-type"),
            allow.join(", "),
            measured
                .replace_all(body, "\"latency_ms\":MEASURED,")
                .into_owned(),
        )
    }

    #[test]
    fn same_answers_as_the_seed_flask_app() {
        let flask = std::process::Command::new("python3")
            .args(["-c", "import flask"])
            .status()
            .is_ok_and(|s| s.success());
        if !flask {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs python3 with flask"
            );
            eprintln!("skipping: python3 cannot import flask (pip install flask)");
            return;
        }
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let py_port = free();
        let dir = std::env::temp_dir().join(format!("vpcsim-flask-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("model_v1_prod.py");
        // The seed's own file (as the canary's bucket ships it), on loopback.
        let seed = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/topologies/canary/bucket/backend/model_v1_prod.py"
        ))
        .unwrap();
        let on_loopback = seed.replace(
            "app.run(host='0.0.0.0', port=8000)",
            &format!("app.run(host='127.0.0.1', port={py_port})"),
        );
        assert_ne!(seed, on_loopback, "the seed's app.run line changed");
        std::fs::write(&file, on_loopback).unwrap();
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let _py = Kill(
            std::process::Command::new("python3")
                .arg(&file)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let rust_port = listener.local_addr().unwrap().port();
        rt.spawn(serve(listener, Arc::new(app(Model::V1))));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", py_port)).is_err() {
            assert!(Instant::now() < deadline, "flask did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let req = |method: &str, path: &str, ct: Option<&str>, body: &str| {
            format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}Content-Length: {}\r\n\r\n{body}",
                ct.map_or(String::new(), |c| format!("Content-Type: {c}\r\n")),
                body.len()
            )
        };
        let j = Some("application/json");
        let cases = [
            req("POST", ROUTE, j, r#"{"user_id":42}"#),
            req("POST", ROUTE, j, "{}"),
            req("POST", ROUTE, j, r#"{"user_id":[1,"a",{"b":null}],"x":1}"#),
            req("POST", ROUTE, j, r#"{"user_id":"\u00e9\n\"q\""}"#),
            req("POST", ROUTE, j, r#"{"user_id":1.5e300}"#),
            req("POST", ROUTE, j, "[1,2]"),
            req("POST", ROUTE, j, "null"),
            req("POST", ROUTE, j, "{bad"),
            req("POST", ROUTE, j, ""),
            req("POST", ROUTE, Some("text/plain"), "{}"),
            req("POST", ROUTE, None, ""),
            req("POST", ROUTE, Some("application/problem+json"), "{}"),
            req("GET", ROUTE, None, ""),
            req("DELETE", ROUTE, None, ""),
            req("OPTIONS", ROUTE, None, ""),
            req("GET", "/", None, ""),
            req("POST", "/api/v1/recommendation/", j, "{}"),
            req("POST", "/api/v1/recommendation?x=1", j, "{}"),
        ];
        for raw in &cases {
            let want = exchange(py_port, raw);
            let got = exchange(rust_port, raw);
            assert_eq!(got, want, "request:\n{raw}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn json_edges_python_accepts_or_rejects() {
        use PyVal::*;
        let list = |b: &str| match parse_json(b.as_bytes()) {
            Some(List(v)) => Some(v),
            other => panic!("{b}: {other:?}"),
        };
        // Non-finite tokens only where a value starts, never inside strings.
        let v = list(r#"["NaN", Infinity ,-Infinity, [NaN]]"#).unwrap();
        assert_eq!(v[0], Str("NaN".into()));
        assert_eq!(v[1], Float(f64::INFINITY));
        assert_eq!(v[2], Float(f64::NEG_INFINITY));
        assert!(matches!(&v[3], List(x) if matches!(x[0], Float(f) if f.is_nan())));
        for bad in [
            "[-NaN]",
            "[1NaN]",
            "[- Infinity]",
            "[NaNa]",
            "{NaN:1}",
            "[1]x",
        ] {
            assert!(parse_json(bad.as_bytes()).is_none(), "{bad}");
        }
        // Lone surrogates are legal for Python: one U+FFFD each here.
        assert_eq!(
            parse_json(br#""\ud800x\udc00""#),
            Some(Str("\u{fffd}x\u{fffd}".into()))
        );
        // Deeper than serde_json's own recursion limit, as Python allows.
        let deep = format!("{}{}", "[".repeat(500), "]".repeat(500));
        assert!(list(&deep).is_some());
    }

    #[test]
    fn python_rounding() {
        assert_eq!(round_half_even(50.5), 50);
        assert_eq!(round_half_even(51.5), 52);
        assert_eq!(round_half_even(50.49), 50);
        assert_eq!(round_half_even(0.0004), 0);
    }
}
