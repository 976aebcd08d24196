//! Node configuration (serde, so `mycel init` can write it as TOML or JSON) and validator keys.

use crate::{engine, mempool::MempoolLimits, ChainError};
use mycel_types::Genesis;
use serde::{Deserialize, Serialize};
use std::{fmt, net::SocketAddr, path::PathBuf};

/// A validator peer: its ed25519 public key (hex) and where it listens for p2p.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    pub public_key: String,
    pub address: SocketAddr,
}

/// Consensus timing. The defaults suit a LAN or a single machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsensusConfig {
    /// Target time between blocks: a proposer waits this long after its parent's timestamp.
    /// Must be below `leader_timeout_ms`.
    pub block_time_ms: u64,
    /// How long validators wait for a proposal before voting to skip the leader.
    pub leader_timeout_ms: u64,
    /// How long validators wait for a notarized block to certify; above `leader_timeout_ms`.
    pub certification_timeout_ms: u64,
    /// How often a stalled view rebroadcasts its timeout vote.
    pub timeout_retry_ms: u64,
    /// Timeout of a request for missing blocks or certificates.
    pub fetch_timeout_ms: u64,
    /// Views of consensus activity kept for peers that lag.
    pub view_retention: u64,
    /// How far a block timestamp may be ahead of the local clock before verification waits.
    pub max_future_skew_ms: u64,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self {
            block_time_ms: 1_000,
            leader_timeout_ms: 2_000,
            certification_timeout_ms: 3_000,
            timeout_retry_ms: 10_000,
            fetch_timeout_ms: 2_000,
            view_retention: 256,
            max_future_skew_ms: 2_000,
        }
    }
}

/// Block size caps (consensus rules: every validator must use the same values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlockLimitsConfig {
    pub max_block_txs: usize,
    pub max_block_bytes: usize,
}

impl Default for BlockLimitsConfig {
    fn default() -> Self {
        // 5,000 transfers a block at one block a second (a transfer is ~400 bytes).
        Self {
            max_block_txs: 5_000,
            max_block_bytes: 4 << 20,
        }
    }
}

/// Everything a validator node needs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Where the chain keeps its data (give the same directory to
    /// [`NodeConfig::runtime_config`]).
    pub data_dir: PathBuf,
    /// The chain's genesis; its validators are the consensus validator set.
    pub genesis: Genesis,
    /// This validator's ed25519 private key (32-byte seed, hex). Secret: never logged.
    pub validator_key: String,
    /// Where p2p listens.
    pub p2p_listen: SocketAddr,
    /// The other validators and their p2p addresses.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Accept peers on private/loopback addresses (a local network). Off for public networks.
    #[serde(default)]
    pub allow_private_ips: bool,
    #[serde(default)]
    pub consensus: ConsensusConfig,
    #[serde(default)]
    pub block_limits: BlockLimitsConfig,
    #[serde(default)]
    pub mempool: MempoolLimits,
    /// How much emission history the node keeps for the API and the explorer.
    #[serde(default)]
    pub history: crate::HistoryConfig,
    /// The finalized state is written whole every this many blocks (each block's receipts are
    /// written as it is finalized); a restart applies the blocks after the last snapshot again
    /// from the block archive. 1 writes the whole state after every block.
    #[serde(default = "default_snapshot_every_blocks")]
    pub snapshot_every_blocks: u64,
}

fn default_snapshot_every_blocks() -> u64 {
    32
}

impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfig")
            .field("data_dir", &self.data_dir)
            .field("genesis", &self.genesis)
            .field("validator_key", &"<secret>")
            .field("p2p_listen", &self.p2p_listen)
            .field("peers", &self.peers)
            .field("allow_private_ips", &self.allow_private_ips)
            .field("consensus", &self.consensus)
            .field("block_limits", &self.block_limits)
            .field("mempool", &self.mempool)
            .field("history", &self.history)
            .field("snapshot_every_blocks", &self.snapshot_every_blocks)
            .finish()
    }
}

impl NodeConfig {
    /// A config with default consensus, block and mempool settings.
    pub fn new(
        data_dir: impl Into<PathBuf>,
        genesis: Genesis,
        validator_key: String,
        p2p_listen: SocketAddr,
        peers: Vec<PeerConfig>,
    ) -> Self {
        Self {
            data_dir: data_dir.into(),
            genesis,
            validator_key,
            p2p_listen,
            peers,
            allow_private_ips: true,
            consensus: ConsensusConfig::default(),
            block_limits: BlockLimitsConfig::default(),
            mempool: MempoolLimits::default(),
            history: crate::HistoryConfig::default(),
            snapshot_every_blocks: default_snapshot_every_blocks(),
        }
    }

    /// Checks what can be checked before starting.
    pub fn validate(&self) -> Result<(), ChainError> {
        self.genesis.validate()?;
        let key = validator_public_key(&self.validator_key)?;
        if !self
            .genesis
            .validators
            .iter()
            .any(|v| v.strip_prefix("0x").unwrap_or(v).eq_ignore_ascii_case(&key))
        {
            return Err(ChainError::NotAValidator(key));
        }
        let c = &self.consensus;
        if c.block_time_ms >= c.leader_timeout_ms {
            return Err(ChainError::Config(format!(
                "consensus.block_time_ms ({}) must be below consensus.leader_timeout_ms ({})",
                c.block_time_ms, c.leader_timeout_ms
            )));
        }
        if c.certification_timeout_ms <= c.leader_timeout_ms {
            return Err(ChainError::Config(
                "consensus.certification_timeout_ms must be above consensus.leader_timeout_ms"
                    .into(),
            ));
        }
        if c.timeout_retry_ms == 0 || c.fetch_timeout_ms == 0 || c.view_retention == 0 {
            return Err(ChainError::Config(
                "consensus.timeout_retry_ms, fetch_timeout_ms and view_retention must be above zero"
                    .into(),
            ));
        }
        if self.snapshot_every_blocks == 0 {
            return Err(ChainError::Config(
                "snapshot_every_blocks must be at least 1 (1: after every block)".into(),
            ));
        }
        let b = &self.block_limits;
        if b.max_block_txs == 0 || b.max_block_bytes < self.genesis.max_tx_bytes as usize {
            return Err(ChainError::Config(format!(
                "block_limits must admit at least one transaction of genesis.max_tx_bytes ({})",
                self.genesis.max_tx_bytes
            )));
        }
        let m = &self.mempool;
        if m.max_txs == 0 || m.max_per_sender == 0 || m.ttl_blocks == 0 {
            return Err(ChainError::Config(
                "mempool.max_txs, max_per_sender and ttl_blocks must be above zero".into(),
            ));
        }
        if m.max_gapped_per_sender > m.max_per_sender {
            return Err(ChainError::Config(format!(
                "mempool.max_gapped_per_sender ({}) must be at most mempool.max_per_sender ({})",
                m.max_gapped_per_sender, m.max_per_sender
            )));
        }
        Ok(())
    }

    /// The tokio runtime configuration for this node: chain storage under `data_dir/chain`.
    pub fn runtime_config(&self) -> commonware_runtime::tokio::Config {
        runtime_config(&self.data_dir)
    }
}

/// The tokio runtime configuration of a node (validator or follower) whose data directory is
/// `data_dir`: chain storage under `data_dir/chain`.
pub fn runtime_config(data_dir: &std::path::Path) -> commonware_runtime::tokio::Config {
    commonware_runtime::tokio::Config::new().with_storage_directory(data_dir.join("chain"))
}

/// A freshly generated validator key pair (hex).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorKey {
    /// Secret: store with 0600 permissions, never log.
    pub private_key: String,
    pub public_key: String,
}

impl fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorKey")
            .field("private_key", &"<secret>")
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// Generates a validator key from the operating system's randomness.
pub fn generate_validator_key() -> ValidatorKey {
    use rand::RngCore;
    loop {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        if let Ok(public_key) = validator_public_key(&hex::encode(seed)) {
            return ValidatorKey {
                private_key: hex::encode(seed),
                public_key,
            };
        }
    }
}

/// The public key (hex) of a validator private key (hex).
pub fn validator_public_key(private_key: &str) -> Result<String, ChainError> {
    engine::public_key_of(private_key)
}
