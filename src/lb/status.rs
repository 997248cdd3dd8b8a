//! What a running ALB daemon reports: listeners and weights, and per target
//! group CloudWatch-style metrics and each target's health.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LbStatus {
    pub lab: String,
    pub load_balancers: Vec<LoadBalancerStatus>,
    pub target_groups: Vec<TargetGroupStatus>,
    /// Access log records dropped because the writer was behind.
    #[serde(default)]
    pub access_log_dropped: u64,
    /// CloudWatch's WAF metrics of each web ACL and its rules.
    #[serde(default)]
    pub web_acls: Vec<WebAclStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebAclStatus {
    pub name: String,
    pub arn: String,
    pub load_balancers: Vec<String>,
    pub default_action: String,
    pub metrics: crate::waf::WebAclMetrics,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadBalancerStatus {
    pub name: String,
    pub dns_name: String,
    pub idle_timeout_s: u32,
    pub nodes: Vec<NodeStatus>,
    pub listeners: Vec<ListenerStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: String,
    pub private_ip: String,
    pub public_ip: Option<String>,
    /// Client connections: open, shed (idle timeout or to make room) and
    /// refused (over the limit with every connection busy).
    #[serde(default)]
    pub connections: crate::connlimit::ConnStats,
    #[serde(default)]
    pub max_connections: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenerStatus {
    pub port: u16,
    /// By priority; the default action last.
    pub rules: Vec<RuleStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleStatus {
    /// `None`: the default action.
    pub priority: Option<u32>,
    pub conditions: Vec<String>,
    pub forward: Vec<ForwardStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardStatus {
    pub target_group: String,
    pub weight: u16,
    /// weight / sum of weights, in percent.
    pub share_pct: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetGroupStatus {
    pub name: String,
    pub port: u16,
    pub algorithm: String,
    pub stickiness_s: Option<u32>,
    pub in_use: bool,
    pub request_count: u64,
    pub http_code_target_2xx: u64,
    pub http_code_target_3xx: u64,
    pub http_code_target_4xx: u64,
    pub http_code_target_5xx: u64,
    pub http_code_elb_5xx: u64,
    pub target_response_time_p50_ms: Option<f64>,
    pub target_response_time_p99_ms: Option<f64>,
    pub healthy_host_count: usize,
    pub unhealthy_host_count: usize,
    pub targets: Vec<TargetStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetStatus {
    pub instance: String,
    pub address: String,
    /// initial, healthy, unhealthy, unused.
    pub state: String,
    /// AWS reason code, e.g. `Target.ResponseCodeMismatch`.
    pub reason: Option<String>,
    pub description: Option<String>,
    /// What the failing check saw, and from which ALB node.
    pub detail: Option<String>,
}

impl fmt::Display for LbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for lb in &self.load_balancers {
            writeln!(f, "load balancer {}  {}", lb.name, lb.dns_name)?;
            for n in &lb.nodes {
                writeln!(
                    f,
                    "  node {:<12} {:<15} public {:<15} connections {}/{} (shed {}, refused {})",
                    n.node,
                    n.private_ip,
                    n.public_ip.as_deref().unwrap_or("-"),
                    n.connections.open,
                    n.max_connections,
                    n.connections.shed,
                    n.connections.refused
                )?;
            }
            for l in &lb.listeners {
                writeln!(
                    f,
                    "  listener HTTP:{}  (idle timeout {} s)",
                    l.port, lb.idle_timeout_s
                )?;
                for r in &l.rules {
                    let prio = r
                        .priority
                        .map_or("default".to_string(), |p| format!("priority {p}"));
                    let conds = if r.conditions.is_empty() {
                        String::new()
                    } else {
                        format!(" if {}", r.conditions.join(" and "))
                    };
                    let fwd: Vec<String> = r
                        .forward
                        .iter()
                        .map(|w| format!("{} w={} ({:.1}%)", w.target_group, w.weight, w.share_pct))
                        .collect();
                    writeln!(f, "    {prio}{conds} -> {}", fwd.join(", "))?;
                }
            }
        }
        for w in &self.web_acls {
            writeln!(
                f,
                "web ACL {} on {}  default {}",
                w.name,
                w.load_balancers.join(", "),
                w.default_action
            )?;
            let m = &w.metrics;
            writeln!(
                f,
                "  {:<24} AllowedRequests {:>6}  BlockedRequests {:>6}  CountedRequests {:>6}",
                "ALL", m.all.allowed, m.all.blocked, m.all.counted
            )?;
            for (rule, r) in &m.rules {
                writeln!(
                    f,
                    "  {:<24} AllowedRequests {:>6}  BlockedRequests {:>6}  CountedRequests {:>6}",
                    rule, r.allowed, r.blocked, r.counted
                )?;
            }
        }
        if self.access_log_dropped > 0 {
            writeln!(
                f,
                "access log: {} records dropped (the writer fell behind)",
                self.access_log_dropped
            )?;
        }
        for tg in &self.target_groups {
            writeln!(
                f,
                "target group {}  port {}  {}{}{}",
                tg.name,
                tg.port,
                tg.algorithm,
                tg.stickiness_s
                    .map_or(String::new(), |s| format!("  sticky {s} s")),
                if tg.in_use {
                    ""
                } else {
                    "  (not used by any listener)"
                }
            )?;
            let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2} ms"));
            writeln!(
                f,
                "  requests {}  target 2xx {} 3xx {} 4xx {} 5xx {}  ELB 5xx {}  response time p50 {} p99 {}  healthy {} unhealthy {}",
                tg.request_count,
                tg.http_code_target_2xx,
                tg.http_code_target_3xx,
                tg.http_code_target_4xx,
                tg.http_code_target_5xx,
                tg.http_code_elb_5xx,
                ms(tg.target_response_time_p50_ms),
                ms(tg.target_response_time_p99_ms),
                tg.healthy_host_count,
                tg.unhealthy_host_count
            )?;
            if tg.targets.is_empty() {
                writeln!(f, "  (no registered targets: requests get 503)")?;
            }
            for t in &tg.targets {
                let why = match (&t.reason, &t.description) {
                    (Some(r), Some(d)) => format!("  {r}: {d}"),
                    (Some(r), None) => format!("  {r}"),
                    _ => String::new(),
                };
                let detail = t
                    .detail
                    .as_ref()
                    .map_or(String::new(), |d| format!(" ({d})"));
                writeln!(
                    f,
                    "  {:<12} {:<21} {:<10}{why}{detail}",
                    t.instance, t.address, t.state
                )?;
            }
        }
        Ok(())
    }
}
