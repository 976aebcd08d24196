//! Agents (ERC-8004 identity and reputation): `GET /v1/agents`, `GET /v1/agents/{id}`,
//! `GET /v1/agents/{id}/feedback`, `GET /v1/agents/{id}/reputation`, `GET /v1/agents/{id}/events`
//! (docs/agents.md), and the events agent transactions write into receipts.
//!
//! The event type is also what the state machine records (one definition for both).

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Something an agent transaction did (`action` says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AgentEvent {
    /// ERC-8004 `Registered(agentId, agentURI, owner)`.
    Registered {
        agent_id: u64,
        uri: String,
        owner: Address,
    },
    /// ERC-8004 `URIUpdated(agentId, newURI, updatedBy)`.
    UriUpdated {
        agent_id: u64,
        uri: String,
        updated_by: Address,
    },
    /// ERC-8004 `MetadataSet(agentId, key, value)`; an empty value deleted the entry.
    MetadataSet {
        agent_id: u64,
        key: String,
        /// 0x-hex.
        value: String,
    },
    /// The reserved `agentWallet` was set (or cleared: `None`).
    WalletSet {
        agent_id: u64,
        wallet: Option<Address>,
    },
    /// ERC-721 `Transfer(from, to, tokenId)`; the wallet and approval were cleared.
    Transferred {
        agent_id: u64,
        from: Address,
        to: Address,
    },
    /// ERC-721 `Approval(owner, approved, tokenId)`.
    Approved {
        agent_id: u64,
        approved: Option<Address>,
    },
    /// ERC-721 `ApprovalForAll(owner, operator, approved)`.
    OperatorSet {
        owner: Address,
        operator: Address,
        approved: bool,
    },
    /// ERC-8004 `NewFeedback`; `paid` is the mUSD the author paid the agent in the cited
    /// payment (verified by the chain), absent when no payment was cited.
    FeedbackGiven {
        agent_id: u64,
        client: Address,
        index: u64,
        /// int128, as a decimal string.
        value: String,
        value_decimals: u8,
        tag1: String,
        tag2: String,
        #[serde(
            with = "super::amount::option",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        paid: Option<u128>,
    },
    /// ERC-8004 `FeedbackRevoked(agentId, clientAddress, feedbackIndex)`.
    FeedbackRevoked {
        agent_id: u64,
        client: Address,
        index: u64,
    },
    /// ERC-8004 `ResponseAppended(agentId, clientAddress, feedbackIndex, responder, …)`.
    ResponseAppended {
        agent_id: u64,
        client: Address,
        index: u64,
        responder: Address,
    },
    /// ERC-8004 `ValidationRequest(validatorAddress, agentId, requestURI, requestHash)`.
    ValidationRequested {
        agent_id: u64,
        validator: Address,
        request_hash: B256,
    },
    /// ERC-8004 `ValidationResponse(validatorAddress, agentId, requestHash, response, …, tag)`.
    ValidationResponded {
        agent_id: u64,
        validator: Address,
        request_hash: B256,
        response: u8,
        tag: String,
    },
}

impl AgentEvent {
    /// The agent the event is about (`None` for an operator change, which is about an owner).
    pub fn agent_id(&self) -> Option<u64> {
        match self {
            AgentEvent::Registered { agent_id, .. }
            | AgentEvent::UriUpdated { agent_id, .. }
            | AgentEvent::MetadataSet { agent_id, .. }
            | AgentEvent::WalletSet { agent_id, .. }
            | AgentEvent::Transferred { agent_id, .. }
            | AgentEvent::Approved { agent_id, .. }
            | AgentEvent::FeedbackGiven { agent_id, .. }
            | AgentEvent::FeedbackRevoked { agent_id, .. }
            | AgentEvent::ResponseAppended { agent_id, .. }
            | AgentEvent::ValidationRequested { agent_id, .. }
            | AgentEvent::ValidationResponded { agent_id, .. } => Some(*agent_id),
            AgentEvent::OperatorSet { .. } => None,
        }
    }
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub agent_id: u64,
    /// `eip155:<chainId>:<identity registry>`: with `agent_id`, the agent's global name.
    pub agent_registry: String,
    #[serde(with = "super::checksummed")]
    pub owner: Address,
    /// The registration file's URI (may be empty).
    pub uri: String,
    /// The verified wallet (`agentWallet`): where the agent is paid.
    pub wallet: Option<Address>,
    /// The address approved for this agent alone (ERC-721 `getApproved`).
    pub approved: Option<Address>,
    /// Metadata entries, values as 0x-hex.
    pub metadata: BTreeMap<String, String>,
    /// Height of the block that registered it.
    pub registered_height: u64,
    /// Feedback entries given (revoked ones included) and clients that gave them.
    pub feedback_count: u64,
    pub client_count: u64,
}

/// A page of agents in id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentList {
    pub agents: Vec<Agent>,
    /// Agents registered in all.
    pub total: u64,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<u64>,
    pub height: u64,
}

/// A response appended to a feedback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackResponse {
    pub responder: Address,
    pub response_uri: String,
    pub response_hash: B256,
    pub height: u64,
}

/// One feedback entry (ERC-8004 `readFeedback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    pub agent_id: u64,
    pub client: Address,
    /// 1, 2, … per client and agent.
    pub index: u64,
    /// int128, as a decimal string.
    pub value: String,
    pub value_decimals: u8,
    pub tag1: String,
    pub tag2: String,
    pub endpoint: String,
    pub feedback_uri: String,
    pub feedback_hash: B256,
    pub revoked: bool,
    pub height: u64,
    /// mUSD the author paid the agent in the payment the feedback cites (verified by the chain).
    #[serde(with = "super::amount::option", default)]
    pub paid: Option<u128>,
    pub responses: Vec<FeedbackResponse>,
}

/// A page of an agent's feedback, by client (in the order clients first gave feedback) and index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackList {
    pub feedback: Vec<Feedback>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    pub height: u64,
}

/// An agent's clients in the order of their first feedback (ERC-8004 `getClients`), each with its
/// last feedback index (`getLastIndex`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientList {
    pub agent_id: u64,
    pub clients: Vec<AgentClient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<u64>,
    pub height: u64,
}

/// One client of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentClient {
    pub client: Address,
    /// Its feedback on the agent is numbered 1..=last_index.
    pub last_index: u64,
}

/// ERC-8004 `getSummary(agentId, clientAddresses, tag1, tag2)`, from running totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReputationSummary {
    pub agent_id: u64,
    /// The clients asked about (empty: every client).
    pub clients: Vec<Address>,
    /// Tag filters (empty: any).
    pub tag1: String,
    pub tag2: String,
    /// Only feedback that cites a verified payment, weighted by the amount paid.
    pub verified_only: bool,
    /// Feedback counted (revoked feedback never is).
    pub count: u64,
    /// The mean value (weighted by payment when `verified_only`) in fixed point with
    /// `summary_value_decimals` decimals, as a decimal string (int256).
    pub summary_value: String,
    pub summary_value_decimals: u8,
    /// The same mean, for people: a decimal number with up to 18 decimals.
    pub average: String,
    /// mUSD paid by the counted feedback's cited payments.
    #[serde(with = "super::amount")]
    pub paid_total: u128,
    pub height: u64,
}

/// A validation request and its latest response (ERC-8004 `getValidationStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    pub request_hash: B256,
    pub agent_id: u64,
    pub validator: Address,
    pub request_uri: String,
    /// 0 (failed) to 100 (passed); absent until the validator answers.
    pub response: Option<u8>,
    pub response_uri: String,
    pub response_hash: B256,
    pub tag: String,
    /// How many times the validator answered.
    pub responses: u32,
    pub requested_height: u64,
    pub updated_height: u64,
}

/// A page of validations (of an agent, or for a validator), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationList {
    pub validations: Vec<Validation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<u64>,
    pub height: u64,
}

/// ERC-8004 validation `getSummary(agentId, validatorAddresses, tag)`: answered requests only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationSummary {
    pub agent_id: u64,
    pub validators: Vec<Address>,
    pub tag: String,
    pub count: u64,
    /// The mean response (0–100), a decimal string.
    pub average_response: String,
    pub height: u64,
}

/// A transaction that did something to an agent (`GET /v1/agents/{id}/events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTx {
    pub height: u64,
    pub index: u32,
    pub hash: B256,
    /// The events of that transaction about this agent.
    pub events: Vec<AgentEvent>,
}

/// A page of an agent's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHistory {
    pub agent_id: u64,
    pub txs: Vec<AgentTx>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<u64>,
}

/// Where a service serves its ERC-8004 registration file.
pub const AGENT_REGISTRATION_PATH: &str = "/.well-known/agent-registration.json";
/// The `type` of an ERC-8004 registration file.
pub const AGENT_REGISTRATION_TYPE: &str = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1";

/// An ERC-8004 registration file (`registration-v1`), as the gateway and miners serve it at
/// [`AGENT_REGISTRATION_PATH`]. Field names are the standard's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRegistration {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub image: String,
    pub services: Vec<AgentService>,
    #[serde(default)]
    pub x402_support: bool,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub registrations: Vec<AgentRegistrationRef>,
    #[serde(default)]
    pub supported_trust: Vec<String>,
}

/// One service an agent offers: its protocol's name (`web`, `A2A`, `MCP`, `OpenAI`, …) and
/// endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentService {
    pub name: String,
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Where the agent is registered: its id in the registry `eip155:<chainId>:<registry>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRegistrationRef {
    pub agent_id: u64,
    pub agent_registry: String,
}
