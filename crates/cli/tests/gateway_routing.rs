//! `mycel gateway --netuid` against a real devnet (`mycel up --chain-only`) on loopback: two real
//! `mycel miner` processes that register and announce themselves on chain, and a relay miner
//! built here (a real HTTP server registered and announced on chain that passes another miner's
//! answers off as its own, so its receipts are signed by someone else's hotkey). Paid requests
//! (real EIP-3009 signatures) go to the honest miners only; when one is killed the other serves,
//! within the same request; the serving miners' coldkeys receive their share in mUSD on chain.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use mycel_gateway::wire::{
    self, AuthorizationJson, ExactEvmPayload, PaymentPayload, PaymentRequired, PaymentRequirements,
};
use mycel_types::{eip3009, keys::dev_signer};
use serde_json::{json, Value};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1";
/// The pay-to account, whose key pays the miners' shares.
const PAY_TO: u32 = 5;
/// The facilitator's key (settles payments, pays their fees).
const FACILITATOR: u32 = 8;
const PAYER: u32 = 7;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn address(index: u32) -> Address {
    dev_signer(index).expect("dev key").address()
}

/// A `mycel` child process killed when dropped (and by the kernel if the test dies).
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(args: &[&str], log: &Path) -> Proc {
        let file = std::fs::File::create(log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_mycel"));
        command
            .args(args)
            .env("RUST_LOG", "warn,mycel_gateway=info,mycel_subnet=info")
            .env_remove("MYCEL_RPC")
            .env_remove("MYCEL_DATA_DIR")
            .env_remove("MYCEL_KEYSTORE")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Proc {
            child: command.spawn().expect("spawn mycel"),
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` and returns the line; fails if the process exits.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the process exited ({status}) before printing {needle:?}; log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {timeout:?}; log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Devnet {
    rpc: String,
    proc: Proc,
}

impl Devnet {
    fn start(dir: &Path) -> Devnet {
        for attempt in 0..5 {
            let rpc_port = free_port();
            let mut proc = Proc::spawn(
                &[
                    "up",
                    "--chain-only",
                    "--data-dir",
                    dir.join(format!("devnet-{attempt}"))
                        .to_str()
                        .expect("utf-8"),
                    "--rpc-addr",
                    &format!("127.0.0.1:{rpc_port}"),
                    "--p2p-addr",
                    &format!("127.0.0.1:{}", free_port()),
                ],
                &dir.join(format!("up-{attempt}.log")),
            );
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let log = proc.log();
                if log.contains("mycel devnet is running") {
                    return Devnet {
                        rpc: format!("http://127.0.0.1:{rpc_port}"),
                        proc,
                    };
                }
                if let Ok(Some(_)) = proc.child.try_wait() {
                    assert!(
                        log.contains("Address already in use"),
                        "mycel up exited:\n{log}"
                    );
                    break;
                }
                assert!(Instant::now() < deadline, "mycel up did not start:\n{log}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("every try found a port taken");
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--rpc", &self.rpc]);
        let out = Command::new(env!("CARGO_BIN_EXE_mycel"))
            .args(&all)
            .env_remove("MYCEL_RPC")
            .env_remove("MYCEL_KEYSTORE")
            .env_remove("MYCEL_PASSWORD")
            .output()
            .expect("run mycel");
        assert_eq!(
            out.status.code(),
            Some(0),
            "mycel {all:?} failed\nstdout: {}\nstderr: {}\nnode log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.proc.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Blocking HTTP over a runtime of the test's own.
struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
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
        self.runtime.block_on(async {
            let mut request = self.client.post(url).json(body);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let response = request.send().await.expect("POST");
            Answer {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: response.json().await.unwrap_or(Value::Null),
            }
        })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A v2 `PAYMENT-SIGNATURE` paying `requirements` from `payer`, signed as the exact EVM scheme.
fn payment(payer: &PrivateKeySigner, requirements: &PaymentRequirements) -> (&'static str, String) {
    let auth = eip3009::TransferWithAuthorization {
        from: payer.address(),
        to: requirements.pay_to.parse().expect("payTo"),
        value: requirements.amount.parse().expect("amount"),
        validAfter: U256::ZERO,
        validBefore: U256::from(now_secs() + requirements.max_timeout_seconds),
        nonce: B256::random(),
    };
    let chain_id: u64 = requirements.network["eip155:".len()..]
        .parse()
        .expect("chain id");
    let signature = payer
        .sign_hash_sync(&auth.signing_hash(&eip3009::musd_domain(chain_id)))
        .expect("sign");
    let payload = PaymentPayload {
        x402_version: 2,
        resource: None,
        accepted: requirements.clone(),
        payload: ExactEvmPayload {
            signature: format!("0x{}", hex::encode(signature.as_bytes())),
            authorization: AuthorizationJson {
                from: auth.from.to_checksum(None),
                to: auth.to.to_checksum(None),
                value: auth.value.to_string(),
                valid_after: auth.validAfter.to_string(),
                valid_before: auth.validBefore.to_string(),
                nonce: auth.nonce.to_string(),
            },
        },
        extensions: None,
    };
    (wire::PAYMENT_SIGNATURE, wire::encode_header(&payload))
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
    let dir = tempfile::tempdir().expect("tempdir");
    let net = Devnet::start(dir.path());
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
        http.get(&format!("{}/v1/accounts/{who}", net.rpc))["musd"]
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
            let proc = Proc::spawn(
                &[
                    "miner",
                    "--netuid",
                    "1",
                    "--dev-account",
                    &i.to_string(),
                    "--rpc",
                    &net.rpc,
                    "--listen",
                    "127.0.0.1:0",
                ],
                &dir.path().join(format!("miner-{i}.log")),
            );
            (i, proc, String::new())
        })
        .collect();
    for (_, proc, url) in &mut miners {
        let banner = proc.wait_for("mycel miner serving http://", Duration::from_secs(300));
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
    let mut gateway = Proc::spawn(
        &[
            "gateway",
            "--netuid",
            "1",
            "--rpc",
            &net.rpc,
            "--listen",
            &format!("127.0.0.1:{gateway_port}"),
            "--dev-account",
            &FACILITATOR.to_string(),
            "--pay-to",
            &address(PAY_TO).to_string(),
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
    gateway.wait_for("mycel gateway is running", Duration::from_secs(60));
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
        miner_entry(&status, address(i))["coldkey"]
            .as_str()
            .expect("coldkey")
            .parse()
            .expect("address")
    };
    let coldkeys = [coldkey(1), coldkey(2)];
    let shares_before = coldkeys.map(&musd);
    let payer = dev_signer(PAYER).expect("dev key");
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

    // Paid requests until the relay has been tried: every answer comes from an honest miner, with
    // a receipt signed by the hotkey the header names.
    let mut served_by: Vec<u32> = Vec::new();
    let paid = |served_by: &mut Vec<u32>| -> Answer {
        let answer = http.post(&chat_url, &body, &[payment(&payer, &requirements)]);
        assert_eq!(answer.status, 200, "{:#}\n{}", answer.body, gateway.log());
        let hotkey: Address = answer
            .header("x-mycel-miner")
            .expect("x-mycel-miner header")
            .parse()
            .expect("hotkey");
        let miner = [1u32, 2]
            .into_iter()
            .find(|&i| address(i) == hotkey)
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
    let liar = miner_entry(&status, address(3));
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
    let (pay_header, pay_value) = payment(&payer, &requirements);
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
    served_by.push(if miner == address(1) { 1 } else { 2 });
    assert!(miner == address(1) || miner == address(2), "{miner}");

    // Kill the honest miner with the better score (the lower latency), so that requests soon try
    // it: they go on, served by the other one, failing over within the request.
    let status = http.get(&format!("{gateway_url}/v1/miners"));
    let latency = |i: u32| miner_entry(&status, address(i))["latency_ms"].as_u64();
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
        .kill();
    // Until the gateway has tried the dead miner: every request succeeds all the same.
    let dead_failures = || {
        miner_entry(
            &http.get(&format!("{gateway_url}/v1/miners")),
            address(last),
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
            miner_entry(&http.get(&format!("{gateway_url}/v1/miners")), address(3))["uid"],
            address(3)
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
        let out = Command::new(env!("CARGO_BIN_EXE_mycel"))
            .args(args)
            .env_remove("MYCEL_RPC")
            .output()
            .expect("mycel");
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
    let err = run(&["gateway", "--netuid", "1", "--free", "--miner-share", "1.5"]);
    assert!(err.contains("--miner-share '1.5'"), "{err}");
    let err = run(&["gateway", "--netuid", "1", "--free", "--model-id", "xyz"]);
    assert!(err.contains("--model-id 'xyz'"), "{err}");
    let to = address(PAY_TO).to_string();
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
