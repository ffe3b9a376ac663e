//! Unit tests of query evaluation on small graphs built in code; the fixtures of every
//! dialect are asked through the binary in tests/query.rs.

use super::*;
use crate::analysis::zones::ZoneMapping;
use crate::graph::{Chain, Cond, CondKind, Default, Family, Rule, Stage};
use crate::source::FileId;

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

fn iface(name: &str) -> crate::graph::IfaceMatch {
    crate::graph::IfaceMatch {
        patterns: vec![crate::graph::IfacePattern {
            name: name.into(),
            prefix: false,
        }],
        negated: false,
    }
}

/// FORWARD (policy drop): eth1→eth2 tcp/389 accept; eth1→eth2 tcp/445 with an unknown
/// match accept.
fn graph() -> RuleGraph {
    let mut g = RuleGraph::new(Dialect::Iptables, FileId(0), Family::V4);
    g.ensure_interface("eth1");
    g.ensure_interface("eth2");
    let tcp = |p: u128| {
        vec![
            CondKind::InIface(iface("eth1")),
            CondKind::OutIface(iface("eth2")),
            CondKind::Protocol(IntervalSet::single(6)),
            CondKind::DstPort(IntervalSet::single(p)),
        ]
    };
    let mut unknown = tcp(445);
    unknown.push(CondKind::Unknown("-m u32".into()));
    let forward = g.add_chain(Chain {
        name: "FORWARD".into(),
        rules: vec![
            rule(tcp(389), Action::Accept),
            rule(unknown, Action::Accept),
        ],
        default: Some(Default {
            action: Action::Drop,
            span: span(),
            reason: "chain policy".into(),
        }),
        span: span(),
    });
    g.stages.push(Stage {
        name: "filter/FORWARD".into(),
        chain: forward,
    });
    g
}

fn zones() -> Vec<ZoneMapping> {
    ["eth1=perimeter", "eth2=internal"]
        .iter()
        .map(|m| ZoneMapping::parse(m).expect("valid"))
        .collect()
}

fn ask(text: &str) -> Result<Evaluated, String> {
    let g = graph();
    let zoning = Zoning::assign(&g, &zones());
    let model = Model::new(&g, &[]);
    let q = parse_query(text).expect("valid query");
    evaluate_query(&model, &zoning, &Hosts::default(), &q).map(|mut e| {
        // The traces borrow nothing; keep only what the assertions read.
        e.parts
            .iter_mut()
            .for_each(|p| p.trace.steps.shrink_to_fit());
        e
    })
}

fn summary(e: &Evaluated) -> Vec<(PartVerdict, Vec<(u128, u128)>)> {
    e.parts
        .iter()
        .map(|p| (p.verdict, p.cube.get(Field::DstPort).ranges().to_vec()))
        .collect()
}

#[test]
fn a_range_splits_into_parts_in_port_order() {
    let e = ask("tcp perimeter -> internal :380-400").expect("answers");
    assert_eq!(
        summary(&e),
        vec![
            (PartVerdict::Denied, vec![(380, 388)]),
            (PartVerdict::Permitted, vec![(389, 389)]),
            (PartVerdict::Denied, vec![(390, 400)]),
        ]
    );
    let permitted = &e.parts[1];
    assert_eq!(permitted.decided_by.rule, Some(0));
    assert_eq!(permitted.trace.verdict, Verdict::Permit);
    assert_eq!(e.parts[0].decided_by.rule, None, "the chain policy");
}

#[test]
fn an_unmodelled_rule_makes_a_may_part_with_both_paths() {
    let e = ask("tcp perimeter -> internal :445").expect("answers");
    assert_eq!(summary(&e), vec![(PartVerdict::May, vec![(445, 445)])]);
    let p = &e.parts[0];
    assert_eq!(p.trace.verdict, Verdict::Permit);
    assert_eq!(
        p.alternative.as_ref().map(|t| t.verdict),
        Some(Verdict::Deny)
    );
    assert_eq!(p.unmodelled.and_then(|d| d.rule), Some(1));
}

#[test]
fn an_address_alone_takes_the_interfaces_of_its_zone() {
    let g = graph();
    let mut maps = zones();
    maps.push(ZoneMapping::parse("10.0.0.0/24=internal").expect("valid"));
    maps.push(ZoneMapping::parse("192.168.10.0/24=perimeter").expect("valid"));
    let zoning = Zoning::assign(&g, &maps);
    let model = Model::new(&g, &[]);
    let q = parse_query("tcp 192.168.10.5 -> 10.0.0.10:389").expect("valid");
    let e = evaluate_query(&model, &zoning, &Hosts::default(), &q).expect("answers");
    assert_eq!(e.src.zone, Some(Zone::Perimeter));
    assert!(e.src.inferred);
    assert_eq!(
        summary(&e),
        vec![(PartVerdict::Permitted, vec![(389, 389)])]
    );
}

#[test]
fn a_zone_without_interfaces_is_an_error_that_says_how_to_map_it() {
    let g = graph();
    let zoning = Zoning::assign(&g, &[]);
    let model = Model::new(&g, &[]);
    let q = parse_query("tcp perimeter -> internal :389").expect("valid");
    let err = evaluate_query(&model, &zoning, &Hosts::default(), &q).expect_err("no zones");
    assert!(err.contains("--zone IFACE=perimeter"), "{err}");
    assert!(err.contains("unmapped: eth1, eth2"), "{err}");
}

#[test]
fn an_unknown_interface_is_an_error() {
    let err = ask("tcp @eth9 -> internal :389").expect_err("no eth9");
    assert!(err.contains("no interface `eth9`"), "{err}");
}

#[test]
fn addresses_read_as_networks_and_ranges() {
    let v4 = |s: &str| addr::v4(s.parse().expect("literal"));
    let space = addr::v4_space();
    let net = IntervalSet::range(v4("10.0.0.0"), v4("10.0.0.255"));
    assert_eq!(describe_addrs(&net, &space), vec!["10.0.0.0/24"]);
    let odd = IntervalSet::range(v4("10.0.0.1"), v4("10.0.0.3"));
    assert_eq!(describe_addrs(&odd, &space), vec!["10.0.0.1-10.0.0.3"]);
    assert_eq!(describe_addrs(&space, &space), vec!["any"]);
}
