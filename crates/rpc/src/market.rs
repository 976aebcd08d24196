//! The compute market in the latest finalized state (docs/compute.md): `GET /v1/market`,
//! `GET /v1/market/providers`, `GET /v1/market/deployments` (by state, owner and lease provider,
//! paged) and
//! `GET /v1/market/deployments/{id}` (its bids, lease, escrow and notes).

use super::{ok, Answered, ApiError, ApiState};
use alloy_primitives::Address;
use axum::extract::{Path, Query, State};
use mycel_types::api::code;
use mycel_types::market::{Deployment, DeploymentList, DeploymentState, MarketInfo, ProviderList};

/// The most entries per page.
const MAX_PAGE: usize = 100;
/// The most deployments one listing looks at (a filter that matches few cannot make it scan all).
const MAX_SCAN: usize = 10_000;

pub(super) async fn info(State(api): State<ApiState>) -> Answered<MarketInfo> {
    api.node.with_finalized_state(|s| {
        let m = s.market();
        Ok(ok(MarketInfo {
            params: s.params().market.clone(),
            providers: m.provider_count() as u64,
            deployments: m.deployment_count() as u64,
            height: s.height() + 1,
        }))
    })
}

#[derive(serde::Deserialize)]
pub(super) struct ProviderQuery {
    after: Option<Address>,
}

pub(super) async fn providers(
    State(api): State<ApiState>,
    Query(q): Query<ProviderQuery>,
) -> Answered<ProviderList> {
    api.node.with_finalized_state(|s| {
        let mut providers: Vec<_> = s
            .market()
            .providers_after(q.after)
            .take(MAX_PAGE + 1)
            .cloned()
            .collect();
        let next = (providers.len() > MAX_PAGE).then(|| {
            providers.pop();
            providers.last().map(|p| p.address)
        });
        Ok(ok(ProviderList {
            providers,
            next: next.flatten(),
        }))
    })
}

#[derive(serde::Deserialize)]
pub(super) struct DeploymentQuery {
    after: Option<u64>,
    state: Option<String>,
    owner: Option<Address>,
    /// Deployments whose lease (running or paused) this provider holds.
    provider: Option<Address>,
    limit: Option<usize>,
}

pub(super) async fn deployments(
    State(api): State<ApiState>,
    Query(q): Query<DeploymentQuery>,
) -> Answered<DeploymentList> {
    let state = q
        .state
        .as_deref()
        .map(|s| {
            DeploymentState::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    code::BAD_QUERY,
                    format!("state=`{s}`: one of open, leased, paused, closed"),
                )
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    api.node.with_finalized_state(|s| {
        let mut deployments = Vec::new();
        let mut next = None;
        for (scanned, d) in s
            .market()
            .deployments_after(q.after.unwrap_or(0))
            .enumerate()
        {
            if scanned == MAX_SCAN || deployments.len() == limit {
                next = Some(d.id - 1);
                break;
            }
            let provides = q
                .provider
                .is_none_or(|p| d.lease.as_ref().is_some_and(|l| l.provider == p));
            if state.is_none_or(|st| d.state == st)
                && q.owner.is_none_or(|o| d.owner == o)
                && provides
            {
                deployments.push(d.clone());
            }
        }
        Ok(ok(DeploymentList { deployments, next }))
    })
}

pub(super) async fn deployment(
    State(api): State<ApiState>,
    Path(id): Path<u64>,
) -> Answered<Deployment> {
    api.node.with_finalized_state(|s| {
        s.market().deployment(id).cloned().map(ok).ok_or_else(|| {
            ApiError::not_found(code::UNKNOWN_DEPLOYMENT, format!("no deployment {id}"))
        })
    })
}
