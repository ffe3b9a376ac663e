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

/// Moves every span of a value by `delta` bytes. A part of a file read once is reused
/// where the same text stands elsewhere in an edited copy of the file (the parsers'
/// memos for fix verification); its spans then point `delta` bytes further on. Each
/// impl names every field, so a span added to an AST cannot be left behind unmoved.
pub trait MoveSpans {
    /// Adds `delta` to every offset.
    fn move_spans(&mut self, delta: i64);
}

impl MoveSpans for Span {
    fn move_spans(&mut self, delta: i64) {
        // Offsets stay in `u32` as `Span::new` keeps them; only a part's dummy span
        // (0..0, never shown) could leave the range, and it is clamped like any other.
        let moved = |at: u32| (i64::from(at) + delta).clamp(0, i64::from(u32::MAX)) as u32;
        self.start = moved(self.start);
        self.end = moved(self.end);
    }
}

impl<T: MoveSpans> MoveSpans for Option<T> {
    fn move_spans(&mut self, delta: i64) {
        if let Some(value) = self {
            value.move_spans(delta);
        }
    }
}

impl<T: MoveSpans> MoveSpans for Vec<T> {
    fn move_spans(&mut self, delta: i64) {
        for value in self {
            value.move_spans(delta);
        }
    }
}

impl<T: MoveSpans> MoveSpans for Box<T> {
    fn move_spans(&mut self, delta: i64) {
        (**self).move_spans(delta);
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
///
/// It keeps only how many line breaks come before each block of [`LINE_BLOCK`] bytes and
/// counts the rest at query time, within one block. A report asks for the lines of a few
/// hundred findings at most, and a line start per line of a 90 MB pfSense backup (2.6 M
/// of them, in two passes over the text) took 22 ms on one core before the report could
/// start; counting alone takes 4 ms, and the report's queries 2 ms.
#[derive(Clone, Debug)]
pub struct LineIndex {
    /// Line breaks before each block; block `k` starts at byte `k * LINE_BLOCK`.
    breaks_before: Vec<u32>,
    /// Line breaks in the whole text.
    breaks: u32,
}

/// Bytes per block of a [`LineIndex`].
const LINE_BLOCK: usize = 1 << 13;

impl LineIndex {
    /// Builds the index of `text`. A line ends at `\n`; a `\r` before it belongs to the line.
    pub fn new(text: &str) -> LineIndex {
        let mut breaks_before = Vec::with_capacity(text.len() / LINE_BLOCK + 1);
        let mut breaks = 0u32;
        for block in text.as_bytes().chunks(LINE_BLOCK) {
            breaks_before.push(breaks);
            breaks = breaks.saturating_add(count_breaks(block));
        }
        LineIndex {
            breaks_before,
            breaks,
        }
    }

    /// 1-based (line, column) of a byte offset; the column counts characters, not bytes,
    /// so editors and SARIF viewers land on the right token in non-ASCII lines.
    pub fn line_col(&self, text: &str, offset: u32) -> (usize, usize) {
        let end = (offset as usize).min(text.len());
        let block = end / LINE_BLOCK;
        let block_start = block * LINE_BLOCK;
        let before = self
            .breaks_before
            .get(block)
            .copied()
            .unwrap_or(self.breaks);
        let in_block = text
            .as_bytes()
            .get(block_start..end)
            .map_or(0, count_breaks);
        let line = before.saturating_add(in_block) as usize;
        let start = self.line_start(text, line).unwrap_or(0).min(end);
        let column = text
            .get(start..end)
            .map(|s| s.chars().count())
            .unwrap_or(end - start);
        (line + 1, column + 1)
    }

    /// The byte range of the 1-based line `line`, without its line break.
    pub fn line_range(&self, text: &str, line: usize) -> Option<(usize, usize)> {
        let start = self.line_start(text, line.checked_sub(1)?)?;
        let mut end = self.line_start(text, line).unwrap_or(text.len());
        let bytes = text.as_bytes();
        while end > start && matches!(bytes.get(end - 1), Some(b'\n' | b'\r')) {
            end -= 1;
        }
        Some((start, end))
    }

    /// Where the 0-based line `line` starts: after the `line`-th line break.
    fn line_start(&self, text: &str, line: usize) -> Option<usize> {
        if line == 0 {
            return Some(0);
        }
        let nth = u32::try_from(line - 1).ok()?;
        if nth >= self.breaks {
            return None;
        }
        // The last block with at most `nth` breaks before it holds break `nth`.
        let block = self
            .breaks_before
            .partition_point(|&b| b <= nth)
            .checked_sub(1)?;
        let block_start = block * LINE_BLOCK;
        let skip = (nth - self.breaks_before.get(block)?) as usize;
        let bytes = text.as_bytes().get(block_start..)?;
        let at = memchr::memchr_iter(b'\n', bytes).nth(skip)?;
        Some(block_start + at + 1)
    }
}

/// Line breaks in `bytes`.
fn count_breaks(bytes: &[u8]) -> u32 {
    u32::try_from(memchr::memchr_iter(b'\n', bytes).count()).unwrap_or(u32::MAX)
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

    /// Line and column as the obvious definition has them.
    fn naive_line_col(text: &str, offset: usize) -> (usize, usize) {
        let end = offset.min(text.len());
        let before = &text.as_bytes()[..end];
        let line = before.iter().filter(|&&b| b == b'\n').count();
        let start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let column = text
            .get(start..end)
            .map_or(end - start, |s| s.chars().count());
        (line + 1, column + 1)
    }

    #[test]
    fn blocks_answer_as_a_full_line_index_would() {
        // Lines of every length, some longer than a block, a break that ends the first
        // block, CRLF and non-ASCII text.
        let mut text = String::new();
        let mut seed = 7u64;
        while text.len() < 5 * LINE_BLOCK {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = match seed >> 60 {
                0 => LINE_BLOCK + 17,
                1..=3 => 0,
                _ => (seed >> 20) as usize % 200,
            };
            text.push_str(&"é".repeat(len % 3));
            text.push_str(&"x".repeat(len));
            text.push(if seed & 1 == 0 { '\n' } else { '\r' });
            if seed & 1 == 1 {
                text.push('\n');
            }
        }
        text.replace_range(LINE_BLOCK - 1..LINE_BLOCK, "\n");
        text.push_str("no break at the end");
        let idx = LineIndex::new(&text);
        let mut offsets: Vec<usize> = (0..text.len()).step_by(997).collect();
        for k in 1..=5 {
            offsets.extend((k * LINE_BLOCK).saturating_sub(3)..k * LINE_BLOCK + 3);
        }
        offsets.extend([text.len(), text.len() + 10]);
        for &o in &offsets {
            assert_eq!(
                idx.line_col(&text, o as u32),
                naive_line_col(&text, o),
                "offset {o}"
            );
        }
        let lines: Vec<&str> = text.split('\n').collect();
        for (i, want) in lines.iter().enumerate() {
            let (start, end) = idx.line_range(&text, i + 1).expect("a line");
            assert_eq!(
                &text[start..end],
                want.trim_end_matches('\r'),
                "line {}",
                i + 1
            );
        }
        assert_eq!(idx.line_range(&text, lines.len() + 1), None);
        assert_eq!(idx.line_range(&text, 0), None);
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
