//! One subnet's epoch as a block runs it ([`crate::pipeline`], step 7): Yuma on the subnet's
//! neurons, then the payout of its pending alpha. When it runs is [`super::schedule`]'s rule.
//!
//! Miners' incentive goes to their own (coldkey, hotkey) position; a validator's dividends pay
//! its take (18%) to its own position and the rest to everyone staked on its hotkey in
//! proportion to their alpha (largest remainder, exact). The pending owner cut goes to the
//! owner's (coldkey, owner hotkey) position. What the epoch cannot give anyone is recycled
//! (alpha issuance lowered). Miners and validators each get half because incentive and
//! dividends are both normalised.

use super::pool;
use super::tx::drop_expired_commits;
use super::*;
use crate::incentive::math::fixed_proportion_to_u16;
use crate::incentive::yuma::largest_remainder;
use crate::incentive::{run_epoch, EpochInput, EpochOutput, LiquidAlpha, YumaVersion};

/// Runs one Yuma epoch of `s` at `block` and pays out its pending alpha.
pub(crate) fn run_subnet_epoch(s: &mut Subnet, block: u64) -> EpochReceipt {
    s.touch();
    drop_expired_commits(s, block);
    let pending = s.pending_alpha;
    let owner_cut = s.pending_owner;
    s.pending_alpha = 0;
    s.pending_owner = 0;
    s.add_position(s.owner_hotkey, s.owner, owner_cut);
    let input = epoch_input(s, block, pending);
    s.last_epoch = Some(block);
    let (neurons, recycled) = match run_epoch(&input) {
        Ok(output) => (pay_out(s, &output), output.undistributed as u128),
        // The state only ever builds valid inputs; if one were not, nobody is paid and the
        // alpha is recycled rather than the chain halted.
        Err(_) => (Vec::new(), pending),
    };
    s.alpha_issued -= recycled;
    EpochReceipt {
        paid: pending + owner_cut,
        owner_cut,
        neurons,
        recycled,
    }
}

/// What Yuma reads of `s` at `block`, distributing `pending` alpha.
fn epoch_input(s: &Subnet, block: u64, pending: u128) -> EpochInput {
    let p = &s.params;
    EpochInput {
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
        owner_uid: s.uid_of(&s.owner_hotkey),
    }
}

/// Pays each neuron its incentive and dividends and stores its epoch results.
fn pay_out(s: &mut Subnet, output: &EpochOutput) -> Vec<NeuronPayout> {
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
    payouts
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
