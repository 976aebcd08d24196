//! Followers: nodes without a validator key that take finalized blocks from other nodes over
//! their HTTP API, check each batch's finalization certificate against the genesis validator set
//! and every block's state root by executing it, and serve the whole node API from their own copy.
//!
//! The sync protocol (docs/node-api.md, "Sync"):
//! - `GET /v1/sync/blocks?from=H&max=N&wait_ms=W`: finalized blocks `H..=E` and the finalization
//!   certificate of block `E`, the highest height up to `H + N - 1` whose certificate the node
//!   holds (blocks below it are linked to it by their parent hashes). Waits up to `W` ms for block
//!   `H`; nothing yet is `204 No Content`.
//! - `GET /v1/sync/snapshot`: the serving node's finalized state at its tip `S`, and a batch from
//!   `S` proving the state root of block `S`. A new follower starts there instead of at genesis.
//!
//! Encodings (commonware codec): a batch is `(version: u8, tip: u64, blocks: Vec<Block>,
//! finalization)`; a snapshot is `(version: u8, state: Vec<u8>, batch: Vec<u8>)`, the state in
//! the snapshot format of `mycel_state::State`.

use super::{
    block::digest_to_b256, block::Block, block::BlockLimits, block_view, genesis_block, namespace,
    open_archives, open_ledger, store::Store, validator_keys, BlockArchive, Finalization,
    FinalizationArchive, LedgerConfig, Scheme, PAGE_CACHE_CAPACITY, PAGE_CACHE_PAGE_SIZE,
};
use crate::{
    ledger::{BlockView, TipMeta},
    node::{BlockSource, DataDir, Node, Shared},
    ChainError, HistoryConfig, MempoolLimits,
};
use commonware_codec::{Decode, Encode, RangeCfg};
use commonware_cryptography::{certificate::Verifier as _, sha256::Digest, Digested, Digestible};
use commonware_parallel::Sequential;
use commonware_runtime::{buffer::paged::CacheRef, Clock, Metrics, Spawner, Storage};
use commonware_storage::archive::{Archive as _, Identifier};
use commonware_utils::ordered::Set;
use futures::{future::BoxFuture, lock::Mutex as AsyncMutex, StreamExt};
use mycel_state::State;
use mycel_types::{Genesis, SignedTx, B256};
use std::{
    num::NonZeroU64,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};
use tracing::{debug, error, info, warn};

/// Encoding version of batches and snapshots.
const VERSION: u8 = 1;
/// Most blocks one batch carries.
pub(crate) const MAX_BATCH: u64 = 256;
/// How far past the requested range a server looks for a certificate to end the batch at.
const MAX_CERTIFICATE_SCAN: u64 = 1_024;
/// Largest state a follower accepts from a peer.
const MAX_SNAPSHOT_BYTES: usize = 4 << 30;
/// Blocks a follower asks for at once.
const FOLLOW_BATCH: u64 = 128;
/// How long a follower's request waits for the next block at the upstream.
const FOLLOW_WAIT_MS: u64 = 10_000;
/// Pause after an upstream failed before the next one is asked.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Pause after an upstream had nothing new, before asking again.
const IDLE_PAUSE: Duration = Duration::from_millis(50);
/// Transactions forwarded to the validators at once.
const FORWARD_CONCURRENCY: usize = 32;
/// Transactions waiting to be forwarded; beyond this a submission is refused locally.
const FORWARD_QUEUE: usize = 4_096;

/// Why an upstream did not take a forwarded transaction.
#[derive(Debug, Clone)]
pub enum SubmitRefusal {
    /// The node answered and refused it (its mempool's code and reason).
    Refused { code: String, message: String },
    /// The node could not be reached, or answered something else.
    Unreachable(String),
}

/// A node a follower syncs from and forwards transactions to (in practice its HTTP API; see
/// `mycel node --follow`).
pub trait Upstream: Send + Sync + 'static {
    /// Where it is, for logs.
    fn name(&self) -> String;
    /// An encoded batch starting at `from` (`GET /v1/sync/blocks`), `None` if it has no block
    /// `from` after waiting `wait_ms`.
    fn blocks(
        &self,
        from: u64,
        max: u64,
        wait_ms: u64,
    ) -> BoxFuture<'static, Result<Option<Vec<u8>>, String>>;
    /// An encoded snapshot (`GET /v1/sync/snapshot`).
    fn snapshot(&self) -> BoxFuture<'static, Result<Vec<u8>, String>>;
    /// Submits a transaction (`POST /v1/txs`).
    fn submit(&self, tx: SignedTx) -> BoxFuture<'static, Result<(), SubmitRefusal>>;
}

/// Everything a follower needs.
pub struct FollowerConfig {
    /// Where it keeps its copy of the chain (give the same directory to
    /// [`FollowerConfig::runtime_config`]).
    pub data_dir: PathBuf,
    /// The chain's genesis: its validators are who must certify every block.
    pub genesis: Genesis,
    /// The chain's block time (for the health endpoint's idea of "in sync").
    pub block_time_ms: u64,
    /// The largest block the validators build (the decoder's bound).
    pub max_block_txs: usize,
    pub mempool: MempoolLimits,
    pub history: HistoryConfig,
    pub snapshot_every_blocks: u64,
    /// Start a new follower from an upstream's state snapshot instead of replaying from genesis.
    pub state_sync: bool,
    /// Nodes to sync from, tried in turn.
    pub upstreams: Vec<Arc<dyn Upstream>>,
}

impl FollowerConfig {
    /// The tokio runtime configuration for this follower: chain storage under `data_dir/chain`.
    pub fn runtime_config(&self) -> commonware_runtime::tokio::Config {
        crate::runtime_config(&self.data_dir)
    }
}

/// Finalized blocks and their certificates, by height.
pub(crate) trait Certified: Send + Sync {
    fn certified_block(&self, height: u64) -> BoxFuture<'_, Option<Arc<Block>>>;
    fn finalization(&self, height: u64) -> BoxFuture<'_, Option<Finalization>>;
}

/// The batch answering `GET /v1/sync/blocks?from&max` on a node whose applied tip is `tip`.
pub(crate) async fn serve_batch(
    source: &dyn Certified,
    from: u64,
    max: u64,
    tip: u64,
) -> Option<Vec<u8>> {
    if from == 0 || from > tip {
        return None;
    }
    let wanted = tip.min(from.saturating_add(max.clamp(1, MAX_BATCH) - 1));
    // The highest certified height in range, else the next one above it: blocks finalized only as
    // ancestors of a later block have no certificate of their own.
    let candidates = (from..=wanted)
        .rev()
        .chain(wanted + 1..=tip.min(wanted + MAX_CERTIFICATE_SCAN));
    let mut end = None;
    for height in candidates {
        if let Some(f) = source.finalization(height).await {
            end = Some((height, f));
            break;
        }
    }
    let (end, finalization) = end?;
    let mut blocks = Vec::with_capacity((end - from + 1) as usize);
    for height in from..=end {
        blocks.push(source.certified_block(height).await?);
    }
    Some((VERSION, tip, blocks, finalization).encode().to_vec())
}

/// Blocks of a batch whose certificate and links checked out.
pub(crate) struct VerifiedBatch {
    /// The serving node's tip when it answered.
    pub tip: u64,
    pub blocks: Vec<Digested<Block>>,
    pub finalization: Finalization,
}

/// Checks the validators' signatures on a batch and the hash links of its blocks.
pub(crate) struct BatchVerifier {
    scheme: Scheme,
    limits: BlockLimits,
}

impl BatchVerifier {
    pub(crate) fn new(genesis: &Genesis, limits: BlockLimits) -> Result<Self, ChainError> {
        let validators = validator_keys(genesis)?;
        let participants = Set::from_iter_dedup(validators);
        Ok(Self {
            scheme: Scheme::verifier(&namespace(genesis), participants),
            limits,
        })
    }

    /// Decodes and checks `bytes`: the certificate is a quorum of the validators' signatures on
    /// the last block, each block's parent is the block before it, and the first block is at
    /// `from` on top of `parent` (when given).
    pub(crate) fn verify(
        &self,
        bytes: Vec<u8>,
        from: Option<(u64, B256)>,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<VerifiedBatch, String> {
        let cfg = (
            (),
            (),
            (
                RangeCfg::from(1..=MAX_BATCH as usize + MAX_CERTIFICATE_SCAN as usize),
                self.limits,
            ),
            self.scheme.certificate_codec_config(),
        );
        let (version, tip, blocks, finalization) =
            <(u8, u64, Vec<Block>, Finalization)>::decode_cfg(bytes, &cfg)
                .map_err(|e| format!("the batch does not decode: {e}"))?;
        if version != VERSION {
            return Err(format!(
                "batch version {version}, this node reads {VERSION}"
            ));
        }
        let blocks: Vec<Digested<Block>> = blocks
            .into_iter()
            .map(|b| {
                let digest = b.digest();
                Digested::precomputed(b, digest)
            })
            .collect();
        let last = blocks.last().ok_or("the batch has no blocks")?;
        if finalization.proposal.payload != last.digest() {
            return Err(format!(
                "the certificate is for block {}, not the batch's last block {}",
                digest_to_b256(&finalization.proposal.payload),
                digest_to_b256(&last.digest())
            ));
        }
        if !finalization.verify(rng, &self.scheme, &Sequential) {
            return Err(
                "the finalization certificate does not verify against the genesis validators"
                    .into(),
            );
        }
        for pair in blocks.windows(2) {
            let (parent, child) = (&pair[0], &pair[1]);
            if child.inner().height.get() != parent.inner().height.get() + 1
                || child.inner().parent != parent.digest()
            {
                return Err(format!(
                    "block {} does not follow block {} in the batch",
                    child.inner().height.get(),
                    parent.inner().height.get()
                ));
            }
        }
        if let Some((height, parent)) = from {
            let first = blocks[0].inner();
            if first.height.get() != height || digest_to_b256(&first.parent) != parent {
                return Err(format!(
                    "the batch starts at block {} with parent {}, not at {height} on {parent}",
                    first.height.get(),
                    digest_to_b256(&first.parent)
                ));
            }
        }
        if tip < last.inner().height.get() {
            return Err(format!(
                "the batch claims a tip {tip} below its own last block {}",
                last.inner().height.get()
            ));
        }
        Ok(VerifiedBatch {
            tip,
            blocks,
            finalization,
        })
    }
}

/// Encodes a snapshot answer: `state` (snapshot bytes) and the batch proving its root.
pub(crate) fn encode_snapshot(state: &[u8], batch: Vec<u8>) -> Vec<u8> {
    (VERSION, state.to_vec(), batch).encode().to_vec()
}

/// The follower's copy of the finalized blocks and their certificates (marshal's layout, so the
/// same directory could later run marshal).
struct Archives<E: Storage + Clock + Metrics> {
    inner: AsyncMutex<Option<(FinalizationArchive<E>, BlockArchive<E>)>>,
}

impl<E: Storage + Clock + Metrics> Archives<E> {
    async fn get_block(&self, id: Identifier<'_, Digest>) -> Option<Arc<Block>> {
        let inner = self.inner.lock().await;
        let (_, blocks) = inner.as_ref()?;
        blocks.get(id).await.ok().flatten()
    }

    /// The lowest height archived.
    async fn first_index(&self) -> Option<u64> {
        let inner = self.inner.lock().await;
        let (_, blocks) = inner.as_ref()?;
        blocks.first_index()
    }

    /// Durably stores the blocks of a batch and its certificate.
    async fn put(&self, batch: &VerifiedBatch) -> Result<(), ChainError> {
        let failed = |e: commonware_storage::archive::Error| {
            ChainError::Storage(format!("writing the block archive: {e}"))
        };
        let mut inner = self.inner.lock().await;
        let (mut finalizations, mut blocks) = inner
            .take()
            .ok_or_else(|| ChainError::Storage("the block archive failed earlier".into()))?;
        for block in &batch.blocks {
            blocks = blocks
                .put(
                    block.inner().height.get(),
                    block.digest(),
                    &block.inner_shared(),
                )
                .await
                .map_err(failed)?;
        }
        let last = batch.blocks.last().expect("a verified batch has blocks");
        finalizations = finalizations
            .put(
                last.inner().height.get(),
                last.digest(),
                &batch.finalization,
            )
            .await
            .map_err(failed)?;
        let blocks = blocks.sync().await.map_err(failed)?;
        let finalizations = finalizations.sync().await.map_err(failed)?;
        *inner = Some((finalizations, blocks));
        Ok(())
    }
}

impl<E: Storage + Clock + Metrics> Certified for Archives<E> {
    fn certified_block(&self, height: u64) -> BoxFuture<'_, Option<Arc<Block>>> {
        Box::pin(self.get_block(Identifier::Index(height)))
    }

    fn finalization(&self, height: u64) -> BoxFuture<'_, Option<Finalization>> {
        Box::pin(async move {
            let inner = self.inner.lock().await;
            let (finalizations, _) = inner.as_ref()?;
            finalizations
                .get(Identifier::Index(height))
                .await
                .ok()
                .flatten()
        })
    }
}

/// The node API's view of a follower's blocks.
struct FollowerBlocks<E: Storage + Clock + Metrics> {
    archives: Arc<Archives<E>>,
    shared: Arc<Shared>,
    /// Followers do not archive the genesis block.
    genesis: Arc<Block>,
}

impl<E: Storage + Clock + Metrics> BlockSource for FollowerBlocks<E> {
    fn block(&self, height: u64) -> BoxFuture<'static, Option<BlockView>> {
        let archives = self.archives.clone();
        let shared = self.shared.clone();
        let genesis = self.genesis.clone();
        Box::pin(async move {
            let block = if height == 0 {
                genesis
            } else {
                archives.get_block(Identifier::Index(height)).await?
            };
            Some(block_view(&block, &shared.ledger()))
        })
    }

    fn block_by_hash(&self, hash: B256) -> BoxFuture<'static, Option<BlockView>> {
        let archives = self.archives.clone();
        let shared = self.shared.clone();
        let genesis = self.genesis.clone();
        Box::pin(async move {
            let digest = Digest(hash.0);
            let block = if genesis.digest() == digest {
                genesis
            } else {
                archives.get_block(Identifier::Key(&digest)).await?
            };
            Some(block_view(&block, &shared.ledger()))
        })
    }

    fn sync_batch(&self, from: u64, max: u64, tip: u64) -> BoxFuture<'static, Option<Vec<u8>>> {
        let archives = self.archives.clone();
        Box::pin(async move { serve_batch(archives.as_ref(), from, max, tip).await })
    }
}

/// Starts a follower: restores its state, fetches a snapshot if asked and it has none, applies
/// the blocks it archived past its snapshot, then syncs from its upstreams and forwards the
/// transactions submitted to it.
pub(crate) async fn launch_follower<E>(context: E, cfg: FollowerConfig) -> Result<Node, ChainError>
where
    E: Clock + Spawner + Storage + Metrics + rand_core::CryptoRng,
{
    if cfg.upstreams.is_empty() {
        return Err(ChainError::Config(
            "a follower needs at least one node to follow".into(),
        ));
    }
    let snapshot_every = NonZeroU64::new(cfg.snapshot_every_blocks)
        .ok_or_else(|| ChainError::Config("snapshot_every_blocks must be at least 1".into()))?;
    let genesis = cfg.genesis;
    genesis.validate()?;
    let limits = BlockLimits {
        max_txs: cfg.max_block_txs,
        max_tx_bytes: genesis.max_tx_bytes as usize,
    };
    let verifier = BatchVerifier::new(&genesis, limits)?;
    let prefix = "mycel";
    let page_cache = CacheRef::new(PAGE_CACHE_PAGE_SIZE, PAGE_CACHE_CAPACITY);
    let ledger_config = LedgerConfig {
        history: cfg.history,
        snapshot_every,
        mempool: cfg.mempool,
        block_time_ms: cfg.block_time_ms,
    };
    // Built once: with a large genesis the state and its root take seconds. A follower has no
    // validator key: its status reports an empty node key.
    let (genesis_block, genesis_state) = genesis_block(&genesis)?;
    let (mut store, shared) = open_ledger(
        &context,
        prefix,
        &page_cache,
        ledger_config,
        &genesis,
        (&genesis_block, genesis_state),
        String::new(),
    )
    .await?;
    let (finalizations, blocks) =
        open_archives(&context, prefix, 2u32.pow(16), &page_cache, limits).await?;
    let archives = Arc::new(Archives {
        inner: AsyncMutex::new(Some((finalizations, blocks))),
    });
    let mut rng = context.child("state_sync");

    if cfg.state_sync && shared.finalized_tip().height == 0 {
        state_sync(
            &mut store,
            &shared,
            &archives,
            &verifier,
            &cfg.upstreams,
            &mut rng,
        )
        .await?;
    }
    if let Some(first) = archives.first_index().await {
        shared
            .first_block
            .store(first.max(1), std::sync::atomic::Ordering::Relaxed);
    }
    // Blocks archived after the last snapshot (a restart between snapshots).
    let from = shared.finalized_tip().height + 1;
    let mut next = from;
    while let Some(block) = archives.get_block(Identifier::Index(next)).await {
        let digest = block.digest();
        super::apply_finalized(
            &mut store,
            &shared,
            &Digested::precomputed(block, digest),
            true,
        )
        .await?;
        next += 1;
    }
    if next > from {
        info!(
            from,
            to = next - 1,
            "applied the archived blocks after the last state snapshot"
        );
    }
    shared.set_consensus_tip(shared.finalized_tip().height);

    let upstreams = cfg.upstreams;
    let names: Vec<String> = upstreams.iter().map(|u| u.name()).collect();
    info!(upstreams = ?names, height = shared.finalized_tip().height, "following");
    let sync = Syncer {
        store,
        shared: shared.clone(),
        archives: archives.clone(),
        verifier,
        upstreams: upstreams.clone(),
    };
    context
        .child("follow")
        .spawn(move |context| sync.run(context));

    // Submissions are checked here, then forwarded to the validators.
    let (forward_tx, forward_rx) = futures::channel::mpsc::channel::<SignedTx>(FORWARD_QUEUE);
    let forward_shared = shared.clone();
    context.child("forward").spawn(move |_| async move {
        forward_rx
            .for_each_concurrent(FORWARD_CONCURRENCY, |tx| {
                forward(tx, forward_shared.clone(), upstreams.clone())
            })
            .await
    });
    let forward_tx = std::sync::Mutex::new(forward_tx);
    let gossip = move |tx: &SignedTx| {
        let mut sender = forward_tx.lock().unwrap_or_else(|e| e.into_inner());
        if sender.try_send(tx.clone()).is_err() {
            warn!(hash = %tx.hash(), "the forwarding queue is full; the transaction stays here until it expires");
        }
    };

    let metrics_context = context.child("metrics");
    Ok(Node {
        shared: shared.clone(),
        blocks: Arc::new(FollowerBlocks {
            archives,
            shared,
            genesis: Arc::new(genesis_block),
        }),
        runtime_metrics: Arc::new(move || metrics_context.encode()),
        gossip: Arc::new(gossip),
        data_dir: Some(Arc::new(DataDir::new(cfg.data_dir))),
        snapshots: Default::default(),
    })
}

/// Fetches a snapshot from the first upstream that serves one that verifies, and installs it.
async fn state_sync<E: Storage + Clock + Metrics>(
    store: &mut Store<E>,
    shared: &Shared,
    archives: &Archives<E>,
    verifier: &BatchVerifier,
    upstreams: &[Arc<dyn Upstream>],
    rng: &mut impl rand_core::CryptoRng,
) -> Result<(), ChainError> {
    let mut reasons = Vec::new();
    for upstream in upstreams {
        let started = Instant::now();
        let bytes = match upstream.snapshot().await {
            Ok(bytes) => bytes,
            Err(e) => {
                warn!(upstream = %upstream.name(), "no state snapshot: {e}");
                reasons.push(format!("{}: {e}", upstream.name()));
                continue;
            }
        };
        let size = bytes.len();
        match verify_snapshot(bytes, verifier, rng) {
            Ok((state, batch)) => {
                let first = batch.blocks[0].clone();
                let block = first.inner();
                let tip = TipMeta {
                    height: block.height.get(),
                    hash: digest_to_b256(&first.digest()),
                    timestamp_ms: block.timestamp_ms,
                    state_root: block.state_root,
                    receipts_len: 0,
                    emission_len: 0,
                    epochs_len: 0,
                };
                archives.put(&batch).await?;
                let tip = store.write_snapshot(&state, tip).await?;
                {
                    let mut ledger = shared.ledger_mut();
                    ledger.state = state;
                    ledger.tip = tip;
                }
                info!(
                    upstream = %upstream.name(),
                    height = tip.height,
                    state_root = %tip.state_root,
                    bytes = size,
                    seconds = started.elapsed().as_secs_f64(),
                    "state synced from a snapshot; blocks before it are not served here"
                );
                return Ok(());
            }
            Err(e) => {
                warn!(upstream = %upstream.name(), "refused its state snapshot: {e}");
                reasons.push(format!("{}: {e}", upstream.name()));
            }
        }
    }
    Err(ChainError::Config(format!(
        "state sync failed: no upstream served a snapshot that verifies ({})",
        reasons.join("; ")
    )))
}

/// Checks a snapshot: its batch's certificate and links, and that the state's root is the root
/// of the batch's first block. Returns the state and the batch.
fn verify_snapshot(
    bytes: Vec<u8>,
    verifier: &BatchVerifier,
    rng: &mut impl rand_core::CryptoRng,
) -> Result<(State, VerifiedBatch), String> {
    let cfg = (
        (),
        (RangeCfg::from(..=MAX_SNAPSHOT_BYTES), ()),
        (RangeCfg::from(..=MAX_SNAPSHOT_BYTES), ()),
    );
    let (version, state, batch) = <(u8, Vec<u8>, Vec<u8>)>::decode_cfg(bytes, &cfg)
        .map_err(|e| format!("the snapshot does not decode: {e}"))?;
    if version != VERSION {
        return Err(format!(
            "snapshot version {version}, this node reads {VERSION}"
        ));
    }
    let batch = verifier.verify(batch, None, rng)?;
    let root = batch.blocks[0].inner().state_root;
    let state = State::from_peer_snapshot(&state, root).map_err(|e| format!("the state: {e}"))?;
    Ok((state, batch))
}

/// The follower's sync loop.
struct Syncer<E: Storage + Clock + Metrics> {
    store: Store<E>,
    shared: Arc<Shared>,
    archives: Arc<Archives<E>>,
    verifier: BatchVerifier,
    upstreams: Vec<Arc<dyn Upstream>>,
}

impl<E: Storage + Clock + Metrics> Syncer<E> {
    async fn run<C: Clock + rand_core::CryptoRng>(mut self, mut context: C) {
        let mut current = 0usize;
        let mut failing: Option<String> = None;
        let mut progress = (Instant::now(), self.shared.finalized_tip().height);
        loop {
            let upstream = self.upstreams[current % self.upstreams.len()].clone();
            let tip = self.shared.finalized_tip();
            let answer = upstream
                .blocks(tip.height + 1, FOLLOW_BATCH, FOLLOW_WAIT_MS)
                .await;
            let problem = match answer {
                Ok(None) => {
                    // Nothing new. A pause, so a node that answers at once cannot make this loop
                    // spin.
                    context.sleep(IDLE_PAUSE).await;
                    None
                }
                Ok(Some(bytes)) => {
                    match self.verifier.verify(
                        bytes,
                        Some((tip.height + 1, tip.hash)),
                        &mut context,
                    ) {
                        Ok(batch) => match self.apply(batch).await {
                            Ok(()) => None,
                            Err(e) => {
                                error!(%e, "cannot apply a certified batch; this follower stops");
                                return;
                            }
                        },
                        Err(e) => Some(format!("sent a batch that does not verify: {e}")),
                    }
                }
                Err(e) => Some(e),
            };
            match problem {
                None => {
                    if let Some(was) = failing.take() {
                        info!(upstream = %upstream.name(), "syncing again (was: {was})");
                    }
                }
                Some(problem) => {
                    if failing.as_ref() != Some(&problem) {
                        warn!(upstream = %upstream.name(), "{problem}; trying the next upstream");
                    }
                    failing = Some(problem);
                    current += 1;
                    context.sleep(RETRY_PAUSE).await;
                }
            }
            let height = self.shared.finalized_tip().height;
            if progress.0.elapsed() >= Duration::from_secs(5) {
                let behind = self
                    .shared
                    .counters
                    .consensus_tip
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .saturating_sub(height);
                if behind > 0 {
                    let rate = (height - progress.1) as f64 / progress.0.elapsed().as_secs_f64();
                    info!(height, behind, blocks_per_s = rate as u64, "catching up");
                }
                progress = (Instant::now(), height);
            }
        }
    }

    /// Archives a verified batch, then executes and applies its blocks in order (each must reach
    /// its block's state root).
    async fn apply(&mut self, batch: VerifiedBatch) -> Result<(), ChainError> {
        self.shared.set_consensus_tip(batch.tip);
        self.archives.put(&batch).await?;
        for block in &batch.blocks {
            super::apply_finalized(&mut self.store, &self.shared, block, false).await?;
        }
        debug!(
            to = self.shared.finalized_tip().height,
            blocks = batch.blocks.len(),
            "applied a certified batch"
        );
        Ok(())
    }
}

/// Hands a transaction accepted here to the first upstream that takes it; if all refuse or none
/// answers, it is dropped here with the reason.
async fn forward(tx: SignedTx, shared: Arc<Shared>, upstreams: Vec<Arc<dyn Upstream>>) {
    let hash = tx.hash();
    let mut unreachable = Vec::new();
    for upstream in &upstreams {
        match upstream.submit(tx.clone()).await {
            Ok(()) => return,
            Err(SubmitRefusal::Refused { code, .. }) if code == "already_known" => return,
            Err(SubmitRefusal::Refused { code, message }) => {
                debug!(%hash, upstream = %upstream.name(), %code, "forwarded transaction refused");
                shared
                    .mempool()
                    .refused_upstream(&hash, &format!("refused by {}: {message}", upstream.name()));
                return;
            }
            Err(SubmitRefusal::Unreachable(e)) => {
                unreachable.push(format!("{}: {e}", upstream.name()))
            }
        }
    }
    warn!(%hash, "no upstream took the transaction: {}", unreachable.join("; "));
    shared.mempool().refused_upstream(
        &hash,
        &format!(
            "not forwarded: no validator could be reached ({})",
            unreachable.join("; ")
        ),
    );
}
