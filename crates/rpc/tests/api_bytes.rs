//! Every route of the node API, byte for byte: a one-validator node on loopback runs a scenario
//! that makes each route answer something non-trivial (transfers in MYC and mUSD, a subnet with
//! tuned hyperparameters, two neurons, weights, a stake, an unstake and an epoch, an EIP-3009
//! authorization, a payment channel opened, topped up, claimed from and closing), then the
//! answers — status, content type and body — are compared with `tests/api_bytes.txt`, the SSE
//! block event and the error bodies included.
//!
//! The scenario is deterministic: a fixed validator key (so a fixed genesis), dev accounts, fixed
//! salts and nonces, deterministic signatures, and every batch of transactions submitted right
//! after a block is finalized, so that it lands in the next block (1 s later). A run in which a
//! batch missed its block (a very slow machine) is started again from scratch. Only what depends
//! on the wall clock is masked: block hashes, timestamps and state roots (the root commits to
//! the block time) become `<block N hash>`, `<block N time>`, `<block N root>`, and the channel's
//! `withdraw_at_s` (block time + delay) becomes `<withdraw_at_s>`.
//!
//! Each answer is also read with its wire type ([`mycel_types::api`], what every client reads)
//! and written again: the same bytes come out.
//!
//! `MYCEL_BLESS=1 cargo nextest run -p mycel-rpc --test api_bytes` rewrites the expected file.

use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use commonware_runtime::{Runner as _, Supervisor as _};
use futures::StreamExt;
use mycel_chain::{start_node, validator_public_key, NodeConfig};
use mycel_testkit::free_port;
use mycel_types::{
    api, eip3009, keys::dev_signer, tx, ChannelVoucher, ClaimChannel, Genesis, OpenChannel,
    RequestChannelWithdraw, SignedTx, TopUpChannel, Transfer, TransferWithAuthorization, TxKind,
};
use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

const EXPECTED: &str = "tests/api_bytes.txt";
/// A fixed validator seed: the genesis (and so every hash that does not depend on time) is the
/// same in every run.
const VALIDATOR_SEED: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
const BLOCK_TIME_MS: u64 = 1_000;
const FEE: u64 = 10_000;
const MYC: u64 = 1_000_000_000;
const MUSD: u64 = 1_000_000;

fn node_config(dir: &std::path::Path) -> NodeConfig {
    let public = validator_public_key(VALIDATOR_SEED).expect("a valid seed");
    let genesis = Genesis::devnet(vec![public], 0).expect("genesis");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut config = NodeConfig::new(dir, genesis, VALIDATOR_SEED.into(), listen, vec![]);
    config.consensus.block_time_ms = BLOCK_TIME_MS;
    config.consensus.leader_timeout_ms = 3 * BLOCK_TIME_MS;
    config.consensus.certification_timeout_ms = 4 * BLOCK_TIME_MS;
    config
}

fn signer(i: u32) -> PrivateKeySigner {
    dev_signer(i).expect("dev key")
}

/// One HTTP exchange as recorded: request line, status and content type, body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// The answers of a run, in order, and the wall-clock values to mask.
#[derive(Default)]
struct Transcript {
    entries: Vec<String>,
}

impl Transcript {
    /// Records `answer` to `request`, after checking that its wire type reads it back.
    fn record(&mut self, request: &str, answer: &Answer) {
        reads_back(request, answer);
        self.entries.push(format!(
            "{request}\n{} {}\n{}\n",
            answer.status, answer.content_type, answer.body
        ));
    }
}

/// The wire type of `answer` ([`mycel_types::api`], what clients read) reads its body and writes
/// it again byte for byte (keys sorted, as the node writes them).
fn reads_back(request: &str, answer: &Answer) {
    fn same<T: serde::Serialize + serde::de::DeserializeOwned>(request: &str, body: &str) {
        let typed: T = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{request}: the wire type does not read {body}: {e}"));
        let again = serde_json::to_value(&typed)
            .expect("serializes")
            .to_string();
        assert_eq!(
            again, body,
            "{request}: the wire type writes it differently"
        );
    }
    let path = request
        .split_whitespace()
        .nth(1)
        .expect("a request line names a path");
    let body = answer.body.as_str();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if answer.status >= 400 {
        return same::<api::ErrorBody>(request, body);
    }
    match segments.as_slice() {
        ["health"] => assert_eq!(body, "ok"),
        ["v1", "txs", ..] => same::<api::TxStatus>(request, body),
        ["v1", "status"] => same::<api::Status>(request, body),
        ["v1", "genesis"] => {
            // The genesis document is written as it is (its own field order), not sorted.
            let genesis: Genesis = serde_json::from_str(body).expect("a genesis");
            assert_eq!(serde_json::to_string(&genesis).expect("serializes"), body);
        }
        ["v1", "blocks", _] => same::<api::Block>(request, body),
        ["v1", "subnets"] => same::<api::SubnetList>(request, body),
        ["v1", "subnets", _] => same::<api::Subnet>(request, body),
        ["v1", "subnets", _, "metagraph"] => same::<api::Metagraph>(request, body),
        ["v1", "pools"] => same::<api::Pools>(request, body),
        ["v1", "emission"] => same::<api::EmissionSchedule>(request, body),
        ["v1", "emission", "receipts", "latest"] => same::<api::EmissionReceipt>(request, body),
        ["v1", "stakes", _] => same::<api::Stakes>(request, body),
        ["v1", "accounts", _] => same::<api::Account>(request, body),
        ["v1", "musd"] => same::<api::Musd>(request, body),
        ["v1", "musd", "authorizations", _, _] => same::<api::AuthorizationState>(request, body),
        ["v1", "channels", _] => same::<api::Channel>(request, body),
        ["v1", "storage"] => same::<api::StorageInfo>(request, body),
        ["v1", "storage", "blobs"] => same::<api::BlobList>(request, body),
        ["v1", "storage", "blobs", _] => same::<api::BlobInfo>(request, body),
        other => panic!("{request}: no wire type for {other:?}"),
    }
}

/// The run went off its timeline (a batch missed its block): start again.
#[derive(Debug)]
struct OffTimeline(String);

struct Api {
    http: reqwest::Client,
    base: String,
    chain_id: u64,
}

impl Api {
    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("the node answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        let body = response.text().await.expect("a body");
        Answer {
            status,
            content_type,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post(&self, body: impl Into<reqwest::Body>, json: bool) -> Answer {
        let mut request = self.http.post(format!("{}/v1/txs", self.base)).body(body);
        if json {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        self.send(request).await
    }

    fn sign(&self, kind: TxKind, signer: &PrivateKeySigner) -> SignedTx {
        SignedTx::sign(kind, self.chain_id, signer).expect("signs")
    }

    /// Submits `tx` in its JSON form; panics unless the node accepted it.
    async fn submit(&self, tx: &SignedTx) -> Answer {
        let answer = self
            .post(serde_json::to_vec(&tx.to_json()).expect("json"), true)
            .await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        answer
    }

    async fn height(&self) -> u64 {
        let status: serde_json::Value =
            serde_json::from_str(&self.get("/v1/status").await.body).expect("json");
        status
            .get("height")
            .and_then(serde_json::Value::as_u64)
            .expect("a height")
    }

    /// Waits until the finalized height is exactly `height` (polling every 10 ms). Finding the
    /// chain already past it means the run is off its timeline.
    async fn await_height(&self, height: u64) -> Result<(), OffTimeline> {
        for _ in 0..2_000 {
            let now = self.height().await;
            if now == height {
                return Ok(());
            }
            if now > height {
                return Err(OffTimeline(format!(
                    "waited for height {height}, found {now}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the node never reached height {height}");
    }

    /// Waits until `tx` is finalized and checks it is in block `height`.
    async fn await_in_block(&self, tx: &SignedTx, height: u64) -> Result<(), OffTimeline> {
        let path = format!("/v1/txs/{}", tx.hash());
        for _ in 0..1_000 {
            let body: serde_json::Value =
                serde_json::from_str(&self.get(&path).await.body).expect("json");
            match body.get("status").and_then(serde_json::Value::as_str) {
                Some("finalized") => {
                    let got = body.get("height").and_then(serde_json::Value::as_u64);
                    return match got {
                        Some(h) if h == height => Ok(()),
                        _ => Err(OffTimeline(format!(
                            "{} landed in {got:?}, not {height}",
                            tx.kind.type_name()
                        ))),
                    };
                }
                Some("pending") => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => panic!("{} was not accepted: {body}", tx.kind.type_name()),
            }
        }
        panic!("{} was not finalized in time", tx.kind.type_name());
    }
}

/// The transactions of the scenario, in the block each lands in.
struct Scenario {
    /// Block 3: a subnet, transfers in MYC and mUSD, an EIP-3009 authorization, a channel.
    first: Vec<SignedTx>,
    /// Block 4: hyperparameters, a second neuron, a stake, a claim and a top-up.
    second: Vec<SignedTx>,
    /// Block 5: an endpoint, weights, a withdraw request.
    third: Vec<SignedTx>,
    /// Block 6: an unstake, filled at the end of the block that also runs the subnet's epoch.
    fourth: Vec<SignedTx>,
    /// Submitted while the answers are read: pending throughout.
    pending: SignedTx,
    channel: B256,
    authorization_nonce: B256,
}

fn scenario(api: &Api) -> Scenario {
    let fee = U256::from(FEE);
    let (owner, owner_hotkey, payer, payee, musd_sender, miner) = (
        signer(0),
        signer(1),
        signer(2),
        signer(3),
        signer(4),
        signer(5),
    );
    let (authorizer, facilitator, staker, receiver) = (signer(6), signer(7), signer(8), signer(9));
    let musd_token = mycel_types::Token::Musd.address();
    let myc_token = mycel_types::Token::Myc.address();

    let salt = B256::repeat_byte(0x22);
    let channel = mycel_types::channel_id(payer.address(), payee.address(), salt);
    let authorization_nonce = B256::repeat_byte(0x11);
    let authorization = eip3009::TransferWithAuthorization {
        from: authorizer.address(),
        to: staker.address(),
        value: U256::from(MUSD),
        validAfter: U256::ZERO,
        validBefore: U256::from(1u64 << 40),
        nonce: authorization_nonce,
    };
    let authorization_signature = authorizer
        .sign_hash_sync(&authorization.signing_hash(&eip3009::musd_domain(api.chain_id)))
        .expect("signs");
    let cumulative = U256::from(20_000u64);
    let voucher = ChannelVoucher {
        channel,
        cumulative,
    };
    let voucher_signature = payer
        .sign_hash_sync(&voucher.signing_hash(api.chain_id))
        .expect("signs");

    let first = vec![
        api.sign(
            TxKind::RegisterSubnet(tx::RegisterSubnet {
                from: owner.address(),
                hotkey: owner_hotkey.address(),
                maxLockCost: U256::from(1_000 * MYC),
                nonce: 0,
                fee,
            }),
            &owner,
        ),
        api.sign(
            TxKind::Transfer(Transfer {
                from: owner.address(),
                to: receiver.address(),
                token: myc_token,
                amount: U256::from(1_500_000_000u64),
                memo: Bytes::from_static(b"invoice 7"),
                nonce: 1,
                fee,
            }),
            &owner,
        ),
        api.sign(
            TxKind::Transfer(Transfer {
                from: musd_sender.address(),
                to: receiver.address(),
                token: musd_token,
                amount: U256::from(20 * MUSD),
                memo: Bytes::new(),
                nonce: 0,
                fee,
            }),
            &musd_sender,
        ),
        api.sign(
            TxKind::TransferWithAuthorization(TransferWithAuthorization {
                from: facilitator.address(),
                payer: authorization.from,
                to: authorization.to,
                value: authorization.value,
                validAfter: authorization.validAfter,
                validBefore: authorization.validBefore,
                authorizationNonce: authorization.nonce,
                signature: Bytes::from(authorization_signature.as_bytes().to_vec()),
                nonce: 0,
                fee,
            }),
            &facilitator,
        ),
        api.sign(
            TxKind::OpenChannel(OpenChannel {
                from: payer.address(),
                payee: payee.address(),
                amount: U256::from(5 * MUSD),
                withdrawDelay: 60,
                salt,
                nonce: 0,
                fee,
            }),
            &payer,
        ),
    ];
    let second = vec![
        api.sign(
            TxKind::SetSubnetParams(tx::SetSubnetParams {
                from: owner.address(),
                netuid: 1,
                names: vec!["tempo".into(), "weights_rate_limit".into()],
                values: vec![3, 0],
                nonce: 2,
                fee,
            }),
            &owner,
        ),
        api.sign(
            TxKind::BurnedRegister(tx::BurnedRegister {
                from: miner.address(),
                netuid: 1,
                hotkey: miner.address(),
                maxBurn: U256::from(10 * MYC),
                nonce: 0,
                fee,
            }),
            &miner,
        ),
        api.sign(
            TxKind::AddStake(tx::AddStake {
                from: staker.address(),
                hotkey: owner_hotkey.address(),
                netuid: 1,
                amount: U256::from(10 * MYC),
                limitPrice: U256::ZERO,
                nonce: 0,
                fee,
            }),
            &staker,
        ),
        api.sign(
            TxKind::ClaimChannel(ClaimChannel {
                from: payee.address(),
                channelId: channel,
                cumulative,
                voucherSignature: Bytes::from(voucher_signature.as_bytes().to_vec()),
                nonce: 0,
                fee,
            }),
            &payee,
        ),
        api.sign(
            TxKind::TopUpChannel(TopUpChannel {
                from: payer.address(),
                channelId: channel,
                amount: U256::from(MUSD),
                nonce: 1,
                fee,
            }),
            &payer,
        ),
    ];
    let third = vec![
        api.sign(
            TxKind::ServeEndpoint(tx::ServeEndpoint {
                from: miner.address(),
                netuid: 1,
                host: "127.0.0.1".into(),
                port: 8080,
                protocol: "http".into(),
                nonce: 1,
                fee,
            }),
            &miner,
        ),
        api.sign(
            TxKind::SetWeights(tx::SetWeights {
                from: owner_hotkey.address(),
                netuid: 1,
                uids: vec![1],
                values: vec![65535],
                versionKey: 0,
                nonce: 0,
                fee,
            }),
            &owner_hotkey,
        ),
        api.sign(
            TxKind::RequestChannelWithdraw(RequestChannelWithdraw {
                from: payer.address(),
                channelId: channel,
                nonce: 2,
                fee,
            }),
            &payer,
        ),
    ];
    let fourth = vec![api.sign(
        TxKind::RemoveStake(tx::RemoveStake {
            from: staker.address(),
            hotkey: owner_hotkey.address(),
            netuid: 1,
            amount: U256::from(MYC),
            limitPrice: U256::ZERO,
            nonce: 1,
            fee,
        }),
        &staker,
    )];
    let pending = api.sign(
        TxKind::Transfer(Transfer {
            from: receiver.address(),
            to: owner.address(),
            token: myc_token,
            amount: U256::from(MYC),
            memo: Bytes::new(),
            nonce: 0,
            fee,
        }),
        &receiver,
    );
    Scenario {
        first,
        second,
        third,
        fourth,
        pending,
        channel,
        authorization_nonce,
    }
}

/// Submits `txs` right after block `after` is finalized and checks they land in the next block.
async fn batch(
    api: &Api,
    transcript: &mut Transcript,
    after: u64,
    txs: &[SignedTx],
) -> Result<(), OffTimeline> {
    api.await_height(after).await?;
    for tx in txs {
        let answer = api.submit(tx).await;
        transcript.record(&format!("POST /v1/txs ({})", tx.kind.type_name()), &answer);
    }
    for tx in txs {
        api.await_in_block(tx, after + 1).await?;
    }
    Ok(())
}

/// The error bodies of requests the node refuses, and `/health`.
async fn refusals(api: &Api, transcript: &mut Transcript, scenario: &Scenario) {
    let zero = B256::ZERO;
    for path in [
        "/health".to_string(),
        "/nowhere".into(),
        "/v1/txs/0x1234".into(),
        format!("/v1/txs/{zero}"),
        "/v1/blocks/tip".into(),
        "/v1/blocks/999999".into(),
        "/v1/accounts/0x1234".into(),
        "/v1/stakes/alice".into(),
        "/v1/subnets/x".into(),
        "/v1/subnets/70000/metagraph".into(),
        "/v1/subnets/7".into(),
        "/v1/subnets/7/metagraph".into(),
        format!("/v1/musd/authorizations/0x12/{zero}"),
        format!("/v1/musd/authorizations/{}/0x12", Address::ZERO),
        "/v1/channels/0x12".into(),
        format!("/v1/channels/{zero}"),
    ] {
        let answer = api.get(&path).await;
        transcript.record(&format!("GET {path}"), &answer);
    }
    let posts: Vec<(&str, Vec<u8>, bool)> = vec![
        ("not JSON", b"{\"chainId\": ".to_vec(), true),
        ("no content type", b"{}".to_vec(), false),
        ("raw not a string", br#"{"raw": 5}"#.to_vec(), true),
        ("raw not hex", br#"{"raw": "0xzz"}"#.to_vec(), true),
        ("not a transaction", br#"{"chainId": 1337}"#.to_vec(), true),
        ("too large", vec![b' '; 3 << 20], true),
    ];
    for (what, body, json) in posts {
        let answer = api.post(body, json).await;
        transcript.record(&format!("POST /v1/txs ({what})"), &answer);
    }
    // Refused by the mempool: a used nonce, a known transaction, another chain, a low fee.
    let used = &scenario.first[0];
    let answer = api
        .post(serde_json::to_vec(&used.to_json()).expect("json"), true)
        .await;
    transcript.record("POST /v1/txs (a finalized transaction again)", &answer);
    let answer = api
        .post(
            serde_json::to_vec(&scenario.pending.to_json()).expect("json"),
            true,
        )
        .await;
    transcript.record("POST /v1/txs (a pending transaction again)", &answer);
    let receiver = signer(9);
    let transfer = |nonce: u64, fee: u64| {
        TxKind::Transfer(Transfer {
            from: receiver.address(),
            to: Address::ZERO,
            token: Address::ZERO,
            amount: U256::from(1u64),
            memo: Bytes::new(),
            nonce,
            fee: U256::from(fee),
        })
    };
    let other_chain = SignedTx::sign(transfer(1, FEE), 7, &receiver).expect("signs");
    let answer = api
        .post(
            serde_json::to_vec(&other_chain.to_json()).expect("json"),
            true,
        )
        .await;
    transcript.record("POST /v1/txs (another chain)", &answer);
    let cheap = api.sign(transfer(1, 1), &receiver);
    let raw = format!("{{\"raw\": \"0x{}\"}}", hex::encode(cheap.encode()));
    let answer = api.post(raw, true).await;
    transcript.record("POST /v1/txs (raw, fee too low)", &answer);
    let path = format!("/v1/txs/{}", cheap.hash());
    let answer = api.get(&path).await;
    transcript.record(&format!("GET {path} (refused on entry)"), &answer);
}

/// Every read route at one finalized height, `height`.
async fn reads(api: &Api, transcript: &mut Transcript, scenario: &Scenario, height: u64) {
    let mut paths = vec![
        "/v1/status".to_string(),
        "/v1/genesis".into(),
        "/v1/blocks/0".into(),
        "/v1/blocks/3".into(),
        "/v1/blocks/4".into(),
        "/v1/blocks/5".into(),
        "/v1/blocks/latest".into(),
        "/v1/subnets".into(),
        "/v1/subnets/1".into(),
        "/v1/subnets/1/metagraph".into(),
        "/v1/pools".into(),
        "/v1/emission".into(),
        "/v1/emission/receipts/latest".into(),
        "/v1/musd".into(),
        format!("/v1/channels/{}", scenario.channel),
        format!(
            "/v1/musd/authorizations/{}/{}",
            signer(6).address(),
            scenario.authorization_nonce
        ),
        format!(
            "/v1/musd/authorizations/{}/{}",
            signer(6).address(),
            B256::repeat_byte(0x33)
        ),
    ];
    for i in [0, 2, 8, 9] {
        paths.push(format!("/v1/accounts/{}", signer(i).address()));
    }
    // Blob storage before any storage node: committee 0, no blobs; an unknown and a bad id.
    paths.push("/v1/storage".into());
    paths.push("/v1/storage/blobs".into());
    paths.push(format!("/v1/storage/blobs/{}", B256::repeat_byte(0x44)));
    paths.push("/v1/storage/blobs/0x1234".into());
    // Lowercase in, checksummed out.
    paths.push(format!(
        "/v1/stakes/{}",
        format!("{:?}", signer(8).address()).to_lowercase()
    ));
    paths.push(format!("/v1/stakes/{}", signer(0).address()));
    for tx in scenario
        .first
        .iter()
        .chain(&scenario.second)
        .chain(&scenario.third)
        .chain(&scenario.fourth)
        .chain([&scenario.pending])
    {
        paths.push(format!("/v1/txs/{}", tx.hash()));
    }
    for path in paths {
        let answer = api.get(&path).await;
        transcript.record(&format!("GET {path}"), &answer);
    }
    assert_eq!(
        api.height().await,
        height,
        "a block was finalized while the answers were read"
    );
}

/// Reads the SSE stream until the `block` event of `height`; returns that event's text.
async fn block_event(response: reqwest::Response, height: u64) -> String {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    while let Some(chunk) = stream.next().await {
        buffer.push_str(std::str::from_utf8(&chunk.expect("stream")).expect("utf-8"));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let wanted = format!("\"height\":{height},");
            if event.starts_with("event: block\n") && event.contains(&wanted) {
                let data = event
                    .strip_prefix("event: block\ndata: ")
                    .and_then(|d| d.strip_suffix("\n\n"))
                    .expect("one data line");
                match api::BlockEvent::from_sse("block", data) {
                    Ok(Some(api::BlockEvent::Block(block))) => {
                        let again = serde_json::to_value(&block)
                            .expect("serializes")
                            .to_string();
                        assert_eq!(again, data, "the block event's data reads back");
                    }
                    other => panic!("the block event does not read: {other:?}"),
                }
                return event;
            }
        }
    }
    panic!("the block stream ended before block {height}");
}

/// Runs the whole scenario on a fresh node; the masked transcript.
fn run_once() -> Result<String, OffTimeline> {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = node_config(dir.path());
    let genesis = config.genesis.clone();
    commonware_runtime::tokio::Runner::new(config.runtime_config()).start(|context| async move {
        let node = start_node(context.child("node"), config)
            .await
            .expect("node starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(mycel_rpc::serve(
            listener,
            node.clone(),
            genesis.clone(),
            mycel_http::ServeLimits::default(),
            mycel_rpc::Attached::default(),
            std::future::pending(),
        ));
        let api = Api {
            http: reqwest::Client::new(),
            base: base.clone(),
            chain_id: genesis.chain_id,
        };
        let scenario = scenario(&api);
        let mut transcript = Transcript::default();

        let answer = api.get("/v1/emission/receipts/latest").await;
        transcript.record("GET /v1/emission/receipts/latest (no subnet yet)", &answer);
        let events = api
            .http
            .get(format!("{base}/v1/events/blocks"))
            .send()
            .await
            .expect("the block stream");
        let events_content_type = events
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        let event = tokio::spawn(block_event(events, 3));

        // The first batch also shows a pending transaction's status and a raw submission.
        api.await_height(2).await?;
        let (first, rest) = scenario.first.split_first().expect("a first tx");
        let answer = api.submit(first).await;
        transcript.record("POST /v1/txs (RegisterSubnet)", &answer);
        let path = format!("/v1/txs/{}", first.hash());
        let answer = api.get(&path).await;
        transcript.record(&format!("GET {path} (pending)"), &answer);
        for tx in rest {
            let answer = api.submit(tx).await;
            transcript.record(&format!("POST /v1/txs ({})", tx.kind.type_name()), &answer);
        }
        for tx in &scenario.first {
            api.await_in_block(tx, 3).await?;
        }
        batch(&api, &mut transcript, 3, &scenario.second).await?;
        batch(&api, &mut transcript, 4, &scenario.third).await?;
        // Block 6 also runs the subnet's epoch (tempo 3: (6 + 1 + 1) % 4 == 0).
        batch(&api, &mut transcript, 5, &scenario.fourth).await?;

        // Read everything at 6.
        api.await_height(6).await?;
        let answer = api.submit(&scenario.pending).await;
        transcript.record("POST /v1/txs (Transfer, stays pending)", &answer);
        reads(&api, &mut transcript, &scenario, 6).await;
        refusals(&api, &mut transcript, &scenario).await;

        let event = tokio::time::timeout(Duration::from_secs(10), event)
            .await
            .expect("the block event in time")
            .expect("the stream task");
        transcript.entries.push(format!(
            "GET /v1/events/blocks (the event of block 3)\n200 {events_content_type}\n{event}"
        ));

        let masks = wall_clock_values(&api, 6).await;
        let mut text = transcript.entries.join("\n");
        for (value, placeholder) in masks {
            text = text.replace(&value, &placeholder);
        }
        Ok(mask_key(&text, "withdraw_at_s", "<withdraw_at_s>"))
    })
}

/// The values that depend on the wall clock: each block's hash, time and state root (genesis's
/// are fixed), mapped to their placeholders.
async fn wall_clock_values(api: &Api, up_to: u64) -> BTreeMap<String, String> {
    let mut masks = BTreeMap::new();
    for height in 1..=up_to {
        let block: serde_json::Value =
            serde_json::from_str(&api.get(&format!("/v1/blocks/{height}")).await.body)
                .expect("json");
        for (field, name) in [
            ("hash", "hash"),
            ("state_root", "root"),
            ("timestamp_ms", "time"),
        ] {
            let value = match &block[field] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            masks.insert(value, format!("<block {height} {name}>"));
        }
    }
    masks
}

/// Replaces the number after every `"key":` with `placeholder` (nulls stay).
fn mask_key(text: &str, key: &str, placeholder: &str) -> String {
    let needle = format!("\"{key}\":");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let (head, tail) = rest.split_at(at + needle.len());
        out.push_str(head);
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            out.push_str(placeholder);
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_route_answers_the_recorded_bytes() {
    let mut last = String::new();
    let mut actual = None;
    for attempt in 1..=3 {
        match run_once() {
            Ok(text) => {
                actual = Some(text);
                break;
            }
            Err(OffTimeline(why)) => {
                eprintln!("attempt {attempt} went off its timeline ({why}); starting again");
                last = why;
            }
        }
    }
    let actual = actual.unwrap_or_else(|| panic!("three runs went off their timeline: {last}"));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(EXPECTED);
    if std::env::var_os("MYCEL_BLESS").is_some() {
        std::fs::write(&path, &actual).expect("write the expected answers");
        return;
    }
    let expected = std::fs::read_to_string(&path).expect("the expected answers (MYCEL_BLESS=1)");
    if expected != actual {
        let out = std::env::temp_dir().join("mycel-api-bytes.actual.txt");
        std::fs::write(&out, &actual).expect("write the actual answers");
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "the answers differ from {EXPECTED} from line {}:\nexpected: {}\nactual:   {}\n(all of it: {})",
            first + 1,
            expected.lines().nth(first).unwrap_or("<end>"),
            actual.lines().nth(first).unwrap_or("<end>"),
            out.display()
        );
    }
}
