//! The node API's wire types (docs/node-api.md): one serde type per request and answer, the one
//! definition that the node answers with (`mycel-rpc`) and every client reads (`mycel-client`).
//!
//! Guarantees:
//! - Every type serializes to exactly the JSON the node sends and reads back what it sent (the
//!   byte test `crates/rpc/tests/api_bytes.rs` holds both to recorded answers). Field names,
//!   `null`s and absent fields are part of the contract; the node writes object keys in sorted
//!   order, so field order here follows the documentation instead.
//! - Amounts are integers in base units on the wire as decimal strings ([`amount`]), read
//!   strictly: digits only, so a malformed amount is an error, never 0. Fractions that the chain
//!   keeps in fixed point (`flow_ema`, `moving_price`, a swap's `price`) stay decimal strings.
//! - Addresses are [`Address`]es: lowercase hex where the node writes them so (incentive bodies,
//!   receipts), EIP-55 checksummed where it does ([`checksummed`]); both read in either case.
//! - A refusal is an HTTP status with an [`ErrorBody`]; its [`ErrorDetail::code`] is stable
//!   ([`code`] names those the API itself gives; a refused transaction carries the state
//!   machine's or the mempool's code).
//!
//! Does not: do I/O or know HTTP paths beyond the documentation of each type.

mod account;
mod agents;
mod allowances;
mod block;
mod incentive;
mod jobs;
mod payments;
mod receipt;
mod status;
mod storage;
mod training;
mod tx;

pub use account::Account;
pub use agents::{
    Agent, AgentClient, AgentEvent, AgentHistory, AgentList, AgentRegistration,
    AgentRegistrationRef, AgentService, AgentTx, ClientList, Feedback, FeedbackList,
    FeedbackResponse, ReputationSummary, Validation, ValidationList, ValidationSummary,
    AGENT_REGISTRATION_PATH, AGENT_REGISTRATION_TYPE,
};
pub use allowances::{Allowance, AllowanceEvent, TokenAllowance};
pub use block::{Block, BlockEvent, BlockList, BlockSummary, BlockTx, BlockTxResult, Lagged};
pub use incentive::{
    EmissionReceipt, EmissionReceiptList, EmissionSchedule, Endpoint, EpochAt, EpochList,
    EpochReceipt, HyperParams, Metagraph, MetagraphNeuron, NeuronEmissions, NeuronEpoch,
    NeuronPayout, PoolInfo, Pools, Side, StakePosition, Stakes, Subnet, SubnetEmission, SubnetList,
    SubnetSummary, SwapFill,
};
pub use jobs::{Job, JobEvent, JobList, JobStatus};
pub use payments::{
    AccountTx, AccountTxs, AuthorizationState, Channel, Musd, Payment, PaymentKind, PaymentList,
};
pub use receipt::{ChannelEvent, Event, IncentiveEvent, TxReceipt};
pub use status::{Status, SyncHealth};
pub use storage::{
    BatchItem, BlobInfo, BlobList, BlobStatus, StorageEvent, StorageInfo, StorageMember,
    StoragePayout,
};
pub use training::{TrainingCheckpoint, TrainingEvent, TrainingRun, TrainingUpdate};
pub use tx::{SubmitTx, TxResult, TxState, TxStatus};

use serde::{Deserialize, Serialize};

/// The body of every refusal: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Why the node refused, or why a transaction failed or was dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable and machine-readable ([`code`], or a transaction check's code).
    pub code: String,
    /// For people.
    pub message: String,
}

impl ErrorDetail {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ErrorDetail {
        ErrorDetail {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// The error codes the API itself answers with. Refused transactions carry the code of the
/// check they failed (`stale_nonce`, `insufficient_balance`, `reveal_too_early`, …:
/// docs/transactions.md and docs/node-api.md).
pub mod code {
    /// A path the API does not serve (404).
    pub const NOT_FOUND: &str = "not_found";
    /// `/v1/validator/…` on a node that runs no validator.
    pub const NO_VALIDATOR: &str = "no_validator";
    /// `POST /v1/txs` with a body that is not JSON (400).
    pub const BAD_JSON: &str = "bad_json";
    /// `POST /v1/txs` with JSON that is not a transaction (400).
    pub const BAD_TX: &str = "bad_tx";
    /// A malformed transaction hash in the path (400).
    pub const BAD_HASH: &str = "bad_hash";
    /// A malformed block height in the path (400).
    pub const BAD_HEIGHT: &str = "bad_height";
    /// A malformed address in the path (400).
    pub const BAD_ADDRESS: &str = "bad_address";
    /// A malformed EIP-3009 authorization nonce in the path (400).
    pub const BAD_NONCE: &str = "bad_nonce";
    /// A malformed channel id in the path (400).
    pub const BAD_CHANNEL_ID: &str = "bad_channel_id";
    /// A malformed subnet id in the path (400).
    pub const BAD_NETUID: &str = "bad_netuid";
    /// A malformed agent id in the path (400).
    pub const BAD_AGENT_ID: &str = "bad_agent_id";
    /// A query parameter that does not parse or is over its limit (400).
    pub const BAD_QUERY: &str = "bad_query";
    /// A node that cannot serve a state snapshot yet (`/v1/sync/snapshot`).
    pub const NO_SNAPSHOT: &str = "no_snapshot";
    /// An address that is not a delegated key (404).
    pub const NO_ALLOWANCE: &str = "no_allowance";
    /// A validation request that was never made (404).
    pub const UNKNOWN_VALIDATION: &str = "unknown_validation";
    /// A job that was never created (404).
    pub const UNKNOWN_JOB: &str = "unknown_job";
    /// A malformed blob id in the path (400).
    pub const BAD_BLOB_ID: &str = "bad_blob_id";
    /// A blob never registered, or expired (404).
    pub const UNKNOWN_BLOB: &str = "blob_unknown";
    /// `GET /v1/market/deployments/{id}` of a deployment that never existed.
    pub const UNKNOWN_DEPLOYMENT: &str = "market_unknown_deployment";
    /// A malformed job id in the path (400).
    pub const BAD_JOB_ID: &str = "bad_job_id";
    /// An agent that was never registered (404).
    pub const UNKNOWN_AGENT: &str = "unknown_agent";
    /// A transaction this node has never seen (404).
    pub const UNKNOWN_TX: &str = "unknown_tx";
    /// A block above the finalized height (404).
    pub const UNKNOWN_BLOCK: &str = "unknown_block";
    /// A subnet without a training run (404).
    pub const NO_TRAINING_RUN: &str = "no_training_run";
    /// A subnet that does not exist (404).
    pub const UNKNOWN_SUBNET: &str = "unknown_subnet";
    /// History older than the node's retention (or before the first subnet).
    pub const NOT_KEPT: &str = "not_kept";
    /// A payment channel that does not exist (404).
    pub const UNKNOWN_CHANNEL: &str = "unknown_channel";
    /// No block has emitted to a subnet yet (404).
    pub const NO_EMISSION_RECEIPT: &str = "no_emission_receipt";
    /// The mempool is full and the transaction is not better than any it could evict (503).
    pub const MEMPOOL_FULL: &str = "mempool_full";
    /// The request body took too long to arrive (408, from the HTTP server).
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    /// The request body is over the server's limit (413, from the HTTP server).
    pub const REQUEST_TOO_LARGE: &str = "request_too_large";
}

/// Serde for amounts in base units as decimal strings: written as digits, read strictly (digits
/// only; no sign, spaces, decimal point or empty string).
pub mod amount {
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        parse(&text)
            .ok_or_else(|| de::Error::custom(format!("'{text}' is not an amount in base units")))
    }

    /// `text` as an amount if it is only decimal digits.
    pub fn parse(text: &str) -> Option<u128> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    }

    /// The same for an amount that may be `null`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(value: &Option<u128>, s: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super")] u128);
            Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(v)| v))
        }
    }
}

/// Serde for an address the node writes EIP-55 checksummed (read in any case).
pub mod checksummed {
    use alloy_primitives::Address;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Address, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_checksum(None))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        Address::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_strictly() {
        #[derive(Debug, Deserialize)]
        struct A(#[serde(with = "amount")] u128);
        let read = |text: &str| serde_json::from_str::<A>(text).map(|A(a)| a).ok();
        assert_eq!(read("\"10000\""), Some(10_000));
        assert_eq!(read("\"0\""), Some(0));
        for bad in [
            "\"\"", "\"1.5\"", "\"-1\"", "\"+1\"", "\" 1\"", "null", "10000",
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
    }

    #[test]
    fn error_bodies_read_back() {
        let text = r#"{"error":{"code":"stale_nonce","message":"nonce 0 was already used"}}"#;
        let body: ErrorBody = serde_json::from_str(text).unwrap();
        assert_eq!(body.error.code, "stale_nonce");
        assert_eq!(serde_json::to_string(&body).unwrap(), text);
    }
}
