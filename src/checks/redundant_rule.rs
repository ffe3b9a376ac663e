//! `redundant-rule`: a rule whose removal changes nothing, because every packet it
//! decides would get the same verdict from the later rules of its chain (the
//! "redundancy" of Al-Shaer and Hamed's firewall anomaly taxonomy).
//!
//! The analysis is [`super::reach`]: the packets that reach the rule are walked
//! first-match through the later rules, as if the rule (every rule of its source line)
//! were gone. A vendor entry is redundant only if all its rules are.

use super::reach::{self, Redundancy, RuleResult};
use super::shadowed_rule::{by_span, cut_note};
use super::{CheckCx, CheckMeta, HygieneNotes};
use crate::analysis::{Cube, Decider, Field};
use crate::graph::IntervalSet;
use crate::graph::sets::{PORT_MAX, PROTO_MAX};
use crate::report::finding::{Finding, Severity};
use crate::source::Span;
use foldhash::HashSet;

/// Metadata.
pub const META: CheckMeta = CheckMeta {
    name: "redundant-rule",
    severity: Severity::Note,
    summary: "a rule whose packets the later rules would decide the same way without it",
    doc: include_str!("../../docs/checks/redundant-rule.md"),
};

/// Related labels shown at most.
const MAX_RELATED: usize = 3;

/// One finding per redundant source line, plus one note if some were not analysed.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    let results = cx.reach();
    let implicit = reach::implicit_spans(cx.model.graph);
    let mut out = HygieneNotes::new(META);
    let mut cut = Vec::new();
    for group in by_span(results).chunk_by(|a, b| a.span == b.span) {
        let Some(span) = group.first().map(|r| r.span) else {
            continue;
        };
        if group
            .iter()
            .all(|r| matches!(r.reach, reach::Reach::Dead(_)))
        {
            continue; // `shadowed-rule` reports it
        }
        let settled = |r: &&RuleResult| {
            matches!(r.reach, reach::Reach::Dead(_)) || matches!(r.redundancy, Redundancy::Yes(..))
        };
        if group.iter().all(settled) {
            if !is_explicit_default(cx, group, &implicit) {
                out.push(|| redundant_finding(cx, span, group));
            }
        } else if group.iter().all(|r| {
            settled(r)
                || matches!(r.reach, reach::Reach::Cut)
                || matches!(r.redundancy, Redundancy::Cut)
        }) {
            cut.push(span);
        }
    }
    out.finish(cut_note(META, &cut, "redundant"))
}

/// True for a catch-all rule (every protocol, port and address) whose packets only the
/// chain's default or an implicit rule would decide the same way: `deny ip any any log`
/// above the ASA implicit deny, `-A FORWARD -j DROP` under a DROP policy. People write
/// those on purpose — to log or count what the default drops, or to survive a policy
/// change — so reporting them would be noise.
fn is_explicit_default(cx: &CheckCx, group: &[&RuleResult], implicit: &HashSet<Span>) -> bool {
    let space = cx.model.graph.family.space();
    group.iter().all(|r| {
        let Redundancy::Yes(_, deciders, _) = &r.redundancy else {
            return true;
        };
        let only_default = deciders
            .iter()
            .all(|d| d.rule.is_none() || implicit.contains(&cx.model.span_of(*d)));
        let catch_all = r
            .decider
            .rule
            .and_then(|i| cx.model.rule_cube(r.decider.chain, i))
            .is_some_and(|(c, _)| covers_everything(c, &space));
        only_default && catch_all
    })
}

/// Every protocol, port and address of the family (interfaces and states aside).
fn covers_everything(c: &Cube, space: &IntervalSet) -> bool {
    let all_ports = IntervalSet::range(0, PORT_MAX);
    IntervalSet::range(0, PROTO_MAX).is_subset(&c.get(Field::Proto))
        && all_ports.is_subset(&c.get(Field::DstPort))
        && all_ports.is_subset(&c.get(Field::SrcPort))
        && space.is_subset(&c.get(Field::SrcAddr))
        && space.is_subset(&c.get(Field::DstAddr))
}

fn redundant_finding(cx: &CheckCx, span: Span, group: &[&RuleResult]) -> Finding {
    let mut deciders: Vec<(Decider, Span)> = Vec::new();
    let mut effect = None;
    let mut sample = None;
    for r in group {
        if let Redundancy::Yes(e, ds, s) = &r.redundancy {
            effect = effect.or(Some(*e));
            sample = sample.or(Some(s));
            for d in ds {
                let s = cx.model.span_of(*d);
                if !deciders.iter().any(|(_, t)| *t == s) {
                    deciders.push((*d, s));
                }
            }
        }
    }
    let chain = cx.model.graph.chain(group[0].decider.chain);
    let verdict = effect.map_or_else(|| "verdict".to_string(), |e| e.describe());
    let mut f = Finding::new(
        META.name,
        META.severity,
        span,
        format!(
            "removing this rule of `{}` changes nothing: without it, the later rules give every packet it decides the same `{verdict}`",
            chain.name
        ),
    )
    .with_label("redundant")
    .with_help("remove the rule, or narrow the later rules if this one states the intent");
    for (d, s) in deciders.iter().take(MAX_RELATED) {
        let text = match d.rule {
            None => format!("{} decides the same", cx.model.describe(*d)),
            Some(_) => "decides the same here".to_string(),
        };
        f = f.with_related(*s, text);
    }
    if let Some(s) = sample {
        f.witness = Some(reach::witness(cx.model, s));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::shadowed_rule::tests::lint;

    #[test]
    fn a_deny_the_policy_repeats_is_redundant_but_a_catch_all_is_not() {
        let found = lint(
            "-A FORWARD -p tcp --dport 23 -j DROP\n-A FORWARD -j DROP\n",
            run,
        );
        assert_eq!(
            found,
            vec![(
                "-A FORWARD -p tcp --dport 23 -j DROP".to_string(),
                vec!["-A FORWARD -j DROP".to_string()]
            )]
        );
        // Alone, the deny is repeated by the policy (the `:FORWARD DROP` line).
        let found = lint("-A FORWARD -p tcp --dport 23 -j DROP\n", run);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, vec![":FORWARD DROP [0:0]".to_string()]);
        // The catch-all alone only repeats the policy: written on purpose.
        assert!(lint("-A FORWARD -j DROP\n", run).is_empty());
    }

    #[test]
    fn an_accept_with_a_deny_between_is_not_redundant() {
        let found = lint(
            "-A FORWARD -s 10.0.0.1 -p tcp --dport 80 -j ACCEPT\n\
             -A FORWARD -s 10.0.0.0/25 -p tcp --dport 80 -j DROP\n\
             -A FORWARD -s 10.0.0.0/24 -p tcp --dport 80 -j ACCEPT\n",
            run,
        );
        assert!(found.is_empty(), "{found:?}");
    }
}
