//! The node handle: what the RPC layer and the CLI use. No consensus types here.

use crate::{
    engine::Executed,
    ledger::{BlockView, ChainStatus, Ledger, TipMeta, TxStatus},
    mempool::{Mempool, MempoolError, Prechecked},
};
use futures::future::BoxFuture;
use mycel_state::{Account, State};
use mycel_types::{Address, SignedTx, B256};
use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
    },
};
use tokio::sync::broadcast;

/// How many finalized blocks a slow subscriber may lag before it misses some.
const SUBSCRIBER_BACKLOG: usize = 1024;

/// Reads finalized blocks from the consensus block store.
pub(crate) trait BlockSource: Send + Sync + 'static {
    fn block(&self, height: u64) -> BoxFuture<'static, Option<BlockView>>;
}

/// Counters this crate adds to the runtime's metrics.
#[derive(Default)]
pub(crate) struct Counters {
    pub txs_submitted: AtomicU64,
    pub txs_rejected: AtomicU64,
    pub txs_finalized: AtomicU64,
    pub blocks_finalized: AtomicU64,
    pub consensus_tip: AtomicU64,
}

/// State shared by the node handle, the consensus application and the finalizer.
pub(crate) struct Shared {
    pub chain_id: u64,
    pub genesis_hash: B256,
    pub validators: Vec<String>,
    pub node_key: String,
    pub ledger: RwLock<Ledger>,
    pub mempool: Mutex<Mempool>,
    /// Executed but not yet finalized blocks, by block hash.
    pub executed: Mutex<HashMap<B256, Executed>>,
    pub blocks: broadcast::Sender<Arc<BlockView>>,
    pub counters: Counters,
}

impl Shared {
    pub fn new(
        chain_id: u64,
        genesis_hash: B256,
        validators: Vec<String>,
        node_key: String,
        ledger: Ledger,
        mempool: Mempool,
    ) -> Self {
        let (blocks, _) = broadcast::channel(SUBSCRIBER_BACKLOG);
        let counters = Counters::default();
        counters
            .consensus_tip
            .store(ledger.tip.height, Ordering::Relaxed);
        Self {
            chain_id,
            genesis_hash,
            validators,
            node_key,
            ledger: RwLock::new(ledger),
            mempool: Mutex::new(mempool),
            executed: Mutex::new(HashMap::new()),
            blocks,
            counters,
        }
    }

    pub fn ledger(&self) -> RwLockReadGuard<'_, Ledger> {
        self.ledger.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ledger_mut(&self) -> RwLockWriteGuard<'_, Ledger> {
        self.ledger.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn mempool(&self) -> MutexGuard<'_, Mempool> {
        self.mempool.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn executed_cache(&self) -> MutexGuard<'_, HashMap<B256, Executed>> {
        self.executed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `tx` to the mempool, validated against the latest finalized state.
    pub fn submit(&self, tx: SignedTx) -> Result<B256, MempoolError> {
        let ledger = self.ledger();
        // Signature recovery and state checks before taking the pool's lock.
        let prechecked = Prechecked::new(tx, &ledger.state);
        let result = self.mempool().submit_prechecked(prechecked, &ledger.state);
        drop(ledger);
        result
    }

    pub fn finalized_tip(&self) -> TipMeta {
        self.ledger().tip
    }

    pub fn finalized_state(&self) -> State {
        self.ledger().state.clone()
    }

    pub fn select_txs(
        &self,
        parent_state: &State,
        max_txs: usize,
        max_bytes: usize,
    ) -> Vec<mycel_state::VerifiedTx> {
        self.mempool().select(parent_state, max_txs, max_bytes)
    }

    /// See [`Mempool::reject_in_block`].
    pub fn reject_in_block(&self, hash: &B256, err: &mycel_state::TxError) {
        self.mempool().reject_in_block(hash, err)
    }
}

/// A running node. Cheap to clone; every clone talks to the same node.
#[derive(Clone)]
pub struct Node {
    pub(crate) shared: Arc<Shared>,
    pub(crate) blocks: Arc<dyn BlockSource>,
    pub(crate) runtime_metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// Relays an accepted transaction to the other validators.
    pub(crate) gossip: Arc<dyn Fn(&SignedTx) + Send + Sync>,
}

impl Node {
    /// Validates `tx` against the latest finalized state and the sender's pending transactions, adds
    /// it to the mempool and relays it to the other validators (so whoever leads next can include
    /// it). Returns the transaction hash.
    pub fn submit_tx(&self, tx: SignedTx) -> Result<B256, MempoolError> {
        let result = self.shared.submit(tx.clone());
        match &result {
            Ok(hash) => {
                self.shared
                    .counters
                    .txs_submitted
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%hash, "transaction accepted");
                (self.gossip)(&tx);
            }
            Err(err) => {
                self.shared
                    .counters
                    .txs_rejected
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%err, "transaction refused");
            }
        }
        result
    }

    /// Where the transaction `hash` is: pending, finalized (with its result), rejected, or unknown.
    pub fn tx_status(&self, hash: B256) -> TxStatus {
        if let Some(location) = self.shared.ledger().tx_location(&hash) {
            return TxStatus::Finalized {
                height: location.height,
                index: location.index,
                result: location.result.clone(),
            };
        }
        let mempool = self.shared.mempool();
        if mempool.contains(&hash) {
            return TxStatus::Pending;
        }
        if let Some(rejection) = mempool.rejection(&hash) {
            return TxStatus::Rejected {
                code: rejection.code.to_string(),
                reason: rejection.reason.clone(),
            };
        }
        TxStatus::Unknown
    }

    /// The finalized block at `height` (0 is genesis), if this node has finalized it.
    pub async fn block(&self, height: u64) -> Option<BlockView> {
        if height > self.shared.finalized_tip().height {
            return None;
        }
        self.blocks.block(height).await
    }

    /// The account at `addr` in the latest finalized state.
    pub fn account(&self, addr: Address) -> Account {
        self.shared.ledger().state.account(&addr)
    }

    /// A copy of the latest finalized state.
    pub fn finalized_state(&self) -> State {
        self.shared.finalized_state()
    }

    /// Runs `f` on the latest finalized state without copying it. Keep `f` short: the finalizer
    /// waits while it runs.
    pub fn with_finalized_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.shared.ledger().state)
    }

    /// The nonce `addr` should use for its next transaction: its finalized next nonce, plus its
    /// transactions pending in this node's mempool without a gap.
    pub fn next_nonce(&self, addr: Address) -> u64 {
        let finalized = self.shared.ledger().state.next_nonce(&addr);
        self.shared.mempool().next_nonce(&addr, finalized)
    }

    /// Chain and node summary.
    pub fn status(&self) -> ChainStatus {
        let tip = self.shared.finalized_tip();
        ChainStatus {
            chain_id: self.shared.chain_id,
            genesis_hash: self.shared.genesis_hash,
            latest_height: tip.height,
            latest_hash: tip.hash,
            latest_timestamp_ms: tip.timestamp_ms,
            state_root: tip.state_root,
            validators: self.shared.validators.clone(),
            node_key: self.shared.node_key.clone(),
            mempool_size: self.shared.mempool().len(),
        }
    }

    /// Every block finalized from now on, in height order. A receiver that lags more than 1024
    /// blocks gets `RecvError::Lagged` and should re-read what it missed with [`Node::block`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BlockView>> {
        self.shared.blocks.subscribe()
    }

    /// Prometheus text: the consensus runtime's metrics and this crate's counters.
    pub fn metrics(&self) -> String {
        let mut out = (self.runtime_metrics)();
        let c = &self.shared.counters;
        let tip = self.shared.finalized_tip();
        let (pool, (evicted, expired)) = {
            let mempool = self.shared.mempool();
            (mempool.len(), mempool.dropped_totals())
        };
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP mycel_{name} {help}");
            let _ = writeln!(out, "# TYPE mycel_{name} {kind}");
            let _ = writeln!(out, "mycel_{name} {value}");
        };
        metric(
            "finalized_height",
            "gauge",
            "Height of the last applied finalized block.",
            tip.height,
        );
        metric(
            "consensus_finalized_height",
            "gauge",
            "Highest finalized height known to consensus.",
            c.consensus_tip.load(Ordering::Relaxed),
        );
        metric(
            "mempool_size",
            "gauge",
            "Transactions waiting in the mempool.",
            pool as u64,
        );
        metric(
            "mempool_evicted_total",
            "counter",
            "Transactions evicted from the full mempool by better ones.",
            evicted,
        );
        metric(
            "mempool_expired_total",
            "counter",
            "Transactions dropped from the mempool after waiting ttl_blocks blocks.",
            expired,
        );
        metric(
            "txs_submitted_total",
            "counter",
            "Transactions accepted into the mempool.",
            c.txs_submitted.load(Ordering::Relaxed),
        );
        metric(
            "txs_rejected_total",
            "counter",
            "Transactions refused by the mempool.",
            c.txs_rejected.load(Ordering::Relaxed),
        );
        metric(
            "txs_finalized_total",
            "counter",
            "Transactions in blocks finalized since start.",
            c.txs_finalized.load(Ordering::Relaxed),
        );
        metric(
            "blocks_finalized_total",
            "counter",
            "Blocks finalized since start.",
            c.blocks_finalized.load(Ordering::Relaxed),
        );
        out
    }
}
