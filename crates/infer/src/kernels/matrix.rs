//! Quantized weight matrices: the weight formats the kernels multiply, and a matrix's GGUF blocks
//! repacked so that 8 consecutive rows sit side by side (one SIMD register holds the same block of
//! 8 rows). The products over them are in `matmul.rs`.

use super::{spec, BLOCK, GROUP};

/// The quantized weight formats the kernels multiply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    Q4_0,
    Q4_1,
    Q8_0,
}

impl WeightFormat {
    /// Bytes of one block in a GGUF file.
    pub fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q8_0 => 34,
        }
    }

    /// Bytes of quantized values per block (after the scales).
    #[inline]
    pub(super) fn quant_bytes(self) -> usize {
        match self {
            Self::Q4_0 | Self::Q4_1 => 16,
            Self::Q8_0 => 32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q8_0 => "Q8_0",
        }
    }
}

/// A quantized weight matrix (`rows` outputs × `cols` inputs), its blocks repacked so that 8
/// consecutive rows sit side by side: block `b` of rows `8g..8g+8` is contiguous.
#[derive(Debug)]
pub struct QMatrix {
    pub(super) format: WeightFormat,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) blocks: usize,
    /// `d` per (group, block, lane): the file's f16 bits (widened to f32 when used).
    pub(super) scales: Vec<u16>,
    /// `m` per (group, block, lane) for Q4_1; empty otherwise.
    pub(super) mins: Vec<u16>,
    /// Quantized values per (group, block, lane), in the file's byte order.
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
        if !cols.is_multiple_of(BLOCK) {
            return Err(format!(
                "a row has {cols} values, not a multiple of {BLOCK}"
            ));
        }
        let blocks = cols / BLOCK;
        let block_bytes = format.block_bytes();
        if bytes.len() != rows * blocks * block_bytes {
            return Err(format!(
                "{} bytes of {} data for a {rows}×{cols} matrix, expected {}",
                bytes.len(),
                format.name(),
                rows * blocks * block_bytes
            ));
        }
        let groups = rows.div_ceil(GROUP);
        let slots = groups * blocks * GROUP;
        let quant_bytes = format.quant_bytes();
        let mut scales = vec![0u16; slots];
        let mut mins = if format == WeightFormat::Q4_1 {
            vec![0u16; slots]
        } else {
            Vec::new()
        };
        // Padding rows (past `rows`) stay zero: their outputs are computed and never read.
        let mut quants = vec![0u8; slots * quant_bytes];
        for row in 0..rows {
            let (group, lane) = (row / GROUP, row % GROUP);
            for block in 0..blocks {
                let src = &bytes[(row * blocks + block) * block_bytes..][..block_bytes];
                let slot = (group * blocks + block) * GROUP + lane;
                let half = |at: usize| u16::from_le_bytes([src[at], src[at + 1]]);
                scales[slot] = half(0);
                let values = match format {
                    WeightFormat::Q4_1 => {
                        mins[slot] = half(2);
                        &src[4..]
                    }
                    WeightFormat::Q4_0 | WeightFormat::Q8_0 => &src[2..],
                };
                quants[slot * quant_bytes..][..quant_bytes].copy_from_slice(values);
            }
        }
        Ok(Self {
            format,
            rows,
            cols,
            blocks,
            scales,
            mins,
            quants,
        })
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
        let quant_bytes = self.format.quant_bytes();
        for block in 0..self.blocks {
            let slot = self.slot(row, block);
            out.extend_from_slice(&self.scales[slot].to_le_bytes());
            if self.format == WeightFormat::Q4_1 {
                out.extend_from_slice(&self.mins[slot].to_le_bytes());
            }
            out.extend_from_slice(&self.quants[slot * quant_bytes..][..quant_bytes]);
        }
    }

    fn slot(&self, row: usize, block: usize) -> usize {
        ((row / GROUP) * self.blocks + block) * GROUP + row % GROUP
    }

    /// Writes row `row`, dequantized, into `out` (`cols` values): the embedding lookup.
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        assert!(row < self.rows && out.len() == self.cols);
        let quant_bytes = self.format.quant_bytes();
        for block in 0..self.blocks {
            let slot = self.slot(row, block);
            let d = spec::f16_to_f32(self.scales[slot]);
            let m = match self.format {
                WeightFormat::Q4_1 => spec::f16_to_f32(self.mins[slot]),
                WeightFormat::Q4_0 | WeightFormat::Q8_0 => 0.0,
            };
            let q = &self.quants[slot * quant_bytes..][..quant_bytes];
            spec::dequantize_block(self.format, d, m, q, &mut out[block * BLOCK..][..BLOCK]);
        }
    }
}
