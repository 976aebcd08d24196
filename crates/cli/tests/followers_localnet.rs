//! Followers started by the network commands, with real processes: `mycel localnet --followers 1`
//! gives a four-validator localnet a follower that syncs the chain block for block and forwards a
//! transfer sent to it; `mycel up --followers 1` gives the devnet one, stopped with the devnet.

use alloy_primitives::{Address, U256};
use mycel_client::api::TxState;
use mycel_client::blocking::NodeClient;
use mycel_client::SendOptions;
use mycel_testkit::devnet::wait_for_height;
use mycel_testkit::{dev_signer, free_port, free_port_range, Devnet, DevnetOptions, Proc, TestDir};
use mycel_types::{Token, Transfer, TxKind};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

const DEAD: Address = alloy_primitives::address!("000000000000000000000000000000000000dEaD");
/// One MYC in base units.
const ONE_MYC: u128 = 1_000_000_000;

/// The follower's finalized height, once it is at least `height`; panics with its log after
/// `timeout` (the follower logs to its own file, not the supervisor's).
#[track_caller]
fn wait_follower(client: &NodeClient, height: u64, log: &Path, timeout: Duration) -> u64 {
    mycel_testkit::devnet::wait_for_height_or(client.base(), height, timeout, || {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        format!(
            "the follower at {}; its log:\n{}",
            client.base(),
            mycel_testkit::process::tail(&log, 40)
        )
    })
}

/// Whether anything still accepts connections on `addr`.
fn answers(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

#[test]
fn a_localnet_follower_syncs_every_block_and_forwards_a_transfer() {
    let dir = TestDir::new();
    let net = dir.path().join("localnet");
    // Four p2p ports, four API ports and the follower's, in one run so they cannot overlap.
    let base = free_port_range(9);
    let (p2p, rpc_base, follower_port) = (base, base + 4, base + 8);
    let args: Vec<String> = [
        "localnet",
        "--validators",
        "4",
        "--followers",
        "1",
        "--dir",
        &net.display().to_string(),
        "--p2p-port",
        &p2p.to_string(),
        "--rpc-port",
        &rpc_base.to_string(),
        "--follower-port",
        &follower_port.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut localnet = Proc::mycel(
        "localnet",
        &args,
        "warn,mycel_chain=info",
        &dir.join("localnet.log"),
    );
    let follower_addr = SocketAddr::from(([127, 0, 0, 1], follower_port));
    let follower_log = net.join("follower-0").join("node.log");
    localnet.wait_for_log(
        &format!("follower 0: http://{follower_addr}"),
        Duration::from_secs(30),
    );
    let follower = NodeClient::new(&format!("http://{follower_addr}"))
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    wait_follower(&follower, 5, &follower_log, Duration::from_secs(180));

    // A transfer signed by dev account 1, sent to the follower (which forwards it), finalizes.
    let sent = follower
        .send_and_wait(
            &dev_signer(1),
            &SendOptions::timeout(Duration::from_secs(60)),
            |f| {
                TxKind::Transfer(Transfer {
                    from: f.from,
                    to: DEAD,
                    token: Token::Myc.address(),
                    amount: U256::from(ONE_MYC),
                    memo: Default::default(),
                    nonce: f.nonce,
                    fee: f.fee,
                })
            },
        )
        .unwrap();
    let applied = sent
        .applied()
        .unwrap_or_else(|e| panic!("the transfer sent to the follower did not apply: {e}"));

    // The follower and every validator agree on every block up to the follower's height.
    let top = follower.status().unwrap().height;
    assert!(top >= applied.height);
    let validators: Vec<NodeClient> = (0..4)
        .map(|i| {
            let rpc = format!("http://127.0.0.1:{}", rpc_base + i);
            wait_for_height(&rpc, top, &localnet, Duration::from_secs(60));
            NodeClient::new(&rpc).unwrap()
        })
        .collect();
    for validator in &validators {
        match validator.tx(applied.hash).unwrap().state {
            TxState::Finalized { height, .. } => assert_eq!(height, applied.height),
            other => panic!("{} reports the transfer {other:?}", validator.base()),
        }
    }
    for height in 1..=top {
        let ours = follower.block(height).unwrap();
        for validator in &validators {
            let theirs = validator.block(height).unwrap();
            assert_eq!(
                (ours.hash, ours.state_root),
                (theirs.hash, theirs.state_root),
                "block {height}: the follower and {} disagree",
                validator.base()
            );
        }
    }

    // Stopping the localnet stops its follower.
    assert!(
        localnet.terminate(Duration::from_secs(30)).is_some(),
        "the localnet did not stop on SIGTERM"
    );
    assert!(
        !answers(follower_addr),
        "the follower still serves after the localnet stopped"
    );
}

#[test]
fn an_up_follower_serves_the_devnet_chain_and_stops_with_it() {
    let port = free_port();
    let devnet = Devnet::start_with(DevnetOptions::default().args(&[
        "--followers",
        "1",
        "--follower-port",
        &port.to_string(),
    ]));
    let follower_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let follower_log = devnet.data_dir().join("follower-0").join("node.log");
    let follower = NodeClient::new(&format!("http://{follower_addr}"))
        .unwrap()
        .with_timeout(Duration::from_secs(5));
    let target = devnet.wait_for_height(3, Duration::from_secs(60));
    wait_follower(&follower, target, &follower_log, Duration::from_secs(120));
    let ours = follower.status().unwrap();
    let theirs = devnet.client().status().unwrap();
    assert_eq!(ours.genesis_hash, theirs.genesis_hash);
    assert_eq!(ours.chain_id, theirs.chain_id);
    assert!(
        devnet
            .log()
            .contains(&format!("follower 0  http://{follower_addr}")),
        "`mycel up` does not say where its follower serves:\n{}",
        devnet.log_tail()
    );

    // Dropping the devnet sends `mycel up` SIGTERM; it stops its follower before it exits.
    drop(devnet);
    assert!(
        !answers(follower_addr),
        "the follower still serves after `mycel up` stopped"
    );
}
