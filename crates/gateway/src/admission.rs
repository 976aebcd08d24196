//! Admission: before a completion request is priced, paid or forwarded, the gateway reads it
//! exactly as a miner will ([`mycel_openai`]) and tokenizes its prompt with the served model's
//! tokenizer.
//!
//! What it guarantees: a request that a miner would refuse (bad JSON, unsupported parameter, a
//! prompt that with its `max_tokens` does not fit the context) is refused here with the miner's
//! OpenAI-shaped 400, before any payment is asked; an admitted request goes on with its
//! [`Admitted`] terms in the request's extensions (the paywall prices them, the router sizes its
//! timeout and checks the receipt against them) and with its body rewritten to name its output
//! limit explicitly ([`Admitted::forward_body`]), so the miner generates at most what was priced.
//! Tokenizing stops at the context length, and runs off the async threads.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mycel_openai::{Admitted, ApiError, Limits};
use mycel_tokenizer::PromptFormat;

use crate::paywall::read_request_body;

/// What admission needs: the served model's prompt format and the gateway's request limits.
#[derive(Debug, Clone)]
pub struct Admission {
    pub format: Arc<PromptFormat>,
    pub limits: Limits,
}

/// The terms a request was admitted with, in the request's extensions after [`admit`].
pub type Terms = Arc<Admitted>;

/// The body hash of the request as the client sent it, in the request's extensions after
/// [`admit`] (a paid answer is given again only to the same request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestDigest(pub alloy_primitives::B256);

/// How long a miner may take for a request: `base` plus `per_token` for every prompt token and
/// every token it may generate — the work that was sold, not one fixed limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkTimeout {
    pub base: Duration,
    pub per_token: Duration,
}

impl WorkTimeout {
    pub fn for_terms(&self, terms: Option<&Admitted>) -> Duration {
        let tokens = terms.map_or(0, |t| t.prompt_tokens.len() + t.request.max_tokens as usize);
        self.base.saturating_add(
            self.per_token
                .saturating_mul(u32::try_from(tokens).unwrap_or(u32::MAX)),
        )
    }
}

impl Default for WorkTimeout {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            per_token: Duration::from_millis(50),
        }
    }
}

/// The middleware. Use with `axum::middleware::from_fn_with_state(Arc<Admission>, admit)` on
/// `POST /v1/chat/completions` and `POST /v1/completions`.
pub async fn admit(
    State(admission): State<Arc<Admission>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let bytes = match read_request_body(body).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let chat = parts.uri.path().ends_with("/chat/completions");
    let body = bytes.clone();
    let checked = tokio::task::spawn_blocking(move || -> Result<Admitted, ApiError> {
        let parsed = if chat {
            mycel_openai::parse_chat(&body, &admission.limits)
        } else {
            mycel_openai::parse_completion(&body, &admission.limits)
        }?;
        parsed.admit(&admission.format)
    })
    .await;
    let admitted = match checked {
        Ok(Ok(admitted)) => admitted,
        Ok(Err(refused)) => return refused.into_response(),
        Err(e) => return ApiError::internal(format!("admission failed: {e}")).into_response(),
    };
    let forwarded = admitted.forward_body(&bytes);
    parts
        .extensions
        .insert(RequestDigest(alloy_primitives::keccak256(&bytes)));
    parts.extensions.insert::<Terms>(Arc::new(admitted));
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    next.run(Request::from_parts(parts, Body::from(forwarded)))
        .await
}
