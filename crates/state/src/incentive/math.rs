//! Fixed-point vector and matrix kernels for Yuma consensus.
//!
//! These mirror subtensor's `pallets/subtensor/src/epoch/math.rs` function for function (same
//! names where the operation is the same), on the same types: `I32F32` for every fraction,
//! `I64F64` where subtensor widens (stake normalisation). The `fixed` crate and subtensor's
//! `substrate_fixed` share the arithmetic: multiplication rounds toward −∞ (the low bits of the
//! double-width product are dropped), division truncates, fixed→fixed conversion drops extra
//! fraction bits, fixed→integer conversion floors, and `round` rounds half away from zero.
//!
//! Determinism: no floats, no hash maps, no randomness. Every accumulation saturates instead of
//! wrapping or panicking (subtensor's `saturating_*`), so hostile inputs give a defined answer.
//!
//! Sparse matrices are rows of `(column, value)` pairs with strictly increasing columns
//! ([`SparseMatrix`]); the epoch only ever builds them that way, and the merge-based kernels
//! ([`mat_ema_sparse`], [`mat_ema_alpha_sparse`], [`interpolate_sparse`]) rely on it.
//!
//! One deliberate difference from subtensor's *sparse* path: [`mat_ema_alpha_sparse`] keeps an old
//! bond whose weight entry is absent (it decays it), exactly as subtensor's dense `mat_ema_alpha`
//! does. Subtensor's sparse variant drops such a bond outright, so its result depends on whether
//! a zero weight was stored explicitly; mycel takes the dense (storage-independent) meaning.

use fixed::types::{I32F32, I64F64};

/// A row-sparse matrix: row `i` lists `(column, value)` with strictly increasing columns.
pub type SparseMatrix = Vec<Vec<(u16, I32F32)>>;

const ZERO: I32F32 = I32F32::ZERO;
const ONE: I32F32 = I32F32::ONE;

/// `u16::MAX` as a fixed-point number.
pub fn u16_max_fixed() -> I32F32 {
    I32F32::from_num(u16::MAX)
}

/// `x / d` truncated, or 0 when `d == 0` or the quotient overflows (subtensor's `safe_div`).
///
/// The epoch divides hundreds of thousands of values by positive sums. The exact quotient's bits
/// are `floor(X · 2^32 / D)` for bit patterns X, D; cancelling the trailing zero bits of D (at
/// most 32) keeps the rational exact, and when the shifted numerator still fits in 64 bits —
/// always for fractions below 1, and for any X when D is an integer — one native 64-bit division
/// gives the same bits as the fixed crate's 128-bit one.
#[inline]
pub fn safe_div(x: I32F32, d: I32F32) -> I32F32 {
    let (xb, db) = (x.to_bits(), d.to_bits());
    // 1 / d (the sigmoid's 1 / (1 + e)): floor(2^64 / D) = floor((2^64 − 1) / D), plus 1 when D
    // divides 2^64, i.e. is a power of two.
    if xb == 1i64 << 32 && db > 2 {
        let du = db as u64;
        let q = u64::MAX / du + u64::from(du.is_power_of_two());
        if q <= i64::MAX as u64 {
            return I32F32::from_bits(q as i64);
        }
    }
    if db > 0 && xb >= 0 {
        let g = db.trailing_zeros().min(32);
        let shift = 32 - g;
        let (xu, du) = (xb as u64, (db as u64) >> g);
        if xu.leading_zeros() >= shift {
            let q = (xu << shift) / du;
            if q <= i64::MAX as u64 {
                return I32F32::from_bits(q as i64);
            }
        }
    }
    x.checked_div(d).unwrap_or(ZERO)
}

/// [`safe_div`] by one divisor many times (a column sum, a row sum, 65535): the same bits,
/// with the 64-bit division replaced by a multiplication by a reciprocal computed once.
///
/// For the fast path's `n = X << shift` and `du = D >> g`, take `m = floor((2^64 − 1) / du)`.
/// Then `2^64 − m·du ≤ du`, so `n/du − n·m/2^64 = n·(2^64 − m·du)/(du·2^64) < 1`: the estimate
/// `q = floor(n·m / 2^64)` is `floor(n / du)` or one less, and one comparison of the remainder
/// corrects it. Integers only, so the result is the exact floor, as `safe_div`'s.
#[derive(Clone, Copy, Debug)]
pub struct Divisor {
    d: I32F32,
    /// 0 when the fast path never applies (d ≤ 0).
    du: u64,
    shift: u32,
    m: u64,
}

impl Divisor {
    pub fn new(d: I32F32) -> Self {
        let db = d.to_bits();
        if db <= 0 {
            return Self {
                d,
                du: 0,
                shift: 0,
                m: 0,
            };
        }
        let g = db.trailing_zeros().min(32);
        let du = (db as u64) >> g;
        Self {
            d,
            du,
            shift: 32 - g,
            m: u64::MAX / du,
        }
    }

    /// `safe_div(x, d)`, bit for bit.
    #[inline]
    pub fn div(&self, x: I32F32) -> I32F32 {
        let xb = x.to_bits();
        if self.du != 0 && xb >= 0 {
            let xu = xb as u64;
            if xu.leading_zeros() >= self.shift {
                let n = xu << self.shift;
                let mut q = ((n as u128 * self.m as u128) >> 64) as u64;
                if n - q * self.du >= self.du {
                    q += 1;
                }
                if q <= i64::MAX as u64 {
                    return I32F32::from_bits(q as i64);
                }
            }
        }
        safe_div(x, self.d)
    }
}

/// `x / d` in 64.64, or 0 when `d == 0`.
pub fn safe_div_64(x: I64F64, d: I64F64) -> I64F64 {
    x.checked_div(d).unwrap_or(I64F64::ZERO)
}

/// Saturating sum of a slice.
pub fn sum(x: &[I32F32]) -> I32F32 {
    x.iter().fold(ZERO, |acc, v| acc.saturating_add(*v))
}

/// Saturating sum of a 64.64 slice.
pub fn sum_64(x: &[I64F64]) -> I64F64 {
    x.iter().fold(I64F64::ZERO, |acc, v| acc.saturating_add(*v))
}

/// True when the vector sums to zero.
pub fn is_zero(x: &[I32F32]) -> bool {
    sum(x) == ZERO
}

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

/// Integer value of a `u16` as a fixed-point number (not a proportion).
pub fn u16_to_fixed(x: u16) -> I32F32 {
    I32F32::from_num(x)
}

/// `x / 65535`: a stored `u16` proportion as a fraction in [0, 1].
pub fn u16_proportion_to_fixed(x: u16) -> I32F32 {
    // x / 65535 for x ≤ 65535: X = x·2^32 and D = 65535·2^32, so the quotient's bits are
    // floor(x · 2^32 / 65535) (what `safe_div` computes).
    I32F32::from_bits((((x as u64) << 32) / 65535) as i64)
}

/// `x / 65535` for a value already in fixed point (subtensor's `fixed_to_fixed_u16_proportion`).
pub fn fixed_to_fixed_u16_proportion(x: I32F32) -> I32F32 {
    safe_div(x, u16_max_fixed())
}

/// Floor of `x` as a `u16`, saturating at 0 and 65535.
pub fn fixed_to_u16(x: I32F32) -> u16 {
    x.saturating_to_num::<u16>()
}

/// Floor of `x` as a `u64`, saturating.
pub fn fixed_to_u64(x: I32F32) -> u64 {
    x.saturating_to_num::<u64>()
}

/// Floor of a 64.64 `x` as a `u64`, saturating.
pub fn fixed64_to_u64(x: I64F64) -> u64 {
    x.saturating_to_num::<u64>()
}

/// 64.64 → 32.32, dropping the low fraction bits (rounds toward −∞), saturating.
pub fn fixed64_to_fixed32(x: I64F64) -> I32F32 {
    I32F32::saturating_from_num(x)
}

/// 32.32 → 64.64 (exact).
pub fn fixed32_to_fixed64(x: I32F32) -> I64F64 {
    I64F64::from_num(x)
}

/// A fraction in [0, 1] as a stored `u16` proportion: `floor(x · 65535)`, saturating.
pub fn fixed_proportion_to_u16(x: I32F32) -> u16 {
    fixed_to_u16(x.saturating_mul(u16_max_fixed()))
}

/// Scale a non-negative vector so its maximum becomes 65535 and convert to `u16`, rounding half
/// away from zero. All zeros stay zeros. (Subtensor's `vec_max_upscale_to_u16`, including its
/// divide-first branch for maxima above 32768 that avoids overflowing `x · 65535`.)
pub fn vec_max_upscale_to_u16(vec: &[I32F32]) -> Vec<u16> {
    let u16_max = u16_max_fixed();
    let threshold = I32F32::from_num(32768);
    let Some(max) = vec.iter().max().copied() else {
        return Vec::new();
    };
    if max == ZERO {
        return vec
            .iter()
            .map(|e| e.saturating_mul(u16_max).saturating_to_num::<u16>())
            .collect();
    }
    if max > threshold {
        let scale = safe_div(u16_max, max);
        return vec
            .iter()
            .map(|e| e.saturating_mul(scale).round().saturating_to_num::<u16>())
            .collect();
    }
    vec.iter()
        .map(|e| {
            safe_div(e.saturating_mul(u16_max), max)
                .round()
                .saturating_to_num::<u16>()
        })
        .collect()
}

/// [`vec_max_upscale_to_u16`] of a `u16` vector.
pub fn vec_u16_max_upscale_to_u16(vec: &[u16]) -> Vec<u16> {
    let fixed: Vec<I32F32> = vec.iter().map(|e| I32F32::from_num(*e)).collect();
    vec_max_upscale_to_u16(&fixed)
}

// ---------------------------------------------------------------------------------------------
// Exponential and sigmoid
// ---------------------------------------------------------------------------------------------

/// Fraction bits of the integer arithmetic inside [`exp_safe`].
const EXP_FRAC: u32 = 62;
/// ln 2 · 2^62, rounded to nearest.
const LN_2_Q62: i128 = 0x2C5C_85FD_F473_DE6B;
/// (1 / ln 2) · 2^62, rounded to nearest.
const INV_LN_2_Q62: i128 = 0x5C55_1D94_AE0B_F85E;
/// Terms of the Taylor series of e^r kept by [`exp_safe`]: |r| ≤ ln 2 / 2, so the first term
/// left out, r^14 / 14!, is below 5e-18.
const EXP_TERMS: usize = 14;
/// 2^62 / n! (floored), n = 0 … 13: the Taylor coefficients of e^r.
const EXP_COEFFS: [i64; EXP_TERMS] = {
    let mut c = [0i64; EXP_TERMS];
    let mut fact: i64 = 1;
    let mut n = 0;
    while n < EXP_TERMS {
        if n > 0 {
            fact *= n as i64;
        }
        c[n] = (1i64 << EXP_FRAC) / fact;
        n += 1;
    }
    c
};

/// e^x for x clamped to [−20, 20] (subtensor's `exp_safe`), computed deterministically in
/// integers.
///
/// Method: write x = k·ln 2 + r with k = round(x / ln 2) and |r| ≤ ln 2 / 2, evaluate the Taylor
/// polynomial of e^r of degree 13 by Horner's rule in 2.62 fixed point (each step rounded toward
/// −∞; every intermediate is below 1.5 · 2^62, so it fits an i64 and each step is one widening
/// multiply), then scale by 2^k with a shift. The intermediate is within ~1e-17 relative of e^x,
/// so the returned 32.32 value is the floor of e^x to the 2^−32 grid, except when e^x lies within
/// that ~1e-17 of a grid point (then it may be one ulp, 2^−32 ≈ 2.3e-10, below). Subtensor uses
/// `substrate_fixed::transcendental::exp`, which is less precise: results can differ from it by
/// a few ulps of 2^−32, and the ported sigmoid vectors are compared within 2 ulps.
pub fn exp_safe(input: I32F32) -> I32F32 {
    let x32 = input
        .clamp(I32F32::from_num(-20), I32F32::from_num(20))
        .to_bits() as i128;
    // k = round(x / ln 2): x32 has 32 fraction bits, INV_LN_2_Q62 62, the product 94.
    let k = ((x32 * INV_LN_2_Q62) + (1i128 << 93)) >> 94;
    // |r| ≤ ln 2 / 2 (plus rounding), far inside i64 at 62 fraction bits.
    let r = ((x32 << (EXP_FRAC - 32)) - k * LN_2_Q62) as i64;
    let mut acc = EXP_COEFFS[EXP_TERMS - 1];
    for c in EXP_COEFFS[..EXP_TERMS - 1].iter().rev() {
        acc = (((acc as i128 * r as i128) >> EXP_FRAC) as i64) + c;
    }
    // |k| ≤ 29, so 30 − k is in [1, 59]: always a right shift from 62 to 32 fraction bits.
    let bits = acc >> (EXP_FRAC as i128 - 32 - k);
    I32F32::from_bits(bits.max(0))
}

/// [`exp_safe`] of four inputs, bit for bit: the same integer steps, run in lockstep so the four
/// multiply chains (each a sequence of dependent multiplications) overlap in the CPU.
pub fn exp_safe4(input: [I32F32; 4]) -> [I32F32; 4] {
    let mut k = [0i128; 4];
    let mut r = [0i64; 4];
    for l in 0..4 {
        let x32 = input[l]
            .clamp(I32F32::from_num(-20), I32F32::from_num(20))
            .to_bits() as i128;
        k[l] = ((x32 * INV_LN_2_Q62) + (1i128 << 93)) >> 94;
        r[l] = ((x32 << (EXP_FRAC - 32)) - k[l] * LN_2_Q62) as i64;
    }
    let mut acc = [EXP_COEFFS[EXP_TERMS - 1]; 4];
    for c in EXP_COEFFS[..EXP_TERMS - 1].iter().rev() {
        for l in 0..4 {
            acc[l] = (((acc[l] as i128 * r[l] as i128) >> EXP_FRAC) as i64) + c;
        }
    }
    let mut out = [ZERO; 4];
    for l in 0..4 {
        out[l] = I32F32::from_bits((acc[l] >> (EXP_FRAC as i128 - 32 - k[l])).max(0));
    }
    out
}

/// `1 / (1 + e^(−rho·(input − kappa)))` (subtensor's `sigmoid_safe`).
pub fn sigmoid_safe(input: I32F32, rho: I32F32, kappa: I32F32) -> I32F32 {
    let offset = input.saturating_sub(kappa);
    let neg_rho = rho.saturating_mul(ONE.saturating_neg());
    let exp_input = neg_rho.saturating_mul(offset);
    let denominator = exp_safe(exp_input).saturating_add(ONE);
    safe_div(ONE, denominator)
}

/// Clamp `value` into [low, high] (high first, then low, as subtensor's `clamp_value`).
pub fn clamp_value(value: I32F32, low: I32F32, high: I32F32) -> I32F32 {
    value.min(high).max(low)
}

// ---------------------------------------------------------------------------------------------
// Vectors
// ---------------------------------------------------------------------------------------------

/// True for the top-k values that are non-zero. Ties are broken by a stable ascending sort, so
/// among equal values the higher indices are kept (subtensor's `is_topk_nonzero`).
pub fn is_topk_nonzero(vector: &[I32F32], k: usize) -> Vec<bool> {
    let n = vector.len();
    let mut result: Vec<bool> = vector.iter().map(|v| *v != ZERO).collect();
    if n < k {
        return result;
    }
    let mut idxs: Vec<usize> = (0..n).collect();
    idxs.sort_by_key(|&i| vector[i]);
    for &i in idxs.iter().take(n - k) {
        result[i] = false;
    }
    result
}

/// Scale so the vector sums to 1; a zero vector is returned unchanged.
pub fn normalize(x: &[I32F32]) -> Vec<I32F32> {
    let mut out = x.to_vec();
    inplace_normalize(&mut out);
    out
}

/// In-place [`normalize`].
pub fn inplace_normalize(x: &mut [I32F32]) {
    let s = sum(x);
    inplace_normalize_using_sum(x, s);
}

/// Divide every element by `x_sum` unless it is zero.
pub fn inplace_normalize_using_sum(x: &mut [I32F32], x_sum: I32F32) {
    if x_sum == ZERO {
        return;
    }
    for v in x.iter_mut() {
        *v = safe_div(*v, x_sum);
    }
}

/// In-place normalisation in 64.64.
pub fn inplace_normalize_64(x: &mut [I64F64]) {
    let s = sum_64(x);
    if s == I64F64::ZERO {
        return;
    }
    for v in x.iter_mut() {
        *v = safe_div_64(*v, s);
    }
}

/// Zero the entries where `mask` is true (a missing mask entry masks).
pub fn inplace_mask_vector(mask: &[bool], vector: &mut [I32F32]) {
    for (i, v) in vector.iter_mut().enumerate() {
        if mask.get(i).copied().unwrap_or(true) {
            *v = ZERO;
        }
    }
}

/// Element-wise product; an overflowing product is 0 (subtensor's `vec_mul`).
pub fn vec_mul(a: &[I32F32], b: &[I32F32]) -> Vec<I32F32> {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.checked_mul(*y).unwrap_or(ZERO))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Sparse matrices
// ---------------------------------------------------------------------------------------------

/// Normalise each row to sum 1 (rows summing to 0 unchanged).
pub fn inplace_row_normalize_sparse(m: &mut [Vec<(u16, I32F32)>]) {
    for row in m.iter_mut() {
        let s = row.iter().fold(ZERO, |acc, (_, v)| acc.saturating_add(*v));
        if s > ZERO {
            let s = Divisor::new(s);
            for (_, v) in row.iter_mut() {
                *v = s.div(*v);
            }
        }
    }
}

/// Sum of each row.
pub fn row_sum_sparse(m: &[Vec<(u16, I32F32)>]) -> Vec<I32F32> {
    m.iter()
        .map(|row| row.iter().fold(ZERO, |acc, (_, v)| acc.saturating_add(*v)))
        .collect()
}

/// Normalise each column to sum 1 (columns summing to 0 unchanged).
pub fn inplace_col_normalize_sparse(m: &mut [Vec<(u16, I32F32)>], columns: u16) {
    let mut col_sum = vec![ZERO; columns as usize];
    for row in m.iter() {
        for &(j, v) in row {
            if let Some(s) = col_sum.get_mut(j as usize) {
                *s = s.saturating_add(v);
            }
        }
    }
    let col_div: Vec<Option<Divisor>> = col_sum
        .iter()
        .map(|d| (*d != ZERO).then(|| Divisor::new(*d)))
        .collect();
    for row in m.iter_mut() {
        for (j, v) in row.iter_mut() {
            if let Some(Some(d)) = col_div.get(*j as usize) {
                *v = d.div(*v);
            }
        }
    }
}

/// Divide each column by its maximum, so the largest entry of every column becomes 1.
pub fn inplace_col_max_upscale_sparse(m: &mut [Vec<(u16, I32F32)>], columns: u16) {
    let mut col_max = vec![ZERO; columns as usize];
    for row in m.iter() {
        for &(j, v) in row {
            if let Some(mx) = col_max.get_mut(j as usize) {
                if *mx < v {
                    *mx = v;
                }
            }
        }
    }
    let col_div: Vec<Option<Divisor>> = col_max
        .iter()
        .map(|d| (*d != ZERO).then(|| Divisor::new(*d)))
        .collect();
    for row in m.iter_mut() {
        for (j, v) in row.iter_mut() {
            if let Some(Some(d)) = col_div.get(*j as usize) {
                *v = d.div(*v);
            }
        }
    }
}

/// Empty the rows where `mask` is true (a missing mask entry masks).
pub fn mask_rows_sparse(mask: &[bool], m: &[Vec<(u16, I32F32)>]) -> SparseMatrix {
    m.iter()
        .enumerate()
        .map(|(i, row)| {
            if mask.get(i).copied().unwrap_or(true) {
                Vec::new()
            } else {
                row.clone()
            }
        })
        .collect()
}

/// Drop the diagonal, except the entry `(except, except)` when given (the subnet owner may
/// weight itself).
pub fn mask_diag_sparse_except(m: &[Vec<(u16, I32F32)>], except: Option<u16>) -> SparseMatrix {
    m.iter()
        .enumerate()
        .map(|(i, row)| {
            row.iter()
                .filter(|(j, _)| i != *j as usize || except == Some(*j))
                .copied()
                .collect()
        })
        .collect()
}

/// Drop entry `(i, j)` where `mask_fn(first[i], second[j])` (missing vector entries read 0).
pub fn vec_mask_sparse_matrix(
    m: &[Vec<(u16, I32F32)>],
    first: &[u64],
    second: &[u64],
    mask_fn: impl Fn(u64, u64) -> bool,
) -> SparseMatrix {
    m.iter()
        .enumerate()
        .map(|(i, row)| {
            let f = first.get(i).copied().unwrap_or(0);
            row.iter()
                .filter(|(j, _)| !mask_fn(f, second.get(*j as usize).copied().unwrap_or(0)))
                .copied()
                .collect()
        })
        .collect()
}

/// Drop entry `(i, j)` where `mask_fn(scalar, vector[j])`.
pub fn scalar_vec_mask_sparse_matrix(
    m: &[Vec<(u16, I32F32)>],
    scalar: u64,
    vector: &[u64],
    mask_fn: impl Fn(u64, u64) -> bool,
) -> SparseMatrix {
    m.iter()
        .map(|row| {
            row.iter()
                .filter(|(j, _)| !mask_fn(scalar, vector.get(*j as usize).copied().unwrap_or(0)))
                .copied()
                .collect()
        })
        .collect()
}

/// Multiply row `i` by `vector[i]` (rows beyond the vector are dropped, as in subtensor).
pub fn row_hadamard_sparse(m: &[Vec<(u16, I32F32)>], vector: &[I32F32]) -> SparseMatrix {
    m.iter()
        .zip(vector)
        .map(|(row, s)| {
            row.iter()
                .map(|&(j, v)| (j, v.saturating_mul(*s)))
                .collect()
        })
        .collect()
}

/// `result_j = Σ_i vector_i · m_ij` (column sums weighted by the row vector).
pub fn matmul_sparse(m: &[Vec<(u16, I32F32)>], vector: &[I32F32], columns: u16) -> Vec<I32F32> {
    let mut result = vec![ZERO; columns as usize];
    for (i, row) in m.iter().enumerate() {
        let s = vector.get(i).copied().unwrap_or(ZERO);
        for &(j, v) in row {
            if let Some(r) = result.get_mut(j as usize) {
                *r = r.saturating_add(s.saturating_mul(v));
            }
        }
    }
    result
}

/// `result_i = Σ_j vector_j · m_ij` (row sums weighted by the column vector).
pub fn matmul_transpose_sparse(m: &[Vec<(u16, I32F32)>], vector: &[I32F32]) -> Vec<I32F32> {
    m.iter()
        .map(|row| {
            row.iter().fold(ZERO, |acc, &(j, v)| {
                acc.saturating_add(
                    vector
                        .get(j as usize)
                        .copied()
                        .unwrap_or(ZERO)
                        .saturating_mul(v),
                )
            })
        })
        .collect()
}

/// Entry-wise `m_ij · vector_j`, dropping products that are exactly 0.
pub fn mat_vec_mul_sparse(m: &[Vec<(u16, I32F32)>], vector: &[I32F32]) -> SparseMatrix {
    m.iter()
        .map(|row| {
            row.iter()
                .filter_map(|&(j, v)| {
                    let p = v.saturating_mul(*vector.get(j as usize)?);
                    (p != ZERO).then_some((j, p))
                })
                .collect()
        })
        .collect()
}

/// `min(m_ij, threshold_j)`; an entry clipped to a threshold ≤ 0 is dropped.
pub fn col_clip_sparse(m: &[Vec<(u16, I32F32)>], col_threshold: &[I32F32]) -> SparseMatrix {
    m.iter()
        .map(|row| {
            let mut out = Vec::with_capacity(row.len());
            out.extend(row.iter().filter_map(|&(j, v)| {
                let th = col_threshold.get(j as usize).copied().unwrap_or(ZERO);
                if th < v {
                    (th > ZERO).then_some((j, th))
                } else {
                    Some((j, v))
                }
            }));
            out
        })
        .collect()
}

/// [`col_clip_sparse`] in place: the same kept entries and values, without a second matrix.
pub fn inplace_col_clip_sparse(m: &mut [Vec<(u16, I32F32)>], col_threshold: &[I32F32]) {
    for row in m.iter_mut() {
        row.retain_mut(|(j, v)| {
            let th = col_threshold.get(*j as usize).copied().unwrap_or(ZERO);
            if th < *v {
                *v = th;
                th > ZERO
            } else {
                true
            }
        });
    }
}

/// Visit the union of the columns of two sorted sparse rows, in column order, with the value of
/// each (0 where a row has no entry).
fn merge_rows(a: &[(u16, I32F32)], b: &[(u16, I32F32)], mut f: impl FnMut(u16, I32F32, I32F32)) {
    let (mut ia, mut ib) = (0, 0);
    loop {
        match (a.get(ia), b.get(ib)) {
            (Some(&(ja, va)), Some(&(jb, vb))) => {
                if ja == jb {
                    f(ja, va, vb);
                    ia += 1;
                    ib += 1;
                } else if ja < jb {
                    f(ja, va, ZERO);
                    ia += 1;
                } else {
                    f(jb, ZERO, vb);
                    ib += 1;
                }
            }
            (Some(&(ja, va)), None) => {
                f(ja, va, ZERO);
                ia += 1;
            }
            (None, Some(&(jb, vb))) => {
                f(jb, ZERO, vb);
                ib += 1;
            }
            (None, None) => break,
        }
    }
}

/// `A + ratio · (B − A)` entry-wise, keeping entries > 0 (ratio 0 returns A, 1 returns B).
pub fn interpolate_sparse(
    mat1: &[Vec<(u16, I32F32)>],
    mat2: &[Vec<(u16, I32F32)>],
    ratio: I32F32,
) -> SparseMatrix {
    if ratio == ZERO {
        return mat1.to_vec();
    }
    if ratio == ONE || mat1.len() != mat2.len() {
        return mat2.to_vec();
    }
    mat1.iter()
        .zip(mat2)
        .map(|(r1, r2)| {
            let mut out = Vec::with_capacity(r1.len());
            merge_rows(r1, r2, |j, v1, v2| {
                let v = v1.saturating_add(ratio.saturating_mul(v2.saturating_sub(v1)));
                if v > ZERO {
                    out.push((j, v));
                }
            });
            out
        })
        .collect()
}

/// Bond EMA with one coefficient: `alpha · new_ij + (1 − alpha) · old_ij`, keeping entries > 0.
/// Rows beyond `new.len()` are dropped; missing `old` rows read as empty.
pub fn mat_ema_sparse(
    new: &[Vec<(u16, I32F32)>],
    old: &[Vec<(u16, I32F32)>],
    alpha: I32F32,
) -> SparseMatrix {
    let one_minus_alpha = ONE.saturating_sub(alpha);
    let empty: Vec<(u16, I32F32)> = Vec::new();
    new.iter()
        .enumerate()
        .map(|(i, nrow)| {
            let orow = old.get(i).unwrap_or(&empty);
            let mut out = Vec::with_capacity(nrow.len().max(orow.len()));
            merge_rows(nrow, orow, |j, n, o| {
                let v = alpha
                    .saturating_mul(n)
                    .saturating_add(one_minus_alpha.saturating_mul(o));
                if v > ZERO {
                    out.push((j, v));
                }
            });
            out
        })
        .collect()
}

/// Bond EMA with a coefficient per entry (liquid alpha):
/// `min(1, (1 − a_ij) · old_ij + max(0, a_ij · new_ij))`, keeping entries > 0.
///
/// `alpha(i, j, new_ij, old_ij)` gives the coefficient; it is only asked for entries present in
/// `new` or `old` (every other entry is 0 whatever its alpha). See the module doc for how this
/// differs from subtensor's sparse variant.
pub fn mat_ema_alpha_sparse(
    new: &[Vec<(u16, I32F32)>],
    old: &[Vec<(u16, I32F32)>],
    mut alpha: impl FnMut(usize, u16, I32F32, I32F32) -> I32F32,
) -> SparseMatrix {
    let empty: Vec<(u16, I32F32)> = Vec::new();
    new.iter()
        .enumerate()
        .map(|(i, nrow)| {
            let orow = old.get(i).unwrap_or(&empty);
            let mut out = Vec::with_capacity(nrow.len().max(orow.len()));
            merge_rows(nrow, orow, |j, n, o| {
                let a = alpha(i, j, n, o);
                let decayed = ONE.saturating_sub(a).saturating_mul(o);
                let inc = a.saturating_mul(n).max(ZERO);
                let v = decayed.saturating_add(inc).min(ONE);
                if v > ZERO {
                    out.push((j, v));
                }
            });
            out
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Stake-weighted median
// ---------------------------------------------------------------------------------------------

/// Stake-weighted median of `score` over the indices in `partition_idx`: the largest score `w`
/// such that the stake on scores ≥ `w` is more than `1 − minority` of the partition.
///
/// Subtensor's `weighted_median`: a binary search that pivots on the middle element of the
/// current partition (not a random one, so the result is deterministic), narrowing to the
/// lower or upper part by comparing partial stake sums with `minority`.
pub fn weighted_median(
    stake: &[I32F32],
    score: &[I32F32],
    partition_idx: &[usize],
    minority: I32F32,
    partition_lo: I32F32,
    partition_hi: I32F32,
) -> I32F32 {
    let mut scratch = MedianScratch::default();
    weighted_median_with(
        &mut scratch,
        stake,
        score,
        partition_idx,
        minority,
        partition_lo,
        partition_hi,
    )
}

/// Buffers [`weighted_median`] reuses from one column to the next: the current partition and its
/// lower and upper parts, as `(score, stake)` pairs in index order.
#[derive(Default)]
struct MedianScratch {
    current: Vec<(I32F32, I32F32)>,
    lower: Vec<(I32F32, I32F32)>,
    upper: Vec<(I32F32, I32F32)>,
}

fn weighted_median_with(
    scratch: &mut MedianScratch,
    stake: &[I32F32],
    score: &[I32F32],
    partition_idx: &[usize],
    minority: I32F32,
    mut partition_lo: I32F32,
    mut partition_hi: I32F32,
) -> I32F32 {
    if stake.len() != score.len() {
        return ZERO;
    }
    let get = |v: &[I32F32], i: usize| v.get(i).copied().unwrap_or(ZERO);
    let MedianScratch {
        current,
        lower,
        upper,
    } = scratch;
    current.clear();
    current.extend(
        partition_idx
            .iter()
            .map(|&i| (get(score, i), get(stake, i))),
    );
    let limit = partition_idx.len();
    let mut iterations = 0usize;
    loop {
        let n = current.len();
        if n == 0 {
            return ZERO;
        }
        if n == 1 {
            return current[0].0;
        }
        let pivot = current[n / 2].0;
        let mut lo_stake = ZERO;
        let mut hi_stake = ZERO;
        lower.clear();
        upper.clear();
        for &(s, st) in current.iter() {
            if s == pivot {
                continue;
            }
            if s < pivot {
                lo_stake = lo_stake.saturating_add(st);
                lower.push((s, st));
            } else {
                hi_stake = hi_stake.saturating_add(st);
                upper.push((s, st));
            }
        }
        if minority < partition_lo.saturating_add(lo_stake) && !lower.is_empty() {
            partition_hi = partition_lo.saturating_add(lo_stake);
            std::mem::swap(current, lower);
        } else if partition_hi.saturating_sub(hi_stake) <= minority && !upper.is_empty() {
            partition_lo = partition_hi.saturating_sub(hi_stake);
            std::mem::swap(current, upper);
        } else {
            return pivot;
        }
        iterations += 1;
        if iterations > limit {
            return ZERO;
        }
    }
}

/// Per column of a sparse score matrix, the [`weighted_median`] over the rows with stake > 0,
/// the stake renormalised over those rows and `minority = Σstake − majority`
/// (subtensor's `weighted_median_col_sparse`).
pub fn weighted_median_col_sparse(
    stake: &[I32F32],
    score: &[Vec<(u16, I32F32)>],
    columns: u16,
    majority: I32F32,
) -> Vec<I32F32> {
    let mut use_stake: Vec<I32F32> = stake.iter().copied().filter(|s| *s > ZERO).collect();
    inplace_normalize(&mut use_stake);
    let stake_sum = sum(&use_stake);
    let minority = stake_sum.saturating_sub(majority);
    let stake_idx: Vec<usize> = (0..use_stake.len()).collect();
    // Column-major scores of the staked rows only, in one allocation: column c is
    // `use_score[c·rows .. (c+1)·rows]`.
    let rows = use_stake.len();
    let mut use_score = vec![ZERO; rows * columns as usize];
    let mut k = 0usize;
    for (s, row) in stake.iter().zip(score) {
        if *s > ZERO {
            for &(c, v) in row {
                if (c as usize) < columns as usize {
                    use_score[c as usize * rows + k] = v;
                }
            }
            k += 1;
        }
    }
    let mut scratch = MedianScratch::default();
    (0..columns as usize)
        .map(|c| &use_score[c * rows..(c + 1) * rows])
        .map(|col| {
            weighted_median_with(
                &mut scratch,
                &use_stake,
                col,
                &stake_idx,
                minority,
                ZERO,
                stake_sum,
            )
        })
        .collect()
}

#[cfg(test)]
#[path = "math_tests.rs"]
mod tests;
