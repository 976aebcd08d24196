//! Transactions of agents: ERC-8004's identity registry (an agent is an ERC-721-style token with a
//! URI, metadata and a verified wallet) and reputation registry (feedback from clients, revocable,
//! with responses).
//!
//! The kinds mirror ERC-8004's functions, one transaction kind per state-changing function, with
//! the caller as `from`:
//! - identity: [`RegisterAgent`] (`register(agentURI, MetadataEntry[])`), [`SetAgentURI`],
//!   [`SetAgentMetadata`], [`SetAgentWallet`] (`setAgentWallet` / `unsetAgentWallet`), and the
//!   ERC-721 ownership functions [`TransferAgent`] (`transferFrom`), [`ApproveAgent`] (`approve`),
//!   [`SetAgentOperator`] (`setApprovalForAll`);
//! - reputation: [`GiveFeedback`] (`giveFeedback`, plus `paymentNonce`: the EIP-3009
//!   authorization nonce of a payment the author made to the agent, zero for none),
//!   [`RevokeFeedback`], [`AppendResponse`];
//! - validation: [`ValidationRequest`] (`validationRequest`), [`ValidationResponse`]
//!   (`validationResponse`).
//!
//! A new wallet proves it agrees with [`AgentWalletSet`], signed under the identity registry's
//! own EIP-712 domain ([`identity_domain`]) as ERC-8004 specifies, so a wallet that signs for an
//! ERC-8004 registry on any EVM chain signs for mycel with no mycel-specific code.
//!
//! Every kind's fee is paid in MYC by `from`. The rules are in `mycel_state::agents` and
//! docs/agents.md.

use super::incentive::{field_list, field_string, MessageJson};
use super::{field, field_address, field_b256, field_bytes, field_u256, field_u64, DecodeError};
use crate::eip3009::{parse_signature, token_domain, AuthorizationSignatureError};
use alloy_primitives::{address, Address, B256};
use alloy_sol_types::{sol, Eip712Domain, SolStruct};
use serde_json::{json, Value};

/// The address that names mycel's identity registry (`agentRegistry` is
/// `eip155:<chainId>:<this address>`), and the `verifyingContract` of [`identity_domain`].
pub const IDENTITY_REGISTRY: Address = address!("0000000000000000000000000000000000008004");
/// The address that names mycel's reputation registry.
pub const REPUTATION_REGISTRY: Address = address!("0000000000000000000000000000000000008005");
/// ERC-8004's EIP-712 domain name of the identity registry.
pub const IDENTITY_EIP712_NAME: &str = "ERC8004IdentityRegistry";
/// ERC-8004's EIP-712 domain version of the identity registry.
pub const IDENTITY_EIP712_VERSION: &str = "1";
/// The reserved metadata key that only [`SetAgentWallet`] writes.
pub const AGENT_WALLET_KEY: &str = "agentWallet";

sol! {
    /// One metadata entry: `metadataKey` → `metadataValue`.
    #[derive(Debug, PartialEq, Eq)]
    struct MetadataEntry {
        string metadataKey;
        bytes metadataValue;
    }

    /// Registers a new agent owned by `from`, with its registration file's URI (may be empty) and
    /// metadata entries. The agent gets the next agent id (1, 2, …) and `from` as its wallet.
    #[derive(Debug, PartialEq, Eq)]
    struct RegisterAgent {
        address from;
        string agentURI;
        MetadataEntry[] metadata;
        uint64 nonce;
        uint256 fee;
    }

    /// The agent's owner (or an approved address or operator) sets its URI.
    #[derive(Debug, PartialEq, Eq)]
    struct SetAgentURI {
        address from;
        uint256 agentId;
        string newURI;
        uint64 nonce;
        uint256 fee;
    }

    /// The agent's owner (or an approved address or operator) sets one metadata entry; an empty
    /// value deletes it. `agentWallet` is refused: [`SetAgentWallet`] sets it.
    #[derive(Debug, PartialEq, Eq)]
    struct SetAgentMetadata {
        address from;
        uint256 agentId;
        string metadataKey;
        bytes metadataValue;
        uint64 nonce;
        uint256 fee;
    }

    /// The agent's owner (or an approved address or operator) sets the agent's wallet to
    /// `newWallet`, with `newWallet`'s signature of [`AgentWalletSet`]`(agentId, newWallet,
    /// owner, deadline)`; the deadline must not have passed and be at most 5 minutes ahead of
    /// the block time. `newWallet` zero (and an empty signature) unsets the wallet.
    #[derive(Debug, PartialEq, Eq)]
    struct SetAgentWallet {
        address from;
        uint256 agentId;
        address newWallet;
        uint256 deadline;
        bytes signature;
        uint64 nonce;
        uint256 fee;
    }

    /// The agent's owner (or an approved address or operator) gives the agent to `to`. The
    /// approval and the wallet are cleared.
    #[derive(Debug, PartialEq, Eq)]
    struct TransferAgent {
        address from;
        address to;
        uint256 agentId;
        uint64 nonce;
        uint256 fee;
    }

    /// The agent's owner (or an operator) lets `approved` act for this one agent (zero: nobody).
    #[derive(Debug, PartialEq, Eq)]
    struct ApproveAgent {
        address from;
        address approved;
        uint256 agentId;
        uint64 nonce;
        uint256 fee;
    }

    /// `from` lets `operator` act for all its agents (or stops it, `approved` false).
    #[derive(Debug, PartialEq, Eq)]
    struct SetAgentOperator {
        address from;
        address operator;
        bool approved;
        uint64 nonce;
        uint256 fee;
    }

    /// A client `from` rates agent `agentId`: `value` with `valueDecimals` decimals (0–18), two
    /// free tags, the endpoint it used, and a URI and hash of a longer feedback file. A nonzero
    /// `paymentNonce` cites the EIP-3009 authorization `(from, paymentNonce)` by which `from`
    /// paid the agent's wallet or owner: the chain checks it and marks the feedback as paid.
    #[derive(Debug, PartialEq, Eq)]
    struct GiveFeedback {
        address from;
        uint256 agentId;
        int128 value;
        uint8 valueDecimals;
        string tag1;
        string tag2;
        string endpoint;
        string feedbackURI;
        bytes32 feedbackHash;
        bytes32 paymentNonce;
        uint64 nonce;
        uint256 fee;
    }

    /// The client `from` revokes its feedback number `feedbackIndex` (1, 2, … per client and
    /// agent) on agent `agentId`.
    #[derive(Debug, PartialEq, Eq)]
    struct RevokeFeedback {
        address from;
        uint256 agentId;
        uint64 feedbackIndex;
        uint64 nonce;
        uint256 fee;
    }

    /// Anyone (the agent answering a review, a spam tagger) appends a response to the feedback
    /// `(agentId, clientAddress, feedbackIndex)`.
    #[derive(Debug, PartialEq, Eq)]
    struct AppendResponse {
        address from;
        uint256 agentId;
        address clientAddress;
        uint64 feedbackIndex;
        string responseURI;
        bytes32 responseHash;
        uint64 nonce;
        uint256 fee;
    }
}

sol! {
    /// The owner (or an approved address or operator) of agent `agentId` asks `validator` to
    /// check something the agent did: `requestURI` is where the payload is (for an inference,
    /// the answer with its receipt), `requestHash` its keccak-256 (the request's id: used once).
    #[derive(Debug, PartialEq, Eq)]
    struct ValidationRequest {
        address from;
        address validator;
        uint256 agentId;
        string requestURI;
        bytes32 requestHash;
        uint64 nonce;
        uint256 fee;
    }

    /// The validator named by request `requestHash` answers: `response` from 0 (failed) to 100
    /// (passed), a report's URI and hash, and a tag. It may answer again (the last answer counts).
    #[derive(Debug, PartialEq, Eq)]
    struct ValidationResponse {
        address from;
        bytes32 requestHash;
        uint8 response;
        string responseURI;
        bytes32 responseHash;
        string tag;
        uint64 nonce;
        uint256 fee;
    }
}

sol! {
    /// What a new agent wallet signs to accept being the wallet of `agentId` (ERC-8004), under
    /// [`identity_domain`].
    #[derive(Debug, PartialEq, Eq)]
    struct AgentWalletSet {
        uint256 agentId;
        address newWallet;
        address owner;
        uint256 deadline;
    }
}

/// The identity registry's EIP-712 domain on the chain `chain_id`: `{name:
/// "ERC8004IdentityRegistry", version: "1", chainId, verifyingContract: IDENTITY_REGISTRY}`.
pub fn identity_domain(chain_id: u64) -> Eip712Domain {
    token_domain(
        IDENTITY_EIP712_NAME,
        IDENTITY_EIP712_VERSION,
        chain_id,
        IDENTITY_REGISTRY,
    )
}

/// The `agentRegistry` string of ERC-8004 registration files: `eip155:<chainId>:<registry>`.
pub fn agent_registry(chain_id: u64) -> String {
    format!("eip155:{chain_id}:{}", IDENTITY_REGISTRY.to_checksum(None))
}

impl AgentWalletSet {
    /// The EIP-712 hash the new wallet signs on the chain `chain_id`.
    pub fn signing_hash(&self, chain_id: u64) -> B256 {
        self.eip712_signing_hash(&identity_domain(chain_id))
    }

    /// The address whose key signed this consent on `chain_id` (65-byte `r‖s‖v`, low s).
    pub fn recover_signer(
        &self,
        chain_id: u64,
        signature: &[u8],
    ) -> Result<Address, AuthorizationSignatureError> {
        parse_signature(signature)?
            .recover_address_from_prehash(&self.signing_hash(chain_id))
            .map_err(|_| AuthorizationSignatureError::Unrecoverable)
    }

    /// The typed data a wallet signs (`eth_signTypedData_v4`'s argument).
    pub fn typed_data(&self, chain_id: u64) -> Value {
        let domain = identity_domain(chain_id);
        json!({
            "domain": {"name": IDENTITY_EIP712_NAME, "version": IDENTITY_EIP712_VERSION,
                       "chainId": chain_id,
                       "verifyingContract": IDENTITY_REGISTRY.to_checksum(None)},
            "types": crate::eip712::typed_data_types::<AgentWalletSet>(&domain),
            "primaryType": "AgentWalletSet",
            "message": {"agentId": self.agentId.to_string(),
                        "newWallet": self.newWallet.to_checksum(None),
                        "owner": self.owner.to_checksum(None),
                        "deadline": self.deadline.to_string()},
        })
    }
}

fn addr(a: &Address) -> Value {
    Value::String(a.to_checksum(None))
}

fn hex_bytes(b: &[u8]) -> Value {
    Value::String(format!("0x{}", hex::encode(b)))
}

pub(super) fn field_bool(m: &Value, name: &'static str) -> Result<bool, DecodeError> {
    field(m, name)?.as_bool().ok_or(DecodeError::Field {
        field: name,
        reason: "expected true or false".into(),
    })
}

fn field_u8(m: &Value, name: &'static str) -> Result<u8, DecodeError> {
    let v = field_u64(m, name)?;
    u8::try_from(v).map_err(|_| DecodeError::Field {
        field: name,
        reason: format!("{v} does not fit in 8 bits (at most 255)"),
    })
}

/// A signed 128-bit integer: a JSON integer or a decimal string with an optional `-`.
fn field_i128(m: &Value, name: &'static str) -> Result<i128, DecodeError> {
    let bad = |reason: String| DecodeError::Field {
        field: name,
        reason,
    };
    match field(m, name)? {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .ok_or_else(|| bad("expected an integer (use a string beyond 64 bits)".into())),
        Value::String(s) => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(format!("'{s}' is not a decimal integer")));
            }
            s.parse::<i128>()
                .map_err(|_| bad(format!("{s} does not fit in int128")))
        }
        _ => Err(bad("expected an integer or a decimal string".into())),
    }
}

fn entry_from_json(v: &Value, name: &'static str) -> Result<MetadataEntry, DecodeError> {
    let entry = field(v, name)?;
    Ok(MetadataEntry {
        metadataKey: field_string(entry, "metadataKey")?,
        metadataValue: field_bytes(entry, "metadataValue")?,
    })
}

impl MessageJson for RegisterAgent {
    fn to_message(&self) -> Value {
        let metadata: Vec<Value> = self
            .metadata
            .iter()
            .map(|e| json!({"metadataKey": e.metadataKey, "metadataValue": hex_bytes(&e.metadataValue)}))
            .collect();
        json!({"from": addr(&self.from), "agentURI": self.agentURI, "metadata": metadata,
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RegisterAgent {
            from: field_address(m, "from")?,
            agentURI: field_string(m, "agentURI")?,
            metadata: field_list(m, "metadata", entry_from_json)?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for SetAgentURI {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "agentId": self.agentId.to_string(),
               "newURI": self.newURI, "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(SetAgentURI {
            from: field_address(m, "from")?,
            agentId: field_u256(m, "agentId")?,
            newURI: field_string(m, "newURI")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for SetAgentMetadata {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "agentId": self.agentId.to_string(),
               "metadataKey": self.metadataKey, "metadataValue": hex_bytes(&self.metadataValue),
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(SetAgentMetadata {
            from: field_address(m, "from")?,
            agentId: field_u256(m, "agentId")?,
            metadataKey: field_string(m, "metadataKey")?,
            metadataValue: field_bytes(m, "metadataValue")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for SetAgentWallet {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "agentId": self.agentId.to_string(),
               "newWallet": addr(&self.newWallet), "deadline": self.deadline.to_string(),
               "signature": hex_bytes(&self.signature), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(SetAgentWallet {
            from: field_address(m, "from")?,
            agentId: field_u256(m, "agentId")?,
            newWallet: field_address(m, "newWallet")?,
            deadline: field_u256(m, "deadline")?,
            signature: field_bytes(m, "signature")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl SetAgentWallet {
    /// The consent the new wallet signed.
    pub fn consent(&self, owner: Address) -> AgentWalletSet {
        AgentWalletSet {
            agentId: self.agentId,
            newWallet: self.newWallet,
            owner,
            deadline: self.deadline,
        }
    }
}

impl MessageJson for TransferAgent {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "to": addr(&self.to),
               "agentId": self.agentId.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(TransferAgent {
            from: field_address(m, "from")?,
            to: field_address(m, "to")?,
            agentId: field_u256(m, "agentId")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for ApproveAgent {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "approved": addr(&self.approved),
               "agentId": self.agentId.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(ApproveAgent {
            from: field_address(m, "from")?,
            approved: field_address(m, "approved")?,
            agentId: field_u256(m, "agentId")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for SetAgentOperator {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "operator": addr(&self.operator),
               "approved": self.approved, "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(SetAgentOperator {
            from: field_address(m, "from")?,
            operator: field_address(m, "operator")?,
            approved: field_bool(m, "approved")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for GiveFeedback {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "agentId": self.agentId.to_string(),
               "value": self.value.to_string(), "valueDecimals": self.valueDecimals,
               "tag1": self.tag1, "tag2": self.tag2, "endpoint": self.endpoint,
               "feedbackURI": self.feedbackURI, "feedbackHash": self.feedbackHash.to_string(),
               "paymentNonce": self.paymentNonce.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(GiveFeedback {
            from: field_address(m, "from")?,
            agentId: field_u256(m, "agentId")?,
            value: field_i128(m, "value")?,
            valueDecimals: field_u8(m, "valueDecimals")?,
            tag1: field_string(m, "tag1")?,
            tag2: field_string(m, "tag2")?,
            endpoint: field_string(m, "endpoint")?,
            feedbackURI: field_string(m, "feedbackURI")?,
            feedbackHash: field_b256(m, "feedbackHash")?,
            paymentNonce: field_b256(m, "paymentNonce")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for RevokeFeedback {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "agentId": self.agentId.to_string(),
               "feedbackIndex": self.feedbackIndex, "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RevokeFeedback {
            from: field_address(m, "from")?,
            agentId: field_u256(m, "agentId")?,
            feedbackIndex: field_u64(m, "feedbackIndex")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for AppendResponse {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "agentId": self.agentId.to_string(),
               "clientAddress": addr(&self.clientAddress), "feedbackIndex": self.feedbackIndex,
               "responseURI": self.responseURI, "responseHash": self.responseHash.to_string(),
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(AppendResponse {
            from: field_address(m, "from")?,
            agentId: field_u256(m, "agentId")?,
            clientAddress: field_address(m, "clientAddress")?,
            feedbackIndex: field_u64(m, "feedbackIndex")?,
            responseURI: field_string(m, "responseURI")?,
            responseHash: field_b256(m, "responseHash")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for ValidationRequest {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "validator": addr(&self.validator),
               "agentId": self.agentId.to_string(), "requestURI": self.requestURI,
               "requestHash": self.requestHash.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(ValidationRequest {
            from: field_address(m, "from")?,
            validator: field_address(m, "validator")?,
            agentId: field_u256(m, "agentId")?,
            requestURI: field_string(m, "requestURI")?,
            requestHash: field_b256(m, "requestHash")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for ValidationResponse {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "requestHash": self.requestHash.to_string(),
               "response": self.response, "responseURI": self.responseURI,
               "responseHash": self.responseHash.to_string(), "tag": self.tag,
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(ValidationResponse {
            from: field_address(m, "from")?,
            requestHash: field_b256(m, "requestHash")?,
            response: field_u8(m, "response")?,
            responseURI: field_string(m, "responseURI")?,
            responseHash: field_b256(m, "responseHash")?,
            tag: field_string(m, "tag")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::dev_signer;
    use alloy_primitives::U256;
    use alloy_signer::SignerSync;

    #[test]
    fn wallet_consent_recovers_to_the_wallet_and_names_the_registry_domain() {
        let wallet = dev_signer(3).unwrap();
        let consent = AgentWalletSet {
            agentId: U256::from(7u64),
            newWallet: wallet.address(),
            owner: Address::repeat_byte(0x11),
            deadline: U256::from(1_700_000_300u64),
        };
        let sig = wallet.sign_hash_sync(&consent.signing_hash(1337)).unwrap();
        assert_eq!(
            consent.recover_signer(1337, &sig.as_bytes()),
            Ok(wallet.address())
        );
        // Another chain or another owner is another message.
        assert_ne!(
            consent.recover_signer(1, &sig.as_bytes()),
            Ok(wallet.address())
        );
        let typed = consent.typed_data(1337);
        assert_eq!(typed["types"]["AgentWalletSet"][2]["name"], "owner");
        assert_eq!(
            typed["types"]["EIP712Domain"][3]["name"],
            "verifyingContract"
        );
        assert_eq!(
            agent_registry(1337),
            "eip155:1337:0x0000000000000000000000000000000000008004"
        );
    }

    #[test]
    fn int128_values_read_from_numbers_and_strings() {
        let m = json!({"a": -5, "b": "-170141183460469231731687303715884105728", "c": "1e3",
                       "d": "170141183460469231731687303715884105728"});
        assert_eq!(field_i128(&m, "a"), Ok(-5));
        assert_eq!(field_i128(&m, "b"), Ok(i128::MIN));
        assert!(field_i128(&m, "c").is_err());
        assert!(field_i128(&m, "d").is_err());
    }
}
