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
/// The most clients a summary may name.
pub const MAX_CLIENTS: usize = 100;

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
    let clients = match params.get("clients").map(String::as_str) {
        None | Some("") => Vec::new(),
        Some(list) => {
            let parts: Vec<&str> = list.split(',').collect();
            if parts.len() > MAX_CLIENTS {
                return Err(bad_query(format!(
                    "{} clients named; a summary takes at most {MAX_CLIENTS}",
                    parts.len()
                )));
            }
            parts
                .into_iter()
                .map(parse_address)
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let verified_only = match params.get("verified").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad_query(format!(
                "verified '{other}' is not true or false"
            )))
        }
    };
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
    let from = number(&params, "cursor")?.unwrap_or(0);
    let from = usize::try_from(from).map_err(|_| bad_query("cursor is too large"))?;
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
