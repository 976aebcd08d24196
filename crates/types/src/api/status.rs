//! `GET /v1/status`.

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

/// The node and its chain at the latest finalized block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub chain_id: u64,
    pub genesis_hash: B256,
    /// The latest finalized block: its height, hash, state root and time.
    pub height: u64,
    pub hash: B256,
    pub state_root: B256,
    pub timestamp_ms: u64,
    /// The validator set (ed25519 public keys, hex).
    pub validators: Vec<String>,
    /// This node's validator key (hex).
    pub node_key: String,
    /// Transactions in this node's mempool.
    pub mempool_size: usize,
    /// The smallest fee a transaction may pay, MYC base units.
    #[serde(with = "super::amount")]
    pub min_fee: u128,
    /// The largest encoded transaction, in bytes.
    pub max_tx_bytes: u32,
}

/// `GET /health/sync`: whether the node keeps up with its chain (200 when it does, 503 when not,
/// with this body either way).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncHealth {
    /// Every finalized block is applied (or being applied) and the last one is at most 10 block
    /// times older than the node's clock.
    pub in_sync: bool,
    /// The last finalized block the API serves.
    pub height: u64,
    /// The highest height consensus has finalized.
    pub consensus_height: u64,
    /// Milliseconds from the last finalized block's timestamp to the node's clock.
    pub finality_lag_ms: u64,
    /// The consensus block time.
    pub block_time_ms: u64,
}
