//! Packet cubes: a set of packets written as one value set per header field.
//!
//! A cube is the product of its fields' sets, so intersecting two cubes is per-field
//! intersection and a rule's match (a conjunction of per-field conditions, each possibly
//! negated) is exactly one cube. Subtracting a rule from a cube yields at most one cube per
//! field; see [`Cube::subtract`] for why the field order keeps the pieces few.

use crate::graph::sets::{ADDR_MAX, PORT_MAX, PROTO_MAX, ct};
use crate::graph::{IntervalSet, NarrowSet};
use std::borrow::Cow;

/// The header fields of a packet, in the order cubes are split. Coarse fields come first:
/// splitting on them first leaves the remainder of a rule like "tcp to 10.0.0.7 port 443"
/// as few broad pieces ("not tcp", "tcp not 443", "tcp 443 not 10.0.0.7") instead of many
/// narrow ones, so the number of live pieces grows with the distinct protocols and ports
/// of a ruleset, not with its number of addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// IP protocol number.
    Proto = 0,
    /// Conntrack state.
    State = 1,
    /// Ingress interface (index into the model's interface list).
    InIface = 2,
    /// Egress interface.
    OutIface = 3,
    /// Destination port.
    DstPort = 4,
    /// Source port.
    SrcPort = 5,
    /// Source address.
    SrcAddr = 6,
    /// Destination address.
    DstAddr = 7,
}

/// Number of fields.
pub const FIELDS: usize = 8;

/// Number of narrow fields: those before the addresses, whose values fit in 32 bits.
const NARROW: usize = Field::SrcAddr as usize;

/// A set of packets: every combination of the fields' values.
///
/// The six narrow fields are stored as [`NarrowSet`]s and the two addresses as
/// [`IntervalSet`]s: 240 bytes where eight interval sets took 384. The walks copy a
/// cube at every split and keep hundreds of thousands of them on a big ruleset, so the
/// difference is memory every run touches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cube {
    narrow: [NarrowSet; NARROW],
    addrs: [IntervalSet; FIELDS - NARROW],
}

// Six narrow sets and two interval sets, with no padding between them.
const _: () = assert!(std::mem::size_of::<Cube>() == 240);

// The addresses are the last two fields: the split order cuts them last.
const _: () = assert!(Field::SrcAddr as usize == NARROW && Field::DstAddr as usize == NARROW + 1);

/// Where a field lives in a [`Cube`].
enum Slot {
    Narrow(usize),
    Addr(usize),
}

fn slot(f: Field) -> Slot {
    slot_of(f as usize)
}

fn slot_of(i: usize) -> Slot {
    match i {
        i if i < NARROW => Slot::Narrow(i),
        i => Slot::Addr(i - NARROW),
    }
}

/// Every field, in split order.
const ALL_FIELDS: [Field; FIELDS] = [
    Field::Proto,
    Field::State,
    Field::InIface,
    Field::OutIface,
    Field::DstPort,
    Field::SrcPort,
    Field::SrcAddr,
    Field::DstAddr,
];

impl Cube {
    /// Every packet, given the number of interfaces in the model.
    pub fn full(iface_count: usize) -> Cube {
        let iface_max = iface_count.saturating_sub(1) as u128;
        Cube::from_sets([
            IntervalSet::range(0, PROTO_MAX),
            IntervalSet::range(0, ct::MAX),
            IntervalSet::range(0, iface_max),
            IntervalSet::range(0, iface_max),
            IntervalSet::range(0, PORT_MAX),
            IntervalSet::range(0, PORT_MAX),
            IntervalSet::range(0, ADDR_MAX),
            IntervalSet::range(0, ADDR_MAX),
        ])
    }

    /// The cube of one set per field, indexed by `Field as usize`.
    pub fn from_sets(sets: [IntervalSet; FIELDS]) -> Cube {
        let [proto, state, in_iface, out_iface, dport, sport, src, dst] = sets;
        Cube {
            narrow: [proto, state, in_iface, out_iface, dport, sport].map(|s| NarrowSet::of(&s)),
            addrs: [src, dst],
        }
    }

    /// The set of one field: borrowed for addresses, converted (without copying more
    /// than one range) for the narrow fields.
    pub fn get(&self, f: Field) -> Cow<'_, IntervalSet> {
        match slot(f) {
            Slot::Narrow(i) => Cow::Owned(self.narrow[i].to_set()),
            Slot::Addr(i) => Cow::Borrowed(&self.addrs[i]),
        }
    }

    /// The destination addresses.
    pub fn destination(&self) -> &IntervalSet {
        &self.addrs[Field::DstAddr as usize - NARROW]
    }

    /// Every field's set, in split order.
    pub fn sets(&self) -> impl Iterator<Item = Cow<'_, IntervalSet>> {
        ALL_FIELDS.into_iter().map(|f| self.get(f))
    }

    /// Replaces one field's set.
    pub fn set(&mut self, f: Field, set: IntervalSet) {
        match slot(f) {
            Slot::Narrow(i) => self.narrow[i] = NarrowSet::of(&set),
            Slot::Addr(i) => self.addrs[i] = set,
        }
    }

    /// Narrows one field to its intersection with `set`.
    pub fn restrict(&mut self, f: Field, set: &IntervalSet) {
        match slot(f) {
            Slot::Narrow(i) => self.narrow[i] = self.narrow[i].intersect(&NarrowSet::of(set)),
            Slot::Addr(i) => self.addrs[i] = self.addrs[i].intersect(set),
        }
    }

    /// Exchanges two fields of the same kind (source and destination ports, addresses
    /// or interfaces).
    pub fn swap(&mut self, a: Field, b: Field) {
        match (slot(a), slot(b)) {
            (Slot::Narrow(i), Slot::Narrow(j)) => self.narrow.swap(i, j),
            (Slot::Addr(i), Slot::Addr(j)) => self.addrs.swap(i, j),
            _ => {
                let (x, y) = (self.get(a).into_owned(), self.get(b).into_owned());
                self.set(a, y);
                self.set(b, x);
            }
        }
    }

    /// What pieces that differ only in their destination addresses share: every other
    /// field, borrowed (the walks build such a key for every piece at every stage).
    pub fn all_but_destination(&self) -> (&[NarrowSet], &IntervalSet) {
        (&self.narrow, &self.addrs[Field::SrcAddr as usize - NARROW])
    }

    /// The packet with every field at its lowest value; `None` if the cube is empty.
    pub fn low_corner(&self) -> Option<[u128; FIELDS]> {
        self.corner(|(lo, _)| lo)
    }

    /// The packet with every field at its highest value; `None` if the cube is empty.
    pub fn high_corner(&self) -> Option<[u128; FIELDS]> {
        self.corner(|(_, hi)| hi)
    }

    /// A packet of the cube's bounds, one end of each field's picked by `end`. Without
    /// converting the narrow sets: the chain analysis takes two corners of every rule.
    fn corner(&self, end: fn((u128, u128)) -> u128) -> Option<[u128; FIELDS]> {
        let mut p = [0; FIELDS];
        for (i, slot) in p.iter_mut().enumerate() {
            let bounds = match slot_of(i) {
                Slot::Narrow(i) => self.narrow[i].bounds(),
                Slot::Addr(i) => self.addrs[i].bounds(),
            };
            *slot = end(bounds?);
        }
        Some(p)
    }

    /// True if the cube holds the packet `p` (a value per field, indexed by
    /// `Field as usize`). The chain analysis asks this of every candidate rule.
    pub fn contains(&self, p: &[u128; FIELDS]) -> bool {
        let (narrow, addrs) = p.split_at(NARROW);
        self.narrow.iter().zip(narrow).all(|(s, &v)| s.contains(v))
            && self.addrs.iter().zip(addrs).all(|(s, &v)| s.contains(v))
    }

    /// True if the cube holds no packet.
    pub fn is_empty(&self) -> bool {
        self.narrow.iter().any(NarrowSet::is_empty) || self.addrs.iter().any(IntervalSet::is_empty)
    }

    /// True if some packet is in both cubes. Checks the fields in split order, so most
    /// non-matching rules are rejected on the protocol or port field.
    pub fn intersects(&self, other: &Cube) -> bool {
        self.narrow
            .iter()
            .zip(&other.narrow)
            .all(|(a, b)| a.intersects(b))
            && self
                .addrs
                .iter()
                .zip(&other.addrs)
                .all(|(a, b)| a.intersects(b))
    }

    /// True if the cubes meet on every field but those of `except`.
    pub fn intersects_except(&self, other: &Cube, except: &[Field]) -> bool {
        let skips = |f: usize| except.iter().any(|&e| e as usize == f);
        let narrow = self.narrow.iter().zip(&other.narrow).enumerate();
        let addrs = self.addrs.iter().zip(&other.addrs).enumerate();
        narrow
            .filter(|(f, _)| !skips(*f))
            .all(|(_, (a, b))| a.intersects(b))
            && addrs
                .filter(|(f, _)| !skips(f + NARROW))
                .all(|(_, (a, b))| a.intersects(b))
    }

    /// Packets in both cubes.
    pub fn intersect(&self, other: &Cube) -> Cube {
        Cube {
            narrow: std::array::from_fn(|f| self.narrow[f].intersect(&other.narrow[f])),
            addrs: std::array::from_fn(|f| self.addrs[f].intersect(&other.addrs[f])),
        }
    }

    /// Packets in both cubes, on every field but those of `except`, which keep
    /// `self`'s values.
    pub fn intersect_except(&self, other: &Cube, except: &[Field]) -> Cube {
        let keeps = |f: usize| except.iter().any(|&e| e as usize == f);
        Cube {
            narrow: std::array::from_fn(|f| match keeps(f) {
                true => self.narrow[f].clone(),
                false => self.narrow[f].intersect(&other.narrow[f]),
            }),
            addrs: std::array::from_fn(|f| match keeps(f + NARROW) {
                true => self.addrs[f].clone(),
                false => self.addrs[f].intersect(&other.addrs[f]),
            }),
        }
    }

    /// The smallest cube holding both: the union of each field.
    pub fn hull(&self, other: &Cube) -> Cube {
        Cube {
            narrow: std::array::from_fn(|f| self.narrow[f].union(&other.narrow[f])),
            addrs: std::array::from_fn(|f| self.addrs[f].union(&other.addrs[f])),
        }
    }

    /// True if every packet of `self` is in `other`.
    pub fn is_subset(&self, other: &Cube) -> bool {
        self.narrow
            .iter()
            .zip(&other.narrow)
            .all(|(a, b)| a.is_subset(b))
            && self
                .addrs
                .iter()
                .zip(&other.addrs)
                .all(|(a, b)| a.is_subset(b))
    }

    /// Packets of `self` not in `other`, as disjoint cubes: piece `i` agrees with `other` on
    /// the fields before `i` and lies outside it on field `i`. At most one piece per field.
    pub fn subtract(&self, other: &Cube) -> Vec<Cube> {
        self.split(other).0
    }

    /// [`Cube::subtract`], and the packets of `self` in `other` (an empty cube if none):
    /// the last field's cut leaves exactly them, so a walk step that needs both gets the
    /// intersection without cutting all eight fields again.
    pub fn split(&self, other: &Cube) -> (Vec<Cube>, Cube) {
        let mut pieces = Vec::new();
        let mut inside = self.clone();
        // Narrow fields first, then the addresses: the split order of the fields.
        if cut_fields(&mut inside, &other.narrow, narrow_of, &mut pieces) {
            cut_fields(&mut inside, &other.addrs, addrs_of, &mut pieces);
        }
        (pieces, inside)
    }
}

fn narrow_of(c: &mut Cube) -> &mut [NarrowSet] {
    &mut c.narrow
}

fn addrs_of(c: &mut Cube) -> &mut [IntervalSet] {
    &mut c.addrs
}

/// The two kinds of field set, for the cut that [`Cube::split`] makes on each field.
trait FieldSet: Sized {
    fn is_subset(&self, other: &Self) -> bool;
    fn subtract(&self, other: &Self) -> Self;
    fn intersect(&self, other: &Self) -> Self;
    fn is_empty(&self) -> bool;
}

impl FieldSet for NarrowSet {
    fn is_subset(&self, other: &Self) -> bool {
        NarrowSet::is_subset(self, other)
    }
    fn subtract(&self, other: &Self) -> Self {
        NarrowSet::subtract(self, other)
    }
    fn intersect(&self, other: &Self) -> Self {
        NarrowSet::intersect(self, other)
    }
    fn is_empty(&self) -> bool {
        NarrowSet::is_empty(self)
    }
}

impl FieldSet for IntervalSet {
    fn is_subset(&self, other: &Self) -> bool {
        IntervalSet::is_subset(self, other)
    }
    fn subtract(&self, other: &Self) -> Self {
        IntervalSet::subtract(self, other)
    }
    fn intersect(&self, other: &Self) -> Self {
        IntervalSet::intersect(self, other)
    }
    fn is_empty(&self) -> bool {
        IntervalSet::is_empty(self)
    }
}

/// Cuts `inside` on the fields of one kind (`fields` of it), in order, against
/// `theirs`: each field's values outside go on as a piece of their own, and `inside`
/// keeps the values within. False once a field has none within: nothing is left to cut.
fn cut_fields<S: FieldSet>(
    inside: &mut Cube,
    theirs: &[S],
    fields: fn(&mut Cube) -> &mut [S],
    pieces: &mut Vec<Cube>,
) -> bool {
    for (f, their) in theirs.iter().enumerate() {
        let mine = &fields(inside)[f];
        if mine.is_subset(their) {
            // Nothing outside and all within: most rules leave most fields "any", and
            // building the difference and the intersection only to find them empty and
            // unchanged was 40 % of a split's instructions on a Kubernetes node's dump.
            if mine.is_empty() {
                return false;
            }
            continue;
        }
        let (outside, within) = (mine.subtract(their), mine.intersect(their));
        if !outside.is_empty() {
            let mut piece = inside.clone();
            fields(&mut piece)[f] = outside;
            pieces.push(piece);
        }
        let empty = within.is_empty();
        fields(inside)[f] = within;
        if empty {
            return false;
        }
    }
    true
}

/// The outer bounds of a service: its protocols and destination ports, in six bytes.
/// Dense arrays of these let a scan over thousands of rules or services skip most of
/// them without reading their sets; overlapping bounds are necessary for two services
/// to meet, not sufficient, so the sets decide the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceBounds {
    proto: (u8, u8),
    dport: (u16, u16),
}

impl ServiceBounds {
    /// Bounds that overlap nothing.
    pub const NONE: ServiceBounds = ServiceBounds {
        proto: (1, 0),
        dport: (1, 0),
    };

    /// The bounds of a protocol set and a destination port set; [`ServiceBounds::NONE`]
    /// if either is empty.
    pub fn of(proto: &IntervalSet, dport: &IntervalSet) -> ServiceBounds {
        ServiceBounds::of_bounds(proto.bounds(), dport.bounds())
    }

    /// The bounds of a protocol set's and a destination port set's bounds.
    fn of_bounds(proto: Option<(u128, u128)>, dport: Option<(u128, u128)>) -> ServiceBounds {
        let (Some(proto), Some(dport)) = (proto, dport) else {
            return ServiceBounds::NONE;
        };
        ServiceBounds {
            proto: (narrow_u8(proto.0), narrow_u8(proto.1)),
            dport: (narrow_u16(dport.0), narrow_u16(dport.1)),
        }
    }

    /// The bounds of one protocol and port.
    pub fn point(proto: u128, port: u128) -> ServiceBounds {
        ServiceBounds {
            proto: (narrow_u8(proto), narrow_u8(proto)),
            dport: (narrow_u16(port), narrow_u16(port)),
        }
    }

    /// False if no packet can be in both.
    #[inline]
    pub fn overlaps(&self, other: &ServiceBounds) -> bool {
        self.proto.0 <= other.proto.1
            && other.proto.0 <= self.proto.1
            && self.dport.0 <= other.dport.1
            && other.dport.0 <= self.dport.1
    }
}

/// Protocol numbers and ports never exceed their fields' universes; saturating keeps a
/// bound a bound if one ever did.
fn narrow_u8(v: u128) -> u8 {
    u8::try_from(v).unwrap_or(u8::MAX)
}

fn narrow_u16(v: u128) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

/// The outer bounds of a cube on the fields that most often tell rules apart: its
/// service and its destination addresses. A walk looks for the next rule that meets a
/// piece among thousands (a Kubernetes node's service chain); comparing bounds first
/// keeps that scan inside a dense array instead of reading every rule's cube.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    dst: (u128, u128),
    service: ServiceBounds,
}

impl Bounds {
    /// Bounds that overlap nothing: those of an empty cube.
    pub const NONE: Bounds = Bounds {
        dst: (1, 0),
        service: ServiceBounds::NONE,
    };

    /// The bounds of `cube`; [`Bounds::NONE`] if it is empty on one of their fields.
    pub fn of(cube: &Cube) -> Bounds {
        let service = ServiceBounds::of_bounds(
            cube.narrow[Field::Proto as usize].bounds(),
            cube.narrow[Field::DstPort as usize].bounds(),
        );
        match cube.addrs[Field::DstAddr as usize - NARROW].bounds() {
            Some(dst) if service != ServiceBounds::NONE => Bounds { dst, service },
            _ => Bounds::NONE,
        }
    }

    /// False if no packet can be in both cubes.
    #[inline]
    pub fn overlaps(&self, other: &Bounds) -> bool {
        self.service.overlaps(&other.service)
            && self.dst.0 <= other.dst.1
            && other.dst.0 <= self.dst.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube_with(proto: (u128, u128), dport: (u128, u128)) -> Cube {
        let mut c = Cube::full(2);
        c.restrict(Field::Proto, &IntervalSet::range(proto.0, proto.1));
        c.restrict(Field::DstPort, &IntervalSet::range(dport.0, dport.1));
        c
    }

    /// A cube whose fields are each "any" or up to three small ranges (empty sometimes).
    fn any_cube() -> impl proptest::strategy::Strategy<Value = Cube> {
        use proptest::prelude::*;
        let field = prop::option::weighted(0.6, prop::collection::vec((0u128..12, 0u128..4), 0..4));
        prop::collection::vec(field, FIELDS).prop_map(|fields| {
            let mut cube = Cube::full(12);
            for (f, ranges) in ALL_FIELDS.into_iter().zip(fields) {
                if let Some(rs) = ranges {
                    let set = IntervalSet::from_ranges(rs.into_iter().map(|(lo, w)| (lo, lo + w)));
                    cube.set(f, set);
                }
            }
            cube
        })
    }

    /// The cut as [`Cube::split`] defines it, field by field, with no shortcut.
    fn split_field_by_field(a: &Cube, b: &Cube) -> (Vec<Cube>, Cube) {
        let mut pieces = Vec::new();
        let mut inside = a.clone();
        for f in ALL_FIELDS {
            let (mine, theirs) = (inside.get(f).into_owned(), b.get(f));
            let outside = mine.subtract(&theirs);
            if !outside.is_empty() {
                let mut piece = inside.clone();
                piece.set(f, outside);
                pieces.push(piece);
            }
            let within = mine.intersect(&theirs);
            let empty = within.is_empty();
            inside.set(f, within);
            if empty {
                break;
            }
        }
        (pieces, inside)
    }

    proptest::proptest! {
        #[test]
        fn split_cuts_as_field_by_field_does(a in any_cube(), b in any_cube()) {
            proptest::prop_assert_eq!(a.split(&b), split_field_by_field(&a, &b));
        }
    }

    #[test]
    fn subtract_is_exact_and_disjoint() {
        let whole = cube_with((0, 255), (0, 65535));
        let rule = cube_with((6, 6), (80, 80));
        let pieces = whole.subtract(&rule);
        assert_eq!(pieces.len(), 2);
        for p in &pieces {
            assert!(!p.intersects(&rule));
        }
        assert!(!pieces[0].intersects(&pieces[1]));
        let ports_left: u128 = pieces[1].get(Field::DstPort).count();
        assert_eq!(ports_left, 65535);
        assert_eq!(pieces[0].get(Field::Proto).count(), 255);
    }

    #[test]
    fn subtract_of_superset_is_empty() {
        let small = cube_with((6, 6), (80, 80));
        let big = cube_with((0, 255), (0, 65535));
        assert!(small.subtract(&big).is_empty());
        assert!(small.is_subset(&big));
    }

    #[test]
    fn disjoint_cubes_do_not_intersect() {
        let a = cube_with((6, 6), (80, 80));
        let b = cube_with((17, 17), (80, 80));
        assert!(!a.intersects(&b));
        assert!(a.intersect(&b).is_empty());
    }
}
