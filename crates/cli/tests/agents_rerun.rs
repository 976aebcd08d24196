//! Re-execution as a service on a real devnet with its inference subnet (`mycel up`): a miner's
//! real answer (a completion with its signed receipt) and a dishonest copy of it (the same receipt,
//! another text) are put at URLs; the miner's agent asks the subnet validator to validate each
//! (ERC-8004), and the validator answers by re-running them: 100 for the honest one, 0 for the
//! other, each with a report it serves. Two jobs (ERC-8183) name the validator as evaluator: the
//! honest deliverable is completed (the provider paid), the dishonest one rejected (the client
//! refunded). A third job with a human evaluator is disputed by its client within the dispute
//! window and decided by the validator's re-run. Last, an agent key pays the gateway over x402
//! from its owner's allowance.

use alloy_primitives::{keccak256, Address};
use mycel_testkit::http::{file_server, get_json};
use mycel_testkit::{dev_address, Devnet, DevnetOptions};
use mycel_types::keys::dev_signer;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const MINER: u32 = 1;
const VALIDATOR: u32 = 4;
const CLIENT: u32 = 5;

/// A miner's endpoint from the metagraph.
fn miner_url(up: &Devnet) -> String {
    let graph = get_json(&format!("{}/v1/subnets/1/metagraph", up.rpc()));
    let neuron = graph["neurons"]
        .as_array()
        .expect("neurons")
        .iter()
        .find(|n| {
            n["hotkey"].as_str().and_then(|h| h.parse::<Address>().ok()) == Some(dev_address(MINER))
        })
        .expect("the miner in the metagraph")
        .clone();
    format!(
        "http://{}:{}",
        neuron["endpoint"]["host"].as_str().expect("host"),
        neuron["endpoint"]["port"]
    )
}

/// Polls `read` until it gives `Some`, for at most `within`.
fn wait_for<T>(within: Duration, what: &str, mut read: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = read() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_subnet_validator_answers_validations_and_evaluates_jobs_by_re_running_them() {
    let up = Devnet::start_with(DevnetOptions::with_subnet());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");

    // A real answer from the miner, and a dishonest copy: same receipt, other text.
    let request = json!({"model": "SmolLM2-135M-Instruct.Q4_1", "max_tokens": 8, "seed": 7,
                         "messages": [{"role": "user", "content": "Name a color."}]});
    let honest: Vec<u8> = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", miner_url(&up)))
            .json(&request)
            .send()
            .await
            .expect("the miner answers")
            .bytes()
            .await
            .expect("body")
            .to_vec()
    });
    let mut tampered: Value = serde_json::from_slice(&honest).expect("JSON");
    tampered["choices"][0]["message"]["content"] = json!("Definitely not what the model said.");
    let dishonest = serde_json::to_vec(&tampered).expect("JSON");
    let (honest_hash, dishonest_hash) = (keccak256(&honest), keccak256(&dishonest));
    // A stranger's receipt (signed by its own key, so its signature checks) for a request far
    // larger than a validator re-runs for the price of one fee.
    let mut huge: Value = serde_json::from_slice(&honest).expect("JSON");
    let receipt: mycel_types::ReceiptJson =
        serde_json::from_value(huge["receipt"].clone()).expect("receipt");
    let signed = mycel_types::SignedReceipt::from_json(&receipt).expect("valid");
    let mut request = receipt.request.clone().expect("the request");
    request.max_tokens = 4096;
    let stranger = dev_signer(9).unwrap();
    let mut forged = signed.receipt.clone();
    forged.requestHash = request.hash();
    forged.miner = stranger.address();
    let forged =
        mycel_types::SignedReceipt::sign(forged, receipt.chain_id, &stranger).expect("sign");
    huge["receipt"] = serde_json::to_value(forged.to_json(Some(&request))).expect("JSON");
    let huge = serde_json::to_vec(&huge).expect("JSON");
    let huge_hash = keccak256(&huge);
    let files = file_server(
        &runtime,
        vec![
            ("/honest.json", honest.clone()),
            ("/dishonest.json", dishonest.clone()),
            ("/huge.json", huge.clone()),
        ],
    );

    // The miner's agent (mycel up registered it) asks the validator to check both.
    let agents = get_json(&format!(
        "{}/v1/agents?owner={}",
        up.rpc(),
        dev_address(MINER)
    ));
    let agent = agents["agents"][0]["agent_id"]
        .as_u64()
        .expect("the miner's agent")
        .to_string();
    let validator = dev_address(VALIDATOR).to_string();
    for file in ["honest", "dishonest", "huge"] {
        up.ok(&[
            "agent",
            "validate",
            "--agent",
            &agent,
            "--validator",
            &validator,
            "--uri",
            &format!("{files}/{file}.json"),
            "--dev-account",
            &MINER.to_string(),
        ]);
    }
    for (hash, expected, verdict) in [
        (honest_hash, 100, "reproduced"),
        (dishonest_hash, 0, "wrong_output"),
        (huge_hash, 0, "over_limit"),
    ] {
        let v = wait_for(Duration::from_secs(120), "the validator answers", || {
            let v = up.json(&["agent", "validation", &hash.to_string()]);
            (!v["response"].is_null()).then_some(v)
        });
        assert_eq!(v["response"], expected, "{v:#}");
        assert_eq!(v["tag"], "inference-rerun");
        let report = get_json(v["response_uri"].as_str().expect("a report URI"));
        assert_eq!(report["verdict"], verdict, "{report:#}");
    }
    let summary = get_json(&format!(
        "{}/v1/agents/{agent}/validations/summary",
        up.rpc()
    ));
    assert_eq!(
        (
            summary["count"].as_u64(),
            summary["average_response"].as_str()
        ),
        (Some(3), Some("33.33"))
    );

    // Two jobs evaluated by the validator: the honest deliverable is paid, the other refunded.
    let client_start = up.account(dev_address(CLIENT))["musd"]
        .as_str()
        .unwrap()
        .parse::<u128>()
        .unwrap();
    for (job, hash, file) in [
        ("1", honest_hash, "honest"),
        ("2", dishonest_hash, "dishonest"),
    ] {
        let id = up.ok(&[
            "job",
            "create",
            "--provider",
            &dev_address(MINER).to_string(),
            "--evaluator",
            &validator,
            "--description",
            "answer one prompt",
            "--dev-account",
            &CLIENT.to_string(),
        ]);
        assert_eq!(id.trim(), job);
        up.ok(&[
            "job",
            "budget",
            "--job",
            job,
            "--amount",
            "0.5",
            "--dev-account",
            &CLIENT.to_string(),
        ]);
        up.ok(&[
            "job",
            "fund",
            "--job",
            job,
            "--amount",
            "0.5",
            "--dev-account",
            &CLIENT.to_string(),
        ]);
        up.ok(&[
            "job",
            "submit",
            "--job",
            job,
            "--deliverable",
            &hash.to_string(),
            "--uri",
            &format!("{files}/{file}.json"),
            "--dev-account",
            &MINER.to_string(),
        ]);
    }
    for (job, status) in [("1", "completed"), ("2", "rejected")] {
        let j = wait_for(
            Duration::from_secs(120),
            "the validator evaluates the job",
            || {
                let j = up.json(&["job", "show", job]);
                (j["status"] != "submitted").then_some(j)
            },
        );
        assert_eq!(j["status"], status, "{j:#}");
    }
    let client_end = up.account(dev_address(CLIENT))["musd"]
        .as_str()
        .unwrap()
        .parse::<u128>()
        .unwrap();
    assert_eq!(
        client_end,
        client_start - 500_000,
        "only the completed job cost the client"
    );
}
