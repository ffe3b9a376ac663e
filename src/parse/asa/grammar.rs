//! The ASA line grammar: one nom parser per production of `grammars/asa.ebnf`, each
//! reading one logical line (a top-level command or one sub-command of a block) into
//! AST nodes.
//!
//! ASA commands are whitespace-separated tokens, so the grammar is built on one token
//! parser (`tok`) and keyword parsers over it; productions read tokens in sequence and
//! say what they expected when a token does not fit. Errors keep the input where they
//! failed, so the finding underlines the offending token. Spans come from slice
//! offsets into the file text (`Cx::span`). Which object-groups are service groups is
//! known before ACLs are read (`Cx::service_groups`), because `object-group X` after a
//! source address is a port group or a destination depending on X's kind.

use super::ast::*;
use super::ports::{self, PortProto, ProtoName};
use crate::source::{FileId, Span};
use nom::IResult;
use nom::error::{ErrorKind, ParseError};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A grammar error: where it failed and what was expected there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GErr<'a> {
    /// The input at the failure (its first token is the offending one).
    pub at: &'a str,
    /// What the grammar expected, for the message.
    pub expected: &'static str,
    /// A custom message replacing "expected …" (e.g. a port name invalid for udp).
    pub message: Option<&'static str>,
}

impl<'a> ParseError<&'a str> for GErr<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        GErr {
            at: input,
            expected: "",
            message: None,
        }
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }

    fn or(self, other: Self) -> Self {
        // Keep the error that got further into the line.
        if other.at.len() <= self.at.len() {
            other
        } else {
            self
        }
    }
}

/// Result of a production.
pub type Res<'a, T> = IResult<&'a str, T, GErr<'a>>;

/// What productions need besides the text: the file for spans and the names of
/// groups whose kind decides how an ACE reads.
#[derive(Debug)]
pub struct Cx<'a> {
    /// The file.
    pub file: FileId,
    /// The whole file text; every slice the grammar sees lies inside it.
    pub text: &'a str,
    /// Names of `object-group service` groups.
    pub service_groups: HashSet<&'a str>,
    /// Names of `object-group icmp-type` groups.
    pub icmp_groups: HashSet<&'a str>,
}

impl<'a> Cx<'a> {
    /// A context with no groups known yet.
    pub fn new(file: FileId, text: &'a str) -> Cx<'a> {
        Cx {
            file,
            text,
            service_groups: HashSet::new(),
            icmp_groups: HashSet::new(),
        }
    }

    /// The span of a slice of the file text.
    pub fn span(&self, s: &str) -> Span {
        Span::of_slice(self.file, self.text, 0, s)
    }

    /// The span of the text consumed between `before` and `after` (two positions in
    /// the same line), without leading blanks.
    pub fn consumed(&self, before: &'a str, after: &'a str) -> Span {
        let used = before.len().saturating_sub(after.len());
        let part = before.get(..used).unwrap_or("").trim_start();
        self.span(part)
    }
}

/// A failure at `i` expecting `what`.
pub fn fail<'a>(i: &'a str, what: &'static str) -> nom::Err<GErr<'a>> {
    nom::Err::Error(GErr {
        at: i,
        expected: what,
        message: None,
    })
}

/// A failure with its own message.
fn fail_msg<'a>(i: &'a str, what: &'static str, message: &'static str) -> nom::Err<GErr<'a>> {
    nom::Err::Failure(GErr {
        at: i,
        expected: what,
        message: Some(message),
    })
}

/// One whitespace-separated token.
///
/// Read byte by byte: every rule is a run of tokens, and the combinators decoding each
/// character took 240 instructions a token (a sixth of the ASA parse's on its main
/// thread). Blanks are ASCII, so the cuts fall between characters.
pub fn tok(i: &str) -> Res<'_, &str> {
    let is_blank = |b: &u8| matches!(b, b' ' | b'\t');
    let blanks = i.bytes().take_while(is_blank).count();
    let rest = i.get(blanks..).unwrap_or("");
    let len = rest
        .bytes()
        .position(|b| is_blank(&b))
        .unwrap_or(rest.len());
    match (rest.get(len..), rest.get(..len)) {
        (Some(after), Some(token)) if len > 0 => Ok((after, token)),
        // As `take_till1` fails: at the input it could not take from.
        _ => Err(nom::Err::Error(GErr::from_error_kind(
            rest,
            ErrorKind::TakeTill1,
        ))),
    }
}

/// A token or a failure saying what was expected.
fn tok_as<'a>(i: &'a str, what: &'static str) -> Res<'a, &'a str> {
    tok(i).map_err(|_| fail(i, what))
}

/// The next token without consuming it.
pub fn peek(i: &str) -> Option<&str> {
    tok(i).ok().map(|(_, t)| t)
}

/// Consumes the keyword `w` (case-insensitive).
fn kw<'a>(i: &'a str, w: &'static str) -> Res<'a, &'a str> {
    match tok(i) {
        Ok((rest, t)) if t.eq_ignore_ascii_case(w) => Ok((rest, t)),
        _ => Err(fail(i, w)),
    }
}

/// True if the next token is `w`.
fn at_kw(i: &str, w: &str) -> bool {
    peek(i).is_some_and(|t| t.eq_ignore_ascii_case(w))
}

/// Nothing but blanks left.
fn end<'a>(i: &'a str, what: &'static str) -> Res<'a, ()> {
    if i.trim().is_empty() {
        Ok((i, ()))
    } else {
        Err(fail(i, what))
    }
}

/// A number token in `lo..=hi`.
fn number<'a>(i: &'a str, lo: u32, hi: u32, what: &'static str) -> Res<'a, u32> {
    let (rest, t) = tok_as(i, what)?;
    match t.parse::<u32>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok((rest, n)),
        _ => Err(fail(i, what)),
    }
}

/// `ipv4 = dotted quad`
pub fn ipv4(i: &str) -> Res<'_, Ipv4Addr> {
    let (rest, t) = tok_as(i, "an IPv4 address")?;
    t.parse::<Ipv4Addr>()
        .map(|a| (rest, a))
        .map_err(|_| fail(i, "an IPv4 address"))
}

/// `netmask = ipv4` with contiguous ones (ASA access-lists and objects use subnet
/// masks, never wildcards).
fn netmask(i: &str) -> Res<'_, Ipv4Addr> {
    let (rest, m) = ipv4(i).map_err(|_| fail(i, "a netmask"))?;
    if crate::graph::sets::addr::v4_mask_len(m).is_none() {
        return Err(fail(i, "a contiguous netmask"));
    }
    Ok((rest, m))
}

/// `ip = ipv4 | ipv6`
fn ip(i: &str) -> Res<'_, IpAddr> {
    let (rest, t) = tok_as(i, "an IP address")?;
    t.parse::<IpAddr>()
        .map(|a| (rest, a))
        .map_err(|_| fail(i, "an IP address"))
}

/// `v6prefix = ipv6 "/" len`
fn v6prefix(i: &str) -> Res<'_, (IpAddr, u8)> {
    let what = "an IPv6 prefix such as 2001:db8::/64";
    let (rest, t) = tok_as(i, what)?;
    let (a, l) = t.split_once('/').ok_or_else(|| fail(i, what))?;
    let addr = a.parse::<Ipv6Addr>().map_err(|_| fail(i, what))?;
    match l.parse::<u8>() {
        Ok(len) if len <= 128 => Ok((rest, (IpAddr::V6(addr), len))),
        _ => Err(fail(i, what)),
    }
}

/// `addr = ip | NAME` (a `name` alias).
fn addr<'a>(cx: &Cx<'a>, i: &'a str) -> Res<'a, Addr<'a>> {
    let (rest, t) = tok_as(i, "an address or a name")?;
    match t.parse::<IpAddr>() {
        Ok(a) => Ok((rest, Addr::Ip(a))),
        Err(_) if !t.contains('/') => Ok((rest, Addr::Name(t, cx.span(t)))),
        Err(_) => Err(fail(i, "an address or a name")),
    }
}

/// `port = number | port-literal`; `transport` is the protocol the port belongs to
/// when the line says it (6, 17, or both for `tcp-udp`), to check the literal against
/// Cisco's table.
fn port_val<'a>(cx: &Cx<'a>, i: &'a str, transport: Transport) -> Res<'a, PortVal<'a>> {
    let what = "a port number or one of Cisco's port names";
    let (rest, t) = tok_as(i, what)?;
    if let Ok(n) = t.parse::<u16>() {
        return Ok((
            rest,
            PortVal {
                value: n,
                name: None,
                span: cx.span(t),
            },
        ));
    }
    let Some(row) = ports::port_by_name(t) else {
        return Err(nom::Err::Failure(GErr {
            at: i,
            expected: what,
            message: None,
        }));
    };
    let fits = match transport {
        Transport::Unknown => true,
        Transport::One(p) => row.proto.allows(p),
        Transport::TcpUdp => row.proto == PortProto::Both,
    };
    if !fits {
        let msg = match row.proto {
            PortProto::Tcp => "Cisco's port table defines this name for tcp only",
            PortProto::Udp => "Cisco's port table defines this name for udp only",
            PortProto::Both => "Cisco's port table does not define this name here",
        };
        return Err(fail_msg(i, what, msg));
    }
    Ok((
        rest,
        PortVal {
            value: row.port,
            name: Some(t),
            span: cx.span(t),
        },
    ))
}

/// The transport a port belongs to, as far as the line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Not said (a protocol group, an untyped service group).
    Unknown,
    /// One protocol number.
    One(u8),
    /// `tcp-udp`: the literal must exist for both.
    TcpUdp,
}

impl Transport {
    fn of(proto: SvcProto) -> Transport {
        match proto {
            SvcProto::TcpUdp => Transport::TcpUdp,
            SvcProto::Proto(ProtoName::Num(p)) => Transport::One(p),
            SvcProto::Proto(ProtoName::Any) => Transport::Unknown,
        }
    }
}

const PORT_OPS: &str = "a port operator: eq, neq, lt, gt or range";

/// True if the next token is a port operator.
fn at_port_op(i: &str) -> bool {
    peek(i).is_some_and(|t| {
        ["eq", "neq", "lt", "gt", "range"]
            .iter()
            .any(|w| t.eq_ignore_ascii_case(w))
    })
}

/// `port-match = ("eq"|"neq"|"lt"|"gt") port | "range" port port`; commits after the
/// operator, so a bad value is reported at the value.
pub fn port_match<'a>(cx: &Cx<'a>, i: &'a str, transport: Transport) -> Res<'a, PortMatch<'a>> {
    let (rest, op_tok) = tok_as(i, PORT_OPS)?;
    let op = match op_tok.to_ascii_lowercase().as_str() {
        "eq" => PortOp::Eq,
        "neq" => PortOp::Neq,
        "lt" => PortOp::Lt,
        "gt" => PortOp::Gt,
        "range" => PortOp::Range,
        _ => return Err(fail(i, PORT_OPS)),
    };
    let (rest, lo) = port_val(cx, rest, transport).map_err(to_failure)?;
    let (rest, hi) = if op == PortOp::Range {
        let (r, hi) = port_val(cx, rest, transport).map_err(to_failure)?;
        if hi.value < lo.value {
            return Err(fail_msg(
                rest,
                "a range end not below its start",
                "the range ends below its start",
            ));
        }
        (r, Some(hi))
    } else {
        (rest, None)
    };
    Ok((
        rest,
        PortMatch {
            op,
            lo,
            hi,
            span: cx.consumed(i, rest),
        },
    ))
}

/// Turns a recoverable error into a committed one (nom's `cut`).
fn to_failure(e: nom::Err<GErr<'_>>) -> nom::Err<GErr<'_>> {
    match e {
        nom::Err::Error(g) => nom::Err::Failure(g),
        other => other,
    }
}

/// `svc-proto = "tcp-udp" | protocol`
fn svc_proto(i: &str) -> Res<'_, SvcProto> {
    let what = "a protocol name or number (ip, tcp, udp, tcp-udp, icmp, esp, …)";
    let (rest, t) = tok_as(i, what)?;
    if t.eq_ignore_ascii_case("tcp-udp") {
        return Ok((rest, SvcProto::TcpUdp));
    }
    ports::protocol_by_name(t)
        .map(|p| (rest, SvcProto::Proto(p)))
        .ok_or_else(|| fail(i, what))
}

/// True for ICMP and ICMPv6.
fn is_icmp(p: SvcProto) -> Option<bool> {
    match p {
        SvcProto::Proto(ProtoName::Num(1)) => Some(false),
        SvcProto::Proto(ProtoName::Num(58)) => Some(true),
        _ => None,
    }
}

/// `icmp-type = literal | number [code]`
fn icmp_type<'a>(cx: &Cx<'a>, i: &'a str, v6: bool) -> Res<'a, (&'a str, Span)> {
    let what = "an ICMP type name or number";
    let (rest, t) = tok_as(i, what)?;
    if ports::icmp_type_by_name(t, v6).is_none() {
        return Err(fail(i, what));
    }
    let rest = match number(rest, 0, 255, "") {
        Ok((r, _)) => r,
        Err(_) => rest,
    };
    Ok((rest, (t, cx.consumed(i, rest))))
}

/// `service = svc-proto [icmp-type] | svc-proto ["source" port-match]
/// ["destination"] [port-match]`, the body of `service …` and `service-object …`.
pub fn service<'a>(cx: &Cx<'a>, i: &'a str) -> Res<'a, Service<'a>> {
    let (mut rest, proto) = svc_proto(i)?;
    let transport = Transport::of(proto);
    let mut src = None;
    let mut dst = None;
    let mut icmp = None;
    if let Some(v6) = is_icmp(proto) {
        if peek(rest).is_some() {
            let (r, t) = icmp_type(cx, rest, v6)?;
            icmp = Some(t);
            rest = r;
        }
    } else {
        if at_kw(rest, "source") {
            let (r, _) = kw(rest, "source")?;
            let (r, m) = port_match(cx, r, transport).map_err(to_failure)?;
            src = Some(m);
            rest = r;
        }
        if at_kw(rest, "destination") {
            let (r, _) = kw(rest, "destination")?;
            let (r, m) = port_match(cx, r, transport).map_err(to_failure)?;
            dst = Some(m);
            rest = r;
        } else if at_port_op(rest) {
            // `destination` is optional on entry (`service-object udp eq 1235`).
            let (r, m) = port_match(cx, rest, transport)?;
            dst = Some(m);
            rest = r;
        }
    }
    end(rest, "source, destination or a port operator")?;
    Ok((
        rest,
        Service {
            proto,
            src,
            dst,
            icmp,
            span: cx.consumed(i, rest),
        },
    ))
}

/// `net-value = "host" addr | addr netmask | v6prefix` (network-object bodies).
pub fn net_value<'a>(cx: &Cx<'a>, i: &'a str) -> Res<'a, NetValue<'a>> {
    if at_kw(i, "host") {
        let (r, _) = kw(i, "host")?;
        let (r, a) = addr(cx, r).map_err(to_failure)?;
        return Ok((r, NetValue::Host(a)));
    }
    if peek(i).is_some_and(|t| t.contains('/')) {
        let (r, (a, l)) = v6prefix(i)?;
        return Ok((r, NetValue::Prefix(a, l)));
    }
    let what = "host ADDRESS, ADDRESS NETMASK or an IPv6 prefix";
    let (r, a) = addr(cx, i).map_err(|_| fail(i, what))?;
    if let Addr::Ip(IpAddr::V6(_)) = a {
        return Err(fail(i, what));
    }
    let (r, m) = netmask(r)?;
    Ok((r, NetValue::Mask(a, m)))
}

/// `object-network-line = "host" addr | "subnet" (ipv4 netmask | v6prefix)
/// | "range" ip ip | "fqdn" ["v4"|"v6"] NAME` (the value lines of `object network`).
pub fn object_network_value<'a>(cx: &Cx<'a>, i: &'a str) -> Res<'a, NetValue<'a>> {
    let what = "host, subnet, range, fqdn, description or nat";
    let (rest, t) = tok_as(i, what)?;
    let (rest, v) = match t.to_ascii_lowercase().as_str() {
        "host" => {
            let (r, a) = addr(cx, rest)?;
            (r, NetValue::Host(a))
        }
        "subnet" => {
            if peek(rest).is_some_and(|t| t.contains('/')) {
                let (r, (a, l)) = v6prefix(rest)?;
                (r, NetValue::Prefix(a, l))
            } else {
                let (r, a) = ipv4(rest)?;
                let (r, m) = netmask(r)?;
                (r, NetValue::Mask(Addr::Ip(IpAddr::V4(a)), m))
            }
        }
        "range" => {
            let (r, a) = ip(rest)?;
            let (r2, b) = ip(r)?;
            if a.is_ipv4() != b.is_ipv4() || a > b {
                return Err(fail(
                    r,
                    "a range end of the same family, not below its start",
                ));
            }
            (r2, NetValue::Range(a, b))
        }
        "fqdn" => {
            let mut r = rest;
            if at_kw(r, "v4") || at_kw(r, "v6") {
                r = tok(r)?.0;
            }
            let (r, n) = tok_as(r, "a domain name")?;
            (r, NetValue::Fqdn(n))
        }
        _ => return Err(fail(i, what)),
    };
    end(rest, "the end of the line")?;
    Ok((rest, v))
}

/// `endpoint = "any" | "any4" | "any6" | "host" addr | addr netmask | v6prefix
/// | "object" NAME | "object-group" NAME | "interface" IFNAME`
pub fn endpoint<'a>(cx: &Cx<'a>, i: &'a str) -> Res<'a, Endpoint<'a>> {
    let what = "an address: any, any4, any6, host A, A MASK, object X, object-group X, interface X or an IPv6 prefix";
    let (rest, t) = tok_as(i, what)?;
    let (rest, spec) = match t.to_ascii_lowercase().as_str() {
        "any" => (rest, AddrSpec::Any),
        "any4" => (rest, AddrSpec::Any4),
        "any6" => (rest, AddrSpec::Any6),
        "object" => {
            let (r, n) = tok_as(rest, "a network object name").map_err(to_failure)?;
            (r, AddrSpec::Object(n))
        }
        "object-group" => {
            let (r, n) = tok_as(rest, "a network object-group name").map_err(to_failure)?;
            (r, AddrSpec::Group(n))
        }
        "interface" => {
            let (r, n) = tok_as(rest, "an interface name (nameif)").map_err(to_failure)?;
            (r, AddrSpec::Interface(n))
        }
        _ => {
            let (r, v) = net_value(cx, i).map_err(|e| match e {
                nom::Err::Error(g) if g.at.len() == i.len() => fail(i, what),
                other => other,
            })?;
            (r, AddrSpec::Net(v))
        }
    };
    Ok((
        rest,
        Endpoint {
            spec,
            span: cx.consumed(i, rest),
        },
    ))
}

/// `acl-port = port-match | "object-group" PORTGROUP` (only a service group can stand
/// in the port position; any other group is the next address).
fn acl_port<'a>(cx: &Cx<'a>, i: &'a str, transport: Transport) -> Res<'a, Option<PortSpec<'a>>> {
    if at_port_op(i) {
        let (r, m) = port_match(cx, i, transport)?;
        return Ok((r, Some(PortSpec::Match(m))));
    }
    if at_kw(i, "object-group") {
        let (r, _) = kw(i, "object-group")?;
        if let Ok((r2, n)) = tok(r)
            && cx.service_groups.contains(n)
        {
            return Ok((r2, Some(PortSpec::Group(n, cx.consumed(i, r2)))));
        }
    }
    Ok((i, None))
}

/// `acl-proto = protocol | "object" SVCOBJ | "object-group" GROUP`
fn acl_proto<'a>(cx: &Cx<'a>, i: &'a str) -> Res<'a, ProtoSpec<'a>> {
    let what = "a protocol (ip, tcp, udp, icmp, esp, a number, …), object X or object-group X";
    let (rest, t) = tok_as(i, what)?;
    if t.eq_ignore_ascii_case("object") {
        let (r, n) = tok_as(rest, "a service object name").map_err(to_failure)?;
        return Ok((r, ProtoSpec::Object(n, cx.consumed(i, r))));
    }
    if t.eq_ignore_ascii_case("object-group") {
        let (r, n) = tok_as(rest, "a protocol or service object-group name").map_err(to_failure)?;
        return Ok((r, ProtoSpec::Group(n, cx.consumed(i, r))));
    }
    ports::protocol_by_name(t)
        .map(|p| (rest, ProtoSpec::Named(p, cx.span(t))))
        .ok_or_else(|| fail(i, what))
}

/// Words that start the trailing options of an ACE.
fn at_option(i: &str) -> bool {
    peek(i).is_some_and(|t| {
        ["log", "time-range", "inactive"]
            .iter()
            .any(|w| t.eq_ignore_ascii_case(w))
    })
}

const LOG_LEVELS: &[&str] = &[
    "emergencies",
    "alerts",
    "critical",
    "errors",
    "warnings",
    "notifications",
    "informational",
    "debugging",
];

/// `log-opt = "log" ["disable" | "default" | level] ["interval" number]`
fn log_opt(i: &str) -> Res<'_, ()> {
    let (mut r, _) = kw(i, "log")?;
    if at_kw(r, "disable") || at_kw(r, "default") {
        return Ok((tok(r)?.0, ()));
    }
    if let Some(t) = peek(r) {
        let is_level = t.parse::<u8>().is_ok_and(|n| n <= 7)
            || LOG_LEVELS.iter().any(|l| t.eq_ignore_ascii_case(l));
        if is_level {
            r = tok(r)?.0;
        }
    }
    if at_kw(r, "interval") {
        let (r2, _) = kw(r, "interval")?;
        let (r2, _) = number(r2, 1, 600, "an interval in seconds (1-600)").map_err(to_failure)?;
        r = r2;
    }
    Ok((r, ()))
}

/// `ace = action acl-proto endpoint [acl-port] endpoint [acl-port] [icmp]
/// {log-opt | "time-range" NAME | "inactive"}` after `extended` (or directly after the
/// ACL name, PIX style).
fn ace<'a>(cx: &Cx<'a>, acl: &'a str, line: &'a str, i: &'a str) -> Res<'a, Ace<'a>> {
    let (rest, a) = tok_as(i, "permit or deny")?;
    let action = if a.eq_ignore_ascii_case("permit") {
        AclAction::Permit
    } else if a.eq_ignore_ascii_case("deny") {
        AclAction::Deny
    } else {
        return Err(fail(i, "permit or deny"));
    };
    let (rest, proto) = acl_proto(cx, rest)?;
    // Ports follow only a protocol; a service object or service group carries its own.
    let (ports_allowed, transport) = match proto {
        ProtoSpec::Named(ProtoName::Num(p), _) => (true, Transport::One(p)),
        ProtoSpec::Named(ProtoName::Any, _) => (true, Transport::Unknown),
        ProtoSpec::Object(..) => (false, Transport::Unknown),
        ProtoSpec::Group(n, _) => (!cx.service_groups.contains(n), Transport::Unknown),
    };
    let (rest, src) = endpoint(cx, rest)?;
    let (rest, src_port) = if ports_allowed {
        acl_port(cx, rest, transport)?
    } else {
        (rest, None)
    };
    let (rest, dst) = endpoint(cx, rest)?;
    let (mut rest, dst_port) = if ports_allowed {
        acl_port(cx, rest, transport)?
    } else {
        (rest, None)
    };
    let icmp_v6 = match proto {
        ProtoSpec::Named(ProtoName::Num(1), _) => Some(false),
        ProtoSpec::Named(ProtoName::Num(58), _) => Some(true),
        ProtoSpec::Group(n, _) if !cx.service_groups.contains(n) => Some(false),
        _ => None,
    };
    let mut icmp = None;
    if let Some(v6) = icmp_v6
        && peek(rest).is_some()
        && !at_option(rest)
        && dst_port.is_none()
    {
        if at_kw(rest, "object-group") {
            let (r, _) = kw(rest, "object-group")?;
            let (r, n) = tok_as(r, "an icmp-type object-group name").map_err(to_failure)?;
            icmp = Some(IcmpSpec::Group(n, cx.consumed(rest, r)));
            rest = r;
        } else {
            let (r, (t, span)) = icmp_type(cx, rest, v6)?;
            icmp = Some(IcmpSpec::Type(t, span));
            rest = r;
        }
    }
    let mut time_range = None;
    let mut inactive = false;
    loop {
        if peek(rest).is_none() {
            break;
        }
        if at_kw(rest, "log") {
            rest = log_opt(rest)?.0;
        } else if at_kw(rest, "time-range") {
            let (r, _) = kw(rest, "time-range")?;
            let (r, n) = tok_as(r, "a time-range name").map_err(to_failure)?;
            time_range = Some((n, cx.consumed(rest, r)));
            rest = r;
        } else if at_kw(rest, "inactive") {
            rest = kw(rest, "inactive")?.0;
            inactive = true;
        } else {
            let what = if ports_allowed {
                "a port operator, log, time-range or inactive"
            } else {
                "log, time-range or inactive"
            };
            return Err(fail(rest, what));
        }
    }
    Ok((
        rest,
        Ace {
            acl,
            span: cx.span(line),
            action,
            action_span: cx.span(a),
            proto,
            src,
            src_port: src_port.map(Box::new),
            dst,
            dst_port,
            icmp,
            time_range,
            inactive,
            remark: None,
        },
    ))
}

/// `access-list = "access-list" NAME ["line" N] ("remark" TEXT | "extended" ace
/// | ace | "standard" action std-addr | ("webtype"|"ethertype") …)`
pub fn access_list<'a>(cx: &Cx<'a>, line: &'a str) -> Res<'a, AclLine<'a>> {
    let (i, _) = kw(line, "access-list")?;
    let (i, name) = tok_as(i, "an access-list name")?;
    // Global access-list settings, not entries.
    if ["alert-interval", "deny-flow-max", "compiled", "rename"]
        .iter()
        .any(|w| name.eq_ignore_ascii_case(w))
    {
        return Ok(("", AclLine::Skipped));
    }
    let mut i = i;
    if at_kw(i, "line") {
        let (r, _) = kw(i, "line")?;
        i = number(r, 1, u32::MAX, "a line number")
            .map_err(to_failure)?
            .0;
    }
    let what = "extended, standard, remark, permit or deny";
    let (rest, t) = tok_as(i, what)?;
    match t.to_ascii_lowercase().as_str() {
        "remark" => Ok((
            "",
            AclLine::Remark {
                acl: name,
                text: rest.trim(),
            },
        )),
        "extended" => {
            let (r, a) = ace(cx, name, line, rest)?;
            Ok((r, AclLine::Ace(Box::new(a))))
        }
        "permit" | "deny" => {
            let (r, a) = ace(cx, name, line, i)?;
            Ok((r, AclLine::Ace(Box::new(a))))
        }
        "standard" => {
            let (r, a) = tok_as(rest, "permit or deny")?;
            if !(a.eq_ignore_ascii_case("permit") || a.eq_ignore_ascii_case("deny")) {
                return Err(fail(rest, "permit or deny"));
            }
            let (r, _) = endpoint(cx, r)?;
            end(r, "the end of the line")?;
            Ok((
                r,
                AclLine::Standard {
                    acl: name,
                    span: cx.span(line),
                },
            ))
        }
        "webtype" | "ethertype" => Ok(("", AclLine::Skipped)),
        _ => Err(fail(i, what)),
    }
}

/// `access-group = "access-group" NAME ("in"|"out") "interface" IFNAME [options]
/// | "access-group" NAME "global"`
pub fn access_group<'a>(cx: &Cx<'a>, line: &'a str) -> Res<'a, AccessGroup<'a>> {
    let (i, _) = kw(line, "access-group")?;
    let (i, acl) = tok_as(i, "an access-list name")?;
    let what = "in, out or global";
    let (r, dir) = tok_as(i, what)?;
    let bind = match dir.to_ascii_lowercase().as_str() {
        "global" => {
            end(r, "the end of the line")?;
            Bind::Global
        }
        "in" | "out" => {
            let (r, _) = kw(r, "interface").map_err(to_failure)?;
            let (r, ifname) = tok_as(r, "an interface name (nameif)").map_err(to_failure)?;
            // `per-user-override` / `control-plane` do not change through traffic.
            if let Some(opt) = peek(r)
                && !(opt.eq_ignore_ascii_case("per-user-override")
                    || opt.eq_ignore_ascii_case("control-plane"))
            {
                return Err(fail(
                    r,
                    "per-user-override, control-plane or the end of the line",
                ));
            }
            if dir.eq_ignore_ascii_case("in") {
                Bind::In(ifname, cx.span(ifname))
            } else {
                Bind::Out(ifname, cx.span(ifname))
            }
        }
        _ => return Err(fail(i, what)),
    };
    Ok((
        "",
        AccessGroup {
            acl,
            acl_span: cx.span(acl),
            bind,
            span: cx.span(line),
        },
    ))
}

/// `name-line = "name" ip NAME ["description" TEXT]`
pub fn name_line<'a>(line: &'a str) -> Res<'a, (&'a str, IpAddr)> {
    let (i, _) = kw(line, "name")?;
    let (i, a) = ip(i)?;
    let (i, n) = tok_as(i, "a name")?;
    if peek(i).is_some() {
        kw(i, "description").map_err(|_| fail(i, "description or the end of the line"))?;
    }
    Ok(("", (n, a)))
}

/// `same-security = "same-security-traffic" "permit" ("inter-interface"|"intra-interface")`;
/// returns true for intra-interface.
pub fn same_security(line: &str) -> Res<'_, bool> {
    let (i, _) = kw(line, "same-security-traffic")?;
    let (i, _) = kw(i, "permit")?;
    let what = "inter-interface or intra-interface";
    let (r, t) = tok_as(i, what)?;
    let intra = if t.eq_ignore_ascii_case("intra-interface") {
        true
    } else if t.eq_ignore_ascii_case("inter-interface") {
        false
    } else {
        return Err(fail(i, what));
    };
    end(r, "the end of the line")?;
    Ok((r, intra))
}

/// `security-level = "security-level" 0..100`
pub fn security_level(i: &str) -> Res<'_, u8> {
    let (i, _) = kw(i, "security-level")?;
    let (i, n) = number(i, 0, 100, "a security level from 0 to 100")?;
    end(i, "the end of the line")?;
    Ok((i, n as u8))
}

/// `nameif = "nameif" NAME`
pub fn nameif(i: &str) -> Res<'_, &str> {
    let (i, _) = kw(i, "nameif")?;
    let (i, n) = tok_as(i, "an interface name")?;
    end(i, "the end of the line")?;
    Ok((i, n))
}

/// PIX 6: `"nameif" HW NAME "security"N`
pub fn pix_nameif(i: &str) -> Res<'_, (&str, &str, u8)> {
    let (i, _) = kw(i, "nameif")?;
    let (i, hw) = tok_as(i, "a hardware interface")?;
    let (i, n) = tok_as(i, "an interface name")?;
    let what = "securityN with N from 0 to 100";
    let (r, s) = tok_as(i, what)?;
    let level = s
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("security"))
        .and_then(|_| s.get(8..))
        .and_then(|d| d.parse::<u8>().ok())
        .filter(|&l| l <= 100)
        .ok_or_else(|| fail(i, what))?;
    Ok((r, (hw, n, level)))
}

/// An interface address: `Some` for a static address, `None` for dhcp/pppoe.
pub type IfAddr<'a> = Option<(Addr<'a>, Ipv4Addr)>;

/// `ip-address = "ip" "address" (addr netmask ["standby" addr] | "dhcp" … | "pppoe" …)`
/// (interface sub-command; PIX 6 puts the interface name first at top level, see
/// [`pix_ip_address`]).
pub fn ip_address<'a>(cx: &Cx<'a>, i: &'a str) -> Res<'a, IfAddr<'a>> {
    let (i, _) = kw(i, "ip")?;
    let (i, _) = kw(i, "address")?;
    ip_address_value(cx, i)
}

fn ip_address_value<'a>(cx: &Cx<'a>, i: &'a str) -> Res<'a, IfAddr<'a>> {
    if at_kw(i, "dhcp") || at_kw(i, "pppoe") {
        return Ok(("", None));
    }
    let (r, a) = addr(cx, i)?;
    if let Addr::Ip(IpAddr::V6(_)) = a {
        return Err(fail(i, "an IPv4 address"));
    }
    let (r, m) = netmask(r)?;
    let mut r = r;
    if at_kw(r, "standby") {
        let (r2, _) = kw(r, "standby")?;
        r = addr(cx, r2).map_err(to_failure)?.0;
    }
    end(r, "standby or the end of the line")?;
    Ok((r, Some((a, m))))
}

/// PIX 6: `"ip" "address" IFNAME (addr netmask | "dhcp" …)`
pub fn pix_ip_address<'a>(cx: &Cx<'a>, i: &'a str) -> Res<'a, (&'a str, IfAddr<'a>)> {
    let (i, _) = kw(i, "ip")?;
    let (i, _) = kw(i, "address")?;
    let (i, ifname) = tok_as(i, "an interface name")?;
    let (r, a) = ip_address_value(cx, i)?;
    Ok((r, (ifname, a)))
}

/// `ipv6-address = "ipv6" "address" v6prefix [..]`; `None` for other forms
/// (link-local, autoconfig), which do not give a network.
pub fn ipv6_address(i: &str) -> Res<'_, Option<(Ipv6Addr, u8)>> {
    let (i, _) = kw(i, "ipv6")?;
    let (i, _) = kw(i, "address")?;
    if peek(i).is_some_and(|t| t.contains('/')) {
        let (r, (a, l)) = v6prefix(i)?;
        if let IpAddr::V6(a) = a {
            return Ok((r, Some((a, l))));
        }
    }
    Ok(("", None))
}

/// `object-head = "object" ("network"|"service") NAME`; other kinds give `None`.
pub fn object_head(i: &str) -> Res<'_, Option<(&str, &str)>> {
    let (i, _) = kw(i, "object")?;
    let (i, kind) = tok_as(i, "network or service")?;
    if !(kind.eq_ignore_ascii_case("network") || kind.eq_ignore_ascii_case("service")) {
        return Ok(("", None));
    }
    let (i, name) = tok_as(i, "an object name")?;
    end(i, "the end of the line")?;
    Ok((i, Some((kind, name))))
}

/// `group-head = "object-group" ["group"] KIND NAME [svc-type]`; kinds mislint does
/// not model give `None`. (`object-group group KIND` appears in Batfish's test
/// configs; it is read as `object-group KIND`.)
pub fn group_head(i: &str) -> Res<'_, Option<(GroupKind, &str)>> {
    let (mut i, _) = kw(i, "object-group")?;
    if at_kw(i, "group") {
        i = tok(i)?.0;
    }
    let (i, kind) = tok_as(i, "network, service, protocol or icmp-type")?;
    let kind = match kind.to_ascii_lowercase().as_str() {
        "network" => GroupKind::Network,
        "service" => GroupKind::Service(None),
        "protocol" => GroupKind::Protocol,
        "icmp-type" => GroupKind::IcmpType,
        _ => return Ok(("", None)),
    };
    let (i, name) = tok_as(i, "an object-group name")?;
    let mut i = i;
    let mut kind = kind;
    if kind == GroupKind::Service(None) && peek(i).is_some() {
        let what = "tcp, udp, tcp-udp or the end of the line";
        let (r, t) = tok_as(i, what)?;
        let p = match t.to_ascii_lowercase().as_str() {
            "tcp" => SvcProto::Proto(ProtoName::Num(6)),
            "udp" => SvcProto::Proto(ProtoName::Num(17)),
            "tcp-udp" => SvcProto::TcpUdp,
            _ => return Err(fail(i, what)),
        };
        kind = GroupKind::Service(Some(p));
        i = r;
    }
    end(i, "the end of the line")?;
    Ok((i, Some((kind, name))))
}

/// `member = "network-object" (net-value | "object" NAME) | "port-object" port-match
/// | "service-object" ("object" NAME | service) | "protocol-object" (protocol
/// | "object" NAME) | "icmp-object" icmp-type | "group-object" NAME`
pub fn member<'a>(cx: &Cx<'a>, kind: GroupKind, i: &'a str) -> Res<'a, Member<'a>> {
    let what = match kind {
        GroupKind::Network => "network-object, group-object or description",
        GroupKind::Service(_) => "port-object, service-object, group-object or description",
        GroupKind::Protocol => "protocol-object, group-object or description",
        GroupKind::IcmpType => "icmp-object, group-object or description",
    };
    let (rest, t) = tok_as(i, what)?;
    let t_low = t.to_ascii_lowercase();
    let (rest, m) = match (t_low.as_str(), kind) {
        ("group-object", _) => {
            let (r, n) = tok_as(rest, "an object-group name")?;
            (r, Member::Group(n, cx.span(n)))
        }
        ("network-object", GroupKind::Network) => {
            if at_kw(rest, "object") {
                let (r, _) = kw(rest, "object")?;
                let (r, n) = tok_as(r, "a network object name")?;
                (r, Member::NetObject(n, cx.span(n)))
            } else {
                let (r, v) = net_value(cx, rest)?;
                (r, Member::Net(v, cx.consumed(rest, r)))
            }
        }
        ("port-object", GroupKind::Service(p)) => {
            let transport = p.map(Transport::of).unwrap_or(Transport::Unknown);
            let (r, m) = port_match(cx, rest, transport)?;
            (r, Member::Port(m))
        }
        ("service-object", GroupKind::Service(_)) => {
            if at_kw(rest, "object") {
                let (r, _) = kw(rest, "object")?;
                let (r, n) = tok_as(r, "a service object name")?;
                (r, Member::SvcObject(n, cx.span(n)))
            } else {
                let (r, s) = service(cx, rest)?;
                (r, Member::Service(s))
            }
        }
        ("protocol-object", GroupKind::Protocol) => {
            if at_kw(rest, "object") {
                let (r, _) = kw(rest, "object")?;
                let (r, n) = tok_as(r, "a service object name")?;
                (r, Member::SvcObject(n, cx.span(n)))
            } else {
                let what = "a protocol name or number";
                let (r, p) = tok_as(rest, what)?;
                let pn = ports::protocol_by_name(p).ok_or_else(|| fail(rest, what))?;
                (r, Member::Proto(pn, cx.span(p)))
            }
        }
        ("icmp-object", GroupKind::IcmpType) => {
            let (r, (t, span)) =
                icmp_type(cx, rest, false).or_else(|_| icmp_type(cx, rest, true))?;
            (r, Member::Icmp(t, span))
        }
        _ => return Err(fail(i, what)),
    };
    end(rest, "the end of the line")?;
    Ok((rest, m))
}

/// `nat-line = "nat" ["(" IF "," IF ")"] …` and `"static" "(" IF "," IF ")" …`: the
/// interfaces and whether the translation is static; the rest is kept as text.
pub fn nat_line<'a>(line: &'a str, form: NatForm) -> Res<'a, Nat<'a>> {
    let (i, head) = tok(line)?;
    let (mut i, mut real_if, mut mapped_if) = (i, None, None);
    if let Some(t) = peek(i)
        && t.starts_with('(')
    {
        let (r, t) = tok(i)?;
        let inner = t.trim_start_matches('(').trim_end_matches(')');
        let mut parts = inner.splitn(2, ',');
        real_if = parts.next().filter(|s| !s.is_empty());
        mapped_if = parts.next().filter(|s| !s.is_empty());
        if !t.ends_with(')') || real_if.is_none() {
            return Err(fail(i, "(REAL_IF,MAPPED_IF)"));
        }
        i = r;
    }
    if peek(i).is_none() {
        return Err(fail(i, "a translation"));
    }
    let is_static = head.eq_ignore_ascii_case("static")
        || i.split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("static"));
    Ok((
        "",
        Nat {
            form,
            object: None,
            rest: i.trim(),
            real_if,
            mapped_if,
            is_static,
            span: Span::default(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The token as nom's combinators read it, the reference for [`tok`].
    fn nom_tok(i: &str) -> Res<'_, &str> {
        use nom::Parser;
        use nom::bytes::complete::take_till1;
        use nom::character::complete::space0;
        use nom::sequence::preceded;
        preceded(space0, take_till1(|c: char| c == ' ' || c == '\t')).parse(i)
    }

    proptest! {
        /// Blanks, letters, other whitespace and a two-byte character, in any order.
        #[test]
        fn tokens_are_those_the_combinators_read(line in "[ \t\ra-c\u{e9}\n]{0,12}") {
            prop_assert_eq!(tok(&line), nom_tok(&line));
            let mut rest = line.as_str();
            while let Ok((after, _)) = tok(rest) {
                prop_assert_eq!(tok(after), nom_tok(after));
                rest = after;
            }
        }
    }

    fn cx(text: &str) -> Cx<'_> {
        Cx::new(FileId(0), text)
    }

    #[test]
    fn port_match_reads_names_and_numbers() {
        let text = " eq www";
        let c = cx(text);
        let (_, m) = port_match(&c, text, Transport::One(6)).unwrap();
        assert_eq!(m.op, PortOp::Eq);
        assert_eq!(m.lo.value, 80);
        assert_eq!(m.lo.name, Some("www"));
        assert_eq!((m.span.start, m.span.end), (1, 7));
        let text = "range 1024 65535";
        let c = cx(text);
        let (_, m) = port_match(&c, text, Transport::Unknown).unwrap();
        assert_eq!((m.lo.value, m.hi.map(|h| h.value)), (1024, Some(65535)));
    }

    #[test]
    fn port_name_must_fit_the_transport() {
        let text = "eq ldap";
        let c = cx(text);
        let e = port_match(&c, text, Transport::One(17)).unwrap_err();
        let nom::Err::Failure(g) = e else {
            panic!("expected a committed error")
        };
        assert_eq!(g.at.trim_start(), "ldap");
        assert!(port_match(&c, text, Transport::One(6)).is_ok());
    }

    #[test]
    fn unknown_port_name_is_an_error_at_the_name() {
        let text = "neq foo";
        let c = cx(text);
        let nom::Err::Failure(g) = port_match(&c, text, Transport::One(6)).unwrap_err() else {
            panic!("expected a committed error")
        };
        assert_eq!(g.at.trim_start(), "foo");
    }

    #[test]
    fn endpoints() {
        let text = "host 10.0.0.1 10.0.0.0 255.255.255.0 2001:db8::/32 object X interface inside";
        let c = cx(text);
        let (r, e) = endpoint(&c, text).unwrap();
        assert!(matches!(e.spec, AddrSpec::Net(NetValue::Host(Addr::Ip(_)))));
        assert_eq!(
            c.text.get(e.span.start as usize..e.span.end as usize),
            Some("host 10.0.0.1")
        );
        let (r, e) = endpoint(&c, r).unwrap();
        assert!(matches!(e.spec, AddrSpec::Net(NetValue::Mask(..))));
        let (r, e) = endpoint(&c, r).unwrap();
        assert!(matches!(e.spec, AddrSpec::Net(NetValue::Prefix(_, 32))));
        let (r, e) = endpoint(&c, r).unwrap();
        assert_eq!(e.spec, AddrSpec::Object("X"));
        let (_, e) = endpoint(&c, r).unwrap();
        assert_eq!(e.spec, AddrSpec::Interface("inside"));
    }

    #[test]
    fn service_with_source_and_destination() {
        let text = "udp source eq 3 eq 1236";
        let c = cx(text);
        let (_, s) = service(&c, text).unwrap();
        assert_eq!(s.src.map(|m| m.lo.value), Some(3));
        assert_eq!(s.dst.map(|m| m.lo.value), Some(1236));
    }

    #[test]
    fn ace_with_port_group_in_source_position() {
        let text = "access-list a extended permit tcp object-group NET object-group SVC any eq 80 log 5 interval 100";
        let mut c = cx(text);
        c.service_groups.insert("SVC");
        let (_, line) = access_list(&c, text).unwrap();
        let AclLine::Ace(a) = line else {
            panic!("not an ace")
        };
        assert_eq!(a.src.spec, AddrSpec::Group("NET"));
        assert!(matches!(
            a.src_port.as_deref(),
            Some(PortSpec::Group("SVC", _))
        ));
        assert_eq!(a.dst.spec, AddrSpec::Any);
        assert!(matches!(a.dst_port, Some(PortSpec::Match(_))));
    }

    #[test]
    fn ace_with_icmp_type_and_options() {
        let text = "access-list o permit icmp any interface outside echo time-range T inactive";
        let c = cx(text);
        let (_, line) = access_list(&c, text).unwrap();
        let AclLine::Ace(a) = line else {
            panic!("not an ace")
        };
        assert!(matches!(a.icmp, Some(IcmpSpec::Type("echo", _))));
        assert_eq!(a.time_range.map(|t| t.0), Some("T"));
        assert!(a.inactive);
    }

    #[test]
    fn bad_ace_points_at_the_token() {
        let text = "access-list a extended permit tcp any any bogus 80";
        let c = cx(text);
        let e = access_list(&c, text).unwrap_err();
        let (nom::Err::Error(g) | nom::Err::Failure(g)) = e else {
            panic!("incomplete")
        };
        assert!(g.at.trim_start().starts_with("bogus"));
    }
}
