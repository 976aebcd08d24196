//! Inference receipts: what a miner signs for every completion it serves, so that anyone can check
//! who served it and, by re-running the request, whether the output is the one the model gives.
//!
//! A receipt is EIP-712 typed data (primary type `InferenceReceipt`) under the domain
//! `{name: "mycel-receipt", version: "1", chainId}`; any Ethereum library (eth_account, viem,
//! alloy, ethers) recovers its signer. It binds:
//!
//! | field | what it is |
//! |---|---|
//! | domain `chainId` | the chain the miner serves on |
//! | `netuid` | the subnet |
//! | `miner` | the miner's hotkey address; the signature must recover to it |
//! | `modelId` | SHA-256 of the GGUF file |
//! | `requestHash` | EIP-712 `hashStruct` of the canonical request ([`CanonicalRequest`]) |
//! | `promptTokensHash`, `outputTokensHash` | [`token_ids_hash`] of the prompt / sampled token ids |
//! | `promptTokenCount`, `outputTokenCount` | how many of each |
//! | `determinismProfile` | the kernel set and decode schedule ([`DETERMINISM_PROFILE`]) |
//! | `blockHeight` | the finalized height the miner saw when it served the request |
//!
//! The canonical request is itself an EIP-712 struct, so its hash is computed by the same library
//! code that checks the signature: every sampling setting is present with its default filled in,
//! and the two float settings are bound as the bits of the IEEE-754 binary32 value the sampler uses.
//! docs/receipts.md documents every encoding with a worked example.
//!
//! This module is the format: the EIP-712 structs, signing, recovering and checking what a receipt
//! binds, and the JSON forms. Building a receipt for a generation and re-running a request need
//! the model and live in crates/infer.
//!
//! Does not: read clocks, do I/O, run a model, or decide what a mismatch means (that is the
//! verifier's job).

use std::borrow::Cow;

use alloy_primitives::{keccak256, Address, Signature, B256, U256};
use alloy_signer::SignerSync;
use alloy_sol_types::{Eip712Domain, SolStruct};
use serde::{Deserialize, Serialize};

use crate::eip712::typed_data_types;

mod request;
pub use request::{CanonicalRequest, ChatMessage, Endpoint, InvalidSampling, SamplingParams};

/// The determinism profile a receipt must name: the kernel set and decode schedule of
/// crates/infer (docs/determinism.md). Two runs with the same model, request and profile give the
/// same tokens on every CPU and thread count, so a verifier knows which arithmetic to re-run.
pub const DETERMINISM_PROFILE: &str = "mycel-det-v1";

/// The EIP-712 domain name of receipts.
pub const RECEIPT_DOMAIN_NAME: &str = "mycel-receipt";
/// The EIP-712 domain version of receipts. Changes only when a field or an encoding changes.
pub const RECEIPT_DOMAIN_VERSION: &str = "1";
/// The `type` of a receipt's JSON form (and its EIP-712 primary type).
pub const RECEIPT_TYPE: &str = "InferenceReceipt";

/// The EIP-712 structs, declared once; docs/receipts.md repeats them for other languages.
pub mod eip712 {
    alloy_sol_types::sol! {
        /// What a miner signs for one completion.
        #[derive(Debug, PartialEq, Eq)]
        struct InferenceReceipt {
            uint16 netuid;
            address miner;
            bytes32 modelId;
            bytes32 requestHash;
            bytes32 promptTokensHash;
            bytes32 outputTokensHash;
            uint32 promptTokenCount;
            uint32 outputTokenCount;
            string determinismProfile;
            uint64 blockHeight;
        }

        /// One chat message of a canonical request.
        #[derive(Debug, PartialEq, Eq)]
        struct Message {
            string role;
            string content;
        }

        /// The canonical request; `requestHash` is its `hashStruct`.
        #[derive(Debug, PartialEq, Eq)]
        struct InferenceRequest {
            string endpoint;
            Message[] messages;
            string prompt;
            uint32 temperature;
            uint32 topP;
            uint32 topK;
            uint64 seed;
            uint32 maxTokens;
            string[] stop;
        }
    }
}

pub use eip712::InferenceReceipt;

/// The EIP-712 domain of receipts on the chain `chain_id`.
pub fn receipt_domain(chain_id: u64) -> Eip712Domain {
    Eip712Domain {
        name: Some(Cow::Borrowed(RECEIPT_DOMAIN_NAME)),
        version: Some(Cow::Borrowed(RECEIPT_DOMAIN_VERSION)),
        chain_id: Some(U256::from(chain_id)),
        verifying_contract: None,
        salt: None,
    }
}

/// The hash of a list of token ids: keccak-256 of the ids written as 4-byte big-endian unsigned
/// integers, one after the other, nothing else (an empty list hashes the empty string).
pub fn token_ids_hash(ids: &[u32]) -> B256 {
    let mut bytes = Vec::with_capacity(ids.len() * 4);
    for id in ids {
        bytes.extend_from_slice(&id.to_be_bytes());
    }
    keccak256(&bytes)
}

impl InferenceReceipt {
    /// The EIP-712 hash the miner signs on the chain `chain_id`.
    pub fn signing_hash(&self, chain_id: u64) -> B256 {
        self.eip712_signing_hash(&receipt_domain(chain_id))
    }
}

/// Why a receipt is not valid or cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("the receipt is not valid JSON of a signed receipt: {0}")]
    Json(String),
    #[error("the receipt's type is `{0}`, expected `InferenceReceipt`")]
    WrongType(String),
    #[error("invalid receipt field `{field}`: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("the signature is not 65 bytes r‖s‖v with v in 0, 1, 27, 28 and a low s: {0}")]
    Signature(String),
    #[error("the signature does not recover to any address")]
    Unrecoverable,
    #[error(
        "the signature was made by {signer}, not by the miner {miner} that the receipt names: \
         the receipt is forged or was altered after signing"
    )]
    WrongSigner { signer: Address, miner: Address },
    #[error(
        "the request in the receipt hashes to {actual}, but the signed requestHash is {signed}: \
         the request was altered"
    )]
    RequestMismatch { signed: B256, actual: B256 },
    #[error("signing failed: {0}")]
    Signing(String),
}

/// What the checker of a miner's receipt expects it to bind ([`SignedReceipt::check_binding`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptBinding {
    /// The miner's hotkey, from the metagraph.
    pub miner: Address,
    pub chain_id: u64,
    pub netuid: u16,
    /// The model's id; `None` accepts any model.
    pub model_id: Option<B256>,
}

/// Why a receipt does not bind what its checker expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error("{0}")]
    Unrecoverable(ReceiptError),
    #[error("signed by {signer}, but the miner's hotkey in the metagraph is {expected}")]
    Signer { signer: Address, expected: Address },
    #[error("the receipt names the miner {named}, not the hotkey {expected}")]
    NamedMiner { named: Address, expected: Address },
    #[error(
        "the receipt is for chain {chain_id} subnet {netuid}, not chain {expected_chain_id} subnet {expected_netuid}"
    )]
    Place {
        chain_id: u64,
        netuid: u16,
        expected_chain_id: u64,
        expected_netuid: u16,
    },
    #[error("the receipt's model is {got}, expected {expected}")]
    Model { got: B256, expected: B256 },
    #[error("determinism profile `{got}`, expected `{}`", DETERMINISM_PROFILE)]
    Profile { got: String },
}

impl BindingError {
    /// True when the signature or the named miner is wrong (rather than what was served).
    pub fn is_signature(&self) -> bool {
        matches!(
            self,
            BindingError::Unrecoverable(_)
                | BindingError::Signer { .. }
                | BindingError::NamedMiner { .. }
        )
    }
}

/// A receipt with the miner's signature over its EIP-712 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedReceipt {
    pub chain_id: u64,
    pub receipt: InferenceReceipt,
    pub signature: Signature,
}

impl SignedReceipt {
    /// Signs `receipt` for the chain `chain_id` (RFC 6979 nonces, low s).
    pub fn sign(
        receipt: InferenceReceipt,
        chain_id: u64,
        signer: &impl SignerSync,
    ) -> Result<Self, ReceiptError> {
        let signature = signer
            .sign_hash_sync(&receipt.signing_hash(chain_id))
            .map_err(|e| ReceiptError::Signing(e.to_string()))?;
        Ok(Self {
            chain_id,
            receipt,
            signature,
        })
    }

    pub fn signing_hash(&self) -> B256 {
        self.receipt.signing_hash(self.chain_id)
    }

    /// The address that made the signature, whatever `miner` says.
    pub fn recover_signer(&self) -> Result<Address, ReceiptError> {
        self.signature
            .recover_address_from_prehash(&self.signing_hash())
            .map_err(|_| ReceiptError::Unrecoverable)
    }

    /// Checks that the signature was made by the miner the receipt names.
    pub fn verify(&self) -> Result<Address, ReceiptError> {
        let signer = self.recover_signer()?;
        if signer != self.receipt.miner {
            return Err(ReceiptError::WrongSigner {
                signer,
                miner: self.receipt.miner,
            });
        }
        Ok(signer)
    }

    /// Checks what a validator or a gateway expects of a miner's receipt: signed by the hotkey
    /// the metagraph gives, naming that hotkey, for this chain and subnet, this model (when
    /// `expected.model_id` is set) and mycel's determinism profile.
    pub fn check_binding(&self, expected: &ReceiptBinding) -> Result<(), BindingError> {
        let signer = self.recover_signer().map_err(BindingError::Unrecoverable)?;
        if signer != expected.miner {
            return Err(BindingError::Signer {
                signer,
                expected: expected.miner,
            });
        }
        let r = &self.receipt;
        if r.miner != expected.miner {
            return Err(BindingError::NamedMiner {
                named: r.miner,
                expected: expected.miner,
            });
        }
        if self.chain_id != expected.chain_id || r.netuid != expected.netuid {
            return Err(BindingError::Place {
                chain_id: self.chain_id,
                netuid: r.netuid,
                expected_chain_id: expected.chain_id,
                expected_netuid: expected.netuid,
            });
        }
        if let Some(model) = expected.model_id {
            if r.modelId != model {
                return Err(BindingError::Model {
                    got: r.modelId,
                    expected: model,
                });
            }
        }
        if r.determinismProfile != DETERMINISM_PROFILE {
            return Err(BindingError::Profile {
                got: r.determinismProfile.clone(),
            });
        }
        Ok(())
    }

    /// The full EIP-712 typed data (`domain`, `types`, `primaryType`, `message`) that the miner
    /// signed, in the shape `eth_signTypedData_v4`, viem and eth_account take.
    pub fn typed_data(&self) -> serde_json::Value {
        serde_json::json!({
            "domain": domain_json(self.chain_id),
            "types": typed_data_types::<InferenceReceipt>(&receipt_domain(self.chain_id)),
            "primaryType": RECEIPT_TYPE,
            "message": message_json(&self.receipt),
        })
    }

    /// The JSON form; `request` (the canonical request) is included when given.
    pub fn to_json(&self, request: Option<&CanonicalRequest>) -> ReceiptJson {
        ReceiptJson {
            chain_id: self.chain_id,
            receipt_type: RECEIPT_TYPE.to_string(),
            message: message_json(&self.receipt),
            signature: format!("0x{}", hex::encode(self.signature.as_bytes())),
            request: request.cloned(),
        }
    }

    /// Reads the JSON form. Does not check the signature (see [`SignedReceipt::verify`]) but does
    /// check that an included request hashes to the signed `requestHash`.
    pub fn from_json(json: &ReceiptJson) -> Result<Self, ReceiptError> {
        if json.receipt_type != RECEIPT_TYPE {
            return Err(ReceiptError::WrongType(json.receipt_type.clone()));
        }
        let m = &json.message;
        let receipt = InferenceReceipt {
            netuid: field_uint(m, "netuid")?,
            miner: field_address(m, "miner")?,
            modelId: field_b256(m, "modelId")?,
            requestHash: field_b256(m, "requestHash")?,
            promptTokensHash: field_b256(m, "promptTokensHash")?,
            outputTokensHash: field_b256(m, "outputTokensHash")?,
            promptTokenCount: field_uint(m, "promptTokenCount")?,
            outputTokenCount: field_uint(m, "outputTokenCount")?,
            determinismProfile: field_string(m, "determinismProfile")?,
            blockHeight: field_uint(m, "blockHeight")?,
        };
        let signature = parse_signature(&json.signature)?;
        if let Some(request) = &json.request {
            let actual = request.hash();
            if actual != receipt.requestHash {
                return Err(ReceiptError::RequestMismatch {
                    signed: receipt.requestHash,
                    actual,
                });
            }
        }
        Ok(Self {
            chain_id: json.chain_id,
            receipt,
            signature,
        })
    }
}

/// The JSON form of a signed receipt:
///
/// ```json
/// {"chainId": 1337, "type": "InferenceReceipt",
///  "message": {"netuid": 1, "miner": "0x…", "modelId": "0x…", "requestHash": "0x…",
///              "promptTokensHash": "0x…", "outputTokensHash": "0x…", "promptTokenCount": 31,
///              "outputTokenCount": 8, "determinismProfile": "mycel-det-v1", "blockHeight": 12},
///  "signature": "0x…65 bytes r‖s‖v…",
///  "request": {…the canonical request, optional…}}
/// ```
/// `message` is exactly the EIP-712 message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptJson {
    #[serde(rename = "chainId")]
    pub chain_id: u64,
    #[serde(rename = "type")]
    pub receipt_type: String,
    pub message: serde_json::Value,
    pub signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<CanonicalRequest>,
}

fn domain_json(chain_id: u64) -> serde_json::Value {
    serde_json::json!({
        "name": RECEIPT_DOMAIN_NAME,
        "version": RECEIPT_DOMAIN_VERSION,
        "chainId": chain_id,
    })
}

fn message_json(r: &InferenceReceipt) -> serde_json::Value {
    serde_json::json!({
        "netuid": r.netuid,
        "miner": r.miner.to_checksum(None),
        "modelId": r.modelId.to_string(),
        "requestHash": r.requestHash.to_string(),
        "promptTokensHash": r.promptTokensHash.to_string(),
        "outputTokensHash": r.outputTokensHash.to_string(),
        "promptTokenCount": r.promptTokenCount,
        "outputTokenCount": r.outputTokenCount,
        "determinismProfile": r.determinismProfile,
        "blockHeight": r.blockHeight,
    })
}

fn field<'a>(
    m: &'a serde_json::Value,
    name: &'static str,
) -> Result<&'a serde_json::Value, ReceiptError> {
    m.get(name).ok_or(ReceiptError::Field {
        field: name,
        reason: "missing".into(),
    })
}

fn field_uint<T: TryFrom<u64>>(
    m: &serde_json::Value,
    name: &'static str,
) -> Result<T, ReceiptError> {
    let bad = |reason: &str| ReceiptError::Field {
        field: name,
        reason: reason.into(),
    };
    let value = match field(m, name)? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| bad("not a non-negative integer"))?,
        serde_json::Value::String(s) => {
            s.parse::<u64>().map_err(|_| bad("not a decimal integer"))?
        }
        _ => return Err(bad("expected an integer")),
    };
    T::try_from(value).map_err(|_| bad("out of range"))
}

fn field_string(m: &serde_json::Value, name: &'static str) -> Result<String, ReceiptError> {
    field(m, name)?
        .as_str()
        .map(str::to_string)
        .ok_or(ReceiptError::Field {
            field: name,
            reason: "expected a string".into(),
        })
}

fn field_address(m: &serde_json::Value, name: &'static str) -> Result<Address, ReceiptError> {
    let text = field_string(m, name)?;
    text.parse::<Address>().map_err(|e| ReceiptError::Field {
        field: name,
        reason: format!("not a 0x-hex address: {e}"),
    })
}

fn field_b256(m: &serde_json::Value, name: &'static str) -> Result<B256, ReceiptError> {
    let text = field_string(m, name)?;
    let raw = text.strip_prefix("0x").unwrap_or(&text);
    let bytes = hex::decode(raw).map_err(|e| ReceiptError::Field {
        field: name,
        reason: format!("not hex: {e}"),
    })?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| ReceiptError::Field {
        field: name,
        reason: format!("{} bytes, expected 32", b.len()),
    })?;
    Ok(B256::from(bytes))
}

fn parse_signature(text: &str) -> Result<Signature, ReceiptError> {
    let raw = text.strip_prefix("0x").unwrap_or(text);
    let bytes = hex::decode(raw).map_err(|e| ReceiptError::Signature(format!("not hex: {e}")))?;
    if bytes.len() != 65 {
        return Err(ReceiptError::Signature(format!("{} bytes", bytes.len())));
    }
    let parity = match bytes[64] {
        0 | 27 => false,
        1 | 28 => true,
        other => return Err(ReceiptError::Signature(format!("v = {other}"))),
    };
    let signature = Signature::from_bytes_and_parity(&bytes[..64], parity);
    if signature.normalize_s().is_some() {
        return Err(ReceiptError::Signature("high s".into()));
    }
    Ok(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_signer_local::PrivateKeySigner;

    fn signer() -> PrivateKeySigner {
        PrivateKeySigner::from_slice(&[0x11; 32]).unwrap()
    }

    fn request() -> CanonicalRequest {
        CanonicalRequest::chat(
            vec![ChatMessage::user("What is 2+2?")],
            &SamplingParams {
                temperature: 0.7,
                top_p: 0.9,
                top_k: 40,
                seed: 42,
                max_tokens: 16,
                stop: vec!["\n\n".into()],
            },
        )
    }

    fn receipt(miner: Address) -> InferenceReceipt {
        InferenceReceipt {
            netuid: 1,
            miner,
            modelId: B256::repeat_byte(0xab),
            requestHash: request().hash(),
            promptTokensHash: token_ids_hash(&[1, 9690, 198]),
            outputTokensHash: token_ids_hash(&[34, 2]),
            promptTokenCount: 3,
            outputTokenCount: 2,
            determinismProfile: DETERMINISM_PROFILE.into(),
            blockHeight: 12,
        }
    }

    #[test]
    fn token_hash_is_keccak_of_big_endian_u32s() {
        assert_eq!(token_ids_hash(&[]), keccak256([]));
        assert_eq!(
            token_ids_hash(&[1, 0x01020304]),
            keccak256([0, 0, 0, 1, 1, 2, 3, 4])
        );
    }

    #[test]
    fn sign_json_round_trip_verify() {
        let key = signer();
        let signed = SignedReceipt::sign(receipt(key.address()), 1337, &key).unwrap();
        assert_eq!(signed.verify().unwrap(), key.address());
        let json = serde_json::to_string(&signed.to_json(Some(&request()))).unwrap();
        let back: ReceiptJson = serde_json::from_str(&json).unwrap();
        assert_eq!(back.request.as_ref(), Some(&request()));
        let parsed = SignedReceipt::from_json(&back).unwrap();
        assert_eq!(parsed, signed);
        assert_eq!(parsed.verify().unwrap(), key.address());
    }

    #[test]
    fn altered_receipts_fail() {
        let key = signer();
        let signed = SignedReceipt::sign(receipt(key.address()), 1337, &key).unwrap();

        let mut altered = signed.clone();
        altered.receipt.outputTokensHash = token_ids_hash(&[35, 2]);
        assert!(matches!(
            altered.verify(),
            Err(ReceiptError::WrongSigner { .. })
        ));

        let mut other_chain = signed.clone();
        other_chain.chain_id = 1;
        assert!(other_chain.verify().is_err());

        // Another key signs a receipt that names the miner.
        let forger = PrivateKeySigner::from_slice(&[0x22; 32]).unwrap();
        let forged = SignedReceipt::sign(receipt(key.address()), 1337, &forger).unwrap();
        assert_eq!(
            forged.verify(),
            Err(ReceiptError::WrongSigner {
                signer: forger.address(),
                miner: key.address()
            })
        );

        // A request that is not the one signed.
        let mut json = signed.to_json(Some(&request()));
        json.request.as_mut().unwrap().seed = 43;
        assert!(matches!(
            SignedReceipt::from_json(&json),
            Err(ReceiptError::RequestMismatch { .. })
        ));
    }

    #[test]
    fn request_hash_binds_every_setting() {
        let base = request();
        type Change = Box<dyn Fn(&mut CanonicalRequest)>;
        let variants: Vec<Change> = vec![
            Box::new(|r| r.temperature = 0.70000005),
            Box::new(|r| r.top_p = 1.0),
            Box::new(|r| r.top_k = 0),
            Box::new(|r| r.seed = 0),
            Box::new(|r| r.max_tokens = 17),
            Box::new(|r| r.stop.clear()),
            Box::new(|r| r.messages[0].role = "system".into()),
            Box::new(|r| r.messages[0].content.push(' ')),
            Box::new(|r| r.endpoint = Endpoint::Completions),
            Box::new(|r| r.prompt = "x".into()),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut other = base.clone();
            change(&mut other);
            assert_ne!(other.hash(), base.hash(), "variant {i} hashes the same");
        }
    }

    #[test]
    fn canonical_request_json_keeps_float_bits() {
        let r = request();
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"temperature\":0.7"), "{text}");
        let back: CanonicalRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(back.temperature.to_bits(), r.temperature.to_bits());
        assert_eq!(back.hash(), r.hash());
    }

    #[test]
    fn request_typed_data_types_are_the_declared_structs() {
        let field = |name: &str, ty: &str| serde_json::json!({"name": name, "type": ty});
        assert_eq!(
            request().typed_data(1337)["types"],
            serde_json::json!({
                "EIP712Domain": [
                    field("name", "string"),
                    field("version", "string"),
                    field("chainId", "uint256"),
                ],
                "InferenceRequest": [
                    field("endpoint", "string"),
                    field("messages", "Message[]"),
                    field("prompt", "string"),
                    field("temperature", "uint32"),
                    field("topP", "uint32"),
                    field("topK", "uint32"),
                    field("seed", "uint64"),
                    field("maxTokens", "uint32"),
                    field("stop", "string[]"),
                ],
                "Message": [field("role", "string"), field("content", "string")],
            })
        );
    }

    #[test]
    fn typed_data_has_the_wallet_shape() {
        let key = signer();
        let signed = SignedReceipt::sign(receipt(key.address()), 1337, &key).unwrap();
        let td = signed.typed_data();
        assert_eq!(td["primaryType"], "InferenceReceipt");
        assert_eq!(td["domain"]["name"], "mycel-receipt");
        assert_eq!(td["types"]["InferenceReceipt"][0]["name"], "netuid");
        assert_eq!(td["types"]["InferenceReceipt"][0]["type"], "uint16");
        let rtd = request().typed_data(1337);
        assert_eq!(rtd["types"]["Message"][1]["name"], "content");
        assert_eq!(rtd["types"]["InferenceRequest"][1]["type"], "Message[]");
    }
}
