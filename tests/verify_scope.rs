//! Fix verification re-checks an edited file with the checks that can report a warning
//! or an error only (`checks::Scope::WarningsAndErrors`), because it compares nothing
//! else. That is exact only while every check whose metadata says "note" reports notes
//! and nothing more, so that leaving those checks out changes no warning or error. Both
//! are held here on every fixture and every corpus file under several scenario sets.

mod common;

use mislint::checks::{self, Scope};
use mislint::config::Sites;
use mislint::report::finding::{Finding, Severity};

/// What the verification compares of a finding.
fn key(f: &Finding) -> String {
    format!(
        "{} {:?} {} {} {:?} {:?}",
        f.rule, f.severity, f.primary.span.start, f.message, f.ports, f.requirement
    )
}

fn above_notes(found: &[Finding]) -> Vec<String> {
    let mut keys: Vec<String> = found
        .iter()
        .filter(|f| f.severity > Severity::Note)
        .map(key)
        .collect();
    keys.sort();
    keys
}

#[test]
fn leaving_out_the_note_checks_changes_no_warning_or_error() {
    let notes: Vec<&str> = checks::note_only_checks().map(|m| m.name).collect();
    assert!(notes.contains(&"shadowed-rule") && notes.contains(&"redundant-rule"));
    let flag_sets: [&[&str]; 3] = [
        &["--scenario", "exchange2000-smtp"],
        &["--scenario", "exchange2000-browse", "--ipsec"],
        &["--scenario", "exchange2000-smtp", "--static-rpc"],
    ];
    let (mut checked, mut notes_seen, mut above_seen) = (0, 0, 0);
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
            let (all, _) = mislint::check_graph_scoped(&file, &graph, &fc, Scope::All);
            let (some, _) =
                mislint::check_graph_scoped(&file, &graph, &fc, Scope::WarningsAndErrors);
            for f in all.iter().filter(|f| notes.contains(&f.rule)) {
                assert_eq!(
                    f.severity,
                    Severity::Note,
                    "{}: `{}` reported above a note: {}",
                    path.display(),
                    f.rule,
                    f.message
                );
                notes_seen += 1;
            }
            assert!(
                some.iter().all(|f| !notes.contains(&f.rule)),
                "{}: the scoped run ran a note check",
                path.display()
            );
            let full = above_notes(&all);
            above_seen += full.len();
            assert_eq!(full, above_notes(&some), "{} {flags:?}", path.display());
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} runs");
    assert!(
        notes_seen > 100 && above_seen > 100,
        "{notes_seen} notes, {above_seen} above"
    );
}
