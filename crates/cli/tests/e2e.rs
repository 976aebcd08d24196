//! End to end: real `mycel` processes on loopback, driven through the real CLI and HTTP API.
//!
//! - a devnet killed with SIGKILL in the middle of a stream of transfers restarts with every
//!   finalized transfer intact and keeps finalizing;
//! - a transaction signed by Python's eth_account (an independent EIP-712 implementation) is
//!   accepted over HTTP and executes;
//! - a 4-process localnet finalizes transfers, and all four nodes agree on the blocks.

use mycel_testkit::devnet::wait_for_height;
use mycel_testkit::interop::interop_script;
use mycel_testkit::{free_port_range, mycel, Devnet, Proc, TestDir};
use mycel_types::api;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const RECEIVER: &str = "0x000000000000000000000000000000000000bEEF";

fn cli(rpc: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--rpc", rpc]);
    mycel::run(&all)
}

fn cli_json(rpc: &str, args: &[&str]) -> Option<Value> {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    let out = cli(rpc, &all);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn tx_status(rpc: &str, hash: &str) -> Option<Value> {
    cli_json(rpc, &["tx", hash])
}

fn wait_finalized(rpc: &str, hash: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = tx_status(rpc, hash) {
            match s["status"].as_str() {
                Some("finalized") => return s,
                Some("rejected") => panic!("tx {hash} rejected: {s}"),
                _ => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "tx {hash} not finalized within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn balance_base_units(rpc: &str, address: &str) -> u128 {
    let account = cli_json(rpc, &["balance", address]).expect("balance");
    account["myc"].as_str().unwrap().parse().unwrap()
}

fn transfer(rpc: &str, dev_account: u32, nonce: u64, amount: &str) -> Option<String> {
    try_transfer(rpc, dev_account, nonce, amount).ok()
}

/// The hash the node accepted, or what the CLI said when it failed.
fn try_transfer(rpc: &str, dev_account: u32, nonce: u64, amount: &str) -> Result<String, String> {
    let out = cli(
        rpc,
        &[
            "transfer",
            "--dev-account",
            &dev_account.to_string(),
            "--to",
            RECEIVER,
            "--amount",
            amount,
            "--nonce",
            &nonce.to_string(),
            "--json",
        ],
    );
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    v["hash"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no hash in {v}"))
}

/// The hash of the 0.001 MYC transfer to RECEIVER that `transfer` sends, computed here: a
/// transfer whose answer was lost at the kill may still have been accepted and finalized.
fn stream_transfer_hash(dev_account: u32, nonce: u64) -> String {
    use alloy_primitives::U256;
    use mycel_types::{keys::dev_signer, SignedTx, Transfer, TxKind};
    let signer = dev_signer(dev_account).unwrap();
    let kind = TxKind::Transfer(Transfer {
        from: signer.address(),
        to: RECEIVER.parse().unwrap(),
        token: alloy_primitives::Address::ZERO,
        amount: U256::from(1_000_000u64),
        memo: Default::default(),
        nonce,
        fee: U256::from(10_000u64),
    });
    SignedTx::sign(kind, 1337, &signer)
        .unwrap()
        .hash()
        .to_string()
}

#[test]
fn devnet_survives_kill_9_mid_stream_and_keeps_finalizing() {
    let mut node = Devnet::start();
    let rpc = node.rpc().to_string();
    let start_balance = balance_base_units(&rpc, RECEIVER);

    // A stream of transfers from three dev accounts (0.001 MYC each, explicit nonces), sent from
    // another thread that keeps going until the node dies under it. `attempted` holds every
    // transfer tried, `sent` those the node acknowledged.
    let amount_units: u128 = 1_000_000;
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let attempted = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sender = {
        let (rpc, sent, attempted) = (rpc.clone(), sent.clone(), attempted.clone());
        std::thread::spawn(move || {
            let mut nonces = [0u64; 3];
            // Consecutive failures: the node is gone (a slow answer under load is not the end).
            let mut failures = 0;
            while failures < 3 {
                for account in 0..3u32 {
                    let nonce = nonces[account as usize];
                    attempted
                        .lock()
                        .unwrap()
                        .push(stream_transfer_hash(account, nonce));
                    match transfer(&rpc, account, nonce, "0.001") {
                        Some(hash) => {
                            assert_eq!(hash, stream_transfer_hash(account, nonce));
                            nonces[account as usize] += 1;
                            sent.lock().unwrap().push(hash);
                            failures = 0;
                        }
                        None => failures += 1,
                    }
                }
            }
        })
    };
    // Wait until a good part of the stream is final, record what the node says is final, then
    // kill it with SIGKILL while transfers are still arriving.
    let deadline = Instant::now() + Duration::from_secs(90);
    let finalized_before: BTreeMap<String, u64> = loop {
        let snapshot = sent.lock().unwrap().clone();
        let finalized: BTreeMap<String, u64> = snapshot
            .iter()
            .filter_map(|h| {
                let s = tx_status(&rpc, h)?;
                (s["status"] == "finalized").then(|| (h.clone(), s["height"].as_u64().unwrap()))
            })
            .collect();
        if finalized.len() >= 12 {
            break finalized;
        }
        assert!(
            Instant::now() < deadline,
            "transfers are not finalizing; log:\n{}",
            node.log_tail()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let status_before = cli_json(&rpc, &["status"]).unwrap();
    let height_before = status_before["height"].as_u64().unwrap();
    let block_before = cli_json(&rpc, &["block", &height_before.to_string()]).unwrap();
    node.kill_9();
    sender.join().unwrap();
    let sent = sent.lock().unwrap().clone();
    assert!(
        sent.len() > finalized_before.len(),
        "the stream was still running at the kill"
    );

    // Restart on the same data directory (on new ports: the old ones may be taken by now).
    node.restart();
    let rpc = node.rpc().to_string();
    node.wait_for_height(height_before + 1, Duration::from_secs(90));
    for (hash, height) in &finalized_before {
        let s = tx_status(&rpc, hash)
            .unwrap_or_else(|| panic!("finalized tx {hash} lost after kill -9"));
        assert_eq!(s["status"], "finalized", "{hash}: {s}");
        assert_eq!(s["height"].as_u64(), Some(*height), "{hash} moved blocks");
    }
    let block_after = cli_json(&rpc, &["block", &height_before.to_string()]).unwrap();
    assert_eq!(block_after["hash"], block_before["hash"]);
    assert_eq!(block_after["state_root"], block_before["state_root"]);

    // Every transfer the node acknowledged before the kill was in its mempool's journal: all of
    // them are finalized after the restart, none sent again.
    for hash in &sent {
        wait_finalized(&rpc, hash, Duration::from_secs(90));
    }

    // Then more transfers from the finalized nonces, and the books: the receiver holds exactly
    // the sum of finalized transfers.
    //
    // The restarted node may still finalize blocks proposed before the kill (recovered from the
    // consensus journal) after its API answers, which moves the nonces on under a resend ("nonce
    // N was already used"): read the nonce again and retry until the node has caught up.
    let mut resent = Vec::new();
    for account in 0..3u32 {
        let address = mycel_types::keys::dev_signer(account)
            .unwrap()
            .address()
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        let hash = loop {
            let nonce = cli_json(&rpc, &["balance", &address]).unwrap()["nonce"]
                .as_u64()
                .unwrap();
            match try_transfer(&rpc, account, nonce, "0.001") {
                Ok(hash) => break hash,
                Err(error) => {
                    assert!(
                        Instant::now() < deadline,
                        "transfer after restart (account {account}, nonce {nonce}): {error}\nlog:\n{}",
                        node.log_tail()
                    );
                    eprintln!("resend from account {account} with nonce {nonce} failed, retrying: {error}");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        };
        resent.push(hash);
    }
    for hash in &resent {
        wait_finalized(&rpc, hash, Duration::from_secs(60));
    }
    // A resent transfer with the nonce of one lost at the kill is the same signed tx (RFC 6979
    // signatures are deterministic), so it has the same hash: count each hash once. Every
    // transfer tried counts, acknowledged or not: one whose answer was lost at the kill may
    // have made it into a block.
    let mut all = attempted.lock().unwrap().clone();
    all.extend(sent.iter().cloned());
    all.extend(resent);
    all.sort();
    all.dedup();
    let finalized_total = all
        .iter()
        .filter(|h| {
            tx_status(&rpc, h)
                .map(|s| s["status"] == "finalized")
                .unwrap_or(false)
        })
        .count() as u128;
    assert!(finalized_total as usize > finalized_before.len());
    assert_eq!(
        balance_base_units(&rpc, RECEIVER),
        start_balance + finalized_total * amount_units
    );

    // An independent signer: Python's eth_account signs a transfer, submitted over HTTP.
    eth_account_signed_transfer_executes(&rpc);

    node.stop();
    // A clean stop (SIGTERM) then resume also works.
    node.restart();
    node.wait_for_height(height_before + 2, Duration::from_secs(90));
    let status = cli_json(node.rpc(), &["status"]).expect("status");
    assert_eq!(
        status["genesis_hash"], status_before["genesis_hash"],
        "the same chain resumed"
    );
}

fn eth_account_signed_transfer_executes(rpc: &str) {
    let signer = mycel_types::keys::dev_signer(5).unwrap();
    let address = signer.address().to_string();
    let key = format!("0x{}", hex::encode(signer.to_bytes()));
    let account = cli_json(rpc, &["balance", &address]).unwrap();
    let nonce = account["nonce"].as_u64().unwrap();
    let before = balance_base_units(rpc, RECEIVER);
    let script = interop_script("sign_transfer.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "--private-key",
            &key,
            "--chain-id",
            "1337",
            "--to",
            RECEIVER,
            "--amount",
            "777",
        ])
        .args(["--nonce", &nonce.to_string(), "--fee", "10000"])
        .output()
        .expect("python3 must be installed (and eth_account: pip install eth-account)");
    assert!(
        out.status.success(),
        "sign_transfer.py failed (pip install eth-account?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = String::from_utf8(out.stdout).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, reply): (u16, Value) = rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("{rpc}/v1/txs"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    });
    assert_eq!(status, 202, "node refused the eth_account tx: {reply}");
    let hash = reply["hash"].as_str().unwrap();
    wait_finalized(rpc, hash, Duration::from_secs(60));
    assert_eq!(balance_base_units(rpc, RECEIVER), before + 777);
}

#[test]
fn four_process_localnet_finalizes_transfers_and_agrees() {
    let dir = TestDir::new();
    let net = dir.path().join("localnet");
    let p2p = free_port_range(4);
    let rpc_base = free_port_range(4);
    let args_owned = [
        "localnet".to_string(),
        "--validators".into(),
        "4".into(),
        "--dir".into(),
        net.display().to_string(),
        "--p2p-port".into(),
        p2p.to_string(),
        "--rpc-port".into(),
        rpc_base.to_string(),
        "--storage".into(),
        "--storage-port".into(),
        free_port_range(4).to_string(),
    ];
    let localnet = Proc::mycel(
        "localnet",
        &args_owned,
        "warn,mycel_chain=info",
        &dir.join("localnet.log"),
    );
    let rpcs: Vec<String> = (0..4)
        .map(|i| format!("http://127.0.0.1:{}", rpc_base + i))
        .collect();
    for rpc in &rpcs {
        wait_for_height(rpc, 2, &localnet, Duration::from_secs(120));
    }
    // One transfer through each node (each includes its own txs when it leads).
    let hashes: Vec<String> = rpcs
        .iter()
        .enumerate()
        .map(|(i, rpc)| transfer(rpc, i as u32, 0, "2.5").expect("transfer accepted"))
        .collect();
    let mut heights = Vec::new();
    for (i, hash) in hashes.iter().enumerate() {
        let s = wait_finalized(&rpcs[i], hash, Duration::from_secs(120));
        heights.push(s["height"].as_u64().unwrap());
    }
    let top = *heights.iter().max().unwrap();
    for rpc in &rpcs {
        wait_for_height(rpc, top, &localnet, Duration::from_secs(60));
    }
    // Every node knows every tx at the same height, and the blocks are identical.
    for hash in &hashes {
        let seen: Vec<Value> = rpcs
            .iter()
            .map(|rpc| tx_status(rpc, hash).expect("tx known"))
            .collect();
        for s in &seen {
            assert_eq!(s["status"], "finalized");
            assert_eq!(s["height"], seen[0]["height"]);
        }
    }
    for height in 1..=top {
        let blocks: Vec<Value> = rpcs
            .iter()
            .map(|rpc| cli_json(rpc, &["block", &height.to_string()]).expect("block"))
            .collect();
        for b in &blocks {
            assert_eq!(
                b["hash"], blocks[0]["hash"],
                "nodes disagree at height {height}"
            );
            assert_eq!(b["state_root"], blocks[0]["state_root"]);
        }
    }
    for rpc in &rpcs {
        assert_eq!(balance_base_units(rpc, RECEIVER), 4 * 2_500_000_000);
    }
    // Every validator has a storage node: a blob written through one validator's API is read
    // back through another's.
    let deadline = Instant::now() + Duration::from_secs(120);
    while cli_json(&rpcs[0], &["blob", "committee"])
        .is_none_or(|c| c["members"].as_array().map_or(0, Vec::len) < 4)
    {
        assert!(
            Instant::now() < deadline,
            "the localnet's storage nodes did not register"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let file = dir.join("blob.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let put = cli(
        &rpcs[1],
        &["blob", "put", file.to_str().unwrap(), "--dev-account", "1"],
    );
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let id = String::from_utf8_lossy(&put.stdout).trim().to_string();
    let copy = dir.join("copy.bin");
    let get = cli(
        &rpcs[3],
        &["blob", "get", &id, "-o", copy.to_str().unwrap()],
    );
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert!(std::fs::read(&copy).unwrap() == bytes);
    drop(localnet);
}

/// `/health/sync` and the sync metrics on a real 4-validator network: in sync while it
/// finalizes; once two of the four are killed the other two cannot finalize, and after 10 block
/// times they say so (503, `in_sync: false`, `mycel_in_sync 0`) while still answering reads.
#[test]
fn a_stalled_network_is_reported_out_of_sync() {
    let dir = TestDir::new();
    let net = dir.path().join("network");
    let p2p = free_port_range(4);
    let rpc_base = free_port_range(4);
    mycel::assert_ok(&mycel::run(&[
        "init",
        "--validators",
        "4",
        "--dir",
        net.to_str().expect("utf-8"),
        "--p2p-port",
        &p2p.to_string(),
        "--rpc-port",
        &rpc_base.to_string(),
    ]));
    let mut nodes: Vec<Proc> = (0..4)
        .map(|i| {
            let config = net.join(format!("validator-{i}")).join("node.json");
            Proc::mycel(
                &format!("validator {i}"),
                &[
                    "node".to_string(),
                    "--config".into(),
                    config.display().to_string(),
                ],
                "warn",
                &dir.join(&format!("validator-{i}.log")),
            )
        })
        .collect();
    let rpc = format!("http://127.0.0.1:{rpc_base}");
    wait_for_height(&rpc, 2, &nodes[0], Duration::from_secs(120));
    let sync = |rpc: &str| -> (u16, api::SyncHealth) {
        mycel_testkit::http::block_on(async {
            let answer = reqwest::get(format!("{rpc}/health/sync"))
                .await
                .expect("GET");
            let status = answer.status().as_u16();
            (status, answer.json().await.expect("a SyncHealth body"))
        })
    };
    let metric = |rpc: &str, name: &str| -> u64 {
        let text = mycel_testkit::http::get_text(&format!("{rpc}/metrics"));
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the metrics:\n{text}"))
    };
    let (status, health) = sync(&rpc);
    assert_eq!(status, 200, "{health:?}");
    assert!(health.in_sync && health.height >= 2, "{health:?}");
    assert_eq!(health.block_time_ms, 1_000);
    assert!(health.finality_lag_ms < 10_000, "{health:?}");
    assert_eq!(metric(&rpc, "mycel_in_sync"), 1);
    assert_eq!(metric(&rpc, "mycel_validators"), 4);
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&rpc, "mycel_peers_connected") != 3 {
        assert!(
            Instant::now() < deadline,
            "validator 0 is not connected to its 3 peers"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(metric(&rpc, "mycel_data_dir_bytes") > 0);

    // Two of four down: no quorum, no new blocks.
    nodes[2].kill_9();
    nodes[3].kill_9();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (status, health) = loop {
        let (status, health) = sync(&rpc);
        if status == 503 {
            break (status, health);
        }
        assert!(
            Instant::now() < deadline,
            "still reported in sync 60 s after losing quorum: {health:?}\n{}",
            nodes[0].log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(!health.in_sync, "{health:?}");
    assert!(health.finality_lag_ms > 10_000, "{health:?}");
    assert_eq!(status, 503);
    assert_eq!(metric(&rpc, "mycel_in_sync"), 0);
    assert!(metric(&rpc, "mycel_finality_lag_ms") > 10_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&rpc, "mycel_peers_connected") != 1 {
        assert!(
            Instant::now() < deadline,
            "validator 0 still counts {} peers with two of them killed",
            metric(&rpc, "mycel_peers_connected")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Reads still work on the stalled node.
    assert!(cli_json(&rpc, &["status"]).is_some());
}

#[test]
fn node_api_gives_reasons_for_bad_input_and_streams_blocks() {
    use alloy_primitives::{Address, U256};
    use mycel_types::{keys::dev_signer, SignedTx, Transfer, TxKind};

    let node = Devnet::start();
    let rpc = node.rpc().to_string();

    let signer = dev_signer(7).unwrap();
    let transfer = |chain_id: u64, nonce: u64| {
        let kind = TxKind::Transfer(Transfer {
            from: signer.address(),
            to: Address::repeat_byte(0x11),
            token: Address::ZERO,
            amount: U256::from(5u64),
            memo: Default::default(),
            nonce,
            fee: U256::from(10_000u64),
        });
        SignedTx::sign(kind, chain_id, &signer).unwrap()
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let get = |path: &str| {
            let (http, url) = (http.clone(), format!("{rpc}{path}"));
            async move {
                let r = http.get(url).send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.text().await.unwrap())
            }
        };
        let post = |body: String| {
            let (http, url) = (http.clone(), format!("{rpc}/v1/txs"));
            async move {
                let r = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let json: Value = r.json().await.unwrap_or(Value::Null);
                (status, json)
            }
        };
        let code = |v: &Value| v["error"]["code"].as_str().unwrap_or("").to_string();

        assert_eq!(get("/health").await, (200, "ok".to_string()));
        let (status, metrics) = get("/metrics").await;
        assert_eq!(status, 200);
        assert!(metrics.contains("mycel_finalized_height"), "{metrics}");

        // Bad input: each a 4xx with a machine-readable code.
        let (s, v) = post("{not json".into()).await;
        assert_eq!((s, code(&v).as_str()), (400, "bad_json"));
        let (s, v) = post(r#"{"raw": "0xnothex"}"#.into()).await;
        assert_eq!((s, code(&v).as_str()), (400, "bad_tx"));
        let (s, v) =
            post(r#"{"chainId": 1337, "type": "Mint", "message": {}, "signature": "0x"}"#.into())
                .await;
        assert_eq!((s, code(&v).as_str()), (400, "bad_tx"));
        let (s, v) = post(serde_json::to_string(&transfer(1, 0).to_json()).unwrap()).await;
        assert_eq!((s, code(&v).as_str()), (400, "wrong_chain_id"), "{v}");
        let mut forged = transfer(1337, 0);
        #[allow(irrefutable_let_patterns)]
        let TxKind::Transfer(t) = &mut forged.kind
        else {
            unreachable!("a transfer")
        };
        t.amount = U256::from(6u64);
        let (s, v) = post(serde_json::to_string(&forged.to_json()).unwrap()).await;
        assert_eq!((s, code(&v).as_str()), (400, "bad_signature"), "{v}");
        let (s, v) = post(serde_json::to_string(&transfer(1337, 1_000).to_json()).unwrap()).await;
        assert_eq!((s, code(&v).as_str()), (400, "nonce_too_far_ahead"), "{v}");
        for (path, status, expected) in [
            ("/v1/accounts/0x1234", 400, "bad_address"),
            ("/v1/txs/0x12", 400, "bad_hash"),
            (&format!("/v1/txs/0x{}", "ab".repeat(32)), 404, "unknown_tx"),
            ("/v1/blocks/abc", 400, "bad_height"),
            ("/v1/blocks/999999999", 404, "unknown_block"),
            ("/v1/nothing", 404, "not_found"),
        ] {
            let (s, body) = get(path).await;
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!((s, code(&v).as_str()), (status, expected), "{path}: {body}");
        }

        // The SSE stream delivers the block holding a transaction submitted in raw form.
        let mut events = http
            .get(format!("{rpc}/v1/events/blocks"))
            .send()
            .await
            .unwrap();
        let tx = transfer(1337, 0);
        let raw = format!("0x{}", hex::encode(tx.encode()));
        let (s, v) = post(serde_json::json!({ "raw": raw }).to_string()).await;
        assert_eq!(s, 202, "{v}");
        assert_eq!(v["hash"].as_str().unwrap(), tx.hash().to_string());
        let (s, v) = post(serde_json::json!({ "raw": raw }).to_string()).await;
        assert_eq!((s, code(&v).as_str()), (400, "already_known"), "{v}");
        let mut buffer = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !buffer.contains(&tx.hash().to_string()) {
            assert!(
                Instant::now() < deadline,
                "no block event with the tx; got:\n{buffer}"
            );
            let chunk = tokio::time::timeout(Duration::from_secs(30), events.chunk())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(buffer.contains("event: block"), "{buffer}");
        // Now final: the same nonce again is stale.
        let mut again = transfer(1337, 0);
        #[allow(irrefutable_let_patterns)]
        let TxKind::Transfer(t) = &mut again.kind
        else {
            unreachable!("a transfer")
        };
        t.amount = U256::from(9u64);
        let again = SignedTx::sign(again.kind, 1337, &signer).unwrap();
        let (s, v) = post(serde_json::to_string(&again.to_json()).unwrap()).await;
        assert_eq!((s, code(&v).as_str()), (400, "stale_nonce"), "{v}");
    });
    drop(node);
}
