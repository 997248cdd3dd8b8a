//! Statements compiled for evaluation. A web ACL's statements (its own and
//! those of the managed groups it runs) are compiled once, when the web ACL
//! is built, into a [`Program`]: every distinct component (AWS's
//! `FieldToMatch`) and every distinct (component, text transformations)
//! pair gets a slot, and the regular expressions that read one slot are
//! gathered in one `RegexSet`. A [`Scan`] then evaluates one request: a
//! component is extracted once (a JSON body parsed once), transformed once
//! per chain, its regular expressions run as one set, and libinjection's
//! verdict on a value is kept for the request; every statement reading that
//! slot shares them. Across requests, [`memo`] remembers the costly answers
//! on values seen before.
//!
//! Owns: compiling statements and evaluating them on one request. The
//! statement language itself (what a match means) is [`super::statement`].

use super::field::{Candidates, Field, Part, WafRequest};
use super::memo;
use super::statement::{
    ip_set_detail, is_sqli, is_xss, may_be_xss, one_plain_token, Comparison, ForwardedIp,
    MatchDetail, Pattern, Positional, Sensitivity, Statement,
};
use super::transform::{apply_all, Transform};
use ipnet::IpNet;
use regex::bytes::{RegexSet, SetMatches};
use smallvec::SmallVec;
use std::borrow::Cow;

/// A compiled statement.
#[derive(Debug)]
pub enum Node {
    /// A test on the values of one slot; `site` numbers it in its program.
    Test {
        slot: usize,
        test: Test,
        site: usize,
    },
    IpSet {
        addresses: Vec<IpNet>,
        forwarded: Option<ForwardedIp>,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

/// What a statement tests on each value of its slot.
#[derive(Debug)]
pub enum Test {
    Byte {
        positional: Positional,
        value: Vec<u8>,
    },
    /// The slot's regular expression of that index.
    Regex(usize),
    Sqli(Sensitivity),
    Xss,
    Size {
        comparison: Comparison,
        size: u64,
    },
}

impl Test {
    /// AWS's `conditionType`.
    fn condition(&self) -> &'static str {
        match self {
            Test::Byte { .. } => "BYTE_MATCH",
            Test::Regex(_) => "REGEX",
            Test::Sqli(_) => "SQL_INJECTION",
            Test::Xss => "XSS",
            Test::Size { .. } => "SIZE_CONSTRAINT",
        }
    }
}

/// One (component, transformations) pair and the regular expressions that
/// read it.
#[derive(Debug)]
struct Slot {
    /// Names its regular expressions' answers in the [`memo`].
    id: u64,
    field: usize,
    transforms: Vec<Transform>,
    /// Compiled alone only when they run alone (one in the slot, or a set
    /// too large to build).
    regexes: Vec<Pattern>,
    /// All of `regexes` at once, when there are several.
    set: Option<RegexSet>,
}

/// The components and slots of a web ACL's compiled statements.
#[derive(Debug, Default)]
pub struct Program {
    /// Names its components' answers in the [`memo`] (set by `finish`).
    id: u64,
    fields: Vec<Field>,
    slots: Vec<Slot>,
    /// Per part of the request, the test sites on its components, in site
    /// order.
    part_sites: [Vec<usize>; 2],
    sites: usize,
}

impl Program {
    /// Compiles `s`, sharing slots with the statements compiled before it.
    /// Call [`Program::finish`] once every statement is compiled.
    pub fn compile(&mut self, s: &Statement) -> Node {
        let (field, transforms, test) = match s {
            Statement::ByteMatch {
                field,
                positional,
                value,
                transforms,
            } => (
                field,
                transforms,
                Test::Byte {
                    positional: *positional,
                    value: value.as_bytes().to_vec(),
                },
            ),
            Statement::RegexMatch {
                field,
                pattern,
                transforms,
            } => {
                let slot = self.slot(field, transforms);
                let site = self.site(slot);
                let regexes = &mut self.slots[slot].regexes;
                let i = match regexes.iter().position(|r| r.as_str() == pattern.as_str()) {
                    Some(i) => i,
                    None => {
                        regexes.push(pattern.clone());
                        regexes.len() - 1
                    }
                };
                return Node::Test {
                    slot,
                    test: Test::Regex(i),
                    site,
                };
            }
            Statement::SqliMatch {
                field,
                transforms,
                sensitivity,
            } => (field, transforms, Test::Sqli(*sensitivity)),
            Statement::XssMatch { field, transforms } => (field, transforms, Test::Xss),
            Statement::SizeConstraint {
                field,
                comparison,
                size,
                transforms,
            } => (
                field,
                transforms,
                Test::Size {
                    comparison: *comparison,
                    size: *size,
                },
            ),
            Statement::IpSet {
                addresses,
                forwarded,
            } => {
                return Node::IpSet {
                    addresses: addresses.clone(),
                    forwarded: forwarded.clone(),
                }
            }
            Statement::And { statements } => {
                return Node::And(statements.iter().map(|s| self.compile(s)).collect())
            }
            Statement::Or { statements } => {
                return Node::Or(statements.iter().map(|s| self.compile(s)).collect())
            }
            Statement::Not { statement } => return Node::Not(Box::new(self.compile(statement))),
        };
        let slot = self.slot(field, transforms);
        Node::Test {
            slot,
            test,
            site: self.site(slot),
        }
    }

    /// A new test site on `slot`.
    fn site(&mut self, slot: usize) -> usize {
        let site = self.sites;
        self.sites += 1;
        self.part_sites[self.part(slot) as usize].push(site);
        site
    }

    /// The part of the request slot `slot`'s component is drawn from.
    fn part(&self, slot: usize) -> Part {
        self.fields[self.slots[slot].field].part()
    }

    fn slot(&mut self, field: &Field, transforms: &[Transform]) -> usize {
        let f = match self.fields.iter().position(|x| x == field) {
            Some(f) => f,
            None => {
                self.fields.push(field.clone());
                self.fields.len() - 1
            }
        };
        // NONE changes nothing: a chain of it is the empty chain.
        let chain: Vec<Transform> = transforms
            .iter()
            .copied()
            .filter(|t| *t != Transform::None)
            .collect();
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| s.field == f && s.transforms == chain)
        {
            return i;
        }
        self.slots.push(Slot {
            id: memo::new_id(),
            field: f,
            transforms: chain,
            regexes: vec![],
            set: None,
        });
        self.slots.len() - 1
    }

    /// Gathers each slot's regular expressions into one set.
    pub fn finish(&mut self) {
        self.id = memo::new_id();
        for s in &mut self.slots {
            if s.regexes.len() > 1 {
                // Each pattern compiled alone; together they fit the same
                // limits but for size: then each runs alone.
                s.set = RegexSet::new(s.regexes.iter().map(|r| r.as_str())).ok();
            }
        }
    }

    /// Whether slot `slot`'s values' answers go through the [`memo`]'s
    /// values: not the whole body's, which repeats only when the body does,
    /// and then the body part's answers are recalled before any value is
    /// read.
    fn by_value(&self, slot: usize) -> bool {
        !matches!(self.fields[self.slots[slot].field], Field::Body { .. })
    }

    /// The component and transformations a node's slot stands for.
    fn describe(&self, slot: usize) -> (&Field, &[Transform]) {
        let s = &self.slots[slot];
        (&self.fields[s.field], &s.transforms)
    }
}

/// Per value of a slot: not yet known, no, yes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Known {
    Unknown,
    No,
    Yes,
}

/// What is known of each value of a slot, inline for the usual few.
type Knowns = SmallVec<[Known; 4]>;

/// A slot's values for one request and what is known of them.
struct SlotScan<'r> {
    values: Candidates<'r>,
    /// Per value, the regular expressions that match it (`None`: none).
    regex: Option<SmallVec<[Option<SetMatches>; 2]>>,
    /// Per sensitivity level (LOW, HIGH), per value.
    sqli: [Knowns; 2],
    xss: Knowns,
}

/// Where a node matched, kept until a rule needs the reason worded.
enum Found<'p> {
    /// Value `value` of slot `slot` passed `test` (`None`: the slot's
    /// oversize handling decided).
    Value {
        slot: usize,
        value: Option<usize>,
        test: &'p Test,
    },
    /// An IP set's reason, already worded.
    Detail(Box<MatchDetail>),
    /// A NOT whose statement did not match.
    Not,
}

/// A test site's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Unknown,
    No,
    /// The first value that passed (`None`: the component's oversize
    /// handling decided).
    Yes(Option<u32>),
}

/// Whether a part's answers came from the [`memo`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Recall {
    NotAsked,
    Recalled,
    /// Not there: remembered at the end when every site got its answer.
    Missed,
    /// Too long to remember.
    Unremembered,
}

/// One request under evaluation by one program.
pub struct Scan<'p, 'r> {
    prog: &'p Program,
    req: &'r WafRequest<'r>,
    fields: Vec<Option<Candidates<'r>>>,
    /// Boxed: most slots of a request are answered from the [`memo`] and
    /// never extracted.
    slots: Vec<Option<Box<SlotScan<'r>>>>,
    answers: Vec<Answer>,
    /// Per part of the request.
    recall: [Recall; 2],
    /// Each part's bytes, built once to look its answers up in the
    /// [`memo`] and, when they were not there, to remember them.
    bytes: [Vec<u8>; 2],
}

impl<'p, 'r> Scan<'p, 'r> {
    pub fn new(prog: &'p Program, req: &'r WafRequest<'r>) -> Self {
        Scan {
            prog,
            req,
            fields: (0..prog.fields.len()).map(|_| None).collect(),
            slots: (0..prog.slots.len()).map(|_| None).collect(),
            answers: vec![Answer::Unknown; prog.sites],
            recall: [Recall::NotAsked; 2],
            bytes: Default::default(),
        }
    }

    pub fn request(&self) -> &'r WafRequest<'r> {
        self.req
    }

    /// The first reason `n` matches the request, or `None`.
    pub fn eval(&mut self, n: &'p Node) -> Option<MatchDetail> {
        let found = self.find(n)?;
        Some(self.detail(found))
    }

    /// Where `n` first matches. Only a rule that matched words its reason:
    /// a NOT, an AND and most rules throw theirs away.
    fn find(&mut self, n: &'p Node) -> Option<Found<'p>> {
        match n {
            Node::Test { slot, test, site } => self.answer(*slot, test, *site),
            Node::IpSet {
                addresses,
                forwarded,
            } => ip_set_detail(addresses, forwarded.as_ref(), self.req)
                .map(|d| Found::Detail(Box::new(d))),
            Node::And(all) => {
                let mut last = None;
                for s in all {
                    last = Some(self.find(s)?);
                }
                last
            }
            Node::Or(any) => any.iter().find_map(|s| self.find(s)),
            Node::Not(s) => match self.find(s) {
                Some(_) => None,
                None => Some(Found::Not),
            },
        }
    }

    /// The reason `found` stands for, as logs and explanations word it.
    fn detail(&mut self, found: Found<'p>) -> MatchDetail {
        let (slot, value, test) = match found {
            Found::Detail(d) => return *d,
            Found::Not => {
                return MatchDetail {
                    condition: "NOT".into(),
                    field: String::new(),
                    location: String::new(),
                    transforms: vec![],
                    data: String::new(),
                    sensitivity: None,
                }
            }
            Found::Value { slot, value, test } => (slot, value, test),
        };
        let (field, transforms) = self.prog.describe(slot);
        // A recalled answer: the slot's values are extracted only now.
        let data: &[u8] = match (&self.slot(slot).values, value) {
            (Candidates::Values(v), Some(i)) => &v[i],
            _ => b"(body over 8 KB: oversize handling MATCH)",
        };
        let mut d = MatchDetail::new(test.condition(), field, transforms, data);
        if let Test::Sqli(level) = test {
            d.sensitivity = Some(*level);
        }
        d
    }

    /// Site `site`'s answer: known already, recalled with its component's
    /// from the [`memo`], or tested. Called for every test site of every
    /// rule: a known answer is read first.
    fn answer(&mut self, slot: usize, test: &'p Test, site: usize) -> Option<Found<'p>> {
        let mut answer = self.answers[site];
        let part = self.prog.part(slot);
        if answer == Answer::Unknown && self.recall[part as usize] == Recall::NotAsked {
            self.recall_part(part);
            answer = self.answers[site];
        }
        match answer {
            Answer::Unknown => {
                let found = self.test(slot, test);
                self.answers[site] = match &found {
                    Some(Found::Value { value, .. }) => Answer::Yes(value.map(|i| i as u32)),
                    _ => Answer::No,
                };
                found
            }
            Answer::No => None,
            Answer::Yes(i) => Some(Found::Value {
                slot,
                value: i.map(|i| i as usize),
                test,
            }),
        }
    }

    /// Fills the answers of every site on a component of `part` from the
    /// [`memo`], when it holds them for this request's bytes of that part.
    fn recall_part(&mut self, part: Part) {
        let prog = self.prog;
        let source = &mut self.bytes[part as usize];
        self.recall[part as usize] = if !self.req.part_bytes(part, source, memo::MAX_PART) {
            Recall::Unremembered
        } else {
            match memo::part_answers(prog.id, part, source) {
                Some(answers) => {
                    for (&site, &a) in prog.part_sites[part as usize].iter().zip(&answers) {
                        self.answers[site] = match a {
                            memo::NO => Answer::No,
                            memo::DECIDED => Answer::Yes(None),
                            i => Answer::Yes(Some(i.into())),
                        };
                    }
                    Recall::Recalled
                }
                None => Recall::Missed,
            }
        };
    }

    /// Remembers the answers of each part of the request that missed the
    /// [`memo`] and whose every site was answered (a request that stopped
    /// at a terminating rule leaves some unasked).
    pub fn remember(&mut self) {
        let prog = self.prog;
        for part in [Part::Head, Part::Body] {
            if self.recall[part as usize] != Recall::Missed {
                continue;
            }
            let answers: Option<memo::Answers> = prog.part_sites[part as usize]
                .iter()
                .map(|&site| match self.answers[site] {
                    Answer::Unknown => None,
                    Answer::No => Some(memo::NO),
                    Answer::Yes(None) => Some(memo::DECIDED),
                    // An index the memo's encoding cannot hold: not remembered.
                    Answer::Yes(Some(i)) => u16::try_from(i).ok().filter(|i| *i < memo::DECIDED),
                })
                .collect();
            if let Some(answers) = answers {
                memo::remember_part_answers(prog.id, part, &self.bytes[part as usize], answers);
            }
        }
    }

    fn test(&mut self, slot: usize, test: &'p Test) -> Option<Found<'p>> {
        let prog = self.prog;
        let s = self.slot(slot);
        let found = |value| Found::Value { slot, value, test };
        let values = match &s.values {
            Candidates::Decided(true) => return Some(found(None)),
            Candidates::Decided(false) => return None,
            Candidates::Values(v) => v,
        };
        let hit = match test {
            Test::Byte { positional, value } => {
                values.iter().position(|v| positional.test(v, value))
            }
            Test::Size { comparison, size } => values
                .iter()
                .position(|v| comparison.test(v.len() as u64, *size)),
            Test::Regex(i) => {
                let sl = &prog.slots[slot];
                let by_value = prog.by_value(slot);
                match &sl.set {
                    None => {
                        let test = memo::Test::Regex {
                            id: sl.id,
                            index: *i as u32,
                        };
                        let re = sl.regexes[*i].regex();
                        values
                            .iter()
                            .position(|v| verdict(by_value, test, v, || re.is_match(v)))
                    }
                    Some(set) => {
                        let found = s.regex.get_or_insert_with(|| {
                            values
                                .iter()
                                .map(|v| {
                                    let run = || set.is_match(v).then(|| set.matches(v));
                                    match by_value {
                                        true => memo::set_matches(sl.id, v, run),
                                        false => run(),
                                    }
                                })
                                .collect()
                        });
                        found
                            .iter()
                            .position(|m| m.as_ref().is_some_and(|m| m.matched(*i)))
                    }
                }
            }
            Test::Sqli(level) => {
                let by_value = prog.by_value(slot);
                let known = &mut s.sqli[*level as usize];
                let test = memo::Test::Sqli(*level as u8);
                remembered(known, values, |v| {
                    // Most values are one number or word: no need to look.
                    !one_plain_token(v) && verdict(by_value, test, v, || is_sqli(v, *level))
                })
            }
            Test::Xss => {
                let by_value = prog.by_value(slot);
                remembered(&mut s.xss, values, |v| {
                    may_be_xss(v) && verdict(by_value, memo::Test::Xss, v, || is_xss(v))
                })
            }
        };
        hit.map(|i| found(Some(i)))
    }

    /// Slot `i`'s values, extracted and transformed on first use.
    fn slot(&mut self, i: usize) -> &mut SlotScan<'r> {
        if self.slots[i].is_none() {
            let prog = self.prog;
            let sl = &prog.slots[i];
            let req = self.req;
            let raw =
                self.fields[sl.field].get_or_insert_with(|| prog.fields[sl.field].candidates(req));
            let values = match raw {
                Candidates::Decided(d) => Candidates::Decided(*d),
                Candidates::Values(vs) => Candidates::Values(
                    vs.iter()
                        .map(|v| match v {
                            Cow::Borrowed(b) => apply_all(&sl.transforms, b),
                            Cow::Owned(o) => Cow::Owned(apply_all(&sl.transforms, o).into_owned()),
                        })
                        .collect(),
                ),
            };
            self.slots[i] = Some(Box::new(SlotScan {
                values,
                regex: None,
                sqli: Default::default(),
                xss: Knowns::new(),
            }));
        }
        self.slots[i].as_mut().expect("just filled")
    }
}

/// `compute`'s answer on `v`, through the [`memo`] when `by_value`.
fn verdict(by_value: bool, test: memo::Test, v: &[u8], compute: impl FnOnce() -> bool) -> bool {
    match by_value {
        true => memo::verdict(test, v, compute),
        false => compute(),
    }
}

/// The first value `test` holds for, each value tested at most once per
/// request whatever the number of statements asking.
fn remembered(
    known: &mut Knowns,
    values: &[Cow<'_, [u8]>],
    test: impl Fn(&[u8]) -> bool,
) -> Option<usize> {
    if known.is_empty() {
        known.resize(values.len(), Known::Unknown);
    }
    values.iter().zip(known.iter_mut()).position(|(v, k)| {
        if *k == Known::Unknown {
            *k = if test(v) { Known::Yes } else { Known::No };
        }
        *k == Known::Yes
    })
}

#[cfg(test)]
mod tests {
    use super::super::field::tests::request;
    use super::super::field::Scope;
    use super::super::statement::Pattern;
    use super::*;
    use Transform::{Lowercase, UrlDecode};

    fn re(field: Field, t: &[Transform], p: &str) -> Statement {
        Statement::RegexMatch {
            field,
            pattern: Pattern::new(p).unwrap(),
            transforms: t.to_vec(),
        }
    }

    #[test]
    fn statements_share_slots_and_one_regex_set_per_slot() {
        let headers = || Field::AllHeaders {
            scope: Scope::Value,
        };
        let mut p = Program::default();
        let nodes = [
            p.compile(&re(headers(), &[UrlDecode], "(?i)jndi")),
            p.compile(&re(headers(), &[UrlDecode], "rO0AB")),
            // NONE is no transformation: the same slot.
            p.compile(&re(headers(), &[Transform::None, UrlDecode], "rO0AB")),
            p.compile(&re(headers(), &[UrlDecode, Lowercase], "ro0ab")),
            p.compile(&Statement::SqliMatch {
                field: headers(),
                transforms: vec![UrlDecode],
                sensitivity: Sensitivity::Low,
            }),
        ];
        p.finish();
        assert_eq!(p.fields.len(), 1);
        assert_eq!(p.slots.len(), 2);
        assert_eq!(p.slots[0].regexes.len(), 2);
        assert!(p.slots[0].set.is_some() && p.slots[1].set.is_none());
        let r = request(
            "GET",
            "/",
            &[("A", "plain"), ("B", "x%20rO0ABc"), ("C", "${JNDI:x}")],
            "",
        );
        let mut scan = Scan::new(&p, &r);
        let data: Vec<Option<String>> =
            nodes.iter().map(|n| scan.eval(n).map(|d| d.data)).collect();
        assert_eq!(
            data,
            [
                Some("${JNDI:x}".to_string()),
                Some("x rO0ABc".into()),
                Some("x rO0ABc".into()),
                Some("x ro0abc".into()),
                None,
            ]
        );
        // Every site answered: the request head's answers are remembered,
        // and the same request recalls them, matches and their reasons.
        scan.remember();
        let mut again = Scan::new(&p, &r);
        let recalled: Vec<Option<String>> = nodes
            .iter()
            .map(|n| again.eval(n).map(|d| d.data))
            .collect();
        assert_eq!(again.recall[Part::Head as usize], Recall::Recalled);
        assert_eq!(recalled, data);
        // The same answers as each statement compiled alone.
        let alone = re(headers(), &[UrlDecode], "rO0AB").eval(&r).unwrap();
        assert_eq!(alone.data, "x rO0ABc");
        assert_eq!(alone.field, "HEADERS");
    }
}
