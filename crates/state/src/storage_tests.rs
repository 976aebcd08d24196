use super::*;
use crate::test_chain::{fee, key, Chain, GENESIS};
use crate::Event;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use mycel_types::tx::{
    CertifyBlob, DeleteBatchItem, DeleteBlob, ExtendBatchItem, ExtendBlob, RegisterBatch,
    RegisterBlob, RegisterStorageNode,
};
use mycel_types::Genesis;

const WRITER: usize = 1;
const NODES: [usize; 4] = [4, 5, 6, 7];
const STAKE: u128 = 100_000_000_000;
const EPOCH: u64 = 10;

fn genesis() -> Genesis {
    let mut g = GENESIS.clone();
    g.storage.epoch_blocks = EPOCH;
    g
}

fn register_node(endpoint: &str, stake: u128) -> impl FnOnce(Address, u64) -> TxKind {
    let endpoint = endpoint.to_string();
    move |from, nonce| {
        TxKind::RegisterStorageNode(RegisterStorageNode {
            from,
            endpoint,
            stake: U256::from(stake),
            nonce,
            fee: fee(),
        })
    }
}

fn register_blob(
    id: B256,
    length: u64,
    committee: u64,
    epochs: u64,
    max: u128,
) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::RegisterBlob(RegisterBlob {
            from,
            blobId: id,
            length,
            committee,
            epochs,
            maxCost: U256::from(max),
            nonce,
            fee: fee(),
        })
    }
}

fn certify(id: B256, signatures: Vec<u8>) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::CertifyBlob(CertifyBlob {
            from,
            blobId: id,
            signatures: signatures.into(),
            nonce,
            fee: fee(),
        })
    }
}

fn confirm(signers: &[&PrivateKeySigner], id: B256, committee: u64) -> Vec<u8> {
    let c = StorageConfirmation {
        blobId: id,
        committee,
    };
    let hash = c.signing_hash_on(GENESIS.chain_id);
    signers
        .iter()
        .flat_map(|s| s.sign_hash_sync(&hash).unwrap().as_bytes())
        .collect()
}

/// A chain with four storage nodes registered (committee 4).
fn chain_with_nodes() -> Chain {
    let mut chain = Chain::with_genesis(&genesis());
    for (k, node) in NODES.iter().enumerate() {
        let receipt = chain
            .run(
                key(*node),
                register_node(&format!("http://127.0.0.1:{}", 9000 + k), STAKE),
            )
            .unwrap();
        assert!(receipt
            .events
            .contains(&Event::Storage(StorageEvent::NodeRegistered {
                node: key(*node).address(),
                committee: k as u64 + 1
            })));
    }
    chain
}

fn myc(chain: &Chain, who: usize) -> u128 {
    chain.state.account(&key(who).address()).myc
}

const ID: B256 = B256::repeat_byte(0x42);

#[test]
fn nodes_lock_stake_and_each_registration_is_a_new_committee() {
    let mut chain = Chain::with_genesis(&genesis());
    let before = myc(&chain, 4);
    assert_eq!(
        chain.refused(key(4), register_node("ftp://x", STAKE)),
        "storage_bad_endpoint"
    );
    assert_eq!(
        chain.refused(key(4), register_node("http://a b", STAKE)),
        "storage_bad_endpoint"
    );
    assert_eq!(
        chain.refused(key(4), register_node("http://x", STAKE - 1)),
        "storage_stake_too_low"
    );
    chain
        .run(key(4), register_node("http://127.0.0.1:9000", STAKE))
        .unwrap();
    assert_eq!(
        myc(&chain, 4),
        before - STAKE - crate::test_chain::fee().to::<u128>()
    );
    // Again: the endpoint moves, stake may be added, the committee stays.
    chain
        .run(key(4), register_node("http://127.0.0.1:9999", 5))
        .unwrap();
    let node = chain.state.storage().node(&key(4).address()).unwrap();
    assert_eq!(
        (node.endpoint.as_str(), node.stake),
        ("http://127.0.0.1:9999", STAKE + 5)
    );
    assert_eq!(chain.state.storage().current_committee(), 1);
    // A blob needs four nodes.
    assert_eq!(
        chain.refused(key(WRITER), register_blob(ID, 10, 1, 1, u128::MAX)),
        "storage_committee_too_small"
    );
    let chain = chain_with_nodes();
    let members = chain.state.storage().committee(4).unwrap();
    let mut sorted: Vec<Address> = NODES.iter().map(|n| key(*n).address()).collect();
    sorted.sort();
    assert_eq!(members, &sorted[..]);
    assert_eq!(chain.state.storage().myc_held(), 4 * STAKE);
}

#[test]
fn a_blob_is_paid_for_by_its_encoded_size_and_refused_for_every_wrong_field() {
    let mut chain = chain_with_nodes();
    let layout = Layout::new(4, 1 << 20).unwrap();
    let price = chain.state.params().storage.epoch_price(&layout).unwrap();
    assert!(price > 0);
    let w = key(WRITER);
    assert_eq!(
        chain.refused(w, register_blob(ID, 1 << 20, 3, 2, u128::MAX)),
        "storage_wrong_committee"
    );
    assert_eq!(
        chain.refused(w, register_blob(ID, 1 << 20, 4, 0, u128::MAX)),
        "blob_bad_epochs"
    );
    assert_eq!(
        chain.refused(w, register_blob(ID, 1 << 20, 4, 105, u128::MAX)),
        "blob_bad_epochs"
    );
    assert_eq!(
        chain.refused(w, register_blob(ID, (64 << 30) + 1, 4, 1, u128::MAX)),
        "blob_too_large"
    );
    assert_eq!(
        chain.refused(w, register_blob(ID, 1 << 20, 4, 2, 2 * price - 1)),
        "blob_cost_above_max"
    );
    let before = myc(&chain, WRITER);
    let receipt = chain
        .run(w, register_blob(ID, 1 << 20, 4, 2, 2 * price))
        .unwrap();
    assert!(
        matches!(&receipt.events[0], Event::Storage(StorageEvent::BlobRegistered { paid, .. }) if *paid == 2 * price)
    );
    assert_eq!(myc(&chain, WRITER), before - 2 * price - fee().to::<u128>());
    assert_eq!(chain.state.storage().fund(), 2 * price);
    assert_eq!(
        chain.refused(w, register_blob(ID, 1 << 20, 4, 2, u128::MAX)),
        "blob_already_registered"
    );
}

#[test]
fn a_quorum_of_committee_confirmations_certifies_counted_across_transactions() {
    let mut chain = chain_with_nodes();
    let w = key(WRITER);
    chain
        .run(w, register_blob(ID, 1000, 4, 1, u128::MAX))
        .unwrap();
    let nodes: Vec<&PrivateKeySigner> = NODES.iter().map(|n| key(*n)).collect();
    let forged = confirm(&[nodes[0], nodes[1], key(2)], ID, 4);
    assert_eq!(
        chain.refused(w, certify(ID, forged)),
        "blob_confirmation_not_in_committee"
    );
    let other_committee = confirm(&nodes[..3], ID, 3);
    assert_eq!(
        chain.refused(w, certify(ID, other_committee)),
        "blob_confirmation_not_in_committee"
    );
    let repeated = confirm(&[nodes[0], nodes[1], nodes[0]], ID, 4);
    assert_eq!(
        chain.refused(w, certify(ID, repeated)),
        "blob_duplicate_confirmation"
    );
    let mut short = confirm(&nodes[..3], ID, 4);
    short.pop();
    assert_eq!(
        chain.refused(w, certify(ID, short)),
        "blob_malformed_signatures"
    );
    assert_eq!(
        chain.refused(w, certify(B256::ZERO, confirm(&nodes[..3], B256::ZERO, 4))),
        "blob_unknown"
    );
    // Fewer than 2f + 1 are counted, not certified; a signer counted before is refused; the
    // rest may come in another transaction, from anyone.
    let receipt = chain
        .run(w, certify(ID, confirm(&nodes[..2], ID, 4)))
        .unwrap();
    assert!(receipt
        .events
        .contains(&Event::Storage(StorageEvent::BlobConfirmed {
            blob_id: ID,
            confirmations: 2,
            needed: 3
        })));
    assert!(chain
        .state
        .storage()
        .blob(&ID)
        .unwrap()
        .certified_height
        .is_none());
    assert_eq!(
        chain.refused(w, certify(ID, confirm(&nodes[1..3], ID, 4))),
        "blob_duplicate_confirmation"
    );
    let receipt = chain
        .run(key(3), certify(ID, confirm(&nodes[2..3], ID, 4)))
        .unwrap();
    assert!(receipt
        .events
        .contains(&Event::Storage(StorageEvent::BlobCertified {
            blob_id: ID,
            confirmations: 3
        })));
    assert!(chain
        .state
        .storage()
        .blob(&ID)
        .unwrap()
        .certified_height
        .is_some());
    assert_eq!(
        chain.refused(w, certify(ID, confirm(&nodes, ID, 4))),
        "blob_already_certified"
    );
}

#[test]
fn each_epoch_pays_the_committee_exactly_and_the_blob_expires_when_its_epochs_are_over() {
    let mut chain = chain_with_nodes();
    let w = key(WRITER);
    chain
        .run(w, register_blob(ID, 3 << 20, 4, 2, u128::MAX))
        .unwrap();
    let blob = chain.state.storage().blob(&ID).unwrap().clone();
    let price = blob.epoch_price;
    let balances = |c: &Chain| NODES.map(|n| myc(c, n));
    let start = balances(&chain);
    // To the first block of the next epoch: one epoch paid.
    while !chain.state.height().is_multiple_of(EPOCH)
        || chain.state.height() <= blob.registered_height
    {
        chain.advance_blocks(1);
    }
    let paid: u128 = balances(&chain).iter().zip(start).map(|(a, b)| a - b).sum();
    assert_eq!(paid, price);
    assert_eq!(chain.state.storage().fund(), price);
    let payout = chain.state.storage().last_payout().unwrap();
    assert_eq!((payout.blobs, payout.total), (1, price));
    let shares: Vec<u128> = balances(&chain)
        .iter()
        .zip(start)
        .map(|(a, b)| a - b)
        .collect();
    assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
    chain.advance_blocks(EPOCH);
    assert_eq!(chain.state.storage().fund(), 0);
    assert!(
        chain.state.storage().blob(&ID).is_none(),
        "expired after its two epochs"
    );
    let total: u128 = balances(&chain).iter().zip(start).map(|(a, b)| a - b).sum();
    assert_eq!(total, 2 * price);
    let nodes: Vec<&PrivateKeySigner> = NODES.iter().map(|n| key(*n)).collect();
    assert_eq!(
        chain.refused(w, certify(ID, confirm(&nodes, ID, 4))),
        "blob_unknown"
    );
}

#[test]
fn extend_pays_more_epochs_and_delete_refunds_those_not_begun() {
    let mut chain = chain_with_nodes();
    let w = key(WRITER);
    chain
        .run(w, register_blob(ID, 1 << 20, 4, 3, u128::MAX))
        .unwrap();
    let price = chain.state.storage().blob(&ID).unwrap().epoch_price;
    let extend = |epochs: u64, max: u128| {
        move |from, nonce| {
            TxKind::ExtendBlob(ExtendBlob {
                from,
                blobId: ID,
                epochs,
                maxCost: U256::from(max),
                nonce,
                fee: fee(),
            })
        }
    };
    assert_eq!(
        chain.refused(key(2), extend(2, 2 * price - 1)),
        "blob_cost_above_max"
    );
    assert_eq!(
        chain.refused(key(2), extend(102, u128::MAX)),
        "blob_bad_epochs"
    );
    chain.run(key(2), extend(2, 2 * price)).unwrap();
    assert_eq!(chain.state.storage().fund(), 5 * price);
    let delete = |from, nonce| {
        TxKind::DeleteBlob(DeleteBlob {
            from,
            blobId: ID,
            nonce,
            fee: fee(),
        })
    };
    assert_eq!(chain.refused(key(2), delete), "blob_not_owner");
    let before = myc(&chain, WRITER);
    let receipt = chain.run(w, delete).unwrap();
    assert!(receipt
        .events
        .contains(&Event::Storage(StorageEvent::BlobDeleted {
            blob_id: ID,
            refunded: 4 * price
        })));
    assert_eq!(myc(&chain, WRITER), before + 4 * price - fee().to::<u128>());
    assert_eq!(
        chain.state.storage().fund(),
        price,
        "the current epoch stays paid"
    );
    assert_eq!(chain.refused(w, delete), "blob_expired");
    assert_eq!(chain.refused(key(2), extend(1, u128::MAX)), "blob_expired");
    chain.advance_blocks(EPOCH);
    assert_eq!(chain.state.storage().fund(), 0);
    assert!(chain.state.storage().blob(&ID).is_none());
}

fn register_batch(
    id: B256,
    length: u64,
    item_epochs: &[u32],
) -> impl FnOnce(Address, u64) -> TxKind {
    let epochs: Vec<u8> = item_epochs.iter().flat_map(|e| e.to_be_bytes()).collect();
    move |from, nonce| {
        TxKind::RegisterBatch(RegisterBatch {
            from,
            blobId: id,
            length,
            committee: 4,
            itemEpochs: epochs.into(),
            maxCost: U256::MAX,
            nonce,
            fee: fee(),
        })
    }
}

fn extend_item(id: B256, item: u64, epochs: u64) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::ExtendBatchItem(ExtendBatchItem {
            from,
            blobId: id,
            item,
            epochs,
            maxCost: U256::MAX,
            nonce,
            fee: fee(),
        })
    }
}

fn delete_item(id: B256, item: u64) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::DeleteBatchItem(DeleteBatchItem {
            from,
            blobId: id,
            item,
            nonce,
            fee: fee(),
        })
    }
}

fn items(chain: &Chain, id: &B256) -> Vec<(u64, bool)> {
    let blob = chain.state.storage().blob(id).unwrap();
    blob.items
        .iter()
        .map(|i| (i.end_epoch, i.deleted))
        .collect()
}

#[test]
fn a_batch_is_paid_whole_until_its_last_item_ends_and_items_move_alone() {
    let mut chain = chain_with_nodes();
    let w = key(WRITER);
    for bad in [
        &[][..],
        &[1u32; MAX_BATCH_ITEMS + 1][..],
        &[0][..],
        &[105][..],
    ] {
        let code = chain.refused(w, register_batch(ID, 4096, bad));
        assert!(
            ["batch_malformed", "blob_bad_epochs"].contains(&code),
            "{code}"
        );
    }
    let fund_before = chain.state.storage().fund();
    chain.run(w, register_batch(ID, 4096, &[1, 3, 2])).unwrap();
    let blob = chain.state.storage().blob(&ID).unwrap().clone();
    let (e, price) = (blob.start_epoch, blob.epoch_price);
    assert_eq!(blob.end_epoch, e + 3, "paid for its longest item");
    assert_eq!(chain.state.storage().fund() - fund_before, 3 * price);
    assert_eq!(
        items(&chain, &ID),
        [(e + 1, false), (e + 3, false), (e + 2, false)]
    );
    // Within the blob's paid life an item's extension is free; past it, paid.
    let before = myc(&chain, 2);
    chain.run(key(2), extend_item(ID, 0, 1)).unwrap();
    assert_eq!(myc(&chain, 2), before - fee().to::<u128>());
    let receipt = chain.run(key(2), extend_item(ID, 1, 2)).unwrap();
    assert!(receipt
        .events
        .contains(&Event::Storage(StorageEvent::BatchItemChanged {
            blob_id: ID,
            item: 1,
            end_epoch: e + 5,
            deleted: false,
            paid: 2 * price,
            refunded: 0,
        })));
    assert_eq!(chain.state.storage().blob(&ID).unwrap().end_epoch, e + 5);
    assert_eq!(
        chain.refused(key(2), extend_item(ID, 3, 1)),
        "batch_no_item"
    );
    assert_eq!(
        chain.refused(key(2), extend_item(ID, 0, 0)),
        "blob_bad_epochs"
    );
    // Deleting the longest item gives back the epochs no other item needs.
    assert_eq!(chain.refused(key(2), delete_item(ID, 1)), "blob_not_owner");
    let before = myc(&chain, WRITER);
    chain.run(w, delete_item(ID, 1)).unwrap();
    assert_eq!(myc(&chain, WRITER), before + 3 * price - fee().to::<u128>());
    assert_eq!(
        items(&chain, &ID),
        [(e + 2, false), (e + 1, true), (e + 2, false)]
    );
    assert_eq!(chain.state.storage().blob(&ID).unwrap().end_epoch, e + 2);
    assert_eq!(chain.refused(w, delete_item(ID, 1)), "batch_item_ended");
    assert_eq!(
        chain.refused(key(2), extend_item(ID, 1, 1)),
        "batch_item_ended"
    );
    // Extending the whole batch moves its live items only.
    chain
        .run(key(2), |from, nonce| {
            TxKind::ExtendBlob(ExtendBlob {
                from,
                blobId: ID,
                epochs: 1,
                maxCost: U256::MAX,
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    assert_eq!(
        items(&chain, &ID),
        [(e + 3, false), (e + 1, true), (e + 3, false)]
    );
    // Items are not for plain blobs.
    let plain = B256::repeat_byte(7);
    chain
        .run(w, register_blob(plain, 10, 4, 1, u128::MAX))
        .unwrap();
    assert_eq!(chain.refused(w, delete_item(plain, 0)), "blob_not_a_batch");
    // Paid whole each epoch while an item lives; deleting the last live items ends the blob.
    let start = NODES.map(|n| myc(&chain, n));
    chain.advance_blocks(EPOCH);
    let paid: u128 = NODES
        .iter()
        .zip(start)
        .map(|(n, b)| myc(&chain, *n) - b)
        .sum();
    assert!(paid >= price, "the batch's epoch was paid whole");
    let epoch = epoch_of(chain.state.height() + 1, &chain.state.params().storage);
    chain.run(w, delete_item(ID, 0)).unwrap();
    let before = myc(&chain, WRITER);
    chain.run(w, delete_item(ID, 2)).unwrap();
    let blob = chain.state.storage().blob(&ID).unwrap();
    assert!(blob.deleted, "every item deleted");
    assert_eq!(blob.end_epoch, epoch + 1);
    assert_eq!(
        myc(&chain, WRITER),
        before + (e + 3 - (epoch + 1)) as u128 * price - fee().to::<u128>()
    );
    chain.advance_blocks(EPOCH);
    assert!(chain.state.storage().blob(&ID).is_none());
    assert_eq!(chain.state.storage().fund(), 0);
}

fn report(node: usize, epoch: u64) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::ReportStorageFailure(mycel_types::tx::ReportStorageFailure {
            from,
            node: key(node).address(),
            epoch,
            nonce,
            fee: fee(),
        })
    }
}

#[test]
fn a_node_reported_by_a_quorum_is_paid_nothing_and_loses_stake_and_fewer_reports_do_nothing() {
    let mut chain = chain_with_nodes();
    // Everything below happens within one epoch of 10 blocks.
    while !chain.state.height().is_multiple_of(EPOCH) {
        chain.advance_blocks(1);
    }
    chain
        .run(key(WRITER), register_blob(ID, 3 << 20, 4, 3, u128::MAX))
        .unwrap();
    let price = chain.state.storage().blob(&ID).unwrap().epoch_price;
    let epoch = epoch_of(chain.state.height() + 1, &chain.state.params().storage);
    // Refusals first.
    assert_eq!(
        chain.refused(key(WRITER), report(4, epoch)),
        "storage_not_a_node"
    );
    assert_eq!(
        chain.refused(key(4), report(4, epoch)),
        "storage_not_a_node"
    );
    assert_eq!(
        chain.refused(key(5), report(WRITER, epoch)),
        "storage_not_a_node"
    );
    assert_eq!(
        chain.refused(key(5), report(4, epoch + 1)),
        "storage_wrong_epoch"
    );
    // Three of the four report node 4; two report node 5 (below 2f + 1 = 3).
    for reporter in [5, 6, 7] {
        let receipt = chain.run(key(reporter), report(4, epoch)).unwrap();
        assert!(matches!(
            &receipt.events[0],
            Event::Storage(StorageEvent::FailureReported { .. })
        ));
    }
    assert_eq!(
        chain.refused(key(5), report(4, epoch)),
        "storage_already_reported"
    );
    chain.run(key(6), report(5, epoch)).unwrap();
    chain.run(key(7), report(5, epoch)).unwrap();
    let balances = |c: &Chain| NODES.map(|n| myc(c, n));
    let (start, burned_before) = (balances(&chain), chain.state.supply().myc_burned);
    let stake = |c: &Chain, n: usize| c.state.storage().node(&key(n).address()).unwrap().stake;
    while !chain.state.height().is_multiple_of(EPOCH) {
        chain.advance_blocks(1);
    }
    let payout = chain.state.storage().last_payout().unwrap().clone();
    assert_eq!(payout.slashed, vec![key(4).address()]);
    let paid: Vec<u128> = balances(&chain)
        .iter()
        .zip(start)
        .map(|(a, b)| a - b)
        .collect();
    assert_eq!(paid[0], 0, "the slashed node is paid nothing");
    assert!(paid[1] > 0 && paid[2] > 0 && paid[3] > 0);
    assert_eq!(stake(&chain, 4), STAKE - STAKE / 10);
    assert_eq!(
        stake(&chain, 5),
        STAKE,
        "two reports of four nodes slash nothing"
    );
    let share: u128 = paid.iter().sum();
    assert_eq!(payout.burned, price - share + STAKE / 10);
    // Fees of the blocks in between are burned too; the slashing's part is exact.
    assert!(chain.state.supply().myc_burned >= burned_before + payout.burned);
    // The reports of a paid epoch are gone: nothing carries over.
    chain.advance_blocks(EPOCH);
    assert!(chain
        .state
        .storage()
        .last_payout()
        .unwrap()
        .slashed
        .is_empty());
}
