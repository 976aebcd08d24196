//! The explorer at `/explorer`, in a real browser: Debian's chromium driven by playwright-core
//! (interop/explorer/browse.mjs) against a devnet with traffic (a subnet, a stake, a transfer, an
//! agent). Every page renders the chain's data, search finds blocks, transactions, accounts and
//! agents, the live view shows a new block within 3 seconds, nothing is fetched from elsewhere,
//! no console errors, and the page fits a phone's width. Screenshots land in
//! target/explorer-screenshots. And the API route it pages blocks with, `GET /v1/blocks`.

use mycel_testkit::interop::repo_root;
use mycel_testkit::{dev_address, Devnet, DevnetOptions};
use serde_json::{json, Value};
use std::process::Command;

fn browse(url: &str, plan: Value) -> Value {
    browse_into(url, "target/explorer-screenshots", plan)
}

/// Browses with screenshots written under `shots` (relative to the repository).
fn browse_into(url: &str, shots: &str, plan: Value) -> Value {
    let shots = repo_root().join(shots);
    let out = Command::new("node")
        .current_dir(repo_root().join("interop/explorer"))
        .args(["browse.mjs", "--url", url, "--shots"])
        .arg(&shots)
        .args(["--plan", &plan.to_string()])
        .output()
        .expect("node (and `npm ci` in interop/explorer, apt chromium)");
    assert!(
        out.status.success(),
        "browse.mjs failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn the_explorer_shows_the_chain_in_chromium() {
    // A short emission history, to see the retention at work.
    let devnet = Devnet::start_with(DevnetOptions::default().args(&["--history-blocks", "5"]));
    // Epochs every few blocks, so the history has some.
    devnet.create_subnet(0, 9, Some(3));
    devnet.ok(&[
        "stake",
        "add",
        "--netuid",
        "1",
        "--hotkey-dev-account",
        "9",
        "--amount",
        "10",
        "--dev-account",
        "4",
    ]);
    let sent = devnet.ok(&[
        "transfer",
        "--to",
        "0x0000000000000000000000000000000000000abc",
        "--amount",
        "1.5",
        "--dev-account",
        "1",
    ]);
    let tx = sent.lines().next().unwrap().trim().to_string();
    assert!(tx.starts_with("0x") && tx.len() == 66, "{sent}");
    devnet.ok(&[
        "agent",
        "register",
        "--uri",
        "http://127.0.0.1:1/agent.json",
        "--dev-account",
        "2",
    ]);
    // A payment session: dev 5 deposits 2 mUSD for dev 8.
    devnet.ok(&[
        "session",
        "open",
        "--to",
        &dev_address(8).to_string(),
        "--amount",
        "2",
        "--dev-account",
        "5",
    ]);
    let height = devnet.http_get(&format!("/v1/txs/{tx}"))["height"]
        .as_u64()
        .unwrap();
    let payer = dev_address(1).to_string();

    // The list route: newest first, paged by `before`, bounded.
    let page = devnet.http_get("/v1/blocks?limit=3");
    let heights: Vec<u64> = page["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights.len(), 3);
    assert!(heights.windows(2).all(|w| w[0] == w[1] + 1), "{page}");
    let next = page["next_before"].as_u64().unwrap();
    assert_eq!(next, heights[2]);
    let older = devnet.http_get(&format!("/v1/blocks?limit=2&before={next}"));
    assert_eq!(older["blocks"][0]["height"], next - 1, "{older}");
    let with_tx = devnet.http_get(&format!("/v1/blocks?limit=1&before={}", height + 1));
    assert_eq!(with_tx["blocks"][0]["height"], height, "{with_tx}");
    assert!(
        with_tx["blocks"][0]["tx_count"].as_u64().unwrap() >= 1,
        "{with_tx}"
    );
    for bad in ["limit=0", "limit=101", "before=x", "sort=up"] {
        let status = mycel_testkit::http::block_on(async {
            reqwest::get(format!("{}/v1/blocks?{bad}", devnet.rpc()))
                .await
                .expect("GET")
                .status()
                .as_u16()
        });
        assert_eq!(status, 400, "{bad}");
    }

    // A block by its hash, and the search route.
    let block_hash = devnet.http_get(&format!("/v1/blocks/{height}"))["hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        devnet.http_get(&format!("/v1/blocks/{block_hash}"))["height"],
        height
    );
    for (q, kind, key, value) in [
        (block_hash.clone(), "block", "height", json!(height)),
        (height.to_string(), "block", "height", json!(height)),
        (tx.clone(), "tx", "hash", json!(tx)),
        ("%231".to_string(), "agent", "agent_id", json!(1)),
        (
            format!("0x{}", "ab".repeat(32)),
            "none",
            "kind",
            json!("none"),
        ),
        ("99999999".to_string(), "none", "kind", json!("none")),
        ("%2377".to_string(), "none", "kind", json!("none")),
    ] {
        let found = devnet.http_get(&format!("/v1/search?q={q}"));
        assert_eq!(found["kind"], kind, "{q}: {found}");
        assert_eq!(found[key], value, "{q}: {found}");
    }

    // No validator runs in this node: its routes say so.
    assert_eq!(devnet.http_get("/v1/validator")["running"], false);
    let absent = mycel_testkit::http::block_on(async {
        let r = reqwest::get(format!("{}/v1/validator/status", devnet.rpc()))
            .await
            .expect("GET");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    });
    assert_eq!(absent.0, 404);
    assert!(absent.1.contains("no_validator"), "{}", absent.1);
    let bad_since = mycel_testkit::http::block_on(async {
        reqwest::get(format!("{}/v1/payments?since_ms=yesterday", devnet.rpc()))
            .await
            .expect("GET")
            .status()
            .as_u16()
    });
    assert_eq!(bad_since, 400);

    // The emission history keeps the last 5 blocks.
    devnet.wait_for_height(height + 8, std::time::Duration::from_secs(30));
    let kept = devnet.http_get("/v1/emission/receipts");
    let receipts = kept["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 5, "{kept}");
    let oldest = kept["oldest_height"].as_u64().unwrap();
    assert_eq!(receipts[4]["height"], oldest);
    assert!(kept["next_before"].is_null());
    let status = mycel_testkit::http::block_on(async {
        let r = reqwest::get(format!(
            "{}/v1/emission/receipts/{}",
            devnet.rpc(),
            oldest - 1
        ))
        .await
        .expect("GET");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    });
    assert_eq!(status.0, 404);
    assert!(status.1.contains("not_kept"), "{}", status.1);

    // A real receipt (docs/receipts.md's worked example, signed by a miner), and two altered.
    let docs = std::fs::read_to_string(repo_root().join("docs/receipts.md")).unwrap();
    let example = docs
        .split("## JSON form")
        .nth(1)
        .and_then(|s| s.split("```json").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the JSON form example in docs/receipts.md");
    let good: Value = serde_json::from_str(example).unwrap();
    let mut forged = good.clone();
    forged["message"]["outputTokenCount"] = json!(13);
    let mut other_request = good.clone();
    other_request["request"]["max_tokens"] = json!(13);

    let url = format!("{}/explorer", devnet.rpc());
    let out = browse(
        &url,
        json!({
            "pages": [
                {"name": "block", "hash": format!("/block/{height}"), "expect": [format!("Block {height}"), "Transfer"]},
                {"name": "tx", "hash": format!("/tx/{tx}"), "expect": ["finalized", "Transfer", "fee_burned"]},
                {"name": "account", "hash": format!("/account/{payer}"), "expect": ["Account", "999,998.49999", "1,000,000", "Transactions (1)", "Transfer"]},
                {"name": "payments", "hash": "/payments", "expect": ["Payments", "session opened", "2"]},
                {"name": "session-payer", "hash": format!("/account/{}", dev_address(5)), "expect": ["Payments (1;", "session opened", "OpenChannel"]},
                {"name": "staker", "hash": format!("/account/{}", dev_address(4)), "expect": ["Stake", "0xa0ee7a"]},
                {"name": "subnets", "hash": "/subnets", "expect": ["Subnets", "flow EMA (MYC/block)", "emission share", " %", "Emission share: each subnet's part"]},
                {"name": "subnet", "hash": "/subnet/1", "expect": ["Subnet 1", "Metagraph", "0xa0ee7a", "Emission per epoch, by UID", "MYC injected", "Pool price, per block", "This node runs no validator"]},
                {"name": "blocks", "hash": "/blocks", "expect": ["Blocks", &height.to_string()]},
                {"name": "agents", "hash": "/agents", "expect": ["1 registered", "#1"]},
                {"name": "agent", "hash": "/agent/1", "expect": ["Agent #1", "http://127.0.0.1:1/agent.json", "Validations"]},
                {"name": "jobs", "hash": "/jobs", "expect": ["Jobs", "all · open · funded"]},
                {"name": "jobs-funded", "hash": "/jobs/state/funded", "expect": ["Jobs (funded)"]},
                {"name": "emission", "hash": "/emission", "expect": ["Emission", "from block"]},
                {"name": "emission-receipt", "hash": "/emission/latest", "expect": ["Emission of block", "Subnets", "Stake swaps"]},
                {"name": "neuron", "hash": "/subnet/1/uid/0", "expect": ["Subnet 1 · UID 0", "epoch block"]},
                {"name": "missing", "hash": "/block/99999999", "expect": ["no finalized block"]},
            ],
            "searches": [height.to_string(), tx.clone(), payer.clone(), "#1", "nonsense", block_hash.clone()],
            "race": format!("#/block/{height}"),
            "receipts": [
                {"name": "good", "json": json!({"id": "chatcmpl-1", "receipt": good}).to_string()},
                {"name": "forged", "json": forged.to_string()},
                {"name": "other-request", "json": other_request.to_string()},
                {"name": "not-json", "json": "{receipt"},
            ],
        }),
    );
    for (name, page) in out["pages"].as_object().unwrap() {
        assert_eq!(page["missing"], json!([]), "page {name}: {page:#}");
        // The one error allowed: the browser's note of the 404 the missing block's page asks for.
        let expected = if name == "missing" {
            json!([
                "Failed to load resource: the server responded with a status of 404 (Not Found)"
            ])
        } else {
            json!([])
        };
        assert_eq!(page["consoleErrors"], expected, "page {name}: {page:#}");
    }
    assert_eq!(out["consoleErrors"], json!([]), "{out:#}");
    let live = out["live"]["ms"].as_u64().unwrap();
    assert!(
        live <= 3000,
        "the live view took {live} ms to show a new block"
    );
    assert_ne!(out["live"]["before"], out["live"]["after"]);
    // Leaving a block's page before it was drawn: the receipt page stays.
    assert_eq!(
        out["race"],
        json!({"title": "mycel explorer · receipt", "receiptShown": true}),
        "{out:#}"
    );
    let s = &out["searches"];
    assert_eq!(s[height.to_string()], format!("#/block/{height}"));
    assert_eq!(s[&tx], format!("#/tx/{tx}"));
    assert_eq!(s[&payer], format!("#/account/{payer}"));
    assert_eq!(s["#1"], "#/agent/1");
    assert_eq!(s[&block_hash], format!("#/block/{height}"));
    assert!(
        s["nonsense"]
            .as_str()
            .unwrap()
            .contains("is not a block height"),
        "{s}"
    );
    assert!(out["phone"]["overflow"].as_i64().unwrap() <= 0, "{out}");
    let verdicts = &out["receipts"];
    let verdict = |name: &str| verdicts[name].as_str().unwrap_or_default().to_string();
    assert!(verdict("good").starts_with("✔ valid"), "{verdicts}");
    assert!(
        verdict("forged").contains("not by the miner 0x90F79bf6EB2c4f870365E785982E1f101E93b906"),
        "{verdicts}"
    );
    assert!(
        verdict("other-request").contains("not to its requestHash"),
        "{verdicts}"
    );
    assert!(verdict("not-json").starts_with("Not JSON"), "{verdicts}");

    // The committed bundle of the receipt checker is what its build makes.
    let check = Command::new("node")
        .current_dir(repo_root().join("interop/explorer"))
        .args(["build.mjs", "--check"])
        .output()
        .expect("node build.mjs --check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    eprintln!(
        "explorer: first render of the home page {} ms, live block after {live} ms",
        out["firstRenderMs"]
    );
}

/// POSTs `body` to `url`: the status and the JSON answer.
fn post(url: &str, body: Vec<u8>) -> (u16, Value) {
    mycel_testkit::http::block_on(async {
        let r = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
}

/// The explorer over a whole `mycel up` (chain, miners, validator, gateway) with traffic: paid
/// chats over x402, a transfer, a stake. The validator's findings show per miner; a paid answer
/// pasted into the receipt page verifies in the browser and reproduces when the node's validator
/// re-runs it, and the same answer with another text is caught by the re-run; the gateway's
/// registration file is linked; the home page shows the last 24 hours' payments. And the re-run
/// route's refusals: an unregistered signer, an oversized body.
#[test]
fn the_explorer_shows_a_whole_devnet_with_paid_chats() {
    let up = Devnet::start_with(DevnetOptions::with_subnet());
    let rpc = up.rpc().to_string();
    assert_eq!(up.http_get("/v1/validator")["running"], true);

    // Traffic: three paid chats (dev 5 pays the gateway over x402), a transfer, a stake.
    let chat = |prompt: &str, max_tokens: &str| -> Value {
        let out = up.ok(&[
            "chat",
            prompt,
            "--gateway",
            up.gateway(),
            "--max-tokens",
            max_tokens,
            "--json",
            "--dev-account",
            "5",
        ]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let answer = chat("Name a color.", "12");
    let fruit = chat("Name a fruit.", "12");
    let story = chat("Tell a story about a cat.", "64");
    up.ok(&[
        "transfer",
        "--to",
        "0x0000000000000000000000000000000000000abc",
        "--amount",
        "3",
        "--dev-account",
        "6",
    ]);
    up.ok(&[
        "stake",
        "add",
        "--netuid",
        "1",
        "--hotkey-dev-account",
        "4",
        "--amount",
        "5",
        "--dev-account",
        "6",
    ]);
    let mut tampered = answer.clone();
    tampered["choices"][0]["message"]["content"] = json!("Definitely not what the model said.");

    // The re-run route, as a script calls it.
    let rerun_url = format!("{rpc}/v1/validator/rerun");
    let honest = serde_json::to_vec(&answer).unwrap();
    let (status, verdict) = post(&rerun_url, honest.clone());
    assert_eq!(status, 200, "{verdict:#}");
    assert_eq!(verdict["verdict"], "reproduced", "{verdict:#}");
    assert_eq!(verdict["response"], 100);
    assert_eq!(verdict["hash"], answer["receipt"]["message"]["requestHash"]);
    let again = std::time::Instant::now();
    assert_eq!(
        post(&rerun_url, honest).1,
        verdict,
        "asked again: the verdict kept"
    );
    assert!(again.elapsed() < std::time::Duration::from_secs(2));
    let (status, caught) = post(&rerun_url, serde_json::to_vec(&tampered).unwrap());
    assert_eq!(
        (status, caught["verdict"].as_str()),
        (200, Some("wrong_output")),
        "{caught:#}"
    );
    assert_eq!(caught["response"], 0);
    // Signed by a key no subnet registered: refused before any run.
    let receipt: mycel_types::ReceiptJson =
        serde_json::from_value(answer["receipt"].clone()).unwrap();
    let signed = mycel_types::SignedReceipt::from_json(&receipt).unwrap();
    let stranger = mycel_types::keys::dev_signer(17).unwrap();
    let mut forged = signed.receipt.clone();
    forged.miner = stranger.address();
    let forged = mycel_types::SignedReceipt::sign(forged, receipt.chain_id, &stranger).unwrap();
    let mut unregistered = answer.clone();
    unregistered["receipt"] =
        serde_json::to_value(forged.to_json(receipt.request.as_ref())).unwrap();
    let (status, refused) = post(&rerun_url, serde_json::to_vec(&unregistered).unwrap());
    assert_eq!(status, 403, "{refused:#}");
    assert_eq!(refused["error"]["code"], "unregistered_miner");
    let (status, _) = post(&rerun_url, vec![b' '; 1536 * 1024]);
    assert_eq!(status, 413);
    // Two answers at once: one runs, the other is told to come back (one re-run at a time).
    let both = mycel_testkit::http::block_on(async {
        let ask = |answer: &Value| {
            let body = serde_json::to_vec(answer).unwrap();
            let url = rerun_url.clone();
            async move {
                let r = reqwest::Client::new()
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("POST");
                let retry = r.headers().get("retry-after").cloned();
                let status = r.status().as_u16();
                (status, retry, r.json::<Value>().await.expect("JSON"))
            }
        };
        futures::future::join(ask(&story), ask(&fruit)).await
    });
    let mut statuses = [both.0 .0, both.1 .0];
    statuses.sort();
    assert_eq!(statuses, [200, 503], "{both:?}");
    let busy = if both.0 .0 == 503 { &both.0 } else { &both.1 };
    assert_eq!(busy.2["error"]["code"], "busy", "{busy:?}");
    assert_eq!(busy.1.as_ref().map(|v| v.to_str().unwrap()), Some("5"));
    for later in [&story, &fruit] {
        let (status, v) = post(&rerun_url, serde_json::to_vec(later).unwrap());
        assert_eq!(
            (status, v["verdict"].as_str()),
            (200, Some("reproduced")),
            "{v:#}"
        );
    }

    // The validator has finished a round: its findings per miner.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let status = loop {
        let status = up.http_get("/v1/validator/status");
        if !status["last_round"].is_null() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no validator round: {status:#}"
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    assert_eq!(status["netuid"], 1, "{status:#}");
    assert_eq!(
        status["last_round"]["miners"].as_array().unwrap().len(),
        2,
        "{status:#}"
    );

    // The last 24 hours' payments: the two chats; none in the future.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let day = up.http_get(&format!(
        "/v1/payments?kind=x402&since_ms={}",
        now_ms - 86_400_000
    ));
    assert_eq!(day["total"], 3, "{day:#}");
    assert!(day["payments"][0]["timestamp_ms"].as_u64().unwrap() > now_ms - 600_000);
    let future = up.http_get(&format!("/v1/payments?since_ms={}", now_ms + 86_400_000));
    assert_eq!(future["total"], 0, "{future:#}");
    // The pool's reserves in the emission receipts: the pool price's history.
    let latest = up.http_get("/v1/emission/receipts/latest");
    let line = &latest["subnets"][0];
    assert!(
        line["pool_myc"].as_str().unwrap().parse::<u128>().unwrap() > 0,
        "{latest:#}"
    );
    assert!(
        line["pool_alpha"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap()
            > 0
    );

    let gateway_agent = up.http_get(&format!("/v1/agents?owner={}", dev_address(8)))["agents"][0]
        ["agent_id"]
        .as_u64()
        .expect("the gateway's agent");
    let shots = "target/explorer-screenshots/up";
    let out = browse_into(
        &format!("{rpc}/explorer"),
        shots,
        json!({
            "pages": [
                {"name": "home", "hash": "/", "expect": ["FINALITY", "MUSD PAID, LAST 24 H", "for inference (x402, sessions) and jobs; 0.00", "JOBS PAID, LAST 24 H", "mUSD to providers"]},
                {"name": "payments", "hash": "/payments", "expect": ["Payments", "x402", "session"]},
                {"name": "subnet", "hash": "/subnet/1", "expect": ["What this node's validator found", "re-runs matched", "median tokens/s", "Pool price, per block", "MYC per α"]},
                {"name": "payer", "hash": format!("/account/{}", dev_address(5)), "expect": ["Payments (", "x402"]},
                {"name": "gateway-agent", "hash": format!("/agent/{gateway_agent}"), "expect": ["registration file", &format!("{}/.well-known/agent-registration.json ↗", up.gateway())]},
            ],
            "receipts": [
                {"name": "paid-answer", "json": answer.to_string(), "rerun": true},
                {"name": "paid-answer-other-text", "json": tampered.to_string(), "rerun": true},
            ],
        }),
    );
    for (name, page) in out["pages"].as_object().unwrap() {
        assert_eq!(page["missing"], json!([]), "page {name}: {page:#}");
        assert_eq!(page["consoleErrors"], json!([]), "page {name}: {page:#}");
    }
    assert_eq!(out["consoleErrors"], json!([]), "{out:#}");
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    assert!(
        text(&out["receipts"]["paid-answer"]).starts_with("✔ valid"),
        "{out:#}"
    );
    // The receipt does not sign the text: only the re-run tells the two apart.
    assert!(
        text(&out["receipts"]["paid-answer-other-text"]).starts_with("✔ valid"),
        "{out:#}"
    );
    assert!(
        text(&out["reruns"]["paid-answer"]).starts_with("✔ reproduced"),
        "{out:#}"
    );
    assert!(
        text(&out["reruns"]["paid-answer-other-text"]).starts_with("✘ wrong_output"),
        "{out:#}"
    );
}

/// The emission history is journaled: after a crash (kill -9) and a restart the node serves the
/// same receipts and epochs it served before, and keeps to its retention (here 20 blocks, 3
/// epochs per subnet) over what it replays.
#[test]
fn the_emission_history_survives_a_crash() {
    let mut devnet = Devnet::start_with(DevnetOptions::default().args(&[
        "--history-blocks",
        "20",
        "--history-epochs",
        "3",
    ]));
    devnet.create_subnet(0, 9, Some(2));
    let start = devnet.height();
    devnet.wait_for_height(start + 12, std::time::Duration::from_secs(60));
    let before = devnet.http_get("/v1/emission/receipts?limit=100");
    let epochs_before = devnet.http_get("/v1/subnets/1/epochs?limit=100");
    let kept = before["receipts"].as_array().unwrap().clone();
    assert!(!kept.is_empty(), "{before:#}");
    let epochs = epochs_before["epochs"].as_array().unwrap().clone();
    assert_eq!(epochs.len(), 3, "{epochs_before:#}");

    devnet.kill_9();
    devnet.restart();

    // Every receipt and epoch served before is served again, byte for byte, as long as the
    // retention keeps it.
    let after = devnet.http_get("/v1/emission/receipts?limit=100");
    let oldest = after["oldest_height"].as_u64().unwrap();
    let again: Vec<Value> = after["receipts"].as_array().unwrap().clone();
    assert!(again.len() <= 20, "{after:#}");
    let mut checked = 0;
    for receipt in &kept {
        let height = receipt["height"].as_u64().unwrap();
        if height >= oldest {
            let served = devnet.http_get(&format!("/v1/emission/receipts/{height}"));
            assert_eq!(&served, receipt, "receipt {height} after the restart");
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no receipt from before the crash is kept: {after:#}"
    );
    let epochs_after = devnet.http_get("/v1/subnets/1/epochs?limit=100");
    let newest_before = epochs[0]["height"].as_u64().unwrap();
    let still: Vec<&Value> = epochs_after["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["height"].as_u64().unwrap() <= newest_before)
        .collect();
    assert!(!still.is_empty(), "{epochs_after:#}");
    for e in still {
        assert!(
            epochs.contains(e),
            "epoch {e} was not served before the crash"
        );
    }
    assert!(epochs_after["epochs"].as_array().unwrap().len() <= 3);
}
