//! mycel-http: the one way a mycel HTTP server (the node API, a miner, the gateway, a validator's
//! status page) accepts and serves connections, so that a slow or silent client cannot hold the
//! server's connections, memory or tasks.
//!
//! ```no_run
//! # async fn run(listener: tokio::net::TcpListener, router: axum::Router) -> std::io::Result<()> {
//! let shutdown = async { let _ = tokio::signal::ctrl_c().await; };
//! mycel_http::serve(listener, router, mycel_http::ServeLimits::default(), shutdown).await
//! # }
//! ```
//!
//! # Guarantees
//!
//! - **At most [`ServeLimits::max_connections`] connections are open at once.** At the cap the
//!   server stops accepting; new clients wait in the kernel's listen backlog and are accepted as
//!   soon as a connection closes. (Waiting rather than accepting-and-closing: a short wait is
//!   better for a real client than a reset it must retry, every other limit below bounds how long
//!   an attacker can hold a slot, and the kernel queues the waiting clients at no cost to us.)
//! - **A connection that does not deliver a complete request head within
//!   [`ServeLimits::header_timeout`]** — counted from when it opened, or from the end of its
//!   previous answer on a kept-alive connection — **is closed** without an answer. This covers
//!   the classic slowloris: a partial request line or headers, dripped or never finished.
//! - **A request body must arrive whole within [`ServeLimits::body_timeout`]** of its request
//!   head: one total deadline, not a per-read one, so a client dripping a byte every few seconds
//!   is cut off too. Such a request gets `408` with `{"error": {"code": "request_timeout",
//!   "message": …}}` and the connection is closed. A body over [`ServeLimits::max_body_bytes`]
//!   gets `413` (`request_too_large`). Handlers receive the body already read, so their own,
//!   smaller limits (the gateway's 1 MiB) still apply.
//! - **Except on the routes given to [`Server::stream_bodies`]**, whose bodies reach the handler
//!   as they arrive and never sit whole in memory (uploads of a GiB or more). There:
//!   - a request declaring a `Content-Length` over [`StreamedBodies::max_bytes`] gets `413`
//!     (`request_too_large`, `Connection: close`) before its handler runs;
//!   - the body yields [`BodyError::TooLarge`] instead of the byte past `max_bytes`;
//!   - the body yields [`BodyError::TooSlow`] once the server has waited for the client longer
//!     than [`ServeLimits::body_timeout`] (a grace) plus one second per
//!     [`StreamedBodies::min_bytes_per_sec`] bytes received — a dripping client is cut as soon
//!     as it falls behind that average, and a silent one by a timer at its deadline, not when it
//!     next sends. Only time spent waiting for the client's bytes counts: a handler pausing its
//!     reads (a slow disk) does not use up the client's time. Each cut counts in
//!     [`StatsSnapshot::body_timeouts`];
//!   - a handler finds the error with [`BodyError::from_axum`] and can answer with it (`413`,
//!     `408`, in the same JSON shape); whatever it answers, a request whose body was cut gets
//!     `Connection: close`, so its connection ends with the answer.
//! - **A client that reads none of an answer for [`ServeLimits::write_timeout`]** (the server's
//!   writes make no progress for that long) is disconnected.
//! - **Legitimate long work is not cut**: nothing bounds how long a handler takes to answer (a
//!   model decode can take minutes) nor how long a response streams (a server-sent-event stream
//!   lives as long as its client keeps reading).
//! - **Graceful shutdown**: when the `shutdown` future resolves the server stops accepting, closes
//!   idle connections, lets requests in flight finish and closes every connection still open
//!   [`ServeLimits::shutdown_grace`] later (an event stream never finishes by itself).
//!
//! # Assumes
//!
//! - A tokio runtime with time and I/O enabled (both `tokio::runtime::Builder::enable_all` and
//!   commonware's tokio runner give one).
//! - Clients speak HTTP/1.x, as every mycel client does (reqwest, curl, the OpenAI SDKs): h2c
//!   prior-knowledge is not served, just as `axum::serve` without axum's `http2` feature did not.
//!
//! # Does not
//!
//! - Limit requests per client or per address (the miner's queue and the gateway's prices do
//!   that), speak TLS (put a TLS terminator in front), or upgrade connections (websockets).
//! - Bound the time between a request's body arriving and its answer starting: that is the
//!   handler's work, and only the handler knows how long it may take. Likewise a handler that
//!   stops reading a streamed body holds its client for as long as it chooses.

mod body;
mod io;
mod limits;
mod request;
mod server;

pub use body::BodyError;
pub use limits::{LimitsError, ServeLimits, StreamedBodies};
pub use server::{Server, ServerStats, StatsSnapshot};

/// Serves `router` on `listener` with `limits` until `shutdown` resolves (see the crate's
/// guarantees), then drains the open connections for at most [`ServeLimits::shutdown_grace`].
///
/// Errors only when `limits` are not usable (an [`std::io::ErrorKind::InvalidInput`] wrapping a
/// [`LimitsError`]); accept errors such as running out of file descriptors are logged and retried.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let server = Server::new(listener, router, limits)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    server.run(shutdown).await
}
