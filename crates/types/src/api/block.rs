//! Blocks: `GET /v1/blocks/{height}`, `GET /v1/blocks/latest`, the list `GET /v1/blocks`, and
//! the server-sent events of `GET /v1/events/blocks`.

use super::{ErrorDetail, TxReceipt};
use crate::TxJson;
use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

/// A finalized block and its transactions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub height: u64,
    pub hash: B256,
    pub parent: B256,
    pub timestamp_ms: u64,
    pub state_root: B256,
    /// The consensus leader that proposed it (ed25519 public key, hex); `None` for genesis.
    pub proposer: Option<String>,
    /// The consensus view it was proposed in.
    pub view: u64,
    pub tx_count: usize,
    pub txs: Vec<BlockTx>,
}

/// One transaction of a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockTx {
    pub hash: B256,
    pub index: u32,
    /// The signed transaction in its JSON form.
    pub tx: TxJson,
    pub result: Option<BlockTxResult>,
}

/// What a block's transaction did: `{"ok": receipt}` or `{"err": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockTxResult {
    Ok(TxReceipt),
    Err(ErrorDetail),
}

/// The data of a `lagged` event: the stream skipped `missed` blocks (a slow reader) and goes on
/// from the newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lagged {
    pub missed: u64,
}

/// One event of the block stream.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockEvent {
    /// `event: block`, a newly finalized block as data.
    Block(Box<Block>),
    /// `event: lagged`.
    Lagged(Lagged),
}

impl BlockEvent {
    /// The SSE event name of a block.
    pub const BLOCK: &'static str = "block";
    /// The SSE event name of a gap.
    pub const LAGGED: &'static str = "lagged";

    /// This event's SSE name.
    pub fn name(&self) -> &'static str {
        match self {
            BlockEvent::Block(_) => Self::BLOCK,
            BlockEvent::Lagged(_) => Self::LAGGED,
        }
    }

    /// The event named `name` with `data`; `Ok(None)` for a name this version does not know.
    pub fn from_sse(name: &str, data: &str) -> Result<Option<BlockEvent>, serde_json::Error> {
        Ok(match name {
            Self::BLOCK => Some(BlockEvent::Block(Box::new(serde_json::from_str(data)?))),
            Self::LAGGED => Some(BlockEvent::Lagged(serde_json::from_str(data)?)),
            _ => None,
        })
    }
}

/// A block without its transactions, as `GET /v1/blocks` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSummary {
    pub height: u64,
    pub hash: B256,
    pub timestamp_ms: u64,
    pub proposer: Option<String>,
    pub tx_count: usize,
    /// How many of its transactions failed in execution.
    pub failed: usize,
}

/// `GET /v1/blocks?before=H&limit=N`: finalized blocks, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockList {
    pub blocks: Vec<BlockSummary>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<u64>,
    /// The finalized height when the page was read.
    pub height: u64,
}
