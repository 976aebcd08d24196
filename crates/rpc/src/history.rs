//! The emission history routes (docs/node-api.md, "Emission history"): every kept block's
//! emission receipt, a subnet's epoch payouts and one UID's, paged newest first with `before`
//! and `limit` (1–100, default 100). The node keeps the last `history.blocks` receipts and
//! `history.epochs` epochs per subnet (its config); older ones answer 404 `not_kept`.

use super::{agents::limit, ok, Answered, ApiError, ApiState};
use axum::extract::{Path, Query, State};
use mycel_types::api::{self, code};
use std::collections::BTreeMap;

/// `before` (default: everything) after checking that only `before` and `limit` are given.
fn before(params: &BTreeMap<String, String>) -> Result<u64, ApiError> {
    for key in params.keys() {
        if key != "before" && key != "limit" {
            return Err(ApiError::bad_request(
                code::BAD_QUERY,
                format!("unknown parameter '{key}' (before, limit)"),
            ));
        }
    }
    match params.get("before") {
        None => Ok(u64::MAX),
        Some(text) => text.parse().map_err(|_| {
            ApiError::bad_request(code::BAD_QUERY, format!("before '{text}' is not a height"))
        }),
    }
}

fn netuid(text: &str) -> Result<u16, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(code::BAD_NETUID, format!("'{text}' is not a netuid")))
}

/// `GET /v1/emission/receipts`.
pub(super) async fn receipts(
    State(api): State<ApiState>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answered<api::EmissionReceiptList> {
    let (before, limit) = (before(&params)?, limit(&params)?);
    let height = api.node.status().latest_height;
    let page = api
        .node
        .with_emission_history(|h| h.receipts(before, limit));
    Ok(ok(api::EmissionReceiptList {
        receipts: page.items.iter().map(|r| (**r).clone()).collect(),
        next_before: page.next_before,
        oldest_height: page.oldest,
        height,
    }))
}

/// `GET /v1/emission/receipts/{height}`.
pub(super) async fn receipt(
    State(api): State<ApiState>,
    Path(height): Path<String>,
) -> Answered<api::EmissionReceipt> {
    let height: u64 = height.parse().map_err(|_| {
        ApiError::bad_request(
            code::BAD_HEIGHT,
            format!("'{height}' is not a block height (or use 'latest')"),
        )
    })?;
    let (found, oldest) = api
        .node
        .with_emission_history(|h| (h.receipt(height), h.receipts(u64::MAX, 1).oldest));
    match found {
        Some(r) => Ok(ok((*r).clone())),
        None => Err(ApiError::not_found(
            code::NOT_KEPT,
            match oldest {
                Some(oldest) => format!(
                    "no emission receipt of block {height} is kept (this node keeps blocks from \
                     {oldest} on, and none before the first subnet)"
                ),
                None => "this node keeps no emission receipts yet".to_string(),
            },
        )),
    }
}

/// `GET /v1/subnets/{netuid}/epochs`.
pub(super) async fn epochs(
    State(api): State<ApiState>,
    Path(n): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answered<api::EpochList> {
    let netuid = netuid(&n)?;
    let (before, limit) = (before(&params)?, limit(&params)?);
    known_subnet(&api, netuid)?;
    let height = api.node.status().latest_height;
    let page = api
        .node
        .with_emission_history(|h| h.epochs(netuid, before, limit));
    Ok(ok(api::EpochList {
        netuid,
        epochs: page
            .items
            .iter()
            .map(|(height, epoch)| api::EpochAt {
                height: *height,
                epoch: (**epoch).clone(),
            })
            .collect(),
        next_before: page.next_before,
        oldest_height: page.oldest,
        height,
    }))
}

/// `GET /v1/subnets/{netuid}/neurons/{uid}/emissions`.
pub(super) async fn neuron(
    State(api): State<ApiState>,
    Path((n, uid)): Path<(String, String)>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answered<api::NeuronEmissions> {
    let netuid = netuid(&n)?;
    let uid: u16 = uid
        .parse()
        .map_err(|_| ApiError::bad_request(code::BAD_QUERY, format!("'{uid}' is not a UID")))?;
    let (before, limit) = (before(&params)?, limit(&params)?);
    known_subnet(&api, netuid)?;
    let height = api.node.status().latest_height;
    let page = api
        .node
        .with_emission_history(|h| h.epochs(netuid, before, limit));
    let epochs = page
        .items
        .iter()
        .filter_map(|(height, epoch)| {
            let n = epoch.neurons.iter().find(|n| n.uid == uid)?;
            Some(api::NeuronEpoch {
                height: *height,
                hotkey: n.hotkey,
                incentive: n.incentive,
                dividends: n.dividends,
                take: n.take,
                to_stakers: n.to_stakers,
            })
        })
        .collect();
    Ok(ok(api::NeuronEmissions {
        netuid,
        uid,
        epochs,
        next_before: page.next_before,
        oldest_height: page.oldest,
        height,
    }))
}

fn known_subnet(api: &ApiState, netuid: u16) -> Result<(), ApiError> {
    if api
        .node
        .with_finalized_state(|s| s.subnet_info(netuid).is_some())
    {
        Ok(())
    } else {
        Err(ApiError::not_found(
            code::UNKNOWN_SUBNET,
            format!("no subnet {netuid}"),
        ))
    }
}
