//! The x402 `exact` scheme: one EIP-3009 `transferWithAuthorization` of mUSD per request, in a
//! `PAYMENT-SIGNATURE` (x402 v2) or `X-PAYMENT` (v1) header, verified before serving and settled
//! on chain by the [`Facilitator`] after.
//!
//! Order (as the reference resource server): read the header (base64 JSON of a v1 or v2
//! payment; the version must match the header's), check that a v2 payment accepted the
//! requirements offered → hold its authorization `(from, nonce)` (one payment buys one answer,
//! so a copy sent while the first is served is refused) and verify it → serve → settle, and
//! answer with `PAYMENT-RESPONSE` (v2) or `X-PAYMENT-RESPONSE` (v1); a settlement that failed is
//! a 402 carrying that header. A settlement still pending after the facilitator's timeout is
//! served (the answer carries its transaction hash) but not yet counted as paid.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use alloy_primitives::{Address, B256};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mycel_types::Amount;
use serde_json::json;

use super::{BoxFuture, Committed, Payment, PaymentScheme, Refusal, Reserved};
use crate::answers::payment_key;
use crate::facilitator::{reason, Facilitator};
use crate::wire::{self, AnyPayment, PaymentRequirements, SettleResponse};

/// Authorizations `(from, nonce)` a request is using right now.
type InFlightSet = Arc<Mutex<HashSet<(Address, B256)>>>;

/// The `exact` scheme of one gateway: its facilitator, who is paid, and the payments in flight.
#[derive(Clone)]
pub struct ExactScheme {
    facilitator: Arc<Facilitator>,
    pay_to: Address,
    max_timeout_seconds: u64,
    in_flight: InFlightSet,
}

impl ExactScheme {
    /// Payments to `pay_to`, settled by `facilitator`; `max_timeout_seconds` is the x402
    /// `maxTimeoutSeconds` (how long a client's authorization should stay valid).
    pub fn new(
        facilitator: Arc<Facilitator>,
        pay_to: Address,
        max_timeout_seconds: u64,
    ) -> ExactScheme {
        ExactScheme {
            facilitator,
            pay_to,
            max_timeout_seconds,
            in_flight: Arc::default(),
        }
    }

    /// Who is paid (x402 `payTo`).
    pub fn pay_to(&self) -> Address {
        self.pay_to
    }

    fn requirements(&self, price: Amount) -> PaymentRequirements {
        self.facilitator
            .asset()
            .requirements(price, self.pay_to, self.max_timeout_seconds)
    }

    /// Reads the payment header: the payment, its version and its authorization `(from, nonce)`.
    fn parse(
        &self,
        header_value: &HeaderValue,
        version: u8,
        requirements: &PaymentRequirements,
    ) -> Result<(AnyPayment, (Address, B256)), Refusal> {
        let json = header_value
            .to_str()
            .map_err(|e| e.to_string())
            .and_then(|s| wire::decode_header_json(s).map_err(|e| e.to_string()))
            .map_err(|message| Refusal::new(reason::INVALID_PAYLOAD, message))?;
        let payment = AnyPayment::from_json(&json).map_err(|e| match e {
            wire::WireError::Version(v) => Refusal::new(
                reason::INVALID_X402_VERSION,
                format!("x402Version {v} is not supported (1 or 2)"),
            ),
            e => Refusal::new(reason::INVALID_PAYLOAD, e.to_string()),
        })?;
        if payment.version() != version {
            return Err(Refusal::new(
                reason::INVALID_X402_VERSION,
                format!(
                    "a version {} payment came in the version {version} header",
                    payment.version()
                ),
            ));
        }
        if let AnyPayment::V2(p) = &payment {
            if let Some((code, message)) = accepted_mismatch(&p.accepted, requirements) {
                return Err(Refusal::new(code, message));
            }
        }
        let a = &payment.payload().authorization;
        match (a.from.parse::<Address>(), a.nonce.parse::<B256>()) {
            (Ok(from), Ok(nonce)) => Ok((payment, (from, nonce))),
            _ => Err(Refusal::new(
                reason::INVALID_PAYLOAD,
                "authorization.from must be a 0x address and authorization.nonce 0x + 32 bytes",
            )),
        }
    }
}

impl PaymentScheme for ExactScheme {
    fn name(&self) -> &'static str {
        wire::SCHEME_EXACT
    }

    fn accepts(&self, price: Amount) -> Vec<PaymentRequirements> {
        vec![self.requirements(price)]
    }

    fn how_to_pay(&self) -> Option<&'static str> {
        Some("a PAYMENT-SIGNATURE (x402 v2) or X-PAYMENT (v1) header")
    }

    fn read(
        &self,
        headers: &HeaderMap,
        price: Amount,
    ) -> Option<Result<Box<dyn Payment>, Refusal>> {
        let (header_value, version) = match (
            headers.get(wire::PAYMENT_SIGNATURE),
            headers.get(wire::X_PAYMENT),
        ) {
            (Some(v), _) => (v, 2u8),
            (None, Some(v)) => (v, 1u8),
            (None, None) => return None,
        };
        let requirements = self.requirements(price);
        Some(
            self.parse(header_value, version, &requirements)
                .map(|(payment, authorization)| {
                    Box::new(ExactPayment {
                        scheme: self.clone(),
                        payment,
                        version,
                        authorization,
                        requirements,
                    }) as Box<dyn Payment>
                }),
        )
    }
}

/// A parsed x402 payment.
struct ExactPayment {
    scheme: ExactScheme,
    payment: AnyPayment,
    version: u8,
    authorization: (Address, B256),
    requirements: PaymentRequirements,
}

impl Payment for ExactPayment {
    fn answer_key(&self) -> B256 {
        let (from, nonce) = self.authorization;
        let signature = self.payment.payload().signature.to_ascii_lowercase();
        payment_key(
            "x402",
            &[from.as_slice(), nonce.as_slice(), signature.as_bytes()],
        )
    }

    fn used_elsewhere(&self) -> Refusal {
        Refusal::new(
            reason::NONCE_ALREADY_USED,
            "this payment already paid for another request; sign a new one",
        )
    }

    fn reserve(self: Box<Self>) -> BoxFuture<'static, Result<Box<dyn Reserved>, Refusal>> {
        Box::pin(async move {
            let Some(in_flight) = InFlight::claim(&self.scheme.in_flight, self.authorization)
            else {
                return Err(Refusal::new(
                    reason::NONCE_ALREADY_USED,
                    "this payment is already paying for another request in progress; sign a new one",
                ));
            };
            let verified = self
                .scheme
                .facilitator
                .verify(&self.payment, &self.requirements)
                .await;
            if !verified.is_valid {
                let code = verified
                    .invalid_reason
                    .unwrap_or_else(|| reason::INVALID_PAYLOAD.to_string());
                let message = verified
                    .invalid_message
                    .unwrap_or_else(|| "invalid payment".to_string());
                return Err(Refusal::new(code, message));
            }
            Ok(Box::new(ExactReserved {
                payment: *self,
                _in_flight: in_flight,
            }) as Box<dyn Reserved>)
        })
    }
}

/// A verified x402 payment whose authorization is held for the request being served.
struct ExactReserved {
    payment: ExactPayment,
    _in_flight: InFlight,
}

impl Reserved for ExactReserved {
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<Committed, Response>> {
        Box::pin(async move {
            let ExactPayment {
                scheme,
                payment,
                version,
                requirements,
                ..
            } = &self.payment;
            let settled = scheme.facilitator.settle(payment, requirements).await;
            let header_name = if *version == 2 {
                wire::PAYMENT_RESPONSE
            } else {
                wire::X_PAYMENT_RESPONSE
            };
            let header_value = HeaderValue::from_str(&wire::encode_header(&settled))
                .unwrap_or_else(|_| HeaderValue::from_static(""));
            let pending = settled.error_reason.as_deref() == Some(reason::SETTLEMENT_PENDING);
            if !(settled.success || pending) {
                return Err(settle_failed(header_name, header_value, &settled));
            }
            let paid = settled
                .success
                .then(|| requirements.amount.parse::<Amount>().ok())
                .flatten();
            Ok(Committed {
                paid,
                headers: vec![
                    (HeaderName::from_static(header_name), header_value),
                    (
                        header::ACCESS_CONTROL_EXPOSE_HEADERS,
                        HeaderValue::from_static("PAYMENT-RESPONSE, X-PAYMENT-RESPONSE"),
                    ),
                ],
            })
        })
    }
}

/// Holds an authorization in flight; releases it when dropped, however the request ends.
struct InFlight {
    set: InFlightSet,
    key: (Address, B256),
}

impl InFlight {
    /// Holds `key`, unless a request in progress holds it already.
    fn claim(set: &InFlightSet, key: (Address, B256)) -> Option<InFlight> {
        let mut held = set.lock().unwrap_or_else(|e| e.into_inner());
        held.insert(key).then(|| InFlight {
            set: set.clone(),
            key,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// Why the requirements a client says it accepted are not the ones offered.
fn accepted_mismatch(
    accepted: &PaymentRequirements,
    offered: &PaymentRequirements,
) -> Option<(&'static str, String)> {
    if accepted == offered {
        return None;
    }
    let differ = |what: &str, got: &str, want: &str| {
        format!("payment accepted {what} '{got}', this resource asks for '{want}'")
    };
    Some(if accepted.scheme != offered.scheme {
        (
            reason::UNSUPPORTED_SCHEME,
            differ("scheme", &accepted.scheme, &offered.scheme),
        )
    } else if accepted.network != offered.network {
        (
            reason::INVALID_NETWORK,
            differ("network", &accepted.network, &offered.network),
        )
    } else if !accepted.asset.eq_ignore_ascii_case(&offered.asset) {
        (
            reason::ASSET_MISMATCH,
            differ("asset", &accepted.asset, &offered.asset),
        )
    } else if accepted.amount != offered.amount {
        (
            reason::VALUE_MISMATCH,
            differ("amount", &accepted.amount, &offered.amount),
        )
    } else if !accepted.pay_to.eq_ignore_ascii_case(&offered.pay_to) {
        (
            reason::RECIPIENT_MISMATCH,
            differ("payTo", &accepted.pay_to, &offered.pay_to),
        )
    } else if accepted.extra != offered.extra {
        (
            reason::MISSING_EIP712_DOMAIN,
            "payment accepted another token EIP-712 domain (extra) than offered".to_string(),
        )
    } else {
        // Only letter case of addresses or maxTimeoutSeconds differ: the payment still binds
        // the same token, amount and recipient, which the facilitator checks.
        return None;
    })
}

/// The 402 for a settlement that failed after serving: the settle response in its header.
fn settle_failed(
    header_name: &'static str,
    value: HeaderValue,
    settled: &SettleResponse,
) -> Response {
    let mut response = (
        StatusCode::PAYMENT_REQUIRED,
        Json(json!({
            "x402Version": 2,
            "error": settled.error_reason,
            "message": settled.error_message,
        })),
    )
        .into_response();
    response.headers_mut().insert(header_name, value);
    response
}
