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

use crate::analysis::cube::{FIELDS, Field, ServiceBounds};
use crate::analysis::{Cube, Decider, Model};
use crate::graph::{Action, Chain, ChainId, IntervalSet, NatTarget, RuleGraph};
use crate::source::Span;
use rayon::prelude::*;
use smallvec::{SmallVec, smallvec};
use std::cmp::Reverse;
// Point queries hash their keys several times per rule: foldhash, not SipHash.
use foldhash::{HashMap, HashMapExt, HashSet};
use std::collections::BinaryHeap;

/// Later rules the redundancy walk may meet before the rule is given up on.
const MAX_CANDIDATES: usize = 4096;
/// Earlier rules holding one packet that one reachability step looks at.
const MAX_HOLDERS: usize = 64;
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

/// Analyses every reportable rule of every chain; redundancy only if `redundancy`. The
/// results come per chain, in chain order: gathering a big chain's 90,000 into one list
/// was a copy of 15 MB.
pub fn analyse<'g>(model: &Model<'g>, redundancy: bool) -> Vec<Vec<RuleResult<'g>>> {
    let runs = rayon::current_num_threads() * PASS_2_RUNS_PER_CORE;
    analyse_in_runs(model, redundancy, runs)
}

/// [`analyse`], with pass 2 of a long chain in `runs` runs.
fn analyse_in_runs<'g>(
    model: &Model<'g>,
    redundancy: bool,
    runs: usize,
) -> Vec<Vec<RuleResult<'g>>> {
    let graph = model.graph;
    let facts = ChainFacts::new(graph);
    let implicit = implicit_spans(graph);
    // Chains are analysed on their own (a rule's packets stay in its chain here), so an
    // ASA's access-lists or an iptables file's chains are shared out among the cores.
    graph
        .chains
        .par_iter()
        .enumerate()
        .map(|(c, chain)| {
            let pass_2 = redundancy.then_some(runs);
            analyse_chain(model, &facts, &implicit, ChainId(c), chain, pass_2)
        })
        .collect()
}

/// The results of one chain's reportable rules, in rule order.
fn analyse_chain<'g>(
    model: &Model<'g>,
    facts: &ChainFacts<'g>,
    implicit: &HashSet<Span>,
    id: ChainId,
    chain: &'g Chain,
    pass_2_runs: Option<usize>,
) -> Vec<RuleResult<'g>> {
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
        return Vec::new();
    }
    let mut cx = ChainIndex {
        id,
        rules: &rules,
        earlier: RuleIndex::new(model.ifaces.len()),
        all: RuleIndex::new(model.ifaces.len()),
        end: facts.end_effect(id),
        revivable: HashMap::new(),
    };
    // Pass 1, in chain order: reachability against the earlier rules, with a packet
    // that reaches each live rule.
    let mut scratch = Scratch::default();
    let mut reach: Vec<Option<(Reach, Option<Point>)>> = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        reach.push(r.reportable.then(|| cx.with(&mut scratch).reach(i)));
        if r.effect.is_some() && !r.unknown {
            cx.earlier.insert(r.cube, i);
        }
    }
    // Pass 2: redundancy against the later rules. A dead rule matches no packet, so
    // the later rules that matter are the live ones — plus the dead ones that only
    // this rule's line helps to kill, which its removal would bring back.
    let verdicts = match pass_2_runs {
        Some(runs) => {
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
            let probes: Vec<(usize, &Point)> = reach
                .iter()
                .enumerate()
                .filter_map(|(i, r)| Some((i, r.as_ref()?.1.as_ref()?)))
                .collect();
            redundancies(&cx, scratch, &probes, runs)
        }
        None => Vec::new(),
    };
    let mut verdicts = verdicts.into_iter().peekable();
    let mut out = Vec::with_capacity(rules.len());
    for (i, (r, reach)) in rules.iter().zip(reach).enumerate() {
        let Some((reach, _)) = reach else {
            continue;
        };
        let redundancy = match verdicts.next_if(|(k, _)| *k == i) {
            Some((_, verdict)) => verdict,
            None => Redundancy::Unknown,
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
    out
}

/// The redundancy of each live rule of `probes` (with a packet that reaches it), in
/// order, with the rule's index. The indexes are finished, so the rules are shared out among the cores in up
/// to `runs` contiguous runs. Each run starts with empty memos, which cost a scan of
/// the chain's services to fill again, so there are few runs, none short, and the
/// first takes over pass 1's `scratch`. The answers do not depend on the runs.
fn redundancies<'g>(
    cx: &ChainIndex<'_, '_, 'g>,
    scratch: Scratch,
    probes: &[(usize, &Point)],
    runs: usize,
) -> Vec<(usize, Redundancy<'g>)> {
    let len = probes.len().div_ceil(runs.max(1)).max(PASS_2_MIN_RUN);
    let mut first = Some(scratch);
    let runs: Vec<(&[(usize, &Point)], Scratch)> = probes
        .chunks(len)
        .map(|run| (run, first.take().unwrap_or_default()))
        .collect();
    runs.into_par_iter()
        .flat_map_iter(|(run, mut scratch)| {
            run.iter()
                .map(|&(i, p)| (i, cx.with(&mut scratch).redundancy(i, p)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Runs of pass 2 per core: more balance the load, fewer spare the memos' filling.
const PASS_2_RUNS_PER_CORE: usize = 4;

/// The fewest live rules a run of pass 2 takes: a shorter chain's stays on one core.
const PASS_2_MIN_RUN: usize = 256;

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

/// One chain's rules and indexes, which its passes read and pass 2's cores share.
struct ChainIndex<'r, 'm, 'g> {
    id: ChainId,
    rules: &'r [ChainRule<'m, 'g>],
    /// Earlier rules that surely decide their packets (known conditions, an effect).
    earlier: RuleIndex,
    /// Every rule of the chain (filled only for redundancy).
    all: RuleIndex,
    end: Effect<'g>,
    /// Dead rules by the line of a rule that helps to kill them.
    revivable: HashMap<Span, Vec<usize>>,
}

impl<'r, 'm, 'g> ChainIndex<'r, 'm, 'g> {
    /// The chain as one core queries it, with that core's scratch space.
    fn with<'c>(&'c self, scratch: &'c mut Scratch) -> ChainCx<'c, 'r, 'm, 'g> {
        ChainCx {
            chain: self,
            scratch,
        }
    }
}

/// What one core keeps between its queries of a chain: only speed depends on it.
#[derive(Default)]
struct Scratch {
    /// The last few rules found to hold a whole later rule: a broad rule usually kills
    /// a run of the rules after it, and trying it first skips the index.
    recent: Vec<usize>,
    /// A reused buffer for candidate ids.
    ids: Vec<u32>,
    earlier: IndexMemo,
    all: IndexMemo,
}

/// A chain's queries on one core.
struct ChainCx<'c, 'r, 'm, 'g> {
    chain: &'c ChainIndex<'r, 'm, 'g>,
    scratch: &'c mut Scratch,
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

impl<'g> ChainCx<'_, '_, '_, 'g> {
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
        let Some(rule) = self.chain.rules.get(i) else {
            return Err(Reach::Cut);
        };
        let cube = rule.cube;
        let (Some(low), Some(high)) = (cube.low_corner(), cube.high_corner()) else {
            return Err(Reach::Empty);
        };
        if let Some(&j) = self.scratch.recent.iter().find(|&&j| {
            self.chain
                .rules
                .get(j)
                .is_some_and(|r| cube.is_subset(r.cube))
        }) {
            return Err(Reach::Dead(vec![j]));
        }
        for probe in [low, high] {
            match self.earlier_cover(&probe, cube) {
                Cover::None => return Ok(probe),
                Cover::Whole(j) => {
                    self.scratch.recent.retain(|&k| k != j);
                    self.scratch.recent.insert(0, j);
                    self.scratch.recent.truncate(RECENT);
                    return Err(Reach::Dead(vec![j]));
                }
                Cover::Probe => {}
            }
        }
        match self.remainder(i) {
            None => Err(Reach::Cut),
            Some((pieces, used)) => match pieces.first().and_then(Cube::low_corner) {
                Some(p) => Ok(p),
                None => Err(Reach::Dead(used)),
            },
        }
    }

    /// Whether earlier deciding rules hold the packet `probe`, and whether one of those
    /// holds all of `whole` (the usual way a rule is dead: one broader rule above it).
    /// Only the first `MAX_HOLDERS` holders are tried for the whole rule: past them,
    /// the exact subtraction decides.
    fn earlier_cover(&mut self, probe: &Point, whole: &Cube) -> Cover {
        let mut ids = std::mem::take(&mut self.scratch.ids);
        ids.clear();
        let mut found = self
            .chain
            .earlier
            .candidates_at(&mut self.scratch.earlier, probe, ids)
            .from(0);
        let mut cover = Cover::None;
        let mut holders = 0;
        for j in found.by_ref() {
            let Some(r) = self.chain.rules.get(j) else {
                continue;
            };
            if !r.cube.contains(probe) {
                continue;
            }
            if whole.is_subset(r.cube) {
                cover = Cover::Whole(j);
                break;
            }
            cover = Cover::Probe;
            holders += 1;
            if holders == MAX_HOLDERS {
                break;
            }
        }
        self.scratch.ids = found.into_buffer();
        cover
    }

    /// Rule `i`'s cube minus every earlier deciding rule, with the rules that took part;
    /// `None` if the budget ran out. Driven by witnesses: take a packet of what is left;
    /// if no earlier rule holds it, it is left for good (the rule is live); else
    /// subtract every rule that holds it and repeat. Each round asks the index about one
    /// packet, which few rules hold, instead of about the whole rule, which many overlap.
    /// A round subtracts at most `MAX_HOLDERS` of them, the first in chain order: any one
    /// takes the packet away, which is all a round needs to make progress.
    fn remainder(&mut self, i: usize) -> Option<(Vec<Cube>, Vec<usize>)> {
        let rule = self.chain.rules.get(i)?;
        let mut pieces = vec![rule.cube.clone()];
        let mut used = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let Some(p) = pieces.first().and_then(Cube::low_corner) else {
                return Some((pieces, used));
            };
            ids.clear();
            let mut found = self
                .chain
                .earlier
                .candidates_at(&mut self.scratch.earlier, &p, ids)
                .from(0);
            let holders: Vec<usize> = found
                .by_ref()
                .take_while(|&j| j < i)
                .filter(|&j| self.chain.rules.get(j).is_some_and(|r| r.cube.contains(&p)))
                .take(MAX_HOLDERS)
                .collect();
            ids = found.into_buffer();
            if holders.is_empty() {
                return Some((pieces, used));
            }
            for j in holders {
                let Some(other) = self.chain.rules.get(j) else {
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
        let Some(rule) = self.chain.rules.get(i) else {
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
        self.push_revivable(Some(rule.span), &mut ids);
        // Without the other rules of `i`'s line: removing a vendor entry removes all the
        // rules it was lowered to.
        let later = self
            .chain
            .all
            .candidates(&mut self.scratch.all, rule.cube, ids)
            .from(i + 1)
            .filter(|&j| self.chain.rules.get(j).map(|r| r.span) != Some(rule.span));
        let sample = pieces.first().cloned().unwrap_or_else(|| point_cube(probe));
        let mut deciders = Vec::new();
        match self.walk(effect, later, &mut pieces, &mut deciders) {
            Walk::Same => Redundancy::Yes(effect, deciders, Box::new(sample)),
            Walk::Differs => Redundancy::No,
            Walk::Cut => Redundancy::Cut,
        }
    }

    /// True if, without rule `i` (and its line), the later rules give `point` `effect`.
    fn point_gets(&mut self, i: usize, effect: Effect<'g>, point: &Point) -> bool {
        let mut ids = std::mem::take(&mut self.scratch.ids);
        ids.clear();
        let span = self.chain.rules.get(i).map(|r| r.span);
        self.push_revivable(span, &mut ids);
        let mut found = self
            .chain
            .all
            .candidates_at(&mut self.scratch.all, point, ids)
            .from(i + 1);
        let mut verdict = None;
        for j in found.by_ref() {
            let Some(r) = self.chain.rules.get(j) else {
                continue;
            };
            if Some(r.span) == span || !r.cube.contains(point) {
                continue;
            }
            if r.continues || (r.unknown && r.effect == Some(effect)) {
                continue;
            }
            verdict = Some(!r.unknown && r.effect == Some(effect));
            break;
        }
        self.scratch.ids = found.into_buffer();
        verdict.unwrap_or(self.chain.end == effect)
    }

    /// Adds the dead rules that the rules of line `span` help to kill.
    fn push_revivable(&self, span: Option<Span>, ids: &mut Vec<u32>) {
        if let Some(dead) = span.and_then(|s| self.chain.revivable.get(&s)) {
            ids.extend(dead.iter().map(|&k| k as u32));
        }
    }

    /// First match over `later` for `pieces`: each piece must meet a rule with the same
    /// effect, or fall off into the same end. A non-terminating rule (LOG) lets it go on;
    /// a rule with an unmodelled condition may or may not match, so it is harmless only
    /// if its effect is the same; any other rule (a jump that may return, an unknown
    /// target, another verdict) makes the answer "differs". More than `MAX_CANDIDATES`
    /// later rules is too much work.
    fn walk(
        &self,
        effect: Effect<'g>,
        later: impl Iterator<Item = usize>,
        pieces: &mut Vec<Cube>,
        deciders: &mut Vec<Decider>,
    ) -> Walk {
        for (seen, j) in later.enumerate() {
            if pieces.is_empty() {
                return Walk::Same;
            }
            if seen == MAX_CANDIDATES {
                return Walk::Cut;
            }
            let Some(rule) = self.chain.rules.get(j) else {
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
                chain: self.chain.id,
                rule: Some(j),
            });
        }
        if pieces.is_empty() {
            return Walk::Same;
        }
        if self.chain.end == effect {
            deciders.push(Decider {
                chain: self.chain.id,
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

/// The one-packet cube of a point.
fn point_cube(p: &Point) -> Cube {
    Cube::from_sets(p.map(IntervalSet::single))
}

/// Rule cubes of one chain, found by overlap without scanning them all. Rules are
/// grouped by their exact (protocol, destination port) sets — a ruleset has few distinct
/// services — then by the interfaces they name (ingress, else egress; a rule naming a
/// few is under each), and inside that by their smaller address set when it is narrow
/// (an address map), else kept in a "wide" list that point queries look up by CIDR
/// blocks once it is long. The candidate queries return a superset of the rules that
/// overlap a query, in chain order, and merge the lists into that order only as far as
/// the caller reads: a chain can hold thousands of "any to any" rules of one service,
/// and a caller that stops at the first rule that decides must not pay for all of them.
/// The caller tests each candidate exactly.
struct RuleIndex {
    /// How many interfaces the model has: a rule naming all of them names none.
    ifaces: u128,
    groups: Vec<Group>,
    /// The groups' services' bounds, in group order: a cube query's first look at the
    /// groups, and a point query's at those it must scan, reads these, not their sets
    /// (a big pfSense chain has 13,000 services and its queries 1,500 distinct probes).
    group_bounds: Vec<ServiceBounds>,
    /// Service hash → the groups with that hash.
    by_service: HashMap<u64, Vec<usize>>,
    /// Groups by each (protocol, port) their service holds, for services of at most
    /// [`MAX_SERVICE_POINTS`] of them; each list in group order. A point query finds
    /// most of its groups with one lookup: reading every group's bounds instead cost
    /// each run of pass 2 a scan of the 13,000 services per distinct probe.
    by_point: HashMap<(u128, u128), Vec<usize>>,
    /// The groups of wider services by each block of [`PORT_BLOCK`] ports their port
    /// sets touch, for sets that touch at most [`MAX_PORT_BLOCKS`]; each list in group
    /// order. A point reads the groups of its own block.
    by_port_block: HashMap<u128, Vec<usize>>,
    /// The groups of the widest services (any port, most of the port range), in group
    /// order: every point query reads them.
    broad_services: Vec<usize>,
}

/// (protocol, port) pairs of a service beyond which its group is filed by port blocks.
const MAX_SERVICE_POINTS: u128 = 16;
/// Ports in one block of [`RuleIndex::by_port_block`].
const PORT_BLOCK: u128 = 256;
/// Port blocks a service's group is filed under before it counts as broad.
const MAX_PORT_BLOCKS: u128 = 16;

/// What a core remembers of its queries to one [`RuleIndex`]: the groups a query
/// service meets, so that the next query of the same service tests only the groups
/// added since.
#[derive(Default)]
struct IndexMemo {
    points: PointMemo,
    /// Cube queries by service hash: the service, groups tested, those that overlap.
    cubes: HashMap<u64, Vec<CubeMemo>>,
}

/// Point queries' groups by (protocol, port): how many groups were tested, and those
/// that hold it.
type PointMemo = HashMap<(u128, u128), (usize, Vec<usize>)>;

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
    /// By the interfaces the rules name.
    subs: HashMap<SubKey, Sub>,
}

/// Which rules of a service a sub holds: those naming this ingress interface, else those
/// naming this egress interface, else all the others. A rule naming a few interfaces
/// (a pfSense floating rule) is under each: a packet has one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SubKey {
    In(u128),
    Out(u128),
    Any,
}

/// Interfaces a rule may name and still be keyed by each of them.
const MAX_KEYED_IFACES: u128 = 8;

impl SubKey {
    /// The keys of a rule's cube.
    fn of(cube: &Cube, all_ifaces: u128) -> SmallVec<[SubKey; 2]> {
        let few = |set: &IntervalSet| {
            let n = set.count();
            n < all_ifaces && n <= MAX_KEYED_IFACES
        };
        let (inn, out) = (cube.get(Field::InIface), cube.get(Field::OutIface));
        if few(&inn) {
            values(&inn).map(SubKey::In).collect()
        } else if few(&out) {
            values(&out).map(SubKey::Out).collect()
        } else {
            smallvec![SubKey::Any]
        }
    }

    /// True if packets of the interfaces `inn` and `out` may be under this key.
    fn meets(self, inn: &IntervalSet, out: &IntervalSet) -> bool {
        match self {
            SubKey::In(k) => inn.contains(k),
            SubKey::Out(k) => out.contains(k),
            SubKey::Any => true,
        }
    }
}

/// Every value of a (small) set.
fn values(set: &IntervalSet) -> impl Iterator<Item = u128> + '_ {
    set.ranges().iter().flat_map(|&(lo, hi)| lo..=hi)
}

/// The rules of one service and interface.
#[derive(Default)]
struct Sub {
    by_dst: AddrMap,
    by_src: AddrMap,
    /// The rules with no narrow address set, in chain order (rules are inserted in that
    /// order).
    wide: Vec<u32>,
    /// The same rules for point queries, once there are more than [`WIDE_SCAN`]: a
    /// probe at `0.0.0.0` must not meet every `10.0.0.0/9` rule of the chain.
    wide_points: Option<Box<WidePoints>>,
    /// The address sets of the wide rules until then.
    pending: Vec<(u32, IntervalSet, IntervalSet)>,
}

/// Wide rules a point query reads as a list; past this many, it looks them up.
const WIDE_SCAN: usize = 16;

impl Sub {
    fn insert(&mut self, cube: &Cube, id: u32) {
        let (dst, src) = (cube.get(Field::DstAddr), cube.get(Field::SrcAddr));
        // Under the smaller address set: rules to one subnet from many hosts must not
        // all meet every probe into that subnet.
        let [a, b] = smaller_first((&mut self.by_dst, &dst), (&mut self.by_src, &src));
        if a.0.try_insert(a.1, id) || b.0.try_insert(b.1, id) {
            return;
        }
        self.wide.push(id);
        if let Some(points) = &mut self.wide_points {
            points.insert(&dst, &src, id);
            return;
        }
        self.pending.push((id, dst.into_owned(), src.into_owned()));
        if self.pending.len() > WIDE_SCAN {
            let mut points = Box::<WidePoints>::default();
            for (id, dst, src) in self.pending.drain(..) {
                points.insert(&dst, &src, id);
            }
            self.wide_points = Some(points);
        }
    }

    fn overlapping<'s>(&'s self, dst: &IntervalSet, src: &IntervalSet, out: &mut Candidates<'s>) {
        self.by_dst.overlapping(dst, &mut out.narrow);
        self.by_src.overlapping(src, &mut out.narrow);
        out.add_wide(&self.wide);
    }

    fn at<'s>(&'s self, dst: u128, src: u128, out: &mut Candidates<'s>) {
        self.by_dst.overlapping_range(dst, dst, &mut out.narrow);
        self.by_src.overlapping_range(src, src, &mut out.narrow);
        match &self.wide_points {
            Some(points) => points.at(dst, src, out),
            None => out.add_wide(&self.wide),
        }
    }
}

/// A sub's destination and source maps with the rule's sets, the smaller set first.
fn smaller_first<'m, 's, M>(
    dst: (&'m mut M, &'s IntervalSet),
    src: (&'m mut M, &'s IntervalSet),
) -> [(&'m mut M, &'s IntervalSet); 2] {
    if dst.1.count() <= src.1.count() {
        [dst, src]
    } else {
        [src, dst]
    }
}

/// Wide rules for point queries, by the CIDR blocks of their smaller address set.
#[derive(Default)]
struct WidePoints {
    by_dst: PrefixMap,
    by_src: PrefixMap,
    /// Rules whose address sets are too fragmented for either map.
    rest: Vec<u32>,
}

impl WidePoints {
    fn insert(&mut self, dst: &IntervalSet, src: &IntervalSet, id: u32) {
        let [a, b] = smaller_first((&mut self.by_dst, dst), (&mut self.by_src, src));
        if !a.0.try_insert(a.1, id) && !b.0.try_insert(b.1, id) {
            self.rest.push(id);
        }
    }

    fn at<'s>(&'s self, dst: u128, src: u128, out: &mut Candidates<'s>) {
        self.by_dst.at(dst, out);
        self.by_src.at(src, out);
        out.add_wide(&self.rest);
    }
}

/// CIDR blocks an address set may split into before it is left out of a [`PrefixMap`].
const MAX_BLOCKS: usize = 128;

/// Address sets by the CIDR blocks that make them up, for point queries: an address
/// lies in at most one block of a set, and the blocks that hold it are found with one
/// lookup per block length in use, however wide the blocks.
#[derive(Default)]
struct PrefixMap {
    /// `(length, prefix)` → ids, in chain order.
    blocks: HashMap<(u8, u128), Vec<u32>>,
    /// The block lengths in use.
    lengths: Vec<u8>,
}

impl PrefixMap {
    /// Adds `set` under its blocks if it has at most [`MAX_BLOCKS`]; false otherwise.
    fn try_insert(&mut self, set: &IntervalSet, id: u32) -> bool {
        let mut blocks = SmallVec::<[(u8, u128); 4]>::new();
        for &(lo, hi) in set.ranges() {
            cidr_blocks(lo, hi, &mut blocks);
            if blocks.len() > MAX_BLOCKS {
                return false;
            }
        }
        for (len, prefix) in blocks {
            self.blocks.entry((len, prefix)).or_default().push(id);
            if !self.lengths.contains(&len) {
                self.lengths.push(len);
            }
        }
        true
    }

    /// The lists of the blocks that hold address `v`.
    fn at<'s>(&'s self, v: u128, out: &mut Candidates<'s>) {
        for &len in &self.lengths {
            if let Some(ids) = self.blocks.get(&(len, prefix_of(v, len))) {
                out.add_wide(ids);
            }
        }
    }
}

/// The first `len` bits of `v`.
fn prefix_of(v: u128, len: u8) -> u128 {
    v.checked_shr(128 - u32::from(len)).unwrap_or(0)
}

/// The last address of the block of `2^bits` addresses that starts at `lo` (aligned).
fn block_end(lo: u128, bits: u32) -> u128 {
    lo | 1u128.checked_shl(bits).map_or(u128::MAX, |size| size - 1)
}

/// Appends the CIDR blocks, as `(length, prefix)`, that exactly make up `lo..=hi`.
fn cidr_blocks(mut lo: u128, hi: u128, out: &mut impl Extend<(u8, u128)>) {
    loop {
        // The largest block aligned at `lo` that ends at or before `hi`.
        let mut bits = lo.trailing_zeros();
        while bits > 0 && block_end(lo, bits) > hi {
            bits -= 1;
        }
        let len = (128 - bits) as u8;
        out.extend([(len, prefix_of(lo, len))]);
        let end = block_end(lo, bits);
        if end >= hi {
            return;
        }
        lo = end + 1;
    }
}

/// Narrow address ranges by the block of [`NARROW`] addresses their low end lies in. A
/// narrow range that meets a query starts in one of the query's blocks or in the block
/// before, so a point query reads two short lists. Hashed lists, not a tree ordered by
/// address: a big chain indexes hundreds of thousands of ranges, and a push costs a
/// fraction of a tree insert.
#[derive(Default)]
struct AddrMap {
    /// Inline up to two: most blocks hold one or two ranges (277,000 of the 294,000 of
    /// a generated ASA config of 100,000 rules), and each was a list allocated, grown
    /// and freed on its own.
    blocks: HashMap<u128, SmallVec<[NarrowRange; 2]>>,
}

/// A narrow range inside its block: where it starts there and how many addresses
/// follow, so an entry is eight bytes.
#[derive(Clone, Copy)]
struct NarrowRange {
    offset: u16,
    extra: u16,
    id: u32,
}

/// The bits of an address below its block.
const BLOCK_BITS: u32 = NARROW.trailing_zeros();

// A narrow range's offset in its block and its length less one fit in 16 bits each.
const _: () = assert!(NARROW == 1 << 16);

impl AddrMap {
    /// Adds every range of `set` if all are narrow and few; false otherwise.
    fn try_insert(&mut self, set: &IntervalSet, id: u32) -> bool {
        let ranges = set.ranges();
        if ranges.len() > MAX_RANGES || ranges.iter().any(|(lo, hi)| hi - lo >= NARROW) {
            return false;
        }
        for &(lo, hi) in ranges {
            let entry = NarrowRange {
                offset: (lo % NARROW) as u16,
                extra: (hi - lo) as u16,
                id,
            };
            self.blocks.entry(lo >> BLOCK_BITS).or_default().push(entry);
        }
        true
    }

    /// Rules with a range overlapping `set` (its hull, when it has many ranges).
    fn overlapping(&self, set: &IntervalSet, out: &mut Vec<u32>) {
        if self.blocks.is_empty() {
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

    /// Rules with a range overlapping `lo..=hi`, in no particular order.
    fn overlapping_range(&self, lo: u128, hi: u128, out: &mut Vec<u32>) {
        let first = lo.saturating_sub(NARROW - 1) >> BLOCK_BITS;
        let last = hi >> BLOCK_BITS;
        let meets = |block: u128, list: &[NarrowRange], out: &mut Vec<u32>| {
            let base = block << BLOCK_BITS;
            out.extend(
                list.iter()
                    .filter(|r| {
                        let start = base + u128::from(r.offset);
                        start <= hi && start + u128::from(r.extra) >= lo
                    })
                    .map(|r| r.id),
            );
        };
        // A wide query reads every block the map has rather than every block it spans.
        if last - first >= self.blocks.len() as u128 {
            for (&block, list) in &self.blocks {
                if (first..=last).contains(&block) {
                    meets(block, list, out);
                }
            }
            return;
        }
        for block in first..=last {
            if let Some(list) = self.blocks.get(&block) {
                meets(block, list, out);
            }
        }
    }
}

fn service_hash(proto: &IntervalSet, dport: &IntervalSet) -> u64 {
    use std::hash::BuildHasher;
    // Twice per rule and once per redundancy query: foldhash, not SipHash.
    foldhash::fast::FixedState::default().hash_one((proto, dport))
}

impl RuleIndex {
    fn new(ifaces: usize) -> RuleIndex {
        RuleIndex {
            ifaces: ifaces as u128,
            groups: Vec::new(),
            group_bounds: Vec::new(),
            by_service: HashMap::new(),
            by_point: HashMap::new(),
            by_port_block: HashMap::new(),
            broad_services: Vec::new(),
        }
    }

    /// Adds rule `id` with its cube.
    fn insert(&mut self, cube: &Cube, id: usize) {
        let (proto, dport) = (cube.get(Field::Proto), cube.get(Field::DstPort));
        let hash = service_hash(&proto, &dport);
        let slot = self.by_service.entry(hash).or_default();
        let found = slot.iter().copied().find(|&g| {
            self.groups
                .get(g)
                .is_some_and(|x| x.proto == *proto && x.dport == *dport)
        });
        let g = match found {
            Some(g) => g,
            None => {
                let g = self.groups.len();
                self.group_bounds.push(ServiceBounds::of(&proto, &dport));
                self.groups.push(Group {
                    proto: (*proto).clone(),
                    dport: (*dport).clone(),
                    subs: HashMap::new(),
                });
                slot.push(g);
                self.file_service(g, &proto, &dport);
                g
            }
        };
        let Some(group) = self.groups.get_mut(g) else {
            return;
        };
        for key in SubKey::of(cube, self.ifaces) {
            group.subs.entry(key).or_default().insert(cube, id as u32);
        }
    }

    /// Lists new group `g` where point queries look for the service `proto`, `dport`.
    fn file_service(&mut self, g: usize, proto: &IntervalSet, dport: &IntervalSet) {
        if proto.count().saturating_mul(dport.count()) <= MAX_SERVICE_POINTS {
            for point in values(proto).flat_map(|p| values(dport).map(move |q| (p, q))) {
                self.by_point.entry(point).or_default().push(g);
            }
            return;
        }
        let blocks = |&(lo, hi): &(u128, u128)| (lo / PORT_BLOCK)..=(hi / PORT_BLOCK);
        let touched: u128 = dport
            .ranges()
            .iter()
            .map(|r| blocks(r).count() as u128)
            .sum();
        if touched > MAX_PORT_BLOCKS {
            self.broad_services.push(g);
            return;
        }
        let mut last = None;
        for block in dport.ranges().iter().flat_map(blocks) {
            // Two ranges of one set can share a block: file the group there once.
            if last != Some(block) {
                self.by_port_block.entry(block).or_default().push(g);
            }
            last = Some(block);
        }
    }

    /// The groups from `first` on whose services' bounds overlap `service`.
    fn groups_meeting(
        &self,
        first: usize,
        service: ServiceBounds,
    ) -> impl Iterator<Item = (usize, &Group)> + '_ {
        self.group_bounds
            .iter()
            .zip(&self.groups)
            .enumerate()
            .skip(first)
            .filter(move |(_, (b, _))| b.overlaps(&service))
            .map(|(g, (_, group))| (g, group))
    }

    /// Rules that may hold the packet `p`, after the ids already in `extra`.
    fn candidates_at(&self, memo: &mut IndexMemo, p: &Point, extra: Vec<u32>) -> Candidates<'_> {
        let (proto, port) = (p[Field::Proto as usize], p[Field::DstPort as usize]);
        let memo = memo.points.entry((proto, port)).or_default();
        // The groups made since this service's last query.
        let tested = memo.0;
        let untested = |list: &'_ [usize]| -> usize { list.partition_point(|&g| g < tested) };
        if let Some(list) = self.by_point.get(&(proto, port)) {
            memo.1.extend_from_slice(&list[untested(list)..]);
        }
        let point = ServiceBounds::point(proto, port);
        let wider = [
            self.by_port_block.get(&(port / PORT_BLOCK)),
            Some(&self.broad_services),
        ];
        for list in wider.into_iter().flatten() {
            for &g in &list[untested(list)..] {
                let holds = self.group_bounds.get(g).is_some_and(|b| b.overlaps(&point))
                    && self
                        .groups
                        .get(g)
                        .is_some_and(|x| x.proto.contains(proto) && x.dport.contains(port));
                if holds {
                    memo.1.push(g);
                }
            }
        }
        memo.0 = self.groups.len();
        let keys = [
            SubKey::In(p[Field::InIface as usize]),
            SubKey::Out(p[Field::OutIface as usize]),
            SubKey::Any,
        ];
        let (dst, src) = (p[Field::DstAddr as usize], p[Field::SrcAddr as usize]);
        let mut out = Candidates::new(extra);
        for group in memo.1.iter().filter_map(|&g| self.groups.get(g)) {
            for sub in keys.iter().filter_map(|k| group.subs.get(k)) {
                sub.at(dst, src, &mut out);
            }
        }
        out
    }

    /// Rules that may overlap `query`, after the ids already in `extra`.
    fn candidates(&self, memo: &mut IndexMemo, query: &Cube, extra: Vec<u32>) -> Candidates<'_> {
        let (proto, dport) = (query.get(Field::Proto), query.get(Field::DstPort));
        let slot = memo.cubes.entry(service_hash(&proto, &dport)).or_default();
        let at = match slot
            .iter()
            .position(|m| m.proto == *proto && m.dport == *dport)
        {
            Some(m) => m,
            None => {
                slot.push(CubeMemo {
                    proto: (*proto).clone(),
                    dport: (*dport).clone(),
                    tested: 0,
                    groups: Vec::new(),
                });
                slot.len() - 1
            }
        };
        let mut out = Candidates::new(extra);
        let Some(memo) = slot.get_mut(at) else {
            return out;
        };
        let service = ServiceBounds::of(&proto, &dport);
        for (g, group) in self.groups_meeting(memo.tested, service) {
            if group.proto.intersects(&proto) && group.dport.intersects(&dport) {
                memo.groups.push(g);
            }
        }
        memo.tested = self.groups.len();
        let (inn, outi) = (query.get(Field::InIface), query.get(Field::OutIface));
        let (dst, src) = (query.get(Field::DstAddr), query.get(Field::SrcAddr));
        for group in memo.groups.iter().filter_map(|&g| self.groups.get(g)) {
            for (key, sub) in &group.subs {
                if key.meets(&inn, &outi) {
                    sub.overlapping(&dst, &src, &mut out);
                }
            }
        }
        out
    }
}

/// The rules an index query found: ids from the address maps (any order, repeats) and
/// the wide lists of the subs it met, each in chain order.
struct Candidates<'i> {
    narrow: Vec<u32>,
    wide: Vec<&'i [u32]>,
}

impl<'i> Candidates<'i> {
    fn new(extra: Vec<u32>) -> Candidates<'i> {
        Candidates {
            narrow: extra,
            wide: Vec::new(),
        }
    }

    fn add_wide(&mut self, list: &'i [u32]) {
        if !list.is_empty() {
            self.wide.push(list);
        }
    }

    /// The candidates from rule `first` on, in chain order, each once.
    fn from(mut self, first: usize) -> Ascending<'i> {
        self.narrow.sort_unstable();
        self.narrow.dedup();
        let below = |list: &[u32]| list.partition_point(|&j| (j as usize) < first);
        let next_narrow = below(&self.narrow);
        let mut heads = BinaryHeap::with_capacity(self.wide.len());
        for (l, list) in self.wide.iter().enumerate() {
            let at = below(list);
            if let Some(&id) = list.get(at) {
                heads.push(Reverse((id, l, at)));
            }
        }
        Ascending {
            narrow: self.narrow,
            next_narrow,
            last: None,
            wide: self.wide,
            heads,
        }
    }
}

/// Candidate ids in chain order: the sorted narrow ids merged with the heads of the
/// wide lists, one step at a time.
struct Ascending<'i> {
    narrow: Vec<u32>,
    next_narrow: usize,
    /// The last id given: a rule keyed under several interfaces is in several lists.
    last: Option<u32>,
    wide: Vec<&'i [u32]>,
    /// `(id, list, position)` of the next unread id of each wide list.
    heads: BinaryHeap<Reverse<(u32, usize, usize)>>,
}

impl Ascending<'_> {
    /// The narrow ids' buffer, to reuse.
    fn into_buffer(self) -> Vec<u32> {
        self.narrow
    }

    /// The smallest unread id, repeats included.
    fn next_any(&mut self) -> Option<u32> {
        let narrow = self.narrow.get(self.next_narrow).copied();
        let wide = self.heads.peek().map(|Reverse((id, _, _))| *id);
        match (narrow, wide) {
            (Some(n), w) if w.is_none_or(|w| n <= w) => {
                self.next_narrow += 1;
                Some(n)
            }
            _ => self.next_wide(),
        }
    }

    fn next_wide(&mut self) -> Option<u32> {
        let Reverse((id, l, at)) = self.heads.pop()?;
        if let Some(&next) = self.wide.get(l).and_then(|list| list.get(at + 1)) {
            self.heads.push(Reverse((next, l, at + 1)));
        }
        Some(id)
    }
}

impl Iterator for Ascending<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        loop {
            let id = self.next_any()?;
            if self.last != Some(id) {
                self.last = Some(id);
                return Some(id as usize);
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
        described(g, analyse(&m, true))
    }

    fn described(g: &RuleGraph, results: Vec<Vec<RuleResult>>) -> Vec<(String, usize, String)> {
        results
            .into_iter()
            .flatten()
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
    fn pass_2_answers_the_same_in_runs() {
        // Enough live rules for several runs: per-/24 rules, some of them repeated by
        // a later /16 of the same verdict, some contradicted by a later DROP.
        let mut rules = String::new();
        for k in 0..1200u32 {
            let (b, c) = (k / 200, k % 200);
            let verdict = if k % 3 == 0 { "DROP" } else { "ACCEPT" };
            rules.push_str(&format!(
                "-A FORWARD -s 10.{b}.{c}.0/24 -p tcp --dport {} -j {verdict}\n",
                80 + k % 5
            ));
            if k % 200 == 199 {
                rules.push_str(&format!("-A FORWARD -s 10.{b}.0.0/16 -p tcp -j ACCEPT\n"));
            }
        }
        let g = ipt(&rules);
        let m = Model::new(&g, &[]);
        let serial = described(&g, analyse_in_runs(&m, true, 1));
        let redundant = serial
            .iter()
            .filter(|(_, _, s)| s.starts_with("redundant"))
            .count();
        let live = serial.iter().filter(|(_, _, s)| s == "live").count();
        assert!(
            redundant > 100 && live > 100,
            "{redundant} redundant, {live} live"
        );
        for runs in [2, 7, 64] {
            assert_eq!(
                described(&g, analyse_in_runs(&m, true, runs)),
                serial,
                "{runs} runs"
            );
        }
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
    fn cidr_blocks_make_up_the_range_exactly() {
        let cases: [(u128, u128, usize); 5] = [
            (0, u128::MAX, 1),
            (0xffff_0a00_0000, 0xffff_0aff_ffff, 1),
            (5, 5, 1),
            // 10.0.0.5 - 10.0.3.7: 5/32 6/31 8/29 16/28 32/27 64/26 128/25 1.0/24
            // 2.0/23 3.0/29.
            (0xffff_0a00_0005, 0xffff_0a00_0307, 10),
            (1, u128::MAX - 1, 254),
        ];
        for (lo, hi, n) in cases {
            let mut blocks = Vec::new();
            cidr_blocks(lo, hi, &mut blocks);
            assert_eq!(blocks.len(), n, "{lo:#x}-{hi:#x}");
            // Adjacent, in order, from lo to hi.
            let mut next = Some(lo);
            for &(len, prefix) in &blocks {
                let start = prefix.checked_shl(128 - u32::from(len)).unwrap_or(0);
                assert_eq!(Some(start), next);
                let end = block_end(start, 128 - u32::from(len));
                next = end.checked_add(1);
            }
            assert_eq!(next, hi.checked_add(1));
        }
    }

    /// Strictly increasing: chain order, no repeats.
    fn assert_in_chain_order(ids: &[usize]) {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }

    #[test]
    fn address_map_finds_exactly_the_ranges_that_meet_a_query() {
        // Ranges up to a block wide, many across a block's end, some at the top of the
        // address space; queries from one address to far more blocks than the map has.
        let mut x: u64 = 11;
        let mut next = |m: u128| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            u128::from(x >> 33) % m
        };
        let around = |k: u128| (k << BLOCK_BITS) - 300;
        let mut ranges = Vec::new();
        for id in 0..3000u32 {
            let lo = match next(3) {
                0 => around(1 + next(40)) + next(600),
                1 => next(40 << BLOCK_BITS),
                _ => u128::MAX - next(3 * NARROW),
            };
            let hi = lo.saturating_add(match next(3) {
                0 => 0,
                1 => next(512),
                _ => next(NARROW),
            });
            ranges.push((lo, hi, id));
        }
        let mut map = AddrMap::default();
        for &(lo, hi, id) in &ranges {
            assert!(map.try_insert(&IntervalSet::range(lo, hi), id));
        }
        let mut queries = vec![(0, u128::MAX), (u128::MAX, u128::MAX)];
        for _ in 0..400 {
            let lo = match next(2) {
                0 => around(1 + next(40)) + next(600),
                _ => u128::MAX - next(4 * NARROW),
            };
            let width = [0, 1, 700, NARROW, 5 * NARROW, 100 * NARROW][next(6) as usize];
            queries.push((lo, lo.saturating_add(width)));
        }
        for (qlo, qhi) in queries {
            let mut found = Vec::new();
            map.overlapping_range(qlo, qhi, &mut found);
            found.sort_unstable();
            let expected: Vec<u32> = ranges
                .iter()
                .filter(|&&(lo, hi, _)| lo <= qhi && hi >= qlo)
                .map(|&(_, _, id)| id)
                .collect();
            assert_eq!(found, expected, "query {qlo}..={qhi}");
        }
    }

    #[test]
    fn index_returns_every_overlapping_rule() {
        // Many services with a few rules each, and few services with long wide lists
        // (looked up by their blocks rather than read).
        for (services, rules) in [(100, 400), (1, 1000)] {
            index_finds_every_overlap(services, rules);
        }
    }

    fn index_finds_every_overlap(services: u64, rules: usize) {
        let cubes = mixed_cubes(services, rules);
        let mut index = RuleIndex::new(3);
        for (i, c) in cubes.iter().enumerate() {
            index.insert(c, i);
        }
        for q in &cubes {
            let ids: Vec<usize> = index
                .candidates(&mut IndexMemo::default(), q, Vec::new())
                .from(0)
                .collect();
            assert_in_chain_order(&ids);
            for (j, c) in cubes.iter().enumerate() {
                if c.intersects(q) {
                    assert!(ids.contains(&j), "rule {j} missed");
                }
            }
            for p in [q.low_corner(), q.high_corner()].into_iter().flatten() {
                let ids: Vec<usize> = index
                    .candidates_at(&mut IndexMemo::default(), &p, Vec::new())
                    .from(0)
                    .collect();
                assert_in_chain_order(&ids);
                for (j, c) in cubes.iter().enumerate() {
                    if c.contains(&p) {
                        assert!(ids.contains(&j), "rule {j} missed at a point");
                    }
                }
                // From a rule on: exactly the candidates at or after it.
                let half = rules / 2;
                let after: Vec<usize> = index
                    .candidates_at(&mut IndexMemo::default(), &p, Vec::new())
                    .from(half)
                    .collect();
                let expected: Vec<usize> = ids.iter().copied().filter(|&j| j >= half).collect();
                assert_eq!(after, expected);
            }
        }
    }

    #[test]
    fn point_queries_with_one_memo_see_the_services_added_since() {
        // As pass 1 asks: the index grows between the queries of one memo, and a
        // service first seen after a point's last query must still be found.
        let cubes = mixed_cubes(40, 600);
        let mut index = RuleIndex::new(3);
        let mut memo = IndexMemo::default();
        for (i, c) in cubes.iter().enumerate() {
            index.insert(c, i);
            for q in cubes.iter().skip(i.saturating_sub(8)).take(16) {
                let Some(p) = q.low_corner() else { continue };
                let ids: Vec<usize> = index
                    .candidates_at(&mut memo, &p, Vec::new())
                    .from(0)
                    .collect();
                for (j, c) in cubes.iter().enumerate().take(i + 1) {
                    if c.contains(&p) {
                        assert!(ids.contains(&j), "rule {j} missed after {i} inserts");
                    }
                }
            }
        }
    }

    /// A deterministic mix of narrow, multi-range and wide rules over `services`
    /// ports, some of them port ranges.
    fn mixed_cubes(services: u64, rules: usize) -> Vec<Cube> {
        let mut cubes = Vec::new();
        let mut x: u64 = 7;
        let mut next = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        for _ in 0..rules {
            let mut c = Cube::full(3);
            // One protocol, or TCP and UDP as a pfSense `tcp/udp` rule has them.
            let proto = match next(services.min(4)) {
                3 => IntervalSet::from_ranges([(6, 6), (17, 17)]),
                k => IntervalSet::single([6, 17, 1][k as usize]),
            };
            c.restrict(Field::Proto, &proto);
            let iface = next(3) as u128;
            match next(4) {
                0 | 1 => c.restrict(Field::InIface, &IntervalSet::single(iface)),
                // Two interfaces, keyed under each; or the egress side.
                2 => c.restrict(Field::InIface, &IntervalSet::from_ranges([(0, 0), (2, 2)])),
                _ => c.restrict(Field::OutIface, &IntervalSet::single(iface)),
            }
            // Ports spread over the port blocks: single ports, short ranges, ranges
            // across blocks, two ranges, and ranges too wide to file by block.
            let p = (next(services) * 977 % 60_000) as u128;
            let dport = match next(6) {
                0 => IntervalSet::range(p, p + 700),
                1 => IntervalSet::range(p, p + 5000),
                2 => IntervalSet::from_ranges([(p, p + 20), (p + 3000, p + 3010)]),
                k => IntervalSet::range(p, p + (k as u128 - 3) * 50),
            };
            c.restrict(Field::DstPort, &dport);
            let base = crate::graph::sets::addr::V4_BASE + (10 << 24);
            let a = base + next(1 << 20) as u128;
            match next(7) {
                6 => c.restrict(
                    Field::SrcAddr,
                    &IntervalSet::range(a, a + (1 << 19) + next(1 << 10) as u128),
                ),
                // Wide, not a CIDR block: found by the blocks that make it up.
                4 => c.restrict(
                    Field::DstAddr,
                    &IntervalSet::range(a, a + (1 << 17) + next(1 << 18) as u128),
                ),
                // Wide in both fields: found by the smaller.
                5 => {
                    c.restrict(Field::SrcAddr, &IntervalSet::range(base, base + (1 << 23)));
                    c.restrict(Field::DstAddr, &IntervalSet::range(a, a + (1 << 20)));
                }
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
        cubes
    }
}
