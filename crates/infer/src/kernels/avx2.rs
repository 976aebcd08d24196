//! The AVX2 (and F16C) kernels: the products, the activation quantization, softmax and attention,
//! each performing per lane exactly the operations of `spec.rs`, in the same order, so that they
//! give its bits (`tests.rs` checks it). Integer sums are exact, so only their results, not their
//! grouping, must match.
//!
//! Every function here is compiled with `#[target_feature]` and is only called after
//! `SimdLevel::available` (in `mod.rs`) saw AVX2 and F16C on the CPU: that check is what makes the
//! calls from `matmul.rs`, `quantize.rs` and `reductions.rs` sound. Loads and stores are unaligned
//! (`loadu`/`storeu`), so only their bounds need arguing, at each `unsafe` block.

use std::arch::x86_64::*;

use super::{spec, QMatrix, QuantizedActivations, WeightFormat, BLOCK, GROUP, SUPER_BLOCK};

/// Sums each of 8 vectors of 8 i32 into lane `i` of the result (exact integer adds).
#[inline]
#[target_feature(enable = "avx2")]
fn reduce8(v: [__m256i; 8]) -> __m256i {
    let s01 = _mm256_hadd_epi32(v[0], v[1]);
    let s23 = _mm256_hadd_epi32(v[2], v[3]);
    let s45 = _mm256_hadd_epi32(v[4], v[5]);
    let s67 = _mm256_hadd_epi32(v[6], v[7]);
    let t0 = _mm256_hadd_epi32(s01, s23);
    let t1 = _mm256_hadd_epi32(s45, s67);
    let low = _mm256_permute2x128_si256(t0, t1, 0x20);
    let high = _mm256_permute2x128_si256(t0, t1, 0x31);
    _mm256_add_epi32(low, high)
}

/// [`super::attention_scores`] for a head size that is a multiple of 8. Per key, lane `l` of
/// its accumulator adds `q_i * k_i` for `i ≡ l (mod 8)` in order, from 0, exactly as
/// [`super::dot`]; the lanes of 8 keys are then combined by horizontal adds in the order
/// `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))` (IEEE addition is commutative, so
/// `hadd`'s operand order changes nothing).
///
/// # Safety
/// The CPU has AVX2; `q.len()` is a multiple of 8 and every key is inside `keys`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn attention_scores(
    q: &[f32],
    keys: &[f32],
    stride: usize,
    offset: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let chunks = q.len() / 8;
    let scale_lanes = _mm256_set1_ps(scale);
    // SAFETY: the caller checked `(scores.len() − 1) * stride + offset + q.len() <= keys.len()`,
    // and `key` is only called with `j < scores.len()`: the pointer stays inside `keys`.
    let key = |j: usize| unsafe { keys.as_ptr().add(j * stride + offset) };
    let one_key = |j: usize| {
        let mut acc = _mm256_setzero_ps();
        for c in 0..chunks {
            // SAFETY: chunk `c` of `q` and of key `j` are in bounds (checked by the caller).
            let (qv, kv) = unsafe {
                (
                    _mm256_loadu_ps(q.as_ptr().add(8 * c)),
                    _mm256_loadu_ps(key(j).add(8 * c)),
                )
            };
            acc = _mm256_add_ps(acc, _mm256_mul_ps(qv, kv));
        }
        acc
    };
    let whole = scores.len() / 8 * 8;
    for first in (0..whole).step_by(8) {
        let mut acc = [_mm256_setzero_ps(); 8];
        for c in 0..chunks {
            // SAFETY: `8c + 8 <= q.len()`.
            let qv = unsafe { _mm256_loadu_ps(q.as_ptr().add(8 * c)) };
            for (k, acc) in acc.iter_mut().enumerate() {
                // SAFETY: key `first + k < scores.len()` is in bounds, and so is its chunk `c`.
                let kv = unsafe { _mm256_loadu_ps(key(first + k).add(8 * c)) };
                *acc = _mm256_add_ps(*acc, _mm256_mul_ps(qv, kv));
            }
        }
        // Per key k: [l0+l1, l2+l3, ...] pairs, then quads, then the two halves.
        let t0 = _mm256_hadd_ps(
            _mm256_hadd_ps(acc[0], acc[1]),
            _mm256_hadd_ps(acc[2], acc[3]),
        );
        let t1 = _mm256_hadd_ps(
            _mm256_hadd_ps(acc[4], acc[5]),
            _mm256_hadd_ps(acc[6], acc[7]),
        );
        let low = _mm256_permute2f128_ps(t0, t1, 0x20);
        let high = _mm256_permute2f128_ps(t0, t1, 0x31);
        let dots = _mm256_add_ps(low, high);
        // SAFETY: `first + 8 <= scores.len()`.
        unsafe {
            _mm256_storeu_ps(
                scores.as_mut_ptr().add(first),
                _mm256_mul_ps(dots, scale_lanes),
            )
        };
    }
    for (j, s) in scores.iter_mut().enumerate().skip(whole) {
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), one_key(j)) };
        *s = spec::combine_lanes(lanes) * scale;
    }
}

/// `libm::expf` (libm 0.2's port of FreeBSD `e_expf.c`) on 8 inputs, each in (−80, 80).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn expf_in_range(x: __m256) -> __m256 {
    // libm's constants, by their bits.
    const LN2_HI: f32 = f32::from_bits(0x3f317200); // 0.69314575195
    const LN2_LO: f32 = f32::from_bits(0x35bfbe8e); // 1.4286067653e-06
    const INV_LN2: f32 = f32::from_bits(0x3fb8aa3b); // 1.4426950216
    const P1: f32 = f32::from_bits(0x3e2aaa8f); // 0.1666662544
    const P2: f32 = f32::from_bits(0xbb355215); // -0.0027667332906
    let bits = _mm256_castps_si256(x);
    let magnitude = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fff_ffff));
    let negative = _mm256_srai_epi32(bits, 31); // all ones where the sign bit is set
    let above = |limit: i32| _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(limit));
    // |x| > 1.5 ln2: k = trunc(INV_LN2 * x ± 0.5); 0.5 ln2 < |x| ≤ 1.5 ln2: k = ±1; else 0.
    let half = _mm256_blendv_ps(
        _mm256_set1_ps(0.5),
        _mm256_set1_ps(-0.5),
        _mm256_castsi256_ps(negative),
    );
    let k_far = _mm256_cvttps_epi32(_mm256_add_ps(
        _mm256_mul_ps(_mm256_set1_ps(INV_LN2), x),
        half,
    ));
    let k_near = _mm256_or_si256(negative, _mm256_set1_epi32(1)); // -1 or 1
    let reduce = above(0x3eb1_7218);
    let k = _mm256_blendv_epi8(k_near, k_far, above(0x3f85_1592));
    let k = _mm256_and_si256(k, reduce);
    let kf = _mm256_cvtepi32_ps(k);
    let reduce_ps = _mm256_castsi256_ps(reduce);
    let hi = _mm256_blendv_ps(
        x,
        _mm256_sub_ps(x, _mm256_mul_ps(kf, _mm256_set1_ps(LN2_HI))),
        reduce_ps,
    );
    let lo = _mm256_and_ps(_mm256_mul_ps(kf, _mm256_set1_ps(LN2_LO)), reduce_ps);
    let r = _mm256_blendv_ps(x, _mm256_sub_ps(hi, lo), reduce_ps);
    let rr = _mm256_mul_ps(r, r);
    let c = _mm256_sub_ps(
        r,
        _mm256_mul_ps(
            rr,
            _mm256_add_ps(_mm256_set1_ps(P1), _mm256_mul_ps(rr, _mm256_set1_ps(P2))),
        ),
    );
    let one = _mm256_set1_ps(1.0);
    let quotient = _mm256_div_ps(_mm256_mul_ps(r, c), _mm256_sub_ps(_mm256_set1_ps(2.0), c));
    let y = _mm256_add_ps(one, _mm256_add_ps(_mm256_sub_ps(quotient, lo), hi));
    // 2^k is normal for |k| ≤ 116, so y · 2^k is exact, as libm's scalbnf is.
    let scale = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_add_epi32(k, _mm256_set1_epi32(127)),
        23,
    ));
    let general = _mm256_mul_ps(y, scale);
    // |x| ≤ 2⁻¹⁴: 1 + x.
    let tiny = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
        _mm256_set1_epi32(0x3900_0001),
        magnitude,
    ));
    _mm256_blendv_ps(general, _mm256_add_ps(one, x), tiny)
}

/// [`super::softmax`], 8 values at a time (see [`super::softmax_with`]).
///
/// # Safety
/// The CPU has AVX2. (Every access is inside `x`: whole chunks of 8, then the remainder.)
#[target_feature(enable = "avx2")]
pub(super) unsafe fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let max_lanes = _mm256_set1_ps(max);
    let limit = _mm256_set1_ps(80.0);
    let mut chunks = x.chunks_exact_mut(8);
    let mut sums = _mm256_setzero_ps();
    for chunk in &mut chunks {
        // SAFETY: `chunk` holds 8 f32.
        let v = unsafe { _mm256_loadu_ps(chunk.as_ptr()) };
        let shifted = _mm256_sub_ps(v, max_lanes);
        // In range: |shifted| < 80 (false for NaN).
        let in_range =
            _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_andnot_ps(_mm256_set1_ps(-0.0), shifted), limit);
        let e = if _mm256_movemask_ps(in_range) == 0xff {
            expf_in_range(shifted)
        } else {
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds 8 f32.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), shifted) };
            for v in &mut lanes {
                *v = libm::expf(*v);
            }
            // SAFETY: `lanes` holds 8 f32.
            unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
        };
        // SAFETY: `chunk` holds 8 f32.
        unsafe { _mm256_storeu_ps(chunk.as_mut_ptr(), e) };
        sums = _mm256_add_ps(sums, e);
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds 8 f32.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sums) };
    for (lane, v) in lanes.iter_mut().zip(chunks.into_remainder()) {
        *v = libm::expf(*v - max);
        *lane += *v;
    }
    let total = spec::combine_lanes(lanes);
    let total_lanes = _mm256_set1_ps(total);
    let mut chunks = x.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // SAFETY: `chunk` holds 8 f32.
        unsafe {
            let v = _mm256_loadu_ps(chunk.as_ptr());
            _mm256_storeu_ps(chunk.as_mut_ptr(), _mm256_div_ps(v, total_lanes));
        }
    }
    for v in chunks.into_remainder() {
        *v /= total;
    }
}

/// [`super::gelu_mul_with`] (`GELU`) and [`super::silu_mul_with`]: per lane the operations of
/// `spec::gelu_tanh_mul` or `spec::silu_mul`, 8 at a time.
///
/// # Safety
/// The CPU has AVX2; `gate`, `up` and `out` have the same length.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn gated_mul<const GELU: bool>(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let whole = out.len() / 8 * 8;
    let c = _mm256_set1_ps(spec::GELU_TWO_SQRT_2_OVER_PI);
    let a = _mm256_set1_ps(spec::GELU_COEF_A);
    let one = _mm256_set1_ps(1.0);
    let limit = _mm256_set1_ps(80.0);
    for i in (0..whole).step_by(8) {
        // SAFETY: `i + 8 <= whole <= len` for all three slices (the caller's contract).
        let (g, u) = unsafe {
            (
                _mm256_loadu_ps(gate.as_ptr().add(i)),
                _mm256_loadu_ps(up.as_ptr().add(i)),
            )
        };
        let minus = if GELU {
            let exponent = _mm256_mul_ps(
                _mm256_mul_ps(c, g),
                _mm256_add_ps(one, _mm256_mul_ps(_mm256_mul_ps(a, g), g)),
            );
            _mm256_sub_ps(_mm256_setzero_ps(), exponent)
        } else {
            // −g exactly: the sign bit flipped.
            _mm256_xor_ps(g, _mm256_set1_ps(-0.0))
        };
        let in_range =
            _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_andnot_ps(_mm256_set1_ps(-0.0), minus), limit);
        let e = if _mm256_movemask_ps(in_range) == 0xff {
            expf_in_range(minus)
        } else {
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds 8 f32.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), minus) };
            for v in &mut lanes {
                *v = libm::expf(*v);
            }
            // SAFETY: `lanes` holds 8 f32.
            unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
        };
        let value = _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u);
        // SAFETY: `i + 8 <= out.len()`.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(i), value) };
    }
    match GELU {
        true => spec::gelu_tanh_mul(&gate[whole..], &up[whole..], &mut out[whole..]),
        false => spec::silu_mul(&gate[whole..], &up[whole..], &mut out[whole..]),
    }
}

/// One block of [`super::QuantizedActivations::quantize`] with the same operations, 8 values
/// per instruction: `amax`, `d = amax / 127`, `q_i = clamp(round(x_i * (1/d)), ±127)` with
/// halves rounded away from zero (`t = trunc(y)`, plus `±1` where `|y − t| ≥ 0.5`; `y − t`
/// is exact), the exact integer sum. Returns `None`, leaving the block to the portable code,
/// when a value or `1/d` is not finite (where `max`, `min` and the float-to-int conversion
/// differ from the scalar code).
///
/// # Safety
/// The CPU has AVX2. (`values` must hold [`BLOCK`] values, which is asserted.)
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_block(values: &[f32], q: &mut [i8; BLOCK]) -> Option<(f32, i32)> {
    assert_eq!(values.len(), BLOCK);
    let sign_bit = _mm256_set1_ps(-0.0);
    // SAFETY: `values` holds 32 f32 (asserted above), so chunk `c < 4` is in bounds.
    let v: [__m256; 4] =
        std::array::from_fn(|c| unsafe { _mm256_loadu_ps(values.as_ptr().add(8 * c)) });
    let abs: [__m256; 4] = std::array::from_fn(|c| _mm256_andnot_ps(sign_bit, v[c]));
    // Finite: |x| < ∞ (false for NaN).
    let infinity = _mm256_set1_ps(f32::INFINITY);
    let finite = abs.iter().fold(0xff, |all, &a| {
        all & _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(a, infinity))
    });
    if finite != 0xff {
        return None;
    }
    let m = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds 8 f32.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m) };
    // The maximum of finite non-negative values does not depend on the order.
    let amax = lanes.iter().fold(0f32, |m, &v| m.max(v));
    let d = amax / 127.0;
    let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
    if !inverse.is_finite() {
        // A subnormal scale: products may be infinite or NaN, left to the portable code.
        return None;
    }
    // SAFETY: `q` holds 32 bytes.
    unsafe { round_32(&v, _mm256_set1_ps(inverse), q.as_mut_ptr()) };
    let sum = q.iter().map(|&v| i32::from(v)).sum();
    Some((d, sum))
}

/// `q_i = clamp(round(v_i * inverse), ±127)` (halves away from zero) for 32 finite values, stored
/// as bytes at `q`: the rounding of [`quantize_block`].
///
/// # Safety
/// The CPU has AVX2; `q` points to 32 writable bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn round_32(v: &[__m256; 4], inverse: __m256, q: *mut i8) {
    let sign_bit = _mm256_set1_ps(-0.0);
    let half = _mm256_set1_ps(0.5);
    let one = _mm256_set1_ps(1.0);
    let limit = _mm256_set1_ps(127.0);
    let mut ints = [_mm256_setzero_si256(); 4];
    for (c, int) in ints.iter_mut().enumerate() {
        let y = _mm256_mul_ps(v[c], inverse);
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
        let away =
            _mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_andnot_ps(sign_bit, _mm256_sub_ps(y, t)), half);
        // ±1 with the sign of y, where the fraction is at least a half.
        let step = _mm256_and_ps(away, _mm256_or_ps(one, _mm256_and_ps(sign_bit, y)));
        let r = _mm256_add_ps(t, step);
        let r = _mm256_min_ps(
            _mm256_max_ps(r, _mm256_sub_ps(_mm256_setzero_ps(), limit)),
            limit,
        );
        *int = _mm256_cvttps_epi32(r);
    }
    // i32 → i16 → i8 (values within ±127: no saturation); packs work per 128-bit half.
    let w01 = _mm256_packs_epi32(ints[0], ints[1]);
    let w23 = _mm256_packs_epi32(ints[2], ints[3]);
    let bytes = _mm256_packs_epi16(w01, w23);
    let ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    // SAFETY: `q` points to 32 writable bytes (the caller's contract).
    unsafe { _mm256_storeu_si256(q.cast(), ordered) };
}

/// [`quantize_block`] for a superblock ([`SUPER_BLOCK`] values, one scale): the same operations
/// as `spec::quantize_block` over 256 values. `None` in the same cases.
///
/// # Safety
/// The CPU has AVX2. (`values` and `q` must hold [`SUPER_BLOCK`] values, which is asserted.)
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_span(values: &[f32], q: &mut [i8]) -> Option<(f32, i32)> {
    assert!(values.len() == SUPER_BLOCK && q.len() == SUPER_BLOCK);
    let sign_bit = _mm256_set1_ps(-0.0);
    let infinity = _mm256_set1_ps(f32::INFINITY);
    let mut m = _mm256_setzero_ps();
    let mut finite = 0xff;
    for c in 0..SUPER_BLOCK / 8 {
        // SAFETY: chunk `c < 32` of the 256 values (asserted above).
        let a = _mm256_andnot_ps(sign_bit, unsafe {
            _mm256_loadu_ps(values.as_ptr().add(8 * c))
        });
        finite &= _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(a, infinity));
        m = _mm256_max_ps(m, a);
    }
    if finite != 0xff {
        return None;
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds 8 f32.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m) };
    // The maximum of finite non-negative values does not depend on the order.
    let amax = lanes.iter().fold(0f32, |m, &v| m.max(v));
    let d = amax / 127.0;
    let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
    if !inverse.is_finite() {
        return None;
    }
    let inverse = _mm256_set1_ps(inverse);
    for c in 0..SUPER_BLOCK / 32 {
        // SAFETY: values `32c..32c + 32` are inside `values`, and bytes `32c..32c + 32` inside
        // `q` (asserted above).
        unsafe {
            let v: [__m256; 4] =
                std::array::from_fn(|k| _mm256_loadu_ps(values.as_ptr().add(32 * c + 8 * k)));
            round_32(&v, inverse, q.as_mut_ptr().add(32 * c));
        }
    }
    let sum = q.iter().map(|&v| i32::from(v)).sum();
    Some((d, sum))
}

/// [`super::weighted_sum`] for a head size that is a multiple of 8: per output component the
/// same products and additions, in position order, 8 components per register.
///
/// # Safety
/// The CPU has AVX2; `out.len()` is a multiple of 8 and every value row is inside `values`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn weighted_sum(
    weights: &[f32],
    values: &[f32],
    stride: usize,
    offset: usize,
    out: &mut [f32],
) {
    let chunks = out.len() / 8;
    let mut c = 0;
    while c < chunks {
        // Up to 4 registers of output at once, kept in registers across all positions.
        let width = (chunks - c).min(4);
        let mut acc = [_mm256_setzero_ps(); 4];
        for (j, &w) in weights.iter().enumerate() {
            let w = _mm256_set1_ps(w);
            // SAFETY: row `j < weights.len()` is inside `values` (the caller's contract), and
            // `8(c + width) <= out.len()`, the row's length.
            let row = unsafe { values.as_ptr().add(j * stride + offset + 8 * c) };
            for (r, acc) in acc[..width].iter_mut().enumerate() {
                // SAFETY: components `8(c + r)..8(c + r + 1)` of row `j`, inside it (above).
                let v = unsafe { _mm256_loadu_ps(row.add(8 * r)) };
                *acc = _mm256_add_ps(*acc, _mm256_mul_ps(w, v));
            }
        }
        for (r, acc) in acc[..width].iter().enumerate() {
            // SAFETY: components `8(c + r)..8(c + r + 1)` are inside `out` (`c + r < chunks`).
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * (c + r)), *acc) };
        }
        c += width;
    }
}

/// Same operations per lane as `QMatrix::group_dot_portable`, for `T` consecutive tokens
/// starting at `token` (each weight block is unpacked once for all of them); row `8·group + l`'s
/// output for token `token + t` goes to `lanes[t][l]`.
///
/// # Safety
/// The CPU has AVX2 and F16C; `group < m.rows.div_ceil(8)`, `token + T <= x.tokens`,
/// `x.blocks == m.blocks` and `lanes.len() >= T`. Then every load below is inside the matrix,
/// which stores whole groups of 8 rows (padding rows are zero), and inside `x`.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn group_dot<const T: usize>(
    m: &QMatrix,
    group: usize,
    x: &QuantizedActivations,
    token: usize,
    lanes: &mut [[f32; GROUP]],
) {
    debug_assert!(
        group < m.rows.div_ceil(GROUP)
            && token + T <= x.tokens
            && x.blocks == m.blocks
            && lanes.len() >= T
    );
    // SAFETY: the caller's contract, passed on unchanged.
    unsafe {
        match m.format {
            WeightFormat::Q4_0 => group_dot_q4::<T, false>(m, group, x, token, lanes),
            WeightFormat::Q4_1 => group_dot_q4::<T, true>(m, group, x, token, lanes),
            WeightFormat::Q8_0 => group_dot_q8::<T, false>(m, group, x, token, lanes),
            WeightFormat::Q5_0 => group_dot_q8::<T, true>(m, group, x, token, lanes),
            WeightFormat::Q4_K => group_dot_q4_k::<T>(m, group, x, token, lanes),
            WeightFormat::Q6_K => group_dot_q6_k::<T>(m, group, x, token, lanes),
        }
    }
}

/// [`group_dot`] for Q4_0 (`MIN = false`) and Q4_1 (`MIN = true`), the format fixed at compile
/// time. The group-block's bytes are interleaved in 4-byte pieces (`matrix.rs`): one 32-byte
/// load holds piece `c` of all 8 rows, whose low nibbles are values `4c..4c + 4` and high
/// nibbles values `16 + 4c..` of each row. Against the token's 4 matching activation bytes,
/// broadcast, `maddubs` gives each row's pair sums in its own 4 bytes; 8 of them add up in 16
/// bits without overflow (|2 · 15 · 128| · 8 = 30,720), and one `madd` leaves row `i`'s integer
/// sum in 32-bit lane `i` — no horizontal adds. Integer sums are exact, so their grouping is
/// free; the f32 operations per (row, token) are those of `spec::block_term`, in the same order.
///
/// # Safety
/// As for [`group_dot`], with `m.format` Q4_0 or Q4_1 (16 quantized bytes per block,
/// interleaved).
#[target_feature(enable = "avx2,f16c")]
unsafe fn group_dot_q4<const T: usize, const MIN: bool>(
    m: &QMatrix,
    group: usize,
    x: &QuantizedActivations,
    token: usize,
    lanes: &mut [[f32; GROUP]],
) {
    let ones = _mm256_set1_epi16(1);
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); T];
    for block in 0..m.blocks {
        // Slots `base..base + 8` are this block of the group's 8 rows: `base + 8 <=
        // scales.len()` (and `mins.len()` for Q4_1), `(base + 8) * 16 <= quants.len()`.
        let base = (group * m.blocks + block) * GROUP;
        // SAFETY: `base * 16 + 128 <= quants.len()` (above).
        let q = unsafe { m.quants.as_ptr().add(base * 16) };
        let mut low = [_mm256_setzero_si256(); 4];
        let mut high = [_mm256_setzero_si256(); 4];
        for piece in 0..4 {
            // SAFETY: piece `piece` of the 8 rows: 32 bytes inside the 128 above.
            let packed = unsafe { _mm256_loadu_si256(q.add(piece * 32).cast()) };
            low[piece] = _mm256_and_si256(packed, low_nibbles);
            high[piece] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibbles);
        }
        // F16C widening is exact, like `spec::f16_to_f32`.
        // SAFETY: the 8 scales of slots `base..base + 8`, inside `scales` (above).
        let dw = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(m.scales.as_ptr().add(base).cast()) });
        let mw = if MIN {
            // SAFETY: Q4_1 stores a minimum per slot, as many as scales (above).
            _mm256_cvtph_ps(unsafe { _mm_loadu_si128(m.mins.as_ptr().add(base).cast()) })
        } else {
            _mm256_setzero_ps()
        };
        for (t, acc) in acc.iter_mut().enumerate() {
            let at = (token + t) * x.blocks + block;
            // SAFETY: `token + t < x.tokens` and `block < x.blocks`: the block's 32 bytes are
            // inside `x.q`; they are read as 8 unaligned 4-byte pieces.
            let a = unsafe { x.q.as_ptr().add(at * BLOCK) } as *const i32;
            let mut sums = _mm256_setzero_si256();
            for piece in 0..4 {
                // SAFETY: pieces `piece` and `4 + piece` of the block's 32 bytes (above).
                let (a_low, a_high) = unsafe {
                    (
                        _mm256_set1_epi32(a.add(piece).read_unaligned()),
                        _mm256_set1_epi32(a.add(4 + piece).read_unaligned()),
                    )
                };
                sums = _mm256_add_epi16(sums, _mm256_maddubs_epi16(low[piece], a_low));
                sums = _mm256_add_epi16(sums, _mm256_maddubs_epi16(high[piece], a_high));
            }
            let mut isum = _mm256_madd_epi16(sums, ones);
            if !MIN {
                isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(8 * x.qsum[at]));
            }
            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(x.d[at]));
            let mut term = _mm256_mul_ps(scale, _mm256_cvtepi32_ps(isum));
            if MIN {
                term = _mm256_add_ps(term, _mm256_mul_ps(mw, _mm256_set1_ps(x.s[at])));
            }
            *acc = _mm256_add_ps(*acc, term);
        }
    }
    for (lanes, acc) in lanes.iter_mut().zip(acc) {
        // SAFETY: each row of `lanes` holds exactly 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    }
}

/// The 32 signed weights `(nibble | high << 4) − 16` of a Q5_0 block whose 20 bytes (4 of high
/// bits, 16 of nibbles) start at `q` (llama.cpp's `bytes_from_bits_32` trick: a byte becomes
/// `0xF0 | nibble`, i.e. `nibble − 16`, where its high bit is clear).
///
/// # Safety
/// The CPU has AVX2; `q` points to 20 readable bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn q5_0_weights(q: *const u8) -> __m256i {
    // SAFETY: 20 readable bytes at `q` (the caller's contract).
    let (high, packed) = unsafe {
        (
            (q as *const u32).read_unaligned(),
            _mm_loadu_si128(q.add(4).cast()),
        )
    };
    let low_nibbles = _mm_set1_epi8(0x0f);
    let nibbles = _mm256_set_m128i(
        _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibbles),
        _mm_and_si128(packed, low_nibbles),
    );
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(high as i32),
        _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        ),
    );
    let set = _mm256_cmpeq_epi8(
        _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe)),
        _mm256_set1_epi64x(-1),
    );
    // 0xF0 where the high bit is clear: nibble − 16 as a signed byte; nibble where it is set.
    _mm256_or_si256(
        nibbles,
        _mm256_andnot_si256(set, _mm256_set1_epi8(0xf0u8 as i8)),
    )
}

/// [`group_dot`] for Q8_0 (`Q5 = false`) and Q5_0 (`Q5 = true`, its weights unpacked to signed
/// bytes first): per row, its block is loaded once and multiplied with every token's block; the
/// integer sums of the 8 rows are then reduced together ([`reduce8`]). The f32 operations per
/// (row, token) are those of `spec::block_term`, in the same order.
///
/// # Safety
/// As for [`group_dot`], with `m.format` Q8_0 (32 quantized bytes per block) or Q5_0 (20).
#[target_feature(enable = "avx2,f16c")]
unsafe fn group_dot_q8<const T: usize, const Q5: bool>(
    m: &QMatrix,
    group: usize,
    x: &QuantizedActivations,
    token: usize,
    lanes: &mut [[f32; GROUP]],
) {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); T];
    // Every entry is written for each block before it is read.
    let mut sums = [[_mm256_setzero_si256(); GROUP]; T];
    for block in 0..m.blocks {
        // Slots `base..base + 8` are this block of the group's 8 rows: `base + 8 <=
        // scales.len()`, `(base + 8) * quant_bytes <= quants.len()`.
        let quant_bytes = if Q5 { 20 } else { 32 };
        let base = (group * m.blocks + block) * GROUP;
        // SAFETY: `base * quant_bytes < quants.len()` (above).
        let q = unsafe { m.quants.as_ptr().add(base * quant_bytes) };
        let mut activations = [_mm256_setzero_si256(); T];
        for (t, a) in activations.iter_mut().enumerate() {
            let at = (token + t) * x.blocks + block;
            // SAFETY: `token + t < x.tokens` and `block < x.blocks`: the block's 32 bytes are
            // inside `x.q`.
            *a = unsafe { _mm256_loadu_si256(x.q.as_ptr().add(at * BLOCK).cast()) };
        }
        for lane in 0..GROUP {
            // SAFETY: the bytes of slot `base + lane`, inside `quants` (above).
            let w = unsafe {
                if Q5 {
                    q5_0_weights(q.add(lane * 20))
                } else {
                    _mm256_loadu_si256(q.add(lane * 32).cast())
                }
            };
            // |w| · (a · sign w): unsigned × signed, pairs at most 2·128·127.
            let magnitude = _mm256_sign_epi8(w, w);
            for (sums, &a) in sums.iter_mut().zip(&activations) {
                let signed = _mm256_sign_epi8(a, w);
                let products = _mm256_maddubs_epi16(magnitude, signed);
                sums[lane] = _mm256_madd_epi16(products, ones);
            }
        }
        // F16C widening is exact, like `spec::f16_to_f32`.
        // SAFETY: the 8 scales of slots `base..base + 8`, inside `scales` (above).
        let dw = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(m.scales.as_ptr().add(base).cast()) });
        for (t, (acc, sums)) in acc.iter_mut().zip(&sums).enumerate() {
            let at = (token + t) * x.blocks + block;
            let isum = _mm256_cvtepi32_ps(reduce8(*sums));
            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(x.d[at]));
            *acc = _mm256_add_ps(*acc, _mm256_mul_ps(scale, isum));
        }
    }
    for (lanes, acc) in lanes.iter_mut().zip(acc) {
        // SAFETY: each row of `lanes` holds exactly 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    }
}

/// [`group_dot`] for Q4_K: per row, its superblock's nibbles are unpacked into registers once
/// and multiplied with every token's activations (`maddubs`, pairs at most 2·15·127), weighted
/// per sub-block by its scale (`madd` with the scale as the second 16-bit factor; every
/// intermediate fits its integer type); `msum` is summed in scalar integers. Both are exact, so
/// they equal `spec::superblock_isums`; the f32 operations are those of
/// `spec::superblock_term`, in the same order.
///
/// # Safety
/// As for [`group_dot`], with `m.format` Q4_K (140 quantized bytes per superblock) and `x`
/// quantized in superblocks.
#[target_feature(enable = "avx2,f16c")]
unsafe fn group_dot_q4_k<const T: usize>(
    m: &QMatrix,
    group: usize,
    x: &QuantizedActivations,
    token: usize,
    lanes: &mut [[f32; GROUP]],
) {
    const QB: usize = 140;
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); T];
    let mut sums = [[_mm256_setzero_si256(); GROUP]; T];
    let mut msums = [[0i32; GROUP]; T];
    for block in 0..m.blocks {
        // Slots `base..base + 8` are this superblock of the group's 8 rows: `base + 8 <=
        // scales.len() = mins.len()`, `(base + 8) * 140 <= quants.len()`.
        let base = (group * m.blocks + block) * GROUP;
        for lane in 0..GROUP {
            let slot = &m.quants[(base + lane) * QB..][..QB];
            let (scales, mins) = spec::q4_k_scales(&slot[..12]);
            let qs = slot[12..].as_ptr();
            let mut w = [_mm256_setzero_si256(); 8];
            for j in 0..4 {
                // SAFETY: bytes `32j..32j + 32` of the slot's 128 bytes of nibbles.
                let bits = unsafe { _mm256_loadu_si256(qs.add(32 * j).cast()) };
                w[2 * j] = _mm256_and_si256(bits, low_nibbles);
                w[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), low_nibbles);
            }
            let sc: [__m256i; 8] = std::array::from_fn(|s| _mm256_set1_epi16(i16::from(scales[s])));
            for t in 0..T {
                let at = (token + t) * x.blocks + block;
                // SAFETY: `token + t < x.tokens`, `block < x.blocks` (the caller's contract):
                // the superblock's 256 values are inside `x.q`.
                let a = unsafe { x.q.as_ptr().add(at * SUPER_BLOCK) };
                let mut sum = _mm256_setzero_si256();
                for s in 0..8 {
                    // SAFETY: values `32s..32s + 32` of the superblock (above).
                    let av = unsafe { _mm256_loadu_si256(a.add(32 * s).cast()) };
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(w[s], av), sc[s]);
                    sum = _mm256_add_epi32(sum, p);
                }
                sums[t][lane] = sum;
                let sums16 = x.block_sums16(token + t, block);
                msums[t][lane] = (0..8)
                    .map(|s| i32::from(mins[s]) * (sums16[2 * s] + sums16[2 * s + 1]))
                    .sum();
            }
        }
        // SAFETY: the 8 scales and minimums of slots `base..base + 8` (above).
        let (dw, mw) = unsafe {
            (
                _mm256_cvtph_ps(_mm_loadu_si128(m.scales.as_ptr().add(base).cast())),
                _mm256_cvtph_ps(_mm_loadu_si128(m.mins.as_ptr().add(base).cast())),
            )
        };
        for (t, acc) in acc.iter_mut().enumerate() {
            let at = (token + t) * x.blocks + block;
            let isum = _mm256_cvtepi32_ps(reduce8(sums[t]));
            // SAFETY: `msums[t]` holds 8 i32.
            let msum = _mm256_cvtepi32_ps(unsafe { _mm256_loadu_si256(msums[t].as_ptr().cast()) });
            let da = _mm256_set1_ps(x.d[at]);
            let term = _mm256_sub_ps(
                _mm256_mul_ps(_mm256_mul_ps(dw, da), isum),
                _mm256_mul_ps(_mm256_mul_ps(mw, da), msum),
            );
            *acc = _mm256_add_ps(*acc, term);
        }
    }
    for (lanes, acc) in lanes.iter_mut().zip(acc) {
        // SAFETY: each row of `lanes` holds exactly 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    }
}

/// [`group_dot`] for Q6_K: per row, the unsigned 6-bit values `q` of its superblock are rebuilt
/// in registers once from their low nibbles and high bit pairs, then multiplied with every
/// token's activations (`maddubs`, pairs at most 2·63·127), weighted by each 16-value
/// sub-block's signed scale (`madd`); `32 · Σ_s sc_s Σ a_i` is subtracted in scalar integers:
/// exactly `Σ_s sc_s Σ (q_i − 32) a_i`, `spec::superblock_isums`'s integer. The f32 operations
/// are those of `spec::superblock_term`.
///
/// # Safety
/// As for [`group_dot`], with `m.format` Q6_K (208 quantized bytes per superblock) and `x`
/// quantized in superblocks.
#[target_feature(enable = "avx2,f16c")]
unsafe fn group_dot_q6_k<const T: usize>(
    m: &QMatrix,
    group: usize,
    x: &QuantizedActivations,
    token: usize,
    lanes: &mut [[f32; GROUP]],
) {
    const QB: usize = 208;
    let low_nibbles = _mm256_set1_epi8(0x0f);
    let pair = _mm256_set1_epi8(0x03);
    let mut acc = [_mm256_setzero_ps(); T];
    let mut sums = [[_mm256_setzero_si256(); GROUP]; T];
    let mut offsets = [[0i32; GROUP]; T];
    for block in 0..m.blocks {
        // Slots `base..base + 8` are this superblock of the group's 8 rows: `base + 8 <=
        // scales.len()`, `(base + 8) * 208 <= quants.len()`.
        let base = (group * m.blocks + block) * GROUP;
        for lane in 0..GROUP {
            let q = &m.quants[(base + lane) * QB..][..QB];
            let scales = &q[192..208];
            let mut values = [_mm256_setzero_si256(); 8];
            for half in 0..2 {
                // SAFETY: bytes `64·half..64·half + 64` of `ql` (the slot's first 128) and
                // `128 + 32·half..+32` of `qh` (the next 64): inside the slot.
                let (l0, l1, h) = unsafe {
                    (
                        _mm256_loadu_si256(q.as_ptr().add(64 * half).cast()),
                        _mm256_loadu_si256(q.as_ptr().add(64 * half + 32).cast()),
                        _mm256_loadu_si256(q.as_ptr().add(128 + 32 * half).cast()),
                    )
                };
                let high = |bits: __m256i| _mm256_slli_epi16(_mm256_and_si256(bits, pair), 4);
                let v = &mut values[4 * half..4 * half + 4];
                v[0] = _mm256_or_si256(_mm256_and_si256(l0, low_nibbles), high(h));
                v[1] = _mm256_or_si256(
                    _mm256_and_si256(l1, low_nibbles),
                    high(_mm256_srli_epi16(h, 2)),
                );
                v[2] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(l0, 4), low_nibbles),
                    high(_mm256_srli_epi16(h, 4)),
                );
                v[3] = _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(l1, 4), low_nibbles),
                    high(_mm256_srli_epi16(h, 6)),
                );
            }
            // Vector `k` holds sub-blocks `2k` (low 128 bits) and `2k + 1` (high).
            let sc: [__m256i; 8] = std::array::from_fn(|k| {
                _mm256_set_m128i(
                    _mm_set1_epi16(i16::from(scales[2 * k + 1] as i8)),
                    _mm_set1_epi16(i16::from(scales[2 * k] as i8)),
                )
            });
            for t in 0..T {
                let at = (token + t) * x.blocks + block;
                // SAFETY: `token + t < x.tokens`, `block < x.blocks` (the caller's contract):
                // the superblock's 256 values are inside `x.q`.
                let a = unsafe { x.q.as_ptr().add(at * SUPER_BLOCK) };
                let mut sum = _mm256_setzero_si256();
                for k in 0..8 {
                    // SAFETY: values `32k..32k + 32` of the superblock (above).
                    let av = unsafe { _mm256_loadu_si256(a.add(32 * k).cast()) };
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(values[k], av), sc[k]);
                    sum = _mm256_add_epi32(sum, p);
                }
                sums[t][lane] = sum;
                let sums16 = x.block_sums16(token + t, block);
                offsets[t][lane] = 32
                    * (0..16)
                        .map(|s| i32::from(scales[s] as i8) * sums16[s])
                        .sum::<i32>();
            }
        }
        // SAFETY: the 8 scales of slots `base..base + 8` (above).
        let dw = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(m.scales.as_ptr().add(base).cast()) });
        for (t, acc) in acc.iter_mut().enumerate() {
            let at = (token + t) * x.blocks + block;
            // SAFETY: `offsets[t]` holds 8 i32.
            let offset = unsafe { _mm256_loadu_si256(offsets[t].as_ptr().cast()) };
            let isum = _mm256_cvtepi32_ps(_mm256_sub_epi32(reduce8(sums[t]), offset));
            let scale = _mm256_mul_ps(dw, _mm256_set1_ps(x.d[at]));
            *acc = _mm256_add_ps(*acc, _mm256_mul_ps(scale, isum));
        }
    }
    for (lanes, acc) in lanes.iter_mut().zip(acc) {
        // SAFETY: each row of `lanes` holds exactly 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    }
}
