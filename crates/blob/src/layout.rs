//! How a blob is cut into symbols and which node holds which sliver.

use crate::{merkle, BlobError};
use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

/// The fewest storage nodes a blob can be spread over (n = 3f + 1 with f ≥ 1).
pub const MIN_NODES: u16 = 4;
/// The most storage nodes a blob can be spread over.
pub const MAX_NODES: u16 = 256;
/// The largest symbol. Larger blobs are cut into segments, each encoded on its own, so that
/// encoding, decoding and every check work one segment at a time.
pub const MAX_SYMBOL_BYTES: usize = 64 * 1024;
/// The largest blob.
pub const MAX_BLOB_BYTES: u64 = 64 << 30;

/// The shape of one blob's encoding: n nodes, f = ⌊(n − 1) / 3⌋ of which may be faulty; each
/// segment is a matrix of `primary_source()` = n − 2f rows × `secondary_source()` = n − f columns
/// of `symbol_bytes` bytes, extended to n × n.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub nodes: u16,
    pub length: u64,
    pub symbol_bytes: usize,
    pub segments: u64,
}

impl Layout {
    pub fn new(nodes: u16, length: u64) -> Result<Layout, BlobError> {
        if !(MIN_NODES..=MAX_NODES).contains(&nodes) {
            return Err(BlobError::Nodes(nodes));
        }
        if length > MAX_BLOB_BYTES {
            return Err(BlobError::TooLarge { length });
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
        2 * self.faulty() + 1
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

    /// Bytes all nodes store for this blob: both slivers, their leaves, and every node's copy of
    /// the metadata.
    pub fn stored_bytes(&self) -> u64 {
        let n = self.nodes as u64;
        let slivers = n * (self.primary_sliver_bytes() + self.secondary_sliver_bytes());
        let leaves = n * 2 * self.leaves_per_sliver() * 32;
        slivers + leaves + n * Metadata::encoded_len(self.nodes)
    }
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
        2 + 8 + u64::from(nodes) * 64
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
        assert!(matches!(Layout::new(3, 10), Err(BlobError::Nodes(3))));
        assert!(Layout::new(4, MAX_BLOB_BYTES + 1).is_err());
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
}
