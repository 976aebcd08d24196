//! Payment sessions end to end: a real devnet (`mycel up`), a channel opened with `mycel session
//! open`, a real gateway (paywall with the session scheme, on loopback) in front of a real
//! OpenAI-shaped server on loopback, 20 calls paid with signed vouchers, the gateway's batched
//! claims seen on chain, refused vouchers, and the payer's withdraw after the delay.

use alloy_primitives::B256;
use mycel_client::NodeClient;
use mycel_gateway::{
    ExactScheme, Facilitator, FacilitatorConfig, GatewayBuilder, GatewayConfig, Pricing,
    SessionBook, SessionScheme, SessionVoucher, SystemClock,
};
use mycel_testkit::http::fixed_chat_server;
use mycel_testkit::units;
use mycel_testkit::{Devnet, DevnetOptions};
use mycel_types::keys::dev_signer;
use serde_json::{json, Value};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PAYER: u32 = 1;
const PAY_TO: u32 = 9;
const DELAY_S: u64 = 4;

fn mycel(rpc: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--rpc", rpc]);
    mycel_testkit::mycel::run(&all)
}

fn get(rt: &tokio::runtime::Runtime, url: &str) -> Value {
    rt.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}

#[test]
fn twenty_calls_on_vouchers_are_claimed_in_batches_and_the_rest_is_withdrawn() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let devnet = Devnet::start_with(DevnetOptions {
        rust_log: "warn".into(),
        ..DevnetOptions::default()
    });
    let rpc = devnet.rpc().to_string();
    let payer = dev_signer(PAYER).unwrap();
    let payee = dev_signer(PAY_TO).unwrap();
    let payer0 = units(&get(&rt, &format!("{rpc}/v1/accounts/{}", payer.address()))["musd"]);
    let payee0 = units(&get(&rt, &format!("{rpc}/v1/accounts/{}", payee.address()))["musd"]);
    let chain_id = get(&rt, &format!("{rpc}/v1/status"))["chain_id"]
        .as_u64()
        .unwrap();

    // The client opens a channel with the CLI: 1 mUSD, a 4 s withdraw delay.
    let out = mycel(
        &rpc,
        &[
            "session",
            "open",
            "--to",
            &payee.address().to_string(),
            "--amount",
            "1",
            "--delay",
            &DELAY_S.to_string(),
            "--dev-account",
            &PAYER.to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let channel: B256 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let deposit = 1_000_000u128;
    let on_chain = get(&rt, &format!("{rpc}/v1/channels/{channel}"));
    assert_eq!(units(&on_chain["deposit"]), deposit);
    assert_eq!(on_chain["payer"], payer.address().to_checksum(None));

    // Upstream and gateway on loopback.
    let upstream = fixed_chat_server(&rt, "ok");
    let book_file = dir.path().join("sessions.json");
    let (gateway, book) = rt.block_on(async {
        let node = NodeClient::new(&rpc).expect("client");
        let facilitator = Facilitator::connect(
            node.clone(),
            FacilitatorConfig {
                signers: vec![dev_signer(0).unwrap()],
                fee: None,
                settle_timeout: Duration::from_secs(30),
                clock: Arc::new(SystemClock),
            },
        )
        .await
        .unwrap();
        let mut book = SessionBook::open(
            node,
            payee.clone(),
            chain_id,
            mycel_types::genesis::DEFAULT_MIN_FEE,
            book_file.clone(),
        )
        .unwrap();
        book.claim_every_vouchers = 10;
        book.claim_every = Duration::from_secs(3600);
        let book = Arc::new(book);
        let facilitator = Arc::new(facilitator);
        let app = GatewayBuilder::new(GatewayConfig {
            upstream: upstream.clone(),
            pricing: Pricing::default(),
            free: false,
            format: std::sync::Arc::new(prompt_format()),
            timeout: Default::default(),
        })
        .facilitator(facilitator.clone())
        .scheme(SessionScheme::new(book.clone()))
        .scheme(ExactScheme::new(facilitator, payee.address(), 60))
        .router();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        (url, book)
    });
    let http = reqwest::Client::new();
    let body = json!({"model": "smollm2", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "hi"}]});
    let call = |cumulative: u128| -> (u16, Value) {
        let header = SessionVoucher::sign(&payer, chain_id, channel, cumulative).to_header();
        rt.block_on(async {
            let r = http
                .post(format!("{gateway}/v1/chat/completions"))
                .header("X-MYCEL-SESSION", header)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
        })
    };
    let (price, _) = Pricing::default()
        .quote(true, &serde_json::to_vec(&body).unwrap(), &prompt_format())
        .unwrap();
    assert!(price > 0 && 20 * price < deposit);

    for i in 1..=20u128 {
        let (status, answer) = call(i * price);
        assert_eq!(status, 200, "call {i}: {answer}");
        assert_eq!(answer["choices"][0]["message"]["content"], "ok");
    }
    // A replayed voucher for the same request is a retry: the answer it paid for, again, and
    // nothing more is counted. For another request it is refused.
    let (status, answer) = call(20 * price);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "ok");
    let replayed = SessionVoucher::sign(&payer, chain_id, channel, 20 * price).to_header();
    let (status, answer) = rt.block_on(async {
        let r = http
            .post(format!("{gateway}/v1/chat/completions"))
            .header("X-MYCEL-SESSION", replayed)
            .json(&json!({"model": "smollm2", "max_tokens": 15,
                          "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap_or(Value::Null),
        )
    });
    assert_eq!(
        (status, answer["error"].as_str()),
        (402, Some("session_voucher_used"))
    );
    // Refused: a lower voucher, one that does not add the price, one over the deposit, one
    // signed by someone else.
    let (status, answer) = call(19 * price + 1);
    assert_eq!(
        (status, answer["error"].as_str()),
        (402, Some("session_voucher_too_low"))
    );
    let (status, answer) = call(20 * price + price - 1);
    assert_eq!(
        (status, answer["error"].as_str()),
        (402, Some("session_voucher_too_low"))
    );
    let (status, answer) = call(deposit + 1);
    assert_eq!(
        (status, answer["error"].as_str()),
        (402, Some("session_over_deposit"))
    );
    let stranger = dev_signer(3).unwrap();
    let forged = SessionVoucher::sign(&stranger, chain_id, channel, 21 * price).to_header();
    let status = rt.block_on(async {
        http.post(format!("{gateway}/v1/chat/completions"))
            .header("X-MYCEL-SESSION", forged)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 402);

    // The latest voucher is on disk.
    let saved: Value = serde_json::from_slice(&std::fs::read(&book_file).unwrap()).unwrap();
    assert_eq!(saved[channel.to_string()]["accepted"], json!(20 * price));
    // A gateway restarted from that file still refuses the replay of an older voucher, and
    // accepts the next one.
    std::fs::copy(&book_file, dir.path().join("restarted.json")).unwrap();
    let restarted = SessionBook::open(
        NodeClient::new(&rpc).expect("client"),
        payee.clone(),
        chain_id,
        mycel_types::genesis::DEFAULT_MIN_FEE,
        dir.path().join("restarted.json"),
    )
    .unwrap();
    assert_eq!(restarted.channel(&channel).map(|c| c.0), Some(20 * price));
    let replay = SessionVoucher::sign(&payer, chain_id, channel, 20 * price).to_header();
    let refused = rt.block_on(restarted.reserve(&replay, price)).unwrap_err();
    assert_eq!(refused.code(), "session_voucher_too_low");
    let next = SessionVoucher::sign(&payer, chain_id, channel, 21 * price).to_header();
    assert!(rt.block_on(restarted.reserve(&next, price)).is_ok());

    // The gateway claims in batches of 10 vouchers: the chain ends at 20 × price.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = get(&rt, &format!("{rpc}/v1/channels/{channel}"));
        // The gateway's book learns of a claim when it sees it final (polling), just after.
        if units(&c["claimed"]) == 20 * price
            && book.channel(&channel) == Some((20 * price, 20 * price))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "claims did not reach 20 × price: {c}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let payee_now = units(&get(&rt, &format!("{rpc}/v1/accounts/{}", payee.address()))["musd"]);
    assert_eq!(payee_now, payee0 + 20 * price);

    // The payer takes the rest back: not before the delay, then yes.
    let dev = PAYER.to_string();
    let ch = channel.to_string();
    let out = mycel(
        &rpc,
        &["session", "close", "--channel", &ch, "--dev-account", &dev],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = mycel(
        &rpc,
        &[
            "session",
            "withdraw",
            "--channel",
            &ch,
            "--dev-account",
            &dev,
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("channel_withdraw_too_early"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_secs(DELAY_S + 1));
    let out = mycel(
        &rpc,
        &[
            "session",
            "withdraw",
            "--channel",
            &ch,
            "--dev-account",
            &dev,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = get(&rt, &format!("{rpc}/v1/channels/{channel}"));
    assert_eq!(c["closed"], true);
    assert_eq!(units(&c["claimed"]), 20 * price);
    assert_eq!(units(&c["escrowed"]), 0);
    let payer_now = units(&get(&rt, &format!("{rpc}/v1/accounts/{}", payer.address()))["musd"]);
    assert_eq!(payer_now, payer0 - 20 * price);
}

/// The default model's prompt format (tokenizer, template, context), fetched on first use.
fn prompt_format() -> mycel_infer::PromptFormat {
    let cache = mycel_infer::default_cache_dir().expect("a model cache directory");
    let path = mycel_infer::ensure_default_model(&cache, &mut |_| {}).expect("the default model");
    mycel_infer::PromptFormat::from_gguf_file(&path).expect("its tokenizer")
}
