//! `mycel up` with its inference subnet (no `--chain-only`): the real binary starts the chain,
//! creates subnet 1, two miners, a validator and the x402 gateway. A paid request through the
//! gateway is answered by a miner with a receipt; the miners are in the metagraph with their
//! endpoints; the validator scores them and emission reaches them.

use std::process::Output;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use mycel_testkit::http::get_json;
use mycel_testkit::{dev_address, Devnet, DevnetOptions};
use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mycel(args: &[&str]) -> Output {
    mycel_testkit::mycel::run(args)
}

#[test]
fn up_starts_an_inference_subnet_behind_a_paid_gateway() {
    let started = Instant::now();
    let mut up = Devnet::start_with(DevnetOptions::with_subnet());
    let dir = up.dir();
    let banner = up.log();
    // The banner gives the URLs and copy-paste examples.
    for needle in [
        "miner      http://127.0.0.1:",
        "validator  http://127.0.0.1:",
        &format!("gateway    {}/v1", up.gateway()),
        "node interop/x402-client/pay.mjs",
        "from openai import OpenAI",
        "mycel chat",
        "curl -s",
        "mycel mcp --rpc http://127.0.0.1:",
        "/discovery/resources",
        "/explorer   (open it in a browser)",
    ] {
        assert!(
            banner.contains(needle),
            "banner lacks {needle:?}:\n{banner}"
        );
    }

    // Both miners are in the metagraph with their endpoints.
    let graph = get_json(&format!("{}/v1/subnets/1/metagraph", up.rpc()));
    for i in [1u32, 2] {
        let neuron = graph["neurons"]
            .as_array()
            .expect("neurons")
            .iter()
            .find(|n| {
                n["hotkey"].as_str().and_then(|h| h.parse::<Address>().ok()) == Some(dev_address(i))
            })
            .unwrap_or_else(|| panic!("miner {i} not in the metagraph: {graph:#}"))
            .clone();
        assert_eq!(neuron["endpoint"]["host"], "127.0.0.1", "{neuron:#}");
        assert!(neuron["endpoint"]["port"].as_u64().expect("port") > 0);
    }

    // The gateway and both miners are ERC-8004 agents, each serving a registration file that
    // lists its own agent id.
    let agents = check_agents(&up);
    assert!(banner.contains("agents     #"), "{banner}");

    // A paid request through the gateway: dev account 5 pays, a miner answers with a receipt.
    let before = get_json(&format!("{}/v1/accounts/{}", up.rpc(), dev_address(5)));
    let out = paid_chat(&up, "What is the capital of France?");
    let answer: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let answer_file = dir.path().join("answer.json");
    std::fs::write(&answer_file, serde_json::to_vec(&answer).expect("json")).expect("write");
    let receipt_text = answer.to_string();
    assert!(receipt_text.contains("InferenceReceipt"), "{answer:#}");
    let verified = mycel(&[
        "receipt",
        "verify",
        answer_file.to_str().expect("utf-8"),
        "--json",
    ]);
    let verified_text = text(&verified.stdout);
    assert!(
        verified.status.success(),
        "{verified_text}\n{}",
        text(&verified.stderr)
    );
    let report: Value = serde_json::from_str(&verified_text).expect("verify --json");
    let served_by = report["miner"]
        .as_str()
        .and_then(|m| m.parse::<Address>().ok());
    assert!(
        served_by == Some(dev_address(1)) || served_by == Some(dev_address(2)),
        "{report:#}"
    );
    // The payment settled on chain: the payer has less mUSD.
    let after = get_json(&format!("{}/v1/accounts/{}", up.rpc(), dev_address(5)));
    let musd = |v: &Value| {
        v["musd"]
            .as_str()
            .and_then(|m| m.parse::<u128>().ok())
            .expect("musd")
    };
    assert!(
        musd(&after) < musd(&before),
        "before {before:#}\nafter {after:#}"
    );

    // The validator scores both miners and emission reaches them.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let graph = get_json(&format!("{}/v1/subnets/1/metagraph", up.rpc()));
        let paid = [1u32, 2].iter().all(|&i| {
            graph["neurons"]
                .as_array()
                .expect("neurons")
                .iter()
                .any(|n| {
                    n["hotkey"].as_str().and_then(|h| h.parse::<Address>().ok())
                        == Some(dev_address(i))
                        && n["incentive"].as_u64().unwrap_or(0) > 0
                })
        });
        if paid {
            break;
        }
        let validator_log = std::fs::read_to_string(dir.path().join("devnet/subnet/validator.log"))
            .unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "no incentive for the miners within 180 s: {graph:#}\nvalidator log:\n{validator_log}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    mcp_assistant(&up);

    // The gateway's catalogue lists its completions per model, priced for the least a call
    // costs, paid to the gateway.
    let listed = get_json(&format!("{}/discovery/resources?type=http", up.gateway()));
    let chat = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| {
            i["resource"]
                .as_str()
                .unwrap_or_default()
                .ends_with("/v1/chat/completions")
        })
        .unwrap_or_else(|| panic!("no chat completions in the catalogue: {listed:#}"));
    assert!(
        !chat["metadata"]["model"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{chat:#}"
    );
    assert_eq!(chat["accepts"][0]["scheme"], "exact", "{chat:#}");
    assert_eq!(chat["accepts"][0]["network"], "eip155:1337", "{chat:#}");
    assert!(
        chat["metadata"]["pricing"]["per_1k_tokens"].is_string(),
        "{chat:#}"
    );

    // The roles run inside `mycel up` (no child processes), each logging to its own file; the
    // console keeps the node's lines and the banners.
    let pid = up.proc().id();
    assert_eq!(
        children_of(pid),
        Vec::<u32>::new(),
        "mycel up has child processes"
    );
    let subnet_dir = up.data_dir().join("subnet");
    for (file, line) in [
        ("miner-1.log", "mycel miner serving http://127.0.0.1:"),
        ("miner-2.log", "mycel miner serving http://127.0.0.1:"),
        ("validator.log", "mycel validator on subnet 1"),
        (
            "validator.log",
            "INFO mycel_subnet::validator: miner checked",
        ),
        ("gateway.log", "mycel gateway is running"),
    ] {
        let text = std::fs::read_to_string(subnet_dir.join(file)).unwrap_or_default();
        assert!(text.contains(line), "{file} lacks {line:?}:\n{text}");
    }
    let console = up.log();
    for role_line in ["mycel_subnet::validator", "mycel miner serving"] {
        assert!(
            !console.contains(role_line),
            "the console shows a role's log line {role_line:?}:\n{console}"
        );
    }

    // Stopped (SIGTERM, as Ctrl-C), everything stops with it; started again on the same data
    // directory, the subnet comes back and a paid request is answered again.
    let status = up.stop().expect("mycel up stops on SIGTERM");
    assert!(status.success(), "{status}\n{}", up.log_tail());
    up.restart();
    paid_chat(&up, "Hi");
    // Restarted on new ports, the same agents point at the new addresses.
    assert_eq!(check_agents(&up), agents);
    eprintln!("up_subnet test took {:?}", started.elapsed());
}

/// An assistant over `mycel mcp` (tests/interop/mcp_assistant.py, the Python MCP client) with dev
/// account 6's key: finds the miners, pays the gateway for an answer over x402, checks the
/// receipt came from one of them, then pays a second answer from a payment session and closes it.
fn mcp_assistant(up: &Devnet) {
    let payer = 6;
    let before = up.account(dev_address(payer));
    let command = serde_json::json!([
        mycel_testkit::mycel::bin().display().to_string(),
        "mcp",
        "--rpc",
        up.rpc(),
        "--gateway",
        up.gateway(),
        "--dev-account",
        payer.to_string(),
    ]);
    let out = std::process::Command::new(mycel_testkit::interop::python())
        .arg(mycel_testkit::interop::interop_script("mcp_assistant.py"))
        .args(["--stdio", &command.to_string()])
        .output()
        .expect("python3 tests/interop/mcp_assistant.py");
    assert!(
        out.status.success(),
        "mcp_assistant.py: {}\n{}\nup log:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        up.log_tail()
    );
    let steps: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        steps["miners"].as_array().map(Vec::len),
        Some(2),
        "{steps:#}"
    );
    let chat = &steps["chat"]["structured"];
    assert!(
        !chat["answer"].as_str().unwrap_or_default().is_empty(),
        "{chat:#}"
    );
    assert_eq!(chat["verification"]["valid"], true, "{chat:#}");
    assert_eq!(chat["settlement"]["success"], true, "{chat:#}");
    assert_eq!(steps["signed_by_a_miner"], true, "{steps:#}");
    assert_eq!(steps["verify_receipt"]["structured"]["valid"], true);
    // Progress: price asked, paying, answered.
    assert_eq!(
        steps["chat"]["progress"].as_array().map(Vec::len),
        Some(3),
        "{steps:#}"
    );
    let session = &steps["session_chat"]["structured"];
    assert_eq!(
        session["session"]["channel"], steps["open_session"]["structured"]["channel"],
        "{session:#}"
    );
    assert_eq!(
        session["authorization_nonce"],
        Value::Null,
        "paid by voucher"
    );
    assert_eq!(
        session["session"]["total_musd"], session["price_musd"],
        "the first voucher of the session is its price: {session:#}"
    );
    assert_eq!(steps["close_session"]["structured"]["status"], "finalized");
    assert!(
        steps["session"]["structured"]["withdraw_at_s"].is_null(),
        "read before closing"
    );
    // The exact payment and the session's deposit left the payer.
    let after = up.account(dev_address(payer));
    let musd = |v: &Value| v["musd"].as_str().unwrap().parse::<u128>().unwrap();
    let price: u128 = mycel_types::parse_amount(
        chat["price_musd"].as_str().unwrap(),
        mycel_types::Token::Musd,
    )
    .unwrap();
    assert_eq!(
        musd(&before) - musd(&after),
        price + 500_000,
        "{before} {after}"
    );
}

/// The devnet's agents (the gateway's, then the miners'), after checking that each registration
/// file is served where the chain says, names the service's real API and lists the agent.
fn check_agents(up: &Devnet) -> Vec<u64> {
    let mut ids = Vec::new();
    for (key, x402) in [(8u32, true), (1, false), (2, false)] {
        let list = get_json(&format!(
            "{}/v1/agents?owner={}",
            up.rpc(),
            dev_address(key)
        ));
        let agent = &list["agents"][0];
        let id = agent["agent_id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no agent of dev {key}: {list:#}"));
        let uri = agent["uri"].as_str().expect("uri");
        assert!(
            uri.ends_with("/.well-known/agent-registration.json"),
            "{uri}"
        );
        let file = get_json(uri);
        assert_eq!(
            file["type"],
            "https://eips.ethereum.org/EIPS/eip-8004#registration-v1"
        );
        assert_eq!(file["x402Support"], x402, "{file:#}");
        assert_eq!(file["registrations"][0]["agentId"], id, "{file:#}");
        let base = uri.trim_end_matches("/.well-known/agent-registration.json");
        assert_eq!(
            file["services"][0]["endpoint"],
            format!("{base}/v1/chat/completions"),
            "{file:#}"
        );
        ids.push(id);
    }
    ids
}

/// `mycel chat PROMPT --json` through the devnet's gateway, paid by dev account 5; panics with
/// the devnet's log if it fails.
fn paid_chat(up: &Devnet, prompt: &str) -> Output {
    let out = mycel(&[
        "chat",
        prompt,
        "--gateway",
        up.gateway(),
        "--dev-account",
        "5",
        "--max-tokens",
        "8",
        "--max",
        "0.05",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "mycel chat {prompt:?} failed\nstdout: {}\nstderr: {}\nup log:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        up.log()
    );
    out
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            children.push(child);
        }
    }
    children
}
