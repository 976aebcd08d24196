//! Scores and weights.
//!
//! A miner's score in a round, from its challenge outcomes:
//!
//! - **0** if any answer had a [`Fault`](super::challenge::Fault): a bad or missing receipt, a
//!   signature that is not the miner's hotkey, another model (or chain, subnet, determinism
//!   profile), a receipt that does not bind the request sent, or an output the local re-run does
//!   not reproduce exactly. One proven lie costs the whole round.
//! - otherwise `success × (1/2 + 1/2 × speed / fastest)`, where `success` is the share of
//!   challenges answered (timeouts and HTTP errors count against it), `speed` the miner's median
//!   output tokens per second over its answered challenges (wall time from request to full
//!   answer), and `fastest` the best such median among the miners of the round. An honest miner
//!   that answers everything thus scores between 1/2 and 1; speed decides the rest.
//!
//! Weights are the scores scaled so that the best miner gets 65535, rounded to the nearest `u16`;
//! miners with weight 0 are left out of the `SetWeights` lists (the chain reads a missing UID as 0).

use super::challenge::Outcome;

/// The median tokens/s of the answered challenges, if any.
pub fn median_tokens_per_second(outcomes: &[Outcome]) -> Option<f64> {
    let mut speeds: Vec<f64> = outcomes
        .iter()
        .filter_map(Outcome::tokens_per_second)
        .collect();
    if speeds.is_empty() {
        return None;
    }
    speeds.sort_by(f64::total_cmp);
    let mid = speeds.len() / 2;
    Some(if speeds.len() % 2 == 1 {
        speeds[mid]
    } else {
        (speeds[mid - 1] + speeds[mid]) / 2.0
    })
}

/// The share of challenges answered without error or fault.
pub fn success_rate(outcomes: &[Outcome]) -> f64 {
    if outcomes.is_empty() {
        return 0.0;
    }
    let ok = outcomes.iter().filter(|o| o.succeeded()).count();
    ok as f64 / outcomes.len() as f64
}

/// The score of one miner (see the module documentation); `fastest` is the best median speed of
/// the round.
pub fn score(outcomes: &[Outcome], fastest: f64) -> f64 {
    if outcomes.iter().any(|o| o.fault.is_some()) {
        return 0.0;
    }
    let Some(speed) = median_tokens_per_second(outcomes) else {
        return 0.0;
    };
    let relative = if fastest > 0.0 {
        (speed / fastest).clamp(0.0, 1.0)
    } else {
        0.0
    };
    success_rate(outcomes) * (0.5 + 0.5 * relative)
}

/// Scores scaled to `u16` weights, the best one 65535.
pub fn weights(scores: &[f64]) -> Vec<u16> {
    let best = scores.iter().copied().fold(0.0_f64, f64::max);
    scores
        .iter()
        .map(|&s| {
            if best <= 0.0 || s <= 0.0 {
                0
            } else {
                (s / best * 65535.0).round().clamp(0.0, 65535.0) as u16
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validator::challenge::Fault;

    fn outcome(latency_ms: u64, tokens: u32) -> Outcome {
        Outcome {
            prompt: String::new(),
            seed: 0,
            latency_ms,
            output_tokens: tokens,
            error: None,
            fault: None,
            rerun: false,
            answer: None,
        }
    }

    #[test]
    fn a_fault_zeroes_the_score_and_speed_decides_the_rest() {
        let fast = vec![outcome(100, 10), outcome(100, 10), outcome(200, 10)];
        let slow = vec![outcome(400, 10), outcome(400, 10)];
        let fastest = median_tokens_per_second(&fast).unwrap();
        assert_eq!(fastest, 100.0);
        assert_eq!(score(&fast, fastest), 1.0);
        assert_eq!(score(&slow, fastest), 0.5 + 0.5 * 0.25);

        let mut lying = fast.clone();
        lying[1].fault = Some(Fault::WrongOutput("altered".into()));
        assert_eq!(score(&lying, fastest), 0.0);

        let mut flaky = fast.clone();
        flaky[2].error = Some("timeout".into());
        // 2 of 3 answered, at full speed.
        assert!((score(&flaky, fastest) - 2.0 / 3.0).abs() < 1e-12);

        assert_eq!(weights(&[1.0, 0.625, 0.0]), vec![65535, 40959, 0]);
        assert_eq!(weights(&[0.0, 0.0]), vec![0, 0]);
    }
}
