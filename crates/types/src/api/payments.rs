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
