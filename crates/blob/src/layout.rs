//! A blob's metadata (the roots its id commits to) and the names of slivers. The shape of the
//! encoding, [`Layout`], lives in `mycel-types` because the chain prices blobs by it.

use crate::{merkle, BlobError};
use alloy_primitives::B256;
use mycel_types::storage::Layout;
use serde::{Deserialize, Serialize};

/// What every node and reader keeps about a blob: its length, its node count, and the root of each
/// sliver's tree. The blob id commits to all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub nodes: u16,
    pub length: u64,
    pub primary_roots: Vec<B256>,
    pub secondary_roots: Vec<B256>,
}

impl Metadata {
    /// The blob id: blake3("mycel/blob/v1" ‖ nodes:u16 ‖ length:u64 ‖ (primary root ‖ secondary
    /// root) for each sliver), integers big-endian.
    pub fn blob_id(&self) -> B256 {
        let mut h = blake3::Hasher::new();
        h.update(b"mycel/blob/v1");
        h.update(&self.nodes.to_be_bytes());
        h.update(&self.length.to_be_bytes());
        for (p, s) in self.primary_roots.iter().zip(&self.secondary_roots) {
            h.update(p.as_slice());
            h.update(s.as_slice());
        }
        B256::from(*h.finalize().as_bytes())
    }

    /// The layout, after checking that the metadata is whole.
    pub fn layout(&self) -> Result<Layout, BlobError> {
        let layout = Layout::new(self.nodes, self.length)?;
        if self.primary_roots.len() != layout.n() || self.secondary_roots.len() != layout.n() {
            return Err(BlobError::Metadata(format!(
                "{} primary and {} secondary roots for {} nodes",
                self.primary_roots.len(),
                self.secondary_roots.len(),
                self.nodes
            )));
        }
        Ok(layout)
    }

    /// Bytes of the binary form: nodes, length, then the roots.
    pub fn encoded_len(nodes: u16) -> u64 {
        mycel_types::storage::metadata_bytes(nodes)
    }

    /// The binary form (what a storage node stores and serves).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encoded_len(self.nodes) as usize);
        out.extend_from_slice(&self.nodes.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
        for (p, s) in self.primary_roots.iter().zip(&self.secondary_roots) {
            out.extend_from_slice(p.as_slice());
            out.extend_from_slice(s.as_slice());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Metadata, BlobError> {
        let bad = |why: &str| BlobError::Metadata(why.to_string());
        if bytes.len() < 10 {
            return Err(bad("shorter than its header"));
        }
        let nodes = u16::from_be_bytes([bytes[0], bytes[1]]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[2..10]);
        if bytes.len() as u64 != Self::encoded_len(nodes) {
            return Err(bad("length does not match its node count"));
        }
        let (mut primary_roots, mut secondary_roots) = (Vec::new(), Vec::new());
        for pair in bytes[10..].chunks_exact(64) {
            primary_roots.push(B256::from_slice(&pair[..32]));
            secondary_roots.push(B256::from_slice(&pair[32..]));
        }
        let metadata = Metadata {
            nodes,
            length: u64::from_be_bytes(len),
            primary_roots,
            secondary_roots,
        };
        metadata.layout()?;
        Ok(metadata)
    }

    /// Checks a sliver's leaves (as a node serves them) against this metadata.
    pub fn leaves_match(&self, sliver: Sliver, leaves: &[B256]) -> bool {
        let roots = match sliver.axis {
            Axis::Primary => &self.primary_roots,
            Axis::Secondary => &self.secondary_roots,
        };
        roots
            .get(sliver.index)
            .is_some_and(|r| merkle::root(leaves) == *r)
    }
}

/// Which of a node's two slivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// A row: n − f symbols per segment; any n − 2f of them rebuild the blob.
    Primary,
    /// A column: n − 2f symbols per segment; used to rebuild lost primary slivers.
    Secondary,
}

impl Axis {
    pub fn as_str(&self) -> &'static str {
        match self {
            Axis::Primary => "primary",
            Axis::Secondary => "secondary",
        }
    }
}

impl std::str::FromStr for Axis {
    type Err = BlobError;
    fn from_str(s: &str) -> Result<Axis, BlobError> {
        match s {
            "primary" => Ok(Axis::Primary),
            "secondary" => Ok(Axis::Secondary),
            other => Err(BlobError::Metadata(format!(
                "`{other}` is not a sliver axis (primary or secondary)"
            ))),
        }
    }
}

/// One sliver of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sliver {
    pub axis: Axis,
    pub index: usize,
}
