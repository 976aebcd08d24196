//! Block emission from total issuance, with halvings and the 21M cap.
//!
//! Reference: subtensor's `pallets/subtensor/src/coinbase/block_emission.rs` (github.com/
//! opentensor/subtensor):
//!
//! `E(I) = 1e9 · 2^−⌊log2(1 / (1 − I / 21e15))⌋` base units (1 token = 1e9 base units), and
//! `E = 0` once `I ≥ 21e15`.
//!
//! Subtensor evaluates the logarithm in `I96F32`. mycel evaluates the same floor exactly in
//! integers: with `S` the total supply and `rem = S − I`, `⌊log2(S / rem)⌋` is the largest `k`
//! with `2^k · rem ≤ S`, and `1e9 · 2^−k` floored is `1e9 >> k`. So the emission is 1 token per
//! block below `S/2` issued, ½ from `S/2`, ¼ from `3S/4`, …, and it halves for the k-th time
//! exactly when issuance reaches `S − ⌊S / 2^k⌋` ([`halving_threshold`]), not one base unit
//! earlier or later. Burned tokens lower `I` and so delay the halvings.
//!
//! The same function with a subnet's alpha issuance gives its alpha emission.

/// One token in base units.
pub const TOKEN: u64 = 1_000_000_000;
/// The cap on total issuance: 21 million tokens.
pub const TOTAL_SUPPLY: u64 = 21_000_000 * TOKEN;
/// Emission per block before the first halving: 1 token.
pub const DEFAULT_BLOCK_EMISSION: u64 = TOKEN;

/// Number of halvings that have happened at `issuance` for a cap of `total_supply`
/// (`⌊log2(S / (S − I))⌋`), or `None` once the cap is reached.
pub fn halvings(issuance: u64, total_supply: u64) -> Option<u32> {
    if issuance >= total_supply {
        return None;
    }
    let rem = (total_supply - issuance) as u128;
    let s = total_supply as u128;
    // rem ≥ 1 and S < 2^64, so k < 64.
    let mut k: u32 = 0;
    while (rem << (k + 1)) <= s {
        k += 1;
    }
    Some(k)
}

/// Base units emitted in a block at `issuance`, with cap `total_supply` and pre-halving emission
/// `base_emission`.
pub fn block_emission_with(issuance: u64, total_supply: u64, base_emission: u64) -> u64 {
    match halvings(issuance, total_supply) {
        Some(k) if k < 64 => base_emission >> k,
        _ => 0,
    }
}

/// MYC emitted in a block at total issuance `issuance` (base units).
pub fn block_emission(issuance: u64) -> u64 {
    block_emission_with(issuance, TOTAL_SUPPLY, DEFAULT_BLOCK_EMISSION)
}

/// The issuance at which the `k`-th halving happens (k ≥ 1): `S − ⌊S / 2^k⌋`.
pub fn halving_threshold(k: u32, total_supply: u64) -> u64 {
    if k >= 64 {
        return total_supply;
    }
    total_supply - (total_supply >> k)
}

/// The issuance at which the emission next halves (or stops), given the current issuance;
/// `None` once the cap is reached.
pub fn next_halving_at(issuance: u64, total_supply: u64) -> Option<u64> {
    let k = halvings(issuance, total_supply)?;
    Some(halving_threshold(k + 1, total_supply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emission_schedule_matches_reference() {
        assert_eq!(block_emission(0), TOKEN);
        assert_eq!(block_emission(10_500_000 * TOKEN - 1), TOKEN);
        assert_eq!(block_emission(10_500_000 * TOKEN), TOKEN / 2);
        assert_eq!(block_emission(15_750_000 * TOKEN - 1), TOKEN / 2);
        assert_eq!(block_emission(15_750_000 * TOKEN), TOKEN / 4);
        assert_eq!(block_emission(18_375_000 * TOKEN), TOKEN / 8);
        assert_eq!(block_emission(TOTAL_SUPPLY - 1), 0);
        assert_eq!(block_emission(TOTAL_SUPPLY), 0);
        assert_eq!(block_emission(u64::MAX), 0);
        assert_eq!(next_halving_at(0, TOTAL_SUPPLY), Some(10_500_000 * TOKEN));
        assert_eq!(
            next_halving_at(10_500_000 * TOKEN, TOTAL_SUPPLY),
            Some(15_750_000 * TOKEN)
        );
        assert_eq!(next_halving_at(TOTAL_SUPPLY, TOTAL_SUPPLY), None);
    }

    #[test]
    fn emission_reaches_zero_before_the_cap() {
        // After 30 halvings 1e9 >> 30 = 0: emission stops strictly before 21M are issued.
        let t = halving_threshold(30, TOTAL_SUPPLY);
        assert_eq!(block_emission(t), 0);
        assert_eq!(block_emission(t - 1), 1);
    }

    proptest! {
        /// A halving happens exactly at the issuance threshold: one base unit below it the
        /// emission is still the previous rate, at it the rate has halved.
        #[test]
        fn halving_happens_exactly_at_threshold(k in 1u32..30) {
            let t = halving_threshold(k, TOTAL_SUPPLY);
            prop_assert_eq!(block_emission(t - 1), DEFAULT_BLOCK_EMISSION >> (k - 1));
            prop_assert_eq!(block_emission(t), DEFAULT_BLOCK_EMISSION >> k);
        }

        /// Emission never rises as issuance grows and never exceeds the base rate.
        #[test]
        fn emission_is_monotone(a in 0u64..=TOTAL_SUPPLY, b in 0u64..=TOTAL_SUPPLY) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(block_emission(lo) >= block_emission(hi));
            prop_assert!(block_emission(lo) <= DEFAULT_BLOCK_EMISSION);
        }

        /// Issuance plus one block's emission never passes the cap.
        #[test]
        fn emission_respects_cap(i in 0u64..=TOTAL_SUPPLY) {
            prop_assert!(i + block_emission(i) <= TOTAL_SUPPLY);
        }

        /// The integer formula agrees with the logarithm's definition.
        #[test]
        fn halvings_is_floor_log2(i in 0u64..TOTAL_SUPPLY) {
            let k = halvings(i, TOTAL_SUPPLY).unwrap();
            let rem = (TOTAL_SUPPLY - i) as u128;
            prop_assert!((rem << k) <= TOTAL_SUPPLY as u128);
            prop_assert!((rem << (k + 1)) > TOTAL_SUPPLY as u128);
        }
    }
}
