//! The mempool anyone could fill, replayed against a real `mycel up --chain-only` process over its
//! HTTP API. Before the fix, 160 zero-balance keys parked ~9,900 transactions behind a nonce gap
//! in seconds, a funded transfer then got `503 mempool_full`, and the pool stayed full until a
//! restart.
//!
//! 1. Default limits: the same flood (160 keys x 62 gapped nonces) is refused transaction by
//!    transaction, the pool stays empty, and a funded transfer sent in the middle of it is
//!    accepted and finalized. Gapped transactions with an unknown token, an oversized memo or an
//!    amount above the balance, and an amount of `""`, are refused with their own codes.
//! 2. Small limits (the `mempool` section of node.json, then a restart): funded attacker keys park
//!    gapped transactions up to the per-sender and global caps (exact counts), and an honest
//!    transfer still gets in by evicting one, and is finalized.
//! 3. The parked transactions expire after `ttl_blocks`: the pool empties and their status says
//!    `expired`.

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use futures::StreamExt as _;
use mycel_testkit::Devnet;
use mycel_types::{genesis::DEFAULT_MIN_FEE, keys::dev_signer, SignedTx, Token, Transfer, TxKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CHAIN_ID: u64 = 1337;
const FEE: u128 = DEFAULT_MIN_FEE;
const MYC: u128 = 1_000_000_000;

/// A transfer of `amount` base units of MYC from `key`, signed.
fn transfer(key: &PrivateKeySigner, nonce: u64, to: Address, amount: u128) -> SignedTx {
    transfer_with(key, nonce, to, amount, |_| {})
}

fn transfer_with(
    key: &PrivateKeySigner,
    nonce: u64,
    to: Address,
    amount: u128,
    edit: impl FnOnce(&mut Transfer),
) -> SignedTx {
    let mut t = Transfer {
        from: key.address(),
        to,
        token: Token::Myc.address(),
        amount: U256::from(amount),
        memo: Default::default(),
        nonce,
        fee: U256::from(FEE),
    };
    edit(&mut t);
    SignedTx::sign(TxKind::Transfer(t), CHAIN_ID, key).expect("sign")
}

/// The node's HTTP API, as a client sees it.
struct Api {
    http: reqwest::Client,
    rpc: String,
}

/// How many submissions got each answer: `accepted`, or the error code.
type Tally = BTreeMap<String, usize>;

impl Api {
    fn new(rpc: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            rpc: rpc.to_string(),
        }
    }

    async fn post_tx(&self, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/v1/txs", self.rpc))
            .json(body)
            .send()
            .await
            .expect("POST /v1/txs");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `accepted` or the refusal's code, checking the HTTP status that goes with it.
    async fn submit(&self, tx: &SignedTx) -> String {
        let (status, body) = self
            .post_tx(&serde_json::to_value(tx.to_json()).unwrap())
            .await;
        if status == 202 {
            assert_eq!(body["hash"], json!(tx.hash()), "{body}");
            return "accepted".into();
        }
        let code = body["error"]["code"].as_str().unwrap_or("?").to_string();
        let expected = if code == "mempool_full" { 503 } else { 400 };
        assert_eq!(status, expected, "{body}");
        code
    }

    /// Submits `txs` 32 at a time.
    async fn submit_all(&self, txs: &[SignedTx]) -> Tally {
        let codes: Vec<String> = futures::stream::iter(txs)
            .map(|tx| self.submit(tx))
            .buffer_unordered(32)
            .collect()
            .await;
        tally(codes)
    }

    /// Submits `txs` one after the other, so that which one meets which limit is known.
    async fn submit_in_order(&self, txs: &[SignedTx]) -> Tally {
        let mut codes = Vec::new();
        for tx in txs {
            codes.push(self.submit(tx).await);
        }
        tally(codes)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.rpc))
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn status(&self) -> Value {
        self.get("/v1/status").await.1
    }

    async fn mempool_size(&self) -> u64 {
        self.status().await["mempool_size"]
            .as_u64()
            .expect("mempool_size")
    }

    async fn account(&self, address: Address) -> Value {
        self.get(&format!("/v1/accounts/{address}")).await.1
    }

    async fn myc(&self, address: Address) -> u128 {
        let account = self.account(address).await;
        account["myc"].as_str().expect("myc").parse().unwrap()
    }

    async fn next_nonce(&self, address: Address) -> u64 {
        self.account(address).await["next_nonce"].as_u64().unwrap()
    }

    /// The status of transaction `hash`: `rejected` with the code, or the status.
    async fn tx_state(&self, tx: &SignedTx) -> String {
        let (_, body) = self.get(&format!("/v1/txs/{}", tx.hash())).await;
        match body["status"].as_str() {
            Some("rejected") => format!("rejected: {}", body["error"]["code"].as_str().unwrap()),
            Some(other) => other.to_string(),
            None => format!("unknown: {body}"),
        }
    }

    /// Waits (polling) until the node has finalized `height`.
    async fn wait_for_height(&self, height: u64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.status().await["height"].as_u64().unwrap_or(0) < height {
            assert!(
                Instant::now() < deadline,
                "height {height} not reached in 120 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits (polling) until `txs` are finalized; panics on a rejection.
    async fn wait_finalized(&self, txs: &[&SignedTx]) {
        let deadline = Instant::now() + Duration::from_secs(120);
        for tx in txs {
            loop {
                match self.tx_state(tx).await.as_str() {
                    "finalized" => break,
                    "pending" => {}
                    other => panic!("transaction {} is {other}", tx.hash()),
                }
                assert!(
                    Instant::now() < deadline,
                    "{} not finalized in 120 s",
                    tx.hash()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// A counter of the node's /metrics.
    async fn metric(&self, name: &str) -> u64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.rpc))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    }
}

fn tally(codes: Vec<String>) -> Tally {
    let mut tally = Tally::new();
    for code in codes {
        *tally.entry(code).or_default() += 1;
    }
    tally
}

fn counts<const N: usize>(entries: [(&str, usize); N]) -> Tally {
    entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// 3 MYC from a funded dev account to a fresh address: what an honest user sends while the pool
/// is under attack.
struct HonestTransfer {
    tx: SignedTx,
    sender: Address,
    receiver: Address,
    sender_before: u128,
}

impl HonestTransfer {
    async fn new(api: &Api, dev_account: u32) -> HonestTransfer {
        let key = dev_signer(dev_account).unwrap();
        let receiver = PrivateKeySigner::random().address();
        let nonce = api.next_nonce(key.address()).await;
        HonestTransfer {
            tx: transfer(&key, nonce, receiver, 3 * MYC),
            sender: key.address(),
            receiver,
            sender_before: api.myc(key.address()).await,
        }
    }

    /// Waits until it is final, and checks both balances on chain.
    async fn finalized(&self, api: &Api) {
        api.wait_finalized(&[&self.tx]).await;
        assert_eq!(api.myc(self.receiver).await, 3 * MYC);
        assert_eq!(
            api.myc(self.sender).await,
            self.sender_before - 3 * MYC - FEE
        );
    }
}

#[test]
fn a_zero_balance_flood_is_refused_funded_attackers_are_bounded_and_parked_txs_expire() {
    let rt = tokio::runtime::Runtime::new().unwrap();

    // 1. Default limits.
    let mut node = Devnet::start();
    let data = node.data_dir().to_path_buf();
    let api = Api::new(node.rpc());
    rt.block_on(async {
        api.wait_for_height(1).await;
        zero_balance_flood_under_default_limits(&api).await;
        invalid_gapped_transactions_are_refused(&api).await;
    });
    node.stop();

    // 2 and 3. Small limits, through the node's config file, then a restart of the same chain.
    let config = data.join("node.json");
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(
        file["mempool"],
        json!({"max_txs": 10000, "max_per_sender": 64, "max_gapped_per_sender": 16, "ttl_blocks": 120}),
        "mycel up writes the default limits"
    );
    file["mempool"] = json!({"max_txs": MAX_TXS, "max_per_sender": 64,
                             "max_gapped_per_sender": MAX_GAPPED, "ttl_blocks": TTL_BLOCKS});
    std::fs::write(&config, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    node.restart();
    let api = Api::new(node.rpc());
    rt.block_on(funded_attackers_are_bounded_then_expire(&api));
    drop(node);
}

async fn zero_balance_flood_under_default_limits(api: &Api) {
    // The flood: 160 keys that never held anything, 62 transactions each, behind a gap
    // at nonce 0.
    let target = Address::repeat_byte(0x66);
    let flood: Vec<SignedTx> = (0..160)
        .flat_map(|_| {
            let key = PrivateKeySigner::random();
            (1..=62u64)
                .map(|nonce| transfer(&key, nonce, target, 1))
                .collect::<Vec<_>>()
        })
        .collect();
    let (first_half, second_half) = flood.split_at(flood.len() / 2);
    let refused = counts([("insufficient_balance", 4_960)]);
    assert_eq!(api.submit_all(first_half).await, refused);
    assert_eq!(api.mempool_size().await, 0);

    // A funded sender in the middle of the flood is unaffected.
    let honest = HonestTransfer::new(api, 5).await;
    let (answer, tally) = tokio::join!(api.submit(&honest.tx), api.submit_all(second_half));
    assert_eq!(answer, "accepted");
    assert_eq!(tally, refused);
    honest.finalized(api).await;
    assert_eq!(api.mempool_size().await, 0);
    assert_eq!(api.metric("mycel_txs_rejected_total").await, 9_920);
    assert_eq!(
        api.tx_state(&flood[9_000]).await,
        "rejected: insufficient_balance",
        "a refused transaction's status says why"
    );
}

/// What the issue saw accepted with 202 behind a gap, from a funded account, each refused with
/// its own code; and an amount of "" through the HTTP route.
async fn invalid_gapped_transactions_are_refused(api: &Api) {
    let key = dev_signer(3).unwrap();
    let to = Address::repeat_byte(0x77);
    let gap = api.next_nonce(key.address()).await + 5;
    let balance = api.myc(key.address()).await;
    let cases = [
        (
            transfer_with(&key, gap, to, 1, |t| t.token = Address::repeat_byte(0xee)),
            "unknown_token",
        ),
        (
            transfer_with(&key, gap, to, 1, |t| t.memo = vec![7u8; 257].into()),
            "memo_too_large",
        ),
        (transfer(&key, gap, to, balance), "insufficient_balance"),
        (
            transfer_with(&key, gap, to, 1, |t| t.fee = U256::from(FEE - 1)),
            "fee_too_low",
        ),
    ];
    for (tx, code) in &cases {
        assert_eq!(api.submit(tx).await, *code);
    }
    let mut json = serde_json::to_value(transfer(&key, gap, to, 1).to_json()).unwrap();
    for amount in ["", "1.5", "-1", " 1"] {
        json["message"]["amount"] = json!(amount);
        let (status, body) = api.post_tx(&json).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_tx")),
            "{amount:?}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("'amount'"), "{amount:?}: {message}");
    }
    assert_eq!(api.mempool_size().await, 0);
}

const MAX_TXS: usize = 83;
const MAX_GAPPED: usize = 8;
const TTL_BLOCKS: u64 = 15;

async fn funded_attackers_are_bounded_then_expire(api: &Api) {
    api.wait_for_height(api.status().await["height"].as_u64().unwrap() + 1)
        .await;
    // The attacker funds fresh keys from a dev account: one with three fees, twelve with 1 MYC.
    let bank = dev_signer(1).unwrap();
    let mut nonce = api.next_nonce(bank.address()).await;
    let poor = PrivateKeySigner::random();
    let rich: Vec<PrivateKeySigner> = (0..12).map(|_| PrivateKeySigner::random()).collect();
    let mut funding = vec![transfer(&bank, nonce, poor.address(), 3 * FEE)];
    for key in &rich {
        nonce += 1;
        funding.push(transfer(&bank, nonce, key.address(), MYC));
    }
    assert_eq!(
        api.submit_in_order(&funding).await,
        counts([("accepted", 13)])
    );
    api.wait_finalized(&funding.iter().collect::<Vec<_>>())
        .await;
    assert_eq!(api.mempool_size().await, 0);

    // Every key parks transactions behind a gap at its nonce 0, in a known order.
    let target = Address::repeat_byte(0x99);
    let poor_txs: Vec<SignedTx> = (1..=5).map(|n| transfer(&poor, n, target, 0)).collect();
    let rich_txs: Vec<Vec<SignedTx>> = rich
        .iter()
        .map(|key| (1..=12).map(|n| transfer(key, n, target, 0)).collect())
        .collect();
    let parked_from = api.status().await["height"].as_u64().unwrap();
    // Three fees pay for three transactions.
    assert_eq!(
        api.submit_in_order(&poor_txs).await,
        counts([("accepted", 3), ("insufficient_balance", 2)])
    );
    // 8 behind a gap per key; the pool is full after ten keys (3 + 10 x 8 = 83): the others
    // pay no more than what is there, so nothing makes room for them.
    let all_rich: Vec<SignedTx> = rich_txs.concat();
    assert_eq!(
        api.submit_in_order(&all_rich).await,
        counts([("accepted", 80), ("gapped_full", 40), ("mempool_full", 24)])
    );
    let parked_until = api.status().await["height"].as_u64().unwrap();
    assert!(
        parked_until < parked_from + TTL_BLOCKS,
        "the attack took {} blocks; the test needs it to take less than the TTL",
        parked_until - parked_from
    );
    assert_eq!(api.mempool_size().await, MAX_TXS as u64);

    // An honest transfer still gets in: it evicts the worst parked transaction (behind a gap,
    // lowest fee, oldest: the poor key's last) and is finalized.
    let honest = HonestTransfer::new(api, 6).await;
    assert_eq!(api.submit(&honest.tx).await, "accepted");
    assert_eq!(api.tx_state(&poor_txs[2]).await, "rejected: evicted");
    honest.finalized(api).await;
    assert_eq!(api.metric("mycel_mempool_evicted_total").await, 1);

    // Parked transactions expire TTL_BLOCKS after they entered; one more block makes sure the
    // node has dropped them by the time the status shows the height.
    api.wait_for_height(parked_until + TTL_BLOCKS + 1).await;
    assert_eq!(api.mempool_size().await, 0);
    assert_eq!(api.metric("mycel_mempool_expired_total").await, 82);
    let parked: Vec<&SignedTx> = poor_txs[..2]
        .iter()
        .chain(rich_txs[..10].iter().flat_map(|txs| &txs[..8]))
        .collect();
    assert_eq!(parked.len(), 82);
    for tx in parked {
        assert_eq!(api.tx_state(tx).await, "rejected: expired");
    }
    // The keys' balances were never touched: parked transactions cost nothing until included.
    assert_eq!(api.myc(poor.address()).await, 3 * FEE);
    assert_eq!(api.myc(rich[0].address()).await, MYC);
}
