//! The miner's Prometheus metrics (`GET /metrics`, text format).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `chat.completions`, `completions`, `models`.
    pub endpoint: String,
    /// The HTTP status answered.
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// `prompt` or `completion`.
    pub kind: String,
}

/// Every metric the miner exports; cheap to clone (shared counters).
#[derive(Clone)]
pub struct MinerMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub tokens: Family<TokenLabels, Counter>,
    /// Requests admitted and waiting for a worker.
    pub queue_depth: Gauge,
    /// Requests a worker is decoding now.
    pub in_flight: Gauge,
    /// Requests refused because the queue was full.
    pub rejected_busy: Counter,
    /// Requests stopped because their client went away.
    pub cancelled: Counter,
    /// From admission to the last token.
    pub request_latency: Histogram,
    /// Time spent waiting in the queue.
    pub queue_wait: Histogram,
    /// From admission to the first sampled token.
    pub time_to_first_token: Histogram,
    pub receipts_signed: Counter,
    /// Requests in a worker's batch at each decode step.
    pub batch_size: Histogram,
}

impl MinerMetrics {
    pub fn new() -> Self {
        let seconds = || Histogram::new(exponential_buckets(0.01, 2.0, 14));
        Self {
            requests: Family::default(),
            tokens: Family::default(),
            queue_depth: Gauge::default(),
            in_flight: Gauge::default(),
            rejected_busy: Counter::default(),
            cancelled: Counter::default(),
            request_latency: seconds(),
            queue_wait: seconds(),
            time_to_first_token: seconds(),
            receipts_signed: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 7)),
        }
    }

    pub fn count_request(&self, endpoint: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_string(),
                status,
            })
            .inc();
    }

    pub fn count_tokens(&self, prompt: usize, completion: usize) {
        let add = |kind: &str, n: usize| {
            self.tokens
                .get_or_create(&TokenLabels { kind: kind.into() })
                .inc_by(n as u64);
        };
        add("prompt", prompt);
        add("completion", completion);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut registry = Registry::with_prefix("mycel_miner");
        registry.register(
            "requests",
            "HTTP requests answered, by endpoint and status",
            self.requests.clone(),
        );
        registry.register(
            "tokens",
            "Tokens processed, prompt and completion",
            self.tokens.clone(),
        );
        registry.register(
            "queue_depth",
            "Requests waiting for a worker",
            self.queue_depth.clone(),
        );
        registry.register(
            "in_flight",
            "Requests being decoded",
            self.in_flight.clone(),
        );
        registry.register(
            "rejected_busy",
            "Requests refused with 429 because the queue was full",
            self.rejected_busy.clone(),
        );
        registry.register(
            "cancelled",
            "Requests stopped because their client went away",
            self.cancelled.clone(),
        );
        registry.register(
            "request_latency_seconds",
            "Time from admission to the last token",
            self.request_latency.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "Time a request waited for a worker",
            self.queue_wait.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Time from admission to the first sampled token",
            self.time_to_first_token.clone(),
        );
        registry.register(
            "receipts_signed",
            "Receipts signed",
            self.receipts_signed.clone(),
        );
        registry.register(
            "batch_size",
            "Requests in a worker's batch at each decode step (continuous batching)",
            self.batch_size.clone(),
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

impl Default for MinerMetrics {
    fn default() -> Self {
        Self::new()
    }
}
