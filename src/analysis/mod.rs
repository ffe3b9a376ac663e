//! The analysis: which packets of a set the rule graph permits, and which rule decides.
//!
//! Given a query — a [`Cube`] of packets, e.g. "every NEW packet from the perimeter
//! interfaces to the internal ones" — [`Model::evaluate`] walks the graph's stages and
//! chains first-match and returns a partition of the query into [`Outcome`]s: disjoint
//! cubes, each permitted or denied, with the deciding rule and the accepting rule of every
//! stage on the way. Nothing is sampled: ports, protocols and addresses are interval sets,
//! so the answer holds for all 65,536 ports and all 256 protocols.
//!
//! Why cubes of interval sets and not BDDs (as Batfish uses): the questions mislint asks
//! are few and broad (one per zone pair), rules are conjunctions of per-field ranges, and
//! first-match walking only ever needs "rule ∩ piece" and "piece − rule". With interval
//! sets per field both are exact and linear in the sets' sizes, negation is a complement
//! inside one field, every piece names its deciding rule and a witness packet for free,
//! and no variable ordering or node table is needed. The cost is fragmentation: "piece −
//! rule" can give one piece per field. Splitting coarse fields first (protocol, state,
//! interfaces, ports, then addresses; see [`cube::Field`]) keeps the live pieces in step
//! with the distinct (protocol, port) pairs of a ruleset, not its size, and a rule that
//! cannot touch a piece is rejected by a per-field overlap test, usually on the first field.
//!
//! Uncertainty: a rule with a condition mislint does not model, or a target with an
//! unknown effect, *may* match. The walk then follows both worlds — matched and not
//! matched — and marks every piece that passed through it with [`Outcome::may`], so a
//! verdict that depends on it is reported as "may", never as a definite "closed".

pub mod cube;
pub mod reuse;
pub mod trace;
pub mod zones;

use crate::graph::sets::{addr, ct, proto};
use crate::graph::{
    Action, ChainId, CondKind, IfaceMatch, IntervalSet, NarrowSet, NatTarget, RuleGraph,
};
use crate::source::Span;
pub use cube::{Bounds, Cube, Field};
// Pieces are hashed at every stage boundary and fork: foldhash's seeded hasher is several
// times faster than SipHash on these many-word keys and still differs per run.
use foldhash::{HashMap, HashSet, HashSetExt};
use rayon::prelude::*;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard};

/// The name given to "any interface not named in the config or the zone map".
pub const OTHER_IFACE: &str = "*";

/// A rule or a chain default that decided part of a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Decider {
    /// The chain.
    pub chain: ChainId,
    /// The rule's index in the chain, or `None` for the chain's default.
    pub rule: Option<usize>,
}

/// Permitted or denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The packet gets through every stage.
    Permit,
    /// Some stage drops or rejects it.
    Deny,
}

/// One part of a query's answer.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The packets of this part.
    pub cube: Cube,
    /// What happens to them.
    pub verdict: Verdict,
    /// The rule or default that gave the final verdict (the last stage's accept for a
    /// permit, the dropping rule for a deny).
    pub decided_by: Decider,
    /// The accepting rule or default of each stage passed, in stage order.
    pub accepted_by: Vec<Decider>,
    /// The first unmodelled rule on the path, if any: the verdict then is only "may".
    pub may: Option<Decider>,
    /// The destination NAT rule that rewrote these packets, with the packets as they were
    /// sent (before the rewrite); `cube` holds them as the later stages saw them.
    pub nat: Option<Box<(Decider, Cube)>>,
}

impl Outcome {
    /// The accept that best explains a permit: the first explicit rule among the stages'
    /// accepts (a rule someone wrote), else the first default.
    pub fn permitting(&self) -> Decider {
        self.accepted_by
            .iter()
            .find(|d| d.rule.is_some())
            .or(self.accepted_by.first())
            .copied()
            .unwrap_or(self.decided_by)
    }
}

/// A rule compiled to a cube over the model's interface numbering.
#[derive(Clone, Debug)]
struct CompiledRule {
    cube: Cube,
    unknown: bool,
    /// The rule only logs or marks: the packet goes on to the next rule either way, so
    /// the walk passes it by instead of splitting pieces on its conditions.
    passive: bool,
}

/// A rule graph ready for queries.
pub struct Model<'g> {
    /// The graph.
    pub graph: &'g RuleGraph,
    /// Interface names; a packet's interface fields index into this list. The last entry
    /// is [`OTHER_IFACE`], standing for every interface the config does not name.
    pub ifaces: Vec<String>,
    /// The chains that only mark or log (see [`passive_chains`]): jumps into them are
    /// passed by.
    passive: Vec<bool>,
    rules: Vec<Vec<CompiledRule>>,
    /// Each chain's rules' [`Bounds`], in rule order. The walk's scan for the next rule
    /// reads these first.
    bounds: Vec<Vec<Bounds>>,
    /// Walk steps left before the analysis gives up on exactness (see [`STEP_BUDGET`]).
    /// Atomic and locked below only so that a model can be shared with a thread that
    /// reads its compiled rules (the chain analysis of `reach`) while this one walks.
    steps_left: AtomicUsize,
    /// Stages walked once for the packets of several queries (see [`Model::prewalk`]).
    prewalks: RwLock<Vec<Prewalk>>,
    /// Each destination NAT rule's destinations and the addresses it rewrites them to,
    /// gathered on the first query that asks (see [`Model::destinations_reaching`]).
    rewrites: OnceLock<Vec<(IntervalSet, IntervalSet)>>,
    /// Set while a lint records its walks for fix verification (see [`reuse`]).
    record: Option<Mutex<reuse::Recorded>>,
    /// Set while a fix's re-check takes over the lint's walks the edit cannot change.
    reuse: Option<reuse::Reuse>,
    /// True once a prewalk was walked again under `reuse`: the queries' walks then
    /// start from other pieces than the recorded ones did, and are walked too.
    prewalked_afresh: AtomicBool,
    /// Prewalks and query walks taken over under `reuse`.
    taken_over: AtomicUsize,
}

/// One stage's walk of a cube that holds the packets of several queries: a query inside
/// `bound` takes its results from here instead of walking the stage again.
#[derive(Clone)]
struct Prewalk {
    chain: usize,
    bound: Cube,
    results: Vec<StageResult>,
    /// The accepts of earlier stages the walked piece carried.
    accepted_before: Vec<Decider>,
    /// What the stage passed on, merged as [`Model::pass_stage`] merges, and what it
    /// denied: a query that differs from `bound` only in fields no rewrite touches
    /// takes these, cut to its packets, instead of cutting and merging every result.
    passed: Vec<Live>,
    denied: Vec<Outcome>,
}

/// Rules one core compiles at a time; smaller batches cost more to hand out than they
/// take to compile.
const COMPILE_BATCH: usize = 256;

/// How many walk steps (a piece meeting its next rule) one model may take over all its
/// queries. Real rulesets need far fewer — a 100,000-rule dump takes a few million — but
/// crafted ones can fragment without bound; past the budget the remaining pieces are
/// reported as "may be permitted", never as denied, and [`Model::exhausted`] says so.
pub const STEP_BUDGET: usize = 20_000_000;

/// Pieces waiting in one stage's walk beyond which the budget counts as spent.
pub const MAX_LIVE_PIECES: usize = 200_000;

/// A walker's position: where a piece of a query is in the chains.
struct Walker {
    cube: Cube,
    chain: usize,
    next: usize,
    stack: Option<Rc<Frame>>,
    depth: usize,
    may: Option<Decider>,
}

/// The walkers of one stage's walk still to run.
#[derive(Default)]
struct Work {
    pending: Vec<Walker>,
    /// Where walkers were resumed after a fork or a return, with their packets. The two
    /// worlds of an unmodelled rule meet again when the matched one returns from a chain
    /// to the rule the other one skipped to (kube-proxy's session-affinity chains do this
    /// at every endpoint): running such a walker once keeps a run of forking rules
    /// linear instead of doubling the pieces at each of them.
    resumed: HashSet<Resumed>,
}

/// A walker that was resumed, as the set of them holds it: its key boxed, with the key's
/// hash. A Kubernetes node's nat table resumes tens of thousands of walkers in one walk;
/// held inline, each growth of the set moved and hashed every key, cube and all, again.
struct Resumed {
    hash: u64,
    key: Box<ResumeKey>,
}

impl PartialEq for Resumed {
    fn eq(&self, other: &Resumed) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl Eq for Resumed {}

impl std::hash::Hash for Resumed {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

/// A walker's position, certainty and packets; equal keys walk identically.
#[derive(PartialEq, Eq, Hash)]
struct ResumeKey {
    chain: usize,
    next: usize,
    depth: usize,
    stack: StackId,
    may: Option<Decider>,
    cube: Cube,
}

/// A return stack compared by identity. It holds the frame, so its address cannot be
/// reused by another frame while the key exists.
struct StackId(Option<Rc<Frame>>);

impl PartialEq for StackId {
    fn eq(&self, other: &StackId) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Rc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for StackId {}

impl std::hash::Hash for StackId {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.as_ref().map(Rc::as_ptr).hash(h);
    }
}

impl Work {
    fn push(&mut self, w: Walker) {
        self.pending.push(w);
    }

    /// Queues a walker that continues after a fork or a return, unless an identical
    /// one was queued before.
    fn resume(&mut self, w: Walker) {
        use std::hash::BuildHasher;
        let key = Box::new(ResumeKey {
            chain: w.chain,
            next: w.next,
            depth: w.depth,
            stack: StackId(w.stack.clone()),
            may: w.may,
            cube: w.cube.clone(),
        });
        let hash = self.resumed.hasher().hash_one(&key);
        if self.resumed.insert(Resumed { hash, key }) {
            self.pending.push(w);
        }
    }
}

/// A return address for `Jump`.
struct Frame {
    chain: usize,
    next: usize,
    parent: Option<Rc<Frame>>,
}

/// A piece that a stage accepted or denied.
#[derive(Clone)]
struct StageResult {
    cube: Cube,
    accepted: bool,
    by: Decider,
    may: Option<Decider>,
    /// Set when the deciding rule was a destination NAT: the piece before the rewrite,
    /// shared with the NAT origins made of it (a Kubernetes node's nat table rewrites
    /// tens of thousands of pieces, which the prewalk keeps and hands on).
    pre_nat: Option<Arc<Cube>>,
}

/// A piece between stages: its packets, the accepts so far, the first unmodelled rule,
/// and the destination NAT rewrites that brought its packets here.
#[derive(Clone)]
struct Live {
    cube: Cube,
    accepted_by: Vec<Decider>,
    may: Option<Decider>,
    nat: Option<Arc<[NatOrigin]>>,
}

impl Live {
    /// A query's packets before the first stage.
    fn whole(cube: Cube) -> Live {
        Live {
            cube,
            accepted_by: Vec::new(),
            may: None,
            nat: None,
        }
    }
}

/// One destination NAT rewrite behind a piece: the rule, the packets as sent, the
/// destinations it wrote, and the first unmodelled rule on its way. A piece merged from
/// several rewrites keeps them all, so each outcome can name the one that explains it.
#[derive(Clone)]
struct NatOrigin {
    by: Decider,
    /// Shared: merged pieces copy their origin lists, and a kube-proxy service's list
    /// holds one entry per endpoint.
    before: Arc<Cube>,
    dst: IntervalSet,
    may: Option<Decider>,
}

impl<'g> Model<'g> {
    /// Compiles `graph`; `extra_ifaces` are names known from elsewhere (the zone map).
    pub fn new(graph: &'g RuleGraph, extra_ifaces: &[String]) -> Model<'g> {
        let mut ifaces: Vec<String> = graph.interfaces.iter().map(|i| i.name.clone()).collect();
        for name in extra_ifaces {
            if !ifaces.contains(name) {
                ifaces.push(name.clone());
            }
        }
        ifaces.push(OTHER_IFACE.to_string());
        let passive = passive_chains(graph);
        let cx = CompileCx {
            passive_chains: &passive,
            ifaces: &ifaces,
            port_protocols: port_protocols(),
        };
        // Each rule compiles on its own: a big chain is shared out among the cores, and
        // so are the small ones (a Kubernetes node has 28,000 chains of a few rules,
        // three quarters of its rules).
        let (rules, bounds): (Vec<Vec<CompiledRule>>, Vec<Vec<Bounds>>) = graph
            .chains
            .par_iter()
            .with_min_len(COMPILE_BATCH)
            .map_init(IfaceSets::default, |sets, chain| {
                let compiled: Vec<CompiledRule> = if chain.rules.len() > COMPILE_BATCH {
                    chain
                        .rules
                        .par_iter()
                        .with_min_len(COMPILE_BATCH)
                        .map_init(IfaceSets::default, |sets, rule| {
                            compile_rule(rule, &cx, sets)
                        })
                        .collect()
                } else {
                    let compile = |rule| compile_rule(rule, &cx, sets);
                    chain.rules.iter().map(compile).collect()
                };
                let bounds = compiled.iter().map(|r| Bounds::of(&r.cube)).collect();
                (compiled, bounds)
            })
            .unzip();
        Model {
            graph,
            ifaces,
            passive,
            rules,
            bounds,
            steps_left: AtomicUsize::new(STEP_BUDGET),
            prewalks: RwLock::new(Vec::new()),
            rewrites: OnceLock::new(),
            record: None,
            reuse: None,
            prewalked_afresh: AtomicBool::new(false),
            taken_over: AtomicUsize::new(0),
        }
    }

    /// This model, keeping a record of its prewalks and query walks for the re-checks
    /// of edited copies of its file (see [`reuse`]).
    pub fn recording(mut self) -> Model<'g> {
        self.record = Some(Mutex::new(reuse::Recorded::of(&self.ifaces, &self.passive)));
        self
    }

    /// The record kept since [`Model::recording`].
    pub fn take_record(&mut self) -> Option<reuse::Recorded> {
        let record = self.record.take()?;
        Some(record.into_inner().unwrap_or_else(PoisonError::into_inner))
    }

    /// This model, taking over the walks recorded by the lint of `original` that the
    /// differences between the two graphs cannot change (see [`reuse`]).
    pub fn reusing(mut self, original: &RuleGraph, recorded: Arc<reuse::Recorded>) -> Model<'g> {
        self.reuse = reuse::Reuse::plan(&self, original, recorded);
        self
    }

    /// How many prewalks and query walks were taken over from a record.
    pub fn walks_taken_over(&self) -> usize {
        self.taken_over.load(Ordering::Relaxed)
    }

    /// A walk of `query` through `stages` with `share` steps taken over from the
    /// original file's lint, with the steps it took.
    fn reused_walk(
        &self,
        stages: &[usize],
        query: &Cube,
        share: usize,
    ) -> Option<(Vec<Outcome>, usize)> {
        if self.prewalked_afresh.load(Ordering::Relaxed) {
            return None;
        }
        let walk = self.reuse.as_ref()?.walk(self, stages, query, share)?;
        self.taken_over.fetch_add(1, Ordering::Relaxed);
        Some(walk)
    }

    /// Every packet of the graph's address families, in state NEW.
    pub fn new_packets(&self) -> Cube {
        let mut c = Cube::full(self.ifaces.len());
        c.restrict(Field::State, &IntervalSet::single(ct::NEW));
        let space = self.graph.family.space();
        c.restrict(Field::SrcAddr, &space);
        c.restrict(Field::DstAddr, &space);
        c
    }

    /// The interface indices of these names.
    pub fn iface_set(&self, names: &[&str]) -> IntervalSet {
        IntervalSet::from_ranges(
            self.ifaces
                .iter()
                .enumerate()
                .filter(|(_, n)| names.contains(&n.as_str()))
                .map(|(i, _)| (i as u128, i as u128)),
        )
    }

    /// Splits `query` into permitted and denied parts, each with its deciding rule, for
    /// forwarded packets.
    pub fn evaluate(&self, query: &Cube) -> Vec<Outcome> {
        self.evaluate_stages(query, &self.graph.stages)
    }

    /// Like [`Model::evaluate`], through the given stages (the graph's forward path, or
    /// its local input or output path for a host firewall).
    pub fn evaluate_stages(&self, query: &Cube, stages: &[crate::graph::Stage]) -> Vec<Outcome> {
        self.evaluate_within(query, stages, &self.steps_left)
    }

    /// Evaluates several queries side by side, on as many cores as there are, each
    /// through its stages; the results in the order of `queries`.
    ///
    /// Each query walks with an equal share of the steps left, and the model's budget
    /// is charged afterwards with what they took (all of it if one ran out): a shared
    /// budget would be spent in an order that depends on timing, and with it which
    /// pieces end up "may".
    pub fn evaluate_each(&self, queries: &[(&Cube, &[crate::graph::Stage])]) -> Vec<Vec<Outcome>> {
        let before = self.steps_left.load(Ordering::Relaxed);
        let share = before / queries.len().max(1);
        let walked: Vec<(Vec<Outcome>, usize)> = queries
            .par_iter()
            .map(|&(query, stages)| {
                let ids = stage_chains(stages);
                if let Some((outcomes, taken)) = self.reused_walk(&ids, query, share) {
                    return (outcomes, share - taken);
                }
                let left = AtomicUsize::new(share);
                let outcomes = self.evaluate_within(query, stages, &left);
                let left = left.into_inner();
                if let Some(record) = &self.record {
                    let mut record = record.lock().unwrap_or_else(PoisonError::into_inner);
                    record.add_walk(ids, query.clone(), share, outcomes.clone(), share - left);
                }
                (outcomes, left)
            })
            .collect();
        let ran_out = walked.iter().any(|&(_, left)| left == 0);
        let taken: usize = walked.iter().map(|&(_, left)| share - left).sum();
        let after = if ran_out { 0 } else { before - taken };
        self.steps_left.store(after, Ordering::Relaxed);
        walked.into_iter().map(|(outcomes, _)| outcomes).collect()
    }

    /// [`Model::evaluate_stages`], drawing walk steps from `steps_left`.
    fn evaluate_within(
        &self,
        query: &Cube,
        stages: &[crate::graph::Stage],
        steps_left: &AtomicUsize,
    ) -> Vec<Outcome> {
        let mut live = vec![Live::whole(query.clone())];
        let mut done = Vec::new();
        for stage in stages {
            live = match self.passed_by_prewalk(stage.chain.0, &live, &mut done) {
                Some(next) => next,
                None => self.pass_stage(stage.chain.0, live, &mut done, steps_left),
            };
        }
        for piece in live {
            let decided_by = piece.accepted_by.last().copied().unwrap_or(Decider {
                chain: ChainId(0),
                rule: None,
            });
            done.push(outcome(
                piece.cube,
                Verdict::Permit,
                decided_by,
                piece.accepted_by,
                piece.may,
                piece.nat,
            ));
        }
        done
    }

    /// Walks one stage for every piece: returns the pieces it passes on, merged, and adds
    /// the ones it denies to `done`.
    fn pass_stage(
        &self,
        entry: usize,
        live: Vec<Live>,
        done: &mut Vec<Outcome>,
        steps_left: &AtomicUsize,
    ) -> Vec<Live> {
        let mut next = Vec::new();
        if self.charge_ruleless_stage(entry, live.len(), steps_left) {
            let by = Decider {
                chain: ChainId(entry),
                rule: None,
            };
            let accepted = self.default_accepts(entry);
            for piece in live {
                decide_whole(piece, accepted, by, &mut next, done);
            }
        } else {
            for piece in live {
                let results = self.walk_stage(entry, piece.cube.clone(), piece.may, steps_left);
                sort_results(&piece, results.into_iter(), &mut next, done);
            }
        }
        merge_destinations(dedupe(next))
    }

    /// True if stage `entry`'s chain has no rules and its walk of `pieces` pieces can be
    /// skipped, having charged the step each would take: every piece meets the default
    /// alone and whole. An iptables dump's mangle chains are empty, and on a Kubernetes
    /// node tens of thousands of pieces crossed them one walk each (a tenth of the zone
    /// pairs' walks). False where a walk could answer otherwise: a prewalk of the chain
    /// answers without steps, and a budget short of a step per piece makes some "may".
    fn charge_ruleless_stage(&self, entry: usize, pieces: usize, steps_left: &AtomicUsize) -> bool {
        let ruleless = self.rules.get(entry).is_some_and(|rules| rules.is_empty());
        ruleless
            && !self.prewalks().iter().any(|p| p.chain == entry)
            && take_steps(steps_left, pieces)
    }

    /// True if what falls off the end of stage `entry`'s chain is accepted.
    fn default_accepts(&self, entry: usize) -> bool {
        self.graph.chains[entry]
            .default
            .as_ref()
            .is_none_or(|d| matches!(d.action, Action::Accept))
    }

    /// Walks one stage's chain for `cube`, first match, through jumps and gotos, taking
    /// its steps from `steps_left`.
    fn walk_stage(
        &self,
        entry: usize,
        cube: Cube,
        may: Option<Decider>,
        steps_left: &AtomicUsize,
    ) -> Vec<StageResult> {
        if may.is_none()
            && let Some(out) = self.prewalked(entry, &cube)
        {
            return out;
        }
        let mut out = Vec::new();
        let mut work = Work::default();
        work.push(Walker {
            cube,
            chain: entry,
            next: 0,
            stack: None,
            depth: 0,
            may,
        });
        while let Some(w) = work.pending.pop() {
            if work.pending.len() + out.len() > MAX_LIVE_PIECES {
                // Fragmenting without bound: stop exactness here too, not at memory's end.
                steps_left.store(0, Ordering::Relaxed);
            }
            let left = steps_left.load(Ordering::Relaxed);
            if left == 0 {
                // Out of budget: what is left may be permitted; nothing is claimed denied.
                let by = Decider {
                    chain: ChainId(entry),
                    rule: None,
                };
                out.push(StageResult {
                    cube: w.cube,
                    accepted: true,
                    by,
                    may: w.may.or(Some(by)),
                    pre_nat: None,
                });
                continue;
            }
            steps_left.store(left - 1, Ordering::Relaxed);
            self.step(entry, w, &mut work, &mut out);
        }
        out
    }

    /// The destinations a packet may be sent to and still arrive at one of `delivered`:
    /// `delivered` itself, and whatever a destination NAT rule, or a chain of them,
    /// rewrites into it. A query for traffic to `delivered` needs no other destination;
    /// leaving them out spares the walk every piece it would otherwise cut away at the
    /// end (the ACL entries towards other zones split them without end).
    pub fn destinations_reaching(&self, delivered: &IntervalSet) -> IntervalSet {
        // Gathered once, for every zone pair's query: it reads every rule, 4–5 ms on a
        // Kubernetes node's dump of 100,000.
        let rewrites = self.rewrites.get_or_init(|| {
            let rules = self.graph.chains.iter().zip(&self.rules);
            rules
                .flat_map(|(chain, compiled)| chain.rules.iter().zip(compiled))
                .filter_map(|(rule, compiled)| match &rule.action {
                    Action::Dnat(target) => {
                        Some((compiled.cube.destination().clone(), target.addrs.clone()?))
                    }
                    _ => None,
                })
                .collect()
        });
        let mut reach = delivered.clone();
        // Each round adds the rewrites into what the last added; a chain of rewrites is
        // as long as the number of NAT stages. A rewrite added once stays in `reach`, so
        // later rounds look only at the others: on a Kubernetes node the tens of
        // thousands of endpoints are added in one round, and sorted into `reach` once.
        let mut pending: Vec<_> = rewrites.iter().collect();
        loop {
            let (into_reach, rest): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .partition(|(_, to)| to.intersects(&reach));
            if into_reach.is_empty() {
                return reach;
            }
            let added = into_reach.into_iter().map(|(from, _)| from);
            reach = IntervalSet::union_all(added.chain([&reach]));
            pending = rest;
        }
    }

    /// Walks the leading stages that `queries` all meet as one piece, once, for a cube
    /// that holds all their packets, and keeps the results for [`Model::evaluate_stages`].
    ///
    /// The zone pairs' queries differ in interfaces and addresses, but on a Kubernetes
    /// node each of them meets the same nat table of thousands of services first, and
    /// walking it cost as much for every pair as for all of them together. First match
    /// decides each packet on its own, so the results of the whole cube, cut to a query,
    /// are the results of the query: the same packets, verdicts and deciding rules.
    pub fn prewalk(&self, queries: &[&Cube], stages: &[crate::graph::Stage]) {
        let Some((first, rest)) = queries.split_first() else {
            return;
        };
        let mut piece = Live::whole(rest.iter().fold(Cube::clone(first), |acc, q| acc.hull(q)));
        let walked_before = stages.first().is_some_and(|s| {
            self.prewalks().iter().any(|p| {
                p.chain == s.chain.0
                    && p.accepted_before.is_empty()
                    && piece.cube.is_subset(&p.bound)
            })
        });
        if walked_before {
            // Checked twice with one model: the first prewalk serves these queries too.
            return;
        }
        let ids = stage_chains(stages);
        if let Some(r) = &self.reuse {
            match r.prewalk(self, &ids, &piece.cube) {
                Some((kept, steps)) if take_steps(&self.steps_left, steps) => {
                    let mut prewalks = self
                        .prewalks
                        .write()
                        .unwrap_or_else(PoisonError::into_inner);
                    prewalks.extend(kept);
                    self.taken_over.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                _ => self.prewalked_afresh.store(true, Ordering::Relaxed),
            }
        }
        let hull = self.record.as_ref().map(|_| piece.cube.clone());
        let (kept_from, steps_before) = (
            self.prewalks().len(),
            self.steps_left.load(Ordering::Relaxed),
        );
        for stage in stages {
            let results =
                self.walk_stage(stage.chain.0, piece.cube.clone(), None, &self.steps_left);
            let (mut next, mut denied) = (Vec::new(), Vec::new());
            // The prewalk keeps `results`: each is copied once, into its place.
            sort_results(&piece, results.iter().cloned(), &mut next, &mut denied);
            let passed = merge_destinations(dedupe(next));
            let whole = denied.is_empty()
                && matches!(passed.as_slice(), [only] if only.may.is_none() && only.nat.is_none());
            let next_piece = whole.then(|| passed[0].clone());
            self.prewalks
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Prewalk {
                    chain: stage.chain.0,
                    bound: piece.cube,
                    results,
                    accepted_before: piece.accepted_by,
                    passed,
                    denied,
                });
            // Past the first stage that splits the cube, the queries' pieces differ.
            match next_piece {
                Some(p) => piece = p,
                None => break,
            }
        }
        if let (Some(record), Some(hull)) = (&self.record, hull) {
            let kept = self.prewalks()[kept_from..].to_vec();
            let steps = steps_before - self.steps_left.load(Ordering::Relaxed);
            let mut record = record.lock().unwrap_or_else(PoisonError::into_inner);
            record.add_prewalk(ids, hull, kept, steps);
        }
    }

    /// What stage `entry` passes on for `live` — one whole piece with no unmodelled
    /// rule or rewrite behind it, as queries enter — from a prewalk of a piece that held
    /// it and agreed with it on every field a rewrite changes; denials go to `done`.
    fn passed_by_prewalk(
        &self,
        entry: usize,
        live: &[Live],
        done: &mut Vec<Outcome>,
    ) -> Option<Vec<Live>> {
        let [piece] = live else {
            return None;
        };
        if piece.may.is_some() || piece.nat.is_some() {
            return None;
        }
        let prewalks = self.prewalks();
        let walk = prewalks.iter().find(|p| {
            p.chain == entry
                && p.accepted_before == piece.accepted_by
                && piece.cube.is_subset(&p.bound)
                && REWRITTEN
                    .iter()
                    .all(|&f| piece.cube.get(f) == p.bound.get(f))
        })?;
        let q = &piece.cube;
        done.extend(
            walk.denied
                .iter()
                .filter(|d| d.cube.intersects(q))
                .map(|d| Outcome {
                    cube: d.cube.intersect(q),
                    ..d.clone()
                }),
        );
        let next = walk
            .passed
            .iter()
            .filter_map(|l| {
                let cube = restrict_kept(&l.cube, q);
                (!cube.is_empty()).then(|| Live { cube, ..l.clone() })
            })
            .collect();
        Some(merge_destinations(dedupe(next)))
    }

    /// The results of walking `entry` for `cube`, from a walk of a cube that holds it.
    fn prewalked(&self, entry: usize, cube: &Cube) -> Option<Vec<StageResult>> {
        let prewalks = self.prewalks();
        let walk = prewalks
            .iter()
            .find(|p| p.chain == entry && cube.is_subset(&p.bound))?;
        let cut: Option<Vec<Option<StageResult>>> = walk
            .results
            .iter()
            .map(|r| self.restrict_result(r, cube))
            .collect();
        // A rewrite whose rule cannot be found again: walk the stage instead.
        Some(cut?.into_iter().flatten().collect())
    }

    /// One stage result cut to the packets of `cube` (`Some(None)` if it holds none of
    /// them); a rewrite is cut before it rewrites. `None` if its rewrite is not found.
    fn restrict_result(&self, r: &StageResult, cube: &Cube) -> Option<Option<StageResult>> {
        let Some(before) = &r.pre_nat else {
            return Some(r.cube.intersects(cube).then(|| StageResult {
                cube: r.cube.intersect(cube),
                ..r.clone()
            }));
        };
        if !before.intersects(cube) {
            return Some(None);
        }
        let rule = self.graph.chains.get(r.by.chain.0)?.rules.get(r.by.rule?)?;
        let Action::Dnat(target) = &rule.action else {
            return None;
        };
        Some(Some(rewrite(before.intersect(cube), r.may, target, r.by)))
    }

    /// The prewalks so far. A walk that panicked cannot have left a half-made one: a
    /// prewalk is pushed whole.
    fn prewalks(&self) -> RwLockReadGuard<'_, Vec<Prewalk>> {
        self.prewalks.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Walk steps taken so far.
    pub fn steps_taken(&self) -> usize {
        STEP_BUDGET - self.steps_left.load(Ordering::Relaxed)
    }

    /// True once the step budget ran out: some verdicts are then only "may".
    pub fn exhausted(&self) -> bool {
        self.steps_left.load(Ordering::Relaxed) == 0
    }

    /// Advances one walker to its next matching rule and applies that rule.
    fn step(&self, entry: usize, w: Walker, work: &mut Work, out: &mut Vec<StageResult>) {
        let Some((index, rule)) = self.next_hit(w.chain, w.next, &w.cube) else {
            self.fall_through(entry, w, work, out);
            return;
        };
        let decider = Decider {
            chain: ChainId(w.chain),
            rule: Some(index),
        };
        // A piece inside the rule matches it whole: nothing splits off, and the piece
        // goes on as it is instead of as a copy cut to the rule. Most steps through a
        // Kubernetes node's service and endpoint chains are of this kind.
        let matched = if w.cube.is_subset(&rule.cube) {
            None
        } else {
            let (outside, inside) = w.cube.split(&rule.cube);
            for rest in outside {
                work.push(Walker {
                    cube: rest,
                    chain: w.chain,
                    next: index + 1,
                    stack: w.stack.clone(),
                    depth: w.depth,
                    may: w.may,
                });
            }
            Some(inside)
        };
        let mut may = w.may;
        let action = &self.graph.chains[w.chain].rules[index].action;
        // A rule that only logs or marks leads both worlds to the same next rule: no fork.
        let forks = rule.unknown && !matches!(action, Action::Continue(_));
        if forks {
            may = may.or(Some(decider));
            // The world where the unmodelled condition does not match.
            work.resume(Walker {
                cube: matched.as_ref().unwrap_or(&w.cube).clone(),
                chain: w.chain,
                next: index + 1,
                stack: w.stack.clone(),
                depth: w.depth,
                may,
            });
        }
        let here = match matched {
            Some(cube) => Walker { cube, may, ..w },
            None => Walker { may, ..w },
        };
        self.apply(entry, action, decider, here, index, work, out);
    }

    /// The first rule of `chain` from `from` on that meets `cube` and is not passive.
    fn next_hit(&self, chain: usize, from: usize, cube: &Cube) -> Option<(usize, &CompiledRule)> {
        let piece = Bounds::of(cube);
        self.bounds[chain]
            .iter()
            .zip(&self.rules[chain])
            .enumerate()
            .skip(from)
            .find(|(_, (b, r))| b.overlaps(&piece) && !r.passive && r.cube.intersects(cube))
            .map(|(i, (_, r))| (i, r))
    }

    /// Applies a matched rule's action to the matched piece.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        entry: usize,
        action: &Action,
        decider: Decider,
        w: Walker,
        index: usize,
        work: &mut Work,
        out: &mut Vec<StageResult>,
    ) {
        let loops = w.depth >= self.rules.len();
        match action {
            Action::Accept => out.push(StageResult {
                cube: w.cube,
                accepted: true,
                by: decider,
                may: w.may,
                pre_nat: None,
            }),
            Action::Drop | Action::Reject => out.push(StageResult {
                cube: w.cube,
                accepted: false,
                by: decider,
                may: w.may,
                pre_nat: None,
            }),
            Action::Dnat(target) => out.push(rewrite(w.cube, w.may, target, decider)),
            Action::Continue(_) => work.push(Walker {
                next: index + 1,
                ..w
            }),
            Action::Return => self.fall_through(entry, w, work, out),
            Action::Jump(target) if !loops => {
                let frame = Frame {
                    chain: w.chain,
                    next: index + 1,
                    parent: w.stack.clone(),
                };
                work.push(Walker {
                    chain: target.0,
                    next: 0,
                    stack: Some(Rc::new(frame)),
                    depth: w.depth + 1,
                    ..w
                });
            }
            Action::Goto(target) if !loops => work.push(Walker {
                chain: target.0,
                next: 0,
                depth: w.depth + 1,
                ..w
            }),
            // An unknown target, or a jump that would loop (the kernel refuses such a
            // ruleset; the parser reports it): the packet may be accepted, or go on.
            Action::Jump(_) | Action::Goto(_) | Action::Unknown(_) => {
                let may = w.may.or(Some(decider));
                out.push(StageResult {
                    cube: w.cube.clone(),
                    accepted: true,
                    by: decider,
                    may,
                    pre_nat: None,
                });
                work.resume(Walker {
                    next: index + 1,
                    may,
                    ..w
                });
            }
        }
    }

    /// The end of a chain (or a `Return`): back to the caller, or the stage's default.
    fn fall_through(&self, entry: usize, w: Walker, work: &mut Work, out: &mut Vec<StageResult>) {
        if let Some(frame) = w.stack {
            work.resume(Walker {
                cube: w.cube,
                chain: frame.chain,
                next: frame.next,
                stack: frame.parent.clone(),
                depth: w.depth.saturating_sub(1),
                may: w.may,
            });
            return;
        }
        out.push(StageResult {
            cube: w.cube,
            accepted: self.default_accepts(entry),
            by: Decider {
                chain: ChainId(entry),
                rule: None,
            },
            may: w.may,
            pre_nat: None,
        });
    }

    /// The source span of a decider: the rule's line or the default's cause.
    pub fn span_of(&self, d: Decider) -> Span {
        // A graph without stages forwards everything unfiltered; its "decider" is no
        // chain at all, and the file's start stands for it.
        let Some(chain) = self.graph.chains.get(d.chain.0) else {
            return Span::new(self.graph.file, 0, 0);
        };
        match d.rule {
            Some(i) => chain.rules.get(i).map_or(chain.span, |r| r.span),
            None => chain.default.as_ref().map_or(chain.span, |x| x.span),
        }
    }

    /// How to name a decider in a message.
    pub fn describe(&self, d: Decider) -> String {
        let Some(chain) = self.graph.chains.get(d.chain.0) else {
            return "no filter stage in this config".to_string();
        };
        match d.rule {
            Some(i) => match chain.rules.get(i).and_then(|r| r.comment.as_deref()) {
                Some(c) if c.starts_with("implicit") || c.starts_with("security level") => {
                    c.to_string()
                }
                _ => format!("this rule of `{}`", chain.name),
            },
            None => chain
                .default
                .as_ref()
                .map_or_else(|| format!("end of `{}`", chain.name), |x| x.reason.clone()),
        }
    }

    /// A concrete packet of `cube`, preferring ordinary values (a host address rather
    /// than a network address, an ephemeral source port).
    pub fn witness(&self, cube: &Cube) -> crate::report::finding::Witness {
        let protocol = pick(&cube.get(Field::Proto), &[u128::from(proto::TCP)]) as u8;
        let ports = proto::has_ports(protocol);
        let iface = |f: Field| {
            let i = pick(&cube.get(f), &[]) as usize;
            self.ifaces
                .get(i)
                .filter(|n| n.as_str() != OTHER_IFACE)
                .cloned()
        };
        crate::report::finding::Witness {
            protocol,
            src: pick_addr(&cube.get(Field::SrcAddr)),
            dst: pick_addr(&cube.get(Field::DstAddr)),
            src_port: ports.then(|| pick(&cube.get(Field::SrcPort), &[49152]) as u16),
            dst_port: ports.then(|| pick(&cube.get(Field::DstPort), &[]) as u16),
            in_interface: iface(Field::InIface),
            out_interface: iface(Field::OutIface),
        }
    }
}

impl Model<'_> {
    /// The one-packet cube of a witness (state NEW).
    pub fn witness_cube(&self, w: &crate::report::finding::Witness) -> Cube {
        let mut c = Cube::full(self.ifaces.len());
        c.restrict(Field::Proto, &IntervalSet::single(u128::from(w.protocol)));
        c.restrict(Field::State, &IntervalSet::single(ct::NEW));
        c.restrict(Field::SrcAddr, &IntervalSet::single(addr::ip(w.src)));
        c.restrict(Field::DstAddr, &IntervalSet::single(addr::ip(w.dst)));
        if let Some(p) = w.src_port {
            c.restrict(Field::SrcPort, &IntervalSet::single(u128::from(p)));
        }
        if let Some(p) = w.dst_port {
            c.restrict(Field::DstPort, &IntervalSet::single(u128::from(p)));
        }
        for (field, name) in [
            (Field::InIface, &w.in_interface),
            (Field::OutIface, &w.out_interface),
        ] {
            if let Some(n) = name {
                c.restrict(field, &self.iface_set(&[n.as_str()]));
            }
        }
        c
    }

    /// A concrete reply packet of `cube`: like [`Model::witness`], but the ephemeral port
    /// is the destination.
    pub fn witness_reply(&self, cube: &Cube) -> crate::report::finding::Witness {
        let mut w = self.witness(cube);
        if w.dst_port.is_some() {
            w.dst_port = Some(pick(&cube.get(Field::DstPort), &[49152]) as u16);
        }
        w
    }

    /// The cube a rule compiles to and whether it has a condition mislint does not model
    /// (the cube then holds only what its modelled conditions match).
    pub fn rule_cube(&self, chain: ChainId, index: usize) -> Option<(&Cube, bool)> {
        let r = self.rules.get(chain.0)?.get(index)?;
        Some((&r.cube, r.unknown))
    }

    /// The first rule after `index` in `chain` that accepts some packet of `cube`.
    pub fn accepting_rules_after(
        &self,
        chain: ChainId,
        index: usize,
        cube: &Cube,
    ) -> Option<Decider> {
        let rules = self.rules.get(chain.0)?;
        let source = &self.graph.chain(chain).rules;
        (index + 1..rules.len())
            .find(|&i| {
                matches!(source.get(i).map(|r| &r.action), Some(Action::Accept))
                    && rules[i].cube.intersects(cube)
            })
            .map(|i| Decider {
                chain,
                rule: Some(i),
            })
    }
}

/// The results of walking `piece` through a stage: rewrites and accepts go on in `next`,
/// denials end in `done`.
fn sort_results(
    piece: &Live,
    results: impl ExactSizeIterator<Item = StageResult>,
    next: &mut Vec<Live>,
    done: &mut Vec<Outcome>,
) {
    // Room for every result to go on, as all do through a nat stage: grown push by push,
    // the tens of thousands of pieces a Kubernetes node's nat table passes on were
    // copied at each doubling.
    next.reserve(results.len());
    for mut r in results {
        let mut accepted_by = piece.accepted_by.clone();
        let mut nat = piece.nat.clone();
        if let Some(before) = r.pre_nat.take() {
            // A rewrite is not a permit: keep it apart from the accepts.
            nat = Some(rewritten(nat, before, &r));
        } else if r.accepted {
            accepted_by.push(r.by);
        } else {
            done.push(outcome(
                r.cube,
                Verdict::Deny,
                r.by,
                accepted_by,
                r.may,
                nat,
            ));
            continue;
        }
        next.push(Live {
            cube: r.cube,
            accepted_by,
            may: r.may,
            nat,
        });
    }
}

/// A piece decided whole by a stage's default `by`, as [`sort_results`] sorts the one
/// result of its walk: passed on in `next` with the accept added, or denied into `done`.
fn decide_whole(
    mut piece: Live,
    accepted: bool,
    by: Decider,
    next: &mut Vec<Live>,
    done: &mut Vec<Outcome>,
) {
    if accepted {
        piece.accepted_by.push(by);
        next.push(piece);
    } else {
        let Live {
            cube,
            accepted_by,
            may,
            nat,
        } = piece;
        done.push(outcome(cube, Verdict::Deny, by, accepted_by, may, nat));
    }
}

/// Drops pieces that repeat an earlier one's packets, certainty and NAT rewrite. An
/// unknown target hands the same piece to the next stage twice (accepted, and passed on
/// after the rule): without this, stages of such rules multiply the pieces.
fn dedupe(live: Vec<Live>) -> Vec<Live> {
    // Sized up front: growing re-hashes every cube seen so far, 3 % of a Kubernetes
    // node's run.
    let mut seen = HashSet::with_capacity(live.len());
    let keep: Vec<bool> = live
        .iter()
        .map(|l| {
            let nat = l.nat.as_ref().and_then(|n| n.first()).map(|o| o.by);
            seen.insert((&l.cube, l.may.is_some(), nat))
        })
        .collect();
    live.into_iter()
        .zip(keep)
        .filter_map(|(l, k)| k.then_some(l))
        .collect()
}

/// Merges pieces that differ only in their destination addresses into one piece per
/// rest of the packet, accepts, certainty and NAT-ness. kube-proxy's nat table rewrites
/// each service to each of its endpoints: thousands of pieces that differ only in the
/// endpoint address, which the next stage would otherwise walk one by one. The union is
/// exact (the other fields are equal, so the product is the union of the pieces); what
/// a merge blurs, which rewrite and which unmodelled rule explain a packet, each piece's
/// [`NatOrigin`]s keep, and [`outcome`] picks the one that matches.
fn merge_destinations(live: Vec<Live>) -> Vec<Live> {
    let groups = {
        let mut slot_of: HashMap<MergeKey, usize> = HashMap::default();
        slot_of.reserve(live.len());
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, piece) in live.iter().enumerate() {
            let next = groups.len();
            let slot = *slot_of.entry(MergeKey::of(piece)).or_insert(next);
            if slot == next {
                groups.push(vec![i]);
            } else {
                groups[slot].push(i);
            }
        }
        groups
    };
    if groups.len() == live.len() {
        // Nothing merges (the common case after a filter stage): keep the pieces as they are.
        return live;
    }
    let mut pieces: Vec<Option<Live>> = live.into_iter().map(Some).collect();
    groups
        .into_iter()
        .filter_map(|group| {
            let first = pieces[group[0]].take()?;
            let rest: Vec<Live> = group[1..]
                .iter()
                .filter_map(|&i| pieces[i].take())
                .collect();
            Some(if rest.is_empty() {
                first
            } else {
                union_of(first, rest)
            })
        })
        .collect()
}

/// What pieces must share to merge: every field but the destination address, the
/// accepts, and the certainty (the unmodelled rule itself when there is no NAT origin
/// to carry it). It borrows from the piece: keys are built for every piece at every
/// stage boundary, and copying seven sets and the accepts for each was most of a merge.
#[derive(PartialEq, Eq, Hash)]
struct MergeKey<'a> {
    fields: (&'a [NarrowSet], &'a IntervalSet),
    accepted_by: &'a [Decider],
    may: Option<Decider>,
    may_at_all: bool,
    nat: bool,
}

impl<'a> MergeKey<'a> {
    fn of(l: &'a Live) -> MergeKey<'a> {
        MergeKey {
            fields: l.cube.all_but_destination(),
            accepted_by: &l.accepted_by,
            may: if l.nat.is_some() { None } else { l.may },
            may_at_all: l.may.is_some(),
            nat: l.nat.is_some(),
        }
    }
}

/// One piece holding the destinations of all `rest` and `first`, and all their origins.
fn union_of(mut first: Live, rest: Vec<Live>) -> Live {
    let mut ranges: Vec<(u128, u128)> = first.cube.destination().ranges().to_vec();
    let mut origins: Vec<NatOrigin> = first.nat.iter().flat_map(|n| n.to_vec()).collect();
    for piece in &rest {
        ranges.extend_from_slice(piece.cube.destination().ranges());
        origins.extend(piece.nat.iter().flat_map(|n| n.iter().cloned()));
    }
    first
        .cube
        .set(Field::DstAddr, IntervalSet::from_ranges(ranges));
    if first.nat.is_some() {
        first.nat = Some(origins.into());
    }
    first
}

/// The NAT origins of a piece that `r` rewrote: a first rewrite starts them, a later one
/// keeps the packets as first sent and names the latest rule.
fn rewritten(
    nat: Option<Arc<[NatOrigin]>>,
    before: Arc<Cube>,
    r: &StageResult,
) -> Arc<[NatOrigin]> {
    let dst = r.cube.destination().clone();
    let earlier: Vec<NatOrigin> = nat
        .iter()
        .flat_map(|origins| origins.iter())
        .filter(|o| o.dst.intersects(before.destination()))
        .map(|o| NatOrigin {
            by: r.by,
            before: o.before.clone(),
            dst: dst.clone(),
            may: o.may,
        })
        .collect();
    if earlier.is_empty() {
        return Arc::new([NatOrigin {
            by: r.by,
            before,
            dst,
            may: r.may,
        }]);
    }
    earlier.into()
}

/// An outcome, with the NAT origin that explains its packets: the first whose rewritten
/// destinations it holds and whose sent packets it holds in the fields no rewrite changes
/// (its certainty with it, see [`merge_destinations`]). The packets as sent are narrowed
/// to those fields of the outcome: later stages, and a prewalked stage's cut (see
/// [`Model::prewalk`]), narrow a piece without narrowing its origins.
fn outcome(
    cube: Cube,
    verdict: Verdict,
    decided_by: Decider,
    accepted_by: Vec<Decider>,
    mut may: Option<Decider>,
    nat: Option<Arc<[NatOrigin]>>,
) -> Outcome {
    let origin = nat.as_ref().and_then(|origins| {
        origins
            .iter()
            .filter(|o| o.dst.intersects(cube.destination()))
            .map(|o| (o, restrict_kept(&o.before, &cube)))
            .find(|(_, sent)| !sent.is_empty())
            .or_else(|| origins.first().map(|o| (o, Cube::clone(&o.before))))
    });
    if let Some(m) = origin.as_ref().and_then(|(o, _)| o.may) {
        may = Some(m);
    }
    Outcome {
        nat: origin.map(|(o, sent)| Box::new((o.by, sent))),
        cube,
        verdict,
        decided_by,
        accepted_by,
        may,
    }
}

/// Takes `steps` from `steps_left` if it holds them all.
fn take_steps(steps_left: &AtomicUsize, steps: usize) -> bool {
    let left = steps_left.load(Ordering::Relaxed);
    if left < steps {
        return false;
    }
    steps_left.store(left - steps, Ordering::Relaxed);
    true
}

/// The chains `stages` enter, in order: how recorded walks are matched to new ones.
fn stage_chains(stages: &[crate::graph::Stage]) -> Vec<usize> {
    stages.iter().map(|s| s.chain.0).collect()
}

/// The fields a destination NAT rewrite changes; it leaves every other one as it was.
const REWRITTEN: [Field; 3] = [Field::DstAddr, Field::DstPort, Field::State];

/// `cube` narrowed to `to` in the fields no rewrite changes: exact for a piece whether or
/// not it was rewritten, when `to` holds all of it in the rewritten fields before any
/// rewrite.
fn restrict_kept(cube: &Cube, to: &Cube) -> Cube {
    cube.intersect_except(to, &REWRITTEN)
}

/// Applies destination NAT to a matched piece. A rewrite to the firewall itself
/// (REDIRECT) delivers the packets locally: for forwarding that ends their walk, and
/// the NAT rule is what decided it.
fn rewrite(cube: Cube, may: Option<Decider>, target: &NatTarget, decider: Decider) -> StageResult {
    let Some(addrs) = &target.addrs else {
        return StageResult {
            cube,
            accepted: false,
            by: decider,
            may,
            pre_nat: None,
        };
    };
    let before = cube.clone();
    let mut after = cube;
    after.set(Field::DstAddr, addrs.clone());
    // From here on conntrack knows the connection as destination-NATed.
    after.set(Field::State, ct::mark_dnat(&after.get(Field::State)));
    if let Some(ports) = &target.ports {
        after.set(Field::DstPort, ports.clone());
    }
    StageResult {
        cube: after,
        accepted: true,
        by: decider,
        may,
        pre_nat: Some(Arc::new(before)),
    }
}

/// A preferred value if the set holds it, else the smallest.
fn pick(set: &IntervalSet, preferred: &[u128]) -> u128 {
    preferred
        .iter()
        .copied()
        .find(|v| set.contains(*v))
        .or(set.first())
        .unwrap_or(0)
}

/// An address of the set that looks like a host: the second value of the first range
/// wide enough to have one (a range's first value is often a network address). A range
/// that starts at the bottom of the address space stands for "any address": there a
/// documentation address (192.0.2.10, 2001:db8::10) reads better than 0.0.0.1.
fn pick_addr(set: &IntervalSet) -> IpAddr {
    let any_v4 = addr::v4(std::net::Ipv4Addr::new(192, 0, 2, 10));
    let any_v6 = u128::from(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10));
    let v = set
        .ranges()
        .iter()
        .find(|(lo, hi)| hi - lo >= 2)
        .map(|&(lo, _)| match lo {
            addr::V4_BASE if set.contains(any_v4) => any_v4,
            0 if set.contains(any_v6) => any_v6,
            _ => lo + 1,
        })
        .or(set.first())
        .unwrap_or(0);
    addr::to_ip(v)
}

/// True for an action after which the packet always goes on to the next rule unchanged:
/// a log or mark, or a jump to a chain that only does such things.
fn is_passive(action: &Action, passive_chains: &[bool]) -> bool {
    match action {
        Action::Continue(_) => true,
        Action::Jump(target) => passive_chains[target.0],
        _ => false,
    }
}

/// Chains whose every rule is passive or a `RETURN`: a jump into one comes back with the
/// packet as it was (kube-proxy's `KUBE-MARK-MASQ`, logging chains). Found as a least
/// fixpoint, so chains in a jump loop are never passive.
fn passive_chains(graph: &RuleGraph) -> Vec<bool> {
    let mut passive = vec![false; graph.chains.len()];
    loop {
        let mut changed = false;
        for (i, chain) in graph.chains.iter().enumerate() {
            let all = chain
                .rules
                .iter()
                .all(|r| matches!(r.action, Action::Return) || is_passive(&r.action, &passive));
            if all && !passive[i] {
                passive[i] = true;
                changed = true;
            }
        }
        if !changed {
            return passive;
        }
    }
}

/// What compiling a rule needs besides the rule, the same for every rule of a graph.
struct CompileCx<'m> {
    passive_chains: &'m [bool],
    ifaces: &'m [String],
    /// The protocols that carry ports, built once, not for each rule with a port.
    port_protocols: IntervalSet,
}

/// Interface conditions already turned into index sets. A big config repeats a few
/// hundred of them over 100,000 rules, and each costs a match against every interface
/// name: 86 of them in a generated pfSense file.
type IfaceSets<'g> = HashMap<&'g IfaceMatch, IntervalSet>;

/// Builds a rule's cube from its conditions.
fn compile_rule<'g>(
    rule: &'g crate::graph::Rule,
    cx: &CompileCx,
    sets: &mut IfaceSets<'g>,
) -> CompiledRule {
    let ifaces = cx.ifaces;
    let mut iface_set = |m: &'g IfaceMatch| -> IntervalSet {
        sets.entry(m)
            .or_insert_with(|| iface_indices(m, ifaces))
            .clone()
    };
    let mut cube = Cube::full(ifaces.len());
    let mut unknown = false;
    let mut has_ports = false;
    for cond in &rule.conds {
        match &cond.kind {
            CondKind::Protocol(s) => cube.restrict(Field::Proto, s),
            CondKind::SrcAddr(s) => cube.restrict(Field::SrcAddr, s),
            CondKind::DstAddr(s) => cube.restrict(Field::DstAddr, s),
            CondKind::SrcPort(s) => {
                has_ports = true;
                cube.restrict(Field::SrcPort, s)
            }
            CondKind::DstPort(s) => {
                has_ports = true;
                cube.restrict(Field::DstPort, s)
            }
            CondKind::InIface(m) => cube.restrict(Field::InIface, &iface_set(m)),
            CondKind::OutIface(m) => cube.restrict(Field::OutIface, &iface_set(m)),
            CondKind::State(s) => cube.restrict(Field::State, s),
            CondKind::Unknown(_) => unknown = true,
        }
    }
    if has_ports {
        // A port condition only means something for protocols that carry ports; iptables,
        // ASA and pfSense all demand such a protocol before they accept one.
        cube.restrict(Field::Proto, &cx.port_protocols);
    }
    CompiledRule {
        cube,
        unknown,
        passive: is_passive(&rule.action, cx.passive_chains),
    }
}

/// The protocols whose packets carry ports.
pub fn port_protocols() -> IntervalSet {
    IntervalSet::from_ranges(
        (0u8..=255)
            .filter(|p| proto::has_ports(*p))
            .map(|p| (u128::from(p), u128::from(p))),
    )
}

/// The interface indices an interface condition matches. The catch-all [`OTHER_IFACE`]
/// matches only negated conditions and the lone `+` wildcard: an unnamed interface is
/// none of the names a rule lists.
fn iface_indices(m: &IfaceMatch, ifaces: &[String]) -> IntervalSet {
    IntervalSet::from_ranges(ifaces.iter().enumerate().filter_map(|(i, name)| {
        let hit = if name == OTHER_IFACE {
            m.patterns.iter().any(|p| p.prefix && p.name.is_empty()) != m.negated
        } else {
            m.matches(name)
        };
        hit.then_some((i as u128, i as u128))
    }))
}

#[cfg(test)]
mod tests;
