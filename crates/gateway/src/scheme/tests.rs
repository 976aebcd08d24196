//! The paywall with stub schemes and no chain: it builds its 402 from every scheme, lets the
//! first scheme that finds its payment handle the request, keeps the paid answer for a retry,
//! and releases a payment whose handler failed — whatever the scheme.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use alloy_primitives::{keccak256, B256};
use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use mycel_openai::Admitted;
use mycel_types::receipt::{CanonicalRequest, Endpoint};
use mycel_types::Amount;
use serde_json::Value;
use tower::ServiceExt;

use super::{BoxFuture, Committed, Payment, PaymentScheme, Refusal, Reserved};
use crate::admission::{RequestDigest, Terms};
use crate::answers::payment_key;
use crate::paywall::{paywall, Paywall, Pricing};
use crate::wire::{self, PaymentRequirements};

/// What a stub scheme saw.
#[derive(Default)]
struct Seen {
    reserved: AtomicU32,
    committed: AtomicU32,
    released: AtomicU32,
}

/// Pays with header `x-<name>: <token>`; a token "bad" is refused.
struct Stub {
    name: &'static str,
    seen: Arc<Seen>,
}

impl PaymentScheme for Stub {
    fn name(&self) -> &'static str {
        self.name
    }

    fn accepts(&self, price: Amount) -> Vec<PaymentRequirements> {
        vec![PaymentRequirements {
            scheme: self.name.to_string(),
            network: "eip155:1337".into(),
            amount: price.to_string(),
            asset: "0x0".into(),
            pay_to: "0x0".into(),
            max_timeout_seconds: 60,
            extra: None,
        }]
    }

    fn read(
        &self,
        headers: &HeaderMap,
        price: Amount,
    ) -> Option<Result<Box<dyn Payment>, Refusal>> {
        let token = headers
            .get(format!("x-{}", self.name))?
            .to_str()
            .ok()?
            .to_string();
        if token == "bad" {
            return Some(Err(Refusal::new("stub_bad", "a bad token")));
        }
        Some(Ok(Box::new(StubPayment {
            name: self.name,
            token,
            price,
            seen: self.seen.clone(),
        }) as Box<dyn Payment>))
    }
}

struct StubPayment {
    name: &'static str,
    token: String,
    price: Amount,
    seen: Arc<Seen>,
}

impl Payment for StubPayment {
    fn answer_key(&self) -> B256 {
        payment_key(self.name, &[self.token.as_bytes()])
    }

    fn used_elsewhere(&self) -> Refusal {
        Refusal::new("stub_used", "this token paid for another request")
    }

    fn reserve(self: Box<Self>) -> BoxFuture<'static, Result<Box<dyn Reserved>, Refusal>> {
        Box::pin(async move {
            self.seen.reserved.fetch_add(1, SeqCst);
            Ok(Box::new(StubReserved {
                payment: *self,
                committed: false,
            }) as Box<dyn Reserved>)
        })
    }
}

struct StubReserved {
    payment: StubPayment,
    committed: bool,
}

impl Drop for StubReserved {
    fn drop(&mut self) {
        if !self.committed {
            self.payment.seen.released.fetch_add(1, SeqCst);
        }
    }
}

impl Reserved for StubReserved {
    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<Committed, Response>> {
        Box::pin(async move {
            self.committed = true;
            self.payment.seen.committed.fetch_add(1, SeqCst);
            Ok(Committed {
                paid: Some(self.payment.price),
                headers: vec![(
                    HeaderName::from_static("x-stub-receipt"),
                    HeaderValue::from_static(self.payment.name),
                )],
            })
        })
    }
}

/// A paywall over schemes `a` then `b`, in front of a handler that answers 200 with a count of
/// calls, or 500 to a body "fail"; admission is stood in for by a layer putting fixed terms
/// (10 prompt tokens, 100 out) and the body's digest in the request.
fn gateway(paid: Arc<AtomicU64>) -> (Router, Arc<Seen>, Arc<Seen>) {
    let (a, b) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let schemes: Vec<Arc<dyn PaymentScheme>> = vec![
        Arc::new(Stub {
            name: "a",
            seen: a.clone(),
        }),
        Arc::new(Stub {
            name: "b",
            seen: b.clone(),
        }),
    ];
    let mut wall = Paywall::new(Pricing::default(), "test", schemes);
    wall.on_settled = Some(Arc::new(move |_, price| {
        paid.fetch_add(price as u64, SeqCst);
    }));
    let calls = Arc::new(AtomicU64::new(0));
    let handler = move |body: String| {
        let calls = calls.clone();
        async move {
            if body == "fail" {
                return (StatusCode::INTERNAL_SERVER_ERROR, "failed".to_string());
            }
            (
                StatusCode::OK,
                format!("answer {}", calls.fetch_add(1, SeqCst)),
            )
        }
    };
    let router = Router::new()
        .route("/v1/chat/completions", post(handler))
        .layer(from_fn_with_state(Arc::new(wall), paywall))
        .layer(from_fn(admit_fixed));
    (router, a, b)
}

async fn admit_fixed(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap_or_default();
    let terms = Admitted {
        model: "m".into(),
        request: CanonicalRequest {
            endpoint: Endpoint::ChatCompletions,
            messages: Vec::new(),
            prompt: String::new(),
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
            max_tokens: 100,
            stop: Vec::new(),
        },
        prompt_tokens: vec![1; 10],
        stream: false,
        include_usage: false,
    };
    parts.extensions.insert(RequestDigest(keccak256(&bytes)));
    parts.extensions.insert::<Terms>(Arc::new(terms));
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn call(
    router: &Router,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, HeaderMap, String) {
    let mut request = axum::http::Request::post("/v1/chat/completions");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(
            request
                .body(Body::from(body.to_string()))
                .expect("a request"),
        )
        .await
        .expect("infallible");
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, 1 << 20).await.expect("a body");
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn error_of(body: &str) -> Value {
    serde_json::from_str::<Value>(body).expect("a JSON body")["error"].clone()
}

#[tokio::test]
async fn a_402_offers_every_scheme_and_the_first_scheme_with_a_payment_serves() {
    let paid = Arc::new(AtomicU64::new(0));
    let (router, a, b) = gateway(paid.clone());
    let price = Pricing::default().price_of("m", 10, 100);

    let (status, headers, body) = call(&router, &[], "hi").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(error_of(&body), "payment_required");
    let required = headers[wire::PAYMENT_REQUIRED].to_str().expect("ascii");
    let required: wire::PaymentRequired =
        serde_json::from_value(wire::decode_header_json(required).expect("base64 JSON"))
            .expect("a PAYMENT-REQUIRED header");
    let offered: Vec<_> = required.accepts.iter().map(|r| r.scheme.as_str()).collect();
    assert_eq!(offered, ["a", "b"]);
    assert!(required
        .accepts
        .iter()
        .all(|r| r.amount == price.to_string()));

    // Both schemes' payments: the first scheme asked takes it.
    let (status, headers, body) = call(&router, &[("x-b", "t1"), ("x-a", "t1")], "hi").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "answer 0"));
    assert_eq!(headers["x-stub-receipt"], "a");
    assert_eq!((a.committed.load(SeqCst), b.reserved.load(SeqCst)), (1, 0));
    assert_eq!(paid.load(SeqCst), price as u64);

    // A refusal is a 402 with the scheme's code, still offering every scheme.
    let (status, _, body) = call(&router, &[("x-b", "bad")], "hi").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(error_of(&body), "stub_bad");
    let accepts = serde_json::from_str::<Value>(&body).expect("json")["accepts"].clone();
    assert_eq!(accepts.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_retry_gets_the_paid_answer_and_a_failed_handler_charges_nothing() {
    let paid = Arc::new(AtomicU64::new(0));
    let (router, _, b) = gateway(paid.clone());

    let first = call(&router, &[("x-b", "t1")], "hi").await;
    assert_eq!((first.0, first.2.as_str()), (StatusCode::OK, "answer 0"));
    // The same payment for the same request: the same answer, not served nor paid again.
    let again = call(&router, &[("x-b", "t1")], "hi").await;
    assert_eq!((again.0, again.2.as_str()), (StatusCode::OK, "answer 0"));
    assert_eq!((b.reserved.load(SeqCst), b.committed.load(SeqCst)), (1, 1));
    // The same payment for another request: refused with the scheme's reason.
    let (status, _, body) = call(&router, &[("x-b", "t1")], "another").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(error_of(&body), "stub_used");

    // The handler fails: its answer goes back, the payment is released, not committed.
    let (status, _, body) = call(&router, &[("x-b", "t2")], "fail").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "failed")
    );
    assert_eq!((b.reserved.load(SeqCst), b.committed.load(SeqCst)), (2, 1));
    assert_eq!(b.released.load(SeqCst), 1);
    assert_eq!(
        paid.load(SeqCst),
        Pricing::default().price_of("m", 10, 100) as u64
    );
    // Nothing was kept for it: the same payment serves once the handler succeeds.
    let (status, _, body) = call(&router, &[("x-b", "t2")], "now").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "answer 1"));
}
