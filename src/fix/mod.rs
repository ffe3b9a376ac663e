//! Fix suggestions: edits in the file's own dialect for `missing-port`, `needless-port`
//! and `ipsec-violation`, each shown only once re-checking the edited file proves it.
//!
//! Sits after the checks and before suppression and rendering: [`suggest`] takes one
//! file's findings, asks the dialect room (`iptables`, `asa`, `pfsense`) for candidate
//! edits of the text — a permit inserted ahead of the deny that decides a missing port,
//! the narrowing of a permitting rule to the ports still needed, or its removal — and
//! keeps the first candidate that survives [`verify`]: the edited text is parsed again
//! with the dialect parser and checked with the same [`FileConfig`]; the finding must be
//! gone and no finding of severity warning or error may appear at a place and for a flow
//! that had none before (one already there may change its ports: removing a rule can
//! unshadow part of a later one). Each finding's fix is verified on its own against the original text. When no
//! candidate survives, the finding's help says why there is no safe automatic fix.

pub mod asa;
pub mod iptables;
pub mod pfsense;

use crate::analysis::reuse::Recorded;
use crate::analysis::zones::Zoning;
use crate::checks::{
    Scope, describe_ports, ipsec_violation, missing_port, needless_port, note_only_checks,
    proto_name,
};
use crate::config::FileConfig;
use crate::graph::sets::{PORT_MAX, addr, proto};
use crate::graph::{Dialect, IntervalSet, RuleGraph, Zone};
use crate::parse::Memo;
use crate::report::finding::{Edit, Finding, Fix, Severity};
use crate::source::{FileId, LineIndex, SourceFile, Span};
use rayon::prelude::*;
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

/// A network in prefix form, as the inserted rules name addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Net {
    /// True for a single host (/32 or /128).
    pub fn is_host(&self) -> bool {
        self.len == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    /// `a.b.c.d/len`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.addr, self.len)
    }
}

/// A permit to insert, in terms every dialect can write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permit {
    /// IP protocol.
    pub protocol: u8,
    /// Destination port ranges; empty for protocols without ports.
    pub ports: Vec<(u16, u16)>,
    /// Source network; `None` for any.
    pub src: Option<Net>,
    /// Destination network; `None` for any.
    pub dst: Option<Net>,
    /// Ingress interface, as the graph names it.
    pub in_iface: Option<String>,
    /// Egress interface, as the graph names it.
    pub out_iface: Option<String>,
    /// What the permit is for, for a comment in the inserted rule.
    pub why: String,
}

/// Edits for a permit, with where they go in words (`before the rule that blocks it`).
pub type Placement = (Vec<Edit>, String);

/// Files of more rules than this get no verified fix. One re-check costs about as much
/// as the lint and holds a second graph in memory: on a 100,000-rule dump even one
/// would double the run of every commit for one suggestion.
pub const MAX_VERIFIED_RULES: usize = 50_000;

/// Verification may cost this many times the lint's own work (see [`crate::Cost`])...
const VERIFY_WORK_FACTOR: usize = 2;

/// ...or this much work, whichever is more, so small files get all their fixes.
const VERIFY_WORK_FLOOR: usize = 20_000;

/// What the lint of a file leaves its fixes: what it cost, and the record of its walks
/// that re-checks of edited copies take over where the edit cannot change them.
pub struct Lint {
    /// The lint's cost; verification may cost a multiple of it.
    pub cost: crate::Cost,
    /// The lint's walks, if it recorded them.
    pub recorded: Option<Arc<Recorded>>,
}

/// Fills `fix` of every `missing-port`, `needless-port` and `ipsec-violation` finding in
/// `findings` (one file's, before suppression) with a verified fix, or appends to its
/// help why there is none. `memo` is what the parse kept of the file's parts
/// ([`crate::parse::parse_keeping`]).
pub fn suggest(
    file: &SourceFile,
    dialect: Dialect,
    graph: &RuleGraph,
    fc: &FileConfig,
    findings: &mut [Finding],
    lint: Lint,
    memo: &Memo,
) {
    let lint_cost = lint.cost;
    if !findings.iter().any(wants_fix) {
        return;
    }
    // Compared like the edited file's findings: after inline suppression.
    let mut before = findings.to_vec();
    crate::suppress::apply_inline(&mut before, graph);
    let baseline: Vec<Key> = before
        .iter()
        .filter(|f| counts(f) && f.suppressed.is_none())
        .map(Key::of)
        .collect();
    let zoning = Zoning::assign(graph, &fc.zones);
    // Each candidate costs a parse and check of the whole file: on big files with many
    // findings that is quadratic, so verification stops at a budget and says so.
    let rules = graph.rules().count();
    // Past the analysis limit every re-check would hit it again, and a verdict that is
    // only "may" cannot confirm a fix.
    let limited = lint_cost.hit_limit;
    let mut work_left = if rules > MAX_VERIFIED_RULES || limited {
        0
    } else {
        (lint_cost.units * VERIFY_WORK_FACTOR).max(VERIFY_WORK_FLOOR)
    };
    // A config.xml's layout, for placing edits: the parse's, or else read again (and
    // the whole document where it cannot be split), only with work to do.
    let pf_xml = match (dialect, memo) {
        (Dialect::Pfsense, Memo::Pfsense(m)) if work_left > 0 => {
            Some(pfsense::Xml::split(&file.text, Cow::Borrowed(&m.layout)))
        }
        (Dialect::Pfsense, _) if work_left > 0 => pfsense::Xml::read(&file.text),
        _ => None,
    };
    let cx = FixCx {
        file,
        dialect,
        memo,
        pf_xml: pf_xml.as_ref(),
        graph,
        zoning: &zoning,
        fc,
        baseline: &baseline,
        recorded: lint.recorded.as_ref(),
    };
    let mut wanting: Vec<&mut Finding> = findings.iter_mut().filter(|f| wants_fix(f)).collect();
    for batch in wanting.chunks_mut(VERIFY_BATCH) {
        if work_left == 0 {
            let why = if limited {
                "fixes are verified by re-checking the file, and the analysis of this file stopped at its limit (see `analysis-limit`)".to_string()
            } else if rules > MAX_VERIFIED_RULES {
                format!(
                    "fixes are verified by re-checking the file, and mislint re-checks files of at most {MAX_VERIFIED_RULES} rules (this one has {rules})"
                )
            } else {
                "fixes are verified by re-checking the file, and this file has more findings than mislint re-checks in one run; fix the first ones and run again".to_string()
            };
            for f in batch.iter_mut() {
                explain_no_fix(f, std::slice::from_ref(&why));
            }
            continue;
        }
        // Each finding's re-checks are independent: the batch runs on every core. The
        // batch is a fixed size, so which findings get a fix does not depend on timing.
        let spent: usize = batch
            .par_iter_mut()
            .map(|f| {
                let (chosen, why_not, spent) = cx.choose_fix(f);
                match chosen {
                    Some(fix) => f.fix = Some(fix),
                    None => explain_no_fix(f, &why_not),
                }
                spent
            })
            .sum();
        work_left = work_left.saturating_sub(spent);
    }
}

/// Findings whose fixes are verified side by side, on as many cores as there are; the
/// work budget is checked between batches.
const VERIFY_BATCH: usize = 2;

/// Findings that get a fix.
fn wants_fix(f: &Finding) -> bool {
    [
        missing_port::META.name,
        needless_port::META.name,
        ipsec_violation::META.name,
    ]
    .contains(&f.rule)
}

/// Findings the verification compares: warnings and errors.
fn counts(f: &Finding) -> bool {
    f.severity >= Severity::Warning
}

fn explain_no_fix(f: &mut Finding, why_not: &[String]) {
    let reason = if why_not.is_empty() {
        "mislint found no edit in this dialect that removes it".to_string()
    } else {
        why_not.join("; ")
    };
    let line = format!("no safe automatic fix: {reason}");
    f.help = Some(match f.help.take() {
        Some(h) => format!("{h}\n{line}"),
        None => line,
    });
}

/// What finding fixes in one file needs: the file, its graph and zones, the settings,
/// the findings to compare a fixed file against, and a pfSense file's layout.
struct FixCx<'a> {
    file: &'a SourceFile,
    dialect: Dialect,
    memo: &'a Memo<'a>,
    pf_xml: Option<&'a pfsense::Xml<'a>>,
    graph: &'a RuleGraph,
    zoning: &'a Zoning,
    fc: &'a FileConfig<'a>,
    baseline: &'a [Key],
    recorded: Option<&'a Arc<Recorded>>,
}

impl FixCx<'_> {
    /// The first candidate fix for `f` that verifies, or why none does, with the work
    /// spent.
    fn choose_fix(&self, f: &Finding) -> (Option<Fix>, Vec<String>, usize) {
        let target = Key::of(f);
        let mut why_not = Vec::new();
        let mut spent = 0;
        match self.candidates(f) {
            Err(reason) => why_not.push(reason),
            Ok(list) => {
                for fix in list {
                    let (verdict, cost) = verify(self, &target, &fix.edits);
                    spent += cost.max(1);
                    match verdict {
                        Ok(()) => return (Some(fix), why_not, spent),
                        Err(e) => why_not.push(format!("{}: {e}", fix.title)),
                    }
                }
            }
        }
        (None, why_not, spent)
    }

    /// The candidate fixes of one finding, best first, or why there can be none.
    fn candidates(&self, f: &Finding) -> Result<Vec<Fix>, String> {
        let FixCx {
            file,
            dialect,
            pf_xml,
            graph,
            zoning,
            fc,
            ..
        } = *self;
        let text = file.text.as_str();
        let at = f.primary.span;
        if f.rule == missing_port::META.name {
            let mut out = Vec::new();
            let mut last_err = None;
            for permit in permits(graph, zoning, fc, f) {
                let placed = match dialect {
                    Dialect::Iptables => iptables::insert_permit(text, file.id, at, &permit),
                    Dialect::Asa => asa::insert_permit(text, file.id, at, &permit),
                    Dialect::Pfsense => match pf_xml {
                        Some(xml) => pfsense::insert_permit(xml, file.id, at, &permit),
                        None => Err("the file is not XML mislint can edit".into()),
                    },
                };
                match placed {
                    Ok((edits, place)) => out.push(Fix {
                        title: format!(
                            "permit `{}` from {} to {} {place}",
                            describe_flow(permit.protocol, &permit.ports),
                            describe_end(permit.src, permit.in_iface.as_deref()),
                            describe_end(permit.dst, permit.out_iface.as_deref()),
                        ),
                        edits,
                    }),
                    Err(e) => last_err = Some(e),
                }
            }
            return match (out.is_empty(), last_err) {
                (true, Some(e)) => Err(e),
                _ => Ok(out),
            };
        }
        let mut out = Vec::new();
        if let Some(p) = f.protocol.filter(|&p| proto::has_ports(p)) {
            let excess = IntervalSet::from_ranges(
                f.ports
                    .iter()
                    .map(|&(lo, hi)| (u128::from(lo), u128::from(hi))),
            );
            let narrowed = match dialect {
                Dialect::Iptables => iptables::narrow(text, file.id, at, p, &excess),
                Dialect::Asa => asa::narrow(text, file.id, at, p, &excess),
                Dialect::Pfsense => {
                    pf_xml.and_then(|xml| pfsense::narrow(xml, file.id, at, p, &excess))
                }
            };
            if let Some((edits, keep)) = narrowed {
                out.push(Fix {
                    title: format!(
                        "narrow this rule to `{}`",
                        describe_flow(p, &crate::checks::port_ranges(&keep))
                    ),
                    edits,
                });
            }
        }
        let removed = match dialect {
            Dialect::Iptables => iptables::remove(text, file.id, at),
            Dialect::Asa => asa::remove(text, file.id, at),
            Dialect::Pfsense => pf_xml.and_then(|xml| pfsense::remove(xml, file.id, at)),
        };
        if let Some(edits) = removed {
            out.push(Fix {
                title: "remove this rule".into(),
                edits,
            });
        }
        if out.is_empty() {
            let (s, e, _) = line_at(text, at.start as usize);
            let line = text.get(s..e).unwrap_or("").trim();
            return Err(format!(
                "the traffic is permitted by `{line}`, which is not a rule mislint can narrow or \
             remove (implicit device behaviour, or a construct whose ports it cannot rewrite)"
            ));
        }
        Ok(out)
    }
}

/// `tcp/389`, `udp/137-138`, `esp`.
fn describe_flow(p: u8, ports: &[(u16, u16)]) -> String {
    if ports.is_empty() {
        return proto_name(p);
    }
    let set = IntervalSet::from_ranges(
        ports
            .iter()
            .map(|&(lo, hi)| (u128::from(lo), u128::from(hi))),
    );
    format!("{}/{}", proto_name(p), describe_ports(&set))
}

/// `192.168.10.5 on eth1`, `10.0.0.0/24`, `any on eth0`.
fn describe_end(net: Option<Net>, iface: Option<&str>) -> String {
    let addr = match net {
        Some(n) if n.is_host() => n.addr.to_string(),
        Some(n) => n.cidr(),
        None => "any".into(),
    };
    match iface {
        Some(i) => format!("{addr} on `{i}`"),
        None => addr,
    }
}

/// The permits that would let a missing flow through, narrowest first: between the
/// hosts the site file names (or the zones' networks), then the zones' networks, then
/// by interface only.
fn permits(graph: &RuleGraph, zoning: &Zoning, fc: &FileConfig, f: &Finding) -> Vec<Permit> {
    let (Some(p), Some(from), Some(to)) = (f.protocol, f.from_zone, f.to_zone) else {
        return Vec::new();
    };
    let ports = if proto::has_ports(p) && !f.ports.is_empty() {
        f.ports.clone()
    } else if proto::has_ports(p) {
        vec![(0, PORT_MAX as u16)]
    } else {
        Vec::new()
    };
    let space = graph.family.space();
    let zone_net = |z: Zone| single_net(&zoning.zone_addresses(z, &space));
    let host_net = |z: Zone| {
        fc.hosts
            .of(z)
            .map_or_else(|| zone_net(z), |h| single_net(&h.intersect(&space)))
    };
    let (in_iface, out_iface) = f.witness.as_ref().map_or((None, None), |w| {
        (w.in_interface.clone(), w.out_interface.clone())
    });
    let why = match &f.requirement {
        // Not "mislint: …", which reads as an inline suppression directive.
        Some(r) => format!("KB 294297 {r}, suggested by mislint"),
        None => "KB 294297, suggested by mislint".into(),
    };
    let mut out: Vec<Permit> = Vec::new();
    for (src, dst) in [
        (host_net(from), host_net(to)),
        (zone_net(from), zone_net(to)),
        (None, None),
    ] {
        let permit = Permit {
            protocol: p,
            ports: ports.clone(),
            src,
            dst,
            in_iface: in_iface.clone(),
            out_iface: out_iface.clone(),
            why: why.clone(),
        };
        if !out.contains(&permit) {
            out.push(permit);
        }
    }
    out
}

/// The set as one prefix, unless it is empty, not a prefix, or a whole address family.
pub fn single_net(set: &IntervalSet) -> Option<Net> {
    let &[(lo, hi)] = set.ranges() else {
        return None;
    };
    let first = addr::to_ip(lo);
    let count = hi.checked_sub(lo)?.checked_add(1)?;
    if !count.is_power_of_two() {
        return None;
    }
    let host_bits = count.trailing_zeros();
    let bits = if first.is_ipv4() { 32 } else { 128 };
    if host_bits >= bits || lo & (count - 1) != 0 {
        return None;
    }
    Some(Net {
        addr: first,
        len: (bits - host_bits) as u8,
    })
}

/// What identifies a finding across an edit: its kind, flow and line start.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    rule: &'static str,
    requirement: Option<String>,
    protocol: Option<u8>,
    from: Option<Zone>,
    to: Option<Zone>,
    message: String,
    start: u32,
}

impl Key {
    fn of(f: &Finding) -> Key {
        Key {
            rule: f.rule,
            requirement: f.requirement.clone(),
            protocol: f.protocol,
            from: f.from_zone,
            to: f.to_zone,
            message: f.message.clone(),
            start: f.primary.span.start,
        }
    }

    /// Same kind of finding about the same flow at the same place, whatever its ports.
    fn same_flow(&self, other: &Key) -> bool {
        self.same_requirement(other) && self.start == other.start
    }

    /// Same kind of finding about the same flow, wherever it is reported.
    fn same_requirement(&self, other: &Key) -> bool {
        self.rule == other.rule
            && self.requirement == other.requirement
            && self.protocol == other.protocol
            && self.from == other.from
            && self.to == other.to
    }
}

/// Applies `edits` to the original text, parses and checks the result, and accepts the
/// edits if `target` is gone and every warning or error left was there before.
fn verify(cx: &FixCx, target: &Key, edits: &[Edit]) -> (Result<(), String>, usize) {
    let file = cx.file;
    let Some(text) = apply(&file.text, edits) else {
        return (Err("its edits overlap".into()), 0);
    };
    let edited = SourceFile::new(file.id, file.path.clone(), text);
    let parsed = crate::parse::parse_edited(&edited, cx.dialect, cx.memo);
    let Some(graph) = &parsed.graph else {
        return (Err("the edited file does not parse".into()), 0);
    };
    let mut after = parsed.findings;
    let scope = verify_scope(graph);
    let (found, cost) = match cx.recorded {
        Some(recorded) => {
            let recorded = Arc::clone(recorded);
            crate::check_graph_reusing(&edited, graph, cx.fc, scope, cx.graph, recorded)
        }
        None => crate::check_graph_scoped(&edited, graph, cx.fc, scope),
    };
    after.extend(found);
    (
        compare(graph, after, cx.baseline, target, edits),
        cost.units,
    )
}

/// The checks a verification runs: those that can report a warning or an error, which
/// are all it compares — unless an inline suppression names a note-only check, since
/// whether that suppression is used (an `unused-suppression` warning if not) depends
/// on the notes.
fn verify_scope(graph: &RuleGraph) -> Scope {
    let notes: Vec<&str> = note_only_checks().map(|m| m.name).collect();
    if crate::suppress::inline_names_any(graph, &notes) {
        Scope::All
    } else {
        Scope::WarningsAndErrors
    }
}

/// Ok if the edited file's findings (`after`, before inline suppression) have lost the
/// target finding and gained none the baseline did not have.
fn compare(
    graph: &RuleGraph,
    mut after: Vec<Finding>,
    baseline: &[Key],
    target: &Key,
    edits: &[Edit],
) -> Result<(), String> {
    // Inline suppression runs as in a real lint: the edit may add a comment it reads.
    crate::suppress::apply_inline(&mut after, graph);
    after.retain(|f| f.suppressed.is_none());
    let before: Vec<Key> = baseline
        .iter()
        .filter_map(|k| map_offset(edits, k.start).map(|start| Key { start, ..k.clone() }))
        .collect();
    let moved = map_offset(edits, target.start).map(|start| Key {
        start,
        ..target.clone()
    });
    for a in after.iter().filter(|a| counts(a)) {
        let k = Key::of(a);
        if moved.as_ref().is_some_and(|t| t.same_flow(&k)) {
            return Err(format!("the finding remains: {}", a.message));
        }
        // A finding already reported at that place for that flow may change its ports
        // (a removed rule no longer shadows a later one); any other is new.
        if !before.iter().any(|b| b.same_flow(&k)) {
            // The same flow decided by another rule is the finding that stayed, not a
            // new one: the edit only fixed the part of it that its place decided.
            if target.same_requirement(&k) {
                return Err(format!(
                    "the finding remains, decided by another rule: {}",
                    a.message
                ));
            }
            return Err(format!(
                "it would add a `{}` finding: {}",
                a.rule, a.message
            ));
        }
    }
    Ok(())
}

/// The text with `edits` applied, or `None` if they overlap or fall outside it.
pub fn apply(text: &str, edits: &[Edit]) -> Option<String> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.span.start, e.span.end));
    let mut out = String::with_capacity(text.len());
    let mut at = 0usize;
    for e in sorted {
        let (s, t) = (e.span.start as usize, e.span.end as usize);
        if s < at {
            return None;
        }
        out.push_str(text.get(at..s)?);
        out.push_str(&e.text);
        at = t;
    }
    out.push_str(text.get(at..)?);
    Some(out)
}

/// Where an offset of the original text lands after `edits`; `None` if an edit
/// replaced or deleted it. An insertion at the offset itself goes before it.
fn map_offset(edits: &[Edit], old: u32) -> Option<u32> {
    let mut delta: i64 = 0;
    for e in edits {
        let grow = e.text.len() as i64 - i64::from(e.span.end - e.span.start);
        if e.span.is_empty() {
            if e.span.start <= old {
                delta += grow;
            }
        } else if e.span.end <= old {
            delta += grow;
        } else if e.span.start <= old {
            return None;
        }
    }
    u32::try_from(i64::from(old) + delta).ok()
}

/// The line around `offset`: (start, end without the line break, start of the next line).
pub fn line_at(text: &str, offset: usize) -> (usize, usize, usize) {
    let offset = offset.min(text.len());
    let start = text
        .get(..offset)
        .and_then(|s| s.rfind('\n'))
        .map_or(0, |i| i + 1);
    let next = text
        .get(offset..)
        .and_then(|s| s.find('\n'))
        .map_or(text.len(), |i| offset + i + 1);
    let mut end = next;
    while end > start && matches!(text.as_bytes().get(end - 1), Some(b'\n' | b'\r')) {
        end -= 1;
    }
    (start, end, next)
}

/// The lines of `text[from..to]`: (start, end without break, next start) each.
pub fn lines_in(text: &str, from: usize, to: usize) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to.min(text.len()) {
        let l = line_at(text, at);
        out.push(l);
        if l.2 <= at {
            break;
        }
        at = l.2;
    }
    out
}

/// Whitespace-separated tokens of a line with their offsets in it; a double-quoted
/// string (an iptables comment) is one token, so its words are never taken for options.
pub fn tokens(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match start {
            None if !c.is_whitespace() => {
                start = Some(i);
                quoted = c == '"';
            }
            Some(s) if quoted && c == '"' && i > s => quoted = false,
            Some(s) if !quoted && c.is_whitespace() => {
                out.extend(line.get(s..i).map(|t| (s, t)));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.extend(line.get(s..).map(|t| (s, t)));
    }
    out
}

/// An edit of `text[start..end]` in `file`.
pub fn edit(file: FileId, start: usize, end: usize, text: impl Into<String>) -> Edit {
    Edit {
        span: Span::new(file, start, end),
        text: text.into(),
    }
}

/// How a fix reads in the human output: each edit with its line and the new text.
pub fn describe(fix: &Fix, text: &str) -> String {
    let index = LineIndex::new(text);
    let line = |o: u32| index.line_col(text, o).0;
    let mut out = vec![format!("fix (verified by re-checking): {}", fix.title)];
    for e in &fix.edits {
        let (first, last) = (line(e.span.start), line(e.span.end.saturating_sub(1)));
        let new_lines = e
            .text
            .trim_end_matches('\n')
            .lines()
            .map(|l| format!("  + {l}"));
        let (s, t) = (e.span.start as usize, e.span.end as usize);
        let at_line_end = t == text.len()
            || matches!(text.as_bytes().get(t), Some(b'\n' | b'\r'))
            || (t > 0 && text.as_bytes().get(t - 1) == Some(&b'\n'));
        let whole_lines = s == line_at(text, s).0 && at_line_end;
        if e.span.is_empty() {
            out.push(format!("  insert before line {first}:"));
            out.extend(new_lines);
        } else if e.text.is_empty() && whole_lines {
            out.push(if first == last {
                format!("  delete line {first}")
            } else {
                format!("  delete lines {first}-{last}")
            });
        } else if whole_lines {
            out.push(if first == last {
                format!("  replace line {first} with:")
            } else {
                format!("  replace lines {first}-{last} with:")
            });
            out.extend(new_lines);
        } else {
            let old = text
                .get(e.span.start as usize..e.span.end as usize)
                .unwrap_or("");
            out.push(format!("  line {first}: replace `{old}` with `{}`", e.text));
        }
    }
    out.join("\n")
}

/// Port ranges as a set.
pub fn port_set(ranges: &[(u16, u16)]) -> IntervalSet {
    IntervalSet::from_ranges(
        ranges
            .iter()
            .map(|&(lo, hi)| (u128::from(lo), u128::from(hi))),
    )
}

/// The ranges of a port set as `(lo, hi)` pairs.
pub fn ranges_of(ports: &IntervalSet) -> Vec<(u16, u16)> {
    crate::checks::port_ranges(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(at: u32, text: &str) -> Edit {
        edit(FileId(0), at as usize, at as usize, text)
    }

    fn graph_of(rules: &str) -> RuleGraph {
        let text = format!("*filter\n:FORWARD DROP [0:0]\n{rules}COMMIT\n");
        let file = SourceFile::new(FileId(0), std::path::PathBuf::from("t.rules"), text);
        crate::parse::parse(&file, Dialect::Iptables)
            .graph
            .expect("parses")
    }

    #[test]
    fn verification_runs_the_note_checks_only_for_suppressions_of_notes() {
        let plain = graph_of("-A FORWARD -p tcp --dport 25 -j ACCEPT\n");
        assert_eq!(verify_scope(&plain), Scope::WarningsAndErrors);
        let of_warning = graph_of(
            "-A FORWARD -p tcp --dport 25 -m comment --comment \"mislint: allow needless-port: relay\" -j ACCEPT\n",
        );
        assert_eq!(verify_scope(&of_warning), Scope::WarningsAndErrors);
        for kinds in ["shadowed-rule", "needless-port, redundant-rule"] {
            let of_note = graph_of(&format!(
                "-A FORWARD -p tcp --dport 25 -m comment --comment \"mislint: allow {kinds}: known\" -j ACCEPT\n"
            ));
            assert_eq!(verify_scope(&of_note), Scope::All, "{kinds}");
        }
    }

    #[test]
    fn a_flow_still_unmet_at_another_rule_is_the_finding_remaining_not_a_new_one() {
        let graph = graph_of("-A FORWARD -p tcp --dport 25 -j ACCEPT\n");
        let finding = |start: usize, requirement: &str| {
            let mut f = Finding::new(
                missing_port::META.name,
                Severity::Warning,
                Span::new(FileId(0), start, start + 5),
                format!("{requirement} may be blocked"),
            );
            f.requirement = Some(requirement.to_string());
            f.protocol = Some(6);
            f.from_zone = Some(Zone::Perimeter);
            f.to_zone = Some(Zone::Internal);
            f
        };
        let target = Key::of(&finding(100, "http"));
        let baseline = vec![target.clone()];
        // Ten bytes inserted ahead of the target: it now starts at 110.
        let edits = vec![ins(50, "0123456789")];
        let outcome = |after: Vec<Finding>| compare(&graph, after, &baseline, &target, &edits);
        assert_eq!(outcome(Vec::new()), Ok(()));
        let same_place = outcome(vec![finding(110, "http")]).expect_err("not fixed");
        assert!(
            same_place.starts_with("the finding remains: "),
            "{same_place}"
        );
        let elsewhere = outcome(vec![finding(300, "http")]).expect_err("not fixed");
        assert!(
            elsewhere.starts_with("the finding remains, decided by another rule: "),
            "{elsewhere}"
        );
        let other = outcome(vec![finding(300, "ldap")]).expect_err("a new finding");
        assert!(
            other.starts_with("it would add a `missing-port` finding: "),
            "{other}"
        );
    }

    #[test]
    fn applies_and_maps_insertions_and_deletions() {
        let text = "a\nb\nc\n";
        let edits = vec![ins(2, "x\n"), edit(FileId(0), 4, 6, "")];
        assert_eq!(apply(text, &edits).as_deref(), Some("a\nx\nb\n"));
        assert_eq!(map_offset(&edits, 0), Some(0));
        assert_eq!(
            map_offset(&edits, 2),
            Some(4),
            "the line before which we insert"
        );
        assert_eq!(map_offset(&edits, 4), None, "the deleted line");
        let overlapping = vec![edit(FileId(0), 0, 3, ""), edit(FileId(0), 2, 4, "")];
        assert_eq!(apply(text, &overlapping), None);
    }

    #[test]
    fn tokens_keep_quoted_strings_whole() {
        let t = tokens(r#"-A X -m comment --comment "a --dport 1" -j ACCEPT"#);
        let words: Vec<&str> = t.iter().map(|(_, w)| *w).collect();
        assert_eq!(
            words,
            [
                "-A",
                "X",
                "-m",
                "comment",
                "--comment",
                "\"a --dport 1\"",
                "-j",
                "ACCEPT"
            ]
        );
        assert_eq!(t[5].0, 26);
    }

    #[test]
    fn single_net_finds_prefixes_only() {
        let net = |s: &str, l: u8| addr::cidr(s.parse().expect("literal"), l).expect("prefix");
        let n = single_net(&net("10.0.0.0", 24)).expect("a /24");
        assert_eq!((n.addr.to_string(), n.len), ("10.0.0.0".into(), 24));
        assert!(single_net(&net("192.168.10.5", 32)).is_some_and(|n| n.is_host()));
        assert_eq!(single_net(&addr::v4_space()), None, "any is no prefix");
        let two = net("10.0.0.0", 24).union(&net("10.0.2.0", 24));
        assert_eq!(single_net(&two), None);
    }

    #[test]
    fn line_at_finds_bounds() {
        let text = "ab\r\ncd\nef";
        assert_eq!(line_at(text, 1), (0, 2, 4));
        assert_eq!(line_at(text, 5), (4, 6, 7));
        assert_eq!(line_at(text, 8), (7, 9, 9));
        assert_eq!(lines_in(text, 0, text.len()).len(), 3);
    }
}
