//! Spend allowances: `GET /v1/allowances/{agent}` and the events of allowance transactions and
//! delegated spends (docs/agents.md).
//!
//! The event type is also what the state machine records (one definition for both).

use crate::Token;
use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

/// Something an allowance transaction or a delegated key's spend did (`action` says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AllowanceEvent {
    Granted {
        owner: Address,
        agent: Address,
    },
    Revoked {
        owner: Address,
        agent: Address,
    },
    /// The delegated key `agent` moved `amount` of the owner's `token`.
    Spent {
        owner: Address,
        agent: Address,
        token: Token,
        #[serde(with = "super::amount")]
        amount: u128,
    },
}

/// The limits of one token of a grant, at the latest block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAllowance {
    pub token: Token,
    #[serde(with = "super::amount")]
    pub period_budget: u128,
    #[serde(with = "super::amount")]
    pub max_per_tx: u128,
    /// Spent in the current period.
    #[serde(with = "super::amount")]
    pub spent: u128,
    /// What one transaction may move now: the least of the cap, the period's rest and the
    /// owner's balance (0 once expired).
    #[serde(with = "super::amount")]
    pub spendable: u128,
}

/// A grant to an agent key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    pub agent: Address,
    pub owner: Address,
    pub tokens: Vec<TokenAllowance>,
    pub period_blocks: u64,
    /// The first block of the next period.
    pub next_period: u64,
    /// Empty: any recipient.
    pub recipients: Vec<Address>,
    pub kinds: Vec<String>,
    /// Block height from which it no longer works (0: never).
    pub expires_at: u64,
    pub granted_height: u64,
    pub height: u64,
}
