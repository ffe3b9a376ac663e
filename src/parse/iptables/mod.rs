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
//! a 100k-rule dump gets a handful of notes rather than thousands.

mod ast;
mod grammar;
mod lower;

use super::{PARSE_ERROR, Parsed, UNKNOWN_SYNTAX};
use crate::graph::{Action, Family};
use crate::report::finding::{Finding, Severity};
use crate::source::{FileId, SourceFile, Span};
use ast::{DumpAst, NameMap, RuleAst, TableAst, TableName};
use grammar::{LineError, RuleContext, Token};
use std::borrow::Cow;

/// Parses an iptables-save dump into a rule graph and findings.
pub fn parse(file: &SourceFile) -> Parsed {
    let mut reader = Reader::new(file.id, &file.text);
    reader.read_all();
    let Reader {
        dump,
        mut findings,
        mut notes,
        ..
    } = reader;
    let graph = lower::lower_dump(file.id, dump, &mut notes, &mut findings);
    findings.extend(notes.into_findings());
    findings.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    Parsed {
        graph: Some(graph),
        findings,
    }
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
                "`{name}` in `nat PREROUTING` is not yet modelled: forwarded traffic is checked against pre-NAT destinations ({count} {rules})"
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
        let text = self.text;
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
                self.read_line(content, base);
            }
        }
        self.close_table_at_eof();
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
        let mut rest = line;
        let mut rest_base = base;
        if line.starts_with('[') {
            match grammar::counters(line) {
                Ok((r, _)) => {
                    rest_base += line.len() - r.len();
                    rest = r;
                }
                Err(_) => {
                    let end = line.find(']').map_or(line.len(), |i| i + 1);
                    self.error(
                        Span::new(self.file, base, base + end),
                        "expected counters `[packets:bytes]`",
                    );
                    return;
                }
            }
        }
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
                    && let Some(c) = table.chains.get_mut(i)
                {
                    c.rules.push(RuleAst::unparsed(span));
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
        let Some(chain) = table.chains.get_mut(ci) else {
            return;
        };
        let len = chain.rules.len();
        let mut failure = None;
        let rule = match rule {
            Ok(r) => r,
            Err(e) => {
                failure = Some(e);
                RuleAst::unparsed(span)
            }
        };
        match position {
            Some(p) if p <= len => chain.rules.insert(p, rule),
            Some(p) => {
                if failure.is_none() {
                    failure = Some(LineError {
                        span: tokens
                            .get(2)
                            .map_or(span, |t| Span::new(file, t.start, t.end)),
                        message: format!(
                            "cannot insert at position {} in chain `{}`, which has {len} rules",
                            p + 1,
                            chain.name
                        ),
                    });
                }
                chain.rules.push(RuleAst::unparsed(span));
            }
            None => chain.rules.push(rule),
        }
        match failure {
            Some(e) => self.line_error(e),
            None => {
                for ev in self.events.drain(..) {
                    self.notes.add(ev.kind, &ev.name, ev.span);
                }
            }
        }
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
