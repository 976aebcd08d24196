//! Routing between the subnet's miners: the gateway reads the subnet's metagraph from the node,
//! keeps the miners that announced an endpoint, and sends each request to one of them, failing
//! over to the next within the same request when a miner errs.
//!
//! Or between the **leases** of the compute market that serve a model (`leases`: its blob id,
//! docs/compute.md): every leased deployment of that model whose provider published an
//! OpenAI-compatible endpoint (`…/v1`) is a miner here, its provider's key the one its receipts
//! must be signed with (providers' miners are no subnet's: receipts name subnet 0). A lease
//! that ends or pauses leaves the list at the next read.
//!
//! The rule (docs/payments.md, "Routing"):
//! - A miner's **score** is `(incentive + 1) / (latency_ms + 50)`: `incentive` is its share of
//!   the last epoch from the metagraph (`u16`, out of 65535), `latency_ms` the EWMA (α = 0.3) of
//!   its successful answers' times; until a miner has answered once, the fastest measured miner's
//!   (1000 ms if none is measured), so new miners are tried soon and measured.
//! - A miner is **healthy** unless its last attempt failed: then it rests for
//!   `2^(failures in a row − 1)` seconds (at most 60 s). Resting miners are tried only after every
//!   healthy one.
//! - The order for a request: healthy miners drawn at random weighted by score (without
//!   replacement, so load spreads in proportion to score), then resting miners by score. At most
//!   `max_attempts` miners are tried.
//! - A **miner error**: no connection, a timeout, a 5xx or 429 answer, or a 2xx answer whose
//!   receipt is missing or wrong (not signed by the miner's hotkey in the metagraph, naming
//!   another miner, another chain or subnet, another model or determinism profile, or another
//!   request than the one admitted: its request hash, prompt tokens and output limit are checked
//!   against the admitted terms). The next miner is tried. Any other 4xx is the client's fault
//!   and is returned as is. When every miner tried answered 429, the client gets 429 with the
//!   shortest `Retry-After` they gave.
//! - A miner's **timeout** grows with the work sold: a base plus a time per prompt token and per
//!   token it may generate ([`crate::admission::WorkTimeout`]).
//!
//! Assumes: the metagraph's hotkeys are the keys miners sign receipts with (the validator checks
//! the same). Does not: re-run the model (validators do), or stream: the answer is read whole so
//! its receipt can be checked before anything reaches the client.

use crate::admission::WorkTimeout;
use alloy_primitives::{Address, B256};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use mycel_client::api::Metagraph;
use mycel_client::NodeClient;
use mycel_openai::Admitted;
use mycel_types::receipt::{token_ids_hash, ReceiptBinding, ReceiptJson, SignedReceipt};
use rand::Rng;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// Response header naming the miner that served: its hotkey.
pub const MINER_HOTKEY_HEADER: &str = "x-mycel-miner";
/// Response header naming the miner that served: its uid in the subnet.
pub const MINER_UID_HEADER: &str = "x-mycel-miner-uid";
/// Response header: how many miners were tried before one answered (1 = the first).
pub const ATTEMPTS_HEADER: &str = "x-mycel-attempts";

const EWMA_ALPHA: f64 = 0.3;
const UNKNOWN_LATENCY_MS: f64 = 1000.0;
const MAX_REST_SECS: u64 = 60;
/// The most pages of leased deployments read at one refresh.
const MAX_LEASE_PAGES: usize = 100;

/// How the router reads the chain and talks to miners.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// The node's HTTP API, where the metagraph is read.
    pub rpc: String,
    pub netuid: u16,
    /// How often the metagraph is read again.
    pub refresh: Duration,
    /// How long one miner may take to answer a request before it counts as failed.
    pub timeout: WorkTimeout,
    /// Most miners tried for one request.
    pub max_attempts: usize,
    /// The model receipts must name (`None`: any model).
    pub model_id: Option<B256>,
    /// Route to the market's leases serving this model blob instead of the subnet's miners
    /// (`netuid` is then 0, the subnet providers' receipts name).
    pub leases: Option<B256>,
}

/// A miner as the metagraph lists it, with an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinerInfo {
    pub uid: u16,
    pub hotkey: Address,
    pub coldkey: Address,
    pub incentive: u64,
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// The deployment whose lease this is (lease routing).
    pub lease: Option<u64>,
}

#[derive(Debug, Default, Clone)]
struct Health {
    latency_ms: Option<f64>,
    failures_in_row: u32,
    rest_until: Option<Instant>,
    served: u64,
    failed: u64,
    last_error: Option<String>,
}

impl Health {
    fn resting(&self, now: Instant) -> bool {
        self.rest_until.is_some_and(|t| t > now)
    }
}

/// Why a miner's answer was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MinerError {
    #[error("no connection: {0}")]
    Unreachable(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answered {0}")]
    Status(u16),
    #[error("busy (429, retry after {0} s)")]
    Busy(u64),
    #[error("bad receipt: {0}")]
    BadReceipt(String),
}

/// A miner's answer that passed the checks.
#[derive(Debug)]
pub struct Served {
    pub miner: MinerInfo,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub attempts: usize,
}

/// Why no miner answered.
#[derive(Debug)]
pub enum RouteError {
    /// The metagraph has no miner with an endpoint (yet).
    NoMiners,
    /// Every miner tried failed: `(uid, hotkey, error)` each.
    AllFailed(Vec<(u16, Address, MinerError)>),
    /// Every miner tried was busy (429): come back after this many seconds.
    Busy(u64),
    /// A miner refused the request as the client's fault (4xx other than 429): returned as is.
    Client {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

/// The router. Share it (`Arc`) between the server and [`MinerRouter::follow_metagraph`].
pub struct MinerRouter {
    config: RoutingConfig,
    chain_id: u64,
    http: reqwest::Client,
    /// Where the metagraph is read (`None` if `config.rpc` is not a node URL).
    node: Option<NodeClient>,
    miners: RwLock<Vec<MinerInfo>>,
    health: Mutex<BTreeMap<Address, Health>>,
}

impl MinerRouter {
    /// A router for the chain `chain_id`, with no miners until the metagraph is read.
    pub fn new(config: RoutingConfig, chain_id: u64) -> MinerRouter {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        let node = NodeClient::new(&config.rpc)
            .ok()
            .map(|n| n.with_timeout(Duration::from_secs(10)));
        MinerRouter {
            config,
            chain_id,
            node,
            http,
            miners: RwLock::new(Vec::new()),
            health: Mutex::new(BTreeMap::new()),
        }
    }

    /// Reads the node's chain id and the metagraph once; fails if the node cannot be reached or
    /// the subnet does not exist.
    pub async fn connect(config: RoutingConfig) -> Result<MinerRouter, String> {
        let node = NodeClient::new(&config.rpc).map_err(|e| e.to_string())?;
        let chain_id = node
            .with_timeout(Duration::from_secs(10))
            .chain_params()
            .await
            .map_err(|e| e.to_string())?
            .chain_id;
        let router = MinerRouter::new(config, chain_id);
        router.refresh().await?;
        Ok(router)
    }

    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    /// The miners with an endpoint, as last read.
    pub fn miners(&self) -> Vec<MinerInfo> {
        self.miners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The miner with this hotkey, if it is in the last metagraph read.
    pub fn miner(&self, hotkey: Address) -> Option<MinerInfo> {
        self.miners().into_iter().find(|m| m.hotkey == hotkey)
    }

    /// Reads the metagraph (or the leases) and replaces the miner list.
    pub async fn refresh(&self) -> Result<usize, String> {
        let node = self
            .node
            .as_ref()
            .ok_or_else(|| format!("'{}' is not a node URL", self.config.rpc))?;
        let miners = match self.config.leases {
            Some(model) => {
                let leases = node
                    .all_deployments("state=leased", MAX_LEASE_PAGES)
                    .await
                    .map_err(|e| e.to_string())?;
                leases_serving(&leases, model)
            }
            None => {
                let graph = node
                    .metagraph(self.config.netuid)
                    .await
                    .map_err(|e| e.to_string())?;
                miners_of(&graph)
            }
        };
        let n = miners.len();
        *self.miners.write().unwrap_or_else(|e| e.into_inner()) = miners;
        Ok(n)
    }

    /// Re-reads the metagraph every `refresh` (forever; spawn it).
    pub async fn follow_metagraph(self: std::sync::Arc<Self>) {
        loop {
            tokio::time::sleep(self.config.refresh).await;
            if let Err(e) = self.refresh().await {
                tracing::warn!("cannot read the metagraph: {e}");
            }
        }
    }

    /// The order in which miners are tried for one request (see the module's rule).
    pub fn plan(&self) -> Vec<MinerInfo> {
        let miners = self.miners();
        let now = Instant::now();
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let mut healthy = Vec::new();
        let mut resting = Vec::new();
        // A miner not measured yet is assumed as fast as the fastest measured one (optimism), so
        // new miners are tried soon and measured.
        let assumed = miners
            .iter()
            .filter_map(|m| health.get(&m.hotkey).and_then(|h| h.latency_ms))
            .reduce(f64::min)
            .unwrap_or(UNKNOWN_LATENCY_MS);
        for m in miners {
            let h = health.get(&m.hotkey).cloned().unwrap_or_default();
            let score = (m.incentive as f64 + 1.0) / (h.latency_ms.unwrap_or(assumed) + 50.0);
            if h.resting(now) {
                resting.push((score, m));
            } else {
                healthy.push((score, m));
            }
        }
        drop(health);
        let mut order = Vec::new();
        let mut rng = rand::thread_rng();
        while !healthy.is_empty() {
            let total: f64 = healthy.iter().map(|(s, _)| s).sum();
            let mut pick = rng.gen::<f64>() * total;
            let mut index = healthy.len() - 1;
            for (i, (s, _)) in healthy.iter().enumerate() {
                if pick < *s {
                    index = i;
                    break;
                }
                pick -= s;
            }
            order.push(healthy.swap_remove(index).1);
        }
        resting.sort_by(|a, b| b.0.total_cmp(&a.0));
        order.extend(resting.into_iter().map(|(_, m)| m));
        order.truncate(self.config.max_attempts.max(1));
        order
    }

    fn record(&self, hotkey: Address, outcome: Result<Duration, &MinerError>) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let h = health.entry(hotkey).or_default();
        match outcome {
            Ok(took) => {
                let ms = took.as_secs_f64() * 1000.0;
                h.latency_ms = Some(match h.latency_ms {
                    Some(old) => old + EWMA_ALPHA * (ms - old),
                    None => ms,
                });
                h.failures_in_row = 0;
                h.rest_until = None;
                h.served += 1;
            }
            Err(e) => {
                h.failures_in_row += 1;
                h.failed += 1;
                let rest = (1u64 << (h.failures_in_row - 1).min(6)).min(MAX_REST_SECS);
                h.rest_until = Some(Instant::now() + Duration::from_secs(rest));
                h.last_error = Some(e.to_string());
            }
        }
    }

    /// Sends the request to miners in [`MinerRouter::plan`] order until one gives a good answer;
    /// `terms` (a completion's admitted terms) size the timeout and bind the receipt.
    pub async fn route(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
        terms: Option<&Admitted>,
    ) -> Result<Served, RouteError> {
        let plan = self.plan();
        if plan.is_empty() {
            return Err(RouteError::NoMiners);
        }
        let mut failures = Vec::new();
        for (attempt, miner) in plan.into_iter().enumerate() {
            let started = Instant::now();
            match self
                .try_miner(
                    &miner,
                    method.clone(),
                    path_and_query,
                    headers,
                    body.clone(),
                    terms,
                )
                .await
            {
                Ok(Ok((status, headers, body))) => {
                    self.record(miner.hotkey, Ok(started.elapsed()));
                    return Ok(Served {
                        miner,
                        status,
                        headers,
                        body,
                        attempts: attempt + 1,
                    });
                }
                Ok(Err(client)) => return Err(client),
                Err(e) => {
                    tracing::warn!(uid = miner.uid, hotkey = %miner.hotkey, "miner failed: {e}");
                    self.record(miner.hotkey, Err(&e));
                    failures.push((miner.uid, miner.hotkey, e));
                }
            }
        }
        let busy = failures.iter().map(|(_, _, e)| match e {
            MinerError::Busy(seconds) => Some(*seconds),
            _ => None,
        });
        match busy.collect::<Option<Vec<u64>>>() {
            Some(waits) if !waits.is_empty() => {
                Err(RouteError::Busy(waits.into_iter().min().unwrap_or(1)))
            }
            _ => Err(RouteError::AllFailed(failures)),
        }
    }

    /// One attempt: `Err` is a miner error, `Ok(Err)` the client's fault.
    #[allow(clippy::type_complexity)]
    async fn try_miner(
        &self,
        miner: &MinerInfo,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
        terms: Option<&Admitted>,
    ) -> Result<Result<(StatusCode, HeaderMap, Bytes), RouteError>, MinerError> {
        let timeout = self.config.timeout.for_terms(terms);
        let mut request = self
            .http
            .request(method, format!("{}{path_and_query}", miner.url))
            .timeout(timeout);
        for name in [axum::http::header::CONTENT_TYPE, axum::http::header::ACCEPT] {
            if let Some(v) = headers.get(&name) {
                request = request.header(name, v);
            }
        }
        let answer = request.body(body).send().await.map_err(|e| {
            if e.is_timeout() {
                MinerError::Timeout(timeout)
            } else {
                MinerError::Unreachable(e.to_string())
            }
        })?;
        let status = StatusCode::from_u16(answer.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = answer.headers().clone();
        let bytes = answer.bytes().await.map_err(|e| {
            if e.is_timeout() {
                MinerError::Timeout(timeout)
            } else {
                MinerError::Unreachable(e.to_string())
            }
        })?;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let seconds = headers
                .get(axum::http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(1);
            return Err(MinerError::Busy(seconds.clamp(1, 3600)));
        }
        if status.is_server_error() {
            return Err(MinerError::Status(status.as_u16()));
        }
        if !status.is_success() {
            return Ok(Err(RouteError::Client {
                status,
                headers,
                body: bytes,
            }));
        }
        if path_and_query.starts_with("/v1/chat/completions")
            || path_and_query.starts_with("/v1/completions")
        {
            self.check_receipt(miner, &bytes, terms)?;
        }
        Ok(Ok((status, headers, bytes)))
    }

    /// Checks the receipt an answer carries (JSON body, or the last SSE chunk that has one):
    /// signed by the miner for this chain, subnet and model, and — given the admitted `terms` —
    /// for exactly the admitted request: its hash, its prompt tokens (when the model is pinned,
    /// the gateway's tokenizer is the model's) and no more output than its limit.
    pub fn check_receipt(
        &self,
        miner: &MinerInfo,
        body: &[u8],
        terms: Option<&Admitted>,
    ) -> Result<(), MinerError> {
        let bad = |m: String| MinerError::BadReceipt(m);
        let receipt =
            find_receipt(body).ok_or_else(|| bad("the answer carries no receipt".into()))?;
        let json: ReceiptJson = serde_json::from_value(receipt)
            .map_err(|e| bad(format!("the receipt cannot be read: {e}")))?;
        let signed = SignedReceipt::from_json(&json).map_err(|e| bad(e.to_string()))?;
        signed
            .check_binding(&ReceiptBinding {
                miner: miner.hotkey,
                chain_id: self.chain_id,
                netuid: self.config.netuid,
                model_id: self.config.model_id,
            })
            .map_err(|e| bad(format!("uid {}: {e}", miner.uid)))?;
        let Some(terms) = terms else {
            return Ok(());
        };
        let r = &signed.receipt;
        if r.requestHash != terms.request.hash() {
            return Err(bad(format!(
                "uid {}: the receipt is for another request than the one sent",
                miner.uid
            )));
        }
        if r.outputTokenCount > terms.request.max_tokens {
            return Err(bad(format!(
                "uid {}: {} output tokens, more than the {} paid for",
                miner.uid, r.outputTokenCount, terms.request.max_tokens
            )));
        }
        if self.config.model_id.is_some()
            && (r.promptTokensHash != token_ids_hash(&terms.prompt_tokens)
                || r.promptTokenCount as usize != terms.prompt_tokens.len())
        {
            return Err(bad(format!(
                "uid {}: the receipt's prompt tokens are not the request's ({} counted, {} in the receipt)",
                miner.uid,
                terms.prompt_tokens.len(),
                r.promptTokenCount
            )));
        }
        Ok(())
    }

    /// Each miner with its health, for `GET /v1/miners`.
    pub fn status(&self) -> Value {
        let now = Instant::now();
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let miners: Vec<Value> = self
            .miners()
            .into_iter()
            .map(|m| {
                let h = health.get(&m.hotkey).cloned().unwrap_or_default();
                serde_json::json!({
                    "uid": m.uid,
                    "hotkey": m.hotkey.to_checksum(None),
                    "coldkey": m.coldkey.to_checksum(None),
                    "incentive": m.incentive,
                    "url": m.url,
                    "lease": m.lease,
                    "healthy": !h.resting(now),
                    "latency_ms": h.latency_ms.map(|l| l.round() as u64),
                    "served": h.served,
                    "failed": h.failed,
                    "failures_in_row": h.failures_in_row,
                    "last_error": h.last_error,
                })
            })
            .collect();
        match self.config.leases {
            Some(model) => serde_json::json!({"leases_of_model": model, "miners": miners}),
            None => serde_json::json!({"netuid": self.config.netuid, "miners": miners}),
        }
    }

    /// Where the miners come from, for messages: "subnet N" or "the leases of model BLOB".
    pub fn source(&self) -> String {
        match self.config.leases {
            Some(model) => format!("the leases of model {model}"),
            None => format!("subnet {}", self.config.netuid),
        }
    }
}

/// The leases among `deployments` that serve the model blob `model` and published an
/// OpenAI-compatible endpoint (`http(s)://…/v1`): each as a miner whose key is its provider's.
pub fn leases_serving(
    deployments: &[mycel_types::market::Deployment],
    model: B256,
) -> Vec<MinerInfo> {
    use mycel_types::market::DeploymentState;
    deployments
        .iter()
        .filter(|d| d.model == model && d.state == DeploymentState::Leased)
        .filter_map(|d| {
            let lease = d.lease.as_ref()?;
            let base = lease.endpoint.trim_end_matches('/').strip_suffix("/v1")?;
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return None;
            }
            Some(MinerInfo {
                uid: 0,
                hotkey: lease.provider,
                coldkey: lease.provider,
                incentive: 0,
                url: base.to_string(),
                lease: Some(d.id),
            })
        })
        .collect()
}

/// The miners with an http(s) endpoint in a metagraph.
pub fn miners_of(graph: &Metagraph) -> Vec<MinerInfo> {
    graph
        .neurons
        .iter()
        .filter_map(|n| {
            let endpoint = n.endpoint.as_ref()?;
            if endpoint.protocol != "http" && endpoint.protocol != "https" {
                return None;
            }
            Some(MinerInfo {
                uid: n.uid,
                hotkey: n.hotkey,
                coldkey: n.coldkey,
                incentive: u64::from(n.incentive),
                url: endpoint.url(),
                lease: None,
            })
        })
        .collect()
}

/// The receipt in a completion: the JSON body's `receipt`, or the last `data:` chunk of an SSE
/// stream that has one.
fn find_receipt(body: &[u8]) -> Option<Value> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return value.get("receipt").filter(|r| !r.is_null()).cloned();
    }
    let text = std::str::from_utf8(body).ok()?;
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .filter_map(|v| v.get("receipt").filter(|r| !r.is_null()).cloned())
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_signer_local::PrivateKeySigner;
    use mycel_types::receipt::InferenceReceipt;

    const CHAIN: u64 = 1337;
    const MODEL: B256 = B256::repeat_byte(7);

    fn config() -> RoutingConfig {
        RoutingConfig {
            rpc: "http://127.0.0.1:1".into(),
            netuid: 1,
            refresh: Duration::from_secs(10),
            timeout: WorkTimeout::default(),
            max_attempts: 3,
            model_id: Some(MODEL),
            leases: None,
        }
    }

    fn miner(uid: u16, key: &PrivateKeySigner, incentive: u64) -> MinerInfo {
        MinerInfo {
            uid,
            hotkey: key.address(),
            coldkey: Address::repeat_byte(uid as u8),
            incentive,
            url: format!("http://127.0.0.1:{}", 9000 + uid),
            lease: None,
        }
    }

    /// A chat answer whose receipt `signer` signed, naming `named` as the miner.
    fn answer(
        signer: &PrivateKeySigner,
        named: Address,
        edit: impl Fn(&mut InferenceReceipt),
    ) -> Vec<u8> {
        let mut receipt = InferenceReceipt {
            netuid: 1,
            miner: named,
            modelId: MODEL,
            requestHash: B256::repeat_byte(1),
            promptTokensHash: B256::repeat_byte(2),
            outputTokensHash: B256::repeat_byte(3),
            promptTokenCount: 5,
            outputTokenCount: 4,
            determinismProfile: mycel_types::receipt::DETERMINISM_PROFILE.into(),
            blockHeight: 9,
        };
        edit(&mut receipt);
        let signed = SignedReceipt::sign(receipt, CHAIN, signer).expect("sign");
        serde_json::to_vec(&serde_json::json!({
            "choices": [{"message": {"content": "hi"}}],
            "receipt": signed.to_json(None),
        }))
        .expect("json")
    }

    #[test]
    fn receipts_must_be_signed_by_the_miners_hotkey_for_this_chain_subnet_and_model() {
        let router = MinerRouter::new(config(), CHAIN);
        let (a, b) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let m = miner(0, &a, 0);
        router
            .check_receipt(&m, &answer(&a, a.address(), |_| {}), None)
            .expect("a good receipt");
        // As an SSE stream: the last chunk with a receipt counts.
        let json: Value = serde_json::from_slice(&answer(&a, a.address(), |_| {})).expect("json");
        let sse = format!(
            "data: {{\"choices\":[]}}\n\ndata: {}\n\ndata: [DONE]\n\n",
            serde_json::json!({"choices": [], "receipt": json["receipt"]})
        );
        router
            .check_receipt(&m, sse.as_bytes(), None)
            .expect("streamed");

        let refused = |body: Vec<u8>| match router.check_receipt(&m, &body, None) {
            Err(MinerError::BadReceipt(why)) => why,
            other => panic!("accepted: {other:?}"),
        };
        // Another miner's answer passed off as its own, and a receipt signed by someone else.
        assert!(refused(answer(&b, b.address(), |_| {})).contains("signed by"));
        assert!(refused(answer(&b, a.address(), |_| {})).contains("signed by"));
        assert!(refused(answer(&a, b.address(), |_| {})).contains("names the miner"));
        assert!(refused(answer(&a, a.address(), |r| r.netuid = 2)).contains("subnet 2"));
        assert!(refused(answer(&a, a.address(), |r| r.modelId = B256::ZERO)).contains("model"));
        assert!(
            refused(answer(&a, a.address(), |r| r.determinismProfile = "x".into()))
                .contains("profile")
        );
        // An altered receipt no longer recovers to the miner.
        let mut altered: Value =
            serde_json::from_slice(&answer(&a, a.address(), |_| {})).expect("json");
        altered["receipt"]["message"]["outputTokenCount"] = 5.into();
        assert!(refused(serde_json::to_vec(&altered).expect("json")).contains("signed by"));
        assert!(refused(br#"{"choices":[]}"#.to_vec()).contains("no receipt"));
        // Any model when none is configured.
        let mut any = config();
        any.model_id = None;
        MinerRouter::new(any, CHAIN)
            .check_receipt(
                &m,
                &answer(&a, a.address(), |r| r.modelId = B256::ZERO),
                None,
            )
            .expect("any model");
    }

    #[test]
    fn resting_miners_come_last_and_attempts_are_capped() {
        let keys: Vec<PrivateKeySigner> = (0..4).map(|_| PrivateKeySigner::random()).collect();
        let router = MinerRouter::new(config(), CHAIN);
        *router.miners.write().expect("lock") = keys
            .iter()
            .enumerate()
            .map(|(i, k)| miner(i as u16, k, 100))
            .collect();
        let failure = MinerError::Status(500);
        router.record(keys[0].address(), Err(&failure));
        router.record(keys[1].address(), Err(&failure));
        router.record(keys[1].address(), Err(&failure));
        for _ in 0..50 {
            let plan = router.plan();
            assert_eq!(plan.len(), 3);
            let first_two: Vec<Address> = plan[..2].iter().map(|m| m.hotkey).collect();
            assert!(
                first_two.contains(&keys[2].address()) && first_two.contains(&keys[3].address())
            );
        }
        // A success ends the rest.
        router.record(keys[1].address(), Ok(Duration::from_millis(20)));
        let status = router.status();
        assert_eq!(status["miners"][1]["healthy"], true);
        assert_eq!(status["miners"][1]["failed"], 2);
        assert_eq!(status["miners"][1]["served"], 1);
        assert_eq!(status["miners"][0]["healthy"], false);
    }

    #[test]
    fn load_follows_incentive_and_latency() {
        let keys: Vec<PrivateKeySigner> = (0..2).map(|_| PrivateKeySigner::random()).collect();
        let mut c = config();
        c.max_attempts = 1;
        let router = MinerRouter::new(c, CHAIN);
        // Same latency; miner 1 has 3× miner 0's incentive + 1.
        *router.miners.write().expect("lock") =
            vec![miner(0, &keys[0], 999), miner(1, &keys[1], 2999)];
        router.record(keys[0].address(), Ok(Duration::from_millis(100)));
        router.record(keys[1].address(), Ok(Duration::from_millis(100)));
        let firsts = (0..4000)
            .filter(|_| router.plan()[0].hotkey == keys[1].address())
            .count();
        // Expected 3000 of 4000; a binomial's σ is ~27.
        assert!((2800..3200).contains(&firsts), "{firsts}");
    }

    #[test]
    fn metagraph_neurons_without_an_http_endpoint_are_skipped() {
        let neuron = |uid: u16, key: u8, incentive: u16, endpoint: Option<(&str, &str)>| {
            mycel_client::api::MetagraphNeuron {
                uid,
                hotkey: Address::repeat_byte(key),
                coldkey: Address::repeat_byte(key + 1),
                alpha: 0,
                stake: 0,
                validator_permit: false,
                consensus: 0,
                incentive,
                dividends: 0,
                validator_trust: 0,
                emission: 0,
                registered_at: 1,
                last_update: 1,
                active: true,
                immune: false,
                endpoint: endpoint.map(|(host, protocol)| mycel_client::api::Endpoint {
                    host: host.into(),
                    port: if protocol == "http" { 8080 } else { 9 },
                    protocol: protocol.into(),
                    block: 3,
                }),
            }
        };
        let graph = Metagraph {
            netuid: 1,
            block: 5,
            neurons: vec![
                neuron(0, 0xaa, 7, Some(("127.0.0.1", "http"))),
                neuron(1, 0xcc, 0, None),
                neuron(2, 0xee, 0, Some(("::1", "grpc"))),
                neuron(3, 0xee, 0, Some(("::1", "https"))),
            ],
        };
        let miners = miners_of(&graph);
        assert_eq!(miners.len(), 2);
        assert_eq!(miners[0].url, "http://127.0.0.1:8080");
        assert_eq!(miners[0].incentive, 7);
        assert_eq!(miners[1].url, "https://[::1]:9");
    }

    #[test]
    fn leases_serving_a_model_with_an_openai_endpoint_are_its_miners() {
        use mycel_types::market::{Deployment, DeploymentState, Lease, Resources};
        let model = B256::repeat_byte(5);
        let deployment = |id: u64, blob: B256, state, endpoint: &str| Deployment {
            id,
            owner: Address::repeat_byte(1),
            manifest: B256::ZERO,
            model: blob,
            resources: Resources::default(),
            region: String::new(),
            auditors: vec![],
            max_price: 10,
            escrow: 100,
            state,
            bids: vec![],
            lease: Some(Lease {
                provider: Address::repeat_byte(id as u8),
                price: 1,
                deposit: 1,
                started_at: 1,
                settled_to: 1,
                paused_at: None,
                paid: 0,
                endpoint: endpoint.into(),
                down_since: None,
            }),
            created_at: 1,
            notes: vec![],
        };
        let all = [
            deployment(
                1,
                model,
                DeploymentState::Leased,
                "http://127.0.0.1:8301/v1",
            ),
            deployment(2, model, DeploymentState::Leased, "https://gpu.example/v1/"),
            // Not this model, paused, no endpoint yet, not an OpenAI base URL.
            deployment(
                3,
                B256::repeat_byte(6),
                DeploymentState::Leased,
                "http://a/v1",
            ),
            deployment(4, model, DeploymentState::Paused, "http://b/v1"),
            deployment(5, model, DeploymentState::Leased, ""),
            deployment(6, model, DeploymentState::Leased, "ftp://c/v1"),
            deployment(7, model, DeploymentState::Leased, "http://d/api"),
        ];
        let miners = leases_serving(&all, model);
        let got: Vec<(Option<u64>, Address, &str)> = miners
            .iter()
            .map(|m| (m.lease, m.hotkey, m.url.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(1), Address::repeat_byte(1), "http://127.0.0.1:8301"),
                (Some(2), Address::repeat_byte(2), "https://gpu.example"),
            ]
        );
    }
}
