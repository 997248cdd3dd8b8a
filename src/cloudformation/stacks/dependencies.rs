//! The order resources are evaluated in: each after what it references or
//! names in DependsOn; unknown references and cycles are errors.

use super::naming::Declared;
use super::*;
use crate::cloudformation::template::as_function;

/// Logical ids in dependency order.
pub(super) fn order(
    at: &StackFile,
    declared: &Declared,
    params: &BTreeMap<String, Value>,
) -> Result<Vec<String>, Vec<CfnError>> {
    let mut errors = vec![];
    let phys = &declared.physical;
    let mut deps: HashMap<String, Vec<String>> = HashMap::new();
    for id in &declared.ids {
        let body = declared.bodies[id];
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
                errors.push(at.error(Some(id), "Properties", format!("references `{r}`, which is not a resource or parameter of this stack"), format!("declare `{r}`, fix the name, or take it from an earlier stack with !ImportValue (resources: {})", declared.ids.join(", "))));
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
                errors.push(at.error(
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
    topo_order(&declared.ids, &deps).map_err(|cycle| {
        vec![at.error(Some(&cycle[0]), "", format!("circular dependency: {}", cycle.join(" -> ")), "break the cycle: move one reference into a separate resource (e.g. an AWS::EC2::SecurityGroupIngress) or drop a DependsOn".into())]
    })
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
