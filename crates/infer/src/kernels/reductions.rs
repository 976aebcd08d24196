//! Softmax and attention at a chosen instruction set: the fixed-order sums of `spec.rs` (eight-lane
//! dot products and softmax sums, position-ordered weighted sums), run by `avx2.rs` where the CPU
//! has AVX2 and the shapes allow, else by the specification itself. Either way the same bits.
//! RMSNorm has no vector path: [`super::rms_norm`] is the specification's.

use super::{spec, SimdLevel};

/// Attention scores of one query head against `scores.len()` cached keys:
/// `scores[j] = dot(q, keys[j * stride + offset..][..q.len()]) * scale`, each [`super::dot`] in
/// its fixed eight-lane order. The AVX2 path computes 8 keys at once (their lanes side by side)
/// with the same operations per key, so it gives the same bits.
pub fn attention_scores(
    level: SimdLevel,
    q: &[f32],
    keys: &[f32],
    stride: usize,
    offset: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let head_dim = q.len();
    if let Some(last) = scores.len().checked_sub(1) {
        assert!(
            last * stride + offset + head_dim <= keys.len(),
            "keys out of range"
        );
    }
    #[cfg(target_arch = "x86_64")]
    if level.available() == SimdLevel::Avx2 && head_dim.is_multiple_of(8) {
        // SAFETY: the CPU reports AVX2 (`available`); the head size is a multiple of 8, and every
        // key `j < scores.len()` lies inside `keys` (asserted above).
        unsafe { super::avx2::attention_scores(q, keys, stride, offset, scale, scores) };
        return;
    }
    let _ = level;
    spec::attention_scores(q, keys, stride, offset, scale, scores)
}

/// The attention output of one head: `out[d] = ((0 + w_0·v_0[d]) + w_1·v_1[d]) + …` over the
/// positions in order, each product rounded and then added; `v_j = values[j * stride + offset..]`.
pub fn weighted_sum(
    level: SimdLevel,
    weights: &[f32],
    values: &[f32],
    stride: usize,
    offset: usize,
    out: &mut [f32],
) {
    let head_dim = out.len();
    if let Some(last) = weights.len().checked_sub(1) {
        assert!(
            last * stride + offset + head_dim <= values.len(),
            "values out of range"
        );
    }
    #[cfg(target_arch = "x86_64")]
    if level.available() == SimdLevel::Avx2 && head_dim.is_multiple_of(8) {
        // SAFETY: the CPU reports AVX2 (`available`); the head size is a multiple of 8, and every
        // value row `j < weights.len()` lies inside `values` (asserted above).
        unsafe { super::avx2::weighted_sum(weights, values, stride, offset, out) };
        return;
    }
    let _ = level;
    spec::weighted_sum(weights, values, stride, offset, out)
}

/// [`super::softmax`] with a given instruction set: the same bits. The AVX2 path subtracts, sums
/// and divides 8 values per instruction, and evaluates `libm::expf`'s own algorithm (FreeBSD's
/// `e_expf`: argument reduction by `k·ln2`, a degree-2 rational approximation, scaling by `2^k`)
/// on 8 inputs at once, operation for operation in f32, wherever the inputs lie in (−80, 80):
/// there every branch of that algorithm is a lane-wise select and `2^k` is a normal number, so
/// the scaling is exact. A group of 8 with any other input (a very negative score, NaN) calls
/// `libm::expf` itself.
pub fn softmax_with(level: SimdLevel, x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if level.available() == SimdLevel::Avx2 {
        // SAFETY: the CPU reports AVX2 (`available`); the AVX2 softmax reads and writes only
        // inside `x`.
        unsafe { super::avx2::softmax(x) };
        return;
    }
    let _ = level;
    spec::softmax(x)
}

/// [`super::gelu_tanh_mul`] with a given instruction set: the same bits. The AVX2 path evaluates
/// 8 values per instruction with the exponential of [`softmax_with`] (libm's algorithm, lane
/// by lane), a group of 8 with an exponent outside (−80, 80) calling `libm::expf` itself.
pub fn gelu_mul_with(level: SimdLevel, gate: &[f32], up: &[f32], out: &mut [f32]) {
    gated_mul_with::<true>(level, gate, up, out)
}

/// SiLU(g) · u elementwise (`spec::silu_mul`: `(g / (1 + expf(−g))) * u`, `expf` from libm), on
/// the instruction set `level` (the AVX2 path evaluates libm's `expf` 8 lanes at a time, with the
/// same bits; lanes out of its range use libm itself).
pub fn silu_mul_with(level: SimdLevel, gate: &[f32], up: &[f32], out: &mut [f32]) {
    gated_mul_with::<false>(level, gate, up, out)
}

/// GELU (`GELU`) or SiLU of `gate` times `up`, on `level` or the portable specification.
fn gated_mul_with<const GELU: bool>(level: SimdLevel, gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(gate.len() == out.len() && up.len() == out.len());
    #[cfg(target_arch = "x86_64")]
    if level.available() == SimdLevel::Avx2 {
        // SAFETY: the CPU reports AVX2 (`available`); the three slices have the same length
        // (asserted above), which is all the AVX2 function reads and writes.
        unsafe { super::avx2::gated_mul::<GELU>(gate, up, out) };
        return;
    }
    let _ = level;
    match GELU {
        true => spec::gelu_tanh_mul(gate, up, out),
        false => spec::silu_mul(gate, up, out),
    }
}
