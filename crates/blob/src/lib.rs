//! mycel-blob: erasure-coded blobs, the encoding side of mycel's blob storage.
//!
//! A blob of `length` bytes is spread over n = 3f + 1 storage nodes (Walrus's RedStuff, two
//! dimensions of Reed-Solomon over GF(2^16) with `reed-solomon-simd`). Guarantees:
//! - **Reading** needs the primary slivers of any n − 2f nodes (f + 1 when n = 3f + 1); the
//!   systematic ones (0..n − 2f) hold the blob's bytes as they are.
//! - **Recovering** a node's lost pair needs one symbol per segment from each of n − 2f nodes (its
//!   secondary sliver) and from n − f nodes (its primary sliver): about the size of what was lost,
//!   not the whole blob.
//! - **Commitments**: each sliver has a BLAKE3 Merkle tree over the hashes of its n extended
//!   symbols per segment; the blob id commits to every root, n and the length. A symbol from any
//!   node is checked by its proof, a sliver by its root.
//! - **Consistency**: [`BlobDecoder`] re-encodes what it decoded and compares every root, so a
//!   writer's inconsistent encoding is reported ([`BlobError::Inconsistent`]) and never returned
//!   as the blob; a node's corrupted sliver is named ([`BlobError::WrongSliver`]).
//! - **Streaming**: everything works one segment (at most n² × 64 KiB extended) at a time; only the
//!   leaf hashes (32 bytes × n per segment per sliver) grow with the blob.
//!
//! Around the encoding: [`node`] is the storage node (`mycel storage`) and [`store`] its disk;
//! [`client`] talks to storage nodes, and [`publish`] writes a blob (encode, pay, upload, certify)
//! and reads one back; [`batch`] puts many small items in one blob. The rules of payment and certification are the chain's
//! (`mycel_state::storage`).

pub mod batch;
pub mod challenge;
pub mod client;
mod codec;
mod layout;
pub mod merkle;
pub mod node;
pub mod publish;
pub mod publisher;
pub mod recover;
pub mod store;

pub use codec::{Codec, ExtendedSegment};
pub use layout::{Axis, Metadata, Sliver};
pub use mycel_types::storage::{
    position_of, quorum, sliver_of, Layout, LayoutError, MAX_BLOB_BYTES, MAX_NODES,
    MAX_SYMBOL_BYTES, MIN_NODES,
};

use alloy_primitives::B256;

/// Why encoding, checking or decoding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("{0}")]
    Layout(#[from] LayoutError),
    #[error("blob metadata is malformed: {0}")]
    Metadata(String),
    #[error("erasure coding failed: {0}")]
    Coding(String),
    #[error("{have} distinct symbols or slivers, {need} are needed")]
    NotEnough { have: usize, need: usize },
    #[error("{0:?} sliver {1} does not match its commitment")]
    WrongSliver(Axis, usize),
    #[error("the blob's encoding is inconsistent: its data re-encodes to different {0:?} slivers than the writer committed to (reported, not returned)")]
    Inconsistent(Vec<Sliver>),
    #[error("the blob's bytes came to {got}, its metadata says {expected}")]
    Length { expected: u64, got: u64 },
}

/// Encodes a blob segment by segment and gathers every sliver's leaves; [`finish`](Self::finish)
/// gives the metadata (and so the blob id).
pub struct BlobEncoder {
    codec: Codec,
    segment: ExtendedSegment,
    primary_leaves: Vec<Vec<B256>>,
    secondary_leaves: Vec<Vec<B256>>,
    pushed: u64,
}

/// A finished encoding: the metadata and each sliver's leaf hashes.
pub struct Encoded {
    pub metadata: Metadata,
    pub primary_leaves: Vec<Vec<B256>>,
    pub secondary_leaves: Vec<Vec<B256>>,
}

impl BlobEncoder {
    pub fn new(layout: Layout) -> Result<BlobEncoder, BlobError> {
        let leaves = || vec![Vec::with_capacity(layout.leaves_per_sliver() as usize); layout.n()];
        Ok(BlobEncoder {
            codec: Codec::new(layout)?,
            segment: ExtendedSegment::default(),
            primary_leaves: leaves(),
            secondary_leaves: leaves(),
            pushed: 0,
        })
    }

    pub fn layout(&self) -> &Layout {
        self.codec.layout()
    }

    /// Encodes the next segment: exactly the bytes of [`Layout::segment_range`].
    pub fn push(&mut self, data: &[u8]) -> Result<&ExtendedSegment, BlobError> {
        self.stage(data)?;
        self.commit();
        Ok(&self.segment)
    }

    /// Encodes the next segment without counting it yet: [`commit`](Self::commit) counts it, or
    /// the next `stage` replaces it.
    fn stage(&mut self, data: &[u8]) -> Result<&ExtendedSegment, BlobError> {
        let layout = *self.codec.layout();
        if self.pushed >= layout.segments {
            return Err(BlobError::Coding(
                "more segments than the layout has".into(),
            ));
        }
        let range = layout.segment_range(self.pushed);
        if data.len() as u64 != range.end - range.start {
            return Err(BlobError::Length {
                expected: layout.length,
                got: range.start + data.len() as u64,
            });
        }
        self.codec.encode_segment(data, &mut self.segment)?;
        Ok(&self.segment)
    }

    fn commit(&mut self) {
        let layout = *self.codec.layout();
        for i in 0..layout.n() {
            self.primary_leaves[i].extend(self.segment.primary_leaves(i));
            self.secondary_leaves[i].extend(self.segment.secondary_leaves(i));
        }
        self.pushed += 1;
    }

    pub fn finish(self) -> Result<Encoded, BlobError> {
        let layout = *self.codec.layout();
        if self.pushed != layout.segments {
            return Err(BlobError::Length {
                expected: layout.length,
                got: layout.segment_range(self.pushed).start,
            });
        }
        let roots = |leaves: &[Vec<B256>]| leaves.iter().map(|l| merkle::root(l)).collect();
        Ok(Encoded {
            metadata: Metadata {
                nodes: layout.nodes,
                length: layout.length,
                primary_roots: roots(&self.primary_leaves),
                secondary_roots: roots(&self.secondary_leaves),
            },
            primary_leaves: self.primary_leaves,
            secondary_leaves: self.secondary_leaves,
        })
    }
}

/// Encodes a whole blob held in memory (tests, small blobs); big blobs go through
/// [`BlobEncoder`] one segment at a time.
pub fn encode(nodes: u16, data: &[u8]) -> Result<(Encoded, Vec<ExtendedSegment>), BlobError> {
    let layout = Layout::new(nodes, data.len() as u64)?;
    let mut encoder = BlobEncoder::new(layout)?;
    let mut segments = Vec::with_capacity(layout.segments as usize);
    for s in 0..layout.segments {
        let r = layout.segment_range(s);
        segments.push(
            encoder
                .push(&data[r.start as usize..r.end as usize])?
                .clone(),
        );
    }
    Ok((encoder.finish()?, segments))
}

/// Checks one sliver as it streams in, segment part by segment part, and gives its leaves once
/// it matches the metadata's root.
pub struct SliverCheck {
    codec: Codec,
    sliver: Sliver,
    leaves: Vec<B256>,
    parts: u64,
}

impl SliverCheck {
    pub fn new(metadata: &Metadata, sliver: Sliver) -> Result<SliverCheck, BlobError> {
        let layout = metadata.layout()?;
        if sliver.index >= layout.n() {
            return Err(BlobError::Metadata(format!(
                "no sliver {} of {}",
                sliver.index,
                layout.n()
            )));
        }
        Ok(SliverCheck {
            codec: Codec::new(layout)?,
            sliver,
            leaves: Vec::with_capacity(layout.leaves_per_sliver() as usize),
            parts: 0,
        })
    }

    /// Bytes of each segment's part of this sliver.
    pub fn part_bytes(&self) -> usize {
        match self.sliver.axis {
            Axis::Primary => self.codec.layout().primary_segment_bytes(),
            Axis::Secondary => self.codec.layout().secondary_segment_bytes(),
        }
    }

    pub fn push(&mut self, part: &[u8]) -> Result<(), BlobError> {
        if self.parts >= self.codec.layout().segments {
            return Err(BlobError::WrongSliver(self.sliver.axis, self.sliver.index));
        }
        let extended = match self.sliver.axis {
            Axis::Primary => self.codec.extend_primary(part)?,
            Axis::Secondary => self.codec.extend_secondary(part)?,
        };
        let s = self.codec.layout().symbol_bytes;
        self.leaves
            .extend(extended.chunks_exact(s).map(merkle::leaf));
        self.parts += 1;
        Ok(())
    }

    /// The sliver's leaves, if every part arrived and they make the committed root.
    pub fn finish(self, metadata: &Metadata) -> Result<Vec<B256>, BlobError> {
        let wrong = BlobError::WrongSliver(self.sliver.axis, self.sliver.index);
        if self.parts != self.codec.layout().segments
            || !metadata.leaves_match(self.sliver, &self.leaves)
        {
            return Err(wrong);
        }
        Ok(self.leaves)
    }
}

/// Decodes a blob segment by segment from n − 2f primary slivers whose leaves were fetched and
/// checked first ([`trust_leaves`](Self::trust_leaves)). Each segment is re-encoded: a sliver part
/// that does not match its leaves is named at once ([`BlobError::WrongSliver`]: that node lied,
/// read from another); authentic parts that re-encode differently mean the writer's encoding is
/// inconsistent ([`BlobError::Inconsistent`]), which [`finish`](Self::finish) reports.
pub struct BlobDecoder {
    metadata: Metadata,
    encoder: BlobEncoder,
    checker: Codec,
    known_leaves: Vec<Option<Vec<B256>>>,
    inconsistent: bool,
}

impl BlobDecoder {
    pub fn new(metadata: Metadata) -> Result<BlobDecoder, BlobError> {
        let layout = metadata.layout()?;
        Ok(BlobDecoder {
            encoder: BlobEncoder::new(layout)?,
            checker: Codec::new(layout)?,
            known_leaves: vec![None; layout.n()],
            inconsistent: false,
            metadata,
        })
    }

    pub fn layout(&self) -> &Layout {
        self.encoder.layout()
    }

    /// Leaves of primary sliver `i` as its node serves them, checked against the metadata.
    pub fn trust_leaves(&mut self, i: usize, leaves: Vec<B256>) -> Result<(), BlobError> {
        let sliver = Sliver {
            axis: Axis::Primary,
            index: i,
        };
        if !self.metadata.leaves_match(sliver, &leaves) {
            return Err(BlobError::WrongSliver(Axis::Primary, i));
        }
        self.known_leaves[i] = Some(leaves);
        Ok(())
    }

    /// Decodes the next segment from exactly n − 2f primary slivers' parts; returns its blob bytes.
    /// On an error nothing was consumed: the same segment can be pushed again from other slivers.
    pub fn push(&mut self, rows: &[(usize, &[u8])]) -> Result<Vec<u8>, BlobError> {
        let layout = *self.encoder.layout();
        let need = layout.primary_source();
        let mut indices: Vec<usize> = rows.iter().map(|(i, _)| *i).collect();
        indices.sort_unstable();
        indices.dedup();
        if indices.len() != rows.len() || rows.len() != need {
            return Err(BlobError::NotEnough {
                have: indices.len(),
                need,
            });
        }
        if let Some(i) = indices
            .iter()
            .find(|i| self.known_leaves.get(**i).is_none_or(Option::is_none))
        {
            return Err(BlobError::Metadata(format!(
                "primary sliver {i}'s leaves were not fetched and checked before its parts"
            )));
        }
        let segment = self.encoder.pushed;
        let mut data = self.encoder.codec.decode_segment(rows)?;
        let range = layout.segment_range(segment);
        data.truncate((range.end - range.start) as usize);
        let extended = self.encoder.stage(&data)?;
        let n = layout.n();
        let from = segment as usize * n;
        let known =
            |i: usize| &self.known_leaves[i].as_ref().expect("checked above")[from..from + n];
        if rows
            .iter()
            .all(|(i, _)| extended.primary_leaves(*i).eq(known(*i).iter().copied()))
        {
            self.encoder.commit();
            return Ok(data);
        }
        // Something differs: a part that is not what its node committed to, or an encoding
        // whose parts are authentic but do not agree.
        for (i, part) in rows {
            let row = self.checker.extend_primary(part)?;
            let received = row.chunks_exact(layout.symbol_bytes).map(merkle::leaf);
            if !received.eq(known(*i).iter().copied()) {
                return Err(BlobError::WrongSliver(Axis::Primary, *i));
            }
        }
        self.inconsistent = true;
        self.encoder.commit();
        Ok(data)
    }

    /// Ok if the decoded bytes re-encode to exactly the committed blob.
    pub fn finish(self) -> Result<(), BlobError> {
        let metadata = self.metadata;
        let encoded = self.encoder.finish()?;
        if encoded.metadata == metadata && !self.inconsistent {
            return Ok(());
        }
        let mut mismatched = Vec::new();
        for (axis, ours, theirs) in [
            (
                Axis::Primary,
                &encoded.metadata.primary_roots,
                &metadata.primary_roots,
            ),
            (
                Axis::Secondary,
                &encoded.metadata.secondary_roots,
                &metadata.secondary_roots,
            ),
        ] {
            for (index, (a, b)) in ours.iter().zip(theirs).enumerate() {
                if a != b {
                    mismatched.push(Sliver { axis, index });
                }
            }
        }
        Err(BlobError::Inconsistent(mismatched))
    }
}

/// The symbol F[row][column] a helper gives towards rebuilding another node's sliver (proven by
/// leaf `segment · n + target` of the helper's own tree): a primary sliver's holder (`helper` =
/// primary, its row) helps rebuild secondary sliver `target`; a secondary sliver's holder helps
/// rebuild primary sliver `target`.
pub fn recovery_symbol(
    codec: &mut Codec,
    helper: Axis,
    part: &[u8],
    target: usize,
) -> Result<Vec<u8>, BlobError> {
    let s = codec.layout().symbol_bytes;
    let line = match helper {
        Axis::Primary => codec.extend_primary(part)?,
        Axis::Secondary => codec.extend_secondary(part)?,
    };
    line.get(target * s..(target + 1) * s)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            BlobError::Coding(format!(
                "no symbol {target} in a line of {}",
                line.len() / s
            ))
        })
}

#[cfg(test)]
mod tests;
