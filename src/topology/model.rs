//! The topology file as written by the user: AWS vocabulary, raw strings.
//!
//! Values stay unparsed here (CIDRs, ports, protocols are `String`) so that
//! validation can report every mistake at once with its location, instead of
//! serde stopping at the first one.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Lab name; namespaces are `vpcsim-<name>-<node>`.
    pub name: String,
    #[serde(default = "default_region")]
    pub region: String,
    pub vpc: Vpc,
    #[serde(default)]
    pub internet: Internet,
    #[serde(default, rename = "subnet")]
    pub subnets: Vec<Subnet>,
    pub internet_gateway: Option<InternetGateway>,
    #[serde(default, rename = "nat_gateway")]
    pub nat_gateways: Vec<NatGateway>,
    #[serde(default, rename = "route_table")]
    pub route_tables: Vec<RouteTable>,
    #[serde(default, rename = "nacl")]
    pub nacls: Vec<Nacl>,
    #[serde(default, rename = "security_group")]
    pub security_groups: Vec<SecurityGroup>,
    #[serde(default, rename = "instance")]
    pub instances: Vec<Instance>,
    #[serde(default, rename = "target_group")]
    pub target_groups: Vec<TargetGroup>,
    #[serde(default, rename = "load_balancer")]
    pub load_balancers: Vec<LoadBalancer>,
    #[serde(default, rename = "container")]
    pub containers: Vec<Container>,
    #[serde(default, rename = "vpc_endpoint")]
    pub vpc_endpoints: Vec<VpcEndpoint>,
    #[serde(default, rename = "s3_bucket")]
    pub s3_buckets: Vec<S3Bucket>,
    #[serde(default, rename = "flow_log")]
    pub flow_logs: Vec<FlowLog>,
    #[serde(default, rename = "web_acl")]
    pub web_acls: Vec<WebAcl>,
    /// Filled by the CloudFormation import, never written in a file.
    #[serde(skip)]
    pub origins: BTreeMap<String, super::plan::Origin>,
}

fn default_region() -> String {
    "us-east-1".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    pub cidr: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Internet {
    /// Client hosts of the emulated internet ("my IP" in the seeds' rules).
    #[serde(default = "default_hosts")]
    pub hosts: Vec<String>,
    /// Pool that auto-assigned public IPs and Elastic IPs are taken from.
    #[serde(default = "default_public_pool")]
    pub public_pool: String,
}

impl Default for Internet {
    fn default() -> Self {
        Internet {
            hosts: default_hosts(),
            public_pool: default_public_pool(),
        }
    }
}

fn default_hosts() -> Vec<String> {
    vec!["203.0.113.10".into()]
}

fn default_public_pool() -> String {
    "198.51.100.0/24".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub name: String,
    pub cidr: String,
    pub az: String,
    /// Omitted: the main route table.
    pub route_table: Option<String>,
    /// Omitted: the default NACL (allow all).
    pub nacl: Option<String>,
    #[serde(default)]
    pub map_public_ip: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternetGateway {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatGateway {
    pub name: String,
    pub subnet: String,
    pub elastic_ip: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    pub name: String,
    /// The VPC's main route table: used by subnets that name no table.
    #[serde(default)]
    pub main: bool,
    #[serde(default)]
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub destination: String,
    /// Internet gateway name, NAT gateway name or instance name.
    pub target: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nacl {
    pub name: String,
    #[serde(default)]
    pub inbound: Vec<NaclRule>,
    #[serde(default)]
    pub outbound: Vec<NaclRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NaclRule {
    pub rule: i64,
    pub protocol: String,
    pub ports: Option<String>,
    pub cidr: String,
    pub action: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub ingress: Vec<SgRule>,
    /// Omitted: AWS's default, all traffic to 0.0.0.0/0.
    pub egress: Option<Vec<SgRule>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgRule {
    pub protocol: String,
    pub ports: Option<String>,
    pub cidr: Option<String>,
    pub source_sg: Option<String>,
    pub destination_sg: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub name: String,
    pub subnet: String,
    /// Omitted or empty: the VPC's default security group.
    #[serde(default)]
    pub security_groups: Vec<String>,
    pub private_ip: Option<String>,
    pub elastic_ip: Option<String>,
    /// Overrides the subnet's `map_public_ip`.
    pub associate_public_ip: Option<bool>,
    /// AWS's source/destination check; disable only for NAT/router instances.
    #[serde(default = "yes")]
    pub source_dest_check: bool,
    /// Built-in workload: `model-v1` or `model-v2`.
    pub run: Option<String>,
    pub user_data: Option<String>,
    pub user_data_file: Option<String>,
    /// The instance metadata service's options (EC2's MetadataOptions).
    #[serde(default)]
    pub metadata_options: MetadataOptions,
}

/// EC2's instance metadata options, AWS's names in snake case; omitted
/// fields take AWS's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataOptions {
    /// `optional` (default: IMDSv1 and v2) or `required` (IMDSv2 only).
    pub http_tokens: Option<String>,
    /// IP hops a token's answer travels, 1 (default) to 64.
    pub http_put_response_hop_limit: Option<i64>,
    /// `enabled` (default) or `disabled` (every request gets 403).
    pub http_endpoint: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    pub name: String,
    pub port: i64,
    #[serde(default = "default_tg_protocol")]
    pub protocol: String,
    /// Instance names; `name:port` overrides the group's port.
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub health_check: HealthCheck,
    /// `round_robin` (default), `least_outstanding_requests`, `weighted_random`.
    pub algorithm: Option<String>,
    /// Seconds; AWS default 300.
    pub deregistration_delay: Option<i64>,
    /// lb_cookie stickiness duration in seconds; omitted: off.
    pub stickiness: Option<i64>,
}

fn default_tg_protocol() -> String {
    "HTTP".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub path: Option<String>,
    pub port: Option<i64>,
    pub interval: Option<i64>,
    pub timeout: Option<i64>,
    pub healthy_threshold: Option<i64>,
    pub unhealthy_threshold: Option<i64>,
    pub matcher: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    pub name: String,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    pub subnets: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Seconds; AWS default 60.
    pub idle_timeout: Option<i64>,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<Listener>,
}

fn default_scheme() -> String {
    "internet-facing".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub port: i64,
    #[serde(default = "default_tg_protocol")]
    pub protocol: String,
    #[serde(default)]
    pub default_forward: Vec<WeightedTarget>,
    #[serde(default)]
    pub rules: Vec<ListenerRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedTarget {
    pub target_group: String,
    #[serde(default = "one")]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerRule {
    pub priority: i64,
    #[serde(default, deserialize_with = "one_or_many")]
    pub path_pattern: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub host_header: Vec<String>,
    /// Header name -> accepted values (wildcards `*` and `?`).
    #[serde(default)]
    pub http_header: BTreeMap<String, Vec<String>>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub http_request_method: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub source_ip: Vec<String>,
    pub forward: Vec<WeightedTarget>,
}

/// AWS consoles show conditions as lists; a single value may be written bare.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A Docker container on an instance, published like `docker run -p`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    pub name: String,
    /// The instance it runs on (its Docker host).
    pub host: String,
    pub image: String,
    /// `HOST:CONTAINER` or `HOST:CONTAINER/udp`, as `docker run -p`.
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcEndpoint {
    pub name: String,
    /// Only `s3`.
    pub service: String,
    /// Only `gateway`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Route tables that get the prefix-list route to this endpoint.
    #[serde(default)]
    pub route_tables: Vec<String>,
    /// Fixed `vpce-…` id (e.g. the one a bucket policy names); omitted: derived from the lab.
    pub id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Bucket {
    pub name: String,
    /// Directory whose files become the bucket's objects at `up` (relative to the topology file).
    pub seed_dir: Option<String>,
    /// Bucket policy (IAM JSON, relative to the topology file).
    pub policy_file: Option<String>,
}

/// `[[flow_log]]` as written in the topology file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowLog {
    /// `vpc`, a subnet name or a node (instance, NAT gateway, ALB node) name.
    pub resource: String,
    pub traffic_type: Option<String>,
    /// Seconds: AWS offers 60 and 600; labs may use 1-600.
    pub max_aggregation_interval: Option<i64>,
}

/// `[[web_acl]]`: an AWS WAF web ACL associated with load balancers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebAcl {
    pub name: String,
    /// `allow` or `block`.
    pub default_action: String,
    #[serde(default)]
    pub load_balancers: Vec<String>,
    #[serde(default)]
    pub rules: Vec<WafRule>,
    /// AWS's logging configuration; absent, the web ACL writes no log.
    pub logging: Option<WafLogging>,
}

/// `logging = { filter = { … }, redacted_fields = [ … ] }` of a web ACL.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WafLogging {
    pub filter: Option<WafLogFilter>,
    #[serde(default)]
    pub redacted_fields: Vec<WafRedactedField>,
}

/// AWS's `LoggingFilter`: `default` plus exactly one of `keep` (one filter
/// keeping what meets any of its conditions), `drop` (likewise, dropping)
/// or `filters`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WafLogFilter {
    /// `keep` or `drop`.
    pub default: String,
    pub keep: Option<Vec<String>>,
    pub drop: Option<Vec<String>>,
    pub filters: Option<Vec<WafLogFilterRule>>,
}

/// One of AWS's `Filters`: conditions are action names (`BLOCK`, `COUNT`,
/// …) or fully qualified labels.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WafLogFilterRule {
    /// `keep` or `drop`.
    pub behavior: String,
    /// `meets_all` or `meets_any`.
    pub requirement: String,
    pub conditions: Vec<String>,
}

/// A component to log as `REDACTED`: `field` = `method`, `uri_path`,
/// `query_string` or `header` (with `name`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WafRedactedField {
    pub field: String,
    pub name: Option<String>,
}

/// One rule of a web ACL: a managed group, a rate-based rule, an IP set or
/// a match statement (`match`, also the scope-down of a rate-based rule).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WafRule {
    pub name: String,
    pub priority: i64,
    /// `allow`, `block` or `count`; not for managed groups (`override`).
    pub action: Option<String>,
    /// Custom response of a block action (AWS allows 200-599).
    pub block_status: Option<i64>,
    pub block_body: Option<String>,
    pub managed: Option<String>,
    /// The group's override action: `none` or `count`.
    #[serde(rename = "override")]
    pub override_action: Option<String>,
    #[serde(default)]
    pub excluded: Vec<String>,
    /// Managed rule name -> `allow`, `block` or `count`.
    #[serde(default)]
    pub rule_action_overrides: BTreeMap<String, String>,
    pub rate_limit: Option<i64>,
    /// Seconds: 60, 120, 300 or 600 (AWS's evaluation windows).
    pub window: Option<i64>,
    /// `ip`, `forwarded_ip` or `constant`.
    pub aggregate: Option<String>,
    pub ip_set: Option<Vec<String>>,
    pub forwarded_ip: Option<WafForwardedIp>,
    #[serde(rename = "match")]
    pub statement: Option<WafStatement>,
}

/// AWS's forwarded IP configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WafForwardedIp {
    #[serde(default = "default_forwarded_header")]
    pub header: String,
    /// `FIRST`, `LAST` or `ANY` (IP sets only).
    pub position: Option<String>,
    /// `MATCH` or `NO_MATCH`.
    pub fallback: Option<String>,
}

fn default_forwarded_header() -> String {
    "X-Forwarded-For".into()
}

/// A statement: exactly one of byte match (`positional` + `value`), `regex`,
/// `detect` (`sqli` / `xss`), size (`comparison` + `size`), `ip_set`, `and`,
/// `or`, `not`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WafStatement {
    pub field: Option<String>,
    /// The header or query argument of `field = "header"` / `"query_arg"`.
    pub name: Option<String>,
    /// `ALL`, `KEY` or `VALUE` for all_headers, cookies and json_body.
    pub scope: Option<String>,
    /// `CONTINUE`, `MATCH` or `NO_MATCH` for body and json_body.
    pub oversize: Option<String>,
    /// `MATCH`, `NO_MATCH` or `EVALUATE_AS_STRING` for json_body.
    pub invalid_json: Option<String>,
    #[serde(default)]
    pub transforms: Vec<String>,
    pub positional: Option<String>,
    pub value: Option<String>,
    pub regex: Option<String>,
    pub detect: Option<String>,
    /// `LOW` (default) or `HIGH`, for `detect = "sqli"`.
    pub sensitivity: Option<String>,
    pub comparison: Option<String>,
    pub size: Option<i64>,
    pub ip_set: Option<Vec<String>>,
    pub forwarded_ip: Option<WafForwardedIp>,
    pub and: Option<Vec<WafStatement>>,
    pub or: Option<Vec<WafStatement>>,
    pub not: Option<Box<WafStatement>>,
}
