//! Dialect parsers: source text in, [`RuleGraph`] out. The second stage of the pipeline.
//!
//! Each dialect lives in its own module and exports one function,
//! `parse(&SourceFile) -> Parsed`. Problems in the text are findings (rule `parse-error`
//! for what the device would refuse, `unknown-syntax` for what mislint does not model),
//! never panics; a graph comes back whenever any of the file could be understood.

pub mod asa;
pub mod iptables;
pub mod pfsense;

use crate::graph::{Dialect, RuleGraph};
use crate::report::finding::Finding;
use crate::source::SourceFile;

/// What every dialect parser returns.
#[derive(Debug)]
pub struct Parsed {
    /// The rule graph, unless the file could not be read as its dialect at all.
    pub graph: Option<RuleGraph>,
    /// Syntax errors and notes about unmodelled constructs.
    pub findings: Vec<Finding>,
}

/// Finding name for text the device itself would refuse or mislint cannot read.
pub const PARSE_ERROR: &str = "parse-error";
/// Finding name for a construct mislint does not model; the analysis treats it as
/// "may match", and this note says where.
pub const UNKNOWN_SYNTAX: &str = "unknown-syntax";
/// Finding name for a reference to a chain, object, group or alias that is not defined.
pub const UNDEFINED_REFERENCE: &str = "undefined-reference";
/// Finding name for chains, object-groups or aliases that refer to themselves.
pub const REFERENCE_CYCLE: &str = "reference-cycle";

/// Parses a file in the given dialect.
pub fn parse(file: &SourceFile, dialect: Dialect) -> Parsed {
    parse_edited(file, dialect, &Memo::Nothing)
}

/// What a dialect keeps of a file's parts for parsing edited copies of it (fix
/// verification parses one per candidate): the answer is the one [`parse`] gives, only
/// cheaper.
pub enum Memo<'o> {
    /// Nothing kept: every copy is parsed from scratch.
    Nothing,
    /// A dump's lines and the rules they wrote.
    Iptables(iptables::Memo<'o>),
    /// A running-config's blocks and the access-list lines read.
    Asa(asa::Memo<'o>),
    /// A `config.xml`'s sections and rules.
    Pfsense(pfsense::Memo<'o>),
}

/// [`parse`], keeping what the dialect can keep of the file's parts for parsing edited
/// copies of it, if it has at most `keep_up_to` rules.
pub fn parse_keeping(file: &SourceFile, dialect: Dialect, keep_up_to: usize) -> (Parsed, Memo<'_>) {
    match dialect {
        Dialect::Pfsense => {
            let (mut parsed, memo) = pfsense::parse_keeping(file, keep_up_to);
            shorten_messages(&mut parsed);
            (parsed, memo.map_or(Memo::Nothing, Memo::Pfsense))
        }
        Dialect::Iptables => {
            let (mut parsed, memo) = iptables::parse_keeping(file, keep_up_to);
            shorten_messages(&mut parsed);
            (parsed, memo.map_or(Memo::Nothing, Memo::Iptables))
        }
        Dialect::Asa => {
            let (mut parsed, memo) = asa::parse_keeping(file, keep_up_to);
            shorten_messages(&mut parsed);
            (parsed, memo.map_or(Memo::Nothing, Memo::Asa))
        }
    }
}

/// Parses `file`, an edited copy of the file `memo` was made of, as [`parse`] would.
pub fn parse_edited<'i>(file: &'i SourceFile, dialect: Dialect, memo: &Memo<'i>) -> Parsed {
    let mut parsed = match (dialect, memo) {
        (Dialect::Iptables, Memo::Iptables(memo)) => iptables::reparse(file, memo),
        (Dialect::Iptables, _) => iptables::parse(file),
        (Dialect::Asa, Memo::Asa(memo)) => asa::reparse(file, memo),
        (Dialect::Asa, _) => asa::parse(file),
        (Dialect::Pfsense, Memo::Pfsense(memo)) => pfsense::reparse(file, memo),
        (Dialect::Pfsense, _) => pfsense::parse(file),
    };
    shorten_messages(&mut parsed);
    parsed
}

/// The lines (or blocks) an edited copy of a file shares with the original, as the
/// memos align them: the copy's first `head` are the original's first, its last `tail`
/// the original's last (each at its own offset: a line reads the same wherever it
/// stands, but for its spans).
#[derive(Clone, Copy)]
struct Shared {
    head: usize,
    tail: usize,
}

impl Shared {
    /// Compares `new` (the copy's) with `old` (the original's) from both ends by `same`.
    fn between<A, B>(new: &[A], old: &[B], same: impl Fn(&A, &B) -> bool) -> Shared {
        let head = new.iter().zip(old).take_while(|(n, o)| same(n, o)).count();
        let room = new.len().min(old.len()) - head;
        let tail = new
            .iter()
            .rev()
            .zip(old.iter().rev())
            .take(room)
            .take_while(|(n, o)| same(n, o))
            .count();
        Shared { head, tail }
    }

    /// The original's items the copy does not share (those the edit changed), of `old`.
    fn changed(self, old: usize) -> std::ops::Range<usize> {
        self.head..old - self.tail
    }

    /// The original's item that the copy's item `at` is, if shared; `new` and `old`
    /// count the copy's and the original's items.
    fn original(self, at: usize, new: usize, old: usize) -> Option<usize> {
        if at < self.head {
            return Some(at);
        }
        let tail_from = new - self.tail;
        (at >= tail_from).then(|| old - self.tail + (at - tail_from))
    }
}

fn shorten_messages(parsed: &mut Parsed) {
    for f in &mut parsed.findings {
        f.message = shorten_quoted(&f.message);
    }
}

/// Longest config token a message quotes whole, in characters.
const MAX_QUOTED_CHARS: usize = 80;

/// Messages quote the offending token in backticks; a token of megabytes (one huge line
/// of junk) would be copied into every output format. Quoted text beyond
/// [`MAX_QUOTED_CHARS`] is cut with an ellipsis; the span still covers the whole token.
fn shorten_quoted(message: &str) -> String {
    if message.len() <= MAX_QUOTED_CHARS {
        return message.to_string();
    }
    let mut out = String::with_capacity(MAX_QUOTED_CHARS * 2);
    for (i, part) in message.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        let quoted = i % 2 == 1;
        match part.char_indices().nth(MAX_QUOTED_CHARS) {
            Some((cut, _)) if quoted => {
                out.push_str(&part[..cut]);
                out.push('…');
            }
            _ => out.push_str(part),
        }
    }
    out
}

/// Recognises a config by its content: `*filter`-style table headers for iptables,
/// an XML `<pfsense>` or `<opnsense>` root for pfSense, and ASA's characteristic
/// top-level commands. Returns `None` for text that is none of them.
pub fn sniff(text: &str) -> Option<Dialect> {
    let head: String = text.chars().take(64 * 1024).collect();
    let trimmed = head.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with("<?xml") || trimmed.starts_with('<') {
        let lower = head.to_ascii_lowercase();
        if lower.contains("<pfsense") || lower.contains("<opnsense") {
            return Some(Dialect::Pfsense);
        }
        return None;
    }
    let mut asa_score = 0;
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with('*') && line.len() > 1 && !line.contains(' ') {
            return Some(Dialect::Iptables);
        }
        if line.starts_with(":INPUT ")
            || line.starts_with(":FORWARD ")
            || line.starts_with(":OUTPUT ")
            || line.starts_with(":PREROUTING ")
            || line.starts_with("-A ")
        {
            return Some(Dialect::Iptables);
        }
        let asa_words = [
            "ASA Version",
            "PIX Version",
            "FWSM Version",
            "access-list ",
            "access-group ",
            "object-group ",
            "object network ",
            "object service ",
            " nameif ",
            "nameif ",
            "security-level ",
            "same-security-traffic ",
            "hostname ",
            "interface ",
        ];
        if asa_words
            .iter()
            .any(|w| line.starts_with(w) || (w.starts_with(' ') && line.starts_with(w)))
        {
            asa_score += 1;
        }
        if line.starts_with(": Saved") || line.starts_with("ASA Version") {
            asa_score += 3;
        }
    }
    (asa_score >= 2).then_some(Dialect::Asa)
}

/// Every readable file in these directories, relative to the crate (a missing one is
/// skipped): the fixtures and `../shared/corpus` configs the parsers' tests run every
/// path on.
#[cfg(test)]
pub(crate) fn files_in(dirs: &[&str]) -> Vec<SourceFile> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if let Ok(text) = std::fs::read_to_string(&path) {
                files.push(SourceFile::new(crate::source::FileId(1), &path, text));
            }
        }
    }
    files
}

/// Copies of `text` edited at the line that starts at byte `at`, as the memos' tests
/// make them: the line removed, doubled, replaced by each of `changed(line)`, and each
/// of `put` put before it (lines with their line breaks).
#[cfg(test)]
pub(crate) fn copies_edited_at(
    text: &str,
    at: usize,
    changed: impl Fn(&str) -> Vec<String>,
    put: &[&str],
) -> Vec<String> {
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
    let (before, line, after) = (&text[..at], &text[at..end], &text[end..]);
    let mut out = vec![
        format!("{before}{after}"),
        format!("{before}{line}{line}{after}"),
    ];
    out.extend(
        changed(line)
            .iter()
            .map(|new| format!("{before}{new}{after}")),
    );
    out.extend(put.iter().map(|put| format!("{before}{put}{line}{after}")));
    out
}

/// Asserts that `text` (a parse's debug output) mentions every one of `needles`: the
/// synthetic inputs the parsers' tests compare ways of reading really hold the hard
/// cases.
#[cfg(test)]
pub(crate) fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle} missing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_dialect() {
        assert_eq!(
            sniff("# Generated\n*filter\n:INPUT ACCEPT [0:0]\n"),
            Some(Dialect::Iptables)
        );
        assert_eq!(
            sniff("<?xml version=\"1.0\"?>\n<pfsense>\n</pfsense>"),
            Some(Dialect::Pfsense)
        );
        assert_eq!(
            sniff(": Saved\nASA Version 9.12(3)\nhostname fw\n"),
            Some(Dialect::Asa)
        );
        assert_eq!(sniff("hello world\n"), None);
        assert_eq!(sniff("<html></html>"), None);
    }

    #[test]
    fn huge_quoted_tokens_are_cut() {
        let token = "é".repeat(10_000);
        let short = shorten_quoted(&format!("unexpected `{token}` here, not `x`"));
        assert_eq!(
            short,
            format!(
                "unexpected `{}…` here, not `x`",
                "é".repeat(MAX_QUOTED_CHARS)
            )
        );
        assert_eq!(
            shorten_quoted("unknown option `--dpor`"),
            "unknown option `--dpor`"
        );
    }
}
