//! The one random stream of a training run: ChaCha20 from a 32-byte seed, turned into numbers by
//! integer arithmetic and exact float conversions only, so every machine draws the same values.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

pub struct UniformStream {
    rng: ChaCha20Rng,
}

impl UniformStream {
    pub fn new(seed: [u8; 32]) -> Self {
        UniformStream {
            rng: ChaCha20Rng::from_seed(seed),
        }
    }

    /// Uniform in [−1, 1) on a grid of 2⁻²³: 24 random bits, scaled by powers of two (exact).
    pub fn next_symmetric(&mut self) -> f32 {
        let bits = self.rng.next_u32() >> 8;
        (bits as f32 / 16_777_216.0) * 2.0 - 1.0
    }

    /// Uniform in 0..bound (bound > 0), without modulo bias (rejection of the short last range).
    pub fn next_below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "next_below needs a positive bound");
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let x = self.rng.next_u64();
            if x < zone {
                return x % bound;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_fixed_by_its_seed() {
        let mut a = UniformStream::new([7; 32]);
        let mut b = UniformStream::new([7; 32]);
        let mut c = UniformStream::new([8; 32]);
        let xs: Vec<f32> = (0..64).map(|_| a.next_symmetric()).collect();
        let ys: Vec<f32> = (0..64).map(|_| b.next_symmetric()).collect();
        let zs: Vec<f32> = (0..64).map(|_| c.next_symmetric()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert!(xs.iter().all(|x| (-1.0..1.0).contains(x)));
        assert!(xs.iter().any(|x| *x < -0.5) && xs.iter().any(|x| *x > 0.5));
        let below: Vec<u64> = (0..1000).map(|_| a.next_below(10)).collect();
        assert!(below.iter().all(|x| *x < 10));
        assert!((0..10).all(|d| below.contains(&d)));
    }
}
