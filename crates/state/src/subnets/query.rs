//! Read-only views of the incentive layer, as serde structs for the node API.
//!
//! Amounts are decimal strings of base units. Prices are MYC base units per whole alpha token
//! (10^9 alpha base units), floored. Epoch results (`consensus`, `incentive`, `dividends`,
//! `validator_trust`) are `u16` proportions: the value / 65535.

use super::pool::{mul_div, PRICE_SCALE};
use super::*;
use crate::incentive::emission::{block_emission, halvings, next_halving_at, TOTAL_SUPPLY};
use crate::State;

/// A line of the subnet list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetSummary {
    pub netuid: u16,
    pub owner: Address,
    pub owner_hotkey: Address,
    pub neurons: usize,
    pub max_uids: u16,
    pub tempo: u64,
    #[serde(with = "amount_string")]
    pub burn: u128,
    /// Spot price, MYC base units per whole alpha.
    #[serde(with = "amount_string")]
    pub price: u128,
    /// Taoflow EMA (MYC base units per block, decimal).
    pub flow_ema: String,
}

/// One subnet in full (without its neurons: see the metagraph).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetInfo {
    pub netuid: u16,
    pub owner: Address,
    pub owner_hotkey: Address,
    pub registered_at: u64,
    /// MYC locked at registration (now the pool's starting liquidity).
    #[serde(with = "amount_string")]
    pub lock: u128,
    /// Current registration burn.
    #[serde(with = "amount_string")]
    pub burn: u128,
    pub registrations_this_interval: u64,
    pub neurons: usize,
    pub params: HyperParams,
    pub pool: PoolInfo,
    #[serde(with = "amount_string")]
    pub pending_alpha: u128,
    #[serde(with = "amount_string")]
    pub pending_owner_cut: u128,
    pub last_epoch: Option<u64>,
    /// The next block whose end runs this subnet's epoch.
    pub next_epoch_at: u64,
    pub flow_ema: String,
    /// Unrevealed weight commits, all hotkeys together.
    pub pending_commits: usize,
}

/// A subnet's pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    pub netuid: u16,
    #[serde(with = "amount_string")]
    pub myc_reserve: u128,
    #[serde(with = "amount_string")]
    pub alpha_reserve: u128,
    /// MYC base units per whole alpha: myc_reserve · 10^9 / alpha_reserve, floored.
    #[serde(with = "amount_string")]
    pub spot_price: u128,
    /// EMA of min(spot, 1) as a decimal fraction of MYC per alpha.
    pub moving_price: String,
    #[serde(with = "amount_string")]
    pub alpha_issued: u128,
    #[serde(with = "amount_string")]
    pub alpha_staked: u128,
}

/// One UID of a metagraph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetagraphNeuron {
    pub uid: u16,
    pub hotkey: Address,
    pub coldkey: Address,
    /// Alpha staked on the hotkey (all coldkeys), the stake Yuma uses.
    #[serde(with = "amount_string")]
    pub alpha: u128,
    /// That alpha valued at the spot price, in MYC base units.
    #[serde(with = "amount_string")]
    pub stake: u128,
    pub validator_permit: bool,
    pub consensus: u16,
    pub incentive: u16,
    pub dividends: u16,
    pub validator_trust: u16,
    /// Alpha earned in the last epoch.
    #[serde(with = "amount_string")]
    pub emission: u128,
    pub registered_at: u64,
    pub last_update: u64,
    pub active: bool,
    pub immune: bool,
    pub endpoint: Option<Endpoint>,
}

/// A subnet's metagraph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metagraph {
    pub netuid: u16,
    pub block: u64,
    pub neurons: Vec<MetagraphNeuron>,
}

/// The MYC emission schedule now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmissionSchedule {
    pub height: u64,
    /// MYC issued minus burned (what the emission is computed from).
    #[serde(with = "amount_string")]
    pub issuance: u128,
    #[serde(with = "amount_string")]
    pub total_supply: u128,
    /// Emission of the next block, MYC base units.
    #[serde(with = "amount_string")]
    pub block_emission: u128,
    pub halvings: Option<u32>,
    /// Issuance at which the emission next halves (none once the cap is reached).
    pub next_halving_at: Option<String>,
    /// The MYC a `RegisterSubnet` in the next block locks (a `maxLockCost` at least this large
    /// is accepted).
    #[serde(with = "amount_string")]
    pub subnet_lock_cost: u128,
}

/// One stake position of a coldkey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakePosition {
    pub netuid: u16,
    pub hotkey: Address,
    #[serde(with = "amount_string")]
    pub alpha: u128,
    /// Alpha valued at the spot price, MYC base units.
    #[serde(with = "amount_string")]
    pub value: u128,
}

fn price(s: &Subnet) -> u128 {
    mul_div(s.pool.myc, PRICE_SCALE, s.pool.alpha)
}

fn value(s: &Subnet, alpha: u128) -> u128 {
    mul_div(alpha, s.pool.myc, s.pool.alpha)
}

fn pool_info(s: &Subnet) -> PoolInfo {
    PoolInfo {
        netuid: s.netuid,
        myc_reserve: s.pool.myc,
        alpha_reserve: s.pool.alpha,
        spot_price: price(s),
        moving_price: fx(s.pool.moving_price_bits).to_string(),
        alpha_issued: s.alpha_issued,
        alpha_staked: s.staked_alpha(),
    }
}

impl State {
    /// The incentive layer's raw state.
    pub fn subnets(&self) -> &Subnets {
        &self.subnets
    }

    /// Every subnet, by netuid.
    pub fn subnet_list(&self) -> Vec<SubnetSummary> {
        self.subnets
            .iter()
            .map(|s| SubnetSummary {
                netuid: s.netuid,
                owner: s.owner,
                owner_hotkey: s.owner_hotkey,
                neurons: s.neurons.len(),
                max_uids: s.params.max_uids,
                tempo: s.params.tempo,
                burn: s.burn,
                price: price(s),
                flow_ema: fx(s.flow_ema_bits).to_string(),
            })
            .collect()
    }

    /// One subnet, or `None` if `netuid` does not exist.
    pub fn subnet_info(&self, netuid: u16) -> Option<SubnetInfo> {
        let s = self.subnets.get(netuid)?;
        let next_epoch_at = s.epochs().next_epoch_at(self.height);
        Some(SubnetInfo {
            netuid,
            owner: s.owner,
            owner_hotkey: s.owner_hotkey,
            registered_at: s.registered_at,
            lock: s.lock,
            burn: s.burn,
            registrations_this_interval: s.regs_this_interval,
            neurons: s.neurons.len(),
            params: s.params.clone(),
            pool: pool_info(s),
            pending_alpha: s.pending_alpha,
            pending_owner_cut: s.pending_owner,
            last_epoch: s.last_epoch,
            next_epoch_at,
            flow_ema: fx(s.flow_ema_bits).to_string(),
            pending_commits: s.commits.values().map(Vec::len).sum(),
        })
    }

    /// The metagraph of `netuid`, or `None` if it does not exist.
    pub fn metagraph(&self, netuid: u16) -> Option<Metagraph> {
        let s = self.subnets.get(netuid)?;
        let block = self.height;
        let neurons = s
            .neurons
            .iter()
            .enumerate()
            .map(|(uid, n)| {
                let alpha = s.hotkey_alpha(&n.hotkey);
                MetagraphNeuron {
                    uid: uid as u16,
                    hotkey: n.hotkey,
                    coldkey: n.coldkey,
                    alpha,
                    stake: value(s, alpha),
                    validator_permit: n.validator_permit,
                    consensus: n.consensus,
                    incentive: n.incentive,
                    dividends: n.dividends,
                    validator_trust: n.validator_trust,
                    emission: n.emission,
                    registered_at: n.registered_at,
                    last_update: n.last_update,
                    active: n.last_update.saturating_add(s.params.activity_cutoff) >= block,
                    immune: s.is_immune(uid as u16, block),
                    endpoint: n.endpoint.clone(),
                }
            })
            .collect();
        Some(Metagraph {
            netuid,
            block,
            neurons,
        })
    }

    /// Every pool.
    pub fn pools(&self) -> Vec<PoolInfo> {
        self.subnets.iter().map(pool_info).collect()
    }

    /// Issuance, the next block's emission and the next halving.
    pub fn emission_schedule(&self) -> EmissionSchedule {
        let issuance = self
            .supply
            .myc_issued
            .saturating_sub(self.supply.myc_burned);
        let i = u64::try_from(issuance).unwrap_or(u64::MAX);
        EmissionSchedule {
            height: self.height,
            issuance,
            total_supply: TOTAL_SUPPLY as u128,
            block_emission: block_emission(i) as u128,
            halvings: halvings(i, TOTAL_SUPPLY),
            next_halving_at: next_halving_at(i, TOTAL_SUPPLY).map(|v| v.to_string()),
            subnet_lock_cost: self.subnets.lock_cost(self.height + 1),
        }
    }

    /// Every stake position of `coldkey`, by netuid then hotkey.
    pub fn stakes_of(&self, coldkey: &Address) -> Vec<StakePosition> {
        let mut out = Vec::new();
        for s in self.subnets.iter() {
            for (hotkey, by_cold) in &s.stakes {
                if let Some(a) = by_cold.get(coldkey) {
                    out.push(StakePosition {
                        netuid: s.netuid,
                        hotkey: *hotkey,
                        alpha: a.0,
                        value: value(s, a.0),
                    });
                }
            }
        }
        out
    }

    /// Where the last block's emission went (none before the first subnet).
    pub fn latest_emission_receipt(&self) -> Option<&EmissionReceipt> {
        self.subnets.latest_receipt()
    }
}

#[cfg(test)]
mod tests {
    use crate::State;
    use mycel_types::Genesis;

    #[test]
    fn empty_chain_queries() {
        let g = Genesis::devnet(vec!["ab".repeat(32)], 0).unwrap();
        let state = State::from_genesis(&g);
        assert!(state.subnet_list().is_empty());
        assert!(state.metagraph(1).is_none());
        assert!(state.subnet_info(1).is_none());
        let e = state.emission_schedule();
        assert_eq!(e.block_emission, 1_000_000_000);
        assert_eq!(e.next_halving_at.as_deref(), Some("10500000000000000"));
        assert!(state.latest_emission_receipt().is_none());
    }
}
