//! Value sets of one packet field: sorted, disjoint, inclusive intervals over `u128`.
//!
//! Every field the rule graph talks about — IP protocol, ports, addresses, conntrack
//! states, interface indices — is a set of integers, and what rules write are ranges
//! (CIDRs, `a:b`, `range a b`, `lt`/`gt`). One representation for all of them keeps
//! negation (`!`, `neq`, `<not/>`) exact: it is a complement within the field's universe.
//! Addresses use `u128`: IPv6 as is, IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`).

mod narrow;

pub use narrow::NarrowSet;
use smallvec::SmallVec;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// A set of integers as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct IntervalSet {
    ranges: Ranges,
}

/// The ranges of a set. Most sets are one range (a port, a CIDR, "any"): that one is held
/// inline, so a packet cube of eight fields usually costs no allocation at all. Sets of
/// many ranges (an object-group, "every source but these 150 hosts") are immutable and
/// shared: the analysis copies a piece's fields at every split, and most of them come
/// out unchanged, so a copy is a reference count, not a copy of kilobytes of ranges.
#[derive(Clone, Default)]
enum Ranges {
    #[default]
    Empty,
    One((u128, u128)),
    Many(Arc<[(u128, u128)]>),
}

impl Ranges {
    fn as_slice(&self) -> &[(u128, u128)] {
        match self {
            Ranges::Empty => &[],
            Ranges::One(r) => std::slice::from_ref(r),
            Ranges::Many(rs) => rs,
        }
    }

    /// Holds `built`, sharing `a`'s or `b`'s ranges when it equals one of them: the
    /// result of an intersection or difference is often one of its operands.
    fn built(built: &[(u128, u128)], a: &IntervalSet, b: &IntervalSet) -> Ranges {
        match built {
            [_, _, ..] if built == a.ranges() => a.ranges.clone(),
            [_, _, ..] if built == b.ranges() => b.ranges.clone(),
            _ => Ranges::from_slice(built),
        }
    }

    /// The ranges of `ranges`, `len` of them, canonical already: several are written once,
    /// straight into their shared slice.
    fn collected(len: usize, mut ranges: impl Iterator<Item = (u128, u128)>) -> Ranges {
        match len {
            0 => Ranges::Empty,
            1 => ranges.next().map_or(Ranges::Empty, Ranges::One),
            _ => Ranges::Many(ranges.collect()),
        }
    }

    fn from_slice(built: &[(u128, u128)]) -> Ranges {
        match built {
            [] => Ranges::Empty,
            [r] => Ranges::One(*r),
            _ => Ranges::Many(Arc::from(built)),
        }
    }
}

/// True if `one` is a single range that holds every value of `set`.
fn holds_all(one: &IntervalSet, set: &IntervalSet) -> bool {
    match (&one.ranges, set.bounds()) {
        (Ranges::One((lo, hi)), Some((first, last))) => *lo <= first && last <= *hi,
        _ => false,
    }
}

impl PartialEq for Ranges {
    fn eq(&self, other: &Ranges) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Ranges {}

impl std::hash::Hash for Ranges {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_slice().hash(h);
    }
}

impl PartialOrd for Ranges {
    fn partial_cmp(&self, other: &Ranges) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranges {
    fn cmp(&self, other: &Ranges) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

/// Scratch space for building a set: the few ranges of most results stay on the stack.
type Buf = SmallVec<[(u128, u128); 8]>;

/// Appends `r` to sorted ranges, joining it to the last one if they overlap or touch.
fn push_joined(out: &mut Buf, r: (u128, u128)) {
    match out.last_mut() {
        Some(last) if r.0 <= last.1.saturating_add(1) => last.1 = last.1.max(r.1),
        _ => out.push(r),
    }
}

// One inline range and a tag: a set is no bigger than the range it usually holds plus a
// word.
const _: () = assert!(std::mem::size_of::<IntervalSet>() == 48);

impl fmt::Debug for IntervalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.ranges().iter().map(|(lo, hi)| lo..=hi))
            .finish()
    }
}

impl IntervalSet {
    /// The empty set.
    pub fn empty() -> IntervalSet {
        IntervalSet {
            ranges: Ranges::Empty,
        }
    }

    /// All values `lo..=hi`; empty if `lo > hi`.
    pub fn range(lo: u128, hi: u128) -> IntervalSet {
        if lo > hi {
            return IntervalSet::empty();
        }
        IntervalSet {
            ranges: Ranges::One((lo, hi)),
        }
    }

    /// One value.
    pub fn single(v: u128) -> IntervalSet {
        IntervalSet::range(v, v)
    }

    /// The union of arbitrary (possibly overlapping, unsorted) ranges.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u128, u128)>) -> IntervalSet {
        let mut v: Buf = ranges.into_iter().filter(|(lo, hi)| lo <= hi).collect();
        v.sort_unstable();
        let mut out = Buf::with_capacity(v.len());
        for r in v {
            push_joined(&mut out, r);
        }
        IntervalSet {
            ranges: Ranges::from_slice(&out),
        }
    }

    /// The ranges, sorted and disjoint.
    pub fn ranges(&self) -> &[(u128, u128)] {
        self.ranges.as_slice()
    }

    /// True if no value is in the set.
    pub fn is_empty(&self) -> bool {
        matches!(self.ranges, Ranges::Empty)
    }

    /// The smallest value.
    pub fn first(&self) -> Option<u128> {
        self.ranges().first().map(|r| r.0)
    }

    /// The smallest and the largest value.
    pub fn bounds(&self) -> Option<(u128, u128)> {
        let ranges = self.ranges();
        Some((ranges.first()?.0, ranges.last()?.1))
    }

    /// Number of values, saturating at `u128::MAX`.
    pub fn count(&self) -> u128 {
        self.ranges().iter().fold(0u128, |acc, (lo, hi)| {
            acc.saturating_add(hi - lo).saturating_add(1)
        })
    }

    /// True if `v` is in the set.
    pub fn contains(&self, v: u128) -> bool {
        sweep::contains(self.ranges(), v)
    }

    /// Values in either set.
    pub fn union(&self, other: &IntervalSet) -> IntervalSet {
        let out = sweep::union(self.ranges(), other.ranges());
        IntervalSet {
            ranges: Ranges::built(&out, self, other),
        }
    }

    /// Values in any of the sets: one sort for all of them, where folding `union` over
    /// thousands of sets sorts the growing result each time.
    pub fn union_all<'a>(sets: impl IntoIterator<Item = &'a IntervalSet>) -> IntervalSet {
        IntervalSet::from_ranges(sets.into_iter().flat_map(|s| s.ranges().iter().copied()))
    }

    /// Values in both sets.
    pub fn intersect(&self, other: &IntervalSet) -> IntervalSet {
        if let (Ranges::One(a), Ranges::One(b)) = (&self.ranges, &other.ranges) {
            // Most fields of most pieces and rules are one range: no merge pass.
            return IntervalSet::range(a.0.max(b.0), a.1.min(b.1));
        }
        // One range that holds all of the other set (a cube's field that is still
        // "any" meeting an object-group): the other set, shared, with no merge pass.
        if holds_all(self, other) {
            return other.clone();
        }
        if holds_all(other, self) {
            return self.clone();
        }
        let (len, ranges) = match (&self.ranges, &other.ranges) {
            (_, Ranges::One(r)) => sweep::within_range(self.ranges(), *r),
            (Ranges::One(r), _) => sweep::within_range(other.ranges(), *r),
            _ => {
                let out = sweep::intersect(self.ranges(), other.ranges());
                return IntervalSet {
                    ranges: Ranges::built(&out, self, other),
                };
            }
        };
        IntervalSet {
            ranges: Ranges::collected(len, ranges),
        }
    }

    /// True if the sets share a value; cheaper than `intersect` because it stops early.
    pub fn intersects(&self, other: &IntervalSet) -> bool {
        sweep::intersects(self.ranges(), other.ranges())
    }

    /// True if every value of `self` is in `other`.
    pub fn is_subset(&self, other: &IntervalSet) -> bool {
        sweep::is_subset(self.ranges(), other.ranges())
    }

    /// Values in `self` but not in `other`.
    pub fn subtract(&self, other: &IntervalSet) -> IntervalSet {
        if let Ranges::One(r) = other.ranges {
            return match sweep::without_range(self.ranges(), r) {
                Some((len, ranges)) => IntervalSet {
                    ranges: Ranges::collected(len, ranges),
                },
                None => self.clone(),
            };
        }
        let out = sweep::subtract(self.ranges(), other.ranges());
        IntervalSet {
            ranges: Ranges::built(&out, self, other),
        }
    }

    /// The values of `0..=max` not in the set.
    pub fn complement(&self, max: u128) -> IntervalSet {
        IntervalSet::range(0, max).subtract(self)
    }
}

/// The set operations as merge passes over sorted, disjoint ranges, shared by
/// [`IntervalSet`] and [`NarrowSet`], which store their ranges differently.
mod sweep {
    use super::{Buf, push_joined};

    type R = (u128, u128);

    /// True if a range holds `v`.
    pub(super) fn contains(ranges: &[R], v: u128) -> bool {
        match ranges.binary_search_by(|&(lo, _)| lo.cmp(&v)) {
            Ok(_) => true,
            Err(0) => false,
            Err(i) => ranges.get(i - 1).is_some_and(|&(_, hi)| v <= hi),
        }
    }

    /// The ranges of either.
    pub(super) fn union(a: &[R], b: &[R]) -> Buf {
        // Both are sorted: one merge pass, no sort. Accumulating loops call this per item.
        let (mut i, mut j) = (0, 0);
        let mut out = Buf::new();
        loop {
            let next = match (a.get(i), b.get(j)) {
                (Some(&x), Some(&y)) if x <= y => {
                    i += 1;
                    x
                }
                (_, Some(&y)) => {
                    j += 1;
                    y
                }
                (Some(&x), None) => {
                    i += 1;
                    x
                }
                (None, None) => break,
            };
            push_joined(&mut out, next);
        }
        out
    }

    /// The ranges of both.
    pub(super) fn intersect(a: &[R], b: &[R]) -> Buf {
        let (mut i, mut j) = (0, 0);
        let mut out = Buf::new();
        while let (Some(&(a_lo, a_hi)), Some(&(b_lo, b_hi))) = (a.get(i), b.get(j)) {
            let lo = a_lo.max(b_lo);
            let hi = a_hi.min(b_hi);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a_hi < b_hi {
                i += 1;
            } else {
                j += 1;
            }
        }
        out
    }

    /// `a[first..end]` are the ranges of `a` that share a value with `r`.
    fn overlapping(a: &[R], (lo, hi): R) -> (usize, usize) {
        (
            a.partition_point(|&(_, a_hi)| a_hi < lo),
            a.partition_point(|&(a_lo, _)| a_lo <= hi),
        )
    }

    /// The ranges of `a` without the values of the one range `r`, and how many there are;
    /// `None` if `a` has none of them. A walk takes one rule's address or port out of a
    /// piece's set of hundreds of ranges at every step, so the ranges `r` does not reach
    /// are found by binary search and copied as they are, not merged one by one.
    pub(super) fn without_range(a: &[R], r: R) -> Option<(usize, impl Iterator<Item = R>)> {
        let (first, end) = overlapping(a, r);
        let cut = a.get(first..end).filter(|cut| !cut.is_empty())?;
        // Only the first range cut can reach below `r`, and only the last above it.
        let below = cut.first().filter(|c| c.0 < r.0).map(|c| (c.0, r.0 - 1));
        let above = cut.last().filter(|c| c.1 > r.1).map(|c| (r.1 + 1, c.1));
        let (head, tail) = (a.get(..first)?, a.get(end..)?);
        let len = head.len() + usize::from(below.is_some()) + usize::from(above.is_some());
        let ranges = head.iter().copied().chain(below).chain(above);
        Some((len + tail.len(), ranges.chain(tail.iter().copied())))
    }

    /// The ranges of `a` within the one range `r`, and how many there are: the ranges it
    /// reaches, found by binary search, the first and last of them cut to it.
    pub(super) fn within_range(a: &[R], r: R) -> (usize, impl Iterator<Item = R>) {
        let (first, end) = overlapping(a, r);
        let inside = a.get(first..end).unwrap_or(&[]);
        let cut = |c: &R| (c.0.max(r.0), c.1.min(r.1));
        let (head, middle, last) = match inside {
            [] => (None, &[][..], None),
            [only] => (Some(cut(only)), &[][..], None),
            [head, middle @ .., last] => (Some(cut(head)), middle, Some(cut(last))),
        };
        let ranges = head.into_iter().chain(middle.iter().copied()).chain(last);
        (inside.len(), ranges)
    }

    /// True if they share a value.
    pub(super) fn intersects(a: &[R], b: &[R]) -> bool {
        // A piece's set of many ranges against one rule's range, at every walk step.
        match (a, b) {
            (_, &[r]) => return within_range(a, r).0 > 0,
            (&[r], _) => return within_range(b, r).0 > 0,
            _ => {}
        }
        let (mut i, mut j) = (0, 0);
        while let (Some(&(a_lo, a_hi)), Some(&(b_lo, b_hi))) = (a.get(i), b.get(j)) {
            if a_lo.max(b_lo) <= a_hi.min(b_hi) {
                return true;
            }
            if a_hi < b_hi {
                i += 1;
            } else {
                j += 1;
            }
        }
        false
    }

    /// True if every value of `a` is in `b`.
    pub(super) fn is_subset(a: &[R], b: &[R]) -> bool {
        // The sweep of `subtract`, stopping at the first value it would keep: the walks
        // ask this of every field of a piece at every step, and building the difference
        // only to see it empty was 3 % of a run.
        match (a, b) {
            (&[first, ..], &[(lo, hi)]) => {
                return lo <= first.0 && a.last().is_some_and(|l| l.1 <= hi);
            }
            (&[r], _) => {
                // Within the first range of `b` that reaches it, or not within `b` at all.
                let (first, _) = overlapping(b, r);
                return b.get(first).is_some_and(|c| c.0 <= r.0 && r.1 <= c.1);
            }
            _ => {}
        }
        let mut j = 0;
        for &(lo, hi) in a {
            let mut cur = lo;
            loop {
                let Some(&(b_lo, b_hi)) = b.get(j) else {
                    return false;
                };
                if b_hi < cur {
                    j += 1;
                    continue;
                }
                if b_lo > cur {
                    return false;
                }
                if b_hi >= hi {
                    break;
                }
                cur = b_hi + 1;
                j += 1;
            }
        }
        true
    }

    /// The ranges of `a` without the values of `b`.
    pub(super) fn subtract(a: &[R], b: &[R]) -> Buf {
        let mut out = Buf::new();
        let mut j = 0;
        for &(lo, hi) in a {
            let mut cur = lo;
            let mut done = false;
            while let Some(&(b_lo, b_hi)) = b.get(j) {
                if b_hi < cur {
                    j += 1;
                    continue;
                }
                if b_lo > hi {
                    break;
                }
                if b_lo > cur {
                    out.push((cur, b_lo - 1));
                }
                if b_hi >= hi {
                    done = true;
                    break;
                }
                cur = b_hi + 1;
                j += 1;
            }
            if !done {
                out.push((cur, hi));
            }
        }
        out
    }
}

/// The largest IP protocol number.
pub const PROTO_MAX: u128 = 255;
/// The largest port number.
pub const PORT_MAX: u128 = 65_535;
/// The largest address (IPv6; IPv4 is mapped into it).
pub const ADDR_MAX: u128 = u128::MAX;

/// IANA protocol numbers the rest of the code names.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// DCCP.
    pub const DCCP: u8 = 33;
    /// UDP-Lite.
    pub const UDPLITE: u8 = 136;

    /// Protocols whose packets carry ports, so that a port condition means something.
    pub fn has_ports(p: u8) -> bool {
        matches!(p, TCP | UDP | SCTP | DCCP | UDPLITE)
    }

    /// The usual lowercase name, or `None` for protocols without a common one.
    pub fn name(p: u8) -> Option<&'static str> {
        Some(match p {
            0 => "ip",
            ICMP => "icmp",
            2 => "igmp",
            4 => "ipip",
            TCP => "tcp",
            UDP => "udp",
            41 => "ipv6",
            47 => "gre",
            ESP => "esp",
            AH => "ah",
            ICMPV6 => "icmpv6",
            89 => "ospf",
            103 => "pim",
            112 => "vrrp",
            SCTP => "sctp",
            DCCP => "dccp",
            UDPLITE => "udplite",
            _ => return None,
        })
    }

    /// The protocol number for a name as iptables, ASA and pfSense write it.
    pub fn by_name(name: &str) -> Option<u8> {
        Some(match name.to_ascii_lowercase().as_str() {
            "icmp" => ICMP,
            "igmp" => 2,
            "ipip" | "ipinip" | "ipencap" => 4,
            "tcp" => TCP,
            "udp" => UDP,
            "ipv6" => 41,
            "gre" => 47,
            "esp" | "ipsec-esp" => ESP,
            "ah" | "ipsec-ah" => AH,
            "icmpv6" | "ipv6-icmp" | "icmp6" => ICMPV6,
            "eigrp" => 88,
            "ospf" => 89,
            "pim" => 103,
            "vrrp" | "carp" => 112,
            "sctp" => SCTP,
            "dccp" => DCCP,
            "udplite" => UDPLITE,
            "pcp" => 108,
            "snp" => 109,
            "nos" => 94,
            "igrp" => 9,
            _ => return None,
        })
    }
}

/// Connection-tracking states as values of the state field.
///
/// conntrack gives a packet one state (NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED)
/// and, independently, says whether its connection was source- or destination-NATed —
/// the "virtual states" SNAT and DNAT that `--ctstate` also matches. One value encodes
/// both: `base * 4 + flags`, flags bit 0 = SNAT, bit 1 = DNAT. `--ctstate NEW` is then
/// the values 0–3, `--ctstate DNAT` every value with bit 1, and a destination NAT rewrite
/// sets bit 1 on the packets it rewrites.
pub mod ct {
    use super::IntervalSet;

    /// Values per base state (the NAT flag combinations).
    pub const FLAGS: u128 = 4;
    /// The SNAT flag.
    pub const SNAT_BIT: u128 = 1;
    /// The DNAT flag.
    pub const DNAT_BIT: u128 = 2;
    /// First packet of a connection, not NATed.
    pub const NEW: u128 = 0;
    /// A packet of a connection seen both ways (or a reply), not NATed.
    pub const ESTABLISHED: u128 = 4;
    /// A packet related to a known connection (ICMP errors, FTP data), not NATed.
    pub const RELATED: u128 = 8;
    /// A packet conntrack could not place.
    pub const INVALID: u128 = 12;
    /// A packet exempted from tracking (`-j CT --notrack`).
    pub const UNTRACKED: u128 = 16;
    /// Largest value.
    pub const MAX: u128 = 19;

    const BASES: [(&str, u128); 5] = [
        ("NEW", NEW),
        ("ESTABLISHED", ESTABLISHED),
        ("RELATED", RELATED),
        ("INVALID", INVALID),
        ("UNTRACKED", UNTRACKED),
    ];

    /// A base state with any NAT flags.
    pub fn base(state: u128) -> IntervalSet {
        let lo = state - state % FLAGS;
        IntervalSet::range(lo, lo + FLAGS - 1)
    }

    /// Every value with `bit` set.
    fn with_flag(bit: u128) -> IntervalSet {
        IntervalSet::from_ranges((0..=MAX).filter(|v| v & bit != 0).map(|v| (v, v)))
    }

    /// The values a state name as iptables prints it matches (`NEW`, `DNAT`, …).
    pub fn set_by_name(name: &str) -> Option<IntervalSet> {
        let upper = name.to_ascii_uppercase();
        match upper.as_str() {
            "SNAT" => Some(with_flag(SNAT_BIT)),
            "DNAT" => Some(with_flag(DNAT_BIT)),
            _ => BASES
                .iter()
                .find(|(n, _)| *n == upper)
                .map(|&(_, v)| base(v)),
        }
    }

    /// The same packets after a destination NAT rewrite: their connection is DNATed.
    pub fn mark_dnat(states: &IntervalSet) -> IntervalSet {
        // As bits, not value by value into ranges to sort: every rewrite of a walk marks
        // its piece's states, tens of thousands of times on a Kubernetes node. A value
        // without the flag gains it by adding the flag's bit, so moves up by two places.
        let bits = bits_of(states);
        of_bits((bits & DNAT_VALUES) | ((bits & !DNAT_VALUES) << DNAT_BIT))
    }

    /// Bit `v` set for each value `v` that has the DNAT flag.
    const DNAT_VALUES: u32 = {
        let (mut bits, mut v) = (0, 0);
        while v <= MAX {
            if v & DNAT_BIT != 0 {
                bits |= 1 << v;
            }
            v += 1;
        }
        bits
    };

    /// The values of `states` as bits: bit `v` for the value `v`.
    fn bits_of(states: &IntervalSet) -> u32 {
        let values = states.ranges().iter().take_while(|(lo, _)| *lo <= MAX);
        values.fold(0, |bits, &(lo, hi)| {
            // `hi` is at most 19, so the run's bits fit in 32 and the shifts in 64.
            let run = (1u64 << (hi.min(MAX) + 1)) - (1u64 << lo);
            bits | u32::try_from(run).unwrap_or(u32::MAX)
        })
    }

    /// The values whose bits are set in `bits`, one range per run of set bits.
    fn of_bits(mut bits: u32) -> IntervalSet {
        let mut ranges = super::Buf::new();
        while bits != 0 {
            let lo = bits.trailing_zeros();
            let len = (bits >> lo).trailing_ones();
            ranges.push((u128::from(lo), u128::from(lo + len - 1)));
            bits &= u32::MAX.checked_shl(lo + len).unwrap_or(0);
        }
        IntervalSet {
            ranges: super::Ranges::from_slice(&ranges),
        }
    }

    /// The states of the replies to packets in `states`: ESTABLISHED, with the same NAT
    /// flags (a reply belongs to the same, possibly NATed, connection).
    pub fn replies_of(states: &IntervalSet) -> IntervalSet {
        IntervalSet::from_ranges(
            (0..=MAX)
                .filter(|v| states.contains(*v))
                .map(|v| (ESTABLISHED + v % FLAGS, ESTABLISHED + v % FLAGS)),
        )
    }

    /// The base state's name of a value.
    pub fn name(v: u128) -> &'static str {
        BASES
            .iter()
            .find(|(_, b)| *b == v - v % FLAGS)
            .map_or("INVALID", |(n, _)| n)
    }
}

/// IPv4 and IPv6 addresses on one `u128` line.
pub mod addr {
    use super::*;

    /// Where IPv4 sits: `::ffff:0:0/96`.
    pub const V4_BASE: u128 = 0xffff_0000_0000;

    /// An IPv4 address as a value of the address field.
    pub fn v4(a: Ipv4Addr) -> u128 {
        V4_BASE | u128::from(u32::from(a))
    }

    /// Any address as a value of the address field.
    pub fn ip(a: IpAddr) -> u128 {
        match a {
            IpAddr::V4(a) => v4(a),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    /// All IPv4 addresses.
    pub fn v4_space() -> IntervalSet {
        IntervalSet::range(V4_BASE, V4_BASE | 0xffff_ffff)
    }

    /// All IPv6 addresses that are not IPv4-mapped.
    pub fn v6_space() -> IntervalSet {
        v4_space().complement(ADDR_MAX)
    }

    /// `addr/prefix`; the host bits of `addr` are ignored, as iptables and ASA do.
    /// Returns `None` for a prefix longer than the address.
    pub fn cidr(a: IpAddr, prefix: u8) -> Option<IntervalSet> {
        let (value, bits) = match a {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32u32),
            IpAddr::V6(a) => (u128::from(a), 128u32),
        };
        let prefix = u32::from(prefix);
        if prefix > bits {
            return None;
        }
        let host_bits = bits - prefix;
        let mask: u128 = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let lo = value & !mask;
        let hi = lo | mask;
        Some(match a {
            IpAddr::V4(_) => IntervalSet::range(V4_BASE | lo, V4_BASE | hi),
            IpAddr::V6(_) => IntervalSet::range(lo, hi),
        })
    }

    /// An inclusive address range `lo-hi`; `None` if the families differ.
    pub fn span(lo: IpAddr, hi: IpAddr) -> Option<IntervalSet> {
        match (lo, hi) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                Some(IntervalSet::range(ip(lo), ip(hi)))
            }
            _ => None,
        }
    }

    /// The prefix length of a contiguous IPv4 netmask such as 255.255.255.0;
    /// `None` for a non-contiguous mask.
    pub fn v4_mask_len(mask: Ipv4Addr) -> Option<u8> {
        let m = u32::from(mask);
        let len = m.leading_ones();
        (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
    }

    /// A field value back as an address.
    pub fn to_ip(v: u128) -> IpAddr {
        if v >> 32 == V4_BASE >> 32 {
            IpAddr::V4(Ipv4Addr::from((v & 0xffff_ffff) as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(r: &[(u128, u128)]) -> IntervalSet {
        IntervalSet::from_ranges(r.iter().copied())
    }

    #[test]
    fn from_ranges_merges_overlap_and_adjacency() {
        assert_eq!(
            set(&[(5, 9), (1, 3), (4, 4), (20, 30)]).ranges(),
            &[(1, 9), (20, 30)]
        );
    }

    #[test]
    fn results_equal_to_an_operand_share_its_ranges() {
        let many = set(&[(1, 3), (5, 9), (20, 30)]);
        let wide = IntervalSet::range(0, 100);
        let narrowed = many.intersect(&wide);
        assert_eq!(narrowed, many);
        assert_eq!(narrowed.ranges().as_ptr(), many.ranges().as_ptr());
        let untouched = many.subtract(&IntervalSet::range(40, 50));
        assert_eq!(untouched.ranges().as_ptr(), many.ranges().as_ptr());
        let cut = many.subtract(&IntervalSet::single(6));
        assert_eq!(cut.ranges(), &[(1, 3), (5, 5), (7, 9), (20, 30)]);
    }

    /// Sets of up to 40 ranges over a small universe, whose ends meet and whose ranges
    /// touch, and a range that may reach past any of them.
    fn many_ranges() -> impl proptest::strategy::Strategy<Value = IntervalSet> {
        use proptest::prelude::*;
        prop::collection::vec((0u128..300, 0u128..6), 0..40)
            .prop_map(|rs| IntervalSet::from_ranges(rs.into_iter().map(|(lo, w)| (lo, lo + w))))
    }

    fn swept(out: Buf) -> IntervalSet {
        IntervalSet {
            ranges: Ranges::from_slice(&out),
        }
    }

    proptest::proptest! {
        /// The one-range paths (binary search, untouched ranges copied as they are) give
        /// the sets the merge passes give, in the same form.
        #[test]
        fn one_range_operations_agree_with_the_merge_passes(
            a in many_ranges(),
            lo in 0u128..320,
            width in 0u128..60,
        ) {
            let r = IntervalSet::range(lo, lo + width);
            let form = |s: &IntervalSet| std::mem::discriminant(&s.ranges);
            let cases = [
                (a.subtract(&r), swept(sweep::subtract(a.ranges(), r.ranges()))),
                (a.intersect(&r), swept(sweep::intersect(a.ranges(), r.ranges()))),
                (r.intersect(&a), swept(sweep::intersect(r.ranges(), a.ranges()))),
            ];
            for (fast, merged) in cases {
                proptest::prop_assert_eq!(&fast, &merged);
                proptest::prop_assert_eq!(form(&fast), form(&merged));
            }
            let meet = !swept(sweep::intersect(a.ranges(), r.ranges())).is_empty();
            proptest::prop_assert_eq!(a.intersects(&r), meet);
            proptest::prop_assert_eq!(r.intersects(&a), meet);
            let a_in_r = swept(sweep::subtract(a.ranges(), r.ranges())).is_empty();
            let r_in_a = swept(sweep::subtract(r.ranges(), a.ranges())).is_empty();
            proptest::prop_assert_eq!(a.is_subset(&r), a_in_r);
            proptest::prop_assert_eq!(r.is_subset(&a), r_in_a);
        }
    }

    /// The one-range paths at the ends of the universe, where `r.0 - 1` or `r.1 + 1`
    /// would overflow if they were taken.
    #[test]
    fn one_range_paths_reach_both_ends_of_the_universe() {
        let top = u128::MAX;
        let ends = set(&[(0, 3), (10, 20), (top - 5, top)]);
        let cut_low = ends.subtract(&IntervalSet::range(0, 11));
        assert_eq!(cut_low.ranges(), &[(12, 20), (top - 5, top)]);
        let cut_high = ends.subtract(&IntervalSet::range(top - 1, top));
        assert_eq!(cut_high.ranges(), &[(0, 3), (10, 20), (top - 5, top - 2)]);
        let within = ends.intersect(&IntervalSet::range(2, top - 5));
        assert_eq!(within.ranges(), &[(2, 3), (10, 20), (top - 5, top - 5)]);
        assert!(ends.is_subset(&IntervalSet::range(0, top)));
        assert!(!ends.is_subset(&IntervalSet::range(1, top)));
        assert!(IntervalSet::single(top).is_subset(&ends));
        assert!(!IntervalSet::range(3, 10).is_subset(&ends));
        assert!(!ends.intersects(&IntervalSet::range(21, top - 6)));
        assert!(ends.intersects(&IntervalSet::range(21, top - 5)));
        assert!(IntervalSet::range(0, 0).intersects(&ends));
    }

    #[test]
    fn subtract_splits_ranges() {
        let a = set(&[(0, 100)]);
        let b = set(&[(10, 20), (50, 50), (90, 200)]);
        assert_eq!(a.subtract(&b).ranges(), &[(0, 9), (21, 49), (51, 89)]);
        assert!(b.subtract(&set(&[(0, 300)])).is_empty());
    }

    #[test]
    fn intersect_and_intersects_agree() {
        let a = set(&[(0, 5), (10, 15)]);
        let b = set(&[(6, 9), (15, 20)]);
        assert_eq!(a.intersect(&b).ranges(), &[(15, 15)]);
        assert!(a.intersects(&b));
        assert!(!a.intersects(&set(&[(6, 9)])));
    }

    #[test]
    fn complement_of_full_is_empty() {
        assert!(
            IntervalSet::range(0, PORT_MAX)
                .complement(PORT_MAX)
                .is_empty()
        );
        assert_eq!(
            IntervalSet::single(80).complement(PORT_MAX).ranges(),
            &[(0, 79), (81, PORT_MAX)]
        );
    }

    #[test]
    fn contains_uses_range_bounds() {
        let a = set(&[(10, 20), (30, 40)]);
        assert!(a.contains(10) && a.contains(20) && a.contains(35));
        assert!(!a.contains(25) && !a.contains(9) && !a.contains(41));
    }

    #[test]
    fn cidr_ignores_host_bits() {
        let s = addr::cidr("10.1.2.3".parse().expect("literal"), 24).expect("valid prefix");
        assert_eq!(
            addr::to_ip(s.first().expect("non-empty")),
            "10.1.2.0".parse::<IpAddr>().expect("literal")
        );
        assert_eq!(s.count(), 256);
        assert!(addr::cidr("10.0.0.0".parse().expect("literal"), 33).is_none());
        assert_eq!(
            addr::cidr("::".parse().expect("literal"), 0).map(|s| s.count()),
            Some(u128::MAX)
        );
    }

    #[test]
    fn conntrack_states_and_nat_flags() {
        let new = ct::set_by_name("new").expect("known");
        let dnat = ct::set_by_name("DNAT").expect("known");
        assert!(new.contains(ct::NEW) && !new.contains(ct::ESTABLISHED));
        assert!(!dnat.contains(ct::NEW));
        let rewritten = ct::mark_dnat(&IntervalSet::single(ct::NEW));
        assert!(dnat.is_subset(&dnat.union(&rewritten)) && rewritten.is_subset(&dnat));
        assert!(rewritten.is_subset(&new), "still NEW after the rewrite");
        let replies = ct::replies_of(&rewritten);
        assert!(replies.is_subset(&dnat));
        assert!(replies.is_subset(&ct::set_by_name("ESTABLISHED").expect("known")));
        assert_eq!(ct::name(ct::RELATED + 2), "RELATED");
        assert!(ct::set_by_name("BOGUS").is_none());
    }

    proptest::proptest! {
        /// Marking by bits gives what marking each state value by value gives.
        #[test]
        fn a_dnat_rewrite_marks_each_state_it_holds(bits in 0u32..1 << 20) {
            let values = |bits: u32| (0..=ct::MAX).filter(move |v| bits >> v & 1 == 1);
            let states = IntervalSet::from_ranges(values(bits).map(|v| (v, v)));
            let marked = values(bits).map(|v| (v | ct::DNAT_BIT, v | ct::DNAT_BIT));
            proptest::prop_assert_eq!(ct::mark_dnat(&states), IntervalSet::from_ranges(marked));
        }
    }

    #[test]
    fn netmask_to_prefix() {
        assert_eq!(
            addr::v4_mask_len("255.255.255.0".parse().expect("literal")),
            Some(24)
        );
        assert_eq!(
            addr::v4_mask_len("0.0.0.0".parse().expect("literal")),
            Some(0)
        );
        assert_eq!(
            addr::v4_mask_len("255.0.255.0".parse().expect("literal")),
            None
        );
    }
}
