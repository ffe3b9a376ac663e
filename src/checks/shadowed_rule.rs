//! `shadowed-rule`: a rule no packet reaches, because earlier rules of its chain decide
//! every packet it matches (Batfish calls this filter line reachability).
//!
//! The analysis is [`super::reach`]; this file groups its results by source line (a
//! vendor entry lowered into several rules is dead only if all of them are) and words
//! the findings: the dead line underlined, the earlier lines that decide its packets as
//! related labels.

use super::reach::{self, Reach, RuleResult};
use super::{CheckCx, CheckMeta, HygieneNotes};
use crate::report::finding::{Finding, Severity};
use crate::source::Span;

/// Metadata.
pub const META: CheckMeta = CheckMeta {
    name: "shadowed-rule",
    severity: Severity::Note,
    summary: "a rule no packet reaches because earlier rules decide all it matches",
    doc: include_str!("../../docs/checks/shadowed-rule.md"),
};

/// Related labels shown at most; the message counts the rest.
const MAX_RELATED: usize = 3;

/// One finding per dead source line, plus one note if some rules were not analysed.
pub fn run(cx: &CheckCx) -> Vec<Finding> {
    let results = cx.reach();
    let mut out = HygieneNotes::new(META);
    let mut cut = Vec::new();
    for group in by_span(results).chunk_by(|a, b| a.span == b.span) {
        let Some(span) = group.first().map(|r| r.span) else {
            continue;
        };
        if group.iter().all(|r| matches!(r.reach, Reach::Dead(_))) {
            out.push(|| dead_finding(cx, span, group));
        } else if group
            .iter()
            .all(|r| matches!(r.reach, Reach::Dead(_) | Reach::Cut))
        {
            cut.push(span);
        }
    }
    out.finish(cut_note(META, &cut, "shadowed"))
}

/// Results in source order, the rules of one line in chain order: cut them into one
/// group per line with `chunk_by` on the span. One sorted vector instead of a map of
/// vectors: a big file has a hundred thousand lines.
pub fn by_span<'a, 'g>(results: &'a [Vec<RuleResult<'g>>]) -> Vec<&'a RuleResult<'g>> {
    let mut sorted: Vec<&RuleResult> = results.iter().flatten().collect();
    sorted.sort_by_key(|r| r.span);
    sorted
}

fn dead_finding(cx: &CheckCx, span: Span, group: &[&RuleResult]) -> Finding {
    let mut deciders = Vec::new();
    for r in group {
        if let Reach::Dead(used) = &r.reach {
            for &j in used {
                let d = crate::analysis::Decider {
                    chain: r.decider.chain,
                    rule: Some(j),
                };
                let s = cx.model.span_of(d);
                if s != span && !deciders.iter().any(|(_, t)| *t == s) {
                    deciders.push((d, s));
                }
            }
        }
    }
    deciders.sort_by_key(|(_, s)| (s.start, s.end));
    let chain = cx.model.graph.chain(group[0].decider.chain);
    let more = deciders.len().saturating_sub(MAX_RELATED);
    let by = match deciders.len() {
        0 => "earlier rules decide".to_string(),
        1 => "an earlier rule decides".to_string(),
        n => format!("{n} earlier rules together decide"),
    };
    let mut f = Finding::new(
        META.name,
        META.severity,
        span,
        format!(
            "no packet reaches this rule of `{}`: {by} every packet it matches",
            chain.name
        ),
    )
    .with_label("never reached")
    .with_help(
        "remove the rule, or move it above the rules that decide its packets if it was meant to apply",
    );
    for (d, s) in deciders.iter().take(MAX_RELATED) {
        let who = cx.model.describe(*d);
        let text = if who.starts_with("this rule") {
            "decided here".to_string()
        } else {
            format!("decided here ({who})")
        };
        f = f.with_related(*s, text);
    }
    if more > 0 {
        f = f.with_related(
            deciders.get(MAX_RELATED).map_or(span, |(_, s)| *s),
            format!("and {more} more earlier rules"),
        );
    }
    if let Some(cube) = cx
        .model
        .rule_cube(group[0].decider.chain, group[0].decider.rule.unwrap_or(0))
    {
        f.witness = Some(reach::witness(cx.model, cube.0));
    }
    f
}

/// One note for the lines the work budget left unanalysed, at the first of them.
pub fn cut_note(meta: CheckMeta, spans: &[Span], adjective: &str) -> Option<Finding> {
    let first = spans.first()?;
    Some(Finding::new(
        meta.name,
        Severity::Note,
        *first,
        format!(
            "{} rule(s) overlap too many others to be checked within the work budget; \
             mislint does not say whether they are {adjective}",
            spans.len()
        ),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::analysis::Model;
    use crate::analysis::zones::Zoning;
    use crate::config::site::Hosts;
    use crate::graph::Dialect;
    use crate::policy::Settings;
    use crate::source::{FileId, SourceFile};

    /// Runs `check` on an iptables FORWARD chain; returns `(line text, related texts)`.
    pub(crate) fn lint(rules: &str, check: super::super::CheckFn) -> Vec<(String, Vec<String>)> {
        let text = format!("*filter\n:FORWARD DROP [0:0]\n{rules}COMMIT\n");
        let file = SourceFile::new(FileId(0), "t", text);
        let g = crate::parse::parse(&file, Dialect::Iptables)
            .graph
            .expect("parses");
        let model = Model::new(&g, &[]);
        let zoning = Zoning::assign(&g, &[]);
        let (settings, hosts) = (Settings::default(), Hosts::default());
        let cx = CheckCx::new(&file, &model, &zoning, &settings, &hosts, &[]);
        check(&cx)
            .into_iter()
            .map(|f| {
                let related = f.related.iter().map(|l| file.slice(l.span).to_string());
                (file.slice(f.primary.span).to_string(), related.collect())
            })
            .collect()
    }

    #[test]
    fn a_line_lowered_to_several_rules_is_dead_only_if_all_are() {
        let found = lint(
            "-A FORWARD -d 10.0.0.0/24 -p tcp --dport 25 -j ACCEPT\n\
             -A FORWARD -d 10.0.0.5,10.0.0.6 -p tcp --dport 25 -j ACCEPT\n\
             -A FORWARD -d 10.0.0.7,10.0.1.7 -p tcp --dport 25 -j ACCEPT\n",
            run,
        );
        assert_eq!(
            found,
            vec![(
                "-A FORWARD -d 10.0.0.5,10.0.0.6 -p tcp --dport 25 -j ACCEPT".to_string(),
                vec!["-A FORWARD -d 10.0.0.0/24 -p tcp --dport 25 -j ACCEPT".to_string()]
            )]
        );
    }

    #[test]
    fn past_the_cap_dead_lines_are_counted_and_the_shown_ones_are_whole() {
        let mut rules = String::from("-A FORWARD -p tcp -j ACCEPT\n");
        for port in 1000..1150 {
            rules.push_str(&format!("-A FORWARD -p tcp --dport {port} -j ACCEPT\n"));
        }
        let text = format!("*filter\n:FORWARD DROP [0:0]\n{rules}COMMIT\n");
        let file = SourceFile::new(FileId(0), "t", text);
        let g = crate::parse::parse(&file, Dialect::Iptables)
            .graph
            .expect("parses");
        let model = Model::new(&g, &[]);
        let zoning = Zoning::assign(&g, &[]);
        let (settings, hosts) = (Settings::default(), Hosts::default());
        let cx = CheckCx::new(&file, &model, &zoning, &settings, &hosts, &[]);
        let shown = run(&cx);
        assert_eq!(shown.len(), super::super::HYGIENE_NOTES_PER_FILE + 1);
        let (last, dead) = shown.split_last().expect("findings");
        assert_eq!(
            last.message,
            "50 more `shadowed-rule` notes in this file are not shown"
        );
        for (f, port) in dead.iter().zip(1000..) {
            assert!(
                file.slice(f.primary.span)
                    .contains(&format!("--dport {port} "))
            );
            assert!(f.message.starts_with("no packet reaches"), "{}", f.message);
            assert!(f.witness.is_some() && !f.related.is_empty());
        }
    }

    #[test]
    fn live_rules_give_nothing() {
        assert!(
            lint(
                "-A FORWARD -p tcp --dport 80 -j ACCEPT\n-A FORWARD -p tcp --dport 443 -j ACCEPT\n",
                run
            )
            .is_empty()
        );
    }
}
