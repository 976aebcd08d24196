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
