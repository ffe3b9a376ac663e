//! Interval-set algebra against a brute-force model: sets of 0..64 as bit masks.
//!
//! The analysis is exact only if union, intersection and difference are; they are
//! written for speed (merge passes, shared results), so they are checked here against
//! the obvious definition on every small set proptest draws.

use mislint::analysis::cube::{Bounds, Cube, Field, ServiceBounds};
use mislint::graph::IntervalSet;
use proptest::prelude::*;

const UNIVERSE: u128 = 64;

fn set_of(mask: u64) -> IntervalSet {
    IntervalSet::from_ranges(
        (0..UNIVERSE)
            .filter(|&v| mask >> v & 1 == 1)
            .map(|v| (v, v)),
    )
}

fn mask_of(set: &IntervalSet) -> u64 {
    (0..UNIVERSE)
        .filter(|&v| set.contains(v))
        .fold(0, |m, v| m | 1 << v)
}

/// Sorted, disjoint and not adjacent: the form every operation must return.
fn is_canonical(set: &IntervalSet) -> bool {
    let r = set.ranges();
    r.iter().all(|(lo, hi)| lo <= hi) && r.windows(2).all(|w| w[0].1 + 1 < w[1].0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn operations_match_the_bit_masks(a in any::<u64>(), b in any::<u64>()) {
        let (x, y) = (set_of(a), set_of(b));
        for (what, got, want) in [
            ("union", x.union(&y), a | b),
            ("intersect", x.intersect(&y), a & b),
            ("subtract", x.subtract(&y), a & !b),
            ("union_all", IntervalSet::union_all([&x, &y, &x]), a | b),
        ] {
            prop_assert_eq!(mask_of(&got), want, "{} of {:?} and {:?}", what, x, y);
            prop_assert!(is_canonical(&got), "{} gave {:?}", what, got);
        }
        prop_assert_eq!(x.intersects(&y), a & b != 0);
        prop_assert_eq!(x.is_subset(&y), a & !b == 0);
        // Equal sets compare equal however they were built (shared or fresh ranges).
        prop_assert_eq!(x.union(&y), y.union(&x));
        prop_assert_eq!(x.intersect(&y).union(&x.subtract(&y)), x);
    }
}

/// The bits `lo..=hi` of a mask.
fn range_mask(lo: u128, hi: u128) -> u64 {
    (lo..=hi).fold(0, |m, v| m | 1 << v)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// One range against many: the shape the walk meets at every step (a rule's port or
    /// host against a piece's "every address but these"), which random masks rarely draw.
    #[test]
    fn one_range_against_many_matches_the_bit_masks(
        lo in 0..UNIVERSE,
        len in 0..UNIVERSE,
        m in any::<u64>(),
    ) {
        let hi = (lo + len).min(UNIVERSE - 1);
        let (one, many) = (IntervalSet::range(lo, hi), set_of(m));
        let r = range_mask(lo, hi);
        for (what, got, want) in [
            ("one ∩ many", one.intersect(&many), r & m),
            ("many ∩ one", many.intersect(&one), r & m),
            ("one − many", one.subtract(&many), r & !m),
            ("many − one", many.subtract(&one), m & !r),
        ] {
            prop_assert_eq!(mask_of(&got), want, "{} of {:?} and {:?}", what, one, many);
            prop_assert!(is_canonical(&got), "{} gave {:?}", what, got);
        }
        prop_assert_eq!(one.intersects(&many), r & m != 0);
        prop_assert_eq!(many.intersects(&one), r & m != 0);
        prop_assert_eq!(one.is_subset(&many), r & !m == 0);
        prop_assert_eq!(many.is_subset(&one), m & !r == 0);
    }
}

/// The smallest and largest bit of a mask.
fn hull_of(mask: u64) -> Option<(u32, u32)> {
    (mask != 0).then(|| (mask.trailing_zeros(), 63 - mask.leading_zeros()))
}

fn hulls_meet(a: u64, b: u64) -> bool {
    match (hull_of(a), hull_of(b)) {
        (Some(x), Some(y)) => x.0 <= y.1 && y.0 <= x.1,
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Service bounds prefilter the chain analysis' index: two services that share a
    /// packet must have overlapping bounds, and bounds overlap exactly when the hulls of
    /// both fields do.
    #[test]
    fn service_bounds_overlap_as_the_hulls_do(
        pa in any::<u64>(), pb in any::<u64>(), da in any::<u64>(), db in any::<u64>(),
    ) {
        let a = ServiceBounds::of(&set_of(pa), &set_of(da));
        let b = ServiceBounds::of(&set_of(pb), &set_of(db));
        prop_assert_eq!(a.overlaps(&b), hulls_meet(pa, pb) && hulls_meet(da, db));
        if pa & pb != 0 && da & db != 0 {
            prop_assert!(a.overlaps(&b));
        }
        let (proto, port) = (u128::from(pb.trailing_zeros() % 64), u128::from(db.trailing_zeros() % 64));
        if set_of(pa).contains(proto) && set_of(da).contains(port) {
            prop_assert!(a.overlaps(&ServiceBounds::point(proto, port)));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The walk skips a rule whose bounds miss a piece's: that must never skip a rule
    /// the piece meets.
    #[test]
    fn cube_bounds_overlap_whenever_the_cubes_meet(
        masks in proptest::array::uniform6(any::<u64>()),
    ) {
        let [pa, da, aa, pb, db, ab] = masks;
        let (a, b) = (small_cube(pa, da, aa), small_cube(pb, db, ab));
        let overlap = Bounds::of(&a).overlaps(&Bounds::of(&b));
        prop_assert_eq!(
            overlap,
            hulls_meet(pa, pb) && hulls_meet(da, db) && hulls_meet(aa, ab)
        );
        if a.intersects(&b) {
            prop_assert!(overlap);
        }
    }

    /// A walk step sends on what `split` leaves inside a rule as the packets the rule
    /// matches, and walks what it cuts off on past the rule: the first must be the
    /// intersection, and the pieces must be disjoint, outside the rule, and with it
    /// make up the whole cube.
    #[test]
    fn split_leaves_the_intersection_and_cuts_the_rest_into_disjoint_pieces(
        masks in proptest::array::uniform6(any::<u64>()),
    ) {
        let (a, b) = (small_cube(masks[0], masks[1], masks[2]), small_cube(masks[3], masks[4], masks[5]));
        let (outside, inside) = a.split(&b);
        if a.intersects(&b) {
            prop_assert_eq!(&inside, &a.intersect(&b));
        } else {
            prop_assert!(inside.is_empty());
        }
        prop_assert_eq!(&outside, &a.subtract(&b));
        for (i, piece) in outside.iter().enumerate() {
            prop_assert!(piece.is_subset(&a) && !piece.intersects(&b));
            prop_assert!(outside[i + 1..].iter().all(|other| !other.intersects(piece)));
        }
        let packets = |c: &Cube| {
            [Field::Proto, Field::DstPort, Field::DstAddr]
                .iter()
                .map(|&f| c.get(f).count())
                .product::<u128>()
        };
        let cut: u128 = outside.iter().map(packets).sum();
        prop_assert_eq!(cut + if inside.is_empty() { 0 } else { packets(&inside) }, packets(&a));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The chain analysis probes a rule with its two corner packets and asks which
    /// rules hold a packet; both read the cube's narrow fields without converting them,
    /// so they are checked against the fields as interval sets.
    #[test]
    fn corners_and_membership_agree_with_the_fields(
        masks in proptest::array::uniform3(any::<u64>()),
        probe in proptest::array::uniform3(0..UNIVERSE),
    ) {
        let c = small_cube(masks[0], masks[1], masks[2]);
        let fields = [Field::Proto, Field::State, Field::InIface, Field::OutIface,
            Field::DstPort, Field::SrcPort, Field::SrcAddr, Field::DstAddr];
        let low: Option<Vec<u128>> = fields.iter().map(|&f| c.get(f).first()).collect();
        let high: Option<Vec<u128>> =
            fields.iter().map(|&f| c.get(f).ranges().last().map(|r| r.1)).collect();
        prop_assert_eq!(c.low_corner().map(|p| p.to_vec()), low);
        prop_assert_eq!(c.high_corner().map(|p| p.to_vec()), high);
        if let Some(mut p) = c.low_corner() {
            prop_assert!(c.contains(&p));
            p[Field::Proto as usize] = probe[0];
            p[Field::DstPort as usize] = probe[1];
            p[Field::DstAddr as usize] = probe[2];
            let held = masks.iter().zip(probe).all(|(m, v)| m >> v & 1 == 1);
            prop_assert_eq!(c.contains(&p), held);
        }
    }
}

/// A cube of every packet but the protocols, destination ports and destinations in the
/// masks.
fn small_cube(proto: u64, port: u64, dst: u64) -> Cube {
    let mut c = Cube::full(2);
    c.restrict(Field::Proto, &set_of(proto));
    c.restrict(Field::DstPort, &set_of(port));
    c.restrict(Field::DstAddr, &set_of(dst));
    c
}
