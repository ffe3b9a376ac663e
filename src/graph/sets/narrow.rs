//! Sets of a packet cube's narrow fields: protocol, conntrack state, interfaces, ports.
//!
//! Their values fit in 32 bits, so one range takes 8 bytes here where an
//! [`IntervalSet`] spends 48 on its `u128` bounds and enum tag. A cube holds six such
//! fields beside its two addresses, and the analysis copies a cube at every split:
//! narrow storage makes a cube 240 bytes instead of 384, and with it every piece,
//! compiled rule and outcome of a walk.

use super::{IntervalSet, Ranges, sweep};
use std::sync::Arc;

/// A set of values of a narrow field, as a cube stores it. Converting to and from
/// [`IntervalSet`] is exact and never copies more than one range: sets of several
/// ranges share them.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct NarrowSet(Narrow);

/// The forms are canonical (a set has exactly one), so the derived equality and hash
/// are the sets'.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
enum Narrow {
    #[default]
    Empty,
    /// One range whose bounds fit in 32 bits.
    One(u32, u32),
    /// Two or more ranges, or one that does not fit in 32 bits (no narrow field has
    /// such values; holding them anyway keeps the conversion exact).
    Many(Arc<[(u128, u128)]>),
}

type R = (u128, u128);

impl NarrowSet {
    /// The same values as `set`.
    pub fn of(set: &IntervalSet) -> NarrowSet {
        match &set.ranges {
            Ranges::Empty => NarrowSet(Narrow::Empty),
            Ranges::One(r) => NarrowSet::one(*r),
            Ranges::Many(rs) => NarrowSet(Narrow::Many(rs.clone())),
        }
    }

    /// The same values as an [`IntervalSet`].
    pub fn to_set(&self) -> IntervalSet {
        let ranges = match &self.0 {
            Narrow::Empty => Ranges::Empty,
            Narrow::One(lo, hi) => Ranges::One((u128::from(*lo), u128::from(*hi))),
            Narrow::Many(rs) if rs.len() == 1 => Ranges::One(rs[0]),
            Narrow::Many(rs) => Ranges::Many(rs.clone()),
        };
        IntervalSet { ranges }
    }

    fn one((lo, hi): R) -> NarrowSet {
        match (u32::try_from(lo), u32::try_from(hi)) {
            (Ok(lo), Ok(hi)) => NarrowSet(Narrow::One(lo, hi)),
            _ => NarrowSet(Narrow::Many(Arc::from([(lo, hi)]))),
        }
    }

    /// Holds `built`, sharing `a`'s or `b`'s ranges when it equals one of them (as
    /// [`IntervalSet`] does: a difference or intersection is often an operand).
    fn built(built: &[R], a: &NarrowSet, b: &NarrowSet) -> NarrowSet {
        match built {
            [] => NarrowSet(Narrow::Empty),
            [r] => NarrowSet::one(*r),
            _ => match (&a.0, &b.0) {
                (Narrow::Many(x), _) if **x == *built => a.clone(),
                (_, Narrow::Many(y)) if **y == *built => b.clone(),
                _ => NarrowSet(Narrow::Many(Arc::from(built))),
            },
        }
    }

    /// The set of `ranges`, `len` of them, canonical already.
    fn collected(len: usize, mut ranges: impl Iterator<Item = R>) -> NarrowSet {
        match len {
            0 => NarrowSet(Narrow::Empty),
            1 => ranges
                .next()
                .map_or(NarrowSet(Narrow::Empty), NarrowSet::one),
            _ => NarrowSet(Narrow::Many(ranges.collect())),
        }
    }

    /// The ranges, in `one` if the set holds them inline.
    fn ranges<'a>(&'a self, one: &'a mut [R; 1]) -> &'a [R] {
        match &self.0 {
            Narrow::Empty => &[],
            Narrow::One(lo, hi) => {
                one[0] = (u128::from(*lo), u128::from(*hi));
                one
            }
            Narrow::Many(rs) => rs,
        }
    }

    /// True if no value is in the set.
    pub fn is_empty(&self) -> bool {
        matches!(self.0, Narrow::Empty)
    }

    /// The smallest and the largest value.
    pub fn bounds(&self) -> Option<(u128, u128)> {
        match &self.0 {
            Narrow::Empty => None,
            Narrow::One(lo, hi) => Some((u128::from(*lo), u128::from(*hi))),
            Narrow::Many(rs) => Some((rs.first()?.0, rs.last()?.1)),
        }
    }

    /// True if `v` is in the set.
    pub fn contains(&self, v: u128) -> bool {
        match &self.0 {
            Narrow::Empty => false,
            Narrow::One(lo, hi) => u128::from(*lo) <= v && v <= u128::from(*hi),
            Narrow::Many(rs) => sweep::contains(rs, v),
        }
    }

    /// Values in either set.
    pub fn union(&self, other: &NarrowSet) -> NarrowSet {
        let (mut a, mut b) = ([(0, 0)], [(0, 0)]);
        let out = sweep::union(self.ranges(&mut a), other.ranges(&mut b));
        NarrowSet::built(&out, self, other)
    }

    /// Values in both sets.
    pub fn intersect(&self, other: &NarrowSet) -> NarrowSet {
        if let (Narrow::One(a_lo, a_hi), Narrow::One(b_lo, b_hi)) = (&self.0, &other.0) {
            // Most fields of most pieces and rules are one range: no merge pass.
            let (lo, hi) = (*a_lo.max(b_lo), *a_hi.min(b_hi));
            return NarrowSet(if lo <= hi {
                Narrow::One(lo, hi)
            } else {
                Narrow::Empty
            });
        }
        // One range that holds all of a set of several: that set, shared, with no
        // merge pass.
        if holds_all(self, other) {
            return other.clone();
        }
        if holds_all(other, self) {
            return self.clone();
        }
        let (mut a, mut b) = ([(0, 0)], [(0, 0)]);
        let (len, ranges) = match (&self.0, &other.0) {
            (_, Narrow::One(lo, hi)) => sweep::within_range(self.ranges(&mut a), wide(*lo, *hi)),
            (Narrow::One(lo, hi), _) => sweep::within_range(other.ranges(&mut b), wide(*lo, *hi)),
            _ => {
                let out = sweep::intersect(self.ranges(&mut a), other.ranges(&mut b));
                return NarrowSet::built(&out, self, other);
            }
        };
        NarrowSet::collected(len, ranges)
    }

    /// True if the sets share a value.
    pub fn intersects(&self, other: &NarrowSet) -> bool {
        if let (Narrow::One(a_lo, a_hi), Narrow::One(b_lo, b_hi)) = (&self.0, &other.0) {
            return a_lo.max(b_lo) <= a_hi.min(b_hi);
        }
        let (mut a, mut b) = ([(0, 0)], [(0, 0)]);
        sweep::intersects(self.ranges(&mut a), other.ranges(&mut b))
    }

    /// True if every value of `self` is in `other`.
    pub fn is_subset(&self, other: &NarrowSet) -> bool {
        if let (Narrow::One(a_lo, a_hi), Narrow::One(b_lo, b_hi)) = (&self.0, &other.0) {
            return b_lo <= a_lo && a_hi <= b_hi;
        }
        let (mut a, mut b) = ([(0, 0)], [(0, 0)]);
        sweep::is_subset(self.ranges(&mut a), other.ranges(&mut b))
    }

    /// Values in `self` but not in `other`.
    pub fn subtract(&self, other: &NarrowSet) -> NarrowSet {
        let (mut a, mut b) = ([(0, 0)], [(0, 0)]);
        if let Narrow::One(lo, hi) = other.0 {
            return match sweep::without_range(self.ranges(&mut a), wide(lo, hi)) {
                Some((len, ranges)) => NarrowSet::collected(len, ranges),
                None => self.clone(),
            };
        }
        let out = sweep::subtract(self.ranges(&mut a), other.ranges(&mut b));
        NarrowSet::built(&out, self, other)
    }
}

/// An inline range as the ranges of the sweep.
fn wide(lo: u32, hi: u32) -> R {
    (u128::from(lo), u128::from(hi))
}

/// True if `one` is one inline range that holds every value of `set`, a set of several
/// ranges (the ones [`NarrowSet::built`] would share).
fn holds_all(one: &NarrowSet, set: &NarrowSet) -> bool {
    let inline = matches!(one.0, Narrow::One(..));
    let several = matches!(&set.0, Narrow::Many(rs) if rs.len() > 1);
    match (one.bounds(), set.bounds()) {
        (Some((lo, hi)), Some((first, last))) if inline && several => lo <= first && last <= hi,
        _ => false,
    }
}

impl std::fmt::Debug for NarrowSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_set().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(r: &[(u128, u128)]) -> IntervalSet {
        IntervalSet::from_ranges(r.iter().copied())
    }

    /// Sets of up to four ranges over a small universe that also reaches past 32 bits,
    /// so that both the inline and the shared forms meet each other.
    fn any_set() -> impl Strategy<Value = IntervalSet> {
        let bound = prop_oneof![0u128..70_000, Just(u128::from(u32::MAX)), Just(1u128 << 40)];
        prop::collection::vec((bound.clone(), bound), 0..4).prop_map(|rs| {
            set(&rs
                .into_iter()
                .map(|(a, b)| (a.min(b), a.max(b)))
                .collect::<Vec<_>>())
        })
    }

    proptest! {
        #[test]
        fn operations_agree_with_interval_sets(a in any_set(), b in any_set(), v in 0u128..70_000) {
            let (na, nb) = (NarrowSet::of(&a), NarrowSet::of(&b));
            prop_assert_eq!(na.to_set(), a.clone());
            prop_assert_eq!(na.union(&nb).to_set(), a.union(&b));
            prop_assert_eq!(na.intersect(&nb).to_set(), a.intersect(&b));
            prop_assert_eq!(na.subtract(&nb).to_set(), a.subtract(&b));
            prop_assert_eq!(na.intersects(&nb), a.intersects(&b));
            prop_assert_eq!(na.is_subset(&nb), a.is_subset(&b));
            prop_assert_eq!(na.is_empty(), a.is_empty());
            prop_assert_eq!(na.bounds(), a.bounds());
            prop_assert_eq!(na.contains(v), a.contains(v));
            // One form per set: equal sets are equal narrow sets, however they were made.
            prop_assert_eq!(na.intersect(&nb), NarrowSet::of(&a.intersect(&b)));
            prop_assert_eq!(na.subtract(&nb), NarrowSet::of(&a.subtract(&b)));
        }
    }

    #[test]
    fn a_range_past_32_bits_survives_the_round_trip() {
        let wide = IntervalSet::range(5, 1 << 40);
        let narrow = NarrowSet::of(&wide);
        assert_eq!(narrow.to_set(), wide);
        assert_eq!(narrow, NarrowSet::of(&IntervalSet::range(5, 1 << 40)));
        assert_ne!(
            narrow,
            NarrowSet::of(&IntervalSet::range(5, u128::from(u32::MAX)))
        );
    }

    #[test]
    fn a_narrow_set_is_half_an_interval_set() {
        assert_eq!(std::mem::size_of::<NarrowSet>(), 24);
    }
}
