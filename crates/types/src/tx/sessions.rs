//! Transactions of payment sessions: an escrow channel of mUSD from a payer to a payee, paid out
//! by the payer's signed cumulative vouchers.
//!
//! Who signs what: the payer signs [`OpenChannel`], [`TopUpChannel`], [`RequestChannelWithdraw`]
//! and [`WithdrawChannel`] (`from` = payer); the payee signs [`ClaimChannel`] (`from` = payee),
//! which carries a [`ChannelVoucher`] signed by the payer off chain. Every kind's fee is paid in MYC
//! by `from`. The rules are in `mycel_state::sessions` and docs/payments.md.
//!
//! A voucher is signed under mUSD's EIP-712 domain (`crate::eip3009::musd_domain`), so it names
//! the chain and the token; the channel id names the payer, the payee and a salt.

use super::{field_address, field_b256, field_bytes, field_u256, field_u64, DecodeError};
use crate::eip3009::{musd_domain, parse_signature, AuthorizationSignatureError};
use alloy_primitives::{keccak256, Address, B256};
use alloy_sol_types::{sol, SolStruct, SolValue};
use serde_json::{json, Value};

sol! {
    /// The payer `from` moves `amount` mUSD into a new channel to `payee`. `withdrawDelay` is the
    /// number of seconds between a withdraw request and the moment the payer may take back the
    /// unclaimed rest. The channel's id is [`channel_id`]`(from, payee, salt)`; the same triple
    /// can open a channel only once.
    #[derive(Debug, PartialEq, Eq)]
    struct OpenChannel {
        address from;
        address payee;
        uint256 amount;
        uint64 withdrawDelay;
        bytes32 salt;
        uint64 nonce;
        uint256 fee;
    }

    /// The payer `from` adds `amount` mUSD to its open channel `channelId` (refused once a
    /// withdraw was requested).
    #[derive(Debug, PartialEq, Eq)]
    struct TopUpChannel {
        address from;
        bytes32 channelId;
        uint256 amount;
        uint64 nonce;
        uint256 fee;
    }

    /// The payee `from` claims with the payer's voucher `(channelId, cumulative)` and its 65-byte
    /// signature: the channel pays the payee `cumulative` minus what was already claimed.
    #[derive(Debug, PartialEq, Eq)]
    struct ClaimChannel {
        address from;
        bytes32 channelId;
        uint256 cumulative;
        bytes voucherSignature;
        uint64 nonce;
        uint256 fee;
    }

    /// The payer `from` starts the withdraw delay of its channel `channelId`.
    #[derive(Debug, PartialEq, Eq)]
    struct RequestChannelWithdraw {
        address from;
        bytes32 channelId;
        uint64 nonce;
        uint256 fee;
    }

    /// The payer `from`, once the delay has passed, takes back the unclaimed rest of its channel
    /// `channelId`, which closes it.
    #[derive(Debug, PartialEq, Eq)]
    struct WithdrawChannel {
        address from;
        bytes32 channelId;
        uint64 nonce;
        uint256 fee;
    }
}

sol! {
    /// What a payer signs per call: "the payee may take up to `cumulative` mUSD base units in
    /// total from `channel`". Signed under mUSD's EIP-712 domain.
    #[derive(Debug, PartialEq, Eq)]
    struct ChannelVoucher {
        bytes32 channel;
        uint256 cumulative;
    }
}

/// The id of the channel `payer` opens to `payee` with `salt`:
/// `keccak256(abi.encode(address payer, address payee, bytes32 salt))`.
pub fn channel_id(payer: Address, payee: Address, salt: B256) -> B256 {
    keccak256((payer, payee, salt).abi_encode())
}

impl ChannelVoucher {
    /// The EIP-712 hash the payer signs on the chain `chain_id`.
    pub fn signing_hash(&self, chain_id: u64) -> B256 {
        self.eip712_signing_hash(&musd_domain(chain_id))
    }

    /// The address whose key signed this voucher on `chain_id` (65-byte `r‖s‖v`, low s).
    pub fn recover_signer(
        &self,
        chain_id: u64,
        signature: &[u8],
    ) -> Result<Address, AuthorizationSignatureError> {
        parse_signature(signature)?
            .recover_address_from_prehash(&self.signing_hash(chain_id))
            .map_err(|_| AuthorizationSignatureError::Unrecoverable)
    }
}

impl ClaimChannel {
    /// The voucher this claim carries.
    pub fn voucher(&self) -> ChannelVoucher {
        ChannelVoucher {
            channel: self.channelId,
            cumulative: self.cumulative,
        }
    }
}

fn addr(a: &Address) -> Value {
    Value::String(a.to_checksum(None))
}

impl super::incentive::MessageJson for OpenChannel {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "payee": addr(&self.payee),
               "amount": self.amount.to_string(), "withdrawDelay": self.withdrawDelay,
               "salt": self.salt.to_string(), "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(OpenChannel {
            from: field_address(m, "from")?,
            payee: field_address(m, "payee")?,
            amount: field_u256(m, "amount")?,
            withdrawDelay: field_u64(m, "withdrawDelay")?,
            salt: field_b256(m, "salt")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl super::incentive::MessageJson for TopUpChannel {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "channelId": self.channelId.to_string(),
               "amount": self.amount.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(TopUpChannel {
            from: field_address(m, "from")?,
            channelId: field_b256(m, "channelId")?,
            amount: field_u256(m, "amount")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl super::incentive::MessageJson for ClaimChannel {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "channelId": self.channelId.to_string(),
               "cumulative": self.cumulative.to_string(),
               "voucherSignature": format!("0x{}", hex::encode(&self.voucherSignature)),
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(ClaimChannel {
            from: field_address(m, "from")?,
            channelId: field_b256(m, "channelId")?,
            cumulative: field_u256(m, "cumulative")?,
            voucherSignature: field_bytes(m, "voucherSignature")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl super::incentive::MessageJson for RequestChannelWithdraw {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "channelId": self.channelId.to_string(),
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RequestChannelWithdraw {
            from: field_address(m, "from")?,
            channelId: field_b256(m, "channelId")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl super::incentive::MessageJson for WithdrawChannel {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "channelId": self.channelId.to_string(),
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(WithdrawChannel {
            from: field_address(m, "from")?,
            channelId: field_b256(m, "channelId")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{keys::dev_signer, SignedTx, TxKind};
    use alloy_primitives::{Bytes, U256};
    use alloy_signer::SignerSync;

    #[test]
    fn voucher_signature_recovers_the_payer_and_claims_round_trip() {
        let payer = dev_signer(1).unwrap();
        let payee = dev_signer(2).unwrap();
        let id = channel_id(payer.address(), payee.address(), B256::repeat_byte(7));
        assert_ne!(
            id,
            channel_id(payee.address(), payer.address(), B256::repeat_byte(7))
        );
        let voucher = ChannelVoucher {
            channel: id,
            cumulative: U256::from(12_345u64),
        };
        let sig = payer.sign_hash_sync(&voucher.signing_hash(1337)).unwrap();
        let sig_bytes = sig.as_bytes().to_vec();
        assert_eq!(
            voucher.recover_signer(1337, &sig_bytes).unwrap(),
            payer.address()
        );
        // Another chain or another amount recovers someone else.
        assert_ne!(
            voucher.recover_signer(1, &sig_bytes).unwrap(),
            payer.address()
        );
        let more = ChannelVoucher {
            cumulative: U256::from(12_346u64),
            ..voucher.clone()
        };
        assert_ne!(
            more.recover_signer(1337, &sig_bytes).unwrap(),
            payer.address()
        );

        let kind = TxKind::ClaimChannel(ClaimChannel {
            from: payee.address(),
            channelId: id,
            cumulative: voucher.cumulative,
            voucherSignature: Bytes::from(sig_bytes),
            nonce: 3,
            fee: U256::from(1000u64),
        });
        let tx = SignedTx::sign(kind, 1337, &payee).unwrap();
        assert_eq!(SignedTx::decode(&tx.encode()).unwrap(), tx);
        assert_eq!(SignedTx::from_json(&tx.to_json()).unwrap(), tx);
        assert_eq!(tx.encode()[1], 23);
        assert_eq!(tx.recover_signer(), Some(payee.address()));
    }

    #[test]
    fn every_session_kind_round_trips_through_bytes_and_json() {
        let payer = dev_signer(1).unwrap();
        let id = B256::repeat_byte(9);
        let fee = U256::from(1000u64);
        let from = payer.address();
        for (tag, kind) in [
            (
                21u8,
                TxKind::OpenChannel(OpenChannel {
                    from,
                    payee: Address::repeat_byte(2),
                    amount: U256::from(5u64),
                    withdrawDelay: 60,
                    salt: B256::repeat_byte(1),
                    nonce: 0,
                    fee,
                }),
            ),
            (
                22,
                TxKind::TopUpChannel(TopUpChannel {
                    from,
                    channelId: id,
                    amount: U256::from(5u64),
                    nonce: 1,
                    fee,
                }),
            ),
            (
                24,
                TxKind::RequestChannelWithdraw(RequestChannelWithdraw {
                    from,
                    channelId: id,
                    nonce: 2,
                    fee,
                }),
            ),
            (
                25,
                TxKind::WithdrawChannel(WithdrawChannel {
                    from,
                    channelId: id,
                    nonce: 3,
                    fee,
                }),
            ),
        ] {
            let tx = SignedTx::sign(kind, 1337, &payer).unwrap();
            assert_eq!(tx.encode()[1], tag);
            assert_eq!(SignedTx::decode(&tx.encode()).unwrap(), tx);
            assert_eq!(SignedTx::from_json(&tx.to_json()).unwrap(), tx);
            assert_eq!(tx.recover_signer(), Some(from));
        }
    }
}
