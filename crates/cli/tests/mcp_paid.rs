//! Paid MCP tools (x402's MCP transport) end to end: `mycel mcp --paid-tools` sells one of its
//! own tools and the tools of a third-party MCP server (PyPI `mcp`'s MCPServer, launched as its
//! upstream), settled by a gateway's facilitator on a real devnet.
//!
//! - An independent client — the npm MCP SDK paying with the official x402 SDK (@x402/core,
//!   @x402/evm), written from x402's MCP transport spec — gets the PaymentRequired, pays, and
//!   the chain shows each settlement; the same payment replayed is refused and not charged twice.
//! - mycel's own client side: another `mycel mcp`, driven by the Python MCP client, pays for a
//!   tool with `call_paid_tool`, and refuses (nothing signed) a price over its cap.
//! - A tool not in the price list is not offered; a price list naming a missing tool is refused
//!   at start.

use mycel_testkit::interop::{interop_script, mcp_npm, mcp_python, python};
use mycel_testkit::process::start_mycel;
use mycel_testkit::{dev_address, free_port, Devnet};
use serde_json::{json, Value};

const FACILITATOR: u32 = 9;
const SELLER: u32 = 6;
const BUYER: u32 = 3;

fn hex_key(index: u32) -> String {
    format!(
        "0x{}",
        hex::encode(mycel_testkit::dev_signer(index).to_bytes())
    )
}

#[test]
fn paid_tools_over_mcp_are_paid_settled_once_and_refused_unpaid() {
    let devnet = Devnet::start();
    let dir = devnet.dir();
    let (_gateway, banner) = {
        let (proc, _) = start_mycel(dir.path(), "gateway", "facilitator http://", "warn", || {
            vec![
                "gateway".into(),
                "--upstream".into(),
                "http://127.0.0.1:1".into(),
                "--rpc".into(),
                devnet.rpc().into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--dev-account".into(),
                FACILITATOR.to_string(),
                "--pay-to".into(),
                dev_address(FACILITATOR).to_string(),
                "--agents-refresh".into(),
                "1".into(),
            ]
        });
        let log = proc.log();
        (proc, log)
    };
    let facilitator = banner
        .split_whitespace()
        .find_map(|w| w.strip_suffix("/verify"))
        .filter(|w| w.starts_with("http://"))
        .expect("the facilitator's URL in the gateway's banner")
        .to_string();

    let calls_log = dir.join("upstream-calls.log");
    let prices = dir.join("prices.json");
    let upstream = vec![
        "env".to_string(),
        format!("CALLS_LOG={}", calls_log.display()),
        python(),
        interop_script("mcp_tool_server.py").display().to_string(),
    ];
    std::fs::write(
        &prices,
        json!({
            "pay_to": dev_address(SELLER).to_string(),
            "facilitator": facilitator,
            "upstream": upstream,
            "tools": {"status": "0.001", "word_count": "0.002", "shout": "0"},
        })
        .to_string(),
    )
    .unwrap();
    let (mut seller, args) = start_mycel(
        dir.path(),
        "mcp-seller",
        "mycel MCP server on",
        "warn",
        || {
            vec![
                "mcp".into(),
                "--rpc".into(),
                devnet.rpc().into(),
                "--paid-tools".into(),
                prices.display().to_string(),
                "--listen".into(),
                format!("127.0.0.1:{}", free_port()),
            ]
        },
    );
    let url = format!("http://{}/mcp", args[6]);
    let seller_before = devnet.musd(SELLER);
    let payer = 2;
    let payer_before = devnet.musd(payer);

    // The npm MCP SDK + the x402 SDK: unpaid, paid, replayed, paid upstream, free upstream.
    let out = mcp_npm(
        &["--url".into(), url.clone(), "--pay".into(), hex_key(payer)],
        json!([
            ["status", {}],
            ["status", {}, {"replay": true}],
            ["word_count", {"text": "three small words"}],
            ["shout", {"text": "free"}],
        ]),
    );
    let names: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"word_count") && names.contains(&"shout"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"secret"),
        "unpriced upstream tools are not offered"
    );
    let status_tool = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "status")
        .unwrap();
    assert!(
        status_tool["description"]
            .as_str()
            .unwrap()
            .contains("Paid: 0.001 mUSD a call"),
        "{status_tool}"
    );
    let r = out["results"].as_array().unwrap();
    // Unpaid: the PaymentRequired, in structuredContent and as the same JSON in the text.
    let asked = &r[0]["asked"];
    assert_eq!(asked["x402Version"], 2, "{}", r[0]);
    assert_eq!(asked["resource"]["url"], "mcp://tool/status");
    assert_eq!(asked["accepts"][0]["scheme"], "exact");
    assert_eq!(asked["accepts"][0]["amount"], "1000");
    assert_eq!(asked["accepts"][0]["network"], "eip155:1337");
    assert_eq!(
        asked["accepts"][0]["payTo"],
        dev_address(SELLER).to_checksum(None)
    );
    // Paid: the tool's answer and the settlement.
    assert_eq!(r[0]["isError"], false, "{}", r[0]);
    assert_eq!(r[0]["structured"]["chain_id"], 1337);
    let settled = &r[0]["paymentResponse"];
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["network"], "eip155:1337");
    let tx = settled["transaction"].as_str().unwrap();
    assert_eq!(
        devnet.http_get(&format!("/v1/txs/{tx}"))["status"],
        "finalized"
    );
    // Replayed: refused with the reason, not run, not charged.
    assert_eq!(r[1]["isError"], true, "{}", r[1]);
    assert!(
        r[1]["structured"]["error"]
            .as_str()
            .unwrap()
            .contains("nonce_already_used"),
        "{}",
        r[1]
    );
    assert_eq!(r[1]["paymentResponse"], Value::Null);
    // The upstream's tools: one paid, one free.
    assert_eq!(r[2]["isError"], false, "{}", r[2]);
    assert!(
        r[2]["text"].as_str().unwrap().contains("3 words"),
        "{}",
        r[2]
    );
    assert_eq!(r[2]["paymentResponse"]["success"], true, "{}", r[2]);
    assert_eq!(r[2]["asked"]["accepts"][0]["amount"], "2000");
    assert_eq!(r[3]["text"], "FREE", "{}", r[3]);
    assert_eq!(r[3]["asked"], Value::Null);

    assert_eq!(devnet.musd(SELLER), seller_before + 3_000);
    assert_eq!(devnet.musd(payer), payer_before - 3_000);
    let ran = std::fs::read_to_string(&calls_log).unwrap_or_default();
    assert_eq!(
        ran.lines().collect::<Vec<_>>(),
        ["word_count", "shout"],
        "the paid upstream tool ran once, after its payment"
    );

    // Discovery: the seller lists its paid tools; registered as an agent with an MCP service,
    // the gateway's catalogue lists them too, filtered on the server.
    let own = mycel_testkit::http::get_json(&format!("http://{}/discovery/resources", args[6]));
    let tools: Vec<&str> = own["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["tool"].as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        ["status", "word_count"],
        "free tools are not sold: {own}"
    );
    assert_eq!(own["items"][0]["resource"], url);
    assert_eq!(own["items"][0]["accepts"][0]["amount"], "1000");
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(
        site.join("words.json"),
        json!({"type": mycel_types::api::AGENT_REGISTRATION_TYPE, "name": "words",
               "description": "counts words, per call", "image": "",
               "services": [{"name": "MCP", "endpoint": url}], "x402Support": true,
               "active": true, "registrations": [], "supportedTrust": ["reputation"]})
        .to_string(),
    )
    .unwrap();
    let site_port = free_port();
    let mut server = std::process::Command::new(python());
    server.args([
        "-m",
        "http.server",
        &site_port.to_string(),
        "--bind",
        "127.0.0.1",
        "--directory",
        site.to_str().unwrap(),
    ]);
    let mut site_proc = mycel_testkit::Proc::spawn("site", server, &dir.join("site.log"));
    site_proc.wait_for_log("Serving HTTP", std::time::Duration::from_secs(20));
    devnet.ok(&[
        "agent",
        "register",
        "--uri",
        &format!("http://127.0.0.1:{site_port}/words.json"),
        "--dev-account",
        &SELLER.to_string(),
    ]);
    let gateway = facilitator.clone();
    let catalogue = |query: &str| {
        mycel_testkit::http::get_json(&format!("{gateway}/discovery/resources{query}"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while catalogue("?type=mcp")["pagination"]["total"] != 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway's catalogue does not list the agent's MCP tools: {}",
            catalogue("")
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let all = catalogue("?type=mcp");
    assert_eq!(all["x402Version"], 2);
    assert_eq!(all["items"][0]["metadata"]["service"], "MCP", "{all}");
    assert_eq!(all["items"][0]["metadata"]["agentId"], 1, "{all}");
    let cheap = catalogue("?type=mcp&maxPrice=1500");
    assert_eq!(cheap["pagination"]["total"], 1, "{cheap}");
    assert_eq!(cheap["items"][0]["metadata"]["tool"], "status");
    let seller_address = dev_address(SELLER).to_string().to_lowercase();
    let found = catalogue(&format!("?payTo={seller_address}&q=words"));
    assert_eq!(found["pagination"]["total"], 1, "{found}");
    assert_eq!(found["items"][0]["metadata"]["tool"], "word_count");
    let paged = catalogue("?type=mcp&limit=1&offset=2");
    assert_eq!(paged["items"].as_array().unwrap().len(), 1);
    assert_eq!(paged["pagination"]["total"], 3);
    let refused = mycel_testkit::http::block_on(async {
        reqwest::get(format!("{gateway}/discovery/resources?limit=1000"))
            .await
            .expect("GET")
            .status()
            .as_u16()
    });
    assert_eq!(refused, 400);
    drop(site_proc);

    // mycel's client side: another mycel mcp pays with call_paid_tool, within its cap.
    let buyer_before = devnet.musd(BUYER);
    let stdio = json!([
        mycel_testkit::mycel::bin().display().to_string(),
        "mcp",
        "--rpc",
        devnet.rpc(),
        "--dev-account",
        BUYER.to_string(),
    ])
    .to_string();
    let out = mcp_python(
        &["--stdio", &stdio],
        "auto",
        json!([
            ["call_paid_tool", {"server": url, "tool": "word_count",
                                "arguments": {"text": "a b c d"}, "max_price": "0.01"}],
            ["call_paid_tool", {"server": url, "tool": "word_count",
                                "arguments": {"text": "a b"}, "max_price": "0.001"}],
            ["call_paid_tool", {"server": url, "tool": "shout", "arguments": {"text": "hi"}}],
        ]),
    );
    let r = out["results"].as_array().unwrap();
    let paid = &r[0]["structured"];
    assert_eq!(r[0]["is_error"], false, "{}", r[0]);
    assert_eq!(paid["paid"], true);
    assert_eq!(paid["price_musd"], "0.002");
    assert_eq!(paid["settlement"]["success"], true, "{paid}");
    assert!(paid["result"]["text"].as_str().unwrap().contains("4 words"));
    assert_eq!(
        r[0]["progress"].as_array().unwrap().len(),
        3,
        "connect, pay, answered: {}",
        r[0]
    );
    assert_eq!(r[1]["structured"]["code"], "over_max_price", "{}", r[1]);
    assert_eq!(r[2]["structured"]["paid"], false, "{}", r[2]);
    assert_eq!(r[2]["structured"]["result"]["text"], "HI");
    assert_eq!(devnet.musd(BUYER), buyer_before - 2_000);
    assert_eq!(devnet.musd(SELLER), seller_before + 5_000);
    // The node indexes each settlement as an x402 payment to the seller.
    let seller_address = dev_address(SELLER).to_string();
    let settled = devnet.http_get(&format!("/v1/payments?kind=x402&address={seller_address}"));
    assert_eq!(settled["total"], 3, "{settled}");
    assert_eq!(settled["paid_total"], "5000", "{settled}");
    let amounts: Vec<&str> = settled["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, ["2000", "2000", "1000"], "newest first");
    let page = devnet.http_get(&format!(
        "/v1/payments?kind=x402&address={seller_address}&limit=2"
    ));
    let next = page["next_before"].as_u64().expect("a next page");
    let rest = devnet.http_get(&format!(
        "/v1/payments?kind=x402&address={seller_address}&limit=2&before={next}"
    ));
    assert_eq!(rest["payments"].as_array().unwrap().len(), 1, "{rest}");
    assert!(rest["next_before"].is_null());
    let _ = seller.terminate(std::time::Duration::from_secs(5));

    // A price list naming a tool that is not there: refused at start, with the name.
    let bad = dir.join("bad-prices.json");
    std::fs::write(
        &bad,
        json!({"pay_to": dev_address(SELLER).to_string(), "facilitator": facilitator,
               "tools": {"nope": "0.01"}})
        .to_string(),
    )
    .unwrap();
    let out = devnet.mycel(&[
        "mcp",
        "--paid-tools",
        bad.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("paid tool nope: no such tool"), "{stderr}");
}
