//! Hostile and slow clients against a real `mycel_http` server on loopback, with raw TCP clients
//! for the attacks: each test shows the connection is closed (or answered 408) within a bound, and
//! that legitimate slow work — a slow handler, a long event stream — is not cut.
//!
//! No test sleeps to decide an outcome (see the harness in `common`).

mod common;

use std::time::Duration;

use axum::response::sse::{Event, Sse};
use axum::routing::{get, post};
use axum::Router;
use common::{until_closed, Running, GENEROUS};
use futures::StreamExt as _;
use mycel_http::ServeLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A partial request: the request line and one header, never the blank line that ends the head.
const PARTIAL_HEAD: &[u8] = b"GET /status HTTP/1.1\r\nHost: mycel\r\n";

fn app() -> Router {
    Router::new()
        .route("/status", get(|| async { "ok" }))
        .route(
            "/echo",
            post(|body: axum::body::Bytes| async move { format!("{} bytes", body.len()) }),
        )
        // A handler that takes a while, like a model decode.
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "done"
            }),
        )
        // An event every 600 ms, five of them: 3 s in all, with gaps longer than the timeouts.
        .route(
            "/events",
            get(|| async {
                let events = futures::stream::iter(0..5).then(|i| async move {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    Ok::<_, std::convert::Infallible>(Event::default().data(format!("event {i}")))
                });
                Sse::new(events)
            }),
        )
        // An endless stream of 64 KiB events, as fast as the client takes them.
        .route(
            "/firehose",
            get(|| async {
                let chunk = "x".repeat(64 * 1024);
                let events = futures::stream::repeat_with(move || {
                    Ok::<_, std::convert::Infallible>(Event::default().data(chunk.clone()))
                });
                Sse::new(events)
            }),
        )
        // An endless, slow event stream (one small event every 100 ms).
        .route(
            "/ticks",
            get(|| async {
                let events = futures::stream::unfold(0u64, |i| async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((
                        Ok::<_, std::convert::Infallible>(Event::default().data(i.to_string())),
                        i + 1,
                    ))
                });
                Sse::new(events)
            }),
        )
}

fn limits(header: Duration, body: Duration, write: Duration) -> ServeLimits {
    ServeLimits {
        header_timeout: header,
        body_timeout: body,
        write_timeout: write,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_partial_request_head_is_closed_after_the_header_timeout() {
    let header = Duration::from_secs(1);
    let server = Running::serve(app(), limits(header, GENEROUS, GENEROUS)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let opened = Instant::now();
    client.write_all(PARTIAL_HEAD).await.unwrap();
    let closed = until_closed(&mut client).await;
    assert!(
        closed.received.is_empty(),
        "no answer to half a request: {closed:?}"
    );
    assert!(
        closed.at - opened >= header,
        "closed before the header timeout: {closed:?}"
    );
    let stats = server
        .wait_for("the header timeout to be counted", |s| {
            s.header_timeouts == 1 && s.open == 0
        })
        .await;
    let metrics = stats.to_prometheus("mycel");
    assert!(
        metrics.contains("\nmycel_http_header_timeouts_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nmycel_http_connections_open 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let header = Duration::from_secs(1);
    let server = Running::serve(app(), limits(header, GENEROUS, GENEROUS)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    let opened = Instant::now();
    let closed = until_closed(&mut client).await;
    assert!(closed.received.is_empty(), "{closed:?}");
    assert!(
        closed.at - opened >= header,
        "closed before the header timeout"
    );
    server
        .wait_for("the header timeout to be counted", |s| {
            s.header_timeouts == 1
        })
        .await;
}

#[tokio::test]
async fn a_request_head_dripped_byte_by_byte_is_closed_at_the_header_timeout() {
    // Every byte arrives well within the timeout; the head as a whole does not.
    let header = Duration::from_secs(1);
    let server = Running::serve(app(), limits(header, GENEROUS, GENEROUS)).await;
    let client = TcpStream::connect(server.addr).await.unwrap();
    let opened = Instant::now();
    let (mut read, mut write) = client.into_split();
    let drip = tokio::spawn(async move {
        for byte in PARTIAL_HEAD.iter().cycle() {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut received = Vec::new();
    let closed = tokio::time::timeout(GENEROUS, read.read_to_end(&mut received)).await;
    assert!(
        closed.is_ok(),
        "a dripping client held the connection for {GENEROUS:?}"
    );
    assert!(opened.elapsed() >= header);
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    drip.abort();
    server
        .wait_for("the header timeout to be counted", |s| {
            s.header_timeouts == 1
        })
        .await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let header = Duration::from_secs(1);
    let server = Running::serve(app(), limits(header, GENEROUS, GENEROUS)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"GET /status HTTP/1.1\r\nHost: mycel\r\n\r\n")
        .await
        .unwrap();
    // The answer is small and ends with "ok"; read it, then wait on the idle connection.
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"ok") {
        let n = tokio::time::timeout(GENEROUS, client.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let answered = Instant::now();
    let closed = until_closed(&mut client).await;
    assert!(closed.received.is_empty(), "{closed:?}");
    assert!(
        closed.at - answered >= header,
        "closed before the idle timeout"
    );
    server
        .wait_for("the idle close to be counted", |s| {
            s.header_timeouts == 1 && s.open == 0
        })
        .await;
}

#[tokio::test]
async fn a_body_dripped_slowly_gets_408_and_the_connection_closes() {
    let body = Duration::from_secs(1);
    let server = Running::serve(app(), limits(GENEROUS, body, GENEROUS)).await;
    let client = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = client.into_split();
    let started = Instant::now();
    let drip = tokio::spawn(async move {
        let head = b"POST /echo HTTP/1.1\r\nHost: mycel\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n";
        if write.write_all(head).await.is_err() {
            return;
        }
        for _ in 0..100 {
            if write.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut received = Vec::new();
    let closed = tokio::time::timeout(GENEROUS, read.read_to_end(&mut received)).await;
    assert!(
        closed.is_ok(),
        "a dripped body held the connection for {GENEROUS:?}"
    );
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""code":"request_timeout""#), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(started.elapsed() >= body);
    drip.abort();
    server
        .wait_for("the body timeout to be counted", |s| s.body_timeouts == 1)
        .await;
}

#[tokio::test]
async fn a_body_over_the_cap_gets_413_before_it_is_sent() {
    let server = Running::serve(
        app(),
        ServeLimits {
            max_body_bytes: 1024,
            ..Default::default()
        },
    )
    .await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"POST /echo HTTP/1.1\r\nHost: mycel\r\nContent-Length: 5000\r\n\r\n")
        .await
        .unwrap();
    let closed = until_closed(&mut client).await;
    let text = String::from_utf8_lossy(&closed.received);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains(r#""code":"request_too_large""#), "{text}");
    // A body within the cap is handed to the handler whole.
    let answer = reqwest::Client::new()
        .post(server.url("/echo"))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "1000 bytes");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_and_are_served_once_others_close() {
    let cap = 4;
    let server = Running::serve(
        app(),
        ServeLimits {
            max_connections: cap,
            header_timeout: GENEROUS * 4,
            ..Default::default()
        },
    )
    .await;
    // Ten attackers, each holding a connection with half a request.
    let mut attackers = Vec::new();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(PARTIAL_HEAD).await.unwrap();
        attackers.push(stream);
    }
    server.wait_for("the cap to fill", |s| s.open == cap).await;
    // A real client now waits in the backlog: the cap is full of attackers.
    let client = reqwest::Client::new();
    let status = tokio::spawn(client.get(server.url("/status")).timeout(GENEROUS).send());
    // The attackers leave; the waiting client is accepted and answered.
    drop(attackers);
    let answer = status
        .await
        .unwrap()
        .expect("answered once the attackers left");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "ok");
    let stats = server.stats();
    assert_eq!(
        stats.peak, cap,
        "never more than {cap} connections open: {stats:?}"
    );
    assert!(stats.accepted > cap as u64, "{stats:?}");
}

#[tokio::test]
async fn a_handler_slower_than_every_timeout_still_answers() {
    let short = Duration::from_secs(1);
    let server = Running::serve(app(), limits(short, short, short)).await;
    let answer = reqwest::Client::new()
        .get(server.url("/slow"))
        .timeout(GENEROUS)
        .send()
        .await
        .expect("a 3 s handler answers under 1 s timeouts");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "done");
    assert_eq!(server.stats().header_timeouts, 0);
}

#[tokio::test]
async fn an_event_stream_outlasting_every_timeout_is_not_cut() {
    let short = Duration::from_millis(500);
    let server = Running::serve(app(), limits(short, short, short)).await;
    let answer = reqwest::Client::new()
        .get(server.url("/events"))
        .timeout(GENEROUS)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let started = Instant::now();
    let body = answer.text().await.expect("the whole stream");
    let events = body.matches("data: event").count();
    assert_eq!(events, 5, "every event, none cut: {body:?}");
    assert!(
        started.elapsed() > short * 4,
        "the stream did outlast the timeouts"
    );
    let stats = server.stats();
    assert_eq!(
        (stats.header_timeouts, stats.write_timeouts),
        (0, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_an_event_stream_is_disconnected() {
    let write = Duration::from_secs(1);
    let server = Running::serve(app(), limits(GENEROUS, GENEROUS, write)).await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"GET /firehose HTTP/1.1\r\nHost: mycel\r\n\r\n")
        .await
        .unwrap();
    // Read nothing: the socket buffers fill, the server's writes stall, and it gives up.
    server
        .wait_for("the stalled stream to be cut", |s| {
            s.write_timeouts == 1 && s.open == 0
        })
        .await;
    // The client, reading now, finds the connection closed after what was buffered.
    let closed = until_closed(&mut client).await;
    assert!(closed.received.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn shutdown_ends_a_never_ending_stream_after_the_grace() {
    let server = Running::serve(
        app(),
        ServeLimits {
            shutdown_grace: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await;
    let mut client = TcpStream::connect(server.addr).await.unwrap();
    client
        .write_all(b"GET /ticks HTTP/1.1\r\nHost: mycel\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 64];
    let n = tokio::time::timeout(GENEROUS, client.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    let mut server = server;
    let stopped = Instant::now();
    let _ = server.stop.take().map(|stop| stop.send(()));
    let finished = tokio::time::timeout(GENEROUS, &mut server.task).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "the server stopped: {finished:?}"
    );
    assert!(
        stopped.elapsed() >= Duration::from_millis(500),
        "the stream had its grace"
    );
    until_closed(&mut client).await;
    assert_eq!(server.stats().open, 0);
    // And nothing listens any more.
    assert!(TcpStream::connect(server.addr).await.is_err());
}
