//! Transactions of jobs with escrow (ERC-8183 "agentic commerce"): a client hires a provider for
//! a budget in mUSD held by the chain, an evaluator completes (pays the provider) or rejects
//! (refunds the client), and after the expiry anyone may refund a job nobody settled.
//!
//! One kind per ERC-8183 function, the caller as `from`: [`CreateJob`] (`createJob`, with an
//! optional platform fee agreed at creation), [`SetJobProvider`], [`SetJobBudget`], [`FundJob`]
//! (`fund(jobId, expectedBudget)`), [`SubmitJob`], [`CompleteJob`], [`RejectJob`],
//! [`ClaimJobRefund`]; and beyond the standard [`DisputeJob`]: within a dispute window after
//! delivery, the client hands the decision to a subnet validator that re-runs the deliverable. Every kind's fee is paid in MYC by `from`. The rules are in
//! `mycel_state::jobs` and docs/agents.md.

use super::incentive::{field_string, MessageJson};
use super::{field_address, field_b256, field_u256, field_u64, DecodeError};
use alloy_primitives::Address;
use alloy_sol_types::sol;
use serde_json::{json, Value};

sol! {
    /// The client `from` opens a job: `provider` (zero: set later), the `evaluator` who decides
    /// it, its expiry (block time, seconds), a dispute window (seconds after delivery in which
    /// the client may hand the decision to a subnet validator's re-execution, and the evaluator
    /// may not complete; 0: none), a description, and an optional `platform` that takes
    /// `platformFeeBps` (at most 10%) of the budget on completion.
    #[derive(Debug, PartialEq, Eq)]
    struct CreateJob {
        address from;
        address provider;
        address evaluator;
        uint64 expiredAt;
        uint64 disputeWindow;
        string description;
        address platform;
        uint16 platformFeeBps;
        uint64 nonce;
        uint256 fee;
    }

    /// The client names the provider of an open job that has none.
    #[derive(Debug, PartialEq, Eq)]
    struct SetJobProvider {
        address from;
        uint64 jobId;
        address provider;
        uint64 nonce;
        uint256 fee;
    }

    /// The client or the provider proposes the budget of an open job (mUSD base units).
    #[derive(Debug, PartialEq, Eq)]
    struct SetJobBudget {
        address from;
        uint64 jobId;
        uint256 amount;
        uint64 nonce;
        uint256 fee;
    }

    /// The client moves the budget into escrow; refused unless the budget is `expectedBudget`.
    #[derive(Debug, PartialEq, Eq)]
    struct FundJob {
        address from;
        uint64 jobId;
        uint256 expectedBudget;
        uint64 nonce;
        uint256 fee;
    }

    /// The provider delivers: the deliverable's hash (for an inference job, the receipt's
    /// EIP-712 hash) and where to fetch it.
    #[derive(Debug, PartialEq, Eq)]
    struct SubmitJob {
        address from;
        uint64 jobId;
        bytes32 deliverable;
        string deliverableURI;
        uint64 nonce;
        uint256 fee;
    }

    /// The evaluator accepts a submitted job: the provider is paid (less the platform fee).
    #[derive(Debug, PartialEq, Eq)]
    struct CompleteJob {
        address from;
        uint64 jobId;
        bytes32 reason;
        uint64 nonce;
        uint256 fee;
    }

    /// The evaluator rejects a funded or submitted job (the client is refunded), or the client
    /// cancels a job it has not funded.
    #[derive(Debug, PartialEq, Eq)]
    struct RejectJob {
        address from;
        uint64 jobId;
        bytes32 reason;
        uint64 nonce;
        uint256 fee;
    }

    /// The client, within the dispute window after delivery, hands the decision to `validator`,
    /// which must hold a validator permit in subnet `netuid`: it re-runs the deliverable and
    /// completes or rejects the job.
    #[derive(Debug, PartialEq, Eq)]
    struct DisputeJob {
        address from;
        uint64 jobId;
        uint16 netuid;
        address validator;
        uint64 nonce;
        uint256 fee;
    }

    /// Anyone, after the expiry, returns the escrow of a job nobody settled to its client.
    #[derive(Debug, PartialEq, Eq)]
    struct ClaimJobRefund {
        address from;
        uint64 jobId;
        uint64 nonce;
        uint256 fee;
    }
}

fn addr(a: &Address) -> Value {
    Value::String(a.to_checksum(None))
}

fn field_u16(m: &Value, name: &'static str) -> Result<u16, DecodeError> {
    let v = field_u64(m, name)?;
    u16::try_from(v).map_err(|_| DecodeError::Field {
        field: name,
        reason: format!("{v} does not fit in 16 bits (at most 65535)"),
    })
}

impl MessageJson for CreateJob {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "provider": addr(&self.provider),
               "evaluator": addr(&self.evaluator), "expiredAt": self.expiredAt,
               "disputeWindow": self.disputeWindow,
               "description": self.description, "platform": addr(&self.platform),
               "platformFeeBps": self.platformFeeBps, "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(CreateJob {
            from: field_address(m, "from")?,
            provider: field_address(m, "provider")?,
            evaluator: field_address(m, "evaluator")?,
            expiredAt: field_u64(m, "expiredAt")?,
            disputeWindow: field_u64(m, "disputeWindow")?,
            description: field_string(m, "description")?,
            platform: field_address(m, "platform")?,
            platformFeeBps: field_u16(m, "platformFeeBps")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for SetJobProvider {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "jobId": self.jobId, "provider": addr(&self.provider),
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(SetJobProvider {
            from: field_address(m, "from")?,
            jobId: field_u64(m, "jobId")?,
            provider: field_address(m, "provider")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for SetJobBudget {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "jobId": self.jobId, "amount": self.amount.to_string(),
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(SetJobBudget {
            from: field_address(m, "from")?,
            jobId: field_u64(m, "jobId")?,
            amount: field_u256(m, "amount")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for FundJob {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "jobId": self.jobId,
               "expectedBudget": self.expectedBudget.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(FundJob {
            from: field_address(m, "from")?,
            jobId: field_u64(m, "jobId")?,
            expectedBudget: field_u256(m, "expectedBudget")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for SubmitJob {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "jobId": self.jobId,
               "deliverable": self.deliverable.to_string(), "deliverableURI": self.deliverableURI,
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(SubmitJob {
            from: field_address(m, "from")?,
            jobId: field_u64(m, "jobId")?,
            deliverable: field_b256(m, "deliverable")?,
            deliverableURI: field_string(m, "deliverableURI")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for CompleteJob {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "jobId": self.jobId, "reason": self.reason.to_string(),
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(CompleteJob {
            from: field_address(m, "from")?,
            jobId: field_u64(m, "jobId")?,
            reason: field_b256(m, "reason")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for RejectJob {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "jobId": self.jobId, "reason": self.reason.to_string(),
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RejectJob {
            from: field_address(m, "from")?,
            jobId: field_u64(m, "jobId")?,
            reason: field_b256(m, "reason")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for DisputeJob {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "jobId": self.jobId, "netuid": self.netuid,
               "validator": addr(&self.validator), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(DisputeJob {
            from: field_address(m, "from")?,
            jobId: field_u64(m, "jobId")?,
            netuid: field_u16(m, "netuid")?,
            validator: field_address(m, "validator")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for ClaimJobRefund {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "jobId": self.jobId, "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(ClaimJobRefund {
            from: field_address(m, "from")?,
            jobId: field_u64(m, "jobId")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}
