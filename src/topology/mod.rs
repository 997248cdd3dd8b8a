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

/// A diagnostic at its 1-based line and column.
pub type Located = (usize, usize, Diagnostic);

/// Every error of a file at once, each with `file:line:col`.
#[derive(Debug, thiserror::Error)]
pub struct TopologyError {
    pub file: PathBuf,
    /// (line, column, diagnostic), 1-based, in file order.
    pub errors: Vec<Located>,
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
    Source::read(file)?.validate(None)
}

/// A topology file read and parsed, not yet validated: what a change to a
/// running lab needs first, the lab's name, without validating twice (once to
/// learn the name, once pinned to what the running lab allocated).
pub struct Source {
    file: PathBuf,
    text: String,
    topo: model::Topology,
    /// Unknown fields, set aside so the rest is still read.
    unknown: Vec<Diagnostic>,
}

impl Source {
    /// Reads the file and parses its TOML; a file that is not TOML (or not
    /// a readable file) has only that error.
    pub fn read(file: &Path) -> Result<Source, TopologyError> {
        let error = |errors| TopologyError {
            file: file.to_path_buf(),
            errors,
        };
        let text = files::read_text(file, files::MAX_TOPOLOGY_BYTES).map_err(|e| {
            error(vec![(
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
            )])
        })?;
        let (topo, unknown) = parse_fields(&text).map_err(error)?;
        Ok(Source {
            file: file.to_path_buf(),
            text,
            topo,
            unknown,
        })
    }

    /// The lab's name, once it is known to be a valid one (it names
    /// namespaces and state files).
    pub fn lab_name(&self) -> Result<&str, TopologyError> {
        validate::lab_name(&self.topo)
            .map(|()| self.topo.name.as_str())
            .map_err(|diags| self.error(diags))
    }

    /// Validates the topology; with `previous` (the running lab), what stays
    /// keeps what the lab allocated to it (`validate::validate_with`).
    pub fn validate(&self, previous: Option<&plan::Lab>) -> Result<plan::Lab, TopologyError> {
        let base = self.file.parent().unwrap_or(Path::new("."));
        finish(&self.topo, self.unknown.clone(), base, previous).map_err(|diags| self.error(diags))
    }

    fn error(&self, diags: Vec<Diagnostic>) -> TopologyError {
        TopologyError {
            file: self.file.clone(),
            errors: locate::locate_all(&self.text, diags),
        }
    }
}

/// Parses and validates topology text; `base` resolves relative paths
/// (`user_data_file`).
pub fn parse(text: &str, base: &Path) -> Result<plan::Lab, Vec<Located>> {
    let (topo, unknown) = parse_fields(text)?;
    finish(&topo, unknown, base, None).map_err(|diags| locate::locate_all(text, diags))
}

/// TOML syntax, then the fields: the topology and its unknown fields.
fn parse_fields(text: &str) -> Result<(model::Topology, Vec<Diagnostic>), Vec<Located>> {
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
    fields::read(toml::Value::Table(table)).map_err(|diags| locate::locate_all(text, diags))
}

/// Validation, reporting unknown fields with the rest.
fn finish(
    topo: &model::Topology,
    mut diags: Vec<Diagnostic>,
    base: &Path,
    previous: Option<&plan::Lab>,
) -> Result<plan::Lab, Vec<Diagnostic>> {
    match validate::validate_with(topo, base, previous) {
        Ok(lab) if diags.is_empty() => Ok(lab),
        Ok(_) => Err(diags),
        Err(more) => {
            diags.extend(more);
            Err(diags)
        }
    }
}
