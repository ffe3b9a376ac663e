//! Re-checking an edited copy of a file without walking again what the edit cannot
//! change.
//!
//! A fix is verified by checking the whole file again with the fix applied (see
//! `fix`). The edit touches one rule, and most zone pairs' walks never meet it: a
//! permit inserted for perimeter → internal traffic on `-i eth2 -o eth1` cannot match a
//! packet of the public → perimeter query. A lint that will verify fixes records its
//! prewalks and zone-pair walks ([`Recorded`]); a re-check takes over each one whose
//! query and stages are the same and that no changed rule can meet, with the rule
//! numbers past the edit moved, and charges the steps it took then, so the budgets and
//! costs come out as a fresh walk's would.
//!
//! An edit may also name an interface earlier in the file than the original did, and
//! the interfaces are numbered in the order the file first names them: the recorded
//! packets are then renumbered to the edited model's interfaces. The walk does the same
//! with either numbering (it only ever asks sets of them whether they meet), so this
//! gives the packets a fresh walk would.
//!
//! "Cannot meet" rests on one property of the walk: every piece of a query's walk lies
//! inside the query on every field no destination NAT rewrites (protocol, interfaces,
//! source address and port). A changed rule that misses the query on one of those
//! fields, or sits in a chain the query's walk cannot enter, matches none of its
//! pieces, before or after the edit.

use super::cube::Field;
use super::{Action, Arc, CompileCx, Cube, Decider, IfaceSets, Model, Outcome, Prewalk, REWRITTEN};
use super::{Live, NatOrigin, StageResult, compile_rule, port_protocols};
use crate::graph::{ChainId, IntervalSet, RuleGraph};

/// The fields a destination NAT leaves as they were.
const KEPT: [Field; 5] = [
    Field::Proto,
    Field::InIface,
    Field::OutIface,
    Field::SrcPort,
    Field::SrcAddr,
];

// Every field is either rewritten or kept.
const _: () = assert!(KEPT.len() + REWRITTEN.len() == super::cube::FIELDS);

/// What a lint's analysis walked, for the re-checks of edited copies of its file.
#[derive(Default)]
pub struct Recorded {
    ifaces: Vec<String>,
    passive: Vec<bool>,
    prewalks: Vec<RecordedPrewalk>,
    walks: Vec<RecordedWalk>,
}

/// One [`Model::prewalk`]: what it kept, and the steps it took.
struct RecordedPrewalk {
    stages: Vec<usize>,
    hull: Cube,
    kept: Vec<Prewalk>,
    steps: usize,
}

/// One query's walk in [`Model::evaluate_each`], with its share of the steps and what
/// it took of them.
struct RecordedWalk {
    stages: Vec<usize>,
    query: Cube,
    share: usize,
    outcomes: Vec<Outcome>,
    taken: usize,
}

impl Recorded {
    /// Starts a record of a model over `ifaces`, whose graph's chains that only mark
    /// are `passive`.
    pub(super) fn of(ifaces: &[String], passive: &[bool]) -> Recorded {
        Recorded {
            ifaces: ifaces.to_vec(),
            passive: passive.to_vec(),
            ..Recorded::default()
        }
    }

    /// Adds a prewalk of `stages` for `hull` that kept `kept` in `steps` steps.
    pub(super) fn add_prewalk(
        &mut self,
        stages: Vec<usize>,
        hull: Cube,
        kept: Vec<Prewalk>,
        steps: usize,
    ) {
        self.prewalks.push(RecordedPrewalk {
            stages,
            hull,
            kept,
            steps,
        });
    }

    /// Adds a query's walk through `stages` with `share` steps, of which it took `taken`.
    pub(super) fn add_walk(
        &mut self,
        stages: Vec<usize>,
        query: Cube,
        share: usize,
        outcomes: Vec<Outcome>,
        taken: usize,
    ) {
        self.walks.push(RecordedWalk {
            stages,
            query,
            share,
            outcomes,
            taken,
        });
    }
}

/// Where a chain's rules changed: the original's `start..start + old` became the
/// edited graph's `start..start + new`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    start: usize,
    old: usize,
    new: usize,
}

/// A changed rule, original or edited: where it is and what it matches.
struct Changed {
    chain: usize,
    cube: Cube,
}

/// A recorded analysis of the original file, and how the edited graph differs from it.
pub struct Reuse {
    recorded: Arc<Recorded>,
    /// Each recorded interface number's in the edited model.
    ifaces: Renumber,
    regions: Vec<Option<Region>>,
    changed: Vec<Changed>,
}

impl Reuse {
    /// How `model`'s graph differs from `original`, whose lint recorded `recorded`; `None`
    /// where the two differ in more than rules (chains, stages, interfaces, or which
    /// chains only mark), and nothing recorded can be taken over.
    pub(super) fn plan(
        model: &Model,
        original: &RuleGraph,
        recorded: Arc<Recorded>,
    ) -> Option<Reuse> {
        let edited = model.graph;
        let ifaces = Renumber::between(&recorded.ifaces, &model.ifaces)?;
        let same_shape = original.chains.len() == edited.chains.len()
            && original.stages == edited.stages
            && original.local_in == edited.local_in
            && original.local_out == edited.local_out
            && recorded.passive == model.passive;
        if !same_shape {
            return None;
        }
        let mut regions = Vec::with_capacity(edited.chains.len());
        for (old, new) in original.chains.iter().zip(&edited.chains) {
            if old.name != new.name || old.default != new.default {
                return None;
            }
            regions.push(changed_region(&old.rules, &new.rules));
        }
        let cx = CompileCx {
            passive_chains: &recorded.passive,
            ifaces: &model.ifaces,
            port_protocols: port_protocols(),
        };
        let mut sets = IfaceSets::default();
        let mut changed = Vec::new();
        for (chain, region) in regions.iter().enumerate() {
            let Some(r) = region else { continue };
            let old = &original.chains[chain].rules[r.start..r.start + r.old];
            for rule in old {
                changed.push(Changed {
                    chain,
                    cube: compile_rule(rule, &cx, &mut sets).cube,
                });
            }
            let new = r.start..r.start + r.new;
            for compiled in &model.rules[chain][new] {
                changed.push(Changed {
                    chain,
                    cube: compiled.cube.clone(),
                });
            }
        }
        Some(Reuse {
            recorded,
            ifaces,
            regions,
            changed,
        })
    }

    /// The recorded prewalk of `stages` for `hull`, in the edited model's numbering,
    /// and its steps; `None` if its walk may enter a changed chain.
    pub(super) fn prewalk(
        &self,
        model: &Model,
        stages: &[usize],
        hull: &Cube,
    ) -> Option<(Vec<Prewalk>, usize)> {
        let p = self
            .recorded
            .prewalks
            .iter()
            .find(|p| p.stages == stages && self.ifaces.cube(&p.hull) == *hull)?;
        // The prewalk's results name rules by number: unlike a query's outcomes, they
        // are not renumbered, so its walk must not enter a changed chain at all. It
        // walked the stages it kept, up to the first that split its piece.
        let walked: Vec<usize> = p.kept.iter().map(|k| k.chain).collect();
        let entered = self.entered(model, &walked, hull);
        let touched = self
            .regions
            .iter()
            .zip(&entered)
            .any(|(r, &e)| r.is_some() && e);
        if touched {
            return None;
        }
        let kept = p.kept.iter().map(|k| self.ifaces.prewalk(k)).collect();
        Some((kept, p.steps))
    }

    /// The recorded outcomes of `query`'s walk through `stages` with `share` steps,
    /// renumbered to the edited model, and the steps it took; `None` if a changed rule
    /// can meet one of its pieces.
    pub(super) fn walk(
        &self,
        model: &Model,
        stages: &[usize],
        query: &Cube,
        share: usize,
    ) -> Option<(Vec<Outcome>, usize)> {
        let w = self.recorded.walks.iter().find(|w| {
            w.stages == stages && w.share == share && self.ifaces.cube(&w.query) == *query
        })?;
        // A walk that ran out of steps ended in "may" where the budget fell.
        if w.taken >= share {
            return None;
        }
        let entered = self.entered(model, stages, query);
        let meets = self
            .changed
            .iter()
            .any(|c| entered[c.chain] && c.cube.intersects_except(query, &REWRITTEN));
        if meets {
            return None;
        }
        let outcomes = w.outcomes.iter().map(|o| self.renumbered(o)).collect();
        Some((outcomes, w.taken))
    }

    /// The chains a walk of `query` through `stages` may enter: followed through every
    /// jump or goto whose rule can match a piece. The edited graph's rules say it for
    /// the original too: where they differ, a changed jump that can match a piece in a
    /// chain the walk enters is a changed rule that meets the walk, and the walk is not
    /// taken over whatever it enters.
    fn entered(&self, model: &Model, stages: &[usize], query: &Cube) -> Vec<bool> {
        let chains = model.graph.chains.len();
        let mut entered = vec![false; chains];
        let mut todo: Vec<usize> = stages.to_vec();
        while let Some(c) = todo.pop() {
            if std::mem::replace(&mut entered[c], true) {
                continue;
            }
            let rules = model.graph.chains[c].rules.iter().zip(&model.rules[c]);
            for (rule, compiled) in rules {
                if let Some(t) = entered_chain(&rule.action)
                    && !entered[t]
                    && compiled.cube.intersects_except(query, &REWRITTEN)
                {
                    todo.push(t);
                }
            }
        }
        entered
    }

    /// `o` with its rule numbers moved past the changed regions and its interfaces
    /// renumbered.
    fn renumbered(&self, o: &Outcome) -> Outcome {
        let mut o = self.ifaces.outcome(o);
        o.decided_by = self.moved(o.decided_by);
        for d in &mut o.accepted_by {
            *d = self.moved(*d);
        }
        o.may = o.may.map(|d| self.moved(d));
        if let Some(nat) = o.nat.as_mut() {
            nat.0 = self.moved(nat.0);
        }
        o
    }

    /// Where rule `d` of the original is in the edited graph. A walk that no changed
    /// rule can meet names none of them.
    fn moved(&self, d: Decider) -> Decider {
        let (Some(i), Some(Some(r))) = (d.rule, self.regions.get(d.chain.0)) else {
            return d;
        };
        if i < r.start + r.old {
            return d;
        }
        Decider {
            chain: ChainId(d.chain.0),
            rule: Some(i + r.new - r.old),
        }
    }
}

/// The chain a rule's action enters, if any.
fn entered_chain(action: &Action) -> Option<usize> {
    match action {
        Action::Jump(t) | Action::Goto(t) => Some(t.0),
        _ => None,
    }
}

/// The rules that differ between two versions of a chain, as one region between their
/// common first and last rules; `None` if they are the same.
fn changed_region(old: &[crate::graph::Rule], new: &[crate::graph::Rule]) -> Option<Region> {
    let head = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    if head == old.len() && head == new.len() {
        return None;
    }
    let tail = old[head..]
        .iter()
        .rev()
        .zip(new[head..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    Some(Region {
        start: head,
        old: old.len() - head - tail,
        new: new.len() - head - tail,
    })
}

/// Interface numbers from a recorded model to an edited one that names the same
/// interfaces, perhaps in another order.
struct Renumber {
    /// The edited model's number of each recorded one; `None` if they are the same.
    to: Option<Vec<u128>>,
}

impl Renumber {
    /// From the interfaces `old` to `new`; `None` unless they name the same ones.
    fn between(old: &[String], new: &[String]) -> Option<Renumber> {
        if old == new {
            return Some(Renumber { to: None });
        }
        if old.len() != new.len() {
            return None;
        }
        let to: Option<Vec<u128>> = old
            .iter()
            .map(|name| new.iter().position(|n| n == name).map(|i| i as u128))
            .collect();
        to.map(|to| Renumber { to: Some(to) })
    }

    /// A set of interface numbers with each one moved by `to`.
    fn set(to: &[u128], set: &IntervalSet) -> IntervalSet {
        let each = set.ranges().iter().flat_map(|&(lo, hi)| lo..=hi);
        IntervalSet::from_ranges(each.map(|i| {
            let n = to.get(i as usize).copied().unwrap_or(i);
            (n, n)
        }))
    }

    /// The packets of `cube`, numbered as the edited model numbers interfaces.
    fn cube(&self, cube: &Cube) -> Cube {
        let mut c = cube.clone();
        if let Some(to) = &self.to {
            for f in [Field::InIface, Field::OutIface] {
                let set = Renumber::set(to, &cube.get(f));
                c.set(f, set);
            }
        }
        c
    }

    /// [`Renumber::cube`] for an outcome's packets, as seen and as sent.
    fn outcome(&self, o: &Outcome) -> Outcome {
        let mut o = o.clone();
        if self.to.is_some() {
            o.cube = self.cube(&o.cube);
            if let Some(nat) = o.nat.as_mut() {
                nat.1 = self.cube(&nat.1);
            }
        }
        o
    }

    /// [`Renumber::cube`] for every piece a prewalk kept.
    fn prewalk(&self, p: &Prewalk) -> Prewalk {
        if self.to.is_none() {
            return p.clone();
        }
        let result = |r: &StageResult| StageResult {
            cube: self.cube(&r.cube),
            pre_nat: r.pre_nat.as_ref().map(|c| Arc::new(self.cube(c))),
            ..r.clone()
        };
        let origin = |o: &NatOrigin| NatOrigin {
            before: Arc::new(self.cube(&o.before)),
            ..o.clone()
        };
        let live = |l: &Live| Live {
            cube: self.cube(&l.cube),
            nat: l.nat.as_ref().map(|n| n.iter().map(origin).collect()),
            ..l.clone()
        };
        Prewalk {
            chain: p.chain,
            bound: self.cube(&p.bound),
            results: p.results.iter().map(result).collect(),
            accepted_before: p.accepted_before.clone(),
            passed: p.passed.iter().map(live).collect(),
            denied: p.denied.iter().map(|o| self.outcome(o)).collect(),
        }
    }
}
