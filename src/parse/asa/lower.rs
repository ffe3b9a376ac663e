//! Lowering: the ASA AST in, the normalized rule graph out. The last step of the ASA
//! parser, after the line grammar.
//!
//! The ASA's implicit behaviour becomes explicit rules whose span is the line that
//! causes it. Stage `ingress` enters a synthesized chain: interfaces with an inbound
//! access-group go to their ACL's chain (which ends in the global ACL or in the
//! implicit deny of that ACL, spanning the access-group line); then the global ACL;
//! without a global ACL, security levels decide for the other interfaces (higher to
//! lower permitted, equal only with `same-security-traffic permit inter-interface`,
//! everything else denied, spanning the `security-level` line). Stage `egress` sends
//! packets leaving an interface with an outbound access-group through that ACL.
//!
//! An ACE is a union of cubes when its service is a group (several protocols,
//! `tcp-udp`) or when an object it names is partly unknown: each cube becomes one rule
//! with the ACE's span and action. What mislint cannot know (FQDN objects, ICMP types,
//! time-ranges, undefined references) becomes a `CondKind::Unknown` on that rule, so
//! the analysis treats it as "may match" instead of silently widening or dropping it.

use super::ast::*;
use super::grammar::Cx;
use super::ports::{self, ProtoName};
use crate::graph::sets::{self, IntervalSet, PORT_MAX};
use crate::graph::{
    Action, Chain, ChainId, Cond, CondKind, Default, Dialect, Family, IfaceMatch, IfacePattern,
    Interface, PortLiteral, Rule, RuleGraph, Stage, Zone,
};
use crate::parse::{REFERENCE_CYCLE, UNDEFINED_REFERENCE, UNKNOWN_SYNTAX};
use crate::report::finding::{Finding, Severity};
use crate::source::Span;
// Looked up once or more per access-list entry: foldhash, not SipHash.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::net::IpAddr;

/// Entries from which the access-lists are lowered on every core.
const PARALLEL_FROM_ENTRIES: usize = 4096;

/// Runs of entries per core: a little more than one evens out runs of unequal work.
const RUNS_PER_CORE: usize = 2;

/// Lowers a parsed config to the rule graph, adding reference findings. The access-list
/// entries are lowered in `runs` runs (`None`: one on a small config, [`RUNS_PER_CORE`]
/// per core from [`PARALLEL_FROM_ENTRIES`] entries) and consumed as they are, so the
/// AST of a big ACL and its rules are not both held in full.
pub fn lower<'a>(
    cx: &Cx<'a>,
    mut cfg: Config<'a>,
    findings: &mut Vec<Finding>,
    runs: Option<usize>,
) -> RuleGraph {
    let acl_lines = std::mem::take(&mut cfg.acl_lines);
    let cfg = &cfg;
    let mut graph = RuleGraph::new(Dialect::Asa, cx.file, Family::Both);
    let mut lw = Lowerer::new(cfg);
    let levels = lw.lower_interfaces(&mut graph);
    lw.check_groups();
    let mut acls = collect_acls(acl_lines);
    let bindings = lw.collect_bindings(&graph, &acls);
    let start = Span::new(cx.file, 0, 0);

    // Lower every ACL, bound or not: unbound ones (crypto maps, NAT, VPN filters) are
    // not traffic filters, but their undefined references are still errors. Their
    // unmodelled constructs are not noted: they filter no traffic.
    let noting: Vec<bool> = acls.iter().map(|a| bindings.binds(a.name)).collect();
    let runs = runs.unwrap_or_else(|| {
        let entries: usize = acls.iter().map(|a| a.aces.len()).sum();
        if entries >= PARALLEL_FROM_ENTRIES {
            rayon::current_num_threads() * RUNS_PER_CORE
        } else {
            1
        }
    });
    let mut lowered = LoweredAcls::default();
    let rules = lw.lower_acls(&mut acls, &noting, runs);
    for (acl, rules) in acls.iter().zip(rules) {
        lowered.rules.insert(acl.name, rules);
    }

    lowered.count_uses(&bindings);

    let first_group = cfg.access_groups.first().map(|g| g.span).unwrap_or(start);
    let global_chain = bindings.global.map(|ag| {
        let tail = implicit_deny(ag);
        lw.add_acl_chain(&mut graph, &acls, &mut lowered, ag, tail)
    });

    let mut ingress = Vec::new();
    for (ifname, ag) in &bindings.ins {
        let tail = match (global_chain, bindings.global) {
            (Some(g), Some(gag)) => Rule {
                conds: Vec::new(),
                action: Action::Goto(g),
                span: gag.span,
                action_span: gag.acl_span,
                comment: Some(format!(
                    "after access-list `{}`, the global access-list `{}` applies",
                    ag.acl, gag.acl
                )),
            },
            _ => implicit_deny(ag),
        };
        let chain = lw.add_acl_chain(&mut graph, &acls, &mut lowered, ag, tail);
        ingress.push(Rule {
            conds: vec![iface_cond(ifname, iface_span(ag), true)],
            action: Action::Goto(chain),
            span: ag.span,
            action_span: ag.acl_span,
            comment: None,
        });
    }
    if let (Some(chain), Some(gag)) = (global_chain, bindings.global) {
        ingress.push(Rule {
            conds: Vec::new(),
            action: Action::Goto(chain),
            span: gag.span,
            action_span: gag.acl_span,
            comment: None,
        });
    } else {
        let with_acl: HashSet<&str> = bindings.ins.iter().map(|(n, _)| *n).collect();
        ingress.extend(security_level_rules(cfg, &levels, &with_acl));
    }
    let ingress_id = graph.add_chain(Chain {
        name: "ingress".into(),
        rules: ingress,
        default: Some(Default {
            action: Action::Drop,
            span: start,
            reason: "no rule applies".into(),
        }),
        span: first_group,
    });

    let mut egress = Vec::new();
    for (ifname, ag) in &bindings.outs {
        let tail = implicit_deny(ag);
        let chain = lw.add_acl_chain(&mut graph, &acls, &mut lowered, ag, tail);
        egress.push(Rule {
            conds: vec![iface_cond(ifname, iface_span(ag), false)],
            action: Action::Goto(chain),
            span: ag.span,
            action_span: ag.acl_span,
            comment: None,
        });
    }
    let egress_id = graph.add_chain(Chain {
        name: "egress".into(),
        rules: egress,
        default: Some(Default {
            action: Action::Accept,
            span: start,
            reason: "no outbound access-list".into(),
        }),
        span: bindings
            .outs
            .first()
            .map(|(_, ag)| ag.span)
            .unwrap_or(start),
    });
    let nat = {
        let own: HashMap<&str, Option<IntervalSet>> = lw.own.clone();
        let mut objects = |name: &str| lw.net_object(name).and_then(Result::ok);
        let mut nat_findings = Vec::new();
        let rules = super::nat::lower_nats(
            &cfg.nats,
            &mut objects,
            |iface| own.get(iface).cloned().flatten(),
            &mut nat_findings,
        );
        findings.append(&mut nat_findings);
        rules
    };
    let nat_chain = |graph: &mut RuleGraph, name: &str, rules: Vec<Rule>| {
        let span = rules.first().map_or(start, |r| r.span);
        graph.add_chain(Chain {
            name: name.into(),
            rules,
            default: Some(Default {
                action: Action::Accept,
                span,
                reason: "no static NAT applies".into(),
            }),
            span,
        })
    };
    if !nat.before_acl.is_empty() {
        let id = nat_chain(&mut graph, "nat", nat.before_acl);
        graph.stages.push(Stage {
            name: "untranslate (object NAT)".into(),
            chain: id,
        });
    }
    graph.stages.push(Stage {
        name: "ingress".into(),
        chain: ingress_id,
    });
    if !nat.after_acl.is_empty() {
        let id = nat_chain(&mut graph, "static", nat.after_acl);
        graph.stages.push(Stage {
            name: "untranslate (static)".into(),
            chain: id,
        });
    }
    graph.stages.push(Stage {
        name: "egress".into(),
        chain: egress_id,
    });
    findings.append(&mut lw.findings);
    findings.extend(lw.notes.into_findings());
    graph.port_literals = std::mem::take(&mut lw.literals);
    graph
}

/// An interface with the level the security-level rules use.
#[derive(Clone, Debug)]
struct Level<'a> {
    name: &'a str,
    level: u8,
    span: Span,
}

/// One access-list: its entries in order (taken when lowered), and whether it is
/// standard.
struct Acl<'a> {
    name: &'a str,
    /// The AST's boxes, moved rather than copied (an entry is ~450 bytes), each freed
    /// once lowered.
    #[allow(clippy::vec_box)]
    aces: Vec<Box<Ace<'a>>>,
    standard: bool,
    span: Span,
}

/// Access-lists in order of first appearance.
fn collect_acls(lines: Vec<AclLine<'_>>) -> Vec<Acl<'_>> {
    let mut out: Vec<Acl<'_>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for line in lines {
        let (name, span, ace, standard) = match line {
            AclLine::Ace(a) => (a.acl, a.span, Some(a), false),
            AclLine::Standard { acl, span } => (acl, span, None, true),
            AclLine::Remark { .. } | AclLine::Skipped => continue,
        };
        let idx = *index.entry(name).or_insert_with(|| {
            out.push(Acl {
                name,
                aces: Vec::new(),
                standard,
                span,
            });
            out.len() - 1
        });
        if let Some(acl) = out.get_mut(idx)
            && let Some(a) = ace
        {
            acl.aces.push(a);
            acl.standard = false;
        }
    }
    out
}

/// The access-groups that take effect: the last binding per interface and direction
/// wins, as re-entering `access-group` replaces the old one on the device.
struct Bindings<'c, 'a> {
    ins: Vec<(&'a str, &'c AccessGroup<'a>)>,
    outs: Vec<(&'a str, &'c AccessGroup<'a>)>,
    global: Option<&'c AccessGroup<'a>>,
}

/// The lowered rules of every ACL, handed out to the chains that bind them: moved to the
/// last binding and cloned only for earlier ones (an ACL bound to several interfaces),
/// so a 100k-entry config does not copy every rule once more.
#[derive(Default)]
struct LoweredAcls<'a> {
    rules: HashMap<&'a str, Vec<Rule>>,
    /// Bindings not yet handed their rules, per ACL.
    uses: HashMap<&'a str, usize>,
}

impl<'a> LoweredAcls<'a> {
    fn count_uses(&mut self, bindings: &Bindings<'_, 'a>) {
        let bound = bindings
            .ins
            .iter()
            .chain(&bindings.outs)
            .map(|(_, g)| g.acl);
        for acl in bound.chain(bindings.global.map(|g| g.acl)) {
            *self.uses.entry(acl).or_default() += 1;
        }
    }

    fn take(&mut self, acl: &str) -> Vec<Rule> {
        let left = self.uses.get_mut(acl).map(|n| {
            *n = n.saturating_sub(1);
            *n
        });
        match left {
            Some(0) => self.rules.remove(acl).unwrap_or_default(),
            // Room for the tail rules `add_acl_chain` pushes.
            _ => self.rules.get(acl).map_or_else(Vec::new, |r| {
                let mut copy = Vec::with_capacity(r.len() + 2);
                copy.extend_from_slice(r);
                copy
            }),
        }
    }
}

impl Bindings<'_, '_> {
    fn binds(&self, acl: &str) -> bool {
        self.ins.iter().chain(&self.outs).any(|(_, g)| g.acl == acl)
            || self.global.is_some_and(|g| g.acl == acl)
    }
}

fn iface_span(ag: &AccessGroup<'_>) -> Span {
    match ag.bind {
        Bind::In(_, s) | Bind::Out(_, s) => s,
        Bind::Global => ag.span,
    }
}

fn iface_cond(name: &str, span: Span, inbound: bool) -> Cond {
    let m = IfaceMatch {
        patterns: vec![IfacePattern {
            name: name.to_string(),
            prefix: false,
        }],
        negated: false,
    };
    Cond {
        kind: if inbound {
            CondKind::InIface(m)
        } else {
            CondKind::OutIface(m)
        },
        span,
    }
}

/// The implicit deny at the end of an ACL, spanning the access-group line that
/// applies it.
fn implicit_deny(ag: &AccessGroup<'_>) -> Rule {
    Rule {
        conds: Vec::new(),
        action: Action::Drop,
        span: ag.span,
        action_span: ag.span,
        comment: Some(format!(
            "implicit deny at the end of access-list `{}`",
            ag.acl
        )),
    }
}

/// Security levels for interfaces without an inbound ACL (no global ACL present).
fn security_level_rules(
    cfg: &Config<'_>,
    levels: &[Level<'_>],
    with_acl: &HashSet<&str>,
) -> Vec<Rule> {
    let mut out = Vec::new();
    for x in levels.iter().filter(|l| !with_acl.contains(l.name)) {
        for y in levels.iter().filter(|y| y.name != x.name) {
            let permitted =
                x.level > y.level || (x.level == y.level && cfg.inter_interface.is_some());
            if !permitted {
                continue;
            }
            let mut comment = format!(
                "security level {} (`{}`) to {} (`{}`)",
                x.level, x.name, y.level, y.name
            );
            if x.level == y.level {
                comment.push_str(", same-security-traffic permit inter-interface");
            }
            out.push(Rule {
                conds: vec![
                    iface_cond(x.name, x.span, true),
                    iface_cond(y.name, y.span, false),
                ],
                action: Action::Accept,
                span: x.span,
                action_span: x.span,
                comment: Some(comment),
            });
        }
        if let Some(intra) = cfg.intra_interface {
            out.push(Rule {
                conds: vec![
                    iface_cond(x.name, x.span, true),
                    iface_cond(x.name, x.span, false),
                ],
                action: Action::Accept,
                span: intra,
                action_span: intra,
                comment: Some("same-security-traffic permit intra-interface".into()),
            });
        }
        out.push(Rule {
            conds: vec![iface_cond(x.name, x.span, true)],
            action: Action::Drop,
            span: x.span,
            action_span: x.span,
            comment: Some("lower to higher security level without an access-list".into()),
        });
    }
    out
}

/// The zone a `nameif` suggests; the security level decides when the name does not.
fn zone_hint(name: &str, level: u8) -> Zone {
    let n = name.to_ascii_lowercase();
    match n.as_str() {
        "inside" | "internal" | "lan" | "corp" | "trust" => return Zone::Internal,
        "outside" | "wan" | "internet" | "public" | "untrust" | "external" => return Zone::Public,
        "perimeter" => return Zone::Perimeter,
        _ => {}
    }
    if n.starts_with("dmz") {
        return Zone::Perimeter;
    }
    match level {
        0 => Zone::Public,
        100 => Zone::Internal,
        _ => Zone::Perimeter,
    }
}

/// One alternative of an address or port position: a set (`None` = no restriction),
/// or an unknown part that may match.
#[derive(Clone, Debug)]
struct Alt {
    set: Option<IntervalSet>,
    unknown: Option<String>,
    span: Span,
}

impl Alt {
    fn any(span: Span) -> Alt {
        Alt {
            set: None,
            unknown: None,
            span,
        }
    }
    fn set(set: IntervalSet, span: Span) -> Alt {
        Alt {
            set: Some(set),
            unknown: None,
            span,
        }
    }
    fn unknown(text: String, span: Span) -> Alt {
        Alt {
            set: None,
            unknown: Some(text),
            span,
        }
    }
}

/// A set that is partly known: the known union and the texts of the unknown parts.
#[derive(Clone, Default)]
struct Partial {
    set: IntervalSet,
    unknown: Vec<String>,
}

impl Partial {
    /// The alternatives: the known part (when there is one, or nothing is unknown)
    /// and one "may match" alternative for the unknown parts.
    fn alts(&self, span: Span) -> Vec<Alt> {
        let mut out = Vec::with_capacity(2);
        if !self.set.is_empty() || self.unknown.is_empty() {
            out.push(Alt::set(self.set.clone(), span));
        }
        if !self.unknown.is_empty() {
            out.push(Alt::unknown(self.unknown.join(", "), span));
        }
        out
    }
}

/// One service cube: protocol and ports, and what about it is unknown.
#[derive(Clone, Debug)]
struct Cube {
    proto: Option<IntervalSet>,
    src: Option<IntervalSet>,
    dst: Option<IntervalSet>,
    unknown: Vec<String>,
    span: Span,
}

impl Cube {
    fn proto(proto: Option<u8>, span: Span) -> Cube {
        Cube {
            proto: proto.map(|p| IntervalSet::single(u128::from(p))),
            src: None,
            dst: None,
            unknown: Vec::new(),
            span,
        }
    }
    fn unknown(text: String, span: Span) -> Cube {
        Cube {
            unknown: vec![text],
            ..Cube::proto(None, span)
        }
    }
}

/// The ports a port condition matches, exactly (`neq` is the complement).
fn port_set(m: &PortMatch<'_>) -> IntervalSet {
    let v = u128::from(m.lo.value);
    match m.op {
        PortOp::Eq => IntervalSet::single(v),
        PortOp::Neq => IntervalSet::single(v).complement(PORT_MAX),
        PortOp::Lt if v == 0 => IntervalSet::empty(),
        PortOp::Lt => IntervalSet::range(0, v - 1),
        PortOp::Gt => IntervalSet::range(v + 1, PORT_MAX),
        PortOp::Range => IntervalSet::range(v, m.hi.map_or(v, |h| u128::from(h.value))),
    }
}

fn intersect(a: Option<IntervalSet>, b: Option<IntervalSet>) -> Option<IntervalSet> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.intersect(&b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The conditions of one rule: a cube with one alternative per address and port
/// position, plus the ACE-wide unknowns (ICMP type, time-range). Takes its parts by
/// value so an ACE that lowers to one rule moves its sets instead of copying them.
fn build_conds(cube: Cube, s: Alt, sp: Alt, d: Alt, dp: Alt, extra: Vec<Cond>) -> Vec<Cond> {
    let port_span = |alt: &Alt| {
        if alt.set.is_some() {
            alt.span
        } else {
            cube.span
        }
    };
    let (sp_span, dp_span) = (port_span(&sp), port_span(&dp));
    let src_port = intersect(cube.src, sp.set);
    let dst_port = intersect(cube.dst, dp.set);
    let alt_unknowns = [&s.unknown, &sp.unknown, &d.unknown, &dp.unknown]
        .iter()
        .filter(|u| u.is_some())
        .count();
    let known = [
        cube.proto.is_some(),
        s.set.is_some(),
        src_port.is_some(),
        d.set.is_some(),
        dst_port.is_some(),
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    // Exactly sized: the graph keeps every rule's conditions to the end of the run.
    let mut conds = Vec::with_capacity(known + cube.unknown.len() + alt_unknowns + extra.len());
    let mut push = |kind: CondKind, span: Span| conds.push(Cond { kind, span });
    if let Some(p) = cube.proto {
        push(CondKind::Protocol(p), cube.span);
    }
    if let Some(a) = s.set {
        push(CondKind::SrcAddr(a), s.span);
    }
    if let Some(p) = src_port {
        push(CondKind::SrcPort(p), sp_span);
    }
    if let Some(a) = d.set {
        push(CondKind::DstAddr(a), d.span);
    }
    if let Some(p) = dst_port {
        push(CondKind::DstPort(p), dp_span);
    }
    for t in cube.unknown {
        push(CondKind::Unknown(t), cube.span);
    }
    for (unknown, span) in [
        (s.unknown, s.span),
        (sp.unknown, sp.span),
        (d.unknown, d.span),
        (dp.unknown, dp.span),
    ] {
        if let Some(t) = unknown {
            push(CondKind::Unknown(t), span);
        }
    }
    conds.extend(extra);
    conds
}

/// The cubes of one service definition (`tcp-udp` gives two).
fn service_cubes(s: &Service<'_>, span: Span) -> Vec<Cube> {
    let protos: Vec<Option<u8>> = match s.proto {
        SvcProto::TcpUdp => vec![Some(6), Some(17)],
        SvcProto::Proto(ProtoName::Any) => vec![None],
        SvcProto::Proto(ProtoName::Num(n)) => vec![Some(n)],
    };
    protos
        .into_iter()
        .map(|p| {
            let mut c = Cube::proto(p, span);
            c.src = s.src.as_ref().map(port_set);
            c.dst = s.dst.as_ref().map(port_set);
            if let Some((t, _)) = s.icmp {
                c.unknown.push(format!("icmp type `{t}`"));
            }
            c
        })
        .collect()
}

/// A built-in service object name some configs use without defining it
/// (`object icmp-echo`, `object ospf`).
fn builtin_service(name: &str, span: Span) -> Option<Cube> {
    if let Some(t) = name.strip_prefix("icmp-") {
        ports::icmp_type_by_name(t, false)?;
        let mut c = Cube::proto(Some(1), span);
        c.unknown.push(format!("icmp type `{t}`"));
        return Some(c);
    }
    match ports::protocol_by_name(name)? {
        ProtoName::Any => Some(Cube::proto(None, span)),
        ProtoName::Num(n) if name.parse::<u8>().is_err() => Some(Cube::proto(Some(n), span)),
        ProtoName::Num(_) => None,
    }
}

/// What one `unknown-syntax` note of the entries is about.
#[derive(Debug)]
enum NoteSubject {
    /// ICMP types, all in one note: the names in order of first use.
    IcmpTypes(Vec<String>),
    /// Any other construct, by the text of its condition (`time-range `WORK``, …).
    Text(String),
}

/// One counted note: its subject, the first entry's span, how many entries use it.
#[derive(Debug)]
struct Note {
    subject: NoteSubject,
    span: Span,
    entries: usize,
    /// The entry that last counted it, so an entry counts once however many of its
    /// rules carry the condition.
    last_entry: usize,
}

/// Notes about constructs mislint does not model, one per construct with a count, at
/// its first use: a 100k-entry ACL with thousands of `echo` entries gets one note, not
/// thousands. Each rule keeps its own `CondKind::Unknown`.
#[derive(Debug, Default)]
struct Notes {
    /// Note index by condition text (ICMP types are under `icmp`).
    index: HashMap<String, usize>,
    icmp: Option<usize>,
    notes: Vec<Note>,
    /// The number of the entry being lowered (from 1).
    entry: usize,
}

/// How many ICMP type names the note lists before "and N more".
const LISTED_ICMP_TYPES: usize = 5;

impl Notes {
    /// Starts counting the next entry.
    fn start_entry(&mut self) {
        self.entry += 1;
    }

    /// Counts an unknown condition of the current entry.
    fn add(&mut self, text: &str, span: Span) {
        let icmp_type = text
            .strip_prefix("icmp type `")
            .and_then(|t| t.strip_suffix('`'));
        let found = match icmp_type {
            Some(_) => self.icmp,
            None => self.index.get(text).copied(),
        };
        let entry = self.entry;
        let Some(note) = found.and_then(|i| self.notes.get_mut(i)) else {
            let subject = match icmp_type {
                Some(t) => NoteSubject::IcmpTypes(vec![t.to_string()]),
                None => NoteSubject::Text(text.to_string()),
            };
            self.register(Note {
                subject,
                span,
                entries: 1,
                last_entry: entry,
            });
            return;
        };
        if let (NoteSubject::IcmpTypes(names), Some(t)) = (&mut note.subject, icmp_type)
            && !names.iter().any(|n| n == t)
        {
            names.push(t.to_string());
        }
        if note.last_entry != entry {
            note.last_entry = entry;
            note.entries += 1;
        }
    }

    /// Takes in the notes of the entries after this one's (of a later run): a note of
    /// both keeps this one's first use and adds up the entries.
    fn absorb(&mut self, later: Notes) {
        for note in later.notes {
            let mine = match &note.subject {
                NoteSubject::IcmpTypes(_) => self.icmp,
                NoteSubject::Text(t) => self.index.get(t).copied(),
            };
            match mine.and_then(|i| self.notes.get_mut(i)) {
                Some(mine) => {
                    mine.entries += note.entries;
                    if let (NoteSubject::IcmpTypes(names), NoteSubject::IcmpTypes(more)) =
                        (&mut mine.subject, note.subject)
                    {
                        for t in more {
                            if !names.contains(&t) {
                                names.push(t);
                            }
                        }
                    }
                }
                None => self.register(note),
            }
        }
        self.entry += later.entry;
    }

    /// Adds a note of a subject not noted before, and finds it by its subject from now.
    fn register(&mut self, note: Note) {
        match &note.subject {
            NoteSubject::IcmpTypes(_) => self.icmp = Some(self.notes.len()),
            NoteSubject::Text(t) => {
                self.index.insert(t.clone(), self.notes.len());
            }
        }
        self.notes.push(note);
    }

    fn into_findings(self) -> impl Iterator<Item = Finding> {
        self.notes.into_iter().map(|n| {
            Finding::new(UNKNOWN_SYNTAX, Severity::Note, n.span, n.message())
                .maybe()
                .with_label("may match")
        })
    }
}

impl Note {
    fn message(&self) -> String {
        let (subject, pronoun) = match &self.subject {
            NoteSubject::Text(t) => (t.clone(), "it"),
            NoteSubject::IcmpTypes(names) => match names.as_slice() {
                [one] => (format!("icmp type `{one}`"), "it"),
                _ => {
                    let mut list: Vec<String> = names
                        .iter()
                        .take(LISTED_ICMP_TYPES)
                        .map(|n| format!("`{n}`"))
                        .collect();
                    let more = names.len().saturating_sub(LISTED_ICMP_TYPES);
                    if more > 0 {
                        list.push(format!("{more} more"));
                    }
                    (format!("icmp types ({})", list.join(", ")), "them")
                }
            },
        };
        let n = self.entries;
        let (entries, verb, ones) = if n == 1 {
            ("entry", "is", "one")
        } else {
            ("entries", "are", "ones")
        };
        format!(
            "mislint does not model {subject}: {n} {entries} using {pronoun} {verb} treated as {ones} that may match"
        )
    }
}

/// Pieces of ACLs: an ACL's index and a run of its entries.
type Pieces<'a> = Vec<(usize, Vec<Box<Ace<'a>>>)>;

/// Takes every ACL's entries and cuts them, in order, into `runs` runs of about equal
/// length; a run may hold the end of one ACL and the start of the next.
fn cut_into_runs<'a>(acls: &mut [Acl<'a>], runs: usize) -> Vec<Pieces<'a>> {
    let entries: usize = acls.iter().map(|a| a.aces.len()).sum();
    let per_run = entries.div_ceil(runs.max(1)).max(1);
    let mut cut: Vec<Pieces<'a>> = vec![Vec::new()];
    let mut room = per_run;
    for (i, acl) in acls.iter_mut().enumerate() {
        let mut aces = std::mem::take(&mut acl.aces).into_iter();
        while aces.len() > 0 {
            if room == 0 {
                cut.push(Vec::new());
                room = per_run;
            }
            let piece: Vec<Box<Ace<'a>>> = aces.by_ref().take(room).collect();
            room -= piece.len();
            if let Some(run) = cut.last_mut() {
                run.push((i, piece));
            }
        }
    }
    cut
}

/// A run's lowerer after its entries, and each of its ACL pieces' rules.
type LoweredRun<'c, 'a> = (Lowerer<'c, 'a>, Vec<(usize, Vec<Rule>)>);

struct Lowerer<'c, 'a> {
    cfg: &'c Config<'a>,
    findings: Vec<Finding>,
    /// Spans (and texts) already reported, so a reference is reported once.
    reported: HashSet<(u32, u32, String)>,
    /// Each nameif's own addresses, `None` when it has no static address.
    own: HashMap<&'a str, Option<IntervalSet>>,
    /// Port names written in port positions, for findings about what they mean.
    literals: Vec<PortLiteral>,
    /// The name tokens already in `literals`.
    literal_spans: HashSet<Span>,
    /// Network object-groups already flattened, by name. A big ACL names the same group
    /// in thousands of entries; flattening it once keeps lowering linear in the entries.
    /// Safe to reuse: flattening reports only undefined references, once per span.
    net_groups: HashMap<&'a str, Partial>,
    /// Port groups already flattened, by name (their literals are recorded on the first
    /// flattening; the same spans would be skipped later anyway).
    port_groups: HashMap<&'a str, Partial>,
    /// The service cubes of protocol and service groups, by name, with a placeholder
    /// span that each use replaces with its own. Building them reports nothing.
    proto_groups: HashMap<&'a str, Vec<Cube>>,
    /// The `unknown-syntax` notes of the entries, counted per construct.
    notes: Notes,
    /// False while lowering an ACL that no access-group binds: its unmodelled
    /// constructs filter no traffic, so they are not noted.
    noting: bool,
    /// How many rules the rest of the ACL being lowered will likely add, at the rate
    /// of its entries so far.
    rules_left: usize,
}

impl<'c, 'a> Lowerer<'c, 'a> {
    /// A lowerer of `cfg` that has lowered nothing yet.
    fn new(cfg: &'c Config<'a>) -> Lowerer<'c, 'a> {
        Lowerer {
            cfg,
            findings: Vec::new(),
            reported: HashSet::new(),
            own: HashMap::new(),
            literals: Vec::new(),
            literal_spans: HashSet::new(),
            net_groups: HashMap::new(),
            port_groups: HashMap::new(),
            proto_groups: HashMap::new(),
            notes: Notes::default(),
            noting: true,
            rules_left: 0,
        }
    }

    /// A lowerer for a run of entries: the same config and interfaces, nothing
    /// reported, noted or flattened yet.
    fn fresh_copy(&self) -> Lowerer<'c, 'a> {
        Lowerer {
            own: self.own.clone(),
            ..Lowerer::new(self.cfg)
        }
    }

    /// Takes in what a copy found lowering the entries after all this one lowered:
    /// findings and port names not yet reported, in order, and its notes. Its
    /// flattened groups are dropped: nothing after the entries reads them.
    fn absorb(&mut self, later: Lowerer<'c, 'a>) {
        for f in later.findings {
            let span = f.primary.span;
            if self
                .reported
                .insert((span.start, span.end, f.message.clone()))
            {
                self.findings.push(f);
            }
        }
        for l in later.literals {
            if self.literal_spans.insert(l.span) {
                self.literals.push(l);
            }
        }
        self.notes.absorb(later.notes);
    }

    /// Lowers every ACL's entries, each ACL's rules in entry order; `noting` says which
    /// ACLs' unmodelled constructs are noted. In more than one run, the entries are cut
    /// into `runs` runs of about equal length (a run may hold the end of one ACL and
    /// the start of the next), each lowered by a copy on any core and taken in after
    /// the runs before it, so findings, notes and port names come out as from one run.
    fn lower_acls(&mut self, acls: &mut [Acl<'a>], noting: &[bool], runs: usize) -> Vec<Vec<Rule>> {
        use rayon::prelude::*;
        if runs <= 1 {
            let mut out = Vec::with_capacity(acls.len());
            for (acl, &noting) in acls.iter_mut().zip(noting) {
                out.push(self.lower_entries(std::mem::take(&mut acl.aces), noting));
            }
            return out;
        }
        let cut = cut_into_runs(acls, runs);
        let copies: Vec<Lowerer<'c, 'a>> = cut.iter().map(|_| self.fresh_copy()).collect();
        let done: Vec<LoweredRun<'c, 'a>> = cut
            .into_par_iter()
            .zip(copies)
            .map(|(run, mut lw)| {
                let rules = run
                    .into_iter()
                    .map(|(i, aces)| {
                        let noting = noting.get(i).copied().unwrap_or(false);
                        (i, lw.lower_entries(aces, noting))
                    })
                    .collect();
                (lw, rules)
            })
            .collect();
        let mut out: Vec<Vec<Rule>> = acls.iter().map(|_| Vec::new()).collect();
        for (lw, pieces) in done {
            self.absorb(lw);
            for (i, mut rules) in pieces {
                if let Some(acl) = out.get_mut(i) {
                    if acl.is_empty() {
                        *acl = rules;
                    } else {
                        // Room for this piece and the chain's tail rules, not double.
                        acl.reserve_exact(rules.len() + 2);
                        acl.append(&mut rules);
                    }
                }
            }
        }
        out
    }

    /// Lowers a run of one ACL's entries, freeing each once lowered.
    #[allow(clippy::vec_box)] // The AST's boxes, moved rather than copied (see `Acl`).
    fn lower_entries(&mut self, aces: Vec<Box<Ace<'a>>>, noting: bool) -> Vec<Rule> {
        self.noting = noting;
        // Most entries lower to one rule; the chain adds a tail rule (and maybe one
        // for a standard ACL), so the vector is not regrown for those.
        let total = aces.len();
        let mut rules: Vec<Rule> = Vec::with_capacity(total + 2);
        for (done, mut ace) in aces.into_iter().enumerate() {
            if ace.inactive {
                continue;
            }
            self.rules_left = total.saturating_sub(done) * rules.len().max(done) / done.max(1);
            let remark = ace.remark.take();
            self.lower_ace(&ace, remark, &mut rules);
        }
        rules
    }

    fn undefined(&mut self, span: Span, message: String) {
        if self
            .reported
            .insert((span.start, span.end, message.clone()))
        {
            self.findings.push(Finding::new(
                UNDEFINED_REFERENCE,
                Severity::Error,
                span,
                message,
            ));
        }
    }

    fn note(&mut self, span: Span, text: &str) {
        let message =
            format!("mislint does not model {text}: the rule is treated as one that may match");
        if self
            .reported
            .insert((span.start, span.end, message.clone()))
        {
            self.findings.push(
                Finding::new(UNKNOWN_SYNTAX, Severity::Note, span, message)
                    .maybe()
                    .with_label("may match"),
            );
        }
    }

    /// An address alias resolved, or why not.
    fn resolve(&mut self, a: &Addr<'a>) -> Result<IpAddr, String> {
        match a {
            Addr::Ip(ip) => Ok(*ip),
            Addr::Name(n, span) => match self.cfg.names.get(n) {
                Some(d) => Ok(d.addr),
                None => {
                    self.undefined(*span, format!("name `{n}` is not defined"));
                    Err(format!("undefined name `{n}`"))
                }
            },
        }
    }

    /// The addresses of a network value, or the text of what is unknown about it.
    fn net_value(&mut self, v: &NetValue<'a>) -> Result<IntervalSet, String> {
        match v {
            NetValue::Host(a) => {
                let ip = self.resolve(a)?;
                Ok(IntervalSet::single(sets::addr::ip(ip)))
            }
            NetValue::Mask(a, m) => {
                let ip = self.resolve(a)?;
                let len = sets::addr::v4_mask_len(*m).unwrap_or(32);
                match ip {
                    IpAddr::V4(_) => {
                        sets::addr::cidr(ip, len).ok_or_else(|| "a bad netmask".into())
                    }
                    IpAddr::V6(_) => Err(format!("IPv6 address `{ip}` with an IPv4 netmask")),
                }
            }
            NetValue::Prefix(ip, len) => {
                sets::addr::cidr(*ip, *len).ok_or_else(|| format!("prefix `{ip}/{len}`"))
            }
            NetValue::Range(lo, hi) => {
                sets::addr::span(*lo, *hi).ok_or_else(|| "an address range".into())
            }
            NetValue::Fqdn(name) => Err(format!("fqdn `{name}`")),
        }
    }

    fn lower_interfaces(&mut self, graph: &mut RuleGraph) -> Vec<Level<'a>> {
        let mut levels: Vec<Level<'a>> = Vec::new();
        for d in &self.cfg.interfaces {
            let Some((name, nameif_span)) = d.nameif else {
                continue;
            };
            // Without `security-level`, the ASA gives `inside` 100 and any other name 0.
            let (level, level_span) = d.level.unwrap_or(if name.eq_ignore_ascii_case("inside") {
                (100, nameif_span)
            } else {
                (0, nameif_span)
            });
            let mut networks = IntervalSet::empty();
            let mut own = IntervalSet::empty();
            let mut has_addr = false;
            if let Some((a, m, _)) = &d.address
                && let Ok(ip) = self.resolve(a)
            {
                let len = sets::addr::v4_mask_len(*m).unwrap_or(32);
                if let Some(net) = sets::addr::cidr(ip, len) {
                    networks = networks.union(&net);
                }
                own = own.union(&IntervalSet::single(sets::addr::ip(ip)));
                has_addr = true;
            }
            for (a, len, _) in &d.v6 {
                let ip = IpAddr::V6(*a);
                if let Some(net) = sets::addr::cidr(ip, *len) {
                    networks = networks.union(&net);
                }
                own = own.union(&IntervalSet::single(sets::addr::ip(ip)));
                has_addr = true;
            }
            self.own.insert(name, has_addr.then(|| own.clone()));
            levels.retain(|l| l.name != name);
            levels.push(Level {
                name,
                level,
                span: level_span,
            });
            graph.interfaces.retain(|i| i.name != name);
            graph.interfaces.push(Interface {
                name: name.to_string(),
                description: d.description.map(str::to_string),
                zone_hint: Some(zone_hint(name, level)),
                security_level: Some(level),
                networks,
                own_addresses: own,
                span: Some(d.span),
            });
        }
        levels
    }

    /// Reports undefined members and cycles of object-groups, walking the group graph
    /// iteratively (10,000-deep nesting is fine) with white/grey/black marks.
    fn check_groups(&mut self) {
        let groups = &self.cfg.groups;
        let mut mark: HashMap<&str, u8> = HashMap::new();
        // In name order, so which member of a cycle is reported does not depend on the
        // hash map's order.
        let mut roots: Vec<&str> = groups.keys().copied().collect();
        roots.sort_unstable();
        for root in roots {
            if mark.get(root).copied().unwrap_or(0) != 0 {
                continue;
            }
            mark.insert(root, 1);
            let mut stack: Vec<(&str, usize)> = vec![(root, 0)];
            while let Some(top) = stack.last_mut() {
                let (name, idx) = *top;
                let member = groups.get(name).and_then(|g| g.members.get(idx)).copied();
                let Some(member) = member else {
                    mark.insert(name, 2);
                    stack.pop();
                    continue;
                };
                top.1 += 1;
                match member {
                    Member::Group(n, span) => match mark.get(n).copied() {
                        _ if !groups.contains_key(n) => self.undefined(
                            span,
                            format!("object-group `{name}` includes `{n}`, which is not defined"),
                        ),
                        None | Some(0) => {
                            mark.insert(n, 1);
                            stack.push((n, 0));
                        }
                        Some(1) => {
                            let message = format!(
                                "object-group `{n}` includes itself (through `{name}`); the device refuses this"
                            );
                            if self
                                .reported
                                .insert((span.start, span.end, message.clone()))
                            {
                                self.findings.push(Finding::new(
                                    REFERENCE_CYCLE,
                                    Severity::Error,
                                    span,
                                    message,
                                ));
                            }
                        }
                        Some(_) => {}
                    },
                    Member::NetObject(n, span) if !self.cfg.net_objects.contains_key(n) => {
                        self.undefined(span, format!("network object `{n}` is not defined"));
                    }
                    Member::SvcObject(n, span)
                        if !self.cfg.svc_objects.contains_key(n)
                            && builtin_service(n, span).is_none() =>
                    {
                        self.undefined(span, format!("service object `{n}` is not defined"));
                    }
                    Member::Net(v, _) => {
                        // Report undefined `name` aliases in network-objects.
                        let _ = self.net_value(&v);
                    }
                    _ => {}
                }
            }
        }
    }

    /// The leaf members of a group and its nested groups (each group visited once, so
    /// cycles end), plus the names of undefined nested groups. `None` if the group
    /// itself is undefined.
    fn flatten(&self, name: &str) -> Option<(Vec<Member<'a>>, Vec<&'a str>)> {
        let (&root, _) = self.cfg.groups.get_key_value(name)?;
        let mut leaves = Vec::new();
        let mut undefined = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        seen.insert(root);
        let mut stack = vec![root];
        while let Some(g) = stack.pop() {
            let Some(group) = self.cfg.groups.get(g) else {
                undefined.push(g);
                continue;
            };
            for m in &group.members {
                match *m {
                    Member::Group(n, _) => {
                        if seen.insert(n) {
                            stack.push(n);
                        }
                    }
                    other => leaves.push(other),
                }
            }
        }
        Some((leaves, undefined))
    }

    fn net_object(&mut self, name: &str) -> Option<Result<IntervalSet, String>> {
        let obj = self.cfg.net_objects.get(name)?;
        Some(match &obj.value {
            Some((v, _)) => self
                .net_value(v)
                .map_err(|e| format!("network object `{name}`: {e}")),
            None => Ok(IntervalSet::empty()),
        })
    }

    fn endpoint(&mut self, e: &Endpoint<'a>) -> Vec<Alt> {
        let span = e.span;
        match e.spec {
            AddrSpec::Any => vec![Alt::any(span)],
            AddrSpec::Any4 => vec![Alt::set(sets::addr::v4_space(), span)],
            AddrSpec::Any6 => vec![Alt::set(sets::addr::v6_space(), span)],
            AddrSpec::Net(v) => match self.net_value(&v) {
                Ok(s) => vec![Alt::set(s, span)],
                Err(t) => vec![Alt::unknown(t, span)],
            },
            AddrSpec::Object(n) => match self.net_object(n) {
                Some(Ok(s)) => vec![Alt::set(s, span)],
                Some(Err(t)) => vec![Alt::unknown(t, span)],
                None => {
                    self.undefined(span, format!("network object `{n}` is not defined"));
                    vec![Alt::unknown(
                        format!("undefined network object `{n}`"),
                        span,
                    )]
                }
            },
            AddrSpec::Group(n) => self.network_group(n, span),
            AddrSpec::Interface(n) => match self.own.get(n).cloned() {
                Some(Some(own)) => vec![Alt::set(own, span)],
                Some(None) => vec![Alt::unknown(
                    format!("the address of interface `{n}` (not static)"),
                    span,
                )],
                None => {
                    self.undefined(
                        span,
                        format!("interface `{n}` is not defined by any `nameif`"),
                    );
                    vec![Alt::unknown(format!("undefined interface `{n}`"), span)]
                }
            },
        }
    }

    fn network_group(&mut self, name: &'a str, span: Span) -> Vec<Alt> {
        if let Some(p) = self.net_groups.get(name) {
            return p.alts(span);
        }
        let Some((leaves, undefined)) = self.flatten(name) else {
            self.undefined(span, format!("object-group `{name}` is not defined"));
            return vec![Alt::unknown(
                format!("undefined object-group `{name}`"),
                span,
            )];
        };
        let mut unknown: Vec<String> = undefined
            .iter()
            .map(|u| format!("undefined object-group `{u}`"))
            .collect();
        let mut ranges: Vec<(u128, u128)> = Vec::new();
        for m in leaves {
            let r = match m {
                Member::Net(v, _) => self.net_value(&v),
                Member::NetObject(n, _) => self
                    .net_object(n)
                    .unwrap_or_else(|| Err(format!("undefined network object `{n}`"))),
                _ => continue,
            };
            match r {
                Ok(s) => ranges.extend_from_slice(s.ranges()),
                Err(t) => unknown.push(t),
            }
        }
        // One sort of all members' ranges rather than a union per member (quadratic in
        // the members of a big group).
        let p = Partial {
            set: IntervalSet::from_ranges(ranges),
            unknown,
        };
        let alts = p.alts(span);
        self.net_groups.insert(name, p);
        alts
    }

    fn svc_object_cubes(&mut self, name: &str, span: Span) -> Option<Vec<Cube>> {
        match self.cfg.svc_objects.get(name) {
            Some(o) => Some(match &o.service {
                Some(s) => service_cubes(s, span),
                None => vec![Cube::unknown(
                    format!("service object `{name}` without a service"),
                    span,
                )],
            }),
            None => builtin_service(name, span).map(|c| vec![c]),
        }
    }

    /// The service cubes of the protocol position of an ACE.
    fn proto_cubes(&mut self, p: &ProtoSpec<'a>) -> Vec<Cube> {
        match *p {
            ProtoSpec::Named(ProtoName::Any, span) => vec![Cube::proto(None, span)],
            ProtoSpec::Named(ProtoName::Num(n), span) => vec![Cube::proto(Some(n), span)],
            ProtoSpec::Object(n, span) => self.svc_object_cubes(n, span).unwrap_or_else(|| {
                self.undefined(span, format!("service object `{n}` is not defined"));
                vec![Cube::unknown(
                    format!("undefined service object `{n}`"),
                    span,
                )]
            }),
            ProtoSpec::Group(n, span) => {
                let Some(mut cubes) = self.proto_group_cubes(n) else {
                    self.undefined(span, format!("object-group `{n}` is not defined"));
                    return vec![Cube::unknown(format!("undefined object-group `{n}`"), span)];
                };
                for c in &mut cubes {
                    c.span = span;
                }
                let kind = self.cfg.groups.get(n).map(|g| g.kind);
                if matches!(kind, Some(GroupKind::Network | GroupKind::IcmpType)) {
                    self.undefined(
                        span,
                        format!("object-group `{n}` is not a protocol or service group"),
                    );
                    cubes.push(Cube::unknown(
                        format!("object-group `{n}` as a protocol"),
                        span,
                    ));
                }
                cubes
            }
        }
    }

    /// The service cubes of an object-group in the protocol position, flattened once
    /// per group; `None` if it is not defined. The cubes' span is a placeholder.
    fn proto_group_cubes(&mut self, n: &'a str) -> Option<Vec<Cube>> {
        if let Some(cubes) = self.proto_groups.get(n) {
            return Some(cubes.clone());
        }
        let span = Span::default();
        let kind = self.cfg.groups.get(n).map(|g| g.kind);
        let (leaves, undefined) = self.flatten(n)?;
        let mut cubes = Vec::new();
        let mut protos = IntervalSet::empty();
        let mut any_proto = false;
        for m in leaves {
            match m {
                Member::Proto(ProtoName::Any, _) => any_proto = true,
                Member::Proto(ProtoName::Num(p), _) => {
                    protos = protos.union(&IntervalSet::single(u128::from(p)));
                }
                Member::Service(s) => cubes.extend(service_cubes(&s, span)),
                Member::SvcObject(o, _) => match self.svc_object_cubes(o, span) {
                    Some(c) => cubes.extend(c),
                    None => cubes.push(Cube::unknown(
                        format!("undefined service object `{o}`"),
                        span,
                    )),
                },
                Member::Port(pm) => {
                    let ps: Vec<Option<u8>> = match kind {
                        Some(GroupKind::Service(Some(SvcProto::Proto(ProtoName::Num(p))))) => {
                            vec![Some(p)]
                        }
                        _ => vec![Some(6), Some(17)],
                    };
                    for p in ps {
                        let mut c = Cube::proto(p, span);
                        c.dst = Some(port_set(&pm));
                        cubes.push(c);
                    }
                }
                _ => {}
            }
        }
        if any_proto {
            cubes.push(Cube::proto(None, span));
        } else if !protos.is_empty() {
            let mut c = Cube::proto(None, span);
            c.proto = Some(protos);
            cubes.push(c);
        }
        for u in undefined {
            cubes.push(Cube::unknown(format!("undefined object-group `{u}`"), span));
        }
        self.proto_groups.insert(n, cubes.clone());
        Some(cubes)
    }

    fn port_alts(&mut self, p: Option<&PortSpec<'a>>) -> Vec<Alt> {
        match p {
            None => vec![Alt::any(Span::default())],
            Some(PortSpec::Match(m)) => {
                self.record_literals(m);
                vec![Alt::set(port_set(m), m.span)]
            }
            Some(PortSpec::Group(n, span)) => {
                if let Some(part) = self.port_groups.get(n) {
                    return part.alts(*span);
                }
                let Some((leaves, undefined)) = self.flatten(n) else {
                    self.undefined(*span, format!("object-group `{n}` is not defined"));
                    return vec![Alt::unknown(format!("undefined object-group `{n}`"), *span)];
                };
                let mut part = Partial::default();
                part.unknown.extend(
                    undefined
                        .iter()
                        .map(|u| format!("undefined object-group `{u}`")),
                );
                for m in leaves {
                    match m {
                        Member::Port(pm) => {
                            self.record_literals(&pm);
                            part.set = part.set.union(&port_set(&pm))
                        }
                        Member::Service(s) => match s.dst {
                            Some(d) if s.src.is_none() => part.set = part.set.union(&port_set(&d)),
                            _ => part
                                .unknown
                                .push("a service-object in a port position".into()),
                        },
                        _ => part
                            .unknown
                            .push("a non-port member in a port position".into()),
                    }
                }
                let alts = part.alts(*span);
                self.port_groups.insert(n, part);
                alts
            }
        }
    }

    /// Remembers the port names of a port match (`eq kerberos` is 750 on the ASA).
    fn record_literals(&mut self, m: &PortMatch<'a>) {
        for v in std::iter::once(&m.lo).chain(m.hi.as_ref()) {
            if let Some(name) = v.name
                && self.literal_spans.insert(v.span)
            {
                self.literals.push(PortLiteral {
                    span: v.span,
                    name: name.to_string(),
                    port: v.value,
                });
            }
        }
    }

    /// Lowers one ACE into `out`: one rule per combination of service cube and
    /// address/port alternatives, all with the ACE's span, action and remark.
    fn lower_ace(&mut self, ace: &Ace<'a>, remark: Option<String>, out: &mut Vec<Rule>) {
        let mut cubes = self.proto_cubes(&ace.proto);
        let mut srcs = self.endpoint(&ace.src);
        let mut src_ports = self.port_alts(ace.src_port.as_deref());
        let mut dsts = self.endpoint(&ace.dst);
        let mut dst_ports = self.port_alts(ace.dst_port.as_ref());
        let mut extra: Vec<Cond> = Vec::new();
        match ace.icmp {
            Some(IcmpSpec::Type(t, span)) => extra.push(Cond {
                kind: CondKind::Unknown(format!("icmp type `{t}`")),
                span,
            }),
            Some(IcmpSpec::Group(n, span)) => {
                if !self.cfg.groups.contains_key(n) {
                    self.undefined(span, format!("object-group `{n}` is not defined"));
                }
                extra.push(Cond {
                    kind: CondKind::Unknown(format!("icmp-type object-group `{n}`")),
                    span,
                });
            }
            None => {}
        }
        if let Some((name, span)) = ace.time_range {
            extra.push(Cond {
                kind: CondKind::Unknown(format!("time-range `{name}`")),
                span,
            });
        }
        let action = match ace.action {
            AclAction::Permit => Action::Accept,
            AclAction::Deny => Action::Drop,
        };
        let rule = |conds: Vec<Cond>, comment: Option<String>| Rule {
            conds,
            action: action.clone(),
            span: ace.span,
            action_span: ace.action_span,
            comment,
        };
        let first = out.len();
        let lens = [
            cubes.len(),
            srcs.len(),
            src_ports.len(),
            dsts.len(),
            dst_ports.len(),
        ];
        let n: usize = lens.iter().product();
        if out.capacity() - out.len() < n {
            // Entries that make several rules outgrew the ACL's vector: grow it to what
            // the rest will likely need instead of doubling 100k rules.
            out.reserve_exact(n + self.rules_left + 2);
        }
        if lens == [1; 5] {
            // The common case: one rule, built from the parts without copies.
            if let (Some(cube), Some(s), Some(sp), Some(d), Some(dp)) = (
                cubes.pop(),
                srcs.pop(),
                src_ports.pop(),
                dsts.pop(),
                dst_ports.pop(),
            ) {
                out.push(rule(build_conds(cube, s, sp, d, dp, extra), remark));
            }
        } else {
            for cube in &cubes {
                for s in &srcs {
                    for sp in &src_ports {
                        for d in &dsts {
                            for dp in &dst_ports {
                                let conds = build_conds(
                                    cube.clone(),
                                    s.clone(),
                                    sp.clone(),
                                    d.clone(),
                                    dp.clone(),
                                    extra.clone(),
                                );
                                out.push(rule(conds, remark.clone()));
                            }
                        }
                    }
                }
            }
        }
        if self.noting {
            self.notes.start_entry();
            let conds = out.iter().skip(first).flat_map(|r| r.conds.iter());
            for c in conds {
                if let CondKind::Unknown(t) = &c.kind
                    && !t.starts_with("undefined")
                {
                    self.notes.add(t, c.span);
                }
            }
        }
    }

    /// Adds the chain of an ACL bound by `ag`, ending in `tail`.
    fn add_acl_chain(
        &mut self,
        graph: &mut RuleGraph,
        acls: &[Acl<'a>],
        lowered: &mut LoweredAcls<'a>,
        ag: &AccessGroup<'a>,
        tail: Rule,
    ) -> ChainId {
        let acl = acls.iter().find(|a| a.name == ag.acl);
        let mut rules = lowered.take(ag.acl);
        if acl.is_some_and(|a| a.standard) {
            let text = format!("standard access-list `{}` bound to traffic", ag.acl);
            self.note(ag.acl_span, &text);
            rules.push(Rule {
                conds: vec![Cond {
                    kind: CondKind::Unknown(text),
                    span: ag.acl_span,
                }],
                action: Action::Unknown("standard access-list".into()),
                span: ag.span,
                action_span: ag.acl_span,
                comment: None,
            });
        }
        rules.push(tail);
        let mut name = ag.acl.to_string();
        if graph.chains.iter().any(|c| c.name == name) {
            name = match ag.bind {
                Bind::In(i, _) => format!("{} (in {i})", ag.acl),
                Bind::Out(i, _) => format!("{} (out {i})", ag.acl),
                Bind::Global => format!("{} (global)", ag.acl),
            };
        }
        graph.add_chain(Chain {
            name,
            rules,
            default: None,
            span: acl.map(|a| a.span).unwrap_or(ag.span),
        })
    }

    /// The effective access-groups, with undefined ACLs and interfaces reported and
    /// left out (the device refuses such an `access-group`).
    fn collect_bindings(&mut self, graph: &RuleGraph, acls: &[Acl<'a>]) -> Bindings<'c, 'a> {
        let cfg: &'c Config<'a> = self.cfg;
        let mut b = Bindings {
            ins: Vec::new(),
            outs: Vec::new(),
            global: None,
        };
        for ag in &cfg.access_groups {
            if !acls.iter().any(|a| a.name == ag.acl) {
                self.undefined(
                    ag.acl_span,
                    format!(
                        "access-group applies access-list `{}`, which is not defined",
                        ag.acl
                    ),
                );
                continue;
            }
            match ag.bind {
                Bind::Global => b.global = Some(ag),
                Bind::In(i, span) | Bind::Out(i, span) => {
                    if graph.interface(i).is_none() {
                        self.undefined(
                            span,
                            format!("interface `{i}` is not defined by any `nameif`"),
                        );
                        continue;
                    }
                    let list = if matches!(ag.bind, Bind::In(..)) {
                        &mut b.ins
                    } else {
                        &mut b.outs
                    };
                    match list.iter_mut().find(|(n, _)| *n == i) {
                        Some(slot) => slot.1 = ag,
                        None => list.push((i, ag)),
                    }
                }
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use crate::graph::sets::{addr, proto};
    use crate::graph::{Action, Chain, CondKind, IntervalSet, Rule, RuleGraph, Zone};
    use crate::parse::{PARSE_ERROR, Parsed, REFERENCE_CYCLE, UNDEFINED_REFERENCE, UNKNOWN_SYNTAX};
    use crate::source::{FileId, SourceFile};
    use std::net::Ipv4Addr;

    const IFACES: &str = "interface G0\n nameif outside\n security-level 0\n ip address 203.0.113.1 255.255.255.0\n\
interface G1\n nameif dmz\n security-level 50\n ip address 192.168.10.1 255.255.255.0\n\
interface G2\n nameif inside\n security-level 100\n ip address 10.0.0.1 255.255.255.0\n";

    fn run(text: &str) -> (SourceFile, Parsed) {
        let file = SourceFile::new(FileId(0), "test.cfg", text);
        let parsed = parse(&file);
        (file, parsed)
    }

    fn graph(p: &Parsed) -> &RuleGraph {
        p.graph.as_ref().expect("a graph")
    }

    fn chain<'g>(g: &'g RuleGraph, name: &str) -> &'g Chain {
        g.chains
            .iter()
            .find(|c| c.name == name)
            .expect("chain exists")
    }

    fn errors(p: &Parsed, rule: &str) -> usize {
        p.findings.iter().filter(|f| f.rule == rule).count()
    }

    fn field(r: &Rule, pick: fn(&CondKind) -> Option<&IntervalSet>) -> Option<IntervalSet> {
        r.conds.iter().find_map(|c| pick(&c.kind)).cloned()
    }

    fn dport(r: &Rule) -> Option<IntervalSet> {
        field(r, |k| {
            if let CondKind::DstPort(s) = k {
                Some(s)
            } else {
                None
            }
        })
    }

    fn protos(r: &Rule) -> Option<IntervalSet> {
        field(r, |k| {
            if let CondKind::Protocol(s) = k {
                Some(s)
            } else {
                None
            }
        })
    }

    fn dst(r: &Rule) -> Option<IntervalSet> {
        field(r, |k| {
            if let CondKind::DstAddr(s) = k {
                Some(s)
            } else {
                None
            }
        })
    }

    fn unknowns(r: &Rule) -> Vec<String> {
        r.conds
            .iter()
            .filter_map(|c| match &c.kind {
                CondKind::Unknown(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    fn v4(a: [u8; 4]) -> u128 {
        addr::v4(Ipv4Addr::from(a))
    }

    fn ports(r: &[(u128, u128)]) -> IntervalSet {
        IntervalSet::from_ranges(r.iter().copied())
    }

    #[test]
    fn interfaces_get_zones_levels_and_networks() {
        let (_, p) = run(IFACES);
        let g = graph(&p);
        let dmz = g.interface("dmz").expect("dmz");
        assert_eq!(dmz.zone_hint, Some(Zone::Perimeter));
        assert_eq!(dmz.security_level, Some(50));
        assert!(dmz.networks.contains(v4([192, 168, 10, 77])));
        assert_eq!(
            dmz.own_addresses,
            IntervalSet::single(v4([192, 168, 10, 1]))
        );
        assert_eq!(
            g.interface("outside").and_then(|i| i.zone_hint),
            Some(Zone::Public)
        );
        assert_eq!(
            g.interface("inside").and_then(|i| i.zone_hint),
            Some(Zone::Internal)
        );
    }

    #[test]
    fn security_levels_without_acls() {
        let text = format!("{IFACES}same-security-traffic permit intra-interface\n");
        let (file, p) = run(&text);
        let g = graph(&p);
        let ingress = chain(g, "ingress");
        let accepts: Vec<&str> = ingress
            .rules
            .iter()
            .filter(|r| r.action == Action::Accept)
            .filter_map(|r| r.comment.as_deref())
            .collect();
        assert!(accepts.contains(&"security level 100 (`inside`) to 50 (`dmz`)"));
        assert!(accepts.contains(&"security level 50 (`dmz`) to 0 (`outside`)"));
        assert!(!accepts.iter().any(|c| c.starts_with("security level 0")));
        let drop_outside = ingress
            .rules
            .iter()
            .find(|r| {
                r.action == Action::Drop
                    && r.conds.len() == 1
                    && file.slice(r.span) == "security-level 0"
            })
            .expect("lower to higher is denied");
        assert_eq!(
            drop_outside.comment.as_deref(),
            Some("lower to higher security level without an access-list")
        );
        assert!(ingress.rules.iter().any(|r| {
            r.comment.as_deref() == Some("same-security-traffic permit intra-interface")
        }));
        assert_eq!(
            ingress.default.as_ref().map(|d| d.action.clone()),
            Some(Action::Drop)
        );
        assert_eq!(g.stages.len(), 2);
    }

    #[test]
    fn equal_levels_need_inter_interface() {
        let base = "interface a\n nameif a\n security-level 50\ninterface b\n nameif b\n security-level 50\n";
        let (_, p) = run(base);
        let n = chain(graph(&p), "ingress")
            .rules
            .iter()
            .filter(|r| r.action == Action::Accept)
            .count();
        assert_eq!(n, 0);
        let (_, p) = run(&format!(
            "{base}same-security-traffic permit inter-interface\n"
        ));
        let n = chain(graph(&p), "ingress")
            .rules
            .iter()
            .filter(|r| r.action == Action::Accept)
            .count();
        assert_eq!(n, 2);
    }

    #[test]
    fn implicit_deny_spans_the_access_group_line() {
        let text = format!(
            "{IFACES}access-list dmz_in extended permit tcp any any eq www\naccess-group dmz_in in interface dmz\n"
        );
        let (file, p) = run(&text);
        let g = graph(&p);
        let acl = chain(g, "dmz_in");
        assert_eq!(acl.rules.len(), 2);
        let last = acl.rules.last().expect("implicit deny");
        assert_eq!(last.action, Action::Drop);
        assert!(last.conds.is_empty());
        assert_eq!(
            file.slice(last.span),
            "access-group dmz_in in interface dmz"
        );
        assert_eq!(
            last.comment.as_deref(),
            Some("implicit deny at the end of access-list `dmz_in`")
        );
        let ingress = chain(g, "ingress");
        let first = ingress.rules.first().expect("goto rule");
        assert!(matches!(first.action, Action::Goto(_)));
        // dmz has an ACL, so no security-level rule starts from dmz.
        assert!(!ingress.rules.iter().any(|r| {
            r.comment
                .as_deref()
                .is_some_and(|c| c.contains("(`dmz`) to"))
        }));
        let permit = acl.rules.first().expect("permit");
        assert_eq!(dport(permit), Some(IntervalSet::single(80)));
        assert_eq!(protos(permit), Some(IntervalSet::single(6)));
    }

    #[test]
    fn global_acl_replaces_security_levels() {
        let text = format!(
            "{IFACES}access-list g extended deny tcp any any eq 23\naccess-list d extended permit ip any any\n\
access-group g global\naccess-group d in interface dmz\n"
        );
        let (file, p) = run(&text);
        let g = graph(&p);
        let ingress = chain(g, "ingress");
        assert!(!ingress.rules.iter().any(|r| r.action == Action::Accept));
        assert_eq!(ingress.rules.len(), 2);
        let d = chain(g, "d");
        let tail = d.rules.last().expect("tail");
        assert!(
            matches!(tail.action, Action::Goto(_)),
            "interface ACL falls through to the global one"
        );
        let global = chain(g, "g");
        let deny = global.rules.last().expect("implicit deny");
        assert_eq!(file.slice(deny.span), "access-group g global");
    }

    #[test]
    fn out_acl_goes_to_egress() {
        let text = format!(
            "{IFACES}access-list o extended permit tcp any any eq 25\naccess-group o out interface outside\n"
        );
        let (file, p) = run(&text);
        let g = graph(&p);
        let egress = chain(g, "egress");
        assert_eq!(egress.rules.len(), 1);
        let rule = egress.rules.first().expect("rule");
        assert!(
            matches!(rule.conds.first().map(|c| &c.kind), Some(CondKind::OutIface(m)) if m.matches("outside"))
        );
        assert_eq!(
            egress.default.as_ref().map(|d| d.action.clone()),
            Some(Action::Accept)
        );
        let o = chain(g, "o");
        assert_eq!(
            file.slice(o.rules.last().expect("tail").span),
            "access-group o out interface outside"
        );
    }

    #[test]
    fn port_operators_are_exact() {
        let text = format!(
            "{IFACES}access-list a extended permit tcp any any neq 80\n\
access-list a extended permit tcp any any lt 1024\n\
access-list a extended permit tcp any any gt 1023\n\
access-list a extended permit udp any any range netbios-ns netbios-dgm\n\
access-list a extended permit tcp any any lt 0\n\
access-group a in interface inside\n"
        );
        let (_, p) = run(&text);
        let a = chain(graph(&p), "a");
        let sets: Vec<Option<IntervalSet>> = a.rules.iter().map(dport).collect();
        assert_eq!(
            sets.first().cloned().flatten(),
            Some(ports(&[(0, 79), (81, 65535)]))
        );
        assert_eq!(sets.get(1).cloned().flatten(), Some(ports(&[(0, 1023)])));
        assert_eq!(
            sets.get(2).cloned().flatten(),
            Some(ports(&[(1024, 65535)]))
        );
        assert_eq!(sets.get(3).cloned().flatten(), Some(ports(&[(137, 138)])));
        assert_eq!(sets.get(4).cloned().flatten(), Some(IntervalSet::empty()));
    }

    #[test]
    fn tcp_udp_and_service_groups_expand_to_several_rules() {
        let text = format!(
            "{IFACES}object service DNS\n service tcp-udp destination eq domain\n\
object-group service MIXED\n service-object tcp destination eq www\n service-object object DNS\n service-object esp\n\
object-group service PORTS tcp-udp\n port-object eq 88\n\
access-list a extended permit object DNS any any\n\
access-list a extended permit object-group MIXED any any\n\
access-list a extended permit tcp any any object-group PORTS\n\
access-group a in interface inside\n"
        );
        let (file, p) = run(&text);
        assert_eq!(errors(&p, PARSE_ERROR), 0, "{:?}", p.findings);
        let a = chain(graph(&p), "a");
        let line = |r: &Rule| file.slice(r.span).to_string();
        let dns: Vec<&Rule> = a
            .rules
            .iter()
            .filter(|r| line(r).contains("object DNS"))
            .collect();
        assert_eq!(dns.len(), 2);
        assert_eq!(
            dns.first().and_then(|r| protos(r)),
            Some(IntervalSet::single(6))
        );
        assert_eq!(
            dns.get(1).and_then(|r| protos(r)),
            Some(IntervalSet::single(17))
        );
        assert!(
            dns.iter()
                .all(|r| dport(r) == Some(IntervalSet::single(53)))
        );
        let mixed: Vec<&Rule> = a
            .rules
            .iter()
            .filter(|r| line(r).contains("MIXED"))
            .collect();
        assert_eq!(mixed.len(), 4, "tcp/80, tcp/53, udp/53, esp");
        assert!(
            mixed
                .iter()
                .any(|r| protos(r) == Some(IntervalSet::single(50)) && dport(r).is_none())
        );
        let port_group: Vec<&Rule> = a
            .rules
            .iter()
            .filter(|r| line(r).contains("PORTS"))
            .collect();
        assert_eq!(port_group.len(), 1);
        assert_eq!(
            port_group.first().and_then(|r| dport(r)),
            Some(IntervalSet::single(88))
        );
    }

    #[test]
    fn nested_groups_union() {
        let text = format!(
            "{IFACES}object network H\n host 10.0.0.10\n\
object-group network A\n network-object host 10.0.0.20\n group-object B\n\
object-group network B\n network-object object H\n group-object C\n\
object-group network C\n network-object 10.0.1.0 255.255.255.0\n\
access-list a extended permit ip any object-group A\naccess-group a in interface inside\n"
        );
        let (_, p) = run(&text);
        let a = chain(graph(&p), "a");
        let expect = IntervalSet::from_ranges([
            (v4([10, 0, 0, 10]), v4([10, 0, 0, 10])),
            (v4([10, 0, 0, 20]), v4([10, 0, 0, 20])),
            (v4([10, 0, 1, 0]), v4([10, 0, 1, 255])),
        ]);
        assert_eq!(a.rules.first().and_then(dst), Some(expect));
    }

    #[test]
    fn group_cycle_is_reported_not_followed() {
        let text = format!(
            "{IFACES}object-group network A\n network-object host 10.0.0.1\n group-object B\n\
object-group network B\n group-object A\n\
access-list a extended permit ip any object-group A\naccess-group a in interface inside\n"
        );
        let (_, p) = run(&text);
        assert_eq!(errors(&p, REFERENCE_CYCLE), 1);
        let a = chain(graph(&p), "a");
        assert_eq!(
            a.rules.first().and_then(dst),
            Some(IntervalSet::single(v4([10, 0, 0, 1])))
        );
    }

    #[test]
    fn group_cycle_is_reported_from_the_first_group_by_name() {
        // Walked from A (the first name): A → C → B, whose `group-object A` closes a
        // cycle, then C's own `group-object A` closes another. From B or from C the
        // reported members would differ. Each parse hashes the groups with a fresh
        // seed, so a walk in the map's order would land elsewhere in some runs.
        let text = format!(
            "{IFACES}object-group network C\n group-object B\n network-object host 10.0.0.3\n group-object A\n\
object-group network B\n group-object A\n\
object-group network A\n group-object C\n\
access-list a extended permit ip any object-group B\naccess-group a in interface inside\n"
        );
        let line_of = |member: &str| {
            let start = text.find(member).expect("member") as u32;
            start..start + " group-object A".len() as u32
        };
        let in_c = line_of(" group-object A\nobject-group network B");
        let in_b = line_of(" group-object A\nobject-group network A");
        for _ in 0..20 {
            let (_, p) = run(&text);
            let mut cycles: Vec<(bool, bool)> = p
                .findings
                .iter()
                .filter(|f| f.rule == REFERENCE_CYCLE)
                .map(|f| f.primary.span.start)
                .map(|at| (in_b.contains(&at), in_c.contains(&at)))
                .collect();
            cycles.sort();
            assert_eq!(cycles, vec![(false, true), (true, false)]);
        }
    }

    #[test]
    fn ten_thousand_deep_nesting() {
        let mut text = String::from(IFACES);
        let depth = 10_000;
        for i in 0..depth {
            text.push_str(&format!(
                "object-group network G{i}\n group-object G{}\n",
                i + 1
            ));
        }
        text.push_str(&format!(
            "object-group network G{depth}\n network-object host 10.0.0.9\n"
        ));
        text.push_str("access-list a extended permit ip any object-group G0\naccess-group a in interface inside\n");
        let (_, p) = run(&text);
        assert_eq!(errors(&p, REFERENCE_CYCLE), 0);
        assert_eq!(errors(&p, UNDEFINED_REFERENCE), 0);
        let a = chain(graph(&p), "a");
        assert_eq!(
            a.rules.first().and_then(dst),
            Some(IntervalSet::single(v4([10, 0, 0, 9])))
        );
    }

    #[test]
    fn inactive_time_range_and_remark() {
        let text = format!(
            "{IFACES}access-list a remark first line\naccess-list a remark second line\n\
access-list a extended permit tcp any any eq 445 time-range WORK\n\
access-list a extended permit tcp any any eq 23 inactive\naccess-group a in interface inside\n"
        );
        let (file, p) = run(&text);
        let a = chain(graph(&p), "a");
        assert_eq!(a.rules.len(), 2, "the inactive entry is not lowered");
        let r = a.rules.first().expect("rule");
        assert_eq!(r.comment.as_deref(), Some("first line\nsecond line"));
        assert_eq!(unknowns(r), vec!["time-range `WORK`".to_string()]);
        let c = r
            .conds
            .iter()
            .find(|c| matches!(c.kind, CondKind::Unknown(_)))
            .expect("cond");
        assert_eq!(file.slice(c.span), "time-range WORK");
        let note = p
            .findings
            .iter()
            .find(|f| f.rule == UNKNOWN_SYNTAX && file.slice(f.primary.span) == "time-range WORK");
        assert!(note.is_some());
    }

    #[test]
    fn undefined_object_is_an_error_and_may_match() {
        let text = format!(
            "{IFACES}access-list a extended deny tcp any object NOPE eq 389\naccess-group a in interface inside\n\
access-group missing in interface dmz\n"
        );
        let (file, p) = run(&text);
        assert_eq!(errors(&p, UNDEFINED_REFERENCE), 2);
        let a = chain(graph(&p), "a");
        let r = a.rules.first().expect("the entry is kept");
        assert_eq!(r.action, Action::Drop);
        assert_eq!(dst(r), None);
        assert_eq!(
            unknowns(r),
            vec!["undefined network object `NOPE`".to_string()]
        );
        let spans: Vec<&str> = p
            .findings
            .iter()
            .filter(|f| f.rule == UNDEFINED_REFERENCE)
            .map(|f| file.slice(f.primary.span))
            .collect();
        assert!(
            spans.contains(&"object NOPE") && spans.contains(&"missing"),
            "{spans:?}"
        );
    }

    #[test]
    fn unmodelled_constructs_get_one_counted_note_each() {
        let text = format!(
            "{IFACES}object network WEB\n fqdn v4 www.example.com\n\
access-list a extended permit icmp any any echo\n\
access-list a extended permit icmp any any echo-reply time-range WORK\n\
access-list a extended permit icmp any any echo time-range WORK\n\
access-list a extended permit tcp object WEB object WEB eq https\n\
access-list a extended permit tcp any object WEB eq www\n\
access-list unbound extended permit icmp any any unreachable time-range NIGHT\n\
access-group a in interface inside\n"
        );
        let (file, p) = run(&text);
        let notes: Vec<(&str, &str)> = p
            .findings
            .iter()
            .filter(|f| f.rule == UNKNOWN_SYNTAX && !f.message.starts_with("skipped "))
            .map(|f| (file.slice(f.primary.span), f.message.as_str()))
            .collect();
        assert_eq!(
            notes,
            vec![
                (
                    "echo",
                    "mislint does not model icmp types (`echo`, `echo-reply`): 3 entries using them are treated as ones that may match"
                ),
                (
                    "time-range WORK",
                    "mislint does not model time-range `WORK`: 2 entries using it are treated as ones that may match"
                ),
                (
                    "object WEB",
                    "mislint does not model network object `WEB`: fqdn `www.example.com`: 2 entries using it are treated as ones that may match"
                ),
            ],
            "one note per construct at its first use, each entry counted once; the unbound ACL is not noted"
        );
        // Every rule keeps its own unknown condition.
        let a = chain(graph(&p), "a");
        let echo_reply = a.rules.get(1).expect("second entry");
        assert_eq!(
            unknowns(echo_reply),
            vec![
                "icmp type `echo-reply`".to_string(),
                "time-range `WORK`".to_string()
            ]
        );
    }

    #[test]
    fn one_entry_and_many_icmp_types_read_well() {
        let mut notes = super::Notes::default();
        let span = crate::source::Span::default();
        notes.start_entry();
        notes.add("time-range `T`", span);
        notes.add("time-range `T`", span);
        for t in ["a", "b", "c", "d", "e", "f", "g"] {
            notes.start_entry();
            notes.add(&format!("icmp type `{t}`"), span);
        }
        let messages: Vec<String> = notes.into_findings().map(|f| f.message).collect();
        assert_eq!(
            messages,
            vec![
                "mislint does not model time-range `T`: 1 entry using it is treated as one that may match",
                "mislint does not model icmp types (`a`, `b`, `c`, `d`, `e`, 2 more): 7 entries using them are treated as ones that may match",
            ]
        );
    }

    #[test]
    fn fqdn_and_icmp_types_may_match() {
        let text = format!(
            "{IFACES}object network WEB\n fqdn v4 www.example.com\n\
access-list a extended permit tcp any object WEB eq https\n\
access-list a extended permit icmp any any echo\naccess-group a in interface inside\n"
        );
        let (_, p) = run(&text);
        let a = chain(graph(&p), "a");
        let fq = a.rules.first().expect("fqdn rule");
        assert_eq!(dst(fq), None);
        assert_eq!(
            unknowns(fq),
            vec!["network object `WEB`: fqdn `www.example.com`".to_string()]
        );
        let icmp = a.rules.get(1).expect("icmp rule");
        assert_eq!(
            protos(icmp),
            Some(IntervalSet::single(u128::from(proto::ICMP)))
        );
        assert_eq!(unknowns(icmp), vec!["icmp type `echo`".to_string()]);
    }

    #[test]
    fn partly_undefined_group_splits_into_known_and_unknown() {
        let text = format!(
            "{IFACES}object-group network A\n network-object host 10.0.0.1\n group-object GONE\n\
access-list a extended permit ip any object-group A\naccess-group a in interface inside\n"
        );
        let (_, p) = run(&text);
        assert_eq!(errors(&p, UNDEFINED_REFERENCE), 1);
        let a = chain(graph(&p), "a");
        assert_eq!(a.rules.len(), 3);
        assert_eq!(
            a.rules.first().and_then(dst),
            Some(IntervalSet::single(v4([10, 0, 0, 1])))
        );
        let second = a.rules.get(1).expect("unknown part");
        assert_eq!(dst(second), None);
        assert_eq!(
            unknowns(second),
            vec!["undefined object-group `GONE`".to_string()]
        );
    }

    #[test]
    fn malformed_ace_is_a_parse_error_at_the_token() {
        let text = format!(
            "{IFACES}access-list a extended permit tcp any any eq wwww\n\
access-list a extended permit tcp any 10.0.0.0 255.0.255.0\naccess-list a extended permit udp any any eq ldap\n"
        );
        let (file, p) = run(&text);
        let errs: Vec<&str> = p
            .findings
            .iter()
            .filter(|f| f.rule == PARSE_ERROR)
            .map(|f| file.slice(f.primary.span))
            .collect();
        assert_eq!(errs, vec!["wwww", "255.0.255.0", "ldap"]);
        assert!(p.graph.is_some());
    }

    #[test]
    fn skipped_lines_are_counted_in_one_note() {
        let text = "crypto map m 1 set peer 1.2.3.4\nlogging enable\npolicy-map global_policy\n class x\n  inspect dns\n! comment\n";
        let (_, p) = run(text);
        let notes: Vec<&str> = p
            .findings
            .iter()
            .filter(|f| f.rule == UNKNOWN_SYNTAX)
            .map(|f| f.message.as_str())
            .collect();
        assert_eq!(
            notes,
            vec!["skipped 5 lines mislint does not model: crypto, logging, policy-map"]
        );
    }

    #[test]
    fn show_access_list_output_is_refused() {
        let (_, p) = run("access-list a line 1 extended permit ip any any (hitcnt=0) 0x1234\n");
        assert!(p.graph.is_none());
        assert_eq!(errors(&p, PARSE_ERROR), 1);
    }

    fn fixture(name: &str) -> (SourceFile, Parsed) {
        let path = format!("{}/fixtures/asa/{name}.cfg", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture exists");
        let file = SourceFile::new(FileId(0), path, text);
        let parsed = parse(&file);
        (file, parsed)
    }

    /// The lines of the dmz_in chain's rules, in order.
    fn dmz_lines(file: &SourceFile, p: &Parsed) -> Vec<String> {
        chain(graph(p), "dmz_in")
            .rules
            .iter()
            .map(|r| file.slice(r.span).to_string())
            .collect()
    }

    #[test]
    fn fixtures_parse_cleanly_and_lower_to_the_expected_chains() {
        for name in [
            "compliant",
            "shadowed-ldap",
            "dynamic-rpc-open",
            "ipsec-plain-port",
            "unknown-module",
        ] {
            let (file, p) = fixture(name);
            assert_eq!(errors(&p, PARSE_ERROR), 0, "{name}: {:?}", p.findings);
            assert_eq!(errors(&p, UNDEFINED_REFERENCE), 0, "{name}");
            let g = graph(&p);
            let names: Vec<&str> = g.chains.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(
                names,
                vec!["dmz_in", "inside_in", "ingress", "egress"],
                "{name}"
            );
            let ingress = chain(g, "ingress");
            // dmz and inside go to their ACLs; outside (level 0) may reach nothing.
            assert_eq!(ingress.rules.len(), 3, "{name}");
            assert!(ingress.rules.get(2).is_some_and(
                |r| r.action == Action::Drop && file.slice(r.span) == "security-level 0"
            ));
            let lines = dmz_lines(&file, &p);
            assert_eq!(
                lines.last().map(String::as_str),
                Some("access-group dmz_in in interface dmz")
            );
        }
    }

    #[test]
    fn compliant_fixture_rules() {
        let (file, p) = fixture("compliant");
        let dmz = chain(graph(&p), "dmz_in");
        assert_eq!(
            dmz.rules.len(),
            14,
            "12 MIS-to-internal entries, smtp, implicit deny"
        );
        let mis = IntervalSet::single(v4([192, 168, 10, 5]));
        let first = dmz.rules.first().expect("www");
        assert_eq!(dport(first), Some(IntervalSet::single(80)));
        assert!(
            first
                .conds
                .iter()
                .any(|c| c.kind == CondKind::SrcAddr(mis.clone()))
        );
        assert_eq!(
            first.comment.as_deref(),
            Some("MIS to the internal network, the ports of KB 294297")
        );
        let ldap = dmz
            .rules
            .iter()
            .find(|r| file.slice(r.span).ends_with("eq ldap"))
            .expect("ldap");
        assert_eq!(dport(ldap), Some(IntervalSet::single(389)));
        let smtp = dmz.rules.get(12).expect("smtp");
        assert_eq!(dst(smtp), Some(IntervalSet::single(v4([198, 51, 100, 25]))));
        assert_eq!(dport(smtp), Some(IntervalSet::single(25)));
        let inside = chain(graph(&p), "inside_in");
        assert_eq!(
            inside.rules.first().map(|r| r.action.clone()),
            Some(Action::Drop)
        );
        let skipped = p
            .findings
            .iter()
            .find(|f| f.message.starts_with("skipped "))
            .expect("note");
        assert!(skipped.message.contains("logging") && skipped.message.contains("policy-map"));
    }

    #[test]
    fn variant_fixtures_differ_where_they_should() {
        let (file, p) = fixture("shadowed-ldap");
        let lines = dmz_lines(&file, &p);
        let deny = lines
            .iter()
            .position(|l| l.contains("deny tcp") && l.ends_with("eq ldap"));
        let permit = lines
            .iter()
            .position(|l| l.contains("permit tcp") && l.ends_with("eq ldap"));
        assert!(deny.is_some() && deny < permit);

        let (file, p) = fixture("dynamic-rpc-open");
        let dmz = chain(graph(&p), "dmz_in");
        let rpc = dmz
            .rules
            .iter()
            .find(|r| file.slice(r.span).ends_with("range 1024 65535"))
            .expect("rpc");
        assert_eq!(dport(rpc), Some(ports(&[(1024, 65535)])));

        let (file, p) = fixture("unknown-module");
        let dmz = chain(graph(&p), "dmz_in");
        let smb = dmz
            .rules
            .iter()
            .find(|r| file.slice(r.span).contains("eq 445"))
            .expect("smb");
        assert_eq!(
            unknowns(smb),
            vec!["time-range `BUSINESS-HOURS`".to_string()]
        );
        assert!(p.findings.iter().any(|f| f.rule == UNKNOWN_SYNTAX
            && file.slice(f.primary.span) == "time-range BUSINESS-HOURS"));

        let (file, p) = fixture("ipsec-plain-port");
        let dmz = chain(graph(&p), "dmz_in");
        let esp = dmz.rules.first().expect("esp");
        assert_eq!(protos(esp), Some(IntervalSet::single(50)));
        let www = dmz
            .rules
            .iter()
            .find(|r| file.slice(r.span).ends_with("eq www"))
            .expect("www");
        assert_eq!(dport(www), Some(IntervalSet::single(80)));
        let inside = chain(graph(&p), "inside_in");
        assert_eq!(inside.rules.len(), 6);
    }
}
