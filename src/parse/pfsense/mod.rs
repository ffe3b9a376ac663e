//! pfSense / OPNsense `config.xml`: the third dialect room of the parse stage.
//!
//! `parse` reads the XML with roxmltree (DTDs refused, so no entity-expansion bombs):
//! section by section and rule by rule, on every core, where [`split`] can find them,
//! and as one document where it cannot. It walks the few sections the linter needs
//! (`<interfaces>`, `<ifgroups>`, `<aliases>`, `<filter>`, `<nat>`, OPNsense's
//! `<OPNsense><Firewall>`) into the vendor AST of [`ast`], and hands that to [`lower`],
//! which resolves aliases and builds the rule graph. Everything else in the file (users,
//! DHCP, packages, …) is checked to be well-formed and not read. The accepted element
//! tree is written down in `grammars/pfsense.md`.

pub mod ast;
pub mod lower;
pub(crate) mod split;

use super::{PARSE_ERROR, Parsed};
use crate::report::finding::{Finding, Severity};
use crate::source::{FileId, LineIndex, MoveSpans, SourceFile, Span};
use ast::{
    Alias, Config, Endpoint, FilterRule, Flavor, IfGroup, IfaceDecl, Origin, PortForward, Str,
    Text, Unmodelled,
};
use rayon::prelude::*;
use roxmltree::{Document, Node, ParsingOptions, StringStorage};
use std::borrow::Cow;

/// Parses a pfSense or OPNsense `config.xml`.
pub fn parse(file: &SourceFile) -> Parsed {
    parse_remembering(file, None, None).0
}

/// [`parse`], keeping the memo of the file's parts as well if it can be read in parts
/// and has at most `keep_up_to` rules (a bigger file gets no verified fix, and the memo
/// holds a copy of every rule).
pub fn parse_keeping(file: &SourceFile, keep_up_to: usize) -> (Parsed, Option<Memo<'_>>) {
    parse_remembering(file, None, Some(keep_up_to))
}

/// Parses an edited copy of a file whose parts `memo` holds: the same answer as
/// [`parse`], with only the parts the edit touched read again.
pub fn reparse<'i>(file: &'i SourceFile, memo: &Memo<'i>) -> Parsed {
    parse_remembering(file, Some(memo), None).0
}

fn parse_remembering<'i>(
    file: &'i SourceFile,
    memo: Option<&Memo<'i>>,
    keep_up_to: Option<usize>,
) -> (Parsed, Option<Memo<'i>>) {
    let Some(layout) = split::layout(&file.text) else {
        return (parse_whole(file), None);
    };
    match read_in_parts(file, &layout, memo, keep_up_to) {
        Some((read, kept)) => {
            let kept = kept.map(|parts| Memo { layout, parts });
            (lowered(file, read), kept)
        }
        None => (parse_whole(file), None),
    }
}

/// The parts of a file as [`parse`] reads them, by their text. Every fix candidate is
/// verified by parsing the whole file with the fix applied; the edit touches one or two
/// parts, and the rest are taken from here, their spans moved to where they now stand,
/// instead of being parsed by roxmltree again.
pub struct Memo<'o> {
    /// Where the file's sections and `<filter>` children are, which placing the fixes'
    /// edits reads too.
    pub layout: split::Layout,
    parts: Parts<'o>,
}

/// What a config's reading gives: its AST, or the one finding that says why there is none.
type Read<'i> = Result<Config<'i>, Box<Finding>>;

/// Parts by their text and how they are read, with the offset each was read at.
type Parts<'o> = foldhash::HashMap<(JobKind, &'o str), (usize, Part<'o>)>;

impl<'o> Memo<'o> {
    /// What `job` reads in `text`, if the memo holds a part of the same text read the
    /// same way.
    fn recall<'i>(&self, text: &'i str, job: Job) -> Option<Part<'i>>
    where
        'o: 'i,
    {
        let (kind, e) = job.remembered()?;
        let (base, part) = self.parts.get(&(kind, &text[e.range.clone()]))?;
        let mut part = part.clone();
        part.move_spans(e.range.start as i64 - *base as i64);
        Some(part)
    }
}

/// Parses the whole file as one document: where it cannot be split, and in the tests
/// the reference that reading in parts is held to.
fn parse_whole(file: &SourceFile) -> Parsed {
    let read = match parse_xml(&file.text) {
        // The AST borrows from the text, not from the document: the document's node
        // table is freed here, before lowering builds the graph.
        Ok(doc) => read_config(At::whole(file.id), &doc),
        Err(e) => return refuse(file, &e),
    };
    lowered(file, read)
}

/// The graph of what was read, or the one finding that says why there is none.
fn lowered(file: &SourceFile, read: Read<'_>) -> Parsed {
    match read {
        Ok(cfg) => {
            let (graph, findings) = lower::lower(cfg, file.id);
            Parsed {
                graph: Some(graph),
                findings,
            }
        }
        Err(finding) => Parsed {
            graph: None,
            findings: vec![*finding],
        },
    }
}

/// One XML document, as every part of the parser reads one.
fn parse_xml(text: &str) -> Result<Document<'_>, roxmltree::Error> {
    let options = ParsingOptions {
        // A DTD is never part of a real config.xml; refusing it rules out entity bombs.
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, options)
}

/// Where a parsed document sits in the file: roxmltree's ranges count from the start
/// of the text it was given, which for a part of the file is `base`.
#[derive(Clone, Copy)]
struct At {
    file: FileId,
    base: usize,
}

impl At {
    fn whole(file: FileId) -> At {
        At { file, base: 0 }
    }
}

/// One part of a split document (see [`split`]), read on its own.
#[derive(Clone, Debug)]
enum Part<'i> {
    /// A section other than `<filter>`, read as [`read_config`] reads it.
    Section(Config<'i>),
    /// A `<filter>`'s start tag.
    Filter(Span),
    /// One of its `<rule>` children.
    Rule(Box<FilterRule<'i>>),
    /// Anything else: checked to be well-formed, not read.
    Checked,
}

impl MoveSpans for Part<'_> {
    fn move_spans(&mut self, delta: i64) {
        match self {
            Part::Section(read) => read.move_spans(delta),
            Part::Filter(span) => span.move_spans(delta),
            Part::Rule(rule) => rule.move_spans(delta),
            Part::Checked => {}
        }
    }
}

/// What to do with one element of a split document.
#[derive(Clone, Copy)]
enum Job<'l> {
    Section(&'l split::Element),
    Filter(&'l split::Element),
    Rule(&'l split::Element),
    Check(&'l split::Element),
}

/// How a [`Memo`] tells apart parts of the same text read different ways (a `<rule>`
/// child of the root is a section that adds nothing, one of `<filter>` a rule).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum JobKind {
    Section,
    Rule,
    Check,
}

impl<'l> Job<'l> {
    /// The element a [`Memo`] keeps this job's part under, and how it was read. A
    /// `<filter>`'s start tag is not kept: reading it is checking a few bytes.
    fn remembered(self) -> Option<(JobKind, &'l split::Element)> {
        match self {
            Job::Section(e) => Some((JobKind::Section, e)),
            Job::Rule(e) => Some((JobKind::Rule, e)),
            Job::Check(e) => Some((JobKind::Check, e)),
            Job::Filter(_) => None,
        }
    }
}

/// The parts of a split document in file order, each with how to read it.
fn jobs<'l>(text: &str, layout: &'l split::Layout) -> Vec<Job<'l>> {
    let jobs = layout.sections.iter().flat_map(|(section, children)| {
        let filter = &text[section.name.clone()] == "filter";
        let head = match filter {
            true => Job::Filter(section),
            false => Job::Section(section),
        };
        std::iter::once(head).chain(children.iter().map(move |c| match &text[c.name.clone()] {
            "rule" => Job::Rule(c),
            _ => Job::Check(c),
        }))
    });
    jobs.collect()
}

/// Reads the AST from the parts of the document side by side, on every core, taking
/// what it can from `memo`. `None` if the root is not one this reader knows or a part
/// is not well-formed on its own: the whole-document parse then reports it as it always
/// has.
fn read_in_parts<'i>(
    file: &'i SourceFile,
    layout: &split::Layout,
    memo: Option<&Memo<'i>>,
    keep_up_to: Option<usize>,
) -> Option<(Read<'i>, Option<Parts<'i>>)> {
    let text = file.text.as_str();
    let root = &layout.root;
    let root_name = &text[root.name.clone()];
    let flavor = match root_name {
        "pfsense" => Flavor::PfSense,
        "opnsense" => Flavor::OpnSense,
        _ => return None,
    };
    // The prolog and the root's start tag belong to no part: checked on their own.
    parse_xml(&start_tag_alone(text, 0, root)).ok()?;
    let jobs = jobs(text, layout);
    let parts: Vec<Part<'i>> = jobs
        .par_iter()
        .map(|&job| match memo.and_then(|m| m.recall(text, job)) {
            Some(part) => Some(part),
            None => read_part(file.id, text, job),
        })
        .collect::<Option<_>>()?;
    let rules = || jobs.iter().filter(|j| matches!(j, Job::Rule(_))).count();
    let kept = keep_up_to
        .filter(|&most| rules() <= most)
        .map(|_| remembered(text, &jobs, &parts));
    let mut cfg = Config::empty(flavor, element_start(file.id, text, root));
    for part in parts {
        match part {
            Part::Section(read) => cfg.absorb(read),
            Part::Filter(span) => cfg.filter_span = Some(span),
            Part::Rule(rule) => cfg.rules.push(rule),
            Part::Checked => {}
        }
    }
    Some((Ok(cfg), kept))
}

/// The memo's parts: a copy of each part read, under its text and how it was read.
fn remembered<'i>(text: &'i str, jobs: &[Job], parts: &[Part<'i>]) -> Parts<'i> {
    let mut kept = Parts::default();
    kept.reserve(parts.len());
    for (job, part) in jobs.iter().zip(parts) {
        if let Some((kind, e)) = job.remembered() {
            // The same text twice reads the same but for where it stands: one will do.
            kept.entry((kind, &text[e.range.clone()]))
                .or_insert_with(|| (e.range.start, part.clone()));
        }
    }
    kept
}

/// Parses and reads one part; `None` if it is not well-formed on its own.
fn read_part<'i>(file: FileId, text: &'i str, job: Job) -> Option<Part<'i>> {
    let alone = |e: &split::Element| parse_xml(&text[e.range.clone()]).ok();
    let at = |e: &split::Element| At {
        file,
        base: e.range.start,
    };
    Some(match job {
        Job::Filter(e) => {
            // Its children are parts of their own: only the start tag is checked here.
            parse_xml(&start_tag_alone(text, e.range.start, e)).ok()?;
            Part::Filter(element_start(file, text, e))
        }
        Job::Section(e) => {
            // Only what the section adds is kept (see `Config::absorb`).
            let mut read = Config::empty(Flavor::PfSense, Span::new(file, 0, 0));
            read_section(at(e), alone(e)?.root_element(), &mut read);
            Part::Section(read)
        }
        Job::Rule(e) => Part::Rule(Box::new(read_rule(at(e), alone(e)?.root_element()))),
        Job::Check(e) => {
            alone(e)?;
            Part::Checked
        }
    })
}

/// The text from `from` to the end of `e`'s start tag, closed as an empty element
/// (`e` itself if it has no content): what roxmltree checks of an element whose
/// content is read as parts of its own.
fn start_tag_alone(text: &str, from: usize, e: &split::Element) -> String {
    match e.has_content(text) {
        true => format!("{}</{}>", &text[from..e.tag_end], &text[e.name.clone()]),
        false => text[from..e.range.end].to_string(),
    }
}

/// What [`start_tag`] gives for an element of a split document.
fn element_start(file: FileId, text: &str, e: &split::Element) -> Span {
    let end = match e.has_content(text) {
        true => e.tag_end,
        false => e.range.end,
    };
    Span::new(file, e.range.start, end)
}

/// One PARSE_ERROR at the position roxmltree reports.
fn refuse(file: &SourceFile, e: &roxmltree::Error) -> Parsed {
    let pos = e.pos();
    let offset = offset_of(&file.text, pos.row as usize, pos.col as usize);
    let end = file
        .text
        .get(offset..)
        .and_then(|rest| rest.chars().next())
        .map_or(offset, |c| offset + c.len_utf8());
    let message = match e {
        roxmltree::Error::DtdDetected => {
            "a DTD is not allowed in config.xml (refused to rule out entity expansion)".to_string()
        }
        other => format!("not well-formed XML: {other}"),
    };
    Parsed {
        graph: None,
        findings: vec![
            Finding::new(
                PARSE_ERROR,
                Severity::Error,
                Span::new(file.id, offset, end),
                message,
            )
            .with_label("here"),
        ],
    }
}

/// The byte offset of 1-based `row`/`col` (col counts characters, as roxmltree does).
fn offset_of(text: &str, row: usize, col: usize) -> usize {
    let index = LineIndex::new(text);
    let Some((start, end)) = index.line_range(text, row.max(1)) else {
        return text.len();
    };
    let line = text.get(start..end).unwrap_or("");
    let skip = col.saturating_sub(1);
    let within = line.char_indices().nth(skip).map_or(line.len(), |(i, _)| i);
    start + within
}

/// The span of a node's whole range.
fn span_of(at: At, node: Node) -> Span {
    let r = node.range();
    Span::new(at.file, at.base + r.start, at.base + r.end)
}

/// The span of an element's start tag: up to its first child, or the whole element if
/// it has none (`<rule/>`).
fn start_tag(at: At, node: Node) -> Span {
    let r = node.range();
    let end = node.first_child().map_or(r.end, |c| c.range().start);
    Span::new(at.file, at.base + r.start, at.base + end)
}

/// The element children of `node` named `name`.
fn children_named<'a, 'i>(node: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// The first element child named `name`.
fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The trimmed text of an element (all its text and CDATA, without comments): a slice
/// of the file when roxmltree holds it as one verbatim text node, as it does for nearly
/// every value of a config.xml.
fn text_of<'i>(node: Node<'_, 'i>) -> Str<'i> {
    let mut texts = node
        .children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text_storage());
    let Some(first) = texts.next() else {
        return Cow::Borrowed("");
    };
    let Some(second) = texts.next() else {
        return match first {
            StringStorage::Borrowed(s) => Cow::Borrowed(s.trim()),
            StringStorage::Owned(s) => Cow::Owned(s.trim().to_string()),
        };
    };
    let mut out = String::from(first.as_str());
    out.push_str(second);
    for t in texts {
        out.push_str(t);
    }
    Cow::Owned(out.trim().to_string())
}

/// The child `name` as a [`Text`].
fn child_text<'i>(at: At, node: Node<'_, 'i>, name: &str) -> Option<Text<'i>> {
    child(node, name).map(|c| Text {
        value: text_of(c),
        span: span_of(at, c),
    })
}

/// The child `name`'s text, if present and non-empty.
fn child_string<'i>(node: Node<'_, 'i>, name: &str) -> Option<Str<'i>> {
    child(node, name).map(text_of).filter(|s| !s.is_empty())
}

/// The whitespace-separated words of a value, borrowing where the value does.
fn words(value: Str<'_>) -> Vec<Str<'_>> {
    match value {
        Cow::Borrowed(s) => s.split_whitespace().map(Cow::Borrowed).collect(),
        Cow::Owned(s) => s
            .split_whitespace()
            .map(|w| Cow::Owned(w.to_string()))
            .collect(),
    }
}

/// Reads the AST, or says why the file is not a pfSense/OPNsense config.
fn read_config<'i>(at: At, doc: &Document<'i>) -> Result<Config<'i>, Box<Finding>> {
    let root = doc.root_element();
    let flavor = match root.tag_name().name() {
        "pfsense" => Flavor::PfSense,
        "opnsense" => Flavor::OpnSense,
        other => {
            return Err(Box::new(Finding::new(
                PARSE_ERROR,
                Severity::Error,
                start_tag(at, root),
                format!("root element is `<{other}>`, not `<pfsense>` or `<opnsense>`"),
            )));
        }
    };
    let mut cfg = Config::empty(flavor, start_tag(at, root));
    for section in root.children().filter(Node::is_element) {
        read_section(at, section, &mut cfg);
    }
    Ok(cfg)
}

/// One child of the root: the sections the linter needs are read, the rest skipped.
fn read_section<'i>(at: At, section: Node<'_, 'i>, cfg: &mut Config<'i>) {
    match section.tag_name().name() {
        "interfaces" => read_interfaces(at, section, cfg),
        "ifgroups" => read_ifgroups(section, cfg),
        "aliases" => read_aliases(at, section, cfg),
        "filter" => read_filter(at, section, cfg),
        "nat" => read_nat(at, section, cfg),
        "OPNsense" => read_opnsense(at, section, cfg),
        _ => {}
    }
}

/// `<interfaces>`: every element child is one interface, named by its tag.
fn read_interfaces<'i>(at: At, section: Node<'_, 'i>, cfg: &mut Config<'i>) {
    for node in section.children().filter(Node::is_element) {
        cfg.interfaces.push(IfaceDecl {
            name: node.tag_name().name(),
            span: start_tag(at, node),
            descr: child_string(node, "descr"),
            ipaddr: child_text(at, node, "ipaddr"),
            subnet: child_text(at, node, "subnet"),
            ipaddrv6: child_text(at, node, "ipaddrv6"),
            subnetv6: child_text(at, node, "subnetv6"),
            blockpriv: read_flag(at, node, "blockpriv"),
            blockbogons: read_flag(at, node, "blockbogons"),
        });
    }
}

/// A presence flag as pfSense writes it (`<x/>`, `<x></x>`, `<x>1</x>`); OPNsense
/// writes `<x>0</x>` for "off", so "0" counts as absent.
fn read_flag(at: At, node: Node, name: &str) -> Option<Span> {
    child(node, name)
        .filter(|c| text_of(*c) != "0")
        .map(|c| span_of(at, c))
}

/// `<ifgroups><ifgroupentry>`.
fn read_ifgroups<'i>(section: Node<'_, 'i>, cfg: &mut Config<'i>) {
    for entry in children_named(section, "ifgroupentry") {
        let Some(name) = child_string(entry, "ifname") else {
            continue;
        };
        let members = child_string(entry, "members")
            .map(words)
            .unwrap_or_default();
        cfg.ifgroups.push(IfGroup { name, members });
    }
}

/// `<aliases><alias>` (pfSense) or `<aliases><alias>` inside OPNsense's `<Alias>`.
fn read_aliases<'i>(at: At, section: Node<'_, 'i>, cfg: &mut Config<'i>) {
    for node in children_named(section, "alias") {
        let Some(name) = child_string(node, "name") else {
            continue;
        };
        // pfSense: `<address>` space-separated; OPNsense MVC: `<content>` one per line.
        let members = child_string(node, "address")
            .or_else(|| child_string(node, "content"))
            .map(words)
            .unwrap_or_default();
        cfg.aliases.push(Alias {
            name,
            kind: child_string(node, "type").unwrap_or_default(),
            members,
            span: start_tag(at, node),
            enabled: child_string(node, "enabled").is_none_or(|v| v != "0"),
        });
    }
}

/// `<filter>`: its `<rule>` children (separators and other children are ignored).
fn read_filter<'i>(at: At, section: Node<'_, 'i>, cfg: &mut Config<'i>) {
    cfg.filter_span = Some(start_tag(at, section));
    for node in children_named(section, "rule") {
        cfg.rules.push(Box::new(read_rule(at, node)));
    }
}

/// Rule children that change what a rule matches but that mislint does not model.
const UNMODELLED_MATCHES: [&str; 8] = [
    "sched",
    "tagged",
    "os",
    "dscp",
    "tcpflags1",
    "tcpflags2",
    "vlanprio",
    "l7container",
];

/// One `<filter><rule>`, in one pass over its children (a 100k-rule file has millions
/// of them, so no per-field search).
fn read_rule<'i>(at: At, node: Node<'_, 'i>) -> FilterRule<'i> {
    let mut r = FilterRule::empty(Origin::Legacy, start_tag(at, node));
    for c in node.children().filter(Node::is_element) {
        let name = c.tag_name().name();
        let text = || Text {
            value: text_of(c),
            span: span_of(at, c),
        };
        match name {
            "type" => r.action = Some(text()),
            "interface" => r.interface = Some(text()),
            "ipprotocol" => r.ipprotocol = Some(text()),
            "protocol" => r.protocol = Some(text()),
            "icmptype" => r.icmptype = Some(text()),
            "source" => r.source = Some(read_endpoint(at, c)),
            "destination" => r.destination = Some(read_endpoint(at, c)),
            "disabled" => r.disabled = true,
            "floating" => r.floating = matches!(&*text_of(c), "yes" | "1"),
            "quick" => r.quick = Some(text()),
            "direction" => r.direction = Some(text()),
            "descr" => r.descr = Some(text_of(c)).filter(|s| !s.is_empty()),
            "tracker" => r.tracker = Some(text_of(c)).filter(|s| !s.is_empty()),
            _ => {
                if let Some(&element) = UNMODELLED_MATCHES.iter().find(|&&m| m == name) {
                    let value = text();
                    if !value.value.is_empty() {
                        r.unmodelled.push(Unmodelled { element, value });
                    }
                }
            }
        }
    }
    r
}

/// `<source>` / `<destination>`.
fn read_endpoint<'i>(at: At, node: Node<'_, 'i>) -> Endpoint<'i> {
    Endpoint {
        span: span_of(at, node),
        network: child_text(at, node, "network"),
        address: child_text(at, node, "address"),
        port: child_text(at, node, "port").filter(|t| !t.value.is_empty()),
        not: child(node, "not").is_some(),
    }
}

/// `<nat>`: port forwards are read; `<outbound>` (source NAT) does not change what the
/// filter passes; `<onetoone>` entries are counted for the note.
fn read_nat<'i>(at: At, section: Node<'_, 'i>, cfg: &mut Config<'i>) {
    for node in children_named(section, "rule") {
        cfg.port_forwards.push(PortForward {
            span: start_tag(at, node),
            interface: child_string(node, "interface"),
            protocol: child_string(node, "protocol"),
            source: child(node, "source").map(|n| read_endpoint(at, n)),
            destination: child(node, "destination").map(|n| read_endpoint(at, n)),
            target: child_string(node, "target"),
            local_port: child_string(node, "local-port"),
            associated_rule_id: child_string(node, "associated-rule-id"),
            disabled: child(node, "disabled").is_some(),
        });
    }
    cfg.one_to_one
        .extend(children_named(section, "onetoone").map(|n| start_tag(at, n)));
}

/// OPNsense's MVC section: `<Firewall><Alias><aliases>` and
/// `<Firewall><Filter><rules><rule>` (Firewall ▸ Automation ▸ Filter).
fn read_opnsense<'i>(at: At, section: Node<'_, 'i>, cfg: &mut Config<'i>) {
    let Some(firewall) = child(section, "Firewall") else {
        return;
    };
    if let Some(aliases) = child(firewall, "Alias").and_then(|a| child(a, "aliases")) {
        read_aliases(at, aliases, cfg);
    }
    if let Some(rules) = child(firewall, "Filter").and_then(|f| child(f, "rules")) {
        for node in children_named(rules, "rule") {
            cfg.rules.push(Box::new(read_automation_rule(at, node)));
        }
    }
}

/// One automation rule, mapped onto the legacy shape: `source_net` becomes the
/// endpoint's network (the lowering accepts the same words and aliases in both).
fn read_automation_rule<'i>(at: At, node: Node<'_, 'i>) -> FilterRule<'i> {
    let endpoint = |prefix: &str| {
        let net = child_text(at, node, &format!("{prefix}_net"));
        let port = child_text(at, node, &format!("{prefix}_port")).filter(|t| !t.value.is_empty());
        let not = child_string(node, &format!("{prefix}_not")).is_some_and(|v| v == "1");
        let span = net.as_ref().map_or_else(|| start_tag(at, node), |t| t.span);
        Endpoint {
            span,
            network: net,
            address: None,
            port,
            not,
        }
    };
    let protocol = child_text(at, node, "protocol");
    FilterRule {
        origin: Origin::Automation,
        span: start_tag(at, node),
        action: child_text(at, node, "action"),
        interface: child_text(at, node, "interface"),
        interface_not: child_string(node, "interfacenot").is_some_and(|v| v == "1"),
        ipprotocol: child_text(at, node, "ipprotocol"),
        protocol,
        icmptype: child_text(at, node, "icmptype"),
        source: Some(endpoint("source")),
        destination: Some(endpoint("destination")),
        disabled: child_string(node, "enabled").is_some_and(|v| v == "0"),
        // Automation rules name interfaces and a direction like floating rules do.
        floating: true,
        quick: child_text(at, node, "quick"),
        direction: child_text(at, node, "direction"),
        descr: child_string(node, "description"),
        tracker: None,
        unmodelled: ["sched", "tagged", "dscp"]
            .into_iter()
            .filter_map(|element| {
                let value = child_text(at, node, element)?;
                (!value.value.is_empty()).then_some(Unmodelled { element, value })
            })
            .collect(),
        sequence: child_string(node, "sequence").and_then(|s| s.parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::sets::{PORT_MAX, addr};
    use crate::graph::{Action, CondKind, IntervalSet, Rule, RuleGraph, Zone};
    use crate::parse::{REFERENCE_CYCLE, UNDEFINED_REFERENCE, UNKNOWN_SYNTAX};
    use std::net::IpAddr;

    const IFACES: &str = "<interfaces>
  <wan><if>igb0</if><descr>WAN</descr><ipaddr>203.0.113.1</ipaddr><subnet>24</subnet></wan>
  <lan><if>igb1</if><descr>LAN</descr><ipaddr>10.0.0.1</ipaddr><subnet>24</subnet></lan>
  <opt1><if>igb2</if><descr>DMZ</descr><ipaddr>192.168.10.1</ipaddr><subnet>24</subnet></opt1>
</interfaces>";

    fn source(text: String) -> SourceFile {
        SourceFile::new(FileId(7), "config.xml", text)
    }

    /// A pfSense config with the topology's interfaces, the given aliases and filter rules.
    fn config(aliases: &str, rules: &str) -> SourceFile {
        source(format!(
            "<?xml version=\"1.0\"?>\n<pfsense>\n{IFACES}\n<aliases>{aliases}</aliases>\n<filter>\n{rules}\n</filter>\n</pfsense>\n"
        ))
    }

    fn parse_ok(file: &SourceFile) -> (RuleGraph, Vec<Finding>) {
        let parsed = parse(file);
        let errors: Vec<_> = parsed
            .findings
            .iter()
            .filter(|f| f.rule == PARSE_ERROR)
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        (parsed.graph.expect("a graph"), parsed.findings)
    }

    fn ip(s: &str) -> u128 {
        addr::ip(s.parse::<IpAddr>().expect("literal"))
    }

    fn cidr(s: &str) -> IntervalSet {
        let (a, len) = s.split_once('/').expect("cidr literal");
        addr::cidr(a.parse().expect("literal"), len.parse().expect("literal")).expect("valid")
    }

    fn hosts(list: &[&str]) -> IntervalSet {
        IntervalSet::from_ranges(list.iter().map(|h| (ip(h), ip(h))))
    }

    fn ports(r: &[(u128, u128)]) -> IntervalSet {
        IntervalSet::from_ranges(r.iter().copied())
    }

    /// The condition kinds of a rule, for compact assertions.
    fn kinds(rule: &Rule) -> Vec<CondKind> {
        rule.conds.iter().map(|c| c.kind.clone()).collect()
    }

    fn find(rule: &Rule, pred: impl Fn(&CondKind) -> bool) -> Option<&CondKind> {
        rule.conds.iter().map(|c| &c.kind).find(|k| pred(k))
    }

    fn dst_port(rule: &Rule) -> Option<&IntervalSet> {
        match find(rule, |k| matches!(k, CondKind::DstPort(_))) {
            Some(CondKind::DstPort(s)) => Some(s),
            _ => None,
        }
    }

    fn dst_addr(rule: &Rule) -> Option<&IntervalSet> {
        match find(rule, |k| matches!(k, CondKind::DstAddr(_))) {
            Some(CondKind::DstAddr(s)) => Some(s),
            _ => None,
        }
    }

    fn src_addr(rule: &Rule) -> Option<&IntervalSet> {
        match find(rule, |k| matches!(k, CondKind::SrcAddr(_))) {
            Some(CondKind::SrcAddr(s)) => Some(s),
            _ => None,
        }
    }

    fn in_iface(rule: &Rule) -> Vec<String> {
        match find(rule, |k| matches!(k, CondKind::InIface(_))) {
            Some(CondKind::InIface(m)) => m.patterns.iter().map(|p| p.name.clone()).collect(),
            _ => Vec::new(),
        }
    }

    fn rule(body: &str) -> String {
        format!("<rule>{body}</rule>")
    }

    fn fixture(name: &str) -> SourceFile {
        let path = format!("{}/fixtures/pfsense/{name}.xml", env!("CARGO_MANIFEST_DIR"));
        source(std::fs::read_to_string(path).expect("fixture exists"))
    }

    fn comments(graph: &RuleGraph) -> Vec<String> {
        graph.chains[0]
            .rules
            .iter()
            .map(|r| r.comment.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn compliant_fixture_lowers_to_the_topology() {
        let file = fixture("compliant");
        let (g, findings) = parse_ok(&file);
        assert!(findings.is_empty(), "{findings:?}");
        let zones: Vec<_> = g
            .interfaces
            .iter()
            .map(|i| (i.name.as_str(), i.zone_hint))
            .collect();
        assert_eq!(
            zones,
            [
                ("wan", Some(Zone::Public)),
                ("lan", Some(Zone::Internal)),
                ("opt1", Some(Zone::Perimeter))
            ]
        );
        assert_eq!(g.interfaces[2].networks, cidr("192.168.10.0/24"));
        assert_eq!(g.interfaces[2].own_addresses, hosts(&["192.168.10.1"]));
        let inbound = &g.chains[g.stages[0].chain.0];
        assert_eq!(inbound.name, "inbound");
        assert_eq!(inbound.rules.len(), 5);
        let default = inbound.default.as_ref().expect("stage chain default");
        assert_eq!(default.action, Action::Drop);
        assert_eq!(file.slice(default.span), "<filter>");
        let outbound = &g.chains[g.stages[1].chain.0];
        assert!(outbound.rules.is_empty());
        assert_eq!(
            outbound.default.as_ref().map(|d| d.action.clone()),
            Some(Action::Accept)
        );

        let tcp = &inbound.rules[0];
        assert_eq!(tcp.action, Action::Accept);
        assert_eq!(file.slice(tcp.span), "<rule>");
        assert_eq!(file.slice(tcp.action_span), "<type>pass</type>");
        assert_eq!(in_iface(tcp), ["opt1"]);
        assert_eq!(src_addr(tcp), Some(&hosts(&["192.168.10.5"])));
        // INTERNAL_SERVERS nests EXCHANGE and DC_GC_DNS.
        assert_eq!(dst_addr(tcp), Some(&hosts(&["10.0.0.10", "10.0.0.20"])));
        assert_eq!(
            dst_port(tcp),
            Some(&ports(&[
                (80, 80),
                (88, 88),
                (135, 135),
                (139, 139),
                (389, 389),
                (1026, 1026),
                (3268, 3268)
            ]))
        );
        let udp = &inbound.rules[1];
        assert_eq!(
            find(udp, |k| matches!(k, CondKind::Protocol(_))),
            Some(&CondKind::Protocol(IntervalSet::single(17)))
        );
        // The port alias range `137:138`.
        assert_eq!(
            dst_port(udp),
            Some(&ports(&[(53, 53), (88, 88), (137, 138), (389, 389)]))
        );
        let block = &inbound.rules[3];
        assert_eq!(block.action, Action::Drop);
        assert_eq!(in_iface(block), ["lan"]);
        assert_eq!(src_addr(block), Some(&cidr("10.0.0.0/24")));
        assert_eq!(dst_addr(block), Some(&cidr("192.168.10.0/24")));
        // pass lan net -> any: no destination condition at all.
        assert_eq!(dst_addr(&inbound.rules[4]), None);
    }

    #[test]
    fn shadowed_ldap_fixture_rejects_first() {
        let file = fixture("shadowed-ldap");
        let (g, findings) = parse_ok(&file);
        assert!(findings.is_empty(), "{findings:?}");
        let first = &g.chains[0].rules[0];
        assert_eq!(first.action, Action::Reject);
        assert_eq!(file.slice(first.action_span), "<type>reject</type>");
        assert_eq!(dst_port(first), Some(&IntervalSet::single(389)));
        assert_eq!(
            dst_port(&g.chains[0].rules[1]).map(|s| s.contains(389)),
            Some(true)
        );
    }

    #[test]
    fn dynamic_rpc_fixture_has_the_range() {
        let (g, findings) = parse_ok(&fixture("dynamic-rpc-open"));
        assert!(findings.is_empty(), "{findings:?}");
        let rpc = &g.chains[0].rules[2];
        assert_eq!(dst_port(rpc), Some(&IntervalSet::range(1024, PORT_MAX)));
        assert_eq!(dst_addr(rpc), Some(&cidr("10.0.0.0/24")));
    }

    #[test]
    fn ipsec_fixture_passes_esp_ah_isakmp_both_ways() {
        let (g, findings) = parse_ok(&fixture("ipsec-plain-port"));
        assert!(findings.is_empty(), "{findings:?}");
        let protos: Vec<_> = g.chains[0]
            .rules
            .iter()
            .map(|r| {
                (
                    in_iface(r),
                    find(r, |k| matches!(k, CondKind::Protocol(_))).cloned(),
                )
            })
            .collect();
        let p = |n: u128| Some(CondKind::Protocol(IntervalSet::single(n)));
        let opt1 = || vec!["opt1".to_string()];
        let lan = || vec!["lan".to_string()];
        assert_eq!(
            protos,
            [
                (opt1(), p(50)),
                (opt1(), p(51)),
                (opt1(), p(17)),
                (opt1(), p(6)),
                (opt1(), p(6)),
                (lan(), p(50)),
                (lan(), p(51)),
                (lan(), p(17)),
                (lan(), None),
                (lan(), None),
            ]
        );
        assert_eq!(
            dst_port(&g.chains[0].rules[3]),
            Some(&IntervalSet::single(80))
        );
    }

    #[test]
    fn unknown_module_fixture_marks_the_schedule() {
        let file = fixture("unknown-module");
        let (g, findings) = parse_ok(&file);
        let smb = &g.chains[0].rules[2];
        assert_eq!(dst_port(smb), Some(&IntervalSet::single(445)));
        let unknown = smb
            .conds
            .iter()
            .find(|c| matches!(c.kind, CondKind::Unknown(_)))
            .expect("schedule condition");
        assert_eq!(
            unknown.kind,
            CondKind::Unknown("schedule `BusinessHours`".into())
        );
        assert_eq!(file.slice(unknown.span), "<sched>BusinessHours</sched>");
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].rule, UNKNOWN_SYNTAX);
        assert_eq!(findings[0].primary.span, unknown.span);
    }

    #[test]
    fn floating_quick_first_then_interface_then_non_quick_reversed() {
        let rules = [
            rule("<type>block</type><floating>yes</floating><descr>f-nonquick-1</descr><source><any/></source><destination><any/></destination>"),
            rule("<type>pass</type><interface>lan</interface><descr>lan-1</descr><source><any/></source><destination><any/></destination>"),
            rule("<type>pass</type><floating>yes</floating><quick>yes</quick><interface>lan,opt1</interface><direction>in</direction><descr>f-quick</descr>"),
            rule("<type>pass</type><floating>yes</floating><direction>any</direction><descr>f-nonquick-2</descr>"),
            rule("<type>match</type><floating>yes</floating><direction>out</direction><interface>wan</interface><descr>f-match-out</descr>"),
        ]
        .concat();
        let (g, _) = parse_ok(&config("", &rules));
        assert_eq!(
            comments(&g),
            ["f-quick", "lan-1", "f-nonquick-2", "f-nonquick-1"]
        );
        assert_eq!(in_iface(&g.chains[0].rules[0]), ["lan", "opt1"]);
        // A floating rule without an interface applies on every interface.
        assert!(in_iface(&g.chains[0].rules[2]).is_empty());
        let out: Vec<_> = g.chains[1]
            .rules
            .iter()
            .map(|r| r.comment.clone().unwrap_or_default())
            .collect();
        // Non-quick rules without a direction apply both ways, so both reappear reversed.
        assert_eq!(out, ["f-match-out", "f-nonquick-2", "f-nonquick-1"]);
        let m = &g.chains[1].rules[0];
        assert_eq!(m.action, Action::Continue("match".into()));
        assert!(matches!(&m.conds[0].kind, CondKind::OutIface(i) if i.patterns[0].name == "wan"));
    }

    #[test]
    fn disabled_rules_are_skipped() {
        let rules = [
            rule("<type>pass</type><interface>lan</interface><disabled></disabled><descr>off</descr>"),
            rule("<type>pass</type><interface>lan</interface><disabled/><descr>off too</descr>"),
            rule("<type>pass</type><interface>lan</interface><descr>on</descr>"),
        ]
        .concat();
        let (g, _) = parse_ok(&config("", &rules));
        assert_eq!(comments(&g), ["on"]);
    }

    #[test]
    fn missing_type_is_pass_and_spans_point_at_the_rule() {
        let file = config("", &rule("<interface>lan</interface>"));
        let (g, _) = parse_ok(&file);
        let r = &g.chains[0].rules[0];
        assert_eq!(r.action, Action::Accept);
        assert_eq!(file.slice(r.action_span), "<rule>");
        assert_eq!(file.slice(r.conds[0].span), "<interface>lan</interface>");
    }

    #[test]
    fn tcp_udp_with_a_port_range_and_not() {
        let file = config(
            "",
            &rule(
                "<type>pass</type><interface>opt1</interface><protocol>tcp/udp</protocol>\
                   <source><address>192.168.10.5</address></source>\
                   <destination><not/><network>opt1</network><port>1024-2048</port></destination>",
            ),
        );
        let (g, _) = parse_ok(&file);
        let r = &g.chains[0].rules[0];
        assert_eq!(
            find(r, |k| matches!(k, CondKind::Protocol(_))),
            Some(&CondKind::Protocol(IntervalSet::from_ranges([
                (6, 6),
                (17, 17)
            ])))
        );
        assert_eq!(dst_port(r), Some(&IntervalSet::range(1024, 2048)));
        // `<not/>` complements within the rule's family (inet), not the whole u128 line.
        assert_eq!(
            dst_addr(r),
            Some(&addr::v4_space().subtract(&cidr("192.168.10.0/24")))
        );
        let dst = r
            .conds
            .iter()
            .find(|c| matches!(c.kind, CondKind::DstAddr(_)))
            .expect("dst");
        assert!(file.slice(dst.span).starts_with("<destination>"));
    }

    #[test]
    fn self_and_interface_addresses() {
        let rules = [
            rule("<interface>lan</interface><destination><network>(self)</network></destination>"),
            rule("<interface>lan</interface><destination><network>lanip</network></destination>"),
            rule("<interface>lan</interface><destination><network>opt1ip</network></destination>"),
            rule("<interface>lan</interface><destination><network>wan</network></destination>"),
        ]
        .concat();
        let (g, _) = parse_ok(&config("", &rules));
        let dsts: Vec<_> = g.chains[0]
            .rules
            .iter()
            .map(|r| dst_addr(r).cloned())
            .collect();
        assert_eq!(
            dsts,
            [
                Some(hosts(&["203.0.113.1", "10.0.0.1", "192.168.10.1"])),
                Some(hosts(&["10.0.0.1"])),
                Some(hosts(&["192.168.10.1"])),
                Some(cidr("203.0.113.0/24")),
            ]
        );
        // inet is the default family: the source is the IPv4 space.
        assert_eq!(src_addr(&g.chains[0].rules[0]), Some(&addr::v4_space()));
    }

    #[test]
    fn dynamic_interface_network_is_unknown() {
        let file = source(
            "<pfsense><interfaces><wan><ipaddr>dhcp</ipaddr></wan></interfaces><filter>\
             <rule><interface>wan</interface><destination><network>wanip</network></destination></rule>\
             </filter></pfsense>"
                .into(),
        );
        let (g, findings) = parse_ok(&file);
        let r = &g.chains[0].rules[0];
        assert!(dst_addr(r).is_none());
        assert!(
            r.conds
                .iter()
                .any(|c| matches!(&c.kind, CondKind::Unknown(t) if t.contains("dhcp")))
        );
        assert_eq!(findings.len(), 1);
        assert_eq!(g.interfaces[0].networks, IntervalSet::empty());
    }

    #[test]
    fn port_alias_nested_and_fqdn_host_alias() {
        let aliases = "<alias><name>WEB</name><type>port</type><address>80 443</address></alias>\
                       <alias><name>ALL_PORTS</name><type>port</type><address>WEB 8000:8080 https</address></alias>\
                       <alias><name>NAMED</name><type>host</type><address>10.0.0.10 mail.example.org</address></alias>";
        let rules = [
            rule("<interface>lan</interface><protocol>tcp</protocol><destination><any/><port>ALL_PORTS</port></destination>"),
            rule("<interface>lan</interface><destination><address>NAMED</address></destination>"),
        ]
        .concat();
        let (g, findings) = parse_ok(&config(aliases, &rules));
        assert_eq!(
            dst_port(&g.chains[0].rules[0]),
            Some(&ports(&[(80, 80), (443, 443), (8000, 8080)]))
        );
        let fqdn = &g.chains[0].rules[1];
        assert!(dst_addr(fqdn).is_none());
        assert!(
            kinds(fqdn)
                .iter()
                .any(|k| matches!(k, CondKind::Unknown(t) if t.contains("mail.example.org")))
        );
        assert_eq!(
            findings.iter().filter(|f| f.rule == UNKNOWN_SYNTAX).count(),
            1
        );
    }

    #[test]
    fn alias_cycle_is_reported_not_followed() {
        let aliases = "<alias><name>A</name><type>host</type><address>10.0.0.1 B</address></alias>\
                       <alias><name>B</name><type>host</type><address>A 10.0.0.2</address></alias>";
        let file = config(
            aliases,
            &rule("<interface>lan</interface><source><address>A</address></source>"),
        );
        let (g, findings) = parse_ok(&file);
        let cycles: Vec<_> = findings
            .iter()
            .filter(|f| f.rule == REFERENCE_CYCLE)
            .collect();
        assert_eq!(cycles.len(), 1, "{findings:?}");
        assert!(file.slice(cycles[0].primary.span).starts_with("<alias>"));
        let r = &g.chains[0].rules[0];
        assert!(
            kinds(r)
                .iter()
                .any(|k| matches!(k, CondKind::Unknown(t) if t.contains("itself")))
        );
    }

    #[test]
    fn ten_thousand_deep_alias_nesting() {
        let depth = 10_000;
        let mut aliases = String::new();
        for i in 0..depth {
            let member = if i + 1 == depth {
                "10.9.9.9".to_string()
            } else {
                format!("N{} 10.{}.{}.1", i + 1, i / 256 % 256, i % 256)
            };
            aliases.push_str(&format!(
                "<alias><name>N{i}</name><type>host</type><address>{member}</address></alias>"
            ));
        }
        let file = config(
            &aliases,
            &rule("<interface>lan</interface><destination><address>N0</address></destination>"),
        );
        let (g, findings) = parse_ok(&file);
        assert!(findings.is_empty());
        let set = dst_addr(&g.chains[0].rules[0]).expect("resolved");
        assert_eq!(set.count(), depth as u128);
        assert!(set.contains(ip("10.9.9.9")) && set.contains(ip("10.0.0.1")));

        // The same chain closed into a cycle terminates too.
        let cyclic = aliases.replace("<address>10.9.9.9</address>", "<address>N0</address>");
        let (_, findings) = parse_ok(&config(
            &cyclic,
            &rule("<interface>lan</interface><destination><address>N0</address></destination>"),
        ));
        assert_eq!(
            findings
                .iter()
                .filter(|f| f.rule == REFERENCE_CYCLE)
                .count(),
            1
        );
    }

    #[test]
    fn undefined_alias_skips_the_rule_and_undefined_interface_is_reported() {
        let rules = [
            rule("<interface>lan</interface><destination><address>NOPE</address></destination><descr>skipped</descr>"),
            rule("<interface>opt9</interface><descr>kept</descr>"),
            rule("<interface>enc0</interface><descr>ipsec</descr>"),
        ]
        .concat();
        let (g, findings) = parse_ok(&config("", &rules));
        assert_eq!(comments(&g), ["kept", "ipsec"]);
        let undefined: Vec<_> = findings
            .iter()
            .filter(|f| f.rule == UNDEFINED_REFERENCE)
            .map(|f| f.severity)
            .collect();
        assert_eq!(
            undefined,
            [Severity::Warning, Severity::Warning, Severity::Note]
        );
        assert!(g.interface("opt9").is_some() && g.interface("enc0").is_some());
    }

    #[test]
    fn icmp_type_schedule_and_unknown_protocol_are_unknown_conditions() {
        let rules = [
            rule("<interface>lan</interface><protocol>icmp</protocol><icmptype>echoreq</icmptype>"),
            rule("<interface>lan</interface><protocol>icmp</protocol><icmptype>any</icmptype>"),
            rule("<interface>lan</interface><protocol>frobnicate</protocol>"),
            rule(
                "<interface>lan</interface><ipprotocol>inet6</ipprotocol><protocol>icmp</protocol>",
            ),
        ]
        .concat();
        let (g, findings) = parse_ok(&config("", &rules));
        let r = &g.chains[0].rules;
        assert!(
            kinds(&r[0])
                .iter()
                .any(|k| matches!(k, CondKind::Unknown(t) if t.contains("echoreq")))
        );
        assert!(
            !kinds(&r[1])
                .iter()
                .any(|k| matches!(k, CondKind::Unknown(_)))
        );
        assert!(
            kinds(&r[2])
                .iter()
                .any(|k| matches!(k, CondKind::Unknown(t) if t.contains("frobnicate")))
        );
        assert_eq!(
            find(&r[3], |k| matches!(k, CondKind::Protocol(_))),
            Some(&CondKind::Protocol(IntervalSet::single(58)))
        );
        assert_eq!(findings.len(), 2);
    }

    #[test]
    fn unmodelled_constructs_give_one_counted_note_per_kind() {
        let file = source(
            "<pfsense><interfaces><wan><ipaddr>dhcp</ipaddr></wan>\
             <lan><ipaddr>10.0.0.1</ipaddr><subnet>24</subnet></lan></interfaces><filter>\
             <rule><interface>lan</interface><protocol>icmp</protocol><icmptype>echoreq</icmptype></rule>\
             <rule><interface>lan</interface><source><network>wanip</network></source><destination><network>wan</network></destination></rule>\
             <rule><interface>lan</interface><protocol>icmp</protocol><icmptype>unreach</icmptype></rule>\
             <rule><floating>yes</floating><interface>lan</interface><destination><network>wanip</network></destination></rule>\
             </filter></pfsense>"
                .into(),
        );
        let (g, findings) = parse_ok(&file);
        let notes: Vec<_> = findings
            .iter()
            .filter(|f| f.rule == UNKNOWN_SYNTAX)
            .collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        // The icmptype note sits at the first rule's `<icmptype>` and counts both rules.
        let icmp = notes
            .iter()
            .find(|n| n.message.starts_with("icmptype `echoreq`"))
            .expect("icmptype note");
        assert_eq!(
            file.slice(icmp.primary.span),
            "<icmptype>echoreq</icmptype>"
        );
        assert!(icmp.message.contains("2 rules"), "{}", icmp.message);
        // Run-time addresses: the floating rule is lowered first, but the note points at
        // the earliest in the file; the rule naming two counts once.
        let runtime = notes
            .iter()
            .find(|n| n.message.contains("assigned at run time"))
            .expect("run-time note");
        assert!(file.slice(runtime.primary.span).starts_with("<source>"));
        assert!(runtime.message.contains("2 rules"), "{}", runtime.message);
        // Every such rule keeps its own unknown condition (the floating rule is in both
        // stages, so it counts twice here).
        let unknowns: usize = g
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .map(|r| {
                r.conds
                    .iter()
                    .filter(|c| matches!(c.kind, CondKind::Unknown(_)))
                    .count()
            })
            .sum();
        assert_eq!(unknowns, 6);
    }

    #[test]
    fn port_forwards_become_rewrites_before_the_filter() {
        let file = source(format!(
            "<pfsense>{IFACES}<filter/><nat><outbound><mode>automatic</mode></outbound>\
             <rule><interface>wan</interface><protocol>tcp</protocol><destination><network>wanip</network><port>25</port></destination><target>192.168.10.5</target><local-port>25</local-port></rule>\
             <rule><interface>wan</interface><protocol>tcp</protocol><destination><any/><port>8080</port></destination><target>192.168.10.5</target><local-port>80</local-port><associated-rule-id>pass</associated-rule-id></rule>\
             <rule><disabled/><interface>wan</interface><protocol>tcp</protocol><target>192.168.10.6</target></rule>\
             </nat></pfsense>"
        ));
        let (g, findings) = parse_ok(&file);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(g.stages[0].name, "port forwards (rdr)");
        let rdr = &g.chains[g.stages[0].chain.0];
        assert_eq!(rdr.rules.len(), 2, "the disabled forward is skipped");
        assert_eq!(
            rdr.rules[1].action,
            Action::dnat(crate::graph::NatTarget {
                addrs: Some(IntervalSet::single(ip("192.168.10.5"))),
                ports: Some(IntervalSet::single(80)),
            })
        );
        assert!(
            rdr.rules[1]
                .conds
                .iter()
                .any(|c| c.kind == CondKind::DstPort(IntervalSet::single(8080)))
        );
        // The "pass" forward passes its translated traffic ahead of the filter rules.
        let inbound = &g.chains[g.stages[1].chain.0];
        assert_eq!(inbound.rules[0].action, Action::Accept);
        assert!(
            inbound.rules[0]
                .conds
                .iter()
                .any(|c| c.kind == CondKind::DstAddr(IntervalSet::single(ip("192.168.10.5"))))
        );
        assert_eq!(
            file.slice(inbound.default.as_ref().expect("default").span),
            "<filter/>"
        );
    }

    #[test]
    fn blockpriv_becomes_a_leading_drop() {
        let file = source(
            "<pfsense><interfaces><wan><ipaddr>203.0.113.1</ipaddr><subnet>24</subnet><blockpriv></blockpriv></wan></interfaces>\
             <filter><rule><interface>wan</interface></rule></filter></pfsense>"
                .into(),
        );
        let (g, _) = parse_ok(&file);
        let first = &g.chains[0].rules[0];
        assert_eq!(first.action, Action::Drop);
        assert_eq!(file.slice(first.span), "<blockpriv></blockpriv>");
        assert!(
            src_addr(first)
                .is_some_and(|s| s.contains(ip("10.1.2.3")) && !s.contains(ip("198.51.100.1")))
        );
    }

    #[test]
    fn opnsense_quick_defaults_and_mvc_aliases() {
        let file = source(
            "<opnsense><interfaces><lan><ipaddr>10.0.0.1</ipaddr><subnet>24</subnet></lan></interfaces>\
             <filter>\
             <rule><type>block</type><interface>lan</interface><quick>0</quick><descr>nonquick</descr></rule>\
             <rule><type>pass</type><interface>lan</interface><destination><address>WEB</address></destination><descr>quick</descr></rule>\
             </filter>\
             <OPNsense><Firewall><Alias><aliases><alias uuid=\"x\"><name>WEB</name><type>host</type>\
             <content>10.0.0.10\n10.0.0.11</content></alias></aliases></Alias></Firewall></OPNsense></opnsense>"
                .into(),
        );
        let (g, _) = parse_ok(&file);
        assert_eq!(comments(&g), ["quick", "nonquick"]);
        assert_eq!(
            dst_addr(&g.chains[0].rules[0]),
            Some(&hosts(&["10.0.0.10", "10.0.0.11"]))
        );
    }

    #[test]
    fn rules_load_in_pfsense_order_and_the_automation_note_names_the_first_in_the_file() {
        let file = source(
            "<opnsense><interfaces><lan><ipaddr>10.0.0.1</ipaddr><subnet>24</subnet></lan></interfaces>\
             <ifgroups><ifgroupentry><ifname>grp</ifname><members>lan</members></ifgroupentry></ifgroups>\
             <filter>\
             <rule><type>pass</type><interface>lan</interface><descr>interface 1</descr></rule>\
             <rule><type>pass</type><interface>grp</interface><descr>group</descr></rule>\
             <rule><type>pass</type><interface>lan</interface><floating>yes</floating><quick>yes</quick><descr>floating</descr></rule>\
             <rule><type>pass</type><interface>lan</interface><descr>interface 2</descr></rule>\
             </filter>\
             <OPNsense><Firewall><Filter><rules>\
             <rule uuid=\"b\"><sequence>20</sequence><action>pass</action><interface>lan</interface><description>seq 20</description></rule>\
             <rule uuid=\"a\"><sequence>10</sequence><action>pass</action><interface>lan</interface><description>seq 10</description></rule>\
             </rules></Filter></Firewall></OPNsense></opnsense>"
                .into(),
        );
        let (g, findings) = parse_ok(&file);
        assert_eq!(
            comments(&g),
            [
                "seq 10",
                "seq 20",
                "floating",
                "group",
                "interface 1",
                "interface 2"
            ]
        );
        let note = findings
            .iter()
            .find(|f| f.message.contains("automation rules"))
            .expect("a note on the automation rules' order");
        let first = file.text.find("<rule uuid=\"b\">").expect("in the text");
        assert_eq!(note.primary.span.start as usize, first);
    }

    #[test]
    fn malformed_xml_is_one_parse_error_at_the_reported_position() {
        let file =
            source("<pfsense>\n  <filter>\n    <rule></rul>\n  </filter>\n</pfsense>\n".into());
        let parsed = parse(&file);
        assert!(parsed.graph.is_none());
        assert_eq!(parsed.findings.len(), 1);
        let f = &parsed.findings[0];
        assert_eq!(f.rule, PARSE_ERROR);
        let (line, _col) = LineIndex::new(&file.text).line_col(&file.text, f.primary.span.start);
        assert_eq!(line, 3);
        assert!(f.primary.span.start as usize > file.text.find("<rule>").unwrap_or(0));
    }

    #[test]
    fn wrong_root_is_a_parse_error() {
        let file = source("<html><body/></html>".into());
        let parsed = parse(&file);
        assert!(parsed.graph.is_none());
        assert_eq!(parsed.findings[0].rule, PARSE_ERROR);
        assert_eq!(file.slice(parsed.findings[0].primary.span), "<html>");
    }

    #[test]
    fn entity_expansion_bomb_is_refused() {
        let mut bomb =
            String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n  <!ENTITY lol \"lol\">\n");
        for i in 1..10 {
            let prev = if i == 1 {
                "lol".to_string()
            } else {
                format!("lol{}", i - 1)
            };
            bomb.push_str(&format!(
                "  <!ENTITY lol{i} \"{}\">\n",
                format!("&{prev};").repeat(10)
            ));
        }
        bomb.push_str(
            "]>\n<pfsense><filter><rule><descr>&lol9;</descr></rule></filter></pfsense>\n",
        );
        let started = std::time::Instant::now();
        let parsed = parse(&source(bomb));
        assert!(started.elapsed().as_secs() < 5);
        assert!(parsed.graph.is_none());
        assert_eq!(parsed.findings.len(), 1);
        assert_eq!(parsed.findings[0].rule, PARSE_ERROR);
        assert!(parsed.findings[0].message.contains("DTD"));
    }

    /// Every pfSense and OPNsense file at hand, read in parts and as one document: the
    /// same graph, spans and findings. The files that cannot be split are counted, so
    /// a splitter that always gave up would fail here too.
    #[test]
    fn reading_in_parts_matches_the_whole_document() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dirs = [
            root.join("fixtures/pfsense"),
            root.join("../shared/corpus/pfsense"),
        ];
        let (mut split, mut whole) = (0, 0);
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for path in entries.flatten().map(|e| e.path()) {
                if path.extension().is_none_or(|x| x != "xml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("readable");
                match split::layout(&text) {
                    Some(_) => split += 1,
                    None => whole += 1,
                }
                let file = SourceFile::new(FileId(3), &path, text);
                let (a, b) = (parse(&file), parse_whole(&file));
                assert_eq!(
                    format!("{:?}", a.findings),
                    format!("{:?}", b.findings),
                    "{}",
                    path.display()
                );
                assert_eq!(
                    format!("{:?}", a.graph),
                    format!("{:?}", b.graph),
                    "{}",
                    path.display()
                );
            }
        }
        assert!(split >= 20, "{split} files split, {whole} read whole");
    }

    /// `edited` parsed with the memo of `original` and parsed afresh, as text: the
    /// AST read in parts (spans the lowering drops count too), the graph and findings.
    fn reparsed_and_parsed(original: &SourceFile, edited: String) -> (String, String) {
        let memo = parse_keeping(original, usize::MAX).1.expect("a memo");
        let edited = SourceFile::new(original.id, &original.path, edited);
        let layout = split::layout(&edited.text);
        let show = |memo: Option<&Memo>| {
            let read = layout
                .as_ref()
                .map(|l| read_in_parts(&edited, l, memo, None).map(|(read, _)| read));
            let p = parse_remembering(&edited, memo, None).0;
            format!("{read:?}\n{:?}\n{:?}", p.graph, p.findings)
        };
        (show(Some(&memo)), show(None))
    }

    /// The memo files each part under the text the splitter cuts and the offset it was
    /// read at: every part of every file at hand (but a `<filter>`'s start tag) is found
    /// in the memo of its own file, so an unedited part is never read again.
    #[test]
    fn the_memo_holds_every_part_of_its_file() {
        let mut files = crate::parse::files_in(&["fixtures/pfsense", "../shared/corpus/pfsense"]);
        files.push(config(VARIED_ALIASES, &varied_rules(40)));
        let mut recalled = 0;
        for file in &files {
            let text = file.text.as_str();
            let (Some(layout), (_, Some(memo))) = (split::layout(text), parse_keeping(file, 1000))
            else {
                continue;
            };
            for job in jobs(text, &layout) {
                let fresh = read_part(file.id, text, job).map(|p| format!("{p:?}"));
                let kept = memo.recall(text, job).map(|p| format!("{p:?}"));
                match job {
                    Job::Filter(_) => assert!(kept.is_none()),
                    _ => assert_eq!(kept, fresh, "{}", file.path.display()),
                }
                recalled += usize::from(kept.is_some());
            }
        }
        assert!(recalled > 100, "{recalled} parts recalled");
    }

    /// A file of more rules than fixes are verified for keeps no memo: it would hold a
    /// copy of every rule for nothing.
    #[test]
    fn the_memo_is_kept_only_up_to_the_rule_limit() {
        let file = config(VARIED_ALIASES, &varied_rules(40));
        let (parsed, memo) = parse_keeping(&file, 40);
        assert!(memo.is_some_and(|m| m.parts.len() > 40));
        assert!(parse_keeping(&file, 39).1.is_none());
        assert_eq!(format!("{parsed:?}"), format!("{:?}", parse(&file)));
    }

    /// Edits of the kinds fix candidates make, and one in every other section: every
    /// file at hand, edited, reads the same with the memo of the original as afresh.
    /// Each edit moves the parts after it, so a span the memo left unmoved shows.
    #[test]
    fn an_edited_file_reads_the_same_with_the_memo_of_the_original() {
        let mut files = crate::parse::files_in(&["fixtures/pfsense", "../shared/corpus/pfsense"]);
        // Rules with every child the reader keeps (ICMP types, schedules, floating).
        files.push(config(VARIED_ALIASES, &varied_rules(40)));
        let mut edited_files = 0;
        for file in files.iter().filter(|f| split::layout(&f.text).is_some()) {
            let text = file.text.as_str();
            let layout = split::layout(text).expect("splits");
            let rules: Vec<&split::Element> = layout
                .sections
                .iter()
                .flat_map(|(_, children)| children)
                .filter(|c| &text[c.name.clone()] == "rule")
                .collect();
            let (Some(first), Some(last)) = (rules.first(), rules.last()) else {
                continue;
            };
            let mut edits = vec![
                // A rule inserted before the first: every part after it moves.
                format!(
                    "{}{}\n{}",
                    &text[..first.range.start],
                    &text[last.range.clone()],
                    &text[first.range.start..]
                ),
                // The first rule removed: the parts after it move back.
                format!("{}{}", &text[..first.range.start], &text[first.range.end..]),
                // A rule's port rewritten in place, as narrowing does.
                text.replacen("<port>", "<port>1-", 1),
                // A rule that no longer reads on its own.
                format!(
                    "{}<rule>&</rule>{}",
                    &text[..first.range.start],
                    &text[first.range.start..]
                ),
            ];
            // The first rule copied among the sections, where a `<rule>` is a section
            // that adds nothing: the memo's rule of the same text must not be taken.
            let at = layout.sections[0].0.range.start;
            edits.push(format!(
                "{}{}{}",
                &text[..at],
                &text[first.range.clone()],
                &text[at..]
            ));
            // Something inserted inside each section: every section is read again
            // once, and every one after it is moved.
            for (section, _) in &layout.sections {
                let at = section.tag_end;
                edits.push(format!("{}<x/>{}", &text[..at], &text[at..]));
            }
            for edited in edits {
                let (with_memo, afresh) = reparsed_and_parsed(file, edited);
                assert_eq!(with_memo, afresh, "{}", file.path.display());
            }
            edited_files += 1;
        }
        assert!(edited_files >= 15, "{edited_files} files edited");
    }

    /// The graph and findings of `file`, its rules lowered in `runs` runs.
    fn lowered_in_runs(file: &SourceFile, runs: usize) -> String {
        let doc = parse_xml(&file.text).expect("well-formed");
        let mut cfg = read_config(At::whole(file.id), &doc).expect("a config");
        let rules = lower::ordered_rules(&mut cfg);
        let (graph, findings) = lower::lower_in_runs(&cfg, file.id, rules, runs);
        format!("{graph:?}\n{findings:?}")
    }

    /// Rules that exercise what the runs of a parallel lowering merge: undefined and
    /// tunnel interfaces, counted notes of several kinds, skipped rules, nested, port,
    /// run-time and disabled aliases, floating rules both ways, quick and not.
    fn varied_rules(count: usize) -> String {
        let ifaces = ["lan", "wan", "opt9", "enc0", "lan,opt7", "opt1"];
        let protocols = [
            "<protocol>tcp</protocol>",
            "<protocol>udp</protocol>",
            "<protocol>icmp</protocol><icmptype>echoreq</icmptype>",
            "<protocol>weird</protocol>",
            "<protocol>tcp/udp</protocol>",
        ];
        let sources = ["N1", "U", "NOPE", "any", "D", "lanip", "N2"];
        let ports = ["P", "http", "1000-2000", "gopher-ish", "443"];
        let types = ["pass", "block", "reject", "match", "bogus"];
        let directions = ["any", "out", "in", "sideways"];
        (0..count)
            .map(|k| {
                let floating = match k % 4 {
                    0 => format!(
                        "<floating>yes</floating><direction>{}</direction>",
                        directions[k / 4 % 4]
                    ),
                    _ => String::new(),
                };
                let sched = if k % 9 == 0 { "<sched>work</sched>" } else { "" };
                rule(&format!(
                    "<type>{}</type><interface>{}</interface>{}                     <source><address>{}</address></source>                     <destination><any/><port>{}</port></destination>{floating}{sched}                     <quick>{}</quick><descr>r{k}</descr>",
                    types[k % 5],
                    ifaces[k % 6],
                    protocols[k % 5],
                    sources[k % 7],
                    ports[k % 5],
                    if k % 3 == 0 { "yes" } else { "" },
                ))
            })
            .collect()
    }

    const VARIED_ALIASES: &str = "<alias><name>N1</name><type>network</type><address>N2 10.1.0.0/16</address></alias>\
        <alias><name>N2</name><type>host</type><address>10.2.0.1 10.2.0.2</address></alias>\
        <alias><name>P</name><type>port</type><address>22 8000:8080</address></alias>\
        <alias><name>U</name><type>urltable</type><address>https://x.example/list</address></alias>\
        <alias><name>D</name><type>host</type><enabled>no</enabled><address>10.3.0.1</address></alias>";

    #[test]
    fn lowering_in_runs_matches_one_run() {
        let cyclic = format!(
            "{VARIED_ALIASES}<alias><name>A</name><type>host</type><address>10.0.0.1 B</address></alias>\
             <alias><name>B</name><type>host</type><address>A</address></alias>"
        );
        let mut files = vec![
            config(VARIED_ALIASES, &varied_rules(120)),
            // A cycle keeps the lowering in one run; the answer must not change either.
            config(
                &cyclic,
                &(varied_rules(60)
                    + &rule("<interface>lan</interface><source><address>B</address></source>")),
            ),
        ];
        let xml = crate::parse::files_in(&["fixtures/pfsense", "../shared/corpus/pfsense"])
            .into_iter()
            .filter(|f| f.path.extension().is_some_and(|x| x == "xml"));
        files.extend(xml);
        assert!(files.len() > 20, "{} files", files.len());
        let one = lowered_in_runs(&files[0], 1);
        for (what, needle) in [
            ("an undefined interface", "opt9"),
            ("a skipped rule", "NOPE"),
            ("counted notes", "a protocol mislint does not know"),
        ] {
            assert!(one.contains(needle), "{what} missing");
        }
        for file in &files {
            let one = lowered_in_runs(file, 1);
            for runs in [2, 3, 7, 1000] {
                assert_eq!(
                    lowered_in_runs(file, runs),
                    one,
                    "{} in {runs} runs",
                    file.path.display()
                );
            }
        }
    }

    /// Markup that moves where elements start and end or makes them malformed, and
    /// text, which between sections or rules no part holds.
    const MUTATIONS: [&str; 20] = [
        "<",
        ">",
        "/",
        "\"",
        "'",
        "&",
        "<!--",
        "-->",
        "<![CDATA[",
        "]]>",
        "</rule>",
        "<rule>",
        "<?pi?>",
        "<!DOCTYPE x>",
        "<filter>",
        "</filter>",
        "x",
        "&amp;",
        "<a/>",
        "<!-- c -->",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// A fixture with markup inserted or bytes cut at random: read in parts or as one
        /// document, the same graph and the same findings (errors at the same place).
        #[test]
        fn damaged_files_read_in_parts_as_in_one_document(
            edits in proptest::collection::vec((0.0f64..1.0, 0..MUTATIONS.len(), 0usize..8), 1..3)
        ) {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            let path = root.join("fixtures/pfsense/shadowed-ldap.xml");
            let mut text = std::fs::read_to_string(&path).expect("fixture");
            for (at, insert, cut) in edits {
                let mut i = ((text.len() as f64) * at) as usize;
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                // Two edits in eight cut 1–4 bytes, the others insert.
                if cut >= 6 {
                    let mut end = (i + insert % 4 + 1).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(i..end, "");
                } else {
                    text.insert_str(i, MUTATIONS[insert]);
                }
            }
            let file = source(text);
            let (a, b) = (parse(&file), parse_whole(&file));
            proptest::prop_assert_eq!(format!("{:?}", a.findings), format!("{:?}", b.findings));
            proptest::prop_assert_eq!(format!("{:?}", a.graph), format!("{:?}", b.graph));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// A fixture damaged at random reads the same with the memo of the undamaged
        /// fixture as afresh: parts the damage touched are read again, the rest moved.
        #[test]
        fn damaged_files_read_the_same_with_the_memo_of_the_original(
            edits in proptest::collection::vec((0.0f64..1.0, 0..MUTATIONS.len()), 1..3)
        ) {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            let original = source(
                std::fs::read_to_string(root.join("fixtures/pfsense/shadowed-ldap.xml"))
                    .expect("fixture"),
            );
            let mut text = original.text.clone();
            for (at, insert) in edits {
                let mut i = ((text.len() as f64) * at) as usize;
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                text.insert_str(i, MUTATIONS[insert]);
            }
            let (with_memo, afresh) = reparsed_and_parsed(&original, text);
            proptest::prop_assert_eq!(with_memo, afresh);
        }
    }

    #[test]
    fn a_part_that_is_not_well_formed_is_reported_where_it_is() {
        for rule in [
            "<rule><descr>a & b</descr></rule>",
            "<rule><descr>x</protocol></rule>",
        ] {
            let text = format!("<pfsense>\n{IFACES}\n<filter>\n{rule}\n</filter>\n</pfsense>\n");
            let file = source(text);
            let (a, b) = (parse(&file), parse_whole(&file));
            assert!(a.graph.is_none());
            assert_eq!(a.findings.len(), 1);
            assert_eq!(format!("{:?}", a.findings), format!("{:?}", b.findings));
            // In the file, not at the offset it has in the rule on its own.
            let rule_at = file.text.find(rule).expect("rule in text");
            let at = a.findings[0].primary.span.start as usize;
            assert!(
                (rule_at..rule_at + rule.len()).contains(&at),
                "{rule}: {at}"
            );
        }
    }
}
