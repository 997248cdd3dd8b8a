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
//!
//! Each family of resources has its file, in the order [`export`] adds
//! them: `network` (VPC, subnets, gateways, route tables, NACLs, security
//! groups), `instances` (with user data), `load_balancers`, `endpoints`
//! (endpoints, buckets, flow logs), `web_acls`.

mod endpoints;
mod instances;
mod load_balancers;
mod network;
mod web_acls;

use super::template::{single, Mapping, Value};
use crate::topology::plan::*;
use std::collections::HashSet;

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
}
