//! What a validator reads from and sends to the chain, through a node's HTTP API
//! (docs/node-api.md): the subnet's parameters and epoch schedule, the metagraph with the miners'
//! endpoints, its own registration (`BurnedRegister`), and its weights (`SetWeights`, or
//! `CommitWeights` then `RevealWeights` when the subnet has commit-reveal on).

use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_types::tx::{
    weights_commit_hash, BurnedRegister, CommitWeights, RevealWeights, SetWeights,
};
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

/// The subnet parameters a validator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetParams {
    pub tempo: u64,
    pub commit_reveal: bool,
    pub weights_version_key: u64,
    /// The block at whose end the next epoch runs.
    pub next_epoch_at: u64,
    pub burn: U256,
    pub height: u64,
}

/// One UID of the metagraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neuron {
    pub uid: u16,
    pub hotkey: Address,
    /// `http://host:port` when the hotkey announced an endpoint.
    pub endpoint: Option<String>,
}

/// A node's HTTP API, as the validator uses it.
#[derive(Debug, Clone)]
pub struct Node {
    http: reqwest::Client,
    base: String,
}

impl Node {
    pub fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

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

    fn bad(&self, path: &str, body: &Value, what: &str) -> ChainError {
        ChainError::BadAnswer {
            url: format!("{}{path}", self.base),
            detail: format!("{what}: {body}"),
        }
    }

    /// The chain id, the finalized height and the minimum fee.
    pub async fn status(&self) -> Result<(u64, u64, U256), ChainError> {
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

    pub async fn subnet(&self, netuid: u16) -> Result<SubnetParams, ChainError> {
        let path = format!("/v1/subnets/{netuid}");
        let body = self.get(&path).await?.ok_or(ChainError::NoSubnet(netuid))?;
        let params = &body["params"];
        let read = || {
            Some(SubnetParams {
                tempo: params["tempo"].as_u64()?,
                commit_reveal: params["commit_reveal"].as_bool()?,
                weights_version_key: params["weights_version_key"].as_u64()?,
                next_epoch_at: body["next_epoch_at"].as_u64()?,
                burn: decimal(&body["burn"])?,
                height: body["height"].as_u64()?,
            })
        };
        read().ok_or_else(|| self.bad(&path, &body, "missing subnet parameters"))
    }

    pub async fn metagraph(&self, netuid: u16) -> Result<Vec<Neuron>, ChainError> {
        let path = format!("/v1/subnets/{netuid}/metagraph");
        let body = self.get(&path).await?.ok_or(ChainError::NoSubnet(netuid))?;
        let neurons = body["neurons"]
            .as_array()
            .ok_or_else(|| self.bad(&path, &body, "no neurons"))?;
        neurons
            .iter()
            .map(|n| {
                let uid = n["uid"].as_u64().and_then(|u| u16::try_from(u).ok());
                let hotkey = n["hotkey"].as_str().and_then(|h| h.parse::<Address>().ok());
                let (Some(uid), Some(hotkey)) = (uid, hotkey) else {
                    return Err(self.bad(&path, n, "a neuron without uid or hotkey"));
                };
                let endpoint = n["endpoint"].as_object().and_then(|e| {
                    let host = e.get("host")?.as_str()?;
                    let port = e.get("port")?.as_u64()?;
                    let protocol = e.get("protocol")?.as_str().unwrap_or("http");
                    // An IPv6 literal needs brackets in a URL.
                    let host = if host.contains(':') && !host.starts_with('[') {
                        format!("[{host}]")
                    } else {
                        host.to_string()
                    };
                    Some(format!("{protocol}://{host}:{port}"))
                });
                Ok(Neuron {
                    uid,
                    hotkey,
                    endpoint,
                })
            })
            .collect()
    }

    async fn next_nonce(&self, account: Address) -> Result<u64, ChainError> {
        let path = format!("/v1/accounts/{account}");
        let body = self.get_required(&path).await?;
        body["next_nonce"]
            .as_u64()
            .ok_or_else(|| self.bad(&path, &body, "no next_nonce"))
    }

    /// Signs `build(nonce, fee)` with `signer`, submits it and waits until it is finalized.
    async fn send(
        &self,
        kind: &'static str,
        signer: &PrivateKeySigner,
        timeout: Duration,
        build: impl FnOnce(u64, U256) -> TxKind,
    ) -> Result<B256, ChainError> {
        let (chain_id, _, fee) = self.status().await?;
        let nonce = self.next_nonce(signer.address()).await?;
        let tx = SignedTx::sign(build(nonce, fee), chain_id, signer).map_err(|e| {
            ChainError::Signing {
                kind,
                detail: e.to_string(),
            }
        })?;
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

    /// Registers `hotkey` on `netuid` (the burn paid by `coldkey`, at most twice the current
    /// burn) unless it is registered already; returns its UID.
    pub async fn ensure_registered(
        &self,
        netuid: u16,
        hotkey: &PrivateKeySigner,
        coldkey: &PrivateKeySigner,
        timeout: Duration,
    ) -> Result<(u16, bool), ChainError> {
        let find = |graph: &[Neuron]| {
            graph
                .iter()
                .find(|n| n.hotkey == hotkey.address())
                .map(|n| n.uid)
        };
        if let Some(uid) = find(&self.metagraph(netuid).await?) {
            return Ok((uid, false));
        }
        let burn = self.subnet(netuid).await?.burn;
        let hot = hotkey.address();
        self.send("BurnedRegister", coldkey, timeout, |nonce, fee| {
            TxKind::BurnedRegister(BurnedRegister {
                from: coldkey.address(),
                netuid,
                hotkey: hot,
                maxBurn: burn.saturating_mul(U256::from(2u8)),
                nonce,
                fee,
            })
        })
        .await?;
        let uid = find(&self.metagraph(netuid).await?).ok_or_else(|| ChainError::Refused {
            kind: "BurnedRegister",
            reason: "finalized, but the hotkey is not in the metagraph".into(),
        })?;
        Ok((uid, true))
    }

    pub async fn set_weights(
        &self,
        netuid: u16,
        hotkey: &PrivateKeySigner,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
        timeout: Duration,
    ) -> Result<B256, ChainError> {
        self.send("SetWeights", hotkey, timeout, |nonce, fee| {
            TxKind::SetWeights(SetWeights {
                from: hotkey.address(),
                netuid,
                uids: uids.to_vec(),
                values: values.to_vec(),
                versionKey: version_key,
                nonce,
                fee,
            })
        })
        .await
    }

    /// Commits to weights with a fresh random salt; returns the commit to reveal later.
    pub async fn commit_weights(
        &self,
        netuid: u16,
        hotkey: &PrivateKeySigner,
        uids: &[u16],
        values: &[u16],
        version_key: u64,
        timeout: Duration,
    ) -> Result<PendingCommit, ChainError> {
        let salt = B256::from(rand::random::<[u8; 32]>());
        let hash = weights_commit_hash(hotkey.address(), netuid, uids, values, salt, version_key);
        self.send("CommitWeights", hotkey, timeout, |nonce, fee| {
            TxKind::CommitWeights(CommitWeights {
                from: hotkey.address(),
                netuid,
                commitHash: hash,
                nonce,
                fee,
            })
        })
        .await?;
        Ok(PendingCommit {
            hash,
            uids: uids.to_vec(),
            values: values.to_vec(),
            salt,
            version_key,
        })
    }

    pub async fn reveal_weights(
        &self,
        netuid: u16,
        hotkey: &PrivateKeySigner,
        commit: &PendingCommit,
        timeout: Duration,
    ) -> Result<B256, ChainError> {
        self.send("RevealWeights", hotkey, timeout, |nonce, fee| {
            TxKind::RevealWeights(RevealWeights {
                from: hotkey.address(),
                netuid,
                uids: commit.uids.clone(),
                values: commit.values.clone(),
                salt: commit.salt,
                versionKey: commit.version_key,
                nonce,
                fee,
            })
        })
        .await
    }
}

/// Weights committed and not yet revealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCommit {
    pub hash: B256,
    pub uids: Vec<u16>,
    pub values: Vec<u16>,
    pub salt: B256,
    pub version_key: u64,
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
