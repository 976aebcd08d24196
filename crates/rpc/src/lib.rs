//! mycel-rpc: the node's HTTP API (documented in docs/node-api.md).
//!
//! Contract: every request gets JSON back. Bad JSON, bad addresses, bad hashes and refused
//! transactions get a 4xx with `{"error": {"code", "message"}}` and never crash the node.
//! Amounts leave as decimal strings of base units. Reads come from the latest finalized state.
//!
//! Slow or silent clients cannot hold it: [`serve`] runs on mycel-http, which caps connections and
//! closes a connection that sends no complete request head (or body) in time.
//!
//! Does not: sign anything, hold keys, or expose anything that changes the node except
//! transaction submission. It binds where it is told (loopback by default in the CLI).

mod agents;
mod explorer;
mod history;
mod jobs;
mod market;
mod storage;
mod sync;
mod training;

use alloy_primitives::{Address, B256};
use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::{header, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::{any, get, post},
    Json, Router,
};
use futures::Stream;
use mycel_chain::{BlockView, MempoolError, Node, TxOutcome, TxStatus};
use mycel_http::{Server, ServerStats};
use mycel_types::api::{self, code};
use mycel_types::{Genesis, SignedTx, Token, TxJson};
use serde::Serialize;
use serde_json::Value;
use std::{
    convert::Infallible,
    sync::{Arc, RwLock},
};
use tokio_stream::{wrappers::BroadcastStream, StreamExt};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct ApiState {
    node: Node,
    genesis: Arc<Genesis>,
    /// The connection counts of the server this router runs in, reported by `/metrics`.
    http: ServerStats,
    attached: Attached,
}

/// Routes of a role this process runs besides the node, lent to the node's API: a validator's
/// (`mycel up`), served under `/v1/validator/` (its `/status`, `/reports/{hash}`, `POST /rerun`,
/// …). Attached once the role is up; until then, and on a node that runs none, those paths answer
/// 404 `no_validator`.
#[derive(Clone, Default)]
pub struct Attached {
    validator: Arc<RwLock<Option<Router>>>,
}

impl Attached {
    /// Serves `routes` under `/v1/validator/` from now on.
    pub fn attach_validator(&self, routes: Router) {
        *self.validator.write().unwrap_or_else(|p| p.into_inner()) = Some(routes);
    }

    fn validator(&self) -> Option<Router> {
        self.validator
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The API's routes over a running node.
pub fn router(node: Node, genesis: Genesis) -> Router {
    router_counting(node, genesis, ServerStats::new(), Attached::default())
}

/// The API's routes, reporting `http` (its server's counts) in `/metrics`.
fn router_counting(node: Node, genesis: Genesis, http: ServerStats, attached: Attached) -> Router {
    let state = ApiState {
        node,
        genesis: Arc::new(genesis),
        http,
        attached,
    };
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/health/sync", get(sync_health))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/genesis", get(genesis_doc))
        .route("/v1/txs", post(submit_tx))
        .route("/v1/txs/{hash}", get(tx_status))
        .route("/v1/blocks", get(explorer::block_list))
        .route("/v1/search", get(explorer::search))
        .route("/v1/blocks/latest", get(latest_block))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/accounts/{address}", get(account))
        .route("/v1/accounts/{address}/txs", get(history::account_txs))
        .route("/v1/payments", get(history::payments))
        .route("/v1/events/blocks", get(block_events))
        .route("/v1/sync/blocks", get(sync::blocks))
        .route("/v1/sync/snapshot", get(sync::snapshot))
        .route("/v1/subnets", get(subnet_list))
        .route("/v1/subnets/{netuid}", get(subnet_info))
        .route("/v1/subnets/{netuid}/metagraph", get(metagraph))
        .route("/v1/subnets/{netuid}/training", get(training::run))
        .route("/v1/pools", get(pools))
        .route("/v1/emission", get(emission_schedule))
        .route("/v1/emission/receipts", get(history::receipts))
        .route("/v1/emission/receipts/latest", get(latest_emission_receipt))
        .route("/v1/emission/receipts/{height}", get(history::receipt))
        .route("/v1/subnets/{netuid}/epochs", get(history::epochs))
        .route(
            "/v1/subnets/{netuid}/neurons/{uid}/emissions",
            get(history::neuron),
        )
        .route("/v1/stakes/{coldkey}", get(stakes_of))
        .route("/v1/musd", get(musd_info))
        .route(
            "/v1/musd/authorizations/{authorizer}/{nonce}",
            get(authorization_state),
        )
        .route("/v1/channels/{id}", get(channel))
        .route("/v1/agents", get(agents::agent_list))
        .route("/v1/agents/{id}", get(agents::agent))
        .route("/v1/agents/{id}/feedback", get(agents::feedback_list))
        .route("/v1/agents/{id}/clients", get(agents::agent_clients))
        .route("/v1/agents/{id}/reputation", get(agents::reputation))
        .route("/v1/agents/{id}/events", get(agents::agent_events))
        .route(
            "/v1/agents/{id}/validations",
            get(agents::agent_validations),
        )
        .route(
            "/v1/agents/{id}/validations/summary",
            get(agents::validation_summary),
        )
        .route("/v1/validations", get(agents::validations_for))
        .route("/v1/validations/{hash}", get(agents::validation))
        .route("/v1/allowances/{agent}", get(jobs::allowance))
        .route("/v1/jobs", get(jobs::job_list))
        .route("/v1/jobs/{id}", get(jobs::job))
        .route("/v1/storage", get(storage::info))
        .route("/v1/storage/blobs", get(storage::blob_list))
        .route("/v1/storage/blobs/{id}", get(storage::blob))
        .route("/v1/market", get(market::info))
        .route("/v1/market/providers", get(market::providers))
        .route("/v1/market/deployments", get(market::deployments))
        .route("/v1/market/deployments/{id}", get(market::deployment))
        .route("/explorer", get(explorer::index))
        .route("/explorer/", get(explorer::index))
        .route("/explorer/app.js", get(explorer::script))
        .route("/explorer/app.css", get(explorer::style))
        .route("/explorer/receipt.js", get(explorer::receipt_checker))
        .route("/v1/validator", get(validator_presence))
        .route("/v1/validator/{*rest}", any(validator_route))
        .fallback(|| async {
            ApiError::not_found(code::NOT_FOUND, "no such endpoint; see docs/node-api.md")
        })
        .with_state(state)
}

/// `GET /v1/validator`: whether this node runs a validator whose routes it serves.
async fn validator_presence(State(api): State<ApiState>) -> Answer<Value> {
    ok(serde_json::json!({ "running": api.attached.validator().is_some() }))
}

/// `/v1/validator/{rest}`: the attached validator's route `/{rest}`.
async fn validator_route(
    State(api): State<ApiState>,
    Path(rest): Path<String>,
    mut request: axum::extract::Request,
) -> Response {
    use tower::ServiceExt as _;
    let Some(routes) = api.attached.validator() else {
        return ApiError::not_found(
            code::NO_VALIDATOR,
            "this node runs no validator (`mycel up` runs one; a validator's own --listen \
             server serves the same routes)",
        )
        .into_response();
    };
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    match format!("/{rest}{query}").parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => {
            return ApiError::bad_request(code::BAD_QUERY, "not a valid path").into_response()
        }
    }
    match routes.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// Serves the API on `listener` under `limits` (connection cap, header/body/write deadlines; see
/// mycel-http and docs/node-api.md "Limits") until `shutdown` resolves; with the routes of the
/// roles `attached` lends it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: Node,
    genesis: Genesis,
    limits: mycel_http::ServeLimits,
    attached: Attached,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let http = ServerStats::new();
    let router = router_counting(node, genesis, http.clone(), attached);
    Server::new(listener, router, limits)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
        .with_stats(http)
        .run(shutdown)
        .await
}

/// A JSON answer: a wire type of [`mycel_types::api`] with its status. Object keys go out in
/// sorted order (the value passes through `serde_json::Value`, whose maps are sorted), the order
/// the node has always written them in.
struct Answer<T>(StatusCode, T);

impl<T: Serialize> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        let Answer(status, body) = self;
        match serde_json::to_value(&body).and_then(|v| serde_json::to_vec(&v)) {
            Ok(bytes) => {
                (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
            }
            Err(e) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the answer does not serialize: {e}"),
            )
            .into_response(),
        }
    }
}

/// A 200 answer.
fn ok<T>(body: T) -> Answer<T> {
    Answer(StatusCode::OK, body)
}

/// An error response: status plus [`api::ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: api::ErrorDetail,
}

impl ApiError {
    fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            error: api::ErrorDetail::new(code, message),
        }
    }

    fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Answer(self.status, api::ErrorBody { error: self.error }).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::bad_request(code::BAD_JSON, rejection.body_text())
    }
}

impl From<MempoolError> for ApiError {
    fn from(err: MempoolError) -> Self {
        let status = if err.code() == code::MEMPOOL_FULL {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

type Answered<T> = Result<Answer<T>, ApiError>;

/// The node's wall clock, Unix milliseconds (0 before 1970).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn sync_health(State(api): State<ApiState>) -> Answer<api::SyncHealth> {
    let sync = api.node.sync_status(now_ms());
    let status = if sync.in_sync() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Answer(
        status,
        api::SyncHealth {
            in_sync: sync.in_sync(),
            height: sync.height,
            consensus_height: sync.consensus_height,
            finality_lag_ms: sync.finality_lag_ms,
            block_time_ms: sync.block_time_ms,
        },
    )
}

async fn metrics(State(api): State<ApiState>) -> impl IntoResponse {
    // Walking the data directory is file work: off the async threads.
    let node = api.node.clone();
    let mut text = tokio::task::spawn_blocking(move || node.metrics(now_ms()))
        .await
        .unwrap_or_default();
    text.push_str(&api.http.snapshot().to_prometheus("mycel"));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn status(State(api): State<ApiState>) -> Answer<api::Status> {
    let s = api.node.status();
    ok(api::Status {
        chain_id: s.chain_id,
        genesis_hash: s.genesis_hash,
        height: s.latest_height,
        hash: s.latest_hash,
        state_root: s.state_root,
        timestamp_ms: s.latest_timestamp_ms,
        validators: s.validators,
        node_key: s.node_key,
        mempool_size: s.mempool_size,
        min_fee: api.genesis.min_fee,
        max_tx_bytes: api.genesis.max_tx_bytes,
    })
}

async fn genesis_doc(State(api): State<ApiState>) -> Json<Genesis> {
    Json((*api.genesis).clone())
}

async fn submit_tx(
    State(api): State<ApiState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Answered<api::TxStatus> {
    let Json(body) = body?;
    let tx = parse_submitted_tx(&body)?;
    let hash = api.node.submit_tx(tx)?;
    Ok(Answer(
        StatusCode::ACCEPTED,
        api::TxStatus {
            hash,
            state: api::TxState::Pending,
        },
    ))
}

/// Reads an [`api::SubmitTx`] body, saying what is wrong with one that is not.
fn parse_submitted_tx(body: &Value) -> Result<SignedTx, ApiError> {
    if let Some(raw) = body.get("raw") {
        let raw = raw
            .as_str()
            .ok_or_else(|| ApiError::bad_request(code::BAD_TX, "'raw' must be a 0x-hex string"))?;
        let bytes = hex_bytes(raw)
            .map_err(|e| ApiError::bad_request(code::BAD_TX, format!("'raw' is not hex: {e}")))?;
        return SignedTx::decode(&bytes)
            .map_err(|e| ApiError::bad_request(code::BAD_TX, e.to_string()));
    }
    let json: TxJson = serde_json::from_value(body.clone()).map_err(|e| {
        ApiError::bad_request(
            code::BAD_TX,
            format!("{e}; expected {{\"chainId\", \"type\", \"message\", \"signature\"}} or {{\"raw\"}}"),
        )
    })?;
    SignedTx::from_json(&json).map_err(|e| ApiError::bad_request(code::BAD_TX, e.to_string()))
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s.trim().strip_prefix("0x").unwrap_or(s.trim())).map_err(|e| e.to_string())
}

async fn tx_status(
    State(api): State<ApiState>,
    Path(hash): Path<String>,
) -> Answered<api::TxStatus> {
    let hash: B256 = hash.parse().map_err(|_| {
        ApiError::bad_request(
            code::BAD_HASH,
            format!("'{hash}' is not a 32-byte 0x-hex hash"),
        )
    })?;
    let state = match api.node.tx_status(hash) {
        TxStatus::Pending => api::TxState::Pending,
        TxStatus::Finalized {
            height,
            index,
            result,
        } => api::TxState::Finalized {
            height,
            index,
            result: match result {
                TxOutcome::Success { receipt } => api::TxResult::Receipt((&receipt).into()),
                TxOutcome::Failed { code, error } => {
                    api::TxResult::Error(api::ErrorDetail::new(code, error))
                }
            },
        },
        TxStatus::Rejected { code, reason } => api::TxState::Rejected {
            error: api::ErrorDetail::new(code, reason),
        },
        TxStatus::Unknown => {
            return Err(ApiError::not_found(
                code::UNKNOWN_TX,
                format!("this node has not seen transaction {hash}"),
            ))
        }
    };
    Ok(ok(api::TxStatus { hash, state }))
}

fn block_answer(block: &BlockView) -> api::Block {
    let txs = block
        .txs
        .iter()
        .map(|t| api::BlockTx {
            hash: t.hash,
            index: t.index,
            tx: t.tx.clone(),
            result: t.result.as_ref().map(|result| match result {
                TxOutcome::Success { receipt } => api::BlockTxResult::Ok(receipt.into()),
                TxOutcome::Failed { code, error } => {
                    api::BlockTxResult::Err(api::ErrorDetail::new(code, error))
                }
            }),
        })
        .collect();
    api::Block {
        height: block.height,
        hash: block.hash,
        parent: block.parent,
        timestamp_ms: block.timestamp_ms,
        state_root: block.state_root,
        proposer: block.proposer.clone(),
        view: block.view,
        tx_count: block.txs.len(),
        txs,
    }
}

/// `GET /v1/blocks/{height or 0x-hash}`.
async fn block(State(api): State<ApiState>, Path(height): Path<String>) -> Answered<api::Block> {
    if let Some(hash) = height
        .strip_prefix("0x")
        .filter(|h| h.len() == 64)
        .and_then(|_| height.parse::<B256>().ok())
    {
        return match api.node.block_by_hash(hash).await {
            Some(block) => Ok(ok(block_answer(&block))),
            None => Err(ApiError::not_found(
                code::UNKNOWN_BLOCK,
                format!("no finalized block with hash {hash}"),
            )),
        };
    }
    let height: u64 = height.parse().map_err(|_| {
        ApiError::bad_request(
            code::BAD_HEIGHT,
            format!("'{height}' is not a block height or a 0x block hash (or use 'latest')"),
        )
    })?;
    find_block(&api, height).await
}

async fn latest_block(State(api): State<ApiState>) -> Answered<api::Block> {
    let height = api.node.status().latest_height;
    find_block(&api, height).await
}

async fn find_block(api: &ApiState, height: u64) -> Answered<api::Block> {
    let first = api.node.first_block();
    if height > 0 && height < first {
        return Err(ApiError::not_found(
            code::UNKNOWN_BLOCK,
            format!(
                "this node started from a state snapshot at height {first} and holds the blocks \
                 from there on; ask a node that synced from genesis for block {height}"
            ),
        ));
    }
    match api.node.block(height).await {
        Some(block) => Ok(ok(block_answer(&block))),
        None => Err(ApiError::not_found(
            code::UNKNOWN_BLOCK,
            format!(
                "no finalized block at height {height} (finalized height is {})",
                api.node.status().latest_height
            ),
        )),
    }
}

fn parse_address(address: &str) -> Result<Address, ApiError> {
    address.parse().map_err(|_| {
        ApiError::bad_request(
            code::BAD_ADDRESS,
            format!("'{address}' is not a 20-byte 0x-hex address"),
        )
    })
}

async fn account(
    State(api): State<ApiState>,
    Path(address): Path<String>,
) -> Answered<api::Account> {
    let address = parse_address(&address)?;
    let (account, height, spendable) = api.node.with_finalized_state(|s| {
        let spendable = s
            .allowances()
            .of(&address)
            .map(|a| a.spendable(Token::Musd, s.height() + 1, s.account(&a.owner).musd));
        (s.account(&address), s.height(), spendable)
    });
    let mut answer = api::Account::new(
        address,
        account.myc,
        account.musd,
        account.nonce,
        api.node.next_nonce(address),
        height,
    );
    answer.spendable_musd = spendable;
    Ok(ok(answer))
}

/// mUSD's EIP-3009 identity: what an x402 client puts in `asset` and `extra`.
async fn musd_info(State(api): State<ApiState>) -> Answer<api::Musd> {
    let chain_id = api.genesis.chain_id;
    ok(api::Musd {
        asset: mycel_types::amount::MUSD_ADDRESS,
        name: mycel_types::MUSD_EIP712_NAME.into(),
        version: mycel_types::MUSD_EIP712_VERSION.into(),
        decimals: Token::Musd.decimals(),
        chain_id,
        network: format!("eip155:{chain_id}"),
    })
}

/// EIP-3009 `authorizationState(authorizer, nonce)` in the latest finalized state.
async fn authorization_state(
    State(api): State<ApiState>,
    Path((authorizer, nonce)): Path<(String, String)>,
) -> Answered<api::AuthorizationState> {
    let authorizer = parse_address(&authorizer)?;
    let nonce: B256 = nonce.parse().map_err(|_| {
        ApiError::bad_request(
            code::BAD_NONCE,
            format!("'{nonce}' is not a 32-byte 0x-hex authorization nonce"),
        )
    })?;
    let height = api.node.status().latest_height;
    let used = api
        .node
        .with_finalized_state(|state| state.authorization_state(&authorizer, &nonce));
    Ok(ok(api::AuthorizationState {
        authorizer,
        nonce,
        used,
        height,
    }))
}

/// A payment channel (escrow of mUSD paid out by vouchers) in the latest finalized state.
async fn channel(State(api): State<ApiState>, Path(id): Path<String>) -> Answered<api::Channel> {
    let id: B256 = id.parse().map_err(|_| {
        ApiError::bad_request(
            code::BAD_CHANNEL_ID,
            format!("'{id}' is not a 32-byte 0x-hex channel id"),
        )
    })?;
    let height = api.node.status().latest_height;
    let channel = api
        .node
        .with_finalized_state(|state| state.channel(&id))
        .ok_or_else(|| ApiError::not_found(code::UNKNOWN_CHANNEL, format!("no channel {id}")))?;
    Ok(ok(api::Channel {
        id,
        payer: channel.payer,
        payee: channel.payee,
        deposit: channel.deposit,
        claimed: channel.claimed,
        escrowed: channel.escrowed(),
        withdraw_delay_s: channel.withdraw_delay_s,
        withdraw_at_s: channel.withdraw_at_s,
        closed: channel.closed,
        height,
    }))
}

fn parse_netuid(netuid: &str) -> Result<u16, ApiError> {
    netuid.parse().map_err(|_| {
        ApiError::bad_request(
            code::BAD_NETUID,
            format!("'{netuid}' is not a subnet id (an integer 0..65535)"),
        )
    })
}

fn unknown_subnet(netuid: u16) -> ApiError {
    ApiError::not_found(
        code::UNKNOWN_SUBNET,
        format!("subnet {netuid} does not exist; GET /v1/subnets lists them"),
    )
}

async fn subnet_list(State(api): State<ApiState>) -> Answer<api::SubnetList> {
    api.node.with_finalized_state(|s| {
        ok(api::SubnetList {
            height: s.height(),
            subnets: s.subnet_list(),
        })
    })
}

async fn subnet_info(
    State(api): State<ApiState>,
    Path(netuid): Path<String>,
) -> Answered<api::Subnet> {
    let netuid = parse_netuid(&netuid)?;
    api.node
        .with_finalized_state(|s| s.subnet_info(netuid))
        .map(ok)
        .ok_or_else(|| unknown_subnet(netuid))
}

async fn metagraph(
    State(api): State<ApiState>,
    Path(netuid): Path<String>,
) -> Answered<api::Metagraph> {
    let netuid = parse_netuid(&netuid)?;
    api.node
        .with_finalized_state(|s| s.metagraph(netuid))
        .map(ok)
        .ok_or_else(|| unknown_subnet(netuid))
}

async fn pools(State(api): State<ApiState>) -> Answer<api::Pools> {
    api.node.with_finalized_state(|s| {
        ok(api::Pools {
            height: s.height(),
            pools: s.pools(),
        })
    })
}

async fn emission_schedule(State(api): State<ApiState>) -> Answer<api::EmissionSchedule> {
    ok(api.node.with_finalized_state(|s| s.emission_schedule()))
}

async fn latest_emission_receipt(State(api): State<ApiState>) -> Answered<api::EmissionReceipt> {
    api.node
        .with_finalized_state(|s| s.latest_emission_receipt().map(api::EmissionReceipt::from))
        .map(ok)
        .ok_or_else(|| {
            ApiError::not_found(
                code::NO_EMISSION_RECEIPT,
                "no emission yet: receipts start with the first subnet (RegisterSubnet)",
            )
        })
}

async fn stakes_of(
    State(api): State<ApiState>,
    Path(coldkey): Path<String>,
) -> Answered<api::Stakes> {
    let coldkey = parse_address(&coldkey)?;
    Ok(api.node.with_finalized_state(|s| {
        ok(api::Stakes {
            coldkey,
            height: s.height(),
            stakes: s.stakes_of(&coldkey),
        })
    }))
}

/// Server-sent events: `block` with an [`api::Block`], `lagged` with an [`api::Lagged`].
async fn block_events(
    State(api): State<ApiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(api.node.subscribe()).filter_map(|item| {
        let event = match item {
            Ok(block) => api::BlockEvent::Block(Box::new(block_answer(&block))),
            // A slow reader missed blocks: say so, and carry on from the newest.
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(missed)) => {
                api::BlockEvent::Lagged(api::Lagged { missed })
            }
        };
        let data = match &event {
            api::BlockEvent::Block(block) => canonical_json(block),
            api::BlockEvent::Lagged(lagged) => canonical_json(lagged),
        };
        Some(Ok(Event::default().event(event.name()).data(data)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `value` as JSON with its object keys sorted, as every answer is written.
fn canonical_json<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn submitted_tx_parsing_reports_what_is_wrong() {
        let e = parse_submitted_tx(&json!({"raw": 5})).unwrap_err();
        assert_eq!(e.error.code, "bad_tx");
        let e = parse_submitted_tx(&json!({"raw": "0xzz"})).unwrap_err();
        assert!(e.error.message.contains("not hex"), "{}", e.error.message);
        let e = parse_submitted_tx(&json!({"raw": "0x0101"})).unwrap_err();
        assert!(e.error.message.contains("shorter"), "{}", e.error.message);
        let e = parse_submitted_tx(&json!({"chainId": 1})).unwrap_err();
        assert!(e.error.message.contains("expected"), "{}", e.error.message);
        let e = parse_submitted_tx(
            &json!({"chainId": 1, "type": "Mint", "message": {}, "signature": "0x"}),
        )
        .unwrap_err();
        assert!(e.error.message.contains("Mint"), "{}", e.error.message);
        let transfer = |amount: &str| {
            json!({"chainId": 1337, "type": "Transfer", "signature": format!("0x{}", "11".repeat(65)),
                   "message": {"from": Address::ZERO, "to": Address::ZERO, "token": Address::ZERO,
                               "amount": amount, "memo": "0x", "nonce": 0, "fee": "10000"}})
        };
        for bad in ["", "1.0", "-1", "0x"] {
            let e = parse_submitted_tx(&transfer(bad)).unwrap_err();
            assert_eq!(e.error.code, "bad_tx");
            assert!(
                e.error.message.contains("'amount'"),
                "{bad:?}: {}",
                e.error.message
            );
        }
    }

    #[test]
    fn hex_bytes_reads_prefixed_and_bare_hex() {
        assert_eq!(hex_bytes("0x0aff"), Ok(vec![0x0a, 0xff]));
        assert_eq!(hex_bytes("0AFF"), Ok(vec![0x0a, 0xff]));
        assert!(hex_bytes("0x0").is_err());
        assert!(hex_bytes("0xgg").is_err());
    }
}
