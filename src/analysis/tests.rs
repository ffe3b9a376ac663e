//! Tests of the first-match walk on hand-built graphs (the parsers have their own tests;
//! end-to-end behaviour is tested through the CLI).

use super::*;
use crate::graph::sets::{PORT_MAX, PROTO_MAX};
use crate::graph::{Chain, Cond, Default, Dialect, Family, IfacePattern, Interface, Rule, Stage};
use crate::source::{FileId, Span};

fn span(n: u32) -> Span {
    Span {
        file: FileId(0),
        start: n,
        end: n + 1,
    }
}

fn cond(kind: CondKind) -> Cond {
    Cond {
        kind,
        span: span(0),
    }
}

fn tcp_port(p: u128) -> Vec<Cond> {
    vec![
        cond(CondKind::Protocol(IntervalSet::single(6))),
        cond(CondKind::DstPort(IntervalSet::single(p))),
    ]
}

fn rule(conds: Vec<Cond>, action: Action, line: u32) -> Rule {
    Rule {
        conds,
        action,
        span: span(line),
        action_span: span(line),
        comment: None,
    }
}

fn iface(name: &str, prefix: bool, negated: bool) -> IfaceMatch {
    IfaceMatch {
        patterns: vec![IfacePattern {
            name: name.into(),
            prefix,
        }],
        negated,
    }
}

/// A graph with a FORWARD chain (policy `policy`) as its one stage, plus user chains.
fn graph(forward: Vec<Rule>, policy: Action, user: Vec<(&str, Vec<Rule>)>) -> RuleGraph {
    let mut g = RuleGraph::new(Dialect::Iptables, FileId(0), Family::V4);
    for n in ["eth0", "eth1", "eth2"] {
        g.interfaces.push(Interface::named(n));
    }
    let fwd = g.add_chain(Chain {
        name: "FORWARD".into(),
        rules: forward,
        default: Some(Default {
            action: policy,
            span: span(999),
            reason: "policy of chain `FORWARD`".into(),
        }),
        span: span(999),
    });
    for (name, rules) in user {
        g.add_chain(Chain {
            name: name.into(),
            rules,
            default: None,
            span: span(0),
        });
    }
    g.stages.push(Stage {
        name: "filter FORWARD".into(),
        chain: fwd,
    });
    g
}

/// Every NEW TCP packet.
fn tcp_packets(model: &Model) -> Cube {
    let mut q = model.new_packets();
    q.restrict(Field::Proto, &IntervalSet::single(6));
    q
}

/// The verdict, decider and certainty for one TCP packet to `port`.
fn verdict_for(model: &Model, port: u128) -> (Verdict, Decider, bool) {
    let mut q = tcp_packets(model);
    q.restrict(Field::DstPort, &IntervalSet::single(port));
    let out = model.evaluate(&q);
    assert!(!out.is_empty());
    let permits = out.iter().filter(|o| o.verdict == Verdict::Permit).count();
    let o = &out[0];
    assert!(
        permits == 0 || permits == out.len() || out.iter().any(|o| o.may.is_some()),
        "a single packet got two definite verdicts"
    );
    (o.verdict, o.decided_by, out.iter().any(|o| o.may.is_some()))
}

#[test]
fn drop_above_accept_wins() {
    let g = graph(
        vec![
            rule(tcp_port(389), Action::Drop, 1),
            rule(tcp_port(389), Action::Accept, 2),
        ],
        Action::Accept,
        vec![],
    );
    let m = Model::new(&g, &[]);
    let (v, d, may) = verdict_for(&m, 389);
    assert_eq!(v, Verdict::Deny);
    assert_eq!(d.rule, Some(0));
    assert!(!may);
}

#[test]
fn outcomes_partition_the_query_exactly() {
    let g = graph(
        vec![
            rule(tcp_port(80), Action::Accept, 1),
            rule(
                vec![cond(CondKind::Protocol(IntervalSet::single(17)))],
                Action::Drop,
                2,
            ),
        ],
        Action::Accept,
        vec![],
    );
    let m = Model::new(&g, &[]);
    let q = m.new_packets();
    let out = m.evaluate(&q);
    // Pairwise disjoint, and together as large as the query.
    for (i, a) in out.iter().enumerate() {
        for b in &out[i + 1..] {
            assert!(!a.cube.intersects(&b.cube));
        }
    }
    let per_proto_ports: u128 = out
        .iter()
        .map(|o| o.cube.get(Field::Proto).count() * o.cube.get(Field::DstPort).count())
        .sum();
    assert_eq!(per_proto_ports, (PROTO_MAX + 1) * (PORT_MAX + 1));
    let udp_denied = out
        .iter()
        .any(|o| o.verdict == Verdict::Deny && o.cube.get(Field::Proto).contains(17));
    assert!(udp_denied);
}

#[test]
fn return_from_user_chain_continues_in_caller() {
    let g = graph(
        vec![
            rule(vec![], Action::Jump(ChainId(1)), 1),
            rule(tcp_port(80), Action::Accept, 2),
        ],
        Action::Drop,
        vec![(
            "check",
            vec![
                rule(tcp_port(80), Action::Return, 10),
                rule(vec![], Action::Drop, 11),
            ],
        )],
    );
    let m = Model::new(&g, &[]);
    let (v, d, _) = verdict_for(&m, 80);
    assert_eq!((v, d.chain, d.rule), (Verdict::Permit, ChainId(0), Some(1)));
    let (v, d, _) = verdict_for(&m, 81);
    assert_eq!((v, d.chain, d.rule), (Verdict::Deny, ChainId(1), Some(1)));
}

#[test]
fn goto_falls_through_to_the_policy() {
    let g = graph(
        vec![
            rule(vec![], Action::Goto(ChainId(1)), 1),
            rule(tcp_port(80), Action::Accept, 2),
        ],
        Action::Drop,
        vec![("empty", vec![])],
    );
    let m = Model::new(&g, &[]);
    let (v, d, _) = verdict_for(&m, 80);
    // After -g the caller's later rules are skipped: the policy decides.
    assert_eq!((v, d.rule), (Verdict::Deny, None));
}

#[test]
fn jump_falls_through_back_to_caller() {
    let g = graph(
        vec![
            rule(vec![], Action::Jump(ChainId(1)), 1),
            rule(tcp_port(80), Action::Accept, 2),
        ],
        Action::Drop,
        vec![("empty", vec![])],
    );
    let m = Model::new(&g, &[]);
    assert_eq!(verdict_for(&m, 80).0, Verdict::Permit);
}

#[test]
fn negated_source_and_interface_wildcards() {
    let ten = crate::analysis::zones::parse_network("10.0.0.0/8").expect("valid");
    let g = graph(
        vec![rule(
            vec![
                cond(CondKind::SrcAddr(
                    ten.complement(crate::graph::sets::ADDR_MAX),
                )),
                cond(CondKind::InIface(iface("eth", true, false))),
            ],
            Action::Accept,
            1,
        )],
        Action::Drop,
        vec![],
    );
    let m = Model::new(&g, &["ppp0".to_string()]);
    let mut q = m.new_packets();
    q.restrict(Field::InIface, &m.iface_set(&["eth1"]));
    let out = m.evaluate(&q);
    let permitted: Vec<_> = out
        .iter()
        .filter(|o| o.verdict == Verdict::Permit)
        .collect();
    assert_eq!(permitted.len(), 1);
    assert!(!permitted[0].cube.get(Field::SrcAddr).intersects(&ten));
    let mut q = m.new_packets();
    q.restrict(Field::InIface, &m.iface_set(&["ppp0"]));
    assert!(m.evaluate(&q).iter().all(|o| o.verdict == Verdict::Deny));
}

#[test]
fn conntrack_established_does_not_admit_new_packets() {
    let g = graph(
        vec![rule(
            vec![cond(CondKind::State(IntervalSet::from_ranges([(
                ct::ESTABLISHED,
                ct::RELATED,
            )])))],
            Action::Accept,
            1,
        )],
        Action::Drop,
        vec![],
    );
    let m = Model::new(&g, &[]);
    assert_eq!(verdict_for(&m, 80).0, Verdict::Deny);
    let mut q = Cube::full(m.ifaces.len());
    q.restrict(Field::State, &IntervalSet::single(ct::ESTABLISHED));
    assert!(m.evaluate(&q).iter().all(|o| o.verdict == Verdict::Permit));
}

#[test]
fn unknown_condition_turns_closed_into_may() {
    let mut conds = tcp_port(445);
    conds.push(cond(CondKind::Unknown("-m u32".into())));
    let g = graph(vec![rule(conds, Action::Accept, 1)], Action::Drop, vec![]);
    let m = Model::new(&g, &[]);
    let mut q = tcp_packets(&m);
    q.restrict(Field::DstPort, &IntervalSet::single(445));
    let out = m.evaluate(&q);
    assert!(out.iter().any(|o| o.verdict == Verdict::Permit
        && o.may
            == Some(Decider {
                chain: ChainId(0),
                rule: Some(0)
            })));
    assert!(out.iter().all(|o| o.may.is_some()));
}

#[test]
fn jump_loop_terminates_with_may() {
    let g = graph(
        vec![rule(vec![], Action::Jump(ChainId(1)), 1)],
        Action::Drop,
        vec![
            ("a", vec![rule(vec![], Action::Jump(ChainId(2)), 10)]),
            ("b", vec![rule(vec![], Action::Jump(ChainId(1)), 20)]),
        ],
    );
    let m = Model::new(&g, &[]);
    let out = m.evaluate(&m.new_packets());
    assert!(!out.is_empty());
    assert!(out.iter().all(|o| o.may.is_some()));
}

#[test]
fn deep_chain_nesting_does_not_overflow() {
    let depth = 10_000;
    let mut user = Vec::new();
    let names: Vec<String> = (0..depth).map(|i| format!("c{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let next = if i + 1 < depth {
            vec![rule(vec![], Action::Jump(ChainId(i + 2)), 10)]
        } else {
            vec![rule(tcp_port(80), Action::Accept, 10)]
        };
        user.push((name.as_str(), next));
    }
    let g = graph(
        vec![rule(vec![], Action::Jump(ChainId(1)), 1)],
        Action::Drop,
        user,
    );
    let m = Model::new(&g, &[]);
    let (v, _, may) = verdict_for(&m, 80);
    assert_eq!(v, Verdict::Permit);
    assert!(!may);
}

/// kube-proxy's session-affinity service: per endpoint a forking `-m recent --rcheck`
/// jump, and in each endpoint chain a marking jump and a forking DNAT-like accept. Both
/// worlds of every fork meet again at the next rule.
fn affinity_service(endpoints: usize) -> RuleGraph {
    let unknown = || cond(CondKind::Unknown("-m recent".into()));
    let mut service = Vec::new();
    let mut user: Vec<(String, Vec<Rule>)> = vec![(
        "MARK-MASQ".into(),
        vec![rule(vec![], Action::Continue("MARK".into()), 50)],
    )];
    for e in 0..endpoints {
        // Chain 0 is FORWARD, 1 MARK-MASQ, 2 the service, 3.. the endpoints.
        service.push(rule(
            vec![unknown()],
            Action::Jump(ChainId(3 + e)),
            100 + e as u32,
        ));
        let mut src = cond(CondKind::SrcAddr(IntervalSet::single(e as u128 + 1)));
        src.span = span(200 + e as u32);
        user.push((
            format!("EP{e}"),
            vec![
                rule(vec![src], Action::Jump(ChainId(1)), 200 + e as u32),
                rule(vec![unknown()], Action::Accept, 300 + e as u32),
            ],
        ));
    }
    user.insert(1, ("SVC".into(), service));
    let user = user.iter().map(|(n, r)| (n.as_str(), r.clone())).collect();
    graph(
        vec![rule(tcp_port(443), Action::Jump(ChainId(2)), 1)],
        Action::Drop,
        user,
    )
}

#[test]
fn forking_rules_that_meet_again_cost_linear_steps() {
    // Without merging the worlds that meet, 40 endpoints would take 2^40 walks.
    let g = affinity_service(40);
    let m = Model::new(&g, &[]);
    let mut q = tcp_packets(&m);
    q.restrict(Field::DstPort, &IntervalSet::single(443));
    let out = m.evaluate(&q);
    assert!(!m.exhausted());
    assert!(m.steps_taken() < 1_000, "{} steps", m.steps_taken());
    assert!(
        out.iter().all(|o| o.may.is_some()),
        "every verdict depends on `recent`"
    );
    // An endpoint's accept may take the packets; those no endpoint takes meet the policy.
    assert!(
        out.iter()
            .any(|o| o.verdict == Verdict::Permit && o.decided_by.chain.0 >= 3)
    );
    assert!(
        out.iter()
            .any(|o| o.verdict == Verdict::Deny && o.decided_by.rule.is_none())
    );
}

#[test]
fn a_jump_to_a_chain_that_only_marks_does_not_split_pieces() {
    let g = affinity_service(3);
    let m = Model::new(&g, &[]);
    let mut q = tcp_packets(&m);
    q.restrict(Field::DstPort, &IntervalSet::single(443));
    for o in m.evaluate(&q) {
        // The endpoints' `-s` conditions only decide whether a packet is marked.
        assert_eq!(o.cube.get(Field::SrcAddr), q.get(Field::SrcAddr), "{o:?}");
    }
    assert!(m.rules[3][0].passive && !m.rules[3][1].passive);
    assert!(
        !m.rules[0][0].passive,
        "a jump into a chain that decides is not passive"
    );
}

/// A nat stage that sends tcp port 1000+i to endpoint 10.0.0.i port 80 (i < `n`), then
/// FORWARD: drop 10.0.0.3, accept the rest.
fn port_forwards(n: u32) -> RuleGraph {
    let endpoint = |i: u32| addr::v4(std::net::Ipv4Addr::new(10, 0, 0, i as u8));
    let nat_rules = (0..n)
        .map(|i| {
            rule(
                tcp_port(1000 + u128::from(i)),
                Action::dnat(NatTarget {
                    addrs: Some(IntervalSet::single(endpoint(i))),
                    ports: Some(IntervalSet::single(80)),
                }),
                100 + i,
            )
        })
        .collect();
    let drop_three = vec![cond(CondKind::DstAddr(IntervalSet::single(endpoint(3))))];
    let mut g = graph(
        vec![
            rule(drop_three, Action::Drop, 1),
            rule(vec![], Action::Accept, 2),
        ],
        Action::Drop,
        vec![],
    );
    let nat = g.add_chain(Chain {
        name: "PREROUTING".into(),
        rules: nat_rules,
        default: Some(Default {
            action: Action::Accept,
            span: span(998),
            reason: "policy of chain `PREROUTING`".into(),
        }),
        span: span(998),
    });
    g.stages.insert(
        0,
        Stage {
            name: "nat PREROUTING".into(),
            chain: nat,
        },
    );
    g
}

#[test]
fn merged_port_forwards_keep_the_rewrite_that_explains_each_part() {
    let g = port_forwards(50);
    let m = Model::new(&g, &[]);
    let q = tcp_packets(&m);
    let out = m.evaluate(&q);
    let forwarded: Vec<&Outcome> = out.iter().filter(|o| o.nat.is_some()).collect();
    // The fifty rewritten pieces walk FORWARD as one: permitted (49 endpoints) and the
    // dropped endpoint 3, not fifty pieces each.
    assert_eq!(forwarded.len(), 2, "{forwarded:#?}");
    let dropped = forwarded
        .iter()
        .find(|o| o.verdict == Verdict::Deny)
        .expect("endpoint 3 is dropped");
    let (by, before) = dropped.nat.as_deref().expect("a rewrite");
    assert_eq!(
        by.rule,
        Some(3),
        "the rewrite to 10.0.0.3 explains the drop"
    );
    assert_eq!(*before.get(Field::DstPort), IntervalSet::single(1003));
    let permitted = forwarded
        .iter()
        .find(|o| o.verdict == Verdict::Permit)
        .expect("the other endpoints pass");
    assert_eq!(permitted.cube.get(Field::DstAddr).count(), 49);
    let (by, before) = permitted.nat.as_deref().expect("a rewrite");
    // The rewrite named must be one that sends packets to the part's addresses.
    let i = by.rule.expect("a rule") as u128;
    assert_ne!(i, 3);
    assert_eq!(*before.get(Field::DstPort), IntervalSet::single(1000 + i));
    assert!(out.iter().all(|o| o.may.is_none()));
}

/// A DNAT rule matching destination `from` that rewrites to `to`.
fn dnat(from: IntervalSet, to: IntervalSet, line: u32) -> Rule {
    rule(
        vec![cond(CondKind::DstAddr(from))],
        Action::dnat(NatTarget {
            addrs: Some(to),
            ports: None,
        }),
        line,
    )
}

#[test]
fn destinations_reaching_follow_chains_of_rewrites() {
    let a = |d: u8| IntervalSet::single(addr::v4(std::net::Ipv4Addr::new(192, 0, 2, d)));
    let mut g = graph(vec![], Action::Accept, vec![]);
    // 1 → 2 → 3 over two NAT stages, and 4 → 5, which never reaches 3.
    for (name, rules) in [
        ("nat1", vec![dnat(a(1), a(2), 10), dnat(a(4), a(5), 11)]),
        ("nat2", vec![dnat(a(2), a(3), 20)]),
    ] {
        let chain = g.add_chain(Chain {
            name: name.into(),
            rules,
            default: None,
            span: span(0),
        });
        g.stages.insert(
            0,
            Stage {
                name: name.into(),
                chain,
            },
        );
    }
    let m = Model::new(&g, &[]);
    let reach = m.destinations_reaching(&a(3));
    assert_eq!(reach, a(1).union(&a(2)).union(&a(3)));
    assert_eq!(m.destinations_reaching(&a(5)), a(4).union(&a(5)));
    assert_eq!(m.destinations_reaching(&a(9)), a(9));
}

/// Packets per (verdict, decider, rewrite), counted as sent (before any rewrite): equal
/// for two partitions of a query exactly when they decide every packet alike, however
/// the pieces are cut.
fn decided_volume(outcomes: &[Outcome]) -> std::collections::BTreeMap<String, f64> {
    let mut volume = std::collections::BTreeMap::new();
    for o in outcomes {
        let sent = o.nat.as_deref().map_or(&o.cube, |(_, before)| before);
        let packets: f64 = sent.sets().map(|f| f.count() as f64).product();
        let key = format!(
            "{:?} {:?} {:?}",
            o.verdict,
            o.decided_by,
            o.nat.as_deref().map(|(by, _)| by)
        );
        *volume.entry(key).or_insert(0.0) += packets;
    }
    volume
}

#[test]
fn a_prewalked_stage_decides_each_query_as_its_own_walk_does() {
    let g = port_forwards(20);
    let tcp_from = |m: &Model, iface: &str| {
        let mut q = tcp_packets(m);
        q.restrict(Field::InIface, &m.iface_set(&[iface]));
        q
    };
    let alone = Model::new(&g, &[]);
    let shared = Model::new(&g, &[]);
    let (q0, q1) = (tcp_from(&shared, "eth0"), tcp_from(&shared, "eth1"));
    shared.prewalk(&[&q0, &q1], &g.stages);
    let steps_after_prewalk = shared.steps_taken();
    let kept = shared.prewalks().len();
    // Checking again with the same model walks nothing and keeps nothing new.
    shared.prewalk(&[&q1], &g.stages);
    assert_eq!(shared.prewalks().len(), kept);
    assert_eq!(shared.steps_taken(), steps_after_prewalk);
    for iface in ["eth0", "eth1"] {
        let walked = alone.evaluate(&tcp_from(&alone, iface));
        let cut = shared.evaluate(&tcp_from(&shared, iface));
        assert_eq!(decided_volume(&walked), decided_volume(&cut), "{iface}");
    }
    // The nat stage was not walked again for either query.
    assert!(shared.steps_taken() - steps_after_prewalk < alone.steps_taken());
}

#[test]
fn a_rewritten_outcome_names_only_the_senders_later_stages_let_through() {
    let mut g = port_forwards(5);
    let one_sender = IntervalSet::single(addr::v4(std::net::Ipv4Addr::new(192, 0, 2, 7)));
    // FORWARD now accepts the forwarded traffic from one sender only.
    let fwd = g.stages.last().expect("FORWARD").chain;
    g.chains[fwd.0].rules = vec![rule(
        vec![cond(CondKind::SrcAddr(one_sender.clone()))],
        Action::Accept,
        2,
    )];
    let m = Model::new(&g, &[]);
    let q = tcp_packets(&m);
    let out = m.evaluate(&q);
    let permitted: Vec<&Outcome> = out
        .iter()
        .filter(|o| o.verdict == Verdict::Permit && o.nat.is_some())
        .collect();
    assert!(!permitted.is_empty());
    for o in permitted {
        let (_, sent) = o.nat.as_deref().expect("a rewrite");
        // The packets as sent are those of this outcome, not every sender the rewrite saw.
        assert_eq!(*sent.get(Field::SrcAddr), one_sender, "{o:#?}");
    }
}

#[test]
fn queries_walked_side_by_side_decide_as_alone_and_share_the_budget_fairly() {
    let g = port_forwards(20);
    let query = |m: &Model, iface: &str, ports: Option<(u128, u128)>| {
        let mut q = tcp_packets(m);
        q.restrict(Field::InIface, &m.iface_set(&[iface]));
        if let Some((lo, hi)) = ports {
            q.restrict(Field::DstPort, &IntervalSet::range(lo, hi));
        }
        q
    };
    let specs = [("eth0", None), ("eth1", None), ("eth0", Some((1000, 1002)))];
    // Each query alone, on a model of its own: its outcomes and its steps.
    let alone: Vec<(std::collections::BTreeMap<String, f64>, usize)> = specs
        .iter()
        .map(|&(iface, ports)| {
            let m = Model::new(&g, &[]);
            let out = m.evaluate(&query(&m, iface, ports));
            (decided_volume(&out), m.steps_taken())
        })
        .collect();
    let total: usize = alone.iter().map(|(_, steps)| steps).sum();
    let side_by_side = |budget: usize| {
        let m = Model::new(&g, &[]);
        m.steps_left.store(budget, Ordering::Relaxed);
        let queries: Vec<Cube> = specs
            .iter()
            .map(|&(iface, ports)| query(&m, iface, ports))
            .collect();
        let walks: Vec<(&Cube, &[crate::graph::Stage])> =
            queries.iter().map(|q| (q, g.stages.as_slice())).collect();
        let out = m.evaluate_each(&walks);
        (
            out,
            budget - m.steps_left.load(Ordering::Relaxed),
            m.exhausted(),
        )
    };
    let (out, taken, exhausted) = side_by_side(STEP_BUDGET);
    assert!(!exhausted);
    assert_eq!(
        taken, total,
        "the model is charged with every query's steps"
    );
    for (o, (volume, _)) in out.iter().zip(&alone) {
        assert_eq!(&decided_volume(o), volume);
    }
    // A budget whose equal share is too small for the biggest query: that one ends in
    // "may", the smallest still decides exactly, the model counts as exhausted, and
    // every run gives the same outcomes.
    let most = alone.iter().map(|(_, s)| *s).max().unwrap_or(0);
    let least = alone.iter().map(|(_, s)| *s).min().unwrap_or(0);
    assert!(least < most, "the queries differ in size: {alone:?}");
    let tight = specs.len() * (most - 1);
    let (first, _, exhausted) = side_by_side(tight);
    assert!(exhausted);
    let smallest = alone.iter().position(|(_, s)| *s == least).unwrap_or(0);
    let biggest = alone.iter().position(|(_, s)| *s == most).unwrap_or(0);
    assert_eq!(decided_volume(&first[smallest]), alone[smallest].0);
    assert!(first[biggest].iter().any(|o| o.may.is_some()));
    for _ in 0..5 {
        let (again, _, _) = side_by_side(tight);
        let volumes = |r: &[Vec<Outcome>]| r.iter().map(|o| decided_volume(o)).collect::<Vec<_>>();
        assert_eq!(volumes(&again), volumes(&first));
    }
}

/// `port_forwards(n)` with one more stage after FORWARD, like an iptables dump's mangle
/// POSTROUTING: its chain holds `rules` and falls through to `policy`. FORWARD first
/// accepts the packets to port 80 that an unmodelled match picks: they go on "may".
fn with_last_stage(n: u32, rules: Vec<Rule>, policy: Action) -> RuleGraph {
    let mut g = port_forwards(n);
    let fwd = g.stages.last().map_or(0, |s| s.chain.0);
    let mut unknown = tcp_port(80);
    unknown.push(cond(CondKind::Unknown("-m u32".into())));
    g.chains[fwd]
        .rules
        .insert(0, rule(unknown, Action::Accept, 4));
    let last = g.add_chain(Chain {
        name: "POSTROUTING".into(),
        rules,
        default: Some(Default {
            action: policy,
            span: span(997),
            reason: "policy of chain `POSTROUTING`".into(),
        }),
        span: span(997),
    });
    g.stages.push(Stage {
        name: "mangle POSTROUTING".into(),
        chain: last,
    });
    g
}

#[test]
fn a_stage_without_rules_decides_as_walking_to_its_default_does() {
    // The queries are TCP: a walk passes this rule by without a step, as it passes the
    // empty chain's none, and reaches the default.
    let no_match = || {
        let udp = cond(CondKind::Protocol(IntervalSet::single(17)));
        vec![rule(vec![udp], Action::Drop, 3)]
    };
    for policy in [Action::Accept, Action::Drop] {
        let ruleless = with_last_stage(12, vec![], policy.clone());
        let walked = with_last_stage(12, no_match(), policy.clone());
        let run = |g: &RuleGraph, budget: usize| {
            let m = Model::new(g, &[]);
            m.steps_left.store(budget, Ordering::Relaxed);
            let out = m.evaluate(&tcp_packets(&m));
            (format!("{out:#?}"), m.steps_taken(), m.exhausted())
        };
        let (out, steps, _) = run(&walked, STEP_BUDGET);
        assert!(out.contains("may: Some"), "some pieces are only \"may\"");
        let fast = Model::new(&ruleless, &[]);
        let last = ruleless.stages.last().map_or(0, |s| s.chain.0);
        assert!(fast.charge_ruleless_stage(last, 5, &AtomicUsize::new(5)));
        // Every budget, down to none: where one runs short of a step per piece, the
        // walk decides which pieces are only "may".
        for left in [STEP_BUDGET].into_iter().chain((0..=steps + 1).rev()) {
            let (a, b) = (run(&ruleless, left), run(&walked, left));
            assert_eq!(a, b, "{policy:?}, a budget of {left} steps, {steps} needed");
        }
    }
}

/// `port_forwards(5)` with FORWARD's first rule (drop one endpoint) replaced.
fn with_first_forward_rule(rule_now: Rule) -> RuleGraph {
    let mut g = port_forwards(5);
    let fwd = g.stages.last().map_or(0, |s| s.chain.0);
    g.chains[fwd].rules[0] = rule_now;
    g
}

/// The original's walk of public-addressed TCP, recorded, and the walks of `edited`
/// for the same query: fresh, and taking over from the record; with the walks taken
/// over.
fn walked_fresh_and_reusing(original: &RuleGraph, edited: &RuleGraph) -> (String, String, usize) {
    let query = |m: &Model| {
        let mut q = tcp_packets(m);
        let public = |last| addr::v4(std::net::Ipv4Addr::new(192, 0, 2, last));
        q.restrict(Field::DstAddr, &IntervalSet::range(public(0), public(255)));
        q
    };
    let mut lint = Model::new(original, &[]).recording();
    let q = query(&lint);
    lint.evaluate_each(&[(&q, original.stages.as_slice())]);
    let record = Arc::new(lint.take_record().expect("recording"));
    let fresh = Model::new(edited, &[]);
    let q = query(&fresh);
    let walked = fresh.evaluate_each(&[(&q, edited.stages.as_slice())]);
    let reusing = Model::new(edited, &[]).reusing(original, record);
    let q = query(&reusing);
    let reused = reusing.evaluate_each(&[(&q, edited.stages.as_slice())]);
    assert_eq!(fresh.steps_taken(), reusing.steps_taken());
    (
        format!("{walked:#?}"),
        format!("{reused:#?}"),
        reusing.walks_taken_over(),
    )
}

#[test]
fn a_walk_is_taken_over_only_where_no_changed_rule_meets_its_rewritten_packets() {
    let original = port_forwards(5);
    let endpoint = |i| addr::v4(std::net::Ipv4Addr::new(10, 0, 0, i));
    // The query is for public destinations, which the nat stage rewrites to the
    // endpoints: a FORWARD rule about an endpoint misses the query as sent and meets
    // it as rewritten.
    let drop_four = cond(CondKind::DstAddr(IntervalSet::single(endpoint(4))));
    let edited = with_first_forward_rule(rule(vec![drop_four], Action::Drop, 1));
    let (walked, reused, taken_over) = walked_fresh_and_reusing(&original, &edited);
    assert_eq!(
        taken_over, 0,
        "a rule meeting rewritten packets was taken as missing"
    );
    assert_eq!(walked, reused);
    // A rule for UDP meets no packet of a TCP query: the walk is taken over, with the
    // rules after the inserted one renumbered.
    let mut inserted = original.clone();
    let fwd = inserted.stages.last().map_or(0, |s| s.chain.0);
    let udp = cond(CondKind::Protocol(IntervalSet::single(17)));
    inserted.chains[fwd]
        .rules
        .insert(0, rule(vec![udp], Action::Accept, 0));
    let (walked, reused, taken_over) = walked_fresh_and_reusing(&original, &inserted);
    assert_eq!(taken_over, 1);
    assert_eq!(walked, reused);
    assert!(walked.contains("rule: Some("), "some outcome names a rule");
}
