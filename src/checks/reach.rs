//! Chain-local reachability of rules, shared by `shadowed-rule` and `redundant-rule`.
//!
//! Both checks ask a question about one rule inside its own chain, independent of any
//! zone or policy: can a packet reach it (is its cube covered by the union of earlier
//! rules that decide their packets), and would the packets it decides be decided the
//! same way by the later rules if it were gone. Both are answered exactly with cube
//! subtraction, as in Batfish's line reachability, but without comparing every pair of
//! rules: each chain gets an index of rule cubes keyed by (protocol, destination port)
//! and, inside that, by the narrow destination or source address ranges rules name, so a
//! rule only meets the earlier rules that can overlap it. Most rules are settled by two
//! probe packets (the lowest and the highest packet of the rule's cube): a probe that no
//! earlier deciding rule holds proves the rule reachable at once, and a covered probe
//! whose covering rule holds the whole rule proves it dead. Otherwise an exact,
//! witness-driven subtraction runs: take a packet of what is left, subtract every
//! earlier rule that holds it, repeat — one point query per round — within a work
//! budget; a rule that exceeds it is counted as not analysed and never reported (no
//! guess, no false positive). Redundancy is a second pass over the later rules; dead
//! rules take no part in it, except those that the examined line itself helps to kill
//! (removing the line would bring them back).
//!
//! Implicit rules — the ASA implicit deny and security levels, pfSense's `<blockpriv>`
//! rules and port forwards, the ASA access-group dispatch — are analysed as rules but
//! never reported: see [`implicit_spans`].

use crate::analysis::cube::{FIELDS, Field};
use crate::analysis::{Cube, Decider, Model};
use crate::graph::{Action, ChainId, IntervalSet, NatTarget, RuleGraph};
use crate::source::Span;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Earlier or later rules one query may return before the rule is given up on.
const MAX_CANDIDATES: usize = 4096;
/// Rounds of the witness-driven subtraction before the rule is given up on.
const MAX_ROUNDS: usize = 256;
/// Pieces a subtraction may split into before the rule is given up on.
const MAX_PIECES: usize = 512;
/// Address ranges narrower than this go into an address map; wider ones are scanned.
const NARROW: u128 = 1 << 16;
/// Ranges of one address set an index entry or query spells out before using the hull.
const MAX_RANGES: usize = 64;

/// What a rule does to the packets it matches, as far as the rest of its chain sees:
/// those packets never reach a later rule of the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect<'g> {
    /// Accepted (in this stage).
    Accept,
    /// Dropped.
    Drop,
    /// Rejected.
    Reject,
    /// Continued in another chain for good.
    Goto(ChainId),
    /// Handed to a chain that decides every packet it gets.
    Call(ChainId),
    /// The end of the chain: a `Return`, or falling off the last rule.
    End,
    /// Rewritten by destination NAT.
    Dnat(&'g NatTarget),
}

impl Effect<'_> {
    /// A word for messages.
    pub fn describe(&self) -> String {
        match self {
            Effect::Accept => "accept".into(),
            Effect::Drop => "drop".into(),
            Effect::Reject => "reject".into(),
            Effect::Goto(_) => "the same goto".into(),
            Effect::Call(_) => "the same jump".into(),
            Effect::End => "return".into(),
            Effect::Dnat(_) => "the same destination NAT".into(),
        }
    }
}

/// Facts about the graph's chains that the effects depend on.
pub struct ChainFacts<'g> {
    graph: &'g RuleGraph,
    /// Chains a stage enters.
    stage_entries: HashSet<usize>,
    /// Chains some rule jumps or goes to.
    targets: HashSet<usize>,
    /// Chains that decide every packet they are called with.
    decides: Vec<bool>,
}

impl<'g> ChainFacts<'g> {
    /// Collects the facts of `graph`.
    pub fn new(graph: &'g RuleGraph) -> ChainFacts<'g> {
        let stage_entries = graph.stages.iter().map(|s| s.chain.0).collect();
        let targets = graph
            .rules()
            .filter_map(|(_, _, r)| match r.action {
                Action::Jump(t) | Action::Goto(t) => Some(t.0),
                _ => None,
            })
            .collect();
        let decides = graph.chains.iter().map(always_decides).collect();
        ChainFacts {
            graph,
            stage_entries,
            targets,
            decides,
        }
    }

    /// What the packets that fall off the end of `chain` get. In a chain only a stage
    /// enters, that is the chain's default; elsewhere it is "back to the caller", which
    /// only a `Return` equals.
    pub fn end_effect(&self, chain: ChainId) -> Effect<'g> {
        let default = self.graph.chain(chain).default.as_ref();
        match default {
            Some(d)
                if self.stage_entries.contains(&chain.0) && !self.targets.contains(&chain.0) =>
            {
                verdict_effect(&d.action).unwrap_or(Effect::End)
            }
            _ => Effect::End,
        }
    }

    /// The effect of `action` in `chain`, or `None` if matching packets may go on to the
    /// next rule (LOG and other non-terminating targets, a jump that may return, a
    /// target mislint does not model).
    pub fn effect(&self, chain: ChainId, action: &'g Action) -> Option<Effect<'g>> {
        match action {
            Action::Accept | Action::Drop | Action::Reject => verdict_effect(action),
            Action::Goto(t) => Some(Effect::Goto(*t)),
            Action::Jump(t) if self.decides.get(t.0).copied().unwrap_or(false) => {
                Some(Effect::Call(*t))
            }
            Action::Return => Some(self.end_effect(chain)),
            Action::Dnat(t) => Some(Effect::Dnat(t)),
            Action::Jump(_) | Action::Continue(_) | Action::Unknown(_) => None,
        }
    }
}

fn verdict_effect<'g>(action: &Action) -> Option<Effect<'g>> {
    match action {
        Action::Accept => Some(Effect::Accept),
        Action::Drop => Some(Effect::Drop),
        Action::Reject => Some(Effect::Reject),
        _ => None,
    }
}

/// True if every packet a chain is called with gets a verdict inside it: an
/// unconditional accept, drop, reject or NAT comes before any `Return` or `Goto` (a
/// goto'd chain's end returns past this one, to our caller). Calls it makes come back to
/// it, so they do not matter. A one-level test: enough for `-j LOGDROP`-style chains.
fn always_decides(chain: &crate::graph::Chain) -> bool {
    for r in &chain.rules {
        match r.action {
            Action::Return | Action::Goto(_) => return false,
            Action::Accept | Action::Drop | Action::Reject | Action::Dnat(_)
                if r.conds.is_empty() =>
            {
                return true;
            }
            _ => {}
        }
    }
    false
}

/// Spans of rules that lower vendor behaviour no rule line spells out. Their lowering
/// gives them no action token of their own (the action span is the whole causing line:
/// ASA implicit deny and security levels, same-security-traffic, pfSense `<blockpriv>`,
/// port forwards, NAT), or an empty span. Every rule sharing such a span is implicit too:
/// the ASA `access-group` line spans both its implicit deny and the dispatch into the
/// access-list (whose action span is the access-list name).
pub fn implicit_spans(graph: &RuleGraph) -> HashSet<Span> {
    graph
        .rules()
        .filter(|(_, _, r)| r.action_span == r.span || r.span.start == r.span.end)
        .map(|(_, _, r)| r.span)
        .collect()
}

/// The result for one rule that may be reported.
#[derive(Debug)]
pub struct RuleResult<'g> {
    /// The rule.
    pub decider: Decider,
    /// Its line.
    pub span: Span,
    /// Whether packets reach it.
    pub reach: Reach,
    /// Whether removing it changes nothing (computed only if asked for).
    pub redundancy: Redundancy<'g>,
}

/// Can a packet reach the rule and match it?
#[derive(Debug)]
pub enum Reach {
    /// Yes (the packet that shows it is kept only while the chain is analysed: the
    /// results of a big file are many, and the checks never read it).
    Live,
    /// No: the earlier rules (chain indices) that decide its packets.
    Dead(Vec<usize>),
    /// Its cube is empty: it matches nothing at all (not a matter of order).
    Empty,
    /// The work budget ran out.
    Cut,
}

/// Would the later rules decide its packets the same way?
#[derive(Debug)]
pub enum Redundancy<'g> {
    /// Not computed, or the rule does not decide (LOG, jump) — nothing to say.
    Unknown,
    /// No.
    No,
    /// Yes: the effect, the later deciders (rules or the chain's default), and a packet.
    Yes(Effect<'g>, Vec<Decider>, Box<Cube>),
    /// The work budget ran out.
    Cut,
}

/// Analyses every reportable rule of every chain; redundancy only if `redundancy`.
pub fn analyse<'g>(model: &Model<'g>, redundancy: bool) -> Vec<RuleResult<'g>> {
    let graph = model.graph;
    let facts = ChainFacts::new(graph);
    let implicit = implicit_spans(graph);
    // One result per reportable rule at most: sized once, so that the results of a
    // 100k-rule file are not copied as the vector doubles.
    let mut out = Vec::with_capacity(
        graph
            .rules()
            .filter(|(_, _, r)| !implicit.contains(&r.span))
            .count(),
    );
    for (c, chain) in graph.chains.iter().enumerate() {
        let id = ChainId(c);
        let rules: Vec<ChainRule<'_, 'g>> = chain
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let (cube, unknown) = model.rule_cube(id, i)?;
                Some(ChainRule {
                    cube,
                    unknown,
                    effect: facts.effect(id, &r.action),
                    continues: matches!(r.action, Action::Continue(_)),
                    span: r.span,
                    reportable: !implicit.contains(&r.span),
                })
            })
            .collect();
        if rules.len() != chain.rules.len() || !rules.iter().any(|r| r.reportable) {
            continue;
        }
        let mut cx = ChainCx {
            id,
            rules: &rules,
            earlier: RuleIndex::default(),
            all: RuleIndex::default(),
            end: facts.end_effect(id),
            recent: Vec::new(),
            scratch: Vec::new(),
            revivable: HashMap::new(),
        };
        // Pass 1, in chain order: reachability against the earlier rules, with a packet
        // that reaches each live rule.
        let mut reach: Vec<Option<(Reach, Option<Point>)>> = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            reach.push(r.reportable.then(|| cx.reach(i)));
            if r.effect.is_some() && !r.unknown {
                cx.earlier.insert(r.cube, i);
            }
        }
        // Pass 2: redundancy against the later rules. A dead rule matches no packet, so
        // the later rules that matter are the live ones — plus the dead ones that only
        // this rule's line helps to kill, which its removal would bring back.
        if redundancy {
            for (k, r) in rules.iter().enumerate() {
                match reach.get(k) {
                    Some(Some((Reach::Dead(by), _))) => {
                        for &u in by {
                            if let Some(x) = rules.get(u) {
                                cx.revivable.entry(x.span).or_default().push(k);
                            }
                        }
                    }
                    Some(Some((Reach::Empty, _))) => {}
                    _ => cx.all.insert(r.cube, k),
                }
            }
        }
        for (i, (r, reach)) in rules.iter().zip(reach).enumerate() {
            let Some((reach, probe)) = reach else {
                continue;
            };
            let redundancy = match (probe, redundancy) {
                (Some(p), true) => cx.redundancy(i, &p),
                _ => Redundancy::Unknown,
            };
            out.push(RuleResult {
                decider: Decider {
                    chain: id,
                    rule: Some(i),
                },
                span: r.span,
                reach,
                redundancy,
            });
        }
    }
    out
}

/// One rule as the analysis sees it.
struct ChainRule<'m, 'g> {
    cube: &'m Cube,
    unknown: bool,
    effect: Option<Effect<'g>>,
    /// A non-terminating target (LOG, MARK): matching packets go on.
    continues: bool,
    span: Span,
    reportable: bool,
}

/// The state of one chain's pass.
struct ChainCx<'r, 'm, 'g> {
    id: ChainId,
    rules: &'r [ChainRule<'m, 'g>],
    /// Earlier rules that surely decide their packets (known conditions, an effect).
    earlier: RuleIndex,
    /// Every rule of the chain (filled only for redundancy).
    all: RuleIndex,
    end: Effect<'g>,
    /// The last few rules found to hold a whole later rule: a broad rule usually kills
    /// a run of the rules after it, and trying it first skips the index.
    recent: Vec<usize>,
    /// A reused buffer for candidate ids.
    scratch: Vec<u32>,
    /// Dead rules by the line of a rule that helps to kill them.
    revivable: HashMap<Span, Vec<usize>>,
}

/// What the earlier deciding rules do to a probe packet.
enum Cover {
    /// None holds it: the rule is reachable.
    None,
    /// Some hold it, none holds the whole rule.
    Probe,
    /// This one holds the whole rule.
    Whole(usize),
}

/// How a walk over the later rules ended.
#[derive(Debug, PartialEq, Eq)]
enum Walk {
    /// Every piece got the same effect.
    Same,
    /// Some piece may get another effect.
    Differs,
    /// Too much work.
    Cut,
}

/// Recent whole-rule coverers remembered.
const RECENT: usize = 4;

impl<'g> ChainCx<'_, '_, 'g> {
    /// Whether rule `i` can be reached, given the earlier rules in the index, and a
    /// packet that reaches it if it can.
    fn reach(&mut self, i: usize) -> (Reach, Option<Point>) {
        match self.reach_point(i) {
            Ok(p) => (Reach::Live, Some(p)),
            Err(reach) => (reach, None),
        }
    }

    /// A packet that reaches rule `i`, or why there is none.
    fn reach_point(&mut self, i: usize) -> Result<Point, Reach> {
        let Some(rule) = self.rules.get(i) else {
            return Err(Reach::Cut);
        };
        let cube = rule.cube;
        let (Some(low), Some(high)) = (low_point(cube), high_point(cube)) else {
            return Err(Reach::Empty);
        };
        if let Some(&j) = self
            .recent
            .iter()
            .find(|&&j| self.rules.get(j).is_some_and(|r| cube.is_subset(r.cube)))
        {
            return Err(Reach::Dead(vec![j]));
        }
        for probe in [low, high] {
            match self.earlier_cover(&probe, cube) {
                Cover::None => return Ok(probe),
                Cover::Whole(j) => {
                    self.recent.retain(|&k| k != j);
                    self.recent.insert(0, j);
                    self.recent.truncate(RECENT);
                    return Err(Reach::Dead(vec![j]));
                }
                Cover::Probe => {}
            }
        }
        match self.remainder(i) {
            None => Err(Reach::Cut),
            Some((pieces, used)) => match pieces.first().and_then(low_point) {
                Some(p) => Ok(p),
                None => Err(Reach::Dead(used)),
            },
        }
    }

    /// Whether earlier deciding rules hold the packet `probe`, and whether one of those
    /// holds all of `whole` (the usual way a rule is dead: one broader rule above it).
    fn earlier_cover(&mut self, probe: &Point, whole: &Cube) -> Cover {
        let mut ids = std::mem::take(&mut self.scratch);
        ids.clear();
        self.earlier.candidates_at(probe, &mut ids);
        ids.sort_unstable();
        let mut cover = Cover::None;
        for &j in &ids {
            let Some(r) = self.rules.get(j as usize) else {
                continue;
            };
            if contains(r.cube, probe) {
                if whole.is_subset(r.cube) {
                    cover = Cover::Whole(j as usize);
                    break;
                }
                cover = Cover::Probe;
            }
        }
        self.scratch = ids;
        cover
    }

    /// Rule `i`'s cube minus every earlier deciding rule, with the rules that took part;
    /// `None` if the budget ran out. Driven by witnesses: take a packet of what is left;
    /// if no earlier rule holds it, it is left for good (the rule is live); else
    /// subtract every rule that holds it and repeat. Each round asks the index about one
    /// packet, which few rules hold, instead of about the whole rule, which many overlap.
    fn remainder(&mut self, i: usize) -> Option<(Vec<Cube>, Vec<usize>)> {
        let rule = self.rules.get(i)?;
        let mut pieces = vec![rule.cube.clone()];
        let mut used = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let Some(p) = pieces.first().and_then(low_point) else {
                return Some((pieces, used));
            };
            ids.clear();
            self.earlier.candidates_at(&p, &mut ids);
            ids.sort_unstable();
            ids.dedup();
            let holders: Vec<usize> = ids
                .iter()
                .map(|&j| j as usize)
                .filter(|&j| j < i && self.rules.get(j).is_some_and(|r| contains(r.cube, &p)))
                .collect();
            if holders.is_empty() {
                return Some((pieces, used));
            }
            for j in holders {
                let Some(other) = self.rules.get(j) else {
                    continue;
                };
                let mut next = Vec::with_capacity(pieces.len());
                for piece in pieces {
                    if piece.intersects(other.cube) {
                        next.extend(piece.subtract(other.cube));
                    } else {
                        next.push(piece);
                    }
                }
                if next.len() > MAX_PIECES {
                    return None;
                }
                pieces = next;
                if !used.contains(&j) {
                    used.push(j);
                }
            }
        }
        None
    }

    /// Whether the later rules would give rule `i`'s packets its own effect; `probe` is
    /// a packet that reaches it.
    fn redundancy(&mut self, i: usize, probe: &Point) -> Redundancy<'g> {
        let Some(rule) = self.rules.get(i) else {
            return Redundancy::Unknown;
        };
        let Some(effect) = rule.effect else {
            return Redundancy::Unknown;
        };
        // Quick refusal: the first later rule that decides the probe decides otherwise.
        if !self.point_gets(i, effect, probe) {
            return Redundancy::No;
        }
        // Exact: what reaches the rule, walked through every later rule that overlaps it.
        let Some((mut pieces, _)) = self.remainder(i) else {
            return Redundancy::Cut;
        };
        let mut ids = Vec::new();
        self.all.candidates(rule.cube, &mut ids);
        self.push_revivable(Some(rule.span), &mut ids);
        let later = self.later_rules(i, ids);
        if later.len() > MAX_CANDIDATES {
            return Redundancy::Cut;
        }
        let sample = pieces.first().cloned().unwrap_or_else(|| point_cube(probe));
        let mut deciders = Vec::new();
        match self.walk(effect, &later, &mut pieces, &mut deciders) {
            Walk::Same => Redundancy::Yes(effect, deciders, Box::new(sample)),
            Walk::Differs => Redundancy::No,
            Walk::Cut => Redundancy::Cut,
        }
    }

    /// True if, without rule `i` (and its line), the later rules give `point` `effect`.
    fn point_gets(&mut self, i: usize, effect: Effect<'g>, point: &Point) -> bool {
        let mut ids = std::mem::take(&mut self.scratch);
        ids.clear();
        self.all.candidates_at(point, &mut ids);
        let span = self.rules.get(i).map(|r| r.span);
        self.push_revivable(span, &mut ids);
        ids.sort_unstable();
        ids.dedup();
        let mut verdict = None;
        for &j in &ids {
            let j = j as usize;
            let Some(r) = self.rules.get(j) else {
                continue;
            };
            if j <= i || Some(r.span) == span || !contains(r.cube, point) {
                continue;
            }
            if r.continues || (r.unknown && r.effect == Some(effect)) {
                continue;
            }
            verdict = Some(!r.unknown && r.effect == Some(effect));
            break;
        }
        self.scratch = ids;
        verdict.unwrap_or(self.end == effect)
    }

    /// Adds the dead rules that the rules of line `span` help to kill.
    fn push_revivable(&self, span: Option<Span>, ids: &mut Vec<u32>) {
        if let Some(dead) = span.and_then(|s| self.revivable.get(&s)) {
            ids.extend(dead.iter().map(|&k| k as u32));
        }
    }

    /// The candidate rules after `i`, in chain order, without the other rules of `i`'s
    /// line: removing a vendor entry removes all the rules it was lowered to.
    fn later_rules(&self, i: usize, mut ids: Vec<u32>) -> Vec<usize> {
        let span = self.rules.get(i).map(|r| r.span);
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|j| j as usize)
            .filter(|&j| j > i && self.rules.get(j).map(|r| r.span) != span)
            .collect()
    }

    /// First match over `later` for `pieces`: each piece must meet a rule with the same
    /// effect, or fall off into the same end. A non-terminating rule (LOG) lets it go on;
    /// a rule with an unmodelled condition may or may not match, so it is harmless only
    /// if its effect is the same; any other rule (a jump that may return, an unknown
    /// target, another verdict) makes the answer "differs".
    fn walk(
        &self,
        effect: Effect<'g>,
        later: &[usize],
        pieces: &mut Vec<Cube>,
        deciders: &mut Vec<Decider>,
    ) -> Walk {
        for &j in later {
            if pieces.is_empty() {
                return Walk::Same;
            }
            let Some(rule) = self.rules.get(j) else {
                continue;
            };
            if !pieces.iter().any(|p| p.intersects(rule.cube)) {
                continue;
            }
            if rule.continues || (rule.unknown && rule.effect == Some(effect)) {
                continue;
            }
            if rule.unknown || rule.effect != Some(effect) {
                return Walk::Differs;
            }
            let mut next = Vec::with_capacity(pieces.len());
            for p in pieces.drain(..) {
                if p.intersects(rule.cube) {
                    next.extend(p.subtract(rule.cube));
                } else {
                    next.push(p);
                }
            }
            if next.len() > MAX_PIECES {
                return Walk::Cut;
            }
            *pieces = next;
            deciders.push(Decider {
                chain: self.id,
                rule: Some(j),
            });
        }
        if pieces.is_empty() {
            return Walk::Same;
        }
        if self.end == effect {
            deciders.push(Decider {
                chain: self.id,
                rule: None,
            });
            Walk::Same
        } else {
            Walk::Differs
        }
    }
}

/// A packet of `cube` for a finding. The interfaces are left out where the rule does
/// not name them: a rule's own cube knows nothing of the interfaces its chain is bound
/// to, and "in outside" under an access-list of `dmz` would mislead.
pub fn witness(model: &Model, cube: &Cube) -> crate::report::finding::Witness {
    let mut w = model.witness(cube);
    let all = model.ifaces.len() as u128;
    if cube.get(Field::InIface).count() == all {
        w.in_interface = None;
    }
    if cube.get(Field::OutIface).count() == all {
        w.out_interface = None;
    }
    w
}

/// One packet: a value per field, indexed by `Field as usize`.
type Point = [u128; FIELDS];

/// The packet of a cube with every field at its lowest value.
fn low_point(c: &Cube) -> Option<Point> {
    point(c, |s| s.first())
}

/// The packet of a cube with every field at its highest value.
fn high_point(c: &Cube) -> Option<Point> {
    point(c, |s| s.ranges().last().map(|r| r.1))
}

fn point(c: &Cube, pick: impl Fn(&IntervalSet) -> Option<u128>) -> Option<Point> {
    let mut p = [0; FIELDS];
    for (slot, set) in p.iter_mut().zip(&c.fields) {
        *slot = pick(set)?;
    }
    Some(p)
}

/// The one-packet cube of a point.
fn point_cube(p: &Point) -> Cube {
    Cube {
        fields: p.map(IntervalSet::single),
    }
}

/// True if the cube holds the packet.
fn contains(c: &Cube, p: &Point) -> bool {
    c.fields.iter().zip(p).all(|(set, v)| set.contains(*v))
}

/// Rule cubes of one chain, found by overlap without scanning them all. Rules are
/// grouped by their exact (protocol, destination port) sets — a ruleset has few distinct
/// services — then by their ingress interface when they name exactly one (pfSense
/// rules, `-i`), and inside that by the destination address ranges when those are
/// narrow, else by narrow source ranges, else kept in a list scanned every time.
/// The candidate queries return a superset of the rules that overlap a query (possibly
/// with repeats); the caller tests each exactly.
#[derive(Default)]
struct RuleIndex {
    groups: Vec<Group>,
    /// Service hash → the groups with that hash.
    by_service: HashMap<u64, Vec<usize>>,
    /// Point queries by (protocol, port): how many groups were tested, those that hold it.
    point_memo: HashMap<(u128, u128), (usize, Vec<usize>)>,
    /// Cube queries by service hash: the service, groups tested, those that overlap.
    cube_memo: HashMap<u64, Vec<CubeMemo>>,
}

/// The overlapping groups of one query service.
struct CubeMemo {
    proto: IntervalSet,
    dport: IntervalSet,
    tested: usize,
    groups: Vec<usize>,
}

/// The rules of one service.
struct Group {
    proto: IntervalSet,
    dport: IntervalSet,
    /// By the one ingress interface the rules name, or `None` for any other.
    subs: Vec<(Option<u128>, Sub)>,
}

/// The rules of one service and interface.
#[derive(Default)]
struct Sub {
    by_dst: AddrMap,
    by_src: AddrMap,
    wide: Vec<u32>,
}

impl Sub {
    fn insert(&mut self, cube: &Cube, id: u32) {
        if !self.by_dst.try_insert(cube.get(Field::DstAddr), id)
            && !self.by_src.try_insert(cube.get(Field::SrcAddr), id)
        {
            self.wide.push(id);
        }
    }

    fn overlapping(&self, dst: &IntervalSet, src: &IntervalSet, out: &mut Vec<u32>) {
        self.by_dst.overlapping(dst, out);
        self.by_src.overlapping(src, out);
        out.extend_from_slice(&self.wide);
    }

    fn at(&self, dst: u128, src: u128, out: &mut Vec<u32>) {
        self.by_dst.overlapping_range(dst, dst, out);
        self.by_src.overlapping_range(src, src, out);
        out.extend_from_slice(&self.wide);
    }
}

/// Narrow address ranges by their low end and rule: `(lo, rule) → hi`. One tree entry
/// per range, not a list per low end: most low ends have one rule, and a list each would
/// be an allocation per indexed range.
#[derive(Default)]
struct AddrMap(BTreeMap<(u128, u32), u128>);

impl AddrMap {
    /// Adds every range of `set` if all are narrow and few; false otherwise.
    fn try_insert(&mut self, set: &IntervalSet, id: u32) -> bool {
        let ranges = set.ranges();
        if ranges.len() > MAX_RANGES || ranges.iter().any(|(lo, hi)| hi - lo >= NARROW) {
            return false;
        }
        for &(lo, hi) in ranges {
            self.0.insert((lo, id), hi);
        }
        true
    }

    /// Rules with a range overlapping `set` (its hull, when it has many ranges).
    fn overlapping(&self, set: &IntervalSet, out: &mut Vec<u32>) {
        if self.0.is_empty() {
            return;
        }
        let r = set.ranges();
        match (r.first(), r.last()) {
            (Some(first), Some(last)) if r.len() > MAX_RANGES => {
                self.overlapping_range(first.0, last.1, out)
            }
            _ => {
                for &(lo, hi) in r {
                    self.overlapping_range(lo, hi, out);
                }
            }
        }
    }

    /// Rules with a range overlapping `lo..=hi`: a narrow range that does starts at
    /// most `NARROW` below `lo`.
    fn overlapping_range(&self, lo: u128, hi: u128, out: &mut Vec<u32>) {
        let from = (lo.saturating_sub(NARROW - 1), 0);
        out.extend(
            self.0
                .range(from..=(hi, u32::MAX))
                .filter(|(_, end)| **end >= lo)
                .map(|((_, id), _)| *id),
        );
    }
}

fn service_hash(proto: &IntervalSet, dport: &IntervalSet) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    proto.hash(&mut h);
    dport.hash(&mut h);
    h.finish()
}

/// The one value of a set, if it has exactly one.
fn single(set: &IntervalSet) -> Option<u128> {
    match set.ranges() {
        [(lo, hi)] if lo == hi => Some(*lo),
        _ => None,
    }
}

impl RuleIndex {
    /// Adds rule `id` with its cube.
    fn insert(&mut self, cube: &Cube, id: usize) {
        let (proto, dport) = (cube.get(Field::Proto), cube.get(Field::DstPort));
        let hash = service_hash(proto, dport);
        let slot = self.by_service.entry(hash).or_default();
        let found = slot.iter().copied().find(|&g| {
            self.groups
                .get(g)
                .is_some_and(|x| x.proto == *proto && x.dport == *dport)
        });
        let g = match found {
            Some(g) => g,
            None => {
                self.groups.push(Group {
                    proto: proto.clone(),
                    dport: dport.clone(),
                    subs: Vec::new(),
                });
                slot.push(self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let Some(group) = self.groups.get_mut(g) else {
            return;
        };
        let key = single(cube.get(Field::InIface));
        let sub = match group.subs.iter().position(|(k, _)| *k == key) {
            Some(s) => s,
            None => {
                group.subs.push((key, Sub::default()));
                group.subs.len() - 1
            }
        };
        if let Some((_, sub)) = group.subs.get_mut(sub) {
            sub.insert(cube, id as u32);
        }
    }

    /// Pushes ids of rules that may hold the packet `p`.
    fn candidates_at(&mut self, p: &Point, out: &mut Vec<u32>) {
        let (proto, port) = (p[Field::Proto as usize], p[Field::DstPort as usize]);
        let memo = self.point_memo.entry((proto, port)).or_default();
        for (g, group) in self.groups.iter().enumerate().skip(memo.0) {
            if group.proto.contains(proto) && group.dport.contains(port) {
                memo.1.push(g);
            }
        }
        memo.0 = self.groups.len();
        let iface = p[Field::InIface as usize];
        let (dst, src) = (p[Field::DstAddr as usize], p[Field::SrcAddr as usize]);
        for group in memo.1.iter().filter_map(|&g| self.groups.get(g)) {
            for (key, sub) in &group.subs {
                if key.is_none_or(|k| k == iface) {
                    sub.at(dst, src, out);
                }
            }
        }
    }

    /// Pushes ids of rules that may overlap `query`.
    fn candidates(&mut self, query: &Cube, out: &mut Vec<u32>) {
        let (proto, dport) = (query.get(Field::Proto), query.get(Field::DstPort));
        let slot = self
            .cube_memo
            .entry(service_hash(proto, dport))
            .or_default();
        let memo = match slot
            .iter()
            .position(|m| m.proto == *proto && m.dport == *dport)
        {
            Some(m) => m,
            None => {
                slot.push(CubeMemo {
                    proto: proto.clone(),
                    dport: dport.clone(),
                    tested: 0,
                    groups: Vec::new(),
                });
                slot.len() - 1
            }
        };
        let Some(memo) = slot.get_mut(memo) else {
            return;
        };
        for (g, group) in self.groups.iter().enumerate().skip(memo.tested) {
            if group.proto.intersects(proto) && group.dport.intersects(dport) {
                memo.groups.push(g);
            }
        }
        memo.tested = self.groups.len();
        let ifaces = query.get(Field::InIface);
        let (dst, src) = (query.get(Field::DstAddr), query.get(Field::SrcAddr));
        for group in memo.groups.iter().filter_map(|&g| self.groups.get(g)) {
            for (key, sub) in &group.subs {
                if key.is_none_or(|k| ifaces.contains(k)) {
                    sub.overlapping(dst, src, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Dialect;
    use crate::source::{FileId, SourceFile};

    fn graph(text: &str, dialect: Dialect) -> RuleGraph {
        let file = SourceFile::new(FileId(0), "t", text);
        crate::parse::parse(&file, dialect)
            .graph
            .expect("the test config parses")
    }

    fn ipt(rules: &str) -> RuleGraph {
        graph(
            &format!(
                "*filter\n:FORWARD DROP [0:0]\n:USER - [0:0]\n:LOGDROP - [0:0]\n{rules}COMMIT\n"
            ),
            Dialect::Iptables,
        )
    }

    /// `(chain name, rule index, reach)` of the reportable rules.
    fn reach_of(g: &RuleGraph) -> Vec<(String, usize, String)> {
        let m = Model::new(g, &[]);
        analyse(&m, true)
            .into_iter()
            .map(|r| {
                let what = match &r.reach {
                    Reach::Dead(by) => format!("dead {by:?}"),
                    Reach::Live => match &r.redundancy {
                        Redundancy::Yes(e, d, _) => format!(
                            "redundant {} {:?}",
                            e.describe(),
                            d.iter().map(|d| d.rule).collect::<Vec<_>>()
                        ),
                        _ => "live".into(),
                    },
                    Reach::Empty => "empty".into(),
                    Reach::Cut => "cut".into(),
                };
                (
                    g.chain(r.decider.chain).name.clone(),
                    r.decider.rule.unwrap_or(usize::MAX),
                    what,
                )
            })
            .collect()
    }

    fn status(g: &RuleGraph, chain: &str, i: usize) -> String {
        reach_of(g)
            .into_iter()
            .find(|(c, j, _)| c.ends_with(chain) && *j == i)
            .map(|(_, _, s)| s)
            .unwrap_or_else(|| "not reported".into())
    }

    #[test]
    fn union_of_two_earlier_rules_shadows() {
        let g = ipt("-A FORWARD -p tcp --dport 1:1023 -j ACCEPT\n\
                     -A FORWARD -p tcp --dport 1024:65535 -j DROP\n\
                     -A FORWARD -p tcp --dport 1000:2000 -s 10.0.0.1 -j ACCEPT\n\
                     -A FORWARD -p tcp --dport 0:10 -j ACCEPT\n");
        assert_eq!(status(&g, "FORWARD", 2), "dead [0, 1]");
        // Port 0 is in neither range.
        assert_eq!(status(&g, "FORWARD", 3), "live");
    }

    #[test]
    fn unmodelled_conditions_do_not_shadow_but_can_be_shadowed() {
        let g = ipt(
            "-A FORWARD -p udp --dport 53 -m time --timestart 08:00 -j ACCEPT\n\
                     -A FORWARD -p udp --dport 53 -j DROP\n\
                     -A FORWARD -p udp --dport 53 -m time --timestart 09:00 -j ACCEPT\n",
        );
        assert!(status(&g, "FORWARD", 1).starts_with("live"));
        assert_eq!(status(&g, "FORWARD", 2), "dead [1]");
    }

    #[test]
    fn jumps_decide_only_into_chains_that_always_decide() {
        let g = ipt("-A FORWARD -s 10.0.0.1 -j LOGDROP\n\
                     -A FORWARD -s 10.0.0.2 -j USER\n\
                     -A FORWARD -s 10.0.0.1 -p tcp -j ACCEPT\n\
                     -A FORWARD -s 10.0.0.2 -p tcp -j ACCEPT\n\
                     -A FORWARD -s 10.0.0.3 -j RETURN\n\
                     -A FORWARD -s 10.0.0.3 -p udp -j ACCEPT\n\
                     -A FORWARD -j LOG\n\
                     -A FORWARD -s 10.0.0.4 -j ACCEPT\n\
                     -A USER -p tcp -j RETURN\n\
                     -A USER -j DROP\n\
                     -A LOGDROP -j LOG\n\
                     -A LOGDROP -j DROP\n");
        assert_eq!(status(&g, "FORWARD", 2), "dead [0]");
        assert_ne!(status(&g, "FORWARD", 3), "dead [1]");
        assert_eq!(status(&g, "FORWARD", 4), "live");
        assert_eq!(status(&g, "FORWARD", 5), "dead [4]");
        // LOG does not decide.
        assert!(!status(&g, "FORWARD", 7).starts_with("dead"));
    }

    #[test]
    fn redundancy_follows_first_match_to_the_policy() {
        let g = ipt("-A FORWARD -p tcp --dport 23 -j DROP\n\
                     -A FORWARD -p tcp --dport 21 -j REJECT\n\
                     -A FORWARD -s 10.0.0.1 -p tcp --dport 80 -j ACCEPT\n\
                     -A FORWARD -s 10.0.0.0/25 -p tcp --dport 80 -j DROP\n\
                     -A FORWARD -s 10.0.0.0/24 -p tcp --dport 80 -j ACCEPT\n\
                     -A FORWARD -s 10.0.1.1 -p tcp --dport 80 -j ACCEPT\n\
                     -A FORWARD -j LOG\n\
                     -A FORWARD -s 10.0.1.0/24 -p tcp --dport 80 -j ACCEPT\n");
        // Nothing after it accepts telnet: the DROP policy repeats it.
        assert_eq!(status(&g, "FORWARD", 0), "redundant drop [None]");
        // REJECT is not what the policy does.
        assert_eq!(status(&g, "FORWARD", 1), "live");
        // The DROP at 3 would take some of its packets.
        assert_eq!(status(&g, "FORWARD", 2), "live");
        // LOG is passed over; the ACCEPT at 7 takes all of it.
        assert_eq!(status(&g, "FORWARD", 5), "redundant accept [Some(7)]");
    }

    #[test]
    fn asa_implicit_rules_are_never_reported() {
        let g = graph(
            "interface G1\n nameif dmz\n security-level 50\n ip address 192.168.10.1 255.255.255.0\n\
             interface G2\n nameif inside\n security-level 100\n ip address 10.0.0.1 255.255.255.0\n\
             access-list dmz_in extended deny ip any any\n\
             access-group dmz_in in interface dmz\n",
            Dialect::Asa,
        );
        let reported = reach_of(&g);
        // Only the explicit deny; not the implicit deny (dead behind it), the access-group
        // dispatch, nor the security-level rules of `inside`.
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert_eq!(reported[0].1, 0);
    }

    #[test]
    fn index_returns_every_overlapping_rule() {
        // A deterministic mix of narrow, multi-range and wide rules.
        let mut cubes = Vec::new();
        let mut x: u64 = 7;
        let mut next = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        for _ in 0..400 {
            let mut c = Cube::full(3);
            c.restrict(
                Field::Proto,
                &IntervalSet::single([6, 17, 1][next(3) as usize]),
            );
            if next(2) == 0 {
                c.restrict(Field::InIface, &IntervalSet::single(next(3) as u128));
            }
            let p = next(100) as u128;
            c.restrict(
                Field::DstPort,
                &IntervalSet::range(p, p + next(3) as u128 * 50),
            );
            let base = crate::graph::sets::addr::V4_BASE + (10 << 24);
            let a = base + next(1 << 20) as u128;
            match next(4) {
                0 => c.restrict(
                    Field::DstAddr,
                    &IntervalSet::range(a, a + next(256) as u128),
                ),
                1 => c.restrict(Field::SrcAddr, &IntervalSet::range(a, a + 255)),
                2 => c.restrict(
                    Field::DstAddr,
                    &IntervalSet::from_ranges([(a, a), (a + 4096, a + 4100)]),
                ),
                _ => {}
            }
            cubes.push(c);
        }
        let mut index = RuleIndex::default();
        for (i, c) in cubes.iter().enumerate() {
            index.insert(c, i);
        }
        for q in &cubes {
            let mut ids = Vec::new();
            index.candidates(q, &mut ids);
            for (j, c) in cubes.iter().enumerate() {
                if c.intersects(q) {
                    assert!(ids.contains(&(j as u32)), "rule {j} missed");
                }
            }
            for p in [low_point(q), high_point(q)].into_iter().flatten() {
                let mut ids = Vec::new();
                index.candidates_at(&p, &mut ids);
                for (j, c) in cubes.iter().enumerate() {
                    if contains(c, &p) {
                        assert!(ids.contains(&(j as u32)), "rule {j} missed at a point");
                    }
                }
            }
        }
    }
}
