//! Writing a blob (encode, pay, upload, certify) and reading one back, streamed one window of
//! segments at a time so that a large file never sits whole in memory.
//!
//! Write ([`put_file`]): read the file once to encode it and learn its id; register it on chain
//! (paying `epoch price × epochs`, refused above that price); send each committee member its
//! metadata and its two slivers in windows of at most [`WINDOW_BYTES`] per sliver; have each
//! check and keep them (`seal`); gather 2f + 1 signed confirmations (each checked locally before
//! use) and post the certificate. A blob already registered is not paid again; one already
//! certified is not uploaded again.
//!
//! Read ([`get_file`]): the blob's committee from the chain, its metadata from any member
//! (checked against the id), then n − 2f members' primary slivers (the systematic ones first),
//! each one's leaves checked against the metadata before its parts are used. A member that does
//! not answer or serves a part that does not match is replaced by another and the window is read
//! again; the bytes are written to `FILE.partial` and renamed only once the whole blob re-encodes
//! to its id. An inconsistent encoding is reported, and the partial file removed.

use crate::client::{NodeError, SliverClient};
use crate::{
    Axis, BlobDecoder, BlobEncoder, BlobError, Codec, ExtendedSegment, Layout, Metadata, MIN_NODES,
};
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_client::SendOptions;
use mycel_client::{ClientError, NodeClient};
use mycel_types::api::{code, BlobInfo, BlobStatus, Event, StorageEvent, StorageMember};
use mycel_types::storage::{position_of, sliver_of, StorageConfirmation};
use mycel_types::tx::{CertifyBlob, RegisterBatch, RegisterBlob};
use mycel_types::TxKind;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most bytes of one sliver sent or fetched in one request.
pub const WINDOW_BYTES: usize = 4 << 20;

/// Why a blob could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Chain(#[from] ClientError),
    #[error("--epochs {epochs}: a blob is paid for 1 to {max} epochs ahead")]
    Epochs { epochs: u64, max: u64 },
    #[error("{0}")]
    Blob(#[from] BlobError),
    #[error("{0}")]
    Batch(#[from] crate::batch::BatchError),
    #[error("blob {blob_id} has no item {name}: {reason}")]
    NoItem {
        blob_id: B256,
        name: String,
        reason: String,
    },
    #[error("{0}")]
    Layout(#[from] mycel_types::storage::LayoutError),
    #[error("the storage committee has {nodes} nodes; a blob needs at least {MIN_NODES} (start storage nodes with `mycel storage`, or use `mycel up`)")]
    NoCommittee { nodes: usize },
    #[error("only {got} of the {needed} storage nodes needed confirmed holding blob {blob_id}:\n  {failures}")]
    TooFewConfirmations {
        blob_id: B256,
        got: usize,
        needed: usize,
        failures: String,
    },
    #[error("blob {blob_id} is not available: {reason}")]
    NotAvailable { blob_id: B256, reason: String },
    #[error("blob {blob_id} could not be read from enough storage nodes ({needed} needed):\n  {failures}")]
    Unreadable {
        blob_id: B256,
        needed: usize,
        failures: String,
    },
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub blob_id: B256,
    pub length: u64,
    /// MYC paid by this write (0 if the blob was already registered).
    pub paid: u128,
    pub end_epoch: u64,
    pub certified_height: u64,
    /// Nodes whose confirmations are in the certificate (empty if it was certified before).
    pub confirmed_by: Vec<Address>,
}

/// What a read did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub blob_id: B256,
    pub length: u64,
    /// The members whose primary slivers the blob was decoded from (last window).
    pub read_from: Vec<Address>,
    /// Members skipped, and why.
    pub skipped: Vec<String>,
}

/// Where the bytes of a blob being read go, in order, a window at a time.
pub trait Sink: Send {
    fn write(
        &mut self,
        bytes: Vec<u8>,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

/// Into a file (each window written at once: small, sequential writes).
pub struct FileSink(pub File);

impl Sink for FileSink {
    async fn write(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        self.0.write_all(&bytes)
    }
}

/// Into a bounded channel (an HTTP body): a slow reader holds the decoding back, not memory.
impl Sink for tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>> {
    async fn write(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        self.send(Ok(bytes)).await.map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader went away")
        })
    }
}

/// Where a long write or read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Encoding { done: u64, total: u64 },
    Registered { height: u64 },
    Uploading { done: u64, total: u64 },
    Certifying,
    Reading { done: u64, total: u64 },
}

fn file_error(path: &Path, e: impl ToString) -> PublishError {
    PublishError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The bytes of a blob being written: a file, or a batch (its index, then its items' files),
/// read twice (once for the id, once to upload) and never whole into memory.
pub struct Source {
    parts: Vec<SourcePart>,
    length: u64,
    /// What the chain registers: the blob's epochs, or each item's.
    epochs: Epochs,
}

enum SourcePart {
    Bytes(Vec<u8>),
    File { path: PathBuf, file: File, len: u64 },
}

/// How long a blob being written is paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Epochs {
    Blob(u64),
    /// A batch: each item's epochs, in index order (the blob is paid for the longest).
    Batch(Vec<u64>),
}

impl Epochs {
    fn longest(&self) -> u64 {
        match self {
            Epochs::Blob(e) => *e,
            Epochs::Batch(items) => items.iter().copied().max().unwrap_or(0),
        }
    }
}

impl Source {
    /// The file at `path`, paid for `epochs`.
    pub fn file(path: &Path, epochs: u64) -> Result<Source, PublishError> {
        let file = File::open(path).map_err(|e| file_error(path, e))?;
        let len = file.metadata().map_err(|e| file_error(path, e))?.len();
        Ok(Source {
            length: len,
            parts: vec![SourcePart::File {
                path: path.to_path_buf(),
                file,
                len,
            }],
            epochs: Epochs::Blob(epochs),
        })
    }

    /// A batch of the files `items` (name, path, epochs), in that order.
    pub fn batch(items: &[(String, PathBuf, u64)]) -> Result<Source, PublishError> {
        let mut parts = Vec::with_capacity(items.len() + 1);
        let mut entries = Vec::with_capacity(items.len());
        for (name, path, _) in items {
            let file = File::open(path).map_err(|e| file_error(path, e))?;
            let len = file.metadata().map_err(|e| file_error(path, e))?.len();
            entries.push(crate::batch::Entry {
                name: name.clone(),
                length: len,
            });
            parts.push(SourcePart::File {
                path: path.clone(),
                file,
                len,
            });
        }
        let index = crate::batch::Index::new(entries)?;
        parts.insert(0, SourcePart::Bytes(index.encode()));
        Ok(Source {
            length: index.blob_len(),
            parts,
            epochs: Epochs::Batch(items.iter().map(|(_, _, e)| *e).collect()),
        })
    }

    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Fills `buf` with the blob's bytes from `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), PublishError> {
        let mut start = 0u64;
        let end = offset + buf.len() as u64;
        for part in &mut self.parts {
            let len = match part {
                SourcePart::Bytes(b) => b.len() as u64,
                SourcePart::File { len, .. } => *len,
            };
            let (from, to) = (offset.max(start), end.min(start + len));
            if from < to {
                let out = &mut buf[(from - offset) as usize..(to - offset) as usize];
                match part {
                    SourcePart::Bytes(b) => {
                        out.copy_from_slice(&b[(from - start) as usize..(to - start) as usize])
                    }
                    SourcePart::File { path, file, .. } => {
                        file.seek(SeekFrom::Start(from - start))
                            .and_then(|_| file.read_exact(out))
                            .map_err(|e| {
                                file_error(path, format!("{e} (did it change while being stored?)"))
                            })?;
                    }
                }
            }
            start += len;
        }
        Ok(())
    }

    /// Segments `from..to` of the blob.
    fn segments(
        &mut self,
        layout: &Layout,
        from: u64,
        to: u64,
    ) -> Result<Vec<Vec<u8>>, PublishError> {
        (from..to)
            .map(|s| {
                let r = layout.segment_range(s);
                let mut buf = vec![0u8; (r.end - r.start) as usize];
                self.read_at(r.start, &mut buf)?;
                Ok(buf)
            })
            .collect()
    }
}

/// The first pass: the metadata (so the id) of the source's blob on `nodes` nodes.
fn encode_source(
    source: &mut Source,
    nodes: u16,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(Layout, Metadata), PublishError> {
    let length = source.len();
    let layout = Layout::new(nodes, length)?;
    let mut encoder = BlobEncoder::new(layout)?;
    for s in 0..layout.segments {
        let data = source.segments(&layout, s, s + 1)?;
        encoder.push(&data[0])?;
        progress(Progress::Encoding {
            done: layout.segment_range(s).end,
            total: length,
        });
    }
    Ok((layout, encoder.finish()?.metadata))
}

fn segments_per_window(part_bytes: usize) -> u64 {
    (WINDOW_BYTES / part_bytes.max(1)).max(1) as u64
}

/// Encodes, pays for, uploads and certifies the file at `path` for `epochs` storage epochs.
/// Runs on a multi-threaded tokio runtime (the coding runs in place on a worker thread).
pub async fn put_file(
    chain: &NodeClient,
    signer: &PrivateKeySigner,
    path: &Path,
    epochs: u64,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Stored, PublishError> {
    put(chain, signer, Source::file(path, epochs)?, progress).await
}

/// Encodes, pays for, uploads and certifies `source`. Runs on a multi-threaded tokio runtime.
pub async fn put(
    chain: &NodeClient,
    signer: &PrivateKeySigner,
    mut source: Source,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Stored, PublishError> {
    let storage = chain.storage().await?;
    let nodes = storage.members.len();
    if nodes < usize::from(MIN_NODES) {
        return Err(PublishError::NoCommittee { nodes });
    }
    let max_epochs = u64::from(storage.params.max_epochs);
    let all_epochs = match &source.epochs {
        Epochs::Blob(e) => vec![*e],
        Epochs::Batch(items) => items.clone(),
    };
    if let Some(&epochs) = all_epochs.iter().find(|e| **e == 0 || **e > max_epochs) {
        return Err(PublishError::Epochs {
            epochs,
            max: max_epochs,
        });
    }
    let epochs = source.epochs.longest();
    // The progress callback is borrowed; encode on this thread's blocking slot.
    let (layout, metadata) =
        tokio::task::block_in_place(|| encode_source(&mut source, nodes as u16, progress))?;
    let blob_id = metadata.blob_id();
    let (mut paid, mut end_epoch) = (0, 0);
    let info = match chain.blob(blob_id).await {
        Ok(info) if info.status == BlobStatus::Certified => {
            return Ok(Stored {
                blob_id,
                length: layout.length,
                paid: 0,
                end_epoch: info.end_epoch,
                certified_height: info.certified_height.unwrap_or_default(),
                confirmed_by: Vec::new(),
            })
        }
        Ok(info) if info.status == BlobStatus::Deleted => {
            return Err(PublishError::NotAvailable {
                blob_id,
                reason: "it was deleted; it can be stored again once its epoch ends".into(),
            })
        }
        Ok(info) => info,
        Err(e) if e.is_code(code::UNKNOWN_BLOB) => {
            let price = storage
                .params
                .epoch_price(&layout)
                .unwrap_or(u128::MAX)
                .saturating_mul(u128::from(epochs));
            let committee = storage.committee;
            let outcome = chain
                .send_and_wait(
                    signer,
                    &SendOptions::timeout(Duration::from_secs(60)),
                    |f| match &source.epochs {
                        Epochs::Blob(_) => TxKind::RegisterBlob(RegisterBlob {
                            from: f.from,
                            blobId: blob_id,
                            length: layout.length,
                            committee,
                            epochs,
                            maxCost: U256::from(price),
                            nonce: f.nonce,
                            fee: f.fee,
                        }),
                        Epochs::Batch(items) => TxKind::RegisterBatch(RegisterBatch {
                            from: f.from,
                            blobId: blob_id,
                            length: layout.length,
                            committee,
                            itemEpochs: items
                                .iter()
                                .flat_map(|e| (*e as u32).to_be_bytes())
                                .collect::<Vec<u8>>()
                                .into(),
                            maxCost: U256::from(price),
                            nonce: f.nonce,
                            fee: f.fee,
                        }),
                    },
                )
                .await?;
            let applied = outcome.applied()?;
            for event in &applied.receipt.events {
                if let Event::Storage(StorageEvent::BlobRegistered {
                    paid: p,
                    end_epoch: e,
                    ..
                }) = event
                {
                    (paid, end_epoch) = (*p, *e);
                }
            }
            progress(Progress::Registered {
                height: applied.height,
            });
            chain.blob(blob_id).await?
        }
        Err(e) => return Err(e.into()),
    };
    if end_epoch == 0 {
        end_epoch = info.end_epoch;
    }
    let confirmations = upload(&mut source, layout, &metadata, &info, progress).await?;
    progress(Progress::Certifying);
    let (confirmed_by, certified_height) = certify(chain, signer, &info, confirmations).await?;
    Ok(Stored {
        blob_id,
        length: layout.length,
        paid,
        end_epoch,
        certified_height,
        confirmed_by,
    })
}

/// A committee member being written to or read from.
struct Member {
    client: SliverClient,
    address: Address,
    sliver: usize,
    failed: Option<String>,
}

fn members(info: &BlobInfo) -> Vec<Member> {
    let http = SliverClient::http();
    let nodes = info.members.len() as u16;
    info.members
        .iter()
        .enumerate()
        .map(|(position, m): (usize, &StorageMember)| Member {
            client: SliverClient::new(http.clone(), &m.endpoint),
            address: m.address,
            sliver: sliver_of(position, nodes, &info.blob_id),
            failed: None,
        })
        .collect()
}

fn failures(members: &[Member]) -> String {
    let list: Vec<String> = members
        .iter()
        .filter_map(|m| {
            m.failed
                .as_ref()
                .map(|f| format!("{} ({}): {f}", m.address, m.client.endpoint()))
        })
        .collect();
    if list.is_empty() {
        "no node failed".into()
    } else {
        list.join("\n  ")
    }
}

/// Sends every member its metadata and slivers and gathers their confirmations.
async fn upload(
    source: &mut Source,
    layout: Layout,
    metadata: &Metadata,
    info: &BlobInfo,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Vec<(Address, Bytes)>, PublishError> {
    let id = info.blob_id;
    let mut members = members(info);
    let results =
        futures::future::join_all(members.iter().map(|m| m.client.put_metadata(&id, metadata)))
            .await;
    fail(&mut members, results);
    let per_window = segments_per_window(layout.primary_segment_bytes());
    let mut codec = Codec::new(layout)?;
    let mut segment = ExtendedSegment::default();
    let mut from = 0;
    while from < layout.segments {
        let to = (from + per_window).min(layout.segments);
        let data = source.segments(&layout, from, to)?;
        let mut bodies: Vec<(Vec<u8>, Vec<u8>)> = vec![Default::default(); members.len()];
        tokio::task::block_in_place(|| -> Result<(), BlobError> {
            for chunk in &data {
                codec.encode_segment(chunk, &mut segment)?;
                for (m, (primary, secondary)) in members.iter().zip(bodies.iter_mut()) {
                    primary.extend_from_slice(segment.primary(m.sliver));
                    secondary.extend(segment.secondary(m.sliver));
                }
            }
            Ok(())
        })?;
        let sends = members
            .iter()
            .zip(bodies)
            .map(|(m, (primary, secondary))| async move {
                if m.failed.is_some() {
                    return Ok(());
                }
                m.client
                    .put_parts(&id, Axis::Primary, from, primary)
                    .await?;
                m.client
                    .put_parts(&id, Axis::Secondary, from, secondary)
                    .await
            });
        let results = futures::future::join_all(sends).await;
        fail(&mut members, results);
        progress(Progress::Uploading {
            done: layout.segment_range(to - 1).end,
            total: layout.length,
        });
        from = to;
    }
    let seals = members.iter().map(|m| async move {
        if m.failed.is_some() {
            return Ok(None);
        }
        m.client.seal(&id, Axis::Primary).await?;
        m.client.seal(&id, Axis::Secondary).await?;
        m.client.confirmation(&id).await.map(Some)
    });
    let results = futures::future::join_all(seals).await;
    let mut confirmations = Vec::new();
    for (m, result) in members.iter_mut().zip(results) {
        match result {
            Ok(Some(c)) => {
                // Each signature is checked against its node in `certify`, on the chain's id.
                if c.node == m.address && c.committee == info.committee && c.signature.len() == 65 {
                    confirmations.push((m.address, c.signature));
                } else {
                    m.failed =
                        Some("its confirmation is not its own or not for this committee".into());
                }
            }
            Ok(None) => {}
            Err(e) => m.failed = Some(e.to_string()),
        }
    }
    if confirmations.len() < layout.quorum() {
        return Err(PublishError::TooFewConfirmations {
            blob_id: id,
            got: confirmations.len(),
            needed: layout.quorum(),
            failures: failures(&members),
        });
    }
    Ok(confirmations)
}

fn fail(members: &mut [Member], results: Vec<Result<(), NodeError>>) {
    for (m, r) in members.iter_mut().zip(results) {
        if let Err(e) = r {
            if m.failed.is_none() {
                tracing::warn!(node = %m.address, "storage node failed: {e}");
                m.failed = Some(e.to_string());
            }
        }
    }
}

/// Posts the certificate: the confirmations whose signatures recover to their nodes on this chain,
/// less those the chain counted already (an earlier attempt), in as many transactions as the
/// chain's `max_tx_bytes` needs (a large committee's 2f + 1 signatures do not fit one).
async fn certify(
    chain: &NodeClient,
    signer: &PrivateKeySigner,
    info: &BlobInfo,
    confirmations: Vec<(Address, Bytes)>,
) -> Result<(Vec<Address>, u64), PublishError> {
    let chain_id = chain.chain_params().await?.chain_id;
    let statement = StorageConfirmation {
        blobId: info.blob_id,
        committee: info.committee,
    };
    let good: Vec<(Address, Bytes)> = confirmations
        .into_iter()
        .filter(|(node, sig)| statement.recover(chain_id, sig) == Some(*node))
        .collect();
    let needed = mycel_types::storage::quorum(info.members.len());
    if good.len() < needed {
        return Err(PublishError::TooFewConfirmations {
            blob_id: info.blob_id,
            got: good.len(),
            needed,
            failures: "some confirmations were not signed by their nodes for this chain".into(),
        });
    }
    let fresh: Vec<&(Address, Bytes)> = good
        .iter()
        .filter(|(node, _)| !info.confirmed_by.contains(node))
        .collect();
    let per_tx = signatures_per_tx(chain.status().await?.max_tx_bytes as usize);
    let mut height = 0;
    for part in fresh.chunks(per_tx) {
        let signatures: Vec<u8> = part.iter().flat_map(|(_, s)| s.iter().copied()).collect();
        let outcome = chain
            .send_and_wait(
                signer,
                &SendOptions::timeout(Duration::from_secs(60)),
                |f| {
                    TxKind::CertifyBlob(CertifyBlob {
                        from: f.from,
                        blobId: info.blob_id,
                        signatures: signatures.into(),
                        nonce: f.nonce,
                        fee: f.fee,
                    })
                },
            )
            .await?;
        height = outcome.applied()?.height;
    }
    Ok((good.into_iter().map(|(a, _)| a).collect(), height))
}

/// How many 65-byte confirmations fit one `CertifyBlob` of at most `max_tx_bytes`.
fn signatures_per_tx(max_tx_bytes: usize) -> usize {
    let size = |k: usize| {
        TxKind::CertifyBlob(CertifyBlob {
            from: Address::ZERO,
            blobId: B256::ZERO,
            signatures: vec![0u8; 65 * k].into(),
            nonce: u64::MAX,
            fee: U256::MAX,
        })
        .signed_len()
    };
    let mut k = 1;
    while size(k + 1) <= max_tx_bytes {
        k += 1;
    }
    k
}

/// Reads blob `blob_id` into `out` (written as `out.partial`, renamed when whole and checked).
/// Runs on a multi-threaded tokio runtime.
pub async fn get_file(
    chain: &NodeClient,
    blob_id: B256,
    out: &Path,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Fetched, PublishError> {
    let info = certified_blob(chain, blob_id).await?;
    let partial = partial_path(out);
    let file = File::create(&partial).map_err(|e| file_error(&partial, e))?;
    let mut sink = FileSink(file);
    let read = read_blob(&info, &mut sink, progress).await;
    finish_partial(read, sink, &partial, out)
}

/// What reading an item did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRead {
    pub fetched: Fetched,
    /// The item's position in the batch (its number on chain).
    pub position: usize,
    pub length: u64,
}

/// Discards what it is given (reading a batch's index only).
struct Discard;

impl Sink for Discard {
    async fn write(&mut self, _bytes: Vec<u8>) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether item `position` of batch `info` (whose index has `count` items) may be read in storage
/// epoch `epoch`.
fn item_verdict(info: &BlobInfo, epoch: u64, count: usize, position: usize) -> Result<(), String> {
    if count != info.items.len() {
        return Err(format!(
            "its index lists {count} items but the chain registered {}",
            info.items.len()
        ));
    }
    let item = info.items[position];
    if item.deleted {
        return Err(format!("item {position} was deleted by its owner"));
    }
    if !item.live(epoch) {
        return Err(format!(
            "item {position}'s paid epochs ended at epoch {}",
            item.end_epoch
        ));
    }
    Ok(())
}

/// Reads item `name` of the certified batch `info` into `sink`, refused if the chain says it has
/// ended by storage epoch `epoch`. `told` hears the item's length (or why not) as soon as the
/// batch's index is read, before any of its bytes. The item's last bytes follow the whole-blob
/// check. Runs on a multi-threaded tokio runtime.
pub async fn read_item(
    info: &BlobInfo,
    epoch: u64,
    name: &str,
    sink: &mut impl Sink,
    mut told: impl FnMut(Result<u64, String>) + Send,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<ItemRead, PublishError> {
    use crate::batch::{Found, ItemSink};
    let no_item = |reason: String| PublishError::NoItem {
        blob_id: info.blob_id,
        name: name.to_string(),
        reason,
    };
    if info.items.is_empty() {
        let reason = "it is not a batch".to_string();
        told(Err(reason.clone()));
        return Err(no_item(reason));
    }
    let on_index = Box::new(|found: &Found| {
        let verdict = match found {
            Found::Item {
                index,
                position,
                range,
            } => item_verdict(info, epoch, index.entries.len(), *position)
                .map(|()| range.end - range.start),
            Found::Missing { .. } => Err("its index has no item of that name".to_string()),
            Found::Bad(e) => Err(format!("its bytes are not a batch ({e})")),
            Found::Reading => Err("its index could not be read".to_string()),
        };
        told(verdict.clone());
        verdict.map(|_| ())
    });
    let mut items = ItemSink::new(sink, Some(name), info.length, on_index);
    let fetched = read_blob(info, &mut items, progress).await;
    if let Some(why) = items.refused.take() {
        return Err(no_item(why));
    }
    let fetched = fetched?;
    items.finish().await.map_err(|e| PublishError::File {
        path: "output".into(),
        reason: e.to_string(),
    })?;
    if let Some(why) = items.refused.take() {
        return Err(no_item(why));
    }
    match items.found {
        Found::Item {
            position, range, ..
        } => Ok(ItemRead {
            fetched,
            position,
            length: range.end - range.start,
        }),
        _ => Err(no_item("its index could not be read".into())),
    }
}

/// The index of the certified batch `info` (read whole, so checked like any read).
pub async fn read_index(
    info: &BlobInfo,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<crate::batch::Index, PublishError> {
    use crate::batch::{Found, ItemSink};
    let mut discard = Discard;
    let mut items = ItemSink::new(
        &mut discard,
        None,
        info.length,
        Box::new(|_: &Found| Ok(())),
    );
    read_blob(info, &mut items, progress).await?;
    items.finish().await.map_err(|e| PublishError::File {
        path: "output".into(),
        reason: e.to_string(),
    })?;
    match items.found {
        Found::Missing { index } => Ok(index),
        Found::Bad(e) => Err(e.into()),
        _ => Err(crate::batch::BatchError::NotABatch.into()),
    }
}

/// Reads item `name` of batch `blob_id` into `out` (as `out.partial`, renamed when whole and
/// checked). Runs on a multi-threaded tokio runtime.
pub async fn get_item(
    chain: &NodeClient,
    blob_id: B256,
    name: &str,
    out: &Path,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<ItemRead, PublishError> {
    let info = certified_blob(chain, blob_id).await?;
    let epoch = chain.storage().await?.epoch;
    let partial = partial_path(out);
    let file = File::create(&partial).map_err(|e| file_error(&partial, e))?;
    let mut sink = FileSink(file);
    let read = read_item(&info, epoch, name, &mut sink, |_| {}, progress).await;
    finish_partial(read, sink, &partial, out)
}

fn partial_path(out: &Path) -> PathBuf {
    out.with_extension(match out.extension() {
        Some(e) => format!("{}.partial", e.to_string_lossy()),
        None => "partial".into(),
    })
}

/// Renames the partial file to `out` if the read succeeded, removes it if not.
fn finish_partial<T>(
    read: Result<T, PublishError>,
    sink: FileSink,
    partial: &Path,
    out: &Path,
) -> Result<T, PublishError> {
    match read {
        Ok(done) => {
            sink.0.sync_all().map_err(|e| file_error(partial, e))?;
            std::fs::rename(partial, out).map_err(|e| file_error(out, e))?;
            Ok(done)
        }
        Err(e) => {
            let _ = std::fs::remove_file(partial);
            Err(e)
        }
    }
}

/// The chain's registration of `blob_id`, if it can be read (registered and certified).
pub async fn certified_blob(chain: &NodeClient, blob_id: B256) -> Result<BlobInfo, PublishError> {
    let info = match chain.blob(blob_id).await {
        Ok(info) => info,
        Err(e) if e.is_code(code::UNKNOWN_BLOB) => {
            return Err(PublishError::NotAvailable {
                blob_id,
                reason: "never registered, or its paid epochs are over".into(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    if info.certified_height.is_none() {
        return Err(PublishError::NotAvailable {
            blob_id,
            reason: "registered but not certified yet (the writer has not finished)".into(),
        });
    }
    Ok(info)
}

/// Reads the certified blob `info` from its committee into `sink`, window by window; the last
/// write is followed by the whole-blob check, so a caller must not treat the bytes as the blob
/// unless this returns `Ok`.
pub async fn read_blob(
    info: &BlobInfo,
    sink: &mut impl Sink,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Fetched, PublishError> {
    let blob_id = info.blob_id;
    let mut members = members(info);
    let metadata = fetch_metadata(&mut members, &blob_id).await?;
    let layout = metadata.layout()?;
    let read_from = read_into(&mut members, &metadata, layout, sink, progress).await?;
    let skipped = members
        .iter()
        .filter_map(|m| m.failed.clone().map(|f| format!("{}: {f}", m.address)))
        .collect();
    Ok(Fetched {
        blob_id,
        length: layout.length,
        read_from,
        skipped,
    })
}

async fn fetch_metadata(members: &mut [Member], id: &B256) -> Result<Metadata, PublishError> {
    for m in members.iter_mut() {
        match m.client.metadata(id).await {
            Ok(metadata) => return Ok(metadata),
            Err(e) => m.failed = Some(e.to_string()),
        }
    }
    Err(PublishError::Unreadable {
        blob_id: *id,
        needed: 1,
        failures: failures(members),
    })
}

/// Picks members until n − 2f serve primary leaves that match the metadata.
async fn select(
    members: &mut [Member],
    selected: &mut Vec<usize>,
    decoder: &mut BlobDecoder,
    id: &B256,
) -> Result<(), PublishError> {
    let layout = *decoder.layout();
    let need = layout.primary_source();
    // Systematic slivers first: their parts are the blob's bytes, nothing to decode.
    let mut order: Vec<usize> = (0..layout.n())
        .map(|s| position_of(s, layout.nodes, id))
        .collect();
    order.retain(|p| !selected.contains(p) && members[*p].failed.is_none());
    for p in order {
        if selected.len() == need {
            break;
        }
        let m = &mut members[p];
        match m.client.leaves(id, Axis::Primary).await {
            Ok(leaves) => match decoder.trust_leaves(m.sliver, leaves) {
                Ok(()) => selected.push(p),
                Err(e) => m.failed = Some(e.to_string()),
            },
            Err(e) => m.failed = Some(e.to_string()),
        }
    }
    if selected.len() < need {
        return Err(PublishError::Unreadable {
            blob_id: *id,
            needed: need,
            failures: failures(members),
        });
    }
    Ok(())
}

async fn read_into(
    members: &mut [Member],
    metadata: &Metadata,
    layout: Layout,
    sink: &mut impl Sink,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Vec<Address>, PublishError> {
    let id = metadata.blob_id();
    let mut decoder = BlobDecoder::new(metadata.clone())?;
    let mut selected: Vec<usize> = Vec::new();
    let part = layout.primary_segment_bytes();
    let per_window = segments_per_window(part);
    let mut from = 0;
    // The last window is held back until the whole blob checks out, so a stream reader (whose
    // answer has a known length) never receives every byte of an inconsistent blob.
    let mut held: Option<Vec<u8>> = None;
    let sink_error = |e: std::io::Error| PublishError::File {
        path: "output".into(),
        reason: e.to_string(),
    };
    while from < layout.segments {
        select(members, &mut selected, &mut decoder, &id).await?;
        let to = (from + per_window).min(layout.segments);
        let fetches = selected.iter().map(|p| {
            members[*p]
                .client
                .parts(&id, Axis::Primary, from, to - from)
        });
        let fetched = futures::future::join_all(fetches).await;
        let mut parts = Vec::with_capacity(selected.len());
        let mut retry = false;
        for (p, result) in selected.clone().into_iter().zip(fetched) {
            match result {
                Ok(bytes) if bytes.len() == (to - from) as usize * part => {
                    parts.push((members[p].sliver, bytes))
                }
                Ok(bytes) => {
                    retry |= drop_member(
                        members,
                        &mut selected,
                        p,
                        format!("answered {} bytes for {} parts", bytes.len(), to - from),
                    )
                }
                Err(e) => retry |= drop_member(members, &mut selected, p, e.to_string()),
            }
        }
        if retry {
            continue;
        }
        let mut done = from;
        let mut out = Vec::new();
        let mut bad_sliver = None;
        tokio::task::block_in_place(|| -> Result<(), PublishError> {
            for k in 0..(to - from) as usize {
                let rows: Vec<(usize, &[u8])> = parts
                    .iter()
                    .map(|(i, b)| (*i, &b[k * part..(k + 1) * part]))
                    .collect();
                match decoder.push(&rows) {
                    Ok(data) => out.extend_from_slice(&data),
                    Err(BlobError::WrongSliver(_, i)) => {
                        bad_sliver = Some(i);
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
                done += 1;
            }
            Ok(())
        })?;
        if let Some(previous) = held.replace(out) {
            sink.write(previous).await.map_err(sink_error)?;
        }
        if let Some(i) = bad_sliver {
            let p = selected
                .iter()
                .copied()
                .find(|p| members[*p].sliver == i)
                .expect("a selected sliver");
            drop_member(
                members,
                &mut selected,
                p,
                format!("served primary sliver {i} parts that do not match its commitment"),
            );
        }
        if done > 0 {
            progress(Progress::Reading {
                done: layout.segment_range(done - 1).end,
                total: layout.length,
            });
        }
        from = done;
    }
    decoder.finish()?;
    if let Some(last) = held {
        sink.write(last).await.map_err(sink_error)?;
    }
    Ok(selected.iter().map(|p| members[*p].address).collect())
}

fn drop_member(
    members: &mut [Member],
    selected: &mut Vec<usize>,
    position: usize,
    why: String,
) -> bool {
    tracing::warn!(node = %members[position].address, "skipping storage node: {why}");
    members[position].failed = Some(why);
    selected.retain(|p| *p != position);
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_certificate_is_cut_to_fit_the_chains_transactions() {
        // The devnet's 2048 bytes: 26 signatures (a committee of up to 37 nodes) in one transaction.
        assert_eq!(super::signatures_per_tx(2048), 26);
        assert_eq!(super::signatures_per_tx(256), 1);
        assert_eq!(super::signatures_per_tx(1 << 20), 16_127);
    }
}
