//! Agents (ERC-8004 identity and reputation) in the latest finalized state:
//! `GET /v1/agents` (`owner`: only that address's), `/v1/agents/{id}`, `/v1/agents/{id}/feedback`,
//! `/v1/agents/{id}/reputation`, `/v1/agents/{id}/events` (docs/agents.md).
//!
//! Every list is paged with `cursor` and `limit` (at most [`MAX_PAGE`]); a summary names at most
//! [`MAX_CLIENTS`] clients. Summaries read running totals, never the feedback itself, so their
//! cost does not grow with an agent's feedback.

use super::{ok, parse_address, Answered, ApiError, ApiState};
use axum::extract::{rejection::QueryRejection, Path, Query, State};
use mycel_chain::TxOutcome;
use mycel_state::agents::{self, fixed_to_decimal, summary_mean, SUMMARY_DECIMALS};
use mycel_types::api::{self, code};
use mycel_types::tx::agent_registry;
use std::collections::BTreeMap;

/// The most items a page holds.
pub const MAX_PAGE: usize = 100;
/// The most clients (or validators) a summary may name.
pub const MAX_CLIENTS: usize = 100;
/// The most items one list request looks at.
pub const MAX_SCAN: usize = 10_000;

pub(super) type Params = Result<Query<BTreeMap<String, String>>, QueryRejection>;

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        bad_query(rejection.body_text())
    }
}

fn parse_agent_id(id: &str) -> Result<u64, ApiError> {
    id.parse().map_err(|_| {
        ApiError::bad_request(
            code::BAD_AGENT_ID,
            format!("'{id}' is not an agent id (an integer from 1)"),
        )
    })
}

pub(super) fn bad_query(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code::BAD_QUERY, message)
}

fn unknown_agent(id: u64) -> ApiError {
    ApiError::not_found(code::UNKNOWN_AGENT, format!("no agent {id}"))
}

pub(super) fn limit(params: &BTreeMap<String, String>) -> Result<usize, ApiError> {
    match params.get("limit") {
        None => Ok(MAX_PAGE),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(bad_query(format!(
                "limit '{text}' is not an integer from 1 to {MAX_PAGE}"
            ))),
        },
    }
}

pub(super) fn number(
    params: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|text| {
            text.parse::<u64>()
                .map_err(|_| bad_query(format!("{name} '{text}' is not a non-negative integer")))
        })
        .transpose()
}

/// The `cursor` of a list read by position (0 if absent).
fn position(params: &BTreeMap<String, String>) -> Result<usize, ApiError> {
    usize::try_from(number(params, "cursor")?.unwrap_or(0))
        .map_err(|_| bad_query("cursor is too large"))
}

fn agent_answer(
    chain_id: u64,
    id: u64,
    a: &agents::Agent,
    state: &mycel_state::State,
) -> api::Agent {
    let rep = state.agents().reputation(id);
    api::Agent {
        agent_id: id,
        agent_registry: agent_registry(chain_id),
        owner: a.owner,
        uri: a.uri.clone(),
        wallet: a.wallet,
        approved: a.approved,
        metadata: a
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), format!("0x{}", hex::encode(v))))
            .collect(),
        registered_height: a.registered_height,
        feedback_count: rep.map_or(0, |r| r.feedback_count()),
        client_count: rep.map_or(0, |r| r.clients().len() as u64),
    }
}

pub(super) async fn agent_list(
    State(api): State<ApiState>,
    params: Params,
) -> Answered<api::AgentList> {
    let Query(params) = params?;
    let limit = limit(&params)?;
    let from = number(&params, "cursor")?.unwrap_or(1);
    let owner = params.get("owner").map(|o| parse_address(o)).transpose()?;
    let chain_id = api.genesis.chain_id;
    Ok(api.node.with_finalized_state(|s| {
        let page: Vec<(u64, &agents::Agent)> = match &owner {
            Some(owner) => s.agents().owned_by(owner, from).take(limit + 1).collect(),
            None => s.agents().agents_from(from).take(limit + 1).collect(),
        };
        let mut agents: Vec<api::Agent> = page
            .into_iter()
            .map(|(id, a)| agent_answer(chain_id, id, a, s))
            .collect();
        let next_cursor = (agents.len() > limit).then(|| agents[limit].agent_id);
        agents.truncate(limit);
        ok(api::AgentList {
            agents,
            total: s.agents().count(),
            next_cursor,
            height: s.height(),
        })
    }))
}

pub(super) async fn agent(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Answered<api::Agent> {
    let id = parse_agent_id(&id)?;
    let chain_id = api.genesis.chain_id;
    api.node.with_finalized_state(|s| {
        let a = s.agents().agent(id).ok_or_else(|| unknown_agent(id))?;
        Ok(ok(agent_answer(chain_id, id, a, s)))
    })
}

fn feedback_answer(
    id: u64,
    client: alloy_primitives::Address,
    index: u64,
    f: &agents::Feedback,
) -> api::Feedback {
    api::Feedback {
        agent_id: id,
        client,
        index,
        value: f.value.to_string(),
        value_decimals: f.value_decimals,
        tag1: f.tag1.clone(),
        tag2: f.tag2.clone(),
        endpoint: f.endpoint.clone(),
        feedback_uri: f.uri.clone(),
        feedback_hash: f.hash,
        revoked: f.revoked,
        height: f.height,
        paid: f.paid,
        responses: f
            .responses
            .iter()
            .map(|r| api::FeedbackResponse {
                responder: r.responder,
                response_uri: r.uri.clone(),
                response_hash: r.hash,
                height: r.height,
            })
            .collect(),
    }
}

/// `cursor` of the feedback list: `<client position>.<index>` (both from the previous page).
fn parse_feedback_cursor(text: &str) -> Result<(usize, u64), ApiError> {
    let bad = || bad_query(format!("cursor '{text}' is not a cursor this API gave"));
    let (position, index) = text.split_once('.').ok_or_else(bad)?;
    Ok((
        position.parse().map_err(|_| bad())?,
        index.parse().map_err(|_| bad())?,
    ))
}

/// An agent's feedback, by client (in the order of their first feedback) then index; `client`
/// restricts it to one client.
pub(super) async fn feedback_list(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    params: Params,
) -> Answered<api::FeedbackList> {
    let Query(params) = params?;
    let id = parse_agent_id(&id)?;
    let limit = limit(&params)?;
    let only = params.get("client").map(|c| parse_address(c)).transpose()?;
    let (mut position, mut index) = match params.get("cursor") {
        Some(c) => parse_feedback_cursor(c)?,
        None => (0, 1),
    };
    api.node.with_finalized_state(|s| {
        s.agents().agent(id).ok_or_else(|| unknown_agent(id))?;
        let mut feedback = Vec::new();
        let mut next_cursor = None;
        if let Some(rep) = s.agents().reputation(id) {
            let clients = rep.clients();
            while position < clients.len() {
                let client = clients[position];
                if only.is_some_and(|c| c != client) {
                    position += 1;
                    index = 1;
                    continue;
                }
                let entries = rep.client_feedback(&client);
                if let Some(f) = index.checked_sub(1).and_then(|i| entries.get(i as usize)) {
                    if feedback.len() == limit {
                        next_cursor = Some(format!("{position}.{index}"));
                        break;
                    }
                    feedback.push(feedback_answer(id, client, index, f));
                    index += 1;
                } else {
                    position += 1;
                    index = 1;
                }
            }
        }
        Ok(ok(api::FeedbackList {
            feedback,
            next_cursor,
            height: s.height(),
        }))
    })
}

/// ERC-8004 `getSummary`: `clients` (comma-separated addresses, at most [`MAX_CLIENTS`]; none:
/// every client), `tag1`, `tag2` (absent or empty: any), `verified=true` (only feedback citing
/// a payment, weighted by the amount paid).
pub(super) async fn reputation(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    params: Params,
) -> Answered<api::ReputationSummary> {
    let Query(params) = params?;
    let id = parse_agent_id(&id)?;
    let clients = addresses(&params, "clients")?;
    let verified_only = flag(&params, "verified")?;
    let tag1 = params.get("tag1").cloned().unwrap_or_default();
    let tag2 = params.get("tag2").cloned().unwrap_or_default();
    api.node.with_finalized_state(|s| {
        s.agents().agent(id).ok_or_else(|| unknown_agent(id))?;
        let totals = s
            .agents()
            .reputation(id)
            .map(|r| r.totals(&clients, &tag1, &tag2))
            .unwrap_or_default();
        let (count, mean) = summary_mean(&totals, verified_only);
        let paid_total = if verified_only || totals.paid_count > 0 {
            u128::try_from(totals.paid_total).unwrap_or(u128::MAX)
        } else {
            0
        };
        Ok(ok(api::ReputationSummary {
            agent_id: id,
            clients,
            tag1,
            tag2,
            verified_only,
            count,
            summary_value: mean.to_string(),
            summary_value_decimals: SUMMARY_DECIMALS,
            average: fixed_to_decimal(mean, SUMMARY_DECIMALS),
            paid_total,
            height: s.height(),
        }))
    })
}

/// The finalized transactions that did something to an agent, oldest first (`cursor`: the
/// position to start from).
pub(super) async fn agent_events(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    params: Params,
) -> Answered<api::AgentHistory> {
    let Query(params) = params?;
    let id = parse_agent_id(&id)?;
    let limit = limit(&params)?;
    let from = position(&params)?;
    if api
        .node
        .with_finalized_state(|s| s.agents().agent(id).is_none())
    {
        return Err(unknown_agent(id));
    }
    let (page, total) = api.node.agent_txs(id, from, limit);
    let txs = page
        .into_iter()
        .map(|(hash, location)| {
            let events = match &location.result {
                TxOutcome::Success { receipt } => receipt
                    .events
                    .iter()
                    .filter_map(|e| match e {
                        mycel_state::Event::Agent(a) if a.agent_id() == Some(id) => Some(a.clone()),
                        _ => None,
                    })
                    .collect(),
                TxOutcome::Failed { .. } => Vec::new(),
            };
            api::AgentTx {
                height: location.height,
                index: location.index,
                hash,
                events,
            }
        })
        .collect::<Vec<_>>();
    let next = from + txs.len();
    Ok(ok(api::AgentHistory {
        agent_id: id,
        txs,
        next_cursor: (next < total).then_some(next as u64),
    }))
}

fn validation_answer(hash: alloy_primitives::B256, v: &agents::Validation) -> api::Validation {
    api::Validation {
        request_hash: hash,
        agent_id: v.agent_id,
        validator: v.validator,
        request_uri: v.request_uri.clone(),
        response: v.response,
        response_uri: v.response_uri.clone(),
        response_hash: v.response_hash,
        tag: v.tag.clone(),
        responses: v.responses,
        requested_height: v.requested_height,
        updated_height: v.updated_height,
    }
}

/// ERC-8004 `getValidationStatus(requestHash)`.
pub(super) async fn validation(
    State(api): State<ApiState>,
    Path(hash): Path<String>,
) -> Answered<api::Validation> {
    let hash: alloy_primitives::B256 = hash.parse().map_err(|_| {
        ApiError::bad_request(
            code::BAD_HASH,
            format!("'{hash}' is not a 32-byte 0x-hex request hash"),
        )
    })?;
    api.node.with_finalized_state(|s| {
        let v = s.agents().validation(&hash).ok_or_else(|| {
            ApiError::not_found(
                code::UNKNOWN_VALIDATION,
                format!("no validation request {hash}"),
            )
        })?;
        Ok(ok(validation_answer(hash, v)))
    })
}

/// Validation requests addressed to `validator` (required), oldest first from position
/// `cursor`; `pending=true` keeps those not answered yet.
pub(super) async fn validations_for(
    State(api): State<ApiState>,
    params: Params,
) -> Answered<api::ValidationList> {
    let Query(params) = params?;
    let validator = params
        .get("validator")
        .ok_or_else(|| bad_query("name the validator: ?validator=0x…"))
        .and_then(|v| parse_address(v))?;
    let pending = flag(&params, "pending")?;
    let limit = limit(&params)?;
    let from = position(&params)?;
    Ok(api.node.with_finalized_state(|s| {
        let hashes = s.agents().validator_requests(&validator);
        validation_page(s, hashes, from, limit, pending)
    }))
}

/// The validation requests about an agent, oldest first from position `cursor`.
pub(super) async fn agent_validations(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    params: Params,
) -> Answered<api::ValidationList> {
    let Query(params) = params?;
    let id = parse_agent_id(&id)?;
    let limit = limit(&params)?;
    let from = position(&params)?;
    api.node.with_finalized_state(|s| {
        s.agents().agent(id).ok_or_else(|| unknown_agent(id))?;
        Ok(validation_page(
            s,
            s.agents().agent_validations(id),
            from,
            limit,
            false,
        ))
    })
}

/// At most `limit` of `hashes` from position `from` (the answered ones skipped if `pending`),
/// looking at no more than [`MAX_SCAN`] of them.
fn validation_page(
    s: &mycel_state::State,
    hashes: &[alloy_primitives::B256],
    from: usize,
    limit: usize,
    pending: bool,
) -> super::Answer<api::ValidationList> {
    let mut validations = Vec::new();
    let mut next_cursor = None;
    for (position, hash) in hashes.iter().enumerate().skip(from) {
        if position - from == MAX_SCAN || validations.len() == limit {
            next_cursor = Some(position as u64);
            break;
        }
        let Some(v) = s.agents().validation(hash) else {
            continue;
        };
        if pending && v.response.is_some() {
            continue;
        }
        validations.push(validation_answer(*hash, v));
    }
    ok(api::ValidationList {
        validations,
        next_cursor,
        height: s.height(),
    })
}

/// ERC-8004 validation `getSummary(agentId, validatorAddresses, tag)` over answered requests:
/// `validators` (comma-separated, at most [`MAX_CLIENTS`]; none: all) and `tag` (empty: any).
pub(super) async fn validation_summary(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    params: Params,
) -> Answered<api::ValidationSummary> {
    let Query(params) = params?;
    let id = parse_agent_id(&id)?;
    let validators = addresses(&params, "validators")?;
    let tag = params.get("tag").cloned().unwrap_or_default();
    api.node.with_finalized_state(|s| {
        s.agents().agent(id).ok_or_else(|| unknown_agent(id))?;
        let (mut count, mut sum) = (0u64, 0u64);
        for hash in s.agents().agent_validations(id) {
            let Some(v) = s.agents().validation(hash) else {
                continue;
            };
            let Some(response) = v.response else { continue };
            if (!validators.is_empty() && !validators.contains(&v.validator))
                || (!tag.is_empty() && v.tag != tag)
            {
                continue;
            }
            count += 1;
            sum += u64::from(response);
        }
        // In hundredths, shown with two decimals at most.
        let hundredths = (sum * 100).checked_div(count).unwrap_or(0);
        let average = fixed_to_decimal(
            alloy_primitives::I256::try_from(hundredths).unwrap_or_default(),
            2,
        );
        Ok(ok(api::ValidationSummary {
            agent_id: id,
            validators,
            tag,
            count,
            average_response: average,
            height: s.height(),
        }))
    })
}

/// A comma-separated list of at most [`MAX_CLIENTS`] addresses (none if absent or empty).
fn addresses(
    params: &BTreeMap<String, String>,
    name: &str,
) -> Result<Vec<alloy_primitives::Address>, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("") => Ok(Vec::new()),
        Some(list) => {
            let parts: Vec<&str> = list.split(',').collect();
            if parts.len() > MAX_CLIENTS {
                return Err(bad_query(format!(
                    "{} addresses in {name}; at most {MAX_CLIENTS}",
                    parts.len()
                )));
            }
            parts.into_iter().map(parse_address).collect()
        }
    }
}

/// A `true`/`false` query flag (absent: false).
fn flag(params: &BTreeMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(bad_query(format!("{name} '{other}' is not true or false"))),
    }
}

/// ERC-8004 `getClients` and `getLastIndex`: an agent's clients in the order of their first
/// feedback, from position `cursor`.
pub(super) async fn agent_clients(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    params: Params,
) -> Answered<api::ClientList> {
    let Query(params) = params?;
    let id = parse_agent_id(&id)?;
    let limit = limit(&params)?;
    let from = position(&params)?;
    api.node.with_finalized_state(|s| {
        s.agents().agent(id).ok_or_else(|| unknown_agent(id))?;
        let all = s.agents().reputation(id).map_or(&[][..], |r| r.clients());
        let clients = all
            .iter()
            .skip(from)
            .take(limit)
            .map(|c| api::AgentClient {
                client: *c,
                last_index: s
                    .agents()
                    .reputation(id)
                    .map_or(0, |r| r.client_feedback(c).len() as u64),
            })
            .collect::<Vec<_>>();
        let next = from + clients.len();
        Ok(ok(api::ClientList {
            agent_id: id,
            clients,
            next_cursor: (next < all.len()).then_some(next as u64),
            height: s.height(),
        }))
    })
}
