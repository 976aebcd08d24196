//! Blob storage's shared vocabulary: the chain's storage parameters, the shape of a blob's
//! encoding (which the chain prices and every node and reader follows), and the confirmation a
//! storage node signs when it holds its slivers of a blob.
//!
//! The shape (Walrus's RedStuff): n storage nodes, f = ⌊(n − 1)/3⌋; each segment of the blob is a
//! matrix of n − 2f rows × n − f columns of symbols (at most [`MAX_SYMBOL_BYTES`], even), extended
//! to n × n. A node stores one row of n − f symbols (its primary sliver) and one column of
//! n − 2f (its secondary sliver) per segment, plus 32-byte leaf hashes of both extended slivers
//! (n per segment each) and the blob's metadata (n × 64 bytes of roots plus 10).

use crate::genesis::amount_string;
use crate::Amount;
use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::{sol, Eip712Domain, SolStruct};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The fewest storage nodes a blob can be spread over (n = 3f + 1 with f ≥ 1).
pub const MIN_NODES: u16 = 4;
/// The most storage nodes a blob can be spread over.
pub const MAX_NODES: u16 = 256;
/// The largest symbol. Larger blobs are cut into segments, each encoded on its own.
pub const MAX_SYMBOL_BYTES: usize = 64 * 1024;
/// The largest blob.
pub const MAX_BLOB_BYTES: u64 = 64 << 30;
/// The most items in one batch blob (each costs 4 bytes of its `RegisterBatch`).
pub const MAX_BATCH_ITEMS: usize = 256;

/// The chain's storage parameters, fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageParams {
    /// Blocks per storage epoch: the unit blobs are paid for and nodes are paid in.
    pub epoch_blocks: u64,
    /// MYC base units per MiB of encoded (stored) bytes per epoch, rounded up per blob.
    #[serde(with = "amount_string")]
    pub price_per_mib_epoch: Amount,
    /// The least MYC a storage node locks to join the committee.
    #[serde(with = "amount_string")]
    pub min_node_stake: Amount,
    /// The most epochs a blob may be paid ahead.
    pub max_epochs: u32,
    /// The part of its stake a node that failed an epoch's challenge loses (basis points).
    #[serde(default = "default_slash_bps")]
    pub slash_bps: u16,
}

fn default_slash_bps() -> u16 {
    1000
}

impl Default for StorageParams {
    fn default() -> Self {
        StorageParams {
            epoch_blocks: 600,
            price_per_mib_epoch: 1_000_000,
            min_node_stake: 100_000_000_000,
            max_epochs: 104,
            slash_bps: default_slash_bps(),
        }
    }
}

impl StorageParams {
    /// The price of storing a blob of `length` bytes on `nodes` nodes for one epoch: its encoded
    /// bytes ([`Layout::stored_bytes`]) in MiB, rounded up, times the price.
    pub fn epoch_price(&self, layout: &Layout) -> Option<Amount> {
        let mib = layout.stored_bytes().div_ceil(1 << 20);
        self.price_per_mib_epoch.checked_mul(u128::from(mib))
    }
}

/// Why a blob's shape is impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("a blob is spread over {MIN_NODES} to {MAX_NODES} storage nodes, not {0}")]
    Nodes(u16),
    #[error("a blob of {0} bytes is over the {MAX_BLOB_BYTES}-byte limit")]
    TooLarge(u64),
}

/// The shape of one blob's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub nodes: u16,
    pub length: u64,
    pub symbol_bytes: usize,
    pub segments: u64,
}

impl Layout {
    pub fn new(nodes: u16, length: u64) -> Result<Layout, LayoutError> {
        if !(MIN_NODES..=MAX_NODES).contains(&nodes) {
            return Err(LayoutError::Nodes(nodes));
        }
        if length > MAX_BLOB_BYTES {
            return Err(LayoutError::TooLarge(length));
        }
        let f = (nodes - 1) / 3;
        let cells = u64::from(nodes - 2 * f) * u64::from(nodes - f);
        let per_cell = length.div_ceil(cells).max(2);
        let symbol_bytes = (per_cell.div_ceil(2) * 2).min(MAX_SYMBOL_BYTES as u64) as usize;
        let segments = length.div_ceil(cells * symbol_bytes as u64).max(1);
        Ok(Layout {
            nodes,
            length,
            symbol_bytes,
            segments,
        })
    }

    pub fn n(&self) -> usize {
        usize::from(self.nodes)
    }

    /// f: the nodes that may fail or lie.
    pub fn faulty(&self) -> usize {
        (self.n() - 1) / 3
    }

    /// Source symbols of a column: the primary slivers any reader needs (n − 2f).
    pub fn primary_source(&self) -> usize {
        self.n() - 2 * self.faulty()
    }

    /// Source symbols of a row: the secondary slivers a primary sliver is rebuilt from (n − f).
    pub fn secondary_source(&self) -> usize {
        self.n() - self.faulty()
    }

    /// Confirmations that make an availability certificate (2f + 1).
    pub fn quorum(&self) -> usize {
        quorum(self.n())
    }

    /// Blob bytes in one segment.
    pub fn segment_bytes(&self) -> usize {
        self.primary_source() * self.secondary_source() * self.symbol_bytes
    }

    /// The blob bytes of segment `s` (the last one may be short; an empty blob has one of 0).
    pub fn segment_range(&self, s: u64) -> std::ops::Range<u64> {
        let start = (s * self.segment_bytes() as u64).min(self.length);
        let end = ((s + 1) * self.segment_bytes() as u64).min(self.length);
        start..end
    }

    /// Bytes of one segment of a primary sliver (n − f symbols).
    pub fn primary_segment_bytes(&self) -> usize {
        self.secondary_source() * self.symbol_bytes
    }

    /// Bytes of one segment of a secondary sliver (n − 2f symbols).
    pub fn secondary_segment_bytes(&self) -> usize {
        self.primary_source() * self.symbol_bytes
    }

    pub fn primary_sliver_bytes(&self) -> u64 {
        self.segments * self.primary_segment_bytes() as u64
    }

    pub fn secondary_sliver_bytes(&self) -> u64 {
        self.segments * self.secondary_segment_bytes() as u64
    }

    /// Leaves of each sliver's tree: n symbol hashes per segment (the sliver extended to n).
    pub fn leaves_per_sliver(&self) -> u64 {
        self.segments * self.nodes as u64
    }

    /// Bytes of a blob's metadata: node count, length, two roots per node.
    pub fn metadata_bytes(&self) -> u64 {
        metadata_bytes(self.nodes)
    }

    /// Bytes all nodes store for this blob: both slivers, their leaves, and every node's copy of
    /// the metadata.
    pub fn stored_bytes(&self) -> u64 {
        let n = self.nodes as u64;
        let slivers = n * (self.primary_sliver_bytes() + self.secondary_sliver_bytes());
        let leaves = n * 2 * self.leaves_per_sliver() * 32;
        slivers + leaves + n * self.metadata_bytes()
    }
}

/// Bytes of a blob's metadata on `nodes` nodes: node count (2), length (8), two 32-byte roots per
/// node.
pub fn metadata_bytes(nodes: u16) -> u64 {
    2 + 8 + u64::from(nodes) * 64
}

/// Confirmations that certify a blob on a committee of `n` nodes: 2f + 1, f = ⌊(n − 1)/3⌋.
pub fn quorum(n: usize) -> usize {
    2 * (n.saturating_sub(1) / 3) + 1
}

/// The sliver pair the node at committee position `position` holds: rotated by the blob id so
/// that the systematic slivers (the ones reads prefer) land on different nodes for different blobs.
pub fn sliver_of(position: usize, nodes: u16, blob_id: &B256) -> usize {
    (position + rotation(nodes, blob_id)) % usize::from(nodes)
}

/// The committee position holding sliver pair `sliver` (inverse of [`sliver_of`]).
pub fn position_of(sliver: usize, nodes: u16, blob_id: &B256) -> usize {
    let n = usize::from(nodes);
    (sliver + n - rotation(nodes, blob_id)) % n
}

fn rotation(nodes: u16, blob_id: &B256) -> usize {
    let mut head = [0u8; 8];
    head.copy_from_slice(&blob_id[..8]);
    (u64::from_be_bytes(head) % u64::from(nodes)) as usize
}

/// The EIP-712 domain name of storage confirmations.
pub const CONFIRMATION_DOMAIN_NAME: &str = "mycel-storage";

sol! {
    /// A storage node's statement that it holds both of its slivers of `blobId`, checked against
    /// the blob's metadata, as a member of committee `committee`. 2f + 1 of them certify the blob.
    #[derive(Debug, PartialEq, Eq)]
    struct StorageConfirmation {
        bytes32 blobId;
        uint64 committee;
    }
}

/// The EIP-712 domain of storage confirmations on chain `chain_id`.
pub fn confirmation_domain(chain_id: u64) -> Eip712Domain {
    Eip712Domain {
        name: Some(Cow::Borrowed(CONFIRMATION_DOMAIN_NAME)),
        version: Some(Cow::Borrowed("1")),
        chain_id: Some(U256::from(chain_id)),
        verifying_contract: None,
        salt: None,
    }
}

impl StorageConfirmation {
    pub fn signing_hash_on(&self, chain_id: u64) -> B256 {
        self.eip712_signing_hash(&confirmation_domain(chain_id))
    }

    /// The signer of a 65-byte signature `r ‖ s ‖ v` over this confirmation, if it is one.
    pub fn recover(&self, chain_id: u64, signature: &[u8]) -> Option<Address> {
        let signature = alloy_primitives::Signature::try_from(signature).ok()?;
        signature
            .recover_address_from_prehash(&self.signing_hash_on(chain_id))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_cover_the_blob_with_even_symbols() {
        for nodes in [4u16, 5, 7, 10, 13, 100] {
            for length in [0u64, 1, 2, 3, 100, 65_535, 1 << 20, 256 << 20] {
                let l = Layout::new(nodes, length).unwrap();
                assert_eq!(l.symbol_bytes % 2, 0);
                assert!(l.symbol_bytes <= MAX_SYMBOL_BYTES && l.symbol_bytes >= 2);
                assert!(l.segments * l.segment_bytes() as u64 >= length);
                assert!((l.segments - 1) * (l.segment_bytes() as u64) < length.max(1));
                assert_eq!(l.segment_range(l.segments - 1).end, length);
            }
        }
        assert_eq!(Layout::new(3, 10), Err(LayoutError::Nodes(3)));
        assert!(Layout::new(4, MAX_BLOB_BYTES + 1).is_err());
    }

    #[test]
    fn large_blobs_cost_under_four_and_a_half_times_their_size() {
        for nodes in [4u16, 7, 10] {
            let layout = Layout::new(nodes, 64 << 20).unwrap();
            let overhead = layout.stored_bytes() as f64 / (64u64 << 20) as f64;
            assert!(overhead <= 4.5, "n = {nodes}: {overhead}");
        }
    }

    #[test]
    fn rotation_is_a_permutation() {
        let id = B256::repeat_byte(0xab);
        for nodes in [4u16, 7, 10] {
            let mut seen: Vec<usize> = (0..nodes as usize)
                .map(|p| sliver_of(p, nodes, &id))
                .collect();
            for p in 0..nodes as usize {
                assert_eq!(position_of(sliver_of(p, nodes, &id), nodes, &id), p);
            }
            seen.sort();
            assert_eq!(seen, (0..nodes as usize).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_confirmation_recovers_its_signer_and_only_on_its_chain() {
        use alloy_signer::SignerSync;
        let signer =
            alloy_signer_local::PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).unwrap();
        let c = StorageConfirmation {
            blobId: B256::repeat_byte(1),
            committee: 3,
        };
        let sig = signer
            .sign_hash_sync(&c.signing_hash_on(1337))
            .unwrap()
            .as_bytes();
        assert_eq!(c.recover(1337, &sig), Some(signer.address()));
        assert_ne!(c.recover(1, &sig), Some(signer.address()));
        let other = StorageConfirmation { committee: 4, ..c };
        assert_ne!(other.recover(1337, &sig), Some(signer.address()));
        assert_eq!(c.recover(1337, &sig[..64]), None);
    }
}
