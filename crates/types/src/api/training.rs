//! Training runs: `GET /v1/subnets/{netuid}/training` and the events of training transactions
//! (docs/training.md).
//!
//! The types are also what the state machine stores and records (one definition for both).

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// A subnet's training run at the latest block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingRun {
    pub netuid: u16,
    /// The subnet owner who started the run.
    pub owner: Address,
    /// Who publishes the checkpoints.
    pub aggregator: Address,
    /// SHA-256 of the run's specification (model, inner steps, codec, scoring), which the
    /// checkpoint blobs carry.
    pub spec: B256,
    pub round_blocks: u64,
    pub reveal_blocks: u64,
    /// The block of `StartTrainingRun`.
    pub started_height: u64,
    /// The round in progress (0 first).
    pub round: u64,
    /// The block that began it (the start or the last checkpoint's publication).
    pub round_start: u64,
    /// The last block in which commits for the round are taken: `round_start + round_blocks`.
    pub deadline: u64,
    /// The last block in which reveals are taken: `deadline + reveal_blocks`. The checkpoint
    /// can be published from the block after it.
    pub reveal_end: u64,
    /// The checkpoint the round trains from: its blob and the SHA-256 of its bytes.
    pub checkpoint: B256,
    pub checkpoint_hash: B256,
    /// The round's commits, in the order they were made.
    pub updates: Vec<TrainingUpdate>,
    /// Every checkpoint of the run, oldest first: `history[r]` is the one round `r` trained from.
    pub history: Vec<TrainingCheckpoint>,
}

/// A hotkey's commit (and reveal) in the current round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingUpdate {
    pub hotkey: Address,
    /// Its place in the round's commit order (0 first): an update equal to an earlier one is a
    /// copy.
    pub commit_index: u32,
    /// keccak-256 of the update's bytes.
    pub update_hash: B256,
    pub committed_height: u64,
    /// The blob holding the update, once revealed.
    pub blob_id: Option<B256>,
}

/// A published checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingCheckpoint {
    /// The round that trains from it.
    pub round: u64,
    pub checkpoint: B256,
    pub checkpoint_hash: B256,
    /// The block that published it.
    pub height: u64,
    /// Updates it was built from (0 for the first).
    pub accepted: u64,
}

/// Something a training transaction did (`action` says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum TrainingEvent {
    RunStarted {
        netuid: u16,
        checkpoint: B256,
        aggregator: Address,
    },
    UpdateCommitted {
        netuid: u16,
        round: u64,
        hotkey: Address,
        update_hash: B256,
    },
    UpdateRevealed {
        netuid: u16,
        round: u64,
        hotkey: Address,
        blob_id: B256,
    },
    CheckpointPublished {
        netuid: u16,
        /// The round that produced it; the next one trains from it.
        round: u64,
        checkpoint: B256,
        accepted: u64,
    },
}
