//! `mycel validator` against a real devnet (`mycel up --chain-only`) on loopback: two honest
//! `mycel miner` processes and one dishonest miner built here (a real HTTP server that runs the
//! real model, alters the output tokens and signs a receipt for them with its own hotkey). After
//! the validator's weights reach an epoch, the honest miners earn incentive and the dishonest one
//! none; the validator's report says why.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use axum::routing::post;
use axum::{Json, Router};
use mycel_infer::{
    default_cache_dir, receipt_for_generation, CanonicalRequest, ChatMessage, Model,
    SamplingParams, SignedReceipt,
};
use mycel_testkit::http::{get_json, get_text};
use mycel_testkit::{dev_address, free_port, Devnet, Proc, TestDir};
use mycel_types::keys::dev_signer;
use serde_json::{json, Value};

const CHAIN_ID: u64 = 1337;
const NETUID: u16 = 1;

fn mycel(args: &[&str]) -> Output {
    mycel_testkit::mycel::run(args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `mycel ARGS` as a server with its output in `log`.
fn spawn(args: &[&str], log: &Path) -> Proc {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    Proc::mycel("mycel", &args, "warn,mycel_subnet=info", log)
}

/// The dishonest miner's handler: the real model runs the real request, then the output is
/// altered (its first token replaced, its text changed) and a receipt for the altered output is
/// signed by the miner's own hotkey. Every check without the model passes; a re-run does not.
async fn dishonest_chat(
    model: Arc<Model>,
    signer: PrivateKeySigner,
    Json(body): Json<Value>,
) -> Json<Value> {
    let messages: Vec<ChatMessage> =
        serde_json::from_value(body["messages"].clone()).expect("messages");
    let params = SamplingParams {
        temperature: body["temperature"].as_f64().unwrap_or(1.0) as f32,
        top_p: body["top_p"].as_f64().unwrap_or(1.0) as f32,
        top_k: body["top_k"].as_u64().unwrap_or(0) as u32,
        seed: body["seed"].as_u64().unwrap_or(0),
        max_tokens: body["max_tokens"].as_u64().unwrap_or(16) as u32,
        stop: Vec::new(),
    };
    let request = CanonicalRequest::chat(messages, &params);
    let (request, mut generation) = tokio::task::spawn_blocking({
        let model = Arc::clone(&model);
        move || {
            let generation = model
                .execute(&request, &mut |_| std::ops::ControlFlow::Continue(()))
                .expect("generate");
            (request, generation)
        }
    })
    .await
    .expect("join");
    generation.output_tokens[0] = (generation.output_tokens[0] + 1) % 1000;
    generation.text = format!("{} (cheaper answer)", generation.text);
    let receipt =
        receipt_for_generation(NETUID, signer.address(), &model, &request, &generation, 0);
    let signed = SignedReceipt::sign(receipt, CHAIN_ID, &signer).expect("sign");
    Json(json!({
        "id": "chatcmpl-dishonest",
        "object": "chat.completion",
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": generation.text},
                     "finish_reason": "length"}],
        "usage": {"prompt_tokens": generation.prompt_tokens.len(),
                  "completion_tokens": generation.output_tokens.len(),
                  "total_tokens": generation.prompt_tokens.len() + generation.output_tokens.len()},
        "receipt": signed.to_json(Some(&request)),
    }))
}

fn neuron(graph: &Value, hotkey: Address) -> Value {
    graph["neurons"]
        .as_array()
        .expect("neurons")
        .iter()
        .find(|n| n["hotkey"].as_str().and_then(|h| h.parse::<Address>().ok()) == Some(hotkey))
        .cloned()
        .unwrap_or_else(|| panic!("{hotkey} not in the metagraph: {graph:#}"))
}

#[test]
fn validator_gives_the_dishonest_miner_weight_zero() {
    let started = Instant::now();
    let dir = TestDir::new();
    // The model first (downloaded once per machine), for the dishonest miner.
    let model = Arc::new(
        Model::load_default(&default_cache_dir().expect("cache dir"), &mut |_| {})
            .expect("the default model"),
    );
    let net = Devnet::start();

    // Subnet 1 (owner dev 0, owner hotkey dev 9), a short tempo, weights any block.
    let out = net.ok(&[
        "subnet",
        "create",
        "--dev-account",
        "0",
        "--hotkey-dev-account",
        "9",
    ]);
    assert!(out.contains("created subnet 1"), "{out}");
    net.ok(&[
        "subnet",
        "set",
        "1",
        "--tempo",
        "9",
        "--weights-rate-limit",
        "0",
        "--dev-account",
        "0",
    ]);
    // The validator (dev 4) registers and stakes, so the next epoch gives it a permit.
    net.ok(&[
        "neuron",
        "register",
        "--netuid",
        "1",
        "--hotkey-dev-account",
        "4",
        "--max-burn",
        "10",
        "--dev-account",
        "4",
    ]);
    net.ok(&[
        "stake",
        "add",
        "--netuid",
        "1",
        "--hotkey-dev-account",
        "4",
        "--amount",
        "100",
        "--dev-account",
        "4",
    ]);

    // The dishonest miner: dev 3, a real server on loopback, registered and announced on chain.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let liar = dev_signer(3).expect("dev key");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let liar_port = listener.local_addr().expect("addr").port();
    let router = Router::new().route(
        "/v1/chat/completions",
        post({
            let model = Arc::clone(&model);
            let liar = liar.clone();
            move |body| dishonest_chat(model, liar, body)
        }),
    );
    runtime.spawn(async move { axum::serve(listener, router).await });
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
        &liar_port.to_string(),
        "--protocol",
        "http",
        "--dev-account",
        "3",
    ]);

    // Two honest miners (dev 1 and 2): they register and announce themselves.
    let mut miners: Vec<Proc> = [1u32, 2]
        .iter()
        .map(|i| {
            spawn(
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
            )
        })
        .collect();
    for miner in &mut miners {
        miner.wait_for_log("mycel miner serving", Duration::from_secs(300));
    }

    // The validator, with a status endpoint and a report file.
    let report = dir.path().join("report.json");
    let status_port = free_port();
    let mut validator = spawn(
        &[
            "validator",
            "--netuid",
            "1",
            "--dev-account",
            "4",
            "--rpc",
            net.rpc(),
            "--challenges",
            "3",
            "--reruns",
            "2",
            "--max-tokens",
            "8",
            "--listen",
            &format!("127.0.0.1:{status_port}"),
            "--report",
            report.to_str().expect("utf-8"),
        ],
        &dir.path().join("validator.log"),
    );
    validator.wait_for_log("weights set", Duration::from_secs(180));

    // What the validator found: the liar's re-run failed, the honest miners' matched.
    let found: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    let status = get_json(&format!("http://127.0.0.1:{status_port}/status"));
    assert!(
        status["rounds"].as_u64().expect("rounds") >= 1,
        "{status:#}"
    );
    let miners_found = found["last_round"]["miners"]
        .as_array()
        .expect("miners")
        .clone();
    assert_eq!(miners_found.len(), 3, "{found:#}");
    let by_hotkey = |i: u32| {
        miners_found
            .iter()
            .find(|m| {
                m["hotkey"].as_str().and_then(|h| h.parse::<Address>().ok()) == Some(dev_address(i))
            })
            .cloned()
            .unwrap_or_else(|| panic!("dev {i} not in the report: {found:#}"))
    };
    let lie = by_hotkey(3);
    assert_eq!(lie["weight"], 0, "{lie:#}");
    assert_eq!(lie["faults"][0]["kind"], "wrong_output", "{lie:#}");
    assert!(
        lie["verdict"]
            .as_str()
            .expect("verdict")
            .contains("wrong output"),
        "{lie:#}"
    );
    for i in [1, 2] {
        let honest = by_hotkey(i);
        assert!(honest["weight"].as_u64().expect("weight") > 0, "{honest:#}");
        assert_eq!(honest["answered"], 3, "{honest:#}");
        assert_eq!(honest["reruns_matched"], 2, "{honest:#}");
        assert_eq!(honest["verdict"], "ok", "{honest:#}");
    }
    let log = validator.log();
    assert!(log.contains("miner checked"), "{log}");
    let metrics = get_text(&format!("http://127.0.0.1:{status_port}/metrics"));
    for needle in [
        "mycel_validator_challenges_total{result=\"wrong_output\"}",
        "mycel_validator_reruns_total{result=\"matched\"}",
        "mycel_validator_weight_txs_total{result=\"SetWeights_ok\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "/metrics lacks {needle}:\n{metrics}"
        );
    }

    // On chain: once an epoch counts the validator's weights, the honest miners earn incentive and
    // the liar none.
    let deadline = Instant::now() + Duration::from_secs(120);
    let graph = loop {
        let graph = net.http_get("/v1/subnets/1/metagraph");
        let honest_paid = [1, 2].iter().all(|&i| {
            neuron(&graph, dev_address(i))["incentive"]
                .as_u64()
                .unwrap_or(0)
                > 0
        });
        if honest_paid {
            break graph;
        }
        assert!(
            Instant::now() < deadline,
            "no incentive for the honest miners within 120 s; metagraph: {graph:#}\nvalidator log:\n{}",
            validator.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(neuron(&graph, dev_address(3))["incentive"], 0, "{graph:#}");
    assert_eq!(
        neuron(&graph, dev_address(4))["validator_permit"],
        true,
        "{graph:#}"
    );
    eprintln!("validator test took {:?}", started.elapsed());
}

#[test]
fn validator_command_line_errors_are_clear() {
    let out = mycel(&["validator", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.contains("--challenges") && help.contains("commit-reveal"),
        "{help}"
    );

    let out = mycel(&["validator", "--netuid", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--hotkey"),
        "{}",
        text(&out.stderr)
    );

    let out = mycel(&[
        "validator",
        "--netuid",
        "1",
        "--dev-account",
        "4",
        "--challenges",
        "2",
        "--reruns",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--reruns 3 is more than --challenges 2"),
        "{}",
        text(&out.stderr)
    );

    let out = mycel(&["validator", "--netuid", "1", "--dev-account", "12"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("development accounts are 0 to 9"),
        "{}",
        text(&out.stderr)
    );

    // No node there: says so.
    let port = free_port();
    let out = mycel(&[
        "validator",
        "--netuid",
        "1",
        "--dev-account",
        "4",
        "--rpc",
        &format!("http://127.0.0.1:{port}"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot reach the node"),
        "{}",
        text(&out.stderr)
    );
}

/// With commit-reveal on, the validator commits its weights and reveals them in a later round;
/// the revealed weights pay the honest miner.
#[test]
fn validator_commits_and_reveals_when_the_subnet_asks() {
    let dir = TestDir::new();
    let net = Devnet::start();
    net.ok(&[
        "subnet",
        "create",
        "--dev-account",
        "0",
        "--hotkey-dev-account",
        "9",
    ]);
    net.ok(&[
        "subnet",
        "set",
        "1",
        "--tempo",
        "9",
        "--weights-rate-limit",
        "0",
        "--commit-reveal",
        "true",
        "--dev-account",
        "0",
    ]);
    net.ok(&[
        "neuron",
        "register",
        "--netuid",
        "1",
        "--hotkey-dev-account",
        "4",
        "--max-burn",
        "10",
        "--dev-account",
        "4",
    ]);
    net.ok(&[
        "stake",
        "add",
        "--netuid",
        "1",
        "--hotkey-dev-account",
        "4",
        "--amount",
        "100",
        "--dev-account",
        "4",
    ]);
    let mut miner = spawn(
        &[
            "miner",
            "--netuid",
            "1",
            "--dev-account",
            "1",
            "--rpc",
            net.rpc(),
            "--listen",
            "127.0.0.1:0",
        ],
        &dir.path().join("miner.log"),
    );
    miner.wait_for_log("mycel miner serving", Duration::from_secs(300));
    let report = dir.path().join("report.json");
    let mut validator = spawn(
        &[
            "validator",
            "--netuid",
            "1",
            "--dev-account",
            "4",
            "--rpc",
            net.rpc(),
            "--challenges",
            "2",
            "--reruns",
            "1",
            "--max-tokens",
            "6",
            "--report",
            report.to_str().expect("utf-8"),
        ],
        &dir.path().join("validator.log"),
    );
    validator.wait_for_log("weights committed", Duration::from_secs(180));
    validator.wait_for_log("weights revealed", Duration::from_secs(120));
    let found: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert_eq!(found["last_round"]["commit_reveal"], true, "{found:#}");
    assert_eq!(
        found["last_round"]["weights"]["kind"], "CommitWeights",
        "{found:#}"
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let graph = net.http_get("/v1/subnets/1/metagraph");
        if neuron(&graph, dev_address(1))["incentive"]
            .as_u64()
            .unwrap_or(0)
            > 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the revealed weights paid nothing within 120 s: {graph:#}\nvalidator log:\n{}",
            validator.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
