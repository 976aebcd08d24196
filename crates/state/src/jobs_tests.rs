use super::*;
use crate::test_chain::{fee, key, Chain};
use crate::Event;
use mycel_types::tx::{
    ClaimJobRefund, CompleteJob, CreateJob, FundJob, RejectJob, SetJobBudget, SetJobProvider,
    SubmitJob,
};
use proptest::prelude::*;

const CLIENT: usize = 1;
const PROVIDER: usize = 2;
const EVALUATOR: usize = 3;
const PLATFORM: usize = 4;
const STRANGER: usize = 5;
/// The jobs of these tests have no dispute window (the dispute test makes its own).
const DISPUTE: u64 = 0;

type Make = Box<dyn FnOnce(Address, u64) -> TxKind>;

fn create(provider: Option<usize>, expires_in_s: u64, fee_bps: u16, chain: &Chain) -> Make {
    let expired_at = chain.time_ms / 1000 + expires_in_s;
    let provider = provider.map_or(Address::ZERO, |p| key(p).address());
    Box::new(move |from, nonce| {
        TxKind::CreateJob(CreateJob {
            from,
            provider,
            evaluator: key(EVALUATOR).address(),
            expiredAt: expired_at,
            disputeWindow: DISPUTE,
            description: "summarise 10 papers".into(),
            platform: if fee_bps > 0 {
                key(PLATFORM).address()
            } else {
                Address::ZERO
            },
            platformFeeBps: fee_bps,
            nonce,
            fee: fee(),
        })
    })
}

fn budget(job: u64, amount: u128) -> Make {
    Box::new(move |from, nonce| {
        TxKind::SetJobBudget(SetJobBudget {
            from,
            jobId: job,
            amount: U256::from(amount),
            nonce,
            fee: fee(),
        })
    })
}

fn fund(job: u64, expected: u128) -> Make {
    Box::new(move |from, nonce| {
        TxKind::FundJob(FundJob {
            from,
            jobId: job,
            expectedBudget: U256::from(expected),
            nonce,
            fee: fee(),
        })
    })
}

fn submit(job: u64) -> Make {
    Box::new(move |from, nonce| {
        TxKind::SubmitJob(SubmitJob {
            from,
            jobId: job,
            deliverable: B256::repeat_byte(0xd0),
            deliverableURI: "https://provider.example/out/1".into(),
            nonce,
            fee: fee(),
        })
    })
}

fn complete(job: u64) -> Make {
    Box::new(move |from, nonce| {
        TxKind::CompleteJob(CompleteJob {
            from,
            jobId: job,
            reason: B256::ZERO,
            nonce,
            fee: fee(),
        })
    })
}

fn reject(job: u64) -> Make {
    Box::new(move |from, nonce| {
        TxKind::RejectJob(RejectJob {
            from,
            jobId: job,
            reason: B256::repeat_byte(0xee),
            nonce,
            fee: fee(),
        })
    })
}

fn refund(job: u64) -> Make {
    Box::new(move |from, nonce| {
        TxKind::ClaimJobRefund(ClaimJobRefund {
            from,
            jobId: job,
            nonce,
            fee: fee(),
        })
    })
}

fn set_provider(job: u64, provider: usize) -> Make {
    Box::new(move |from, nonce| {
        TxKind::SetJobProvider(SetJobProvider {
            from,
            jobId: job,
            provider: key(provider).address(),
            nonce,
            fee: fee(),
        })
    })
}

fn musd(chain: &Chain, who: usize) -> u128 {
    chain.state.account(&key(who).address()).musd
}

#[test]
fn a_job_is_funded_delivered_completed_and_the_platform_takes_its_fee() {
    let mut chain = Chain::new();
    let r = chain
        .run(key(CLIENT), create(Some(PROVIDER), 3600, 250, &chain))
        .unwrap();
    assert!(matches!(
        &r.events[0],
        Event::Job(JobEvent::Created { job_id: 1, .. })
    ));
    chain.run(key(PROVIDER), budget(1, 2_000_000)).unwrap();
    let before = (
        musd(&chain, CLIENT),
        musd(&chain, PROVIDER),
        musd(&chain, PLATFORM),
    );
    chain.run(key(CLIENT), fund(1, 2_000_000)).unwrap();
    assert_eq!(chain.state.jobs().escrowed(), 2_000_000);
    assert_eq!(musd(&chain, CLIENT), before.0 - 2_000_000);
    chain.run(key(PROVIDER), submit(1)).unwrap();
    let r = chain.run(key(EVALUATOR), complete(1)).unwrap();
    assert!(matches!(
        &r.events[0],
        Event::Job(JobEvent::Completed {
            paid: 1_950_000,
            platform_fee: 50_000,
            ..
        })
    ));
    assert_eq!(musd(&chain, PROVIDER), before.1 + 1_950_000);
    assert_eq!(musd(&chain, PLATFORM), before.2 + 50_000);
    assert_eq!(chain.state.jobs().escrowed(), 0);
    let job = chain.state.jobs().job(1).unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.deliverable, Some(B256::repeat_byte(0xd0)));
    // Listed for every party.
    for who in [CLIENT, PROVIDER, EVALUATOR] {
        assert_eq!(
            chain.state.jobs().jobs_of(&key(who).address(), 1).count(),
            1
        );
    }
}

#[test]
fn rejection_and_expiry_refund_the_client() {
    let mut chain = Chain::new();
    let start = musd(&chain, CLIENT);
    // Rejected by the evaluator after delivery.
    chain
        .run(key(CLIENT), create(Some(PROVIDER), 3600, 0, &chain))
        .unwrap();
    chain.run(key(CLIENT), budget(1, 700)).unwrap();
    chain.run(key(CLIENT), fund(1, 700)).unwrap();
    chain.run(key(PROVIDER), submit(1)).unwrap();
    chain.run(key(EVALUATOR), reject(1)).unwrap();
    assert_eq!(musd(&chain, CLIENT), start);
    // Funded, never delivered: refunded by anyone after the expiry, not before.
    chain
        .run(key(CLIENT), create(Some(PROVIDER), 60, 0, &chain))
        .unwrap();
    chain.run(key(CLIENT), budget(2, 900)).unwrap();
    chain.run(key(CLIENT), fund(2, 900)).unwrap();
    assert_eq!(chain.refused(key(STRANGER), refund(2)), "job_not_expired");
    chain.advance(61);
    assert_eq!(chain.refused(key(PROVIDER), submit(2)), "job_expired");
    chain.run(key(STRANGER), refund(2)).unwrap();
    assert_eq!(musd(&chain, CLIENT), start);
    assert_eq!(
        chain.state.jobs().job(2).unwrap().status,
        JobStatus::Expired
    );
    // Reject and expiry are final.
    assert_eq!(chain.refused(key(EVALUATOR), reject(2)), "job_wrong_status");
    // An unfunded job the client cancels.
    chain
        .run(key(CLIENT), create(None, 600, 0, &chain))
        .unwrap();
    chain.run(key(CLIENT), reject(3)).unwrap();
}

#[test]
fn bad_inputs_are_refused_with_their_own_code_and_change_nothing() {
    let mut chain = Chain::new();
    chain
        .run(key(CLIENT), create(None, 3600, 0, &chain))
        .unwrap();
    chain.run(key(CLIENT), budget(1, 1_000)).unwrap();
    let no_evaluator: Make = Box::new(|from, nonce| {
        TxKind::CreateJob(CreateJob {
            from,
            provider: Address::ZERO,
            evaluator: Address::ZERO,
            expiredAt: u64::MAX,
            disputeWindow: DISPUTE,
            description: String::new(),
            platform: Address::ZERO,
            platformFeeBps: 0,
            nonce,
            fee: fee(),
        })
    });
    let cases: Vec<(&str, usize, Make)> = vec![
        ("job_no_evaluator", CLIENT, no_evaluator),
        ("job_bad_expiry", CLIENT, create(None, 0, 0, &chain)),
        (
            "job_bad_expiry",
            CLIENT,
            create(None, MAX_JOB_LIFETIME_S + 10, 0, &chain),
        ),
        (
            "job_bad_platform_fee",
            CLIENT,
            create(None, 60, 1001, &chain),
        ),
        ("job_unknown", CLIENT, fund(9, 1_000)),
        ("job_no_provider", CLIENT, fund(1, 1_000)),
        ("job_not_client", STRANGER, set_provider(1, PROVIDER)),
        ("job_not_party", STRANGER, budget(1, 5)),
        ("job_not_provider", PROVIDER, submit(1)),
        ("job_wrong_status", EVALUATOR, complete(1)),
        ("job_not_client", EVALUATOR, reject(1)),
        ("job_wrong_status", STRANGER, refund(1)),
    ];
    for (code, who, make) in cases {
        assert_eq!(chain.refused(key(who), make), code);
    }
    chain.run(key(CLIENT), set_provider(1, PROVIDER)).unwrap();
    let cases: Vec<(&str, usize, Make)> = vec![
        (
            "job_provider_already_set",
            CLIENT,
            set_provider(1, STRANGER),
        ),
        // The provider raised the budget under the client: the client's fund is refused.
        ("job_budget_changed", CLIENT, fund(1, 999)),
        ("job_not_client", PROVIDER, fund(1, 1_000)),
        ("insufficient_balance", CLIENT, {
            let all = musd(&chain, CLIENT) + 1;
            chain.run(key(CLIENT), budget(1, all)).unwrap();
            fund(1, all)
        }),
    ];
    for (code, who, make) in cases {
        assert_eq!(chain.refused(key(who), make), code);
    }
    chain.run(key(CLIENT), budget(1, 1_000)).unwrap();
    chain.run(key(CLIENT), fund(1, 1_000)).unwrap();
    assert_eq!(
        chain.refused(key(CLIENT), fund(1, 1_000)),
        "job_wrong_status"
    );
    assert_eq!(chain.refused(key(STRANGER), submit(1)), "job_not_provider");
    assert_eq!(
        chain.refused(key(PROVIDER), complete(1)),
        "job_not_evaluator"
    );
}

#[derive(Debug, Clone)]
enum Step {
    Create { provider: bool, expires_in: u64 },
    Budget { job: u64, who: usize, amount: u128 },
    Provider { job: u64 },
    Fund { job: u64 },
    Submit { job: u64 },
    Complete { job: u64 },
    Reject { job: u64, who: usize },
    Refund { job: u64 },
    Wait { seconds: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    let job = 1u64..4;
    let party = prop_oneof![
        Just(CLIENT),
        Just(PROVIDER),
        Just(EVALUATOR),
        Just(STRANGER)
    ];
    prop_oneof![
        (any::<bool>(), 5u64..120).prop_map(|(provider, expires_in)| Step::Create {
            provider,
            expires_in
        }),
        (job.clone(), party.clone(), 0u128..5_000_000)
            .prop_map(|(job, who, amount)| Step::Budget { job, who, amount }),
        job.clone().prop_map(|job| Step::Provider { job }),
        job.clone().prop_map(|job| Step::Fund { job }),
        job.clone().prop_map(|job| Step::Submit { job }),
        job.clone().prop_map(|job| Step::Complete { job }),
        (job.clone(), party).prop_map(|(job, who)| Step::Reject { job, who }),
        job.prop_map(|job| Step::Refund { job }),
        (1u64..90).prop_map(|seconds| Step::Wait { seconds }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Over any sequence of job transactions by any party: a refused one changes nothing
    /// (`refused` compares the whole state and its root), the books balance after every block
    /// (asserted by the state machine), escrow is exactly the budget of the funded and submitted
    /// jobs, and client + provider + platform + escrow holds what they started with.
    #[test]
    fn escrow_is_conserved(steps in prop::collection::vec(step(), 1..40)) {
        let mut chain = Chain::new();
        let parties = [CLIENT, PROVIDER, PLATFORM];
        let held = |chain: &Chain| parties.iter().map(|p| musd(chain, *p)).sum::<u128>()
            + chain.state.jobs().escrowed();
        let start = held(&chain);
        for s in steps {
            let (who, make): (usize, Make) = match s {
                Step::Create { provider, expires_in } => {
                    (CLIENT, create(provider.then_some(PROVIDER), expires_in, 100, &chain))
                }
                Step::Budget { job, who, amount } => (who, budget(job, amount)),
                Step::Provider { job } => (CLIENT, set_provider(job, PROVIDER)),
                Step::Fund { job } => {
                    let b = chain.state.jobs().job(job).map_or(0, |j| j.budget);
                    (CLIENT, fund(job, b))
                }
                Step::Submit { job } => (PROVIDER, submit(job)),
                Step::Complete { job } => (EVALUATOR, complete(job)),
                Step::Reject { job, who } => (who, reject(job)),
                Step::Refund { job } => (STRANGER, refund(job)),
                Step::Wait { seconds } => {
                    chain.advance(seconds);
                    continue;
                }
            };
            // Applied at the last block's time; a refusal must change nothing.
            let tx = mycel_types::SignedTx::sign(
                make(key(who).address(), chain.nonce(key(who))),
                crate::test_chain::GENESIS.chain_id,
                key(who),
            )
            .unwrap();
            let verified = chain.state.verify_stateless(tx).unwrap();
            let before = chain.state.clone();
            if chain.state.apply_verified(&verified).is_err() {
                prop_assert_eq!(&chain.state, &before);
            }
            chain.state.assert_books_balance();
            let expected: u128 = chain
                .state
                .jobs()
                .jobs_from(1)
                .filter(|(_, j)| matches!(j.status, JobStatus::Funded | JobStatus::Submitted))
                .map(|(_, j)| j.budget)
                .sum();
            prop_assert_eq!(chain.state.jobs().escrowed(), expected);
            prop_assert_eq!(held(&chain), start);
        }
    }
}

#[test]
fn the_dispute_window_holds_completion_and_needs_a_real_validator() {
    use mycel_types::tx::DisputeJob;
    let mut chain = Chain::new();
    let expires = chain.time_ms / 1000 + 3600;
    let make = |window: u64| -> Make {
        Box::new(move |from, nonce| {
            TxKind::CreateJob(CreateJob {
                from,
                provider: key(PROVIDER).address(),
                evaluator: key(EVALUATOR).address(),
                expiredAt: expires,
                disputeWindow: window,
                description: String::new(),
                platform: Address::ZERO,
                platformFeeBps: 0,
                nonce,
                fee: fee(),
            })
        })
    };
    assert_eq!(
        chain.refused(key(CLIENT), make(MAX_DISPUTE_WINDOW_S + 1)),
        "job_dispute_window_too_long"
    );
    chain.run(key(CLIENT), make(30)).unwrap();
    chain.run(key(CLIENT), budget(1, 100)).unwrap();
    chain.run(key(CLIENT), fund(1, 100)).unwrap();
    chain.run(key(PROVIDER), submit(1)).unwrap();
    let dispute = |validator: usize| -> Make {
        Box::new(move |from, nonce| {
            TxKind::DisputeJob(DisputeJob {
                from,
                jobId: 1,
                netuid: 1,
                validator: key(validator).address(),
                nonce,
                fee: fee(),
            })
        })
    };
    // Inside the window: the evaluator may not complete; only the client disputes, and only to
    // a validator with a permit (there is no subnet here).
    assert_eq!(
        chain.refused(key(EVALUATOR), complete(1)),
        "job_dispute_window_open"
    );
    assert_eq!(
        chain.refused(key(STRANGER), dispute(EVALUATOR)),
        "job_not_client"
    );
    assert_eq!(
        chain.refused(key(CLIENT), dispute(STRANGER)),
        "job_not_a_validator"
    );
    // After it: no dispute, and the evaluator completes.
    chain.advance(31);
    assert_eq!(
        chain.refused(key(CLIENT), dispute(STRANGER)),
        "job_dispute_window_closed"
    );
    chain.run(key(EVALUATOR), complete(1)).unwrap();
    // A job without a window cannot be disputed.
    chain.run(key(CLIENT), make(0)).unwrap();
    chain.run(key(CLIENT), budget(2, 100)).unwrap();
    chain.run(key(CLIENT), fund(2, 100)).unwrap();
    chain.run(key(PROVIDER), submit(2)).unwrap();
    let dispute2: Make = Box::new(|from, nonce| {
        TxKind::DisputeJob(DisputeJob {
            from,
            jobId: 2,
            netuid: 1,
            validator: key(EVALUATOR).address(),
            nonce,
            fee: fee(),
        })
    });
    assert_eq!(
        chain.refused(key(CLIENT), dispute2),
        "job_dispute_window_closed"
    );
}
