//! Blob storage in the latest finalized state (docs/storage.md): `GET /v1/storage` (the
//! committee a writer encodes for, the epoch, prices, the fund) and `GET /v1/storage/blobs/{id}`
//! (a blob's registration and its committee's endpoints, what a reader needs).

use super::{ok, Answered, ApiError, ApiState};
use alloy_primitives::{Address, B256};
use axum::extract::{Path, Query, State};
use mycel_state::storage::{self, Storage};
use mycel_types::api::{self, code};

fn members(s: &Storage, committee: u64) -> Vec<api::StorageMember> {
    s.committee(committee)
        .unwrap_or_default()
        .iter()
        .map(|a: &Address| {
            let node = s.node(a).expect("committee members are registered nodes");
            api::StorageMember {
                address: *a,
                endpoint: node.endpoint.clone(),
                stake: node.stake,
            }
        })
        .collect()
}

pub(super) async fn info(State(api): State<ApiState>) -> Answered<api::StorageInfo> {
    api.node.with_finalized_state(|s| {
        let params = s.params().storage.clone();
        let st = s.storage();
        let epoch = storage::epoch_of(s.height() + 1, &params);
        Ok(ok(api::StorageInfo {
            committee: st.current_committee(),
            members: members(st, st.current_committee()),
            epoch,
            epoch_ends_at: (epoch + 1) * params.epoch_blocks.max(1),
            fund: st.fund(),
            blobs: st.blobs().count() as u64,
            last_payout: st.last_payout().map(|p| api::StoragePayout {
                epoch: p.epoch,
                height: p.height,
                blobs: p.blobs,
                expired: p.expired,
                total: p.total,
                slashed: p.slashed.clone(),
                burned: p.burned,
            }),
            params,
        }))
    })
}

pub(super) async fn blob(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Answered<api::BlobInfo> {
    let blob_id: B256 = id.parse().map_err(|_| {
        ApiError::bad_request(
            code::BAD_BLOB_ID,
            format!("`{id}` is not a blob id (0x and 64 hex digits)"),
        )
    })?;
    api.node.with_finalized_state(|s| {
        let st = s.storage();
        let b = st.blob(&blob_id).ok_or_else(|| {
            ApiError::not_found(
                code::UNKNOWN_BLOB,
                format!("no blob {blob_id}: never registered, or its paid epochs are over"),
            )
        })?;
        Ok(ok(blob_info(st, blob_id, b)))
    })
}

fn blob_info(st: &Storage, blob_id: B256, b: &storage::Blob) -> api::BlobInfo {
    let status = match (b.deleted, b.certified_height) {
        (true, _) => api::BlobStatus::Deleted,
        (false, Some(_)) => api::BlobStatus::Certified,
        (false, None) => api::BlobStatus::Registered,
    };
    api::BlobInfo {
        blob_id,
        status,
        owner: b.owner,
        length: b.length,
        committee: b.committee,
        members: members(st, b.committee),
        start_epoch: b.start_epoch,
        end_epoch: b.end_epoch,
        epoch_price: b.epoch_price,
        registered_height: b.registered_height,
        certified_height: b.certified_height,
        items: b.items.clone(),
        confirmed_by: b.confirmed_by.iter().copied().collect(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// The most blobs per page of `GET /v1/storage/blobs`.
const MAX_PAGE: usize = 100;

pub(super) async fn blob_list(
    State(api): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Answered<api::BlobList> {
    let after: Option<B256> = q
        .after
        .as_deref()
        .map(|a| {
            a.parse().map_err(|_| {
                ApiError::bad_request(code::BAD_QUERY, format!("after=`{a}` is not a blob id"))
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    api.node.with_finalized_state(|s| {
        let st = s.storage();
        let mut blobs: Vec<api::BlobInfo> = st
            .blobs_after(after)
            .take(limit + 1)
            .map(|(id, b)| blob_info(st, *id, b))
            .collect();
        let next = (blobs.len() > limit).then(|| {
            blobs.pop();
            blobs.last().map(|b| b.blob_id)
        });
        Ok(ok(api::BlobList {
            blobs,
            next: next.flatten(),
        }))
    })
}
