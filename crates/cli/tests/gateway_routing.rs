//! `mycel gateway --netuid` against a real devnet (`mycel up --chain-only`) on loopback: two real
//! `mycel miner` processes that register and announce themselves on chain, and a relay miner
//! built here (a real HTTP server registered and announced on chain that passes another miner's
//! answers off as its own, so its receipts are signed by someone else's hotkey). Paid requests
//! (real EIP-3009 signatures) go to the honest miners only; when one is killed the other serves,
//! within the same request; the serving miners' coldkeys receive their share in mUSD on chain.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use mycel_gateway::wire::{self, PaymentRequired};
use mycel_testkit::http::{post_json, Answer};
use mycel_testkit::payer::{Payer, PaymentAsk};
use mycel_testkit::{dev_address, dev_signer, free_port, now_secs, Devnet, Proc, TestDir};
use serde_json::{json, Value};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1";
/// The pay-to account, whose key pays the miners' shares.
const PAY_TO: u32 = 5;
/// The facilitator's key (settles payments, pays their fees).
const FACILITATOR: u32 = 8;
const PAYER: u32 = 7;

/// `mycel ARGS` as a server with its output in `log`.
fn spawn(args: &[&str], log: &Path) -> Proc {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    Proc::mycel(
        "mycel",
        &args,
        "warn,mycel_gateway=info,mycel_subnet=info",
        log,
    )
}

/// Blocking HTTP over a runtime of the test's own.
struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn get(&self, url: &str) -> Value {
        self.runtime.block_on(async {
            self.client
                .get(url)
                .send()
                .await
                .expect("GET")
                .json()
                .await
                .expect("JSON")
        })
    }

    fn post(&self, url: &str, body: &Value, headers: &[(&str, String)]) -> Answer {
        self.runtime
            .block_on(post_json(&self.client, url, body, headers))
    }
}

/// An x402 payment header paying what `ask` asks, signed by `payer`.
fn payment(payer: &Payer, ask: &PaymentAsk) -> (&'static str, String) {
    let payment = payer.pay(ask, now_secs()).expect("pay");
    (payment.header, payment.value)
}

fn miner_entry(status: &Value, hotkey: Address) -> Value {
    status["miners"]
        .as_array()
        .expect("miners")
        .iter()
        .find(|m| m["hotkey"].as_str().and_then(|h| h.parse::<Address>().ok()) == Some(hotkey))
        .cloned()
        .unwrap_or_else(|| panic!("{hotkey} not in {status:#}"))
}

#[test]
fn gateway_routes_to_miners_fails_over_avoids_bad_receipts_and_pays_shares() {
    let started = Instant::now();
    let dir = TestDir::new();
    let net = Devnet::start();
    let http = Http {
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client"),
    };
    let musd = |who: Address| -> u128 {
        http.get(&format!("{}/v1/accounts/{who}", net.rpc()))["musd"]
            .as_str()
            .expect("musd")
            .parse()
            .expect("amount")
    };

    let out = net.ok(&[
        "subnet",
        "create",
        "--dev-account",
        "0",
        "--hotkey-dev-account",
        "9",
    ]);
    assert!(out.contains("created subnet 1"), "{out}");

    // Two honest miners (dev 1 and 2) register and announce themselves.
    let mut miners: Vec<(u32, Proc, String)> = [1u32, 2]
        .iter()
        .map(|&i| {
            let proc = spawn(
                &[
                    "miner",
                    "--netuid",
                    "1",
                    "--dev-account",
                    &i.to_string(),
                    "--rpc",
                    net.rpc(),
                    "--listen",
                    "127.0.0.1:0",
                ],
                &dir.path().join(format!("miner-{i}.log")),
            );
            (i, proc, String::new())
        })
        .collect();
    for (_, proc, url) in &mut miners {
        let banner = proc.wait_for_log("mycel miner serving http://", Duration::from_secs(300));
        *url = banner
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("miner url")
            .trim_end_matches("/v1")
            .to_string();
    }

    // The relay miner (dev 3): registered and announced like any miner, it answers with miner 1's
    // answers, whose receipts miner 1's hotkey signed, not its own.
    let relay_calls = Arc::new(AtomicU64::new(0));
    let listener = http
        .runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let relay_port = listener.local_addr().expect("addr").port();
    let relay = Router::new().route(
        "/v1/chat/completions",
        post({
            let target = format!("{}/v1/chat/completions", miners[0].2);
            let calls = relay_calls.clone();
            let client = http.client.clone();
            move |body: Bytes| async move {
                calls.fetch_add(1, Ordering::SeqCst);
                match client
                    .post(&target)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(answer) => (
                        StatusCode::from_u16(answer.status().as_u16()).expect("status"),
                        [("content-type", "application/json")],
                        answer.bytes().await.unwrap_or_default(),
                    ),
                    Err(_) => (
                        StatusCode::BAD_GATEWAY,
                        [("content-type", "application/json")],
                        Bytes::new(),
                    ),
                }
            }
        }),
    );
    http.runtime
        .spawn(async move { axum::serve(listener, relay).await });
    net.ok(&[
        "neuron",
        "register",
        "--netuid",
        "1",
        "--hotkey-dev-account",
        "3",
        "--max-burn",
        "10",
        "--dev-account",
        "3",
    ]);
    net.ok(&[
        "neuron",
        "serve",
        "--netuid",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        &relay_port.to_string(),
        "--protocol",
        "http",
        "--dev-account",
        "3",
    ]);

    // The gateway routes to subnet 1; half of each price goes to the serving miner's coldkey.
    let gateway_port = free_port();
    let gateway_url = format!("http://127.0.0.1:{gateway_port}");
    let mut gateway = spawn(
        &[
            "gateway",
            "--netuid",
            "1",
            "--rpc",
            net.rpc(),
            "--listen",
            &format!("127.0.0.1:{gateway_port}"),
            "--dev-account",
            &FACILITATOR.to_string(),
            "--pay-to",
            &dev_address(PAY_TO).to_string(),
            "--payout-dev-account",
            &PAY_TO.to_string(),
            "--miner-share",
            "0.5",
            "--payout-interval",
            "2",
            "--metagraph-refresh",
            "1",
            "--miner-timeout",
            "60",
        ],
        &dir.path().join("gateway.log"),
    );
    gateway.wait_for_log("mycel gateway is running", Duration::from_secs(60));
    let banner = gateway.log();
    assert!(banner.contains("miner share 50%"), "{banner}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = http.get(&format!("{gateway_url}/v1/miners"));
        if status["miners"].as_array().map_or(0, |m| m.len()) == 3 {
            break status;
        }
        assert!(Instant::now() < deadline, "the gateway sees {status:#}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let coldkey = |i: u32| -> Address {
        miner_entry(&status, dev_address(i))["coldkey"]
            .as_str()
            .expect("coldkey")
            .parse()
            .expect("address")
    };
    let coldkeys = [coldkey(1), coldkey(2)];
    let shares_before = coldkeys.map(&musd);
    let payer = Payer::new(dev_signer(PAYER));
    let payer_before = musd(payer.address());

    let body = json!({"model": MODEL, "max_tokens": 4,
                      "messages": [{"role": "user", "content": "Say hi."}]});
    let chat_url = format!("{gateway_url}/v1/chat/completions");
    let unpaid = http.post(&chat_url, &body, &[]);
    assert_eq!(unpaid.status, 402, "{}", unpaid.body);
    let required: PaymentRequired = wire::decode_header(
        unpaid
            .header(wire::PAYMENT_REQUIRED)
            .expect("PAYMENT-REQUIRED"),
    )
    .expect("PaymentRequired");
    let requirements = required.accepts[0].clone();
    let price: u128 = requirements.amount.parse().expect("price");
    let ask = PaymentAsk::from_402(unpaid.header(wire::PAYMENT_REQUIRED), b"").expect("a 402");

    // Paid requests until the relay has been tried: every answer comes from an honest miner, with
    // a receipt signed by the hotkey the header names.
    let mut served_by: Vec<u32> = Vec::new();
    let paid = |served_by: &mut Vec<u32>| -> Answer {
        let answer = http.post(&chat_url, &body, &[payment(&payer, &ask)]);
        assert_eq!(answer.status, 200, "{:#}\n{}", answer.body, gateway.log());
        let hotkey: Address = answer
            .header("x-mycel-miner")
            .expect("x-mycel-miner header")
            .parse()
            .expect("hotkey");
        let miner = [1u32, 2]
            .into_iter()
            .find(|&i| dev_address(i) == hotkey)
            .unwrap_or_else(|| panic!("served by {hotkey}, not an honest miner"));
        assert_eq!(
            answer.body["receipt"]["message"]["miner"]
                .as_str()
                .and_then(|m| m.parse::<Address>().ok()),
            Some(hotkey),
            "{:#}",
            answer.body
        );
        assert!(answer.header("x-mycel-miner-uid").is_some());
        assert!(answer.header(wire::PAYMENT_RESPONSE).is_some());
        served_by.push(miner);
        answer
    };
    while relay_calls.load(Ordering::SeqCst) == 0 {
        assert!(
            served_by.len() < 30,
            "the relay was never tried in 30 requests"
        );
        paid(&mut served_by);
    }
    let status = http.get(&format!("{gateway_url}/v1/miners"));
    let liar = miner_entry(&status, dev_address(3));
    assert_eq!(liar["served"], 0, "{liar:#}");
    assert!(liar["failed"].as_u64().expect("failed") >= 1, "{liar:#}");
    assert!(
        liar["last_error"]
            .as_str()
            .expect("last_error")
            .contains("bad receipt"),
        "{liar:#}"
    );

    // A streamed answer: checked the same way (its receipt is in the last chunk), then returned.
    let mut stream_body = body.clone();
    stream_body["stream"] = true.into();
    let (pay_header, pay_value) = payment(&payer, &ask);
    let (status, miner, text) = http.runtime.block_on(async {
        let answer = http
            .client
            .post(&chat_url)
            .json(&stream_body)
            .header(pay_header, &pay_value)
            .send()
            .await
            .expect("POST");
        let miner = answer
            .headers()
            .get("x-mycel-miner")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        (
            answer.status().as_u16(),
            miner,
            answer.text().await.expect("text"),
        )
    });
    assert_eq!(status, 200, "{text}");
    let miner: Address = miner.expect("x-mycel-miner").parse().expect("hotkey");
    assert!(
        text.contains("data:") && text.contains("\"receipt\""),
        "{text}"
    );
    served_by.push(if miner == dev_address(1) { 1 } else { 2 });
    assert!(
        miner == dev_address(1) || miner == dev_address(2),
        "{miner}"
    );

    // Kill the honest miner with the better score (the lower latency), so that requests soon try
    // it: they go on, served by the other one, failing over within the request.
    let status = http.get(&format!("{gateway_url}/v1/miners"));
    let latency = |i: u32| miner_entry(&status, dev_address(i))["latency_ms"].as_u64();
    let last = match (latency(1), latency(2)) {
        (Some(a), Some(b)) if b < a => 2,
        (Some(_), _) => 1,
        _ => 2,
    };
    let other = if last == 1 { 2 } else { 1 };
    if !served_by.contains(&last) {
        // It has not served yet: until it has, so that the serving miner visibly changes.
        while !served_by.contains(&last) {
            assert!(served_by.len() < 40, "miner {last} never served");
            paid(&mut served_by);
        }
    }
    let killed_at = served_by.len();
    miners
        .iter_mut()
        .find(|(i, _, _)| *i == last)
        .expect("miner")
        .1
        .kill_9();
    // Until the gateway has tried the dead miner: every request succeeds all the same.
    let dead_failures = || {
        miner_entry(
            &http.get(&format!("{gateway_url}/v1/miners")),
            dev_address(last),
        )["failed"]
            .as_u64()
            .expect("failed")
    };
    let mut failed_over = false;
    while !failed_over {
        assert!(
            served_by.len() - killed_at < 12,
            "no request tried the dead miner; gateway status: {:#}",
            http.get(&format!("{gateway_url}/v1/miners"))
        );
        let answer = paid(&mut served_by);
        assert_eq!(
            *served_by.last().expect("served"),
            other,
            "served by the killed miner {last}"
        );
        let attempts: u32 = answer
            .header("x-mycel-attempts")
            .expect("x-mycel-attempts")
            .parse()
            .expect("attempts");
        // The dead miner was tried in this request (it failed, then another miner answered).
        failed_over = dead_failures() >= 1;
        assert!(!failed_over || attempts >= 2, "attempts {attempts}");
    }

    // Every request was paid once; each serving miner's coldkey gets half of what it earned.
    assert_eq!(
        musd(payer.address()),
        payer_before - price * served_by.len() as u128
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    for (k, i) in [1u32, 2].into_iter().enumerate() {
        let earned = served_by.iter().filter(|&&s| s == i).count() as u128 * (price / 2);
        loop {
            let got = musd(coldkeys[k]) - shares_before[k];
            if got == earned {
                break;
            }
            assert!(
                got < earned && Instant::now() < deadline,
                "miner {i}'s coldkey received {got}, expected {earned}; gateway:\n{}\n{:#}",
                gateway.log(),
                http.get(&format!("{gateway_url}/v1/miners"))
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let metrics = http.runtime.block_on(async {
        http.client
            .get(format!("{gateway_url}/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("text")
    });
    assert!(
        metrics.contains(&format!(
            "mycel_gateway_miner_served_total{{uid=\"{}\",hotkey=\"{}\"}} 0",
            miner_entry(
                &http.get(&format!("{gateway_url}/v1/miners")),
                dev_address(3)
            )["uid"],
            dev_address(3)
        )),
        "{metrics}"
    );
    let status = http.get(&format!("{gateway_url}/v1/miners"));
    assert!(
        status["revenue_share"]["transfers"]
            .as_u64()
            .expect("transfers")
            >= 1,
        "{status:#}"
    );
    eprintln!(
        "{} paid requests ({:?}), test took {:?}",
        served_by.len(),
        served_by,
        started.elapsed()
    );
}

#[test]
fn gateway_routing_command_line_errors_are_clear() {
    let run = |args: &[&str]| {
        let out = mycel_testkit::mycel::run(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["gateway", "--free"]);
    assert!(
        err.contains("--upstream") && err.contains("--netuid"),
        "{err}"
    );
    let err = run(&["gateway", "--netuid", "1", "--upstream", "http://x"]);
    assert!(err.contains("cannot be used with"), "{err}");
    let blob = format!("0x{}", "ab".repeat(32));
    let err = run(&["gateway", "--leases", &blob, "--netuid", "1", "--free"]);
    assert!(err.contains("cannot be used with"), "{err}");
    let err = run(&["gateway", "--leases", "0x12", "--free"]);
    assert!(err.contains("--leases"), "{err}");
    let err = run(&["gateway", "--netuid", "1", "--free", "--miner-share", "1.5"]);
    assert!(err.contains("--miner-share '1.5'"), "{err}");
    let err = run(&["gateway", "--netuid", "1", "--free", "--model-id", "xyz"]);
    assert!(err.contains("--model-id 'xyz'"), "{err}");
    let to = dev_address(PAY_TO).to_string();
    let err = run(&[
        "gateway",
        "--netuid",
        "1",
        "--dev-account",
        "8",
        "--pay-to",
        &to,
    ]);
    assert!(
        err.contains("--payout-key") && err.contains("--payout-dev-account"),
        "{err}"
    );
    let err = run(&[
        "gateway",
        "--netuid",
        "1",
        "--dev-account",
        "8",
        "--pay-to",
        &to,
        "--payout-dev-account",
        "4",
    ]);
    assert!(err.contains("but --pay-to is"), "{err}");
    // No node at this address: the error says where it looked.
    let err = run(&[
        "gateway",
        "--netuid",
        "1",
        "--free",
        "--rpc",
        &format!("http://127.0.0.1:{}", free_port()),
    ]);
    assert!(err.contains("is the node running"), "{err}");
}
