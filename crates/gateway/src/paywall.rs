//! The paywall: axum middleware that asks for, holds and takes a payment around a handler,
//! through the payment schemes it was given ([`crate::scheme`]) and without knowing any of them.
//!
//! Order (as the reference x402 resource server): read the admitted request and price it → ask
//! each scheme in turn for the payment the request carries; none: 402 with `PAYMENT-REQUIRED` →
//! the same payment already bought this request's answer: that answer again ([`crate::answers`])
//! → the scheme holds the payment (x402: verify; a voucher: reserve its range) → run the
//! handler, buffering its answer → the handler failed (non-2xx): return its answer, the payment
//! is released and nothing is charged → the scheme takes the payment (x402: settle) in a task the
//! client cannot cancel → 200 with the scheme's receipt header, or the scheme's failure.
//!
//! Every 402 carries the v2 `PAYMENT-REQUIRED` header (base64 JSON, with `error` saying why) and,
//! in its body, the v1 shape `{x402Version: 1, error, accepts}` plus a human `message`; `accepts`
//! holds every scheme's offer at the request's price, whichever scheme refused.

use crate::admission::{RequestDigest, Terms};
use crate::answers::{Lookup, PaidAnswers, StoredAnswer};
use crate::scheme::{PaymentScheme, Refusal, Reserved};
use crate::wire::{self, PaymentRequired, PaymentRequiredV1, PaymentRequirements, ResourceInfo};
use alloy_primitives::B256;
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
use std::sync::Arc;
use tracing::Instrument as _;

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

/// What the paywall needs: how requests are priced, the schemes that take payment, and where
/// paid answers are kept.
pub struct Paywall {
    pub pricing: Pricing,
    /// The resource's description in a 402.
    pub description: String,
    /// The ways to pay, asked in this order ([`crate::scheme`]).
    pub schemes: Vec<Arc<dyn PaymentScheme>>,
    /// Called after a payment was taken, with the answer's headers and the price paid (the
    /// revenue share uses it to credit the serving miner).
    pub on_settled: Option<SettledHook>,
    /// Paid answers kept for retries ([`crate::answers`]).
    pub answers: Arc<PaidAnswers>,
}

/// See [`Paywall::on_settled`].
pub type SettledHook = Arc<dyn Fn(&axum::http::HeaderMap, Amount) + Send + Sync>;

impl Paywall {
    /// A paywall taking payment through `schemes`, with no hook and an empty answer cache.
    pub fn new(
        pricing: Pricing,
        description: impl Into<String>,
        schemes: Vec<Arc<dyn PaymentScheme>>,
    ) -> Paywall {
        Paywall {
            pricing,
            description: description.into(),
            schemes,
            on_settled: None,
            answers: Arc::new(PaidAnswers::default()),
        }
    }
}

/// A request's 402s: its resource and every scheme's offer at its price.
struct Ask {
    resource: ResourceInfo,
    accepts: Vec<PaymentRequirements>,
}

impl Ask {
    fn refuse(&self, refusal: &Refusal) -> Response {
        payment_required(
            &self.resource,
            &self.accepts,
            &refusal.code,
            &refusal.message,
        )
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
    let price = pw.pricing.price(&terms);
    let ask = Ask {
        resource: ResourceInfo {
            url: resource_url(&parts.headers, &parts.uri),
            description: Some(pw.description.clone()),
            mime_type: Some("application/json".into()),
        },
        accepts: pw.schemes.iter().flat_map(|s| s.accepts(price)).collect(),
    };
    let Some(read) = pw
        .schemes
        .iter()
        .find_map(|s| s.read(&parts.headers, price))
    else {
        return ask.refuse(&pw.how_to_pay());
    };
    let payment = match read {
        Ok(payment) => payment,
        Err(refusal) => return ask.refuse(&refusal),
    };
    // The same payment again for the same request: the answer it already bought.
    let answer_key = payment.answer_key();
    match pw.answers.lookup(answer_key, digest.0).await {
        Lookup::Answered(answer) => return answer.response(),
        Lookup::OtherRequest => return ask.refuse(&payment.used_elsewhere()),
        Lookup::Vacant => {}
    }
    let reserved = match payment.reserve().await {
        Ok(reserved) => reserved,
        Err(refusal) => return ask.refuse(&refusal),
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !response.status().is_success() {
        // The handler failed: the payment is released (dropped), nothing is charged.
        return response;
    }
    take_payment(&pw, reserved, response, answer_key, digest).await
}

/// After a 2xx: buffers the answer, commits the payment and keeps the answer for a retry under
/// `answer_key`, in a task of its own: a client that hangs up must not cancel a payment half
/// way, and the answer it paid for is kept for its retry ([`crate::answers`]).
async fn take_payment(
    pw: &Paywall,
    reserved: Box<dyn Reserved>,
    response: Response,
    answer_key: B256,
    digest: RequestDigest,
) -> Response {
    let (response_parts, response_body) = response.into_parts();
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
    let pending = pw.answers.begin(answer_key, digest.0);
    let hook = pw.on_settled.clone();
    let committing = tokio::spawn(
        async move {
            let committed = match reserved.commit().await {
                Ok(committed) => committed,
                Err(refused) => return refused,
            };
            let mut headers = response_parts.headers;
            if let (Some(hook), Some(paid)) = (&hook, committed.paid) {
                hook(&headers, paid);
            }
            for (name, value) in committed.headers {
                headers.insert(name, value);
            }
            headers.remove(header::CONTENT_LENGTH);
            let answer = StoredAnswer {
                status: response_parts.status,
                headers,
                body: response_bytes,
            };
            let response = answer.response();
            pending.fulfil(answer);
            response
        }
        .in_current_span(),
    );
    committing.await.unwrap_or_else(|e| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "settle_failed",
            format!("settlement task failed: {e}"),
        )
    })
}

impl Paywall {
    /// The refusal of a request that carries no payment: how each scheme is paid.
    fn how_to_pay(&self) -> Refusal {
        let ways: Vec<&str> = self.schemes.iter().filter_map(|s| s.how_to_pay()).collect();
        let ways = if ways.is_empty() {
            "a payment".to_string()
        } else {
            ways.join(", or ")
        };
        Refusal::new(
            "payment_required",
            format!("this resource costs mUSD: retry with {ways}"),
        )
    }
}

/// The URL of the requested resource, as the client addressed it.
fn resource_url(headers: &HeaderMap, uri: &axum::http::Uri) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}{}", uri.path())
}

/// A 402 asking for payment: every scheme's offer in `accepts`, `code` as the x402 `error`.
pub fn payment_required(
    resource: &ResourceInfo,
    accepts: &[PaymentRequirements],
    code: &str,
    message: &str,
) -> Response {
    let v2 = PaymentRequired {
        x402_version: 2,
        error: Some(code.to_string()),
        resource: resource.clone(),
        accepts: accepts.to_vec(),
    };
    let v1 = PaymentRequiredV1 {
        x402_version: 1,
        error: code.to_string(),
        accepts: accepts
            .iter()
            .map(|requirements| {
                requirements.to_v1(
                    &resource.url,
                    resource.description.as_deref().unwrap_or_default(),
                    resource.mime_type.as_deref().unwrap_or("application/json"),
                )
            })
            .collect(),
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
        assert_eq!(
            p.price_of("m", 8181, 1),
            1_000 + (8181 * 2_500 + 10_000_u128).div_ceil(1000)
        );
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
