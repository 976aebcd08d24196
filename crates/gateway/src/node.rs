//! A client of the mycel node's HTTP API (docs/node-api.md): the few reads and writes settlement
//! needs.

use alloy_primitives::{Address, B256};
use mycel_types::{Amount, SignedTx};
use serde_json::Value;
use std::time::Duration;

/// Why a call to the node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The node answered with `{"error": {"code", "message"}}`.
    #[error("node refused: {message} ({code})")]
    Refused { code: String, message: String },
    #[error("node answered something unexpected at {path}: {reason}")]
    Unexpected { path: String, reason: String },
}

/// The chain facts a facilitator needs at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    pub chain_id: u64,
    pub min_fee: Amount,
    pub musd_asset: Address,
    pub musd_name: String,
    pub musd_version: String,
}

/// An account as the node reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountView {
    pub musd: Amount,
    pub myc: Amount,
    /// Finalized next nonce plus this node's pending transactions of the account.
    pub next_nonce: u64,
    /// The finalized next nonce (nothing pending counted).
    pub nonce: u64,
}

/// Where a transaction is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxState {
    Pending,
    /// In a finalized block; `error` is the state machine's refusal code if it failed.
    Finalized {
        height: u64,
        error: Option<(String, String)>,
    },
    Rejected(String),
    Unknown,
}

/// The node's HTTP API.
#[derive(Debug, Clone)]
pub struct NodeClient {
    base: String,
    http: reqwest::Client,
}

impl NodeClient {
    /// A client of the node at `base` (e.g. `http://127.0.0.1:8545`).
    pub fn new(base: &str) -> NodeClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        NodeClient {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn get(&self, path: &str) -> Result<Value, NodeError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| NodeError::Unreachable {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        read_json(path, response).await
    }

    pub async fn chain_info(&self) -> Result<ChainInfo, NodeError> {
        let status = self.get("/v1/status").await?;
        let musd = self.get("/v1/musd").await?;
        let bad = |path: &str, reason: &str| NodeError::Unexpected {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        Ok(ChainInfo {
            chain_id: status["chain_id"]
                .as_u64()
                .ok_or_else(|| bad("/v1/status", "no chain_id"))?,
            min_fee: status["min_fee"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("/v1/status", "no min_fee"))?,
            musd_asset: musd["asset"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("/v1/musd", "no asset address"))?,
            musd_name: musd["name"]
                .as_str()
                .ok_or_else(|| bad("/v1/musd", "no name"))?
                .to_string(),
            musd_version: musd["version"]
                .as_str()
                .ok_or_else(|| bad("/v1/musd", "no version"))?
                .to_string(),
        })
    }

    pub async fn account(&self, address: Address) -> Result<AccountView, NodeError> {
        let path = format!("/v1/accounts/{address}");
        let body = self.get(&path).await?;
        let amount = |field: &str| {
            body[field]
                .as_str()
                .and_then(|s| s.parse::<Amount>().ok())
                .ok_or_else(|| NodeError::Unexpected {
                    path: path.clone(),
                    reason: format!("no {field}"),
                })
        };
        Ok(AccountView {
            musd: amount("musd")?,
            myc: amount("myc")?,
            next_nonce: body["next_nonce"]
                .as_u64()
                .ok_or_else(|| NodeError::Unexpected {
                    path: path.clone(),
                    reason: "no next_nonce".into(),
                })?,
            nonce: body["nonce"]
                .as_u64()
                .ok_or_else(|| NodeError::Unexpected {
                    path: path.clone(),
                    reason: "no nonce".into(),
                })?,
        })
    }

    /// EIP-3009 `authorizationState(authorizer, nonce)` in the finalized state.
    pub async fn authorization_used(
        &self,
        authorizer: Address,
        nonce: B256,
    ) -> Result<bool, NodeError> {
        let path = format!("/v1/musd/authorizations/{authorizer}/{nonce}");
        let body = self.get(&path).await?;
        body["used"].as_bool().ok_or(NodeError::Unexpected {
            path,
            reason: "no 'used' field".into(),
        })
    }

    /// Submits a signed transaction; returns its hash once the node's mempool accepted it.
    pub async fn submit(&self, tx: &SignedTx) -> Result<B256, NodeError> {
        let url = format!("{}/v1/txs", self.base);
        let raw = format!("0x{}", hex::encode(tx.encode()));
        let response = self
            .http
            .post(&url)
            .json(&serde_json::json!({ "raw": raw }))
            .send()
            .await
            .map_err(|e| NodeError::Unreachable {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let body = read_json("/v1/txs", response).await?;
        body["hash"]
            .as_str()
            .and_then(|h| h.parse().ok())
            .ok_or(NodeError::Unexpected {
                path: "/v1/txs".into(),
                reason: "no hash in the answer".into(),
            })
    }

    pub async fn tx_state(&self, hash: B256) -> Result<TxState, NodeError> {
        let path = format!("/v1/txs/{hash}");
        let body = match self.get(&path).await {
            Ok(body) => body,
            Err(NodeError::Refused { code, .. }) if code == "unknown_tx" => {
                return Ok(TxState::Unknown)
            }
            Err(e) => return Err(e),
        };
        Ok(match body["status"].as_str() {
            Some("pending") => TxState::Pending,
            Some("finalized") => TxState::Finalized {
                height: body["height"].as_u64().unwrap_or_default(),
                error: body.get("error").map(|e| {
                    (
                        e["code"].as_str().unwrap_or("failed").to_string(),
                        e["message"].as_str().unwrap_or_default().to_string(),
                    )
                }),
            },
            Some("rejected") => TxState::Rejected(
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("rejected")
                    .to_string(),
            ),
            _ => {
                return Err(NodeError::Unexpected {
                    path,
                    reason: format!("unknown status in {body}"),
                })
            }
        })
    }
}

async fn read_json(path: &str, response: reqwest::Response) -> Result<Value, NodeError> {
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| NodeError::Unexpected {
        path: path.to_string(),
        reason: format!("HTTP {status}, body is not JSON: {e}"),
    })?;
    if let Some(error) = body.get("error").filter(|_| !status.is_success()) {
        return Err(NodeError::Refused {
            code: error["code"].as_str().unwrap_or("error").to_string(),
            message: error["message"].as_str().unwrap_or_default().to_string(),
        });
    }
    if !status.is_success() {
        return Err(NodeError::Unexpected {
            path: path.to_string(),
            reason: format!("HTTP {status}: {body}"),
        });
    }
    Ok(body)
}
