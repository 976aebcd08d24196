//! The incentive layer's steps of a block, each called by the block pipeline in its order
//! ([`crate::pipeline`] lists the order and the formulas): batch settlement of the stake orders
//! (step 3), Taoflow (4), emission (5), moving prices (6), epochs (7) and burn adjustment (8).
//!
//! Each step changes [`Subnets`] only and hands back what the rest of the state must change
//! (MYC paid to unstakers, MYC minted); the pipeline writes that.

use super::epoch::run_subnet_epoch;
use super::pool::{self, BatchOrder, Side};
use super::*;
use crate::incentive::emission::{block_emission, block_emission_with, TOTAL_SUPPLY};
use crate::incentive::yuma::largest_remainder;

/// Taoflow EMA factor per block: 3.209e-6 (≈ 30-day half-life at 12 s blocks).
const FLOW_EMA_NUM: i64 = 3209;
const FLOW_EMA_DEN: i64 = 1_000_000_000;

/// Orders (by index) whose limit their pool's batch price breaks.
pub(crate) fn limit_failures(subnets: &Subnets) -> Vec<(usize, IncentiveError)> {
    let mut out = Vec::new();
    for (netuid, idx) in orders_by_pool(&subnets.orders) {
        let s = &subnets.subnets[&netuid];
        let batch: Vec<BatchOrder> = idx
            .iter()
            .map(|i| batch_order(&subnets.orders[*i]))
            .collect();
        let (num, den) = pool::clearing_price(s.pool.myc, s.pool.alpha, &batch);
        for k in pool::limit_failures(s.pool.myc, s.pool.alpha, &batch) {
            out.push((
                idx[k],
                IncentiveError::PriceLimit {
                    price: super::tx::price_string(num, den),
                    limit: batch[k].limit_price.to_string(),
                },
            ));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out
}

fn batch_order(o: &Order) -> BatchOrder {
    BatchOrder {
        side: o.side,
        amount: o.amount,
        limit_price: o.limit_price,
    }
}

fn orders_by_pool(orders: &[Order]) -> BTreeMap<u16, Vec<usize>> {
    let mut by: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, o) in orders.iter().enumerate() {
        by.entry(o.netuid).or_default().push(i);
    }
    by
}

/// What settling a block's stake orders did.
pub(crate) struct Settled {
    pub fills: Vec<SwapFill>,
    /// MYC each unstake order pays its coldkey, in fill order (the pipeline credits it).
    pub unstaked: Vec<(Address, u128)>,
}

/// Fills every order of the block at its pool's batch price (no limit may break: see
/// [`limit_failures`]); records each pool's net MYC flow for Taoflow.
pub(crate) fn settle_orders(subnets: &mut Subnets) -> Settled {
    let orders = std::mem::take(&mut subnets.orders);
    let mut settled = Settled {
        fills: Vec::with_capacity(orders.len()),
        unstaked: Vec::new(),
    };
    for (netuid, idx) in orders_by_pool(&orders) {
        let batch: Vec<BatchOrder> = idx.iter().map(|i| batch_order(&orders[*i])).collect();
        let s = subnets.subnets.get_mut(&netuid).expect("order on a subnet");
        let settlement = pool::settle(s.pool.myc, s.pool.alpha, &batch);
        let price = super::tx::price_string(settlement.price_num, settlement.price_den);
        let flow = settlement.myc_reserve as i128 - s.pool.myc as i128;
        s.pool.myc = settlement.myc_reserve;
        s.pool.alpha = settlement.alpha_reserve;
        subnets.block_flow.insert(netuid, flow);
        for (k, i) in idx.iter().enumerate() {
            let o = &orders[*i];
            let out = settlement.payouts[k];
            match o.side {
                Side::Stake => s.add_position(o.hotkey, o.coldkey, out),
                Side::Unstake => settled.unstaked.push((o.coldkey, out)),
            }
            settled.fills.push(SwapFill {
                netuid,
                coldkey: o.coldkey,
                hotkey: o.hotkey,
                side: o.side,
                amount_in: o.amount,
                amount_out: out,
                price: price.clone(),
            });
        }
    }
    settled
}

/// Taoflow: each subnet's flow EMA takes in the block's net MYC flow (consumed).
pub(crate) fn update_flows(subnets: &mut Subnets) {
    let a = I64F64::from_num(FLOW_EMA_NUM) / I64F64::from_num(FLOW_EMA_DEN);
    let flows = std::mem::take(&mut subnets.block_flow);
    for s in subnets.subnets.values_mut() {
        let flow = flows.get(&s.netuid).copied().unwrap_or(0);
        let flow = I64F64::saturating_from_num(flow);
        let ema = fx(s.flow_ema_bits);
        s.flow_ema_bits = ema
            .saturating_add(a.saturating_mul(flow.saturating_sub(ema)))
            .to_bits();
    }
}

/// Emission: splits the block emission of MYC `issuance` among the subnets, injects each share
/// into its pool with alpha and mints the subnet's alpha emission into its pending alpha. The
/// receipt says where every unit went; the MYC it injected ([`EmissionReceipt::myc_injected`])
/// is newly issued, which the caller records.
pub(crate) fn emit(
    subnets: &mut Subnets,
    block: u64,
    issuance: u128,
    swaps: Vec<SwapFill>,
) -> EmissionReceipt {
    let emission = block_emission(u64::try_from(issuance).unwrap_or(u64::MAX)) as u128;
    let shares = emission_shares(subnets, emission);
    let assigned: u128 = shares.iter().sum();
    let mut receipt = EmissionReceipt {
        height: block,
        issuance,
        block_emission: emission,
        myc_unassigned: emission - assigned,
        subnets: Vec::with_capacity(shares.len()),
        swaps,
    };
    for (s, share) in subnets.subnets.values_mut().zip(shares) {
        receipt.subnets.push(inject(s, share));
    }
    receipt
}

/// Injects `share` MYC with alpha at the pool price (alpha capped at the alpha emission), then
/// mints the alpha emission: the owner cut and the epoch's pending alpha.
fn inject(s: &mut Subnet, share: u128) -> SubnetEmission {
    let alpha_emission = block_emission_with(
        u64::try_from(s.alpha_issued).unwrap_or(u64::MAX),
        TOTAL_SUPPLY,
        TOKEN as u64,
    ) as u128;
    let mut alpha_in = pool::mul_div(share, s.pool.alpha, s.pool.myc);
    let mut myc_in = share;
    if alpha_in > alpha_emission {
        alpha_in = alpha_emission;
        myc_in = pool::mul_div(alpha_in, s.pool.myc, s.pool.alpha);
    }
    s.pool.myc += myc_in;
    s.pool.alpha += alpha_in;
    let owner_cut = alpha_emission * OWNER_CUT / pool::FEE_DENOMINATOR;
    let pending = alpha_emission - owner_cut;
    s.pending_owner += owner_cut;
    s.pending_alpha += pending;
    s.alpha_issued += alpha_in + alpha_emission;
    SubnetEmission {
        netuid: s.netuid,
        flow_ema: fx(s.flow_ema_bits).to_string(),
        myc_share: share,
        myc_injected: myc_in,
        myc_recycled: share - myc_in,
        alpha_injected: alpha_in,
        alpha_emission,
        owner_cut,
        pending_added: pending,
        pool_myc: s.pool.myc,
        pool_alpha: s.pool.alpha,
        epoch: None,
    }
}

/// Moving price per pool: EMA of min(spot, 1), faster the longer the subnet has existed.
pub(crate) fn update_moving_prices(subnets: &mut Subnets, block: u64) {
    for s in subnets.subnets.values_mut() {
        let b = block.saturating_sub(s.registered_at);
        let alpha = I64F64::from_num(3) / I64F64::from_num(1_000_000)
            * I64F64::saturating_from_num(b)
            / I64F64::saturating_from_num(b.saturating_add(201_600));
        let spot = (I64F64::saturating_from_num(s.pool.myc)
            / I64F64::saturating_from_num(s.pool.alpha))
        .min(I64F64::ONE);
        let m = fx(s.pool.moving_price_bits);
        s.pool.moving_price_bits = (m + alpha * (spot - m)).to_bits();
    }
}

/// Epochs: every subnet whose epoch falls in `block` ([`EpochSchedule::is_epoch_block`]) runs
/// one; what it paid goes into that subnet's line of `receipt`.
pub(crate) fn run_epochs(subnets: &mut Subnets, block: u64, receipt: &mut EmissionReceipt) {
    for (s, line) in subnets.subnets.values_mut().zip(&mut receipt.subnets) {
        debug_assert_eq!(s.netuid, line.netuid, "receipt lines follow netuid order");
        if s.epochs().is_epoch_block(block) {
            line.epoch = Some(run_subnet_epoch(s, block));
        }
    }
}

/// Burn adjustment: every `adjustment_interval` blocks after its registration, a subnet's burn
/// moves towards its target registrations ([`adjusted_burn`]) and the count restarts.
pub(crate) fn adjust_burns(subnets: &mut Subnets, block: u64) {
    for s in subnets.subnets.values_mut() {
        let interval = s.params.adjustment_interval;
        if block > s.registered_at && (block - s.registered_at).is_multiple_of(interval) {
            s.burn = adjusted_burn(
                s.burn,
                s.regs_this_interval,
                s.params.target_regs_per_interval,
            );
            s.regs_this_interval = 0;
        }
    }
}

/// `burn' = α·burn + (1−α)·burn·(regs + T)/(2T)`, α = 0.9, within [MIN_BURN, MAX_BURN].
pub fn adjusted_burn(burn: u128, regs: u64, target: u64) -> u128 {
    let (alpha_num, den) = (9u128, 10u128);
    let t = target.max(1) as u128;
    let next = burn * alpha_num / den
        + pool::mul_div(burn * (den - alpha_num), regs as u128 + t, den * 2 * t);
    next.clamp(MIN_BURN, MAX_BURN)
}

/// Each subnet's MYC share of `emission`, in netuid order (exact; the rest is unassigned).
pub(crate) fn emission_shares(subnets: &Subnets, emission: u128) -> Vec<u128> {
    let emas: Vec<i128> = subnets.subnets.values().map(|s| s.flow_ema_bits).collect();
    let mut z: Vec<u128> = emas.iter().map(|b| (*b).max(0) as u128).collect();
    if z.iter().all(|v| *v == 0) {
        // No positive flow anywhere: equal shares for the subnets whose flow is not negative.
        z = emas.iter().map(|b| u128::from(*b >= 0)).collect();
    }
    // largest_remainder wants weights below 2^63: drop low bits of all alike.
    let max = z.iter().copied().max().unwrap_or(0);
    let shift = (128 - max.leading_zeros()).saturating_sub(62);
    let w: Vec<u128> = z.iter().map(|v| v >> shift).collect();
    let emission = u64::try_from(emission).expect("block emission fits in 64 bits");
    match largest_remainder(emission, &w) {
        Some(parts) => parts.into_iter().map(u128::from).collect(),
        None => vec![0; z.len()],
    }
}
