//! What a miner does on chain, through a node's HTTP API (docs/node-api.md): read the chain id and
//! height, register its hotkey on the subnet if it is not yet (`BurnedRegister`, paid by a
//! coldkey), and announce where it serves (`ServeEndpoint`, signed by the hotkey) unless the
//! metagraph already shows that endpoint.

use std::time::Duration;

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_types::tx::{BurnedRegister, ServeEndpoint};
use mycel_types::TxKind;

use super::BlockHeight;
use crate::node::{decimal, sign};
pub use crate::node::{ChainError, NodeClient};

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

/// What a miner reads from the chain, on top of the shared node client.
impl NodeClient {
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
