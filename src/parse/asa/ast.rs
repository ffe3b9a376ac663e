//! The ASA vendor AST: what the line grammar read, in the device's own words, before
//! lowering turns it into the rule graph.
//!
//! Names stay borrowed slices of the source text; every node carries the span of the
//! tokens that wrote it, so lowering can point findings and conditions at them. Named
//! port literals (`eq www`) keep their name next to the number they stand for.

use super::ports::ProtoName;
use crate::source::{MoveSpans, Span};
// Every access-list entry looks its objects and groups up by name, and a big config
// has tens of thousands of them: hashed with foldhash, not a B-tree of string compares.
use foldhash::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address as written: a literal, or a `name` alias to resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr<'a> {
    /// A literal IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A `name` alias and where it was written.
    Name(&'a str, Span),
}

/// A port number as written, with the literal name if the config used one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortVal<'a> {
    /// The port the ASA uses.
    pub value: u16,
    /// The Cisco literal (`www`, `ldap`) if one was written instead of a number.
    pub name: Option<&'a str>,
    /// The token.
    pub span: Span,
}

/// A port operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortOp {
    /// `eq p`
    Eq,
    /// `neq p`
    Neq,
    /// `lt p`
    Lt,
    /// `gt p`
    Gt,
    /// `range a b`
    Range,
}

/// A port condition: operator and value(s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortMatch<'a> {
    /// The operator.
    pub op: PortOp,
    /// The value, or the low end of a range.
    pub lo: PortVal<'a>,
    /// The high end of a range.
    pub hi: Option<PortVal<'a>>,
    /// Operator and values.
    pub span: Span,
}

/// The protocol of a service object or service-object line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvcProto {
    /// `tcp-udp`: both, with the same ports.
    TcpUdp,
    /// One protocol, or `ip`.
    Proto(ProtoName),
}

/// A service: `service tcp source eq 1 destination range 2 3`, `service icmp echo`, …
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Service<'a> {
    /// The protocol.
    pub proto: SvcProto,
    /// Source ports.
    pub src: Option<PortMatch<'a>>,
    /// Destination ports.
    pub dst: Option<PortMatch<'a>>,
    /// An ICMP type (and code) after `icmp`/`icmp6`.
    pub icmp: Option<(&'a str, Span)>,
    /// The whole service specification.
    pub span: Span,
}

/// The value of a network object or a network-object line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetValue<'a> {
    /// `host A`
    Host(Addr<'a>),
    /// `A M` / `subnet A M`
    Mask(Addr<'a>, Ipv4Addr),
    /// `2001:db8::/64`
    Prefix(IpAddr, u8),
    /// `range A B`
    Range(IpAddr, IpAddr),
    /// `fqdn [v4|v6] NAME`: resolved by DNS at run time, so unknown here.
    Fqdn(&'a str),
}

/// `object network NAME` and its sub-commands.
#[derive(Clone, Debug, PartialEq)]
pub struct NetObject<'a> {
    /// The `object network` line.
    pub span: Span,
    /// The value (the last `host`/`subnet`/`range`/`fqdn` line wins, as on the device).
    pub value: Option<(NetValue<'a>, Span)>,
    /// `description` text.
    pub description: Option<&'a str>,
}

/// `object service NAME`.
#[derive(Clone, Debug, PartialEq)]
pub struct SvcObject<'a> {
    /// The `object service` line.
    pub span: Span,
    /// The `service` sub-command, if any.
    pub service: Option<Service<'a>>,
}

/// The kind of an object-group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// `object-group network`
    Network,
    /// `object-group service NAME [tcp|udp|tcp-udp]`: a port group when typed.
    Service(Option<SvcProto>),
    /// `object-group protocol`
    Protocol,
    /// `object-group icmp-type`
    IcmpType,
}

impl GroupKind {
    /// The keyword for messages.
    pub fn name(self) -> &'static str {
        match self {
            GroupKind::Network => "network",
            GroupKind::Service(_) => "service",
            GroupKind::Protocol => "protocol",
            GroupKind::IcmpType => "icmp-type",
        }
    }
}

/// One member line of an object-group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member<'a> {
    /// `network-object host A` / `network-object A M` / `network-object v6/len`
    Net(NetValue<'a>, Span),
    /// `network-object object X`
    NetObject(&'a str, Span),
    /// `group-object X`
    Group(&'a str, Span),
    /// `port-object eq|range …`
    Port(PortMatch<'a>),
    /// `service-object PROTO …`
    Service(Service<'a>),
    /// `service-object object X` / `protocol-object object X`
    SvcObject(&'a str, Span),
    /// `protocol-object P`
    Proto(ProtoName, Span),
    /// `icmp-object T`
    Icmp(&'a str, Span),
}

/// `object-group KIND NAME` and its members.
#[derive(Clone, Debug, PartialEq)]
pub struct Group<'a> {
    /// What it groups.
    pub kind: GroupKind,
    /// The `object-group` line.
    pub span: Span,
    /// Members in order.
    pub members: Vec<Member<'a>>,
}

/// `permit` or `deny`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclAction {
    /// `permit`
    Permit,
    /// `deny`
    Deny,
}

/// The protocol position of an extended ACE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoSpec<'a> {
    /// A protocol literal or number (`ip` = any).
    Named(ProtoName, Span),
    /// `object SVC`: a service object; no port fields follow.
    Object(&'a str, Span),
    /// `object-group G`: a protocol group or a service group.
    Group(&'a str, Span),
}

/// The source or destination of an ACE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrSpec<'a> {
    /// `any`: IPv4 and IPv6.
    Any,
    /// `any4`
    Any4,
    /// `any6`
    Any6,
    /// `host A`, `A M`, `v6/len`
    Net(NetValue<'a>),
    /// `object X`
    Object(&'a str),
    /// `object-group X`
    Group(&'a str),
    /// `interface IF`: the firewall's own address on that interface.
    Interface(&'a str),
}

/// An address with the span of its tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// What was written.
    pub spec: AddrSpec<'a>,
    /// Its tokens.
    pub span: Span,
}

/// The port position of an ACE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSpec<'a> {
    /// An operator and values.
    Match(PortMatch<'a>),
    /// `object-group SVC`: a port group.
    Group(&'a str, Span),
}

/// The ICMP type position of an ACE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpSpec<'a> {
    /// A type literal or number, maybe with a code.
    Type(&'a str, Span),
    /// `object-group ICMPGROUP`
    Group(&'a str, Span),
}

/// One extended access-control entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Ace<'a> {
    /// The access-list name.
    pub acl: &'a str,
    /// The whole line.
    pub span: Span,
    /// permit or deny.
    pub action: AclAction,
    /// The action token.
    pub action_span: Span,
    /// Protocol position.
    pub proto: ProtoSpec<'a>,
    /// Source.
    pub src: Endpoint<'a>,
    /// Source ports: boxed, as they are rare and a port match is big (the AST of a
    /// 100k-entry config holds every entry until it is lowered).
    pub src_port: Option<Box<PortSpec<'a>>>,
    /// Destination.
    pub dst: Endpoint<'a>,
    /// Destination ports.
    pub dst_port: Option<PortSpec<'a>>,
    /// ICMP type after an icmp ACE.
    pub icmp: Option<IcmpSpec<'a>>,
    /// `time-range X`: the name and the span of both tokens.
    pub time_range: Option<(&'a str, Span)>,
    /// `inactive`: parsed, never applied.
    pub inactive: bool,
    /// The `remark` lines just above it.
    pub remark: Option<String>,
}

/// One access-list line that matters to filtering.
#[derive(Clone, Debug, PartialEq)]
pub enum AclLine<'a> {
    /// `remark TEXT`
    Remark {
        /// The access-list name.
        acl: &'a str,
        /// The text.
        text: &'a str,
    },
    /// An extended entry.
    Ace(Box<Ace<'a>>),
    /// `standard …`: parsed, not bound to traffic.
    Standard {
        /// The access-list name.
        acl: &'a str,
        /// The whole line.
        span: Span,
    },
    /// `webtype`, `ethertype` and global `access-list` settings: skipped.
    Skipped,
}

/// Where an access-group binds an ACL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind<'a> {
    /// `in interface IF`
    In(&'a str, Span),
    /// `out interface IF`
    Out(&'a str, Span),
    /// `global`
    Global,
}

/// `access-group ACL in|out interface IF` / `access-group ACL global`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessGroup<'a> {
    /// The ACL name.
    pub acl: &'a str,
    /// Its token.
    pub acl_span: Span,
    /// The binding.
    pub bind: Bind<'a>,
    /// The whole line.
    pub span: Span,
}

/// An `interface` block (or the PIX 6 `nameif`/`ip address` lines for it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InterfaceDef<'a> {
    /// The hardware name (`GigabitEthernet0/1`, `ethernet0`).
    pub hw: &'a str,
    /// The `interface` line.
    pub span: Span,
    /// `nameif NAME` and the line.
    pub nameif: Option<(&'a str, Span)>,
    /// `security-level N` and the line.
    pub level: Option<(u8, Span)>,
    /// `ip address A M` and the line (`dhcp`/`pppoe` leave it unset).
    pub address: Option<(Addr<'a>, Ipv4Addr, Span)>,
    /// `ipv6 address A/len` lines.
    pub v6: Vec<(Ipv6Addr, u8, Span)>,
    /// `description TEXT`.
    pub description: Option<&'a str>,
    /// `management-only`.
    pub management_only: bool,
    /// `shutdown`.
    pub shutdown: bool,
}

/// `name A.B.C.D NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameDef {
    /// The address.
    pub addr: IpAddr,
    /// The line.
    pub span: Span,
}

/// Where a NAT rule was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatForm {
    /// `nat` inside `object network` (8.3+ object NAT).
    Object,
    /// Top-level `nat` (8.3+ twice NAT, or PIX/pre-8.3 `nat (if) id …`).
    Twice,
    /// Pre-8.3 `static (real,mapped) …`.
    LegacyStatic,
}

/// A NAT rule: its interfaces and the words of its translation, read by `nat.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nat<'a> {
    /// The form.
    pub form: NatForm,
    /// The `object network` an object NAT belongs to (its real address).
    pub object: Option<&'a str>,
    /// The words after `(real,mapped)`: `static 203.0.113.5 service tcp www www`, …
    pub rest: &'a str,
    /// Real (inside) interface, if given.
    pub real_if: Option<&'a str>,
    /// Mapped interface, if given.
    pub mapped_if: Option<&'a str>,
    /// True for static translations (which change what a destination address means).
    pub is_static: bool,
    /// The whole line.
    pub span: Span,
}

/// Everything the parser read from one ASA config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config<'a> {
    /// Interfaces in file order.
    pub interfaces: Vec<InterfaceDef<'a>>,
    /// `same-security-traffic permit inter-interface` line.
    pub inter_interface: Option<Span>,
    /// `same-security-traffic permit intra-interface` line.
    pub intra_interface: Option<Span>,
    /// `name` aliases.
    pub names: HashMap<&'a str, NameDef>,
    /// Network objects.
    pub net_objects: HashMap<&'a str, NetObject<'a>>,
    /// Service objects.
    pub svc_objects: HashMap<&'a str, SvcObject<'a>>,
    /// Object-groups.
    pub groups: HashMap<&'a str, Group<'a>>,
    /// Access-list lines in file order.
    pub acl_lines: Vec<AclLine<'a>>,
    /// Access-group bindings in file order.
    pub access_groups: Vec<AccessGroup<'a>>,
    /// NAT rules.
    pub nats: Vec<Nat<'a>>,
}

// Moving spans, for the memo that reads edited copies of a file (`super::memo`): each
// impl names every field or variant, so that a span added later cannot stay unmoved.

impl MoveSpans for AclLine<'_> {
    fn move_spans(&mut self, delta: i64) {
        match self {
            AclLine::Remark { acl: _, text: _ } | AclLine::Skipped => {}
            AclLine::Ace(ace) => ace.move_spans(delta),
            AclLine::Standard { acl: _, span } => span.move_spans(delta),
        }
    }
}

impl MoveSpans for Ace<'_> {
    fn move_spans(&mut self, delta: i64) {
        let Ace {
            acl: _,
            span,
            action: _,
            action_span,
            proto,
            src,
            src_port,
            dst,
            dst_port,
            icmp,
            time_range,
            inactive: _,
            remark: _,
        } = self;
        span.move_spans(delta);
        action_span.move_spans(delta);
        proto.move_spans(delta);
        src.move_spans(delta);
        src_port.move_spans(delta);
        dst.move_spans(delta);
        dst_port.move_spans(delta);
        icmp.move_spans(delta);
        if let Some((_, span)) = time_range {
            span.move_spans(delta);
        }
    }
}

impl MoveSpans for ProtoSpec<'_> {
    fn move_spans(&mut self, delta: i64) {
        match self {
            ProtoSpec::Named(_, span) | ProtoSpec::Object(_, span) | ProtoSpec::Group(_, span) => {
                span.move_spans(delta)
            }
        }
    }
}

impl MoveSpans for Endpoint<'_> {
    fn move_spans(&mut self, delta: i64) {
        let Endpoint { spec, span } = self;
        spec.move_spans(delta);
        span.move_spans(delta);
    }
}

impl MoveSpans for AddrSpec<'_> {
    fn move_spans(&mut self, delta: i64) {
        match self {
            AddrSpec::Net(net) => net.move_spans(delta),
            AddrSpec::Any
            | AddrSpec::Any4
            | AddrSpec::Any6
            | AddrSpec::Object(_)
            | AddrSpec::Group(_)
            | AddrSpec::Interface(_) => {}
        }
    }
}

impl MoveSpans for NetValue<'_> {
    fn move_spans(&mut self, delta: i64) {
        match self {
            NetValue::Host(addr) | NetValue::Mask(addr, _) => addr.move_spans(delta),
            NetValue::Prefix(..) | NetValue::Range(..) | NetValue::Fqdn(_) => {}
        }
    }
}

impl MoveSpans for Addr<'_> {
    fn move_spans(&mut self, delta: i64) {
        match self {
            Addr::Name(_, span) => span.move_spans(delta),
            Addr::Ip(_) => {}
        }
    }
}

impl MoveSpans for PortSpec<'_> {
    fn move_spans(&mut self, delta: i64) {
        match self {
            PortSpec::Match(m) => m.move_spans(delta),
            PortSpec::Group(_, span) => span.move_spans(delta),
        }
    }
}

impl MoveSpans for PortMatch<'_> {
    fn move_spans(&mut self, delta: i64) {
        let PortMatch {
            op: _,
            lo,
            hi,
            span,
        } = self;
        lo.move_spans(delta);
        hi.move_spans(delta);
        span.move_spans(delta);
    }
}

impl MoveSpans for PortVal<'_> {
    fn move_spans(&mut self, delta: i64) {
        let PortVal {
            value: _,
            name: _,
            span,
        } = self;
        span.move_spans(delta);
    }
}

impl MoveSpans for IcmpSpec<'_> {
    fn move_spans(&mut self, delta: i64) {
        match self {
            IcmpSpec::Type(_, span) | IcmpSpec::Group(_, span) => span.move_spans(delta),
        }
    }
}
