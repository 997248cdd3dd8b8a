//! Several templates deployed in order as stacks of one lab: parameters
//! (with `--param`, which may name an earlier stack's output, export or
//! resource), mappings, conditions, resources in dependency order, outputs
//! and exports that later stacks `Fn::ImportValue`.
//!
//! [`load`] reads each template with `Global::stack`, one phase per file
//! below: `parse` (syntax, sections), `naming` (lab names, physical ids,
//! ARNs), `parameters`, `conditions`, `dependencies` (order, unknown
//! references, cycles), `resources` (evaluation, with `attributes` for
//! `Fn::GetAtt`), `outputs` (and exports).

mod attributes;
mod conditions;
mod dependencies;
mod naming;
mod outputs;
mod parameters;
mod parse;
mod resources;

pub use naming::wafv2_arn;

use super::import::{self, Importer, Run};
use super::intrinsics::Context;
use super::template::{Mapping, Value};
use crate::topology::model::Topology;
use crate::topology::plan::Lab;
use attributes::Atts;
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

/// The template being read: its file and stack name, which every error of
/// it and every id derived from it carry.
struct StackFile<'a> {
    file: &'a Path,
    name: String,
}

impl StackFile<'_> {
    fn error(
        &self,
        logical: Option<&str>,
        property: &str,
        message: String,
        fix: String,
    ) -> CfnError {
        CfnError {
            file: self.file.to_path_buf(),
            logical: logical.map(String::from),
            property: Some(property.to_string()),
            message,
            fix,
        }
    }
}

/// What one stack's functions read besides the lab-wide state: its
/// parameters, mappings, conditions, logical -> physical ids, and which of
/// its resources are evaluated so far (for `Fn::GetAtt`).
#[derive(Clone, Copy)]
struct Scope<'a> {
    stack: &'a str,
    params: &'a BTreeMap<String, Value>,
    mappings: &'a Mapping,
    conditions: &'a HashMap<String, bool>,
    physical: &'a HashMap<String, String>,
    evaluated: &'a HashMap<String, usize>,
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

    /// Adds the stack of one template, phase by phase. Errors end it after
    /// the phase that found them (sections, declarations and parameters are
    /// reported together), so a later phase never reports their consequences.
    fn stack(&mut self, file: &Path) -> Result<(), Vec<CfnError>> {
        let at = StackFile {
            file,
            name: import::kebab(&stem(file), 64),
        };
        let top = parse::read(&at)?;
        let mut errors = vec![];
        let Some(resources) = parse::check_sections(&at, &top, &mut errors) else {
            return Err(errors);
        };
        let empty = Mapping::new();
        let section = |k: &str| top.get(k).and_then(|v| v.as_mapping()).unwrap_or(&empty);
        // Logical ids, types, names and physical ids first: any function may name them.
        let declared = self.declare(&at, resources, &mut errors);
        let params = self.parameters(&at, section("Parameters"), &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let mappings = section("Mappings");
        let conditions = self.conditions(&at, &params.values, mappings, section("Conditions"))?;
        let order = dependencies::order(&at, &declared, &params.values)?;
        // Resources see those evaluated before them, outputs all of them.
        let none = HashMap::new();
        let scope = Scope {
            stack: &at.name,
            params: &params.values,
            mappings,
            conditions: &conditions,
            physical: &declared.physical,
            evaluated: &none,
        };
        let evaluated = self.resources(&at, &declared, &order, scope)?;
        let (outputs, exports) = self.outputs(
            &at,
            section("Outputs"),
            Scope {
                evaluated: &evaluated,
                ..scope
            },
        )?;
        self.exports.extend(exports);
        self.stacks.push(StackState {
            name: at.name,
            file: file.to_path_buf(),
            params: params.declared,
            given: params.given,
            outputs,
        });
        Ok(())
    }
}
