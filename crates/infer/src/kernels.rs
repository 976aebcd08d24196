//! The arithmetic of determinism profile `mycel-det-v1`: quantized matrix–vector products and the
//! f32 reductions of a llama forward pass, each defined as one exact sequence of IEEE-754
//! single-precision operations, so that every CPU, SIMD level and thread count gives the same bits.
//!
//! # The rules
//! - **No fused multiply-add, no reassociation.** Rust never contracts `a * b + c` into an FMA and
//!   never reorders float operations, so plain Rust code *is* the specification; the SIMD paths
//!   below perform per lane exactly the operations of the scalar code, in the same order.
//! - **Matrix–vector products are integer sums combined in a fixed order.** An activation vector is
//!   quantized in blocks of 32 to 8 bits ([`QuantizedActivations`]): `amax = max |x_i|`,
//!   `d = amax / 127`, `q_i = round(x_i * (1/d))` (half away from zero; `q = 0` when `d = 0`), and
//!   the block's `s = d * (Σ q_i as f32)`. For one weight row and one activation block, the integer
//!   `isum = Σ w_i q_i` is exact whatever the instruction set (it never exceeds 2²⁴ in magnitude, so
//!   the conversion to f32 is exact as well). The block's term is
//!   - Q4_0 (`w_i = nibble − 8`): `(d_w * d) * isum`
//!   - Q4_1 (`w_i = nibble`, value `d_w·nibble + m_w`): `(d_w * d) * isum + m_w * s`
//!   - Q8_0 (`w_i` the signed byte): `(d_w * d) * isum`
//!
//!   and the row's output is `((0 + t_0) + t_1) + …`, block by block from the left. Weight scales
//!   are the file's f16 values widened to f32 (exact).
//! - **Sums of f32 vectors** ([`sum_lanes`], [`dot`]) use eight partial sums: element `i` is added to
//!   lane `i mod 8` in index order, then the lanes are combined as
//!   `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))`.
//! - **Transcendentals** come from the `libm` crate (a portable software implementation): `expf`
//!   for softmax and SiLU; RoPE angles in f64 with `libm::pow`, `libm::cos`, `libm::sin`.
//! - **Threads split only independent outputs** (rows of a product, heads of attention); no sum is
//!   ever split between threads.
//!
//! The only run-time choice is the instruction set of the exact integer part (AVX2 or portable
//! Rust); both produce identical bits, which the tests check on random data and, end to end, with
//! the whole model on an emulated CPU without AVX2.

use std::sync::OnceLock;

use rayon::prelude::*;

/// Elements per quantization block (weights and activations).
pub const BLOCK: usize = 32;
/// Weight rows stored interleaved, so that one SIMD register holds the same block of 8 rows.
const GROUP: usize = 8;
/// Tokens of a prompt multiplied together against each unpacked weight block.
const TOKEN_TILE: usize = 8;

/// The instruction set used for the exact integer part of the products.
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

fn detected_level() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Portable
}

/// IEEE half to single precision; exact for every input (subnormals, infinities, NaN).
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
    fn quant_bytes(self) -> usize {
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
    format: WeightFormat,
    rows: usize,
    cols: usize,
    blocks: usize,
    /// `d` per (group, block, lane): the file's f16 bits (widened to f32 when used).
    scales: Vec<u16>,
    /// `m` per (group, block, lane) for Q4_1; empty otherwise.
    mins: Vec<u16>,
    /// Quantized values per (group, block, lane), in the file's byte order.
    quants: Vec<u8>,
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
    fn append_row_gguf_bytes(&self, row: usize, out: &mut Vec<u8>) {
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
    /// `d·w` (Q4_0, Q8_0) or `d·w + m` (Q4_1), each one rounding.
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        assert!(row < self.rows && out.len() == self.cols);
        let quant_bytes = self.format.quant_bytes();
        for block in 0..self.blocks {
            let slot = self.slot(row, block);
            let d = f16_to_f32(self.scales[slot]);
            let q = &self.quants[slot * quant_bytes..][..quant_bytes];
            let out = &mut out[block * BLOCK..][..BLOCK];
            match self.format {
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
                    let m = f16_to_f32(self.mins[slot]);
                    for j in 0..16 {
                        out[j] = d * f32::from(q[j] & 0x0f) + m;
                        out[j + 16] = d * f32::from(q[j] >> 4) + m;
                    }
                }
            }
        }
    }

    /// `out[t * rows + r] = row r · activation t` for every token `t` of `x`, on the calling
    /// thread pool. The split over threads is by groups of rows and never changes a result.
    pub fn matmul(&self, x: &QuantizedActivations, out: &mut [f32]) {
        self.matmul_with(simd_level(), x, out)
    }

    /// [`QMatrix::matmul`] with a given instruction set (the tests compare them).
    pub fn matmul_with(&self, level: SimdLevel, x: &QuantizedActivations, out: &mut [f32]) {
        assert_eq!(x.blocks, self.blocks, "activation width ≠ matrix width");
        assert_eq!(out.len(), x.tokens * self.rows);
        let groups = self.rows.div_ceil(GROUP);
        let threads = rayon::current_num_threads();
        // One chunk per thread for a small product (a decode step's 576×576 takes ~15 µs, so
        // more chunks would cost more to schedule than they balance); up to 4 per thread for
        // large ones (the output head, a prompt) to even out the load.
        let work = groups * GROUP * self.blocks * x.tokens;
        let chunks = (work / (1 << 15)).clamp(threads, threads * 4);
        let chunk = groups.div_ceil(chunks).max(1);
        let out_ptr = SharedOut(out.as_mut_ptr());
        let run = |first_group: usize| {
            let end = (first_group + chunk).min(groups);
            let mut lanes = [[0f32; GROUP]; TOKEN_TILE];
            for group in first_group..end {
                let mut token = 0;
                while token < x.tokens {
                    let tile = TOKEN_TILE.min(x.tokens - token);
                    self.group_dot(level, group, x, token, tile, &mut lanes);
                    let row0 = group * GROUP;
                    let n = GROUP.min(self.rows - row0);
                    for (t, lanes) in lanes[..tile].iter().enumerate() {
                        for (lane, &value) in lanes[..n].iter().enumerate() {
                            // SAFETY: each (token, row) is written by exactly one chunk: rows of
                            // different chunks are disjoint, and `out` outlives the parallel loop.
                            unsafe { out_ptr.write((token + t) * self.rows + row0 + lane, value) };
                        }
                    }
                    token += tile;
                }
            }
        };
        if chunk >= groups {
            run(0);
        } else {
            (0..groups)
                .step_by(chunk)
                .collect::<Vec<_>>()
                .into_par_iter()
                .for_each(run);
        }
    }

    /// The 8 outputs of rows `8g..8g+8` for activations `token..token + tile` (`tile` at most
    /// [`TOKEN_TILE`]; a prompt's tokens share each unpacked weight block).
    fn group_dot(
        &self,
        level: SimdLevel,
        group: usize,
        x: &QuantizedActivations,
        token: usize,
        tile: usize,
        lanes: &mut [[f32; GROUP]; TOKEN_TILE],
    ) {
        match level {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Avx2` is only chosen when the CPU reports AVX2 (or by a test that checks it
            // first); the indices are within the vectors, as in the portable code.
            SimdLevel::Avx2 => unsafe {
                match tile {
                    TOKEN_TILE => {
                        avx2::group_dot::<TOKEN_TILE>(self, group, x, token, &mut lanes[..])
                    }
                    _ => {
                        for t in 0..tile {
                            avx2::group_dot::<1>(self, group, x, token + t, &mut lanes[t..t + 1]);
                        }
                    }
                }
            },
            _ => {
                for (t, lanes) in lanes[..tile].iter_mut().enumerate() {
                    self.group_dot_portable(group, x, token + t, lanes);
                }
            }
        }
    }

    fn group_dot_portable(
        &self,
        group: usize,
        x: &QuantizedActivations,
        token: usize,
        lanes: &mut [f32; GROUP],
    ) {
        let quant_bytes = self.format.quant_bytes();
        *lanes = [0.0; GROUP];
        for block in 0..self.blocks {
            let a = x.block(token, block);
            let (da, sa) = (x.d[token * x.blocks + block], x.s[token * x.blocks + block]);
            let base = (group * self.blocks + block) * GROUP;
            for (lane, acc) in lanes.iter_mut().enumerate() {
                let slot = base + lane;
                let q = &self.quants[slot * quant_bytes..][..quant_bytes];
                let dw = f16_to_f32(self.scales[slot]);
                let term = match self.format {
                    WeightFormat::Q4_0 => {
                        let isum = dot_nibbles(q, a) - 8 * x.qsum[token * x.blocks + block];
                        (dw * da) * isum as f32
                    }
                    WeightFormat::Q4_1 => {
                        let isum = dot_nibbles(q, a);
                        (dw * da) * isum as f32 + f16_to_f32(self.mins[slot]) * sa
                    }
                    WeightFormat::Q8_0 => {
                        let isum: i32 = q
                            .iter()
                            .zip(a)
                            .map(|(&w, &v)| i32::from(w as i8) * i32::from(v))
                            .sum();
                        (dw * da) * isum as f32
                    }
                };
                *acc += term;
            }
        }
    }
}

/// Attention scores of one query head against `scores.len()` cached keys:
/// `scores[j] = dot(q, keys[j * stride + offset..][..q.len()]) * scale`, each [`dot`] in its
/// fixed eight-lane order. The AVX2 path computes 8 keys at once (their lanes side by side) with
/// the same operations per key, so it gives the same bits.
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
    if level == SimdLevel::Avx2 && head_dim.is_multiple_of(8) {
        // SAFETY: `Avx2` is only chosen when the CPU has it; every key read was checked above.
        unsafe { avx2::attention_scores(q, keys, stride, offset, scale, scores) };
        return;
    }
    let _ = level;
    for (j, s) in scores.iter_mut().enumerate() {
        *s = dot(q, &keys[j * stride + offset..][..head_dim]) * scale;
    }
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
    if level == SimdLevel::Avx2 && head_dim.is_multiple_of(8) {
        // SAFETY: as in `attention_scores`.
        unsafe { avx2::weighted_sum(weights, values, stride, offset, out) };
        return;
    }
    let _ = level;
    out.fill(0.0);
    for (j, &w) in weights.iter().enumerate() {
        let v = &values[j * stride + offset..][..head_dim];
        for (o, &v) in out.iter_mut().zip(v) {
            *o += w * v;
        }
    }
}

/// Σ nibble_j · a_j with the GGUF nibble order: byte `j` holds value `j` (low) and `j + 16` (high).
fn dot_nibbles(q: &[u8], a: &[i8]) -> i32 {
    let mut sum = 0i32;
    for j in 0..16 {
        sum += i32::from(q[j] & 0x0f) * i32::from(a[j]);
        sum += i32::from(q[j] >> 4) * i32::from(a[j + 16]);
    }
    sum
}

struct SharedOut(*mut f32);
// SAFETY: used only to write disjoint indices from the chunks of one parallel loop.
unsafe impl Sync for SharedOut {}
impl SharedOut {
    /// # Safety
    /// `index` is in bounds and no other thread writes it during the loop.
    unsafe fn write(&self, index: usize, value: f32) {
        unsafe { *self.0.add(index) = value };
    }
}

/// Activations of one or more tokens quantized to 8-bit blocks (see the module docs).
#[derive(Debug, Default, Clone)]
pub struct QuantizedActivations {
    tokens: usize,
    blocks: usize,
    d: Vec<f32>,
    s: Vec<f32>,
    qsum: Vec<i32>,
    q: Vec<i8>,
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
            #[cfg(target_arch = "x86_64")]
            if level == SimdLevel::Avx2 {
                let q: &mut [i8; BLOCK] = (&mut self.q[i * BLOCK..][..BLOCK]).try_into().unwrap();
                // SAFETY: `Avx2` is only chosen when the CPU has it.
                if let Some((d, sum)) = unsafe { avx2::quantize_block(values, q) } {
                    self.d[i] = d;
                    self.qsum[i] = sum;
                    self.s[i] = d * sum as f32;
                    continue;
                }
            }
            let _ = level;
            let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q = &mut self.q[i * BLOCK..][..BLOCK];
            let mut sum = 0i32;
            for (q, &v) in q.iter_mut().zip(values) {
                let r = (v * inverse).round().clamp(-127.0, 127.0) as i8;
                *q = r;
                sum += i32::from(r);
            }
            self.d[i] = d;
            self.qsum[i] = sum;
            self.s[i] = d * sum as f32;
        }
    }

    fn block(&self, token: usize, block: usize) -> &[i8] {
        &self.q[(token * self.blocks + block) * BLOCK..][..BLOCK]
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{QMatrix, QuantizedActivations, WeightFormat, BLOCK, GROUP};

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
                // SAFETY: as in `one_key`.
                let qv = unsafe { _mm256_loadu_ps(q.as_ptr().add(8 * c)) };
                for (k, acc) in acc.iter_mut().enumerate() {
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
            *s = super::combine_lanes(lanes) * scale;
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
    /// The CPU has AVX2.
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
                unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
            };
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
        let total = super::combine_lanes(lanes);
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

    /// One block of [`super::QuantizedActivations::quantize`] with the same operations, 8 values
    /// per instruction: `amax`, `d = amax / 127`, `q_i = clamp(round(x_i * (1/d)), ±127)` with
    /// halves rounded away from zero (`t = trunc(y)`, plus `±1` where `|y − t| ≥ 0.5`; `y − t`
    /// is exact), the exact integer sum. Returns `None`, leaving the block to the portable code,
    /// when a value or `1/d` is not finite (where `max`, `min` and the float-to-int conversion
    /// differ from the scalar code).
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize_block(values: &[f32], q: &mut [i8; BLOCK]) -> Option<(f32, i32)> {
        assert_eq!(values.len(), BLOCK);
        let sign_bit = _mm256_set1_ps(-0.0);
        // SAFETY: `values` holds 32 f32.
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
        let inverse = _mm256_set1_ps(inverse);
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
        // SAFETY: `q` holds 32 bytes.
        unsafe { _mm256_storeu_si256(q.as_mut_ptr().cast(), ordered) };
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
                // SAFETY: row `j`'s components `8c..8(c + width)` are inside `values`.
                let row = unsafe { values.as_ptr().add(j * stride + offset + 8 * c) };
                for (r, acc) in acc[..width].iter_mut().enumerate() {
                    let v = unsafe { _mm256_loadu_ps(row.add(8 * r)) };
                    *acc = _mm256_add_ps(*acc, _mm256_mul_ps(w, v));
                }
            }
            for (r, acc) in acc[..width].iter().enumerate() {
                // SAFETY: components `8(c + r)..+8` are inside `out`.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(8 * (c + r)), *acc) };
            }
            c += width;
        }
    }

    /// Same operations per lane as `QMatrix::group_dot_portable`, for `T` consecutive tokens
    /// starting at `token` (each weight block is unpacked once for all of them).
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn group_dot<const T: usize>(
        m: &QMatrix,
        group: usize,
        x: &QuantizedActivations,
        token: usize,
        lanes: &mut [[f32; GROUP]],
    ) {
        // SAFETY: the callers' contract, passed on.
        unsafe {
            match m.format {
                WeightFormat::Q4_0 => group_dot_q4::<T, false>(m, group, x, token, lanes),
                WeightFormat::Q4_1 => group_dot_q4::<T, true>(m, group, x, token, lanes),
                WeightFormat::Q8_0 => group_dot_any::<T>(m, group, x, token, lanes),
            }
        }
    }

    /// [`group_dot`] for Q4_0 (`MIN = false`) and Q4_1 (`MIN = true`), the format fixed at compile
    /// time: the block's 8 rows are unpacked into registers once, then each token's integer sums
    /// are reduced right away (integer sums are exact, so their grouping is free), which keeps
    /// the live registers within the 16 AVX2 has. The f32 operations per (row, token) are those of
    /// the portable code, in the same order.
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn group_dot_q4<const T: usize, const MIN: bool>(
        m: &QMatrix,
        group: usize,
        x: &QuantizedActivations,
        token: usize,
        lanes: &mut [[f32; GROUP]],
    ) {
        let ones = _mm256_set1_epi16(1);
        let low_nibbles = _mm_set1_epi8(0x0f);
        let mut acc = [_mm256_setzero_ps(); T];
        for block in 0..m.blocks {
            let base = (group * m.blocks + block) * GROUP;
            // SAFETY (all loads): as in `group_dot_any`.
            let q = unsafe { m.quants.as_ptr().add(base * 16) };
            let mut w = [_mm256_setzero_si256(); GROUP];
            for (lane, w) in w.iter_mut().enumerate() {
                let packed = unsafe { _mm_loadu_si128(q.add(lane * 16).cast()) };
                let low = _mm_and_si128(packed, low_nibbles);
                let high = _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibbles);
                *w = _mm256_set_m128i(high, low);
            }
            let dw =
                _mm256_cvtph_ps(unsafe { _mm_loadu_si128(m.scales.as_ptr().add(base).cast()) });
            let mw = if MIN {
                _mm256_cvtph_ps(unsafe { _mm_loadu_si128(m.mins.as_ptr().add(base).cast()) })
            } else {
                _mm256_setzero_ps()
            };
            for (t, acc) in acc.iter_mut().enumerate() {
                let at = (token + t) * x.blocks + block;
                let a = unsafe { _mm256_loadu_si256(x.q.as_ptr().add(at * BLOCK).cast()) };
                let dot = |lane: usize| _mm256_madd_epi16(_mm256_maddubs_epi16(w[lane], a), ones);
                let t0 = _mm256_hadd_epi32(
                    _mm256_hadd_epi32(dot(0), dot(1)),
                    _mm256_hadd_epi32(dot(2), dot(3)),
                );
                let t1 = _mm256_hadd_epi32(
                    _mm256_hadd_epi32(dot(4), dot(5)),
                    _mm256_hadd_epi32(dot(6), dot(7)),
                );
                let mut isum = _mm256_add_epi32(
                    _mm256_permute2x128_si256(t0, t1, 0x20),
                    _mm256_permute2x128_si256(t0, t1, 0x31),
                );
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

    /// [`group_dot`] for any format, the format read per block (used for Q8_0).
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn group_dot_any<const T: usize>(
        m: &QMatrix,
        group: usize,
        x: &QuantizedActivations,
        token: usize,
        lanes: &mut [[f32; GROUP]],
    ) {
        let ones = _mm256_set1_epi16(1);
        let low_nibbles = _mm_set1_epi8(0x0f);
        let quant_bytes = m.format.quant_bytes();
        let mut acc = [_mm256_setzero_ps(); T];
        for block in 0..m.blocks {
            let base = (group * m.blocks + block) * GROUP;
            // SAFETY (all loads): `base + 8 <= scales.len()` and `(base + 8) * quant_bytes <=
            // quants.len()` because the matrix stores whole groups; for every token `t` of the
            // tile, `at < x.d.len()` and the block's 32 bytes are inside `x.q`.
            let q = unsafe { m.quants.as_ptr().add(base * quant_bytes) };
            let mut activations = [_mm256_setzero_si256(); T];
            for (t, a) in activations.iter_mut().enumerate() {
                let at = (token + t) * x.blocks + block;
                *a = unsafe { _mm256_loadu_si256(x.q.as_ptr().add(at * BLOCK).cast()) };
            }
            // Per row: unpack its block once, multiply it with every token's block.
            let mut sums = [[_mm256_setzero_si256(); GROUP]; T];
            for lane in 0..GROUP {
                match m.format {
                    WeightFormat::Q4_0 | WeightFormat::Q4_1 => {
                        let packed = unsafe { _mm_loadu_si128(q.add(lane * 16).cast()) };
                        let low = _mm_and_si128(packed, low_nibbles);
                        let high = _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibbles);
                        let w = _mm256_set_m128i(high, low);
                        for (sums, &a) in sums.iter_mut().zip(&activations) {
                            sums[lane] = _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), ones);
                        }
                    }
                    WeightFormat::Q8_0 => {
                        let w = unsafe { _mm256_loadu_si256(q.add(lane * 32).cast()) };
                        // |w| · (a · sign w): unsigned × signed, pairs at most 2·128·127.
                        let magnitude = _mm256_sign_epi8(w, w);
                        for (sums, &a) in sums.iter_mut().zip(&activations) {
                            let signed = _mm256_sign_epi8(a, w);
                            let products = _mm256_maddubs_epi16(magnitude, signed);
                            sums[lane] = _mm256_madd_epi16(products, ones);
                        }
                    }
                }
            }
            // F16C widening is exact, like `f16_to_f32`.
            let dw =
                _mm256_cvtph_ps(unsafe { _mm_loadu_si128(m.scales.as_ptr().add(base).cast()) });
            for (t, (acc, sums)) in acc.iter_mut().zip(sums).enumerate() {
                let at = (token + t) * x.blocks + block;
                let mut isum = reduce8(sums);
                if m.format == WeightFormat::Q4_0 {
                    isum = _mm256_sub_epi32(isum, _mm256_set1_epi32(8 * x.qsum[at]));
                }
                let isum = _mm256_cvtepi32_ps(isum);
                let scale = _mm256_mul_ps(dw, _mm256_set1_ps(x.d[at]));
                let mut term = _mm256_mul_ps(scale, isum);
                if m.format == WeightFormat::Q4_1 {
                    let mw = _mm256_cvtph_ps(unsafe {
                        _mm_loadu_si128(m.mins.as_ptr().add(base).cast())
                    });
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
}

/// Σ x_i in the fixed eight-lane order (see the module docs).
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

/// Σ x_i² in the fixed eight-lane order.
fn sum_squares(x: &[f32]) -> f32 {
    dot(x, x)
}

fn combine_lanes(l: [f32; 8]) -> f32 {
    ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
}

/// RMSNorm: `y_i = (x_i * r) * w_i` with `r = 1 / sqrt(Σx²/n + eps)` (sqrt and division are
/// correctly rounded in IEEE arithmetic, hence the same everywhere).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mean = sum_squares(x) / x.len() as f32;
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

/// [`softmax`] with a given instruction set: the same bits. The AVX2 path subtracts, sums and
/// divides 8 values per instruction, and evaluates `libm::expf`'s own algorithm (FreeBSD's
/// `e_expf`: argument reduction by `k·ln2`, a degree-2 rational approximation, scaling by `2^k`)
/// on 8 inputs at once, operation for operation in f32, wherever the inputs lie in (−80, 80):
/// there every branch of that algorithm is a lane-wise select and `2^k` is a normal number, so
/// the scaling is exact. A group of 8 with any other input (a very negative score, NaN) calls
/// `libm::expf` itself.
pub fn softmax_with(level: SimdLevel, x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if level == SimdLevel::Avx2 {
        // SAFETY: `Avx2` is only chosen when the CPU has it.
        unsafe { avx2::softmax(x) };
        return;
    }
    let _ = level;
    softmax(x)
}

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

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    use super::*;

    fn random_f16_scale(rng: &mut ChaCha20Rng) -> [u8; 2] {
        // A normal half in [2⁻¹⁰, 2⁻²), either sign.
        let exponent = 5 + rng.next_u32() % 8;
        let bits = ((rng.next_u32() & 1) << 15) | (exponent << 10) | (rng.next_u32() & 0x3ff);
        (bits as u16).to_le_bytes()
    }

    fn random_matrix(format: WeightFormat, rows: usize, cols: usize, seed: u64) -> QMatrix {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut bytes = Vec::new();
        for _ in 0..rows * cols / BLOCK {
            bytes.extend(random_f16_scale(&mut rng));
            if format == WeightFormat::Q4_1 {
                bytes.extend(random_f16_scale(&mut rng));
            }
            for _ in 0..format.quant_bytes() {
                bytes.push(rng.next_u32() as u8);
            }
        }
        QMatrix::from_gguf_bytes(format, rows, cols, &bytes).unwrap()
    }

    fn random_activations(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| (rng.next_u32() as i32) as f32 / 2f32.powi(29))
            .collect()
    }

    #[test]
    fn f16_conversion_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        for bits in 0..=u16::MAX {
            // The value by definition: (-1)^s · 2^(e-15) · (1 + m/1024), or 2^-14 · m/1024.
            let (e, m) = (i32::from((bits >> 10) & 0x1f), f64::from(bits & 0x3ff));
            if e == 0x1f {
                continue;
            }
            let magnitude = if e == 0 {
                2f64.powi(-14) * m / 1024.0
            } else {
                2f64.powi(e - 15) * (1.0 + m / 1024.0)
            };
            let value = if bits & 0x8000 != 0 {
                -magnitude
            } else {
                magnitude
            };
            assert_eq!(f64::from(f16_to_f32(bits)), value, "{bits:#06x}");
        }
    }

    /// The reference: the block formula of the module docs, written out per row.
    fn reference_row(m: &QMatrix, row: usize, x: &QuantizedActivations, token: usize) -> f32 {
        let mut acc = 0f32;
        let mut bytes = Vec::new();
        m.append_row_gguf_bytes(row, &mut bytes);
        for block in 0..m.blocks {
            let src = &bytes[block * m.format.block_bytes()..][..m.format.block_bytes()];
            let dw = f16_to_f32(u16::from_le_bytes([src[0], src[1]]));
            let at = token * x.blocks + block;
            let a = x.block(token, block);
            let mut weights = [0i32; BLOCK];
            match m.format {
                WeightFormat::Q8_0 => {
                    for j in 0..BLOCK {
                        weights[j] = i32::from(src[2 + j] as i8);
                    }
                }
                WeightFormat::Q4_0 | WeightFormat::Q4_1 => {
                    let q = &src[src.len() - 16..];
                    let offset = if m.format == WeightFormat::Q4_0 { 8 } else { 0 };
                    for j in 0..16 {
                        weights[j] = i32::from(q[j] & 15) - offset;
                        weights[j + 16] = i32::from(q[j] >> 4) - offset;
                    }
                }
            }
            let isum: i32 = (0..BLOCK).map(|j| weights[j] * i32::from(a[j])).sum();
            let mut term = (dw * x.d[at]) * isum as f32;
            if m.format == WeightFormat::Q4_1 {
                let mw = f16_to_f32(u16::from_le_bytes([src[2], src[3]]));
                term += mw * x.s[at];
            }
            acc += term;
        }
        acc
    }

    #[test]
    fn every_instruction_set_gives_the_reference_bits() {
        let mut levels = vec![SimdLevel::Portable];
        if detected_level() != SimdLevel::Portable {
            levels.push(detected_level());
        }
        for (i, format) in [WeightFormat::Q4_0, WeightFormat::Q4_1, WeightFormat::Q8_0]
            .into_iter()
            .enumerate()
        {
            // 21 rows: two whole groups and a partial one; 7 tokens: a whole tile and 3 more.
            let (rows, cols, tokens) = (21, 7 * BLOCK, 7);
            let m = random_matrix(format, rows, cols, i as u64);
            let mut x = QuantizedActivations::default();
            x.quantize(
                &random_activations(tokens * cols, 100 + i as u64),
                tokens,
                cols,
            );
            for &level in &levels {
                let mut out = vec![0f32; tokens * rows];
                m.matmul_with(level, &x, &mut out);
                for token in 0..tokens {
                    for row in 0..rows {
                        assert_eq!(
                            out[token * rows + row].to_bits(),
                            reference_row(&m, row, &x, token).to_bits(),
                            "{format:?} {level:?} row {row} token {token}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn products_do_not_depend_on_the_thread_count() {
        let m = random_matrix(WeightFormat::Q4_1, 200, 576, 9);
        let mut x = QuantizedActivations::default();
        x.quantize(&random_activations(2 * 576, 10), 2, 576);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0f32; 400];
            pool.install(|| m.matmul(&x, &mut out));
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(2));
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn stacking_keeps_every_row() {
        let a = random_matrix(WeightFormat::Q4_1, 10, 64, 1);
        let b = random_matrix(WeightFormat::Q4_1, 5, 64, 2);
        let stacked = QMatrix::stack(&[a, b]).unwrap();
        let (a, b) = (
            random_matrix(WeightFormat::Q4_1, 10, 64, 1),
            random_matrix(WeightFormat::Q4_1, 5, 64, 2),
        );
        let mut x = QuantizedActivations::default();
        x.quantize(&random_activations(64, 3), 1, 64);
        let (mut oa, mut ob, mut os) = (vec![0f32; 10], vec![0f32; 5], vec![0f32; 15]);
        a.matmul(&x, &mut oa);
        b.matmul(&x, &mut ob);
        stacked.matmul(&x, &mut os);
        assert_eq!(os, [oa, ob].concat());
    }

    #[test]
    fn quantization_follows_the_definition() {
        let mut values = vec![0f32; 64];
        values[0] = 1.27;
        values[1] = -0.635;
        values[2] = 0.005; // 0.5 after scaling: rounds away from zero
        let mut x = QuantizedActivations::default();
        x.quantize(&values, 1, 64);
        assert_eq!(x.d[0], 1.27f32 / 127.0);
        assert_eq!(x.block(0, 0)[0], 127);
        assert_eq!(x.block(0, 0)[1], -64);
        assert_eq!(x.block(0, 0)[2], 1);
        assert_eq!(x.d[1], 0.0);
        assert!(x.block(0, 1).iter().all(|&q| q == 0));
        assert_eq!(x.qsum[0], 127 - 64 + 1);
    }

    /// The attention kernels (scores, softmax, weighted sum) at every instruction set give the
    /// bits of the plain formulas, for head sizes with and without an AVX2 path and context
    /// lengths with a partial group of 8.
    #[test]
    fn attention_kernels_give_the_reference_bits() {
        let mut levels = vec![SimdLevel::Portable];
        if detected_level() != SimdLevel::Portable {
            levels.push(detected_level());
        }
        for (seed, (head_dim, positions)) in [(64, 1), (64, 8), (64, 333), (24, 19), (20, 9)]
            .into_iter()
            .enumerate()
        {
            let (stride, offset) = (3 * head_dim, head_dim);
            let seed = 200 + 10 * seed as u64;
            let q = random_activations(head_dim, seed);
            let keys = random_activations(positions * stride, seed + 1);
            let values = random_activations(positions * stride, seed + 2);
            let scale = 1.0 / (head_dim as f32).sqrt();
            let mut expected: Vec<f32> = (0..positions)
                .map(|j| dot(&q, &keys[j * stride + offset..][..head_dim]) * scale)
                .collect();
            let expected_scores = expected.clone();
            softmax(&mut expected);
            let mut expected_out = vec![0f32; head_dim];
            for (j, &a) in expected.iter().enumerate() {
                for (d, o) in expected_out.iter_mut().enumerate() {
                    *o += a * values[j * stride + offset + d];
                }
            }
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            for &level in &levels {
                let mut scores = vec![0f32; positions];
                attention_scores(level, &q, &keys, stride, offset, scale, &mut scores);
                assert_eq!(
                    bits(&scores),
                    bits(&expected_scores),
                    "{level:?} {head_dim} scores"
                );
                softmax_with(level, &mut scores);
                assert_eq!(
                    bits(&scores),
                    bits(&expected),
                    "{level:?} {head_dim} softmax"
                );
                let mut out = vec![1f32; head_dim];
                weighted_sum(level, &scores, &values, stride, offset, &mut out);
                assert_eq!(
                    bits(&out),
                    bits(&expected_out),
                    "{level:?} {head_dim} output"
                );
            }
        }
    }

    /// The AVX2 softmax evaluates `libm::expf` itself: over inputs spread across (−100, 100),
    /// including the branch boundaries, its exponentials equal libm's bit for bit.
    #[test]
    fn vector_expf_equals_libm() {
        if detected_level() != SimdLevel::Avx2 {
            return;
        }
        let mut inputs: Vec<f32> = Vec::new();
        let mut bits = 0u32;
        while bits < 0x42c8_0000 {
            inputs.push(f32::from_bits(bits));
            inputs.push(-f32::from_bits(bits));
            bits += 257;
        }
        for boundary in [0x3900_0000u32, 0x3eb1_7218, 0x3f85_1592, 0x42a0_0000] {
            for b in boundary - 3..=boundary + 3 {
                inputs.push(f32::from_bits(b));
                inputs.push(-f32::from_bits(b));
            }
        }
        for chunk in inputs.chunks(8 * 1024) {
            // Shift so that the maximum is 0: softmax then exponentiates the inputs unchanged.
            let max = chunk.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let shifted: Vec<f32> = chunk.iter().map(|&v| v - max).collect();
            let mut expected = shifted.clone();
            softmax(&mut expected);
            let mut got = shifted.clone();
            softmax_with(SimdLevel::Avx2, &mut got);
            for ((e, g), x) in expected.iter().zip(&got).zip(&shifted) {
                assert_eq!(e.to_bits(), g.to_bits(), "softmax term for input {x}");
            }
            // The exponentials themselves, without the division: a softmax of one group.
            for group in chunk.chunks_exact(8).chain(shifted.chunks_exact(8)) {
                let mut exps = [0f32; 8];
                // SAFETY: the CPU has AVX2 (checked above).
                unsafe {
                    use std::arch::x86_64::*;
                    let v = _mm256_loadu_ps(group.as_ptr());
                    if group.iter().all(|v| v.abs() < 80.0) {
                        _mm256_storeu_ps(exps.as_mut_ptr(), avx2::expf_in_range(v));
                        for (e, &x) in exps.iter().zip(group) {
                            assert_eq!(e.to_bits(), libm::expf(x).to_bits(), "expf({x})");
                        }
                    }
                }
            }
        }
    }

    /// The AVX2 quantization of a block gives the bits of the definition, on random blocks, on
    /// values that land exactly on halves, and hands back the blocks it must not take.
    #[test]
    fn vector_quantization_equals_the_definition() {
        if detected_level() != SimdLevel::Avx2 {
            return;
        }
        let reference = |values: &[f32]| {
            let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q: Vec<i8> = values
                .iter()
                .map(|&v| (v * inverse).round().clamp(-127.0, 127.0) as i8)
                .collect();
            let sum: i32 = q.iter().map(|&v| i32::from(v)).sum();
            (d, sum, q)
        };
        let mut blocks: Vec<Vec<f32>> = (0..2000)
            .map(|i| random_activations(BLOCK, 500 + i))
            .collect();
        // Halves: amax 127 makes d = 1, so x·(1/d) = x exactly.
        blocks.push(
            (0..BLOCK)
                .map(|i| i as f32 - 15.5)
                .chain([127.0])
                .skip(1)
                .collect(),
        );
        blocks.push((0..BLOCK).map(|i| -(i as f32) * 2.5 - 0.5).collect());
        blocks.push(vec![0.0; BLOCK]);
        blocks.push(
            (0..BLOCK)
                .map(|i| if i % 2 == 0 { -0.0 } else { 1e-30 })
                .collect(),
        );
        for values in &blocks {
            let mut q = [0i8; BLOCK];
            // SAFETY: the CPU has AVX2 (checked above).
            let (d, sum) = unsafe { avx2::quantize_block(values, &mut q) }
                .unwrap_or_else(|| panic!("a finite block was refused: {values:?}"));
            let (rd, rsum, rq) = reference(values);
            assert_eq!((d.to_bits(), sum, &q[..]), (rd.to_bits(), rsum, &rq[..]));
        }
        let mut bad = vec![1.0f32; BLOCK];
        bad[3] = f32::INFINITY;
        assert!(unsafe { avx2::quantize_block(&bad, &mut [0; BLOCK]) }.is_none());
        bad[3] = f32::NAN;
        assert!(unsafe { avx2::quantize_block(&bad, &mut [0; BLOCK]) }.is_none());
        let subnormal = vec![1e-42f32; BLOCK];
        assert!(unsafe { avx2::quantize_block(&subnormal, &mut [0; BLOCK]) }.is_none());
    }

    #[test]
    fn reductions_use_the_documented_order() {
        let x: Vec<f32> = (0..19).map(|i| 1.0 + i as f32 * 1e-7).collect();
        let mut lanes = [0f32; 8];
        for (i, v) in x.iter().enumerate() {
            lanes[i % 8] += v;
        }
        assert_eq!(sum_lanes(&x).to_bits(), combine_lanes(lanes).to_bits());
        let mut p = vec![1.0f32, 2.0, 3.0];
        softmax(&mut p);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6 && p[2] > p[1]);
    }
}
