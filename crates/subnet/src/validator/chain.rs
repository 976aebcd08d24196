//! What a validator reads from and sends to the chain, through a node's HTTP API
//! (docs/node-api.md, via `mycel-client`): the subnet's parameters and epoch schedule, the
//! metagraph with the miners' endpoints, its own registration (`BurnedRegister`), and its weights
//! (`SetWeights`, or `CommitWeights` then `RevealWeights` when the subnet has commit-reveal on).

use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_client::{NodeClient, SendOptions, TxFields};
use mycel_types::tx::{
    weights_commit_hash, BurnedRegister, CommitWeights, RevealWeights, SetWeights,
};
use mycel_types::TxKind;

use crate::chain::subnet_error;
pub use crate::chain::ChainError;

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

/// The subnet's parameters and epoch schedule.
pub async fn subnet_params(node: &NodeClient, netuid: u16) -> Result<SubnetParams, ChainError> {
    let subnet = node.subnet(netuid).await.map_err(subnet_error(netuid))?;
    Ok(SubnetParams {
        tempo: subnet.params.tempo,
        commit_reveal: subnet.params.commit_reveal,
        weights_version_key: subnet.params.weights_version_key,
        next_epoch_at: subnet.next_epoch_at,
        burn: U256::from(subnet.burn),
        height: subnet.height,
    })
}

/// Every UID of the subnet, with its endpoint's URL.
pub async fn neurons(node: &NodeClient, netuid: u16) -> Result<Vec<Neuron>, ChainError> {
    let graph = node.metagraph(netuid).await.map_err(subnet_error(netuid))?;
    Ok(graph
        .neurons
        .iter()
        .map(|n| Neuron {
            uid: n.uid,
            hotkey: n.hotkey,
            endpoint: n.endpoint.as_ref().map(|e| e.url()),
        })
        .collect())
}

/// Registers `hotkey` on `netuid` (the burn paid by `coldkey`, at most twice the current burn)
/// unless it is registered already; returns its UID and whether it was registered now.
pub async fn ensure_registered(
    node: &NodeClient,
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
    if let Some(uid) = find(&neurons(node, netuid).await?) {
        return Ok((uid, false));
    }
    let burn = subnet_params(node, netuid).await?.burn;
    let hot = hotkey.address();
    send(node, coldkey, timeout, |f| {
        TxKind::BurnedRegister(BurnedRegister {
            from: f.from,
            netuid,
            hotkey: hot,
            maxBurn: burn.saturating_mul(U256::from(2u8)),
            nonce: f.nonce,
            fee: f.fee,
        })
    })
    .await?;
    let uid =
        find(&neurons(node, netuid).await?).ok_or(ChainError::NotInMetagraph("BurnedRegister"))?;
    Ok((uid, true))
}

pub async fn set_weights(
    node: &NodeClient,
    netuid: u16,
    hotkey: &PrivateKeySigner,
    uids: &[u16],
    values: &[u16],
    version_key: u64,
    timeout: Duration,
) -> Result<B256, ChainError> {
    send(node, hotkey, timeout, |f| {
        TxKind::SetWeights(SetWeights {
            from: f.from,
            netuid,
            uids: uids.to_vec(),
            values: values.to_vec(),
            versionKey: version_key,
            nonce: f.nonce,
            fee: f.fee,
        })
    })
    .await
}

/// Commits to weights with a fresh random salt; returns the commit to reveal later.
pub async fn commit_weights(
    node: &NodeClient,
    netuid: u16,
    hotkey: &PrivateKeySigner,
    uids: &[u16],
    values: &[u16],
    version_key: u64,
    timeout: Duration,
) -> Result<PendingCommit, ChainError> {
    let salt = B256::from(rand::random::<[u8; 32]>());
    let hash = weights_commit_hash(hotkey.address(), netuid, uids, values, salt, version_key);
    send(node, hotkey, timeout, |f| {
        TxKind::CommitWeights(CommitWeights {
            from: f.from,
            netuid,
            commitHash: hash,
            nonce: f.nonce,
            fee: f.fee,
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
    node: &NodeClient,
    netuid: u16,
    hotkey: &PrivateKeySigner,
    commit: &PendingCommit,
    timeout: Duration,
) -> Result<B256, ChainError> {
    send(node, hotkey, timeout, |f| {
        TxKind::RevealWeights(RevealWeights {
            from: f.from,
            netuid,
            uids: commit.uids.clone(),
            values: commit.values.clone(),
            salt: commit.salt,
            versionKey: commit.version_key,
            nonce: f.nonce,
            fee: f.fee,
        })
    })
    .await
}

/// Signs what `build` makes, sends it and waits until it is applied; its hash.
async fn send(
    node: &NodeClient,
    signer: &PrivateKeySigner,
    timeout: Duration,
    build: impl FnOnce(TxFields) -> TxKind,
) -> Result<B256, ChainError> {
    let outcome = node
        .send_and_wait(signer, &SendOptions::timeout(timeout), build)
        .await?;
    Ok(outcome.applied()?.hash)
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
