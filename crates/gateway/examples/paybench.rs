//! Paid requests per second and added latency: the gateway's exact-scheme paywall (each request
//! verified and settled on the chain, waiting for finality) and its session scheme (one channel
//! per client, a signed voucher per request, claims batched) against free mode, in front of a
//! trivial upstream handler on loopback.
//!
//! Needs a running node: `mycel up`, then
//! `cargo run -p mycel-gateway --example paybench -- --rpc http://127.0.0.1:8545 [--seconds 20] [--concurrency 32]`.
//! Prints a table and writes JSON (`--json FILE`).

use alloy_primitives::{B256, U256};
use axum::{routing::post, Json, Router};
use mycel_client::x402::{Payer, PaymentAsk};
use mycel_client::{NodeClient, Nonces};
use mycel_gateway::{
    session::{SessionVoucher, SESSION_HEADER, SESSION_RESPONSE_HEADER},
    wire, ExactScheme, Facilitator, FacilitatorConfig, GatewayBuilder, GatewayConfig, Pricing,
    SessionBook, SessionScheme, SystemClock,
};
use mycel_types::keys::dev_signer;
use mycel_types::{OpenChannel, SignedTx, TxKind};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Args {
    rpc: String,
    seconds: u64,
    concurrency: usize,
    json: Option<String>,
    /// A real OpenAI-compatible server (e.g. `mycel miner`) instead of the trivial handler.
    upstream: Option<String>,
    model: String,
    max_tokens: u64,
    /// Settlement keys (1-5).
    facilitators: usize,
}

fn args() -> Args {
    let mut a = Args {
        rpc: "http://127.0.0.1:8545".into(),
        seconds: 20,
        concurrency: 32,
        json: None,
        upstream: None,
        model: "trivial".into(),
        max_tokens: 16,
        facilitators: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--rpc" => a.rpc = value,
            "--seconds" => a.seconds = value.parse().expect("--seconds N"),
            "--concurrency" => a.concurrency = value.parse().expect("--concurrency N"),
            "--json" => a.json = Some(value),
            "--upstream" => a.upstream = Some(value),
            "--model" => a.model = value,
            "--max-tokens" => a.max_tokens = value.parse().expect("--max-tokens N"),
            "--facilitators" => {
                a.facilitators = value.parse().expect("--facilitators N");
                assert!((1..=5).contains(&a.facilitators), "--facilitators 1 to 5");
            }
            other => panic!(
                "unknown flag {other}; flags: --rpc URL --seconds N --concurrency N --json FILE \
                 --upstream URL --model NAME --max-tokens N"
            ),
        }
    }
    a
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[derive(Debug)]
struct Run {
    mode: &'static str,
    requests: usize,
    failed: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Payment of each request: none, x402 exact, or vouchers on per-worker channels.
#[derive(Clone)]
enum Pay {
    Free,
    Exact,
    /// `(chain id, price, channel of each worker)`.
    Session(u64, u128, Vec<B256>),
}

/// Opens one channel per worker to `pay_to` (payers: dev accounts 1..=8), `deposit` each, and
/// waits until they are final.
async fn open_channels(
    node: &NodeClient,
    chain_id: u64,
    fee: u128,
    pay_to: alloy_primitives::Address,
    workers: usize,
    deposit: u128,
) -> Vec<B256> {
    let mut ids = vec![];
    let mut hashes = vec![];
    let mut nonces = Nonces::new();
    for worker in 0..workers {
        let payer = dev_signer(1 + (worker as u32 % 8)).expect("dev key");
        let nonce = nonces.take(node, payer.address()).await.expect("account");
        let salt = B256::random();
        ids.push(mycel_types::channel_id(payer.address(), pay_to, salt));
        let kind = TxKind::OpenChannel(OpenChannel {
            from: payer.address(),
            payee: pay_to,
            amount: U256::from(deposit),
            withdrawDelay: 3600,
            salt,
            nonce,
            fee: U256::from(fee),
        });
        let tx = SignedTx::sign(kind, chain_id, &payer).expect("sign");
        hashes.push(node.submit(&tx).await.expect("submit OpenChannel"));
    }
    for hash in hashes {
        let outcome = node
            .wait(hash, Duration::from_secs(60))
            .await
            .expect("the node answers");
        if let Err(e) = outcome.applied() {
            panic!("OpenChannel: {e}");
        }
    }
    ids
}

async fn load(mode: &'static str, gateway: String, args: &Args, pay: Pay) -> Run {
    let paid = matches!(pay, Pay::Exact);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let body = json!({"model": args.model, "max_tokens": args.max_tokens,
                      "messages": [{"role": "user", "content": "Say hi."}]});
    let ask = if paid {
        let r = http
            .post(format!("{gateway}/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .expect("probe");
        assert_eq!(r.status().as_u16(), 402);
        let header = r
            .headers()
            .get(wire::PAYMENT_REQUIRED)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let bytes = r.bytes().await.expect("402 body");
        Some(PaymentAsk::from_402(header.as_deref(), &bytes).expect("requirements"))
    } else {
        None
    };
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = vec![];
    for worker in 0..args.concurrency {
        let (http, gateway, body, ask, pay) = (
            http.clone(),
            gateway.clone(),
            body.clone(),
            ask.clone(),
            pay.clone(),
        );
        let mut cumulative = 0u128;
        // Payers: dev accounts 1..=8, spread over the workers.
        let payer = dev_signer(1 + (worker as u32 % 8)).expect("dev key");
        let x402_payer = Payer::new(payer.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = vec![];
            let mut failed = 0usize;
            while Instant::now() < deadline {
                let mut request = http
                    .post(format!("{gateway}/v1/chat/completions"))
                    .json(&body);
                let t0 = Instant::now();
                if let Pay::Session(chain_id, price, channels) = &pay {
                    cumulative += price;
                    let voucher =
                        SessionVoucher::sign(&payer, *chain_id, channels[worker], cumulative);
                    request = request.header(SESSION_HEADER, voucher.to_header());
                }
                if let Some(ask) = &ask {
                    let payment = x402_payer.pay(ask, now()).expect("a payable price");
                    request = request.header(payment.header, payment.value);
                }
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        let settled_ok = match &pay {
                            Pay::Free => true,
                            Pay::Session(..) => r.headers().contains_key(SESSION_RESPONSE_HEADER),
                            Pay::Exact => r
                                .headers()
                                .get(wire::PAYMENT_RESPONSE)
                                .and_then(|h| h.to_str().ok())
                                .and_then(|h| wire::decode_header::<wire::SettleResponse>(h).ok())
                                .is_some_and(|s| s.success),
                        };
                        let _ = r.bytes().await;
                        if settled_ok {
                            latencies.push(t0.elapsed());
                        } else {
                            failed += 1;
                        }
                    }
                    _ => failed += 1,
                }
            }
            (latencies, failed)
        }));
    }
    let mut all = vec![];
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await.expect("worker");
        all.extend(l);
        failed += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p).round() as usize)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    };
    Run {
        mode,
        requests: all.len(),
        failed,
        seconds,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let trivial = serve(Router::new().route(
        "/v1/chat/completions",
        post(|Json(_): Json<Value>| async {
            Json(json!({"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}))
        }),
    ))
    .await;
    let upstream = args.upstream.clone().unwrap_or(trivial);
    let facilitator = Arc::new(
        Facilitator::connect(
            NodeClient::new(&args.rpc).expect("--rpc URL"),
            FacilitatorConfig {
                // Settlement keys: dev account 0, then 8, 7, … (also payers; that does not matter:
                // payers only sign authorizations).
                signers: [0u32, 8, 7, 6, 5][..args.facilitators]
                    .iter()
                    .map(|&i| dev_signer(i).expect("dev key"))
                    .collect(),
                fee: None,
                settle_timeout: Duration::from_secs(30),
                clock: Arc::new(SystemClock),
            },
        )
        .await
        .expect("node: start one with `mycel up` and pass --rpc"),
    );
    let pay_to = dev_signer(9).expect("dev key").address();
    // Requests are admitted (and prompts counted) with the default model's tokenizer.
    let model = mycel_tokenizer::ensure_default_model(
        &mycel_tokenizer::default_cache_dir().expect("a model cache"),
        &mut |_| {},
    )
    .expect("the default model");
    let format =
        Arc::new(mycel_tokenizer::PromptFormat::from_gguf_file(&model).expect("tokenizer"));
    let config = |free: bool| GatewayConfig {
        upstream: upstream.clone(),
        pricing: Pricing::default(),
        free,
        format: format.clone(),
        timeout: Default::default(),
    };
    let exact = ExactScheme::new(facilitator.clone(), pay_to, 60);
    let free_gateway = serve(GatewayBuilder::new(config(true)).router()).await;
    let paid_gateway = serve(
        GatewayBuilder::new(config(false))
            .facilitator(facilitator.clone())
            .scheme(exact.clone())
            .router(),
    )
    .await;

    // Sessions: a book for the pay-to key (dev account 9), one channel per worker.
    let node = NodeClient::new(&args.rpc).expect("--rpc URL");
    let info = node.chain_params().await.expect("node");
    let book_file =
        std::env::temp_dir().join(format!("paybench-sessions-{}.json", std::process::id()));
    let book = Arc::new(
        SessionBook::open(
            node.clone(),
            dev_signer(9).expect("dev key"),
            info.chain_id,
            info.min_fee,
            book_file.clone(),
        )
        .expect("session book"),
    );
    tokio::spawn(book.clone().claim_loop(Duration::from_secs(1)));
    let session_gateway = serve(
        GatewayBuilder::new(config(false))
            .facilitator(facilitator.clone())
            .scheme(SessionScheme::new(book.clone()))
            .scheme(exact)
            .router(),
    )
    .await;
    let body = json!({"model": args.model, "max_tokens": args.max_tokens,
                      "messages": [{"role": "user", "content": "Say hi."}]});
    let (price, _) = Pricing::default()
        .quote(true, &serde_json::to_vec(&body).expect("json"), &format)
        .expect("a valid request");
    let channels = open_channels(
        &node,
        info.chain_id,
        info.min_fee,
        pay_to,
        args.concurrency,
        // Enough for 100,000 calls per worker.
        price * 100_000,
    )
    .await;

    let direct = load("upstream directly", upstream.clone(), &args, Pay::Free).await;
    let free = load("gateway, free mode", free_gateway, &args, Pay::Free).await;
    let exact = load(
        "gateway, x402 exact (settled, final)",
        paid_gateway,
        &args,
        Pay::Exact,
    )
    .await;
    let sessions = load(
        "gateway, sessions (voucher per call, batched claims)",
        session_gateway,
        &args,
        Pay::Session(info.chain_id, price, channels.clone()),
    )
    .await;
    let claimed = book.claim_now().await.expect("final claim");
    let mut claimed_on_chain = 0u128;
    for id in &channels {
        if let Some((_, c)) = book.channel(id) {
            claimed_on_chain += c;
        }
    }
    let _ = std::fs::remove_file(&book_file);
    println!("| mode | requests | failed | req/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut rows = vec![];
    for r in [&direct, &free, &exact, &sessions] {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} |",
            r.mode,
            r.requests,
            r.failed,
            r.requests as f64 / r.seconds,
            r.p50_ms,
            r.p99_ms
        );
        rows.push(
            json!({"mode": r.mode, "requests": r.requests, "failed": r.failed,
            "req_per_s": r.requests as f64 / r.seconds, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms}),
        );
    }
    println!(
        "sessions: {} channels, {} paid calls, {} mUSD base units claimed on chain ({} in the last claim), price {}",
        channels.len(),
        sessions.requests,
        claimed_on_chain,
        claimed,
        price
    );
    let c = facilitator.counters();
    println!(
        "settled {} payments with {} facilitator key(s); concurrency {}, {} s per mode",
        c.settled.load(std::sync::atomic::Ordering::Relaxed),
        args.facilitators,
        args.concurrency,
        args.seconds
    );
    // Peak resident memory of this process: the gateways, the trivial handler and the clients.
    let peak_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        });
    if let Some(kib) = peak_kib {
        println!(
            "peak RSS of the bench process (gateways + handler + clients): {} MiB",
            kib / 1024
        );
    }
    if let Some(path) = &args.json {
        let doc = json!({"concurrency": args.concurrency, "seconds": args.seconds, "runs": rows,
                         "upstream": args.upstream, "model": args.model, "max_tokens": args.max_tokens,
                         "peak_rss_kib": peak_kib});
        std::fs::write(path, serde_json::to_vec_pretty(&doc).expect("json")).expect("write --json");
    }
}
