//! The publisher: `PUT /v1/blobs?epochs=N` stores the request body as a blob, paid by the storage
//! node's own key, for clients that speak HTTP and nothing else (`curl -T FILE`).
//!
//! The body streams to a spool file on the node's disk (never whole in memory) under mycel-http's
//! streamed-body limits: at most [`PublisherConfig::max_bytes`], and a client that sends slower
//! than the minimum rate after a grace is cut off (408). Then the file is written like `mycel blob
//! put` writes one ([`crate::publish::put`]): encoded, paid for, uploaded to the committee and
//! certified, and the answer is `{blob_id, length, paid, end_epoch, certified_height}`. The write
//! runs on to its certificate even if the client leaves, so what was paid for is stored; the
//! spool file is removed either way.
//!
//! A publisher spends its operator's MYC for whoever may call it, so it is off unless the node is
//! started with one, one upload runs at a time (503 `busy`), and it either needs a bearer token
//! (`Authorization: Bearer TOKEN`, 401 otherwise) or listens on loopback only (refused at start
//! otherwise).

use crate::node::{Refusal, StorageNode};
use crate::publish::{self, PublishError, Source};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use futures::StreamExt as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncWriteExt as _;

/// How a storage node publishes blobs for HTTP clients.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// The largest upload (413 above; a declared length above it is refused before it is read).
    pub max_bytes: u64,
    /// The most epochs one upload may ask for (it is the operator who pays).
    pub max_epochs: u64,
    /// Callers must send `Authorization: Bearer TOKEN`; without one the node must listen on
    /// loopback only.
    pub token: Option<String>,
    /// After a grace of the server's body timeout, the slowest an upload may arrive.
    pub min_bytes_per_sec: u64,
}

impl PublisherConfig {
    /// 1 GiB uploads, 52 epochs, 256 KiB/s at least.
    pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
    pub const DEFAULT_MAX_EPOCHS: u64 = 52;
    pub const DEFAULT_MIN_BYTES_PER_SEC: u64 = 256 << 10;
}

impl Default for PublisherConfig {
    /// The defaults above, without a token (loopback only).
    fn default() -> Self {
        PublisherConfig {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_epochs: Self::DEFAULT_MAX_EPOCHS,
            token: None,
            min_bytes_per_sec: Self::DEFAULT_MIN_BYTES_PER_SEC,
        }
    }
}

/// The answer to a publish.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Published {
    pub blob_id: alloy_primitives::B256,
    pub length: u64,
    /// MYC base units the node paid (0 if the blob was stored already).
    pub paid: String,
    pub end_epoch: u64,
    pub certified_height: u64,
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct PublishQuery {
    epochs: Option<u64>,
}

/// The spool directory under a node's directory; emptied when the node starts.
pub(crate) fn spool_dir(dir: &std::path::Path) -> std::io::Result<PathBuf> {
    let spool = dir.join("spool");
    if spool.exists() {
        std::fs::remove_dir_all(&spool)?;
    }
    std::fs::create_dir_all(&spool)?;
    Ok(spool)
}

/// A spool file, removed when dropped.
struct Spooled(PathBuf);

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn refusal(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal(status, code, message.into())
}

/// Whether `headers` carry the bearer `token` (compared in constant time).
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

pub(crate) async fn publish_blob(
    State(node): State<StorageNode>,
    Query(query): Query<PublishQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Published>, Refusal> {
    let Some((config, spool)) = node.publisher() else {
        return Err(refusal(
            StatusCode::NOT_FOUND,
            "not_a_publisher",
            "this storage node does not publish blobs (start it with --publish); use `mycel blob put`",
        ));
    };
    if let Some(token) = &config.token {
        if !authorized(&headers, token) {
            return Err(refusal(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this publisher needs `Authorization: Bearer TOKEN`",
            ));
        }
    }
    let epochs = query.epochs.unwrap_or(1);
    if epochs == 0 || epochs > config.max_epochs {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "bad_epochs",
            format!(
                "epochs={epochs}: this publisher pays for 1 to {} epochs",
                config.max_epochs
            ),
        ));
    }
    let _permit = node.publishing().try_acquire_owned().map_err(|_| {
        refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "this publisher is storing another upload; try again shortly",
        )
    })?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = spool.join(format!(
        "upload-{}.part",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let spooled = Spooled(path.clone());
    let length = spool_body(body, &path, config.max_bytes).await?;
    tracing::info!(bytes = length, epochs, "publishing an upload");
    // The write runs to its end even if the client goes away: what is paid for gets stored.
    let (chain, signer) = (node.chain().clone(), node.signer().clone());
    let write = tokio::spawn(async move {
        let _spooled = spooled;
        let source = Source::file(&path, epochs)?;
        publish::put(&chain, &signer, source, &|_| {}).await
    });
    let stored = write
        .await
        .map_err(|e| refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| match e {
            PublishError::Chain(ref c) if c.is_code("insufficient_balance") => refusal(
                StatusCode::PAYMENT_REQUIRED,
                "publisher_out_of_funds",
                e.to_string(),
            ),
            e => refusal(StatusCode::BAD_GATEWAY, "publish_failed", e.to_string()),
        })?;
    Ok(Json(Published {
        blob_id: stored.blob_id,
        length: stored.length,
        paid: stored.paid.to_string(),
        end_epoch: stored.end_epoch,
        certified_height: stored.certified_height,
    }))
}

/// Streams `body` into a new file at `path`; its length. The body's own limits (size, rate) come
/// back as mycel-http's errors, answered as the server answers them.
async fn spool_body(body: Body, path: &std::path::Path, max: u64) -> Result<u64, Refusal> {
    let disk = |e: std::io::Error| {
        refusal(
            StatusCode::INSUFFICIENT_STORAGE,
            "disk",
            format!("cannot spool the upload: {e}"),
        )
    };
    let mut file = tokio::fs::File::create(path).await.map_err(disk)?;
    let mut stream = body.into_data_stream();
    let mut length = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| match mycel_http::BodyError::from_axum(&e) {
            Some(b) => Refusal(b.status(), b.code(), b.to_string()),
            None => refusal(StatusCode::BAD_REQUEST, "bad_body", e.to_string()),
        })?;
        length += chunk.len() as u64;
        if length > max {
            return Err(refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("the upload is over {max} bytes, the most this publisher stores"),
            ));
        }
        file.write_all(&chunk).await.map_err(disk)?;
    }
    file.sync_all().await.map_err(disk)?;
    Ok(length)
}
