//! The paid gateway end to end: a real devnet (`mycel up`), a real `mycel gateway` process in
//! front of a real OpenAI-shaped HTTP server on loopback, payments signed by the stock npm x402
//! client (interop/x402-client) and by Rust, settlement checked on chain.

use alloy_primitives::{Address, B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use axum::{extract::State, http::StatusCode, routing::post, Json, Router};
use mycel_gateway::wire::{
    self, AuthorizationJson, ExactEvmPayload, PaymentPayload, PaymentPayloadV1, PaymentRequired,
    PaymentRequirements,
};
use mycel_testkit::http::{post_json, Answer};
use mycel_testkit::interop::{npm_ci, x402_client_dir};
use mycel_testkit::{free_port, now_secs, Devnet, DevnetOptions, Proc, TestDir};
use mycel_types::{eip3009, keys::dev_signer};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- processes

/// `mycel ARGS` as a server (see the test kit), its log text once it printed `banner`.
fn start_mycel(
    dir: &Path,
    name: &str,
    banner: &str,
    args: impl FnMut() -> Vec<String>,
) -> (Proc, String) {
    let (proc, _) = mycel_testkit::process::start_mycel(dir, name, banner, "warn", args);
    let log = proc.log();
    (proc, log)
}

/// An OpenAI-shaped upstream on loopback: answers chat completions, fails (500) when the model is
/// "fail", and counts the requests it answered.
struct Upstream {
    url: String,
    calls: Arc<AtomicU64>,
}

async fn completion(
    State(calls): State<Arc<AtomicU64>>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    calls.fetch_add(1, Ordering::SeqCst);
    if body["model"] == "fail" {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "the model crashed"}})),
        );
    }
    let prompt = body["messages"][0]["content"]
        .as_str()
        .or(body["prompt"].as_str())
        .unwrap_or_default();
    let short: String = prompt.chars().take(40).collect();
    (
        StatusCode::OK,
        Json(json!({
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": format!("echo: {short}")}}],
            // What the gateway forwarded, so tests can see the output limit it sold.
            "received": {"max_tokens": body["max_tokens"],
                         "max_completion_tokens": body["max_completion_tokens"]},
        })),
    )
}

fn start_upstream(runtime: &tokio::runtime::Runtime) -> Upstream {
    let calls = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route("/v1/chat/completions", post(completion))
        .route("/v1/completions", post(completion))
        .with_state(calls.clone());
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind upstream");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    runtime.spawn(async move { axum::serve(listener, app).await });
    Upstream { url, calls }
}

/// A devnet, an upstream and a gateway, all on loopback.
struct Setup {
    runtime: tokio::runtime::Runtime,
    rpc: String,
    gateway: String,
    upstream: Upstream,
    pay_to: Address,
    http: reqwest::Client,
    _devnet: Devnet,
    _gateway: Proc,
    _upstream: Option<Proc>,
    _dir: TestDir,
}

const FACILITATOR_DEV_ACCOUNT: u32 = 0;
const PAY_TO_DEV_ACCOUNT: u32 = 9;

impl Setup {
    fn start() -> Setup {
        Setup::start_with(|_, runtime| (start_upstream(runtime), None))
    }

    /// A devnet and a gateway in front of the upstream that `upstream` starts (given the test's
    /// directory and runtime; it may return a process to keep alive).
    fn start_with(
        upstream: impl FnOnce(&Path, &tokio::runtime::Runtime) -> (Upstream, Option<Proc>),
    ) -> Setup {
        Setup::start_with_args(upstream, &[])
    }

    /// As [`Setup::start_with`], with more `mycel gateway` flags.
    fn start_with_args(
        upstream: impl FnOnce(&Path, &tokio::runtime::Runtime) -> (Upstream, Option<Proc>),
        gateway_args: &[&str],
    ) -> Setup {
        let dir = TestDir::new();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let devnet = Devnet::start_with(DevnetOptions {
            rust_log: "warn".into(),
            ..DevnetOptions::default()
        });
        let rpc = devnet.rpc().to_string();
        let (upstream, upstream_proc) = upstream(dir.path(), &runtime);
        let pay_to = dev_signer(PAY_TO_DEV_ACCOUNT).expect("dev key").address();
        let (gateway, banner) = start_mycel(dir.path(), "gateway", "facilitator http://", || {
            vec![
                "gateway".into(),
                "--upstream".into(),
                upstream.url.clone(),
                "--rpc".into(),
                rpc.clone(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--dev-account".into(),
                FACILITATOR_DEV_ACCOUNT.to_string(),
                "--pay-to".into(),
                pay_to.to_string(),
            ]
            .into_iter()
            .chain(gateway_args.iter().map(|a| a.to_string()))
            .collect()
        });
        let api_line = banner
            .lines()
            .find(|l| l.trim_start().starts_with("api"))
            .expect("api line in the gateway banner");
        let url = api_line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("url");
        let gateway_url = url.trim_end_matches("/v1/chat/completions").to_string();
        let setup = Setup {
            runtime,
            rpc,
            gateway: gateway_url,
            upstream,
            pay_to,
            http: reqwest::Client::new(),
            _devnet: devnet,
            _gateway: gateway,
            _upstream: upstream_proc,
            _dir: dir,
        };
        setup.wait_for_height(1);
        setup
    }

    fn wait_for_height(&self, height: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.node_get("/v1/status")["height"].as_u64().unwrap_or(0) < height {
            assert!(
                Instant::now() < deadline,
                "devnet stuck below height {height}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn node_get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.rpc);
        self.runtime.block_on(async {
            let r = self.http.get(&url).send().await.expect("GET node");
            r.json().await.expect("node JSON")
        })
    }

    fn musd(&self, address: Address) -> u128 {
        self.node_get(&format!("/v1/accounts/{address}"))["musd"]
            .as_str()
            .expect("musd")
            .parse()
            .expect("amount")
    }

    fn authorization_used(&self, authorizer: Address, nonce: B256) -> bool {
        self.node_get(&format!("/v1/musd/authorizations/{authorizer}/{nonce}"))["used"]
            .as_bool()
            .expect("used")
    }

    /// POST a chat completion to the gateway with optional payment headers.
    fn chat(&self, body: &Value, headers: &[(&str, String)]) -> Answer {
        self.runtime
            .block_on(post_chat(&self.http, &self.gateway, body, headers))
    }

    /// POST to `path` of the gateway with optional payment headers.
    fn post(&self, path: &str, body: &Value, headers: &[(&str, String)]) -> Answer {
        let url = format!("{}{path}", self.gateway);
        self.runtime
            .block_on(post_json(&self.http, &url, body, headers))
    }

    /// The requirements of a 402 for `body`.
    fn requirements(&self, body: &Value) -> PaymentRequirements {
        let answer = self.chat(body, &[]);
        assert_eq!(answer.status, 402, "unpaid request: {}", answer.body);
        let required: PaymentRequired = wire::decode_header(
            answer
                .header(wire::PAYMENT_REQUIRED)
                .expect("PAYMENT-REQUIRED"),
        )
        .expect("PaymentRequired");
        assert_eq!(required.x402_version, 2);
        required.accepts[0].clone()
    }
}

/// What a gateway test reads from an answer beyond its status and body.
trait PaidAnswer {
    /// The `error` reason of a 402 (from the PAYMENT-REQUIRED header, checked against the body).
    fn reason(&self) -> String;
    fn settlement(&self, header: &str) -> wire::SettleResponse;
}

impl PaidAnswer for Answer {
    fn reason(&self) -> String {
        assert_eq!(
            self.status, 402,
            "expected 402, got {}: {}",
            self.status, self.body
        );
        let required: PaymentRequired = wire::decode_header(
            self.header(wire::PAYMENT_REQUIRED)
                .expect("PAYMENT-REQUIRED"),
        )
        .expect("PaymentRequired");
        let reason = required.error.expect("error reason");
        assert_eq!(self.body["error"], reason.as_str());
        reason
    }

    fn settlement(&self, header: &str) -> wire::SettleResponse {
        wire::decode_header(self.header(header).expect("payment response header"))
            .expect("SettleResponse")
    }
}

async fn post_chat(
    http: &reqwest::Client,
    gateway: &str,
    body: &Value,
    headers: &[(&str, String)],
) -> Answer {
    post_json(
        http,
        &format!("{gateway}/v1/chat/completions"),
        body,
        headers,
    )
    .await
}

fn chat_body(model: &str, max_tokens: u64) -> Value {
    json!({"model": model, "max_tokens": max_tokens,
           "messages": [{"role": "user", "content": "hello gateway"}]})
}

/// A payment of `requirements` by `payer`, signed the way the exact EVM scheme signs it.
struct Pay {
    authorization: AuthorizationJson,
    signature: String,
}

fn sign(
    payer: &PrivateKeySigner,
    requirements: &PaymentRequirements,
    tweak: impl Fn(&mut eip3009::TransferWithAuthorization),
) -> Pay {
    let mut auth = eip3009::TransferWithAuthorization {
        from: payer.address(),
        to: requirements.pay_to.parse().expect("payTo"),
        value: requirements.amount.parse().expect("amount"),
        validAfter: U256::ZERO,
        validBefore: U256::from(now_secs() + requirements.max_timeout_seconds),
        nonce: B256::random(),
    };
    tweak(&mut auth);
    let chain_id: u64 = requirements.network["eip155:".len()..]
        .parse()
        .expect("chain id");
    let domain = eip3009::musd_domain(chain_id);
    let signature = payer
        .sign_hash_sync(&auth.signing_hash(&domain))
        .expect("sign");
    Pay {
        authorization: AuthorizationJson {
            from: auth.from.to_checksum(None),
            to: auth.to.to_checksum(None),
            value: auth.value.to_string(),
            valid_after: auth.validAfter.to_string(),
            valid_before: auth.validBefore.to_string(),
            nonce: auth.nonce.to_string(),
        },
        signature: format!("0x{}", hex::encode(signature.as_bytes())),
    }
}

impl Pay {
    fn nonce(&self) -> B256 {
        self.authorization.nonce.parse().expect("nonce")
    }

    fn v2(&self, accepted: &PaymentRequirements) -> (&'static str, String) {
        let payload = PaymentPayload {
            x402_version: 2,
            resource: None,
            accepted: accepted.clone(),
            payload: ExactEvmPayload {
                signature: self.signature.clone(),
                authorization: self.authorization.clone(),
            },
            extensions: None,
        };
        ("PAYMENT-SIGNATURE", wire::encode_header(&payload))
    }

    fn v1(&self, network: &str) -> (&'static str, String) {
        let payload = PaymentPayloadV1 {
            x402_version: 1,
            scheme: "exact".into(),
            network: network.into(),
            payload: ExactEvmPayload {
                signature: self.signature.clone(),
                authorization: self.authorization.clone(),
            },
        };
        ("X-PAYMENT", wire::encode_header(&payload))
    }
}

// ---------------------------------------------------------------- hostile and careless clients

/// The attack on the old gateway: an ~8,100-word prompt paid as one token. Now a prompt is
/// priced by its tokens (counted as the miner counts them), a request that cannot fit the
/// context or asks for what mycel does not do is refused before any payment, and what is
/// forwarded names the output limit that was priced, whichever way the client asked for it.
#[test]
fn requests_are_priced_by_their_tokens_and_refused_before_payment_when_they_cannot_run() {
    let setup = Setup::start();
    let format = prompt_format();
    let words = "word ".repeat(8100);
    let prompt_tokens = |content: &str| {
        format
            .chat_tokens(&[mycel_infer::ChatMessage::user(content)], usize::MAX)
            .expect("tokens")
            .len() as u128
    };
    let price_of =
        |prompt: u128, output: u128| 1_000 + (prompt * 2_500 + output * 10_000).div_ceil(1000);

    let long = json!({"model": "smollm2", "max_tokens": 1,
                      "messages": [{"role": "user", "content": words}]});
    let long_price: u128 = setup.requirements(&long).amount.parse().expect("price");
    assert!(prompt_tokens(&words) > 8100);
    assert_eq!(long_price, price_of(prompt_tokens(&words), 1));
    let short_price: u128 = setup
        .requirements(&chat_body("smollm2", 1))
        .amount
        .parse()
        .expect("price");
    assert!(
        long_price > 15 * short_price,
        "{long_price} vs {short_price}"
    );

    // Refused before payment, the model never called: with the OpenAI error of the miner.
    let refused = |body: Value, param: &str, code: &str| {
        let answer = setup.chat(&body, &[]);
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert!(answer.header(wire::PAYMENT_REQUIRED).is_none());
        assert_eq!(answer.body["error"]["param"], param, "{}", answer.body);
        assert_eq!(answer.body["error"]["code"], code, "{}", answer.body);
    };
    refused(
        json!({"model": "smollm2", "max_tokens": 100,
               "messages": [{"role": "user", "content": words}]}),
        "messages",
        "context_length_exceeded",
    );
    refused(
        json!({"model": "smollm2", "max_tokens": 1, "max_completion_tokens": 300,
               "messages": [{"role": "user", "content": "hi"}]}),
        "max_tokens",
        "invalid_value",
    );
    for (name, value) in [
        (
            "tools",
            json!([{"type": "function", "function": {"name": "f"}}]),
        ),
        ("response_format", json!({"type": "json_object"})),
        ("logit_bias", json!({"42": 10})),
    ] {
        let mut body = chat_body("smollm2", 5);
        body[name] = value;
        refused(body, name, "unsupported_parameter");
    }
    assert_eq!(setup.upstream.calls.load(Ordering::SeqCst), 0);

    // Every way of asking: the price is for exactly the limit the upstream is then given.
    let payer = dev_signer(3).expect("dev key");
    let hi = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(&str, Value, u128)> = vec![
        (
            "/v1/chat/completions",
            json!({"model": "m", "messages": hi, "max_tokens": 7}),
            7,
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m", "messages": hi, "max_completion_tokens": 9}),
            9,
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m", "messages": hi, "max_tokens": 4, "max_completion_tokens": 4}),
            4,
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m", "messages": hi}),
            256,
        ),
        (
            "/v1/completions",
            json!({"model": "m", "prompt": "Once upon"}),
            16,
        ),
        (
            "/v1/completions",
            json!({"model": "m", "prompt": "Once upon", "max_tokens": 3}),
            3,
        ),
    ];
    for (path, body, limit) in cases {
        let unpaid = setup.post(path, &body, &[]);
        assert_eq!(unpaid.status, 402, "{path} {body}: {}", unpaid.body);
        let required: PaymentRequired =
            wire::decode_header(unpaid.header(wire::PAYMENT_REQUIRED).expect("402 header"))
                .expect("PaymentRequired");
        let requirements = required.accepts[0].clone();
        let price: u128 = requirements.amount.parse().expect("price");
        let prompt = match path {
            "/v1/chat/completions" => prompt_tokens("hi"),
            _ => format
                .completion_tokens("Once upon", usize::MAX)
                .expect("tokens")
                .len() as u128,
        };
        assert_eq!(price, price_of(prompt, limit), "{path} {body}");
        let before = setup.musd(payer.address());
        let pay = sign(&payer, &requirements, |_| {});
        let answer = setup.post(path, &body, &[pay.v2(&requirements)]);
        assert_eq!(answer.status, 200, "{path} {body}: {}", answer.body);
        assert_eq!(
            answer.body["received"]["max_tokens"],
            json!(limit),
            "{body}"
        );
        assert!(answer.body["received"]["max_completion_tokens"].is_null());
        assert_eq!(setup.musd(payer.address()), before - price);
    }
}

/// A paying client that hangs up while its payment settles, or loses the answer after: the
/// same request with the same payment gets the answer it paid for, and it is charged once.
#[test]
fn a_paid_answer_lost_in_transit_is_given_again_and_paid_once() {
    let setup = Setup::start();
    let payer = dev_signer(5).expect("dev key");
    let facilitator = dev_signer(FACILITATOR_DEV_ACCOUNT)
        .expect("dev key")
        .address();
    let gateway_addr = setup.gateway.trim_start_matches("http://").to_string();
    let next_nonce = |who: Address| {
        setup.node_get(&format!("/v1/accounts/{who}"))["next_nonce"]
            .as_u64()
            .expect("next_nonce")
    };
    let wait_until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "{what} did not happen in 30 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    for (case, hang_up_when) in [("settling", "submitted"), ("settled", "final")] {
        let body = json!({"model": "smollm2", "max_tokens": 8,
                          "messages": [{"role": "user", "content": format!("lost answer, {case}")}]});
        let requirements = setup.requirements(&body);
        let price: u128 = requirements.amount.parse().expect("price");
        let pay = sign(&payer, &requirements, |_| {});
        let (header, value) = pay.v2(&requirements);
        let before = setup.musd(payer.address());
        let calls_before = setup.upstream.calls.load(Ordering::SeqCst);
        let nonce_before = next_nonce(facilitator);

        // The client sends the paid request and never reads the answer; it hangs up once the
        // settlement is submitted (still pending) or final.
        let payload = body.to_string();
        let socket = send_unread(
            &gateway_addr,
            "/v1/chat/completions",
            &[(header, &value)],
            &payload,
        );
        match hang_up_when {
            "submitted" => wait_until("the settlement", &|| next_nonce(facilitator) > nonce_before),
            _ => wait_until("finality", &|| {
                setup.authorization_used(payer.address(), pay.nonce())
            }),
        }
        drop(socket);

        // The retry: same request, same payment.
        let answer = setup.chat(&body, &[(header, value.clone())]);
        assert_eq!(answer.status, 200, "{case}: {}", answer.body);
        assert!(answer.settlement(wire::PAYMENT_RESPONSE).success);
        assert_eq!(
            answer.body["choices"][0]["message"]["content"],
            format!("echo: lost answer, {case}")
        );
        assert!(setup.authorization_used(payer.address(), pay.nonce()));
        assert_eq!(
            setup.musd(payer.address()),
            before - price,
            "{case}: charged once"
        );
        assert_eq!(
            setup.upstream.calls.load(Ordering::SeqCst),
            calls_before + 1,
            "{case}: the model ran once"
        );
    }
}

/// Sends a JSON POST on a raw connection whose answer is never read; dropping the returned
/// socket hangs up, as a client that goes away does.
fn send_unread(
    address: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::net::TcpStream {
    use std::io::Write;
    let mut socket = std::net::TcpStream::connect(address).expect("connect");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    socket.write_all(request.as_bytes()).expect("send");
    socket
}

/// A real `mycel miner` (the default model) as the gateway's upstream.
fn miner_upstream(dir: &Path) -> (Upstream, Option<Proc>) {
    let (miner, banner) = start_mycel(dir, "miner", "mycel miner serving http://", || {
        vec![
            "miner".into(),
            "--netuid".into(),
            "1".into(),
            "--dev-account".into(),
            "5".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--chain-id".into(),
            "1337".into(),
        ]
    });
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("miner url")
        .trim_end_matches("/v1")
        .to_string();
    (
        Upstream {
            url,
            calls: Arc::new(AtomicU64::new(0)),
        },
        Some(miner),
    )
}

/// A client that pays for a long request and hangs up while the miner works: the miner stops
/// within a second (its worker is free again) and the client is not charged.
#[test]
fn a_client_that_hangs_up_during_a_paid_request_pays_nothing_and_frees_the_miner() {
    let setup = Setup::start_with(|dir, _| miner_upstream(dir));
    let metric = |name: &str| -> f64 {
        let url = format!("{}/metrics", setup.upstream.url);
        let text = setup.runtime.block_on(async {
            setup
                .http
                .get(&url)
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text")
        });
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    let payer = dev_signer(8).expect("dev key");
    let before = setup.musd(payer.address());
    let body = json!({"model": "SmolLM2-135M-Instruct.Q4_1", "max_tokens": 1,
                      "messages": [{"role": "user", "content": "word ".repeat(7000)}]});
    let requirements = setup.requirements(&body);
    let pay = sign(&payer, &requirements, |_| {});
    let (header, value) = pay.v2(&requirements);
    let gateway_addr = setup.gateway.trim_start_matches("http://").to_string();
    let payload = body.to_string();
    let socket = send_unread(
        &gateway_addr,
        "/v1/chat/completions",
        &[(header, &value)],
        &payload,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric("mycel_miner_in_flight") != 1.0 {
        assert!(
            Instant::now() < deadline,
            "the miner never started the request"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(socket);
    let hung_up = Instant::now();
    while metric("mycel_miner_in_flight") != 0.0 {
        assert!(
            hung_up.elapsed() < Duration::from_secs(10),
            "the miner still works for a client that left"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let freed = hung_up.elapsed();
    eprintln!("miner freed {freed:?} after the client hung up on the gateway");
    assert!(freed <= Duration::from_secs(1), "freed after {freed:?}");
    assert_eq!(metric("mycel_miner_cancelled_total"), 1.0);
    // Not charged: the authorization is unused and can still pay (e.g. a retry).
    assert!(!setup.authorization_used(payer.address(), pay.nonce()));
    assert_eq!(setup.musd(payer.address()), before);
}

// ---------------------------------------------------------------- the npm client

#[test]
fn the_npm_x402_client_pays_the_gateway_and_the_payment_settles_on_chain() {
    npm_ci();
    let setup = Setup::start();
    let payer = dev_signer(1).expect("dev key");
    let before_payer = setup.musd(payer.address());
    let before_pay_to = setup.musd(setup.pay_to);
    let body = chat_body("smollm2", 100);
    let price: u128 = setup.requirements(&body).amount.parse().expect("price");
    let prompt_tokens = prompt_format()
        .chat_tokens(
            &[mycel_infer::ChatMessage::user("hello gateway")],
            usize::MAX,
        )
        .expect("tokens")
        .len() as u128;
    assert_eq!(
        price,
        1_000 + (prompt_tokens * 2_500 + 100 * 10_000).div_ceil(1000),
        "0.001 mUSD + {prompt_tokens} prompt tokens at 0.0025 per 1k + 100 tokens at 0.01 per 1k"
    );

    let out = Command::new("node")
        .arg("pay.mjs")
        .arg(format!("{}/v1/chat/completions", setup.gateway))
        .arg(body.to_string())
        .env("PAYER_KEY", format!("0x{}", hex::encode(payer.to_bytes())))
        .current_dir(x402_client_dir())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pay.mjs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).expect("pay.mjs prints JSON");
    assert_eq!(result["status"], 200, "{result}");
    let completion: Value =
        serde_json::from_str(result["body"].as_str().expect("body")).expect("completion JSON");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "echo: hello gateway"
    );
    let settled = &result["paymentResponse"];
    assert_eq!(settled["success"], true, "{result}");
    assert_eq!(settled["network"], "eip155:1337");
    assert_eq!(
        settled["payer"].as_str().map(str::to_lowercase),
        Some(payer.address().to_string().to_lowercase())
    );

    // On chain: the transaction executed the authorization, the money moved once.
    let tx = settled["transaction"].as_str().expect("tx hash");
    let status = setup.node_get(&format!("/v1/txs/{tx}"));
    assert_eq!(status["status"], "finalized", "{status}");
    assert_eq!(status["receipt"]["type"], "TransferWithAuthorization");
    let used = status["receipt"]["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["event"] == "authorization_used")
        .expect("authorization_used event")
        .clone();
    let nonce: B256 = used["nonce"]
        .as_str()
        .expect("nonce")
        .parse()
        .expect("B256");
    assert!(setup.authorization_used(payer.address(), nonce));
    assert_eq!(setup.musd(payer.address()), before_payer - price);
    assert_eq!(setup.musd(setup.pay_to), before_pay_to + price);
    assert_eq!(setup.upstream.calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------- Rust-signed payments

#[test]
fn replays_failures_and_bad_payments_never_charge_twice_or_wrongly() {
    let setup = Setup::start();
    let payer = dev_signer(2).expect("dev key");
    let body = chat_body("smollm2", 50);
    let requirements = setup.requirements(&body);
    let price: u128 = requirements.amount.parse().expect("price");
    let start = setup.musd(payer.address());

    // The handler fails: nothing is settled, and the same payment still works afterwards.
    let pay = sign(&payer, &requirements, |_| {});
    let failed = setup.chat(&chat_body("fail", 50), &[pay.v2(&requirements)]);
    assert_eq!(failed.status, 500, "{}", failed.body);
    assert!(failed.header(wire::PAYMENT_RESPONSE).is_none());
    assert_eq!(setup.musd(payer.address()), start);
    assert!(!setup.authorization_used(payer.address(), pay.nonce()));

    // The same payment sent 50 times at once: one answer is served and paid, once.
    let calls_before = setup.upstream.calls.load(Ordering::SeqCst);
    let header = pay.v2(&requirements);
    let answers: Vec<Answer> = setup.runtime.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (http, gateway, body, header) = (
                    setup.http.clone(),
                    setup.gateway.clone(),
                    body.clone(),
                    header.clone(),
                );
                tokio::spawn(async move { post_chat(&http, &gateway, &body, &[header]).await })
            })
            .collect();
        let mut answers = vec![];
        for t in tasks {
            answers.push(t.await.expect("task"));
        }
        answers
    });
    // Copies that arrive while it is being served are refused; copies that arrive once it is
    // settling or settled get the very same answer (a retry), never a second one.
    let paid: Vec<&Answer> = answers.iter().filter(|a| a.status == 200).collect();
    assert!(
        !paid.is_empty(),
        "statuses: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let settled = paid[0].settlement(wire::PAYMENT_RESPONSE);
    assert!(settled.success, "{settled:?}");
    for a in &paid {
        assert_eq!(a.body, paid[0].body);
        assert_eq!(a.settlement(wire::PAYMENT_RESPONSE), settled);
    }
    for a in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(a.reason(), "invalid_exact_evm_nonce_already_used");
    }
    assert_eq!(
        setup.upstream.calls.load(Ordering::SeqCst),
        calls_before + 1
    );
    assert_eq!(setup.musd(payer.address()), start - price);
    assert!(setup.authorization_used(payer.address(), pay.nonce()));
    // Once more, later, for the same request: the same answer again, nothing charged; for
    // another request: refused.
    let again = setup.chat(&body, &[pay.v2(&requirements)]);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, paid[0].body);
    assert_eq!(setup.musd(payer.address()), start - price);
    let mut other = body.clone();
    other["temperature"] = json!(0.5);
    assert_eq!(
        setup.chat(&other, &[pay.v2(&requirements)]).reason(),
        "invalid_exact_evm_nonce_already_used"
    );
    assert_eq!(
        setup.upstream.calls.load(Ordering::SeqCst),
        calls_before + 1
    );

    // v1 (X-PAYMENT) pays too, and gets X-PAYMENT-RESPONSE.
    let v1 = sign(&payer, &requirements, |_| {});
    let answer = setup.chat(&body, &[v1.v1(&requirements.network)]);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.settlement(wire::X_PAYMENT_RESPONSE).success);
    assert_eq!(setup.musd(payer.address()), start - 2 * price);

    // Bad payments: each a 402 with its reason, nothing charged, the model never called.
    let calls_before = setup.upstream.calls.load(Ordering::SeqCst);
    let balance_before = setup.musd(payer.address());
    let good = sign(&payer, &requirements, |_| {});
    let mut wrong_network = requirements.clone();
    wrong_network.network = "eip155:8453".into();
    let mut wrong_asset = requirements.clone();
    wrong_asset.asset = "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into();
    let too_much = sign(&payer, &requirements, |a| a.value += U256::from(1));
    let expired = sign(&payer, &requirements, |a| {
        a.validBefore = U256::from(now_secs() - 10)
    });
    let not_yet = sign(&payer, &requirements, |a| {
        a.validAfter = U256::from(now_secs() + 3600)
    });
    let stranger = PrivateKeySigner::random();
    let broke = sign(&stranger, &requirements, |_| {});
    let other_key = sign(&payer, &requirements, |_| {});
    let mut forged = other_key.v2(&requirements);
    forged.1 = {
        let mut p: PaymentPayload = wire::decode_header(&forged.1).expect("payload");
        p.payload.authorization.from = stranger.address().to_checksum(None);
        wire::encode_header(&p)
    };
    let cases: Vec<(&str, (&str, String), &str)> = vec![
        (
            "malformed base64",
            ("PAYMENT-SIGNATURE", "%%% not base64 %%%".into()),
            "invalid_payload",
        ),
        (
            "not JSON",
            ("PAYMENT-SIGNATURE", wire::encode_header(&"hello")),
            "invalid_payload",
        ),
        ("wrong network", good.v2(&wrong_network), "invalid_network"),
        (
            "wrong asset",
            good.v2(&wrong_asset),
            "invalid_exact_evm_asset_mismatch",
        ),
        (
            "amount mismatch",
            too_much.v2(&requirements),
            "invalid_exact_evm_payload_authorization_value_mismatch",
        ),
        (
            "expired window",
            expired.v2(&requirements),
            "invalid_exact_evm_payload_authorization_valid_before",
        ),
        (
            "not yet valid",
            not_yet.v2(&requirements),
            "invalid_exact_evm_payload_authorization_valid_after",
        ),
        (
            "insufficient balance",
            broke.v2(&requirements),
            "invalid_exact_evm_insufficient_balance",
        ),
        (
            "signed by another key",
            forged,
            "invalid_exact_evm_signature",
        ),
    ];
    for (what, header, expected) in cases {
        let answer = setup.chat(&body, &[header]);
        assert_eq!(answer.reason(), expected, "{what}: {}", answer.body);
    }
    assert_eq!(setup.upstream.calls.load(Ordering::SeqCst), calls_before);
    assert_eq!(setup.musd(payer.address()), balance_before);
    assert_eq!(setup.musd(stranger.address()), 0);
    // The good payment was never used by any of this.
    let answer = setup.chat(&body, &[good.v2(&requirements)]);
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[test]
fn facilitator_api_settles_once_across_a_timed_out_retry() {
    let setup = Setup::start();
    let payer = dev_signer(3).expect("dev key");
    let body = chat_body("smollm2", 10);
    let requirements = setup.requirements(&body);
    let price: u128 = requirements.amount.parse().expect("price");
    let start = setup.musd(payer.address());

    let supported: Value = setup.runtime.block_on(async {
        setup
            .http
            .get(format!("{}/supported", setup.gateway))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON")
    });
    assert!(supported["kinds"]
        .as_array()
        .expect("kinds")
        .iter()
        .any(|k| k["x402Version"] == 2 && k["network"] == "eip155:1337"));
    assert_eq!(
        supported["signers"]["eip155:*"][0]
            .as_str()
            .map(str::to_lowercase),
        Some(
            dev_signer(FACILITATOR_DEV_ACCOUNT)
                .expect("key")
                .address()
                .to_string()
                .to_lowercase()
        )
    );

    let pay = sign(&payer, &requirements, |_| {});
    let (_, header) = pay.v2(&requirements);
    let payload = wire::decode_header_json(&header).expect("payload");
    let request =
        json!({"x402Version": 2, "paymentPayload": payload, "paymentRequirements": requirements});
    let post = |path: &str, timeout: Duration| {
        let url = format!("{}{path}", setup.gateway);
        setup.runtime.block_on(async {
            let r = setup
                .http
                .post(&url)
                .json(&request)
                .timeout(timeout)
                .send()
                .await?;
            r.json::<Value>().await
        })
    };
    let verified = post("/verify", Duration::from_secs(30)).expect("verify");
    assert_eq!(verified["isValid"], true, "{verified}");

    // The client gives up before finality; the settlement goes on without it.
    assert!(
        post("/settle", Duration::from_millis(5)).is_err(),
        "settle should not be final in 5 ms"
    );
    let first = post("/settle", Duration::from_secs(60)).expect("settle");
    assert_eq!(first["success"], true, "{first}");
    let again = post("/settle", Duration::from_secs(60)).expect("settle again");
    assert_eq!(again, first, "a retried settle returns the first result");
    assert_eq!(setup.musd(payer.address()), start - price);
    assert!(setup.authorization_used(payer.address(), pay.nonce()));

    // Verify now says the nonce is used; a malformed body is a 400 that says what is expected.
    let verified = post("/verify", Duration::from_secs(30)).expect("verify");
    assert_eq!(
        verified["invalidReason"],
        "invalid_exact_evm_nonce_already_used"
    );
    let bad = setup.runtime.block_on(async {
        setup
            .http
            .post(format!("{}/verify", setup.gateway))
            .json(&json!({"x402Version": 2}))
            .send()
            .await
            .expect("POST")
    });
    assert_eq!(bad.status().as_u16(), 400);
}

#[test]
fn mycel_pay_shows_the_price_keeps_to_the_cap_and_pays() {
    let setup = Setup::start();
    let payer = dev_signer(4).expect("dev key");
    let start = setup.musd(payer.address());
    let body = chat_body("smollm2", 20);
    let price: u128 = setup.requirements(&body).amount.parse().expect("price");
    let url = format!("{}/v1/chat/completions", setup.gateway);
    let pay = |extra: &[&str]| {
        let data = body.to_string();
        let mut args = vec!["pay", url.as_str(), "--data", data.as_str()];
        args.extend_from_slice(extra);
        mycel_testkit::mycel::command::<&str>(&[])
            .args(&args)
            .env_remove("MYCEL_KEYSTORE")
            .output()
            .expect("mycel pay")
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();

    let dry = pay(&["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let shown = format!(
        "price: {} mUSD",
        mycel_types::format_amount(price, mycel_types::Token::Musd)
    );
    assert!(text(&dry.stderr).contains(&shown), "{}", text(&dry.stderr));

    let capped = pay(&["--dev-account", "4", "--max", "0.001"]);
    assert_eq!(capped.status.code(), Some(1));
    assert!(
        text(&capped.stderr).contains("over --max"),
        "{}",
        text(&capped.stderr)
    );
    assert_eq!(setup.musd(payer.address()), start);

    let paid = pay(&["--dev-account", "4", "--max", "0.01"]);
    assert!(paid.status.success(), "{}", text(&paid.stderr));
    let completion: Value = serde_json::from_str(text(&paid.stdout).trim()).expect("completion");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "echo: hello gateway"
    );
    assert!(
        text(&paid.stderr).contains("paid: transaction 0x"),
        "{}",
        text(&paid.stderr)
    );
    assert_eq!(setup.musd(payer.address()), start - price);
}

/// The whole product path: the stock npm client buys a real completion of SmolLM2 from a real
/// miner (`mycel miner`) through the gateway, with the miner's signed receipt.
#[test]
fn the_npm_x402_client_buys_a_real_completion_from_a_miner() {
    npm_ci();
    let setup = Setup::start_with(|dir, _| miner_upstream(dir));
    let payer = dev_signer(6).expect("dev key");
    let before = setup.musd(payer.address());
    let body = json!({"model": "SmolLM2-135M-Instruct.Q4_1", "max_tokens": 12,
                      "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let price: u128 = setup.requirements(&body).amount.parse().expect("price");
    let out = Command::new("node")
        .arg("pay.mjs")
        .arg(format!("{}/v1/chat/completions", setup.gateway))
        .arg(body.to_string())
        .env("PAYER_KEY", format!("0x{}", hex::encode(payer.to_bytes())))
        .current_dir(x402_client_dir())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pay.mjs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).expect("pay.mjs prints JSON");
    assert_eq!(result["status"], 200, "{result}");
    let completion: Value =
        serde_json::from_str(result["body"].as_str().expect("body")).expect("completion JSON");
    let text = completion["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    assert!(!text.is_empty());
    assert_eq!(
        completion["receipt"]["message"]["outputTokenCount"], 12,
        "{completion}"
    );
    assert_eq!(result["paymentResponse"]["success"], true, "{result}");
    assert_eq!(setup.musd(payer.address()), before - price);

    // `mycel chat` pays the same way, and the miner's receipt survives the gateway intact.
    let chat = mycel_testkit::mycel::command::<&str>(&[])
        .args(["chat", "Name a color.", "--gateway", &setup.gateway])
        .args([
            "--dev-account",
            "7",
            "--max",
            "0.01",
            "--max-tokens",
            "6",
            "--json",
        ])
        .env_remove("MYCEL_GATEWAY")
        .output()
        .expect("mycel chat");
    let stderr = String::from_utf8_lossy(&chat.stderr);
    assert!(chat.status.success(), "{stderr}");
    let chat_body = json!({"model": "SmolLM2-135M-Instruct.Q4_1", "max_tokens": 6,
                           "messages": [{"role": "user", "content": "Name a color."}]});
    let (chat_price, _) = mycel_gateway::Pricing::default()
        .quote(true, chat_body.to_string().as_bytes(), &prompt_format())
        .expect("quote");
    let shown = format!(
        "price: {} mUSD",
        mycel_types::format_amount(chat_price, mycel_types::Token::Musd)
    );
    assert!(stderr.contains(&shown), "{shown}: {stderr}");
    let answer_file = setup._dir.path().join("answer.json");
    std::fs::write(&answer_file, &chat.stdout).expect("write answer");
    let verify = mycel_testkit::mycel::command::<&str>(&[])
        .args(["receipt", "verify"])
        .arg(&answer_file)
        .output()
        .expect("mycel receipt verify");
    assert!(
        verify.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Someone else uses the facilitator's key (its cached nonce goes stale), and a settlement the
/// node drops (an authorization that expired in the mempool, with the key's queue behind it):
/// settlement re-reads the key's nonce and goes on; nothing is charged for what was dropped.
#[test]
fn settlement_survives_a_stale_nonce_and_a_dropped_transaction() {
    let setup = Setup::start();
    let key = dev_signer(FACILITATOR_DEV_ACCOUNT).expect("dev key");
    let payer = dev_signer(2).expect("dev key");
    let body = chat_body("smollm2", 10);
    let requirements = setup.requirements(&body);
    let price: u128 = requirements.amount.parse().expect("price");
    let start = setup.musd(payer.address());
    let pay = |setup: &Setup| {
        let answer = setup.chat(
            &body,
            &[sign(&payer, &requirements, |_| {}).v2(&requirements)],
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
        let settled = answer.settlement(wire::PAYMENT_RESPONSE);
        assert!(settled.success, "{settled:?}");
    };
    pay(&setup);

    let submit = |kind: mycel_types::TxKind| {
        let tx = mycel_types::SignedTx::sign(kind, 1337, &key).expect("sign tx");
        let status = setup.runtime.block_on(async {
            setup
                .http
                .post(format!("{}/v1/txs", setup.rpc))
                .json(&json!({"raw": format!("0x{}", hex::encode(tx.encode()))}))
                .send()
                .await
                .expect("POST")
                .status()
        });
        assert_eq!(status.as_u16(), 202);
        tx.hash()
    };
    let next_nonce = || {
        setup.node_get(&format!("/v1/accounts/{}", key.address()))["next_nonce"]
            .as_u64()
            .expect("nonce")
    };
    let wait_final = |hash: B256| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = setup.node_get(&format!("/v1/txs/{hash}"));
            if status["status"] != "pending" {
                return status;
            }
            assert!(Instant::now() < deadline, "{hash} still pending");
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // 1. A transfer signed with the facilitator's key by someone else uses its next nonce.
    let transfer = submit(mycel_types::TxKind::Transfer(mycel_types::Transfer {
        from: key.address(),
        to: payer.address(),
        token: alloy_primitives::Address::ZERO,
        amount: U256::from(1u64),
        memo: Default::default(),
        nonce: next_nonce(),
        fee: U256::from(mycel_types::genesis::DEFAULT_MIN_FEE),
    }));
    assert_eq!(wait_final(transfer)["status"], "finalized");
    pay(&setup);

    // 2. An authorization that expires before any block includes it: the node drops it. It is
    // valid only within the second of the latest finalized block; blocks are at least 1 s apart
    // (the proposer waits block_time after its parent), so every later block is past it. If a
    // block finalizes between reading the time and submitting, the node refuses it on entry:
    // read the time again and retry.
    let victim = dev_signer(7).expect("dev key");
    let doomed = loop {
        let latest_ms = setup.node_get("/v1/blocks/latest")["timestamp_ms"]
            .as_u64()
            .expect("timestamp_ms");
        let auth = eip3009::TransferWithAuthorization {
            from: victim.address(),
            to: key.address(),
            value: U256::from(1u64),
            validAfter: U256::ZERO,
            validBefore: U256::from(latest_ms / 1000 + 1),
            nonce: B256::random(),
        };
        let signature = victim
            .sign_hash_sync(&auth.signing_hash(&eip3009::musd_domain(1337)))
            .expect("sign");
        let tx = mycel_types::SignedTx::sign(
            mycel_types::TxKind::TransferWithAuthorization(
                mycel_types::TransferWithAuthorization {
                    from: key.address(),
                    payer: auth.from,
                    to: auth.to,
                    value: auth.value,
                    validAfter: auth.validAfter,
                    validBefore: auth.validBefore,
                    authorizationNonce: auth.nonce,
                    signature: signature.as_bytes().to_vec().into(),
                    nonce: next_nonce(),
                    fee: U256::from(mycel_types::genesis::DEFAULT_MIN_FEE),
                },
            ),
            1337,
            &key,
        )
        .expect("sign tx");
        let (status, body) = setup.runtime.block_on(async {
            let response = setup
                .http
                .post(format!("{}/v1/txs", setup.rpc))
                .json(&json!({"raw": format!("0x{}", hex::encode(tx.encode()))}))
                .send()
                .await
                .expect("POST");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        });
        if status == 202 {
            break (tx.hash(), auth.nonce);
        }
        assert!(
            body.contains("authorization_expired"),
            "refused for another reason: {status} {body}"
        );
    };
    let (doomed, doomed_nonce) = doomed;
    assert_eq!(wait_final(doomed)["status"], "rejected");
    assert!(!setup.authorization_used(victim.address(), doomed_nonce));
    pay(&setup);
    pay(&setup);
    assert_eq!(setup.musd(payer.address()), start - 4 * price);
}

#[test]
fn gateway_and_pay_command_lines_say_what_is_wrong() {
    let run = |args: &[&str]| {
        let out = mycel_testkit::mycel::command::<&str>(&[])
            .args(args)
            .env_remove("MYCEL_RPC")
            .env_remove("MYCEL_GATEWAY")
            .output()
            .expect("mycel");
        assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let pay_to = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720";
    let dead = format!("http://127.0.0.1:{}", free_port());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["gateway", "--upstream", "http://127.0.0.1:1"],
            "--pay-to",
        ),
        (
            vec!["gateway", "--upstream", "ftp://x", "--pay-to", pay_to],
            "not an http:// or https:// URL",
        ),
        (
            vec![
                "gateway",
                "--upstream",
                "http://127.0.0.1:1",
                "--pay-to",
                pay_to,
            ],
            "needs a key",
        ),
        (
            vec![
                "gateway",
                "--upstream",
                "http://127.0.0.1:1",
                "--pay-to",
                pay_to,
                "--dev-account",
                "12",
            ],
            "does not exist",
        ),
        (
            vec![
                "gateway",
                "--upstream",
                "http://127.0.0.1:1",
                "--pay-to",
                pay_to,
                "--dev-account",
                "0",
                "--rpc",
                &dead,
            ],
            "is the node running",
        ),
        (
            vec![
                "gateway",
                "--upstream",
                "http://127.0.0.1:1",
                "--pay-to",
                "0x12",
            ],
            "invalid value",
        ),
        (vec!["pay", &dead, "--dev-account", "1"], "cannot reach"),
        (
            vec!["pay", &dead, "--max", "lots", "--dev-account", "1"],
            "--max 'lots'",
        ),
        (
            vec!["pay", &dead, "--data", "{not json", "--dev-account", "1"],
            "--data is not JSON",
        ),
        (vec!["pay", &dead], "say who pays"),
        (
            vec![
                "gateway",
                "--upstream",
                "http://127.0.0.1:1",
                "--pay-to",
                pay_to,
                "--dev-account",
                "0",
                "--model-price",
                "big",
            ],
            "is not NAME=BASE,PER1K",
        ),
    ];
    for (args, needle) in cases {
        let stderr = run(&args);
        assert!(
            stderr.contains(needle),
            "{args:?}: stderr lacks {needle:?}:\n{stderr}"
        );
    }
}

/// The default model's prompt format (tokenizer, template, context), fetched on first use.
fn prompt_format() -> mycel_infer::PromptFormat {
    let cache = mycel_infer::default_cache_dir().expect("a model cache directory");
    let path = mycel_infer::ensure_default_model(&cache, &mut |_| {}).expect("the default model");
    mycel_infer::PromptFormat::from_gguf_file(&path).expect("its tokenizer")
}
