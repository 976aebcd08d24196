//! Blob storage on chain: the storage nodes and their committee, blobs paid for by the epoch,
//! availability certificates, and the storage fund that pays the nodes.
//!
//! Rules:
//! - `RegisterStorageNode`: an endpoint (`http://` or `https://`, at most [`MAX_ENDPOINT_BYTES`])
//!   and at least `min_node_stake` MYC, locked. The committee is every registered node in address
//!   order (at most [`MAX_NODES`]); each registration makes a new committee, numbered 1, 2, ….
//!   A registered node sending it again moves its endpoint and adds `stake` (0 allowed) to its
//!   stake; the committee does not change.
//! - `RegisterBlob`: on the current committee (the writer encoded for its n, at least
//!   [`MIN_NODES`]), a length within [`MAX_BLOB_BYTES`], 1 to `max_epochs` epochs, an id not
//!   registered. The price is `epoch_price(layout) × epochs` ([`StorageParams::epoch_price`]:
//!   encoded bytes, in MiB rounded up, × `price_per_mib_epoch`), at most `maxCost`; it moves from
//!   the sender into the storage fund. The blob is paid for epochs `[current, current + epochs)`.
//! - `CertifyBlob` (anyone): a registered, uncertified, unexpired blob; 65-byte signatures of
//!   [`StorageConfirmation`] `{blobId, committee}` by distinct members of the blob's committee
//!   not counted before. The chain counts them across transactions (a large committee's
//!   certificate does not fit one transaction); from the block in which 2f + 1 are counted the
//!   blob is available.
//! - `ExtendBlob` (anyone): an unexpired, undeleted blob; paid at the same epoch price, the end
//!   at most `max_epochs` past the current epoch.
//! - `DeleteBlob` (the owner): the epochs after the current one are refunded from the fund; the
//!   blob ends with the current epoch.
//! - **Epochs**: epoch e is blocks `[e·E, (e+1)·E)`, E = `epoch_blocks`. At the first block of
//!   epoch e + 1, every blob paid for epoch e pays its epoch price out of the fund to its
//!   committee, split equally (the remainder one base unit each to the first members), and blobs
//!   whose paid epochs are over are dropped.
//!
//! - **Batches** (`RegisterBatch`): one blob holding many small items, registered like a blob
//!   (same layout price) with one end epoch per item (1 to [`MAX_BATCH_ITEMS`] items, each paid
//!   for 1 to `max_epochs` epochs). The nodes hold the batch whole, so it is paid whole until its
//!   last item ends: the blob's end is its latest item's. `ExtendBatchItem` (anyone) moves one
//!   live item's end later and pays for the epochs it adds past the blob's end;
//!   `DeleteBatchItem` (the owner) ends one live item with the current epoch and refunds the
//!   epochs the blob no longer needs. `ExtendBlob` on a batch moves every live item (and the
//!   blob) `epochs` later; `DeleteBlob` ends them all. An item is readable (aggregators,
//!   `mycel blob get --item`) while it is live: not deleted and its end epoch not reached.
//!
//! - `ReportStorageFailure` (a registered node, about another): the node failed this epoch's
//!   challenge (`mycel storage` challenges every other node each epoch: seeded positions of the
//!   blobs both hold, answered with symbols and Merkle proofs). Once per reporter, node and epoch;
//!   only the current epoch. At the epoch's payout a node reported by 2f + 1 of the registered
//!   nodes (f of the registered count) is paid nothing for that epoch and loses `slash_bps` of its
//!   stake; both are burned.
//!
//! Books: MYC in the fund and MYC staked by nodes are in the MYC books (issued = balances, burned,
//! subnet pools, storage fund and node stakes together), asserted after every block. The fund
//! always holds exactly the unpaid epochs of the blobs it holds (asserted too).
//!
//! State root: every applied storage transaction and every epoch payout extends a running
//! digest, folded in as `keccak(0x0d ‖ root ‖ d)`.

use crate::{bank, Account, State, TxError};
use alloy_primitives::{Address, B256, U256};
pub use mycel_types::api::{BatchItem, StorageEvent};
use mycel_types::genesis::amount_string;
use mycel_types::storage::{
    quorum, Layout, StorageConfirmation, StorageParams, MAX_BATCH_ITEMS, MAX_BLOB_BYTES, MAX_NODES,
    MIN_NODES,
};
use mycel_types::{Amount, Token, TxKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The longest storage node endpoint in bytes.
pub const MAX_ENDPOINT_BYTES: usize = 256;

/// A registered storage node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageNode {
    pub endpoint: String,
    #[serde(with = "amount_string")]
    pub stake: Amount,
    pub registered_height: u64,
}

/// A registered blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    pub owner: Address,
    pub length: u64,
    pub committee: u64,
    pub nodes: u16,
    /// The first epoch paid for.
    pub start_epoch: u64,
    /// The first epoch not paid for.
    pub end_epoch: u64,
    #[serde(with = "amount_string")]
    pub epoch_price: Amount,
    pub registered_height: u64,
    pub certified_height: Option<u64>,
    pub deleted: bool,
    /// A batch's items in index order (empty for a plain blob); `end_epoch` is their latest end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<BatchItem>,
    /// Committee members whose confirmations were counted, until the blob is certified.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub confirmed_by: BTreeSet<Address>,
}

impl Blob {
    /// MYC the fund holds for this blob: its epochs from `epoch` on.
    fn unpaid(&self, epoch: u64) -> Amount {
        let epochs = self.end_epoch.saturating_sub(self.start_epoch.max(epoch));
        self.epoch_price * u128::from(epochs)
    }
}

/// What the last epoch payout paid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochPayout {
    pub epoch: u64,
    pub height: u64,
    pub blobs: u64,
    pub expired: u64,
    #[serde(with = "amount_string")]
    pub total: Amount,
    pub nodes: BTreeMap<Address, String>,
    #[serde(default)]
    pub slashed: Vec<Address>,
    #[serde(default, with = "amount_string")]
    pub burned: Amount,
}

/// The storage registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    nodes: BTreeMap<Address, StorageNode>,
    /// Committee k (1-based) is `committees[k - 1]`.
    committees: Vec<Vec<Address>>,
    blobs: BTreeMap<B256, Blob>,
    #[serde(with = "amount_string")]
    fund: Amount,
    #[serde(default)]
    last_payout: Option<EpochPayout>,
    /// Per epoch, per reported node, the nodes that reported it failing the challenge.
    #[serde(default)]
    failures: BTreeMap<u64, BTreeMap<Address, BTreeSet<Address>>>,
    digest: crate::merkle::RunningDigest,
}

impl Storage {
    pub fn nodes(&self) -> &BTreeMap<Address, StorageNode> {
        &self.nodes
    }

    pub fn node(&self, address: &Address) -> Option<&StorageNode> {
        self.nodes.get(address)
    }

    /// The current committee's number (0 before any node registered).
    pub fn current_committee(&self) -> u64 {
        self.committees.len() as u64
    }

    /// The members of committee `number`, in position order.
    pub fn committee(&self, number: u64) -> Option<&[Address]> {
        let index = usize::try_from(number.checked_sub(1)?).ok()?;
        self.committees.get(index).map(Vec::as_slice)
    }

    pub fn blob(&self, id: &B256) -> Option<&Blob> {
        self.blobs.get(id)
    }

    pub fn blobs(&self) -> impl Iterator<Item = (&B256, &Blob)> {
        self.blobs.iter()
    }

    /// Blobs with ids after `after` (all if `None`), in id order.
    pub fn blobs_after(&self, after: Option<B256>) -> impl Iterator<Item = (&B256, &Blob)> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.blobs.range((start, Bound::Unbounded))
    }

    pub fn fund(&self) -> Amount {
        self.fund
    }

    pub fn last_payout(&self) -> Option<&EpochPayout> {
        self.last_payout.as_ref()
    }

    /// MYC held by storage: the fund and the nodes' stakes.
    pub fn myc_held(&self) -> Amount {
        self.nodes.values().fold(self.fund, |sum, n| {
            sum.checked_add(n.stake).expect("storage MYC overflows")
        })
    }

    /// The fund holds exactly what its blobs have not been paid yet.
    pub(crate) fn assert_fund(&self, epoch: u64) {
        let owed = self.blobs.values().fold(0u128, |sum, b| {
            sum.checked_add(b.unpaid(epoch)).expect("owed overflows")
        });
        assert_eq!(
            self.fund, owed,
            "storage fund {} != unpaid epochs of its blobs {owed}",
            self.fund
        );
    }

    pub(crate) fn fold_root(&self, root: B256) -> B256 {
        self.digest.fold(0x0d, root)
    }

    pub(crate) fn apply(&mut self, write: StorageWrite, tx_hash: B256) {
        match write {
            StorageWrite::Node {
                address,
                node,
                joins,
            } => {
                self.nodes.insert(address, node);
                if joins {
                    self.committees.push(self.nodes.keys().copied().collect());
                }
            }
            StorageWrite::Report {
                epoch,
                node,
                reporter,
            } => {
                self.failures
                    .entry(epoch)
                    .or_default()
                    .entry(node)
                    .or_default()
                    .insert(reporter);
            }
            StorageWrite::Blob {
                id,
                blob,
                fund_in,
                fund_out,
            } => {
                self.fund = self.fund + fund_in - fund_out;
                self.blobs.insert(id, blob);
            }
        }
        self.digest.extend(0x0e, tx_hash);
    }
}

/// Why a storage transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StorageError {
    #[error("endpoint `{endpoint}` is not an http(s) URL of at most {MAX_ENDPOINT_BYTES} bytes")]
    BadEndpoint { endpoint: String },
    #[error("stake {stake} is below the minimum {min} to run a storage node (MYC base units)")]
    StakeTooLow { stake: String, min: String },
    #[error("the storage committee is full ({MAX_NODES} nodes)")]
    CommitteeFull,
    #[error(
        "blob encoded for committee {got}; the current committee is {current}: encode again for it"
    )]
    WrongCommittee { got: u64, current: u64 },
    #[error("the current storage committee has {nodes} nodes; blobs need at least {MIN_NODES}")]
    CommitteeTooSmall { nodes: usize },
    #[error("a blob of {length} bytes is over the {MAX_BLOB_BYTES}-byte limit")]
    BlobTooLarge { length: u64 },
    #[error("{epochs} epochs: a blob is paid for 1 to {max} epochs ahead")]
    BadEpochs { epochs: u64, max: u32 },
    #[error("blob {blob_id} is already registered")]
    AlreadyRegistered { blob_id: B256 },
    #[error("no blob {blob_id} (never registered, or expired)")]
    UnknownBlob { blob_id: B256 },
    #[error("storing costs {cost}, above the signed maximum {max_cost} (MYC base units)")]
    CostAboveMax { cost: String, max_cost: String },
    #[error("blob {blob_id} is already certified")]
    AlreadyCertified { blob_id: B256 },
    #[error("blob {blob_id} is expired or deleted")]
    Expired { blob_id: B256 },
    #[error("signatures must be 65 bytes each; got {bytes} bytes")]
    MalformedSignatures { bytes: usize },
    #[error("confirmation {index} is not signed by a member of the blob's committee {committee}")]
    NotInCommittee { index: usize, committee: u64 },
    #[error(
        "confirmation {index} repeats the signer {signer} (in this transaction or counted before)"
    )]
    DuplicateConfirmation { index: usize, signer: Address },
    #[error("{sender} is not the owner of blob {blob_id}")]
    NotOwner { blob_id: B256, sender: Address },
    #[error("{address} is not a registered storage node")]
    NotANode { address: Address },
    #[error("reports are for the current storage epoch {current}, not {got}")]
    WrongEpoch { got: u64, current: u64 },
    #[error("{reporter} already reported {node} in epoch {epoch}")]
    AlreadyReported {
        reporter: Address,
        node: Address,
        epoch: u64,
    },
    #[error(
        "itemEpochs of {bytes} bytes: a batch has 1 to {MAX_BATCH_ITEMS} items, 4 bytes (epochs, \
         big-endian) each"
    )]
    BadBatch { bytes: usize },
    #[error("blob {blob_id} is not a batch")]
    NotABatch { blob_id: B256 },
    #[error("batch {blob_id} has {items} items; there is no item {item}")]
    NoItem {
        blob_id: B256,
        item: u64,
        items: usize,
    },
    #[error("item {item} of batch {blob_id} has ended (expired or deleted)")]
    ItemEnded { blob_id: B256, item: u64 },
}

impl StorageError {
    pub fn code(&self) -> &'static str {
        match self {
            StorageError::BadEndpoint { .. } => "storage_bad_endpoint",
            StorageError::StakeTooLow { .. } => "storage_stake_too_low",
            StorageError::CommitteeFull => "storage_committee_full",
            StorageError::WrongCommittee { .. } => "storage_wrong_committee",
            StorageError::CommitteeTooSmall { .. } => "storage_committee_too_small",
            StorageError::BlobTooLarge { .. } => "blob_too_large",
            StorageError::BadEpochs { .. } => "blob_bad_epochs",
            StorageError::AlreadyRegistered { .. } => "blob_already_registered",
            StorageError::UnknownBlob { .. } => "blob_unknown",
            StorageError::CostAboveMax { .. } => "blob_cost_above_max",
            StorageError::AlreadyCertified { .. } => "blob_already_certified",
            StorageError::Expired { .. } => "blob_expired",
            StorageError::MalformedSignatures { .. } => "blob_malformed_signatures",
            StorageError::NotInCommittee { .. } => "blob_confirmation_not_in_committee",
            StorageError::DuplicateConfirmation { .. } => "blob_duplicate_confirmation",
            StorageError::NotOwner { .. } => "blob_not_owner",
            StorageError::NotANode { .. } => "storage_not_a_node",
            StorageError::WrongEpoch { .. } => "storage_wrong_epoch",
            StorageError::AlreadyReported { .. } => "storage_already_reported",
            StorageError::BadBatch { .. } => "batch_malformed",
            StorageError::NotABatch { .. } => "blob_not_a_batch",
            StorageError::NoItem { .. } => "batch_no_item",
            StorageError::ItemEnded { .. } => "batch_item_ended",
        }
    }
}

pub(crate) enum StorageWrite {
    Report {
        epoch: u64,
        node: Address,
        reporter: Address,
    },
    Node {
        address: Address,
        node: StorageNode,
        /// A new member (a new committee), or a registered node's new endpoint and stake.
        joins: bool,
    },
    Blob {
        id: B256,
        blob: Blob,
        fund_in: Amount,
        fund_out: Amount,
    },
}

pub(crate) struct StoragePlan {
    pub(crate) writes: Vec<(Address, Account)>,
    pub(crate) event: StorageEvent,
    pub(crate) write: StorageWrite,
}

fn err(e: StorageError) -> TxError {
    TxError::Storage(e)
}

fn amount(value: U256) -> Result<Amount, TxError> {
    u128::try_from(value).map_err(|_| TxError::AmountTooLarge(value.to_string()))
}

/// The storage epoch of the block being applied (the state's height + 1).
pub fn epoch_of(height: u64, params: &StorageParams) -> u64 {
    height / params.epoch_blocks.max(1)
}

/// Checks a storage transaction against `state` and works out what it writes; `payer` is the
/// sender's account after its fee and nonce.
pub(crate) fn plan_tx(
    state: &State,
    sender: Address,
    payer: Account,
    kind: &TxKind,
) -> Result<StoragePlan, TxError> {
    let params = &state.params().storage;
    let height = state.height() + 1;
    let epoch = epoch_of(height, params);
    let mut accounts = bank::Touched::new(state, sender, payer);
    let c = Plan {
        chain_id: state.params().chain_id,
        storage: state.storage(),
        params,
        sender,
        epoch,
        height,
    };
    let (event, write) = match kind {
        TxKind::RegisterStorageNode(t) => register_node(&c, &mut accounts, t)?,
        TxKind::RegisterBlob(t) => register_blob(&c, &mut accounts, &Registration::blob(t))?,
        TxKind::RegisterBatch(t) => register_batch(&c, &mut accounts, t)?,
        TxKind::ExtendBatchItem(t) => extend_item(&c, &mut accounts, t)?,
        TxKind::DeleteBatchItem(t) => delete_item(&c, &mut accounts, t)?,
        TxKind::CertifyBlob(t) => certify_blob(&c, t)?,
        TxKind::ExtendBlob(t) => extend_blob(&c, &mut accounts, t)?,
        TxKind::DeleteBlob(t) => delete_blob(&c, &mut accounts, t)?,
        TxKind::ReportStorageFailure(t) => report_failure(&c, t)?,
        other => unreachable!("{} is not a storage transaction", other.type_name()),
    };
    Ok(StoragePlan {
        writes: accounts.writes(),
        event,
        write,
    })
}

/// What every storage transaction's checks read.
struct Plan<'a> {
    chain_id: u64,
    storage: &'a Storage,
    params: &'a StorageParams,
    sender: Address,
    epoch: u64,
    height: u64,
}

/// `RegisterStorageNode`: checked against the state, what it writes.
fn register_node(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    t: &mycel_types::tx::RegisterStorageNode,
) -> Result<(StorageEvent, StorageWrite), TxError> {
    let &Plan {
        storage,
        params,
        sender,
        height,
        ..
    } = c;
    let url_ok = t.endpoint.starts_with("http://") || t.endpoint.starts_with("https://");
    if !url_ok
        || t.endpoint.len() > MAX_ENDPOINT_BYTES
        || t.endpoint
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
    {
        return Err(err(StorageError::BadEndpoint {
            endpoint: t.endpoint.chars().take(80).collect(),
        }));
    }
    let stake = amount(t.stake)?;
    accounts.debit(sender, Token::Myc, stake)?;
    if let Some(existing) = storage.nodes.get(&sender) {
        // A registered node moves its endpoint and may add stake; the committee stays.
        let node = StorageNode {
            endpoint: t.endpoint.clone(),
            stake: existing.stake + stake,
            registered_height: existing.registered_height,
        };
        Ok((
            StorageEvent::NodeUpdated { node: sender },
            StorageWrite::Node {
                address: sender,
                node,
                joins: false,
            },
        ))
    } else {
        if stake < params.min_node_stake {
            return Err(err(StorageError::StakeTooLow {
                stake: stake.to_string(),
                min: params.min_node_stake.to_string(),
            }));
        }
        if storage.nodes.len() >= usize::from(MAX_NODES) {
            return Err(err(StorageError::CommitteeFull));
        }
        let node = StorageNode {
            endpoint: t.endpoint.clone(),
            stake,
            registered_height: height,
        };
        Ok((
            StorageEvent::NodeRegistered {
                node: sender,
                committee: storage.current_committee() + 1,
            },
            StorageWrite::Node {
                address: sender,
                node,
                joins: true,
            },
        ))
    }
}

/// What `RegisterBlob` and `RegisterBatch` have in common.
struct Registration {
    blob_id: B256,
    length: u64,
    committee: u64,
    /// The epochs paid for: the blob's, or a batch's longest item's.
    epochs: u64,
    max_cost: U256,
    /// A batch's items' epochs (empty for a plain blob).
    items: Vec<u64>,
}

impl Registration {
    fn blob(t: &mycel_types::tx::RegisterBlob) -> Self {
        Registration {
            blob_id: t.blobId,
            length: t.length,
            committee: t.committee,
            epochs: t.epochs,
            max_cost: t.maxCost,
            items: Vec::new(),
        }
    }
}

/// `RegisterBatch`: its items read, then checked as a blob paid for its longest item.
fn register_batch(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    t: &mycel_types::tx::RegisterBatch,
) -> Result<(StorageEvent, StorageWrite), TxError> {
    let bytes = t.itemEpochs.len();
    if bytes == 0 || !bytes.is_multiple_of(4) || bytes / 4 > MAX_BATCH_ITEMS {
        return Err(err(StorageError::BadBatch { bytes }));
    }
    let items: Vec<u64> = t
        .itemEpochs
        .chunks_exact(4)
        .map(|e| u64::from(u32::from_be_bytes([e[0], e[1], e[2], e[3]])))
        .collect();
    for &epochs in &items {
        check_epochs(epochs, c.params)?;
    }
    let registration = Registration {
        blob_id: t.blobId,
        length: t.length,
        committee: t.committee,
        epochs: items.iter().copied().max().unwrap_or(0),
        max_cost: t.maxCost,
        items,
    };
    register_blob(c, accounts, &registration)
}

/// `RegisterBlob` (and a batch): checked against the state, what it writes.
fn register_blob(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    t: &Registration,
) -> Result<(StorageEvent, StorageWrite), TxError> {
    let &Plan {
        storage,
        params,
        sender,
        epoch,
        height,
        ..
    } = c;
    let current = storage.current_committee();
    if t.committee != current {
        return Err(err(StorageError::WrongCommittee {
            got: t.committee,
            current,
        }));
    }
    let members = storage.committee(current).map_or(0, <[Address]>::len);
    if members < usize::from(MIN_NODES) {
        return Err(err(StorageError::CommitteeTooSmall { nodes: members }));
    }
    if storage.blobs.contains_key(&t.blob_id) {
        return Err(err(StorageError::AlreadyRegistered { blob_id: t.blob_id }));
    }
    check_epochs(t.epochs, params)?;
    let layout = Layout::new(members as u16, t.length)
        .map_err(|_| err(StorageError::BlobTooLarge { length: t.length }))?;
    let epoch_price = params
        .epoch_price(&layout)
        .ok_or_else(|| TxError::AmountTooLarge(t.length.to_string()))?;
    let cost = checked_cost(epoch_price, t.epochs, t.max_cost)?;
    accounts.debit(sender, Token::Myc, cost)?;
    let items = t
        .items
        .iter()
        .map(|epochs| BatchItem {
            end_epoch: epoch + epochs,
            deleted: false,
        })
        .collect();
    let blob = Blob {
        owner: sender,
        length: t.length,
        committee: current,
        nodes: members as u16,
        start_epoch: epoch,
        end_epoch: epoch + t.epochs,
        epoch_price,
        registered_height: height,
        certified_height: None,
        deleted: false,
        items,
        confirmed_by: BTreeSet::new(),
    };
    Ok((
        StorageEvent::BlobRegistered {
            blob_id: t.blob_id,
            end_epoch: blob.end_epoch,
            paid: cost,
        },
        StorageWrite::Blob {
            id: t.blob_id,
            blob,
            fund_in: cost,
            fund_out: 0,
        },
    ))
}

/// `CertifyBlob`: checked against the state, what it writes.
fn certify_blob(
    c: &Plan<'_>,
    t: &mycel_types::tx::CertifyBlob,
) -> Result<(StorageEvent, StorageWrite), TxError> {
    let &Plan {
        storage,
        epoch,
        height,
        ..
    } = c;
    let blob = live_blob(storage, &t.blobId, epoch)?;
    if blob.certified_height.is_some() {
        return Err(err(StorageError::AlreadyCertified { blob_id: t.blobId }));
    }
    let mut confirmed_by = blob.confirmed_by.clone();
    confirmed_by.extend(check_confirmations(
        storage,
        blob,
        &t.blobId,
        &t.signatures,
        c.chain_id,
    )?);
    let confirmations = confirmed_by.len() as u64;
    let needed = quorum(usize::from(blob.nodes)) as u64;
    let (event, blob) = if confirmations >= needed {
        let event = StorageEvent::BlobCertified {
            blob_id: t.blobId,
            confirmations,
        };
        let blob = Blob {
            certified_height: Some(height),
            confirmed_by: BTreeSet::new(),
            ..blob.clone()
        };
        (event, blob)
    } else {
        let event = StorageEvent::BlobConfirmed {
            blob_id: t.blobId,
            confirmations,
            needed,
        };
        let blob = Blob {
            confirmed_by,
            ..blob.clone()
        };
        (event, blob)
    };
    Ok((
        event,
        StorageWrite::Blob {
            id: t.blobId,
            blob,
            fund_in: 0,
            fund_out: 0,
        },
    ))
}

/// `ExtendBlob`: checked against the state, what it writes.
fn extend_blob(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    t: &mycel_types::tx::ExtendBlob,
) -> Result<(StorageEvent, StorageWrite), TxError> {
    let &Plan {
        storage,
        params,
        sender,
        epoch,
        ..
    } = c;
    let blob = live_blob(storage, &t.blobId, epoch)?;
    let end_epoch = blob.end_epoch.saturating_add(t.epochs);
    check_epochs(end_epoch - epoch, params)?;
    at_least_one_epoch(t.epochs, params)?;
    let cost = checked_cost(blob.epoch_price, t.epochs, t.maxCost)?;
    accounts.debit(sender, Token::Myc, cost)?;
    // A batch's live items move with it.
    let items = blob
        .items
        .iter()
        .map(|item| BatchItem {
            end_epoch: if item.live(epoch) {
                item.end_epoch + t.epochs
            } else {
                item.end_epoch
            },
            ..*item
        })
        .collect();
    let blob = Blob {
        end_epoch,
        items,
        ..blob.clone()
    };
    Ok((
        StorageEvent::BlobExtended {
            blob_id: t.blobId,
            end_epoch,
            paid: cost,
        },
        StorageWrite::Blob {
            id: t.blobId,
            blob,
            fund_in: cost,
            fund_out: 0,
        },
    ))
}

/// `DeleteBlob`: checked against the state, what it writes.
fn delete_blob(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    t: &mycel_types::tx::DeleteBlob,
) -> Result<(StorageEvent, StorageWrite), TxError> {
    let &Plan {
        storage,
        sender,
        epoch,
        ..
    } = c;
    let blob = live_blob(storage, &t.blobId, epoch)?;
    owner_only(blob, &t.blobId, sender)?;
    let ended = Blob {
        end_epoch: blob.end_epoch.min(epoch + 1),
        deleted: true,
        items: blob.items.iter().map(|i| end_item(i, epoch)).collect(),
        ..blob.clone()
    };
    let refund = blob.unpaid(epoch) - ended.unpaid(epoch);
    accounts.credit(blob.owner, Token::Myc, refund)?;
    Ok((
        StorageEvent::BlobDeleted {
            blob_id: t.blobId,
            refunded: refund,
        },
        StorageWrite::Blob {
            id: t.blobId,
            blob: ended,
            fund_in: 0,
            fund_out: refund,
        },
    ))
}

/// An item deleted in `epoch`: it ends with that epoch.
fn end_item(item: &BatchItem, epoch: u64) -> BatchItem {
    BatchItem {
        end_epoch: item.end_epoch.min(epoch + 1),
        deleted: true,
    }
}

/// A live batch and the index of one of its live items.
fn live_item<'a>(
    storage: &'a Storage,
    id: &B256,
    item: u64,
    epoch: u64,
) -> Result<(&'a Blob, usize), TxError> {
    let blob = live_blob(storage, id, epoch)?;
    if blob.items.is_empty() {
        return Err(err(StorageError::NotABatch { blob_id: *id }));
    }
    let index = usize::try_from(item)
        .ok()
        .filter(|&i| i < blob.items.len())
        .ok_or(err(StorageError::NoItem {
            blob_id: *id,
            item,
            items: blob.items.len(),
        }))?;
    if !blob.items[index].live(epoch) {
        return Err(err(StorageError::ItemEnded { blob_id: *id, item }));
    }
    Ok((blob, index))
}

/// A batch whose items changed: its end is its latest item's (at least the current epoch's).
fn with_items(blob: &Blob, items: Vec<BatchItem>, epoch: u64) -> Blob {
    let latest = items.iter().map(|i| i.end_epoch).max().unwrap_or(0);
    Blob {
        end_epoch: latest.max(epoch + 1),
        deleted: items.iter().all(|i| i.deleted),
        items,
        ..blob.clone()
    }
}

/// `ExtendBatchItem`: checked against the state, what it writes.
fn extend_item(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    t: &mycel_types::tx::ExtendBatchItem,
) -> Result<(StorageEvent, StorageWrite), TxError> {
    let &Plan {
        storage,
        params,
        sender,
        epoch,
        ..
    } = c;
    let (blob, index) = live_item(storage, &t.blobId, t.item, epoch)?;
    at_least_one_epoch(t.epochs, params)?;
    let end_epoch = blob.items[index].end_epoch.saturating_add(t.epochs);
    check_epochs(end_epoch - epoch, params)?;
    let mut items = blob.items.clone();
    items[index].end_epoch = end_epoch;
    let extended = with_items(blob, items, epoch);
    let cost = checked_cost(
        blob.epoch_price,
        extended.end_epoch - blob.end_epoch,
        t.maxCost,
    )?;
    accounts.debit(sender, Token::Myc, cost)?;
    Ok((
        StorageEvent::BatchItemChanged {
            blob_id: t.blobId,
            item: t.item,
            end_epoch,
            deleted: false,
            paid: cost,
            refunded: 0,
        },
        StorageWrite::Blob {
            id: t.blobId,
            blob: extended,
            fund_in: cost,
            fund_out: 0,
        },
    ))
}

/// `DeleteBatchItem`: checked against the state, what it writes.
fn delete_item(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    t: &mycel_types::tx::DeleteBatchItem,
) -> Result<(StorageEvent, StorageWrite), TxError> {
    let &Plan {
        storage,
        sender,
        epoch,
        ..
    } = c;
    let (blob, index) = live_item(storage, &t.blobId, t.item, epoch)?;
    owner_only(blob, &t.blobId, sender)?;
    let mut items = blob.items.clone();
    items[index] = end_item(&items[index], epoch);
    let end_epoch = items[index].end_epoch;
    let shortened = with_items(blob, items, epoch);
    let refund = blob.unpaid(epoch) - shortened.unpaid(epoch);
    accounts.credit(blob.owner, Token::Myc, refund)?;
    Ok((
        StorageEvent::BatchItemChanged {
            blob_id: t.blobId,
            item: t.item,
            end_epoch,
            deleted: true,
            paid: 0,
            refunded: refund,
        },
        StorageWrite::Blob {
            id: t.blobId,
            blob: shortened,
            fund_in: 0,
            fund_out: refund,
        },
    ))
}

/// `ReportStorageFailure`: checked against the state, what it writes.
fn report_failure(
    c: &Plan<'_>,
    t: &mycel_types::tx::ReportStorageFailure,
) -> Result<(StorageEvent, StorageWrite), TxError> {
    let &Plan {
        storage,
        sender,
        epoch,
        ..
    } = c;
    for address in [sender, t.node] {
        if !storage.nodes.contains_key(&address) || sender == t.node {
            return Err(err(StorageError::NotANode { address }));
        }
    }
    if t.epoch != epoch {
        return Err(err(StorageError::WrongEpoch {
            got: t.epoch,
            current: epoch,
        }));
    }
    let reporters = storage.failures.get(&epoch).and_then(|f| f.get(&t.node));
    if reporters.is_some_and(|r| r.contains(&sender)) {
        return Err(err(StorageError::AlreadyReported {
            reporter: sender,
            node: t.node,
            epoch,
        }));
    }
    let reports = reporters.map_or(0, BTreeSet::len) as u64 + 1;
    Ok((
        StorageEvent::FailureReported {
            node: t.node,
            epoch,
            reports,
        },
        StorageWrite::Report {
            epoch,
            node: t.node,
            reporter: sender,
        },
    ))
}

/// Refuses anyone but the blob's owner.
fn owner_only(blob: &Blob, id: &B256, sender: Address) -> Result<(), TxError> {
    if blob.owner != sender {
        return Err(err(StorageError::NotOwner {
            blob_id: *id,
            sender,
        }));
    }
    Ok(())
}

/// Refuses an extension by 0 epochs.
fn at_least_one_epoch(epochs: u64, params: &StorageParams) -> Result<(), TxError> {
    if epochs == 0 {
        return Err(err(StorageError::BadEpochs {
            epochs,
            max: params.max_epochs,
        }));
    }
    Ok(())
}

fn check_epochs(epochs: u64, params: &StorageParams) -> Result<(), TxError> {
    if epochs == 0 || epochs > u64::from(params.max_epochs) {
        return Err(err(StorageError::BadEpochs {
            epochs,
            max: params.max_epochs,
        }));
    }
    Ok(())
}

fn checked_cost(epoch_price: Amount, epochs: u64, max_cost: U256) -> Result<Amount, TxError> {
    let cost = epoch_price
        .checked_mul(u128::from(epochs))
        .ok_or_else(|| TxError::AmountTooLarge(epochs.to_string()))?;
    if U256::from(cost) > max_cost {
        return Err(err(StorageError::CostAboveMax {
            cost: cost.to_string(),
            max_cost: max_cost.to_string(),
        }));
    }
    Ok(cost)
}

fn live_blob<'a>(storage: &'a Storage, id: &B256, epoch: u64) -> Result<&'a Blob, TxError> {
    let blob = storage
        .blobs
        .get(id)
        .ok_or(err(StorageError::UnknownBlob { blob_id: *id }))?;
    if blob.deleted || blob.end_epoch <= epoch {
        return Err(err(StorageError::Expired { blob_id: *id }));
    }
    Ok(blob)
}

/// The committee members who signed, each once and not counted before; refuses anything else.
fn check_confirmations(
    storage: &Storage,
    blob: &Blob,
    id: &B256,
    signatures: &[u8],
    chain_id: u64,
) -> Result<BTreeSet<Address>, TxError> {
    if signatures.is_empty() || !signatures.len().is_multiple_of(65) {
        return Err(err(StorageError::MalformedSignatures {
            bytes: signatures.len(),
        }));
    }
    let members = storage.committee(blob.committee).unwrap_or_default();
    let confirmation = StorageConfirmation {
        blobId: *id,
        committee: blob.committee,
    };
    let mut signers = BTreeSet::new();
    for (index, signature) in signatures.chunks_exact(65).enumerate() {
        let signer = confirmation
            .recover(chain_id, signature)
            .filter(|s| members.contains(s))
            .ok_or(err(StorageError::NotInCommittee {
                index,
                committee: blob.committee,
            }))?;
        if blob.confirmed_by.contains(&signer) || !signers.insert(signer) {
            return Err(err(StorageError::DuplicateConfirmation { index, signer }));
        }
    }
    Ok(signers)
}

/// The epoch step of a block at `height`: at the first block of an epoch, pays out the epoch
/// before it, less the nodes 2f + 1 others reported failing its challenge (their pay and
/// `slash_bps` of their stake are burned). Returns the credits to make (node, MYC) and the MYC
/// burned.
pub(crate) fn epoch_step(
    storage: &mut Storage,
    height: u64,
    params: &StorageParams,
) -> (Vec<(Address, Amount)>, Amount) {
    let length = params.epoch_blocks.max(1);
    if height == 0 || !height.is_multiple_of(length) {
        return (Vec::new(), 0);
    }
    let epoch = height / length - 1;
    let mut credits: BTreeMap<Address, Amount> = BTreeMap::new();
    let mut payout = EpochPayout {
        epoch,
        height,
        ..EpochPayout::default()
    };
    let mut expired = Vec::new();
    for (id, blob) in &storage.blobs {
        if blob.start_epoch <= epoch && epoch < blob.end_epoch {
            let members = storage
                .committee(blob.committee)
                .expect("a blob's committee exists");
            let n = members.len() as u128;
            let (share, rest) = (blob.epoch_price / n, blob.epoch_price % n);
            for (k, member) in members.iter().enumerate() {
                let paid = share + u128::from((k as u128) < rest);
                *credits.entry(*member).or_default() += paid;
            }
            payout.total += blob.epoch_price;
            payout.blobs += 1;
        }
        if blob.end_epoch <= epoch + 1 {
            expired.push(*id);
        }
    }
    for id in &expired {
        storage.blobs.remove(id);
    }
    storage.fund -= payout.total;
    let reports = storage.failures.remove(&(epoch)).unwrap_or_default();
    let needed = quorum(storage.nodes.len());
    for (node, reporters) in reports {
        if reporters.len() < needed {
            continue;
        }
        payout.burned += credits.remove(&node).unwrap_or(0);
        if let Some(n) = storage.nodes.get_mut(&node) {
            let cut = n.stake * u128::from(params.slash_bps.min(10_000)) / 10_000;
            n.stake -= cut;
            payout.burned += cut;
        }
        payout.slashed.push(node);
    }
    // Reports of epochs already paid can no longer count.
    storage.failures.retain(|e, _| *e > epoch);
    payout.expired = expired.len() as u64;
    payout.nodes = credits.iter().map(|(a, v)| (*a, v.to_string())).collect();
    let mut digest_input = [0u8; 32];
    digest_input[..8].copy_from_slice(&epoch.to_be_bytes());
    digest_input[16..].copy_from_slice(&payout.total.to_be_bytes());
    storage.digest.extend(0x0f, B256::from(digest_input));
    let burned = payout.burned;
    storage.last_payout = Some(payout);
    (credits.into_iter().collect(), burned)
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;
