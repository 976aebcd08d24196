//! Request bodies refused, and the streamed body: a request body handed to its handler as it
//! arrives, cut when it grows over its cap or comes too slowly.
//!
//! The rate rule, in one place ([`allowed_wait`]): a client that has sent `received` bytes may
//! keep the server waiting `grace + received / min_bytes_per_sec` in all. Only time the server
//! spends waiting for the client's bytes counts: while a handler is busy elsewhere (writing to a
//! slow disk, forwarding to another node) it is not reading, so the client cannot send, and
//! that time is not the client's fault. A silent client is cut by a timer at its deadline, not
//! when it next sends.

use std::error::Error as StdError;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::server::Counters;
use crate::StreamedBodies;

/// Why a request body was refused.
///
/// The server answers with it itself when it reads a body whole (see the crate's guarantees). A
/// streamed body (see [`StreamedBodies`]) yields it to the handler instead of more data; the
/// handler finds it with [`BodyError::from_axum`] and can answer with it, in the same JSON shape
/// the server uses (`{"error": {"code": …, "message": …}}`, with `Connection: close`):
///
/// ```
/// use axum::body::Body;
/// use axum::response::{IntoResponse, Response};
/// use futures::StreamExt as _;
/// use mycel_http::BodyError;
///
/// async fn put_blob(body: Body) -> Response {
///     let mut chunks = body.into_data_stream();
///     let mut stored = 0u64;
///     while let Some(chunk) = chunks.next().await {
///         match chunk {
///             Ok(bytes) => stored += bytes.len() as u64, // write `bytes` to disk here
///             Err(e) => {
///                 return match BodyError::from_axum(&e) {
///                     Some(refused) => refused.clone().into_response(),
///                     None => (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
///                 }
///             }
///         }
///     }
///     format!("{stored} bytes stored").into_response()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is over the most the server takes for its route (`413`).
    #[error(
        "the request body is over {max} bytes, the most this server reads here; send a smaller one"
    )]
    TooLarge {
        /// The cap: [`crate::ServeLimits::max_body_bytes`] or [`StreamedBodies::max_bytes`].
        max: u64,
    },
    /// A body read whole did not arrive within [`crate::ServeLimits::body_timeout`] (`408`); only
    /// the server answers with this one, a handler never sees it.
    #[error(
        "the request body did not arrive within {seconds} s of the request head; send the whole \
         body at once (this server waits at most {seconds} s for it)",
        seconds = .within.as_secs_f64()
    )]
    TimedOut {
        /// The body timeout.
        within: Duration,
    },
    /// A streamed body came slower than [`StreamedBodies::min_bytes_per_sec`] after its grace
    /// (`408`).
    #[error(
        "the request body came too slowly: {received} bytes while this server waited {waited:.1} \
         s; it waits {grace} s, then needs {min_bytes_per_sec} bytes/s on average; send it over \
         a faster connection",
        waited = .waited.as_secs_f64(),
        grace = .grace.as_secs_f64()
    )]
    TooSlow {
        /// Bytes that had arrived when the body was cut.
        received: u64,
        /// How long the server had waited for them (see [`StreamedBodies`]).
        waited: Duration,
        /// The grace: [`crate::ServeLimits::body_timeout`].
        grace: Duration,
        /// The rate owed after the grace.
        min_bytes_per_sec: u64,
    },
    /// The client broke the body off or framed it wrong (`400`).
    #[error(
        "the request body could not be read ({0}); send it again with a valid length or chunking"
    )]
    Unreadable(String),
}

impl BodyError {
    /// The `code` of the JSON error answer: `request_too_large`, `request_timeout` or `bad_body`.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "request_too_large",
            BodyError::TimedOut { .. } | BodyError::TooSlow { .. } => "request_timeout",
            BodyError::Unreadable(_) => "bad_body",
        }
    }

    /// The status of the answer: 413, 408 or 400.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut { .. } | BodyError::TooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyError::Unreadable(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The `BodyError` behind an error a handler got reading a streamed body, if the body was cut
    /// (rather than, say, refused by the handler's own length limit).
    pub fn from_axum(error: &axum::Error) -> Option<&BodyError> {
        Self::find(error)
    }

    /// The `BodyError` anywhere in `error`'s chain of sources, including inside an
    /// [`std::io::Error`] (which hides its payload from `source()`): for a handler that reads the
    /// body through an `AsyncRead` adapter and gets an I/O error.
    pub fn find<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a BodyError> {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(found) = error.downcast_ref::<BodyError>() {
                return Some(found);
            }
            let wrapped = error.downcast_ref::<std::io::Error>();
            if let Some(found) = wrapped.and_then(std::io::Error::get_ref) {
                return Self::find(found);
            }
            next = error.source();
        }
        None
    }
}

/// The node API's error shape. The rest of the body is unread (or the client is too slow to be
/// worth waiting for), so the connection closes after this answer.
impl IntoResponse for BodyError {
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

/// How long in all the server waits for a client that has sent `received` bytes: the grace, then
/// one second per `min_bytes_per_sec` bytes.
fn allowed_wait(grace: Duration, received: u64, min_bytes_per_sec: u64) -> Duration {
    let rate = min_bytes_per_sec.max(1);
    let nanos = u128::from(received % rate) * 1_000_000_000 / u128::from(rate);
    // `nanos` is below 10^9: the remainder is below the rate.
    let earned = Duration::new(received / rate, nanos as u32);
    grace.saturating_add(earned)
}

/// A request body handed to the handler as it arrives, which yields a [`BodyError`] instead of
/// more data once it is over its cap or too slow (see the module's rate rule).
pub(crate) struct StreamedBody<B> {
    inner: B,
    max_bytes: u64,
    min_bytes_per_sec: u64,
    grace: Duration,
    received: u64,
    /// Time spent waiting for the client in waits that have ended.
    waited: Duration,
    /// When the wait in progress began (the inner body last answered pending).
    waiting_since: Option<Instant>,
    /// Wakes a wait at its deadline. It may be set earlier than the deadline (bytes that arrived
    /// since it was set moved the deadline on), never later; it is checked and reset when it fires.
    alarm: Option<Pin<Box<Sleep>>>,
    /// The error yielded, yielded again on every later poll.
    failed: Option<BodyError>,
    /// Set when the body is cut, so that the answer closes the connection.
    cut: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl<B> StreamedBody<B> {
    /// `inner` under `bodies`' cap and rate, with `grace` before the rate is owed; `cut` is set if
    /// the body is cut.
    pub(crate) fn new(
        inner: B,
        bodies: &StreamedBodies,
        grace: Duration,
        cut: Arc<AtomicBool>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            inner,
            max_bytes: bodies.max_bytes,
            min_bytes_per_sec: bodies.min_bytes_per_sec,
            grace,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            alarm: None,
            failed: None,
            cut,
            counters,
        }
    }

    fn fail(&mut self, error: BodyError) -> BodyError {
        if matches!(error, BodyError::TooSlow { .. }) {
            self.counters.body_timed_out();
        }
        self.cut.store(true, Relaxed);
        self.failed = Some(error.clone());
        error
    }

    fn end_wait(&mut self) {
        if let Some(since) = self.waiting_since.take() {
            self.waited += since.elapsed();
        }
    }

    /// While the client owes bytes: pending until its deadline, then the error to cut it with.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<BodyError> {
        let mut now = Instant::now();
        let since = *self.waiting_since.get_or_insert(now);
        loop {
            let waited = self.waited + now.saturating_duration_since(since);
            let allowed = allowed_wait(self.grace, self.received, self.min_bytes_per_sec);
            let Some(left) = allowed.checked_sub(waited).filter(|left| !left.is_zero()) else {
                return Poll::Ready(BodyError::TooSlow {
                    received: self.received,
                    waited,
                    grace: self.grace,
                    min_bytes_per_sec: self.min_bytes_per_sec,
                });
            };
            // A deadline years away (a tiny rate) is checked again when a nearer alarm fires.
            let at = now + left.min(MAX_ALARM);
            let alarm = self
                .alarm
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if alarm.is_elapsed() {
                alarm.as_mut().reset(at);
            }
            match alarm.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => now = Instant::now(),
            }
        }
    }

    fn count(
        &mut self,
        frame: Option<Result<Frame<Bytes>, impl std::fmt::Display>>,
    ) -> Option<Result<Frame<Bytes>, BodyError>> {
        let frame = match frame? {
            Ok(frame) => frame,
            Err(e) => return Some(Err(self.fail(BodyError::Unreadable(e.to_string())))),
        };
        if let Some(data) = frame.data_ref() {
            self.received = self.received.saturating_add(data.len() as u64);
            if self.received > self.max_bytes {
                let max = self.max_bytes;
                return Some(Err(self.fail(BodyError::TooLarge { max })));
            }
        }
        Some(Ok(frame))
    }
}

/// A year: no alarm is set further ahead (tokio's timer reaches about two).
const MAX_ALARM: Duration = Duration::from_secs(365 * 24 * 3600);

impl<B> HttpBody for StreamedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(failed) = &this.failed {
            return Poll::Ready(Some(Err(failed.clone())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.end_wait();
                Poll::Ready(this.count(frame))
            }
            Poll::Pending => this
                .poll_deadline(cx)
                .map(|too_slow| Some(Err(this.fail(too_slow)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.failed.is_some() {
            return SizeHint::default();
        }
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;
    use http_body_util::{BodyExt as _, StreamBody};
    use tokio::sync::mpsc;

    const GRACE: Duration = Duration::from_secs(1);
    const RATE: u64 = 1000;

    /// A body whose client is `tx`: each message one chunk, closing `tx` ends the body.
    fn body(
        max_bytes: u64,
    ) -> (
        mpsc::UnboundedSender<Vec<u8>>,
        StreamedBody<impl HttpBody<Data = Bytes, Error = std::convert::Infallible> + Unpin>,
        Arc<Counters>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let frames = futures::stream::unfold(rx, |mut rx| async move {
            let chunk = rx.recv().await?;
            Some((Ok(Frame::data(Bytes::from(chunk))), rx))
        });
        let bodies = StreamedBodies {
            routes: Vec::new(),
            max_bytes,
            min_bytes_per_sec: RATE,
        };
        let counters = Arc::new(Counters::default());
        let streamed = StreamedBody::new(
            StreamBody::new(frames.boxed()),
            &bodies,
            GRACE,
            Arc::new(AtomicBool::new(false)),
            counters.clone(),
        );
        (tx, streamed, counters)
    }

    async fn next(
        body: &mut (impl HttpBody<Data = Bytes, Error = BodyError> + Unpin),
    ) -> Option<Result<Bytes, BodyError>> {
        let frame = body.frame().await?;
        Some(frame.map(|frame| frame.into_data().unwrap_or_default()))
    }

    #[test]
    fn the_wait_allowed_is_the_grace_then_one_second_per_rate_bytes() {
        assert_eq!(allowed_wait(GRACE, 0, RATE), GRACE);
        assert_eq!(allowed_wait(GRACE, 1500, RATE), Duration::from_millis(2500));
        assert_eq!(allowed_wait(GRACE, 1, 3), Duration::new(1, 333_333_333));
        // No overflow however far the numbers go.
        assert_eq!(allowed_wait(Duration::MAX, u64::MAX, 1), Duration::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_cut_by_the_timer_at_its_deadline() {
        let (tx, mut body, counters) = body(u64::MAX);
        let started = Instant::now();
        tx.send(vec![0; 500]).unwrap();
        assert_eq!(next(&mut body).await.unwrap().unwrap().len(), 500);
        // Silence: only the alarm can end this wait. 500 bytes buy half a second past the grace.
        let cut = next(&mut body).await.unwrap().unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
        assert!(
            matches!(cut, BodyError::TooSlow { received: 500, waited, .. } if waited == Duration::from_millis(1500)),
            "{cut:?}"
        );
        assert_eq!(cut.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(counters.snapshot().body_timeouts, 1);
        // Cut for good: bytes sent later are not handed on, and the cut is counted once.
        tx.send(vec![0; 10]).unwrap();
        assert_eq!(next(&mut body).await.unwrap(), Err(cut));
        assert_eq!(counters.snapshot().body_timeouts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_keeping_to_the_rate_is_never_cut() {
        let (tx, mut body, counters) = body(u64::MAX);
        let client = tokio::spawn(async move {
            // 100 bytes every 100 ms for 5 s: exactly the minimum rate, well past the grace.
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                tx.send(vec![7; 100]).unwrap();
            }
        });
        let mut received = 0;
        while let Some(chunk) = next(&mut body).await {
            received += chunk.expect("never cut").len();
        }
        client.await.unwrap();
        assert_eq!(received, 5000);
        assert_eq!(counters.snapshot().body_timeouts, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_handler_spends_not_reading_is_not_charged_to_the_client() {
        let (tx, mut body, _) = body(u64::MAX);
        tx.send(vec![0; 100]).unwrap();
        assert!(next(&mut body).await.unwrap().is_ok());
        // The handler is busy for ten graces (a slow disk) while the client's bytes wait for it.
        tokio::time::sleep(GRACE * 10).await;
        tx.send(vec![0; 100]).unwrap();
        assert!(next(&mut body).await.unwrap().is_ok());
        // The client has been waited for 0 s of its 1.2 s: it may still pause for 1 s.
        let client = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            tx.send(vec![0; 100]).unwrap();
        });
        assert!(next(&mut body).await.unwrap().is_ok());
        client.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_over_the_cap_are_refused_not_handed_on() {
        let (tx, mut body, counters) = body(1000);
        tx.send(vec![0; 600]).unwrap();
        tx.send(vec![0; 400]).unwrap();
        tx.send(vec![0; 1]).unwrap();
        assert_eq!(next(&mut body).await.unwrap().unwrap().len(), 600);
        assert_eq!(next(&mut body).await.unwrap().unwrap().len(), 400);
        let over = next(&mut body).await.unwrap().unwrap_err();
        assert_eq!(over, BodyError::TooLarge { max: 1000 });
        assert_eq!(over.code(), "request_too_large");
        assert!(body.cut.load(Relaxed));
        assert_eq!(counters.snapshot().body_timeouts, 0);
    }

    #[test]
    fn the_error_is_found_through_axum_and_io_wrappers() {
        let cut = BodyError::TooLarge { max: 1 };
        let axum_error = axum::Error::new(cut.clone());
        assert_eq!(BodyError::from_axum(&axum_error), Some(&cut));
        // `axum::body::to_bytes` wraps the body's error once more.
        let twice = axum::Error::new(axum::Error::new(cut.clone()));
        assert_eq!(BodyError::from_axum(&twice), Some(&cut));
        // A `StreamReader` turns it into an I/O error.
        let io = std::io::Error::other(axum::Error::new(cut.clone()));
        assert_eq!(BodyError::find(&io), Some(&cut));
        let other = axum::Error::new(std::io::Error::other("disk full"));
        assert_eq!(BodyError::from_axum(&other), None);
    }
}
