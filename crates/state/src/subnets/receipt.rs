//! What a block's incentive steps report: the stake orders filled, where every unit of the
//! emission went, and what each epoch paid ([`crate::pipeline`], steps 3 to 9).

use super::*;

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
    /// The pool's reserves at the end of the block (after the injection): its price is
    /// `pool_myc / pool_alpha` MYC per alpha.
    #[serde(default, with = "amount_string")]
    pub pool_myc: u128,
    #[serde(default, with = "amount_string")]
    pub pool_alpha: u128,
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
    /// MYC the block minted: what was injected into pools (the rest of the emission never was).
    pub fn myc_injected(&self) -> u128 {
        self.subnets.iter().map(|s| s.myc_injected).sum()
    }

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
