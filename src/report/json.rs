//! `--format json`: findings as versioned JSON for CI (schema: docs/json-schema.json).
//!
//! The structs here are the contract; fields are added, never renamed, and `version`
//! changes when a field changes meaning.

use super::finding::{Certainty, Finding, Severity, Witness};
use super::{Report, Sources};
use crate::checks::proto_name;
use crate::graph::Zone;
use serde::Serialize;
use std::io::{self, Write};

/// The schema version of this output.
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    tool: Tool,
    files: Vec<JsonFile>,
    findings: Vec<JsonFinding<'a>>,
    errors: Vec<JsonError>,
}

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct JsonFile {
    path: String,
    dialect: &'static str,
}

#[derive(Serialize)]
struct JsonError {
    file: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<usize>,
}

#[derive(Serialize)]
struct Position {
    file: String,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
}

#[derive(Serialize)]
struct JsonRelated {
    #[serde(flatten)]
    at: Position,
    message: String,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    rule: &'static str,
    severity: Severity,
    certainty: Certainty,
    #[serde(flatten)]
    at: Position,
    message: &'a str,
    requirement: Option<&'a str>,
    scenario: Option<&'a str>,
    from_zone: Option<Zone>,
    to_zone: Option<Zone>,
    protocol: Option<String>,
    ports: &'a [(u16, u16)],
    witness: Option<&'a Witness>,
    kb: Option<&'a str>,
    help: Option<&'a str>,
    related: Vec<JsonRelated>,
    suppressed: Option<&'a str>,
    fix: Option<JsonFix<'a>>,
}

/// A verified fix: edits of the finding's file, applied together.
#[derive(Serialize)]
struct JsonFix<'a> {
    title: &'a str,
    edits: Vec<JsonEdit<'a>>,
}

/// One edit: the range to replace (empty for an insertion) and the new text.
#[derive(Serialize)]
struct JsonEdit<'a> {
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    text: &'a str,
}

fn fix<'a>(f: &'a Finding, sources: &Sources) -> Option<JsonFix<'a>> {
    let fix = f.fix.as_ref()?;
    Some(JsonFix {
        title: &fix.title,
        edits: fix
            .edits
            .iter()
            .map(|e| {
                let at = position(sources, e.span);
                JsonEdit {
                    line: at.line,
                    column: at.column,
                    end_line: at.end_line,
                    end_column: at.end_column,
                    text: &e.text,
                }
            })
            .collect(),
    })
}

fn position(sources: &Sources, span: crate::source::Span) -> Position {
    let (line, column) = sources.line_col(span.file, span.start);
    let (end_line, end_column) = sources.line_col(span.file, span.end);
    Position {
        file: sources
            .file(span.file)
            .map_or_else(String::new, |f| f.display_path()),
        line,
        column,
        end_line,
        end_column,
    }
}

fn finding<'a>(f: &'a Finding, sources: &Sources) -> JsonFinding<'a> {
    JsonFinding {
        rule: f.rule,
        severity: f.severity,
        certainty: f.certainty,
        at: position(sources, f.primary.span),
        message: &f.message,
        requirement: f.requirement.as_deref(),
        scenario: f.scenario.as_deref(),
        from_zone: f.from_zone,
        to_zone: f.to_zone,
        protocol: f.protocol.map(proto_name),
        ports: &f.ports,
        witness: f.witness.as_ref(),
        kb: f.kb.as_deref(),
        help: f.help.as_deref(),
        related: f
            .related
            .iter()
            .map(|r| JsonRelated {
                at: position(sources, r.span),
                message: r.text.clone(),
            })
            .collect(),
        suppressed: f.suppressed.as_deref(),
        fix: fix(f, sources),
    }
}

/// Writes the report as one JSON document.
pub fn render(report: &Report, sources: &Sources, out: &mut dyn Write) -> io::Result<()> {
    let doc = JsonReport {
        version: VERSION,
        tool: Tool {
            name: "mislint",
            version: env!("CARGO_PKG_VERSION"),
        },
        files: sources
            .iter()
            .map(|(f, d)| JsonFile {
                path: f.display_path(),
                dialect: d.name(),
            })
            .collect(),
        findings: report
            .findings
            .iter()
            .map(|f| finding(f, sources))
            .collect(),
        errors: report
            .problems
            .iter()
            .map(|p| JsonError {
                file: p.path.display().to_string(),
                message: p.message.clone(),
                offset: p.offset,
            })
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &doc).map_err(io::Error::other)?;
    writeln!(out)
}
