//! Instances, and the user data that does on EC2 what ran on them in the
//! lab.

use super::*;

/// The seed's own model servers (seeds 000/001), carried in user data.
const MODEL_V1_PY: &str =
    include_str!("../../../topologies/canary/bucket/backend/model_v1_prod.py");
const MODEL_V2_PY: &str =
    include_str!("../../../topologies/canary/bucket/backend/model_v2_canary.py");
/// The report's Dockerfile for V2 (FROM python:3.10-slim, pip install flask).
const MODEL_V2_DOCKERFILE: &str = include_str!("../../../images/model-v2/Dockerfile.python");
/// The image vpcsim builds offline for the seed's V2; rebuilt on EC2 from the report's Dockerfile.
const BUILT_IN_V2_IMAGE: &str = "vpcsim/model-v2";

impl Builder<'_> {
    /// Logical id of the instance owning ENI `e` (reserved on first use).
    pub(super) fn instance_id_of_eni(&mut self, e: usize) -> String {
        let lab = self.lab;
        let i = lab
            .instances
            .iter()
            .position(|x| x.eni == e)
            .expect("route targets are instances");
        self.instance_ids();
        self.inst_ids[i].clone()
    }

    /// Reserves every instance's logical id once: routes and target groups
    /// name instances, whichever is exported first.
    pub(super) fn instance_ids(&mut self) {
        if self.inst_ids.len() == self.lab.instances.len() {
            return;
        }
        let lab = self.lab;
        self.inst_ids = lab
            .instances
            .iter()
            .map(|i| self.id("Instance", &i.name))
            .collect();
    }

    pub(super) fn instances(&mut self) {
        let lab = self.lab;
        self.instance_ids();
        for (k, inst) in lab.instances.iter().enumerate() {
            let id = self.inst_ids[k].clone();
            let eni = &lab.enis[inst.eni];
            let containers: Vec<&ContainerPlan> = lab
                .containers
                .iter()
                .filter(|c| c.host == inst.name)
                .collect();
            let mut nic = vec![
                ("DeviceIndex", s("0")),
                ("SubnetId", r(&self.subnet_ids[eni.subnet].clone())),
                (
                    "GroupSet",
                    seq(eni
                        .security_groups
                        .iter()
                        .map(|&g| self.sg_ref(g))
                        .collect()),
                ),
                ("PrivateIpAddress", s(&eni.private_ip.to_string())),
            ];
            if eni.public_ip.is_some() {
                nic.push(("AssociatePublicIpAddress", Value::Bool(true)));
            }
            let mut props = vec![
                ("ImageId", r("ImageId")),
                ("InstanceType", r("InstanceType")),
                (
                    "KeyName",
                    single(
                        "Fn::If",
                        seq(vec![s("HasKeyName"), r("KeyName"), r("AWS::NoValue")]),
                    ),
                ),
                ("NetworkInterfaces", seq(vec![map(nic)])),
            ];
            if !eni.source_dest_check {
                props.push(("SourceDestCheck", Value::Bool(false)));
            }
            let m = inst.metadata;
            if m != MetadataPlan::default() {
                let keyword = |on: bool, yes: &str, no: &str| s(if on { yes } else { no });
                props.push((
                    "MetadataOptions",
                    map(vec![
                        (
                            "HttpTokens",
                            keyword(m.tokens_required, "required", "optional"),
                        ),
                        ("HttpPutResponseHopLimit", n(m.put_response_hop_limit)),
                        (
                            "HttpEndpoint",
                            keyword(m.endpoint_enabled, "enabled", "disabled"),
                        ),
                    ]),
                ));
            }
            let script = self.user_data(inst, &containers);
            if let Some(script) = &script {
                props.push(("UserData", single("Fn::Base64", s(script))));
            }
            props.push(("Tags", name_tag(&inst.name)));
            // What `vpcsim up` needs to bring the same lab back from here.
            let mut meta = vec![];
            if let Some(w) = inst.workload {
                meta.push(("run", s(w.name())));
            }
            if let Some(u) = &inst.user_data {
                meta.push(("lab_user_data", s(u)));
            }
            if !containers.is_empty() {
                meta.push((
                    "containers",
                    seq(containers
                        .iter()
                        .map(|c| {
                            map(vec![
                                ("name", s(&c.name)),
                                ("image", s(&c.image)),
                                (
                                    "ports",
                                    seq(c.ports.iter().map(|p| s(&port_mapping(p))).collect()),
                                ),
                                (
                                    "env",
                                    Value::Mapping(
                                        c.env.iter().map(|(k, v)| (s(k), s(v))).collect(),
                                    ),
                                ),
                            ])
                        })
                        .collect()),
                ));
            }
            let mut extra = vec![];
            if !meta.is_empty() {
                extra.push(("Metadata", map(vec![("vpcsim", map(meta))])));
            }
            if eni.public_ip.is_some() {
                extra.extend(self.depends_on_igw());
            }
            self.add_full(&id, "AWS::EC2::Instance", props, extra);
            self.output(
                &format!("{id}PrivateIp"),
                &format!("private IP of {}", inst.name),
                att(&id, "PrivateIp"),
            );
        }
    }

    /// User data doing on EC2 what ran on the instance in the lab.
    fn user_data(&mut self, inst: &InstancePlan, containers: &[&ContainerPlan]) -> Option<String> {
        if inst.workload.is_none() && inst.user_data.is_none() && containers.is_empty() {
            return None;
        }
        let mut sh = String::from(
            "#!/bin/bash\n# Generated by vpcsim: what ran on this instance in the lab.\n",
        );
        if let Some(u) = &inst.user_data {
            sh.push_str("# The lab's own user data, unchanged.\n");
            sh.push_str("cat > /var/lib/cloud/lab-user-data.sh <<'VPCSIM_EOF'\n");
            sh.push_str(u);
            if !u.ends_with('\n') {
                sh.push('\n');
            }
            sh.push_str(
                "VPCSIM_EOF\n(mkdir -p /root && cd /root && sh /var/lib/cloud/lab-user-data.sh)\n",
            );
        }
        if let Some(w) = inst.workload {
            let (file, py) = match w {
                Workload::ModelV1 => ("model_v1_prod.py", MODEL_V1_PY),
                Workload::ModelV2 => ("model_v2_canary.py", MODEL_V2_PY),
            };
            sh.push_str(&format!(
                "# run = \"{}\": the seed's {file} under python3 and Flask, port 8000.\n\
                 apt-get update -y\napt-get install -y python3-pip\npip3 install flask\n\
                 mkdir -p /opt/model\ncat > /opt/model/{file} <<'VPCSIM_EOF'\n{py}VPCSIM_EOF\n\
                 cd /opt/model && nohup python3 {file} > /var/log/model.log 2>&1 &\n",
                w.name()
            ));
        }
        if !containers.is_empty() {
            sh.push_str("# Docker, as on the lab's host.\napt-get update -y\napt-get install -y docker.io\nsystemctl enable --now docker\n");
            for c in containers {
                let mut image = c.image.clone();
                if c.image == BUILT_IN_V2_IMAGE {
                    // The lab's image is built offline from the vpcsim binary;
                    // on EC2 the report's own Dockerfile builds the same server.
                    image = "modelv2canaryimage".into();
                    let mut py = MODEL_V2_PY.to_string();
                    if let Some(id) = c.env.get("MODEL_ID") {
                        // The seed hard-codes MODEL_ID; the student edited that line.
                        py = py
                            .lines()
                            .map(|l| {
                                if l.starts_with("MODEL_ID = ") {
                                    format!("MODEL_ID = {id:?}")
                                } else {
                                    l.to_string()
                                }
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                            + "\n";
                    }
                    sh.push_str(&format!(
                        "mkdir -p /opt/{name} && cd /opt/{name}\ncat > model_v2_canary.py <<'VPCSIM_EOF'\n{py}VPCSIM_EOF\n\
                         cat > Dockerfile <<'VPCSIM_EOF'\n{MODEL_V2_DOCKERFILE}VPCSIM_EOF\ndocker build -t {image} .\n",
                        name = c.name
                    ));
                } else {
                    self.notes.push(format!(
                        "container `{}` runs image `{}`, which exists only on this machine: push it to a registry (ECR) and put its URI in the user data of `{}`",
                        c.name, c.image, inst.name
                    ));
                }
                let mut run = format!("docker run -d --name {} --restart unless-stopped", c.name);
                for p in &c.ports {
                    run.push_str(&format!(" -p {}", port_mapping(p)));
                }
                for (k, v) in &c.env {
                    run.push_str(&format!(" -e {k}={}", shell_quote(v)));
                }
                run.push_str(&format!(" {image}\n"));
                sh.push_str(&run);
            }
        }
        Some(sh)
    }
}

fn port_mapping(p: &PortMapping) -> String {
    let mut x = format!("{}:{}", p.host_port, p.container_port);
    if p.protocol == Protocol::Udp {
        x.push_str("/udp");
    }
    x
}

fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}
