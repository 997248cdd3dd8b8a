//! Listener rules (first matching priority wins, default action last) and the
//! weighted forward between target groups.

use super::LbError;
use crate::topology::plan::{Condition, Lab, WeightedTargetGroup};
use hyper::http::request::Parts;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

pub struct Rule {
    pub priority: u32,
    pub conditions: Vec<Condition>,
    pub forward: Arc<Forward>,
}

pub struct Listener {
    pub port: u16,
    /// Sorted by priority.
    pub rules: Vec<Rule>,
    pub default: Arc<Forward>,
}

impl Listener {
    /// The matching rule's priority (0 for the default action, as the access
    /// log prints it) and its forward action.
    pub fn route(&self, req: &Parts, client: IpAddr) -> (u32, &Forward) {
        for r in &self.rules {
            if r.conditions.iter().all(|c| matches(c, req, client)) {
                return (r.priority, &r.forward);
            }
        }
        (0, &self.default)
    }

    /// Every forward action of the listener, default last.
    pub fn forwards(&self) -> impl Iterator<Item = &Forward> {
        self.rules
            .iter()
            .map(|r| &*r.forward)
            .chain(std::iter::once(&*self.default))
    }
}

/// Whether one condition holds; its values are alternatives (OR), the
/// conditions of a rule all have to hold (AND).
fn matches(c: &Condition, req: &Parts, client: IpAddr) -> bool {
    match c {
        Condition::PathPattern(pats) => {
            let path = req.uri.path();
            pats.iter()
                .any(|p| wildcard(p.as_bytes(), path.as_bytes(), false))
        }
        Condition::HostHeader(pats) => {
            let host = req
                .headers
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| req.uri.host())
                .unwrap_or("");
            // The port is not part of what host-header compares.
            let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
            pats.iter()
                .any(|p| wildcard(p.as_bytes(), host.as_bytes(), true))
        }
        Condition::HttpHeader(name, pats) => req.headers.get_all(name.as_str()).iter().any(|v| {
            pats.iter()
                .any(|p| wildcard(p.as_bytes(), v.as_bytes(), true))
        }),
        Condition::HttpRequestMethod(methods) => {
            methods.iter().any(|m| m.as_str() == req.method.as_str())
        }
        Condition::SourceIp(nets) => match client {
            IpAddr::V4(ip) => nets.iter().any(|n| n.contains(&ip)),
            IpAddr::V6(ip) => ip
                .to_ipv4_mapped()
                .is_some_and(|ip: Ipv4Addr| nets.iter().any(|n| n.contains(&ip))),
        },
    }
}

/// AWS condition wildcards: `*` any run of characters, `?` exactly one.
pub fn wildcard(pat: &[u8], s: &[u8], ignore_case: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut p, mut i) = (0, 0);
    // Last `*` seen and the input position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || (pat[p] != b'*' && eq(pat[p], s[i]))) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// A weighted forward action. The choice is smooth weighted round robin
/// (nginx's): deterministic and evenly interleaved, so 90/10 gives exactly
/// 10 % of every 100 requests to the second group, across all ALB nodes.
pub struct Forward {
    state: Mutex<Swrr>,
}

struct Swrr {
    groups: Vec<WeightedTargetGroup>,
    current: Vec<i64>,
}

impl Forward {
    pub fn new(groups: Vec<WeightedTargetGroup>) -> Forward {
        let current = vec![0; groups.len()];
        Forward {
            state: Mutex::new(Swrr { groups, current }),
        }
    }

    /// The target group (index into `Lab::target_groups`) for the next
    /// request, `None` when no group has weight. `sticky` is the group a
    /// client's AWSALBTG cookie names; it wins while it still has weight.
    pub fn choose(&self, sticky: Option<usize>) -> Option<usize> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = sticky {
            if st
                .groups
                .iter()
                .any(|w| w.target_group == g && w.weight > 0)
            {
                return Some(g);
            }
        }
        let Swrr { groups, current } = &mut *st;
        let total: i64 = groups.iter().map(|g| g.weight as i64).sum();
        if total == 0 {
            return None;
        }
        let mut best = 0;
        for (i, g) in groups.iter().enumerate() {
            current[i] += g.weight as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        Some(groups[best].target_group)
    }

    pub fn groups(&self) -> Vec<WeightedTargetGroup> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .groups
            .clone()
    }
}

/// Sets the named groups' weights in a forward action, adding groups it does
/// not have yet (up to AWS's 5); groups not named keep their weight.
pub fn apply_weights(
    forward: &mut Vec<WeightedTargetGroup>,
    lab: &Lab,
    weights: &[(String, u32)],
) -> Result<(), LbError> {
    let mut next = forward.clone();
    for (name, w) in weights {
        let tg = lab
            .target_groups
            .iter()
            .position(|t| &t.name == name)
            .ok_or_else(|| LbError::NoTargetGroup(name.clone()))?;
        if *w > 999 {
            return Err(LbError::BadWeight {
                group: name.clone(),
                weight: *w,
            });
        }
        match next.iter_mut().find(|g| g.target_group == tg) {
            Some(g) => g.weight = *w as u16,
            None => next.push(WeightedTargetGroup {
                target_group: tg,
                weight: *w as u16,
            }),
        }
    }
    if next.len() > 5 {
        return Err(LbError::TooManyGroups(next.len()));
    }
    if next.iter().all(|g| g.weight == 0) {
        return Err(LbError::AllZero);
    }
    *forward = next;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wg(tg: usize, weight: u16) -> WeightedTargetGroup {
        WeightedTargetGroup {
            target_group: tg,
            weight,
        }
    }

    #[test]
    fn swrr_is_exact_and_interleaved() {
        let f = Forward::new(vec![wg(0, 90), wg(1, 10)]);
        let picks: Vec<usize> = (0..2000).map(|_| f.choose(None).unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&g| g == 1).count(), 200);
        // Never two canary picks in a row at 90/10.
        assert!(picks.windows(2).all(|w| !(w[0] == 1 && w[1] == 1)));
        let f = Forward::new(vec![wg(0, 80), wg(1, 10), wg(2, 10)]);
        let mut n = [0; 3];
        for _ in 0..1000 {
            n[f.choose(None).unwrap()] += 1;
        }
        assert_eq!(n, [800, 100, 100]);
    }

    #[test]
    fn weight_zero_never_chosen_and_sticky_needs_weight() {
        let f = Forward::new(vec![wg(0, 100), wg(1, 0)]);
        assert!((0..500).all(|_| f.choose(None) == Some(0)));
        assert_eq!(f.choose(Some(1)), Some(0));
        let f = Forward::new(vec![wg(0, 1), wg(1, 1)]);
        assert!((0..10).all(|_| f.choose(Some(1)) == Some(1)));
        assert_eq!(Forward::new(vec![wg(0, 0)]).choose(None), None);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard(b"/api/*", b"/api/v1/x", false));
        assert!(!wildcard(b"/api/*", b"/API/v1", false));
        assert!(wildcard(b"*.example.com", b"A.Example.com", true));
        assert!(wildcard(b"/v?/x", b"/v2/x", false));
        assert!(!wildcard(b"/v?/x", b"/v22/x", false));
        assert!(wildcard(b"*a*b", b"xxaxxb", false));
        assert!(!wildcard(b"*a*b", b"xxaxxbc", false));
        assert!(wildcard(b"*", b"", false));
        assert!(!wildcard(b"", b"x", false));
    }

    #[test]
    fn rules_by_priority_then_default() {
        let req = |method: &str, path: &str, host: &str| {
            let r = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", host)
                .header("x-canary", "yes")
                .body(())
                .unwrap();
            r.into_parts().0
        };
        let l = Listener {
            port: 80,
            rules: vec![
                Rule {
                    priority: 5,
                    conditions: vec![
                        Condition::PathPattern(vec!["/admin*".into()]),
                        Condition::SourceIp(vec!["203.0.113.0/24".parse().unwrap()]),
                    ],
                    forward: Arc::new(Forward::new(vec![wg(2, 1)])),
                },
                Rule {
                    priority: 10,
                    conditions: vec![Condition::HostHeader(vec!["api.*".into()])],
                    forward: Arc::new(Forward::new(vec![wg(1, 1)])),
                },
                Rule {
                    priority: 20,
                    conditions: vec![
                        Condition::HttpHeader("X-Canary".into(), vec!["Y*".into()]),
                        Condition::HttpRequestMethod(vec!["POST".into()]),
                    ],
                    forward: Arc::new(Forward::new(vec![wg(3, 1)])),
                },
            ],
            default: Arc::new(Forward::new(vec![wg(0, 1)])),
        };
        let ip: IpAddr = "203.0.113.10".parse().unwrap();
        let other: IpAddr = "198.51.100.7".parse().unwrap();
        let pick = |p: &Parts, ip| {
            let (prio, f) = l.route(p, ip);
            (prio, f.choose(None).unwrap())
        };
        assert_eq!(pick(&req("GET", "/admin/x", "a"), ip), (5, 2));
        assert_eq!(pick(&req("GET", "/admin/x", "a"), other), (0, 0));
        assert_eq!(pick(&req("GET", "/", "API.shop:80"), other), (10, 1));
        assert_eq!(pick(&req("POST", "/", "shop"), other), (20, 3));
        assert_eq!(pick(&req("GET", "/", "shop"), other), (0, 0));
    }
}
