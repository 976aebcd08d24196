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

use crate::admission::{RequestDigest, Terms};
use crate::answers::{payment_key, Lookup, PaidAnswers, StoredAnswer};
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
use mycel_openai::Admitted;
use mycel_types::Amount;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Largest request body the paywall reads (it must read the body to price it).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Largest handler answer the paywall buffers before settling.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// The price of one model: per request, per 1,000 prompt tokens and per 1,000 output tokens
/// (the request's `max_tokens` as admitted), in mUSD base units (6 decimals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    pub base: Amount,
    pub per_1k_prompt_tokens: Amount,
    pub per_1k_tokens: Amount,
}

/// Prices of completions by their admitted terms ([`crate::admission`]): the prompt's tokens as
/// the miner will count them, and the most tokens the answer may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    /// Models without a price of their own.
    pub default: ModelPrice,
    /// `max_tokens` of a chat request that does not say (cut to what the context has left).
    pub default_max_tokens: u64,
    /// Requests asking for more tokens are refused (400) before any payment.
    pub max_tokens_limit: u64,
    /// Models with their own price, by the name requests use.
    pub per_model: std::collections::BTreeMap<String, ModelPrice>,
}

impl Default for Pricing {
    fn default() -> Self {
        Pricing {
            default: ModelPrice {
                base: 1_000,
                // Prefill costs a miner about a quarter of decoding per token (BENCHMARKS.md).
                per_1k_prompt_tokens: 2_500,
                per_1k_tokens: 10_000,
            },
            default_max_tokens: 256,
            max_tokens_limit: 8192,
            per_model: Default::default(),
        }
    }
}

impl Pricing {
    /// The price of an admitted request: `base + ⌈(prompt × per_1k_prompt + max_tokens ×
    /// per_1k) / 1000⌉`.
    pub fn price(&self, terms: &Admitted) -> Amount {
        self.price_of(
            &terms.model,
            terms.prompt_tokens.len() as u64,
            u64::from(terms.request.max_tokens),
        )
    }

    /// The price of `prompt_tokens` in and at most `max_tokens` out of `model`.
    pub fn price_of(&self, model: &str, prompt_tokens: u64, max_tokens: u64) -> Amount {
        let price = self.per_model.get(model).unwrap_or(&self.default);
        let per_token = (u128::from(prompt_tokens) * price.per_1k_prompt_tokens)
            .saturating_add(u128::from(max_tokens) * price.per_1k_tokens)
            .div_ceil(1000);
        price.base.saturating_add(per_token)
    }

    /// Reads a completion body as the gateway does ([`crate::admission`]) and prices it: what a
    /// client will be asked to pay for it, or why it is refused before payment.
    pub fn quote(
        &self,
        chat: bool,
        body: &[u8],
        format: &mycel_tokenizer::PromptFormat,
    ) -> Result<(Amount, Admitted), mycel_openai::ApiError> {
        let parsed = if chat {
            mycel_openai::parse_chat(body, &self.limits())
        } else {
            mycel_openai::parse_completion(body, &self.limits())
        }?;
        let terms = parsed.admit(format)?;
        Ok((self.price(&terms), terms))
    }

    /// The limits requests are read with ([`mycel_openai::Limits`]).
    pub fn limits(&self) -> mycel_openai::Limits {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        mycel_openai::Limits {
            max_tokens: clamp(self.max_tokens_limit),
            default_chat_max_tokens: clamp(self.default_max_tokens),
        }
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
    /// Paid answers kept for retries ([`crate::answers`]).
    pub answers: Arc<PaidAnswers>,
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
            answers: Arc::new(PaidAnswers::default()),
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

/// The middleware. Use with `axum::middleware::from_fn_with_state(Arc<Paywall>, paywall)`, inside
/// [`crate::admission::admit`] (which puts the request's terms in its extensions).
pub async fn paywall(State(pw): State<Arc<Paywall>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let (Some(terms), Some(digest)) = (
        parts.extensions.get::<Terms>().cloned(),
        parts.extensions.get::<RequestDigest>().copied(),
    ) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "not_admitted",
            "the paywall runs after admission; this gateway is misconfigured",
        );
    };
    let bytes = match read_request_body(body).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let amount = pw.pricing.price(&terms);
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
            digest,
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
    // The same payment again for the same request: the answer it already bought.
    let answer_key = payment_key(
        "x402",
        &[
            key.0.as_slice(),
            key.1.as_slice(),
            payment.payload().signature.to_ascii_lowercase().as_bytes(),
        ],
    );
    match pw.answers.lookup(answer_key, digest.0).await {
        Lookup::Answered(answer) => return answer.response(),
        Lookup::OtherRequest => {
            return payment_required(
                &resource,
                &requirements,
                reason::NONCE_ALREADY_USED,
                "this payment already paid for another request; sign a new one",
            )
        }
        Lookup::Vacant => {}
    }
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
    // Settle in a task of its own: a client that hangs up must not cancel a settlement half
    // way, and the answer it paid for is kept for its retry ([`crate::answers`]).
    let pending = pw.answers.begin(answer_key, digest.0);
    let pw = pw.clone();
    let settlement = tokio::spawn(async move {
        let settled = pw.facilitator.settle(&payment, &requirements).await;
        let header_name = if version == 2 {
            wire::PAYMENT_RESPONSE
        } else {
            wire::X_PAYMENT_RESPONSE
        };
        let header_value = HeaderValue::from_str(&wire::encode_header(&settled))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        let still_pending = settled.error_reason.as_deref() == Some(reason::SETTLEMENT_PENDING);
        if settled.success {
            if let (Some(hook), Ok(price)) =
                (&pw.on_settled, requirements.amount.parse::<Amount>())
            {
                hook(&response_parts.headers, price);
            }
        }
        if !(settled.success || still_pending) {
            return settle_failed(header_name, header_value, &settled);
        }
        response_parts.headers.insert(header_name, header_value);
        response_parts.headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("PAYMENT-RESPONSE, X-PAYMENT-RESPONSE"),
        );
        response_parts.headers.remove(header::CONTENT_LENGTH);
        let answer = StoredAnswer {
            status: response_parts.status,
            headers: response_parts.headers,
            body: response_bytes,
        };
        let response = answer.response();
        pending.fulfil(answer);
        response
    });
    match settlement.await {
        Ok(response) => response,
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "settle_failed",
            format!("settlement task failed: {e}"),
        ),
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

/// Reads a request body of at most [`MAX_REQUEST_BYTES`], or the 413 that refuses it.
pub(crate) async fn read_request_body(body: Body) -> Result<axum::body::Bytes, Response> {
    to_bytes(body, MAX_REQUEST_BYTES).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("request body over {MAX_REQUEST_BYTES} bytes"),
        )
    })
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
    fn price_follows_prompt_and_output_tokens() {
        let p = Pricing::default();
        assert_eq!(p.price_of("m", 0, 1000), 1_000 + 10_000);
        assert_eq!(p.price_of("m", 0, 1), 1_000 + 10);
        // The attack: an 8,181-token prompt for one output token is no longer a 1-token price.
        assert_eq!(p.price_of("m", 8181, 1), 1_000 + (8181 * 2_500 + 10_000_u128).div_ceil(1000));
        assert!(p.price_of("m", 8181, 1) > 20 * p.price_of("m", 0, 1));
        let mut p = p;
        p.per_model.insert(
            "big".into(),
            ModelPrice {
                base: 5_000,
                per_1k_prompt_tokens: 0,
                per_1k_tokens: 100_000,
            },
        );
        assert_eq!(p.price_of("big", 500, 10), 6_000);
        assert_eq!(p.price_of("small", 0, 10), 1_100);
    }
}
