//! [`NodeClient`]: one typed call per route of the node API.

use crate::sse::BlockStream;
use crate::ClientError;
use alloy_primitives::{Address, B256};
use mycel_types::api::{self, code};
use mycel_types::{Genesis, SignedTx};
use serde::de::DeserializeOwned;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long a call may take by default (a connection, the request and the whole answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer this client reads (a sync batch of 256 full blocks fits).
pub const MAX_ANSWER_BYTES: usize = 1 << 30;
/// The largest state snapshot this client reads.
pub const MAX_SNAPSHOT_BYTES: usize = 4 << 30;
/// How long an idle pooled connection is kept: below the 10 s after which a mycel server closes
/// an idle kept-alive connection (mycel-http's header timeout), so a call is never sent on a
/// connection the server is closing.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a chain fixes at genesis and a client needs to sign: read once per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainParams {
    pub chain_id: u64,
    /// The smallest fee a transaction may pay, MYC base units.
    pub min_fee: u128,
}

/// A client of one node's HTTP API. Cheap to clone; clones share connections.
#[derive(Debug, Clone)]
pub struct NodeClient {
    base: String,
    http: reqwest::Client,
    timeout: Duration,
    params: Arc<OnceLock<ChainParams>>,
}

impl NodeClient {
    /// A client of the node at `url` (e.g. `http://127.0.0.1:8545`; a trailing `/` is dropped).
    pub fn new(url: &str) -> Result<NodeClient, ClientError> {
        let base = url.trim().trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base).map_err(|e| ClientError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if parsed.scheme() != "http" {
            return Err(ClientError::BadUrl {
                url: url.to_string(),
                reason: "only http:// node URLs are supported (put a TLS proxy's plain side here)"
                    .into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|e| ClientError::BadUrl {
                url: url.to_string(),
                reason: format!("cannot set up an HTTP client: {e}"),
            })?;
        Ok(NodeClient {
            base,
            http,
            timeout: DEFAULT_TIMEOUT,
            params: Arc::new(OnceLock::new()),
        })
    }

    /// The same client with calls limited to `timeout` each (the block stream excepted).
    pub fn with_timeout(mut self, timeout: Duration) -> NodeClient {
        self.timeout = timeout;
        self
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /health`: `Ok` while the node runs.
    pub async fn health(&self) -> Result<(), ClientError> {
        let path = "/health";
        let (status, bytes) = self.call(self.http.get(self.url(path)), path).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(self.refusal(path, status, &bytes))
        }
    }

    /// `GET /health/sync`: whether the node keeps up with its chain (the body comes with a 503
    /// too, when it does not).
    pub async fn sync_health(&self) -> Result<api::SyncHealth, ClientError> {
        let path = "/health/sync";
        let (status, bytes) = self.call(self.http.get(self.url(path)), path).await?;
        if status.is_success() || status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            if let Ok(health) = serde_json::from_slice(&bytes) {
                return Ok(health);
            }
        }
        Err(self.refusal(path, status, &bytes))
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<api::Status, ClientError> {
        let status: api::Status = self.get("/v1/status").await?;
        let _ = self.params.set(ChainParams {
            chain_id: status.chain_id,
            min_fee: status.min_fee,
        });
        Ok(status)
    }

    /// The chain id and minimum fee (read from `/v1/status` once, then remembered).
    pub async fn chain_params(&self) -> Result<ChainParams, ClientError> {
        if let Some(params) = self.params.get() {
            return Ok(*params);
        }
        self.status().await?;
        Ok(*self.params.get().expect("set by status"))
    }

    /// `GET /v1/genesis`.
    pub async fn genesis(&self) -> Result<Genesis, ClientError> {
        self.get("/v1/genesis").await
    }

    /// `GET /metrics`: Prometheus text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let path = "/metrics";
        let (status, bytes) = self.call(self.http.get(self.url(path)), path).await?;
        if !status.is_success() {
            return Err(self.refusal(path, status, &bytes));
        }
        String::from_utf8(bytes).map_err(|_| self.unexpected(path, "text that is not UTF-8"))
    }

    /// `POST /v1/txs`: submits `tx` (its canonical encoding); its hash once the node's mempool
    /// took it. A refusal is [`ClientError::Node`] with the mempool's code.
    pub async fn submit(&self, tx: &SignedTx) -> Result<B256, ClientError> {
        self.submit_prepared(&PreparedTx::raw(tx)).await
    }

    /// [`NodeClient::submit`] with `tx` in its JSON form (`{"chainId", "type", "message",
    /// "signature"}`) instead of its binary encoding.
    pub async fn submit_json(&self, tx: &SignedTx) -> Result<B256, ClientError> {
        self.submit_prepared(&PreparedTx::json(tx)).await
    }

    /// [`NodeClient::submit`] of a transaction whose body was built beforehand.
    pub async fn submit_prepared(&self, tx: &PreparedTx) -> Result<B256, ClientError> {
        let path = "/v1/txs";
        let request = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(tx.body.clone());
        let accepted: api::TxStatus = self.read(request, path).await?;
        if accepted.hash != tx.hash {
            return Err(self.unexpected(
                path,
                &format!(
                    "hash {} for a transaction whose hash is {} (it encodes transactions differently)",
                    accepted.hash, tx.hash
                ),
            ));
        }
        Ok(accepted.hash)
    }

    /// `GET /v1/sync/blocks?from&max&wait_ms`: an encoded batch of certified finalized blocks
    /// from `from` (what followers read), or `None` if the node had no block `from` within
    /// `wait_ms`.
    pub async fn sync_blocks(
        &self,
        from: u64,
        max: u64,
        wait_ms: u64,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let path = "/v1/sync/blocks";
        let request = self.http.get(format!(
            "{}?from={from}&max={max}&wait_ms={wait_ms}",
            self.url(path)
        ));
        let timeout = self.timeout + Duration::from_millis(wait_ms);
        let (status, bytes) = self.call_within(request, path, timeout).await?;
        match status {
            reqwest::StatusCode::NO_CONTENT => Ok(None),
            s if s.is_success() => Ok(Some(bytes)),
            s => Err(self.refusal(path, s, &bytes)),
        }
    }

    /// `GET /v1/sync/snapshot`: the node's encoded finalized state and the batch proving its
    /// root (what a follower starting with `--state-sync` reads). Waits up to ten minutes: a
    /// large state takes a while to send.
    pub async fn sync_snapshot(&self) -> Result<Vec<u8>, ClientError> {
        let path = "/v1/sync/snapshot";
        let request = self.http.get(self.url(path));
        let (status, bytes) = self
            .call_capped(request, path, Duration::from_secs(600), MAX_SNAPSHOT_BYTES)
            .await?;
        if !status.is_success() {
            return Err(self.refusal(path, status, &bytes));
        }
        Ok(bytes)
    }

    /// `GET /v1/txs/{hash}`. A transaction the node never saw is [`code::UNKNOWN_TX`].
    pub async fn tx(&self, hash: B256) -> Result<api::TxStatus, ClientError> {
        self.get(&format!("/v1/txs/{hash}")).await
    }

    /// `GET /v1/blocks/{height}`. Above the finalized height: [`code::UNKNOWN_BLOCK`].
    pub async fn block(&self, height: u64) -> Result<api::Block, ClientError> {
        self.get(&format!("/v1/blocks/{height}")).await
    }

    /// `GET /v1/blocks/latest`.
    pub async fn latest_block(&self) -> Result<api::Block, ClientError> {
        self.get("/v1/blocks/latest").await
    }

    /// `GET /v1/events/blocks`: finalized blocks as they come (no timeout).
    pub async fn block_events(&self) -> Result<BlockStream, ClientError> {
        let path = "/v1/events/blocks";
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| self.unreachable(path, &e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(self.refusal(path, status, &bytes));
        }
        Ok(BlockStream::new(response, self.base.clone()))
    }

    /// `GET /v1/accounts/{address}`.
    pub async fn account(&self, address: Address) -> Result<api::Account, ClientError> {
        self.get(&format!("/v1/accounts/{address}")).await
    }

    /// The nonce to sign `address`'s next transaction with (its pending ones counted).
    pub async fn next_nonce(&self, address: Address) -> Result<u64, ClientError> {
        Ok(self.account(address).await?.next_nonce)
    }

    /// `GET /v1/subnets`.
    pub async fn subnets(&self) -> Result<api::SubnetList, ClientError> {
        self.get("/v1/subnets").await
    }

    /// `GET /v1/subnets/{netuid}`. No such subnet: [`code::UNKNOWN_SUBNET`].
    pub async fn subnet(&self, netuid: u16) -> Result<api::Subnet, ClientError> {
        self.get(&format!("/v1/subnets/{netuid}")).await
    }

    /// `GET /v1/subnets/{netuid}/metagraph`. No such subnet: [`code::UNKNOWN_SUBNET`].
    pub async fn metagraph(&self, netuid: u16) -> Result<api::Metagraph, ClientError> {
        self.get(&format!("/v1/subnets/{netuid}/metagraph")).await
    }

    /// `GET /v1/subnets/{netuid}/training`: the subnet's training run. None started:
    /// [`code::NO_TRAINING_RUN`]; no such subnet: [`code::UNKNOWN_SUBNET`].
    pub async fn training_run(&self, netuid: u16) -> Result<api::TrainingRun, ClientError> {
        self.get(&format!("/v1/subnets/{netuid}/training")).await
    }

    /// `GET /v1/pools`.
    pub async fn pools(&self) -> Result<api::Pools, ClientError> {
        self.get("/v1/pools").await
    }

    /// `GET /v1/emission`.
    pub async fn emission(&self) -> Result<api::EmissionSchedule, ClientError> {
        self.get("/v1/emission").await
    }

    /// `GET /v1/emission/receipts/latest`; `None` before the first subnet
    /// ([`code::NO_EMISSION_RECEIPT`]).
    pub async fn latest_emission_receipt(
        &self,
    ) -> Result<Option<api::EmissionReceipt>, ClientError> {
        match self.get("/v1/emission/receipts/latest").await {
            Ok(receipt) => Ok(Some(receipt)),
            Err(e) if e.is_code(code::NO_EMISSION_RECEIPT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/subnets/{netuid}/epochs` (newest first, below `before`), or with `uid`
    /// `GET /v1/subnets/{netuid}/neurons/{uid}/emissions`, as JSON.
    pub async fn epoch_history(
        &self,
        netuid: u16,
        uid: Option<u16>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<serde_json::Value, ClientError> {
        let base = match uid {
            Some(uid) => format!("/v1/subnets/{netuid}/neurons/{uid}/emissions"),
            None => format!("/v1/subnets/{netuid}/epochs"),
        };
        let before = before.map(|b| format!("&before={b}")).unwrap_or_default();
        self.get(&format!("{base}?limit={limit}{before}")).await
    }

    /// `GET /v1/stakes/{coldkey}`.
    pub async fn stakes(&self, coldkey: Address) -> Result<api::Stakes, ClientError> {
        self.get(&format!("/v1/stakes/{coldkey}")).await
    }

    /// `GET /v1/musd`.
    pub async fn musd(&self) -> Result<api::Musd, ClientError> {
        self.get("/v1/musd").await
    }

    /// `GET /v1/musd/authorizations/{authorizer}/{nonce}`.
    pub async fn authorization(
        &self,
        authorizer: Address,
        nonce: B256,
    ) -> Result<api::AuthorizationState, ClientError> {
        self.get(&format!("/v1/musd/authorizations/{authorizer}/{nonce}"))
            .await
    }

    /// `GET /v1/channels/{id}`. No such channel: [`code::UNKNOWN_CHANNEL`].
    pub async fn channel(&self, id: B256) -> Result<api::Channel, ClientError> {
        self.get(&format!("/v1/channels/{id}")).await
    }

    /// `GET /v1/agents`: a page of agents (of `owner` only, if given) from id `cursor` (1 if
    /// none).
    pub async fn agents(
        &self,
        owner: Option<Address>,
        cursor: Option<u64>,
        limit: Option<usize>,
    ) -> Result<api::AgentList, ClientError> {
        let mut query = Vec::new();
        if let Some(o) = owner {
            query.push(("owner", o.to_string()));
        }
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        if let Some(l) = limit {
            query.push(("limit", l.to_string()));
        }
        self.get_with("/v1/agents", &query).await
    }

    /// `GET /v1/agents/{id}`. No such agent: [`code::UNKNOWN_AGENT`].
    pub async fn agent(&self, id: u64) -> Result<api::Agent, ClientError> {
        self.get(&format!("/v1/agents/{id}")).await
    }

    /// `GET /v1/agents/{id}/feedback`: a page of an agent's feedback (of `client` only, if
    /// given), from `cursor` (a previous page's `next_cursor`).
    pub async fn agent_feedback(
        &self,
        id: u64,
        client: Option<Address>,
        cursor: Option<String>,
    ) -> Result<api::FeedbackList, ClientError> {
        let mut query = Vec::new();
        if let Some(c) = client {
            query.push(("client", c.to_string()));
        }
        if let Some(c) = cursor {
            query.push(("cursor", c));
        }
        self.get_with(&format!("/v1/agents/{id}/feedback"), &query)
            .await
    }

    /// `GET /v1/agents/{id}/reputation`: ERC-8004's summary over `clients` (all if empty) and
    /// the tags (empty: any); `verified` counts only feedback citing a payment, weighted by it.
    pub async fn reputation(
        &self,
        id: u64,
        clients: Vec<Address>,
        tag1: String,
        tag2: String,
        verified: bool,
    ) -> Result<api::ReputationSummary, ClientError> {
        let clients: Vec<String> = clients.iter().map(Address::to_string).collect();
        let query = [
            ("clients", clients.join(",")),
            ("tag1", tag1),
            ("tag2", tag2),
            ("verified", verified.to_string()),
        ];
        self.get_with(&format!("/v1/agents/{id}/reputation"), &query)
            .await
    }

    /// `GET /v1/agents/{id}/events`: the transactions that did something to an agent, oldest
    /// first, from position `cursor`.
    pub async fn agent_events(
        &self,
        id: u64,
        cursor: Option<u64>,
    ) -> Result<api::AgentHistory, ClientError> {
        let query: Vec<(&str, String)> = cursor
            .map(|c| ("cursor", c.to_string()))
            .into_iter()
            .collect();
        self.get_with(&format!("/v1/agents/{id}/events"), &query)
            .await
    }

    /// `GET /v1/validations/{hash}`: a validation request and its latest response. Never
    /// requested: [`code::UNKNOWN_VALIDATION`].
    pub async fn validation(&self, request_hash: B256) -> Result<api::Validation, ClientError> {
        self.get(&format!("/v1/validations/{request_hash}")).await
    }

    /// `GET /v1/validations?validator=`: requests addressed to `validator` from position
    /// `cursor`, only the unanswered ones if `pending`.
    pub async fn validations_for(
        &self,
        validator: Address,
        pending: bool,
        cursor: Option<u64>,
    ) -> Result<api::ValidationList, ClientError> {
        let mut query = vec![
            ("validator", validator.to_string()),
            ("pending", pending.to_string()),
        ];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        self.get_with("/v1/validations", &query).await
    }

    /// `GET /v1/agents/{id}/validations`: the requests about an agent from position `cursor`.
    pub async fn agent_validations(
        &self,
        id: u64,
        cursor: Option<u64>,
    ) -> Result<api::ValidationList, ClientError> {
        let query: Vec<(&str, String)> = cursor
            .map(|c| ("cursor", c.to_string()))
            .into_iter()
            .collect();
        self.get_with(&format!("/v1/agents/{id}/validations"), &query)
            .await
    }

    /// `GET /v1/allowances/{agent}`: a delegated key's grant. Not one: [`code::NO_ALLOWANCE`].
    pub async fn allowance(&self, agent: Address) -> Result<api::Allowance, ClientError> {
        self.get(&format!("/v1/allowances/{agent}")).await
    }

    /// `GET /v1/storage`: the storage committee, epoch and prices.
    pub async fn storage(&self) -> Result<api::StorageInfo, ClientError> {
        self.get("/v1/storage").await
    }

    /// `GET /v1/storage/blobs/{id}`. No such blob (or expired): [`code::UNKNOWN_BLOB`].
    pub async fn blob(&self, blob_id: B256) -> Result<api::BlobInfo, ClientError> {
        self.get(&format!("/v1/storage/blobs/{blob_id}")).await
    }

    /// `GET /v1/storage/blobs`: a page of registered blobs after `after`, in id order.
    pub async fn blobs(&self, after: Option<B256>) -> Result<api::BlobList, ClientError> {
        match after {
            Some(a) => self.get(&format!("/v1/storage/blobs?after={a}")).await,
            None => self.get("/v1/storage/blobs").await,
        }
    }

    /// `GET /v1/market`: the market's parameters and size.
    pub async fn market(&self) -> Result<mycel_types::market::MarketInfo, ClientError> {
        self.get("/v1/market").await
    }

    /// `GET /v1/market/providers` after `after`.
    pub async fn providers(
        &self,
        after: Option<Address>,
    ) -> Result<mycel_types::market::ProviderList, ClientError> {
        match after {
            Some(a) => self.get(&format!("/v1/market/providers?after={a}")).await,
            None => self.get("/v1/market/providers").await,
        }
    }

    /// `GET /v1/market/deployments?…` (`query` without the `?`, e.g. `state=open`).
    pub async fn deployments(
        &self,
        query: &str,
    ) -> Result<mycel_types::market::DeploymentList, ClientError> {
        self.get(&format!("/v1/market/deployments?{query}")).await
    }

    /// Every deployment `query` matches, following `next` page by page (at most `max_pages`).
    pub async fn all_deployments(
        &self,
        query: &str,
        max_pages: usize,
    ) -> Result<Vec<mycel_types::market::Deployment>, ClientError> {
        let mut all = Vec::new();
        let mut after = None;
        for _ in 0..max_pages {
            let page = match after {
                Some(id) => self.deployments(&format!("{query}&after={id}")).await?,
                None => self.deployments(query).await?,
            };
            all.extend(page.deployments);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(all)
    }

    /// `GET /v1/market/deployments/{id}`. None such: [`code::UNKNOWN_DEPLOYMENT`].
    pub async fn deployment(
        &self,
        id: u64,
    ) -> Result<mycel_types::market::Deployment, ClientError> {
        self.get(&format!("/v1/market/deployments/{id}")).await
    }

    /// `GET /v1/jobs/{id}`. No such job: [`code::UNKNOWN_JOB`].
    pub async fn job(&self, id: u64) -> Result<api::Job, ClientError> {
        self.get(&format!("/v1/jobs/{id}")).await
    }

    /// `GET /v1/jobs`: a page of jobs matching `filter` from id `cursor` (1 if none).
    pub async fn jobs(
        &self,
        filter: JobFilter,
        cursor: Option<u64>,
    ) -> Result<api::JobList, ClientError> {
        let mut query = Vec::new();
        for (name, party) in [
            ("client", filter.client),
            ("provider", filter.provider),
            ("evaluator", filter.evaluator),
        ] {
            if let Some(a) = party {
                query.push((name, a.to_string()));
            }
        }
        if let Some(s) = filter.status {
            query.push(("status", s.as_str().to_string()));
        }
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        self.get_with("/v1/jobs", &query).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.read(self.http.get(self.url(path)), path).await
    }

    /// `GET path?query`, the query's values percent-encoded.
    async fn get_with<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let url = reqwest::Url::parse_with_params(&self.url(path), query).map_err(|e| {
            ClientError::BadUrl {
                url: self.url(path),
                reason: e.to_string(),
            }
        })?;
        self.read(self.http.get(url), path).await
    }

    /// Sends `request` and reads a `T` from a success, the node's error from a refusal.
    async fn read<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.call(request, path).await?;
        if !status.is_success() {
            return Err(self.refusal(path, status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            self.unexpected(
                path,
                &format!(
                    "an answer that does not read as {}: {e}",
                    short_type_name::<T>()
                ),
            )
        })
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), ClientError> {
        self.call_within(request, path, self.timeout).await
    }

    async fn call_within(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
        timeout: Duration,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), ClientError> {
        self.call_capped(request, path, timeout, MAX_ANSWER_BYTES)
            .await
    }

    /// Sends `request` and reads at most `max_bytes` of its answer: a node that sends more is
    /// cut off, not read into memory.
    async fn call_capped(
        &self,
        request: reqwest::RequestBuilder,
        path: &str,
        timeout: Duration,
        max_bytes: usize,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), ClientError> {
        let mut response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(path, &e))?;
        let status = response.status();
        let too_large = || {
            self.unexpected(
                path,
                &format!("an answer larger than the {max_bytes} bytes this client reads"),
            )
        };
        if response
            .content_length()
            .is_some_and(|n| n > max_bytes as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.unreachable(path, &e))?
        {
            if bytes.len() + chunk.len() > max_bytes {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    }

    fn unreachable(&self, path: &str, e: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.base.clone(),
            path: path.to_string(),
            reason: if e.is_timeout() {
                format!("no answer within {} s", self.timeout.as_secs_f64())
            } else {
                e.to_string()
            },
            timed_out: e.is_timeout(),
        }
    }

    fn refusal(&self, path: &str, status: reqwest::StatusCode, bytes: &[u8]) -> ClientError {
        match serde_json::from_slice::<api::ErrorBody>(bytes) {
            Ok(body) => ClientError::Node {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            },
            Err(_) => self.unexpected(
                path,
                &format!(
                    "HTTP {status} without an error body ({})",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ),
            ),
        }
    }

    pub(crate) fn unexpected(&self, path: &str, reason: &str) -> ClientError {
        ClientError::Unexpected {
            url: self.base.clone(),
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// `Metagraph` for `mycel_types::api::Metagraph`.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// A transaction ready to submit: its request body and hash, computed once. A load generator
/// prepares its transactions before it starts the clock, so encoding is not part of what it
/// measures.
#[derive(Debug, Clone)]
pub struct PreparedTx {
    hash: B256,
    body: Vec<u8>,
}

impl PreparedTx {
    /// `tx` as `{"raw": "0x…"}` (its canonical encoding).
    pub fn raw(tx: &SignedTx) -> PreparedTx {
        PreparedTx::new(tx, &api::SubmitTx::raw(tx))
    }

    /// `tx` in its JSON form.
    pub fn json(tx: &SignedTx) -> PreparedTx {
        PreparedTx::new(tx, &api::SubmitTx::json(tx))
    }

    fn new(tx: &SignedTx, body: &api::SubmitTx) -> PreparedTx {
        PreparedTx {
            hash: tx.hash(),
            body: serde_json::to_vec(body).expect("a transaction serializes"),
        }
    }

    pub fn hash(&self) -> B256 {
        self.hash
    }
}

/// Which jobs `GET /v1/jobs` lists: those with every party and the status given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub client: Option<Address>,
    pub provider: Option<Address>,
    pub evaluator: Option<Address>,
    pub status: Option<api::JobStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, routing::get, Router};

    /// A server that answers `len` bytes or more, with a Content-Length (`/sized`) or streamed.
    async fn serve(len: usize) -> String {
        let app = Router::new()
            .route("/sized", get(move || async move { vec![7u8; len] }))
            .route(
                "/streamed",
                get(move || async move {
                    let chunks =
                        (0..len / 1024 + 1).map(|_| Ok::<_, std::io::Error>(vec![7u8; 1024]));
                    Body::from_stream(futures::stream::iter(chunks))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn answers_over_the_cap_are_cut_off_not_read() {
        let url = serve(64 * 1024).await;
        let client = NodeClient::new(&url).unwrap();
        for path in ["/sized", "/streamed"] {
            let request = client.http.get(client.url(path));
            let err = client
                .call_capped(request, path, DEFAULT_TIMEOUT, 16 * 1024)
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("larger than the 16384 bytes"),
                "{err}"
            );
            let request = client.http.get(client.url(path));
            let (status, bytes) = client
                .call_capped(request, path, DEFAULT_TIMEOUT, 1 << 20)
                .await
                .unwrap();
            assert!(status.is_success() && bytes.len() >= 64 * 1024);
        }
    }
}
