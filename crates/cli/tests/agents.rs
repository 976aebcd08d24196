//! Agents end to end on a real devnet (`mycel up --chain-only`), through the CLI and the node
//! API: an agent registers, sets a verified wallet with the wallet's own consent, a client pays
//! that wallet with a real EIP-3009 authorization and leaves feedback citing it, another client
//! leaves unpaid feedback; summaries (all, verified and weighted) and the feedback list read back;
//! the agent answers a review, a review is revoked; a self-review, a feedback citing a payment that
//! was never made and bad API queries are refused with their codes; the agent changes owner and
//! loses its wallet; its history lists what happened, in order.

use alloy_primitives::{Address, B256, U256};
use alloy_signer::SignerSync;
use mycel_client::{Outcome, SendOptions};
use mycel_testkit::mycel::assert_fails_with;
use mycel_testkit::Devnet;
use mycel_types::{eip3009, keys::dev_signer, TxKind};
use serde_json::Value;

const OWNER: u32 = 1;
const PAYING_CLIENT: u32 = 2;
const OTHER_CLIENT: u32 = 3;
const WALLET: u32 = 4;
const NEW_OWNER: u32 = 5;

fn addr(i: u32) -> Address {
    dev_signer(i).unwrap().address()
}

fn dev(i: u32) -> String {
    i.to_string()
}

/// GET `path` on the node: the status and the JSON body.
fn get(devnet: &Devnet, path: &str) -> (u16, Value) {
    let url = format!("{}{path}", devnet.rpc());
    mycel_testkit::http::block_on(async {
        let response = reqwest::get(&url).await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON"))
    })
}

/// `payer` pays `to` `value` mUSD base units with an EIP-3009 authorization of `nonce`, submitted
/// by dev account 7 as a facilitator would.
fn pay(devnet: &Devnet, payer: u32, to: Address, value: u128, nonce: B256) {
    let payer = dev_signer(payer).unwrap();
    let client = devnet.client();
    let chain_id = client.chain_params().unwrap().chain_id;
    let now = client.latest_block().unwrap().timestamp_ms / 1000;
    let auth = eip3009::TransferWithAuthorization {
        from: payer.address(),
        to,
        value: U256::from(value),
        validAfter: U256::ZERO,
        validBefore: U256::from(now + 600),
        nonce,
    };
    let sig = payer
        .sign_hash_sync(&auth.signing_hash(&eip3009::musd_domain(chain_id)))
        .unwrap();
    let outcome = client
        .send_and_wait(&dev_signer(7).unwrap(), &SendOptions::default(), |f| {
            TxKind::TransferWithAuthorization(mycel_types::TransferWithAuthorization {
                from: f.from,
                payer: auth.from,
                to: auth.to,
                value: auth.value,
                validAfter: auth.validAfter,
                validBefore: auth.validBefore,
                authorizationNonce: auth.nonce,
                signature: sig.as_bytes().to_vec().into(),
                nonce: f.nonce,
                fee: f.fee,
            })
        })
        .unwrap();
    assert!(matches!(outcome, Outcome::Applied(_)), "{outcome:?}");
}

#[test]
fn an_agent_registers_is_paid_rated_answered_and_handed_over() {
    let devnet = Devnet::start();

    // Register, with metadata.
    let id = devnet.ok(&[
        "agent",
        "register",
        "--uri",
        "https://agent.example/.well-known/agent-registration.json",
        "--meta",
        "model=smollm2-135m",
        "--dev-account",
        &dev(OWNER),
    ]);
    assert_eq!(id.trim(), "1");
    let agent = devnet.json(&["agent", "show", "1"]);
    assert_eq!(agent["owner"], addr(OWNER).to_checksum(None));
    assert_eq!(agent["wallet"], addr(OWNER).to_string().to_lowercase());
    assert_eq!(agent["metadata"]["model"], "0x736d6f6c6c6d322d3133356d");
    assert_eq!(
        agent["agent_registry"],
        "eip155:1337:0x0000000000000000000000000000000000008004"
    );

    // The wallet consents; the owner sets it.
    let consent = devnet.ok(&[
        "agent",
        "consent",
        "--agent",
        "1",
        "--owner",
        &addr(OWNER).to_string(),
        "--dev-account",
        &dev(WALLET),
    ]);
    devnet.ok(&[
        "agent",
        "wallet",
        "--agent",
        "1",
        "--consent",
        &consent,
        "--dev-account",
        &dev(OWNER),
    ]);
    let agent = devnet.json(&["agent", "show", "1"]);
    assert_eq!(agent["wallet"], addr(WALLET).to_string().to_lowercase());

    // A self-review and a review citing a payment never made are refused on entry.
    let out = devnet.mycel(&[
        "agent",
        "feedback",
        "--agent",
        "1",
        "--value",
        "100",
        "--dev-account",
        &dev(OWNER),
    ]);
    assert_fails_with(&out, "feedback_self");
    let paid_nonce = B256::repeat_byte(0x42);
    let out = devnet.mycel(&[
        "agent",
        "feedback",
        "--agent",
        "1",
        "--value",
        "90",
        "--payment-nonce",
        &paid_nonce.to_string(),
        "--dev-account",
        &dev(PAYING_CLIENT),
    ]);
    assert_fails_with(&out, "feedback_payment_unknown");

    // A real payment to the agent's wallet, then feedback citing it; and an unpaid review.
    pay(&devnet, PAYING_CLIENT, addr(WALLET), 500_000, paid_nonce);
    devnet.ok(&[
        "agent",
        "feedback",
        "--agent",
        "1",
        "--value",
        "90",
        "--tag1",
        "starred",
        "--payment-nonce",
        &paid_nonce.to_string(),
        "--dev-account",
        &dev(PAYING_CLIENT),
    ]);
    devnet.ok(&[
        "agent",
        "feedback",
        "--agent",
        "1",
        "--value",
        "49.5",
        "--tag1",
        "starred",
        "--dev-account",
        &dev(OTHER_CLIENT),
    ]);
    // The same payment cannot back a second review.
    let out = devnet.mycel(&[
        "agent",
        "feedback",
        "--agent",
        "1",
        "--value",
        "100",
        "--payment-nonce",
        &paid_nonce.to_string(),
        "--dev-account",
        &dev(PAYING_CLIENT),
    ]);
    assert_fails_with(&out, "feedback_payment_already_cited");

    let all = devnet.json(&["agent", "reputation", "1", "--tag1", "starred"]);
    assert_eq!(all["count"], 2);
    assert_eq!(all["average"], "69.75");
    let verified = devnet.json(&["agent", "reputation", "1", "--verified"]);
    assert_eq!(verified["count"], 1);
    assert_eq!(verified["average"], "90");
    assert_eq!(verified["paid_total"], "500000");
    let only_other = devnet.json(&[
        "agent",
        "reputation",
        "1",
        "--from",
        &addr(OTHER_CLIENT).to_string(),
    ]);
    assert_eq!(only_other["average"], "49.5");

    // The agent answers the unpaid review; its author revokes it.
    devnet.ok(&[
        "agent",
        "respond",
        "--agent",
        "1",
        "--client-address",
        &addr(OTHER_CLIENT).to_string(),
        "--index",
        "1",
        "--response-uri",
        "https://agent.example/replies/1",
        "--dev-account",
        &dev(OWNER),
    ]);
    devnet.ok(&[
        "agent",
        "revoke",
        "--agent",
        "1",
        "--index",
        "1",
        "--dev-account",
        &dev(OTHER_CLIENT),
    ]);
    let (status, list) = get(&devnet, "/v1/agents/1/feedback");
    assert_eq!(status, 200);
    let feedback = list["feedback"].as_array().unwrap();
    assert_eq!(feedback.len(), 2);
    assert_eq!(feedback[0]["paid"], "500000");
    assert_eq!(feedback[1]["revoked"], true);
    assert_eq!(
        feedback[1]["responses"][0]["response_uri"],
        "https://agent.example/replies/1"
    );
    let after = devnet.json(&["agent", "reputation", "1"]);
    assert_eq!(after["count"], 1);

    // The clients, in the order of their first feedback, with their last index.
    let (_, clients) = get(&devnet, "/v1/agents/1/clients");
    assert_eq!(
        clients["clients"][0]["client"],
        addr(PAYING_CLIENT).to_string().to_lowercase()
    );
    assert_eq!(clients["clients"][1]["last_index"], 1);

    // Pages: one item per page walks the same list.
    let (_, first) = get(&devnet, "/v1/agents/1/feedback?limit=1");
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let (_, second) = get(
        &devnet,
        &format!("/v1/agents/1/feedback?limit=1&cursor={cursor}"),
    );
    assert_eq!(second["feedback"][0], feedback[1]);
    assert!(second.get("next_cursor").is_none());

    // Bad queries get their codes.
    for (path, status, code) in [
        ("/v1/agents/abc", 400, "bad_agent_id"),
        ("/v1/agents/99", 404, "unknown_agent"),
        ("/v1/agents?limit=0", 400, "bad_query"),
        ("/v1/agents/1/feedback?cursor=zz", 400, "bad_query"),
        ("/v1/agents/1/reputation?verified=maybe", 400, "bad_query"),
        ("/v1/agents/1/reputation?clients=0x12", 400, "bad_address"),
    ] {
        let (got, body) = get(&devnet, path);
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}"
        );
    }
    let many = vec![addr(2).to_string(); 101].join(",");
    let (got, body) = get(&devnet, &format!("/v1/agents/1/reputation?clients={many}"));
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (400, Some("bad_query"))
    );

    // Handed over: the wallet is cleared, the old owner can no longer act.
    devnet.ok(&[
        "agent",
        "transfer",
        "--agent",
        "1",
        "--to",
        &addr(NEW_OWNER).to_string(),
        "--dev-account",
        &dev(OWNER),
    ]);
    let agent = devnet.json(&["agent", "show", "1"]);
    assert_eq!(agent["owner"], addr(NEW_OWNER).to_checksum(None));
    assert_eq!(agent["wallet"], Value::Null);
    let out = devnet.mycel(&[
        "agent",
        "set-uri",
        "--agent",
        "1",
        "--uri",
        "x",
        "--dev-account",
        &dev(OWNER),
    ]);
    assert_fails_with(&out, "agent_not_authorized");

    // The history, oldest first.
    let history = devnet.json(&["agent", "history", "1"]);
    let actions: Vec<&str> = history["txs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|tx| tx["events"].as_array().unwrap())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "registered",
            "metadata_set",
            "wallet_set",
            "feedback_given",
            "feedback_given",
            "response_appended",
            "feedback_revoked",
            "transferred",
            "wallet_set"
        ]
    );
    let list = devnet.json(&["agent", "list"]);
    assert_eq!(list["total"], 1);
}
