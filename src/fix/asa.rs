//! Fix edits in ASA running-config text: an `access-list … extended permit` entry
//! inserted before the denying entry or after the last entry of the ACL whose implicit
//! deny decides, a destination port operator narrowed, an entry deleted.
//!
//! Called by `fix::suggest`. An ACL's entries are in line order in a running-config, so
//! a line inserted between two entries lands between them when the config is applied.
//! Where no ACL is bound and security levels decide, there is no safe edit: binding a
//! new ACL to the interface replaces the security-level behaviour for all its traffic.

use super::{Net, Permit, Placement, edit, line_at, lines_in, ranges_of, tokens};
use crate::graph::IntervalSet;
use crate::graph::sets::{PORT_MAX, proto};
use crate::parse::asa::ports::port_by_name;
use crate::report::finding::Edit;
use crate::source::{FileId, Span};
use std::net::IpAddr;

/// Words that may follow an entry's destination port operator.
const TRAILING: [&str; 3] = ["log", "time-range", "inactive"];

/// Edits that insert `p` ahead of the deny at `at`.
pub fn insert_permit(text: &str, file: FileId, at: Span, p: &Permit) -> Result<Placement, String> {
    let (start, end, _) = line_at(text, at.start as usize);
    let line = text.get(start..end).unwrap_or("");
    let toks = tokens(line);
    let words: Vec<&str> = toks.iter().map(|(_, w)| *w).collect();
    match words.as_slice() {
        ["access-list", name, ..] => Ok((
            vec![edit(file, start, start, entries(name, p))],
            "before the entry that denies it".into(),
        )),
        ["access-group", name, ..] => {
            let after = last_entry_end(text, name)
                .ok_or_else(|| format!("access-list `{name}` has no entries to append to"))?;
            Ok((
                vec![edit(file, after, after, entries(name, p))],
                format!("at the end of access-list `{name}`, before its implicit deny"),
            ))
        }
        _ => Err(
            "no access-list is bound to this interface, so its security level decides; an \
             access-list bound to it would replace the security levels for every other flow \
             through the interface, so write one by hand that permits this and keeps what \
             the interface needs"
                .into(),
        ),
    }
}

/// The offset after the last `access-list NAME` line.
fn last_entry_end(text: &str, name: &str) -> Option<usize> {
    lines_in(text, 0, text.len())
        .into_iter()
        .filter(|(s, e, _)| {
            let t = tokens(text.get(*s..*e).unwrap_or(""));
            matches!(t.as_slice(), [(_, "access-list"), (_, n), (_, kind), ..]
                if *n == name && *kind != "remark")
        })
        .map(|(_, _, next)| next)
        .next_back()
}

/// `host 192.168.10.5`, `10.0.0.0 255.255.255.0`, `any`.
fn address(n: Option<Net>) -> String {
    match n {
        None => "any".into(),
        Some(n) if n.is_host() => format!("host {}", n.addr),
        Some(Net {
            addr: IpAddr::V4(a),
            len,
        }) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            format!("{a} {}", std::net::Ipv4Addr::from(mask))
        }
        Some(n) => n.cidr(),
    }
}

/// The entries of a permit, one per port range.
fn entries(name: &str, p: &Permit) -> String {
    let protocol = match p.protocol {
        proto::TCP | proto::UDP | proto::ESP | proto::AH | proto::ICMP => {
            proto::name(p.protocol).unwrap_or("ip").to_string()
        }
        n => n.to_string(),
    };
    let head = format!(
        "access-list {name} extended permit {protocol} {} {}",
        address(p.src),
        address(p.dst)
    );
    if p.ports.is_empty() || p.ports == [(0, PORT_MAX as u16)] {
        return format!("{head}\n");
    }
    p.ports
        .iter()
        .map(|&(lo, hi)| format!("{head} {}\n", operator(lo, hi)))
        .collect()
}

/// `eq 389` or `range 137 138`.
fn operator(lo: u16, hi: u16) -> String {
    if lo == hi {
        format!("eq {lo}")
    } else {
        format!("range {lo} {hi}")
    }
}

/// A port literal: a number or one of Cisco's names, for `protocol`.
fn port_value(word: &str, protocol: u8) -> Option<u16> {
    word.parse().ok().or_else(|| {
        port_by_name(word)
            .filter(|p| p.proto.allows(protocol))
            .map(|p| p.port)
    })
}

/// The destination port operator of an entry: its token range and the ports it means.
/// Only an operator followed by nothing but trailing keywords counts; anything else
/// (a source port operator, an object-group of services) is not narrowed.
fn destination_ports(toks: &[(usize, &str)], protocol: u8) -> Option<(usize, usize, IntervalSet)> {
    let words: Vec<&str> = toks.iter().map(|(_, w)| *w).collect();
    let i = words
        .iter()
        .rposition(|w| matches!(*w, "eq" | "neq" | "lt" | "gt" | "range"))?;
    let argc = if words.get(i) == Some(&"range") { 2 } else { 1 };
    if let Some(next) = words.get(i + 1 + argc)
        && !TRAILING.contains(next)
    {
        return None;
    }
    let a = port_value(words.get(i + 1)?, protocol)?;
    let (lo, hi) = (u128::from(a), PORT_MAX);
    let set = match *words.get(i)? {
        "eq" => IntervalSet::single(lo),
        "neq" => IntervalSet::range(0, hi).subtract(&IntervalSet::single(lo)),
        "lt" => IntervalSet::range(0, lo.checked_sub(1)?),
        "gt" => IntervalSet::range(lo + 1, hi),
        _ => {
            let b = port_value(words.get(i + 2)?, protocol)?;
            IntervalSet::range(lo, u128::from(b))
        }
    };
    let first = toks.get(i)?.0;
    let (last_at, last) = *toks.get(i + argc)?;
    Some((first, last_at + last.len(), set))
}

/// Edits that drop `excess` from the entry at `at`: its operator rewritten, or the
/// entry split into one entry per kept range.
pub fn narrow(
    text: &str,
    file: FileId,
    at: Span,
    protocol: u8,
    excess: &IntervalSet,
) -> Option<(Vec<Edit>, IntervalSet)> {
    let (start, end, _) = line_at(text, at.start as usize);
    let line = text.get(start..end)?;
    let toks = tokens(line);
    let words: Vec<&str> = toks.iter().map(|(_, w)| *w).collect();
    let ["access-list", _, "extended", "permit", proto_word, ..] = words.as_slice() else {
        return None;
    };
    if proto::by_name(proto_word) != Some(protocol) {
        return None;
    }
    let (from, to, ports) = destination_ports(&toks, protocol)?;
    let keep = ports.subtract(excess);
    if keep.is_empty() {
        return None;
    }
    let (before, after) = (line.get(..from)?, line.get(to..)?);
    let lines: Vec<String> = ranges_of(&keep)
        .into_iter()
        .map(|(lo, hi)| format!("{before}{}{after}", operator(lo, hi)))
        .collect();
    Some((vec![edit(file, start, end, lines.join("\n"))], keep))
}

/// Deletes the `access-list` entry at `at`.
pub fn remove(text: &str, file: FileId, at: Span) -> Option<Vec<Edit>> {
    let (start, end, next) = line_at(text, at.start as usize);
    let line = text.get(start..end)?;
    (tokens(line).first().map(|t| t.1) == Some("access-list"))
        .then(|| vec![edit(file, start, next, "")])
}

#[cfg(test)]
mod tests {
    use super::super::apply;
    use super::*;

    const TEXT: &str = "interface G1\n nameif outside\n security-level 0\n!\naccess-list dmz_in remark x\naccess-list dmz_in extended deny tcp object A object B eq ldap\naccess-list dmz_in extended permit tcp object A object B range 1024 65535 log\naccess-group dmz_in in interface dmz\n";

    fn span_at(needle: &str) -> Span {
        let o = TEXT.find(needle).expect("in text");
        Span::new(FileId(0), o, o)
    }

    fn permit() -> Permit {
        Permit {
            protocol: proto::TCP,
            ports: vec![(389, 389), (3268, 3269)],
            src: Some(Net {
                addr: "192.168.10.5".parse().expect("literal"),
                len: 32,
            }),
            dst: Some(Net {
                addr: "10.0.0.0".parse().expect("literal"),
                len: 24,
            }),
            in_iface: Some("dmz".into()),
            out_iface: Some("inside".into()),
            why: String::new(),
        }
    }

    #[test]
    fn inserts_before_a_deny_and_after_the_last_entry() {
        let (edits, _) = insert_permit(
            TEXT,
            FileId(0),
            span_at("access-list dmz_in extended deny"),
            &permit(),
        )
        .expect("placed");
        let out = apply(TEXT, &edits).expect("applies");
        assert!(out.contains("remark x\naccess-list dmz_in extended permit tcp host 192.168.10.5 10.0.0.0 255.255.255.0 eq 389\naccess-list dmz_in extended permit tcp host 192.168.10.5 10.0.0.0 255.255.255.0 range 3268 3269\naccess-list dmz_in extended deny"));
        let (edits, _) =
            insert_permit(TEXT, FileId(0), span_at("access-group"), &permit()).expect("placed");
        let out = apply(TEXT, &edits).expect("applies");
        assert!(out.contains("log\naccess-list dmz_in extended permit tcp host"));
    }

    #[test]
    fn security_levels_have_no_safe_fix() {
        let err = insert_permit(TEXT, FileId(0), span_at(" security-level 0"), &permit())
            .expect_err("no ACL");
        assert!(err.contains("security level"));
    }

    #[test]
    fn narrows_the_destination_operator() {
        let at = span_at("access-list dmz_in extended permit tcp");
        let excess = IntervalSet::from_ranges([(1024, 1025), (1027, 3267), (3269, 65_535)]);
        let (edits, _) = narrow(TEXT, FileId(0), at, proto::TCP, &excess).expect("narrowed");
        let out = apply(TEXT, &edits).expect("applies");
        assert!(out.contains("object B eq 1026 log\naccess-list dmz_in extended permit tcp object A object B eq 3268 log\n"));
        assert!(
            narrow(
                TEXT,
                FileId(0),
                at,
                proto::TCP,
                &IntervalSet::range(1024, 65_535)
            )
            .is_none()
        );
        let src_op = "access-list a extended permit tcp any eq 80 host 10.0.0.1\n";
        let at = Span::new(FileId(0), 0, 0);
        assert!(narrow(src_op, FileId(0), at, proto::TCP, &IntervalSet::single(80)).is_none());
    }

    #[test]
    fn named_ports_resolve_with_cisco_values() {
        let toks = tokens("access-list a extended permit tcp any any eq www");
        let (_, _, set) = destination_ports(&toks, proto::TCP).expect("operator");
        assert!(set.contains(80));
    }
}
