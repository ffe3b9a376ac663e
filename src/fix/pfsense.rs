//! Fix edits in pfSense `config.xml`: a `<rule>` element inserted before the blocking
//! rule or after the ingress interface's last rule (ahead of the default deny), a
//! destination `<port>` narrowed, a `<rule>` element deleted.
//!
//! Called by `fix::suggest`. Elements are found with roxmltree, whose byte ranges give
//! the edits; the new elements copy the file's indentation. pfSense evaluates an
//! interface's rules in document order, so document position is rule order.

use super::{Net, Permit, Placement, edit, line_at, ranges_of};
use crate::graph::IntervalSet;
use crate::graph::sets::{PORT_MAX, proto};
use crate::parse::pfsense::split::{self, Layout};
use crate::report::finding::Edit;
use crate::source::{FileId, Span};
use roxmltree::{Document, Node, ParsingOptions};
use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

/// A `config.xml` as fix placement reads it. A file the pfSense reader can split is
/// read element by element: each element an edit needs is parsed on its own, where it
/// stands, as the reader parses it. The whole document of a 10,000-rule file costs
/// 28 ms on one core and more memory than the lint's graph. A file the reader cannot
/// split is parsed whole.
pub struct Xml<'t> {
    form: Form<'t>,
    /// What placing a permit for the default deny reads of the filters, once it has.
    filters: OnceLock<Vec<FilterFacts>>,
}

/// How a [`Xml`] holds its file.
enum Form<'t> {
    /// The text and where its sections and `<filter>` children are.
    Split(&'t str, Cow<'t, Layout>),
    /// The whole document.
    Whole(Document<'t>),
}

impl<'t> Xml<'t> {
    /// `text` ready for placing edits: split as the reader splits it, or else parsed
    /// whole; `None` if neither works. A rule of a split file that does not parse on its
    /// own (the lint then read the file whole) gets no edit.
    pub fn read(text: &'t str) -> Option<Xml<'t>> {
        match split::layout(text) {
            Some(layout) => Some(Xml::split(text, Cow::Owned(layout))),
            None => parse_xml(text).ok().map(|doc| Xml::of(Form::Whole(doc))),
        }
    }

    /// `text` by its layout.
    pub fn split(text: &'t str, layout: Cow<'t, Layout>) -> Xml<'t> {
        Xml::of(Form::Split(text, layout))
    }

    fn of(form: Form<'t>) -> Xml<'t> {
        Xml {
            form,
            filters: OnceLock::new(),
        }
    }

    fn text(&self) -> &'t str {
        match &self.form {
            Form::Split(text, _) => text,
            Form::Whole(doc) => doc.input_text(),
        }
    }

    /// `f` of the `<rule>` element of `<filter>` that starts at `offset`, and the
    /// offset its node's ranges count from.
    fn with_rule<R>(&self, offset: usize, f: impl FnOnce(Node, usize) -> R) -> Option<R> {
        match &self.form {
            Form::Split(text, layout) => {
                let rule = filters(text, layout)
                    .flat_map(|(_, children)| children)
                    .find(|c| c.range.start == offset && name(text, c) == "rule")?;
                alone(text, &rule.range, |node| f(node, rule.range.start))
            }
            Form::Whole(doc) => rule_at(doc, offset).map(|n| f(n, 0)),
        }
    }

    /// `f` of the `<rule>` element of `<nat>` that starts at `offset`, and the offset its
    /// node's ranges count from.
    fn with_nat_rule<R>(&self, offset: usize, f: impl FnOnce(Node, usize) -> R) -> Option<R> {
        let is_it = |n: &Node, base: usize| {
            n.has_tag_name("rule")
                && n.range().start + base == offset
                && n.parent().is_some_and(|p| p.has_tag_name("nat"))
        };
        match &self.form {
            Form::Split(text, layout) => {
                let (nat, _) = layout
                    .sections
                    .iter()
                    .find(|(s, _)| s.range.contains(&offset) && name(text, s) == "nat")?;
                let base = nat.range.start;
                alone(text, &nat.range, |node| {
                    let rule = node.descendants().find(|n| is_it(n, base))?;
                    Some(f(rule, base))
                })?
            }
            Form::Whole(doc) => doc.descendants().find(|n| is_it(n, 0)).map(|n| f(n, 0)),
        }
    }

    /// Where a permit goes when the default deny (the `<filter>` start tag at `offset`)
    /// decides: after the last non-floating rule on `iface`, or before `</filter>`; and
    /// the element whose indentation it copies, and whether the filter has no rule.
    fn end_of_rules(&self, offset: usize, iface: &str) -> Option<(usize, usize, bool)> {
        let filter = self.filters().iter().find(|f| f.start == offset)?;
        let last = filter.rules.iter().rev().find(|r| {
            !r.floating
                && r.interface
                    .as_deref()
                    .is_some_and(|v| v.split(',').any(|x| x.trim() == iface))
        });
        let (text, close) = (self.text(), filter.close);
        Some(match (last, filter.rules.first()) {
            (Some(r), _) => (line_at(text, r.range.end).2, r.range.start, false),
            (None, any) => (
                line_at(text, close).0,
                any.map_or(close, |r| r.range.start),
                any.is_none(),
            ),
        })
    }

    /// The filters' facts, read the first time they are needed: every candidate of a
    /// file whose interface has no rule of its own would otherwise read all the rules
    /// again.
    fn filters(&self) -> &[FilterFacts] {
        self.filters.get_or_init(|| match &self.form {
            Form::Split(text, layout) => split_filters(text, layout),
            Form::Whole(doc) => whole_filters(doc),
        })
    }
}

/// What the default deny's placement reads of a `<filter>`.
pub struct FilterFacts {
    /// Where it starts.
    start: usize,
    /// Where its `</filter>` starts.
    close: usize,
    /// Its `<rule>` children, in order.
    rules: Vec<RuleFacts>,
}

/// What the default deny's placement reads of one `<rule>` of a `<filter>`.
struct RuleFacts {
    /// The element.
    range: Range<usize>,
    floating: bool,
    /// Its `<interface>` text, trimmed; `None` if it has none (or, in a split file,
    /// does not parse alone).
    interface: Option<String>,
}

impl RuleFacts {
    /// The facts of rule node `r`, whose ranges count from `base`.
    fn of(r: Node, base: usize) -> RuleFacts {
        RuleFacts {
            range: r.range().start + base..r.range().end + base,
            floating: is_floating(r),
            interface: child_text(r, "interface").map(str::to_string),
        }
    }
}

/// Where `</filter>` starts in a filter element that ends at `end`.
fn close_of(end: usize) -> usize {
    end.saturating_sub("</filter>".len())
}

/// The facts of a split document's filters, each rule parsed alone, on every core.
fn split_filters(text: &str, layout: &Layout) -> Vec<FilterFacts> {
    use rayon::prelude::*;
    filters(text, layout)
        .map(|(f, children)| {
            let rules: Vec<&split::Element> = children
                .iter()
                .filter(|c| name(text, c) == "rule")
                .collect();
            let rules = rules
                .into_par_iter()
                .map(|r| {
                    alone(text, &r.range, |n| RuleFacts::of(n, r.range.start)).unwrap_or(
                        RuleFacts {
                            range: r.range.clone(),
                            floating: false,
                            interface: None,
                        },
                    )
                })
                .collect();
            FilterFacts {
                start: f.range.start,
                close: close_of(f.range.end),
                rules,
            }
        })
        .collect()
}

/// The facts of every `<filter>` element of a whole document.
fn whole_filters(doc: &Document) -> Vec<FilterFacts> {
    doc.descendants()
        .filter(|n| n.has_tag_name("filter"))
        .map(|f| FilterFacts {
            start: f.range().start,
            close: close_of(f.range().end),
            rules: f
                .children()
                .filter(|r| r.has_tag_name("rule"))
                .map(|r| RuleFacts::of(r, 0))
                .collect(),
        })
        .collect()
}

/// The `<filter>` sections of a split document, with their children.
fn filters<'l>(
    text: &'l str,
    layout: &'l Layout,
) -> impl Iterator<Item = &'l (split::Element, Vec<split::Element>)> {
    layout
        .sections
        .iter()
        .filter(move |(s, _)| name(text, s) == "filter")
}

fn name<'t>(text: &'t str, e: &split::Element) -> &'t str {
    &text[e.name.clone()]
}

/// `f` of the element at `range` of `text`, parsed on its own; `None` if it does not
/// parse alone.
fn alone<R>(text: &str, range: &Range<usize>, f: impl FnOnce(Node) -> R) -> Option<R> {
    let doc = parse_xml(&text[range.clone()]).ok()?;
    Some(f(doc.root_element()))
}

/// A document, parsed the way the pfSense parser does (no DTDs).
fn parse_xml(text: &str) -> Result<Document<'_>, roxmltree::Error> {
    Document::parse_with_options(
        text,
        ParsingOptions {
            allow_dtd: false,
            ..ParsingOptions::default()
        },
    )
}

/// The `<rule>` element of `<filter>` that starts at `offset`.
fn rule_at<'a, 'i>(doc: &'a Document<'i>, offset: usize) -> Option<Node<'a, 'i>> {
    doc.descendants().find(|n| {
        n.has_tag_name("rule")
            && n.range().start == offset
            && n.parent().is_some_and(|p| p.has_tag_name("filter"))
    })
}

/// The text of child `name`, trimmed.
fn child_text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.has_tag_name(name))
        .map(|c| c.text().unwrap_or("").trim())
}

/// True for floating rules.
fn is_floating(rule: Node) -> bool {
    child_text(rule, "floating").is_some_and(|v| v == "yes")
}

/// The whitespace before the element's tag on its line, and one level deeper.
fn indents(text: &str, start: usize) -> (String, String) {
    let (line_start, _, _) = line_at(text, start);
    let indent = text.get(line_start..start).unwrap_or("");
    let indent = if indent.trim().is_empty() { indent } else { "" };
    let step = if indent.contains(' ') && !indent.contains('\t') {
        "  "
    } else {
        "\t"
    };
    (indent.to_string(), format!("{indent}{step}"))
}

/// Edits that insert `p` ahead of the block at `at`: before a blocking `<rule>`, or,
/// when the default deny (`<filter>`) decides, after the ingress interface's last rule.
pub fn insert_permit(xml: &Xml, file: FileId, at: Span, p: &Permit) -> Result<Placement, String> {
    let text = xml.text();
    let iface = p
        .in_iface
        .as_deref()
        .ok_or("mislint does not know the ingress interface")?;
    let blocking = xml.with_rule(at.start as usize, |rule, base| {
        (rule.range().start + base, is_floating(rule))
    });
    if let Some((start, floating)) = blocking {
        let (line_start, _, _) = line_at(text, start);
        let (i, j) = indents(text, start);
        let place = if floating {
            "as a quick floating rule before the rule that blocks it"
        } else {
            "before the rule that blocks it"
        };
        return Ok((
            vec![edit(
                file,
                line_start,
                line_start,
                elements(p, iface, floating, &i, &j),
            )],
            place.into(),
        ));
    }
    let (offset, indent_of, no_rules) = xml
        .end_of_rules(at.start as usize, iface)
        .ok_or("mislint cannot tell which rule list this line belongs to")?;
    let (mut i, mut j) = indents(text, indent_of);
    if no_rules {
        // Only the closing tag to go by: the rule sits one level inside it.
        i = j.clone();
        j = format!("{i}\t");
    }
    Ok((
        vec![edit(
            file,
            offset,
            offset,
            elements(p, iface, false, &i, &j),
        )],
        format!("at the end of the `{iface}` rules, before the default deny"),
    ))
}

/// The `<source>`/`<destination>` element for a network, at indent `j`, children one
/// `step` deeper.
fn endpoint(tag: &str, n: Option<Net>, port: Option<String>, j: &str, step: &str) -> String {
    let k = format!("{j}{step}");
    let addr = match n {
        None => format!("{k}<any></any>\n"),
        Some(n) if n.is_host() => format!("{k}<address>{}</address>\n", n.addr),
        Some(n) => format!("{k}<address>{}</address>\n", n.cidr()),
    };
    let port = port.map_or(String::new(), |p| format!("{k}<port>{p}</port>\n"));
    format!("{j}<{tag}>\n{addr}{port}{j}</{tag}>\n")
}

/// The `<rule>` elements of a permit, one per port range.
fn elements(p: &Permit, iface: &str, floating: bool, i: &str, j: &str) -> String {
    let family = match (p.src, p.dst) {
        (Some(n), _) | (None, Some(n)) if n.addr.is_ipv6() => "inet6",
        (None, None) => "inet46",
        _ => "inet",
    };
    let protocol = proto::name(p.protocol).map_or_else(|| p.protocol.to_string(), str::to_string);
    let ports: Vec<Option<String>> = if p.ports.is_empty() || p.ports == [(0, PORT_MAX as u16)] {
        vec![None]
    } else {
        p.ports
            .iter()
            .map(|&(lo, hi)| Some(range(lo, hi)))
            .collect()
    };
    let float = if floating {
        format!(
            "{j}<floating>yes</floating>\n{j}<quick>yes</quick>\n{j}<direction>in</direction>\n"
        )
    } else {
        String::new()
    };
    let step = j.strip_prefix(i).filter(|s| !s.is_empty()).unwrap_or("\t");
    ports
        .into_iter()
        .map(|port| {
            format!(
                "{i}<rule>\n{j}<type>pass</type>\n{j}<interface>{iface}</interface>\n{float}{j}<ipprotocol>{family}</ipprotocol>\n{j}<protocol>{protocol}</protocol>\n{}{}{j}<descr><![CDATA[{}]]></descr>\n{i}</rule>\n",
                endpoint("source", p.src, None, j, step),
                endpoint("destination", p.dst, port, j, step),
                p.why
            )
        })
        .collect()
}

fn range(lo: u16, hi: u16) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

/// `80`, `1024-65535`, `1024:65535`; aliases and names are not narrowed.
fn parse_port(value: &str) -> Option<IntervalSet> {
    let (lo, hi) = value.split_once(['-', ':']).unwrap_or((value, value));
    let (lo, hi): (u16, u16) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo <= hi).then(|| IntervalSet::range(u128::from(lo), u128::from(hi)))
}

/// Edits that drop `excess` from the rule at `at`: its destination `<port>` rewritten,
/// or the rule repeated once per kept range.
pub fn narrow(
    xml: &Xml,
    file: FileId,
    at: Span,
    protocol: u8,
    excess: &IntervalSet,
) -> Option<(Vec<Edit>, IntervalSet)> {
    let text = xml.text();
    xml.with_rule(at.start as usize, |rule, base| {
        narrowed(text, file, rule, base, protocol, excess)
    })?
}

/// [`narrow`] for the rule node `rule`, whose ranges count from `base`.
fn narrowed(
    text: &str,
    file: FileId,
    rule: Node,
    base: usize,
    protocol: u8,
    excess: &IntervalSet,
) -> Option<(Vec<Edit>, IntervalSet)> {
    if child_text(rule, "protocol").and_then(proto::by_name) != Some(protocol) {
        return None;
    }
    let dst = rule.children().find(|c| c.has_tag_name("destination"))?;
    if dst.children().any(|c| c.has_tag_name("not")) {
        return None;
    }
    let port = dst.children().find(|c| c.has_tag_name("port"))?;
    let value_node = port.first_child().filter(|c| c.is_text())?;
    let keep = parse_port(value_node.text()?)?.subtract(excess);
    if keep.is_empty() {
        return None;
    }
    let ranges = ranges_of(&keep);
    let vr = value_node.range();
    let vr = vr.start + base..vr.end + base;
    if let [(lo, hi)] = ranges.as_slice() {
        return Some((vec![edit(file, vr.start, vr.end, range(*lo, *hi))], keep));
    }
    let (line_start, _, _) = line_at(text, rule.range().start + base);
    let (_, _, next) = line_at(text, rule.range().end + base);
    let (before, after) = (text.get(line_start..vr.start)?, text.get(vr.end..next)?);
    let copies: String = ranges
        .iter()
        .map(|&(lo, hi)| format!("{before}{}{after}", range(lo, hi)))
        .collect();
    Some((vec![edit(file, line_start, next, copies)], keep))
}

/// Deletes the `<rule>` element at `at` — a filter rule, or a port forward that passes
/// its traffic itself — with its line.
pub fn remove(xml: &Xml, file: FileId, at: Span) -> Option<Vec<Edit>> {
    let text = xml.text();
    let range = |rule: Node, base: usize| rule.range().start + base..rule.range().end + base;
    let rule = xml
        .with_rule(at.start as usize, range)
        .or_else(|| xml.with_nat_rule(at.start as usize, range))?;
    let (line_start, _, _) = line_at(text, rule.start);
    let (_, _, next) = line_at(text, rule.end);
    Some(vec![edit(file, line_start, next, "")])
}

#[cfg(test)]
mod tests {
    use super::super::apply;
    use super::*;

    const TEXT: &str = "<pfsense>\n\t<filter>\n\t\t<rule>\n\t\t\t<type>block</type>\n\t\t\t<interface>opt1</interface>\n\t\t\t<protocol>tcp</protocol>\n\t\t\t<source><any/></source>\n\t\t\t<destination>\n\t\t\t\t<any/>\n\t\t\t\t<port>1024-65535</port>\n\t\t\t</destination>\n\t\t</rule>\n\t</filter>\n</pfsense>\n";

    fn permit() -> Permit {
        Permit {
            protocol: proto::TCP,
            ports: vec![(389, 389)],
            src: Some(Net {
                addr: "192.168.10.5".parse().expect("literal"),
                len: 32,
            }),
            dst: Some(Net {
                addr: "10.0.0.0".parse().expect("literal"),
                len: 24,
            }),
            in_iface: Some("opt1".into()),
            out_iface: Some("lan".into()),
            why: "KB 294297 ldap, suggested by mislint".into(),
        }
    }

    /// `text` read both ways placement reads a file: split and as one document.
    fn both(text: &'static str) -> [Xml<'static>; 2] {
        let split = Xml::read(text).expect("reads");
        assert!(matches!(split.form, Form::Split(..)), "splits");
        [split, Xml::of(Form::Whole(parse_xml(text).expect("XML")))]
    }

    fn at(needle: &str) -> Span {
        at_in(TEXT, needle)
    }

    fn at_in(text: &str, needle: &str) -> Span {
        let o = text.find(needle).expect("in text");
        Span::new(FileId(0), o, o)
    }

    #[test]
    fn inserts_a_pass_rule_before_the_block() {
        for xml in both(TEXT) {
            let (edits, _) =
                insert_permit(&xml, FileId(0), at("<rule>"), &permit()).expect("placed");
            let out = apply(TEXT, &edits).expect("applies");
            assert!(out.starts_with("<pfsense>\n\t<filter>\n\t\t<rule>\n\t\t\t<type>pass</type>\n\t\t\t<interface>opt1</interface>\n\t\t\t<ipprotocol>inet</ipprotocol>\n\t\t\t<protocol>tcp</protocol>\n\t\t\t<source>\n\t\t\t\t<address>192.168.10.5</address>\n\t\t\t</source>\n\t\t\t<destination>\n\t\t\t\t<address>10.0.0.0/24</address>\n\t\t\t\t<port>389</port>\n\t\t\t</destination>\n"), "{out}");
            assert!(Document::parse(&out).is_ok());
        }
    }

    #[test]
    fn appends_after_the_interface_rules_for_the_default_deny() {
        for xml in both(TEXT) {
            let (edits, place) =
                insert_permit(&xml, FileId(0), at("<filter>"), &permit()).expect("placed");
            assert!(place.contains("opt1"));
            let out = apply(TEXT, &edits).expect("applies");
            assert!(out.contains("\t\t</rule>\n\t\t<rule>\n\t\t\t<type>pass</type>"));
            assert!(out.ends_with("\t\t</rule>\n\t</filter>\n</pfsense>\n"));
        }
    }

    /// Rules on other interfaces and floating ones are passed over, the last rule on
    /// the interface is found from the end; with no rule at all the permit goes one
    /// level inside `<filter>`.
    #[test]
    fn finds_the_interface_rules_end_or_the_filter_close() {
        const OTHERS: &str = "<pfsense>\n  <filter>\n    <rule><interface>opt1</interface></rule>\n    <rule><interface>lan</interface></rule>\n    <rule><interface>wan,opt1</interface></rule>\n    <rule><interface>opt1</interface><floating>yes</floating></rule>\n    <rule><interface>lan</interface></rule>\n  </filter>\n</pfsense>\n";
        const EMPTY: &str = "<pfsense>\n\t<filter>\n\t</filter>\n</pfsense>\n";
        for xml in both(OTHERS) {
            // Twice: the second placement reads what the first one read of the rules.
            for _ in 0..2 {
                let filter = at_in(OTHERS, "<filter>");
                let (edits, _) = insert_permit(&xml, FileId(0), filter, &permit()).expect("placed");
                let out = apply(OTHERS, &edits).expect("applies");
                let after =
                    "<interface>wan,opt1</interface></rule>\n    <rule>\n      <type>pass</type>";
                assert!(out.contains(after), "{out}");
            }
        }
        for xml in both(EMPTY) {
            let (edits, _) = insert_permit(&xml, FileId(0), at_in(EMPTY, "<filter>"), &permit())
                .expect("placed");
            let out = apply(EMPTY, &edits).expect("applies");
            assert!(
                out.starts_with("<pfsense>\n\t<filter>\n\t\t<rule>\n\t\t\t<type>pass</type>"),
                "{out}"
            );
        }
    }

    #[test]
    fn narrows_and_removes() {
        for xml in both(TEXT) {
            let excess = IntervalSet::from_ranges([(1024, 1025), (1027, 65_535)]);
            let (edits, _) =
                narrow(&xml, FileId(0), at("<rule>"), proto::TCP, &excess).expect("narrowed");
            assert!(
                apply(TEXT, &edits)
                    .expect("applies")
                    .contains("<port>1026</port>")
            );
            let two = IntervalSet::from_ranges([(1024, 1025), (1027, 3267), (3269, 65_535)]);
            let (edits, _) =
                narrow(&xml, FileId(0), at("<rule>"), proto::TCP, &two).expect("narrowed");
            let out = apply(TEXT, &edits).expect("applies");
            assert_eq!(out.matches("<rule>").count(), 2);
            assert!(out.contains("<port>3268</port>"));
            let edits = remove(&xml, FileId(0), at("<rule>")).expect("a rule");
            assert_eq!(
                apply(TEXT, &edits).expect("applies"),
                "<pfsense>\n\t<filter>\n\t</filter>\n</pfsense>\n"
            );
        }
    }

    #[test]
    fn removes_a_port_forward() {
        const NAT: &str = "<pfsense>\n\t<filter>\n\t</filter>\n\t<nat>\n\t\t<rule>\n\t\t\t<target>10.0.0.5</target>\n\t\t</rule>\n\t</nat>\n</pfsense>\n";
        for xml in both(NAT) {
            let edits = remove(&xml, FileId(0), at_in(NAT, "<rule>")).expect("a port forward");
            assert_eq!(
                apply(NAT, &edits).expect("applies"),
                "<pfsense>\n\t<filter>\n\t</filter>\n\t<nat>\n\t</nat>\n</pfsense>\n"
            );
            assert!(remove(&xml, FileId(0), at_in(NAT, "<target>")).is_none());
        }
    }
}
