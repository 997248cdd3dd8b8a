//! `Fn::GetAtt`: the attributes AWS returns, derived from a resource's
//! properties, its physical id, or placeholders the built lab fills in.

use super::*;
use crate::cloudformation::intrinsics::{Attributes, EvalError};
use crate::topology::plan::aws_id;

/// GetAtt over the resources evaluated so far.
pub(super) struct Atts<'a> {
    pub(super) lab: &'a str,
    pub(super) region: &'a str,
    pub(super) stack: &'a HashMap<String, usize>,
    pub(super) resources: &'a [Resource],
}

impl Attributes for Atts<'_> {
    fn get_att(&self, logical: &str, attr: &str) -> Result<Value, EvalError> {
        let Some(&i) = self.stack.get(logical) else {
            return Err(EvalError {
                message: format!("`{logical}` is not evaluated yet"),
                fix: "add DependsOn or check for a reference cycle".into(),
            });
        };
        let r = &self.resources[i];
        let s = |x: String| Ok(Value::String(x));
        let prop = |k: &str| {
            r.props.get(k).cloned().ok_or_else(|| EvalError {
                message: format!("{logical}.{attr}: the resource has no {k}"),
                fix: format!("give {logical} a {k}"),
            })
        };
        match (r.ty.as_str(), attr) {
            ("AWS::EC2::VPC", "CidrBlock") => prop("CidrBlock"),
            ("AWS::EC2::VPC", "DefaultSecurityGroup") => s(aws_id("sg", self.lab, "default")),
            ("AWS::EC2::VPC", "DefaultNetworkAcl") => s(aws_id("acl", self.lab, "default")),
            ("AWS::EC2::VPC", "VpcId") => s(r.physical.clone()),
            ("AWS::EC2::Subnet", "AvailabilityZone") => {
                prop("AvailabilityZone").or_else(|_| s(format!("{}a", self.region)))
            }
            ("AWS::EC2::Subnet", "CidrBlock") => prop("CidrBlock"),
            ("AWS::EC2::Subnet", "SubnetId") => s(r.physical.clone()),
            ("AWS::EC2::Subnet", "VpcId") => prop("VpcId"),
            ("AWS::EC2::SecurityGroup", "GroupId") => s(r.physical.clone()),
            ("AWS::EC2::SecurityGroup", "VpcId") => prop("VpcId"),
            ("AWS::EC2::EIP", "AllocationId") => s(r.physical.clone()),
            ("AWS::EC2::EIP", "PublicIp") => s(format!("{{{{vpcsim:eip:{}}}}}", r.name)),
            ("AWS::EC2::NatGateway", "NatGatewayId") => s(r.physical.clone()),
            ("AWS::EC2::InternetGateway", "InternetGatewayId") => s(r.physical.clone()),
            ("AWS::EC2::RouteTable", "RouteTableId") => s(r.physical.clone()),
            ("AWS::EC2::NetworkAcl", "Id") => s(r.physical.clone()),
            ("AWS::EC2::Instance", "PrivateIp") => s(ip_placeholder(&r.name, false)),
            ("AWS::EC2::Instance", "PublicIp") => s(ip_placeholder(&r.name, true)),
            ("AWS::EC2::Instance", "AvailabilityZone") => s(format!("{}a", self.region)),
            ("AWS::EC2::Instance", "InstanceId") => s(r.physical.clone()),
            ("AWS::EC2::LaunchTemplate", "LatestVersionNumber" | "DefaultVersionNumber") => {
                s("1".into())
            }
            ("AWS::EC2::LaunchTemplate", "LaunchTemplateId") => s(r.physical.clone()),
            ("AWS::ElasticLoadBalancingV2::LoadBalancer", "DNSName") => s(dns_placeholder(&r.name)),
            ("AWS::ElasticLoadBalancingV2::LoadBalancer", "LoadBalancerFullName") => s(format!(
                "app/{}/{}",
                r.name,
                &aws_id("x", self.lab, &r.name)[3..]
            )),
            ("AWS::ElasticLoadBalancingV2::LoadBalancer", "LoadBalancerName") => s(r.name.clone()),
            ("AWS::ElasticLoadBalancingV2::LoadBalancer", "LoadBalancerArn") => {
                s(r.physical.clone())
            }
            ("AWS::ElasticLoadBalancingV2::LoadBalancer", "CanonicalHostedZoneID") => {
                s("Z35SXDOTRQ7X7K".into())
            }
            ("AWS::ElasticLoadBalancingV2::LoadBalancer", "SecurityGroups") => {
                prop("SecurityGroups")
            }
            ("AWS::ElasticLoadBalancingV2::TargetGroup", "TargetGroupArn") => s(r.physical.clone()),
            ("AWS::ElasticLoadBalancingV2::TargetGroup", "TargetGroupFullName") => s(format!(
                "targetgroup/{}/{}",
                r.name,
                &aws_id("x", self.lab, &r.name)[3..]
            )),
            ("AWS::ElasticLoadBalancingV2::TargetGroup", "TargetGroupName") => s(r.name.clone()),
            ("AWS::ElasticLoadBalancingV2::Listener", "ListenerArn") => s(r.physical.clone()),
            ("AWS::ElasticLoadBalancingV2::ListenerRule", "RuleArn") => s(r.physical.clone()),
            ("AWS::EC2::VPCEndpoint", "Id") => s(r.physical.clone()),
            ("AWS::EC2::VPCEndpoint", "DnsEntries") => {
                Ok(Value::Sequence(vec![Value::String(format!(
                    "Z7HUB22UULQXV:{}.{}.vpce.amazonaws.com",
                    r.physical, self.region
                ))]))
            }
            ("AWS::EC2::VPCEndpoint", "NetworkInterfaceIds") => Ok(Value::Sequence(vec![])),
            ("AWS::S3::Bucket", "Arn") => s(format!("arn:aws:s3:::{}", r.physical)),
            ("AWS::S3::Bucket", "DomainName") => s(format!("{}.s3.amazonaws.com", r.physical)),
            ("AWS::S3::Bucket", "RegionalDomainName") => {
                s(format!("{}.s3.{}.amazonaws.com", r.physical, self.region))
            }
            ("AWS::EC2::FlowLog", "Id") => s(r.physical.clone()),
            (
                ty @ ("AWS::WAFv2::WebACL" | "AWS::WAFv2::IPSet" | "AWS::WAFv2::RegexPatternSet"),
                "Arn",
            ) => s(wafv2_arn(self.region, ty, &r.physical)),
            ("AWS::WAFv2::WebACL" | "AWS::WAFv2::IPSet" | "AWS::WAFv2::RegexPatternSet", "Id") => {
                s(r.physical.split('|').nth(1).unwrap_or_default().to_string())
            }
            ("AWS::WAFv2::WebACL", "LabelNamespace") => s(format!(
                "awswaf:{ACCOUNT}:webacl:{}:",
                r.physical.split('|').next().unwrap_or_default()
            )),
            (ty, _) if !import::SUPPORTED.contains(&ty) => s(format!(
                "{}-{}",
                r.physical,
                attr.to_ascii_lowercase().replace('.', "-")
            )),
            (ty, a) => Err(EvalError {
                message: format!("{ty} has no attribute `{a}` that vpcsim knows"),
                fix: "check the attribute name in the resource type's reference (Return values)"
                    .into(),
            }),
        }
    }
}
