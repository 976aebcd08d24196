//! The miner: an OpenAI-compatible HTTP server over one loaded model, signing a receipt for every
//! completion.
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/completions` (both with `stream: true` as
//! server-sent events in OpenAI's chunk format, ending with `data: [DONE]`), `GET /v1/models`,
//! `GET /health`, `GET /metrics`.
//!
//! The receipt of a completion is in the body (an extra `receipt` field: the signed receipt's JSON
//! form with the canonical request) and, for non-streaming answers, in the `x-mycel-receipt`
//! header (base64 of the receipt's JSON without the request, which can be long). A streaming
//! answer has its headers sent before the output exists, so its receipt is in the last chunk
//! (the one with `finish_reason`).
//!
//! Requests are read by [`mycel_openai`] (the same reading a gateway prices them by): the prompt
//! is tokenized — message text as text — and a request whose prompt and `max_tokens` do not fit
//! the context is refused with 400 before it takes a queue slot. Admitted requests are decoded by
//! `workers` threads, each decoding up to `batch` requests together (continuous batching: one
//! forward pass per step for all of them, a request joins at the next step and leaves when it is
//! done; a joining prompt is prefilled in pieces between steps). Batching never changes a bit of
//! an answer: each one's logits are those of decoding it alone. At most `queue_size` admitted
//! requests wait for a place in a batch; one more is refused with 429 and a `Retry-After` of the
//! time until the first running request is expected to end (from its token counts and the
//! measured speed). A request whose client goes away leaves the batch at the next step (within
//! one layer of the model's work when it was alone, prompt prefill included).

pub mod chain;
pub mod metrics;

use mycel_client::agents::{registration_file, request_base, AgentDirectory};
use mycel_client::api::AGENT_REGISTRATION_PATH;
use mycel_client::NodeClient;
use std::cell::Cell;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use futures::{Stream, StreamExt};
use mycel_infer::{
    receipt_for_generation, CanonicalRequest, Endpoint, FinishReason, Generation, InferError,
    Model, Sequence, SignedReceipt, TokenEvent, TokenizerError,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

pub use metrics::MinerMetrics;
use mycel_openai::{Admitted, ParsedRequest};
pub use mycel_openai::{ApiError, Limits};

/// The response header that carries a non-streaming completion's receipt (base64 of its JSON).
pub const RECEIPT_HEADER: &str = "x-mycel-receipt";

/// How a miner runs.
#[derive(Debug, Clone)]
pub struct MinerConfig {
    pub chain_id: u64,
    pub netuid: u16,
    /// The name `/v1/models` lists and requests use. The model's id (SHA-256 hex) is accepted too.
    pub model_name: String,
    /// Threads that decode, each a batch of up to `batch` requests together.
    pub workers: usize,
    /// Requests one worker decodes together (continuous batching).
    pub batch: usize,
    /// Admitted requests that may wait for a worker.
    pub queue_size: usize,
    pub limits: Limits,
}

/// Where the current finalized block height comes from. The miner reads it when a request starts
/// decoding and puts it in the receipt; [`follow_chain_height`] keeps it up to date from a node.
#[derive(Debug, Clone, Default)]
pub struct BlockHeight(Arc<AtomicU64>);

impl BlockHeight {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, height: u64) {
        self.0.store(height, Ordering::Relaxed);
    }
}

/// A request that finished decoding, with its signed receipt.
#[derive(Debug)]
pub struct Served {
    pub generation: Generation,
    pub receipt: SignedReceipt,
    pub started: Instant,
}

enum JobEvent {
    Token(TokenEvent),
    Done(Box<Result<Served, ApiError>>),
}

struct Job {
    request: CanonicalRequest,
    prompt: Vec<u32>,
    admitted: Instant,
    events: UnboundedSender<JobEvent>,
}

/// Measured speed, nanoseconds per token (moving averages), for `Retry-After`.
struct Speed {
    prefill_ns: AtomicU64,
    decode_ns: AtomicU64,
}

impl Speed {
    /// How long a request of these token counts is expected to take.
    fn expected(&self, prompt_tokens: usize, max_tokens: u32) -> Duration {
        let ns = self.prefill_ns.load(Ordering::Relaxed) * prompt_tokens as u64
            + self.decode_ns.load(Ordering::Relaxed) * u64::from(max_tokens);
        Duration::from_nanos(ns)
    }

    /// Folds one generation into the averages (weight 1/4 for the newest).
    fn record(&self, generation: &Generation) {
        let update = |average: &AtomicU64, total: Duration, tokens: usize| {
            if tokens == 0 || total.is_zero() {
                return;
            }
            let sample = u64::try_from(total.as_nanos() / tokens as u128).unwrap_or(u64::MAX);
            let _ = average.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(old - old / 4 + sample / 4)
            });
        };
        update(
            &self.prefill_ns,
            generation.prefill_time,
            generation.prompt_tokens.len(),
        );
        update(
            &self.decode_ns,
            generation.decode_time,
            generation.output_tokens.len().saturating_sub(1),
        );
    }
}

struct Shared {
    config: MinerConfig,
    model: Arc<Model>,
    signer: PrivateKeySigner,
    height: BlockHeight,
    metrics: MinerMetrics,
    /// Requests admitted and not finished (queued + decoding).
    admitted: AtomicUsize,
    speed: Speed,
    /// Per place in the workers' batches, the request it runs: when it started and how long it
    /// is expected to take.
    running: Mutex<Vec<Option<(Instant, Duration)>>>,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// The agents the miner's hotkey owns, for its registration file (set once, with a node).
    agents: std::sync::OnceLock<Arc<AgentDirectory>>,
}

/// A running miner: its router and its worker threads.
#[derive(Clone)]
pub struct Miner {
    shared: Arc<Shared>,
}

impl Miner {
    /// Starts the worker threads over `model`; serve [`Miner::router`] to answer requests.
    pub fn start(
        config: MinerConfig,
        model: Arc<Model>,
        signer: PrivateKeySigner,
        height: BlockHeight,
    ) -> Self {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let workers = config.workers.max(1);
        let config_batch = config.batch.max(1);
        let shared = Arc::new(Shared {
            config,
            model,
            signer,
            height,
            metrics: MinerMetrics::new(),
            admitted: AtomicUsize::new(0),
            // First guesses until requests are measured (this machine class, one thread).
            speed: Speed {
                prefill_ns: AtomicU64::new(5_000_000),
                decode_ns: AtomicU64::new(20_000_000),
            },
            running: Mutex::new(vec![None; workers * config_batch]),
            jobs: Mutex::new(sender),
            agents: std::sync::OnceLock::new(),
        });
        for index in 0..workers {
            let shared = Arc::clone(&shared);
            let receiver = Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("miner-worker-{index}"))
                .spawn(move || worker_loop(&shared, &receiver, index));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a miner worker thread");
            }
        }
        Self { shared }
    }

    pub fn address(&self) -> Address {
        self.shared.signer.address()
    }

    /// Lists the agents the miner's hotkey owns (read from `node`) in its registration file.
    /// Only the first call counts.
    pub fn list_agents(&self, node: NodeClient) {
        let _ = self
            .shared
            .agents
            .set(Arc::new(AgentDirectory::new(node, self.address())));
    }

    pub fn metrics(&self) -> &MinerMetrics {
        &self.shared.metrics
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/completions", post(completions))
            .route("/v1/models", get(models))
            .route(AGENT_REGISTRATION_PATH, get(registration))
            .route("/health", get(health))
            .route("/metrics", get(metrics_text))
            .fallback(not_found)
            .with_state(self.clone())
    }

    /// Admits a request, or refuses it when every worker is busy and the queue is full.
    fn submit(
        &self,
        request: CanonicalRequest,
        prompt: Vec<u32>,
    ) -> Result<UnboundedReceiver<JobEvent>, ApiError> {
        let shared = &self.shared;
        let capacity =
            shared.config.workers.max(1) * shared.config.batch.max(1) + shared.config.queue_size;
        let admitted = shared
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            });
        if admitted.is_err() {
            shared.metrics.rejected_busy.inc();
            return Err(ApiError::queue_full(self.retry_after_seconds()));
        }
        let (events, receiver) = unbounded_channel();
        let job = Job {
            request,
            prompt,
            admitted: Instant::now(),
            events,
        };
        shared.metrics.queue_depth.inc();
        let sent = shared
            .jobs
            .lock()
            .map_err(|_| ApiError::internal("the miner's job queue is poisoned"))?
            .send(job);
        if sent.is_err() {
            shared.metrics.queue_depth.dec();
            shared.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::internal("the miner's workers have stopped"));
        }
        Ok(receiver)
    }

    /// When a refused client should come back: a queue slot frees when the first running
    /// request ends, expected from its token counts at the measured speed (within 1 to 60 s).
    fn retry_after_seconds(&self) -> u64 {
        let running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let first_end = running
            .iter()
            .flatten()
            .map(|(started, expected)| expected.saturating_sub(started.elapsed()))
            .min()
            .unwrap_or(Duration::from_secs(1));
        first_end.as_millis().div_ceil(1000).clamp(1, 60) as u64
    }

    fn accepts_model(&self, name: &str) -> bool {
        let id = self.shared.model.id().to_hex();
        name == self.shared.config.model_name
            || name
                .strip_prefix("0x")
                .unwrap_or(name)
                .eq_ignore_ascii_case(&id)
    }
}

/// A request in a worker's batch.
struct Active {
    job: Job,
    /// Its slot in [`Shared::running`].
    slot: usize,
    started: Instant,
    block_height: u64,
    /// No token sent yet (for the time-to-first-token metric).
    first: Cell<bool>,
}

/// Prompt tokens a worker prefills per step, over all the requests joining its batch: a joining
/// prompt is run in pieces of at most this many tokens between the decode steps of the others,
/// so that it does not stall them for long. (Batching and pieces never change a bit.)
const PREFILL_PER_STEP: usize = 128;

/// A worker: decodes up to `batch` admitted requests together, one forward pass per step
/// (continuous batching: a request joins at the next step and leaves when it is done).
fn worker_loop(shared: &Shared, receiver: &Mutex<mpsc::Receiver<Job>>, index: usize) {
    let model = Arc::clone(&shared.model);
    let batch = shared.config.batch.max(1);
    let mut free_slots: Vec<usize> = (index * batch..(index + 1) * batch).rev().collect();
    let mut active: Vec<Active> = Vec::new();
    let mut sequences: Vec<Sequence<'_>> = Vec::new();
    loop {
        // Take the requests that wait: block when idle, else only those already queued (and
        // only when no idle worker is blocked on the queue).
        while active.len() < batch {
            let job = if active.is_empty() {
                match receiver.lock() {
                    Ok(guard) => match guard.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    },
                    Err(_) => return,
                }
            } else {
                match receiver.try_lock() {
                    Ok(guard) => match guard.try_recv() {
                        Ok(job) => job,
                        Err(_) => break,
                    },
                    Err(_) => break,
                }
            };
            shared.metrics.queue_depth.dec();
            shared
                .metrics
                .queue_wait
                .observe(job.admitted.elapsed().as_secs_f64());
            if job.events.is_closed() {
                shared.metrics.cancelled.inc();
                shared.admitted.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            match model.start(&job.prompt, &job.request.sampling()) {
                Ok(sequence) => {
                    let slot = free_slots
                        .pop()
                        .expect("a free slot per place in the batch");
                    let expected = shared
                        .speed
                        .expected(job.prompt.len(), job.request.max_tokens);
                    set_running(shared, slot, Some((Instant::now(), expected)));
                    shared.metrics.in_flight.inc();
                    sequences.push(sequence);
                    active.push(Active {
                        job,
                        slot,
                        started: Instant::now(),
                        block_height: shared.height.get(),
                        first: Cell::new(true),
                    });
                }
                Err(error) => {
                    shared.admitted.fetch_sub(1, Ordering::AcqRel);
                    let _ = job
                        .events
                        .send(JobEvent::Done(Box::new(Err(infer_error(error)))));
                }
            }
        }

        // One forward pass for the batch, kept in arrival order (joining prompts are prefilled
        // first come, first served). Gone clients' requests leave first; when every client of
        // the pass goes away during it, it stops within one layer.
        let mut i = 0;
        while i < active.len() {
            if active[i].job.events.is_closed() {
                shared.metrics.cancelled.inc();
                let done = active.remove(i);
                sequences.remove(i);
                release(shared, &mut free_slots, done.slot);
            } else {
                i += 1;
            }
        }
        if active.is_empty() {
            continue;
        }
        shared.metrics.batch_size.observe(active.len() as f64);
        let all_gone = || active.iter().all(|a| a.job.events.is_closed());
        let stepped = model.step(
            &mut sequences,
            PREFILL_PER_STEP,
            &all_gone,
            &mut |i, event| {
                let a = &active[i];
                if a.first.replace(false) {
                    shared
                        .metrics
                        .time_to_first_token
                        .observe(a.job.admitted.elapsed().as_secs_f64());
                }
                // A closed channel means the client went away: stop decoding for it.
                match a.job.events.send(JobEvent::Token(event.clone())) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            },
        );
        if let Err(error) = stepped {
            // The pass was cancelled (every client left) or failed: its sequences are unusable.
            let cancelled = matches!(error, InferError::Cancelled);
            let message = format!("{error}");
            sequences.clear();
            for done in active.drain(..) {
                if cancelled {
                    shared.metrics.cancelled.inc();
                }
                release(shared, &mut free_slots, done.slot);
                let error = match cancelled {
                    true => infer_error(InferError::Cancelled),
                    false => ApiError::internal(format!("the model failed: {message}")),
                };
                let _ = done.job.events.send(JobEvent::Done(Box::new(Err(error))));
            }
            continue;
        }
        let mut i = 0;
        while i < active.len() {
            if sequences[i].finish_reason().is_none() {
                i += 1;
                continue;
            }
            let done = active.remove(i);
            let generation = sequences.remove(i).into_generation(&mut |event| {
                let _ = done.job.events.send(JobEvent::Token(event.clone()));
                ControlFlow::Continue(())
            });
            release(shared, &mut free_slots, done.slot);
            let result = generation
                .map_err(infer_error)
                .and_then(|generation| serve_generation(shared, &done, generation));
            let _ = done.job.events.send(JobEvent::Done(Box::new(result)));
        }
    }
}

/// A request left the batch: its slot and its place in the admission count are free.
fn release(shared: &Shared, free_slots: &mut Vec<usize>, slot: usize) {
    set_running(shared, slot, None);
    free_slots.push(slot);
    shared.metrics.in_flight.dec();
    shared.admitted.fetch_sub(1, Ordering::AcqRel);
}

fn set_running(shared: &Shared, slot: usize, job: Option<(Instant, Duration)>) {
    let mut running = shared.running.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(place) = running.get_mut(slot) {
        *place = job;
    }
}

/// Signs the receipt of a finished generation.
fn serve_generation(
    shared: &Shared,
    done: &Active,
    generation: Generation,
) -> Result<Served, ApiError> {
    let job = &done.job;
    shared
        .metrics
        .request_latency
        .observe(job.admitted.elapsed().as_secs_f64());
    shared.speed.record(&generation);
    shared.metrics.count_tokens(
        generation.prompt_tokens.len(),
        generation.output_tokens.len(),
    );
    let receipt = receipt_for_generation(
        shared.config.netuid,
        shared.signer.address(),
        &shared.model,
        &job.request,
        &generation,
        done.block_height,
    );
    let receipt = SignedReceipt::sign(receipt, shared.config.chain_id, &shared.signer)
        .map_err(|e| ApiError::internal(format!("cannot sign the receipt: {e}")))?;
    shared.metrics.receipts_signed.inc();
    Ok(Served {
        generation,
        receipt,
        started: done.started,
    })
}

fn infer_error(error: InferError) -> ApiError {
    match &error {
        InferError::PromptTooLong { .. }
        | InferError::Tokenizer(TokenizerError::PromptOverLimit { .. }) => ApiError::invalid(
            Some("messages"),
            "context_length_exceeded",
            format!("{error}"),
        ),
        InferError::EmptyPrompt => {
            ApiError::invalid(Some("prompt"), "invalid_value", "The prompt is empty.")
        }
        InferError::InvalidSampling(reason) => ApiError::invalid(
            None,
            "invalid_value",
            format!("Invalid sampling setting: {reason}"),
        ),
        InferError::Tokenizer(TokenizerError::UnsupportedChatTemplate) => ApiError::invalid(
            Some("messages"),
            "unsupported_model",
            "This model has no ChatML chat template; use /v1/completions.",
        ),
        InferError::Cancelled => ApiError::internal("the client went away; decoding stopped"),
        other => ApiError::internal(format!("the model failed: {other}")),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::EndOfGeneration | FinishReason::StopSequence | FinishReason::Cancelled => {
            "stop"
        }
        FinishReason::MaxTokens | FinishReason::ContextFull => "length",
    }
}

fn usage_json(g: &Generation) -> serde_json::Value {
    serde_json::json!({
        "prompt_tokens": g.prompt_tokens.len(),
        "completion_tokens": g.output_tokens.len(),
        "total_tokens": g.prompt_tokens.len() + g.output_tokens.len(),
    })
}

fn completion_id(endpoint: Endpoint) -> String {
    let prefix = match endpoint {
        Endpoint::ChatCompletions => "chatcmpl",
        Endpoint::Completions => "cmpl",
    };
    format!("{prefix}-{}", hex::encode(rand::random::<[u8; 12]>()))
}

async fn chat_completions(State(miner): State<Miner>, body: Bytes) -> Response {
    let parsed = mycel_openai::parse_chat(&body, &miner.shared.config.limits);
    answer(miner, parsed, Endpoint::ChatCompletions).await
}

async fn completions(State(miner): State<Miner>, body: Bytes) -> Response {
    let parsed = mycel_openai::parse_completion(&body, &miner.shared.config.limits);
    answer(miner, parsed, Endpoint::Completions).await
}

async fn answer(
    miner: Miner,
    parsed: Result<ParsedRequest, ApiError>,
    endpoint: Endpoint,
) -> Response {
    let metrics = miner.shared.metrics.clone();
    let response = match prepare(&miner, parsed) {
        Err(error) => error.into_response(),
        Ok((parsed, receiver)) => {
            if parsed.stream {
                stream_response(miner, parsed, receiver, endpoint)
            } else {
                whole_response(miner, parsed, receiver, endpoint).await
            }
        }
    };
    metrics.count_request(endpoint.as_str(), response.status().as_u16());
    response
}

/// Checks the model name, tokenizes the prompt (within the context) and admits the request.
fn prepare(
    miner: &Miner,
    parsed: Result<ParsedRequest, ApiError>,
) -> Result<(Admitted, UnboundedReceiver<JobEvent>), ApiError> {
    let parsed = parsed?;
    if !miner.accepts_model(&parsed.model) {
        return Err(ApiError::model_not_found(
            &parsed.model,
            &miner.shared.config.model_name,
        ));
    }
    let admitted = parsed.admit(miner.shared.model.prompt_format())?;
    let receiver = miner.submit(admitted.request.clone(), admitted.prompt_tokens.clone())?;
    Ok((admitted, receiver))
}

async fn whole_response(
    miner: Miner,
    parsed: Admitted,
    mut receiver: UnboundedReceiver<JobEvent>,
    endpoint: Endpoint,
) -> Response {
    let served = loop {
        match receiver.recv().await {
            Some(JobEvent::Token(_)) => continue,
            Some(JobEvent::Done(result)) => break *result,
            None => break Err(ApiError::internal("the worker stopped before answering")),
        }
    };
    let served = match served {
        Ok(served) => served,
        Err(error) => return error.into_response(),
    };
    let g = &served.generation;
    let receipt = served.receipt.to_json(Some(&parsed.request));
    let id = completion_id(endpoint);
    let model = miner.shared.config.model_name.clone();
    let choice = match endpoint {
        Endpoint::ChatCompletions => serde_json::json!({
            "index": 0,
            "message": {"role": "assistant", "content": g.text, "refusal": null},
            "logprobs": null,
            "finish_reason": finish_reason(g.finish_reason),
        }),
        Endpoint::Completions => serde_json::json!({
            "index": 0,
            "text": g.text,
            "logprobs": null,
            "finish_reason": finish_reason(g.finish_reason),
        }),
    };
    let object = match endpoint {
        Endpoint::ChatCompletions => "chat.completion",
        Endpoint::Completions => "text_completion",
    };
    let body = serde_json::json!({
        "id": id,
        "object": object,
        "created": unix_now(),
        "model": model,
        "system_fingerprint": mycel_infer::DETERMINISM_PROFILE,
        "choices": [choice],
        "usage": usage_json(g),
        "receipt": receipt,
    });
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    let header_json = serde_json::to_vec(&served.receipt.to_json(None)).unwrap_or_default();
    let encoded = base64::engine::general_purpose::STANDARD.encode(header_json);
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        response.headers_mut().insert(RECEIPT_HEADER, value);
    }
    response
}

/// Everything a streamed answer needs to write its chunks.
struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    endpoint: Endpoint,
}

impl ChunkWriter {
    fn chunk(&self, choices: serde_json::Value) -> serde_json::Value {
        let object = match self.endpoint {
            Endpoint::ChatCompletions => "chat.completion.chunk",
            Endpoint::Completions => "text_completion",
        };
        serde_json::json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": mycel_infer::DETERMINISM_PROFILE,
            "choices": choices,
        })
    }

    fn choice(&self, text: Option<&str>, role: bool, finish: Option<&str>) -> serde_json::Value {
        match self.endpoint {
            Endpoint::ChatCompletions => {
                let mut delta = serde_json::Map::new();
                if role {
                    delta.insert("role".into(), "assistant".into());
                }
                if let Some(text) = text {
                    delta.insert("content".into(), text.into());
                }
                serde_json::json!([{
                    "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish,
                }])
            }
            Endpoint::Completions => serde_json::json!([{
                "index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish,
            }]),
        }
    }
}

fn sse_json(value: &serde_json::Value) -> Event {
    Event::default().data(value.to_string())
}

fn stream_response(
    miner: Miner,
    parsed: Admitted,
    receiver: UnboundedReceiver<JobEvent>,
    endpoint: Endpoint,
) -> Response {
    let writer = ChunkWriter {
        id: completion_id(endpoint),
        created: unix_now(),
        model: miner.shared.config.model_name.clone(),
        endpoint,
    };
    let events = sse_events(writer, parsed, receiver);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn sse_events(
    writer: ChunkWriter,
    parsed: Admitted,
    receiver: UnboundedReceiver<JobEvent>,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    enum Phase {
        Start,
        Tokens,
        Done,
    }
    let state = (writer, parsed, receiver, Phase::Start);
    futures::stream::unfold(state, |(writer, parsed, mut receiver, phase)| async move {
        match phase {
            Phase::Start => {
                // OpenAI opens a chat stream with the role and empty content.
                let first = match writer.endpoint {
                    Endpoint::ChatCompletions => {
                        sse_json(&writer.chunk(writer.choice(Some(""), true, None)))
                    }
                    Endpoint::Completions => Event::default().comment("mycel"),
                };
                Some((vec![first], (writer, parsed, receiver, Phase::Tokens)))
            }
            Phase::Tokens => loop {
                match receiver.recv().await {
                    Some(JobEvent::Token(event)) => {
                        if event.text.is_empty() {
                            continue;
                        }
                        let chunk = writer.chunk(writer.choice(Some(&event.text), false, None));
                        return Some((
                            vec![sse_json(&chunk)],
                            (writer, parsed, receiver, Phase::Tokens),
                        ));
                    }
                    Some(JobEvent::Done(result)) => match *result {
                        Ok(served) => {
                            let g = &served.generation;
                            let mut last = writer.chunk(writer.choice(
                                None,
                                false,
                                Some(finish_reason(g.finish_reason)),
                            ));
                            last["receipt"] =
                                serde_json::to_value(served.receipt.to_json(Some(&parsed.request)))
                                    .unwrap_or_default();
                            let mut events = vec![sse_json(&last)];
                            if parsed.include_usage {
                                let mut usage = writer.chunk(serde_json::json!([]));
                                usage["usage"] = usage_json(g);
                                events.push(sse_json(&usage));
                            }
                            events.push(Event::default().data("[DONE]"));
                            return Some((events, (writer, parsed, receiver, Phase::Done)));
                        }
                        Err(error) => {
                            return Some((
                                vec![sse_json(&error.body()), Event::default().data("[DONE]")],
                                (writer, parsed, receiver, Phase::Done),
                            ));
                        }
                    },
                    None => {
                        let error = ApiError::internal("the worker stopped before answering");
                        return Some((
                            vec![sse_json(&error.body())],
                            (writer, parsed, receiver, Phase::Done),
                        ));
                    }
                }
            },
            Phase::Done => None,
        }
    })
    .flat_map(|events| futures::stream::iter(events.into_iter().map(Ok)))
}

async fn models(State(miner): State<Miner>) -> Response {
    let model = &miner.shared.model;
    let body = serde_json::json!({
        "object": "list",
        "data": [{
            "id": miner.shared.config.model_name,
            "object": "model",
            "created": 0,
            "owned_by": miner.address().to_checksum(None),
            "mycel": {
                "model_id": format!("0x{}", model.id().to_hex()),
                "determinism_profile": mycel_infer::DETERMINISM_PROFILE,
                "context_length": model.context_limit(),
                "max_tokens": miner.shared.config.limits.max_tokens,
                "chain_id": miner.shared.config.chain_id,
                "netuid": miner.shared.config.netuid,
                "miner": miner.address().to_checksum(None),
            },
        }],
    });
    miner.shared.metrics.count_request("models", 200);
    axum::Json(body).into_response()
}

/// `GET /.well-known/agent-registration.json`: the miner's ERC-8004 registration file: its
/// OpenAI-compatible API at the address the request reached (no x402: the gateway takes the
/// payments) and the agents its hotkey owns.
async fn registration(State(miner): State<Miner>, headers: axum::http::HeaderMap) -> Response {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let base = request_base(host, "http://127.0.0.1");
    let registrations = match miner.shared.agents.get() {
        Some(directory) => directory.registrations().await,
        None => Vec::new(),
    };
    let description = format!(
        "mycel miner of subnet {}: serves {} with a signed, re-runnable receipt for every answer",
        miner.shared.config.netuid, miner.shared.config.model_name
    );
    // A public document: any page may read it (an explorer showing the agent).
    (
        [(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        axum::Json(registration_file(
            &format!("mycel miner {}", miner.address()),
            &description,
            &base,
            false,
            registrations,
        )),
    )
        .into_response()
}

async fn health() -> &'static str {
    "ok"
}

async fn metrics_text(State(miner): State<Miner>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        miner.shared.metrics.encode(),
    )
        .into_response()
}

async fn not_found() -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "Unknown route. A mycel miner serves POST /v1/chat/completions, POST \
                  /v1/completions, GET /v1/models, GET /health and GET /metrics."
            .into(),
        error_type: "invalid_request_error",
        param: None,
        code: Some("unknown_url"),
        retry_after: None,
    }
    .into_response()
}

/// Serves the miner on a bound listener under `limits` (mycel-http: connection cap, header/body
/// deadlines; decodes and streamed completions are never cut) until `shutdown` resolves.
pub async fn serve(
    miner: Miner,
    listener: tokio::net::TcpListener,
    limits: mycel_http::ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    mycel_http::serve(listener, miner.router(), limits, shutdown).await
}
