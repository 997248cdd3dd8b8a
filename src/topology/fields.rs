//! Reading the TOML into the model so that a misspelled field does not hide
//! the rest of the file: each unknown field becomes a diagnostic at its TOML
//! path with the closest known name ("did you mean"), is set aside, and
//! reading goes on, so validation still reports every other error at once.

use super::{model::Topology, Diagnostic};

/// At most this many unknown fields are set aside before giving up (each
/// costs one more pass over the document).
const MAX_UNKNOWN: usize = 64;

/// The model, and the unknown fields that were set aside; or every
/// diagnostic found when the rest cannot be read (a value of the wrong type).
pub fn read(mut value: toml::Value) -> Result<(Topology, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut diags = Vec::new();
    loop {
        let err = match serde_path_to_error::deserialize(value.clone()) {
            Ok(t) => return Ok((t, diags)),
            Err(e) => e,
        };
        let path = err.path().to_string();
        let message = err.inner().message().to_string();
        match unknown_field(&message) {
            Some((name, expected)) if diags.len() < MAX_UNKNOWN => {
                // The path ends at the unknown key or at its table.
                let table = match path.rsplit_once('.') {
                    Some((t, last)) if last == name => t.to_string(),
                    _ if path == name => String::new(),
                    _ => path.clone(),
                };
                let full = if table.is_empty() || table == "." {
                    name.clone()
                } else {
                    format!("{table}.{name}")
                };
                if !remove(&mut value, &table, &name) {
                    // Could not set it aside: report it and stop here.
                    diags.push(diagnostic(full, &name, &expected));
                    return Err(diags);
                }
                diags.push(diagnostic(full, &name, &expected));
            }
            _ => {
                // `cidr_block` set aside, then `cidr` missing in the same
                // table: one mistake, said once, with the name to use.
                if let Some(missing) = message
                    .strip_prefix("missing field `")
                    .and_then(|m| m.split('`').next())
                {
                    let table = if path == "." { "" } else { path.as_str() };
                    let typo = diags.iter_mut().find(|d| {
                        d.path.rsplit_once('.').map_or("", |(t, _)| t) == table
                            && !d.message.contains("did you mean")
                    });
                    if let Some(d) = typo {
                        d.message =
                            format!("{}: did you mean `{missing}`? (it is required)", d.message);
                        return Err(diags);
                    }
                }
                diags.push(Diagnostic {
                    path: if path == "." { String::new() } else { path },
                    message,
                    hint: "see docs/topology.md for every field and its type".into(),
                });
                return Err(diags);
            }
        }
    }
}

fn diagnostic(path: String, name: &str, expected: &[String]) -> Diagnostic {
    let closest = expected
        .iter()
        .map(|e| (strsim::damerau_levenshtein(name, e), e))
        .filter(|(d, e)| *d <= 3.max(e.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e.clone());
    let message = match &closest {
        Some(c) => format!("unknown field `{name}`: did you mean `{c}`?"),
        None => format!("unknown field `{name}`"),
    };
    let hint = if expected.is_empty() {
        "this table takes no fields; see docs/topology.md".to_string()
    } else {
        format!(
            "fields here: {}; see docs/topology.md",
            expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Diagnostic {
        path,
        message,
        hint,
    }
}

/// serde's message for `deny_unknown_fields`: "unknown field `x`, expected
/// one of `a`, `b`" / "expected `a`" / "there are no fields".
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((name.to_string(), expected))
}

/// Removes `name` from the table at `path` (`subnet[1]`, `nacl[0].inbound[2]`).
fn remove(value: &mut toml::Value, path: &str, name: &str) -> bool {
    let mut node = value;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (key, idx) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !key.is_empty() {
            let Some(next) = node.get_mut(key) else {
                return false;
            };
            node = next;
        }
        for n in idx
            .split(['[', ']'])
            .filter_map(|n| n.parse::<usize>().ok())
        {
            let Some(next) = node.get_mut(n) else {
                return false;
            };
            node = next;
        }
    }
    node.as_table_mut()
        .is_some_and(|t| t.remove(name).is_some())
}
