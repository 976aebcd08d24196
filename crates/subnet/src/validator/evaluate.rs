//! What the chain asks this validator to check, answered by re-running inference:
//! - ERC-8004 validation requests addressed to its hotkey: answered with `ValidationResponse`,
//!   100 if the answer at the request's URI reproduces bit for bit, 0 if not;
//! - ERC-8183 jobs that name its hotkey as evaluator, once delivered: `CompleteJob` if the
//!   deliverable reproduces, `RejectJob` if not (an evaluator that re-executes instead of trusts).
//!
//! Each payload is an inference answer (a completion with its receipt and request) fetched from
//! the URI the chain holds: at most [`MAX_PAYLOAD_BYTES`], within [`FETCH_TIMEOUT`]. It must hash
//! (keccak-256) to the hash the chain holds (the request hash, the job's deliverable), so what is
//! judged is what was committed to. The verdict's report is kept (the last [`KEPT_REPORTS`]) and
//! served at `/reports/{hash}`; its keccak-256 goes on chain with the answer.

use super::challenge::{check_standalone_answer, rerun, Fault};
use alloy_primitives::{keccak256, B256};
use alloy_signer_local::PrivateKeySigner;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use mycel_client::agents::fetch_bounded;
use mycel_client::api::{self, JobStatus};
use mycel_client::{JobFilter, NodeClient, SendOptions};
use mycel_infer::Model;
use mycel_types::tx::{CompleteJob, RejectJob, ValidationResponse};
use mycel_types::TxKind;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The largest payload fetched.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// How long a fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Reports kept for `/reports/{hash}`.
pub const KEPT_REPORTS: usize = 256;
/// The tag of this validator's validation responses.
pub const TAG: &str = "inference-rerun";
/// The largest request re-run for a stranger: output tokens asked for, and prompt tokens. A
/// validation request costs its sender one chain fee, so what it may make the validator compute is
/// bounded; larger requests are answered 0 with the verdict `over_limit`, without running them.
pub const MAX_RERUN_OUTPUT_TOKENS: u32 = 512;
pub const MAX_RERUN_PROMPT_TOKENS: u32 = 2048;

/// The verdict on one payload.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `validation` or `job`.
    pub kind: &'static str,
    /// The request hash, or the job's deliverable.
    pub hash: B256,
    pub job_id: Option<u64>,
    pub uri: String,
    /// 100: reproduced bit for bit; 0: not.
    pub response: u8,
    /// `reproduced`, or why not (`unreachable`, `hash_mismatch`, or a fault's kind).
    pub verdict: String,
    pub detail: String,
    /// The miner whose receipt it was, when one could be read.
    pub miner: Option<String>,
}

impl Report {
    /// A report with no verdict yet (response 0).
    pub(super) fn pending(
        kind: &'static str,
        hash: B256,
        job_id: Option<u64>,
        uri: &str,
    ) -> Report {
        Report {
            kind,
            hash,
            job_id,
            uri: uri.to_string(),
            response: 0,
            verdict: String::new(),
            detail: String::new(),
            miner: None,
        }
    }
}

/// The latest `cap` values by their hash: inserting past the cap drops the oldest.
pub(super) struct Recent<V> {
    by_hash: BTreeMap<B256, V>,
    order: VecDeque<B256>,
    cap: usize,
}

impl<V: Clone> Recent<V> {
    pub(super) fn new(cap: usize) -> Recent<V> {
        Recent {
            by_hash: BTreeMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub(super) fn get(&self, hash: &B256) -> Option<V> {
        self.by_hash.get(hash).cloned()
    }

    pub(super) fn insert(&mut self, hash: B256, value: V) {
        if self.by_hash.insert(hash, value).is_none() {
            self.order.push_back(hash);
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.by_hash.remove(&old);
            }
        }
    }
}

type Kept = Recent<Vec<u8>>;

/// Answers validation requests and evaluates jobs for the validator's hotkey.
#[derive(Clone)]
pub struct Evaluator {
    node: NodeClient,
    hotkey: PrivateKeySigner,
    model: Arc<Model>,
    http: reqwest::Client,
    kept: Arc<Mutex<Kept>>,
    /// Where `/reports/{hash}` is served (`http://host:port`), if it is.
    base: Option<String>,
}

impl Evaluator {
    pub fn new(node: NodeClient, hotkey: PrivateKeySigner, model: Arc<Model>) -> Evaluator {
        Evaluator {
            node,
            hotkey,
            model,
            http: reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .unwrap_or_default(),
            kept: Arc::new(Mutex::new(Kept::new(KEPT_REPORTS))),
            base: None,
        }
    }

    /// Names the reports' URIs after `base` (the validator's status server).
    pub fn serving_reports_at(mut self, base: String) -> Evaluator {
        self.base = Some(base);
        self
    }

    /// `GET /reports/{hash}`: a kept report (by the hash of the report itself).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/reports/{hash}", get(report))
            .with_state(self.kept.clone())
    }

    /// Checks for work every `interval` until dropped.
    pub async fn run(self, interval: Duration) {
        loop {
            if let Err(e) = self.once().await {
                tracing::warn!(error = %e, "evaluating requests failed; trying again");
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Answers every pending validation request and evaluates every delivered job that names this
    /// validator (a page of each); how many it answered.
    pub async fn once(&self) -> Result<usize, mycel_client::ClientError> {
        let me = self.hotkey_address();
        let mut done = 0;
        let pending = self.node.validations_for(me, true, None).await?;
        for v in pending.validations {
            let report = self
                .judge("validation", v.request_hash, None, &v.request_uri)
                .await;
            let (uri, report_hash) = self.keep(&report);
            let (hash, response) = (v.request_hash, report.response);
            self.send(move |f| {
                TxKind::ValidationResponse(ValidationResponse {
                    from: f.from,
                    requestHash: hash,
                    response,
                    responseURI: uri,
                    responseHash: report_hash,
                    tag: TAG.into(),
                    nonce: f.nonce,
                    fee: f.fee,
                })
            })
            .await?;
            tracing::info!(request = %hash, response, verdict = %report.verdict, "validation answered");
            done += 1;
        }
        let filter = JobFilter {
            evaluator: Some(me),
            status: Some(JobStatus::Submitted),
            ..JobFilter::default()
        };
        for job in self.node.jobs(filter, None).await?.jobs {
            done += self.evaluate_job(&job).await?;
        }
        Ok(done)
    }

    async fn evaluate_job(&self, job: &api::Job) -> Result<usize, mycel_client::ClientError> {
        let Some(deliverable) = job.deliverable else {
            return Ok(0);
        };
        let report = self
            .judge("job", deliverable, Some(job.job_id), &job.deliverable_uri)
            .await;
        let (_, reason) = self.keep(&report);
        let id = job.job_id;
        if report.response == 100 {
            self.send(move |f| {
                TxKind::CompleteJob(CompleteJob {
                    from: f.from,
                    jobId: id,
                    reason,
                    nonce: f.nonce,
                    fee: f.fee,
                })
            })
            .await?;
        } else {
            self.send(move |f| {
                TxKind::RejectJob(RejectJob {
                    from: f.from,
                    jobId: id,
                    reason,
                    nonce: f.nonce,
                    fee: f.fee,
                })
            })
            .await?;
        }
        tracing::info!(job = id, verdict = %report.verdict, "job evaluated by re-running it");
        Ok(1)
    }

    fn hotkey_address(&self) -> alloy_primitives::Address {
        self.hotkey.address()
    }

    async fn send(
        &self,
        build: impl FnOnce(mycel_client::TxFields) -> TxKind,
    ) -> Result<(), mycel_client::ClientError> {
        self.node
            .send_and_wait(&self.hotkey, &SendOptions::default(), build)
            .await?
            .applied()
            .map(|_| ())
    }

    /// Fetches the payload at `uri`, checks it against `hash`, and re-runs it.
    async fn judge(
        &self,
        kind: &'static str,
        hash: B256,
        job_id: Option<u64>,
        uri: &str,
    ) -> Report {
        let mut report = Report::pending(kind, hash, job_id, uri);
        let body = match fetch_bounded(&self.http, uri, MAX_PAYLOAD_BYTES).await {
            Ok(body) => body,
            Err(detail) => {
                report.verdict = "unreachable".into();
                report.detail = detail;
                return report;
            }
        };
        let got = keccak256(&body);
        if got != hash {
            report.verdict = "hash_mismatch".into();
            report.detail = format!("the payload hashes to {got}, the chain holds {hash}");
            return report;
        }
        rerun_into(self.model.clone(), body, &mut report).await;
        report
    }

    /// Keeps `report` for `/reports/{hash}`; its URI (empty without a status server) and hash.
    fn keep(&self, report: &Report) -> (String, B256) {
        let bytes = serde_json::to_vec_pretty(report).unwrap_or_default();
        let hash = keccak256(&bytes);
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash, bytes);
        let uri = self
            .base
            .as_ref()
            .map(|b| format!("{b}/reports/{hash}"))
            .unwrap_or_default();
        (uri, hash)
    }
}

/// Checks `body` (an answer with its receipt) and re-runs it on `model` (unless it is over the
/// limits): fills `report`'s miner, response, verdict and detail.
async fn rerun_into(model: Arc<Model>, body: Vec<u8>, report: &mut Report) {
    let model_id = B256::from(model.id().0);
    let checked =
        tokio::task::spawn_blocking(move || match check_standalone_answer(&body, model_id) {
            Ok(answer) => {
                let miner = Some(answer.receipt.receipt.miner);
                if over_limit(&answer) {
                    return (miner, Err(None));
                }
                (miner, rerun(&model, &answer).map_err(Some))
            }
            Err(fault) => (None, Err(Some(fault))),
        })
        .await;
    match checked {
        Ok((miner, result)) => {
            report.miner = miner.map(|m| m.to_checksum(None));
            verdict_of(report, result);
        }
        Err(e) => {
            report.verdict = "internal".into();
            report.detail = format!("the re-run did not finish: {e}");
        }
    }
}

/// Writes a re-run's outcome into `report`: reproduced (100), a fault, or (`None`) over the limits.
pub(super) fn verdict_of(report: &mut Report, result: Result<(), Option<Fault>>) {
    match result {
        Ok(()) => {
            report.response = 100;
            report.verdict = "reproduced".into();
            report.detail = "the re-run gives the same prompt and output tokens and text".into();
        }
        Err(Some(fault)) => {
            report.verdict = fault.kind().into();
            report.detail = fault_detail(&fault);
        }
        Err(None) => {
            report.verdict = "over_limit".into();
            report.detail = over_limit_detail();
        }
    }
}

/// Whether `answer` asks for more than a stranger may make this validator compute.
pub(super) fn over_limit(answer: &super::challenge::Answer) -> bool {
    answer.request.max_tokens > MAX_RERUN_OUTPUT_TOKENS
        || answer.receipt.receipt.promptTokenCount > MAX_RERUN_PROMPT_TOKENS
}

pub(super) fn over_limit_detail() -> String {
    format!(
        "this validator re-runs requests of at most {MAX_RERUN_PROMPT_TOKENS} prompt tokens and \
         max_tokens {MAX_RERUN_OUTPUT_TOKENS}"
    )
}

fn fault_detail(fault: &Fault) -> String {
    match fault {
        Fault::BadReceipt(d)
        | Fault::BadSignature(d)
        | Fault::WrongModel(d)
        | Fault::WrongRequest(d)
        | Fault::WrongOutput(d) => d.clone(),
    }
}

async fn report(State(kept): State<Arc<Mutex<Kept>>>, Path(hash): Path<String>) -> Response {
    let Ok(hash) = hash.parse::<B256>() else {
        return (StatusCode::BAD_REQUEST, "not a 32-byte 0x-hex hash").into_response();
    };
    let body = kept.lock().unwrap_or_else(|p| p.into_inner()).get(&hash);
    match body {
        Some(bytes) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no such report (only the latest are kept)",
        )
            .into_response(),
    }
}
