//! Read-only views of the incentive layer, as the node API's wire types
//! ([`mycel_types::api`]).
//!
//! Prices are MYC base units per whole alpha token (10^9 alpha base units), floored. Epoch
//! results (`consensus`, `incentive`, `dividends`, `validator_trust`) are `u16` proportions: the
//! value / 65535.

use super::pool::{mul_div, PRICE_SCALE};
use super::*;
use crate::incentive::emission::{block_emission, halvings, next_halving_at, TOTAL_SUPPLY};
use crate::State;
use mycel_types::api::{
    self, EmissionSchedule, Metagraph, MetagraphNeuron, PoolInfo, StakePosition, SubnetSummary,
};

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
    pub fn subnet_info(&self, netuid: u16) -> Option<api::Subnet> {
        let s = self.subnets.get(netuid)?;
        let next_epoch_at = s.epochs().next_epoch_at(self.height);
        Some(api::Subnet {
            netuid,
            owner: s.owner,
            owner_hotkey: s.owner_hotkey,
            registered_at: s.registered_at,
            lock: s.lock,
            burn: s.burn,
            registrations_this_interval: s.regs_this_interval,
            neurons: s.neurons.len(),
            params: api::HyperParams::from(&s.params),
            pool: pool_info(s),
            pending_alpha: s.pending_alpha,
            pending_owner_cut: s.pending_owner,
            last_epoch: s.last_epoch,
            next_epoch_at,
            flow_ema: fx(s.flow_ema_bits).to_string(),
            pending_commits: s.commits.values().map(Vec::len).sum(),
            height: self.height,
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
                    endpoint: n.endpoint.as_ref().map(api::Endpoint::from),
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
            next_halving_at: next_halving_at(i, TOTAL_SUPPLY).map(u128::from),
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
        assert_eq!(e.next_halving_at, Some(10_500_000_000_000_000));
        assert!(state.latest_emission_receipt().is_none());
    }
}
