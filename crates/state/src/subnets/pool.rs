//! A subnet's pool and its batch settlement: pure integer functions, no state.
//!
//! # The batch price
//!
//! All stake (MYC → alpha) and unstake (alpha → MYC) orders of one block on one pool settle at
//! one price. With pool reserves `y` (MYC) and `x` (alpha), and the block's orders bringing `Y`
//! MYC and `X` alpha (after the swap fee), every order fills at
//!
//! `p = (y + Y) / (x + X)` MYC per alpha:
//!
//! a staker who brought `m` MYC gets `⌊m / p⌋ = ⌊m·(x+X)/(y+Y)⌋` alpha, an unstaker who brought
//! `a` alpha gets `⌊a·p⌋ = ⌊a·(y+Y)/(x+X)⌋` MYC. Why this price: the two sides first trade with
//! each other at `p`, and the side left over trades with the pool as one constant-product swap
//! whose average price is again `p`. In real numbers the pool ends at `y' = p·x`, `x' = y/p`, so
//! `x'·y' = x·y` exactly; with floors every payout is rounded down and the pool keeps the dust,
//! so `k` never falls. A block with only stakes (or only unstakes) is exactly one
//! constant-product swap of their sum. Order inside the block does not matter, so nobody can
//! sandwich a swap inside a block.
//!
//! Fee: `⌊amount · 33 / 65535⌋` of each order's input stays in the pool (as subtensor's
//! protocol-owned liquidity earns it), on the side it came in.
//!
//! Limit prices are MYC base units per whole alpha (10^9 alpha base units); `0` means none. A
//! stake fails its limit when `p > limit`, an unstake when `p < limit`; the caller refuses such
//! orders and settles the block again without them (see the parent module).

use alloy_primitives::U256;
use serde::{Deserialize, Serialize};

/// Swap fee numerator over [`FEE_DENOMINATOR`] (33/65535 ≈ 0.05%, subtensor's default).
pub const SWAP_FEE: u128 = 33;
pub const FEE_DENOMINATOR: u128 = 65_535;
/// 10^9: limit prices are per whole alpha token.
pub const PRICE_SCALE: u128 = 1_000_000_000;

/// Which way an order swaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// MYC in, alpha out.
    Stake,
    /// Alpha in, MYC out.
    Unstake,
}

/// One order of a batch: `amount` of the input token (MYC for a stake, alpha for an unstake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOrder {
    pub side: Side,
    pub amount: u128,
    /// 0: no limit.
    pub limit_price: u128,
}

/// The result of settling a batch on a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// Per order, in the same order: what it receives (alpha for a stake, MYC for an unstake).
    pub payouts: Vec<u128>,
    /// Clearing price as a fraction `num / den` (MYC base units per alpha base unit).
    pub price_num: u128,
    pub price_den: u128,
    /// Pool reserves after the batch.
    pub myc_reserve: u128,
    pub alpha_reserve: u128,
}

/// The swap fee of an order's input.
pub fn swap_fee(amount: u128) -> u128 {
    amount.saturating_mul(SWAP_FEE) / FEE_DENOMINATOR
}

/// `⌊a · b / c⌋` without overflow (c > 0).
pub fn mul_div(a: u128, b: u128, c: u128) -> u128 {
    let r = U256::from(a) * U256::from(b) / U256::from(c);
    u128::try_from(r).unwrap_or(u128::MAX)
}

/// Whether the clearing price `num/den` (per base unit) breaks an order's limit (per 10^9).
pub fn breaks_limit(side: Side, limit_price: u128, num: u128, den: u128) -> bool {
    if limit_price == 0 {
        return false;
    }
    let price_scaled = U256::from(num) * U256::from(PRICE_SCALE);
    let limit_scaled = U256::from(limit_price) * U256::from(den);
    match side {
        Side::Stake => price_scaled > limit_scaled,
        Side::Unstake => price_scaled < limit_scaled,
    }
}

/// Indices of the orders whose limit the batch's clearing price breaks (empty: all fill).
pub fn limit_failures(myc_reserve: u128, alpha_reserve: u128, orders: &[BatchOrder]) -> Vec<usize> {
    let (num, den) = clearing_price(myc_reserve, alpha_reserve, orders);
    orders
        .iter()
        .enumerate()
        .filter(|(_, o)| breaks_limit(o.side, o.limit_price, num, den))
        .map(|(i, _)| i)
        .collect()
}

/// The clearing price `(y + Y) / (x + X)` of a batch, as `(num, den)`.
pub fn clearing_price(
    myc_reserve: u128,
    alpha_reserve: u128,
    orders: &[BatchOrder],
) -> (u128, u128) {
    let (mut y_in, mut x_in) = (0u128, 0u128);
    for o in orders {
        let net = o.amount - swap_fee(o.amount);
        match o.side {
            Side::Stake => y_in += net,
            Side::Unstake => x_in += net,
        }
    }
    (myc_reserve + y_in, alpha_reserve + x_in)
}

/// Settles every order at the batch price (limits are not checked here; see [`limit_failures`]).
/// Requires both reserves non-zero.
pub fn settle(myc_reserve: u128, alpha_reserve: u128, orders: &[BatchOrder]) -> Settlement {
    assert!(
        myc_reserve > 0 && alpha_reserve > 0,
        "pool with an empty reserve"
    );
    let (num, den) = clearing_price(myc_reserve, alpha_reserve, orders);
    let (mut y, mut x) = (num, den);
    let mut payouts = Vec::with_capacity(orders.len());
    for o in orders {
        let fee = swap_fee(o.amount);
        let net = o.amount - fee;
        match o.side {
            Side::Stake => {
                let out = mul_div(net, den, num);
                x -= out;
                y += fee;
                payouts.push(out);
            }
            Side::Unstake => {
                let out = mul_div(net, num, den);
                y -= out;
                x += fee;
                payouts.push(out);
            }
        }
    }
    Settlement {
        payouts,
        price_num: num,
        price_den: den,
        myc_reserve: y,
        alpha_reserve: x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn order(side: Side, amount: u128) -> BatchOrder {
        BatchOrder {
            side,
            amount,
            limit_price: 0,
        }
    }

    #[test]
    fn one_sided_batch_is_one_constant_product_swap() {
        let s = settle(1_000_000, 1_000_000, &[order(Side::Stake, 1_000_000)]);
        let net = 1_000_000 - swap_fee(1_000_000);
        assert_eq!(s.payouts, vec![net * 1_000_000 / (1_000_000 + net)]);
        assert_eq!(s.myc_reserve, 2_000_000);
    }

    #[test]
    fn both_sides_get_the_same_price() {
        let orders = [order(Side::Stake, 500_000), order(Side::Unstake, 400_000)];
        let s = settle(1_000_000, 2_000_000, &orders);
        // p = (y+Y)/(x+X)
        let y_in = 500_000 - swap_fee(500_000);
        let x_in = 400_000 - swap_fee(400_000);
        assert_eq!(s.price_num, 1_000_000 + y_in);
        assert_eq!(s.price_den, 2_000_000 + x_in);
        assert_eq!(s.payouts[0], y_in * s.price_den / s.price_num);
        assert_eq!(s.payouts[1], x_in * s.price_num / s.price_den);
    }

    #[test]
    fn limits_are_checked_against_the_batch_price() {
        // Pool at price 1 (10^9 per whole alpha); a large stake pushes the batch price to ~2.
        let orders = [
            BatchOrder {
                side: Side::Stake,
                amount: 1_000_000,
                limit_price: 1_500_000_000,
            },
            BatchOrder {
                side: Side::Unstake,
                amount: 10,
                limit_price: 1_500_000_000,
            },
        ];
        assert_eq!(limit_failures(1_000_000, 1_000_000, &orders), vec![0]);
        let small = [BatchOrder {
            side: Side::Stake,
            amount: 1_000,
            limit_price: 1_500_000_000,
        }];
        assert!(limit_failures(1_000_000, 1_000_000, &small).is_empty());
    }

    fn orders_strategy() -> impl Strategy<Value = Vec<BatchOrder>> {
        proptest::collection::vec(
            (any::<bool>(), 1u128..10_000_000_000_000u128).prop_map(|(stake, amount)| {
                order(if stake { Side::Stake } else { Side::Unstake }, amount)
            }),
            0..12,
        )
    }

    proptest! {
        /// The pool's k = x·y never falls through a batch.
        #[test]
        fn k_never_falls(y in 1u128..10_000_000_000_000_000, x in 1u128..10_000_000_000_000_000,
                         orders in orders_strategy()) {
            let s = settle(y, x, &orders);
            prop_assert!(U256::from(s.myc_reserve) * U256::from(s.alpha_reserve)
                >= U256::from(y) * U256::from(x));
            prop_assert!(s.myc_reserve > 0 && s.alpha_reserve > 0);
            // Value conservation per token: reserves + payouts = reserves before + inputs.
            let (mut myc_in, mut alpha_in, mut myc_out, mut alpha_out) = (0u128, 0u128, 0u128, 0u128);
            for (o, p) in orders.iter().zip(&s.payouts) {
                match o.side {
                    Side::Stake => { myc_in += o.amount; alpha_out += p; }
                    Side::Unstake => { alpha_in += o.amount; myc_out += p; }
                }
            }
            prop_assert_eq!(s.myc_reserve + myc_out, y + myc_in);
            prop_assert_eq!(s.alpha_reserve + alpha_out, x + alpha_in);
        }

        /// Staking then unstaking (next block, nobody else trading) never returns more MYC than
        /// was staked. (With other stakers in the same batch it can: they all pay the average
        /// price, below the price their buying leaves behind — as the first buyer of a
        /// sequence would.)
        #[test]
        fn stake_then_unstake_never_gains(y in 1u128..10_000_000_000_000_000, x in 1u128..10_000_000_000_000_000,
                                          amount in 1u128..10_000_000_000_000_000) {
            let s1 = settle(y, x, &[order(Side::Stake, amount)]);
            let alpha = *s1.payouts.last().unwrap();
            prop_assume!(alpha > 0);
            let s2 = settle(s1.myc_reserve, s1.alpha_reserve, &[order(Side::Unstake, alpha)]);
            prop_assert!(s2.payouts[0] <= amount, "{} > {}", s2.payouts[0], amount);
        }
    }
}
