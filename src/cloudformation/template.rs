//! CloudFormation template text <-> one tree of [`Value`]s.
//!
//! Templates are read with `yaml_serde`, which keeps YAML tags (`!Ref`,
//! `!Sub`, ...) as tagged values; every short form is turned into its long
//! form (`{"Ref": x}`, `{"Fn::Sub": x}`) at once, so the evaluator knows only
//! one spelling. JSON templates are YAML too. Writing goes the other way:
//! the exporter builds long forms, YAML output turns them back into tags.

use yaml_serde::value::{Tag, TaggedValue};
pub use yaml_serde::{Mapping, Value};

/// Intrinsic functions and condition functions CloudFormation defines, by
/// their short-form tag (`!Sub` is `Fn::Sub`).
pub const FUNCTIONS: &[&str] = &[
    "Base64",
    "Cidr",
    "FindInMap",
    "GetAtt",
    "GetAZs",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "And",
    "Equals",
    "If",
    "Not",
    "Or",
    "Length",
    "ToJsonString",
];

/// Parses template text (YAML or JSON) into long-form intrinsics.
pub fn parse(text: &str) -> Result<Value, String> {
    let raw: Value = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
    long_form(raw)
}

fn long_form(v: Value) -> Result<Value, String> {
    Ok(match v {
        Value::Tagged(t) => {
            let TaggedValue { tag, value } = *t;
            let name = tag.to_string();
            let name = name.trim_start_matches('!');
            let inner = long_form(value)?;
            match name {
                "Ref" => single("Ref", inner),
                "Condition" => single("Condition", inner),
                "GetAtt" => match inner {
                    // `!GetAtt Res.Attr`: the first dot splits (attribute names may hold dots).
                    Value::String(s) => match s.split_once('.') {
                        Some((r, a)) => single(
                            "Fn::GetAtt",
                            Value::Sequence(vec![r.into(), a.into()]),
                        ),
                        None => {
                            return Err(format!(
                                "`!GetAtt {s}` needs the form LogicalId.Attribute"
                            ))
                        }
                    },
                    other => single("Fn::GetAtt", other),
                },
                f if FUNCTIONS.contains(&f) => single(&format!("Fn::{f}"), inner),
                other => {
                    return Err(format!(
                        "unknown intrinsic function `!{other}`; CloudFormation's are !Ref, !Condition, {}",
                        FUNCTIONS
                            .iter()
                            .map(|f| format!("!{f}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
        }
        Value::Sequence(s) => {
            Value::Sequence(s.into_iter().map(long_form).collect::<Result<_, _>>()?)
        }
        Value::Mapping(m) => {
            let mut out = Mapping::new();
            for (k, v) in m {
                let k = match k {
                    Value::String(s) => Value::String(s),
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::Bool(b) => Value::String(b.to_string()),
                    other => return Err(format!("mapping key {other:?} is not a string")),
                };
                out.insert(k, long_form(v)?);
            }
            Value::Mapping(out)
        }
        other => other,
    })
}

/// `{key: value}`.
pub fn single(key: &str, value: Value) -> Value {
    let mut m = Mapping::new();
    m.insert(Value::String(key.into()), value);
    Value::Mapping(m)
}

/// The intrinsic a one-key mapping is (`Ref`, `Fn::Sub`, `Condition`), with its argument.
pub fn as_function(v: &Value) -> Option<(&str, &Value)> {
    let m = v.as_mapping()?;
    if m.len() != 1 {
        return None;
    }
    let (k, arg) = m.iter().next()?;
    let k = k.as_str()?;
    (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then_some((k, arg))
}

/// YAML text with short-form tags, after `header` (comment lines).
pub fn to_yaml(v: &Value, header: &str) -> String {
    let body = yaml_serde::to_string(&short_form(v)).expect("a template tree always serializes");
    format!("{header}{body}")
}

/// JSON text (long forms; JSON has no comments: the notes go in `Metadata`).
pub fn to_json(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("a template tree always serializes") + "\n"
}

fn short_form(v: &Value) -> Value {
    if let Some((f, arg)) = as_function(v) {
        let arg = short_form(arg);
        // A tag directly on a tagged value (`!Base64 !Sub x`) cannot be
        // written by the emitter: the outer one keeps its long form.
        if matches!(arg, Value::Tagged(_)) {
            return single(f, arg);
        }
        let (tag, arg) = match f {
            "Ref" => ("Ref", arg),
            "Condition" => return single(f, arg),
            "Fn::GetAtt" => match arg.as_sequence() {
                Some(s) if s.len() == 2 && s.iter().all(|x| x.is_string()) => (
                    "GetAtt",
                    Value::String(format!(
                        "{}.{}",
                        s[0].as_str().unwrap_or_default(),
                        s[1].as_str().unwrap_or_default()
                    )),
                ),
                _ => ("GetAtt", arg),
            },
            other => (other.trim_start_matches("Fn::"), arg),
        };
        return Value::Tagged(Box::new(TaggedValue {
            tag: Tag::new(tag),
            value: arg,
        }));
    }
    match v {
        Value::Sequence(s) => Value::Sequence(s.iter().map(short_form).collect()),
        Value::Mapping(m) => {
            Value::Mapping(m.iter().map(|(k, v)| (k.clone(), short_form(v))).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_become_long_forms() {
        let v = parse(
            "a: !Ref X\nb: !GetAtt Lb.DNSName\nc: !Sub '${X}-y'\nd: !Select [0, !GetAZs '']\ne: !If [C, 1, 2]\n",
        )
        .unwrap();
        assert_eq!(v["a"], single("Ref", "X".into()));
        assert_eq!(
            v["b"],
            single(
                "Fn::GetAtt",
                Value::Sequence(vec!["Lb".into(), "DNSName".into()])
            )
        );
        assert_eq!(v["c"], single("Fn::Sub", "${X}-y".into()));
        let sel = v["d"]["Fn::Select"].as_sequence().unwrap();
        assert_eq!(sel[1], single("Fn::GetAZs", "".into()));
        assert!(v["e"]["Fn::If"].is_sequence());
    }

    #[test]
    fn unknown_tag_is_an_error() {
        let e = parse("a: !Reff X\n").unwrap_err();
        assert!(e.contains("unknown intrinsic function `!Reff`"), "{e}");
    }

    #[test]
    fn json_is_read_too() {
        let v = parse(r#"{"Resources": {"V": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": {"Ref": "C"}}}}}"#).unwrap();
        assert_eq!(
            v["Resources"]["V"]["Properties"]["CidrBlock"],
            single("Ref", "C".into())
        );
    }

    #[test]
    fn yaml_round_trip_keeps_tags_and_nesting() {
        let text = "a: !Ref X\nb: !GetAtt Lb.DNSName\nc:\n  Fn::Base64: !Sub 'x ${X}'\nd: !Join ['', [a, !Ref Y]]\n";
        let v = parse(text).unwrap();
        let out = to_yaml(&v, "# h\n");
        assert!(out.starts_with("# h\n"));
        assert!(out.contains("a: !Ref X"), "{out}");
        assert!(out.contains("b: !GetAtt Lb.DNSName"), "{out}");
        assert_eq!(parse(&out).unwrap(), v);
    }
}
