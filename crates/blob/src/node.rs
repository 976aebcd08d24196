//! The storage node (`mycel storage`): keeps its slivers of the blobs the chain says it must, and
//! serves them back.
//!
//! Routes (docs/storage.md), all under `/v1/slivers/{blob_id}`:
//! - `PUT …/metadata`: the blob's metadata (binary). Accepted only if the blob is registered on
//!   chain, not deleted, on a committee this node is in, with the metadata's id, node count and
//!   length — so nothing unpaid is ever stored, whoever sends it.
//! - `PUT …/{primary|secondary}?from=S`: sliver parts from segment S (a whole number of parts,
//!   at most [`MAX_UPLOAD_BYTES`]); `POST …/{axis}/seal` checks the whole sliver against its
//!   root and keeps it. A sliver that does not match is refused and not kept.
//! - `GET …/confirmation`: once both slivers are kept, this node's signed
//!   [`StorageConfirmation`] — what a writer gathers 2f + 1 of to certify the blob.
//! - `GET …/metadata`, `GET …/{axis}/leaves`, `GET …/{axis}?from=S&count=K` (at most
//!   [`MAX_UPLOAD_BYTES`] per answer): what readers fetch.
//! - `GET /v1/blobs/{id}`: the aggregator — the whole blob, read from its committee and streamed
//!   (at most [`CONCURRENT_READS`] at once).
//! - `GET /v1/health`: the node's address and what it holds.
//!
//! Bounds: every request body goes through `mycel-http` (deadlines, a connection cap, a body cap);
//! a check of a whole sliver runs on a blocking thread, at most [`CONCURRENT_SEALS`] at a time,
//! recovery and challenge answers at most [`CONCURRENT_HELPS`], whole-blob reads
//! [`CONCURRENT_READS`];
//! a sweep drops blobs the chain no longer knows (expired) and rebuilds from the other nodes what
//! this node lacks of its committees' certified blobs ([`crate::recover`]).

use crate::store::{Assignment, Store, StoreError};
use crate::{Axis, Metadata};
use alloy_primitives::{Address, B256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use mycel_client::NodeClient;
use mycel_types::api::{code, BlobInfo, BlobStatus, ErrorBody, ErrorDetail};
use mycel_types::storage::{sliver_of, StorageConfirmation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The largest sliver upload or download in one request.
pub const MAX_UPLOAD_BYTES: usize = 16 << 20;
/// Whole-sliver checks running at once.
pub const CONCURRENT_SEALS: usize = 2;
/// Recovery and challenge answers computed at once (each reads and extends up to 16 MiB).
pub const CONCURRENT_HELPS: usize = 4;
/// Whole blobs read for `GET /v1/blobs/{id}` at once; more get 503.
pub const CONCURRENT_READS: usize = 2;
/// How often blobs the chain dropped are removed.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub address: Address,
    pub blobs: u64,
    pub bytes: u64,
}

/// `GET /v1/slivers/{id}/confirmation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub node: Address,
    pub committee: u64,
    /// 65 bytes `r ‖ s ‖ v`, 0x-hex.
    pub signature: alloy_primitives::Bytes,
}

struct NodeState {
    store: Store,
    signer: PrivateKeySigner,
    chain: NodeClient,
    seals: Semaphore,
    helps: Semaphore,
    reads: Arc<Semaphore>,
    /// The last storage epoch this node challenged the others in.
    challenged: std::sync::Mutex<Option<u64>>,
    maintain_every: Duration,
    /// Publishing for HTTP clients (`PUT /v1/blobs`), and its spool directory.
    publisher: Option<(crate::publisher::PublisherConfig, std::path::PathBuf)>,
    publishing: Arc<Semaphore>,
}

/// A storage node's service: its routes and its sweep.
#[derive(Clone)]
pub struct StorageNode(Arc<NodeState>);

impl StorageNode {
    pub fn open(
        dir: &std::path::Path,
        signer: PrivateKeySigner,
        chain: NodeClient,
    ) -> std::io::Result<StorageNode> {
        Ok(StorageNode(Arc::new(NodeState {
            store: Store::open(dir)?,
            signer,
            chain,
            seals: Semaphore::new(CONCURRENT_SEALS),
            helps: Semaphore::new(CONCURRENT_HELPS),
            reads: Arc::new(Semaphore::new(CONCURRENT_READS)),
            challenged: std::sync::Mutex::new(None),
            maintain_every: SWEEP_EVERY,
            publisher: None,
            publishing: Arc::new(Semaphore::new(1)),
        })))
    }

    pub fn address(&self) -> Address {
        self.0.signer.address()
    }

    pub(crate) fn publisher(
        &self,
    ) -> Option<(&crate::publisher::PublisherConfig, &std::path::Path)> {
        self.0.publisher.as_ref().map(|(c, d)| (c, d.as_path()))
    }

    pub(crate) fn publishing(&self) -> Arc<Semaphore> {
        self.0.publishing.clone()
    }

    pub(crate) fn chain(&self) -> &NodeClient {
        &self.0.chain
    }

    pub(crate) fn signer(&self) -> &PrivateKeySigner {
        &self.0.signer
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/health", get(health))
            .route("/v1/blobs", put(crate::publisher::publish_blob))
            .route("/v1/blobs/{id}", get(read_whole_blob))
            .route("/v1/blobs/{id}/items/{name}", get(read_batch_item))
            .route(
                "/v1/slivers/{id}/metadata",
                put(put_metadata).get(get_metadata),
            )
            .route("/v1/slivers/{id}/confirmation", get(confirmation))
            .route("/v1/slivers/{id}/{axis}", put(put_parts).get(get_parts))
            .route("/v1/slivers/{id}/{axis}/seal", post(seal))
            .route("/v1/slivers/{id}/{axis}/leaves", get(get_leaves))
            .route("/v1/slivers/{id}/recovery/{axis}/{target}", get(recovery))
            .route(
                "/v1/slivers/{id}/challenge/{segment}/{symbol}",
                get(challenge_answer),
            )
            .layer(axum::extract::DefaultBodyLimit::max(
                MAX_UPLOAD_BYTES + 4096,
            ))
            .with_state(self.clone())
    }

    /// Every registered blob, in id order; `None` if a page could not be read (a round of upkeep
    /// is then skipped: nothing is dropped on a partial list).
    async fn chain_blobs(&self) -> Option<Vec<BlobInfo>> {
        let mut blobs = Vec::new();
        let mut after = None;
        loop {
            let page = self.0.chain.blobs(after).await.ok()?;
            blobs.extend(page.blobs);
            match page.next {
                Some(next) => after = Some(next),
                None => return Some(blobs),
            }
        }
    }

    /// Removes blobs the chain no longer has (their paid epochs are over), and rebuilds from the
    /// other nodes what this node lacks of the certified blobs of its committees (a wiped disk, a
    /// node that was down during a write). `blobs` is the chain's list. Returns (removed,
    /// recovered).
    pub async fn maintain(&self, blobs: &[BlobInfo]) -> (usize, usize) {
        let mut removed = 0;
        let listed: std::collections::BTreeSet<B256> = blobs.iter().map(|b| b.blob_id).collect();
        for id in self.0.store.blob_ids().unwrap_or_default() {
            if listed.contains(&id) {
                continue;
            }
            // Not in the list: expired, or registered after the list was read; the chain says.
            if let Err(e) = self.0.chain.blob(id).await {
                if e.is_code(code::UNKNOWN_BLOB) && self.0.store.remove(&id).is_ok() {
                    tracing::info!(blob = %id, "dropped: the chain no longer pays for it");
                    removed += 1;
                }
            }
        }
        let mut recovered = 0;
        for info in blobs {
            let mine = info.members.iter().any(|m| m.address == self.address());
            let whole = self.0.store.has(&info.blob_id, Axis::Primary)
                && self.0.store.has(&info.blob_id, Axis::Secondary);
            if !mine || whole || info.status != BlobStatus::Certified {
                continue;
            }
            match crate::recover::recover_blob(&self.0.store, self.address(), info).await {
                Ok(r) => {
                    tracing::info!(blob = %info.blob_id, fetched = r.fetched, rebuilt = r.rebuilt, "recovered this node's slivers from the other nodes");
                    recovered += 1;
                }
                Err(e) => tracing::warn!(blob = %info.blob_id, "cannot recover yet: {e}"),
            }
        }
        (removed, recovered)
    }

    /// Once per storage epoch (from its second block, when the seed block is final), challenges
    /// every other node of the current committee on the blobs both hold that were certified
    /// before the epoch began (of `blobs`, the chain's list), and reports on chain those that
    /// fail. Returns the nodes reported.
    pub async fn challenge_others(&self, blobs: &[BlobInfo]) -> Vec<Address> {
        let Ok(info) = self.0.chain.storage().await else {
            return Vec::new();
        };
        let start = info.epoch * info.params.epoch_blocks.max(1);
        let height = self.0.chain.status().await.map(|s| s.height).unwrap_or(0);
        if height <= start || *self.0.challenged.lock().expect("not poisoned") >= Some(info.epoch) {
            return Vec::new();
        }
        let Ok(seed) = self.0.chain.block(start).await.map(|b| b.hash) else {
            return Vec::new();
        };
        // Only blobs certified before the epoch began: a node that missed a write has until then
        // to rebuild its slivers (its upkeep does) before it can be held to them.
        let blobs: Vec<&BlobInfo> = blobs
            .iter()
            .filter(|b| {
                b.status == BlobStatus::Certified && b.certified_height.is_some_and(|h| h < start)
            })
            .collect();
        let http = crate::client::SliverClient::http();
        let mut reported = Vec::new();
        for member in info.members.iter().filter(|m| m.address != self.address()) {
            // The blobs both hold, with what checks the answers: layout, metadata, its sliver.
            let mut shared = Vec::new();
            for b in blobs
                .iter()
                .filter(|b| b.members.iter().any(|m| m.address == member.address))
            {
                let Some(position) = b.members.iter().position(|m| m.address == member.address)
                else {
                    continue;
                };
                let Ok((metadata, _)) = self.0.store.metadata(&b.blob_id) else {
                    continue;
                };
                let Ok(layout) = metadata.layout() else {
                    continue;
                };
                let sliver = sliver_of(position, metadata.nodes, &b.blob_id);
                shared.push((b.blob_id, layout, metadata, sliver));
            }
            if shared.is_empty() {
                continue;
            }
            let client = crate::client::SliverClient::new(http.clone(), &member.endpoint);
            if let Err(why) =
                crate::challenge::challenge(&client, seed, member.address, &shared).await
            {
                tracing::warn!(node = %member.address, epoch = info.epoch, "failed its storage challenge: {why}");
                let (node, epoch) = (member.address, info.epoch);
                let options = mycel_client::SendOptions::timeout(Duration::from_secs(30));
                let sent = self
                    .0
                    .chain
                    .send_and_wait(&self.0.signer, &options, |f| {
                        mycel_types::TxKind::ReportStorageFailure(
                            mycel_types::tx::ReportStorageFailure {
                                from: f.from,
                                node,
                                epoch,
                                nonce: f.nonce,
                                fee: f.fee,
                            },
                        )
                    })
                    .await;
                match sent.map(|o| o.applied()) {
                    Ok(Ok(_)) => reported.push(node),
                    Ok(Err(e)) | Err(e) => {
                        tracing::warn!(node = %node, "the failure report was not applied: {e}")
                    }
                }
            }
        }
        *self.0.challenged.lock().expect("not poisoned") = Some(info.epoch);
        reported
    }

    /// Maintains and challenges every `maintain_every` (the first time at once), for as long as
    /// the task runs.
    pub async fn sweep_forever(self) {
        loop {
            if let Some(blobs) = self.chain_blobs().await {
                self.maintain(&blobs).await;
                self.challenge_others(&blobs).await;
            }
            tokio::time::sleep(self.0.maintain_every).await;
        }
    }
}

/// A refusal: an HTTP status with `{"error": {"code", "message"}}`.
pub struct Refusal(
    pub(crate) StatusCode,
    pub(crate) &'static str,
    pub(crate) String,
);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail::new(self.1, self.2),
        };
        (self.0, Json(body)).into_response()
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        match e {
            StoreError::NoMetadata(_) | StoreError::Missing(_) => {
                Refusal(StatusCode::NOT_FOUND, "not_stored", e.to_string())
            }
            StoreError::Io(_) => Refusal(StatusCode::INTERNAL_SERVER_ERROR, "disk", e.to_string()),
            StoreError::Blob(crate::BlobError::WrongSliver(..)) => Refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "sliver_mismatch",
                e.to_string(),
            ),
            _ => Refusal(StatusCode::BAD_REQUEST, "bad_sliver_request", e.to_string()),
        }
    }
}

type Answer<T> = Result<T, Refusal>;

fn stopping() -> Refusal {
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "stopping",
        "the node is stopping".into(),
    )
}

fn blob_id(id: &str) -> Answer<B256> {
    id.parse().map_err(|_| {
        Refusal(
            StatusCode::BAD_REQUEST,
            code::BAD_BLOB_ID,
            format!("`{id}` is not a blob id"),
        )
    })
}

fn axis(name: &str) -> Answer<Axis> {
    name.parse().map_err(|e: crate::BlobError| {
        Refusal(StatusCode::NOT_FOUND, code::NOT_FOUND, e.to_string())
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Answer<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(Refusal::from)
}

async fn health(State(node): State<StorageNode>) -> Answer<Json<Health>> {
    let n = node.clone();
    let (blobs, bytes) =
        blocking(move || Ok((n.0.store.blob_ids()?.len() as u64, n.0.store.bytes()?))).await?;
    Ok(Json(Health {
        address: node.address(),
        blobs,
        bytes,
    }))
}

async fn put_metadata(
    State(node): State<StorageNode>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer<StatusCode> {
    let id = blob_id(&id)?;
    let bad = |m: String| Refusal(StatusCode::BAD_REQUEST, "bad_metadata", m);
    let metadata = Metadata::decode(&body).map_err(|e| bad(e.to_string()))?;
    if metadata.blob_id() != id {
        return Err(bad(format!(
            "this metadata is of blob {}, not {id}",
            metadata.blob_id()
        )));
    }
    let info = node
        .0
        .chain
        .blob(id)
        .await
        .map_err(|e| match e.is_code(code::UNKNOWN_BLOB) {
            true => Refusal(
                StatusCode::NOT_FOUND,
                code::UNKNOWN_BLOB,
                format!("blob {id} is not registered (paid for) on chain"),
            ),
            false => Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "chain_unreachable",
                e.to_string(),
            ),
        })?;
    if info.status == BlobStatus::Deleted {
        return Err(Refusal(
            StatusCode::GONE,
            "blob_deleted",
            format!("blob {id} was deleted"),
        ));
    }
    let position = info
        .members
        .iter()
        .position(|m| m.address == node.address())
        .ok_or_else(|| {
            Refusal(
                StatusCode::FORBIDDEN,
                "not_in_committee",
                format!(
                    "this node is not in committee {} of blob {id}",
                    info.committee
                ),
            )
        })?;
    if usize::from(metadata.nodes) != info.members.len() || metadata.length != info.length {
        return Err(bad(format!(
            "the chain registered {id} as {} bytes on {} nodes; this metadata says {} bytes on {}",
            info.length,
            info.members.len(),
            metadata.length,
            metadata.nodes
        )));
    }
    let assignment = Assignment {
        committee: info.committee,
        position,
        sliver: sliver_of(position, metadata.nodes, &id),
    };
    let n = node.clone();
    blocking(move || Ok(n.0.store.put_metadata(&metadata, assignment)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_metadata(State(node): State<StorageNode>, Path(id): Path<String>) -> Answer<Vec<u8>> {
    let id = blob_id(&id)?;
    let (metadata, _) = node.0.store.metadata(&id)?;
    Ok(metadata.encode())
}

#[derive(Deserialize)]
struct Window {
    #[serde(default)]
    from: u64,
    count: Option<u64>,
}

async fn put_parts(
    State(node): State<StorageNode>,
    Path((id, ax)): Path<(String, String)>,
    Query(window): Query<Window>,
    body: Bytes,
) -> Answer<StatusCode> {
    let (id, ax) = (blob_id(&id)?, axis(&ax)?);
    if body.len() > MAX_UPLOAD_BYTES {
        return Err(Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("at most {MAX_UPLOAD_BYTES} bytes per request"),
        ));
    }
    if node.0.store.has(&id, ax) {
        return Ok(StatusCode::NO_CONTENT);
    }
    let n = node.clone();
    blocking(move || n.0.store.write_parts(&id, ax, window.from, &body)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn seal(
    State(node): State<StorageNode>,
    Path((id, ax)): Path<(String, String)>,
) -> Answer<StatusCode> {
    let (id, ax) = (blob_id(&id)?, axis(&ax)?);
    if node.0.store.has(&id, ax) {
        return Ok(StatusCode::NO_CONTENT);
    }
    let _permit = node.0.seals.acquire().await.map_err(|_| stopping())?;
    let n = node.clone();
    blocking(move || n.0.store.seal(&id, ax)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn confirmation(
    State(node): State<StorageNode>,
    Path(id): Path<String>,
) -> Answer<Json<Confirmation>> {
    let id = blob_id(&id)?;
    let (_, assignment) = node.0.store.metadata(&id)?;
    for ax in [Axis::Primary, Axis::Secondary] {
        if !node.0.store.has(&id, ax) {
            return Err(StoreError::Missing(ax.as_str()).into());
        }
    }
    let chain_id = node
        .0
        .chain
        .chain_params()
        .await
        .map_err(|e| {
            Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "chain_unreachable",
                e.to_string(),
            )
        })?
        .chain_id;
    let statement = StorageConfirmation {
        blobId: id,
        committee: assignment.committee,
    };
    let signature = node
        .0
        .signer
        .sign_hash_sync(&statement.signing_hash_on(chain_id))
        .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, "signing", e.to_string()))?;
    Ok(Json(Confirmation {
        node: node.address(),
        committee: assignment.committee,
        signature: signature.as_bytes().to_vec().into(),
    }))
}

async fn get_leaves(
    State(node): State<StorageNode>,
    Path((id, ax)): Path<(String, String)>,
) -> Answer<Vec<u8>> {
    let (id, ax) = (blob_id(&id)?, axis(&ax)?);
    let n = node.clone();
    blocking(move || n.0.store.leaves(&id, ax)).await
}

async fn recovery(
    State(node): State<StorageNode>,
    Path((id, ax, target)): Path<(String, String, usize)>,
    Query(window): Query<Window>,
) -> Answer<Vec<u8>> {
    let (id, ax) = (blob_id(&id)?, axis(&ax)?);
    let _permit = node.0.helps.acquire().await.map_err(|_| stopping())?;
    let n = node.clone();
    let count = window.count.unwrap_or(64);
    blocking(move || {
        crate::recover::helper_symbols(&n.0.store, &id, ax, target, window.from, count)
    })
    .await
}

/// The aggregator: the whole blob, read from its committee (this node included) and streamed as
/// it is decoded (`application/octet-stream` with its length); the last window follows the
/// whole-blob check, so an inconsistent blob is cut short, never delivered whole.
async fn read_whole_blob(
    State(node): State<StorageNode>,
    Path(id): Path<String>,
) -> Result<Response, Refusal> {
    let info = readable_blob(&node, &id).await?;
    let permit = read_permit(&node)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(2);
    let length = info.length;
    tokio::spawn(async move {
        let _permit = permit;
        let mut sink = tx.clone();
        if let Err(e) = crate::publish::read_blob(&info, &mut sink, &|_| {}).await {
            tracing::warn!(blob = %info.blob_id, "reading for a client failed: {e}");
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    streamed(rx, length)
}

/// The aggregator's item of a batch: 404 `batch_no_item` (with why) when the batch has no such
/// item or the chain says it ended (deleted, or its epochs over), decided from the batch's index
/// before any byte is sent; then the item's bytes with their length, its last ones after the
/// whole-batch check.
async fn read_batch_item(
    State(node): State<StorageNode>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    let info = readable_blob(&node, &id).await?;
    let epoch = node
        .0
        .chain
        .storage()
        .await
        .map_err(chain_unreachable)?
        .epoch;
    let permit = read_permit(&node)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(2);
    let (told_tx, told_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _permit = permit;
        let mut sink = tx.clone();
        let mut told_tx = Some(told_tx);
        let told = move |verdict| {
            if let Some(t) = told_tx.take() {
                let _ = t.send(verdict);
            }
        };
        let read = crate::publish::read_item(&info, epoch, &name, &mut sink, told, &|_| {});
        if let Err(e) = read.await {
            tracing::debug!(blob = %info.blob_id, item = %name, "reading an item for a client failed: {e}");
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    match told_rx.await {
        Ok(Ok(length)) => streamed(rx, length),
        Ok(Err(why)) => Err(Refusal(StatusCode::NOT_FOUND, "batch_no_item", why)),
        Err(_) => Err(Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "unreadable",
            "the batch could not be read from its storage nodes; try again".into(),
        )),
    }
}

fn chain_unreachable(e: impl std::fmt::Display) -> Refusal {
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "chain_unreachable",
        e.to_string(),
    )
}

/// The chain's registration of a blob a client asked to read: certified, or 404.
async fn readable_blob(
    node: &StorageNode,
    id: &str,
) -> Result<mycel_types::api::BlobInfo, Refusal> {
    use crate::publish::{self, PublishError};
    let id = blob_id(id)?;
    publish::certified_blob(&node.0.chain, id)
        .await
        .map_err(|e| match e {
            PublishError::NotAvailable { .. } => {
                Refusal(StatusCode::NOT_FOUND, code::UNKNOWN_BLOB, e.to_string())
            }
            other => chain_unreachable(other),
        })
}

fn read_permit(node: &StorageNode) -> Result<tokio::sync::OwnedSemaphorePermit, Refusal> {
    node.0.reads.clone().try_acquire_owned().map_err(|_| {
        Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("{CONCURRENT_READS} blobs are being read; try again in a few seconds"),
        )
    })
}

/// An answer of `length` bytes streamed from `rx` (an error there cuts the body short).
fn streamed(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    length: u64,
) -> Result<Response, Refusal> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "application/octet-stream")
        .header(axum::http::header::CONTENT_LENGTH, length)
        .body(axum::body::Body::from_stream(stream))
        .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

async fn challenge_answer(
    State(node): State<StorageNode>,
    Path((id, segment, symbol)): Path<(String, u64, usize)>,
) -> Answer<Vec<u8>> {
    let id = blob_id(&id)?;
    let _permit = node.0.helps.acquire().await.map_err(|_| stopping())?;
    let n = node.clone();
    blocking(move || crate::challenge::answer(&n.0.store, &id, segment, symbol)).await
}

async fn get_parts(
    State(node): State<StorageNode>,
    Path((id, ax)): Path<(String, String)>,
    Query(window): Query<Window>,
) -> Answer<Vec<u8>> {
    let (id, ax) = (blob_id(&id)?, axis(&ax)?);
    let (metadata, _) = node.0.store.metadata(&id)?;
    let layout = metadata
        .layout()
        .map_err(|e| Refusal::from(StoreError::Blob(e)))?;
    let part = match ax {
        Axis::Primary => layout.primary_segment_bytes(),
        Axis::Secondary => layout.secondary_segment_bytes(),
    };
    let most = (MAX_UPLOAD_BYTES / part).max(1) as u64;
    let count = window.count.unwrap_or(most).min(most);
    let n = node.clone();
    blocking(move || n.0.store.read_parts(&id, ax, window.from, count)).await
}

/// How to run a storage node.
pub struct NodeConfig {
    /// Where slivers are kept.
    pub dir: std::path::PathBuf,
    pub signer: PrivateKeySigner,
    pub chain: NodeClient,
    pub listen: std::net::SocketAddr,
    /// The URL other machines reach this node at [default: `http://` + the bound address].
    pub endpoint: Option<String>,
    /// MYC locked when registering [default: the chain's minimum].
    pub stake: Option<u128>,
    /// Connection limits; the body cap and deadline are raised to fit sliver uploads.
    pub limits: mycel_http::ServeLimits,
    /// How often the node sweeps, recovers and challenges [default: [`SWEEP_EVERY`]].
    pub maintain_every: Option<Duration>,
    /// Publish blobs for HTTP clients (`PUT /v1/blobs`), paid by this node's key.
    pub publisher: Option<crate::publisher::PublisherConfig>,
}

/// Why a storage node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use {dir}: {source}")]
    Dir {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Chain(#[from] mycel_client::ClientError),
    #[error("{0}")]
    Limits(#[from] mycel_http::LimitsError),
    #[error("a publisher without a token would spend this node's MYC for anyone who reaches {0}: listen on loopback, or give it a token")]
    OpenPublisher(std::net::SocketAddr),
}

/// A storage node that is serving.
pub struct Started {
    pub addr: std::net::SocketAddr,
    pub endpoint: String,
    pub address: Address,
    /// Whether this start registered the node on chain (false: it already was).
    pub registered_now: bool,
}

/// Binds, registers on chain unless already registered (locking the stake; a registered node
/// whose endpoint changed moves it), and returns the
/// future that serves (and sweeps expired blobs) until `shutdown`.
pub async fn start(
    config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<
    (
        Started,
        impl std::future::Future<Output = std::io::Result<()>> + Send,
    ),
    StartError,
> {
    let mut node = StorageNode::open(&config.dir, config.signer.clone(), config.chain.clone())
        .map_err(|source| StartError::Dir {
            dir: config.dir.clone(),
            source,
        })?;
    if let Some(publisher) = &config.publisher {
        if publisher.token.is_none() && !config.listen.ip().is_loopback() {
            return Err(StartError::OpenPublisher(config.listen));
        }
    }
    {
        let state = Arc::get_mut(&mut node.0).expect("not shared yet");
        if let Some(every) = config.maintain_every {
            state.maintain_every = every;
        }
        if let Some(publisher) = config.publisher.clone() {
            let spool =
                crate::publisher::spool_dir(&config.dir).map_err(|source| StartError::Dir {
                    dir: config.dir.clone(),
                    source,
                })?;
            state.publisher = Some((publisher, spool));
        }
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let endpoint = config
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    // The chain may still be starting (a localnet starts its nodes together): wait up to 60 s.
    let mut waited = Duration::ZERO;
    let info = loop {
        match config.chain.storage().await {
            Ok(info) => break info,
            Err(e @ mycel_client::ClientError::Unreachable { .. })
                if waited < Duration::from_secs(60) =>
            {
                tracing::debug!("waiting for the chain: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                waited += Duration::from_millis(500);
            }
            Err(e) => return Err(e.into()),
        }
    };
    let member = info.members.iter().find(|m| m.address == node.address());
    let registered_now = member.is_none();
    // Register (locking the stake), or move the registered endpoint to this one (no stake).
    let stake = match member {
        None => Some(config.stake.unwrap_or(info.params.min_node_stake)),
        Some(m) if m.endpoint != endpoint => Some(0),
        Some(_) => None,
    };
    if let Some(stake) = stake {
        let endpoint = endpoint.clone();
        let options = mycel_client::SendOptions::timeout(Duration::from_secs(60));
        config
            .chain
            .send_and_wait(&config.signer, &options, |f| {
                mycel_types::TxKind::RegisterStorageNode(mycel_types::tx::RegisterStorageNode {
                    from: f.from,
                    endpoint,
                    stake: alloy_primitives::U256::from(stake),
                    nonce: f.nonce,
                    fee: f.fee,
                })
            })
            .await?
            .applied()?;
    }
    let limits = mycel_http::ServeLimits {
        max_body_bytes: MAX_UPLOAD_BYTES + 4096,
        body_timeout: Duration::from_secs(120),
        ..config.limits
    };
    let mut server = mycel_http::Server::new(listener, node.router(), limits)?;
    if let Some(publisher) = &config.publisher {
        // The one route whose body is not read whole first: it streams to the spool file.
        server = server.stream_bodies(mycel_http::StreamedBodies {
            routes: vec![(axum::http::Method::PUT, "/v1/blobs".into())],
            max_bytes: publisher.max_bytes,
            min_bytes_per_sec: publisher.min_bytes_per_sec,
        })?;
    }
    let sweeper = tokio::spawn(node.clone().sweep_forever());
    let serving = async move {
        let result = server.run(shutdown).await;
        sweeper.abort();
        result
    };
    Ok((
        Started {
            addr,
            endpoint,
            address: node.address(),
            registered_now,
        },
        serving,
    ))
}
