//! Vectors ported from subtensor's `pallets/subtensor/src/tests/math.rs` (the numbers, with the
//! tolerance subtensor itself asserts with), plus property tests.

use super::*;
use proptest::prelude::*;

fn fx(v: f32) -> I32F32 {
    I32F32::from_num(v)
}

fn vfx(v: &[f32]) -> Vec<I32F32> {
    v.iter().map(|x| fx(*x)).collect()
}

/// Reshape to a sparse matrix of `rows` rows, keeping entries > 0 (subtensor's
/// `vec_to_sparse_mat_fixed`, not transposed).
fn sparse(v: &[f32], rows: usize) -> SparseMatrix {
    let cols = v.len() / rows;
    (0..rows)
        .map(|r| {
            (0..cols)
                .filter(|c| v[r * cols + c] > 0.)
                .map(|c| (c as u16, fx(v[r * cols + c])))
                .collect()
        })
        .collect()
}

fn assert_sparse_close(a: &SparseMatrix, b: &SparseMatrix, eps: I32F32) {
    assert_eq!(a.len(), b.len(), "rows: {a:?} vs {b:?}");
    for (ra, rb) in a.iter().zip(b) {
        assert_eq!(ra.len(), rb.len(), "row {ra:?} vs {rb:?}");
        for ((ja, va), (jb, vb)) in ra.iter().zip(rb) {
            assert_eq!(ja, jb);
            assert!((*va - *vb).abs() <= eps, "{va} vs {vb} (eps {eps})");
        }
    }
}

fn median(stake: &[f32], score: &[f32], majority: f32) -> I32F32 {
    let stake = vfx(stake);
    let score = vfx(score);
    let idx: Vec<usize> = (0..stake.len()).collect();
    weighted_median(
        &stake,
        &score,
        &idx,
        I32F32::ONE - fx(majority),
        I32F32::ZERO,
        sum(&stake),
    )
}

#[test]
fn vec_max_upscale_to_u16_subtensor_vectors() {
    let cases: &[(&[f32], &[u16])] = &[
        (&[], &[]),
        (&[0.], &[0]),
        (&[0., 0.], &[0, 0]),
        (&[0., 1.], &[0, 65535]),
        (&[0., 0.000000001], &[0, 65535]),
        (&[0., 0.000016, 1.], &[0, 1, 65535]),
        (&[0.000000001, 0.000000001], &[65535, 65535]),
        (
            &[
                0.000001, 0.000006, 0.000007, 0.0001, 0.001, 0.01, 0.1, 0.2, 0.3, 0.4,
            ],
            &[0, 1, 1, 16, 164, 1638, 16384, 32768, 49151, 65535],
        ),
        (&[0., 1., 65535.], &[0, 1, 65535]),
        (&[0., 0.5, 1., 1.5, 2., 32768.], &[0, 1, 2, 3, 4, 65535]),
        (
            &[0., 0.5, 1., 1.5, 2., 32768., 32769.],
            &[0, 1, 2, 3, 4, 65533, 65535],
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            vec_max_upscale_to_u16(&vfx(input)),
            want.to_vec(),
            "input {input:?}"
        );
    }
    for v in [16384, 32768, 32769, 65535] {
        assert_eq!(vec_max_upscale_to_u16(&[I32F32::from_num(v)]), vec![65535]);
    }
    assert_eq!(vec_max_upscale_to_u16(&[I32F32::MAX]), vec![65535]);
    let v = [
        I32F32::from_num(0),
        I32F32::from_num(1),
        I32F32::from_num(32768),
        I32F32::from_num(32769),
        I32F32::MAX,
    ];
    assert_eq!(vec_max_upscale_to_u16(&v), vec![0, 0, 1, 1, 65535]);
    assert_eq!(
        vec_u16_max_upscale_to_u16(&[0, 1, 2, 3, 4]),
        vec![0, 16384, 32768, 49151, 65535]
    );
}

#[test]
fn fixed_conversions_subtensor_vectors() {
    assert_eq!(fixed_to_u16(fx(0.)), 0);
    assert_eq!(fixed_to_u16(fx(65535.)), 65535);
    assert_eq!(fixed_to_u16(fx(70000.)), 65535);
    assert_eq!(fixed_to_u64(fx(1.5)), 1);
    assert_eq!(fixed64_to_u64(I64F64::from_num(u32::MAX)), u32::MAX as u64);
    assert_eq!(fixed64_to_u64(I64F64::from_num(-1)), 0);
    assert_eq!(fixed64_to_fixed32(I64F64::from_num(1.5)), fx(1.5));
    assert_eq!(fixed64_to_fixed32(I64F64::MAX), I32F32::MAX);
    assert_eq!(u16_to_fixed(65535), fx(65535.));
    assert_eq!(u16_proportion_to_fixed(65535), I32F32::ONE);
    assert_eq!(u16_proportion_to_fixed(0), I32F32::ZERO);
    assert_eq!(fixed_proportion_to_u16(I32F32::ONE), 65535);
    assert_eq!(fixed_proportion_to_u16(fx(2.)), 65535);
    assert_eq!(fixed_proportion_to_u16(fx(0.5)), 32767);
}

#[test]
fn exp_safe_matches_reference_values() {
    // exp_safe clamps to [-20, 20] (subtensor's test_math_exp_safe).
    assert_eq!(exp_safe(I32F32::ZERO), I32F32::ONE);
    assert_eq!(exp_safe(fx(-21.)), exp_safe(fx(-20.)));
    assert_eq!(exp_safe(I32F32::MIN), exp_safe(fx(-20.)));
    assert_eq!(exp_safe(fx(21.)), exp_safe(fx(20.)));
    assert_eq!(exp_safe(I32F32::MAX), exp_safe(fx(20.)));
    // Against correctly rounded values: within 2 ulps relative to the 32.32 grid.
    let checks: &[(f32, f64)] = &[
        (1., std::f64::consts::E),
        (-1., 0.36787944117144233),
        (0.5, 1.6487212707001282),
        (-5., 0.006737946999085467),
        (5., 148.4131591025766),
        (10., 22026.465794806718),
        (20., 485165195.4097903),
        (-20., 2.061153622438558e-9),
    ];
    for (x, want) in checks {
        let got: f64 = exp_safe(fx(*x)).to_num();
        let tol = 4.0 * (2f64).powi(-32) + want * 1e-15;
        assert!((got - want).abs() <= tol, "exp({x}) = {got}, want {want}");
    }
}

#[test]
fn sigmoid_safe_subtensor_vectors() {
    // test_math_sigmoid_safe; subtensor compares for equality with its own exp. Our exp is a
    // different (more precise) series, so we compare within 2 ulps of 2^-32.
    let eps = I32F32::from_bits(2);
    let f = |x: f64| I32F32::from_num(x);
    let trust = [
        I32F32::MIN,
        f(0.),
        f(0.4),
        f(0.5),
        f(0.6),
        f(1.),
        I32F32::MAX,
    ];
    let got: Vec<I32F32> = trust
        .iter()
        .map(|t| sigmoid_safe(*t, f(30.), f(0.5)))
        .collect();
    let want = [
        0.0000000019,
        0.0000003057,
        0.0474258729,
        0.5,
        0.952574127,
        0.9999996943,
        0.9999999981,
    ];
    for (g, w) in got.iter().zip(want) {
        assert!((*g - I32F32::from_num(w)).abs() <= eps, "{g} vs {w}");
    }
    let trust = vfx(&[0., 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.]);
    let want = [
        0.0000000019,
        0.0000001125,
        0.0000061442,
        0.0003353502,
        0.017986214,
        0.5,
        0.9820138067,
        0.9996646498,
        0.9999938558,
        0.9999998875,
        0.9999999981,
    ];
    for (t, w) in trust.iter().zip(want) {
        let g = sigmoid_safe(*t, fx(40.), fx(0.5));
        assert!(
            (g - I32F32::from_num(w)).abs() <= eps,
            "sigmoid({t}) = {g} vs {w}"
        );
    }
    // Saturating extremes.
    let tiny = I32F32::from_num(0.0000000019);
    assert!((sigmoid_safe(fx(0.), I32F32::MAX, I32F32::MAX) - tiny).abs() <= eps);
    assert_eq!(sigmoid_safe(I32F32::MAX, I32F32::MAX, I32F32::MAX), fx(0.5));
}

#[test]
fn is_topk_nonzero_keeps_largest() {
    let v = vfx(&[0., 1., 2., 3., 4., 5., 6., 7., 8., 9.]);
    assert_eq!(
        is_topk_nonzero(&v, 5),
        [false, false, false, false, false, true, true, true, true, true]
    );
    assert_eq!(
        is_topk_nonzero(&v, 10),
        [false, true, true, true, true, true, true, true, true, true]
    );
    assert_eq!(
        is_topk_nonzero(&v, 20),
        [false, true, true, true, true, true, true, true, true, true]
    );
    // Ties: the stable sort drops lower indices first.
    let v = vfx(&[1., 1., 1.]);
    assert_eq!(is_topk_nonzero(&v, 2), [false, true, true]);
}

#[test]
fn normalize_subtensor_vectors() {
    let x = vfx(&[1., 10., 100., 1000.]);
    let y = normalize(&x);
    let want = vfx(&[0.00090009, 0.0090009, 0.090009, 0.90009]);
    for (a, b) in y.iter().zip(want) {
        assert!((*a - b).abs() <= fx(0.0000001));
    }
    assert_eq!(normalize(&vfx(&[0., 0.])), vfx(&[0., 0.]));
}

#[test]
fn col_clip_sparse_subtensor_vectors() {
    let threshold = vfx(&[0., 5., 12.]);
    let m = sparse(&[0., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.], 4);
    let want = sparse(&[0., 2., 3., 0., 5., 6., 0., 5., 9., 0., 5., 12.], 4);
    assert_sparse_close(&col_clip_sparse(&m, &threshold), &want, I32F32::ZERO);
    let m = sparse(&[0., 2., 3., 4., 5., 6., 0., 0., 0., 10., 11., 12.], 4);
    let want = sparse(&[0., 2., 3., 0., 5., 6., 0., 0., 0., 0., 5., 12.], 4);
    assert_sparse_close(&col_clip_sparse(&m, &threshold), &want, I32F32::ZERO);
    let m = sparse(&[0.; 12], 4);
    assert_sparse_close(&col_clip_sparse(&m, &threshold), &m, I32F32::ZERO);
}

#[test]
fn weighted_median_subtensor_vectors() {
    let zero = I32F32::ZERO;
    let one = I32F32::ONE;
    assert_eq!(median(&[], &[], 0.51), zero);
    let stake = normalize(&vfx(&[0.51]));
    assert_eq!(
        weighted_median(&stake, &vfx(&[1.]), &[0], one - fx(0.51), zero, sum(&stake)),
        one
    );
    assert_eq!(median(&[0.49, 0.51], &[0.5, 1.], 0.51), one);
    assert_eq!(median(&[0.51, 0.49], &[0.5, 1.], 0.51), fx(0.5));
    assert_eq!(median(&[0.49, 0., 0.51], &[0.5, 0.7, 1.], 0.51), one);
    assert_eq!(median(&[0.49, 0.01, 0.5], &[0.5, 0.7, 1.], 0.51), fx(0.7));
    assert_eq!(median(&[0.49, 0.51, 0.0], &[0.5, 0.7, 1.], 0.51), fx(0.7));
    assert_eq!(median(&[0.0, 0.49, 0.51], &[0.5, 0.7, 1.], 0.51), one);
    assert_eq!(
        median(&[0.0, 0.49, 0.0, 0.51], &[0.5, 0.5, 1., 1.], 0.51),
        one
    );
    assert_eq!(
        median(&[0.0, 0.49, 0.0, 0.51, 0.0], &[0.5, 0.5, 1., 1., 0.5], 0.51),
        one
    );
    assert_eq!(
        median(&[0.2, 0.2, 0.2, 0.2, 0.2], &[0.8, 0.2, 1., 0.6, 0.4], 0.51),
        fx(0.6)
    );
    assert_eq!(
        median(
            &[0.1; 10],
            &[0.8, 0.8, 0.2, 0.2, 1.0, 1.0, 0.6, 0.6, 0.4, 0.4],
            0.51
        ),
        fx(0.6)
    );
}

#[test]
fn weighted_median_col_sparse_subtensor_vectors() {
    assert_eq!(
        weighted_median_col_sparse(&[], &[vec![]], 0, fx(0.5)),
        Vec::<I32F32>::new()
    );
    let w = sparse(&[0., 0., 0., 0.], 2);
    assert_eq!(
        weighted_median_col_sparse(&vfx(&[0., 0.]), &w, 2, fx(0.5)),
        vfx(&[0., 0.])
    );

    let stake = vfx(&[0., 0.75, 0.25, 0.]);
    let w = sparse(&[0., 0.1, 0., 0., 0.2, 0.4, 0., 0.3, 0.1, 0., 0.4, 0.5], 4);
    assert_eq!(
        weighted_median_col_sparse(&stake, &w, 3, fx(0.24)),
        vfx(&[0., 0.3, 0.4])
    );
    assert_eq!(
        weighted_median_col_sparse(&stake, &w, 3, fx(0.26)),
        vfx(&[0., 0.2, 0.4])
    );
    assert_eq!(
        weighted_median_col_sparse(&stake, &w, 3, fx(0.76)),
        vfx(&[0., 0.2, 0.1])
    );

    let stake = vfx(&[0., 0.3, 0.2, 0.5]);
    let w = sparse(&[0., 0.1, 0., 0., 0.2, 0.4, 0., 0.3, 0.1, 0., 0., 0.5], 4);
    assert_eq!(
        weighted_median_col_sparse(&stake, &w, 3, fx(0.51)),
        vfx(&[0., 0., 0.4])
    );
}

#[test]
fn interpolate_sparse_subtensor_vectors() {
    let m1 = sparse(&[0.], 1);
    let m2 = sparse(&[1.], 1);
    assert_sparse_close(
        &interpolate_sparse(&m1, &m2, fx(0.)),
        &sparse(&[0.], 1),
        I32F32::ZERO,
    );
    assert_sparse_close(
        &interpolate_sparse(&m1, &m2, fx(0.5)),
        &sparse(&[0.5], 1),
        I32F32::ZERO,
    );
    assert_sparse_close(
        &interpolate_sparse(&m1, &m2, fx(1.)),
        &sparse(&[1.], 1),
        I32F32::ZERO,
    );

    let m1 = sparse(&[1., 0., 100., 1000., 10000., 100000.], 3);
    let m2 = sparse(&[10., 100., 1000., 10000., 100000., 0.], 3);
    assert_sparse_close(&interpolate_sparse(&m1, &m2, fx(0.)), &m1, I32F32::ZERO);
    // Subtensor writes this ratio as an f64 literal (`I32F32::from_num(0.9)`).
    let want = sparse(&[9.1, 90., 910., 9100., 91000., 10000.], 3);
    assert_sparse_close(
        &interpolate_sparse(&m1, &m2, I32F32::from_num(0.9f64)),
        &want,
        fx(0.0001),
    );
}

#[test]
fn mat_ema_alpha_sparse_subtensor_vectors() {
    let alpha01 = |_: usize, _: u16, _: I32F32, _: I32F32| fx(0.1);
    let cases: &[(&[f32], &[f32], &[f32])] = &[
        (
            &[
                0.1, 0.2, 3., 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.11, 0.12,
            ],
            &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.],
            &[
                0.19, 0.38, 1., 0.43599, 0.545, 0.65399, 0.763, 0.87199, 0.981, 1., 1., 1.,
            ],
        ),
        (
            &[
                0.001, 0.002, 0.003, 0.004, 0.05, 0.006, 0.007, 0.008, 0.009, 0.010, 0.011, 0.012,
            ],
            &[
                0.1, 0.2, 3., 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.11, 0.12,
            ],
            &[
                0.0109, 0.0218, 0.30270, 0.007599, 0.05, 0.01139, 0.0133, 0.01519, 0.017, 0.01899,
                0.02089, 0.0227,
            ],
        ),
        (
            &[0.; 12],
            &[
                0.1, 0.2, 3., 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.11, 0.12,
            ],
            &[
                0.01, 0.02, 0.3, 0.00399, 0.005, 0.00599, 0.007, 0.00799, 0.009, 0.01, 0.011,
                0.01199,
            ],
        ),
        (&[0.; 12], &[0.; 12], &[0.; 12]),
    ];
    for (old, new, want) in cases {
        let got = mat_ema_alpha_sparse(&sparse(new, 4), &sparse(old, 4), alpha01);
        assert_sparse_close(&got, &sparse(want, 4), fx(1e-4));
    }
    // Subtensor's last case (old (0,0) = 1 with no new entry there) expects the sparse variant to
    // drop that bond; mycel decays it like subtensor's dense `mat_ema_alpha` (see module docs).
    let old = sparse(&[1., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0.], 4);
    let new = sparse(&[0., 0., 0., 0., 2., 0., 0., 0., 0., 0., 0., 0.], 4);
    let got = mat_ema_alpha_sparse(&new, &old, alpha01);
    assert_sparse_close(
        &got,
        &sparse(&[0.9, 0., 0., 0., 0.2, 0., 0., 0., 0., 0., 0., 0.], 4),
        fx(1e-4),
    );

    // test_mat_ema_alpha_sparse_varying_alpha
    // (subtensor builds these with f64 literals)
    let f = |x: f64| I32F32::from_num(x);
    let w = vec![
        vec![(0, f(0.1)), (1, f(0.2))],
        vec![(0, f(0.3)), (1, f(0.4))],
    ];
    let b = vec![
        vec![(0, f(0.5)), (1, f(0.6))],
        vec![(0, f(0.7)), (1, f(0.8))],
    ];
    let a = [[f(0.9), f(0.8)], [f(0.5), f(0.7)]];
    let got = mat_ema_alpha_sparse(&w, &b, |i, j, _, _| a[i][j as usize]);
    let want = vec![
        vec![(0, f(0.14)), (1, f(0.28))],
        vec![(0, f(0.499999)), (1, f(0.519999))],
    ];
    assert_sparse_close(&got, &want, fx(1e-6));

    // test_mat_ema_alpha_sparse_{single,multiple,mixed}: results clamp at 1.
    let new = vec![
        vec![(0, fx(1.)), (1, fx(2.))],
        vec![(0, fx(3.)), (1, fx(4.))],
    ];
    let old = vec![
        vec![(0, fx(5.)), (1, fx(6.))],
        vec![(0, fx(7.)), (1, fx(8.))],
    ];
    let ones = vec![
        vec![(0, fx(1.)), (1, fx(1.))],
        vec![(0, fx(1.)), (1, fx(1.))],
    ];
    assert_sparse_close(
        &mat_ema_alpha_sparse(
            &new,
            &old,
            |_, j, _, _| if j == 0 { fx(0.1) } else { fx(0.2) },
        ),
        &ones,
        fx(1e-6),
    );
    assert_sparse_close(
        &mat_ema_alpha_sparse(
            &new,
            &old,
            |_, j, _, _| if j == 0 { fx(0.3) } else { fx(0.7) },
        ),
        &ones,
        fx(1e-6),
    );
    let got = mat_ema_alpha_sparse(&[vec![(0, fx(1.))]], &[vec![(0, fx(2.))]], |_, _, _, _| {
        fx(0.5)
    });
    assert_eq!(got, vec![vec![(0, fx(1.))]]);
}

#[test]
fn mat_ema_sparse_is_union_of_supports() {
    let new = vec![vec![(1, fx(0.5))]];
    let old = vec![vec![(0, fx(1.)), (1, fx(0.5))]];
    let got = mat_ema_sparse(&new, &old, fx(0.25));
    assert_eq!(got, vec![vec![(0, fx(0.75)), (1, fx(0.5))]]);
}

#[test]
fn col_normalize_and_upscale_sparse() {
    let mut m = sparse(&[1., 2., 3., 0., 1., 6.], 2);
    inplace_col_normalize_sparse(&mut m, 3);
    assert_sparse_close(
        &m,
        &sparse(&[1., 0.6666667, 0.3333333, 0., 0.3333333, 0.6666667], 2),
        fx(1e-7),
    );
    let mut m = sparse(&[1., 2., 3., 0., 1., 6.], 2);
    inplace_col_max_upscale_sparse(&mut m, 3);
    assert_sparse_close(&m, &sparse(&[1., 1., 0.5, 0., 0.5, 1.], 2), I32F32::ZERO);
}

#[test]
fn masks_sparse() {
    let m = sparse(&[1., 2., 3., 4., 5., 6., 7., 8., 9.], 3);
    assert_eq!(
        mask_diag_sparse_except(&m, None),
        sparse(&[0., 2., 3., 4., 0., 6., 7., 8., 0.], 3)
    );
    assert_eq!(
        mask_diag_sparse_except(&m, Some(1)),
        sparse(&[0., 2., 3., 4., 5., 6., 7., 8., 0.], 3)
    );
    assert_eq!(
        mask_rows_sparse(&[false, true, false], &m),
        sparse(&[1., 2., 3., 0., 0., 0., 7., 8., 9.], 3)
    );
    let got = vec_mask_sparse_matrix(&m, &[1, 5, 3], &[2, 2, 4], |u, r| u <= r);
    assert_eq!(got, sparse(&[0., 0., 0., 4., 5., 6., 7., 8., 0.], 3));
}

proptest! {
    /// The stake-weighted median is one of the scores, never above the largest.
    #[test]
    fn weighted_median_is_a_score(
        pairs in proptest::collection::vec((1u32..1000, 0u32..1000), 1..20),
        kappa in 0u16..=u16::MAX,
    ) {
        let mut stake: Vec<I32F32> = pairs.iter().map(|(s, _)| I32F32::from_num(*s)).collect();
        inplace_normalize(&mut stake);
        let score: Vec<I32F32> = pairs.iter().map(|(_, w)| I32F32::from_num(*w) / 1000).collect();
        let idx: Vec<usize> = (0..stake.len()).collect();
        let total = sum(&stake);
        let m = weighted_median(&stake, &score, &idx, total - u16_proportion_to_fixed(kappa), I32F32::ZERO, total);
        prop_assert!(score.contains(&m) || m == I32F32::ZERO);
        prop_assert!(m <= score.iter().copied().max().unwrap_or(I32F32::ZERO));
    }

    /// exp is monotone and positive over its clamped domain.
    #[test]
    fn exp_is_monotone(a in -25.0f64..25.0, b in -25.0f64..25.0) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let (elo, ehi) = (exp_safe(I32F32::from_num(lo)), exp_safe(I32F32::from_num(hi)));
        prop_assert!(elo <= ehi + I32F32::from_bits(1));
        prop_assert!(elo > I32F32::ZERO);
    }
}

proptest! {
    /// The 64-bit fast path of `safe_div` gives the fixed crate's bits exactly.
    #[test]
    fn safe_div_matches_fixed_division(
        x in prop_oneof![any::<i64>(), 0i64..(1i64 << 32), Just(1i64 << 32)],
        d in prop_oneof![any::<i64>(), 1i64..(1i64 << 34), (0u32..63).prop_map(|k| 1i64 << k)],
    ) {
        let (x, d) = (I32F32::from_bits(x), I32F32::from_bits(d));
        prop_assert_eq!(safe_div(x, d), x.checked_div(d).unwrap_or(I32F32::ZERO));
    }
}

proptest! {
    /// `Divisor` (reciprocal multiplication) gives `safe_div`'s bits exactly.
    #[test]
    fn divisor_matches_safe_div(
        x in prop_oneof![any::<i64>(), 0i64..(1i64 << 32), Just(1i64 << 32), (0u32..63).prop_map(|k| (1i64 << k) - 1)],
        d in prop_oneof![any::<i64>(), 1i64..(1i64 << 34), (0u32..63).prop_map(|k| 1i64 << k), (1u32..63).prop_map(|k| (1i64 << k) - 1), Just(65535i64 << 32)],
    ) {
        let (x, d) = (I32F32::from_bits(x), I32F32::from_bits(d));
        prop_assert_eq!(Divisor::new(d).div(x), safe_div(x, d));
    }

}

/// The shortcut in `u16_proportion_to_fixed` is `safe_div(x, 65535)` for every `u16`.
#[test]
fn u16_proportion_matches_safe_div() {
    for x in 0..=u16::MAX {
        assert_eq!(
            u16_proportion_to_fixed(x),
            safe_div(I32F32::from_num(x), u16_max_fixed())
        );
    }
}

proptest! {
    /// `exp_safe4` gives `exp_safe`'s bits in every lane, including clamped inputs.
    #[test]
    fn exp_safe4_matches_exp_safe(
        x in proptest::array::uniform4(prop_oneof![any::<i64>(), -(25i64 << 32)..(25i64 << 32), -(6i64 << 32)..(6i64 << 32)]),
    ) {
        let input = x.map(I32F32::from_bits);
        prop_assert_eq!(exp_safe4(input), input.map(exp_safe));
    }
}
