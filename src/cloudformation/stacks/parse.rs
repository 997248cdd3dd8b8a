//! A template file read and parsed, and its top-level sections checked.

use super::*;
use crate::cloudformation::template;
use crate::topology::files::{read_text, MAX_TOPOLOGY_BYTES};

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

/// The template's top-level mapping.
pub(super) fn read(at: &StackFile) -> Result<Mapping, Vec<CfnError>> {
    let text = read_text(at.file, MAX_TOPOLOGY_BYTES).map_err(|x| {
        vec![at.error(
            None,
            "",
            format!("cannot read the template: {x}"),
            format!("give a regular file of at most {MAX_TOPOLOGY_BYTES} bytes"),
        )]
    })?;
    let t = template::parse(&text).map_err(|m| {
        vec![at.error(
            None,
            "",
            m,
            "fix the template's syntax (YAML or JSON)".into(),
        )]
    })?;
    match t {
        Value::Mapping(top) => Ok(top),
        _ => Err(vec![at.error(
            None,
            "",
            "the template is not a mapping".into(),
            "a template is a map with Resources".into(),
        )]),
    }
}

/// Errors for sections vpcsim does not read; the Resources section, which a
/// template must have.
pub(super) fn check_sections<'t>(
    at: &StackFile,
    top: &'t Mapping,
    errors: &mut Vec<CfnError>,
) -> Option<&'t Mapping> {
    for k in top.keys().filter_map(|k| k.as_str()) {
        if k == "Transform" {
            errors.push(at.error(None, "Transform", "templates with a Transform (SAM, macros) are not expanded".into(), "deploy the processed template (`aws cloudformation get-template --template-stage Processed`)".into()));
        } else if !TOP_LEVEL.contains(&k) {
            errors.push(at.error(
                None,
                k,
                format!("`{k}` is not a template section"),
                format!("sections are: {}", TOP_LEVEL.join(", ")),
            ));
        }
    }
    let resources = top.get("Resources").and_then(|v| v.as_mapping());
    if resources.is_none() {
        errors.push(at.error(
            None,
            "Resources",
            "the template has no Resources".into(),
            "declare at least one resource".into(),
        ));
    }
    resources
}
