//! A web ACL's `logging`: AWS's logging configuration (a filter of
//! keep/drop conditions on actions and labels, and redacted fields),
//! resolved into [`Logging`].

use super::context::Ctx;
use crate::topology::model::{WafLogFilter, WafLogging, WafRedactedField};
use crate::waf::field::Field;
use crate::waf::log::{Condition, FilterRule, LogAction, LogFilter, Logging};

impl Ctx {
    pub(super) fn waf_logging(&mut self, l: &WafLogging, p: &str) -> Option<Logging> {
        let filter = l
            .filter
            .as_ref()
            .map(|f| self.log_filter(f, &format!("{p}.filter")));
        let redacted = l
            .redacted_fields
            .iter()
            .enumerate()
            .map(|(i, r)| self.redacted_field(r, &format!("{p}.redacted_fields[{i}]")))
            .collect::<Vec<_>>();
        Some(Logging {
            filter: match filter {
                Some(f) => Some(f?),
                None => None,
            },
            redacted: redacted.into_iter().collect::<Option<_>>()?,
        })
    }

    /// `keep` or `drop` (AWS writes them in capitals: both are taken).
    fn behavior(&mut self, s: &str, path: String) -> Option<bool> {
        let s = s.to_ascii_lowercase();
        self.keyword(path, "behavior", &s, &[("keep", true), ("drop", false)])
    }

    fn log_filter(&mut self, f: &WafLogFilter, p: &str) -> Option<LogFilter> {
        let default_keep = self.behavior(&f.default, format!("{p}.default"));
        let given = [
            f.keep.as_ref().map(|c| ("keep", c)),
            f.drop.as_ref().map(|c| ("drop", c)),
        ];
        let shorthand: Vec<_> = given.into_iter().flatten().collect();
        let filters = match (&shorthand[..], &f.filters) {
            ([(field, conditions)], None) => vec![FilterRule {
                keep: *field == "keep",
                meets_all: false,
                conditions: self.log_conditions(conditions, &format!("{p}.{field}"))?,
            }],
            ([], Some(rules)) => {
                if rules.is_empty() {
                    self.err(
                        format!("{p}.filters"),
                        "a logging filter needs at least one filter",
                        "add one, e.g. { behavior = \"keep\", requirement = \"meets_any\", conditions = [\"BLOCK\"] }",
                    );
                    return None;
                }
                let mut out = Vec::new();
                for (i, r) in rules.iter().enumerate() {
                    let rp = format!("{p}.filters[{i}]");
                    let keep = self.behavior(&r.behavior, format!("{rp}.behavior"));
                    let meets_all = self.keyword(
                        format!("{rp}.requirement"),
                        "requirement",
                        &r.requirement.to_ascii_lowercase(),
                        &[("meets_all", true), ("meets_any", false)],
                    );
                    let conditions =
                        self.log_conditions(&r.conditions, &format!("{rp}.conditions"));
                    out.push(FilterRule {
                        keep: keep?,
                        meets_all: meets_all?,
                        conditions: conditions?,
                    });
                }
                out
            }
            _ => {
                self.err(
                    p.to_string(),
                    "a logging filter takes exactly one of `keep`, `drop` and `filters`",
                    "e.g. filter = { default = \"drop\", keep = [\"BLOCK\", \"COUNT\"] }, or filters = [ { behavior, requirement, conditions }, … ] evaluated in order",
                );
                return None;
            }
        };
        Some(LogFilter {
            default_keep: default_keep?,
            filters,
        })
    }

    /// Action names (AWS's `ActionCondition`) or fully qualified labels
    /// (`LabelNameCondition`: they have a `:`, an action name never does).
    fn log_conditions(&mut self, list: &[String], p: &str) -> Option<Vec<Condition>> {
        if list.is_empty() {
            self.err(
                p.to_string(),
                "a filter needs at least one condition",
                "add an action such as \"BLOCK\" or a label such as \"awswaf:managed:aws:sql-database:SQLi_Body\"",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, c) in list.iter().enumerate() {
            if c.contains(':') {
                out.push(Condition::Label(c.clone()));
                continue;
            }
            match LogAction::ALL
                .iter()
                .find(|a| a.name().eq_ignore_ascii_case(c))
            {
                Some(a) => out.push(Condition::Action(*a)),
                None => {
                    ok = false;
                    let names: Vec<&str> = LogAction::ALL.iter().map(|a| a.name()).collect();
                    let close = names
                        .iter()
                        .min_by_key(|n| strsim::damerau_levenshtein(&c.to_ascii_uppercase(), n))
                        .filter(|n| strsim::damerau_levenshtein(&c.to_ascii_uppercase(), n) <= 3);
                    self.err(
                        format!("{p}[{i}]"),
                        match close {
                            Some(n) => format!("unknown condition `{c}`: did you mean `{n}`?"),
                            None => format!("unknown condition `{c}`"),
                        },
                        format!(
                            "an action ({}) or a fully qualified label (awswaf:managed:aws:sql-database:SQLi_Body)",
                            names.join(", ")
                        ),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    fn redacted_field(&mut self, r: &WafRedactedField, p: &str) -> Option<Field> {
        let f = match r.field.as_str() {
            "method" => Field::Method,
            "uri_path" => Field::UriPath,
            "query_string" => Field::QueryString,
            "header" => match &r.name {
                Some(n) if !n.is_empty() => {
                    return Some(Field::Header {
                        name: n.to_ascii_lowercase(),
                    })
                }
                _ => {
                    self.err(
                        format!("{p}.name"),
                        "a redacted header needs its name",
                        "add name = \"authorization\" (any header; not case sensitive)",
                    );
                    return None;
                }
            },
            other => {
                self.err(
                    format!("{p}.field"),
                    format!("AWS cannot redact `{other}` from WAF logs"),
                    "use \"method\", \"uri_path\", \"query_string\" or \"header\" (with name)",
                );
                return None;
            }
        };
        if r.name.is_some() {
            self.err(
                format!("{p}.name"),
                format!("`name` is only for field = \"header\", not `{}`", r.field),
                "remove name",
            );
        }
        Some(f)
    }
}
