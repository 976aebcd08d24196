//! The sync API followers read (`mycel node --follow`): certified batches of finalized blocks and
//! state snapshots, in the binary encodings docs/node-api.md describes.

use super::{ApiError, ApiState};
use axum::{
    body::Body,
    extract::{Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use mycel_chain::Node;
use mycel_types::api::code;
use std::{collections::BTreeMap, sync::Arc, time::Duration};

/// Longest a sync request may wait for its first block.
const MAX_WAIT_MS: u64 = 30_000;

fn number(params: &BTreeMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|text| {
            text.parse().map_err(|_| {
                ApiError::bad_request(code::BAD_QUERY, format!("{name}: '{text}' is not a number"))
            })
        })
        .transpose()
}

fn binary(bytes: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

/// `GET /v1/sync/blocks?from=H[&max=N][&wait_ms=W]`: finalized blocks from `H` and the
/// certificate of the last; 204 if block `H` did not come within `W` ms.
pub(super) async fn blocks(
    State(api): State<ApiState>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let from = number(&params, "from")?.ok_or_else(|| {
        ApiError::bad_request(code::BAD_QUERY, "from (a block height) is required")
    })?;
    if from == 0 {
        return Err(ApiError::bad_request(
            code::BAD_HEIGHT,
            "from must be at least 1: the genesis block comes from the genesis file",
        ));
    }
    let max = number(&params, "max")?.unwrap_or(Node::SYNC_MAX_BATCH);
    let wait = Duration::from_millis(number(&params, "wait_ms")?.unwrap_or(0).min(MAX_WAIT_MS));
    match api.node.sync_blocks(from, max, wait).await {
        Ok(Some(bytes)) => Ok(binary(Body::from(bytes))),
        Ok(None) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Err(ApiError::not_found(code::NOT_KEPT, e.to_string())),
    }
}

/// The encoded snapshot, shared by every answer that serves it.
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// `GET /v1/sync/snapshot`: the finalized state and the batch proving its root.
pub(super) async fn snapshot(State(api): State<ApiState>) -> Result<Response, ApiError> {
    match api.node.sync_snapshot().await {
        Ok(bytes) => Ok(binary(Body::from(bytes::Bytes::from_owner(Shared(bytes))))),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::NO_SNAPSHOT,
            e.to_string(),
        )),
    }
}
