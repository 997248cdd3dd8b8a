//! Where the ALB hands a request to its web ACL: before the listener rules,
//! with the first 8 KB of the body (read here and replayed to the target
//! afterwards). A block never reaches a target.

use super::access_log::Entry;
use super::config::Config;
use crate::waf::field::{WafRequest, BODY_LIMIT};
use crate::waf::Action;
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::http::request::Parts;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

/// A request body sent on to a target: what the WAF read of it first, then
/// the rest as it arrives.
pub struct ReqBody {
    head: Option<Bytes>,
    rest: Option<Incoming>,
}

impl ReqBody {
    pub fn new(rest: Incoming) -> ReqBody {
        ReqBody {
            head: None,
            rest: Some(rest),
        }
    }
}

impl HttpBody for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(h) = this.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(h))));
        }
        match this.rest.as_mut() {
            Some(r) => Pin::new(r).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let head = self.head.as_ref().map_or(0, |h| h.len() as u64);
        match &self.rest {
            Some(r) => {
                let h = r.size_hint();
                let mut s = SizeHint::new();
                s.set_lower(h.lower() + head);
                if let Some(u) = h.upper() {
                    s.set_upper(u + head);
                }
                s
            }
            None => SizeHint::with_exact(head),
        }
    }
}

/// A web ACL's block: the response the ALB sends instead of forwarding.
pub struct Blocked {
    pub status: u16,
    pub body: Option<String>,
}

/// Runs the load balancer's web ACL, if it has one, on a request: `Ok` with
/// the body to forward, or the block. Marks the access log entry's
/// `actions_executed` (`waf`, `waf-failed`).
pub async fn check(
    cfg: &Config,
    lb: usize,
    peer: SocketAddr,
    parts: &Parts,
    body: Incoming,
    entry: &mut Entry,
) -> Result<ReqBody, Blocked> {
    let lb = &cfg.lbs[lb];
    let Some(acl) = lb.web_acl.as_ref() else {
        return Ok(ReqBody::new(body));
    };
    let (head, rest, oversize) = match read_head(body, lb.idle_timeout).await {
        Ok(x) => x,
        Err(()) => {
            // The body could not be handed to the WAF: AWS fails closed
            // unless the load balancer's waf.fail_open.enabled is set.
            entry.waf = Some("waf-failed");
            return Err(Blocked {
                status: 403,
                body: None,
            });
        }
    };
    let inspected = head.len().min(BODY_LIMIT);
    // Borrowed from the parsed request: nothing copied for the WAF.
    let req = WafRequest {
        client_ip: peer.ip(),
        method: parts.method.as_str().into(),
        uri: parts.uri.path().into(),
        query: parts.uri.query().unwrap_or("").into(),
        http_version: version_name(parts.version).into(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().into(), String::from_utf8_lossy(v.as_bytes())))
            .collect(),
        body: head[..inspected].into(),
        body_oversize: oversize,
    };
    let verdict = acl.evaluate(&req, Instant::now());
    entry.waf = Some(if verdict.blocked() {
        "waf"
    } else {
        "waf,forward"
    });
    let logging = acl.plan.logging.as_ref();
    if let (Some(log), Some(logging)) = (&cfg.waf_log, logging) {
        if logging.keeps(&verdict) {
            let request_id = entry.trace_id.to_str().unwrap_or("-");
            log.write(&crate::waf::log::Source {
                acl: &acl.plan,
                logging,
                verdict: &verdict,
                request: &req,
                lb_id: &lb.waf_source_id,
                request_id,
                now: SystemTime::now(),
            });
        }
    }
    match verdict.action {
        Action::Block { status, body } => Err(Blocked { status, body }),
        _ => Ok(ReqBody {
            head: (!head.is_empty()).then_some(head),
            rest,
        }),
    }
}

/// HTTP's name for a version, as the WAF log spells it.
fn version_name(v: hyper::Version) -> &'static str {
    match v {
        hyper::Version::HTTP_09 => "HTTP/0.9",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_2 => "HTTP/2.0",
        hyper::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Reads a body until it ends or passes [`BODY_LIMIT`]: what was read, the
/// unread rest (`None` when it ended) and whether it is over the limit.
/// A body hyper already holds (a small one arrives with its head) is read
/// without arming a timer, and a body of one frame is kept, not copied.
async fn read_head(
    mut body: Incoming,
    limit: std::time::Duration,
) -> Result<(Bytes, Option<Incoming>, bool), ()> {
    if body.is_end_stream() {
        return Ok((Bytes::new(), None, false));
    }
    let mut head = Head::Empty;
    let stop = {
        let mut read = std::pin::pin!(async {
            loop {
                let frame = body.frame().await;
                if let Some(stop) = head.take(frame, &body)? {
                    return Ok(stop);
                }
            }
        });
        match read.as_mut().now_or_never() {
            Some(stop) => stop?,
            None => tokio::time::timeout(limit, read).await.map_err(|_| ())??,
        }
    };
    let head = head.freeze();
    let oversize = head.len() > BODY_LIMIT;
    Ok((head, (stop == Stop::OverLimit).then_some(body), oversize))
}

/// Why the WAF stopped reading a body.
#[derive(Debug, PartialEq)]
enum Stop {
    Ended,
    /// Past [`BODY_LIMIT`], with more to come: forwarded as it arrives.
    OverLimit,
}

/// What the WAF read of a body so far.
enum Head {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Head {
    fn len(&self) -> usize {
        match self {
            Head::Empty => 0,
            Head::One(b) => b.len(),
            Head::Many(b) => b.len(),
        }
    }

    /// Adds one frame read from `body`: why to stop reading, or `None` to
    /// read on.
    fn take(
        &mut self,
        frame: Option<Result<Frame<Bytes>, hyper::Error>>,
        body: &Incoming,
    ) -> Result<Option<Stop>, ()> {
        let data = match frame {
            None => return Ok(Some(Stop::Ended)),
            Some(Err(_)) => return Err(()),
            Some(Ok(f)) => f.into_data().unwrap_or_default(),
        };
        *self = match std::mem::replace(self, Head::Empty) {
            Head::Empty => Head::One(data),
            Head::One(first) => {
                let mut all = BytesMut::with_capacity(first.len() + data.len());
                all.extend_from_slice(&first);
                all.extend_from_slice(&data);
                Head::Many(all)
            }
            Head::Many(mut all) => {
                all.extend_from_slice(&data);
                Head::Many(all)
            }
        };
        Ok(if body.is_end_stream() {
            Some(Stop::Ended)
        } else if self.len() > BODY_LIMIT {
            Some(Stop::OverLimit)
        } else {
            None
        })
    }

    fn freeze(self) -> Bytes {
        match self {
            Head::Empty => Bytes::new(),
            Head::One(b) => b,
            Head::Many(b) => b.freeze(),
        }
    }
}
