//! The validator: challenges every miner of a subnet each tempo, checks the answers' receipts,
//! re-executes a sample with the same model, scores the miners and sets weights on chain.
//!
//! One round:
//! 1. read the subnet (tempo, commit-reveal, next epoch) and the metagraph from the node;
//! 2. send every miner that announced an endpoint `challenges` requests (shipped and generated
//!    prompts, fresh seeds, `max_tokens` small), the miners in parallel, each miner's one after
//!    the other; time each answer and check its receipt ([`challenge::check_answer`]);
//! 3. re-execute `reruns` randomly chosen answers per miner locally and compare the output token
//!    hashes and text exactly ([`challenge::rerun`]); the miner cannot tell which;
//! 4. score ([`score`]) and send `SetWeights`, or `CommitWeights` when the subnet has
//!    commit-reveal on (revealed with `RevealWeights` in a later round, once the chain allows);
//! 5. publish what it found per miner ([`Status`]: log lines, `GET /status`, a report file) and
//!    wait for the next epoch.
//!
//! It does not stake, and it does not decide who may validate: the chain's Yuma consensus counts
//! its weights only when its hotkey holds a validator permit.

pub mod chain;
pub mod challenge;
pub mod evaluate;
pub mod metrics;
pub mod rerun;
pub mod score;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use mycel_infer::Model;
use rand::seq::SliceRandom;
use serde::Serialize;

use chain::{ChainError, Neuron, PendingCommit, SubnetParams};
use challenge::{Expected, Fault, Outcome};
pub use metrics::ValidatorMetrics;
use mycel_client::NodeClient;

/// How a validator runs.
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    pub netuid: u16,
    /// Challenges sent to each miner per round.
    pub challenges: usize,
    /// Answers per miner re-executed locally per round (at most `challenges`).
    pub reruns: usize,
    /// `max_tokens` of each challenge.
    pub max_tokens: u32,
    /// How long one challenge may take before it counts as unanswered.
    pub request_timeout: Duration,
    /// How long to wait for a transaction to be finalized.
    pub tx_timeout: Duration,
    /// Stop after this many rounds (`None`: run until stopped).
    pub rounds: Option<u64>,
    /// Write the status JSON here after every round.
    pub report: Option<PathBuf>,
}

/// What the validator found, as `GET /status` and the report file show it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub netuid: u16,
    pub hotkey: Option<Address>,
    pub uid: Option<u16>,
    pub chain_id: u64,
    pub model_id: Option<B256>,
    pub rounds: u64,
    pub last_round: Option<Round>,
}

/// One round's findings.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// The finalized height when the round started.
    pub height: u64,
    pub tempo: u64,
    pub commit_reveal: bool,
    pub miners: Vec<MinerReport>,
    pub weights: WeightsReport,
}

/// What one miner did in a round.
#[derive(Debug, Clone, Serialize)]
pub struct MinerReport {
    pub uid: u16,
    pub hotkey: Address,
    pub endpoint: String,
    pub challenges: usize,
    pub answered: usize,
    pub reruns: usize,
    pub reruns_matched: usize,
    pub median_tokens_per_second: Option<f64>,
    pub mean_latency_ms: Option<u64>,
    pub faults: Vec<Fault>,
    pub errors: Vec<String>,
    pub score: f64,
    pub weight: u16,
    /// One line a person reads: "ok", or what was wrong.
    pub verdict: String,
    pub outcomes: Vec<Outcome>,
}

/// What the validator sent to the chain in a round.
#[derive(Debug, Clone, Serialize)]
pub struct WeightsReport {
    /// `SetWeights`, `CommitWeights`, or `none` (no miner earned weight).
    pub kind: String,
    pub uids: Vec<u16>,
    pub values: Vec<u16>,
    pub tx: Option<B256>,
    pub error: Option<String>,
    /// Commits revealed in this round.
    pub revealed: Vec<B256>,
}

/// Why the validator stopped.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("cannot write the report {path}: {detail}")]
    Report { path: PathBuf, detail: String },
}

/// A validator over one loaded model.
pub struct Validator {
    config: ValidatorConfig,
    node: NodeClient,
    hotkey: PrivateKeySigner,
    coldkey: PrivateKeySigner,
    model: Arc<Model>,
    http: reqwest::Client,
    status: Arc<Mutex<Status>>,
    metrics: ValidatorMetrics,
    pending: Vec<PendingCommit>,
}

impl Validator {
    /// `coldkey` pays the registration burn if the hotkey is not registered yet.
    pub fn new(
        config: ValidatorConfig,
        node: NodeClient,
        hotkey: PrivateKeySigner,
        coldkey: PrivateKeySigner,
        model: Arc<Model>,
    ) -> Self {
        let status = Status {
            netuid: config.netuid,
            hotkey: Some(hotkey.address()),
            model_id: Some(B256::from(model.id().0)),
            ..Status::default()
        };
        Self {
            config,
            node,
            hotkey,
            coldkey,
            model,
            http: reqwest::Client::new(),
            status: Arc::new(Mutex::new(status)),
            metrics: ValidatorMetrics::new(),
            pending: Vec::new(),
        }
    }

    /// The live status, shared with [`status_router`].
    pub fn status(&self) -> Arc<Mutex<Status>> {
        Arc::clone(&self.status)
    }

    pub fn metrics(&self) -> &ValidatorMetrics {
        &self.metrics
    }

    /// `GET /status`, `GET /metrics` and `GET /health`.
    pub fn router(&self) -> Router {
        status_router(self.status(), self.metrics.clone())
    }

    fn update_status(&self, change: impl FnOnce(&mut Status)) -> Status {
        let mut guard = match self.status.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(&mut guard);
        guard.clone()
    }

    /// Registers the hotkey if needed, then runs rounds, one per tempo, until `config.rounds`
    /// are done (or forever).
    pub async fn run(&mut self) -> Result<(), ValidatorError> {
        let chain_id = self
            .node
            .chain_params()
            .await
            .map_err(ChainError::from)?
            .chain_id;
        let netuid = self.config.netuid;
        let (uid, registered_now) = chain::ensure_registered(
            &self.node,
            netuid,
            &self.hotkey,
            &self.coldkey,
            self.config.tx_timeout,
        )
        .await?;
        tracing::info!(
            netuid,
            uid,
            hotkey = %self.hotkey.address(),
            registered_now,
            "validator registered on the subnet"
        );
        self.update_status(|s| {
            s.chain_id = chain_id;
            s.uid = Some(uid);
        });
        let mut done = 0u64;
        loop {
            let params = chain::subnet_params(&self.node, netuid).await?;
            let round = self.round(chain_id, uid, &params).await?;
            done += 1;
            let status = self.update_status(|s| {
                s.rounds = done;
                s.last_round = Some(round);
            });
            if let Some(path) = &self.config.report {
                write_report(path, &status)?;
            }
            if self.config.rounds.is_some_and(|n| done >= n) {
                return Ok(());
            }
            // One round per tempo: wait until the epoch these weights were for has run.
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                match self.node.status().await {
                    Ok(status) if status.height > params.next_epoch_at => break,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot read the chain height"),
                }
            }
        }
    }

    async fn round(
        &mut self,
        chain_id: u64,
        own_uid: u16,
        params: &SubnetParams,
    ) -> Result<Round, ValidatorError> {
        let netuid = self.config.netuid;
        let revealed = self.reveal_pending().await;
        let graph = chain::neurons(&self.node, netuid).await?;
        let miners: Vec<Neuron> = graph
            .into_iter()
            .filter(|n| n.uid != own_uid && n.endpoint.is_some())
            .collect();
        tracing::info!(
            netuid,
            height = params.height,
            miners = miners.len(),
            "round: challenging every miner with an endpoint"
        );
        let model_id = B256::from(self.model.id().0);
        // Miners accept the model's id as its name.
        let model_name = self.model.id().to_hex();
        let requests = {
            let mut rng = rand::thread_rng();
            miners
                .iter()
                .map(|_| {
                    challenge::challenge_requests(
                        self.config.challenges,
                        self.config.max_tokens,
                        &mut rng,
                    )
                })
                .collect::<Vec<_>>()
        };
        let sends = miners.iter().zip(&requests).map(|(miner, requests)| {
            let expected = Expected {
                chain_id,
                netuid,
                hotkey: miner.hotkey,
                model_id,
            };
            let endpoint = miner.endpoint.clone().unwrap_or_default();
            let http = self.http.clone();
            let model_name = model_name.clone();
            let timeout = self.config.request_timeout;
            async move {
                let mut outcomes = Vec::with_capacity(requests.len());
                for request in requests {
                    outcomes.push(
                        challenge::send_challenge(
                            &http,
                            &endpoint,
                            &model_name,
                            request,
                            &expected,
                            timeout,
                        )
                        .await,
                    );
                }
                outcomes
            }
        });
        let mut all_outcomes = futures::future::join_all(sends).await;
        self.metrics.miners.set(miners.len() as i64);

        // Re-execute a random sample of each miner's checked answers.
        let mut reruns = vec![(0usize, 0usize); miners.len()];
        for (index, outcomes) in all_outcomes.iter_mut().enumerate() {
            let mut candidates: Vec<usize> = outcomes
                .iter()
                .enumerate()
                .filter(|(_, o)| o.answer.is_some() && o.succeeded())
                .map(|(i, _)| i)
                .collect();
            candidates.shuffle(&mut rand::thread_rng());
            candidates.truncate(self.config.reruns);
            for i in candidates {
                let Some(answer) = outcomes[i].answer.clone() else {
                    continue;
                };
                let model = Arc::clone(&self.model);
                let checked =
                    tokio::task::spawn_blocking(move || challenge::rerun(&model, &answer))
                        .await
                        .unwrap_or_else(|e| {
                            Err(Fault::WrongRequest(format!("the re-run crashed: {e}")))
                        });
                outcomes[i].rerun = true;
                reruns[index].0 += 1;
                match checked {
                    Ok(()) => {
                        reruns[index].1 += 1;
                        ValidatorMetrics::count(&self.metrics.reruns, "matched");
                    }
                    Err(fault) => {
                        outcomes[i].fault = Some(fault);
                        ValidatorMetrics::count(&self.metrics.reruns, "mismatched");
                    }
                }
            }
        }

        for outcome in all_outcomes.iter().flatten() {
            let result = match (&outcome.fault, &outcome.error) {
                (Some(fault), _) => fault.kind(),
                (None, Some(_)) => "error",
                (None, None) => "ok",
            };
            ValidatorMetrics::count(&self.metrics.challenges, result);
            if outcome.error.is_none() {
                self.metrics
                    .challenge_latency
                    .observe(outcome.latency_ms as f64 / 1000.0);
            }
        }
        self.metrics.rounds.inc();
        let fastest = all_outcomes
            .iter()
            .filter(|o| o.iter().all(|o| o.fault.is_none()))
            .filter_map(|o| score::median_tokens_per_second(o))
            .fold(0.0_f64, f64::max);
        let scores: Vec<f64> = all_outcomes
            .iter()
            .map(|o| score::score(o, fastest))
            .collect();
        let weights = score::weights(&scores);

        let mut reports = Vec::with_capacity(miners.len());
        for (((miner, outcomes), (score, weight)), (ran, matched)) in miners
            .iter()
            .zip(all_outcomes)
            .zip(scores.iter().zip(&weights))
            .zip(reruns)
        {
            let report = miner_report(miner, outcomes, *score, *weight, ran, matched);
            tracing::info!(
                netuid,
                uid = report.uid,
                hotkey = %report.hotkey,
                endpoint = %report.endpoint,
                answered = report.answered,
                challenges = report.challenges,
                reruns = report.reruns,
                reruns_matched = report.reruns_matched,
                tokens_per_second = report.median_tokens_per_second.unwrap_or(0.0),
                score = report.score,
                weight = report.weight,
                verdict = %report.verdict,
                "miner checked"
            );
            reports.push(report);
        }

        let (uids, values): (Vec<u16>, Vec<u16>) = reports
            .iter()
            .filter(|r| r.weight > 0)
            .map(|r| (r.uid, r.weight))
            .unzip();
        let mut weights_report = WeightsReport {
            kind: "none".into(),
            uids: uids.clone(),
            values: values.clone(),
            tx: None,
            error: None,
            revealed,
        };
        if uids.is_empty() {
            tracing::warn!(netuid, "no miner earned weight this round; no weights sent");
        } else if params.commit_reveal {
            weights_report.kind = "CommitWeights".into();
            match chain::commit_weights(
                &self.node,
                netuid,
                &self.hotkey,
                &uids,
                &values,
                params.weights_version_key,
                self.config.tx_timeout,
            )
            .await
            {
                Ok(commit) => {
                    ValidatorMetrics::count(&self.metrics.weight_txs, "CommitWeights_ok");
                    tracing::info!(netuid, commit = %commit.hash, "weights committed; revealed in a later round");
                    weights_report.tx = Some(commit.hash);
                    self.pending.push(commit);
                }
                Err(e) => {
                    ValidatorMetrics::count(&self.metrics.weight_txs, "CommitWeights_refused");
                    tracing::warn!(netuid, error = %e, "cannot commit weights");
                    weights_report.error = Some(e.to_string());
                }
            }
        } else {
            weights_report.kind = "SetWeights".into();
            match chain::set_weights(
                &self.node,
                netuid,
                &self.hotkey,
                &uids,
                &values,
                params.weights_version_key,
                self.config.tx_timeout,
            )
            .await
            {
                Ok(hash) => {
                    ValidatorMetrics::count(&self.metrics.weight_txs, "SetWeights_ok");
                    tracing::info!(netuid, tx = %hash, ?uids, ?values, "weights set");
                    weights_report.tx = Some(hash);
                }
                Err(e) => {
                    ValidatorMetrics::count(&self.metrics.weight_txs, "SetWeights_refused");
                    tracing::warn!(netuid, error = %e, "cannot set weights");
                    weights_report.error = Some(e.to_string());
                }
            }
        }
        Ok(Round {
            height: params.height,
            tempo: params.tempo,
            commit_reveal: params.commit_reveal,
            miners: reports,
            weights: weights_report,
        })
    }

    /// Reveals the pending commits the chain accepts now, oldest first; keeps those it calls too
    /// early, drops those it refuses for good.
    async fn reveal_pending(&mut self) -> Vec<B256> {
        let mut revealed = Vec::new();
        let mut keep = Vec::new();
        for commit in std::mem::take(&mut self.pending) {
            match chain::reveal_weights(
                &self.node,
                self.config.netuid,
                &self.hotkey,
                &commit,
                self.config.tx_timeout,
            )
            .await
            {
                Ok(_) => {
                    ValidatorMetrics::count(&self.metrics.weight_txs, "RevealWeights_ok");
                    tracing::info!(commit = %commit.hash, "weights revealed");
                    revealed.push(commit.hash);
                }
                Err(e) if e.code() == Some("reveal_too_early") => keep.push(commit),
                Err(e) if e.is_transient() => {
                    tracing::warn!(commit = %commit.hash, error = %e, "cannot reveal now; retrying next round");
                    keep.push(commit);
                }
                Err(e) => {
                    ValidatorMetrics::count(&self.metrics.weight_txs, "RevealWeights_refused");
                    tracing::warn!(commit = %commit.hash, error = %e, "the chain refused the reveal; dropping this commit");
                }
            }
        }
        self.pending = keep;
        revealed
    }
}

fn miner_report(
    miner: &Neuron,
    outcomes: Vec<Outcome>,
    score: f64,
    weight: u16,
    reruns: usize,
    reruns_matched: usize,
) -> MinerReport {
    let answered: Vec<&Outcome> = outcomes.iter().filter(|o| o.succeeded()).collect();
    let mean_latency_ms = (!answered.is_empty())
        .then(|| answered.iter().map(|o| o.latency_ms).sum::<u64>() / answered.len() as u64);
    let faults: Vec<Fault> = outcomes.iter().filter_map(|o| o.fault.clone()).collect();
    let errors: Vec<String> = outcomes.iter().filter_map(|o| o.error.clone()).collect();
    let verdict = match (faults.first(), errors.first()) {
        (Some(fault), _) => format!("weight 0: {}", describe(fault)),
        (None, _) if answered.is_empty() => "weight 0: answered no challenge".to_string(),
        (None, Some(error)) => format!(
            "ok, but {} of {} challenges unanswered (e.g. {error})",
            errors.len(),
            outcomes.len()
        ),
        (None, None) => "ok".to_string(),
    };
    MinerReport {
        uid: miner.uid,
        hotkey: miner.hotkey,
        endpoint: miner.endpoint.clone().unwrap_or_default(),
        challenges: outcomes.len(),
        answered: answered.len(),
        reruns,
        reruns_matched,
        median_tokens_per_second: score::median_tokens_per_second(&outcomes),
        mean_latency_ms,
        faults,
        errors,
        score,
        weight,
        verdict,
        outcomes,
    }
}

fn describe(fault: &Fault) -> String {
    match fault {
        Fault::BadReceipt(d) => format!("bad receipt: {d}"),
        Fault::BadSignature(d) => format!("bad signature: {d}"),
        Fault::WrongModel(d) => format!("wrong model: {d}"),
        Fault::WrongRequest(d) => format!("wrong request: {d}"),
        Fault::WrongOutput(d) => format!("wrong output: {d}"),
    }
}

fn write_report(path: &PathBuf, status: &Status) -> Result<(), ValidatorError> {
    let error = |detail: String| ValidatorError::Report {
        path: path.clone(),
        detail,
    };
    let text = serde_json::to_vec_pretty(status).map_err(|e| error(e.to_string()))?;
    // Write then rename, so a reader never sees half a report.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| error(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| error(e.to_string()))
}

/// `GET /status` (the [`Status`] JSON), `GET /metrics` (Prometheus text) and `GET /health`.
pub fn status_router(status: Arc<Mutex<Status>>, metrics: ValidatorMetrics) -> Router {
    Router::new()
        .route("/status", get(status_json))
        .route("/health", get(|| async { "ok" }))
        .with_state(status)
        .route(
            "/metrics",
            get(move || {
                let text = metrics.encode();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
}

async fn status_json(State(status): State<Arc<Mutex<Status>>>) -> Json<Status> {
    let snapshot = match status.lock() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    Json(snapshot)
}
