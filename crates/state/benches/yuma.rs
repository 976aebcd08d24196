//! Yuma epoch time for 256 UIDs × 64 validators and 4096 UIDs × 128 validators.
//!
//! Each validator weights every miner (a dense, worst-case weight matrix) and holds bonds to all
//! of them from a previous epoch. Run with `cargo bench -p mycel-state --bench yuma`.
//!
//! On a busy machine wall-clock medians overstate the cost; `YUMA_CPU_ITERS=N cargo bench -p
//! mycel-state --bench yuma` instead runs each case N times and prints the CPU time per epoch
//! of this thread (from /proc/thread-self/stat, 10 ms ticks, so use N ≥ 20).

use criterion::{criterion_group, BenchmarkId, Criterion};
use mycel_state::incentive::{run_epoch, EpochInput, LiquidAlpha, YumaVersion};
use std::hint::black_box;

/// A deterministic pseudo-random sequence (xorshift), so every run benches the same input.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn network(n: usize, validators: usize, yuma: YumaVersion) -> EpochInput {
    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    let stake = (0..n)
        .map(|i| {
            if i < validators {
                1_000_000_000 + rng.next() % 1_000_000_000_000
            } else {
                0
            }
        })
        .collect();
    let row = |rng: &mut Xorshift| -> Vec<(u16, u16)> {
        (validators..n)
            .map(|j| (j as u16, (rng.next() % 65536) as u16))
            .collect()
    };
    let weights = (0..n)
        .map(|i| {
            if i < validators {
                row(&mut rng)
            } else {
                Vec::new()
            }
        })
        .collect();
    let bonds = (0..n)
        .map(|i| {
            if i < validators {
                row(&mut rng)
            } else {
                Vec::new()
            }
        })
        .collect();
    EpochInput {
        yuma,
        stake,
        weights,
        bonds,
        active: vec![true; n],
        validator_permit: (0..n).map(|i| i < validators).collect(),
        block_at_registration: vec![0; n],
        last_update: vec![1000; n],
        block: 2000,
        tempo: 360,
        last_epoch_block: Some(1640),
        emission: 360 * 1_000_000_000,
        kappa: 32767,
        bonds_penalty: 65535,
        bonds_moving_average: 900_000,
        liquid_alpha: LiquidAlpha {
            enabled: yuma == YumaVersion::Yuma3,
            ..LiquidAlpha::default()
        },
        max_allowed_validators: validators as u16,
        stake_threshold: 0,
        owner_uid: None,
    }
}

fn bench_epoch(c: &mut Criterion) {
    let mut group = c.benchmark_group("yuma_epoch");
    group.sample_size(10);
    for (n, v) in [(256usize, 64usize), (4096, 128)] {
        for yuma in [YumaVersion::Yuma2, YumaVersion::Yuma3] {
            let input = network(n, v, yuma);
            let id = BenchmarkId::new(
                format!("{yuma:?}").to_lowercase(),
                format!("{n}uids_{v}validators"),
            );
            group.bench_with_input(id, &input, |b, input| {
                b.iter(|| run_epoch(black_box(input)).expect("valid input"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_epoch);

/// This thread's user + system CPU time in clock ticks (normally 10 ms).
fn thread_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn cpu_report(iters: u32) {
    for (n, v) in [(256usize, 64usize), (4096, 128)] {
        for yuma in [YumaVersion::Yuma2, YumaVersion::Yuma3] {
            let input = network(n, v, yuma);
            let start = thread_cpu_ticks().unwrap_or(0);
            for _ in 0..iters {
                black_box(run_epoch(black_box(&input)).expect("valid input"));
            }
            let ticks = thread_cpu_ticks().unwrap_or(0) - start;
            let ms = ticks as f64 * 10.0 / iters as f64;
            println!(
                "{yuma:?} {n} UIDs x {v} validators: {ms:.2} ms CPU per epoch ({iters} epochs)"
            );
        }
    }
}

fn main() {
    if let Some(iters) = std::env::var("YUMA_CPU_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cpu_report(iters);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
