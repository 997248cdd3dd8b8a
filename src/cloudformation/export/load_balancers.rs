//! Target groups, load balancers, listeners and their rules.

use super::*;

impl Builder<'_> {
    pub(super) fn load_balancers(&mut self) {
        let lab = self.lab;
        self.instance_ids();
        for tg in &lab.target_groups {
            let id = self.id("TargetGroup", &tg.name);
            let hc = &tg.health_check;
            let targets = tg
                .targets
                .iter()
                .map(|t| {
                    let k = lab
                        .instances
                        .iter()
                        .position(|i| i.name == t.instance)
                        .expect("targets are instances");
                    map(vec![("Id", r(&self.inst_ids[k])), ("Port", n(t.port))])
                })
                .collect();
            let matcher = hc.http_codes();
            let mut attrs = vec![attr(
                "deregistration_delay.timeout_seconds",
                &tg.deregistration_delay_s.to_string(),
            )];
            attrs.push(attr(
                "load_balancing.algorithm.type",
                match tg.algorithm {
                    Algorithm::RoundRobin => "round_robin",
                    Algorithm::LeastOutstandingRequests => "least_outstanding_requests",
                    Algorithm::WeightedRandom => "weighted_random",
                },
            ));
            if let Some(d) = tg.stickiness_s {
                attrs.push(attr("stickiness.enabled", "true"));
                attrs.push(attr("stickiness.type", "lb_cookie"));
                attrs.push(attr(
                    "stickiness.lb_cookie.duration_seconds",
                    &d.to_string(),
                ));
            }
            self.add(
                &id,
                "AWS::ElasticLoadBalancingV2::TargetGroup",
                vec![
                    ("VpcId", r("VPC")),
                    ("Protocol", s("HTTP")),
                    ("Port", n(tg.port)),
                    ("TargetType", s("instance")),
                    ("Targets", seq(targets)),
                    ("HealthCheckEnabled", Value::Bool(true)),
                    ("HealthCheckProtocol", s("HTTP")),
                    ("HealthCheckPath", s(&hc.path)),
                    (
                        "HealthCheckPort",
                        s(&hc
                            .port
                            .map(|p| p.to_string())
                            .unwrap_or("traffic-port".into())),
                    ),
                    ("HealthCheckIntervalSeconds", n(hc.interval_s)),
                    ("HealthCheckTimeoutSeconds", n(hc.timeout_s)),
                    ("HealthyThresholdCount", n(hc.healthy_threshold)),
                    ("UnhealthyThresholdCount", n(hc.unhealthy_threshold)),
                    ("Matcher", map(vec![("HttpCode", s(&matcher))])),
                    ("TargetGroupAttributes", seq(attrs)),
                    ("Tags", name_tag(&tg.name)),
                ],
            );
            self.tg_ids.push(id);
        }
        for lb in &lab.load_balancers {
            let id = self.id("LoadBalancer", &lb.name);
            self.lb_ids.push(id.clone());
            let subnets: Vec<Value> = lb
                .nodes
                .iter()
                .map(|&e| r(&self.subnet_ids[lab.enis[e].subnet]))
                .collect();
            let first = &lab.enis[lb.nodes[0]];
            let sgs: Vec<Value> = first
                .security_groups
                .iter()
                .map(|&g| self.sg_ref(g))
                .collect();
            let scheme = if first.public_ip.is_some() {
                "internet-facing"
            } else {
                "internal"
            };
            let deps = if scheme == "internet-facing" {
                self.depends_on_igw()
            } else {
                vec![]
            };
            self.add_full(
                &id,
                "AWS::ElasticLoadBalancingV2::LoadBalancer",
                vec![
                    ("Type", s("application")),
                    ("Scheme", s(scheme)),
                    ("Subnets", seq(subnets)),
                    ("SecurityGroups", seq(sgs)),
                    (
                        "LoadBalancerAttributes",
                        seq(vec![attr(
                            "idle_timeout.timeout_seconds",
                            &lb.idle_timeout_s.to_string(),
                        )]),
                    ),
                    ("Tags", name_tag(&lb.name)),
                ],
                deps,
            );
            self.output(
                &format!("{id}DnsName"),
                &format!("DNS name of load balancer {}", lb.name),
                att(&id, "DNSName"),
            );
            for l in &lb.listeners {
                let lid = self.id(&id, &format!("listener-{}", l.port));
                let action = self.forward(&l.default_forward);
                self.add(
                    &lid,
                    "AWS::ElasticLoadBalancingV2::Listener",
                    vec![
                        ("LoadBalancerArn", r(&id)),
                        ("Port", n(l.port)),
                        ("Protocol", s("HTTP")),
                        ("DefaultActions", seq(vec![action])),
                    ],
                );
                for rule in &l.rules {
                    let rid = self.id(&lid, &format!("rule-{}", rule.priority));
                    let action = self.forward(&rule.forward);
                    let conditions = rule.conditions.iter().map(condition).collect();
                    self.add(
                        &rid,
                        "AWS::ElasticLoadBalancingV2::ListenerRule",
                        vec![
                            ("ListenerArn", r(&lid)),
                            ("Priority", n(rule.priority)),
                            ("Conditions", seq(conditions)),
                            ("Actions", seq(vec![action])),
                        ],
                    );
                }
            }
        }
    }

    fn forward(&self, groups: &[WeightedTargetGroup]) -> Value {
        let tgs = groups
            .iter()
            .map(|w| {
                map(vec![
                    ("TargetGroupArn", r(&self.tg_ids[w.target_group])),
                    ("Weight", n(w.weight)),
                ])
            })
            .collect();
        map(vec![
            ("Type", s("forward")),
            ("ForwardConfig", map(vec![("TargetGroups", seq(tgs))])),
        ])
    }
}

fn attr(k: &str, v: &str) -> Value {
    map(vec![("Key", s(k)), ("Value", s(v))])
}

fn condition(c: &Condition) -> Value {
    let values = |v: &[String]| seq(v.iter().map(|x| s(x)).collect());
    match c {
        Condition::PathPattern(v) => map(vec![
            ("Field", s("path-pattern")),
            ("PathPatternConfig", map(vec![("Values", values(v))])),
        ]),
        Condition::HostHeader(v) => map(vec![
            ("Field", s("host-header")),
            ("HostHeaderConfig", map(vec![("Values", values(v))])),
        ]),
        Condition::HttpHeader(name, v) => map(vec![
            ("Field", s("http-header")),
            (
                "HttpHeaderConfig",
                map(vec![("HttpHeaderName", s(name)), ("Values", values(v))]),
            ),
        ]),
        Condition::HttpRequestMethod(v) => map(vec![
            ("Field", s("http-request-method")),
            ("HttpRequestMethodConfig", map(vec![("Values", values(v))])),
        ]),
        Condition::SourceIp(v) => map(vec![
            ("Field", s("source-ip")),
            (
                "SourceIpConfig",
                map(vec![(
                    "Values",
                    seq(v.iter().map(|c| s(&c.to_string())).collect()),
                )]),
            ),
        ]),
    }
}
