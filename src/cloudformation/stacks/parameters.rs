//! A stack's parameters: `--param` (a literal, `@STACK.NAME` or
//! `@export:NAME`), else the Default, checked against the declaration.

use super::*;
use crate::cloudformation::intrinsics::scalar;
use crate::topology::plan::aws_id;

/// A stack's parameters, evaluated.
pub(super) struct Parameters {
    pub(super) values: BTreeMap<String, Value>,
    pub(super) declared: HashSet<String>,
    /// Those given with `--param`, resolved.
    pub(super) given: Vec<(String, String)>,
}

impl Global {
    pub(super) fn parameters(
        &self,
        at: &StackFile,
        decls: &Mapping,
        errors: &mut Vec<CfnError>,
    ) -> Parameters {
        let mut p = Parameters {
            values: BTreeMap::new(),
            declared: HashSet::new(),
            given: vec![],
        };
        for (k, decl) in decls {
            let Some(key) = k.as_str() else { continue };
            p.declared.insert(key.to_string());
            match self.parameter(&at.name, key, decl) {
                Ok((v, raw)) => {
                    p.given.extend(raw.map(|r| (key.to_string(), r)));
                    p.values.insert(key.to_string(), v);
                }
                Err((m, f)) => errors.push(at.error(None, &format!("Parameters.{key}"), m, f)),
            }
        }
        p
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
