//! Health checks: every ALB node checks every target of the groups its load
//! balancer uses, from its own namespace (so a security group or NACL that
//! blocks the node blocks its checks too), on a fresh connection each time.

use super::balancer::{Group, HealthState, Reason, Registration};
use super::daemon::Balancer;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{HeaderValue, CONNECTION, HOST, USER_AGENT};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One check's outcome: the status code, or why there was none.
enum Outcome {
    Status(u16),
    Timeout,
    Failed(String),
}

/// One health check: a target of a group, seen from a node (`Node::id`:
/// a node that leaves the plan and comes back is another node). It
/// outlives reconfigurations that keep all three.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthKey {
    pub group: String,
    pub instance: String,
    pub addr: SocketAddr,
    pub node: usize,
}

/// Runs health check `key` until a configuration no longer has it, with
/// the settings of the configuration current at each check.
pub async fn run(b: Arc<Balancer>, key: HealthKey) {
    let (mut ok, mut failed) = (0u32, 0u32);
    let mut period = Duration::ZERO;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        let cfg = b.config();
        let Some((gi, _, _)) = cfg.locate(&key) else {
            if b.health_check_ended(&key) {
                return;
            }
            continue;
        };
        let every = Duration::from_secs(cfg.groups[gi].plan.health_check.interval_s.max(1) as u64);
        if every != period {
            // A new interval applies from now on (and checks at once).
            period = every;
            ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        drop(cfg);
        ticker.tick().await;
        let cfg = b.config();
        let Some((gi, ti, ni)) = cfg.locate(&key) else {
            continue;
        };
        let g: &Group = &cfg.groups[gi];
        let hc = &g.plan.health_check;
        let t = &g.targets[ti];
        let cell = &t.health[ni];
        let limit = Duration::from_secs(hc.timeout_s.max(1) as u64);
        let port = hc.port.unwrap_or(t.addr.port());
        let addr = SocketAddr::new(t.addr.ip(), port);
        if !g.used_by[cfg.nodes[ni].lb] {
            (ok, failed) = (0, 0);
            cell.set(
                HealthState::Unused,
                Some(Reason {
                    code: "Target.NotInUse".into(),
                    description:
                        "Target group is not configured to receive traffic from the load balancer"
                            .into(),
                    detail: String::new(),
                }),
            );
            continue;
        }
        // Deregistered or draining targets are not checked; `register`
        // restarts them from `initial`.
        if t.registration() != Registration::Registered {
            (ok, failed) = (0, 0);
            continue;
        }
        if cell.state() == HealthState::Unused {
            cell.set(HealthState::Initial, None);
        }
        let outcome = match tokio::time::timeout(
            limit,
            check(&cfg.nodes[ni].node.ns, addr, &hc.path),
        )
        .await
        {
            Ok(o) => o,
            Err(_) => Outcome::Timeout,
        };
        let reason = match outcome {
            Outcome::Status(code)
                if hc
                    .matcher
                    .iter()
                    .any(|(lo, hi)| (*lo..=*hi).contains(&code)) =>
            {
                None
            }
            Outcome::Status(code) => Some(Reason {
                code: "Target.ResponseCodeMismatch".into(),
                description: format!("Health checks failed with these codes: [{code}]"),
                detail: format!("{code} from GET {}", hc.path),
            }),
            Outcome::Timeout => Some(Reason {
                code: "Target.Timeout".into(),
                description: "Request timed out".into(),
                detail: format!(
                    "no answer within {} s to GET {} on port {port}",
                    hc.timeout_s, hc.path
                ),
            }),
            Outcome::Failed(why) => Some(Reason {
                code: "Target.FailedHealthChecks".into(),
                description: "Health checks failed".into(),
                detail: format!("{why} (GET {} on port {port})", hc.path),
            }),
        };
        let state = cell.state();
        match reason {
            None => {
                ok += 1;
                failed = 0;
                if state != HealthState::Healthy && ok >= hc.healthy_threshold {
                    cell.set(HealthState::Healthy, None);
                } else if state == HealthState::Initial {
                    cell.set(
                        HealthState::Initial,
                        Some(Reason {
                            code: "Elb.InitialHealthChecking".into(),
                            description: "Initial health checks in progress".into(),
                            detail: String::new(),
                        }),
                    );
                }
            }
            Some(r) => {
                failed += 1;
                ok = 0;
                if state == HealthState::Unhealthy || failed >= hc.unhealthy_threshold {
                    cell.set(HealthState::Unhealthy, Some(r));
                }
            }
        }
    }
}

async fn check(ns: &str, addr: SocketAddr, path: &str) -> Outcome {
    // The caller bounds the whole check with the health check timeout.
    let stream = match super::proxy::connect_in(ns, addr, Duration::from_secs(3600)).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(describe(&e)),
    };
    let (mut send, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    tokio::spawn(conn);
    let mut req = Request::new(Empty::<Bytes>::new());
    *req.uri_mut() = match path.parse() {
        Ok(u) => u,
        Err(_) => return Outcome::Failed(format!("invalid path {path:?}")),
    };
    let h = req.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&addr.to_string()) {
        h.insert(HOST, v);
    }
    h.insert(
        USER_AGENT,
        HeaderValue::from_static("ELB-HealthChecker/2.0"),
    );
    h.insert(CONNECTION, HeaderValue::from_static("close"));
    match send.send_request(req).await {
        Ok(resp) => Outcome::Status(resp.status().as_u16()),
        Err(e) => Outcome::Failed(format!("bad response: {e}")),
    }
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}
