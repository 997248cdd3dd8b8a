//! A stack's outputs, and the exports among them, which later stacks
//! `Fn::ImportValue` and `--param @export:NAME` read.

use super::*;
use crate::cloudformation::intrinsics::scalar;

/// An export's name and value.
type Export = (String, Value);

impl Global {
    /// The outputs, and the exports to add once the stack is complete.
    pub(super) fn outputs(
        &self,
        at: &StackFile,
        outputs_section: &Mapping,
        scope: Scope,
    ) -> Result<(Vec<OutputRecord>, Vec<Export>), Vec<CfnError>> {
        let mut errors = vec![];
        let mut outputs = vec![];
        let mut new_exports = vec![];
        for (k, o) in outputs_section {
            let Some(key) = k.as_str() else { continue };
            if let Some(c) = o.get("Condition").and_then(|c| c.as_str()) {
                if scope.conditions.get(c) == Some(&false) {
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
                    errors.push(at.error(None, &format!("Outputs.{key}.Value"), x.message, x.fix));
                    continue;
                }
                None => {
                    errors.push(at.error(
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
                    errors.push(at.error(
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
                    errors.push(at.error(
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
        Ok((outputs, new_exports))
    }
}
