//! The incentive layer at the latest finalized block: `GET /v1/subnets`, `/v1/subnets/{netuid}`,
//! `/v1/subnets/{netuid}/metagraph`, `/v1/pools`, `/v1/emission`,
//! `/v1/emission/receipts/latest`, `/v1/stakes/{coldkey}` (docs/incentives.md).
//!
//! Prices are MYC base units per whole alpha token (10^9 alpha base units), floored. Epoch
//! results (`consensus`, `incentive`, `dividends`, `validator_trust`) are `u16` proportions:
//! the value / 65535.

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

/// `GET /v1/subnets`: every subnet, by netuid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetList {
    pub height: u64,
    pub subnets: Vec<SubnetSummary>,
}

/// A line of the subnet list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetSummary {
    pub netuid: u16,
    pub owner: Address,
    pub owner_hotkey: Address,
    pub neurons: usize,
    pub max_uids: u16,
    pub tempo: u64,
    #[serde(with = "super::amount")]
    pub burn: u128,
    /// Spot price, MYC base units per whole alpha.
    #[serde(with = "super::amount")]
    pub price: u128,
    /// Taoflow EMA of net MYC stake flow per block (a decimal; negative: no emission).
    pub flow_ema: String,
}

/// `GET /v1/subnets/{netuid}`: one subnet in full (without its neurons: see [`Metagraph`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub netuid: u16,
    pub owner: Address,
    pub owner_hotkey: Address,
    pub registered_at: u64,
    /// MYC locked at registration (now the pool's starting liquidity).
    #[serde(with = "super::amount")]
    pub lock: u128,
    /// What `BurnedRegister` costs now.
    #[serde(with = "super::amount")]
    pub burn: u128,
    pub registrations_this_interval: u64,
    pub neurons: usize,
    pub params: HyperParams,
    pub pool: PoolInfo,
    #[serde(with = "super::amount")]
    pub pending_alpha: u128,
    #[serde(with = "super::amount")]
    pub pending_owner_cut: u128,
    pub last_epoch: Option<u64>,
    /// The next block at whose end this subnet's epoch runs:
    /// `(b + netuid + 1) % (tempo + 1) == 0`.
    pub next_epoch_at: u64,
    pub flow_ema: String,
    /// Unrevealed weight commits, all hotkeys together.
    pub pending_commits: usize,
    pub height: u64,
}

/// A subnet's hyperparameters (what `SetSubnetParams` sets, by these names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HyperParams {
    pub tempo: u64,
    pub kappa: u16,
    pub immunity_period: u64,
    pub max_uids: u16,
    pub max_validators: u16,
    pub weights_rate_limit: u64,
    pub commit_reveal: bool,
    /// Epochs after the commit's epoch in which the reveal must come.
    pub reveal_period: u64,
    pub bonds_moving_average: u64,
    pub bonds_penalty: u16,
    pub liquid_alpha: bool,
    pub alpha_low: u16,
    pub alpha_high: u16,
    pub alpha_sigmoid_steepness: u16,
    pub yuma3: bool,
    pub activity_cutoff: u64,
    pub weights_version_key: u64,
    pub target_regs_per_interval: u64,
    pub adjustment_interval: u64,
    pub registration_allowed: bool,
}

/// `GET /v1/pools`: every subnet's pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pools {
    pub height: u64,
    pub pools: Vec<PoolInfo>,
}

/// A subnet's pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    pub netuid: u16,
    #[serde(with = "super::amount")]
    pub myc_reserve: u128,
    #[serde(with = "super::amount")]
    pub alpha_reserve: u128,
    /// MYC base units per whole alpha: myc_reserve · 10^9 / alpha_reserve, floored.
    #[serde(with = "super::amount")]
    pub spot_price: u128,
    /// EMA of min(spot, 1) as a decimal fraction of MYC per alpha.
    pub moving_price: String,
    #[serde(with = "super::amount")]
    pub alpha_issued: u128,
    #[serde(with = "super::amount")]
    pub alpha_staked: u128,
}

/// `GET /v1/subnets/{netuid}/metagraph`: every UID of a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metagraph {
    pub netuid: u16,
    /// The finalized height it was read at.
    pub block: u64,
    pub neurons: Vec<MetagraphNeuron>,
}

impl Metagraph {
    /// The neuron whose hotkey is `hotkey`, if it is registered.
    pub fn neuron(&self, hotkey: Address) -> Option<&MetagraphNeuron> {
        self.neurons.iter().find(|n| n.hotkey == hotkey)
    }
}

/// One UID of a metagraph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetagraphNeuron {
    pub uid: u16,
    pub hotkey: Address,
    pub coldkey: Address,
    /// Alpha staked on the hotkey (all coldkeys), the stake Yuma uses.
    #[serde(with = "super::amount")]
    pub alpha: u128,
    /// That alpha valued at the spot price, in MYC base units.
    #[serde(with = "super::amount")]
    pub stake: u128,
    pub validator_permit: bool,
    pub consensus: u16,
    pub incentive: u16,
    pub dividends: u16,
    pub validator_trust: u16,
    /// Alpha earned in the last epoch.
    #[serde(with = "super::amount")]
    pub emission: u128,
    pub registered_at: u64,
    /// Block of the last weights set (or registration).
    pub last_update: u64,
    /// Weights set within `activity_cutoff` blocks.
    pub active: bool,
    /// Registered less than `immunity_period` blocks ago, or the owner's hotkey.
    pub immune: bool,
    /// Where it serves; `None` until the hotkey sends `ServeEndpoint`.
    pub endpoint: Option<Endpoint>,
}

/// Where a neuron serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub protocol: String,
    /// Block of the announcement.
    pub block: u64,
}

impl Endpoint {
    /// `protocol://host:port` (an IPv6 literal in brackets).
    pub fn url(&self) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{}://{host}:{}", self.protocol, self.port)
    }
}

/// `GET /v1/emission`: the MYC emission schedule now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmissionSchedule {
    pub height: u64,
    /// MYC issued minus burned (what the emission is computed from).
    #[serde(with = "super::amount")]
    pub issuance: u128,
    #[serde(with = "super::amount")]
    pub total_supply: u128,
    /// Emission of the next block, MYC base units.
    #[serde(with = "super::amount")]
    pub block_emission: u128,
    pub halvings: Option<u32>,
    /// Issuance at which the emission next halves (`None` once the cap is reached).
    #[serde(with = "super::amount::option")]
    pub next_halving_at: Option<u128>,
    /// The MYC a `RegisterSubnet` in the next block locks (a `maxLockCost` at least this large
    /// is accepted).
    #[serde(with = "super::amount")]
    pub subnet_lock_cost: u128,
}

/// `GET /v1/emission/receipts/latest`: where every base unit of one block's emission went.
/// `Σ subnets.myc_share + myc_unassigned = block_emission`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmissionReceipt {
    pub height: u64,
    /// MYC issuance (issued − burned) the emission was computed from.
    #[serde(with = "super::amount")]
    pub issuance: u128,
    #[serde(with = "super::amount")]
    pub block_emission: u128,
    /// Emission no subnet could take: never minted.
    #[serde(with = "super::amount")]
    pub myc_unassigned: u128,
    pub subnets: Vec<SubnetEmission>,
    /// The block's filled stake and unstake orders.
    pub swaps: Vec<SwapFill>,
}

/// One subnet's part of a block's emission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetEmission {
    pub netuid: u16,
    /// Its Taoflow EMA after this block (MYC base units per block, decimal).
    pub flow_ema: String,
    /// Its share of the block emission = myc_injected + myc_recycled.
    #[serde(with = "super::amount")]
    pub myc_share: u128,
    #[serde(with = "super::amount")]
    pub myc_injected: u128,
    #[serde(with = "super::amount")]
    pub myc_recycled: u128,
    /// Alpha minted into the pool with the injected MYC.
    #[serde(with = "super::amount")]
    pub alpha_injected: u128,
    /// Alpha emission of the block = owner_cut + pending_added.
    #[serde(with = "super::amount")]
    pub alpha_emission: u128,
    #[serde(with = "super::amount")]
    pub owner_cut: u128,
    #[serde(with = "super::amount")]
    pub pending_added: u128,
    /// The pool's reserves at the end of the block (after the injection): its price is
    /// `pool_myc / pool_alpha` MYC per alpha.
    #[serde(default, with = "super::amount")]
    pub pool_myc: u128,
    #[serde(default, with = "super::amount")]
    pub pool_alpha: u128,
    /// The epoch that ran in this block, if any.
    pub epoch: Option<EpochReceipt>,
}

/// One subnet epoch's payout. `owner_cut + Σ incentive + Σ dividends + recycled = paid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochReceipt {
    /// Alpha distributed in this epoch.
    #[serde(with = "super::amount")]
    pub paid: u128,
    #[serde(with = "super::amount")]
    pub owner_cut: u128,
    pub neurons: Vec<NeuronPayout>,
    /// Alpha nobody could receive: its issuance is taken back.
    #[serde(with = "super::amount")]
    pub recycled: u128,
}

/// What one neuron got at an epoch (alpha base units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeuronPayout {
    pub uid: u16,
    pub hotkey: Address,
    /// Miner part, to the neuron's own position.
    #[serde(with = "super::amount")]
    pub incentive: u128,
    /// Validator part = take + to_stakers.
    #[serde(with = "super::amount")]
    pub dividends: u128,
    #[serde(with = "super::amount")]
    pub take: u128,
    #[serde(with = "super::amount")]
    pub to_stakers: u128,
}

/// Which way a stake order swaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// MYC in, alpha out.
    Stake,
    /// Alpha in, MYC out.
    Unstake,
}

/// One filled stake or unstake order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapFill {
    pub netuid: u16,
    pub coldkey: Address,
    pub hotkey: Address,
    pub side: Side,
    /// MYC for a stake, alpha for an unstake (fee included).
    #[serde(with = "super::amount")]
    pub amount_in: u128,
    /// Alpha for a stake, MYC for an unstake.
    #[serde(with = "super::amount")]
    pub amount_out: u128,
    /// The block's batch price on this pool, MYC base units per whole alpha.
    #[serde(with = "super::amount")]
    pub price: u128,
}

/// `GET /v1/stakes/{coldkey}`: a coldkey's stake positions, by netuid then hotkey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stakes {
    #[serde(with = "super::checksummed")]
    pub coldkey: Address,
    pub height: u64,
    pub stakes: Vec<StakePosition>,
}

impl Stakes {
    /// The position on `hotkey` in `netuid`, if any.
    pub fn position(&self, netuid: u16, hotkey: Address) -> Option<&StakePosition> {
        self.stakes
            .iter()
            .find(|p| p.netuid == netuid && p.hotkey == hotkey)
    }
}

/// One stake position of a coldkey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakePosition {
    pub netuid: u16,
    pub hotkey: Address,
    #[serde(with = "super::amount")]
    pub alpha: u128,
    /// The alpha at the spot price, MYC base units.
    #[serde(with = "super::amount")]
    pub value: u128,
}

/// `GET /v1/emission/receipts?before=H&limit=N`: kept emission receipts, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmissionReceiptList {
    pub receipts: Vec<EmissionReceipt>,
    /// Pass as `before` for the next (older) page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<u64>,
    /// The oldest height the node still keeps (its retention).
    pub oldest_height: Option<u64>,
    pub height: u64,
}

/// One epoch of a subnet and the block it ran in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochAt {
    pub height: u64,
    pub epoch: EpochReceipt,
}

/// `GET /v1/subnets/{netuid}/epochs?before=H&limit=N`: a subnet's kept epochs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochList {
    pub netuid: u16,
    pub epochs: Vec<EpochAt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<u64>,
    pub oldest_height: Option<u64>,
    pub height: u64,
}

/// What one UID got at one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeuronEpoch {
    pub height: u64,
    /// The hotkey holding the UID then (a UID can be re-registered).
    pub hotkey: Address,
    #[serde(with = "super::amount")]
    pub incentive: u128,
    #[serde(with = "super::amount")]
    pub dividends: u128,
    #[serde(with = "super::amount")]
    pub take: u128,
    #[serde(with = "super::amount")]
    pub to_stakers: u128,
}

/// `GET /v1/subnets/{netuid}/neurons/{uid}/emissions?before=H&limit=N`: one UID's payouts per
/// kept epoch whose payout lists it, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeuronEmissions {
    pub netuid: u16,
    pub uid: u16,
    pub epochs: Vec<NeuronEpoch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<u64>,
    pub oldest_height: Option<u64>,
    pub height: u64,
}
