//! The ALB daemon of a lab (`vpcsim alb-daemon --lab L`): one process for
//! every load balancer node of the lab. Each node's listeners are bound inside
//! that node's namespace and its connections to targets start there too; the
//! rule/weight state is shared, which is what makes a 90/10 split exact
//! whichever node a client's DNS lookup picked.

use super::access_log::{self, AccessLog, Names};
use super::balancer::{Group, HealthState, Registration};
use super::proxy::{self, Entrance, Pool};
use super::router::{Forward, Listener, Rule};
use super::status::*;
use super::LbError;
use crate::connlimit::{self, Limits, Registry};
use crate::fabric::netns;
use crate::state::LabState;
use crate::topology::plan::{aws_id, Algorithm, Condition, Lab};
use crate::waf::log::WafLog;
use crate::waf::WebAcl;
use hyper::header::HeaderValue;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The account id printed in ARNs (the one AWS documentation uses).
const ACCOUNT: &str = "123456789012";

pub struct Node {
    /// Index into `Balancer::lbs`.
    pub lb: usize,
    pub name: String,
    pub ns: String,
    pub private_ip: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
    /// One per worker thread: a connection stays on the thread that made it.
    pub pools: Vec<Pool>,
    /// Client connections of the node (limits, shedding, idle timeout).
    pub conns: Arc<Registry>,
}

pub struct LoadBalancer {
    pub name: String,
    pub dns_name: String,
    pub idle_timeout: Duration,
    pub listeners: Vec<Listener>,
    /// The associated web ACL (shared with other load balancers it guards).
    pub web_acl: Option<Arc<WebAcl>>,
}

/// Everything the daemon serves, shared by all nodes' tasks.
pub struct Balancer {
    pub lab: Lab,
    pub nodes: Vec<Node>,
    pub lbs: Vec<LoadBalancer>,
    pub groups: Vec<Group>,
    /// `ip:port` of each target, per group, for requests without a Host.
    pub hosts: Vec<Vec<HeaderValue>>,
    pub log: AccessLog,
    pub web_acls: Vec<Arc<WebAcl>>,
    /// The WAF log writer, when the lab has a web ACL.
    pub waf_log: Option<WafLog>,
    /// Per load balancer: WAF logs' `httpSourceId`.
    pub waf_source_ids: Vec<String>,
}

pub fn run(lab: &str) -> anyhow::Result<()> {
    let state = LabState::load(lab)?
        .ok_or_else(|| anyhow::anyhow!("lab {lab} has no state (is it up?)"))?;
    // The control socket and the access log writer; each node has its own
    // threads and runtimes (see `serve`).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(state.plan))
}

async fn serve(plan: Lab) -> anyhow::Result<()> {
    let lab = plan.name.clone();
    let b = Arc::new(Balancer::new(plan)?);
    b.refresh_used();
    for (ni, node) in b.nodes.iter().enumerate() {
        let mut listeners = Vec::new();
        for (li, l) in b.lbs[node.lb].listeners.iter().enumerate() {
            let listener = bind_in(&node.ns, l.port).map_err(|e| {
                anyhow::anyhow!("node {}: cannot listen on port {}: {e}", node.name, l.port)
            })?;
            listeners.push((li, listener));
        }
        // Each of a node's threads accepts on every listener and keeps its
        // connections (client and target side) on its own single-threaded
        // runtime: no cross-thread wakeup or work stealing per request.
        for worker in 0..node.pools.len() {
            let mine = listeners
                .iter()
                .map(|(li, l)| {
                    let at = Entrance {
                        node: ni,
                        lb: node.lb,
                        listener: *li,
                        worker,
                    };
                    Ok((at, l.try_clone()?))
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let b = b.clone();
            std::thread::Builder::new()
                .name(format!("alb {} {worker}", node.name))
                .spawn(move || rt.block_on(run_node(b, ni, worker, mine)))?;
        }
    }
    // The control socket last: once it answers, every listener is bound.
    let path = super::control_socket(&lab);
    let _ = std::fs::remove_file(&path);
    let control = tokio::net::UnixListener::bind(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    eprintln!(
        "alb daemon for lab {lab}: {} node(s), {} listener(s) bound",
        b.nodes.len(),
        b.nodes
            .iter()
            .map(|n| b.lbs[n.lb].listeners.len())
            .sum::<usize>()
    );
    super::control::serve(b, control).await;
    Ok(())
}

/// Worker threads per node: one per core, like HAProxy's `nbthread`.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// One thread of node `ni`: its listeners and, on the first, health checks.
async fn run_node(
    b: Arc<Balancer>,
    ni: usize,
    worker: usize,
    listeners: Vec<(Entrance, std::net::TcpListener)>,
) {
    let node = &b.nodes[ni];
    if worker == 0 {
        for (gi, g) in b.groups.iter().enumerate() {
            for ti in 0..g.targets.len() {
                tokio::spawn(super::health::run(b.clone(), gi, ti, ni));
            }
        }
        tokio::spawn(node.conns.clone().reap_forever());
    }
    // Idle connections to targets close after the load balancer's idle
    // timeout, as AWS closes its backend connections.
    let idle = b.lbs[node.lb].idle_timeout;
    let reaper = b.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(
            (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5)),
        );
        loop {
            every.tick().await;
            reaper.nodes[ni].pools[worker].close_idle(idle);
        }
    });
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|(at, l)| tokio::spawn(accept_loop(b.clone(), at, l)))
        .collect();
    futures::future::join_all(loops).await;
}

/// A listening socket on 0.0.0.0:`port` inside namespace `ns`.
fn bind_in(ns: &str, port: u16) -> Result<std::net::TcpListener, LbError> {
    use socket2::{Domain, Socket, Type};
    // Only creating the socket needs the namespace; it stays there.
    let sock = netns::run_in(ns, || Socket::new(Domain::IPV4, Type::STREAM, None))??;
    sock.set_reuse_address(true)?;
    sock.bind(&std::net::SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    sock.listen(4096)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

async fn accept_loop(b: Arc<Balancer>, at: Entrance, listener: std::net::TcpListener) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("listener of node {}: {e}", b.nodes[at.node].name);
            return;
        }
    };
    let conns = b.nodes[at.node].conns.clone();
    connlimit::accept_loop(listener, conns, |stream, peer, adm| {
        proxy::serve(b.clone(), at, stream, peer, adm)
    })
    .await;
}

/// Client connections each node admits: at most 10,000, and no more than
/// the process's descriptors allow (each may hold one to a target too).
fn node_limit(nodes: usize) -> usize {
    let fds = connlimit::raise_nofile_limit() as usize;
    let fit = fds.saturating_sub(512) / (2 * nodes.max(1));
    connlimit::max_from_env(fit.clamp(2, 10_000))
}

impl Balancer {
    fn new(plan: Lab) -> Result<Balancer, LbError> {
        let mut nodes = Vec::new();
        let mut lbs = Vec::new();
        let web_acls: Vec<Arc<WebAcl>> = plan
            .web_acls
            .iter()
            .map(|w| Arc::new(WebAcl::new(w.clone())))
            .collect();
        let max = node_limit(plan.load_balancers.iter().map(|l| l.nodes.len()).sum());
        for (i, lb) in plan.load_balancers.iter().enumerate() {
            let idle = Duration::from_secs(lb.idle_timeout_s.max(1) as u64);
            for &e in &lb.nodes {
                let eni = &plan.enis[e];
                let ns = plan.namespace(&eni.node);
                nodes.push(Node {
                    lb: i,
                    name: eni.node.clone(),
                    pools: (0..workers())
                        .map(|_| Pool::new(&plan.target_groups))
                        .collect(),
                    ns,
                    conns: Registry::new(Limits::new(max, idle)),
                    private_ip: eni.private_ip,
                    public_ip: eni.public_ip,
                });
            }
            let forward =
                |f: &Vec<crate::topology::plan::WeightedTargetGroup>| Forward::new(f.clone());
            lbs.push(LoadBalancer {
                name: lb.name.clone(),
                dns_name: lb.dns_name.clone(),
                idle_timeout: idle,
                listeners: lb
                    .listeners
                    .iter()
                    .map(|l| Listener {
                        port: l.port,
                        rules: l
                            .rules
                            .iter()
                            .map(|r| Rule {
                                priority: r.priority,
                                conditions: r.conditions.clone(),
                                forward: forward(&r.forward),
                            })
                            .collect(),
                        default: forward(&l.default_forward),
                    })
                    .collect(),
                web_acl: web_acls
                    .iter()
                    .find(|w| w.plan.load_balancers.contains(&i))
                    .cloned(),
            });
        }
        let groups: Vec<Group> = plan
            .target_groups
            .iter()
            .map(|tg| {
                let id = aws_id("targetgroup", &plan.name, &tg.name);
                let arn = format!(
                    "arn:aws:elasticloadbalancing:{}:{ACCOUNT}:targetgroup/{}/{}",
                    plan.region,
                    tg.name,
                    &id[id.len() - 16..]
                );
                Group::new(tg.clone(), arn, nodes.len(), lbs.len())
            })
            .collect();
        let names = Names {
            elb: plan
                .load_balancers
                .iter()
                .map(|lb| {
                    let id = aws_id("app", &plan.name, &lb.name);
                    format!("app/{}/{}", lb.name, &id[id.len() - 16..])
                })
                .collect(),
            arn: groups.iter().map(|g| g.arn.clone()).collect(),
        };
        let waf_source_ids = names.elb.iter().map(|e| format!("{ACCOUNT}-{e}")).collect();
        let log = access_log::start(&super::access_log_path(&plan.name), names, workers())?;
        let waf_log = if web_acls.is_empty() {
            None
        } else {
            Some(WafLog::start(&crate::state::waf_log_file(&plan.name))?)
        };
        Ok(Balancer {
            web_acls,
            waf_log,
            waf_source_ids,
            hosts: proxy::hosts(&groups),
            lab: plan,
            nodes,
            lbs,
            groups,
            log,
        })
    }

    /// Recomputes which groups each load balancer forwards to (any weight:
    /// a weight-0 group is still registered with the listener, as on AWS).
    fn refresh_used(&self) {
        for (gi, g) in self.groups.iter().enumerate() {
            for (li, lb) in self.lbs.iter().enumerate() {
                let used = lb.listeners.iter().any(|l| {
                    l.forwards()
                        .any(|f| f.groups().iter().any(|w| w.target_group == gi))
                });
                g.used_by[li].store(used, Ordering::Relaxed);
            }
        }
    }

    /// Changes the default action's weights of listener `lb:port`.
    pub fn set_weights(
        &self,
        lb: &str,
        port: u16,
        weights: &[(String, u32)],
    ) -> Result<(), LbError> {
        let l = self
            .lbs
            .iter()
            .find(|l| l.name == lb)
            .ok_or_else(|| LbError::NoLoadBalancer(lb.into()))?;
        let listener =
            l.listeners
                .iter()
                .find(|x| x.port == port)
                .ok_or_else(|| LbError::NoListener {
                    lb: lb.into(),
                    port,
                })?;
        listener.default.set(&self.lab, weights)?;
        self.refresh_used();
        Ok(())
    }

    /// `deregister-targets`: the target gets no new requests at once; it
    /// leaves when its in-flight requests are done or the group's
    /// deregistration delay has passed, whichever comes first (as on AWS).
    pub fn deregister(self: &Arc<Self>, group: &str, instance: &str) -> Result<(), LbError> {
        let (g, t) = self.find_target(group, instance)?;
        let target = &self.groups[g].targets[t];
        if target.registration() != Registration::Registered {
            return Err(LbError::Refused(format!(
                "{instance} is not registered with {group}"
            )));
        }
        target.set_registration(Registration::Draining);
        let delay = Duration::from_secs(self.groups[g].plan.deregistration_delay_s as u64);
        let b = self.clone();
        tokio::spawn(async move {
            let target = &b.groups[g].targets[t];
            let deadline = tokio::time::Instant::now() + delay;
            while target.inflight.load(Ordering::Relaxed) > 0
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // A `register` meanwhile cancels the deregistration.
            if target.registration() == Registration::Draining {
                target.set_registration(Registration::Deregistered);
            }
        });
        Ok(())
    }

    /// `register-targets` for a target of the topology that was
    /// deregistered: it starts again from `initial` and gets traffic once
    /// its health checks pass.
    pub fn register(&self, group: &str, instance: &str) -> Result<(), LbError> {
        let (g, t) = self.find_target(group, instance)?;
        let target = &self.groups[g].targets[t];
        if target.registration() != Registration::Registered {
            for cell in &target.health {
                cell.set(HealthState::Initial, None);
            }
            target.set_registration(Registration::Registered);
        }
        Ok(())
    }

    fn find_target(&self, group: &str, instance: &str) -> Result<(usize, usize), LbError> {
        let g = self
            .groups
            .iter()
            .position(|g| g.plan.name == group)
            .ok_or_else(|| LbError::NoTargetGroup(group.into()))?;
        let t = self.groups[g]
            .targets
            .iter()
            .position(|t| t.instance == instance)
            .ok_or_else(|| {
                LbError::Refused(format!(
                    "{instance} is not a target of {group} in the topology"
                ))
            })?;
        Ok((g, t))
    }

    pub fn status(&self) -> LbStatus {
        let name = |g: usize| self.lab.target_groups[g].name.clone();
        let load_balancers = self
            .lbs
            .iter()
            .enumerate()
            .map(|(li, lb)| LoadBalancerStatus {
                name: lb.name.clone(),
                dns_name: lb.dns_name.clone(),
                idle_timeout_s: lb.idle_timeout.as_secs() as u32,
                nodes: self
                    .nodes
                    .iter()
                    .filter(|n| n.lb == li)
                    .map(|n| NodeStatus {
                        node: n.name.clone(),
                        private_ip: n.private_ip.to_string(),
                        public_ip: n.public_ip.map(|ip| ip.to_string()),
                        connections: n.conns.stats(),
                        max_connections: n.conns.limits().max,
                    })
                    .collect(),
                listeners: lb
                    .listeners
                    .iter()
                    .map(|l| {
                        let fwd = |f: &Forward| {
                            let groups = f.groups();
                            let total: u32 = groups.iter().map(|w| w.weight as u32).sum();
                            groups
                                .iter()
                                .map(|w| ForwardStatus {
                                    target_group: name(w.target_group),
                                    weight: w.weight,
                                    share_pct: if total == 0 {
                                        0.0
                                    } else {
                                        100.0 * w.weight as f64 / total as f64
                                    },
                                })
                                .collect()
                        };
                        let mut rules: Vec<RuleStatus> = l
                            .rules
                            .iter()
                            .map(|r| RuleStatus {
                                priority: Some(r.priority),
                                conditions: r.conditions.iter().map(describe).collect(),
                                forward: fwd(&r.forward),
                            })
                            .collect();
                        rules.push(RuleStatus {
                            priority: None,
                            conditions: vec![],
                            forward: fwd(&l.default),
                        });
                        ListenerStatus {
                            port: l.port,
                            rules,
                        }
                    })
                    .collect(),
            })
            .collect();
        let target_groups = self.groups.iter().map(|g| self.group_status(g)).collect();
        LbStatus {
            lab: self.lab.name.clone(),
            load_balancers,
            target_groups,
            web_acls: self
                .web_acls
                .iter()
                .map(|w| WebAclStatus {
                    name: w.plan.name.clone(),
                    arn: w.plan.arn.clone(),
                    load_balancers: w
                        .plan
                        .load_balancers
                        .iter()
                        .map(|&i| self.lbs[i].name.clone())
                        .collect(),
                    default_action: w.plan.default_action.log_name().into(),
                    metrics: w.metrics(),
                })
                .collect(),
            access_log_dropped: self.log.dropped(),
        }
    }

    fn group_status(&self, g: &Group) -> TargetGroupStatus {
        // Nodes whose load balancer uses the group; a target's state is the
        // worst any of them sees.
        let nodes: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| g.used_by[self.nodes[n].lb].load(Ordering::Relaxed))
            .collect();
        let rank = |s: HealthState| match s {
            HealthState::Healthy => 0,
            HealthState::Initial => 1,
            HealthState::Unused => 2,
            HealthState::Unhealthy => 3,
        };
        let targets: Vec<TargetStatus> = g
            .targets
            .iter()
            .filter(|t| t.registration() != Registration::Deregistered)
            .map(|t| {
                if t.registration() == Registration::Draining {
                    return TargetStatus {
                        instance: t.instance.clone(),
                        address: t.addr.to_string(),
                        state: "draining".into(),
                        reason: Some("Target.DeregistrationInProgress".into()),
                        description: Some("Target deregistration is in progress".into()),
                        detail: None,
                    };
                }
                let worst = nodes
                    .iter()
                    .copied()
                    .max_by_key(|&n| rank(t.health[n].state()));
                let (state, reason) = match worst {
                    None => (
                        HealthState::Unused,
                        Some(super::balancer::Reason {
                            code: "Target.NotInUse".into(),
                            description: "Target group is not configured to receive traffic from the load balancer".into(),
                            detail: String::new(),
                        }),
                    ),
                    Some(n) => {
                        let cell = &t.health[n];
                        let mut reason = cell
                            .reason
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .clone();
                        if let Some(r) = reason.as_mut().filter(|r| !r.detail.is_empty()) {
                            r.detail = format!("{}, seen from {}", r.detail, self.nodes[n].name);
                        }
                        (cell.state(), reason)
                    }
                };
                TargetStatus {
                    instance: t.instance.clone(),
                    address: t.addr.to_string(),
                    state: state.name().into(),
                    reason: reason.as_ref().map(|r| r.code.clone()),
                    description: reason.as_ref().map(|r| r.description.clone()),
                    detail: reason
                        .as_ref()
                        .map(|r| r.detail.clone())
                        .filter(|d| !d.is_empty()),
                }
            })
            .collect();
        let m = &g.metrics;
        let ms = |q| m.response_time.quantile(q).map(|us| us as f64 / 1000.0);
        TargetGroupStatus {
            name: g.plan.name.clone(),
            port: g.plan.port,
            algorithm: match g.plan.algorithm {
                Algorithm::RoundRobin => "round_robin",
                Algorithm::LeastOutstandingRequests => "least_outstanding_requests",
                Algorithm::WeightedRandom => "weighted_random",
            }
            .into(),
            stickiness_s: g.plan.stickiness_s,
            in_use: g.used(),
            request_count: m.requests.load(Ordering::Relaxed),
            http_code_target_2xx: m.target_2xx.load(Ordering::Relaxed),
            http_code_target_3xx: m.target_3xx.load(Ordering::Relaxed),
            http_code_target_4xx: m.target_4xx.load(Ordering::Relaxed),
            http_code_target_5xx: m.target_5xx.load(Ordering::Relaxed),
            http_code_elb_5xx: m.elb_5xx.load(Ordering::Relaxed),
            target_response_time_p50_ms: ms(0.5),
            target_response_time_p99_ms: ms(0.99),
            healthy_host_count: targets.iter().filter(|t| t.state == "healthy").count(),
            unhealthy_host_count: targets.iter().filter(|t| t.state == "unhealthy").count(),
            targets,
        }
    }
}

/// A rule condition as the console shows it.
fn describe(c: &Condition) -> String {
    match c {
        Condition::PathPattern(v) => format!("path-pattern={}", v.join(",")),
        Condition::HostHeader(v) => format!("host-header={}", v.join(",")),
        Condition::HttpHeader(h, v) => format!("http-header {h}={}", v.join(",")),
        Condition::HttpRequestMethod(v) => format!("http-request-method={}", v.join(",")),
        Condition::SourceIp(v) => format!(
            "source-ip={}",
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}
