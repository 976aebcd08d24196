//! The specification of determinism profile `mycel-det-v1`: every formula of the kernels once, in
//! plain portable Rust, written in the order of operations that defines its bits (the rules are in
//! the module docs, `mod.rs`). The portable path runs these functions; `avx2.rs` performs per lane
//! exactly their operations, in the same order, and `tests.rs` holds it to them bit for bit.
//!
//! Rust never contracts `a * b + c` into a fused multiply-add and never reorders float operations,
//! so what is written here is what every CPU computes.

use super::{WeightFormat, BLOCK};

/// IEEE half to single precision; exact for every input (subnormals, infinities, NaN).
#[inline]
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match (exponent, mantissa) {
        (0, 0) => 0,
        (0, m) => {
            // Subnormal: m · 2⁻²⁴, normalised.
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (0x1f, m) => 0x7f80_0000 | (m << 13),
        (e, m) => ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(sign | magnitude)
}

// ---- Activations -------------------------------------------------------------------------------

/// Quantizes one block of [`BLOCK`] activations into `q`: `amax = max |x_i|`, `d = amax / 127`,
/// `q_i = clamp(round(x_i * (1/d)), ±127)` with halves rounded away from zero (`1/d` taken as 0
/// when `d = 0`). Returns `d` and the exact sum `Σ q_i`.
#[inline]
pub(super) fn quantize_block(values: &[f32], q: &mut [i8]) -> (f32, i32) {
    debug_assert!(values.len() == BLOCK && q.len() == BLOCK);
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in q.iter_mut().zip(values) {
        let r = (v * inverse).round().clamp(-127.0, 127.0) as i8;
        *q = r;
        sum += i32::from(r);
    }
    (d, sum)
}

/// A block's `s = d * (Σ q_i as f32)`, which a Q4_1 term multiplies by the weights' minimum.
#[inline]
pub(super) fn block_sum(d: f32, qsum: i32) -> f32 {
    d * qsum as f32
}

// ---- Weights -----------------------------------------------------------------------------------

/// One weight block dequantized into `out` ([`BLOCK`] values): `d·w` (Q4_0, Q8_0) or `d·w + m`
/// (Q4_1), each one rounding. `q` holds the block's quantized bytes in the file's order; `m` is
/// read only for Q4_1.
pub(super) fn dequantize_block(format: WeightFormat, d: f32, m: f32, q: &[u8], out: &mut [f32]) {
    match format {
        WeightFormat::Q8_0 => {
            for (o, &v) in out.iter_mut().zip(q) {
                *o = d * f32::from(v as i8);
            }
        }
        WeightFormat::Q4_0 => {
            for j in 0..16 {
                out[j] = d * f32::from((q[j] & 0x0f) as i8 - 8);
                out[j + 16] = d * f32::from((q[j] >> 4) as i8 - 8);
            }
        }
        WeightFormat::Q4_1 => {
            for j in 0..16 {
                out[j] = d * f32::from(q[j] & 0x0f) + m;
                out[j + 16] = d * f32::from(q[j] >> 4) + m;
            }
        }
    }
}

/// The exact integer `isum = Σ w_i a_i` of one weight block (`q`, the file's bytes) and one
/// activation block (`a`, whose sum is `qsum`). Q4_0's `w_i = nibble − 8` is taken as
/// `Σ nibble_i a_i − 8 Σ a_i`, the same integer.
#[inline(always)]
pub(super) fn block_isum(format: WeightFormat, q: &[u8], a: &[i8], qsum: i32) -> i32 {
    match format {
        WeightFormat::Q4_0 => dot_nibbles(q, a) - 8 * qsum,
        WeightFormat::Q4_1 => dot_nibbles(q, a),
        WeightFormat::Q8_0 => q
            .iter()
            .zip(a)
            .map(|(&w, &v)| i32::from(w as i8) * i32::from(v))
            .sum(),
    }
}

/// Σ nibble_j · a_j with the GGUF nibble order: byte `j` holds value `j` (low) and `j + 16` (high).
// Out of line, with the lengths fixed up front: LLVM then compiles it to one vector loop without
// bounds checks (inlined into the portable product's lane loop, the Q4 products ran 2× slower).
#[inline(never)]
fn dot_nibbles(q: &[u8], a: &[i8]) -> i32 {
    let (q, a) = (&q[..16], &a[..BLOCK]);
    let mut sum = 0i32;
    for j in 0..16 {
        sum += i32::from(q[j] & 0x0f) * i32::from(a[j]);
        sum += i32::from(q[j] >> 4) * i32::from(a[j + 16]);
    }
    sum
}

/// One block's term of a row's output: `(d_w * d) * isum`, plus `m_w * s` for Q4_1 (`m_w` is read
/// only for Q4_1). A row's output adds the terms to 0 block by block from the left.
#[inline(always)]
pub(super) fn block_term(
    format: WeightFormat,
    dw: f32,
    mw: f32,
    da: f32,
    sa: f32,
    isum: i32,
) -> f32 {
    let term = (dw * da) * isum as f32;
    match format {
        WeightFormat::Q4_1 => term + mw * sa,
        WeightFormat::Q4_0 | WeightFormat::Q8_0 => term,
    }
}

// ---- Fixed-order sums --------------------------------------------------------------------------

/// The eight lanes combined: `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
#[inline]
pub(super) fn combine_lanes(l: [f32; 8]) -> f32 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// Σ x_i in the fixed eight-lane order: `x_i` added to lane `i mod 8` in index order.
pub fn sum_lanes(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for chunk in &mut chunks {
        for j in 0..8 {
            lanes[j] += chunk[j];
        }
    }
    for (j, &v) in chunks.remainder().iter().enumerate() {
        lanes[j] += v;
    }
    combine_lanes(lanes)
}

/// Σ a_i·b_i in the fixed eight-lane order (each product rounded, then added).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut lanes = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..8 {
            lanes[j] += x[j] * y[j];
        }
    }
    for (j, (&x, &y)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
        lanes[j] += x * y;
    }
    combine_lanes(lanes)
}

/// RMSNorm: `y_i = (x_i * r) * w_i` with `r = 1 / sqrt(Σx²/n + eps)`, `Σx²` the eight-lane
/// [`dot`] of `x` with itself (sqrt and division are correctly rounded in IEEE arithmetic, hence
/// the same everywhere).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mean = dot(x, x) / x.len() as f32;
    let r = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = (v * r) * w;
    }
}

/// In-place softmax: `e_i = expf(x_i − max)`, `p_i = e_i / Σe` (eight-lane sum).
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
    }
    let total = sum_lanes(x);
    for v in x.iter_mut() {
        *v /= total;
    }
}

/// Attention scores of one query head against `scores.len()` cached keys:
/// `scores[j] = dot(q, keys[j * stride + offset..][..q.len()]) * scale`.
pub(super) fn attention_scores(
    q: &[f32],
    keys: &[f32],
    stride: usize,
    offset: usize,
    scale: f32,
    scores: &mut [f32],
) {
    for (j, s) in scores.iter_mut().enumerate() {
        *s = dot(q, &keys[j * stride + offset..][..q.len()]) * scale;
    }
}

/// The attention output of one head: `out[d] = ((0 + w_0·v_0[d]) + w_1·v_1[d]) + …` over the
/// positions in order, each product rounded and then added; `v_j = values[j * stride + offset..]`.
pub(super) fn weighted_sum(
    weights: &[f32],
    values: &[f32],
    stride: usize,
    offset: usize,
    out: &mut [f32],
) {
    out.fill(0.0);
    for (j, &w) in weights.iter().enumerate() {
        let v = &values[j * stride + offset..][..out.len()];
        for (o, &v) in out.iter_mut().zip(v) {
            *o += w * v;
        }
    }
}

// ---- Elementwise -------------------------------------------------------------------------------

/// SiLU(g) · u, elementwise: `(g / (1 + expf(−g))) * u`.
pub fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = (g / (1.0 + libm::expf(-g))) * u;
    }
}

/// Cosines and sines of the RoPE angles at `position` for `half_dim` frequency pairs:
/// `θ_i = position · base^(−2i/dim)`, computed in f64 with libm and rounded to f32.
pub fn rope_angles(position: usize, half_dim: usize, base: f32, cos: &mut [f32], sin: &mut [f32]) {
    let dim = (2 * half_dim) as f64;
    for i in 0..half_dim {
        let frequency = libm::pow(f64::from(base), -((2 * i) as f64) / dim);
        let angle = position as f64 * frequency;
        cos[i] = libm::cos(angle) as f32;
        sin[i] = libm::sin(angle) as f32;
    }
}

/// Rotates consecutive pairs `(x_2i, x_2i+1)` of one head (GGUF llama order):
/// `x' = x·c − y·s`, `y' = x·s + y·c`.
pub fn rope_rotate(head: &mut [f32], cos: &[f32], sin: &[f32]) {
    for (i, pair) in head.chunks_exact_mut(2).enumerate() {
        let (x, y) = (pair[0], pair[1]);
        pair[0] = x * cos[i] - y * sin[i];
        pair[1] = x * sin[i] + y * cos[i];
    }
}
