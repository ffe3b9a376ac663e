//! pfsense parser (not yet written): reports that the dialect is not supported yet.

use super::{PARSE_ERROR, Parsed};
use crate::report::finding::{Finding, Severity};
use crate::source::{SourceFile, Span};

/// Parses a pfsense config.
pub fn parse(file: &SourceFile) -> Parsed {
    Parsed {
        graph: None,
        findings: vec![Finding::new(
            PARSE_ERROR,
            Severity::Error,
            Span::new(file.id, 0, 0),
            "this dialect is not supported yet",
        )],
    }
}
