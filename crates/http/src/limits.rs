//! The limits a server applies to its clients, and their defaults.

use std::time::Duration;

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

/// Limits that would serve no one.
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
}
