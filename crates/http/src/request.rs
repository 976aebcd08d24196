//! Each request: its body read whole, within a size cap and one total deadline, before the router
//! sees it.
//!
//! hyper bounds the time to a request head but not to its body: a client could send
//! `Content-Length: 1000000` and a byte a minute, and the handler's `Json`/`Bytes` extractor would
//! wait for ever. Reading the body here, under [`ServeLimits::body_timeout`], bounds that for every
//! handler at once; handlers then read a body already in memory, so their own limits still hold.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};
use tower::ServiceExt;

use crate::server::Counters;
use crate::ServeLimits;

/// The hyper service of one connection: bounded body read, then the router.
#[derive(Clone)]
pub(crate) struct RequestService {
    pub(crate) router: Router,
    pub(crate) limits: ServeLimits,
    pub(crate) counters: Arc<Counters>,
}

impl hyper::service::Service<Request<Incoming>> for RequestService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = match read_body(body, &this.limits).await {
                Ok(body) => body,
                Err(refused) => {
                    if matches!(refused, BodyRefused::Timeout { .. }) {
                        this.counters.body_timed_out();
                    }
                    return Ok(refused.into_response());
                }
            };
            this.router.oneshot(Request::from_parts(parts, body)).await
        })
    }
}

/// Why a request's body was not handed to the router.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyRefused {
    #[error(
        "the request body did not arrive within {seconds} s of the request head; send the whole \
         body at once (this server waits at most {seconds} s for it)"
    )]
    Timeout { seconds: f64 },
    #[error(
        "the request body is over {max} bytes, the most this server reads; send a smaller one"
    )]
    TooLarge { max: usize },
    #[error(
        "the request body could not be read ({0}); send it again with a valid length or chunking"
    )]
    Unreadable(String),
}

impl BodyRefused {
    fn code(&self) -> &'static str {
        match self {
            BodyRefused::Timeout { .. } => "request_timeout",
            BodyRefused::TooLarge { .. } => "request_too_large",
            BodyRefused::Unreadable(_) => "bad_body",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            BodyRefused::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyRefused::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRefused::Unreadable(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The node API's error shape. The rest of the body is unread (or the client is too slow to
    /// be worth waiting for), so the connection closes after this answer.
    fn into_response(self) -> Response<Body> {
        let json = serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}});
        let mut response = Response::new(Body::from(json.to_string()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

async fn read_body(body: Incoming, limits: &ServeLimits) -> Result<Body, BodyRefused> {
    if body.is_end_stream() {
        return Ok(Body::empty());
    }
    let max = limits.max_body_bytes;
    // A declared length over the cap is refused before a byte of it is read.
    if body.size_hint().lower() > max as u64 {
        return Err(BodyRefused::TooLarge { max });
    }
    let read = Limited::new(body, max).collect();
    match tokio::time::timeout(limits.body_timeout, read).await {
        Err(_elapsed) => Err(BodyRefused::Timeout {
            seconds: limits.body_timeout.as_secs_f64(),
        }),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(BodyRefused::TooLarge { max })
        }
        Ok(Err(e)) => Err(BodyRefused::Unreadable(e.to_string())),
        Ok(Ok(collected)) => Ok(Body::from(collected.to_bytes())),
    }
}
