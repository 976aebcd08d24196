//! Epoch vectors ported from subtensor's `pallets/subtensor/src/tests/epoch.rs` (`test_bonds` and
//! the Yuma 3 scenarios), and property tests of the epoch's invariants.

use super::*;
use proptest::prelude::*;

fn base_input(yuma: YumaVersion, stake: Vec<u64>) -> EpochInput {
    let n = stake.len();
    EpochInput {
        yuma,
        stake,
        weights: vec![Vec::new(); n],
        bonds: vec![Vec::new(); n],
        active: vec![true; n],
        validator_permit: vec![false; n],
        block_at_registration: vec![0; n],
        last_update: vec![0; n],
        block: 1,
        tempo: 1,
        last_epoch_block: None,
        emission: 1_000_000_000,
        kappa: 32767,
        bonds_penalty: 65535,
        bonds_moving_average: 900_000,
        liquid_alpha: LiquidAlpha::default(),
        max_allowed_validators: n as u16,
        stake_threshold: 0,
        owner_uid: None,
    }
}

/// Run an epoch, then carry its stored bonds and permits into the next input, as the chain does.
fn step(input: &mut EpochInput) -> EpochOutput {
    input.block += 1;
    let out = run_epoch(input).expect("valid input");
    input.bonds = out.bonds.clone();
    input.validator_permit = out.validator_permit.clone();
    let total: u64 = out.emission().iter().sum::<u64>() + out.undistributed;
    assert_eq!(total, input.emission, "emission split must add up exactly");
    out
}

fn bond(out: &EpochOutput, i: usize, j: u16) -> u16 {
    out.bonds[i]
        .iter()
        .find(|(c, _)| *c == j)
        .map(|(_, v)| *v)
        .unwrap_or(0)
}

fn close(got: I32F32, want: f64, eps: f64) -> bool {
    (got.to_num::<f64>() - want).abs() <= eps
}

#[test]
fn subtensor_test_bonds_vector() {
    let mut input = base_input(YumaVersion::Yuma2, vec![1, 2, 3, 4, 0, 0, 0, 0]);
    // The first epoch (no weights) hands out permits: the four staked neurons.
    let out = step(&mut input);
    assert_eq!(
        out.validator_permit,
        [true, true, true, true, false, false, false, false]
    );

    let w = vec![(4, 16383), (5, 32767), (6, 49149), (7, 65535)];
    for i in 0..4 {
        input.weights[i] = w.clone();
        input.last_update[i] = input.block;
    }
    let out = step(&mut input);
    assert_eq!(
        [
            bond(&out, 0, 4),
            bond(&out, 1, 4),
            bond(&out, 2, 4),
            bond(&out, 3, 4)
        ],
        [16383, 32767, 49151, 65535]
    );
    // Intermediate values from the vector's comments (printed to 10 digits).
    let eps = 2e-9;
    for (j, c) in [
        (4, 0.0999975584),
        (5, 0.2000012207),
        (6, 0.2999926754),
        (7, 0.400008545),
    ] {
        assert!(
            close(out.consensus[j], c, eps),
            "C[{j}] = {}",
            out.consensus[j]
        );
    }
    for (j, i) in [
        (4, 0.0999975582),
        (5, 0.2000012207),
        (6, 0.2999926752),
        (7, 0.4000085455),
    ] {
        assert!(
            close(out.incentive[j], i, eps),
            "I[{j}] = {}",
            out.incentive[j]
        );
    }
    for (j, d) in [
        (0, 0.0999999978),
        (1, 0.1999999983),
        (2, 0.3000000012),
        (3, 0.4000000022),
    ] {
        assert!(
            close(out.dividends[j], d, eps),
            "D[{j}] = {}",
            out.dividends[j]
        );
    }
    for i in 0..4 {
        assert!(close(out.validator_trust[i], 0.9999999995, eps));
    }
    // Subtensor floors each share and drops the dust; mycel hands it out, so ±2 base units.
    let want_e = [
        49999998u64,
        99999999,
        150000000,
        200000001,
        49998779,
        100000610,
        149996337,
        200004272,
    ];
    for (got, want) in out.emission().iter().zip(want_e) {
        assert!(got.abs_diff(want) <= 2, "emission {got} vs {want}");
    }

    // Val 1 weights only itself (self-weight masked).
    input.weights[0] = vec![(0, 65535)];
    input.last_update[0] = input.block;
    let out = step(&mut input);
    assert_eq!(
        [
            bond(&out, 0, 4),
            bond(&out, 1, 4),
            bond(&out, 2, 4),
            bond(&out, 3, 4)
        ],
        [14582, 32767, 49151, 65535]
    );
    for (j, d) in [
        (0, 0.0899967032),
        (1, 0.2022211233),
        (2, 0.303334432),
        (3, 0.404447741),
    ] {
        assert!(
            close(out.dividends[j], d, eps),
            "D[{j}] = {}",
            out.dividends[j]
        );
    }

    // Val 2 too.
    input.weights[1] = vec![(1, 65535)];
    input.last_update[1] = input.block;
    let out = step(&mut input);
    assert_eq!(
        [
            bond(&out, 0, 4),
            bond(&out, 1, 4),
            bond(&out, 2, 4),
            bond(&out, 3, 4)
        ],
        [12603, 28321, 49151, 65535]
    );

    // Val 3 too: consensus collapses, validators are paid by stake.
    input.weights[2] = vec![(2, 65535)];
    input.last_update[2] = input.block;
    let out = step(&mut input);
    assert_eq!(
        [
            bond(&out, 0, 7),
            bond(&out, 1, 7),
            bond(&out, 2, 7),
            bond(&out, 3, 7)
        ],
        [12602, 28320, 49150, 65535]
    );
    assert!(out.consensus.iter().all(|c| *c == I32F32::ZERO));
    assert_eq!(
        out.emission(),
        [100000000, 200000000, 300000000, 400000000, 0, 0, 0, 0]
    );

    // Val 3 -> server 4 only.
    input.weights[2] = vec![(7, 65535)];
    input.last_update[2] = input.block;
    let want = [
        [10951, 24609, 49150, 65535],
        [9559, 21482, 49150, 65535],
        [8376, 18824, 49150, 65535],
    ];
    for want in want {
        let out = step(&mut input);
        assert_eq!(
            [
                bond(&out, 0, 7),
                bond(&out, 1, 7),
                bond(&out, 2, 7),
                bond(&out, 3, 7)
            ],
            want
        );
        assert_eq!(out.server_emission[7], 500_000_000);
    }
}

/// Subtensor's `setup_yuma_3_scenario`: 3 validators, 2 miners, κ = 0.5, liquid alpha on with
/// bounds 0.1 / 0.3 (stored as u16 6553 / 19660), steepness 1000, bonds_moving_average 975000,
/// bonds penalty 0, 3 validator permits.
fn yuma3_scenario(stake: Vec<u64>) -> EpochInput {
    let mut input = base_input(YumaVersion::Yuma3, stake);
    input.kappa = u16::MAX / 2;
    input.bonds_penalty = 0;
    input.bonds_moving_average = 975_000;
    input.liquid_alpha = LiquidAlpha {
        enabled: true,
        alpha_low: 6553,
        alpha_high: 19660,
        steepness: 1000,
    };
    input.max_allowed_validators = 3;
    input.block_at_registration = vec![1; 5];
    input.block = 1;
    step(&mut input); // hands out permits
    assert_eq!(input.validator_permit, [true, true, true, false, false]);
    input
}

fn set_weights(input: &mut EpochInput, rows: [[u16; 2]; 3]) {
    for (i, r) in rows.iter().enumerate() {
        input.weights[i] = vec![(3, r[0]), (4, r[1])];
        input.last_update[i] = input.block;
    }
}

const M1: [u16; 2] = [u16::MAX, 0];
const M2: [u16; 2] = [0, u16::MAX];

/// Runs the epochs and checks dividends (and the miner bonds, which subtensor lists as targets)
/// within subtensor's own tolerance of 1e-3.
fn run_yuma3(
    mut input: EpochInput,
    weights: impl Fn(usize) -> Option<[[u16; 2]; 3]>,
    bonds: &[[[f64; 2]; 3]],
    dividends: &[[f64; 5]],
) {
    for (epoch, (want_b, want_d)) in bonds.iter().zip(dividends).enumerate() {
        if let Some(w) = weights(epoch) {
            set_weights(&mut input, w);
        }
        let out = step(&mut input);
        for (i, d) in want_d.iter().enumerate() {
            assert!(
                close(out.dividends[i], *d, 1e-3),
                "epoch {epoch}: D[{i}] = {} want {d}",
                out.dividends[i]
            );
        }
        for (i, row) in want_b.iter().enumerate() {
            for (k, b) in row.iter().enumerate() {
                let got = u16_proportion_to_fixed(bond(&out, i, 3 + k as u16));
                assert!(
                    close(got, *b, 1e-3),
                    "epoch {epoch}: B[{i}][{}] = {got} want {b}",
                    3 + k
                );
            }
        }
    }
}

#[test]
fn subtensor_yuma3_kappa_moves_first() {
    let bonds = [
        [[0.1013, 0.0], [0.1013, 0.0], [0.1013, 0.0]],
        [[0.0908, 0.1013], [0.3697, 0.0], [0.3697, 0.0]],
        [[0.0815, 0.1924], [0.3170, 0.1013], [0.5580, 0.0]],
        [[0.0731, 0.2742], [0.2765, 0.1924], [0.4306, 0.1013]],
        [[0.0656, 0.3478], [0.2435, 0.2742], [0.3589, 0.1924]],
        [[0.0588, 0.4139], [0.2157, 0.3478], [0.3089, 0.2742]],
    ];
    let dividends = [
        [0.8000, 0.1000, 0.1000, 0., 0.],
        [1.0000, 0.0000, 0.0000, 0., 0.],
        [0.9382, 0.0618, 0.0000, 0., 0.],
        [0.8819, 0.0773, 0.0407, 0., 0.],
        [0.8564, 0.0844, 0.0592, 0., 0.],
        [0.8418, 0.0884, 0.0697, 0., 0.],
    ];
    let weights = |e: usize| match e {
        0 => Some([M1, M1, M1]),
        1 => Some([M2, M1, M1]),
        2 => Some([M2, M2, M1]),
        3 => Some([M2, M2, M2]),
        _ => None,
    };
    run_yuma3(
        yuma3_scenario(vec![8, 1, 1, 0, 0]),
        weights,
        &bonds,
        &dividends,
    );
}

#[test]
fn subtensor_yuma3_kappa_moves_second() {
    let bonds = [
        [[0.1013, 0.0], [0.1013, 0.0], [0.1013, 0.0]],
        [[0.1924, 0.0], [0.0908, 0.2987], [0.1924, 0.0]],
        [[0.1715, 0.1013], [0.0815, 0.3697], [0.4336, 0.0]],
        [[0.1531, 0.1924], [0.0731, 0.4336], [0.3608, 0.1013]],
        [[0.1369, 0.2742], [0.0656, 0.4910], [0.3103, 0.1924]],
        [[0.1225, 0.3478], [0.0588, 0.5426], [0.2712, 0.2742]],
    ];
    let dividends = [
        [0.8000, 0.1000, 0.1000, 0., 0.],
        [0.8446, 0.0498, 0.1056, 0., 0.],
        [0.6868, 0.3132, 0.0000, 0., 0.],
        [0.7421, 0.2090, 0.0489, 0., 0.],
        [0.7625, 0.1706, 0.0669, 0., 0.],
        [0.7730, 0.1508, 0.0762, 0., 0.],
    ];
    let weights = |e: usize| match e {
        0 => Some([M1, M1, M1]),
        1 => Some([M1, M2, M1]),
        2 => Some([M2, M2, M1]),
        3 => Some([M2, M2, M2]),
        _ => None,
    };
    run_yuma3(
        yuma3_scenario(vec![8, 1, 1, 0, 0]),
        weights,
        &bonds,
        &dividends,
    );
}

#[test]
fn subtensor_yuma3_kappa_moves_last() {
    let bonds = [
        [[0.1013, 0.0], [0.1013, 0.0], [0.1013, 0.0]],
        [[0.1924, 0.0], [0.0908, 0.2987], [0.1924, 0.0]],
        [[0.2742, 0.0], [0.0815, 0.5081], [0.1715, 0.2987]],
        [[0.2416, 0.1013], [0.0731, 0.5580], [0.1531, 0.3697]],
        [[0.2141, 0.1924], [0.0656, 0.6028], [0.1369, 0.4336]],
        [[0.1903, 0.2742], [0.0588, 0.6430], [0.1225, 0.4910]],
    ];
    let dividends = [
        [0.8000, 0.1000, 0.1000, 0., 0.],
        [0.8446, 0.0498, 0.1056, 0., 0.],
        [0.8966, 0.0333, 0.0701, 0., 0.],
        [0.4663, 0.3210, 0.2127, 0., 0.],
        [0.5976, 0.2340, 0.1683, 0., 0.],
        [0.6592, 0.1932, 0.1475, 0., 0.],
    ];
    let weights = |e: usize| match e {
        0 => Some([M1, M1, M1]),
        1 => Some([M1, M2, M1]),
        2 => Some([M1, M2, M2]),
        3 => Some([M2, M2, M2]),
        _ => None,
    };
    run_yuma3(
        yuma3_scenario(vec![8, 1, 1, 0, 0]),
        weights,
        &bonds,
        &dividends,
    );
}

#[test]
fn subtensor_yuma3_liquid_alpha_disabled() {
    let mut input = yuma3_scenario(vec![33, 33, 34, 0, 0]);
    input.liquid_alpha.enabled = false;
    let dividends = [
        [0.3300, 0.3300, 0.3400, 0., 0.],
        [0.3300, 0.3300, 0.3400, 0., 0.],
        [0.3734, 0.3734, 0.2532, 0., 0.],
        [0.3611, 0.3611, 0.2779, 0., 0.],
        [0.3541, 0.3541, 0.2919, 0., 0.],
        [0.3495, 0.3495, 0.3009, 0., 0.],
    ];
    for (epoch, want) in dividends.iter().enumerate() {
        set_weights(
            &mut input,
            if epoch == 2 {
                [M1, M1, M2]
            } else {
                [M1, M1, M1]
            },
        );
        let out = step(&mut input);
        for (i, d) in want.iter().enumerate() {
            assert!(
                close(out.dividends[i], *d, 1e-3),
                "epoch {epoch}: D[{i}] = {} want {d}",
                out.dividends[i]
            );
        }
    }
}

#[test]
fn bad_input_names_the_field() {
    let mut input = base_input(YumaVersion::Yuma2, vec![1, 2, 3]);
    input.active = vec![true; 2];
    assert!(matches!(
        run_epoch(&input),
        Err(EpochError::LengthMismatch {
            field: "active",
            expected: 3,
            got: 2
        })
    ));
    let mut input = base_input(YumaVersion::Yuma2, vec![1, 2, 3]);
    input.weights[1] = vec![(3, 1)];
    assert!(matches!(
        run_epoch(&input),
        Err(EpochError::UidOutOfRange {
            field: "weights",
            row: 1,
            uid: 3,
            ..
        })
    ));
    let mut input = base_input(YumaVersion::Yuma2, vec![1, 2, 3]);
    input.bonds[0] = vec![(2, 1), (1, 1)];
    assert!(matches!(
        run_epoch(&input),
        Err(EpochError::UnsortedRow {
            field: "bonds",
            row: 0,
            uid: 1
        })
    ));
    let mut input = base_input(YumaVersion::Yuma2, vec![1, 2, 3]);
    input.bonds_moving_average = 1_000_001;
    assert!(matches!(
        run_epoch(&input),
        Err(EpochError::InvalidParameter {
            field: "bonds_moving_average",
            ..
        })
    ));
}

#[test]
fn no_stake_leaves_emission_undistributed() {
    let input = base_input(YumaVersion::Yuma2, vec![0, 0, 0]);
    let out = run_epoch(&input).unwrap();
    assert_eq!(out.undistributed, input.emission);
    assert!(out.emission().iter().all(|e| *e == 0));
}

#[test]
fn largest_remainder_is_exact_and_fair() {
    assert_eq!(largest_remainder(10, &[1, 1, 1]), Some(vec![4, 3, 3]));
    assert_eq!(largest_remainder(0, &[1, 2]), Some(vec![0, 0]));
    assert_eq!(largest_remainder(7, &[0, 0]), None);
    assert_eq!(
        largest_remainder(u64::MAX, &[1, 1]),
        Some(vec![u64::MAX / 2 + 1, u64::MAX / 2])
    );
}

fn arb_input() -> impl Strategy<Value = EpochInput> {
    (
        2usize..12,
        any::<bool>(),
        any::<u64>(),
        0u16..=u16::MAX,
        0u16..=u16::MAX,
        0u64..=1_000_000,
    )
        .prop_flat_map(|(n, y3, emission, kappa, penalty, bma)| {
            (
                proptest::collection::vec(0u64..1_000_000, n),
                proptest::collection::vec(proptest::collection::vec(0u16..=u16::MAX, n), n),
                proptest::collection::vec(proptest::collection::vec(0u16..=u16::MAX, n), n),
                proptest::collection::vec(any::<bool>(), n),
                proptest::collection::vec(any::<bool>(), n),
                any::<bool>(),
            )
                .prop_map(move |(stake, w, b, active, permit, la)| {
                    let mut input = base_input(
                        if y3 {
                            YumaVersion::Yuma3
                        } else {
                            YumaVersion::Yuma2
                        },
                        stake,
                    );
                    let sparse = |m: Vec<Vec<u16>>| -> Vec<Vec<(u16, u16)>> {
                        m.into_iter()
                            .map(|r| {
                                r.into_iter()
                                    .enumerate()
                                    .filter(|(_, v)| *v > 30000)
                                    .map(|(j, v)| (j as u16, v))
                                    .collect()
                            })
                            .collect()
                    };
                    input.weights = sparse(w);
                    input.bonds = sparse(b);
                    input.active = active;
                    input.validator_permit = permit;
                    input.last_update = vec![5; n];
                    input.block = 10;
                    input.emission = emission;
                    input.kappa = kappa;
                    input.bonds_penalty = penalty;
                    input.bonds_moving_average = bma;
                    input.liquid_alpha.enabled = la;
                    input
                })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Emission split adds up exactly; incentive and dividends each sum to ~1 or to 0;
    /// consensus never exceeds any column's largest normalised weight; stored bonds exist only
    /// for permitted validators.
    #[test]
    fn epoch_invariants(input in arb_input()) {
        let out = run_epoch(&input).unwrap();
        let n = input.stake.len();
        let total: u128 = out.emission().iter().map(|e| *e as u128).sum::<u128>() + out.undistributed as u128;
        prop_assert_eq!(total, input.emission as u128);
        for v in [&out.incentive, &out.dividends] {
            let s: f64 = v.iter().map(|x| x.to_num::<f64>()).sum();
            prop_assert!(s == 0.0 || (s - 1.0).abs() < 1e-6, "sum {}", s);
            prop_assert!(v.iter().all(|x| *x >= I32F32::ZERO));
        }
        // Largest weight per column over the rows that count: permitted validators, self-weight
        // removed, renormalised (last_update > block_at_registration, so nothing is outdated).
        let mut col_max = vec![I32F32::ZERO; n];
        for (i, row) in input.weights.iter().enumerate() {
            if !input.validator_permit[i] {
                continue;
            }
            let row: Vec<(u16, u16)> = row.iter().copied().filter(|(j, _)| *j as usize != i).collect();
            let s: u64 = row.iter().map(|(_, v)| *v as u64).sum();
            for (j, v) in &row {
                if s > 0 {
                    let w = I32F32::from_num(*v) / I32F32::from_num(s);
                    col_max[*j as usize] = col_max[*j as usize].max(w);
                }
            }
        }
        for (c, max) in out.consensus.iter().zip(&col_max) {
            prop_assert!(*c <= *max + I32F32::from_bits(1));
        }
        for (permit, bonds) in out.validator_permit.iter().zip(&out.bonds) {
            prop_assert!(*permit || bonds.is_empty());
        }
        prop_assert_eq!(run_epoch(&input).unwrap(), out, "deterministic");
    }
}

/// xorshift64, so the large epochs below are random but the same on every run.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, m: u64) -> u64 {
        self.next() % m
    }
}

/// A large subnet with everything that changes an epoch's path: sparse and dense weight rows,
/// inactive and unpermitted validators, self-weights, an owner, stake under the threshold,
/// weights set before a neuron registered, bonds to neurons registered since the last epoch.
fn large_input(yuma: YumaVersion, seed: u64, bonds_penalty: u16, liquid: bool) -> EpochInput {
    let n = 2048usize;
    let validators = 96usize;
    let mut rng = Seeded(seed);
    let stake = (0..n)
        .map(|i| {
            if i < validators + 8 {
                rng.below(1_000_000_000_000)
            } else if i % 37 == 0 {
                rng.below(1_000_000)
            } else {
                0
            }
        })
        .collect();
    let row = |rng: &mut Seeded, density: u64| -> Vec<(u16, u16)> {
        let mut r = Vec::new();
        for j in 0..n {
            if rng.below(100) < density {
                r.push((j as u16, rng.next() as u16));
            }
        }
        r
    };
    let mut weights = Vec::with_capacity(n);
    let mut bonds = Vec::with_capacity(n);
    for i in 0..n {
        if i < validators + 8 {
            let density = [100, 90, 50, 10, 1][i % 5];
            weights.push(row(&mut rng, density));
            bonds.push(row(&mut rng, 70));
        } else {
            weights.push(Vec::new());
            bonds.push(Vec::new());
        }
    }
    let block_at_registration = (0..n)
        .map(|j| {
            if j % 53 == 0 {
                1700 + rng.below(400)
            } else {
                rng.below(1000)
            }
        })
        .collect();
    let last_update = (0..n)
        .map(|i| {
            if i % 11 == 0 {
                900 + rng.below(200)
            } else {
                1990
            }
        })
        .collect();
    EpochInput {
        yuma,
        stake,
        weights,
        bonds,
        active: (0..n).map(|i| i % 17 != 3).collect(),
        validator_permit: (0..n).map(|i| i < validators && i % 23 != 5).collect(),
        block_at_registration,
        last_update,
        block: 2000,
        tempo: 360,
        last_epoch_block: Some(1640),
        emission: 360 * 1_000_000_000 + 12_345,
        kappa: 32767,
        bonds_penalty,
        bonds_moving_average: 900_000,
        liquid_alpha: LiquidAlpha {
            enabled: liquid,
            ..LiquidAlpha::default()
        },
        max_allowed_validators: validators as u16,
        stake_threshold: 1_000,
        owner_uid: Some(7),
    }
}

/// Keccak of every output of `out`, bit for bit.
fn output_digest(out: &EpochOutput) -> String {
    let mut bytes = Vec::new();
    for v in [
        &out.stake,
        &out.active_stake,
        &out.consensus,
        &out.validator_trust,
        &out.incentive,
        &out.dividends,
    ] {
        bytes.extend((v.len() as u64).to_le_bytes());
        for x in v.iter() {
            bytes.extend(x.to_bits().to_le_bytes());
        }
    }
    bytes.extend(out.validator_permit.iter().map(|p| *p as u8));
    for row in &out.bonds {
        bytes.extend((row.len() as u64).to_le_bytes());
        for (j, v) in row {
            bytes.extend(j.to_le_bytes());
            bytes.extend(v.to_le_bytes());
        }
    }
    for e in out.server_emission.iter().chain(&out.validator_emission) {
        bytes.extend(e.to_le_bytes());
    }
    bytes.extend(out.undistributed.to_le_bytes());
    alloy_primitives::keccak256(&bytes).to_string()
}

/// Large seeded epochs (2048 UIDs, ~100 validators, two chained epochs each) pinned to digests of
/// their outputs computed before the epoch was optimised: any change of a single output bit in
/// any step fails this test.
#[test]
fn large_seeded_epochs_match_pinned_digests() {
    let cases = [
        (YumaVersion::Yuma2, 65535, false),
        (YumaVersion::Yuma2, 30000, false),
        (YumaVersion::Yuma3, 65535, true),
        (YumaVersion::Yuma3, 30000, true),
        (YumaVersion::Yuma3, 0, false),
    ];
    let mut got = Vec::new();
    for (k, (yuma, penalty, liquid)) in cases.into_iter().enumerate() {
        let mut input = large_input(yuma, 0x5EED_0000 + k as u64, penalty, liquid);
        for _ in 0..2 {
            let out = step(&mut input);
            got.push(output_digest(&out));
        }
    }
    let want = [
        "0xb95304d601dd139346aad92cd86c019dd29ab7544cb15038e7fc85aa7d3dbf96",
        "0xebc136be020628b7cdf006ac62ea53eb816139473b403f09c848e4e930e2db08",
        "0x9fdbffbf7ab8f2a5d59633105949e63f649f830f618969a84117e13b8d649f05",
        "0x6bc474bda5588fef4b65e53b06be3c9232b050ae509c6c6da9357880709707af",
        "0xdcbefa2fae38fc3cfddc950c36c55151b8b7bfa69dec64ceac73d40a47e54f5f",
        "0x30b1cb923b95330a6950e9e645eaafc379e74d74c7f98e67a90e3f679ccd9f3c",
        "0x265bf021f76f69f202aea6a27c2a40f18551aaeac7167dfe52b6a16d8205725f",
        "0x15e110454fcd9ecc7b3dddeb6167bc65d350d2305ca3ba9c7efc748c70c12b04",
        "0x4aebb06d1f65f864d64a333fffe8b29813cab8a33f0614f3cc6c69bdd5c78b87",
        "0xdaea9782c1f64d46b231a4c3eddbfcd5fc0204623e0acd65aa2b60b879e5a0e7",
    ];
    assert_eq!(got, want);
}
