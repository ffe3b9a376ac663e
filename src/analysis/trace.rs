//! The path of one concrete packet through the rule graph, rule by rule.
//!
//! [`Model::evaluate`](super::Model::evaluate) answers for sets of packets and names the
//! deciding rule; a person asking "why?" also wants the way there: which stage the packet
//! entered, which rules matched and what each did (jumped, logged and went on, rewrote the
//! destination, returned), and which default caught it. [`walk`] replays the same
//! first-match semantics for a single packet (a witness of a query part) and records
//! every rule that matched, every chain entered or left, and every default taken. Rules
//! that do not match leave no step: the trace reads like the path, not like the ruleset.
//!
//! A rule with an unmodelled condition, or a target whose effect is unknown, splits the
//! walk into worlds, as in the set analysis. [`walk`] enumerates the worlds of one packet
//! (rarely more than two) so that a "may" answer can show both the path on which the
//! packet gets through and the one on which it is stopped.

use super::cube::{Cube, FIELDS, Field};
use super::{Decider, Model, OTHER_IFACE, Verdict};
use crate::graph::sets::{addr, proto};
use crate::graph::{Action, ChainId, IntervalSet, NatTarget};
use crate::report::finding::Witness;

/// The most worlds [`walk`] explores for one packet; beyond it the rest are not shown.
pub const MAX_WORLDS: usize = 16;

/// The most rule visits in one stage: a bound that no real path reaches, so a pathological
/// graph cannot make the walk run away (jump loops are cut by depth already).
const MAX_VISITS: usize = 100_000;

/// One packet: a value for every field of a [`Cube`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// One value per [`Field`], indexed by `Field as usize`.
    pub values: [u128; FIELDS],
}

impl Packet {
    /// An ordinary packet of `cube` (the same one [`Model::witness`] names), or `None`
    /// for an empty cube.
    pub fn of_cube(model: &Model, cube: &Cube) -> Option<Packet> {
        if cube.is_empty() {
            return None;
        }
        let w = model.witness(cube);
        let first = |f: Field| cube.get(f).first().unwrap_or(0);
        let port = |f: Field, chosen: Option<u16>| {
            chosen
                .map(u128::from)
                .filter(|p| cube.get(f).contains(*p))
                .unwrap_or_else(|| first(f))
        };
        let iface = |f: Field, name: &Option<String>| {
            name.as_ref()
                .and_then(|n| model.ifaces.iter().position(|i| i == n))
                .map(|i| i as u128)
                .filter(|i| cube.get(f).contains(*i))
                .unwrap_or_else(|| first(f))
        };
        let mut values = [0u128; FIELDS];
        values[Field::Proto as usize] = u128::from(w.protocol);
        values[Field::State as usize] = first(Field::State);
        values[Field::InIface as usize] = iface(Field::InIface, &w.in_interface);
        values[Field::OutIface as usize] = iface(Field::OutIface, &w.out_interface);
        values[Field::DstPort as usize] = port(Field::DstPort, w.dst_port);
        values[Field::SrcPort as usize] = port(Field::SrcPort, w.src_port);
        values[Field::SrcAddr as usize] = addr::ip(w.src);
        values[Field::DstAddr as usize] = addr::ip(w.dst);
        Some(Packet { values })
    }

    /// The value of one field.
    pub fn get(&self, f: Field) -> u128 {
        self.values[f as usize]
    }

    /// True if the packet is one of `cube`'s.
    pub fn within(&self, cube: &Cube) -> bool {
        cube.contains(&self.values)
    }

    /// The packet as a report names it.
    pub fn witness(&self, model: &Model) -> Witness {
        let protocol = self.get(Field::Proto) as u8;
        let ports = proto::has_ports(protocol);
        let iface = |f: Field| {
            model
                .ifaces
                .get(self.get(f) as usize)
                .filter(|n| n.as_str() != OTHER_IFACE)
                .cloned()
        };
        Witness {
            protocol,
            src: addr::to_ip(self.get(Field::SrcAddr)),
            dst: addr::to_ip(self.get(Field::DstAddr)),
            src_port: ports.then(|| self.get(Field::SrcPort) as u16),
            dst_port: ports.then(|| self.get(Field::DstPort) as u16),
            in_interface: iface(Field::InIface),
            out_interface: iface(Field::OutIface),
        }
    }
}

/// What a matched rule (or a default) did to the packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Accepted in this stage.
    Accept,
    /// Dropped.
    Drop,
    /// Rejected.
    Reject,
    /// Called a user chain.
    Jump(ChainId),
    /// Continued in a user chain without a way back.
    Goto(ChainId),
    /// Returned to the caller (or, in a stage's own chain, to its default).
    Return,
    /// A non-terminating target: logged, marked, … and went on.
    Continue(String),
    /// Destination NAT: the packet goes on to the next stage with this destination.
    Dnat {
        /// The new destination address.
        to: std::net::IpAddr,
        /// The new destination port, when the rule rewrites it.
        port: Option<u16>,
    },
    /// Destination NAT to the firewall itself: delivered locally, not forwarded.
    Redirect,
    /// A target mislint does not model, or a jump that would loop; `accepted` says which
    /// world this trace assumes: accepted here, or going on with the next rule.
    Unknown {
        /// The target as written.
        target: String,
        /// True if assumed to accept.
        accepted: bool,
    },
}

/// One event on the packet's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The packet enters a stage (its chain is `Step::at.chain`).
    EnterStage,
    /// A rule matched and did this.
    Match(Effect),
    /// A rule with an unmodelled condition is assumed not to match in this world.
    AssumeNoMatch,
    /// The end of a user chain (or a `Return`): back to the calling chain.
    Return {
        /// The chain the walk goes back to.
        to: ChainId,
    },
    /// The end of a stage's chain: its default applied.
    Default(Effect),
}

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index of the stage in `RuleGraph::stages`.
    pub stage: usize,
    /// How many chain calls deep the walk is (0 in the stage's own chain).
    pub depth: usize,
    /// The rule (or, with `rule: None`, the chain's end or default).
    pub at: Decider,
    /// What happened.
    pub event: Event,
    /// True if the rule has an unmodelled condition and is assumed to match here.
    pub assumed: bool,
}

/// The path of one packet in one world.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Everything that happened, in order.
    pub steps: Vec<Step>,
    /// Permitted or denied in this world.
    pub verdict: Verdict,
    /// The rule or default that ended the walk (for a permit: the last stage's accept).
    pub decided_by: Decider,
    /// The accepting rule or default of each stage passed.
    pub accepted_by: Vec<Decider>,
    /// The packet as the last stage saw it (after any destination NAT).
    pub delivered: Packet,
    /// The choices this world made at rules whose match or effect is unknown: `true`
    /// means assumed to match (for an unknown target: to accept).
    pub assumptions: Vec<(Decider, bool)>,
}

/// How a stage ended for the packet.
enum StageEnd {
    Accept(Decider),
    Nat,
    Deny(Decider),
}

/// Choices at unknown rules: taken from a prefix, then "no" by default, counting all.
struct Chooser<'a> {
    prefix: &'a [bool],
    taken: Vec<(Decider, bool)>,
}

impl Chooser<'_> {
    fn choose(&mut self, at: Decider) -> bool {
        let yes = self.prefix.get(self.taken.len()).copied().unwrap_or(false);
        self.taken.push((at, yes));
        yes
    }
}

/// Walks `packet` through every stage, in every world its unknown rules allow (at most
/// [`MAX_WORLDS`]). The first world assumes that no unmodelled condition matches and no
/// unknown target accepts. At a destination NAT with several possible targets, the
/// target in `prefer` (the packet as delivered, when the caller knows it) is taken.
pub fn walk(model: &Model, packet: &Packet, prefer: Option<&Packet>) -> Vec<Trace> {
    let mut worlds = Vec::new();
    let mut pending: Vec<Vec<bool>> = vec![Vec::new()];
    while let Some(prefix) = pending.pop() {
        if worlds.len() >= MAX_WORLDS {
            break;
        }
        let trace = walk_world(model, packet, prefer, &prefix);
        let choices: Vec<bool> = trace.assumptions.iter().map(|(_, c)| *c).collect();
        // Every later "no" is a branch not yet walked; walk it as a "yes" next, deepest last
        // so the worlds come out in the order of their first differing choice.
        for i in (prefix.len()..choices.len()).rev() {
            let mut next: Vec<bool> = choices.iter().take(i).copied().collect();
            next.push(true);
            pending.push(next);
        }
        worlds.push(trace);
    }
    worlds
}

/// Walks `packet` through the stages in the world given by `prefix`.
fn walk_world(model: &Model, packet: &Packet, prefer: Option<&Packet>, prefix: &[bool]) -> Trace {
    let mut pkt = packet.clone();
    let mut steps = Vec::new();
    let mut chooser = Chooser {
        prefix,
        taken: Vec::new(),
    };
    let mut accepted_by = Vec::new();
    for (index, stage) in model.graph.stages.iter().enumerate() {
        steps.push(Step {
            stage: index,
            depth: 0,
            at: Decider {
                chain: stage.chain,
                rule: None,
            },
            event: Event::EnterStage,
            assumed: false,
        });
        let mut walk = StageWalk {
            model,
            stage: index,
            entry: stage.chain,
            steps: &mut steps,
            chooser: &mut chooser,
            prefer,
        };
        match walk.run(&mut pkt) {
            StageEnd::Accept(by) => accepted_by.push(by),
            StageEnd::Nat => {}
            StageEnd::Deny(by) => {
                return Trace {
                    steps,
                    verdict: Verdict::Deny,
                    decided_by: by,
                    accepted_by,
                    delivered: pkt,
                    assumptions: chooser.taken,
                };
            }
        }
    }
    let decided_by = accepted_by.last().copied().unwrap_or(Decider {
        chain: ChainId(0),
        rule: None,
    });
    Trace {
        steps,
        verdict: Verdict::Permit,
        decided_by,
        accepted_by,
        delivered: pkt,
        assumptions: chooser.taken,
    }
}

/// The walk through one stage's chain and the chains it calls.
struct StageWalk<'m, 'w, 'c> {
    model: &'m Model<'m>,
    stage: usize,
    entry: ChainId,
    steps: &'w mut Vec<Step>,
    chooser: &'w mut Chooser<'c>,
    prefer: Option<&'w Packet>,
}

impl StageWalk<'_, '_, '_> {
    fn record(&mut self, depth: usize, at: Decider, event: Event, assumed: bool) {
        self.steps.push(Step {
            stage: self.stage,
            depth,
            at,
            event,
            assumed,
        });
    }

    /// First match from the stage's chain on, through jumps and gotos, as
    /// `Model::evaluate` does it for sets.
    fn run(&mut self, pkt: &mut Packet) -> StageEnd {
        let loop_limit = self.model.graph.chains.len();
        let mut chain = self.entry;
        let mut next = 0usize;
        let mut stack: Vec<(ChainId, usize)> = Vec::new();
        let mut depth = 0usize;
        for _ in 0..MAX_VISITS {
            let hit = (next..self.model.graph.chain(chain).rules.len()).find(|&i| {
                self.model
                    .rule_cube(chain, i)
                    .is_some_and(|(cube, _)| pkt.within(cube))
            });
            let Some(index) = hit else {
                match self.leave(chain, &mut stack, &mut depth) {
                    Some((c, n)) => {
                        chain = c;
                        next = n;
                        continue;
                    }
                    None => return self.take_default(),
                }
            };
            let at = Decider {
                chain,
                rule: Some(index),
            };
            let unknown = self.model.rule_cube(chain, index).is_some_and(|(_, u)| u);
            if unknown && !self.chooser.choose(at) {
                self.record(depth, at, Event::AssumeNoMatch, false);
                next = index + 1;
                continue;
            }
            let action = &self.model.graph.chain(chain).rules[index].action;
            next = index + 1;
            match action {
                Action::Accept => {
                    self.record(depth, at, Event::Match(Effect::Accept), unknown);
                    return StageEnd::Accept(at);
                }
                Action::Drop | Action::Reject => {
                    let effect = if matches!(action, Action::Drop) {
                        Effect::Drop
                    } else {
                        Effect::Reject
                    };
                    self.record(depth, at, Event::Match(effect), unknown);
                    return StageEnd::Deny(at);
                }
                Action::Dnat(target) => {
                    let effect = rewrite(pkt, target, self.prefer);
                    let local = effect == Effect::Redirect;
                    self.record(depth, at, Event::Match(effect), unknown);
                    return if local {
                        StageEnd::Deny(at)
                    } else {
                        StageEnd::Nat
                    };
                }
                Action::Continue(name) => self.record(
                    depth,
                    at,
                    Event::Match(Effect::Continue(name.clone())),
                    unknown,
                ),
                Action::Return => {
                    self.record(depth, at, Event::Match(Effect::Return), unknown);
                    match self.leave(chain, &mut stack, &mut depth) {
                        Some((c, n)) => {
                            chain = c;
                            next = n;
                        }
                        None => return self.take_default(),
                    }
                }
                Action::Jump(target) if depth < loop_limit => {
                    self.record(depth, at, Event::Match(Effect::Jump(*target)), unknown);
                    stack.push((chain, index + 1));
                    chain = *target;
                    next = 0;
                    depth += 1;
                }
                Action::Goto(target) if depth < loop_limit => {
                    self.record(depth, at, Event::Match(Effect::Goto(*target)), unknown);
                    chain = *target;
                    next = 0;
                    depth += 1;
                }
                Action::Jump(_) | Action::Goto(_) | Action::Unknown(_) => {
                    let target = match action {
                        Action::Unknown(name) => name.clone(),
                        _ => "a jump that loops".to_string(),
                    };
                    let accepted = self.chooser.choose(at);
                    let effect = Effect::Unknown { target, accepted };
                    self.record(depth, at, Event::Match(effect), unknown);
                    if accepted {
                        return StageEnd::Accept(at);
                    }
                }
            }
        }
        // Unreachable for any graph a parser builds; stop as the set walk would at a
        // default rather than spin.
        self.take_default()
    }

    /// Leaves `chain` at its end: back to the caller (returned), or `None` at the
    /// stage's own chain.
    fn leave(
        &mut self,
        chain: ChainId,
        stack: &mut Vec<(ChainId, usize)>,
        depth: &mut usize,
    ) -> Option<(ChainId, usize)> {
        let (to, next) = stack.pop()?;
        self.record(
            *depth,
            Decider { chain, rule: None },
            Event::Return { to },
            false,
        );
        *depth = depth.saturating_sub(1);
        Some((to, next))
    }

    /// The stage chain's default (a chain without one accepts, as in the set walk).
    fn take_default(&mut self) -> StageEnd {
        let at = Decider {
            chain: self.entry,
            rule: None,
        };
        let effect = match self.model.graph.chain(self.entry).default.as_ref() {
            None => Effect::Accept,
            Some(d) => match d.action {
                Action::Accept => Effect::Accept,
                Action::Reject => Effect::Reject,
                _ => Effect::Drop,
            },
        };
        let accepted = effect == Effect::Accept;
        self.record(0, at, Event::Default(effect), false);
        if accepted {
            StageEnd::Accept(at)
        } else {
            StageEnd::Deny(at)
        }
    }
}

/// Applies destination NAT to the packet and says what it did.
fn rewrite(pkt: &mut Packet, target: &NatTarget, prefer: Option<&Packet>) -> Effect {
    let Some(addrs) = &target.addrs else {
        return Effect::Redirect;
    };
    let choose = |set: &IntervalSet, field: Field| {
        prefer
            .map(|p| p.get(field))
            .filter(|v| set.contains(*v))
            .or(set.first())
    };
    if let Some(a) = choose(addrs, Field::DstAddr) {
        pkt.values[Field::DstAddr as usize] = a;
    }
    let mut port = None;
    if let Some(ports) = &target.ports
        && let Some(p) = choose(ports, Field::DstPort)
    {
        pkt.values[Field::DstPort as usize] = p;
        port = Some(p as u16);
    }
    Effect::Dnat {
        to: addr::to_ip(pkt.get(Field::DstAddr)),
        port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::sets::ct;
    use crate::graph::{Chain, Cond, CondKind, Default, Dialect, Family, Rule, RuleGraph, Stage};
    use crate::source::{FileId, Span};

    fn span() -> Span {
        Span::new(FileId(0), 0, 0)
    }

    fn rule(conds: Vec<CondKind>, action: Action) -> Rule {
        Rule {
            conds: conds
                .into_iter()
                .map(|kind| Cond { kind, span: span() })
                .collect(),
            action,
            span: span(),
            action_span: span(),
            comment: None,
        }
    }

    fn tcp_port(p: u128) -> Vec<CondKind> {
        vec![
            CondKind::Protocol(IntervalSet::single(6)),
            CondKind::DstPort(IntervalSet::single(p)),
        ]
    }

    /// FORWARD: LOG; jump USER; drop policy. USER: tcp/22 return; tcp/389 reject;
    /// tcp/80 accept; unknown-match tcp/445 accept.
    fn graph() -> RuleGraph {
        let mut g = RuleGraph::new(Dialect::Iptables, FileId(0), Family::V4);
        let forward = g.add_chain(Chain {
            name: "FORWARD".into(),
            rules: Vec::new(),
            default: Some(Default {
                action: Action::Drop,
                span: span(),
                reason: "chain policy".into(),
            }),
            span: span(),
        });
        let mut unknown = tcp_port(445);
        unknown.push(CondKind::Unknown("-m foo".into()));
        let user = g.add_chain(Chain {
            name: "USER".into(),
            rules: vec![
                rule(tcp_port(22), Action::Return),
                rule(tcp_port(389), Action::Reject),
                rule(tcp_port(80), Action::Accept),
                rule(unknown, Action::Accept),
            ],
            default: None,
            span: span(),
        });
        g.chains[forward.0].rules = vec![
            rule(vec![], Action::Continue("LOG".into())),
            rule(vec![], Action::Jump(user)),
        ];
        g.stages.push(Stage {
            name: "filter/FORWARD".into(),
            chain: forward,
        });
        g
    }

    fn packet(model: &Model, port: u128) -> Packet {
        let mut c = model.new_packets();
        c.restrict(Field::Proto, &IntervalSet::single(6));
        c.restrict(Field::DstPort, &IntervalSet::single(port));
        c.restrict(Field::State, &IntervalSet::single(ct::NEW));
        Packet::of_cube(model, &c).expect("non-empty")
    }

    fn events(t: &Trace) -> Vec<(Option<usize>, Event)> {
        t.steps
            .iter()
            .map(|s| (s.at.rule, s.event.clone()))
            .collect()
    }

    #[test]
    fn records_log_jump_and_accept() {
        let g = graph();
        let m = Model::new(&g, &[]);
        let worlds = walk(&m, &packet(&m, 80), None);
        assert_eq!(worlds.len(), 1);
        let t = &worlds[0];
        assert_eq!(t.verdict, Verdict::Permit);
        assert_eq!(
            events(t),
            vec![
                (None, Event::EnterStage),
                (Some(0), Event::Match(Effect::Continue("LOG".into()))),
                (Some(1), Event::Match(Effect::Jump(ChainId(1)))),
                (Some(2), Event::Match(Effect::Accept)),
            ]
        );
        assert_eq!(t.steps[3].depth, 1);
        assert_eq!(
            t.decided_by,
            Decider {
                chain: ChainId(1),
                rule: Some(2)
            }
        );
    }

    #[test]
    fn return_and_fall_through_reach_the_policy() {
        let g = graph();
        let m = Model::new(&g, &[]);
        let t = &walk(&m, &packet(&m, 22), None)[0];
        assert_eq!(t.verdict, Verdict::Deny);
        let ev = events(t);
        assert_eq!(ev[3], (Some(0), Event::Match(Effect::Return)));
        assert_eq!(ev[4], (None, Event::Return { to: ChainId(0) }));
        assert_eq!(ev[5], (None, Event::Default(Effect::Drop)));
        let t = &walk(&m, &packet(&m, 1000), None)[0];
        assert_eq!(
            events(t).last(),
            Some(&(None, Event::Default(Effect::Drop)))
        );
    }

    #[test]
    fn reject_ends_the_walk() {
        let g = graph();
        let m = Model::new(&g, &[]);
        let t = &walk(&m, &packet(&m, 389), None)[0];
        assert_eq!(t.verdict, Verdict::Deny);
        assert_eq!(
            t.decided_by,
            Decider {
                chain: ChainId(1),
                rule: Some(1)
            }
        );
    }

    #[test]
    fn an_unknown_match_gives_two_worlds() {
        let g = graph();
        let m = Model::new(&g, &[]);
        let worlds = walk(&m, &packet(&m, 445), None);
        assert_eq!(worlds.len(), 2);
        assert_eq!(worlds[0].verdict, Verdict::Deny);
        assert!(events(&worlds[0]).contains(&(Some(3), Event::AssumeNoMatch)));
        assert_eq!(worlds[1].verdict, Verdict::Permit);
        assert!(worlds[1].steps.iter().any(|s| s.assumed));
        assert_eq!(
            worlds[1].assumptions,
            vec![(
                Decider {
                    chain: ChainId(1),
                    rule: Some(3)
                },
                true
            )]
        );
    }

    #[test]
    fn dnat_rewrites_the_destination_for_later_stages() {
        let mut g = RuleGraph::new(Dialect::Iptables, FileId(0), Family::V4);
        let to = addr::v4("192.168.10.5".parse().expect("literal"));
        let nat = g.add_chain(Chain {
            name: "PREROUTING".into(),
            rules: vec![rule(
                tcp_port(443),
                Action::dnat(NatTarget {
                    addrs: Some(IntervalSet::single(to)),
                    ports: Some(IntervalSet::single(8443)),
                }),
            )],
            default: Some(Default {
                action: Action::Accept,
                span: span(),
                reason: "chain policy".into(),
            }),
            span: span(),
        });
        let filter = g.add_chain(Chain {
            name: "FORWARD".into(),
            rules: vec![rule(tcp_port(8443), Action::Accept)],
            default: Some(Default {
                action: Action::Drop,
                span: span(),
                reason: "chain policy".into(),
            }),
            span: span(),
        });
        g.stages.push(Stage {
            name: "nat/PREROUTING".into(),
            chain: nat,
        });
        g.stages.push(Stage {
            name: "filter/FORWARD".into(),
            chain: filter,
        });
        let m = Model::new(&g, &[]);
        let t = &walk(&m, &packet(&m, 443), None)[0];
        assert_eq!(t.verdict, Verdict::Permit);
        assert_eq!(
            t.steps[1].event,
            Event::Match(Effect::Dnat {
                to: addr::to_ip(to),
                port: Some(8443)
            })
        );
        assert_eq!(t.delivered.get(Field::DstPort), 8443);
        assert_eq!(
            t.accepted_by,
            vec![Decider {
                chain: filter,
                rule: Some(0)
            }]
        );
    }
}
