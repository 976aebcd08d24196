//! The incentive layer's part of a block: the batch of stake orders, Taoflow, emission, moving
//! prices, epochs and the emission receipt (see the parent module for the order and formulas).

use super::pool::{self, BatchOrder, Side};
use super::tx::drop_expired_commits;
use super::*;
use crate::incentive::emission::{block_emission, block_emission_with, TOTAL_SUPPLY};
use crate::incentive::math::fixed_proportion_to_u16;
use crate::incentive::yuma::largest_remainder;
use crate::incentive::{run_epoch, EpochInput, LiquidAlpha, YumaVersion};
use crate::{bank, State, TxError, TxReceipt, VerifiedTx};
use mycel_types::Token;

/// Taoflow EMA factor per block: 3.209e-6 (≈ 30-day half-life at 12 s blocks).
const FLOW_EMA_NUM: i64 = 3209;
const FLOW_EMA_DEN: i64 = 1_000_000_000;

/// One filled stake or unstake order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapFill {
    pub netuid: u16,
    pub coldkey: Address,
    pub hotkey: Address,
    pub side: Side,
    /// MYC for a stake, alpha for an unstake (fee included).
    #[serde(with = "amount_string")]
    pub amount_in: u128,
    /// Alpha for a stake, MYC for an unstake.
    #[serde(with = "amount_string")]
    pub amount_out: u128,
    /// The block's batch price on this pool, MYC base units per whole alpha.
    pub price: String,
}

/// What one neuron got at an epoch (alpha base units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeuronPayout {
    pub uid: u16,
    pub hotkey: Address,
    /// Miner part (incentive), to the neuron's own position.
    #[serde(with = "amount_string")]
    pub incentive: u128,
    /// Validator part (dividends) = take + to_stakers.
    #[serde(with = "amount_string")]
    pub dividends: u128,
    /// The validator's take of its dividends, to its own position.
    #[serde(with = "amount_string")]
    pub take: u128,
    /// Dividends shared among everyone staked on the hotkey, by alpha.
    #[serde(with = "amount_string")]
    pub to_stakers: u128,
}

/// One subnet epoch's payout. `owner_cut + Σ incentive + Σ dividends + recycled = paid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochReceipt {
    /// Alpha distributed in this epoch (the pending alpha and owner cut).
    #[serde(with = "amount_string")]
    pub paid: u128,
    #[serde(with = "amount_string")]
    pub owner_cut: u128,
    pub neurons: Vec<NeuronPayout>,
    /// Alpha nobody could receive (no weights and no stake): its issuance is taken back.
    #[serde(with = "amount_string")]
    pub recycled: u128,
}

/// One subnet's part of a block's emission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetEmission {
    pub netuid: u16,
    /// Its Taoflow EMA after this block (MYC base units per block, decimal).
    pub flow_ema: String,
    /// Its share of the block emission (MYC base units) = myc_injected + myc_recycled.
    #[serde(with = "amount_string")]
    pub myc_share: u128,
    #[serde(with = "amount_string")]
    pub myc_injected: u128,
    #[serde(with = "amount_string")]
    pub myc_recycled: u128,
    /// Alpha minted into the pool with the injected MYC.
    #[serde(with = "amount_string")]
    pub alpha_injected: u128,
    /// Alpha emission of the block = owner_cut + pending_added.
    #[serde(with = "amount_string")]
    pub alpha_emission: u128,
    #[serde(with = "amount_string")]
    pub owner_cut: u128,
    #[serde(with = "amount_string")]
    pub pending_added: u128,
    /// The epoch that ran in this block, if any.
    pub epoch: Option<EpochReceipt>,
}

/// Where every base unit of one block's emission went.
/// `Σ subnets.myc_share + myc_unassigned = block_emission`, asserted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmissionReceipt {
    pub height: u64,
    /// MYC issuance (issued − burned) the emission was computed from.
    #[serde(with = "amount_string")]
    pub issuance: u128,
    #[serde(with = "amount_string")]
    pub block_emission: u128,
    /// Emission no subnet could take (no subnets, or all with negative flow): never minted.
    #[serde(with = "amount_string")]
    pub myc_unassigned: u128,
    pub subnets: Vec<SubnetEmission>,
    /// The block's filled stake and unstake orders.
    pub swaps: Vec<SwapFill>,
}

impl EmissionReceipt {
    /// Panics unless the parts add up exactly.
    pub fn assert_exact(&self) {
        let shares: u128 = self.subnets.iter().map(|s| s.myc_share).sum();
        assert_eq!(
            shares + self.myc_unassigned,
            self.block_emission,
            "emission receipt at height {} does not add up",
            self.height
        );
        for s in &self.subnets {
            assert_eq!(s.myc_injected + s.myc_recycled, s.myc_share);
            assert_eq!(s.owner_cut + s.pending_added, s.alpha_emission);
            if let Some(e) = &s.epoch {
                let mut sum = e.owner_cut + e.recycled;
                for n in &e.neurons {
                    assert_eq!(n.take + n.to_stakers, n.dividends);
                    sum += n.incentive + n.dividends;
                }
                assert_eq!(
                    sum, e.paid,
                    "epoch receipt of subnet {} does not add up",
                    s.netuid
                );
            }
        }
    }
}

/// Applies a block's transactions with batch settlement of stake orders (see the parent
/// module): refused orders are taken out and the block re-applied from `state` as it was.
pub(crate) fn apply_txs(
    state: &mut State,
    txs: &[VerifiedTx],
) -> (Vec<Result<TxReceipt, TxError>>, Vec<SwapFill>) {
    let backup = txs
        .iter()
        .any(|t| super::is_swap(&t.tx.kind))
        .then(|| state.clone());
    let pre_existing = state.subnets.orders.len();
    let mut refused: BTreeMap<usize, TxError> = BTreeMap::new();
    loop {
        let mut order_tx: Vec<usize> = Vec::new();
        let results: Vec<Result<TxReceipt, TxError>> = txs
            .iter()
            .enumerate()
            .map(|(i, tx)| {
                if let Some(e) = refused.get(&i) {
                    return Err(e.clone());
                }
                let before = state.subnets.orders.len();
                let r = state.apply_verified(tx);
                order_tx.extend(std::iter::repeat_n(i, state.subnets.orders.len() - before));
                r
            })
            .collect();
        let failures = limit_failures(state);
        let newly: Vec<(usize, IncentiveError)> = failures
            .into_iter()
            .filter(|(o, _)| *o >= pre_existing)
            .map(|(o, e)| (order_tx[o - pre_existing], e))
            .collect();
        if newly.is_empty() {
            let fills = settle_orders(state);
            return (results, fills);
        }
        for (i, e) in newly {
            refused.insert(i, TxError::Incentive(e));
        }
        *state = backup.clone().expect("orders come from swap transactions");
    }
}

/// Orders (by index) whose limit their pool's batch price breaks.
fn limit_failures(state: &State) -> Vec<(usize, IncentiveError)> {
    let mut out = Vec::new();
    for (netuid, idx) in orders_by_pool(&state.subnets.orders) {
        let s = &state.subnets.subnets[&netuid];
        let batch: Vec<BatchOrder> = idx
            .iter()
            .map(|i| batch_order(&state.subnets.orders[*i]))
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

/// Fills every order of the block at its pool's batch price; records each pool's net MYC flow.
fn settle_orders(state: &mut State) -> Vec<SwapFill> {
    let orders = std::mem::take(&mut state.subnets.orders);
    let mut fills = Vec::with_capacity(orders.len());
    for (netuid, idx) in orders_by_pool(&orders) {
        let batch: Vec<BatchOrder> = idx.iter().map(|i| batch_order(&orders[*i])).collect();
        let s = state
            .subnets
            .subnets
            .get_mut(&netuid)
            .expect("order on a subnet");
        let settlement = pool::settle(s.pool.myc, s.pool.alpha, &batch);
        let price = super::tx::price_string(settlement.price_num, settlement.price_den);
        let flow = settlement.myc_reserve as i128 - s.pool.myc as i128;
        s.pool.myc = settlement.myc_reserve;
        s.pool.alpha = settlement.alpha_reserve;
        state.subnets.block_flow.insert(netuid, flow);
        for (k, i) in idx.iter().enumerate() {
            let o = &orders[*i];
            let out = settlement.payouts[k];
            match o.side {
                Side::Stake => {
                    let s = state.subnets.subnets.get_mut(&netuid).expect("subnet");
                    s.add_position(o.hotkey, o.coldkey, out);
                }
                Side::Unstake => {
                    let account = state.account(&o.coldkey);
                    let credited = bank::credit(account, Token::Myc, out)
                        .expect("MYC balances stay below the supply");
                    state.accounts.insert(o.coldkey, credited);
                    state.tree.touch(o.coldkey);
                }
            }
            fills.push(SwapFill {
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
    fills
}

/// Everything after the transactions: Taoflow, emission, moving prices, epochs, burn
/// adjustment. `state.height` is already the new block's height.
pub(crate) fn end_block(state: &mut State, swaps: Vec<SwapFill>) {
    let block = state.height;
    if state.subnets.subnets.is_empty() {
        state.subnets.block_flow.clear();
        state.subnets.latest_receipt = None;
        return;
    }
    // Taoflow.
    let a = I64F64::from_num(FLOW_EMA_NUM) / I64F64::from_num(FLOW_EMA_DEN);
    let flows = std::mem::take(&mut state.subnets.block_flow);
    for s in state.subnets.subnets.values_mut() {
        let flow = flows.get(&s.netuid).copied().unwrap_or(0);
        let flow = I64F64::saturating_from_num(flow);
        let ema = fx(s.flow_ema_bits);
        s.flow_ema_bits = ema
            .saturating_add(a.saturating_mul(flow.saturating_sub(ema)))
            .to_bits();
    }

    // Emission shares.
    let issuance = state
        .supply
        .myc_issued
        .saturating_sub(state.supply.myc_burned);
    let emission = block_emission(u64::try_from(issuance).unwrap_or(u64::MAX)) as u128;
    let netuids: Vec<u16> = state.subnets.subnets.keys().copied().collect();
    let shares = emission_shares(&state.subnets, emission);
    let assigned: u128 = shares.iter().sum();
    let mut receipt = EmissionReceipt {
        height: block,
        issuance,
        block_emission: emission,
        myc_unassigned: emission - assigned,
        subnets: Vec::with_capacity(netuids.len()),
        swaps,
    };

    for (netuid, share) in netuids.iter().zip(shares) {
        let s = state
            .subnets
            .subnets
            .get_mut(netuid)
            .expect("listed subnet");
        let alpha_emission = block_emission_with(
            u64::try_from(s.alpha_issued).unwrap_or(u64::MAX),
            TOTAL_SUPPLY,
            TOKEN as u64,
        ) as u128;
        // Inject MYC with alpha at the pool price, alpha capped at the alpha emission.
        let mut alpha_in = pool::mul_div(share, s.pool.alpha, s.pool.myc);
        let mut myc_in = share;
        if alpha_in > alpha_emission {
            alpha_in = alpha_emission;
            myc_in = pool::mul_div(alpha_in, s.pool.myc, s.pool.alpha);
        }
        s.pool.myc += myc_in;
        s.pool.alpha += alpha_in;
        state.supply.myc_issued += myc_in;
        let owner_cut = alpha_emission * OWNER_CUT / pool::FEE_DENOMINATOR;
        let pending = alpha_emission - owner_cut;
        s.pending_owner += owner_cut;
        s.pending_alpha += pending;
        s.alpha_issued += alpha_in + alpha_emission;

        // Moving price: EMA of min(spot, 1).
        let b = block.saturating_sub(s.registered_at);
        let alpha = I64F64::from_num(3) / I64F64::from_num(1_000_000)
            * I64F64::saturating_from_num(b)
            / I64F64::saturating_from_num(b.saturating_add(201_600));
        let spot = (I64F64::saturating_from_num(s.pool.myc)
            / I64F64::saturating_from_num(s.pool.alpha))
        .min(I64F64::ONE);
        let m = fx(s.pool.moving_price_bits);
        s.pool.moving_price_bits = (m + alpha * (spot - m)).to_bits();

        let epoch = if (block + *netuid as u64 + 1).is_multiple_of(s.params.tempo + 1) {
            Some(run_subnet_epoch(s, block))
        } else {
            None
        };
        receipt.subnets.push(SubnetEmission {
            netuid: *netuid,
            flow_ema: fx(s.flow_ema_bits).to_string(),
            myc_share: share,
            myc_injected: myc_in,
            myc_recycled: share - myc_in,
            alpha_injected: alpha_in,
            alpha_emission,
            owner_cut,
            pending_added: pending,
            epoch,
        });

        // Registration burn adjustment.
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
    receipt.assert_exact();
    state.subnets.latest_receipt = Some(receipt);
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

/// Runs one Yuma epoch of `s` at `block` and pays out its pending alpha.
fn run_subnet_epoch(s: &mut Subnet, block: u64) -> EpochReceipt {
    s.touch();
    drop_expired_commits(s, block);
    let pending = s.pending_alpha;
    let owner_cut = s.pending_owner;
    s.pending_alpha = 0;
    s.pending_owner = 0;
    let owner_hotkey = s.owner_hotkey;
    let owner = s.owner;
    s.add_position(owner_hotkey, owner, owner_cut);

    let p = &s.params;
    let input = EpochInput {
        yuma: if p.yuma3 {
            YumaVersion::Yuma3
        } else {
            YumaVersion::Yuma2
        },
        stake: s
            .neurons
            .iter()
            .map(|n| u64::try_from(s.hotkey_alpha(&n.hotkey)).unwrap_or(u64::MAX))
            .collect(),
        weights: s.neurons.iter().map(|n| n.weights.clone()).collect(),
        bonds: s.neurons.iter().map(|n| n.bonds.clone()).collect(),
        active: s
            .neurons
            .iter()
            .map(|n| n.last_update.saturating_add(p.activity_cutoff) >= block)
            .collect(),
        validator_permit: s.neurons.iter().map(|n| n.validator_permit).collect(),
        block_at_registration: s.neurons.iter().map(|n| n.registered_at).collect(),
        last_update: s.neurons.iter().map(|n| n.last_update).collect(),
        block,
        tempo: p.tempo,
        last_epoch_block: s.last_epoch,
        emission: u64::try_from(pending).expect("pending alpha fits in 64 bits"),
        kappa: p.kappa,
        bonds_penalty: p.bonds_penalty,
        bonds_moving_average: p.bonds_moving_average,
        liquid_alpha: LiquidAlpha {
            enabled: p.liquid_alpha,
            alpha_low: p.alpha_low,
            alpha_high: p.alpha_high,
            steepness: p.alpha_sigmoid_steepness,
        },
        max_allowed_validators: p.max_validators,
        stake_threshold: 0,
        owner_uid: s.uid_of(&owner_hotkey),
    };
    s.last_epoch = Some(block);
    let output = match run_epoch(&input) {
        Ok(o) => o,
        Err(_) => {
            // The state only ever builds valid inputs; if one were not, nobody is paid and the
            // alpha is recycled rather than the chain halted.
            s.alpha_issued -= pending;
            return EpochReceipt {
                paid: pending + owner_cut,
                owner_cut,
                neurons: Vec::new(),
                recycled: pending,
            };
        }
    };
    let mut payouts = Vec::with_capacity(s.neurons.len());
    for uid in 0..s.neurons.len() {
        let (hotkey, coldkey) = (s.neurons[uid].hotkey, s.neurons[uid].coldkey);
        let incentive = output.server_emission[uid] as u128;
        let dividends = output.validator_emission[uid] as u128;
        s.add_position(hotkey, coldkey, incentive);
        let take = dividends * VALIDATOR_TAKE / pool::FEE_DENOMINATOR;
        let to_stakers = dividends - take;
        s.add_position(hotkey, coldkey, take);
        share_among_stakers(s, hotkey, coldkey, to_stakers);
        let n = &mut s.neurons[uid];
        n.consensus = fixed_proportion_to_u16(output.consensus[uid]);
        n.incentive = fixed_proportion_to_u16(output.incentive[uid]);
        n.dividends = fixed_proportion_to_u16(output.dividends[uid]);
        n.validator_trust = fixed_proportion_to_u16(output.validator_trust[uid]);
        n.validator_permit = output.validator_permit[uid];
        n.bonds = output.bonds[uid].clone();
        n.emission = incentive + dividends;
        payouts.push(NeuronPayout {
            uid: uid as u16,
            hotkey,
            incentive,
            dividends,
            take,
            to_stakers,
        });
    }
    let recycled = output.undistributed as u128;
    s.alpha_issued -= recycled;
    EpochReceipt {
        paid: pending + owner_cut,
        owner_cut,
        neurons: payouts,
        recycled,
    }
}

/// Shares `amount` alpha among the stakers of `hotkey` by their alpha (largest remainder); with
/// no stakers it goes to the hotkey's own coldkey.
fn share_among_stakers(s: &mut Subnet, hotkey: Address, coldkey: Address, amount: u128) {
    if amount == 0 {
        return;
    }
    let stakers: Vec<(Address, u128)> = s
        .stakes
        .get(&hotkey)
        .map(|m| m.iter().map(|(c, a)| (*c, a.0)).collect())
        .unwrap_or_default();
    let total: u128 = stakers.iter().map(|(_, a)| a).sum();
    if total == 0 {
        s.add_position(hotkey, coldkey, amount);
        return;
    }
    // Weights below 2^63 for largest_remainder: scale all alike.
    let shift = (128 - total.leading_zeros()).saturating_sub(62);
    let w: Vec<u128> = stakers.iter().map(|(_, a)| a >> shift).collect();
    let amount64 = u64::try_from(amount).expect("epoch alpha fits in 64 bits");
    match largest_remainder(amount64, &w) {
        Some(parts) => {
            for ((c, _), part) in stakers.iter().zip(parts) {
                s.add_position(hotkey, *c, part as u128);
            }
        }
        None => s.add_position(hotkey, coldkey, amount),
    }
}
