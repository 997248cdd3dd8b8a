//! A stack's resources evaluated in dependency order, each checked for
//! the properties vpcsim needs; types it does not emulate are stood in.

use super::naming::Declared;
use super::*;
use crate::cloudformation::intrinsics::scalar;

impl Global {
    /// Adds the resources to the lab's; returns where each went (for
    /// `Fn::GetAtt` in outputs).
    pub(super) fn resources(
        &mut self,
        at: &StackFile,
        declared: &Declared,
        order: &[String],
        scope: Scope,
    ) -> Result<HashMap<String, usize>, Vec<CfnError>> {
        let mut errors = vec![];
        let mut index: HashMap<String, usize> = HashMap::new();
        for id in order {
            let body = declared.bodies[id];
            let ty = body
                .get("Type")
                .and_then(|t| t.as_str())
                .unwrap_or_default()
                .to_string();
            if let Some(c) = body.get("Condition").and_then(|c| c.as_str()) {
                match scope.conditions.get(c) {
                    Some(false) => continue,
                    Some(true) => {}
                    None => {
                        errors.push(at.error(
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
                evaluated: &index,
                ..scope
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
                                    Err(x) => errors.push(at.error(
                                        Some(id),
                                        k.as_str().unwrap_or_default(),
                                        x.message,
                                        x.fix,
                                    )),
                                }
                            }
                            props = Value::Mapping(out);
                        }
                        None => errors.push(at.error(
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
                            errors.push(at.error(Some(id), "Metadata.vpcsim", x.message, x.fix));
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
                        errors.push(at.error(
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
                            errors.push(at.error(
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
                    .push(format!("{}.{id}", at.name));
            }
            index.insert(id.clone(), self.resources.len());
            let name = declared.names[id].clone();
            self.resources.push(Resource {
                file: at.file.to_path_buf(),
                stack: at.name.clone(),
                logical: id.clone(),
                ty,
                name,
                physical: declared.physical[id].clone(),
                props,
                metadata,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(index)
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
