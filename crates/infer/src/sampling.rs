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
        let order = candidates(logits, self.params.top_k as usize);
        let key = |id: u32| clean(logits[id as usize]);
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

/// The candidates of a sampled token: every id ordered by (logit descending, id ascending), NaN
/// as −∞, the first `top_k` of them (all when 0). Equal to sorting the ids with that comparison
/// (`sorted_by_comparison` in the tests), faster: each id's logit becomes a 32-bit key whose
/// ascending order is the descending `total_cmp` order, then a stable radix sort over ids in
/// ascending order (ties keep the lower id first), or for a small `top_k` a selection of the `k`
/// smallest (key, id) pairs and a sort of those.
fn candidates(logits: &[f32], top_k: usize) -> Vec<u32> {
    // `total_cmp`'s order on the bits: flip the sign bit of non-negatives, every bit of
    // negatives; then complement for descending.
    let descending = |logit: f32| {
        let bits = clean(logit).to_bits();
        let ascending = if bits >> 31 == 1 {
            !bits
        } else {
            bits | 1 << 31
        };
        !ascending
    };
    let n = logits.len();
    if top_k > 0 && top_k < n / 16 {
        let mut pairs: Vec<u64> = logits
            .iter()
            .enumerate()
            .map(|(id, &l)| (u64::from(descending(l)) << 32) | id as u64)
            .collect();
        pairs.select_nth_unstable(top_k - 1);
        pairs.truncate(top_k);
        pairs.sort_unstable();
        return pairs.into_iter().map(|p| p as u32).collect();
    }
    // LSD radix sort of (key, id) by key, 8 bits a pass: stable, so equal keys keep id order.
    let mut from: Vec<(u32, u32)> = logits
        .iter()
        .enumerate()
        .map(|(id, &l)| (descending(l), id as u32))
        .collect();
    let mut to = vec![(0u32, 0u32); n];
    for shift in [0, 8, 16, 24] {
        let mut counts = [0usize; 257];
        for &(key, _) in &from {
            counts[((key >> shift) & 0xff) as usize + 1] += 1;
        }
        if counts.contains(&n) {
            continue; // every key has the same byte here: the pass would not move anything
        }
        for i in 1..257 {
            counts[i] += counts[i - 1];
        }
        for &pair in &from {
            let digit = ((pair.0 >> shift) & 0xff) as usize;
            to[counts[digit]] = pair;
            counts[digit] += 1;
        }
        std::mem::swap(&mut from, &mut to);
    }
    let keep = if top_k > 0 { top_k.min(n) } else { n };
    from.into_iter().take(keep).map(|(_, id)| id).collect()
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

    /// The specification's ordering, by comparison.
    fn sorted_by_comparison(logits: &[f32], top_k: usize) -> Vec<u32> {
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let key = |id: u32| clean(logits[id as usize]);
        order.sort_unstable_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
        if top_k > 0 {
            order.truncate(top_k);
        }
        order
    }

    #[test]
    fn candidates_are_ordered_as_the_comparison_orders_them() {
        use rand_core::SeedableRng;
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let specials = [
            0.0,
            -0.0,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-45,
            -1e-45,
            f32::MAX,
            f32::MIN,
        ];
        for round in 0..40 {
            let n = [1, 2, 7, 300, 5000, 49152][round % 6];
            let logits: Vec<f32> = (0..n)
                .map(|_| match rng.next_u32() % 8 {
                    // Many ties: a few distinct values.
                    0 => (rng.next_u32() % 4) as f32 - 1.5,
                    1 => specials[(rng.next_u32() as usize) % specials.len()],
                    2 => f32::from_bits(rng.next_u32()),
                    _ => (rng.next_u32() as i32) as f32 / 1e8,
                })
                .collect();
            for top_k in [0, 1, 3, 40, n / 2, n, n + 5] {
                assert_eq!(
                    candidates(&logits, top_k),
                    sorted_by_comparison(&logits, top_k),
                    "n {n}, top_k {top_k}"
                );
            }
        }
    }

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
