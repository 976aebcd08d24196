//! Spend allowances: an owner lets an agent key spend from its account within limits.
//!
//! Rules:
//! - `GrantAllowance` (owner): makes `agent` a delegated key of the owner. Refused for the owner
//!   itself, for a key another owner has a grant to (`allowance_agent_taken`: one owner per key,
//!   so whose funds a payment moves is never ambiguous), for malformed limits (lists of unequal
//!   length, a token twice, an unknown token, a period of 0 blocks, a kind other than `Transfer`,
//!   `TransferWithAuthorization` and `TopUpDeployment`, more than [`MAX_RECIPIENTS`] recipients).
//!   No kinds named means the first two. A new grant from the same owner replaces the old one and
//!   starts from nothing spent.
//! - `RevokeAllowance` (owner): ends it; the key spends its own account again from then on.
//! - A delegated key allowed `TopUpDeployment` tops up its owner's deployments (only theirs) with
//!   the owner's mUSD, within the same limits: an agent keeps its owner's leases running.
//! - A delegated key's `Transfer`, and the EIP-3009 authorizations it signs (executed by
//!   `TransferWithAuthorization`, x402's settlement), move the owner's tokens. Each is refused,
//!   with the code of the limit, unless: the grant has not expired (`expiresAt` is a block
//!   height, 0 for never), its kind is allowed, the recipient is allowed, the token has a limit,
//!   the amount is within the per-transaction cap and within what is left of the period's
//!   budget. Periods are aligned windows of `periodBlocks` blocks (`height / periodBlocks`); the
//!   spent amount starts from 0 in each. The key pays its own fees in MYC, outside the
//!   allowance.
//!
//! State root: every applied grant, revoke and delegated spend extends a running digest,
//! `d' = keccak(0x0c ‖ d ‖ tx hash)`, folded in as `keccak(0x0b ‖ root ‖ d)`.

use crate::{State, TxError};
use alloy_primitives::{Address, B256, U256};
use mycel_types::{genesis::amount_string, Amount, Token, TxKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The most recipients a grant may list.
pub const MAX_RECIPIENTS: usize = 64;
/// The kinds a grant may allow.
pub const SPENDING_KINDS: [&str; 3] = ["Transfer", "TransferWithAuthorization", "TopUpDeployment"];
/// The kinds a grant that names none allows (a top-up must be asked for).
pub const DEFAULT_KINDS: [&str; 2] = ["Transfer", "TransferWithAuthorization"];

/// The limits of one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenLimit {
    #[serde(with = "amount_string")]
    pub period_budget: Amount,
    #[serde(with = "amount_string")]
    pub max_per_tx: Amount,
    /// Spent in period number `period`.
    #[serde(with = "amount_string")]
    pub spent: Amount,
    pub period: u64,
}

impl TokenLimit {
    /// Spent in the period of block `height`.
    pub fn spent_at(&self, height: u64, period_blocks: u64) -> Amount {
        if self.period == height / period_blocks {
            self.spent
        } else {
            0
        }
    }

    /// What is left of the budget in the period of block `height`.
    pub fn remaining_at(&self, height: u64, period_blocks: u64) -> Amount {
        self.period_budget
            .saturating_sub(self.spent_at(height, period_blocks))
    }
}

/// An owner's grant to an agent key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    pub owner: Address,
    pub limits: BTreeMap<Token, TokenLimit>,
    pub period_blocks: u64,
    /// Empty: any recipient.
    pub recipients: BTreeSet<Address>,
    /// `Transfer` and/or `TransferWithAuthorization`.
    pub kinds: BTreeSet<String>,
    /// Block height from which the grant no longer works (0: never).
    pub expires_at: u64,
    pub granted_height: u64,
}

impl Allowance {
    /// What the agent may still move of `token` in one transaction at block `height`, given the
    /// owner's balance `owner_balance`: the least of the cap, the period's rest and the balance;
    /// 0 once expired or without a limit for `token`.
    pub fn spendable(&self, token: Token, height: u64, owner_balance: Amount) -> Amount {
        if self.expires_at != 0 && height >= self.expires_at {
            return 0;
        }
        self.limits.get(&token).map_or(0, |l| {
            l.max_per_tx
                .min(l.remaining_at(height, self.period_blocks))
                .min(owner_balance)
        })
    }
}

/// Every grant, by agent key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowances {
    by_agent: BTreeMap<Address, Allowance>,
    digest: crate::merkle::RunningDigest,
}

impl Allowances {
    /// The grant to `agent`, if it is a delegated key.
    pub fn of(&self, agent: &Address) -> Option<&Allowance> {
        self.by_agent.get(agent)
    }

    /// The grants of `owner`, by agent key.
    pub fn granted_by(&self, owner: &Address) -> impl Iterator<Item = (&Address, &Allowance)> {
        let owner = *owner;
        self.by_agent.iter().filter(move |(_, a)| a.owner == owner)
    }

    pub(crate) fn apply(&mut self, agent: Address, allowance: Option<Allowance>, tx_hash: B256) {
        match allowance {
            Some(a) => {
                self.by_agent.insert(agent, a);
            }
            None => {
                self.by_agent.remove(&agent);
            }
        }
        self.digest.extend(0x0c, tx_hash);
    }

    pub(crate) fn fold_root(&self, root: B256) -> B256 {
        self.digest.fold(0x0b, root)
    }
}

/// Why an allowance transaction, or a delegated key's spend, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum AllowanceError {
    #[error("an account cannot grant an allowance to itself")]
    SelfGrant,
    #[error("{agent} already spends for {owner}: a key has one owner at a time")]
    AgentTaken { agent: Address, owner: Address },
    #[error("{owner} has no allowance for {agent}")]
    Unknown { owner: Address, agent: Address },
    #[error("bad limits: {detail}")]
    BadLimits { detail: String },
    #[error("the allowance of {agent} expired at block {expires_at}")]
    Expired { agent: Address, expires_at: u64 },
    #[error("the allowance does not allow {kind}")]
    KindNotAllowed { kind: String },
    #[error("the allowance does not allow paying {to}")]
    RecipientNotAllowed { to: Address },
    #[error("the allowance has no budget in {token}")]
    TokenNotAllowed { token: Token },
    #[error("{amount} is over the allowance's cap of {cap} per transaction")]
    OverTxCap { amount: String, cap: String },
    #[error("{amount} is over the {remaining} left of this period's budget (a new period starts at block {next_period})")]
    OverPeriodBudget {
        amount: String,
        remaining: String,
        next_period: u64,
    },
}

impl AllowanceError {
    pub fn code(&self) -> &'static str {
        match self {
            AllowanceError::SelfGrant => "allowance_self",
            AllowanceError::AgentTaken { .. } => "allowance_agent_taken",
            AllowanceError::Unknown { .. } => "allowance_unknown",
            AllowanceError::BadLimits { .. } => "allowance_bad_limits",
            AllowanceError::Expired { .. } => "allowance_expired",
            AllowanceError::KindNotAllowed { .. } => "allowance_kind_not_allowed",
            AllowanceError::RecipientNotAllowed { .. } => "allowance_recipient_not_allowed",
            AllowanceError::TokenNotAllowed { .. } => "allowance_token_not_allowed",
            AllowanceError::OverTxCap { .. } => "allowance_over_tx_cap",
            AllowanceError::OverPeriodBudget { .. } => "allowance_over_period_budget",
        }
    }
}

fn err(e: AllowanceError) -> TxError {
    TxError::Allowance(e)
}

fn bad(detail: impl Into<String>) -> TxError {
    err(AllowanceError::BadLimits {
        detail: detail.into(),
    })
}

/// What a grant or revoke writes: the agent key's new grant (`None`: removed).
pub(crate) fn plan_tx(
    state: &State,
    sender: Address,
    kind: &TxKind,
) -> Result<(Address, Option<Allowance>), TxError> {
    match kind {
        TxKind::GrantAllowance(t) => {
            if t.agent == sender {
                return Err(err(AllowanceError::SelfGrant));
            }
            if let Some(other) = state.allowances().of(&t.agent) {
                if other.owner != sender {
                    return Err(err(AllowanceError::AgentTaken {
                        agent: t.agent,
                        owner: other.owner,
                    }));
                }
            }
            if t.tokens.len() != t.periodBudgets.len() || t.tokens.len() != t.maxPerTx.len() {
                return Err(bad("tokens, periodBudgets and maxPerTx differ in length"));
            }
            if t.tokens.is_empty() {
                return Err(bad("no token"));
            }
            if t.periodBlocks == 0 {
                return Err(bad("periodBlocks is 0"));
            }
            if t.recipients.len() > MAX_RECIPIENTS {
                return Err(bad(format!("more than {MAX_RECIPIENTS} recipients")));
            }
            let mut limits = BTreeMap::new();
            for ((address, budget), cap) in t.tokens.iter().zip(&t.periodBudgets).zip(&t.maxPerTx) {
                let token = Token::from_address(address)
                    .ok_or_else(|| bad(format!("{address} is not a token of this chain")))?;
                let amount = |v: &U256| {
                    u128::try_from(*v).map_err(|_| TxError::AmountTooLarge(v.to_string()))
                };
                let limit = TokenLimit {
                    period_budget: amount(budget)?,
                    max_per_tx: amount(cap)?,
                    spent: 0,
                    period: 0,
                };
                if limits.insert(token, limit).is_some() {
                    return Err(bad(format!("{token} is listed twice")));
                }
            }
            let mut kinds = BTreeSet::new();
            for k in &t.kinds {
                if !SPENDING_KINDS.contains(&k.as_str()) {
                    return Err(bad(format!(
                        "kind '{k}' cannot spend an allowance (Transfer, TransferWithAuthorization, TopUpDeployment)"
                    )));
                }
                kinds.insert(k.clone());
            }
            if kinds.is_empty() {
                kinds = DEFAULT_KINDS.iter().map(|k| k.to_string()).collect();
            }
            Ok((
                t.agent,
                Some(Allowance {
                    owner: sender,
                    limits,
                    period_blocks: t.periodBlocks,
                    recipients: t.recipients.iter().copied().collect(),
                    kinds,
                    expires_at: t.expiresAt,
                    granted_height: state.height() + 1,
                }),
            ))
        }
        TxKind::RevokeAllowance(t) => match state.allowances().of(&t.agent) {
            Some(a) if a.owner == sender => Ok((t.agent, None)),
            _ => Err(err(AllowanceError::Unknown {
                owner: sender,
                agent: t.agent,
            })),
        },
        other => unreachable!("{} is not an allowance transaction", other.type_name()),
    }
}

/// A delegated key's spend: whose account pays and the grant after it.
pub(crate) struct DelegatedSpend {
    pub(crate) owner: Address,
    pub(crate) allowance: Allowance,
}

/// If `agent` is a delegated key, checks that it may move `amount` of `token` to `to` with a
/// transaction of kind `kind` in the block being built, and returns whose account pays and the
/// grant with the spend counted. `None` if `agent` is not a delegated key.
pub(crate) fn delegated_spend(
    state: &State,
    agent: Address,
    kind: &str,
    to: Address,
    token: Token,
    amount: Amount,
) -> Result<Option<DelegatedSpend>, TxError> {
    let Some(a) = state.allowances().of(&agent) else {
        return Ok(None);
    };
    let height = state.height() + 1;
    if a.expires_at != 0 && height >= a.expires_at {
        return Err(err(AllowanceError::Expired {
            agent,
            expires_at: a.expires_at,
        }));
    }
    if !a.kinds.contains(kind) {
        return Err(err(AllowanceError::KindNotAllowed { kind: kind.into() }));
    }
    // A top-up goes to the owner's own deployment (the market checks): no recipient to allow.
    if kind != "TopUpDeployment" && !a.recipients.is_empty() && !a.recipients.contains(&to) {
        return Err(err(AllowanceError::RecipientNotAllowed { to }));
    }
    let limit = a
        .limits
        .get(&token)
        .copied()
        .ok_or(err(AllowanceError::TokenNotAllowed { token }))?;
    if amount > limit.max_per_tx {
        return Err(err(AllowanceError::OverTxCap {
            amount: amount.to_string(),
            cap: limit.max_per_tx.to_string(),
        }));
    }
    let remaining = limit.remaining_at(height, a.period_blocks);
    if amount > remaining {
        let next_period = (height / a.period_blocks + 1).saturating_mul(a.period_blocks);
        return Err(err(AllowanceError::OverPeriodBudget {
            amount: amount.to_string(),
            remaining: remaining.to_string(),
            next_period,
        }));
    }
    let mut allowance = a.clone();
    allowance.limits.insert(
        token,
        TokenLimit {
            spent: limit.spent_at(height, a.period_blocks) + amount,
            period: height / a.period_blocks,
            ..limit
        },
    );
    Ok(Some(DelegatedSpend {
        owner: a.owner,
        allowance,
    }))
}

#[cfg(test)]
#[path = "allowances_tests.rs"]
mod tests;
