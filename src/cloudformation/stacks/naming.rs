//! Lab names and physical ids (what `Ref` returns) of a template's
//! resources, and the ARNs derived from them.

use super::*;
use crate::topology::plan::{aws_id, instance_id, subnet_id, wafv2_id};

/// A template's resources as declared, before evaluation.
pub(super) struct Declared<'t> {
    /// Logical ids in template order.
    pub(super) ids: Vec<String>,
    pub(super) bodies: HashMap<String, &'t Value>,
    /// Logical id -> lab name.
    pub(super) names: HashMap<String, String>,
    /// Logical id -> physical id.
    pub(super) physical: HashMap<String, String>,
}

impl Global {
    /// Every resource's logical id, type, lab name and physical id.
    pub(super) fn declare<'t>(
        &mut self,
        at: &StackFile,
        resources: &'t Mapping,
        errors: &mut Vec<CfnError>,
    ) -> Declared<'t> {
        let mut d = Declared {
            ids: vec![],
            bodies: HashMap::new(),
            names: HashMap::new(),
            physical: HashMap::new(),
        };
        for (k, body) in resources {
            let Some(id) = k.as_str() else { continue };
            if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                errors.push(at.error(
                    Some(id),
                    "",
                    "a logical id is alphanumeric".into(),
                    "rename it with letters and digits only".into(),
                ));
            }
            let Some(ty) = body.get("Type").and_then(|t| t.as_str()) else {
                errors.push(at.error(
                    Some(id),
                    "Type",
                    "the resource has no Type".into(),
                    "give it a Type such as AWS::EC2::Subnet".into(),
                ));
                continue;
            };
            let name = self.claim(id, body);
            let physical = physical_id(&self.lab, &self.region, &at.name, id, ty, &name, body);
            d.names.insert(id.to_string(), name);
            d.physical.insert(id.to_string(), physical);
            d.ids.push(id.to_string());
            d.bodies.insert(id.to_string(), body);
        }
        d
    }

    /// The lab name of a resource: its Name tag if usable, else its logical id in kebab case.
    fn name_for(&self, id: &str, body: &Value, ty: &str) -> String {
        let tag = body
            .get("Properties")
            .and_then(|p| p.get("Tags"))
            .and_then(|t| t.as_sequence())
            .and_then(|tags| {
                tags.iter()
                    .find(|t| t.get("Key").and_then(|k| k.as_str()) == Some("Name"))
            })
            .and_then(|t| t.get("Value"))
            .and_then(|v| v.as_str().map(String::from));
        let mut base = match tag {
            // `main` is the VPC's implicit main table in a lab: a table tagged
            // so (an exported lab's) is an ordinary one here, as on AWS.
            Some(t) if t == "main" && ty == "AWS::EC2::RouteTable" => import::kebab(id, 31),
            Some(t) if import::valid_name(&t) => t,
            _ => import::kebab(id, 31),
        };
        if ty == "AWS::EC2::VPC" {
            base = "vpc".into();
        }
        let space = name_space(ty);
        let mut name = base.clone();
        let mut i = 2;
        while self.names.contains(&(space.to_string(), name.clone())) {
            let suffix = format!("-{i}");
            name = format!("{}{suffix}", &base[..base.len().min(31 - suffix.len())]);
            i += 1;
        }
        name
    }

    fn claim(&mut self, id: &str, body: &Value) -> String {
        let ty = body
            .get("Type")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        let n = self.name_for(id, body, ty);
        self.names.insert((name_space(ty).to_string(), n.clone()));
        n
    }
}

/// Kinds whose names share one space: everything that becomes a node.
fn name_space(ty: &str) -> &str {
    match ty {
        "AWS::EC2::Instance"
        | "AWS::EC2::NatGateway"
        | "AWS::AutoScaling::AutoScalingGroup"
        | "AWS::EC2::VPCEndpoint"
        | "AWS::ElasticLoadBalancingV2::LoadBalancer" => "node",
        other => other,
    }
}

/// What `Ref` returns for a resource: ids derived from the lab and its name,
/// as the TOML path derives them (security groups, the VPC, endpoints).
fn physical_id(
    lab: &str,
    region: &str,
    stack: &str,
    id: &str,
    ty: &str,
    name: &str,
    body: &Value,
) -> String {
    let arn = |kind: &str| {
        format!(
            "arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:{kind}/{name}/{}",
            &aws_id("x", lab, &format!("{stack}/{id}"))[3..]
        )
    };
    match ty {
        "AWS::EC2::VPC" => aws_id("vpc", lab, "vpc"),
        // The ids the lab's IMDS gives: from the name each becomes in the lab.
        "AWS::EC2::Instance" => instance_id(lab, name),
        "AWS::EC2::Subnet" => subnet_id(lab, name),
        "AWS::EC2::SecurityGroup" | "AWS::EC2::VPCEndpoint" => {
            aws_id(import::id_prefix(ty), lab, name)
        }
        "AWS::ElasticLoadBalancingV2::LoadBalancer" => arn("loadbalancer/app"),
        "AWS::ElasticLoadBalancingV2::TargetGroup" => arn("targetgroup"),
        "AWS::ElasticLoadBalancingV2::Listener" => arn("listener/app"),
        "AWS::ElasticLoadBalancingV2::ListenerRule" => arn("listener-rule/app"),
        "AWS::S3::Bucket" => body
            .get("Properties")
            .and_then(|p| p.get("BucketName"))
            .and_then(|b| b.as_str().map(String::from))
            .unwrap_or_else(|| import::kebab(&format!("{stack}-{id}"), 63)),
        "AWS::AutoScaling::AutoScalingGroup" => format!("{stack}-{id}"),
        "AWS::WAFv2::WebACL" | "AWS::WAFv2::IPSet" | "AWS::WAFv2::RegexPatternSet" => {
            // AWS's Ref: name|id|scope; the name is the Name property when written out.
            let n = body
                .get("Properties")
                .and_then(|p| p.get("Name"))
                .and_then(|b| b.as_str())
                .unwrap_or(name);
            format!("{n}|{}|REGIONAL", wafv2_id(lab, n))
        }
        t if import::SUPPORTED.contains(&t) => {
            aws_id(import::id_prefix(t), lab, &format!("{stack}/{id}"))
        }
        // Not emulated: a stand-in id so references resolve.
        _ => format!(
            "standin-{}",
            &aws_id("x", lab, &format!("{stack}/{id}"))[3..]
        ),
    }
}

/// The ARN of a WAFv2 resource from its `Ref` (`name|id|scope`).
pub fn wafv2_arn(region: &str, ty: &str, physical: &str) -> String {
    let kind = match ty {
        "AWS::WAFv2::WebACL" => "webacl",
        "AWS::WAFv2::IPSet" => "ipset",
        _ => "regexpatternset",
    };
    let mut parts = physical.split('|');
    let (name, id) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    format!("arn:aws:wafv2:{region}:{ACCOUNT}:regional/{kind}/{name}/{id}")
}
