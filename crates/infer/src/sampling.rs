//! Choosing the next token from logits, exactly: the same logits and settings give the same token
//! on every machine.
//!
//! - `temperature == 0`: greedy, the arg-max; ties go to the lowest token id. NaN counts as −∞.
//! - otherwise: candidates are all tokens ordered by (logit descending, id ascending); keep the first
//!   `top_k` (0 = all); weights `w_i = exp((l_i − l_max) / T)` in `f64` with `libm::exp`; the
//!   probability mass is summed in candidate order; keep the shortest prefix whose mass reaches
//!   `top_p × total` (at least one); draw `u = (next_u64 >> 11) × 2⁻⁵³` from ChaCha20 and pick the
//!   first candidate whose running mass exceeds `u × kept mass`.
//! - The ChaCha20 generator (`rand_chacha::ChaCha20Rng`) is seeded once per generation with a
//!   32-byte key: the request's `u64` seed little-endian, then 24 zero bytes. One `u64` is drawn per
//!   sampled token, in order.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::error::InferError;

/// The settings, declared with the canonical request that binds them (mycel-types).
pub use mycel_types::receipt::SamplingParams;

/// The sampler of one generation: the settings and the seeded random stream.
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha20Rng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Self, InferError> {
        params
            .validate()
            .map_err(|invalid| InferError::InvalidSampling(invalid.0))?;
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&params.seed.to_le_bytes());
        Ok(Self {
            params,
            rng: ChaCha20Rng::from_seed(key),
        })
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token id from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.params.temperature == 0.0 {
            return argmax(logits);
        }
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let key = |id: u32| clean(logits[id as usize]);
        order.sort_unstable_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
        if self.params.top_k > 0 {
            order.truncate(self.params.top_k as usize);
        }
        let Some(&best) = order.first() else { return 0 };
        let max = f64::from(key(best));
        let temperature = f64::from(self.params.temperature);
        let weights: Vec<f64> = order
            .iter()
            .map(|&id| {
                let logit = f64::from(key(id));
                if logit == f64::NEG_INFINITY {
                    0.0
                } else {
                    libm::exp((logit - max) / temperature)
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut kept = weights.len();
        let mut kept_mass = total;
        if self.params.top_p < 1.0 {
            let target = f64::from(self.params.top_p) * total;
            let mut running = 0.0;
            for (i, w) in weights.iter().enumerate() {
                running += w;
                if running >= target {
                    kept = i + 1;
                    kept_mass = running;
                    break;
                }
            }
        }
        let u = (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let threshold = u * kept_mass;
        let mut running = 0.0;
        for i in 0..kept {
            running += weights[i];
            if running > threshold {
                return order[i];
            }
        }
        order[kept - 1]
    }
}

fn clean(logit: f32) -> f32 {
    if logit.is_nan() {
        f32::NEG_INFINITY
    } else {
        logit
    }
}

/// Index of the largest logit, the lowest index on ties; NaN counts as −∞.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        let v = clean(v);
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_breaks_ties_by_lowest_id() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, 1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, -1.0]), 1);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_seed_dependent() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let params = |seed| SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            top_k: 40,
            seed,
            ..SamplingParams::default()
        };
        let run = |seed| {
            let mut s = Sampler::new(params(seed)).unwrap();
            (0..32).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let logits = [0.5, 3.0, 3.0, -1.0];
        let mut s = Sampler::new(SamplingParams {
            temperature: 0.8,
            top_k: 1,
            seed: 3,
            ..SamplingParams::default()
        })
        .unwrap();
        for _ in 0..10 {
            assert_eq!(s.sample(&logits), 1);
        }
    }

    #[test]
    fn invalid_settings_are_rejected() {
        let bad = SamplingParams {
            top_p: 0.0,
            ..SamplingParams::default()
        };
        assert!(Sampler::new(bad).is_err());
        let bad = SamplingParams {
            temperature: -1.0,
            ..SamplingParams::default()
        };
        assert!(Sampler::new(bad).is_err());
    }
}
