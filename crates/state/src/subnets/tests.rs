//! State-level tests of the incentive layer: real signed transactions through `apply_block`.

use super::*;
use crate::{BlockContext, State, TxError, VerifiedTx};
use alloy_primitives::U256;
use alloy_signer_local::PrivateKeySigner;
use mycel_types::{keys::dev_signer, tx, Genesis, GenesisAccount, SignedTx, TxKind};
use proptest::prelude::*;
use std::sync::LazyLock;

static KEYS: LazyLock<Vec<PrivateKeySigner>> =
    LazyLock::new(|| (0..10).map(|i| dev_signer(i).unwrap()).collect());

fn key(i: usize) -> &'static PrivateKeySigner {
    &KEYS[i]
}

fn addr(i: usize) -> Address {
    KEYS[i].address()
}

/// A hotkey address that is not a funded account.
fn hot(i: u8) -> Address {
    Address::repeat_byte(0xa0 + i)
}

fn genesis() -> Genesis {
    Genesis::devnet(vec!["ab".repeat(32)], 1_000).unwrap()
}

const FEE: u64 = 10_000;

/// A chain: state plus the signer-side nonces.
struct Chain {
    state: State,
    nonces: BTreeMap<Address, u64>,
    time: u64,
}

impl Chain {
    fn new() -> Chain {
        Chain::from_genesis(&genesis())
    }

    fn from_genesis(g: &Genesis) -> Chain {
        Chain {
            state: State::from_genesis(g),
            nonces: BTreeMap::new(),
            time: g.genesis_time_ms,
        }
    }

    /// Signs `kind` (built with the signer's next nonce) with key `i`.
    fn sign(&mut self, i: usize, build: impl FnOnce(Address, u64) -> TxKind) -> VerifiedTx {
        let from = addr(i);
        let nonce = self.nonces.entry(from).or_insert(0);
        let kind = build(from, *nonce);
        *nonce += 1;
        self.sign_kind(i, kind)
    }

    fn sign_kind(&self, i: usize, kind: TxKind) -> VerifiedTx {
        let tx = SignedTx::sign(kind, self.state.params().chain_id, key(i)).unwrap();
        self.state.verify_stateless(tx).unwrap()
    }

    /// Signs with a hotkey signer (hotkeys here are dev keys too when they must sign).
    fn block(&mut self, txs: Vec<VerifiedTx>) -> crate::BlockOutcome {
        self.time += 1000;
        let ctx = BlockContext {
            height: self.state.height() + 1,
            timestamp_ms: self.time,
        };
        let outcome = self.state.apply_block(ctx, &txs).unwrap();
        // A refused tx leaves the sender's nonce unused: resync the signer-side nonces.
        for tx in &txs {
            self.nonces
                .insert(tx.sender, self.state.next_nonce(&tx.sender));
        }
        outcome
    }

    fn ok(&mut self, txs: Vec<VerifiedTx>) -> crate::BlockOutcome {
        let out = self.block(txs);
        for r in &out.results {
            assert!(r.is_ok(), "{r:?}");
        }
        out
    }

    fn empty_blocks(&mut self, n: u64) {
        for _ in 0..n {
            self.block(vec![]);
        }
    }

    fn subnet(&self, netuid: u16) -> &Subnet {
        self.state.subnets.get(netuid).unwrap()
    }
}

fn register_subnet(c: &mut Chain, owner: usize, hotkey: Address) -> VerifiedTx {
    c.sign(owner, |from, nonce| {
        TxKind::RegisterSubnet(tx::RegisterSubnet {
            from,
            hotkey,
            maxLockCost: U256::from(u128::MAX),
            nonce,
            fee: U256::from(FEE),
        })
    })
}

fn set_params(c: &mut Chain, owner: usize, netuid: u16, p: &[(&str, u64)]) -> VerifiedTx {
    c.sign(owner, |from, nonce| {
        TxKind::SetSubnetParams(tx::SetSubnetParams {
            from,
            netuid,
            names: p.iter().map(|(n, _)| n.to_string()).collect(),
            values: p.iter().map(|(_, v)| *v).collect(),
            nonce,
            fee: U256::from(FEE),
        })
    })
}

fn burned_register(c: &mut Chain, coldkey: usize, netuid: u16, hotkey: Address) -> VerifiedTx {
    c.sign(coldkey, |from, nonce| {
        TxKind::BurnedRegister(tx::BurnedRegister {
            from,
            netuid,
            hotkey,
            maxBurn: U256::from(u128::MAX),
            nonce,
            fee: U256::from(FEE),
        })
    })
}

fn set_weights(c: &mut Chain, hotkey: usize, netuid: u16, w: &[(u16, u16)]) -> VerifiedTx {
    c.sign(hotkey, |from, nonce| {
        TxKind::SetWeights(tx::SetWeights {
            from,
            netuid,
            uids: w.iter().map(|p| p.0).collect(),
            values: w.iter().map(|p| p.1).collect(),
            versionKey: 0,
            nonce,
            fee: U256::from(FEE),
        })
    })
}

fn add_stake(
    c: &mut Chain,
    coldkey: usize,
    hotkey: Address,
    netuid: u16,
    amount: u128,
    limit: u128,
) -> VerifiedTx {
    c.sign(coldkey, |from, nonce| {
        TxKind::AddStake(tx::AddStake {
            from,
            hotkey,
            netuid,
            amount: U256::from(amount),
            limitPrice: U256::from(limit),
            nonce,
            fee: U256::from(FEE),
        })
    })
}

fn remove_stake(
    c: &mut Chain,
    coldkey: usize,
    hotkey: Address,
    netuid: u16,
    amount: u128,
    limit: u128,
) -> VerifiedTx {
    c.sign(coldkey, |from, nonce| {
        TxKind::RemoveStake(tx::RemoveStake {
            from,
            hotkey,
            netuid,
            amount: U256::from(amount),
            limitPrice: U256::from(limit),
            nonce,
            fee: U256::from(FEE),
        })
    })
}

/// Applies `tx` alone, expects a refusal, and checks that nothing changed (state and root).
fn refused(c: &mut Chain, tx: VerifiedTx) -> IncentiveError {
    let before = c.state.clone();
    let root = c.state.state_root();
    let err = c
        .state
        .apply_verified(&tx)
        .expect_err("tx should be refused");
    assert_eq!(c.state, before, "a refused tx changed the state");
    assert_eq!(c.state.state_root(), root);
    assert_eq!(c.state.check_verified(&tx), Err(err.clone()));
    c.nonces.insert(tx.sender, c.state.next_nonce(&tx.sender));
    match err {
        TxError::Incentive(e) => e,
        other => panic!("expected an incentive error, got {other:?}"),
    }
}

/// Subnet 1 owned by key 0 (owner hotkey = key 1's address), neurons: keys 2..=4 as miners and
/// keys 5, 6 as validators, each registered by its own key as coldkey.
fn devnet_subnet(c: &mut Chain) {
    let tx = register_subnet(c, 0, addr(1));
    c.ok(vec![tx]);
    let p = set_params(
        c,
        0,
        1,
        &[
            ("tempo", 9),
            ("weights_rate_limit", 0),
            ("immunity_period", 20),
        ],
    );
    c.ok(vec![p]);
    let regs: Vec<VerifiedTx> = (2..=6).map(|i| burned_register(c, i, 1, addr(i))).collect();
    c.ok(regs);
}

#[test]
fn register_subnet_locks_cost_and_makes_owner() {
    let mut c = Chain::new();
    let before = c.state.account(&addr(0)).myc;
    let cost = c.state.subnets.lock_cost(1);
    assert_eq!(cost, MIN_LOCK_COST);
    let tx = register_subnet(&mut c, 0, hot(1));
    let out = c.ok(vec![tx]);
    let s = c.subnet(1);
    assert_eq!(
        (s.owner, s.owner_hotkey, s.neurons.len()),
        (addr(0), hot(1), 1)
    );
    assert_eq!(s.neurons[0].hotkey, hot(1));
    assert_eq!(c.state.account(&addr(0)).myc, before - cost - FEE as u128);
    // Block 1 emission went into the new pool already.
    let r = out.emission.unwrap();
    assert_eq!(r.subnets[0].myc_share, r.block_emission);
    assert_eq!(c.subnet(1).pool.myc, cost + r.subnets[0].myc_injected);
    // Demand doubles the lock cost; it decays back over the reduction interval.
    assert_eq!(c.state.subnets.lock_cost(1), 2 * cost);
    assert!(c.state.subnets.lock_cost(2) < 2 * cost);
    assert_eq!(c.state.subnets.lock_cost(1 + LOCK_REDUCTION_INTERVAL), cost);
    let next = c.state.subnets.lock_cost(2);
    let tx = register_subnet(&mut c, 3, hot(2));
    c.ok(vec![tx]);
    assert_eq!(c.subnet(2).lock, next);
    // Another coldkey cannot take a hotkey that is already owned.
    let tx = register_subnet(&mut c, 4, hot(1));
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::HotkeyOwnedByOther { .. }
    ));
}

#[test]
fn lock_cost_limit_is_respected() {
    let mut c = Chain::new();
    let tx = c.sign(0, |from, nonce| {
        TxKind::RegisterSubnet(tx::RegisterSubnet {
            from,
            hotkey: hot(1),
            maxLockCost: U256::from(MIN_LOCK_COST - 1),
            nonce,
            fee: U256::from(FEE),
        })
    });
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::LockCostAboveMax { .. }
    ));
}

#[test]
fn subnet_params_owner_only_and_bounded() {
    let mut c = Chain::new();
    devnet_subnet(&mut c);
    assert_eq!(c.subnet(1).params.tempo, 9);
    let tx = set_params(&mut c, 2, 1, &[("tempo", 5)]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::NotOwner { .. }
    ));
    let tx = set_params(&mut c, 0, 1, &[("tempo", 0)]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::ParamOutOfBounds { .. }
    ));
    let tx = set_params(&mut c, 0, 1, &[("tempi", 5)]);
    let e = refused(&mut c, tx);
    assert!(e.to_string().contains("tempo"), "{e}");
    let tx = set_params(&mut c, 0, 1, &[("tempo", 5), ("tempo", 6)]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::BadParams { .. }
    ));
    let tx = set_params(&mut c, 0, 1, &[("alpha_low", 60_000)]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::BadParams { .. }
    ));
    let tx = set_params(&mut c, 0, 1, &[("max_uids", 3)]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::BadParams { .. }
    ));
    let tx = set_params(&mut c, 0, 9, &[("tempo", 5)]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::NoSubnet { netuid: 9 }
    ));
    let tx = set_params(
        &mut c,
        0,
        1,
        &[("yuma3", 1), ("liquid_alpha", 1), ("kappa", 40_000)],
    );
    c.ok(vec![tx]);
    let p = &c.subnet(1).params;
    assert!(p.yuma3 && p.liquid_alpha && p.kappa == 40_000);
}

#[test]
fn burned_register_burns_and_assigns_uids() {
    let mut c = Chain::new();
    let tx = register_subnet(&mut c, 0, addr(1));
    c.ok(vec![tx]);
    let burned_before = c.state.supply().myc_burned;
    let burn = c.subnet(1).burn;
    let tx = burned_register(&mut c, 2, 1, hot(2));
    let out = c.ok(vec![tx]);
    assert_eq!(c.subnet(1).uid_of(&hot(2)), Some(1));
    assert_eq!(
        c.state.supply().myc_burned,
        burned_before + burn + FEE as u128
    );
    assert!(out.results[0]
        .as_ref()
        .unwrap()
        .events
        .iter()
        .any(|e| matches!(
            e,
            crate::Event::Incentive(IncentiveEvent::NeuronRegistered { uid: 1, .. })
        )));
    let tx = burned_register(&mut c, 2, 1, hot(2));
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::AlreadyRegistered { .. }
    ));
    let tx = burned_register(&mut c, 3, 1, hot(2));
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::HotkeyOwnedByOther { .. }
    ));
    let tx = c.sign(3, |from, nonce| {
        TxKind::BurnedRegister(tx::BurnedRegister {
            from,
            netuid: 1,
            hotkey: hot(3),
            maxBurn: U256::from(1u64),
            nonce,
            fee: U256::from(FEE),
        })
    });
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::BurnAboveMax { .. }
    ));
}

#[test]
fn burn_rises_with_demand_and_falls_without() {
    assert!(block::adjusted_burn(TOKEN, 10, 2) > TOKEN);
    assert!(block::adjusted_burn(TOKEN, 0, 2) < TOKEN);
    assert_eq!(block::adjusted_burn(TOKEN, 2, 2), TOKEN);
    assert_eq!(block::adjusted_burn(MIN_BURN, 0, 2), MIN_BURN);
    assert_eq!(block::adjusted_burn(MAX_BURN, 100, 2), MAX_BURN);
}

#[test]
fn full_subnet_prunes_lowest_emission_non_immune() {
    let mut c = Chain::new();
    let tx = register_subnet(&mut c, 0, addr(1));
    c.ok(vec![tx]);
    let p = set_params(
        &mut c,
        0,
        1,
        &[
            ("max_uids", 3),
            ("immunity_period", 5),
            ("max_validators", 3),
        ],
    );
    c.ok(vec![p]);
    let a = burned_register(&mut c, 2, 1, hot(2));
    c.ok(vec![a]);
    let b = burned_register(&mut c, 3, 1, hot(3));
    c.ok(vec![b]);
    // Full, and every neuron immune: refused.
    let tx = burned_register(&mut c, 4, 1, hot(4));
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::SubnetFull { .. }
    ));
    c.empty_blocks(6);
    // Both non-owner neurons have emission 0: the earlier registration (hot 2, uid 1) goes.
    let tx = burned_register(&mut c, 4, 1, hot(4));
    c.ok(vec![tx]);
    let s = c.subnet(1);
    assert_eq!(s.neurons[1].hotkey, hot(4));
    assert_eq!(s.neurons[2].hotkey, hot(3));
    assert_eq!(
        s.neurons[0].hotkey,
        addr(1),
        "the owner hotkey is never pruned"
    );
}

#[test]
fn endpoint_is_checked_and_stored() {
    let mut c = Chain::new();
    devnet_subnet(&mut c);
    let serve = |c: &mut Chain, host: &str, port: u16, protocol: &str| {
        let (host, protocol) = (host.to_string(), protocol.to_string());
        c.sign(2, move |from, nonce| {
            TxKind::ServeEndpoint(tx::ServeEndpoint {
                from,
                netuid: 1,
                host,
                port,
                protocol,
                nonce,
                fee: U256::from(FEE),
            })
        })
    };
    let tx = serve(&mut c, "", 80, "http");
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::BadEndpoint { .. }
    ));
    let tx = serve(&mut c, "a b", 80, "http");
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::BadEndpoint { .. }
    ));
    let tx = serve(&mut c, "127.0.0.1", 0, "http");
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::BadEndpoint { .. }
    ));
    let tx = serve(&mut c, "127.0.0.1", 8080, "HTTP");
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::BadEndpoint { .. }
    ));
    let tx = serve(&mut c, "127.0.0.1", 8080, "http");
    c.ok(vec![tx]);
    let e = c.subnet(1).neurons[1].endpoint.clone().unwrap();
    assert_eq!(
        (e.host.as_str(), e.port, e.protocol.as_str()),
        ("127.0.0.1", 8080, "http")
    );
}

#[test]
fn set_weights_checks_and_rate_limit() {
    let mut c = Chain::new();
    devnet_subnet(&mut c);
    let tx = set_weights(&mut c, 5, 1, &[(9, 1)]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::BadWeights { .. }
    ));
    let tx = set_weights(&mut c, 5, 1, &[(1, 1), (1, 2)]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::BadWeights { .. }
    ));
    let tx = set_weights(&mut c, 5, 1, &[(1, 0)]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::BadWeights { .. }
    ));
    let tx = set_weights(&mut c, 7, 1, &[(1, 1)]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::NotRegistered { .. }
    ));
    let tx = set_weights(&mut c, 5, 1, &[(3, 100), (1, 50)]);
    c.ok(vec![tx]);
    assert_eq!(c.subnet(1).neurons[4].weights, vec![(1, 32768), (3, 65535)]);
    let p = set_params(&mut c, 0, 1, &[("weights_rate_limit", 10)]);
    c.ok(vec![p]);
    let tx = set_weights(&mut c, 5, 1, &[(1, 1)]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::RateLimited { .. }
    ));
    let p = set_params(&mut c, 0, 1, &[("commit_reveal", 1)]);
    c.ok(vec![p]);
    let tx = set_weights(&mut c, 6, 1, &[(1, 1)]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::CommitRevealRequired { .. }
    ));
}

#[test]
fn commit_then_reveal_in_the_reveal_epoch() {
    let mut c = Chain::new();
    devnet_subnet(&mut c);
    let p = set_params(&mut c, 0, 1, &[("commit_reveal", 1), ("reveal_period", 1)]);
    c.ok(vec![p]);
    let salt = B256::repeat_byte(7);
    let (uids, values) = (vec![1u16, 2], vec![10u16, 20]);
    let hash = tx::weights_commit_hash(addr(5), 1, &uids, &values, salt, 0);
    let commit = |c: &mut Chain, hash: B256| {
        c.sign(5, move |from, nonce| {
            TxKind::CommitWeights(tx::CommitWeights {
                from,
                netuid: 1,
                commitHash: hash,
                nonce,
                fee: U256::from(FEE),
            })
        })
    };
    let reveal = |c: &mut Chain, uids: Vec<u16>, values: Vec<u16>| {
        c.sign(5, move |from, nonce| {
            TxKind::RevealWeights(tx::RevealWeights {
                from,
                netuid: 1,
                uids,
                values,
                salt,
                versionKey: 0,
                nonce,
                fee: U256::from(FEE),
            })
        })
    };
    let tx = commit(&mut c, hash);
    c.ok(vec![tx]);
    let tx = reveal(&mut c, uids.clone(), values.clone());
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::RevealTooEarly { .. }
    ));
    let tx = reveal(&mut c, uids.clone(), vec![10, 21]);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::NoMatchingCommit
    ));
    // Move to the next epoch of subnet 1 (tempo 9: epochs end where (b + 2) % 10 == 0).
    let s = c.subnet(1);
    let target = s.epoch_index(c.state.height() + 1) + 1;
    while c.subnet(1).epoch_index(c.state.height() + 1) < target {
        c.empty_blocks(1);
    }
    let tx = reveal(&mut c, uids.clone(), values.clone());
    c.ok(vec![tx]);
    assert_eq!(c.subnet(1).neurons[4].weights, vec![(1, 32768), (2, 65535)]);
    assert!(c.subnet(1).commits.is_empty());
    // At most 10 pending; expired ones are dropped.
    for k in 0..MAX_PENDING_COMMITS {
        let tx = commit(&mut c, B256::repeat_byte(k as u8));
        c.ok(vec![tx]);
    }
    let tx = commit(&mut c, B256::repeat_byte(0xee));
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::TooManyCommits { .. }
    ));
    c.empty_blocks(25);
    assert!(
        c.subnet(1).commits.is_empty(),
        "expired commits are dropped at epochs"
    );
    let tx = commit(&mut c, B256::repeat_byte(0xee));
    c.ok(vec![tx]);
}

#[test]
fn stakes_in_one_block_share_one_price_and_limits_refuse() {
    let mut c = Chain::new();
    devnet_subnet(&mut c);
    let amount = 50 * TOKEN;
    let a = add_stake(&mut c, 7, addr(5), 1, amount, 0);
    let b = add_stake(&mut c, 8, addr(5), 1, amount, 0);
    let out = c.ok(vec![a, b]);
    let swaps = out.emission.unwrap().swaps;
    assert_eq!(swaps.len(), 2);
    assert_eq!(
        swaps[0].amount_out, swaps[1].amount_out,
        "same price for both"
    );
    assert_eq!(swaps[0].price, swaps[1].price);
    let s = c.subnet(1);
    assert_eq!(s.position(&addr(5), &addr(7)), swaps[0].amount_out);
    // A limit below the price the batch would reach: that tx is refused, the other fills.
    let spot = pool::mul_div(s.pool.myc, pool::PRICE_SCALE, s.pool.alpha);
    let tight = add_stake(&mut c, 7, addr(5), 1, 100 * TOKEN, spot + 1);
    let loose = add_stake(&mut c, 8, addr(5), 1, 100 * TOKEN, 0);
    let myc_before = c.state.account(&addr(7)).myc;
    let nonce_before = c.state.next_nonce(&addr(7));
    let out = c.block(vec![tight, loose]);
    assert!(matches!(
        out.results[0],
        Err(TxError::Incentive(IncentiveError::PriceLimit { .. }))
    ));
    assert!(out.results[1].is_ok());
    assert_eq!(
        c.state.account(&addr(7)).myc,
        myc_before,
        "refused: no fee, no funds"
    );
    assert_eq!(c.state.next_nonce(&addr(7)), nonce_before);
    // An order whose limit the current price already breaks is refused on entry.
    let tx = add_stake(&mut c, 7, addr(5), 1, TOKEN, 1);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::PriceAlreadyBeyondLimit { .. }
    ));
    let tx = add_stake(&mut c, 7, addr(5), 1, 1, 0);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::StakeTooSmall { .. }
    ));
    let tx = remove_stake(&mut c, 9, addr(5), 1, 1, 0);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::InsufficientStake { .. }
    ));
    let tx = add_stake(&mut c, 7, hot(9), 1, TOKEN, 0);
    assert!(matches!(
        refused(&mut c, tx),
        IncentiveError::HotkeyNotNeuron { .. }
    ));
}

#[test]
fn unstake_returns_myc_and_flow_goes_negative() {
    let mut c = Chain::new();
    devnet_subnet(&mut c);
    let tx = register_subnet(&mut c, 9, hot(9));
    c.ok(vec![tx]);
    let a = add_stake(&mut c, 7, addr(5), 1, 100 * TOKEN, 0);
    c.ok(vec![a]);
    let alpha = c.subnet(1).position(&addr(5), &addr(7));
    let myc_before = c.state.account(&addr(7)).myc;
    let tx = remove_stake(&mut c, 7, addr(5), 1, alpha, 0);
    let out = c.ok(vec![tx]);
    let got = out.emission.as_ref().unwrap().swaps[0].amount_out;
    assert!(got > 0);
    assert_eq!(
        c.state.account(&addr(7)).myc,
        myc_before - FEE as u128 + got
    );
    assert_eq!(c.subnet(1).position(&addr(5), &addr(7)), 0);
    // Subnet 1 flowed in 100 then out ~100: at least one more block of net outflow makes its
    // EMA negative; a negative EMA gets no emission.
    let tx = remove_stake(&mut c, 0, addr(1), 1, 0, 0);
    let _ = refused(&mut c, tx);
    let mut s1 = c.subnet(1).clone();
    s1.flow_ema_bits = -(1i128 << 64);
    c.state.subnets.subnets.insert(1, s1);
    let s2 = c.subnet(2).clone();
    assert!(s2.flow_ema_bits >= 0);
    let out = c.block(vec![]);
    let r = out.emission.unwrap();
    assert_eq!(r.subnets[0].myc_share, 0, "negative flow gets zero share");
    assert_eq!(r.subnets[1].myc_share, r.block_emission);
}

#[test]
fn epochs_pay_miners_validators_and_owner_exactly() {
    let mut c = Chain::new();
    devnet_subnet(&mut c);
    // Validators 5 and 6 stake through their own coldkeys; key 7 delegates to validator 5.
    let s5 = add_stake(&mut c, 5, addr(5), 1, 1000 * TOKEN, 0);
    let s6 = add_stake(&mut c, 6, addr(6), 1, 500 * TOKEN, 0);
    let s7 = add_stake(&mut c, 7, addr(5), 1, 200 * TOKEN, 0);
    c.ok(vec![s5, s6, s7]);
    // Let permits be computed by one epoch, then set weights.
    c.empty_blocks(10);
    let w5 = set_weights(&mut c, 5, 1, &[(1, 10), (2, 20), (3, 30)]);
    let w6 = set_weights(&mut c, 6, 1, &[(1, 10), (2, 20), (3, 30)]);
    c.ok(vec![w5, w6]);
    let owner_before = c.subnet(1).position(&addr(1), &addr(0));
    let delegator_before = c.subnet(1).position(&addr(5), &addr(7));
    let mut epochs = 0;
    for _ in 0..30 {
        let out = c.block(vec![]);
        let r = out.emission.unwrap();
        r.assert_exact();
        if let Some(e) = &r.subnets[0].epoch {
            epochs += 1;
            assert!(e.paid > 0);
        }
    }
    assert!(epochs >= 2);
    let s = c.subnet(1);
    for miner in 2..=4 {
        let uid = s.uid_of(&addr(miner)).unwrap() as usize;
        assert!(s.neurons[uid].incentive > 0, "miner {miner} has incentive");
        assert!(
            s.position(&addr(miner), &addr(miner)) > 0,
            "miner {miner} was paid"
        );
    }
    let v5 = s.uid_of(&addr(5)).unwrap() as usize;
    assert!(s.neurons[v5].dividends > 0 && s.neurons[v5].validator_permit);
    assert!(
        s.position(&addr(1), &addr(0)) > owner_before,
        "owner cut paid"
    );
    assert!(
        s.position(&addr(5), &addr(7)) > delegator_before,
        "delegator shares dividends"
    );
    // Higher weight, higher incentive.
    let inc = |m: usize| s.neurons[s.uid_of(&addr(m)).unwrap() as usize].incentive;
    assert!(inc(4) > inc(3) && inc(3) > inc(2));
    // The queries show the same.
    let mg = c.state.metagraph(1).unwrap();
    assert_eq!(mg.neurons.len(), 6);
    let m4 = &mg.neurons[s.uid_of(&addr(4)).unwrap() as usize];
    assert!(m4.emission > 0 && m4.incentive == inc(4) && m4.active);
    let v = &mg.neurons[v5];
    assert_eq!(v.alpha, s.hotkey_alpha(&addr(5)));
    assert!(v.stake > 0 && v.validator_permit);
    let info = c.state.subnet_info(1).unwrap();
    assert!(info.next_epoch_at > c.state.height());
    assert_eq!((info.next_epoch_at + 2) % 10, 0);
    let stakes = c.state.stakes_of(&addr(7));
    assert_eq!(stakes.len(), 1);
    assert_eq!(stakes[0].alpha, s.position(&addr(5), &addr(7)));
    assert_eq!(c.state.pools()[0].myc_reserve, s.pool.myc);
    // The moving price rises from 0 towards min(spot, 1).
    let moving = fx(s.pool.moving_price_bits);
    assert!(moving > 0 && moving < 1, "{moving}");
    let latest = c.state.latest_emission_receipt().unwrap();
    assert_eq!(latest.height, c.state.height());
    // Its pool reserves are the pool's at the end of the block: the price history.
    assert_eq!(
        (latest.subnets[0].pool_myc, latest.subnets[0].pool_alpha),
        (s.pool.myc, s.pool.alpha)
    );
    let json = serde_json::to_value(&mg).unwrap();
    assert!(json["neurons"][0]["alpha"].is_string());
}

#[test]
fn halving_happens_exactly_at_the_issuance_threshold() {
    use crate::incentive::emission::{halving_threshold, TOTAL_SUPPLY};
    let threshold = halving_threshold(1, TOTAL_SUPPLY) as u128;
    // Issuance one block's emission short of the threshold, counting the lock's fee burn.
    let mut g = genesis();
    let rest: u128 = g.accounts[1..].iter().map(|a| a.myc).sum();
    let fee = FEE as u128;
    let target_before_block2 = threshold - TOKEN; // block 2 emits 1 token, reaching it
                                                  // Block 1 registers a subnet (fee burned) and emits 1 token.
    g.accounts[0] = GenesisAccount {
        address: addr(0),
        myc: target_before_block2 - TOKEN + fee - rest,
        musd: 0,
    };
    let mut c = Chain::from_genesis(&g);
    let tx = register_subnet(&mut c, 0, hot(1));
    let r1 = c.ok(vec![tx]).emission.unwrap();
    assert_eq!(r1.block_emission, TOKEN);
    let r2 = c.block(vec![]).emission.unwrap();
    assert_eq!(r2.issuance, threshold - TOKEN);
    assert_eq!(r2.block_emission, TOKEN);
    let r3 = c.block(vec![]).emission.unwrap();
    assert_eq!(r3.issuance, threshold);
    assert_eq!(
        r3.block_emission,
        TOKEN / 2,
        "halved exactly at the threshold"
    );
}

#[test]
fn refused_kinds_change_nothing_and_snapshot_round_trips() {
    let mut c = Chain::new();
    devnet_subnet(&mut c);
    type Build = fn(&mut Chain) -> VerifiedTx;
    let builds: [Build; 5] = [
        |c| set_params(c, 3, 1, &[("tempo", 5)]),
        |c| burned_register(c, 9, 4, hot(1)),
        |c| set_weights(c, 8, 1, &[(0, 1)]),
        |c| remove_stake(c, 8, addr(5), 1, 10, 0),
        |c| add_stake(c, 8, addr(5), 3, TOKEN, 0),
    ];
    for (i, build) in builds.iter().enumerate() {
        let tx = build(&mut c);
        eprintln!("case {i}");
        let _ = refused(&mut c, tx);
    }
    let bytes = c.state.to_snapshot_bytes();
    let mut back = State::from_snapshot_bytes(&bytes).unwrap();
    assert_eq!(back.state_root(), c.state.state_root());
}

/// One random action of the replica test.
fn random_tx(c: &mut Chain, r: &[u64]) -> Option<VerifiedTx> {
    let who = 2 + (r[1] % 7) as usize;
    let netuid = 1 + (r[2] % 2) as u16;
    Some(match r[0] % 6 {
        0 => add_stake(
            c,
            who,
            addr(2 + (r[3] % 5) as usize),
            netuid,
            MIN_STAKE + r[4] as u128 * TOKEN,
            0,
        ),
        1 => {
            let hk = addr(2 + (r[3] % 5) as usize);
            let have = c.state.subnets.get(netuid)?.position(&hk, &addr(who));
            if have == 0 {
                return None;
            }
            remove_stake(c, who, hk, netuid, 1 + have * (r[4] as u128 % 100) / 100, 0)
        }
        2 => set_weights(c, who, netuid, &[((r[3] % 6) as u16, 1 + r[4] as u16)]),
        3 => burned_register(c, who, netuid, addr(who)),
        4 => {
            let spot = {
                let s = c.state.subnets.get(netuid)?;
                pool::mul_div(s.pool.myc, pool::PRICE_SCALE, s.pool.alpha)
            };
            add_stake(
                c,
                who,
                addr(5),
                netuid,
                (1 + r[4] as u128) * 50 * TOKEN,
                spot + spot / 100,
            )
        }
        _ => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Two replicas applying the same random blocks agree on every state root, the books hold
    /// (asserted inside apply_block) and every emission receipt adds up; a pruned neuron is
    /// never an immune one.
    #[test]
    fn replicas_agree_on_random_blocks(blocks in proptest::collection::vec(
        proptest::collection::vec(proptest::collection::vec(0u64..1000, 5), 0..6), 1..25)) {
        let mut a = Chain::new();
        devnet_subnet(&mut a);
        let tx = register_subnet(&mut a, 8, hot(8));
        a.ok(vec![tx]);
        let p = set_params(&mut a, 8, 2, &[("tempo", 4), ("max_uids", 4), ("max_validators", 4), ("weights_rate_limit", 0), ("immunity_period", 3)]);
        a.ok(vec![p]);
        let mut b = Chain { state: a.state.clone(), nonces: a.nonces.clone(), time: a.time };
        for block in blocks {
            let txs: Vec<VerifiedTx> = block.iter().filter_map(|r| random_tx(&mut a, r)).collect();
            // Which neurons may be pruned this block: only non-immune ones.
            let before: Vec<(u16, Vec<Address>, Vec<bool>)> = a.state.subnets.iter().map(|s| {
                let h = a.state.height() + 1;
                (s.netuid, s.neurons.iter().map(|n| n.hotkey).collect(),
                 (0..s.neurons.len() as u16).map(|u| s.is_immune(u, h)).collect())
            }).collect();
            let oa = a.block(txs.clone());
            let ob = b.block(txs);
            prop_assert_eq!(oa.state_root, ob.state_root);
            // A node restarting from a snapshot (no caches) computes the same root.
            let mut restored = State::from_snapshot_bytes(&a.state.to_snapshot_bytes()).unwrap();
            prop_assert_eq!(restored.state_root(), oa.state_root);
            prop_assert_eq!(&oa.results, &ob.results);
            for (netuid, hotkeys, immune) in before {
                let s = a.state.subnets.get(netuid).unwrap();
                for (uid, hk) in hotkeys.iter().enumerate() {
                    if s.neurons[uid].hotkey != *hk {
                        prop_assert!(!immune[uid], "an immune neuron was pruned");
                    }
                }
            }
            if let Some(r) = &oa.emission { r.assert_exact(); }
            b.nonces = a.nonces.clone();
        }
    }
}

#[test]
fn receipts_and_errors_round_trip_through_json() {
    // The chain's receipt journal stores receipts as JSON and reads them back after a restart.
    let mut c = Chain::new();
    let tx = register_subnet(&mut c, 0, hot(1));
    let out = c.ok(vec![tx]);
    let receipt = out.results[0].clone().unwrap();
    let json = serde_json::to_string(&receipt).unwrap();
    assert!(
        json.contains(r#""event":"incentive","action":"subnet_registered""#),
        "{json}"
    );
    let back: crate::TxReceipt = serde_json::from_str(&json).unwrap();
    assert_eq!(back, receipt);
    let err = TxError::Incentive(IncentiveError::SubnetFull { netuid: 1 });
    let json = serde_json::to_string(&err).unwrap();
    assert_eq!(serde_json::from_str::<TxError>(&json).unwrap(), err);
    assert_eq!(err.code(), "subnet_full");
    let outcome = serde_json::to_string(&out).unwrap();
    let back: crate::BlockOutcome = serde_json::from_str(&outcome).unwrap();
    assert_eq!(back, out);
}

/// A registered subnet to copy from.
static TEMPLATE_SUBNET: LazyLock<Subnet> = LazyLock::new(|| {
    let mut c = Chain::new();
    let tx = register_subnet(&mut c, 0, hot(1));
    c.ok(vec![tx]);
    c.subnet(1).clone()
});

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Taoflow shares: a subnet with negative flow EMA gets nothing, the shares add up to the
    /// block emission exactly whenever some subnet can take it, and a larger positive EMA never
    /// gets a smaller share.
    #[test]
    fn taoflow_shares(emas in proptest::collection::vec(-(1i128 << 100)..(1i128 << 100), 1..40),
                      emission in 0u128..=1_000_000_000) {
        let template = TEMPLATE_SUBNET.clone();
        let mut subnets = Subnets::default();
        for (i, ema) in emas.iter().enumerate() {
            let mut s = template.clone();
            s.netuid = i as u16 + 1;
            s.flow_ema_bits = *ema;
            subnets.subnets.insert(s.netuid, s);
        }
        let shares = block::emission_shares(&subnets, emission);
        prop_assert_eq!(shares.len(), emas.len());
        for (ema, share) in emas.iter().zip(&shares) {
            if *ema < 0 {
                prop_assert_eq!(*share, 0);
            }
        }
        let total: u128 = shares.iter().sum();
        if emas.iter().any(|e| *e >= 0) {
            prop_assert_eq!(total, emission);
        } else {
            prop_assert_eq!(total, 0);
        }
        for (i, a) in emas.iter().enumerate() {
            for (j, b) in emas.iter().enumerate() {
                if a > b && *b > 0 {
                    prop_assert!(shares[i] + 1 >= shares[j]);
                }
            }
        }
    }
}
