//! One configuration of the ALB daemon: what a request reads (listeners,
//! rules, weights, target groups, web ACLs), built from a lab plan. A new
//! plan gives a new configuration that takes over the state of whatever
//! stays (nodes and their connections, target health and registration,
//! metrics, WAF counters, idle connections to targets); the daemon swaps
//! it in at once, and requests already routed finish on the old one.

use super::access_log::AccessLog;
use super::balancer::{Group, Health, HealthState, Reason, Registered, Registration, Target};
use super::health::HealthKey;
use super::proxy::Pool;
use super::router::{Forward, Listener, Rule};
use super::status::*;
use super::waf_log::WafLog;
use super::LbError;
use crate::connlimit::Registry;
use crate::fabric::netns;
use crate::topology::plan::{aws_id, Algorithm, Condition, Lab, WeightedTargetGroup};
use crate::waf::WebAcl;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The account id printed in ARNs (the one AWS documentation uses).
const ACCOUNT: &str = "123456789012";

/// An ALB node for as long as the plan has it, across configurations.
pub struct Node {
    /// Never reused within the daemon: what accept loops know their node by.
    pub id: usize,
    pub name: String,
    pub ns: String,
    /// The namespace's inode when the node was made: the same name later
    /// may be another namespace.
    pub ns_inode: Option<u64>,
    pub private_ip: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
    /// Client connections of the node (limits, shedding, idle timeout).
    pub conns: Arc<Registry>,
    /// The runtimes of the node's worker threads: a connection stays on the
    /// thread that accepted it. Empty in unit tests.
    pub workers: Vec<tokio::runtime::Handle>,
    /// Listening sockets, by port.
    pub bound: Mutex<HashMap<u16, Binding>>,
    /// Set when the node leaves the plan: its threads end once its
    /// connections have.
    pub retired: watch::Sender<bool>,
    /// The worker thread the next client connection goes to (modulo
    /// their number).
    pub next_worker: AtomicUsize,
}

/// A listener bound in a node's namespace: one accept task per worker.
pub struct Binding {
    pub accepts: Vec<JoinHandle<()>>,
    /// Tells the listener's open connections to close after the request in
    /// progress.
    pub unbound: watch::Sender<bool>,
}

impl Node {
    pub fn new(
        id: usize,
        name: String,
        ns: String,
        (private_ip, public_ip): (Ipv4Addr, Option<Ipv4Addr>),
        conns: Arc<Registry>,
        workers: Vec<tokio::runtime::Handle>,
    ) -> Node {
        Node {
            id,
            name,
            ns_inode: netns::inode(&ns),
            ns,
            private_ip,
            public_ip,
            conns,
            workers,
            bound: Mutex::default(),
            retired: watch::channel(false).0,
            next_worker: AtomicUsize::new(0),
        }
    }

    fn bound(&self) -> std::sync::MutexGuard<'_, HashMap<u16, Binding>> {
        self.bound.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_bound(&self, port: u16) -> bool {
        self.bound().contains_key(&port)
    }

    pub fn bind(&self, port: u16, b: Binding) {
        self.bound().insert(port, b);
    }

    /// Stops listening on ports not in `keep`; their connections finish
    /// the request in progress, then close. The sockets are closed when
    /// the accept tasks returned have ended.
    pub fn unbind_except(&self, keep: &[u16]) -> Vec<JoinHandle<()>> {
        let mut ended = Vec::new();
        self.bound().retain(|port, b| {
            if keep.contains(port) {
                return true;
            }
            b.unbound.send_replace(true);
            for a in b.accepts.drain(..) {
                a.abort();
                ended.push(a);
            }
            false
        });
        ended
    }
}

/// A node in one configuration.
pub struct NodeView {
    pub node: Arc<Node>,
    /// Index into `Config::lbs`.
    pub lb: usize,
    /// One per worker thread.
    pub pools: Vec<Pool>,
}

pub struct LoadBalancer {
    pub name: String,
    pub dns_name: String,
    pub idle_timeout: Duration,
    pub listeners: Vec<Listener>,
    /// The associated web ACL (shared with other load balancers it guards).
    pub web_acl: Option<Arc<WebAcl>>,
    /// The load balancer's index in the access log's names.
    pub log_id: usize,
    /// WAF logs' `httpSourceId`.
    pub waf_source_id: String,
}

/// Everything a request reads, for one lab plan.
pub struct Config {
    pub plan: Lab,
    pub nodes: Vec<NodeView>,
    pub lbs: Vec<LoadBalancer>,
    /// As `plan.target_groups`, then nothing: a group that left the plan
    /// is gone with its listeners.
    pub groups: Vec<Group>,
    pub web_acls: Vec<Arc<WebAcl>>,
    pub log: AccessLog,
    /// The WAF log writer, when the lab has a web ACL.
    pub waf_log: Option<WafLog>,
}

/// What a new configuration does to targets' registrations, carried out by
/// the daemon when it swaps the configuration in (not before: a build may
/// still be refused).
#[derive(Default)]
pub struct Changes {
    /// Targets that left the plan: they drain for the group's
    /// deregistration delay (`deregister-targets`).
    pub drain: Vec<(String, Arc<Registered>, Duration)>,
    /// Targets back in the plan while draining: registered again, from
    /// `initial` (`register-targets`).
    pub register: Vec<(String, Arc<Registered>, Vec<Arc<Health>>)>,
}

impl Changes {
    pub fn carry_out(self) -> Vec<(Arc<Registered>, Duration)> {
        for (_, t, health) in self.register {
            for h in health {
                h.set(HealthState::Initial, None);
            }
            t.set_registration(Registration::Registered);
        }
        self.drain
            .into_iter()
            .map(|(_, t, delay)| {
                t.set_registration(Registration::Draining);
                (t, delay)
            })
            .collect()
    }
}

/// What building a configuration needs besides the plan.
pub struct Build<'a> {
    /// Worker threads per node.
    pub workers: usize,
    pub log: &'a AccessLog,
    pub waf_log: Option<WafLog>,
    /// Makes a node the previous configuration did not have: name,
    /// namespace, addresses, idle timeout.
    #[allow(clippy::type_complexity)]
    pub new_node: &'a mut dyn FnMut(
        String,
        String,
        (Ipv4Addr, Option<Ipv4Addr>),
        Duration,
    ) -> Result<Arc<Node>, LbError>,
}

impl Config {
    /// The configuration for `plan`, taking over from `old` what stays.
    pub fn build(
        plan: Lab,
        old: Option<&Config>,
        ctx: Build<'_>,
    ) -> Result<(Config, Changes), LbError> {
        let web_acls: Vec<Arc<WebAcl>> = plan
            .web_acls
            .iter()
            .map(|w| {
                let before = old.and_then(|o| o.web_acls.iter().find(|x| x.plan.name == w.name));
                match before {
                    // Unchanged: kept as it is, compiled statements and all
                    // (compiling the managed groups' patterns is what a
                    // change of weights or targets would otherwise cost).
                    Some(b) if b.plan == *w => b.clone(),
                    _ => Arc::new(WebAcl::renew(w.clone(), before.map(|a| &**a))),
                }
            })
            .collect();

        let mut nodes = Vec::new();
        let mut lbs = Vec::new();
        for (i, lb) in plan.load_balancers.iter().enumerate() {
            let idle = Duration::from_secs(lb.idle_timeout_s.max(1) as u64);
            for &e in &lb.nodes {
                let eni = &plan.enis[e];
                // A node replaced by a change (a new ENI, a new namespace of
                // the same name) is a new node.
                let ns = plan.namespace(&eni.node);
                let kept = old.and_then(|o| {
                    o.nodes.iter().find(|n| {
                        n.node.name == eni.node
                            && n.node.private_ip == eni.private_ip
                            && n.node.ns_inode == netns::inode(&ns)
                    })
                });
                let node = match kept {
                    Some(n) => n.node.clone(),
                    None => {
                        (ctx.new_node)(eni.node.clone(), ns, (eni.private_ip, eni.public_ip), idle)?
                    }
                };
                nodes.push(NodeView {
                    node,
                    lb: i,
                    pools: vec![],
                });
            }
            let before = old.and_then(|o| o.lbs.iter().find(|l| l.name == lb.name));
            let elb = {
                let id = aws_id("app", &plan.name, &lb.name);
                format!("app/{}/{}", lb.name, &id[id.len() - 16..])
            };
            lbs.push(LoadBalancer {
                name: lb.name.clone(),
                dns_name: lb.dns_name.clone(),
                idle_timeout: idle,
                listeners: lb
                    .listeners
                    .iter()
                    .map(|l| {
                        let was =
                            before.and_then(|b| b.listeners.iter().find(|x| x.port == l.port));
                        Listener {
                            port: l.port,
                            rules: l
                                .rules
                                .iter()
                                .map(|r| Rule {
                                    priority: r.priority,
                                    conditions: r.conditions.clone(),
                                    forward: keep_forward(
                                        &plan,
                                        &r.forward,
                                        old.zip(was.and_then(|w| {
                                            w.rules
                                                .iter()
                                                .find(|x| x.priority == r.priority)
                                                .map(|x| &x.forward)
                                        })),
                                    ),
                                })
                                .collect(),
                            default: keep_forward(
                                &plan,
                                &l.default_forward,
                                old.zip(was.map(|w| &w.default)),
                            ),
                        }
                    })
                    .collect(),
                web_acl: web_acls
                    .iter()
                    .find(|w| w.plan.load_balancers.contains(&i))
                    .cloned(),
                log_id: ctx.log.elb_id(&elb),
                waf_source_id: format!("{ACCOUNT}-{elb}"),
            });
        }

        let mut changes = Changes::default();
        let groups: Vec<Group> = plan
            .target_groups
            .iter()
            .enumerate()
            .map(|(gi, tg)| {
                let id = aws_id("targetgroup", &plan.name, &tg.name);
                let arn = format!(
                    "arn:aws:elasticloadbalancing:{}:{ACCOUNT}:targetgroup/{}/{}",
                    plan.region,
                    tg.name,
                    &id[id.len() - 16..]
                );
                let before = old.and_then(|o| o.groups.iter().find(|g| g.plan.name == tg.name));
                // A node's view of a target that stays is kept; a node new to
                // the plan starts from `initial`.
                let health = |t: Option<&Target>| -> Vec<Arc<Health>> {
                    nodes
                        .iter()
                        .map(|n| {
                            let kept = t.zip(old).and_then(|(t, o)| {
                                let ni = o.nodes.iter().position(|v| v.node.id == n.node.id)?;
                                Some(t.health[ni].clone())
                            });
                            kept.unwrap_or_else(Health::initial)
                        })
                        .collect()
                };
                let mut targets: Vec<Target> = tg
                    .targets
                    .iter()
                    .map(|tp| {
                        let addr = SocketAddr::from((tp.ip, tp.port));
                        let was = before.and_then(|g| {
                            g.targets
                                .iter()
                                .find(|t| t.instance == tp.instance && t.addr == addr)
                        });
                        let Some(was) = was else {
                            return Target::new(tp.instance.clone(), addr, nodes.len());
                        };
                        let health = health(Some(was));
                        // A target deregistered from the command line stays
                        // so; one that had left the plan comes back.
                        if was.removed && was.registration() != Registration::Registered {
                            changes.register.push((
                                tp.instance.clone(),
                                was.shared.clone(),
                                health.clone(),
                            ));
                        }
                        Target {
                            instance: tp.instance.clone(),
                            addr,
                            host: was.host.clone(),
                            health,
                            shared: was.shared.clone(),
                            removed: false,
                        }
                    })
                    .collect();
                // Targets that left the plan drain, then go (at the next
                // configuration after they are deregistered).
                for was in before.iter().flat_map(|g| &g.targets) {
                    let stays = tg.targets.iter().any(|tp| {
                        tp.instance == was.instance
                            && SocketAddr::from((tp.ip, tp.port)) == was.addr
                    });
                    if stays || was.registration() == Registration::Deregistered {
                        continue;
                    }
                    if !was.removed && was.registration() == Registration::Registered {
                        changes.drain.push((
                            was.instance.clone(),
                            was.shared.clone(),
                            Duration::from_secs(tg.deregistration_delay_s as u64),
                        ));
                    }
                    targets.push(Target {
                        instance: was.instance.clone(),
                        addr: was.addr,
                        host: was.host.clone(),
                        health: health(Some(was)),
                        shared: was.shared.clone(),
                        removed: true,
                    });
                }
                let used_by = lbs
                    .iter()
                    .map(|lb| {
                        lb.listeners.iter().any(|l| {
                            l.forwards()
                                .any(|f| f.groups().iter().any(|w| w.target_group == gi))
                        })
                    })
                    .collect();
                Group::new(
                    tg.clone(),
                    arn.clone(),
                    ctx.log.arn_id(&arn),
                    targets,
                    used_by,
                    before.map(|g| g.metrics.clone()).unwrap_or_default(),
                )
            })
            .collect();

        for n in &mut nodes {
            let was = old.and_then(|o| o.nodes.iter().find(|v| v.node.id == n.node.id));
            n.pools = (0..ctx.workers)
                .map(|w| {
                    Pool::renew(
                        &groups,
                        was.zip(old).map(|(v, o)| (&v.pools[w], &o.groups[..])),
                    )
                })
                .collect();
        }
        let cfg = Config {
            plan,
            nodes,
            lbs,
            groups,
            web_acls,
            log: ctx.log.clone(),
            waf_log: ctx.waf_log,
        };
        Ok((cfg, changes))
    }
}

/// The forward action `f` of `plan`; `old`'s own (with its place in the
/// interleaving) when it forwards to the same groups with the same weights,
/// so a change elsewhere does not restart a 90/10 split.
fn keep_forward(
    plan: &Lab,
    f: &[WeightedTargetGroup],
    old: Option<(&Config, &Arc<Forward>)>,
) -> Arc<Forward> {
    if let Some((o, fwd)) = old {
        let was = fwd.groups();
        let same = was.len() == f.len()
            && was.iter().zip(f).all(|(x, y)| {
                x.target_group == y.target_group
                    && x.weight == y.weight
                    && o.plan.target_groups[x.target_group].name
                        == plan.target_groups[y.target_group].name
            });
        if same {
            return fwd.clone();
        }
    }
    Arc::new(Forward::new(f.to_vec()))
}

impl Config {
    /// Node and listener (indexes) of a connection's entrance, `None` once
    /// the listener is gone.
    pub fn entrance(&self, node: usize, port: u16) -> Option<(usize, usize)> {
        let ni = self.nodes.iter().position(|n| n.node.id == node)?;
        let li = self.lbs[self.nodes[ni].lb]
            .listeners
            .iter()
            .position(|l| l.port == port)?;
        Some((ni, li))
    }

    /// The idle timeout of node `id`'s load balancer.
    pub fn idle_timeout(&self, node: usize) -> Option<Duration> {
        let n = self.nodes.iter().find(|n| n.node.id == node)?;
        Some(self.lbs[n.lb].idle_timeout)
    }

    /// Every health check the configuration needs: each node checks every
    /// target of every group (those its load balancer does not use report
    /// `unused`).
    pub fn health_checks(&self) -> impl Iterator<Item = (HealthKey, usize)> + '_ {
        self.groups.iter().flat_map(move |g| {
            g.targets.iter().flat_map(move |t| {
                self.nodes.iter().enumerate().map(move |(ni, n)| {
                    let key = HealthKey {
                        group: g.plan.name.clone(),
                        instance: t.instance.clone(),
                        addr: t.addr,
                        node: n.node.id,
                    };
                    (key, ni)
                })
            })
        })
    }

    /// Where a health check's group, target and node are now.
    pub fn locate(&self, k: &HealthKey) -> Option<(usize, usize, usize)> {
        let gi = self.groups.iter().position(|g| g.plan.name == k.group)?;
        let ti = self.groups[gi]
            .targets
            .iter()
            .position(|t| t.instance == k.instance && t.addr == k.addr)?;
        let ni = self.nodes.iter().position(|n| n.node.id == k.node)?;
        Some((gi, ti, ni))
    }

    /// A target of the plan (not one draining after it left the plan).
    pub fn find_target(&self, group: &str, instance: &str) -> Result<(&Group, &Target), LbError> {
        let g = self
            .groups
            .iter()
            .find(|g| g.plan.name == group)
            .ok_or_else(|| LbError::NoTargetGroup(group.into()))?;
        let t = g
            .targets
            .iter()
            .find(|t| t.instance == instance && !t.removed)
            .ok_or_else(|| {
                LbError::Refused(format!(
                    "{instance} is not a target of {group} in the topology"
                ))
            })?;
        Ok((g, t))
    }

    pub fn status(&self, access_log_dropped: u64) -> LbStatus {
        let name = |g: usize| self.plan.target_groups[g].name.clone();
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
                        node: n.node.name.clone(),
                        private_ip: n.node.private_ip.to_string(),
                        public_ip: n.node.public_ip.map(|ip| ip.to_string()),
                        connections: n.node.conns.stats(),
                        max_connections: n.node.conns.limits().max,
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
            lab: self.plan.name.clone(),
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
            access_log_dropped,
        }
    }

    fn group_status(&self, g: &Group) -> TargetGroupStatus {
        // Nodes whose load balancer uses the group; a target's state is the
        // worst any of them sees.
        let nodes: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| g.used_by[self.nodes[n].lb])
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
                        Some(Reason {
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
                            r.detail = format!("{}, seen from {}", r.detail, self.nodes[n].node.name);
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
        let ms = |q| m.response_time_quantile(q).map(|us| us as f64 / 1000.0);
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
            request_count: m.requests(),
            http_code_target_2xx: m.target_2xx(),
            http_code_target_3xx: m.target_3xx(),
            http_code_target_4xx: m.target_4xx(),
            http_code_target_5xx: m.target_5xx(),
            http_code_elb_5xx: m.elb_5xx(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connlimit::Limits;
    use crate::topology::plan::{ListenerRulePlan, TargetPlan};
    use std::sync::atomic::Ordering;

    fn canary() -> Lab {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/canary.toml");
        crate::topology::load(std::path::Path::new(path)).expect("shipped topology")
    }

    /// Builds configurations the way the daemon does, with nodes that have
    /// no threads; remembers which nodes each build had to make.
    struct Daemon {
        log: AccessLog,
        path: std::path::PathBuf,
        next: usize,
        made: Vec<String>,
    }

    impl Daemon {
        fn new(test: &str) -> Daemon {
            let path = std::env::temp_dir().join(format!(
                "vpcsim-lb-config-{test}-{}.log",
                std::process::id()
            ));
            Daemon {
                log: super::super::access_log::start(&path, 1).unwrap(),
                path,
                next: 0,
                made: vec![],
            }
        }

        fn build(&mut self, plan: Lab, old: Option<&Config>) -> (Config, Changes) {
            let (mut next, mut made) = (self.next, vec![]);
            let mut new_node = |name: String, ns, ips, idle| {
                made.push(name.clone());
                next += 1;
                let conns = Registry::new(Limits::new(100, idle));
                Ok(Arc::new(Node::new(next, name, ns, ips, conns, vec![])))
            };
            let build = Build {
                workers: 2,
                log: &self.log,
                waf_log: None,
                new_node: &mut new_node,
            };
            let r = Config::build(plan, old, build).unwrap();
            (self.next, self.made) = (next, made);
            r
        }
    }

    impl Drop for Daemon {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn target(c: &Config, group: &str, instance: &str) -> (usize, usize) {
        let g = c.groups.iter().position(|g| g.plan.name == group).unwrap();
        let t = c.groups[g]
            .targets
            .iter()
            .position(|t| t.instance == instance)
            .unwrap();
        (g, t)
    }

    fn state(c: &Config, group: &str, instance: &str) -> Option<String> {
        let s = c.status(0);
        let g = s.target_groups.iter().find(|g| g.name == group).unwrap();
        g.targets
            .iter()
            .find(|t| t.instance == instance)
            .map(|t| t.state.clone())
    }

    #[tokio::test]
    async fn weights_swap_while_metrics_health_and_untouched_rules_stay() {
        let mut d = Daemon::new("weights");
        let mut plan = canary();
        plan.load_balancers[0].listeners[0]
            .rules
            .push(ListenerRulePlan {
                priority: 10,
                conditions: vec![Condition::PathPattern(vec!["/v2/*".into()])],
                forward: vec![WeightedTargetGroup {
                    target_group: 1,
                    weight: 1,
                }],
            });
        let (c1, _) = d.build(plan.clone(), None);
        assert_eq!(d.made, ["alb-a", "alb-b"]);
        let (v1a_g, v1a_t) = target(&c1, "tg-v1", "v1-a");
        c1.groups[v1a_g]
            .metrics
            .shard(0)
            .requests
            .fetch_add(7, Ordering::Relaxed);
        c1.groups[v1a_g].targets[v1a_t].health[1].set(HealthState::Healthy, None);

        let fwd = &mut plan.load_balancers[0].listeners[0].default_forward;
        (fwd[0].weight, fwd[1].weight) = (0, 100);
        let (c2, changes) = d.build(plan, Some(&c1));
        assert!(d.made.is_empty(), "no node is new: {:?}", d.made);
        assert!(changes.drain.is_empty() && changes.register.is_empty());
        for (a, b) in c1.nodes.iter().zip(&c2.nodes) {
            assert!(Arc::ptr_eq(&a.node, &b.node));
        }
        let (l1, l2) = (&c1.lbs[0].listeners[0], &c2.lbs[0].listeners[0]);
        // The new split for requests that read the new configuration; one
        // that read the old one still goes by 90/10.
        assert!((0..20).all(|_| l2.default.choose(None) == Some(1)));
        assert!((0..20).any(|_| l1.default.choose(None) == Some(0)));
        // An untouched rule keeps its forward action (and interleaving).
        assert!(Arc::ptr_eq(&l1.rules[0].forward, &l2.rules[0].forward));
        assert_eq!(c2.groups[v1a_g].metrics.requests(), 7);
        let (g, t) = target(&c2, "tg-v1", "v1-a");
        assert!(Arc::ptr_eq(
            &c1.groups[v1a_g].targets[v1a_t].health[1],
            &c2.groups[g].targets[t].health[1]
        ));
        assert!(Arc::ptr_eq(
            &c1.web_acls[0],
            &c1.lbs[0].web_acl.clone().unwrap()
        ));
        let s = c2.status(0);
        let weights: Vec<u16> = s.load_balancers[0].listeners[0].rules[1]
            .forward
            .iter()
            .map(|f| f.weight)
            .collect();
        assert_eq!(weights, [0, 100]);
    }

    #[tokio::test]
    async fn a_removed_target_drains_then_goes_and_can_come_back() {
        let mut d = Daemon::new("drain");
        let (c1, _) = d.build(canary(), None);
        let mut plan = canary();
        plan.target_groups[0]
            .targets
            .retain(|t| t.instance != "v1-c");
        plan.target_groups[0].deregistration_delay_s = 5;
        let (c2, changes) = d.build(plan.clone(), Some(&c1));
        let drains: Vec<_> = changes
            .drain
            .iter()
            .map(|(i, _, delay)| (i.as_str(), delay.as_secs()))
            .collect();
        assert_eq!(drains, [("v1-c", 5)]);
        let drains = changes.carry_out();
        let (g, t) = target(&c2, "tg-v1", "v1-c");
        assert!(c2.groups[g].targets[t].removed);
        assert_eq!(state(&c2, "tg-v1", "v1-c").as_deref(), Some("draining"));
        // No new request, from either configuration; `register` from the
        // command line does not know it any more.
        for c in [&c1, &c2] {
            let (g, t) = target(c, "tg-v1", "v1-c");
            assert!((0..30).all(|_| c.groups[g].pick(0, None) != Some(t)));
        }
        assert!(c2.find_target("tg-v1", "v1-c").is_err());
        // Its requests in flight count on the same target either way.
        let (g1, t1) = target(&c1, "tg-v1", "v1-c");
        c1.groups[g1].targets[t1]
            .shared
            .inflight
            .fetch_add(1, Ordering::Relaxed);
        assert_eq!(drains[0].0.inflight.load(Ordering::Relaxed), 1);

        // Still draining: a new plan keeps it draining (no second drain).
        let (c3, changes) = d.build(plan.clone(), Some(&c2));
        assert!(changes.drain.is_empty());
        assert_eq!(state(&c3, "tg-v1", "v1-c").as_deref(), Some("draining"));
        // Deregistered: the next configuration no longer has it.
        drains[0].0.set_registration(Registration::Deregistered);
        assert_eq!(state(&c3, "tg-v1", "v1-c"), None);
        let (c4, _) = d.build(plan.clone(), Some(&c3));
        assert!(c4.groups[0].targets.iter().all(|t| t.instance != "v1-c"));

        // Back in the plan while draining: registered again, from initial.
        let (c0, _) = d.build(canary(), None);
        let (c5, changes) = d.build(plan, Some(&c0));
        changes.carry_out();
        let (g, t) = target(&c5, "tg-v1", "v1-c");
        c5.groups[g].targets[t].health[0].set(HealthState::Healthy, None);
        let (c6, changes) = d.build(canary(), Some(&c5));
        let back: Vec<&str> = changes.register.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(back, ["v1-c"]);
        changes.carry_out();
        let (g, t) = target(&c6, "tg-v1", "v1-c");
        let back = &c6.groups[g].targets[t];
        assert!(!back.removed);
        assert_eq!(back.registration(), Registration::Registered);
        assert_eq!(back.health[0].state(), HealthState::Initial);
    }

    #[tokio::test]
    async fn deregistered_from_the_cli_stays_so_and_new_targets_start_initial() {
        let mut d = Daemon::new("cli");
        let (c1, _) = d.build(canary(), None);
        let (g, t) = target(&c1, "tg-v1", "v1-b");
        c1.groups[g].targets[t].set_registration(Registration::Deregistered);
        let mut plan = canary();
        let v2a = plan.target_groups[1].targets[0].clone();
        plan.target_groups[0].targets.push(TargetPlan {
            instance: v2a.instance.clone(),
            ..v2a
        });
        let (c2, changes) = d.build(plan, Some(&c1));
        assert!(changes.register.is_empty() && changes.drain.is_empty());
        let (g, t) = target(&c2, "tg-v1", "v1-b");
        assert_eq!(
            c2.groups[g].targets[t].registration(),
            Registration::Deregistered
        );
        assert_eq!(state(&c2, "tg-v1", "v2-a").as_deref(), Some("initial"));
        let keys: Vec<HealthKey> = c2.health_checks().map(|(k, _)| k).collect();
        assert!(keys
            .iter()
            .any(|k| k.group == "tg-v1" && k.instance == "v2-a"));
        assert!(keys.iter().all(|k| c2.locate(k).is_some()));
    }

    #[tokio::test]
    async fn listeners_and_nodes_come_and_go() {
        let mut d = Daemon::new("nodes");
        let (c1, _) = d.build(canary(), None);
        let (a, b) = (c1.nodes[0].node.id, c1.nodes[1].node.id);
        let mut plan = canary();
        let mut extra = plan.load_balancers[0].listeners[0].clone();
        extra.port = 8080;
        plan.load_balancers[0].listeners.push(extra);
        // alb-b's subnet leaves the load balancer.
        plan.load_balancers[0].nodes.truncate(1);
        plan.target_groups[0].health_check.path = "/healthz".into();
        plan.target_groups[0].algorithm = Algorithm::LeastOutstandingRequests;
        let (c2, _) = d.build(plan, Some(&c1));
        assert_eq!(c1.entrance(a, 8080), None);
        assert_eq!(c2.entrance(a, 8080), Some((0, 1)));
        assert_eq!(c2.entrance(a, 80), Some((0, 0)));
        assert_eq!(c2.entrance(b, 80), None);
        assert_eq!(c2.idle_timeout(b), None);
        let g = &c2.groups[0];
        assert_eq!(g.plan.health_check.path, "/healthz");
        assert_eq!(g.plan.algorithm, Algorithm::LeastOutstandingRequests);
        // Health kept for the node that stays (index 0 in both).
        assert!(Arc::ptr_eq(
            &c1.groups[0].targets[0].health[0],
            &g.targets[0].health[0]
        ));
        assert_eq!(g.targets[0].health.len(), 1);
        assert!(c2.health_checks().all(|(k, _)| k.node == a));

        // The listener goes, alb-b comes back: a new node (new id).
        let (c3, _) = d.build(canary(), Some(&c2));
        assert_eq!(d.made, ["alb-b"]);
        assert_eq!(c3.entrance(a, 8080), None);
        let back = c3.nodes[1].node.id;
        assert!(back != a && back != b);
        assert_eq!(
            c3.groups[0].targets[0].health[1].state(),
            HealthState::Initial
        );
        let s = c3.status(0);
        let nodes: Vec<&str> = s.load_balancers[0]
            .nodes
            .iter()
            .map(|n| n.node.as_str())
            .collect();
        assert_eq!(nodes, ["alb-a", "alb-b"]);
    }

    #[tokio::test]
    async fn sticky_ids_follow_targets_when_indexes_move() {
        let mut d = Daemon::new("sticky");
        let (c1, _) = d.build(canary(), None);
        let (g, t) = target(&c1, "tg-v1", "v1-b");
        let (gid, tid) = (c1.groups[g].log_id, c1.groups[g].targets[t].shared.id);
        let mut plan = canary();
        plan.target_groups[0].targets.remove(0);
        let (c2, _) = d.build(plan, Some(&c1));
        let g2 = c2.groups.iter().position(|g| g.log_id == gid).unwrap();
        let t2 = c2.groups[g2].target_by_id(tid).unwrap();
        assert_eq!(c2.groups[g2].targets[t2].instance, "v1-b");
        assert_ne!(t2, t);
    }

    #[tokio::test]
    async fn groups_follow_their_names_when_indexes_move() {
        let mut d = Daemon::new("groups");
        let (c1, _) = d.build(canary(), None);
        c1.groups[1]
            .metrics
            .shard(1)
            .requests
            .fetch_add(3, Ordering::Relaxed);
        let mut plan = canary();
        // A new group first: every index in forward actions moves.
        let mut tg = plan.target_groups[1].clone();
        tg.name = "tg-v3".into();
        plan.target_groups.insert(0, tg);
        let l = &mut plan.load_balancers[0].listeners[0];
        for w in &mut l.default_forward {
            w.target_group += 1;
        }
        l.default_forward.push(WeightedTargetGroup {
            target_group: 0,
            weight: 0,
        });
        let (c2, _) = d.build(plan, Some(&c1));
        assert_eq!(c2.groups[2].plan.name, "tg-v2");
        assert_eq!(c2.groups[2].metrics.requests(), 3);
        assert!(c2.groups[0].used_by[0]);
        let fwd: Vec<String> = c2.status(0).load_balancers[0].listeners[0].rules[0]
            .forward
            .iter()
            .map(|f| format!("{}={}", f.target_group, f.weight))
            .collect();
        assert_eq!(fwd, ["tg-v1=90", "tg-v2=10", "tg-v3=0"]);
        // Access log names only grow: the old configuration's ids hold.
        assert_eq!(c2.groups[1].log_id, c1.groups[0].log_id);
        assert_ne!(c2.groups[0].log_id, c1.groups[1].log_id);
    }
}
