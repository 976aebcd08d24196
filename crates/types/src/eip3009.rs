//! EIP-3009 `transferWithAuthorization` on mUSD: the payer's signed authorization that x402's
//! "exact" scheme carries, and how to check its signature.
//!
//! mUSD behaves like a EIP-3009 token contract at [`MUSD_ADDRESS`]: a payer signs the EIP-712
//! struct [`TransferWithAuthorization`] under the domain
//! `{name: MUSD_EIP712_NAME, version: MUSD_EIP712_VERSION, chainId, verifyingContract: MUSD_ADDRESS}`
//! and anyone may submit it to the chain (the submitter pays the MYC fee). Stock clients (viem,
//! `@x402/evm`) sign it with no mycel-specific code: they read the name and version from the
//! payment requirements' `extra`.
//!
//! This module is pure: no clock, no state. Time windows and used nonces are checked by the
//! state machine (`mycel-state`, module `payments`) and by the facilitator (`mycel-gateway`).

use crate::amount::MUSD_ADDRESS;
use alloy_primitives::{Address, Signature, B256, U256};
use alloy_sol_types::{sol, Eip712Domain, SolStruct};
use std::borrow::Cow;

/// mUSD's EIP-712 domain name (x402's `extra.name`).
pub const MUSD_EIP712_NAME: &str = "mycel USD";
/// mUSD's EIP-712 domain version (x402's `extra.version`).
pub const MUSD_EIP712_VERSION: &str = "1";

sol! {
    /// EIP-3009's authorization, field for field (its type hash is the standard one, so every
    /// EIP-3009 signer produces it).
    #[derive(Debug, PartialEq, Eq)]
    struct TransferWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }
}

/// The EIP-712 domain of a EIP-3009 token: `name`, `version`, `chainId`, `verifyingContract`.
pub fn token_domain(
    name: &str,
    version: &str,
    chain_id: u64,
    verifying_contract: Address,
) -> Eip712Domain {
    Eip712Domain {
        name: Some(Cow::Owned(name.to_string())),
        version: Some(Cow::Owned(version.to_string())),
        chain_id: Some(U256::from(chain_id)),
        verifying_contract: Some(verifying_contract),
        salt: None,
    }
}

/// mUSD's EIP-712 domain on the chain `chain_id`.
pub fn musd_domain(chain_id: u64) -> Eip712Domain {
    token_domain(
        MUSD_EIP712_NAME,
        MUSD_EIP712_VERSION,
        chain_id,
        MUSD_ADDRESS,
    )
}

/// Why an authorization's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationSignatureError {
    #[error("authorization signature is {0} bytes; expected 65 bytes r||s||v")]
    Length(usize),
    #[error("authorization signature has v = {0}; expected 27, 28, 0 or 1")]
    BadV(u8),
    #[error(
        "authorization signature has a high s value (malleable); sign with a standard library"
    )]
    HighS,
    #[error("authorization signature does not recover to any key")]
    Unrecoverable,
    #[error("authorization is signed by {recovered}, not by its payer {from}")]
    WrongSigner { from: Address, recovered: Address },
}

impl TransferWithAuthorization {
    /// The EIP-712 hash the payer signs under `domain`.
    pub fn signing_hash(&self, domain: &Eip712Domain) -> B256 {
        self.eip712_signing_hash(domain)
    }

    /// The address whose key signed this authorization under `domain`.
    pub fn recover_signer(
        &self,
        domain: &Eip712Domain,
        signature: &[u8],
    ) -> Result<Address, AuthorizationSignatureError> {
        let signature = parse_signature(signature)?;
        signature
            .recover_address_from_prehash(&self.signing_hash(domain))
            .map_err(|_| AuthorizationSignatureError::Unrecoverable)
    }

    /// Checks that `from` signed this authorization under `domain`.
    pub fn verify_signature(
        &self,
        domain: &Eip712Domain,
        signature: &[u8],
    ) -> Result<(), AuthorizationSignatureError> {
        let recovered = self.recover_signer(domain, signature)?;
        if recovered != self.from {
            return Err(AuthorizationSignatureError::WrongSigner {
                from: self.from,
                recovered,
            });
        }
        Ok(())
    }
}

/// Reads a 65-byte `r‖s‖v` signature (v as 27/28 or 0/1), refusing malleable high-s forms.
pub fn parse_signature(bytes: &[u8]) -> Result<Signature, AuthorizationSignatureError> {
    if bytes.len() != 65 {
        return Err(AuthorizationSignatureError::Length(bytes.len()));
    }
    let parity = match bytes[64] {
        0 | 27 => false,
        1 | 28 => true,
        other => return Err(AuthorizationSignatureError::BadV(other)),
    };
    let signature = Signature::from_bytes_and_parity(&bytes[..64], parity);
    if signature.normalize_s().is_some() {
        return Err(AuthorizationSignatureError::HighS);
    }
    Ok(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::dev_signer;
    use alloy_primitives::{address, b256};
    use alloy_signer::SignerSync;

    /// The example payment of the x402 v2 HTTP transport spec (specs/transports-v2/http.md).
    fn golden() -> (TransferWithAuthorization, Eip712Domain, Vec<u8>) {
        let auth = TransferWithAuthorization {
            from: address!("0x857b06519E91e3A54538791bDbb0E22373e36b66"),
            to: address!("0x209693Bc6afc0C5328bA36FaF03C514EF312287C"),
            value: U256::from(10_000u64),
            validAfter: U256::from(1_740_672_089u64),
            validBefore: U256::from(1_740_672_154u64),
            nonce: b256!("0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"),
        };
        let domain = token_domain(
            "USDC",
            "2",
            84532,
            address!("0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
        );
        let sig = hex::decode("2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c").unwrap();
        (auth, domain, sig)
    }

    #[test]
    fn x402_spec_golden_signature_recovers_to_the_documented_payer() {
        let (auth, domain, sig) = golden();
        assert_eq!(
            auth.recover_signer(&domain, &sig).unwrap(),
            address!("0x857b06519E91e3A54538791bDbb0E22373e36b66")
        );
        auth.verify_signature(&domain, &sig).unwrap();
    }

    #[test]
    fn any_tampered_field_breaks_the_golden_signature() {
        let (auth, domain, sig) = golden();
        let mut tampered = vec![];
        let mut a = auth.clone();
        a.to = Address::repeat_byte(1);
        tampered.push(a);
        let mut a = auth.clone();
        a.value += U256::from(1);
        tampered.push(a);
        let mut a = auth.clone();
        a.validAfter -= U256::from(1);
        tampered.push(a);
        let mut a = auth.clone();
        a.validBefore += U256::from(1);
        tampered.push(a);
        let mut a = auth.clone();
        a.nonce = B256::repeat_byte(7);
        tampered.push(a);
        for a in tampered {
            assert!(matches!(
                a.verify_signature(&domain, &sig),
                Err(AuthorizationSignatureError::WrongSigner { .. })
            ));
        }
        let other_chain = token_domain("USDC", "2", 8453, MUSD_ADDRESS);
        assert!(auth.verify_signature(&other_chain, &sig).is_err());
        assert_eq!(
            auth.verify_signature(&domain, &sig[..64]),
            Err(AuthorizationSignatureError::Length(64))
        );
        let mut bad_v = sig.clone();
        bad_v[64] = 5;
        assert_eq!(
            auth.verify_signature(&domain, &bad_v),
            Err(AuthorizationSignatureError::BadV(5))
        );
    }

    #[test]
    fn a_dev_key_signs_a_musd_authorization() {
        let signer = dev_signer(3).unwrap();
        let auth = TransferWithAuthorization {
            from: signer.address(),
            to: Address::repeat_byte(0x22),
            value: U256::from(5u64),
            validAfter: U256::ZERO,
            validBefore: U256::from(u64::MAX),
            nonce: B256::repeat_byte(9),
        };
        let domain = musd_domain(1337);
        let sig = signer.sign_hash_sync(&auth.signing_hash(&domain)).unwrap();
        auth.verify_signature(&domain, &sig.as_bytes()).unwrap();
    }
}
