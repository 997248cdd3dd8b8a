//! Topology files: parsing ([`model`]), checking and resolving ([`validate`])
//! into the [`plan::Lab`] every other module builds from.
//!
//! Owns: the file's meaning, every check of it and the resolved plan. Must not touch:
//! the kernel, processes or a lab's state: everything here is a function of the files.

pub mod fields;
pub mod files;
pub mod locate;
pub mod model;
pub mod plan;
pub mod policy;
pub mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a topology file, addressed by its TOML path
/// (`subnet[1].cidr`, `nacl[0].inbound[2].rule`); [`locate`] turns the path
/// into a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: String,
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Every error of a file at once, each with `file:line:col`.
#[derive(Debug, thiserror::Error)]
pub struct TopologyError {
    pub file: PathBuf,
    /// (line, column, diagnostic), 1-based, in file order.
    pub errors: Vec<(usize, usize, Diagnostic)>,
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{}: {n} error{} in topology, nothing was built",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for (line, col, d) in &self.errors {
            if d.path.is_empty() {
                writeln!(f, "{}:{line}:{col}: {}", self.file.display(), d.message)?;
            } else {
                writeln!(
                    f,
                    "{}:{line}:{col}: {}: {}",
                    self.file.display(),
                    d.path,
                    d.message
                )?;
            }
            writeln!(f, "    hint: {}", d.hint)?;
        }
        Ok(())
    }
}

/// Reads, parses and validates a topology file.
pub fn load(file: &Path) -> Result<plan::Lab, TopologyError> {
    load_with(file, None)
}

/// `load` for a change to the running lab `previous`: what stays keeps what
/// the lab allocated to it (`validate::validate_with`).
pub fn load_with(file: &Path, previous: Option<&plan::Lab>) -> Result<plan::Lab, TopologyError> {
    let text = files::read_text(file, files::MAX_TOPOLOGY_BYTES).map_err(|e| TopologyError {
        file: file.to_path_buf(),
        errors: vec![(
            1,
            1,
            Diagnostic {
                path: String::new(),
                message: e.to_string(),
                hint: format!(
                    "give a regular file of at most {} bytes; topologies live in topologies/",
                    files::MAX_TOPOLOGY_BYTES
                ),
            },
        )],
    })?;
    let base = file.parent().unwrap_or(Path::new("."));
    parse_with(&text, base, previous).map_err(|errors| TopologyError {
        file: file.to_path_buf(),
        errors,
    })
}

/// Parses and validates topology text; `base` resolves relative paths
/// (`user_data_file`).
pub fn parse(text: &str, base: &Path) -> Result<plan::Lab, Vec<(usize, usize, Diagnostic)>> {
    parse_with(text, base, None)
}

fn parse_with(
    text: &str,
    base: &Path,
    previous: Option<&plan::Lab>,
) -> Result<plan::Lab, Vec<(usize, usize, Diagnostic)>> {
    // TOML syntax first: a file that is not TOML has only that error.
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let (line, col) = e
            .span()
            .map(|s| locate::line_col(text, s.start))
            .unwrap_or((1, 1));
        vec![(
            line,
            col,
            Diagnostic {
                path: String::new(),
                message: e.message().to_string(),
                hint: "fix the TOML syntax at this spot".into(),
            },
        )]
    })?;
    // Unknown fields are set aside (and reported) so the rest is still read.
    let (topo, mut diags) =
        fields::read(toml::Value::Table(table)).map_err(|diags| locate::locate_all(text, diags))?;
    match validate::validate_with(&topo, base, previous) {
        Ok(lab) if diags.is_empty() => Ok(lab),
        Ok(_) => Err(locate::locate_all(text, diags)),
        Err(more) => {
            diags.extend(more);
            Err(locate::locate_all(text, diags))
        }
    }
}
