//! Training runs in the latest finalized state: `GET /v1/subnets/{netuid}/training`, the run a
//! subnet's miners commit to and its aggregator publishes for (docs/training.md).

use super::{ok, parse_netuid, unknown_subnet, Answered, ApiError, ApiState};
use axum::extract::{Path, State};
use mycel_types::api::{self, code};

/// The subnet's run: `400` `bad_netuid`, `404` `unknown_subnet`, or `404` `no_training_run` for
/// a subnet whose owner started none.
pub(super) async fn run(
    State(api): State<ApiState>,
    Path(netuid): Path<String>,
) -> Answered<api::TrainingRun> {
    let netuid = parse_netuid(&netuid)?;
    api.node.with_finalized_state(|s| {
        if s.subnets().get(netuid).is_none() {
            return Err(unknown_subnet(netuid));
        }
        s.training_run(netuid).map(ok).ok_or_else(|| {
            ApiError::not_found(
                code::NO_TRAINING_RUN,
                format!(
                    "subnet {netuid} has no training run: its owner starts one with \
                     StartTrainingRun"
                ),
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{B256, U256};
    use alloy_signer::SignerSync;
    use alloy_signer_local::PrivateKeySigner;
    use axum::body::Body;
    use axum::http::Request;
    use commonware_runtime::{Runner as _, Supervisor as _};
    use mycel_chain::{generate_validator_key, start_node, Node, NodeConfig, TxOutcome, TxStatus};
    use mycel_testkit::free_port;
    use mycel_types::storage::StorageConfirmation;
    use mycel_types::{api, keys::dev_signer, tx, Genesis, SignedTx, TxKind};
    use std::time::Duration;
    use tower::ServiceExt;

    const FEE: u64 = 10_000;

    fn node_config(dir: &std::path::Path) -> NodeConfig {
        let key = generate_validator_key();
        let genesis = Genesis::devnet(vec![key.public_key.clone()], 0).expect("genesis");
        let listen = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut config = NodeConfig::new(dir, genesis, key.private_key, listen, vec![]);
        config.consensus.block_time_ms = 100;
        config.consensus.leader_timeout_ms = 1_000;
        config.consensus.certification_timeout_ms = 2_000;
        config
    }

    /// Submits every `(signer, kind)` and waits until each is finalized and applied.
    async fn finalize(node: &Node, chain_id: u64, txs: Vec<(&PrivateKeySigner, TxKind)>) {
        let hashes: Vec<B256> = txs
            .into_iter()
            .map(|(signer, kind)| {
                let tx = SignedTx::sign(kind, chain_id, signer).expect("signs");
                node.submit_tx(tx).expect("the mempool takes it")
            })
            .collect();
        for hash in hashes {
            let mut waited = 0;
            loop {
                match node.tx_status(hash) {
                    TxStatus::Finalized {
                        result: TxOutcome::Success { .. },
                        ..
                    } => break,
                    TxStatus::Pending | TxStatus::Unknown if waited < 600 => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        waited += 1;
                    }
                    other => panic!("transaction {hash}: {other:?}"),
                }
            }
        }
    }

    /// `GET path` on the router: the status and the body.
    async fn get(router: &axum::Router, path: &str) -> (u16, Vec<u8>) {
        let request = Request::get(path).body(Body::empty()).expect("a request");
        let response = router.clone().oneshot(request).await.expect("an answer");
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        (status, body.to_vec())
    }

    async fn error_code(router: &axum::Router, path: &str) -> (u16, String) {
        let (status, body) = get(router, path).await;
        let body: api::ErrorBody = serde_json::from_slice(&body).expect("an error body");
        (status, body.error.code)
    }

    #[test]
    fn a_subnets_training_run_is_served_once_its_owner_starts_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = node_config(dir.path());
        let genesis = config.genesis.clone();
        let chain_id = genesis.chain_id;
        let owner = dev_signer(0).expect("dev key");
        let writer = dev_signer(1).expect("dev key");
        let nodes: Vec<PrivateKeySigner> =
            (4..8).map(|i| dev_signer(i).expect("dev key")).collect();
        let fee = U256::from(FEE);
        let checkpoint = B256::repeat_byte(0xc0);

        commonware_runtime::tokio::Runner::new(config.runtime_config()).start(
            |context| async move {
                let node = start_node(context.child("node"), config)
                    .await
                    .expect("node starts");
                let router = super::super::router(node.clone(), genesis);

                // A subnet and four storage nodes, then a certified checkpoint blob.
                let stake = node.with_finalized_state(|s| s.params().storage.min_node_stake);
                let mut batch = vec![(
                    &owner,
                    TxKind::RegisterSubnet(tx::RegisterSubnet {
                        from: owner.address(),
                        hotkey: owner.address(),
                        maxLockCost: U256::from(u128::MAX),
                        nonce: 0,
                        fee,
                    }),
                )];
                for (k, n) in nodes.iter().enumerate() {
                    batch.push((
                        n,
                        TxKind::RegisterStorageNode(tx::RegisterStorageNode {
                            from: n.address(),
                            endpoint: format!("http://127.0.0.1:{}", 9000 + k),
                            stake: U256::from(stake),
                            nonce: 0,
                            fee,
                        }),
                    ));
                }
                finalize(&node, chain_id, batch).await;
                let committee = node.with_finalized_state(|s| s.storage().current_committee());
                let register = TxKind::RegisterBlob(tx::RegisterBlob {
                    from: writer.address(),
                    blobId: checkpoint,
                    length: 1000,
                    committee,
                    epochs: 2,
                    maxCost: U256::from(u128::MAX),
                    nonce: 0,
                    fee,
                });
                finalize(&node, chain_id, vec![(&writer, register)]).await;
                let hash = StorageConfirmation {
                    blobId: checkpoint,
                    committee,
                }
                .signing_hash_on(chain_id);
                let signatures: Vec<u8> = nodes[..3]
                    .iter()
                    .flat_map(|n| n.sign_hash_sync(&hash).expect("signs").as_bytes())
                    .collect();
                let certify = TxKind::CertifyBlob(tx::CertifyBlob {
                    from: writer.address(),
                    blobId: checkpoint,
                    signatures: signatures.into(),
                    nonce: 1,
                    fee,
                });
                finalize(&node, chain_id, vec![(&writer, certify)]).await;

                assert_eq!(
                    error_code(&router, "/v1/subnets/x/training").await,
                    (400, "bad_netuid".to_string())
                );
                assert_eq!(
                    error_code(&router, "/v1/subnets/7/training").await,
                    (404, "unknown_subnet".to_string())
                );
                assert_eq!(
                    error_code(&router, "/v1/subnets/1/training").await,
                    (404, "no_training_run".to_string())
                );

                let start = TxKind::StartTrainingRun(tx::StartTrainingRun {
                    from: owner.address(),
                    netuid: 1,
                    checkpoint,
                    checkpointHash: B256::repeat_byte(0x11),
                    spec: B256::repeat_byte(0x5e),
                    aggregator: writer.address(),
                    roundBlocks: 20,
                    revealBlocks: 10,
                    nonce: 1,
                    fee,
                });
                finalize(&node, chain_id, vec![(&owner, start)]).await;
                let (status, body) = get(&router, "/v1/subnets/1/training").await;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                let run: api::TrainingRun = serde_json::from_slice(&body).expect("a training run");
                assert_eq!(
                    Some(&run),
                    node.with_finalized_state(|s| s.training_run(1)).as_ref()
                );
                assert_eq!(
                    (
                        run.netuid,
                        run.owner,
                        run.aggregator,
                        run.round,
                        run.checkpoint
                    ),
                    (1, owner.address(), writer.address(), 0, checkpoint)
                );
                assert_eq!(run.deadline, run.started_height + 20);
                assert_eq!(run.history.len(), 1);
            },
        );
    }
}
