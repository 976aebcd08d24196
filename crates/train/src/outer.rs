//! The outer step: average the miners' decoded updates and move the shared parameters θ.
//!
//! [`mean_of_updates`] turns a round's [`CompressedUpdate`]s into one outer gradient `g`;
//! [`OuterOptimizer::step`] applies it. The optimizer is DiLoCo's: SGD with Nesterov momentum,
//! PyTorch's `SGD(nesterov=True, dampening=0, weight_decay=0)` convention, for every index `i`
//! in ascending order:
//!
//! ```text
//! v[i] = μ·v[i] + g[i]
//! θ[i] = θ[i] − lr·(g[i] + μ·v[i])      (v[i] already updated)
//! ```
//!
//! Defaults lr = 0.7, μ = 0.9 (DiLoCo). SparseLoCo itself applies the plain average, lr = 1 and
//! no momentum ([`OuterOptimizer::plain_average`]): then `θ = θ − g` exactly.
//!
//! Guarantees:
//! - **Bit-reproducible.** Every product is rounded before it is added (no fused multiply-add),
//!   loops run sequentially in index order, and updates are summed in the order the caller gives.
//!   Float addition is not associative, so the *aggregator must order updates canonically* (for
//!   example by miner hotkey) before calling [`mean_of_updates`]; the same order gives the same
//!   bits on every machine.
//! - **Refusal changes nothing.** A mismatched length or a non-finite outer gradient is refused
//!   before θ or the velocity change.
//!
//! Assumes: the updates were decoded with [`CompressedUpdate::from_bytes`] (so their values are
//! finite and bounded by 2^64). Does not: choose which updates count, weight them by score, or
//! persist the velocity.

use crate::sparseloco::CompressedUpdate;

/// DiLoCo's outer learning rate.
pub const DEFAULT_OUTER_LR: f32 = 0.7;

/// DiLoCo's outer Nesterov momentum.
pub const DEFAULT_OUTER_MOMENTUM: f32 = 0.9;

/// Why an outer step or an average was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OuterError {
    #[error(
        "outer learning rate {lr} is invalid: use a finite value > 0 (DiLoCo 0.7, SparseLoCo 1.0)"
    )]
    LearningRate { lr: f32 },
    #[error(
        "outer momentum {momentum} is invalid: use a value in 0..1 (DiLoCo 0.9, SparseLoCo 0)"
    )]
    Momentum { momentum: f32 },
    #[error("{what} has {actual} values but the model has {expected}")]
    Length {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("outer gradient value {value} at index {index} is not finite")]
    NonFinite { index: usize, value: f32 },
    #[error("no updates to average: a round needs at least one accepted update")]
    NoUpdates,
    #[error("update {position} covers {actual} parameters but the model has {expected}")]
    UpdateLength {
        position: usize,
        expected: usize,
        actual: u64,
    },
}

/// Nesterov momentum SGD over the flat parameter vector (module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct OuterOptimizer {
    lr: f32,
    momentum: f32,
    velocity: Vec<f32>,
}

impl OuterOptimizer {
    /// An optimizer for `len` parameters with zero velocity. `lr` must be finite and > 0,
    /// `momentum` in `0..1`.
    pub fn new(len: usize, lr: f32, momentum: f32) -> Result<Self, OuterError> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(OuterError::LearningRate { lr });
        }
        if !(0.0..1.0).contains(&momentum) {
            return Err(OuterError::Momentum { momentum });
        }
        Ok(Self {
            lr,
            momentum,
            velocity: vec![0.0; len],
        })
    }

    /// An optimizer resuming with `velocity` (a checkpoint's), same checks as [`new`](Self::new).
    pub fn resume(lr: f32, momentum: f32, velocity: Vec<f32>) -> Result<Self, OuterError> {
        let mut optimizer = Self::new(0, lr, momentum)?;
        optimizer.velocity = velocity;
        Ok(optimizer)
    }

    /// DiLoCo's outer optimizer: lr 0.7, Nesterov momentum 0.9.
    pub fn diloco(len: usize) -> Self {
        Self {
            lr: DEFAULT_OUTER_LR,
            momentum: DEFAULT_OUTER_MOMENTUM,
            velocity: vec![0.0; len],
        }
    }

    /// SparseLoCo's outer step: lr 1, no momentum, so a step is `θ = θ − g`.
    pub fn plain_average(len: usize) -> Self {
        Self {
            lr: 1.0,
            momentum: 0.0,
            velocity: vec![0.0; len],
        }
    }

    pub fn lr(&self) -> f32 {
        self.lr
    }

    pub fn momentum(&self) -> f32 {
        self.momentum
    }

    pub fn velocity(&self) -> &[f32] {
        &self.velocity
    }

    /// One outer step with the mean pseudo-gradient `outer_grad` (module doc for the formula).
    pub fn step(&mut self, params: &mut [f32], outer_grad: &[f32]) -> Result<(), OuterError> {
        let expected = self.velocity.len();
        for (what, actual) in [
            ("parameters", params.len()),
            ("outer gradient", outer_grad.len()),
        ] {
            if actual != expected {
                return Err(OuterError::Length {
                    what,
                    expected,
                    actual,
                });
            }
        }
        if let Some((index, &value)) = outer_grad.iter().enumerate().find(|(_, g)| !g.is_finite()) {
            return Err(OuterError::NonFinite { index, value });
        }
        let (lr, mu) = (self.lr, self.momentum);
        for ((theta, v), &g) in params.iter_mut().zip(&mut self.velocity).zip(outer_grad) {
            *v = mu * *v + g;
            let nesterov = g + mu * *v;
            *theta -= lr * nesterov;
        }
        Ok(())
    }
}

/// The mean of `updates` as a dense vector of `len` values: each decoded update is added in the
/// order given (a different order can change the last bits; see the module doc), then every sum
/// is divided by `n as f32` (a correctly rounded division, not a multiply by `1/n`; exact for
/// n ≤ 2^24 updates).
pub fn mean_of_updates(updates: &[&CompressedUpdate], len: usize) -> Result<Vec<f32>, OuterError> {
    if updates.is_empty() {
        return Err(OuterError::NoUpdates);
    }
    for (position, update) in updates.iter().enumerate() {
        if update.len() != len as u64 {
            return Err(OuterError::UpdateLength {
                position,
                expected: len,
                actual: update.len(),
            });
        }
    }
    let mut sum = vec![0.0f32; len];
    for (position, update) in updates.iter().enumerate() {
        update
            .add_into(&mut sum, 1.0)
            .map_err(|e| OuterError::UpdateLength {
                position,
                expected: len,
                actual: e.expected,
            })?;
    }
    let n = updates.len() as f32;
    for value in &mut sum {
        *value /= n;
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparseloco::{ErrorFeedback, SparseLocoConfig};

    fn compress_fresh(delta: &[f32], chunk: usize, top_k: usize) -> CompressedUpdate {
        let cfg = SparseLocoConfig {
            chunk,
            top_k,
            ..SparseLocoConfig::default()
        };
        ErrorFeedback::new(delta.len())
            .compress(delta, &cfg)
            .unwrap()
    }

    #[test]
    fn two_nesterov_steps_by_hand() {
        // lr 0.5, μ 0.5; every intermediate value is a short binary fraction, so exact.
        // step 1: v = [0.5, 1.0];  θ = [1 − 0.5·(0.5 + 0.25), −2 − 0.5·(1 + 0.5)] = [0.625, −2.75]
        // step 2: v = [0.25 + 0.25, 0.5 − 1] = [0.5, −0.5]
        //         θ = [0.625 − 0.5·(0.25 + 0.25), −2.75 − 0.5·(−1 − 0.25)] = [0.375, −2.125]
        let mut opt = OuterOptimizer::new(2, 0.5, 0.5).unwrap();
        let mut theta = [1.0, -2.0];
        opt.step(&mut theta, &[0.5, 1.0]).unwrap();
        assert_eq!(theta, [0.625, -2.75]);
        assert_eq!(opt.velocity(), &[0.5, 1.0]);
        opt.step(&mut theta, &[0.25, -1.0]).unwrap();
        assert_eq!(theta, [0.375, -2.125]);
        assert_eq!(opt.velocity(), &[0.5, -0.5]);
    }

    #[test]
    fn defaults_follow_the_formula() {
        let mut opt = OuterOptimizer::diloco(1);
        assert_eq!((opt.lr(), opt.momentum()), (0.7, 0.9));
        let mut theta = [1.0f32];
        opt.step(&mut theta, &[0.1]).unwrap();
        let v = 0.9f32 * 0.0 + 0.1;
        assert_eq!(opt.velocity(), &[v]);
        assert_eq!(theta, [1.0 - 0.7 * (0.1 + 0.9 * v)]);
    }

    #[test]
    fn plain_average_subtracts_the_mean() {
        let a = compress_fresh(&[0.0, 3.0, 0.0, -1.0, 0.7, -0.2], 4, 2);
        let b = compress_fresh(&[2.0, 0.0, 0.0, 0.0, 0.1, 0.3], 4, 2);
        let mean = mean_of_updates(&[&a, &b], 6).unwrap();
        let mut theta = vec![0.3f32, -1.0, 2.5, 0.0, 1e-3, 7.0];
        let expected: Vec<f32> = theta.iter().zip(&mean).map(|(t, g)| t - g).collect();
        let mut opt = OuterOptimizer::plain_average(6);
        opt.step(&mut theta, &mean).unwrap();
        assert_eq!(theta, expected);
    }

    #[test]
    fn mean_of_two_known_updates() {
        // a: top-2 of [0, 3, 0, −1] is {1, 3}, s = 2 → codes +large, −small → [0, 3, 0, −1].
        // b: top-2 of [2, 0, 0, 0] is {0, 1} (tie to the lower index), s = 1 → [1.5, 0.5, 0, 0].
        let a = compress_fresh(&[0.0, 3.0, 0.0, -1.0], 4, 2);
        let b = compress_fresh(&[2.0, 0.0, 0.0, 0.0], 4, 2);
        assert_eq!(
            mean_of_updates(&[&a, &b], 4).unwrap(),
            vec![0.75, 1.75, 0.0, -0.5]
        );
        assert_eq!(
            mean_of_updates(&[&a], 4).unwrap(),
            vec![0.0, 3.0, 0.0, -1.0]
        );
    }

    #[test]
    fn same_order_gives_the_same_bits() {
        let updates: Vec<CompressedUpdate> = (0..5u32)
            .map(|m| {
                let delta: Vec<f32> = (0..100u32)
                    .map(|i| ((i * 37 + m * 101) % 97) as f32 / 97.0 - 0.5 + m as f32 * 1e-3)
                    .collect();
                compress_fresh(&delta, 32, 8)
            })
            .collect();
        let refs: Vec<&CompressedUpdate> = updates.iter().collect();
        let first = mean_of_updates(&refs, 100).unwrap();
        let second = mean_of_updates(&refs, 100).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&first), bits(&second));
    }

    #[test]
    fn refusals_change_nothing() {
        assert!(matches!(
            OuterOptimizer::new(1, 0.0, 0.5),
            Err(OuterError::LearningRate { .. })
        ));
        assert!(matches!(
            OuterOptimizer::new(1, 0.7, 1.0),
            Err(OuterError::Momentum { .. })
        ));
        assert!(matches!(
            OuterOptimizer::new(1, 0.7, f32::NAN),
            Err(OuterError::Momentum { .. })
        ));
        let mut opt = OuterOptimizer::diloco(2);
        let mut theta = [1.0, 2.0];
        opt.step(&mut theta, &[0.5, 0.5]).unwrap();
        let (before_opt, before_theta) = (opt.clone(), theta);
        assert!(matches!(
            opt.step(&mut theta, &[0.5, f32::NAN]),
            Err(OuterError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            opt.step(&mut theta, &[0.5]),
            Err(OuterError::Length { .. })
        ));
        assert!(matches!(
            opt.step(&mut [0.0; 3], &[0.5, 0.5]),
            Err(OuterError::Length { .. })
        ));
        assert_eq!((opt, theta), (before_opt, before_theta));
        let a = compress_fresh(&[1.0, 2.0], 2, 1);
        assert_eq!(mean_of_updates(&[], 2), Err(OuterError::NoUpdates));
        assert!(matches!(
            mean_of_updates(&[&a], 3),
            Err(OuterError::UpdateLength { position: 0, .. })
        ));
    }
}
