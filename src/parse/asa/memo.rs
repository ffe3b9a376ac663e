//! What the parse of a running-config keeps for reading edited copies of it.
//!
//! Fix verification parses an edited copy of the file for each candidate fix, and a
//! candidate changes an access-list line or two. An access-list line reads the same
//! wherever it stands, given the same service and icmp-type groups: the copy's lines
//! that the original has too are taken from the memo with their spans moved, and only
//! the changed ones are read again. The answer is the one [`super::parse`] gives; the
//! tests compare the two on edited copies of every fixture and corpus config.

use super::ast::AclLine;
use super::grammar::Cx;
use super::{Block, PARALLEL_FROM_BLOCKS, Parsed, PreRead, parse_reading, pre_read_access_lists};
use crate::parse::Shared;
use crate::source::{MoveSpans, SourceFile};
use std::collections::HashSet;

/// A config's blocks, with what the grammar read of each access-list line it read.
pub struct Memo<'o> {
    /// Each block's first line, and its offset in the file.
    heads: Vec<(&'o str, usize)>,
    /// By block, for an access-list line the grammar read: the length of the text it
    /// read (a prefix of the block's first line) and what it read.
    reads: Vec<Option<(usize, AclLine<'o>)>>,
    /// The groups an `object-group` name in an entry reads by.
    service_groups: HashSet<&'o str>,
    icmp_groups: HashSet<&'o str>,
}

/// [`super::parse`], keeping a memo as well if the config has at most `keep_up_to`
/// access-list entries (a bigger file gets no verified fix, and the memo holds a copy
/// of every entry).
pub fn parse_keeping(file: &SourceFile, keep_up_to: usize) -> (Parsed, Option<Memo<'_>>) {
    let mut memo = None;
    let parsed = parse_reading(file, None, |cx, blocks| {
        // Every access-list line is read ahead, so that the memo can copy it.
        let read = pre_read_access_lists(cx, blocks, 0);
        let entries = read
            .iter()
            .filter(|p| matches!(p.read, Ok((_, AclLine::Ace(_)))))
            .count();
        if entries <= keep_up_to {
            memo = Some(Memo::of(cx, blocks, &read));
        }
        read
    });
    (parsed, memo)
}

/// Parses an edited copy of the config `memo` was kept of: the same answer as
/// [`super::parse`], with only the access-list lines the edit changed read again.
pub fn reparse<'i>(file: &'i SourceFile, memo: &Memo<'i>) -> Parsed {
    parse_reading(file, None, |cx, blocks| memo.read_ahead(cx, blocks))
}

impl<'o> Memo<'o> {
    fn of(cx: &Cx<'o>, blocks: &[Block<'o>], read: &[PreRead<'o>]) -> Memo<'o> {
        let mut reads = vec![None; blocks.len()];
        for p in read {
            if let (Ok((_, line)), Some(slot)) = (&p.read, reads.get_mut(p.block)) {
                *slot = Some((p.line.len(), line.clone()));
            }
        }
        Memo {
            heads: blocks
                .iter()
                .map(|b| (b.head, cx.span(b.head).start as usize))
                .collect(),
            reads,
            service_groups: cx.service_groups.clone(),
            icmp_groups: cx.icmp_groups.clone(),
        }
    }

    /// The access-list lines of `blocks` (an edited copy's) that the original has too,
    /// as the memo holds them, for the reader to take in. Where the copy's groups
    /// differ from the original's, those a parse reads ahead: an entry may read
    /// otherwise.
    fn read_ahead<'a>(&self, cx: &Cx<'a>, blocks: &[Block<'a>]) -> Vec<PreRead<'a>>
    where
        'o: 'a,
    {
        if cx.service_groups != self.service_groups || cx.icmp_groups != self.icmp_groups {
            return pre_read_access_lists(cx, blocks, PARALLEL_FROM_BLOCKS);
        }
        let shared = self.shared(blocks);
        let mut out = Vec::new();
        for (block, b) in blocks.iter().enumerate() {
            let original = shared.original(block, blocks.len(), self.heads.len());
            let kept = original.and_then(|j| Some((self.reads.get(j)?, self.heads.get(j)?.1)));
            // The others the reader reads as it goes, as it reads a small config's.
            if let Some((Some((len, kept)), old_offset)) = kept {
                let mut read = kept.clone();
                read.move_spans(i64::from(cx.span(b.head).start) - old_offset as i64);
                let line = b.head.get(..*len).unwrap_or(b.head);
                out.push(PreRead {
                    block,
                    line,
                    read: Ok(("", read)),
                });
            }
        }
        out
    }

    /// What `blocks` (an edited copy's) share with the original's, by their first
    /// lines (only those matter to an access-list line).
    fn shared(&self, blocks: &[Block<'_>]) -> Shared {
        Shared::between(blocks, &self.heads, |b, kept| b.head == kept.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{cut_lines, group_blocks};
    use super::*;

    /// Lines of each file the edits are made at, spread over it (the last too).
    const LINES_PER_FILE: usize = 30;

    /// Copies of `text` with one edit at the line that starts at `at`: the line
    /// removed, doubled or changed, and lines put before it that change the groups an
    /// entry reads by, attach a remark, fail to read, or join the block above.
    fn edited_at(text: &str, at: usize) -> Vec<String> {
        let changed = |line: &str| {
            let bare = line.trim_end();
            vec![format!("{bare} log\n"), format!("{bare} ! a comment\n")]
        };
        let put = [
            "object-group service MEMO-SVC tcp\n port-object eq 25\n",
            "object-group icmp-type MEMO-ICMP\n icmp-object echo\n",
            "access-list OUT extended permit tcp any any eq 25\n",
            "access-list OUT remark put before\n",
            "access-list OUT extended permit bogus any\n",
            "! a comment line\n",
            " an indented line\n",
        ];
        crate::parse::copies_edited_at(text, at, changed, &put)
    }

    /// Every config at hand, edited at lines spread over it, reads the same with the
    /// memo of the original as afresh: the graph and every finding, spans included.
    /// Each edit moves the lines after it, so a span the memo left unmoved shows.
    #[test]
    fn an_edited_config_reads_the_same_with_the_memo_of_the_original() {
        let (mut copied, mut groups_changed, mut edits) = (0, 0, 0);
        let mut files = super::super::tests::asa_files();
        // Entries the grammar refuses among entries it reads, which the edits shift.
        let refused: String = (0..40)
            .map(|i| match i % 4 {
                0 => format!("access-list OUT extended permit tcp any host 10.0.0.{i} eq {i}\n"),
                1 => format!("access-list OUT extended permit bogus{i} any\n"),
                2 => format!("access-list OUT extended deny tcp any any eq {i} extra{i}\n"),
                _ => format!("access-list OUT remark remark {i}\n"),
            })
            .collect();
        files.push(SourceFile::new(
            crate::source::FileId(0),
            "refused.cfg",
            format!(
                "interface G0\n nameif outside\n{refused}access-group OUT in interface outside\n"
            ),
        ));
        for file in files {
            let (parsed, memo) = parse_keeping(&file, usize::MAX);
            let Some(memo) = memo else {
                // `show access-list` output: refused whole, kept nothing.
                assert!(parsed.graph.is_none(), "{}", file.path.display());
                continue;
            };
            assert_eq!(
                format!("{parsed:?}"),
                format!("{:?}", super::super::parse(&file)),
                "{} kept",
                file.path.display()
            );
            let starts: Vec<usize> = std::iter::once(0)
                .chain(file.text.match_indices('\n').map(|(i, _)| i + 1))
                .filter(|&i| i < file.text.len())
                .collect();
            let step = starts.len().div_ceil(LINES_PER_FILE).max(1);
            let mut picked: Vec<usize> = starts.iter().copied().step_by(step).collect();
            picked.extend(starts.last());
            for at in picked {
                for text in edited_at(&file.text, at) {
                    let edited = SourceFile::new(file.id, &file.path, text);
                    let lines = cut_lines(&edited.text);
                    let blocks = group_blocks(&lines);
                    let mut cx = Cx::new(edited.id, &edited.text);
                    super::super::prescan_groups(&blocks, &mut cx);
                    if cx.service_groups == memo.service_groups
                        && cx.icmp_groups == memo.icmp_groups
                    {
                        let shared = memo.shared(&blocks);
                        copied += usize::from(shared.head + shared.tail > 0);
                    } else {
                        groups_changed += 1;
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
        assert!(edits > 2000, "{edits} edited configs");
        // Both ways are taken: lines copied from the memo, and a whole read where the
        // edit changed the groups.
        assert!(copied > edits / 2, "{copied} of {edits} copied lines");
        assert!(groups_changed > 0, "no edit changed the groups");
    }

    /// A config of more entries than the limit keeps no memo; up to it, one.
    #[test]
    fn the_memo_is_kept_only_up_to_the_entry_limit() {
        let text = "access-list A extended permit ip any any\n\
                    access-list A remark two entries and a remark\n\
                    access-list A extended deny ip any any\n";
        let file = SourceFile::new(crate::source::FileId(0), "t.cfg", text);
        assert!(parse_keeping(&file, 2).1.is_some());
        assert!(parse_keeping(&file, 1).1.is_none());
    }
}
