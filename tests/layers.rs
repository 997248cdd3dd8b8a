//! The layers of src/ only point down, read from the code itself: every
//! `crate::MODULE` path (in `use` lines and inline) of every file is an edge
//! from the file's top-level module to MODULE. The README's code map names
//! the same layers; a new top-level module must be given one here.
//!
//! No root, no lab: this runs anywhere, so CI keeps it true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. A module may use modules of
/// its own layer or below, never above; and the graph has no cycle.
const LAYERS: &[(&str, &[&str])] = &[
    ("model", &["topology", "waf", "cloudformation"]),
    (
        "system",
        &["fabric", "state", "cgroup", "connlimit", "utc", "logfile"],
    ),
    ("rules", &["firewall"]),
    (
        "lab components",
        &["workloads", "containers", "lb", "services", "flowlog"],
    ),
    ("whole-lab operations", &["analysis", "teardown", "apply"]),
    ("command line", &["commands", "output"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line of code names through `crate::`, including
/// grouped imports (`use crate::{state, topology::plan};`).
fn crate_paths(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // `vpcsim_crate::x` is not ours: the match must start an identifier.
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                    _ if depth == 0 => item.push(c),
                    _ => {}
                }
            }
            items.push(item);
            out.extend(items.iter().filter_map(|i| first_segment(i)));
        } else if let Some(m) = first_segment(rest) {
            out.push(m);
        }
    }
    out
}

fn first_segment(path: &str) -> Option<String> {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && name != "self").then_some(name)
}

/// module -> (module it uses -> first place it does, `file:line`).
fn graph(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        let module = Path::new(first)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = g.entry(module.clone()).or_default();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for used in crate_paths(line) {
                if used != module {
                    edges
                        .entry(used)
                        .or_insert_with(|| format!("src/{}:{}", rel.display(), n + 1));
                }
            }
        }
    }
    g
}

/// A cycle of the graph, if there is one, as the modules along it.
fn find_cycle(g: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeMap<String, String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in g.get(m).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, g, done, path) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|m| visit(m, g, &mut done, &mut Vec::new()))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_top_level_module_has_a_layer() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let layered: BTreeSet<&str> = LAYERS.iter().flat_map(|(_, m)| m.iter().copied()).collect();
    assert_eq!(
        declared, layered,
        "src/lib.rs and LAYERS (tests/layers.rs, README code map) must name the same modules"
    );
}

#[test]
fn only_the_command_line_knows_the_command_line() {
    let g = graph(&src());
    let offenders: Vec<String> = g
        .iter()
        .filter(|(m, _)| m.as_str() != "commands")
        .filter_map(|(m, e)| e.get("commands").map(|at| format!("{m} at {at}")))
        .collect();
    assert!(
        offenders.is_empty(),
        "only main.rs and src/commands/ may use `crate::commands` (usage errors, exit codes, \
         finding a lab by name); return a typed error instead: {offenders:#?}"
    );
}

#[test]
fn layers_only_point_down() {
    let g = graph(&src());
    let mut upward = Vec::new();
    for (m, edges) in &g {
        let Some(from) = layer_of(m) else { continue };
        for (used, at) in edges {
            let Some(to) = layer_of(used) else { continue };
            if to > from {
                upward.push(format!(
                    "{m} ({}) uses {used} ({}) at {at}",
                    LAYERS[from].0, LAYERS[to].0
                ));
            }
        }
    }
    assert!(upward.is_empty(), "upward dependencies: {upward:#?}");
}

#[test]
fn no_cycle_between_top_level_modules() {
    let g = graph(&src());
    if let Some(cycle) = find_cycle(&g) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| format!("{} -> {} at {}", w[0], w[1], g[&w[0]][&w[1]]))
            .collect();
        panic!("import cycle: {steps:#?}");
    }
}

#[test]
fn the_reader_sees_grouped_imports_and_skips_comments() {
    assert_eq!(
        crate_paths("use crate::{state::LabState, topology::{self, plan::Lab}};"),
        ["state", "topology"]
    );
    assert_eq!(
        crate_paths("    let s = crate::state::lab_dir(x); // crate::commands"),
        ["state"]
    );
    assert!(crate_paths("use vpcsim_crate::x;").is_empty());
    let mut g = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a")] {
        g.entry(a.to_string())
            .or_insert_with(BTreeMap::new)
            .insert(b.to_string(), String::new());
    }
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
}
