//! Evaluated CloudFormation resources -> the [`Topology`] a TOML file would
//! give, so validation and everything after it is shared with TOML labs.
//!
//! Names: a resource's `Name` tag when it is a valid lab name, else its
//! logical id in kebab case (`PublicSubnet1` -> `public-subnet-1`): `trace`,
//! `probe`, `graph` and `status` print these. Physical ids (what `Ref`
//! returns) are derived from the lab and the name, the way the TOML path
//! derives them, so an id a stack passes on is the one the lab uses.

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

    fn network(&mut self, t: &mut Topology) {
        let res = self.resources;
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::InternetGateway") {
            if t.internet_gateway.is_some() {
                self.error(
                    r,
                    "Type",
                    "a second internet gateway".into(),
                    "a VPC has at most one internet gateway".into(),
                );
            }
            t.internet_gateway = Some(InternetGateway {
                name: r.name.clone(),
            });
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::Subnet") {
            let az = get_str(&r.props, "AvailabilityZone")
                .unwrap_or_else(|| format!("{}a", self.region));
            t.subnets.push(Subnet {
                name: r.name.clone(),
                cidr: get_str(&r.props, "CidrBlock").unwrap_or_default(),
                az,
                route_table: None,
                nacl: None,
                map_public_ip: get_bool(&r.props, "MapPublicIpOnLaunch").unwrap_or(false),
            });
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::NatGateway") {
            let Some(subnet) = self.name_of(
                r,
                "SubnetId",
                &get_str(&r.props, "SubnetId").unwrap_or_default(),
                &["AWS::EC2::Subnet"],
            ) else {
                continue;
            };
            if get_str(&r.props, "ConnectivityType").as_deref() == Some("private") {
                self.warnings.push(format!(
                    "{}: a private NAT gateway is built as a public one",
                    r.logical
                ));
            }
            origin(t, &r.name, r);
            t.nat_gateways.push(NatGateway {
                name: r.name.clone(),
                subnet,
                elastic_ip: None,
            });
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::RouteTable") {
            t.route_tables.push(RouteTable {
                name: r.name.clone(),
                main: false,
                routes: vec![],
            });
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::Route") {
            let Some(rt) = self.name_of(
                r,
                "RouteTableId",
                &get_str(&r.props, "RouteTableId").unwrap_or_default(),
                &["AWS::EC2::RouteTable"],
            ) else {
                continue;
            };
            let Some(dest) = get_str(&r.props, "DestinationCidrBlock") else {
                self.warnings.push(format!(
                    "{}: only IPv4 routes (DestinationCidrBlock) are emulated; route skipped",
                    r.logical
                ));
                continue;
            };
            let target = if let Some(g) = get_str(&r.props, "GatewayId") {
                self.name_of(r, "GatewayId", &g, &["AWS::EC2::InternetGateway"])
            } else if let Some(n) = get_str(&r.props, "NatGatewayId") {
                self.name_of(r, "NatGatewayId", &n, &["AWS::EC2::NatGateway"])
            } else if let Some(i) = get_str(&r.props, "InstanceId") {
                self.name_of(r, "InstanceId", &i, &["AWS::EC2::Instance"])
            } else {
                self.warnings.push(format!("{}: route target not emulated (only GatewayId, NatGatewayId, InstanceId); route skipped", r.logical));
                None
            };
            if let (Some(target), Some(table)) =
                (target, t.route_tables.iter_mut().find(|x| x.name == rt))
            {
                table.routes.push(Route {
                    destination: dest,
                    target,
                });
            }
        }
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::EC2::SubnetRouteTableAssociation")
        {
            let sn = self.name_of(
                r,
                "SubnetId",
                &get_str(&r.props, "SubnetId").unwrap_or_default(),
                &["AWS::EC2::Subnet"],
            );
            let rt = self.name_of(
                r,
                "RouteTableId",
                &get_str(&r.props, "RouteTableId").unwrap_or_default(),
                &["AWS::EC2::RouteTable"],
            );
            if let (Some(sn), Some(rt)) = (sn, rt) {
                if let Some(s) = t.subnets.iter_mut().find(|s| s.name == sn) {
                    if s.route_table.is_some() {
                        self.error(
                            r,
                            "SubnetId",
                            format!("subnet {sn} is associated with a second route table"),
                            "a subnet has one route table association".into(),
                        );
                    }
                    s.route_table = Some(rt);
                }
            }
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::NetworkAcl") {
            t.nacls.push(Nacl {
                name: r.name.clone(),
                inbound: vec![],
                outbound: vec![],
            });
        }
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::NetworkAclEntry") {
            let Some(acl) = self.name_of(
                r,
                "NetworkAclId",
                &get_str(&r.props, "NetworkAclId").unwrap_or_default(),
                &["AWS::EC2::NetworkAcl"],
            ) else {
                continue;
            };
            let Some(cidr) = get_str(&r.props, "CidrBlock") else {
                self.error(
                    r,
                    "CidrBlock",
                    "no CidrBlock (IPv6 entries are not emulated)".into(),
                    "give the entry an IPv4 CidrBlock".into(),
                );
                continue;
            };
            let protocol = get_str(&r.props, "Protocol").unwrap_or_default();
            let ports = get(&r.props, "PortRange").map(|p| {
                let (a, b) = (
                    get_int(p, "From").unwrap_or(0),
                    get_int(p, "To").unwrap_or(65535),
                );
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            });
            let rule = NaclRule {
                rule: get_int(&r.props, "RuleNumber").unwrap_or(0),
                protocol: protocol.clone(),
                ports: if matches!(protocol.as_str(), "6" | "17" | "tcp" | "udp") {
                    ports
                } else {
                    None
                },
                cidr,
                action: get_str(&r.props, "RuleAction").unwrap_or_default(),
            };
            let egress = get_bool(&r.props, "Egress").unwrap_or(false);
            if let Some(n) = t.nacls.iter_mut().find(|n| n.name == acl) {
                if egress {
                    n.outbound.push(rule)
                } else {
                    n.inbound.push(rule)
                }
            }
        }
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::EC2::SubnetNetworkAclAssociation")
        {
            let sn = self.name_of(
                r,
                "SubnetId",
                &get_str(&r.props, "SubnetId").unwrap_or_default(),
                &["AWS::EC2::Subnet"],
            );
            let acl = self.name_of(
                r,
                "NetworkAclId",
                &get_str(&r.props, "NetworkAclId").unwrap_or_default(),
                &["AWS::EC2::NetworkAcl"],
            );
            if let (Some(sn), Some(acl)) = (sn, acl) {
                if let Some(s) = t.subnets.iter_mut().find(|s| s.name == sn) {
                    s.nacl = Some(acl);
                }
            }
        }
    }

    fn sg_rule(&mut self, r: &Resource, prop: &str, x: &Value, egress: bool) -> Option<SgRule> {
        let proto = get_str(x, "IpProtocol").unwrap_or_default();
        let (from, to) = (get_int(x, "FromPort"), get_int(x, "ToPort"));
        let ports = match (proto.as_str(), from, to) {
            ("tcp" | "udp" | "6" | "17", Some(a), Some(b)) if a == b => Some(a.to_string()),
            ("tcp" | "udp" | "6" | "17", Some(a), Some(b)) => Some(format!("{a}-{b}")),
            _ => None,
        };
        let peer_key = if egress {
            "DestinationSecurityGroupId"
        } else {
            "SourceSecurityGroupId"
        };
        let sg = match get_str(x, peer_key) {
            Some(id) => Some(self.name_of(
                r,
                &format!("{prop}.{peer_key}"),
                &id,
                &["AWS::EC2::SecurityGroup"],
            )?),
            None => None,
        };
        let cidr = get_str(x, "CidrIp");
        if sg.is_none() && cidr.is_none() {
            self.warnings.push(format!("{}: {prop}: only CidrIp and security group peers are emulated (IPv6, prefix lists are not); rule skipped", r.logical));
            return None;
        }
        Some(SgRule {
            protocol: proto,
            ports,
            cidr,
            source_sg: if egress { None } else { sg.clone() },
            destination_sg: if egress { sg } else { None },
            description: get_str(x, "Description"),
        })
    }

    fn security_groups(&mut self, t: &mut Topology) {
        let res = self.resources;
        for r in res.iter().filter(|r| r.ty == "AWS::EC2::SecurityGroup") {
            let mut g = SecurityGroup {
                name: r.name.clone(),
                description: get_str(&r.props, "GroupDescription"),
                ingress: vec![],
                egress: None,
            };
            if let Some(Value::Sequence(rules)) = get(&r.props, "SecurityGroupIngress") {
                for (k, x) in rules.iter().enumerate() {
                    if let Some(rule) =
                        self.sg_rule(r, &format!("SecurityGroupIngress[{k}]"), x, false)
                    {
                        g.ingress.push(rule);
                    }
                }
            }
            if let Some(Value::Sequence(rules)) = get(&r.props, "SecurityGroupEgress") {
                let mut out = vec![];
                for (k, x) in rules.iter().enumerate() {
                    if let Some(rule) =
                        self.sg_rule(r, &format!("SecurityGroupEgress[{k}]"), x, true)
                    {
                        out.push(rule);
                    }
                }
                g.egress = Some(out);
            }
            t.security_groups.push(g);
        }
        for r in res.iter().filter(|r| {
            r.ty == "AWS::EC2::SecurityGroupIngress" || r.ty == "AWS::EC2::SecurityGroupEgress"
        }) {
            let egress = r.ty.ends_with("Egress");
            let Some(gid) = get_str(&r.props, "GroupId") else {
                self.error(r, "GroupId", "no GroupId".into(), "name the group the rule belongs to: GroupId: !GetAtt Sg.GroupId (GroupName is for default VPCs)".into());
                continue;
            };
            let Some(group) = self.name_of(r, "GroupId", &gid, &["AWS::EC2::SecurityGroup"]) else {
                continue;
            };
            let Some(rule) = self.sg_rule(r, "", &r.props, egress) else {
                continue;
            };
            let Some(g) = t.security_groups.iter_mut().find(|g| g.name == group) else {
                // The VPC's default group: rules added to it extend the implicit one.
                self.warnings.push(format!(
                    "{}: rules on the VPC's default security group are not emulated; skipped",
                    r.logical
                ));
                continue;
            };
            if egress {
                // AWS adds the default allow-all only to a group created
                // without egress rules, and CloudFormation strips it once an
                // egress rule is added (aws-semantics.md): the group's
                // egress is then its listed rules only.
                let e = g.egress.get_or_insert_with(Vec::new);
                e.push(rule);
            } else {
                g.ingress.push(rule);
            }
        }
    }

    /// Instances, launch template + auto scaling group instances, interface
    /// endpoints' ENIs. Returns target group registrations (tg id -> names).
    fn instances(&mut self, t: &mut Topology) -> HashMap<String, Vec<String>> {
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

    fn sg_names(&mut self, r: &Resource, ids: &[String]) -> Vec<String> {
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
        }
    }

    fn load_balancers(&mut self, t: &mut Topology, registrations: &HashMap<String, Vec<String>>) {
        let res = self.resources;
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::ElasticLoadBalancingV2::TargetGroup")
        {
            if get_str(&r.props, "TargetType").is_some_and(|x| x != "instance") {
                self.warnings.push(format!(
                    "{}: only TargetType instance is emulated; the group gets no targets",
                    r.logical
                ));
            }
            let mut targets = vec![];
            if let Some(Value::Sequence(ts)) = get(&r.props, "Targets") {
                for x in ts {
                    let Some(id) = get_str(x, "Id") else { continue };
                    let Some(n) = self.name_of(r, "Targets", &id, &["AWS::EC2::Instance"]) else {
                        continue;
                    };
                    targets.push(match get_int(x, "Port") {
                        Some(p) => format!("{n}:{p}"),
                        None => n,
                    });
                }
            }
            targets.extend(registrations.get(&r.physical).cloned().unwrap_or_default());
            let attrs = tg_attributes(&r.props, "TargetGroupAttributes");
            let hc_port = get_str(&r.props, "HealthCheckPort")
                .filter(|p| p != "traffic-port")
                .and_then(|p| p.parse().ok());
            t.target_groups.push(TargetGroup {
                name: r.name.clone(),
                port: get_int(&r.props, "Port").unwrap_or(80),
                protocol: get_str(&r.props, "Protocol").unwrap_or_else(|| "HTTP".into()),
                targets,
                health_check: HealthCheck {
                    path: get_str(&r.props, "HealthCheckPath"),
                    port: hc_port,
                    interval: get_int(&r.props, "HealthCheckIntervalSeconds"),
                    timeout: get_int(&r.props, "HealthCheckTimeoutSeconds"),
                    healthy_threshold: get_int(&r.props, "HealthyThresholdCount"),
                    unhealthy_threshold: get_int(&r.props, "UnhealthyThresholdCount"),
                    matcher: get(&r.props, "Matcher").and_then(|m| get_str(m, "HttpCode")),
                },
                algorithm: attrs.get("load_balancing.algorithm.type").cloned(),
                deregistration_delay: attrs
                    .get("deregistration_delay.timeout_seconds")
                    .and_then(|x| x.parse().ok()),
                stickiness: (attrs.get("stickiness.enabled").map(String::as_str) == Some("true"))
                    .then(|| {
                        attrs
                            .get("stickiness.lb_cookie.duration_seconds")
                            .and_then(|x| x.parse().ok())
                            .unwrap_or(86400)
                    }),
            });
        }
        let mut listeners: HashMap<String, (usize, usize)> = HashMap::new();
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::ElasticLoadBalancingV2::LoadBalancer")
        {
            if get_str(&r.props, "Type").is_some_and(|x| x != "application") {
                self.warnings.push(format!(
                    "{}: only application load balancers are emulated; {} skipped",
                    r.logical, r.name
                ));
                continue;
            }
            let mut subnet_ids = strings(get(&r.props, "Subnets"));
            if let Some(Value::Sequence(m)) = get(&r.props, "SubnetMappings") {
                subnet_ids.extend(m.iter().filter_map(|x| get_str(x, "SubnetId")));
            }
            let subnets = subnet_ids
                .iter()
                .filter_map(|id| self.name_of(r, "Subnets", id, &["AWS::EC2::Subnet"]))
                .collect();
            let sgs = {
                let ids = strings(get(&r.props, "SecurityGroups"));
                self.sg_names(r, &ids)
            };
            let attrs = tg_attributes(&r.props, "LoadBalancerAttributes");
            origin(t, &r.name, r);
            t.load_balancers.push(LoadBalancer {
                name: r.name.clone(),
                scheme: get_str(&r.props, "Scheme").unwrap_or_else(|| "internet-facing".into()),
                subnets,
                security_groups: sgs,
                idle_timeout: attrs
                    .get("idle_timeout.timeout_seconds")
                    .and_then(|x| x.parse().ok()),
                listeners: vec![],
            });
        }
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::ElasticLoadBalancingV2::Listener")
        {
            let Some(lb) = self.name_of(
                r,
                "LoadBalancerArn",
                &get_str(&r.props, "LoadBalancerArn").unwrap_or_default(),
                &["AWS::ElasticLoadBalancingV2::LoadBalancer"],
            ) else {
                continue;
            };
            let Some(forward) = self.forward(r, "DefaultActions", get(&r.props, "DefaultActions"))
            else {
                continue;
            };
            let Some(li) = t.load_balancers.iter().position(|l| l.name == lb) else {
                continue;
            };
            let protocol = get_str(&r.props, "Protocol").unwrap_or_else(|| "HTTP".into());
            let protocol = if protocol == "HTTPS" {
                self.warnings.push(format!("{}: HTTPS listener served as plain HTTP on port {} (no certificates in the lab)", r.logical, get_int(&r.props, "Port").unwrap_or(443)));
                "HTTP".to_string()
            } else {
                protocol
            };
            t.load_balancers[li].listeners.push(Listener {
                port: get_int(&r.props, "Port").unwrap_or(80),
                protocol,
                default_forward: forward,
                rules: vec![],
            });
            listeners.insert(
                r.physical.clone(),
                (li, t.load_balancers[li].listeners.len() - 1),
            );
        }
        for r in res
            .iter()
            .filter(|r| r.ty == "AWS::ElasticLoadBalancingV2::ListenerRule")
        {
            let arn = get_str(&r.props, "ListenerArn").unwrap_or_default();
            let Some(&(li, lj)) = listeners.get(&arn) else {
                self.resolve(
                    r,
                    "ListenerArn",
                    &arn,
                    &["AWS::ElasticLoadBalancingV2::Listener"],
                );
                continue;
            };
            let Some(forward) = self.forward(r, "Actions", get(&r.props, "Actions")) else {
                continue;
            };
            let mut rule = ListenerRule {
                priority: get_int(&r.props, "Priority").unwrap_or(0),
                path_pattern: vec![],
                host_header: vec![],
                http_header: BTreeMap::new(),
                http_request_method: vec![],
                source_ip: vec![],
                forward,
            };
            if let Some(Value::Sequence(cs)) = get(&r.props, "Conditions") {
                for c in cs {
                    let field = get_str(c, "Field").unwrap_or_default();
                    let cfg = |k: &str| {
                        let mut v = strings(get(c, "Values"));
                        if let Some(x) = get(c, k) {
                            v.extend(strings(get(x, "Values")));
                        }
                        v
                    };
                    match field.as_str() {
                        "path-pattern" => rule.path_pattern = cfg("PathPatternConfig"),
                        "host-header" => rule.host_header = cfg("HostHeaderConfig"),
                        "http-request-method" => {
                            rule.http_request_method = cfg("HttpRequestMethodConfig")
                        }
                        "source-ip" => rule.source_ip = cfg("SourceIpConfig"),
                        "http-header" => {
                            if let Some(h) = get(c, "HttpHeaderConfig") {
                                rule.http_header.insert(
                                    get_str(h, "HttpHeaderName").unwrap_or_default(),
                                    strings(get(h, "Values")),
                                );
                            }
                        }
                        other => self.warnings.push(format!(
                            "{}: condition field `{other}` is not emulated; ignored",
                            r.logical
                        )),
                    }
                }
            }
            t.load_balancers[li].listeners[lj].rules.push(rule);
        }
    }

    fn forward(
        &mut self,
        r: &Resource,
        prop: &str,
        actions: Option<&Value>,
    ) -> Option<Vec<WeightedTarget>> {
        let Some(Value::Sequence(actions)) = actions else {
            self.error(
                r,
                prop,
                "no actions".into(),
                "give a forward action: [{Type: forward, TargetGroupArn: !Ref Tg}]".into(),
            );
            return None;
        };
        let Some(a) = actions
            .iter()
            .find(|a| get_str(a, "Type").as_deref() == Some("forward"))
        else {
            let kinds: Vec<String> = actions.iter().filter_map(|a| get_str(a, "Type")).collect();
            self.warnings.push(format!(
                "{}: {prop}: only forward actions are emulated ({} skipped)",
                r.logical,
                kinds.join(", ")
            ));
            return None;
        };
        let mut out = vec![];
        if let Some(arn) = get_str(a, "TargetGroupArn") {
            out.push(WeightedTarget {
                target_group: self.name_of(
                    r,
                    &format!("{prop}.TargetGroupArn"),
                    &arn,
                    &["AWS::ElasticLoadBalancingV2::TargetGroup"],
                )?,
                weight: 1,
            });
        } else if let Some(Value::Sequence(tgs)) =
            get(a, "ForwardConfig").and_then(|f| get(f, "TargetGroups"))
        {
            for x in tgs {
                let arn = get_str(x, "TargetGroupArn").unwrap_or_default();
                let tg = self.name_of(
                    r,
                    &format!("{prop}.ForwardConfig.TargetGroups"),
                    &arn,
                    &["AWS::ElasticLoadBalancingV2::TargetGroup"],
                )?;
                out.push(WeightedTarget {
                    target_group: tg,
                    weight: get_int(x, "Weight").unwrap_or(1),
                });
            }
        }
        Some(out)
    }

    /// The stand-in on each instance that asked for it: the ports of the
    /// target groups it is in (and their health check ports).
    fn stand_ins(&mut self, t: &mut Topology) {
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

    fn endpoints_buckets_flow_logs(&mut self, t: &mut Topology) {
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

    #[test]
    fn stand_in_lists_its_ports() {
        let s = stand_in_script("web-1", &[80, 8080]);
        assert!(s.ends_with("' web-1 80 8080\n"), "{s}");
        assert!(!s[s.find("-c '").unwrap() + 4..s.rfind('\'').unwrap()].contains('\''));
    }
}
