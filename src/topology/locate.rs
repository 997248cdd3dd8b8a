//! Turns a diagnostic's TOML path (`subnet[1].cidr`) into a line and column
//! of the topology text, using `toml_edit`'s spans.
//!
//! A path that does not exist in the text (a missing field, a default) points
//! at the deepest part that does: the key, or the table header.

use super::Diagnostic;
use std::ops::Range;
use toml_edit::{ImDocument, Item, Table, Value};

/// 1-based line and column (in characters) of a byte offset of `text`.
pub fn line_col(text: &str, byte: usize) -> (usize, usize) {
    let mut byte = byte.min(text.len());
    while !text.is_char_boundary(byte) {
        byte -= 1;
    }
    let before = &text[..byte];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Locates every diagnostic; the result is sorted in file order (stable for
/// diagnostics on the same spot).
pub fn locate_all(text: &str, diags: Vec<Diagnostic>) -> Vec<(usize, usize, Diagnostic)> {
    let doc = ImDocument::parse(text).ok();
    let mut out: Vec<(usize, usize, Diagnostic)> = diags
        .into_iter()
        .map(|d| {
            let byte = doc
                .as_ref()
                .and_then(|doc| span_of(doc.as_item(), &d.path))
                .map(|s| s.start)
                .unwrap_or(0);
            let (line, col) = line_col(text, byte);
            (line, col, d)
        })
        .collect();
    out.sort_by_key(|(line, col, _)| (*line, *col));
    out
}

/// One step of a path: `key` or `key[3]` (or `key[3][1]`).
fn segments(path: &str) -> Vec<(&str, Vec<usize>)> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .map(|seg| {
            let (name, rest) = match seg.find('[') {
                Some(i) => (&seg[..i], &seg[i..]),
                None => (seg, ""),
            };
            let idx = rest
                .split(['[', ']'])
                .filter_map(|n| n.parse::<usize>().ok())
                .collect();
            (name, idx)
        })
        .collect()
}

enum Node<'a> {
    Item(&'a Item),
    Table(&'a Table),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn get(&self, key: &str) -> Option<(Option<Range<usize>>, Node<'a>)> {
        let (k, child) = match self {
            Node::Item(item) => item.as_table_like()?.get_key_value(key)?,
            Node::Table(t) => t.get_key_value(key)?,
            Node::Value(Value::InlineTable(t)) => t.get_key_value(key)?,
            Node::Value(_) => return None,
        };
        Some((k.span(), Node::Item(child)))
    }

    fn index(&self, i: usize) -> Option<Node<'a>> {
        match self {
            Node::Item(Item::ArrayOfTables(a)) => a.get(i).map(Node::Table),
            Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => {
                a.get(i).map(Node::Value)
            }
            _ => None,
        }
    }

    fn span(&self) -> Option<Range<usize>> {
        match self {
            Node::Item(i) => i.span(),
            Node::Table(t) => t.span(),
            Node::Value(v) => v.span(),
        }
    }
}

/// Span of the deepest element of `path` present in the document.
fn span_of(root: &Item, path: &str) -> Option<Range<usize>> {
    let mut node = Node::Item(root);
    let mut best: Option<Range<usize>> = None;
    for (name, idx) in segments(path) {
        let Some((key_span, child)) = node.get(name) else {
            return best;
        };
        best = child.span().or(key_span).or(best);
        node = child;
        for i in idx {
            let Some(child) = node.index(i) else {
                return best;
            };
            best = child.span().or(best);
            node = child;
        }
    }
    best
}
