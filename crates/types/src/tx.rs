//! Transactions: EIP-712 typed messages, their signatures, one canonical binary encoding, and a
//! JSON form for HTTP clients.
//!
//! Each kind of transaction is its own EIP-712 struct (its `primaryType`), and every kind carries
//! `from`, `nonce` and `fee`. A later module adds a kind by declaring its struct with `sol!`,
//! adding one [`TxKind`] variant and one arm in each `match` of this file; existing kinds and their
//! encodings do not change.
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

/// Every kind of transaction the chain knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxKind {
    Transfer(Transfer),
    RegisterSubnet(RegisterSubnet),
    SetSubnetParams(SetSubnetParams),
    BurnedRegister(BurnedRegister),
    ServeEndpoint(ServeEndpoint),
    SetWeights(SetWeights),
    CommitWeights(CommitWeights),
    RevealWeights(RevealWeights),
    AddStake(AddStake),
    RemoveStake(RemoveStake),
    TransferWithAuthorization(TransferWithAuthorization),
    OpenChannel(OpenChannel),
    TopUpChannel(TopUpChannel),
    ClaimChannel(ClaimChannel),
    RequestChannelWithdraw(RequestChannelWithdraw),
    WithdrawChannel(WithdrawChannel),
}

impl TxKind {
    /// The one-byte tag of this kind in the binary encoding. Never reused.
    pub fn tag(&self) -> u8 {
        match self {
            TxKind::Transfer(_) => 1,
            TxKind::RegisterSubnet(_) => 2,
            TxKind::SetSubnetParams(_) => 3,
            TxKind::BurnedRegister(_) => 4,
            TxKind::ServeEndpoint(_) => 5,
            TxKind::SetWeights(_) => 6,
            TxKind::CommitWeights(_) => 7,
            TxKind::RevealWeights(_) => 8,
            TxKind::AddStake(_) => 9,
            TxKind::RemoveStake(_) => 10,
            TxKind::TransferWithAuthorization(_) => 20,
            TxKind::OpenChannel(_) => 21,
            TxKind::TopUpChannel(_) => 22,
            TxKind::ClaimChannel(_) => 23,
            TxKind::RequestChannelWithdraw(_) => 24,
            TxKind::WithdrawChannel(_) => 25,
        }
    }

    /// The EIP-712 primary type name, also the `type` field of the JSON form.
    pub fn type_name(&self) -> &'static str {
        match self {
            TxKind::Transfer(_) => "Transfer",
            TxKind::RegisterSubnet(_) => "RegisterSubnet",
            TxKind::SetSubnetParams(_) => "SetSubnetParams",
            TxKind::BurnedRegister(_) => "BurnedRegister",
            TxKind::ServeEndpoint(_) => "ServeEndpoint",
            TxKind::SetWeights(_) => "SetWeights",
            TxKind::CommitWeights(_) => "CommitWeights",
            TxKind::RevealWeights(_) => "RevealWeights",
            TxKind::AddStake(_) => "AddStake",
            TxKind::RemoveStake(_) => "RemoveStake",
            TxKind::TransferWithAuthorization(_) => "TransferWithAuthorization",
            TxKind::OpenChannel(_) => "OpenChannel",
            TxKind::TopUpChannel(_) => "TopUpChannel",
            TxKind::ClaimChannel(_) => "ClaimChannel",
            TxKind::RequestChannelWithdraw(_) => "RequestChannelWithdraw",
            TxKind::WithdrawChannel(_) => "WithdrawChannel",
        }
    }

    pub fn from(&self) -> Address {
        match self {
            TxKind::Transfer(t) => t.from,
            TxKind::RegisterSubnet(t) => t.from,
            TxKind::SetSubnetParams(t) => t.from,
            TxKind::BurnedRegister(t) => t.from,
            TxKind::ServeEndpoint(t) => t.from,
            TxKind::SetWeights(t) => t.from,
            TxKind::CommitWeights(t) => t.from,
            TxKind::RevealWeights(t) => t.from,
            TxKind::AddStake(t) => t.from,
            TxKind::RemoveStake(t) => t.from,
            TxKind::TransferWithAuthorization(t) => t.from,
            TxKind::OpenChannel(t) => t.from,
            TxKind::TopUpChannel(t) => t.from,
            TxKind::ClaimChannel(t) => t.from,
            TxKind::RequestChannelWithdraw(t) => t.from,
            TxKind::WithdrawChannel(t) => t.from,
        }
    }

    pub fn nonce(&self) -> u64 {
        match self {
            TxKind::Transfer(t) => t.nonce,
            TxKind::RegisterSubnet(t) => t.nonce,
            TxKind::SetSubnetParams(t) => t.nonce,
            TxKind::BurnedRegister(t) => t.nonce,
            TxKind::ServeEndpoint(t) => t.nonce,
            TxKind::SetWeights(t) => t.nonce,
            TxKind::CommitWeights(t) => t.nonce,
            TxKind::RevealWeights(t) => t.nonce,
            TxKind::AddStake(t) => t.nonce,
            TxKind::RemoveStake(t) => t.nonce,
            TxKind::TransferWithAuthorization(t) => t.nonce,
            TxKind::OpenChannel(t) => t.nonce,
            TxKind::TopUpChannel(t) => t.nonce,
            TxKind::ClaimChannel(t) => t.nonce,
            TxKind::RequestChannelWithdraw(t) => t.nonce,
            TxKind::WithdrawChannel(t) => t.nonce,
        }
    }

    /// The fee in MYC base units, as signed (a 256-bit value; the state machine bounds it).
    pub fn fee(&self) -> U256 {
        match self {
            TxKind::Transfer(t) => t.fee,
            TxKind::RegisterSubnet(t) => t.fee,
            TxKind::SetSubnetParams(t) => t.fee,
            TxKind::BurnedRegister(t) => t.fee,
            TxKind::ServeEndpoint(t) => t.fee,
            TxKind::SetWeights(t) => t.fee,
            TxKind::CommitWeights(t) => t.fee,
            TxKind::RevealWeights(t) => t.fee,
            TxKind::AddStake(t) => t.fee,
            TxKind::RemoveStake(t) => t.fee,
            TxKind::TransferWithAuthorization(t) => t.fee,
            TxKind::OpenChannel(t) => t.fee,
            TxKind::TopUpChannel(t) => t.fee,
            TxKind::ClaimChannel(t) => t.fee,
            TxKind::RequestChannelWithdraw(t) => t.fee,
            TxKind::WithdrawChannel(t) => t.fee,
        }
    }

    /// The EIP-712 hash that the sender signs.
    pub fn signing_hash(&self, chain_id: u64) -> B256 {
        let domain = domain(chain_id);
        match self {
            TxKind::Transfer(t) => t.eip712_signing_hash(&domain),
            TxKind::RegisterSubnet(t) => t.eip712_signing_hash(&domain),
            TxKind::SetSubnetParams(t) => t.eip712_signing_hash(&domain),
            TxKind::BurnedRegister(t) => t.eip712_signing_hash(&domain),
            TxKind::ServeEndpoint(t) => t.eip712_signing_hash(&domain),
            TxKind::SetWeights(t) => t.eip712_signing_hash(&domain),
            TxKind::CommitWeights(t) => t.eip712_signing_hash(&domain),
            TxKind::RevealWeights(t) => t.eip712_signing_hash(&domain),
            TxKind::AddStake(t) => t.eip712_signing_hash(&domain),
            TxKind::RemoveStake(t) => t.eip712_signing_hash(&domain),
            TxKind::TransferWithAuthorization(t) => t.eip712_signing_hash(&domain),
            TxKind::OpenChannel(t) => t.eip712_signing_hash(&domain),
            TxKind::TopUpChannel(t) => t.eip712_signing_hash(&domain),
            TxKind::ClaimChannel(t) => t.eip712_signing_hash(&domain),
            TxKind::RequestChannelWithdraw(t) => t.eip712_signing_hash(&domain),
            TxKind::WithdrawChannel(t) => t.eip712_signing_hash(&domain),
        }
    }

    fn abi_encode(&self) -> Vec<u8> {
        match self {
            TxKind::Transfer(t) => t.abi_encode(),
            TxKind::RegisterSubnet(t) => t.abi_encode(),
            TxKind::SetSubnetParams(t) => t.abi_encode(),
            TxKind::BurnedRegister(t) => t.abi_encode(),
            TxKind::ServeEndpoint(t) => t.abi_encode(),
            TxKind::SetWeights(t) => t.abi_encode(),
            TxKind::CommitWeights(t) => t.abi_encode(),
            TxKind::RevealWeights(t) => t.abi_encode(),
            TxKind::AddStake(t) => t.abi_encode(),
            TxKind::RemoveStake(t) => t.abi_encode(),
            TxKind::TransferWithAuthorization(t) => t.abi_encode(),
            TxKind::OpenChannel(t) => t.abi_encode(),
            TxKind::TopUpChannel(t) => t.abi_encode(),
            TxKind::ClaimChannel(t) => t.abi_encode(),
            TxKind::RequestChannelWithdraw(t) => t.abi_encode(),
            TxKind::WithdrawChannel(t) => t.abi_encode(),
        }
    }

    fn abi_decode(tag: u8, data: &[u8]) -> Result<TxKind, DecodeError> {
        match tag {
            1 => Transfer::abi_decode(data)
                .map(TxKind::Transfer)
                .map_err(|e| DecodeError::Message(e.to_string())),
            2 => RegisterSubnet::abi_decode(data)
                .map(TxKind::RegisterSubnet)
                .map_err(|e| DecodeError::Message(e.to_string())),
            3 => SetSubnetParams::abi_decode(data)
                .map(TxKind::SetSubnetParams)
                .map_err(|e| DecodeError::Message(e.to_string())),
            4 => BurnedRegister::abi_decode(data)
                .map(TxKind::BurnedRegister)
                .map_err(|e| DecodeError::Message(e.to_string())),
            5 => ServeEndpoint::abi_decode(data)
                .map(TxKind::ServeEndpoint)
                .map_err(|e| DecodeError::Message(e.to_string())),
            6 => SetWeights::abi_decode(data)
                .map(TxKind::SetWeights)
                .map_err(|e| DecodeError::Message(e.to_string())),
            7 => CommitWeights::abi_decode(data)
                .map(TxKind::CommitWeights)
                .map_err(|e| DecodeError::Message(e.to_string())),
            8 => RevealWeights::abi_decode(data)
                .map(TxKind::RevealWeights)
                .map_err(|e| DecodeError::Message(e.to_string())),
            9 => AddStake::abi_decode(data)
                .map(TxKind::AddStake)
                .map_err(|e| DecodeError::Message(e.to_string())),
            10 => RemoveStake::abi_decode(data)
                .map(TxKind::RemoveStake)
                .map_err(|e| DecodeError::Message(e.to_string())),
            20 => TransferWithAuthorization::abi_decode(data)
                .map(TxKind::TransferWithAuthorization)
                .map_err(|e| DecodeError::Message(e.to_string())),
            21 => OpenChannel::abi_decode(data)
                .map(TxKind::OpenChannel)
                .map_err(|e| DecodeError::Message(e.to_string())),
            22 => TopUpChannel::abi_decode(data)
                .map(TxKind::TopUpChannel)
                .map_err(|e| DecodeError::Message(e.to_string())),
            23 => ClaimChannel::abi_decode(data)
                .map(TxKind::ClaimChannel)
                .map_err(|e| DecodeError::Message(e.to_string())),
            24 => RequestChannelWithdraw::abi_decode(data)
                .map(TxKind::RequestChannelWithdraw)
                .map_err(|e| DecodeError::Message(e.to_string())),
            25 => WithdrawChannel::abi_decode(data)
                .map(TxKind::WithdrawChannel)
                .map_err(|e| DecodeError::Message(e.to_string())),
            other => Err(DecodeError::UnknownKind(other)),
        }
    }

    /// The EIP-712 `types` entries for this kind (without `EIP712Domain`), as wallets want them.
    pub fn eip712_types(&self) -> serde_json::Value {
        match self {
            TxKind::Transfer(_) => struct_types::<Transfer>(),
            TxKind::RegisterSubnet(_) => struct_types::<RegisterSubnet>(),
            TxKind::SetSubnetParams(_) => struct_types::<SetSubnetParams>(),
            TxKind::BurnedRegister(_) => struct_types::<BurnedRegister>(),
            TxKind::ServeEndpoint(_) => struct_types::<ServeEndpoint>(),
            TxKind::SetWeights(_) => struct_types::<SetWeights>(),
            TxKind::CommitWeights(_) => struct_types::<CommitWeights>(),
            TxKind::RevealWeights(_) => struct_types::<RevealWeights>(),
            TxKind::AddStake(_) => struct_types::<AddStake>(),
            TxKind::RemoveStake(_) => struct_types::<RemoveStake>(),
            TxKind::TransferWithAuthorization(_) => struct_types::<TransferWithAuthorization>(),
            TxKind::OpenChannel(_) => struct_types::<OpenChannel>(),
            TxKind::TopUpChannel(_) => struct_types::<TopUpChannel>(),
            TxKind::ClaimChannel(_) => struct_types::<ClaimChannel>(),
            TxKind::RequestChannelWithdraw(_) => struct_types::<RequestChannelWithdraw>(),
            TxKind::WithdrawChannel(_) => struct_types::<WithdrawChannel>(),
        }
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
    #[error("unknown transaction type '{0}' (known: Transfer, TransferWithAuthorization, RegisterSubnet, SetSubnetParams, BurnedRegister, ServeEndpoint, SetWeights, CommitWeights, RevealWeights, AddStake, RemoveStake, OpenChannel, TopUpChannel, ClaimChannel, RequestChannelWithdraw, WithdrawChannel)")]
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
            "message": message_json(kind),
        })
    }

    pub fn to_json(&self) -> TxJson {
        TxJson {
            chain_id: self.chain_id,
            tx_type: self.kind.type_name().to_string(),
            message: message_json(&self.kind),
            signature: format!("0x{}", hex::encode(self.signature.as_bytes())),
        }
    }

    pub fn from_json(json: &TxJson) -> Result<SignedTx, DecodeError> {
        let kind = message_from_json(&json.tx_type, &json.message)?;
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

fn message_json(kind: &TxKind) -> serde_json::Value {
    match kind {
        TxKind::RegisterSubnet(t) => t.to_message(),
        TxKind::SetSubnetParams(t) => t.to_message(),
        TxKind::BurnedRegister(t) => t.to_message(),
        TxKind::ServeEndpoint(t) => t.to_message(),
        TxKind::SetWeights(t) => t.to_message(),
        TxKind::CommitWeights(t) => t.to_message(),
        TxKind::RevealWeights(t) => t.to_message(),
        TxKind::AddStake(t) => t.to_message(),
        TxKind::RemoveStake(t) => t.to_message(),
        TxKind::OpenChannel(t) => t.to_message(),
        TxKind::TopUpChannel(t) => t.to_message(),
        TxKind::ClaimChannel(t) => t.to_message(),
        TxKind::RequestChannelWithdraw(t) => t.to_message(),
        TxKind::WithdrawChannel(t) => t.to_message(),
        TxKind::Transfer(t) => serde_json::json!({
            "from": t.from.to_checksum(None),
            "to": t.to.to_checksum(None),
            "token": t.token.to_checksum(None),
            "amount": t.amount.to_string(),
            "memo": format!("0x{}", hex::encode(&t.memo)),
            "nonce": t.nonce,
            "fee": t.fee.to_string(),
        }),
        TxKind::TransferWithAuthorization(t) => serde_json::json!({
            "from": t.from.to_checksum(None),
            "payer": t.payer.to_checksum(None),
            "to": t.to.to_checksum(None),
            "value": t.value.to_string(),
            "validAfter": t.validAfter.to_string(),
            "validBefore": t.validBefore.to_string(),
            "authorizationNonce": t.authorizationNonce.to_string(),
            "signature": format!("0x{}", hex::encode(&t.signature)),
            "nonce": t.nonce,
            "fee": t.fee.to_string(),
        }),
    }
}

fn message_from_json(tx_type: &str, message: &serde_json::Value) -> Result<TxKind, DecodeError> {
    match tx_type {
        "RegisterSubnet" => RegisterSubnet::from_message(message).map(TxKind::RegisterSubnet),
        "SetSubnetParams" => SetSubnetParams::from_message(message).map(TxKind::SetSubnetParams),
        "BurnedRegister" => BurnedRegister::from_message(message).map(TxKind::BurnedRegister),
        "ServeEndpoint" => ServeEndpoint::from_message(message).map(TxKind::ServeEndpoint),
        "SetWeights" => SetWeights::from_message(message).map(TxKind::SetWeights),
        "CommitWeights" => CommitWeights::from_message(message).map(TxKind::CommitWeights),
        "RevealWeights" => RevealWeights::from_message(message).map(TxKind::RevealWeights),
        "AddStake" => AddStake::from_message(message).map(TxKind::AddStake),
        "RemoveStake" => RemoveStake::from_message(message).map(TxKind::RemoveStake),
        "OpenChannel" => OpenChannel::from_message(message).map(TxKind::OpenChannel),
        "TopUpChannel" => TopUpChannel::from_message(message).map(TxKind::TopUpChannel),
        "ClaimChannel" => ClaimChannel::from_message(message).map(TxKind::ClaimChannel),
        "RequestChannelWithdraw" => {
            RequestChannelWithdraw::from_message(message).map(TxKind::RequestChannelWithdraw)
        }
        "WithdrawChannel" => WithdrawChannel::from_message(message).map(TxKind::WithdrawChannel),
        "Transfer" => Ok(TxKind::Transfer(Transfer {
            from: field_address(message, "from")?,
            to: field_address(message, "to")?,
            token: field_address(message, "token")?,
            amount: field_u256(message, "amount")?,
            memo: field_bytes(message, "memo")?,
            nonce: field_u64(message, "nonce")?,
            fee: field_u256(message, "fee")?,
        })),
        "TransferWithAuthorization" => Ok(TxKind::TransferWithAuthorization(
            TransferWithAuthorization {
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
            },
        )),
        other => Err(DecodeError::UnknownType(other.to_string())),
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
        reason: "expected a 0x-hex 32-byte string".into(),
    })?;
    s.parse::<B256>().map_err(|e| DecodeError::Field {
        field: name,
        reason: e.to_string(),
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
