//! Property tests: whatever bytes a parser is given, it returns, in bounded time, without
//! a panic, and every finding it makes points inside the file on character boundaries
//! and renders as human text and as JSON.
//!
//! Inputs are random byte strings and random mutations of real configs (our fixtures and
//! the `../shared/corpus` files, read at test time): deleted, duplicated and swapped
//! lines, swapped and substituted tokens, truncation at any byte, inserted NUL and CR
//! bytes. Bytes become text the lossy way, as invalid UTF-8 never reaches a parser
//! (discovery refuses it). Case counts keep the whole file well under a minute in debug.

use mislint::graph::Dialect;
use mislint::parse::{self, PARSE_ERROR};
use mislint::report::finding::Finding;
use mislint::report::{Report, Sources};
use mislint::source::{FileId, SourceFile, Span};
use proptest::prelude::*;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

/// Longest a single parse-and-render may take before the property fails as a hang.
const DEADLINE: Duration = Duration::from_secs(20);

/// The seed configs of one dialect: fixtures plus the shared corpus.
fn seeds(dialect: Dialect) -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<[Vec<Vec<u8>>; 3]> = OnceLock::new();
    let all = SEEDS.get_or_init(|| {
        [Dialect::Iptables, Dialect::Asa, Dialect::Pfsense].map(|d| {
            let (fixtures, corpus) = match d {
                Dialect::Iptables => ("fixtures/iptables", "../shared/corpus/iptables"),
                Dialect::Asa => ("fixtures/asa", "../shared/corpus/asa"),
                Dialect::Pfsense => ("fixtures/pfsense", "../shared/corpus/pfsense"),
            };
            let mut files = Vec::new();
            for dir in [fixtures, corpus] {
                let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut paths: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
                paths.sort();
                files.extend(paths.iter().filter_map(|p| std::fs::read(p).ok()));
            }
            assert!(!files.is_empty(), "no seed configs for {d:?}");
            files
        })
    });
    match dialect {
        Dialect::Iptables => &all[0],
        Dialect::Asa => &all[1],
        Dialect::Pfsense => &all[2],
    }
}

/// One edit of a config; the numbers pick lines, tokens and offsets modulo the sizes.
#[derive(Clone, Debug)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    SwapTokens(usize, usize, usize),
    SubstituteToken(usize, usize, usize),
    Truncate(usize),
    InsertByte(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let n = any::<usize>;
    prop_oneof![
        n().prop_map(Mutation::DeleteLine),
        n().prop_map(Mutation::DuplicateLine),
        (n(), n()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (n(), n(), n()).prop_map(|(l, a, b)| Mutation::SwapTokens(l, a, b)),
        (n(), n(), n()).prop_map(|(l, a, b)| Mutation::SubstituteToken(l, a, b)),
        n().prop_map(Mutation::Truncate),
        (
            n(),
            prop_oneof![Just(0u8), Just(b'\r'), Just(b'\n'), any::<u8>()]
        )
            .prop_map(|(a, b)| Mutation::InsertByte(a, b)),
    ]
}

/// Lines with their line breaks, so joining them gives the bytes back.
fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// Space- and tab-separated tokens of a line; the separators stay in the odd slots so
/// swapping tokens keeps them.
fn split_tokens(line: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut in_space = false;
    for &b in line {
        let space = matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        if space != in_space && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        in_space = space;
        current.push(b);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn is_word(t: &[u8]) -> bool {
    t.first()
        .is_some_and(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn apply(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut lines = split_lines(bytes);
    if lines.is_empty() {
        lines.push(Vec::new());
    }
    let count = lines.len();
    match *m {
        Mutation::DeleteLine(a) => {
            lines.remove(a % count);
        }
        Mutation::DuplicateLine(a) => {
            let l = lines[a % count].clone();
            lines.insert(a % count, l);
        }
        Mutation::SwapLines(a, b) => lines.swap(a % count, b % count),
        Mutation::SwapTokens(l, a, b) => {
            let mut tokens = split_tokens(&lines[l % count]);
            let words: Vec<usize> = (0..tokens.len()).filter(|&i| is_word(&tokens[i])).collect();
            if !words.is_empty() {
                tokens.swap(words[a % words.len()], words[b % words.len()]);
                lines[l % count] = tokens.concat();
            }
        }
        Mutation::SubstituteToken(l, a, b) => {
            // A word from elsewhere in the file: keywords in the wrong place.
            let all: Vec<Vec<u8>> = lines
                .iter()
                .flat_map(|line| split_tokens(line))
                .filter(|t| is_word(t))
                .collect();
            let mut tokens = split_tokens(&lines[l % count]);
            let words: Vec<usize> = (0..tokens.len()).filter(|&i| is_word(&tokens[i])).collect();
            if !words.is_empty() && !all.is_empty() {
                tokens[words[a % words.len()]] = all[b % all.len()].clone();
                lines[l % count] = tokens.concat();
            }
        }
        Mutation::Truncate(a) => return bytes[..a % (bytes.len() + 1)].to_vec(),
        Mutation::InsertByte(a, b) => {
            let mut out = bytes.to_vec();
            out.insert(a % (bytes.len() + 1), b);
            return out;
        }
    }
    lines.concat()
}

fn assert_span(file: &SourceFile, span: Span, what: &str) -> Result<(), TestCaseError> {
    let (start, end) = (span.start as usize, span.end as usize);
    prop_assert!(
        start <= end && end <= file.text.len(),
        "{} span {}..{} outside a file of {} bytes",
        what,
        start,
        end,
        file.text.len()
    );
    prop_assert!(
        file.text.is_char_boundary(start) && file.text.is_char_boundary(end),
        "{} span {}..{} splits a character",
        what,
        start,
        end
    );
    Ok(())
}

/// Parses and renders in a worker thread, so a hang fails the property instead of the
/// whole test run; returns the findings and whether a graph came back.
fn parse_with_deadline(file: SourceFile, dialect: Dialect) -> Option<(Vec<Finding>, bool, usize)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let parsed = parse::parse(&file, dialect);
        let rules = parsed
            .graph
            .as_ref()
            .map_or(0, |g| g.chains.iter().map(|c| c.rules.len()).sum());
        let _ = tx.send((parsed.findings, parsed.graph.is_some(), rules));
    });
    rx.recv_timeout(DEADLINE).ok()
}

/// The property every input must keep.
fn check(bytes: &[u8], dialect: Dialect) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let file = SourceFile::new(FileId(0), "prop.conf", text);
    let outcome = parse_with_deadline(file.clone(), dialect);
    prop_assert!(
        outcome.is_some(),
        "{:?} parse did not finish within {:?}",
        dialect,
        DEADLINE
    );
    let Some((findings, has_graph, _rules)) = outcome else {
        return Ok(());
    };
    prop_assert!(
        has_graph || findings.iter().any(|f| f.rule == PARSE_ERROR),
        "no graph and no parse error"
    );
    for f in &findings {
        assert_span(&file, f.primary.span, f.rule)?;
        for r in &f.related {
            assert_span(&file, r.span, f.rule)?;
        }
    }
    let report = Report {
        findings,
        problems: Vec::new(),
    };
    let sources = Sources::new(vec![(file, Some(dialect))]);
    let mut human = Vec::new();
    mislint::report::human::render(&report, &sources, &mut human).expect("writes to memory");
    let mut json = Vec::new();
    mislint::report::json::render(&report, &sources, &mut json).expect("writes to memory");
    let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&json);
    prop_assert!(parsed.is_ok(), "json output is not JSON");
    Ok(())
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrinking re-parses large corpus files; keep a failure's report quick.
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

/// A seed and the edits to make to it.
fn mutated(dialect: Dialect) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds(dialect).len();
    (0..n, prop::collection::vec(mutation(), 1..8)).prop_map(move |(i, ms)| {
        ms.iter()
            .fold(seeds(dialect)[i].clone(), |bytes, m| apply(&bytes, m))
    })
}

/// Random bytes, biased towards each dialect's punctuation so they reach past the
/// first token now and then.
fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b" \n\r\t-*:!<>/=\"'[]0123456789abcdefgh".to_vec()),
    ];
    prop::collection::vec(byte, 0..512)
}

/// Random bytes after a header that makes the text look like the dialect.
fn headed(dialect: Dialect) -> impl Strategy<Value = Vec<u8>> {
    let head: &'static [u8] = match dialect {
        Dialect::Iptables => b"*filter\n:FORWARD DROP [0:0]\n-A FORWARD ",
        Dialect::Asa => b"ASA Version 9.8(1)\naccess-list a extended permit ",
        Dialect::Pfsense => b"<?xml version=\"1.0\"?>\n<pfsense><filter><rule><",
    };
    random_bytes().prop_map(move |tail| [head, &tail[..]].concat())
}

proptest! {
    #![proptest_config(config(160))]

    #[test]
    fn iptables_mutations_never_panic(bytes in mutated(Dialect::Iptables)) {
        check(&bytes, Dialect::Iptables)?;
    }

    #[test]
    fn asa_mutations_never_panic(bytes in mutated(Dialect::Asa)) {
        check(&bytes, Dialect::Asa)?;
    }

    #[test]
    fn pfsense_mutations_never_panic(bytes in mutated(Dialect::Pfsense)) {
        check(&bytes, Dialect::Pfsense)?;
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn random_bytes_never_panic(bytes in random_bytes(), d in 0..3usize) {
        let dialect = [Dialect::Iptables, Dialect::Asa, Dialect::Pfsense][d];
        check(&bytes, dialect)?;
    }

    #[test]
    fn iptables_headed_random_bytes(bytes in headed(Dialect::Iptables)) {
        check(&bytes, Dialect::Iptables)?;
    }

    #[test]
    fn asa_headed_random_bytes(bytes in headed(Dialect::Asa)) {
        check(&bytes, Dialect::Asa)?;
    }

    #[test]
    fn pfsense_headed_random_bytes(bytes in headed(Dialect::Pfsense)) {
        check(&bytes, Dialect::Pfsense)?;
    }
}

/// The mutations themselves do what they say.
#[test]
fn mutations_edit_lines_and_tokens() {
    let text = b"a b c\nd e\n";
    assert_eq!(apply(text, &Mutation::DeleteLine(1)), b"a b c\n");
    assert_eq!(
        apply(text, &Mutation::DuplicateLine(0)),
        b"a b c\na b c\nd e\n"
    );
    assert_eq!(apply(text, &Mutation::SwapTokens(0, 0, 2)), b"c b a\nd e\n");
    assert_eq!(apply(text, &Mutation::Truncate(3)), b"a b");
    assert_eq!(apply(text, &Mutation::InsertByte(1, 0)), b"a\0 b c\nd e\n");
    assert_eq!(
        apply(text, &Mutation::SubstituteToken(1, 0, 0)),
        b"a b c\na e\n"
    );
}
