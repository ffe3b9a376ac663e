//! The pfSense / OPNsense vendor AST: what `mod.rs` reads out of `config.xml` and
//! `lower.rs` turns into the rule graph.
//!
//! Every value keeps the span of the XML element that wrote it, so findings can point at
//! `<protocol>tcp</protocol>` rather than at the whole rule. Values stay as the vendor
//! wrote them (trimmed strings); their meaning is decided only in `lower.rs`. They borrow
//! from the file's text wherever the XML holds them verbatim (no entity, no `\r`, one
//! text node), so a 100k-rule file does not copy a million small strings; the AST
//! outlives roxmltree's documents (one per section and rule), which `mod.rs` drops as soon
//! as each is read.

use crate::source::{MoveSpans, Span};
use std::borrow::Cow;

/// A string of the file: borrowed from its text, owned only where XML rewrote it.
pub type Str<'i> = Cow<'i, str>;

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
pub struct Text<'i> {
    /// The text content, trimmed; empty for `<x/>` and `<x></x>`.
    pub value: Str<'i>,
    /// The element, from `<` of its start tag to `>` of its end tag.
    pub span: Span,
}

/// Everything of a `config.xml` the linter reads.
#[derive(Clone, Debug)]
pub struct Config<'i> {
    /// pfSense or OPNsense.
    pub flavor: Flavor,
    /// The root element's start tag.
    pub root_span: Span,
    /// The `<filter>` start tag, which "causes" the default deny.
    pub filter_span: Option<Span>,
    /// `<interfaces>` children, in file order.
    pub interfaces: Vec<IfaceDecl<'i>>,
    /// `<ifgroups><ifgroupentry>` interface groups.
    pub ifgroups: Vec<IfGroup<'i>>,
    /// `<aliases><alias>` and OPNsense `<OPNsense><Firewall><Alias>` aliases.
    pub aliases: Vec<Alias<'i>>,
    /// `<filter><rule>` in file order, then OPNsense automation rules (see `origin`).
    /// Boxed: a rule is 656 bytes, and the rules read side by side are gathered into
    /// this list by moving pointers, not by copying 65 MB for 100,000 rules.
    #[allow(clippy::vec_box)]
    pub rules: Vec<Box<FilterRule<'i>>>,
    /// `<nat><rule>` port forwards.
    pub port_forwards: Vec<PortForward<'i>>,
    /// The `<nat><onetoone>` entries (counted only).
    pub one_to_one: Vec<Span>,
}

impl<'i> Config<'i> {
    /// Nothing read yet.
    pub fn empty(flavor: Flavor, root_span: Span) -> Config<'i> {
        Config {
            flavor,
            root_span,
            filter_span: None,
            interfaces: Vec::new(),
            ifgroups: Vec::new(),
            aliases: Vec::new(),
            rules: Vec::new(),
            port_forwards: Vec::new(),
            one_to_one: Vec::new(),
        }
    }

    /// Adds what `part` read (a later part of the same file) after what this one has.
    pub fn absorb(&mut self, part: Config<'i>) {
        if part.filter_span.is_some() {
            self.filter_span = part.filter_span;
        }
        self.interfaces.extend(part.interfaces);
        self.ifgroups.extend(part.ifgroups);
        self.aliases.extend(part.aliases);
        self.rules.extend(part.rules);
        self.port_forwards.extend(part.port_forwards);
        self.one_to_one.extend(part.one_to_one);
    }
}

/// One interface of `<interfaces>`: `<wan>`, `<lan>`, `<optN>`.
#[derive(Clone, Debug)]
pub struct IfaceDecl<'i> {
    /// The element name, which rules use (`wan`, `lan`, `opt1`).
    pub name: &'i str,
    /// The element's start tag.
    pub span: Span,
    /// `<descr>`.
    pub descr: Option<Str<'i>>,
    /// `<ipaddr>`: an IPv4 address or a method (`dhcp`, `pppoe`, …).
    pub ipaddr: Option<Text<'i>>,
    /// `<subnet>`: the IPv4 prefix length.
    pub subnet: Option<Text<'i>>,
    /// `<ipaddrv6>`: an IPv6 address or a method (`dhcp6`, `track6`, `slaac`, …).
    pub ipaddrv6: Option<Text<'i>>,
    /// `<subnetv6>`: the IPv6 prefix length.
    pub subnetv6: Option<Text<'i>>,
    /// `<blockpriv>` present: pfSense blocks private sources arriving here.
    pub blockpriv: Option<Span>,
    /// `<blockbogons>` present: pfSense blocks sources from a downloaded bogon list.
    pub blockbogons: Option<Span>,
}

/// An interface group: rules on it apply to each member.
#[derive(Clone, Debug)]
pub struct IfGroup<'i> {
    /// `<ifname>`.
    pub name: Str<'i>,
    /// `<members>`, space-separated interface names.
    pub members: Vec<Str<'i>>,
}

/// One alias.
#[derive(Clone, Debug)]
pub struct Alias<'i> {
    /// `<name>`.
    pub name: Str<'i>,
    /// `<type>`: host, network, port, url, urltable, url_ports, urltable_ports, …
    pub kind: Str<'i>,
    /// `<address>` (pfSense, space-separated) or `<content>` (OPNsense, one per line).
    pub members: Vec<Str<'i>>,
    /// The `<alias>` start tag.
    pub span: Span,
    /// False for an OPNsense alias with `<enabled>0</enabled>`.
    pub enabled: bool,
}

/// `<source>` or `<destination>` of a rule.
#[derive(Clone, Debug, Default)]
pub struct Endpoint<'i> {
    /// The whole element.
    pub span: Span,
    /// `<network>`: `lan`, `lanip`, `(self)`, an alias, …
    pub network: Option<Text<'i>>,
    /// `<address>`: an IP, a CIDR or an alias.
    pub address: Option<Text<'i>>,
    /// `<port>`: a number, `a-b`, an alias or a service name.
    pub port: Option<Text<'i>>,
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
pub struct FilterRule<'i> {
    /// Where it came from.
    pub origin: Origin,
    /// The `<rule>` start tag.
    pub span: Span,
    /// `<type>` (legacy) or `<action>` (automation): pass, block, reject, match.
    pub action: Option<Text<'i>>,
    /// `<interface>`: one name, or a comma list on floating rules.
    pub interface: Option<Text<'i>>,
    /// OPNsense `<interfacenot>1</interfacenot>`: every interface but those.
    pub interface_not: bool,
    /// `<ipprotocol>`: inet, inet6, inet46.
    pub ipprotocol: Option<Text<'i>>,
    /// `<protocol>`.
    pub protocol: Option<Text<'i>>,
    /// `<icmptype>`.
    pub icmptype: Option<Text<'i>>,
    /// `<source>`.
    pub source: Option<Endpoint<'i>>,
    /// `<destination>`.
    pub destination: Option<Endpoint<'i>>,
    /// `<disabled>` present (or automation `<enabled>0</enabled>`).
    pub disabled: bool,
    /// `<floating>yes</floating>`.
    pub floating: bool,
    /// `<quick>`, as written.
    pub quick: Option<Text<'i>>,
    /// `<direction>`: in, out, any.
    pub direction: Option<Text<'i>>,
    /// `<descr>` (automation: `<description>`).
    pub descr: Option<Str<'i>>,
    /// `<tracker>`.
    pub tracker: Option<Str<'i>>,
    /// Non-empty matches mislint does not model (`<sched>`, `<tagged>`, `<os>`, …).
    pub unmodelled: Vec<Unmodelled<'i>>,
    /// Automation rules' `<sequence>`.
    pub sequence: Option<u64>,
}

/// A rule child that changes what the rule matches but that mislint does not model.
#[derive(Clone, Debug)]
pub struct Unmodelled<'i> {
    /// The element name (`sched`, `tagged`, …).
    pub element: &'static str,
    /// Its value.
    pub value: Text<'i>,
}

impl<'i> FilterRule<'i> {
    /// A rule with nothing but its origin and span: a pass of everything on no
    /// interface, which readers fill in element by element.
    pub fn empty(origin: Origin, span: Span) -> FilterRule<'i> {
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
pub struct PortForward<'i> {
    /// The `<rule>` start tag.
    pub span: Span,
    /// `<interface>`.
    pub interface: Option<Str<'i>>,
    /// `<protocol>`.
    pub protocol: Option<Str<'i>>,
    /// `<source>`.
    pub source: Option<Endpoint<'i>>,
    /// `<destination>`.
    pub destination: Option<Endpoint<'i>>,
    /// `<target>`: the internal address.
    pub target: Option<Str<'i>>,
    /// `<local-port>`: the internal port.
    pub local_port: Option<Str<'i>>,
    /// `<associated-rule-id>`: the filter rule the GUI created with it.
    pub associated_rule_id: Option<Str<'i>>,
    /// `<disabled>` present.
    pub disabled: bool,
}

/// Implements [`MoveSpans`] for an AST struct: `moved` lists the fields that hold
/// spans, `kept` the others. Naming every field keeps the destructuring exhaustive, so a
/// field added to the struct fails to compile until it is listed here.
macro_rules! move_spans {
    ($ty:ident { moved: $($moved:ident),*; kept: $($kept:ident),* }) => {
        impl MoveSpans for $ty<'_> {
            fn move_spans(&mut self, delta: i64) {
                let $ty { $($moved,)* $($kept: _,)* } = self;
                // Unused by a struct that holds no span (`IfGroup`).
                let _ = delta;
                $($moved.move_spans(delta);)*
            }
        }
    };
}

move_spans!(Text { moved: span; kept: value });
move_spans!(Config {
    moved: root_span, filter_span, interfaces, ifgroups, aliases, rules, port_forwards,
        one_to_one;
    kept: flavor
});
move_spans!(IfaceDecl {
    moved: span, ipaddr, subnet, ipaddrv6, subnetv6, blockpriv, blockbogons;
    kept: name, descr
});
move_spans!(IfGroup { moved: ; kept: name, members });
move_spans!(Alias { moved: span; kept: name, kind, members, enabled });
move_spans!(Endpoint { moved: span, network, address, port; kept: not });
move_spans!(FilterRule {
    moved: span, action, interface, ipprotocol, protocol, icmptype, source, destination,
        quick, direction, unmodelled;
    kept: origin, interface_not, disabled, floating, descr, tracker, sequence
});
move_spans!(Unmodelled { moved: value; kept: element });
move_spans!(PortForward {
    moved: span, source, destination;
    kept: interface, protocol, target, local_port, associated_rule_id, disabled
});
