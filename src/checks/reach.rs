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
//! earlier deciding rule holds proves the rule reachable at once. The exact subtraction
//! runs only when both probes are covered, within a work budget; a rule that exceeds it
//! is counted as not analysed and never reported (no guess, no false positive).
//!
//! Implicit rules — the ASA implicit deny and security levels, pfSense's `<blockpriv>`
//! rules and port forwards, the ASA access-group dispatch — are analysed as rules but
//! never reported: see [`implicit_spans`].

use crate::analysis::cube::Field;
use crate::analysis::{Cube, Decider, Model};
use crate::graph::{Action, ChainId, IntervalSet, NatTarget, RuleGraph};
use crate::source::Span;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Earlier or later rules one query may return before the rule is given up on.
const MAX_CANDIDATES: usize = 4096;
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
    /// Yes: one such packet.
    Live(Cube),
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
    Yes(Effect<'g>, Vec<Decider>, Cube),
    /// The work budget ran out.
    Cut,
}

/// Analyses every reportable rule of every chain; redundancy only if `redundancy`.
pub fn analyse<'g>(model: &Model<'g>, redundancy: bool) -> Vec<RuleResult<'g>> {
    let graph = model.graph;
    let facts = ChainFacts::new(graph);
    let implicit = implicit_spans(graph);
    let mut out = Vec::new();
    for (c, chain) in graph.chains.iter().enumerate() {
        let id = ChainId(c);
        let rules: Vec<ChainRule<'g>> = chain
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let (cube, unknown) = model.rule_cube(id, i)?;
                Some(ChainRule {
                    cube: cube.clone(),
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
        };
        if redundancy {
            for (i, r) in rules.iter().enumerate() {
                cx.all.insert(&r.cube, i);
            }
        }
        for (i, r) in rules.iter().enumerate() {
            if r.reportable {
                let reach = cx.reach(i);
                let redundancy = match (&reach, redundancy) {
                    (Reach::Live(p), true) => cx.redundancy(i, p),
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
            if r.effect.is_some() && !r.unknown {
                cx.earlier.insert(&r.cube, i);
            }
        }
    }
    out
}

/// One rule as the analysis sees it.
struct ChainRule<'g> {
    cube: Cube,
    unknown: bool,
    effect: Option<Effect<'g>>,
    /// A non-terminating target (LOG, MARK): matching packets go on.
    continues: bool,
    span: Span,
    reportable: bool,
}

/// The state of one chain's pass.
struct ChainCx<'r, 'g> {
    id: ChainId,
    rules: &'r [ChainRule<'g>],
    /// Earlier rules that surely decide their packets (known conditions, an effect).
    earlier: RuleIndex,
    /// Every rule of the chain (filled only for redundancy).
    all: RuleIndex,
    end: Effect<'g>,
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

impl<'g> ChainCx<'_, 'g> {
    /// Whether rule `i` can be reached, given the earlier rules in the index.
    fn reach(&mut self, i: usize) -> Reach {
        let Some(rule) = self.rules.get(i) else {
            return Reach::Cut;
        };
        if rule.cube.is_empty() {
            return Reach::Empty;
        }
        for probe in [low_point(&rule.cube), high_point(&rule.cube)] {
            match self.earlier_cover(&probe, &rule.cube) {
                Cover::None => return Reach::Live(probe),
                Cover::Whole(j) => return Reach::Dead(vec![j]),
                Cover::Probe => {}
            }
        }
        match self.remainder(i) {
            None => Reach::Cut,
            Some((pieces, used)) => match pieces.first() {
                Some(p) => Reach::Live(low_point(p)),
                None => Reach::Dead(used),
            },
        }
    }

    /// Whether earlier deciding rules hold the one-packet cube `probe`, and whether one
    /// of those holds all of `whole` (the usual way a rule is dead: one broader rule).
    fn earlier_cover(&mut self, probe: &Cube, whole: &Cube) -> Cover {
        let mut ids = Vec::new();
        self.earlier.candidates(probe, &mut ids);
        ids.sort_unstable();
        let mut cover = Cover::None;
        for j in ids {
            let Some(r) = self.rules.get(j as usize) else {
                continue;
            };
            if r.cube.intersects(probe) {
                if whole.is_subset(&r.cube) {
                    return Cover::Whole(j as usize);
                }
                cover = Cover::Probe;
            }
        }
        cover
    }

    /// Rule `i`'s cube minus every earlier deciding rule, with the rules that took part;
    /// `None` if the budget ran out.
    fn remainder(&mut self, i: usize) -> Option<(Vec<Cube>, Vec<usize>)> {
        let rule = self.rules.get(i)?;
        let mut ids = Vec::new();
        self.earlier.candidates(&rule.cube, &mut ids);
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > MAX_CANDIDATES {
            return None;
        }
        let mut pieces = vec![rule.cube.clone()];
        let mut used = Vec::new();
        for j in ids {
            let Some(other) = self.rules.get(j as usize) else {
                continue;
            };
            let mut next = Vec::with_capacity(pieces.len());
            let mut hit = false;
            for p in pieces {
                if p.intersects(&other.cube) {
                    hit = true;
                    next.extend(p.subtract(&other.cube));
                } else {
                    next.push(p);
                }
            }
            if next.len() > MAX_PIECES {
                return None;
            }
            pieces = next;
            if hit {
                used.push(j as usize);
            }
            if pieces.is_empty() {
                break;
            }
        }
        Some((pieces, used))
    }

    /// Whether the later rules would give rule `i`'s packets its own effect; `probe` is
    /// a packet that reaches it.
    fn redundancy(&mut self, i: usize, probe: &Cube) -> Redundancy<'g> {
        let Some(rule) = self.rules.get(i) else {
            return Redundancy::Unknown;
        };
        let Some(effect) = rule.effect else {
            return Redundancy::Unknown;
        };
        // Quick refusal: the first later rule that decides the probe decides otherwise.
        let mut ids = Vec::new();
        self.all.candidates(probe, &mut ids);
        let later = self.later_rules(i, ids);
        let mut one = vec![probe.clone()];
        if self.walk(effect, &later, &mut one, &mut Vec::new()) != Walk::Same {
            return Redundancy::No;
        }
        // Exact: what reaches the rule, walked through every later rule that overlaps it.
        let Some((mut pieces, _)) = self.remainder(i) else {
            return Redundancy::Cut;
        };
        let mut ids = Vec::new();
        self.all.candidates(&rule.cube, &mut ids);
        let later = self.later_rules(i, ids);
        if later.len() > MAX_CANDIDATES {
            return Redundancy::Cut;
        }
        let sample = pieces.first().cloned().unwrap_or_else(|| probe.clone());
        let mut deciders = Vec::new();
        match self.walk(effect, &later, &mut pieces, &mut deciders) {
            Walk::Same => Redundancy::Yes(effect, deciders, sample),
            Walk::Differs => Redundancy::No,
            Walk::Cut => Redundancy::Cut,
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
            if !pieces.iter().any(|p| p.intersects(&rule.cube)) {
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
                if p.intersects(&rule.cube) {
                    next.extend(p.subtract(&rule.cube));
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

/// The packet of a cube with every field at its lowest value.
fn low_point(c: &Cube) -> Cube {
    point(c, |s| s.first())
}

/// The packet of a cube with every field at its highest value.
fn high_point(c: &Cube) -> Cube {
    point(c, |s| s.ranges().last().map(|r| r.1))
}

fn point(c: &Cube, pick: impl Fn(&IntervalSet) -> Option<u128>) -> Cube {
    let mut p = c.clone();
    for slot in p.fields.iter_mut() {
        *slot = pick(slot).map_or_else(IntervalSet::empty, IntervalSet::single);
    }
    p
}

/// Rule cubes of one chain, found by overlap without scanning them all. Rules are
/// grouped by their exact (protocol, destination port) sets — a ruleset has few distinct
/// services — and inside a group by the destination address ranges when those are
/// narrow, else by narrow source ranges, else kept in a short list scanned every time.
/// [`RuleIndex::candidates`] returns a superset of the rules that overlap a query; the
/// caller tests each exactly.
#[derive(Default)]
struct RuleIndex {
    groups: Vec<Group>,
    by_service: HashMap<(IntervalSet, IntervalSet), usize>,
    /// Per query service: how many groups were tested, and those that overlap.
    memo: HashMap<(IntervalSet, IntervalSet), (usize, Vec<usize>)>,
}

/// The rules of one service.
struct Group {
    proto: IntervalSet,
    dport: IntervalSet,
    by_dst: AddrMap,
    by_src: AddrMap,
    wide: Vec<u32>,
}

/// Narrow address ranges by their low end: `lo → [(hi, rule)]`.
#[derive(Default)]
struct AddrMap(BTreeMap<u128, Vec<(u128, u32)>>);

impl AddrMap {
    /// Adds every range of `set` if all are narrow and few; false otherwise.
    fn try_insert(&mut self, set: &IntervalSet, id: u32) -> bool {
        let ranges = set.ranges();
        if ranges.len() > MAX_RANGES || ranges.iter().any(|(lo, hi)| hi - lo >= NARROW) {
            return false;
        }
        for &(lo, hi) in ranges {
            self.0.entry(lo).or_default().push((hi, id));
        }
        true
    }

    /// Rules with a range overlapping `set`.
    fn overlapping(&self, set: &IntervalSet, out: &mut Vec<u32>) {
        if self.0.is_empty() {
            return;
        }
        for (qlo, qhi) in query_ranges(set) {
            for (_, entries) in self.0.range(qlo.saturating_sub(NARROW - 1)..=qhi) {
                out.extend(
                    entries
                        .iter()
                        .filter(|(hi, _)| *hi >= qlo)
                        .map(|(_, id)| *id),
                );
            }
        }
    }
}

/// The ranges of a query field, or their hull when there are many.
fn query_ranges(set: &IntervalSet) -> Vec<(u128, u128)> {
    let r = set.ranges();
    match (r.first(), r.last()) {
        (Some(first), Some(last)) if r.len() > MAX_RANGES => vec![(first.0, last.1)],
        _ => r.to_vec(),
    }
}

impl RuleIndex {
    /// Adds rule `id` with its cube.
    fn insert(&mut self, cube: &Cube, id: usize) {
        let id = id as u32;
        let key = (
            cube.get(Field::Proto).clone(),
            cube.get(Field::DstPort).clone(),
        );
        let g = match self.by_service.get(&key) {
            Some(&g) => g,
            None => {
                self.groups.push(Group {
                    proto: key.0.clone(),
                    dport: key.1.clone(),
                    by_dst: AddrMap::default(),
                    by_src: AddrMap::default(),
                    wide: Vec::new(),
                });
                self.by_service.insert(key, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let Some(group) = self.groups.get_mut(g) else {
            return;
        };
        if !group.by_dst.try_insert(cube.get(Field::DstAddr), id)
            && !group.by_src.try_insert(cube.get(Field::SrcAddr), id)
        {
            group.wide.push(id);
        }
    }

    /// Pushes (possibly repeated) ids of rules that may overlap `query`.
    fn candidates(&mut self, query: &Cube, out: &mut Vec<u32>) {
        let key = (
            query.get(Field::Proto).clone(),
            query.get(Field::DstPort).clone(),
        );
        let entry = self.memo.entry(key).or_insert_with(|| (0, Vec::new()));
        for (g, group) in self.groups.iter().enumerate().skip(entry.0) {
            if group.proto.intersects(query.get(Field::Proto))
                && group.dport.intersects(query.get(Field::DstPort))
            {
                entry.1.push(g);
            }
        }
        entry.0 = self.groups.len();
        for &g in &entry.1 {
            let Some(group) = self.groups.get(g) else {
                continue;
            };
            group.by_dst.overlapping(query.get(Field::DstAddr), out);
            group.by_src.overlapping(query.get(Field::SrcAddr), out);
            out.extend_from_slice(&group.wide);
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
                    Reach::Live(_) => match &r.redundancy {
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
            for probe in [q.clone(), low_point(q), high_point(q)] {
                let mut ids = Vec::new();
                index.candidates(&probe, &mut ids);
                for (j, c) in cubes.iter().enumerate() {
                    if c.intersects(&probe) {
                        assert!(ids.contains(&(j as u32)), "rule {j} missed");
                    }
                }
            }
        }
    }
}
