#![allow(irrefutable_let_patterns)] // more kinds of transaction are coming
use super::*;
use alloy_primitives::Bytes;
use alloy_signer_local::PrivateKeySigner;
use mycel_types::{amount::MUSD_ADDRESS, keys::dev_signer, Transfer};
use proptest::prelude::*;
use std::sync::LazyLock;

static SIGNERS: LazyLock<Vec<PrivateKeySigner>> =
    LazyLock::new(|| (0..4).map(|i| dev_signer(i).unwrap()).collect());

static GENESIS: LazyLock<Genesis> =
    LazyLock::new(|| Genesis::devnet(vec!["ab".repeat(32)], 1_000).unwrap());

fn genesis() -> Genesis {
    GENESIS.clone()
}

fn transfer_kind(
    from: usize,
    to: Address,
    token: Token,
    amount: u128,
    nonce: u64,
    fee: u128,
) -> TxKind {
    TxKind::Transfer(Transfer {
        from: SIGNERS[from].address(),
        to,
        token: token.address(),
        amount: U256::from(amount),
        memo: Bytes::new(),
        nonce,
        fee: U256::from(fee),
    })
}

fn signed(from: usize, to: Address, token: Token, amount: u128, nonce: u64) -> SignedTx {
    let kind = transfer_kind(from, to, token, amount, nonce, genesis().min_fee);
    SignedTx::sign(kind, genesis().chain_id, &SIGNERS[from]).unwrap()
}

/// Applies `tx`, expecting it to fail, and checks that nothing at all changed.
fn refused(state: &mut State, tx: &SignedTx) -> TxError {
    let before = state.clone();
    let root_before = state.state_root();
    let err = state.apply_tx(tx).expect_err("tx should be refused");
    assert_eq!(*state, before, "a refused tx changed the state");
    assert_eq!(state.state_root(), root_before);
    assert_eq!(
        state.check_tx(tx),
        Err(err.clone()),
        "check_tx and apply_tx disagree"
    );
    err
}

#[test]
fn transfer_moves_funds_burns_fee_and_bumps_nonce() {
    let mut state = State::from_genesis(&genesis());
    let to = Address::repeat_byte(0x42);
    let before = state.account(&SIGNERS[0].address());
    let receipt = state
        .apply_tx(&signed(0, to, Token::Myc, 1_500_000_000, 0))
        .unwrap();
    let after = state.account(&SIGNERS[0].address());
    let fee = genesis().min_fee;
    assert_eq!(after.myc, before.myc - 1_500_000_000 - fee);
    assert_eq!(after.nonce, 1);
    assert_eq!(state.account(&to).myc, 1_500_000_000);
    assert_eq!(state.supply().myc_burned, fee);
    assert_eq!(receipt.events.len(), 2);
    state.apply_tx(&signed(0, to, Token::Musd, 7, 1)).unwrap();
    assert_eq!(state.account(&to).musd, 7);
    state.assert_books_balance();
}

#[test]
fn self_transfer_only_costs_the_fee() {
    let mut state = State::from_genesis(&genesis());
    let me = SIGNERS[1].address();
    let before = state.account(&me);
    state.apply_tx(&signed(1, me, Token::Myc, 5, 0)).unwrap();
    assert_eq!(state.account(&me).myc, before.myc - genesis().min_fee);
    state.assert_books_balance();
}

#[test]
fn each_bad_tx_is_refused_with_its_own_error_and_changes_nothing() {
    let mut state = State::from_genesis(&genesis());
    let to = Address::repeat_byte(7);
    state.apply_tx(&signed(0, to, Token::Myc, 1, 0)).unwrap();
    let mut codes = std::collections::BTreeSet::new();

    // Bad signature: signed by key 1, claims to be from key 0.
    let forged = SignedTx::sign(
        transfer_kind(0, to, Token::Myc, 1, 1, 10_000),
        1337,
        &SIGNERS[1],
    )
    .unwrap();
    assert!(matches!(
        refused(&mut state, &forged),
        TxError::BadSignature { .. }
    ));
    codes.insert("bad_signature");

    // Tampered amount after signing.
    let mut tampered = signed(0, to, Token::Myc, 1, 1);
    if let TxKind::Transfer(t) = &mut tampered.kind {
        t.amount = U256::from(1_000_000u64);
    }
    assert!(matches!(
        refused(&mut state, &tampered),
        TxError::BadSignature { .. }
    ));

    // Wrong chain id (signed properly, for another chain).
    let other_chain = SignedTx::sign(
        transfer_kind(0, to, Token::Myc, 1, 1, 10_000),
        1,
        &SIGNERS[0],
    )
    .unwrap();
    assert_eq!(
        refused(&mut state, &other_chain),
        TxError::WrongChainId {
            expected: 1337,
            got: 1
        }
    );
    codes.insert("wrong_chain_id");

    // Stale and future nonces.
    assert_eq!(
        refused(&mut state, &signed(0, to, Token::Myc, 1, 0)),
        TxError::StaleNonce {
            expected: 1,
            got: 0
        }
    );
    assert_eq!(
        refused(&mut state, &signed(0, to, Token::Myc, 1, 5)),
        TxError::FutureNonce {
            expected: 1,
            got: 5
        }
    );
    codes.insert("stale_nonce");
    codes.insert("future_nonce");

    // Overdraft, in each token, and by the fee alone.
    let balance = state.account(&SIGNERS[0].address());
    let e = refused(&mut state, &signed(0, to, Token::Myc, balance.myc, 1));
    assert!(
        matches!(
            e,
            TxError::InsufficientBalance {
                token: Token::Myc,
                ..
            }
        ),
        "{e}"
    );
    let e = refused(&mut state, &signed(0, to, Token::Musd, balance.musd + 1, 1));
    assert!(
        matches!(
            e,
            TxError::InsufficientBalance {
                token: Token::Musd,
                ..
            }
        ),
        "{e}"
    );
    codes.insert("insufficient_balance");

    // Fee shortfall.
    let cheap = SignedTx::sign(
        transfer_kind(0, to, Token::Myc, 1, 1, 9_999),
        1337,
        &SIGNERS[0],
    )
    .unwrap();
    assert!(matches!(
        refused(&mut state, &cheap),
        TxError::FeeTooLow { .. }
    ));
    codes.insert("fee_too_low");

    // Oversized tx: a memo that pushes the encoding over max_tx_bytes.
    let mut big = transfer_kind(0, to, Token::Myc, 1, 1, 10_000);
    if let TxKind::Transfer(t) = &mut big {
        t.memo = vec![0u8; 4096].into();
    }
    let big = SignedTx::sign(big, 1337, &SIGNERS[0]).unwrap();
    assert!(matches!(
        refused(&mut state, &big),
        TxError::TooLarge { .. }
    ));
    codes.insert("too_large");

    // Memo over its own limit but under the size limit.
    let mut memo = transfer_kind(0, to, Token::Myc, 1, 1, 10_000);
    if let TxKind::Transfer(t) = &mut memo {
        t.memo = vec![0u8; MAX_MEMO_BYTES + 1].into();
    }
    let memo = SignedTx::sign(memo, 1337, &SIGNERS[0]).unwrap();
    assert!(matches!(
        refused(&mut state, &memo),
        TxError::MemoTooLarge { .. }
    ));
    codes.insert("memo_too_large");

    // A token the chain does not have.
    let mut unknown = transfer_kind(0, to, Token::Myc, 1, 1, 10_000);
    if let TxKind::Transfer(t) = &mut unknown {
        t.token = Address::repeat_byte(0xee);
    }
    let unknown = SignedTx::sign(unknown, 1337, &SIGNERS[0]).unwrap();
    assert!(matches!(
        refused(&mut state, &unknown),
        TxError::UnknownToken(_)
    ));
    codes.insert("unknown_token");

    // An amount no balance can hold.
    let mut huge = transfer_kind(0, to, Token::Musd, 1, 1, 10_000);
    if let TxKind::Transfer(t) = &mut huge {
        t.amount = U256::MAX;
    }
    let huge = SignedTx::sign(huge, 1337, &SIGNERS[0]).unwrap();
    assert!(matches!(
        refused(&mut state, &huge),
        TxError::AmountTooLarge(_)
    ));
    codes.insert("amount_too_large");

    assert_eq!(codes.len(), 10, "every cause has its own code");
    // The account can still send its next tx.
    state.apply_tx(&signed(0, to, Token::Myc, 1, 1)).unwrap();
}

#[test]
fn blocks_check_height_and_time_and_report_each_tx() {
    let mut state = State::from_genesis(&genesis());
    let to = Address::repeat_byte(3);
    let txs: Vec<VerifiedTx> = [
        signed(0, to, Token::Myc, 1, 0),
        signed(0, to, Token::Myc, 1, 0),
    ]
    .into_iter()
    .map(|t| state.verify_stateless(t).unwrap())
    .collect();
    assert_eq!(
        state.apply_block(
            BlockContext {
                height: 2,
                timestamp_ms: 2_000
            },
            &txs
        ),
        Err(BlockError::WrongHeight { current: 0, got: 2 })
    );
    assert_eq!(
        state.apply_block(
            BlockContext {
                height: 1,
                timestamp_ms: 999
            },
            &txs
        ),
        Err(BlockError::TimeWentBack {
            previous: 1_000,
            got: 999
        })
    );
    let outcome = state
        .apply_block(
            BlockContext {
                height: 1,
                timestamp_ms: 2_000,
            },
            &txs,
        )
        .unwrap();
    assert!(outcome.results[0].is_ok());
    assert_eq!(
        outcome.results[1],
        Err(TxError::StaleNonce {
            expected: 1,
            got: 0
        })
    );
    assert_eq!(state.height(), 1);
    assert_eq!(outcome.state_root, state.state_root());
}

#[test]
fn snapshot_round_trips_with_the_same_root() {
    let mut state = State::from_genesis(&genesis());
    state
        .apply_tx(&signed(2, MUSD_ADDRESS, Token::Musd, 10, 0))
        .unwrap();
    let root = state.state_root();
    let mut back = State::from_snapshot_bytes(&state.to_snapshot_bytes()).unwrap();
    assert_eq!(back, state);
    assert_eq!(back.state_root(), root);
    assert!(State::from_snapshot_bytes(b"{not json").is_err());
}

#[derive(Debug, Clone)]
struct Op {
    from: usize,
    to: usize,
    musd: bool,
    amount: u128,
    nonce_skew: i8,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0..4usize,
        0..5usize,
        any::<bool>(),
        0..3_000_000_000_000_000u128,
        -1i8..=1,
    )
        .prop_map(|(from, to, musd, amount, nonce_skew)| Op {
            from,
            to,
            musd,
            amount,
            nonce_skew,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any sequence of transfers, valid or not, conserves supply, and two nodes that replay the
    /// same blocks agree on the root.
    #[test]
    fn transfers_conserve_supply_and_replay_identically(ops in proptest::collection::vec(op(), 1..40), per_block in 1..6usize) {
        let g = genesis();
        let mut a = State::from_genesis(&g);
        let mut b = State::from_genesis(&g);
        let supply_myc = g.supply(Token::Myc).unwrap();
        let supply_musd = g.supply(Token::Musd).unwrap();
        let mut nonces = [0u64; 4];
        let targets: Vec<Address> = (0..4).map(|i| SIGNERS[i].address()).chain([Address::repeat_byte(9)]).collect();
        for (i, chunk) in ops.chunks(per_block).enumerate() {
            let txs: Vec<VerifiedTx> = chunk.iter().map(|op| {
                let nonce = (nonces[op.from] as i64 + op.nonce_skew as i64).max(0) as u64;
                if op.nonce_skew == 0 { nonces[op.from] += 1; }
                let token = if op.musd { Token::Musd } else { Token::Myc };
                a.verify_stateless(signed(op.from, targets[op.to], token, op.amount, nonce)).unwrap()
            }).collect();
            let ctx = BlockContext { height: i as u64 + 1, timestamp_ms: 1_000 + i as u64 };
            let out_a = a.apply_block(ctx, &txs).unwrap();
            let out_b = b.apply_block(ctx, &txs).unwrap();
            prop_assert_eq!(&out_a, &out_b);
            // Re-sync the model's nonces with what really happened.
            for k in 0..4 { nonces[k] = a.next_nonce(&SIGNERS[k].address()); }
            let burned = a.supply().myc_burned;
            let myc: u128 = targets.iter().map(|t| a.account(t).myc).sum();
            let musd: u128 = targets.iter().map(|t| a.account(t).musd).sum();
            let others: Vec<Address> = g.accounts[4..].iter().map(|acc| acc.address).collect();
            let others_myc: u128 = others.iter().map(|o| a.account(o).myc).sum();
            let others_musd: u128 = others.iter().map(|o| a.account(o).musd).sum();
            prop_assert_eq!(myc + others_myc + burned, supply_myc);
            prop_assert_eq!(musd + others_musd, supply_musd);
            prop_assert_eq!(burned, g.min_fee * (0..4).map(|k| a.next_nonce(&SIGNERS[k].address()) as u128).sum::<u128>());
        }
    }
}

/// `kind` signed by its sender with `nonce` in place of its own.
fn signed_at(mut kind: TxKind, nonce: u64, from: usize) -> VerifiedTx {
    match &mut kind {
        TxKind::Transfer(t) => t.nonce = nonce,
        TxKind::OpenChannel(t) => t.nonce = nonce,
        TxKind::AddStake(t) => t.nonce = nonce,
        other => unreachable!("not generated: {}", other.type_name()),
    }
    let tx = SignedTx::sign(kind, genesis().chain_id, &SIGNERS[from]).unwrap();
    State::from_genesis(&genesis())
        .verify_stateless(tx)
        .unwrap()
}

#[test]
fn a_transaction_ahead_of_its_nonce_is_checked_in_full_but_for_the_nonce() {
    let mut state = State::from_genesis(&genesis());
    let to = Address::repeat_byte(7);
    state.apply_tx(&signed(0, to, Token::Myc, 1, 0)).unwrap();
    let balance = state.account(&SIGNERS[0].address());
    let fee = genesis().min_fee;
    let ahead = |kind: TxKind| state.check_ignoring_nonce(&signed_at(kind, 9, 0));

    assert_eq!(
        ahead(transfer_kind(0, to, Token::Myc, 5, 0, fee)),
        Ok(Spend {
            myc: 5 + fee,
            musd: 0
        })
    );
    assert_eq!(
        ahead(transfer_kind(0, to, Token::Musd, 5, 0, fee)),
        Ok(Spend { myc: fee, musd: 5 })
    );
    let to_self = SIGNERS[0].address();
    assert_eq!(
        ahead(transfer_kind(0, to_self, Token::Myc, 5, 0, fee)),
        Ok(Spend { myc: fee, musd: 0 }),
        "a transfer to oneself takes only the fee"
    );
    let code = |r: Result<Spend, TxError>| r.unwrap_err().code();
    assert_eq!(
        code(ahead(transfer_kind(0, to, Token::Myc, balance.myc, 0, fee))),
        "insufficient_balance"
    );
    assert_eq!(
        code(ahead(transfer_kind(0, to, Token::Myc, 1, 0, fee - 1))),
        "fee_too_low"
    );
    let mut unknown = transfer_kind(0, to, Token::Myc, 1, 0, fee);
    let mut memo = unknown.clone();
    if let (TxKind::Transfer(u), TxKind::Transfer(m)) = (&mut unknown, &mut memo) {
        u.token = Address::repeat_byte(0xee);
        m.memo = vec![0u8; MAX_MEMO_BYTES + 1].into();
    }
    assert_eq!(code(ahead(unknown)), "unknown_token");
    assert_eq!(code(ahead(memo)), "memo_too_large");
    // A key that holds nothing cannot pay even the fee, whatever its nonce.
    let empty = PrivateKeySigner::random();
    let kind = TxKind::Transfer(Transfer {
        from: empty.address(),
        to,
        token: Address::ZERO,
        amount: U256::ZERO,
        memo: Bytes::new(),
        nonce: 40,
        fee: U256::from(fee),
    });
    let tx = state
        .verify_stateless(SignedTx::sign(kind, genesis().chain_id, &empty).unwrap())
        .unwrap();
    assert_eq!(
        code(state.check_ignoring_nonce(&tx)),
        "insufficient_balance"
    );
    // Checking changes nothing.
    let before = state.clone();
    let _ = state.check_ignoring_nonce(&signed_at(
        transfer_kind(0, to, Token::Myc, 5, 0, fee),
        9,
        0,
    ));
    assert_eq!(state, before);
}

/// A transaction of a kind the mempool budgets: transfers (of either token or an unknown one,
/// with any memo and fee), channel deposits and stake orders (no subnet exists: refused).
fn budgeted_kind() -> impl Strategy<Value = (usize, TxKind)> {
    let transfer = (
        0..4usize,
        0..5usize,
        0..3u8,
        0..2_000_000_000_000_000u128,
        0..300usize,
        prop_oneof![1 => Just(9_999u128), 9 => 10_000..20_000u128],
    )
        .prop_map(|(from, to, token, amount, memo, fee)| {
            let to = SIGNERS
                .get(to)
                .map_or(Address::repeat_byte(9), |s| s.address());
            // About half of each token's balance range is affordable (mUSD has 1000x less).
            let amount = if token == 1 { amount / 1_000 } else { amount };
            let mut kind = transfer_kind(from, to, Token::Myc, amount, 0, fee);
            if let TxKind::Transfer(t) = &mut kind {
                t.token = match token {
                    0 => Token::Myc.address(),
                    1 => Token::Musd.address(),
                    _ => Address::repeat_byte(0xee),
                };
                t.memo = vec![1u8; memo].into();
            }
            (from, kind)
        });
    let deposit = (0..4usize, 0..2_000_000_000_000u128).prop_map(|(from, amount)| {
        let kind = TxKind::OpenChannel(mycel_types::OpenChannel {
            from: SIGNERS[from].address(),
            payee: Address::repeat_byte(3),
            amount: U256::from(amount),
            withdrawDelay: 60,
            salt: B256::repeat_byte(from as u8),
            nonce: 0,
            fee: U256::from(genesis().min_fee),
        });
        (from, kind)
    });
    let stake = (0..4usize, 0..1_000_000_000_000u128).prop_map(|(from, amount)| {
        let kind = TxKind::AddStake(mycel_types::tx::AddStake {
            from: SIGNERS[from].address(),
            hotkey: Address::repeat_byte(4),
            netuid: 1,
            amount: U256::from(amount),
            limitPrice: U256::ZERO,
            nonce: 0,
            fee: U256::from(genesis().min_fee),
        });
        (from, kind)
    });
    prop_oneof![4 => transfer, 1 => deposit, 1 => stake]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// At the sender's next nonce, the check that ignores the nonce gives the full check's
    /// verdict, and its spend is what applying the transaction takes from the sender; ahead of
    /// the next nonce it gives the same verdict and spend as at the next nonce.
    #[test]
    fn ignoring_the_nonce_agrees_with_the_full_check((from, kind) in budgeted_kind(), ahead in 1..100u64) {
        let mut state = State::from_genesis(&genesis());
        state.apply_tx(&signed(from, Address::repeat_byte(7), Token::Myc, 1, 0)).unwrap();
        let sender = SIGNERS[from].address();
        let next = state.next_nonce(&sender);
        let at_next = signed_at(kind.clone(), next, from);
        let full = state.check_verified(&at_next);
        let ignoring = state.check_ignoring_nonce(&at_next);
        prop_assert_eq!(full.clone().err(), ignoring.clone().err());
        let later = state.check_ignoring_nonce(&signed_at(kind, next + ahead, from));
        prop_assert_eq!(&later, &ignoring);
        if let Ok(spend) = ignoring {
            let before = state.account(&sender);
            state.apply_verified(&at_next).unwrap();
            let after = state.account(&sender);
            prop_assert_eq!(spend, Spend {
                myc: before.myc.saturating_sub(after.myc),
                musd: before.musd.saturating_sub(after.musd),
            });
        }
    }
}
