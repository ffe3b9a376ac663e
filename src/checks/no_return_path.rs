//! `no-return-path`: a required flow is let through, but its replies are dropped.
//!
//! Stateful devices (ASA, pfSense) pass the replies of a permitted connection by
//! themselves. iptables does only what its rules say: the replies cross the FORWARD chain
//! in the other direction, in conntrack state ESTABLISHED, and need a rule that accepts
//! them — usually `-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`.

use super::{CheckCx, CheckMeta, describe_protocols, flow_cube, port_ranges};
use crate::analysis::{Cube, Decider, Field, Verdict};
use crate::graph::sets::ct;
use crate::graph::{IntervalSet, Zone};
use crate::policy::{ActiveFlow, Level};
use crate::report::finding::{Finding, Severity};
use std::collections::BTreeMap;

/// Metadata.
pub const META: CheckMeta = CheckMeta {
    name: "no-return-path",
    severity: Severity::Error,
    summary: "a required flow is permitted but the firewall drops its replies",
    doc: include_str!("../../docs/checks/no-return-path.md"),
};

/// Reports, once per dropping rule and zone pair, the required flows whose replies it
/// drops.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    if cx.model.graph.stateful {
        return Vec::new();
    }
    let mut groups: BTreeMap<(Decider, Zone, Zone), Group> = BTreeMap::new();
    for flow in cx.flows.iter().filter(|f| f.level == Level::Required) {
        collect_dropped_replies(cx, flow, &mut groups);
    }
    groups
        .into_iter()
        .map(|((decider, from, to), g)| build_finding(cx, decider, from, to, &g))
        .collect()
}

/// The replies one rule drops for one zone pair.
struct Group {
    /// Reply source ports (the services' ports) per protocol.
    protocols: BTreeMap<u8, IntervalSet>,
    /// Requirements affected, in policy order.
    requirements: Vec<String>,
    /// One dropped reply piece, for the witness.
    sample: Cube,
    /// The permit of the forward connection.
    permit: Decider,
    /// Some replies depend on unmodelled constructs.
    may: bool,
    /// Other replies of the same flows do get through.
    partial: bool,
    /// The KB sentence of the first requirement.
    kb: String,
}

/// The replies to `forward`: addresses, ports and interfaces swapped, state ESTABLISHED.
pub fn reply_cube(forward: &Cube) -> Cube {
    let mut r = forward.clone();
    r.swap(Field::SrcAddr, Field::DstAddr);
    r.swap(Field::SrcPort, Field::DstPort);
    r.swap(Field::InIface, Field::OutIface);
    r.set(Field::State, ct::replies_of(&forward.get(Field::State)));
    r
}

/// The replies of one required flow, evaluated once: the reply of the hull of its
/// permitted parts (per field, the union), so a large ruleset costs one walk, not one per
/// permitted part. A dropped reply counts only where it answers a packet that really is
/// permitted: each dropped part is swapped back and cut with every permitted part.
fn collect_dropped_replies(
    cx: &CheckCx,
    flow: &ActiveFlow,
    groups: &mut BTreeMap<(Decider, Zone, Zone), Group>,
) {
    let Some(outcomes) = cx.pairs.get(&(flow.from, flow.to)) else {
        return;
    };
    let wanted = flow_cube(cx.model, flow);
    let permitted: Vec<(Cube, Decider)> = outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::Permit && o.may.is_none() && o.cube.intersects(&wanted))
        .map(|o| (o.cube.intersect(&wanted), o.permitting()))
        .collect();
    let Some(hull) = hull(permitted.iter().map(|(c, _)| c)) else {
        return;
    };
    let mut passes = false;
    let mut keys = Vec::new();
    for r in cx.evaluate(flow.to, flow.from, &reply_cube(&hull)) {
        if r.verdict == Verdict::Permit {
            passes = true;
            continue;
        }
        let answered = reply_cube(&r.cube);
        for (forward, permit) in &permitted {
            // States differ by direction; the reply's carries the forward's NAT flags.
            let mut back = answered.clone();
            back.set(Field::State, forward.get(Field::State).into_owned());
            if !back.intersects(forward) {
                continue;
            }
            let part = back.intersect(forward);
            let key = (r.decided_by, flow.from, flow.to);
            let g = groups.entry(key).or_insert_with(|| Group {
                protocols: BTreeMap::new(),
                requirements: Vec::new(),
                sample: reply_cube(&part),
                permit: *permit,
                may: false,
                partial: false,
                kb: flow.kb.clone(),
            });
            let ports = g.protocols.entry(flow.protocol).or_default();
            *ports = ports.union(&part.get(Field::DstPort));
            if !g.requirements.contains(&flow.requirement) {
                g.requirements.push(flow.requirement.clone());
            }
            g.may |= r.may.is_some();
            keys.push(key);
        }
    }
    if passes {
        for k in keys {
            if let Some(g) = groups.get_mut(&k) {
                g.partial = true;
            }
        }
    }
}

/// The smallest cube holding all of `cubes`, field by field.
fn hull<'c>(mut cubes: impl Iterator<Item = &'c Cube>) -> Option<Cube> {
    let first = cubes.next()?.clone();
    Some(cubes.fold(first, |h, c| h.hull(c)))
}

fn build_finding(cx: &CheckCx, decider: Decider, from: Zone, to: Zone, g: &Group) -> Finding {
    let what = describe_protocols(&g.protocols);
    let some = if g.partial { "some " } else { "" };
    let mut f = Finding::new(
        META.name,
        META.severity,
        cx.model.span_of(decider),
        format!(
            "{some}replies of `{what}` from {from} to {to} are dropped here, so the required connections cannot work ({})",
            g.requirements.join(", ")
        ),
    )
    .with_label(format!("{} drops the replies", cx.model.describe(decider)))
    .with_related(cx.model.span_of(g.permit), "the connection itself is permitted here")
    .with_help(
        "accept the replies, e.g. `-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT` near the top of FORWARD",
    );
    if g.may {
        f = f.maybe();
    }
    if let [only] = g.requirements.as_slice() {
        f.requirement = Some(only.clone());
    }
    f.from_zone = Some(from);
    f.to_zone = Some(to);
    if let Some((&p, ports)) = g.protocols.iter().next().filter(|_| g.protocols.len() == 1) {
        f.protocol = Some(p);
        if crate::graph::sets::proto::has_ports(p) {
            f.ports = port_ranges(ports);
        }
    }
    f.witness = Some(cx.model.witness_reply(&g.sample));
    f.kb = Some(g.kb.clone());
    f
}
