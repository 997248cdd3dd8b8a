//! VPC endpoints, S3 buckets and flow logs.

use super::*;

impl<'a> Importer<'a> {
    pub(super) fn endpoints_buckets_flow_logs(&mut self, t: &mut Topology) {
        let res = self.resources;
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::VPCEndpoint") {
            let kind = get_str(&r.props, "VpcEndpointType").unwrap_or_else(|| "Gateway".into());
            let service = get_str(&r.props, "ServiceName").unwrap_or_default();
            if kind != "Gateway" {
                continue;
            }
            if !service.ends_with(".s3") {
                self.warnings.push(format!(
                    "{}: gateway endpoint for {service} is not emulated (only S3)",
                    r.logical
                ));
                continue;
            }
            let rts = strings(get(&r.props, "RouteTableIds"))
                .into_iter()
                .filter_map(|id| self.name_of(r, "RouteTableIds", &id, &["AWS::EC2::RouteTable"]))
                .collect();
            t.vpc_endpoints.push(VpcEndpoint {
                name: r.name.clone(),
                service: "s3".into(),
                kind: "gateway".into(),
                route_tables: rts,
                id: Some(r.physical.clone()),
            });
        }
        for r in res.iter().filter(|r| r.ty == "AWS::S3::Bucket") {
            let mut b = S3Bucket {
                name: r.physical.clone(),
                seed_dir: r.metadata.as_ref().and_then(|m| get_str(m, "seed_dir")),
                policy_file: None,
            };
            for p in res.iter().filter(|p| {
                p.ty == "AWS::S3::BucketPolicy"
                    && get_str(&p.props, "Bucket").as_deref() == Some(r.physical.as_str())
            }) {
                let json = serde_json::to_string_pretty(
                    get(&p.props, "PolicyDocument").unwrap_or(&Value::Null),
                )
                .unwrap_or_default();
                let file = self.scratch.join(format!("{}.json", r.physical));
                if let Err(e) = std::fs::write(&file, json) {
                    self.error(
                        p,
                        "PolicyDocument",
                        format!("cannot write {}: {e}", file.display()),
                        "check the temporary directory".into(),
                    );
                }
                b.policy_file = Some(file.display().to_string());
            }
            t.s3_buckets.push(b);
        }
        for p in res.iter().filter(|p| p.ty == "AWS::S3::BucketPolicy") {
            let b = get_str(&p.props, "Bucket").unwrap_or_default();
            if !t.s3_buckets.iter().any(|x| x.name == b) {
                self.error(
                    p,
                    "Bucket",
                    format!("bucket `{b}` is not an AWS::S3::Bucket of these stacks"),
                    "use Bucket: !Ref YourBucket".into(),
                );
            }
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::FlowLog") {
            let id = get_str(&r.props, "ResourceId").unwrap_or_default();
            let resource = match get_str(&r.props, "ResourceType").as_deref() {
                Some("VPC") => self
                    .resolve(r, "ResourceId", &id, &["AWS::EC2::VPC"])
                    .map(|_| "vpc".to_string()),
                Some("Subnet") => self.name_of(r, "ResourceId", &id, &["AWS::EC2::Subnet"]),
                other => {
                    self.warnings.push(format!(
                        "{}: flow logs on {} are not emulated (VPC and Subnet are)",
                        r.logical,
                        other.unwrap_or("?")
                    ));
                    None
                }
            };
            if let Some(resource) = resource {
                t.flow_logs.push(crate::topology::model::FlowLog {
                    resource,
                    traffic_type: get_str(&r.props, "TrafficType"),
                    max_aggregation_interval: get_int(&r.props, "MaxAggregationInterval"),
                });
            }
        }
    }
}
