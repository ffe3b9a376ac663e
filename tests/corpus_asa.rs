//! Real-world corpus: every file of `../shared/corpus/asa/` (configs written by people
//! and tools mislint was not tuned to: ASA 8.x/9.x, PIX 6/7, FWSM) must parse without a
//! panic and without a `parse-error`, unless the file is listed below with the reason
//! the device itself would refuse it.

use mislint::parse::{PARSE_ERROR, UNKNOWN_SYNTAX, asa};
use mislint::source::{FileId, SourceFile};
use std::path::Path;

/// Files with parse errors the device would report too: (file, offending tokens, why).
const EXPECTED_ERRORS: &[(&str, &[&str], &str)] = &[
    (
        "fwbuilder-asa8.3-acl.cfg",
        &["foo"],
        "fwbuilder's test writes `neq foo` under the comment \"invalid port name\"",
    ),
    (
        "fwbuilder-asa8.3-objects-and-groups.cfg",
        &["some_weird_protocol"],
        "fwbuilder's test writes `service some_weird_protocol` under the comment \"named object using unknown protocol name\"",
    ),
];

/// Files that are not running-configs at all: mislint refuses them with one error and
/// no graph.
const NOT_CONFIGS: &[(&str, &str)] = &[(
    "cisco-asa-collection-show-access-list-output.txt",
    "`show access-list` output (hit counts, hashes, expanded entries), not a running-config",
)];

#[test]
fn corpus_parses_without_errors() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/asa"));
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus directory exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    assert!(entries.len() >= 20, "corpus looks incomplete");
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let text = std::fs::read_to_string(&path).expect("corpus file is UTF-8");
        let file = SourceFile::new(FileId(0), path.clone(), text);
        let parsed = asa::parse(&file);
        let errors: Vec<&str> = parsed
            .findings
            .iter()
            .filter(|f| f.rule == PARSE_ERROR)
            .map(|f| file.slice(f.primary.span))
            .collect();
        if let Some((_, why)) = NOT_CONFIGS.iter().find(|(n, _)| *n == name) {
            assert!(
                parsed.graph.is_none(),
                "{name}: {why}, yet a graph came back"
            );
            assert_eq!(errors.len(), 1, "{name}: one clear error expected");
            println!("{name}: refused ({why})");
            continue;
        }
        let graph = parsed
            .graph
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no graph"));
        let expected: &[&str] = EXPECTED_ERRORS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, toks, _)| *toks)
            .unwrap_or(&[]);
        assert_eq!(
            errors,
            expected,
            "{name}: parse errors: {:#?}",
            parsed
                .findings
                .iter()
                .filter(|f| f.rule == PARSE_ERROR)
                .map(|f| &f.message)
                .collect::<Vec<_>>()
        );
        let rules: usize = graph.chains.iter().map(|c| c.rules.len()).sum();
        let notes = parsed
            .findings
            .iter()
            .filter(|f| f.rule == UNKNOWN_SYNTAX)
            .count();
        let skipped = parsed
            .findings
            .iter()
            .find(|f| f.message.starts_with("skipped "))
            .map(|f| f.message.clone())
            .unwrap_or_else(|| "nothing skipped".into());
        let other: Vec<&str> = parsed
            .findings
            .iter()
            .filter(|f| f.rule != UNKNOWN_SYNTAX && f.rule != PARSE_ERROR)
            .map(|f| f.rule)
            .collect();
        println!(
            "{name}: {} interfaces, {} chains, {rules} rules, {notes} notes, {} other findings {:?}; {skipped}",
            graph.interfaces.len(),
            graph.chains.len(),
            other.len(),
            other
        );
    }
}
