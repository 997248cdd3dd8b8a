//! The request as the WAF sees it and the components (AWS's `FieldToMatch`)
//! a statement inspects.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::net::IpAddr;

/// What an ALB forwards of a body to AWS WAF: the first 8 KB, a fixed limit
/// for Application Load Balancers.
pub const BODY_LIMIT: usize = 8 * 1024;

/// One HTTP request, as much of it as the ALB hands to the WAF.
#[derive(Debug, Clone)]
pub struct WafRequest {
    pub client_ip: IpAddr,
    pub method: String,
    /// The path as sent (not decoded).
    pub uri: String,
    /// After `?`, as sent; empty when there is none.
    pub query: String,
    pub http_version: String,
    /// In arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    /// At most [`BODY_LIMIT`] bytes.
    pub body: Vec<u8>,
    /// The body was longer than [`BODY_LIMIT`].
    pub body_oversize: bool,
}

impl WafRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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

/// What a field gives a statement: values to inspect, or a verdict already
/// decided by the oversize or invalid-JSON handling.
pub enum Candidates<'r> {
    Values(Vec<Cow<'r, [u8]>>),
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

    pub fn candidates<'r>(&self, r: &'r WafRequest) -> Candidates<'r> {
        let b = |s: &'r str| Cow::Borrowed(s.as_bytes());
        let values = match self {
            Field::Method => vec![b(&r.method)],
            Field::UriPath => vec![b(&r.uri)],
            Field::QueryString => vec![b(&r.query)],
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
                r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ),
            Field::Cookies { scope } => scoped(*scope, r.cookies()),
            Field::Body { oversize } => {
                if let Some(d) = decided(*oversize, r) {
                    return d;
                }
                vec![Cow::Borrowed(&r.body[..])]
            }
            Field::JsonBody {
                scope,
                oversize,
                invalid,
            } => {
                if let Some(d) = decided(*oversize, r) {
                    return d;
                }
                if r.body.is_empty() {
                    return Candidates::Values(vec![]);
                }
                match serde_json::from_slice::<serde_json::Value>(&r.body) {
                    Ok(v) => {
                        let mut out = Vec::new();
                        json_leaves(&v, *scope, &mut out);
                        out.into_iter()
                            .map(|s| Cow::Owned(s.into_bytes()))
                            .collect()
                    }
                    Err(_) => match invalid {
                        InvalidJson::Match => return Candidates::Decided(true),
                        InvalidJson::NoMatch => return Candidates::Decided(false),
                        InvalidJson::EvaluateAsString => vec![Cow::Borrowed(&r.body[..])],
                    },
                }
            }
        };
        Candidates::Values(values)
    }
}

fn decided(o: Oversize, r: &WafRequest) -> Option<Candidates<'static>> {
    match (r.body_oversize, o) {
        (true, Oversize::Match) => Some(Candidates::Decided(true)),
        (true, Oversize::NoMatch) => Some(Candidates::Decided(false)),
        _ => None,
    }
}

fn scoped<'r>(scope: Scope, pairs: impl Iterator<Item = (&'r str, &'r str)>) -> Vec<Cow<'r, [u8]>> {
    let mut out = Vec::new();
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

/// Keys and/or scalar values of a JSON document, depth first.
fn json_leaves(v: &serde_json::Value, scope: Scope, out: &mut Vec<String>) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if scope != Scope::Value {
                    out.push(k.clone());
                }
                json_leaves(x, scope, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| json_leaves(x, scope, out)),
        Value::String(s) if scope != Scope::Key => out.push(s.clone()),
        Value::Number(_) | Value::Bool(_) if scope != Scope::Key => out.push(v.to_string()),
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> WafRequest {
        let (uri, query) = target.split_once('?').unwrap_or((target, ""));
        let oversize = body.len() > BODY_LIMIT;
        WafRequest {
            client_ip: "203.0.113.10".parse().unwrap(),
            method: method.into(),
            uri: uri.into(),
            query: query.into(),
            http_version: "HTTP/1.1".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes()[..body.len().min(BODY_LIMIT)].to_vec(),
            body_oversize: oversize,
        }
    }

    fn values(f: Field, r: &WafRequest) -> Vec<String> {
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
