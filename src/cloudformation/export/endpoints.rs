//! Gateway endpoints, buckets with their policies, and flow logs.

use super::*;

impl Builder<'_> {
    pub(super) fn endpoints_and_buckets(&mut self) {
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

    pub(super) fn flow_logs(&mut self) {
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
