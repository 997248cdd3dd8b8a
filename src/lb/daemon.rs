//! The ALB daemon of a lab (`vpcsim alb-daemon --lab L`): one process for
//! every load balancer node of the lab. Each node's listeners are bound inside
//! that node's namespace and its connections to targets start there too; the
//! rule/weight state is shared, which is what makes a 90/10 split exact
//! whichever node a client's DNS lookup picked.
//!
//! The daemon serves one [`Config`] at a time and takes a new lab plan live
//! ([`Balancer::reconfigure`]), as ELBv2 applies API changes: each request
//! reads the configuration current when it arrives and finishes on it.

use super::access_log::{self, AccessLog};
use super::balancer::{HealthState, Registered, Registration};
use super::config::{Binding, Build, Config, Node};
use super::health::HealthKey;
use super::proxy::{self, Entrance};
use super::status::LbStatus;
use super::waf_log::WafLog;
use super::LbError;
use crate::connlimit::{self, Limits, Registry};
use crate::fabric::netns;
use crate::state::LabState;
use crate::topology::plan::Lab;
use arc_swap::ArcSwap;
use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything the daemon serves, shared by all nodes' threads.
pub struct Balancer {
    lab: String,
    config: ArcSwap<Config>,
    /// Held while a new configuration is built and swapped in.
    changing: Mutex<()>,
    /// Worker threads per node.
    workers: usize,
    next_node: AtomicUsize,
    log: AccessLog,
    /// Opened with the first web ACL.
    waf_log: Mutex<Option<WafLog>>,
    /// Health checks running (each is a task on its node's first worker).
    health: Mutex<HashSet<HealthKey>>,
}

pub fn run(lab: &str) -> Result<(), LbError> {
    let state = LabState::load(lab)?.ok_or_else(|| LbError::NotUp(lab.into()))?;
    // The control socket, the log writers and draining; each node has its
    // own threads and runtimes.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LbError::Runtime)?;
    rt.block_on(serve(state.plan))
}

async fn serve(plan: Lab) -> Result<(), LbError> {
    let lab = plan.name.clone();
    let b = Balancer::start(plan)?;
    // The control socket last: once it answers, every listener is bound.
    let path = super::control_socket(&lab);
    let _ = std::fs::remove_file(&path);
    let control = tokio::net::UnixListener::bind(&path)
        .map_err(|source| LbError::ControlSocket { path, source })?;
    let cfg = b.config();
    eprintln!(
        "alb daemon for lab {lab}: {} node(s), {} listener(s) bound",
        cfg.nodes.len(),
        cfg.nodes
            .iter()
            .map(|n| cfg.lbs[n.lb].listeners.len())
            .sum::<usize>()
    );
    drop(cfg);
    super::control::serve(b, control).await;
    Ok(())
}

/// Worker threads per node: one per core, like HAProxy's `nbthread`.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Client connections each node admits: at most 10,000, and no more than
/// the process's descriptors allow (each may hold one to a target too).
fn node_limit(nodes: usize) -> usize {
    let fds = connlimit::raise_nofile_limit() as usize;
    let fit = fds.saturating_sub(512) / (2 * nodes.max(1));
    connlimit::max_from_env(fit.clamp(2, 10_000))
}

/// A listening socket on 0.0.0.0:`port` inside namespace `ns`.
fn bind_in(ns: &str, port: u16) -> Result<TcpListener, LbError> {
    use socket2::{Domain, Socket, Type};
    // Only creating the socket needs the namespace; it stays there.
    let sock = netns::run_in(ns, || Socket::new(Domain::IPV4, Type::STREAM, None))??;
    sock.set_reuse_address(true)?;
    sock.bind(&std::net::SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    sock.listen(4096)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// A listener bound for a configuration not yet swapped in: one socket
/// per worker of its node.
struct Staged {
    node: Arc<Node>,
    port: u16,
    sockets: Vec<TcpListener>,
}

/// A node made for a configuration, with runtimes that get their threads
/// once the configuration is swapped in.
type Fresh = (Arc<Node>, Vec<tokio::runtime::Runtime>);

/// What a configuration is built with besides the plan and its
/// predecessor: the parts of the daemon that do not change.
struct Parts<'a> {
    lab: &'a str,
    workers: usize,
    next_node: &'a AtomicUsize,
    log: &'a AccessLog,
    waf_log: &'a mut Option<WafLog>,
}

impl Parts<'_> {
    /// Builds the configuration for `plan` and binds its new listeners;
    /// nothing live changes (errors leave the daemon as it was).
    fn prepare(
        self,
        plan: Lab,
        old: Option<&Config>,
    ) -> Result<(Config, super::config::Changes, Vec<Staged>, Vec<Fresh>), LbError> {
        if plan.name != self.lab {
            return Err(LbError::OtherLab {
                daemon: self.lab.into(),
                plan: plan.name,
            });
        }
        // The lab's WAF log file, once a web ACL has a logging configuration.
        let logged = plan.web_acls.iter().any(|w| w.logging.is_some());
        if logged && self.waf_log.is_none() {
            *self.waf_log = Some(WafLog::start(&crate::state::waf_log_file(self.lab))?);
        }
        let waf_log = self.waf_log.clone().filter(|_| logged);
        let max = node_limit(plan.load_balancers.iter().map(|l| l.nodes.len()).sum());
        let mut fresh = Vec::new();
        let (workers, next_node) = (self.workers, self.next_node);
        let mut new_node = |name: String, ns: String, ips, idle| -> Result<Arc<Node>, LbError> {
            let runtimes = (0..workers)
                .map(|_| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            let node = Arc::new(Node::new(
                next_node.fetch_add(1, Ordering::Relaxed),
                name,
                ns,
                ips,
                Registry::new(Limits::new(max, idle)),
                runtimes.iter().map(|r| r.handle().clone()).collect(),
            ));
            fresh.push((node.clone(), runtimes));
            Ok(node)
        };
        let (cfg, changes) = Config::build(
            plan,
            old,
            Build {
                workers,
                log: self.log,
                waf_log,
                new_node: &mut new_node,
            },
        )?;
        let mut staged = Vec::new();
        for n in &cfg.nodes {
            for l in &cfg.lbs[n.lb].listeners {
                if n.node.is_bound(l.port) {
                    continue;
                }
                let listen = |source| LbError::Listen {
                    node: n.node.name.clone(),
                    port: l.port,
                    source,
                };
                let first = bind_in(&n.node.ns, l.port).map_err(|e| match e {
                    LbError::Io(e) => listen(e),
                    e => e,
                })?;
                let mut sockets = (1..workers)
                    .map(|_| first.try_clone())
                    .collect::<std::io::Result<Vec<_>>>()?;
                sockets.push(first);
                staged.push(Staged {
                    node: n.node.clone(),
                    port: l.port,
                    sockets,
                });
            }
        }
        Ok((cfg, changes, staged, fresh))
    }
}

impl Balancer {
    /// Serves `plan`: binds every listener, starts the nodes' threads and
    /// health checks.
    fn start(plan: Lab) -> Result<Arc<Balancer>, LbError> {
        let lab = plan.name.clone();
        let workers = workers();
        let log = access_log::start(&super::access_log_path(&lab), workers)?;
        let next_node = AtomicUsize::new(0);
        let mut waf_log = None;
        let (cfg, changes, staged, fresh) = Parts {
            lab: &lab,
            workers,
            next_node: &next_node,
            log: &log,
            waf_log: &mut waf_log,
        }
        .prepare(plan, None)?;
        let drains = changes.carry_out();
        let b = Arc::new(Balancer {
            lab,
            config: ArcSwap::from_pointee(cfg),
            changing: Mutex::new(()),
            workers,
            next_node,
            log,
            waf_log: Mutex::new(waf_log),
            health: Mutex::default(),
        });
        // A first configuration unbinds nothing.
        let _ = b.activate(None, drains, staged, fresh);
        Ok(b)
    }

    /// The configuration requests arriving now follow.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// The configuration requests arriving now follow, if it is not
    /// `have`: no reference count that other threads share is touched
    /// when it is.
    pub fn config_if_not(&self, have: &Arc<Config>) -> Option<Arc<Config>> {
        let now = self.config.load();
        (!Arc::ptr_eq(&now, have)).then(|| arc_swap::Guard::into_inner(now))
    }

    /// Takes `plan` live: listeners, rules and weights at once for the
    /// next request (requests in flight finish where they were sent);
    /// targets that left it drain, new ones start `initial`; new listeners
    /// and nodes are bound (their namespaces must exist), removed ones
    /// unbound. On error nothing has changed.
    /// Returns once removed listeners' sockets are closed.
    pub async fn reconfigure(self: &Arc<Self>, plan: Lab) -> Result<(), LbError> {
        let unbound = {
            let _one = self.changing.lock().unwrap_or_else(|e| e.into_inner());
            self.reconfigure_locked(plan)?
        };
        for accept in unbound {
            // Cancelled: its socket is closed.
            let _ = accept.await;
        }
        Ok(())
    }

    /// Swaps in the configuration for `plan`; returns the accept tasks of
    /// the listeners it removed (ending).
    fn reconfigure_locked(self: &Arc<Self>, plan: Lab) -> Result<Vec<JoinHandle<()>>, LbError> {
        let old = self.config();
        let mut waf_log = self.waf_log.lock().unwrap_or_else(|e| e.into_inner());
        let (cfg, changes, staged, fresh) = Parts {
            lab: &self.lab,
            workers: self.workers,
            next_node: &self.next_node,
            log: &self.log,
            waf_log: &mut waf_log,
        }
        .prepare(plan, Some(&old))?;
        drop(waf_log);
        // Targets that leave the plan take no new request from here on,
        // whichever configuration a request reads.
        let drains = changes.carry_out();
        self.config.store(Arc::new(cfg));
        Ok(self.activate(Some(&old), drains, staged, fresh))
    }

    /// After a configuration is swapped in: targets that left it drain,
    /// new nodes' threads and new listeners start, removed ones stop (their
    /// accept tasks are returned), and the health checks it needs run.
    fn activate(
        self: &Arc<Self>,
        old: Option<&Config>,
        drains: Vec<(Arc<Registered>, Duration)>,
        staged: Vec<Staged>,
        fresh: Vec<Fresh>,
    ) -> Vec<JoinHandle<()>> {
        let cfg = self.config();
        for (t, delay) in drains {
            self.drain(t, delay);
        }
        for (node, runtimes) in fresh {
            for (worker, rt) in runtimes.into_iter().enumerate() {
                let (b, node) = (self.clone(), node.clone());
                let name = format!("alb {} {worker}", node.name);
                let spawned = std::thread::Builder::new()
                    .name(name)
                    .spawn(move || rt.block_on(run_worker(b, node, worker)));
                if let Err(e) = spawned {
                    tracing::error!("alb: cannot start a worker thread: {e}");
                }
            }
        }
        for s in staged {
            let (unbound, _) = watch::channel(false);
            let accepts = s
                .sockets
                .into_iter()
                .enumerate()
                .map(|(worker, socket)| {
                    let at = Entrance {
                        node: s.node.id,
                        port: s.port,
                        worker,
                    };
                    let task = accept_loop(
                        self.clone(),
                        s.node.clone(),
                        at,
                        socket,
                        unbound.subscribe(),
                    );
                    s.node.workers[worker].spawn(task)
                })
                .collect();
            s.node.bind(s.port, Binding { accepts, unbound });
        }
        let mut unbound = Vec::new();
        for n in &cfg.nodes {
            n.node.conns.set_idle(cfg.lbs[n.lb].idle_timeout);
            let ports: Vec<u16> = cfg.lbs[n.lb].listeners.iter().map(|l| l.port).collect();
            unbound.extend(n.node.unbind_except(&ports));
        }
        for n in old.iter().flat_map(|o| &o.nodes) {
            if !cfg.nodes.iter().any(|v| v.node.id == n.node.id) {
                unbound.extend(n.node.unbind_except(&[]));
                n.node.retired.send_replace(true);
            }
        }
        let mut running = self.health.lock().unwrap_or_else(|e| e.into_inner());
        for (key, ni) in cfg.health_checks() {
            if running.insert(key.clone()) {
                cfg.nodes[ni].node.workers[0].spawn(super::health::run(self.clone(), key));
            }
        }
        unbound
    }

    /// Whether health check `key` is to end (no configuration has it now);
    /// decided under the same lock as starting checks, so a check removed
    /// and added again keeps exactly one task.
    pub fn health_check_ended(&self, key: &HealthKey) -> bool {
        let mut running = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if self.config().locate(key).is_some() {
            return false;
        }
        running.remove(key);
        true
    }

    /// Changes the default action's weights of listener `lb:port` (a
    /// reconfiguration that changes only them).
    pub fn set_weights(
        self: &Arc<Self>,
        lb: &str,
        port: u16,
        weights: &[(String, u32)],
    ) -> Result<(), LbError> {
        let _one = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.config();
        let mut plan = old.plan.clone();
        let listener = plan
            .load_balancers
            .iter_mut()
            .find(|l| l.name == lb)
            .ok_or_else(|| LbError::NoLoadBalancer(lb.into()))?
            .listeners
            .iter_mut()
            .find(|x| x.port == port)
            .ok_or_else(|| LbError::NoListener {
                lb: lb.into(),
                port,
            })?;
        super::router::apply_weights(&mut listener.default_forward, &old.plan, weights)?;
        // Only weights change: no listener is unbound.
        self.reconfigure_locked(plan).map(drop)
    }

    /// `deregister-targets`: the target gets no new requests at once; it
    /// leaves when its in-flight requests are done or the group's
    /// deregistration delay has passed, whichever comes first (as on AWS).
    pub fn deregister(&self, group: &str, instance: &str) -> Result<(), LbError> {
        let cfg = self.config();
        let (g, t) = cfg.find_target(group, instance)?;
        if t.registration() != Registration::Registered {
            return Err(LbError::Refused(format!(
                "{instance} is not registered with {group}"
            )));
        }
        t.set_registration(Registration::Draining);
        self.drain(
            t.shared.clone(),
            Duration::from_secs(g.plan.deregistration_delay_s as u64),
        );
        Ok(())
    }

    /// Ends a draining target's deregistration when it has no request in
    /// flight or after `delay`.
    fn drain(&self, target: Arc<Registered>, delay: Duration) {
        tokio::spawn(async move {
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
    }

    /// `register-targets` for a target of the topology that was
    /// deregistered: it starts again from `initial` and gets traffic once
    /// its health checks pass.
    pub fn register(&self, group: &str, instance: &str) -> Result<(), LbError> {
        let cfg = self.config();
        let (_, t) = cfg.find_target(group, instance)?;
        if t.registration() != Registration::Registered {
            for cell in &t.health {
                cell.set(HealthState::Initial, None);
            }
            t.set_registration(Registration::Registered);
        }
        Ok(())
    }

    pub fn status(&self) -> LbStatus {
        self.config().status(self.log.dropped())
    }
}

/// One worker thread of a node, until the node leaves the plan and its
/// connections are done (at most its idle timeout later).
async fn run_worker(b: Arc<Balancer>, node: Arc<Node>, worker: usize) {
    if worker == 0 {
        tokio::spawn(node.conns.clone().reap_forever());
    }
    // Idle connections to targets close after the load balancer's idle
    // timeout, as AWS closes its backend connections.
    let reaper = b.clone();
    let id = node.id;
    tokio::spawn(async move {
        loop {
            let Some(idle) = reaper.config().idle_timeout(id) else {
                return;
            };
            tokio::time::sleep(
                (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5)),
            )
            .await;
            let cfg = reaper.config();
            if let Some(n) = cfg.nodes.iter().find(|n| n.node.id == id) {
                n.pools[worker].close_idle(idle);
            }
        }
    });
    drop(b);
    let mut retired = node.retired.subscribe();
    let _ = retired.wait_for(|r| *r).await;
    let deadline = tokio::time::Instant::now() + node.conns.limits().idle;
    while node.conns.stats().open > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn accept_loop(
    b: Arc<Balancer>,
    node: Arc<Node>,
    at: Entrance,
    listener: TcpListener,
    unbound: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("listener of node {}: {e}", node.name);
            return;
        }
    };
    connlimit::accept_loop(listener, node.conns.clone(), |stream, peer, adm| {
        // Connections are dealt to the node's worker threads in turn,
        // whichever thread's accept took them: left to the accepts, the
        // thread that wakes first can take a whole burst and serve it
        // alone while the other idles.
        let workers = node.workers.len();
        let to = match workers {
            0 | 1 => at.worker,
            n => node.next_worker.fetch_add(1, Ordering::Relaxed) % n,
        };
        let there = (to != at.worker).then(|| node.workers[to].clone());
        let (b, unbound) = (b.clone(), unbound.clone());
        let at = Entrance { worker: to, ..at };
        async move {
            let Some(there) = there else {
                return proxy::serve(b, at, unbound, stream, peer, adm).await;
            };
            let Ok(stream) = stream.into_std() else {
                return;
            };
            let task = there.spawn(async move {
                if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                    proxy::serve(b, at, unbound, stream, peer, adm).await;
                }
            });
            // Shed here (this task dropped): the connection closes there.
            let _abort = AbortOnDrop(task.abort_handle());
            let _ = task.await;
        }
    })
    .await;
}

/// Cancels a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
