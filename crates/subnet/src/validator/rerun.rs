//! `POST /rerun`: re-runs an answer anyone sends (the explorer's re-run button, a script) and says
//! whether it reproduces bit for bit, as a [`Report`] (`response` 100 or 0, `verdict`, `detail`).
//!
//! A stranger's request would cost this validator a model run, so before any work:
//! - the body is at most [`MAX_PAYLOAD_BYTES`] (413 otherwise);
//! - the receipt must be signed by the miner it names and be for the model this validator runs
//!   (otherwise the verdict says why, without a run);
//! - the request must be within [`MAX_RERUN_PROMPT_TOKENS`] and [`MAX_RERUN_OUTPUT_TOKENS`]
//!   (verdict `over_limit`, without a run);
//! - the miner must be registered on the subnet the receipt names (403 `unregistered_miner`): a
//!   registration burns MYC, so nobody gets runs for receipts they signed with a fresh key;
//! - one re-run at a time (another gets 503 `busy` with `Retry-After`);
//! - verdicts are remembered by the answer's keccak-256 (the last [`KEPT_VERDICTS`]), so asking
//!   again, or many asking at once after the first, costs nothing.

use super::challenge::{check_standalone_answer, rerun, Answer};
use super::evaluate::{
    over_limit, over_limit_detail, verdict_of, Recent, Report, MAX_PAYLOAD_BYTES,
    MAX_RERUN_OUTPUT_TOKENS, MAX_RERUN_PROMPT_TOKENS,
};
use alloy_primitives::{keccak256, B256};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use mycel_client::NodeClient;
use mycel_infer::Model;
use serde_json::json;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Verdicts remembered.
pub const KEPT_VERDICTS: usize = 256;
/// Seconds a busy answer asks the client to wait.
const RETRY_AFTER_SECS: u64 = 5;

/// Re-runs answers on request; see the module docs for what it refuses.
#[derive(Clone)]
pub struct Rerunner {
    model: Arc<Model>,
    node: NodeClient,
    running: Arc<Semaphore>,
    /// Verdicts by the keccak-256 of the answer re-run.
    verdicts: Arc<Mutex<Recent<Report>>>,
}

/// Why a re-run was not done: an HTTP status, a code and a message.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            let wait = RETRY_AFTER_SECS.to_string();
            return (self.status, [(header::RETRY_AFTER, wait)], body).into_response();
        }
        (self.status, body).into_response()
    }
}

impl Rerunner {
    /// Re-runs on `model`, looking miners up on the chain `node` serves.
    pub fn new(node: NodeClient, model: Arc<Model>) -> Rerunner {
        Rerunner {
            model,
            node,
            running: Arc::new(Semaphore::new(1)),
            verdicts: Arc::new(Mutex::new(Recent::new(KEPT_VERDICTS))),
        }
    }

    /// `POST /rerun`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/rerun", post(rerun_route))
            .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES))
            .with_state(self.clone())
    }

    /// The verdict on `body`, an answer with its receipt (see the module docs).
    pub async fn rerun(&self, body: Bytes) -> Result<Report, Refusal> {
        if body.len() > MAX_PAYLOAD_BYTES {
            return Err(Refusal {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "too_large",
                message: format!("an answer of at most {MAX_PAYLOAD_BYTES} bytes"),
            });
        }
        let key = keccak256(&body);
        if let Some(known) = self.remembered(&key) {
            return Ok(known);
        }
        let model_id = B256::from(self.model.id().0);
        let checked = tokio::task::spawn_blocking(move || check_standalone_answer(&body, model_id))
            .await
            .map_err(|e| internal(format!("the check did not finish: {e}")))?;
        let mut report = Report::pending("rerun", B256::ZERO, None, "");
        let answer = match checked {
            Ok(answer) => answer,
            Err(fault) => {
                verdict_of(&mut report, Err(Some(fault)));
                return Ok(report);
            }
        };
        let r = &answer.receipt.receipt;
        report.hash = r.requestHash;
        report.miner = Some(r.miner.to_checksum(None));
        if over_limit(&answer) {
            report.verdict = "over_limit".into();
            report.detail = over_limit_detail();
            return Ok(report);
        }
        self.check_registered(&answer).await?;
        let Ok(_running) = self.running.clone().try_acquire_owned() else {
            return Err(Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "busy",
                message: format!(
                    "this validator is re-running another answer; one runs at a time (requests \
                     of at most {MAX_RERUN_PROMPT_TOKENS} prompt tokens and max_tokens \
                     {MAX_RERUN_OUTPUT_TOKENS}); try again in {RETRY_AFTER_SECS} s"
                ),
            });
        };
        // Another request may have run the same answer while this one waited for the chain.
        if let Some(known) = self.remembered(&key) {
            return Ok(known);
        }
        let model = self.model.clone();
        let result = tokio::task::spawn_blocking(move || rerun(&model, &answer))
            .await
            .map_err(|e| internal(format!("the re-run did not finish: {e}")))?;
        verdict_of(&mut report, result.map_err(Some));
        self.remember(key, &report);
        Ok(report)
    }

    /// The miner that signed `answer` must be a neuron of the subnet its receipt names.
    async fn check_registered(&self, answer: &Answer) -> Result<(), Refusal> {
        let r = &answer.receipt.receipt;
        let graph = self.node.metagraph(r.netuid).await.map_err(|e| Refusal {
            status: StatusCode::BAD_GATEWAY,
            code: "node_unavailable",
            message: format!("cannot read subnet {}'s metagraph: {e}", r.netuid),
        })?;
        if graph.neuron(r.miner).is_none() {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                code: "unregistered_miner",
                message: format!(
                    "{} is not a neuron of subnet {}: this validator re-runs only receipts of \
                     registered miners",
                    r.miner, r.netuid
                ),
            });
        }
        Ok(())
    }

    fn remembered(&self, key: &B256) -> Option<Report> {
        self.verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
    }

    fn remember(&self, key: B256, report: &Report) {
        self.verdicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, report.clone());
    }
}

fn internal(message: String) -> Refusal {
    Refusal {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal",
        message,
    }
}

async fn rerun_route(State(rerunner): State<Rerunner>, body: Bytes) -> Response {
    match rerunner.rerun(body).await {
        Ok(report) => Json(report).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}
