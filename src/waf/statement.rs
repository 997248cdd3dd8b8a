//! Rule statements in AWS WAFv2's terms: byte match, regex match, SQL
//! injection and XSS match, size constraint, IP set, and AND / OR / NOT.
//! SQL injection and XSS are detected by libinjection (the Rust port
//! `libinjectionrs`): a tokenizer and fingerprint engine, not a list of
//! substrings.

use super::engine::{Program, Scan};
use super::field::{Field, WafRequest};
use super::transform::Transform;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{LazyLock, OnceLock};

/// A regular expression as the lab plan carries it: its source, compiled
/// when first matched. Every command loads the plan (`status`, `apply`), and
/// compiling the managed groups' case-insensitive patterns was most of what
/// such a command cost; only the ALB ever matches them.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    compiled: OnceLock<regex::bytes::Regex>,
}

impl PartialEq for Pattern {
    fn eq(&self, o: &Self) -> bool {
        self.source == o.source
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// A plan's pattern was checked by [`Pattern::new`] when the plan was made.
impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Pattern::checked(String::deserialize(d)?))
    }
}

impl Pattern {
    /// A pattern from a user's file, compiled now to report its errors.
    /// AWS caps regex pattern strings at 512 characters.
    pub fn new(s: &str) -> Result<Pattern, String> {
        if s.len() > 512 {
            return Err(format!("{} characters, AWS allows 512", s.len()));
        }
        let regex = regex::bytes::Regex::new(s).map_err(|e| e.to_string())?;
        Ok(Pattern {
            source: s.to_string(),
            compiled: OnceLock::from(regex),
        })
    }

    /// A pattern known to compile (a managed rule's, or one a plan was
    /// made with): compiled when first matched.
    pub fn checked(source: String) -> Pattern {
        Pattern {
            source,
            compiled: OnceLock::new(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn regex(&self) -> &regex::bytes::Regex {
        self.compiled.get_or_init(|| {
            regex::bytes::Regex::new(&self.source)
                .expect("the pattern compiled when it was checked")
        })
    }
}

/// AWS `PositionalConstraint` of a byte match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Positional {
    Exactly,
    StartsWith,
    EndsWith,
    Contains,
    ContainsWord,
}

impl Positional {
    pub const NAMES: [&'static str; 5] = [
        "EXACTLY",
        "STARTS_WITH",
        "ENDS_WITH",
        "CONTAINS",
        "CONTAINS_WORD",
    ];

    pub fn parse(s: &str) -> Option<Positional> {
        Some(match s {
            "EXACTLY" => Positional::Exactly,
            "STARTS_WITH" => Positional::StartsWith,
            "ENDS_WITH" => Positional::EndsWith,
            "CONTAINS" => Positional::Contains,
            "CONTAINS_WORD" => Positional::ContainsWord,
            _ => return None,
        })
    }

    pub(crate) fn test(self, hay: &[u8], needle: &[u8]) -> bool {
        match self {
            Positional::Exactly => hay == needle,
            Positional::StartsWith => hay.starts_with(needle),
            Positional::EndsWith => hay.ends_with(needle),
            Positional::Contains => find(hay, needle, 0).is_some(),
            Positional::ContainsWord => {
                // A word: delimited by the ends or by characters other than
                // alphanumerics and underscore, on both sides.
                let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
                let mut from = 0;
                while let Some(i) = find(hay, needle, from) {
                    let end = i + needle.len();
                    if (i == 0 || !word(hay[i - 1])) && (end == hay.len() || !word(hay[end])) {
                        return true;
                    }
                    from = i + 1;
                }
                false
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(from.min(hay.len()));
    }
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// AWS `ComparisonOperator` of a size constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Comparison {
    Eq,
    Ne,
    Le,
    Lt,
    Ge,
    Gt,
}

impl Comparison {
    pub fn parse(s: &str) -> Option<Comparison> {
        Some(match s {
            "EQ" => Comparison::Eq,
            "NE" => Comparison::Ne,
            "LE" => Comparison::Le,
            "LT" => Comparison::Lt,
            "GE" => Comparison::Ge,
            "GT" => Comparison::Gt,
            _ => return None,
        })
    }

    pub(crate) fn test(self, a: u64, b: u64) -> bool {
        match self {
            Comparison::Eq => a == b,
            Comparison::Ne => a != b,
            Comparison::Le => a <= b,
            Comparison::Lt => a < b,
            Comparison::Ge => a >= b,
            Comparison::Gt => a > b,
        }
    }
}

/// Which address of a header stands for the client (AWS `ForwardedIPConfig`
/// and the IP set's `Position`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardedIp {
    pub header: String,
    pub position: ForwardedPosition,
    /// Header missing or not an address: the statement matches (true) or not.
    pub fallback_match: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ForwardedPosition {
    First,
    Last,
    Any,
}

impl ForwardedIp {
    /// The addresses to test; `None` when the header gives none (fallback).
    pub fn addresses(&self, r: &WafRequest<'_>) -> Option<Vec<IpAddr>> {
        let v = r.header(&self.header)?;
        let all: Vec<&str> = v.split(',').map(str::trim).collect();
        let pick: Vec<&str> = match self.position {
            ForwardedPosition::First => all.first().copied().into_iter().collect(),
            ForwardedPosition::Last => all.last().copied().into_iter().collect(),
            ForwardedPosition::Any => all,
        };
        let ips: Option<Vec<IpAddr>> = pick.iter().map(|s| s.parse().ok()).collect();
        ips.filter(|v| !v.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Statement {
    ByteMatch {
        field: Field,
        positional: Positional,
        value: String,
        transforms: Vec<Transform>,
    },
    RegexMatch {
        field: Field,
        pattern: Pattern,
        transforms: Vec<Transform>,
    },
    SqliMatch {
        field: Field,
        transforms: Vec<Transform>,
        #[serde(default)]
        sensitivity: Sensitivity,
    },
    XssMatch {
        field: Field,
        transforms: Vec<Transform>,
    },
    SizeConstraint {
        field: Field,
        comparison: Comparison,
        size: u64,
        transforms: Vec<Transform>,
    },
    IpSet {
        addresses: Vec<IpNet>,
        forwarded: Option<ForwardedIp>,
    },
    And {
        statements: Vec<Statement>,
    },
    Or {
        statements: Vec<Statement>,
    },
    Not {
        statement: Box<Statement>,
    },
}

/// Why a statement matched, for logs and `waf-explain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchDetail {
    /// AWS's `conditionType`: SQL_INJECTION, XSS, BYTE_MATCH, REGEX, …
    pub condition: String,
    /// The component (`QUERY_STRING`, `HEADER:cookie`, …), empty for IP sets.
    pub field: String,
    /// AWS's `location` (`QUERY_STRING`, `HEADER`, `BODY`, `URI`, …).
    pub location: String,
    pub transforms: Vec<Transform>,
    /// The inspected value after the transformations (at most 200 bytes).
    pub data: String,
    /// The SQL injection statement's sensitivity level (AWS logs it as
    /// `sensitivityLevel` for `SQL_INJECTION` matches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<Sensitivity>,
}

impl MatchDetail {
    pub(crate) fn new(
        condition: &str,
        field: &Field,
        transforms: &[Transform],
        data: &[u8],
    ) -> Self {
        let cut = &data[..data.len().min(200)];
        MatchDetail {
            condition: condition.into(),
            field: field.label(),
            location: field.location().into(),
            transforms: transforms.to_vec(),
            data: String::from_utf8_lossy(cut).into_owned(),
            sensitivity: None,
        }
    }
}

/// AWS's `SensitivityLevel` of a SQL injection match statement. `Low`
/// (AWS's default, and what the managed SQLi rules use) reads the input as
/// it stands and as the rest of a single-quoted SQL string; `High` adds
/// libinjection's third context, the rest of a double-quoted (MySQL) string:
/// more attacks caught, and the quoted words of ordinary text flagged too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Sensitivity {
    #[default]
    Low,
    High,
}

impl Sensitivity {
    pub fn parse(s: &str) -> Option<Sensitivity> {
        match s {
            "LOW" => Some(Sensitivity::Low),
            "HIGH" => Some(Sensitivity::High),
            _ => None,
        }
    }

    /// AWS's spelling (`sensitivityLevel` in logs).
    pub fn name(self) -> &'static str {
        match self {
            Sensitivity::Low => "LOW",
            Sensitivity::High => "HIGH",
        }
    }
}

/// libinjection's SQL injection verdict on an inspected value: on each
/// value when it is a form (`a=1&b=2`, a query string or form body), else
/// on the whole.
pub fn is_sqli(v: &[u8], level: Sensitivity) -> bool {
    values(v).any(|x| {
        !one_plain_token(x)
            && match level {
                Sensitivity::High => libinjectionrs::detect_sqli(x).is_injection(),
                Sensitivity::Low => sqli_low(x),
            }
    })
}

/// A value libinjection reads as one token of a kind that is never SQL
/// injection: all digits (one number), or letters, digits and `_` starting
/// with a letter or `_` (one word, keyword or not). Of one-token
/// fingerprints libinjection's blacklist holds only `X`, its "evil" token,
/// which no number or word gives; with no quote, `#` or `--` no other
/// context is tried. Such values (ids, numbers, single words: most values)
/// skip libinjection and no verdict changes.
pub(crate) fn one_plain_token(v: &[u8]) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    match v.first() {
        Some(b) if b.is_ascii_digit() => v.iter().all(u8::is_ascii_digit),
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => v.iter().all(word),
        _ => false,
    }
}

/// libinjection's contexts but the double-quoted one: as-is and after a
/// single quote, in ANSI SQL and, when the input has MySQL comments
/// (`#`, `--`), in MySQL's dialect.
fn sqli_low(v: &[u8]) -> bool {
    use libinjectionrs::SqliFlags;
    let ctx = |quote: SqliFlags, dialect: SqliFlags| sqli_in_context(v, quote | dialect);
    // Byte by byte: comparing each window as a slice calls memcmp.
    let mysql = v.contains(&b'#') || v.windows(2).any(|w| w[0] == b'-' && w[1] == b'-');
    let quoted = v.contains(&b'\'');
    let (none, single) = (SqliFlags::FLAG_QUOTE_NONE, SqliFlags::FLAG_QUOTE_SINGLE);
    let (ansi, my) = (SqliFlags::FLAG_SQL_ANSI, SqliFlags::FLAG_SQL_MYSQL);
    ctx(none, ansi)
        || (mysql && ctx(none, my))
        || (quoted && (ctx(single, ansi) || (mysql && ctx(single, my))))
}

/// libinjection's verdict in one context. Its verdict is its blacklist of
/// fingerprints, then a whitelist for what the blacklist holds; it looks
/// each fingerprint up among its 9,500 keywords, a binary search that
/// allocates and, in the ALB, meets cold caches. A fingerprint not on the
/// blacklist (nearly every input) is told here from a set of the same
/// fingerprints, and for an input of plain double-quoted strings (a JSON
/// body) from its [`string_shape`], remembered; one on the blacklist gets
/// libinjection's whole verdict.
fn sqli_in_context(v: &[u8], flags: libinjectionrs::SqliFlags) -> bool {
    use libinjectionrs::SqliState;
    let fingerprint_blacklisted =
        |x: &[u8]| blacklisted(SqliState::new(x, flags).get_fingerprint().as_str());
    let maybe = match string_shape(v) {
        Some(shape) => {
            let test = super::memo::Test::SqliShape {
                quote: flags.quote_context(),
                mysql: flags.is_mysql(),
            };
            super::memo::verdict(test, &shape, || fingerprint_blacklisted(&shape))
        }
        None => fingerprint_blacklisted(v),
    };
    maybe && SqliState::new(v, flags).is_sqli()
}

/// `v` with each double-quoted string's content replaced by `x`, when
/// libinjection's tokens of both are the same but for those strings' text,
/// and so are their fingerprints: the tokenizer ends a `"` string at the
/// next `"` not doubled and not after a backslash, and no fold or
/// fingerprint reads a string's text. `None` when `v` holds a byte that
/// could hide a `"` in another token or escape one (`'`, a backtick, `\`,
/// `#`, `$`, `@`, `[`, `--`, `/*`), two `"` side by side, or a string left
/// open. A JSON body of ids and words (`{"user_id": "42"}`) has the shape
/// of every other such body.
pub(crate) fn string_shape(v: &[u8]) -> Option<SmallVec<[u8; 64]>> {
    let unsafe_byte = |b: &u8| matches!(b, b'\'' | b'`' | b'\\' | b'#' | b'$' | b'@' | b'[');
    // Byte by byte, as in `sqli_low`: a slice pattern compares with memcmp.
    let unsafe_pair = |w: &[u8]| matches!((w[0], w[1]), (b'-', b'-') | (b'/', b'*') | (b'"', b'"'));
    if !v.contains(&b'"') || v.iter().any(unsafe_byte) || v.windows(2).any(unsafe_pair) {
        return None;
    }
    let mut shape = SmallVec::new();
    let mut in_string = false;
    for &b in v {
        if b == b'"' {
            if in_string {
                shape.push(b'x');
            }
            shape.push(b);
            in_string = !in_string;
        } else if !in_string {
            shape.push(b);
        }
    }
    (!in_string).then_some(shape)
}

/// Whether libinjection's blacklist holds `fingerprint`: as libinjection
/// asks it, `0` and the fingerprint in capitals among its keywords of type
/// fingerprint (`F`).
fn blacklisted(fingerprint: &str) -> bool {
    static BLACKLIST: LazyLock<HashSet<&'static str, foldhash::fast::RandomState>> =
        LazyLock::new(|| {
            libinjectionrs::sqli::sqli_data::SQL_KEYWORDS
                .iter()
                .filter(|k| k.token_type == b'F')
                .map(|k| k.word)
                .collect()
        });
    let fp = fingerprint.as_bytes();
    let mut key = [0u8; 9];
    if fp.is_empty() || fp.len() >= key.len() {
        return false;
    }
    key[0] = b'0';
    key[1..=fp.len()].copy_from_slice(fp);
    key.make_ascii_uppercase();
    std::str::from_utf8(&key[..=fp.len()]).is_ok_and(|k| BLACKLIST.contains(k))
}

/// libinjection's XSS verdict, same shape as [`is_sqli`].
pub fn is_xss(v: &[u8]) -> bool {
    values(v).any(|x| may_be_xss(x) && libinjectionrs::detect_xss(x).is_injection())
}

/// Whether libinjection's XSS could flag `v`. In each of its five contexts
/// it flags a tag, a comment or a doctype, all opened by `<`, or an
/// attribute's value after a dangerous attribute's name, and its tokenizer
/// reads a value after a name only past `=`. A value with neither byte
/// (numbers, words, JSON, most text) skips it and no verdict changes.
pub(crate) fn may_be_xss(v: &[u8]) -> bool {
    v.iter().any(|b| *b == b'<' || *b == b'=')
}

/// The values of a form, or the whole input when it is not one. A form is
/// `name=value` pairs joined by `&`, names of URL characters only: `1' or
/// 'a'='a` is not one and is read whole. Reading a form whole would make
/// its `name=` a SQL comparison in front of every value.
fn values(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    let name_char = |b: &u8| b.is_ascii_alphanumeric() || b"_.-[]%+*~$:".contains(b);
    let is_form = v.contains(&b'=')
        && v.split(|b| *b == b'&').all(|p| {
            p.is_empty()
                || p.iter()
                    .position(|b| *b == b'=')
                    .is_some_and(|i| i > 0 && p[..i].iter().all(name_char))
        });
    let whole = (!is_form).then_some(v);
    let parts = v
        .split(move |b| is_form && *b == b'&')
        .filter(move |_| is_form)
        .filter_map(|p| p.iter().position(|b| *b == b'=').map(|i| &p[i + 1..]));
    whole.into_iter().chain(parts).filter(|x| !x.is_empty())
}

impl Statement {
    /// The first reason this statement matches `r`, or `None`. Compiles the
    /// statement on each call: a web ACL compiles its statements once
    /// ([`super::WebAcl`]).
    pub fn eval(&self, r: &WafRequest<'_>) -> Option<MatchDetail> {
        let mut p = Program::default();
        let n = p.compile(self);
        p.finish();
        Scan::new(&p, r).eval(&n)
    }
}

/// An IP set statement on `r`: the address that is in the set, or the
/// forwarded-IP fallback when the header gives none.
pub(crate) fn ip_set_detail(
    addresses: &[IpNet],
    forwarded: Option<&ForwardedIp>,
    r: &WafRequest<'_>,
) -> Option<MatchDetail> {
    let ips = match forwarded {
        None => Some(vec![r.client_ip]),
        Some(f) => f.addresses(r),
    };
    let hit = match ips {
        Some(ips) => ips
            .iter()
            .find(|ip| addresses.iter().any(|n| n.contains(*ip)))
            .map(|ip| ip.to_string()),
        None if forwarded.is_some_and(|f| f.fallback_match) => {
            Some("(no forwarded address: fallback MATCH)".into())
        }
        None => None,
    };
    hit.map(|data| MatchDetail {
        condition: "IP_SET".into(),
        field: forwarded.map_or("SOURCE_IP".into(), |f| format!("HEADER:{}", f.header)),
        location: "IP".into(),
        transforms: vec![],
        data,
        sensitivity: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::field::tests::request;
    use super::super::field::Oversize;
    use super::*;

    fn byte(field: Field, p: Positional, value: &str, t: &[Transform]) -> Statement {
        Statement::ByteMatch {
            field,
            positional: p,
            value: value.into(),
            transforms: t.to_vec(),
        }
    }

    #[test]
    fn byte_match_positions() {
        let r = request("GET", "/API/v0/users?x=1", &[], "");
        let lower = [Transform::UrlDecode, Transform::Lowercase];
        let m = |p, v: &str| byte(Field::UriPath, p, v, &lower).eval(&r).is_some();
        assert!(m(Positional::Exactly, "/api/v0/users"));
        assert!(!m(Positional::Exactly, "/api/v0"));
        assert!(m(Positional::StartsWith, "/api/v0/"));
        assert!(!m(Positional::StartsWith, "/v0/"));
        assert!(m(Positional::EndsWith, "users"));
        assert!(m(Positional::Contains, "v0/us"));
        assert!(m(Positional::ContainsWord, "v0"));
        assert!(!m(Positional::ContainsWord, "user"));
        assert!(m(Positional::ContainsWord, "users"));
        // Case-sensitive without LOWERCASE.
        assert!(byte(Field::UriPath, Positional::StartsWith, "/api", &[])
            .eval(&r)
            .is_none());
    }

    #[test]
    fn regex_match() {
        let r = request("GET", "/", &[("User-Agent", "Nikto/2.5")], "");
        let s = Statement::RegexMatch {
            field: Field::Header {
                name: "user-agent".into(),
            },
            pattern: Pattern::new("(?i)nikto|sqlmap").unwrap(),
            transforms: vec![],
        };
        let d = s.eval(&r).unwrap();
        assert_eq!(
            (d.condition.as_str(), d.data.as_str()),
            ("REGEX", "Nikto/2.5")
        );
        assert!(Pattern::new("(").is_err());
        assert!(Pattern::new(&"a".repeat(513)).is_err());
    }

    #[test]
    fn sensitivity_and_forms() {
        let low = Sensitivity::Low;
        // Double-quoted words are ordinary text at Low, a MySQL string at
        // High: High flags them, and catches the double-quote breakout Low
        // gives up.
        assert!(!is_sqli(br#"the "is" stamp"#, low));
        assert!(is_sqli(br#"the "is" stamp"#, Sensitivity::High));
        assert!(!is_sqli(br#"1" or "1"="1"#, low));
        assert!(is_sqli(br#"1" or "1"="1"#, Sensitivity::High));
        // Both levels catch the classic single-quote breakout and comments.
        for l in [low, Sensitivity::High] {
            assert!(is_sqli(b"1' or '1'='1", l));
            assert!(is_sqli(b"admin'--", l));
            assert!(is_sqli(b"id=7&q=1' union select pass from users--", l));
        }
        // A form is read value by value: its `name=` is not SQL.
        assert!(!is_sqli(b"years=1950 or 1960", low));
        assert!(is_sqli(b"1 or 1=1", low));
        // Not a form (a quote in the name): read whole.
        assert!(is_sqli(b"1' or 'a'='a", low));
        assert_eq!(Sensitivity::parse("HIGH"), Some(Sensitivity::High));
        assert_eq!(Sensitivity::parse("high"), None);
    }

    #[test]
    fn without_lt_or_equals_libinjection_finds_no_xss() {
        // libinjection's dangerous tag and attribute names, URL schemes and
        // words of its own tests, in two cases, alone and after every way
        // out of an attribute value (quotes, space, slash, `>`), followed
        // by what would make them dangerous but for a `=` or `<`: numbers,
        // JSON and text too. libinjection itself says no XSS.
        let names = [
            "script",
            "iframe",
            "svg",
            "onerror",
            "onload",
            "onmouseover",
            "style",
            "xmlns",
            "xlink:href",
            "formaction",
            "src",
            "href",
            "action",
            "javascript:alert(1)",
            "vbscript:msgbox",
            "data:text/html",
            "import",
            "entity",
            "!doctype",
            "![cdata[",
            "!--[if",
            "?xml",
            "%",
            "expression(alert(1))",
            "background",
            "lowsrc",
            "attributename",
            "values",
            "handler",
        ];
        let before = [
            "", " ", "\"", "'", "`", "/", ">", "\t", "\" ", "' /", "x ", "a\"/",
        ];
        let after = [
            "",
            " ",
            " x",
            " alert(1)",
            " javascript:alert(1)",
            "/",
            ">",
            "`",
        ];
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for n in names {
            for n in [n.to_string(), n.to_ascii_uppercase()] {
                for b in before {
                    for a in after {
                        inputs.push(format!("{b}{n}{a}").into_bytes());
                        inputs.push(format!("{b}{n}{a} {n}{a}").into_bytes());
                    }
                }
            }
        }
        for x in [
            "0",
            "12345678",
            r#"{"user_id": "42"}"#,
            "it's a \"test\" > not/an `attack`",
        ] {
            inputs.push(x.as_bytes().to_vec());
        }
        assert!(inputs.len() > 10_000, "{}", inputs.len());
        for x in &inputs {
            assert!(!may_be_xss(x));
            assert!(!libinjectionrs::detect_xss(x).is_injection(), "{x:?}");
        }
        // With the `=` or the `<`, libinjection flags them, and so does the
        // shortcut leave them to it.
        for x in [
            "\" onerror=alert(1)",
            "x style=x",
            "<script>",
            "<!doctype html>",
            "' xmlns=x",
        ] {
            assert!(may_be_xss(x.as_bytes()));
            assert!(is_xss(x.as_bytes()), "{x}");
        }
    }

    #[test]
    fn the_blacklist_set_answers_as_libinjection_does() {
        use libinjectionrs::sqli::blacklist::is_blacklisted;
        // Every fingerprint libinjection knows, as its tokenizer spells them
        // (lowercase letters too), every other keyword, cut short, and
        // fingerprints it does not know.
        let mut asked: Vec<String> = Vec::new();
        for k in libinjectionrs::sqli::sqli_data::SQL_KEYWORDS {
            let w = k.word.strip_prefix('0').unwrap_or(k.word);
            asked.push(w.to_string());
            asked.push(w.to_ascii_lowercase());
            asked.push(w.chars().take(3).collect());
        }
        asked.extend(
            [
                "", "s", "{s:s}", "sos", "1oc", "n&1", "ZZZZZ", "Uk", "s&sos1",
            ]
            .map(String::from),
        );
        let flagged = asked.iter().filter(|f| is_blacklisted(f)).count();
        assert!(flagged > 8000, "{flagged}");
        for f in &asked {
            assert_eq!(blacklisted(f), is_blacklisted(f), "{f:?}");
        }
    }

    #[test]
    fn a_string_shape_has_the_fingerprint_and_the_verdict_of_its_input() {
        use libinjectionrs::{SqliFlags, SqliState};
        // Plain double-quoted strings around every kind of token libinjection
        // folds (keywords, operators, numbers, parentheses, a `::` cast,
        // JSON's punctuation), their text SQL, words or anything else that
        // is not a quote: the shape's fingerprint is the input's in every
        // context, and so is the verdict.
        let texts = [
            "42",
            "user",
            "1 or 1=1",
            "x union select password from users",
            "admin",
            "a b c d e f",
            "<script>",
            "é ü",
            "1; drop table t",
            "sleep(5)",
            "",
        ];
        let frames = [
            "{\"k\": \"{}\"}",
            "{\"a\": \"{}\", \"b\": 7, \"c\": [1, \"{}\"]}",
            "\"{}\" or \"{}\"",
            "\"{}\" union select 1",
            "1 and \"{}\"=\"{}\"",
            "select * from t where a = \"{}\"",
            "(\"{}\")",
            "\"{}\"::int",
            "\"{}\" \"{}\"",
            "or \"{}\"",
            "\"{}\";",
            "{\"q\": \"{}\"} union select 1",
        ];
        let contexts = [
            SqliFlags::FLAG_QUOTE_NONE | SqliFlags::FLAG_SQL_ANSI,
            SqliFlags::FLAG_QUOTE_NONE | SqliFlags::FLAG_SQL_MYSQL,
            SqliFlags::FLAG_QUOTE_SINGLE | SqliFlags::FLAG_SQL_ANSI,
        ];
        let (mut shaped, mut flagged) = (0, 0);
        for frame in frames {
            for t in texts {
                let input = frame.replace("{}", t);
                let v = input.as_bytes();
                let Some(shape) = string_shape(v) else {
                    continue;
                };
                shaped += 1;
                for flags in contexts {
                    let fp = |x: &[u8]| {
                        SqliState::new(x, flags)
                            .get_fingerprint()
                            .as_str()
                            .to_string()
                    };
                    assert_eq!(fp(v), fp(&shape), "{input:?}");
                    let theirs = SqliState::new(v, flags).is_sqli();
                    assert_eq!(sqli_in_context(v, flags), theirs, "{input:?}");
                    flagged += theirs as usize;
                }
            }
        }
        assert!(shaped > 100 && flagged > 10, "{shaped} {flagged}");
        // What could hide or escape a quote, two quotes side by side and an
        // open string: no shape.
        for x in [
            "{\"a\": \"it's\"}",
            "\"a\\\"b\"",
            "\"a\" -- \"b\"",
            "\"a\" /* \" */",
            "\"a\" # \"",
            "@\"a\"",
            "[\"a\"]",
            "$$\"a\"$$",
            "`\"a\"`",
            "{\"a\": \"\"}",
            "\"open",
            "no quotes",
        ] {
            assert_eq!(string_shape(x.as_bytes()), None, "{x}");
        }
        assert_eq!(
            string_shape(br#"{"user_id": "10000123"}"#).as_deref(),
            Some(&br#"{"x": "x"}"#[..])
        );
    }

    #[test]
    fn one_plain_token_is_never_sqli_for_libinjection() {
        // Every word libinjection knows (keywords, functions, operators
        // spelled as words), in three cases and with a digit after, and
        // numbers: libinjection itself says no SQL injection, as the
        // shortcut does.
        let mut words: Vec<Vec<u8>> = Vec::new();
        for k in libinjectionrs::sqli::sqli_data::SQL_KEYWORDS {
            let w = k.word.as_bytes();
            if one_plain_token(w) && !w[0].is_ascii_digit() {
                words.push(w.to_vec());
                words.push(w.to_ascii_lowercase());
                words.push([w, b"1"].concat());
            }
        }
        assert!(words.len() > 2000, "{}", words.len());
        for n in ["0", "42", "007", "18446744073709551616", &"9".repeat(100)] {
            words.push(n.as_bytes().to_vec());
        }
        words.push(b"_x".to_vec());
        for w in &words {
            assert!(one_plain_token(w));
            assert!(!libinjectionrs::detect_sqli(w).is_injection(), "{w:?}");
            assert!(!sqli_low(w));
        }
        for not_plain in ["1union", "0x1f", "1e5", "a.b", "a b", "", "-1", "é"] {
            assert!(!one_plain_token(not_plain.as_bytes()), "{not_plain}");
        }
        assert!(is_sqli(b"1union select 1", Sensitivity::Low));
    }

    #[test]
    fn sqli_and_xss_on_libinjection() {
        let sqli = Statement::SqliMatch {
            field: Field::AllQueryArgs,
            transforms: vec![Transform::UrlDecode],
            sensitivity: Sensitivity::Low,
        };
        let xss = Statement::XssMatch {
            field: Field::AllQueryArgs,
            transforms: vec![Transform::UrlDecode, Transform::HtmlEntityDecode],
        };
        let q = |q: &str| request("GET", &format!("/?{q}"), &[], "");
        assert!(sqli.eval(&q("id=1%27%20OR%20%271%27%3D%271")).is_some());
        assert!(sqli
            .eval(&q("id=1+UNION+SELECT+password+FROM+users--"))
            .is_some());
        assert!(sqli.eval(&q("id=42&name=O%27Brien")).is_none());
        assert!(sqli.eval(&q("q=select+a+good+laptop")).is_none());
        assert!(xss
            .eval(&q("q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"))
            .is_some());
        assert!(xss
            .eval(&q("q=&lt;img src=x onerror=alert(1)&gt;"))
            .is_some());
        assert!(xss.eval(&q("q=fish+%26+chips")).is_none());
        let d = sqli.eval(&q("id=1'+or+1=1--")).unwrap();
        assert_eq!(d.location, "QUERY_STRING");
        assert_eq!(d.data, "1' or 1=1--");
    }

    #[test]
    fn sqli_in_form_and_json_bodies() {
        let body = |b| Statement::SqliMatch {
            field: b,
            transforms: vec![Transform::UrlDecode],
            sensitivity: Sensitivity::Low,
        };
        let form = request("POST", "/", &[], "user=bob&pass=x%27+or+%271%27%3D%271");
        assert!(body(Field::Body {
            oversize: Oversize::Continue
        })
        .eval(&form)
        .is_some());
        let json = request("POST", "/", &[], r#"{"user_id": "1' UNION SELECT 1,2--"}"#);
        let jf = Field::JsonBody {
            scope: Default::default(),
            oversize: Oversize::Continue,
            invalid: Default::default(),
        };
        assert!(body(jf.clone()).eval(&json).is_some());
        let benign = request("POST", "/", &[], r#"{"user_id": "42"}"#);
        assert!(body(jf).eval(&benign).is_none());
    }

    #[test]
    fn size_constraint() {
        let r = request("GET", "/?q=12345", &[], "");
        let s = |c, n| Statement::SizeConstraint {
            field: Field::QueryArg { name: "q".into() },
            comparison: c,
            size: n,
            transforms: vec![],
        };
        assert!(s(Comparison::Eq, 5).eval(&r).is_some());
        assert!(s(Comparison::Ne, 5).eval(&r).is_none());
        assert!(s(Comparison::Gt, 4).eval(&r).is_some());
        assert!(s(Comparison::Ge, 5).eval(&r).is_some());
        assert!(s(Comparison::Lt, 5).eval(&r).is_none());
        assert!(s(Comparison::Le, 5).eval(&r).is_some());
        // A missing component has no size: no match.
        let none = request("GET", "/", &[], "");
        assert!(s(Comparison::Ge, 0).eval(&none).is_none());
    }

    #[test]
    fn ip_set_source_and_forwarded() {
        let set = |fwd| Statement::IpSet {
            addresses: vec!["203.0.113.0/24".parse().unwrap()],
            forwarded: fwd,
        };
        let r = request(
            "GET",
            "/",
            &[("X-Forwarded-For", "198.51.100.7, 203.0.113.9")],
            "",
        );
        assert!(set(None).eval(&r).is_some());
        let f = |position, fallback_match| {
            Some(ForwardedIp {
                header: "X-Forwarded-For".into(),
                position,
                fallback_match,
            })
        };
        assert!(set(f(ForwardedPosition::First, false)).eval(&r).is_none());
        assert!(set(f(ForwardedPosition::Last, false)).eval(&r).is_some());
        assert!(set(f(ForwardedPosition::Any, false)).eval(&r).is_some());
        let mut bare = r.clone();
        bare.headers.clear();
        bare.client_ip = "192.0.2.1".parse().unwrap();
        assert!(set(None).eval(&bare).is_none());
        assert!(set(f(ForwardedPosition::First, true)).eval(&bare).is_some());
        assert!(set(f(ForwardedPosition::First, false))
            .eval(&bare)
            .is_none());
    }

    fn and(statements: Vec<Statement>) -> Statement {
        Statement::And { statements }
    }

    fn not(s: Statement) -> Statement {
        Statement::Not {
            statement: Box::new(s),
        }
    }

    #[test]
    fn and_or_not() {
        let r = request("POST", "/login", &[], "");
        let post = byte(Field::Method, Positional::Exactly, "POST", &[]);
        let get = byte(Field::Method, Positional::Exactly, "GET", &[]);
        let login = byte(Field::UriPath, Positional::Exactly, "/login", &[]);
        let both = and(vec![post.clone(), login.clone()]);
        assert_eq!(both.eval(&r).unwrap().field, "URI_PATH");
        assert!(and(vec![get.clone(), login.clone()]).eval(&r).is_none());
        assert!(Statement::Or {
            statements: vec![get.clone(), login],
        }
        .eval(&r)
        .is_some());
        assert!(not(get).eval(&r).is_some());
        assert!(not(post).eval(&r).is_none());
    }

    #[test]
    fn statements_travel_in_the_plan() {
        let s = not(Statement::RegexMatch {
            field: Field::Header { name: "x".into() },
            pattern: Pattern::new("^a+$").unwrap(),
            transforms: vec![Transform::Lowercase],
        });
        let back: Statement = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
