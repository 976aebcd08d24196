//! The x402 payer: reads what a 402 asks for (the v2 `PAYMENT-REQUIRED` header, or a v1 JSON
//! body), signs an exact EIP-3009 `transferWithAuthorization` for exactly that price with a
//! local key, and builds the header that pays (v2 `PAYMENT-SIGNATURE`, v1 `X-PAYMENT`).
//!
//! The payment is what the x402 "exact" scheme on EVM specifies and what the stock npm client
//! sends: the token's EIP-712 domain from the requirements' `extra` (`name`, `version`), the
//! chain from `network` (`eip155:<id>`), `validAfter` 0, `validBefore` now + the requirements'
//! `maxTimeoutSeconds`, a random 32-byte nonce; a v2 payment repeats the accepted requirements
//! and the resource verbatim. Deciding whether a price is acceptable is the caller's.

use alloy_primitives::{Address, B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use mycel_types::eip3009;
use mycel_types::x402::{
    self, AuthorizationJson, ExactEvmPayload, PaymentPayload, PaymentPayloadV1, PaymentRequired,
    PaymentRequiredV1, PaymentRequirements, SCHEME_EXACT,
};
use serde::Deserialize;

/// Why a payment could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    #[error("the 402 carries no x402 payment requirements: {0}")]
    NoRequirements(String),
    #[error("the server accepts no exact EVM payment (it offers {0})")]
    NoExactEvm(String),
    #[error("the payment requirements cannot be paid: {0}")]
    BadRequirements(String),
    #[error("cannot sign the payment: {0}")]
    Signing(String),
}

/// What a 402 asks to be paid, in either x402 version.
#[derive(Debug, Clone, PartialEq)]
pub enum PaymentAsk {
    /// v2: the `PAYMENT-REQUIRED` header.
    V2(PaymentRequired),
    /// v1: the JSON body.
    V1(PaymentRequiredV1),
}

impl PaymentAsk {
    /// Reads a 402 answer: its `PAYMENT-REQUIRED` header (v2) if it has one, else its body (v1).
    pub fn from_402(payment_required: Option<&str>, body: &[u8]) -> Result<PaymentAsk, PayError> {
        if let Some(header) = payment_required {
            return x402::decode_header(header)
                .map(PaymentAsk::V2)
                .map_err(|e| PayError::NoRequirements(format!("PAYMENT-REQUIRED: {e}")));
        }
        serde_json::from_slice(body)
            .map(PaymentAsk::V1)
            .map_err(|e| {
                PayError::NoRequirements(format!(
                    "no PAYMENT-REQUIRED header, and the body is not a v1 402 ({e})"
                ))
            })
    }

    /// Reads a 402 answer as it arrives: its `PAYMENT-REQUIRED` header, else its body.
    pub async fn from_response(response: reqwest::Response) -> Result<PaymentAsk, PayError> {
        let header = response
            .headers()
            .get(x402::PAYMENT_REQUIRED)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let body = response.bytes().await.unwrap_or_default();
        PaymentAsk::from_402(header.as_deref(), &body)
    }

    pub fn version(&self) -> u8 {
        match self {
            PaymentAsk::V2(_) => 2,
            PaymentAsk::V1(_) => 1,
        }
    }

    /// Why the server asks (again): its `error`, if it gave one.
    pub fn error(&self) -> Option<&str> {
        match self {
            PaymentAsk::V2(r) => r.error.as_deref(),
            PaymentAsk::V1(r) => Some(r.error.as_str()).filter(|e| !e.is_empty()),
        }
    }

    /// The first price this payer can pay: the exact scheme on an `eip155` network.
    pub fn exact(&self) -> Result<ExactPrice, PayError> {
        let offered: Vec<PaymentRequirements> = match self {
            PaymentAsk::V2(r) => r.accepts.clone(),
            PaymentAsk::V1(r) => r.accepts.iter().map(|a| a.to_v2()).collect(),
        };
        let requirements = offered
            .iter()
            .find(|r| r.scheme == SCHEME_EXACT && r.network.starts_with("eip155:"))
            .ok_or_else(|| {
                let kinds: Vec<String> = offered
                    .iter()
                    .map(|r| format!("{} on {}", r.scheme, r.network))
                    .collect();
                PayError::NoExactEvm(if kinds.is_empty() {
                    "nothing".into()
                } else {
                    kinds.join(", ")
                })
            })?;
        ExactPrice::new(requirements.clone())
    }
}

/// The token's EIP-712 domain, as `extra` carries it.
#[derive(Deserialize)]
struct TokenDomain {
    name: String,
    version: String,
}

/// One exact EVM price, checked and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactPrice {
    /// As the server wrote them (a v2 payment repeats them verbatim).
    pub requirements: PaymentRequirements,
    /// Base units of the asset.
    pub amount: u128,
    pub chain_id: u64,
    pub asset: Address,
    pub pay_to: Address,
    /// The token's EIP-712 domain name and version.
    pub token_name: String,
    pub token_version: String,
}

impl ExactPrice {
    fn new(requirements: PaymentRequirements) -> Result<ExactPrice, PayError> {
        let bad = |what: String| PayError::BadRequirements(what);
        let amount = mycel_types::api::amount::parse(&requirements.amount).ok_or_else(|| {
            bad(format!(
                "amount '{}' is not an integer",
                requirements.amount
            ))
        })?;
        let chain_id = requirements
            .network
            .strip_prefix("eip155:")
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| {
                bad(format!(
                    "network '{}' is not eip155:<chain id>",
                    requirements.network
                ))
            })?;
        let asset = requirements
            .asset
            .parse()
            .map_err(|_| bad(format!("asset '{}' is not an address", requirements.asset)))?;
        let pay_to = requirements
            .pay_to
            .parse()
            .map_err(|_| bad(format!("payTo '{}' is not an address", requirements.pay_to)))?;
        let domain: TokenDomain = requirements
            .extra
            .clone()
            .and_then(|extra| serde_json::from_value(extra).ok())
            .ok_or_else(|| {
                bad("no extra.name and extra.version (the token's EIP-712 domain)".into())
            })?;
        Ok(ExactPrice {
            amount,
            chain_id,
            asset,
            pay_to,
            token_name: domain.name,
            token_version: domain.version,
            requirements,
        })
    }
}

/// A signed payment: the request header that carries it, and what it authorizes.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    /// `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1).
    pub header: &'static str,
    /// Base64 of the payment's JSON.
    pub value: String,
    /// The payment's JSON (what x402 over MCP sends in `_meta["x402/payment"]`).
    pub json: serde_json::Value,
    pub authorization: eip3009::TransferWithAuthorization,
}

/// Pays x402 prices with one key.
#[derive(Debug, Clone)]
pub struct Payer {
    signer: PrivateKeySigner,
}

impl Payer {
    pub fn new(signer: PrivateKeySigner) -> Payer {
        Payer { signer }
    }

    /// The paying account.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// Signs an exact payment of what `ask` asks for, valid from `now_secs` (Unix seconds) for
    /// the requirements' `maxTimeoutSeconds`, with a random authorization nonce.
    pub fn pay(&self, ask: &PaymentAsk, now_secs: u64) -> Result<Payment, PayError> {
        self.pay_with_nonce(ask, now_secs, B256::random())
    }

    /// [`Payer::pay`] with the authorization nonce `nonce`.
    pub fn pay_with_nonce(
        &self,
        ask: &PaymentAsk,
        now_secs: u64,
        nonce: B256,
    ) -> Result<Payment, PayError> {
        let price = ask.exact()?;
        let authorization = eip3009::TransferWithAuthorization {
            from: self.signer.address(),
            to: price.pay_to,
            value: U256::from(price.amount),
            validAfter: U256::ZERO,
            validBefore: U256::from(
                now_secs.saturating_add(price.requirements.max_timeout_seconds),
            ),
            nonce,
        };
        let domain = eip3009::token_domain(
            &price.token_name,
            &price.token_version,
            price.chain_id,
            price.asset,
        );
        let signature = self
            .signer
            .sign_hash_sync(&authorization.signing_hash(&domain))
            .map_err(|e| PayError::Signing(e.to_string()))?;
        let payload = ExactEvmPayload {
            signature: format!("0x{}", hex::encode(signature.as_bytes())),
            authorization: AuthorizationJson {
                from: authorization.from.to_checksum(None),
                to: authorization.to.to_checksum(None),
                value: authorization.value.to_string(),
                valid_after: authorization.validAfter.to_string(),
                valid_before: authorization.validBefore.to_string(),
                nonce: authorization.nonce.to_string(),
            },
        };
        let (header, json) = match ask {
            PaymentAsk::V2(required) => (
                x402::PAYMENT_SIGNATURE,
                serde_json::to_value(PaymentPayload {
                    x402_version: 2,
                    resource: Some(required.resource.clone()),
                    accepted: price.requirements.clone(),
                    payload,
                    extensions: None,
                }),
            ),
            PaymentAsk::V1(_) => (
                x402::X_PAYMENT,
                serde_json::to_value(PaymentPayloadV1 {
                    x402_version: 1,
                    scheme: price.requirements.scheme.clone(),
                    network: price.requirements.network.clone(),
                    payload,
                }),
            ),
        };
        let json = json.map_err(|e| PayError::Signing(e.to_string()))?;
        Ok(Payment {
            header,
            value: x402::encode_header(&json),
            json,
            authorization,
        })
    }
}

/// A facilitator's HTTP API (`POST /verify`, `POST /settle`, `GET /supported`), as a resource
/// server that does not settle itself calls it: mycel's gateway serves it.
#[derive(Debug, Clone)]
pub struct FacilitatorClient {
    http: reqwest::Client,
    base: String,
}

/// How long a settle may take: it waits for the transfer to be final.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl FacilitatorClient {
    /// The facilitator at `url` (e.g. `http://127.0.0.1:8402`).
    pub fn new(url: &str) -> FacilitatorClient {
        FacilitatorClient {
            http: reqwest::Client::builder()
                .timeout(SETTLE_TIMEOUT)
                .build()
                .unwrap_or_default(),
            base: url.trim_end_matches('/').to_string(),
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// What it settles.
    pub async fn supported(&self) -> Result<x402::SupportedResponse, String> {
        self.read(self.http.get(format!("{}/supported", self.base)))
            .await
    }

    /// Checks `payment` against `requirements` without moving money.
    pub async fn verify(
        &self,
        payment: &serde_json::Value,
        requirements: &PaymentRequirements,
    ) -> Result<x402::VerifyResponse, String> {
        self.post("verify", payment, requirements).await
    }

    /// Executes `payment` (once, however often it is asked).
    pub async fn settle(
        &self,
        payment: &serde_json::Value,
        requirements: &PaymentRequirements,
    ) -> Result<x402::SettleResponse, String> {
        self.post("settle", payment, requirements).await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        payment: &serde_json::Value,
        requirements: &PaymentRequirements,
    ) -> Result<T, String> {
        let body = x402::FacilitatorRequest {
            x402_version: payment
                .get("x402Version")
                .and_then(serde_json::Value::as_u64)
                .and_then(|v| u8::try_from(v).ok())
                .unwrap_or(2),
            payment_payload: payment.clone(),
            payment_requirements: serde_json::to_value(requirements).map_err(|e| e.to_string())?,
        };
        self.read(self.http.post(format!("{}/{path}", self.base)).json(&body))
            .await
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, String> {
        let response = request
            .send()
            .await
            .map_err(|e| format!("facilitator {}: {e}", self.base))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("facilitator {}: {e}", self.base))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "facilitator {} answered {status}: {e}: {}",
                self.base,
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mycel_types::x402::{AnyPayment, ResourceInfo};

    fn requirements() -> PaymentRequirements {
        PaymentRequirements {
            scheme: "exact".into(),
            network: "eip155:1337".into(),
            amount: "2500".into(),
            asset: "0x00000000000000000000000000000000006D5553".into(),
            pay_to: "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720".into(),
            max_timeout_seconds: 60,
            extra: Some(serde_json::json!({"name": "mycel USD", "version": "1"})),
        }
    }

    fn payer() -> Payer {
        Payer::new(mycel_types::keys::dev_signer(1).unwrap())
    }

    #[test]
    fn pays_a_v2_ask_with_a_payment_that_verifies() {
        let ask = PaymentAsk::V2(PaymentRequired {
            x402_version: 2,
            error: None,
            resource: ResourceInfo {
                url: "http://127.0.0.1:8402/v1/chat/completions".into(),
                description: None,
                mime_type: None,
            },
            accepts: vec![requirements()],
        });
        let header = x402::encode_header(&ask_v2(&ask));
        let read = PaymentAsk::from_402(Some(&header), b"").unwrap();
        assert_eq!(read, ask);
        let payment = payer().pay(&read, 1_000).unwrap();
        assert_eq!(payment.header, x402::PAYMENT_SIGNATURE);
        let json = x402::decode_header_json(&payment.value).unwrap();
        let AnyPayment::V2(p) = AnyPayment::from_json(&json).unwrap() else {
            panic!("a v2 payment")
        };
        assert_eq!(p.accepted, requirements());
        assert_eq!(p.payload.authorization.value, "2500");
        assert_eq!(p.payload.authorization.valid_before, "1060");
        let a = &payment.authorization;
        let signature = hex::decode(p.payload.signature.trim_start_matches("0x")).unwrap();
        a.verify_signature(&eip3009::musd_domain(1337), &signature)
            .expect("signed under mUSD's domain");
    }

    fn ask_v2(ask: &PaymentAsk) -> PaymentRequired {
        match ask {
            PaymentAsk::V2(r) => r.clone(),
            PaymentAsk::V1(_) => unreachable!(),
        }
    }

    #[test]
    fn pays_a_v1_body_with_x_payment() {
        let body = PaymentRequiredV1 {
            x402_version: 1,
            error: "X-PAYMENT header is required".into(),
            accepts: vec![requirements().to_v1("http://x/v1", "chat", "application/json")],
        };
        let ask = PaymentAsk::from_402(None, &serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(ask.error(), Some("X-PAYMENT header is required"));
        let payment = payer().pay(&ask, 0).unwrap();
        assert_eq!(payment.header, x402::X_PAYMENT);
        let json = x402::decode_header_json(&payment.value).unwrap();
        assert!(matches!(
            AnyPayment::from_json(&json),
            Ok(AnyPayment::V1(_))
        ));
    }

    #[test]
    fn refuses_what_it_cannot_pay() {
        let mut other = requirements();
        other.scheme = "upto".into();
        let ask = PaymentAsk::V2(PaymentRequired {
            x402_version: 2,
            error: None,
            resource: ResourceInfo {
                url: "u".into(),
                description: None,
                mime_type: None,
            },
            accepts: vec![other],
        });
        assert!(matches!(payer().pay(&ask, 0), Err(PayError::NoExactEvm(_))));
        let mut no_domain = requirements();
        no_domain.extra = None;
        let ask = PaymentAsk::V2(PaymentRequired {
            accepts: vec![no_domain],
            ..ask_v2(&ask)
        });
        assert!(matches!(
            payer().pay(&ask, 0),
            Err(PayError::BadRequirements(_))
        ));
        assert!(matches!(
            PaymentAsk::from_402(None, b"<html>"),
            Err(PayError::NoRequirements(_))
        ));
    }
}
