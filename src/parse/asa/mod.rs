//! Cisco ASA running-config parser (ASA 8.x–9.x; PIX 6/7 and FWSM files read too): the
//! ASA room of the parse stage. Text in, [`RuleGraph`](crate::graph::RuleGraph) out.
//!
//! Reading goes in three steps. First the text is cut into lines with byte offsets
//! (CRLF and a BOM are fine) and indented lines are joined to the top-level line above
//! them (`interface`, `object`, `object-group` blocks). Then each line that mislint
//! models is read by the line grammar ([`grammar`]) into the vendor AST ([`ast`]); a
//! malformed modelled line is a `parse-error` at the offending token, and everything
//! else (crypto, logging, class-map, …) is skipped and counted into one `unknown-syntax`
//! note. Finally [`lower`] turns the AST into the rule graph: interface ACLs, the
//! global ACL, security levels, implicit denies. NAT is read but not applied. `memo.rs`
//! keeps the access-list lines read for fix verification, which parses edited copies.
//!
//! The accepted syntax is written down in `grammars/asa.ebnf`.

pub mod ast;
mod grammar;
mod lower;
mod memo;
mod nat;
pub mod ports;

use super::{PARSE_ERROR, Parsed, UNDEFINED_REFERENCE, UNKNOWN_SYNTAX};
use crate::report::finding::{Finding, Severity};
use crate::source::{SourceFile, Span};
use ast::*;
use grammar::{Cx, GErr};
use std::borrow::Cow;

pub use memo::{Memo, parse_keeping, reparse};

/// Parses an ASA running-config.
pub fn parse(file: &SourceFile) -> Parsed {
    parse_with(file, PARALLEL_FROM_BLOCKS, None)
}

/// [`parse`], reading the access-list lines ahead on every core when the config has
/// at least `parallel_from` blocks, and lowering the entries in `lowering_runs` runs
/// (`None`: as many as the config's size calls for). Tests pin both.
fn parse_with(file: &SourceFile, parallel_from: usize, lowering_runs: Option<usize>) -> Parsed {
    parse_reading(file, lowering_runs, |cx, blocks| {
        pre_read_access_lists(cx, blocks, parallel_from)
    })
}

/// [`parse_with`], with the access-list lines that `read_ahead` reads (given the context
/// and the blocks) taken from it rather than read by the reader as it goes.
fn parse_reading<'a>(
    file: &'a SourceFile,
    lowering_runs: Option<usize>,
    read_ahead: impl FnOnce(&Cx<'a>, &[Block<'a>]) -> Vec<PreRead<'a>>,
) -> Parsed {
    let text = file.text.as_str();
    let lines = cut_lines(text);
    let cx0 = Cx::new(file.id, text);
    if let Some(line) = find_show_output(&lines) {
        let finding = Finding::new(
            PARSE_ERROR,
            Severity::Error,
            cx0.span(line),
            "this is `show access-list` output (hit counts, hashes, expanded entries), not a running-config; lint the output of `show running-config` instead",
        );
        return Parsed {
            graph: None,
            findings: vec![finding],
        };
    }
    let blocks = group_blocks(&lines);
    let mut cx = cx0;
    prescan_groups(&blocks, &mut cx);
    let mut reader = Reader {
        cx: &cx,
        cfg: Config::default(),
        findings: Vec::new(),
        skipped_lines: 0,
        skipped_words: Vec::new(),
        pending_remarks: Vec::new(),
        pre_read: read_ahead(&cx, &blocks).into_iter().peekable(),
    };
    for (i, block) in blocks.iter().enumerate() {
        reader.read_block(i, block);
    }
    let Reader {
        cfg,
        mut findings,
        skipped_lines,
        skipped_words,
        ..
    } = reader;
    let graph = lower::lower(&cx, cfg, &mut findings, lowering_runs);
    let start = Span::new(file.id, 0, 0);
    if skipped_lines > 0 {
        findings.push(Finding::new(
            UNKNOWN_SYNTAX,
            Severity::Note,
            start,
            format!(
                "skipped {skipped_lines} line{} mislint does not model: {}",
                if skipped_lines == 1 { "" } else { "s" },
                skipped_words.join(", ")
            ),
        ));
    }
    Parsed {
        graph: Some(graph),
        findings,
    }
}

/// One non-blank, non-comment line: its text without the line break and trailing
/// blanks, and whether it was indented.
#[derive(Clone, Copy, Debug)]
struct Line<'a> {
    text: &'a str,
    indented: bool,
}

/// Cuts the text into lines, dropping blank lines and whole-line comments (`!`, and
/// the `:` lines `show running-config` prints). Slices stay inside `text`.
fn cut_lines(text: &str) -> Vec<Line<'_>> {
    // Room for lines of 32 bytes on average (running-config lines are longer): the
    // vector is not regrown and copied on a big config, and the room it does not use
    // is not written.
    let mut out = Vec::with_capacity(text.len() / 32 + 16);
    for (n, raw) in text.split('\n').enumerate() {
        let raw = if n == 0 {
            raw.strip_prefix('\u{feff}').unwrap_or(raw)
        } else {
            raw
        };
        let line = raw.trim_end();
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('!') || body.starts_with(':') {
            continue;
        }
        out.push(Line {
            text: line,
            indented: line.len() != body.len(),
        });
    }
    out
}

/// Recognises `show access-list` output, which looks like access-list lines but carries
/// hit counts and hashes.
fn find_show_output<'a>(lines: &[Line<'a>]) -> Option<&'a str> {
    lines.iter().map(|l| l.text).find(|t| {
        let t = t.trim_start();
        t.starts_with("access-list ")
            && (t.contains("(hitcnt=")
                || t.contains(" elements; name hash")
                || t.contains("cached ACL log flows"))
    })
}

/// A top-level line and the indented lines under it.
#[derive(Debug)]
struct Block<'a> {
    head: &'a str,
    children: Vec<&'a str>,
}

/// Joins indented lines to the top-level line above them.
fn group_blocks<'a>(lines: &[Line<'a>]) -> Vec<Block<'a>> {
    // At most one block per line; the room not used is not written.
    let mut blocks: Vec<Block<'a>> = Vec::with_capacity(lines.len());
    for l in lines {
        match blocks.last_mut() {
            Some(b) if l.indented => b.children.push(l.text.trim_start()),
            _ => blocks.push(Block {
                head: l.text.trim_start(),
                children: Vec::new(),
            }),
        }
    }
    blocks
}

/// Records which object-groups are service and icmp-type groups before any ACL is
/// read: the kind decides how `object-group X` in an ACE reads.
fn prescan_groups<'a>(blocks: &[Block<'a>], cx: &mut Cx<'a>) {
    for b in blocks {
        if let Ok((_, Some((kind, name)))) = grammar::group_head(b.head) {
            match kind {
                GroupKind::Service(_) => {
                    cx.service_groups.insert(name);
                }
                GroupKind::IcmpType => {
                    cx.icmp_groups.insert(name);
                }
                _ => {}
            }
        }
    }
}

/// Blocks from which the access-list lines are read on every core: below it, handing
/// the work out costs more than it saves.
const PARALLEL_FROM_BLOCKS: usize = 4096;

/// An access-list line read by the grammar ahead of the reader, with the block it
/// came from and the text the grammar saw.
struct PreRead<'a> {
    block: usize,
    line: &'a str,
    read: grammar::Res<'a, AclLine<'a>>,
}

/// Reads a big config's access-list lines on every core. They are most of its lines,
/// and each reads alone: what the reader does with them in order (remarks, findings)
/// stays with the reader. Empty below `parallel_from` blocks: the reader then reads
/// each line as it goes.
fn pre_read_access_lists<'a>(
    cx: &Cx<'a>,
    blocks: &[Block<'a>],
    parallel_from: usize,
) -> Vec<PreRead<'a>> {
    use rayon::prelude::*;
    if blocks.len() < parallel_from {
        return Vec::new();
    }
    blocks
        .par_iter()
        .enumerate()
        .filter(|(_, b)| is_access_list(b.head))
        .map(|(block, b)| {
            let line = access_list_text(b.head);
            PreRead {
                block,
                line,
                read: grammar::access_list(cx, line),
            }
        })
        .collect()
}

/// True for a block whose command is `access-list`, as [`Reader::read_block`] tells.
fn is_access_list(head: &str) -> bool {
    first_word(strip_comment(head)) == "access-list"
}

/// The text of an access-list line the grammar reads: remarks keep their text whole,
/// `!` included; other lines lose an inline comment.
fn access_list_text(raw: &str) -> &str {
    let is_remark = after_first_word(raw)
        .split_whitespace()
        .nth(1)
        .is_some_and(|w| w.eq_ignore_ascii_case("remark"));
    if is_remark { raw } else { strip_comment(raw) }
}

/// Cuts an inline `! comment` off a command line (Batfish's test configs write them).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, w) in bytes.windows(2).enumerate() {
        if matches!(w, [b' ' | b'\t', b'!']) {
            return line.get(..i).unwrap_or(line).trim_end();
        }
    }
    line
}

/// The first word of a line, lowercased (copied only when it has capitals: most
/// lines are written in lowercase).
fn first_word(line: &str) -> Cow<'_, str> {
    let word = line.split_whitespace().next().unwrap_or("");
    if word.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(word.to_ascii_lowercase())
    } else {
        Cow::Borrowed(word)
    }
}

/// The text after the first word.
fn after_first_word(line: &str) -> &str {
    let t = line.trim_start();
    match t.find(char::is_whitespace) {
        Some(i) => t.get(i..).unwrap_or("").trim(),
        None => "",
    }
}

/// Top-level commands that carry no filtering meaning and are not worth a mention.
const SILENT: &[&str] = &[
    "asa",
    "pix",
    "fwsm",
    "hostname",
    "domain-name",
    "names",
    "exit",
    "end",
];

/// Reads blocks into the AST, collecting findings and skipped-line counts.
struct Reader<'c, 'a> {
    cx: &'c Cx<'a>,
    cfg: Config<'a>,
    findings: Vec<Finding>,
    skipped_lines: usize,
    skipped_words: Vec<String>,
    pending_remarks: Vec<(&'a str, &'a str)>,
    /// Access-list lines already read on every core, in block order.
    pre_read: std::iter::Peekable<std::vec::IntoIter<PreRead<'a>>>,
}

impl<'a> Reader<'_, 'a> {
    fn skip(&mut self, word: String, lines: usize) {
        self.skipped_lines += lines;
        if !self.skipped_words.contains(&word) {
            self.skipped_words.push(word);
        }
    }

    /// Turns a grammar error into a `parse-error` finding at the offending token.
    fn report(&mut self, line: &'a str, e: nom::Err<GErr<'a>>) {
        let g = match e {
            nom::Err::Error(g) | nom::Err::Failure(g) => g,
            nom::Err::Incomplete(_) => GErr {
                at: "",
                expected: "",
                message: None,
            },
        };
        let at = g.at.trim_start();
        let token = at.split_whitespace().next().unwrap_or("");
        let cmd = first_word(line);
        let expected = if g.expected.is_empty() {
            "something else".to_string()
        } else {
            g.expected.to_string()
        };
        let (span, message) = if token.is_empty() || self.cx.span(token).is_empty() {
            (
                self.cx.span(line),
                format!("incomplete `{cmd}` line: expected {expected}"),
            )
        } else if let Some(m) = g.message {
            (self.cx.span(token), format!("`{token}`: {m}"))
        } else {
            (
                self.cx.span(token),
                format!("unexpected `{token}` in `{cmd}` line: expected {expected}"),
            )
        };
        self.findings.push(
            Finding::new(PARSE_ERROR, Severity::Error, span, message)
                .with_label(format!("expected {expected}")),
        );
    }

    /// Reads block number `index` of the file.
    fn read_block(&mut self, index: usize, b: &Block<'a>) {
        // An access-list line read ahead on every core needs no second look at its
        // words: most of a big config's lines take this way.
        if let Some(p) = self.pre_read.next_if(|p| p.block == index) {
            self.read_access_list(p.line, p.read);
            return;
        }
        let head = strip_comment(b.head);
        let word = first_word(head);
        match &*word {
            "interface" => self.read_interface(head, &b.children),
            "nameif" => self.read_pix_nameif(head),
            "ip" if after_first_word(head).starts_with("address") => self.read_pix_ip(head),
            "same-security-traffic" => match grammar::same_security(head) {
                Ok((_, intra)) => {
                    let span = Some(self.cx.span(head));
                    if intra {
                        self.cfg.intra_interface = span;
                    } else {
                        self.cfg.inter_interface = span;
                    }
                }
                Err(e) => self.report(head, e),
            },
            "name" => match grammar::name_line(b.head) {
                Ok((_, (name, addr))) => {
                    let span = self.cx.span(b.head);
                    self.cfg.names.insert(name, NameDef { addr, span });
                }
                Err(e) => self.report(b.head, e),
            },
            "object" => self.read_object(head, &b.children),
            "object-group" => self.read_group(head, &b.children),
            "access-list" => {
                let line = access_list_text(b.head);
                self.read_access_list(line, grammar::access_list(self.cx, line));
            }
            "access-group" => match grammar::access_group(self.cx, head) {
                Ok((_, ag)) => self.cfg.access_groups.push(ag),
                Err(e) => self.report(head, e),
            },
            "nat" | "static" => {
                let form = if word == "nat" {
                    NatForm::Twice
                } else {
                    NatForm::LegacyStatic
                };
                self.read_nat(head, form);
            }
            w if SILENT.contains(&w) || w.starts_with("cryptochecksum") => {}
            _ => self.skip(word.into_owned(), 1 + b.children.len()),
        }
    }

    fn read_nat(&mut self, line: &'a str, form: NatForm) {
        match grammar::nat_line(line, form) {
            Ok((_, mut nat)) => {
                nat.span = self.cx.span(line);
                self.cfg.nats.push(nat);
            }
            Err(e) => self.report(line, e),
        }
    }

    fn read_interface(&mut self, head: &'a str, children: &[&'a str]) {
        let hw = after_first_word(head)
            .split_whitespace()
            .next()
            .unwrap_or("");
        if hw.is_empty() {
            self.report(
                head,
                grammar::fail(after_first_word(head), "an interface name"),
            );
            return;
        }
        let mut def = InterfaceDef {
            hw,
            span: self.cx.span(head),
            ..InterfaceDef::default()
        };
        for &c in children {
            let line = strip_comment(c);
            let word = first_word(line);
            let rest = after_first_word(line);
            match &*word {
                "nameif" => match grammar::nameif(line) {
                    Ok((_, n)) => def.nameif = Some((n, self.cx.span(line))),
                    Err(e) => self.report(line, e),
                },
                "security-level" => match grammar::security_level(line) {
                    Ok((_, l)) => def.level = Some((l, self.cx.span(line))),
                    Err(e) => self.report(line, e),
                },
                "ip" if rest.starts_with("address") => match grammar::ip_address(self.cx, line) {
                    Ok((_, Some((a, m)))) => def.address = Some((a, m, self.cx.span(line))),
                    Ok((_, None)) => def.address = None,
                    Err(e) => self.report(line, e),
                },
                "ipv6" if rest.starts_with("address") => match grammar::ipv6_address(line) {
                    Ok((_, Some((a, l)))) => def.v6.push((a, l, self.cx.span(line))),
                    Ok((_, None)) => self.skip("ipv6".into(), 1),
                    Err(e) => self.report(line, e),
                },
                "description" => def.description = Some(rest),
                "management-only" => def.management_only = true,
                "shutdown" => def.shutdown = true,
                "no" => match &*first_word(rest) {
                    "nameif" => def.nameif = None,
                    "security-level" => def.level = None,
                    "ip" => def.address = None,
                    "shutdown" => def.shutdown = false,
                    "management-only" => def.management_only = false,
                    "description" => def.description = None,
                    _ => self.skip(format!("no {}", first_word(rest)), 1),
                },
                _ => self.skip(word.into_owned(), 1),
            }
        }
        self.cfg.interfaces.push(def);
    }

    /// PIX 6: `nameif ethernet0 outside security0` at top level.
    fn read_pix_nameif(&mut self, line: &'a str) {
        match grammar::pix_nameif(line) {
            Ok((_, (hw, name, level))) => {
                let span = self.cx.span(line);
                let idx = match self
                    .cfg
                    .interfaces
                    .iter()
                    .position(|d| d.hw.eq_ignore_ascii_case(hw))
                {
                    Some(i) => i,
                    None => {
                        self.cfg.interfaces.push(InterfaceDef {
                            hw,
                            span,
                            ..InterfaceDef::default()
                        });
                        self.cfg.interfaces.len() - 1
                    }
                };
                if let Some(d) = self.cfg.interfaces.get_mut(idx) {
                    d.nameif = Some((name, span));
                    d.level = Some((level, span));
                }
            }
            Err(e) => self.report(line, e),
        }
    }

    /// PIX 6: `ip address outside 10.0.0.1 255.255.255.0` at top level.
    fn read_pix_ip(&mut self, line: &'a str) {
        match grammar::pix_ip_address(self.cx, line) {
            Ok((_, (ifname, addr))) => {
                let span = self.cx.span(line);
                let found = self
                    .cfg
                    .interfaces
                    .iter_mut()
                    .find(|d| d.nameif.is_some_and(|(n, _)| n == ifname));
                match found {
                    Some(d) => d.address = addr.map(|(a, m)| (a, m, span)),
                    None => {
                        let at = line
                            .find(ifname)
                            .and_then(|i| line.get(i..))
                            .unwrap_or(line);
                        let name_span = self.cx.span(at.split_whitespace().next().unwrap_or(at));
                        self.findings.push(Finding::new(
                            UNDEFINED_REFERENCE,
                            Severity::Error,
                            name_span,
                            format!(
                                "`ip address` names interface `{ifname}`, which no `nameif` defines"
                            ),
                        ));
                    }
                }
            }
            Err(e) => self.report(line, e),
        }
    }

    fn read_object(&mut self, head: &'a str, children: &[&'a str]) {
        let (kind, name) = match grammar::object_head(head) {
            Ok((_, Some(k))) => k,
            Ok((_, None)) => {
                self.skip("object".into(), 1 + children.len());
                return;
            }
            Err(e) => {
                self.report(head, e);
                return;
            }
        };
        let span = self.cx.span(head);
        if kind.eq_ignore_ascii_case("network") {
            let mut obj = self.cfg.net_objects.remove(name).unwrap_or(NetObject {
                span,
                value: None,
                description: None,
            });
            for &c in children {
                let word = first_word(c);
                match &*word {
                    "description" => obj.description = Some(after_first_word(c)),
                    "nat" => {
                        let line = strip_comment(c);
                        self.read_nat(line, NatForm::Object);
                        if let Some(nat) = self.cfg.nats.last_mut()
                            && nat.form == NatForm::Object
                            && nat.object.is_none()
                        {
                            nat.object = Some(name);
                        }
                    }
                    _ => {
                        let line = strip_comment(c);
                        match grammar::object_network_value(self.cx, line) {
                            Ok((_, v)) => obj.value = Some((v, self.cx.span(line))),
                            Err(e) => self.report(line, e),
                        }
                    }
                }
            }
            self.cfg.net_objects.insert(name, obj);
        } else {
            let mut obj = self.cfg.svc_objects.remove(name).unwrap_or(SvcObject {
                span,
                service: None,
            });
            for &c in children {
                let line = strip_comment(c);
                match &*first_word(line) {
                    "description" => {}
                    "service" => {
                        let body = after_first_word(line);
                        match grammar::service(self.cx, body) {
                            Ok((_, s)) => obj.service = Some(s),
                            Err(e) => self.report(line, e),
                        }
                    }
                    _ => self.report(line, grammar::fail(line, "service or description")),
                }
            }
            self.cfg.svc_objects.insert(name, obj);
        }
    }

    fn read_group(&mut self, head: &'a str, children: &[&'a str]) {
        let (kind, name) = match grammar::group_head(strip_comment(head)) {
            Ok((_, Some(k))) => k,
            Ok((_, None)) => {
                self.skip("object-group".into(), 1 + children.len());
                return;
            }
            Err(e) => {
                self.report(head, e);
                return;
            }
        };
        let span = self.cx.span(head);
        let mut group = match self.cfg.groups.remove(name) {
            Some(g) if g.kind == kind => g,
            _ => Group {
                kind,
                span,
                members: Vec::new(),
            },
        };
        for &c in children {
            let line = strip_comment(c);
            if first_word(line) == "description" {
                continue;
            }
            match grammar::member(self.cx, kind, line) {
                Ok((_, m)) => group.members.push(m),
                Err(e) => self.report(line, e),
            }
        }
        self.cfg.groups.insert(name, group);
    }

    /// Takes in what the grammar read of the access-list line `line`.
    fn read_access_list(&mut self, line: &'a str, read: grammar::Res<'a, AclLine<'a>>) {
        match read {
            Ok((_, AclLine::Remark { acl, text })) => {
                self.pending_remarks.push((acl, text));
                self.cfg.acl_lines.push(AclLine::Remark { acl, text });
            }
            Ok((_, AclLine::Ace(mut ace))) => {
                let texts: Vec<&str> = self
                    .pending_remarks
                    .iter()
                    .filter(|(a, _)| *a == ace.acl)
                    .map(|(_, t)| *t)
                    .collect();
                self.pending_remarks.retain(|(a, _)| *a != ace.acl);
                if !texts.is_empty() {
                    ace.remark = Some(texts.join("\n"));
                }
                self.cfg.acl_lines.push(AclLine::Ace(ace));
            }
            Ok((_, AclLine::Skipped)) => {
                let mut words = after_first_word(line).split_whitespace();
                let name = words.next().unwrap_or("");
                let word = match words.next() {
                    Some(w)
                        if w.eq_ignore_ascii_case("webtype")
                            || w.eq_ignore_ascii_case("ethertype") =>
                    {
                        w
                    }
                    _ => name,
                }
                .to_ascii_lowercase();
                self.skip(format!("access-list {word}"), 1);
            }
            Ok((_, other)) => {
                if let AclLine::Standard { acl, .. } = other {
                    self.pending_remarks.retain(|(a, _)| *a != acl);
                }
                self.cfg.acl_lines.push(other);
            }
            Err(e) => self.report(line, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_offsets_and_drop_comments() {
        let text = "\u{feff}: Saved\r\ninterface G0\r\n nameif inside \r\n! c\r\n\r\nhostname x";
        let lines = cut_lines(text);
        let texts: Vec<&str> = lines.iter().map(|l| l.text).collect();
        assert_eq!(texts, vec!["interface G0", " nameif inside", "hostname x"]);
        assert!(lines.get(1).is_some_and(|l| l.indented));
        let blocks = group_blocks(&lines);
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            blocks.first().map(|b| b.children.clone()),
            Some(vec!["nameif inside"])
        );
    }

    /// Access-list lines of every kind the reader treats apart: remarks of interleaved
    /// ACLs, inline comments, standard and skipped lines, malformed entries, capitals.
    fn varied_access_lists(count: usize) -> String {
        let mut text = String::from(
            "interface G0\n nameif outside\n security-level 0\n\
             interface G1\n nameif inside\n security-level 100\n\
             object-group service WEB tcp\n port-object eq www\n\
             object-group service KRB tcp-udp\n port-object eq kerberos\n port-object eq 88\n\
             object network F\n fqdn www.example.com\n\
             object-group network MIX\n network-object object F\n network-object host 10.2.0.1\n\
             object-group network GHOSTS\n network-object host ghost-host\n",
        );
        for i in 0..count {
            let acl = ["OUT", "IN", "DMZ"][(i + i / 15) % 3];
            let line = match i % 15 {
                9 => format!(
                    "access-list {acl} extended permit icmp any any {}",
                    [
                        "echo",
                        "echo-reply",
                        "unreachable",
                        "time-exceeded",
                        "traceroute",
                        "mask-request",
                        "redirect"
                    ][i % 7]
                ),
                10 => format!(
                    "access-list {acl} extended permit udp any any object-group KRB time-range WORK{}",
                    i % 2
                ),
                11 => format!(
                    "access-list {acl} extended permit tcp object-group MIX any eq {} inactive",
                    1 + i % 100
                ),
                12 => format!(
                    "access-list {acl} extended permit tcp object-group MIX object-group GHOSTS eq ldap"
                ),
                13 => format!(
                    "access-list {acl} extended deny tcp object NOOBJ{} any",
                    i % 4
                ),
                14 => format!(
                    "access-list UNBOUND extended permit icmp any any echo time-range T{}",
                    i % 3
                ),
                0 => format!("access-list {acl} remark entry {i} ! kept whole"),
                1 => format!(
                    "access-list {acl} extended permit tcp any host 10.0.{}.{} eq {} ! why",
                    i / 250 % 250,
                    i % 250,
                    1 + i % 9000
                ),
                2 => format!(
                    "access-list {acl} extended deny udp any any range {} {}",
                    i % 100,
                    100 + i % 100
                ),
                3 => format!("ACCESS-LIST {acl} extended permit tcp any any object-group WEB"),
                4 => format!("access-list {acl} extended permit tcp any any eq nosuchport{i}"),
                5 => format!("access-list {acl} webtype permit url http://x/{i}"),
                6 => format!(
                    "access-list STD{} standard permit host 10.1.0.{}",
                    i % 4,
                    i % 250
                ),
                7 => format!(
                    "access-list {acl} extended permit tcp object-group NOPE{} any",
                    i / 15 % 5
                ),
                _ => format!("access-list {acl} extended permit ip any4 any6"),
            };
            text.push_str(&line);
            text.push('\n');
            if i % 500 == 0 {
                text.push_str("logging enable\n");
            }
        }
        text.push_str(
            "access-group OUT in interface outside\naccess-group IN in interface inside\n",
        );
        text
    }

    /// The synthetic config, every fixture and every corpus ASA file.
    pub(super) fn asa_files() -> Vec<SourceFile> {
        let mut files = vec![SourceFile::new(
            crate::source::FileId(0),
            "varied.cfg",
            varied_access_lists(600),
        )];
        files.extend(crate::parse::files_in(&[
            "fixtures/asa",
            "../shared/corpus/asa",
        ]));
        assert!(files.len() > 10, "{} files", files.len());
        files
    }

    #[test]
    fn lowering_in_runs_matches_one_run() {
        let files = asa_files();
        let one = format!("{:?}", parse_with(&files[0], usize::MAX, Some(1)));
        crate::parse::assert_mentions(
            &one,
            &[
                "icmp types (`time-exceeded`, `redirect`",
                "time-range `WORK1`",
                "kerberos",
                "NOOBJ3",
                "name `ghost-host` is not defined",
                "fqdn",
            ],
        );
        for file in &files {
            let one = format!("{:?}", parse_with(file, usize::MAX, Some(1)));
            for runs in [2, 3, 7, 1000] {
                assert_eq!(
                    format!("{:?}", parse_with(file, usize::MAX, Some(runs))),
                    one,
                    "{} in {runs} runs",
                    file.path.display()
                );
            }
        }
    }

    #[test]
    fn reading_ahead_matches_reading_in_order() {
        let files = asa_files();
        let varied = format!("{:?}", parse_with(&files[0], usize::MAX, Some(1)));
        crate::parse::assert_mentions(
            &varied,
            &["entry 585", "parse-error", "access-list webtype", "NOPE4"],
        );
        for file in &files {
            assert_eq!(
                format!("{:?}", parse_with(file, 0, Some(1))),
                format!("{:?}", parse_with(file, usize::MAX, Some(1))),
                "{}",
                file.path.display()
            );
        }
    }

    #[test]
    fn inline_comments_are_cut() {
        assert_eq!(
            strip_comment("service-object udp eq 1235   ! note"),
            "service-object udp eq 1235"
        );
        assert_eq!(strip_comment("host 10.0.0.1"), "host 10.0.0.1");
    }
}
