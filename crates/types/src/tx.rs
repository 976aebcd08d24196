//! Transactions: EIP-712 typed messages, their signatures, one canonical binary encoding, and a
//! JSON form for HTTP clients.
//!
//! Each kind of transaction is its own EIP-712 struct (its `primaryType`), and every kind carries
//! `from`, `nonce` and `fee`. A later module adds a kind by declaring its struct with `sol!`,
//! implementing [`MessageJson`] for it (its JSON `message`) and adding one line `tag => Kind` to the
//! table of [`tx_kinds!`]; existing kinds and their encodings do not change.
//!
//! Binary encoding (`SignedTx::encode`), all integers big-endian:
//! `[format = 0x01][kind tag: u8][chain id: u64][signature r‖s‖v: 65 bytes][ABI encoding of the message]`.
//! Decoding rejects anything that does not re-encode to the same bytes, so one transaction has one
//! hash: `keccak256(encoding)`.

use crate::eip712::{domain_types, struct_types};
use crate::{DOMAIN_NAME, DOMAIN_VERSION};
use alloy_primitives::{keccak256, Address, Bytes, Signature, B256, U256};
use alloy_signer::SignerSync;
use alloy_sol_types::{sol, Eip712Domain, SolStruct, SolValue};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The largest memo a transfer may carry.
pub const MAX_MEMO_BYTES: usize = 256;

mod incentive;
use incentive::MessageJson;
pub use incentive::{
    weights_commit_hash, AddStake, BurnedRegister, CommitWeights, RegisterSubnet, RemoveStake,
    RevealWeights, ServeEndpoint, SetSubnetParams, SetWeights,
};
mod agents;
pub use agents::{
    agent_registry, identity_domain, AgentWalletSet, AppendResponse, ApproveAgent, GiveFeedback,
    MetadataEntry, RegisterAgent, RevokeFeedback, SetAgentMetadata, SetAgentOperator, SetAgentURI,
    SetAgentWallet, TransferAgent, ValidationRequest, ValidationResponse, AGENT_WALLET_KEY,
    IDENTITY_EIP712_NAME, IDENTITY_EIP712_VERSION, IDENTITY_REGISTRY, REPUTATION_REGISTRY,
};
mod allowances;
pub use allowances::{GrantAllowance, RevokeAllowance};
mod jobs;
pub use jobs::{
    ClaimJobRefund, CompleteJob, CreateJob, DisputeJob, FundJob, RejectJob, SetJobBudget,
    SetJobProvider, SubmitJob,
};
mod market;
pub use market::{
    AcceptBid, AttestProvider, CloseDeployment, CloseLease, CreateDeployment, PlaceBid,
    RegisterProvider, ReportLeaseHealth, SetLeaseEndpoint, TopUpDeployment, WithdrawLease,
};
mod storage;
pub use storage::{
    CertifyBlob, DeleteBatchItem, DeleteBlob, ExtendBatchItem, ExtendBlob, RegisterBatch,
    RegisterBlob, RegisterStorageNode, ReportStorageFailure,
};
mod training;
pub use training::{
    CommitTrainingUpdate, PublishTrainingCheckpoint, RevealTrainingUpdate, StartTrainingRun,
};
mod sessions;
pub use sessions::{
    channel_id, ChannelVoucher, ClaimChannel, OpenChannel, RequestChannelWithdraw, TopUpChannel,
    WithdrawChannel,
};

const FORMAT: u8 = 0x01;
const HEADER_LEN: usize = 1 + 1 + 8 + 65;

sol! {
    /// Moves `amount` base units of `token` (MYC: the zero address; mUSD: its asset address)
    /// from `from` to `to`. `memo` is free-form bytes for the payer's own reference.
    #[derive(Debug, PartialEq, Eq)]
    struct Transfer {
        address from;
        address to;
        address token;
        uint256 amount;
        bytes memo;
        uint64 nonce;
        uint256 fee;
    }
}

sol! {
    /// Executes a payer's EIP-3009 authorization on mUSD (see [`crate::eip3009`]): moves `value`
    /// mUSD from `payer` to `to` if `signature` is `payer`'s signature of
    /// `TransferWithAuthorization(payer, to, value, validAfter, validBefore, authorizationNonce)`
    /// under mUSD's domain. `from` is whoever submits it (a facilitator) and pays the fee.
    #[derive(Debug, PartialEq, Eq)]
    struct TransferWithAuthorization {
        address from;
        address payer;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 authorizationNonce;
        bytes signature;
        uint64 nonce;
        uint256 fee;
    }
}

impl TransferWithAuthorization {
    /// The EIP-3009 authorization this transaction executes.
    pub fn authorization(&self) -> crate::eip3009::TransferWithAuthorization {
        crate::eip3009::TransferWithAuthorization {
            from: self.payer,
            to: self.to,
            value: self.value,
            validAfter: self.validAfter,
            validBefore: self.validBefore,
            nonce: self.authorizationNonce,
        }
    }
}

/// Declares [`TxKind`] from one table of `tag => Kind`: the enum and everything that goes from a
/// kind to its struct (tag, EIP-712 type name and types, `from`/`nonce`/`fee`, signing hash, ABI
/// encoding both ways, JSON message both ways). Each struct is declared with `sol!` (the EIP-712
/// type name is the struct's name) and implements [`MessageJson`].
macro_rules! tx_kinds {
    ($( $tag:literal => $kind:ident ),+ $(,)?) => {
        /// Every kind of transaction the chain knows.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum TxKind {
            $( $kind($kind), )+
        }

        impl TxKind {
            /// The EIP-712 type names of every kind, in tag order.
            pub const TYPE_NAMES: &'static [&'static str] = &[$( stringify!($kind), )+];

            /// The one-byte tag of this kind in the binary encoding. Never reused.
            pub fn tag(&self) -> u8 {
                match self {
                    $( TxKind::$kind(_) => $tag, )+
                }
            }

            /// The EIP-712 primary type name, also the `type` field of the JSON form.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( TxKind::$kind(_) => stringify!($kind), )+
                }
            }

            pub fn from(&self) -> Address {
                match self {
                    $( TxKind::$kind(t) => t.from, )+
                }
            }

            pub fn nonce(&self) -> u64 {
                match self {
                    $( TxKind::$kind(t) => t.nonce, )+
                }
            }

            /// The fee in MYC base units, as signed (a 256-bit value; the state machine bounds
            /// it).
            pub fn fee(&self) -> U256 {
                match self {
                    $( TxKind::$kind(t) => t.fee, )+
                }
            }

            /// The EIP-712 hash that the sender signs.
            pub fn signing_hash(&self, chain_id: u64) -> B256 {
                let domain = domain(chain_id);
                match self {
                    $( TxKind::$kind(t) => t.eip712_signing_hash(&domain), )+
                }
            }

            fn abi_encode(&self) -> Vec<u8> {
                match self {
                    $( TxKind::$kind(t) => t.abi_encode(), )+
                }
            }

            fn abi_decode(tag: u8, data: &[u8]) -> Result<TxKind, DecodeError> {
                match tag {
                    $( $tag => $kind::abi_decode(data)
                        .map(TxKind::$kind)
                        .map_err(|e| DecodeError::Message(e.to_string())), )+
                    other => Err(DecodeError::UnknownKind(other)),
                }
            }

            /// The EIP-712 `types` entries for this kind (without `EIP712Domain`), as wallets
            /// want them.
            pub fn eip712_types(&self) -> serde_json::Value {
                match self {
                    $( TxKind::$kind(_) => struct_types::<$kind>(), )+
                }
            }

            /// The `message` of the JSON form.
            fn message_json(&self) -> serde_json::Value {
                match self {
                    $( TxKind::$kind(t) => t.to_message(), )+
                }
            }

            /// Reads the `message` of the JSON form of the kind named `tx_type`.
            fn message_from_json(
                tx_type: &str,
                message: &serde_json::Value,
            ) -> Result<TxKind, DecodeError> {
                match tx_type {
                    $( stringify!($kind) => $kind::from_message(message).map(TxKind::$kind), )+
                    other => Err(DecodeError::UnknownType(other.to_string())),
                }
            }
        }
    };
}

tx_kinds! {
    1 => Transfer,
    2 => RegisterSubnet,
    3 => SetSubnetParams,
    4 => BurnedRegister,
    5 => ServeEndpoint,
    6 => SetWeights,
    7 => CommitWeights,
    8 => RevealWeights,
    9 => AddStake,
    10 => RemoveStake,
    20 => TransferWithAuthorization,
    21 => OpenChannel,
    22 => TopUpChannel,
    23 => ClaimChannel,
    24 => RequestChannelWithdraw,
    25 => WithdrawChannel,
    30 => RegisterAgent,
    31 => SetAgentURI,
    32 => SetAgentMetadata,
    33 => SetAgentWallet,
    34 => TransferAgent,
    35 => ApproveAgent,
    36 => SetAgentOperator,
    40 => GiveFeedback,
    41 => RevokeFeedback,
    42 => AppendResponse,
    43 => ValidationRequest,
    44 => ValidationResponse,
    50 => CreateJob,
    51 => SetJobProvider,
    52 => SetJobBudget,
    53 => FundJob,
    54 => SubmitJob,
    55 => CompleteJob,
    56 => RejectJob,
    57 => ClaimJobRefund,
    58 => DisputeJob,
    60 => GrantAllowance,
    61 => RevokeAllowance,
    70 => RegisterStorageNode,
    71 => RegisterBlob,
    72 => CertifyBlob,
    73 => ExtendBlob,
    74 => DeleteBlob,
    75 => ReportStorageFailure,
    76 => RegisterBatch,
    77 => ExtendBatchItem,
    78 => DeleteBatchItem,
    80 => RegisterProvider,
    81 => AttestProvider,
    82 => CreateDeployment,
    83 => PlaceBid,
    84 => AcceptBid,
    85 => TopUpDeployment,
    86 => WithdrawLease,
    87 => CloseDeployment,
    88 => CloseLease,
    89 => SetLeaseEndpoint,
    90 => ReportLeaseHealth,
    100 => StartTrainingRun,
    101 => CommitTrainingUpdate,
    102 => RevealTrainingUpdate,
    103 => PublishTrainingCheckpoint,
}

impl TxKind {
    /// The bytes of this transaction once signed (what the chain's `max_tx_bytes` bounds).
    pub fn signed_len(&self) -> usize {
        HEADER_LEN + self.abi_encode().len()
    }
}

/// The EIP-712 domain of mycel transactions on the chain `chain_id`.
pub fn domain(chain_id: u64) -> Eip712Domain {
    Eip712Domain {
        name: Some(Cow::Borrowed(DOMAIN_NAME)),
        version: Some(Cow::Borrowed(DOMAIN_VERSION)),
        chain_id: Some(U256::from(chain_id)),
        verifying_contract: None,
        salt: None,
    }
}

/// Why bytes or JSON could not be read as a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("transaction is {0} bytes, shorter than the {HEADER_LEN}-byte header")]
    TooShort(usize),
    #[error("unknown transaction format version {0} (this node reads version 1)")]
    UnknownFormat(u8),
    #[error("unknown transaction kind tag {0}")]
    UnknownKind(u8),
    #[error("unknown transaction type '{0}' (known: {known})", known = TxKind::TYPE_NAMES.join(", "))]
    UnknownType(String),
    #[error("message does not decode: {0}")]
    Message(String),
    #[error("encoding is not canonical (re-encoding gives different bytes)")]
    NonCanonical,
    #[error("signature is not 65 bytes r||s||v, or has a high s value: {0}")]
    Signature(String),
    #[error("invalid field '{field}': {reason}")]
    Field { field: &'static str, reason: String },
}

/// A transaction with its sender's signature over the EIP-712 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    pub chain_id: u64,
    pub kind: TxKind,
    pub signature: Signature,
}

impl SignedTx {
    /// Signs `kind` for the chain `chain_id` with a local key.
    pub fn sign(
        kind: TxKind,
        chain_id: u64,
        signer: &impl SignerSync,
    ) -> Result<SignedTx, alloy_signer::Error> {
        let signature = signer.sign_hash_sync(&kind.signing_hash(chain_id))?;
        Ok(SignedTx {
            chain_id,
            kind,
            signature,
        })
    }

    pub fn from(&self) -> Address {
        self.kind.from()
    }

    pub fn nonce(&self) -> u64 {
        self.kind.nonce()
    }

    pub fn fee(&self) -> U256 {
        self.kind.fee()
    }

    pub fn signing_hash(&self) -> B256 {
        self.kind.signing_hash(self.chain_id)
    }

    /// The address that signed this transaction (whatever `from` claims).
    pub fn recover_signer(&self) -> Option<Address> {
        self.signature
            .recover_address_from_prehash(&self.signing_hash())
            .ok()
    }

    /// The canonical binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let message = self.kind.abi_encode();
        let mut out = Vec::with_capacity(HEADER_LEN + message.len());
        out.push(FORMAT);
        out.push(self.kind.tag());
        out.extend_from_slice(&self.chain_id.to_be_bytes());
        out.extend_from_slice(&self.signature.as_bytes());
        out.extend_from_slice(&message);
        out
    }

    /// Reads the canonical binary encoding; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<SignedTx, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::TooShort(bytes.len()));
        }
        if bytes[0] != FORMAT {
            return Err(DecodeError::UnknownFormat(bytes[0]));
        }
        let tag = bytes[1];
        let mut chain_id = [0u8; 8];
        chain_id.copy_from_slice(&bytes[2..10]);
        let signature = parse_signature(&bytes[10..75])?;
        let kind = TxKind::abi_decode(tag, &bytes[HEADER_LEN..])?;
        let tx = SignedTx {
            chain_id: u64::from_be_bytes(chain_id),
            kind,
            signature,
        };
        if tx.encode() != bytes {
            return Err(DecodeError::NonCanonical);
        }
        Ok(tx)
    }

    /// keccak-256 of the canonical encoding.
    pub fn hash(&self) -> B256 {
        keccak256(self.encode())
    }

    /// The full EIP-712 typed data (`domain`, `types`, `primaryType`, `message`) that the sender
    /// signs, in the JSON shape of `eth_signTypedData_v4`, viem's `signTypedData` and eth_account's
    /// `encode_typed_data(full_message=...)`.
    pub fn typed_data(kind: &TxKind, chain_id: u64) -> serde_json::Value {
        let mut types = kind.eip712_types();
        types["EIP712Domain"] = domain_types(&domain(chain_id));
        serde_json::json!({
            "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id},
            "types": types,
            "primaryType": kind.type_name(),
            "message": kind.message_json(),
        })
    }

    pub fn to_json(&self) -> TxJson {
        TxJson {
            chain_id: self.chain_id,
            tx_type: self.kind.type_name().to_string(),
            message: self.kind.message_json(),
            signature: format!("0x{}", hex::encode(self.signature.as_bytes())),
        }
    }

    pub fn from_json(json: &TxJson) -> Result<SignedTx, DecodeError> {
        let kind = TxKind::message_from_json(&json.tx_type, &json.message)?;
        let sig_hex = json.signature.strip_prefix("0x").unwrap_or(&json.signature);
        let sig_bytes =
            hex::decode(sig_hex).map_err(|e| DecodeError::Signature(format!("not hex: {e}")))?;
        let signature = parse_signature(&sig_bytes)?;
        Ok(SignedTx {
            chain_id: json.chain_id,
            kind,
            signature,
        })
    }
}

fn parse_signature(bytes: &[u8]) -> Result<Signature, DecodeError> {
    if bytes.len() != 65 {
        return Err(DecodeError::Signature(format!("{} bytes", bytes.len())));
    }
    // v may be 0/1 or 27/28 (as eth_account and most wallets write it).
    let v = bytes[64];
    let parity = match v {
        0 | 27 => false,
        1 | 28 => true,
        other => return Err(DecodeError::Signature(format!("v = {other}"))),
    };
    let signature = Signature::from_bytes_and_parity(&bytes[..64], parity);
    if signature.normalize_s().is_some() {
        return Err(DecodeError::Signature("high s".into()));
    }
    Ok(signature)
}

/// The JSON form of a signed transaction, as the node API takes and returns it.
///
/// ```json
/// {"chainId": 1337, "type": "Transfer",
///  "message": {"from": "0x…", "to": "0x…", "token": "0x0000000000000000000000000000000000000000",
///              "amount": "1500000000", "memo": "0x", "nonce": 0, "fee": "100000"},
///  "signature": "0x…(65 bytes)"}
/// ```
/// Integers may be JSON numbers or decimal strings; `message` is exactly the EIP-712 message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxJson {
    #[serde(rename = "chainId")]
    pub chain_id: u64,
    #[serde(rename = "type")]
    pub tx_type: String,
    pub message: serde_json::Value,
    pub signature: String,
}

impl MessageJson for Transfer {
    fn to_message(&self) -> serde_json::Value {
        serde_json::json!({
            "from": self.from.to_checksum(None),
            "to": self.to.to_checksum(None),
            "token": self.token.to_checksum(None),
            "amount": self.amount.to_string(),
            "memo": format!("0x{}", hex::encode(&self.memo)),
            "nonce": self.nonce,
            "fee": self.fee.to_string(),
        })
    }

    fn from_message(message: &serde_json::Value) -> Result<Self, DecodeError> {
        Ok(Transfer {
            from: field_address(message, "from")?,
            to: field_address(message, "to")?,
            token: field_address(message, "token")?,
            amount: field_u256(message, "amount")?,
            memo: field_bytes(message, "memo")?,
            nonce: field_u64(message, "nonce")?,
            fee: field_u256(message, "fee")?,
        })
    }
}

impl MessageJson for TransferWithAuthorization {
    fn to_message(&self) -> serde_json::Value {
        serde_json::json!({
            "from": self.from.to_checksum(None),
            "payer": self.payer.to_checksum(None),
            "to": self.to.to_checksum(None),
            "value": self.value.to_string(),
            "validAfter": self.validAfter.to_string(),
            "validBefore": self.validBefore.to_string(),
            "authorizationNonce": self.authorizationNonce.to_string(),
            "signature": format!("0x{}", hex::encode(&self.signature)),
            "nonce": self.nonce,
            "fee": self.fee.to_string(),
        })
    }

    fn from_message(message: &serde_json::Value) -> Result<Self, DecodeError> {
        Ok(TransferWithAuthorization {
            from: field_address(message, "from")?,
            payer: field_address(message, "payer")?,
            to: field_address(message, "to")?,
            value: field_u256(message, "value")?,
            validAfter: field_u256(message, "validAfter")?,
            validBefore: field_u256(message, "validBefore")?,
            authorizationNonce: field_b256(message, "authorizationNonce")?,
            signature: field_bytes(message, "signature")?,
            nonce: field_u64(message, "nonce")?,
            fee: field_u256(message, "fee")?,
        })
    }
}

fn field<'a>(
    message: &'a serde_json::Value,
    name: &'static str,
) -> Result<&'a serde_json::Value, DecodeError> {
    message.get(name).ok_or(DecodeError::Field {
        field: name,
        reason: "missing".into(),
    })
}

fn field_address(message: &serde_json::Value, name: &'static str) -> Result<Address, DecodeError> {
    let value = field(message, name)?;
    let s = value.as_str().ok_or(DecodeError::Field {
        field: name,
        reason: "expected a 0x-hex address string".into(),
    })?;
    s.parse::<Address>().map_err(|e| DecodeError::Field {
        field: name,
        reason: e.to_string(),
    })
}

fn field_u256(message: &serde_json::Value, name: &'static str) -> Result<U256, DecodeError> {
    let value = field(message, name)?;
    let bad = |reason: String| DecodeError::Field {
        field: name,
        reason,
    };
    match value {
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(U256::from)
            .ok_or_else(|| bad("expected a non-negative integer (use a string above 2^64)".into())),
        serde_json::Value::String(s) if s.starts_with("0x") || s.starts_with("0X") => {
            crate::parse_hex_u256(s).map_err(|e| bad(e.to_string()))
        }
        serde_json::Value::String(s) => {
            crate::parse_decimal_u256(s).map_err(|e| bad(e.to_string()))
        }
        _ => Err(bad("expected an integer or a decimal string".into())),
    }
}

fn field_u64(message: &serde_json::Value, name: &'static str) -> Result<u64, DecodeError> {
    let value = field_u256(message, name)?;
    u64::try_from(value).map_err(|_| DecodeError::Field {
        field: name,
        reason: "does not fit in 64 bits".into(),
    })
}

fn field_b256(message: &serde_json::Value, name: &'static str) -> Result<B256, DecodeError> {
    let value = field(message, name)?;
    let s = value.as_str().ok_or(DecodeError::Field {
        field: name,
        reason: "expected a 0x-hex string of 32 bytes".into(),
    })?;
    s.parse::<B256>().map_err(|e| DecodeError::Field {
        field: name,
        reason: format!("not 32 bytes of 0x-hex: {e}"),
    })
}

fn field_bytes(message: &serde_json::Value, name: &'static str) -> Result<Bytes, DecodeError> {
    let Some(value) = message.get(name) else {
        return Ok(Bytes::new());
    };
    let s = value.as_str().ok_or(DecodeError::Field {
        field: name,
        reason: "expected a 0x-hex string".into(),
    })?;
    let raw = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(raw)
        .map(Bytes::from)
        .map_err(|e| DecodeError::Field {
            field: name,
            reason: e.to_string(),
        })
}

/// Signs `kind` and checks it survives the binary and JSON forms and that its EIP-712 typed data
/// carries every field of its struct (`from` first), for the tests of every kind.
#[cfg(test)]
pub(crate) fn assert_kind_round_trips(
    kind: &TxKind,
    signer: &alloy_signer_local::PrivateKeySigner,
) {
    let tx = SignedTx::sign(kind.clone(), 1337, signer).unwrap();
    let back = SignedTx::decode(&tx.encode()).unwrap();
    assert_eq!(back, tx);
    assert_eq!(back.recover_signer(), Some(signer.address()));
    let json = serde_json::to_string(&tx.to_json()).unwrap();
    let parsed: TxJson = serde_json::from_str(&json).unwrap();
    assert_eq!(SignedTx::from_json(&parsed).unwrap(), tx, "{json}");
    let td = SignedTx::typed_data(kind, 1337);
    assert_eq!(td["primaryType"], kind.type_name());
    let fields = td["types"][kind.type_name()].as_array().unwrap();
    assert_eq!(
        fields[0],
        serde_json::json!({"name": "from", "type": "address"})
    );
    for f in fields {
        let name = f["name"].as_str().unwrap();
        assert!(td["message"].get(name).is_some(), "{name} missing");
    }
}

#[cfg(test)]
#[allow(irrefutable_let_patterns)]
mod tests {
    use super::*;
    use crate::keys::dev_signer;
    use proptest::prelude::*;

    fn transfer(from: Address, nonce: u64, memo: Vec<u8>) -> TxKind {
        TxKind::Transfer(Transfer {
            from,
            to: Address::repeat_byte(0x22),
            token: Address::ZERO,
            amount: U256::from(1_500_000_000u64),
            memo: memo.into(),
            nonce,
            fee: U256::from(100_000u64),
        })
    }

    #[test]
    fn sign_encode_decode_recover() {
        let signer = dev_signer(0).unwrap();
        let tx =
            SignedTx::sign(transfer(signer.address(), 7, b"hi".to_vec()), 1337, &signer).unwrap();
        let bytes = tx.encode();
        let back = SignedTx::decode(&bytes).unwrap();
        assert_eq!(back, tx);
        assert_eq!(back.recover_signer(), Some(signer.address()));
        assert_eq!(back.hash(), keccak256(&bytes));
        let json = serde_json::to_string(&tx.to_json()).unwrap();
        let parsed: TxJson = serde_json::from_str(&json).unwrap();
        assert_eq!(SignedTx::from_json(&parsed).unwrap(), tx);
    }

    #[test]
    fn json_integers_must_be_digits() {
        let signer = dev_signer(0).unwrap();
        let tx = SignedTx::sign(transfer(signer.address(), 0, vec![]), 1337, &signer).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut json = tx.to_json();
            json.message[field] = value;
            SignedTx::from_json(&json)
        };
        for (field, value) in [
            ("amount", ""),
            ("fee", ""),
            ("amount", "1.5"),
            ("amount", " 7"),
        ] {
            match with(field, value.into()) {
                Err(DecodeError::Field { field: f, reason }) => {
                    assert_eq!(f, field);
                    assert!(reason.contains("base units"), "{reason}");
                }
                other => panic!("{field} = {value:?} was read as {other:?}"),
            }
        }
        assert!(matches!(
            with("amount", "0x".into()),
            Err(DecodeError::Field {
                field: "amount",
                ..
            })
        ));
        assert!(matches!(
            with("nonce", "".into()),
            Err(DecodeError::Field { field: "nonce", .. })
        ));
        // The strict readers still take what clients write.
        assert_eq!(with("amount", "1500000000".into()).unwrap(), tx);
        assert_eq!(with("amount", 1_500_000_000u64.into()).unwrap(), tx);
        assert_eq!(with("amount", "0x59682f00".into()).unwrap(), tx);
    }

    #[test]
    fn another_chain_recovers_another_signer() {
        let signer = dev_signer(0).unwrap();
        let mut tx = SignedTx::sign(transfer(signer.address(), 0, vec![]), 1337, &signer).unwrap();
        tx.chain_id = 1;
        assert_ne!(tx.recover_signer(), Some(signer.address()));
    }

    #[test]
    fn typed_data_has_the_wallet_shape() {
        let kind = transfer(Address::repeat_byte(1), 0, vec![]);
        let td = SignedTx::typed_data(&kind, 1337);
        assert_eq!(td["primaryType"], "Transfer");
        assert_eq!(
            td["types"]["Transfer"][0],
            serde_json::json!({"name": "from", "type": "address"})
        );
        assert_eq!(td["types"]["Transfer"].as_array().unwrap().len(), 7);
        assert_eq!(td["domain"]["name"], "mycel");
    }

    #[test]
    fn rejects_malformed_bytes() {
        let signer = dev_signer(1).unwrap();
        let tx = SignedTx::sign(transfer(signer.address(), 0, vec![]), 1337, &signer).unwrap();
        let bytes = tx.encode();
        assert_eq!(
            SignedTx::decode(&bytes[..10]),
            Err(DecodeError::TooShort(10))
        );
        let mut wrong_format = bytes.clone();
        wrong_format[0] = 9;
        assert_eq!(
            SignedTx::decode(&wrong_format),
            Err(DecodeError::UnknownFormat(9))
        );
        let mut wrong_kind = bytes.clone();
        wrong_kind[1] = 200;
        assert_eq!(
            SignedTx::decode(&wrong_kind),
            Err(DecodeError::UnknownKind(200))
        );
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(&[0u8; 32]);
        assert!(SignedTx::decode(&trailing).is_err());
        let mut truncated = bytes.clone();
        truncated.truncate(bytes.len() - 1);
        assert!(SignedTx::decode(&truncated).is_err());
    }

    #[test]
    fn high_s_signatures_are_rejected() {
        let signer = dev_signer(0).unwrap();
        let tx = SignedTx::sign(transfer(signer.address(), 0, vec![]), 1337, &signer).unwrap();
        // (r, n - s, !v) is the same signature's malleated twin.
        let n = U256::from_str_radix(
            "115792089237316195423570985008687907852837564279074904382605163141518161494337",
            10,
        )
        .unwrap();
        let twin = Signature::new(tx.signature.r(), n - tx.signature.s(), !tx.signature.v());
        let mut bytes = tx.encode();
        bytes[10..75].copy_from_slice(&twin.as_bytes());
        assert!(matches!(
            SignedTx::decode(&bytes),
            Err(DecodeError::Signature(_))
        ));
    }

    proptest! {
        #[test]
        fn any_transfer_round_trips(nonce in any::<u64>(), memo in proptest::collection::vec(any::<u8>(), 0..300), amount in any::<u128>()) {
            let signer = dev_signer(2).unwrap();
            let mut kind = transfer(signer.address(), nonce, memo);
            if let TxKind::Transfer(t) = &mut kind { t.amount = U256::from(amount); }
            let tx = SignedTx::sign(kind, 7, &signer).unwrap();
            let back = SignedTx::decode(&tx.encode()).unwrap();
            prop_assert_eq!(back.recover_signer(), Some(signer.address()));
            prop_assert_eq!(back, tx);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = SignedTx::decode(&bytes);
        }
    }
}
