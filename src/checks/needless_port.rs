//! `needless-port`: traffic permitted across a boundary that no active scenario needs.

use super::{
    CheckCx, CheckMeta, Excess, MIS_PAIRS, describe_protocols, excess_permits, flow_cube,
    port_ranges,
};
use crate::analysis::Cube;
use crate::graph::Zone;
use crate::graph::sets::proto;
use crate::report::finding::{Finding, Severity};

/// Metadata.
pub const META: CheckMeta = CheckMeta {
    name: "needless-port",
    severity: Severity::Warning,
    summary: "a rule permits traffic to or from the MIS network that no selected scenario needs",
    doc: include_str!("../../docs/checks/needless-port.md"),
};

/// Reports, once per permitting rule and zone pair, the traffic it opens needlessly. In
/// IPSec mode the internal boundary belongs to `ipsec-violation` instead.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    MIS_PAIRS
        .iter()
        .filter(|(from, to)| !(cx.settings.ipsec && is_internal_boundary(*from, *to)))
        .flat_map(|&(from, to)| {
            let wanted = wanted_cubes(cx, from, to);
            excess_permits(cx, from, to, &wanted)
                .into_iter()
                .map(|e| excess_finding(cx, &e, META, "needless"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// True for the perimeter ↔ internal pairs.
pub fn is_internal_boundary(from: Zone, to: Zone) -> bool {
    matches!(
        (from, to),
        (Zone::Perimeter, Zone::Internal) | (Zone::Internal, Zone::Perimeter)
    )
}

/// The packets the active policy requires or allows from `from` to `to`.
pub fn wanted_cubes(cx: &CheckCx, from: Zone, to: Zone) -> Vec<Cube> {
    cx.flows
        .iter()
        .filter(|f| f.from == from && f.to == to)
        .map(|f| flow_cube(cx.model, f))
        .collect()
}

/// A finding for one rule's excess traffic; shared with `ipsec-violation`.
pub fn excess_finding(cx: &CheckCx, e: &Excess, meta: CheckMeta, adjective: &str) -> Finding {
    let what = describe_protocols(&e.protocols);
    let why = if adjective == "needless" {
        "which no selected scenario requires".to_string()
    } else {
        "but in IPSec mode only ESP, AH and ISAKMP (udp/500) may cross, plus Kerberos".to_string()
    };
    let verb = if e.only_may { "may permit" } else { "permits" };
    let message = format!("{verb} `{what}` from {} to {}, {why}", e.from, e.to);
    let mut f = Finding::new(
        meta.name,
        meta.severity,
        cx.model.span_of(e.decider),
        message,
    )
    .with_label(format!(
        "{} lets {adjective} traffic through",
        cx.model.describe(e.decider)
    ))
    .with_help(if adjective == "needless" {
        "narrow this rule to the ports the scenarios need, or remove it".to_string()
    } else {
        "limit this boundary to esp, ah and udp/500 (and Kerberos if needed)".to_string()
    });
    if e.only_may {
        f = f.maybe();
        if let Some(m) = e.may_rule
            && m != e.decider
        {
            f = f.with_related(
                cx.model.span_of(m),
                "mislint does not model this construct, so the traffic may or may not pass",
            );
        }
    }
    if let Some((nat, _)) = e.nat.as_deref().filter(|(n, _)| *n != e.decider) {
        f = f.with_related(
            cx.model.span_of(*nat),
            "destination NAT sends this traffic here",
        );
    }
    f.from_zone = Some(e.from);
    f.to_zone = Some(e.to);
    if e.protocols.len() == 1
        && let Some((&p, ports)) = e.protocols.iter().next()
    {
        f.protocol = Some(p);
        if proto::has_ports(p) {
            f.ports = port_ranges(ports);
        }
    }
    f.kb = Some(kb_sentence(cx, e, adjective).to_string());
    f.witness = Some(match e.nat.as_deref() {
        // The packet as the client sends it, before the rewrite.
        Some((_, sent)) => cx.model.witness(sent),
        None => cx.model.witness(&e.sample),
    });
    f
}

/// The KB sentence that makes this traffic needless or forbidden.
fn kb_sentence(cx: &CheckCx, e: &Excess, adjective: &str) -> &'static str {
    if adjective != "needless" {
        return "if you are using IPSec to secure traffic between Mobile Information Server and the internal network, allow only the following through the firewall for inbound and outbound traffic";
    }
    let dynamic_rpc = e
        .protocols
        .get(&proto::TCP)
        .is_some_and(|p| p.intersects(&crate::graph::IntervalSet::range(1024, 65_535)));
    if cx.settings.static_rpc.is_some() && dynamic_rpc && is_internal_boundary(e.from, e.to) {
        "When you set Exchange Server 5.5 RPC ports statically, you can avoid the need for all ports higher than 1024 for dynamic RPC."
    } else if is_internal_boundary(e.from, e.to) {
        "open the following ports on the router between the perimeter network and the internal network"
    } else {
        "On the external firewall between the perimeter network and the public network, the following ports must be available"
    }
}
