//! `GET /v1/accounts/{address}`.

use crate::{format_amount, Token};
use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

/// An account at the latest finalized block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    #[serde(with = "super::checksummed")]
    pub address: Address,
    #[serde(with = "super::amount")]
    pub myc: u128,
    #[serde(with = "super::amount")]
    pub musd: u128,
    /// The finalized account's next nonce (its pending transactions not counted).
    pub nonce: u64,
    /// The nonce to sign the next transaction with: `nonce` plus this node's pending
    /// transactions from the account.
    pub next_nonce: u64,
    /// `myc` in whole tokens, for people.
    pub myc_display: String,
    /// `musd` in whole tokens, for people.
    pub musd_display: String,
    /// For a delegated key (an agent key with an allowance): the mUSD one payment it signs may
    /// move from its owner now (what x402 facilitators check instead of `musd`).
    #[serde(
        with = "super::amount::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub spendable_musd: Option<u128>,
    pub height: u64,
}

impl Account {
    /// The answer for `address` holding `myc` and `musd` at `height`.
    pub fn new(
        address: Address,
        myc: u128,
        musd: u128,
        nonce: u64,
        next_nonce: u64,
        height: u64,
    ) -> Account {
        Account {
            address,
            myc,
            musd,
            nonce,
            next_nonce,
            myc_display: format_amount(myc, Token::Myc),
            musd_display: format_amount(musd, Token::Musd),
            spendable_musd: None,
            height,
        }
    }

    /// What a payment signed by this account may move: its owner's allowance for a delegated
    /// key, else its own mUSD.
    pub fn payable_musd(&self) -> u128 {
        self.spendable_musd.unwrap_or(self.musd)
    }

    /// How many of the account's transactions wait in the node's mempool.
    pub fn pending(&self) -> u64 {
        self.next_nonce.saturating_sub(self.nonce)
    }
}
