use super::*;
use crate::test_chain::{fee, key, Chain};
use crate::Event;
use alloy_primitives::U256;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use mycel_types::storage::StorageConfirmation;
use mycel_types::tx::{
    BurnedRegister, CertifyBlob, CommitTrainingUpdate, DeleteBlob, PublishTrainingCheckpoint,
    RegisterBlob, RegisterStorageNode, RegisterSubnet, RevealTrainingUpdate, StartTrainingRun,
};
use mycel_types::SignedTx;

/// The subnet owner's coldkey.
const OWNER: usize = 0;
/// The run's aggregator; it also writes the blobs.
const AGGREGATOR: usize = 1;
/// Two hotkeys registered as neurons (each its own coldkey).
const MINERS: [usize; 2] = [2, 3];
/// The storage nodes (committee 4); none is a neuron.
const NODES: [usize; 4] = [4, 5, 6, 7];
const ROUND_BLOCKS: u64 = 3;
const REVEAL_BLOCKS: u64 = 2;

/// Certified checkpoints.
const CKPT: [B256; 3] = [
    B256::repeat_byte(0xc0),
    B256::repeat_byte(0xc1),
    B256::repeat_byte(0xc2),
];
/// Registered, never certified.
const UNCERTIFIED: B256 = B256::repeat_byte(0xd0);
/// Never registered.
const UNKNOWN: B256 = B256::repeat_byte(0xee);
/// The miners' update blobs (registered, not certified), per miner.
const UPDATES: [B256; 2] = [B256::repeat_byte(0xa2), B256::repeat_byte(0xa3)];
const SPEC: B256 = B256::repeat_byte(0x5e);

fn hash_of(blob: B256) -> B256 {
    alloy_primitives::keccak256(blob)
}

/// A chain with a subnet owned by [`OWNER`], the [`MINERS`] registered in it, four storage
/// nodes, the [`CKPT`] blobs certified and [`UNCERTIFIED`] and [`UPDATES`] registered. Returns
/// the subnet's netuid.
fn chain() -> (Chain, u16) {
    let mut chain = Chain::new();
    chain
        .run(key(OWNER), |from, nonce| {
            TxKind::RegisterSubnet(RegisterSubnet {
                from,
                hotkey: Address::repeat_byte(0xa0),
                maxLockCost: U256::from(u128::MAX),
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    let netuid = chain.state.subnets().iter().next().unwrap().netuid;
    for miner in MINERS {
        chain
            .run(key(miner), |from, nonce| {
                TxKind::BurnedRegister(BurnedRegister {
                    from,
                    netuid,
                    hotkey: from,
                    maxBurn: U256::from(u128::MAX),
                    nonce,
                    fee: fee(),
                })
            })
            .unwrap();
    }
    let stake = chain.state.params().storage.min_node_stake;
    for (k, node) in NODES.iter().enumerate() {
        chain
            .run(key(*node), |from, nonce| {
                TxKind::RegisterStorageNode(RegisterStorageNode {
                    from,
                    endpoint: format!("http://127.0.0.1:{}", 9000 + k),
                    stake: U256::from(stake),
                    nonce,
                    fee: fee(),
                })
            })
            .unwrap();
    }
    let committee = chain.state.storage().current_committee();
    let blobs = CKPT.iter().chain([&UNCERTIFIED]).chain(UPDATES.iter());
    for id in blobs {
        chain
            .run(key(AGGREGATOR), |from, nonce| {
                TxKind::RegisterBlob(RegisterBlob {
                    from,
                    blobId: *id,
                    length: 1000,
                    committee,
                    epochs: 10,
                    maxCost: U256::from(u128::MAX),
                    nonce,
                    fee: fee(),
                })
            })
            .unwrap();
    }
    let signers: Vec<&PrivateKeySigner> = NODES[..3].iter().map(|n| key(*n)).collect();
    for id in CKPT {
        let hash = StorageConfirmation {
            blobId: id,
            committee,
        }
        .signing_hash_on(chain.state.params().chain_id);
        let signatures: Vec<u8> = signers
            .iter()
            .flat_map(|s| s.sign_hash_sync(&hash).unwrap().as_bytes())
            .collect();
        chain
            .run(key(AGGREGATOR), |from, nonce| {
                TxKind::CertifyBlob(CertifyBlob {
                    from,
                    blobId: id,
                    signatures: signatures.into(),
                    nonce,
                    fee: fee(),
                })
            })
            .unwrap();
        assert!(chain
            .state
            .storage()
            .blob(&id)
            .unwrap()
            .certified_height
            .is_some());
    }
    (chain, netuid)
}

fn start(
    netuid: u16,
    checkpoint: B256,
    round_blocks: u64,
    reveal_blocks: u64,
) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::StartTrainingRun(StartTrainingRun {
            from,
            netuid,
            checkpoint,
            checkpointHash: hash_of(checkpoint),
            spec: SPEC,
            aggregator: key(AGGREGATOR).address(),
            roundBlocks: round_blocks,
            revealBlocks: reveal_blocks,
            nonce,
            fee: fee(),
        })
    }
}

fn commit(netuid: u16, round: u64, update: B256) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::CommitTrainingUpdate(CommitTrainingUpdate {
            from,
            netuid,
            round,
            updateHash: hash_of(update),
            nonce,
            fee: fee(),
        })
    }
}

fn reveal(netuid: u16, round: u64, blob: B256) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::RevealTrainingUpdate(RevealTrainingUpdate {
            from,
            netuid,
            round,
            blobId: blob,
            nonce,
            fee: fee(),
        })
    }
}

fn publish(
    netuid: u16,
    round: u64,
    checkpoint: B256,
    accepted: u64,
) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::PublishTrainingCheckpoint(PublishTrainingCheckpoint {
            from,
            netuid,
            round,
            checkpoint,
            checkpointHash: hash_of(checkpoint),
            accepted,
            nonce,
            fee: fee(),
        })
    }
}

/// Empty blocks until the next block is `height`.
fn next_block_is(chain: &mut Chain, height: u64) {
    assert!(chain.state.height() < height, "block {height} is past");
    chain.advance_blocks(height - 1 - chain.state.height());
}

/// The height the next transaction runs at.
fn next(chain: &Chain) -> u64 {
    chain.state.height() + 1
}

/// Applies `make` by `who` in the next block, checking what a training transaction must: it
/// succeeds, emits `event` then the fee, moves no token but its fee (applied alone, only the
/// sender's account and the burned MYC change), and changes both the training part of the
/// state root and the whole root.
fn applied(
    chain: &mut Chain,
    who: &PrivateKeySigner,
    make: impl FnOnce(Address, u64) -> TxKind,
    event: TrainingEvent,
) {
    let kind = make(who.address(), chain.nonce(who));
    let fee = fee().to::<u128>();
    let tx = SignedTx::sign(kind.clone(), chain.state.params().chain_id, who).unwrap();
    let mut alone = chain.state.clone();
    alone
        .apply_verified(&alone.verify_stateless(tx).unwrap())
        .unwrap();
    let sender = chain.state.account(&who.address());
    assert_eq!(
        alone.account(&who.address()),
        crate::Account {
            myc: sender.myc - fee,
            nonce: sender.nonce + 1,
            ..sender
        }
    );
    assert_eq!(alone.account_count(), chain.state.account_count());
    assert_eq!(
        alone.supply(),
        &crate::Supply {
            myc_burned: chain.state.supply().myc_burned + fee,
            ..chain.state.supply().clone()
        }
    );
    alone.assert_books_balance();

    let part = |c: &Chain| c.state.training().fold_root(B256::ZERO);
    let before_part = part(chain);
    let before_root = chain.state.state_root();
    let receipt = chain.run(who, |_, _| kind).unwrap();
    assert_eq!(
        receipt.events,
        vec![
            Event::Training(event),
            Event::FeeBurned {
                from: who.address(),
                amount: fee
            }
        ]
    );
    assert_ne!(part(chain), before_part, "the training digest did not move");
    assert_ne!(chain.state.state_root(), before_root);
}

fn run_of(chain: &Chain, netuid: u16) -> TrainingRun {
    chain.state.training_run(netuid).unwrap()
}

#[test]
fn a_run_goes_through_two_rounds_of_commit_reveal_and_checkpoint() {
    let (mut chain, netuid) = chain();
    let [m0, m1] = MINERS.map(key);
    let h0 = next(&chain);
    applied(
        &mut chain,
        key(OWNER),
        start(netuid, CKPT[0], ROUND_BLOCKS, REVEAL_BLOCKS),
        TrainingEvent::RunStarted {
            netuid,
            checkpoint: CKPT[0],
            aggregator: key(AGGREGATOR).address(),
        },
    );
    let first = TrainingCheckpoint {
        round: 0,
        checkpoint: CKPT[0],
        checkpoint_hash: hash_of(CKPT[0]),
        height: h0,
        accepted: 0,
    };
    assert_eq!(
        run_of(&chain, netuid),
        TrainingRun {
            netuid,
            owner: key(OWNER).address(),
            aggregator: key(AGGREGATOR).address(),
            spec: SPEC,
            round_blocks: ROUND_BLOCKS,
            reveal_blocks: REVEAL_BLOCKS,
            started_height: h0,
            round: 0,
            round_start: h0,
            deadline: h0 + ROUND_BLOCKS,
            reveal_end: h0 + ROUND_BLOCKS + REVEAL_BLOCKS,
            checkpoint: CKPT[0],
            checkpoint_hash: hash_of(CKPT[0]),
            updates: vec![],
            history: vec![first.clone()],
        }
    );

    // Round 0: both miners commit, the second in the deadline's own block.
    let deadline = h0 + ROUND_BLOCKS;
    let c0 = next(&chain);
    applied(
        &mut chain,
        m0,
        commit(netuid, 0, UPDATES[0]),
        TrainingEvent::UpdateCommitted {
            netuid,
            round: 0,
            hotkey: m0.address(),
            update_hash: hash_of(UPDATES[0]),
        },
    );
    next_block_is(&mut chain, deadline);
    applied(
        &mut chain,
        m1,
        commit(netuid, 0, UPDATES[1]),
        TrainingEvent::UpdateCommitted {
            netuid,
            round: 0,
            hotkey: m1.address(),
            update_hash: hash_of(UPDATES[1]),
        },
    );
    let run = run_of(&chain, netuid);
    assert_eq!(
        run.updates,
        vec![
            TrainingUpdate {
                hotkey: m0.address(),
                commit_index: 0,
                update_hash: hash_of(UPDATES[0]),
                committed_height: c0,
                blob_id: None,
            },
            TrainingUpdate {
                hotkey: m1.address(),
                commit_index: 1,
                update_hash: hash_of(UPDATES[1]),
                committed_height: deadline,
                blob_id: None,
            },
        ]
    );

    // Reveals: the first block after the deadline and the last of the window.
    let reveal_end = deadline + REVEAL_BLOCKS;
    for (miner, blob) in [(m1, UPDATES[1]), (m0, UPDATES[0])] {
        if miner == m0 {
            next_block_is(&mut chain, reveal_end);
        }
        applied(
            &mut chain,
            miner,
            reveal(netuid, 0, blob),
            TrainingEvent::UpdateRevealed {
                netuid,
                round: 0,
                hotkey: miner.address(),
                blob_id: blob,
            },
        );
    }
    let run = run_of(&chain, netuid);
    assert_eq!(run.updates[0].blob_id, Some(UPDATES[0]));
    assert_eq!(run.updates[1].blob_id, Some(UPDATES[1]));

    // The aggregator publishes the first block after the reveals: round 1 begins.
    let p1 = next(&chain);
    assert_eq!(p1, reveal_end + 1);
    applied(
        &mut chain,
        key(AGGREGATOR),
        publish(netuid, 0, CKPT[1], 2),
        TrainingEvent::CheckpointPublished {
            netuid,
            round: 0,
            checkpoint: CKPT[1],
            accepted: 2,
        },
    );
    let second = TrainingCheckpoint {
        round: 1,
        checkpoint: CKPT[1],
        checkpoint_hash: hash_of(CKPT[1]),
        height: p1,
        accepted: 2,
    };
    let run = run_of(&chain, netuid);
    assert_eq!(
        (run.round, run.round_start, run.deadline, run.reveal_end),
        (1, p1, p1 + ROUND_BLOCKS, p1 + ROUND_BLOCKS + REVEAL_BLOCKS)
    );
    assert_eq!(
        (run.checkpoint, run.checkpoint_hash),
        (CKPT[1], hash_of(CKPT[1]))
    );
    assert!(run.updates.is_empty());
    assert_eq!(run.history, vec![first.clone(), second.clone()]);
    assert_eq!((run.started_height, run.owner), (h0, key(OWNER).address()));

    // Round 1: one miner, no update accepted.
    applied(
        &mut chain,
        m1,
        commit(netuid, 1, UPDATES[1]),
        TrainingEvent::UpdateCommitted {
            netuid,
            round: 1,
            hotkey: m1.address(),
            update_hash: hash_of(UPDATES[1]),
        },
    );
    next_block_is(&mut chain, run.deadline + 1);
    applied(
        &mut chain,
        m1,
        reveal(netuid, 1, UPDATES[1]),
        TrainingEvent::UpdateRevealed {
            netuid,
            round: 1,
            hotkey: m1.address(),
            blob_id: UPDATES[1],
        },
    );
    next_block_is(&mut chain, run.reveal_end + 5);
    let p2 = next(&chain);
    applied(
        &mut chain,
        key(AGGREGATOR),
        publish(netuid, 1, CKPT[2], 0),
        TrainingEvent::CheckpointPublished {
            netuid,
            round: 1,
            checkpoint: CKPT[2],
            accepted: 0,
        },
    );
    let run = run_of(&chain, netuid);
    assert_eq!((run.round, run.round_start), (2, p2));
    assert_eq!(
        run.history,
        vec![
            first,
            second,
            TrainingCheckpoint {
                round: 2,
                checkpoint: CKPT[2],
                checkpoint_hash: hash_of(CKPT[2]),
                height: p2,
                accepted: 0,
            }
        ]
    );

    // The owner restarts the run: round 0 again from the checkpoint it names.
    let h1 = next(&chain);
    applied(
        &mut chain,
        key(OWNER),
        start(netuid, CKPT[2], 10, 10),
        TrainingEvent::RunStarted {
            netuid,
            checkpoint: CKPT[2],
            aggregator: key(AGGREGATOR).address(),
        },
    );
    let run = run_of(&chain, netuid);
    assert_eq!(
        (
            run.round,
            run.started_height,
            run.deadline,
            run.history.len()
        ),
        (0, h1, h1 + 10, 1)
    );

    // A snapshot keeps the runs, and its root is the same.
    let root = chain.state.state_root();
    let mut again = crate::State::from_snapshot_bytes(&chain.state.to_snapshot_bytes()).unwrap();
    assert_eq!(again.state_root(), root);
    assert_eq!(again.training_run(netuid), Some(run));
}

#[test]
fn starting_a_run_needs_the_owner_sane_timing_and_a_certified_checkpoint() {
    let (mut chain, netuid) = chain();
    let owner = key(OWNER);
    assert_eq!(
        chain.refused(key(AGGREGATOR), start(netuid, CKPT[0], 3, 2)),
        "training_not_owner"
    );
    assert_eq!(
        chain.refused(owner, start(netuid + 1, CKPT[0], 3, 2)),
        "training_unknown_subnet"
    );
    for (round_blocks, reveal_blocks) in [(0, 2), (3, 0), (MAX_PHASE_BLOCKS + 1, 2), (3, u64::MAX)]
    {
        assert_eq!(
            chain.refused(owner, start(netuid, CKPT[0], round_blocks, reveal_blocks)),
            "training_bad_timing"
        );
    }
    assert_eq!(
        chain.refused(owner, start(netuid, UNKNOWN, 3, 2)),
        "training_unknown_blob"
    );
    assert_eq!(
        chain.refused(owner, start(netuid, UNCERTIFIED, 3, 2)),
        "training_blob_not_certified"
    );
    // A deleted blob is no checkpoint, even while its nodes still hold it this epoch.
    chain
        .run(key(AGGREGATOR), |from, nonce| {
            TxKind::DeleteBlob(DeleteBlob {
                from,
                blobId: CKPT[1],
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    assert!(chain.state.storage().blob(&CKPT[1]).unwrap().deleted);
    assert_eq!(
        chain.refused(owner, start(netuid, CKPT[1], 3, 2)),
        "training_unknown_blob"
    );
    assert!(chain.state.training_run(netuid).is_none());
    chain
        .run(
            owner,
            start(netuid, CKPT[0], MAX_PHASE_BLOCKS, MAX_PHASE_BLOCKS),
        )
        .unwrap();
    assert!(chain.state.training_run(netuid).is_some());
}

#[test]
fn every_refusal_of_a_round_has_its_code_and_changes_nothing() {
    let (mut chain, netuid) = chain();
    let [m0, m1] = MINERS.map(key);
    let aggregator = key(AGGREGATOR);

    // No run yet.
    assert_eq!(
        chain.refused(m0, commit(netuid, 0, UPDATES[0])),
        "training_no_run"
    );
    assert_eq!(
        chain.refused(m0, reveal(netuid, 0, UPDATES[0])),
        "training_no_run"
    );
    assert_eq!(
        chain.refused(aggregator, publish(netuid, 0, CKPT[1], 0)),
        "training_no_run"
    );

    let h0 = next(&chain);
    chain
        .run(
            key(OWNER),
            start(netuid, CKPT[0], ROUND_BLOCKS, REVEAL_BLOCKS),
        )
        .unwrap();
    let deadline = h0 + ROUND_BLOCKS;
    let reveal_end = deadline + REVEAL_BLOCKS;

    // Commit phase.
    assert_eq!(
        chain.refused(key(NODES[0]), commit(netuid, 0, UPDATES[0])),
        "training_not_neuron"
    );
    assert_eq!(
        chain.refused(key(OWNER), commit(netuid, 0, UPDATES[0])),
        "training_not_neuron"
    );
    assert_eq!(
        chain.refused(m0, commit(netuid, 1, UPDATES[0])),
        "training_wrong_round"
    );
    chain.run(m0, commit(netuid, 0, UPDATES[0])).unwrap();
    assert_eq!(
        chain.refused(m0, commit(netuid, 0, UPDATES[1])),
        "training_already_committed"
    );
    assert_eq!(
        chain.refused(m0, reveal(netuid, 0, UPDATES[0])),
        "training_reveal_too_early"
    );
    assert_eq!(
        chain.refused(m1, publish(netuid, 0, CKPT[1], 0)),
        "training_not_aggregator"
    );
    assert_eq!(
        chain.refused(aggregator, publish(netuid, 0, CKPT[1], 0)),
        "training_publish_too_early"
    );

    // Reveal phase.
    next_block_is(&mut chain, deadline + 1);
    assert_eq!(
        chain.refused(m1, commit(netuid, 0, UPDATES[1])),
        "training_commit_closed"
    );
    assert_eq!(
        chain.refused(m1, reveal(netuid, 0, UPDATES[1])),
        "training_no_commit"
    );
    assert_eq!(
        chain.refused(m0, reveal(netuid, 1, UPDATES[0])),
        "training_wrong_round"
    );
    assert_eq!(
        chain.refused(m0, reveal(netuid, 0, UNKNOWN)),
        "training_unknown_blob"
    );
    chain.run(m0, reveal(netuid, 0, UPDATES[0])).unwrap();
    assert_eq!(
        chain.refused(m0, reveal(netuid, 0, UPDATES[0])),
        "training_already_revealed"
    );
    assert_eq!(
        chain.refused(aggregator, publish(netuid, 0, CKPT[1], 1)),
        "training_publish_too_early"
    );

    // After the reveals.
    next_block_is(&mut chain, reveal_end + 1);
    assert_eq!(
        chain.refused(m0, reveal(netuid, 0, UPDATES[0])),
        "training_reveal_closed"
    );
    assert_eq!(
        chain.refused(m1, commit(netuid, 0, UPDATES[1])),
        "training_commit_closed"
    );
    assert_eq!(
        chain.refused(aggregator, publish(netuid, 0, CKPT[1], 2)),
        "training_too_many_accepted"
    );
    assert_eq!(
        chain.refused(aggregator, publish(netuid, 0, UNCERTIFIED, 1)),
        "training_blob_not_certified"
    );
    assert_eq!(
        chain.refused(aggregator, publish(netuid, 0, UNKNOWN, 1)),
        "training_unknown_blob"
    );
    assert_eq!(
        chain.refused(aggregator, publish(netuid, 1, CKPT[1], 1)),
        "training_wrong_round"
    );
    assert_eq!(
        chain.refused(m0, publish(netuid, 0, CKPT[1], 1)),
        "training_not_aggregator"
    );
    chain
        .run(aggregator, publish(netuid, 0, CKPT[1], 1))
        .unwrap();

    // A round late: the old round's transactions name the wrong round.
    assert_eq!(
        chain.refused(m1, commit(netuid, 0, UPDATES[1])),
        "training_wrong_round"
    );
    assert_eq!(
        chain.refused(aggregator, publish(netuid, 0, CKPT[2], 0)),
        "training_wrong_round"
    );
    chain.run(m1, commit(netuid, 1, UPDATES[1])).unwrap();
}

#[test]
fn codes_are_distinct_and_prefixed() {
    let a = Address::ZERO;
    let b = B256::ZERO;
    let all = [
        TrainingError::UnknownSubnet { netuid: 1 },
        TrainingError::NotOwner {
            netuid: 1,
            sender: a,
            owner: a,
        },
        TrainingError::BadTiming {
            round_blocks: 0,
            reveal_blocks: 0,
        },
        TrainingError::UnknownBlob { blob_id: b },
        TrainingError::BlobNotCertified { blob_id: b },
        TrainingError::NoRun { netuid: 1 },
        TrainingError::NotNeuron {
            netuid: 1,
            hotkey: a,
        },
        TrainingError::WrongRound {
            netuid: 1,
            got: 1,
            current: 0,
        },
        TrainingError::CommitClosed {
            round: 0,
            deadline: 1,
            height: 2,
        },
        TrainingError::AlreadyCommitted {
            hotkey: a,
            round: 0,
        },
        TrainingError::RevealTooEarly {
            round: 0,
            deadline: 1,
            height: 1,
        },
        TrainingError::RevealClosed {
            round: 0,
            reveal_end: 1,
            height: 2,
        },
        TrainingError::NoCommit {
            hotkey: a,
            round: 0,
        },
        TrainingError::AlreadyRevealed {
            hotkey: a,
            round: 0,
        },
        TrainingError::NotAggregator {
            netuid: 1,
            sender: a,
            aggregator: a,
        },
        TrainingError::PublishTooEarly {
            round: 0,
            reveal_end: 1,
            from: 2,
            height: 1,
        },
        TrainingError::TooManyAccepted {
            round: 0,
            accepted: 1,
            revealed: 0,
        },
    ];
    let codes: std::collections::BTreeSet<&str> = all.iter().map(|e| e.code()).collect();
    assert_eq!(codes.len(), all.len());
    assert!(codes.iter().all(|c| c.starts_with("training_")));
    for e in &all {
        assert_eq!(TxError::Training(e.clone()).code(), e.code());
    }
}
