//! A stack's conditions, evaluated in an order where each follows those it
//! names (a template may declare them in any order).

use super::*;

impl Global {
    pub(super) fn conditions(
        &self,
        at: &StackFile,
        params: &BTreeMap<String, Value>,
        mappings: &Mapping,
        conds: &Mapping,
    ) -> Result<HashMap<String, bool>, Vec<CfnError>> {
        let mut errors = vec![];
        let no_resources = HashMap::new();
        let no_resources_index = HashMap::new();
        let mut conditions: HashMap<String, bool> = HashMap::new();
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
                    stack: &at.name,
                    params,
                    mappings,
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
                    Err(x) => {
                        errors.push(at.error(None, &format!("Conditions.{name}"), x.message, x.fix))
                    }
                }
            }
            if later.len() == before {
                for (name, _) in &later {
                    errors.push(at.error(
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
        Ok(conditions)
    }
}
