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
    let shots = repo_root().join("target/explorer-screenshots");
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
    devnet.ok(&[
        "subnet",
        "create",
        "--dev-account",
        "0",
        "--hotkey-dev-account",
        "9",
    ]);
    // Epochs every few blocks, so the history has some.
    devnet.ok(&["subnet", "set", "1", "--tempo", "3", "--dev-account", "0"]);
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
                {"name": "subnets", "hash": "/subnets", "expect": ["Subnets", "flow EMA (MYC/block)"]},
                {"name": "subnet", "hash": "/subnet/1", "expect": ["Subnet 1", "Metagraph", "0xa0ee7a", "Emission per epoch, by UID", "MYC injected"]},
                {"name": "blocks", "hash": "/blocks", "expect": ["Blocks", &height.to_string()]},
                {"name": "agents", "hash": "/agents", "expect": ["1 registered", "#1"]},
                {"name": "agent", "hash": "/agent/1", "expect": ["Agent #1", "http://127.0.0.1:1/agent.json", "Validations"]},
                {"name": "jobs", "hash": "/jobs", "expect": ["Jobs"]},
                {"name": "emission", "hash": "/emission", "expect": ["Emission", "from block"]},
                {"name": "emission-receipt", "hash": "/emission/latest", "expect": ["Emission of block", "Subnets", "Stake swaps"]},
                {"name": "neuron", "hash": "/subnet/1/uid/0", "expect": ["Subnet 1 · UID 0", "epoch block"]},
                {"name": "missing", "hash": "/block/99999999", "expect": ["no finalized block"]},
            ],
            "searches": [height.to_string(), tx.clone(), payer.clone(), "#1", "nonsense"],
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
    let s = &out["searches"];
    assert_eq!(s[height.to_string()], format!("#/block/{height}"));
    assert_eq!(s[&tx], format!("#/tx/{tx}"));
    assert_eq!(s[&payer], format!("#/account/{payer}"));
    assert_eq!(s["#1"], "#/agent/1");
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
