//! `any-any-permit`: one rule lets every packet from one zone to another through —
//! every protocol, every port, every address of both zones.
//!
//! Read from the zone pairs [`CheckCx`] evaluated: the permitted outcomes are grouped by
//! the rule that permits them (its source line), and a group that covers the whole pair
//! query is an any-any permit. Exceptions carved out above the rule (an earlier deny of
//! tcp/445) or by a later stage make it something less than "any any", and it is then
//! not reported.
//!
//! Severity note, on purpose: such a rule always opens ports no scenario needs, so
//! `needless-port` (or `ipsec-violation`) already reports the same line as a warning or
//! an error with the exact ports; this note adds only the diagnosis "this is an any-any
//! rule". Making it a warning would gate CI twice on one line.

use super::{CheckCx, CheckMeta, MIS_PAIRS, pair_query};
use crate::analysis::{Cube, Decider, Field, Verdict};
use crate::graph::Zone;
use crate::report::finding::{Finding, Severity};
use crate::source::Span;
use std::collections::BTreeMap;

/// Metadata.
pub const META: CheckMeta = CheckMeta {
    name: "any-any-permit",
    severity: Severity::Note,
    summary: "a rule permits every protocol, port and address from one zone to another",
    doc: include_str!("../../docs/checks/any-any-permit.md"),
};

/// Pieces the coverage test may split into before it gives up (never reporting then).
const MAX_PIECES: usize = 4096;

/// One finding per permitting line and zone pair that lets everything through.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    let mut out = Vec::new();
    for (from, to) in MIS_PAIRS {
        let Some(outcomes) = cx.pairs.get(&(from, to)) else {
            continue;
        };
        let (mut query, delivered) = pair_query(cx.model, cx.zoning, cx.hosts, from, to);
        query.restrict(Field::DstAddr, &delivered);
        if query.is_empty() {
            continue;
        }
        let mut groups: BTreeMap<Span, (Decider, Vec<&Cube>, bool)> = BTreeMap::new();
        for o in outcomes.iter().filter(|o| o.verdict == Verdict::Permit) {
            let d = o.permitting();
            let g = groups
                .entry(cx.model.span_of(d))
                .or_insert_with(|| (d, Vec::new(), false));
            g.1.push(&o.cube);
            g.2 |= o.may.is_some();
        }
        for (span, (decider, cubes, may)) in groups {
            if covers(&query, &cubes) {
                out.push(finding(cx, span, decider, from, to, may, &query));
            }
        }
    }
    out
}

/// True if the union of `cubes` holds every packet of `query`.
fn covers(query: &Cube, cubes: &[&Cube]) -> bool {
    let mut rest = vec![query.clone()];
    for c in cubes {
        let mut next = Vec::with_capacity(rest.len());
        for p in rest {
            if p.intersects(c) {
                next.extend(p.subtract(c));
            } else {
                next.push(p);
            }
        }
        if next.len() > MAX_PIECES {
            return false;
        }
        rest = next;
        if rest.is_empty() {
            return true;
        }
    }
    rest.is_empty()
}

fn finding(
    cx: &CheckCx,
    span: Span,
    decider: Decider,
    from: Zone,
    to: Zone,
    may: bool,
    query: &Cube,
) -> Finding {
    let verb = if may { "may permit" } else { "permits" };
    let mut f = Finding::new(
        META.name,
        META.severity,
        span,
        format!("{verb} every protocol, port and address from {from} to {to}"),
    )
    .with_label(format!(
        "{} lets all traffic from {from} to {to} through",
        cx.model.describe(decider)
    ))
    .with_help("replace it with rules for the flows the selected scenarios need");
    if may {
        f = f.maybe();
    }
    f.from_zone = Some(from);
    f.to_zone = Some(to);
    f.witness = Some(cx.model.witness(query));
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Model;
    use crate::analysis::zones::{ZoneMapping, Zoning};
    use crate::config::site::Hosts;
    use crate::graph::Dialect;
    use crate::policy::Settings;
    use crate::source::{FileId, SourceFile};

    fn lint(rules: &str) -> Vec<(String, Option<Zone>, Option<Zone>)> {
        let text = format!("*filter\n:FORWARD DROP [0:0]\n{rules}COMMIT\n");
        let file = SourceFile::new(FileId(0), "t", text);
        let g = crate::parse::parse(&file, Dialect::Iptables)
            .graph
            .expect("parses");
        let zones: Vec<ZoneMapping> = ["eth1=perimeter", "eth2=internal"]
            .iter()
            .map(|z| ZoneMapping::parse(z).expect("valid mapping"))
            .collect();
        let model = Model::new(&g, &["eth1".to_string(), "eth2".to_string()]);
        let zoning = Zoning::assign(&g, &zones);
        let (settings, hosts) = (Settings::default(), Hosts::default());
        let cx = CheckCx::new(&file, &model, &zoning, &settings, &hosts, &[]);
        run(&cx)
            .into_iter()
            .map(|f| {
                (
                    file.slice(f.primary.span).to_string(),
                    f.from_zone,
                    f.to_zone,
                )
            })
            .collect()
    }

    #[test]
    fn an_unrestricted_accept_between_zones_fires() {
        assert_eq!(
            lint("-A FORWARD -i eth1 -o eth2 -j ACCEPT\n"),
            vec![(
                "-A FORWARD -i eth1 -o eth2 -j ACCEPT".to_string(),
                Some(Zone::Perimeter),
                Some(Zone::Internal)
            )]
        );
    }

    #[test]
    fn an_exception_above_or_a_narrower_accept_does_not() {
        assert!(
            lint("-A FORWARD -p tcp --dport 445 -j DROP\n-A FORWARD -i eth1 -o eth2 -j ACCEPT\n")
                .is_empty()
        );
        assert!(lint("-A FORWARD -i eth1 -o eth2 -p tcp -j ACCEPT\n").is_empty());
    }
}
