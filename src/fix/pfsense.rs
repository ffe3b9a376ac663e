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
use crate::report::finding::Edit;
use crate::source::{FileId, Span};
use roxmltree::{Document, Node, ParsingOptions};

/// The document, parsed the way the pfSense parser does (no DTDs). `fix::suggest` parses
/// it once per file: every finding's candidates are found in the same document.
pub fn document(text: &str) -> Option<Document<'_>> {
    Document::parse_with_options(
        text,
        ParsingOptions {
            allow_dtd: false,
            ..ParsingOptions::default()
        },
    )
    .ok()
}

/// The `<rule>` element of `<filter>` that starts at `offset`.
fn rule_at<'a>(doc: &'a Document<'a>, offset: usize) -> Option<Node<'a, 'a>> {
    doc.descendants().find(|n| {
        n.has_tag_name("rule")
            && n.range().start == offset
            && n.parent().is_some_and(|p| p.has_tag_name("filter"))
    })
}

/// The text of child `name`, trimmed.
fn child_text<'a>(node: Node<'a, 'a>, name: &str) -> Option<&'a str> {
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
pub fn insert_permit(
    doc: &Document,
    file: FileId,
    at: Span,
    p: &Permit,
) -> Result<Placement, String> {
    let text = doc.input_text();
    let iface = p
        .in_iface
        .as_deref()
        .ok_or("mislint does not know the ingress interface")?;
    if let Some(rule) = rule_at(doc, at.start as usize) {
        let (line_start, _, _) = line_at(text, rule.range().start);
        let (i, j) = indents(text, rule.range().start);
        let floating = is_floating(rule);
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
    let filter = doc
        .descendants()
        .find(|n| n.has_tag_name("filter") && n.range().start == at.start as usize)
        .ok_or("mislint cannot tell which rule list this line belongs to")?;
    let last = filter.children().rfind(|r| {
        r.has_tag_name("rule")
            && !is_floating(*r)
            && child_text(*r, "interface").is_some_and(|v| v.split(',').any(|x| x.trim() == iface))
    });
    let (offset, indent_of) = match last {
        Some(r) => (line_at(text, r.range().end).2, r.range().start),
        None => {
            let any_rule = filter.children().find(|r| r.has_tag_name("rule"));
            let close = filter.range().end.saturating_sub("</filter>".len());
            let (close_line, _, _) = line_at(text, close);
            (close_line, any_rule.map_or(close, |r| r.range().start))
        }
    };
    let (mut i, mut j) = indents(text, indent_of);
    if last.is_none() && filter.children().all(|r| !r.has_tag_name("rule")) {
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
    doc: &Document,
    file: FileId,
    at: Span,
    protocol: u8,
    excess: &IntervalSet,
) -> Option<(Vec<Edit>, IntervalSet)> {
    let text = doc.input_text();
    let rule = rule_at(doc, at.start as usize)?;
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
    if let [(lo, hi)] = ranges.as_slice() {
        return Some((vec![edit(file, vr.start, vr.end, range(*lo, *hi))], keep));
    }
    let (line_start, _, _) = line_at(text, rule.range().start);
    let (_, _, next) = line_at(text, rule.range().end);
    let (before, after) = (text.get(line_start..vr.start)?, text.get(vr.end..next)?);
    let copies: String = ranges
        .iter()
        .map(|&(lo, hi)| format!("{before}{}{after}", range(lo, hi)))
        .collect();
    Some((vec![edit(file, line_start, next, copies)], keep))
}

/// Deletes the `<rule>` element at `at` — a filter rule, or a port forward that passes
/// its traffic itself — with its line.
pub fn remove(doc: &Document, file: FileId, at: Span) -> Option<Vec<Edit>> {
    let text = doc.input_text();
    let rule = rule_at(doc, at.start as usize).or_else(|| {
        doc.descendants().find(|n| {
            n.has_tag_name("rule")
                && n.range().start == at.start as usize
                && n.parent().is_some_and(|p| p.has_tag_name("nat"))
        })
    })?;
    let (line_start, _, _) = line_at(text, rule.range().start);
    let (_, _, next) = line_at(text, rule.range().end);
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

    fn doc() -> Document<'static> {
        document(TEXT).expect("XML")
    }

    fn at(needle: &str) -> Span {
        let o = TEXT.find(needle).expect("in text");
        Span::new(FileId(0), o, o)
    }

    #[test]
    fn inserts_a_pass_rule_before_the_block() {
        let (edits, _) = insert_permit(&doc(), FileId(0), at("<rule>"), &permit()).expect("placed");
        let out = apply(TEXT, &edits).expect("applies");
        assert!(out.starts_with("<pfsense>\n\t<filter>\n\t\t<rule>\n\t\t\t<type>pass</type>\n\t\t\t<interface>opt1</interface>\n\t\t\t<ipprotocol>inet</ipprotocol>\n\t\t\t<protocol>tcp</protocol>\n\t\t\t<source>\n\t\t\t\t<address>192.168.10.5</address>\n\t\t\t</source>\n\t\t\t<destination>\n\t\t\t\t<address>10.0.0.0/24</address>\n\t\t\t\t<port>389</port>\n\t\t\t</destination>\n"), "{out}");
        assert!(Document::parse(&out).is_ok());
    }

    #[test]
    fn appends_after_the_interface_rules_for_the_default_deny() {
        let (edits, place) =
            insert_permit(&doc(), FileId(0), at("<filter>"), &permit()).expect("placed");
        assert!(place.contains("opt1"));
        let out = apply(TEXT, &edits).expect("applies");
        assert!(out.contains("\t\t</rule>\n\t\t<rule>\n\t\t\t<type>pass</type>"));
        assert!(out.ends_with("\t\t</rule>\n\t</filter>\n</pfsense>\n"));
    }

    #[test]
    fn narrows_and_removes() {
        let excess = IntervalSet::from_ranges([(1024, 1025), (1027, 65_535)]);
        let (edits, _) =
            narrow(&doc(), FileId(0), at("<rule>"), proto::TCP, &excess).expect("narrowed");
        assert!(
            apply(TEXT, &edits)
                .expect("applies")
                .contains("<port>1026</port>")
        );
        let two = IntervalSet::from_ranges([(1024, 1025), (1027, 3267), (3269, 65_535)]);
        let (edits, _) =
            narrow(&doc(), FileId(0), at("<rule>"), proto::TCP, &two).expect("narrowed");
        let out = apply(TEXT, &edits).expect("applies");
        assert_eq!(out.matches("<rule>").count(), 2);
        assert!(out.contains("<port>3268</port>"));
        let edits = remove(&doc(), FileId(0), at("<rule>")).expect("a rule");
        assert_eq!(
            apply(TEXT, &edits).expect("applies"),
            "<pfsense>\n\t<filter>\n\t</filter>\n</pfsense>\n"
        );
    }
}
