//! Load balancers, target groups, listeners and their rules.

use super::*;

impl<'a> Importer<'a> {
    pub(super) fn load_balancers(
        &mut self,
        t: &mut Topology,
        registrations: &HashMap<String, Vec<String>>,
    ) {
        let res = self.resources;
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::ElasticLoadBalancingV2::TargetGroup")
        {
            if get_str(&r.props, "TargetType").is_some_and(|x| x != "instance") {
                self.warnings.push(format!(
                    "{}: only TargetType instance is emulated; the group gets no targets",
                    r.logical
                ));
            }
            let mut targets = vec![];
            if let Some(Value::Sequence(ts)) = get(&r.props, "Targets") {
                for x in ts {
                    let Some(id) = get_str(x, "Id") else { continue };
                    let Some(n) = self.name_of(r, "Targets", &id, &["AWS::EC2::Instance"]) else {
                        continue;
                    };
                    targets.push(match get_int(x, "Port") {
                        Some(p) => format!("{n}:{p}"),
                        None => n,
                    });
                }
            }
            targets.extend(registrations.get(&r.physical).cloned().unwrap_or_default());
            let attrs = tg_attributes(&r.props, "TargetGroupAttributes");
            let hc_port = get_str(&r.props, "HealthCheckPort")
                .filter(|p| p != "traffic-port")
                .and_then(|p| p.parse().ok());
            t.target_groups.push(TargetGroup {
                name: r.name.clone(),
                port: get_int(&r.props, "Port").unwrap_or(80),
                protocol: get_str(&r.props, "Protocol").unwrap_or_else(|| "HTTP".into()),
                targets,
                health_check: HealthCheck {
                    path: get_str(&r.props, "HealthCheckPath"),
                    port: hc_port,
                    interval: get_int(&r.props, "HealthCheckIntervalSeconds"),
                    timeout: get_int(&r.props, "HealthCheckTimeoutSeconds"),
                    healthy_threshold: get_int(&r.props, "HealthyThresholdCount"),
                    unhealthy_threshold: get_int(&r.props, "UnhealthyThresholdCount"),
                    matcher: get(&r.props, "Matcher").and_then(|m| get_str(m, "HttpCode")),
                },
                algorithm: attrs.get("load_balancing.algorithm.type").cloned(),
                deregistration_delay: attrs
                    .get("deregistration_delay.timeout_seconds")
                    .and_then(|x| x.parse().ok()),
                stickiness: (attrs.get("stickiness.enabled").map(String::as_str) == Some("true"))
                    .then(|| {
                        attrs
                            .get("stickiness.lb_cookie.duration_seconds")
                            .and_then(|x| x.parse().ok())
                            .unwrap_or(86400)
                    }),
            });
        }
        let mut listeners: HashMap<String, (usize, usize)> = HashMap::new();
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::ElasticLoadBalancingV2::LoadBalancer")
        {
            if get_str(&r.props, "Type").is_some_and(|x| x != "application") {
                self.warnings.push(format!(
                    "{}: only application load balancers are emulated; {} skipped",
                    r.logical, r.name
                ));
                continue;
            }
            let mut subnet_ids = strings(get(&r.props, "Subnets"));
            if let Some(Value::Sequence(m)) = get(&r.props, "SubnetMappings") {
                subnet_ids.extend(m.iter().filter_map(|x| get_str(x, "SubnetId")));
            }
            let subnets = subnet_ids
                .iter()
                .filter_map(|id| self.name_of(r, "Subnets", id, &["AWS::EC2::Subnet"]))
                .collect();
            let sgs = {
                let ids = strings(get(&r.props, "SecurityGroups"));
                self.sg_names(r, &ids)
            };
            let attrs = tg_attributes(&r.props, "LoadBalancerAttributes");
            origin(t, &r.name, r);
            t.load_balancers.push(LoadBalancer {
                name: r.name.clone(),
                scheme: get_str(&r.props, "Scheme").unwrap_or_else(|| "internet-facing".into()),
                subnets,
                security_groups: sgs,
                idle_timeout: attrs
                    .get("idle_timeout.timeout_seconds")
                    .and_then(|x| x.parse().ok()),
                listeners: vec![],
            });
        }
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::ElasticLoadBalancingV2::Listener")
        {
            let Some(lb) = self.name_of(
                r,
                "LoadBalancerArn",
                &get_str(&r.props, "LoadBalancerArn").unwrap_or_default(),
                &["AWS::ElasticLoadBalancingV2::LoadBalancer"],
            ) else {
                continue;
            };
            let Some(forward) = self.forward(r, "DefaultActions", get(&r.props, "DefaultActions"))
            else {
                continue;
            };
            let Some(li) = t.load_balancers.iter().position(|l| l.name == lb) else {
                continue;
            };
            let protocol = get_str(&r.props, "Protocol").unwrap_or_else(|| "HTTP".into());
            let protocol = if protocol == "HTTPS" {
                self.warnings.push(format!("{}: HTTPS listener served as plain HTTP on port {} (no certificates in the lab)", r.logical, get_int(&r.props, "Port").unwrap_or(443)));
                "HTTP".to_string()
            } else {
                protocol
            };
            t.load_balancers[li].listeners.push(Listener {
                port: get_int(&r.props, "Port").unwrap_or(80),
                protocol,
                default_forward: forward,
                rules: vec![],
            });
            listeners.insert(
                r.physical.clone(),
                (li, t.load_balancers[li].listeners.len() - 1),
            );
        }
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::ElasticLoadBalancingV2::ListenerRule")
        {
            let arn = get_str(&r.props, "ListenerArn").unwrap_or_default();
            let Some(&(li, lj)) = listeners.get(&arn) else {
                self.resolve(
                    r,
                    "ListenerArn",
                    &arn,
                    &["AWS::ElasticLoadBalancingV2::Listener"],
                );
                continue;
            };
            let Some(forward) = self.forward(r, "Actions", get(&r.props, "Actions")) else {
                continue;
            };
            let mut rule = ListenerRule {
                priority: get_int(&r.props, "Priority").unwrap_or(0),
                path_pattern: vec![],
                host_header: vec![],
                http_header: BTreeMap::new(),
                http_request_method: vec![],
                source_ip: vec![],
                forward,
            };
            if let Some(Value::Sequence(cs)) = get(&r.props, "Conditions") {
                for c in cs {
                    let field = get_str(c, "Field").unwrap_or_default();
                    let cfg = |k: &str| {
                        let mut v = strings(get(c, "Values"));
                        if let Some(x) = get(c, k) {
                            v.extend(strings(get(x, "Values")));
                        }
                        v
                    };
                    match field.as_str() {
                        "path-pattern" => rule.path_pattern = cfg("PathPatternConfig"),
                        "host-header" => rule.host_header = cfg("HostHeaderConfig"),
                        "http-request-method" => {
                            rule.http_request_method = cfg("HttpRequestMethodConfig")
                        }
                        "source-ip" => rule.source_ip = cfg("SourceIpConfig"),
                        "http-header" => {
                            if let Some(h) = get(c, "HttpHeaderConfig") {
                                rule.http_header.insert(
                                    get_str(h, "HttpHeaderName").unwrap_or_default(),
                                    strings(get(h, "Values")),
                                );
                            }
                        }
                        other => self.warnings.push(format!(
                            "{}: condition field `{other}` is not emulated; ignored",
                            r.logical
                        )),
                    }
                }
            }
            t.load_balancers[li].listeners[lj].rules.push(rule);
        }
    }

    fn forward(
        &mut self,
        r: &Resource,
        prop: &str,
        actions: Option<&Value>,
    ) -> Option<Vec<WeightedTarget>> {
        let Some(Value::Sequence(actions)) = actions else {
            self.error(
                r,
                prop,
                "no actions".into(),
                "give a forward action: [{Type: forward, TargetGroupArn: !Ref Tg}]".into(),
            );
            return None;
        };
        let Some(a) = actions
            .iter()
            .find(|a| get_str(a, "Type").as_deref() == Some("forward"))
        else {
            let kinds: Vec<String> = actions.iter().filter_map(|a| get_str(a, "Type")).collect();
            self.warnings.push(format!(
                "{}: {prop}: only forward actions are emulated ({} skipped)",
                r.logical,
                kinds.join(", ")
            ));
            return None;
        };
        let mut out = vec![];
        if let Some(arn) = get_str(a, "TargetGroupArn") {
            out.push(WeightedTarget {
                target_group: self.name_of(
                    r,
                    &format!("{prop}.TargetGroupArn"),
                    &arn,
                    &["AWS::ElasticLoadBalancingV2::TargetGroup"],
                )?,
                weight: 1,
            });
        } else if let Some(Value::Sequence(tgs)) =
            get(a, "ForwardConfig").and_then(|f| get(f, "TargetGroups"))
        {
            for x in tgs {
                let arn = get_str(x, "TargetGroupArn").unwrap_or_default();
                let tg = self.name_of(
                    r,
                    &format!("{prop}.ForwardConfig.TargetGroups"),
                    &arn,
                    &["AWS::ElasticLoadBalancingV2::TargetGroup"],
                )?;
                out.push(WeightedTarget {
                    target_group: tg,
                    weight: get_int(x, "Weight").unwrap_or(1),
                });
            }
        }
        Some(out)
    }
}
