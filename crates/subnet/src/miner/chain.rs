//! What a miner does on chain, through a node's HTTP API (docs/node-api.md): read the chain id and
//! height, register its hotkey on the subnet if it is not yet (`BurnedRegister`, paid by a
//! coldkey), and announce where it serves (`ServeEndpoint`, signed by the hotkey) unless the
//! metagraph already shows that endpoint.

use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_types::tx::{BurnedRegister, ServeEndpoint};
use mycel_types::{SignedTx, TxKind};
use serde_json::Value;

use super::BlockHeight;

/// Why talking to the chain failed. Each message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("cannot reach the node at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the node at {url} answered {detail}")]
    BadAnswer { url: String, detail: String },
    #[error("there is no subnet {0} on this chain: create it first (a RegisterSubnet transaction), or pass the netuid of an existing one")]
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

/// The endpoint a miner announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedAt {
    pub host: String,
    pub port: u16,
    pub protocol: String,
}

/// What [`register_and_announce`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnChain {
    pub uid: u64,
    /// A `BurnedRegister` was sent and finalized now (false: the hotkey was registered already).
    pub registered_now: bool,
    /// A `ServeEndpoint` was sent and finalized now (false: the metagraph already showed it).
    pub announced_now: bool,
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
    async fn get(&self, path: &str) -> Result<Option<Value>, ChainError> {
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

    async fn get_required(&self, path: &str) -> Result<Value, ChainError> {
        self.get(path).await?.ok_or_else(|| ChainError::BadAnswer {
            url: format!("{}{path}", self.base),
            detail: "404".into(),
        })
    }

    /// The chain id and the finalized height.
    pub async fn status(&self) -> Result<(u64, u64), ChainError> {
        let body = self.get_required("/v1/status").await?;
        match (body["chain_id"].as_u64(), body["height"].as_u64()) {
            (Some(chain_id), Some(height)) => Ok((chain_id, height)),
            _ => Err(self.bad("/v1/status", &body, "no chain_id and height")),
        }
    }

    fn bad(&self, path: &str, body: &Value, what: &str) -> ChainError {
        ChainError::BadAnswer {
            url: format!("{}{path}", self.base),
            detail: format!("{what}: {body}"),
        }
    }

    async fn min_fee(&self) -> Result<U256, ChainError> {
        let body = self.get_required("/v1/status").await?;
        decimal(&body["min_fee"]).ok_or_else(|| self.bad("/v1/status", &body, "no min_fee"))
    }

    async fn next_nonce(&self, account: Address) -> Result<u64, ChainError> {
        let path = format!("/v1/accounts/{account}");
        let body = self.get_required(&path).await?;
        body["next_nonce"]
            .as_u64()
            .ok_or_else(|| self.bad(&path, &body, "no next_nonce"))
    }

    /// The subnet's current registration burn.
    async fn burn(&self, netuid: u16) -> Result<U256, ChainError> {
        let path = format!("/v1/subnets/{netuid}");
        let body = self.get(&path).await?.ok_or(ChainError::NoSubnet(netuid))?;
        decimal(&body["burn"]).ok_or_else(|| self.bad(&path, &body, "no burn"))
    }

    /// The hotkey's UID and announced endpoint on the subnet, if it is registered.
    async fn neuron(
        &self,
        netuid: u16,
        hotkey: Address,
    ) -> Result<Option<(u64, Option<ServedAt>)>, ChainError> {
        let path = format!("/v1/subnets/{netuid}/metagraph");
        let body = self.get(&path).await?.ok_or(ChainError::NoSubnet(netuid))?;
        let neurons = body["neurons"]
            .as_array()
            .ok_or_else(|| self.bad(&path, &body, "no neurons"))?;
        for neuron in neurons {
            let is_ours = neuron["hotkey"]
                .as_str()
                .and_then(|h| h.parse::<Address>().ok())
                == Some(hotkey);
            if !is_ours {
                continue;
            }
            let uid = neuron["uid"]
                .as_u64()
                .ok_or_else(|| self.bad(&path, neuron, "a neuron without uid"))?;
            let endpoint = neuron["endpoint"].as_object().and_then(|e| {
                Some(ServedAt {
                    host: e.get("host")?.as_str()?.to_string(),
                    port: u16::try_from(e.get("port")?.as_u64()?).ok()?,
                    protocol: e.get("protocol")?.as_str()?.to_string(),
                })
            });
            return Ok(Some((uid, endpoint)));
        }
        Ok(None)
    }

    /// Submits a signed transaction and waits until it is finalized.
    async fn submit_and_wait(
        &self,
        kind: &'static str,
        tx: &SignedTx,
        timeout: Duration,
    ) -> Result<(), ChainError> {
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
        let hash = format!("{}", tx.hash());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(body) = self.get(&format!("/v1/txs/{hash}")).await? {
                match body["status"].as_str() {
                    Some("finalized") if body.get("error").is_some_and(|e| !e.is_null()) => {
                        return Err(ChainError::Refused {
                            kind,
                            reason: error_text(&body, 200),
                        })
                    }
                    Some("finalized") => return Ok(()),
                    Some("rejected") => {
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
                    hash,
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn decimal(value: &Value) -> Option<U256> {
    match value {
        Value::String(s) => U256::from_str_radix(s, 10).ok(),
        Value::Number(n) => n.as_u64().map(U256::from),
        _ => None,
    }
}

fn error_text(body: &Value, status: u16) -> String {
    let error = &body["error"];
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => format!("status {status}: {body}"),
    }
}

/// Registers `hotkey` on `netuid` if it is not registered yet (the burn paid by `coldkey`, refused
/// above `max_burn`, default twice the current burn), then announces `served_at` unless the
/// metagraph already shows exactly that endpoint. Waits for each transaction to be finalized.
pub async fn register_and_announce(
    node: &NodeClient,
    netuid: u16,
    hotkey: &PrivateKeySigner,
    coldkey: &PrivateKeySigner,
    served_at: &ServedAt,
    max_burn: Option<U256>,
    timeout: Duration,
) -> Result<OnChain, ChainError> {
    let (chain_id, _) = node.status().await?;
    let fee = node.min_fee().await?;
    let mut registered_now = false;
    let (uid, endpoint) = match node.neuron(netuid, hotkey.address()).await? {
        Some(found) => found,
        None => {
            let burn = node.burn(netuid).await?;
            let tx = TxKind::BurnedRegister(BurnedRegister {
                from: coldkey.address(),
                netuid,
                hotkey: hotkey.address(),
                maxBurn: max_burn.unwrap_or(burn.saturating_mul(U256::from(2u8))),
                nonce: node.next_nonce(coldkey.address()).await?,
                fee,
            });
            let tx = sign("BurnedRegister", tx, chain_id, coldkey)?;
            node.submit_and_wait("BurnedRegister", &tx, timeout).await?;
            registered_now = true;
            node.neuron(netuid, hotkey.address())
                .await?
                .ok_or_else(|| ChainError::Refused {
                    kind: "BurnedRegister",
                    reason: "finalized, but the hotkey is not in the metagraph".into(),
                })?
        }
    };
    if endpoint.as_ref() == Some(served_at) {
        return Ok(OnChain {
            uid,
            registered_now,
            announced_now: false,
        });
    }
    let tx = TxKind::ServeEndpoint(ServeEndpoint {
        from: hotkey.address(),
        netuid,
        host: served_at.host.clone(),
        port: served_at.port,
        protocol: served_at.protocol.clone(),
        nonce: node.next_nonce(hotkey.address()).await?,
        fee,
    });
    let tx = sign("ServeEndpoint", tx, chain_id, hotkey)?;
    node.submit_and_wait("ServeEndpoint", &tx, timeout).await?;
    Ok(OnChain {
        uid,
        registered_now,
        announced_now: true,
    })
}

fn sign(
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

/// Polls the node every `every` and stores its finalized height; logs (once per outage) when the
/// node cannot be reached and keeps the last height it saw.
pub async fn follow_chain_height(node: NodeClient, height: BlockHeight, every: Duration) {
    let mut reachable = true;
    loop {
        match node.status().await {
            Ok((_, h)) => {
                height.set(h);
                if !reachable {
                    tracing::info!(rpc = %node.base(), height = h, "the node is reachable again");
                }
                reachable = true;
            }
            Err(e) => {
                if reachable {
                    tracing::warn!(error = %e, "cannot read the chain height; receipts keep the last one seen");
                }
                reachable = false;
            }
        }
        tokio::time::sleep(every).await;
    }
}
