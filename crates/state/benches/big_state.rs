//! A block on a big state: what a validator or follower pays per block when the chain holds
//! many accounts (issue "The node at scale": no full-state clone per block, a root that costs what
//! a block touches).
//!
//! The state holds `BIG_STATE_ACCOUNTS` accounts (default 1,000,000). Timed, each as a node does
//! it for every block: copying the parent state (the executor works on a copy, as a block may not
//! be finalized), then applying an empty block, or a block of `BIG_STATE_TXS` transfers (default
//! 1,000, each from its own sender to an existing account) — the block's state root included.
//!
//! `cargo bench -p mycel-state --bench big_state` prints medians of `BIG_STATE_ITERS` runs (9).

use alloy_primitives::{Address, Bytes, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_state::{BlockContext, State, VerifiedTx};
use mycel_types::{amount::Token, Genesis, GenesisAccount, SignedTx, Transfer, TxKind};
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A deterministic spread of addresses over the whole address space.
fn address(i: u64) -> Address {
    let h = alloy_primitives::keccak256(i.to_be_bytes());
    Address::from_slice(&h[..20])
}

fn main() {
    let accounts = env("BIG_STATE_ACCOUNTS", 1_000_000) as u64;
    let txs = env("BIG_STATE_TXS", 1_000);
    let iters = env("BIG_STATE_ITERS", 9);

    let senders: Vec<PrivateKeySigner> = (0..txs)
        .map(|i| {
            let mut key = [0u8; 32];
            key[24..].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            PrivateKeySigner::from_slice(&key).expect("key")
        })
        .collect();
    let mut genesis = Genesis::devnet(vec!["ab".repeat(32)], 1_000).expect("genesis");
    genesis
        .accounts
        .extend((0..accounts).map(|i| GenesisAccount {
            address: address(i),
            myc: 1_000_000,
            musd: 0,
        }));
    genesis
        .accounts
        .extend(senders.iter().map(|s| GenesisAccount {
            address: s.address(),
            myc: 1_000_000_000_000_000_000,
            musd: 0,
        }));
    let started = Instant::now();
    let mut state = State::from_genesis(&genesis);
    let first_root = state.state_root();
    println!(
        "state of {} accounts built and its root ({first_root}) computed in {:.2} s",
        state.account_count(),
        started.elapsed().as_secs_f64()
    );

    let block: Vec<VerifiedTx> = senders
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let kind = TxKind::Transfer(Transfer {
                from: s.address(),
                to: address((i as u64 * 7_919) % accounts),
                token: Token::Myc.address(),
                amount: U256::from(1u64),
                memo: Bytes::new(),
                nonce: 0,
                fee: U256::from(genesis.min_fee),
            });
            let signed = SignedTx::sign(kind, genesis.chain_id, s).expect("sign");
            state.verify_stateless(signed).expect("valid")
        })
        .collect();

    let ctx = BlockContext {
        height: 1,
        timestamp_ms: 2_000,
    };
    let (mut copy, mut empty, mut full) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iters {
        let t = Instant::now();
        let copied = state.clone();
        copy.push(t.elapsed().as_secs_f64() * 1e3);
        drop(copied);

        let t = Instant::now();
        let mut next = state.clone();
        next.apply_block(ctx, &[]).expect("empty block");
        empty.push(t.elapsed().as_secs_f64() * 1e3);
        drop(next);

        let t = Instant::now();
        let mut next = state.clone();
        let outcome = next.apply_block(ctx, &block).expect("block");
        full.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(outcome.results.iter().all(Result::is_ok));
        drop(next);
    }
    println!("accounts {accounts}, transfers per block {txs}, medians of {iters} runs");
    println!("| step | ms |");
    println!("|---|---|");
    println!("| copy the state | {:.2} |", median(copy));
    println!(
        "| copy + empty block (root included) | {:.2} |",
        median(empty)
    );
    println!("| copy + block of {txs} transfers | {:.2} |", median(full));
}
