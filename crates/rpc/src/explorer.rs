//! The explorer at `/explorer` (docs/explorer.md): a page and its script and style, built into
//! the binary, that read everything they show from this API (no request leaves the machine); and
//! the list route it pages blocks with, `GET /v1/blocks`.

use super::{agents::limit, ok, Answered, ApiError, ApiState};
use axum::{
    extract::{Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use mycel_chain::TxOutcome;
use mycel_types::api::{self, code};
use std::collections::BTreeMap;

const INDEX_HTML: &str = include_str!("explorer/index.html");
const APP_JS: &str = include_str!("explorer/app.js");
const APP_CSS: &str = include_str!("explorer/app.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `GET /v1/blocks?before=H&limit=N`: finalized blocks below height `before` (default: all),
/// newest first, at most `limit` (1–100, default 100).
pub(super) async fn block_list(
    State(api): State<ApiState>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answered<api::BlockList> {
    for key in params.keys() {
        if key != "before" && key != "limit" {
            return Err(ApiError::bad_request(
                code::BAD_QUERY,
                format!("unknown parameter '{key}' (before, limit)"),
            ));
        }
    }
    let limit = limit(&params)?;
    let height = api.node.status().latest_height;
    let before = match params.get("before") {
        None => height.saturating_add(1),
        Some(text) => text.parse::<u64>().map_err(|_| {
            ApiError::bad_request(code::BAD_QUERY, format!("before '{text}' is not a height"))
        })?,
    }
    .min(height.saturating_add(1));
    let mut blocks = Vec::new();
    let mut next = before;
    while next > 0 && blocks.len() < limit {
        next -= 1;
        if let Some(b) = api.node.block(next).await {
            blocks.push(api::BlockSummary {
                height: b.height,
                hash: b.hash,
                timestamp_ms: b.timestamp_ms,
                proposer: b.proposer.clone(),
                tx_count: b.txs.len(),
                failed: b
                    .txs
                    .iter()
                    .filter(|t| matches!(t.result, Some(TxOutcome::Failed { .. })))
                    .count(),
            });
        }
    }
    Ok(ok(api::BlockList {
        blocks,
        next_before: (next > 0).then_some(next),
        height,
    }))
}
