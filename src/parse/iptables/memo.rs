//! What the parse of a dump keeps for reading edited copies of it.
//!
//! Fix verification parses an edited copy of the file for each candidate fix, and a
//! candidate changes a line or two. The copy's other lines read as the original's did,
//! so the rules they wrote are copied from the memo with their spans moved, and only the
//! changed lines are read again. The answer is the one [`super::parse`] gives; the
//! tests compare the two on edited copies of every fixture and corpus dump.

use super::ast::RuleAst;
use super::grammar::LineError;
use super::{
    ContentLine, NoteEvent, Parsed, READ_AHEAD_FROM_LINES, Reader, content_lines, is_command,
};
use crate::parse::Shared;
use crate::source::{MoveSpans, SourceFile, Span};

/// A dump's content lines, with what reading each gave where it appended a rule to a
/// chain declared before it.
pub struct Memo<'o> {
    lines: Vec<ContentLine<'o>>,
    /// The reader's state before each line, and after the last.
    states: Vec<State>,
    /// By line: the rule it appended, if it was such a line.
    rules: Vec<Option<Kept<'o>>>,
    /// How many rule lines each table had, in order.
    table_sizes: Vec<usize>,
}

/// What a memo is made of while a dump is read.
pub(super) struct Keeping<'a> {
    states: Vec<State>,
    rules: Vec<Option<Kept<'a>>>,
}

/// One rule line as it was read.
struct Kept<'a> {
    /// The state it was read in.
    state: State,
    /// The chain it appended to, by index in its table.
    chain: usize,
    rule: Result<RuleAst, LineError>,
    /// Its notes, counted only if it read cleanly.
    events: Vec<NoteEvent<'a>>,
}

/// All that reading a rule line depends on besides its text, in the reader: the
/// tables read so far, the open one (`None` also inside a refused table) and how many
/// chains it has declared. A line is read alike in equal states as long as the lines
/// before it that moved the state are the same lines in the same order, which
/// [`Memo::shared`] and [`Reader::reread`] make sure of: a count of chains alone does
/// not tell which chains they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct State {
    tables: usize,
    open: Option<usize>,
    declared: usize,
}

/// [`super::parse`], keeping a memo as well if the dump has at most `keep_up_to`
/// command lines (a bigger file gets no verified fix, and the memo holds a copy of
/// every rule).
pub fn parse_keeping(file: &SourceFile, keep_up_to: usize) -> (Parsed, Option<Memo<'_>>) {
    let lines = content_lines(&file.text);
    let mut reader = Reader::new(file.id, &file.text);
    reader.read_ahead_from = READ_AHEAD_FROM_LINES;
    let commands = lines.iter().filter(|(line, _)| is_command(line)).count();
    reader.keep = (commands <= keep_up_to).then(|| Keeping {
        states: Vec::with_capacity(lines.len() + 1),
        rules: Vec::with_capacity(lines.len() + 1),
    });
    reader.read_lines(&lines);
    let table_sizes = reader.dump.tables.iter().map(|t| t.rules.len()).collect();
    let memo = reader.keep.take().map(|k| Memo {
        lines,
        states: k.states,
        rules: k.rules,
        table_sizes,
    });
    (reader.finish(file.id), memo)
}

/// Parses an edited copy of the dump `memo` was kept of: the same answer as
/// [`super::parse`], with only the lines the edit changed read again.
pub fn reparse(file: &SourceFile, memo: &Memo<'_>) -> Parsed {
    let lines = content_lines(&file.text);
    let mut reader = Reader::new(file.id, &file.text);
    reader.read_ahead_from = READ_AHEAD_FROM_LINES;
    match memo.shared(&lines) {
        Some(shared) => reader.reread(&lines, memo, shared),
        None => reader.read_lines(&lines),
    }
    reader.finish(file.id)
}

impl Memo<'_> {
    /// The lines `lines` (an edited copy's) share with the original, unless a line of
    /// the original that the edit changed moved the reader's state: the lines after it
    /// would then be read against other chains than the memo's were.
    fn shared(&self, lines: &[ContentLine<'_>]) -> Option<Shared> {
        let shared = Shared::between(lines, &self.lines, |new, old| new.0 == old.0);
        let moves = shared
            .changed(self.lines.len())
            .any(|j| self.states.get(j) != self.states.get(j + 1));
        (!moves).then_some(shared)
    }
}

impl<'a> Reader<'a> {
    /// The state reading a rule line depends on (see [`State`]).
    pub(super) fn state(&self) -> State {
        let open = self.open.filter(|_| !self.dead);
        let declared = open
            .and_then(|i| self.dump.tables.get(i))
            .map_or(0, |t| t.index.len());
        State {
            tables: self.dump.tables.len(),
            open,
            declared,
        }
    }

    /// Marks the start of content line `at`; lines are begun in order, and once more
    /// after the last.
    #[inline]
    pub(super) fn begin_line(&mut self, at: usize) {
        self.at_line = at;
        if self.keep.is_none() {
            return;
        }
        let state = self.state();
        if let Some(keep) = &mut self.keep {
            keep.states.push(state);
            keep.rules.push(None);
        }
    }

    /// Keeps the read of the current line, a rule appended to chain `chain` of the
    /// open table in the state the reader is in, if a memo is being made.
    #[inline]
    pub(super) fn keep_rule(
        &mut self,
        chain: usize,
        rule: &Result<RuleAst, LineError>,
        events: &[NoteEvent<'a>],
    ) {
        if self.keep.is_none() {
            return;
        }
        let state = self.state();
        let Some(keep) = &mut self.keep else {
            return;
        };
        if let Some(slot) = keep.rules.get_mut(self.at_line) {
            *slot = Some(Kept {
                state,
                chain,
                rule: rule.clone(),
                events: events.to_vec(),
            });
        }
    }

    /// Reads `lines`, an edited copy's, taking the rules of the lines it shares with the
    /// original from `memo`. Should a changed line move the state, the lines after it
    /// are all read again: their chains may not be the memo's.
    fn reread(&mut self, lines: &[ContentLine<'a>], memo: &Memo<'_>, shared: Shared) {
        let mut replaying = true;
        for (at, &(line, base)) in lines.iter().enumerate() {
            self.at_line = at;
            let original = shared.original(at, lines.len(), memo.lines.len());
            let kept = original
                .filter(|_| replaying)
                .and_then(|j| Some((memo.rules.get(j)?.as_ref()?, memo.lines.get(j)?.1)));
            match kept {
                // The states are equal by the above; compared all the same, as reading
                // the line again is always right.
                Some((kept, old_base)) if kept.state == self.state() => {
                    let span = Span::new(self.file, base, base + line.len());
                    self.replay(kept, span, base as i64 - old_base as i64);
                }
                _ => {
                    let before = self.state();
                    self.read_line(line, base);
                    let after = self.state();
                    if original.is_none() && after != before {
                        replaying = false;
                    }
                    if after.tables > before.tables {
                        self.make_room(memo.table_sizes.get(before.tables));
                    }
                }
            }
        }
        self.close_table_at_eof();
    }

    /// Room in the table just opened for as many rules as the original's had: grown
    /// rule by rule, its vector of rules was copied whole at each doubling.
    fn make_room(&mut self, rules: Option<&usize>) {
        if let (Some(table), Some(&rules)) = (self.dump.tables.last_mut(), rules) {
            table.rules.reserve_exact(rules);
        }
    }

    /// Stores a kept rule for the line at `span`, `delta` bytes from where it was read,
    /// as reading the line would.
    fn replay(&mut self, kept: &Kept<'_>, span: Span, delta: i64) {
        let mut read = kept.rule.clone();
        match &mut read {
            Ok(rule) => rule.move_spans(delta),
            Err(e) => e.move_spans(delta),
        }
        let clean = read.is_ok();
        self.store_rule(kept.chain, None, read, span, &mut Vec::new());
        if clean {
            for ev in &kept.events {
                let mut at = ev.span;
                at.move_spans(delta);
                self.notes.add(ev.kind, &ev.name, at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;

    /// Lines of each file the edits are made at, spread over it (first and last too).
    const LINES_PER_FILE: usize = 24;

    /// Copies of `text` with one edit at the content line that starts at `at`: the line
    /// removed, doubled, changed, and lines that move the reader's state (a chain
    /// declared, a table closed) or read as nothing put before it.
    fn edited_at(text: &str, at: usize) -> Vec<String> {
        let changed = |line: &str| {
            let bare = line.trim_end();
            vec![format!("{bare} -p tcp\n"), line.replacen("-A", "-I", 1)]
        };
        let put = [
            "-N MEMO-NEW\n",
            ":MEMO-DECLARED - [0:0]\n",
            "COMMIT\n",
            "*nat\n",
            "-A INPUT -p tcp --dport 25 -m nosuchmodule -j ACCEPT\n",
            "# a comment\n",
            "!!!\n",
        ];
        crate::parse::copies_edited_at(text, at, changed, &put)
    }

    /// Every dump at hand, edited at lines spread over it, reads the same with the memo
    /// of the original as afresh: the graph and every finding, spans included. Each
    /// edit moves the lines after it, so a span the memo left unmoved shows.
    #[test]
    fn an_edited_dump_reads_the_same_with_the_memo_of_the_original() {
        let mut files = crate::parse::files_in(&[
            "fixtures/iptables",
            "../shared/corpus/iptables",
            "../shared/corpus/iptables-extension-tests",
        ]);
        // Lines of every kind the reader treats apart, read in order and (the second,
        // past `READ_AHEAD_FROM_LINES`) ahead on every core.
        for count in [300, 3000] {
            let text = super::super::tests::varied_commands(count);
            files.push(SourceFile::new(FileId(0), "varied.rules", text));
        }
        let (mut shared, mut read_whole, mut edits) = (0, 0, 0);
        for file in &files {
            let (parsed, memo) = parse_keeping(file, usize::MAX);
            let memo = memo.expect("a memo");
            assert_eq!(
                format!("{parsed:?}"),
                format!("{:?}", super::super::parse(file)),
                "{} kept",
                file.path.display()
            );
            let starts: Vec<usize> = memo.lines.iter().map(|&(_, base)| base).collect();
            let step = starts.len().div_ceil(LINES_PER_FILE).max(1);
            let mut picked: Vec<usize> = starts.iter().copied().step_by(step).collect();
            picked.extend(starts.last());
            for at in picked {
                // The start of the raw line (a content line's offset skips blanks).
                let at = file.text[..at].rfind('\n').map_or(0, |i| i + 1);
                for text in edited_at(&file.text, at) {
                    let edited = SourceFile::new(file.id, &file.path, text);
                    match memo.shared(&content_lines(&edited.text)) {
                        Some(_) => shared += 1,
                        None => read_whole += 1,
                    }
                    assert_eq!(
                        format!("{:?}", reparse(&edited, &memo)),
                        format!("{:?}", super::super::parse(&edited)),
                        "{} edited at byte {at}",
                        file.path.display()
                    );
                    edits += 1;
                }
            }
        }
        assert!(edits > 5000, "{edits} edited dumps");
        // Both ways are taken: lines copied from the memo, and a whole read where an
        // edited line of the original moved the state.
        assert!(shared > edits / 2, "{shared} of {edits} shared lines");
        assert!(
            read_whole > 0,
            "no edit changed a line that moves the state"
        );
    }

    /// A dump of more command lines than the limit keeps no memo; up to it, one.
    #[test]
    fn the_memo_is_kept_only_up_to_the_rule_limit() {
        let text = "*filter\n:INPUT DROP [0:0]\n-A INPUT -j ACCEPT\n-A INPUT -j DROP\nCOMMIT\n";
        let file = SourceFile::new(FileId(0), "t.rules", text);
        assert!(parse_keeping(&file, 2).1.is_some());
        assert!(parse_keeping(&file, 1).1.is_none());
    }
}
