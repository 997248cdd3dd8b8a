//! A resolved lab -> one CloudFormation template that builds it on AWS.
//!
//! Every object of the [`Lab`] becomes its resource; what runs on an
//! instance becomes user data that does on EC2 what the lab did (the seed's
//! Flask file under python3, containers under Docker with the same `-p`).
//! What cannot be carried is listed in [`Export::notes`]: a comment at the
//! top of the template, `Metadata.vpcsim.not_carried`, and a warning.
//! `Metadata.vpcsim` on instances keeps what `vpcsim up` needs to bring the
//! same lab back from the template (built-in workload, lab user data,
//! containers): AWS ignores it.

use super::template::{single, Mapping, Value};
use crate::topology::plan::*;
use std::collections::HashSet;

/// The seed's own model servers (seeds 000/001), carried in user data.
const MODEL_V1_PY: &str = include_str!("../../topologies/canary/bucket/backend/model_v1_prod.py");
const MODEL_V2_PY: &str = include_str!("../../topologies/canary/bucket/backend/model_v2_canary.py");
/// The report's Dockerfile for V2 (FROM python:3.10-slim, pip install flask).
const MODEL_V2_DOCKERFILE: &str = include_str!("../../images/model-v2/Dockerfile.python");
/// The image vpcsim builds offline for the seed's V2; rebuilt on EC2 from the report's Dockerfile.
const BUILT_IN_V2_IMAGE: &str = "vpcsim/model-v2";
/// Ubuntu 22.04 (the seeds' OS), through the public SSM parameter.
pub const DEFAULT_AMI_PARAMETER: &str =
    "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id";

pub struct Export {
    pub template: Value,
    /// What the template cannot carry, one sentence each.
    pub notes: Vec<String>,
}

impl Export {
    /// The template text: YAML with short-form tags (notes as comments), or JSON.
    pub fn render(&self, json: bool) -> String {
        if json {
            super::template::to_json(&self.template)
        } else {
            let mut header = String::from(
                "# Exported by vpcsim from a tested lab: `aws cloudformation deploy --template-file FILE --stack-name NAME`.\n",
            );
            if !self.notes.is_empty() {
                header.push_str("# Not carried to AWS (see Metadata.vpcsim.not_carried):\n");
                for n in &self.notes {
                    header.push_str(&format!("#   - {n}\n"));
                }
            }
            super::template::to_yaml(&self.template, &header)
        }
    }
}

fn s(x: &str) -> Value {
    Value::String(x.into())
}
fn n(x: impl Into<i64>) -> Value {
    Value::Number(x.into().into())
}
fn r(id: &str) -> Value {
    single("Ref", s(id))
}
fn att(id: &str, a: &str) -> Value {
    single("Fn::GetAtt", Value::Sequence(vec![s(id), s(a)]))
}
fn map(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(s(k), v);
    }
    Value::Mapping(m)
}
fn seq(v: Vec<Value>) -> Value {
    Value::Sequence(v)
}
fn name_tag(name: &str) -> Value {
    seq(vec![map(vec![("Key", s("Name")), ("Value", s(name))])])
}

/// `public-1` -> `Public1`: logical ids are alphanumeric.
fn camel(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            let first = c.next().map(|f| f.to_ascii_uppercase()).unwrap_or_default();
            std::iter::once(first).chain(c).collect::<String>()
        })
        .collect()
}

struct Builder<'l> {
    lab: &'l Lab,
    resources: Mapping,
    outputs: Mapping,
    notes: Vec<String>,
    used: HashSet<String>,
    subnet_ids: Vec<String>,
    rt_ids: Vec<Option<String>>,
    sg_ids: Vec<String>,
    nat_ids: Vec<String>,
    /// Instance index -> logical id.
    inst_ids: Vec<String>,
    tg_ids: Vec<String>,
    lb_ids: Vec<String>,
    igw: Option<(String, String)>,
}

/// Builds the template of a lab.
pub fn export(lab: &Lab) -> Export {
    let mut b = Builder {
        lab,
        resources: Mapping::new(),
        outputs: Mapping::new(),
        notes: vec![],
        used: HashSet::new(),
        subnet_ids: vec![],
        rt_ids: vec![],
        sg_ids: vec![],
        nat_ids: vec![],
        inst_ids: vec![],
        tg_ids: vec![],
        lb_ids: vec![],
        igw: None,
    };
    b.notes.push(format!(
        "addresses: the lab's public IPs and Elastic IPs (from {}) and the internet hosts ({}) are the lab's; AWS assigns its own",
        lab.internet.public_pool,
        lab.internet.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", ")
    ));
    b.vpc();
    b.subnets();
    b.route_tables();
    b.nacls();
    b.security_groups();
    b.instances();
    b.load_balancers();
    b.endpoints_and_buckets();
    b.flow_logs();
    b.web_acls();

    let has_instances = !lab.instances.is_empty();
    let mut t = Mapping::new();
    t.insert(s("AWSTemplateFormatVersion"), s("2010-09-09"));
    t.insert(
        s("Description"),
        s(&format!(
            "vpcsim lab `{}` ({}), exported for AWS",
            lab.name, lab.region
        )),
    );
    t.insert(
        s("Metadata"),
        map(vec![(
            "vpcsim",
            map(vec![
                ("lab", s(&lab.name)),
                ("not_carried", seq(b.notes.iter().map(|x| s(x)).collect())),
            ]),
        )]),
    );
    if has_instances {
        t.insert(
            s("Parameters"),
            map(vec![
                (
                    "KeyName",
                    map(vec![
                        ("Type", s("String")),
                        ("Default", s("")),
                        ("Description", s("EC2 key pair for SSH (empty: none)")),
                    ]),
                ),
                (
                    "ImageId",
                    map(vec![
                        ("Type", s("AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>")),
                        ("Default", s(DEFAULT_AMI_PARAMETER)),
                        (
                            "Description",
                            s("AMI of every instance (default: Ubuntu 22.04, as in the seeds)"),
                        ),
                    ]),
                ),
                (
                    "InstanceType",
                    map(vec![
                        ("Type", s("String")),
                        ("Default", s("t3.micro")),
                        (
                            "AllowedValues",
                            seq(
                                ["t3.micro", "t3.small", "t3.medium", "t2.micro", "t2.small"]
                                    .into_iter()
                                    .map(s)
                                    .collect(),
                            ),
                        ),
                    ]),
                ),
            ]),
        );
        t.insert(
            s("Conditions"),
            map(vec![(
                "HasKeyName",
                single(
                    "Fn::Not",
                    seq(vec![single("Fn::Equals", seq(vec![r("KeyName"), s("")]))]),
                ),
            )]),
        );
    }
    t.insert(s("Resources"), Value::Mapping(b.resources));
    t.insert(s("Outputs"), Value::Mapping(b.outputs));
    Export {
        template: Value::Mapping(t),
        notes: b.notes,
    }
}

impl Builder<'_> {
    fn id(&mut self, kind: &str, name: &str) -> String {
        let base = format!("{kind}{}", camel(name));
        let mut id = base.clone();
        let mut i = 2;
        while !self.used.insert(id.clone()) {
            id = format!("{base}{i}");
            i += 1;
        }
        id
    }

    fn add(&mut self, id: &str, ty: &str, props: Vec<(&str, Value)>) {
        self.add_full(id, ty, props, vec![]);
    }

    fn add_full(
        &mut self,
        id: &str,
        ty: &str,
        props: Vec<(&str, Value)>,
        extra: Vec<(&str, Value)>,
    ) {
        let mut res = vec![("Type", s(ty))];
        res.extend(extra);
        res.push(("Properties", map(props)));
        self.resources.insert(s(id), map(res));
    }

    fn output(&mut self, id: &str, desc: &str, value: Value) {
        let o = vec![
            ("Description", s(desc)),
            ("Value", value),
            (
                "Export",
                map(vec![(
                    "Name",
                    single("Fn::Sub", s(&format!("${{AWS::StackName}}-{id}"))),
                )]),
            ),
        ];
        self.outputs.insert(s(id), map(o));
    }

    fn depends_on_igw(&self) -> Vec<(&'static str, Value)> {
        match &self.igw {
            Some((_, att)) => vec![("DependsOn", s(att))],
            None => vec![],
        }
    }

    fn vpc(&mut self) {
        let lab = self.lab;
        self.used.insert("VPC".into());
        self.add(
            "VPC",
            "AWS::EC2::VPC",
            vec![
                ("CidrBlock", s(&lab.vpc_cidr.to_string())),
                ("EnableDnsSupport", Value::Bool(true)),
                ("EnableDnsHostnames", Value::Bool(true)),
                ("Tags", name_tag(&lab.name)),
            ],
        );
        self.output("VpcId", "The VPC", r("VPC"));
        if let Some(igw) = &lab.internet_gateway {
            let id = self.id("InternetGateway", igw);
            self.add(
                &id,
                "AWS::EC2::InternetGateway",
                vec![("Tags", name_tag(igw))],
            );
            let att_id = self.id(&id, "attachment");
            self.add(
                &att_id,
                "AWS::EC2::VPCGatewayAttachment",
                vec![("VpcId", r("VPC")), ("InternetGatewayId", r(&id))],
            );
            self.igw = Some((id, att_id));
        }
    }

    fn subnets(&mut self) {
        let lab = self.lab;
        for sn in &lab.subnets {
            let id = self.id("Subnet", &sn.name);
            // AZ `us-east-1b` -> the region's second AZ, whatever the region.
            let letter = sn.az.chars().last().unwrap_or('a');
            let index = (letter as i64 - 'a' as i64).clamp(0, 25);
            let az = single(
                "Fn::Select",
                seq(vec![n(index), single("Fn::GetAZs", s(""))]),
            );
            self.add(
                &id,
                "AWS::EC2::Subnet",
                vec![
                    ("VpcId", r("VPC")),
                    ("CidrBlock", s(&sn.cidr.to_string())),
                    ("AvailabilityZone", az),
                    ("MapPublicIpOnLaunch", Value::Bool(sn.map_public_ip)),
                    ("Tags", name_tag(&sn.name)),
                ],
            );
            self.subnet_ids.push(id);
        }
    }

    fn route_tables(&mut self) {
        let lab = self.lab;
        self.nat_ids = lab
            .nat_gateways
            .iter()
            .map(|g| self.id("NatGateway", &g.name))
            .collect();
        // NAT gateways first: routes name them.
        for (k, g) in lab.nat_gateways.iter().enumerate() {
            let id = self.nat_ids[k].clone();
            let eip = self.id(&id, "eip");
            let dep = self.depends_on_igw();
            self.add_full(
                &eip,
                "AWS::EC2::EIP",
                vec![
                    ("Domain", s("vpc")),
                    ("Tags", name_tag(&format!("{}-eip", g.name))),
                ],
                dep,
            );
            self.add(
                &id,
                "AWS::EC2::NatGateway",
                vec![
                    ("AllocationId", att(&eip, "AllocationId")),
                    ("SubnetId", r(&self.subnet_ids[g.subnet].clone())),
                    ("Tags", name_tag(&g.name)),
                ],
            );
        }
        for (k, rt) in lab.route_tables.iter().enumerate() {
            let used = lab.subnets.iter().any(|sn| sn.route_table == k);
            if !used && rt.routes.is_empty() {
                self.rt_ids.push(None);
                continue;
            }
            if rt.main {
                // CloudFormation cannot replace the main table: the template
                // associates its subnets explicitly, which routes the same.
                self.notes.push(format!(
                    "route table `{}` is the lab's main table; on AWS it is an ordinary table associated with its subnets explicitly",
                    rt.name
                ));
            }
            let id = self.id("RouteTable", &rt.name);
            self.add(
                &id,
                "AWS::EC2::RouteTable",
                vec![("VpcId", r("VPC")), ("Tags", name_tag(&rt.name))],
            );
            for (j, route) in rt.routes.iter().enumerate() {
                let rid = self.id(&id, &format!("route-{j}"));
                let mut props = vec![
                    ("RouteTableId", r(&id)),
                    ("DestinationCidrBlock", s(&route.destination.to_string())),
                ];
                let mut extra = vec![];
                match route.target {
                    RouteTarget::InternetGateway => {
                        let (igw, att) = self.igw.clone().expect("validated: the IGW exists");
                        props.push(("GatewayId", r(&igw)));
                        extra.push(("DependsOn", s(&att)));
                    }
                    RouteTarget::NatGateway(g) => {
                        props.push(("NatGatewayId", r(&self.nat_ids[g].clone())))
                    }
                    RouteTarget::Eni(e) => {
                        // Instances are declared later; their ids are known now.
                        let inst = self.instance_id_of_eni(e);
                        props.push(("InstanceId", r(&inst)));
                    }
                }
                self.add_full(&rid, "AWS::EC2::Route", props, extra);
            }
            self.rt_ids.push(Some(id));
        }
        for (k, sn) in lab.subnets.iter().enumerate() {
            let rt = self.rt_ids[sn.route_table]
                .clone()
                .expect("used tables exist");
            let sid = self.subnet_ids[k].clone();
            let aid = self.id(&sid, "route-table-association");
            self.add(
                &aid,
                "AWS::EC2::SubnetRouteTableAssociation",
                vec![("SubnetId", r(&sid)), ("RouteTableId", r(&rt))],
            );
        }
    }

    /// Logical id of the instance owning ENI `e` (reserved on first use).
    fn instance_id_of_eni(&mut self, e: usize) -> String {
        let lab = self.lab;
        let i = lab
            .instances
            .iter()
            .position(|x| x.eni == e)
            .expect("route targets are instances");
        self.instance_ids();
        self.inst_ids[i].clone()
    }

    fn instance_ids(&mut self) {
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

    fn nacls(&mut self) {
        let lab = self.lab;
        for (k, acl) in lab.nacls.iter().enumerate() {
            if acl.name == "default" && is_allow_all(acl) {
                continue; // the VPC's own default NACL does exactly this
            }
            let id = self.id("NetworkAcl", &acl.name);
            self.add(
                &id,
                "AWS::EC2::NetworkAcl",
                vec![("VpcId", r("VPC")), ("Tags", name_tag(&acl.name))],
            );
            for (egress, entries) in [(false, &acl.inbound), (true, &acl.outbound)] {
                for e in entries {
                    let eid = self.id(
                        &id,
                        &format!("{}-{}", if egress { "out" } else { "in" }, e.rule),
                    );
                    let mut props = vec![
                        ("NetworkAclId", r(&id)),
                        ("RuleNumber", n(e.rule)),
                        ("Protocol", n(protocol_number(e.protocol))),
                        (
                            "RuleAction",
                            s(if e.action == Action::Allow {
                                "allow"
                            } else {
                                "deny"
                            }),
                        ),
                        ("Egress", Value::Bool(egress)),
                        ("CidrBlock", s(&e.cidr.to_string())),
                    ];
                    if e.protocol.has_ports() {
                        let p = e.ports.unwrap_or(PortRange { from: 0, to: 65535 });
                        props.push(("PortRange", map(vec![("From", n(p.from)), ("To", n(p.to))])));
                    }
                    if e.protocol == Protocol::Icmp {
                        props.push(("Icmp", map(vec![("Code", n(-1)), ("Type", n(-1))])));
                    }
                    self.add(&eid, "AWS::EC2::NetworkAclEntry", props);
                }
            }
            for (j, sn) in lab.subnets.iter().enumerate() {
                if sn.nacl == k {
                    let sid = self.subnet_ids[j].clone();
                    let aid = self.id(&sid, "nacl-association");
                    self.add(
                        &aid,
                        "AWS::EC2::SubnetNetworkAclAssociation",
                        vec![("SubnetId", r(&sid)), ("NetworkAclId", r(&id))],
                    );
                }
            }
        }
    }

    fn security_groups(&mut self) {
        let lab = self.lab;
        self.sg_ids = lab
            .security_groups
            .iter()
            .map(|g| {
                if g.name == "default" {
                    String::new()
                } else {
                    self.id("SecurityGroup", &g.name)
                }
            })
            .collect();
        for (k, g) in lab.security_groups.iter().enumerate() {
            if g.name == "default" {
                continue; // the VPC's default group: GetAtt VPC.DefaultSecurityGroup
            }
            let id = self.sg_ids[k].clone();
            let mut ingress = vec![];
            let mut egress = vec![];
            let mut separate = vec![];
            for (is_egress, rules) in [(false, &g.ingress), (true, &g.egress)] {
                for rule in rules {
                    let mut p = sg_protocol(rule);
                    match &rule.peer {
                        SgPeer::Cidr(c) => {
                            p.push(("CidrIp", s(&c.to_string())));
                            if is_egress {
                                egress.push(map(p));
                            } else {
                                ingress.push(map(p));
                            }
                        }
                        // SG-to-SG rules are resources of their own: two groups
                        // naming each other inline would be a dependency cycle.
                        SgPeer::Group(other) => separate.push((is_egress, *other, p)),
                    }
                }
            }
            let default_egress = g.egress.len() == 1
                && g.egress[0].protocol == Protocol::All
                && g.egress[0].peer == SgPeer::Cidr("0.0.0.0/0".parse().expect("cidr"));
            let mut props = vec![
                (
                    "GroupDescription",
                    s(&format!("vpcsim security group {}", g.name)),
                ),
                ("VpcId", r("VPC")),
            ];
            if !ingress.is_empty() {
                props.push(("SecurityGroupIngress", seq(ingress)));
            }
            if !default_egress {
                if egress.is_empty() {
                    // Any inline egress rule removes AWS's default allow-all;
                    // one to the loopback allows nothing that leaves the host.
                    egress.push(map(vec![
                        ("IpProtocol", s("-1")),
                        ("CidrIp", s("127.0.0.1/32")),
                        ("Description", s("no egress except the rules below")),
                    ]));
                }
                props.push(("SecurityGroupEgress", seq(egress)));
            }
            props.push(("Tags", name_tag(&g.name)));
            self.add(&id, "AWS::EC2::SecurityGroup", props);
            for (j, (is_egress, other, mut p)) in separate.into_iter().enumerate() {
                let rid = self.id(
                    &id,
                    &format!("{}-{j}", if is_egress { "egress" } else { "ingress" }),
                );
                let peer = self.sg_ref(other);
                p.insert(0, ("GroupId", att(&id, "GroupId")));
                p.push((
                    if is_egress {
                        "DestinationSecurityGroupId"
                    } else {
                        "SourceSecurityGroupId"
                    },
                    peer,
                ));
                self.add(
                    &rid,
                    if is_egress {
                        "AWS::EC2::SecurityGroupEgress"
                    } else {
                        "AWS::EC2::SecurityGroupIngress"
                    },
                    p,
                );
            }
        }
    }

    fn sg_ref(&self, k: usize) -> Value {
        if self.lab.security_groups[k].name == "default" {
            att("VPC", "DefaultSecurityGroup")
        } else {
            att(&self.sg_ids[k], "GroupId")
        }
    }

    fn instances(&mut self) {
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

    fn load_balancers(&mut self) {
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
            let matcher = hc
                .matcher
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
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

    fn endpoints_and_buckets(&mut self) {
        let lab = self.lab;
        let mut ids: Vec<(String, String)> = vec![(lab.vpc_id.clone(), "VPC".into())];
        for ep in &lab.vpc_endpoints {
            let id = self.id("VpcEndpoint", &ep.name);
            let rts: Vec<Value> = ep
                .route_tables
                .iter()
                .filter_map(|&k| self.rt_ids[k].clone())
                .map(|x| r(&x))
                .collect();
            self.add(
                &id,
                "AWS::EC2::VPCEndpoint",
                vec![
                    ("VpcId", r("VPC")),
                    (
                        "ServiceName",
                        single("Fn::Sub", s("com.amazonaws.${AWS::Region}.s3")),
                    ),
                    ("VpcEndpointType", s("Gateway")),
                    ("RouteTableIds", seq(rts)),
                ],
            );
            self.notes.push(format!(
                "endpoint `{}` keeps no fixed id ({} in the lab): AWS names it; the bucket policy refers to it with !Sub",
                ep.name, ep.id
            ));
            self.output(
                &format!("{id}Id"),
                &format!("id of VPC endpoint {}", ep.name),
                r(&id),
            );
            ids.push((ep.id.clone(), id));
        }
        let Some(s3) = &lab.s3 else { return };
        for bucket in &s3.buckets {
            let id = self.id("Bucket", &bucket.name);
            // The lab's objects come back with the bucket when vpcsim reads this template.
            let meta = match &bucket.seed_dir {
                Some(d) => vec![(
                    "Metadata",
                    map(vec![(
                        "vpcsim",
                        map(vec![("seed_dir", s(&d.display().to_string()))]),
                    )]),
                )],
                None => vec![],
            };
            self.add_full(
                &id,
                "AWS::S3::Bucket",
                vec![("BucketName", s(&bucket.name))],
                meta,
            );
            self.output(
                &format!("{id}Name"),
                &format!("bucket {}", bucket.name),
                r(&id),
            );
            if let Some(dir) = &bucket.seed_dir {
                let cmd = format!("aws s3 sync {} s3://${{{id}}}/", dir.display());
                self.notes.push(format!(
                    "objects of bucket `{}`: CloudFormation uploads no objects; after the stack, run the output {id}Upload",
                    bucket.name
                ));
                self.output(
                    &format!("{id}Upload"),
                    &format!("uploads the objects of bucket {}", bucket.name),
                    single("Fn::Sub", s(&cmd)),
                );
            }
            if let Some(policy) = &bucket.policy {
                match serde_json::from_str::<serde_json::Value>(policy) {
                    Ok(doc) => {
                        let doc = json_to_template(&doc, &ids);
                        let pid = self.id(&id, "policy");
                        self.add(
                            &pid,
                            "AWS::S3::BucketPolicy",
                            vec![("Bucket", r(&id)), ("PolicyDocument", doc)],
                        );
                    }
                    Err(e) => self.notes.push(format!(
                        "the policy of bucket `{}` is not JSON ({e}); not exported",
                        bucket.name
                    )),
                }
            }
        }
    }

    /// Web ACLs, their IP sets and one association per load balancer.
    fn web_acls(&mut self) {
        let lab = self.lab;
        for acl in &lab.web_acls {
            let id = self.id("WebAcl", &acl.name);
            let mut sets: Vec<(String, Vec<(&str, Value)>)> = vec![];
            let props = super::wafv2::export_web_acl(acl, &mut |rule, addresses, version| {
                let sid = self.id("IpSet", rule);
                sets.push((
                    sid.clone(),
                    vec![
                        ("Name", s(&format!("{}-{sid}", acl.name))),
                        ("Scope", s("REGIONAL")),
                        ("IPAddressVersion", s(version)),
                        (
                            "Addresses",
                            seq(addresses.iter().map(|a| s(&a.to_string())).collect()),
                        ),
                    ],
                ));
                att(&sid, "Arn")
            });
            for (sid, p) in sets {
                self.add(&sid, "AWS::WAFv2::IPSet", p);
            }
            self.resources.insert(
                s(&id),
                map(vec![
                    ("Type", s("AWS::WAFv2::WebACL")),
                    ("Properties", props),
                ]),
            );
            if let Some(logging) = &acl.logging {
                // WAF takes a log group's ARN without the `:*` that its
                // GetAtt Arn ends with; AWS requires the aws-waf-logs- prefix.
                let group = format!("aws-waf-logs-${{AWS::StackName}}-{}", acl.name);
                let gid = self.id(&id, "log-group");
                self.add(
                    &gid,
                    "AWS::Logs::LogGroup",
                    vec![("LogGroupName", single("Fn::Sub", s(&group)))],
                );
                let mut props = vec![
                    ("ResourceArn", att(&id, "Arn")),
                    (
                        "LogDestinationConfigs",
                        seq(vec![single(
                            "Fn::Sub",
                            s(&format!(
                                "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{group}"
                            )),
                        )]),
                    ),
                ];
                props.extend(super::wafv2::export_logging(logging));
                let lid = self.id(&id, "logging");
                self.add_full(
                    &lid,
                    "AWS::WAFv2::LoggingConfiguration",
                    props,
                    vec![("DependsOn", s(&gid))],
                );
            }
            for &k in &acl.load_balancers {
                let lb = self.lb_ids[k].clone();
                let aid = self.id(&id, &format!("association-{}", lab.load_balancers[k].name));
                self.add(
                    &aid,
                    "AWS::WAFv2::WebACLAssociation",
                    vec![("ResourceArn", r(&lb)), ("WebACLArn", att(&id, "Arn"))],
                );
            }
            self.output(
                &format!("{id}Arn"),
                &format!("ARN of web ACL {}", acl.name),
                att(&id, "Arn"),
            );
        }
    }

    fn flow_logs(&mut self) {
        let lab = self.lab;
        if lab.flow_logs.is_empty() {
            return;
        }
        let bucket = self.id("FlowLogBucket", "");
        let mut any = false;
        for f in &lab.flow_logs {
            let (ty, target) = match f.resource {
                crate::topology::plan::FlowLogResource::Vpc => ("VPC", r("VPC")),
                crate::topology::plan::FlowLogResource::Subnet(k) => {
                    ("Subnet", r(&self.subnet_ids[k].clone()))
                }
                crate::topology::plan::FlowLogResource::Eni(e) => {
                    self.notes.push(format!(
                        "flow log {} on the network interface of `{}`: the template declares no separate ENI to name; add one or log its subnet",
                        f.id, lab.enis[e].node
                    ));
                    continue;
                }
            };
            any = true;
            let interval = if f.interval_s <= 60 { 60 } else { 600 };
            if interval != f.interval_s {
                self.notes.push(format!(
                    "flow log {} aggregates every {} s in the lab; AWS offers 60 or 600, the template says {interval}",
                    f.id, f.interval_s
                ));
            }
            let id = self.id("FlowLog", &f.id);
            self.add(
                &id,
                "AWS::EC2::FlowLog",
                vec![
                    ("ResourceId", target),
                    ("ResourceType", s(ty)),
                    (
                        "TrafficType",
                        s(match f.traffic_type {
                            crate::topology::plan::TrafficType::All => "ALL",
                            crate::topology::plan::TrafficType::Accept => "ACCEPT",
                            crate::topology::plan::TrafficType::Reject => "REJECT",
                        }),
                    ),
                    ("MaxAggregationInterval", n(interval)),
                    ("LogDestinationType", s("s3")),
                    ("LogDestination", att(&bucket, "Arn")),
                ],
            );
        }
        if any {
            self.add(&bucket, "AWS::S3::Bucket", vec![]);
            self.notes.push(
                "flow logs go to a new S3 bucket (the lab writes them to /run/vpcsim/<lab>/flow-logs.log)".into(),
            );
        } else {
            self.used.remove(&bucket);
        }
    }
}

fn is_allow_all(acl: &NaclPlan) -> bool {
    let all = |v: &Vec<NaclEntry>| {
        v.len() == 1
            && v[0].protocol == Protocol::All
            && v[0].action == Action::Allow
            && v[0].cidr.prefix_len() == 0
    };
    all(&acl.inbound) && all(&acl.outbound)
}

fn protocol_number(p: Protocol) -> i64 {
    p.number().map(i64::from).unwrap_or(-1)
}

fn sg_protocol(rule: &SgRulePlan) -> Vec<(&'static str, Value)> {
    match rule.protocol {
        Protocol::All => vec![("IpProtocol", s("-1"))],
        Protocol::Icmp => vec![
            ("IpProtocol", s("icmp")),
            ("FromPort", n(-1)),
            ("ToPort", n(-1)),
        ],
        p => {
            let r = rule.ports.unwrap_or(PortRange { from: 0, to: 65535 });
            vec![
                ("IpProtocol", s(p.name())),
                ("FromPort", n(r.from)),
                ("ToPort", n(r.to)),
            ]
        }
    }
}

fn attr(k: &str, v: &str) -> Value {
    map(vec![("Key", s(k)), ("Value", s(v))])
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

/// A policy document as template values; strings holding a lab id (the
/// VPC's, an endpoint's) become `!Sub` of the resource that has it on AWS.
fn json_to_template(v: &serde_json::Value, ids: &[(String, String)]) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(x) => match x.as_i64() {
            Some(i) => n(i),
            None => s(&x.to_string()),
        },
        serde_json::Value::String(text) => {
            if ids.iter().any(|(id, _)| text.contains(id.as_str())) {
                // `${` of IAM policy variables must not be read by Fn::Sub.
                let mut t = text.replace("${", "${!");
                for (id, logical) in ids {
                    t = t.replace(id.as_str(), &format!("${{{logical}}}"));
                }
                single("Fn::Sub", s(&t))
            } else {
                s(text)
            }
        }
        serde_json::Value::Array(a) => seq(a.iter().map(|x| json_to_template(x, ids)).collect()),
        serde_json::Value::Object(o) => Value::Mapping(
            o.iter()
                .map(|(k, x)| (s(k), json_to_template(x, ids)))
                .collect(),
        ),
    }
}
