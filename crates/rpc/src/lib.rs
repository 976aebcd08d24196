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

use alloy_primitives::{Address, B256};
use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::{header, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::{get, post},
    Json, Router,
};
use futures::Stream;
use mycel_chain::{BlockView, MempoolError, Node, TxOutcome, TxStatus};
use mycel_http::{Server, ServerStats};
use mycel_types::{format_amount, Genesis, SignedTx, Token, TxJson};
use serde_json::{json, Value};
use std::{convert::Infallible, sync::Arc};
use tokio_stream::{wrappers::BroadcastStream, StreamExt};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct ApiState {
    node: Node,
    genesis: Arc<Genesis>,
    /// The connection counts of the server this router runs in, reported by `/metrics`.
    http: ServerStats,
}

/// The API's routes over a running node.
pub fn router(node: Node, genesis: Genesis) -> Router {
    router_counting(node, genesis, ServerStats::new())
}

/// The API's routes, reporting `http` (its server's counts) in `/metrics`.
fn router_counting(node: Node, genesis: Genesis, http: ServerStats) -> Router {
    let state = ApiState {
        node,
        genesis: Arc::new(genesis),
        http,
    };
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/genesis", get(genesis_doc))
        .route("/v1/txs", post(submit_tx))
        .route("/v1/txs/{hash}", get(tx_status))
        .route("/v1/blocks/latest", get(latest_block))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/accounts/{address}", get(account))
        .route("/v1/events/blocks", get(block_events))
        .route("/v1/subnets", get(subnet_list))
        .route("/v1/subnets/{netuid}", get(subnet_info))
        .route("/v1/subnets/{netuid}/metagraph", get(metagraph))
        .route("/v1/pools", get(pools))
        .route("/v1/emission", get(emission_schedule))
        .route("/v1/emission/receipts/latest", get(latest_emission_receipt))
        .route("/v1/stakes/{coldkey}", get(stakes_of))
        .route("/v1/musd", get(musd_info))
        .route(
            "/v1/musd/authorizations/{authorizer}/{nonce}",
            get(authorization_state),
        )
        .route("/v1/channels/{id}", get(channel))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint; see docs/node-api.md",
            )
        })
        .with_state(state)
}

/// Serves the API on `listener` under `limits` (connection cap, header/body/write deadlines; see
/// mycel-http and docs/node-api.md "Limits") until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    node: Node,
    genesis: Genesis,
    limits: mycel_http::ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let http = ServerStats::new();
    let router = router_counting(node, genesis, http.clone());
    Server::new(listener, router, limits)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
        .with_stats(http)
        .run(shutdown)
        .await
}

/// An error response: status plus `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::bad_request("bad_json", rejection.body_text())
    }
}

impl From<MempoolError> for ApiError {
    fn from(err: MempoolError) -> Self {
        let status = if err.code() == "mempool_full" {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

async fn metrics(State(api): State<ApiState>) -> impl IntoResponse {
    let mut text = api.node.metrics();
    text.push_str(&api.http.snapshot().to_prometheus("mycel"));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn status(State(api): State<ApiState>) -> Json<Value> {
    let s = api.node.status();
    Json(json!({
        "chain_id": s.chain_id,
        "genesis_hash": s.genesis_hash,
        "height": s.latest_height,
        "hash": s.latest_hash,
        "state_root": s.state_root,
        "timestamp_ms": s.latest_timestamp_ms,
        "validators": s.validators,
        "node_key": s.node_key,
        "mempool_size": s.mempool_size,
        "min_fee": api.genesis.min_fee.to_string(),
        "max_tx_bytes": api.genesis.max_tx_bytes,
    }))
}

async fn genesis_doc(State(api): State<ApiState>) -> Json<Genesis> {
    Json((*api.genesis).clone())
}

async fn submit_tx(
    State(api): State<ApiState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    let tx = parse_submitted_tx(&body)?;
    let hash = api.node.submit_tx(tx)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"hash": hash, "status": "pending"})),
    ))
}

fn parse_submitted_tx(body: &Value) -> Result<SignedTx, ApiError> {
    if let Some(raw) = body.get("raw") {
        let raw = raw
            .as_str()
            .ok_or_else(|| ApiError::bad_request("bad_tx", "'raw' must be a 0x-hex string"))?;
        let bytes = hex_bytes(raw)
            .map_err(|e| ApiError::bad_request("bad_tx", format!("'raw' is not hex: {e}")))?;
        return SignedTx::decode(&bytes)
            .map_err(|e| ApiError::bad_request("bad_tx", e.to_string()));
    }
    let json: TxJson = serde_json::from_value(body.clone()).map_err(|e| {
        ApiError::bad_request(
            "bad_tx",
            format!("{e}; expected {{\"chainId\", \"type\", \"message\", \"signature\"}} or {{\"raw\"}}"),
        )
    })?;
    SignedTx::from_json(&json).map_err(|e| ApiError::bad_request("bad_tx", e.to_string()))
}

fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s.trim().strip_prefix("0x").unwrap_or(s.trim())).map_err(|e| e.to_string())
}

async fn tx_status(
    State(api): State<ApiState>,
    Path(hash): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let hash: B256 = hash.parse().map_err(|_| {
        ApiError::bad_request("bad_hash", format!("'{hash}' is not a 32-byte 0x-hex hash"))
    })?;
    let body = match api.node.tx_status(hash) {
        TxStatus::Pending => json!({"hash": hash, "status": "pending"}),
        TxStatus::Finalized {
            height,
            index,
            result,
        } => {
            let mut body =
                json!({"hash": hash, "status": "finalized", "height": height, "index": index});
            match result {
                TxOutcome::Success { receipt } => body["receipt"] = json!(receipt),
                TxOutcome::Failed { code, error } => {
                    body["error"] = json!({"code": code, "message": error});
                }
            }
            body
        }
        TxStatus::Rejected { code, reason } => {
            json!({"hash": hash, "status": "rejected", "error": {"code": code, "message": reason}})
        }
        TxStatus::Unknown => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_tx",
                format!("this node has not seen transaction {hash}"),
            ))
        }
    };
    Ok(Json(body))
}

fn block_json(block: &BlockView) -> Value {
    let txs: Vec<Value> = block
        .txs
        .iter()
        .map(|t| {
            let result = match &t.result {
                Some(TxOutcome::Success { receipt }) => json!({"ok": receipt}),
                Some(TxOutcome::Failed { code, error }) => {
                    json!({"err": {"code": code, "message": error}})
                }
                None => Value::Null,
            };
            json!({"hash": t.hash, "index": t.index, "tx": t.tx, "result": result})
        })
        .collect();
    json!({
        "height": block.height,
        "hash": block.hash,
        "parent": block.parent,
        "timestamp_ms": block.timestamp_ms,
        "state_root": block.state_root,
        "proposer": block.proposer,
        "view": block.view,
        "tx_count": block.txs.len(),
        "txs": txs,
    })
}

async fn block(
    State(api): State<ApiState>,
    Path(height): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let height: u64 = height.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_height",
            format!("'{height}' is not a block height (or use 'latest')"),
        )
    })?;
    find_block(&api, height).await
}

async fn latest_block(State(api): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let height = api.node.status().latest_height;
    find_block(&api, height).await
}

async fn find_block(api: &ApiState, height: u64) -> Result<Json<Value>, ApiError> {
    match api.node.block(height).await {
        Some(block) => Ok(Json(block_json(&block))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_block",
            format!(
                "no finalized block at height {height} (finalized height is {})",
                api.node.status().latest_height
            ),
        )),
    }
}

async fn account(
    State(api): State<ApiState>,
    Path(address): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let parsed: Address = address.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_address",
            format!("'{address}' is not a 20-byte 0x-hex address"),
        )
    })?;
    let height = api.node.status().latest_height;
    let account = api.node.account(parsed);
    Ok(Json(json!({
        "address": parsed.to_checksum(None),
        "myc": account.myc.to_string(),
        "musd": account.musd.to_string(),
        "nonce": account.nonce,
        "next_nonce": api.node.next_nonce(parsed),
        "myc_display": format_amount(account.myc, Token::Myc),
        "musd_display": format_amount(account.musd, Token::Musd),
        "height": height,
    })))
}

/// mUSD's EIP-3009 identity: what an x402 client puts in `asset` and `extra`.
async fn musd_info(State(api): State<ApiState>) -> Json<Value> {
    let chain_id = api.genesis.chain_id;
    Json(json!({
        "asset": mycel_types::amount::MUSD_ADDRESS.to_checksum(None),
        "name": mycel_types::MUSD_EIP712_NAME,
        "version": mycel_types::MUSD_EIP712_VERSION,
        "decimals": Token::Musd.decimals(),
        "chainId": chain_id,
        "network": format!("eip155:{chain_id}"),
    }))
}

/// EIP-3009 `authorizationState(authorizer, nonce)` in the latest finalized state.
async fn authorization_state(
    State(api): State<ApiState>,
    Path((authorizer, nonce)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let parsed: Address = authorizer.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_address",
            format!("'{authorizer}' is not a 20-byte 0x-hex address"),
        )
    })?;
    let nonce_b256: B256 = nonce.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_nonce",
            format!("'{nonce}' is not a 32-byte 0x-hex authorization nonce"),
        )
    })?;
    let height = api.node.status().latest_height;
    let used = api
        .node
        .with_finalized_state(|state| state.authorization_state(&parsed, &nonce_b256));
    Ok(Json(json!({
        "authorizer": parsed.to_checksum(None),
        "nonce": nonce_b256,
        "used": used,
        "height": height,
    })))
}

/// A payment channel (escrow of mUSD paid out by vouchers) in the latest finalized state.
async fn channel(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let parsed: B256 = id.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_channel_id",
            format!("'{id}' is not a 32-byte 0x-hex channel id"),
        )
    })?;
    let height = api.node.status().latest_height;
    let channel = api
        .node
        .with_finalized_state(|state| state.channel(&parsed))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_channel",
                format!("no channel {parsed}"),
            )
        })?;
    Ok(Json(json!({
        "id": parsed,
        "payer": channel.payer.to_checksum(None),
        "payee": channel.payee.to_checksum(None),
        "deposit": channel.deposit.to_string(),
        "claimed": channel.claimed.to_string(),
        "escrowed": channel.escrowed().to_string(),
        "withdraw_delay_s": channel.withdraw_delay_s,
        "withdraw_at_s": channel.withdraw_at_s,
        "closed": channel.closed,
        "height": height,
    })))
}

fn parse_netuid(netuid: &str) -> Result<u16, ApiError> {
    netuid.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_netuid",
            format!("'{netuid}' is not a subnet id (an integer 0..65535)"),
        )
    })
}

fn unknown_subnet(netuid: u16) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_subnet",
        format!("subnet {netuid} does not exist; GET /v1/subnets lists them"),
    )
}

async fn subnet_list(State(api): State<ApiState>) -> Json<Value> {
    api.node
        .with_finalized_state(|s| Json(json!({"height": s.height(), "subnets": s.subnet_list()})))
}

async fn subnet_info(
    State(api): State<ApiState>,
    Path(netuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let netuid = parse_netuid(&netuid)?;
    api.node.with_finalized_state(|s| {
        let info = s
            .subnet_info(netuid)
            .ok_or_else(|| unknown_subnet(netuid))?;
        let mut body = json!(info);
        body["height"] = json!(s.height());
        Ok(Json(body))
    })
}

async fn metagraph(
    State(api): State<ApiState>,
    Path(netuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let netuid = parse_netuid(&netuid)?;
    api.node.with_finalized_state(|s| {
        let mg = s.metagraph(netuid).ok_or_else(|| unknown_subnet(netuid))?;
        Ok(Json(json!(mg)))
    })
}

async fn pools(State(api): State<ApiState>) -> Json<Value> {
    api.node
        .with_finalized_state(|s| Json(json!({"height": s.height(), "pools": s.pools()})))
}

async fn emission_schedule(State(api): State<ApiState>) -> Json<Value> {
    api.node
        .with_finalized_state(|s| Json(json!(s.emission_schedule())))
}

async fn latest_emission_receipt(State(api): State<ApiState>) -> Result<Json<Value>, ApiError> {
    api.node.with_finalized_state(|s| {
        s.latest_emission_receipt()
            .map(|r| Json(json!(r)))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_emission_receipt",
                    "no emission yet: receipts start with the first subnet (RegisterSubnet)",
                )
            })
    })
}

async fn stakes_of(
    State(api): State<ApiState>,
    Path(coldkey): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let parsed: Address = coldkey.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_address",
            format!("'{coldkey}' is not a 20-byte 0x-hex address"),
        )
    })?;
    Ok(api.node.with_finalized_state(|s| {
        Json(json!({
            "coldkey": parsed.to_checksum(None),
            "height": s.height(),
            "stakes": s.stakes_of(&parsed),
        }))
    }))
}

async fn block_events(
    State(api): State<ApiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(api.node.subscribe()).filter_map(|item| match item {
        Ok(block) => Some(Ok(Event::default()
            .event("block")
            .data(block_json(&block).to_string()))),
        // A slow reader missed blocks: say so, and carry on from the newest.
        Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
            Some(Ok(Event::default()
                .event("lagged")
                .data(json!({"missed": n}).to_string())))
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitted_tx_parsing_reports_what_is_wrong() {
        let e = parse_submitted_tx(&json!({"raw": 5})).unwrap_err();
        assert_eq!(e.code, "bad_tx");
        let e = parse_submitted_tx(&json!({"raw": "0xzz"})).unwrap_err();
        assert!(e.message.contains("not hex"), "{}", e.message);
        let e = parse_submitted_tx(&json!({"raw": "0x0101"})).unwrap_err();
        assert!(e.message.contains("shorter"), "{}", e.message);
        let e = parse_submitted_tx(&json!({"chainId": 1})).unwrap_err();
        assert!(e.message.contains("expected"), "{}", e.message);
        let e = parse_submitted_tx(
            &json!({"chainId": 1, "type": "Mint", "message": {}, "signature": "0x"}),
        )
        .unwrap_err();
        assert!(e.message.contains("Mint"), "{}", e.message);
        let transfer = |amount: &str| {
            json!({"chainId": 1337, "type": "Transfer", "signature": format!("0x{}", "11".repeat(65)),
                   "message": {"from": Address::ZERO, "to": Address::ZERO, "token": Address::ZERO,
                               "amount": amount, "memo": "0x", "nonce": 0, "fee": "10000"}})
        };
        for bad in ["", "1.0", "-1", "0x"] {
            let e = parse_submitted_tx(&transfer(bad)).unwrap_err();
            assert_eq!(e.code, "bad_tx");
            assert!(e.message.contains("'amount'"), "{bad:?}: {}", e.message);
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
