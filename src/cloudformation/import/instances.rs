//! Instances, launch templates with their auto scaling groups, and the
//! stand-in server an instance runs when its template names no workload.

use super::*;

impl<'a> Importer<'a> {
    /// Instances, launch template + auto scaling group instances, interface
    /// endpoints' ENIs. Returns target group registrations (tg id -> names).
    pub(super) fn instances(&mut self, t: &mut Topology) -> HashMap<String, Vec<String>> {
        let res = self.resources;
        let mut registrations: HashMap<String, Vec<String>> = HashMap::new();
        let mut public_by_eip: Vec<String> = vec![];
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::EC2::EIP" || r.ty == "AWS::EC2::EIPAssociation")
        {
            if let Some(i) = get_str(&r.props, "InstanceId") {
                if let Some(n) = self.name_of(r, "InstanceId", &i, &["AWS::EC2::Instance"]) {
                    public_by_eip.push(n);
                }
            }
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::Instance") {
            let nic = get(&r.props, "NetworkInterfaces")
                .and_then(|n| n.as_sequence())
                .and_then(|s| s.first())
                .cloned();
            let lt = self.launch_template_of(r, &r.props);
            let lt_data = lt.map(|l| {
                get(&l.props, "LaunchTemplateData")
                    .cloned()
                    .unwrap_or(Value::Null)
            });
            let subnet_id = get_str(&r.props, "SubnetId")
                .or_else(|| nic.as_ref().and_then(|n| get_str(n, "SubnetId")));
            let Some(subnet_id) = subnet_id else {
                self.error(
                    r,
                    "SubnetId",
                    "the instance names no subnet".into(),
                    "give SubnetId (or NetworkInterfaces[0].SubnetId): vpcsim has no default VPC"
                        .into(),
                );
                continue;
            };
            let Some(subnet) = self.name_of(r, "SubnetId", &subnet_id, &["AWS::EC2::Subnet"])
            else {
                continue;
            };
            let mut sg_ids = strings(get(&r.props, "SecurityGroupIds"));
            sg_ids.extend(strings(get(&r.props, "SecurityGroups")));
            if let Some(n) = &nic {
                sg_ids.extend(strings(get(n, "GroupSet")));
            }
            if sg_ids.is_empty() {
                if let Some(d) = &lt_data {
                    sg_ids = lt_security_groups(d);
                }
            }
            let sgs = self.sg_names(r, &sg_ids);
            let public = nic
                .as_ref()
                .and_then(|n| get_bool(n, "AssociatePublicIpAddress"))
                .or_else(|| public_by_eip.contains(&r.name).then_some(true));
            let private_ip = get_str(&r.props, "PrivateIpAddress")
                .or_else(|| nic.as_ref().and_then(|n| get_str(n, "PrivateIpAddress")));
            let user_data = get_str(&r.props, "UserData")
                .or_else(|| lt_data.as_ref().and_then(|d| get_str(d, "UserData")));
            let mut keys = vec![r.logical.as_str(), r.name.as_str()];
            if let Some(l) = lt {
                keys.push(l.logical.as_str());
            }
            let run = self
                .run_for(&keys, r.metadata.as_ref())
                .or_else(|| lt.and_then(|l| self.run_for(&[], l.metadata.as_ref())));
            let inst = self.instance(
                r,
                r.name.clone(),
                subnet,
                sgs,
                private_ip,
                public,
                get_bool(&r.props, "SourceDestCheck").unwrap_or(true),
                run,
                user_data,
                r.metadata.as_ref(),
            );
            let options = get(&r.props, "MetadataOptions")
                .or_else(|| lt_data.as_ref().and_then(|d| get(d, "MetadataOptions")));
            let inst = Instance {
                metadata_options: self.metadata_options(r, options),
                ..inst
            };
            origin(t, &r.name, r);
            t.instances.push(inst);
            if let Some(Value::Sequence(cs)) =
                r.metadata.as_ref().and_then(|m| get(m, "containers"))
            {
                for c in cs {
                    t.containers.push(Container {
                        name: get_str(c, "name").unwrap_or_default(),
                        host: r.name.clone(),
                        image: get_str(c, "image").unwrap_or_default(),
                        ports: strings(get(c, "ports")),
                        env: get(c, "env")
                            .and_then(|e| e.as_mapping())
                            .map(|m| {
                                m.iter()
                                    .filter_map(|(k, v)| {
                                        Some((k.as_str()?.to_string(), scalar(v)?))
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    });
                }
            }
        }
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::AutoScaling::AutoScalingGroup")
        {
            let Some(lt) = self.launch_template_of(r, &r.props) else {
                self.error(r, "LaunchTemplate", "the group names no launch template".into(), "give LaunchTemplate: {LaunchTemplateId: !Ref Lt, Version: !GetAtt Lt.LatestVersionNumber} (launch configurations and mixed instances policies are not emulated)".into());
                continue;
            };
            let data = get(&lt.props, "LaunchTemplateData")
                .cloned()
                .unwrap_or(Value::Null);
            let subnets: Vec<String> = strings(get(&r.props, "VPCZoneIdentifier"))
                .into_iter()
                .filter_map(|id| self.name_of(r, "VPCZoneIdentifier", &id, &["AWS::EC2::Subnet"]))
                .collect();
            if subnets.is_empty() {
                self.error(r, "VPCZoneIdentifier", "the group has no subnet".into(), "list the subnets its instances go to: VPCZoneIdentifier: [!Ref SubnetA, !Ref SubnetB]".into());
                continue;
            }
            let desired = get_int(&r.props, "DesiredCapacity")
                .or_else(|| get_int(&r.props, "MinSize"))
                .unwrap_or(1);
            let max = get_int(&r.props, "MaxSize").unwrap_or(desired);
            if desired > max || !(0..=20).contains(&desired) {
                self.error(r, "DesiredCapacity", format!("desired capacity {desired} is not between MinSize and MaxSize ({max}) or above the lab's 20"), "set DesiredCapacity between MinSize and MaxSize (at most 20 in a lab)".into());
                continue;
            }
            let sgs = {
                let ids = lt_security_groups(&data);
                self.sg_names(lt, &ids)
            };
            let nic = get(&data, "NetworkInterfaces")
                .and_then(|n| n.as_sequence())
                .and_then(|s| s.first())
                .cloned();
            let public = nic
                .as_ref()
                .and_then(|n| get_bool(n, "AssociatePublicIpAddress"));
            let run = self
                .run_for(
                    &[
                        r.logical.as_str(),
                        r.name.as_str(),
                        lt.logical.as_str(),
                        lt.name.as_str(),
                    ],
                    r.metadata.as_ref(),
                )
                .or_else(|| self.run_for(&[], lt.metadata.as_ref()));
            let tgs = strings(get(&r.props, "TargetGroupARNs"));
            let base: String = r.name.chars().take(27).collect();
            for k in 0..desired as usize {
                // Spread over the subnets in order, as the group balances AZs.
                let name = format!("{}-{}", base.trim_end_matches('-'), k + 1);
                let inst = self.instance(
                    r,
                    name.clone(),
                    subnets[k % subnets.len()].clone(),
                    sgs.clone(),
                    None,
                    public,
                    true,
                    run.clone(),
                    get_str(&data, "UserData"),
                    lt.metadata.as_ref(),
                );
                let inst = Instance {
                    metadata_options: self.metadata_options(lt, get(&data, "MetadataOptions")),
                    ..inst
                };
                origin(t, &name, r);
                t.instances.push(inst);
                for tg in &tgs {
                    registrations
                        .entry(tg.clone())
                        .or_default()
                        .push(name.clone());
                }
            }
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::VPCEndpoint") {
            let kind = get_str(&r.props, "VpcEndpointType").unwrap_or_else(|| "Gateway".into());
            if kind != "Interface" {
                continue;
            }
            // An interface endpoint is ENIs in its subnets with its groups:
            // each one a node answering HTTPS's port with the stand-in.
            let sgs = {
                let ids = strings(get(&r.props, "SecurityGroupIds"));
                self.sg_names(r, &ids)
            };
            let subnets: Vec<String> = strings(get(&r.props, "SubnetIds"))
                .into_iter()
                .filter_map(|id| self.name_of(r, "SubnetIds", &id, &["AWS::EC2::Subnet"]))
                .collect();
            let base: String = r.name.chars().take(27).collect();
            for (k, sn) in subnets.iter().enumerate() {
                let name = format!("{}-{}", base.trim_end_matches('-'), k + 1);
                origin(t, &name, r);
                t.instances.push(Instance {
                    name: name.clone(),
                    subnet: sn.clone(),
                    security_groups: sgs.clone(),
                    private_ip: None,
                    elastic_ip: None,
                    associate_public_ip: Some(false),
                    source_dest_check: true,
                    run: None,
                    user_data: Some(stand_in_script(&name, &[443])),
                    user_data_file: None,
                    metadata_options: MetadataOptions::default(),
                });
            }
            self.warnings.push(format!(
                "{}: interface endpoint for {} built as ENI nodes answering HTTP on 443 in each subnet (no TLS, no service behind it)",
                r.logical,
                get_str(&r.props, "ServiceName").unwrap_or_default()
            ));
        }
        registrations
    }

    pub(super) fn sg_names(&mut self, r: &Resource, ids: &[String]) -> Vec<String> {
        ids.iter()
            .filter_map(|id| self.name_of(r, "SecurityGroupIds", id, &["AWS::EC2::SecurityGroup"]))
            .collect()
    }

    fn launch_template_of(&mut self, r: &Resource, props: &Value) -> Option<&'a Resource> {
        let spec = get(props, "LaunchTemplate")?;
        if let Some(id) = get_str(spec, "LaunchTemplateId") {
            return self.resolve(
                r,
                "LaunchTemplate.LaunchTemplateId",
                &id,
                &["AWS::EC2::LaunchTemplate"],
            );
        }
        let name = get_str(spec, "LaunchTemplateName")?;
        let found = self.resources.iter().find(|x| {
            x.ty == "AWS::EC2::LaunchTemplate"
                && (get_str(&x.props, "LaunchTemplateName").as_deref() == Some(name.as_str())
                    || x.physical == name)
        });
        if found.is_none() {
            self.error(
                r,
                "LaunchTemplate.LaunchTemplateName",
                format!("no launch template is named `{name}`"),
                "use LaunchTemplateId: !Ref YourLaunchTemplate".into(),
            );
        }
        found
    }

    #[allow(clippy::too_many_arguments)]
    fn instance(
        &mut self,
        r: &Resource,
        name: String,
        subnet: String,
        security_groups: Vec<String>,
        private_ip: Option<String>,
        public: Option<bool>,
        source_dest_check: bool,
        run: Option<Run>,
        user_data: Option<String>,
        meta: Option<&Value>,
    ) -> Instance {
        let decoded = user_data.map(|u| decode_user_data(&u));
        let lab_user_data = meta.and_then(|m| get_str(m, "lab_user_data"));
        let (run_field, script) = match &run {
            Some(Run::ModelV1) => (Some("model-v1".to_string()), lab_user_data),
            Some(Run::ModelV2) => (Some("model-v2".to_string()), lab_user_data),
            // Filled in once the target groups are known.
            Some(Run::StandIn) => (None, Some(STAND_IN_MARK.to_string())),
            Some(Run::UserData) => (None, decoded),
            Some(Run::Nothing) => (None, None),
            None => {
                if decoded.is_some() && lab_user_data.is_none() {
                    self.warnings.push(format!(
                        "{} ({name}): the template's user data is not run (it usually installs from the internet); choose a workload with --run {}=WORKLOAD ({RUN_VALUES})",
                        r.logical, r.logical
                    ));
                }
                (None, lab_user_data)
            }
        };
        Instance {
            name,
            subnet,
            security_groups,
            private_ip,
            elastic_ip: None,
            associate_public_ip: public,
            source_dest_check,
            run: run_field,
            user_data: script,
            user_data_file: None,
            metadata_options: MetadataOptions::default(),
        }
    }

    /// `MetadataOptions` of an instance or launch template, checked by the
    /// topology's validation like the TOML field. What the lab's IMDS does
    /// not serve (tags, IPv6) is named in a warning when turned on.
    fn metadata_options(&mut self, r: &Resource, options: Option<&Value>) -> MetadataOptions {
        let Some(o) = options else {
            return MetadataOptions::default();
        };
        for key in ["InstanceMetadataTags", "HttpProtocolIpv6"] {
            if get_str(o, key).as_deref() == Some("enabled") {
                self.warnings.push(format!(
                    "{}: MetadataOptions.{key} is not emulated (the lab's IMDS serves IPv4 and no tags)",
                    r.logical
                ));
            }
        }
        MetadataOptions {
            http_tokens: get_str(o, "HttpTokens"),
            http_put_response_hop_limit: get_int(o, "HttpPutResponseHopLimit"),
            http_endpoint: get_str(o, "HttpEndpoint"),
        }
    }

    /// The stand-in on each instance that asked for it: the ports of the
    /// target groups it is in (and their health check ports).
    pub(super) fn stand_ins(&mut self, t: &mut Topology) {
        for i in t
            .instances
            .iter_mut()
            .filter(|i| i.user_data.as_deref() == Some(STAND_IN_MARK))
        {
            let mut ports: Vec<u16> = vec![];
            for tg in &t.target_groups {
                for target in &tg.targets {
                    let (n, p) = match target.split_once(':') {
                        Some((n, p)) => (n, p.parse().unwrap_or(tg.port)),
                        None => (target.as_str(), tg.port),
                    };
                    if n == i.name {
                        ports.push(p as u16);
                        if let Some(hp) = tg.health_check.port {
                            ports.push(hp as u16);
                        }
                    }
                }
            }
            if ports.is_empty() {
                ports.push(80);
            }
            ports.sort();
            ports.dedup();
            i.user_data = Some(stand_in_script(&i.name, &ports));
        }
    }
}

/// The stand-in server: answers every request with 200 on the given ports.
fn stand_in_script(node: &str, ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    format!(
        r#"#!/bin/sh
# vpcsim stand-in: HTTP 200 on every path, on the ports target groups and health checks use.
exec python3 -c '
import sys, threading, time, http.server
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n: self.rfile.read(n)
        body = ("stand-in %s port %d %s\n" % (sys.argv[1], self.server.server_port, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = answer
    def log_message(self, *a): pass
def serve(port):
    while True:
        try:
            s = http.server.ThreadingHTTPServer(("0.0.0.0", port), H)
            break
        except OSError:
            time.sleep(0.2)  # the port is busy (a probe listener): try again
    print("stand-in listening on", port, flush=True)
    s.serve_forever()
for p in sys.argv[2:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
threading.Event().wait()
' {node} {}
"#,
        ports.join(" ")
    )
}

/// Placeholder until the stand-in's ports are known.
const STAND_IN_MARK: &str = "#vpcsim-stand-in";

fn lt_security_groups(data: &Value) -> Vec<String> {
    let mut ids = strings(get(data, "SecurityGroupIds"));
    if let Some(Value::Sequence(nics)) = get(data, "NetworkInterfaces") {
        if let Some(n) = nics.first() {
            ids.extend(strings(get(n, "Groups")));
        }
    }
    ids
}

/// `UserData` is base64 on AWS; the script itself runs in the lab.
fn decode_user_data(u: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(u.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_in_lists_its_ports() {
        let s = stand_in_script("web-1", &[80, 8080]);
        assert!(s.ends_with("' web-1 80 8080\n"), "{s}");
        assert!(!s[s.find("-c '").unwrap() + 4..s.rfind('\'').unwrap()].contains('\''));
    }
}
