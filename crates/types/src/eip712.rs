//! The `types` map of EIP-712 typed-data JSON (what `eth_signTypedData_v4`, viem and eth_account
//! take), for transactions and receipts alike.
//!
//! mycel declares every EIP-712 struct once with `sol!`; the JSON `types` map is not written by
//! hand or parsed out of an `encodeType` string here, but resolved by alloy's EIP-712 resolver
//! from the struct's own declaration, so the JSON a wallet signs and the hash mycel computes come
//! from one definition.

use alloy_dyn_abi::eip712::Resolver;
use alloy_sol_types::{Eip712Domain, SolStruct};

/// The `types` entries of the struct `S` and of every struct it contains (not `EIP712Domain`):
/// `{"Name": [{"name": field, "type": solidity type}, ...], ...}`, fields in declaration order.
pub fn struct_types<S: SolStruct>() -> serde_json::Value {
    resolver_json(&Resolver::from_struct::<S>())
}

/// The whole `types` map of typed data whose primary type is `S` under `domain`: the entries of
/// [`struct_types`] and `EIP712Domain` ([`domain_types`]).
pub fn typed_data_types<S: SolStruct>(domain: &Eip712Domain) -> serde_json::Value {
    let mut types = struct_types::<S>();
    types["EIP712Domain"] = domain_types(domain);
    types
}

/// The `EIP712Domain` entry for `domain`: the fields it sets, in EIP-712's order.
pub fn domain_types(domain: &Eip712Domain) -> serde_json::Value {
    let mut resolver = Resolver::default();
    // The domain's encodeType is built by alloy from its own fields; it always parses.
    resolver
        .ingest_string(domain.encode_type())
        .expect("alloy parses the encodeType of its own domain");
    resolver_json(&resolver)["EIP712Domain"].take()
}

fn resolver_json(resolver: &Resolver) -> serde_json::Value {
    // A map of strings to lists of string pairs always serializes.
    serde_json::to_value(resolver).expect("EIP-712 types serialize to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    alloy_sol_types::sol! {
        struct Item {
            string label;
            uint32 count;
        }

        struct Order {
            uint16 id;
            address buyer;
            Item[] items;
            bytes memo;
        }
    }

    #[test]
    fn nested_structs_resolve_in_declaration_order() {
        assert_eq!(
            struct_types::<Order>(),
            serde_json::json!({
                "Order": [
                    {"name": "id", "type": "uint16"},
                    {"name": "buyer", "type": "address"},
                    {"name": "items", "type": "Item[]"},
                    {"name": "memo", "type": "bytes"},
                ],
                "Item": [
                    {"name": "label", "type": "string"},
                    {"name": "count", "type": "uint32"},
                ],
            })
        );
    }

    #[test]
    fn typed_data_types_add_the_domain() {
        let domain = Eip712Domain {
            name: Some(Cow::Borrowed("d")),
            version: Some(Cow::Borrowed("1")),
            chain_id: Some(alloy_primitives::U256::from(7u64)),
            verifying_contract: None,
            salt: None,
        };
        let types = typed_data_types::<Item>(&domain);
        assert_eq!(
            types["EIP712Domain"],
            serde_json::json!([
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ])
        );
        assert_eq!(types["Item"], struct_types::<Item>()["Item"]);
        assert_eq!(types.as_object().map(|m| m.len()), Some(2));
    }
}
