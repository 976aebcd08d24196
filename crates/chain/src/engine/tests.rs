//! Deterministic simulations: the real node code on commonware's deterministic runtime with the
//! simulated p2p network (lossy links, partitions, crashes). A failing seed replays exactly.

use super::{
    application::BlockRules, block::BlockLimits, launch, Channels, EngineConfig, Timeouts,
    CHANNEL_BACKFILL, CHANNEL_BROADCAST, CHANNEL_CERTIFICATES, CHANNEL_RESOLVER, CHANNEL_TXS,
    CHANNEL_VOTES,
};
use crate::{mempool::MempoolLimits, Node, TxOutcome, TxStatus};
use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use commonware_cryptography::{ed25519, Signer};
use commonware_p2p::{
    simulated::{self, Link, Network, Oracle},
    Manager,
};
use commonware_runtime::{
    deterministic::{self, Runner},
    Clock, Quota, Runner as _, Supervisor as _,
};
use commonware_utils::{ordered::Set, NZUsize, NZU32, NZU64};
use mycel_types::{keys::dev_signer, Genesis, SignedTx, Transfer, TxKind, B256};
use std::{collections::HashMap, time::Duration};

pub(super) type PublicKey = ed25519::PublicKey;
pub(super) type Registration =
    Channels<simulated::Sender<PublicKey, deterministic::Context>, simulated::Receiver<PublicKey>>;

const FEE: u128 = 10_000;
/// The simulations' state snapshot interval (blocks): a restart usually lands between two.
const SNAPSHOT_EVERY: u64 = 8;

pub(super) fn keys(n: u64) -> Vec<ed25519::PrivateKey> {
    (0..n).map(ed25519::PrivateKey::from_seed).collect()
}

pub(super) fn genesis_for(keys: &[ed25519::PrivateKey]) -> Genesis {
    let validators = keys
        .iter()
        .map(|k| super::public_key_hex(&k.public_key()))
        .collect();
    Genesis::devnet(validators, 0).expect("devnet genesis")
}

pub(super) fn engine_config(
    signer: ed25519::PrivateKey,
    genesis: &Genesis,
    index: usize,
) -> EngineConfig {
    EngineConfig {
        signer,
        genesis: genesis.clone(),
        partition_prefix: format!("validator-{index}"),
        rules: BlockRules {
            block_time_ms: 200,
            max_block_txs: 100,
            max_block_bytes: 256 * 1024,
            max_future_skew_ms: 1_000,
        },
        limits: BlockLimits {
            max_txs: 100,
            max_tx_bytes: genesis.max_tx_bytes as usize,
        },
        mempool: MempoolLimits::default(),
        history: crate::HistoryConfig::default(),
        timeouts: Timeouts {
            leader: Duration::from_secs(1),
            certification: Duration::from_secs(2),
            timeout_retry: Duration::from_secs(3),
            fetch: Duration::from_secs(1),
            view_retention: 10,
        },
        mailbox_size: NZUsize!(1024),
        freezer_table_initial_size: 2u32.pow(10),
        snapshot_every: NZU64!(SNAPSHOT_EVERY),
        proposer: super::Proposer::Honest,
    }
}

pub(super) fn network(
    context: &deterministic::Context,
    n: usize,
) -> Oracle<PublicKey, deterministic::Context> {
    let (network, oracle) = Network::new(
        context.child("network"),
        simulated::Config {
            max_size: 4 * 1024 * 1024,
            max_peers_per_set: NZUsize!(n),
            disconnect_on_block: true,
            tracked_peer_sets: NZUsize!(1),
        },
    );
    network.start();
    oracle
}

pub(super) async fn register(
    oracle: &mut Oracle<PublicKey, deterministic::Context>,
    validators: &[PublicKey],
) -> HashMap<PublicKey, Registration> {
    let _ = oracle
        .manager()
        .track(0, Set::from_iter_dedup(validators.iter().cloned()));
    let quota = Quota::per_second(NZU32!(10_000));
    let mut registrations = HashMap::new();
    for validator in validators {
        let control = oracle.control(validator.clone());
        let registration = Channels {
            votes: control
                .register(CHANNEL_VOTES, quota)
                .await
                .expect("register"),
            certificates: control
                .register(CHANNEL_CERTIFICATES, quota)
                .await
                .expect("register"),
            resolver: control
                .register(CHANNEL_RESOLVER, quota)
                .await
                .expect("register"),
            broadcast: control
                .register(CHANNEL_BROADCAST, quota)
                .await
                .expect("register"),
            backfill: control
                .register(CHANNEL_BACKFILL, quota)
                .await
                .expect("register"),
            txs: control
                .register(CHANNEL_TXS, quota)
                .await
                .expect("register"),
        };
        registrations.insert(validator.clone(), registration);
    }
    registrations
}

pub(super) async fn link(
    oracle: &mut Oracle<PublicKey, deterministic::Context>,
    validators: &[PublicKey],
    link: Link,
    keep: impl Fn(usize, usize) -> bool,
) {
    for (i, a) in validators.iter().enumerate() {
        for (j, b) in validators.iter().enumerate() {
            if i != j && keep(i, j) {
                oracle
                    .add_link(a.clone(), b.clone(), link.clone())
                    .await
                    .expect("link");
            }
        }
    }
}

pub(super) async fn unlink(
    oracle: &mut Oracle<PublicKey, deterministic::Context>,
    validators: &[PublicKey],
    cut: impl Fn(usize, usize) -> bool,
) {
    for (i, a) in validators.iter().enumerate() {
        for (j, b) in validators.iter().enumerate() {
            if i != j && cut(i, j) {
                let _ = oracle.remove_link(a.clone(), b.clone()).await;
            }
        }
    }
}

async fn start(
    context: &deterministic::Context,
    oracle: &Oracle<PublicKey, deterministic::Context>,
    signer: &ed25519::PrivateKey,
    genesis: &Genesis,
    index: usize,
    registration: Registration,
) -> Node {
    let public_key = signer.public_key();
    launch(
        context.child("validator").with_attribute("index", index),
        engine_config(signer.clone(), genesis, index),
        oracle.manager(),
        oracle.control(public_key),
        registration,
    )
    .await
    .expect("node starts")
}

/// A one-validator network: `key` alone on a fresh simulated network (keep the oracle alive).
async fn start_alone(
    context: &deterministic::Context,
    key: &ed25519::PrivateKey,
    genesis: &Genesis,
) -> (Oracle<PublicKey, deterministic::Context>, Node) {
    let mut oracle = network(context, 1);
    let validators = vec![key.public_key()];
    let mut registrations = register(&mut oracle, &validators).await;
    let registration = registrations.remove(&validators[0]).expect("registered");
    let node = start(context, &oracle, key, genesis, 0, registration).await;
    (oracle, node)
}

pub(super) async fn wait_for_height(
    context: &deterministic::Context,
    nodes: &[&Node],
    height: u64,
) {
    loop {
        if nodes.iter().all(|n| n.status().latest_height >= height) {
            return;
        }
        context.sleep(Duration::from_millis(100)).await;
    }
}

pub(super) async fn wait_finalized(
    context: &deterministic::Context,
    nodes: &[&Node],
    hashes: &[B256],
) {
    loop {
        let done = nodes.iter().all(|n| {
            hashes
                .iter()
                .all(|h| matches!(n.tx_status(*h), TxStatus::Finalized { .. }))
        });
        if done {
            return;
        }
        context.sleep(Duration::from_millis(100)).await;
    }
}

/// All nodes hold the same blocks (hash, state root, transactions) up to `height`.
pub(super) async fn assert_same_chain(nodes: &[&Node], height: u64) {
    for h in 0..=height {
        let reference = nodes[0]
            .block(h)
            .await
            .unwrap_or_else(|| panic!("node 0 lacks block {h}"));
        for (i, node) in nodes.iter().enumerate().skip(1) {
            let block = node
                .block(h)
                .await
                .unwrap_or_else(|| panic!("node {i} lacks block {h}"));
            assert_eq!(block.hash, reference.hash, "node {i} block {h} hash");
            assert_eq!(
                block.state_root, reference.state_root,
                "node {i} block {h} root"
            );
            assert_eq!(
                block.txs.len(),
                reference.txs.len(),
                "node {i} block {h} txs"
            );
        }
        if h > 0 {
            let parent = nodes[0].block(h - 1).await.expect("parent");
            assert_eq!(
                reference.parent, parent.hash,
                "block {h} links to its parent"
            );
            assert!(
                reference.timestamp_ms > parent.timestamp_ms,
                "block {h} timestamp increases"
            );
        }
    }
}

pub(super) fn transfer(
    signer: &PrivateKeySigner,
    chain_id: u64,
    to: Address,
    amount: u128,
    nonce: u64,
) -> SignedTx {
    let kind = TxKind::Transfer(Transfer {
        from: signer.address(),
        to,
        token: Address::ZERO,
        amount: U256::from(amount),
        memo: Default::default(),
        nonce,
        fee: U256::from(FEE),
    });
    SignedTx::sign(kind, chain_id, signer).expect("sign")
}

/// Submits `count` transfers from dev account `from` (nonces `first..`) to every node, as a client
/// that broadcasts would. Returns their hashes.
pub(super) fn submit_transfers(
    nodes: &[&Node],
    chain_id: u64,
    from: u32,
    to: Address,
    first: u64,
    count: u64,
) -> Vec<B256> {
    let signer = dev_signer(from).expect("dev key");
    (first..first + count)
        .map(|nonce| {
            let tx = transfer(&signer, chain_id, to, 1_000 + nonce as u128, nonce);
            for node in nodes {
                match node.submit_tx(tx.clone()) {
                    // Relayed there already by another node.
                    Ok(_) | Err(crate::MempoolError::AlreadyKnown(_)) => {}
                    Err(err) => panic!("mempool refused a valid transfer: {err}"),
                }
            }
            tx.hash()
        })
        .collect()
}

pub(super) fn lossy() -> Link {
    Link {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(30),
        success_rate: commonware_utils::probability!(0.85),
    }
}

pub(super) fn good() -> Link {
    Link {
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(2),
        success_rate: commonware_utils::probability!(1.0),
    }
}

#[test]
fn single_validator_finalizes_transfers() {
    let runner = Runner::from(
        deterministic::Config::default()
            .with_seed(7)
            .with_timeout(Some(Duration::from_secs(120))),
    );
    runner.start(|context| async move {
        let keys = keys(1);
        let genesis = genesis_for(&keys);
        let mut oracle = network(&context, 1);
        let validators = vec![keys[0].public_key()];
        let mut registrations = register(&mut oracle, &validators).await;
        let node = start(
            &context,
            &oracle,
            &keys[0],
            &genesis,
            0,
            registrations.remove(&validators[0]).expect("registered"),
        )
        .await;

        let recipient = dev_signer(5).expect("dev key").address();
        let before = node.account(recipient).myc;
        let hashes = submit_transfers(&[&node], genesis.chain_id, 0, recipient, 0, 5);
        assert!(matches!(node.tx_status(hashes[0]), TxStatus::Pending));
        wait_finalized(&context, &[&node], &hashes).await;
        let received: u128 = (0..5u128).map(|n| 1_000 + n).sum();
        assert_eq!(node.account(recipient).myc, before + received);
        match node.tx_status(hashes[4]) {
            TxStatus::Finalized {
                result: TxOutcome::Success { .. },
                height,
                ..
            } => assert!(height > 0),
            other => panic!("unexpected status {other:?}"),
        }
        // Replaying a finalized nonce is refused with a reason.
        let replay = transfer(
            &dev_signer(0).expect("dev key"),
            genesis.chain_id,
            recipient,
            1,
            0,
        );
        let err = node.submit_tx(replay).expect_err("stale nonce refused");
        assert_eq!(err.code(), "stale_nonce");
        let status = node.status();
        assert!(status.latest_height >= 1);
        let metrics = node.metrics(status.latest_timestamp_ms);
        assert!(metrics.contains("mycel_finalized_height"), "own counters");
        assert!(metrics.contains("\nmycel_finality_lag_ms 0\n"), "{metrics}");
        assert!(metrics.contains("\nmycel_in_sync 1\n"), "{metrics}");
        assert!(
            metrics.contains("marshal_processed_height"),
            "runtime metrics"
        );
    });
}

fn four_validators_lossy(seed: u64) -> String {
    let runner = Runner::from(
        deterministic::Config::default()
            .with_seed(seed)
            .with_timeout(Some(Duration::from_secs(600))),
    );
    runner.start(|context| async move {
        let keys = keys(4);
        let genesis = genesis_for(&keys);
        let mut oracle = network(&context, 4);
        let validators: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
        let mut registrations = register(&mut oracle, &validators).await;
        link(&mut oracle, &validators, lossy(), |_, _| true).await;
        let mut nodes = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let registration = registrations.remove(&validators[i]).expect("registered");
            nodes.push(start(&context, &oracle, key, &genesis, i, registration).await);
        }
        let refs: Vec<&Node> = nodes.iter().collect();

        let recipient = dev_signer(7).expect("dev key").address();
        let mut hashes = submit_transfers(&refs, genesis.chain_id, 0, recipient, 0, 8);
        hashes.extend(submit_transfers(
            &refs[1..2],
            genesis.chain_id,
            1,
            recipient,
            0,
            4,
        ));
        wait_finalized(&context, &refs, &hashes).await;
        wait_for_height(&context, &refs, 12).await;
        assert_same_chain(&refs, 12).await;
        let balances: Vec<u128> = nodes.iter().map(|n| n.account(recipient).myc).collect();
        assert!(
            balances.windows(2).all(|w| w[0] == w[1]),
            "balances agree: {balances:?}"
        );
        assert!(nodes.iter().all(|n| n.status().mempool_size == 0));
        context.auditor().state()
    })
}

#[test]
fn four_validators_with_lossy_links_agree_on_blocks_and_state() {
    let first = four_validators_lossy(1);
    // Same seed, same execution.
    assert_eq!(first, four_validators_lossy(1));
}

#[test]
fn partition_heals() {
    let runner = Runner::from(
        deterministic::Config::default()
            .with_seed(3)
            .with_timeout(Some(Duration::from_secs(600))),
    );
    runner.start(|context| async move {
        let keys = keys(4);
        let genesis = genesis_for(&keys);
        let mut oracle = network(&context, 4);
        let validators: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
        let mut registrations = register(&mut oracle, &validators).await;
        link(&mut oracle, &validators, good(), |_, _| true).await;
        let mut nodes = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let registration = registrations.remove(&validators[i]).expect("registered");
            nodes.push(start(&context, &oracle, key, &genesis, i, registration).await);
        }
        let refs: Vec<&Node> = nodes.iter().collect();
        wait_for_height(&context, &refs, 5).await;

        // Split 2/2: no side has a quorum (3 of 4), so nothing more finalizes.
        unlink(&mut oracle, &validators, |i, j| (i < 2) != (j < 2)).await;
        context.sleep(Duration::from_secs(3)).await;
        let stalled = refs
            .iter()
            .map(|n| n.status().latest_height)
            .max()
            .expect("nodes");
        let recipient = dev_signer(8).expect("dev key").address();
        let hashes = submit_transfers(&refs, genesis.chain_id, 2, recipient, 0, 3);
        context.sleep(Duration::from_secs(10)).await;
        let during = refs
            .iter()
            .map(|n| n.status().latest_height)
            .max()
            .expect("nodes");
        assert!(
            during <= stalled + 1,
            "no progress without quorum: {stalled} -> {during}"
        );

        // Heal: everyone catches up and agrees, including the transfers sent during the split.
        link(&mut oracle, &validators, good(), |i, j| (i < 2) != (j < 2)).await;
        wait_finalized(&context, &refs, &hashes).await;
        wait_for_height(&context, &refs, during + 5).await;
        assert_same_chain(&refs, during + 5).await;
    });
}

#[test]
fn crashed_validator_restarts_and_catches_up() {
    let keys = keys(4);
    let genesis = genesis_for(&keys);
    let validators: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
    let recipient = dev_signer(9).expect("dev key").address();

    // Run 1: all four validators finalize some transfers, then the whole process dies at an
    // arbitrary instant (unsynced writes are lost per the runtime's crash model).
    let (first_hashes, checkpoint) = {
        let (keys, genesis, validators) = (keys.clone(), genesis.clone(), validators.clone());
        Runner::from(
            deterministic::Config::default()
                .with_seed(11)
                .with_timeout(Some(Duration::from_secs(600))),
        )
        .start_and_recover(|context| async move {
            let mut oracle = network(&context, 4);
            let mut registrations = register(&mut oracle, &validators).await;
            link(&mut oracle, &validators, good(), |_, _| true).await;
            let mut nodes = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let registration = registrations.remove(&validators[i]).expect("registered");
                nodes.push(start(&context, &oracle, key, &genesis, i, registration).await);
            }
            let refs: Vec<&Node> = nodes.iter().collect();
            let hashes = submit_transfers(&refs, genesis.chain_id, 3, recipient, 0, 4);
            wait_finalized(&context, &refs, &hashes).await;
            wait_for_height(&context, &refs, 8).await;
            // Die mid-flight, not at a quiet point.
            context.sleep(Duration::from_millis(137)).await;
            hashes
        })
    };

    // Run 2: three validators restart (a quorum) and keep going; validator 3 stays down while the
    // chain moves on, then restarts from its own storage and must catch up via backfill.
    Runner::from(checkpoint).start(|context| async move {
        let mut oracle = network(&context, 4);
        let mut registrations = register(&mut oracle, &validators).await;
        link(&mut oracle, &validators, good(), |_, _| true).await;
        let mut nodes = Vec::new();
        for (i, key) in keys.iter().enumerate().take(3) {
            let registration = registrations.remove(&validators[i]).expect("registered");
            nodes.push(start(&context, &oracle, key, &genesis, i, registration).await);
        }
        // Finalized transactions survived the crash.
        for node in &nodes {
            for hash in &first_hashes {
                assert!(
                    matches!(node.tx_status(*hash), TxStatus::Finalized { .. }),
                    "status survives restart"
                );
            }
        }
        let refs: Vec<&Node> = nodes.iter().collect();
        let resumed = refs
            .iter()
            .map(|n| n.status().latest_height)
            .min()
            .expect("nodes");
        let more = submit_transfers(&refs, genesis.chain_id, 3, recipient, 4, 3);
        wait_finalized(&context, &refs, &more).await;
        wait_for_height(&context, &refs, resumed + 15).await;

        let registration = registrations.remove(&validators[3]).expect("registered");
        let late = start(&context, &oracle, &keys[3], &genesis, 3, registration).await;
        let target = refs
            .iter()
            .map(|n| n.status().latest_height)
            .max()
            .expect("nodes");
        let mut all = refs.clone();
        all.push(&late);
        wait_for_height(&context, &all, target).await;
        wait_finalized(&context, &[&late], &more).await;
        assert_same_chain(&all, target).await;
        assert_eq!(late.account(recipient), nodes[0].account(recipient));
    });
}

#[test]
fn lost_ledger_snapshot_is_rebuilt_from_the_block_archive() {
    let keys = keys(1);
    let genesis = genesis_for(&keys);
    let recipient = dev_signer(6).expect("dev key").address();

    let ((hashes, height, balance), checkpoint) = {
        let (keys, genesis) = (keys.clone(), genesis.clone());
        Runner::from(
            deterministic::Config::default()
                .with_seed(5)
                .with_timeout(Some(Duration::from_secs(120))),
        )
        .start_and_recover(|context| async move {
            let (_oracle, node) = start_alone(&context, &keys[0], &genesis).await;
            let hashes = submit_transfers(&[&node], genesis.chain_id, 4, recipient, 0, 3);
            wait_finalized(&context, &[&node], &hashes).await;
            wait_for_height(&context, &[&node], 6).await;
            let status = node.status();
            (hashes, status.latest_height, node.account(recipient).myc)
        })
    };

    Runner::from(checkpoint).start(|context| async move {
        // Lose the ledger snapshot; the consensus archives survive.
        commonware_runtime::Storage::remove(&context, "validator-0-ledger", None)
            .await
            .expect("remove snapshot");
        let (_oracle, node) = start_alone(&context, &keys[0], &genesis).await;
        wait_for_height(&context, &[&node], height + 2).await;
        assert_eq!(node.account(recipient).myc, balance);
        for hash in &hashes {
            assert!(
                matches!(node.tx_status(*hash), TxStatus::Finalized { .. }),
                "index rebuilt"
            );
        }
    });
}

/// The state is written whole only every `snapshot_every` blocks: a node killed between
/// snapshots comes back, before it serves anything, at the height it had finalized, with the
/// transactions of the blocks after the snapshot applied again and indexed.
#[test]
fn a_restart_applies_the_blocks_after_the_last_snapshot() {
    let keys = keys(1);
    let genesis = genesis_for(&keys);
    let recipient = dev_signer(6).expect("dev key").address();
    let every = SNAPSHOT_EVERY;

    let ((hashes, height, balance), checkpoint) = {
        let (keys, genesis) = (keys.clone(), genesis.clone());
        Runner::from(
            deterministic::Config::default()
                .with_seed(9)
                .with_timeout(Some(Duration::from_secs(300))),
        )
        .start_and_recover(|context| async move {
            let (_oracle, node) = start_alone(&context, &keys[0], &genesis).await;
            wait_for_height(&context, &[&node], every + 1).await;
            let hashes = submit_transfers(&[&node], genesis.chain_id, 4, recipient, 0, 3);
            wait_finalized(&context, &[&node], &hashes).await;
            let status = node.status();
            assert!(
                status.latest_height % every != 0,
                "the crash comes between snapshots"
            );
            (hashes, status.latest_height, node.account(recipient).myc)
        })
    };

    Runner::from(checkpoint).start(|context| async move {
        let (_oracle, node) = start_alone(&context, &keys[0], &genesis).await;
        // No wait: the node is back where it was as soon as it starts.
        assert!(node.status().latest_height >= height);
        assert_eq!(node.account(recipient).myc, balance);
        for hash in &hashes {
            match node.tx_status(*hash) {
                TxStatus::Finalized { height: at, .. } => assert!(at > every),
                other => panic!("transaction after the snapshot not indexed: {other:?}"),
            }
        }
        wait_for_height(&context, &[&node], height + 2).await;
    });
}

/// The whole network dies at random instants, again and again, while transfers flow. After every
/// restart each node holds at least what it had finalized before the crash (nothing finalized is
/// lost), and in the end all nodes agree.
#[test]
fn repeated_unclean_shutdowns_lose_nothing_finalized() {
    let keys = keys(4);
    let genesis = genesis_for(&keys);
    let validators: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
    let recipient = dev_signer(9).expect("dev key").address();
    let target = 45;

    let mut checkpoint = None;
    let mut floor: Vec<u64> = vec![0; 4];
    let mut runs = 0;
    loop {
        let (keys, genesis, validators, previous) = (
            keys.clone(),
            genesis.clone(),
            validators.clone(),
            floor.clone(),
        );
        let run = move |context: deterministic::Context| async move {
            let mut oracle = network(&context, 4);
            let mut registrations = register(&mut oracle, &validators).await;
            link(&mut oracle, &validators, good(), |_, _| true).await;
            let mut nodes = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let registration = registrations.remove(&validators[i]).expect("registered");
                nodes.push(start(&context, &oracle, key, &genesis, i, registration).await);
            }
            for (i, node) in nodes.iter().enumerate() {
                assert!(
                    node.status().latest_height >= previous[i],
                    "node {i} lost finalized blocks: {} < {}",
                    node.status().latest_height,
                    previous[i]
                );
            }
            // A transfer with the next free nonce, to every node.
            let refs: Vec<&Node> = nodes.iter().collect();
            let signer = dev_signer(2).expect("dev key");
            let nonce = nodes[0].next_nonce(signer.address());
            let tx = transfer(&signer, genesis.chain_id, recipient, 1, nonce);
            for node in &refs {
                let _ = node.submit_tx(tx.clone());
            }

            // Crash windows must exceed the consensus recovery timeouts (a restarted view may need
            // a leader timeout and a certification timeout to move on), else no window makes
            // progress. Pseudo-random but deterministic.
            let wait = Duration::from_millis(
                2_000
                    + (context
                        .current()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0)
                        * 7919)
                        % 1200,
            );
            let deadline = context.current() + wait;
            loop {
                let heights: Vec<u64> = refs.iter().map(|n| n.status().latest_height).collect();
                if heights.iter().all(|h| *h >= target) {
                    assert_same_chain(&refs, target).await;
                    return (true, heights);
                }
                if context.current() >= deadline {
                    return (false, heights);
                }
                context.sleep(Duration::from_millis(20)).await;
            }
        };
        let runner = match checkpoint.take() {
            Some(checkpoint) => Runner::from(checkpoint),
            None => Runner::from(
                deterministic::Config::default()
                    .with_seed(21)
                    .with_timeout(Some(Duration::from_secs(600))),
            ),
        };
        let ((done, heights), next) = runner.start_and_recover(run);
        runs += 1;
        if done {
            break;
        }
        floor = heights;
        checkpoint = Some(next);
        assert!(runs < 100, "network made no progress across restarts");
    }
    assert!(
        runs > 2,
        "the network crashed and recovered several times ({runs} runs)"
    );
}

/// A transaction sent to one validator reaches the others' mempools, so it is included even if
/// that validator never leads again.
#[test]
fn transactions_are_relayed_to_other_validators() {
    let runner = Runner::from(
        deterministic::Config::default()
            .with_seed(4)
            .with_timeout(Some(Duration::from_secs(300))),
    );
    runner.start(|context| async move {
        let keys = keys(4);
        let genesis = genesis_for(&keys);
        let mut oracle = network(&context, 4);
        let validators: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
        let mut registrations = register(&mut oracle, &validators).await;
        link(&mut oracle, &validators, good(), |_, _| true).await;
        let mut nodes = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let registration = registrations.remove(&validators[i]).expect("registered");
            nodes.push(start(&context, &oracle, key, &genesis, i, registration).await);
        }
        let refs: Vec<&Node> = nodes.iter().collect();
        wait_for_height(&context, &refs, 2).await;
        let recipient = dev_signer(8).expect("dev key").address();
        let hashes = submit_transfers(&refs[0..1], genesis.chain_id, 5, recipient, 0, 2);
        context.sleep(Duration::from_millis(100)).await;
        for node in &refs[1..] {
            let status = node.tx_status(hashes[0]);
            assert!(
                matches!(status, TxStatus::Pending | TxStatus::Finalized { .. }),
                "relayed: {status:?}"
            );
        }
        // Validator 0 goes silent; the others still include its transactions.
        unlink(&mut oracle, &validators, |i, j| i == 0 || j == 0).await;
        wait_finalized(&context, &refs[1..], &hashes).await;
    });
}
