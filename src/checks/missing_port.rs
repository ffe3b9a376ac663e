//! `missing-port`: a flow an active scenario requires is not permitted.

use super::{CheckCx, CheckMeta, describe_ports, flow_cube, port_ranges, proto_name};
use crate::analysis::{Decider, Field, Outcome, Verdict};
use crate::graph::sets::PORT_MAX;
use crate::graph::{IntervalSet, Zone};
use crate::policy::{ActiveFlow, Level};
use crate::report::finding::{Finding, Severity};
use foldhash::HashMap;
use std::collections::BTreeMap;

/// Metadata.
pub const META: CheckMeta = CheckMeta {
    name: "missing-port",
    severity: Severity::Error,
    summary: "a port that a selected KB 294297 scenario needs is not permitted",
    doc: include_str!("../../docs/checks/missing-port.md"),
};

/// Reports each required flow some of whose ports no packet of the zone pair may use.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    let mut permitted = PermittedPorts::default();
    cx.flows
        .iter()
        .filter(|f| f.level == Level::Required)
        .flat_map(|flow| check_flow(cx, flow, &mut permitted))
        .collect()
}

/// [`permitted_ports`] of each zone pair, protocol and portedness asked so far: a
/// scenario requires a dozen tcp ports of one pair, and each answer reads all of the
/// pair's outcomes.
type PermittedPorts = HashMap<(Zone, Zone, u8, bool), (IntervalSet, IntervalSet)>;

/// The ports of `flow` that some packet of the pair gets through, definitely and maybe.
/// A protocol without ports counts as port 0..=65535 at once: any permitted packet will do.
fn permitted_ports(outcomes: &[Outcome], flow: &ActiveFlow) -> (IntervalSet, IntervalSet) {
    let p = u128::from(flow.protocol);
    let permits = outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::Permit && o.cube.get(Field::Proto).contains(p));
    let (definite, maybe): (Vec<&Outcome>, Vec<&Outcome>) = permits.partition(|o| o.may.is_none());
    let union = |part: Vec<&Outcome>| match flow.ports {
        Some(_) => {
            let ports: Vec<_> = part.iter().map(|o| o.cube.get(Field::DstPort)).collect();
            IntervalSet::union_all(ports.iter().map(|p| &**p))
        }
        None if part.is_empty() => IntervalSet::empty(),
        None => IntervalSet::range(0, PORT_MAX),
    };
    (union(definite), union(maybe))
}

fn check_flow(cx: &CheckCx, flow: &ActiveFlow, permitted: &mut PermittedPorts) -> Vec<Finding> {
    let Some(outcomes) = cx.pairs.get(&(flow.from, flow.to)) else {
        return Vec::new();
    };
    let wanted = flow
        .ports
        .clone()
        .unwrap_or_else(|| IntervalSet::range(0, PORT_MAX));
    let key = (flow.from, flow.to, flow.protocol, flow.ports.is_some());
    let (definite, maybe) = permitted
        .entry(key)
        .or_insert_with(|| permitted_ports(outcomes, flow));
    let missing = wanted.subtract(definite);
    if missing.is_empty() {
        return Vec::new();
    }
    blame(cx, outcomes, flow, &missing)
        .into_iter()
        .map(|(decider, ports)| {
            let may_ports = ports.intersect(maybe);
            build_finding(cx, outcomes, flow, decider, &ports, !may_ports.is_empty())
        })
        .collect()
}

/// Which deny decides which missing ports. Explicit rules are blamed before defaults (a
/// REJECT above the permit is the story, not the policy behind it), earlier lines first.
fn blame(
    cx: &CheckCx,
    outcomes: &[Outcome],
    flow: &ActiveFlow,
    missing: &IntervalSet,
) -> BTreeMap<Decider, IntervalSet> {
    let p = u128::from(flow.protocol);
    // Only outcomes holding a missing port can be blamed for one: on a Kubernetes node
    // that leaves a handful of the thousands to sort.
    let mut denies: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.cube.get(Field::Proto).contains(p))
        .filter(|o| flow.ports.is_none() || o.cube.get(Field::DstPort).intersects(missing))
        .collect();
    denies.sort_by_key(|o| {
        let d = blamed(o);
        (
            o.verdict == Verdict::Permit,
            d.rule.is_none(),
            cx.model.span_of(d).start,
        )
    });
    let mut left = missing.clone();
    let mut out: BTreeMap<Decider, IntervalSet> = BTreeMap::new();
    for o in denies {
        let ports = match flow.ports {
            Some(_) => o.cube.get(Field::DstPort).intersect(&left),
            None => left.clone(),
        };
        if ports.is_empty() {
            continue;
        }
        left = left.subtract(&ports);
        let slot = out.entry(blamed(o)).or_default();
        *slot = slot.union(&ports);
    }
    out
}

/// The rule to point at for a part that is not definitely permitted: the deny, or for a
/// "may" permit the unmodelled rule it depends on.
fn blamed(o: &Outcome) -> Decider {
    match (o.verdict, o.may) {
        (Verdict::Permit, Some(m)) => m,
        _ => o.decided_by,
    }
}

fn build_finding(
    cx: &CheckCx,
    outcomes: &[Outcome],
    flow: &ActiveFlow,
    decider: Decider,
    ports: &IntervalSet,
    may: bool,
) -> Finding {
    let what = match &flow.ports {
        Some(_) => format!("{}/{}", proto_name(flow.protocol), describe_ports(ports)),
        None => proto_name(flow.protocol),
    };
    let scenario = flow
        .scenario
        .as_deref()
        .map_or(String::new(), |s| format!(" for `{s}`"));
    let verb = if may { "may be blocked" } else { "is blocked" };
    let message = format!(
        "`{what}` from {} to {} {verb}, but KB 294297 requires it ({}{scenario})",
        flow.from, flow.to, flow.requirement
    );
    let label = if may {
        format!("mislint cannot tell whether this rule lets `{what}` through")
    } else {
        format!(
            "{} decides `{what}` {} → {}",
            cx.model.describe(decider),
            flow.from,
            flow.to
        )
    };
    let mut sample = flow_cube(cx.model, flow);
    if flow.ports.is_some() {
        sample.restrict(Field::DstPort, ports);
    }
    let witness = outcomes
        .iter()
        .find(|o| blamed(o) == decider && o.cube.intersects(&sample))
        .map(|o| cx.model.witness(&o.cube.intersect(&sample)));
    let mut f = Finding::new(
        META.name,
        if may {
            Severity::Warning
        } else {
            META.severity
        },
        cx.model.span_of(decider),
        message,
    )
    .with_label(label)
    .with_help(format!(
        "permit `{what}` from the {} network to the {} network ahead of this line",
        flow.from, flow.to
    ));
    if may {
        f = f.maybe();
    }
    if let Some(w) = &witness
        && let Some(permit) = shadowed_permit(cx, decider, w)
    {
        f = f.with_related(permit, "this permit is never reached for that traffic");
    }
    if let Some((nat, _)) = outcomes
        .iter()
        .find(|o| blamed(o) == decider && o.cube.intersects(&sample))
        .and_then(|o| o.nat.as_deref())
    {
        f = f.with_related(
            cx.model.span_of(*nat),
            "destination NAT sends this traffic here",
        );
    }
    f = mention_misread_literals(cx, flow, ports, f);
    f.requirement = Some(flow.requirement.clone());
    f.scenario = flow.scenario.clone();
    f.from_zone = Some(flow.from);
    f.to_zone = Some(flow.to);
    f.protocol = Some(flow.protocol);
    f.ports = if flow.ports.is_some() {
        port_ranges(ports)
    } else {
        Vec::new()
    };
    f.witness = witness;
    f.kb = Some(flow.kb.clone());
    f
}

/// A later accepting rule in the same chain that the witness packet would match, had the
/// deciding rule not come first.
fn shadowed_permit(
    cx: &CheckCx,
    decider: Decider,
    w: &crate::report::finding::Witness,
) -> Option<crate::source::Span> {
    let index = decider.rule?;
    let point = cx.model.witness_cube(w);
    cx.model
        .accepting_rules_after(decider.chain, index, &point)
        .map(|d| cx.model.span_of(d))
}

/// Port names in the config that a reader takes for this service but that mean another
/// port on the device — ASA's `kerberos` is 750, while the KB needs 88 — are named in
/// the finding, at the name.
fn mention_misread_literals(
    cx: &CheckCx,
    flow: &ActiveFlow,
    missing: &IntervalSet,
    mut f: Finding,
) -> Finding {
    let Some(wanted) = &flow.ports else {
        return f;
    };
    let misread: Vec<_> = cx
        .model
        .graph
        .port_literals
        .iter()
        .filter(|l| flow.names.iter().any(|n| n.eq_ignore_ascii_case(&l.name)))
        .filter(|l| !wanted.contains(u128::from(l.port)))
        .collect();
    let Some(first) = misread.first() else {
        return f;
    };
    f.message.push_str(&format!(
        "; `{}` is port {} on this device, not {}",
        first.name,
        first.port,
        describe_ports(missing)
    ));
    for l in misread {
        f = f.with_related(
            l.span,
            format!(
                "`{}` means port {} here, not {}",
                l.name,
                l.port,
                describe_ports(missing)
            ),
        );
    }
    f
}
