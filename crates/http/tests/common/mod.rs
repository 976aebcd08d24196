//! The harness every test of this crate starts its server and raw clients through: a real
//! `mycel_http` server on loopback, its counts, and a wait for a connection to close.
//!
//! No test sleeps to decide an outcome: each waits for the event it expects (EOF, a status line, a
//! counter) under [`GENEROUS`], and fails with what it saw if that passes.

// Each test file uses part of the harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use mycel_http::{ServeLimits, Server, ServerStats, StatsSnapshot};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Far longer than any bound under test, so a slow CI machine does not fail a correct server.
pub const GENEROUS: Duration = Duration::from_secs(30);

/// A listener on a free loopback port, for [`Server::new`].
pub async fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port")
}

/// A running server and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub stats: ServerStats,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Serves `router` with `limits` on a free loopback port.
    pub async fn serve(router: Router, limits: ServeLimits) -> Running {
        let server = Server::new(loopback().await, router, limits).expect("usable limits");
        Running::start(server)
    }

    /// Runs `server` (built on [`loopback`]) until the `Running` is stopped or dropped.
    pub fn start(server: Server) -> Running {
        let addr = server.local_addr().expect("a bound listener");
        let stats = server.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            stats,
            stop: Some(stop),
            task,
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Waits (under [`GENEROUS`]) until the server's counts satisfy `what`.
    pub async fn wait_for(
        &self,
        name: &str,
        what: impl Fn(&StatsSnapshot) -> bool,
    ) -> StatsSnapshot {
        let deadline = Instant::now() + GENEROUS;
        loop {
            let now = self.stats();
            if what(&now) {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "waited {GENEROUS:?} for {name}; stats: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a connection ended, as its client saw it.
#[derive(Debug)]
pub struct Closed {
    /// Everything the server sent before closing.
    pub received: Vec<u8>,
    /// When the close (EOF or reset) was seen.
    pub at: Instant,
}

impl Closed {
    /// What the server sent, as text (answers and their JSON errors are ASCII).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }
}

/// Reads until the server closes the connection (EOF or reset), for at most [`GENEROUS`].
pub async fn until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Closed {
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    if tokio::time::timeout(GENEROUS, read).await.is_err() {
        panic!(
            "the server kept the connection open for {GENEROUS:?}; it sent {:?}",
            String::from_utf8_lossy(&received)
        );
    }
    Closed {
        received,
        at: Instant::now(),
    }
}
