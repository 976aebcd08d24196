//! Agents: ERC-8004's identity and reputation registries as a native module.
//!
//! Identity (an agent is an ERC-721-style token):
//! - `RegisterAgent`: the next agent id (1, 2, …) is owned by the sender, with its URI and
//!   metadata; its wallet is the owner until set otherwise.
//! - `SetAgentURI`, `SetAgentMetadata` (an empty value deletes the key; `agentWallet` is
//!   reserved), `SetAgentWallet`, `TransferAgent`: by the owner, the agent's approved address, or
//!   an operator of the owner (ERC-721 `isApprovedOrOwner`). `ApproveAgent`: by the owner or an
//!   operator. `SetAgentOperator`: by anyone, for its own agents.
//! - `SetAgentWallet` needs the new wallet's EIP-712 signature of `AgentWalletSet(agentId,
//!   newWallet, owner, deadline)` under the identity registry's domain, with
//!   `block time ≤ deadline ≤ block time + 300 s`. Zero as the new wallet (no signature) unsets it.
//! - A transfer clears the approval and the wallet (ERC-8004: the new owner sets its own).
//!
//! Reputation:
//! - `GiveFeedback`: by anyone but the agent's owner, approved address and owner's operators;
//!   `valueDecimals ≤ 18` and `|value| / 10^valueDecimals ≤ 10^18`. Each client's feedback on an
//!   agent is numbered 1, 2, …. A nonzero `paymentNonce` cites the EIP-3009 authorization
//!   `(sender, paymentNonce)`: it must have executed, have paid the agent's wallet or owner, and
//!   not be cited by another feedback; the feedback is then `paid` with its value. A
//!   `paymentNonce` that is a job id (zeros above its low 8 bytes, [`cite_job`]) cites instead a
//!   completed job whose client is the sender and whose provider is the agent's wallet or owner;
//!   the feedback is `paid` with the job's budget. Either is cited once.
//! - `RevokeFeedback`: by the feedback's author, once. `AppendResponse`: by anyone, at most
//!   [`MAX_RESPONSES`] per feedback.
//! - Summaries come from running totals kept per agent and per (agent, client), for every tag
//!   filter a query can name (tag1 and tag2 each given or any): a summary reads at most one total
//!   per named client, never the feedback itself. Values are summed in fixed point with 18
//!   decimals (int256); verified summaries weight each value by the mUSD its payment moved.
//!
//! Validation:
//! - `ValidationRequest`: by whoever may act for the agent; names a validator (not zero) and a
//!   request hash never used before.
//! - `ValidationResponse`: only by the validator the request names, 0–100, repeatable (the last
//!   answer stands, the count goes up). mycel's subnet validator answers requests about inference
//!   receipts by re-running them (100: reproduced bit for bit).
//!
//! Bounds (a stranger pays one fee per transaction, so what a transaction may store is bounded):
//! strings and metadata values by [`MAX_URI_BYTES`] and friends, metadata entries per agent by
//! [`MAX_METADATA_ENTRIES`]. Each refusal has its own code; a refused transaction changes nothing.
//!
//! State root: every applied agent transaction extends a running digest,
//! `d' = keccak(0x08 ‖ d ‖ tx hash)` (the transaction and the state before it determine what it
//! wrote), folded into the root as `keccak(0x07 ‖ root ‖ d)` once any agent transaction applied.

use crate::{State, TxError};
use alloy_primitives::{keccak256, Address, Bytes, B256, I256, U256};
use mycel_types::api::AgentEvent;
use mycel_types::tx::{MetadataEntry, AGENT_WALLET_KEY};
use mycel_types::{Amount, TxKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The longest URI (agent, feedback, response) in bytes.
pub const MAX_URI_BYTES: usize = 512;
/// The longest metadata key, tag or endpoint in bytes.
pub const MAX_KEY_BYTES: usize = 64;
/// The longest endpoint in bytes.
pub const MAX_ENDPOINT_BYTES: usize = 256;
/// The largest metadata value in bytes.
pub const MAX_METADATA_VALUE_BYTES: usize = 1024;
/// The most metadata entries an agent may hold.
pub const MAX_METADATA_ENTRIES: usize = 32;
/// The most responses one feedback may collect.
pub const MAX_RESPONSES: usize = 32;
/// How far ahead of the block time an `AgentWalletSet` deadline may be (ERC-8004: 5 minutes).
pub const MAX_WALLET_DEADLINE_S: u64 = 300;
/// Fixed-point decimals of summaries.
pub const SUMMARY_DECIMALS: u8 = 18;
/// The largest `|value| / 10^valueDecimals` a feedback may carry.
const MAX_WHOLE_VALUE: u128 = 1_000_000_000_000_000_000;

/// One registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub owner: Address,
    pub uri: String,
    pub wallet: Option<Address>,
    pub approved: Option<Address>,
    pub metadata: BTreeMap<String, Bytes>,
    pub registered_height: u64,
}

/// A response appended to a feedback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub responder: Address,
    pub uri: String,
    pub hash: B256,
    pub height: u64,
}

/// One feedback entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    #[serde(with = "decimal_string")]
    pub value: i128,
    pub value_decimals: u8,
    pub tag1: String,
    pub tag2: String,
    pub endpoint: String,
    pub uri: String,
    pub hash: B256,
    pub revoked: bool,
    pub height: u64,
    /// mUSD of the cited payment, if one was cited.
    #[serde(with = "mycel_types::api::amount::option")]
    pub paid: Option<Amount>,
    pub responses: Vec<Response>,
}

impl Feedback {
    /// The value in fixed point with [`SUMMARY_DECIMALS`] decimals.
    fn normalized(&self) -> I256 {
        normalize(self.value, self.value_decimals).expect("stored feedback was range-checked")
    }
}

/// A validation request and its latest response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    pub agent_id: u64,
    pub validator: Address,
    pub request_uri: String,
    pub response: Option<u8>,
    pub response_uri: String,
    pub response_hash: B256,
    pub tag: String,
    pub responses: u32,
    pub requested_height: u64,
    pub updated_height: u64,
}

/// Running totals of feedback under one filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub count: u64,
    /// Sum of values, 18 decimals.
    #[serde(with = "decimal_string")]
    pub sum: I256,
    /// Feedback citing a payment: how many, the mUSD they paid, and Σ value·paid.
    pub paid_count: u64,
    #[serde(with = "decimal_string")]
    pub paid_total: U256,
    #[serde(with = "decimal_string")]
    pub paid_weighted_sum: I256,
}

impl Totals {
    fn add(&mut self, value: I256, paid: Option<Amount>, sign: i8) {
        let weighted = paid.map(|p| value * I256::from_raw(U256::from(p)));
        if sign > 0 {
            self.count += 1;
            self.sum += value;
            if let (Some(p), Some(w)) = (paid, weighted) {
                self.paid_count += 1;
                self.paid_total += U256::from(p);
                self.paid_weighted_sum += w;
            }
        } else {
            self.count -= 1;
            self.sum -= value;
            if let (Some(p), Some(w)) = (paid, weighted) {
                self.paid_count -= 1;
                self.paid_total -= U256::from(p);
                self.paid_weighted_sum -= w;
            }
        }
    }

    fn merge(&mut self, other: &Totals) {
        self.count += other.count;
        self.sum += other.sum;
        self.paid_count += other.paid_count;
        self.paid_total += other.paid_total;
        self.paid_weighted_sum += other.paid_weighted_sum;
    }
}

/// The key of the totals for a tag filter: `tag1 \n tag2`, an empty tag meaning any.
fn totals_key(tag1: &str, tag2: &str) -> String {
    format!("{tag1}\n{tag2}")
}

/// The filters a feedback with tags `(tag1, tag2)` counts under.
fn filter_keys(tag1: &str, tag2: &str) -> BTreeSet<String> {
    [
        totals_key(tag1, tag2),
        totals_key(tag1, ""),
        totals_key("", tag2),
        totals_key("", ""),
    ]
    .into_iter()
    .collect()
}

/// One client's feedback on one agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFeedback {
    /// Feedback number `i` is `entries[i - 1]`.
    pub entries: Vec<Feedback>,
    totals: BTreeMap<String, Totals>,
}

/// The reputation of one agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reputation {
    clients: BTreeMap<Address, ClientFeedback>,
    /// Clients in the order of their first feedback (ERC-8004 `getClients`).
    client_order: Vec<Address>,
    feedback_count: u64,
    totals: BTreeMap<String, Totals>,
}

impl Reputation {
    /// Clients in the order of their first feedback.
    pub fn clients(&self) -> &[Address] {
        &self.client_order
    }

    /// Every feedback of `client` (feedback `i` at `[i - 1]`).
    pub fn client_feedback(&self, client: &Address) -> &[Feedback] {
        self.clients
            .get(client)
            .map_or(&[][..], |c| c.entries.as_slice())
    }

    /// Feedback entries given, revoked ones included.
    pub fn feedback_count(&self) -> u64 {
        self.feedback_count
    }

    /// The totals of the feedback of `clients` (all if empty) under a tag filter (empty: any).
    pub fn totals(&self, clients: &[Address], tag1: &str, tag2: &str) -> Totals {
        let key = totals_key(tag1, tag2);
        if clients.is_empty() {
            return self.totals.get(&key).cloned().unwrap_or_default();
        }
        let mut sum = Totals::default();
        let unique: BTreeSet<&Address> = clients.iter().collect();
        for client in unique {
            if let Some(t) = self.clients.get(client).and_then(|c| c.totals.get(&key)) {
                sum.merge(t);
            }
        }
        sum
    }

    fn count(&mut self, client: Address, feedback: &Feedback, sign: i8) {
        let value = feedback.normalized();
        for key in filter_keys(&feedback.tag1, &feedback.tag2) {
            self.totals
                .entry(key.clone())
                .or_default()
                .add(value, feedback.paid, sign);
            self.clients
                .entry(client)
                .or_default()
                .totals
                .entry(key)
                .or_default()
                .add(value, feedback.paid, sign);
        }
    }
}

/// Every agent, their reputations, and the digest of everything done to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agents {
    agents: BTreeMap<u64, Agent>,
    /// The agents each address owns (derived from `agents`, kept for lookups by owner).
    #[serde(default)]
    by_owner: BTreeMap<Address, BTreeSet<u64>>,
    operators: BTreeMap<Address, BTreeSet<Address>>,
    reputation: BTreeMap<u64, Reputation>,
    /// Authorizations cited by a feedback (by `payments::authorization_id`).
    cited: BTreeSet<B256>,
    /// Validation requests by request hash, and their hashes per agent and per validator in the
    /// order they were made.
    #[serde(default)]
    validations: BTreeMap<B256, Validation>,
    #[serde(default)]
    validations_by_agent: BTreeMap<u64, Vec<B256>>,
    #[serde(default)]
    validations_by_validator: BTreeMap<Address, Vec<B256>>,
    digest: crate::merkle::RunningDigest,
}

impl Agents {
    pub fn agent(&self, id: u64) -> Option<&Agent> {
        self.agents.get(&id)
    }

    /// Agents registered so far (ids are 1..=count).
    pub fn count(&self) -> u64 {
        self.agents.len() as u64
    }

    /// Agents with ids from `from`, in id order.
    pub fn agents_from(&self, from: u64) -> impl Iterator<Item = (u64, &Agent)> {
        self.agents.range(from..).map(|(id, a)| (*id, a))
    }

    /// The agents `owner` owns, from id `from`, in id order.
    pub fn owned_by(&self, owner: &Address, from: u64) -> impl Iterator<Item = (u64, &Agent)> {
        self.by_owner
            .get(owner)
            .into_iter()
            .flat_map(move |ids| ids.range(from..))
            .filter_map(|id| Some((*id, self.agents.get(id)?)))
    }

    pub fn reputation(&self, id: u64) -> Option<&Reputation> {
        self.reputation.get(&id)
    }

    /// ERC-8004 `getValidationStatus(requestHash)`.
    pub fn validation(&self, request_hash: &B256) -> Option<&Validation> {
        self.validations.get(request_hash)
    }

    /// The validation requests about agent `id`, oldest first.
    pub fn agent_validations(&self, id: u64) -> &[B256] {
        self.validations_by_agent
            .get(&id)
            .map_or(&[], Vec::as_slice)
    }

    /// The validation requests addressed to `validator`, oldest first.
    pub fn validator_requests(&self, validator: &Address) -> &[B256] {
        self.validations_by_validator
            .get(validator)
            .map_or(&[], Vec::as_slice)
    }

    /// ERC-721 `isApprovedForAll(owner, operator)`.
    pub fn is_operator(&self, owner: &Address, operator: &Address) -> bool {
        self.operators
            .get(owner)
            .is_some_and(|ops| ops.contains(operator))
    }

    /// May `who` act for agent `agent` (ERC-721 `isApprovedOrOwner`)?
    pub fn may_act(&self, agent: &Agent, who: &Address) -> bool {
        agent.owner == *who || agent.approved == Some(*who) || self.is_operator(&agent.owner, who)
    }

    pub(crate) fn apply(&mut self, write: AgentWrite, tx_hash: B256) {
        match write {
            AgentWrite::Agent(id, agent) => {
                let owner = agent.owner;
                if let Some(old) = self.agents.insert(id, agent) {
                    if let Some(ids) = self.by_owner.get_mut(&old.owner) {
                        ids.remove(&id);
                        if ids.is_empty() {
                            self.by_owner.remove(&old.owner);
                        }
                    }
                }
                self.by_owner.entry(owner).or_default().insert(id);
            }
            AgentWrite::Operator {
                owner,
                operator,
                approved,
            } => {
                let ops = self.operators.entry(owner).or_default();
                if approved {
                    ops.insert(operator);
                } else {
                    ops.remove(&operator);
                    if ops.is_empty() {
                        self.operators.remove(&owner);
                    }
                }
            }
            AgentWrite::Feedback {
                agent,
                client,
                feedback,
                cited,
            } => {
                let rep = self.reputation.entry(agent).or_default();
                if !rep.clients.contains_key(&client) {
                    rep.client_order.push(client);
                }
                rep.count(client, &feedback, 1);
                rep.clients
                    .entry(client)
                    .or_default()
                    .entries
                    .push(feedback);
                rep.feedback_count += 1;
                if let Some(id) = cited {
                    assert!(self.cited.insert(id), "payment {id} cited twice");
                }
            }
            AgentWrite::Revoke {
                agent,
                client,
                index,
            } => {
                let rep = self.reputation.get_mut(&agent).expect("planned revoke");
                let entry = rep.clients.get(&client).expect("planned revoke").entries
                    [index as usize - 1]
                    .clone();
                rep.count(client, &entry, -1);
                let slot =
                    &mut rep.clients.get_mut(&client).expect("client").entries[index as usize - 1];
                slot.revoked = true;
            }
            AgentWrite::Validation(hash, validation) => {
                if !self.validations.contains_key(&hash) {
                    self.validations_by_agent
                        .entry(validation.agent_id)
                        .or_default()
                        .push(hash);
                    self.validations_by_validator
                        .entry(validation.validator)
                        .or_default()
                        .push(hash);
                }
                self.validations.insert(hash, validation);
            }
            AgentWrite::Response {
                agent,
                client,
                index,
                response,
            } => {
                let rep = self.reputation.get_mut(&agent).expect("planned response");
                rep.clients.get_mut(&client).expect("client").entries[index as usize - 1]
                    .responses
                    .push(response);
            }
        }
        self.digest.extend(0x08, tx_hash);
    }

    pub(crate) fn fold_root(&self, root: B256) -> B256 {
        self.digest.fold(0x07, root)
    }
}

/// What an agent transaction writes besides accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AgentWrite {
    Agent(u64, Agent),
    Operator {
        owner: Address,
        operator: Address,
        approved: bool,
    },
    Feedback {
        agent: u64,
        client: Address,
        feedback: Feedback,
        cited: Option<B256>,
    },
    Revoke {
        agent: u64,
        client: Address,
        index: u64,
    },
    Response {
        agent: u64,
        client: Address,
        index: u64,
        response: Response,
    },
    Validation(B256, Validation),
}

/// Why an agent transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum AgentError {
    #[error("no agent {agent_id}")]
    UnknownAgent { agent_id: String },
    #[error("{sender} is not the owner, approved address or an operator of agent {agent_id}")]
    NotAuthorized { agent_id: u64, sender: Address },
    #[error("{sender} owns or operates agent {agent_id} and cannot rate it")]
    SelfFeedback { agent_id: u64, sender: Address },
    #[error("{field} is {size} bytes, over the {max}-byte limit")]
    FieldTooLong {
        field: String,
        size: usize,
        max: usize,
    },
    #[error("{field} may not contain control characters")]
    ControlCharacter { field: String },
    #[error("an agent may hold at most {max} metadata entries")]
    TooManyMetadata { max: usize },
    #[error("metadata key '{key}' is set twice")]
    DuplicateMetadata { key: String },
    #[error("the metadata key 'agentWallet' is reserved: use SetAgentWallet")]
    ReservedMetadataKey,
    #[error("the wallet consent expired at {deadline}; block time is {now} s")]
    WalletDeadlinePassed { deadline: String, now: u64 },
    #[error("the wallet consent's deadline {deadline} is more than {max} s after the block time {now} s")]
    WalletDeadlineTooFar {
        deadline: String,
        now: u64,
        max: u64,
    },
    #[error("the wallet consent signature is malformed: {message}")]
    WalletBadSignature { message: String },
    #[error("the wallet consent is signed by {recovered}, not by the new wallet {wallet}")]
    WalletWrongSigner { wallet: Address, recovered: Address },
    #[error("an agent cannot be transferred to the zero address")]
    TransferToZero,
    #[error("valueDecimals {got} is over 18")]
    DecimalsTooLarge { got: u8 },
    #[error("value {value} with {decimals} decimals is beyond ±10^18")]
    ValueOutOfRange { value: String, decimals: u8 },
    #[error("no executed payment ({payer}, {nonce}) to cite")]
    PaymentUnknown { payer: Address, nonce: B256 },
    #[error("the cited payment went to {to}, not to agent {agent_id}'s wallet or owner")]
    PaymentWrongPayee { agent_id: u64, to: Address },
    #[error("the payment ({payer}, {nonce}) is already cited by another feedback")]
    PaymentAlreadyCited { payer: Address, nonce: B256 },
    #[error("{client} has no feedback {index} on agent {agent_id}")]
    UnknownFeedback {
        agent_id: u64,
        client: Address,
        index: u64,
    },
    #[error("feedback {index} is already revoked")]
    AlreadyRevoked { index: u64 },
    #[error("feedback {index} already has the most responses ({max})")]
    TooManyResponses { index: u64, max: usize },
    #[error("validation request {request_hash} already exists (each request hash is used once)")]
    ValidationExists { request_hash: B256 },
    #[error("no validation request {request_hash}")]
    UnknownValidation { request_hash: B256 },
    #[error("{sender} is not the validator {validator} this request names")]
    NotValidator { sender: Address, validator: Address },
    #[error("response {got} is over 100")]
    ResponseOutOfRange { got: u8 },
    #[error("a validation request needs a validator (not the zero address)")]
    NoValidator,
}

impl AgentError {
    pub fn code(&self) -> &'static str {
        match self {
            AgentError::UnknownAgent { .. } => "agent_unknown",
            AgentError::NotAuthorized { .. } => "agent_not_authorized",
            AgentError::SelfFeedback { .. } => "feedback_self",
            AgentError::FieldTooLong { .. } => "agent_field_too_long",
            AgentError::ControlCharacter { .. } => "agent_field_control_character",
            AgentError::TooManyMetadata { .. } => "agent_too_many_metadata",
            AgentError::DuplicateMetadata { .. } => "agent_duplicate_metadata",
            AgentError::ReservedMetadataKey => "agent_metadata_reserved",
            AgentError::WalletDeadlinePassed { .. } => "agent_wallet_deadline_passed",
            AgentError::WalletDeadlineTooFar { .. } => "agent_wallet_deadline_too_far",
            AgentError::WalletBadSignature { .. } => "agent_wallet_bad_signature",
            AgentError::WalletWrongSigner { .. } => "agent_wallet_wrong_signer",
            AgentError::TransferToZero => "agent_transfer_to_zero",
            AgentError::DecimalsTooLarge { .. } => "feedback_decimals_too_large",
            AgentError::ValueOutOfRange { .. } => "feedback_value_out_of_range",
            AgentError::PaymentUnknown { .. } => "feedback_payment_unknown",
            AgentError::PaymentWrongPayee { .. } => "feedback_payment_wrong_payee",
            AgentError::PaymentAlreadyCited { .. } => "feedback_payment_already_cited",
            AgentError::UnknownFeedback { .. } => "feedback_unknown",
            AgentError::AlreadyRevoked { .. } => "feedback_already_revoked",
            AgentError::TooManyResponses { .. } => "feedback_too_many_responses",
            AgentError::ValidationExists { .. } => "validation_exists",
            AgentError::UnknownValidation { .. } => "validation_unknown",
            AgentError::NotValidator { .. } => "validation_not_validator",
            AgentError::ResponseOutOfRange { .. } => "validation_response_out_of_range",
            AgentError::NoValidator => "validation_no_validator",
        }
    }
}

fn err(e: AgentError) -> TxError {
    TxError::Agent(e)
}

/// `value / 10^decimals` in fixed point with 18 decimals, if in range.
fn normalize(value: i128, decimals: u8) -> Option<I256> {
    if decimals > SUMMARY_DECIMALS {
        return None;
    }
    // 10^18 · 10^18 fits in u128.
    if value.unsigned_abs() > MAX_WHOLE_VALUE * 10u128.pow(u32::from(decimals)) {
        return None;
    }
    let factor = I256::from_raw(U256::from(
        10u128.pow(u32::from(SUMMARY_DECIMALS - decimals)),
    ));
    Some(I256::try_from(value).expect("i128 fits in int256") * factor)
}

fn check_len(field: &str, value: &[u8], max: usize) -> Result<(), TxError> {
    if value.len() > max {
        return Err(err(AgentError::FieldTooLong {
            field: field.to_string(),
            size: value.len(),
            max,
        }));
    }
    Ok(())
}

/// A string field: at most `max` bytes, no control characters (tags are joined with `\n`).
fn check_text(field: &str, value: &str, max: usize) -> Result<(), TxError> {
    check_len(field, value.as_bytes(), max)?;
    if value.chars().any(char::is_control) {
        return Err(err(AgentError::ControlCharacter {
            field: field.to_string(),
        }));
    }
    Ok(())
}

fn agent_id(id: &U256) -> Result<u64, TxError> {
    u64::try_from(*id).map_err(|_| {
        err(AgentError::UnknownAgent {
            agent_id: id.to_string(),
        })
    })
}

fn existing(state: &State, id: &U256) -> Result<(u64, Agent), TxError> {
    let n = agent_id(id)?;
    let agent = state.agents().agent(n).cloned().ok_or_else(|| {
        err(AgentError::UnknownAgent {
            agent_id: n.to_string(),
        })
    })?;
    Ok((n, agent))
}

/// The agent `id`, if `sender` may act for it.
fn acting(state: &State, id: &U256, sender: Address) -> Result<(u64, Agent), TxError> {
    let (n, agent) = existing(state, id)?;
    if !state.agents().may_act(&agent, &sender) {
        return Err(err(AgentError::NotAuthorized {
            agent_id: n,
            sender,
        }));
    }
    Ok((n, agent))
}

fn set_metadata(agent: &mut Agent, key: &str, value: &Bytes) -> Result<(), TxError> {
    check_text("metadataKey", key, MAX_KEY_BYTES)?;
    check_len("metadataValue", value, MAX_METADATA_VALUE_BYTES)?;
    if key == AGENT_WALLET_KEY {
        return Err(err(AgentError::ReservedMetadataKey));
    }
    if value.is_empty() {
        agent.metadata.remove(key);
    } else {
        agent.metadata.insert(key.to_string(), value.clone());
        if agent.metadata.len() > MAX_METADATA_ENTRIES {
            return Err(err(AgentError::TooManyMetadata {
                max: MAX_METADATA_ENTRIES,
            }));
        }
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    format!("0x{}", alloy_primitives::hex::encode(b))
}

/// What an agent transaction writes: its events and the module's write (accounts are only the
/// sender's fee and nonce, which the caller writes).
pub(crate) struct AgentPlan {
    pub(crate) events: Vec<AgentEvent>,
    pub(crate) write: AgentWrite,
}

/// The stateful checks of an agent transaction and what it would write.
pub(crate) fn plan_tx(state: &State, sender: Address, kind: &TxKind) -> Result<AgentPlan, TxError> {
    let now = state.last_block_time_ms() / 1000;
    let height = state.height() + 1;
    match kind {
        TxKind::RegisterAgent(t) => {
            check_text("agentURI", &t.agentURI, MAX_URI_BYTES)?;
            let mut agent = Agent {
                owner: sender,
                uri: t.agentURI.clone(),
                wallet: Some(sender),
                approved: None,
                metadata: BTreeMap::new(),
                registered_height: height,
            };
            let id = state.agents().count() + 1;
            let mut events = vec![AgentEvent::Registered {
                agent_id: id,
                uri: t.agentURI.clone(),
                owner: sender,
            }];
            let mut seen = BTreeSet::new();
            for MetadataEntry {
                metadataKey,
                metadataValue,
            } in &t.metadata
            {
                if !seen.insert(metadataKey.as_str()) {
                    return Err(err(AgentError::DuplicateMetadata {
                        key: metadataKey.clone(),
                    }));
                }
                set_metadata(&mut agent, metadataKey, metadataValue)?;
                events.push(AgentEvent::MetadataSet {
                    agent_id: id,
                    key: metadataKey.clone(),
                    value: hex(metadataValue),
                });
            }
            Ok(AgentPlan {
                events,
                write: AgentWrite::Agent(id, agent),
            })
        }
        TxKind::SetAgentURI(t) => {
            let (id, mut agent) = acting(state, &t.agentId, sender)?;
            check_text("newURI", &t.newURI, MAX_URI_BYTES)?;
            agent.uri = t.newURI.clone();
            Ok(AgentPlan {
                events: vec![AgentEvent::UriUpdated {
                    agent_id: id,
                    uri: t.newURI.clone(),
                    updated_by: sender,
                }],
                write: AgentWrite::Agent(id, agent),
            })
        }
        TxKind::SetAgentMetadata(t) => {
            let (id, mut agent) = acting(state, &t.agentId, sender)?;
            set_metadata(&mut agent, &t.metadataKey, &t.metadataValue)?;
            Ok(AgentPlan {
                events: vec![AgentEvent::MetadataSet {
                    agent_id: id,
                    key: t.metadataKey.clone(),
                    value: hex(&t.metadataValue),
                }],
                write: AgentWrite::Agent(id, agent),
            })
        }
        TxKind::SetAgentWallet(t) => {
            let (id, mut agent) = acting(state, &t.agentId, sender)?;
            if t.newWallet == Address::ZERO {
                agent.wallet = None;
            } else {
                if t.deadline < U256::from(now) {
                    return Err(err(AgentError::WalletDeadlinePassed {
                        deadline: t.deadline.to_string(),
                        now,
                    }));
                }
                if t.deadline > U256::from(now + MAX_WALLET_DEADLINE_S) {
                    return Err(err(AgentError::WalletDeadlineTooFar {
                        deadline: t.deadline.to_string(),
                        now,
                        max: MAX_WALLET_DEADLINE_S,
                    }));
                }
                let recovered = t
                    .consent(agent.owner)
                    .recover_signer(state.params().chain_id, &t.signature)
                    .map_err(|e| {
                        err(AgentError::WalletBadSignature {
                            message: e.to_string(),
                        })
                    })?;
                if recovered != t.newWallet {
                    return Err(err(AgentError::WalletWrongSigner {
                        wallet: t.newWallet,
                        recovered,
                    }));
                }
                agent.wallet = Some(t.newWallet);
            }
            Ok(AgentPlan {
                events: vec![AgentEvent::WalletSet {
                    agent_id: id,
                    wallet: agent.wallet,
                }],
                write: AgentWrite::Agent(id, agent),
            })
        }
        TxKind::TransferAgent(t) => {
            let (id, mut agent) = acting(state, &t.agentId, sender)?;
            if t.to == Address::ZERO {
                return Err(err(AgentError::TransferToZero));
            }
            let from = agent.owner;
            agent.owner = t.to;
            agent.approved = None;
            agent.wallet = None;
            Ok(AgentPlan {
                events: vec![
                    AgentEvent::Transferred {
                        agent_id: id,
                        from,
                        to: t.to,
                    },
                    AgentEvent::WalletSet {
                        agent_id: id,
                        wallet: None,
                    },
                ],
                write: AgentWrite::Agent(id, agent),
            })
        }
        TxKind::ApproveAgent(t) => {
            let (id, mut agent) = existing(state, &t.agentId)?;
            if agent.owner != sender && !state.agents().is_operator(&agent.owner, &sender) {
                return Err(err(AgentError::NotAuthorized {
                    agent_id: id,
                    sender,
                }));
            }
            agent.approved = (t.approved != Address::ZERO).then_some(t.approved);
            Ok(AgentPlan {
                events: vec![AgentEvent::Approved {
                    agent_id: id,
                    approved: agent.approved,
                }],
                write: AgentWrite::Agent(id, agent),
            })
        }
        TxKind::SetAgentOperator(t) => Ok(AgentPlan {
            events: vec![AgentEvent::OperatorSet {
                owner: sender,
                operator: t.operator,
                approved: t.approved,
            }],
            write: AgentWrite::Operator {
                owner: sender,
                operator: t.operator,
                approved: t.approved,
            },
        }),
        TxKind::GiveFeedback(t) => {
            let (id, agent) = existing(state, &t.agentId)?;
            if state.agents().may_act(&agent, &sender) {
                return Err(err(AgentError::SelfFeedback {
                    agent_id: id,
                    sender,
                }));
            }
            if t.valueDecimals > SUMMARY_DECIMALS {
                return Err(err(AgentError::DecimalsTooLarge {
                    got: t.valueDecimals,
                }));
            }
            if normalize(t.value, t.valueDecimals).is_none() {
                return Err(err(AgentError::ValueOutOfRange {
                    value: t.value.to_string(),
                    decimals: t.valueDecimals,
                }));
            }
            check_text("tag1", &t.tag1, MAX_KEY_BYTES)?;
            check_text("tag2", &t.tag2, MAX_KEY_BYTES)?;
            check_text("endpoint", &t.endpoint, MAX_ENDPOINT_BYTES)?;
            check_text("feedbackURI", &t.feedbackURI, MAX_URI_BYTES)?;
            let (paid, cited) = if t.paymentNonce == B256::ZERO {
                (None, None)
            } else {
                let (to, value, cited) = match job_citation(&t.paymentNonce) {
                    Some(job_id) => {
                        // A completed job the author paid for (its client), done by the agent.
                        let job = state
                            .jobs()
                            .job(job_id)
                            .filter(|j| {
                                j.client == sender
                                    && j.status == mycel_types::api::JobStatus::Completed
                            })
                            .ok_or(err(AgentError::PaymentUnknown {
                                payer: sender,
                                nonce: t.paymentNonce,
                            }))?;
                        let provider = job.provider.unwrap_or_default();
                        let mut key = [0u8; 12];
                        key[..4].copy_from_slice(b"job:");
                        key[4..].copy_from_slice(&job_id.to_be_bytes());
                        (provider, job.budget, keccak256(key))
                    }
                    None => {
                        let payment = state.payments().paid(&sender, &t.paymentNonce).ok_or(
                            err(AgentError::PaymentUnknown {
                                payer: sender,
                                nonce: t.paymentNonce,
                            }),
                        )?;
                        let cited = crate::payments::authorization_id(&sender, &t.paymentNonce);
                        (payment.to, payment.value, cited)
                    }
                };
                if to != agent.owner && Some(to) != agent.wallet {
                    return Err(err(AgentError::PaymentWrongPayee { agent_id: id, to }));
                }
                if state.agents().cited.contains(&cited) {
                    return Err(err(AgentError::PaymentAlreadyCited {
                        payer: sender,
                        nonce: t.paymentNonce,
                    }));
                }
                (Some(value), Some(cited))
            };
            let index = state
                .agents()
                .reputation(id)
                .map_or(0, |r| r.client_feedback(&sender).len() as u64)
                + 1;
            Ok(AgentPlan {
                events: vec![AgentEvent::FeedbackGiven {
                    agent_id: id,
                    client: sender,
                    index,
                    value: t.value.to_string(),
                    value_decimals: t.valueDecimals,
                    tag1: t.tag1.clone(),
                    tag2: t.tag2.clone(),
                    paid,
                }],
                write: AgentWrite::Feedback {
                    agent: id,
                    client: sender,
                    feedback: Feedback {
                        value: t.value,
                        value_decimals: t.valueDecimals,
                        tag1: t.tag1.clone(),
                        tag2: t.tag2.clone(),
                        endpoint: t.endpoint.clone(),
                        uri: t.feedbackURI.clone(),
                        hash: t.feedbackHash,
                        revoked: false,
                        height,
                        paid,
                        responses: Vec::new(),
                    },
                    cited,
                },
            })
        }
        TxKind::RevokeFeedback(t) => {
            let (id, _) = existing(state, &t.agentId)?;
            let entry = feedback_entry(state, id, sender, t.feedbackIndex)?;
            if entry.revoked {
                return Err(err(AgentError::AlreadyRevoked {
                    index: t.feedbackIndex,
                }));
            }
            Ok(AgentPlan {
                events: vec![AgentEvent::FeedbackRevoked {
                    agent_id: id,
                    client: sender,
                    index: t.feedbackIndex,
                }],
                write: AgentWrite::Revoke {
                    agent: id,
                    client: sender,
                    index: t.feedbackIndex,
                },
            })
        }
        TxKind::AppendResponse(t) => {
            let (id, _) = existing(state, &t.agentId)?;
            check_text("responseURI", &t.responseURI, MAX_URI_BYTES)?;
            let entry = feedback_entry(state, id, t.clientAddress, t.feedbackIndex)?;
            if entry.responses.len() >= MAX_RESPONSES {
                return Err(err(AgentError::TooManyResponses {
                    index: t.feedbackIndex,
                    max: MAX_RESPONSES,
                }));
            }
            Ok(AgentPlan {
                events: vec![AgentEvent::ResponseAppended {
                    agent_id: id,
                    client: t.clientAddress,
                    index: t.feedbackIndex,
                    responder: sender,
                }],
                write: AgentWrite::Response {
                    agent: id,
                    client: t.clientAddress,
                    index: t.feedbackIndex,
                    response: Response {
                        responder: sender,
                        uri: t.responseURI.clone(),
                        hash: t.responseHash,
                        height,
                    },
                },
            })
        }
        TxKind::ValidationRequest(t) => {
            let (id, _) = acting(state, &t.agentId, sender)?;
            if t.validator == Address::ZERO {
                return Err(err(AgentError::NoValidator));
            }
            check_text("requestURI", &t.requestURI, MAX_URI_BYTES)?;
            if state.agents().validation(&t.requestHash).is_some() {
                return Err(err(AgentError::ValidationExists {
                    request_hash: t.requestHash,
                }));
            }
            Ok(AgentPlan {
                events: vec![AgentEvent::ValidationRequested {
                    agent_id: id,
                    validator: t.validator,
                    request_hash: t.requestHash,
                }],
                write: AgentWrite::Validation(
                    t.requestHash,
                    Validation {
                        agent_id: id,
                        validator: t.validator,
                        request_uri: t.requestURI.clone(),
                        response: None,
                        response_uri: String::new(),
                        response_hash: B256::ZERO,
                        tag: String::new(),
                        responses: 0,
                        requested_height: height,
                        updated_height: height,
                    },
                ),
            })
        }
        TxKind::ValidationResponse(t) => {
            let mut v = state
                .agents()
                .validation(&t.requestHash)
                .cloned()
                .ok_or(err(AgentError::UnknownValidation {
                    request_hash: t.requestHash,
                }))?;
            if v.validator != sender {
                return Err(err(AgentError::NotValidator {
                    sender,
                    validator: v.validator,
                }));
            }
            if t.response > 100 {
                return Err(err(AgentError::ResponseOutOfRange { got: t.response }));
            }
            check_text("responseURI", &t.responseURI, MAX_URI_BYTES)?;
            check_text("tag", &t.tag, MAX_KEY_BYTES)?;
            v.response = Some(t.response);
            v.response_uri = t.responseURI.clone();
            v.response_hash = t.responseHash;
            v.tag = t.tag.clone();
            v.responses = v.responses.saturating_add(1);
            v.updated_height = height;
            Ok(AgentPlan {
                events: vec![AgentEvent::ValidationResponded {
                    agent_id: v.agent_id,
                    validator: sender,
                    request_hash: t.requestHash,
                    response: t.response,
                    tag: t.tag.clone(),
                }],
                write: AgentWrite::Validation(t.requestHash, v),
            })
        }
        other => unreachable!("{} is not an agent transaction", other.type_name()),
    }
}

/// The job a feedback's `paymentNonce` cites, if it names one: a job id in its low 8 bytes and
/// zeros above (an EIP-3009 nonce is 32 random bytes, so the two never meet in practice).
pub fn job_citation(payment_nonce: &B256) -> Option<u64> {
    let bytes = payment_nonce.as_slice();
    bytes[..24]
        .iter()
        .all(|b| *b == 0)
        .then(|| u64::from_be_bytes(bytes[24..].try_into().expect("8 bytes")))
        .filter(|id| *id != 0)
}

/// The `paymentNonce` that cites job `job_id`.
pub fn cite_job(job_id: u64) -> B256 {
    let mut bytes = [0u8; 32];
    bytes[24..].copy_from_slice(&job_id.to_be_bytes());
    B256::from(bytes)
}

fn feedback_entry(
    state: &State,
    agent: u64,
    client: Address,
    index: u64,
) -> Result<&Feedback, TxError> {
    let unknown = || {
        err(AgentError::UnknownFeedback {
            agent_id: agent,
            client,
            index,
        })
    };
    let entries = state
        .agents()
        .reputation(agent)
        .map_or(&[][..], |r| r.client_feedback(&client));
    let i = usize::try_from(index)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .ok_or_else(unknown)?;
    entries.get(i).ok_or_else(unknown)
}

/// A fixed-point number with `decimals` decimals as a decimal string ("-12.5", "0").
pub fn fixed_to_decimal(value: I256, decimals: u8) -> String {
    let negative = value.is_negative();
    let magnitude = value.unsigned_abs();
    let scale = U256::from(10u64).pow(U256::from(decimals));
    let whole = magnitude / scale;
    let frac = magnitude % scale;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&whole.to_string());
    if frac != U256::ZERO {
        let digits = format!("{:0>width$}", frac.to_string(), width = decimals as usize);
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

/// A summary: the mean (weighted by payment when `verified_only`), 18 decimals.
pub fn summary_mean(totals: &Totals, verified_only: bool) -> (u64, I256) {
    if verified_only {
        if totals.paid_count == 0 || totals.paid_total == U256::ZERO {
            return (totals.paid_count, I256::ZERO);
        }
        let mean = totals.paid_weighted_sum / I256::from_raw(totals.paid_total);
        (totals.paid_count, mean)
    } else {
        if totals.count == 0 {
            return (0, I256::ZERO);
        }
        (
            totals.count,
            totals.sum / I256::from_raw(U256::from(totals.count)),
        )
    }
}

/// Serde for numbers kept as decimal strings in the snapshot (JSON numbers lose precision).
mod decimal_string {
    use serde::{de, Deserialize, Deserializer, Serializer};
    use std::{fmt::Display, str::FromStr};

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
#[path = "agents_tests.rs"]
mod tests;
