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

use super::{CheckCx, CheckMeta, MIS_PAIRS};
use crate::analysis::cube::FIELDS;
use crate::analysis::{Cube, Decider, Verdict};
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

/// Rounds of the search for a packet no cube holds before the full coverage test runs.
const WITNESS_ROUNDS: usize = 256;

/// One finding per permitting line and zone pair that lets everything through.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    let mut out = Vec::new();
    for (from, to) in MIS_PAIRS {
        let (Some(outcomes), Some(query)) =
            (cx.pairs.get(&(from, to)), cx.pair_traffic.get(&(from, to)))
        else {
            continue;
        };
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
            if covers(query, &cubes) {
                out.push(finding(cx, span, decider, from, to, may, query));
            }
        }
    }
    out
}

/// True if the union of `cubes` holds every packet of `query`.
fn covers(query: &Cube, cubes: &[&Cube]) -> bool {
    // No packet to miss. `run` skips empty queries, but the subtraction below would keep
    // the empty query as a piece no cube meets and answer false.
    if query.is_empty() {
        return true;
    }
    // Most groups are narrow rules that miss the query's lowest or highest packet: a
    // packet no cube holds settles it without splitting the query into pieces. The
    // search for one starts at the lowest packet, so only the highest is tried apart.
    if let Some(p) = query.high_corner()
        && !cubes.iter().any(|c| c.contains(&p))
    {
        return false;
    }
    if uncovered_packet(query, cubes).is_some() {
        return false;
    }
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

/// A packet of `query` that none of `cubes` holds, if a short search finds one.
///
/// The groups that pass the corner test are mostly a broad accept less the exceptions
/// carved out above it; subtracting their hundreds of pieces from the query one after
/// another took milliseconds per group to end with a remainder. Following packets
/// instead — take a piece's lowest packet, find a cube that holds it, go on with what
/// is left of the piece outside that cube — reaches a packet of an exception in a few
/// rounds. `None` when the search holds the query covered or stops at its bound; the
/// full test then decides.
fn uncovered_packet(query: &Cube, cubes: &[&Cube]) -> Option<[u128; FIELDS]> {
    let mut pieces = vec![query.clone()];
    for _ in 0..WITNESS_ROUNDS {
        let piece = pieces.pop()?;
        let packet = piece.low_corner()?;
        match cubes.iter().find(|c| c.contains(&packet)) {
            None => return Some(packet),
            Some(c) => pieces.extend(piece.subtract(c)),
        }
    }
    None
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
    use crate::analysis::Field;
    use crate::checks::with_dump_cx;
    use crate::config::site::Hosts;
    use crate::graph::IntervalSet;

    fn lint(rules: &str) -> Vec<(String, Option<Zone>, Option<Zone>)> {
        let text = format!("*filter\n:FORWARD DROP [0:0]\n{rules}COMMIT\n");
        let zones = ["eth1=perimeter", "eth2=internal"];
        lint_dump(&text, &zones, &Hosts::default())
    }

    /// The check's findings on an iptables dump with interfaces mapped as `zones`
    /// (`eth1=perimeter`): each finding's line and zones.
    fn lint_dump(
        text: &str,
        zones: &[&str],
        hosts: &Hosts,
    ) -> Vec<(String, Option<Zone>, Option<Zone>)> {
        with_dump_cx(text, zones, hosts, |cx| {
            run(cx)
                .into_iter()
                .map(|f| {
                    let line = cx.file.slice(f.primary.span).to_string();
                    (line, f.from_zone, f.to_zone)
                })
                .collect()
        })
    }

    #[test]
    fn an_empty_query_is_covered_by_anything() {
        let empty = masked_cube(0, 0, 0);
        assert!(empty.is_empty());
        assert!(covers(&empty, &[]));
        assert!(covers(&empty, &[&empty]));
        assert!(covers(&empty, &[&masked_cube(1, 1, 1)]));
    }

    #[test]
    fn covers_needs_every_packet_including_the_corners() {
        let mut query = Cube::full(2);
        query.restrict(Field::DstPort, &IntervalSet::range(0, 99));
        let (mut low, mut high, mut middle) = (query.clone(), query.clone(), query.clone());
        low.restrict(Field::DstPort, &IntervalSet::range(0, 49));
        high.restrict(Field::DstPort, &IntervalSet::range(50, 99));
        middle.restrict(Field::DstPort, &IntervalSet::range(1, 98));
        assert!(covers(&query, &[&low, &high]));
        assert!(covers(&query, &[&high, &middle, &low]));
        // The lowest packet (port 0), the highest (port 99), then a gap in between.
        assert!(!covers(&query, &[&high, &middle]));
        assert!(!covers(&query, &[&low, &middle]));
        let mut gap = high.clone();
        gap.restrict(Field::DstPort, &IntervalSet::range(51, 99));
        assert!(!covers(&query, &[&low, &gap]));
        assert_eq!(query.low_corner().map(|p| low.contains(&p)), Some(true));
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

    #[test]
    fn traffic_sent_to_a_nat_address_counts_where_it_is_delivered() {
        // The public side reaches the MIS host at its own address and through the
        // firewall's public one; the pair's traffic is what arrives at the MIS host, and
        // the accept lets all of it through.
        let text = "*nat\n:PREROUTING ACCEPT [0:0]\n\
            -A PREROUTING -i eth0 -d 203.0.113.1 -j DNAT --to-destination 10.0.1.5\n\
            COMMIT\n*filter\n:FORWARD DROP [0:0]\n\
            -A FORWARD -i eth0 -o eth1 -j ACCEPT\nCOMMIT\n";
        let hosts = Hosts {
            mis: crate::analysis::zones::parse_network("10.0.1.5").expect("an address"),
            ..Hosts::default()
        };
        assert_eq!(
            lint_dump(text, &["eth0=public", "eth1=perimeter"], &hosts),
            vec![(
                "-A FORWARD -i eth0 -o eth1 -j ACCEPT".to_string(),
                Some(Zone::Public),
                Some(Zone::Perimeter)
            )]
        );
    }

    /// A cube of every packet but the protocols, destination ports and destinations in
    /// the masks (values 0 to 15).
    fn masked_cube(proto: u16, port: u16, dst: u16) -> Cube {
        let set = |mask: u16| {
            IntervalSet::from_ranges((0..16u128).filter(|&v| mask >> v & 1 == 1).map(|v| (v, v)))
        };
        let mut c = Cube::full(2);
        c.restrict(Field::Proto, &set(proto));
        c.restrict(Field::DstPort, &set(port));
        c.restrict(Field::DstAddr, &set(dst));
        c
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// The search finds only packets that no cube holds, finds none when the cubes
        /// cover the query, and the coverage test agrees with counting packet by packet.
        #[test]
        fn coverage_matches_a_packet_by_packet_count(
            query in proptest::array::uniform3(proptest::prelude::any::<u16>()),
            cubes in proptest::collection::vec(
                proptest::array::uniform3(proptest::prelude::any::<u16>()), 1..8),
        ) {
            let q = masked_cube(query[0], query[1], query[2]);
            let cubes: Vec<Cube> = cubes.iter().map(|m| masked_cube(m[0], m[1], m[2])).collect();
            let refs: Vec<&Cube> = cubes.iter().collect();
            let full = Cube::full(2);
            let packet = |p: u128, port: u128, dst: u128| {
                let mut x = full.low_corner().expect("not empty");
                x[Field::Proto as usize] = p;
                x[Field::DstPort as usize] = port;
                x[Field::DstAddr as usize] = dst;
                x
            };
            let mut covered = true;
            for p in 0..16 {
                for port in 0..16 {
                    for dst in 0..16 {
                        let x = packet(p, port, dst);
                        if q.contains(&x) && !refs.iter().any(|c| c.contains(&x)) {
                            covered = false;
                        }
                    }
                }
            }
            // The search may stop at its bound without a packet; the full test decides.
            if let Some(x) = uncovered_packet(&q, &refs) {
                proptest::prop_assert!(!covered);
                proptest::prop_assert!(q.contains(&x));
                proptest::prop_assert!(!refs.iter().any(|c| c.contains(&x)));
            }
            proptest::prop_assert_eq!(covers(&q, &refs), covered);
        }
    }
}
