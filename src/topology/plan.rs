//! The resolved lab: every name turned into an index, every address parsed
//! and allocated, every interface named. Fabric, firewall, load balancer and
//! `trace` read this; none of them look at the raw topology file.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Prefix of every namespace, state directory and container vpcsim owns.
pub const PREFIX: &str = "vpcsim";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lab {
    pub name: String,
    pub region: String,
    pub vpc_cidr: Ipv4Net,
    /// `vpc-…` id, stable for a lab name (bucket policies and flow logs use it).
    pub vpc_id: String,
    pub subnets: Vec<SubnetPlan>,
    pub route_tables: Vec<RouteTablePlan>,
    pub nacls: Vec<NaclPlan>,
    pub security_groups: Vec<SecurityGroupPlan>,
    /// Every network interface in the VPC: instances, NAT gateways, ALB nodes.
    pub enis: Vec<Eni>,
    pub nat_gateways: Vec<NatGatewayPlan>,
    pub internet_gateway: Option<String>,
    pub internet: InternetPlan,
    pub instances: Vec<InstancePlan>,
    pub target_groups: Vec<TargetGroupPlan>,
    pub load_balancers: Vec<LoadBalancerPlan>,
    /// Docker containers on instances (`[[container]]`).
    #[serde(default)]
    pub containers: Vec<ContainerPlan>,
    /// Gateway VPC endpoints (`[[vpc_endpoint]]`).
    #[serde(default)]
    pub vpc_endpoints: Vec<VpcEndpointPlan>,
    /// The emulated S3 service; present when the lab has buckets or endpoints.
    #[serde(default)]
    pub s3: Option<S3Plan>,
    /// VPC Flow Logs (`[[flow_log]]`).
    #[serde(default)]
    pub flow_logs: Vec<FlowLogPlan>,
    /// AWS WAF web ACLs on load balancers (`[[web_acl]]`).
    #[serde(default)]
    pub web_acls: Vec<crate::waf::WebAclPlan>,
    /// A lab from CloudFormation templates: the resource each node (instance,
    /// NAT gateway, endpoint ENI) and load balancer comes from, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub origins: BTreeMap<String, Origin>,
}

/// The template resource a lab object was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub stack: String,
    pub logical_id: String,
    /// The resource's `Name` tag, when it has one.
    pub name_tag: Option<String>,
}

impl Origin {
    /// `AppAsg`, `app.AppAsg` or the Name tag.
    pub fn answers_to(&self, text: &str) -> bool {
        text == self.logical_id
            || self.name_tag.as_deref() == Some(text)
            || text
                .split_once('.')
                .is_some_and(|(s, l)| s == self.stack && l == self.logical_id)
    }
}

impl Lab {
    /// The template resource of a node or load balancer; an ALB node's is
    /// its load balancer's.
    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.origins
            .get(name)
            .or_else(|| match self.eni_by_node(name).map(|e| e.owner) {
                Some(EniOwner::LoadBalancerNode(lb, _)) => {
                    self.origins.get(&self.load_balancers[lb].name)
                }
                _ => None,
            })
    }

    /// A node as commands print it: `web-1 [AppAsg]` in a lab from templates.
    pub fn node_label(&self, name: &str) -> String {
        match self.origin(name) {
            Some(o) => format!("{name} [{}]", o.logical_id),
            None => name.to_string(),
        }
    }

    /// The nodes a template name (logical id, `stack.LogicalId`, Name tag)
    /// stands for, in the lab's order: an auto scaling group's instances,
    /// an interface endpoint's ENIs, a load balancer's nodes.
    pub fn nodes_of_resource(&self, text: &str) -> Vec<String> {
        self.enis
            .iter()
            .filter(|e| self.origin(&e.node).is_some_and(|o| o.answers_to(text)))
            .map(|e| e.node.clone())
            .collect()
    }

    /// Each template resource (`stack.LogicalId`) with the nodes it built,
    /// in the lab's order; empty for a TOML lab.
    pub fn node_resources(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = vec![];
        for e in &self.enis {
            let Some(o) = self.origin(&e.node) else {
                continue;
            };
            let key = format!("{}.{}", o.stack, o.logical_id);
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some((_, nodes)) => nodes.push(e.node.clone()),
                None => out.push((key, vec![e.node.clone()])),
            }
        }
        out
    }

    /// The load balancer a template name stands for.
    pub fn load_balancer_of_resource(&self, text: &str) -> Option<usize> {
        self.load_balancers.iter().position(|l| {
            self.origins
                .get(&l.name)
                .is_some_and(|o| o.answers_to(text))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VpcEndpointPlan {
    pub name: String,
    /// `vpce-…`: what `aws:SourceVpce` carries for requests through it.
    pub id: String,
    /// Indexes into `Lab::route_tables` that route the S3 prefix list here.
    pub route_tables: Vec<usize>,
    /// Link from the fabric to the S3 namespace (same name at both ends).
    pub link: String,
    pub fabric_ip: Ipv4Addr,
    pub service_ip: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3Plan {
    /// `pl-…` id of the prefix list the endpoint routes carry.
    pub prefix_list_id: String,
    /// Addresses standing for S3's public ranges (the prefix list's CIDR).
    pub range: Ipv4Net,
    /// The S3 endpoint's address inside `range`.
    pub address: Ipv4Addr,
    /// Public resolver on the AWS side, for the internet's hosts.
    pub public_dns: Ipv4Addr,
    pub buckets: Vec<BucketPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketPlan {
    pub name: String,
    /// Absolute directory loaded as objects at `up`.
    pub seed_dir: Option<std::path::PathBuf>,
    /// Policy JSON with `${vpce:NAME}` / `${vpc}` already substituted.
    pub policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubnetPlan {
    pub name: String,
    pub cidr: Ipv4Net,
    pub az: String,
    /// Bridge in the fabric namespace; holds the VPC router address (.1).
    pub bridge: String,
    pub router: Ipv4Addr,
    pub route_table: usize,
    pub nacl: usize,
    pub map_public_ip: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteTablePlan {
    pub name: String,
    /// Kernel routing table id in the fabric namespace.
    pub table_id: u32,
    pub main: bool,
    /// User routes; the `local` route for the VPC CIDR is implicit.
    pub routes: Vec<RoutePlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutePlan {
    pub destination: Ipv4Net,
    pub target: RouteTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteTarget {
    InternetGateway,
    /// Index into `Lab::nat_gateways`.
    NatGateway(usize),
    /// Index into `Lab::enis` (an instance with source/dest check off).
    Eni(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    All,
    Tcp,
    Udp,
    Icmp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::All => "all",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
    /// IANA number, as flow logs and nft print it.
    pub fn number(self) -> Option<u8> {
        match self {
            Protocol::All => None,
            Protocol::Tcp => Some(6),
            Protocol::Udp => Some(17),
            Protocol::Icmp => Some(1),
        }
    }
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

impl PortRange {
    pub fn contains(self, port: u16) -> bool {
        self.from <= port && port <= self.to
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}-{}", self.from, self.to)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NaclPlan {
    pub name: String,
    /// Sorted by rule number: evaluation order.
    pub inbound: Vec<NaclEntry>,
    pub outbound: Vec<NaclEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NaclEntry {
    pub rule: u16,
    pub protocol: Protocol,
    /// `None`: all ports (or a protocol without ports).
    pub ports: Option<PortRange>,
    /// Source for inbound rules, destination for outbound rules.
    pub cidr: Ipv4Net,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupPlan {
    pub name: String,
    /// `sg-…` id, stable for a lab and group name.
    pub id: String,
    pub ingress: Vec<SgRulePlan>,
    pub egress: Vec<SgRulePlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgRulePlan {
    pub protocol: Protocol,
    pub ports: Option<PortRange>,
    pub peer: SgPeer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SgPeer {
    Cidr(Ipv4Net),
    /// Index into `Lab::security_groups`: the private IPs of its members.
    Group(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EniOwner {
    Instance(usize),
    NatGateway(usize),
    /// Load balancer index, node index within it.
    LoadBalancerNode(usize, usize),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Eni {
    /// `eni-…` id, as flow logs print it.
    pub id: String,
    /// Node name; the namespace is `vpcsim-<lab>--<node>`.
    pub node: String,
    pub owner: EniOwner,
    pub subnet: usize,
    pub private_ip: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
    pub security_groups: Vec<usize>,
    pub source_dest_check: bool,
    /// Fabric-side end of the veth, a port of the subnet bridge.
    pub host_if: String,
}

impl Eni {
    /// The ENI's MAC address: locally administered (`02:…`, like an ENI's
    /// on AWS), from its id, so the fabric's ARP filter, rendered before
    /// anything exists, knows it.
    pub fn mac(&self) -> [u8; 6] {
        // FNV-1a of the id (ids may be the user's own); 40 bits, distinct
        // within a lab but with negligible odds.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in self.id.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        let b = h.to_be_bytes();
        [0x02, b[3], b[4], b[5], b[6], b[7]]
    }

    pub fn mac_string(&self) -> String {
        self.mac()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NatGatewayPlan {
    pub name: String,
    pub subnet: usize,
    pub eni: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InternetPlan {
    pub hosts: Vec<Ipv4Addr>,
    pub public_pool: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstancePlan {
    pub name: String,
    pub eni: usize,
    pub workload: Option<Workload>,
    /// Shell script run once at boot, like cloud-init.
    pub user_data: Option<String>,
    #[serde(default)]
    pub metadata: MetadataPlan,
}

/// How the instance metadata service answers an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataPlan {
    /// IMDSv2 only: a request without a token gets 401.
    pub tokens_required: bool,
    /// The IP TTL of a token's answer.
    pub put_response_hop_limit: u8,
    pub endpoint_enabled: bool,
}

/// AWS's defaults for an instance launched without metadata options.
impl Default for MetadataPlan {
    fn default() -> Self {
        MetadataPlan {
            tokens_required: false,
            put_response_hop_limit: 1,
            endpoint_enabled: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Workload {
    ModelV1,
    ModelV2,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::ModelV1 => "model-v1",
            Workload::ModelV2 => "model-v2",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetGroupPlan {
    pub name: String,
    pub port: u16,
    pub targets: Vec<TargetPlan>,
    pub health_check: HealthCheckPlan,
    pub algorithm: Algorithm,
    pub deregistration_delay_s: u32,
    pub stickiness_s: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetPlan {
    /// Instance name.
    pub instance: String,
    pub ip: Ipv4Addr,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheckPlan {
    pub path: String,
    /// `None`: the traffic port.
    pub port: Option<u16>,
    pub interval_s: u32,
    pub timeout_s: u32,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Inclusive ranges of accepted status codes.
    pub matcher: Vec<(u16, u16)>,
}

impl HealthCheckPlan {
    /// The accepted codes as AWS writes a matcher's HttpCode: `200,300-399`.
    pub fn http_codes(&self) -> String {
        self.matcher
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    RoundRobin,
    LeastOutstandingRequests,
    WeightedRandom,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancerPlan {
    pub name: String,
    /// `<name>-<id>.<region>.elb.amazonaws.com`
    pub dns_name: String,
    /// One node per subnet: indexes into `Lab::enis`.
    pub nodes: Vec<usize>,
    pub idle_timeout_s: u32,
    pub listeners: Vec<ListenerPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerPlan {
    pub port: u16,
    /// Sorted by priority.
    pub rules: Vec<ListenerRulePlan>,
    pub default_forward: Vec<WeightedTargetGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedTargetGroup {
    /// Index into `Lab::target_groups`.
    pub target_group: usize,
    pub weight: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerRulePlan {
    pub priority: u32,
    pub conditions: Vec<Condition>,
    pub forward: Vec<WeightedTargetGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Condition {
    PathPattern(Vec<String>),
    HostHeader(Vec<String>),
    HttpHeader(String, Vec<String>),
    HttpRequestMethod(Vec<String>),
    SourceIp(Vec<Ipv4Net>),
}

impl Lab {
    pub fn namespace(&self, node: &str) -> String {
        namespace(&self.name, node)
    }
    pub fn fabric_ns(&self) -> String {
        self.namespace(FABRIC)
    }
    pub fn internet_ns(&self) -> String {
        self.namespace(INTERNET)
    }
    /// The Amazon-provided DNS: VPC base address + 2.
    pub fn dns_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.vpc_cidr.network()) + 2)
    }
    pub fn eni_by_node(&self, node: &str) -> Option<&Eni> {
        self.enis.iter().find(|e| e.node == node)
    }
    /// Whether an ENI with security groups `groups` allows every response of
    /// `protocol` (tcp or udp) in one direction (`ingress`, or egress): a
    /// rule for 0.0.0.0/0 and all ports, 0-65535. With a rule allowing the
    /// flow for 0.0.0.0/0 the other way, AWS does not track that flow at
    /// the ENI ("Security group connection tracking": untracked connections).
    pub fn allows_all_responses(
        &self,
        groups: &[usize],
        ingress: bool,
        protocol: Protocol,
    ) -> bool {
        groups
            .iter()
            .map(|&g| &self.security_groups[g])
            .flat_map(|sg| if ingress { &sg.ingress } else { &sg.egress })
            .any(|r| {
                matches!(r.peer, SgPeer::Cidr(c) if c.prefix_len() == 0)
                    && (r.protocol == Protocol::All
                        || (r.protocol == protocol
                            && r.ports.is_none_or(|p| p.from == 0 && p.to == 65535)))
            })
    }
    /// Private IPs of every ENI holding security group `sg`.
    pub fn sg_members(&self, sg: usize) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.enis
            .iter()
            .filter(move |e| e.security_groups.contains(&sg))
            .map(|e| e.private_ip)
    }
    /// Nodes that have a namespace, in build order.
    /// Whether `node` is an EC2 instance (the customer's compute, confined
    /// like a VM), not a NAT gateway, ALB node or vpcsim's own namespace.
    pub fn is_instance(&self, node: &str) -> bool {
        self.instances.iter().any(|i| self.enis[i.eni].node == node)
    }

    pub fn node_names(&self) -> Vec<String> {
        let mut v = vec![FABRIC.to_string(), INTERNET.to_string()];
        if self.s3.is_some() {
            v.push(S3.to_string());
        }
        v.extend(self.enis.iter().map(|e| e.node.clone()));
        v
    }
}

/// A VPC Flow Log (`[[flow_log]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowLogResource {
    Vpc,
    /// Index into `Lab::subnets`.
    Subnet(usize),
    /// Index into `Lab::enis`.
    Eni(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrafficType {
    All,
    Accept,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowLogPlan {
    /// `fl-…` id, stable for a lab and resource.
    pub id: String,
    pub resource: FlowLogResource,
    pub traffic_type: TrafficType,
    pub interval_s: u32,
}

impl FlowLogPlan {
    pub fn covers(&self, lab: &Lab, eni: usize) -> bool {
        match self.resource {
            FlowLogResource::Vpc => true,
            FlowLogResource::Subnet(s) => lab.enis[eni].subnet == s,
            FlowLogResource::Eni(e) => e == eni,
        }
    }
    pub fn wants(&self, action: FlowAction) -> bool {
        matches!(
            (self.traffic_type, action),
            (TrafficType::All, _)
                | (TrafficType::Accept, FlowAction::Accept)
                | (TrafficType::Reject, FlowAction::Reject)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowAction {
    Accept,
    Reject,
}

impl FlowAction {
    pub fn name(self) -> &'static str {
        match self {
            FlowAction::Accept => "ACCEPT",
            FlowAction::Reject => "REJECT",
        }
    }
}

/// A Docker container on an instance (`[[container]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerPlan {
    /// Node name (`vpcsim logs/stop/start NAME`).
    pub name: String,
    /// Node name of the instance that is its Docker host.
    pub host: String,
    pub image: String,
    pub ports: Vec<PortMapping>,
    pub env: BTreeMap<String, String>,
    /// The host's `docker0` network; its first address is the bridge's.
    pub bridge: Ipv4Net,
    /// The container's `eth0` address on `bridge`.
    pub ip: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub protocol: Protocol,
    pub host_port: u16,
    pub container_port: u16,
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}->{}/{}",
            self.host_port,
            self.container_port,
            self.protocol.name()
        )
    }
}

impl ContainerPlan {
    /// The host side of `docker0`.
    pub fn gateway(&self) -> Ipv4Addr {
        gateway(self.bridge)
    }
}

fn gateway(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

/// The emulated AWS account (flow log records, ARNs).
pub const ACCOUNT_ID: &str = "123456789012";
/// The port the built-in model servers (`run = "model-v1"`, the seed's
/// Flask apps) listen on.
pub const MODEL_PORT: u16 = 8000;
/// The VPC router and "hypervisor": bridges, route tables, SGs, NACLs, IGW.
pub const FABRIC: &str = "fabric";
/// The emulated internet: client hosts and the far side of the IGW.
pub const INTERNET: &str = "internet";
/// The AWS side: the S3 service (and the internet's resolver).
pub const S3: &str = "s3";
/// Fabric end of the IGW link and its internet peer (a /30 only these two use).
pub const IGW_IF: &str = "igw";
pub const IGW_FABRIC_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);
pub const IGW_INTERNET_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 2);

/// `vpcsim-<lab>--<node>`. Lab names never contain `--` nor end with `-`, so
/// the first `--` ends the lab name: lab `a-x` node `b` and lab `a` node
/// `x-b` cannot share a name (with a single `-` they did, and one lab's
/// `down` removed the other's namespaces).
pub fn namespace(lab: &str, node: &str) -> String {
    format!("{}{node}", lab_prefix(lab))
}

/// What every namespace (and Docker container) name of `lab` starts with,
/// and no other lab's does.
pub fn lab_prefix(lab: &str) -> String {
    format!("{PREFIX}-{lab}--")
}

/// Why `name` cannot be a lab name (it becomes part of namespace, interface
/// and state directory names), or None. The CLI checks names it is given
/// with it before touching anything named after them.
pub fn lab_name_problem(name: &str) -> Option<String> {
    let Some(first) = name.chars().next() else {
        return Some("it is empty".into());
    };
    if name.len() > LAB_NAME_MAX {
        Some(format!(
            "it is {} characters long, at most {LAB_NAME_MAX} are allowed",
            name.len()
        ))
    } else if !first.is_ascii_lowercase() {
        Some(format!(
            "it starts with `{first}`, it must start with a lowercase letter"
        ))
    } else if let Some(bad) = name
        .chars()
        .find(|ch| !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || *ch == '-'))
    {
        Some(format!(
            "it contains `{bad}`; only lowercase letters, digits and `-` are allowed"
        ))
    } else if name.ends_with('-') {
        Some("it ends with `-`".into())
    } else if name.contains("--") {
        Some("it contains `--`".into())
    } else {
        None
    }
}

pub const LAB_NAME_MAX: usize = 16;

/// Deterministic AWS-style id (`vpc-0123…`) from the lab and the object name,
/// so the ids in bucket policies and flow logs stay the same across `up`s.
/// The id part of a WAFv2 resource's ARN (web ACL, IP set), stable for a
/// lab and the resource's name: AWS's ids are UUID-like, two halves here.
pub fn wafv2_id(lab: &str, name: &str) -> String {
    format!(
        "{}-{}",
        &aws_id("w", lab, name)[3..],
        &aws_id("w", name, lab)[3..]
    )
}

/// The DHCP option set's domain name AWS gives a region's instances.
pub fn private_domain(region: &str) -> String {
    if region == "us-east-1" {
        "ec2.internal".into()
    } else {
        format!("{region}.compute.internal")
    }
}

/// EC2's hostname for a private address (`ip-10-0-20-16`, what a shell
/// prompt shows on AWS).
pub fn ec2_hostname(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("ip-{}-{}-{}-{}", o[0], o[1], o[2], o[3])
}

/// The private DNS name of an address in `region`: what the Amazon DNS
/// resolves, /etc/hosts lists and the IMDS calls the instance's hostname.
pub fn private_dns_name(region: &str, ip: Ipv4Addr) -> String {
    format!("{}.{}", ec2_hostname(ip), private_domain(region))
}

/// An instance's `i-…` id, stable for a lab and instance name: what the
/// IMDS, `status` and a template's `Ref` of the instance give.
pub fn instance_id(lab: &str, instance: &str) -> String {
    aws_id("i", lab, instance)
}

/// A subnet's `subnet-…` id, stable for a lab and subnet name (the IMDS and
/// a template's `Ref` of the subnet).
pub fn subnet_id(lab: &str, subnet: &str) -> String {
    aws_id("subnet", lab, subnet)
}

pub fn aws_id(kind: &str, lab: &str, name: &str) -> String {
    // FNV-1a: tiny, stable across Rust versions (unlike DefaultHasher).
    let mut h: u64 = 0xcbf29ce484222325;
    for b in lab.bytes().chain([0]).chain(name.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{kind}-0{:016x}", h)[..kind.len() + 18].to_string()
}
