//! The arithmetic of determinism profile `mycel-det-v1`: quantized matrix–vector products and the
//! f32 reductions of a llama forward pass, each defined as one exact sequence of IEEE-754
//! single-precision operations, so that every CPU, SIMD level and thread count gives the same bits.
//!
//! # The rules
//! - **No fused multiply-add, no reassociation.** Rust never contracts `a * b + c` into an FMA and
//!   never reorders float operations, so plain Rust code *is* the specification (`spec.rs`); the
//!   SIMD paths perform per lane exactly the operations of that code, in the same order.
//! - **Matrix–vector products are integer sums combined in a fixed order.** An activation vector is
//!   quantized in blocks of 32 to 8 bits ([`QuantizedActivations`]): `amax = max |x_i|`,
//!   `d = amax / 127`, `q_i = round(x_i * (1/d))` (half away from zero; `q = 0` when `d = 0`), and
//!   the block's `s = d * (Σ q_i as f32)`. For one weight row and one activation block, the integer
//!   `isum = Σ w_i q_i` is exact whatever the instruction set (it never exceeds 2²⁴ in magnitude, so
//!   the conversion to f32 is exact as well). The block's term is
//!   - Q4_0 (`w_i = nibble − 8`): `(d_w * d) * isum`
//!   - Q4_1 (`w_i = nibble`, value `d_w·nibble + m_w`): `(d_w * d) * isum + m_w * s`
//!   - Q8_0 (`w_i` the signed byte): `(d_w * d) * isum`
//!   - Q5_0 (`w_i = (nibble | high bit << 4) − 16`): `(d_w * d) * isum`
//!
//!   The k-quants (Q4_K, Q6_K) have 256-value superblocks, and their activations are quantized
//!   by the same rule in blocks of 256 (one `d` per 256 values, like llama.cpp's Q8_K). Per
//!   superblock the integer sums of the sub-blocks are weighted by their integer scales, exactly:
//!   - Q4_K (8 sub-blocks of 32, 6-bit scale `sc_s` and minimum `m_s`):
//!     `(d_w * d) * isum − (dmin_w * d) * msum`, `isum = Σ_s sc_s Σ q_i a_i`,
//!     `msum = Σ_s m_s Σ a_i`
//!   - Q6_K (16 sub-blocks of 16, signed 8-bit scale `sc_s`, `w_i = q_i − 32`):
//!     `(d_w * d) * isum`, `isum = Σ_s sc_s Σ w_i a_i`
//!
//!   (these integers may exceed 2²⁴; they convert to f32 with one round-to-nearest).
//!
//!   and the row's output is `((0 + t_0) + t_1) + …`, block by block from the left. Weight scales
//!   are the file's f16 values widened to f32 (exact).
//! - **Sums of f32 vectors** ([`sum_lanes`], [`dot`]) use eight partial sums: element `i` is added to
//!   lane `i mod 8` in index order, then the lanes are combined as
//!   `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
//! - **Transcendentals** come from the `libm` crate (a portable software implementation): `expf`
//!   for softmax, SiLU and GELU (as `g / (1 + e^(−2z))`, the same function as `0.5·g·(1 + tanh z)`); RoPE angles in f64 with `libm::pow`, `libm::cos`, `libm::sin`.
//! - **Threads split only independent outputs** (rows of a product, heads of attention); no sum is
//!   ever split between threads.
//!
//! The only run-time choice is the instruction set ([`SimdLevel`]: AVX2 or portable Rust) of the
//! products, the activation quantization, attention (scores, softmax, weighted sum) and GELU; both
//! produce identical bits, which the tests check on random data and, end to end, with the whole
//! model on an emulated CPU without AVX2.
//!
//! # Where things are
//! - `spec.rs`: every formula above once, in portable Rust: the reference, and the portable path.
//! - `matrix.rs`: the weight formats and the repacked weight matrix ([`QMatrix`]).
//! - `quantize.rs`: the quantization of activations ([`QuantizedActivations`]).
//! - `matmul.rs`: the products, split over rayon's thread pool by groups of rows.
//! - `reductions.rs`: softmax and attention at a chosen instruction set.
//! - `avx2.rs`: the AVX2 (and F16C) versions, operation for operation those of `spec.rs`.
//! - `tests.rs`: the unit tests holding every instruction set to the specification.

#![warn(clippy::undocumented_unsafe_blocks)]

use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
mod avx2;
mod matmul;
mod matrix;
pub mod pool;
mod quantize;
mod reductions;
mod spec;
#[cfg(test)]
mod tests;

pub use matrix::{QMatrix, WeightFormat};
pub use quantize::QuantizedActivations;
pub use reductions::{attention_scores, gelu_mul_with, silu_mul_with, softmax_with, weighted_sum};
pub use spec::{
    dot, f16_to_f32, gelu_tanh_mul, rms_norm, rope_angles, rope_rotate, rope_rotate_halves,
    silu_mul, softmax, sum_lanes,
};

/// Elements per quantization block (weights and activations).
pub const BLOCK: usize = 32;
/// Elements per superblock of the k-quant weights (Q4_K, Q6_K) and of their activations.
pub const SUPER_BLOCK: usize = 256;
/// Weight rows stored interleaved, so that one SIMD register holds the same block of 8 rows.
const GROUP: usize = 8;
/// Tokens of a prompt multiplied together against each unpacked weight block.
const TOKEN_TILE: usize = 8;

/// The instruction set used for the products, the activation quantization and attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdLevel {
    /// Portable Rust (whatever the compiler makes of it for the build's baseline target).
    Portable,
    /// x86-64 AVX2 intrinsics (and F16C to widen the weight scales, exactly).
    Avx2,
}

impl SimdLevel {
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
        }
    }

    /// This level if the CPU has it, else [`SimdLevel::Portable`] (the same bits). Every public
    /// function taking a level passes it through here, so that the `unsafe` calls into `avx2.rs`
    /// only happen on a CPU that reports AVX2 and F16C.
    fn available(self) -> Self {
        match self {
            Self::Avx2 if detected_level() == Self::Avx2 => Self::Avx2,
            _ => Self::Portable,
        }
    }
}

/// The level this process uses: the best the CPU supports, unless `MYCEL_INFER_SIMD=portable`
/// asks for the portable code (results are the same; it only exists to compare).
pub fn simd_level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        if std::env::var("MYCEL_INFER_SIMD").as_deref() == Ok("portable") {
            return SimdLevel::Portable;
        }
        detected_level()
    })
}

/// The best level this CPU supports: [`SimdLevel::Avx2`] only if it reports both AVX2 and F16C.
fn detected_level() -> SimdLevel {
    static DETECTED: OnceLock<SimdLevel> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
                return SimdLevel::Avx2;
            }
        }
        SimdLevel::Portable
    })
}
