//! Lowering of the pfSense / OPNsense AST into the rule graph: alias resolution, address
//! and port sets, and pf's evaluation order made explicit as two first-match chains.
//!
//! pf evaluates every rule; a `quick` match ends the walk at once, otherwise the *last*
//! matching rule decides. pfSense loads floating rules first, then interface-group rules,
//! then interface rules (all of which are quick), above a non-quick "block all". So a
//! first-match chain that means the same is: quick rules in load order, then the
//! non-quick rules in reverse order (the last match is the first one met backwards),
//! then the default. Stage `inbound` holds rules for packets entering an interface
//! (default deny, span = `<filter>`); stage `outbound` holds floating rules with
//! direction out/any for packets leaving one (default pass, as pfSense's own
//! "pass out" rules do).

use super::ast::{Alias, Config, Endpoint, FilterRule, Flavor, IfaceDecl, Origin, Str, Text};
use crate::graph::sets::{ADDR_MAX, addr, proto};
use crate::graph::{
    Action, Chain, Cond, CondKind, Default, Dialect, Family, IfaceMatch, IfacePattern, Interface,
    IntervalSet, Rule, RuleGraph, Stage, Zone,
};
use crate::parse::{REFERENCE_CYCLE, UNDEFINED_REFERENCE, UNKNOWN_SYNTAX};
use crate::report::finding::{Finding, Severity};
use crate::source::{FileId, Span};
// Every address and port token of every rule is looked up by name: foldhash, not SipHash.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use rayon::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

/// Lowers a parsed config into a graph plus the findings lowering produced.
pub fn lower(mut cfg: Config<'_>, file: FileId) -> (RuleGraph, Vec<Finding>) {
    let rules = ordered_rules(&mut cfg);
    let runs = if rules.len() >= PARALLEL_FROM_RULES {
        rayon::current_num_threads() * RUNS_PER_CORE
    } else {
        1
    };
    lower_in_runs(&cfg, file, rules, runs)
}

/// Rules from which a config's rules are lowered on every core.
const PARALLEL_FROM_RULES: usize = 4096;

/// Runs of rules per core: each starts with a copy of the lowerer.
const RUNS_PER_CORE: usize = 2;

/// [`lower`], with the rules lowered in up to `runs` runs.
#[allow(clippy::vec_box)] // The AST's boxes, moved rather than copied (see `ordered_rules`).
pub(super) fn lower_in_runs<'a>(
    cfg: &'a Config<'a>,
    file: FileId,
    rules: Vec<Box<FilterRule<'_>>>,
    runs: usize,
) -> (RuleGraph, Vec<Finding>) {
    let mut lw = Lowerer::new(cfg);
    let mut graph = RuleGraph::new(Dialect::Pfsense, file, Family::Both);
    graph.interfaces = cfg.interfaces.iter().map(lower_interface).collect();
    let filter_span = cfg.filter_span.unwrap_or(cfg.root_span);

    let mut lowered = lower_rules(&mut lw, &rules, runs);
    // The first automation rule in the file, for the note on their order.
    let automation = rules
        .iter()
        .filter(|r| r.origin == Origin::Automation)
        .map(|r| r.span)
        .min_by_key(|s| s.start);
    // The rules' AST is done with: freed before the chains are built, the memory it
    // held (a third of the peak on a 100,000-rule config) serves them.
    drop(rules);
    for name in &lw.undefined_ifaces {
        graph.ensure_interface(name);
    }

    let forwards = lw.lower_port_forwards(cfg);
    let mut inbound = lw.implicit_blocks();
    inbound.extend(forwards.pass);
    inbound.extend(chain_rules(&mut lowered, Direction::In));
    let outbound = chain_rules(&mut lowered, Direction::Out);
    drop(lowered);
    let inbound_id = graph.add_chain(Chain {
        name: "inbound".into(),
        rules: inbound,
        default: Some(Default {
            action: Action::Drop,
            span: filter_span,
            reason: "pfSense default deny".into(),
        }),
        span: filter_span,
    });
    let outbound_id = graph.add_chain(Chain {
        name: "outbound".into(),
        rules: outbound,
        default: Some(Default {
            action: Action::Accept,
            span: filter_span,
            reason: "pfSense passes outbound traffic by default".into(),
        }),
        span: filter_span,
    });
    graph.stages = Vec::new();
    if !forwards.rdr.is_empty() {
        // pf translates (`rdr`) before it filters: filter rules see the target address.
        let span = forwards.rdr.first().map_or(filter_span, |r| r.span);
        let rdr_id = graph.add_chain(Chain {
            name: "rdr".into(),
            rules: forwards.rdr,
            default: Some(Default {
                action: Action::Accept,
                span,
                reason: "no port forward applies".into(),
            }),
            span,
        });
        graph.stages.push(Stage {
            name: "port forwards (rdr)".into(),
            chain: rdr_id,
        });
    }
    graph.stages.extend([
        Stage {
            name: "inbound".into(),
            chain: inbound_id,
        },
        Stage {
            name: "outbound".into(),
            chain: outbound_id,
        },
    ]);
    lw.note_unapplied(cfg, automation);
    let Lowerer {
        mut findings,
        notes,
        ..
    } = lw;
    findings.extend(notes.into_findings());
    (graph, findings)
}

/// Lowers `rules` in order. In more than one run, on every core, each run by a copy of
/// `lw` whose aliases were all expanded beforehand: a run then expands none, and the
/// runs' findings, notes and undefined interfaces merge in rule order into what one
/// lowerer would have made. Expanding an alias reports nothing but a cycle, and where
/// a cycle is reported depends on which of its aliases is expanded first; so a config
/// whose aliases form one is lowered in one run, expanding them as its rules use them.
#[allow(clippy::vec_box)]
fn lower_rules<'a>(
    lw: &mut Lowerer<'a>,
    rules: &[Box<FilterRule<'_>>],
    runs: usize,
) -> Vec<Lowered> {
    if runs <= 1 || rules.is_empty() || !lw.aliases.expand_all_acyclic() {
        return rules.iter().filter_map(|r| lw.lower_rule(r)).collect();
    }
    let template = &*lw;
    let runs: Vec<(Vec<Lowered>, Lowerer<'a>)> = rules
        .par_chunks(rules.len().div_ceil(runs))
        .map(|run| {
            let mut local = template.fresh_copy();
            let out = run.iter().filter_map(|r| local.lower_rule(r)).collect();
            (out, local)
        })
        .collect();
    let mut all = Vec::with_capacity(rules.len());
    for (out, local) in runs {
        all.extend(out);
        lw.absorb(local);
    }
    all
}

/// The rules in pfSense's load order: OPNsense automation rules (by sequence), floating
/// rules, interface-group rules, interface rules; each group in file order. They are
/// moved out of `cfg`, so that lowering can free them before it builds the chains.
#[allow(clippy::vec_box)] // The AST's boxes, moved rather than copied.
pub(super) fn ordered_rules<'i>(cfg: &mut Config<'i>) -> Vec<Box<FilterRule<'i>>> {
    let groups: HashSet<&str> = cfg.ifgroups.iter().map(|g| &*g.name).collect();
    let on_group = |r: &FilterRule| {
        r.interface
            .as_ref()
            .is_some_and(|i| groups.contains(&*i.value))
    };
    // The group of each rule, by position in the load order; a stable sort keeps file
    // order within a group.
    let group_of = |r: &FilterRule| match r.origin {
        Origin::Automation => (0, r.sequence.unwrap_or(u64::MAX)),
        Origin::Legacy if r.floating => (1, 0),
        Origin::Legacy if on_group(r) => (2, 0),
        Origin::Legacy => (3, 0),
    };
    let mut keyed: Vec<((u8, u64), Box<FilterRule<'i>>)> = std::mem::take(&mut cfg.rules)
        .into_iter()
        .map(|r| (group_of(&r), r))
        .collect();
    keyed.sort_by_key(|(key, _)| *key);
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// Port forwards lowered: the rewrites, and the passes of "pass" forwards.
#[derive(Default)]
struct PortForwards {
    rdr: Vec<Rule>,
    pass: Vec<Rule>,
}

/// A port forward's `<target>`: an address (aliases as targets are not resolved).
fn parse_target_address(text: &str) -> Option<IntervalSet> {
    let ip: IpAddr = text.trim().parse().ok()?;
    Some(IntervalSet::single(addr::ip(ip)))
}

/// `<local-port>`: `80` or `8000-8010` (pfSense writes ranges with `-` or `:`).
fn parse_port_range(text: &str) -> Option<IntervalSet> {
    let t = text.trim();
    let (lo, hi) = t.split_once(['-', ':']).unwrap_or((t, t));
    let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo <= hi).then(|| IntervalSet::range(u128::from(lo), u128::from(hi)))
}

/// Which stage a rule applies in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    In,
    Out,
}

/// A rule lowered except for its interface condition, which depends on the stage.
struct Lowered {
    /// Conditions other than the interface.
    conds: Vec<Cond>,
    action: Action,
    span: Span,
    action_span: Span,
    comment: Option<String>,
    quick: bool,
    inbound: bool,
    outbound: bool,
    /// The interfaces, or `None` for a floating rule on every interface.
    ifaces: Option<(IfaceMatch, Span)>,
}

/// The chain of one stage: quick rules in order, then non-quick rules reversed.
///
/// Call it for `In` first, then for `Out`: the conditions, interfaces and comment of a
/// rule move into the last chain that takes it, so only rules in both stages are copied.
/// Rules are built on every core: 30 ms for the 92,000 rules of a big pfSense inbound
/// chain on one.
fn chain_rules(lowered: &mut [Lowered], dir: Direction) -> Vec<Rule> {
    let applies = move |l: &&mut Lowered| match dir {
        Direction::In => l.inbound,
        Direction::Out => l.outbound,
    };
    let mut out: Vec<Rule> = lowered
        .par_iter_mut()
        .filter(|l| applies(l) && l.quick)
        .map(|l| chain_rule(l, dir))
        .collect();
    out.par_extend(
        lowered
            .par_iter_mut()
            .rev()
            .filter(|l| applies(l) && !l.quick)
            .map(|l| chain_rule(l, dir)),
    );
    out
}

/// The rule of `l` in the chain of `dir`, its interface condition first.
fn chain_rule(l: &mut Lowered, dir: Direction) -> Rule {
    let last_use = dir == Direction::Out || !l.outbound;
    let (conds, comment, ifaces) = if last_use {
        (
            std::mem::take(&mut l.conds),
            l.comment.take(),
            l.ifaces.take(),
        )
    } else {
        (l.conds.clone(), l.comment.clone(), l.ifaces.clone())
    };
    let conds = match ifaces {
        Some((m, span)) => {
            let kind = match dir {
                Direction::In => CondKind::InIface(m),
                Direction::Out => CondKind::OutIface(m),
            };
            let mut all = Vec::with_capacity(conds.len() + 1);
            all.push(Cond { kind, span });
            all.extend(conds);
            all
        }
        None => conds,
    };
    Rule {
        conds,
        action: l.action.clone(),
        span: l.span,
        action_span: l.action_span,
        comment,
    }
}

/// The graph interface of an `<interfaces>` child.
fn lower_interface(decl: &IfaceDecl<'_>) -> Interface {
    let v4 = static_addr(decl.ipaddr.as_ref(), decl.subnet.as_ref());
    let v6 = static_addr(decl.ipaddrv6.as_ref(), decl.subnetv6.as_ref());
    let mut networks = IntervalSet::empty();
    let mut own = IntervalSet::empty();
    for part in [v4, v6] {
        if let AddrConf::Static { net, own: o } = part {
            networks = networks.union(&net);
            own = own.union(&o);
        }
    }
    Interface {
        name: decl.name.to_string(),
        description: decl.descr.as_deref().map(str::to_string),
        zone_hint: zone_hint(decl.name, decl.descr.as_deref()),
        security_level: None,
        networks,
        own_addresses: own,
        span: Some(decl.span),
    }
}

/// The zone an interface's name and description suggest (DESIGN.md, "Zones").
fn zone_hint(name: &str, descr: Option<&str>) -> Option<Zone> {
    match name {
        "wan" => return Some(Zone::Public),
        "lan" => return Some(Zone::Internal),
        _ => {}
    }
    let d = descr?.to_ascii_lowercase();
    if d.contains("dmz") || d.contains("perimeter") {
        Some(Zone::Perimeter)
    } else if d.contains("lan") || d.contains("inside") || d.contains("internal") {
        Some(Zone::Internal)
    } else if d.contains("wan") || d.contains("outside") || d.contains("internet") {
        Some(Zone::Public)
    } else {
        None
    }
}

/// One address family's configuration of an interface.
#[derive(Clone, Debug)]
enum AddrConf {
    /// Not configured.
    None,
    /// A static address and its subnet.
    Static { net: IntervalSet, own: IntervalSet },
    /// Assigned at run time (`dhcp`, `pppoe`, `track6`, …): the method.
    Dynamic(String),
}

/// Reads `<ipaddr>`/`<subnet>` (or the v6 pair).
fn static_addr(ip: Option<&Text<'_>>, prefix: Option<&Text<'_>>) -> AddrConf {
    let Some(ip) = ip.filter(|t| !t.value.is_empty()) else {
        return AddrConf::None;
    };
    let Ok(a) = ip.value.parse::<IpAddr>() else {
        return AddrConf::Dynamic(ip.value.to_string());
    };
    let own = IntervalSet::single(addr::ip(a));
    let net = prefix
        .and_then(|p| p.value.parse::<u8>().ok())
        .and_then(|len| addr::cidr(a, len))
        .unwrap_or_else(|| own.clone());
    AddrConf::Static { net, own }
}

/// A rule's address family (`<ipprotocol>`); pfSense treats a missing one as inet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fam {
    V4,
    V6,
    Both,
}

impl Fam {
    fn space(self) -> IntervalSet {
        match self {
            Fam::V4 => addr::v4_space(),
            Fam::V6 => addr::v6_space(),
            Fam::Both => IntervalSet::range(0, ADDR_MAX),
        }
    }
}

/// An address or port operand after resolution.
enum Operand {
    /// No restriction.
    Any,
    /// Exactly these values.
    Set(IntervalSet),
    /// Depends on something resolved at run time; the text says what.
    Unknown(Unknown),
    /// Names nothing the config defines.
    Undefined(String),
}

/// The resolved value of an alias.
#[derive(Clone, Debug, Default)]
struct AliasValue {
    addrs: IntervalSet,
    ports: IntervalSet,
    /// Why part of the alias cannot be known statically (URL, FQDN, cycle).
    unknown: Option<Unknown>,
}

/// Why an operand cannot be known from config.xml: the kind its note is counted under,
/// and the text of its `Unknown` condition.
#[derive(Clone, Debug)]
struct Unknown {
    kind: NoteKind,
    text: String,
}

impl Unknown {
    fn new(kind: NoteKind, text: String) -> Unknown {
        Unknown { kind, text }
    }
}

/// What an `unknown-syntax` note is about. A 100k-rule file repeats the same few
/// constructs thousands of times, so notes are counted per kind (as the iptables room
/// does): one note at the first occurrence, saying how many rules share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NoteKind {
    /// An `<ipprotocol>` other than inet, inet6, inet46.
    Family,
    /// A `<protocol>` mislint has no number for.
    Protocol,
    /// `<icmptype>`.
    IcmpType,
    /// An interface address or network assigned at run time (`dhcp`, a tunnel).
    RuntimeAddress,
    /// An alias whose content is fetched at run time (url, urltable, …).
    RuntimeAlias,
    /// A disabled (OPNsense) alias.
    DisabledAlias,
    /// A host name in an alias.
    AliasHostName,
    /// A member of a port alias that is neither a number nor a known service.
    AliasPort,
    /// An alias that contains itself.
    AliasCycle,
    /// A `<port>` service name not in mislint's table.
    ServiceName,
    /// A rule child mislint does not model (`<sched>`, `<tagged>`, …).
    Element(&'static str),
    /// A `<type>` other than pass, block, reject, match.
    RuleType,
    /// A `<direction>` other than in, out, any.
    Direction,
    /// A port forward `<target>` that is not an address.
    ForwardTarget,
}

impl NoteKind {
    /// The note for `count` rules of this kind; `first` is the first one's own text.
    fn message(self, first: &str, count: usize) -> String {
        let rules = if count == 1 { "rule" } else { "rules" };
        let are = if count == 1 { "is" } else { "are" };
        let with = match self {
            NoteKind::Family => "an `<ipprotocol>` mislint does not know".into(),
            NoteKind::Protocol => "a protocol mislint does not know".into(),
            NoteKind::IcmpType => "an `<icmptype>`".into(),
            NoteKind::RuntimeAddress => "an address assigned at run time".into(),
            NoteKind::RuntimeAlias => "an alias whose content is fetched at run time".into(),
            NoteKind::DisabledAlias => "a disabled alias".into(),
            NoteKind::AliasHostName => "a host name in an alias".into(),
            NoteKind::AliasPort => "a port alias member mislint cannot read".into(),
            NoteKind::AliasCycle => "an alias that refers to itself".into(),
            NoteKind::ServiceName => "a port name mislint does not know".into(),
            NoteKind::Element("sched") => "a schedule".into(),
            NoteKind::Element(name) => format!("`<{name}>`"),
            NoteKind::RuleType => {
                return format!(
                    "{first} is not modelled: {count} {rules} of a type mislint does not know may decide anything"
                );
            }
            NoteKind::Direction => {
                return format!(
                    "{first} is not known: {count} {rules} with a direction mislint does not know {are} applied both ways"
                );
            }
            NoteKind::ForwardTarget => {
                let forwards = if count == 1 { "forward" } else { "forwards" };
                return format!(
                    "port forward target {first} is not an address mislint can read: {count} {forwards} {are} not applied"
                );
            }
        };
        format!(
            "{first}: not modelled; {count} {rules} with {with} {are} treated as possibly matching"
        )
    }
}

/// One counted note.
struct Note {
    kind: NoteKind,
    /// The first occurrence's text.
    first: String,
    /// The first occurrence.
    span: Span,
    /// Rules counted.
    count: usize,
    /// The last rule counted, so a rule with two of a kind counts once.
    last_rule: Span,
}

/// `unknown-syntax` notes counted per kind, in order of first occurrence.
#[derive(Default)]
struct Notes {
    entries: Vec<Note>,
}

impl Notes {
    /// Counts one occurrence in the rule at `rule`, at `span`, described by `text`. The
    /// note points at the occurrence earliest in the file (rules are lowered in pf's load
    /// order, floating rules first).
    fn add(&mut self, kind: NoteKind, rule: Span, span: Span, text: &str) {
        // Fourteen kinds at most: a linear search beats hashing.
        if let Some(n) = self.entries.iter_mut().find(|n| n.kind == kind) {
            if n.last_rule != rule {
                n.count += 1;
                n.last_rule = rule;
            }
            if span.start < n.span.start {
                n.span = span;
                text.clone_into(&mut n.first);
            }
            return;
        }
        self.entries.push(Note {
            kind,
            first: text.to_string(),
            span,
            count: 1,
            last_rule: rule,
        });
    }

    /// Adds the counts of notes taken later in the load order, on other rules.
    fn absorb(&mut self, later: Notes) {
        for n in later.entries {
            let Some(e) = self.entries.iter_mut().find(|e| e.kind == n.kind) else {
                self.entries.push(n);
                continue;
            };
            // The runs share no rule, so each counted its own.
            e.count += n.count;
            e.last_rule = n.last_rule;
            if n.span.start < e.span.start {
                e.span = n.span;
                e.first = n.first;
            }
        }
    }

    fn into_findings(self) -> impl Iterator<Item = Finding> {
        self.entries.into_iter().map(|n| {
            Finding::new(
                UNKNOWN_SYNTAX,
                Severity::Note,
                n.span,
                n.kind.message(&n.first, n.count),
            )
            .maybe()
        })
    }
}

/// Where an alias stands in the current expansion.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Not met in this expansion.
    Unseen,
    /// On the expansion stack: meeting it again closes a cycle.
    OnStack,
    /// Already merged into the expansion's result; meeting it again adds nothing.
    Merged,
}

/// Aliases by name, expanded iteratively (no recursion, so 10,000-deep nesting costs
/// heap, not stack). Only aliases that rules name are memoized: memoizing every inner
/// alias of a deep chain would hold a quadratic number of ranges. Within one expansion
/// an alias met twice is merged once (unions are idempotent), so diamond-shaped nesting
/// stays linear, and merging the smaller range list into the larger keeps a deep chain
/// at O(n log n).
#[derive(Clone)]
struct AliasTable<'a> {
    aliases: &'a [Alias<'a>],
    index: HashMap<&'a str, usize>,
    memo: Vec<Option<AliasValue>>,
    /// Generation of the expansion that last set `marks[i]`.
    stamps: Vec<u32>,
    marks: Vec<Mark>,
    generation: u32,
    cycle_reported: HashSet<usize>,
}

/// One alias being expanded: where in its members we are, and what it holds so far.
struct Frame {
    idx: usize,
    pos: usize,
    addrs: Vec<(u128, u128)>,
    ports: Vec<(u128, u128)>,
    unknown: Option<Unknown>,
}

impl Frame {
    fn new(idx: usize) -> Frame {
        Frame {
            idx,
            pos: 0,
            addrs: Vec::new(),
            ports: Vec::new(),
            unknown: None,
        }
    }

    fn absorb_value(&mut self, v: &AliasValue) {
        self.addrs.extend_from_slice(v.addrs.ranges());
        self.ports.extend_from_slice(v.ports.ranges());
        if self.unknown.is_none() {
            self.unknown.clone_from(&v.unknown);
        }
    }

    /// Merges a finished child, appending the shorter list to the longer.
    fn absorb_frame(&mut self, mut child: Frame) {
        if self.addrs.len() < child.addrs.len() {
            std::mem::swap(&mut self.addrs, &mut child.addrs);
        }
        self.addrs.append(&mut child.addrs);
        if self.ports.len() < child.ports.len() {
            std::mem::swap(&mut self.ports, &mut child.ports);
        }
        self.ports.append(&mut child.ports);
        if self.unknown.is_none() {
            self.unknown = child.unknown;
        }
    }
}

impl<'a> AliasTable<'a> {
    fn new(aliases: &'a [Alias<'a>]) -> AliasTable<'a> {
        let mut index = HashMap::with_capacity(aliases.len());
        for (i, a) in aliases.iter().enumerate() {
            // pfSense refuses duplicate names; should one slip in, the first one wins.
            index.entry(&*a.name).or_insert(i);
        }
        AliasTable {
            aliases,
            index,
            memo: vec![None; aliases.len()],
            stamps: vec![0; aliases.len()],
            marks: vec![Mark::Unseen; aliases.len()],
            generation: 0,
            cycle_reported: HashSet::new(),
        }
    }

    /// Expands every alias, and keeps the values if none is part of a cycle (then
    /// expanding reports nothing, and every later lookup is a memo hit). False, and
    /// the table as it was, if some are.
    fn expand_all_acyclic(&mut self) -> bool {
        let mut expanded = self.clone();
        let mut cycles = Vec::new();
        for alias in self.aliases {
            expanded.value(&alias.name, &mut cycles);
        }
        if !cycles.is_empty() {
            return false;
        }
        *self = expanded;
        true
    }

    /// The value of the alias called `name`, or `None` if there is none.
    fn value(&mut self, name: &str, findings: &mut Vec<Finding>) -> Option<&AliasValue> {
        let idx = *self.index.get(name)?;
        if !matches!(self.memo.get(idx), Some(Some(_))) {
            let v = self.expand(idx, findings);
            if let Some(slot) = self.memo.get_mut(idx) {
                *slot = Some(v);
            }
        }
        self.memo.get(idx)?.as_ref()
    }

    fn mark(&self, idx: usize) -> Mark {
        match (self.stamps.get(idx), self.marks.get(idx)) {
            (Some(&g), Some(&m)) if g == self.generation => m,
            _ => Mark::Unseen,
        }
    }

    fn set_mark(&mut self, idx: usize, mark: Mark) {
        if let (Some(g), Some(m)) = (self.stamps.get_mut(idx), self.marks.get_mut(idx)) {
            *g = self.generation;
            *m = mark;
        }
    }

    /// Expands alias `root` depth-first with an explicit stack.
    fn expand(&mut self, root: usize, findings: &mut Vec<Finding>) -> AliasValue {
        self.generation = self.generation.wrapping_add(1);
        self.set_mark(root, Mark::OnStack);
        let mut stack = vec![Frame::new(root)];
        loop {
            let Some(top) = stack.last_mut() else {
                return AliasValue::default();
            };
            let Some(alias) = self.aliases.get(top.idx) else {
                return AliasValue::default();
            };
            let Some(member) = alias.members.get(top.pos) else {
                let Some(mut done) = stack.pop() else {
                    return AliasValue::default();
                };
                self.set_mark(done.idx, Mark::Merged);
                if let Some(why) = runtime_reason(alias) {
                    done.unknown = Some(why);
                }
                match stack.last_mut() {
                    Some(parent) => {
                        parent.absorb_frame(done);
                        parent.pos += 1;
                    }
                    None => {
                        return AliasValue {
                            addrs: IntervalSet::from_ranges(done.addrs),
                            ports: IntervalSet::from_ranges(done.ports),
                            unknown: done.unknown,
                        };
                    }
                }
                continue;
            };
            let Some(&child) = self.index.get(&**member) else {
                classify_member(alias, member, top);
                top.pos += 1;
                continue;
            };
            top.pos += 1;
            if let Some(Some(v)) = self.memo.get(child) {
                top.absorb_value(v);
                continue;
            }
            match self.mark(child) {
                Mark::Merged => {}
                Mark::OnStack => {
                    if top.unknown.is_none() {
                        top.unknown = Some(Unknown::new(
                            NoteKind::AliasCycle,
                            format!("alias `{member}` refers to itself"),
                        ));
                    }
                    if self.cycle_reported.insert(top.idx) {
                        findings.push(Finding::new(
                            REFERENCE_CYCLE,
                            Severity::Error,
                            alias.span,
                            format!(
                                "alias `{}` contains `{member}`, which leads back to `{}`: \
                                 the aliases form a cycle",
                                alias.name, alias.name
                            ),
                        ));
                    }
                }
                Mark::Unseen => {
                    // Undo the advance: the parent moves past `member` once the child is done.
                    top.pos -= 1;
                    self.set_mark(child, Mark::OnStack);
                    stack.push(Frame::new(child));
                }
            }
        }
    }
}

/// Why an alias's content cannot be known from config.xml, if it cannot.
fn runtime_reason(alias: &Alias<'_>) -> Option<Unknown> {
    if is_runtime_alias(&alias.kind) {
        Some(Unknown::new(
            NoteKind::RuntimeAlias,
            format!(
                "alias `{}` is of type `{}`, whose content is fetched at run time",
                alias.name, alias.kind
            ),
        ))
    } else if !alias.enabled {
        Some(Unknown::new(
            NoteKind::DisabledAlias,
            format!("alias `{}` is disabled", alias.name),
        ))
    } else {
        None
    }
}

/// Alias types whose content mislint cannot see in config.xml.
fn is_runtime_alias(kind: &str) -> bool {
    !matches!(
        kind.to_ascii_lowercase().as_str(),
        "host" | "network" | "networkgroup" | "port" | ""
    )
}

/// Adds one literal member (not an alias name) of an alias to the frame.
fn classify_member(alias: &Alias<'_>, member: &str, f: &mut Frame) {
    if alias.kind.eq_ignore_ascii_case("port") {
        match parse_port(member) {
            Some(set) => f.ports.extend_from_slice(set.ranges()),
            None if f.unknown.is_none() => {
                f.unknown = Some(Unknown::new(
                    NoteKind::AliasPort,
                    format!("port `{member}` in alias `{}`", alias.name),
                ));
            }
            None => {}
        }
        return;
    }
    match parse_addr(member) {
        Some(set) => f.addrs.extend_from_slice(set.ranges()),
        None if f.unknown.is_none() => {
            f.unknown = Some(Unknown::new(
                NoteKind::AliasHostName,
                format!(
                    "`{member}` in alias `{}` is a host name resolved at run time",
                    alias.name
                ),
            ));
        }
        None => {}
    }
}

/// An address literal: `a.b.c.d`, `a.b.c.d/len`, `lo-hi`, or the IPv6 forms.
fn parse_addr(s: &str) -> Option<IntervalSet> {
    if let Some((ip, len)) = s.split_once('/') {
        return addr::cidr(ip.parse().ok()?, len.parse().ok()?);
    }
    if let Some((lo, hi)) = s.split_once('-') {
        return addr::span(lo.parse().ok()?, hi.parse().ok()?);
    }
    s.parse::<IpAddr>()
        .ok()
        .map(|a| IntervalSet::single(addr::ip(a)))
}

/// A port literal: `80`, `1024-65535` (rules), `1024:65535` (aliases), or a service name.
fn parse_port(s: &str) -> Option<IntervalSet> {
    let one = |p: &str| p.parse::<u16>().ok().or_else(|| service_port(p));
    if let Some((lo, hi)) = s.split_once(['-', ':']) {
        let (lo, hi) = (one(lo)?, one(hi)?);
        return Some(IntervalSet::range(u128::from(lo), u128::from(hi)));
    }
    one(s).map(|p| IntervalSet::single(u128::from(p)))
}

/// Service names pfSense accepts in place of numbers, from FreeBSD's /etc/services
/// (only the common ones; anything else becomes an unknown condition).
fn service_port(name: &str) -> Option<u16> {
    Some(match name.to_ascii_lowercase().as_str() {
        "ftp" => 21,
        "ssh" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "domain" | "dns" => 53,
        "http" | "www" => 80,
        "kerberos" | "kerberos-sec" => 88,
        "pop3" => 110,
        "ntp" => 123,
        "epmap" | "loc-srv" => 135,
        "netbios-ns" => 137,
        "netbios-dgm" => 138,
        "netbios-ssn" => 139,
        "imap" => 143,
        "snmp" => 161,
        "ldap" => 389,
        "https" => 443,
        "microsoft-ds" => 445,
        "isakmp" => 500,
        "submission" => 587,
        "ldaps" => 636,
        "msft-gc" => 3268,
        "ms-wbt-server" => 3389,
        _ => return None,
    })
}

/// Interface names pfSense uses for traffic that has no `<interfaces>` entry.
fn is_pseudo_interface(name: &str) -> bool {
    matches!(
        name,
        "enc0" | "openvpn" | "l2tp" | "pppoe" | "ipsec" | "wireguard"
    )
}

/// RFC 1918, loopback and IPv6 unique-local: what `<blockpriv>` blocks (pfSense docs,
/// "Block private networks and loopback addresses").
fn private_sources() -> IntervalSet {
    let nets: [(IpAddr, u8); 5] = [
        (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8),
        (IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)), 12),
        (IpAddr::V4(Ipv4Addr::new(192, 168, 0, 0)), 16),
        (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
        (
            IpAddr::V6(std::net::Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)),
            7,
        ),
    ];
    nets.iter()
        .filter_map(|&(a, len)| addr::cidr(a, len))
        .fold(IntervalSet::empty(), |acc, s| acc.union(&s))
}

/// Lowering state: interface addresses, aliases, findings.
struct Lowerer<'a> {
    cfg: &'a Config<'a>,
    v4: HashMap<&'a str, AddrConf>,
    v6: HashMap<&'a str, AddrConf>,
    groups: HashMap<&'a str, &'a [Str<'a>]>,
    self_addrs: IntervalSet,
    aliases: AliasTable<'a>,
    undefined_ifaces: Vec<String>,
    findings: Vec<Finding>,
    notes: Notes,
}

impl<'a> Lowerer<'a> {
    fn new(cfg: &'a Config<'a>) -> Lowerer<'a> {
        let mut v4 = HashMap::new();
        let mut v6 = HashMap::new();
        let mut self_addrs = IntervalSet::empty();
        for i in &cfg.interfaces {
            let a4 = static_addr(i.ipaddr.as_ref(), i.subnet.as_ref());
            let a6 = static_addr(i.ipaddrv6.as_ref(), i.subnetv6.as_ref());
            for a in [&a4, &a6] {
                if let AddrConf::Static { own, .. } = a {
                    self_addrs = self_addrs.union(own);
                }
            }
            v4.insert(i.name, a4);
            v6.insert(i.name, a6);
        }
        let groups = cfg
            .ifgroups
            .iter()
            .map(|g| (&*g.name, g.members.as_slice()))
            .collect();
        Lowerer {
            cfg,
            v4,
            v6,
            groups,
            self_addrs,
            aliases: AliasTable::new(&cfg.aliases),
            undefined_ifaces: Vec::new(),
            findings: Vec::new(),
            notes: Notes::default(),
        }
    }

    /// A copy for lowering a run of rules, with nothing found yet.
    fn fresh_copy(&self) -> Lowerer<'a> {
        Lowerer {
            cfg: self.cfg,
            v4: self.v4.clone(),
            v6: self.v6.clone(),
            groups: self.groups.clone(),
            self_addrs: self.self_addrs.clone(),
            aliases: self.aliases.clone(),
            undefined_ifaces: Vec::new(),
            findings: Vec::new(),
            notes: Notes::default(),
        }
    }

    /// Takes over what a copy found lowering the rules after those lowered so far.
    fn absorb(&mut self, later: Lowerer<'a>) {
        self.findings.extend(later.findings);
        self.notes.absorb(later.notes);
        for name in later.undefined_ifaces {
            if !self.undefined_ifaces.contains(&name) {
                self.undefined_ifaces.push(name);
            }
        }
    }

    fn note(&mut self, span: Span, message: String) {
        self.findings
            .push(Finding::new(UNKNOWN_SYNTAX, Severity::Note, span, message).maybe());
    }

    /// An `Unknown` condition of rule `r`, counted for its kind's note.
    fn unknown(&mut self, r: &FilterRule<'_>, kind: NoteKind, span: Span, text: String) -> Cond {
        self.notes.add(kind, r.span, span, &text);
        Cond {
            kind: CondKind::Unknown(text),
            span,
        }
    }

    /// Lowers one rule; `None` if it is disabled or pfSense would not load it.
    fn lower_rule(&mut self, r: &FilterRule<'_>) -> Option<Lowered> {
        if r.disabled {
            return None;
        }
        let mut conds = Vec::new();
        let (action, action_span) = self.lower_action(r);
        let (fam, fam_span) = self.lower_family(r, &mut conds);
        let ports_apply = self.lower_protocol(r, fam, &mut conds);
        let absent = Endpoint {
            span: r.span,
            ..Endpoint::default()
        };
        let src = r.source.as_ref().unwrap_or(&absent);
        let dst = r.destination.as_ref().unwrap_or(&absent);
        let src_set = self.lower_address(r, src, fam, true, &mut conds)?;
        if !src_set && fam != Fam::Both {
            // `<ipprotocol>` alone restricts the source to one family.
            conds.push(Cond {
                kind: CondKind::SrcAddr(fam.space()),
                span: fam_span.unwrap_or(src.span),
            });
        }
        if ports_apply {
            self.lower_port(r, src, true, &mut conds)?;
        }
        self.lower_address(r, dst, fam, false, &mut conds)?;
        if ports_apply {
            self.lower_port(r, dst, false, &mut conds)?;
        }
        for u in &r.unmodelled {
            let text = match u.element {
                "sched" => format!("schedule `{}`", u.value.value),
                element => format!("`{element} {}`", u.value.value),
            };
            let c = self.unknown(r, NoteKind::Element(u.element), u.value.span, text);
            conds.push(c);
        }
        let ifaces = self.lower_interfaces(r)?;
        let (inbound, outbound) = self.lower_direction(r);
        Some(Lowered {
            conds,
            action,
            span: r.span,
            action_span,
            comment: r.descr.as_deref().map(str::to_string),
            quick: self.is_quick(r),
            inbound,
            outbound,
            ifaces,
        })
    }

    /// `<type>`: absent means pass.
    fn lower_action(&mut self, r: &FilterRule<'_>) -> (Action, Span) {
        let Some(t) = &r.action else {
            return (Action::Accept, r.span);
        };
        let action = match t.value.to_ascii_lowercase().as_str() {
            "pass" | "" => Action::Accept,
            "block" => Action::Drop,
            "reject" => Action::Reject,
            // A match rule applies queues, tags or gateways and never decides.
            "match" => Action::Continue("match".into()),
            other => {
                let text = format!("rule type `{other}`");
                self.notes.add(NoteKind::RuleType, r.span, t.span, &text);
                Action::Unknown(other.to_string())
            }
        };
        (action, t.span)
    }

    /// `<ipprotocol>`.
    fn lower_family(&mut self, r: &FilterRule<'_>, conds: &mut Vec<Cond>) -> (Fam, Option<Span>) {
        let Some(t) = &r.ipprotocol else {
            return (Fam::V4, None);
        };
        let fam = match &*t.value {
            "inet" | "" => Fam::V4,
            "inet6" => Fam::V6,
            "inet46" => Fam::Both,
            other => {
                let c = self.unknown(r, NoteKind::Family, t.span, format!("ipprotocol `{other}`"));
                conds.push(c);
                Fam::Both
            }
        };
        (fam, Some(t.span))
    }

    /// `<protocol>` (and `<icmptype>`); returns true if ports apply, which pfSense does
    /// only for tcp, udp and tcp/udp (it ignores `<port>` for anything else).
    fn lower_protocol(&mut self, r: &FilterRule<'_>, fam: Fam, conds: &mut Vec<Cond>) -> bool {
        let Some(t) = r.protocol.as_ref().filter(|t| !t.value.is_empty()) else {
            return false;
        };
        let value = t.value.to_ascii_lowercase();
        let protos: Vec<u8> = match value.as_str() {
            "any" => return false,
            "tcp/udp" => vec![proto::TCP, proto::UDP],
            // pfSense writes `icmp` for ICMPv6 too; the family decides which it is.
            "icmp" => match fam {
                Fam::V4 => vec![proto::ICMP],
                Fam::V6 => vec![proto::ICMPV6],
                Fam::Both => vec![proto::ICMP, proto::ICMPV6],
            },
            "pfsync" => vec![240],
            other => match other.parse::<u8>().ok().or_else(|| proto::by_name(other)) {
                Some(p) => vec![p],
                None => {
                    let c =
                        self.unknown(r, NoteKind::Protocol, t.span, format!("protocol `{other}`"));
                    conds.push(c);
                    return false;
                }
            },
        };
        conds.push(Cond {
            kind: CondKind::Protocol(IntervalSet::from_ranges(
                protos.iter().map(|&p| (u128::from(p), u128::from(p))),
            )),
            span: t.span,
        });
        if value == "icmp"
            && let Some(it) = r
                .icmptype
                .as_ref()
                .filter(|i| !i.value.is_empty() && i.value != "any")
        {
            let c = self.unknown(
                r,
                NoteKind::IcmpType,
                it.span,
                format!("icmptype `{}`", it.value),
            );
            conds.push(c);
        }
        matches!(value.as_str(), "tcp" | "udp" | "tcp/udp")
    }

    /// The address of `<source>`/`<destination>`; pushes its condition. Returns
    /// `Some(true)` if it restricts the field, `Some(false)` if not, `None` to skip the rule.
    fn lower_address(
        &mut self,
        r: &FilterRule<'_>,
        ep: &Endpoint<'_>,
        fam: Fam,
        is_src: bool,
        conds: &mut Vec<Cond>,
    ) -> Option<bool> {
        let token = ep.network.as_ref().or(ep.address.as_ref());
        let operand = match token {
            Some(t) => self.resolve_host(&t.value),
            None => Operand::Any,
        };
        let field = if is_src { "source" } else { "destination" };
        let set = match operand {
            Operand::Any if !ep.not => return Some(false),
            Operand::Any => IntervalSet::empty(),
            Operand::Set(s) => s,
            Operand::Unknown(why) => {
                let c = self.unknown(r, why.kind, ep.span, format!("{field} {}", why.text));
                conds.push(c);
                return Some(false);
            }
            Operand::Undefined(name) => {
                self.skip_rule(r, ep.span, &name);
                return None;
            }
        };
        let space = fam.space();
        let set = if ep.not {
            space.subtract(&set)
        } else {
            set.intersect(&space)
        };
        let kind = if is_src {
            CondKind::SrcAddr(set)
        } else {
            CondKind::DstAddr(set)
        };
        conds.push(Cond {
            kind,
            span: ep.span,
        });
        Some(true)
    }

    /// pfSense does not load a rule whose alias does not resolve ("unresolvable alias").
    fn skip_rule(&mut self, r: &FilterRule<'_>, span: Span, name: &str) {
        self.findings.push(
            Finding::new(
                UNDEFINED_REFERENCE,
                Severity::Warning,
                span,
                format!("`{name}` is neither an interface, an address nor a defined alias"),
            )
            .with_related(r.span, "pfSense skips this rule when it loads the ruleset"),
        );
    }

    /// A host token: `any`, `(self)`, `lan`, `lanip`, an address literal or an alias.
    fn resolve_host(&mut self, token: &str) -> Operand {
        match token {
            "" | "any" => return Operand::Any,
            "(self)" | "self" => return Operand::Set(self.self_addrs.clone()),
            _ => {}
        }
        if self.v4.contains_key(token) {
            return self.iface_operand(token, false);
        }
        if let Some(name) = token.strip_suffix("ip")
            && self.v4.contains_key(name)
        {
            return self.iface_operand(name, true);
        }
        if let Some(set) = parse_addr(token) {
            return Operand::Set(set);
        }
        if let Some(v) = self.aliases.value(token, &mut self.findings) {
            return match &v.unknown {
                Some(why) => Operand::Unknown(why.clone()),
                None => Operand::Set(v.addrs.clone()),
            };
        }
        if is_pseudo_interface(token) {
            return Operand::Unknown(Unknown::new(
                NoteKind::RuntimeAddress,
                format!("network `{token}` is assigned at run time"),
            ));
        }
        Operand::Undefined(token.to_string())
    }

    /// The subnet (or, with `own`, the address) of a declared interface.
    fn iface_operand(&self, name: &str, own: bool) -> Operand {
        let mut out = IntervalSet::empty();
        for map in [&self.v4, &self.v6] {
            match map.get(name) {
                Some(AddrConf::Static { net, own: o }) => {
                    out = out.union(if own { o } else { net });
                }
                Some(AddrConf::Dynamic(method)) => {
                    // A v6 method like `track6` on a v4-only rule would not matter, but
                    // the rule's family is applied later, so stay on the safe side.
                    return Operand::Unknown(Unknown::new(
                        NoteKind::RuntimeAddress,
                        format!(
                            "`{name}{}` is assigned at run time (`{method}`)",
                            if own { "ip" } else { "" }
                        ),
                    ));
                }
                _ => {}
            }
        }
        Operand::Set(out)
    }

    /// `<port>` of an endpoint; `None` to skip the rule.
    fn lower_port(
        &mut self,
        r: &FilterRule<'_>,
        ep: &Endpoint<'_>,
        is_src: bool,
        conds: &mut Vec<Cond>,
    ) -> Option<()> {
        let Some(t) = &ep.port else {
            return Some(());
        };
        let operand = if t.value == "any" {
            Operand::Any
        } else if let Some(set) = parse_port(&t.value) {
            Operand::Set(set)
        } else if let Some(v) = self.aliases.value(&t.value, &mut self.findings) {
            match &v.unknown {
                Some(why) => Operand::Unknown(why.clone()),
                None => Operand::Set(v.ports.clone()),
            }
        } else if t
            .value
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == ':')
        {
            Operand::Undefined(t.value.to_string())
        } else {
            Operand::Unknown(Unknown::new(
                NoteKind::ServiceName,
                format!("port `{}` is not a known service name", t.value),
            ))
        };
        let set = match operand {
            Operand::Any => return Some(()),
            Operand::Set(s) => s,
            Operand::Unknown(why) => {
                let field = if is_src {
                    "source port"
                } else {
                    "destination port"
                };
                let c = self.unknown(r, why.kind, t.span, format!("{field}: {}", why.text));
                conds.push(c);
                return Some(());
            }
            Operand::Undefined(name) => {
                self.skip_rule(r, t.span, &name);
                return None;
            }
        };
        let kind = if is_src {
            CondKind::SrcPort(set)
        } else {
            CondKind::DstPort(set)
        };
        conds.push(Cond { kind, span: t.span });
        Some(())
    }

    /// `<interface>`: `Some(None)` for a floating rule on every interface, `None` to skip.
    fn lower_interfaces(&mut self, r: &FilterRule<'_>) -> Option<Option<(IfaceMatch, Span)>> {
        let names: Vec<&str> = r
            .interface
            .as_ref()
            .map(|t| {
                t.value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let span = r.interface.as_ref().map_or(r.span, |t| t.span);
        if names.is_empty() {
            if r.floating {
                return Some(None);
            }
            self.findings.push(Finding::new(
                UNDEFINED_REFERENCE,
                Severity::Warning,
                r.span,
                "interface rule without `<interface>`: pfSense cannot place it, mislint skips it"
                    .to_string(),
            ));
            return None;
        }
        let mut patterns = Vec::new();
        for name in names {
            if self.v4.contains_key(name) {
                patterns.push(pattern(name));
            } else if let Some(members) = self.groups.get(name) {
                patterns.extend(members.iter().map(|m| pattern(m)));
            } else {
                self.report_undefined_iface(name, span);
                patterns.push(pattern(name));
            }
        }
        Some(Some((
            IfaceMatch {
                patterns,
                negated: r.interface_not,
            },
            span,
        )))
    }

    fn report_undefined_iface(&mut self, name: &str, span: Span) {
        let (severity, message) = if is_pseudo_interface(name) {
            (
                Severity::Note,
                format!(
                    "rules on `{name}` apply to tunnel traffic no `<interfaces>` entry declares; no zone maps to it unless you map one"
                ),
            )
        } else {
            (
                Severity::Warning,
                format!(
                    "interface `{name}` is not defined in `<interfaces>`; its rules are kept but match no declared interface"
                ),
            )
        };
        self.findings
            .push(Finding::new(UNDEFINED_REFERENCE, severity, span, message));
        if !self.undefined_ifaces.iter().any(|n| n == name) {
            self.undefined_ifaces.push(name.to_string());
        }
    }

    /// Which stages a rule is in: pfSense interface rules filter inbound only; floating
    /// (and OPNsense) rules follow `<direction>`.
    fn lower_direction(&mut self, r: &FilterRule<'_>) -> (bool, bool) {
        if !r.floating && self.cfg.flavor == Flavor::PfSense {
            return (true, false);
        }
        let default = if r.floating { "any" } else { "in" };
        let dir = r.direction.as_ref().map_or(default, |t| {
            if t.value.is_empty() {
                default
            } else {
                &*t.value
            }
        });
        match dir {
            "in" => (true, false),
            "out" => (false, true),
            "any" => (true, true),
            other => {
                let span = r.direction.as_ref().map_or(r.span, |t| t.span);
                let text = format!("direction `{other}`");
                self.notes.add(NoteKind::Direction, r.span, span, &text);
                (true, true)
            }
        }
    }

    /// pfSense: interface rules are always quick, floating rules only with `<quick>`.
    /// OPNsense: `<quick>` decides, and defaults to quick except on floating rules.
    fn is_quick(&self, r: &FilterRule<'_>) -> bool {
        let off = |v: &str| matches!(v, "0" | "no" | "false");
        match (self.cfg.flavor, r.origin, &r.quick) {
            (Flavor::PfSense, Origin::Legacy, _) if !r.floating => true,
            (Flavor::PfSense, _, q) => q.as_ref().is_some_and(|t| !off(&t.value)),
            (Flavor::OpnSense, Origin::Automation, None) => true,
            (Flavor::OpnSense, _, None) => !r.floating,
            (Flavor::OpnSense, _, Some(t)) => !t.value.is_empty() && !off(&t.value),
        }
    }

    /// Rules pfSense generates itself above the user's: `<blockpriv>` on an interface.
    fn implicit_blocks(&mut self) -> Vec<Rule> {
        let mut out = Vec::new();
        for i in &self.cfg.interfaces {
            if let Some(span) = i.blockpriv {
                out.push(Rule {
                    conds: vec![
                        Cond {
                            kind: CondKind::InIface(IfaceMatch {
                                patterns: vec![pattern(i.name)],
                                negated: false,
                            }),
                            span,
                        },
                        Cond {
                            kind: CondKind::SrcAddr(private_sources()),
                            span,
                        },
                    ],
                    action: Action::Drop,
                    span,
                    action_span: span,
                    comment: Some(format!("block private networks on `{}`", i.name)),
                });
            }
            if let Some(span) = i.blockbogons {
                self.findings.push(
                    Finding::new(
                        UNKNOWN_SYNTAX,
                        Severity::Note,
                        span,
                        format!(
                            "bogon networks blocked on `{}` come from a list pfSense downloads; \
                             mislint does not apply that block",
                            i.name
                        ),
                    )
                    .maybe(),
                );
            }
        }
        out
    }

    /// Port forwards (`<nat><rule>`): each becomes a destination rewrite in the `rdr`
    /// stage, matched like a filter rule on its interface, protocol, source and
    /// destination. A forward whose filter rule is "pass" (`associated-rule-id` = `pass`)
    /// is let through by pf without filter rules: that becomes a quick pass of the
    /// translated traffic on the interface.
    fn lower_port_forwards(&mut self, cfg: &'a Config<'a>) -> PortForwards {
        let mut out = PortForwards::default();
        for pf in cfg.port_forwards.iter().filter(|p| !p.disabled) {
            let text = |v: &Option<Str<'a>>| {
                v.clone().map(|value| Text {
                    value,
                    span: pf.span,
                })
            };
            let as_filter = FilterRule {
                interface: text(&pf.interface),
                protocol: text(&pf.protocol),
                source: pf.source.clone(),
                destination: pf.destination.clone(),
                ..FilterRule::empty(Origin::Legacy, pf.span)
            };
            let Some(matched) = self.lower_rule(&as_filter) else {
                continue;
            };
            let target = pf.target.as_deref().and_then(parse_target_address);
            let ports = match pf.local_port.as_deref() {
                None | Some("") => None,
                Some(p) => parse_port_range(p),
            };
            let Some(target) = target else {
                let text = pf
                    .target
                    .as_deref()
                    .filter(|t| !t.is_empty())
                    .map_or_else(|| "(none)".to_string(), |t| format!("`{t}`"));
                self.notes
                    .add(NoteKind::ForwardTarget, pf.span, pf.span, &text);
                continue;
            };
            let mut conds = Vec::new();
            if let Some((m, span)) = &matched.ifaces {
                conds.push(Cond {
                    kind: CondKind::InIface(m.clone()),
                    span: *span,
                });
            }
            if pf.associated_rule_id.as_deref() == Some("pass") {
                let mut pass = conds.clone();
                pass.extend(
                    matched
                        .conds
                        .iter()
                        .filter(|c| matches!(c.kind, CondKind::Protocol(_)))
                        .cloned(),
                );
                pass.push(Cond {
                    kind: CondKind::DstAddr(target.clone()),
                    span: pf.span,
                });
                if let Some(p) = &ports {
                    pass.push(Cond {
                        kind: CondKind::DstPort(p.clone()),
                        span: pf.span,
                    });
                }
                out.pass.push(Rule {
                    conds: pass,
                    action: Action::Accept,
                    span: pf.span,
                    action_span: pf.span,
                    comment: Some("port forward with a pass filter rule".into()),
                });
            }
            conds.extend(matched.conds);
            out.rdr.push(Rule {
                conds,
                action: Action::dnat(crate::graph::NatTarget {
                    addrs: Some(target),
                    ports,
                }),
                span: pf.span,
                action_span: pf.span,
                comment: None,
            });
        }
        out
    }

    /// One note each for 1:1 NAT and OPNsense automation rules, which are not applied
    /// exactly.
    /// `automation` is the first OPNsense automation rule, if any.
    fn note_unapplied(&mut self, cfg: &Config<'_>, automation: Option<Span>) {
        if let Some(&span) = cfg.one_to_one.first() {
            self.note(
                span,
                "1:1 NAT entries are parsed but not yet applied to the analysis".into(),
            );
        }
        if let Some(first) = automation {
            self.note(
                first,
                "OPNsense automation rules are placed before the floating and interface rules \
                 (assumed order)"
                    .into(),
            );
        }
    }
}

/// An exact interface pattern.
fn pattern(name: &str) -> IfacePattern {
    IfacePattern {
        name: name.to_string(),
        prefix: false,
    }
}
