//! Blob storage: `GET /v1/storage` (the committee, the epoch, the prices), `GET
//! /v1/storage/blobs/{id}` (a blob's registration) and the events of storage transactions
//! (docs/storage.md).
//!
//! The event type is also what the state machine records (one definition for both).

use crate::storage::StorageParams;
use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// Something a storage transaction did (`action` says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum StorageEvent {
    NodeRegistered {
        node: Address,
        committee: u64,
    },
    /// A registered node moved its endpoint (and may have added stake).
    NodeUpdated {
        node: Address,
    },
    BlobRegistered {
        blob_id: B256,
        end_epoch: u64,
        #[serde(with = "super::amount")]
        paid: u128,
    },
    BlobCertified {
        blob_id: B256,
        confirmations: u64,
    },
    /// Confirmations counted towards a certificate still short of `needed` (2f + 1).
    BlobConfirmed {
        blob_id: B256,
        confirmations: u64,
        needed: u64,
    },
    BlobExtended {
        blob_id: B256,
        end_epoch: u64,
        #[serde(with = "super::amount")]
        paid: u128,
    },
    BlobDeleted {
        blob_id: B256,
        #[serde(with = "super::amount")]
        refunded: u128,
    },
    /// A batch's item moved its end (extended, or deleted by the owner); `paid` is what the
    /// blob's longer life cost, `refunded` what its shorter life gave back.
    BatchItemChanged {
        blob_id: B256,
        item: u64,
        end_epoch: u64,
        deleted: bool,
        #[serde(with = "super::amount")]
        paid: u128,
        #[serde(with = "super::amount")]
        refunded: u128,
    },
    /// A storage node reported another as failing this epoch's challenge.
    FailureReported {
        node: Address,
        epoch: u64,
        reports: u64,
    },
}

/// A member of the storage committee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageMember {
    pub address: Address,
    pub endpoint: String,
    #[serde(with = "super::amount")]
    pub stake: u128,
}

/// What was paid at the end of the last storage epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoragePayout {
    pub epoch: u64,
    pub height: u64,
    pub blobs: u64,
    pub expired: u64,
    #[serde(with = "super::amount")]
    pub total: u128,
    /// Nodes that 2f + 1 others reported failing the epoch's challenge: paid nothing, stake cut.
    #[serde(default)]
    pub slashed: Vec<Address>,
    /// MYC burned: the slashed nodes' pay and the stake they lost.
    #[serde(with = "super::amount", default)]
    pub burned: u128,
}

/// `GET /v1/storage`: what a writer needs to encode and pay for a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageInfo {
    /// The committee a new blob is encoded for (0: none yet).
    pub committee: u64,
    /// Its members in position order (sliver rotation counts from here).
    pub members: Vec<StorageMember>,
    /// The current storage epoch and the height at which it ends.
    pub epoch: u64,
    pub epoch_ends_at: u64,
    pub params: StorageParams,
    #[serde(with = "super::amount")]
    pub fund: u128,
    pub blobs: u64,
    pub last_payout: Option<StoragePayout>,
}

/// Where a blob stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobStatus {
    /// Paid for, waiting for its certificate.
    Registered,
    /// 2f + 1 nodes confirmed holding it: readable.
    Certified,
    /// Deleted by its owner; stored until its current epoch ends.
    Deleted,
}

/// `GET /v1/storage/blobs/{id}`: a blob's registration (404 `blob_unknown` once expired).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    pub blob_id: B256,
    pub status: BlobStatus,
    pub owner: Address,
    pub length: u64,
    pub committee: u64,
    /// The committee's members in position order.
    pub members: Vec<StorageMember>,
    pub start_epoch: u64,
    /// The first epoch not paid for.
    pub end_epoch: u64,
    #[serde(with = "super::amount")]
    pub epoch_price: u128,
    pub registered_height: u64,
    pub certified_height: Option<u64>,
    /// A batch's items in index order (empty for a plain blob).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<BatchItem>,
    /// Before certification: the members whose confirmations the chain has counted so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confirmed_by: Vec<Address>,
}

/// One item of a batch blob: readable while `end_epoch` is after the current epoch and it is not
/// deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    /// The first epoch the item is not paid for.
    pub end_epoch: u64,
    pub deleted: bool,
}

impl BatchItem {
    /// Whether the item may be read in storage epoch `epoch`.
    pub fn live(&self, epoch: u64) -> bool {
        !self.deleted && epoch < self.end_epoch
    }
}

/// `GET /v1/storage/blobs?after=ID&limit=N`: registered blobs in id order, for storage nodes that
/// check they hold what they must.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobList {
    pub blobs: Vec<BlobInfo>,
    /// Pass as `after` for the next page; `None` at the end.
    pub next: Option<B256>,
}
