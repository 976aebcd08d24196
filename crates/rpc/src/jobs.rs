//! Jobs with escrow (ERC-8183) in the latest finalized state: `GET /v1/jobs` and
//! `GET /v1/jobs/{id}`; and spend allowances, `GET /v1/allowances/{agent}` (docs/agents.md).
//!
//! `GET /v1/jobs` filters by `client`, `provider`, `evaluator` (addresses) and `status`, in id
//! order from `cursor`, at most `limit` (100) per page; a provider that was offline lists its
//! funded jobs from the last id it saw and misses none. One request looks at no more than
//! [`MAX_SCAN`] jobs: a filter that matches few gets a short page and a `next_cursor` to go on.

use super::agents::{bad_query, limit, number, Params, MAX_SCAN};
use super::{ok, parse_address, Answered, ApiError, ApiState};
use axum::extract::{Path, Query, State};
use mycel_state::jobs;
use mycel_types::api::{self, code, JobStatus};

fn job_answer(id: u64, j: &jobs::Job) -> api::Job {
    api::Job {
        job_id: id,
        client: j.client,
        provider: j.provider,
        evaluator: j.evaluator,
        description: j.description.clone(),
        budget: j.budget,
        escrowed: j.escrowed,
        status: j.status,
        expired_at_s: j.expired_at_s,
        platform: j.platform,
        platform_fee_bps: j.platform_fee_bps,
        deliverable: j.deliverable,
        deliverable_uri: j.deliverable_uri.clone(),
        dispute_window_s: j.dispute_window_s,
        submitted_at_s: j.submitted_at_s,
        disputed: j.disputed,
        created_height: j.created_height,
        updated_height: j.updated_height,
    }
}

pub(super) async fn job(State(api): State<ApiState>, Path(id): Path<String>) -> Answered<api::Job> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::bad_request(
            code::BAD_JOB_ID,
            format!("'{id}' is not a job id (an integer from 1)"),
        )
    })?;
    api.node.with_finalized_state(|s| {
        let j = s
            .jobs()
            .job(id)
            .ok_or_else(|| ApiError::not_found(code::UNKNOWN_JOB, format!("no job {id}")))?;
        Ok(ok(job_answer(id, j)))
    })
}

pub(super) async fn job_list(
    State(api): State<ApiState>,
    params: Params,
) -> Answered<api::JobList> {
    let Query(params) = params?;
    let limit = limit(&params)?;
    let from = number(&params, "cursor")?.unwrap_or(1);
    let party = |name: &str| params.get(name).map(|a| parse_address(a)).transpose();
    let (client, provider, evaluator) = (party("client")?, party("provider")?, party("evaluator")?);
    let status = params
        .get("status")
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                bad_query(format!(
                    "status '{s}' is not open, funded, submitted, completed, rejected or expired"
                ))
            })
        })
        .transpose()?;
    Ok(api.node.with_finalized_state(|s| {
        let jobs = s.jobs();
        let candidates: Box<dyn Iterator<Item = (u64, &jobs::Job)>> =
            match client.or(provider).or(evaluator) {
                Some(party) => Box::new(jobs.jobs_of(&party, from)),
                None => Box::new(jobs.jobs_from(from)),
            };
        let mut page = Vec::new();
        let mut next_cursor = None;
        for (scanned, (id, j)) in candidates.enumerate() {
            if scanned == MAX_SCAN {
                next_cursor = Some(id);
                break;
            }
            let matches = client.is_none_or(|c| j.client == c)
                && provider.is_none_or(|p| j.provider == Some(p))
                && evaluator.is_none_or(|e| j.evaluator == e)
                && status.is_none_or(|st| j.status == st);
            if !matches {
                continue;
            }
            if page.len() == limit {
                next_cursor = Some(id);
                break;
            }
            page.push(job_answer(id, j));
        }
        ok(api::JobList {
            jobs: page,
            next_cursor,
            height: s.height(),
        })
    }))
}

/// A delegated key's grant (`GET /v1/allowances/{agent}`), with what it may still spend.
pub(super) async fn allowance(
    State(api): State<ApiState>,
    Path(agent): Path<String>,
) -> Answered<api::Allowance> {
    let agent = parse_address(&agent)?;
    api.node.with_finalized_state(|s| {
        let a = s.allowances().of(&agent).ok_or_else(|| {
            ApiError::not_found(
                code::NO_ALLOWANCE,
                format!("{agent} has no allowance (it spends only its own account)"),
            )
        })?;
        let height = s.height() + 1;
        let owner = s.account(&a.owner);
        Ok(ok(api::Allowance {
            agent,
            owner: a.owner,
            tokens: a
                .limits
                .iter()
                .map(|(token, l)| api::TokenAllowance {
                    token: *token,
                    period_budget: l.period_budget,
                    max_per_tx: l.max_per_tx,
                    spent: l.spent_at(height, a.period_blocks),
                    spendable: a.spendable(*token, height, owner.balance(*token)),
                })
                .collect(),
            period_blocks: a.period_blocks,
            next_period: (height / a.period_blocks + 1).saturating_mul(a.period_blocks),
            recipients: a.recipients.iter().copied().collect(),
            kinds: a.kinds.iter().cloned().collect(),
            expires_at: a.expires_at,
            granted_height: a.granted_height,
            height: s.height(),
        }))
    })
}
