//! The specification of determinism profile `mycel-det-v1`: every formula of the kernels once, in
//! plain portable Rust, written in the order of operations that defines its bits (the rules are in
//! the module docs, `mod.rs`). The portable path runs these functions; `avx2.rs` performs per lane
//! exactly their operations, in the same order, and `tests.rs` holds it to them bit for bit.
//!
//! Rust never contracts `a * b + c` into a fused multiply-add and never reorders float operations,
//! so what is written here is what every CPU computes.

use super::{WeightFormat, BLOCK, SUPER_BLOCK};

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

/// Quantizes one block of [`BLOCK`] (or, for k-quant weights, [`SUPER_BLOCK`]) activations into
/// `q`: `amax = max |x_i|`, `d = amax / 127`, `q_i = clamp(round(x_i * (1/d)), ±127)` with halves
/// rounded away from zero (`1/d` taken as 0 when `d = 0`). Returns `d` and the exact sum `Σ q_i`.
#[inline]
pub(super) fn quantize_block(values: &[f32], q: &mut [i8]) -> (f32, i32) {
    debug_assert!(
        values.len() == q.len() && (values.len() == BLOCK || values.len() == SUPER_BLOCK)
    );
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

/// One weight block dequantized into `out` ([`WeightFormat::block_len`] values): `d·w` (Q4_0,
/// Q5_0, Q8_0), `d·w + m` (Q4_1), `(d·sc)·q − dmin·m` (Q4_K), `(d·sc)·w` (Q6_K), as ggml's
/// dequantization rounds them. `q` holds the block's bytes without its f16 scales, in the file's
/// order; `m` is read only for Q4_1 and Q4_K.
pub(super) fn dequantize_block(format: WeightFormat, d: f32, m: f32, q: &[u8], out: &mut [f32]) {
    match format {
        WeightFormat::Q5_0 => {
            for (o, w) in out.iter_mut().zip(q5_0_values(q)) {
                *o = d * f32::from(w);
            }
        }
        WeightFormat::Q4_K => {
            let (scales, mins) = q4_k_scales(&q[..12]);
            let values = q4_k_values(&q[12..]);
            for (s, (out, values)) in out
                .chunks_exact_mut(32)
                .zip(values.chunks_exact(32))
                .enumerate()
            {
                let (d1, m1) = (d * f32::from(scales[s]), m * f32::from(mins[s]));
                for (o, &v) in out.iter_mut().zip(values) {
                    *o = d1 * f32::from(v) - m1;
                }
            }
        }
        WeightFormat::Q6_K => {
            let values = q6_k_values(q);
            for (s, (out, values)) in out
                .chunks_exact_mut(16)
                .zip(values.chunks_exact(16))
                .enumerate()
            {
                let scale = d * f32::from(q[192 + s] as i8);
                for (o, &v) in out.iter_mut().zip(values) {
                    *o = scale * f32::from(v);
                }
            }
        }
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

/// The exact integer `isum = Σ w_i a_i` of one 32-value weight block (`q`, the file's bytes) and
/// one activation block (`a`, whose sum is `qsum`). Q4_0's `w_i = nibble − 8` is taken as
/// `Σ nibble_i a_i − 8 Σ a_i`, the same integer.
#[inline(always)]
pub(super) fn block_isum(format: WeightFormat, q: &[u8], a: &[i8], qsum: i32) -> i32 {
    match format {
        WeightFormat::Q4_0 => dot_nibbles(q, a) - 8 * qsum,
        WeightFormat::Q4_1 => dot_nibbles(q, a),
        WeightFormat::Q5_0 => dot_q5_0(q, a),
        WeightFormat::Q8_0 => q
            .iter()
            .zip(a)
            .map(|(&w, &v)| i32::from(w as i8) * i32::from(v))
            .sum(),
        WeightFormat::Q4_K | WeightFormat::Q6_K => unreachable!("a k-quant has superblocks"),
    }
}

/// The 32 weights of a Q5_0 block (`q` = the 4 bytes of high bits, then the 16 of nibbles):
/// byte `j`'s low nibble is value `j`, its high nibble value `j + 16`; bit `i` of the
/// little-endian high-bit word is the fifth bit of value `i`; `w = (nibble | high << 4) − 16`.
#[inline]
pub(super) fn q5_0_values(q: &[u8]) -> [i8; BLOCK] {
    let high = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
    let nibbles = &q[4..20];
    let mut w = [0i8; BLOCK];
    for j in 0..16 {
        let h0 = ((high >> j) & 1) as u8;
        let h1 = ((high >> (j + 16)) & 1) as u8;
        w[j] = ((nibbles[j] & 0x0f) | (h0 << 4)) as i8 - 16;
        w[j + 16] = ((nibbles[j] >> 4) | (h1 << 4)) as i8 - 16;
    }
    w
}

#[inline(never)]
fn dot_q5_0(q: &[u8], a: &[i8]) -> i32 {
    let w = q5_0_values(q);
    let a = &a[..BLOCK];
    let mut sum = 0i32;
    for j in 0..BLOCK {
        sum += i32::from(w[j]) * i32::from(a[j]);
    }
    sum
}

/// The 6-bit scales and minimums of a Q4_K superblock's 8 sub-blocks from its 12 packed bytes
/// (ggml's `get_scale_min_k4`).
#[inline]
pub(super) fn q4_k_scales(packed: &[u8]) -> ([u8; 8], [u8; 8]) {
    let q = &packed[..12];
    let (mut scales, mut mins) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        if j < 4 {
            scales[j] = q[j] & 63;
            mins[j] = q[j + 4] & 63;
        } else {
            scales[j] = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
            mins[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
    (scales, mins)
}

/// The 256 nibbles of a Q4_K superblock (`qs`, 128 bytes): for each 64 values, 32 bytes whose
/// low nibbles are the first 32 values and high nibbles the next 32.
#[inline]
pub(super) fn q4_k_values(qs: &[u8]) -> [u8; SUPER_BLOCK] {
    let mut w = [0u8; SUPER_BLOCK];
    for (w, qs) in w.chunks_exact_mut(64).zip(qs[..128].chunks_exact(32)) {
        for l in 0..32 {
            w[l] = qs[l] & 0x0f;
            w[l + 32] = qs[l] >> 4;
        }
    }
    w
}

/// The 256 weights `q − 32` of a Q6_K superblock (`q` = 128 bytes of low nibbles `ql`, then 64
/// of high bit pairs `qh`): for each half of 128 values, `ql[l]`, `ql[l + 32]` hold the low
/// nibbles of values `l`, `l + 32` (low) and `l + 64`, `l + 96` (high), and `qh[l]`'s bit pairs
/// 0–1, 2–3, 4–5, 6–7 their high bits.
#[inline]
pub(super) fn q6_k_values(q: &[u8]) -> [i8; SUPER_BLOCK] {
    let mut w = [0i8; SUPER_BLOCK];
    for half in 0..2 {
        let ql = &q[64 * half..][..64];
        let qh = &q[128 + 32 * half..][..32];
        let w = &mut w[128 * half..][..128];
        for l in 0..32 {
            w[l] = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
            w[l + 32] = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            w[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            w[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    w
}

/// One superblock's term of a k-quant row's output, against a 256-value activation block (`a`,
/// scale `da`, 16-value sums `sums16`):
/// - Q4_K: `isum = Σ_s sc_s · Σ_{i∈s} q_i a_i` and `msum = Σ_s m_s · Σ_{i∈s} a_i` over the 8
///   sub-blocks of 32, both exact; the term is `(d_w * da) * isum − (dmin_w * da) * msum`.
/// - Q6_K: `isum = Σ_s sc_s · Σ_{i∈s} w_i a_i` over the 16 sub-blocks of 16, exact; the term is
///   `(d_w * da) * isum`.
///
/// The integers convert to f32 with one rounding to nearest (they may exceed 2²⁴).
pub(super) fn superblock_term(
    format: WeightFormat,
    dw: f32,
    mw: f32,
    da: f32,
    q: &[u8],
    a: &[i8],
    sums16: &[i32],
) -> f32 {
    let (isum, msum) = superblock_isums(format, q, a, sums16);
    let term = (dw * da) * isum as f32;
    match format {
        WeightFormat::Q4_K => term - (mw * da) * msum as f32,
        _ => term,
    }
}

/// The exact integers `(isum, msum)` of [`superblock_term`] (`msum` is 0 for Q6_K).
#[inline(never)]
pub(super) fn superblock_isums(
    format: WeightFormat,
    q: &[u8],
    a: &[i8],
    sums16: &[i32],
) -> (i32, i32) {
    let a = &a[..SUPER_BLOCK];
    match format {
        WeightFormat::Q4_K => {
            let (scales, mins) = q4_k_scales(&q[..12]);
            let w = q4_k_values(&q[12..140]);
            let (mut isum, mut msum) = (0i32, 0i32);
            for s in 0..8 {
                let mut sub = 0i32;
                for i in 32 * s..32 * s + 32 {
                    sub += i32::from(w[i]) * i32::from(a[i]);
                }
                isum += i32::from(scales[s]) * sub;
                msum += i32::from(mins[s]) * (sums16[2 * s] + sums16[2 * s + 1]);
            }
            (isum, msum)
        }
        WeightFormat::Q6_K => {
            let w = q6_k_values(&q[..192]);
            let mut isum = 0i32;
            for s in 0..16 {
                let mut sub = 0i32;
                for i in 16 * s..16 * s + 16 {
                    sub += i32::from(w[i]) * i32::from(a[i]);
                }
                isum += i32::from(q[192 + s] as i8) * sub;
            }
            (isum, 0)
        }
        _ => unreachable!("{} has blocks of 32", format.name()),
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
        _ => term,
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

/// GELU(g) · u with GELU's tanh approximation, elementwise. `0.5·(1 + tanh(z)) = 1 / (1 +
/// e^(−2z))`, so with `z = √(2/π)·g·(1 + 0.044715·g²)` it is computed, like SiLU, as
/// `(g / (1 + expf(−u))) * up` with `u = (2√(2/π) * g) * (1 + (0.044715 * g) * g)`, `expf` from
/// libm (one exponential, which the AVX2 path evaluates 8 lanes at a time).
pub fn gelu_tanh_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = (g / (1.0 + libm::expf(-gelu_exponent(g)))) * u;
    }
}

/// Twice the tanh argument of GELU: `(2√(2/π) * g) * (1 + (0.044715 * g) * g)`.
#[inline]
pub(super) fn gelu_exponent(g: f32) -> f32 {
    (GELU_TWO_SQRT_2_OVER_PI * g) * (1.0 + (GELU_COEF_A * g) * g)
}

pub(super) const GELU_TWO_SQRT_2_OVER_PI: f32 = 1.595_769;
pub(super) const GELU_COEF_A: f32 = 0.044_715;

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

/// Rotates the pairs `(x_i, x_{i+half})` of one head (NEOX order, Gemma's):
/// `x' = x·c − y·s`, `y' = x·s + y·c`.
pub fn rope_rotate_halves(head: &mut [f32], cos: &[f32], sin: &[f32]) {
    let (first, second) = head.split_at_mut(head.len() / 2);
    for (i, (x, y)) in first.iter_mut().zip(second.iter_mut()).enumerate() {
        let (a, b) = (*x, *y);
        *x = a * cos[i] - b * sin[i];
        *y = a * sin[i] + b * cos[i];
    }
}
