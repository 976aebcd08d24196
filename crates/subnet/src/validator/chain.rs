//! What a validator reads from and sends to the chain, through a node's HTTP API
//! (docs/node-api.md): the subnet's parameters and epoch schedule, the metagraph with the miners'
//! endpoints, its own registration (`BurnedRegister`), and its weights (`SetWeights`, or
//! `CommitWeights` then `RevealWeights` when the subnet has commit-reveal on).

use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_types::tx::{
    weights_commit_hash, BurnedRegister, CommitWeights, RevealWeights, SetWeights,
};
use mycel_types::TxKind;

use crate::node::decimal;
pub use crate::node::{ChainError, NodeClient};

/// The node client, under the name the validator has always used for it.
pub type Node = NodeClient;

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

/// What a validator reads from and sends to the chain, on top of the shared node client.
impl NodeClient {
    /// The subnet's parameters and epoch schedule.
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
