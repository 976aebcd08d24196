//! Followers (`mycel node --follow`) with real processes: a devnet, followers of it and of each
//! other, a follower killed and restarted, one started from a state snapshot, and nodes that lie
//! to them.

use alloy_primitives::Address;
use mycel_client::api::TxState;
use mycel_testkit::mycel::{assert_ok, run, stdout};
use mycel_testkit::{http, Devnet, Follower, TestDir};
use std::time::{Duration, Instant};

const DEAD: &str = "0x000000000000000000000000000000000000dEaD";

/// `mycel transfer` of `amount` MYC from dev account `from` to 0x…dEaD through the node at `rpc`,
/// waiting until it is finalized; its hash.
fn transfer(rpc: &str, from: u32, amount: &str) -> String {
    let out = run(&[
        "transfer",
        "--rpc",
        rpc,
        "--dev-account",
        &from.to_string(),
        "--to",
        DEAD,
        "--amount",
        amount,
        "--wait",
    ]);
    assert_ok(&out);
    stdout(&out).trim().to_string()
}

/// Every block from 1 to `to` has the same hash and state root on both nodes.
#[track_caller]
fn same_blocks(
    a: &mycel_client::blocking::NodeClient,
    b: &mycel_client::blocking::NodeClient,
    from: u64,
    to: u64,
) {
    for height in from..=to {
        let (x, y) = (
            a.block(height).expect("block"),
            b.block(height).expect("block"),
        );
        assert_eq!(
            (x.hash, x.state_root, x.tx_count),
            (y.hash, y.state_root, y.tx_count),
            "block {height} differs between {} and {}",
            a.base(),
            b.base()
        );
    }
}

/// Flips one byte in the middle of every sync batch.
fn corrupt_batches(path: &str, mut body: Vec<u8>) -> Vec<u8> {
    if path == "/v1/sync/blocks" && !body.is_empty() {
        let middle = body.len() / 2;
        body[middle] ^= 0x01;
    }
    body
}

/// Raises a balance in the state of every snapshot (the bytes keep their length), and flips a
/// byte of every batch.
fn forge_snapshots(path: &str, mut body: Vec<u8>) -> Vec<u8> {
    if path == "/v1/sync/snapshot" {
        let needle = b"\"myc\":\"1";
        if let Some(at) = body.windows(needle.len()).position(|w| w == needle) {
            body[at + needle.len() - 1] = b'9';
        }
        return body;
    }
    corrupt_batches(path, body)
}

#[test]
fn a_follower_syncs_checks_and_serves_the_chain_and_forwards_transactions() {
    let devnet = Devnet::start();
    let node = devnet.client();
    let before = transfer(devnet.rpc(), 1, "1");
    let dir = TestDir::new();

    let mut follower = Follower::start(&dir, "follower", &[devnet.rpc()], &[]);
    let client = follower.client();
    let height = follower.wait_for_height(devnet.height(), Duration::from_secs(60));
    same_blocks(&node, &client, 0, height);
    // What the follower serves is the chain's: a transaction from before it started, balances.
    let status = client.tx(before.parse().unwrap()).expect("tx");
    assert!(
        matches!(status.state, TxState::Finalized { .. }),
        "{status:?}"
    );
    assert_eq!(
        client.status().unwrap().genesis_hash,
        node.status().unwrap().genesis_hash
    );

    // A transfer sent to the follower is forwarded, finalized, and seen by both.
    let dead: Address = DEAD.parse().unwrap();
    let hash = transfer(follower.rpc(), 2, "2.5");
    let on_follower = client
        .tx(hash.parse().unwrap())
        .expect("tx on the follower");
    let TxState::Finalized { height, .. } = on_follower.state else {
        panic!("not finalized on the follower: {on_follower:?}");
    };
    let height = follower.wait_for_height(height, Duration::from_secs(30));
    assert_eq!(
        node.account(dead).unwrap().myc,
        client.account(dead).unwrap().myc
    );
    assert_eq!(client.account(dead).unwrap().myc, 3_500_000_000);
    assert!(client.sync_health().unwrap().in_sync);
    // A transaction the chain refuses is refused by the follower before it is forwarded.
    let out = run(&[
        "transfer",
        "--rpc",
        follower.rpc(),
        "--dev-account",
        "2",
        "--to",
        DEAD,
        "--amount",
        "1",
        "--nonce",
        "0",
    ]);
    assert!(
        !out.status.success(),
        "a spent nonce was accepted: {}",
        stdout(&out)
    );

    // Killed and started again, it resumes from its own storage and catches up.
    follower.proc.kill_9();
    std::thread::sleep(Duration::from_secs(2));
    follower.restart();
    // A new client: the old one's pooled connections went with the killed process.
    let client = follower.client();
    assert!(
        client.status().unwrap().height >= height,
        "the follower went back"
    );
    let height = follower.wait_for_height(devnet.height(), Duration::from_secs(60));
    same_blocks(&node, &client, 0, height);

    // A follower of a liar and of the first follower, starting from a state snapshot: the
    // liar's forged snapshot and corrupted batches are refused; the honest ones are taken.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let liar = http::tampering_proxy(&runtime, devnet.rpc(), forge_snapshots);
    let synced = Follower::start(
        &dir,
        "state-synced",
        &[&liar, follower.rpc()],
        &[
            "--state-sync",
            "--genesis",
            &devnet.data_dir().join("genesis.json").display().to_string(),
        ],
    );
    let log = synced.log();
    assert!(log.contains("refused its state snapshot"), "{log}");
    assert!(log.contains("its state root is"), "{log}");
    assert!(log.contains("state synced from a snapshot"), "{log}");
    let start = synced.client().status().unwrap().height;
    assert!(
        start > 1,
        "it did not start from a snapshot: height {start}"
    );
    let height = synced.wait_for_height(devnet.height() + 2, Duration::from_secs(60));
    same_blocks(&node, &synced.client(), start, height);
    assert_eq!(
        synced.client().account(dead).unwrap().myc,
        node.account(dead).unwrap().myc
    );
    // Blocks before the snapshot are not here, and it says so.
    let refused = synced.client().block(1).unwrap_err().to_string();
    assert!(
        refused.contains(&format!("started from a state snapshot at height {start}")),
        "{refused}"
    );

    // A follower from genesis that asks the state-synced one first is told it holds no such
    // blocks, and takes them from the next.
    let late = Follower::start(&dir, "late", &[synced.rpc(), follower.rpc()], &[]);
    let height = late.wait_for_height(devnet.height(), Duration::from_secs(60));
    same_blocks(&node, &late.client(), 0, height);
    assert!(
        late.log()
            .contains(&format!("holds blocks from height {start} on")),
        "{}",
        late.log()
    );

    // A follower of the liar alone takes nothing from it.
    let fooled = Follower::start(&dir, "fooled", &[&liar], &[]);
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline && !fooled.log().contains("does not verify") {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        fooled.log().contains("sent a batch that does not verify"),
        "{}",
        fooled.log()
    );
    let health = fooled.client().sync_health().unwrap();
    assert_eq!(health.height, 0, "{health:?}");
}

#[test]
fn sync_requests_that_make_no_sense_are_refused_clearly() {
    let devnet = Devnet::start();
    let get = |path: &str| http::get_json(&format!("{}{path}", devnet.rpc()));
    assert_eq!(get("/v1/sync/blocks")["error"]["code"], "bad_query");
    assert_eq!(get("/v1/sync/blocks?from=0")["error"]["code"], "bad_height");
    assert_eq!(get("/v1/sync/blocks?from=x")["error"]["code"], "bad_query");
    // A height far ahead waits at most what it asked for, then says there is nothing.
    // (A client per call: each `block_on` runs on a runtime of its own, and a pooled connection
    // dies with the runtime that opened it.)
    let started = Instant::now();
    let answer = http::block_on(devnet.async_client().sync_blocks(1 << 40, 10, 300)).unwrap();
    assert!(answer.is_none());
    assert!(started.elapsed() < Duration::from_secs(5));
    // Many snapshot requests at once share one snapshot.
    let answers: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| http::block_on(devnet.async_client().sync_snapshot()).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|a| a == &answers[0]));
}

/// The node whose sync batches [`other_chains_batches`] hands out instead.
static OTHER_CHAIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Answers every sync batch request with the same request's answer from another chain: blocks
/// that link up and carry a valid certificate, signed by validators that are not this chain's.
fn other_chains_batches(path: &str, body: Vec<u8>) -> Vec<u8> {
    if path != "/v1/sync/blocks" {
        return body;
    }
    let other = OTHER_CHAIN.get().expect("the other chain").clone();
    http::block_on(async move {
        let client = mycel_client::NodeClient::new(&other).unwrap();
        client
            .sync_blocks(1, 64, 0)
            .await
            .unwrap()
            .unwrap_or_default()
    })
}

#[test]
fn a_follower_refuses_blocks_certified_by_validators_not_in_its_genesis() {
    let devnet = Devnet::start();
    let other = Devnet::start();
    OTHER_CHAIN.set(other.rpc().to_string()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let liar = http::tampering_proxy(&runtime, devnet.rpc(), other_chains_batches);
    let dir = TestDir::new();
    let fooled = Follower::start(&dir, "fooled", &[&liar], &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !fooled.log().contains("does not verify") {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        fooled.log().contains(
            "the finalization certificate does not verify against the genesis validators"
        ),
        "{}",
        fooled.log()
    );
    assert_eq!(fooled.client().status().unwrap().height, 0);
}
