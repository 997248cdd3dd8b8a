//! Rate-based rules: requests per aggregation key over a trailing window of
//! 60, 120, 300 or 600 s; a key past its limit matches until its rate falls
//! back under it, as AWS's rate-based statement does.

use super::field::WafRequest;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// AWS's evaluation windows (seconds).
pub const WINDOWS: [u64; 4] = [60, 120, 300, 600];
/// AWS's smallest limit.
pub const MIN_LIMIT: u64 = 10;

/// What requests are counted together (AWS `AggregateKeyType`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "aggregate", rename_all = "snake_case")]
pub enum RateKey {
    /// The source address of the connection.
    Ip,
    /// The first address of a header; a request without a valid one is
    /// not counted, or counted under the fallback when it is MATCH.
    ForwardedIp {
        header: String,
        fallback_match: bool,
    },
    /// Every request (scoped down) in one counter.
    Constant,
}

impl RateKey {
    /// AWS's `limitKey` in logs.
    pub fn log_name(&self) -> &'static str {
        match self {
            RateKey::Ip => "IP",
            RateKey::ForwardedIp { .. } => "FORWARDED_IP",
            RateKey::Constant => "CONSTANT",
        }
    }

    /// The key `r` is counted under, or `None` when it is not counted.
    pub fn of(&self, r: &WafRequest<'_>) -> Option<String> {
        match self {
            RateKey::Ip => Some(r.client_ip.to_string()),
            RateKey::ForwardedIp {
                header,
                fallback_match,
            } => {
                let first = r
                    .header(header)
                    .and_then(|v| v.split(',').next())
                    .and_then(|s| s.trim().parse::<std::net::IpAddr>().ok());
                match first {
                    Some(ip) => Some(ip.to_string()),
                    None if *fallback_match => Some("(fallback)".into()),
                    None => None,
                }
            }
            RateKey::Constant => Some(String::new()),
        }
    }
}

/// Arrival times per key, at most `limit + 1` each: enough to know whether
/// the window holds more than `limit`.
pub struct RateCounter {
    limit: u64,
    window: Duration,
    keys: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateCounter {
    pub fn new(limit: u64, window_s: u64) -> RateCounter {
        RateCounter {
            limit,
            window: Duration::from_secs(window_s),
            keys: Mutex::default(),
        }
    }

    /// Limit and window (seconds).
    pub fn limits(&self) -> (u64, u64) {
        (self.limit, self.window.as_secs())
    }

    /// A counter with another limit or window that starts from the
    /// requests this one has seen (the rule was edited, not replaced).
    pub fn with_limits(&self, limit: u64, window_s: u64) -> RateCounter {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Each key keeps at most `limit + 1` arrivals, the newest.
        for q in keys.values_mut() {
            while q.len() as u64 > limit + 1 {
                q.pop_front();
            }
        }
        RateCounter {
            limit,
            window: Duration::from_secs(window_s),
            keys: Mutex::new(keys),
        }
    }

    /// Counts one request of `key` at `now`; true when the key is past its
    /// limit in the window ending now.
    pub fn hit(&self, key: &str, now: Instant) -> bool {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() > 100_000 {
            // Bounded memory under a spray of forged keys: forget idle ones.
            let window = self.window;
            keys.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let q = keys.entry(key.to_string()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        q.push_back(now);
        if q.len() as u64 > self.limit + 1 {
            q.pop_front();
        }
        q.len() as u64 > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::super::field::tests::request;
    use super::*;

    #[test]
    fn limit_per_key_over_the_window() {
        let c = RateCounter::new(10, 60);
        let t0 = Instant::now();
        for i in 0..10 {
            assert!(!c.hit("a", t0 + Duration::from_millis(i)), "request {i}");
        }
        assert!(c.hit("a", t0 + Duration::from_millis(20)));
        // Another client is served meanwhile.
        assert!(!c.hit("b", t0 + Duration::from_millis(21)));
        // Once the window has passed, "a" is under its limit again.
        assert!(!c.hit("a", t0 + Duration::from_secs(61)));
    }

    #[test]
    fn keys() {
        let r = request(
            "GET",
            "/",
            &[("X-Forwarded-For", "198.51.100.4, 10.0.0.1")],
            "",
        );
        assert_eq!(RateKey::Ip.of(&r).unwrap(), "203.0.113.10");
        let fwd = |fallback_match| RateKey::ForwardedIp {
            header: "x-forwarded-for".into(),
            fallback_match,
        };
        assert_eq!(fwd(false).of(&r).unwrap(), "198.51.100.4");
        let bare = request("GET", "/", &[], "");
        assert_eq!(fwd(false).of(&bare), None);
        assert!(fwd(true).of(&bare).is_some());
        assert_eq!(RateKey::Constant.of(&r), RateKey::Constant.of(&bare));
    }
}
