//! The epoch rule: the one place that says in which blocks a subnet's epoch runs.
//!
//! Subnet `netuid` with tempo `T` runs its epoch in every block `b` where
//! `(b + netuid + 1) % (T + 1) == 0` (subtensor's rule: a period of `T + 1` blocks, shifted by
//! the netuid so that subnets with the same tempo do not all run in the same block). The epoch
//! index of a block is `(b + netuid + 1) / (T + 1)`: it goes up by one at every epoch block, and
//! the commit-reveal windows of weights are counted in it.
//!
//! Everything that needs the rule calls [`EpochSchedule`]: the block pipeline
//! ([`crate::pipeline`], step 7), commit-reveal checks, the node API's `next_epoch_at`, the CLI
//! and the benches. Do not write the formula anywhere else.
//!
//! Arithmetic is done in `u128`, so no tempo or netuid overflows (tempo 0 means an epoch every
//! block); a block beyond `u64::MAX` is reported as `u64::MAX`, which a chain never reaches.

use std::ops::RangeInclusive;

/// When the epochs of one subnet fall: its netuid and tempo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochSchedule {
    pub netuid: u16,
    pub tempo: u64,
}

impl EpochSchedule {
    pub const fn new(netuid: u16, tempo: u64) -> EpochSchedule {
        EpochSchedule { netuid, tempo }
    }

    /// Blocks from one epoch to the next: `tempo + 1`.
    pub fn period(self) -> u64 {
        block_of(self.period_wide())
    }

    /// Whether the subnet's epoch runs in `block`.
    pub fn is_epoch_block(self, block: u64) -> bool {
        self.shifted(block).is_multiple_of(self.period_wide())
    }

    /// The epoch index of `block`: it goes up by one at each epoch block.
    pub fn epoch_index(self, block: u64) -> u64 {
        block_of(self.shifted(block) / self.period_wide())
    }

    /// The first block after `height` that runs the epoch.
    pub fn next_epoch_at(self, height: u64) -> u64 {
        let next = u128::from(height) + 1;
        let rem = (next + self.offset()) % self.period_wide();
        if rem == 0 {
            block_of(next)
        } else {
            block_of(next + self.period_wide() - rem)
        }
    }

    /// The last block at or before `block` that ran the epoch (`None` if none did).
    pub fn last_epoch_at(self, block: u64) -> Option<u64> {
        let rem = self.shifted(block) % self.period_wide();
        u64::try_from(rem).ok().and_then(|r| block.checked_sub(r))
    }

    /// The blocks whose [`epoch_index`](Self::epoch_index) is `index` (`None` if no block is:
    /// the first indices of a subnet with a large netuid and a short tempo are skipped).
    pub fn blocks_of_epoch(self, index: u64) -> Option<RangeInclusive<u64>> {
        let start = u128::from(index).saturating_mul(self.period_wide());
        let end = start.saturating_add(self.period_wide());
        // Blocks b with start <= b + offset < end.
        if end <= self.offset() {
            return None;
        }
        let first = start.saturating_sub(self.offset());
        Some(block_of(first)..=block_of(end - self.offset() - 1))
    }

    /// The epoch in which a weights commit made at `commit_block` must be revealed: `reveal_period`
    /// epochs after its own. A reveal before it is too early; after it, the commit has expired.
    pub fn reveal_epoch(self, commit_block: u64, reveal_period: u64) -> u64 {
        self.epoch_index(commit_block).saturating_add(reveal_period)
    }

    /// The blocks in which a commit made at `commit_block` can be revealed.
    pub fn reveal_window(self, commit_block: u64, reveal_period: u64) -> RangeInclusive<u64> {
        self.blocks_of_epoch(self.reveal_epoch(commit_block, reveal_period))
            .expect("the commit's epoch and every later one have blocks")
    }

    /// What is added to a block before dividing by the period: `netuid + 1`.
    fn offset(self) -> u128 {
        u128::from(self.netuid) + 1
    }

    fn period_wide(self) -> u128 {
        u128::from(self.tempo) + 1
    }

    fn shifted(self, block: u64) -> u128 {
        u128::from(block) + self.offset()
    }
}

fn block_of(wide: u128) -> u64 {
    u64::try_from(wide).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn epoch_blocks(s: EpochSchedule, upto: u64) -> Vec<u64> {
        (0..=upto).filter(|b| s.is_epoch_block(*b)).collect()
    }

    #[test]
    fn netuid_shifts_the_epochs() {
        // Tempo 9, subnet 1: (b + 2) % 10 == 0.
        let s = EpochSchedule::new(1, 9);
        assert_eq!(epoch_blocks(s, 40), vec![8, 18, 28, 38]);
        assert_eq!(s.period(), 10);
        assert_eq!(s.epoch_index(7), 0);
        assert_eq!(s.epoch_index(8), 1);
        assert_eq!(s.epoch_index(17), 1);
        assert_eq!(s.next_epoch_at(0), 8);
        assert_eq!(s.next_epoch_at(7), 8);
        assert_eq!(s.next_epoch_at(8), 18);
        assert_eq!(s.last_epoch_at(7), None);
        assert_eq!(s.last_epoch_at(8), Some(8));
        assert_eq!(s.last_epoch_at(17), Some(8));
        assert_eq!(s.blocks_of_epoch(0), Some(0..=7));
        assert_eq!(s.blocks_of_epoch(1), Some(8..=17));
        // Subnet 0, default tempo 360: (b + 1) % 361 == 0.
        let s = EpochSchedule::new(0, 360);
        assert_eq!(epoch_blocks(s, 1000), vec![360, 721]);
        // Subnet 1, tempo 360: (b + 2) % 361 == 0.
        let s = EpochSchedule::new(1, 360);
        assert_eq!(epoch_blocks(s, 1000), vec![359, 720]);
    }

    #[test]
    fn tempo_zero_runs_every_block() {
        let s = EpochSchedule::new(3, 0);
        assert_eq!(s.period(), 1);
        assert!((0..100).all(|b| s.is_epoch_block(b)));
        assert_eq!(s.next_epoch_at(0), 1);
        assert_eq!(s.next_epoch_at(41), 42);
        assert_eq!(s.last_epoch_at(0), Some(0));
        assert_eq!(s.epoch_index(0), 4);
        assert_eq!(s.epoch_index(10), 14);
        assert_eq!(s.blocks_of_epoch(14), Some(10..=10));
        // Epochs 0..=3 have no blocks (the offset is 4).
        assert_eq!(s.blocks_of_epoch(3), None);
        assert_eq!(s.reveal_window(10, 2), 12..=12);
    }

    #[test]
    fn largest_netuid() {
        // 65536 % 361 = 195, so epochs fall where b % 361 == 166.
        let s = EpochSchedule::new(u16::MAX, 360);
        assert_eq!(epoch_blocks(s, 1000), vec![166, 527, 888]);
        assert_eq!(s.next_epoch_at(0), 166);
        assert_eq!(s.next_epoch_at(166), 527);
        assert_eq!(s.epoch_index(165), 181);
        assert_eq!(s.epoch_index(166), 182);
        assert_eq!(s.blocks_of_epoch(182), Some(166..=526));
        assert_eq!(s.blocks_of_epoch(181), Some(0..=165));
        assert_eq!(s.blocks_of_epoch(180), None);
        // Largest tempo too: one epoch in the whole u64 range, at 2^64 − 65536.
        let s = EpochSchedule::new(u16::MAX, u64::MAX);
        assert_eq!(s.period(), u64::MAX);
        assert_eq!(s.next_epoch_at(0), u64::MAX - 65_535);
        assert!(s.is_epoch_block(u64::MAX - 65_535));
        assert!(!s.is_epoch_block(0));
        assert_eq!(s.epoch_index(u64::MAX), 1);
        assert_eq!(s.last_epoch_at(1000), None);
    }

    #[test]
    fn reveal_window_is_the_epoch_after_the_reveal_period() {
        // Subnet 1, tempo 9: a commit at block 10 is in epoch 1 (blocks 8..=17).
        let s = EpochSchedule::new(1, 9);
        assert_eq!(s.reveal_epoch(10, 1), 2);
        assert_eq!(s.reveal_window(10, 1), 18..=27);
        assert_eq!(s.reveal_window(17, 2), 28..=37);
        assert_eq!(s.reveal_window(8, 1), 18..=27);
    }

    proptest! {
        #[test]
        fn next_epoch_is_the_first_epoch_block_after(
            netuid in prop_oneof![Just(0u16), Just(u16::MAX), any::<u16>()],
            tempo in prop_oneof![Just(0u64), Just(1u64), 0u64..5000],
            height in 0u64..(1 << 40),
        ) {
            let s = EpochSchedule::new(netuid, tempo);
            let next = s.next_epoch_at(height);
            prop_assert!(next > height);
            prop_assert!(s.is_epoch_block(next));
            prop_assert!((height + 1..next).all(|b| !s.is_epoch_block(b)));
        }

        #[test]
        fn index_steps_at_epoch_blocks_and_windows_hold_their_index(
            netuid in prop_oneof![Just(0u16), Just(u16::MAX), any::<u16>()],
            tempo in prop_oneof![Just(0u64), 0u64..5000],
            block in 1u64..(1 << 40),
            reveal_period in 1u64..100,
        ) {
            let s = EpochSchedule::new(netuid, tempo);
            let step = s.epoch_index(block) - s.epoch_index(block - 1);
            prop_assert_eq!(step, u64::from(s.is_epoch_block(block)));
            let since = match s.last_epoch_at(block) {
                Some(last) => {
                    prop_assert!(s.is_epoch_block(last));
                    last + 1
                }
                None => 0,
            };
            prop_assert!((since..=block).all(|b| !s.is_epoch_block(b)));
            let window = s.reveal_window(block, reveal_period);
            let (first, end) = (*window.start(), *window.end());
            prop_assert!(first > block && first <= end);
            prop_assert!(s.is_epoch_block(first));
            prop_assert_eq!(s.next_epoch_at(end), end + 1);
            prop_assert_eq!(s.epoch_index(first), s.reveal_epoch(block, reveal_period));
            prop_assert_eq!(s.epoch_index(end), s.reveal_epoch(block, reveal_period));
        }

        #[test]
        fn blocks_of_an_epoch_are_exactly_those_with_its_index(
            netuid in prop_oneof![Just(0u16), Just(u16::MAX), any::<u16>()],
            tempo in prop_oneof![Just(0u64), 0u64..5000],
            index in 0u64..(1 << 30),
        ) {
            let s = EpochSchedule::new(netuid, tempo);
            match s.blocks_of_epoch(index) {
                Some(blocks) => {
                    let (first, end) = (*blocks.start(), *blocks.end());
                    prop_assert_eq!(s.epoch_index(first), index);
                    prop_assert_eq!(s.epoch_index(end), index);
                    prop_assert!(first == 0 || s.epoch_index(first - 1) < index);
                    prop_assert!(s.epoch_index(end + 1) > index);
                }
                None => prop_assert!(s.epoch_index(0) > index),
            }
        }
    }
}
