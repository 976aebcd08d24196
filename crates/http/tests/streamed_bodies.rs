//! Streamed request bodies against a real `mycel_http` server on loopback: a large upload reaches
//! its handler chunk by chunk, while slow, silent and oversized clients are cut within their
//! bounds and the handler is told why. Routes not streamed keep the whole-body limits.
//!
//! No test sleeps to decide an outcome (see the harness in `common`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::Router;
use common::{until_closed, Closed, Running, GENEROUS};
use futures::StreamExt as _;
use mycel_http::{BodyError, ServeLimits, Server, StreamedBodies};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// The grace of a streamed body, and the whole-body deadline.
const BODY_TIMEOUT: Duration = Duration::from_secs(1);
/// The minimum rate owed after the grace.
const MIN_RATE: u64 = 64 * 1024;
/// The whole-body cap, far below what the streamed route takes.
const MAX_BODY_BYTES: usize = 1024;
const MIB: u64 = 1024 * 1024;

/// What a streamed handler saw of one body.
#[derive(Debug)]
struct Seen {
    bytes: u64,
    largest_chunk: usize,
    sha256: [u8; 32],
    /// Why the body was cut, if it was.
    cut: Option<BodyError>,
}

/// What the handlers share with the test.
struct Observed {
    /// Streamed handlers that ran.
    runs: AtomicUsize,
    /// Notified when a streamed handler gets its first bytes.
    first_bytes: Notify,
    /// Each streamed body, once read to its end or cut.
    seen: mpsc::UnboundedSender<Seen>,
}

/// Reads a streamed body to its end, hashing it, and reports what it saw; `Err` if it was cut.
async fn read_streamed(observed: &Observed, body: Body) -> Result<(), BodyError> {
    observed.runs.fetch_add(1, Relaxed);
    let mut chunks = body.into_data_stream();
    let mut seen = Seen {
        bytes: 0,
        largest_chunk: 0,
        sha256: [0; 32],
        cut: None,
    };
    let mut hash = Sha256::new();
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(chunk) => {
                if seen.bytes == 0 {
                    observed.first_bytes.notify_one();
                }
                seen.bytes += chunk.len() as u64;
                seen.largest_chunk = seen.largest_chunk.max(chunk.len());
                hash.update(&chunk);
            }
            Err(e) => {
                let refused = BodyError::from_axum(&e)
                    .cloned()
                    .unwrap_or_else(|| panic!("a cut body says why: {e}"));
                seen.cut = Some(refused.clone());
                let _ = observed.seen.send(seen);
                return Err(refused);
            }
        }
    }
    seen.sha256 = hash.finalize().into();
    let _ = observed.seen.send(seen);
    Ok(())
}

/// `PUT /v1/blobs`: answers a cut body with the error itself (the JSON shape).
async fn put_blob(State(observed): State<Arc<Observed>>, body: Body) -> Response {
    match read_streamed(&observed, body).await {
        Ok(()) => "stored".into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// `PUT /v1/parts/{n}`: answers a cut body in its own words, without `Connection: close`.
async fn put_part(State(observed): State<Arc<Observed>>, body: Body) -> Response {
    match read_streamed(&observed, body).await {
        Ok(()) => "stored".into_response(),
        Err(refused) => (refused.status(), "cut").into_response(),
    }
}

/// A server streaming `PUT /v1/blobs` and `PUT /v1/parts/…` up to `max_bytes`, reading `/echo`
/// whole; and what its handlers see.
async fn start(max_bytes: u64) -> (Running, Arc<Observed>, mpsc::UnboundedReceiver<Seen>) {
    let (tx, seen) = mpsc::unbounded_channel();
    let observed = Arc::new(Observed {
        runs: AtomicUsize::new(0),
        first_bytes: Notify::new(),
        seen: tx,
    });
    let router = Router::new()
        .route("/v1/blobs", put(put_blob))
        .route("/v1/parts/{n}", put(put_part))
        .route(
            "/echo",
            post(|body: axum::body::Bytes| async move { format!("{} bytes", body.len()) }),
        )
        .with_state(observed.clone());
    let limits = ServeLimits {
        body_timeout: BODY_TIMEOUT,
        max_body_bytes: MAX_BODY_BYTES,
        ..Default::default()
    };
    let uploads = StreamedBodies {
        routes: vec![
            (Method::PUT, "/v1/blobs".into()),
            (Method::PUT, "/v1/parts/".into()),
        ],
        max_bytes,
        min_bytes_per_sec: MIN_RATE,
    };
    let server = Server::new(common::loopback().await, router, limits)
        .expect("usable limits")
        .stream_bodies(uploads)
        .expect("usable streamed bodies");
    (Running::start(server), observed, seen)
}

/// The next body a handler saw, under [`GENEROUS`].
async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(GENEROUS, seen.recv())
        .await
        .expect("a handler saw a body")
        .expect("the server is running")
}

/// `size` bytes in chunks of at most 64 KiB, each different (its index in its first bytes).
fn chunks(size: u64) -> impl Iterator<Item = Vec<u8>> {
    const CHUNK: u64 = 64 * 1024;
    let pattern: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    (0..size.div_ceil(CHUNK)).map(move |i| {
        let mut chunk = pattern[..CHUNK.min(size - i * CHUNK) as usize].to_vec();
        let stamp = i.to_le_bytes();
        let n = stamp.len().min(chunk.len());
        chunk[..n].copy_from_slice(&stamp[..n]);
        chunk
    })
}

fn assert_answer(closed: &Closed, status: u16, body: &str) {
    let text = closed.text();
    assert!(text.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
    assert!(text.contains(body), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
}

#[tokio::test]
async fn a_large_upload_reaches_the_handler_chunk_by_chunk() {
    let size = 64 * MIB;
    let (server, observed, mut seen) = start(size).await;
    let (tx, rx) = mpsc::channel::<Vec<u8>>(4);
    let body = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, std::io::Error>(chunk), rx))
    });
    let upload = tokio::spawn(
        reqwest::Client::new()
            .put(server.url("/v1/blobs"))
            .body(reqwest::Body::wrap_stream(body))
            .timeout(GENEROUS)
            .send(),
    );
    // Half the body, then nothing more until the handler has had some of it: a server that held
    // the body whole would never run the handler, and this would time out.
    let mut sent = Sha256::new();
    let mut chunks = chunks(size);
    for chunk in chunks.by_ref().take(512) {
        sent.update(&chunk);
        tx.send(chunk).await.unwrap();
    }
    tokio::time::timeout(GENEROUS, observed.first_bytes.notified())
        .await
        .expect("the handler got the first bytes while the client was still sending");
    for chunk in chunks {
        sent.update(&chunk);
        tx.send(chunk).await.unwrap();
    }
    drop(tx);
    let answer = upload.await.unwrap().expect("the upload is answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "stored");
    let seen = next_seen(&mut seen).await;
    assert_eq!(seen.cut, None);
    assert_eq!(seen.bytes, size, "every byte, exactly the cap");
    assert_eq!(seen.sha256, <[u8; 32]>::from(sent.finalize()));
    assert!(
        seen.largest_chunk as u64 <= MIB,
        "chunk by chunk, never the body whole: {seen:?}"
    );
    let stats = server.stats();
    assert_eq!(stats.body_timeouts, 0, "{stats:?}");
}

#[tokio::test]
async fn a_client_dripping_a_body_is_cut_at_its_deadline_and_told_why() {
    let (server, _observed, mut seen) = start(64 * MIB).await;
    let client = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = client.into_split();
    let started = Instant::now();
    let drip = tokio::spawn(async move {
        let head = b"PUT /v1/blobs HTTP/1.1\r\nHost: mycel\r\nContent-Length: 1000000\r\n\r\n";
        write.write_all(head).await?;
        // Ten bytes a second, each byte well within the grace of the last.
        for _ in 0..1000 {
            write.write_all(b"x").await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok::<(), std::io::Error>(())
    });
    let closed = until_closed(&mut read).await;
    // A dripping client owes 64 KiB/s once the grace is over, so it is cut just after it.
    let took = closed.at - started;
    assert!(took >= BODY_TIMEOUT, "not before the grace: {took:?}");
    assert!(took < BODY_TIMEOUT * 3, "close to the deadline: {took:?}");
    assert_answer(&closed, 408, r#""code":"request_timeout""#);
    let seen = next_seen(&mut seen).await;
    assert!(
        matches!(seen.cut, Some(BodyError::TooSlow { received, min_bytes_per_sec: MIN_RATE, .. }) if received == seen.bytes && received < 100),
        "{seen:?}"
    );
    drip.abort();
    server
        .wait_for("the cut to be counted", |s| s.body_timeouts == 1)
        .await;
}

#[tokio::test]
async fn a_client_gone_silent_is_cut_by_the_timer_when_its_bytes_are_used_up() {
    let (server, _observed, mut seen) = start(64 * MIB).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    client
        .write_all(b"PUT /v1/parts/1 HTTP/1.1\r\nHost: mycel\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .unwrap();
    // 128 KiB at once buy two seconds at 64 KiB/s on top of the grace; then silence, so only a
    // timer can cut the client.
    let sent = 2 * MIN_RATE;
    client.write_all(&vec![b'x'; sent as usize]).await.unwrap();
    let closed = until_closed(&mut client).await;
    let deadline = BODY_TIMEOUT + Duration::from_secs(2);
    let took = closed.at - started;
    assert!(took >= deadline, "the bytes sent bought time: {took:?}");
    assert!(
        took < deadline + BODY_TIMEOUT * 2,
        "close to the deadline: {took:?}"
    );
    // The handler answered in its own words; the server closed the connection all the same.
    assert_answer(&closed, 408, "cut");
    let seen = next_seen(&mut seen).await;
    assert!(
        matches!(seen.cut, Some(BodyError::TooSlow { received, .. }) if received == sent),
        "{seen:?}"
    );
    assert_eq!(seen.bytes, sent);
    server
        .wait_for("the cut to be counted", |s| s.body_timeouts == 1)
        .await;
}

#[tokio::test]
async fn a_declared_length_over_the_cap_gets_413_before_the_handler_runs() {
    let max = MIB;
    let (server, observed, _seen) = start(max).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "PUT /v1/blobs HTTP/1.1\r\nHost: mycel\r\nContent-Length: {}\r\n\r\n",
        max + 1
    );
    client.write_all(head.as_bytes()).await.unwrap();
    let closed = until_closed(&mut client).await;
    assert_answer(&closed, 413, r#""code":"request_too_large""#);
    assert!(
        closed.text().contains(&format!("over {max} bytes")),
        "the streamed cap, not the whole-body one: {}",
        closed.text()
    );
    assert_eq!(observed.runs.load(Relaxed), 0, "the handler never ran");
}

#[tokio::test]
async fn a_chunked_body_over_the_cap_is_cut_and_the_handler_sees_too_large() {
    let max = MIB;
    let (server, _observed, mut seen) = start(max).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"PUT /v1/blobs HTTP/1.1\r\nHost: mycel\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    // One byte over the cap, and no end: only the cap can end this body.
    let writer = async {
        for chunk in chunks(max + 1) {
            client
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            client.write_all(&chunk).await?;
            client.write_all(b"\r\n").await?;
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(GENEROUS, writer)
        .await
        .expect("the server read the body")
        .expect("the server read the body");
    let closed = until_closed(&mut client).await;
    assert_answer(&closed, 413, r#""code":"request_too_large""#);
    let seen = next_seen(&mut seen).await;
    assert_eq!(seen.cut, Some(BodyError::TooLarge { max }));
    assert_eq!(seen.bytes, max, "not a byte over the cap handed on");
    assert_eq!(server.stats().body_timeouts, 0);
}

#[tokio::test]
async fn a_route_not_streamed_keeps_the_whole_body_cap() {
    let (server, observed, _seen) = start(64 * MIB).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: mycel\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY_BYTES + 1
    );
    client.write_all(head.as_bytes()).await.unwrap();
    let closed = until_closed(&mut client).await;
    assert_answer(&closed, 413, r#""code":"request_too_large""#);
    // Within the cap, the handler gets the body whole.
    let answer = reqwest::Client::new()
        .post(server.url("/echo"))
        .body(vec![b'x'; MAX_BODY_BYTES])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "1024 bytes");
    assert_eq!(observed.runs.load(Relaxed), 0);
}
