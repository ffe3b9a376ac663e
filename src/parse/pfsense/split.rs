//! Where the parts of a `config.xml` are, so that roxmltree can read them one by one.
//!
//! roxmltree builds one node table for the whole document: for a 90 MB backup that is
//! millions of nodes in one growing vector, the slowest and largest step of the whole
//! lint, and on one core. A `config.xml` is a root element whose children are sections,
//! and `<filter>`'s children are the rules; each of those is a well-formed element on
//! its own. [`layout`] finds their byte ranges, and the parser hands each one to
//! roxmltree as a document of its own, side by side on every core.
//!
//! This is not an XML reader: it reads no names, values or entities, and decides
//! nothing about the content. It follows the markup just far enough to know where
//! elements start and end, and gives up (`None`, and the caller parses the whole
//! document as before) at anything that would make a part mean something different on
//! its own, or that roxmltree would not see when it reads the parts: a DTD, a namespace
//! declaration on the root, text, comments or processing instructions between the
//! parts, or tags that do not pair up. Everything in the parts, and the prolog with the
//! root's start tag, is still checked by roxmltree.

use memchr::memchr;
use memchr::memmem::Finder;
use std::ops::Range;

/// One element's place in the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    /// Its name.
    pub name: Range<usize>,
    /// From `<` of its start tag to `>` of its end tag (or of `<x/>`).
    pub range: Range<usize>,
    /// Just after the `>` of its start tag.
    pub tag_end: usize,
}

impl Element {
    /// True if anything (text, a comment, an element) stands between its start and end
    /// tags: roxmltree then gives it a first child.
    pub fn has_content(&self, text: &str) -> bool {
        self.tag_end < self.range.end
            && text.as_bytes().get(self.tag_end..self.tag_end + 2) != Some(b"</")
    }
}

/// The parts of a document: the root and its children, and the children of each child
/// named `filter`.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The root element.
    pub root: Element,
    /// The root's element children in file order, each with its own element children if
    /// it is a `<filter>`.
    pub sections: Vec<(Element, Vec<Element>)>,
}

/// The layout of `text`, or `None` if the document is not one [`layout`] can split.
pub fn layout(text: &str) -> Option<Layout> {
    let mut s = Scanner {
        text: text.as_bytes(),
        at: 0,
        open: Vec::new(),
        root: None,
        sections: Vec::new(),
        filter_children: Vec::new(),
        closers: [Finder::new(b"-->"), Finder::new(b"]]>"), Finder::new(b"?>")],
    };
    s.run()?;
    let root = s.root?;
    if text.get(root.range.start..root.tag_end)?.contains("xmlns") {
        // A namespace declared on the root would not be declared in the parts.
        return None;
    }
    Some(Layout {
        root,
        sections: s.sections,
    })
}

/// The markup walk: a stack of open element names, and the elements found so far.
struct Scanner<'t> {
    text: &'t [u8],
    at: usize,
    /// Open elements: start offset, name, end of start tag.
    open: Vec<(usize, Range<usize>, usize)>,
    root: Option<Element>,
    sections: Vec<(Element, Vec<Element>)>,
    /// The children of the `<filter>` that is open, if one is.
    filter_children: Vec<Element>,
    /// The ends of a comment, CDATA and a processing instruction (see [`Closer`]), built
    /// once: every rule of a pfSense backup has a CDATA description.
    closers: [Finder<'static>; 3],
}

/// What [`Scanner::skip_past`] looks for: `-->`, `]]>` or `?>`.
#[derive(Clone, Copy)]
enum Closer {
    Comment,
    Cdata,
    Pi,
}

/// Open elements inside the root: the root's own content is a gap between parts.
const ROOT: usize = 1;
/// Open elements inside a section: a `<filter>`'s own content is a gap between parts.
const SECTION: usize = 2;

impl Scanner<'_> {
    fn run(&mut self) -> Option<()> {
        loop {
            let Some(lt) = memchr(b'<', &self.text[self.at..]).map(|i| self.at + i) else {
                // Nothing after the root but whitespace, and the root was closed.
                return (self.open.is_empty()
                    && self.root.is_some()
                    && self.gap_is_blank(self.text.len()))
                .then_some(());
            };
            if self.in_gap() && !self.gap_is_blank(lt) {
                return None;
            }
            self.at = lt;
            let rest = &self.text[lt..];
            if rest.starts_with(b"<!--") {
                self.skip_past(4, Closer::Comment, self.before_root())?;
            } else if rest.starts_with(b"<?") {
                self.skip_past(2, Closer::Pi, self.before_root())?;
            } else if rest.starts_with(b"<!") {
                // A DTD, or CDATA between parts: the whole-document parse reads those.
                return None;
            } else if rest.starts_with(b"</") {
                self.end_tag()?;
            } else {
                if self.root.is_some() && self.open.is_empty() {
                    return None; // a second root element
                }
                self.start_tag()?;
                if self.opens_part() {
                    self.skip_to_part_end()?;
                }
            }
        }
    }

    /// True if the element just opened is a part: a section other than `<filter>`, or
    /// a child of a `<filter>`.
    fn opens_part(&self) -> bool {
        match self.open.len() {
            SECTION => !self.open_is_filter(),
            n => n == SECTION + 1 && self.open_is_filter(),
        }
    }

    /// Moves to the end tag that closes the part just opened, counting depth only: what
    /// is inside a part is roxmltree's to check, and a part whose tags do not pair up
    /// does not parse on its own.
    fn skip_to_part_end(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            // Plain byte loops, not memchr: inside a rule the next `<` or `>` is a few
            // bytes away, and memchr's setup cost more than the search (87 → 41 ms for
            // the 90 MB backup).
            self.at += position(&self.text[self.at..], |b| b == b'<')?;
            let rest = &self.text[self.at..];
            if rest.starts_with(b"</") {
                if depth == 0 {
                    return Some(());
                }
                depth -= 1;
                self.at += 2 + position(&rest[2..], |b| b == b'>')? + 1;
            } else if rest.starts_with(b"<!--") {
                self.skip_past(4, Closer::Comment, true)?;
            } else if rest.starts_with(b"<![CDATA[") {
                self.skip_past(9, Closer::Cdata, true)?;
            } else if rest.starts_with(b"<?") {
                self.skip_past(2, Closer::Pi, true)?;
            } else if rest.starts_with(b"<!") {
                return None;
            } else {
                let end = self.tag_end_of(self.at + 1)?;
                if self.text[end - 2] != b'/' {
                    depth += 1;
                }
                self.at = end;
            }
        }
    }

    /// True where text between `self.at` and the next tag belongs to no part: before
    /// or after the root, directly in the root, or directly in a `<filter>`.
    fn in_gap(&self) -> bool {
        match self.open.len() {
            0 => true,
            ROOT => true,
            SECTION => self.open_is_filter(),
            _ => false,
        }
    }

    fn before_root(&self) -> bool {
        self.root.is_none() && self.open.is_empty()
    }

    fn open_is_filter(&self) -> bool {
        self.open
            .get(SECTION - 1)
            .is_some_and(|(_, name, _)| &self.text[name.clone()] == b"filter")
    }

    fn gap_is_blank(&self, end: usize) -> bool {
        is_blank(&self.text[self.at..end])
    }

    /// Moves past the next `close` after an opener of `open` bytes, if `allowed` here
    /// and there is one.
    fn skip_past(&mut self, open: usize, close: Closer, allowed: bool) -> Option<()> {
        if !allowed {
            return None;
        }
        let from = self.at + open;
        let finder = &self.closers[close as usize];
        let found = finder.find(&self.text[from..])?;
        self.at = from + found + finder.needle().len();
        Some(())
    }

    /// The name at `self.at + skip`: up to whitespace, `/` or `>`.
    fn name_at(&self, skip: usize) -> Option<Range<usize>> {
        let start = self.at + skip;
        let len = self.text[start..]
            .iter()
            .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))?;
        (len > 0).then_some(start..start + len)
    }

    /// `<name attr="…" …>` or `<name …/>`.
    fn start_tag(&mut self) -> Option<()> {
        let start = self.at;
        let name = self.name_at(1)?;
        let tag_end = self.tag_end_of(name.end)?;
        self.at = tag_end;
        if self.text[tag_end - 2] == b'/' {
            self.found(Element {
                name,
                range: start..tag_end,
                tag_end,
            });
        } else {
            self.open.push((start, name, tag_end));
        }
        Some(())
    }

    /// Just after the `>` that closes a start tag whose name ends at `from`: the first
    /// one not inside a quoted attribute value.
    fn tag_end_of(&self, from: usize) -> Option<usize> {
        let mut i = from;
        loop {
            let hit = i + position(&self.text[i..], |b| matches!(b, b'>' | b'"' | b'\''))?;
            match self.text[hit] {
                b'>' => return Some(hit + 1),
                quote => i = hit + 1 + memchr(quote, &self.text[hit + 1..])? + 1,
            }
        }
    }

    /// `</name>`, which must close the innermost open element.
    fn end_tag(&mut self) -> Option<()> {
        let name = self.name_at(2)?;
        let close = name.end + memchr(b'>', &self.text[name.end..])?;
        if !is_blank(&self.text[name.end..close]) {
            return None;
        }
        let (start, open_name, tag_end) = self.open.pop()?;
        if self.text[open_name.clone()] != self.text[name] {
            return None;
        }
        self.at = close + 1;
        self.found(Element {
            name: open_name,
            range: start..self.at,
            tag_end,
        });
        Some(())
    }

    /// Records a closed element at the depth it was found.
    fn found(&mut self, e: Element) {
        match self.open.len() {
            0 => self.root = Some(e),
            ROOT => {
                // A filter's children were gathered while it was open; other sections
                // have none to keep.
                let children = std::mem::take(&mut self.filter_children);
                self.sections.push((e, children));
            }
            SECTION if self.open_is_filter() => self.filter_children.push(e),
            _ => {}
        }
    }
}

/// The index of the first byte of `bytes` that `hit` accepts.
fn position(bytes: &[u8], hit: impl Fn(u8) -> bool) -> Option<usize> {
    bytes.iter().position(|&b| hit(b))
}

/// XML whitespace only.
fn is_blank(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str, l: &Layout) -> Vec<(String, Vec<String>)> {
        l.sections
            .iter()
            .map(|(s, children)| {
                let kids = children.iter().map(|c| text[c.name.clone()].to_string());
                (text[s.name.clone()].to_string(), kids.collect())
            })
            .collect()
    }

    #[test]
    fn finds_sections_and_the_filter_children() {
        let text = "<?xml version=\"1.0\"?>\n<!-- saved -->\n<pfsense>\n <system><x a='>'/></system>\n <filter>\n  <rule><descr><![CDATA[</rule>]]></descr></rule>\n  <separator/>\n  <rule id=\"a>b\"><!-- </rule> --></rule>\n </filter>\n</pfsense>\n";
        let l = layout(text).expect("splits");
        assert_eq!(&text[l.root.name.clone()], "pfsense");
        assert_eq!(
            names(text, &l),
            [
                ("system".to_string(), vec![]),
                (
                    "filter".to_string(),
                    vec!["rule".into(), "separator".into(), "rule".into()]
                ),
            ]
        );
        let rules = &l.sections[1].1;
        assert!(text[rules[0].range.clone()].ends_with("]]></descr></rule>"));
        assert_eq!(
            &text[rules[2].range.clone()],
            "<rule id=\"a>b\"><!-- </rule> --></rule>"
        );
        assert_eq!(
            &text[rules[2].range.start..rules[2].tag_end],
            "<rule id=\"a>b\">"
        );
        assert!(l.sections[1].0.has_content(text));
        assert!(!rules[1].has_content(text));
    }

    #[test]
    fn gives_up_where_parts_would_read_differently() {
        for text in [
            // a DTD
            "<!DOCTYPE x [<!ENTITY a \"b\">]><pfsense><filter/></pfsense>",
            // a namespace on the root
            "<pfsense xmlns:p=\"urn:x\"><p:filter/></pfsense>",
            // text, a comment or CDATA between parts
            "<pfsense>text<filter/></pfsense>",
            "<pfsense><filter><!-- c --><rule/></filter></pfsense>",
            "<pfsense><filter><![CDATA[x]]><rule/></filter></pfsense>",
            "<pfsense><filter/></pfsense><!-- after -->",
            // tags that do not pair up, or run off the end
            "<pfsense><filter><rule></filter></rule></pfsense>",
            "<pfsense><filter><rule></rule></filter>",
            "<pfsense><filter><rule a=\"x></rule></filter></pfsense>",
            "<pfsense><filter><rule><!-- x </rule></filter></pfsense>",
            // two roots
            "<pfsense/><pfsense/>",
            "",
        ] {
            assert!(layout(text).is_none(), "{text}");
        }
    }

    #[test]
    fn empty_elements_have_no_content() {
        let text = "<pfsense><filter></filter><nat/><aliases> </aliases></pfsense>";
        let l = layout(text).expect("splits");
        let content: Vec<bool> = l
            .sections
            .iter()
            .map(|(e, _)| e.has_content(text))
            .collect();
        assert_eq!(content, [false, false, true]);
        assert!(l.root.has_content(text));
    }
}
