//! mycel-chain: the consensus wiring of the mycel chain, its mempool, block building, storage and
//! sync.
//!
//! # Contract
//!
//! Guarantees:
//! - **Safety from commonware simplex**: with at most `f` faulty validators out of `3f + 1`, every
//!   node finalizes the same blocks in the same order. A block is finalized only with a quorum of
//!   ed25519 signatures from the genesis validator set.
//! - **Every block is executed by everyone**: a block carries the state root after its
//!   transactions. A proposer builds it from mempool transactions valid against the parent's
//!   post-state; a verifier re-executes it on the parent's post-state and votes only if every
//!   transaction applies, the root matches, the height and parent link up, the timestamp is later
//!   than the parent's, and the block is within the size caps. A timestamp too far ahead of the
//!   local clock is not rejected (that would make the verdict depend on the clock) but waited for.
//! - **Nothing finalized is lost**: finalized blocks come from commonware marshal, in height order,
//!   at least once. The finalizer applies each block (skipping duplicates by height), durably stores
//!   the new state snapshot and the block's receipts, and only then acknowledges the block to
//!   marshal. A crash at any point restarts from the last stored block; marshal redelivers the rest
//!   from its archive or fetches it from peers.
//! - **Transaction statuses survive restarts** for finalized transactions (a receipt journal).
//! - The mempool checks every transaction in full on entry except its nonce (which must be within a
//!   window of the sender's next), makes each sender's balance cover everything it queued, keeps
//!   per-sender nonce order, is bounded per sender, behind gaps and overall (evicting the worst
//!   sender-last transaction for a better one), expires what waits too long, and says why it
//!   refused or dropped a transaction (see the `mempool` module).
//! - A transaction a node accepts ([`Node::submit_tx`]) is relayed once to the other validators,
//!   whose mempools check it the same way, so whichever validator leads next can include it.
//!
//! Assumes: the validator set is fixed by genesis (one epoch, no reconfiguration); validators'
//! clocks are roughly synchronized (block timestamps); more than two thirds of validators are
//! honest and online for liveness.
//!
//! - **Followers** ([`start_follower`]) take finalized blocks from other nodes' sync API, accept a
//!   batch only if its finalization certificate carries a quorum of the genesis validators'
//!   signatures and its blocks link by parent hash, and apply each block only if executing it
//!   gives its state root; a new follower may start from a state snapshot whose root is a
//!   certified block's. They check submitted transactions like a validator and forward them.
//!
//! Does not: relay a transaction again to a validator that missed it (it reaches a block when a
//! validator that has it proposes), or prune block history.
//!
//! Every commonware type stays inside the `engine` module, so a commonware upgrade touches one
//! place.
//!
//! # Running a node
//!
//! A one-validator devnet: generate a key, put its public key in the genesis, start.
//!
//! ```no_run
//! use commonware_runtime::Runner as _;
//! use mycel_chain::{generate_validator_key, start_node, NodeConfig};
//!
//! let key = generate_validator_key();
//! let genesis = mycel_types::Genesis::devnet(vec![key.public_key.clone()], 0).unwrap();
//! let config = NodeConfig::new("/tmp/mycel", genesis, key.private_key, "127.0.0.1:7100".parse().unwrap(), vec![]);
//! commonware_runtime::tokio::Runner::new(config.runtime_config()).start(|context| async move {
//!     let node = start_node(context, config).await.unwrap();
//!     println!("{:?}", node.status());
//!     futures::future::pending::<()>().await;
//! });
//! ```
//!
//! A network of N validators: one key per validator, one shared genesis listing all N public keys,
//! and per validator a `NodeConfig` with its own key, data directory and `p2p_listen`, and `peers`
//! listing every other validator's public key and p2p address (validators connect only to listed
//! peers, mutually authenticated by these keys). Set `allow_private_ips` to false on a public
//! network. Every validator must use the same `block_limits`. Run each node in its own runtime
//! (process), since a runtime's storage directory holds one node.

mod config;
mod engine;
mod history;
mod journal;
mod ledger;
mod mempool;
mod node;

pub use config::{
    generate_validator_key, runtime_config, validator_public_key, BlockLimitsConfig,
    ConsensusConfig, NodeConfig, PeerConfig, ValidatorKey,
};
pub use engine::follow::{FollowerConfig, SubmitRefusal, Upstream};
pub use history::{EmissionHistory, HistoryConfig, Page};
pub use ledger::{BlockView, ChainStatus, Ledger, TxLocation, TxOutcome, TxStatus, TxView};
pub use mempool::{MempoolError, MempoolLimits, Rejection, NONCE_WINDOW};
pub use mycel_state::Account;
pub use node::{Node, SnapshotError, SyncError, SyncStatus};

/// Why the node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("invalid node configuration: {0}")]
    Config(String),
    #[error("invalid genesis: {0}")]
    Genesis(#[from] mycel_types::GenesisError),
    #[error("invalid key: {0}")]
    BadKey(String),
    #[error("genesis has no validators")]
    NoValidators,
    #[error(
        "this node's key {0} is not a genesis validator; use a validator key from the genesis file"
    )]
    NotAValidator(String),
    #[error("storage error: {0}; check the data directory's disk and permissions")]
    Storage(String),
    #[error("this node disagrees with the finalized chain: {0}")]
    Divergence(String),
}

/// Starts a validator node on commonware's tokio runtime: authenticated p2p, simplex consensus,
/// marshal, and the finalizer. Returns once everything is running.
///
/// Run it inside a runner made from [`NodeConfig::runtime_config`], so that chain data lands in the
/// configured data directory.
pub async fn start_node(
    context: commonware_runtime::tokio::Context,
    config: NodeConfig,
) -> Result<Node, ChainError> {
    engine::p2p::start(context, config).await
}

/// Starts a follower on commonware's tokio runtime: a node without a validator key that syncs
/// finalized blocks from `config.upstreams` over their HTTP API, checks each batch's certificate
/// against the genesis validators and each block's state root by executing it, serves the whole
/// node API and forwards the transactions submitted to it. Returns once it runs.
///
/// Run it inside a runner made from [`FollowerConfig::runtime_config`].
pub async fn start_follower(
    context: commonware_runtime::tokio::Context,
    config: FollowerConfig,
) -> Result<Node, ChainError> {
    engine::follow::launch_follower(context, config).await
}
