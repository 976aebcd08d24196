//! What a miner does on chain, through a node's HTTP API (docs/node-api.md): read the chain id and
//! height, register its hotkey on the subnet if it is not yet (`BurnedRegister`, paid by a
//! coldkey), and announce where it serves (`ServeEndpoint`, signed by the hotkey) unless the
//! metagraph already shows that endpoint.

use std::time::Duration;

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_client::{NodeClient, SendOptions};
use mycel_types::tx::{BurnedRegister, ServeEndpoint};
use mycel_types::TxKind;

use super::BlockHeight;
use crate::chain::subnet_error;
pub use crate::chain::ChainError;

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

/// The hotkey's UID and announced endpoint on the subnet, if it is registered.
async fn neuron(
    node: &NodeClient,
    netuid: u16,
    hotkey: Address,
) -> Result<Option<(u64, Option<ServedAt>)>, ChainError> {
    let graph = node.metagraph(netuid).await.map_err(subnet_error(netuid))?;
    Ok(graph.neuron(hotkey).map(|n| {
        let endpoint = n.endpoint.as_ref().map(|e| ServedAt {
            host: e.host.clone(),
            port: e.port,
            protocol: e.protocol.clone(),
        });
        (u64::from(n.uid), endpoint)
    }))
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
    let options = SendOptions::timeout(timeout);
    let mut registered_now = false;
    let (uid, endpoint) = match neuron(node, netuid, hotkey.address()).await? {
        Some(found) => found,
        None => {
            let burn = U256::from(
                node.subnet(netuid)
                    .await
                    .map_err(subnet_error(netuid))?
                    .burn,
            );
            let hot = hotkey.address();
            node.send_and_wait(coldkey, &options, |f| {
                TxKind::BurnedRegister(BurnedRegister {
                    from: f.from,
                    netuid,
                    hotkey: hot,
                    maxBurn: max_burn.unwrap_or(burn.saturating_mul(U256::from(2u8))),
                    nonce: f.nonce,
                    fee: f.fee,
                })
            })
            .await?
            .applied()?;
            registered_now = true;
            neuron(node, netuid, hot)
                .await?
                .ok_or(ChainError::NotInMetagraph("BurnedRegister"))?
        }
    };
    if endpoint.as_ref() == Some(served_at) {
        return Ok(OnChain {
            uid,
            registered_now,
            announced_now: false,
        });
    }
    node.send_and_wait(hotkey, &options, |f| {
        TxKind::ServeEndpoint(ServeEndpoint {
            from: f.from,
            netuid,
            host: served_at.host.clone(),
            port: served_at.port,
            protocol: served_at.protocol.clone(),
            nonce: f.nonce,
            fee: f.fee,
        })
    })
    .await?
    .applied()?;
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
        match node.status().await.map(|s| s.height) {
            Ok(h) => {
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
