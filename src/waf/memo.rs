//! The engine's answers remembered across requests, per thread. Two
//! levels, both pure functions of bytes:
//! - a part of the request (its head: method, path, query string and
//!   headers; or its body) under one compiled web ACL: the answer of every
//!   test site on that part's components. A request whose head was seen
//!   before costs one lookup for all its head's rules;
//! - one (transformed) value: libinjection's SQLi and XSS verdicts and a
//!   slot's regular expressions, for a value met again in another request
//!   (a path or a header, beside a new body); and whether libinjection's
//!   blacklist holds a string shape's fingerprint, shared by every value of
//!   that shape (JSON bodies that differ only in their strings' text).
//!
//! Bounded: [`ENTRIES`] places per thread and kind of answer (three kinds),
//! keys of at most [`MAX_VALUE`] bytes for values and [`MAX_PART`] for
//! parts (longer ones are tested every time), so a thread holds at most
//! 1,024 x (2 x 256 + 1,024) bytes of keys beside the fixed-size entries:
//! about 1.6 MB. A new key takes the place its hash names, whatever was
//! there. Exact: a hit compares the whole key, never only its hash.

use super::field::Part;
use regex::bytes::SetMatches;
use smallvec::SmallVec;
use std::cell::RefCell;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};

/// Places per thread, for each kind of answer (a power of two).
pub const ENTRIES: usize = 1024;
/// The longest value remembered.
pub const MAX_VALUE: usize = 256;
/// The longest part of a request whose answers are remembered: a browser's
/// request head without large cookies.
pub const MAX_PART: usize = 1024;

/// Which test a remembered answer is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Test {
    /// libinjection's SQLi at a sensitivity level (its index).
    Sqli(u8),
    /// Whether libinjection's blacklist holds the fingerprint of a string
    /// shape (see `statement::string_shape`) in one context: the quote it
    /// starts in (none: 0) and whether in MySQL's dialect.
    SqliShape { quote: u8, mysql: bool },
    /// libinjection's XSS.
    Xss,
    /// Regular expression `index` of the regular expressions with id `id`
    /// (a slot's, see [`new_id`]), run alone.
    Regex { id: u64, index: u32 },
    /// The regular expressions with id `id` run as one set.
    Set(u64),
    /// Every test site on a component of one part of the request, under the
    /// program with id `program`.
    Part { program: u64, part: Part },
}

/// A part's answers, one per test site: the index of the first value that
/// passed, [`NO`] or [`DECIDED`].
pub type Answers = SmallVec<[u16; 48]>;
/// No value passed.
pub const NO: u16 = u16::MAX;
/// The component's oversize handling decided the match.
pub const DECIDED: u16 = u16::MAX - 1;

/// An id no other compiled set of regular expressions in this process has:
/// a web ACL changed live compiles new ones, and the answers remembered for
/// the old ones are never read again (their places are taken in time).
pub fn new_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Entry<T> {
    test: Test,
    /// Short values (paths, most headers) inline, beside their answer.
    value: SmallVec<[u8; 48]>,
    answer: T,
}

struct Table<T> {
    /// Seeded per thread: values that collide on one machine do not on
    /// another (a collision only costs a test run again).
    hasher: foldhash::fast::RandomState,
    /// Each place's hash, apart and dense: a value never seen is told
    /// from the one in its place without reading that entry.
    hashes: Vec<u64>,
    places: Vec<Option<Entry<T>>>,
}

impl<T: Clone> Table<T> {
    fn new() -> Self {
        Table {
            hasher: Default::default(),
            hashes: vec![0; ENTRIES],
            places: (0..ENTRIES).map(|_| None).collect(),
        }
    }

    fn hash(&self, test: Test, value: &[u8]) -> u64 {
        self.hasher.hash_one((test, value))
    }

    fn get(&self, hash: u64, test: Test, value: &[u8]) -> Option<T> {
        let at = hash as usize & (ENTRIES - 1);
        if self.hashes[at] != hash {
            return None;
        }
        match &self.places[at] {
            Some(e) if e.test == test && *e.value == *value => Some(e.answer.clone()),
            _ => None,
        }
    }

    fn put(&mut self, hash: u64, test: Test, value: &[u8], answer: T) {
        let at = hash as usize & (ENTRIES - 1);
        self.hashes[at] = hash;
        self.places[at] = Some(Entry {
            test,
            value: value.into(),
            answer,
        });
    }
}

thread_local! {
    static VERDICTS: RefCell<Table<bool>> = RefCell::new(Table::new());
    static SETS: RefCell<Table<Option<SetMatches>>> = RefCell::new(Table::new());
    static PARTS: RefCell<Table<Answers>> = RefCell::new(Table::new());
}

fn remembered<T: Clone + 'static>(
    table: &'static std::thread::LocalKey<RefCell<Table<T>>>,
    test: Test,
    value: &[u8],
    compute: impl FnOnce() -> T,
) -> T {
    if value.len() > MAX_VALUE {
        return compute();
    }
    let (hash, known) = table.with_borrow(|t| {
        let hash = t.hash(test, value);
        (hash, t.get(hash, test, value))
    });
    if let Some(answer) = known {
        return answer;
    }
    // Computed outside the borrow: `compute` never needs the table, but a
    // borrow held across foreign code is a panic waiting for a change.
    let answer = compute();
    table.with_borrow_mut(|t| t.put(hash, test, value, answer.clone()));
    answer
}

/// `test`'s yes or no on `value`: remembered, or `compute`d and remembered.
pub fn verdict(test: Test, value: &[u8], compute: impl FnOnce() -> bool) -> bool {
    remembered(&VERDICTS, test, value, compute)
}

/// Which of the set `id`'s regular expressions match `value` (`None`:
/// none): remembered, or `compute`d and remembered.
pub fn set_matches(
    id: u64,
    value: &[u8],
    compute: impl FnOnce() -> Option<SetMatches>,
) -> Option<SetMatches> {
    remembered(&SETS, Test::Set(id), value, compute)
}

/// The answers remembered for part `part` of requests under program
/// `program`, for these bytes of it (see [`WafRequest::part_bytes`]).
///
/// [`WafRequest::part_bytes`]: super::field::WafRequest::part_bytes
pub fn part_answers(program: u64, part: Part, bytes: &[u8]) -> Option<Answers> {
    if bytes.len() > MAX_PART {
        return None;
    }
    let test = Test::Part { program, part };
    PARTS.with_borrow(|t| t.get(t.hash(test, bytes), test, bytes))
}

/// Remembers a part's answers (see [`part_answers`]).
pub fn remember_part_answers(program: u64, part: Part, bytes: &[u8], answers: Answers) {
    if bytes.len() > MAX_PART {
        return;
    }
    let test = Test::Part { program, part };
    PARTS.with_borrow_mut(|t| t.put(t.hash(test, bytes), test, bytes, answers));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// How many times `compute` ran for a series of values.
    fn runs(test: Test, values: &[&[u8]]) -> usize {
        let n = Cell::new(0);
        for v in values {
            let want = v.len() % 2 == 0;
            let got = verdict(test, v, || {
                n.set(n.get() + 1);
                want
            });
            assert_eq!(got, want, "the answer for {v:?}");
        }
        n.get()
    }

    #[test]
    fn a_value_is_tested_once_and_answers_are_not_shared_between_tests() {
        let id = new_id();
        let path: &[u8] = b"/api/v1/recommendation";
        assert_eq!(runs(Test::Regex { id, index: 0 }, &[path, path, path]), 1);
        // Another test, another regular expression, another value: each
        // asks for its own answer.
        assert_eq!(runs(Test::Regex { id, index: 1 }, &[path]), 1);
        assert_eq!(runs(Test::Xss, &[path, b"/api/v1/other", path]), 2);
    }

    #[test]
    fn long_values_are_not_remembered_and_places_are_bounded() {
        let long = vec![b'a'; MAX_VALUE + 1];
        assert_eq!(runs(Test::Sqli(0), &[&long, &long]), 2);
        // Far more values than places: every answer still right, the table
        // no larger than its places.
        let id = new_id();
        let values: Vec<Vec<u8>> = (0..ENTRIES * 4)
            .map(|i| format!("value-{i}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        assert_eq!(runs(Test::Regex { id, index: 0 }, &refs), ENTRIES * 4);
        VERDICTS.with_borrow(|t| assert_eq!(t.places.len(), ENTRIES));
    }

    #[test]
    fn set_matches_are_remembered_by_set() {
        let set = regex::bytes::RegexSet::new(["a", "b"]).unwrap();
        let (one, two) = (new_id(), new_id());
        let n = Cell::new(0);
        let matches = |id, v: &[u8]| {
            set_matches(id, v, || {
                n.set(n.get() + 1);
                set.is_match(v).then(|| set.matches(v))
            })
        };
        let ab = matches(one, b"ab").expect("both match");
        assert!(ab.matched(0) && ab.matched(1));
        assert!(matches(one, b"ab").is_some_and(|m| m.matched(1)));
        assert!(matches(one, b"zz").is_none());
        assert!(matches(two, b"ab").is_some());
        assert_eq!(n.get(), 3);
    }
}
