//! The quantization of activations ([`QuantizedActivations`]): a token's f32 vector cut into blocks
//! of 32 and each block quantized to 8 bits by `spec::quantize_block`, or by `avx2.rs` with the
//! same bits where the CPU has AVX2.

use super::{simd_level, spec, SimdLevel, BLOCK};

/// Activations of one or more tokens quantized to 8-bit blocks (see the module docs).
#[derive(Debug, Default, Clone)]
pub struct QuantizedActivations {
    pub(super) tokens: usize,
    /// Blocks per token.
    pub(super) blocks: usize,
    /// Per block (token-major): the scale `d`.
    pub(super) d: Vec<f32>,
    /// Per block: `s = d * (Σ q_i as f32)`.
    pub(super) s: Vec<f32>,
    /// Per block: `Σ q_i`.
    pub(super) qsum: Vec<i32>,
    /// The quantized values, [`BLOCK`] per block.
    pub(super) q: Vec<i8>,
}

impl QuantizedActivations {
    /// Quantizes `x`, `tokens` rows of `width` values, reusing this buffer's memory.
    pub fn quantize(&mut self, x: &[f32], tokens: usize, width: usize) {
        assert!(width.is_multiple_of(BLOCK) && x.len() == tokens * width);
        self.tokens = tokens;
        self.blocks = width / BLOCK;
        let n = tokens * self.blocks;
        self.d.resize(n, 0.0);
        self.s.resize(n, 0.0);
        self.qsum.resize(n, 0);
        self.q.resize(n * BLOCK, 0);
        let level = simd_level();
        for (i, values) in x.chunks_exact(BLOCK).enumerate() {
            let q: &mut [i8; BLOCK] = (&mut self.q[i * BLOCK..][..BLOCK])
                .try_into()
                .expect("a block is BLOCK values");
            let (d, sum) = quantize_block(level, values, q);
            self.d[i] = d;
            self.qsum[i] = sum;
            self.s[i] = spec::block_sum(d, sum);
        }
    }

    /// The quantized values of one block of one token.
    #[inline]
    pub(super) fn block(&self, token: usize, block: usize) -> &[i8] {
        &self.q[(token * self.blocks + block) * BLOCK..][..BLOCK]
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
