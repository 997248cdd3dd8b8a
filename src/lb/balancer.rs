//! Target groups at run time: target choice (algorithm, stickiness, fail
//! open), per-node health state and CloudWatch-style metrics. Everything the
//! request path touches is atomics; no lock is held across an await.

use crate::topology::plan::{Algorithm, TargetGroupPlan};
use hyper::header::HeaderValue;
use rand::Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum HealthState {
    Initial = 0,
    Healthy = 1,
    Unhealthy = 2,
    Unused = 3,
}

impl HealthState {
    fn from_u8(v: u8) -> HealthState {
        match v {
            1 => HealthState::Healthy,
            2 => HealthState::Unhealthy,
            3 => HealthState::Unused,
            _ => HealthState::Initial,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            HealthState::Initial => "initial",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
            HealthState::Unused => "unused",
        }
    }
}

/// A target's registration with its group (`register-targets` /
/// `deregister-targets`). A deregistering target gets no new requests but
/// finishes those in flight, for up to the group's deregistration delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Registration {
    Registered = 0,
    Draining = 1,
    Deregistered = 2,
}

/// Why a target is not healthy, as `describe-target-health` says it, plus
/// what the last check saw (`405 from GET /`).
#[derive(Debug, Clone, Default)]
pub struct Reason {
    pub code: String,
    pub description: String,
    pub detail: String,
}

/// One ALB node's view of one target.
pub struct Health {
    state: AtomicU8,
    pub reason: Mutex<Option<Reason>>,
}

impl Health {
    pub fn initial() -> Arc<Health> {
        Arc::new(Health {
            state: AtomicU8::new(HealthState::Initial as u8),
            reason: Mutex::new(None),
        })
    }
    pub fn state(&self) -> HealthState {
        HealthState::from_u8(self.state.load(Ordering::Relaxed))
    }
    pub fn set(&self, state: HealthState, reason: Option<Reason>) {
        self.state.store(state as u8, Ordering::Relaxed);
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    }
}

/// What a target keeps across reconfigurations of the daemon.
pub struct Registered {
    /// What a sticky cookie names the target by (16 bits, as the cookie
    /// holds it).
    pub id: usize,
    /// Requests sent and not yet answered (least_outstanding_requests,
    /// draining).
    pub inflight: AtomicU32,
    registration: AtomicU8,
}

impl Registered {
    pub fn new() -> Arc<Registered> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Arc::new(Registered {
            id: NEXT.fetch_add(1, Ordering::Relaxed) & 0xffff,
            inflight: AtomicU32::new(0),
            registration: AtomicU8::new(Registration::Registered as u8),
        })
    }
    pub fn registration(&self) -> Registration {
        match self.registration.load(Ordering::Relaxed) {
            0 => Registration::Registered,
            1 => Registration::Draining,
            _ => Registration::Deregistered,
        }
    }
    pub fn set_registration(&self, r: Registration) {
        self.registration.store(r as u8, Ordering::Relaxed);
    }
}

/// A target as one configuration of the daemon sees it; its state lives in
/// `Arc`s that the next configuration takes over while the target stays.
pub struct Target {
    pub instance: String,
    pub addr: SocketAddr,
    /// The Host header for requests that came without one.
    pub host: HeaderValue,
    /// Indexed by ALB node (index into the configuration's nodes).
    pub health: Vec<Arc<Health>>,
    pub shared: Arc<Registered>,
    /// No longer in the lab's plan: kept while it drains.
    pub removed: bool,
}

impl Target {
    /// A newly registered target: `initial` on every node.
    pub fn new(instance: String, addr: SocketAddr, nodes: usize) -> Target {
        Target {
            instance,
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("ip:port is ASCII"),
            health: (0..nodes).map(|_| Health::initial()).collect(),
            shared: Registered::new(),
            removed: false,
        }
    }
    pub fn registration(&self) -> Registration {
        self.shared.registration()
    }
    pub fn set_registration(&self, r: Registration) {
        self.shared.set_registration(r)
    }
}

pub struct Group {
    pub plan: TargetGroupPlan,
    /// `arn:aws:elasticloadbalancing:…:targetgroup/<name>/<id>`
    pub arn: String,
    /// The ARN's index in the access log's names.
    pub log_id: usize,
    pub targets: Vec<Target>,
    next: AtomicUsize,
    /// Per load balancer of the configuration: some listener of it
    /// forwards here (with any weight).
    pub used_by: Vec<bool>,
    pub metrics: Arc<Metrics>,
}

impl Group {
    pub fn new(
        plan: TargetGroupPlan,
        arn: String,
        log_id: usize,
        targets: Vec<Target>,
        used_by: Vec<bool>,
        metrics: Arc<Metrics>,
    ) -> Group {
        Group {
            plan,
            arn,
            log_id,
            targets,
            next: AtomicUsize::new(0),
            used_by,
            metrics,
        }
    }

    /// The target a sticky cookie names (by `Registered::id`).
    pub fn target_by_id(&self, id: usize) -> Option<usize> {
        self.targets.iter().position(|t| t.shared.id == id)
    }

    pub fn used(&self) -> bool {
        self.used_by.iter().any(|&u| u)
    }

    /// The target for a request arriving at `node`, `None` if the group has
    /// no registered target (503). Only healthy registered targets get
    /// traffic, unless none is healthy: then the ALB fails open and uses all
    /// registered ones. Draining targets never get new requests.
    /// `sticky` is the target an AWSALB cookie names.
    pub fn pick(&self, node: usize, sticky: Option<usize>) -> Option<usize> {
        let n = self.targets.len();
        let registered = |i: usize| self.targets[i].registration() == Registration::Registered;
        if !(0..n).any(registered) {
            return None;
        }
        let healthy = |i: usize| {
            registered(i) && self.targets[i].health[node].state() == HealthState::Healthy
        };
        let fail_open = !(0..n).any(healthy);
        let ok = |i: usize| registered(i) && (fail_open || healthy(i));
        if let Some(s) = sticky.filter(|&s| s < n && ok(s)) {
            return Some(s);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        match self.plan.algorithm {
            Algorithm::RoundRobin => (0..n).map(|k| (start + k) % n).find(|&i| ok(i)),
            Algorithm::LeastOutstandingRequests => (0..n)
                .map(|k| (start + k) % n)
                .filter(|&i| ok(i))
                .min_by_key(|&i| self.targets[i].shared.inflight.load(Ordering::Relaxed)),
            Algorithm::WeightedRandom => {
                let eligible = (0..n).filter(|&i| ok(i)).count();
                let k = rand::thread_rng().gen_range(0..eligible);
                (0..n).filter(|&i| ok(i)).nth(k)
            }
        }
    }
}

/// Per target group, like CloudWatch's AWS/ApplicationELB namespace: one
/// shard per worker thread (the thread's requests count in its own cache
/// lines, never in another thread's), summed when read.
pub struct Metrics {
    shards: Box<[Shard]>,
}

/// One worker thread's counts, alone on its cache lines.
#[derive(Default)]
#[repr(align(128))]
pub struct Shard {
    pub requests: AtomicU64,
    pub target_2xx: AtomicU64,
    pub target_3xx: AtomicU64,
    pub target_4xx: AtomicU64,
    pub target_5xx: AtomicU64,
    pub elb_5xx: AtomicU64,
    pub response_time: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        // As many as the daemon's worker threads per node (one per core);
        // a worker beyond them shares a shard (`shard` wraps).
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        Metrics {
            shards: (0..n).map(|_| Shard::default()).collect(),
        }
    }
}

impl Metrics {
    /// Worker thread `worker`'s counters.
    pub fn shard(&self, worker: usize) -> &Shard {
        &self.shards[worker % self.shards.len()]
    }

    fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum()
    }
    pub fn requests(&self) -> u64 {
        self.sum(|s| &s.requests)
    }
    pub fn target_2xx(&self) -> u64 {
        self.sum(|s| &s.target_2xx)
    }
    pub fn target_3xx(&self) -> u64 {
        self.sum(|s| &s.target_3xx)
    }
    pub fn target_4xx(&self) -> u64 {
        self.sum(|s| &s.target_4xx)
    }
    pub fn target_5xx(&self) -> u64 {
        self.sum(|s| &s.target_5xx)
    }
    pub fn elb_5xx(&self) -> u64 {
        self.sum(|s| &s.elb_5xx)
    }

    /// The `q` quantile (0-1) of the target response time over every
    /// shard, in microseconds; `None` with no samples.
    pub fn response_time_quantile(&self, q: f64) -> Option<u64> {
        let mut counts = vec![0u64; BUCKETS];
        for s in self.shards.iter() {
            for (c, b) in counts.iter_mut().zip(&s.response_time.buckets) {
                *c += b.load(Ordering::Relaxed);
            }
        }
        Histogram::quantile_of(&counts, q)
    }
}

impl Shard {
    pub fn target_status(&self, status: u16) {
        let c = match status {
            200..=299 => &self.target_2xx,
            300..=399 => &self.target_3xx,
            400..=499 => &self.target_4xx,
            500..=599 => &self.target_5xx,
            _ => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Log-linear histogram of microseconds: 16 buckets per power of two
/// (at most 6 % error), lock-free.
pub struct Histogram {
    buckets: Vec<AtomicU64>,
}

const SUB: u32 = 16;
const BUCKETS: usize = 16 + 40 * SUB as usize;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Histogram {
    fn index(us: u64) -> usize {
        if us < SUB as u64 {
            return us as usize;
        }
        let p = 63 - us.leading_zeros();
        let sub = (us >> (p - 4)) & (SUB as u64 - 1);
        (SUB as usize + (p as usize - 4) * SUB as usize + sub as usize).min(BUCKETS - 1)
    }

    /// Upper bound of bucket `i`, in microseconds.
    fn upper(i: usize) -> u64 {
        if i < SUB as usize {
            return i as u64;
        }
        let p = (i - SUB as usize) / SUB as usize + 4;
        let sub = ((i - SUB as usize) % SUB as usize) as u64;
        ((SUB as u64 + sub + 1) << (p - 4)) - 1
    }

    pub fn record(&self, us: u64) {
        self.buckets[Self::index(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// The `q` quantile (0-1) in microseconds, `None` with no samples.
    #[cfg(test)]
    fn quantile(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        Self::quantile_of(&counts, q)
    }

    /// The `q` quantile of bucket counts `counts`.
    fn quantile_of(counts: &[u64], q: f64) -> Option<u64> {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::upper(i));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::plan::{HealthCheckPlan, TargetPlan};

    fn group(n: usize, algorithm: Algorithm) -> Group {
        let plan = TargetGroupPlan {
            name: "tg".into(),
            port: 8000,
            targets: (0..n)
                .map(|i| TargetPlan {
                    instance: format!("i{i}"),
                    ip: [10, 0, 20, 4 + i as u8].into(),
                    port: 8000,
                })
                .collect(),
            health_check: HealthCheckPlan {
                path: "/".into(),
                port: None,
                interval_s: 5,
                timeout_s: 2,
                healthy_threshold: 2,
                unhealthy_threshold: 2,
                matcher: vec![(200, 200)],
            },
            algorithm,
            deregistration_delay_s: 300,
            stickiness_s: None,
        };
        let targets = plan
            .targets
            .iter()
            .map(|t| Target::new(t.instance.clone(), SocketAddr::from((t.ip, t.port)), 2))
            .collect();
        Group::new(plan, "arn".into(), 0, targets, vec![true], Arc::default())
    }

    #[test]
    fn round_robin_skips_unhealthy_and_fails_open() {
        let g = group(3, Algorithm::RoundRobin);
        // All initial: fail open, plain rotation.
        let picks: Vec<_> = (0..6).map(|_| g.pick(0, None).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        g.targets[0].health[0].set(HealthState::Healthy, None);
        g.targets[1].health[0].set(HealthState::Unhealthy, None);
        g.targets[2].health[0].set(HealthState::Healthy, None);
        assert!((0..10).all(|_| g.pick(0, None) != Some(1)));
        // Node 1 has its own view: still all initial there.
        assert!((0..10).any(|_| g.pick(1, None) == Some(1)));
        for t in &g.targets {
            t.health[0].set(HealthState::Unhealthy, None);
        }
        let mut seen = [false; 3];
        for _ in 0..6 {
            seen[g.pick(0, None).unwrap()] = true;
        }
        assert_eq!(seen, [true; 3]);
        assert_eq!(group(0, Algorithm::RoundRobin).pick(0, None), None);
    }

    #[test]
    fn draining_and_deregistered_targets_get_no_new_requests() {
        let g = group(3, Algorithm::RoundRobin);
        for t in &g.targets {
            t.health[0].set(HealthState::Healthy, None);
        }
        g.targets[1].set_registration(Registration::Draining);
        assert!((0..10).all(|_| g.pick(0, None) != Some(1)));
        // Not even through a sticky cookie, nor when failing open.
        assert_ne!(g.pick(0, Some(1)), Some(1));
        for t in &g.targets {
            t.health[0].set(HealthState::Unhealthy, None);
        }
        assert!((0..10).all(|_| g.pick(0, None) != Some(1)));
        // No registered target left: 503.
        g.targets[0].set_registration(Registration::Deregistered);
        g.targets[2].set_registration(Registration::Deregistered);
        assert_eq!(g.pick(0, None), None);
        g.targets[2].set_registration(Registration::Registered);
        assert_eq!(g.pick(0, None), Some(2));
    }

    #[test]
    fn least_outstanding_and_sticky() {
        let g = group(3, Algorithm::LeastOutstandingRequests);
        g.targets[0].shared.inflight.store(5, Ordering::Relaxed);
        g.targets[1].shared.inflight.store(1, Ordering::Relaxed);
        g.targets[2].shared.inflight.store(3, Ordering::Relaxed);
        assert!((0..5).all(|_| g.pick(0, None) == Some(1)));
        assert_eq!(g.pick(0, Some(2)), Some(2));
        g.targets[0].health[0].set(HealthState::Healthy, None);
        // A sticky target that is not routable is ignored.
        assert_eq!(g.pick(0, Some(2)), Some(0));
        let w = group(4, Algorithm::WeightedRandom);
        let mut seen = [0; 4];
        for _ in 0..400 {
            seen[w.pick(0, None).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&c| c > 40), "{seen:?}");
    }

    #[test]
    fn histogram_quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in 1..=1000 {
            h.record(us);
        }
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        assert!((500..=540).contains(&p50), "{p50}");
        assert!((990..=1060).contains(&p99), "{p99}");
        for i in 0..BUCKETS - 1 {
            assert!(Histogram::upper(i) < Histogram::upper(i + 1));
            assert_eq!(Histogram::index(Histogram::upper(i)), i);
        }
    }
}
