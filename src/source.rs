//! Source files and positions: the first stage of the pipeline.
//!
//! Every later stage refers to config text only through [`Span`]s, plain byte offsets
//! into a [`SourceFile`]. Lines and columns are computed once, at render time, by a
//! [`LineIndex`], so parsers never count lines and findings stay cheap to carry.

use std::path::PathBuf;

/// Identifies one source file of a run; an index into the run's file list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A byte range `start..end` in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    /// The file the offsets point into.
    pub file: FileId,
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from byte offsets; offsets beyond `u32::MAX` are clamped, which only a
    /// file over 4 GiB could produce and which discovery refuses before parsing.
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Span {
            file,
            start: clamp(start),
            end: clamp(end.max(start)),
        }
    }

    /// The span of `part`, a sub-slice of `whole`, where `whole` starts at byte `base`.
    /// Falls back to an empty span at `base` if `part` is not inside `whole`.
    pub fn of_slice(file: FileId, whole: &str, base: usize, part: &str) -> Span {
        let whole_start = whole.as_ptr() as usize;
        let part_start = part.as_ptr() as usize;
        if part_start < whole_start || part_start + part.len() > whole_start + whole.len() {
            return Span::new(file, base, base);
        }
        let offset = base + (part_start - whole_start);
        Span::new(file, offset, offset + part.len())
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// True for an empty span (a position rather than a range).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// A config file as read from disk.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// Its id in this run.
    pub id: FileId,
    /// The path as the user gave it or as discovery found it.
    pub path: PathBuf,
    /// The whole text. Invalid UTF-8 is refused before a `SourceFile` is made.
    pub text: String,
}

impl SourceFile {
    /// A source file from text already in memory (tests, stdin).
    pub fn new(id: FileId, path: impl Into<PathBuf>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            id,
            path: path.into(),
            text: text.into(),
        }
    }

    /// The text a span covers, or "" if the span is out of range.
    pub fn slice(&self, span: Span) -> &str {
        self.text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }

    /// The path as a string for messages.
    pub fn display_path(&self) -> String {
        self.path.display().to_string()
    }
}

/// Maps byte offsets to 1-based line and column numbers.
#[derive(Clone, Debug)]
pub struct LineIndex {
    /// Byte offset at which each line starts; always begins with 0.
    line_starts: Vec<u32>,
}

impl LineIndex {
    /// Builds the index of `text`. A line ends at `\n`; a `\r` before it belongs to the line.
    pub fn new(text: &str) -> LineIndex {
        // memchr: a byte loop over a 90 MB pfSense backup was 3% of its lint.
        let breaks = || memchr::memchr_iter(b'\n', text.as_bytes());
        let mut line_starts = Vec::with_capacity(breaks().count() + 1);
        line_starts.push(0);
        line_starts.extend(breaks().map(|i| u32::try_from(i + 1).unwrap_or(u32::MAX)));
        LineIndex { line_starts }
    }

    /// 1-based (line, column) of a byte offset; the column counts characters, not bytes,
    /// so editors and SARIF viewers land on the right token in non-ASCII lines.
    pub fn line_col(&self, text: &str, offset: u32) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0) as usize;
        let end = (offset as usize).min(text.len());
        let column = text
            .get(start..end)
            .map(|s| s.chars().count())
            .unwrap_or(end.saturating_sub(start));
        (line + 1, column + 1)
    }

    /// The byte range of the 1-based line `line`, without its line break.
    pub fn line_range(&self, text: &str, line: usize) -> Option<(usize, usize)> {
        let start = *self.line_starts.get(line.checked_sub(1)?)? as usize;
        let mut end = self
            .line_starts
            .get(line)
            .map(|&s| s as usize)
            .unwrap_or(text.len());
        let bytes = text.as_bytes();
        while end > start && matches!(bytes.get(end - 1), Some(b'\n' | b'\r')) {
            end -= 1;
        }
        Some((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = "ab\ncd\r\nef";
        let idx = LineIndex::new(text);
        assert_eq!(idx.line_col(text, 0), (1, 1));
        assert_eq!(idx.line_col(text, 1), (1, 2));
        assert_eq!(idx.line_col(text, 3), (2, 1));
        assert_eq!(idx.line_col(text, 7), (3, 1));
        assert_eq!(idx.line_range(text, 2), Some((3, 5)));
    }

    #[test]
    fn column_counts_characters() {
        let text = "é x";
        let idx = LineIndex::new(text);
        assert_eq!(idx.line_col(text, 3), (1, 3));
    }

    #[test]
    fn span_of_slice_finds_offset() {
        let whole = "-A FORWARD -j ACCEPT";
        let part = &whole[3..10];
        let span = Span::of_slice(FileId(0), whole, 100, part);
        assert_eq!((span.start, span.end), (103, 110));
    }
}
