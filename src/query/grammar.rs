//! The `--query` language: `PROTOCOL SOURCE -> DESTINATION`, as `grammars/query.ebnf`
//! writes it, one function per production with the same name.
//!
//! nom recognises the shape of each production and hands back the text it covered; the
//! values (protocol numbers, addresses, port ranges) are then checked one by one, so
//! every error names the column and the token that is wrong rather than "parse failed".

use crate::analysis::zones::parse_network;
use crate::graph::sets::{PORT_MAX, addr, proto};
use crate::graph::{IntervalSet, Zone};
use nom::branch::alt;
use nom::bytes::complete::{tag, take_till1, take_while1};
use nom::character::complete::{char, space0, space1};
use nom::combinator::{opt, recognize};
use nom::multi::separated_list1;
use nom::sequence::{delimited, pair, preceded};
use nom::{IResult, Parser};

/// A flow the user asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The query as written.
    pub text: String,
    /// The IP protocol, or `None` for every protocol (`ip`, `any`).
    pub protocol: Option<u8>,
    /// Where the flow comes from, with its source ports.
    pub src: Endpoint,
    /// Where it goes, with its destination ports.
    pub dst: Endpoint,
}

/// One side of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// A zone, an interface, or nothing (`any`, or only an address).
    pub place: Place,
    /// Addresses, with the text written.
    pub addrs: Option<(IntervalSet, String)>,
    /// Ports, with the text written.
    pub ports: Option<(IntervalSet, String)>,
}

/// Where a side of the flow is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// No place given (`any`, or an address alone).
    Any,
    /// A zone: its interfaces and addresses.
    Zone(Zone),
    /// One interface by name (`@eth1`).
    Iface(String),
}

/// A query that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct QueryError {
    /// 1-based column (in characters) of the problem.
    pub column: usize,
    /// What is wrong, lowercase.
    pub message: String,
}

/// A side of the flow as nom recognised it, before its values are checked.
struct RawEndpoint<'a> {
    place: Option<&'a str>,
    addr: Option<&'a str>,
    ports: Option<&'a str>,
}

/// Parses a query.
pub fn parse_query(text: &str) -> Result<Query, QueryError> {
    // `at` is always a slice of `text`: the rest of the input, or a token of it.
    let fail = |at: &str, message: String| {
        let offset = (at.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
        QueryError {
            column: text.get(..offset).map_or(1, |s| s.chars().count() + 1),
            message,
        }
    };
    let rest = text.trim_start();
    let (rest, word) = protocol(rest).map_err(|_| {
        fail(
            rest,
            "expected a protocol (tcp, udp, icmp, esp, ah, ip or a number) and a space".into(),
        )
    })?;
    let protocol = resolve_protocol(word).map_err(|m| fail(word, m))?;
    let (rest, src) = endpoint(rest).map_err(|_| {
        fail(
            rest,
            "expected a source: a zone (public, perimeter, internal), @interface, address, `any` or :ports".into(),
        )
    })?;
    let (rest, _) = delimited(space0::<&str, nom::error::Error<&str>>, tag("->"), space0)
        .parse(rest)
        .map_err(|_| fail(rest, "expected `->` between source and destination".into()))?;
    let (rest, dst) = endpoint(rest).map_err(|_| {
        fail(
            rest,
            "expected a destination: a zone (public, perimeter, internal), @interface, address, `any` or :ports".into(),
        )
    })?;
    if !rest.trim().is_empty() {
        return Err(fail(rest, format!("unexpected `{}`", rest.trim())));
    }
    let src = resolve_endpoint(&src, &fail)?;
    let dst = resolve_endpoint(&dst, &fail)?;
    if let Some(p) = protocol
        && !proto::has_ports(p)
        && let Some((_, written)) = src.ports.as_ref().or(dst.ports.as_ref())
    {
        return Err(fail(
            text,
            format!("ports `{written}` need a protocol with ports (tcp, udp, sctp), not `{word}`"),
        ));
    }
    if protocol.is_none()
        && let Some((_, written)) = src.ports.as_ref().or(dst.ports.as_ref())
    {
        return Err(fail(
            text,
            format!("ports `{written}` need a protocol with ports: write tcp or udp, not `{word}`"),
        ));
    }
    Ok(Query {
        text: text.trim().to_string(),
        protocol,
        src,
        dst,
    })
}

/// `protocol = "ip" | "any" | name | number`, followed by a space.
fn protocol(input: &str) -> IResult<&str, &str> {
    let (rest, word) = take_while1(|c: char| c.is_ascii_alphanumeric() || c == '-')(input)?;
    let (rest, _) = space1(rest)?;
    Ok((rest, word))
}

/// `endpoint = place [ws1 address] [ws ports] | address [ws ports] | ports`.
fn endpoint(input: &str) -> IResult<&str, RawEndpoint<'_>> {
    let with_place = (
        place,
        opt(preceded(space1, address)),
        opt(preceded(space0, ports)),
    )
        .map(|(p, a, ports)| RawEndpoint {
            place: Some(p),
            addr: a,
            ports,
        });
    let with_addr = pair(address, opt(preceded(space0, ports))).map(|(a, ports)| RawEndpoint {
        place: None,
        addr: Some(a),
        ports,
    });
    let only_ports = ports.map(|p| RawEndpoint {
        place: None,
        addr: None,
        ports: Some(p),
    });
    alt((with_place, with_addr, only_ports)).parse(input)
}

/// `place = zone | "@" iface | "any"`: a word starting with a letter, or `@name`.
fn place(input: &str) -> IResult<&str, &str> {
    alt((
        recognize(pair(char('@'), take_while1(is_iface_char))),
        recognize(pair(
            take_while1(|c: char| c.is_ascii_alphabetic()),
            opt(take_while1(|c: char| c.is_ascii_alphanumeric() || c == '-')),
        )),
    ))
    .parse(input)
}

fn is_iface_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+')
}

/// `address = ipv4 ["/" len] | ipv4 "-" ipv4 | "[" ipv6 ["/" len] "]"`.
fn address(input: &str) -> IResult<&str, &str> {
    let ipv4 = || take_while1(|c: char| c.is_ascii_digit() || c == '.');
    alt((
        recognize(delimited(char('['), take_till1(|c| c == ']'), char(']'))),
        recognize((
            ipv4(),
            opt(alt((
                preceded(char('/'), take_while1(|c: char| c.is_ascii_digit())),
                preceded(char('-'), ipv4()),
            ))),
        )),
    ))
    .parse(input)
}

/// `ports = ":" ws port-range {"," port-range}`; returns the text after the colon.
fn ports(input: &str) -> IResult<&str, &str> {
    preceded(
        pair(char(':'), space0),
        recognize(separated_list1(char(','), port_range)),
    )
    .parse(input)
}

/// `port-range = port ["-" port]`.
fn port_range(input: &str) -> IResult<&str, &str> {
    let digits = || take_while1(|c: char| c.is_ascii_digit());
    recognize(pair(digits(), opt(preceded(char('-'), digits())))).parse(input)
}

/// The protocol number of a protocol word.
fn resolve_protocol(word: &str) -> Result<Option<u8>, String> {
    match word.to_ascii_lowercase().as_str() {
        "ip" | "any" => return Ok(None),
        _ => {}
    }
    if let Ok(n) = word.parse::<u16>() {
        return u8::try_from(n)
            .map(Some)
            .map_err(|_| format!("protocol number `{word}` is above 255"));
    }
    proto::by_name(word)
        .map(Some)
        .ok_or_else(|| format!("`{word}` is not a protocol mislint knows; write its number"))
}

/// Checks the values of one side of the flow.
fn resolve_endpoint(
    raw: &RawEndpoint,
    fail: &impl Fn(&str, String) -> QueryError,
) -> Result<Endpoint, QueryError> {
    let place = match raw.place {
        None => Place::Any,
        Some(p) => resolve_place(p).map_err(|m| fail(p, m))?,
    };
    let addrs = match raw.addr {
        None => None,
        Some(a) => Some((resolve_address(a).map_err(|m| fail(a, m))?, a.to_string())),
    };
    let ports = match raw.ports {
        None => None,
        Some(p) => Some((resolve_ports(p).map_err(|m| fail(p, m))?, p.to_string())),
    };
    Ok(Endpoint {
        place,
        addrs,
        ports,
    })
}

fn resolve_place(word: &str) -> Result<Place, String> {
    if let Some(name) = word.strip_prefix('@') {
        return Ok(Place::Iface(name.to_string()));
    }
    if word.eq_ignore_ascii_case("any") {
        return Ok(Place::Any);
    }
    Zone::by_name(word).map(Place::Zone).ok_or_else(|| {
        format!(
            "`{word}` is not a zone (public, perimeter, internal); write @{word} for an interface"
        )
    })
}

fn resolve_address(text: &str) -> Result<IntervalSet, String> {
    let bad = || format!("`{text}` is not an address, a network (a.b.c.d/len) or a range (a-b)");
    let inner = match text.strip_prefix('[') {
        Some(v6) => {
            let v6 = v6.strip_suffix(']').ok_or_else(bad)?;
            let host = v6.split('/').next().unwrap_or(v6);
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad());
            }
            v6
        }
        None => text,
    };
    parse_network(inner)
        .filter(|s| !s.is_empty())
        .filter(|s| text.starts_with('[') || s.is_subset(&addr::v4_space()))
        .ok_or_else(bad)
}

fn resolve_ports(text: &str) -> Result<IntervalSet, String> {
    let mut set = IntervalSet::empty();
    for part in text.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let number = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|p| u128::from(*p) <= PORT_MAX)
                .ok_or_else(|| format!("`{s}` is not a port (0-65535)"))
        };
        let (lo, hi) = (number(lo)?, number(hi)?);
        if lo > hi {
            return Err(format!("port range `{part}` runs backwards"));
        }
        set = set.union(&IntervalSet::range(u128::from(lo), u128::from(hi)));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Query {
        parse_query(text).unwrap_or_else(|e| panic!("`{text}` should parse: {e}"))
    }

    fn v4(s: &str) -> u128 {
        addr::v4(s.parse().expect("literal"))
    }

    #[test]
    fn addresses_and_ports() {
        let x = q("tcp 192.168.10.5 -> 10.0.0.10:389");
        assert_eq!(x.protocol, Some(6));
        assert_eq!(x.src.place, Place::Any);
        assert_eq!(
            x.src.addrs.as_ref().map(|a| a.0.clone()),
            Some(IntervalSet::single(v4("192.168.10.5")))
        );
        assert_eq!(x.src.ports, None);
        assert_eq!(
            x.dst.ports.as_ref().map(|p| p.0.clone()),
            Some(IntervalSet::single(389))
        );
    }

    #[test]
    fn zones_with_spaced_and_unspaced_ports() {
        let x = q("tcp perimeter -> internal :389");
        assert_eq!(x.src.place, Place::Zone(Zone::Perimeter));
        assert_eq!(x.dst.place, Place::Zone(Zone::Internal));
        assert_eq!(x.dst.ports.map(|p| p.0), Some(IntervalSet::single(389)));
        let y = q("tcp 192.168.10.0/24:1024-65535 -> internal:135");
        assert_eq!(
            y.src.addrs.map(|a| a.0.count()),
            Some(256),
            "a /24 is 256 addresses"
        );
        assert_eq!(
            y.src.ports.map(|p| p.0),
            Some(IntervalSet::range(1024, 65535))
        );
        assert_eq!(y.dst.ports.map(|p| p.0), Some(IntervalSet::single(135)));
    }

    #[test]
    fn portless_protocols_and_lists() {
        let x = q("esp perimeter -> internal");
        assert_eq!(x.protocol, Some(50));
        assert_eq!(x.dst.ports, None);
        let y = q("  UDP DMZ -> Inside : 53,137-138  ");
        assert_eq!(y.protocol, Some(17));
        assert_eq!(y.src.place, Place::Zone(Zone::Perimeter));
        assert_eq!(
            y.dst.ports.map(|p| p.0),
            Some(IntervalSet::from_ranges([(53, 53), (137, 138)]))
        );
        assert_eq!(q("ip any -> internal").protocol, None);
        assert_eq!(q("47 any -> any").protocol, Some(47));
    }

    #[test]
    fn zone_with_address_and_interfaces() {
        let x = q("tcp perimeter 192.168.10.5 -> @eth2 10.0.0.0/24 :80,443");
        assert_eq!(x.src.place, Place::Zone(Zone::Perimeter));
        assert!(x.src.addrs.is_some());
        assert_eq!(x.dst.place, Place::Iface("eth2".into()));
        assert_eq!(x.dst.addrs.map(|a| a.0.count()), Some(256));
        let y = q("tcp [2001:db8::/64] -> [2001:db8:1::1]:443");
        assert_eq!(y.src.addrs.map(|a| a.0.count()), Some(1u128 << 64));
        let z = q("tcp 10.0.0.1-10.0.0.4 -> any:22");
        assert_eq!(z.src.addrs.map(|a| a.0.count()), Some(4));
    }

    #[test]
    fn errors_name_the_column_and_the_token() {
        let e = parse_query("tcp perimeter => internal").expect_err("bad arrow");
        assert_eq!(e.column, 14);
        assert!(e.message.contains("->"), "{e}");
        let e = parse_query("tcp mars -> internal").expect_err("bad zone");
        assert_eq!(e.column, 5);
        assert!(e.message.contains("`mars` is not a zone"), "{e}");
        let e = parse_query("esp perimeter -> internal :500").expect_err("ports on esp");
        assert!(e.message.contains("protocol with ports"), "{e}");
        let e = parse_query("tcp any -> internal :70000").expect_err("big port");
        assert!(e.message.contains("`70000` is not a port"), "{e}");
        let e = parse_query("tcp any -> internal :90-80").expect_err("backwards");
        assert!(e.message.contains("backwards"), "{e}");
        let e = parse_query("frob any -> any").expect_err("unknown protocol");
        assert_eq!(e.column, 1);
        let e = parse_query("tcp 10.0.0.300 -> any").expect_err("bad address");
        assert!(e.message.contains("not an address"), "{e}");
        let e = parse_query("tcp any -> internal junk").expect_err("trailing text");
        assert!(e.message.contains("unexpected `junk`"), "{e}");
        let e = parse_query("tcp").expect_err("incomplete");
        assert_eq!(e.column, 1);
    }
}
