//! mUSD and its payments: `GET /v1/musd`, `GET /v1/musd/authorizations/{authorizer}/{nonce}`,
//! `GET /v1/channels/{id}` (docs/payments.md).

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// mUSD's EIP-3009 identity: what an x402 client puts in `asset` and `extra`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Musd {
    /// The token's address, its EIP-712 verifying contract.
    #[serde(with = "super::checksummed")]
    pub asset: Address,
    /// EIP-712 domain name and version (x402's `extra`).
    pub name: String,
    pub version: String,
    pub decimals: u32,
    #[serde(rename = "chainId")]
    pub chain_id: u64,
    /// CAIP-2: `eip155:<chain id>`.
    pub network: String,
}

/// EIP-3009 `authorizationState(authorizer, nonce)` at the latest finalized block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationState {
    #[serde(with = "super::checksummed")]
    pub authorizer: Address,
    pub nonce: B256,
    /// Executed in a finalized block: it can never execute again.
    pub used: bool,
    pub height: u64,
}

/// A payment channel: an escrow of mUSD paid out by vouchers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub id: B256,
    #[serde(with = "super::checksummed")]
    pub payer: Address,
    #[serde(with = "super::checksummed")]
    pub payee: Address,
    /// Everything the payer put in, mUSD base units.
    #[serde(with = "super::amount")]
    pub deposit: u128,
    /// Everything paid to the payee so far.
    #[serde(with = "super::amount")]
    pub claimed: u128,
    /// Still held (0 once closed).
    #[serde(with = "super::amount")]
    pub escrowed: u128,
    pub withdraw_delay_s: u64,
    /// Block time (s) from which the payer may withdraw; `None` until a withdraw is requested.
    pub withdraw_at_s: Option<u64>,
    /// Withdrawn: nothing more can happen.
    pub closed: bool,
    pub height: u64,
}

impl Channel {
    /// Open, with no withdraw requested: a payee can still take vouchers on it.
    pub fn is_open(&self) -> bool {
        !self.closed && self.withdraw_at_s.is_none()
    }
}

/// What kind of payment a [`Payment`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    /// An x402 "exact" payment: an EIP-3009 `transferWithAuthorization` of mUSD, settled.
    X402,
    /// A payment channel opened with its deposit (escrowed, not yet paid).
    SessionOpened,
    /// A payment channel topped up.
    SessionToppedUp,
    /// The payee claimed vouchers from a channel: paid.
    SessionClaimed,
    /// The payer took the unclaimed rest back.
    SessionRefunded,
    /// A job's escrow paid its provider.
    JobPaid,
}

impl PaymentKind {
    /// Whether the payee was paid (rather than money moved into or out of escrow).
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            PaymentKind::X402 | PaymentKind::SessionClaimed | PaymentKind::JobPaid
        )
    }
}

/// One payment in mUSD, as the node indexes them from finalized receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub hash: B256,
    pub height: u64,
    /// The block's time (milliseconds since the Unix epoch).
    #[serde(default)]
    pub timestamp_ms: u64,
    pub kind: PaymentKind,
    /// Who paid (unknown for a channel the node no longer has).
    pub payer: Option<Address>,
    pub payee: Option<Address>,
    #[serde(with = "super::amount")]
    pub amount: u128,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<B256>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
}

/// `GET /v1/payments?address=&before=&limit=`: payments newest first, and totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentList {
    pub payments: Vec<Payment>,
    /// Pass as `before` for the next (older) page: a position in the node's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<u64>,
    /// mUSD paid to payees over every indexed payment (of `address`, if given): x402
    /// settlements, session claims and job payouts.
    #[serde(with = "super::amount")]
    pub paid_total: u128,
    /// How many payments the index holds (of `address`, if given).
    pub total: u64,
    pub height: u64,
}

/// One transaction of an account's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountTx {
    pub hash: B256,
    pub height: u64,
    pub index: u32,
    /// The transaction type when it applied (`None` when it failed).
    #[serde(rename = "type")]
    pub tx_type: Option<String>,
    /// `None` when it applied; the code when it failed.
    pub error: Option<String>,
}

/// `GET /v1/accounts/{address}/txs?before=&limit=`: the transactions that sent from or paid to
/// an address, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountTxs {
    pub address: Address,
    pub txs: Vec<AccountTx>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<u64>,
    pub total: u64,
    pub height: u64,
}
