//! `[[flow_log]]`: VPC Flow Logs on the VPC, a subnet or a node, with their
//! traffic type and aggregation interval.

use super::context::Ctx;
use crate::topology::model;
use crate::topology::plan::{aws_id, Eni, FlowLogPlan, FlowLogResource, SubnetPlan, TrafficType};

/// AWS's default aggregation interval.
const DEFAULT_INTERVAL_S: i64 = 600;

impl Ctx {
    /// The `[[flow_log]]` entries against the lab's subnets and ENIs.
    pub(super) fn flow_logs(
        &mut self,
        lab: &str,
        raw: &[model::FlowLog],
        subnets: &[SubnetPlan],
        enis: &[Eni],
    ) -> Vec<FlowLogPlan> {
        let mut out = Vec::new();
        for (i, f) in raw.iter().enumerate() {
            let p = format!("flow_log[{i}]");
            let resource = if f.resource == "vpc" {
                Some(FlowLogResource::Vpc)
            } else if let Some(s) = subnets.iter().position(|s| s.name == f.resource) {
                Some(FlowLogResource::Subnet(s))
            } else if let Some(e) = enis.iter().position(|e| e.node == f.resource) {
                Some(FlowLogResource::Eni(e))
            } else {
                let names: Vec<&str> = subnets
                    .iter()
                    .map(|s| s.name.as_str())
                    .chain(enis.iter().map(|e| e.node.as_str()))
                    .collect();
                self.err(
                    format!("{p}.resource"),
                    format!("`{}` is neither `vpc`, a subnet nor a node", f.resource),
                    format!("use `vpc` or one of: {}", names.join(", ")),
                );
                None
            };
            let traffic_type = match f.traffic_type.as_deref().unwrap_or("ALL") {
                "ALL" => Some(TrafficType::All),
                "ACCEPT" => Some(TrafficType::Accept),
                "REJECT" => Some(TrafficType::Reject),
                other => {
                    self.err(
                        format!("{p}.traffic_type"),
                        format!("unknown traffic type `{other}`"),
                        "use ALL, ACCEPT or REJECT (upper case, as in AWS)",
                    );
                    None
                }
            };
            let interval = f.max_aggregation_interval.unwrap_or(DEFAULT_INTERVAL_S);
            if !(1..=600).contains(&interval) {
                self.err(
                    format!("{p}.max_aggregation_interval"),
                    format!("aggregation interval {interval} s is out of range"),
                    "AWS offers 60 or 600 seconds; labs may use 1 to 600",
                );
            }
            if let (Some(resource), Some(traffic_type)) = (resource, traffic_type) {
                out.push(FlowLogPlan {
                    id: aws_id("fl", lab, &format!("{i}:{}", f.resource)),
                    resource,
                    traffic_type,
                    interval_s: interval.clamp(1, 600) as u32,
                });
            }
        }
        out
    }
}
