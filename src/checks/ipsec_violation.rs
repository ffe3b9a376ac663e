//! `ipsec-violation`: in IPSec mode, anything but ESP, AH, ISAKMP (and Kerberos) crosses
//! the internal firewall.

use super::needless_port::{excess_finding, is_internal_boundary, wanted_cubes};
use super::{CheckCx, CheckMeta, MIS_PAIRS, excess_permits};
use crate::report::finding::{Finding, Severity};

/// Metadata.
pub const META: CheckMeta = CheckMeta {
    name: "ipsec-violation",
    severity: Severity::Error,
    summary: "in IPSec mode, traffic other than ESP, AH and ISAKMP crosses the internal firewall",
    doc: include_str!("../../docs/checks/ipsec-violation.md"),
};

/// Reports each rule that lets non-IPSec traffic across the internal boundary, both ways.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    if !cx.settings.ipsec {
        return Vec::new();
    }
    MIS_PAIRS
        .iter()
        .filter(|(from, to)| is_internal_boundary(*from, *to))
        .flat_map(|&(from, to)| {
            // The policy's IPSec-mode flows (esp, ah, isakmp, and Kerberos as allowed)
            // are exactly what may cross.
            let wanted = wanted_cubes(cx, from, to);
            excess_permits(cx, from, to, &wanted)
                .into_iter()
                .map(|e| excess_finding(cx, &e, META, "non-IPSec"))
                .collect::<Vec<_>>()
        })
        .collect()
}
