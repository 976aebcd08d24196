//! The compute market with real processes (docs/compute.md): providers register and bid through
//! `mycel market`, `mycel deploy` opens an order and takes the cheapest bid, the lease is paid per
//! block from the escrow exactly, and closing refunds the rest.

use mycel_testkit::mycel::{assert_fails_with, stderr};
use mycel_testkit::{dev_address, Devnet, TestDir};
use std::time::Duration;

fn musd(devnet: &Devnet, who: u32) -> u128 {
    devnet.account(dev_address(who))["musd"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_deployment_takes_the_cheapest_bid_and_its_lease_is_paid_per_block_exactly() {
    let devnet = Devnet::start();
    let dir = TestDir::new();
    for (k, region) in [(6u32, "eu"), (7, "eu")] {
        devnet.ok(&[
            "market",
            "register-provider",
            "--endpoint",
            &format!("http://127.0.0.1:{}", 9300 + k),
            "--region",
            region,
            "--cores",
            "4",
            "--memory-mib",
            "8192",
            "--disk-mib",
            "20000",
            "--dev-account",
            &k.to_string(),
        ]);
    }
    let providers = devnet.json(&["market", "providers"]);
    assert_eq!(providers["providers"].as_array().unwrap().len(), 2);

    // Bad manifests are refused before anything is sent.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"resources": {"cores": 1}, "max_price": "0.001"}"#).unwrap();
    let out = devnet.mycel(&[
        "deploy",
        &bad.display().to_string(),
        "--deposit",
        "1",
        "--dev-account",
        "5",
    ]);
    assert_fails_with(&out, "is not a deployment manifest");
    std::fs::write(&bad, r#"{"resources": {"cores": 1, "memory_mib": 1, "disk_mib": 1}, "max_price": "0.001", "gpu": 1}"#).unwrap();
    let out = devnet.mycel(&[
        "deploy",
        &bad.display().to_string(),
        "--deposit",
        "1",
        "--dev-account",
        "5",
    ]);
    assert_fails_with(&out, "unknown field `gpu`");

    let manifest = dir.join("smollm2.json");
    std::fs::write(
        &manifest,
        r#"{"name": "smollm2", "resources": {"cores": 2, "memory_mib": 2048, "disk_mib": 4096},
            "max_price": "0.002", "region": "eu", "runtime": {"context": 2048}}"#,
    )
    .unwrap();
    let owner_before = musd(&devnet, 5);
    let (deployed, lease) = std::thread::scope(|s| {
        let deploy = s.spawn(|| {
            devnet.mycel(&[
                "deploy",
                &manifest.display().to_string(),
                "--deposit",
                "1",
                "--wait-bids",
                "60",
                "--collect",
                "3",
                "--serve-wait",
                "0",
                "--dev-account",
                "5",
            ])
        });
        // The order appears; both providers bid; the deploy takes the cheaper.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while devnet.json(&["market", "orders"])["deployments"]
            .as_array()
            .unwrap()
            .is_empty()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{}",
                devnet.log_tail()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        let out = devnet.mycel(&[
            "market",
            "bid",
            "1",
            "--price",
            "0.003",
            "--dev-account",
            "6",
        ]);
        assert_fails_with(&out, "market_price_out_of_range");
        let out = devnet.mycel(&[
            "market",
            "bid",
            "1",
            "--price",
            "0.001",
            "--deposit",
            "1",
            "--dev-account",
            "6",
        ]);
        assert_fails_with(&out, "market_bid_deposit_too_small");
        devnet.ok(&[
            "market",
            "bid",
            "1",
            "--price",
            "0.0015",
            "--dev-account",
            "6",
        ]);
        let bids = devnet.ok(&["market", "bids"]);
        assert!(
            bids.contains(&format!("{}  0.0015 mUSD/block", dev_address(6))),
            "{bids}"
        );
        devnet.ok(&[
            "market",
            "bid",
            "1",
            "--price",
            "0.001",
            "--dev-account",
            "7",
        ]);
        let out = deploy.join().unwrap();
        (out, devnet.json(&["deploy", "status", "1"]))
    });
    assert!(deployed.status.success(), "{}", stderr(&deployed));
    let log = stderr(&deployed);
    assert!(log.contains("bid: 0.001 mUSD per block from"), "{log}");
    assert!(
        log.contains(&format!("leased to {}", dev_address(7))),
        "{log}"
    );
    assert_eq!(lease["state"], "leased", "{lease}");
    assert_eq!(
        lease["lease"]["provider"].as_str().unwrap().to_lowercase(),
        dev_address(7).to_string().to_lowercase()
    );

    let leases = devnet.ok(&[
        "market",
        "leases",
        "--provider",
        &dev_address(7).to_string(),
    ]);
    assert!(
        leases.contains(&format!("1  leased   {}  0.001 mUSD/block", dev_address(7))),
        "{leases}"
    );

    // Some blocks later the provider withdraws exactly price × blocks.
    devnet.wait_for_height(devnet.height() + 3, Duration::from_secs(30));
    let provider_before = musd(&devnet, 7);
    devnet.ok(&["market", "withdraw", "1", "--dev-account", "7"]);
    let d = devnet.json(&["deploy", "status", "1"]);
    let blocks =
        d["lease"]["settled_to"].as_u64().unwrap() - d["lease"]["started_at"].as_u64().unwrap();
    assert!(blocks >= 3);
    assert_eq!(
        musd(&devnet, 7),
        provider_before + u128::from(blocks) * 1_000
    );
    let out = devnet.mycel(&["market", "withdraw", "1", "--dev-account", "6"]);
    assert_fails_with(&out, "market_not_lease_provider");

    // An agent key keeps the lease funded from the owner's account, within its grant:
    // `mycel deploy watch --top-up` signed by the agent (dev account 9).
    devnet.ok(&[
        "allowance",
        "grant",
        "--agent",
        &dev_address(9).to_string(),
        "--musd-per-period",
        "0.03",
        "--kind",
        "TopUpDeployment",
        "--dev-account",
        "5",
    ]);
    let escrow = |devnet: &Devnet| -> u128 {
        devnet.json(&["deploy", "status", "1"])["escrow"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (escrow_before, owner_mid, agent_mid) =
        (escrow(&devnet), musd(&devnet, 5), musd(&devnet, 9));
    let mut watcher = mycel_testkit::mycel::command(&[
        "deploy",
        "watch",
        "1",
        "--top-up",
        "0.01",
        "--below",
        "100000",
        "--dev-account",
        "9",
        "--rpc",
        devnet.rpc(),
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while musd(&devnet, 5) > owner_mid - 30_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not top up"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Its grant spent, the agent's top-ups are refused; nothing more leaves the owner.
    std::thread::sleep(Duration::from_secs(3));
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(
        musd(&devnet, 5),
        owner_mid - 30_000,
        "exactly the grant's budget"
    );
    assert_eq!(
        musd(&devnet, 9),
        agent_mid,
        "the agent's own mUSD untouched"
    );
    let d = devnet.json(&["deploy", "status", "1"]);
    let topped = d["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n[1]["note"] == "topped_up")
        .count();
    assert_eq!(topped, 3, "{d}");
    assert!(escrow(&devnet) > escrow_before, "the escrow grew");

    // Top up, then close: paid to the block, the rest refunded; what the owner spent is exactly
    // what the provider earned.
    devnet.ok(&["deploy", "top-up", "1", "0.5", "--dev-account", "8"]);
    let out = devnet.mycel(&["deploy", "close", "1", "--dev-account", "6"]);
    assert_fails_with(&out, "market_not_owner");
    let out = devnet.mycel(&["deploy", "close", "1", "--dev-account", "5"]);
    assert!(
        out.status.success() && stderr(&out).contains("refunded"),
        "{}",
        stderr(&out)
    );
    let d = devnet.json(&["deploy", "status", "1"]);
    assert_eq!(d["state"], "closed");
    let earned = musd(&devnet, 7) - provider_before;
    // The refund goes to the owner, top-up included: the owner's change is the top-up less what
    // the provider earned.
    let owner_change = musd(&devnet, 5) as i128 - owner_before as i128;
    assert_eq!(
        owner_change,
        500_000 - earned as i128,
        "the owner's spend and the top-up are exactly the provider's pay"
    );
    assert_eq!(earned % 1_000, 0, "whole blocks only");
    let notes = d["notes"].as_array().unwrap();
    assert!(notes.iter().any(|n| n[1]["note"] == "closed"), "{d}");
    let out = devnet.mycel(&["deploy", "status", "99"]);
    assert_fails_with(&out, "no deployment 99");
}

/// Starts `mycel provider` for dev account `k` with `extra` flags; its miners from `first_port`.
fn provider(devnet: &Devnet, k: u32, first_port: u16, extra: &[&str]) -> mycel_testkit::Proc {
    let dir = devnet.dir().join(&format!("provider-{k}"));
    let mut args: Vec<String> = [
        "provider",
        "--dev-account",
        &k.to_string(),
        "--dir",
        &dir.display().to_string(),
        "--first-port",
        &first_port.to_string(),
        "--region",
        "eu",
        "--cores",
        "2",
        "--every",
        "1",
        "--rpc",
        devnet.rpc(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let log = devnet.dir().join(&format!("provider-{k}.log"));
    let mut proc = mycel_testkit::Proc::mycel(&format!("provider {k}"), &args, "info", &log);
    proc.wait_for_log("offered; bidding", Duration::from_secs(60));
    proc
}

#[test]
fn gemma_from_blob_storage_is_deployed_on_the_cheapest_provider_fails_over_and_answers_through_a_gateway(
) {
    // `mycel up` with its two providers (dev accounts 6 and 7, 0.0005 and 0.0006 mUSD per core).
    let devnet = Devnet::start_with(mycel_testkit::DevnetOptions {
        storage_nodes: 4,
        providers: 2,
        ..mycel_testkit::DevnetOptions::default()
    });
    let dir = TestDir::new();
    devnet.wait_for_storage_committee(4);
    // Gemma 3 270M (Q4_K_M) goes into blob storage; the deployment names it by its blob id.
    let cache = mycel_infer::default_cache_dir().unwrap();
    let gemma = mycel_infer::fetch::GEMMA3_270M;
    let model = mycel_infer::fetch::ensure_model(&gemma, &cache, &mut |_| {}).unwrap();
    let blob = devnet.ok(&[
        "blob",
        "put",
        &model.display().to_string(),
        "--epochs",
        "2",
        "--dev-account",
        "5",
    ]);
    let blob = blob.trim();

    // A third provider prices by a hook, below both.
    let ports = mycel_testkit::free_port_range(2);
    let mut cheap = provider(
        &devnet,
        9,
        ports,
        &["--pricing-hook", "cat > /dev/null; echo 0.0009"],
    );
    let manifest = dir.join("model.json");
    std::fs::write(
        &manifest,
        format!(
            r#"{{"name": "gemma3", "model": "{blob}", "max_price": "0.002",
                "resources": {{"cores": 2, "memory_mib": 1024, "disk_mib": 1024}}}}"#
        ),
    )
    .unwrap();
    let out = devnet.mycel(&[
        "deploy",
        &manifest.display().to_string(),
        "--deposit",
        "2",
        "--collect",
        "4",
        "--dev-account",
        "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    for bid in [
        format!("bid: 0.001 mUSD per block from {}", dev_address(6)),
        format!("bid: 0.0012 mUSD per block from {}", dev_address(7)),
        format!("bid: 0.0009 mUSD per block from {}", dev_address(9)),
    ] {
        assert!(log.contains(&bid), "{bid} missing:\n{log}");
    }
    assert!(
        log.contains(&format!("leased to {}", dev_address(9))),
        "{log}"
    );
    assert!(log.contains("serving: http://"), "{log}");
    let id = mycel_testkit::mycel::stdout(&out).trim().to_string();

    // The winner fetches the model, starts a miner and publishes it on the lease.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let endpoint = loop {
        let d = devnet.json(&["deploy", "status", &id]);
        if let Some(e) = d["lease"]["endpoint"].as_str().filter(|e| !e.is_empty()) {
            break e.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no endpoint: {d}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = chat(&rt, &endpoint);
    let answer = dir.join("answer.json");
    std::fs::write(&answer, &body).unwrap();
    let out = mycel_testkit::mycel::run(&[
        "receipt",
        "verify",
        &answer.display().to_string(),
        "--rerun",
    ]);
    assert!(
        out.status.success() && mycel_testkit::mycel::stdout(&out).contains("VALID"),
        "{}{}",
        mycel_testkit::mycel::stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        signer_of(&body),
        dev_address(9),
        "signed by the provider's key"
    );

    // The cheapest provider's machine dies (its daemon and its miner). The owner's watcher finds
    // the lease down and reports it; a report the failure period later ends it: half its
    // deposit burned, the order reopened, and the watcher accepts the next cheapest bid.
    let before = devnet.json(&["deploy", "status", &id]);
    let deposit: u128 = before["lease"]["deposit"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let myc9 = myc(&devnet, 9);
    let watch_log = devnet.dir().join("watch.log");
    let mut watcher = mycel_testkit::Proc::mycel(
        "deploy watch",
        &[
            "deploy",
            "watch",
            &id,
            "--health",
            "--accept-after",
            "2",
            "--dev-account",
            "5",
            "--rpc",
            devnet.rpc(),
        ]
        .map(String::from),
        "warn",
        &watch_log,
    );
    cheap.kill_9();
    kill_listener(&endpoint);
    watcher.wait_for_log(
        "not serving (reported down since block",
        Duration::from_secs(30),
    );
    watcher.wait_for_log(
        &format!("the lease of {} failed", dev_address(9)),
        Duration::from_secs(60),
    );
    assert_eq!(
        myc(&devnet, 9),
        myc9 + deposit - deposit / 2,
        "half the deposit back"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let endpoint = loop {
        let d = devnet.json(&["deploy", "status", &id]);
        let lease = &d["lease"];
        if lease["provider"].as_str().map(str::to_lowercase)
            == Some(dev_address(6).to_string().to_lowercase())
        {
            if let Some(e) = lease["endpoint"].as_str().filter(|e| !e.is_empty()) {
                let notes = d["notes"].to_string();
                assert!(notes.contains("provider_failure"), "{notes}");
                assert!(notes.contains("lease_down"), "{notes}");
                break e.to_string();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not served again: {d}\n{}",
            watcher.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let body = chat(&rt, &endpoint);
    assert_eq!(
        signer_of(&body),
        dev_address(6),
        "served by the next cheapest provider"
    );

    // A gateway routes the model to the leases serving it and checks every receipt against the
    // lease's provider.
    let port = mycel_testkit::free_port();
    let mut gateway = mycel_testkit::Proc::mycel(
        "gateway",
        &[
            "gateway",
            "--leases",
            blob,
            "--model",
            &model.display().to_string(),
            "--free",
            "--rpc",
            devnet.rpc(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metagraph-refresh",
            "1",
        ]
        .map(String::from),
        "warn",
        &devnet.dir().join("gateway.log"),
    );
    gateway.wait_for_log("mycel gateway is running", Duration::from_secs(60));
    assert!(
        gateway
            .log()
            .contains(&format!("the leases of model {blob}")),
        "{}",
        gateway.log()
    );
    let via = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .json(&serde_json::json!({"model": gemma.sha256, "max_tokens": 8,
                "messages": [{"role": "user", "content": "Say hi"}]}))
            .send()
            .await
            .unwrap();
        let miner = r
            .headers()
            .get("x-mycel-miner")
            .map(|v| v.to_str().unwrap().to_lowercase())
            .unwrap_or_default();
        (r.status(), miner, r.text().await.unwrap())
    });
    assert_eq!(via.0, 200, "{}", via.2);
    assert_eq!(via.1, dev_address(6).to_string().to_lowercase());
    std::fs::write(&answer, &via.2).unwrap();
    let out = mycel_testkit::mycel::run(&["receipt", "verify", &answer.display().to_string()]);
    assert!(
        mycel_testkit::mycel::stdout(&out).contains("VALID"),
        "{}{}",
        mycel_testkit::mycel::stdout(&out),
        stderr(&out)
    );
    gateway.kill_9();
    watcher.kill_9();

    // Closed: the provider stops serving.
    devnet.ok(&["deploy", "close", &id, "--dev-account", "5"]);
    wait_not_serving(&rt, &endpoint, "after the close");

    // A deployment with twelve blocks of escrow: a low balance is noted, the lease pauses when
    // the escrow runs dry (the provider stops serving, nothing is closed), a top-up resumes it
    // and it serves again; closing refunds the rest, and what the owner spent is exactly what
    // the provider was paid.
    let (owner_before, provider_before) = (musd(&devnet, 5), musd(&devnet, 6));
    let out = devnet.mycel(&[
        "deploy",
        &manifest.display().to_string(),
        "--deposit",
        "0.012",
        "--collect",
        "2",
        "--serve-wait",
        "0",
        "--dev-account",
        "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let short = mycel_testkit::mycel::stdout(&out).trim().to_string();
    assert!(
        stderr(&out).contains(&format!("leased to {}", dev_address(6))),
        "{}",
        stderr(&out)
    );
    let status = |devnet: &Devnet| devnet.json(&["deploy", "status", &short]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let paused = loop {
        let d = status(&devnet);
        if d["state"] == "paused" {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "not paused: {d}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let notes = paused["notes"].to_string();
    assert!(
        notes.contains("low_balance") && notes.contains("paused"),
        "{notes}"
    );
    let served = paused["lease"]["paid"].as_str().unwrap().to_string();
    assert_eq!(served, "12000", "twelve blocks paid at 0.001: {paused}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !status(&devnet)["lease"]["endpoint"]
        .as_str()
        .unwrap_or("")
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the provider still publishes an endpoint while paused"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    devnet.ok(&["deploy", "top-up", &short, "0.5", "--dev-account", "5"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let again = loop {
        let d = status(&devnet);
        if let Some(e) = d["lease"]["endpoint"].as_str().filter(|e| !e.is_empty()) {
            assert_eq!(d["state"], "leased", "{d}");
            break e.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not served again: {d}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(signer_of(&chat(&rt, &again)), dev_address(6));
    devnet.ok(&["deploy", "close", &short, "--dev-account", "5"]);
    wait_not_serving(&rt, &again, "after the second close");
    let closed = status(&devnet);
    assert_eq!(closed["state"], "closed", "{closed}");
    // The provider's earnings reach it at the close (settled) or by its withdrawals.
    let spent = owner_before - musd(&devnet, 5);
    assert_eq!(spent, musd(&devnet, 6) - provider_before, "{closed}");
    assert!(spent > 12_000 && spent < 512_000, "{spent}");
}

/// Waits until nothing answers at `endpoint` (30 s at most).
fn wait_not_serving(rt: &tokio::runtime::Runtime, endpoint: &str, when: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let up = rt.block_on(async { reqwest::get(format!("{endpoint}/models")).await.is_ok() });
        if !up {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still serving {when}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A chat completion from the OpenAI-compatible `endpoint` (its first model): the body.
fn chat(rt: &tokio::runtime::Runtime, endpoint: &str) -> String {
    rt.block_on(async {
        let http = reqwest::Client::new();
        let models: serde_json::Value = http
            .get(format!("{endpoint}/models"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let name = models["data"][0]["id"].as_str().unwrap().to_string();
        let r = http
            .post(format!("{endpoint}/chat/completions"))
            .json(&serde_json::json!({"model": name, "max_tokens": 8,
                "messages": [{"role": "user", "content": "Say hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    })
}

fn myc(devnet: &Devnet, who: u32) -> u128 {
    devnet.account(dev_address(who))["myc"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// SIGKILLs the `mycel miner` listening where `endpoint` (`http://HOST:PORT/v1`) points, as a
/// dead machine would stop it.
fn kill_listener(endpoint: &str) {
    let listen = endpoint
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_string();
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let serves = args
            .windows(2)
            .any(|w| w[0] == b"--listen" && w[1] == listen.as_bytes());
        if serves && args.iter().any(|a| *a == b"miner") {
            // SAFETY: kill(2) on a process id read from /proc; no memory is shared.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed += 1;
        }
    }
    assert_eq!(killed, 1, "one miner listens on {listen}");
}

/// The miner a completion's receipt names.
fn signer_of(body: &str) -> alloy_primitives::Address {
    let answer: serde_json::Value = serde_json::from_str(body).unwrap();
    answer["receipt"]["message"]["miner"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}
