//! The request as the WAF sees it and the components (AWS's `FieldToMatch`)
//! a statement inspects.

use serde::{Deserialize, Serialize};
use smallvec::{smallvec, SmallVec};
use std::borrow::Cow;
use std::net::IpAddr;

/// What an ALB forwards of a body to AWS WAF: the first 8 KB, a fixed limit
/// for Application Load Balancers.
pub const BODY_LIMIT: usize = 8 * 1024;

/// One HTTP request, as much of it as the ALB hands to the WAF: borrowed
/// from the ALB's parsed request where it can be (no copy per request),
/// owned where a caller builds one.
#[derive(Debug, Clone)]
pub struct WafRequest<'a> {
    pub client_ip: IpAddr,
    pub method: Cow<'a, str>,
    /// The path as sent (not decoded).
    pub uri: Cow<'a, str>,
    /// After `?`, as sent; empty when there is none.
    pub query: Cow<'a, str>,
    pub http_version: Cow<'a, str>,
    /// In arrival order, names as sent.
    pub headers: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// At most [`BODY_LIMIT`] bytes.
    pub body: Cow<'a, [u8]>,
    /// The body was longer than [`BODY_LIMIT`].
    pub body_oversize: bool,
}

impl WafRequest<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    fn query_args(&self) -> impl Iterator<Item = (&str, &str)> {
        self.query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
    }

    fn cookies(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(';'))
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
            .map(|c| c.split_once('=').unwrap_or((c, "")))
    }
}

/// The two parts of a request its components are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// Method, path, query string and headers.
    Head,
    Body,
}

impl WafRequest<'_> {
    /// The bytes of `part`, each piece length-prefixed: two requests with
    /// the same bytes give every component of that part the same values.
    /// Appended to `out`; `false` (and nothing appended) past `limit`.
    pub fn part_bytes(&self, part: Part, out: &mut Vec<u8>, limit: usize) -> bool {
        let (fixed, headers): (&[&[u8]], &[_]) = match part {
            Part::Head => (
                &[
                    self.method.as_bytes(),
                    self.uri.as_bytes(),
                    self.query.as_bytes(),
                ],
                &self.headers,
            ),
            Part::Body => (&[&[self.body_oversize as u8], &self.body], &[]),
        };
        let pieces = || {
            fixed.iter().copied().chain(
                headers
                    .iter()
                    .flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()]),
            )
        };
        // Sized first: one allocation, and nothing appended past the limit.
        let len: usize = pieces().map(|p| 4 + p.len()).sum();
        if out.len() + len > limit {
            return false;
        }
        out.reserve(len);
        for p in pieces() {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes());
            out.extend_from_slice(p);
        }
        true
    }
}

/// Which parts of key/value components are inspected (AWS `MatchScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Scope {
    #[default]
    All,
    Key,
    Value,
}

/// What to do with a body past [`BODY_LIMIT`] (AWS `OversizeHandling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Oversize {
    /// Inspect the first 8 KB.
    #[default]
    Continue,
    Match,
    NoMatch,
}

/// A JSON body that does not parse (AWS `InvalidFallbackBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvalidJson {
    Match,
    NoMatch,
    #[default]
    EvaluateAsString,
}

/// AWS's `FieldToMatch`, the components a statement can inspect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum Field {
    Method,
    UriPath,
    QueryString,
    /// One query argument; the name is not case sensitive.
    QueryArg {
        name: String,
    },
    /// The values of every query argument.
    AllQueryArgs,
    /// One header; the name is not case sensitive.
    Header {
        name: String,
    },
    AllHeaders {
        #[serde(default)]
        scope: Scope,
    },
    Cookies {
        #[serde(default)]
        scope: Scope,
    },
    Body {
        #[serde(default)]
        oversize: Oversize,
    },
    JsonBody {
        #[serde(default)]
        scope: Scope,
        #[serde(default)]
        oversize: Oversize,
        #[serde(default)]
        invalid: InvalidJson,
    },
}

/// A component's values: most components have one or none, kept inline.
pub type Values<'r> = SmallVec<[Cow<'r, [u8]>; 2]>;

/// What a field gives a statement: values to inspect, or a verdict already
/// decided by the oversize or invalid-JSON handling.
pub enum Candidates<'r> {
    Values(Values<'r>),
    Decided(bool),
}

impl Field {
    /// The names the topology file uses, in the order documented.
    pub const NAMES: [&'static str; 10] = [
        "method",
        "uri_path",
        "query_string",
        "query_arg",
        "all_query_args",
        "header",
        "all_headers",
        "cookies",
        "body",
        "json_body",
    ];

    /// The part of the request this component is drawn from.
    pub fn part(&self) -> Part {
        match self {
            Field::Body { .. } | Field::JsonBody { .. } => Part::Body,
            _ => Part::Head,
        }
    }

    /// The name in WAF logs and explanations (`HEADER:user-agent`).
    pub fn label(&self) -> String {
        match self {
            Field::Method => "METHOD".into(),
            Field::UriPath => "URI_PATH".into(),
            Field::QueryString => "QUERY_STRING".into(),
            Field::QueryArg { name } => format!("SINGLE_QUERY_ARG:{name}"),
            Field::AllQueryArgs => "ALL_QUERY_ARGS".into(),
            Field::Header { name } => format!("HEADER:{}", name.to_ascii_lowercase()),
            Field::AllHeaders { .. } => "HEADERS".into(),
            Field::Cookies { .. } => "COOKIES".into(),
            Field::Body { .. } => "BODY".into(),
            Field::JsonBody { .. } => "JSON_BODY".into(),
        }
    }

    /// AWS's `location` in `terminatingRuleMatchDetails`.
    pub fn location(&self) -> &'static str {
        match self {
            Field::Method => "METHOD",
            Field::UriPath => "URI",
            Field::QueryString | Field::QueryArg { .. } | Field::AllQueryArgs => "QUERY_STRING",
            Field::Header { .. } | Field::AllHeaders { .. } | Field::Cookies { .. } => "HEADER",
            Field::Body { .. } | Field::JsonBody { .. } => "BODY",
        }
    }

    pub fn candidates<'r>(&self, r: &'r WafRequest<'_>) -> Candidates<'r> {
        let b = |s: &'r str| Cow::Borrowed(s.as_bytes());
        let values = match self {
            Field::Method => smallvec![b(&r.method)],
            Field::UriPath => smallvec![b(&r.uri)],
            Field::QueryString => smallvec![b(&r.query)],
            Field::QueryArg { name } => r
                .query_args()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| b(v))
                .collect(),
            Field::AllQueryArgs => r.query_args().map(|(_, v)| b(v)).collect(),
            Field::Header { name } => r
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| b(v))
                .collect(),
            Field::AllHeaders { scope } => scoped(
                *scope,
                r.headers.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
            ),
            Field::Cookies { scope } => scoped(*scope, r.cookies()),
            Field::Body { oversize } => {
                if let Some(d) = decided(*oversize, r) {
                    return Candidates::Decided(d);
                }
                smallvec![Cow::Borrowed(&r.body[..])]
            }
            Field::JsonBody {
                scope,
                oversize,
                invalid,
            } => {
                if let Some(d) = decided(*oversize, r) {
                    return Candidates::Decided(d);
                }
                if r.body.is_empty() {
                    return Candidates::Values(Values::new());
                }
                match json_leaves(&r.body, *scope) {
                    Ok(v) => v,
                    Err(_) => match invalid {
                        InvalidJson::Match => return Candidates::Decided(true),
                        InvalidJson::NoMatch => return Candidates::Decided(false),
                        InvalidJson::EvaluateAsString => smallvec![Cow::Borrowed(&r.body[..])],
                    },
                }
            }
        };
        Candidates::Values(values)
    }
}

fn decided(o: Oversize, r: &WafRequest<'_>) -> Option<bool> {
    match (r.body_oversize, o) {
        (true, Oversize::Match) => Some(true),
        (true, Oversize::NoMatch) => Some(false),
        _ => None,
    }
}

fn scoped<'r>(scope: Scope, pairs: impl Iterator<Item = (&'r str, &'r str)>) -> Values<'r> {
    let mut out = Values::new();
    for (k, v) in pairs {
        if scope != Scope::Value {
            out.push(Cow::Borrowed(k.as_bytes()));
        }
        if scope != Scope::Key {
            out.push(Cow::Borrowed(v.as_bytes()));
        }
    }
    out
}

/// Keys and/or scalar values of a JSON document, depth first, in the order
/// of serde_json's `Value` (an object's keys sorted, a repeated key's last
/// value), borrowed from the body where no escape had to be decoded: one
/// pass over the body, no document tree.
fn json_leaves(body: &[u8], scope: Scope) -> Result<Values<'_>, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut out = Values::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    Leaves {
        scope,
        out: &mut out,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(out)
}

/// Appends the leaves of one JSON value to `out`.
struct Leaves<'o, 'de> {
    scope: Scope,
    out: &'o mut Values<'de>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Leaves<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Leaves<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.scalar(Cow::Borrowed(if v { b"true" } else { b"false" }))
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.scalar(Cow::Owned(v.to_string().into_bytes()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.scalar(Cow::Owned(v.to_string().into_bytes()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        // As `Value` prints it (`1.0`, `1e300` as `1e300`).
        match serde_json::Number::from_f64(v) {
            Some(n) => self.scalar(Cow::Owned(n.to_string().into_bytes())),
            None => Ok(()),
        }
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        self.scalar(Cow::Borrowed(v.as_bytes()))
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.scalar(Cow::Owned(v.as_bytes().to_vec()))
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        let scope = self.scope;
        while a
            .next_element_seed(Leaves {
                scope,
                out: &mut *self.out,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
        let scope = self.scope;
        let mut entries: SmallVec<[(Cow<'de, str>, Values<'de>); 2]> = SmallVec::new();
        while let Some(Key(k)) = a.next_key()? {
            let mut leaves = Values::new();
            a.next_value_seed(Leaves {
                scope,
                out: &mut leaves,
            })?;
            entries.push((k, leaves));
        }
        // A map sorted by key, where a repeated key keeps its last value.
        entries.sort_by(|x, y| x.0.cmp(&y.0));
        let mut it = entries.into_iter().peekable();
        while let Some((k, leaves)) = it.next() {
            if it.peek().is_some_and(|(n, _)| *n == k) {
                continue;
            }
            if scope != Scope::Value {
                self.out.push(match k {
                    Cow::Borrowed(k) => Cow::Borrowed(k.as_bytes()),
                    Cow::Owned(k) => Cow::Owned(k.into_bytes()),
                });
            }
            self.out.extend(leaves);
        }
        Ok(())
    }
}

impl<'de> Leaves<'_, 'de> {
    fn scalar<E>(self, v: Cow<'de, [u8]>) -> Result<(), E> {
        if self.scope != Scope::Key {
            self.out.push(v);
        }
        Ok(())
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn request(
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> WafRequest<'static> {
        let (uri, query) = target.split_once('?').unwrap_or((target, ""));
        let oversize = body.len() > BODY_LIMIT;
        WafRequest {
            client_ip: "203.0.113.10".parse().unwrap(),
            method: method.to_string().into(),
            uri: uri.to_string().into(),
            query: query.to_string().into(),
            http_version: "HTTP/1.1".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string().into(), v.to_string().into()))
                .collect(),
            body: body.as_bytes()[..body.len().min(BODY_LIMIT)]
                .to_vec()
                .into(),
            body_oversize: oversize,
        }
    }

    fn values(f: Field, r: &WafRequest<'_>) -> Vec<String> {
        match f.candidates(r) {
            Candidates::Values(v) => v
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect(),
            Candidates::Decided(d) => vec![format!("decided:{d}")],
        }
    }

    #[test]
    fn every_field() {
        let r = request(
            "POST",
            "/api/v1/x?id=1%27&Page=2&flag",
            &[
                ("Host", "alb"),
                ("User-Agent", "curl/8"),
                ("Cookie", "a=1; sess=xyz"),
            ],
            r#"{"user_id": "42", "tags": ["x", {"k": true}]}"#,
        );
        assert_eq!(values(Field::Method, &r), ["POST"]);
        assert_eq!(values(Field::UriPath, &r), ["/api/v1/x"]);
        assert_eq!(values(Field::QueryString, &r), ["id=1%27&Page=2&flag"]);
        let arg = |n: &str| Field::QueryArg { name: n.into() };
        assert_eq!(values(arg("page"), &r), ["2"]);
        assert_eq!(values(arg("none"), &r), Vec::<String>::new());
        assert_eq!(values(Field::AllQueryArgs, &r), ["1%27", "2", ""]);
        let h = Field::Header {
            name: "user-agent".into(),
        };
        assert_eq!(values(h, &r), ["curl/8"]);
        let all = |scope| Field::AllHeaders { scope };
        assert_eq!(
            values(all(Scope::Key), &r),
            ["Host", "User-Agent", "Cookie"]
        );
        assert_eq!(values(all(Scope::All), &r).len(), 6);
        let c = |scope| Field::Cookies { scope };
        assert_eq!(values(c(Scope::Value), &r), ["1", "xyz"]);
        assert_eq!(values(c(Scope::All), &r), ["a", "1", "sess", "xyz"]);
        let body = Field::Body {
            oversize: Oversize::Continue,
        };
        assert_eq!(values(body, &r).len(), 1);
        let json = |scope, invalid| Field::JsonBody {
            scope,
            oversize: Oversize::Continue,
            invalid,
        };
        assert_eq!(
            values(json(Scope::Value, InvalidJson::NoMatch), &r),
            ["x", "true", "42"]
        );
        assert_eq!(
            values(json(Scope::Key, InvalidJson::NoMatch), &r),
            ["tags", "k", "user_id"]
        );
    }

    /// The leaves as the whole document parsed into serde_json's `Value`
    /// gives them (what the WAF used to do): the order of reference.
    fn value_leaves(body: &str, scope: Scope) -> Option<Vec<String>> {
        fn walk(v: &serde_json::Value, scope: Scope, out: &mut Vec<String>) {
            use serde_json::Value;
            match v {
                Value::Object(m) => {
                    for (k, x) in m {
                        if scope != Scope::Value {
                            out.push(k.clone());
                        }
                        walk(x, scope, out);
                    }
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, scope, out)),
                Value::String(s) if scope != Scope::Key => out.push(s.clone()),
                Value::Number(_) | Value::Bool(_) if scope != Scope::Key => out.push(v.to_string()),
                _ => {}
            }
        }
        let v = serde_json::from_slice(body.as_bytes()).ok()?;
        let mut out = Vec::new();
        walk(&v, scope, &mut out);
        Some(out)
    }

    #[test]
    fn json_leaves_in_value_order_borrowed_where_possible() {
        let docs = [
            r#"{"user_id": "42"}"#,
            r#"{"b": 1, "a": [true, null, 2.50, -3, 1e3, 18446744073709551615], "a": {"z": "x\u0041", "y\n": "w"}}"#,
            r#"[{"k": "v"}, "s", 7, [[], {}]]"#,
            r#""just a string""#,
            r#"{"n": 123456789012345678901234567890, "e": "", "\"q\"": "\"1' or 1=1--"}"#,
            r#"{"a": 1} trailing"#,
            r#"{"a": [1, 2}"#,
            "",
        ];
        for d in docs {
            for scope in [Scope::All, Scope::Key, Scope::Value] {
                let ours = json_leaves(d.as_bytes(), scope).ok().map(|v| {
                    v.iter()
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect::<Vec<_>>()
                });
                assert_eq!(ours, value_leaves(d, scope), "{d} {scope:?}");
            }
        }
        let body = br#"{"user_id": "42", "esc": "a\tb"}"#;
        let v = json_leaves(body, Scope::All).unwrap();
        assert_eq!(&*v[1], b"a\tb");
        assert!(matches!(v[1], Cow::Owned(_)), "an escape is decoded");
        for i in [0, 2, 3] {
            assert!(matches!(v[i], Cow::Borrowed(_)), "{i}");
        }
    }

    #[test]
    fn invalid_json_fallbacks() {
        let r = request("POST", "/", &[], "user_id=42");
        let json = |invalid| Field::JsonBody {
            scope: Scope::All,
            oversize: Oversize::Continue,
            invalid,
        };
        assert_eq!(values(json(InvalidJson::Match), &r), ["decided:true"]);
        assert_eq!(values(json(InvalidJson::NoMatch), &r), ["decided:false"]);
        assert_eq!(
            values(json(InvalidJson::EvaluateAsString), &r),
            ["user_id=42"]
        );
    }

    #[test]
    fn oversize_body_handling() {
        let big = "a".repeat(BODY_LIMIT + 10);
        let r = request("POST", "/", &[], &big);
        assert!(r.body_oversize);
        let body = |oversize| Field::Body { oversize };
        assert_eq!(values(body(Oversize::Match), &r), ["decided:true"]);
        assert_eq!(values(body(Oversize::NoMatch), &r), ["decided:false"]);
        assert_eq!(values(body(Oversize::Continue), &r)[0].len(), BODY_LIMIT);
        let small = request("POST", "/", &[], "abc");
        assert_eq!(values(body(Oversize::Match), &small), ["abc"]);
    }
}
