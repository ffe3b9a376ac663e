//! Real-world pfSense / OPNsense configs from `../shared/corpus/pfsense/`: every file must
//! give a rule graph without a parse error and without a panic. Prints per-file counts.

use mislint::parse::{PARSE_ERROR, pfsense};
use mislint::report::finding::Severity;
use mislint::source::{FileId, SourceFile};
use std::path::Path;

#[test]
fn every_corpus_file_parses() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/pfsense"
    ));
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus directory exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no corpus files in {}", dir.display());
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("corpus file is UTF-8");
        let file = SourceFile::new(FileId(0), path, text);
        let parsed = pfsense::parse(&file);
        let errors: Vec<_> = parsed
            .findings
            .iter()
            .filter(|f| f.rule == PARSE_ERROR)
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let graph = parsed.graph.expect("a graph for every corpus file");
        let rules: Vec<usize> = graph.chains.iter().map(|c| c.rules.len()).collect();
        let count = |s: Severity| parsed.findings.iter().filter(|f| f.severity == s).count();
        println!(
            "{}: interfaces {}, rules inbound/outbound {:?}, notes {}, warnings {}, errors {}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            graph.interfaces.len(),
            rules,
            count(Severity::Note),
            count(Severity::Warning),
            count(Severity::Error),
        );
        for f in parsed
            .findings
            .iter()
            .filter(|f| f.severity > Severity::Note)
        {
            println!("    {} {}: {}", f.severity.name(), f.rule, f.message);
        }
    }
}
