//! `host-firewall`: the config filters only the machine's own traffic, and is read as
//! the firewall of the MIS host itself.
//!
//! An iptables dump whose FORWARD chain has no rules while INPUT or OUTPUT have some
//! protects the machine it runs on, not a network. KB 294297's flows then run to and
//! from that machine: mislint takes it to be the MIS host in the perimeter network and
//! checks what it sends (perimeter → internal, perimeter → public) in OUTPUT and what it
//! receives in INPUT. The other zones are known by address (`--zone 10.0.0.0/8=internal`,
//! `--zone 0.0.0.0/0=public` for "the rest") or by interface.

use super::{CheckCx, CheckMeta};
use crate::report::finding::{Finding, Severity};

/// Metadata.
pub const META: CheckMeta = CheckMeta {
    name: "host-firewall",
    severity: Severity::Note,
    summary: "the config is a host firewall and is checked as the MIS host's own",
    doc: include_str!("../../docs/checks/host-firewall.md"),
};

/// One note saying how the dump is read.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    if !cx.host {
        return Vec::new();
    }
    let graph = cx.model.graph;
    let span = graph
        .chains
        .iter()
        .find(|c| c.name == "FORWARD")
        .or_else(|| graph.chains.iter().find(|c| c.name == "INPUT"))
        .map_or(crate::source::Span::new(cx.file.id, 0, 0), |c| c.span);
    vec![
        Finding::new(
            META.name,
            META.severity,
            span,
            "FORWARD has no rules and INPUT/OUTPUT do: read as the host firewall of the MIS server itself — what it sends is checked in OUTPUT, what it receives in INPUT",
        )
        .with_help(
            "place the other zones by address, e.g. `--zone 10.0.0.0/8=internal --zone 0.0.0.0/0=public`",
        ),
    ]
}
