//! `unmapped-interface`: interfaces in no zone, whose traffic is therefore not checked.

use super::{CheckCx, CheckMeta};
use crate::report::finding::{Finding, Severity};
use crate::source::Span;

/// Metadata.
pub const META: CheckMeta = CheckMeta {
    name: "unmapped-interface",
    severity: Severity::Note,
    summary: "interfaces that could not be placed in a zone; their traffic is not checked",
    doc: include_str!("../../docs/checks/unmapped-interface.md"),
};

/// One note per file listing the interfaces without a zone.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    let names = &cx.zoning.unmapped;
    if names.is_empty() {
        return Vec::new();
    }
    let span = names
        .iter()
        .find_map(|n| cx.model.graph.interface(n).and_then(|i| i.span))
        .unwrap_or(Span::new(cx.file.id, 0, 0));
    let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    let example = names.first().map_or("eth0", String::as_str);
    vec![
        Finding::new(
            META.name,
            META.severity,
            span,
            format!(
                "{} {} in no zone, so traffic through {} not checked",
                if names.len() == 1 {
                    "interface"
                } else {
                    "interfaces"
                },
                list.join(", "),
                if names.len() == 1 { "it is" } else { "them is" },
            ),
        )
        .with_help(format!(
            "map interfaces to zones, e.g. `--zone {example}=perimeter`, or in the site file"
        )),
    ]
}
