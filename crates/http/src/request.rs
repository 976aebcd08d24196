//! Each request: its body read whole, within a size cap and one total deadline, before the router
//! sees it; or, on a streamed route, handed on as it arrives under a cap and a minimum rate.
//!
//! hyper bounds the time to a request head but not to its body: a client could send
//! `Content-Length: 1000000` and a byte a minute, and the handler's `Json`/`Bytes` extractor would
//! wait for ever. Reading the body here, under [`ServeLimits::body_timeout`], bounds that for every
//! handler at once; handlers then read a body already in memory, so their own limits still hold.
//! The few routes whose bodies are too large for memory ([`StreamedBodies`]) get a body that
//! bounds itself instead (see `body.rs`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, request::Parts, HeaderValue, Request, Response};
use axum::response::IntoResponse as _;
use axum::Router;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};
use tower::ServiceExt;

use crate::body::StreamedBody;
use crate::server::Counters;
use crate::{BodyError, ServeLimits, StreamedBodies};

/// The hyper service of one connection: bounded body read (or streamed body), then the router.
#[derive(Clone)]
pub(crate) struct RequestService {
    pub(crate) router: Router,
    pub(crate) limits: ServeLimits,
    pub(crate) streamed: Option<Arc<StreamedBodies>>,
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
            let streamed = this
                .streamed
                .clone()
                .filter(|bodies| bodies.streams(&parts.method, parts.uri.path()));
            Ok(match streamed {
                Some(bodies) => this.stream(parts, body, &bodies).await,
                None => this.read_whole(parts, body).await,
            })
        })
    }
}

impl RequestService {
    async fn read_whole(self, parts: Parts, body: Incoming) -> Response<Body> {
        match read_body(body, &self.limits).await {
            Ok(body) => self.route(Request::from_parts(parts, body)).await,
            Err(refused) => {
                if matches!(refused, BodyError::TimedOut { .. }) {
                    self.counters.body_timed_out();
                }
                refused.into_response()
            }
        }
    }

    async fn stream(self, parts: Parts, body: Incoming, bodies: &StreamedBodies) -> Response<Body> {
        // A declared length over the cap is refused before a byte of it is read.
        if body.size_hint().lower() > bodies.max_bytes {
            let max = bodies.max_bytes;
            return BodyError::TooLarge { max }.into_response();
        }
        let cut = Arc::new(AtomicBool::new(false));
        let body = StreamedBody::new(
            body,
            bodies,
            self.limits.body_timeout,
            cut.clone(),
            self.counters.clone(),
        );
        let mut response = self
            .route(Request::from_parts(parts, Body::new(body)))
            .await;
        // The rest of a cut body is unread, or its client too slow to wait for: whatever the
        // handler answered, the connection ends with the answer.
        if cut.load(Relaxed) {
            let headers = response.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    async fn route(self, request: Request<Body>) -> Response<Body> {
        let Ok(response) = self.router.oneshot(request).await;
        response
    }
}

async fn read_body(body: Incoming, limits: &ServeLimits) -> Result<Body, BodyError> {
    if body.is_end_stream() {
        return Ok(Body::empty());
    }
    let max = limits.max_body_bytes;
    let too_large = BodyError::TooLarge { max: max as u64 };
    // A declared length over the cap is refused before a byte of it is read.
    if body.size_hint().lower() > max as u64 {
        return Err(too_large);
    }
    let read = Limited::new(body, max).collect();
    match tokio::time::timeout(limits.body_timeout, read).await {
        Err(_elapsed) => Err(BodyError::TimedOut {
            within: limits.body_timeout,
        }),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large),
        Ok(Err(e)) => Err(BodyError::Unreadable(e.to_string())),
        Ok(Ok(collected)) => Ok(Body::from(collected.to_bytes())),
    }
}
