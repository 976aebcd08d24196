//! Transactions of spend allowances: an owner lets an agent key spend from its account within
//! limits, instead of handing the agent its key.
//!
//! [`GrantAllowance`] (by the owner, `from`) makes `agent` a *delegated key* of `from`: the
//! agent's `Transfer`s and the EIP-3009 authorizations it signs (x402 payments, settled by
//! `TransferWithAuthorization`) move the owner's tokens, within per-token budgets per period of
//! `periodBlocks` blocks, a per-transaction cap, the allowed recipients (empty: any), the allowed
//! kinds (empty: both) and an expiry height (0: none). The agent pays its own fees in MYC.
//! [`RevokeAllowance`] ends it from the next block. The rules are in `mycel_state::allowances`.

use super::incentive::{field_list, field_string, MessageJson};
use super::{field_address, field_u256, field_u64, DecodeError};
use alloy_primitives::Address;
use alloy_sol_types::sol;
use serde_json::{json, Value};

sol! {
    /// The owner `from` lets `agent` spend: for each `tokens[i]` (MYC: the zero address; mUSD:
    /// its address) at most `periodBudgets[i]` per period of `periodBlocks` blocks and
    /// `maxPerTx[i]` per transaction; only to `recipients` (empty: anyone), only with `kinds`
    /// (`Transfer`, `TransferWithAuthorization`; empty: both), until block `expiresAt` (0: no
    /// expiry). Replaces an earlier grant of `from` to `agent`.
    #[derive(Debug, PartialEq, Eq)]
    struct GrantAllowance {
        address from;
        address agent;
        address[] tokens;
        uint256[] periodBudgets;
        uint256[] maxPerTx;
        uint64 periodBlocks;
        address[] recipients;
        string[] kinds;
        uint64 expiresAt;
        uint64 nonce;
        uint256 fee;
    }

    /// The owner `from` ends its grant to `agent`.
    #[derive(Debug, PartialEq, Eq)]
    struct RevokeAllowance {
        address from;
        address agent;
        uint64 nonce;
        uint256 fee;
    }
}

fn addr(a: &Address) -> Value {
    Value::String(a.to_checksum(None))
}

impl MessageJson for GrantAllowance {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "agent": addr(&self.agent),
               "tokens": self.tokens.iter().map(addr).collect::<Vec<_>>(),
               "periodBudgets": self.periodBudgets.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
               "maxPerTx": self.maxPerTx.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
               "periodBlocks": self.periodBlocks,
               "recipients": self.recipients.iter().map(addr).collect::<Vec<_>>(),
               "kinds": self.kinds, "expiresAt": self.expiresAt, "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(GrantAllowance {
            from: field_address(m, "from")?,
            agent: field_address(m, "agent")?,
            tokens: field_list(m, "tokens", field_address)?,
            periodBudgets: field_list(m, "periodBudgets", field_u256)?,
            maxPerTx: field_list(m, "maxPerTx", field_u256)?,
            periodBlocks: field_u64(m, "periodBlocks")?,
            recipients: field_list(m, "recipients", field_address)?,
            kinds: field_list(m, "kinds", field_string)?,
            expiresAt: field_u64(m, "expiresAt")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for RevokeAllowance {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "agent": addr(&self.agent), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RevokeAllowance {
            from: field_address(m, "from")?,
            agent: field_address(m, "agent")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}
