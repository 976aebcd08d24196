//! The validator's Prometheus metrics (`GET /metrics`, text format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// Challenges: `ok`, `error` (unanswered) or the fault (`bad_receipt`, `bad_signature`,
    /// `wrong_model`, `wrong_request`, `wrong_output`). Re-runs: `matched` or `mismatched`.
    /// Weights: `SetWeights`, `CommitWeights`, `RevealWeights`, each `_ok` or `_refused`.
    pub result: String,
}

/// Every metric the validator exports; cheap to clone (shared counters).
#[derive(Clone)]
pub struct ValidatorMetrics {
    pub rounds: Counter,
    pub challenges: Family<ResultLabels, Counter>,
    pub reruns: Family<ResultLabels, Counter>,
    pub weight_txs: Family<ResultLabels, Counter>,
    /// Miners challenged in the last round.
    pub miners: Gauge,
    /// From sending a challenge to reading the whole answer.
    pub challenge_latency: Histogram,
}

impl ValidatorMetrics {
    pub fn new() -> Self {
        Self {
            rounds: Counter::default(),
            challenges: Family::default(),
            reruns: Family::default(),
            weight_txs: Family::default(),
            miners: Gauge::default(),
            challenge_latency: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
        }
    }

    pub fn count(family: &Family<ResultLabels, Counter>, result: &str) {
        family
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut registry = Registry::with_prefix("mycel_validator");
        registry.register("rounds", "Rounds completed", self.rounds.clone());
        registry.register(
            "challenges",
            "Challenges sent, by result (ok, error, or the fault found)",
            self.challenges.clone(),
        );
        registry.register(
            "reruns",
            "Answers re-executed locally, matched or mismatched",
            self.reruns.clone(),
        );
        registry.register(
            "weight_txs",
            "Weight transactions sent, by kind and result",
            self.weight_txs.clone(),
        );
        registry.register(
            "miners",
            "Miners challenged in the last round",
            self.miners.clone(),
        );
        registry.register(
            "challenge_latency_seconds",
            "Time from sending a challenge to reading the whole answer",
            self.challenge_latency.clone(),
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

impl Default for ValidatorMetrics {
    fn default() -> Self {
        Self::new()
    }
}
