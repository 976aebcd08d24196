//! A node's HTTP API (docs/node-api.md) as the miner and the validator use it: reads (a 404 is
//! "not there"), the chain status, account nonces, and signing, submitting and waiting for a
//! transaction to be finalized. What each role reads and sends on top of this lives in
//! [`crate::miner::chain`] and [`crate::validator::chain`].

use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_types::{SignedTx, TxKind};
use serde_json::Value;

/// Why talking to the chain failed. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("cannot reach the node at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the node at {url} answered {detail}")]
    BadAnswer { url: String, detail: String },
    #[error("there is no subnet {0} on this chain: create it first (`mycel subnet create`), or pass the netuid of an existing one")]
    NoSubnet(u16),
    #[error("the node refused the {kind} transaction: {reason}")]
    Refused { kind: &'static str, reason: String },
    #[error("the {kind} transaction {hash} was not finalized within {seconds} s")]
    Timeout {
        kind: &'static str,
        hash: String,
        seconds: u64,
    },
    #[error("cannot sign the {kind} transaction: {detail}")]
    Signing { kind: &'static str, detail: String },
}

impl ChainError {
    /// The node's error code of a refused transaction (`reveal_too_early`, …), if any.
    pub fn refusal_code(&self) -> Option<&str> {
        match self {
            ChainError::Refused { reason, .. } => reason.split(':').next(),
            _ => None,
        }
    }
}

/// A node's HTTP API.
#[derive(Debug, Clone)]
pub struct NodeClient {
    http: reqwest::Client,
    base: String,
}

impl NodeClient {
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// GETs `path`; `Ok(None)` on 404.
    pub(crate) async fn get(&self, path: &str) -> Result<Option<Value>, ChainError> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| ChainError::Unreachable {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body: Value = response.json().await.map_err(|e| ChainError::BadAnswer {
            url: url.clone(),
            detail: format!("{status} with a body that is not JSON: {e}"),
        })?;
        if !status.is_success() {
            return Err(ChainError::BadAnswer {
                url,
                detail: format!("{status}: {body}"),
            });
        }
        Ok(Some(body))
    }

    /// GETs `path`; a 404 is a bad answer.
    pub(crate) async fn get_required(&self, path: &str) -> Result<Value, ChainError> {
        self.get(path).await?.ok_or_else(|| ChainError::BadAnswer {
            url: format!("{}{path}", self.base),
            detail: "404".into(),
        })
    }

    /// The node's answer `body` to `path` lacks `what`.
    pub(crate) fn bad(&self, path: &str, body: &Value, what: &str) -> ChainError {
        ChainError::BadAnswer {
            url: format!("{}{path}", self.base),
            detail: format!("{what}: {body}"),
        }
    }

    /// The chain id and the finalized height.
    pub async fn status(&self) -> Result<(u64, u64), ChainError> {
        let body = self.get_required("/v1/status").await?;
        match (body["chain_id"].as_u64(), body["height"].as_u64()) {
            (Some(chain_id), Some(height)) => Ok((chain_id, height)),
            _ => Err(self.bad("/v1/status", &body, "no chain_id and height")),
        }
    }

    /// The chain id, the finalized height and the minimum fee.
    pub async fn status_with_fee(&self) -> Result<(u64, u64, U256), ChainError> {
        let body = self.get_required("/v1/status").await?;
        match (
            body["chain_id"].as_u64(),
            body["height"].as_u64(),
            decimal(&body["min_fee"]),
        ) {
            (Some(chain_id), Some(height), Some(fee)) => Ok((chain_id, height, fee)),
            _ => Err(self.bad("/v1/status", &body, "no chain_id, height and min_fee")),
        }
    }

    /// The minimum fee of a transaction.
    pub(crate) async fn min_fee(&self) -> Result<U256, ChainError> {
        let body = self.get_required("/v1/status").await?;
        decimal(&body["min_fee"]).ok_or_else(|| self.bad("/v1/status", &body, "no min_fee"))
    }

    /// The nonce the next transaction from `account` must carry.
    pub(crate) async fn next_nonce(&self, account: Address) -> Result<u64, ChainError> {
        let path = format!("/v1/accounts/{account}");
        let body = self.get_required(&path).await?;
        body["next_nonce"]
            .as_u64()
            .ok_or_else(|| self.bad(&path, &body, "no next_nonce"))
    }

    /// Signs `build(nonce, fee)` with `signer` (the nonce, fee and chain id read from the node),
    /// submits it and waits until it is finalized.
    pub(crate) async fn send(
        &self,
        kind: &'static str,
        signer: &PrivateKeySigner,
        timeout: Duration,
        build: impl FnOnce(u64, U256) -> TxKind,
    ) -> Result<B256, ChainError> {
        let (chain_id, _, fee) = self.status_with_fee().await?;
        let nonce = self.next_nonce(signer.address()).await?;
        let tx = sign(kind, build(nonce, fee), chain_id, signer)?;
        self.submit_and_wait(kind, &tx, timeout).await
    }

    /// Submits a signed transaction and waits until it is finalized; returns its hash.
    pub(crate) async fn submit_and_wait(
        &self,
        kind: &'static str,
        tx: &SignedTx,
        timeout: Duration,
    ) -> Result<B256, ChainError> {
        let url = format!("{}/v1/txs", self.base);
        let response = self
            .http
            .post(&url)
            .json(&tx.to_json())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| ChainError::Unreachable {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(ChainError::Refused {
                kind,
                reason: error_text(&body, status.as_u16()),
            });
        }
        let hash = tx.hash();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(body) = self.get(&format!("/v1/txs/{hash}")).await? {
                let failed = body.get("error").is_some_and(|e| !e.is_null());
                match body["status"].as_str() {
                    Some("finalized") if !failed => return Ok(hash),
                    Some("finalized") | Some("rejected") => {
                        return Err(ChainError::Refused {
                            kind,
                            reason: error_text(&body, 200),
                        })
                    }
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(ChainError::Timeout {
                    kind,
                    hash: hash.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Signs `tx` for `chain_id`.
pub(crate) fn sign(
    kind: &'static str,
    tx: TxKind,
    chain_id: u64,
    signer: &PrivateKeySigner,
) -> Result<SignedTx, ChainError> {
    SignedTx::sign(tx, chain_id, signer).map_err(|e| ChainError::Signing {
        kind,
        detail: e.to_string(),
    })
}

/// An amount the node writes as a decimal string (or a small JSON number).
pub(crate) fn decimal(value: &Value) -> Option<U256> {
    match value {
        Value::String(s) => mycel_types::parse_decimal_u256(s).ok(),
        Value::Number(n) => n.as_u64().map(U256::from),
        _ => None,
    }
}

/// The node's `{"error": {"code", "message"}}` as `code: message`, else the status and body.
fn error_text(body: &Value, status: u16) -> String {
    let error = &body["error"];
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => format!("status {status}: {body}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_amounts_are_read_strictly() {
        assert_eq!(decimal(&json!("10000")), Some(U256::from(10_000u64)));
        assert_eq!(decimal(&json!(10_000)), Some(U256::from(10_000u64)));
        // A malformed amount in an answer is missing, not zero.
        for bad in [
            json!(""),
            json!("1.5"),
            json!("-1"),
            json!(" 1"),
            json!(null),
        ] {
            assert_eq!(decimal(&bad), None, "{bad}");
        }
    }
}
