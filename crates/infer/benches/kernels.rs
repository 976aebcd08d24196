//! The `mycel-det-v1` matrix–vector products on the default model's shapes, AVX2 (when the CPU has
//! it) against the portable code that gives the same bits:
//! `cargo bench -p mycel-infer --bench kernels`. One thread (the products split rows over rayon's
//! pool otherwise; run with RAYON_NUM_THREADS to compare).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mycel_infer::kernels::pool::Pool;
use mycel_infer::kernels::{self, QMatrix, QuantizedActivations, SimdLevel, WeightFormat};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn matrix(format: WeightFormat, rows: usize, cols: usize, rng: &mut ChaCha20Rng) -> QMatrix {
    let mut bytes = Vec::with_capacity(rows * cols / format.block_len() * format.block_bytes());
    for _ in 0..rows * cols / format.block_len() {
        let scales = if matches!(format, WeightFormat::Q4_1 | WeightFormat::Q4_K) {
            2
        } else {
            1
        };
        let quant_bytes = format.block_bytes() - 2 * scales;
        let quants: Vec<u8> = (0..quant_bytes).map(|_| rng.next_u32() as u8).collect();
        if format == WeightFormat::Q6_K {
            bytes.extend_from_slice(&quants);
        }
        for _ in 0..scales {
            // A small normal f16 scale.
            bytes.extend_from_slice(&(0x2000u16 | (rng.next_u32() as u16 & 0x3ff)).to_le_bytes());
        }
        if format != WeightFormat::Q6_K {
            bytes.extend_from_slice(&quants);
        }
    }
    QMatrix::from_gguf_bytes(format, rows, cols, &bytes).expect("a well-formed matrix")
}

/// A random matrix of the shape and one token's quantized activations for it.
fn product(
    format: WeightFormat,
    rows: usize,
    cols: usize,
    rng: &mut ChaCha20Rng,
) -> (QMatrix, QuantizedActivations) {
    let m = matrix(format, rows, cols, rng);
    let x: Vec<f32> = (0..cols)
        .map(|_| (rng.next_u32() as i32) as f32 / 2e9)
        .collect();
    let mut q = QuantizedActivations::default();
    q.quantize_for(format, &x, 1, cols);
    (m, q)
}

fn bench_products(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    // SmolLM2-135M: q/k/v stacked (960×576), ffn gate+up (3072×576), ffn down (576×1536), the
    // Q8_0 output head (49152×576).
    let shapes = [
        ("qkv_q4_1", WeightFormat::Q4_1, 960, 576),
        ("gate_up_q4_1", WeightFormat::Q4_1, 3072, 576),
        ("down_q4_1", WeightFormat::Q4_1, 576, 1536),
        ("head_q8_0", WeightFormat::Q8_0, 49152, 576),
        // Gemma 3 270M Q4_K_M: q+k (Q5_0), ffn gate+up (Q5_0), attention output (Q4_K), ffn
        // down (Q6_K, or Q4_K on half the layers), the tied Q8_0 head (262144×640).
        ("gemma_qk_q5_0", WeightFormat::Q5_0, 1280, 640),
        ("gemma_gate_up_q5_0", WeightFormat::Q5_0, 4096, 640),
        ("gemma_attn_output_q4_k", WeightFormat::Q4_K, 640, 1024),
        ("gemma_down_q6_k", WeightFormat::Q6_K, 640, 2048),
        ("gemma_down_q4_k", WeightFormat::Q4_K, 640, 2048),
        ("gemma_head_q8_0", WeightFormat::Q8_0, 262_144, 640),
    ];
    let mut levels = vec![SimdLevel::Portable];
    if kernels::simd_level() != SimdLevel::Portable {
        levels.push(kernels::simd_level());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a pool");
    let mut group = c.benchmark_group("matmul_1_token");
    for (name, format, rows, cols) in shapes {
        let (m, q) = product(format, rows, cols, &mut rng);
        let mut out = vec![0f32; rows];
        group.throughput(Throughput::Elements((rows * cols) as u64));
        for &level in &levels {
            group.bench_with_input(BenchmarkId::new(name, level.name()), &level, |b, &level| {
                b.iter(|| pool.install(|| m.matmul_with(level, &q, &mut out)))
            });
        }
    }
    group.finish();

    // The same products split over the kernels' persistent pool of 1 and 2 threads.
    let level = kernels::simd_level();
    let pools = [(1, Pool::new(1)), (2, Pool::new(2))];
    let mut group = c.benchmark_group("matmul_1_token_threads");
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for (name, format, rows, cols) in shapes {
        let (m, q) = product(format, rows, cols, &mut rng);
        let mut out = vec![0f32; rows];
        group.throughput(Throughput::Elements((rows * cols) as u64));
        for (threads, pool) in &pools {
            group.bench_with_input(BenchmarkId::new(name, threads), threads, |b, &threads| {
                b.iter(|| m.matmul_on(pool, threads, level, &q, &mut out))
            });
        }
    }
    group.finish();

    // Batched decoding: the same products for 1, 8 and 16 tokens at once (one weight read for all
    // of them), 1 thread. Throughput is per weight per token, so equal figures mean batching
    // saves nothing.
    let mut group = c.benchmark_group("matmul_tokens");
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    for (name, format, rows, cols) in &shapes[..4] {
        let m = matrix(*format, *rows, *cols, &mut rng);
        for tokens in [1usize, 8, 16] {
            let x: Vec<f32> = (0..cols * tokens)
                .map(|_| (rng.next_u32() as i32) as f32 / 2e9)
                .collect();
            let mut q = QuantizedActivations::default();
            q.quantize_for(*format, &x, tokens, *cols);
            let mut out = vec![0f32; rows * tokens];
            group.throughput(Throughput::Elements((rows * cols * tokens) as u64));
            group.bench_with_input(BenchmarkId::new(*name, tokens), &tokens, |b, _| {
                b.iter(|| m.matmul_on(&pools[0].1, 1, level, &q, &mut out))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_products);
criterion_main!(benches);
