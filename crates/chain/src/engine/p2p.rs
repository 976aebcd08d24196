//! Production networking: commonware's authenticated `lookup` p2p (encrypted, mutually
//! authenticated with the validators' ed25519 keys, addresses from the node config) on the tokio
//! runtime.

use super::{
    block::BlockLimits, launch, max_message_size, parse_private_key, parse_public_key,
    validator_keys, Channels, EngineConfig, Timeouts, CHANNEL_BACKFILL, CHANNEL_BROADCAST,
    CHANNEL_CERTIFICATES, CHANNEL_RESOLVER, CHANNEL_TXS, CHANNEL_VOTES,
};
use crate::{engine::application::BlockRules, ChainError, Node, NodeConfig};
use commonware_cryptography::{ed25519, ChaCha20Poly1305, Signer};
use commonware_p2p::{authenticated::lookup, Address, AddressableManager};
use commonware_runtime::{tokio, Quota, Supervisor};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{ordered::Map, NZUsize, NZU32};
use std::time::Duration;
use tracing::info;

/// Capacity of the p2p actors' mailboxes. Each slot is preallocated (~15 KiB for the router), so
/// this is memory, not just a bound: 256 slots is ~4 MiB, where 4,096 was ~60 MiB.
const P2P_MAILBOX_SIZE: std::num::NonZeroUsize = NZUsize!(256);

/// Starts p2p, consensus, marshal and the finalizer for `config` on the tokio runtime.
pub(crate) async fn start(context: tokio::Context, config: NodeConfig) -> Result<Node, ChainError> {
    config.validate()?;
    let signer = parse_private_key(&config.validator_key)?;
    let me = signer.public_key();
    let validators = validator_keys(&config.genesis)?;
    let limits = BlockLimits {
        max_txs: config.block_limits.max_block_txs,
        max_tx_bytes: config.genesis.max_tx_bytes as usize,
    };

    // Peers: ourselves plus every configured peer with an address.
    let mut peers: Vec<(ed25519::PublicKey, Address)> =
        vec![(me.clone(), config.p2p_listen.into())];
    for peer in &config.peers {
        let key = parse_public_key(&peer.public_key)?;
        if key != me {
            peers.push((key, peer.address.into()));
        }
    }
    let peer_count = peers.len().max(validators.len());
    let peers: Map<ed25519::PublicKey, Address> = Map::try_from(peers)
        .map_err(|_| ChainError::Config("a peer is listed twice in `peers`".into()))?;

    let handshake = Cups::<_, ChaCha20Poly1305>::new(
        Sake {
            signer,
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let namespace = super::namespace(&config.genesis);
    let max_message = max_message_size(validators.len(), &limits);
    let p2p_config = if config.allow_private_ips {
        lookup::Config::local(
            handshake,
            &namespace,
            config.p2p_listen,
            NZUsize!(peer_count.max(1)),
            max_message,
            P2P_MAILBOX_SIZE,
        )
    } else {
        lookup::Config::recommended(
            handshake,
            &namespace,
            config.p2p_listen,
            NZUsize!(peer_count.max(1)),
            max_message,
            P2P_MAILBOX_SIZE,
        )
    };
    let (mut network, mut oracle) = lookup::Network::new(context.child("network"), p2p_config);
    let _ = oracle.track(0, peers);

    let quota = Quota::per_second(NZU32!(10_000));
    let channels = Channels {
        votes: network.register(CHANNEL_VOTES, quota),
        certificates: network.register(CHANNEL_CERTIFICATES, quota),
        resolver: network.register(CHANNEL_RESOLVER, quota),
        broadcast: network.register(CHANNEL_BROADCAST, quota),
        backfill: network.register(CHANNEL_BACKFILL, quota),
        txs: network.register(CHANNEL_TXS, quota),
    };
    network.start();
    info!(listen = %config.p2p_listen, peers = config.peers.len(), "p2p started");

    let consensus = &config.consensus;
    let engine_config = EngineConfig {
        signer: parse_private_key(&config.validator_key)?,
        genesis: config.genesis.clone(),
        partition_prefix: "mycel".into(),
        rules: BlockRules {
            block_time_ms: consensus.block_time_ms,
            max_block_txs: config.block_limits.max_block_txs,
            max_block_bytes: config.block_limits.max_block_bytes,
            max_future_skew_ms: consensus.max_future_skew_ms,
        },
        limits,
        mempool: config.mempool,
        history: config.history,
        timeouts: Timeouts {
            leader: Duration::from_millis(consensus.leader_timeout_ms),
            certification: Duration::from_millis(consensus.certification_timeout_ms),
            timeout_retry: Duration::from_millis(consensus.timeout_retry_ms),
            fetch: Duration::from_millis(consensus.fetch_timeout_ms),
            view_retention: consensus.view_retention,
        },
        mailbox_size: NZUsize!(1024),
        freezer_table_initial_size: 2u32.pow(16),
        snapshot_every: std::num::NonZeroU64::new(config.snapshot_every_blocks)
            .ok_or_else(|| ChainError::Config("snapshot_every_blocks must be at least 1".into()))?,
        proposer: super::Proposer::Honest,
    };
    let mut node = launch(
        context.child("node"),
        engine_config,
        oracle.clone(),
        oracle,
        channels,
    )
    .await?;
    node.data_dir = Some(std::sync::Arc::new(crate::node::DataDir::new(
        config.data_dir.clone(),
    )));
    // Transactions accepted before the last stop (or crash) come back.
    let journal = config.data_dir.join("mempool.journal");
    match node.shared.restore_journal(&journal) {
        Ok((restored, total)) if total > 0 => {
            info!(
                restored,
                journaled = total,
                "mempool restored from its journal"
            )
        }
        Ok(_) => {}
        Err(e) => {
            return Err(crate::ChainError::Storage(format!(
                "cannot open the mempool journal {}: {e}",
                journal.display()
            )))
        }
    }
    Ok(node)
}
