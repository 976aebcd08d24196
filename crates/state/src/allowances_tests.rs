use super::*;
use crate::test_chain::{fee, key, Chain, GENESIS};
use crate::Event;
use alloy_signer::SignerSync;
use mycel_types::api::AllowanceEvent;
use mycel_types::tx::{GrantAllowance, RevokeAllowance};
use mycel_types::{eip3009, Transfer};
use proptest::prelude::*;

const OWNER: usize = 1;
const AGENT: usize = 2;
const SHOP: usize = 3;
const OTHER_OWNER: usize = 4;

type Make = Box<dyn FnOnce(Address, u64) -> TxKind>;

/// A grant of `budget` mUSD per `period` blocks, `cap` per transaction.
fn grant(budget: u128, cap: u128, period: u64, recipients: Vec<Address>, expires_at: u64) -> Make {
    grant_to(
        AGENT,
        vec![(Token::Musd, budget, cap)],
        period,
        recipients,
        vec![],
        expires_at,
    )
}

fn grant_to(
    agent: usize,
    limits: Vec<(Token, u128, u128)>,
    period: u64,
    recipients: Vec<Address>,
    kinds: Vec<&'static str>,
    expires_at: u64,
) -> Make {
    Box::new(move |from, nonce| {
        TxKind::GrantAllowance(GrantAllowance {
            from,
            agent: key(agent).address(),
            tokens: limits.iter().map(|(t, _, _)| t.address()).collect(),
            periodBudgets: limits.iter().map(|(_, b, _)| U256::from(*b)).collect(),
            maxPerTx: limits.iter().map(|(_, _, c)| U256::from(*c)).collect(),
            periodBlocks: period,
            recipients,
            kinds: kinds.into_iter().map(String::from).collect(),
            expiresAt: expires_at,
            nonce,
            fee: fee(),
        })
    })
}

fn pay(to: usize, token: Token, amount: u128) -> Make {
    Box::new(move |from, nonce| {
        TxKind::Transfer(Transfer {
            from,
            to: key(to).address(),
            token: token.address(),
            amount: U256::from(amount),
            memo: Default::default(),
            nonce,
            fee: fee(),
        })
    })
}

fn musd(chain: &Chain, who: usize) -> u128 {
    chain.state.account(&key(who).address()).musd
}

#[test]
fn a_delegated_key_spends_its_owners_funds_within_the_budget_and_pays_its_own_fee() {
    let mut chain = Chain::new();
    chain
        .run(key(OWNER), grant(1_000, 600, 10, vec![], 0))
        .unwrap();
    let (owner, agent, shop) = (musd(&chain, OWNER), musd(&chain, AGENT), musd(&chain, SHOP));
    let agent_myc = chain.state.account(&key(AGENT).address()).myc;
    let r = chain.run(key(AGENT), pay(SHOP, Token::Musd, 400)).unwrap();
    assert!(r.events.iter().any(|e| matches!(
        e,
        Event::Allowance(AllowanceEvent::Spent { amount: 400, .. })
    )));
    assert_eq!(musd(&chain, OWNER), owner - 400);
    assert_eq!(
        musd(&chain, AGENT),
        agent,
        "the agent's own mUSD is untouched"
    );
    assert_eq!(musd(&chain, SHOP), shop + 400);
    assert_eq!(
        chain.state.account(&key(AGENT).address()).myc,
        agent_myc - crate::test_chain::fee().to::<u128>(),
        "the agent pays its fee"
    );
    // 600 per transaction, 1000 per period: 400 spent, 600 left.
    assert_eq!(
        chain.refused(key(AGENT), pay(SHOP, Token::Musd, 601)),
        "allowance_over_tx_cap"
    );
    chain.run(key(AGENT), pay(SHOP, Token::Musd, 600)).unwrap();
    assert_eq!(
        chain.refused(key(AGENT), pay(SHOP, Token::Musd, 1)),
        "allowance_over_period_budget"
    );
    // The next period (blocks are 10 long) has a fresh budget.
    let height = chain.state.height();
    chain.advance_blocks(10 - height % 10);
    chain.run(key(AGENT), pay(SHOP, Token::Musd, 500)).unwrap();
    assert_eq!(musd(&chain, OWNER), owner - 1_500);
}

#[test]
fn limits_refuse_with_the_limit_s_code_and_change_nothing() {
    let mut chain = Chain::new();
    let shop = key(SHOP).address();
    let expires = chain.state.height() + 5;
    chain
        .run(
            key(OWNER),
            grant_to(
                AGENT,
                vec![(Token::Musd, 1_000, 1_000)],
                100,
                vec![shop],
                vec!["TransferWithAuthorization"],
                expires,
            ),
        )
        .unwrap();
    assert_eq!(
        chain.refused(key(AGENT), pay(SHOP, Token::Musd, 1)),
        "allowance_kind_not_allowed"
    );
    chain
        .run(
            key(OWNER),
            grant_to(
                AGENT,
                vec![(Token::Musd, 1_000, 1_000)],
                100,
                vec![shop],
                vec![],
                expires + 2,
            ),
        )
        .unwrap();
    assert_eq!(
        chain.refused(key(AGENT), pay(OTHER_OWNER, Token::Musd, 1)),
        "allowance_recipient_not_allowed"
    );
    assert_eq!(
        chain.refused(key(AGENT), pay(SHOP, Token::Myc, 1)),
        "allowance_token_not_allowed"
    );
    chain.run(key(AGENT), pay(SHOP, Token::Musd, 1)).unwrap();
    chain.advance_blocks(5);
    assert_eq!(
        chain.refused(key(AGENT), pay(SHOP, Token::Musd, 1)),
        "allowance_expired"
    );
    // Grants that cannot be made.
    assert_eq!(
        chain.refused(key(OTHER_OWNER), grant(1, 1, 1, vec![], 0)),
        "allowance_agent_taken"
    );
    assert_eq!(
        chain.refused(
            key(AGENT),
            grant_to(AGENT, vec![(Token::Musd, 1, 1)], 1, vec![], vec![], 0)
        ),
        "allowance_self"
    );
    for bad in [
        grant_to(5, vec![], 10, vec![], vec![], 0),
        grant_to(5, vec![(Token::Musd, 1, 1)], 0, vec![], vec![], 0),
        grant_to(
            5,
            vec![(Token::Musd, 1, 1), (Token::Musd, 2, 2)],
            10,
            vec![],
            vec![],
            0,
        ),
        grant_to(
            5,
            vec![(Token::Musd, 1, 1)],
            10,
            vec![],
            vec!["AddStake"],
            0,
        ),
    ] {
        assert_eq!(chain.refused(key(OWNER), bad), "allowance_bad_limits");
    }
    let revoke_other: Make = Box::new(|from, nonce| {
        TxKind::RevokeAllowance(RevokeAllowance {
            from,
            agent: key(AGENT).address(),
            nonce,
            fee: fee(),
        })
    });
    assert_eq!(
        chain.refused(key(OTHER_OWNER), revoke_other),
        "allowance_unknown"
    );
}

#[test]
fn a_revoked_key_spends_only_its_own_account_again() {
    let mut chain = Chain::new();
    chain
        .run(key(OWNER), grant(1_000, 1_000, 10, vec![], 0))
        .unwrap();
    let owner = musd(&chain, OWNER);
    chain
        .run(key(OWNER), |from, nonce| {
            TxKind::RevokeAllowance(RevokeAllowance {
                from,
                agent: key(AGENT).address(),
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    let agent = musd(&chain, AGENT);
    chain.run(key(AGENT), pay(SHOP, Token::Musd, 10)).unwrap();
    assert_eq!(
        (musd(&chain, OWNER), musd(&chain, AGENT)),
        (owner, agent - 10)
    );
}

#[test]
fn an_x402_authorization_signed_by_a_delegated_key_is_paid_by_its_owner() {
    let mut chain = Chain::new();
    chain
        .run(key(OWNER), grant(1_000, 700, 10, vec![], 0))
        .unwrap();
    let owner = musd(&chain, OWNER);
    let agent = musd(&chain, AGENT);
    let authorization = |chain: &Chain, value: u128, nonce: u8| -> Make {
        let auth = eip3009::TransferWithAuthorization {
            from: key(AGENT).address(),
            to: key(SHOP).address(),
            value: U256::from(value),
            validAfter: U256::ZERO,
            validBefore: U256::from(chain.time_ms / 1000 + 600),
            nonce: B256::repeat_byte(nonce),
        };
        let sig = key(AGENT)
            .sign_hash_sync(&auth.signing_hash(&eip3009::musd_domain(GENESIS.chain_id)))
            .unwrap();
        Box::new(move |from, tx_nonce| {
            TxKind::TransferWithAuthorization(mycel_types::TransferWithAuthorization {
                from,
                payer: auth.from,
                to: auth.to,
                value: auth.value,
                validAfter: auth.validAfter,
                validBefore: auth.validBefore,
                authorizationNonce: auth.nonce,
                signature: sig.as_bytes().to_vec().into(),
                nonce: tx_nonce,
                fee: fee(),
            })
        })
    };
    // Submitted by the shop as a facilitator would.
    chain.run(key(SHOP), authorization(&chain, 700, 1)).unwrap();
    assert_eq!(
        (musd(&chain, OWNER), musd(&chain, AGENT)),
        (owner - 700, agent)
    );
    let over = authorization(&chain, 301, 2);
    assert_eq!(
        chain.refused(key(SHOP), over),
        "allowance_over_period_budget"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Over any sequence of delegated payments and waits, the owner loses exactly what was
    /// paid, and no period window ever pays out more than the budget.
    #[test]
    fn the_budget_is_never_exceeded(
        steps in prop::collection::vec((0u128..500, 0u64..4), 1..40)
    ) {
        const BUDGET: u128 = 1_000;
        const PERIOD: u64 = 5;
        let mut chain = Chain::new();
        chain.run(key(OWNER), grant(BUDGET, 400, PERIOD, vec![], 0)).unwrap();
        let start = musd(&chain, OWNER);
        let mut paid_in: BTreeMap<u64, u128> = BTreeMap::new();
        let mut paid = 0;
        for (amount, wait) in steps {
            chain.advance_blocks(wait);
            let kind = pay(SHOP, Token::Musd, amount)(key(AGENT).address(), chain.nonce(key(AGENT)));
            let tx = mycel_types::SignedTx::sign(kind, GENESIS.chain_id, key(AGENT)).unwrap();
            let verified = chain.state.verify_stateless(tx).unwrap();
            let before = chain.state.clone();
            // Applied in the block being built (height + 1), as the allowance counts it.
            let height = chain.state.height() + 1;
            match chain.state.apply_verified(&verified) {
                Ok(_) => {
                    *paid_in.entry(height / PERIOD).or_default() += amount;
                    paid += amount;
                }
                Err(_) => prop_assert_eq!(&chain.state, &before),
            }
            chain.state.assert_books_balance();
        }
        prop_assert_eq!(musd(&chain, OWNER), start - paid);
        for (period, total) in paid_in {
            prop_assert!(total <= BUDGET, "period {} paid {}", period, total);
        }
    }
}
