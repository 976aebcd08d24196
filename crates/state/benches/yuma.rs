//! Yuma epoch time for 256 UIDs × 64 validators and 4096 UIDs × 128 validators.
//!
//! Each validator weights every miner (a dense, worst-case weight matrix) and holds bonds to all
//! of them from a previous epoch. Run with `cargo bench -p mycel-state --bench yuma`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
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
criterion_main!(benches);
