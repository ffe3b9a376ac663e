//! Suppressions: between the checks and the renderers, findings the user has accepted
//! with a reason are marked suppressed (kept for SARIF and JSON, hidden from the human
//! output and from the exit status).
//!
//! Two places say so. Inline, where engineers already write notes: an iptables
//! `-m comment --comment "mislint: allow needless-port: <reason>"`, the ASA `remark`
//! directly above the entry, a pfSense rule's `<descr>` — each lowered into the rule's
//! comment. And the site file's `[[suppress]]` entries. A suppression without a reason,
//! or one that suppresses nothing, is itself reported.

use crate::checks::CheckMeta;
use crate::config::site::Site;
use crate::graph::RuleGraph;
use crate::report::finding::{Finding, Severity};
use crate::source::{LineIndex, SourceFile, Span};
use std::collections::BTreeMap;

/// Metadata of the finding for a suppression that matches nothing.
pub const UNUSED: CheckMeta = CheckMeta {
    name: "unused-suppression",
    severity: Severity::Warning,
    summary: "a suppression that suppresses nothing",
    doc: include_str!("../docs/checks/unused-suppression.md"),
};

/// Metadata of the finding for a suppression without a reason.
pub const INVALID: CheckMeta = CheckMeta {
    name: "invalid-suppression",
    severity: Severity::Warning,
    summary: "an inline suppression that names no reason or no finding kind",
    doc: include_str!("../docs/checks/invalid-suppression.md"),
};

/// An inline directive: `mislint: allow RULE[,RULE…]: reason`.
#[derive(Debug, PartialEq, Eq)]
struct Directive {
    rules: Vec<String>,
    reason: String,
}

/// Reads a directive from a rule comment; `Err` for a malformed one.
fn parse_directive(comment: &str) -> Option<Result<Directive, String>> {
    let rest = comment.get(after_marker(comment)?..)?.trim_start();
    let Some(rest) = rest.strip_prefix("allow") else {
        return Some(Err("write `mislint: allow RULE: reason`".into()));
    };
    let Some((rules, reason)) = rest.split_once(':') else {
        return Some(Err(
            "a suppression needs a reason after the rule name: `mislint: allow RULE: reason`"
                .into(),
        ));
    };
    let rules: Vec<String> = rules
        .split(',')
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect();
    if rules.is_empty() {
        return Some(Err(
            "name the finding kind to allow, e.g. `needless-port`".into()
        ));
    }
    if let Some(bad) = rules.iter().find(|r| crate::checks::meta(r).is_none()) {
        return Some(Err(format!(
            "`{bad}` is not a finding kind mislint reports"
        )));
    }
    let reason = reason.trim().to_string();
    if reason.is_empty() {
        return Some(Err(
            "a suppression needs a reason after the rule name".into()
        ));
    }
    Some(Ok(Directive { rules, reason }))
}

/// Findings that suppressions may silence: not the ones about the config being broken
/// or about suppressions themselves.
fn suppressible(f: &Finding) -> bool {
    ![crate::parse::PARSE_ERROR, UNUSED.name, INVALID.name].contains(&f.rule)
}

/// Where the text after the first `mislint:` (in any case) starts. Every rule comment
/// of a file is asked, 100,000 of them in a big pfSense backup, and few hold a colon:
/// looking only before each colon spares lowercasing a copy of each.
fn after_marker(comment: &str) -> Option<usize> {
    const NAME: &[u8] = b"mislint";
    let bytes = comment.as_bytes();
    memchr::memchr_iter(b':', bytes)
        .find(|&colon| {
            colon
                .checked_sub(NAME.len())
                .and_then(|start| bytes.get(start..colon))
                .is_some_and(|name| name.eq_ignore_ascii_case(NAME))
        })
        .map(|colon| colon + 1)
}

/// True if a rule comment of `graph` holds a directive naming one of `kinds`: whether
/// such a directive counts as used depends on the findings of those kinds.
pub fn inline_names_any(graph: &RuleGraph, kinds: &[&str]) -> bool {
    graph
        .rules()
        .filter_map(|(_, _, rule)| rule.comment.as_deref())
        .filter_map(parse_directive)
        .any(|d| d.is_ok_and(|d| d.rules.iter().any(|r| kinds.contains(&r.as_str()))))
}

/// Applies the inline directives of `graph`'s rule comments to `findings`, adding
/// findings for malformed and unused directives.
pub fn apply_inline(findings: &mut Vec<Finding>, graph: &RuleGraph) {
    let mut comments = graph
        .rules()
        .filter_map(|(_, _, rule)| rule.comment.as_deref());
    if !comments.any(|c| after_marker(c).is_some()) {
        // Nearly every file: no directive, nothing to apply or report.
        return;
    }
    let mut directives: BTreeMap<Span, &str> = BTreeMap::new();
    for (_, _, rule) in graph.rules() {
        if let Some(c) = rule.comment.as_deref() {
            directives.entry(rule.span).or_insert(c);
        }
    }
    let mut extra = Vec::new();
    for (span, comment) in directives {
        match parse_directive(comment) {
            None => {}
            Some(Err(why)) => extra.push(
                Finding::new(
                    INVALID.name,
                    INVALID.severity,
                    span,
                    format!("malformed suppression: {why}"),
                )
                .with_label("this comment looks like a mislint suppression"),
            ),
            Some(Ok(d)) => {
                let mut used = false;
                for f in findings.iter_mut().filter(|f| {
                    f.primary.span == span && suppressible(f) && d.rules.iter().any(|r| r == f.rule)
                }) {
                    f.suppressed = Some(d.reason.clone());
                    f.suppressed_inline = true;
                    used = true;
                }
                if !used {
                    extra.push(
                        Finding::new(
                            UNUSED.name,
                            UNUSED.severity,
                            span,
                            format!(
                                "suppression of `{}` matches no finding on this rule",
                                d.rules.join(", ")
                            ),
                        )
                        .with_help(
                            "remove the suppression, or move it to the rule the finding points at",
                        ),
                    );
                }
            }
        }
    }
    findings.extend(extra);
}

/// Applies a site file's suppressions to one file's findings; returns the indexes of the
/// suppressions that matched something.
pub fn apply_site(findings: &mut [Finding], site: &Site, file: &SourceFile) -> Vec<usize> {
    let index = LineIndex::new(&file.text);
    let abs = file
        .path
        .canonicalize()
        .unwrap_or_else(|_| file.path.clone());
    let rel = site.relative(&abs);
    let mut used = Vec::new();
    for (i, s) in site.suppress.iter().enumerate() {
        if s.file.as_ref().is_some_and(|g| !g.is_match(rel)) {
            continue;
        }
        for f in findings
            .iter_mut()
            .filter(|f| f.rule == s.rule && suppressible(f))
        {
            if s.requirement.is_some() && f.requirement != s.requirement {
                continue;
            }
            if let Some(line) = s.line
                && index.line_col(&file.text, f.primary.span.start).0 != line
            {
                continue;
            }
            f.suppressed = Some(s.reason.clone());
            if !used.contains(&i) {
                used.push(i);
            }
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_syntax() {
        assert_eq!(
            parse_directive("SMTP relay - mislint: allow needless-port: audited 2026-10"),
            Some(Ok(Directive {
                rules: vec!["needless-port".into()],
                reason: "audited 2026-10".into()
            }))
        );
        assert_eq!(parse_directive("plain comment"), None);
        assert!(matches!(
            parse_directive("mislint: allow needless-port"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse_directive("mislint: allow needless-port:   "),
            Some(Err(_))
        ));
        assert!(matches!(
            parse_directive("mislint: allow no-such-rule: x"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse_directive("mislint: allow needless-port, ipsec-violation: both are known"),
            Some(Ok(d)) if d.rules.len() == 2
        ));
    }

    #[test]
    fn the_marker_is_found_in_any_case_after_other_colons() {
        for (comment, after) in [
            ("MisLint: allow x", Some(8)),
            ("note: see ticket 12; MISLINT:allow", Some(29)),
            ("a:b mislint :x", None),
            ("slint:", None),
            (":mislint", None),
            ("ünïcode mislint:", Some("ünïcode mislint:".len())),
        ] {
            assert_eq!(after_marker(comment), after, "{comment}");
            assert_eq!(
                after,
                comment
                    .to_ascii_lowercase()
                    .find("mislint:")
                    .map(|at| at + "mislint:".len()),
                "{comment}"
            );
        }
    }
}
