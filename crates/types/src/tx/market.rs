//! Transactions of the compute market (the rules are in `mycel_state::market`).
//!
//! [`RegisterProvider`] offers a machine (again: new attributes, which clears its attestations);
//! [`AttestProvider`] is an auditor vouching for a provider's attributes. [`CreateDeployment`]
//! asks for resources, escrows `deposit` mUSD and opens an order; providers [`PlaceBid`] a price
//! per block with a MYC deposit; the owner [`AcceptBid`]s one (a lease). [`TopUpDeployment`] adds
//! escrow (and resumes a paused lease); [`WithdrawLease`] pays the provider what its lease earned;
//! [`CloseDeployment`] (the owner) and [`CloseLease`] (the provider; the order reopens) end it;
//! [`SetLeaseEndpoint`] is where the provider serves the deployment; [`ReportLeaseHealth`] is the
//! owner's health check of it (a lease reported down for long enough ends for provider failure).

use super::agents::field_bool;
use super::incentive::{field_string, MessageJson};
use super::{field_address, field_b256, field_bytes, field_u256, field_u64, DecodeError};
use alloy_primitives::Address;
use alloy_sol_types::sol;
use serde_json::{json, Value};

sol! {
    /// `from` offers a machine: `cores`, `memoryMib`, `diskMib` in all, in `region`.
    #[derive(Debug, PartialEq, Eq)]
    struct RegisterProvider {
        address from;
        string endpoint;
        string region;
        string cpuModel;
        uint64 cores;
        uint64 memoryMib;
        uint64 diskMib;
        uint64 nonce;
        uint256 fee;
    }

    /// `from` attests `provider`'s current attributes.
    #[derive(Debug, PartialEq, Eq)]
    struct AttestProvider {
        address from;
        address provider;
        uint64 nonce;
        uint256 fee;
    }

    /// `from` deploys `manifest` (its SHA-256; `model` a blob id or zero) on a provider with the
    /// resources asked, in `region` (empty: any), attested by every one of `auditors` (20 bytes
    /// each), paying at most `maxPrice` mUSD per block; `deposit` mUSD goes into its escrow.
    #[derive(Debug, PartialEq, Eq)]
    struct CreateDeployment {
        address from;
        bytes32 manifest;
        bytes32 model;
        uint64 cores;
        uint64 memoryMib;
        uint64 diskMib;
        string region;
        bytes auditors;
        uint256 maxPrice;
        uint256 deposit;
        uint64 nonce;
        uint256 fee;
    }

    /// Provider `from` bids `price` mUSD per block on `deployment`, locking `deposit` MYC, open
    /// for `ttl` blocks. Bidding again replaces its bid.
    #[derive(Debug, PartialEq, Eq)]
    struct PlaceBid {
        address from;
        uint64 deployment;
        uint256 price;
        uint256 deposit;
        uint64 ttl;
        uint64 nonce;
        uint256 fee;
    }

    /// The owner accepts `provider`'s open bid: a lease.
    #[derive(Debug, PartialEq, Eq)]
    struct AcceptBid {
        address from;
        uint64 deployment;
        address provider;
        uint64 nonce;
        uint256 fee;
    }

    /// Anyone adds `amount` mUSD to `deployment`'s escrow.
    #[derive(Debug, PartialEq, Eq)]
    struct TopUpDeployment {
        address from;
        uint64 deployment;
        uint256 amount;
        uint64 nonce;
        uint256 fee;
    }

    /// The lease's provider takes what it has earned so far.
    #[derive(Debug, PartialEq, Eq)]
    struct WithdrawLease {
        address from;
        uint64 deployment;
        uint64 nonce;
        uint256 fee;
    }

    /// The owner ends `deployment`: the lease is paid to now, the rest of the escrow refunded.
    #[derive(Debug, PartialEq, Eq)]
    struct CloseDeployment {
        address from;
        uint64 deployment;
        uint64 nonce;
        uint256 fee;
    }

    /// The lease's provider ends its lease (paid to now); the order reopens for bids.
    #[derive(Debug, PartialEq, Eq)]
    struct CloseLease {
        address from;
        uint64 deployment;
        uint64 nonce;
        uint256 fee;
    }

    /// The lease's provider publishes where the deployment is served (an `http(s)` URL; empty:
    /// not served now).
    #[derive(Debug, PartialEq, Eq)]
    struct SetLeaseEndpoint {
        address from;
        uint64 deployment;
        string endpoint;
        uint64 nonce;
        uint256 fee;
    }

    /// The owner's health check of its lease: `serving` false reports it down (a second report
    /// `failure_blocks` or more later ends the lease for provider failure), true clears that.
    #[derive(Debug, PartialEq, Eq)]
    struct ReportLeaseHealth {
        address from;
        uint64 deployment;
        bool serving;
        uint64 nonce;
        uint256 fee;
    }
}

fn addr(a: &Address) -> Value {
    Value::String(a.to_checksum(None))
}

impl MessageJson for RegisterProvider {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "endpoint": self.endpoint, "region": self.region,
               "cpuModel": self.cpuModel, "cores": self.cores, "memoryMib": self.memoryMib,
               "diskMib": self.diskMib, "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RegisterProvider {
            from: field_address(m, "from")?,
            endpoint: field_string(m, "endpoint")?,
            region: field_string(m, "region")?,
            cpuModel: field_string(m, "cpuModel")?,
            cores: field_u64(m, "cores")?,
            memoryMib: field_u64(m, "memoryMib")?,
            diskMib: field_u64(m, "diskMib")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for AttestProvider {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "provider": addr(&self.provider), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(AttestProvider {
            from: field_address(m, "from")?,
            provider: field_address(m, "provider")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for CreateDeployment {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "manifest": self.manifest.to_string(),
               "model": self.model.to_string(), "cores": self.cores, "memoryMib": self.memoryMib,
               "diskMib": self.diskMib, "region": self.region,
               "auditors": self.auditors.to_string(), "maxPrice": self.maxPrice.to_string(),
               "deposit": self.deposit.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(CreateDeployment {
            from: field_address(m, "from")?,
            manifest: field_b256(m, "manifest")?,
            model: field_b256(m, "model")?,
            cores: field_u64(m, "cores")?,
            memoryMib: field_u64(m, "memoryMib")?,
            diskMib: field_u64(m, "diskMib")?,
            region: field_string(m, "region")?,
            auditors: field_bytes(m, "auditors")?,
            maxPrice: field_u256(m, "maxPrice")?,
            deposit: field_u256(m, "deposit")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for PlaceBid {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "deployment": self.deployment,
               "price": self.price.to_string(), "deposit": self.deposit.to_string(),
               "ttl": self.ttl, "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(PlaceBid {
            from: field_address(m, "from")?,
            deployment: field_u64(m, "deployment")?,
            price: field_u256(m, "price")?,
            deposit: field_u256(m, "deposit")?,
            ttl: field_u64(m, "ttl")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for AcceptBid {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "deployment": self.deployment,
               "provider": addr(&self.provider), "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(AcceptBid {
            from: field_address(m, "from")?,
            deployment: field_u64(m, "deployment")?,
            provider: field_address(m, "provider")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for TopUpDeployment {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "deployment": self.deployment,
               "amount": self.amount.to_string(), "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(TopUpDeployment {
            from: field_address(m, "from")?,
            deployment: field_u64(m, "deployment")?,
            amount: field_u256(m, "amount")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

/// The three market transactions that name only a deployment.
macro_rules! deployment_only {
    ($($kind:ident),+) => {$(
        impl MessageJson for $kind {
            fn to_message(&self) -> Value {
                json!({"from": addr(&self.from), "deployment": self.deployment,
                       "nonce": self.nonce, "fee": self.fee.to_string()})
            }
            fn from_message(m: &Value) -> Result<Self, DecodeError> {
                Ok($kind {
                    from: field_address(m, "from")?,
                    deployment: field_u64(m, "deployment")?,
                    nonce: field_u64(m, "nonce")?,
                    fee: field_u256(m, "fee")?,
                })
            }
        }
    )+};
}

deployment_only!(WithdrawLease, CloseDeployment, CloseLease);

impl MessageJson for SetLeaseEndpoint {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "deployment": self.deployment,
               "endpoint": self.endpoint, "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(SetLeaseEndpoint {
            from: field_address(m, "from")?,
            deployment: field_u64(m, "deployment")?,
            endpoint: field_string(m, "endpoint")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for ReportLeaseHealth {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "deployment": self.deployment,
               "serving": self.serving, "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(ReportLeaseHealth {
            from: field_address(m, "from")?,
            deployment: field_u64(m, "deployment")?,
            serving: field_bool(m, "serving")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::dev_signer;
    use crate::tx::{SignedTx, TxKind};
    use alloy_primitives::{B256, U256};

    fn every_kind(from: Address) -> Vec<TxKind> {
        let fee = U256::from(1_000u64);
        let (deployment, nonce) = (7u64, 3u64);
        vec![
            TxKind::RegisterProvider(RegisterProvider {
                from,
                endpoint: "http://127.0.0.1:8300".into(),
                region: "eu".into(),
                cpuModel: "Xeon".into(),
                cores: 2,
                memoryMib: 4096,
                diskMib: 10_000,
                nonce,
                fee,
            }),
            TxKind::AttestProvider(AttestProvider {
                from,
                provider: Address::repeat_byte(9),
                nonce,
                fee,
            }),
            TxKind::CreateDeployment(CreateDeployment {
                from,
                manifest: B256::repeat_byte(1),
                model: B256::repeat_byte(2),
                cores: 1,
                memoryMib: 512,
                diskMib: 300,
                region: String::new(),
                auditors: vec![7u8; 20].into(),
                maxPrice: U256::from(5u64),
                deposit: U256::from(500u64),
                nonce,
                fee,
            }),
            TxKind::PlaceBid(PlaceBid {
                from,
                deployment,
                price: U256::from(4u64),
                deposit: U256::from(10u64),
                ttl: 300,
                nonce,
                fee,
            }),
            TxKind::AcceptBid(AcceptBid {
                from,
                deployment,
                provider: Address::repeat_byte(9),
                nonce,
                fee,
            }),
            TxKind::TopUpDeployment(TopUpDeployment {
                from,
                deployment,
                amount: U256::from(100u64),
                nonce,
                fee,
            }),
            TxKind::WithdrawLease(WithdrawLease {
                from,
                deployment,
                nonce,
                fee,
            }),
            TxKind::CloseDeployment(CloseDeployment {
                from,
                deployment,
                nonce,
                fee,
            }),
            TxKind::CloseLease(CloseLease {
                from,
                deployment,
                nonce,
                fee,
            }),
            TxKind::SetLeaseEndpoint(SetLeaseEndpoint {
                from,
                deployment,
                endpoint: "http://127.0.0.1:8301".into(),
                nonce,
                fee,
            }),
            TxKind::ReportLeaseHealth(ReportLeaseHealth {
                from,
                deployment,
                serving: false,
                nonce,
                fee,
            }),
        ]
    }

    #[test]
    fn every_market_kind_round_trips_through_bytes_json_and_typed_data() {
        let signer = dev_signer(2).unwrap();
        let kinds = every_kind(signer.address());
        let tags: std::collections::BTreeSet<u8> = kinds.iter().map(|k| k.tag()).collect();
        assert_eq!(
            tags,
            (80..=90).collect(),
            "market tags are 80 to 90, each once"
        );
        for kind in &kinds {
            crate::tx::assert_kind_round_trips(kind, &signer);
        }
    }

    #[test]
    fn a_health_report_needs_a_boolean() {
        let signer = dev_signer(2).unwrap();
        let kind = every_kind(signer.address()).pop().unwrap();
        let mut json = SignedTx::sign(kind, 1337, &signer).unwrap().to_json();
        json.message["serving"] = json!("no");
        let err = SignedTx::from_json(&json).unwrap_err();
        assert!(err.to_string().contains("serving"), "{err}");
    }
}
