//! Carries a lab from one plan to another (from nothing on `up`), in
//! dependency order: what goes away first (processes, namespaces, links),
//! then what comes (namespaces, links, addresses, routes), the rules (one
//! nftables transaction per namespace), the nodes' /etc, and last the
//! lab's daemons and workloads. Resources are matched by name: what stays
//! is not touched, so its connections, counters and history survive.

use super::{etc, ApplyError};
use crate::fabric::build::{self, Additions};
use crate::fabric::netns;
use crate::firewall::{self, fabric as fabric_fw, nat_gateway, ruleset::Ruleset};
use crate::state::LabState;
use crate::topology::plan::*;
use crate::{containers, workloads};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Instant;

/// How long each step of a change took, and what it touched.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// (step, milliseconds), in order.
    pub steps: Vec<(String, f64)>,
    /// Namespaces removed and created.
    pub nodes_removed: usize,
    pub nodes_added: usize,
    /// Namespaces whose nftables ruleset was replaced.
    pub rulesets: usize,
    /// Daemons restarted or reconfigured (`alb`, `aws-services`, `flow-logs`).
    pub daemons: Vec<String>,
}

struct Clock(Instant);

impl Clock {
    fn step(&mut self, report: &mut Report, name: &str) {
        let ms = self.0.elapsed().as_secs_f64() * 1e3;
        tracing::debug!(target: "vpcsim::timing", "{name}: {ms:.1} ms");
        report.steps.push((name.to_string(), ms));
        self.0 = Instant::now();
    }
}

/// `up`: builds `state.plan` from nothing (the caller recorded the state
/// first, so `down` after a crash finds every name).
pub fn build(state: &mut LabState) -> Result<Report, ApplyError> {
    let new = state.plan.clone();
    // Before the first process: every one joins it (`down` ends them all).
    crate::cgroup::create(&new.name)?;
    carry(state, None, &new)
}

/// `apply`: carries the running lab (`state.plan`) to `new`. Refused
/// changes are the caller's to check first (`diff`); this only executes.
pub fn change(state: &mut LabState, new: Lab) -> Result<Report, ApplyError> {
    let old = state.plan.clone();
    state.changing_to = Some(new.clone());
    state.save()?;
    let report = carry(state, Some(&old), &new)?;
    Ok(report)
}

/// What a change adds and removes, by name.
struct Delta {
    /// Nodes whose namespace goes (removed, replaced, or the S3 side).
    gone: Vec<String>,
    /// Nodes whose namespace comes.
    born: Vec<String>,
    add: Additions,
    /// Fabric links that go: bridges of removed subnets, endpoint links.
    links_gone: Vec<String>,
    /// Instances that stay but run something else (workload, user data).
    restart: Vec<String>,
}

fn delta(old: Option<&Lab>, new: &Lab) -> Delta {
    let Some(old) = old else {
        return Delta {
            gone: vec![],
            born: new.node_names(),
            add: Additions::everything(new),
            links_gone: vec![],
            restart: vec![],
        };
    };
    let kept_eni = |e: &Eni| -> bool {
        old.eni_by_node(&e.node)
            .is_some_and(|o| super::diff::replacement(old, o, new, e).is_none())
    };
    let mut gone: Vec<String> = old
        .enis
        .iter()
        .filter(|o| {
            new.eni_by_node(&o.node)
                .is_none_or(|n| super::diff::replacement(old, o, new, n).is_some())
        })
        .map(|o| o.node.clone())
        .collect();
    let enis: Vec<usize> = (0..new.enis.len())
        .filter(|&i| !kept_eni(&new.enis[i]))
        .collect();
    let mut born: Vec<String> = enis.iter().map(|&i| new.enis[i].node.clone()).collect();
    let s3 = new.s3.is_some() && old.s3.is_none();
    if s3 {
        born.push(S3.to_string());
    }
    if old.s3.is_some() && new.s3.is_none() {
        gone.push(S3.to_string());
    }
    let kept_subnet = |s: &SubnetPlan, other: &Lab| {
        other
            .subnets
            .iter()
            .any(|o| o.name == s.name && o.bridge == s.bridge && o.cidr == s.cidr)
    };
    let kept_endpoint = |e: &VpcEndpointPlan, other: &Lab| {
        other
            .vpc_endpoints
            .iter()
            .any(|o| o.name == e.name && o.link == e.link && o.fabric_ip == e.fabric_ip)
    };
    let mut links_gone: Vec<String> = old
        .subnets
        .iter()
        .filter(|s| !kept_subnet(s, new))
        .map(|s| s.bridge.clone())
        .collect();
    // A removed ENI's veth goes by name too: the ALB daemon (in the fabric)
    // may still hold sockets in a load balancer node's namespace, which
    // then outlives its removal for a while, and its veth with it.
    links_gone.extend(
        old.enis
            .iter()
            .filter(|o| gone.contains(&o.node))
            .map(|o| o.host_if.clone()),
    );
    // With the S3 side gone, its namespace takes the endpoint links along.
    if new.s3.is_some() {
        links_gone.extend(
            old.vpc_endpoints
                .iter()
                .filter(|e| !kept_endpoint(e, new))
                .map(|e| e.link.clone()),
        );
    }
    let restart = new
        .instances
        .iter()
        .filter(|i| kept_eni(&new.enis[i.eni]))
        .filter(|i| {
            old.instances.iter().any(|o| {
                o.name == i.name && (o.workload != i.workload || o.user_data != i.user_data)
            })
        })
        .map(|i| i.name.clone())
        .collect();
    Delta {
        gone,
        born,
        add: Additions {
            base: false,
            s3,
            subnets: (0..new.subnets.len())
                .filter(|&i| !kept_subnet(&new.subnets[i], old))
                .collect(),
            enis,
            // A new S3 side needs every endpoint link; otherwise the new ones.
            endpoints: (0..new.vpc_endpoints.len())
                .filter(|&i| s3 || !kept_endpoint(&new.vpc_endpoints[i], old))
                .collect(),
        },
        links_gone,
        restart,
    }
}

/// Every namespace's ruleset of `lab`: the fabric's, each NAT gateway's.
fn rulesets(lab: &Lab) -> Vec<(String, Ruleset)> {
    let mut out = vec![(lab.fabric_ns(), fabric_fw::render(lab))];
    for nat in &lab.nat_gateways {
        let eni = &lab.enis[nat.eni];
        out.push((lab.namespace(&eni.node), nat_gateway::render(lab, eni)));
    }
    out
}

/// Every node's addresses and every load balancer's DNS name and nodes:
/// what the /etc files and the Amazon DNS are made of.
type Addresses = (
    Vec<(String, std::net::Ipv4Addr, Option<std::net::Ipv4Addr>)>,
    Vec<(String, Vec<usize>)>,
);

fn addresses(l: &Lab) -> Addresses {
    let enis = l
        .enis
        .iter()
        .map(|e| (e.node.clone(), e.private_ip, e.public_ip))
        .collect();
    let lbs = l
        .load_balancers
        .iter()
        .map(|b| (b.dns_name.clone(), b.nodes.clone()))
        .collect();
    (enis, lbs)
}

/// Whether two plans agree on what `part` picks out of them.
fn same<T: PartialEq>(old: Option<&Lab>, new: &Lab, part: impl Fn(&Lab) -> T) -> bool {
    old.is_some_and(|o| part(o) == part(new))
}

fn carry(state: &mut LabState, old: Option<&Lab>, new: &Lab) -> Result<Report, ApplyError> {
    let mut report = Report::default();
    let mut clock = Clock(Instant::now());
    let d = delta(old, new);
    // Rendered before anything changes: a rendering bug fails here, early.
    let old_rules = old.map(rulesets).unwrap_or_default();
    let new_rules = rulesets(new);
    clock.step(&mut report, "plan and render");

    // What goes: processes first (a namespace lives while a process is in
    // it), then namespaces (their veths go along), then fabric links.
    let mut stopping = d.gone.clone();
    stopping.extend(d.restart.iter().cloned());
    if !stopping.is_empty() {
        workloads::retire_nodes(state, &stopping).map_err(ApplyError::component(
            "stopping the processes of removed nodes",
        ))?;
    }
    for node in &d.gone {
        netns::remove(&new.namespace(node))?;
    }
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ApplyError::Component {
                what: "starting a netlink runtime",
                source: e.into(),
            })
    };
    if let Some(old) = old {
        runtime()?.block_on(build::remove_links(old, &d.links_gone))?;
    }
    report.nodes_removed = d.gone.len();
    clock.step(&mut report, "remove");
    crash_point("removed");

    // What comes: namespaces, then links, addresses and routes.
    build::create_namespaces(new, &d.born)?;
    report.nodes_added = d.born.len();
    clock.step(&mut report, "namespaces");
    crash_point("namespaces");
    runtime()?.block_on(build::configure(new, old, &d.add))?;
    clock.step(&mut report, "links, addresses, routes");
    crash_point("links");

    // One transaction per namespace whose ruleset differs: atomic, and
    // only what changed is touched (chains and sets that stay keep their
    // counters). A namespace that is new (or replaced) gets a full load.
    let pending = new_rules
        .iter()
        .filter_map(|(ns, rules)| {
            let kept = !d.born.iter().any(|n| new.namespace(n) == *ns);
            match old_rules.iter().find(|(o, _)| o == ns) {
                Some((_, old)) if kept => rules.update_from(old),
                _ => Some(rules.to_nft()),
            }
            .map(|script| firewall::spawn_apply(ns, &script))
        })
        .collect::<Result<Vec<_>, _>>()?;
    report.rulesets = pending.len();
    for p in pending {
        p.wait()?;
    }
    clock.step(&mut report, "nftables");
    crash_point("firewall");
    // Names and addresses the /etc files hold.
    let named = |l: &Lab| {
        (
            addresses(l),
            l.s3.clone(),
            l.internet.clone(),
            l.region.clone(),
        )
    };
    if !same(old, new, named) {
        etc::write(new).map_err(ApplyError::Etc)?;
    }
    clock.step(&mut report, "etc files");

    // The kernel now holds `new`: the state says so before any daemon
    // (which reads its plan from the state) starts.
    state.plan = new.clone();
    state.changing_to = None;
    state.save()?;
    daemons(state, old, new, &mut report)?;
    clock.step(&mut report, "daemons");
    if !state.network_only {
        let mut start: Vec<String> = d
            .born
            .iter()
            .filter(|n| new.instances.iter().any(|i| &i.name == *n))
            .cloned()
            .collect();
        start.extend(d.restart.iter().cloned());
        workloads::start_instances(state, &start)
            .map_err(ApplyError::component("starting instances"))?;
        match old {
            None => containers::start_all(new)?,
            Some(old) => {
                containers::change(old, new, &d.gone)?;
            }
        }
        alb(state, old, new, &mut report)?;
        clock.step(&mut report, "workloads");
    }
    crash_point("workloads");
    Ok(report)
}

/// The flow log daemon and the AWS services (DNS, S3): started on `up`,
/// restarted when what they serve changed.
fn daemons(
    state: &mut LabState,
    old: Option<&Lab>,
    new: &Lab,
    report: &mut Report,
) -> Result<(), ApplyError> {
    // Flow logs name ENIs and subnets: a change to either restarts the
    // daemon (its log file is appended to, so history stays).
    let flows = |l: &Lab| (l.flow_logs.clone(), l.enis.clone(), l.subnets.clone());
    if !same(old, new, flows) {
        if old.is_some() {
            workloads::stop_role(state, crate::flowlog::ROLE)
                .map_err(ApplyError::component("stopping the flow log daemon"))?;
            report.daemons.push(crate::flowlog::ROLE.into());
        }
        // Before any workload sends a packet, so flow logs see it all.
        crate::flowlog::start(state).map_err(ApplyError::component("starting flow logs"))?;
    }
    // The VPC's DNS and S3 are part of the network, up even with
    // --network-only. DNS names instances and load balancers.
    let served = |l: &Lab| {
        (
            addresses(l),
            l.s3.clone(),
            l.vpc_endpoints.clone(),
            crate::services::imds::served(l),
        )
    };
    if same(old, new, served) {
        return Ok(());
    }
    match old {
        // The same S3 side: reloaded in place, so the objects written since
        // `up` and every open connection stay.
        Some(old) if old.s3.is_some() == new.s3.is_some() => {
            crate::services::reload(state)
                .map_err(ApplyError::component("reloading DNS, IMDS and S3"))?;
            report
                .daemons
                .push(format!("{} (reloaded)", crate::services::ROLE));
        }
        Some(_) => {
            workloads::stop_role(state, crate::services::ROLE)
                .map_err(ApplyError::component("stopping the AWS services"))?;
            crate::services::start(state).map_err(ApplyError::component("starting DNS and S3"))?;
            report.daemons.push(crate::services::ROLE.into());
        }
        None => {
            crate::services::start(state).map_err(ApplyError::component("starting DNS and S3"))?
        }
    }
    Ok(())
}

/// The ALB daemon: started when the lab gains its first load balancer,
/// stopped with the last; a running one takes a
/// changed configuration live, as ELBv2 does (requests in flight finish,
/// metrics and health history stay).
fn alb(
    state: &mut LabState,
    old: Option<&Lab>,
    new: &Lab,
    report: &mut Report,
) -> Result<(), ApplyError> {
    let running = state
        .processes
        .iter()
        .any(|p| p.role == workloads::ALB_ROLE && p.is_alive());
    // What the ALB daemon is configured from, compared in place.
    fn lb_nodes(l: &Lab) -> Vec<&Eni> {
        l.load_balancers
            .iter()
            .flat_map(|b| b.nodes.iter().map(|&n| &l.enis[n]))
            .collect()
    }
    fn ips(l: &Lab) -> BTreeSet<(&str, std::net::Ipv4Addr)> {
        l.enis
            .iter()
            .map(|e| (e.node.as_str(), e.private_ip))
            .collect()
    }
    let unchanged = old.is_some_and(|o| {
        o.load_balancers == new.load_balancers
            && o.target_groups == new.target_groups
            && o.web_acls == new.web_acls
            && lb_nodes(o) == lb_nodes(new)
            && ips(o) == ips(new)
    });
    if running && unchanged {
        return Ok(());
    }
    if running && !new.load_balancers.is_empty() {
        crate::lb::client::reconfigure(&new.name, new).map_err(|e| ApplyError::Component {
            what: "reconfiguring the ALB daemon",
            source: e.into(),
        })?;
        report.daemons.push(workloads::ALB_ROLE.into());
        return Ok(());
    }
    if running {
        workloads::stop_role(state, workloads::ALB_ROLE)
            .map_err(ApplyError::component("stopping the ALB daemon"))?;
        report.daemons.push(workloads::ALB_ROLE.into());
    }
    workloads::start_alb(state).map_err(ApplyError::component("starting the ALB daemon"))
}

/// Crash injection for the teardown tests: `VPCSIM_CRASH_AT=<step>` makes
/// `up` or `apply` SIGKILL itself after that step, exactly like `kill -9`.
fn crash_point(step: &str) {
    if std::env::var("VPCSIM_CRASH_AT").is_ok_and(|s| s == step) {
        // SAFETY: raising a signal on ourselves.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}
