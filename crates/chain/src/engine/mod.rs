//! The adapter to commonware: every commonware type mycel uses lives under this module, so a
//! commonware upgrade touches only here.
//!
//! Wiring (as in commonware's alto): buffered broadcast (block dissemination) → immutable archives
//! (finalized blocks and finalizations) → marshal (ordered, at-least-once delivery of finalized
//! blocks, with backfill from peers) → [`application::Application`] (propose/verify by
//! execution) wrapped by marshal's `Deferred` → simplex consensus (ed25519 signatures).

pub(crate) mod application;
pub(crate) mod block;
pub(crate) mod follow;
pub(crate) mod p2p;
mod store;

#[cfg(test)]
mod byzantine;
#[cfg(test)]
mod tests;

use crate::{
    ledger::{tx_views, BlockReceipts, BlockView, Ledger, TipMeta, TxLocation, TxOutcome},
    mempool::{Mempool, MempoolLimits},
    node::{BlockSource, Node, Shared},
    ChainError,
};
use application::{Application, BlockRules, Finalized};
pub(crate) use application::{Executed, Proposer};
use block::{digest_to_b256, Block, BlockLimits};
use commonware_broadcast::buffered;
use commonware_consensus::{
    marshal::{
        self,
        core::{Actor as MarshalActor, Mailbox as MarshalMailbox},
        resolver::p2p as marshal_p2p,
        standard::{Deferred, Standard},
        Identifier,
    },
    simplex::{self, elector::RoundRobin},
    types::{Epoch, FixedEpocher, Height, ViewDelta},
    Heightable,
};
use commonware_cryptography::{
    certificate::ConstantProvider,
    ed25519,
    sha256::{Digest, Sha256},
    Digested, Digestible, Signer,
};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{
    buffer::paged::{page_size, CacheRef},
    Clock, Metrics, Spawner, Storage,
};
use commonware_storage::archive::immutable;
use commonware_utils::{ordered::Set, NZDuration, NZUsize, NZU64};
use futures::{channel::mpsc, future::BoxFuture, StreamExt};
use mycel_state::State;
use mycel_types::{Genesis, B256};
use std::{
    num::{NonZero, NonZeroUsize},
    sync::{atomic::Ordering, Arc},
    time::Duration,
};
use tracing::{debug, error, info, warn};

/// The consensus signing scheme: one ed25519 signature per validator per vote.
pub(crate) type Scheme = simplex::scheme::ed25519::Scheme;

/// mycel runs a single epoch with a fixed validator set (from genesis).
const EPOCH: Epoch = Epoch::zero();
const EPOCH_LENGTH: NonZero<u64> = NZU64!(u64::MAX);

const PRUNABLE_ITEMS_PER_SECTION: NonZero<u64> = NZU64!(4_096);
const IMMUTABLE_ITEMS_PER_SECTION: NonZero<u64> = NZU64!(262_144);
const FREEZER_TABLE_RESIZE_FREQUENCY: u8 = 4;
const FREEZER_TABLE_RESIZE_CHUNK_SIZE: u32 = 2u32.pow(16);
const FREEZER_JOURNAL_TARGET_SIZE: u64 = 1024 * 1024 * 1024;
const FREEZER_JOURNAL_COMPRESSION: Option<u8> = Some(3);
const REPLAY_BUFFER: NonZero<usize> = NZUsize!(8 * 1024 * 1024);
const WRITE_BUFFER: NonZero<usize> = NZUsize!(1024 * 1024);
const PAGE_CACHE_PAGE_SIZE: NonZero<u16> = page_size(4_096);
/// 8 MiB of 4 KiB pages (commonware allocates the whole cache up front).
const PAGE_CACHE_CAPACITY: NonZero<usize> = NZUsize!(2_048);
const MAX_REPAIR: NonZero<usize> = NZUsize!(20);
const MAX_PENDING_ACKS: NonZero<usize> = NZUsize!(16);
const DEQUE_SIZE: usize = 10;
/// Executed-but-unfinalized states kept for building and verifying children.
const MAX_EXECUTED: usize = 1_024;

/// p2p channel numbers.
pub(crate) const CHANNEL_VOTES: u64 = 0;
pub(crate) const CHANNEL_CERTIFICATES: u64 = 1;
pub(crate) const CHANNEL_RESOLVER: u64 = 2;
pub(crate) const CHANNEL_BROADCAST: u64 = 3;
pub(crate) const CHANNEL_BACKFILL: u64 = 4;
pub(crate) const CHANNEL_TXS: u64 = 5;

/// Consensus timing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub leader: Duration,
    pub certification: Duration,
    pub timeout_retry: Duration,
    pub fetch: Duration,
    pub view_retention: u64,
}

/// Everything the engine needs, in commonware terms.
pub(crate) struct EngineConfig {
    pub signer: ed25519::PrivateKey,
    pub genesis: Genesis,
    pub partition_prefix: String,
    pub rules: BlockRules,
    pub limits: BlockLimits,
    pub mempool: MempoolLimits,
    pub timeouts: Timeouts,
    pub mailbox_size: NonZeroUsize,
    /// Freezer table size of the block archives (small in tests: the deterministic runtime keeps
    /// storage in memory).
    pub freezer_table_initial_size: u32,
    /// How much emission history the ledger keeps.
    pub history: crate::HistoryConfig,
    /// The finalized state is written whole every this many blocks.
    pub snapshot_every: NonZero<u64>,
    /// Honest, except in the Byzantine simulations.
    pub proposer: Proposer,
}

/// The five p2p channels the engine uses.
pub(crate) struct Channels<S, R> {
    pub votes: (S, R),
    pub certificates: (S, R),
    pub resolver: (S, R),
    pub broadcast: (S, R),
    pub backfill: (S, R),
    /// Transaction relay between mempools.
    pub txs: (S, R),
}

/// The consensus namespace: binds every signature to this chain.
pub(crate) fn namespace(genesis: &Genesis) -> Vec<u8> {
    let mut ns = b"mycel-consensus-".to_vec();
    ns.extend_from_slice(genesis.hash().as_slice());
    ns
}

/// Parses an ed25519 public key from hex (with or without `0x`).
pub(crate) fn parse_public_key(hex_key: &str) -> Result<ed25519::PublicKey, ChainError> {
    use commonware_codec::DecodeExt;
    let raw = hex_key.strip_prefix("0x").unwrap_or(hex_key);
    let bytes =
        hex::decode(raw).map_err(|_| ChainError::BadKey(format!("'{hex_key}' is not hex")))?;
    ed25519::PublicKey::decode(bytes)
        .map_err(|_| ChainError::BadKey(format!("'{hex_key}' is not an ed25519 public key")))
}

/// Parses an ed25519 private key (32-byte seed, hex).
pub(crate) fn parse_private_key(hex_key: &str) -> Result<ed25519::PrivateKey, ChainError> {
    use commonware_codec::DecodeExt;
    let raw = hex_key.strip_prefix("0x").unwrap_or(hex_key);
    let bytes = hex::decode(raw)
        .map_err(|_| ChainError::BadKey("the validator private key is not hex".into()))?;
    ed25519::PrivateKey::decode(bytes).map_err(|_| {
        ChainError::BadKey("the validator private key is not a 32-byte ed25519 key".into())
    })
}

/// The public key (hex) of a private key (hex).
pub(crate) fn public_key_of(private_key: &str) -> Result<String, ChainError> {
    Ok(public_key_hex(
        &parse_private_key(private_key)?.public_key(),
    ))
}

pub(crate) fn public_key_hex(key: &ed25519::PublicKey) -> String {
    hex::encode(key.as_ref())
}

#[allow(dead_code)]
pub(crate) fn private_key_hex(key: &ed25519::PrivateKey) -> String {
    use commonware_codec::Encode;
    hex::encode(key.encode())
}

/// The validator set of `genesis`, in genesis order.
pub(crate) fn validator_keys(genesis: &Genesis) -> Result<Vec<ed25519::PublicKey>, ChainError> {
    genesis
        .validators
        .iter()
        .map(|v| parse_public_key(v))
        .collect()
}

/// The genesis block and state of `genesis`.
pub(crate) fn genesis_block(genesis: &Genesis) -> Result<(Block, State), ChainError> {
    let validators = validator_keys(genesis)?;
    let first = validators
        .first()
        .cloned()
        .ok_or(ChainError::NoValidators)?;
    let mut state = State::from_genesis(genesis);
    let root = state.state_root();
    Ok((
        Block::genesis(genesis.hash(), genesis.genesis_time_ms, root, first),
        state,
    ))
}

/// Builds the API view of a finalized block.
pub(crate) fn block_view(block: &Block, ledger: &Ledger) -> BlockView {
    BlockView {
        height: block.height.get(),
        hash: digest_to_b256(&block.digest()),
        parent: digest_to_b256(&block.parent),
        timestamp_ms: block.timestamp_ms,
        state_root: block.state_root,
        proposer: (block.height.get() > 0).then(|| public_key_hex(&block.context.leader)),
        view: block.context.round.view().get(),
        txs: tx_views(block.txs.iter(), ledger),
    }
}

impl Shared {
    pub(crate) fn executed(&self, digest: &Digest) -> Option<Executed> {
        self.executed_cache().get(&digest_to_b256(digest)).cloned()
    }

    pub(crate) fn cache_executed(&self, digest: Digest, executed: Executed) {
        let finalized = self.finalized_tip().height;
        let mut cache = self.executed_cache();
        if cache.len() >= MAX_EXECUTED {
            cache.retain(|_, e| e.height > finalized);
            if cache.len() >= MAX_EXECUTED {
                // Every entry can be rebuilt from the ancestry; dropping them only costs time.
                cache.clear();
            }
        }
        cache.insert(digest_to_b256(&digest), executed);
    }

    pub(crate) fn set_consensus_tip(&self, height: u64) {
        self.counters
            .consensus_tip
            .fetch_max(height, Ordering::Relaxed);
    }
}

struct MarshalBlocks {
    mailbox: MarshalMailbox<Scheme, Standard<Block>>,
    shared: Arc<Shared>,
}

impl BlockSource for MarshalBlocks {
    fn block(&self, height: u64) -> BoxFuture<'static, Option<BlockView>> {
        let mailbox = self.mailbox.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let block = mailbox
                .get_block(Identifier::Height(Height::new(height)))
                .await?;
            let ledger = shared.ledger();
            Some(block_view(block.inner(), &ledger))
        })
    }

    fn block_by_hash(&self, hash: B256) -> BoxFuture<'static, Option<BlockView>> {
        let mailbox = self.mailbox.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let digest = commonware_cryptography::sha256::Digest(hash.0);
            let block = mailbox.get_block(Identifier::Digest(digest)).await?;
            let ledger = shared.ledger();
            Some(block_view(block.inner(), &ledger))
        })
    }

    fn sync_batch(&self, from: u64, max: u64, tip: u64) -> BoxFuture<'static, Option<Vec<u8>>> {
        let certified = MarshalCertified(self.mailbox.clone());
        Box::pin(async move { follow::serve_batch(&certified, from, max, tip).await })
    }
}

/// Marshal's archives, read through its mailbox.
struct MarshalCertified(MarshalMailbox<Scheme, Standard<Block>>);

impl follow::Certified for MarshalCertified {
    fn certified_block(&self, height: u64) -> BoxFuture<'_, Option<Arc<Block>>> {
        Box::pin(async move {
            let block = self
                .0
                .get_block(Identifier::Height(Height::new(height)))
                .await?;
            Some(block.inner_shared())
        })
    }

    fn finalization(&self, height: u64) -> BoxFuture<'_, Option<Finalization>> {
        Box::pin(self.0.get_finalization(Height::new(height)))
    }
}

fn immutable_config<C>(
    prefix: &str,
    name: &str,
    freezer_table_initial_size: u32,
    page_cache: &CacheRef,
    codec_config: C,
) -> immutable::Config<C> {
    immutable::Config {
        metadata_partition: format!("{prefix}-{name}-metadata"),
        freezer_table_partition: format!("{prefix}-{name}-freezer-table"),
        freezer_table_initial_size,
        freezer_table_resize_frequency: FREEZER_TABLE_RESIZE_FREQUENCY,
        freezer_table_resize_chunk_size: FREEZER_TABLE_RESIZE_CHUNK_SIZE,
        freezer_key_partition: format!("{prefix}-{name}-freezer-key"),
        freezer_key_page_cache: page_cache.clone(),
        freezer_key_write_buffer: WRITE_BUFFER,
        freezer_value_partition: format!("{prefix}-{name}-freezer-value"),
        freezer_value_write_buffer: WRITE_BUFFER,
        freezer_value_target_size: FREEZER_JOURNAL_TARGET_SIZE,
        freezer_value_compression: FREEZER_JOURNAL_COMPRESSION,
        ordinal_partition: format!("{prefix}-{name}-ordinal"),
        ordinal_write_buffer: WRITE_BUFFER,
        items_per_section: IMMUTABLE_ITEMS_PER_SECTION,
        codec_config,
        replay_buffer: REPLAY_BUFFER,
    }
}

/// A finalization certificate: a quorum of the validators' signatures on a block's digest.
pub(crate) type Finalization = simplex::types::Finalization<Scheme, Digest>;
/// The archive of finalizations by height, as marshal keeps it.
pub(crate) type FinalizationArchive<E> = immutable::Archive<E, Digest, Finalization>;
/// The archive of finalized blocks by height, as marshal keeps it.
pub(crate) type BlockArchive<E> = immutable::Archive<E, Digest, Arc<Block>>;

/// What [`open_ledger`] needs of a node's configuration.
#[derive(Clone, Copy)]
struct LedgerConfig {
    history: crate::HistoryConfig,
    snapshot_every: NonZero<u64>,
    mempool: MempoolLimits,
    block_time_ms: u64,
}

/// Opens the finalized ledger a node starts from (its last snapshot, or genesis), with the
/// receipts and emission history stored since, and the state the node shares between its tasks.
async fn open_ledger<E: Storage + Clock + Metrics>(
    context: &E,
    prefix: &str,
    page_cache: &CacheRef,
    cfg: LedgerConfig,
    genesis: &Genesis,
    (genesis_block, genesis_state): (&Block, State),
    node_key: String,
) -> Result<(store::Store<E>, Arc<Shared>), ChainError> {
    let (mut store, recovered) = store::Store::open(
        context.child("ledger"),
        prefix,
        page_cache.clone(),
        cfg.history,
        cfg.snapshot_every,
    )
    .await?;
    store.check_genesis(genesis.hash()).await?;
    let (state, tip) = match recovered.snapshot {
        Some((state, tip)) => {
            info!(height = tip.height, hash = %tip.hash, "restored finalized state");
            (state, tip)
        }
        None => {
            let mut state = genesis_state;
            let tip = TipMeta {
                height: 0,
                hash: digest_to_b256(&genesis_block.digest()),
                timestamp_ms: genesis_block.timestamp_ms,
                state_root: state.state_root(),
                receipts_len: 0,
                emission_len: 0,
                epochs_len: 0,
            };
            (state, tip)
        }
    };
    let mut ledger = Ledger::new(state, tip);
    ledger.emission = crate::EmissionHistory::new(cfg.history);
    for receipts in &recovered.receipts {
        ledger.index_block(receipts);
    }
    for emission in &recovered.emission {
        ledger.emission.record(emission);
    }
    let shared = Arc::new(Shared::new(
        genesis.chain_id,
        genesis.hash(),
        genesis.validators.clone(),
        node_key,
        cfg.block_time_ms,
        ledger,
        Mempool::new(cfg.mempool),
    ));
    Ok((store, shared))
}

/// Opens the archives of finalized blocks and their finalizations (marshal's, on a validator).
async fn open_archives<E: Storage + Clock + Metrics>(
    context: &E,
    prefix: &str,
    freezer_table_initial_size: u32,
    page_cache: &CacheRef,
    limits: BlockLimits,
) -> Result<(FinalizationArchive<E>, BlockArchive<E>), ChainError> {
    let finalizations = immutable::Archive::init(
        context.child("finalizations_by_height"),
        immutable_config(
            prefix,
            "finalizations-by-height",
            freezer_table_initial_size,
            page_cache,
            <Scheme as commonware_cryptography::certificate::Verifier>::certificate_codec_config_unbounded(),
        ),
    )
    .await
    .map_err(|e| ChainError::Storage(format!("opening the finalization archive: {e}")))?;
    let blocks = immutable::Archive::init(
        context.child("finalized_blocks"),
        immutable_config(
            prefix,
            "finalized-blocks",
            freezer_table_initial_size,
            page_cache,
            limits,
        ),
    )
    .await
    .map_err(|e| ChainError::Storage(format!("opening the block archive: {e}")))?;
    Ok((finalizations, blocks))
}

/// The largest p2p message the engine sends, for sizing the network.
pub(crate) fn max_message_size(validators: usize, limits: &BlockLimits) -> u32 {
    let marshal = marshal::max_payload_size::<Standard<Block>, Scheme>(validators as u32, limits);
    let consensus = simplex::max_payload_size::<Scheme, Digest>(validators as u32);
    // Room for channel framing.
    u32::try_from(marshal.max(consensus) + 1024).unwrap_or(u32::MAX)
}

/// Starts the node's consensus engine and finalizer on `context` with the given network.
pub(crate) async fn launch<E, S, R, P, B>(
    context: E,
    cfg: EngineConfig,
    provider: P,
    blocker: B,
    channels: Channels<S, R>,
) -> Result<Node, ChainError>
where
    E: Clock + Spawner + Storage + Metrics + rand_core::CryptoRng,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    P: Provider<PublicKey = ed25519::PublicKey>,
    B: Blocker<PublicKey = ed25519::PublicKey>,
{
    let genesis = cfg.genesis;
    let me = cfg.signer.public_key();
    let validators = validator_keys(&genesis)?;
    if !validators.contains(&me) {
        return Err(ChainError::NotAValidator(public_key_hex(&me)));
    }
    let participants = Set::from_iter_dedup(validators.iter().cloned());
    let namespace = namespace(&genesis);
    let scheme = Scheme::signer(&namespace, participants, cfg.signer.clone())
        .ok_or_else(|| ChainError::NotAValidator(public_key_hex(&me)))?;
    // Built once: with a large genesis the state and its root take seconds.
    let (genesis_block, genesis_state) = genesis_block(&genesis)?;
    let genesis_digest = genesis_block.digest();
    let prefix = cfg.partition_prefix;

    let page_cache = CacheRef::new(PAGE_CACHE_PAGE_SIZE, PAGE_CACHE_CAPACITY);
    let ledger_config = LedgerConfig {
        history: cfg.history,
        snapshot_every: cfg.snapshot_every,
        mempool: cfg.mempool,
        block_time_ms: cfg.rules.block_time_ms,
    };
    let (store, shared) = open_ledger(
        &context,
        &prefix,
        &page_cache,
        ledger_config,
        &genesis,
        (&genesis_block, genesis_state),
        public_key_hex(&me),
    )
    .await?;
    let mut store = store;

    // Block dissemination.
    let (buffer, buffer_mailbox) = buffered::Engine::new(
        context.child("buffer"),
        buffered::Config {
            public_key: me.clone(),
            mailbox_size: cfg.mailbox_size,
            deque_size: DEQUE_SIZE,
            priority: true,
            codec_config: cfg.limits,
            peer_provider: provider.clone(),
            strategy: Sequential,
        },
    );

    let (finalizations_by_height, finalized_blocks) = open_archives(
        &context,
        &prefix,
        cfg.freezer_table_initial_size,
        &page_cache,
        cfg.limits,
    )
    .await?;

    // Marshal.
    let epocher = FixedEpocher::new(EPOCH_LENGTH);
    let (marshal_actor, marshal_mailbox, _floor) = MarshalActor::init(
        context.child("marshal"),
        finalizations_by_height,
        finalized_blocks,
        marshal::Config {
            provider: ConstantProvider::new(scheme.clone()),
            epocher: epocher.clone(),
            start: marshal::Start::Genesis(Digested::precomputed(
                genesis_block.clone(),
                genesis_digest,
            )),
            partition_prefix: prefix.clone(),
            mailbox_size: cfg.mailbox_size,
            view_retention: ViewDelta::new(cfg.timeouts.view_retention.saturating_mul(10)),
            prunable_items_per_section: PRUNABLE_ITEMS_PER_SECTION,
            page_cache: page_cache.clone(),
            replay_buffer: REPLAY_BUFFER,
            key_write_buffer: WRITE_BUFFER,
            value_write_buffer: WRITE_BUFFER,
            block_codec_config: cfg.limits,
            max_repair: MAX_REPAIR,
            max_pending_acks: MAX_PENDING_ACKS,
            strategy: Sequential,
        },
    )
    .await;

    // Application, wrapped by marshal's deferred verification.
    let (finalized_tx, finalized_rx) = mpsc::unbounded();
    let app = Application::new(shared.clone(), cfg.rules, finalized_tx, cfg.proposer);
    let marshaled = Deferred::new(
        context.child("marshaled"),
        app.clone(),
        marshal_mailbox.clone(),
        epocher,
    );

    // Consensus.
    let consensus = simplex::Engine::new(
        context.child("consensus"),
        simplex::Config {
            epoch: EPOCH,
            scheme,
            elector: RoundRobin::<Sha256>::default(),
            automaton: marshaled.clone(),
            relay: marshaled.clone(),
            reporter: marshaled.clone(),
            blocker: blocker.clone(),
            track_historical_votes: false,
            partition: format!("{prefix}-consensus"),
            mailbox_size: cfg.mailbox_size,
            floor: simplex::Floor::Genesis(genesis_digest),
            leader_timeout: cfg.timeouts.leader,
            certification_timeout: cfg.timeouts.certification,
            timeout_retry: cfg.timeouts.timeout_retry,
            fetch_timeout: NZDuration!(Duration::from_secs(1)).max(
                commonware_utils::NonZeroDuration::new(cfg.timeouts.fetch)
                    .unwrap_or(NZDuration!(Duration::from_secs(1))),
            ),
            fetch_retry_delay: Duration::from_millis(100),
            view_retention: ViewDelta::new(cfg.timeouts.view_retention),
            skip: simplex::SkipPolicy::Disabled,
            forward: simplex::ForwardPolicy::Disabled,
            replay_buffer: REPLAY_BUFFER,
            write_buffer: WRITE_BUFFER,
            page_cache,
            strategy: Sequential,
        },
    );

    // Backfill resolver for marshal.
    let marshal_resolver = marshal_p2p::init(
        context.child("backfill"),
        marshal_p2p::Config {
            public_key: me.clone(),
            peer_provider: provider,
            blocker,
            mailbox_size: cfg.mailbox_size,
            fetch_timeout: commonware_utils::NonZeroDuration::new(cfg.timeouts.fetch)
                .unwrap_or(NZDuration!(Duration::from_secs(2))),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );

    // Start: marshal, then the finalizer, before consensus, so replayed consensus events find
    // them.
    buffer.start(channels.broadcast);
    marshal_actor.start(app, buffer_mailbox, marshal_resolver);
    // Blocks finalized after the last state snapshot are applied again from marshal's archive
    // before the node serves anything, so a restarted node answers from where it stopped.
    apply_archived(&mut store, &shared, &marshal_mailbox).await?;
    let finalizer_shared = shared.clone();
    let finalizer_marshal = marshal_mailbox.clone();
    context
        .child("finalizer")
        .spawn(move |_| run_finalizer(store, finalizer_shared, finalizer_marshal, finalized_rx));
    consensus.start(channels.votes, channels.certificates, channels.resolver);
    info!(validator = %public_key_hex(&me), validators = validators.len(), "consensus started");

    // Transaction relay: accepted transactions go to every peer once (the validators are fully
    // connected, so one hop reaches everyone); received ones enter the local mempool.
    let (tx_sender, mut tx_receiver) = channels.txs;
    let relay_shared = shared.clone();
    context.child("tx_relay").spawn(move |_| async move {
        while let Ok((peer, message)) = tx_receiver.recv().await {
            match mycel_types::SignedTx::decode(message.as_ref()) {
                Ok(tx) => {
                    if let Err(err) = relay_shared.submit(tx) {
                        tracing::trace!(%err, "relayed transaction refused");
                    }
                }
                Err(err) => {
                    tracing::debug!(%err, peer = %public_key_hex(&peer), "undecodable relayed transaction")
                }
            }
        }
    });
    let tx_sender = std::sync::Mutex::new(tx_sender);
    let gossip = move |tx: &mycel_types::SignedTx| {
        let mut sender = tx_sender.lock().unwrap_or_else(|e| e.into_inner());
        let _ = sender.send(
            commonware_p2p::Recipients::All,
            bytes::Bytes::from(tx.encode()),
            false,
        );
    };

    let metrics_context = context.child("metrics");
    Ok(Node {
        shared: shared.clone(),
        blocks: Arc::new(MarshalBlocks {
            mailbox: marshal_mailbox,
            shared,
        }),
        runtime_metrics: Arc::new(move || metrics_context.encode()),
        gossip: Arc::new(gossip),
        data_dir: None,
        snapshots: Default::default(),
    })
}

/// Applies finalized blocks in order: execute (or reuse the verified execution), persist, publish,
/// and only then acknowledge to marshal. On any error it stops without acknowledging, which stops
/// marshal: the node halts rather than diverge or lose a block.
async fn run_finalizer<E: Storage + Clock + Metrics>(
    mut store: store::Store<E>,
    shared: Arc<Shared>,
    marshal: MarshalMailbox<Scheme, Standard<Block>>,
    mut blocks: mpsc::UnboundedReceiver<Finalized>,
) {
    while let Some((block, ack)) = blocks.next().await {
        let height = block.height().get();
        let result = match fill_gap(&mut store, &shared, &marshal, height).await {
            Ok(()) => apply_finalized(&mut store, &shared, &block, false).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => commonware_utils::Acknowledgement::acknowledge(ack),
            Err(err) => {
                error!(height, %err, "cannot apply finalized block; this node stops following the chain");
                return;
            }
        }
    }
    warn!("finalizer stopped");
}

/// Applies every finalized block marshal's archive holds past the ledger's tip, in order: the
/// blocks finalized after the last state snapshot. Marshal hands a block to the finalizer only
/// once its archive holds it durably, so this reaches every height the node served before it
/// stopped, even those whose delivery marshal had not yet recorded as processed.
async fn apply_archived<E: Storage + Clock + Metrics>(
    store: &mut store::Store<E>,
    shared: &Shared,
    marshal: &MarshalMailbox<Scheme, Standard<Block>>,
) -> Result<(), ChainError> {
    let from = shared.finalized_tip().height + 1;
    let mut next = from;
    while let Some(block) = marshal
        .get_block(Identifier::Height(Height::new(next)))
        .await
    {
        apply_finalized(store, shared, &block, true).await?;
        next += 1;
    }
    if next > from {
        info!(
            from,
            to = next - 1,
            "applied the finalized blocks after the last state snapshot, from the block archive"
        );
    }
    Ok(())
}

/// If the ledger is behind the block marshal delivers (its snapshot was lost or is older than
/// marshal's progress), replays the missing finalized blocks from marshal's archive.
async fn fill_gap<E: Storage + Clock + Metrics>(
    store: &mut store::Store<E>,
    shared: &Shared,
    marshal: &MarshalMailbox<Scheme, Standard<Block>>,
    height: u64,
) -> Result<(), ChainError> {
    let mut next = shared.finalized_tip().height + 1;
    if next < height {
        warn!(
            from = next,
            to = height - 1,
            "ledger behind marshal; applying finalized blocks from the archive"
        );
    }
    while next < height {
        let block = marshal
            .get_block(Identifier::Height(Height::new(next)))
            .await
            .ok_or_else(|| {
                ChainError::Divergence(format!(
                    "finalized block {next} is missing from the archive"
                ))
            })?;
        apply_finalized(store, shared, &block, true).await?;
        next += 1;
    }
    Ok(())
}

/// Applies one finalized block; `replayed` ones (from the archive, after a restart or a lost
/// snapshot) were logged when first finalized and are logged again only at debug.
async fn apply_finalized<E: Storage + Clock + Metrics>(
    store: &mut store::Store<E>,
    shared: &Shared,
    block: &Digested<Block>,
    replayed: bool,
) -> Result<(), ChainError> {
    let block_ref: &Block = block.inner();
    let height = block_ref.height.get();
    let hash = digest_to_b256(&block.digest());
    let tip = shared.finalized_tip();
    if height <= tip.height {
        // Marshal redelivers after a restart; this block is already applied.
        return Ok(());
    }
    if height != tip.height + 1 {
        return Err(ChainError::Divergence(format!(
            "finalized block {height} does not follow the applied tip {}",
            tip.height
        )));
    }
    if digest_to_b256(&block_ref.parent) != tip.hash {
        return Err(ChainError::Divergence(format!(
            "finalized block {height} has parent {} but the applied tip is {}",
            digest_to_b256(&block_ref.parent),
            tip.hash
        )));
    }

    // Keep the cache entry until the ledger holds this state (see `known_state`).
    let cached = shared
        .executed_cache()
        .get(&hash)
        .cloned()
        .filter(|e| e.height == height);
    let executed = match cached {
        Some(executed) => executed,
        None => {
            // Executed on a copy of the finalized state, read in place (only this task writes
            // it), rather than on a copy of a copy.
            let ledger = shared.ledger();
            let txs = application::decode_txs(shared, block_ref, &ledger.state)
                .map_err(ChainError::Divergence)?;
            application::execute(&ledger.state, block_ref, &txs).map_err(ChainError::Divergence)?
        }
    };

    let hashes: Vec<B256> = block_ref
        .txs
        .iter()
        .map(alloy_primitives::keccak256)
        .collect();
    let receipts = BlockReceipts {
        height,
        block_hash: hash,
        timestamp_ms: block_ref.timestamp_ms,
        txs: hashes
            .iter()
            .zip(executed.results.iter())
            .enumerate()
            .map(|(index, (tx_hash, result))| {
                (
                    *tx_hash,
                    TxLocation {
                        height,
                        index: index as u32,
                        result: TxOutcome::from(result.clone()),
                    },
                )
            })
            .collect(),
    };
    let new_tip = TipMeta {
        height,
        hash,
        timestamp_ms: block_ref.timestamp_ms,
        state_root: block_ref.state_root,
        ..tip
    };
    let emission = Ledger::emission_receipt(&executed.state, height);
    let keep_epochs_from = shared.ledger().emission.oldest_epoch();
    let new_tip = store
        .save(
            &executed.state,
            new_tip,
            (!receipts.txs.is_empty()).then_some(&receipts),
            emission.as_ref().map(|e| (e, keep_epochs_from)),
        )
        .await?;

    // Durable: publish.
    let view = {
        let mut ledger = shared.ledger_mut();
        ledger.state = executed.state;
        ledger.tip = new_tip;
        ledger.index_block(&receipts);
        if let Some(emission) = &emission {
            ledger.emission.record(emission);
        }
        block_view(block_ref, &ledger)
    };
    {
        let ledger = shared.ledger();
        shared.mempool().on_finalized(&hashes, &ledger.state);
    }
    shared.compact_journal(false);
    shared.executed_cache().retain(|_, e| e.height > height);
    shared
        .counters
        .blocks_finalized
        .fetch_add(1, Ordering::Relaxed);
    shared
        .counters
        .txs_finalized
        .fetch_add(hashes.len() as u64, Ordering::Relaxed);
    shared.set_consensus_tip(height);
    // Empty blocks (one a second on an idle devnet) only at debug, so the console shows what
    // happened rather than the clock.
    if replayed {
        debug!(height, hash = %hash, txs = hashes.len(), "applied finalized block again");
    } else if hashes.is_empty() {
        debug!(height, hash = %hash, "finalized empty block");
    } else {
        info!(height, hash = %hash, txs = hashes.len(), "finalized block");
    }
    let _ = shared.blocks.send(Arc::new(view));
    Ok(())
}
