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
    layout_by(text, true).map(|(layout, _)| layout)
}

/// [`layout`], finding the ends of plain parts by search if `search`, else walking
/// every part's markup (the tests hold the two to the same layout), with the number
/// of parts whose end was found by search.
fn layout_by(text: &str, search: bool) -> Option<(Layout, usize)> {
    let mut s = Scanner {
        text: text.as_bytes(),
        at: 0,
        open: Vec::new(),
        root: None,
        sections: Vec::new(),
        filter_children: Vec::new(),
        closers: [Finder::new(b"-->"), Finder::new(b"]]>"), Finder::new(b"?>")],
        markup: [Finder::new(b"<!"), Finder::new(b"<?")],
        part_tags: None,
        search,
        searched: 0,
    };
    s.run()?;
    let root = s.root?;
    if text.get(root.range.start..root.tag_end)?.contains("xmlns") {
        // A namespace declared on the root would not be declared in the parts.
        return None;
    }
    let layout = Layout {
        root,
        sections: s.sections,
    };
    Some((layout, s.searched))
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
    /// `<!` and `<?`, which open what may hide an end tag (see [`Scanner::plain_end`]).
    markup: [Finder<'static>; 2],
    /// Finders of the last part name's start and end tags: nearly every part is a
    /// `<rule>`, and a finder costs more to build than to run on one rule.
    part_tags: Option<PartTags>,
    /// Whether plain parts' ends are found by search.
    search: bool,
    /// How many parts' ends were.
    searched: usize,
}

/// A part name's tags, `<name` and `</name`, as [`Scanner::plain_end`] looks for them.
struct PartTags {
    name: Vec<u8>,
    start: Finder<'static>,
    end: Finder<'static>,
}

impl PartTags {
    fn new(name: &[u8]) -> PartTags {
        PartTags {
            name: name.to_vec(),
            start: Finder::new(&[b"<", name].concat()).into_owned(),
            end: Finder::new(&[b"</", name].concat()).into_owned(),
        }
    }
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

    /// Moves to the end tag that closes the part just opened: at once if the part is
    /// plain (see [`Scanner::plain_end`]), else by walking its markup.
    fn skip_to_part_end(&mut self) -> Option<()> {
        if let Some(end) = self.search.then(|| self.plain_end()).flatten() {
            self.at = end;
            self.searched += 1;
            return Some(());
        }
        self.walk_to_part_end()
    }

    /// Where the end tag of the part just opened starts, if the part is plain: the first
    /// `</name` after its start tag, with nothing before it that could hide an end tag
    /// or open another element of that name — no comment, processing instruction or
    /// `<name`, and CDATA only where it closes before that end tag. Searching for these
    /// few strings halves the time to lay out a 90 MB backup (57–62 → 27–31 ms), where
    /// walking took each tag in turn. A part that is not plain is walked as before. A
    /// well-formed plain part ends at that end tag whichever way it is found; in a part
    /// that is not well-formed the two may stop at different places, and roxmltree
    /// refuses the part either way (the whole document is then parsed as before).
    fn plain_end(&mut self) -> Option<usize> {
        let (_, name, tag_end) = self.open.last()?.clone();
        let name = &self.text[name];
        if self.part_tags.as_ref().is_none_or(|t| t.name != name) {
            self.part_tags = Some(PartTags::new(name));
        }
        let tags = self.part_tags.as_ref()?;
        let body = &self.text[tag_end..];
        let end = first_match(&tags.end, body, b">")?;
        let inner = &body[..end];
        let plain = self.only_closed_cdata(inner)
            && self.markup[1].find(inner).is_none()
            && first_match(&tags.start, inner, b"/>").is_none();
        plain.then_some(tag_end + end)
    }

    /// True if every `<!` of `inner` opens CDATA that closes inside it: CDATA's text is
    /// no markup, and a comment (or anything else) is left to the walk.
    fn only_closed_cdata(&self, inner: &[u8]) -> bool {
        const CDATA: &[u8] = b"<![CDATA[";
        let (open, close) = (&self.markup[0], &self.closers[Closer::Cdata as usize]);
        let mut from = 0;
        while let Some(at) = open.find(&inner[from..]).map(|i| from + i) {
            let Some(content) = inner[at..].strip_prefix(CDATA) else {
                return false;
            };
            let Some(closed) = close.find(content) else {
                return false;
            };
            from = at + CDATA.len() + closed + close.needle().len();
        }
        true
    }

    /// Moves to the end tag that closes the part just opened, counting depth only: what
    /// is inside a part is roxmltree's to check, and a part whose tags do not pair up
    /// does not parse on its own.
    fn walk_to_part_end(&mut self) -> Option<()> {
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

/// Where `tag` (`<name` or `</name`) first stands in `text` as the whole name: followed
/// by a blank or one of `ends`, not by more of a longer name.
fn first_match(tag: &Finder, text: &[u8], ends: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + tag.find(&text[from..])?;
        let after = *text.get(at + tag.needle().len())?;
        if ends.contains(&after) || matches!(after, b' ' | b'\t' | b'\r' | b'\n') {
            return Some(at);
        }
        from = at + 1;
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

    /// What a rule may hold, for the search for its end to get wrong: end tags hidden
    /// in CDATA, comments and processing instructions, rules inside rules, names that
    /// start with `rule`, `>` in attributes, and markup left open.
    const CONTENT: [&str; 16] = [
        "<descr><![CDATA[plain]]></descr>",
        "<descr><![CDATA[x</rule>y]]></descr>",
        "<descr><![CDATA[<rule>]]></descr>",
        "<!-- </rule> -->",
        "<!-- c -->",
        "<?pi </rule>?>",
        "<rule/>",
        "<rule><a/></rule>",
        "<rules>x</rules>",
        "<a b=\"x>y\">t</a>",
        "<a>t &amp; u</a>",
        "<a>",
        "<![CDATA[",
        "<!--",
        "]]>",
        "</a>",
    ];

    /// How a rule may end.
    const ENDS: [&str; 3] = ["</rule>", "</rule >", "</rule\n>"];

    /// A config of `rules`, each its content's fragments and an end.
    fn config(rules: &[(Vec<usize>, usize)]) -> String {
        let mut text = String::from("<pfsense>\n<system/>\n<filter>\n");
        for (content, end) in rules {
            text.push_str("<rule>");
            for &c in content {
                text.push_str(CONTENT[c % CONTENT.len()]);
            }
            text.push_str(ENDS[end % ENDS.len()]);
            text.push('\n');
        }
        text.push_str("</filter>\n</pfsense>\n");
        text
    }

    /// The texts roxmltree reads of a layout: the sections, and the filter's children.
    fn parts<'t>(text: &'t str, l: &Layout) -> Vec<&'t str> {
        let mut out = Vec::new();
        for (section, children) in &l.sections {
            match children.is_empty() {
                true => out.push(&text[section.range.clone()]),
                false => out.extend(children.iter().map(|c| &text[c.range.clone()])),
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Found by search or by walking the markup, the same parts; where they differ
        /// (markup that does not pair up), roxmltree refuses a part of each, so the
        /// whole document is read as before either way.
        #[test]
        fn parts_found_by_search_are_the_parts_the_walk_finds(
            rules in proptest::collection::vec(
                (proptest::collection::vec(0..CONTENT.len(), 0..4), 0..ENDS.len()),
                1..4,
            )
        ) {
            let text = config(&rules);
            let [searched, walked] = [true, false].map(|search| layout_by(&text, search).map(|(l, _)| l));
            let shown = |l: &Option<Layout>| format!("{l:?}");
            if shown(&searched) != shown(&walked) {
                let refused = |l: &Option<Layout>| {
                    l.as_ref().is_none_or(|l| {
                        parts(&text, l)
                            .iter()
                            .any(|p| roxmltree::Document::parse(p).is_err())
                    })
                };
                proptest::prop_assert!(refused(&searched) && refused(&walked), "{}", text);
            }
        }
    }

    #[test]
    fn plain_rules_are_found_by_search_and_the_others_walked() {
        // Plain rules (CDATA that closes, a longer name that starts with `rule`, `>` in
        // an attribute, an entity, blanks in the end tag), then one that hides `</rule>`
        // in CDATA and one that holds a rule.
        let text = config(&[
            (vec![0, 8, 9, 10], 0),
            (vec![], 1),
            (vec![0, 0], 2),
            (vec![1], 0),
            (vec![7], 0),
        ]);
        let (searched, found) = layout_by(&text, true).expect("splits");
        let (walked, none) = layout_by(&text, false).expect("splits");
        assert_eq!(format!("{searched:?}"), format!("{walked:?}"));
        assert_eq!(searched.sections[1].1.len(), 5);
        // The system section is an empty element, so no part's end is searched for.
        assert_eq!((found, none), (3, 0));
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
