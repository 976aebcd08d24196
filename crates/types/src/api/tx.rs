//! Transactions: `POST /v1/txs` (submit) and `GET /v1/txs/{hash}` (status and receipt).

use super::{ErrorDetail, TxReceipt};
use crate::{SignedTx, TxJson};
use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

/// The body of `POST /v1/txs`: a signed transaction in its JSON form (docs/transactions.md), or
/// its canonical binary encoding as hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SubmitTx {
    /// `{"raw": "0x01…"}`.
    Raw { raw: String },
    /// `{"chainId", "type", "message", "signature"}`.
    Json(TxJson),
}

impl SubmitTx {
    /// `tx` as its canonical encoding (the smaller body).
    pub fn raw(tx: &SignedTx) -> SubmitTx {
        SubmitTx::Raw {
            raw: format!("0x{}", hex::encode(tx.encode())),
        }
    }

    /// `tx` in its JSON form.
    pub fn json(tx: &SignedTx) -> SubmitTx {
        SubmitTx::Json(tx.to_json())
    }
}

/// Where a transaction is: the answer of `GET /v1/txs/{hash}`, and of `POST /v1/txs` (202,
/// always [`TxState::Pending`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxStatus {
    pub hash: B256,
    #[serde(flatten)]
    pub state: TxState,
}

/// The `status` of a transaction and what goes with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxState {
    /// In the node's mempool, waiting for a block.
    Pending,
    /// In the finalized block `height`, at `index`.
    Finalized {
        height: u64,
        index: u32,
        #[serde(flatten)]
        result: TxResult,
    },
    /// Refused on entry, or dropped from the mempool later (`evicted`, `expired`,
    /// `insufficient_balance`, `stale_nonce`, or the code of the check it failed in its block).
    Rejected { error: ErrorDetail },
}

/// What a finalized transaction did: `"receipt"`, or `"error"` for a transaction that failed
/// but still paid its fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxResult {
    Receipt(TxReceipt),
    Error(ErrorDetail),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> TxStatus {
        let status: TxStatus = serde_json::from_str(text).unwrap();
        let again = serde_json::to_value(&status).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        status
    }

    #[test]
    fn every_status_reads_back() {
        let hash = format!("0x{}", "ab".repeat(32));
        let pending = round_trip(&format!(r#"{{"hash":"{hash}","status":"pending"}}"#));
        assert_eq!(pending.state, TxState::Pending);
        let failed = round_trip(&format!(
            r#"{{"error":{{"code":"price_limit","message":"no"}},"hash":"{hash}","height":7,"index":1,"status":"finalized"}}"#
        ));
        assert!(matches!(
            failed.state,
            TxState::Finalized { height: 7, index: 1, result: TxResult::Error(ref e) } if e.code == "price_limit"
        ));
        let done = round_trip(&format!(
            r#"{{"hash":"{hash}","height":3,"index":0,"receipt":{{"events":[{{"amount":"10000","event":"fee_burned","from":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"}}],"from":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","hash":"{hash}","nonce":0,"type":"Transfer"}},"status":"finalized"}}"#
        ));
        assert!(matches!(
            done.state,
            TxState::Finalized {
                result: TxResult::Receipt(_),
                ..
            }
        ));
        let rejected = round_trip(&format!(
            r#"{{"error":{{"code":"expired","message":"too old"}},"hash":"{hash}","status":"rejected"}}"#
        ));
        assert!(matches!(rejected.state, TxState::Rejected { .. }));
    }
}
