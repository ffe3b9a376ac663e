//! Fix edits in iptables-save text: a permit line inserted before the deny (rule order
//! in a chain is line order, so an insert is a line insert), a port option narrowed, a
//! rule line deleted.
//!
//! Called by `fix::suggest`; works on the line text with token offsets, so the edits
//! keep the rest of the line as the user wrote it.

use super::{Permit, Placement, edit, line_at, lines_in, port_set, ranges_of, tokens};
use crate::graph::IntervalSet;
use crate::graph::sets::{PORT_MAX, proto};
use crate::parse::iptables::is_counters;
use crate::report::finding::Edit;
use crate::source::{FileId, Span};

/// `multiport` takes at most 15 ports, a range counting as two (iptables-extensions(8)).
const MULTIPORT_SLOTS: usize = 15;

/// Edits that insert `p` where it decides before the deny at `at`: before an `-A` line,
/// or at the end of the chain whose policy line `at` is.
pub fn insert_permit(text: &str, file: FileId, at: Span, p: &Permit) -> Result<Placement, String> {
    let (start, end, _) = line_at(text, at.start as usize);
    let line = text.get(start..end).unwrap_or("");
    let (toks, counted) = rule_tokens(line);
    let words: Vec<&str> = toks.iter().map(|(_, w)| *w).collect();
    match words.as_slice() {
        ["-A", chain, ..] => Ok((
            vec![edit(file, start, start, rule_lines(chain, p, counted))],
            "before the rule that blocks it".into(),
        )),
        [policy, ..] if policy.starts_with(':') => {
            let chain = policy.trim_start_matches(':');
            let (at, counted) =
                end_of_chain(text, start, chain).ok_or("the table has no COMMIT line")?;
            Ok((
                vec![edit(file, at, at, rule_lines(chain, p, counted))],
                format!("at the end of chain `{chain}`, before its policy decides"),
            ))
        }
        _ => Err("mislint cannot tell which chain this line belongs to".into()),
    }
}

/// A line's tokens without the `[packets:bytes]` counters `iptables-save -c` writes
/// ahead of each rule, and whether it had them: the rule itself starts after them.
fn rule_tokens(line: &str) -> (Vec<(usize, &str)>, bool) {
    let mut toks = tokens(line);
    let counted = toks.first().is_some_and(|(_, w)| is_counters(w));
    if counted {
        toks.remove(0);
    }
    (toks, counted)
}

/// Where a line appended to `chain` goes — after its last `-A` line in the table that
/// holds the policy line at `policy`, or before the table's COMMIT — and whether the
/// chain's rules carry counters, so the new line can match them.
fn end_of_chain(text: &str, policy: usize, chain: &str) -> Option<(usize, bool)> {
    let mut last = None;
    for (s, e, next) in lines_in(text, policy, text.len()) {
        let line = text.get(s..e).unwrap_or("").trim();
        if line == "COMMIT" {
            return Some(last.unwrap_or((s, false)));
        }
        let (t, counted) = rule_tokens(line);
        if matches!(t.as_slice(), [(_, "-A"), (_, c), ..] if *c == chain) {
            last = Some((next, counted));
        }
    }
    None
}

/// The `-A` lines of a permit: one, or more when multiport cannot hold all ports; with
/// zeroed counters in front when the rules around them have counters.
fn rule_lines(chain: &str, p: &Permit, counted: bool) -> String {
    let lead = if counted { "[0:0] " } else { "" };
    let mut head = format!("{lead}-A {chain}");
    if let Some(n) = p.src {
        head.push_str(&format!(" -s {}", n.cidr()));
    }
    if let Some(n) = p.dst {
        head.push_str(&format!(" -d {}", n.cidr()));
    }
    if let Some(i) = &p.in_iface {
        head.push_str(&format!(" -i {i}"));
    }
    if let Some(o) = &p.out_iface {
        head.push_str(&format!(" -o {o}"));
    }
    let name = proto::name(p.protocol).map_or_else(|| p.protocol.to_string(), str::to_string);
    head.push_str(&format!(" -p {name}"));
    let tail = format!(" -m comment --comment \"{}\" -j ACCEPT\n", p.why);
    let full = p.ports.is_empty() || p.ports == [(0, PORT_MAX as u16)];
    if full {
        return format!("{head}{tail}");
    }
    port_matches(p.protocol, &p.ports)
        .into_iter()
        .map(|m| format!("{head} {m}{tail}"))
        .collect()
}

/// `-m tcp --dport 389` for one range of tcp or udp, else `-m multiport --dports …`
/// options, as many as the 15-slot limit needs.
fn port_matches(protocol: u8, ports: &[(u16, u16)]) -> Vec<String> {
    if let [(lo, hi)] = ports
        && matches!(protocol, proto::TCP | proto::UDP)
    {
        let name = proto::name(protocol).unwrap_or("tcp");
        return vec![format!("-m {name} --dport {}", range(*lo, *hi))];
    }
    multiport_chunks(ports)
        .into_iter()
        .map(|list| format!("-m multiport --dports {list}"))
        .collect()
}

/// Port lists of at most 15 slots each.
fn multiport_chunks(ports: &[(u16, u16)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut slots = 0;
    for &(lo, hi) in ports {
        let need = if lo == hi { 1 } else { 2 };
        if slots + need > MULTIPORT_SLOTS {
            out.push(cur.join(","));
            cur.clear();
            slots = 0;
        }
        cur.push(range(lo, hi));
        slots += need;
    }
    if !cur.is_empty() {
        out.push(cur.join(","));
    }
    out
}

fn range(lo: u16, hi: u16) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}:{hi}")
    }
}

/// Parses `80`, `1024:65535`, `:1023`, `1024:`, and comma lists of them.
fn parse_ports(value: &str) -> Option<IntervalSet> {
    let mut set = IntervalSet::empty();
    for part in value.split(',') {
        let (lo, hi) = match part.split_once(':') {
            Some((lo, hi)) => (
                if lo.is_empty() { 0 } else { lo.parse().ok()? },
                if hi.is_empty() {
                    PORT_MAX as u16
                } else {
                    hi.parse().ok()?
                },
            ),
            None => {
                let v: u16 = part.parse().ok()?;
                (v, v)
            }
        };
        if lo > hi {
            return None;
        }
        set = set.union(&IntervalSet::range(u128::from(lo), u128::from(hi)));
    }
    Some(set)
}

/// Edits that drop `excess` from the destination ports of the rule at `at`, with the
/// ports it keeps; `None` if nothing is kept or the line cannot say it.
pub fn narrow(
    text: &str,
    file: FileId,
    at: Span,
    protocol: u8,
    excess: &IntervalSet,
) -> Option<(Vec<Edit>, IntervalSet)> {
    let (start, end, _) = line_at(text, at.start as usize);
    let line = text.get(start..end)?;
    let (toks, _) = rule_tokens(line);
    if toks.first().map(|t| t.1) != Some("-A") {
        return None;
    }
    let proto_ok = toks.windows(2).any(|w| {
        matches!(w[0].1, "-p" | "--protocol")
            && (proto::by_name(w[1].1) == Some(protocol) || w[1].1.parse() == Ok(protocol))
    });
    if !proto_ok {
        return None;
    }
    let opts: Vec<usize> = toks
        .iter()
        .enumerate()
        .filter(|(_, (_, w))| {
            matches!(
                *w,
                "--dport" | "--destination-port" | "--dports" | "--destination-ports"
            )
        })
        .map(|(i, _)| i)
        .collect();
    let [i] = opts.as_slice() else {
        return None;
    };
    let i = *i;
    if i > 0 && toks.get(i - 1).map(|t| t.1) == Some("!") {
        return None;
    }
    let (opt_at, opt) = *toks.get(i)?;
    let (val_at, value) = *toks.get(i + 1)?;
    let keep = parse_ports(value)?.subtract(excess);
    if keep.is_empty() {
        return None;
    }
    let ranges = ranges_of(&keep);
    let single = opt.starts_with("--dport") || opt == "--destination-port";
    let replacement = if single && ranges.len() == 1 {
        let (lo, hi) = ranges.first().copied()?;
        format!("{opt} {}", range(lo, hi))
    } else {
        let chunks = multiport_chunks(&ranges);
        let [list] = chunks.as_slice() else {
            return None;
        };
        if single {
            format!("-m multiport --dports {list}")
        } else {
            format!("{opt} {list}")
        }
    };
    let from = start + opt_at;
    let to = start + val_at + value.len();
    debug_assert_eq!(port_set(&ranges), keep);
    Some((vec![edit(file, from, to, replacement)], keep))
}

/// Deletes the `-A` line at `at`, counters and all.
pub fn remove(text: &str, file: FileId, at: Span) -> Option<Vec<Edit>> {
    let (start, end, next) = line_at(text, at.start as usize);
    let line = text.get(start..end)?;
    let (toks, _) = rule_tokens(line);
    (toks.first().map(|t| t.1) == Some("-A")).then(|| vec![edit(file, start, next, "")])
}

#[cfg(test)]
mod tests {
    use super::super::{Net, apply};
    use super::*;

    const TEXT: &str = "*filter\n:FORWARD DROP [0:0]\n:X - [0:0]\n-A FORWARD -j X\n-A X -p tcp -m tcp --dport 389 -j REJECT\n-A X -p tcp -m tcp --dport 1024:65535 -m comment --comment \"rpc\" -j ACCEPT\nCOMMIT\n";

    fn permit() -> Permit {
        Permit {
            protocol: proto::TCP,
            ports: vec![(389, 389)],
            src: Some(Net {
                addr: "192.168.10.5".parse().expect("literal"),
                len: 32,
            }),
            dst: None,
            in_iface: Some("eth1".into()),
            out_iface: Some("eth2".into()),
            why: "KB 294297 ldap, suggested by mislint".into(),
        }
    }

    fn span(offset: usize) -> Span {
        Span::new(FileId(0), offset, offset)
    }

    #[test]
    fn inserts_before_the_deny_line() {
        let at = TEXT
            .find("-A X -p tcp -m tcp --dport 389")
            .expect("in text");
        let (edits, _) = insert_permit(TEXT, FileId(0), span(at), &permit()).expect("placed");
        let out = apply(TEXT, &edits).expect("applies");
        assert!(out.contains(
            "-A FORWARD -j X\n-A X -s 192.168.10.5/32 -i eth1 -o eth2 -p tcp -m tcp --dport 389 -m comment --comment \"KB 294297 ldap, suggested by mislint\" -j ACCEPT\n-A X -p tcp -m tcp --dport 389 -j REJECT\n"
        ));
    }

    #[test]
    fn appends_to_the_chain_of_a_policy_line() {
        let at = TEXT.find(":FORWARD").expect("in text");
        let (edits, place) = insert_permit(TEXT, FileId(0), span(at), &permit()).expect("placed");
        assert!(place.contains("FORWARD"));
        let out = apply(TEXT, &edits).expect("applies");
        assert!(out.contains("-A FORWARD -j X\n-A FORWARD -s 192.168.10.5/32"));
    }

    #[test]
    fn narrows_a_port_range_to_what_is_kept() {
        let at = TEXT
            .find("-A X -p tcp -m tcp --dport 1024")
            .expect("in text");
        let excess = IntervalSet::from_ranges([(1024, 1025), (1027, 3267), (3269, 65_535)]);
        let (edits, keep) =
            narrow(TEXT, FileId(0), span(at), proto::TCP, &excess).expect("narrowed");
        assert_eq!(keep.count(), 2);
        let out = apply(TEXT, &edits).expect("applies");
        assert!(out.contains("-A X -p tcp -m tcp -m multiport --dports 1026,3268 -m comment"));
        let one = IntervalSet::from_ranges([(1024, 1025), (1027, 65_535)]);
        let (edits, _) = narrow(TEXT, FileId(0), span(at), proto::TCP, &one).expect("narrowed");
        assert!(
            apply(TEXT, &edits)
                .expect("applies")
                .contains("--dport 1026 -m comment")
        );
        let all = IntervalSet::range(1024, 65_535);
        assert!(narrow(TEXT, FileId(0), span(at), proto::TCP, &all).is_none());
        assert!(narrow(TEXT, FileId(0), span(at), proto::UDP, &one).is_none());
    }

    #[test]
    fn removes_only_rule_lines() {
        let at = TEXT
            .find("-A X -p tcp -m tcp --dport 1024")
            .expect("in text");
        let edits = remove(TEXT, FileId(0), span(at)).expect("a rule line");
        assert!(!apply(TEXT, &edits).expect("applies").contains("1024"));
        assert!(remove(TEXT, FileId(0), span(TEXT.find(":X").expect("in text"))).is_none());
    }

    /// `TEXT` as `iptables-save -c` writes it: counters ahead of every rule.
    fn counted_text() -> String {
        TEXT.replace("\n-A ", "\n[7:420] -A ")
    }

    #[test]
    fn rules_with_counters_are_edited_like_the_others() {
        let text = counted_text();
        let deny = text
            .find("[7:420] -A X -p tcp -m tcp --dport 389")
            .expect("in text");
        let (edits, _) = insert_permit(&text, FileId(0), span(deny), &permit()).expect("placed");
        let out = apply(&text, &edits).expect("applies");
        assert!(out.contains(
            "\n[0:0] -A X -s 192.168.10.5/32 -i eth1 -o eth2 -p tcp -m tcp --dport 389 -m comment"
        ));
        assert!(out.contains(
            "suggested by mislint\" -j ACCEPT\n[7:420] -A X -p tcp -m tcp --dport 389 -j REJECT"
        ));

        let policy = text.find(":FORWARD").expect("in text");
        let (edits, _) = insert_permit(&text, FileId(0), span(policy), &permit()).expect("placed");
        let out = apply(&text, &edits).expect("applies");
        assert!(out.contains("[7:420] -A FORWARD -j X\n[0:0] -A FORWARD -s 192.168.10.5/32"));

        let rpc = text
            .find("[7:420] -A X -p tcp -m tcp --dport 1024")
            .expect("in text");
        let excess = IntervalSet::from_ranges([(1024, 1025), (1027, 65_535)]);
        let (edits, _) =
            narrow(&text, FileId(0), span(rpc), proto::TCP, &excess).expect("narrowed");
        assert!(
            apply(&text, &edits)
                .expect("applies")
                .contains("[7:420] -A X -p tcp -m tcp --dport 1026 -m comment")
        );
        let edits = remove(&text, FileId(0), span(rpc)).expect("a rule line");
        let out = apply(&text, &edits).expect("applies");
        assert!(!out.contains("1024") && out.contains("--dport 389 -j REJECT\nCOMMIT"));
    }

    #[test]
    fn only_digit_pairs_in_brackets_are_counters() {
        assert!(is_counters("[0:0]") && is_counters("[12:3456]"));
        for w in ["[:]", "[1:]", "[a:1]", "[1:2", "1:2]", "-A"] {
            assert!(!is_counters(w), "{w}");
        }
    }

    #[test]
    fn splits_long_port_lists() {
        let ports: Vec<(u16, u16)> = (1..=20).map(|p| (p * 10, p * 10)).collect();
        assert_eq!(port_matches(proto::TCP, &ports).len(), 2);
    }
}
