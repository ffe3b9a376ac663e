//! Interval-set algebra against a brute-force model: sets of 0..64 as bit masks.
//!
//! The analysis is exact only if union, intersection and difference are; they are
//! written for speed (merge passes, shared results), so they are checked here against
//! the obvious definition on every small set proptest draws.

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
    }
}
