//! The incentive layer over HTTP: a one-validator node on loopback takes incentive transactions
//! in their JSON form (`POST /v1/txs`) and serves the subnet, metagraph, pool, emission and
//! stake queries from its finalized state.

use alloy_primitives::{Address, U256};
use commonware_runtime::{Runner as _, Supervisor as _};
use mycel_chain::{generate_validator_key, start_node, NodeConfig};
use mycel_testkit::free_port;
use mycel_types::{keys::dev_signer, tx, Genesis, SignedTx, TxKind};
use serde_json::Value;
use std::{net::SocketAddr, time::Duration};

fn node_config(dir: &std::path::Path) -> NodeConfig {
    let key = generate_validator_key();
    let genesis = Genesis::devnet(vec![key.public_key.clone()], 0).expect("genesis");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let mut config = NodeConfig::new(dir, genesis, key.private_key, listen, vec![]);
    config.consensus.block_time_ms = 100;
    config.consensus.leader_timeout_ms = 1_000;
    config.consensus.certification_timeout_ms = 2_000;
    config
}

const FEE: u64 = 10_000;

#[test]
fn incentive_transactions_and_queries_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = node_config(dir.path());
    let genesis = config.genesis.clone();
    let chain_id = genesis.chain_id;
    let owner = dev_signer(0).unwrap();
    let owner_hotkey = dev_signer(1).unwrap().address();
    let miner = dev_signer(2).unwrap();
    let staker = dev_signer(3).unwrap();

    commonware_runtime::tokio::Runner::new(config.runtime_config()).start(|context| async move {
        let node = start_node(context.child("node"), config)
            .await
            .expect("node starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(mycel_rpc::serve(
            listener,
            node.clone(),
            genesis,
            mycel_http::ServeLimits::default(),
            mycel_rpc::Attached::default(),
            std::future::pending(),
        ));
        let http = reqwest::Client::new();
        let get = |path: &str| {
            let (http, url) = (http.clone(), format!("{base}{path}"));
            async move {
                let resp = http.get(url).send().await.unwrap();
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.unwrap())
            }
        };
        let submit = |kind: TxKind, signer: &alloy_signer_local::PrivateKeySigner| {
            let tx = SignedTx::sign(kind, chain_id, signer).unwrap();
            let (http, url) = (http.clone(), format!("{base}/v1/txs"));
            async move {
                let resp = http.post(url).json(&tx.to_json()).send().await.unwrap();
                assert_eq!(resp.status().as_u16(), 202, "{:?}", resp.text().await);
                resp.json::<Value>().await.unwrap()["hash"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
        };
        let wait_finalized = |hash: String| async move {
            for _ in 0..300 {
                let (_, body) = get(&format!("/v1/txs/{hash}")).await;
                if body["status"] == "finalized" {
                    assert!(body.get("receipt").is_some(), "{body}");
                    return body;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("transaction {hash} not finalized in time");
        };

        let (status, body) = get("/v1/emission/receipts/latest").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("no_emission_receipt"))
        );

        let register = TxKind::RegisterSubnet(tx::RegisterSubnet {
            from: owner.address(),
            hotkey: owner_hotkey,
            maxLockCost: U256::from(1_000u64) * U256::from(1_000_000_000u64),
            nonce: 0,
            fee: U256::from(FEE),
        });
        let done = wait_finalized(submit(register, &owner).await).await;
        let events = &done["receipt"]["events"];
        assert_eq!(events[0]["event"], "incentive");
        assert_eq!(events[0]["action"], "subnet_registered");
        assert_eq!(events[0]["netuid"], 1);

        let reg = TxKind::BurnedRegister(tx::BurnedRegister {
            from: miner.address(),
            netuid: 1,
            hotkey: miner.address(),
            maxBurn: U256::from(10u64) * U256::from(1_000_000_000u64),
            nonce: 0,
            fee: U256::from(FEE),
        });
        let stake = TxKind::AddStake(tx::AddStake {
            from: staker.address(),
            hotkey: owner_hotkey,
            netuid: 1,
            amount: U256::from(10_000_000_000u64),
            limitPrice: U256::ZERO,
            nonce: 0,
            fee: U256::from(FEE),
        });
        let h1 = submit(reg, &miner).await;
        let h2 = submit(stake, &staker).await;
        wait_finalized(h1).await;
        wait_finalized(h2).await;

        let (status, list) = get("/v1/subnets").await;
        assert_eq!(status, 200);
        assert_eq!(list["subnets"].as_array().unwrap().len(), 1);
        assert_eq!(
            list["subnets"][0]["owner"],
            serde_json::json!(owner.address())
        );

        let (_, info) = get("/v1/subnets/1").await;
        assert_eq!(info["params"]["tempo"], 360);
        assert_eq!(info["lock"], "100000000000");

        let (_, mg) = get("/v1/subnets/1/metagraph").await;
        let neurons = mg["neurons"].as_array().unwrap();
        assert_eq!(neurons.len(), 2);
        assert_eq!(neurons[1]["hotkey"], serde_json::json!(miner.address()));
        assert_ne!(
            neurons[0]["alpha"], "0",
            "the stake sits on the owner hotkey"
        );

        let (_, pools) = get("/v1/pools").await;
        let myc: u128 = pools["pools"][0]["myc_reserve"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(myc > 110_000_000_000, "lock + stake + injections: {myc}");

        let (_, stakes) = get(&format!("/v1/stakes/{}", staker.address())).await;
        assert_eq!(stakes["stakes"][0]["netuid"], 1);
        assert_ne!(stakes["stakes"][0]["alpha"], "0");

        let (_, emission) = get("/v1/emission").await;
        assert_eq!(emission["block_emission"], "1000000000");
        assert_eq!(emission["next_halving_at"], "10500000000000000");

        let (status, receipt) = get("/v1/emission/receipts/latest").await;
        assert_eq!(status, 200);
        assert_eq!(receipt["subnets"][0]["netuid"], 1);
        assert_eq!(receipt["block_emission"], "1000000000");

        let (status, body) = get("/v1/subnets/7").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("unknown_subnet"))
        );
        let (status, body) = get("/v1/subnets/x/metagraph").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_netuid"))
        );
        let (status, _) = get(&format!("/v1/stakes/{}", Address::ZERO)).await;
        assert_eq!(status, 200);
    });
}
