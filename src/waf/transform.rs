//! Text transformations, named and behaving as AWS WAF's `TextTransformation`
//! types: applied in order (lowest priority first) to a request component
//! before a statement inspects it.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Transform {
    None,
    UrlDecode,
    HtmlEntityDecode,
    Lowercase,
    CompressWhiteSpace,
    CmdLine,
    Base64Decode,
    RemoveNulls,
}

impl Transform {
    pub const ALL: [(&'static str, Transform); 8] = [
        ("NONE", Transform::None),
        ("URL_DECODE", Transform::UrlDecode),
        ("HTML_ENTITY_DECODE", Transform::HtmlEntityDecode),
        ("LOWERCASE", Transform::Lowercase),
        ("COMPRESS_WHITE_SPACE", Transform::CompressWhiteSpace),
        ("CMD_LINE", Transform::CmdLine),
        ("BASE64_DECODE", Transform::Base64Decode),
        ("REMOVE_NULLS", Transform::RemoveNulls),
    ];

    pub fn parse(s: &str) -> Option<Transform> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, t)| *t)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map(|(n, _)| *n)
            .expect("every transform is listed")
    }

    pub fn apply(self, s: &[u8]) -> Vec<u8> {
        match self {
            Transform::None => s.to_vec(),
            Transform::UrlDecode => url_decode(s),
            Transform::HtmlEntityDecode => html_entity_decode(s),
            Transform::Lowercase => s.to_ascii_lowercase(),
            Transform::CompressWhiteSpace => compress_white_space(s),
            Transform::CmdLine => cmd_line(s),
            Transform::Base64Decode => base64_decode(s),
            Transform::RemoveNulls => s.iter().copied().filter(|&b| b != 0).collect(),
        }
    }
}

/// Applies a chain of transformations in order. A transformation that
/// cannot change its input (no `%` or `+` to URL-decode, no `&` to
/// entity-decode, no capital to lowercase, no NUL) is skipped: the ALB runs
/// dozens of chains per request, most on values none of them changes.
pub fn apply_all<'a>(chain: &[Transform], s: &'a [u8]) -> Cow<'a, [u8]> {
    let mut out = Cow::Borrowed(s);
    for t in chain {
        if t.may_change(&out) {
            out = Cow::Owned(t.apply(&out));
        }
    }
    out
}

impl Transform {
    /// False when applying `self` to `s` is certain to give `s` back.
    fn may_change(self, s: &[u8]) -> bool {
        match self {
            Transform::None => false,
            Transform::UrlDecode => s.iter().any(|b| matches!(b, b'%' | b'+')),
            Transform::HtmlEntityDecode => s.contains(&b'&'),
            Transform::Lowercase => s.iter().any(u8::is_ascii_uppercase),
            Transform::RemoveNulls => s.contains(&0),
            _ => true,
        }
    }
}

/// `%XX` and `+` (a space in query strings and form bodies); an invalid
/// escape is kept as written, as AWS does.
fn url_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `&quot;` `&amp;` `&lt;` `&gt;` `&nbsp;` `&apos;`, `&#DDD;` and `&#xHH;`
/// (the semicolon optional for numeric forms), as AWS lists.
fn html_entity_decode(s: &[u8]) -> Vec<u8> {
    const NAMED: [(&[u8], &[u8]); 6] = [
        (b"quot", b"\""),
        (b"amp", b"&"),
        (b"lt", b"<"),
        (b"gt", b">"),
        (b"nbsp", b"\xa0"),
        (b"apos", b"'"),
    ];
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    'outer: while i < s.len() {
        if s[i] == b'&' {
            let rest = &s[i + 1..];
            if let Some(num) = rest.strip_prefix(b"#") {
                let (radix, digits) = match num.first() {
                    Some(b'x') | Some(b'X') => (16, &num[1..]),
                    _ => (10, num),
                };
                let n = digits
                    .iter()
                    .take_while(|b| (**b as char).is_digit(radix))
                    .count();
                if n > 0 && n <= 8 {
                    let text = std::str::from_utf8(&digits[..n]).expect("digits are ASCII");
                    if let Some(c) = u32::from_str_radix(text, radix)
                        .ok()
                        .and_then(char::from_u32)
                    {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        let prefix = 1 + (radix == 16) as usize + n;
                        i += 1 + prefix + (rest.get(prefix) == Some(&b';')) as usize;
                        continue;
                    }
                }
            } else {
                for (name, value) in NAMED {
                    if rest.len() > name.len()
                        && rest[..name.len()].eq_ignore_ascii_case(name)
                        && rest[name.len()] == b';'
                    {
                        out.extend_from_slice(value);
                        i += 2 + name.len();
                        continue 'outer;
                    }
                }
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Tab, LF, CR, FF, VT and non-breaking space become spaces, runs of spaces
/// one space.
fn compress_white_space(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &b in s {
        let b = match b {
            b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0 => b' ',
            b => b,
        };
        if !(b == b' ' && out.last() == Some(&b' ')) {
            out.push(b);
        }
    }
    out
}

/// AWS's CMD_LINE: removes `\ " ' ^`, spaces before `/` and `(`; `,` and `;`
/// become spaces; runs of white space one space; lowercase.
fn cmd_line(s: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    for &b in s {
        match b {
            b'\\' | b'"' | b'\'' | b'^' => {}
            b'/' | b'(' => {
                while out.last() == Some(&b' ') {
                    out.pop();
                }
                out.push(b);
            }
            b',' | b';' | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                if out.last() != Some(&b' ') {
                    out.push(b' ');
                }
            }
            b => out.push(b.to_ascii_lowercase()),
        }
    }
    out
}

/// Standard or URL-safe alphabet, padding optional; not base64 = unchanged.
fn base64_decode(s: &[u8]) -> Vec<u8> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let t: Vec<u8> = s
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    for e in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(v) = e.decode(&t) {
            return v;
        }
    }
    s.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(x: Transform, s: &str) -> String {
        String::from_utf8_lossy(&x.apply(s.as_bytes())).into_owned()
    }

    #[test]
    fn url_decode() {
        assert_eq!(t(Transform::UrlDecode, "a%27%20OR+1%3d1"), "a' OR 1=1");
        assert_eq!(t(Transform::UrlDecode, "100%"), "100%");
        assert_eq!(t(Transform::UrlDecode, "%zz%4"), "%zz%4");
    }

    #[test]
    fn html_entity_decode() {
        assert_eq!(
            t(
                Transform::HtmlEntityDecode,
                "&lt;script&gt;&#97;&#x6C;ert&quot;"
            ),
            "<script>alert\""
        );
        assert_eq!(
            t(Transform::HtmlEntityDecode, "a &amp b &#60"),
            "a &amp b <"
        );
    }

    #[test]
    fn lowercase_and_nulls() {
        assert_eq!(t(Transform::Lowercase, "SeLeCT"), "select");
        assert_eq!(t(Transform::RemoveNulls, "a\0b\0"), "ab");
        assert_eq!(t(Transform::None, "As Is"), "As Is");
    }

    #[test]
    fn compress_white_space() {
        assert_eq!(
            t(Transform::CompressWhiteSpace, "a \t\r\n  b\x0bc"),
            "a b c"
        );
    }

    #[test]
    fn cmd_line() {
        assert_eq!(
            t(
                Transform::CmdLine,
                "C:\\WINDOWS\\\"system32\" ,  ;  Cat /etc (x)"
            ),
            "c:windowssystem32 cat/etc(x)"
        );
        assert_eq!(t(Transform::CmdLine, "w^h'o\"a\"m\\i"), "whoami");
    }

    #[test]
    fn base64_decode() {
        assert_eq!(t(Transform::Base64Decode, "PHNjcmlwdD4="), "<script>");
        assert_eq!(t(Transform::Base64Decode, "PHNjcmlwdD4"), "<script>");
        assert_eq!(t(Transform::Base64Decode, "not base64!"), "not base64!");
    }

    #[test]
    fn chains_apply_in_order() {
        let chain = [Transform::UrlDecode, Transform::Lowercase];
        assert_eq!(&*apply_all(&chain, b"%2FAPI%2Fv0"), b"/api/v0");
        let chain = [Transform::Base64Decode, Transform::HtmlEntityDecode];
        assert_eq!(&*apply_all(&chain, b"Jmx0Ow=="), b"<");
        assert!(matches!(
            apply_all(&[Transform::None], b"x"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn names_round_trip() {
        for (n, x) in Transform::ALL {
            assert_eq!(Transform::parse(n), Some(x));
            assert_eq!(x.name(), n);
        }
        assert_eq!(Transform::parse("lowercase"), None);
    }
}
