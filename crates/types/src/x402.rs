//! x402 wire types (v2, and v1 where it differs) for the "exact" scheme on EVM, and their
//! base64 header encoding.
//!
//! Field names and shapes follow the x402 v2 specification and the `@x402/core` TypeScript types:
//! camelCase JSON, numbers as decimal strings, the EIP-3009 nonce as 0x-hex bytes32. Headers carry
//! standard base64 (with padding) of the JSON.

use base64::Engine as _;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// v2 request header: the client's payment.
pub const PAYMENT_SIGNATURE: &str = "payment-signature";
/// v2 response header of a 402: what to pay.
pub const PAYMENT_REQUIRED: &str = "payment-required";
/// v2 response header: the settlement result.
pub const PAYMENT_RESPONSE: &str = "payment-response";
/// v1 request header: the client's payment.
pub const X_PAYMENT: &str = "x-payment";
/// v1 response header: the settlement result.
pub const X_PAYMENT_RESPONSE: &str = "x-payment-response";

/// mycel's payment sessions: the request header that carries a cumulative voucher
/// ([`SessionVoucher`]).
pub const SESSION_HEADER: &str = "x-mycel-session";
/// The response header: `base64(JSON {"channel", "cumulative", "price"})` of the accepted voucher.
pub const SESSION_RESPONSE_HEADER: &str = "x-mycel-session-response";

/// The only scheme mycel settles.
pub const SCHEME_EXACT: &str = "exact";

/// What a v2 server asks to be paid, one entry of `accepts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirements {
    pub scheme: String,
    /// CAIP-2 network id, `eip155:<chain id>`.
    pub network: String,
    /// Atomic units of `asset`, decimal string.
    pub amount: String,
    pub asset: String,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    /// The token's EIP-712 domain `{name, version}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}

/// What a v1 server asks to be paid (requirements in the 402 body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirementsV1 {
    pub scheme: String,
    pub network: String,
    pub max_amount_required: String,
    pub resource: String,
    pub description: String,
    pub mime_type: String,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    pub asset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}

impl PaymentRequirements {
    /// The "exact" EIP-3009 requirements for `amount` base units of the token at `asset`
    /// (EIP-712 domain `name`, `version`) on chain `chain_id`, paid to `pay_to`.
    pub fn exact(
        chain_id: u64,
        asset: alloy_primitives::Address,
        (name, version): (&str, &str),
        amount: u128,
        pay_to: alloy_primitives::Address,
        max_timeout_seconds: u64,
    ) -> PaymentRequirements {
        PaymentRequirements {
            scheme: SCHEME_EXACT.to_string(),
            network: format!("eip155:{chain_id}"),
            amount: amount.to_string(),
            asset: asset.to_checksum(None),
            pay_to: pay_to.to_checksum(None),
            max_timeout_seconds,
            extra: Some(serde_json::json!({"name": name, "version": version})),
        }
    }

    /// The v1 form of these requirements for the resource `url`.
    pub fn to_v1(&self, url: &str, description: &str, mime_type: &str) -> PaymentRequirementsV1 {
        PaymentRequirementsV1 {
            scheme: self.scheme.clone(),
            network: self.network.clone(),
            max_amount_required: self.amount.clone(),
            resource: url.to_string(),
            description: description.to_string(),
            mime_type: mime_type.to_string(),
            pay_to: self.pay_to.clone(),
            max_timeout_seconds: self.max_timeout_seconds,
            asset: self.asset.clone(),
            extra: self.extra.clone(),
        }
    }
}

impl PaymentRequirementsV1 {
    /// The v2 form (v1's `maxAmountRequired` is the exact amount for the "exact" scheme).
    pub fn to_v2(&self) -> PaymentRequirements {
        PaymentRequirements {
            scheme: self.scheme.clone(),
            network: self.network.clone(),
            amount: self.max_amount_required.clone(),
            asset: self.asset.clone(),
            pay_to: self.pay_to.clone(),
            max_timeout_seconds: self.max_timeout_seconds,
            extra: self.extra.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// The v2 402 answer (base64 JSON in `PAYMENT-REQUIRED`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequired {
    pub x402_version: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub resource: ResourceInfo,
    pub accepts: Vec<PaymentRequirements>,
}

/// The v1 402 answer (JSON body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequiredV1 {
    pub x402_version: u8,
    pub error: String,
    pub accepts: Vec<PaymentRequirementsV1>,
}

/// EIP-3009 authorization fields as the exact EVM scheme sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationJson {
    pub from: String,
    pub to: String,
    pub value: String,
    pub valid_after: String,
    pub valid_before: String,
    pub nonce: String,
}

/// The exact EVM scheme's payload: the signed authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactEvmPayload {
    pub signature: String,
    pub authorization: AuthorizationJson,
}

/// A v2 payment (base64 JSON in `PAYMENT-SIGNATURE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayload {
    pub x402_version: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    pub accepted: PaymentRequirements,
    pub payload: ExactEvmPayload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Value>,
}

/// A v1 payment (base64 JSON in `X-PAYMENT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayloadV1 {
    pub x402_version: u8,
    pub scheme: String,
    pub network: String,
    pub payload: ExactEvmPayload,
}

/// A payment in either version, as the facilitator checks it: the requirements the client says
/// it accepted (for v1, its scheme and network only) and the signed authorization.
// v2 carries the accepted requirements, v1 does not; one short-lived value per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AnyPayment {
    V1(PaymentPayloadV1),
    V2(PaymentPayload),
}

impl AnyPayment {
    pub fn version(&self) -> u8 {
        match self {
            AnyPayment::V1(_) => 1,
            AnyPayment::V2(_) => 2,
        }
    }

    pub fn scheme(&self) -> &str {
        match self {
            AnyPayment::V1(p) => &p.scheme,
            AnyPayment::V2(p) => &p.accepted.scheme,
        }
    }

    pub fn network(&self) -> &str {
        match self {
            AnyPayment::V1(p) => &p.network,
            AnyPayment::V2(p) => &p.accepted.network,
        }
    }

    pub fn payload(&self) -> &ExactEvmPayload {
        match self {
            AnyPayment::V1(p) => &p.payload,
            AnyPayment::V2(p) => &p.payload,
        }
    }

    /// Reads a payment of either version from JSON, by its `x402Version`.
    pub fn from_json(value: &Value) -> Result<AnyPayment, WireError> {
        match value.get("x402Version").and_then(Value::as_u64) {
            Some(1) => from_value(value).map(AnyPayment::V1),
            Some(2) => from_value(value).map(AnyPayment::V2),
            Some(other) => Err(WireError::Version(other)),
            None => Err(WireError::Json(
                "payment has no numeric x402Version".to_string(),
            )),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            AnyPayment::V1(p) => serde_json::to_value(p),
            AnyPayment::V2(p) => serde_json::to_value(p),
        }
        .unwrap_or(Value::Null)
    }
}

/// `POST /verify` and `POST /settle` request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FacilitatorRequest {
    pub x402_version: u8,
    pub payment_payload: Value,
    pub payment_requirements: Value,
}

/// `POST /verify` answer. An invalid payment is still HTTP 200, with `isValid: false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    pub is_valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
}

/// `POST /settle` answer, and the JSON in `PAYMENT-RESPONSE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// The settlement transaction's hash ("" when nothing was submitted).
    pub transaction: String,
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
}

/// One (version, scheme, network) a facilitator settles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SupportedKind {
    pub x402_version: u8,
    pub scheme: String,
    pub network: String,
}

/// `GET /supported` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportedResponse {
    pub kinds: Vec<SupportedKind>,
    pub extensions: Vec<String>,
    pub signers: BTreeMap<String, Vec<String>>,
}

/// Why a header or body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("header is not standard base64: {0}")]
    Base64(String),
    #[error("payment JSON does not parse: {0}")]
    Json(String),
    #[error("x402Version {0} is not supported (this server speaks 1 and 2)")]
    Version(u64),
}

/// Standard base64 (with padding) of `value`'s JSON.
pub fn encode_header<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// The JSON inside a base64 header (standard alphabet; padding optional; URL-safe accepted too).
pub fn decode_header_json(header: &str) -> Result<Value, WireError> {
    let trimmed = header.trim();
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let bytes = engines
        .iter()
        .find_map(|engine| engine.decode(trimmed).ok())
        .ok_or_else(|| WireError::Base64(format!("{} characters", trimmed.len())))?;
    serde_json::from_slice(&bytes).map_err(|e| WireError::Json(e.to_string()))
}

/// Decodes a base64 header into `T`.
pub fn decode_header<T: DeserializeOwned>(header: &str) -> Result<T, WireError> {
    from_value(&decode_header_json(header)?)
}

fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, WireError> {
    serde_json::from_value(value.clone()).map_err(|e| WireError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PAYMENT-SIGNATURE example of the x402 v2 HTTP transport spec.
    const SPEC_PAYMENT_SIGNATURE: &str = "eyJ4NDAyVmVyc2lvbiI6MiwicmVzb3VyY2UiOnsidXJsIjoiaHR0cHM6Ly9hcGkuZXhhbXBsZS5jb20vcHJlbWl1bS1kYXRhIiwiZGVzY3JpcHRpb24iOiJBY2Nlc3MgdG8gcHJlbWl1bSBtYXJrZXQgZGF0YSIsIm1pbWVUeXBlIjoiYXBwbGljYXRpb24vanNvbiJ9LCJhY2NlcHRlZCI6eyJzY2hlbWUiOiJleGFjdCIsIm5ldHdvcmsiOiJlaXAxNTU6ODQ1MzIiLCJhbW91bnQiOiIxMDAwMCIsImFzc2V0IjoiMHgwMzZDYkQ1Mzg0MmM1NDI2NjM0ZTc5Mjk1NDFlQzIzMThmM2RDRjdlIiwicGF5VG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJtYXhUaW1lb3V0U2Vjb25kcyI6NjAsImV4dHJhIjp7Im5hbWUiOiJVU0RDIiwidmVyc2lvbiI6IjIifX0sInBheWxvYWQiOnsic2lnbmF0dXJlIjoiMHgyZDZhNzU4OGQ2YWNjYTUwNWNiZjBkOWE0YTIyN2UwYzUyYzZjMzQwMDhjOGU4OTg2YTEyODMyNTk3NjQxNzM2MDhhMmNlNjQ5NjY0MmUzNzdkNmRhOGRiYmY1ODM2ZTliZDE1MDkyZjllY2FiMDVkZWQzZDYyOTNhZjE0OGI1NzFjIiwiYXV0aG9yaXphdGlvbiI6eyJmcm9tIjoiMHg4NTdiMDY1MTlFOTFlM0E1NDUzODc5MWJEYmIwRTIyMzczZTM2YjY2IiwidG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJ2YWx1ZSI6IjEwMDAwIiwidmFsaWRBZnRlciI6IjE3NDA2NzIwODkiLCJ2YWxpZEJlZm9yZSI6IjE3NDA2NzIxNTQiLCJub25jZSI6IjB4ZjM3NDY2MTNjMmQ5MjBiNWZkYWJjMDg1NmYyYWViMmQ0Zjg4ZWU2MDM3YjhjYzVkMDRhNzFhNDQ2MmYxMzQ4MCJ9fX0=";

    #[test]
    fn reads_the_spec_payment_signature_header() {
        let value = decode_header_json(SPEC_PAYMENT_SIGNATURE).unwrap();
        let AnyPayment::V2(p) = AnyPayment::from_json(&value).unwrap() else {
            panic!("v2 expected")
        };
        assert_eq!(p.accepted.network, "eip155:84532");
        assert_eq!(p.accepted.amount, "10000");
        assert_eq!(
            p.payload.authorization.from,
            "0x857b06519E91e3A54538791bDbb0E22373e36b66"
        );
        // Re-encoding keeps every field (the reference matches `accepted` by deep equality).
        assert_eq!(decode_header_json(&encode_header(&p)).unwrap(), value);
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        assert!(matches!(
            decode_header_json("not base64 at all!"),
            Err(WireError::Base64(_))
        ));
        let not_json = base64::engine::general_purpose::STANDARD.encode(b"hello");
        assert!(matches!(
            decode_header_json(&not_json),
            Err(WireError::Json(_))
        ));
        let v3 = serde_json::json!({"x402Version": 3});
        assert_eq!(AnyPayment::from_json(&v3), Err(WireError::Version(3)));
    }
}

/// A payment session's voucher as a client sends it (base64 JSON in [`SESSION_HEADER`]): "the
/// payee may take up to `cumulative` mUSD base units from `channel` in total".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionVoucher {
    /// The channel id, 0x + 32 bytes.
    pub channel: alloy_primitives::B256,
    /// Cumulative mUSD base units, a decimal string.
    pub cumulative: String,
    /// 0x + 65 bytes `r‖s‖v` over `ChannelVoucher(channel, cumulative)` under mUSD's domain.
    pub signature: String,
}

impl SessionVoucher {
    /// Signs the voucher `(channel, cumulative)` with the payer's key.
    pub fn sign(
        payer: &alloy_signer_local::PrivateKeySigner,
        chain_id: u64,
        channel: alloy_primitives::B256,
        cumulative: crate::Amount,
    ) -> SessionVoucher {
        use alloy_signer::SignerSync;
        let voucher = crate::ChannelVoucher {
            channel,
            cumulative: alloy_primitives::U256::from(cumulative),
        };
        let signature = payer
            .sign_hash_sync(&voucher.signing_hash(chain_id))
            .expect("a local key signs");
        SessionVoucher {
            channel,
            cumulative: cumulative.to_string(),
            signature: format!("0x{}", hex::encode(signature.as_bytes())),
        }
    }

    /// The header value.
    pub fn to_header(&self) -> String {
        encode_header(self)
    }
}

/// x402 discovery ("Bazaar"): `GET /discovery/resources` lists what a server sells, filtered
/// and paged by the server (beyond the public catalogues, which filter by type only).
pub mod discovery {
    use super::PaymentRequirements;
    use serde::{Deserialize, Serialize};
    use serde_json::Value;
    use std::collections::BTreeMap;

    /// Items per page when the query does not say, and the most a page holds.
    pub const DEFAULT_LIMIT: usize = 20;
    pub const MAX_LIMIT: usize = 100;

    /// One resource for sale.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Item {
        /// Where it is called: a URL (for an MCP tool, the server's endpoint; the tool's name is
        /// in `metadata.tool`).
        pub resource: String,
        /// "http", "mcp" or "a2a".
        #[serde(rename = "type")]
        pub kind: String,
        pub x402_version: u8,
        /// What one call costs (empty when the price is asked per call).
        pub accepts: Vec<PaymentRequirements>,
        /// RFC 3339.
        pub last_updated: String,
        pub metadata: Value,
    }

    /// The answer.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Page {
        pub x402_version: u8,
        pub items: Vec<Item>,
        pub pagination: Pagination,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Pagination {
        pub limit: usize,
        pub offset: usize,
        pub total: usize,
    }

    /// The query's filters: an item passes when it matches all given. Addresses compare
    /// case-insensitively; `max_price` keeps items with an offer at or under it (in the asset's
    /// base units); `q` looks for the words in the resource and the metadata, case-insensitively.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct Query {
        pub kind: Option<String>,
        pub pay_to: Option<String>,
        pub network: Option<String>,
        pub asset: Option<String>,
        pub max_price: Option<u128>,
        pub q: Option<String>,
        pub limit: usize,
        pub offset: usize,
    }

    impl Query {
        /// Reads `type`, `payTo`, `network`, `asset`, `maxPrice`, `q`, `limit` (1–100, default
        /// 20) and `offset`; an unknown parameter or a bad value is refused with why.
        pub fn parse(params: &BTreeMap<String, String>) -> Result<Query, String> {
            let mut query = Query {
                limit: DEFAULT_LIMIT,
                ..Query::default()
            };
            for (key, value) in params {
                let number = || {
                    value
                        .parse::<u128>()
                        .map_err(|_| format!("{key} '{value}' is not a whole number"))
                };
                match key.as_str() {
                    "type" => query.kind = Some(value.clone()),
                    "payTo" => query.pay_to = Some(value.to_lowercase()),
                    "network" => query.network = Some(value.clone()),
                    "asset" => query.asset = Some(value.to_lowercase()),
                    "maxPrice" => query.max_price = Some(number()?),
                    "q" => query.q = Some(value.to_lowercase()),
                    "limit" => {
                        query.limit = usize::try_from(number()?)
                            .ok()
                            .filter(|l| (1..=MAX_LIMIT).contains(l))
                            .ok_or_else(|| {
                                format!("limit '{value}' is not between 1 and {MAX_LIMIT}")
                            })?
                    }
                    "offset" => {
                        query.offset = usize::try_from(number()?)
                            .map_err(|_| format!("offset '{value}' is too large"))?
                    }
                    other => {
                        return Err(format!(
                            "unknown parameter '{other}' (type, payTo, network, asset, \
                             maxPrice, q, limit, offset)"
                        ))
                    }
                }
            }
            Ok(query)
        }

        fn offer_matches(&self, r: &PaymentRequirements) -> bool {
            self.pay_to
                .as_ref()
                .is_none_or(|p| r.pay_to.to_lowercase() == *p)
                && self.network.as_ref().is_none_or(|n| r.network == *n)
                && self
                    .asset
                    .as_ref()
                    .is_none_or(|a| r.asset.to_lowercase() == *a)
                && self
                    .max_price
                    .is_none_or(|max| r.amount.parse::<u128>().is_ok_and(|amount| amount <= max))
        }

        /// Whether `item` passes the filters.
        pub fn matches(&self, item: &Item) -> bool {
            let offers = self.pay_to.is_some()
                || self.network.is_some()
                || self.asset.is_some()
                || self.max_price.is_some();
            self.kind.as_ref().is_none_or(|k| item.kind == *k)
                && (!offers || item.accepts.iter().any(|r| self.offer_matches(r)))
                && self.q.as_ref().is_none_or(|q| {
                    let text = format!("{} {}", item.resource, item.metadata).to_lowercase();
                    q.split_whitespace().all(|word| text.contains(word))
                })
        }

        /// The page of `items` this query asks for.
        pub fn page(&self, items: &[Item]) -> Page {
            let matching: Vec<&Item> = items.iter().filter(|i| self.matches(i)).collect();
            Page {
                x402_version: 2,
                items: matching
                    .iter()
                    .skip(self.offset)
                    .take(self.limit)
                    .map(|i| (*i).clone())
                    .collect(),
                pagination: Pagination {
                    limit: self.limit,
                    offset: self.offset,
                    total: matching.len(),
                },
            }
        }
    }

    /// `secs` (Unix time) as RFC 3339 in UTC, e.g. `2026-12-06T16:11:15Z`.
    pub fn rfc3339(secs: u64) -> String {
        crate::time::Utc::from_unix(secs).rfc3339()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn item(kind: &str, amount: &str, pay_to: &str, text: &str) -> Item {
            Item {
                resource: format!("http://127.0.0.1:1/{text}"),
                kind: kind.into(),
                x402_version: 2,
                accepts: vec![PaymentRequirements {
                    scheme: "exact".into(),
                    network: "eip155:1337".into(),
                    amount: amount.into(),
                    asset: "0x00000000000000000000000000000000006D5553".into(),
                    pay_to: pay_to.into(),
                    max_timeout_seconds: 60,
                    extra: None,
                }],
                last_updated: rfc3339(0),
                metadata: serde_json::json!({"description": text}),
            }
        }

        fn query(pairs: &[(&str, &str)]) -> Result<Query, String> {
            Query::parse(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        }

        #[test]
        fn filters_on_the_server_and_pages() {
            let items = vec![
                item("http", "1000", "0xAA", "chat completions"),
                item("mcp", "2000", "0xbb", "word count tool"),
                item("http", "5000", "0xaa", "image"),
            ];
            let names = |q: &Query| -> Vec<String> {
                q.page(&items)
                    .items
                    .iter()
                    .map(|i| i.resource.clone())
                    .collect()
            };
            assert_eq!(names(&query(&[]).unwrap()).len(), 3);
            assert_eq!(
                names(&query(&[("type", "mcp")]).unwrap()),
                ["http://127.0.0.1:1/word count tool"]
            );
            assert_eq!(names(&query(&[("payTo", "0xaa")]).unwrap()).len(), 2);
            assert_eq!(names(&query(&[("maxPrice", "2000")]).unwrap()).len(), 2);
            assert_eq!(
                names(&query(&[("maxPrice", "2000"), ("q", "COUNT tool")]).unwrap()),
                ["http://127.0.0.1:1/word count tool"]
            );
            assert_eq!(names(&query(&[("network", "eip155:1")]).unwrap()).len(), 0);
            let page = query(&[("limit", "1"), ("offset", "1")])
                .unwrap()
                .page(&items);
            assert_eq!(page.items.len(), 1);
            assert_eq!(page.pagination.total, 3);
            assert_eq!(page.items[0].kind, "mcp");
            for bad in [
                [("limit", "0")],
                [("limit", "101")],
                [("maxPrice", "x")],
                [("sort", "a")],
            ] {
                assert!(query(&bad).is_err(), "{bad:?}");
            }
        }
    }
}
