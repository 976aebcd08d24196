//! The slow-connection attack against a real node (hostile-input issue, item 6): a real
//! `mycel up --chain-only` on loopback, 40 connections that each send half a request and then
//! nothing. Before mycel-http the node kept all 40 open for as long as the attacker liked; now
//! each is closed once the header timeout passes, and the API answers normal requests throughout.
//!
//! Nothing here sleeps to decide an outcome: the test waits for what it expects (the node's own
//! connection count, each connection's EOF) under deadlines, and fails with what it saw.

use mycel_testkit::{Devnet, DevnetOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Connections the attacker opens (the issue saw 40 held for 75 s and more).
const ATTACKERS: usize = 40;
/// The node's header timeout in this test (`--header-timeout`): short to keep the test fast, long
/// enough that the node has surely accepted all 40 before it starts closing them.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Room for a loaded machine on top of the header timeout.
const SLACK: Duration = Duration::from_secs(20);
/// Half a request: the request line and one header, never the blank line that ends the head.
const PARTIAL_HEAD: &[u8] = b"GET /v1/status HTTP/1.1\r\nHost: mycel\r\n";

/// `GET path` on a new connection; the status code and body.
fn get(rpc: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(rpc).expect("connect to the node");
    stream.set_read_timeout(Some(SLACK)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: mycel\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("GET {path} got no whole answer within {SLACK:?}: {e}"));
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of the metric `name` in the node's `/metrics`.
fn metric(rpc: SocketAddr, name: &str) -> u64 {
    let (status, text) = get(rpc, "/metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("/metrics has no {name}:\n{text}"))
}

#[test]
fn partial_requests_are_closed_after_the_header_timeout_while_the_api_keeps_answering() {
    let timeout = HEADER_TIMEOUT.as_secs().to_string();
    let node = Devnet::start_with(DevnetOptions::default().args(&["--header-timeout", &timeout]));
    let rpc: SocketAddr = node
        .rpc()
        .trim_start_matches("http://")
        .parse()
        .expect("the node's address");

    // The attack: 40 connections, each with half a request head, then silence.
    let opened = Instant::now();
    let mut attackers: Vec<TcpStream> = (0..ATTACKERS)
        .map(|i| {
            let mut stream = TcpStream::connect(rpc)
                .unwrap_or_else(|e| panic!("attacker {i} cannot connect: {e}"));
            stream.write_all(PARTIAL_HEAD).unwrap();
            stream
        })
        .collect();

    // The node holds all 40 (its own count says so, with this request's connection) and still
    // answers: the request that reads the count is itself a normal request during the attack.
    let deadline = opened + HEADER_TIMEOUT;
    let held = loop {
        let open = metric(rpc, "mycel_http_connections_open");
        if open > ATTACKERS as u64 {
            break open;
        }
        assert!(
            Instant::now() < deadline,
            "the node took the whole header timeout to accept the attackers ({open} open)"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (status, body) = get(rpc, "/v1/status");
    assert_eq!(status, 200, "GET /v1/status during the attack: {body}");
    assert!(body.contains("\"chain_id\""), "{body}");

    // Every attacker is closed by the node: EOF (or a reset) once the header timeout has passed,
    // and within the timeout plus slack.
    let must_close_by = opened + HEADER_TIMEOUT + SLACK;
    for (i, stream) in attackers.iter_mut().enumerate() {
        let left = must_close_by.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut sink = Vec::new();
        match stream.read_to_end(&mut sink) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!(
                "attacker {i} was still connected {:?} after opening ({e}); the node held \
                 {held} connections; log:\n{}",
                opened.elapsed(),
                node.log_tail()
            ),
        }
        assert!(
            sink.is_empty(),
            "attacker {i} got an answer to half a request: {:?}",
            String::from_utf8_lossy(&sink)
        );
    }
    let closed_after = opened.elapsed();
    assert!(
        closed_after >= HEADER_TIMEOUT,
        "closed after {closed_after:?}: before the header timeout"
    );

    // The node counted each close as a header timeout and holds none of them now (only the
    // /metrics request itself; a just-answered one may still be finishing), and it answers.
    let timeouts = metric(rpc, "mycel_http_header_timeouts_total");
    assert!(timeouts >= ATTACKERS as u64, "{timeouts} header timeouts");
    let settle_by = Instant::now() + SLACK;
    while metric(rpc, "mycel_http_connections_open") != 1 {
        assert!(
            Instant::now() < settle_by,
            "the node still holds connections"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, _) = get(rpc, "/v1/status");
    assert_eq!(status, 200);
    eprintln!(
        "{ATTACKERS} partial requests held {held} connections; all closed {closed_after:?} after \
         opening (header timeout {HEADER_TIMEOUT:?})"
    );
}
