//! Evaluated CloudFormation resources -> the [`Topology`] a TOML file would
//! give, so validation and everything after it is shared with TOML labs.
//!
//! Names: a resource's `Name` tag when it is a valid lab name, else its
//! logical id in kebab case (`PublicSubnet1` -> `public-subnet-1`): `trace`,
//! `probe`, `graph` and `status` print these. Physical ids (what `Ref`
//! returns) are derived from the lab and the name, the way the TOML path
//! derives them, so an id a stack passes on is the one the lab uses.

mod endpoints;
mod instances;
mod load_balancers;
mod network;

use super::intrinsics::scalar;
use super::stacks::{CfnError, Resource};
use super::template::Value;
use super::wafv2::{self, Set};
use crate::topology::model::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Resource types vpcsim builds.
pub const SUPPORTED: &[&str] = &[
    "AWS::EC2::VPC",
    "AWS::EC2::Subnet",
    "AWS::EC2::InternetGateway",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::EC2::RouteTable",
    "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::NatGateway",
    "AWS::EC2::EIP",
    "AWS::EC2::EIPAssociation",
    "AWS::EC2::NetworkAcl",
    "AWS::EC2::NetworkAclEntry",
    "AWS::EC2::SubnetNetworkAclAssociation",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::EC2::Instance",
    "AWS::EC2::LaunchTemplate",
    "AWS::AutoScaling::AutoScalingGroup",
    "AWS::ElasticLoadBalancingV2::LoadBalancer",
    "AWS::ElasticLoadBalancingV2::TargetGroup",
    "AWS::ElasticLoadBalancingV2::Listener",
    "AWS::ElasticLoadBalancingV2::ListenerRule",
    "AWS::EC2::VPCEndpoint",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::EC2::FlowLog",
    "AWS::WAFv2::WebACL",
    "AWS::WAFv2::IPSet",
    "AWS::WAFv2::RegexPatternSet",
    "AWS::WAFv2::WebACLAssociation",
    "AWS::WAFv2::LoggingConfiguration",
];

/// Required properties per type (AWS's, for what vpcsim reads).
pub fn required(ty: &str) -> &'static [&'static str] {
    match ty {
        "AWS::EC2::VPC" => &["CidrBlock"],
        "AWS::EC2::Subnet" => &["VpcId", "CidrBlock"],
        "AWS::EC2::VPCGatewayAttachment" => &["VpcId"],
        "AWS::EC2::RouteTable" => &["VpcId"],
        "AWS::EC2::Route" => &["RouteTableId"],
        "AWS::EC2::SubnetRouteTableAssociation" => &["SubnetId", "RouteTableId"],
        "AWS::EC2::NatGateway" => &["SubnetId"],
        "AWS::EC2::NetworkAcl" => &["VpcId"],
        "AWS::EC2::NetworkAclEntry" => &["NetworkAclId", "RuleNumber", "Protocol", "RuleAction"],
        "AWS::EC2::SubnetNetworkAclAssociation" => &["SubnetId", "NetworkAclId"],
        "AWS::EC2::SecurityGroup" => &["GroupDescription"],
        "AWS::EC2::SecurityGroupIngress" => &["IpProtocol"],
        "AWS::EC2::SecurityGroupEgress" => &["GroupId", "IpProtocol"],
        "AWS::EC2::LaunchTemplate" => &["LaunchTemplateData"],
        "AWS::AutoScaling::AutoScalingGroup" => &["MinSize", "MaxSize"],
        "AWS::ElasticLoadBalancingV2::Listener" => &["LoadBalancerArn", "DefaultActions"],
        "AWS::ElasticLoadBalancingV2::ListenerRule" => {
            &["ListenerArn", "Priority", "Conditions", "Actions"]
        }
        "AWS::EC2::VPCEndpoint" => &["VpcId", "ServiceName"],
        "AWS::S3::BucketPolicy" => &["Bucket", "PolicyDocument"],
        "AWS::EC2::FlowLog" => &["ResourceId", "ResourceType"],
        "AWS::WAFv2::WebACL" => &["DefaultAction", "Scope", "VisibilityConfig"],
        "AWS::WAFv2::IPSet" => &["Addresses", "IPAddressVersion", "Scope"],
        "AWS::WAFv2::RegexPatternSet" => &["RegularExpressionList", "Scope"],
        "AWS::WAFv2::WebACLAssociation" => &["ResourceArn", "WebACLArn"],
        "AWS::WAFv2::LoggingConfiguration" => &["LogDestinationConfigs", "ResourceArn"],
        _ => &[],
    }
}

/// The id prefix of a type's physical ids (`vpc-…`).
pub fn id_prefix(ty: &str) -> &'static str {
    match ty {
        "AWS::EC2::VPC" => "vpc",
        "AWS::EC2::Subnet" => "subnet",
        "AWS::EC2::InternetGateway" => "igw",
        "AWS::EC2::RouteTable" => "rtb",
        "AWS::EC2::NatGateway" => "nat",
        "AWS::EC2::EIP" => "eipalloc",
        "AWS::EC2::NetworkAcl" => "acl",
        "AWS::EC2::SecurityGroup" => "sg",
        "AWS::EC2::Instance" => "i",
        "AWS::EC2::LaunchTemplate" => "lt",
        "AWS::EC2::VPCEndpoint" => "vpce",
        "AWS::EC2::FlowLog" => "fl",
        _ => "vpcsim",
    }
}

/// `PublicSubnet1` -> `public-subnet-1`, at most `max` characters.
pub fn kebab(id: &str, max: usize) -> String {
    let chars: Vec<char> = id.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
            continue;
        }
        if i > 0 && !out.is_empty() && !out.ends_with('-') {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let boundary = (c.is_ascii_uppercase()
                && (prev.is_ascii_lowercase() || prev.is_ascii_digit()))
                || (c.is_ascii_uppercase() && prev.is_ascii_uppercase() && next_lower)
                || (c.is_ascii_digit() && prev.is_ascii_alphabetic());
            if boundary {
                out.push('-');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    let out = out.trim_start_matches(|c: char| !c.is_ascii_lowercase());
    let mut s: String = out.chars().take(max).collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() {
        "r".into()
    } else {
        s
    }
}

/// Whether `name` can be a lab node name as written (`^[a-z][a-z0-9-]{0,30}$`).
pub fn valid_name(name: &str) -> bool {
    name.len() <= 31
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// A workload chosen for an instance, launch template or auto scaling group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    ModelV1,
    ModelV2,
    /// HTTP 200 on the ports target groups and health checks use.
    StandIn,
    /// The template's own user data, as written.
    UserData,
    Nothing,
}

impl Run {
    pub fn parse(s: &str) -> Option<Run> {
        Some(match s {
            "model-v1" => Run::ModelV1,
            "model-v2" => Run::ModelV2,
            "stand-in" => Run::StandIn,
            "user-data" => Run::UserData,
            "none" => Run::Nothing,
            _ => return None,
        })
    }
}

pub const RUN_VALUES: &str = "model-v1, model-v2, stand-in, user-data, none";

/// Builds the topology from every stack's evaluated resources.
pub struct Importer<'a> {
    pub lab: &'a str,
    pub region: &'a str,
    pub resources: &'a [Resource],
    /// `--run NAME=WORKLOAD`: NAME is a logical id or a lab name.
    pub runs: &'a [(String, Run)],
    /// Where bucket policies are written for validation to read.
    pub scratch: &'a Path,
    pub errors: Vec<CfnError>,
    pub warnings: Vec<String>,
    by_id: HashMap<String, usize>,
}

fn get<'v>(props: &'v Value, key: &str) -> Option<&'v Value> {
    props.get(key)
}

fn get_str(props: &Value, key: &str) -> Option<String> {
    get(props, key).and_then(scalar)
}

fn get_int(props: &Value, key: &str) -> Option<i64> {
    get_str(props, key).and_then(|s| s.parse().ok())
}

fn get_bool(props: &Value, key: &str) -> Option<bool> {
    get_str(props, key).map(|s| s.eq_ignore_ascii_case("true"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(s)) => s.iter().filter_map(scalar).collect(),
        Some(other) => scalar(other).into_iter().collect(),
        None => vec![],
    }
}

fn tg_attributes(props: &Value, key: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(Value::Sequence(a)) = get(props, key) {
        for x in a {
            if let (Some(k), Some(v)) = (get_str(x, "Key"), get_str(x, "Value")) {
                m.insert(k, v);
            }
        }
    }
    m
}

impl<'a> Importer<'a> {
    pub fn new(
        lab: &'a str,
        region: &'a str,
        resources: &'a [Resource],
        runs: &'a [(String, Run)],
        scratch: &'a Path,
    ) -> Self {
        let by_id = resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r.physical.clone(), i))
            .collect();
        Importer {
            lab,
            region,
            resources,
            runs,
            scratch,
            errors: vec![],
            warnings: vec![],
            by_id,
        }
    }

    fn error(&mut self, r: &Resource, property: &str, message: String, fix: String) {
        self.errors.push(CfnError {
            file: r.file.clone(),
            logical: Some(r.logical.clone()),
            property: Some(property.to_string()),
            message,
            fix,
        });
    }

    fn of_type(&self, ty: &str) -> impl Iterator<Item = &'a Resource> + '_ {
        let ty = ty.to_string();
        self.resources.iter().filter(move |r| r.ty == ty)
    }

    /// The resource a physical id in `property` of `r` names, checked against `types`.
    fn resolve(
        &mut self,
        r: &Resource,
        property: &str,
        id: &str,
        types: &[&str],
    ) -> Option<&'a Resource> {
        match self.by_id.get(id).map(|&i| &self.resources[i]) {
            Some(t) if types.contains(&t.ty.as_str()) => Some(t),
            Some(t) => {
                let (tl, tt) = (t.logical.clone(), t.ty.clone());
                self.error(
                    r,
                    property,
                    format!("`{id}` is {tl} ({tt}), not a {}", types.join(" or ")),
                    format!("reference a {} here", types.join(" or ")),
                );
                None
            }
            None => {
                let known: Vec<String> = self
                    .resources
                    .iter()
                    .filter(|x| types.contains(&x.ty.as_str()))
                    .map(|x| format!("{} ({})", x.logical, x.physical))
                    .collect();
                self.error(
                    r,
                    property,
                    format!("`{id}` is not a {} of these stacks", types.join(" or ")),
                    format!(
                        "use !Ref to one of: {}",
                        if known.is_empty() {
                            "(none declared)".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                None
            }
        }
    }

    fn name_of(
        &mut self,
        r: &Resource,
        property: &str,
        id: &str,
        types: &[&str],
    ) -> Option<String> {
        if types.contains(&"AWS::EC2::SecurityGroup")
            && id == crate::topology::plan::aws_id("sg", self.lab, "default")
        {
            return Some("default".into()); // GetAtt VPC.DefaultSecurityGroup
        }
        self.resolve(r, property, id, types).map(|t| t.name.clone())
    }

    fn run_for(&self, keys: &[&str], meta: Option<&Value>) -> Option<Run> {
        for (k, run) in self.runs {
            if keys.contains(&k.as_str()) {
                return Some(run.clone());
            }
        }
        meta.and_then(|m| get_str(m, "run"))
            .and_then(|s| Run::parse(&s))
    }

    pub fn build(mut self) -> (Option<Topology>, Vec<CfnError>, Vec<String>) {
        let vpcs: Vec<&Resource> = self.of_type("AWS::EC2::VPC").collect();
        let vpc = match vpcs.as_slice() {
            [one] => *one,
            [] => {
                self.errors.push(CfnError {
                    file: self
                        .resources
                        .first()
                        .map(|r| r.file.clone())
                        .unwrap_or_default(),
                    logical: None,
                    property: None,
                    message: "no stack declares an AWS::EC2::VPC".into(),
                    fix: "add the network stack (the one with the VPC) first on the command line"
                        .into(),
                });
                return (None, self.errors, self.warnings);
            }
            [first, second, ..] => {
                let (f, s) = (*first, *second);
                self.error(
                    s,
                    "Type",
                    format!(
                        "a second VPC (the first is {} in {})",
                        f.logical,
                        f.file.display()
                    ),
                    "vpcsim emulates one VPC per lab: bring each VPC up as its own lab".into(),
                );
                return (None, self.errors, self.warnings);
            }
        };
        let mut t = Topology {
            name: self.lab.to_string(),
            region: self.region.to_string(),
            vpc: Vpc {
                cidr: get_str(&vpc.props, "CidrBlock").unwrap_or_default(),
            },
            internet: Internet::default(),
            subnets: vec![],
            internet_gateway: None,
            nat_gateways: vec![],
            route_tables: vec![],
            nacls: vec![],
            security_groups: vec![],
            instances: vec![],
            target_groups: vec![],
            load_balancers: vec![],
            containers: vec![],
            vpc_endpoints: vec![],
            s3_buckets: vec![],
            flow_logs: vec![],
            web_acls: vec![],
            origins: BTreeMap::new(),
        };
        self.network(&mut t);
        self.security_groups(&mut t);
        let registrations = self.instances(&mut t);
        self.load_balancers(&mut t, &registrations);
        self.stand_ins(&mut t);
        self.endpoints_buckets_flow_logs(&mut t);
        self.web_acls(&mut t);
        (Some(t), self.errors, self.warnings)
    }
}

impl Importer<'_> {
    /// Web ACLs with their IP and regex pattern sets, associated with load
    /// balancers by `AWS::WAFv2::WebACLAssociation`.
    fn web_acls(&mut self, t: &mut Topology) {
        let res = self.resources;
        let region = self.region;
        let arn = |r: &Resource| super::stacks::wafv2_arn(region, &r.ty, &r.physical);
        let set = |a: &str| {
            res.iter()
                .find(|x| x.ty.starts_with("AWS::WAFv2::") && arn(x) == a)
                .and_then(|x| match x.ty.as_str() {
                    "AWS::WAFv2::IPSet" => Some(Set::Ip(strings(get(&x.props, "Addresses")))),
                    "AWS::WAFv2::RegexPatternSet" => {
                        Some(Set::Regex(strings(get(&x.props, "RegularExpressionList"))))
                    }
                    _ => None,
                })
        };
        let mut acls: HashMap<String, usize> = HashMap::new();
        for r in res.iter().filter(|r| r.ty == "AWS::WAFv2::WebACL") {
            let name = r.physical.split('|').next().unwrap_or(&r.name);
            match wafv2::import_web_acl(name, &r.props, &set) {
                Ok((acl, warnings)) => {
                    self.warnings
                        .extend(warnings.into_iter().map(|w| format!("{}: {w}", r.logical)));
                    acls.insert(arn(r), t.web_acls.len());
                    t.web_acls.push(acl);
                }
                Err((property, message, fix)) => self.error(r, &property, message, fix),
            }
        }
        for a in res
            .iter()
            .filter(|r| r.ty == "AWS::WAFv2::WebACLAssociation")
        {
            let lb = self.name_of(
                a,
                "ResourceArn",
                &get_str(&a.props, "ResourceArn").unwrap_or_default(),
                &["AWS::ElasticLoadBalancingV2::LoadBalancer"],
            );
            let acl = get_str(&a.props, "WebACLArn").unwrap_or_default();
            match (lb, acls.get(&acl)) {
                (Some(lb), Some(&i)) => t.web_acls[i].load_balancers.push(lb),
                (_, None) => self.error(
                    a,
                    "WebACLArn",
                    format!("`{acl}` is not an AWS::WAFv2::WebACL of these stacks"),
                    "use WebACLArn: !GetAtt YourWebAcl.Arn".into(),
                ),
                (None, _) => {}
            }
        }
        // Logging is opt-in per web ACL, as on AWS; records go to the lab's
        // WAF log whatever the destination.
        for c in res
            .iter()
            .filter(|r| r.ty == "AWS::WAFv2::LoggingConfiguration")
        {
            let acl = get_str(&c.props, "ResourceArn").unwrap_or_default();
            let Some(&i) = acls.get(&acl) else {
                self.error(
                    c,
                    "ResourceArn",
                    format!("`{acl}` is not an AWS::WAFv2::WebACL of these stacks"),
                    "use ResourceArn: !GetAtt YourWebAcl.Arn".into(),
                );
                continue;
            };
            match wafv2::import_logging(&c.props) {
                Ok(l) => t.web_acls[i].logging = Some(l),
                Err((property, message, fix)) => self.error(c, &property, message, fix),
            }
        }
    }
}

/// Records that lab object `name` comes from resource `r`.
fn origin(t: &mut Topology, name: &str, r: &Resource) {
    let tag = match get(&r.props, "Tags") {
        Some(Value::Sequence(tags)) => tags
            .iter()
            .find(|x| get_str(x, "Key").as_deref() == Some("Name"))
            .and_then(|x| get_str(x, "Value")),
        _ => None,
    };
    t.origins.insert(
        name.to_string(),
        crate::topology::plan::Origin {
            stack: r.stack.clone(),
            logical_id: r.logical.clone(),
            name_tag: tag,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kebab_names() {
        assert_eq!(kebab("PublicSubnet1", 31), "public-subnet-1");
        assert_eq!(kebab("VPC", 31), "vpc");
        assert_eq!(kebab("AppASG", 31), "app-asg");
        assert_eq!(kebab("ALBSecurityGroup", 31), "alb-security-group");
        assert_eq!(kebab("NatGatewayAZ2", 31), "nat-gateway-az-2");
        assert!(valid_name(&kebab(
            "A_very_Long_Logical_Id_That_Goes_On_And_On",
            31
        )));
    }
}
