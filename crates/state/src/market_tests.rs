use super::*;
use crate::test_chain::{fee, key, Chain, GENESIS};
use crate::Event;
use mycel_types::tx::{
    AcceptBid, AttestProvider, CloseDeployment, CloseLease, CreateDeployment, PlaceBid,
    RegisterProvider, TopUpDeployment, WithdrawLease,
};
use mycel_types::Genesis;

const OWNER: usize = 1;
const CHEAP: usize = 4;
const DEAR: usize = 5;
const AUDITOR: usize = 6;
const PRICE: u128 = 1_000;
const DEPOSIT: u128 = 10_000_000_000;

fn genesis() -> Genesis {
    let mut g = GENESIS.clone();
    g.market = MarketParams {
        min_bid_deposit: DEPOSIT,
        max_bids_per_order: 2,
        max_bid_ttl: 50,
        grace_blocks: 5,
        low_balance_blocks: 3,
        failure_blocks: 3,
        failure_slash_bps: 2_500,
        closed_retention_blocks: 4,
    };
    g
}

fn provider(region: &str, cores: u64) -> impl FnOnce(Address, u64) -> TxKind {
    let region = region.to_string();
    move |from, nonce| {
        TxKind::RegisterProvider(RegisterProvider {
            from,
            endpoint: "http://127.0.0.1:9100".into(),
            region,
            cpuModel: "Xeon".into(),
            cores,
            memoryMib: 8192,
            diskMib: 100_000,
            nonce,
            fee: fee(),
        })
    }
}

fn deploy(
    cores: u64,
    region: &str,
    auditors: &[Address],
    deposit: u128,
) -> impl FnOnce(Address, u64) -> TxKind {
    let region = region.to_string();
    let auditors: Vec<u8> = auditors.iter().flat_map(|a| a.0 .0).collect();
    move |from, nonce| {
        TxKind::CreateDeployment(CreateDeployment {
            from,
            manifest: B256::repeat_byte(1),
            model: B256::repeat_byte(2),
            cores,
            memoryMib: 1024,
            diskMib: 1000,
            region,
            auditors: auditors.into(),
            maxPrice: U256::from(2 * PRICE),
            deposit: U256::from(deposit),
            nonce,
            fee: fee(),
        })
    }
}

fn bid(deployment: u64, price: u128, ttl: u64) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::PlaceBid(PlaceBid {
            from,
            deployment,
            price: U256::from(price),
            deposit: U256::from(DEPOSIT),
            ttl,
            nonce,
            fee: fee(),
        })
    }
}

fn accept(deployment: u64, provider: usize) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::AcceptBid(AcceptBid {
            from,
            deployment,
            provider: key(provider).address(),
            nonce,
            fee: fee(),
        })
    }
}

fn top_up(deployment: u64, amount: u128) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::TopUpDeployment(TopUpDeployment {
            from,
            deployment,
            amount: U256::from(amount),
            nonce,
            fee: fee(),
        })
    }
}

fn withdraw(deployment: u64) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::WithdrawLease(WithdrawLease {
            from,
            deployment,
            nonce,
            fee: fee(),
        })
    }
}

fn musd(chain: &Chain, who: usize) -> u128 {
    chain.state.account(&key(who).address()).musd
}

fn myc(chain: &Chain, who: usize) -> u128 {
    chain.state.account(&key(who).address()).myc
}

fn the(chain: &Chain, id: u64) -> Deployment {
    chain.state.market().deployment(id).unwrap().clone()
}

fn fee_myc() -> u128 {
    fee().to::<u128>()
}

#[test]
fn bids_are_checked_against_the_order_and_the_cheapest_wins_what_its_machine_can_hold() {
    let mut chain = Chain::with_genesis(&genesis());
    let o = key(OWNER);
    assert_eq!(
        chain.refused(key(CHEAP), provider("eu", 0)),
        "market_bad_resources"
    );
    assert_eq!(
        chain.refused(key(CHEAP), |from, nonce| {
            TxKind::RegisterProvider(RegisterProvider {
                from,
                endpoint: "ftp://x".into(),
                region: "eu".into(),
                cpuModel: "x".into(),
                cores: 4,
                memoryMib: 1,
                diskMib: 1,
                nonce,
                fee: fee(),
            })
        }),
        "market_bad_endpoint"
    );
    chain.run(key(CHEAP), provider("eu", 4)).unwrap();
    chain.run(key(DEAR), provider("eu", 8)).unwrap();
    chain.run(key(7), provider("us", 8)).unwrap();
    // Attestations: not of oneself; cleared when the attributes change.
    let attest = |p: usize| {
        move |from, nonce| {
            TxKind::AttestProvider(AttestProvider {
                from,
                provider: key(p).address(),
                nonce,
                fee: fee(),
            })
        }
    };
    assert_eq!(
        chain.refused(key(CHEAP), attest(CHEAP)),
        "market_self_attestation"
    );
    chain.run(key(AUDITOR), attest(CHEAP)).unwrap();
    chain.run(key(AUDITOR), attest(DEAR)).unwrap();
    chain.run(key(DEAR), provider("eu", 16)).unwrap();
    assert!(chain
        .state
        .market()
        .provider(&key(DEAR).address())
        .unwrap()
        .auditors
        .is_empty());

    assert_eq!(
        chain.refused(o, deploy(2, "eu", &[], PRICE)),
        "market_deposit_too_small"
    );
    assert_eq!(
        chain.refused(o, |from, nonce| {
            TxKind::CreateDeployment(CreateDeployment {
                from,
                manifest: B256::ZERO,
                model: B256::ZERO,
                cores: 1,
                memoryMib: 1,
                diskMib: 1,
                region: String::new(),
                auditors: vec![0u8; 21].into(),
                maxPrice: U256::from(1),
                deposit: U256::from(1),
                nonce,
                fee: fee(),
            })
        }),
        "market_bad_auditors"
    );
    let auditor = key(AUDITOR).address();
    let escrow = 100 * PRICE;
    let before = musd(&chain, OWNER);
    chain.run(o, deploy(2, "eu", &[auditor], escrow)).unwrap();
    assert_eq!(musd(&chain, OWNER), before - escrow);
    // Wrong region, no attestation, price out of range, small deposit, bad ttl.
    assert_eq!(
        chain.refused(key(7), bid(1, PRICE, 10)),
        "market_wrong_region"
    );
    assert_eq!(
        chain.refused(key(DEAR), bid(1, PRICE, 10)),
        "market_not_attested"
    );
    assert_eq!(
        chain.refused(key(CHEAP), bid(1, 3 * PRICE, 10)),
        "market_price_out_of_range"
    );
    assert_eq!(
        chain.refused(key(CHEAP), bid(1, PRICE, 0)),
        "market_bad_ttl"
    );
    assert_eq!(
        chain.refused(key(CHEAP), bid(1, PRICE, 51)),
        "market_bad_ttl"
    );
    assert_eq!(
        chain.refused(key(2), bid(1, PRICE, 10)),
        "market_not_a_provider"
    );
    chain.run(key(AUDITOR), attest(DEAR)).unwrap();
    let myc_before = myc(&chain, CHEAP);
    chain.run(key(CHEAP), bid(1, 2 * PRICE, 10)).unwrap();
    // Bidding again replaces the bid; its first deposit comes back.
    chain.run(key(CHEAP), bid(1, PRICE, 6)).unwrap();
    assert_eq!(myc(&chain, CHEAP), myc_before - DEPOSIT - 2 * fee_myc());
    chain.run(key(DEAR), bid(1, PRICE + 500, 10)).unwrap();
    let d = the(&chain, 1);
    assert_eq!(
        d.bids.iter().map(|b| b.provider).collect::<Vec<_>>(),
        [key(CHEAP).address(), key(DEAR).address()],
        "cheapest first"
    );
    // Two open bids is this chain's cap (another provider would be refused).
    chain.run(key(7), provider("eu", 8)).unwrap();
    chain.run(key(AUDITOR), attest(7)).unwrap();
    assert_eq!(
        chain.refused(key(7), bid(1, PRICE, 10)),
        "market_too_many_bids"
    );
    // An expired bid cannot be accepted; the owner alone accepts.
    chain.advance_blocks(3);
    assert_eq!(chain.refused(o, accept(1, CHEAP)), "market_bid_expired");
    assert_eq!(chain.refused(key(2), accept(1, DEAR)), "market_not_owner");
    let (cheap_myc, dear_myc) = (myc(&chain, CHEAP), myc(&chain, DEAR));
    chain.run(o, accept(1, DEAR)).unwrap();
    let d = the(&chain, 1);
    assert_eq!(d.state, DeploymentState::Leased);
    assert!(d.bids.is_empty());
    assert_eq!(
        myc(&chain, CHEAP),
        cheap_myc + DEPOSIT,
        "the losing bid's deposit came back"
    );
    assert_eq!(
        myc(&chain, DEAR),
        dear_myc,
        "the winner's deposit stays locked"
    );
    let used = chain
        .state
        .market()
        .provider(&key(DEAR).address())
        .unwrap()
        .used;
    assert_eq!(used.cores, 2);
    // A machine full of leases bids no more.
    chain.run(o, deploy(15, "", &[], escrow)).unwrap();
    assert_eq!(
        chain.refused(key(DEAR), bid(2, PRICE, 10)),
        "market_over_capacity"
    );
    // Its capacity cannot drop below what it holds.
    assert_eq!(
        chain.refused(key(DEAR), provider("eu", 1)),
        "market_capacity_below_used"
    );
}

#[test]
fn a_lease_is_paid_per_block_exactly_pauses_when_dry_resumes_on_top_up_and_closes_after_grace() {
    let mut chain = Chain::with_genesis(&genesis());
    let o = key(OWNER);
    chain.run(key(CHEAP), provider("eu", 4)).unwrap();
    // Escrow for 10 blocks and a little over.
    chain.run(o, deploy(1, "", &[], 10 * PRICE + 7)).unwrap();
    chain.run(key(CHEAP), bid(1, PRICE, 10)).unwrap();
    chain.run(o, accept(1, CHEAP)).unwrap();
    let start = the(&chain, 1).lease.unwrap().started_at;
    assert_eq!(start, chain.state.height());
    // Four blocks on, the provider takes exactly four blocks' pay.
    chain.advance_blocks(3);
    let before = musd(&chain, CHEAP);
    let receipt = chain.run(key(CHEAP), withdraw(1)).unwrap();
    assert!(receipt
        .events
        .contains(&Event::Market(MarketEvent::Withdrawn {
            deployment: 1,
            provider: key(CHEAP).address(),
            paid: (4 * PRICE).to_string(),
        })));
    assert_eq!(musd(&chain, CHEAP), before + 4 * PRICE);
    assert_eq!(
        chain.refused(key(2), withdraw(1)),
        "market_not_lease_provider"
    );
    // The escrow covers blocks start..start+10; at start+10 the lease pauses, paid in full.
    let dry = start + 10;
    while chain.state.height() < dry - 1 {
        chain.advance_blocks(1);
        assert_eq!(the(&chain, 1).state, DeploymentState::Leased);
    }
    let notes = the(&chain, 1).notes;
    assert!(
        notes
            .iter()
            .any(|(_, n)| matches!(n, Note::LowBalance { .. })),
        "{notes:?}"
    );
    chain.advance_blocks(1);
    let d = the(&chain, 1);
    assert_eq!(d.state, DeploymentState::Paused);
    assert_eq!(d.lease.as_ref().unwrap().paused_at, Some(dry));
    assert_eq!(d.lease.as_ref().unwrap().paid, 10 * PRICE);
    assert_eq!(d.escrow, 7, "a fraction of a block is never paid");
    assert_eq!(musd(&chain, CHEAP), before + 10 * PRICE);
    // Paused blocks are not paid; a top-up resumes from its own block.
    chain.advance_blocks(2);
    let receipt = chain.run(key(2), top_up(1, 3 * PRICE)).unwrap();
    assert!(receipt
        .events
        .contains(&Event::Market(MarketEvent::ToppedUp {
            deployment: 1,
            escrow: (3 * PRICE + 7).to_string(),
            resumed: true,
        })));
    let resumed_at = chain.state.height();
    let d = the(&chain, 1);
    assert_eq!(
        (d.state, d.lease.as_ref().unwrap().settled_to),
        (DeploymentState::Leased, resumed_at)
    );
    // Three more blocks, then dry again; this time nobody tops up and the grace runs out.
    chain.advance_blocks(3);
    assert_eq!(the(&chain, 1).state, DeploymentState::Paused);
    let (owner_musd, provider_myc) = (musd(&chain, OWNER), myc(&chain, CHEAP));
    chain.advance_blocks(5);
    let d = the(&chain, 1);
    assert_eq!(d.state, DeploymentState::Closed);
    assert!(d.lease.is_none());
    assert!(d.notes.iter().any(|(_, n)| matches!(
        n,
        Note::Closed {
            reason: CloseReason::InsufficientFunds,
            ..
        }
    )));
    assert_eq!(
        musd(&chain, OWNER),
        owner_musd + 7,
        "the fraction goes back to the owner"
    );
    assert_eq!(
        myc(&chain, CHEAP),
        provider_myc + DEPOSIT,
        "the bid deposit goes back"
    );
    assert_eq!(
        musd(&chain, CHEAP),
        before + 13 * PRICE,
        "13 blocks served, 13 paid"
    );
    assert!(chain
        .state
        .market()
        .provider(&key(CHEAP).address())
        .unwrap()
        .used
        .is_zero());
    assert_eq!(
        chain.refused(key(2), top_up(1, PRICE)),
        "market_wrong_state"
    );
}

#[test]
fn closing_pays_to_the_block_and_refunds_the_rest_and_a_provider_leaving_reopens_the_order() {
    let mut chain = Chain::with_genesis(&genesis());
    let o = key(OWNER);
    chain.run(key(CHEAP), provider("eu", 4)).unwrap();
    chain.run(key(DEAR), provider("eu", 4)).unwrap();
    chain.run(o, deploy(2, "", &[], 50 * PRICE)).unwrap();
    chain.run(key(CHEAP), bid(1, PRICE, 10)).unwrap();
    chain.run(o, accept(1, CHEAP)).unwrap();
    chain.advance_blocks(4);
    // The provider leaves: paid to its block, deposit back; the order takes bids again.
    let (p_musd, p_myc) = (musd(&chain, CHEAP), myc(&chain, CHEAP));
    let receipt = chain
        .run(key(CHEAP), |from, nonce| {
            TxKind::CloseLease(CloseLease {
                from,
                deployment: 1,
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    assert!(receipt
        .events
        .contains(&Event::Market(MarketEvent::LeaseClosed {
            deployment: 1,
            provider: key(CHEAP).address(),
            paid: (5 * PRICE).to_string(),
            reason: CloseReason::Provider,
        })));
    assert_eq!(musd(&chain, CHEAP), p_musd + 5 * PRICE);
    assert_eq!(myc(&chain, CHEAP), p_myc + DEPOSIT - fee_myc());
    assert_eq!(the(&chain, 1).state, DeploymentState::Open);
    chain.run(key(DEAR), bid(1, 2 * PRICE, 10)).unwrap();
    chain.run(o, accept(1, DEAR)).unwrap();
    // The lease's provider publishes where it serves; nobody else can, and only a URL.
    let endpoint = |url: &str| {
        let url = url.to_string();
        move |from, nonce| {
            TxKind::SetLeaseEndpoint(mycel_types::tx::SetLeaseEndpoint {
                from,
                deployment: 1,
                endpoint: url,
                nonce,
                fee: fee(),
            })
        }
    };
    assert_eq!(
        chain.refused(key(CHEAP), endpoint("http://x")),
        "market_not_lease_provider"
    );
    assert_eq!(
        chain.refused(key(DEAR), endpoint("file:///etc")),
        "market_bad_endpoint"
    );
    chain
        .run(key(DEAR), endpoint("http://127.0.0.1:8000/v1"))
        .unwrap();
    assert_eq!(
        the(&chain, 1).lease.unwrap().endpoint,
        "http://127.0.0.1:8000/v1"
    );
    chain.advance_blocks(1);
    // The owner closes: paid to its block (three blocks), the rest refunded exactly.
    let (owner, dear) = (musd(&chain, OWNER), musd(&chain, DEAR));
    let close = |from, nonce| {
        TxKind::CloseDeployment(CloseDeployment {
            from,
            deployment: 1,
            nonce,
            fee: fee(),
        })
    };
    assert_eq!(chain.refused(key(DEAR), close), "market_not_owner");
    chain.run(o, close).unwrap();
    let paid = 3 * 2 * PRICE;
    assert_eq!(musd(&chain, DEAR), dear + paid);
    assert_eq!(musd(&chain, OWNER), owner + 50 * PRICE - 5 * PRICE - paid);
    let d = the(&chain, 1);
    assert_eq!((d.state, d.escrow), (DeploymentState::Closed, 0));
    assert_eq!(chain.refused(o, close), "market_wrong_state");
    // Past its retention the chain forgets it; ids are not reused.
    chain.advance_blocks(4);
    assert!(chain.state.market().deployment(1).is_none());
    assert_eq!(chain.refused(o, close), "market_unknown_deployment");
    chain.run(o, deploy(1, "", &[], 10 * PRICE)).unwrap();
    assert_eq!(chain.state.market().deployment_count(), 1);
    assert_eq!(the(&chain, 2).state, DeploymentState::Open);
}

fn health(deployment: u64, serving: bool) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::ReportLeaseHealth(mycel_types::tx::ReportLeaseHealth {
            from,
            deployment,
            serving,
            nonce,
            fee: fee(),
        })
    }
}

#[test]
fn a_lease_reported_down_for_the_failure_period_is_lost_with_part_of_its_deposit_and_the_order_reopens(
) {
    let mut chain = Chain::with_genesis(&genesis());
    let o = key(OWNER);
    chain.run(key(CHEAP), provider("eu", 2)).unwrap();
    chain.run(key(DEAR), provider("eu", 2)).unwrap();
    chain.run(o, deploy(2, "", &[], 100 * PRICE)).unwrap();
    // Nothing to check before a lease.
    assert_eq!(chain.refused(o, health(1, false)), "market_wrong_state");
    chain.run(key(CHEAP), bid(1, PRICE, 20)).unwrap();
    chain.run(o, accept(1, CHEAP)).unwrap();
    let started = the(&chain, 1).lease.unwrap().started_at;
    // Only the owner reports.
    assert_eq!(
        chain.refused(key(DEAR), health(1, false)),
        "market_not_owner"
    );
    // Down, then serving again: the mark is cleared, nothing else changes.
    chain.run(o, health(1, false)).unwrap();
    let first_down = chain.state.height();
    assert_eq!(the(&chain, 1).lease.unwrap().down_since, Some(first_down));
    let up = chain.run(o, health(1, true)).unwrap();
    assert!(up.events.contains(&Event::Market(MarketEvent::LeaseHealth {
        deployment: 1,
        provider: key(CHEAP).address(),
        serving: true,
        down_since: None,
    })));
    let notes: Vec<Note> = the(&chain, 1).notes.into_iter().map(|(_, n)| n).collect();
    assert!(notes.ends_with(&[
        Note::LeaseDown {
            provider: key(CHEAP).address()
        },
        Note::LeaseUp {
            provider: key(CHEAP).address()
        }
    ]));
    // Down again: reports within the failure period only keep the mark where it was.
    chain.run(o, health(1, false)).unwrap();
    let down = chain.state.height();
    chain.run(o, health(1, false)).unwrap();
    let lease = the(&chain, 1).lease.unwrap();
    assert_eq!(lease.down_since, Some(down));
    assert_eq!(the(&chain, 1).state, DeploymentState::Leased);
    chain.advance_blocks(1);
    // Three blocks after the first report of this outage: the lease fails. It is paid to this
    // block, a quarter of its deposit burned, the rest returned, its capacity freed.
    let (p_musd, p_myc) = (musd(&chain, CHEAP), myc(&chain, CHEAP));
    let burned_before = chain.state.supply().myc_burned;
    let failed = chain.run(o, health(1, false)).unwrap();
    let height = chain.state.height();
    assert_eq!(height, down + 3);
    let paid = PRICE * u128::from(height - started);
    assert!(failed
        .events
        .contains(&Event::Market(MarketEvent::LeaseFailed {
            deployment: 1,
            provider: key(CHEAP).address(),
            paid: paid.to_string(),
            burned: (DEPOSIT / 4).to_string(),
        })));
    assert_eq!(musd(&chain, CHEAP), p_musd + paid);
    assert_eq!(myc(&chain, CHEAP), p_myc + DEPOSIT - DEPOSIT / 4);
    assert_eq!(
        chain.state.supply().myc_burned,
        burned_before + DEPOSIT / 4 + fee_myc()
    );
    let d = the(&chain, 1);
    assert_eq!((d.state, d.lease.is_none()), (DeploymentState::Open, true));
    assert_eq!(d.escrow, 100 * PRICE - paid);
    assert!(d.notes.iter().any(|(_, n)| *n
        == Note::LeaseClosed {
            provider: key(CHEAP).address(),
            reason: CloseReason::ProviderFailure
        }));
    let cheap = chain
        .state
        .market()
        .provider(&key(CHEAP).address())
        .unwrap();
    assert!(cheap.used.is_zero());
    // The order takes bids again and another provider's lease serves it.
    chain.run(key(DEAR), bid(1, 2 * PRICE, 20)).unwrap();
    chain.run(o, accept(1, DEAR)).unwrap();
    assert_eq!(the(&chain, 1).lease.unwrap().provider, key(DEAR).address());
}

fn allow(agent: usize, kinds: Vec<String>, budget: u128) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::GrantAllowance(mycel_types::tx::GrantAllowance {
            from,
            agent: key(agent).address(),
            tokens: vec![Token::Musd.address()],
            periodBudgets: vec![U256::from(budget)],
            maxPerTx: vec![U256::from(budget)],
            periodBlocks: 1_000,
            recipients: vec![],
            kinds,
            expiresAt: 0,
            nonce,
            fee: fee(),
        })
    }
}

#[test]
fn an_agent_key_tops_up_its_owners_deployments_from_the_owners_account_within_its_grant() {
    const AGENT: usize = 3;
    let mut chain = Chain::with_genesis(&genesis());
    let o = key(OWNER);
    chain.run(key(CHEAP), provider("eu", 4)).unwrap();
    chain.run(o, deploy(1, "", &[], 10 * PRICE)).unwrap();
    chain.run(key(2), deploy(1, "", &[], 10 * PRICE)).unwrap();
    // A grant that names no kinds does not cover top-ups.
    chain.run(o, allow(AGENT, vec![], 5 * PRICE)).unwrap();
    assert_eq!(
        chain.refused(key(AGENT), top_up(1, PRICE)),
        "allowance_kind_not_allowed"
    );
    chain
        .run(o, allow(AGENT, vec!["TopUpDeployment".into()], 5 * PRICE))
        .unwrap();
    let (owner, agent) = (musd(&chain, OWNER), musd(&chain, AGENT));
    let receipt = chain.run(key(AGENT), top_up(1, 3 * PRICE)).unwrap();
    assert!(receipt
        .events
        .contains(&Event::Allowance(mycel_types::api::AllowanceEvent::Spent {
            owner: o.address(),
            agent: key(AGENT).address(),
            token: Token::Musd,
            amount: 3 * PRICE,
        })));
    assert_eq!(musd(&chain, OWNER), owner - 3 * PRICE, "the owner's mUSD");
    assert_eq!(musd(&chain, AGENT), agent, "not the agent's");
    assert_eq!(the(&chain, 1).escrow, 13 * PRICE);
    // Within the budget only, and only the owner's own deployments.
    assert_eq!(
        chain.refused(key(AGENT), top_up(1, 3 * PRICE)),
        "allowance_over_period_budget"
    );
    assert_eq!(
        chain.refused(key(AGENT), top_up(2, PRICE)),
        "market_not_owner"
    );
}
