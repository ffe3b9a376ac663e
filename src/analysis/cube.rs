//! Packet cubes: a set of packets written as one value set per header field.
//!
//! A cube is the product of its fields' sets, so intersecting two cubes is per-field
//! intersection and a rule's match (a conjunction of per-field conditions, each possibly
//! negated) is exactly one cube. Subtracting a rule from a cube yields at most one cube per
//! field; see [`Cube::subtract`] for why the field order keeps the pieces few.

use crate::graph::IntervalSet;
use crate::graph::sets::{ADDR_MAX, PORT_MAX, PROTO_MAX, ct};

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

/// A set of packets: every combination of the fields' values.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cube {
    /// One set per [`Field`], indexed by `Field as usize`.
    pub fields: [IntervalSet; FIELDS],
}

impl Cube {
    /// Every packet, given the number of interfaces in the model.
    pub fn full(iface_count: usize) -> Cube {
        let iface_max = iface_count.saturating_sub(1) as u128;
        Cube {
            fields: [
                IntervalSet::range(0, PROTO_MAX),
                IntervalSet::range(0, ct::MAX),
                IntervalSet::range(0, iface_max),
                IntervalSet::range(0, iface_max),
                IntervalSet::range(0, PORT_MAX),
                IntervalSet::range(0, PORT_MAX),
                IntervalSet::range(0, ADDR_MAX),
                IntervalSet::range(0, ADDR_MAX),
            ],
        }
    }

    /// The set of one field.
    pub fn get(&self, f: Field) -> &IntervalSet {
        &self.fields[f as usize]
    }

    /// Narrows one field to its intersection with `set`.
    pub fn restrict(&mut self, f: Field, set: &IntervalSet) {
        let slot = &mut self.fields[f as usize];
        *slot = slot.intersect(set);
    }

    /// True if the cube holds no packet.
    pub fn is_empty(&self) -> bool {
        self.fields.iter().any(IntervalSet::is_empty)
    }

    /// True if some packet is in both cubes. Checks the fields in split order, so most
    /// non-matching rules are rejected on the protocol or port field.
    pub fn intersects(&self, other: &Cube) -> bool {
        self.fields
            .iter()
            .zip(&other.fields)
            .all(|(a, b)| a.intersects(b))
    }

    /// Packets in both cubes.
    pub fn intersect(&self, other: &Cube) -> Cube {
        Cube {
            fields: std::array::from_fn(|f| self.fields[f].intersect(&other.fields[f])),
        }
    }

    /// The smallest cube holding both: the union of each field.
    pub fn hull(&self, other: &Cube) -> Cube {
        let mut out = self.clone();
        for (slot, theirs) in out.fields.iter_mut().zip(&other.fields) {
            *slot = slot.union(theirs);
        }
        out
    }

    /// True if every packet of `self` is in `other`.
    pub fn is_subset(&self, other: &Cube) -> bool {
        self.fields
            .iter()
            .zip(&other.fields)
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
        for f in 0..FIELDS {
            let outside = inside.fields[f].subtract(&other.fields[f]);
            if !outside.is_empty() {
                let mut piece = inside.clone();
                piece.fields[f] = outside;
                pieces.push(piece);
            }
            inside.fields[f] = inside.fields[f].intersect(&other.fields[f]);
            if inside.fields[f].is_empty() {
                break;
            }
        }
        (pieces, inside)
    }
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
        let (Some(proto), Some(dport)) = (proto.bounds(), dport.bounds()) else {
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
        let service = ServiceBounds::of(cube.get(Field::Proto), cube.get(Field::DstPort));
        match cube.get(Field::DstAddr).bounds() {
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
