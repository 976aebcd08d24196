//! Transactions of the incentive layer: subnets, neurons, weights and stake.
//!
//! Who signs what: a *coldkey* is the account that holds MYC and owns hotkeys and stake; a
//! *hotkey* is the address a neuron (miner or validator) acts with. Kinds a coldkey signs
//! (`from` = coldkey): [`RegisterSubnet`], [`SetSubnetParams`], [`BurnedRegister`], [`AddStake`],
//! [`RemoveStake`]. Kinds a hotkey signs (`from` = hotkey): [`ServeEndpoint`], [`SetWeights`],
//! [`CommitWeights`], [`RevealWeights`]. Every kind's fee is paid in MYC by `from`.
//!
//! Prices (`limitPrice`) are MYC base units per whole alpha token (10^9 alpha base units), i.e.
//! the price times 10^9; `0` means no limit.
//!
//! The JSON `message` of each kind uses exactly the EIP-712 field names below. Integers may be
//! JSON numbers or decimal strings; 256-bit amounts leave as decimal strings; `bytes32` as 0x-hex.

use super::{field, field_address, field_b256, field_u256, field_u64, DecodeError};
use alloy_primitives::{keccak256, Address, B256};
use alloy_sol_types::{sol, SolValue};
use serde_json::{json, Value};

sol! {
    /// Creates a subnet. The coldkey `from` pays the current lock cost (refused if it is above
    /// `maxLockCost`), becomes the owner, and `hotkey` is registered as the subnet's UID 0 (never
    /// pruned). The subnet gets the next free netuid.
    #[derive(Debug, PartialEq, Eq)]
    struct RegisterSubnet {
        address from;
        address hotkey;
        uint256 maxLockCost;
        uint64 nonce;
        uint256 fee;
    }

    /// The owner of `netuid` sets hyperparameters: `names[i]` gets `values[i]` (booleans as 0/1).
    /// Each name at most once; every value is checked against its bounds before any is applied.
    #[derive(Debug, PartialEq, Eq)]
    struct SetSubnetParams {
        address from;
        uint16 netuid;
        string[] names;
        uint64[] values;
        uint64 nonce;
        uint256 fee;
    }

    /// The coldkey `from` burns the subnet's current registration burn (refused if above
    /// `maxBurn`) to register `hotkey` as a neuron of `netuid`.
    #[derive(Debug, PartialEq, Eq)]
    struct BurnedRegister {
        address from;
        uint16 netuid;
        address hotkey;
        uint256 maxBurn;
        uint64 nonce;
        uint256 fee;
    }

    /// The hotkey `from`, a neuron of `netuid`, announces where it serves: `host` (an IP address
    /// or DNS name), `port`, and `protocol` (e.g. `http`, `https`).
    #[derive(Debug, PartialEq, Eq)]
    struct ServeEndpoint {
        address from;
        uint16 netuid;
        string host;
        uint16 port;
        string protocol;
        uint64 nonce;
        uint256 fee;
    }

    /// The hotkey `from` sets its weights on `netuid`: weight `values[i]` on UID `uids[i]`.
    #[derive(Debug, PartialEq, Eq)]
    struct SetWeights {
        address from;
        uint16 netuid;
        uint16[] uids;
        uint16[] values;
        uint64 versionKey;
        uint64 nonce;
        uint256 fee;
    }

    /// The hotkey `from` commits to weights it reveals later: `commitHash` is
    /// [`weights_commit_hash`] of the weights, a secret salt and the version key.
    #[derive(Debug, PartialEq, Eq)]
    struct CommitWeights {
        address from;
        uint16 netuid;
        bytes32 commitHash;
        uint64 nonce;
        uint256 fee;
    }

    /// Reveals weights committed earlier with [`CommitWeights`].
    #[derive(Debug, PartialEq, Eq)]
    struct RevealWeights {
        address from;
        uint16 netuid;
        uint16[] uids;
        uint16[] values;
        bytes32 salt;
        uint64 versionKey;
        uint64 nonce;
        uint256 fee;
    }

    /// The coldkey `from` stakes `amount` MYC base units on `hotkey` in `netuid`: a swap of MYC
    /// for the subnet's alpha at the block's batch price, refused if that price is above
    /// `limitPrice` (0: no limit).
    #[derive(Debug, PartialEq, Eq)]
    struct AddStake {
        address from;
        address hotkey;
        uint16 netuid;
        uint256 amount;
        uint256 limitPrice;
        uint64 nonce;
        uint256 fee;
    }

    /// The coldkey `from` unstakes `amount` alpha base units from `hotkey` in `netuid`: a swap
    /// of alpha for MYC at the block's batch price, refused if that price is below `limitPrice`
    /// (0: no limit).
    #[derive(Debug, PartialEq, Eq)]
    struct RemoveStake {
        address from;
        address hotkey;
        uint16 netuid;
        uint256 amount;
        uint256 limitPrice;
        uint64 nonce;
        uint256 fee;
    }
}

/// The hash a [`CommitWeights`] commits to: `keccak256(abi.encode(address hotkey, uint16 netuid,
/// uint16[] uids, uint16[] values, bytes32 salt, uint64 versionKey))` — what viem's
/// `keccak256(encodeAbiParameters(...))` gives for the same values.
pub fn weights_commit_hash(
    hotkey: Address,
    netuid: u16,
    uids: &[u16],
    values: &[u16],
    salt: B256,
    version_key: u64,
) -> B256 {
    keccak256(
        (
            hotkey,
            netuid,
            uids.to_vec(),
            values.to_vec(),
            salt,
            version_key,
        )
            .abi_encode(),
    )
}

/// The JSON `message` form of an incentive kind, both ways.
pub(crate) trait MessageJson: Sized {
    fn to_message(&self) -> Value;
    fn from_message(message: &Value) -> Result<Self, DecodeError>;
}

fn addr(a: &Address) -> Value {
    Value::String(a.to_checksum(None))
}

pub(super) fn field_u16(message: &Value, name: &'static str) -> Result<u16, DecodeError> {
    let v = field_u64(message, name)?;
    u16::try_from(v).map_err(|_| DecodeError::Field {
        field: name,
        reason: format!("{v} does not fit in 16 bits (at most 65535)"),
    })
}

fn field_array<'a>(message: &'a Value, name: &'static str) -> Result<&'a Vec<Value>, DecodeError> {
    field(message, name)?.as_array().ok_or(DecodeError::Field {
        field: name,
        reason: "expected a JSON array".into(),
    })
}

/// Reads each element of an array field with `read` (which sees the element as the field `name`).
pub(super) fn field_list<T>(
    message: &Value,
    name: &'static str,
    read: fn(&Value, &'static str) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    field_array(message, name)?
        .iter()
        .map(|v| read(&json!({ name: v }), name))
        .collect()
}

pub(super) fn field_string(message: &Value, name: &'static str) -> Result<String, DecodeError> {
    field(message, name)?
        .as_str()
        .map(str::to_string)
        .ok_or(DecodeError::Field {
            field: name,
            reason: "expected a string".into(),
        })
}

impl MessageJson for RegisterSubnet {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "hotkey": addr(&self.hotkey),
               "maxLockCost": self.maxLockCost.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RegisterSubnet {
            from: field_address(m, "from")?,
            hotkey: field_address(m, "hotkey")?,
            maxLockCost: field_u256(m, "maxLockCost")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for SetSubnetParams {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "netuid": self.netuid, "names": self.names,
               "values": self.values, "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(SetSubnetParams {
            from: field_address(m, "from")?,
            netuid: field_u16(m, "netuid")?,
            names: field_list(m, "names", field_string)?,
            values: field_list(m, "values", field_u64)?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for BurnedRegister {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "netuid": self.netuid, "hotkey": addr(&self.hotkey),
               "maxBurn": self.maxBurn.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(BurnedRegister {
            from: field_address(m, "from")?,
            netuid: field_u16(m, "netuid")?,
            hotkey: field_address(m, "hotkey")?,
            maxBurn: field_u256(m, "maxBurn")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for ServeEndpoint {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "netuid": self.netuid, "host": self.host,
               "port": self.port, "protocol": self.protocol, "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(ServeEndpoint {
            from: field_address(m, "from")?,
            netuid: field_u16(m, "netuid")?,
            host: field_string(m, "host")?,
            port: field_u16(m, "port")?,
            protocol: field_string(m, "protocol")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for SetWeights {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "netuid": self.netuid, "uids": self.uids,
               "values": self.values, "versionKey": self.versionKey, "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(SetWeights {
            from: field_address(m, "from")?,
            netuid: field_u16(m, "netuid")?,
            uids: field_list(m, "uids", field_u16)?,
            values: field_list(m, "values", field_u16)?,
            versionKey: field_u64(m, "versionKey")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for CommitWeights {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "netuid": self.netuid,
               "commitHash": self.commitHash.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(CommitWeights {
            from: field_address(m, "from")?,
            netuid: field_u16(m, "netuid")?,
            commitHash: field_b256(m, "commitHash")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for RevealWeights {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "netuid": self.netuid, "uids": self.uids,
               "values": self.values, "salt": self.salt.to_string(),
               "versionKey": self.versionKey, "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RevealWeights {
            from: field_address(m, "from")?,
            netuid: field_u16(m, "netuid")?,
            uids: field_list(m, "uids", field_u16)?,
            values: field_list(m, "values", field_u16)?,
            salt: field_b256(m, "salt")?,
            versionKey: field_u64(m, "versionKey")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for AddStake {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "hotkey": addr(&self.hotkey), "netuid": self.netuid,
               "amount": self.amount.to_string(), "limitPrice": self.limitPrice.to_string(),
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(AddStake {
            from: field_address(m, "from")?,
            hotkey: field_address(m, "hotkey")?,
            netuid: field_u16(m, "netuid")?,
            amount: field_u256(m, "amount")?,
            limitPrice: field_u256(m, "limitPrice")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for RemoveStake {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "hotkey": addr(&self.hotkey), "netuid": self.netuid,
               "amount": self.amount.to_string(), "limitPrice": self.limitPrice.to_string(),
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RemoveStake {
            from: field_address(m, "from")?,
            hotkey: field_address(m, "hotkey")?,
            netuid: field_u16(m, "netuid")?,
            amount: field_u256(m, "amount")?,
            limitPrice: field_u256(m, "limitPrice")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SignedTx, TxKind};
    use super::*;
    use crate::keys::dev_signer;
    use alloy_primitives::U256;

    fn every_kind(from: Address) -> Vec<TxKind> {
        let hot = Address::repeat_byte(0x33);
        let fee = U256::from(10_000u64);
        vec![
            TxKind::RegisterSubnet(RegisterSubnet {
                from,
                hotkey: hot,
                maxLockCost: U256::from(10u64).pow(U256::from(12u64)),
                nonce: 0,
                fee,
            }),
            TxKind::SetSubnetParams(SetSubnetParams {
                from,
                netuid: 1,
                names: vec!["tempo".into(), "yuma3".into()],
                values: vec![10, 1],
                nonce: 1,
                fee,
            }),
            TxKind::BurnedRegister(BurnedRegister {
                from,
                netuid: 1,
                hotkey: hot,
                maxBurn: U256::from(5u64),
                nonce: 2,
                fee,
            }),
            TxKind::ServeEndpoint(ServeEndpoint {
                from,
                netuid: 1,
                host: "127.0.0.1".into(),
                port: 8080,
                protocol: "http".into(),
                nonce: 3,
                fee,
            }),
            TxKind::SetWeights(SetWeights {
                from,
                netuid: 1,
                uids: vec![0, 2],
                values: vec![65535, 7],
                versionKey: 4,
                nonce: 4,
                fee,
            }),
            TxKind::CommitWeights(CommitWeights {
                from,
                netuid: 1,
                commitHash: B256::repeat_byte(9),
                nonce: 5,
                fee,
            }),
            TxKind::RevealWeights(RevealWeights {
                from,
                netuid: 1,
                uids: vec![1],
                values: vec![1],
                salt: B256::repeat_byte(7),
                versionKey: 0,
                nonce: 6,
                fee,
            }),
            TxKind::AddStake(AddStake {
                from,
                hotkey: hot,
                netuid: 1,
                amount: U256::from(1_000_000_000u64),
                limitPrice: U256::ZERO,
                nonce: 7,
                fee,
            }),
            TxKind::RemoveStake(RemoveStake {
                from,
                hotkey: hot,
                netuid: 1,
                amount: U256::from(5u64),
                limitPrice: U256::from(1u64),
                nonce: 8,
                fee,
            }),
        ]
    }

    #[test]
    fn every_kind_round_trips_binary_json_and_typed_data() {
        let signer = dev_signer(3).unwrap();
        let mut tags = std::collections::BTreeSet::new();
        for kind in every_kind(signer.address()) {
            assert!((2..20).contains(&kind.tag()), "{} tag", kind.type_name());
            assert!(tags.insert(kind.tag()), "tag {} reused", kind.tag());
            super::super::assert_kind_round_trips(&kind, &signer);
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        let signer = dev_signer(3).unwrap();
        let kind = every_kind(signer.address()).remove(4);
        let mut json = SignedTx::sign(kind, 1337, &signer).unwrap().to_json();
        json.message["uids"] = json!([1, 70000]);
        let err = SignedTx::from_json(&json).unwrap_err();
        assert!(err.to_string().contains("uids"), "{err}");
        json.message["uids"] = json!("0,1");
        let err = SignedTx::from_json(&json).unwrap_err();
        assert!(err.to_string().contains("array"), "{err}");
    }

    #[test]
    fn commit_hash_binds_every_input() {
        let h = |salt: u8, v: u16, key: u64| {
            weights_commit_hash(
                Address::repeat_byte(1),
                1,
                &[0, 1],
                &[v, 1],
                B256::repeat_byte(salt),
                key,
            )
        };
        assert_eq!(h(1, 5, 0), h(1, 5, 0));
        assert_ne!(h(1, 5, 0), h(2, 5, 0));
        assert_ne!(h(1, 5, 0), h(1, 6, 0));
        assert_ne!(h(1, 5, 0), h(1, 5, 1));
    }
}
