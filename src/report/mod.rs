//! Findings and their renderers: the last stage of the pipeline.
//!
//! A [`Report`] holds every finding of a run, sorted, plus the files that could not be
//! linted; each renderer turns it into text with the same signature.

pub mod finding;
pub mod github;
pub mod human;
pub mod json;
pub mod sarif;

use crate::discover::FileProblem;
use crate::graph::Dialect;
use crate::source::{FileId, LineIndex, SourceFile};
use finding::{Finding, Severity};
use std::io::{self, Write};

/// The sources of a run, with their line indexes.
pub struct Sources {
    files: Vec<(SourceFile, LineIndex, Option<Dialect>)>,
}

impl Sources {
    /// Indexes the files; their ids must be their positions. Files without a dialect are
    /// site files that findings may point into, not linted configs.
    pub fn new(files: Vec<(SourceFile, Option<Dialect>)>) -> Sources {
        Sources {
            files: files
                .into_iter()
                .map(|(f, d)| {
                    let idx = LineIndex::new(&f.text);
                    (f, idx, d)
                })
                .collect(),
        }
    }

    /// The file with this id.
    pub fn file(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize).map(|(f, _, _)| f)
    }

    /// 1-based line and column of an offset in a file.
    pub fn line_col(&self, id: FileId, offset: u32) -> (usize, usize) {
        self.files
            .get(id.0 as usize)
            .map_or((1, 1), |(f, idx, _)| idx.line_col(&f.text, offset))
    }

    /// Every linted file with its dialect.
    pub fn iter(&self) -> impl Iterator<Item = (&SourceFile, Dialect)> {
        self.files.iter().filter_map(|(f, _, d)| d.map(|d| (f, d)))
    }
}

/// Everything a run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Findings, sorted by file, offset and rule.
    pub findings: Vec<Finding>,
    /// Paths that could not be linted.
    pub problems: Vec<FileProblem>,
}

impl Report {
    /// The most severe unsuppressed finding.
    pub fn worst(&self) -> Option<Severity> {
        self.findings
            .iter()
            .filter(|f| f.suppressed.is_none())
            .map(|f| f.severity)
            .max()
    }

    /// True if a file could not be read or parsed.
    pub fn has_errors(&self) -> bool {
        !self.problems.is_empty()
            || self
                .findings
                .iter()
                .any(|f| f.rule == crate::parse::PARSE_ERROR)
    }
}

/// The signature every renderer shares.
pub type Renderer = fn(&Report, &Sources, &mut dyn Write) -> io::Result<()>;
