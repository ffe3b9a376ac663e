//! pfSense / OPNsense `config.xml`: the third dialect room of the parse stage.
//!
//! `parse` reads the XML with roxmltree (DTDs refused, so no entity-expansion bombs),
//! walks the few sections the linter needs — `<interfaces>`, `<ifgroups>`, `<aliases>`,
//! `<filter>`, `<nat>`, OPNsense's `<OPNsense><Firewall>` — into the vendor AST of
//! [`ast`], and hands that to [`lower`], which resolves aliases and builds the rule
//! graph. Everything else in the file (users, DHCP, packages, …) is not read at all.
//! The accepted element tree is written down in `grammars/pfsense.md`.

pub mod ast;
pub mod lower;

use super::{PARSE_ERROR, Parsed};
use crate::report::finding::{Finding, Severity};
use crate::source::{FileId, LineIndex, SourceFile, Span};
use ast::{
    Alias, Config, Endpoint, FilterRule, Flavor, IfGroup, IfaceDecl, Origin, PortForward, Text,
};
use roxmltree::{Document, Node, ParsingOptions};

/// Parses a pfSense or OPNsense `config.xml`.
pub fn parse(file: &SourceFile) -> Parsed {
    let options = ParsingOptions {
        // A DTD is never part of a real config.xml; refusing it rules out entity bombs.
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    let doc = match Document::parse_with_options(&file.text, options) {
        Ok(doc) => doc,
        Err(e) => return refuse(file, &e),
    };
    match read_config(file.id, &doc) {
        Ok(cfg) => {
            let (graph, findings) = lower::lower(&cfg, file.id);
            Parsed {
                graph: Some(graph),
                findings,
            }
        }
        Err(finding) => Parsed {
            graph: None,
            findings: vec![*finding],
        },
    }
}

/// One PARSE_ERROR at the position roxmltree reports.
fn refuse(file: &SourceFile, e: &roxmltree::Error) -> Parsed {
    let pos = e.pos();
    let offset = offset_of(&file.text, pos.row as usize, pos.col as usize);
    let end = file
        .text
        .get(offset..)
        .and_then(|rest| rest.chars().next())
        .map_or(offset, |c| offset + c.len_utf8());
    let message = match e {
        roxmltree::Error::DtdDetected => {
            "a DTD is not allowed in config.xml (refused to rule out entity expansion)".to_string()
        }
        other => format!("not well-formed XML: {other}"),
    };
    Parsed {
        graph: None,
        findings: vec![
            Finding::new(
                PARSE_ERROR,
                Severity::Error,
                Span::new(file.id, offset, end),
                message,
            )
            .with_label("here"),
        ],
    }
}

/// The byte offset of 1-based `row`/`col` (col counts characters, as roxmltree does).
fn offset_of(text: &str, row: usize, col: usize) -> usize {
    let index = LineIndex::new(text);
    let Some((start, end)) = index.line_range(text, row.max(1)) else {
        return text.len();
    };
    let line = text.get(start..end).unwrap_or("");
    let skip = col.saturating_sub(1);
    let within = line.char_indices().nth(skip).map_or(line.len(), |(i, _)| i);
    start + within
}

/// The span of a node's whole range.
fn span_of(file: FileId, node: Node) -> Span {
    let r = node.range();
    Span::new(file, r.start, r.end)
}

/// The span of an element's start tag: up to its first child, or the whole element if
/// it has none (`<rule/>`).
fn start_tag(file: FileId, node: Node) -> Span {
    let r = node.range();
    let end = node.first_child().map_or(r.end, |c| c.range().start);
    Span::new(file, r.start, end)
}

/// The element children of `node` named `name`.
fn children_named<'a, 'i>(node: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// The first element child named `name`.
fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The trimmed text of an element (all its text and CDATA, without comments).
fn text_of(node: Node) -> String {
    let mut out = String::new();
    for c in node.children().filter(|c| c.is_text()) {
        out.push_str(c.text().unwrap_or(""));
    }
    out.trim().to_string()
}

/// The child `name` as a [`Text`].
fn child_text(file: FileId, node: Node, name: &str) -> Option<Text> {
    child(node, name).map(|c| Text {
        value: text_of(c),
        span: span_of(file, c),
    })
}

/// The child `name`'s text, if present and non-empty.
fn child_string(node: Node, name: &str) -> Option<String> {
    child(node, name).map(text_of).filter(|s| !s.is_empty())
}

/// Reads the AST, or says why the file is not a pfSense/OPNsense config.
fn read_config(file: FileId, doc: &Document) -> Result<Config, Box<Finding>> {
    let root = doc.root_element();
    let flavor = match root.tag_name().name() {
        "pfsense" => Flavor::PfSense,
        "opnsense" => Flavor::OpnSense,
        other => {
            return Err(Box::new(Finding::new(
                PARSE_ERROR,
                Severity::Error,
                start_tag(file, root),
                format!("root element is `<{other}>`, not `<pfsense>` or `<opnsense>`"),
            )));
        }
    };
    let mut cfg = Config {
        flavor,
        root_span: start_tag(file, root),
        filter_span: None,
        interfaces: Vec::new(),
        ifgroups: Vec::new(),
        aliases: Vec::new(),
        rules: Vec::new(),
        port_forwards: Vec::new(),
        one_to_one: Vec::new(),
    };
    for section in root.children().filter(Node::is_element) {
        match section.tag_name().name() {
            "interfaces" => read_interfaces(file, section, &mut cfg),
            "ifgroups" => read_ifgroups(section, &mut cfg),
            "aliases" => read_aliases(file, section, &mut cfg),
            "filter" => read_filter(file, section, &mut cfg),
            "nat" => read_nat(file, section, &mut cfg),
            "OPNsense" => read_opnsense(file, section, &mut cfg),
            _ => {}
        }
    }
    Ok(cfg)
}

/// `<interfaces>`: every element child is one interface, named by its tag.
fn read_interfaces(file: FileId, section: Node, cfg: &mut Config) {
    for node in section.children().filter(Node::is_element) {
        cfg.interfaces.push(IfaceDecl {
            name: node.tag_name().name().to_string(),
            span: start_tag(file, node),
            descr: child_string(node, "descr"),
            ipaddr: child_text(file, node, "ipaddr"),
            subnet: child_text(file, node, "subnet"),
            ipaddrv6: child_text(file, node, "ipaddrv6"),
            subnetv6: child_text(file, node, "subnetv6"),
            blockpriv: read_flag(file, node, "blockpriv"),
            blockbogons: read_flag(file, node, "blockbogons"),
        });
    }
}

/// A presence flag as pfSense writes it (`<x/>`, `<x></x>`, `<x>1</x>`); OPNsense
/// writes `<x>0</x>` for "off", so "0" counts as absent.
fn read_flag(file: FileId, node: Node, name: &str) -> Option<Span> {
    child(node, name)
        .filter(|c| text_of(*c) != "0")
        .map(|c| span_of(file, c))
}

/// `<ifgroups><ifgroupentry>`.
fn read_ifgroups(section: Node, cfg: &mut Config) {
    for entry in children_named(section, "ifgroupentry") {
        let Some(name) = child_string(entry, "ifname") else {
            continue;
        };
        let members = child_string(entry, "members")
            .map(|m| m.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        cfg.ifgroups.push(IfGroup { name, members });
    }
}

/// `<aliases><alias>` (pfSense) or `<aliases><alias>` inside OPNsense's `<Alias>`.
fn read_aliases(file: FileId, section: Node, cfg: &mut Config) {
    for node in children_named(section, "alias") {
        let Some(name) = child_string(node, "name") else {
            continue;
        };
        // pfSense: `<address>` space-separated; OPNsense MVC: `<content>` one per line.
        let members = child_string(node, "address")
            .or_else(|| child_string(node, "content"))
            .map(|a| a.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        cfg.aliases.push(Alias {
            name,
            kind: child_string(node, "type").unwrap_or_default(),
            members,
            span: start_tag(file, node),
            enabled: child_string(node, "enabled").is_none_or(|v| v != "0"),
        });
    }
}

/// `<filter>`: its `<rule>` children (separators and other children are ignored).
fn read_filter(file: FileId, section: Node, cfg: &mut Config) {
    cfg.filter_span = Some(start_tag(file, section));
    for node in children_named(section, "rule") {
        cfg.rules.push(read_rule(file, node));
    }
}

/// Rule children that change what a rule matches but that mislint does not model.
const UNMODELLED_MATCHES: [&str; 8] = [
    "sched",
    "tagged",
    "os",
    "dscp",
    "tcpflags1",
    "tcpflags2",
    "vlanprio",
    "l7container",
];

/// One `<filter><rule>`, in one pass over its children (a 100k-rule file has millions
/// of them, so no per-field search).
fn read_rule(file: FileId, node: Node) -> FilterRule {
    let mut r = FilterRule {
        origin: Origin::Legacy,
        span: start_tag(file, node),
        action: None,
        interface: None,
        interface_not: false,
        ipprotocol: None,
        protocol: None,
        icmptype: None,
        source: None,
        destination: None,
        disabled: false,
        floating: false,
        quick: None,
        direction: None,
        descr: None,
        tracker: None,
        unmodelled: Vec::new(),
        sequence: None,
    };
    for c in node.children().filter(Node::is_element) {
        let name = c.tag_name().name();
        let text = || Text {
            value: text_of(c),
            span: span_of(file, c),
        };
        match name {
            "type" => r.action = Some(text()),
            "interface" => r.interface = Some(text()),
            "ipprotocol" => r.ipprotocol = Some(text()),
            "protocol" => r.protocol = Some(text()),
            "icmptype" => r.icmptype = Some(text()),
            "source" => r.source = Some(read_endpoint(file, c)),
            "destination" => r.destination = Some(read_endpoint(file, c)),
            "disabled" => r.disabled = true,
            "floating" => r.floating = matches!(text_of(c).as_str(), "yes" | "1"),
            "quick" => r.quick = Some(text()),
            "direction" => r.direction = Some(text()),
            "descr" => r.descr = Some(text_of(c)).filter(|s| !s.is_empty()),
            "tracker" => r.tracker = Some(text_of(c)).filter(|s| !s.is_empty()),
            _ if UNMODELLED_MATCHES.contains(&name) => {
                let t = text();
                if !t.value.is_empty() {
                    r.unmodelled.push(Text {
                        value: format!("{name} {}", t.value),
                        span: t.span,
                    });
                }
            }
            _ => {}
        }
    }
    r
}

/// `<source>` / `<destination>`.
fn read_endpoint(file: FileId, node: Node) -> Endpoint {
    Endpoint {
        span: span_of(file, node),
        network: child_text(file, node, "network"),
        address: child_text(file, node, "address"),
        port: child_text(file, node, "port").filter(|t| !t.value.is_empty()),
        not: child(node, "not").is_some(),
    }
}

/// `<nat>`: port forwards are read; `<outbound>` (source NAT) does not change what the
/// filter passes; `<onetoone>` entries are counted for the note.
fn read_nat(file: FileId, section: Node, cfg: &mut Config) {
    for node in children_named(section, "rule") {
        cfg.port_forwards.push(PortForward {
            span: start_tag(file, node),
            interface: child_string(node, "interface"),
            protocol: child_string(node, "protocol"),
            source: child(node, "source").map(|n| read_endpoint(file, n)),
            destination: child(node, "destination").map(|n| read_endpoint(file, n)),
            target: child_string(node, "target"),
            local_port: child_string(node, "local-port"),
            associated_rule_id: child_string(node, "associated-rule-id"),
            disabled: child(node, "disabled").is_some(),
        });
    }
    cfg.one_to_one
        .extend(children_named(section, "onetoone").map(|n| start_tag(file, n)));
}

/// OPNsense's MVC section: `<Firewall><Alias><aliases>` and
/// `<Firewall><Filter><rules><rule>` (Firewall ▸ Automation ▸ Filter).
fn read_opnsense(file: FileId, section: Node, cfg: &mut Config) {
    let Some(firewall) = child(section, "Firewall") else {
        return;
    };
    if let Some(aliases) = child(firewall, "Alias").and_then(|a| child(a, "aliases")) {
        read_aliases(file, aliases, cfg);
    }
    if let Some(rules) = child(firewall, "Filter").and_then(|f| child(f, "rules")) {
        for node in children_named(rules, "rule") {
            cfg.rules.push(read_automation_rule(file, node));
        }
    }
}

/// One automation rule, mapped onto the legacy shape: `source_net` becomes the
/// endpoint's network (the lowering accepts the same words and aliases in both).
fn read_automation_rule(file: FileId, node: Node) -> FilterRule {
    let endpoint = |prefix: &str| {
        let net = child_text(file, node, &format!("{prefix}_net"));
        let port =
            child_text(file, node, &format!("{prefix}_port")).filter(|t| !t.value.is_empty());
        let not = child_string(node, &format!("{prefix}_not")).is_some_and(|v| v == "1");
        let span = net
            .as_ref()
            .map_or_else(|| start_tag(file, node), |t| t.span);
        Endpoint {
            span,
            network: net,
            address: None,
            port,
            not,
        }
    };
    let protocol = child_text(file, node, "protocol");
    FilterRule {
        origin: Origin::Automation,
        span: start_tag(file, node),
        action: child_text(file, node, "action"),
        interface: child_text(file, node, "interface"),
        interface_not: child_string(node, "interfacenot").is_some_and(|v| v == "1"),
        ipprotocol: child_text(file, node, "ipprotocol"),
        protocol,
        icmptype: child_text(file, node, "icmptype"),
        source: Some(endpoint("source")),
        destination: Some(endpoint("destination")),
        disabled: child_string(node, "enabled").is_some_and(|v| v == "0"),
        // Automation rules name interfaces and a direction like floating rules do.
        floating: true,
        quick: child_text(file, node, "quick"),
        direction: child_text(file, node, "direction"),
        descr: child_string(node, "description"),
        tracker: None,
        unmodelled: ["sched", "tagged", "dscp"]
            .iter()
            .filter_map(|name| {
                let t = child_text(file, node, name)?;
                (!t.value.is_empty()).then(|| Text {
                    value: format!("{name} {}", t.value),
                    span: t.span,
                })
            })
            .collect(),
        sequence: child_string(node, "sequence").and_then(|s| s.parse().ok()),
    }
}
