//! The kernels' unit tests: every instruction set gives the bits of the specification (products
//! against a reference written out per row, quantization, softmax, `expf` and attention against
//! the plain formulas), on random data and on edge cases; thread counts change nothing.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::spec::combine_lanes;
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
    for _ in 0..rows * cols / format.block_len() {
        let quants: Vec<u8> = (0..format.quant_bytes())
            .map(|_| rng.next_u32() as u8)
            .collect();
        if format == WeightFormat::Q6_K {
            bytes.extend(&quants);
            bytes.extend(random_f16_scale(&mut rng));
            continue;
        }
        bytes.extend(random_f16_scale(&mut rng));
        if format == WeightFormat::Q4_1 || format == WeightFormat::Q4_K {
            bytes.extend(random_f16_scale(&mut rng));
        }
        bytes.extend(quants);
    }
    QMatrix::from_gguf_bytes(format, rows, cols, &bytes).unwrap()
}

const ALL_FORMATS: [WeightFormat; 6] = [
    WeightFormat::Q4_0,
    WeightFormat::Q4_1,
    WeightFormat::Q5_0,
    WeightFormat::Q8_0,
    WeightFormat::Q4_K,
    WeightFormat::Q6_K,
];

fn half_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// ggml's dequantization of one GGUF block (`dequantize_row_*` in ggml-quants.c), transcribed
/// independently of the kernels, as integers: per value its quantized weight, the integer scale
/// and minimum of its sub-block (1 and 0 for the 32-value formats), and the block's `d`, `dmin`.
struct GgmlBlock {
    weights: Vec<i32>,
    scales: Vec<i32>,
    mins: Vec<i32>,
    d: f32,
    dmin: f32,
}

fn ggml_block(format: WeightFormat, b: &[u8]) -> GgmlBlock {
    let n = format.block_len();
    let (mut weights, mut scales, mut mins) = (vec![0i32; n], vec![1i32; n], vec![0i32; n]);
    let (mut d, mut dmin) = (half_at(b, 0), 0.0);
    match format {
        WeightFormat::Q4_0 | WeightFormat::Q4_1 => {
            let qs = &b[b.len() - 16..];
            let offset = if format == WeightFormat::Q4_0 { 8 } else { 0 };
            for j in 0..16 {
                weights[j] = i32::from(qs[j] & 15) - offset;
                weights[j + 16] = i32::from(qs[j] >> 4) - offset;
            }
            if format == WeightFormat::Q4_1 {
                dmin = half_at(b, 2);
            }
        }
        WeightFormat::Q5_0 => {
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            let qs = &b[6..22];
            for j in 0..16 {
                let xh_0 = ((qh >> j) << 4) & 0x10;
                let xh_1 = (qh >> (j + 12)) & 0x10;
                weights[j] = ((u32::from(qs[j]) & 0x0f) | xh_0) as i32 - 16;
                weights[j + 16] = ((u32::from(qs[j]) >> 4) | xh_1) as i32 - 16;
            }
        }
        WeightFormat::Q8_0 => {
            for j in 0..32 {
                weights[j] = i32::from(b[2 + j] as i8);
            }
        }
        WeightFormat::Q4_K => {
            dmin = half_at(b, 2);
            let sc = &b[4..16];
            let get_scale_min_k4 = |j: usize| -> (i32, i32) {
                if j < 4 {
                    (i32::from(sc[j] & 63), i32::from(sc[j + 4] & 63))
                } else {
                    (
                        i32::from((sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4)),
                        i32::from((sc[j + 4] >> 4) | ((sc[j] >> 6) << 4)),
                    )
                }
            };
            let mut q = &b[16..144];
            let mut y = 0;
            let mut is = 0;
            for _ in (0..256).step_by(64) {
                let (sc1, m1) = get_scale_min_k4(is);
                let (sc2, m2) = get_scale_min_k4(is + 1);
                for l in 0..32 {
                    weights[y + l] = i32::from(q[l] & 0xF);
                    (scales[y + l], mins[y + l]) = (sc1, m1);
                }
                for l in 0..32 {
                    weights[y + 32 + l] = i32::from(q[l] >> 4);
                    (scales[y + 32 + l], mins[y + 32 + l]) = (sc2, m2);
                }
                q = &q[32..];
                is += 2;
                y += 64;
            }
        }
        WeightFormat::Q6_K => {
            d = half_at(b, 208);
            let (mut ql, mut qh, mut sc) = (&b[..128], &b[128..192], &b[192..208]);
            let mut y = 0;
            for _ in (0..256).step_by(128) {
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                    let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                    for (k, q) in [q1, q2, q3, q4].into_iter().enumerate() {
                        weights[y + l + 32 * k] = q;
                        scales[y + l + 32 * k] = i32::from(sc[is + 2 * k] as i8);
                    }
                }
                y += 128;
                ql = &ql[64..];
                qh = &qh[32..];
                sc = &sc[8..];
            }
        }
    }
    GgmlBlock {
        weights,
        scales,
        mins,
        d,
        dmin,
    }
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

/// The reference: the block formulas of the module docs, written out per row over ggml's
/// decoding of the row's GGUF bytes.
fn reference_row(m: &QMatrix, row: usize, x: &QuantizedActivations, token: usize) -> f32 {
    let mut acc = 0f32;
    let mut bytes = Vec::new();
    m.append_row_gguf_bytes(row, &mut bytes);
    let block_bytes = m.format.block_bytes();
    for (block, src) in bytes.chunks_exact(block_bytes).enumerate() {
        let g = ggml_block(m.format, src);
        let at = token * x.blocks + block;
        let a = x.block(token, block);
        let term = match m.format {
            WeightFormat::Q4_K | WeightFormat::Q6_K => {
                let step = if m.format == WeightFormat::Q4_K {
                    32
                } else {
                    16
                };
                let (mut isum, mut msum) = (0i32, 0i32);
                for s in (0..256).step_by(step) {
                    let sub: i32 = (s..s + step).map(|j| g.weights[j] * i32::from(a[j])).sum();
                    let asum: i32 = (s..s + step).map(|j| i32::from(a[j])).sum();
                    isum += g.scales[s] * sub;
                    msum += g.mins[s] * asum;
                }
                let term = (g.d * x.d[at]) * isum as f32;
                if m.format == WeightFormat::Q4_K {
                    term - (g.dmin * x.d[at]) * msum as f32
                } else {
                    term
                }
            }
            _ => {
                let isum: i32 = (0..BLOCK).map(|j| g.weights[j] * i32::from(a[j])).sum();
                let mut term = (g.d * x.d[at]) * isum as f32;
                if m.format == WeightFormat::Q4_1 {
                    term += g.dmin * x.s[at];
                }
                term
            }
        };
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
    for (i, format) in ALL_FORMATS.into_iter().enumerate() {
        // 21 rows: two whole groups and a partial one; 11 tokens: a whole tile and 3 more.
        let (rows, cols, tokens) = (21, 3 * format.block_len(), 11);
        let cols = if format.block_len() == BLOCK {
            7 * BLOCK
        } else {
            cols
        };
        let m = random_matrix(format, rows, cols, i as u64);
        let mut x = QuantizedActivations::default();
        x.quantize_for(
            format,
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

/// The persistent pool: the same bits whatever its size and the split, and two callers at once
/// (one finds it busy and runs its parts itself) both get their products right.
#[test]
fn products_on_the_pool_do_not_depend_on_its_size_or_on_other_callers() {
    use super::pool::Pool;
    let m = random_matrix(WeightFormat::Q4_1, 300, 576, 11);
    let mut x = QuantizedActivations::default();
    x.quantize(&random_activations(3 * 576, 12), 3, 576);
    let product = |pool: &Pool, threads: usize| {
        let mut out = vec![0f32; 900];
        m.matmul_on(pool, threads, simd_level(), &x, &mut out);
        out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    };
    let one = Pool::new(1);
    let expected = product(&one, 1);
    for threads in [2, 3, 4] {
        let pool = Pool::new(threads);
        for _ in 0..50 {
            assert_eq!(product(&pool, threads), expected, "{threads} threads");
        }
    }
    let shared = Pool::new(2);
    std::thread::scope(|s| {
        let callers: Vec<_> = (0..4)
            .map(|_| s.spawn(|| (0..100).all(|_| product(&shared, 2) == expected)))
            .collect();
        for caller in callers {
            assert!(
                caller.join().unwrap(),
                "a product differed under concurrent callers"
            );
        }
    });
    // Every part runs exactly once.
    let counts: Vec<std::sync::atomic::AtomicUsize> = (0..37)
        .map(|_| std::sync::atomic::AtomicUsize::new(0))
        .collect();
    shared.run(37, &|i| {
        counts[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(counts
        .iter()
        .all(|c| c.load(std::sync::atomic::Ordering::Relaxed) == 1));
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
            // SAFETY: the CPU has AVX2 (checked above); `group` and `exps` hold 8 f32 each.
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
        // SAFETY: the CPU has AVX2 (checked above); `values` holds BLOCK f32.
        let (d, sum) = unsafe { avx2::quantize_block(values, &mut q) }
            .unwrap_or_else(|| panic!("a finite block was refused: {values:?}"));
        let (rd, rsum, rq) = reference(values);
        assert_eq!((d.to_bits(), sum, &q[..]), (rd.to_bits(), rsum, &rq[..]));
    }
    let mut bad = vec![1.0f32; BLOCK];
    bad[3] = f32::INFINITY;
    // SAFETY: the CPU has AVX2 (checked above); `bad` holds BLOCK values.
    assert!(unsafe { avx2::quantize_block(&bad, &mut [0; BLOCK]) }.is_none());
    bad[3] = f32::NAN;
    // SAFETY: as above.
    assert!(unsafe { avx2::quantize_block(&bad, &mut [0; BLOCK]) }.is_none());
    let subnormal = vec![1e-42f32; BLOCK];
    // SAFETY: as above.
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

/// The products approximate the exact dot product of the dequantized weights (ggml's formulas,
/// in f64) with the dequantized activations: catches a layout read wrongly by both the kernels
/// and the reference. And `dequantize_row` gives ggml's values.
#[test]
fn products_approximate_the_dequantized_dot_product() {
    for (i, format) in ALL_FORMATS.into_iter().enumerate() {
        let (rows, cols, tokens) = (13, 4 * SUPER_BLOCK, 2);
        let m = random_matrix(format, rows, cols, 40 + i as u64);
        let values = random_activations(tokens * cols, 60 + i as u64);
        let mut x = QuantizedActivations::default();
        x.quantize_for(format, &values, tokens, cols);
        let mut out = vec![0f32; tokens * rows];
        m.matmul(&x, &mut out);
        for row in 0..rows {
            let mut bytes = Vec::new();
            m.append_row_gguf_bytes(row, &mut bytes);
            let (mut weights, mut magnitudes) = (Vec::new(), Vec::new());
            for src in bytes.chunks_exact(format.block_bytes()) {
                let g = ggml_block(format, src);
                for j in 0..format.block_len() {
                    let (scaled, min) = match format {
                        WeightFormat::Q4_1 => {
                            (f64::from(g.d) * f64::from(g.weights[j]), -f64::from(g.dmin))
                        }
                        _ => (
                            f64::from(g.d) * f64::from(g.scales[j]) * f64::from(g.weights[j]),
                            f64::from(g.dmin) * f64::from(g.mins[j]),
                        ),
                    };
                    weights.push(scaled - min);
                    magnitudes.push(scaled.abs() + min.abs());
                }
            }
            let mut dequantized = vec![0f32; cols];
            m.dequantize_row(row, &mut dequantized);
            for ((a, b), magnitude) in dequantized.iter().zip(&weights).zip(&magnitudes) {
                let error = (f64::from(*a) - b).abs();
                assert!(error <= 3e-7 * magnitude, "{format:?}: {a} vs {b}");
            }
            for token in 0..tokens {
                let a = &values[token * cols..][..cols];
                let exact: f64 = weights.iter().zip(a).map(|(w, &a)| w * f64::from(a)).sum();
                let scale: f64 = weights
                    .iter()
                    .zip(a)
                    .map(|(w, &a)| (w * f64::from(a)).abs())
                    .sum();
                let got = f64::from(out[token * rows + row]);
                assert!(
                    (got - exact).abs() <= 0.02 * scale,
                    "{format:?} row {row}: {got} vs {exact} (scale {scale})"
                );
            }
        }
    }
}

/// The superblock quantization of activations: the same rule over 256 values at every
/// instruction set, and the 16-value sums.
#[test]
fn superblock_quantization_follows_the_definition() {
    let values = random_activations(3 * SUPER_BLOCK, 77);
    let mut x = QuantizedActivations::default();
    x.quantize_for(WeightFormat::Q6_K, &values, 1, 3 * SUPER_BLOCK);
    for (b, chunk) in values.chunks_exact(SUPER_BLOCK).enumerate() {
        let mut q = [0i8; SUPER_BLOCK];
        let (d, sum) = spec::quantize_block(chunk, &mut q);
        assert_eq!(x.d[b].to_bits(), d.to_bits());
        assert_eq!(x.qsum[b], sum);
        assert_eq!(x.block(0, b), &q[..]);
        let sums: Vec<i32> = q
            .chunks(16)
            .map(|c| c.iter().map(|&v| i32::from(v)).sum())
            .collect();
        assert_eq!(x.block_sums16(0, b), &sums[..]);
    }
}

/// GELU at every instruction set gives the bits of the specification, across the range where
/// the exponential is vectorised and outside it (a group of 8 with a large input).
#[test]
fn gelu_gives_the_reference_bits() {
    let mut gate: Vec<f32> = random_activations(4099, 901)
        .iter()
        .map(|v| v * 6.0)
        .collect();
    gate[17] = 40.0;
    gate[18] = -45.0;
    gate[100] = 0.0;
    gate[101] = -0.0;
    let up = random_activations(4099, 902);
    let mut expected = vec![0f32; gate.len()];
    for ((e, &g), &u) in expected.iter_mut().zip(&gate).zip(&up) {
        let z = (spec::GELU_TWO_SQRT_2_OVER_PI * g) * (1.0 + (spec::GELU_COEF_A * g) * g);
        *e = (g / (1.0 + libm::expf(-z))) * u;
    }
    for level in [SimdLevel::Portable, detected_level()] {
        let mut out = vec![0f32; gate.len()];
        gelu_mul_with(level, &gate, &up, &mut out);
        for (i, (o, e)) in out.iter().zip(&expected).enumerate() {
            assert_eq!(
                o.to_bits(),
                e.to_bits(),
                "{level:?} at {i}: gate {}",
                gate[i]
            );
        }
    }
    // It is GELU's tanh form.
    for g in [-3.0f32, -0.5, 0.0, 0.7, 2.5] {
        let tanh_form = 0.5 * g * (1.0 + (0.797_884_6 * g * (1.0 + 0.044_715 * g * g)).tanh());
        let mut out = [0f32];
        gelu_tanh_mul(&[g], &[1.0], &mut out);
        assert!((out[0] - tanh_form).abs() <= 1e-6 * (1.0 + g.abs()), "{g}");
    }
}

#[test]
fn silu_gives_the_reference_bits() {
    let mut gate: Vec<f32> = random_activations(4099, 903)
        .iter()
        .map(|v| v * 12.0)
        .collect();
    // Out of the vector expf's range (both signs), zeros of both signs, a NaN, infinities,
    // subnormals.
    for (i, v) in [
        90.0,
        -95.0,
        0.0,
        -0.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e-40,
        -1e-40,
        79.9,
        -79.9,
    ]
    .into_iter()
    .enumerate()
    {
        gate[16 + 9 * i] = v;
    }
    let up = random_activations(4099, 904);
    let mut expected = vec![0f32; gate.len()];
    for ((e, &g), &u) in expected.iter_mut().zip(&gate).zip(&up) {
        *e = (g / (1.0 + libm::expf(-g))) * u;
    }
    for level in [SimdLevel::Portable, detected_level()] {
        let mut out = vec![0f32; gate.len()];
        silu_mul_with(level, &gate, &up, &mut out);
        for (i, (o, e)) in out.iter().zip(&expected).enumerate() {
            assert!(
                o.to_bits() == e.to_bits() || (o.is_nan() && e.is_nan()),
                "{level:?} at {i}: gate {}: {o} vs {e}",
                gate[i]
            );
        }
    }
}
