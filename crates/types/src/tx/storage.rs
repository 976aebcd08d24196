//! Transactions of blob storage (the rules are in `mycel_state::storage`).
//!
//! [`RegisterStorageNode`] locks stake and names the node's HTTP endpoint; the committee is the
//! registered nodes in address order, and each change of it is a new committee number.
//! [`RegisterBlob`] pays for `epochs` storage epochs of a blob on the current committee (the
//! price is the chain's, at most `maxCost`); [`CertifyBlob`] posts 2f + 1 nodes' signed
//! [`StorageConfirmation`](crate::storage::StorageConfirmation)s, from which block the blob is
//! available; [`ExtendBlob`] pays for more epochs; [`DeleteBlob`] (the owner) ends it and refunds
//! the epochs not yet begun.
//!
//! A **batch** is one blob holding many small items ([`RegisterBatch`]): each item has its own end
//! epoch; [`ExtendBatchItem`] and [`DeleteBatchItem`] move one item's end, and the blob is paid
//! (whole, as its nodes hold it whole) until its last item ends.

use super::incentive::{field_string, MessageJson};
use super::{field_address, field_b256, field_bytes, field_u256, field_u64, DecodeError};
use alloy_primitives::Address;
use alloy_sol_types::sol;
use serde_json::{json, Value};

sol! {
    /// `from` joins the storage committee with `stake` MYC locked, serving at `endpoint`.
    #[derive(Debug, PartialEq, Eq)]
    struct RegisterStorageNode {
        address from;
        string endpoint;
        uint256 stake;
        uint64 nonce;
        uint256 fee;
    }

    /// `from` registers blob `blobId` of `length` bytes, encoded for committee `committee`, and
    /// pays for `epochs` storage epochs from the current one, at most `maxCost` MYC.
    #[derive(Debug, PartialEq, Eq)]
    struct RegisterBlob {
        address from;
        bytes32 blobId;
        uint64 length;
        uint64 committee;
        uint64 epochs;
        uint256 maxCost;
        uint64 nonce;
        uint256 fee;
    }

    /// Certifies `blobId` with 65-byte confirmation signatures `r ‖ s ‖ v`, one after another.
    #[derive(Debug, PartialEq, Eq)]
    struct CertifyBlob {
        address from;
        bytes32 blobId;
        bytes signatures;
        uint64 nonce;
        uint256 fee;
    }

    /// Pays for `epochs` more epochs of `blobId`, at most `maxCost` MYC.
    #[derive(Debug, PartialEq, Eq)]
    struct ExtendBlob {
        address from;
        bytes32 blobId;
        uint64 epochs;
        uint256 maxCost;
        uint64 nonce;
        uint256 fee;
    }

    /// Storage node `from` reports that storage node `node` failed this epoch's challenge
    /// (`epoch` must be the current storage epoch). When 2f + 1 of the registered nodes report
    /// the same node in one epoch, it is paid nothing for that epoch and part of its stake is
    /// burned.
    #[derive(Debug, PartialEq, Eq)]
    struct ReportStorageFailure {
        address from;
        address node;
        uint64 epoch;
        uint64 nonce;
        uint256 fee;
    }

    /// The owner ends `blobId`; the epochs not yet begun are refunded.
    #[derive(Debug, PartialEq, Eq)]
    struct DeleteBlob {
        address from;
        bytes32 blobId;
        uint64 nonce;
        uint256 fee;
    }

    /// `from` registers batch blob `blobId` of `length` bytes (encoded for `committee`) holding
    /// one item per 4 bytes of `itemEpochs`: item k is paid for the big-endian u32 number of
    /// epochs at `itemEpochs[4k..4k+4]`. The blob is paid for its longest item, at most `maxCost`.
    #[derive(Debug, PartialEq, Eq)]
    struct RegisterBatch {
        address from;
        bytes32 blobId;
        uint64 length;
        uint64 committee;
        bytes itemEpochs;
        uint256 maxCost;
        uint64 nonce;
        uint256 fee;
    }

    /// Moves the end of item `item` of batch `blobId` `epochs` later; paying, at most `maxCost`,
    /// for the epochs it adds past the blob's end.
    #[derive(Debug, PartialEq, Eq)]
    struct ExtendBatchItem {
        address from;
        bytes32 blobId;
        uint64 item;
        uint64 epochs;
        uint256 maxCost;
        uint64 nonce;
        uint256 fee;
    }

    /// The owner ends item `item` of batch `blobId` with the current epoch; the epochs the blob
    /// no longer needs (when no other item runs as long) are refunded.
    #[derive(Debug, PartialEq, Eq)]
    struct DeleteBatchItem {
        address from;
        bytes32 blobId;
        uint64 item;
        uint64 nonce;
        uint256 fee;
    }
}

fn addr(a: &Address) -> Value {
    Value::String(a.to_checksum(None))
}

impl MessageJson for RegisterStorageNode {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "endpoint": self.endpoint, "stake": self.stake.to_string(),
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RegisterStorageNode {
            from: field_address(m, "from")?,
            endpoint: field_string(m, "endpoint")?,
            stake: field_u256(m, "stake")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for RegisterBlob {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "blobId": self.blobId.to_string(), "length": self.length,
               "committee": self.committee, "epochs": self.epochs,
               "maxCost": self.maxCost.to_string(), "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RegisterBlob {
            from: field_address(m, "from")?,
            blobId: field_b256(m, "blobId")?,
            length: field_u64(m, "length")?,
            committee: field_u64(m, "committee")?,
            epochs: field_u64(m, "epochs")?,
            maxCost: field_u256(m, "maxCost")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for CertifyBlob {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "blobId": self.blobId.to_string(),
               "signatures": self.signatures.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(CertifyBlob {
            from: field_address(m, "from")?,
            blobId: field_b256(m, "blobId")?,
            signatures: field_bytes(m, "signatures")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for ExtendBlob {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "blobId": self.blobId.to_string(), "epochs": self.epochs,
               "maxCost": self.maxCost.to_string(), "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(ExtendBlob {
            from: field_address(m, "from")?,
            blobId: field_b256(m, "blobId")?,
            epochs: field_u64(m, "epochs")?,
            maxCost: field_u256(m, "maxCost")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for ReportStorageFailure {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "node": addr(&self.node), "epoch": self.epoch,
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(ReportStorageFailure {
            from: field_address(m, "from")?,
            node: field_address(m, "node")?,
            epoch: field_u64(m, "epoch")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for DeleteBlob {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "blobId": self.blobId.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(DeleteBlob {
            from: field_address(m, "from")?,
            blobId: field_b256(m, "blobId")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for RegisterBatch {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "blobId": self.blobId.to_string(), "length": self.length,
               "committee": self.committee, "itemEpochs": self.itemEpochs.to_string(),
               "maxCost": self.maxCost.to_string(), "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RegisterBatch {
            from: field_address(m, "from")?,
            blobId: field_b256(m, "blobId")?,
            length: field_u64(m, "length")?,
            committee: field_u64(m, "committee")?,
            itemEpochs: field_bytes(m, "itemEpochs")?,
            maxCost: field_u256(m, "maxCost")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for ExtendBatchItem {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "blobId": self.blobId.to_string(), "item": self.item,
               "epochs": self.epochs, "maxCost": self.maxCost.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(ExtendBatchItem {
            from: field_address(m, "from")?,
            blobId: field_b256(m, "blobId")?,
            item: field_u64(m, "item")?,
            epochs: field_u64(m, "epochs")?,
            maxCost: field_u256(m, "maxCost")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for DeleteBatchItem {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "blobId": self.blobId.to_string(), "item": self.item,
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(DeleteBatchItem {
            from: field_address(m, "from")?,
            blobId: field_b256(m, "blobId")?,
            item: field_u64(m, "item")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}
