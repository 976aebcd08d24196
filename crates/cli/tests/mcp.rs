//! `mycel mcp` driven by the official Python MCP client (PyPI `mcp`) on a real devnet: over stdio
//! with the stateless 2026-07-28 revision and over streamable HTTP with the 2025-11-25 initialize
//! handshake. Every tool is listed with a schema; reads answer what the node answers; a transfer
//! with the server's key lands on chain; without a key, with a bad argument, for an unknown tool,
//! from a foreign Origin, and for an agent key over its allowance, the client gets a clear error
//! and nothing is spent.

use mycel_testkit::interop::{mcp_npm, mcp_python};
use mycel_testkit::process::start_mycel;
use mycel_testkit::{dev_address, free_port, Devnet};
use serde_json::{json, Value};

const TOOLS: [&str; 30] = [
    "agent",
    "agent_registration",
    "balance",
    "block",
    "call_paid_tool",
    "chat",
    "close_session",
    "complete_job",
    "create_job",
    "emission",
    "epochs",
    "find_agents",
    "fund_job",
    "give_feedback",
    "job",
    "jobs",
    "metagraph",
    "open_session",
    "pools",
    "reject_job",
    "reputation",
    "session",
    "stake",
    "status",
    "submit_job",
    "subnets",
    "transaction",
    "transfer",
    "unstake",
    "verify_receipt",
];

fn client(server: &[&str], mode: &str, calls: Value) -> Value {
    mcp_python(server, mode, calls)
}

fn r_status(out: &Value, i: usize) -> String {
    out["results"][i]["structured"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_python_mcp_client_reads_and_transfers_over_stdio_and_http() {
    let devnet = Devnet::start();
    let mycel = mycel_testkit::mycel::bin().display().to_string();
    let recipient = "0x0000000000000000000000000000000000000abc";

    // A subnet to stake in: dev 0 owns it, its hotkey dev 9 is UID 0.
    devnet.create_subnet(0, 9, None);
    let hotkey = dev_address(9).to_string();

    // stdio, stateless 2026-07-28, with dev key 3.
    let stdio = json!([mycel, "mcp", "--rpc", devnet.rpc(), "--dev-account", "3"]).to_string();
    let out = client(
        &["--stdio", &stdio, "--resources"],
        "auto",
        json!([
            ["status", {}],
            ["balance", {"address": dev_address(1).to_string()}],
            ["transfer", {"to": recipient, "amount": "2.5", "token": "mUSD"}],
            ["balance", {"address": "not an address"}],
            ["no_such_tool", {}],
            ["metagraph", {"netuid": "one"}],
            ["pools", {}],
            ["stake", {"netuid": 1, "hotkey": hotkey, "amount": "0.1"}],
            ["stake", {"netuid": 1, "hotkey": hotkey, "amount": "0.1", "limit_price": "0.000000001"}],
            ["unstake", {"netuid": 1, "hotkey": hotkey, "amount": "all"}],
            {"read": "mycel://subnets"},
            {"read": "mycel://metagraph/1"},
            {"read": "mycel://emission/latest"},
            {"read": "mycel://metagraph/99"},
            ["create_job", {"description": "summarise a paper", "evaluator": dev_address(3).to_string(),
                            "provider": dev_address(7).to_string(), "budget": "1"}],
            ["fund_job", {"job_id": 1, "budget": "2"}],
            ["fund_job", {"job_id": 1, "budget": "1"}],
            ["epochs", {"netuid": 1}],
            ["epochs", {"netuid": 99}],
        ]),
    );
    assert_eq!(
        out["resources"],
        json!(["mycel://subnets", "mycel://emission/latest"])
    );
    assert_eq!(
        out["templates"],
        json!([
            "mycel://metagraph/{netuid}",
            "mycel://agents/{id}/registration"
        ])
    );
    assert_eq!(out["protocol_version"], "2026-07-28");
    let names: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, TOOLS);
    for t in out["tools"].as_array().unwrap() {
        assert!(t["description"].as_str().unwrap().len() > 20, "{t}");
        assert_eq!(t["input_schema"]["type"], "object", "{t}");
    }
    let r = out["results"].as_array().unwrap();
    assert_eq!(r[0]["structured"]["chain_id"], 1337);
    assert_eq!(r[1]["structured"]["musd_display"], "1000000");
    assert_eq!(r[2]["is_error"], false, "{}", r[2]);
    assert_eq!(r[2]["structured"]["status"], "finalized");
    assert_eq!(
        (
            r[3]["is_error"].as_bool(),
            r[3]["structured"]["code"].as_str()
        ),
        (Some(true), Some("bad_argument"))
    );
    assert!(
        r[4]["exception"]
            .as_str()
            .is_some_and(|e| e.contains("not found")),
        "{}",
        r[4]
    );
    // A schema violation: an error result that says which argument is wrong.
    assert_eq!(r[5]["is_error"], true, "{}", r[5]);
    assert!(
        r[5]["text"].as_str().unwrap().contains("expected u16"),
        "{}",
        r[5]
    );
    assert_eq!(
        devnet.account(recipient.parse().unwrap())["musd"],
        "2500000",
        "the transfer is on chain"
    );
    // Progress: submitted, then final.
    let progress = r[2]["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 2, "{}", r[2]);
    assert_eq!(progress[1][0], 2.0);
    // Staking with slippage protection: the default limit fills, a limit below the price is
    // refused by the chain, and "all" sells the whole position.
    assert_eq!(r[6]["structured"]["pools"][0]["netuid"], 1, "{}", r[6]);
    assert_eq!(r[7]["structured"]["status"], "finalized", "{}", r[7]);
    assert_eq!(r[8]["is_error"], true, "{}", r[8]);
    assert!(
        r[8]["structured"]["code"]
            .as_str()
            .unwrap()
            .contains("price"),
        "{}",
        r[8]
    );
    assert_eq!(r[9]["structured"]["status"], "finalized", "{}", r[9]);
    let sold = &r[9]["structured"]["receipt"]["events"][0];
    assert_eq!(
        (&sold["side"], sold["amount"] != "0"),
        (&json!("unstake"), true),
        "{sold}"
    );
    let stakes = devnet.http_get(&format!("/v1/stakes/{}", dev_address(3)));
    assert!(
        stakes["stakes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["alpha"] == "0"),
        "{stakes}"
    );
    // A job: created with its budget, funded only at the budget agreed.
    assert_eq!(r[14]["structured"]["job_id"], 1, "{}", r[14]);
    assert_eq!(
        r[15]["structured"]["code"], "job_budget_changed",
        "{}",
        r[15]
    );
    assert_eq!(r[16]["structured"]["status"], "finalized", "{}", r[16]);
    // Emission per epoch (none yet at tempo 360), and a subnet that does not exist.
    assert_eq!(r[17]["structured"]["netuid"], 1, "{}", r[17]);
    assert!(r[17]["structured"]["epochs"].is_array(), "{}", r[17]);
    assert_eq!(r[18]["structured"]["code"], "unknown_subnet", "{}", r[18]);
    // Resources.
    assert_eq!(r[10]["json"]["subnets"][0]["netuid"], 1, "{}", r[10]);
    assert_eq!(r[10]["mime_type"], "application/json");
    assert_eq!(r[11]["json"]["netuid"], 1, "{}", r[11]);
    assert!(r[12]["json"].is_object(), "{}", r[12]);
    assert!(
        r[13]["exception"]
            .as_str()
            .unwrap()
            .contains("metagraph/99"),
        "{}",
        r[13]
    );

    // An agent key with an allowance spends within it through MCP.
    devnet.ok(&[
        "allowance",
        "grant",
        "--agent",
        &dev_address(7).to_string(),
        "--musd-per-period",
        "1",
        "--period-blocks",
        "100000",
        "--dev-account",
        "1",
    ]);
    let owner_before = devnet.musd(1);
    let stdio7 = json!([mycel, "mcp", "--rpc", devnet.rpc(), "--dev-account", "7"]).to_string();
    let out = client(
        &["--stdio", &stdio7],
        "auto",
        json!([
            ["transfer", {"to": recipient, "amount": "0.75", "token": "mUSD"}],
            ["transfer", {"to": recipient, "amount": "0.5", "token": "mUSD"}],
            ["submit_job", {"job_id": 1, "deliverable": format!("0x{}", "ab".repeat(32)),
                            "deliverable_uri": "http://127.0.0.1:1/summary"}],
        ]),
    );

    let r = out["results"].as_array().unwrap();
    assert_eq!(r[0]["is_error"], false, "{}", r[0]);
    assert_eq!(
        r[1]["structured"]["code"], "allowance_over_period_budget",
        "{}",
        r[1]
    );
    assert_eq!(
        devnet.musd(1),
        owner_before - 750_000,
        "only the first one spent"
    );
    assert_eq!(
        r_status(&out, 2),
        "finalized",
        "the provider delivers: {out}"
    );
    let provider_before = devnet.musd(7);
    let done = client(
        &["--stdio", &stdio],
        "auto",
        json!([["complete_job", {"job_id": 1}], ["job", {"job_id": 1}]]),
    );
    assert_eq!(r_status(&done, 0), "finalized", "{done}");
    assert_eq!(
        done["results"][1]["structured"]["status"], "completed",
        "{done}"
    );
    assert_eq!(
        devnet.musd(7),
        provider_before + 1_000_000,
        "the escrow paid the provider"
    );
    // The node indexes the payout as a payment of the provider, and the history of both.
    let paid = devnet.http_get("/v1/payments?kind=job_paid");
    assert_eq!(paid["total"], 1, "{paid}");
    let p = &paid["payments"][0];
    assert_eq!(p["job_id"], 1);
    assert_eq!(p["amount"], "1000000");
    assert_eq!(p["payee"], dev_address(7).to_string().to_lowercase(), "{p}");
    assert_eq!(p["payer"], dev_address(3).to_string().to_lowercase(), "{p}");
    assert_eq!(paid["paid_total"], "1000000");
    let history = devnet.http_get(&format!("/v1/accounts/{}/txs", dev_address(7)));
    assert!(
        history["txs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["type"] == "SubmitJob"),
        "{history}"
    );

    // Streamable HTTP, 2025-11-25 with initialize, no key.
    let dir = devnet.dir();
    let (mut proc, args) = start_mycel(
        dir.path(),
        "mcp-http",
        "mycel MCP server on",
        "warn",
        || {
            let port = free_port();
            vec![
                "mcp".into(),
                "--rpc".into(),
                devnet.rpc().into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
            ]
        },
    );
    let url = format!("http://{}/mcp", args[4]);
    let out = client(
        &["--url", &url],
        "legacy",
        json!([
            ["status", {}],
            ["find_agents", {}],
            ["transfer", {"to": recipient, "amount": "1"}],
        ]),
    );
    assert_eq!(out["protocol_version"], "2025-11-25");
    let r = out["results"].as_array().unwrap();
    assert_eq!(r[0]["structured"]["chain_id"], 1337);
    assert_eq!(r[1]["structured"]["total"], 0);
    assert_eq!(r[2]["structured"]["code"], "no_key", "{}", r[2]);

    // A browser page from another origin is refused.
    let status = mycel_testkit::http::block_on(async {
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("origin", "http://evil.example")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#)
            .send()
            .await
            .expect("POST")
            .status()
            .as_u16()
    });
    assert_eq!(status, 403);
    // An oversized call is refused before it is read whole (mycel-http's body cap: 413). The
    // server may close the connection while the client is still writing the body: then the
    // client sees the connection end instead of the 413. Either way the server goes on serving.
    let huge = "x".repeat(mycel_http::ServeLimits::DEFAULT_MAX_BODY_BYTES + 1);
    let answered = mycel_testkit::http::block_on(async {
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"chat","arguments":{{"prompt":"{huge}"}}}}}}"#
            ))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    match answered {
        Ok(status) => assert_eq!(status, 413),
        Err(e) => assert!(e.is_request(), "not a refusal of the body: {e}"),
    }

    // The npm SDK (@modelcontextprotocol/sdk, 2025-11-25) over HTTP and over stdio.
    for server in [
        vec!["--url".to_string(), url.clone()],
        vec!["--stdio".to_string(), stdio.clone()],
    ] {
        let out = npm_client(&server, json!([["status", {}], ["no_such_tool", {}]]));
        let names: Vec<&str> = out["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, TOOLS, "{server:?}");
        assert_eq!(out["results"][0]["structured"]["chain_id"], 1337, "{out}");
        assert!(
            out["results"][1]["exception"]
                .as_str()
                .is_some_and(|e| e.contains("not found")),
            "{out}"
        );
    }
    if let Some(version) = out_http_version(&url) {
        assert_eq!(version, "2025-11-25");
    }
    let _ = proc.terminate(std::time::Duration::from_secs(5));
}

fn npm_client(server: &[String], calls: Value) -> Value {
    mcp_npm(server, calls)
}

/// The protocol version the npm client negotiated over HTTP.
fn out_http_version(url: &str) -> Option<String> {
    let out = npm_client(&["--url".to_string(), url.to_string()], json!([]));
    out["protocol_version"].as_str().map(str::to_string)
}
