//! Durable storage of the finalized ledger, on the runtime's storage (so the deterministic
//! runtime's crash tests exercise it).
//!
//! Two stores:
//! - a [`Metadata`] store holding the state snapshot and the tip metadata. It writes the older of
//!   two checksummed blobs and syncs before the newer one is ever overwritten, so a crash at any
//!   point leaves either the previous or the new snapshot, never a torn one;
//! - an append-only journal of per-block receipts (the transaction index). Entries past the
//!   snapshot's recorded length (a crash between the two syncs) are discarded on open.

use crate::{
    ledger::{BlockReceipts, TipMeta},
    ChainError,
};
use commonware_codec::RangeCfg;
use commonware_runtime::{buffer::paged::CacheRef, Clock, Metrics, Storage};
use commonware_storage::{
    journal::contiguous::{variable, Contiguous as _},
    metadata::{self, Metadata},
};
use commonware_utils::{sequence::U64, NZUsize, NZU64};
use mycel_state::State;

const KEY_STATE: u64 = 0;
const KEY_TIP: u64 = 1;
const KEY_GENESIS: u64 = 2;

pub(crate) struct Store<E: Storage + Clock + Metrics> {
    metadata: Option<Metadata<E, U64, Vec<u8>>>,
    receipts: Option<variable::Journal<E, Vec<u8>>>,
}

/// What a previous run left on disk.
pub(crate) struct Recovered {
    pub snapshot: Option<(State, TipMeta)>,
    pub receipts: Vec<BlockReceipts>,
}

fn storage_error(what: &str, err: impl std::fmt::Display) -> ChainError {
    ChainError::Storage(format!("{what}: {err}"))
}

impl<E: Storage + Clock + Metrics> Store<E> {
    pub async fn open(
        context: E,
        partition_prefix: &str,
        page_cache: CacheRef,
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

        let receipts_len = snapshot.as_ref().map_or(0, |(_, tip)| tip.receipts_len);
        let journal = variable::Journal::init_at_most(
            context.child("receipts"),
            variable::Config {
                partition: format!("{partition_prefix}-receipts"),
                items_per_section: NZU64!(4096),
                compression: None,
                codec_config: (RangeCfg::from(..), ()),
                page_cache,
                write_buffer: NZUsize!(64 * 1024),
                replay_buffer: NZUsize!(1024 * 1024),
            },
            receipts_len,
        )
        .await
        .map_err(|e| storage_error("opening the receipt journal", e))?;
        let mut receipts = Vec::new();
        for position in journal.bounds() {
            let bytes: Vec<u8> = journal
                .read(position)
                .await
                .map_err(|e| storage_error("reading the receipt journal", e))?;
            let block: BlockReceipts = serde_json::from_slice(&bytes)
                .map_err(|e| storage_error("decoding the receipt journal", e))?;
            receipts.push(block);
        }

        Ok((
            Self {
                metadata: Some(metadata),
                receipts: Some(journal),
            },
            Recovered { snapshot, receipts },
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

    /// Durably records the finalized `state` at `tip` (and the block's receipts, if it had
    /// transactions). Returns the tip as stored. After an error the store is unusable.
    pub async fn save(
        &mut self,
        state: &State,
        mut tip: TipMeta,
        receipts: Option<&BlockReceipts>,
    ) -> Result<TipMeta, ChainError> {
        let mut journal = self
            .receipts
            .take()
            .ok_or_else(|| ChainError::Storage("receipt journal failed earlier".into()))?;
        if let Some(receipts) = receipts {
            let bytes =
                serde_json::to_vec(receipts).map_err(|e| storage_error("encoding receipts", e))?;
            journal = journal
                .append(&bytes)
                .await
                .map_err(|e| storage_error("appending receipts", e))?
                .0;
            journal = journal
                .sync()
                .await
                .map_err(|e| storage_error("syncing receipts", e))?;
        }
        tip.receipts_len = journal.size();
        self.receipts = Some(journal);

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
