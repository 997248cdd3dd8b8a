//! The statements inside `[[web_acl]]` rules: byte, regex, SQLi/XSS, size,
//! IP set and their AND / OR / NOT, the request fields they read and the
//! text transformations they apply, checked against WAFv2's rules.

use super::context::Ctx;
use crate::topology::model::{WafForwardedIp, WafStatement};
use crate::waf::field::{Field, InvalidJson, Oversize, Scope};
use crate::waf::statement::{
    Comparison, ForwardedIp, ForwardedPosition, Pattern, Positional, Sensitivity, Statement,
};
use crate::waf::transform::Transform;
use ipnet::IpNet;

impl Ctx {
    pub(super) fn fallback(&mut self, f: Option<&str>, p: &str) -> Option<bool> {
        self.keyword(
            format!("{p}.fallback"),
            "fallback",
            f.unwrap_or("NO_MATCH"),
            &[("MATCH", true), ("NO_MATCH", false)],
        )
    }

    pub(super) fn ip_set(
        &mut self,
        set: &[String],
        f: Option<&WafForwardedIp>,
        p: &str,
    ) -> Option<Statement> {
        let mut addresses = Vec::new();
        let mut ok = true;
        for (k, a) in set.iter().enumerate() {
            match a.parse::<IpNet>() {
                Ok(n) if n.trunc() == n => addresses.push(n),
                _ => {
                    ok = false;
                    self.err(
                        format!("{p}.ip_set[{k}]"),
                        format!("`{a}` is not a network in CIDR notation"),
                        "write it like 203.0.113.0/24 or 198.51.100.7/32 (host bits zero)",
                    );
                }
            }
        }
        if set.is_empty() {
            ok = false;
            self.err(
                format!("{p}.ip_set"),
                "empty IP set",
                "list at least one CIDR",
            );
        }
        let forwarded = match f {
            None => None,
            Some(f) => {
                let fp = format!("{p}.forwarded_ip");
                let position = self.keyword(
                    format!("{fp}.position"),
                    "position",
                    f.position.as_deref().unwrap_or("FIRST"),
                    &[
                        ("FIRST", ForwardedPosition::First),
                        ("LAST", ForwardedPosition::Last),
                        ("ANY", ForwardedPosition::Any),
                    ],
                )?;
                Some(ForwardedIp {
                    header: f.header.clone(),
                    position,
                    fallback_match: self.fallback(f.fallback.as_deref(), &fp)?,
                })
            }
        };
        ok.then_some(Statement::IpSet {
            addresses,
            forwarded,
        })
    }

    pub(super) fn statement(&mut self, s: &WafStatement, p: &str) -> Option<Statement> {
        let kinds = [
            ("positional", s.positional.is_some() || s.value.is_some()),
            ("regex", s.regex.is_some()),
            ("detect", s.detect.is_some()),
            ("size", s.size.is_some() || s.comparison.is_some()),
            ("ip_set", s.ip_set.is_some()),
            ("and", s.and.is_some()),
            ("or", s.or.is_some()),
            ("not", s.not.is_some()),
        ];
        let set: Vec<&str> = kinds.iter().filter(|k| k.1).map(|k| k.0).collect();
        if set.len() != 1 {
            self.err(
                p.to_string(),
                if set.is_empty() {
                    "the statement says nothing to match".to_string()
                } else {
                    format!("the statement mixes {}", set.join(", "))
                },
                "use exactly one of: positional + value (byte match), regex, detect = \"sqli\"/\"xss\", comparison + size, ip_set, and, or, not",
            );
            return None;
        }
        let nested = |c: &mut Ctx, list: &[WafStatement], key: &str| -> Option<Vec<Statement>> {
            if list.len() < 2 {
                c.err(
                    format!("{p}.{key}"),
                    format!("`{key}` needs at least two statements"),
                    "AWS's logical statements combine two or more",
                );
                return None;
            }
            let v: Vec<Option<Statement>> = list
                .iter()
                .enumerate()
                .map(|(k, x)| c.statement(x, &format!("{p}.{key}[{k}]")))
                .collect();
            v.into_iter().collect()
        };
        match set[0] {
            "and" => {
                return Some(Statement::And {
                    statements: nested(self, s.and.as_deref()?, "and")?,
                })
            }
            "or" => {
                return Some(Statement::Or {
                    statements: nested(self, s.or.as_deref()?, "or")?,
                })
            }
            "not" => {
                let inner = self.statement(s.not.as_deref()?, &format!("{p}.not"))?;
                return Some(Statement::Not {
                    statement: Box::new(inner),
                });
            }
            "ip_set" => return self.ip_set(s.ip_set.as_deref()?, s.forwarded_ip.as_ref(), p),
            _ => {}
        }
        let field = self.field(s, p);
        let mut transforms = Vec::new();
        for (k, t) in s.transforms.iter().enumerate() {
            match Transform::parse(t) {
                Some(t) => transforms.push(t),
                None => self.err(
                    format!("{p}.transforms[{k}]"),
                    format!("unknown text transformation `{t}`"),
                    format!(
                        "use AWS's names: {}",
                        Transform::ALL
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        let transforms_ok = transforms.len() == s.transforms.len();
        if s.sensitivity.is_some() && s.detect.as_deref() != Some("sqli") {
            self.err(
                format!("{p}.sensitivity"),
                "a sensitivity level belongs to a SQL injection match only",
                "remove it, or use it with detect = \"sqli\"",
            );
        }
        let statement = match set[0] {
            "positional" => {
                let positional = match s.positional.as_deref().map(|x| (x, Positional::parse(x))) {
                    Some((_, Some(x))) => Some(x),
                    Some((x, None)) => {
                        self.err(
                            format!("{p}.positional"),
                            format!("unknown positional constraint `{x}`"),
                            format!("use one of: {}", Positional::NAMES.join(", ")),
                        );
                        None
                    }
                    None => {
                        self.err(
                            format!("{p}.positional"),
                            "a byte match needs a positional constraint",
                            format!("add positional = one of: {}", Positional::NAMES.join(", ")),
                        );
                        None
                    }
                };
                let value = match &s.value {
                    Some(v) if !v.is_empty() && v.len() <= 200 => Some(v.clone()),
                    Some(_) => {
                        self.err(
                            format!("{p}.value"),
                            "the search string must be 1-200 bytes",
                            "AWS's limit for a byte match",
                        );
                        None
                    }
                    None => {
                        self.err(
                            format!("{p}.value"),
                            "a byte match needs a value",
                            "add value = \"…\"",
                        );
                        None
                    }
                };
                Statement::ByteMatch {
                    field: field?,
                    positional: positional?,
                    value: value?,
                    transforms,
                }
            }
            "regex" => {
                let pattern = match Pattern::new(s.regex.as_deref()?) {
                    Ok(x) => Some(x),
                    Err(e) => {
                        self.err(
                            format!("{p}.regex"),
                            format!(
                                "the regular expression does not compile: {}",
                                e.lines().last().unwrap_or("").trim_start_matches("error: ")
                            ),
                            "fix the pattern (Rust regex syntax, at most 512 characters)",
                        );
                        None
                    }
                };
                Statement::RegexMatch {
                    field: field?,
                    pattern: pattern?,
                    transforms,
                }
            }
            "detect" => match s.detect.as_deref()? {
                "sqli" => {
                    let sensitivity = match s.sensitivity.as_deref() {
                        None => Some(Sensitivity::Low),
                        Some(x) => Sensitivity::parse(x).or_else(|| {
                            self.err(
                                format!("{p}.sensitivity"),
                                format!("unknown sensitivity level `{x}`"),
                                "use \"LOW\" (the default) or \"HIGH\"",
                            );
                            None
                        }),
                    };
                    Statement::SqliMatch {
                        field: field?,
                        transforms,
                        sensitivity: sensitivity?,
                    }
                }
                "xss" => Statement::XssMatch {
                    field: field?,
                    transforms,
                },
                other => {
                    self.err(
                        format!("{p}.detect"),
                        format!("unknown detection `{other}`"),
                        "use \"sqli\" (SQL injection) or \"xss\" (cross-site scripting)",
                    );
                    return None;
                }
            },
            _ => {
                let comparison = match s.comparison.as_deref().map(|x| (x, Comparison::parse(x))) {
                    Some((_, Some(c))) => Some(c),
                    _ => {
                        self.err(
                            format!("{p}.comparison"),
                            "a size constraint needs a comparison",
                            "comparison = \"EQ\", \"NE\", \"LE\", \"LT\", \"GE\" or \"GT\"",
                        );
                        None
                    }
                };
                let size = match s.size {
                    Some(n) if (0..=21_474_836_480).contains(&n) => Some(n as u64),
                    _ => {
                        self.err(
                            format!("{p}.size"),
                            "a size constraint needs a size in bytes",
                            "size = a number from 0 up",
                        );
                        None
                    }
                };
                Statement::SizeConstraint {
                    field: field?,
                    comparison: comparison?,
                    size: size?,
                    transforms,
                }
            }
        };
        transforms_ok.then_some(statement)
    }

    pub(super) fn field(&mut self, s: &WafStatement, p: &str) -> Option<Field> {
        let Some(name) = s.field.as_deref() else {
            self.err(
                format!("{p}.field"),
                "the statement names no field",
                format!("add field = one of: {}", Field::NAMES.join(", ")),
            );
            return None;
        };
        let scoped = matches!(name, "all_headers" | "cookies" | "json_body");
        let bodied = matches!(name, "body" | "json_body");
        if s.scope.is_some() && !scoped {
            self.err(
                format!("{p}.scope"),
                format!("field `{name}` has no match scope"),
                "scope applies to all_headers, cookies and json_body",
            );
        }
        if s.oversize.is_some() && !bodied {
            self.err(
                format!("{p}.oversize"),
                format!("field `{name}` has no oversize handling"),
                "oversize applies to body and json_body",
            );
        }
        if s.invalid_json.is_some() && name != "json_body" {
            self.err(
                format!("{p}.invalid_json"),
                "invalid_json applies to json_body only",
                "remove it",
            );
        }
        let named = matches!(name, "header" | "query_arg");
        if s.name.is_some() && !named {
            self.err(
                format!("{p}.name"),
                format!("field `{name}` takes no name"),
                "name applies to header and query_arg",
            );
        }
        let scope = self.keyword(
            format!("{p}.scope"),
            "scope",
            s.scope.as_deref().unwrap_or("ALL"),
            &[
                ("ALL", Scope::All),
                ("KEY", Scope::Key),
                ("VALUE", Scope::Value),
            ],
        )?;
        let oversize = self.keyword(
            format!("{p}.oversize"),
            "oversize handling",
            s.oversize.as_deref().unwrap_or("CONTINUE"),
            &[
                ("CONTINUE", Oversize::Continue),
                ("MATCH", Oversize::Match),
                ("NO_MATCH", Oversize::NoMatch),
            ],
        )?;
        let invalid = self.keyword(
            format!("{p}.invalid_json"),
            "invalid JSON behaviour",
            s.invalid_json.as_deref().unwrap_or("EVALUATE_AS_STRING"),
            &[
                ("MATCH", InvalidJson::Match),
                ("NO_MATCH", InvalidJson::NoMatch),
                ("EVALUATE_AS_STRING", InvalidJson::EvaluateAsString),
            ],
        )?;
        let need_name = |c: &mut Ctx| match &s.name {
            Some(n) if !n.is_empty() => Some(n.clone()),
            _ => {
                c.err(
                    format!("{p}.name"),
                    format!(
                        "field `{name}` needs the name of the {}",
                        if name == "header" {
                            "header"
                        } else {
                            "query argument"
                        }
                    ),
                    "add name = \"…\"",
                );
                None
            }
        };
        Some(match name {
            "method" => Field::Method,
            "uri_path" => Field::UriPath,
            "query_string" => Field::QueryString,
            "query_arg" => Field::QueryArg {
                name: need_name(self)?,
            },
            "all_query_args" => Field::AllQueryArgs,
            "header" => Field::Header {
                name: need_name(self)?,
            },
            "all_headers" => Field::AllHeaders { scope },
            "cookies" => Field::Cookies { scope },
            "body" => Field::Body { oversize },
            "json_body" => Field::JsonBody {
                scope,
                oversize,
                invalid,
            },
            other => {
                self.err(
                    format!("{p}.field"),
                    format!("unknown field `{other}`"),
                    format!("use one of: {}", Field::NAMES.join(", ")),
                );
                return None;
            }
        })
    }
}
