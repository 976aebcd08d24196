//! One segment at a time: extend the source matrix to n × n symbols, extend a single sliver to
//! its n symbols (to check it against its tree), decode the blob from primary slivers, and rebuild
//! a lost sliver from one symbol of each of the others.
//!
//! Segment layout: the segment's bytes fill the source matrix row by row, (n − 2f) rows × (n − f)
//! columns, zero-padded. Columns are extended to n rows (the primary code, n − 2f sources); every
//! row of the result is then extended to n columns (the secondary code, n − f sources). Both codes
//! are systematic and linear, so the n × n matrix F is the same whichever way it is built: row i
//! of F is primary sliver i extended, column j of F is secondary sliver j extended. A node stores
//! F[i][0..n−f] (its primary sliver) and F[0..n−2f][j] (its secondary sliver).

use crate::{merkle, BlobError, Layout};
use alloy_primitives::B256;
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

/// A segment extended to n × n symbols (row-major) with each symbol's leaf hash.
#[derive(Debug, Clone, Default)]
pub struct ExtendedSegment {
    n: usize,
    sources: (usize, usize),
    symbol: usize,
    symbols: Vec<u8>,
    leaves: Vec<B256>,
}

impl ExtendedSegment {
    pub fn symbol(&self, row: usize, column: usize) -> &[u8] {
        let at = (row * self.n + column) * self.symbol;
        &self.symbols[at..at + self.symbol]
    }

    /// Primary sliver `i`'s part of this segment: F[i][0..n−f], contiguous.
    pub fn primary(&self, i: usize) -> &[u8] {
        let at = i * self.n * self.symbol;
        &self.symbols[at..at + self.sources.1 * self.symbol]
    }

    /// Secondary sliver `j`'s part of this segment: F[0..n−2f][j].
    pub fn secondary(&self, j: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.sources.0 * self.symbol);
        for i in 0..self.sources.0 {
            out.extend_from_slice(self.symbol(i, j));
        }
        out
    }

    /// Leaf hashes of row `i` (primary sliver `i`'s tree, this segment's n leaves).
    pub fn primary_leaves(&self, i: usize) -> impl Iterator<Item = B256> + '_ {
        self.leaves[i * self.n..(i + 1) * self.n].iter().copied()
    }

    /// Leaf hashes of column `j` (secondary sliver `j`'s tree, this segment's n leaves).
    pub fn secondary_leaves(&self, j: usize) -> impl Iterator<Item = B256> + '_ {
        (0..self.n).map(move |i| self.leaves[i * self.n + j])
    }

    /// The source bytes of the segment (rows 0..n−2f, columns 0..n−f), `length` of them.
    pub fn source(&self, length: usize, out: &mut Vec<u8>) {
        let row_bytes = self.sources.1 * self.symbol;
        let mut left = length;
        for i in 0..self.sources.0 {
            let take = left.min(row_bytes);
            out.extend_from_slice(&self.primary(i)[..take]);
            left -= take;
        }
    }
}

/// The coders of one layout, with their working space kept between segments.
pub struct Codec {
    layout: Layout,
    /// Extends a column: n − 2f sources, 2f parity.
    column_encoder: ReedSolomonEncoder,
    /// Extends a row: n − f sources, f parity.
    row_encoder: ReedSolomonEncoder,
    column_decoder: ReedSolomonDecoder,
    row_decoder: ReedSolomonDecoder,
}

fn coder_error(e: reed_solomon_simd::Error) -> BlobError {
    BlobError::Coding(e.to_string())
}

impl Codec {
    pub fn new(layout: Layout) -> Result<Codec, BlobError> {
        let (n, r, c, s) = (
            layout.n(),
            layout.primary_source(),
            layout.secondary_source(),
            layout.symbol_bytes,
        );
        Ok(Codec {
            layout,
            column_encoder: ReedSolomonEncoder::new(r, n - r, s).map_err(coder_error)?,
            row_encoder: ReedSolomonEncoder::new(c, n - c, s).map_err(coder_error)?,
            column_decoder: ReedSolomonDecoder::new(r, n - r, s).map_err(coder_error)?,
            row_decoder: ReedSolomonDecoder::new(c, n - c, s).map_err(coder_error)?,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Extends one segment of the blob (at most `segment_bytes`, zero-padded) into `out`.
    pub fn encode_segment(
        &mut self,
        data: &[u8],
        out: &mut ExtendedSegment,
    ) -> Result<(), BlobError> {
        let l = self.layout;
        let (n, r, c, s) = (
            l.n(),
            l.primary_source(),
            l.secondary_source(),
            l.symbol_bytes,
        );
        if data.len() > l.segment_bytes() {
            return Err(BlobError::Coding(format!(
                "segment of {} bytes is over the layout's {}",
                data.len(),
                l.segment_bytes()
            )));
        }
        out.n = n;
        out.sources = (r, c);
        out.symbol = s;
        out.symbols.clear();
        out.symbols.resize(n * n * s, 0);
        for (k, chunk) in data.chunks(s).enumerate() {
            let at = ((k / c) * n + k % c) * s;
            out.symbols[at..at + chunk.len()].copy_from_slice(chunk);
        }
        for column in 0..c {
            for row in 0..r {
                let at = (row * n + column) * s;
                self.column_encoder
                    .add_original_shard(&out.symbols[at..at + s])
                    .map_err(coder_error)?;
            }
            let result = self.column_encoder.encode().map_err(coder_error)?;
            for (k, parity) in result.recovery_iter().enumerate() {
                let at = ((r + k) * n + column) * s;
                out.symbols[at..at + s].copy_from_slice(parity);
            }
        }
        for row in 0..n {
            let at = row * n * s;
            extend(
                &mut self.row_encoder,
                &mut out.symbols[at..at + n * s],
                c,
                s,
            )?;
        }
        out.leaves.clear();
        out.leaves
            .extend(out.symbols.chunks_exact(s).map(merkle::leaf));
        Ok(())
    }

    /// Primary sliver part (n − f symbols) extended to its row of n symbols.
    pub fn extend_primary(&mut self, sliver: &[u8]) -> Result<Vec<u8>, BlobError> {
        let l = self.layout;
        self.check_len(sliver, l.primary_segment_bytes())?;
        let mut row = vec![0u8; l.n() * l.symbol_bytes];
        row[..sliver.len()].copy_from_slice(sliver);
        extend(
            &mut self.row_encoder,
            &mut row,
            l.secondary_source(),
            l.symbol_bytes,
        )?;
        Ok(row)
    }

    /// Secondary sliver part (n − 2f symbols) extended to its column of n symbols.
    pub fn extend_secondary(&mut self, sliver: &[u8]) -> Result<Vec<u8>, BlobError> {
        let l = self.layout;
        self.check_len(sliver, l.secondary_segment_bytes())?;
        let mut column = vec![0u8; l.n() * l.symbol_bytes];
        column[..sliver.len()].copy_from_slice(sliver);
        extend(
            &mut self.column_encoder,
            &mut column,
            l.primary_source(),
            l.symbol_bytes,
        )?;
        Ok(column)
    }

    /// The segment's source bytes (`segment_bytes`, padding included) from n − 2f or more
    /// primary slivers `(index, part)`.
    pub fn decode_segment(&mut self, rows: &[(usize, &[u8])]) -> Result<Vec<u8>, BlobError> {
        let l = self.layout;
        let (r, c, s) = (l.primary_source(), l.secondary_source(), l.symbol_bytes);
        for (_, part) in rows {
            self.check_len(part, l.primary_segment_bytes())?;
        }
        let mut source: Vec<Option<&[u8]>> = vec![None; r];
        for (i, part) in rows {
            if *i < r {
                source[*i] = Some(part);
            }
        }
        let mut out = vec![0u8; l.segment_bytes()];
        if source.iter().all(Option::is_some) {
            for (i, part) in source.iter().enumerate() {
                out[i * c * s..(i + 1) * c * s].copy_from_slice(part.expect("all present"));
            }
            return Ok(out);
        }
        for column in 0..c {
            let symbol = |part: &[u8]| part[column * s..(column + 1) * s].to_vec();
            let indexed: Vec<(usize, Vec<u8>)> =
                rows.iter().map(|(i, p)| (*i, symbol(p))).collect();
            let restored = decode(&mut self.column_decoder, &indexed, r, l.n())?;
            for (i, sym) in restored.iter().enumerate() {
                out[(i * c + column) * s..(i * c + column + 1) * s].copy_from_slice(sym);
            }
        }
        Ok(out)
    }

    /// Rebuilds a lost primary sliver's part from F[i][j] for n − f or more columns `j`.
    pub fn rebuild_primary(&mut self, symbols: &[(usize, Vec<u8>)]) -> Result<Vec<u8>, BlobError> {
        let l = self.layout;
        Ok(decode(&mut self.row_decoder, symbols, l.secondary_source(), l.n())?.concat())
    }

    /// Rebuilds a lost secondary sliver's part from F[i][j] for n − 2f or more rows `i`.
    pub fn rebuild_secondary(
        &mut self,
        symbols: &[(usize, Vec<u8>)],
    ) -> Result<Vec<u8>, BlobError> {
        let l = self.layout;
        Ok(decode(&mut self.column_decoder, symbols, l.primary_source(), l.n())?.concat())
    }

    fn check_len(&self, part: &[u8], expected: usize) -> Result<(), BlobError> {
        if part.len() != expected {
            return Err(BlobError::Coding(format!(
                "sliver part of {} bytes, the layout's is {expected}",
                part.len()
            )));
        }
        Ok(())
    }
}

/// Fills `line[sources..n]` with the parity of `line[0..sources]` (symbols of `s` bytes).
fn extend(
    encoder: &mut ReedSolomonEncoder,
    line: &mut [u8],
    sources: usize,
    s: usize,
) -> Result<(), BlobError> {
    let (head, tail) = line.split_at_mut(sources * s);
    for symbol in head.chunks_exact(s) {
        encoder.add_original_shard(symbol).map_err(coder_error)?;
    }
    let result = encoder.encode().map_err(coder_error)?;
    for (slot, parity) in tail.chunks_exact_mut(s).zip(result.recovery_iter()) {
        slot.copy_from_slice(parity);
    }
    Ok(())
}

/// The `sources` source symbols of a line of `n` from any `sources` or more of its symbols
/// `(position, symbol)`; positions at or past `sources` are parity.
fn decode(
    decoder: &mut ReedSolomonDecoder,
    symbols: &[(usize, Vec<u8>)],
    sources: usize,
    n: usize,
) -> Result<Vec<Vec<u8>>, BlobError> {
    let mut seen = vec![false; n];
    let mut distinct = 0;
    for (position, _) in symbols {
        if *position >= n {
            return Err(BlobError::Coding(format!(
                "symbol position {position} of a line of {n}"
            )));
        }
        if !seen[*position] {
            seen[*position] = true;
            distinct += 1;
        }
    }
    if distinct < sources {
        return Err(BlobError::NotEnough {
            have: distinct,
            need: sources,
        });
    }
    let symbol_bytes = symbols[0].1.len();
    if symbols.iter().any(|(_, s)| s.len() != symbol_bytes) {
        return Err(BlobError::Coding("symbols of different sizes".into()));
    }
    let mut out: Vec<Option<Vec<u8>>> = vec![None; sources];
    for (position, symbol) in symbols {
        if *position < sources {
            out[*position] = Some(symbol.clone());
        }
    }
    if out.iter().all(Option::is_some) {
        return Ok(out.into_iter().flatten().collect());
    }
    decoder
        .reset(sources, n - sources, symbol_bytes)
        .map_err(coder_error)?;
    let mut added = vec![false; n];
    for (position, symbol) in symbols {
        if std::mem::replace(&mut added[*position], true) {
            continue;
        }
        if *position < sources {
            decoder
                .add_original_shard(*position, symbol)
                .map_err(coder_error)?;
        } else {
            decoder
                .add_recovery_shard(*position - sources, symbol)
                .map_err(coder_error)?;
        }
    }
    let result = decoder.decode().map_err(coder_error)?;
    for (i, slot) in out.iter_mut().enumerate() {
        if slot.is_none() {
            let restored = result
                .restored_original(i)
                .ok_or_else(|| BlobError::Coding(format!("source symbol {i} was not restored")))?;
            *slot = Some(restored.to_vec());
        }
    }
    Ok(out.into_iter().flatten().collect())
}
