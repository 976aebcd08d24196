//! The production path: a one-validator node on the tokio runtime with authenticated p2p on
//! loopback finalizes a transfer, stops, and restarts from its data directory.

use alloy_primitives::{Address, U256};
use commonware_runtime::{Clock, Runner as _, Supervisor as _};
use mycel_chain::{generate_validator_key, start_node, NodeConfig, TxStatus};
use mycel_testkit::free_port;
use mycel_types::{keys::dev_signer, Genesis, SignedTx, Transfer, TxKind};
use std::{net::SocketAddr, time::Duration};

/// A port the OS says is free now (tests run in parallel; fixed ports would collide).
fn node_config(dir: &std::path::Path, port: u16) -> NodeConfig {
    let key = generate_validator_key();
    let genesis = Genesis::devnet(vec![key.public_key.clone()], 0).expect("genesis");
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut config = NodeConfig::new(dir, genesis, key.private_key, listen, vec![]);
    config.consensus.block_time_ms = 100;
    config.consensus.leader_timeout_ms = 1_000;
    config.consensus.certification_timeout_ms = 2_000;
    config
}

#[test]
fn one_validator_on_tokio_finalizes_and_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = node_config(dir.path(), free_port());
    let signer = dev_signer(0).expect("dev key");
    let recipient = Address::repeat_byte(0x42);
    let tx = SignedTx::sign(
        TxKind::Transfer(Transfer {
            from: signer.address(),
            to: recipient,
            token: Address::ZERO,
            amount: U256::from(5_000u64),
            memo: Default::default(),
            nonce: 0,
            fee: U256::from(10_000u64),
        }),
        config.genesis.chain_id,
        &signer,
    )
    .expect("sign");

    let first = config.clone();
    let (hash, height) = commonware_runtime::tokio::Runner::new(first.runtime_config()).start(
        |context| async move {
            let node = start_node(context.child("node"), first)
                .await
                .expect("node starts");
            let hash = node.submit_tx(tx).expect("accepted");
            let mut blocks = node.subscribe();
            for _ in 0..300 {
                if matches!(node.tx_status(hash), TxStatus::Finalized { .. }) {
                    break;
                }
                context.sleep(Duration::from_millis(50)).await;
            }
            assert!(
                matches!(node.tx_status(hash), TxStatus::Finalized { .. }),
                "finalized in time"
            );
            assert_eq!(node.account(recipient).myc, 5_000);
            let block = blocks.recv().await.expect("a block was published");
            assert!(block.height >= 1);
            assert!(node.block(block.height).await.is_some());
            (hash, node.status().latest_height)
        },
    );

    commonware_runtime::tokio::Runner::new(config.runtime_config()).start(|context| async move {
        let node = start_node(context.child("node"), config)
            .await
            .expect("node restarts");
        assert!(
            node.status().latest_height >= height,
            "resumes from its data directory"
        );
        assert!(
            matches!(node.tx_status(hash), TxStatus::Finalized { .. }),
            "status survives restart"
        );
        assert_eq!(node.account(recipient).myc, 5_000);
        let target = node.status().latest_height + 3;
        for _ in 0..300 {
            if node.status().latest_height >= target {
                break;
            }
            context.sleep(Duration::from_millis(50)).await;
        }
        assert!(
            node.status().latest_height >= target,
            "keeps finalizing after restart"
        );
    });

    // Another chain's genesis on the same data directory is refused with an error, not a panic.
    let other = node_config(dir.path(), free_port());
    commonware_runtime::tokio::Runner::new(other.runtime_config()).start(|context| async move {
        let err = start_node(context.child("node"), other)
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("another data directory"), "{err}");
    });
}

/// Four validators, each in its own process-like runtime with its own data directory, find each
/// other over authenticated p2p on loopback and finalize the same blocks.
#[test]
fn four_validator_localnet_on_tokio() {
    let keys: Vec<_> = (0..4).map(|_| generate_validator_key()).collect();
    let genesis =
        Genesis::devnet(keys.iter().map(|k| k.public_key.clone()).collect(), 0).expect("genesis");
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let peers: Vec<mycel_chain::PeerConfig> = keys
        .iter()
        .zip(&ports)
        .map(|(k, port)| mycel_chain::PeerConfig {
            public_key: k.public_key.clone(),
            address: format!("127.0.0.1:{port}").parse().expect("addr"),
        })
        .collect();
    let dirs: Vec<_> = (0..4)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut threads = Vec::new();
    for i in 0..4 {
        let mut config = NodeConfig::new(
            dirs[i].path(),
            genesis.clone(),
            keys[i].private_key.clone(),
            format!("127.0.0.1:{}", ports[i]).parse().expect("addr"),
            peers.clone(),
        );
        config.consensus.block_time_ms = 100;
        config.consensus.leader_timeout_ms = 1_000;
        config.consensus.certification_timeout_ms = 2_000;
        let tx = tx.clone();
        let done = done.clone();
        threads.push(std::thread::spawn(move || {
            commonware_runtime::tokio::Runner::new(config.runtime_config()).start(
                |context| async move {
                    let node = start_node(context.child("node"), config)
                        .await
                        .expect("node starts");
                    for _ in 0..1_200 {
                        if node.status().latest_height >= 5 {
                            break;
                        }
                        context.sleep(Duration::from_millis(50)).await;
                    }
                    let mut hashes = Vec::new();
                    for h in 0..=5 {
                        hashes.push(node.block(h).await.map(|b| (b.hash, b.state_root)));
                    }
                    tx.send((i, hashes)).expect("report");
                    // Keep serving peers until everyone is done (lagging peers backfill from us).
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    for _ in 0..1_200 {
                        if done.load(std::sync::atomic::Ordering::SeqCst) == 4 {
                            break;
                        }
                        context.sleep(Duration::from_millis(50)).await;
                    }
                    context.sleep(Duration::from_millis(500)).await;
                },
            )
        }));
    }
    drop(tx);
    let reports: Vec<_> = rx.iter().collect();
    for thread in threads {
        thread.join().expect("node thread");
    }
    assert_eq!(reports.len(), 4);
    let reference = &reports[0].1;
    assert!(
        reference.iter().all(Option::is_some),
        "node {} reached height 5",
        reports[0].0
    );
    for (i, hashes) in &reports {
        assert_eq!(hashes, reference, "node {i} agrees");
    }
}
