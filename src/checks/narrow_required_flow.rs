//! `narrow-required-flow`: required flows hold only between some hosts of their zones.
//!
//! Without host addresses from the site file, a required flow counts as present when
//! some host of the source zone reaches some host of the destination zone. That is the
//! usual, good case — rules name the MIS host and the internal servers — but the verdict
//! then depends on MIS really being that host. This note names the hosts, once per zone
//! pair, so the reader can check them or pin them down in `[hosts]`.

use super::{CheckCx, CheckMeta};
use crate::analysis::{Field, Verdict};
use crate::graph::IntervalSet;
use crate::graph::sets::addr;
use crate::policy::Level;
use crate::report::finding::{Finding, Severity};
use std::collections::BTreeMap;

/// Metadata.
pub const META: CheckMeta = CheckMeta {
    name: "narrow-required-flow",
    severity: Severity::Note,
    summary: "required flows are permitted only between some hosts of their zones",
    doc: include_str!("../../docs/checks/narrow-required-flow.md"),
};

/// One note per zone pair whose required flows hold for fewer hosts than the zones have.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    let mut pairs: BTreeMap<
        (crate::graph::Zone, crate::graph::Zone),
        (IntervalSet, IntervalSet, Vec<&str>),
    > = BTreeMap::new();
    for flow in cx.flows.iter().filter(|f| f.level == Level::Required) {
        let Some(outcomes) = cx.pairs.get(&(flow.from, flow.to)) else {
            continue;
        };
        let wanted = super::flow_cube(cx.model, flow);
        let entry = pairs
            .entry((flow.from, flow.to))
            .or_insert_with(|| (IntervalSet::empty(), IntervalSet::empty(), Vec::new()));
        for o in outcomes.iter().filter(|o| {
            o.verdict == Verdict::Permit && o.may.is_none() && o.cube.intersects(&wanted)
        }) {
            entry.0 = entry.0.union(&o.cube.get(Field::SrcAddr));
            entry.1 = entry.1.union(&o.cube.get(Field::DstAddr));
            if !entry.2.contains(&flow.requirement.as_str()) {
                entry.2.push(&flow.requirement);
            }
        }
    }
    let space = cx.model.graph.family.space();
    // The firewall's own addresses are never forwarded to: a flow to all of 10.0.0.0/24
    // but the firewall's 10.0.0.1 covers the zone.
    let own = cx
        .model
        .graph
        .interfaces
        .iter()
        .fold(IntervalSet::empty(), |acc, i| acc.union(&i.own_addresses));
    pairs
        .into_iter()
        .filter(|(_, (src, _, reqs))| !src.is_empty() && !reqs.is_empty())
        .filter_map(|((from, to), (src, dst, _))| {
            // Carriers and mobile users are single hosts on the Internet by nature: only
            // the MIS side and the internal servers are worth naming.
            let narrow = |zone: crate::graph::Zone, set: &IntervalSet| {
                zone != crate::graph::Zone::Public
                    && cx.hosts.of(zone).is_none()
                    && !cx.zoning.zone_addresses(zone, &space).subtract(&own).is_subset(set)
            };
            if !narrow(from, &src) && !narrow(to, &dst) {
                return None;
            }
            // Shown with the firewall's own addresses filled in when that reads simpler
            // ("10.0.0.0/24" rather than "10.0.0.0, 10.0.0.2-10.0.0.255").
            let shown = |set: IntervalSet, zone| {
                let filled = set.union(&own.intersect(&cx.zoning.zone_addresses(zone, &space)));
                if filled.ranges().len() < set.ranges().len() { filled } else { set }
            };
            let (src, dst) = (shown(src, from), shown(dst, to));
            let span = cx.pairs.get(&(from, to))?.iter().find_map(|o| {
                (o.verdict == Verdict::Permit && o.cube.get(Field::SrcAddr).intersects(&src))
                    .then(|| cx.model.span_of(o.permitting()))
            })?;
            let mut f = Finding::new(
                META.name,
                META.severity,
                span,
                format!(
                    "the required flows from {from} to {to} are permitted only from {} to {}",
                    describe_addrs(&src),
                    describe_addrs(&dst)
                ),
            )
            .with_help(format!(
                "if the MIS host or the servers are elsewhere, those flows are missing; name them in the site file's [hosts] (`mis = [...]`, `{}`) to check exactly",
                if to == crate::graph::Zone::Internal || from == crate::graph::Zone::Internal {
                    "internal = [...]"
                } else {
                    "public = [...]"
                }
            ));
            f.from_zone = Some(from);
            f.to_zone = Some(to);
            Some(f)
        })
        .collect()
}

/// `192.168.10.5`, `10.0.0.0/24`, `10.0.0.1-10.0.0.9`, or a count when there are many.
pub fn describe_addrs(set: &IntervalSet) -> String {
    let parts: Vec<String> = set
        .ranges()
        .iter()
        .take(4)
        .map(|&(lo, hi)| range_text(lo, hi))
        .collect();
    match set.ranges().len() {
        n if n > 4 => format!("{} and {} more ranges", parts.join(", "), n - 4),
        _ => parts.join(", "),
    }
}

fn range_text(lo: u128, hi: u128) -> String {
    if lo == hi {
        return addr::to_ip(lo).to_string();
    }
    let size = hi - lo + 1;
    let v4 = lo >> 32 == addr::V4_BASE >> 32;
    let bits = if v4 { 32 } else { 128 };
    if size.is_power_of_two() && lo.is_multiple_of(size) {
        let prefix = bits - size.trailing_zeros();
        return format!("{}/{prefix}", addr::to_ip(lo));
    }
    format!("{}-{}", addr::to_ip(lo), addr::to_ip(hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::zones::parse_network;

    #[test]
    fn addresses_read_as_hosts_prefixes_and_ranges() {
        let set = |t: &str| parse_network(t).expect("valid");
        assert_eq!(describe_addrs(&set("192.168.10.5")), "192.168.10.5");
        assert_eq!(describe_addrs(&set("10.0.0.0/24")), "10.0.0.0/24");
        assert_eq!(
            describe_addrs(&set("10.0.0.1-10.0.0.9")),
            "10.0.0.1-10.0.0.9"
        );
        let many = (0..6).fold(IntervalSet::empty(), |acc, i| {
            acc.union(&set(&format!("10.0.{}.1", i * 2)))
        });
        assert!(describe_addrs(&many).ends_with("and 2 more ranges"));
    }
}
