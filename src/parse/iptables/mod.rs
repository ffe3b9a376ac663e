//! iptables parser: `iptables-save` / `ip6tables-save` dumps (and hand-written
//! `iptables-restore` input) in, [`RuleGraph`](crate::graph::RuleGraph) out.
//!
//! The second stage of the pipeline for the iptables dialect. This file cuts the text
//! into lines (CRLF, tabs, a leading BOM), dispatches each on its first character to
//! the productions in `grammar.rs`, and keeps the table state `iptables-restore`
//! keeps: the open table, its chains, rule order under `-A`/`-I`, policies, `COMMIT`.
//! The resulting [`DumpAst`](ast::DumpAst) goes to `lower.rs`, which builds the graph.
//! One bad line gives one `parse-error` finding and a conservative "unparsed" rule in
//! its chain; notes about unmodelled constructs are counted per name, not per rule, so
//! a 100k-rule dump gets a handful of notes rather than thousands. `memo.rs` keeps what
//! the lines read for fix verification, which parses edited copies of the dump.

mod ast;
mod grammar;
mod lower;
mod memo;

use super::{PARSE_ERROR, Parsed, UNKNOWN_SYNTAX};
use crate::graph::{Action, Family};
use crate::report::finding::{Finding, Severity};
use crate::source::{FileId, SourceFile, Span};
use ast::{DumpAst, NameMap, RuleAst, TableAst, TableName};
use grammar::{LineError, RuleContext, Token};
use std::borrow::Cow;

pub use memo::{Memo, parse_keeping, reparse};

/// Parses an iptables-save dump into a rule graph and findings.
pub fn parse(file: &SourceFile) -> Parsed {
    parse_reading_ahead_from(file, READ_AHEAD_FROM_LINES)
}

/// [`parse`], reading runs of at least `from` rule lines ahead on every core (tests
/// compare both ways on small files).
fn parse_reading_ahead_from(file: &SourceFile, from: usize) -> Parsed {
    let mut reader = Reader::new(file.id, &file.text);
    reader.read_ahead_from = from;
    reader.read_all();
    reader.finish(file.id)
}

impl Reader<'_> {
    /// The graph and findings of what was read.
    fn finish(self, file: FileId) -> Parsed {
        let Reader {
            dump,
            mut findings,
            mut notes,
            ..
        } = self;
        let graph = lower::lower_dump(file, dump, &mut notes, &mut findings);
        findings.extend(notes.into_findings());
        findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        Parsed {
            graph: Some(graph),
            findings,
        }
    }
}

/// True if `word` is the `[packets:bytes]` counters `iptables-save -c` writes ahead of
/// a rule (the fixes edit such lines and must read them as this parser does).
pub fn is_counters(word: &str) -> bool {
    matches!(grammar::counters(word), Ok(("", _)))
}

/// What an `unknown-syntax` note is about; notes are counted per kind and name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoteKind {
    /// A match module we do not model (`-m limit`).
    Module,
    /// A target we do not model (`-j NFQUEUE`).
    Target,
    /// An option of a modelled module that we do not model (`--tcp-flags`).
    Option,
    /// A host name where an address was expected.
    Hostname,
    /// A protocol name missing from our table.
    Protocol,
    /// A port name missing from our table.
    PortName,
    /// A non-contiguous netmask too wide to expand.
    Mask,
    /// `-f`.
    Fragment,
    /// A restore command we do not replay (`-D`, `-R`, `-X`, `-E`).
    Command,
    /// DNAT in `nat PREROUTING`.
    Dnat,
}

const NOTE_KINDS: usize = 10;

impl NoteKind {
    fn index(self) -> usize {
        self as usize
    }

    fn message(self, name: &str, count: usize) -> String {
        let rules = if count == 1 { "rule" } else { "rules" };
        let may_match =
            format!("{count} {rules} using it may match any packet their other conditions match");
        match self {
            NoteKind::Module => format!("match `-m {name}` is not modelled: {may_match}"),
            NoteKind::Target => format!(
                "target `{name}` is not modelled: {count} {rules} using it may accept, drop or pass on packets"
            ),
            NoteKind::Option => format!("`{name}` is not modelled: {may_match}"),
            NoteKind::Hostname => format!(
                "host name `{name}` is resolved by iptables at load time and not modelled: {may_match}"
            ),
            NoteKind::Protocol => {
                format!("protocol name `{name}` is not in mislint's table: {may_match}")
            }
            NoteKind::PortName => {
                format!("port name `{name}` is not in mislint's table: {may_match}")
            }
            NoteKind::Mask => {
                format!("non-contiguous netmask in `{name}` is not modelled: {may_match}")
            }
            NoteKind::Fragment => format!("`-f` (fragments) is not modelled: {may_match}"),
            NoteKind::Command => format!(
                "command `{name}` is not replayed: {count} {rules} of this kind may change the chains mislint shows"
            ),
            NoteKind::Dnat => format!(
                "`{name}` with a target mislint cannot read: the translated traffic may go anywhere ({count} {rules})"
            ),
        }
    }
}

/// A note about to be counted: what, which name, where.
#[derive(Clone, Debug)]
pub struct NoteEvent<'a> {
    /// The kind of construct.
    pub kind: NoteKind,
    /// Its name (module, target, option, value).
    pub name: Cow<'a, str>,
    /// Its first occurrence.
    pub span: Span,
}

/// Notes deduplicated by kind and name: the first span and a count.
#[derive(Debug, Default)]
pub struct Notes {
    index: [NameMap<usize>; NOTE_KINDS],
    entries: Vec<(NoteKind, String, Span, usize)>,
}

impl Notes {
    /// Counts one occurrence.
    pub fn add(&mut self, kind: NoteKind, name: &str, span: Span) {
        let Some(map) = self.index.get_mut(kind.index()) else {
            return;
        };
        if let Some(&i) = map.get(name) {
            if let Some(e) = self.entries.get_mut(i) {
                e.3 += 1;
            }
            return;
        }
        map.insert(name.to_string(), self.entries.len());
        self.entries.push((kind, name.to_string(), span, 1));
    }

    fn into_findings(self) -> impl Iterator<Item = Finding> {
        self.entries.into_iter().map(|(kind, name, span, count)| {
            Finding::new(
                UNKNOWN_SYNTAX,
                Severity::Note,
                span,
                kind.message(&name, count),
            )
            .maybe()
        })
    }
}

/// Line-by-line reader with `iptables-restore`'s table state.
struct Reader<'a> {
    file: FileId,
    text: &'a str,
    dump: DumpAst,
    /// Index of the open table in `dump.tables`.
    open: Option<usize>,
    /// True inside a table whose header was refused: its lines are skipped silently.
    dead: bool,
    findings: Vec<Finding>,
    notes: Notes,
    tokens: Vec<Token<'a>>,
    events: Vec<NoteEvent<'a>>,
    scratch: grammar::Scratch<'a>,
    /// Runs of rule lines at least this long are read ahead on every core.
    read_ahead_from: usize,
    /// The index of the content line being read.
    at_line: usize,
    /// What is kept for a memo while reading, if one is asked for.
    keep: Option<memo::Keeping<'a>>,
}

/// Rule lines in a row from which they are read ahead on every core: below it, handing
/// the work out costs more than it saves.
const READ_AHEAD_FROM_LINES: usize = 2048;

/// Rule lines read ahead at a time: bounds the read rules waiting to be stored.
const READ_AHEAD_CHUNK: usize = 16_384;

/// A content line: its text without blanks around it, and its offset in the file.
type ContentLine<'a> = (&'a str, usize);

/// An `-A CHAIN …` line read ahead, against the chains its table had declared when
/// the run of rule lines began.
struct ReadAhead<'a> {
    /// The chain's index in its table.
    chain: usize,
    rule: Result<RuleAst, LineError>,
    events: Vec<NoteEvent<'a>>,
}

/// Reads an `-A` line to a declared chain as [`Reader::command_rule`] would, without
/// touching the dump; `None` for any other line, which the reader then reads itself.
fn read_ahead<'a>(
    cx: &RuleContext<'_>,
    text: &'a str,
    (line, base): ContentLine<'a>,
    (tokens, scratch): &mut (Vec<Token<'a>>, grammar::Scratch<'a>),
) -> Option<ReadAhead<'a>> {
    let (rest, rest_base) = after_counters(line, base)?;
    tokens.clear();
    grammar::tokenize_into(cx.file, rest, rest_base, tokens).ok()?;
    if !matches!(tokens.first().map(|t| &*t.value), Some("-A" | "--append")) {
        return None;
    }
    let name = tokens.get(1).filter(|t| !t.value.is_empty())?;
    let chain = *cx.chains.get(&*name.value)?;
    let span = Span::new(cx.file, base, base + line.len());
    let mut events = Vec::new();
    let options = tokens.get(2..).unwrap_or(&[]);
    let rule = grammar::rule_options(cx, text, options, span, &mut events, scratch);
    Some(ReadAhead {
        chain,
        rule,
        events,
    })
}

/// A command line after the `[packets:bytes]` counters `iptables-save -c` writes ahead
/// of it, with that text's offset; `None` if the counters are malformed.
fn after_counters(line: &str, base: usize) -> Option<(&str, usize)> {
    if !line.starts_with('[') {
        return Some((line, base));
    }
    let (rest, _) = grammar::counters(line).ok()?;
    Some((rest, base + line.len() - rest.len()))
}

/// The non-blank lines of `text`, trimmed, with their offsets (a BOM is skipped).
fn content_lines(text: &str) -> Vec<ContentLine<'_>> {
    let mut out = Vec::with_capacity(text.len() / 64 + 16);
    let mut offset = 0usize;
    for raw in text.split('\n') {
        let start = offset;
        offset += raw.len() + 1;
        let mut line = raw.strip_suffix('\r').unwrap_or(raw);
        let mut base = start;
        if start == 0
            && let Some(rest) = line.strip_prefix('\u{feff}')
        {
            base += line.len() - rest.len();
            line = rest;
        }
        let trimmed = line.trim_start_matches([' ', '\t']);
        base += line.len() - trimmed.len();
        let content = trimmed.trim_end_matches([' ', '\t', '\r']);
        if !content.is_empty() {
            out.push((content, base));
        }
    }
    out
}

/// True for a line that is a command (`-A …`, `[0:0] -A …`), which may be a rule.
fn is_command(line: &str) -> bool {
    matches!(line.as_bytes().first(), Some(b'-' | b'['))
}

impl<'a> Reader<'a> {
    fn new(file: FileId, text: &'a str) -> Reader<'a> {
        Reader {
            file,
            text,
            dump: DumpAst::default(),
            open: None,
            dead: false,
            findings: Vec::new(),
            notes: Notes::default(),
            tokens: Vec::new(),
            events: Vec::new(),
            scratch: grammar::Scratch::default(),
            read_ahead_from: usize::MAX,
            at_line: 0,
            keep: None,
        }
    }

    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.findings
            .push(Finding::new(PARSE_ERROR, Severity::Error, span, message));
    }

    fn line_error(&mut self, e: LineError) {
        self.error(e.span, e.message);
    }

    fn read_all(&mut self) {
        let lines = content_lines(self.text);
        self.read_lines(&lines);
    }

    fn read_lines(&mut self, lines: &[ContentLine<'a>]) {
        let mut at = 0;
        while at < lines.len() {
            let rest = lines.get(at..).unwrap_or(&[]);
            let run = rest
                .iter()
                .take_while(|(l, _)| is_command(l))
                .count()
                .max(1);
            let lines = rest.get(..run).unwrap_or(&[]);
            if run >= self.read_ahead_from {
                // Room for the run's rules at once: grown rule by rule, the table's
                // vector of rules was copied whole at each doubling, on one core.
                if let Some(table) = self.open_table() {
                    table.rules.reserve_exact(run);
                }
                for (i, chunk) in lines.chunks(READ_AHEAD_CHUNK).enumerate() {
                    self.read_commands_ahead(at + i * READ_AHEAD_CHUNK, chunk);
                }
            } else {
                for (i, &(line, base)) in lines.iter().enumerate() {
                    self.begin_line(at + i);
                    self.read_line(line, base);
                }
            }
            at += run;
        }
        self.begin_line(lines.len());
        self.close_table_at_eof();
    }

    /// Reads a run of command lines: the `-A` lines to declared chains are read on
    /// every core against the chains declared now, then all are taken in order. Should
    /// a line of the run declare a chain (`-N`, or a built-in chain's first use), the
    /// rest are read one by one again, since their jumps may name it.
    /// `first` is the index of the first of `lines` among the file's content lines.
    fn read_commands_ahead(&mut self, first: usize, lines: &[ContentLine<'a>]) {
        use rayon::prelude::*;
        let table = match self.open {
            Some(i) if !self.dead => self.dump.tables.get(i),
            _ => None,
        };
        let Some(table) = table else {
            for (i, &(line, base)) in lines.iter().enumerate() {
                self.begin_line(first + i);
                self.read_line(line, base);
            }
            return;
        };
        let cx = RuleContext {
            file: self.file,
            table: table.name,
            chains: &table.index,
        };
        let text = self.text;
        let ahead: Vec<Option<ReadAhead<'a>>> = lines
            .par_iter()
            .map_init(
                || (Vec::new(), grammar::Scratch::default()),
                |scratch, &line| read_ahead(&cx, text, line, scratch),
            )
            .collect();
        let declared = table.index.len();
        for (i, (&(line, base), read)) in lines.iter().zip(ahead).enumerate() {
            self.begin_line(first + i);
            let unchanged = self.open_table().is_some_and(|t| t.index.len() == declared);
            match read {
                Some(read) if unchanged => self.take_rule(read, line, base),
                _ => self.read_line(line, base),
            }
        }
    }

    /// Stores a rule read ahead as [`Reader::command_rule`] stores an appended one.
    fn take_rule(&mut self, mut read: ReadAhead<'a>, line: &str, base: usize) {
        let span = Span::new(self.file, base, base + line.len());
        self.keep_rule(read.chain, &read.rule, &read.events);
        self.store_rule(read.chain, None, read.rule, span, &mut read.events);
    }

    /// Stores a rule of the open table's chain `chain` at `position` (appended if
    /// `None`), or for a line that failed the unparsed stand-in and its error; a line
    /// that read cleanly has its `events` counted as notes.
    fn store_rule(
        &mut self,
        chain: usize,
        position: Option<usize>,
        read: Result<RuleAst, LineError>,
        span: Span,
        events: &mut Vec<NoteEvent<'a>>,
    ) {
        let (rule, failure) = match read {
            Ok(r) => (r, None),
            Err(e) => (RuleAst::unparsed(span), Some(e)),
        };
        if let Some(table) = self.open_table() {
            table.put_rule(chain, position, rule);
        }
        match failure {
            Some(e) => self.line_error(e),
            None => {
                for ev in events.drain(..) {
                    self.notes.add(ev.kind, &ev.name, ev.span);
                }
            }
        }
    }

    fn read_line(&mut self, line: &'a str, base: usize) {
        let span = Span::new(self.file, base, base + line.len());
        match line.as_bytes().first() {
            Some(b'#') => self.read_comment(line),
            Some(b'*') => self.read_table_header(line, span),
            Some(b':') => self.read_chain_line(line, span),
            Some(b'[' | b'-') => self.read_command(line, base, span),
            _ if line == "COMMIT" => self.read_commit(span),
            _ => {
                let word = line.split([' ', '\t']).next().unwrap_or(line);
                let wspan = Span::new(self.file, base, base + word.len());
                self.error(
                    wspan,
                    format!(
                        "unexpected `{word}`, expected `*table`, `:CHAIN POLICY`, a rule such as `-A CHAIN ...` or `COMMIT`"
                    ),
                );
            }
        }
    }

    /// `# Generated by ip6tables-save …` names the family before any table.
    fn read_comment(&mut self, line: &str) {
        if self.dump.header_family.is_some() || !self.dump.tables.is_empty() {
            return;
        }
        if line.contains("ip6tables-save") || line.contains("ip6tables-restore") {
            self.dump.header_family = Some(Family::V6);
        } else if line.contains("iptables-save") || line.contains("iptables-restore") {
            self.dump.header_family = Some(Family::V4);
        }
    }

    fn read_table_header(&mut self, line: &'a str, span: Span) {
        self.close_open_table();
        let Ok((_, name)) = grammar::table_header(line) else {
            self.error(span, "expected a table header such as `*filter`");
            self.dead = true;
            return;
        };
        let Some(table) = TableName::by_name(name) else {
            self.error(
                span,
                format!(
                    "unknown table `{name}`, expected `filter`, `nat`, `mangle`, `raw` or `security`"
                ),
            );
            self.dead = true;
            return;
        };
        self.dead = false;
        self.dump.tables.push(TableAst::new(table, span));
        self.open = Some(self.dump.tables.len() - 1);
    }

    fn close_open_table(&mut self) {
        if let Some(i) = self.open.take()
            && let Some(t) = self.dump.tables.get(i)
            && !t.committed
        {
            let (span, name) = (t.span, t.name.name());
            self.findings.push(
                Finding::new(
                    PARSE_ERROR,
                    Severity::Error,
                    span,
                    format!("table `{name}` has no `COMMIT`: `iptables-restore` refuses it"),
                )
                .with_label("this table is never committed"),
            );
        }
    }

    fn close_table_at_eof(&mut self) {
        self.close_open_table();
    }

    fn read_commit(&mut self, span: Span) {
        if self.dead {
            self.dead = false;
            return;
        }
        match self.open.take().and_then(|i| self.dump.tables.get_mut(i)) {
            Some(t) => t.committed = true,
            None => self.error(span, "`COMMIT` outside a table"),
        }
    }

    fn open_table(&mut self) -> Option<&mut TableAst> {
        self.open.and_then(|i| self.dump.tables.get_mut(i))
    }

    fn read_chain_line(&mut self, line: &'a str, span: Span) {
        if self.dead {
            return;
        }
        let Ok((_, (name, policy))) = grammar::chain_line(line) else {
            self.error(
                span,
                "expected a chain line `:CHAIN POLICY [packets:bytes]`",
            );
            return;
        };
        let file = self.file;
        let base = span.start as usize;
        let name_span = Span::of_slice(file, line, base, name);
        let policy_span = Span::of_slice(file, line, base, policy);
        let Some(table) = self.open_table() else {
            self.error(span, "chain line outside a table, expected `*table` first");
            return;
        };
        let table_name = table.name;
        if table_name.is_builtin(name) {
            let action = match policy {
                "ACCEPT" => Action::Accept,
                "DROP" => Action::Drop,
                _ => {
                    let msg = format!(
                        "built-in chain `{name}` needs policy `ACCEPT` or `DROP`, found `{policy}`"
                    );
                    self.error(policy_span, msg);
                    return;
                }
            };
            if let Some(i) = table.chain_index(name, span)
                && let Some(c) = table.chains.get_mut(i)
            {
                c.policy = Some((action, span));
                c.span = span;
            }
            return;
        }
        if policy != "-" {
            let msg = format!(
                "only built-in chains have a policy: user chain `{name}` takes `-`, found `{policy}`"
            );
            self.error(policy_span, msg);
            return;
        }
        if table.index.contains_key(name) {
            let msg = format!("chain `{name}` is declared twice");
            self.error(name_span, msg);
            return;
        }
        table.add_chain(name, false, span);
    }

    fn read_command(&mut self, line: &'a str, base: usize, span: Span) {
        if self.dead {
            return;
        }
        let Some((rest, rest_base)) = after_counters(line, base) else {
            let end = line.find(']').map_or(line.len(), |i| i + 1);
            self.error(
                Span::new(self.file, base, base + end),
                "expected counters `[packets:bytes]`",
            );
            return;
        };
        let mut tokens = std::mem::take(&mut self.tokens);
        match grammar::tokenize_into(self.file, rest, rest_base, &mut tokens) {
            Ok(()) => self.run_command(&tokens, span),
            Err(e) => {
                self.line_error(e);
                // Keep the broken line in its chain if the chain is readable.
                if let (Some(cmd), Some(chain)) = (tokens.first(), tokens.get(1))
                    && matches!(&*cmd.value, "-A" | "--append" | "-I" | "--insert")
                    && let Some(table) = self.open_table()
                    && let Some(i) = table.chain_index(&chain.value, span)
                {
                    table.put_rule(i, None, RuleAst::unparsed(span));
                }
            }
        }
        self.tokens = tokens;
    }

    fn tok_span(&self, t: &Token<'_>) -> Span {
        Span::new(self.file, t.start, t.end)
    }

    fn run_command(&mut self, tokens: &[Token<'a>], span: Span) {
        let Some(cmd) = tokens.first() else {
            return;
        };
        let cmd_span = self.tok_span(cmd);
        let command = &*cmd.value;
        let known = matches!(
            command,
            "-A" | "--append"
                | "-I"
                | "--insert"
                | "-N"
                | "--new-chain"
                | "-P"
                | "--policy"
                | "-F"
                | "--flush"
                | "-Z"
                | "--zero"
                | "-X"
                | "--delete-chain"
                | "-D"
                | "--delete"
                | "-R"
                | "--replace"
                | "-E"
                | "--rename-chain"
        );
        if !known {
            self.error(
                cmd_span,
                format!("unexpected `{command}`, expected a command such as `-A CHAIN`"),
            );
            return;
        }
        if self.open.is_none() {
            self.error(
                cmd_span,
                format!("`{command}` before any `*table` line, expected `*filter` or another table first"),
            );
            return;
        }
        match command {
            "-A" | "--append" => self.command_rule(tokens, span, false),
            "-I" | "--insert" => self.command_rule(tokens, span, true),
            "-N" | "--new-chain" => self.command_new_chain(tokens, span),
            "-P" | "--policy" => self.command_policy(tokens, span),
            "-F" | "--flush" => self.command_flush(tokens),
            "-Z" | "--zero" => {}
            _ => self.notes.add(NoteKind::Command, command, cmd_span),
        }
    }

    fn chain_arg<'t>(&mut self, tokens: &'t [Token<'a>]) -> Option<&'t Token<'a>> {
        let cmd = tokens.first()?;
        match tokens.get(1) {
            Some(t) if !t.value.is_empty() => Some(t),
            _ => {
                let span = self.tok_span(cmd);
                self.error(span, format!("`{}` needs a chain name", cmd.value));
                None
            }
        }
    }

    fn command_rule(&mut self, tokens: &[Token<'a>], span: Span, insert: bool) {
        // Only a memo asks what state the line was read in.
        let before = self.keep.as_ref().map(|_| self.state());
        let Some(chain_tok) = self.chain_arg(tokens) else {
            return;
        };
        let chain_span = self.tok_span(chain_tok);
        let file = self.file;
        let text = self.text;
        let Some(table_i) = self.open else {
            return;
        };
        let Some(table) = self.dump.tables.get_mut(table_i) else {
            return;
        };
        let Some(ci) = table.chain_index(&chain_tok.value, span) else {
            let msg = format!(
                "chain `{}` is not declared in table `{}`, expected a `:{}` line or `-N {}` first",
                chain_tok.value,
                table.name.name(),
                chain_tok.value,
                chain_tok.value
            );
            self.error(chain_span, msg);
            return;
        };
        let mut first_opt = 2;
        let mut position: Option<usize> = None;
        let mut error: Option<LineError> = None;
        if insert {
            position = Some(0);
            if let Some(t) = tokens.get(2)
                && !t.quoted
                && !t.value.is_empty()
                && t.value.bytes().all(|b| b.is_ascii_digit())
            {
                first_opt = 3;
                match t.value.parse::<usize>() {
                    Ok(n) if n >= 1 => position = Some(n - 1),
                    _ => {
                        error = Some(LineError {
                            span: Span::new(file, t.start, t.end),
                            message: format!("rule number `{}` must be 1 or more", t.value),
                        })
                    }
                }
            }
        }
        self.events.clear();
        let rule = match error {
            Some(e) => Err(e),
            None => {
                let cx = RuleContext {
                    file,
                    table: table.name,
                    chains: &table.index,
                };
                grammar::rule_options(
                    &cx,
                    text,
                    tokens.get(first_opt..).unwrap_or(&[]),
                    span,
                    &mut self.events,
                    &mut self.scratch,
                )
            }
        };
        let (len, chain_name) = match table.chains.get(ci) {
            Some(c) => (c.rules.len(), c.name.as_str()),
            None => return,
        };
        // An insert past the end fails, with the line's own error if it has one.
        let (rule, position) = match (rule, position) {
            (Ok(_), Some(p)) if p > len => {
                let too_far = LineError {
                    span: tokens
                        .get(2)
                        .map_or(span, |t| Span::new(file, t.start, t.end)),
                    message: format!(
                        "cannot insert at position {} in chain `{chain_name}`, which has {len} rules",
                        p + 1
                    ),
                };
                (Err(too_far), None)
            }
            (Err(e), Some(p)) if p > len => (Err(e), None),
            read => read,
        };
        let mut events = std::mem::take(&mut self.events);
        // An append to a chain declared before it reads as reading it ahead would.
        if !insert && before.is_some_and(|b| b == self.state()) {
            self.keep_rule(ci, &rule, &events);
        }
        self.store_rule(ci, position, rule, span, &mut events);
        self.events = events;
    }

    fn command_new_chain(&mut self, tokens: &[Token<'a>], span: Span) {
        let Some(chain_tok) = self.chain_arg(tokens) else {
            return;
        };
        let chain_span = self.tok_span(chain_tok);
        if let Some(extra) = tokens.get(2) {
            let s = self.tok_span(extra);
            self.error(s, format!("unexpected `{}` after `-N CHAIN`", extra.value));
            return;
        }
        let Some(table) = self.open_table() else {
            return;
        };
        let name = &*chain_tok.value;
        if table.index.contains_key(name) || table.name.is_builtin(name) {
            let msg = format!("chain `{name}` already exists");
            self.error(chain_span, msg);
            return;
        }
        table.add_chain(name, false, span);
    }

    fn command_policy(&mut self, tokens: &[Token<'a>], span: Span) {
        let Some(chain_tok) = self.chain_arg(tokens) else {
            return;
        };
        let chain_span = self.tok_span(chain_tok);
        let policy = tokens.get(2);
        let action = match policy.map(|t| &*t.value) {
            Some("ACCEPT") => Action::Accept,
            Some("DROP") => Action::Drop,
            _ => {
                let s = policy.map_or(span, |t| self.tok_span(t));
                self.error(s, "expected policy `ACCEPT` or `DROP` after `-P CHAIN`");
                return;
            }
        };
        let Some(table) = self.open_table() else {
            return;
        };
        let name = &*chain_tok.value;
        if !table.name.is_builtin(name) {
            let msg = format!(
                "`-P` sets the policy of built-in chains only, and `{name}` is not one in table `{}`",
                table.name.name()
            );
            self.error(chain_span, msg);
            return;
        }
        if let Some(i) = table.chain_index(name, span)
            && let Some(c) = table.chains.get_mut(i)
        {
            c.policy = Some((action, span));
        }
    }

    fn command_flush(&mut self, tokens: &[Token<'a>]) {
        let chain = tokens
            .get(1)
            .map(|t| (t.value.to_string(), self.tok_span(t)));
        let Some(table) = self.open_table() else {
            return;
        };
        match chain {
            None => table.chains.iter_mut().for_each(|c| c.rules.clear()),
            Some((name, s)) => match table.index.get(&name).copied() {
                Some(i) => {
                    if let Some(c) = table.chains.get_mut(i) {
                        c.rules.clear();
                    }
                }
                None => self.error(
                    s,
                    format!("cannot flush chain `{name}`: it is not declared"),
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::sets::{PORT_MAX, addr, ct};
    use crate::graph::{Chain, CondKind, IntervalSet, NatTarget, RuleGraph};
    use crate::parse::{REFERENCE_CYCLE, UNDEFINED_REFERENCE};

    const HEAD: &str = "# Generated by iptables-save v1.8.7\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n";

    fn run(text: &str) -> (Parsed, String) {
        let parsed = parse(&SourceFile::new(FileId(0), "t.rules", text));
        (parsed, text.to_string())
    }

    fn filter(rules: &str) -> (Parsed, String) {
        run(&format!("{HEAD}{rules}COMMIT\n"))
    }

    fn graph(p: &Parsed) -> &RuleGraph {
        p.graph.as_ref().expect("a graph")
    }

    fn chain<'g>(g: &'g RuleGraph, name: &str) -> &'g Chain {
        g.chains
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no chain {name}"))
    }

    fn at(text: &str, span: Span) -> &str {
        &text[span.start as usize..span.end as usize]
    }

    fn of_rule(p: &Parsed, rule: &'static str) -> Vec<Finding> {
        p.findings
            .iter()
            .filter(|f| f.rule == rule)
            .cloned()
            .collect()
    }

    fn kinds(g: &RuleGraph, chain_name: &str, i: usize) -> Vec<CondKind> {
        chain(g, chain_name).rules[i]
            .conds
            .iter()
            .map(|c| c.kind.clone())
            .collect()
    }

    fn ports(lo: u128, hi: u128) -> IntervalSet {
        IntervalSet::range(lo, hi)
    }

    fn v4net(s: &str, len: u8) -> IntervalSet {
        addr::cidr(s.parse().expect("literal"), len).expect("valid prefix")
    }

    /// Command lines of every kind the reader treats apart, in runs long enough to be
    /// read ahead: counters, undeclared and built-in chains springing into being, a
    /// chain declared mid-run and jumped to, inserts, flushes, malformed lines and
    /// notes of unmodelled modules.
    pub(super) fn varied_commands(count: usize) -> String {
        let mut text =
            String::from("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:WEB - [0:0]\n");
        for i in 0..count {
            let line = match i % 13 {
                0 => format!("-A INPUT -p tcp --dport {} -j ACCEPT", 1 + i % 60000),
                1 => format!("[{i}:{}] -A FORWARD -s 10.0.{}.0/24 -j WEB", i * 7, i % 250),
                2 => format!("-A WEB -m comment --comment \"rule {i}\" -p udp --dport 53 -j DROP"),
                3 => format!("-A NOPE{} -j ACCEPT", i % 3),
                4 => "-A INPUT -m nosuchmodule --x 1 -j ACCEPT".to_string(),
                5 => format!("-A INPUT -p tcp --bogus {i} -j ACCEPT"),
                6 => format!("-A INPUT -m comment --comment \"open {i}"),
                7 if i == 7 + 13 * 3 => "-A OUTPUT -j ACCEPT".to_string(),
                7 => format!("-I INPUT {} -p icmp -j ACCEPT", 1 + i % 5),
                8 if i == 8 + 13 * 20 => "-N LATE".to_string(),
                8 => format!("-A FORWARD -j {}", ["LATE", "LATE1"][i % 2]),
                9 => format!(
                    "-A WEB -j {} -p tcp --dport {i}",
                    ["INPUT", "OUTPUT"][i % 2]
                ),
                10 if i == 10 + 13 * 30 => "-F WEB".to_string(),
                10 => format!(
                    "--append WEB -p tcp -m multiport --dports 80,{} -j ACCEPT",
                    1 + i % 9000
                ),
                11 => format!("[x:{i}] -A INPUT -j ACCEPT"),
                _ => format!("-A LATE -d 192.0.2.{} -j RETURN", i % 250),
            };
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str("COMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n");
        for i in 0..count / 4 {
            text.push_str(&format!(
                "-A PREROUTING -p tcp --dport {} -j DNAT --to-destination 10.9.0.{}\n",
                1 + i,
                i % 250
            ));
        }
        text.push_str("COMMIT\n");
        text
    }

    #[test]
    fn reading_ahead_matches_reading_in_order() {
        let mut files = vec![SourceFile::new(
            FileId(0),
            "varied.rules",
            varied_commands(800),
        )];
        files.extend(crate::parse::files_in(&[
            "fixtures/iptables",
            "../shared/corpus/iptables",
            "../shared/corpus/iptables-extension-tests",
        ]));
        assert!(files.len() > 100, "{} files", files.len());
        let varied = format!("{:?}", parse_reading_ahead_from(&files[0], usize::MAX));
        crate::parse::assert_mentions(
            &varied,
            &[
                "NOPE2",
                "nosuchmodule",
                "--bogus",
                "LATE1",
                "cannot jump to built-in",
            ],
        );
        for file in &files {
            for from in [0, 1, 5] {
                assert_eq!(
                    format!("{:?}", parse_reading_ahead_from(file, from)),
                    format!("{:?}", parse_reading_ahead_from(file, usize::MAX)),
                    "{} reading ahead from {from}",
                    file.path.display()
                );
            }
        }
    }

    #[test]
    fn basic_rule_lowers_to_a_cube_with_spans() {
        let (p, text) = filter("-A FORWARD -s 10.0.0.0/24 -p tcp -m tcp --dport 80 -j ACCEPT\n");
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        let r = &chain(g, "FORWARD").rules[0];
        assert_eq!(r.action, Action::Accept);
        assert_eq!(
            kinds(g, "FORWARD", 0),
            vec![
                CondKind::SrcAddr(v4net("10.0.0.0", 24)),
                CondKind::Protocol(IntervalSet::single(6)),
                CondKind::DstPort(ports(80, 80)),
            ]
        );
        assert_eq!(at(&text, r.conds[0].span), "-s 10.0.0.0/24");
        assert_eq!(at(&text, r.conds[2].span), "--dport 80");
        assert_eq!(at(&text, r.action_span), "-j ACCEPT");
        assert!(
            at(&text, r.span).starts_with("-A FORWARD") && at(&text, r.span).ends_with("ACCEPT")
        );
        assert_eq!(g.family, Family::V4);
    }

    #[test]
    fn policies_become_defaults_and_stages_follow_hook_order() {
        let text = "*mangle\n:PREROUTING ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:FORWARD DROP [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n";
        let (p, text) = run(text);
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        let names: Vec<&str> = g.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "raw PREROUTING",
                "mangle PREROUTING",
                "mangle FORWARD",
                "filter FORWARD"
            ]
        );
        let fwd = chain(g, "FORWARD")
            .default
            .as_ref()
            .expect("built-in default");
        assert_eq!(fwd.action, Action::Drop);
        assert_eq!(at(&text, fwd.span), ":FORWARD DROP [0:0]");
        assert_eq!(fwd.reason, "policy of chain `FORWARD`");
        // INPUT has no chain line: ACCEPT, with the table header as the cause.
        let input = chain(g, "INPUT")
            .default
            .as_ref()
            .expect("built-in default");
        assert_eq!(input.action, Action::Accept);
        assert_eq!(at(&text, input.span), "*filter");
        assert!(chain(g, "mangle:FORWARD").default.is_some());
    }

    #[test]
    fn negation_in_both_positions() {
        let (p, _) = filter(
            "-A FORWARD -p tcp ! --dport 80 -j DROP\n-A FORWARD -p tcp --dport ! 80 -j DROP\n-A FORWARD ! -s 10.0.0.0/24 -j DROP\n-A FORWARD -s ! 10.0.0.0/24 -j DROP\n-A FORWARD ! -p udp -j DROP\n",
        );
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        let not80 = IntervalSet::single(80).complement(PORT_MAX);
        assert_eq!(kinds(g, "FORWARD", 0)[1], CondKind::DstPort(not80.clone()));
        assert_eq!(kinds(g, "FORWARD", 1)[1], CondKind::DstPort(not80));
        let not_net = v4net("10.0.0.0", 24).complement(crate::graph::sets::ADDR_MAX);
        assert_eq!(
            kinds(g, "FORWARD", 2),
            vec![CondKind::SrcAddr(not_net.clone())]
        );
        assert_eq!(kinds(g, "FORWARD", 3), vec![CondKind::SrcAddr(not_net)]);
        assert_eq!(
            kinds(g, "FORWARD", 4),
            vec![CondKind::Protocol(IntervalSet::single(17).complement(255))]
        );
    }

    #[test]
    fn multiport_ranges_and_either_port() {
        let (p, text) = filter(
            "-A FORWARD -p tcp -m multiport --dports 80,8000:8080,443 -j ACCEPT\n-A FORWARD -p udp -m multiport --ports 53,67:68 -j ACCEPT\n-A FORWARD -p tcp -m multiport ! --ports 22 -j ACCEPT\n",
        );
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        let fwd = chain(g, "FORWARD");
        assert_eq!(fwd.rules.len(), 4, "`--ports` becomes two rules");
        assert_eq!(
            kinds(g, "FORWARD", 0)[1],
            CondKind::DstPort(IntervalSet::from_ranges([
                (80, 80),
                (443, 443),
                (8000, 8080)
            ]))
        );
        let dns = IntervalSet::from_ranges([(53, 53), (67, 68)]);
        assert_eq!(kinds(g, "FORWARD", 1)[1], CondKind::SrcPort(dns.clone()));
        assert_eq!(kinds(g, "FORWARD", 2)[1], CondKind::DstPort(dns));
        assert_eq!(fwd.rules[1].span, fwd.rules[2].span);
        assert_eq!(at(&text, fwd.rules[1].conds[1].span), "--ports 53,67:68");
        let not22 = IntervalSet::single(22).complement(PORT_MAX);
        assert_eq!(
            kinds(g, "FORWARD", 3)[1..],
            [CondKind::SrcPort(not22.clone()), CondKind::DstPort(not22)]
        );
    }

    #[test]
    fn port_range_forms() {
        let (p, _) = filter("-A FORWARD -p tcp --dport 1024: --sport :1023 -j ACCEPT\n");
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        assert_eq!(
            kinds(g, "FORWARD", 0)[1..],
            [
                CondKind::DstPort(ports(1024, PORT_MAX)),
                CondKind::SrcPort(ports(0, 1023))
            ]
        );
    }

    #[test]
    fn interfaces_and_wildcards() {
        let (p, _) = filter("-A FORWARD -i eth+ -o eth1 -j ACCEPT\n-A FORWARD ! -i ppp0 -j DROP\n");
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        let CondKind::InIface(m) = &kinds(g, "FORWARD", 0)[0] else {
            panic!("in-interface condition")
        };
        assert!(m.matches("eth7") && !m.matches("wlan0") && !m.negated);
        let CondKind::InIface(n) = &kinds(g, "FORWARD", 1)[0] else {
            panic!("in-interface condition")
        };
        assert!(n.negated && n.matches("eth0") && !n.matches("ppp0"));
        let names: Vec<&str> = g.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth1", "ppp0"], "wildcards name no interface");
    }

    #[test]
    fn netmask_forms() {
        let (p, _) = filter(
            "-A FORWARD -s 10.1.2.3/255.255.255.0 -j ACCEPT\n-A FORWARD -d 10.0.12.0/255.0.255.0 -j ACCEPT\n",
        );
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        assert_eq!(
            kinds(g, "FORWARD", 0),
            vec![CondKind::SrcAddr(v4net("10.1.2.0", 24))]
        );
        let CondKind::DstAddr(set) = &kinds(g, "FORWARD", 1)[0] else {
            panic!("destination condition")
        };
        assert_eq!(
            set.ranges().len(),
            256,
            "one block per value of the free octet"
        );
        assert!(set.contains(addr::v4("10.77.12.9".parse().expect("literal"))));
        assert!(!set.contains(addr::v4("10.77.13.9".parse().expect("literal"))));
    }

    #[test]
    fn goto_return_jump_and_counting_rules() {
        let (p, text) = filter(
            ":USER - [0:0]\n:OTHER - [0:0]\n[5:300] -A FORWARD -g USER\n-A FORWARD -c 1 2 -j OTHER\n-A USER -j RETURN\n-A OTHER\n-A OTHER -j LOG --log-prefix \"a \\\"b\\\" c\"\n",
        );
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        let user = g
            .chains
            .iter()
            .position(|c| c.name == "USER")
            .expect("USER");
        let other = g
            .chains
            .iter()
            .position(|c| c.name == "OTHER")
            .expect("OTHER");
        let fwd = chain(g, "FORWARD");
        assert_eq!(
            fwd.rules[0].action,
            Action::Goto(crate::graph::ChainId(user))
        );
        assert_eq!(
            fwd.rules[1].action,
            Action::Jump(crate::graph::ChainId(other))
        );
        assert_eq!(at(&text, fwd.rules[0].span), "[5:300] -A FORWARD -g USER");
        assert_eq!(chain(g, "USER").rules[0].action, Action::Return);
        assert!(chain(g, "USER").default.is_none());
        assert_eq!(
            chain(g, "OTHER").rules[0].action,
            Action::Continue(String::new())
        );
        assert_eq!(
            chain(g, "OTHER").rules[1].action,
            Action::Continue("LOG".into())
        );
    }

    #[test]
    fn comments_keep_quotes_and_escapes() {
        let (p, _) = filter(
            "-A FORWARD -m comment --comment \"say \\\"hi\\\" \\\\ there\" -j ACCEPT\n-A FORWARD -m comment --comment 'single quoted' -j ACCEPT\n",
        );
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        let fwd = chain(g, "FORWARD");
        assert_eq!(fwd.rules[0].comment.as_deref(), Some("say \"hi\" \\ there"));
        assert!(
            fwd.rules[0].conds.is_empty(),
            "a comment never changes matching"
        );
        assert_eq!(fwd.rules[1].comment.as_deref(), Some("single quoted"));
    }

    #[test]
    fn crlf_tabs_and_bom() {
        let text = "\u{feff}*filter\r\n:FORWARD DROP [0:0]\r\n-A FORWARD\t-p tcp\t--dport 25 -j ACCEPT  \r\nCOMMIT\r\n";
        let (p, text) = run(text);
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        let r = &chain(g, "FORWARD").rules[0];
        assert_eq!(
            at(&text, r.span),
            "-A FORWARD\t-p tcp\t--dport 25 -j ACCEPT"
        );
        assert_eq!(at(&text, chain(g, "FORWARD").span), ":FORWARD DROP [0:0]");
    }

    #[test]
    fn missing_commit_is_an_error_at_the_table_header() {
        let (p, text) = run(
            "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:FORWARD DROP [0:0]\n-A FORWARD -j ACCEPT\n",
        );
        let errs = of_rule(&p, PARSE_ERROR);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(at(&text, errs[0].primary.span), "*filter");
        assert!(errs[0].message.contains("`COMMIT`"));
        let g = graph(&p);
        assert_eq!(
            chain(g, "FORWARD").rules[0].action,
            Action::Accept,
            "graph still built"
        );
    }

    #[test]
    fn unknown_option_gives_one_error_and_an_unparsed_rule() {
        let (p, text) = filter("-A FORWARD -p tcp --dpor 80 -j ACCEPT\n-A FORWARD -j DROP\n");
        let errs = of_rule(&p, PARSE_ERROR);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(at(&text, errs[0].primary.span), "--dpor");
        assert!(
            errs[0]
                .message
                .starts_with("unknown option `--dpor`: expected")
        );
        let g = graph(&p);
        let fwd = chain(g, "FORWARD");
        assert_eq!(fwd.rules.len(), 2);
        assert_eq!(fwd.rules[0].action, Action::Unknown("unparsed".into()));
        assert_eq!(
            fwd.rules[0].conds[0].kind,
            CondKind::Unknown("unparsed rule".into())
        );
        assert_eq!(fwd.rules[1].action, Action::Drop);
    }

    #[test]
    fn bad_values_and_missing_arguments_are_errors() {
        for (rule, token) in [
            ("-A FORWARD -p tcp --dport 70000 -j ACCEPT\n", "70000"),
            ("-A FORWARD -p tcp --dport 9:3 -j ACCEPT\n", "9:3"),
            ("-A FORWARD -s 10.0.0.256 -j ACCEPT\n", "10.0.0.256"),
            ("-A FORWARD -p 300 -j ACCEPT\n", "300"),
            ("-A FORWARD -p tcp --dport\n", "--dport"),
            ("-A FORWARD -m tcp --dport 22 -j ACCEPT\n", "-m tcp"),
            ("-A FORWARD -m state --state BOGUS -j ACCEPT\n", "BOGUS"),
            ("-A NOPE -j ACCEPT\n", "NOPE"),
        ] {
            let (p, text) = filter(rule);
            let errs = of_rule(&p, PARSE_ERROR);
            assert_eq!(errs.len(), 1, "{rule}: {errs:?}");
            assert_eq!(at(&text, errs[0].primary.span), token, "{rule}");
        }
        let (p, text) = run("-A FORWARD -j ACCEPT\n");
        let errs = of_rule(&p, PARSE_ERROR);
        assert_eq!(errs.len(), 1);
        assert_eq!(at(&text, errs[0].primary.span), "-A");
        let (p, text) = run("*filter\n:FORWARD BOGUS [0:0]\nCOMMIT\n");
        let errs = of_rule(&p, PARSE_ERROR);
        assert_eq!(at(&text, errs[0].primary.span), "BOGUS");
    }

    #[test]
    fn jump_to_undefined_chain() {
        let (p, text) = filter("-A FORWARD -j nowhere\n");
        let errs = of_rule(&p, UNDEFINED_REFERENCE);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].severity, Severity::Error);
        assert_eq!(at(&text, errs[0].primary.span), "-j nowhere");
        let g = graph(&p);
        assert_eq!(
            chain(g, "FORWARD").rules[0].action,
            Action::Unknown("nowhere".into())
        );
    }

    #[test]
    fn jump_loop_is_reported_where_it_closes() {
        let (p, text) =
            filter(":A - [0:0]\n:B - [0:0]\n-A FORWARD -j A\n-A A -j B\n-A B -p tcp -j A\n");
        let cycles = of_rule(&p, REFERENCE_CYCLE);
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert_eq!(at(&text, cycles[0].primary.span), "-j A");
        assert!(
            cycles[0].message.contains("`A` -> `B` -> `A`"),
            "{}",
            cycles[0].message
        );
    }

    #[test]
    fn deep_chain_nesting_does_not_overflow() {
        let mut rules = String::new();
        let mut decls = String::new();
        for i in 0..10_000 {
            decls.push_str(&format!(":C{i} - [0:0]\n"));
            rules.push_str(&format!("-A C{i} -j C{}\n", i + 1));
        }
        decls.push_str(":C10000 - [0:0]\n");
        rules.push_str("-A C10000 -j C0\n");
        let (p, _) = filter(&format!("{decls}-A FORWARD -j C0\n{rules}"));
        assert_eq!(of_rule(&p, REFERENCE_CYCLE).len(), 1);
    }

    #[test]
    fn unknown_module_is_unknown_cond_with_one_note() {
        let (p, text) = filter(
            "-A FORWARD -p tcp -m limit --limit 3/min --limit-burst 5 --dport 22 -j ACCEPT\n-A FORWARD -m limit --limit 1/s -j DROP\n",
        );
        assert!(of_rule(&p, PARSE_ERROR).is_empty(), "{:?}", p.findings);
        let notes = of_rule(&p, UNKNOWN_SYNTAX);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0].severity, Severity::Note);
        assert!(notes[0].message.contains("`-m limit`") && notes[0].message.contains("2 rules"));
        assert_eq!(at(&text, notes[0].primary.span), "-m limit");
        let g = graph(&p);
        let r = &chain(g, "FORWARD").rules[0];
        assert_eq!(
            r.conds[1].kind,
            CondKind::Unknown("-m limit --limit 3/min --limit-burst 5".into())
        );
        assert_eq!(r.conds[2].kind, CondKind::DstPort(ports(22, 22)));
    }

    #[test]
    fn unmodelled_tcp_flags_and_icmp_types_are_unknown() {
        let (p, _) = filter(
            "-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j DROP\n-A FORWARD -p icmp --icmp-type 8 -j ACCEPT\n-A FORWARD -p icmp -j ACCEPT\n",
        );
        assert!(of_rule(&p, PARSE_ERROR).is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        assert_eq!(
            kinds(g, "FORWARD", 0)[1],
            CondKind::Unknown("-m tcp --tcp-flags SYN,RST SYN".into())
        );
        assert!(matches!(kinds(g, "FORWARD", 1)[1], CondKind::Unknown(_)));
        assert_eq!(
            kinds(g, "FORWARD", 2),
            vec![CondKind::Protocol(IntervalSet::single(1))]
        );
        assert_eq!(of_rule(&p, UNKNOWN_SYNTAX).len(), 2);
    }

    #[test]
    fn state_conntrack_and_iprange() {
        let (p, _) = filter(
            "-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT\n-A FORWARD -m conntrack ! --ctstate NEW -j ACCEPT\n-A FORWARD -m iprange --src-range 10.0.0.5-10.0.0.9 -j ACCEPT\n",
        );
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        assert_eq!(
            kinds(g, "FORWARD", 0),
            vec![CondKind::State(IntervalSet::range(
                ct::ESTABLISHED,
                ct::RELATED + ct::FLAGS - 1
            ))]
        );
        assert_eq!(
            kinds(g, "FORWARD", 1),
            vec![CondKind::State(ct::base(ct::NEW).complement(ct::MAX))]
        );
        let lo = addr::v4("10.0.0.5".parse().expect("literal"));
        let hi = addr::v4("10.0.0.9".parse().expect("literal"));
        assert_eq!(
            kinds(g, "FORWARD", 2),
            vec![CondKind::SrcAddr(IntervalSet::range(lo, hi))]
        );
    }

    #[test]
    fn insert_puts_rules_first_or_at_position() {
        let (p, _) = filter(
            "-A FORWARD -p tcp -j ACCEPT\n-A FORWARD -p udp -j ACCEPT\n-I FORWARD -p icmp -j DROP\n-I FORWARD 3 -p gre -j DROP\n",
        );
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        let protos: Vec<CondKind> = (0..4).map(|i| kinds(g, "FORWARD", i)[0].clone()).collect();
        let p = |n: u128| CondKind::Protocol(IntervalSet::single(n));
        assert_eq!(protos, vec![p(1), p(6), p(47), p(17)]);
    }

    #[test]
    fn family_flags_and_detection() {
        let (p, _) = filter("-A FORWARD -6 -j DROP\n-A FORWARD -4 -j ACCEPT\n");
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        let fwd = chain(g, "FORWARD");
        assert_eq!(fwd.rules.len(), 1, "the -6 rule is skipped in an IPv4 dump");
        assert_eq!(fwd.rules[0].action, Action::Accept);
        let (p6, _) = run("*filter\n-A FORWARD -s 2001:db8::/32 -j ACCEPT\nCOMMIT\n");
        assert_eq!(graph(&p6).family, Family::V6);
        let (ph, _) = run("# Generated by ip6tables-save v1.8\n*filter\nCOMMIT\n");
        assert_eq!(graph(&ph).family, Family::V6);
    }

    #[test]
    fn dnat_and_redirect_become_rewrites_in_a_nat_stage() {
        let (p, text) = run(
            "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.0.0.5:8080\n-A PREROUTING -p tcp --dport 81 -j DNAT --to-destination 10.0.0.6\n-A PREROUTING -p tcp --dport 82 -j REDIRECT --to-ports 3128\n-A PREROUTING -p tcp --dport 83 -j DNAT --to-destination bogus\nCOMMIT\n*filter\n:FORWARD DROP [0:0]\nCOMMIT\n",
        );
        assert!(of_rule(&p, PARSE_ERROR).is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        let names: Vec<&str> = g.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["nat PREROUTING", "filter FORWARD"]);
        let pre = chain(g, "nat:PREROUTING");
        let v4 = |a: &str| crate::analysis::zones::parse_network(a).expect("valid");
        assert_eq!(
            pre.rules[0].action,
            Action::dnat(NatTarget {
                addrs: Some(v4("10.0.0.5")),
                ports: Some(IntervalSet::single(8080)),
            })
        );
        assert_eq!(
            pre.rules[1].action,
            Action::dnat(NatTarget {
                addrs: Some(v4("10.0.0.6")),
                ports: None,
            })
        );
        assert_eq!(
            pre.rules[2].action,
            Action::dnat(NatTarget {
                addrs: None,
                ports: Some(IntervalSet::single(3128)),
            })
        );
        assert_eq!(pre.rules[3].action, Action::Unknown("DNAT".into()));
        // Only the first packet of a connection meets the nat table.
        assert!(pre.rules.iter().all(|r| {
            r.conds.iter().any(|c| {
                c.kind == CondKind::State(crate::graph::sets::ct::base(crate::graph::sets::ct::NEW))
            })
        }));
        let notes = of_rule(&p, UNKNOWN_SYNTAX);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(at(&text, notes[0].primary.span), "-j DNAT");
    }

    #[test]
    fn nat_target_forms() {
        use super::lower::parse_nat_target;
        let t = parse_nat_target("DNAT", "10.0.0.1-10.0.0.3:80-90").expect("range form");
        assert_eq!(t.addrs.map(|a| a.count()), Some(3));
        assert_eq!(t.ports.map(|p| p.count()), Some(11));
        let t = parse_nat_target("DNAT", "[2001:db8::1]:443").expect("v6 form");
        assert_eq!(t.ports, Some(IntervalSet::single(443)));
        assert!(parse_nat_target("DNAT", "2001:db8::1").is_some_and(|t| t.ports.is_none()));
        assert!(parse_nat_target("REDIRECT", "").is_some_and(|t| t.addrs.is_none()));
        assert!(parse_nat_target("DNAT", ":80").is_none());
    }

    #[test]
    fn unknown_targets_and_nat_outside_nat() {
        let (p, _) = filter("-A FORWARD -j NFQUEUE --queue-num 3\n-A FORWARD -j NFQUEUE\n");
        assert!(of_rule(&p, PARSE_ERROR).is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        assert_eq!(
            chain(g, "FORWARD").rules[0].action,
            Action::Unknown("NFQUEUE".into())
        );
        let notes = of_rule(&p, UNKNOWN_SYNTAX);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].message.contains("2 rules"));
    }

    #[test]
    fn restore_commands_declare_and_set_policy() {
        let (p, _) = run(
            "*filter\n-N mine\n-P FORWARD DROP\n-A FORWARD -j mine\n-A mine -j ACCEPT\n-F mine\nCOMMIT\n",
        );
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        assert_eq!(
            chain(g, "FORWARD")
                .default
                .as_ref()
                .map(|d| d.action.clone()),
            Some(Action::Drop)
        );
        assert!(chain(g, "mine").rules.is_empty(), "`-F mine` flushed it");
    }

    #[test]
    fn long_and_attached_option_forms() {
        let (p, _) = filter("-A FORWARD --protocol=tcp -s1.2.3.4 --destination-port=25 -jACCEPT\n");
        assert!(p.findings.is_empty(), "{:?}", p.findings);
        let g = graph(&p);
        assert_eq!(kinds(g, "FORWARD", 0)[2], CondKind::DstPort(ports(25, 25)));
        assert_eq!(chain(g, "FORWARD").rules[0].action, Action::Accept);
    }
}
