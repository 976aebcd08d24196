//! Durable storage of the finalized ledger, on the runtime's storage (so the deterministic
//! runtime's crash tests exercise it).
//!
//! Two stores:
//! - a [`Metadata`] store holding the state snapshot and the tip metadata. It writes the older of
//!   two checksummed blobs and syncs before the newer one is ever overwritten, so a crash at any
//!   point leaves either the previous or the new snapshot, never a torn one;
//! - append-only journals: per-block receipts (the transaction index); every block's emission
//!   receipt, pruned to the emission history's block retention; and the emission receipts of
//!   epoch blocks, pruned once the history no longer keeps their epochs. Entries past the
//!   snapshot's recorded lengths (the blocks finalized after the last snapshot, which is written
//!   every `snapshot_every` blocks) are discarded on open; the node applies those blocks again
//!   from marshal's archive, which appends them again.

use crate::{
    ledger::{BlockReceipts, TipMeta},
    ChainError, HistoryConfig,
};
use commonware_codec::RangeCfg;
use commonware_runtime::{buffer::paged::CacheRef, Clock, Metrics, Storage};
use commonware_storage::{
    journal::contiguous::{variable, Contiguous as _},
    metadata::{self, Metadata},
};
use commonware_utils::{sequence::U64, NZUsize, NZU64};
use mycel_state::State;
use mycel_types::api::EmissionReceipt;
use serde::de::DeserializeOwned;
use std::{collections::VecDeque, num::NonZeroU64};

const KEY_STATE: u64 = 0;
const KEY_TIP: u64 = 1;
const KEY_GENESIS: u64 = 2;

type Journal<E> = variable::Journal<E, Vec<u8>>;

pub(crate) struct Store<E: Storage + Clock + Metrics> {
    metadata: Option<Metadata<E, U64, Vec<u8>>>,
    receipts: Option<Journal<E>>,
    /// Every block's emission receipt.
    emission: Option<Journal<E>>,
    /// The emission receipts of epoch blocks, and (height, position) of those kept.
    epochs: Option<Journal<E>>,
    epoch_positions: VecDeque<(u64, u64)>,
    history: HistoryConfig,
    /// The state is written whole at heights that are multiples of this.
    snapshot_every: NonZeroU64,
}

/// What a previous run left on disk.
pub(crate) struct Recovered {
    pub snapshot: Option<(State, TipMeta)>,
    pub receipts: Vec<BlockReceipts>,
    /// Emission receipts to record, oldest first: epoch blocks older than the kept blocks, then
    /// the kept blocks.
    pub emission: Vec<EmissionReceipt>,
}

/// Opens the journal `name` (partition `{prefix}-{name}`), cut to `len` entries.
async fn open_journal<E: Storage + Clock + Metrics>(
    context: &E,
    prefix: &str,
    name: &'static str,
    page_cache: &CacheRef,
    len: u64,
) -> Result<Journal<E>, ChainError> {
    variable::Journal::init_at_most(
        context.child(name),
        variable::Config {
            partition: format!("{prefix}-{name}"),
            items_per_section: NZU64!(4096),
            compression: None,
            codec_config: (RangeCfg::from(..), ()),
            page_cache: page_cache.clone(),
            write_buffer: NZUsize!(64 * 1024),
            replay_buffer: NZUsize!(1024 * 1024),
        },
        len,
    )
    .await
    .map_err(|e| storage_error(&format!("opening the {name} journal"), e))
}

/// Every entry a journal holds, with its position, decoded from JSON.
async fn read_journal<E: Storage + Clock + Metrics, T: DeserializeOwned>(
    journal: &Journal<E>,
    name: &str,
) -> Result<Vec<(u64, T)>, ChainError> {
    let mut entries = Vec::new();
    for position in journal.bounds() {
        let bytes: Vec<u8> = journal
            .read(position)
            .await
            .map_err(|e| storage_error(&format!("reading the {name} journal"), e))?;
        let entry = serde_json::from_slice(&bytes)
            .map_err(|e| storage_error(&format!("decoding the {name} journal"), e))?;
        entries.push((position, entry));
    }
    Ok(entries)
}

/// Appends `value` as JSON to `journal` and syncs it; the new journal and the entry's position.
async fn append_synced<E: Storage + Clock + Metrics>(
    journal: Journal<E>,
    value: &impl serde::Serialize,
    name: &str,
) -> Result<(Journal<E>, u64), ChainError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| storage_error(&format!("encoding the {name} entry"), e))?;
    let (journal, position) = journal
        .append(&bytes)
        .await
        .map_err(|e| storage_error(&format!("appending to the {name} journal"), e))?;
    let journal = journal
        .sync()
        .await
        .map_err(|e| storage_error(&format!("syncing the {name} journal"), e))?;
    Ok((journal, position))
}

/// Drops the sections of `journal` wholly before `min_position`.
async fn prune<E: Storage + Clock + Metrics>(
    journal: Journal<E>,
    min_position: u64,
    name: &str,
) -> Result<Journal<E>, ChainError> {
    if min_position <= journal.bounds().start {
        return Ok(journal);
    }
    journal
        .prune(min_position)
        .await
        .map(|(journal, _)| journal)
        .map_err(|e| storage_error(&format!("pruning the {name} journal"), e))
}

fn storage_error(what: &str, err: impl std::fmt::Display) -> ChainError {
    ChainError::Storage(format!("{what}: {err}"))
}

impl<E: Storage + Clock + Metrics> Store<E> {
    pub async fn open(
        context: E,
        partition_prefix: &str,
        page_cache: CacheRef,
        history: HistoryConfig,
        snapshot_every: NonZeroU64,
    ) -> Result<(Self, Recovered), ChainError> {
        let metadata: Metadata<E, U64, Vec<u8>> = Metadata::init(
            context.child("ledger_metadata"),
            metadata::Config {
                partition: format!("{partition_prefix}-ledger"),
                codec_config: (RangeCfg::from(..), ()),
            },
        )
        .await
        .map_err(|e| storage_error("opening the ledger snapshot", e))?;

        let snapshot = match (
            metadata.get(&U64::new(KEY_STATE)),
            metadata.get(&U64::new(KEY_TIP)),
        ) {
            (Some(state), Some(tip)) => {
                let tip: TipMeta = serde_json::from_slice(tip)
                    .map_err(|e| storage_error("reading the ledger tip", e))?;
                let state = State::from_snapshot_bytes(state)
                    .map_err(|e| storage_error("reading the ledger state snapshot", e))?;
                Some((state, tip))
            }
            _ => None,
        };

        let tip = snapshot.as_ref().map(|(_, tip)| *tip);
        let len = |f: fn(&TipMeta) -> u64| tip.as_ref().map_or(0, f);
        let prefix = partition_prefix;
        let journal = open_journal(
            &context,
            prefix,
            "receipts",
            &page_cache,
            len(|t| t.receipts_len),
        );
        let journal = journal.await?;
        let receipts = read_journal::<E, BlockReceipts>(&journal, "receipts").await?;
        let emission = open_journal(
            &context,
            prefix,
            "emission",
            &page_cache,
            len(|t| t.emission_len),
        )
        .await?;
        let epochs = open_journal(
            &context,
            prefix,
            "epochs",
            &page_cache,
            len(|t| t.epochs_len),
        )
        .await?;
        let blocks = read_journal::<E, EmissionReceipt>(&emission, "emission").await?;
        let epoch_blocks = read_journal::<E, EmissionReceipt>(&epochs, "epochs").await?;
        let epoch_positions = epoch_blocks.iter().map(|(p, r)| (r.height, *p)).collect();
        let first_block = blocks.first().map_or(u64::MAX, |(_, r)| r.height);
        let emission_replay = epoch_blocks
            .into_iter()
            .filter(|(_, r)| r.height < first_block)
            .chain(blocks)
            .map(|(_, r)| r)
            .collect();

        Ok((
            Self {
                metadata: Some(metadata),
                receipts: Some(journal),
                emission: Some(emission),
                epochs: Some(epochs),
                epoch_positions,
                history,
                snapshot_every,
            },
            Recovered {
                snapshot,
                receipts: receipts.into_iter().map(|(_, r)| r).collect(),
                emission: emission_replay,
            },
        ))
    }

    /// Binds the data directory to the chain of `genesis_hash` on first use, and refuses a data
    /// directory that belongs to another chain.
    pub async fn check_genesis(
        &mut self,
        genesis_hash: mycel_types::B256,
    ) -> Result<(), ChainError> {
        let mut metadata = self
            .metadata
            .take()
            .ok_or_else(|| ChainError::Storage("ledger snapshot failed earlier".into()))?;
        match metadata.get(&U64::new(KEY_GENESIS)) {
            Some(stored) if stored.as_slice() == genesis_hash.as_slice() => {}
            Some(stored) => {
                let stored = hex::encode(stored);
                self.metadata = Some(metadata);
                return Err(ChainError::Config(format!(
                    "the data directory holds the chain with genesis 0x{stored}, not this genesis \
                     ({genesis_hash}); use another data directory or the matching genesis"
                )));
            }
            None => {
                metadata.put(U64::new(KEY_GENESIS), genesis_hash.to_vec());
                metadata = metadata
                    .sync()
                    .await
                    .map_err(|e| storage_error("recording the genesis", e))?;
            }
        }
        self.metadata = Some(metadata);
        Ok(())
    }

    /// Durably records the block at `tip`: its receipts, if it had transactions, and its emission
    /// receipt, if it made one (with the height of the oldest epoch the history still keeps) and,
    /// every `snapshot_every` blocks, the finalized `state` and `tip` themselves. Returns the tip
    /// as stored. After an error the store is unusable.
    ///
    /// Between snapshots the journals move past the stored tip; a restart cuts them back to it and
    /// the node applies the blocks after it again from marshal's archive.
    pub async fn save(
        &mut self,
        state: &State,
        mut tip: TipMeta,
        receipts: Option<&BlockReceipts>,
        emission: Option<(&EmissionReceipt, Option<u64>)>,
    ) -> Result<TipMeta, ChainError> {
        let failed = |what: &str| ChainError::Storage(format!("the {what} journal failed earlier"));
        let mut journal = self.receipts.take().ok_or_else(|| failed("receipts"))?;
        if let Some(receipts) = receipts {
            journal = append_synced(journal, receipts, "receipts").await?.0;
        }
        tip.receipts_len = journal.size();
        self.receipts = Some(journal);

        let mut blocks = self.emission.take().ok_or_else(|| failed("emission"))?;
        let mut epochs = self.epochs.take().ok_or_else(|| failed("epochs"))?;
        if let Some((receipt, oldest_epoch)) = emission {
            let keep = self.history.blocks as u64;
            if keep > 0 {
                blocks = append_synced(blocks, receipt, "emission").await?.0;
            }
            let at = blocks.size().saturating_sub(keep);
            blocks = prune(blocks, at, "emission").await?;
            let has_epoch = receipt.subnets.iter().any(|s| s.epoch.is_some());
            if has_epoch && self.history.epochs > 0 {
                let (journal, position) = append_synced(epochs, receipt, "epochs").await?;
                epochs = journal;
                self.epoch_positions.push_back((receipt.height, position));
            }
            // Epoch blocks older than every epoch the history keeps are no longer needed.
            let keep_from = oldest_epoch.unwrap_or(receipt.height);
            while self
                .epoch_positions
                .front()
                .is_some_and(|(height, _)| *height < keep_from)
            {
                self.epoch_positions.pop_front();
            }
            let at = self
                .epoch_positions
                .front()
                .map_or(epochs.size(), |(_, position)| *position);
            epochs = prune(epochs, at, "epochs").await?;
        }
        tip.emission_len = blocks.size();
        tip.epochs_len = epochs.size();
        self.emission = Some(blocks);
        self.epochs = Some(epochs);
        if !tip.height.is_multiple_of(self.snapshot_every.get()) {
            return Ok(tip);
        }
        self.write_snapshot(state, tip).await
    }

    /// Durably writes `state` and `tip` as the snapshot a restart starts from (a follower's state
    /// fetched from a peer is written at once, whatever its height).
    pub async fn write_snapshot(
        &mut self,
        state: &State,
        tip: TipMeta,
    ) -> Result<TipMeta, ChainError> {
        let mut metadata = self
            .metadata
            .take()
            .ok_or_else(|| ChainError::Storage("ledger snapshot failed earlier".into()))?;
        let tip_bytes =
            serde_json::to_vec(&tip).map_err(|e| storage_error("encoding the ledger tip", e))?;
        metadata.put(U64::new(KEY_STATE), state.to_snapshot_bytes());
        metadata.put(U64::new(KEY_TIP), tip_bytes);
        let metadata = metadata
            .sync()
            .await
            .map_err(|e| storage_error("syncing the ledger snapshot", e))?;
        self.metadata = Some(metadata);
        Ok(tip)
    }
}
