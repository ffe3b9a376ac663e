//! A fix's re-check takes over the lint's walks that its edit cannot change
//! (`analysis::reuse`). That must give exactly what walking them again gives: the same
//! findings, in the same order, for the same cost. Held here on every fixture and
//! corpus file, for the edits the fixes make — a rule removed, a rule narrowed, a
//! permit inserted ahead of a rule — at rules spread over each file.

mod common;

use mislint::checks::Scope;
use mislint::config::Sites;
use mislint::fix::{self, Net, Permit};
use mislint::graph::{Dialect, IntervalSet, RuleGraph};
use mislint::parse;
use mislint::report::finding::Edit;
use mislint::source::{FileId, SourceFile, Span};
use std::sync::Arc;

/// Rules whose edits are tried in each file, spread evenly over it.
const RULES_PER_FILE: usize = 24;

/// The spans of up to [`RULES_PER_FILE`] distinct rule lines of `graph`.
fn sampled_rules(graph: &RuleGraph) -> Vec<Span> {
    let mut spans: Vec<Span> = graph.rules().map(|(_, _, r)| r.span).collect();
    spans.sort_by_key(|s| (s.start, s.end));
    spans.dedup();
    let step = spans.len().div_ceil(RULES_PER_FILE).max(1);
    spans.into_iter().step_by(step).collect()
}

/// The edits the fixes would make at `at`: remove the rule, narrow it off tcp/25, and
/// insert a permit for tcp/25 between two of the file's interfaces ahead of it.
fn edits_at(text: &str, dialect: Dialect, graph: &RuleGraph, at: Span) -> Vec<Vec<Edit>> {
    let id = FileId(0);
    let smtp = IntervalSet::single(25);
    let names: Vec<String> = graph.interfaces.iter().map(|i| i.name.clone()).collect();
    let permit = Permit {
        protocol: 6,
        ports: vec![(25, 25)],
        src: None,
        dst: Some(Net {
            addr: "192.0.2.25".parse().expect("address"),
            len: 32,
        }),
        in_iface: names.last().cloned(),
        out_iface: names.first().cloned(),
        why: "reuse test".into(),
    };
    let mut out = Vec::new();
    match dialect {
        Dialect::Iptables => {
            out.extend(fix::iptables::remove(text, id, at));
            out.extend(fix::iptables::narrow(text, id, at, 6, &smtp).map(|(e, _)| e));
            out.extend(
                fix::iptables::insert_permit(text, id, at, &permit)
                    .ok()
                    .map(|(e, _)| e),
            );
        }
        Dialect::Asa => {
            out.extend(fix::asa::remove(text, id, at));
            out.extend(fix::asa::narrow(text, id, at, 6, &smtp).map(|(e, _)| e));
            out.extend(
                fix::asa::insert_permit(text, id, at, &permit)
                    .ok()
                    .map(|(e, _)| e),
            );
        }
        Dialect::Pfsense => {
            let Some(xml) = fix::pfsense::Xml::read(text) else {
                return out;
            };
            out.extend(fix::pfsense::remove(&xml, id, at));
            out.extend(fix::pfsense::narrow(&xml, id, at, 6, &smtp).map(|(e, _)| e));
            out.extend(
                fix::pfsense::insert_permit(&xml, id, at, &permit)
                    .ok()
                    .map(|(e, _)| e),
            );
        }
    }
    out
}

#[test]
fn a_recheck_that_takes_over_walks_finds_what_walking_them_finds() {
    let flag_sets: [&[&str]; 2] = [
        &["--scenario", "exchange2000-smtp"],
        &["--scenario", "exchange2000-browse", "--ipsec"],
    ];
    let (mut compared, mut taken_over, mut walked_only) = (0, 0, 0);
    for common::ParsedFile {
        path,
        dialect,
        file,
        graph,
    } in common::parsed_fixture_and_corpus_files()
    {
        for flags in flag_sets {
            let config = common::config_for(&path, dialect, flags);
            let sites = Sites::default();
            let fc = config.file_config(&sites, &path);
            let (_, _, recorded) = mislint::check_graph_recording(&file, &graph, &fc);
            let recorded = Arc::new(recorded.expect("a record was asked for"));
            for at in sampled_rules(&graph) {
                for edits in edits_at(&file.text, dialect, &graph, at) {
                    let Some(text) = fix::apply(&file.text, &edits) else {
                        continue;
                    };
                    let edited = SourceFile::new(FileId(0), path.clone(), text);
                    let Some(g) = parse::parse(&edited, dialect).graph else {
                        continue;
                    };
                    let scope = Scope::WarningsAndErrors;
                    let (fresh, fresh_cost) = mislint::check_graph_scoped(&edited, &g, &fc, scope);
                    let (reused, reused_cost) = mislint::check_graph_reusing(
                        &edited,
                        &g,
                        &fc,
                        scope,
                        &graph,
                        Arc::clone(&recorded),
                    );
                    let at_line = &file.text[at.start as usize..at.end as usize];
                    assert_eq!(
                        format!("{fresh:#?}"),
                        format!("{reused:#?}"),
                        "{} {flags:?}, edits at `{at_line}`: {edits:?}",
                        path.display()
                    );
                    assert_eq!(
                        (fresh_cost.units, fresh_cost.hit_limit),
                        (reused_cost.units, reused_cost.hit_limit),
                        "{} {flags:?}, edits at `{at_line}`",
                        path.display()
                    );
                    assert_eq!(fresh_cost.taken_over, 0);
                    compared += 1;
                    taken_over += reused_cost.taken_over;
                    walked_only += usize::from(reused_cost.taken_over == 0);
                }
            }
        }
    }
    // The comparison means something only if walks were taken over, and the check that
    // an edit cannot change a walk is no blanket "yes" if some re-checks took none.
    assert!(compared > 1000, "{compared} edited files compared");
    assert!(
        taken_over > compared,
        "{taken_over} walks taken over in {compared} re-checks"
    );
    assert!(walked_only > 0, "every re-check took over some walk");
}
