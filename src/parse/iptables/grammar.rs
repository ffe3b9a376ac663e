//! The iptables-save line grammar: tokens, line productions and the rule options.
//!
//! `mod.rs` cuts the file into lines and calls these productions; each returns AST values
//! (`ast.rs`) or one [`LineError`] with the span of the offending token. Line shapes
//! (`*table`, `:CHAIN POLICY [p:b]`, `[p:b]` prefixes) are nom parsers; the options of
//! a rule line are read like `iptables-restore` reads them: split into argv-style
//! tokens (by hand, quotes included: see "Tokens"), then walked getopt-style, with
//! match modules (`-m tcp`) adding their options for the rest of the line. The EBNF in
//! `grammars/iptables-save.ebnf` names the productions; functions here carry the same
//! names.

use super::ast::{Alternatives, NameMap, NatSpec, RuleAst, TableName, TargetAst};
use super::{NoteEvent, NoteKind};
use crate::graph::sets::{ADDR_MAX, PORT_MAX, PROTO_MAX, addr, ct, proto};
use crate::graph::{Action, Cond, CondKind, Family, IfaceMatch, IfacePattern, IntervalSet};
use crate::source::{FileId, MoveSpans, Span};
use nom::bytes::complete::{take_till1, take_while1};
use nom::character::complete::{char, space0, space1};
use nom::combinator::{all_consuming, map_res, opt};
use nom::sequence::{delimited, preceded, separated_pair};
use nom::{IResult, Parser};
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A problem on one line: where, and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// The offending token.
    pub span: Span,
    /// Lowercase, no trailing period, tokens in backticks.
    pub message: String,
}

impl MoveSpans for LineError {
    fn move_spans(&mut self, delta: i64) {
        let LineError { span, message: _ } = self;
        span.move_spans(delta);
    }
}

/// One argv-style token of a rule line.
#[derive(Clone, Debug)]
pub struct Token<'a> {
    /// The text after quote removal and `\"` / `\\` unescaping.
    pub value: Cow<'a, str>,
    /// Byte offset of the first character in the file.
    pub start: usize,
    /// Byte offset one past the last character in the file.
    pub end: usize,
    /// True if any part was quoted: a quoted token is never an option.
    pub quoted: bool,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

// ---------------------------------------------------------------------------------
// Line shapes

/// `table_header = "*" , [ blanks ] , table_name , [ blanks ]`. `iptables-restore`
/// splits the header with strtok, so `* nat` is read as `*nat`.
pub fn table_header(line: &str) -> IResult<&str, &str> {
    all_consuming(delimited((char('*'), space0), take_till1(is_blank), space0)).parse(line)
}

/// `counters = "[" , digits , ":" , digits , "]"`.
pub fn counters(input: &str) -> IResult<&str, (u64, u64)> {
    delimited(
        char('['),
        separated_pair(number_u64, char(':'), number_u64),
        char(']'),
    )
    .parse(input)
}

fn number_u64(input: &str) -> IResult<&str, u64> {
    map_res(take_while1(|c: char| c.is_ascii_digit()), str::parse::<u64>).parse(input)
}

/// `chain_line = ":" , chain_name , blanks , policy , [ blanks , counters ] , [ blanks ]`;
/// returns the name and the policy word.
pub fn chain_line(line: &str) -> IResult<&str, (&str, &str)> {
    let (rest, (_, name, _, policy, _, _)) = all_consuming((
        char(':'),
        take_till1(is_blank),
        space1,
        take_till1(is_blank),
        opt(preceded(space1, counters)),
        space0,
    ))
    .parse(line)?;
    Ok((rest, (name, policy)))
}

// ---------------------------------------------------------------------------------
// Tokens
//
// Written by hand over bytes rather than with nom: every rule line of a dump is split
// here, and with the combinators this was a tenth of an iptables run's instructions
// (callgrind). Every byte the productions stop at is ASCII, so a cut never falls
// inside a UTF-8 character.

/// One segment of a token: its text (inside the quotes, still escaped for a double-quoted
/// one), the offset after it, and how it was written.
struct Segment<'a> {
    text: &'a str,
    end: usize,
    quoted: bool,
    escaped: bool,
}

/// The segment that starts at byte `at` of `line`: `None` at a blank, at the end, or at
/// a quote that does not close.
fn segment(line: &str, at: usize) -> Option<Segment<'_>> {
    match *line.as_bytes().get(at)? {
        b' ' | b'\t' => None,
        b'"' => double_quoted(line, at),
        b'\'' => single_quoted(line, at),
        _ => Some(bare_segment(line, at)),
    }
}

/// `bare`: up to the next blank or quote.
fn bare_segment(line: &str, at: usize) -> Segment<'_> {
    let bytes = line.as_bytes();
    let len = bytes
        .get(at..)
        .unwrap_or(&[])
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'"' | b'\''))
        .unwrap_or(bytes.len().saturating_sub(at));
    Segment {
        text: line.get(at..at + len).unwrap_or(""),
        end: at + len,
        quoted: false,
        escaped: false,
    }
}

/// `double_quoted`: from the quote at `at` to the next one not escaped by `\`.
fn double_quoted(line: &str, at: usize) -> Option<Segment<'_>> {
    let bytes = line.as_bytes();
    let mut i = at + 1;
    let mut escaped = false;
    loop {
        i += memchr::memchr2(b'"', b'\\', bytes.get(i..)?)?;
        if bytes.get(i) == Some(&b'"') {
            break;
        }
        // A backslash takes the next byte with it; should that byte start a longer
        // character, the rest of it is neither a quote nor a backslash.
        bytes.get(i + 1)?;
        escaped = true;
        i += 2;
    }
    Some(Segment {
        text: line.get(at + 1..i)?,
        end: i + 1,
        quoted: true,
        escaped,
    })
}

/// `single_quoted`: from the quote at `at` to the next one, nothing escaped.
fn single_quoted(line: &str, at: usize) -> Option<Segment<'_>> {
    let len = memchr::memchr(b'\'', line.as_bytes().get(at + 1..)?)?;
    Some(Segment {
        text: line.get(at + 1..at + 1 + len)?,
        end: at + len + 2,
        quoted: true,
        escaped: false,
    })
}

fn unescape(raw: &str, out: &mut String) {
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
}

/// Splits a rule line into tokens as `iptables-restore` does: blanks separate, double
/// quotes group (with `\"` and `\\` escapes inside), single quotes group literally, and
/// quoted and bare parts next to each other join into one token. `base` is the byte
/// offset of `line` in the file. Reuses `out` so no allocation happens per line.
pub fn tokenize_into<'a>(
    file: FileId,
    line: &'a str,
    base: usize,
    out: &mut Vec<Token<'a>>,
) -> Result<(), LineError> {
    out.clear();
    let bytes = line.as_bytes();
    let mut at = 0;
    loop {
        at += bytes
            .get(at..)
            .unwrap_or(&[])
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        if at >= bytes.len() {
            return Ok(());
        }
        let start = at;
        // Most tokens are one bare word: taken whole, with no segments to join.
        let bare = bare_segment(line, at);
        if !matches!(bytes.get(bare.end), Some(b'"' | b'\'')) {
            at = bare.end;
            out.push(Token {
                value: Cow::Borrowed(bare.text),
                start: base + start,
                end: base + at,
                quoted: false,
            });
            continue;
        }
        let mut value: Cow<'a, str> = Cow::Borrowed("");
        let mut quoted = false;
        let mut segments = 0;
        while let Some(seg) = segment(line, at) {
            at = seg.end;
            quoted |= seg.quoted;
            if segments == 0 && !seg.escaped {
                value = Cow::Borrowed(seg.text);
            } else {
                let owned = value.to_mut();
                if seg.escaped {
                    unescape(seg.text, owned);
                } else {
                    owned.push_str(seg.text);
                }
            }
            segments += 1;
        }
        if matches!(bytes.get(at), Some(b'"' | b'\'')) {
            return Err(LineError {
                span: Span::new(file, base + at, base + line.len()),
                message: "unterminated quote".to_string(),
            });
        }
        out.push(Token {
            value,
            start: base + start,
            end: base + at,
            quoted,
        });
    }
}

// ---------------------------------------------------------------------------------
// Values

/// Why a value could not become a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// The device would refuse it; the message says what was expected.
    Invalid(String),
    /// Valid, but mislint cannot turn it into a set (a host name, a port name missing
    /// from our table): the option becomes an unknown condition.
    Unmodelled(NoteKind),
}

fn invalid<T>(message: String) -> Result<T, ValueError> {
    Err(ValueError::Invalid(message))
}

/// Port names from /etc/services that firewall configs use; iptables resolves names
/// with getservbyname at load time, so an unlisted name is unknown, not wrong.
fn service_port(name: &str) -> Option<u16> {
    Some(match name {
        "ftp-data" => 20,
        "ftp" => 21,
        "ssh" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "time" => 37,
        "domain" => 53,
        "bootps" => 67,
        "bootpc" => 68,
        "tftp" => 69,
        "gopher" => 70,
        "finger" => 79,
        "http" | "www" | "www-http" => 80,
        "kerberos" | "kerberos5" | "krb5" => 88,
        "pop3" | "pop-3" => 110,
        "sunrpc" | "portmapper" => 111,
        "auth" | "ident" => 113,
        "nntp" => 119,
        "ntp" => 123,
        "epmap" | "loc-srv" => 135,
        "netbios-ns" => 137,
        "netbios-dgm" => 138,
        "netbios-ssn" => 139,
        "imap" | "imap2" => 143,
        "snmp" => 161,
        "snmp-trap" => 162,
        "bgp" => 179,
        "irc" => 194,
        "ldap" => 389,
        "https" => 443,
        "microsoft-ds" => 445,
        "isakmp" => 500,
        "syslog" => 514,
        "printer" => 515,
        "submission" => 587,
        "ipp" => 631,
        "ldaps" => 636,
        "rsync" => 873,
        "imaps" => 993,
        "pop3s" => 995,
        "openvpn" => 1194,
        "ms-sql-s" => 1433,
        "msft-gc" => 3268,
        "mysql" => 3306,
        "ms-wbt-server" => 3389,
        "postgresql" => 5432,
        "http-alt" | "webcache" => 8080,
        _ => return None,
    })
}

/// `port = digits | service_name`.
pub fn port(s: &str) -> Result<u16, ValueError> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u32>() {
            Ok(v) if v <= PORT_MAX as u32 => Ok(v as u16),
            _ => invalid(format!("port `{s}` is out of range 0-65535")),
        };
    }
    if let Some(p) = service_port(s) {
        return Ok(p);
    }
    let first_alpha = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if first_alpha
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(ValueError::Unmodelled(NoteKind::PortName));
    }
    invalid(format!(
        "expected a port number or service name, found `{s}`"
    ))
}

/// `port_range = port | [ port ] , ":" , [ port ]`; an empty side is 0 or 65535.
pub fn port_range(s: &str) -> Result<(u16, u16), ValueError> {
    let Some((lo, hi)) = s.split_once(':') else {
        let p = port(s)?;
        return Ok((p, p));
    };
    let lo = if lo.is_empty() { 0 } else { port(lo)? };
    let hi = if hi.is_empty() {
        PORT_MAX as u16
    } else {
        port(hi)?
    };
    if lo > hi {
        return invalid(format!("port range `{s}` runs backwards"));
    }
    Ok((lo, hi))
}

/// `port_list = port_range , { "," , port_range }`, at most 15 slots (a range takes
/// two), as libxt_multiport enforces (XT_MULTI_PORTS).
pub fn port_list(s: &str) -> Result<IntervalSet, ValueError> {
    let mut slots = 0;
    let mut ranges = Vec::new();
    for part in s.split(',') {
        if part.is_empty() {
            return invalid(format!("empty entry in port list `{s}`"));
        }
        let (lo, hi) = port_range(part)?;
        slots += if part.contains(':') { 2 } else { 1 };
        ranges.push((u128::from(lo), u128::from(hi)));
    }
    if slots > 15 {
        return invalid(format!(
            "too many ports in `{s}`: at most 15, and a range counts as two"
        ));
    }
    Ok(IntervalSet::from_ranges(ranges))
}

/// Protocol names iptables reads from /etc/protocols beyond the graph's own table.
fn protocol_number(name: &str) -> Option<u8> {
    if let Some(p) = proto::by_name(name) {
        return Some(p);
    }
    Some(match name.to_ascii_lowercase().as_str() {
        "ipv6-route" => 43,
        "ipv6-frag" => 44,
        "ipv6-nonxt" => 59,
        "ipv6-opts" => 60,
        "mh" | "ipv6-mh" => 135,
        "ipcomp" => 108,
        "l2tp" => 115,
        "hopopt" => 0,
        _ => return None,
    })
}

/// `protocol = "all" | digits | protocol_name`; `None` means every protocol.
pub fn protocol(s: &str) -> Result<Option<u8>, ValueError> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u16>() {
            Ok(0) => Ok(None),
            Ok(v) if v <= PROTO_MAX as u16 => Ok(Some(v as u8)),
            _ => invalid(format!("protocol `{s}` is out of range 0-255")),
        };
    }
    if let Some(p) = protocol_number(s) {
        return Ok(Some(p));
    }
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(ValueError::Unmodelled(NoteKind::Protocol));
    }
    invalid(format!("expected a protocol name or number, found `{s}`"))
}

/// Non-contiguous IPv4 masks (`10.0.12.0/255.0.255.0`) match a union of blocks; up to
/// 2^12 blocks are expanded exactly, beyond that the condition is left unknown.
fn v4_masked(host: Ipv4Addr, mask: Ipv4Addr) -> Result<IntervalSet, ValueError> {
    let m = u32::from(mask);
    let v = u32::from(host) & m;
    let block_bits = m.trailing_zeros().min(32);
    let free: Vec<u32> = (block_bits..32).filter(|b| m & (1 << b) == 0).collect();
    if free.len() > 12 {
        return Err(ValueError::Unmodelled(NoteKind::Mask));
    }
    let block: u32 = if block_bits >= 32 {
        u32::MAX
    } else {
        (1u32 << block_bits) - 1
    };
    let mut ranges = Vec::with_capacity(1 << free.len());
    for combo in 0u32..(1 << free.len()) {
        let mut lo = v;
        for (i, bit) in free.iter().enumerate() {
            if combo & (1 << i) != 0 {
                lo |= 1 << bit;
            }
        }
        let lo = addr::V4_BASE | u128::from(lo);
        ranges.push((lo, lo | u128::from(block)));
    }
    Ok(IntervalSet::from_ranges(ranges))
}

fn looks_like_hostname(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
}

/// `address = ip , [ "/" , ( prefix_len | netmask ) ]`; returns the set and whether it
/// is IPv6. Host bits are ignored, as iptables does.
pub fn address(s: &str) -> Result<(IntervalSet, bool), ValueError> {
    let (host, mask) = match s.split_once('/') {
        Some((h, m)) => (h, Some(m)),
        None => (s, None),
    };
    let ip: IpAddr = match host.parse() {
        Ok(ip) => ip,
        Err(_) if mask.is_none() && looks_like_hostname(host) => {
            return Err(ValueError::Unmodelled(NoteKind::Hostname));
        }
        Err(_) => {
            return invalid(format!(
                "expected an address, `address/prefix` or `address/netmask`, found `{s}`"
            ));
        }
    };
    let v6 = ip.is_ipv6();
    let bits = if v6 { 128 } else { 32 };
    let prefix = match mask {
        None => bits,
        Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => match m.parse() {
            Ok(p) if p <= bits => p,
            _ => return invalid(format!("prefix length in `{s}` is out of range 0-{bits}")),
        },
        Some(m) => match (ip, m.parse::<IpAddr>()) {
            (IpAddr::V4(h), Ok(IpAddr::V4(mask))) => match addr::v4_mask_len(mask) {
                Some(p) => p,
                None => return Ok((v4_masked(h, mask)?, false)),
            },
            (IpAddr::V6(_), Ok(IpAddr::V6(mask))) => match v6_mask_len(mask) {
                Some(p) => p,
                None => return Err(ValueError::Unmodelled(NoteKind::Mask)),
            },
            _ => return invalid(format!("bad netmask in `{s}`")),
        },
    };
    match addr::cidr(ip, prefix) {
        Some(set) => Ok((set, v6)),
        None => invalid(format!("prefix length in `{s}` is out of range")),
    }
}

fn v6_mask_len(mask: Ipv6Addr) -> Option<u8> {
    let m = u128::from(mask);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// `address_list = address , { "," , address }`.
pub fn address_list(s: &str) -> Result<(Vec<IntervalSet>, bool), ValueError> {
    let mut out = Vec::with_capacity(1);
    let mut v6 = false;
    for part in s.split(',') {
        let (set, is6) = address(part)?;
        v6 |= is6;
        out.push(set);
    }
    Ok((out, v6))
}

/// `address_range = ip , [ "-" , ip ]` (libxt_iprange).
pub fn address_range(s: &str) -> Result<(IntervalSet, bool), ValueError> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    match (lo.parse::<IpAddr>(), hi.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => match addr::span(a, b) {
            Some(set) if !set.is_empty() => Ok((set, a.is_ipv6())),
            Some(_) => invalid(format!("address range `{s}` runs backwards")),
            None => invalid(format!("address range `{s}` mixes ipv4 and ipv6")),
        },
        _ => invalid(format!("expected `address-address`, found `{s}`")),
    }
}

/// `state_list = state , { "," , state }` with conntrack's state names.
pub fn state_list(s: &str) -> Result<IntervalSet, ValueError> {
    let mut set = IntervalSet::empty();
    for part in s.split(',') {
        match ct::set_by_name(part) {
            Some(v) => set = set.union(&v),
            None => return invalid(format!("unknown conntrack state `{part}`")),
        }
    }
    Ok(set)
}

/// `interface = name , [ "+" ]`, at most 15 characters (IFNAMSIZ less the NUL).
pub fn interface(s: &str) -> Result<IfacePattern, ValueError> {
    if s.is_empty() {
        return invalid("empty interface name".to_string());
    }
    if s.len() > 15 {
        return invalid(format!("interface name `{s}` is longer than 15 characters"));
    }
    Ok(match s.strip_suffix('+') {
        Some(prefix) => IfacePattern {
            name: prefix.to_string(),
            prefix: true,
        },
        None => IfacePattern {
            name: s.to_string(),
            prefix: false,
        },
    })
}

const REJECT_TYPES: &[&str] = &[
    "icmp-net-unreachable",
    "net-unreach",
    "icmp-host-unreachable",
    "host-unreach",
    "icmp-port-unreachable",
    "port-unreach",
    "icmp-proto-unreachable",
    "proto-unreach",
    "icmp-net-prohibited",
    "net-prohib",
    "icmp-host-prohibited",
    "host-prohib",
    "icmp-admin-prohibited",
    "admin-prohib",
    "tcp-reset",
    "tcp-rst",
    "icmp6-no-route",
    "no-route",
    "icmp6-adm-prohibited",
    "adm-prohibited",
    "icmp6-addr-unreachable",
    "addr-unreach",
    "icmp6-port-unreachable",
    "icmp6-policy-fail",
    "policy-fail",
    "icmp6-reject-route",
    "reject-route",
];

/// Targets that let matching packets go on to the next rule (iptables-extensions(8)).
const CONTINUE_TARGETS: &[&str] = &[
    "LOG",
    "NFLOG",
    "ULOG",
    "MARK",
    "CONNMARK",
    "CT",
    "NOTRACK",
    "TRACE",
    "TCPMSS",
    "TOS",
    "TTL",
    "HL",
    "DSCP",
    "ECN",
    "CLASSIFY",
    "SECMARK",
    "CONNSECMARK",
    "SET",
    "AUDIT",
    "CHECKSUM",
    "IDLETIMER",
    "LED",
    "RATEEST",
    "TCPOPTSTRIP",
    "TEE",
    "HMARK",
];

/// NAT targets: they end the walk of a `nat` chain after rewriting the packet.
const NAT_TARGETS: &[&str] = &["DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"];

/// Extension targets whose effect on forwarding mislint does not model.
const UNKNOWN_TARGETS: &[&str] = &[
    "NFQUEUE",
    "QUEUE",
    "TPROXY",
    "SYNPROXY",
    "SNPT",
    "DNPT",
    "CLUSTERIP",
    "ROUTE",
    "MIRROR",
    "IPMARK",
    "TARPIT",
    "DELUDE",
    "CHAOS",
];

// ---------------------------------------------------------------------------------
// Rule options

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModKind {
    Tcp,
    Udp,
    Multiport,
    State,
    Conntrack,
    Iprange,
    Comment,
    Icmp,
    Icmp6,
    Unknown,
}

fn mod_kind(name: &str) -> ModKind {
    match name {
        "tcp" => ModKind::Tcp,
        "udp" => ModKind::Udp,
        "multiport" => ModKind::Multiport,
        "state" => ModKind::State,
        "conntrack" => ModKind::Conntrack,
        "iprange" => ModKind::Iprange,
        "comment" => ModKind::Comment,
        "icmp" => ModKind::Icmp,
        "icmp6" => ModKind::Icmp6,
        _ => ModKind::Unknown,
    }
}

/// How a known module option reads its argument and what it becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OptSem {
    SrcPort,
    DstPort,
    SrcPorts,
    DstPorts,
    AnyPorts,
    States,
    SrcRange,
    DstRange,
    Comment,
    /// Not modelled: this many arguments, validated by the given check.
    Opaque(u8, Check),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    None,
    PortRange,
    Address,
    Protocol,
    U32Range,
    Dir,
    Status,
    TcpFlags,
}

/// The options of a modelled module: name → (duplicate-check bit, meaning).
fn module_option(kind: ModKind, name: &str) -> Option<(u32, OptSem)> {
    use OptSem::*;
    Some(match (kind, name) {
        (ModKind::Tcp | ModKind::Udp, "--sport" | "--source-port") => (0, SrcPort),
        (ModKind::Tcp | ModKind::Udp, "--dport" | "--destination-port") => (1, DstPort),
        (ModKind::Tcp, "--syn") => (2, Opaque(0, Check::None)),
        (ModKind::Tcp, "--tcp-flags") => (2, Opaque(2, Check::TcpFlags)),
        (ModKind::Tcp, "--tcp-option") => (3, Opaque(1, Check::None)),
        (ModKind::Multiport, "--sports" | "--source-ports") => (0, SrcPorts),
        (ModKind::Multiport, "--dports" | "--destination-ports") => (0, DstPorts),
        (ModKind::Multiport, "--ports") => (0, AnyPorts),
        (ModKind::State, "--state") => (0, States),
        (ModKind::Conntrack, "--ctstate") => (0, States),
        (ModKind::Conntrack, "--ctproto") => (1, Opaque(1, Check::Protocol)),
        (ModKind::Conntrack, "--ctorigsrc") => (2, Opaque(1, Check::Address)),
        (ModKind::Conntrack, "--ctorigdst") => (3, Opaque(1, Check::Address)),
        (ModKind::Conntrack, "--ctreplsrc") => (4, Opaque(1, Check::Address)),
        (ModKind::Conntrack, "--ctrepldst") => (5, Opaque(1, Check::Address)),
        (ModKind::Conntrack, "--ctorigsrcport") => (6, Opaque(1, Check::PortRange)),
        (ModKind::Conntrack, "--ctorigdstport") => (7, Opaque(1, Check::PortRange)),
        (ModKind::Conntrack, "--ctreplsrcport") => (8, Opaque(1, Check::PortRange)),
        (ModKind::Conntrack, "--ctrepldstport") => (9, Opaque(1, Check::PortRange)),
        (ModKind::Conntrack, "--ctstatus") => (10, Opaque(1, Check::Status)),
        (ModKind::Conntrack, "--ctexpire") => (11, Opaque(1, Check::U32Range)),
        (ModKind::Conntrack, "--ctdir") => (12, Opaque(1, Check::Dir)),
        (ModKind::Iprange, "--src-range") => (0, SrcRange),
        (ModKind::Iprange, "--dst-range") => (1, DstRange),
        (ModKind::Comment, "--comment") => (0, Comment),
        (ModKind::Icmp, "--icmp-type") => (0, Opaque(1, Check::None)),
        (ModKind::Icmp6, "--icmpv6-type") => (0, Opaque(1, Check::None)),
        _ => return None,
    })
}

/// The match module `-p NAME` loads implicitly when an option is not otherwise known.
fn protocol_module(p: u8) -> Option<(ModKind, &'static str)> {
    Some(match p {
        proto::TCP => (ModKind::Tcp, "tcp"),
        proto::UDP => (ModKind::Udp, "udp"),
        proto::ICMP => (ModKind::Icmp, "icmp"),
        proto::ICMPV6 => (ModKind::Icmp6, "icmp6"),
        proto::SCTP => (ModKind::Unknown, "sctp"),
        proto::DCCP => (ModKind::Unknown, "dccp"),
        proto::ESP => (ModKind::Unknown, "esp"),
        proto::AH => (ModKind::Unknown, "ah"),
        135 => (ModKind::Unknown, "mh"),
        _ => return None,
    })
}

struct ModInst<'a> {
    kind: ModKind,
    name: &'a str,
    span: Span,
    seen: u32,
    /// For unknown modules: the index of its latest unknown condition.
    cond: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TargetMode {
    NoOptions,
    Reject,
    Any,
    Candidate,
}

#[derive(Clone, Copy)]
struct ProtoSeen {
    /// `None` for `all` or a protocol name we do not know.
    number: Option<u8>,
    negated: bool,
}

struct Opt<'a> {
    name: &'a str,
    inline: Option<(Cow<'a, str>, Span)>,
    start: usize,
    neg: Option<Span>,
    span: Span,
}

struct Arg<'a> {
    value: Cow<'a, str>,
    span: Span,
}

/// Buffers the rule reader reuses from line to line, so a rule costs no allocations
/// beyond the ones its graph conditions keep.
#[derive(Default)]
pub struct Scratch<'a> {
    mods: Vec<ModInst<'a>>,
    fixups: Vec<(usize, &'a str, bool)>,
}

/// What a rule line needs to know about its surroundings.
pub struct RuleContext<'e> {
    /// The file.
    pub file: FileId,
    /// The table the rule is in.
    pub table: TableName,
    /// Chains declared so far in the table.
    pub chains: &'e NameMap<usize>,
}

/// Reads the options of one `-A`/`-I` line (the tokens after the chain name).
/// `text` is the whole file; `span` the whole line. Notes about unmodelled constructs
/// go to `notes`; the caller keeps them only if the line parses.
pub fn rule_options<'a>(
    cx: &RuleContext<'_>,
    text: &'a str,
    tokens: &[Token<'a>],
    span: Span,
    notes: &mut Vec<NoteEvent<'a>>,
    scratch: &mut Scratch<'a>,
) -> Result<RuleAst, LineError> {
    scratch.mods.clear();
    scratch.fixups.clear();
    let rule = RuleAst {
        span,
        action_span: span,
        conds: Vec::with_capacity(cond_capacity(tokens)),
        alternatives: Vec::new(),
        target: TargetAst::None,
        only: None,
        comment: None,
        failed: false,
        has_v6_addr: false,
    };
    RuleParser {
        cx,
        text,
        toks: tokens,
        pos: 0,
        rule,
        notes,
        proto: None,
        proto_span: span,
        mods: &mut scratch.mods,
        target_mode: None,
        reject_tcp: None,
        seen_std: 0,
        last_end: span.start as usize,
        fixups: &mut scratch.fixups,
    }
    .run()
}

/// Room for a rule's conditions, so that one allocation holds them: one per option,
/// except those that never write one (`-A`, `-m`, `-j`, `-g`). Sizing by every second
/// token, as before, left a Kubernetes node's 100,000 rules holding 22 MB of
/// conditions they never wrote. An option that writes two only grows the vector.
fn cond_capacity(tokens: &[Token<'_>]) -> usize {
    let writes_none = |t: &str| {
        matches!(
            t,
            "-A" | "--append"
                | "-I"
                | "--insert"
                | "-m"
                | "--match"
                | "-j"
                | "--jump"
                | "-g"
                | "--goto"
        )
    };
    tokens
        .iter()
        .filter(|t| !t.quoted && t.value.starts_with('-') && !writes_none(&t.value))
        .count()
}

struct RuleParser<'t, 'a, 'e> {
    cx: &'e RuleContext<'e>,
    text: &'a str,
    toks: &'t [Token<'a>],
    pos: usize,
    rule: RuleAst,
    notes: &'e mut Vec<NoteEvent<'a>>,
    proto: Option<ProtoSeen>,
    proto_span: Span,
    mods: &'e mut Vec<ModInst<'a>>,
    target_mode: Option<TargetMode>,
    reject_tcp: Option<Span>,
    seen_std: u32,
    last_end: usize,
    /// Unknown conditions whose text is cut from the line once their span is final:
    /// (match index, module name, starts at the `-m` token).
    fixups: &'e mut Vec<(usize, &'a str, bool)>,
}

const STD_PROTO: u32 = 1;
const STD_SRC: u32 = 2;
const STD_DST: u32 = 4;
const STD_IN: u32 = 8;
const STD_OUT: u32 = 16;
const STD_FRAG: u32 = 32;
const STD_COUNTERS: u32 = 64;

impl<'t, 'a, 'e> RuleParser<'t, 'a, 'e> {
    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.cx.file, start, end)
    }

    fn tok_span(&self, t: &Token<'a>) -> Span {
        self.span(t.start, t.end)
    }

    fn err<T>(&self, span: Span, message: impl Into<String>) -> Result<T, LineError> {
        Err(LineError {
            span,
            message: message.into(),
        })
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        self.text.get(start..end).unwrap_or("")
    }

    fn run(mut self) -> Result<RuleAst, LineError> {
        let mut invert: Option<Span> = None;
        while let Some(tok) = self.toks.get(self.pos) {
            self.pos += 1;
            let tspan = self.tok_span(tok);
            if !tok.quoted && tok.value == "!" {
                if invert.is_some() {
                    return self.err(tspan, "multiple `!` flags are not allowed");
                }
                invert = Some(tspan);
                continue;
            }
            let Some(mut opt) = self.split_option(tok) else {
                return self.err(
                    tspan,
                    format!("unexpected `{}`, expected an option", tok.value),
                );
            };
            if let Some(neg) = invert.take() {
                opt.start = neg.start as usize;
                opt.neg = Some(neg);
            }
            self.last_end = tok.end;
            self.option(opt)?;
        }
        if let Some(neg) = invert {
            return self.err(neg, "`!` must be followed by an option");
        }
        self.finish()
    }

    /// `--name`, `--name=value`, `-x` or `-xvalue`; `None` for a non-option token.
    fn split_option(&self, tok: &Token<'a>) -> Option<Opt<'a>> {
        if tok.quoted {
            return None;
        }
        let Cow::Borrowed(s) = tok.value else {
            return None;
        };
        let span = self.tok_span(tok);
        if let Some(long) = s.strip_prefix("--") {
            if long.is_empty() {
                return None;
            }
            if let Some(eq) = s.find('=') {
                let value = s.get(eq + 1..).unwrap_or("");
                let name = s.get(..eq).unwrap_or(s);
                let vspan = self.span(tok.start + eq + 1, tok.end);
                return Some(Opt {
                    name,
                    inline: Some((Cow::Borrowed(value), vspan)),
                    start: tok.start,
                    neg: None,
                    span,
                });
            }
            return Some(Opt {
                name: s,
                inline: None,
                start: tok.start,
                neg: None,
                span,
            });
        }
        let mut chars = s.chars();
        if chars.next() != Some('-') {
            return None;
        }
        let c = chars.next()?;
        if !(c.is_ascii_alphabetic() || c == '4' || c == '6') {
            return None;
        }
        let name = s.get(..2)?;
        let rest = s.get(2..).unwrap_or("");
        let inline =
            (!rest.is_empty()).then(|| (Cow::Borrowed(rest), self.span(tok.start + 2, tok.end)));
        Some(Opt {
            name,
            inline,
            start: tok.start,
            neg: None,
            span,
        })
    }

    /// The option's argument: inline (`--x=v`, `-xv`) or the next token, after an
    /// old-style `!` (`--dport ! 80`).
    fn arg(&mut self, opt: &mut Opt<'a>) -> Result<Arg<'a>, LineError> {
        if let Some((value, span)) = opt.inline.take() {
            self.last_end = span.end as usize;
            return Ok(Arg { value, span });
        }
        let Some(mut tok) = self.toks.get(self.pos) else {
            return self.err(opt.span, format!("`{}` needs an argument", opt.name));
        };
        if !tok.quoted && tok.value == "!" {
            let tspan = self.tok_span(tok);
            if opt.neg.is_some() {
                return self.err(tspan, "multiple `!` flags are not allowed");
            }
            opt.neg = Some(tspan);
            self.pos += 1;
            let Some(next) = self.toks.get(self.pos) else {
                return self.err(opt.span, format!("`{}` needs an argument", opt.name));
            };
            tok = next;
        }
        self.pos += 1;
        self.last_end = tok.end;
        Ok(Arg {
            value: tok.value.clone(),
            span: self.tok_span(tok),
        })
    }

    /// Consumes the arguments of an option we do not know the shape of: every
    /// following token that is not an option (quoted, not starting with `-`, or a
    /// negative number), and a `!` that negates such a token.
    fn free_args(&mut self, opt: &mut Opt<'a>) {
        if let Some((_, span)) = opt.inline.take() {
            self.last_end = span.end as usize;
            return;
        }
        while let Some(tok) = self.toks.get(self.pos) {
            if !tok.quoted && tok.value == "!" {
                match self.toks.get(self.pos + 1) {
                    Some(next) if is_free_arg(next) => {
                        self.pos += 2;
                        self.last_end = next.end;
                    }
                    _ => break,
                }
            } else if is_free_arg(tok) {
                self.pos += 1;
                self.last_end = tok.end;
            } else {
                break;
            }
        }
    }

    fn opt_span(&self, opt: &Opt<'a>) -> Span {
        self.span(opt.start, self.last_end.max(opt.start))
    }

    fn no_negation(&self, opt: &Opt<'a>) -> Result<(), LineError> {
        match opt.neg {
            Some(neg) => self.err(neg, format!("`{}` cannot be negated with `!`", opt.name)),
            None => Ok(()),
        }
    }

    fn once(&mut self, bit: u32, opt: &Opt<'a>) -> Result<(), LineError> {
        if self.seen_std & bit != 0 {
            return self.err(opt.span, format!("`{}` is given twice", opt.name));
        }
        self.seen_std |= bit;
        Ok(())
    }

    fn push(&mut self, kind: CondKind, span: Span) {
        self.rule.conds.push(Cond { kind, span });
    }

    /// A condition that is one of several choices.
    fn push_union(&mut self, first: CondKind, others: Vec<CondKind>, span: Span) {
        if !others.is_empty() {
            self.rule.alternatives.push(Alternatives {
                at: self.rule.conds.len(),
                others,
            });
        }
        self.push(first, span);
    }

    fn note(&mut self, kind: NoteKind, name: Cow<'a, str>, span: Span) {
        self.notes.push(NoteEvent { kind, name, span });
    }

    /// An option whose value is valid but not modelled: an unknown condition and a note.
    fn unmodelled(&mut self, kind: NoteKind, opt: &Opt<'a>, what: Cow<'a, str>) {
        let span = self.opt_span(opt);
        let text = self
            .slice(span.start as usize, span.end as usize)
            .to_string();
        self.push(CondKind::Unknown(text), span);
        self.note(kind, what, span);
    }

    fn option(&mut self, mut opt: Opt<'a>) -> Result<(), LineError> {
        match opt.name {
            "-p" | "--protocol" => self.opt_protocol(opt),
            "-s" | "--source" | "--src" => self.opt_address(opt, false),
            "-d" | "--destination" | "--dst" => self.opt_address(opt, true),
            "-i" | "--in-interface" => self.opt_interface(opt, false),
            "-o" | "--out-interface" => self.opt_interface(opt, true),
            "-j" | "--jump" => self.opt_target(opt, false),
            "-g" | "--goto" => self.opt_target(opt, true),
            "-m" | "--match" => self.opt_match(opt),
            "-f" | "--fragment" => {
                self.once(STD_FRAG, &opt)?;
                self.unmodelled(NoteKind::Fragment, &opt, Cow::Borrowed("-f"));
                Ok(())
            }
            "-c" | "--set-counters" => self.opt_counters(opt),
            "-4" | "--ipv4" | "-6" | "--ipv6" => {
                self.no_negation(&opt)?;
                if let Some((_, span)) = opt.inline.take() {
                    return self.err(span, format!("`{}` takes no argument", opt.name));
                }
                let fam = if opt.name.contains('4') {
                    Family::V4
                } else {
                    Family::V6
                };
                if self.rule.only.is_some_and(|f| f != fam) {
                    return self.err(opt.span, "`-4` and `-6` cannot be used together");
                }
                self.rule.only = Some(fam);
                Ok(())
            }
            name if name.starts_with("--") => self.module_or_target_option(opt),
            name => self.err(opt.span, format!("unknown option `{name}`")),
        }
    }

    fn opt_protocol(&mut self, mut opt: Opt<'a>) -> Result<(), LineError> {
        self.once(STD_PROTO, &opt)?;
        let arg = self.arg(&mut opt)?;
        let span = self.opt_span(&opt);
        self.proto_span = span;
        let negated = opt.neg.is_some();
        match protocol(&arg.value) {
            Ok(None) => {
                if negated {
                    return self.err(span, "`! -p all` would never match any packet");
                }
                self.proto = Some(ProtoSeen {
                    number: None,
                    negated,
                });
            }
            Ok(Some(p)) => {
                self.proto = Some(ProtoSeen {
                    number: Some(p),
                    negated,
                });
                let set = IntervalSet::single(u128::from(p));
                let set = if negated {
                    set.complement(PROTO_MAX)
                } else {
                    set
                };
                self.push(CondKind::Protocol(set), span);
            }
            Err(ValueError::Unmodelled(kind)) => {
                self.proto = Some(ProtoSeen {
                    number: None,
                    negated,
                });
                self.unmodelled(kind, &opt, arg.value);
            }
            Err(ValueError::Invalid(m)) => return self.err(arg.span, m),
        }
        Ok(())
    }

    fn opt_address(&mut self, mut opt: Opt<'a>, dst: bool) -> Result<(), LineError> {
        self.once(if dst { STD_DST } else { STD_SRC }, &opt)?;
        let arg = self.arg(&mut opt)?;
        if !arg.value.contains(',') {
            // The usual case, one address: no list to build.
            return match address(&arg.value) {
                Ok((set, v6)) => {
                    self.rule.has_v6_addr |= v6;
                    let set = if opt.neg.is_some() {
                        set.complement(ADDR_MAX)
                    } else {
                        set
                    };
                    let span = self.opt_span(&opt);
                    self.push(
                        if dst {
                            CondKind::DstAddr(set)
                        } else {
                            CondKind::SrcAddr(set)
                        },
                        span,
                    );
                    Ok(())
                }
                Err(ValueError::Unmodelled(kind)) => {
                    self.unmodelled(kind, &opt, arg.value);
                    Ok(())
                }
                Err(ValueError::Invalid(m)) => self.err(arg.span, m),
            };
        }
        match address_list(&arg.value) {
            Ok((sets, v6)) => {
                self.rule.has_v6_addr |= v6;
                let span = self.opt_span(&opt);
                self.push_address(sets, opt.neg.is_some(), dst, span);
                Ok(())
            }
            Err(ValueError::Unmodelled(kind)) => {
                self.unmodelled(kind, &opt, arg.value);
                Ok(())
            }
            Err(ValueError::Invalid(m)) => self.err(arg.span, m),
        }
    }

    /// A comma list is a union; negated, iptables expands it into one rule per element,
    /// each negating one element, so the rule line is their union.
    fn push_address(&mut self, sets: Vec<IntervalSet>, negated: bool, dst: bool, span: Span) {
        let make = |s: IntervalSet| {
            if dst {
                CondKind::DstAddr(s)
            } else {
                CondKind::SrcAddr(s)
            }
        };
        if !negated {
            let union = sets
                .into_iter()
                .reduce(|a, b| a.union(&b))
                .unwrap_or_default();
            self.push(make(union), span);
            return;
        }
        let mut kinds = sets.into_iter().map(|s| make(s.complement(ADDR_MAX)));
        if let Some(first) = kinds.next() {
            self.push_union(first, kinds.collect(), span);
        }
    }

    fn opt_interface(&mut self, mut opt: Opt<'a>, out: bool) -> Result<(), LineError> {
        self.once(if out { STD_OUT } else { STD_IN }, &opt)?;
        let arg = self.arg(&mut opt)?;
        let pattern = match interface(&arg.value) {
            Ok(p) => p,
            Err(ValueError::Invalid(m)) => return self.err(arg.span, m),
            Err(ValueError::Unmodelled(_)) => return Ok(()),
        };
        let m = IfaceMatch {
            patterns: vec![pattern],
            negated: opt.neg.is_some(),
        };
        let span = self.opt_span(&opt);
        self.push(
            if out {
                CondKind::OutIface(m)
            } else {
                CondKind::InIface(m)
            },
            span,
        );
        Ok(())
    }

    fn opt_counters(&mut self, mut opt: Opt<'a>) -> Result<(), LineError> {
        self.once(STD_COUNTERS, &opt)?;
        self.no_negation(&opt)?;
        let first = self.arg(&mut opt)?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let expected = "expected `packets bytes` or `packets,bytes` after `-c`";
        if let Some((p, b)) = first.value.split_once(',') {
            if digits(p) && digits(b) {
                return Ok(());
            }
            return self.err(first.span, expected);
        }
        if !digits(&first.value) {
            return self.err(first.span, expected);
        }
        let second = self.arg(&mut opt)?;
        if !digits(&second.value) {
            return self.err(second.span, expected);
        }
        Ok(())
    }

    fn opt_target(&mut self, mut opt: Opt<'a>, goto: bool) -> Result<(), LineError> {
        self.no_negation(&opt)?;
        if self.target_mode.is_some() {
            return self.err(opt.span, "only one `-j` or `-g` is allowed");
        }
        let arg = self.arg(&mut opt)?;
        let name: &str = &arg.value;
        if name.is_empty() || name.starts_with('-') {
            return self.err(
                arg.span,
                format!("expected a target or chain name after `{}`", opt.name),
            );
        }
        self.rule.action_span = self.opt_span(&opt);
        let declared = self.cx.chains.get(name).copied();
        if declared.is_some() && self.cx.table.is_builtin(name) {
            return self.err(arg.span, format!("cannot jump to built-in chain `{name}`"));
        }
        let undeclared = || TargetAst::Chain {
            name: name.to_string(),
            goto,
            has_options: false,
        };
        let (target, mode) = match (name, declared) {
            (_, Some(index)) => (
                TargetAst::DeclaredChain { index, goto },
                TargetMode::NoOptions,
            ),
            _ if goto => (undeclared(), TargetMode::Candidate),
            ("ACCEPT", _) => (TargetAst::Verdict(Action::Accept), TargetMode::NoOptions),
            ("DROP", _) => (TargetAst::Verdict(Action::Drop), TargetMode::NoOptions),
            ("RETURN", _) => (TargetAst::Verdict(Action::Return), TargetMode::NoOptions),
            ("REJECT", _) => (TargetAst::Verdict(Action::Reject), TargetMode::Reject),
            (n, _) if CONTINUE_TARGETS.contains(&n) => (
                TargetAst::Continue {
                    name: n.to_string(),
                    nat: None,
                },
                TargetMode::Any,
            ),
            (n, _) if NAT_TARGETS.contains(&n) && self.cx.table == TableName::Nat => (
                TargetAst::Continue {
                    name: n.to_string(),
                    nat: None,
                },
                TargetMode::Any,
            ),
            (n, _) if NAT_TARGETS.contains(&n) || UNKNOWN_TARGETS.contains(&n) => {
                self.note(NoteKind::Target, arg.value.clone(), self.rule.action_span);
                (TargetAst::Unknown(n.to_string()), TargetMode::Any)
            }
            _ => (undeclared(), TargetMode::Candidate),
        };
        self.rule.target = target;
        self.target_mode = Some(mode);
        Ok(())
    }

    fn opt_match(&mut self, mut opt: Opt<'a>) -> Result<(), LineError> {
        self.no_negation(&opt)?;
        let arg = self.arg(&mut opt)?;
        let name: &'a str = match arg.value {
            Cow::Borrowed(s) => s,
            Cow::Owned(_) => self.slice(arg.span.start as usize, arg.span.end as usize),
        };
        if name.is_empty() || name.starts_with('-') {
            return self.err(arg.span, "expected a match module name after `-m`");
        }
        let span = self.opt_span(&opt);
        let kind = mod_kind(name);
        let mut cond = None;
        if kind == ModKind::Unknown {
            let first_in_rule = !self
                .mods
                .iter()
                .any(|m| m.kind == ModKind::Unknown && m.name == name);
            cond = Some(self.rule.conds.len());
            self.fixups.push((self.rule.conds.len(), name, true));
            self.push(CondKind::Unknown(String::new()), span);
            if first_in_rule {
                self.note(NoteKind::Module, Cow::Borrowed(name), span);
            }
        }
        self.mods.push(ModInst {
            kind,
            name,
            span,
            seen: 0,
            cond,
        });
        Ok(())
    }

    fn module_or_target_option(&mut self, opt: Opt<'a>) -> Result<(), LineError> {
        // 1. a loaded modelled module, latest first
        let found = self.mods.iter().enumerate().rev().find_map(|(i, m)| {
            if m.kind == ModKind::Unknown {
                return None;
            }
            module_option(m.kind, opt.name).map(|(bit, sem)| (i, bit, sem))
        });
        if let Some((i, bit, sem)) = found {
            return self.known_option(i, bit, sem, opt);
        }
        // 2. the protocol's module, loaded implicitly (`-p tcp --dport 80`)
        let proto_mod = self
            .proto
            .filter(|p| !p.negated)
            .and_then(|p| p.number)
            .and_then(protocol_module);
        if let Some((kind, name)) = proto_mod
            && kind != ModKind::Unknown
            && let Some((bit, sem)) = module_option(kind, opt.name)
            && !self.mods.iter().any(|m| m.kind == kind)
        {
            self.mods.push(ModInst {
                kind,
                name,
                span: self.proto_span,
                seen: 0,
                cond: None,
            });
            return self.known_option(self.mods.len() - 1, bit, sem, opt);
        }
        // 3. the target's options
        match self.target_mode {
            Some(TargetMode::Any) => return self.target_option(opt),
            Some(TargetMode::Candidate) => {
                if let TargetAst::Chain { has_options, .. } = &mut self.rule.target {
                    *has_options = true;
                }
                return self.target_option(opt);
            }
            Some(TargetMode::Reject) if opt.name == "--reject-with" => {
                return self.reject_with(opt);
            }
            _ => {}
        }
        // 4. the latest unknown module takes it
        if let Some(i) = self.mods.iter().rposition(|m| m.kind == ModKind::Unknown) {
            return self.unknown_module_option(i, opt);
        }
        // 5. the protocol's module that we do not model (`-p sctp --dport 80`)
        if let Some((ModKind::Unknown, name)) = proto_mod {
            let span = self.proto_span;
            self.note(NoteKind::Module, Cow::Borrowed(name), span);
            self.mods.push(ModInst {
                kind: ModKind::Unknown,
                name,
                span,
                seen: 0,
                cond: None,
            });
            return self.unknown_module_option(self.mods.len() - 1, opt);
        }
        self.err(
            opt.span,
            format!(
                "unknown option `{}`: expected an option of the protocol, of a module loaded with `-m`, or of the target",
                opt.name
            ),
        )
    }

    fn target_option(&mut self, mut opt: Opt<'a>) -> Result<(), LineError> {
        self.free_args(&mut opt);
        if let TargetAst::Continue { name, nat } = &mut self.rule.target
            && nat.is_none()
            && matches!(name.as_str(), "DNAT" | "REDIRECT" | "SNAT" | "NETMAP")
            && opt.name.starts_with("--to")
        {
            let start = opt.span.end as usize;
            let to = self
                .text
                .get(start..self.last_end.max(start))
                .unwrap_or("")
                .trim_start_matches(['=', ' ', '\t'])
                .to_string();
            *nat = Some(Box::new(NatSpec {
                to,
                span: Span::new(self.cx.file, opt.start, self.last_end.max(opt.start)),
            }));
        }
        Ok(())
    }

    fn reject_with(&mut self, mut opt: Opt<'a>) -> Result<(), LineError> {
        self.no_negation(&opt)?;
        let arg = self.arg(&mut opt)?;
        if !REJECT_TYPES.contains(&&*arg.value) {
            return self.err(
                arg.span,
                format!("unknown `--reject-with` type `{}`", arg.value),
            );
        }
        if arg.value.starts_with("tcp-") {
            self.reject_tcp = Some(arg.span);
        }
        Ok(())
    }

    fn unknown_module_option(&mut self, i: usize, mut opt: Opt<'a>) -> Result<(), LineError> {
        self.free_args(&mut opt);
        let span = self.opt_span(&opt);
        let last = self.rule.conds.len().checked_sub(1);
        let Some(m) = self.mods.get_mut(i) else {
            return Ok(());
        };
        match m.cond {
            Some(ci) if Some(ci) == last => {
                if let Some(cond) = self.rule.conds.get_mut(ci) {
                    cond.span = cond.span.to(span);
                }
            }
            _ => {
                let ci = self.rule.conds.len();
                m.cond = Some(ci);
                let name = m.name;
                self.fixups.push((ci, name, false));
                self.push(CondKind::Unknown(String::new()), span);
            }
        }
        Ok(())
    }

    fn known_option(
        &mut self,
        i: usize,
        bit: u32,
        sem: OptSem,
        mut opt: Opt<'a>,
    ) -> Result<(), LineError> {
        let Some(m) = self.mods.get_mut(i) else {
            return Ok(());
        };
        if m.seen & (1 << bit) != 0 {
            let msg = if m.kind == ModKind::Multiport {
                "`-m multiport` takes only one of `--sports`, `--dports` and `--ports`".to_string()
            } else {
                format!("`{}` is given twice", opt.name)
            };
            return self.err(opt.span, msg);
        }
        m.seen |= 1 << bit;
        let kind = m.kind;
        let negated = |o: &Opt<'a>| o.neg.is_some();
        match sem {
            OptSem::SrcPort | OptSem::DstPort => {
                let arg = self.arg(&mut opt)?;
                match port_range(&arg.value) {
                    Ok((lo, hi)) => {
                        let set = IntervalSet::range(u128::from(lo), u128::from(hi));
                        let set = if negated(&opt) {
                            set.complement(PORT_MAX)
                        } else {
                            set
                        };
                        let span = self.opt_span(&opt);
                        self.push(
                            if sem == OptSem::SrcPort {
                                CondKind::SrcPort(set)
                            } else {
                                CondKind::DstPort(set)
                            },
                            span,
                        );
                    }
                    Err(ValueError::Unmodelled(k)) => self.unmodelled(k, &opt, arg.value),
                    Err(ValueError::Invalid(msg)) => return self.err(arg.span, msg),
                }
            }
            OptSem::SrcPorts | OptSem::DstPorts | OptSem::AnyPorts => {
                let arg = self.arg(&mut opt)?;
                match port_list(&arg.value) {
                    Ok(set) => {
                        let span = self.opt_span(&opt);
                        let neg = negated(&opt);
                        let set = if neg { set.complement(PORT_MAX) } else { set };
                        match sem {
                            OptSem::SrcPorts => self.push(CondKind::SrcPort(set), span),
                            OptSem::DstPorts => self.push(CondKind::DstPort(set), span),
                            // `! --ports`: neither port is in the list.
                            _ if neg => {
                                self.push(CondKind::SrcPort(set.clone()), span);
                                self.push(CondKind::DstPort(set), span);
                            }
                            // `--ports`: either port is in the list, a union across fields.
                            _ => self.push_union(
                                CondKind::SrcPort(set.clone()),
                                vec![CondKind::DstPort(set)],
                                span,
                            ),
                        }
                    }
                    Err(ValueError::Unmodelled(k)) => self.unmodelled(k, &opt, arg.value),
                    Err(ValueError::Invalid(msg)) => return self.err(arg.span, msg),
                }
            }
            OptSem::States => {
                let arg = self.arg(&mut opt)?;
                let set = match state_list(&arg.value) {
                    Ok(set) => set,
                    Err(ValueError::Invalid(msg)) => return self.err(arg.span, msg),
                    Err(ValueError::Unmodelled(_)) => IntervalSet::range(0, ct::MAX),
                };
                let set = if negated(&opt) {
                    set.complement(ct::MAX)
                } else {
                    set
                };
                let span = self.opt_span(&opt);
                self.push(CondKind::State(set), span);
            }
            OptSem::SrcRange | OptSem::DstRange => {
                let arg = self.arg(&mut opt)?;
                match address_range(&arg.value) {
                    Ok((set, v6)) => {
                        self.rule.has_v6_addr |= v6;
                        let set = if negated(&opt) {
                            set.complement(ADDR_MAX)
                        } else {
                            set
                        };
                        let span = self.opt_span(&opt);
                        self.push(
                            if sem == OptSem::SrcRange {
                                CondKind::SrcAddr(set)
                            } else {
                                CondKind::DstAddr(set)
                            },
                            span,
                        );
                    }
                    Err(ValueError::Unmodelled(k)) => self.unmodelled(k, &opt, arg.value),
                    Err(ValueError::Invalid(msg)) => return self.err(arg.span, msg),
                }
            }
            OptSem::Comment => {
                self.no_negation(&opt)?;
                let arg = self.arg(&mut opt)?;
                if arg.value.len() > 255 {
                    return self.err(arg.span, "comment is longer than 255 characters");
                }
                match &mut self.rule.comment {
                    Some(c) => {
                        c.push_str("; ");
                        c.push_str(&arg.value);
                    }
                    None => self.rule.comment = Some(arg.value.into_owned()),
                }
            }
            OptSem::Opaque(nargs, check) => {
                for _ in 0..nargs {
                    let arg = self.arg(&mut opt)?;
                    if let Err(msg) = check_opaque(check, &arg.value) {
                        return self.err(arg.span, msg);
                    }
                }
                if nargs == 0
                    && let Some((_, span)) = opt.inline.take()
                {
                    return self.err(span, format!("`{}` takes no argument", opt.name));
                }
                let span = self.opt_span(&opt);
                let prefix = match kind {
                    ModKind::Tcp => "-m tcp ",
                    ModKind::Conntrack => "-m conntrack ",
                    ModKind::Icmp => "-m icmp ",
                    ModKind::Icmp6 => "-m icmp6 ",
                    _ => "",
                };
                let mut text = String::with_capacity(prefix.len() + span.len());
                text.push_str(prefix);
                text.push_str(self.slice(span.start as usize, span.end as usize));
                self.push(CondKind::Unknown(text), span);
                self.note(NoteKind::Option, Cow::Borrowed(opt.name), span);
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<RuleAst, LineError> {
        let proto = self.proto.filter(|p| !p.negated).and_then(|p| p.number);
        for m in self.mods.iter() {
            let needs = |want: &[u8]| proto.is_some_and(|p| want.contains(&p));
            let problem = match m.kind {
                ModKind::Tcp if !needs(&[proto::TCP]) => Some("`-m tcp` needs `-p tcp`"),
                ModKind::Udp if !needs(&[proto::UDP]) => Some("`-m udp` needs `-p udp`"),
                ModKind::Icmp if !needs(&[proto::ICMP]) => Some("`-m icmp` needs `-p icmp`"),
                ModKind::Icmp6 if !needs(&[proto::ICMPV6]) => {
                    Some("`-m icmp6` needs `-p ipv6-icmp`")
                }
                ModKind::Multiport if m.seen == 0 => {
                    Some("`-m multiport` needs `--sports`, `--dports` or `--ports`")
                }
                ModKind::Multiport
                    if !needs(&[
                        proto::TCP,
                        proto::UDP,
                        proto::UDPLITE,
                        proto::SCTP,
                        proto::DCCP,
                    ]) =>
                {
                    Some("`-m multiport` needs `-p tcp`, `udp`, `udplite`, `sctp` or `dccp`")
                }
                ModKind::State if m.seen == 0 => Some("`-m state` needs `--state`"),
                ModKind::Conntrack if m.seen == 0 => {
                    Some("`-m conntrack` needs at least one of its options")
                }
                ModKind::Iprange if m.seen == 0 => {
                    Some("`-m iprange` needs `--src-range` or `--dst-range`")
                }
                ModKind::Comment if m.seen == 0 => Some("`-m comment` needs `--comment`"),
                _ => None,
            };
            if let Some(msg) = problem {
                return self.err(m.span, msg);
            }
        }
        if let Some(span) = self.reject_tcp
            && proto != Some(proto::TCP)
        {
            return self.err(span, "`--reject-with tcp-reset` needs `-p tcp`");
        }
        for &(ci, name, at_m) in self.fixups.iter() {
            let Some(cond) = self.rule.conds.get_mut(ci) else {
                continue;
            };
            let body = self
                .text
                .get(cond.span.start as usize..cond.span.end as usize)
                .unwrap_or("");
            let text = if at_m {
                body.to_string()
            } else {
                format!("-m {name} {body}")
            };
            cond.kind = CondKind::Unknown(text);
        }
        Ok(self.rule)
    }
}

fn is_free_arg(tok: &Token<'_>) -> bool {
    if tok.quoted {
        return true;
    }
    let mut chars = tok.value.chars();
    match chars.next() {
        Some('-') => match chars.next() {
            None => true,
            Some(c) => c.is_ascii_digit(),
        },
        Some(_) => tok.value != "!",
        None => true,
    }
}

fn check_opaque(check: Check, v: &str) -> Result<(), String> {
    let bad = |what: &str| Err(format!("expected {what}, found `{v}`"));
    match check {
        Check::None => Ok(()),
        Check::PortRange => match port_range(v) {
            Err(ValueError::Invalid(m)) => Err(m),
            _ => Ok(()),
        },
        Check::Address => match address(v) {
            Err(ValueError::Invalid(m)) => Err(m),
            _ => Ok(()),
        },
        Check::Protocol => match protocol(v) {
            Ok(None) => Err(format!("`--ctproto {v}` would match every protocol")),
            Err(ValueError::Invalid(m)) => Err(m),
            _ => Ok(()),
        },
        Check::U32Range => {
            let (lo, hi) = v.split_once(':').unwrap_or((v, v));
            match (lo.parse::<u32>(), hi.parse::<u32>()) {
                (Ok(a), Ok(b)) if a <= b => Ok(()),
                _ => bad("a number or range of 0-4294967295"),
            }
        }
        Check::Dir => match v {
            "ORIGINAL" | "REPLY" => Ok(()),
            _ => bad("`ORIGINAL` or `REPLY`"),
        },
        Check::Status => {
            let ok = v.split(',').all(|s| {
                matches!(
                    s,
                    "NONE" | "EXPECTED" | "SEEN_REPLY" | "ASSURED" | "CONFIRMED"
                )
            });
            if ok {
                Ok(())
            } else {
                bad("conntrack statuses")
            }
        }
        Check::TcpFlags => {
            let ok = v.split(',').all(|s| {
                matches!(
                    s,
                    "FIN" | "SYN" | "RST" | "PSH" | "ACK" | "URG" | "ALL" | "NONE"
                )
            });
            if ok {
                Ok(())
            } else {
                bad("tcp flags such as `SYN,ACK`")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(line: &str) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        tokenize_into(FileId(0), line, 0, &mut out).expect("tokenizes");
        out.into_iter()
            .map(|t| (t.value.into_owned(), t.quoted))
            .collect()
    }

    #[test]
    fn tokens_follow_iptables_restore_quoting() {
        assert_eq!(
            tokens("-A X  --comment \"a b\"\t'c d' e\"f g\"h \"q\\\"\\\\\""),
            vec![
                ("-A".to_string(), false),
                ("X".to_string(), false),
                ("--comment".to_string(), false),
                ("a b".to_string(), true),
                ("c d".to_string(), true),
                ("ef gh".to_string(), true),
                ("q\"\\".to_string(), true),
            ]
        );
        let mut out = Vec::new();
        let err = tokenize_into(FileId(0), "-A X \"open", 10, &mut out).expect_err("unterminated");
        assert_eq!((err.span.start, err.span.end), (15, 20));
    }

    /// The tokenizer as it was written with nom before the hand-written one replaced it:
    /// the reference the proptest below holds the new one to.
    mod nom_reference {
        use super::super::{FileId, LineError, Span, Token, is_blank};
        use nom::branch::alt;
        use nom::bytes::complete::{take_till, take_till1};
        use nom::character::complete::{anychar, char, space0};
        use nom::combinator::recognize;
        use nom::multi::many0_count;
        use nom::sequence::{delimited, preceded};
        use nom::{IResult, Parser};
        use std::borrow::Cow;

        enum Segment<'a> {
            Bare(&'a str),
            Double(&'a str),
            Single(&'a str),
        }

        fn bare_segment(input: &str) -> IResult<&str, Segment<'_>> {
            take_till1(|c| is_blank(c) || c == '"' || c == '\'')
                .map(Segment::Bare)
                .parse(input)
        }

        fn double_quoted(input: &str) -> IResult<&str, Segment<'_>> {
            delimited(
                char('"'),
                recognize(many0_count(alt((
                    take_till1(|c| c == '\\' || c == '"'),
                    recognize(preceded(char('\\'), anychar)),
                )))),
                char('"'),
            )
            .map(Segment::Double)
            .parse(input)
        }

        fn single_quoted(input: &str) -> IResult<&str, Segment<'_>> {
            delimited(char('\''), take_till(|c| c == '\''), char('\''))
                .map(Segment::Single)
                .parse(input)
        }

        pub fn tokenize<'a>(line: &'a str, base: usize) -> Result<Vec<Token<'a>>, LineError> {
            let mut out = Vec::new();
            let mut rest = line;
            loop {
                let (r, _) = space0::<&str, nom::error::Error<&str>>(rest).unwrap_or((rest, ""));
                rest = r;
                if rest.is_empty() {
                    return Ok(out);
                }
                let start = base + (line.len() - rest.len());
                let mut value: Cow<'a, str> = Cow::Borrowed("");
                let mut quoted = false;
                let mut segments = 0;
                while let Ok((r, seg)) =
                    alt((bare_segment, double_quoted, single_quoted)).parse(rest)
                {
                    rest = r;
                    let (text, escaped) = match seg {
                        Segment::Bare(s) => (s, false),
                        Segment::Double(s) => {
                            quoted = true;
                            (s, s.contains('\\'))
                        }
                        Segment::Single(s) => {
                            quoted = true;
                            (s, false)
                        }
                    };
                    if segments == 0 && !escaped {
                        value = Cow::Borrowed(text);
                    } else {
                        let owned = value.to_mut();
                        if escaped {
                            super::super::unescape(text, owned);
                        } else {
                            owned.push_str(text);
                        }
                    }
                    segments += 1;
                }
                if rest.starts_with('"') || rest.starts_with('\'') {
                    let at = base + (line.len() - rest.len());
                    return Err(LineError {
                        span: Span::new(FileId(0), at, base + line.len()),
                        message: "unterminated quote".to_string(),
                    });
                }
                let end = base + (line.len() - rest.len());
                out.push(Token {
                    value,
                    start,
                    end,
                    quoted,
                });
            }
        }
    }

    /// A token as compared: its text, whether it was borrowed from the line, its
    /// offsets and whether it was quoted.
    fn seen(t: &Token<'_>) -> (String, bool, usize, usize, bool) {
        let borrowed = matches!(t.value, Cow::Borrowed(_));
        (t.value.to_string(), borrowed, t.start, t.end, t.quoted)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// Lines of blanks, quotes, backslashes, letters and a two-byte character: the
        /// hand-written tokenizer gives the tokens (text, borrowed or not, offsets,
        /// quotedness) or the error the nom one gave.
        #[test]
        fn tokens_are_those_the_nom_tokenizer_gave(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    " ", "\t", "\"", "'", "\\", "a", "-A", "é", "!", "--x=1",
                ]),
                0..24,
            ),
            base in 0usize..1000,
        ) {
            let line: String = pieces.concat();
            let mut out = Vec::new();
            let ours = tokenize_into(FileId(0), &line, base, &mut out).map(|()| out);
            let theirs = nom_reference::tokenize(&line, base);
            match (ours, theirs) {
                (Ok(a), Ok(b)) => {
                    let a: Vec<_> = a.iter().map(seen).collect();
                    let b: Vec<_> = b.iter().map(seen).collect();
                    proptest::prop_assert_eq!(a, b, "{:?}", line);
                }
                (Err(a), Err(b)) => proptest::prop_assert_eq!(a, b, "{:?}", line),
                (a, b) => proptest::prop_assert!(
                    false,
                    "{:?}: ours {:?}, nom's {:?}",
                    line,
                    a.map(|t| t.len()),
                    b.map(|t| t.len())
                ),
            }
        }
    }

    #[test]
    fn token_offsets_are_file_offsets() {
        let mut out = Vec::new();
        tokenize_into(FileId(0), "-j  ACCEPT", 100, &mut out).expect("tokenizes");
        assert_eq!((out[1].start, out[1].end), (104, 110));
    }

    #[test]
    fn line_shapes() {
        assert_eq!(table_header("* nat").map(|r| r.1), Ok("nat"));
        assert!(table_header("*filter extra").is_err());
        assert_eq!(
            chain_line(":FORWARD DROP [1:2]").map(|r| r.1),
            Ok(("FORWARD", "DROP"))
        );
        assert_eq!(
            chain_line(":PREROUTING ACCEPT").map(|r| r.1),
            Ok(("PREROUTING", "ACCEPT"))
        );
        assert!(chain_line(":FORWARD").is_err());
        assert_eq!(counters("[12:3456] -A").map(|r| r.1), Ok((12, 3456)));
    }

    #[test]
    fn values() {
        assert_eq!(port("smtp"), Ok(25));
        assert_eq!(
            port("nosuchservice"),
            Err(ValueError::Unmodelled(NoteKind::PortName))
        );
        assert!(matches!(port("65536"), Err(ValueError::Invalid(_))));
        assert_eq!(port_range(":"), Ok((0, 65535)));
        assert!(matches!(port_range("4:3"), Err(ValueError::Invalid(_))));
        assert!(port_list("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15").is_ok());
        assert!(matches!(
            port_list("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16"),
            Err(ValueError::Invalid(_))
        ));
        assert_eq!(protocol("ALL"), Ok(None));
        assert_eq!(protocol("ICMP"), Ok(Some(1)));
        assert_eq!(
            address("host.example.com"),
            Err(ValueError::Unmodelled(NoteKind::Hostname))
        );
        assert!(matches!(address("1.2.3.4/33"), Err(ValueError::Invalid(_))));
        assert_eq!(
            address("::1/128").map(|(s, v6)| (s.count(), v6)),
            Ok((1, true))
        );
        assert_eq!(
            address("10.0.0.0/255.255.0.0").map(|(s, _)| s.count()),
            Ok(65536)
        );
        assert_eq!(
            address("1.2.3.4/0.0.0.1"),
            Err(ValueError::Unmodelled(NoteKind::Mask))
        );
        assert!(matches!(
            address_range("1.1.1.9-1.1.1.1"),
            Err(ValueError::Invalid(_))
        ));
        assert!(interface("abcdefghijklmno").is_ok());
        assert!(interface("abcdefghijklmnop").is_err());
        // NEW with any NAT flags (4 values) and every DNATed state (10 values), 2 shared.
        assert_eq!(state_list("NEW,DNAT").map(|s| s.count()), Ok(12));
    }
}
