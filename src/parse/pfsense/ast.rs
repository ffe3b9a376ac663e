//! The pfSense / OPNsense vendor AST: what `mod.rs` reads out of `config.xml` and
//! `lower.rs` turns into the rule graph.
//!
//! Every value keeps the span of the XML element that wrote it, so findings can point at
//! `<protocol>tcp</protocol>` rather than at the whole rule. Values stay as the vendor
//! wrote them (trimmed strings); their meaning is decided only in `lower.rs`.

use crate::source::Span;

/// Which product wrote the file; the two differ in a few defaults (`<quick>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Root element `<pfsense>`.
    PfSense,
    /// Root element `<opnsense>`.
    OpnSense,
}

/// The trimmed text of one element, with the span of the whole element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text {
    /// The text content, trimmed; empty for `<x/>` and `<x></x>`.
    pub value: String,
    /// The element, from `<` of its start tag to `>` of its end tag.
    pub span: Span,
}

/// Everything of a `config.xml` the linter reads.
#[derive(Clone, Debug)]
pub struct Config {
    /// pfSense or OPNsense.
    pub flavor: Flavor,
    /// The root element's start tag.
    pub root_span: Span,
    /// The `<filter>` start tag, which "causes" the default deny.
    pub filter_span: Option<Span>,
    /// `<interfaces>` children, in file order.
    pub interfaces: Vec<IfaceDecl>,
    /// `<ifgroups><ifgroupentry>` interface groups.
    pub ifgroups: Vec<IfGroup>,
    /// `<aliases><alias>` and OPNsense `<OPNsense><Firewall><Alias>` aliases.
    pub aliases: Vec<Alias>,
    /// `<filter><rule>` in file order, then OPNsense automation rules (see `origin`).
    pub rules: Vec<FilterRule>,
    /// `<nat><rule>` port forwards.
    pub port_forwards: Vec<PortForward>,
    /// The `<nat><onetoone>` entries (counted only).
    pub one_to_one: Vec<Span>,
}

/// One interface of `<interfaces>`: `<wan>`, `<lan>`, `<optN>`.
#[derive(Clone, Debug)]
pub struct IfaceDecl {
    /// The element name, which rules use (`wan`, `lan`, `opt1`).
    pub name: String,
    /// The element's start tag.
    pub span: Span,
    /// `<descr>`.
    pub descr: Option<String>,
    /// `<ipaddr>`: an IPv4 address or a method (`dhcp`, `pppoe`, …).
    pub ipaddr: Option<Text>,
    /// `<subnet>`: the IPv4 prefix length.
    pub subnet: Option<Text>,
    /// `<ipaddrv6>`: an IPv6 address or a method (`dhcp6`, `track6`, `slaac`, …).
    pub ipaddrv6: Option<Text>,
    /// `<subnetv6>`: the IPv6 prefix length.
    pub subnetv6: Option<Text>,
    /// `<blockpriv>` present: pfSense blocks private sources arriving here.
    pub blockpriv: Option<Span>,
    /// `<blockbogons>` present: pfSense blocks sources from a downloaded bogon list.
    pub blockbogons: Option<Span>,
}

/// An interface group: rules on it apply to each member.
#[derive(Clone, Debug)]
pub struct IfGroup {
    /// `<ifname>`.
    pub name: String,
    /// `<members>`, space-separated interface names.
    pub members: Vec<String>,
}

/// One alias.
#[derive(Clone, Debug)]
pub struct Alias {
    /// `<name>`.
    pub name: String,
    /// `<type>`: host, network, port, url, urltable, url_ports, urltable_ports, …
    pub kind: String,
    /// `<address>` (pfSense, space-separated) or `<content>` (OPNsense, one per line).
    pub members: Vec<String>,
    /// The `<alias>` start tag.
    pub span: Span,
    /// False for an OPNsense alias with `<enabled>0</enabled>`.
    pub enabled: bool,
}

/// `<source>` or `<destination>` of a rule.
#[derive(Clone, Debug, Default)]
pub struct Endpoint {
    /// The whole element.
    pub span: Span,
    /// `<network>`: `lan`, `lanip`, `(self)`, an alias, …
    pub network: Option<Text>,
    /// `<address>`: an IP, a CIDR or an alias.
    pub address: Option<Text>,
    /// `<port>`: a number, `a-b`, an alias or a service name.
    pub port: Option<Text>,
    /// `<not/>` present.
    pub not: bool,
}

/// Where a filter rule came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `<filter><rule>`.
    Legacy,
    /// OPNsense `<OPNsense><Firewall><Filter><rules><rule>` (Firewall ▸ Automation).
    Automation,
}

/// One filter rule.
#[derive(Clone, Debug)]
pub struct FilterRule {
    /// Where it came from.
    pub origin: Origin,
    /// The `<rule>` start tag.
    pub span: Span,
    /// `<type>` (legacy) or `<action>` (automation): pass, block, reject, match.
    pub action: Option<Text>,
    /// `<interface>`: one name, or a comma list on floating rules.
    pub interface: Option<Text>,
    /// OPNsense `<interfacenot>1</interfacenot>`: every interface but those.
    pub interface_not: bool,
    /// `<ipprotocol>`: inet, inet6, inet46.
    pub ipprotocol: Option<Text>,
    /// `<protocol>`.
    pub protocol: Option<Text>,
    /// `<icmptype>`.
    pub icmptype: Option<Text>,
    /// `<source>`.
    pub source: Option<Endpoint>,
    /// `<destination>`.
    pub destination: Option<Endpoint>,
    /// `<disabled>` present (or automation `<enabled>0</enabled>`).
    pub disabled: bool,
    /// `<floating>yes</floating>`.
    pub floating: bool,
    /// `<quick>`, as written.
    pub quick: Option<Text>,
    /// `<direction>`: in, out, any.
    pub direction: Option<Text>,
    /// `<descr>` (automation: `<description>`).
    pub descr: Option<String>,
    /// `<tracker>`.
    pub tracker: Option<String>,
    /// Non-empty matches mislint does not model (`<sched>`, `<tagged>`, `<os>`, …),
    /// with the element name in front of the value.
    pub unmodelled: Vec<Text>,
    /// Automation rules' `<sequence>`.
    pub sequence: Option<u64>,
}

impl FilterRule {
    /// A rule with nothing but its origin and span: a pass of everything on no
    /// interface, which readers fill in element by element.
    pub fn empty(origin: Origin, span: Span) -> FilterRule {
        FilterRule {
            origin,
            span,
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
        }
    }
}

/// One `<nat><rule>` port forward; parsed for later use, not lowered yet.
#[derive(Clone, Debug)]
pub struct PortForward {
    /// The `<rule>` start tag.
    pub span: Span,
    /// `<interface>`.
    pub interface: Option<String>,
    /// `<protocol>`.
    pub protocol: Option<String>,
    /// `<source>`.
    pub source: Option<Endpoint>,
    /// `<destination>`.
    pub destination: Option<Endpoint>,
    /// `<target>`: the internal address.
    pub target: Option<String>,
    /// `<local-port>`: the internal port.
    pub local_port: Option<String>,
    /// `<associated-rule-id>`: the filter rule the GUI created with it.
    pub associated_rule_id: Option<String>,
    /// `<disabled>` present.
    pub disabled: bool,
}
