//! Target groups: name, port, protocol, targets, algorithm, deregistration
//! delay, stickiness, and health checks with AWS's defaults and ranges.

use super::context::{Ctx, Names};
use crate::topology::model::{self, Topology};
use crate::topology::plan::{Algorithm, HealthCheckPlan, TargetGroupPlan, TargetPlan};
use std::net::Ipv4Addr;

/// Status code matcher: `200`, `200-299`, `200,202`.
pub(super) fn parse_matcher(s: &str) -> Result<Vec<(u16, u16)>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let code = |x: &str| -> Result<u16, String> {
            let n: u16 = x
                .trim()
                .parse()
                .map_err(|_| format!("`{}` is not an HTTP status code", x.trim()))?;
            if !(200..=499).contains(&n) {
                return Err(format!("code {n} is outside 200-499"));
            }
            Ok(n)
        };
        let (a, b) = (code(a)?, code(b)?);
        if a > b {
            return Err(format!("range {a}-{b} goes backwards"));
        }
        out.push((a, b));
    }
    Ok(out)
}

impl Ctx {
    /// Target groups: unique AWS-valid names, port, protocol (HTTP), targets
    /// (instances, with their private IPs), health check, algorithm,
    /// deregistration delay and stickiness.
    pub(super) fn target_groups<'t>(
        &mut self,
        t: &'t Topology,
        instances: &Names,
        private: &[Option<Ipv4Addr>],
    ) -> (Names<'t>, Vec<TargetGroupPlan>) {
        let names = self.unique_names(
            "target group",
            "target_group",
            t.target_groups.iter().map(|g| g.name.as_str()),
        );
        let mut target_groups = Vec::new();
        for (i, g) in t.target_groups.iter().enumerate() {
            let p = format!("target_group[{i}]");
            if g.name.len() > 32
                || g.name.starts_with('-')
                || g.name.ends_with('-')
                || g.name
                    .chars()
                    .any(|c| !(c.is_ascii_alphanumeric() || c == '-'))
            {
                self.err(
                    format!("{p}.name"),
                    format!("target group name `{}` is not valid", g.name),
                    "AWS allows 1-32 letters, digits and `-`, not starting or ending with `-`",
                );
            }
            let port = self.port(g.port, &format!("{p}.port"));
            if !g.protocol.eq_ignore_ascii_case("http") {
                self.err(
                    format!("{p}.protocol"),
                    format!("target group protocol `{}` is not supported", g.protocol),
                    "only HTTP target groups are emulated; use protocol = \"HTTP\"",
                );
            }
            let targets = self.targets(g, &p, port, instances, private);
            let health_check = self.health_check(&g.health_check, &format!("{p}.health_check"));
            let algorithm = match g.algorithm.as_deref() {
                None | Some("round_robin") => Algorithm::RoundRobin,
                Some("least_outstanding_requests") => Algorithm::LeastOutstandingRequests,
                Some("weighted_random") => Algorithm::WeightedRandom,
                Some(other) => {
                    self.err(
                        format!("{p}.algorithm"),
                        format!("unknown algorithm `{other}`"),
                        "use round_robin, least_outstanding_requests or weighted_random",
                    );
                    Algorithm::RoundRobin
                }
            };
            let dereg = g.deregistration_delay.unwrap_or(300);
            if !(0..=3600).contains(&dereg) {
                self.err(
                    format!("{p}.deregistration_delay"),
                    format!("deregistration delay {dereg}s is out of range"),
                    "AWS allows 0 to 3600 seconds (default 300)",
                );
            }
            if let Some(s) = g.stickiness {
                if !(1..=604_800).contains(&s) {
                    self.err(
                        format!("{p}.stickiness"),
                        format!("stickiness duration {s}s is out of range"),
                        "AWS allows 1 second to 7 days (604800)",
                    );
                }
            }
            target_groups.push(TargetGroupPlan {
                name: g.name.clone(),
                port: port.unwrap_or(0),
                targets,
                health_check,
                algorithm,
                deregistration_delay_s: dereg.clamp(0, 3600) as u32,
                stickiness_s: g.stickiness.map(|s| s.clamp(1, 604_800) as u32),
            });
        }
        (names, target_groups)
    }

    /// A target group's targets: `instance` (on the group's port) or
    /// `instance:port`, each once.
    pub(super) fn targets(
        &mut self,
        g: &model::TargetGroup,
        p: &str,
        port: Option<u16>,
        instances: &Names,
        private: &[Option<Ipv4Addr>],
    ) -> Vec<TargetPlan> {
        let mut targets: Vec<TargetPlan> = Vec::new();
        for (k, spec) in g.targets.iter().enumerate() {
            let tp = format!("{p}.targets[{k}]");
            let (name, tport) = match spec.rsplit_once(':') {
                Some((n, pt)) => match pt.parse::<i64>() {
                    Ok(v) => (n, self.port(v, &tp)),
                    Err(_) => {
                        self.err(
                            &tp,
                            format!("`{pt}` in target `{spec}` is not a port"),
                            "write \"instance\" or \"instance:port\"",
                        );
                        (n, None)
                    }
                },
                None => (spec.as_str(), port),
            };
            let Some(x) = self.lookup_or(
                instances,
                name,
                &tp,
                || format!("target `{name}` is not an instance"),
                "",
            ) else {
                continue;
            };
            let (Some(ip), Some(port)) = (private[x], tport) else {
                continue;
            };
            if targets.iter().any(|o| o.instance == name && o.port == port) {
                self.err(
                    &tp,
                    format!("target {name}:{port} is registered twice"),
                    "list each target once",
                );
            } else {
                targets.push(TargetPlan {
                    instance: name.to_string(),
                    ip,
                    port,
                });
            }
        }
        targets
    }

    /// A health check with AWS's defaults and ranges; the timeout must be
    /// shorter than the interval.
    pub(super) fn health_check(&mut self, h: &model::HealthCheck, hp: &str) -> HealthCheckPlan {
        let interval = self.health_value(h.interval, 30, 5, 300, hp, "interval");
        let timeout = self.health_value(h.timeout, 5, 2, 120, hp, "timeout");
        let healthy_threshold =
            self.health_value(h.healthy_threshold, 5, 2, 10, hp, "healthy_threshold");
        let unhealthy_threshold =
            self.health_value(h.unhealthy_threshold, 2, 2, 10, hp, "unhealthy_threshold");
        if timeout >= interval
            && h.interval.is_none_or(|v| (5..=300).contains(&v))
            && h.timeout.is_none_or(|v| (2..=120).contains(&v))
        {
            self.err(
                format!("{hp}.timeout"),
                format!(
                    "health check timeout {timeout}s is not shorter than the interval {interval}s"
                ),
                "the timeout must be smaller than the interval",
            );
        }
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            self.err(
                format!("{hp}.path"),
                format!("health check path `{path}` does not start with `/`"),
                "write an absolute path like \"/\" or \"/health\"",
            );
        }
        let port = h.port.and_then(|v| self.port(v, &format!("{hp}.port")));
        let matcher = match parse_matcher(h.matcher.as_deref().unwrap_or("200")) {
            Ok(m) => m,
            Err(why) => {
                self.err(
                    format!("{hp}.matcher"),
                    format!(
                        "invalid matcher `{}`: {why}",
                        h.matcher.as_deref().unwrap_or("")
                    ),
                    "write codes 200-499 like \"200\", \"200-299\" or \"200,202\"",
                );
                vec![]
            }
        };
        HealthCheckPlan {
            path,
            port,
            interval_s: interval,
            timeout_s: timeout,
            healthy_threshold,
            unhealthy_threshold,
            matcher,
        }
    }

    /// A health check number (at `{hp}.{field}`) in `lo..=hi`; `default`
    /// when omitted or out of range.
    pub(super) fn health_value(
        &mut self,
        v: Option<i64>,
        default: u32,
        lo: i64,
        hi: i64,
        hp: &str,
        field: &str,
    ) -> u32 {
        let v = v.unwrap_or(default as i64);
        if !(lo..=hi).contains(&v) {
            self.err(
                format!("{hp}.{field}"),
                format!(
                    "health check {} {v} is out of range ({lo}-{hi})",
                    field.replace('_', " ")
                ),
                format!("AWS allows {lo} to {hi} (default {default})"),
            );
            return default;
        }
        v as u32
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn health_check_ranges_and_timeout_below_interval() {
        let d = errors(&format!(
            r#"{NET}
[[instance]]
name = "a"
subnet = "public-1"
[[target_group]]
name = "tg"
port = 80
targets = ["a", "a:80", "b"]
health_check = {{ interval = 5, timeout = 5, healthy_threshold = 11, path = "health", matcher = "200-100" }}
"#
        ));
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "target_group[0].targets[1]",
                "target_group[0].targets[2]",
                "target_group[0].health_check.healthy_threshold",
                "target_group[0].health_check.timeout",
                "target_group[0].health_check.path",
                "target_group[0].health_check.matcher",
            ]
        );
        assert_eq!(d[0].message, "target a:80 is registered twice");
    }

    #[test]
    fn matchers() {
        assert_eq!(parse_matcher("200-299"), Ok(vec![(200, 299)]));
        assert!(parse_matcher("500").is_err());
        assert!(parse_matcher("ok").is_err());
        // What export and the apply plan print reads back as the same ranges.
        let matcher = parse_matcher("200,202,300-399").unwrap();
        let hc = HealthCheckPlan {
            path: "/".into(),
            port: None,
            interval_s: 30,
            timeout_s: 5,
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            matcher: matcher.clone(),
        };
        assert_eq!(hc.http_codes(), "200,202,300-399");
        assert_eq!(parse_matcher(&hc.http_codes()), Ok(matcher));
    }
}
