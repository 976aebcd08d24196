//! The node handle: what the RPC layer and the CLI use. No consensus types here.

use crate::{
    engine::Executed,
    journal::Journal,
    ledger::{BlockView, ChainStatus, Ledger, TipMeta, TxLocation, TxStatus},
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
        Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard,
    },
};
use tokio::sync::broadcast;

/// How many finalized blocks a slow subscriber may lag before it misses some.
const SUBSCRIBER_BACKLOG: usize = 1024;

/// Reads finalized blocks from the consensus block store.
pub(crate) trait BlockSource: Send + Sync + 'static {
    fn block(&self, height: u64) -> BoxFuture<'static, Option<BlockView>>;
    /// A block the store holds by its hash (finalized or not).
    fn block_by_hash(&self, hash: B256) -> BoxFuture<'static, Option<BlockView>>;
    /// The encoded sync batch from `from` (at most `max` blocks, up to `tip`), if the node holds
    /// block `from`.
    fn sync_batch(&self, from: u64, max: u64, tip: u64) -> BoxFuture<'static, Option<Vec<u8>>>;
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

/// Locks `mutex`, also after a panic elsewhere poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared by the node handle, the consensus application and the finalizer.
pub(crate) struct Shared {
    pub chain_id: u64,
    pub genesis_hash: B256,
    pub validators: Vec<String>,
    pub node_key: String,
    /// The consensus block time: how often a healthy chain finalizes a block.
    pub block_time_ms: u64,
    pub ledger: RwLock<Ledger>,
    pub mempool: Mutex<Mempool>,
    /// The mempool's journal on disk (none in the simulations, whose nodes have no directory).
    journal: OnceLock<Mutex<Journal>>,
    /// Executed but not yet finalized blocks, by block hash.
    pub executed: Mutex<HashMap<B256, Executed>>,
    pub blocks: broadcast::Sender<Arc<BlockView>>,
    pub counters: Counters,
    /// The lowest block height this node holds past genesis: 1, or the height of the state
    /// snapshot a follower started from.
    pub first_block: AtomicU64,
}

impl Shared {
    pub fn new(
        chain_id: u64,
        genesis_hash: B256,
        validators: Vec<String>,
        node_key: String,
        block_time_ms: u64,
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
            block_time_ms,
            ledger: RwLock::new(ledger),
            mempool: Mutex::new(mempool),
            journal: OnceLock::new(),
            executed: Mutex::new(HashMap::new()),
            blocks,
            counters,
            first_block: AtomicU64::new(1),
        }
    }

    pub fn ledger(&self) -> RwLockReadGuard<'_, Ledger> {
        self.ledger.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ledger_mut(&self) -> RwLockWriteGuard<'_, Ledger> {
        self.ledger.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn mempool(&self) -> MutexGuard<'_, Mempool> {
        lock(&self.mempool)
    }

    pub fn executed_cache(&self) -> MutexGuard<'_, HashMap<B256, Executed>> {
        lock(&self.executed)
    }

    /// Adds `tx` to the mempool, validated against the latest finalized state, and to the
    /// mempool's journal before it returns.
    pub fn submit(&self, tx: SignedTx) -> Result<B256, MempoolError> {
        let ledger = self.ledger();
        let journal = self.journal.get();
        let encoded = journal.map(|_| tx.encode());
        // Signature recovery and state checks before taking the pool's lock.
        let prechecked = Prechecked::new(tx, &ledger.state);
        let mut mempool = self.mempool();
        let result = mempool.submit_prechecked(prechecked, &ledger.state);
        if let (Ok(hash), Some(journal), Some(encoded)) = (&result, journal, encoded) {
            // Under the pool's lock, so a rewrite of the journal never misses it.
            if let Err(e) = lock(journal).append(&encoded) {
                tracing::error!(%hash, error = %e, "cannot write the mempool journal");
            }
        }
        drop(mempool);
        drop(ledger);
        result
    }

    /// Opens the mempool's journal at `path` and submits what it holds again (checked against
    /// the finalized state; what was finalized meanwhile is dropped). Returns how many of how
    /// many journaled transactions are back in the mempool.
    pub fn restore_journal(&self, path: &std::path::Path) -> std::io::Result<(usize, usize)> {
        let (journal, txs) = Journal::open(path)?;
        if self.journal.set(Mutex::new(journal)).is_err() {
            return Err(std::io::Error::other("the mempool journal is already open"));
        }
        let total = txs.len();
        let restored = txs
            .into_iter()
            .filter(|tx| self.submit(tx.clone()).is_ok())
            .count();
        self.compact_journal(true);
        Ok((restored, total))
    }

    /// Rewrites the journal with what the mempool holds, if `force` or once it holds more than
    /// twice that (and at least [`crate::journal::COMPACT_MIN_BYTES`]).
    pub fn compact_journal(&self, force: bool) {
        let Some(journal) = self.journal.get() else {
            return;
        };
        let mempool = self.mempool();
        let mut journal = lock(journal);
        if !force && journal.bytes() < crate::journal::COMPACT_MIN_BYTES {
            return;
        }
        let live: u64 = mempool
            .transactions()
            .map(|tx| 4 + tx.encoded_len as u64)
            .sum();
        if force || journal.bytes() > 2 * live {
            if let Err(e) = journal.rewrite(mempool.transactions().map(|tx| &tx.tx)) {
                tracing::error!(error = %e, "cannot rewrite the mempool journal");
            }
        }
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
    /// The node's data directory (for its disk use in the metrics), if it has one on disk.
    pub(crate) data_dir: Option<Arc<DataDir>>,
    /// The last state snapshot served to a follower.
    pub(crate) snapshots: Arc<tokio::sync::Mutex<Option<ServedSnapshot>>>,
}

/// A state snapshot as served: the height of its state and the encoded answer.
pub(crate) type ServedSnapshot = (u64, Arc<Vec<u8>>);

/// Why a node serves no sync batch.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("this node holds blocks from height {first} on (it started from a state snapshot), not block {from}; sync from a node that holds them")]
    NotHeld { from: u64, first: u64 },
}

/// Why a node serves no state snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "this node holds no certificate for its finalized state yet; try again in a few blocks"
    )]
    NotCertified,
}

/// A node's data directory and its last measured size.
pub(crate) struct DataDir {
    path: std::path::PathBuf,
    /// `(measured at, Unix ms; bytes)`: the directory is walked at most every
    /// [`DataDir::REMEASURE_MS`], however often `/metrics` is asked.
    measured: Mutex<Option<(u64, u64)>>,
}

impl DataDir {
    const REMEASURE_MS: u64 = 10_000;

    pub(crate) fn new(path: std::path::PathBuf) -> Self {
        Self {
            path,
            measured: Mutex::new(None),
        }
    }

    fn bytes(&self, now_ms: u64) -> u64 {
        let mut measured = lock(&self.measured);
        match *measured {
            Some((at, bytes)) if now_ms.saturating_sub(at) < Self::REMEASURE_MS => bytes,
            _ => {
                let bytes = directory_bytes(&self.path);
                *measured = Some((now_ms, bytes));
                bytes
            }
        }
    }
}

/// Whether a node keeps up with its chain, at a given wall-clock time: what `/health/sync`
/// answers and what the metrics' lag gauges show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncStatus {
    /// The last finalized block applied to the state (what the API serves).
    pub height: u64,
    /// The highest height consensus has finalized (applied or not yet).
    pub consensus_height: u64,
    /// Milliseconds from the last applied block's timestamp to `now` (0 if in the future).
    pub finality_lag_ms: u64,
    /// Consensus block time of this node.
    pub block_time_ms: u64,
}

impl SyncStatus {
    /// In sync: every finalized block is applied (or the one being applied), and the last one is
    /// at most [`SyncStatus::MAX_LAG_BLOCKS`] block times old.
    pub fn in_sync(&self) -> bool {
        self.consensus_height <= self.height + 1
            && self.finality_lag_ms <= self.block_time_ms.saturating_mul(Self::MAX_LAG_BLOCKS)
    }

    /// How many block times the last finalized block may be behind the clock.
    pub const MAX_LAG_BLOCKS: u64 = 10;
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

    /// The lowest height past genesis whose block this node serves: 1, or for a follower started
    /// from a state snapshot, the snapshot's height.
    pub fn first_block(&self) -> u64 {
        self.shared.first_block.load(Ordering::Relaxed)
    }

    /// The finalized block whose hash is `hash`, if this node has finalized it.
    pub async fn block_by_hash(&self, hash: B256) -> Option<BlockView> {
        let found = self.blocks.block_by_hash(hash).await?;
        // The store also holds blocks that were proposed but not finalized: only the one
        // finalized at its height counts.
        let finalized = self.block(found.height).await?;
        (finalized.hash == hash).then_some(finalized)
    }

    /// The account at `addr` in the latest finalized state.
    pub fn account(&self, addr: Address) -> Account {
        self.shared.ledger().state.account(&addr)
    }

    /// Runs `f` on the finalized ledger's indexes (an account's transactions, the payments).
    /// Keep `f` short: the finalizer waits for it.
    pub fn with_ledger<R>(&self, f: impl FnOnce(&crate::Ledger) -> R) -> R {
        f(&self.shared.ledger())
    }

    /// Runs `f` on the emission history (receipts and epoch payouts of recent blocks).
    pub fn with_emission_history<R>(&self, f: impl FnOnce(&crate::EmissionHistory) -> R) -> R {
        f(&self.shared.ledger().emission)
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

    /// The finalized transactions that did something to agent `id`, oldest first: at most
    /// `limit` from position `from`, with where they are and what they did, and how many there
    /// are in all.
    pub fn agent_txs(
        &self,
        id: u64,
        from: usize,
        limit: usize,
    ) -> (Vec<(B256, TxLocation)>, usize) {
        let ledger = self.shared.ledger();
        let all = ledger.agent_txs(id);
        let page = all
            .iter()
            .skip(from)
            .take(limit)
            .filter_map(|hash| Some((*hash, ledger.tx_location(hash)?.clone())))
            .collect();
        (page, all.len())
    }

    /// The nonce `addr` should use for its next transaction: its finalized next nonce, plus its
    /// transactions pending in this node's mempool without a gap.
    pub fn next_nonce(&self, addr: Address) -> u64 {
        let finalized = self.shared.ledger().state.next_nonce(&addr);
        self.shared.mempool().next_nonce(&addr, finalized)
    }

    /// The sync batch from `from` (`GET /v1/sync/blocks`): finalized blocks `from..=E` and the
    /// certificate of block `E`, at most `max` blocks (up to [`Node::SYNC_MAX_BATCH`]) unless the
    /// next certificate is further. Waits up to `wait` for block `from`; `None` if it did not come.
    pub async fn sync_blocks(
        &self,
        from: u64,
        max: u64,
        wait: std::time::Duration,
    ) -> Result<Option<Vec<u8>>, SyncError> {
        let first = self.first_block();
        if from < first {
            return Err(SyncError::NotHeld { from, first });
        }
        let mut blocks = self.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        while self.shared.finalized_tip().height < from {
            match tokio::time::timeout_at(deadline, blocks.recv()).await {
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return Ok(None),
            }
        }
        let tip = self.shared.finalized_tip().height;
        Ok(self.blocks.sync_batch(from, max, tip).await)
    }

    /// Most blocks one sync batch carries.
    pub const SYNC_MAX_BATCH: u64 = crate::engine::follow::MAX_BATCH;

    /// The finalized state and the batch that proves its root (`GET /v1/sync/snapshot`). One is
    /// made at a time and reused while the tip is within [`Node::SNAPSHOT_REUSE_BLOCKS`] of it, so
    /// many followers asking at once cost one.
    pub async fn sync_snapshot(&self) -> Result<Arc<Vec<u8>>, SnapshotError> {
        let mut cached = self.snapshots.lock().await;
        let tip = self.shared.finalized_tip().height;
        if let Some((height, bytes)) = cached.as_ref() {
            if height.saturating_add(Self::SNAPSHOT_REUSE_BLOCKS) >= tip {
                return Ok(bytes.clone());
            }
        }
        let (state, tip) = {
            let ledger = self.shared.ledger();
            (ledger.state.clone(), ledger.tip)
        };
        let batch = self
            .blocks
            .sync_batch(tip.height, Self::SYNC_MAX_BATCH, tip.height.max(1))
            .await
            .ok_or(SnapshotError::NotCertified)?;
        let encoded = tokio::task::spawn_blocking(move || {
            crate::engine::follow::encode_snapshot(&state.to_snapshot_bytes(), batch)
        })
        .await
        .expect("encoding a snapshot does not panic");
        let encoded = Arc::new(encoded);
        *cached = Some((tip.height, encoded.clone()));
        Ok(encoded)
    }

    /// How many blocks old a served snapshot may be before a new one is made.
    pub const SNAPSHOT_REUSE_BLOCKS: u64 = 64;

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

    /// Where the node stands at wall-clock time `now_ms` (Unix ms).
    pub fn sync_status(&self, now_ms: u64) -> SyncStatus {
        let tip = self.shared.finalized_tip();
        SyncStatus {
            height: tip.height,
            consensus_height: self.shared.counters.consensus_tip.load(Ordering::Relaxed),
            finality_lag_ms: now_ms.saturating_sub(tip.timestamp_ms),
            block_time_ms: self.shared.block_time_ms,
        }
    }

    /// Prometheus text at wall-clock time `now_ms`: the consensus runtime's metrics, this
    /// crate's counters, how far behind the clock the chain is, and the data directory's size.
    pub fn metrics(&self, now_ms: u64) -> String {
        let mut out = (self.runtime_metrics)();
        // p2p keeps one `network_tracker_directory_connected{peer=…}` series per connected peer.
        let peers = out
            .lines()
            .filter(|line| line.starts_with("network_tracker_directory_connected{"))
            .count();
        let c = &self.shared.counters;
        let sync = self.sync_status(now_ms);
        let disk = self.data_dir.as_deref().map(|dir| dir.bytes(now_ms));
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
            sync.height,
        );
        metric(
            "consensus_finalized_height",
            "gauge",
            "Highest finalized height known to consensus.",
            sync.consensus_height,
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
        metric(
            "finality_lag_ms",
            "gauge",
            "Milliseconds from the last finalized block's timestamp to now.",
            sync.finality_lag_ms,
        );
        metric(
            "in_sync",
            "gauge",
            "1 if every finalized block is applied and the last is at most 10 block times old.",
            u64::from(sync.in_sync()),
        );
        metric(
            "validators",
            "gauge",
            "Validators in the genesis set.",
            self.shared.validators.len() as u64,
        );
        metric(
            "peers_connected",
            "gauge",
            "Validators this node has a p2p connection to.",
            peers as u64,
        );
        if let Some(bytes) = disk {
            metric(
                "data_dir_bytes",
                "gauge",
                "Bytes of the files under the node's data directory.",
                bytes,
            );
        }
        out
    }
}

/// The total size of the files under `dir` (what cannot be read counts 0).
fn directory_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(entry.path()),
                Ok(kind) if kind.is_file() => {
                    total += entry.metadata().map_or(0, |m| m.len());
                }
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(height: u64, consensus_height: u64, finality_lag_ms: u64) -> SyncStatus {
        SyncStatus {
            height,
            consensus_height,
            finality_lag_ms,
            block_time_ms: 1_000,
        }
    }

    #[test]
    fn in_sync_needs_applied_blocks_and_a_recent_tip() {
        assert!(at(10, 10, 0).in_sync());
        // The block being applied right now does not count as behind.
        assert!(at(10, 11, 900).in_sync());
        assert!(at(10, 10, 10_000).in_sync());
        // Two finalized blocks not applied: the node lags consensus.
        assert!(!at(10, 12, 0).in_sync());
        // The chain has not finalized for more than 10 block times.
        assert!(!at(10, 10, 10_001).in_sync());
    }

    #[test]
    fn the_data_directory_is_measured_at_most_every_ten_seconds() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("a"), [0u8; 100]).expect("write");
        std::fs::write(dir.path().join("sub").join("b"), [0u8; 23]).expect("write");
        let data = DataDir::new(dir.path().to_path_buf());
        assert_eq!(data.bytes(1_000), 123);
        std::fs::write(dir.path().join("c"), [0u8; 7]).expect("write");
        // Within 10 s: the last measurement, however often it is asked.
        assert_eq!(data.bytes(10_999), 123);
        assert_eq!(data.bytes(11_000), 130);
    }
}
