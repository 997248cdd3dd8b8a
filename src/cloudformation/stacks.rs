//! Several templates deployed in order as stacks of one lab: parameters
//! (with `--param`, which may name an earlier stack's output, export or
//! resource), mappings, conditions, resources in dependency order, outputs
//! and exports that later stacks `Fn::ImportValue`.

use super::import::{self, Importer, Run};
use super::intrinsics::{scalar, Attributes, Context, EvalError};
use super::template::{self, as_function, Mapping, Value};
use crate::topology::model::Topology;
use crate::topology::plan::{aws_id, wafv2_id, Lab};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// The account id every lab's ARNs use (the one flow logs print).
pub const ACCOUNT: &str = "123456789012";

/// One problem of a template: file, resource, property, what and the fix.
#[derive(Debug, Clone)]
pub struct CfnError {
    pub file: PathBuf,
    pub logical: Option<String>,
    pub property: Option<String>,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for CfnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = &self.logical {
            write!(f, ": {l}")?;
        }
        if let Some(p) = self.property.as_deref().filter(|p| !p.is_empty()) {
            let sep = if self.logical.is_some() { "." } else { ": " };
            write!(f, "{sep}{p}")?;
        }
        write!(f, ": {}\n    fix: {}", self.message, self.fix)
    }
}

/// Every error of the templates at once; nothing was built.
#[derive(Debug, thiserror::Error)]
pub struct ImportError(pub Vec<CfnError>);

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} error{} in the templates, nothing was built",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A resource after evaluation.
#[derive(Debug, Clone)]
pub struct Resource {
    pub file: PathBuf,
    pub stack: String,
    pub logical: String,
    pub ty: String,
    /// Lab name (node, subnet, group... name).
    pub name: String,
    /// What `Ref` returns.
    pub physical: String,
    pub props: Value,
    /// `Metadata.vpcsim`, if any.
    pub metadata: Option<Value>,
}

/// What `vpcsim status` shows for a stack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackRecord {
    pub name: String,
    pub file: PathBuf,
    pub outputs: Vec<OutputRecord>,
    /// Logical id, type, physical id, lab name.
    pub resources: Vec<(String, String, String, String)>,
    /// The template as deployed (a copy in the lab's state), which `deploy`
    /// reads again with the parameters below when it adds a stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PathBuf>,
    /// Parameters given with `--param`, as resolved (`@…` references replaced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<(String, String)>,
    /// `--run` choices given when the stack was deployed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputRecord {
    pub key: String,
    pub value: String,
    pub export: Option<String>,
}

#[derive(Clone)]
pub struct Options {
    /// Lab name; default: the first file's name.
    pub name: Option<String>,
    pub region: String,
    /// `[STACK.]KEY=VALUE`.
    pub params: Vec<String>,
    /// `NAME=WORKLOAD`.
    pub runs: Vec<String>,
}

pub struct Imported {
    pub topology: Topology,
    pub stacks: Vec<StackRecord>,
    pub warnings: Vec<String>,
    /// Holds bucket policies until validation read them.
    pub scratch: PathBuf,
}

impl Drop for Imported {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

impl Imported {
    /// Fills what only the built lab knows (load balancer DNS names,
    /// addresses) into the stacks' outputs.
    pub fn finish(&mut self, lab: &Lab) {
        for s in &mut self.stacks {
            for o in &mut s.outputs {
                for lb in &lab.load_balancers {
                    o.value = o.value.replace(&dns_placeholder(&lb.name), &lb.dns_name);
                }
                for e in &lab.enis {
                    o.value = o
                        .value
                        .replace(&ip_placeholder(&e.node, false), &e.private_ip.to_string());
                    if let Some(p) = e.public_ip {
                        o.value = o
                            .value
                            .replace(&ip_placeholder(&e.node, true), &p.to_string());
                    }
                }
            }
        }
    }
}

fn dns_placeholder(lb: &str) -> String {
    format!("{{{{vpcsim:dns:{lb}}}}}")
}
fn ip_placeholder(node: &str, public: bool) -> String {
    format!(
        "{{{{vpcsim:{}:{node}}}}}",
        if public { "public-ip" } else { "private-ip" }
    )
}

/// Whether a file is a template (by extension) rather than a TOML topology.
pub fn is_template(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json" | "template")
    )
}

const TOP_LEVEL: &[&str] = &[
    "AWSTemplateFormatVersion",
    "Description",
    "Metadata",
    "Parameters",
    "Mappings",
    "Conditions",
    "Rules",
    "Resources",
    "Outputs",
];

/// Loads every template in order into one topology.
pub fn load(files: &[PathBuf], opts: &Options) -> Result<Imported, ImportError> {
    let first = files.first().ok_or_else(|| ImportError(vec![]))?;
    let lab = opts
        .name
        .clone()
        .unwrap_or_else(|| import::kebab(&stem(first), 16));
    let mut errors = vec![];
    let mut runs = vec![];
    for r in &opts.runs {
        match r.split_once('=').map(|(n, w)| (n, Run::parse(w))) {
            Some((n, Some(w))) => runs.push((n.to_string(), w)),
            _ => errors.push(cli_error(
                first,
                "--run",
                format!("`{r}` is not NAME=WORKLOAD"),
                format!(
                    "write --run LOGICAL_ID=WORKLOAD, WORKLOAD one of {}",
                    import::RUN_VALUES
                ),
            )),
        }
    }
    let mut params: Vec<(Option<String>, String, String)> = vec![];
    for p in &opts.params {
        match p.split_once('=') {
            Some((k, v)) => match k.split_once('.') {
                Some((stack, key)) => {
                    params.push((Some(stack.to_string()), key.to_string(), v.to_string()))
                }
                None => params.push((None, k.to_string(), v.to_string())),
            },
            None => errors.push(cli_error(
                first,
                "--param",
                format!("`{p}` is not KEY=VALUE"),
                "write --param KEY=VALUE or --param STACK.KEY=VALUE".into(),
            )),
        }
    }
    let scratch = std::env::temp_dir().join(format!("vpcsim-cfn-{}-{lab}", std::process::id()));
    let _ = std::fs::create_dir_all(&scratch);
    let mut g = Global {
        lab: lab.clone(),
        region: opts.region.clone(),
        resources: vec![],
        exports: HashMap::new(),
        stacks: vec![],
        names: HashSet::new(),
        warnings: vec![],
        params,
        standins: BTreeMap::new(),
    };
    for file in files {
        if let Err(mut e) = g.stack(file) {
            errors.append(&mut e);
            break; // later stacks would only repeat what this one lacks
        }
    }
    for (stack, key, _) in &g.params {
        let used = g
            .stacks
            .iter()
            .any(|s| stack.as_ref().is_none_or(|x| x == &s.name) && s.params.contains(key));
        if !used && errors.is_empty() {
            let file = stack
                .as_ref()
                .and_then(|x| g.stacks.iter().find(|s| &s.name == x))
                .map_or(first.as_path(), |s| s.file.as_path());
            errors.push(cli_error(
                file,
                "--param",
                format!(
                    "no stack has a parameter `{key}`{}",
                    stack
                        .as_ref()
                        .map(|s| format!(" (stack {s})"))
                        .unwrap_or_default()
                ),
                "check the parameter's name under the templates' Parameters".into(),
            ));
        }
    }
    if !errors.is_empty() {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(ImportError(errors));
    }
    if !g.standins.is_empty() {
        g.warnings.push(format!(
            "not emulated, stood in by an id so references resolve: {}",
            g.standins
                .iter()
                .map(|(ty, ids)| format!("{ty} ({})", ids.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let importer = Importer::new(&lab, &opts.region, &g.resources, &runs, &scratch);
    let (topology, errs, warnings) = importer.build();
    g.warnings.extend(warnings);
    if !errs.is_empty() {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(ImportError(errs));
    }
    let records = g
        .stacks
        .iter()
        .map(|s| StackRecord {
            name: s.name.clone(),
            file: s.file.clone(),
            outputs: s.outputs.clone(),
            template: None,
            parameters: s.given.clone(),
            runs: vec![],
            resources: g
                .resources
                .iter()
                .filter(|r| r.stack == s.name)
                .map(|r| {
                    (
                        r.logical.clone(),
                        r.ty.clone(),
                        r.physical.clone(),
                        r.name.clone(),
                    )
                })
                .collect(),
        })
        .collect();
    Ok(Imported {
        topology: topology.expect("a topology whenever there is no error"),
        stacks: records,
        warnings: g.warnings,
        scratch,
    })
}

fn cli_error(file: &Path, what: &str, message: String, fix: String) -> CfnError {
    CfnError {
        file: file.to_path_buf(),
        logical: None,
        property: Some(what.into()),
        message,
        fix,
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("stack")
        .to_string()
}

struct StackState {
    name: String,
    file: PathBuf,
    params: HashSet<String>,
    /// Parameters given on the command line, resolved.
    given: Vec<(String, String)>,
    outputs: Vec<OutputRecord>,
}

struct Global {
    lab: String,
    region: String,
    resources: Vec<Resource>,
    exports: HashMap<String, Value>,
    stacks: Vec<StackState>,
    /// (name space, name): nodes share one, other kinds have their own, as in a topology file.
    names: HashSet<(String, String)>,
    warnings: Vec<String>,
    params: Vec<(Option<String>, String, String)>,
    /// Unsupported type -> logical ids.
    standins: BTreeMap<String, Vec<String>>,
}

/// GetAtt over the resources evaluated so far.
struct Atts<'a> {
    lab: &'a str,
    region: &'a str,
    stack: &'a HashMap<String, usize>,
    resources: &'a [Resource],
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

/// What one stack's functions read besides the lab-wide state: its
/// parameters, mappings, conditions, logical -> physical ids, and which of
/// its resources are evaluated so far (for `Fn::GetAtt`).
struct Scope<'a> {
    stack: &'a str,
    params: &'a BTreeMap<String, Value>,
    mappings: &'a Mapping,
    conditions: &'a HashMap<String, bool>,
    physical: &'a HashMap<String, String>,
    evaluated: &'a HashMap<String, usize>,
}

/// `Ref`, `Fn::GetAtt`, `${X}` / `${X.Attr}` targets in a raw value.
fn references(v: &Value, out: &mut Vec<String>) {
    if let Some((f, arg)) = as_function(v) {
        match f {
            "Ref" => {
                if let Some(s) = arg.as_str() {
                    out.push(s.to_string());
                }
            }
            "Fn::GetAtt" => {
                if let Some(s) = arg
                    .as_sequence()
                    .and_then(|s| s.first())
                    .and_then(|x| x.as_str())
                {
                    out.push(s.to_string());
                }
            }
            "Fn::Sub" => {
                let text = match arg {
                    Value::String(t) => Some(t.as_str()),
                    Value::Sequence(s) => s.first().and_then(|x| x.as_str()),
                    _ => None,
                };
                let vars: Vec<String> = match arg {
                    Value::Sequence(s) if s.len() == 2 => s[1]
                        .as_mapping()
                        .map(|m| {
                            m.keys()
                                .filter_map(|k| k.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                    _ => vec![],
                };
                if let Some(t) = text {
                    let mut rest = t;
                    while let Some(i) = rest.find("${") {
                        let after = &rest[i + 2..];
                        let Some(end) = after.find('}') else { break };
                        let name = &after[..end];
                        if !name.starts_with('!') && !vars.iter().any(|v| v == name) {
                            out.push(name.split('.').next().unwrap_or(name).to_string());
                        }
                        rest = &after[end + 1..];
                    }
                }
                if let Value::Sequence(s) = arg {
                    for x in s.iter().skip(1) {
                        references(x, out);
                    }
                }
                return;
            }
            _ => {}
        }
        references(arg, out);
        return;
    }
    match v {
        Value::Sequence(s) => s.iter().for_each(|x| references(x, out)),
        Value::Mapping(m) => m.values().for_each(|x| references(x, out)),
        _ => {}
    }
}

impl Global {
    /// Runs `f` with the intrinsic functions' context of `scope`.
    fn eval_in<R>(&self, scope: &Scope, f: impl FnOnce(&Context) -> R) -> R {
        let atts = Atts {
            lab: &self.lab,
            region: &self.region,
            stack: scope.evaluated,
            resources: &self.resources,
        };
        f(&Context {
            region: &self.region,
            account: ACCOUNT,
            stack_name: scope.stack,
            params: scope.params,
            mappings: scope.mappings,
            conditions: scope.conditions,
            resources: scope.physical,
            exports: &self.exports,
            attributes: &atts,
        })
    }

    fn stack(&mut self, file: &Path) -> Result<(), Vec<CfnError>> {
        let stack = import::kebab(&stem(file), 64);
        let e = |logical: Option<&str>, property: &str, message: String, fix: String| CfnError {
            file: file.to_path_buf(),
            logical: logical.map(String::from),
            property: Some(property.to_string()),
            message,
            fix,
        };
        let text =
            crate::topology::files::read_text(file, crate::topology::files::MAX_TOPOLOGY_BYTES)
                .map_err(|x| {
                    vec![e(
                        None,
                        "",
                        format!("cannot read the template: {x}"),
                        format!(
                            "give a regular file of at most {} bytes",
                            crate::topology::files::MAX_TOPOLOGY_BYTES
                        ),
                    )]
                })?;
        let t = template::parse(&text).map_err(|m| {
            vec![e(
                None,
                "",
                m,
                "fix the template's syntax (YAML or JSON)".into(),
            )]
        })?;
        let Some(top) = t.as_mapping() else {
            return Err(vec![e(
                None,
                "",
                "the template is not a mapping".into(),
                "a template is a map with Resources".into(),
            )]);
        };
        let mut errors = vec![];
        for k in top.keys().filter_map(|k| k.as_str()) {
            if k == "Transform" {
                errors.push(e(None, "Transform", "templates with a Transform (SAM, macros) are not expanded".into(), "deploy the processed template (`aws cloudformation get-template --template-stage Processed`)".into()));
            } else if !TOP_LEVEL.contains(&k) {
                errors.push(e(
                    None,
                    k,
                    format!("`{k}` is not a template section"),
                    format!("sections are: {}", TOP_LEVEL.join(", ")),
                ));
            }
        }
        let empty = Mapping::new();
        let section = |k: &str| top.get(k).and_then(|v| v.as_mapping()).unwrap_or(&empty);
        let Some(resources) = top.get("Resources").and_then(|v| v.as_mapping()) else {
            errors.push(e(
                None,
                "Resources",
                "the template has no Resources".into(),
                "declare at least one resource".into(),
            ));
            return Err(errors);
        };

        // Logical ids, types, names and physical ids first: any function may name them.
        let mut phys: HashMap<String, String> = HashMap::new();
        let mut order_ids: Vec<String> = vec![];
        let mut raw: HashMap<String, &Value> = HashMap::new();
        let mut names: HashMap<String, String> = HashMap::new();
        for (k, body) in resources {
            let Some(id) = k.as_str() else { continue };
            if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                errors.push(e(
                    Some(id),
                    "",
                    "a logical id is alphanumeric".into(),
                    "rename it with letters and digits only".into(),
                ));
            }
            let Some(ty) = body.get("Type").and_then(|t| t.as_str()) else {
                errors.push(e(
                    Some(id),
                    "Type",
                    "the resource has no Type".into(),
                    "give it a Type such as AWS::EC2::Subnet".into(),
                ));
                continue;
            };
            let name = self.claim(id, body);
            let physical = physical_id(&self.lab, &self.region, &stack, id, ty, &name, body);
            names.insert(id.to_string(), name);
            phys.insert(id.to_string(), physical);
            order_ids.push(id.to_string());
            raw.insert(id.to_string(), body);
        }

        // Parameters.
        let mut params: BTreeMap<String, Value> = BTreeMap::new();
        let mut declared = HashSet::new();
        let mut given = vec![];
        for (k, decl) in section("Parameters") {
            let Some(key) = k.as_str() else { continue };
            declared.insert(key.to_string());
            match self.parameter(&stack, key, decl) {
                Ok((v, raw)) => {
                    given.extend(raw.map(|r| (key.to_string(), r)));
                    params.insert(key.to_string(), v);
                }
                Err((m, f)) => errors.push(e(None, &format!("Parameters.{key}"), m, f)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        let mappings = section("Mappings").clone();
        let no_resources = HashMap::new();
        let no_resources_index = HashMap::new();
        // Conditions, in an order where each follows those it names.
        let mut conditions: HashMap<String, bool> = HashMap::new();
        let conds = section("Conditions");
        let mut pending: Vec<(&str, &Value)> = conds
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?, v)))
            .collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut later = vec![];
            for (name, c) in pending {
                // Conditions see parameters and mappings, no resource.
                let scope = Scope {
                    stack: &stack,
                    params: &params,
                    mappings: &mappings,
                    conditions: &conditions,
                    physical: &no_resources,
                    evaluated: &no_resources_index,
                };
                match self.eval_in(&scope, |cx| cx.condition(c)) {
                    Ok(b) => {
                        conditions.insert(name.to_string(), b);
                    }
                    Err(x)
                        if x.message.contains("not declared (or comes later)")
                            && conds.keys().any(|k| {
                                x.message
                                    .contains(&format!("`{}`", k.as_str().unwrap_or_default()))
                            }) =>
                    {
                        later.push((name, c))
                    }
                    Err(x) => errors.push(e(None, &format!("Conditions.{name}"), x.message, x.fix)),
                }
            }
            if later.len() == before {
                for (name, _) in &later {
                    errors.push(e(
                        None,
                        &format!("Conditions.{name}"),
                        "the conditions name each other in a cycle".into(),
                        "break the cycle between these conditions".into(),
                    ));
                }
                break;
            }
            pending = later;
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        // Dependencies, unknown references, cycles.
        let mut deps: HashMap<String, Vec<String>> = HashMap::new();
        for id in &order_ids {
            let body = raw[id];
            let mut refs = vec![];
            for part in ["Properties", "Metadata"] {
                if let Some(p) = body.get(part) {
                    references(p, &mut refs);
                }
            }
            let mut d = vec![];
            for r in refs {
                if phys.contains_key(&r) {
                    d.push(r);
                } else if !params.contains_key(&r) && !r.starts_with("AWS::") {
                    errors.push(e(Some(id), "Properties", format!("references `{r}`, which is not a resource or parameter of this stack"), format!("declare `{r}`, fix the name, or take it from an earlier stack with !ImportValue (resources: {})", order_ids.join(", "))));
                }
            }
            match body.get("DependsOn") {
                Some(Value::String(x)) => d.push(x.clone()),
                Some(Value::Sequence(xs)) => {
                    d.extend(xs.iter().filter_map(|x| x.as_str().map(String::from)))
                }
                _ => {}
            }
            for x in &d {
                if !phys.contains_key(x) {
                    errors.push(e(
                        Some(id),
                        "DependsOn",
                        format!("depends on `{x}`, which is not a resource of this stack"),
                        "name a resource of this template".into(),
                    ));
                }
            }
            d.retain(|x| phys.contains_key(x));
            deps.insert(id.clone(), d);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let order = match topo_order(&order_ids, &deps) {
            Ok(o) => o,
            Err(cycle) => {
                return Err(vec![e(Some(&cycle[0]), "", format!("circular dependency: {}", cycle.join(" -> ")), "break the cycle: move one reference into a separate resource (e.g. an AWS::EC2::SecurityGroupIngress) or drop a DependsOn".into())]);
            }
        };

        // Evaluation in dependency order.
        let mut index: HashMap<String, usize> = HashMap::new();
        for id in &order {
            let body = raw[id];
            let ty = body
                .get("Type")
                .and_then(|t| t.as_str())
                .unwrap_or_default()
                .to_string();
            if let Some(c) = body.get("Condition").and_then(|c| c.as_str()) {
                match conditions.get(c) {
                    Some(false) => continue,
                    Some(true) => {}
                    None => {
                        errors.push(e(
                            Some(id),
                            "Condition",
                            format!("condition `{c}` is not declared"),
                            "declare it under Conditions".into(),
                        ));
                        continue;
                    }
                }
            }
            let scope = Scope {
                stack: &stack,
                params: &params,
                mappings: &mappings,
                conditions: &conditions,
                physical: &phys,
                evaluated: &index,
            };
            let (props, metadata) = self.eval_in(&scope, |cx| {
                let mut props = Value::Mapping(Mapping::new());
                if let Some(p) = body.get("Properties") {
                    match p.as_mapping() {
                        Some(m) => {
                            let mut out = Mapping::new();
                            for (k, v) in m {
                                match cx.eval(v) {
                                    Ok(Some(v)) => {
                                        out.insert(k.clone(), v);
                                    }
                                    Ok(None) => {}
                                    Err(x) => errors.push(e(
                                        Some(id),
                                        k.as_str().unwrap_or_default(),
                                        x.message,
                                        x.fix,
                                    )),
                                }
                            }
                            props = Value::Mapping(out);
                        }
                        None => errors.push(e(
                            Some(id),
                            "Properties",
                            "Properties is not a mapping".into(),
                            "write Properties as a map".into(),
                        )),
                    }
                }
                let metadata = match body.get("Metadata").and_then(|m| m.get("vpcsim")) {
                    Some(m) => match cx.eval(m) {
                        Ok(v) => v,
                        Err(x) => {
                            errors.push(e(Some(id), "Metadata.vpcsim", x.message, x.fix));
                            None
                        }
                    },
                    None => None,
                };
                (props, metadata)
            });
            if import::SUPPORTED.contains(&ty.as_str()) {
                for req in import::required(&ty) {
                    if props.get(*req).is_none() {
                        errors.push(e(
                            Some(id),
                            req,
                            format!("{ty} requires {req}"),
                            format!("add {req} to {id}'s Properties"),
                        ));
                    }
                }
                for key in ["CidrBlock", "DestinationCidrBlock", "CidrIp"] {
                    if let Some(c) = props.get(key).and_then(scalar) {
                        if c.parse::<ipnet::Ipv4Net>().is_err() {
                            errors.push(e(
                                Some(id),
                                key,
                                format!("`{c}` is not an IPv4 CIDR"),
                                "write it like 10.0.1.0/24".into(),
                            ));
                        }
                    }
                }
            } else if !is_waf_log_group(&ty, &props) {
                self.standins
                    .entry(ty.clone())
                    .or_default()
                    .push(format!("{stack}.{id}"));
            }
            index.insert(id.clone(), self.resources.len());
            let name = names[id].clone();
            self.resources.push(Resource {
                file: file.to_path_buf(),
                stack: stack.clone(),
                logical: id.clone(),
                ty,
                name,
                physical: phys[id].clone(),
                props,
                metadata,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        // Outputs and exports.
        let scope = Scope {
            stack: &stack,
            params: &params,
            mappings: &mappings,
            conditions: &conditions,
            physical: &phys,
            evaluated: &index,
        };
        let mut outputs = vec![];
        let mut new_exports = vec![];
        for (k, o) in section("Outputs") {
            let Some(key) = k.as_str() else { continue };
            if let Some(c) = o.get("Condition").and_then(|c| c.as_str()) {
                if conditions.get(c) == Some(&false) {
                    continue;
                }
            }
            let value = match o
                .get("Value")
                .map(|v| self.eval_in(&scope, |cx| cx.value(v)))
            {
                Some(Ok(v)) => match v {
                    Value::Sequence(s) => s.iter().filter_map(scalar).collect::<Vec<_>>().join(","),
                    other => scalar(&other).unwrap_or_default(),
                },
                Some(Err(x)) => {
                    errors.push(e(None, &format!("Outputs.{key}.Value"), x.message, x.fix));
                    continue;
                }
                None => {
                    errors.push(e(
                        None,
                        &format!("Outputs.{key}"),
                        "the output has no Value".into(),
                        "give it a Value".into(),
                    ));
                    continue;
                }
            };
            let export = match o
                .get("Export")
                .and_then(|x| x.get("Name"))
                .map(|n| self.eval_in(&scope, |cx| cx.value(n)))
            {
                Some(Ok(n)) => scalar(&n),
                Some(Err(x)) => {
                    errors.push(e(
                        None,
                        &format!("Outputs.{key}.Export.Name"),
                        x.message,
                        x.fix,
                    ));
                    None
                }
                None => None,
            };
            if let Some(x) = &export {
                if self.exports.contains_key(x) {
                    errors.push(e(
                        None,
                        &format!("Outputs.{key}.Export.Name"),
                        format!("export `{x}` already exists (an earlier stack exports it)"),
                        "export names are unique in a region: rename it".into(),
                    ));
                }
                new_exports.push((x.clone(), Value::String(value.clone())));
            }
            outputs.push(OutputRecord {
                key: key.to_string(),
                value,
                export,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        self.exports.extend(new_exports);
        self.stacks.push(StackState {
            name: stack,
            file: file.to_path_buf(),
            params: declared,
            given,
            outputs,
        });
        Ok(())
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

    /// A parameter's value: `--param`, else its Default; checked against its
    /// type and constraints. With it, what was given, resolved.
    fn parameter(
        &self,
        stack: &str,
        key: &str,
        decl: &Value,
    ) -> Result<(Value, Option<String>), (String, String)> {
        let ty = decl
            .get("Type")
            .and_then(|t| t.as_str())
            .unwrap_or("String")
            .to_string();
        let given = self
            .params
            .iter()
            .rev()
            .find(|(s, k, _)| k == key && s.as_deref().is_none_or(|s| s == stack))
            .map(|(_, _, v)| v.clone());
        let raw = match (&given, decl.get("Default")) {
            (Some(v), _) => self.param_reference(v)?,
            (None, Some(d)) => match d {
                Value::Sequence(s) => s.iter().filter_map(scalar).collect::<Vec<_>>().join(","),
                other => scalar(other).unwrap_or_default(),
            },
            (None, None) => {
                return Err((
                    format!("parameter `{key}` ({ty}) has no value and no Default"),
                    format!("give it one: --param {key}=VALUE (or --param {key}=@STACK.OUTPUT to take an earlier stack's output)"),
                ))
            }
        };
        let is_list = ty.starts_with("List<") || ty == "CommaDelimitedList";
        let items: Vec<String> = if is_list {
            raw.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        } else {
            vec![raw.clone()]
        };
        if let Some(Value::Sequence(allowed)) = decl.get("AllowedValues") {
            let allowed: Vec<String> = allowed.iter().filter_map(scalar).collect();
            for x in &items {
                if !allowed.contains(x) {
                    return Err((
                        format!("`{x}` is not one of the AllowedValues of `{key}`"),
                        format!("use one of: {}", allowed.join(", ")),
                    ));
                }
            }
        }
        if let Some(p) = decl.get("AllowedPattern").and_then(scalar) {
            let re = regex::Regex::new(&format!("^(?:{p})$")).map_err(|x| {
                (
                    format!("AllowedPattern of `{key}` is not a regular expression: {x}"),
                    "fix the pattern".into(),
                )
            })?;
            for x in &items {
                if !re.is_match(x) {
                    return Err((
                        format!("`{x}` does not match the AllowedPattern {p} of `{key}`"),
                        decl.get("ConstraintDescription")
                            .and_then(scalar)
                            .unwrap_or_else(|| "give a value that matches".into()),
                    ));
                }
            }
        }
        if ty == "Number" && raw.parse::<f64>().is_err() {
            return Err((
                format!("`{raw}` is not a number (parameter `{key}` is a Number)"),
                "give a number".into(),
            ));
        }
        let kind = ty.trim_start_matches("List<").trim_end_matches('>');
        let expect = match kind {
            "AWS::EC2::VPC::Id" => Some("AWS::EC2::VPC"),
            "AWS::EC2::Subnet::Id" => Some("AWS::EC2::Subnet"),
            "AWS::EC2::SecurityGroup::Id" => Some("AWS::EC2::SecurityGroup"),
            _ => None,
        };
        if let Some(expect) = expect {
            for x in &items {
                let ok = self
                    .resources
                    .iter()
                    .any(|r| r.physical == *x && r.ty == expect)
                    || (expect == "AWS::EC2::SecurityGroup"
                        && *x == aws_id("sg", &self.lab, "default"));
                if !ok {
                    let known: Vec<String> = self
                        .resources
                        .iter()
                        .filter(|r| r.ty == expect)
                        .map(|r| format!("{}.{} = {}", r.stack, r.logical, r.physical))
                        .collect();
                    return Err((
                        format!("`{x}` is not a {expect} of the stacks before this one (parameter `{key}` is {ty})"),
                        format!("pass an earlier stack's resource or output: --param {key}=@STACK.NAME (known: {})", if known.is_empty() { "none".into() } else { known.join(", ") }),
                    ));
                }
            }
        }
        if ty.starts_with("AWS::SSM::Parameter::Value<") {
            // The public SSM parameter of an AMI: no AMIs in a lab, any id stands in.
            let ami = Value::String(aws_id("ami", "ssm", &raw));
            return Ok((ami, given.map(|_| raw)));
        }
        let value = if is_list {
            Value::Sequence(items.into_iter().map(Value::String).collect())
        } else {
            Value::String(raw.clone())
        };
        Ok((value, given.map(|_| raw)))
    }

    /// `@STACK.NAME` (an output, else a resource's physical id), `@export:NAME`,
    /// comma-separated lists of those, or a literal.
    fn param_reference(&self, v: &str) -> Result<String, (String, String)> {
        let mut out = vec![];
        for part in v.split(',') {
            let Some(r) = part.strip_prefix('@') else {
                out.push(part.to_string());
                continue;
            };
            if let Some(name) = r.strip_prefix("export:") {
                match self.exports.get(name).and_then(scalar) {
                    Some(x) => out.push(x),
                    None => {
                        return Err((
                            format!("`@export:{name}`: no earlier stack exports `{name}`"),
                            format!(
                                "exports so far: {}",
                                self.exports.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        ))
                    }
                }
                continue;
            }
            let Some((stack, name)) = r.split_once('.') else {
                return Err((
                    format!("`@{r}` is not @STACK.NAME or @export:NAME"),
                    "write @network.VpcId (an output or resource of stack `network`)".into(),
                ));
            };
            let Some(s) = self.stacks.iter().find(|s| s.name == stack) else {
                return Err((
                    format!("`@{r}`: no earlier stack is called `{stack}`"),
                    format!(
                        "stacks so far (named after their files): {}",
                        self.stacks
                            .iter()
                            .map(|s| s.name.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            };
            if let Some(o) = s.outputs.iter().find(|o| o.key == name) {
                out.push(o.value.clone());
            } else if let Some(res) = self
                .resources
                .iter()
                .find(|x| x.stack == stack && x.logical == name)
            {
                out.push(res.physical.clone());
            } else {
                return Err((
                    format!("`@{r}`: stack `{stack}` has no output or resource `{name}`"),
                    format!(
                        "its outputs: {}",
                        s.outputs
                            .iter()
                            .map(|o| o.key.clone())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok(out.join(","))
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

/// A CloudWatch log group named for WAF logs (`aws-waf-logs-…`, AWS's
/// required prefix): the lab's WAF log is what stands for it.
fn is_waf_log_group(ty: &str, props: &Value) -> bool {
    ty == "AWS::Logs::LogGroup"
        && props
            .get("LogGroupName")
            .and_then(scalar)
            .is_some_and(|n| n.starts_with("aws-waf-logs-"))
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

/// Resources in an order where each follows what it depends on; a cycle
/// comes back as the ids along it.
fn topo_order(
    ids: &[String],
    deps: &HashMap<String, Vec<String>>,
) -> Result<Vec<String>, Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    fn visit(
        id: &str,
        deps: &HashMap<String, Vec<String>>,
        marks: &mut HashMap<String, Mark>,
        path: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<(), Vec<String>> {
        match marks.get(id).copied().unwrap_or(Mark::New) {
            Mark::Done => return Ok(()),
            Mark::Visiting => {
                let start = path.iter().position(|p| p == id).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(id.to_string());
                return Err(cycle);
            }
            Mark::New => {}
        }
        marks.insert(id.to_string(), Mark::Visiting);
        path.push(id.to_string());
        for d in deps.get(id).into_iter().flatten() {
            visit(d, deps, marks, path, out)?;
        }
        path.pop();
        marks.insert(id.to_string(), Mark::Done);
        out.push(id.to_string());
        Ok(())
    }
    let mut marks = HashMap::new();
    let mut out = vec![];
    for id in ids {
        visit(id, deps, &mut marks, &mut vec![], &mut out)?;
    }
    Ok(out)
}
