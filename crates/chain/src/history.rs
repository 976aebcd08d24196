//! The emission history a node keeps beside its ledger (not consensus state): every finalized
//! block's emission receipt (where each base unit went) for the last `blocks` blocks, and each
//! subnet's epoch payouts for its last `epochs` epochs, served paged by the API
//! (`/v1/emission/receipts`, `/v1/subnets/{netuid}/epochs`, per neuron). Kept in memory, and
//! journaled on disk by the node's store (every block's receipt for the block retention, epoch
//! blocks' receipts while their epochs are kept), so a restarted node has it all again.

use mycel_types::api;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// How much history a node keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryConfig {
    /// Blocks whose emission receipt is kept (0: none).
    pub blocks: usize,
    /// Epochs kept per subnet (0: none).
    pub epochs: usize,
    /// Neuron payouts kept in all subnets' epochs together (~90 bytes each): past it the oldest
    /// epochs go first, whatever their subnet, so memory stays bounded however many subnets.
    pub payouts: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        // About 3 hours of blocks at one a second (a receipt is ~0.5 KiB per subnet), and 1,000
        // epochs per subnet (~40 KiB each with 256 neurons).
        HistoryConfig {
            blocks: 10_000,
            epochs: 1_000,
            // ~90 MB: 1,000 epochs of 256 neurons in four subnets.
            payouts: 1_000_000,
        }
    }
}

/// One page of a history, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The height to pass as `before` for the next (older) page.
    pub next_before: Option<u64>,
    /// The oldest height still kept.
    pub oldest: Option<u64>,
}

/// The history itself.
#[derive(Debug, Default)]
pub struct EmissionHistory {
    config: HistoryConfig,
    /// In height order.
    blocks: VecDeque<Arc<api::EmissionReceipt>>,
    /// Per subnet, (height, payout) in height order.
    epochs: BTreeMap<u16, VecDeque<(u64, Arc<api::EpochReceipt>)>>,
    /// Neuron payouts in `epochs`.
    payouts: usize,
}

impl EmissionHistory {
    pub fn new(config: HistoryConfig) -> EmissionHistory {
        EmissionHistory {
            config,
            ..EmissionHistory::default()
        }
    }

    pub fn config(&self) -> HistoryConfig {
        self.config
    }

    /// Keeps `receipt` (a block's), dropping what falls out of the retention.
    pub fn record(&mut self, receipt: &api::EmissionReceipt) {
        if self
            .blocks
            .back()
            .is_some_and(|last| last.height >= receipt.height)
        {
            return;
        }
        for s in &receipt.subnets {
            if let (Some(epoch), true) = (&s.epoch, self.config.epochs > 0) {
                let kept = self.epochs.entry(s.netuid).or_default();
                kept.push_back((receipt.height, Arc::new(epoch.clone())));
                self.payouts += epoch.neurons.len();
                while kept.len() > self.config.epochs {
                    if let Some((_, old)) = kept.pop_front() {
                        self.payouts -= old.neurons.len();
                    }
                }
            }
        }
        // Over the budget: drop the oldest epochs of any subnet (never the one just kept alone).
        while self.payouts > self.config.payouts {
            let oldest = self
                .epochs
                .iter()
                .filter(|(_, kept)| kept.len() > 1 || self.epochs.len() > 1)
                .filter_map(|(netuid, kept)| kept.front().map(|(h, _)| (*h, *netuid)))
                .min();
            let Some((_, netuid)) = oldest else { break };
            let Some(kept) = self.epochs.get_mut(&netuid) else {
                break;
            };
            if let Some((_, old)) = kept.pop_front() {
                self.payouts -= old.neurons.len();
            }
            if kept.is_empty() {
                self.epochs.remove(&netuid);
            }
        }
        if self.config.blocks > 0 {
            self.blocks.push_back(Arc::new(receipt.clone()));
            while self.blocks.len() > self.config.blocks {
                self.blocks.pop_front();
            }
        }
    }

    /// The oldest block whose epoch payouts are kept (of any subnet).
    pub fn oldest_epoch(&self) -> Option<u64> {
        self.epochs
            .values()
            .filter_map(|kept| kept.front().map(|(h, _)| *h))
            .min()
    }

    /// The oldest block whose receipt is kept.
    pub fn oldest(&self) -> Option<u64> {
        self.blocks.front().map(|r| r.height)
    }

    /// The receipt of block `height`, if kept.
    pub fn receipt(&self, height: u64) -> Option<Arc<api::EmissionReceipt>> {
        let i = self
            .blocks
            .binary_search_by_key(&height, |r| r.height)
            .ok()?;
        self.blocks.get(i).cloned()
    }

    /// Receipts below height `before`, newest first, at most `limit`.
    pub fn receipts(&self, before: u64, limit: usize) -> Page<Arc<api::EmissionReceipt>> {
        let end = self.blocks.partition_point(|r| r.height < before);
        let start = end.saturating_sub(limit);
        let items: Vec<_> = self.blocks.range(start..end).rev().cloned().collect();
        Page {
            next_before: (start > 0)
                .then(|| items.last().map(|r| r.height))
                .flatten(),
            items,
            oldest: self.oldest(),
        }
    }

    /// Subnet `netuid`'s epochs below height `before`, newest first, at most `limit`.
    pub fn epochs(
        &self,
        netuid: u16,
        before: u64,
        limit: usize,
    ) -> Page<(u64, Arc<api::EpochReceipt>)> {
        let Some(kept) = self.epochs.get(&netuid) else {
            return Page {
                items: Vec::new(),
                next_before: None,
                oldest: None,
            };
        };
        let end = kept.partition_point(|(h, _)| *h < before);
        let start = end.saturating_sub(limit);
        let items: Vec<_> = kept.range(start..end).rev().cloned().collect();
        Page {
            next_before: (start > 0).then(|| items.last().map(|(h, _)| *h)).flatten(),
            items,
            oldest: kept.front().map(|(h, _)| *h),
        }
    }
}

/// The API's answers, read from the history at finalized height `height`.
impl EmissionHistory {
    /// `GET /v1/emission/receipts`.
    pub fn receipt_list(&self, before: u64, limit: usize, height: u64) -> api::EmissionReceiptList {
        let page = self.receipts(before, limit);
        api::EmissionReceiptList {
            receipts: page.items.iter().map(|r| (**r).clone()).collect(),
            next_before: page.next_before,
            oldest_height: page.oldest,
            height,
        }
    }

    /// `GET /v1/subnets/{netuid}/epochs`.
    pub fn epoch_list(
        &self,
        netuid: u16,
        before: u64,
        limit: usize,
        height: u64,
    ) -> api::EpochList {
        let page = self.epochs(netuid, before, limit);
        api::EpochList {
            netuid,
            epochs: page
                .items
                .iter()
                .map(|(height, epoch)| api::EpochAt {
                    height: *height,
                    epoch: (**epoch).clone(),
                })
                .collect(),
            next_before: page.next_before,
            oldest_height: page.oldest,
            height,
        }
    }

    /// `GET /v1/subnets/{netuid}/neurons/{uid}/emissions`: the kept epochs (of the `limit`
    /// below `before`) whose payout names `uid`.
    pub fn neuron_emissions(
        &self,
        netuid: u16,
        uid: u16,
        before: u64,
        limit: usize,
        height: u64,
    ) -> api::NeuronEmissions {
        let page = self.epochs(netuid, before, limit);
        let epochs = page
            .items
            .iter()
            .filter_map(|(height, epoch)| {
                let n = epoch.neurons.iter().find(|n| n.uid == uid)?;
                Some(api::NeuronEpoch {
                    height: *height,
                    hotkey: n.hotkey,
                    incentive: n.incentive,
                    dividends: n.dividends,
                    take: n.take,
                    to_stakers: n.to_stakers,
                })
            })
            .collect();
        api::NeuronEmissions {
            netuid,
            uid,
            epochs,
            next_before: page.next_before,
            oldest_height: page.oldest,
            height,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(height: u64, epoch_paid: Option<u128>) -> api::EmissionReceipt {
        api::EmissionReceipt {
            height,
            issuance: 0,
            block_emission: 1_000,
            myc_unassigned: 0,
            subnets: vec![api::SubnetEmission {
                netuid: 1,
                flow_ema: "0".into(),
                myc_share: 1_000,
                myc_injected: 1_000,
                myc_recycled: 0,
                alpha_injected: 1_000,
                alpha_emission: 1_000,
                owner_cut: 180,
                pending_added: 820,
                pool_myc: 1_000_000,
                pool_alpha: 1_000_000,
                epoch: epoch_paid.map(|paid| api::EpochReceipt {
                    paid,
                    owner_cut: 0,
                    neurons: vec![],
                    recycled: paid,
                }),
            }],
            swaps: vec![],
        }
    }

    #[test]
    fn keeps_what_the_retention_says_and_pages_newest_first() {
        let mut h = EmissionHistory::new(HistoryConfig {
            blocks: 5,
            epochs: 2,
            payouts: 1_000,
        });
        for height in 1..=10 {
            h.record(&receipt(
                height,
                (height % 3 == 0).then_some(u128::from(height)),
            ));
        }
        // Blocks 6..=10 kept; 3, 6, 9 had epochs, the last two kept.
        assert_eq!(h.receipt(5), None);
        assert_eq!(h.receipt(6).unwrap().height, 6);
        let page = h.receipts(u64::MAX, 2);
        let heights: Vec<u64> = page.items.iter().map(|r| r.height).collect();
        assert_eq!(heights, [10, 9]);
        assert_eq!(page.next_before, Some(9));
        assert_eq!(page.oldest, Some(6));
        let rest = h.receipts(9, 10);
        let heights: Vec<u64> = rest.items.iter().map(|r| r.height).collect();
        assert_eq!(heights, [8, 7, 6]);
        assert_eq!(rest.next_before, None);
        let epochs = h.epochs(1, u64::MAX, 10);
        let at: Vec<u64> = epochs.items.iter().map(|(h, _)| *h).collect();
        assert_eq!(at, [9, 6]);
        assert_eq!(epochs.items[0].1.paid, 9);
        assert!(h.epochs(2, u64::MAX, 10).items.is_empty());
        // A block seen again (a replay) is not kept twice.
        h.record(&receipt(10, None));
        assert_eq!(h.receipts(u64::MAX, 100).items.len(), 5);
    }

    #[test]
    fn all_subnets_epochs_share_one_payout_budget() {
        let mut h = EmissionHistory::new(HistoryConfig {
            blocks: 0,
            epochs: 100,
            payouts: 10,
        });
        let epoch_of = |netuid: u16, height: u64, neurons: u16| {
            let mut r = receipt(height, Some(1));
            r.subnets[0].netuid = netuid;
            if let Some(e) = &mut r.subnets[0].epoch {
                e.neurons = (0..neurons)
                    .map(|uid| api::NeuronPayout {
                        uid,
                        hotkey: alloy_primitives::Address::ZERO,
                        incentive: 1,
                        dividends: 0,
                        take: 0,
                        to_stakers: 0,
                    })
                    .collect();
            }
            r
        };
        // Subnet 1 at heights 1, 2; subnet 2 at 3; 4 payouts each: 12 > 10, so height 1 goes.
        h.record(&epoch_of(1, 1, 4));
        h.record(&epoch_of(1, 2, 4));
        h.record(&epoch_of(2, 3, 4));
        let heights = |h: &EmissionHistory, netuid| -> Vec<u64> {
            h.epochs(netuid, u64::MAX, 100)
                .items
                .iter()
                .map(|(h, _)| *h)
                .collect()
        };
        assert_eq!(heights(&h, 1), [2]);
        assert_eq!(heights(&h, 2), [3]);
        assert_eq!(h.receipts(u64::MAX, 10).items.len(), 0, "no blocks kept");
        // One epoch bigger than the budget is still kept (alone).
        h.record(&epoch_of(3, 4, 50));
        assert_eq!(heights(&h, 3), [4]);
        assert!(heights(&h, 1).is_empty() && heights(&h, 2).is_empty());
    }
}
