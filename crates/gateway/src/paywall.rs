//! The x402 paywall: axum middleware that asks for, verifies and settles a payment around a
//! handler.
//!
//! Order (as the reference resource server): read the request and price it → no payment: 402 with
//! `PAYMENT-REQUIRED` → verify the payment → run the handler, buffering its answer → the handler
//! failed (non-2xx): return its answer, nothing is charged → settle → 200 with `PAYMENT-RESPONSE`
//! (v2) or `X-PAYMENT-RESPONSE` (v1), or 402 with the failed settlement.
//!
//! A 402 always carries the v2 `PAYMENT-REQUIRED` header (base64 JSON, with `error` saying why)
//! and, in its body, the v1 shape `{x402Version: 1, error, accepts}` plus a human `message`.

use crate::facilitator::{reason, Facilitator};
use crate::session::{self, SESSION_HEADER};
use crate::wire::{
    self, AnyPayment, PaymentRequired, PaymentRequiredV1, PaymentRequirements, ResourceInfo,
    SettleResponse,
};
use alloy_primitives::{Address, B256};
use axum::{
    body::{to_bytes, Body},
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use mycel_types::Amount;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Largest request body the paywall reads (it must read the body to price it).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Largest handler answer the paywall buffers before settling.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// Price per request, in mUSD base units (6 decimals), from the request's model and `max_tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    /// Paid for every request.
    pub base: Amount,
    /// Paid per 1,000 tokens of `max_tokens` (rounded up to a whole base unit).
    pub per_1k_tokens: Amount,
    /// `max_tokens` assumed when the request does not say.
    pub default_max_tokens: u64,
    /// Requests asking for more tokens are refused (400) before any payment.
    pub max_tokens_limit: u64,
    /// Models with their own `(base, per_1k_tokens)`; other models use the two above.
    pub per_model: std::collections::BTreeMap<String, (Amount, Amount)>,
}

impl Default for Pricing {
    fn default() -> Self {
        Pricing {
            base: 1_000,
            per_1k_tokens: 10_000,
            default_max_tokens: 256,
            max_tokens_limit: 8192,
            per_model: Default::default(),
        }
    }
}

impl Pricing {
    /// The price of a request with this JSON body (`max_tokens`, or `max_completion_tokens`).
    /// A body that is not JSON is priced at the default; the handler will refuse it.
    pub fn price(&self, body: &[u8]) -> Result<Amount, String> {
        let json = serde_json::from_slice::<Value>(body).ok();
        let model = json
            .as_ref()
            .and_then(|j| j.get("model"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let tokens = match &json {
            Some(json) => match json
                .get("max_tokens")
                .or_else(|| json.get("max_completion_tokens"))
            {
                None | Some(Value::Null) => self.default_max_tokens,
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| format!("max_tokens must be a non-negative integer, got {v}"))?,
            },
            None => self.default_max_tokens,
        };
        if tokens > self.max_tokens_limit {
            return Err(format!(
                "max_tokens {tokens} is over this gateway's limit of {}",
                self.max_tokens_limit
            ));
        }
        Ok(self.price_of(model, tokens))
    }

    /// The price of `tokens` of `model`.
    pub fn price_of(&self, model: &str, tokens: u64) -> Amount {
        let (base, per_1k) = self
            .per_model
            .get(model)
            .copied()
            .unwrap_or((self.base, self.per_1k_tokens));
        let per_token = (tokens as u128 * per_1k).div_ceil(1000);
        base.saturating_add(per_token)
    }

    /// The price of `tokens` of a model without its own price.
    pub fn price_of_tokens(&self, tokens: u64) -> Amount {
        self.price_of("", tokens)
    }
}

/// What the paywall needs.
pub struct Paywall {
    pub facilitator: Arc<Facilitator>,
    pub pay_to: Address,
    pub pricing: Pricing,
    pub max_timeout_seconds: u64,
    pub description: String,
    /// Authorizations `(from, nonce)` a request is using right now: one payment buys one answer,
    /// so a copy sent while the first is being served is refused.
    pub in_flight: Mutex<HashSet<(Address, B256)>>,
    /// Called after a payment settled successfully, with the answer's headers and the price paid
    /// (the revenue share uses it to credit the serving miner).
    pub on_settled: Option<SettledHook>,
    /// The session scheme (`X-MYCEL-SESSION` vouchers on an escrow channel), when enabled.
    pub sessions: Option<Arc<crate::session::SessionBook>>,
}

/// See [`Paywall::on_settled`].
pub type SettledHook = Arc<dyn Fn(&axum::http::HeaderMap, Amount) + Send + Sync>;

/// Releases an in-flight authorization when its request ends, however it ends.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<(Address, B256)>>,
    key: (Address, B256),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

impl Paywall {
    /// A paywall with nothing in flight.
    pub fn new(
        facilitator: Arc<Facilitator>,
        pay_to: Address,
        pricing: Pricing,
        max_timeout_seconds: u64,
        description: impl Into<String>,
    ) -> Paywall {
        Paywall {
            facilitator,
            pay_to,
            pricing,
            max_timeout_seconds,
            description: description.into(),
            in_flight: Mutex::new(HashSet::new()),
            on_settled: None,
            sessions: None,
        }
    }

    fn claim(&self, key: (Address, B256)) -> Option<InFlight<'_>> {
        let mut set = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(key).then(|| InFlight {
            set: &self.in_flight,
            key,
        })
    }

    fn requirements(&self, amount: Amount) -> PaymentRequirements {
        self.facilitator
            .asset()
            .requirements(amount, self.pay_to, self.max_timeout_seconds)
    }
}

/// The middleware. Use with `axum::middleware::from_fn_with_state(Arc<Paywall>, paywall)`.
pub async fn paywall(State(pw): State<Arc<Paywall>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("request body over {MAX_REQUEST_BYTES} bytes"),
            )
        }
    };
    let amount = match pw.pricing.price(&bytes) {
        Ok(a) => a,
        Err(message) => return error(StatusCode::BAD_REQUEST, "bad_request", message),
    };
    let requirements = pw.requirements(amount);
    let resource = ResourceInfo {
        url: resource_url(&parts.headers, &parts.uri),
        description: Some(pw.description.clone()),
        mime_type: Some("application/json".into()),
    };

    if let (Some(book), Some(voucher)) = (&pw.sessions, parts.headers.get(SESSION_HEADER)) {
        let voucher = voucher.clone();
        let request = Request::from_parts(parts, Body::from(bytes));
        return session::serve(
            &pw,
            book,
            &voucher,
            amount,
            request,
            next,
            &resource,
            &requirements,
        )
        .await;
    }
    let (header_value, version) = match (
        parts.headers.get(wire::PAYMENT_SIGNATURE),
        parts.headers.get(wire::X_PAYMENT),
    ) {
        (Some(v), _) => (v, 2u8),
        (None, Some(v)) => (v, 1u8),
        (None, None) => {
            return payment_required(
                &resource,
                &requirements,
                "payment_required",
                "this resource costs mUSD: retry with a PAYMENT-SIGNATURE (x402 v2) or X-PAYMENT (v1) header",
            )
        }
    };
    let payment = match header_value
        .to_str()
        .map_err(|e| e.to_string())
        .and_then(|s| wire::decode_header_json(s).map_err(|e| e.to_string()))
    {
        Ok(json) => match AnyPayment::from_json(&json) {
            Ok(p) => p,
            Err(wire::WireError::Version(v)) => {
                return payment_required(
                    &resource,
                    &requirements,
                    reason::INVALID_X402_VERSION,
                    &format!("x402Version {v} is not supported (1 or 2)"),
                )
            }
            Err(e) => {
                return payment_required(
                    &resource,
                    &requirements,
                    reason::INVALID_PAYLOAD,
                    &e.to_string(),
                )
            }
        },
        Err(message) => {
            return payment_required(&resource, &requirements, reason::INVALID_PAYLOAD, &message)
        }
    };
    if payment.version() != version {
        return payment_required(
            &resource,
            &requirements,
            reason::INVALID_X402_VERSION,
            &format!(
                "a version {} payment came in the version {version} header",
                payment.version()
            ),
        );
    }
    if let AnyPayment::V2(p) = &payment {
        if let Some((code, message)) = accepted_mismatch(&p.accepted, &requirements) {
            return payment_required(&resource, &requirements, code, &message);
        }
    }
    let a = &payment.payload().authorization;
    let key = match (a.from.parse::<Address>(), a.nonce.parse::<B256>()) {
        (Ok(from), Ok(nonce)) => (from, nonce),
        _ => {
            return payment_required(
                &resource,
                &requirements,
                reason::INVALID_PAYLOAD,
                "authorization.from must be a 0x address and authorization.nonce 0x + 32 bytes",
            )
        }
    };
    let Some(_in_flight) = pw.claim(key) else {
        return payment_required(
            &resource,
            &requirements,
            reason::NONCE_ALREADY_USED,
            "this payment is already paying for another request in progress; sign a new one",
        );
    };
    let verified = pw.facilitator.verify(&payment, &requirements).await;
    if !verified.is_valid {
        let code = verified
            .invalid_reason
            .unwrap_or_else(|| reason::INVALID_PAYLOAD.to_string());
        return payment_required(
            &resource,
            &requirements,
            &code,
            verified
                .invalid_message
                .as_deref()
                .unwrap_or("invalid payment"),
        );
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !response.status().is_success() {
        // The handler failed: nothing is settled, the payer keeps the money.
        return response;
    }
    let (mut response_parts, response_body) = response.into_parts();
    let response_bytes = match to_bytes(response_body, MAX_RESPONSE_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                format!("the answer could not be read, so it was not charged: {e}"),
            )
        }
    };
    let settled = pw.facilitator.settle(&payment, &requirements).await;
    let header_name = if version == 2 {
        wire::PAYMENT_RESPONSE
    } else {
        wire::X_PAYMENT_RESPONSE
    };
    let header_value = HeaderValue::from_str(&wire::encode_header(&settled))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
    let pending = settled.error_reason.as_deref() == Some(reason::SETTLEMENT_PENDING);
    if settled.success {
        if let (Some(hook), Ok(price)) = (&pw.on_settled, requirements.amount.parse::<Amount>()) {
            hook(&response_parts.headers, price);
        }
    }
    if settled.success || pending {
        response_parts.headers.insert(header_name, header_value);
        response_parts.headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("PAYMENT-RESPONSE, X-PAYMENT-RESPONSE"),
        );
        response_parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(response_parts, Body::from(response_bytes));
    }
    settle_failed(header_name, header_value, &settled)
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

/// The URL of the requested resource, as the client addressed it.
fn resource_url(headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}{}", uri.path())
}

/// A 402 asking for payment.
pub fn payment_required(
    resource: &ResourceInfo,
    requirements: &PaymentRequirements,
    code: &str,
    message: &str,
) -> Response {
    let v2 = PaymentRequired {
        x402_version: 2,
        error: Some(code.to_string()),
        resource: resource.clone(),
        accepts: vec![requirements.clone()],
    };
    let v1 = PaymentRequiredV1 {
        x402_version: 1,
        error: code.to_string(),
        accepts: vec![requirements.to_v1(
            &resource.url,
            resource.description.as_deref().unwrap_or_default(),
            resource.mime_type.as_deref().unwrap_or("application/json"),
        )],
    };
    let mut body = serde_json::to_value(&v1).unwrap_or_else(|_| json!({}));
    body["message"] = json!(message);
    let mut response = (StatusCode::PAYMENT_REQUIRED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&wire::encode_header(&v2)) {
        response.headers_mut().insert(wire::PAYMENT_REQUIRED, value);
    }
    response.headers_mut().insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("PAYMENT-REQUIRED"),
    );
    response
}

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

/// A plain JSON error in the node API's shape.
pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_follows_max_tokens() {
        let p = Pricing::default();
        assert_eq!(p.price(br#"{"max_tokens": 1000}"#).unwrap(), 1_000 + 10_000);
        assert_eq!(p.price(br#"{"max_tokens": 1}"#).unwrap(), 1_000 + 10);
        assert_eq!(
            p.price(br#"{"max_completion_tokens": 100}"#).unwrap(),
            2_000
        );
        assert_eq!(p.price(b"{}").unwrap(), p.price_of_tokens(256));
        assert_eq!(p.price(b"not json").unwrap(), p.price_of_tokens(256));
        assert!(p.price(br#"{"max_tokens": -1}"#).is_err());
        let mut p = p;
        p.per_model.insert("big".into(), (5_000, 100_000));
        assert_eq!(
            p.price(br#"{"model": "big", "max_tokens": 10}"#).unwrap(),
            6_000
        );
        assert_eq!(
            p.price(br#"{"model": "small", "max_tokens": 10}"#).unwrap(),
            1_100
        );
        assert!(p.price(br#"{"max_tokens": 100000}"#).is_err());
    }
}
