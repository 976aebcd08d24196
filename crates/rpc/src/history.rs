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
    Ok(ok(api.node.with_emission_history(|h| {
        h.receipt_list(before, limit, height)
    })))
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
        .with_emission_history(|h| (h.receipt(height), h.oldest()));
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
    Ok(ok(api.node.with_emission_history(|h| {
        h.epoch_list(netuid, before, limit, height)
    })))
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
    Ok(ok(api.node.with_emission_history(|h| {
        h.neuron_emissions(netuid, uid, before, limit, height)
    })))
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

/// A position in an index (`before`, exclusive; default: the end) and only the named parameters.
fn position(params: &BTreeMap<String, String>, allowed: &[&str]) -> Result<usize, ApiError> {
    for key in params.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::bad_request(
                code::BAD_QUERY,
                format!("unknown parameter '{key}' ({})", allowed.join(", ")),
            ));
        }
    }
    match params.get("before") {
        None => Ok(usize::MAX),
        Some(text) => text.parse().map_err(|_| {
            ApiError::bad_request(
                code::BAD_QUERY,
                format!("before '{text}' is not a position"),
            )
        }),
    }
}

/// `GET /v1/accounts/{address}/txs`: the applied transactions an address sent or was paid by,
/// newest first, paged by position.
pub(super) async fn account_txs(
    State(api): State<ApiState>,
    Path(address): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answered<api::AccountTxs> {
    let address = super::parse_address(&address)?;
    let before = position(&params, &["before", "limit"])?;
    let limit = limit(&params)?;
    let height = api.node.status().latest_height;
    let (txs, next_before, total) = api.node.with_ledger(|l| {
        let all = l.account_index.get(&address).map_or(&[][..], Vec::as_slice);
        let end = before.min(all.len());
        let start = end.saturating_sub(limit);
        let txs: Vec<api::AccountTx> = all[start..end]
            .iter()
            .rev()
            .filter_map(|hash| {
                let at = l.tx_location(hash)?;
                let (tx_type, error) = match &at.result {
                    mycel_chain::TxOutcome::Success { receipt } => {
                        (Some(receipt.tx_type.clone()), None)
                    }
                    mycel_chain::TxOutcome::Failed { code, .. } => (None, Some(code.clone())),
                };
                Some(api::AccountTx {
                    hash: *hash,
                    height: at.height,
                    index: at.index,
                    tx_type,
                    error,
                })
            })
            .collect();
        (txs, (start > 0).then_some(start as u64), all.len() as u64)
    });
    Ok(ok(api::AccountTxs {
        address,
        txs,
        next_before,
        total,
        height,
    }))
}

/// `GET /v1/payments?address=&kind=&since_ms=&before=&limit=`: mUSD payments newest first, with
/// the total paid.
pub(super) async fn payments(
    State(api): State<ApiState>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answered<api::PaymentList> {
    let before = position(&params, &["before", "limit", "address", "kind", "since_ms"])?;
    let since_ms = params
        .get("since_ms")
        .map(|t| {
            t.parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    code::BAD_QUERY,
                    format!("since_ms '{t}' is not a time in milliseconds since the Unix epoch"),
                )
            })
        })
        .transpose()?
        .unwrap_or(0);
    let limit = limit(&params)?;
    let address = params
        .get("address")
        .map(|a| super::parse_address(a))
        .transpose()?;
    let kind = params
        .get("kind")
        .map(|k| {
            serde_json::from_value::<api::PaymentKind>(serde_json::Value::String(k.clone()))
                .map_err(|_| {
                    ApiError::bad_request(
                        code::BAD_QUERY,
                        format!(
                            "kind '{k}' is x402, session_opened, session_topped_up, \
                             session_claimed, session_refunded or job_paid"
                        ),
                    )
                })
        })
        .transpose()?;
    let height = api.node.status().latest_height;
    let list = api.node.with_ledger(|l| {
        let matches = |p: &api::Payment| {
            address.is_none_or(|a| p.payer == Some(a) || p.payee == Some(a))
                && kind.is_none_or(|k| p.kind == k)
        };
        // Payments are indexed in block order, so their times only grow: those before
        // `since_ms` are a prefix, skipped without reading them.
        let first = l.payments.partition_point(|p| p.timestamp_ms < since_ms);
        let mut paid_total: u128 = 0;
        let mut total = 0u64;
        for p in l.payments[first..].iter().filter(|p| matches(p)) {
            total += 1;
            if p.kind.is_paid() {
                paid_total = paid_total.saturating_add(p.amount);
            }
        }
        let end = before.min(l.payments.len());
        let mut payments = Vec::new();
        let mut next = end.max(first);
        while next > first && payments.len() < limit {
            next -= 1;
            if matches(&l.payments[next]) {
                payments.push(l.payments[next].clone());
            }
        }
        let more = l.payments[first..next].iter().any(matches);
        api::PaymentList {
            payments,
            next_before: more.then_some(next as u64),
            paid_total,
            total,
            height,
        }
    });
    Ok(ok(list))
}
