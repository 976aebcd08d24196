//! The incentive layer on chain: subnets, neurons, weights, stake pools, emission and epochs.
//!
//! Built on the pure functions of [`crate::incentive`] (Yuma epoch, block emission). Semantics
//! follow subtensor (github.com/opentensor/subtensor); where mycel differs it says so here.
//!
//! # Transactions (checked fully, then written; a refused one changes nothing)
//!
//! - `RegisterSubnet` (coldkey): pays the current lock cost ([`Subnets::lock_cost`]: doubles
//!   with every registration, then decays linearly to [`MIN_LOCK_COST`] over
//!   [`LOCK_REDUCTION_INTERVAL`] blocks). The locked MYC becomes the new pool's MYC reserve and as
//!   much alpha is minted as its alpha reserve (price 1). The owner hotkey becomes UID 0.
//! - `SetSubnetParams` (owner): named hyperparameters within [`HyperParams`] bounds.
//! - `BurnedRegister` (coldkey): burns the subnet's current burn (lowering MYC issuance). The
//!   burn adjusts every `adjustment_interval` blocks towards `target_regs_per_interval`
//!   registrations: `burn' = α·burn + (1−α)·burn·(regs + T)/(2T)`, α = 0.9, within
//!   [[`MIN_BURN`], [`MAX_BURN`]]. A full subnet replaces the non-immune neuron with the lowest
//!   emission (ties: earlier registration, then lower UID); the owner hotkey is never replaced.
//! - `ServeEndpoint`, `SetWeights`, `CommitWeights`, `RevealWeights` (hotkey).
//! - `AddStake` / `RemoveStake` (coldkey): orders into the block's batch, settled at one price
//!   per pool after the block's transactions ([`crate::pipeline`], step 3).
//!
//! # A block
//!
//! After a block's transactions come batch settlement of the stake orders, Taoflow, emission,
//! moving prices, epochs and burn adjustment. Their order and formulas are written out once, in
//! [`crate::pipeline`], which calls them; they are in `block` (batch, Taoflow, emission, moving
//! prices, burn) and `epoch` (one subnet's epoch and its payout). In which blocks a subnet's
//! epoch runs is the epoch rule, [`EpochSchedule`]: nothing else computes it.
//!
//! # Books (asserted after every block)
//!
//! MYC issued = balances + burned + MYC in pools (+ stake orders in flight, only inside a
//! block). Per subnet: alpha issued = pool alpha + staked alpha + pending alpha (+ unstake
//! orders in flight). Every block's [`EmissionReceipt`] accounts for every base unit of E, and
//! of every epoch's payout; this is asserted too.

pub(crate) mod block;
mod epoch;
pub mod pool;
mod query;
mod receipt;
mod schedule;
mod tx;

#[cfg(test)]
mod tests;

pub use pool::Side;
pub use receipt::{EmissionReceipt, EpochReceipt, NeuronPayout, SubnetEmission, SwapFill};
pub use schedule::EpochSchedule;

use crate::incentive::I64F64;
use alloy_primitives::{keccak256, Address, B256};
use mycel_types::genesis::amount_string;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One MYC (or alpha) token in base units.
pub const TOKEN: u128 = 1_000_000_000;
/// The lock cost never goes below this: 100 MYC.
pub const MIN_LOCK_COST: u128 = 100 * TOKEN;
/// Blocks over which a doubled lock cost decays back.
pub const LOCK_REDUCTION_INTERVAL: u64 = 100_800;
/// Registration burn bounds: 0.0005 MYC … 100 MYC; a new subnet starts at 1 MYC.
pub const MIN_BURN: u128 = 500_000;
pub const MAX_BURN: u128 = 100 * TOKEN;
pub const INITIAL_BURN: u128 = TOKEN;
/// Owner cut and validator take: 11796/65535 ≈ 18%.
pub const OWNER_CUT: u128 = 11_796;
pub const VALIDATOR_TAKE: u128 = 11_796;
/// At most this many unrevealed weight commits per hotkey and subnet.
pub const MAX_PENDING_COMMITS: usize = 10;
/// At most this many subnets.
pub const MAX_SUBNETS: usize = 1024;
/// The smallest stake order: 0.0005 MYC.
pub const MIN_STAKE: u128 = 500_000;
/// Longest endpoint host name (DNS limit) and protocol name.
pub const MAX_HOST_BYTES: usize = 253;
pub const MAX_PROTOCOL_BYTES: usize = 16;

/// A subnet's hyperparameters. Names (as `SetSubnetParams` takes them) and bounds are in
/// [`HyperParams::set`].
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

impl Default for HyperParams {
    fn default() -> Self {
        HyperParams {
            tempo: 360,
            kappa: 32_767,
            immunity_period: 4096,
            max_uids: 256,
            max_validators: 128,
            weights_rate_limit: 100,
            commit_reveal: false,
            reveal_period: 1,
            bonds_moving_average: 900_000,
            bonds_penalty: 65_535,
            liquid_alpha: false,
            alpha_low: 45_875,
            alpha_high: 58_982,
            alpha_sigmoid_steepness: 1000,
            yuma3: false,
            activity_cutoff: 5000,
            weights_version_key: 0,
            target_regs_per_interval: 2,
            adjustment_interval: 100,
            registration_allowed: true,
        }
    }
}

/// Name, lower bound, upper bound of every settable hyperparameter.
pub const HYPERPARAM_BOUNDS: &[(&str, u64, u64)] = &[
    ("tempo", 1, 65_535),
    ("kappa", 0, 65_535),
    ("immunity_period", 0, 65_535),
    ("max_uids", 1, 4096),
    ("max_validators", 1, 4096),
    ("weights_rate_limit", 0, 65_535),
    ("commit_reveal", 0, 1),
    ("reveal_period", 1, 100),
    ("bonds_moving_average", 0, 1_000_000),
    ("bonds_penalty", 0, 65_535),
    ("liquid_alpha", 0, 1),
    ("alpha_low", 1, 65_535),
    ("alpha_high", 1, 65_535),
    ("alpha_sigmoid_steepness", 1, 65_535),
    ("yuma3", 0, 1),
    ("activity_cutoff", 1, 65_535),
    ("weights_version_key", 0, u64::MAX),
    ("target_regs_per_interval", 1, 4096),
    ("adjustment_interval", 1, 65_535),
    ("registration_allowed", 0, 1),
];

impl HyperParams {
    /// Sets `name` to `value` if it is a known name within its bounds.
    pub fn set(&mut self, name: &str, value: u64) -> Result<(), IncentiveError> {
        let Some((_, lo, hi)) = HYPERPARAM_BOUNDS.iter().find(|(n, _, _)| *n == name) else {
            return Err(IncentiveError::UnknownParam {
                name: name.to_string(),
                known: HYPERPARAM_BOUNDS
                    .iter()
                    .map(|(n, _, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if value < *lo || value > *hi {
            return Err(IncentiveError::ParamOutOfBounds {
                name: name.to_string(),
                value,
                min: *lo,
                max: *hi,
            });
        }
        let v = value;
        match name {
            "tempo" => self.tempo = v,
            "kappa" => self.kappa = v as u16,
            "immunity_period" => self.immunity_period = v,
            "max_uids" => self.max_uids = v as u16,
            "max_validators" => self.max_validators = v as u16,
            "weights_rate_limit" => self.weights_rate_limit = v,
            "commit_reveal" => self.commit_reveal = v == 1,
            "reveal_period" => self.reveal_period = v,
            "bonds_moving_average" => self.bonds_moving_average = v,
            "bonds_penalty" => self.bonds_penalty = v as u16,
            "liquid_alpha" => self.liquid_alpha = v == 1,
            "alpha_low" => self.alpha_low = v as u16,
            "alpha_high" => self.alpha_high = v as u16,
            "alpha_sigmoid_steepness" => self.alpha_sigmoid_steepness = v as u16,
            "yuma3" => self.yuma3 = v == 1,
            "activity_cutoff" => self.activity_cutoff = v,
            "weights_version_key" => self.weights_version_key = v,
            "target_regs_per_interval" => self.target_regs_per_interval = v,
            "adjustment_interval" => self.adjustment_interval = v,
            "registration_allowed" => self.registration_allowed = v == 1,
            _ => unreachable!("every bounded name has an arm"),
        }
        Ok(())
    }
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

/// One UID of a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neuron {
    pub hotkey: Address,
    pub coldkey: Address,
    pub registered_at: u64,
    /// Block of the last weights set (or registration).
    pub last_update: u64,
    /// Block weights were last set, for the rate limit (none yet: not limited).
    pub weights_set_at: Option<u64>,
    /// Sparse `(uid, value)`, max-upscaled to 65535.
    pub weights: Vec<(u16, u16)>,
    pub bonds: Vec<(u16, u16)>,
    pub validator_permit: bool,
    /// Results of the last epoch, as `u16` proportions (x / 65535).
    pub consensus: u16,
    pub incentive: u16,
    pub dividends: u16,
    pub validator_trust: u16,
    /// Alpha the neuron earned in the last epoch (miner + validator parts, before take).
    #[serde(with = "amount_string")]
    pub emission: u128,
    pub endpoint: Option<Endpoint>,
}

/// A subnet's pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    #[serde(with = "amount_string")]
    pub myc: u128,
    #[serde(with = "amount_string")]
    pub alpha: u128,
    /// EMA of the spot price (capped at 1), I64F64 bits.
    pub moving_price_bits: i128,
}

/// A weights commitment waiting for its reveal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightsCommit {
    pub hash: B256,
    pub block: u64,
}

/// One subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub netuid: u16,
    pub owner: Address,
    pub owner_hotkey: Address,
    pub registered_at: u64,
    #[serde(with = "amount_string")]
    pub lock: u128,
    pub params: HyperParams,
    #[serde(with = "amount_string")]
    pub burn: u128,
    pub regs_this_interval: u64,
    pub pool: Pool,
    #[serde(with = "amount_string")]
    pub alpha_issued: u128,
    /// Alpha waiting for the next epoch (miners + validators).
    #[serde(with = "amount_string")]
    pub pending_alpha: u128,
    /// Owner cut waiting for the next epoch.
    #[serde(with = "amount_string")]
    pub pending_owner: u128,
    /// Taoflow EMA of net MYC flow, I64F64 bits.
    pub flow_ema_bits: i128,
    pub last_epoch: Option<u64>,
    /// Neurons by UID.
    pub neurons: Vec<Neuron>,
    /// Staked alpha: hotkey → coldkey → amount.
    pub stakes: BTreeMap<Address, BTreeMap<Address, AlphaAmount>>,
    /// Unrevealed commits per hotkey, oldest first.
    pub commits: BTreeMap<Address, Vec<WeightsCommit>>,
    /// Digest of `neurons`, `stakes` and `commits` for the state root; cleared by every write to
    /// them ([`Subnet::touch`]).
    #[serde(skip)]
    pub(crate) heavy_digest: DigestCache,
}

/// A cached digest. Derived data: two values compare equal whatever their caches hold.
#[derive(Debug, Clone, Default)]
pub struct DigestCache(Option<B256>);

impl PartialEq for DigestCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for DigestCache {}

/// An alpha amount that serialises as a decimal string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlphaAmount(#[serde(with = "amount_string")] pub u128);

impl Subnet {
    /// Marks `neurons`, `stakes` or `commits` as changed (their digest is recomputed).
    pub(crate) fn touch(&mut self) {
        self.heavy_digest.0 = None;
    }

    fn heavy_digest(&mut self) -> B256 {
        if let Some(d) = self.heavy_digest.0 {
            return d;
        }
        let d = self.heavy_digest_uncached();
        self.heavy_digest.0 = Some(d);
        d
    }

    /// keccak of a compact binary encoding of `neurons`, `stakes` and `commits` (integers
    /// big-endian, lists length-prefixed, options as a 0/1 byte then the value).
    fn heavy_digest_uncached(&self) -> B256 {
        let mut h = alloy_primitives::Keccak256::new();
        let pairs = |h: &mut alloy_primitives::Keccak256, row: &[(u16, u16)]| {
            h.update((row.len() as u32).to_be_bytes());
            let mut buf = Vec::with_capacity(row.len() * 4);
            for (u, v) in row {
                buf.extend_from_slice(&u.to_be_bytes());
                buf.extend_from_slice(&v.to_be_bytes());
            }
            h.update(&buf);
        };
        h.update((self.neurons.len() as u32).to_be_bytes());
        for n in &self.neurons {
            h.update(n.hotkey);
            h.update(n.coldkey);
            h.update(n.registered_at.to_be_bytes());
            h.update(n.last_update.to_be_bytes());
            match n.weights_set_at {
                Some(b) => {
                    h.update([1u8]);
                    h.update(b.to_be_bytes());
                }
                None => h.update([0u8]),
            }
            pairs(&mut h, &n.weights);
            pairs(&mut h, &n.bonds);
            h.update([n.validator_permit as u8]);
            for v in [n.consensus, n.incentive, n.dividends, n.validator_trust] {
                h.update(v.to_be_bytes());
            }
            h.update(n.emission.to_be_bytes());
            match &n.endpoint {
                Some(e) => {
                    h.update([1u8]);
                    h.update((e.host.len() as u32).to_be_bytes());
                    h.update(e.host.as_bytes());
                    h.update(e.port.to_be_bytes());
                    h.update((e.protocol.len() as u32).to_be_bytes());
                    h.update(e.protocol.as_bytes());
                    h.update(e.block.to_be_bytes());
                }
                None => h.update([0u8]),
            }
        }
        h.update((self.stakes.len() as u32).to_be_bytes());
        for (hotkey, by_cold) in &self.stakes {
            h.update(hotkey);
            h.update((by_cold.len() as u32).to_be_bytes());
            for (coldkey, a) in by_cold {
                h.update(coldkey);
                h.update(a.0.to_be_bytes());
            }
        }
        h.update((self.commits.len() as u32).to_be_bytes());
        for (hotkey, commits) in &self.commits {
            h.update(hotkey);
            h.update((commits.len() as u32).to_be_bytes());
            for c in commits {
                h.update(c.hash);
                h.update(c.block.to_be_bytes());
            }
        }
        h.finalize()
    }

    fn light_digest(&self) -> B256 {
        let light = (
            (
                self.netuid,
                self.owner,
                self.owner_hotkey,
                self.registered_at,
            ),
            (self.lock.to_string(), &self.params, self.burn.to_string()),
            (
                self.regs_this_interval,
                &self.pool,
                self.alpha_issued.to_string(),
            ),
            (
                self.pending_alpha.to_string(),
                self.pending_owner.to_string(),
            ),
            (self.flow_ema_bits.to_string(), self.last_epoch),
        );
        keccak256(serde_json::to_vec(&light).expect("subnet serialises"))
    }

    pub fn uid_of(&self, hotkey: &Address) -> Option<u16> {
        self.neurons
            .iter()
            .position(|n| n.hotkey == *hotkey)
            .map(|u| u as u16)
    }

    /// Total alpha staked on `hotkey`.
    pub fn hotkey_alpha(&self, hotkey: &Address) -> u128 {
        self.stakes
            .get(hotkey)
            .map(|m| m.values().map(|a| a.0).sum())
            .unwrap_or(0)
    }

    pub fn position(&self, hotkey: &Address, coldkey: &Address) -> u128 {
        self.stakes
            .get(hotkey)
            .and_then(|m| m.get(coldkey))
            .map(|a| a.0)
            .unwrap_or(0)
    }

    pub(crate) fn add_position(&mut self, hotkey: Address, coldkey: Address, amount: u128) {
        if amount == 0 {
            return;
        }
        self.touch();
        let slot = self
            .stakes
            .entry(hotkey)
            .or_default()
            .entry(coldkey)
            .or_default();
        slot.0 += amount;
    }

    pub(crate) fn sub_position(&mut self, hotkey: Address, coldkey: Address, amount: u128) {
        self.touch();
        let Some(by_cold) = self.stakes.get_mut(&hotkey) else {
            panic!("no stake on {hotkey} to take {amount} from");
        };
        let slot = by_cold.get_mut(&coldkey).expect("position exists");
        slot.0 = slot
            .0
            .checked_sub(amount)
            .expect("position covers the amount");
        if slot.0 == 0 {
            by_cold.remove(&coldkey);
            if by_cold.is_empty() {
                self.stakes.remove(&hotkey);
            }
        }
    }

    pub fn staked_alpha(&self) -> u128 {
        self.stakes
            .values()
            .flat_map(|m| m.values())
            .map(|a| a.0)
            .sum()
    }

    /// When this subnet's epochs fall: the epoch rule for its netuid and tempo.
    pub fn epochs(&self) -> EpochSchedule {
        EpochSchedule::new(self.netuid, self.params.tempo)
    }

    /// The epoch index of `block` for this subnet ([`EpochSchedule::epoch_index`]).
    pub fn epoch_index(&self, block: u64) -> u64 {
        self.epochs().epoch_index(block)
    }

    pub fn is_immune(&self, uid: u16, block: u64) -> bool {
        let n = &self.neurons[uid as usize];
        n.hotkey == self.owner_hotkey
            || block.saturating_sub(n.registered_at) < self.params.immunity_period
    }

    /// The UID a new registration takes at `block`: the next one while there is room, else the
    /// pruned one (lowest emission among non-immune, ties earlier registration, lower UID).
    pub fn registration_slot(&self, block: u64) -> Option<u16> {
        if self.neurons.len() < self.params.max_uids as usize {
            return Some(self.neurons.len() as u16);
        }
        (0..self.neurons.len() as u16)
            .filter(|uid| !self.is_immune(*uid, block))
            .min_by_key(|uid| {
                let n = &self.neurons[*uid as usize];
                (n.emission, n.registered_at, *uid)
            })
    }
}

/// One in-flight stake or unstake order of the current block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub netuid: u16,
    pub coldkey: Address,
    pub hotkey: Address,
    pub side: Side,
    /// MYC for a stake, alpha for an unstake.
    #[serde(with = "amount_string")]
    pub amount: u128,
    #[serde(with = "amount_string")]
    pub limit_price: u128,
}

/// The incentive layer's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnets {
    pub(crate) subnets: BTreeMap<u16, Subnet>,
    /// Which coldkey owns each hotkey (the first to register it).
    pub(crate) hotkey_owner: BTreeMap<Address, Address>,
    #[serde(with = "amount_string")]
    pub(crate) last_lock: u128,
    pub(crate) last_lock_block: u64,
    /// Orders of the block being applied (empty between blocks).
    pub(crate) orders: Vec<Order>,
    /// Net MYC flow per pool from the block's settled orders (empty between blocks).
    #[serde(default)]
    pub(crate) block_flow: BTreeMap<u16, i128>,
    /// The last block's emission receipt (derived data: not in the state root).
    pub(crate) latest_receipt: Option<EmissionReceipt>,
    /// Digest of `hotkey_owner`; cleared when it changes.
    #[serde(skip)]
    pub(crate) owners_digest: DigestCache,
}

impl Subnets {
    pub fn is_empty(&self) -> bool {
        self.subnets.is_empty()
    }

    pub fn get(&self, netuid: u16) -> Option<&Subnet> {
        self.subnets.get(&netuid)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Subnet> {
        self.subnets.values()
    }

    pub fn hotkey_owner(&self, hotkey: &Address) -> Option<Address> {
        self.hotkey_owner.get(hotkey).copied()
    }

    pub fn latest_receipt(&self) -> Option<&EmissionReceipt> {
        self.latest_receipt.as_ref()
    }

    /// The MYC a `RegisterSubnet` at `block` locks.
    pub fn lock_cost(&self, block: u64) -> u128 {
        let elapsed = block.saturating_sub(self.last_lock_block) as u128;
        let decay = pool::mul_div(self.last_lock, elapsed, LOCK_REDUCTION_INTERVAL as u128);
        self.last_lock
            .saturating_mul(2)
            .saturating_sub(decay)
            .max(MIN_LOCK_COST)
    }

    /// The smallest netuid ≥ 1 not in use.
    pub fn next_netuid(&self) -> Option<u16> {
        (1..=u16::MAX).find(|n| !self.subnets.contains_key(n))
    }

    /// MYC held by the incentive layer: pool reserves and stake orders in flight.
    pub fn myc_held(&self) -> u128 {
        let pools: u128 = self.subnets.values().map(|s| s.pool.myc).sum();
        let orders: u128 = self
            .orders
            .iter()
            .filter(|o| o.side == Side::Stake)
            .map(|o| o.amount)
            .sum();
        pools + orders
    }

    /// Panics unless every subnet's alpha is accounted for.
    pub fn assert_alpha_books(&self, height: u64) {
        for s in self.subnets.values() {
            let in_flight: u128 = self
                .orders
                .iter()
                .filter(|o| o.side == Side::Unstake && o.netuid == s.netuid)
                .map(|o| o.amount)
                .sum();
            assert_eq!(
                s.alpha_issued,
                s.pool.alpha + s.staked_alpha() + s.pending_alpha + s.pending_owner + in_flight,
                "books do not balance: subnet {} alpha issued != pool + staked + pending at height {height}",
                s.netuid
            );
        }
    }

    /// Folds the incentive state into the state root (unchanged while there are no subnets):
    /// `keccak(0x06 ‖ root ‖ keccak(globals ‖ owners ‖ (light ‖ heavy) per subnet))`, each part a
    /// keccak of its JSON. The heavy parts (neurons, stakes, commits; hotkey owners) are cached
    /// until written, so a block without epochs or neuron changes hashes only small parts. The
    /// latest emission receipt is derived data and not part of the root.
    pub(crate) fn fold_root(&mut self, root: B256) -> B256 {
        if self.subnets.is_empty() && self.orders.is_empty() {
            return root;
        }
        let globals = (
            self.last_lock.to_string(),
            self.last_lock_block,
            &self.orders,
            &self.block_flow,
        );
        let mut parts = Vec::with_capacity(64 * (self.subnets.len() + 1));
        parts.extend_from_slice(
            keccak256(serde_json::to_vec(&globals).expect("serialises")).as_slice(),
        );
        let owners = match self.owners_digest.0 {
            Some(d) => d,
            None => {
                let d = keccak256(serde_json::to_vec(&self.hotkey_owner).expect("serialises"));
                self.owners_digest.0 = Some(d);
                d
            }
        };
        parts.extend_from_slice(owners.as_slice());
        for s in self.subnets.values_mut() {
            parts.extend_from_slice(s.light_digest().as_slice());
            parts.extend_from_slice(s.heavy_digest().as_slice());
        }
        let mut buf = [0u8; 65];
        buf[0] = 0x06;
        buf[1..33].copy_from_slice(root.as_slice());
        buf[33..].copy_from_slice(keccak256(parts).as_slice());
        keccak256(buf)
    }
}

/// Why an incentive-layer transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum IncentiveError {
    #[error("subnet {netuid} does not exist")]
    NoSubnet { netuid: u16 },
    #[error("the subnet lock cost is {cost} MYC base units, above your maxLockCost {max}")]
    LockCostAboveMax { cost: String, max: String },
    #[error("there are already {max} subnets")]
    TooManySubnets { max: usize },
    #[error("only the owner {owner} of subnet {netuid} may do this")]
    NotOwner { netuid: u16, owner: Address },
    #[error("unknown hyperparameter '{name}' (known: {known})")]
    UnknownParam { name: String, known: String },
    #[error("hyperparameter {name} = {value} is outside [{min}, {max}]")]
    ParamOutOfBounds {
        name: String,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error("invalid hyperparameters: {reason}")]
    BadParams { reason: String },
    #[error("the registration burn is {burn} MYC base units, above your maxBurn {max}")]
    BurnAboveMax { burn: String, max: String },
    #[error("subnet {netuid} does not allow registrations now")]
    RegistrationClosed { netuid: u16 },
    #[error("hotkey {hotkey} belongs to coldkey {owner}, not to the sender")]
    HotkeyOwnedByOther { hotkey: Address, owner: Address },
    #[error("hotkey {hotkey} is already registered on subnet {netuid}")]
    AlreadyRegistered { hotkey: Address, netuid: u16 },
    #[error("subnet {netuid} is full and every neuron is immune; try again later")]
    SubnetFull { netuid: u16 },
    #[error("hotkey {hotkey} is not registered on subnet {netuid}")]
    NotRegistered { hotkey: Address, netuid: u16 },
    #[error("invalid endpoint: {reason}")]
    BadEndpoint { reason: String },
    #[error("invalid weights: {reason}")]
    BadWeights { reason: String },
    #[error("weights version key {got} is below the subnet's {required}")]
    StaleVersionKey { got: u64, required: u64 },
    #[error("weights may be set again at block {next_allowed} (rate limit)")]
    RateLimited { next_allowed: u64 },
    #[error("subnet {netuid} uses commit-reveal: commit weights with CommitWeights, then reveal")]
    CommitRevealRequired { netuid: u16 },
    #[error("subnet {netuid} does not use commit-reveal: use SetWeights")]
    CommitRevealDisabled { netuid: u16 },
    #[error("at most {max} weight commits may wait for their reveal")]
    TooManyCommits { max: usize },
    #[error("no pending commit matches these weights, salt and version key")]
    NoMatchingCommit,
    #[error("the commit from block {block} can be revealed in epoch {reveal_epoch}; this is epoch {epoch}")]
    RevealTooEarly {
        block: u64,
        reveal_epoch: u64,
        epoch: u64,
    },
    #[error("stake amount {amount} is below the minimum {min} MYC base units")]
    StakeTooSmall { amount: String, min: String },
    #[error("amount must be above 0")]
    ZeroAmount,
    #[error("hotkey {hotkey} is not a neuron of subnet {netuid}")]
    HotkeyNotNeuron { hotkey: Address, netuid: u16 },
    #[error("position holds {available} alpha base units, fewer than {needed}")]
    InsufficientStake { needed: String, available: String },
    #[error(
        "the pool price {price} (MYC base units per alpha) already breaks the limit price {limit}"
    )]
    PriceAlreadyBeyondLimit { price: String, limit: String },
    #[error(
        "the block's batch price {price} (MYC base units per alpha) breaks the limit price {limit}"
    )]
    PriceLimit { price: String, limit: String },
}

impl From<IncentiveError> for crate::TxError {
    fn from(e: IncentiveError) -> Self {
        crate::TxError::Incentive(e)
    }
}

impl IncentiveError {
    pub fn code(&self) -> &'static str {
        match self {
            IncentiveError::NoSubnet { .. } => "no_subnet",
            IncentiveError::LockCostAboveMax { .. } => "lock_cost_above_max",
            IncentiveError::TooManySubnets { .. } => "too_many_subnets",
            IncentiveError::NotOwner { .. } => "not_owner",
            IncentiveError::UnknownParam { .. } => "unknown_param",
            IncentiveError::ParamOutOfBounds { .. } => "param_out_of_bounds",
            IncentiveError::BadParams { .. } => "bad_params",
            IncentiveError::BurnAboveMax { .. } => "burn_above_max",
            IncentiveError::RegistrationClosed { .. } => "registration_closed",
            IncentiveError::HotkeyOwnedByOther { .. } => "hotkey_owned_by_other",
            IncentiveError::AlreadyRegistered { .. } => "already_registered",
            IncentiveError::SubnetFull { .. } => "subnet_full",
            IncentiveError::NotRegistered { .. } => "not_registered",
            IncentiveError::BadEndpoint { .. } => "bad_endpoint",
            IncentiveError::BadWeights { .. } => "bad_weights",
            IncentiveError::StaleVersionKey { .. } => "stale_version_key",
            IncentiveError::RateLimited { .. } => "rate_limited",
            IncentiveError::CommitRevealRequired { .. } => "commit_reveal_required",
            IncentiveError::CommitRevealDisabled { .. } => "commit_reveal_disabled",
            IncentiveError::TooManyCommits { .. } => "too_many_commits",
            IncentiveError::NoMatchingCommit => "no_matching_commit",
            IncentiveError::RevealTooEarly { .. } => "reveal_too_early",
            IncentiveError::StakeTooSmall { .. } => "stake_too_small",
            IncentiveError::ZeroAmount => "zero_amount",
            IncentiveError::HotkeyNotNeuron { .. } => "hotkey_not_neuron",
            IncentiveError::InsufficientStake { .. } => "insufficient_stake",
            IncentiveError::PriceAlreadyBeyondLimit { .. } => "price_already_beyond_limit",
            IncentiveError::PriceLimit { .. } => "price_limit",
        }
    }
}

/// Something an incentive-layer transaction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum IncentiveEvent {
    SubnetRegistered {
        netuid: u16,
        owner: Address,
        owner_hotkey: Address,
        #[serde(with = "amount_string")]
        lock: u128,
    },
    SubnetParamsSet {
        netuid: u16,
        names: Vec<String>,
        values: Vec<u64>,
    },
    NeuronRegistered {
        netuid: u16,
        uid: u16,
        hotkey: Address,
        coldkey: Address,
        #[serde(with = "amount_string")]
        burned: u128,
        /// The hotkey this registration replaced, if the subnet was full.
        replaced: Option<Address>,
    },
    EndpointServed {
        netuid: u16,
        uid: u16,
        host: String,
        port: u16,
        protocol: String,
    },
    WeightsSet {
        netuid: u16,
        uid: u16,
        count: usize,
    },
    WeightsCommitted {
        netuid: u16,
        uid: u16,
        hash: B256,
    },
    StakeOrdered {
        netuid: u16,
        hotkey: Address,
        side: Side,
        /// MYC for a stake, alpha for an unstake; it fills at the end of the block.
        #[serde(with = "amount_string")]
        amount: u128,
    },
}

/// Fixed-point helpers for the I64F64 bits stored in state.
pub(crate) fn fx(bits: i128) -> I64F64 {
    I64F64::from_bits(bits)
}

pub(crate) use tx::{apply_write, is_swap, plan_tx, IncentiveWrite};
