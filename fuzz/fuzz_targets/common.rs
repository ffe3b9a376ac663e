//! What every fuzz target shares: bytes to a `SourceFile`, and the invariants a parse
//! must keep on any input (spans inside the file, on character boundaries, and
//! renderable by both output formats).

use mislint::graph::Dialect;
use mislint::report::finding::Finding;
use mislint::report::{Report, Sources};
use mislint::source::{FileId, SourceFile, Span};

/// The fuzz input as a config file: invalid UTF-8 is replaced, as discovery would refuse
/// it and the parsers only ever see `&str`.
pub fn source(data: &[u8], name: &str) -> SourceFile {
    SourceFile::new(FileId(0), name, String::from_utf8_lossy(data).into_owned())
}

/// Panics (a fuzz failure) if a span leaves the file or splits a character.
pub fn assert_span(file: &SourceFile, span: Span, what: &str) {
    let (start, end) = (span.start as usize, span.end as usize);
    assert!(
        start <= end && end <= file.text.len(),
        "{what} span {start}..{end} outside a file of {} bytes",
        file.text.len()
    );
    assert!(
        file.text.is_char_boundary(start) && file.text.is_char_boundary(end),
        "{what} span {start}..{end} splits a character"
    );
}

/// Checks every span of every finding.
pub fn assert_findings(file: &SourceFile, findings: &[Finding]) {
    for f in findings {
        assert_span(file, f.primary.span, f.rule);
        for r in &f.related {
            assert_span(file, r.span, f.rule);
        }
        if let Some(fix) = &f.fix {
            for e in &fix.edits {
                assert_span(file, e.span, "fix edit");
            }
        }
    }
}

/// Renders the findings as human text and JSON into memory.
pub fn render(file: SourceFile, dialect: Dialect, findings: Vec<Finding>) {
    let report = Report {
        findings,
        problems: Vec::new(),
    };
    let sources = Sources::new(vec![(file, Some(dialect))]);
    let mut out = Vec::new();
    mislint::report::human::render(&report, &sources, &mut out).expect("writes to memory");
    out.clear();
    mislint::report::json::render(&report, &sources, &mut out).expect("writes to memory");
}

/// One parser target: parse, check the spans, render.
#[allow(dead_code)] // the pipeline target includes this file but fuzzes differently
pub fn fuzz_parser(data: &[u8], dialect: Dialect, name: &str) {
    let file = source(data, name);
    let parsed = mislint::parse::parse(&file, dialect);
    assert_findings(&file, &parsed.findings);
    if let Some(graph) = &parsed.graph {
        for chain in &graph.chains {
            for rule in &chain.rules {
                assert_span(&file, rule.span, "rule");
            }
        }
    }
    render(file, dialect, parsed.findings);
}
