//! The quantization of activations ([`QuantizedActivations`]): a token's f32 vector cut into blocks
//! of 32 (or of 256, for the k-quant weights) and each block quantized to 8 bits by
//! `spec::quantize_block`, or by `avx2.rs` with the same bits where the CPU has AVX2.

use super::{simd_level, spec, SimdLevel, WeightFormat, BLOCK, SUPER_BLOCK};

/// Activations of one or more tokens quantized to 8-bit blocks (see the module docs).
#[derive(Debug, Clone)]
pub struct QuantizedActivations {
    pub(super) tokens: usize,
    /// Values per block: [`BLOCK`], or [`SUPER_BLOCK`] for k-quant weights.
    pub(super) block_len: usize,
    /// Blocks per token.
    pub(super) blocks: usize,
    /// Per block (token-major): the scale `d`.
    pub(super) d: Vec<f32>,
    /// Per block: `s = d * (Σ q_i as f32)`.
    pub(super) s: Vec<f32>,
    /// Per block: `Σ q_i`.
    pub(super) qsum: Vec<i32>,
    /// Per 16 values (superblocks only): `Σ q_i` of those 16, which the k-quants' minimums and
    /// offsets multiply.
    pub(super) sums16: Vec<i32>,
    /// The quantized values, `block_len` per block.
    pub(super) q: Vec<i8>,
}

impl Default for QuantizedActivations {
    fn default() -> Self {
        Self {
            tokens: 0,
            block_len: BLOCK,
            blocks: 0,
            d: Vec::new(),
            s: Vec::new(),
            qsum: Vec::new(),
            sums16: Vec::new(),
            q: Vec::new(),
        }
    }
}

impl QuantizedActivations {
    /// Quantizes `x`, `tokens` rows of `width` values, in blocks of 32, reusing this buffer's
    /// memory: the activations of Q4_0, Q4_1, Q5_0 and Q8_0 weights.
    pub fn quantize(&mut self, x: &[f32], tokens: usize, width: usize) {
        self.quantize_blocks(x, tokens, width, BLOCK)
    }

    /// Quantizes `x` in the blocks `format`'s weights are multiplied with
    /// ([`WeightFormat::block_len`]).
    pub fn quantize_for(&mut self, format: WeightFormat, x: &[f32], tokens: usize, width: usize) {
        self.quantize_blocks(x, tokens, width, format.block_len())
    }

    /// The block length of these activations.
    pub fn block_len(&self) -> usize {
        self.block_len
    }

    fn quantize_blocks(&mut self, x: &[f32], tokens: usize, width: usize, block_len: usize) {
        assert!(block_len == BLOCK || block_len == SUPER_BLOCK);
        assert!(width.is_multiple_of(block_len) && x.len() == tokens * width);
        self.tokens = tokens;
        self.block_len = block_len;
        self.blocks = width / block_len;
        let n = tokens * self.blocks;
        self.d.resize(n, 0.0);
        self.s.resize(n, 0.0);
        self.qsum.resize(n, 0);
        self.q.resize(n * block_len, 0);
        let level = simd_level();
        for (i, values) in x.chunks_exact(block_len).enumerate() {
            let q = &mut self.q[i * block_len..][..block_len];
            let (d, sum) = if block_len == BLOCK {
                let q: &mut [i8; BLOCK] = q.try_into().expect("a block is BLOCK values");
                quantize_block(level, values, q)
            } else {
                quantize_superblock(level, values, q)
            };
            self.d[i] = d;
            self.qsum[i] = sum;
            self.s[i] = spec::block_sum(d, sum);
        }
        if block_len == SUPER_BLOCK {
            self.sums16.clear();
            self.sums16.extend(
                self.q
                    .chunks_exact(16)
                    .map(|c| c.iter().map(|&v| i32::from(v)).sum::<i32>()),
            );
        } else {
            self.sums16.clear();
        }
    }

    /// The quantized values of one block of one token.
    #[inline]
    pub(super) fn block(&self, token: usize, block: usize) -> &[i8] {
        &self.q[(token * self.blocks + block) * self.block_len..][..self.block_len]
    }

    /// The 16-value sums of one superblock of one token.
    #[inline]
    pub(super) fn block_sums16(&self, token: usize, block: usize) -> &[i32] {
        &self.sums16[(token * self.blocks + block) * (SUPER_BLOCK / 16)..][..SUPER_BLOCK / 16]
    }
}

/// One block by AVX2 when `level` asks for it and the block has no value AVX2 leaves to the
/// portable code (see `avx2::quantize_block`), else by the specification. Returns `(d, Σ q_i)`.
#[inline]
fn quantize_block(level: SimdLevel, values: &[f32], q: &mut [i8; BLOCK]) -> (f32, i32) {
    #[cfg(target_arch = "x86_64")]
    if level == SimdLevel::Avx2 {
        // SAFETY: `simd_level()` is `Avx2` only when the CPU reports AVX2 and F16C; `values`
        // holds BLOCK f32 (a `chunks_exact(BLOCK)` chunk) and `q` BLOCK bytes.
        if let Some(result) = unsafe { super::avx2::quantize_block(values, q) } {
            return result;
        }
    }
    let _ = level;
    spec::quantize_block(values, q)
}

/// One superblock of 256 values: the same formula with one scale for all of them
/// (`spec::quantize_block` over 256 values), by AVX2 where it can.
#[inline]
fn quantize_superblock(level: SimdLevel, values: &[f32], q: &mut [i8]) -> (f32, i32) {
    #[cfg(target_arch = "x86_64")]
    if level == SimdLevel::Avx2 {
        // SAFETY: `simd_level()` is `Avx2` only when the CPU reports AVX2 and F16C; `values`
        // and `q` hold SUPER_BLOCK values (chunks of that length).
        if let Some(result) = unsafe { super::avx2::quantize_span(values, q) } {
            return result;
        }
    }
    let _ = level;
    spec::quantize_block(values, q)
}
