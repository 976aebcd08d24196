//! The accept loop, the connection cap and each connection's task.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::io::WriteDeadline;
use crate::request::RequestService;
use crate::{LimitsError, ServeLimits, StreamedBodies};

/// A server bound to a listener, not yet running. [`crate::serve`] is `Server::new(..)?.run(..)`;
/// build a `Server` yourself to read its [`ServerStats`] (tests, metrics).
pub struct Server {
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    streamed: Option<Arc<StreamedBodies>>,
    counters: Arc<Counters>,
}

impl Server {
    /// A server for `router` on `listener`, if `limits` can serve anyone.
    pub fn new(
        listener: TcpListener,
        router: Router,
        limits: ServeLimits,
    ) -> Result<Self, LimitsError> {
        limits.check()?;
        Ok(Self {
            listener,
            router,
            limits,
            streamed: None,
            counters: Arc::new(Counters::default()),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A live view of the server's connections, valid while and after it runs.
    pub fn stats(&self) -> ServerStats {
        ServerStats(self.counters.clone())
    }

    /// Counts into `stats` instead: for a router that reports its own server's counts (its
    /// `/metrics`), made before the server that takes the router.
    pub fn with_stats(mut self, stats: ServerStats) -> Self {
        self.counters = stats.0;
        self
    }

    /// Hands the request bodies of `bodies.routes` to their handlers as they arrive, under
    /// `bodies`' cap and minimum rate instead of [`ServeLimits::max_body_bytes`] and one deadline
    /// (see [`StreamedBodies`]); every other request is served as before. Replaces the streamed
    /// routes of an earlier call. Errors if `bodies` could let a client hold a connection for ever.
    pub fn stream_bodies(mut self, bodies: StreamedBodies) -> Result<Self, LimitsError> {
        bodies.check()?;
        self.streamed = Some(Arc::new(bodies));
        Ok(self)
    }

    /// Serves until `shutdown` resolves, then drains (see [`ServeLimits::shutdown_grace`]).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let Server {
            listener,
            router,
            limits,
            streamed,
            counters,
        } = self;
        let service = RequestService {
            router,
            limits,
            streamed,
            counters,
        };
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let (drain, draining) = watch::channel(());
        let mut connections = JoinSet::new();
        let mut shutdown = pin!(shutdown);
        // A slot is taken before accepting, so at the cap the listener is not polled at all and
        // new clients wait in the kernel's backlog.
        let mut slot: Option<OwnedSemaphorePermit> = None;
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(ended) = connections.join_next() => log_connection_end(ended),
                acquired = slots.clone().acquire_owned(), if slot.is_none() => slot = acquired.ok(),
                accepted = listener.accept(), if slot.is_some() => match accepted {
                    Ok((stream, remote)) => {
                        let Some(taken) = slot.take() else { continue };
                        let connection = Connection {
                            service: service.clone(),
                            draining: draining.clone(),
                            _slot: taken,
                        };
                        // A connection logs in the server's span (a role's, under `mycel up`).
                        connections.spawn(connection.serve(stream, remote).in_current_span());
                    }
                    Err(e) => on_accept_error(e).await,
                },
            }
        }
        drop(listener);
        drop(slot);
        // Every connection finishes what it is answering and closes; the idle ones close now.
        let _ = drain.send(());
        let drained = tokio::time::timeout(limits.shutdown_grace, async {
            while let Some(ended) = connections.join_next().await {
                log_connection_end(ended);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                still_open = connections.len(),
                grace_s = limits.shutdown_grace.as_secs_f64(),
                "closing the connections still busy after the shutdown grace"
            );
            connections.shutdown().await;
        }
        Ok(())
    }
}

/// One accepted connection and what it holds: a slot under the cap, freed when it ends.
struct Connection {
    /// Serves each request; its limits and counts are the connection's too.
    service: RequestService,
    draining: watch::Receiver<()>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream, remote: SocketAddr) {
        let limits = self.service.limits;
        let counters = self.service.counters.clone();
        let _open = counters.opened();
        // Answers are often small writes (an event, a token); do not hold them for Nagle.
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(WriteDeadline::new(
            stream,
            limits.write_timeout,
            counters.clone(),
        ));
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        let mut conn = pin!(builder.serve_connection(io, self.service));
        let mut draining = false;
        let result = loop {
            tokio::select! {
                result = conn.as_mut() => break result,
                _ = self.draining.changed(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        };
        if let Err(e) = result {
            if e.is_timeout() {
                counters.header_timed_out();
                tracing::debug!(%remote, "closed a connection that sent no complete request head in time");
            } else {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        }
    }
}

fn log_connection_end(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        if e.is_panic() {
            tracing::error!(error = %e, "a request handler panicked; its connection was dropped");
        }
    }
}

/// Errors of `accept` that concern one client only are skipped; others (out of file descriptors)
/// are logged and retried after a pause, as `axum::serve` does, instead of spinning.
async fn on_accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// What every connection of a server counts.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    open: AtomicUsize,
    peak: AtomicUsize,
    accepted: AtomicU64,
    header_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
    write_timeouts: AtomicU64,
}

impl Counters {
    fn opened(self: &Arc<Self>) -> OpenGuard {
        self.accepted.fetch_add(1, Relaxed);
        let now = self.open.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(now, Relaxed);
        OpenGuard(self.clone())
    }

    fn header_timed_out(&self) {
        self.header_timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn body_timed_out(&self) {
        self.body_timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn write_timed_out(&self) {
        self.write_timeouts.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            open: self.open.load(Relaxed),
            peak: self.peak.load(Relaxed),
            accepted: self.accepted.load(Relaxed),
            header_timeouts: self.header_timeouts.load(Relaxed),
            body_timeouts: self.body_timeouts.load(Relaxed),
            write_timeouts: self.write_timeouts.load(Relaxed),
        }
    }
}

/// Counts one open connection for as long as it lives (including when its task is aborted).
struct OpenGuard(Arc<Counters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

/// A live view of a server's connections.
#[derive(Debug, Clone, Default)]
pub struct ServerStats(Arc<Counters>);

impl ServerStats {
    /// Counts of no server yet; give them to one with [`Server::with_stats`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts now.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.0.snapshot()
    }
}

/// A server's connection counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Connections open now.
    pub open: usize,
    /// The most connections that were ever open at once (never above the cap).
    pub peak: usize,
    /// Connections accepted since the server started.
    pub accepted: u64,
    /// Connections closed for sending no complete request head in time.
    pub header_timeouts: u64,
    /// Requests whose body did not arrive in time: a whole body answered 408, or a streamed body
    /// cut as too slow.
    pub body_timeouts: u64,
    /// Connections cut because the client read none of the answer in time.
    pub write_timeouts: u64,
}

impl StatsSnapshot {
    /// The counts as Prometheus text (exposition format 0.0.4), each metric named
    /// `{prefix}_http_…`.
    pub fn to_prometheus(&self, prefix: &str) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {prefix}_http_{name} {help}");
            let _ = writeln!(out, "# TYPE {prefix}_http_{name} {kind}");
            let _ = writeln!(out, "{prefix}_http_{name} {value}");
        };
        metric(
            "connections_open",
            "gauge",
            "HTTP connections open now.",
            self.open as u64,
        );
        metric(
            "connections_peak",
            "gauge",
            "Most HTTP connections open at once since the start (at most the cap).",
            self.peak as u64,
        );
        metric(
            "connections_accepted_total",
            "counter",
            "HTTP connections accepted.",
            self.accepted,
        );
        metric(
            "header_timeouts_total",
            "counter",
            "Connections closed for sending no complete request head in time.",
            self.header_timeouts,
        );
        metric(
            "body_timeouts_total",
            "counter",
            "Requests whose body did not arrive in time (answered 408, or streamed and cut).",
            self.body_timeouts,
        );
        metric(
            "write_timeouts_total",
            "counter",
            "Connections cut because the client read none of the answer in time.",
            self.write_timeouts,
        );
        out
    }
}
