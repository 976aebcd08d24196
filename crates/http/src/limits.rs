//! The limits a server applies to its clients, and their defaults.

use std::time::Duration;

use axum::http::Method;

/// How many connections a server holds and how long it waits for each client.
///
/// Start from [`ServeLimits::default`] and change what a server needs:
///
/// ```
/// let limits = mycel_http::ServeLimits {
///     max_connections: 256,
///     ..Default::default()
/// };
/// assert!(limits.check().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections open at once; at the cap the server accepts no more until one closes.
    pub max_connections: usize,
    /// Time a connection has to deliver a complete request head, from when it opened or from the
    /// end of its previous answer (so it is also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// Time a request's whole body has to arrive, counted from its request head.
    pub body_timeout: Duration,
    /// Time the server's writes to a client may make no progress before it is disconnected.
    pub write_timeout: Duration,
    /// The largest request body read; larger ones get 413.
    pub max_body_bytes: usize,
    /// After shutdown is asked for, how long requests in flight may still finish.
    pub shutdown_grace: Duration,
}

impl ServeLimits {
    /// Connections open at once by default.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
    /// Time for a request head by default.
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Time for a request body by default.
    pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
    /// Time a write may stall by default.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
    /// The largest request body by default: 2 MiB, axum's own default body limit, which every
    /// mycel server relied on before this crate existed.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
    /// The shutdown grace by default.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

    /// The most connections a server may be set to hold (tokio's semaphore bound).
    pub const MAX_CONNECTIONS_LIMIT: usize = tokio::sync::Semaphore::MAX_PERMITS;

    /// Whether these limits can serve anyone.
    pub fn check(&self) -> Result<(), LimitsError> {
        if self.max_connections == 0 {
            return Err(LimitsError::NoConnections);
        }
        if self.max_connections > Self::MAX_CONNECTIONS_LIMIT {
            return Err(LimitsError::TooManyConnections(self.max_connections));
        }
        for (name, value) in [
            ("header timeout", self.header_timeout),
            ("body timeout", self.body_timeout),
            ("write timeout", self.write_timeout),
        ] {
            if value.is_zero() {
                return Err(LimitsError::ZeroTimeout(name));
            }
        }
        Ok(())
    }
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            body_timeout: Self::DEFAULT_BODY_TIMEOUT,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Routes whose request bodies reach their handler as they arrive instead of whole: uploads too
/// large to hold in memory, such as a storage node's `PUT /v1/blobs`. Give them to
/// [`Server::stream_bodies`](crate::Server::stream_bodies).
///
/// A streamed body is not bounded by [`ServeLimits::max_body_bytes`] and one total deadline but by
/// its own cap and a minimum rate: the server waits [`ServeLimits::body_timeout`] (the grace) plus
/// one second per `min_bytes_per_sec` bytes received, counting only time spent waiting for the
/// client's bytes — from the handler asking for more to their arrival — so time a handler spends
/// not reading (writing to a slow disk) is not charged to the client. A request declaring a
/// `Content-Length` over `max_bytes` gets `413` before its handler runs. Otherwise the handler
/// reads an [`axum::body::Body`] that yields a [`BodyError`](crate::BodyError) (`TooLarge`,
/// `TooSlow`) instead of more data once the client breaks either bound; the answer to such a
/// request closes its connection, whatever the handler answers.
///
/// ```
/// use axum::http::Method;
///
/// let uploads = mycel_http::StreamedBodies {
///     routes: vec![(Method::PUT, "/v1/blobs".into())],
///     max_bytes: 2 << 30,
///     min_bytes_per_sec: 64 * 1024,
/// };
/// assert!(uploads.check().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedBodies {
    /// The requests streamed: a method and a path, either exact (`/v1/blobs`) or, ending in `/`, a
    /// prefix (`/v1/blobs/` streams `/v1/blobs/{id}`). Paths are matched before any decoding, as
    /// the router would see them.
    pub routes: Vec<(Method, String)>,
    /// The largest body streamed; a body that sends more is cut.
    pub max_bytes: u64,
    /// The slowest average rate, in bytes a second, a client may send at after the grace.
    pub min_bytes_per_sec: u64,
}

impl StreamedBodies {
    /// Whether these routes and bounds keep a slow client from holding a connection for ever.
    pub fn check(&self) -> Result<(), LimitsError> {
        if self.min_bytes_per_sec == 0 {
            return Err(LimitsError::NoMinimumRate);
        }
        if let Some((_, path)) = self.routes.iter().find(|(_, path)| !path.starts_with('/')) {
            return Err(LimitsError::NotAPath(path.clone()));
        }
        Ok(())
    }

    /// Whether a request for `method` and `path` is streamed.
    pub(crate) fn streams(&self, method: &Method, path: &str) -> bool {
        self.routes.iter().any(|(route_method, route)| {
            let matches = if route.ends_with('/') {
                path.starts_with(route.as_str())
            } else {
                path == route
            };
            route_method == method && matches
        })
    }
}

/// Limits that would serve no one, or would let a client hold a connection for ever.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error(
        "the connection cap is 0, so no client could connect: allow at least 1 (default 1024)"
    )]
    NoConnections,
    #[error(
        "a connection cap of {0} is more than can be counted; use at most {max} (default 1024)",
        max = ServeLimits::MAX_CONNECTIONS_LIMIT
    )]
    TooManyConnections(usize),
    #[error("the {0} is 0, which would close every connection at once: give it at least 1 s")]
    ZeroTimeout(&'static str),
    #[error(
        "streamed bodies have no minimum rate (0 bytes/s), so a silent client could hold its \
         connection for ever: give at least 1 (an upload route might ask for 64 KiB/s)"
    )]
    NoMinimumRate,
    #[error("the streamed route {0:?} is not a path: start it with '/' (\"/v1/blobs\")")]
    NotAPath(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_usable() {
        assert_eq!(ServeLimits::default().check(), Ok(()));
    }

    #[test]
    fn limits_that_serve_no_one_are_refused_with_a_fix() {
        let none = ServeLimits {
            max_connections: 0,
            ..Default::default()
        };
        assert_eq!(none.check(), Err(LimitsError::NoConnections));
        assert!(none.check().unwrap_err().to_string().contains("at least 1"));
        let instant = ServeLimits {
            body_timeout: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(
            instant.check(),
            Err(LimitsError::ZeroTimeout("body timeout"))
        );
        let huge = ServeLimits {
            max_connections: usize::MAX,
            ..Default::default()
        };
        assert!(matches!(
            huge.check(),
            Err(LimitsError::TooManyConnections(_))
        ));
    }

    fn uploads(routes: &[(Method, &str)]) -> StreamedBodies {
        StreamedBodies {
            routes: routes
                .iter()
                .map(|(m, p)| (m.clone(), p.to_string()))
                .collect(),
            max_bytes: 1 << 30,
            min_bytes_per_sec: 64 * 1024,
        }
    }

    #[test]
    fn streamed_routes_match_exact_paths_and_prefixes_ending_in_a_slash() {
        let bodies = uploads(&[(Method::PUT, "/v1/blobs"), (Method::POST, "/v1/parts/")]);
        assert!(bodies.streams(&Method::PUT, "/v1/blobs"));
        assert!(!bodies.streams(&Method::POST, "/v1/blobs"), "method too");
        assert!(!bodies.streams(&Method::PUT, "/v1/blobs/x"), "exact");
        assert!(!bodies.streams(&Method::PUT, "/v1/blobsx"));
        assert!(bodies.streams(&Method::POST, "/v1/parts/7"));
        assert!(bodies.streams(&Method::POST, "/v1/parts/"));
        assert!(!bodies.streams(&Method::POST, "/v1/parts"));
    }

    #[test]
    fn streamed_bodies_that_could_hold_a_connection_for_ever_are_refused() {
        assert_eq!(uploads(&[(Method::PUT, "/v1/blobs")]).check(), Ok(()));
        let no_rate = StreamedBodies {
            min_bytes_per_sec: 0,
            ..uploads(&[])
        };
        assert_eq!(no_rate.check(), Err(LimitsError::NoMinimumRate));
        assert_eq!(
            uploads(&[(Method::PUT, "v1/blobs")]).check(),
            Err(LimitsError::NotAPath("v1/blobs".into()))
        );
    }
}
