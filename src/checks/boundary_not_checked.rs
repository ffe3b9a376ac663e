//! `boundary-not-checked`: the firewall does not stand on a boundary that active
//! requirements concern, so they are not applicable here.

use super::{CheckCx, CheckMeta};
use crate::graph::Zone;
use crate::policy::Level;
use crate::report::finding::{Finding, Severity};
use crate::source::Span;
use std::collections::BTreeSet;

/// Metadata.
pub const META: CheckMeta = CheckMeta {
    name: "boundary-not-checked",
    severity: Severity::Note,
    summary: "requirements of a boundary this firewall does not stand on are not checked",
    doc: include_str!("../../docs/checks/boundary-not-checked.md"),
};

/// One note per absent zone, naming the requirements that therefore do not apply.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    let mut by_zone: Vec<(Zone, BTreeSet<&str>)> = Vec::new();
    for flow in cx.flows.iter().filter(|f| f.level == Level::Required) {
        for zone in [flow.from, flow.to] {
            if cx.zoning.has_zone(zone) {
                continue;
            }
            match by_zone.iter_mut().find(|(z, _)| *z == zone) {
                Some((_, ids)) => {
                    ids.insert(flow.requirement.as_str());
                }
                None => by_zone.push((zone, BTreeSet::from([flow.requirement.as_str()]))),
            }
        }
    }
    by_zone
        .into_iter()
        .map(|(zone, ids)| {
            let ids: Vec<&str> = ids.into_iter().collect();
            let mut f = Finding::new(
                META.name,
                META.severity,
                Span::new(cx.file.id, 0, 0),
                format!(
                    "no interface or address of this config is in the {zone} zone, so {} not checked here",
                    list_requirements(&ids)
                ),
            )
            .with_help(format!(
                "if this firewall does stand on the {zone} network, map its interface: `--zone IFACE={zone}`"
            ));
            f.to_zone = Some(zone);
            f
        })
        .collect()
}

fn list_requirements(ids: &[&str]) -> String {
    let names: Vec<String> = ids.iter().map(|i| format!("`{i}`")).collect();
    match names.len() {
        1 => format!("requirement {} is", names[0]),
        _ => format!("requirements {} are", names.join(", ")),
    }
}
