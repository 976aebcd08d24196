//! Quantized weight matrices: the weight formats the kernels multiply, and a matrix's GGUF blocks
//! repacked so that 8 consecutive rows sit side by side (one SIMD register holds the same block of
//! 8 rows). The products over them are in `matmul.rs`.
//!
//! A block is 32 values (Q4_0, Q4_1, Q5_0, Q8_0) or a 256-value "superblock" (the k-quants Q4_K
//! and Q6_K). A repacked slot keeps the GGUF block's bytes, in the file's order, without its f16
//! scales (`d`, and `m` / `dmin` for Q4_1 / Q4_K), which sit in their own arrays.

use super::{spec, BLOCK, GROUP, SUPER_BLOCK};

/// The most quantized bytes a block has (Q6_K's).
pub(super) const MAX_QUANT_BYTES: usize = 208;

/// The quantized weight formats the kernels multiply (GGUF/ggml block layouts, named as ggml
/// names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum WeightFormat {
    Q4_0,
    Q4_1,
    /// `d`, 32 high bits, 16 bytes of nibbles: `w = (nibble | high << 4) − 16`.
    Q5_0,
    Q8_0,
    /// 256 values: `d`, `dmin`, 12 bytes of 6-bit scales and mins (8 sub-blocks of 32), 128
    /// bytes of nibbles: `w = d·sc·q − dmin·m`.
    Q4_K,
    /// 256 values: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 signed 8-bit scales
    /// (16 sub-blocks of 16), `d`: `w = d·sc·(q − 32)`.
    Q6_K,
}

impl WeightFormat {
    /// Bytes of one block in a GGUF file.
    pub fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q8_0 => 34,
            Self::Q4_K => 144,
            Self::Q6_K => 210,
        }
    }

    /// Values per block: 32, or 256 for the k-quants. The activations multiplied with a matrix
    /// are quantized in blocks of the same length.
    pub fn block_len(self) -> usize {
        match self {
            Self::Q4_K | Self::Q6_K => SUPER_BLOCK,
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q8_0 => BLOCK,
        }
    }

    /// Bytes of quantized values per block (the block without its f16 scales).
    #[inline]
    pub(super) fn quant_bytes(self) -> usize {
        match self {
            Self::Q4_0 | Self::Q4_1 => 16,
            Self::Q5_0 => 20,
            Self::Q8_0 => 32,
            Self::Q4_K => 140,
            Self::Q6_K => 208,
        }
    }

    /// Whether a group's 8 blocks of quantized bytes are stored interleaved in 4-byte pieces
    /// (Q4_0, Q4_1: piece `c` of the 8 rows side by side, so that one 32-byte register holds
    /// bytes `4c..4c + 4` of every row) rather than one block after another.
    #[inline]
    pub(super) fn interleaved(self) -> bool {
        matches!(self, Self::Q4_0 | Self::Q4_1)
    }

    /// Whether the block carries a second f16 (Q4_1's `m`, Q4_K's `dmin`).
    #[inline]
    pub(super) fn has_min(self) -> bool {
        matches!(self, Self::Q4_1 | Self::Q4_K)
    }

    /// Offsets in a GGUF block of `d`, of the second f16 if any, and of the quantized bytes.
    fn layout(self) -> (usize, usize, usize) {
        match self {
            Self::Q4_0 | Self::Q5_0 | Self::Q8_0 => (0, 0, 2),
            Self::Q4_1 | Self::Q4_K => (0, 2, 4),
            Self::Q6_K => (208, 0, 0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q8_0 => "Q8_0",
            Self::Q4_K => "Q4_K",
            Self::Q6_K => "Q6_K",
        }
    }
}

/// A quantized weight matrix (`rows` outputs × `cols` inputs), its blocks repacked so that 8
/// consecutive rows sit side by side: block `b` of rows `8g..8g+8` is contiguous. For the
/// interleaved formats ([`WeightFormat::interleaved`]) the 8 blocks' bytes are further laid out
/// in 4-byte pieces: piece `c` of lane 0, of lane 1, …, of lane 7, then piece `c + 1`.
#[derive(Debug)]
pub struct QMatrix {
    pub(super) format: WeightFormat,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) blocks: usize,
    /// `d` per (group, block, lane): the file's f16 bits (widened to f32 when used).
    pub(super) scales: Vec<u16>,
    /// `m` (Q4_1) or `dmin` (Q4_K) per (group, block, lane); empty for the other formats.
    pub(super) mins: Vec<u16>,
    /// Quantized values per (group, block, lane), in the file's byte order (interleaved by 4-byte
    /// pieces across the lanes for Q4_0 and Q4_1; read them with [`QMatrix::slot_quants`]).
    pub(super) quants: Vec<u8>,
}

impl QMatrix {
    /// Repacks the raw GGUF bytes of a row-major matrix (`rows` rows of `cols` values).
    pub fn from_gguf_bytes(
        format: WeightFormat,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<Self, String> {
        let mut matrix = Self::zeroed(format, rows, cols)?;
        let expected = rows * matrix.row_bytes();
        if bytes.len() != expected {
            return Err(format!(
                "{} bytes of {} data for a {rows}×{cols} matrix, expected {expected}",
                bytes.len(),
                format.name(),
            ));
        }
        matrix.fill_rows(0, bytes);
        Ok(matrix)
    }

    /// A matrix of zero blocks, to be filled with [`QMatrix::fill_rows`] (so that a large
    /// tensor can be read and repacked a few rows at a time).
    pub fn zeroed(format: WeightFormat, rows: usize, cols: usize) -> Result<Self, String> {
        let block_len = format.block_len();
        if !cols.is_multiple_of(block_len) {
            return Err(format!(
                "a {} row has {cols} values, not a multiple of {block_len}",
                format.name()
            ));
        }
        let blocks = cols / block_len;
        let slots = rows.div_ceil(GROUP) * blocks * GROUP;
        // Padding rows (past `rows`) stay zero: their outputs are computed and never read.
        Ok(Self {
            format,
            rows,
            cols,
            blocks,
            scales: vec![0u16; slots],
            mins: if format.has_min() {
                vec![0u16; slots]
            } else {
                Vec::new()
            },
            quants: vec![0u8; slots * format.quant_bytes()],
        })
    }

    /// GGUF bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.blocks * self.format.block_bytes()
    }

    /// Repacks whole rows from `first_row` on from their GGUF bytes (a multiple of
    /// [`QMatrix::row_bytes`], within the matrix).
    pub fn fill_rows(&mut self, first_row: usize, bytes: &[u8]) {
        let (format, blocks) = (self.format, self.blocks);
        let block_bytes = format.block_bytes();
        let quant_bytes = format.quant_bytes();
        let (d_at, m_at, q_at) = format.layout();
        assert!(bytes.len().is_multiple_of(self.row_bytes()));
        let rows = bytes.len() / self.row_bytes();
        assert!(first_row + rows <= self.rows, "rows past the matrix");
        for (r, row_bytes) in bytes.chunks_exact(blocks * block_bytes).enumerate() {
            let row = first_row + r;
            for (block, src) in row_bytes.chunks_exact(block_bytes).enumerate() {
                let slot = self.slot(row, block);
                let half = |at: usize| u16::from_le_bytes([src[at], src[at + 1]]);
                self.scales[slot] = half(d_at);
                if format.has_min() {
                    self.mins[slot] = half(m_at);
                }
                let quants = &src[q_at..][..quant_bytes];
                if format.interleaved() {
                    for (piece, bytes) in quants.chunks_exact(4).enumerate() {
                        let at = Self::interleaved_at(slot, 4 * piece, quant_bytes);
                        self.quants[at..at + 4].copy_from_slice(bytes);
                    }
                } else {
                    self.quants[slot * quant_bytes..][..quant_bytes].copy_from_slice(quants);
                }
            }
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Stacks matrices with the same input size and format into one (rows one after another), so
    /// that products sharing an input (q, k, v) run as one.
    pub fn stack(parts: &[QMatrix]) -> Result<Self, String> {
        let first = parts.first().ok_or("nothing to stack")?;
        let (format, cols) = (first.format, first.cols);
        if let Some(odd) = parts.iter().find(|p| p.format != format || p.cols != cols) {
            return Err(format!(
                "cannot stack a {} {}-column matrix with a {} {}-column one",
                odd.format.name(),
                odd.cols,
                format.name(),
                cols
            ));
        }
        let rows: usize = parts.iter().map(|p| p.rows).sum();
        let mut bytes = Vec::with_capacity(rows * first.blocks * format.block_bytes());
        for part in parts {
            for row in 0..part.rows {
                part.append_row_gguf_bytes(row, &mut bytes);
            }
        }
        Self::from_gguf_bytes(format, rows, cols, &bytes)
    }

    /// The GGUF bytes of one row (the inverse of the repacking;
    /// convert back exactly).
    pub(super) fn append_row_gguf_bytes(&self, row: usize, out: &mut Vec<u8>) {
        for block in 0..self.blocks {
            let slot = self.slot(row, block);
            let mut buffer = [0u8; MAX_QUANT_BYTES];
            let quants = self.slot_quants(slot, &mut buffer);
            if self.format == WeightFormat::Q6_K {
                out.extend_from_slice(quants);
                out.extend_from_slice(&self.scales[slot].to_le_bytes());
                continue;
            }
            out.extend_from_slice(&self.scales[slot].to_le_bytes());
            if self.format.has_min() {
                out.extend_from_slice(&self.mins[slot].to_le_bytes());
            }
            out.extend_from_slice(quants);
        }
    }

    pub(super) fn slot(&self, row: usize, block: usize) -> usize {
        ((row / GROUP) * self.blocks + block) * GROUP + row % GROUP
    }

    /// Where byte `byte` of slot `slot`'s quantized bytes sits in an interleaved format: in its
    /// group-block's `8 × quant_bytes` bytes, piece `byte / 4` of every lane, lane by lane.
    #[inline]
    fn interleaved_at(slot: usize, byte: usize, quant_bytes: usize) -> usize {
        let (first, lane) = (slot - slot % GROUP, slot % GROUP);
        first * quant_bytes + (byte / 4) * (4 * GROUP) + lane * 4 + byte % 4
    }

    /// The quantized bytes of one slot in the file's order (gathered into `buffer` for an
    /// interleaved format).
    pub(super) fn slot_quants<'a>(
        &'a self,
        slot: usize,
        buffer: &'a mut [u8; MAX_QUANT_BYTES],
    ) -> &'a [u8] {
        let quant_bytes = self.format.quant_bytes();
        if !self.format.interleaved() {
            return &self.quants[slot * quant_bytes..][..quant_bytes];
        }
        for (byte, out) in buffer[..quant_bytes].iter_mut().enumerate() {
            *out = self.quants[Self::interleaved_at(slot, byte, quant_bytes)];
        }
        &buffer[..quant_bytes]
    }

    /// Writes row `row`, dequantized, into `out` (`cols` values): the embedding lookup.
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        assert!(row < self.rows && out.len() == self.cols);
        let block_len = self.format.block_len();
        for block in 0..self.blocks {
            let slot = self.slot(row, block);
            let d = spec::f16_to_f32(self.scales[slot]);
            let m = match self.format.has_min() {
                true => spec::f16_to_f32(self.mins[slot]),
                false => 0.0,
            };
            let mut buffer = [0u8; MAX_QUANT_BYTES];
            let q = self.slot_quants(slot, &mut buffer);
            let out = &mut out[block * block_len..][..block_len];
            spec::dequantize_block(self.format, d, m, q, out);
        }
    }
}
