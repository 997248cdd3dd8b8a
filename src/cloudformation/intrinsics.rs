//! Evaluation of CloudFormation's intrinsic and condition functions on a
//! template tree whose short forms are already long forms.
//!
//! `AWS::NoValue` evaluates to `None`, which removes the key or list element
//! that holds it, as CloudFormation does.

use super::template::{as_function, Mapping, Value};
use base64::Engine;
use ipnet::Ipv4Net;
use std::collections::{BTreeMap, HashMap};

/// What is wrong and how to fix it; the caller adds file, logical id and property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub message: String,
    pub fix: String,
}

fn err<T>(message: impl Into<String>, fix: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError {
        message: message.into(),
        fix: fix.into(),
    })
}

/// Answers `Fn::GetAtt [logical id, attribute]` for the stack's resources.
pub trait Attributes {
    fn get_att(&self, logical: &str, attribute: &str) -> Result<Value, EvalError>;
}

/// Everything a template's functions can read.
pub struct Context<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub stack_name: &'a str,
    /// Parameter values: strings, or lists for list types.
    pub params: &'a BTreeMap<String, Value>,
    pub mappings: &'a Mapping,
    pub conditions: &'a HashMap<String, bool>,
    /// Logical id -> physical id (what `Ref` returns).
    pub resources: &'a HashMap<String, String>,
    /// Exports of the stacks deployed before this one.
    pub exports: &'a HashMap<String, Value>,
    pub attributes: &'a dyn Attributes,
}

/// The AZs `Fn::GetAZs` lists: us-east-1 has six, the other regions three or more.
pub fn azs(region: &str) -> Vec<String> {
    let n = if region == "us-east-1" { 6 } else { 3 };
    (0..n)
        .map(|i| format!("{region}{}", (b'a' + i) as char))
        .collect()
}

impl Context<'_> {
    fn pseudo(&self, name: &str) -> Option<Option<Value>> {
        let s = |x: String| Some(Some(Value::String(x)));
        match name {
            "AWS::Region" => s(self.region.into()),
            "AWS::AccountId" => s(self.account.into()),
            "AWS::StackName" => s(self.stack_name.into()),
            "AWS::StackId" => s(format!(
                "arn:aws:cloudformation:{}:{}:stack/{}/vpcsim",
                self.region, self.account, self.stack_name
            )),
            "AWS::Partition" => s("aws".into()),
            "AWS::URLSuffix" => s("amazonaws.com".into()),
            "AWS::NotificationARNs" => Some(Some(Value::Sequence(vec![]))),
            "AWS::NoValue" => Some(None),
            _ => None,
        }
    }

    fn reference(&self, name: &str) -> Result<Option<Value>, EvalError> {
        if let Some(v) = self.pseudo(name) {
            return Ok(v);
        }
        if let Some(v) = self.params.get(name) {
            return Ok(Some(v.clone()));
        }
        if let Some(id) = self.resources.get(name) {
            return Ok(Some(Value::String(id.clone())));
        }
        err(
            format!("`{name}` is not a parameter, a resource or a pseudo parameter of this stack"),
            format!(
                "declare `{name}` under Parameters or Resources, or fix the name (parameters: {}; resources: {})",
                list(self.params.keys()),
                list(self.resources.keys())
            ),
        )
    }

    /// Evaluates `v`; `None` is `AWS::NoValue`.
    pub fn eval(&self, v: &Value) -> Result<Option<Value>, EvalError> {
        if let Some((f, arg)) = as_function(v) {
            return self.function(f, arg);
        }
        Ok(Some(match v {
            Value::Sequence(items) => {
                let mut out = Vec::new();
                for x in items {
                    if let Some(x) = self.eval(x)? {
                        out.push(x);
                    }
                }
                Value::Sequence(out)
            }
            Value::Mapping(m) => {
                let mut out = Mapping::new();
                for (k, x) in m {
                    if let Some(x) = self.eval(x)? {
                        out.insert(k.clone(), x);
                    }
                }
                Value::Mapping(out)
            }
            other => other.clone(),
        }))
    }

    /// Evaluates a value that must be there (not `AWS::NoValue`).
    pub fn value(&self, v: &Value) -> Result<Value, EvalError> {
        self.eval(v)?.ok_or_else(|| EvalError {
            message: "AWS::NoValue where a value is needed".into(),
            fix: "use !Ref AWS::NoValue only to remove a property or list element".into(),
        })
    }

    fn string(&self, v: &Value, what: &str) -> Result<String, EvalError> {
        scalar(&self.value(v)?).ok_or_else(|| EvalError {
            message: format!("{what} must be a string"),
            fix: format!("give {what} as a string or a function returning one"),
        })
    }

    fn list(&self, v: &Value, what: &str) -> Result<Vec<Value>, EvalError> {
        match self.value(v)? {
            Value::Sequence(s) => Ok(s),
            _ => err(
                format!("{what} must be a list"),
                format!("give {what} as a list or a function returning one"),
            ),
        }
    }

    fn args<'v>(&self, f: &str, arg: &'v Value, n: usize) -> Result<&'v [Value], EvalError> {
        match arg.as_sequence() {
            Some(s) if s.len() == n => Ok(s),
            _ => err(
                format!("{f} takes a list of {n} arguments"),
                format!(
                    "write {f}: [{}]",
                    (1..=n)
                        .map(|i| format!("arg{i}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }

    fn function(&self, f: &str, arg: &Value) -> Result<Option<Value>, EvalError> {
        let s = |x: String| Ok(Some(Value::String(x)));
        match f {
            "Ref" => {
                let name = self.string(arg, "the argument of Ref")?;
                self.reference(&name)
            }
            "Fn::GetAtt" => {
                let (res, attr) = match arg {
                    Value::Sequence(v) if v.len() == 2 => {
                        (self.string(&v[0], "GetAtt's resource")?, self.string(&v[1], "GetAtt's attribute")?)
                    }
                    Value::String(x) => match x.split_once('.') {
                        Some((a, b)) => (a.to_string(), b.to_string()),
                        None => return err(format!("GetAtt `{x}` names no attribute"), "write LogicalId.Attribute"),
                    },
                    _ => return err("GetAtt takes [LogicalId, Attribute]", "write !GetAtt LogicalId.Attribute"),
                };
                if !self.resources.contains_key(&res) {
                    return err(
                        format!("GetAtt names `{res}`, which is not a resource of this stack"),
                        format!("use one of: {}", list(self.resources.keys())),
                    );
                }
                self.attributes.get_att(&res, &attr).map(Some)
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::Sequence(v) if v.len() == 2 => {
                        let vars = match self.value(&v[1])? {
                            Value::Mapping(m) => m,
                            _ => return err("Sub's second argument must be a map of variables", "write !Sub [text, {Var: value}]"),
                        };
                        (self.string(&v[0], "Sub's text")?, vars)
                    }
                    Value::String(t) => (t.clone(), Mapping::new()),
                    _ => return err("Sub takes a string or [string, {variables}]", "write !Sub 'text ${Name}'"),
                };
                self.sub(&text, &vars).map(|x| Some(Value::String(x)))
            }
            "Fn::Join" => {
                let a = self.args(f, arg, 2)?;
                let sep = self.string(&a[0], "Join's delimiter")?;
                let items = self.list(&a[1], "Join's list")?;
                let parts: Result<Vec<String>, EvalError> = items
                    .iter()
                    .map(|x| scalar(x).ok_or_else(|| EvalError {
                        message: "Join's list holds a value that is not a string".into(),
                        fix: "join strings only (a nested list needs its own Join)".into(),
                    }))
                    .collect();
                s(parts?.join(&sep))
            }
            "Fn::Select" => {
                let a = self.args(f, arg, 2)?;
                let i = self.string(&a[0], "Select's index")?;
                let items = self.list(&a[1], "Select's list")?;
                let i: usize = i.parse().map_err(|_| EvalError {
                    message: format!("Select's index `{i}` is not a number"),
                    fix: "give the index as 0, 1, ...".into(),
                })?;
                match items.get(i) {
                    Some(v) => Ok(Some(v.clone())),
                    None => err(
                        format!("Select index {i} is out of range: the list has {} elements", items.len()),
                        "select an index below the list's length",
                    ),
                }
            }
            "Fn::Split" => {
                let a = self.args(f, arg, 2)?;
                let sep = self.string(&a[0], "Split's delimiter")?;
                let text = self.string(&a[1], "Split's string")?;
                Ok(Some(Value::Sequence(text.split(sep.as_str()).map(|x| Value::String(x.into())).collect())))
            }
            "Fn::GetAZs" => {
                let r = self.string(arg, "GetAZs's region")?;
                let region = if r.is_empty() { self.region.to_string() } else { r };
                Ok(Some(Value::Sequence(azs(&region).into_iter().map(Value::String).collect())))
            }
            "Fn::FindInMap" => {
                let a = match arg.as_sequence() {
                    Some(a) if a.len() == 3 => a,
                    _ => return err("FindInMap takes [MapName, TopLevelKey, SecondLevelKey]", "write !FindInMap [Map, Key, Key2]"),
                };
                let map = self.string(&a[0], "FindInMap's map name")?;
                let k1 = self.string(&a[1], "FindInMap's top-level key")?;
                let k2 = self.string(&a[2], "FindInMap's second-level key")?;
                let Some(m) = self.mappings.get(map.as_str()) else {
                    return err(format!("FindInMap names mapping `{map}`, which Mappings does not declare"), format!("mappings: {}", list(self.mappings.keys().filter_map(|k| k.as_str()))));
                };
                let Some(m1) = m.get(k1.as_str()) else {
                    return err(format!("mapping `{map}` has no key `{k1}`"), format!("its keys: {}", list(m.as_mapping().into_iter().flat_map(|x| x.keys()).filter_map(|k| k.as_str()))));
                };
                match m1.get(k2.as_str()) {
                    Some(v) => Ok(Some(v.clone())),
                    None => err(format!("mapping `{map}`.`{k1}` has no key `{k2}`"), format!("its keys: {}", list(m1.as_mapping().into_iter().flat_map(|x| x.keys()).filter_map(|k| k.as_str())))),
                }
            }
            "Fn::If" => {
                let a = self.args(f, arg, 3)?;
                let c = self.string(&a[0], "If's condition name")?;
                match self.conditions.get(&c) {
                    Some(true) => self.eval(&a[1]),
                    Some(false) => self.eval(&a[2]),
                    None => err(format!("If names condition `{c}`, which Conditions does not declare"), format!("conditions: {}", list(self.conditions.keys()))),
                }
            }
            "Fn::Base64" => {
                let text = self.string(arg, "Base64's argument")?;
                s(base64::engine::general_purpose::STANDARD.encode(text))
            }
            "Fn::Cidr" => {
                let a = self.args(f, arg, 3)?;
                let block = self.string(&a[0], "Cidr's IP block")?;
                let count = self.string(&a[1], "Cidr's count")?;
                let bits = self.string(&a[2], "Cidr's bits")?;
                cidr(&block, &count, &bits).map(|v| Some(Value::Sequence(v.into_iter().map(Value::String).collect())))
            }
            "Fn::ImportValue" => {
                let name = self.string(arg, "ImportValue's export name")?;
                match self.exports.get(&name) {
                    Some(v) => Ok(Some(v.clone())),
                    None => err(
                        format!("no stack before this one exports `{name}`"),
                        format!("deploy the exporting stack first (`up`: list its file before this one; a running lab: `vpcsim deploy` it) (exports so far: {})", list(self.exports.keys())),
                    ),
                }
            }
            "Fn::Equals" | "Fn::And" | "Fn::Or" | "Fn::Not" | "Condition" => {
                let b = self.condition(&super::template::single(f, arg.clone()))?;
                s(b.to_string())
            }
            "Fn::Transform" | "Fn::Length" | "Fn::ToJsonString" => err(
                format!("{f} needs a template transform (macro), which vpcsim does not run"),
                "expand the transform (e.g. `aws cloudformation package` or write the result out) before `vpcsim up`",
            ),
            other => err(
                format!("unknown intrinsic function `{other}`"),
                "use Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Select, Fn::Split, Fn::GetAZs, Fn::FindInMap, Fn::If, Fn::Base64, Fn::Cidr, Fn::ImportValue or a condition function",
            ),
        }
    }

    fn sub(&self, text: &str, vars: &Mapping) -> Result<String, EvalError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                return err(
                    format!("Sub text has `${{` without `}}`: {text:?}"),
                    "close every ${Name} with }",
                );
            };
            let name = &after[..end];
            rest = &after[end + 1..];
            if let Some(lit) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(lit);
                out.push('}');
                continue;
            }
            let v = if let Some(v) = vars.get(name) {
                v.clone()
            } else if let Some((res, attr)) = name
                .split_once('.')
                .filter(|(r, _)| self.resources.contains_key(*r))
            {
                self.attributes.get_att(res, attr)?
            } else {
                self.reference(name)?
                    .unwrap_or(Value::String(String::new()))
            };
            match scalar(&v) {
                Some(x) => out.push_str(&x),
                None => {
                    return err(
                        format!("${{{name}}} in Sub is a list, not a string"),
                        format!("join it first: !Join [',', !Ref {name}]"),
                    )
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// A condition: `Fn::Equals`, `Fn::And`, `Fn::Or`, `Fn::Not`, `Condition`.
    pub fn condition(&self, v: &Value) -> Result<bool, EvalError> {
        let Some((f, arg)) = as_function(v) else {
            return match scalar(v).as_deref() {
                Some("true") => Ok(true),
                Some("false") => Ok(false),
                _ => err(
                    "a condition must be a condition function",
                    "use Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition",
                ),
            };
        };
        let all = |arg: &Value| -> Result<Vec<bool>, EvalError> {
            match arg.as_sequence() {
                Some(s) if !s.is_empty() => s.iter().map(|c| self.condition(c)).collect(),
                _ => err(
                    format!("{f} takes a list of conditions"),
                    format!("write {f}: [cond1, cond2]"),
                ),
            }
        };
        match f {
            "Fn::Equals" => {
                let a = self.args(f, arg, 2)?;
                Ok(self.eval(&a[0])?.map(canonical) == self.eval(&a[1])?.map(canonical))
            }
            "Fn::And" => Ok(all(arg)?.into_iter().all(|b| b)),
            "Fn::Or" => Ok(all(arg)?.into_iter().any(|b| b)),
            "Fn::Not" => {
                let a = all(arg)?;
                if a.len() != 1 {
                    return err("Fn::Not takes one condition", "write !Not [condition]");
                }
                Ok(!a[0])
            }
            "Condition" => {
                let name = self.string(arg, "Condition's name")?;
                self.conditions
                    .get(&name)
                    .copied()
                    .ok_or_else(|| EvalError {
                        message: format!("condition `{name}` is not declared (or comes later)"),
                        fix: format!(
                            "declare it under Conditions (declared so far: {})",
                            list(self.conditions.keys())
                        ),
                    })
            }
            "Fn::If" => {
                let v = self.value(v)?;
                self.condition(&v)
            }
            other => err(
                format!("`{other}` is not a condition function"),
                "use Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition",
            ),
        }
    }
}

/// Scalars as CloudFormation compares and joins them: strings.
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn canonical(v: Value) -> Value {
    match scalar(&v) {
        Some(s) => Value::String(s),
        None => v,
    }
}

fn list<'a>(names: impl IntoIterator<Item = &'a (impl AsRef<str> + 'a + ?Sized)>) -> String {
    let v: Vec<&str> = names.into_iter().map(|n| n.as_ref()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// `Fn::Cidr [block, count, bits]`: the first `count` blocks of `32 - bits` prefix.
fn cidr(block: &str, count: &str, bits: &str) -> Result<Vec<String>, EvalError> {
    let net: Ipv4Net = block.parse().map_err(|_| EvalError {
        message: format!("Cidr's block `{block}` is not an IPv4 CIDR"),
        fix: "write it like 10.0.0.0/16".into(),
    })?;
    let count: usize = count.parse().unwrap_or(0);
    let bits: u8 = bits.parse().unwrap_or(0);
    if !(1..=256).contains(&count) || bits == 0 || bits > 32 - net.prefix_len() {
        return err(
            format!(
                "Cidr [{block}, {count}, {bits}]: count must be 1-256 and bits 1-{}",
                32 - net.prefix_len()
            ),
            "bits is the host part of each block: 8 makes /24s",
        );
    }
    let prefix = 32 - bits;
    let subnets: Vec<String> = net
        .subnets(prefix)
        .map_err(|e| EvalError {
            message: e.to_string(),
            fix: "use fewer bits".into(),
        })?
        .take(count)
        .map(|n| n.to_string())
        .collect();
    if subnets.len() < count {
        return err(
            format!("{block} holds only {} blocks of /{prefix}", subnets.len()),
            "ask for fewer blocks or fewer bits",
        );
    }
    Ok(subnets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudformation::template::parse;

    struct NoAtts;
    impl Attributes for NoAtts {
        fn get_att(&self, logical: &str, attribute: &str) -> Result<Value, EvalError> {
            if attribute == "CidrBlock" {
                Ok(Value::String("10.0.0.0/16".into()))
            } else {
                err(format!("{logical} has no attribute {attribute}"), "fix")
            }
        }
    }

    fn eval_with(expr: &str, conditions: &[(&str, bool)]) -> Result<Option<Value>, EvalError> {
        let mut params = BTreeMap::new();
        params.insert("Env".to_string(), Value::String("prod".into()));
        params.insert(
            "Subnets".to_string(),
            Value::Sequence(vec!["subnet-1".into(), "subnet-2".into()]),
        );
        let mappings = parse("Sizes: {prod: {Type: t3.small}, dev: {Type: t3.micro}}").unwrap();
        let mappings = mappings.as_mapping().unwrap().clone();
        let conditions: HashMap<String, bool> = conditions
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let mut resources = HashMap::new();
        resources.insert("Vpc".to_string(), "vpc-0abc".to_string());
        let mut exports = HashMap::new();
        exports.insert("net-VpcId".to_string(), Value::String("vpc-0abc".into()));
        let cx = Context {
            region: "eu-west-3",
            account: "123456789012",
            stack_name: "app",
            params: &params,
            mappings: &mappings,
            conditions: &conditions,
            resources: &resources,
            exports: &exports,
            attributes: &NoAtts,
        };
        let v = parse(&format!("x: {expr}")).unwrap();
        cx.eval(&v["x"])
    }

    fn ok(expr: &str) -> Value {
        eval_with(expr, &[("IsProd", true)]).unwrap().unwrap()
    }

    fn fails(expr: &str) -> EvalError {
        eval_with(expr, &[("IsProd", true)]).unwrap_err()
    }

    #[test]
    fn ref_params_resources_pseudo() {
        assert_eq!(ok("!Ref Env"), Value::String("prod".into()));
        assert_eq!(ok("!Ref Vpc"), Value::String("vpc-0abc".into()));
        assert_eq!(ok("!Ref AWS::Region"), Value::String("eu-west-3".into()));
        assert_eq!(ok("!Ref AWS::StackName"), Value::String("app".into()));
        assert_eq!(
            ok("!Ref AWS::AccountId"),
            Value::String("123456789012".into())
        );
        assert_eq!(ok("[a, !Ref AWS::NoValue, b]"), parse("[a, b]").unwrap());
        let e = fails("!Ref Nope");
        assert!(e.message.contains("`Nope` is not a parameter"), "{e:?}");
    }

    #[test]
    fn get_att() {
        assert_eq!(
            ok("!GetAtt Vpc.CidrBlock"),
            Value::String("10.0.0.0/16".into())
        );
        assert!(fails("!GetAtt Other.CidrBlock")
            .message
            .contains("not a resource"));
    }

    #[test]
    fn sub_both_forms() {
        assert_eq!(
            ok("!Sub '${AWS::StackName}-${Env}-${Vpc}'"),
            Value::String("app-prod-vpc-0abc".into())
        );
        assert_eq!(
            ok("!Sub ['${A}/${Vpc.CidrBlock}', {A: x}]"),
            Value::String("x/10.0.0.0/16".into())
        );
        assert_eq!(ok("!Sub '${!Literal}'"), Value::String("${Literal}".into()));
        assert!(fails("!Sub '${Missing}'").message.contains("`Missing`"));
    }

    #[test]
    fn join_select_split_getazs() {
        assert_eq!(
            ok("!Join [',', !Ref Subnets]"),
            Value::String("subnet-1,subnet-2".into())
        );
        assert_eq!(
            ok("!Select [1, !Ref Subnets]"),
            Value::String("subnet-2".into())
        );
        assert!(fails("!Select [5, !Ref Subnets]")
            .message
            .contains("out of range"));
        assert_eq!(ok("!Split [',', 'a,b']"), parse("[a, b]").unwrap());
        assert_eq!(
            ok("!Select [1, !GetAZs '']"),
            Value::String("eu-west-3b".into())
        );
    }

    #[test]
    fn find_in_map_and_if() {
        assert_eq!(
            ok("!FindInMap [Sizes, !Ref Env, Type]"),
            Value::String("t3.small".into())
        );
        assert!(fails("!FindInMap [Sizes, test, Type]")
            .message
            .contains("no key `test`"));
        assert_eq!(ok("!If [IsProd, big, small]"), Value::String("big".into()));
        assert_eq!(
            eval_with("!If [IsProd, big, !Ref AWS::NoValue]", &[("IsProd", false)]).unwrap(),
            None
        );
        assert!(fails("!If [Nope, a, b]").message.contains("`Nope`"));
    }

    #[test]
    fn conditions() {
        let cx_eval = |c: &str| {
            let v = parse(&format!("x: {c}")).unwrap();
            let params = BTreeMap::from([("Env".to_string(), Value::String("prod".into()))]);
            let conditions = HashMap::from([("IsProd".to_string(), true)]);
            let m = Mapping::new();
            let r = HashMap::new();
            let e = HashMap::new();
            Context {
                region: "us-east-1",
                account: "1",
                stack_name: "s",
                params: &params,
                mappings: &m,
                conditions: &conditions,
                resources: &r,
                exports: &e,
                attributes: &NoAtts,
            }
            .condition(&v["x"])
        };
        assert!(cx_eval("!Equals [!Ref Env, prod]").unwrap());
        assert!(!cx_eval("!Not [!Equals [!Ref Env, prod]]").unwrap());
        assert!(cx_eval("!And [!Condition IsProd, !Equals [1, '1']]").unwrap());
        assert!(cx_eval("!Or [!Equals [a, b], !Condition IsProd]").unwrap());
    }

    #[test]
    fn base64_cidr_import_value() {
        assert_eq!(ok("!Base64 'hi'"), Value::String("aGk=".into()));
        assert_eq!(
            ok("!Cidr ['10.0.0.0/16', 3, 8]"),
            parse("['10.0.0.0/24', '10.0.1.0/24', '10.0.2.0/24']").unwrap()
        );
        assert!(fails("!Cidr ['10.0.0.0/16', 3, 20]")
            .message
            .contains("bits"));
        assert!(fails("!Cidr ['10.0.0/16', 3, 8]")
            .message
            .contains("not an IPv4 CIDR"));
        assert_eq!(
            ok("!ImportValue net-VpcId"),
            Value::String("vpc-0abc".into())
        );
        assert!(fails("!ImportValue other")
            .message
            .contains("no stack before this one exports `other`"));
    }

    #[test]
    fn transforms_are_refused() {
        assert!(fails("{'Fn::Length': [a]}").message.contains("transform"));
        assert!(fails("{'Fn::Nope': [a]}")
            .message
            .contains("unknown intrinsic function"));
    }
}
