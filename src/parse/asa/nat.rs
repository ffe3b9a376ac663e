//! Static NAT as destination rewrites: how traffic from the public side to a mapped
//! address reaches its real host.
//!
//! Object NAT (8.3+), `object network WEB` / `host 192.168.10.5` /
//! `nat (dmz,outside) static 203.0.113.5 [service tcp 80 8080]`: a packet entering
//! `outside` for 203.0.113.5 is untranslated to 192.168.10.5 *before* the access-lists
//! see it, which is why 8.3+ access-lists name real addresses. Pre-8.3
//! `static (dmz,outside) [tcp] MAPPED [PORT] REAL [PORT] [netmask M]` is checked
//! against the access-list first, on the mapped address, and untranslated after. Both
//! become `Action::Dnat` rules (the graph's rewrite); a subnet mapped onto a subnet is
//! kept as "one of the real addresses", which over-approximates address by address.
//! Dynamic NAT and PAT only rewrite sources, which no check looks at; twice NAT with a
//! `destination static` part is reported as not modelled.

use super::ast::{Nat, NatForm};
use super::ports::{ProtoName, port_by_name, protocol_by_name};
use crate::graph::sets::addr;
use crate::graph::{
    Action, Cond, CondKind, IfaceMatch, IfacePattern, IntervalSet, NatTarget, Rule,
};
use crate::parse::UNKNOWN_SYNTAX;
use crate::report::finding::{Finding, Severity};
use std::net::IpAddr;

/// What the NAT lines lower to.
#[derive(Debug, Default)]
pub struct NatRules {
    /// 8.3+ object NAT: untranslate before the access-lists.
    pub before_acl: Vec<Rule>,
    /// Pre-8.3 `static`: untranslate after the access-lists.
    pub after_acl: Vec<Rule>,
}

/// Lowers every static NAT. `object` resolves a network object to its addresses,
/// `own` an interface to its own address (for `static interface`).
pub fn lower_nats(
    nats: &[Nat<'_>],
    mut object: impl FnMut(&str) -> Option<IntervalSet>,
    own: impl Fn(&str) -> Option<IntervalSet>,
    findings: &mut Vec<Finding>,
) -> NatRules {
    let mut out = NatRules::default();
    let mut unmodelled = None;
    for nat in nats.iter().filter(|n| n.is_static) {
        let lowered = match nat.form {
            NatForm::Object => object_nat(nat, &mut object, &own),
            NatForm::LegacyStatic => legacy_static(nat, &own),
            NatForm::Twice => None,
        };
        match (lowered, nat.form) {
            (Some(rule), NatForm::LegacyStatic) => out.after_acl.push(rule),
            (Some(rule), _) => out.before_acl.push(rule),
            (None, _) => unmodelled = unmodelled.or(Some(nat.span)),
        }
    }
    if let Some(span) = unmodelled {
        findings.push(
            Finding::new(
                UNKNOWN_SYNTAX,
                Severity::Note,
                span,
                "this static NAT is not modelled (twice NAT, or a form mislint cannot read): traffic to its mapped addresses is checked as if untranslated",
            )
            .with_label("not modelled"),
        );
    }
    out
}

/// `nat (real,mapped) static MAPPED [dns] [service tcp|udp REAL MAPPED]` in an object.
fn object_nat(
    nat: &Nat<'_>,
    object: &mut impl FnMut(&str) -> Option<IntervalSet>,
    own: &impl Fn(&str) -> Option<IntervalSet>,
) -> Option<Rule> {
    let real = object(nat.object?)?;
    let mut words = nat.rest.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("static") {
        return None;
    }
    let mapped_word = words.next()?;
    let mapped = if mapped_word.eq_ignore_ascii_case("interface") {
        own(nat.mapped_if?)?
    } else {
        address(mapped_word).or_else(|| object(mapped_word))?
    };
    let mut service = None;
    while let Some(w) = words.next() {
        if w.eq_ignore_ascii_case("service") {
            let proto = match protocol_by_name(words.next()?)? {
                ProtoName::Num(p) => p,
                ProtoName::Any => return None,
            };
            let real_port = port(words.next()?, proto)?;
            let mapped_port = port(words.next()?, proto)?;
            service = Some((proto, real_port, mapped_port));
        }
    }
    Some(rewrite_rule(nat, mapped, real, service))
}

/// Pre-8.3 `static (real,mapped) [tcp|udp] MAPPED [MPORT] REAL [RPORT] [netmask M] …`.
fn legacy_static(nat: &Nat<'_>, own: &impl Fn(&str) -> Option<IntervalSet>) -> Option<Rule> {
    let words: Vec<&str> = nat.rest.split_whitespace().collect();
    let (proto, rest) = match words.first().map(|w| w.to_ascii_lowercase()) {
        Some(p) if p == "tcp" || p == "udp" => (Some(if p == "tcp" { 6 } else { 17 }), &words[1..]),
        _ => (None, &words[..]),
    };
    let endpoint = |w: &str| -> Option<IntervalSet> {
        if w.eq_ignore_ascii_case("interface") {
            own(nat.mapped_if?)
        } else {
            address(w)
        }
    };
    let (mapped, real, service) = match proto {
        Some(p) => {
            let mapped = endpoint(rest.first()?)?;
            let mport = port(rest.get(1)?, p)?;
            let real = address(rest.get(2)?)?;
            let rport = port(rest.get(3)?, p)?;
            (mapped, real, Some((p, rport, mport)))
        }
        None => (endpoint(rest.first()?)?, address(rest.get(1)?)?, None),
    };
    let mask = rest
        .iter()
        .position(|w| w.eq_ignore_ascii_case("netmask"))
        .and_then(|i| rest.get(i + 1))
        .and_then(|m| m.parse().ok())
        .and_then(addr::v4_mask_len);
    let widen = |set: IntervalSet| match (mask, set.first().map(addr::to_ip)) {
        (Some(len), Some(ip)) if len < 32 => addr::cidr(ip, len).unwrap_or(set),
        _ => set,
    };
    Some(rewrite_rule(nat, widen(mapped), widen(real), service))
}

/// Packets entering the mapped interface for the mapped address (and port) go to the
/// real address (and port).
fn rewrite_rule(
    nat: &Nat<'_>,
    mapped: IntervalSet,
    real: IntervalSet,
    service: Option<(u8, u16, u16)>,
) -> Rule {
    let mut conds = Vec::new();
    if let Some(iface) = nat.mapped_if.filter(|i| !i.eq_ignore_ascii_case("any")) {
        conds.push(Cond {
            kind: CondKind::InIface(IfaceMatch {
                patterns: vec![IfacePattern {
                    name: iface.to_string(),
                    prefix: false,
                }],
                negated: false,
            }),
            span: nat.span,
        });
    }
    conds.push(Cond {
        kind: CondKind::DstAddr(mapped),
        span: nat.span,
    });
    let mut ports = None;
    if let Some((proto, real_port, mapped_port)) = service {
        conds.push(Cond {
            kind: CondKind::Protocol(IntervalSet::single(u128::from(proto))),
            span: nat.span,
        });
        conds.push(Cond {
            kind: CondKind::DstPort(IntervalSet::single(u128::from(mapped_port))),
            span: nat.span,
        });
        ports = Some(IntervalSet::single(u128::from(real_port)));
    }
    Rule {
        conds,
        action: Action::dnat(NatTarget {
            addrs: Some(real),
            ports,
        }),
        span: nat.span,
        action_span: nat.span,
        comment: None,
    }
}

fn address(word: &str) -> Option<IntervalSet> {
    let ip: IpAddr = word.parse().ok()?;
    Some(IntervalSet::single(addr::ip(ip)))
}

fn port(word: &str, proto: u8) -> Option<u16> {
    if let Ok(n) = word.parse() {
        return Some(n);
    }
    // A literal counts only for the transports Cisco's table gives it.
    port_by_name(word)
        .filter(|p| p.proto.allows(proto))
        .map(|p| p.port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileId, Span};

    fn nat<'a>(
        form: NatForm,
        object: Option<&'a str>,
        ifs: (&'a str, &'a str),
        rest: &'a str,
    ) -> Nat<'a> {
        Nat {
            form,
            object,
            rest,
            real_if: Some(ifs.0),
            mapped_if: Some(ifs.1),
            is_static: true,
            span: Span::new(FileId(0), 0, 1),
        }
    }

    fn one(a: &str) -> IntervalSet {
        address(a).expect("literal")
    }

    #[test]
    fn object_static_nat_with_service() {
        let n = nat(
            NatForm::Object,
            Some("WEB"),
            ("dmz", "outside"),
            "static 203.0.113.5 service tcp www 8080",
        );
        let mut findings = Vec::new();
        let r = lower_nats(&[n], |_| Some(one("192.168.10.5")), |_| None, &mut findings);
        assert!(findings.is_empty());
        let rule = &r.before_acl[0];
        assert_eq!(
            rule.action,
            Action::dnat(NatTarget {
                addrs: Some(one("192.168.10.5")),
                ports: Some(IntervalSet::single(80)),
            })
        );
        assert!(
            rule.conds
                .iter()
                .any(|c| c.kind == CondKind::DstAddr(one("203.0.113.5")))
        );
        assert!(
            rule.conds
                .iter()
                .any(|c| c.kind == CondKind::DstPort(IntervalSet::single(8080)))
        );
    }

    #[test]
    fn static_interface_uses_the_mapped_interface_address() {
        let n = nat(
            NatForm::Object,
            Some("WEB"),
            ("dmz", "outside"),
            "static interface",
        );
        let mut f = Vec::new();
        let r = lower_nats(
            &[n],
            |_| Some(one("192.168.10.5")),
            |i| (i == "outside").then(|| one("203.0.113.1")),
            &mut f,
        );
        assert!(
            r.before_acl[0]
                .conds
                .iter()
                .any(|c| c.kind == CondKind::DstAddr(one("203.0.113.1")))
        );
    }

    #[test]
    fn legacy_static_comes_after_the_acl() {
        let n = nat(
            NatForm::LegacyStatic,
            None,
            ("dmz", "outside"),
            "tcp 203.0.113.5 www 192.168.10.5 www netmask 255.255.255.255",
        );
        let mut f = Vec::new();
        let r = lower_nats(&[n], |_| None, |_| None, &mut f);
        assert!(r.before_acl.is_empty());
        assert_eq!(r.after_acl.len(), 1);
        let n = nat(
            NatForm::LegacyStatic,
            None,
            ("inside", "outside"),
            "203.0.113.0 10.0.0.0 netmask 255.255.255.0",
        );
        let r = lower_nats(&[n], |_| None, |_| None, &mut f);
        assert!(
            matches!(&r.after_acl[0].action, Action::Dnat(t) if t.addrs.as_ref().map(IntervalSet::count) == Some(256))
        );
    }

    #[test]
    fn twice_nat_is_noted_not_applied() {
        let n = nat(
            NatForm::Twice,
            None,
            ("inside", "outside"),
            "source static A B destination static C D",
        );
        let mut f = Vec::new();
        let r = lower_nats(&[n], |_| None, |_| None, &mut f);
        assert!(r.before_acl.is_empty() && r.after_acl.is_empty());
        assert_eq!(f.len(), 1);
    }
}
