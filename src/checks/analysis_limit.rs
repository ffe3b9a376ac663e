//! `analysis-limit`: the analysis ran out of its step budget, so some verdicts are "may".

use super::{CheckCx, CheckMeta};
use crate::analysis::STEP_BUDGET;
use crate::report::finding::{Finding, Severity};
use crate::source::Span;

/// Metadata.
pub const META: CheckMeta = CheckMeta {
    name: "analysis-limit",
    severity: Severity::Warning,
    summary: "the ruleset fragments the analysis beyond its budget; some verdicts are only \"may\"",
    doc: include_str!("../../docs/checks/analysis-limit.md"),
};

/// One warning when the model's budget ran out.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    if !cx.model.exhausted() {
        return Vec::new();
    }
    vec![
        Finding::new(
            META.name,
            META.severity,
            Span::new(cx.file.id, 0, 0),
            format!(
                "the analysis stopped after {STEP_BUDGET} steps: traffic it had not decided by then is reported as possibly permitted, never as denied"
            ),
        )
        .maybe()
        .with_help("split the ruleset, or report the file: real rulesets need far fewer steps"),
    ]
}
