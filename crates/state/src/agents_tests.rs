use super::*;
use crate::test_chain::{fee, key, Chain, GENESIS};
use crate::Event;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use mycel_types::tx::{
    AgentWalletSet, AppendResponse, ApproveAgent, GiveFeedback, RegisterAgent, RevokeFeedback,
    SetAgentMetadata, SetAgentOperator, SetAgentURI, SetAgentWallet, TransferAgent,
};
use proptest::prelude::*;

fn feedback(
    agent: u64,
    value: i128,
    decimals: u8,
    tag1: &str,
    payment: B256,
) -> impl FnOnce(Address, u64) -> TxKind {
    let tag1 = tag1.to_string();
    move |from, nonce| {
        TxKind::GiveFeedback(GiveFeedback {
            from,
            agentId: U256::from(agent),
            value,
            valueDecimals: decimals,
            tag1,
            tag2: String::new(),
            endpoint: "https://agent.example/v1/chat/completions".into(),
            feedbackURI: String::new(),
            feedbackHash: B256::ZERO,
            paymentNonce: payment,
            nonce,
            fee: fee(),
        })
    }
}

fn set_uri(agent: u64, uri: &str) -> impl FnOnce(Address, u64) -> TxKind {
    let uri = uri.to_string();
    move |from, nonce| {
        TxKind::SetAgentURI(SetAgentURI {
            from,
            agentId: U256::from(agent),
            newURI: uri,
            nonce,
            fee: fee(),
        })
    }
}

fn wallet_tx(
    agent: u64,
    owner: Address,
    wallet: &PrivateKeySigner,
    deadline: u64,
) -> impl FnOnce(Address, u64) -> TxKind {
    let consent = AgentWalletSet {
        agentId: U256::from(agent),
        newWallet: wallet.address(),
        owner,
        deadline: U256::from(deadline),
    };
    let sig = wallet
        .sign_hash_sync(&consent.signing_hash(GENESIS.chain_id))
        .unwrap();
    move |from, nonce| {
        TxKind::SetAgentWallet(SetAgentWallet {
            from,
            agentId: consent.agentId,
            newWallet: consent.newWallet,
            deadline: consent.deadline,
            signature: sig.as_bytes().to_vec().into(),
            nonce,
            fee: fee(),
        })
    }
}

#[test]
fn agents_register_in_order_with_metadata_and_the_owner_as_wallet() {
    let mut chain = Chain::new();
    let mut root = chain.state.state_root();
    let receipt = chain
        .run(key(1), |from, nonce| {
            TxKind::RegisterAgent(RegisterAgent {
                from,
                agentURI: "https://a.example/.well-known/agent-registration.json".into(),
                metadata: vec![MetadataEntry {
                    metadataKey: "model".into(),
                    metadataValue: b"smollm2-135m".to_vec().into(),
                }],
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    assert_eq!(receipt.events.len(), 3, "registered, metadata set, fee");
    assert_ne!(chain.state.state_root(), root);
    root = chain.state.state_root();
    let second = chain.register(key(2), "");
    assert_eq!(second, 2);
    assert_ne!(chain.state.state_root(), root);
    let a = chain.state.agents().agent(1).unwrap();
    assert_eq!(a.owner, key(1).address());
    assert_eq!(a.wallet, Some(key(1).address()));
    assert_eq!(a.metadata["model"].as_ref(), b"smollm2-135m");
    assert_eq!(chain.state.agents().count(), 2);
}

#[test]
fn owners_approved_addresses_and_operators_act_and_a_transfer_resets_the_wallet() {
    let mut chain = Chain::new();
    let id = chain.register(key(1), "u0");
    let owner = key(1).address();
    assert_eq!(
        chain.refused(key(2), set_uri(id, "x")),
        "agent_not_authorized"
    );
    chain
        .run(key(1), |from, nonce| {
            TxKind::ApproveAgent(ApproveAgent {
                from,
                approved: key(2).address(),
                agentId: U256::from(id),
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    chain.run(key(2), set_uri(id, "by approved")).unwrap();
    chain
        .run(key(1), |from, nonce| {
            TxKind::SetAgentOperator(SetAgentOperator {
                from,
                operator: key(3).address(),
                approved: true,
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    chain.run(key(3), set_uri(id, "by operator")).unwrap();
    assert_eq!(chain.state.agents().agent(id).unwrap().uri, "by operator");

    // A wallet signed for by the new wallet's key.
    let deadline = chain.now_s() + 120;
    chain
        .run(key(1), wallet_tx(id, owner, key(4), deadline))
        .unwrap();
    assert_eq!(
        chain.state.agents().agent(id).unwrap().wallet,
        Some(key(4).address())
    );

    // The transfer clears wallet and approval; the old owner's operator no longer acts.
    chain
        .run(key(1), |from, nonce| {
            TxKind::TransferAgent(TransferAgent {
                from,
                to: key(5).address(),
                agentId: U256::from(id),
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    let a = chain.state.agents().agent(id).unwrap().clone();
    assert_eq!(
        (a.owner, a.wallet, a.approved),
        (key(5).address(), None, None)
    );
    for who in [1, 2, 3] {
        assert_eq!(
            chain.refused(key(who), set_uri(id, "x")),
            "agent_not_authorized",
            "key {who}"
        );
    }
    chain.run(key(5), set_uri(id, "new owner")).unwrap();
}

#[test]
fn bad_inputs_are_refused_with_their_own_code_and_change_nothing() {
    let mut chain = Chain::new();
    let id = chain.register(key(1), "u");
    let owner = key(1).address();
    chain
        .run(key(1), |from, nonce| {
            TxKind::SetAgentOperator(SetAgentOperator {
                from,
                operator: key(6).address(),
                approved: true,
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    chain.pay(key(2), owner, 1_000_000, 0x01);
    chain.pay(key(2), key(5).address(), 1_000_000, 0x02);
    chain
        .run(
            key(2),
            feedback(id, 90, 0, "starred", B256::repeat_byte(0x01)),
        )
        .unwrap();
    let now = chain.now_s();
    let long = "x".repeat(MAX_URI_BYTES + 1);
    type Make = Box<dyn FnOnce(Address, u64) -> TxKind>;
    let cases: Vec<(&str, usize, Make)> = vec![
        ("agent_unknown", 1, Box::new(set_uri(99, "x"))),
        ("agent_not_authorized", 2, Box::new(set_uri(id, "x"))),
        ("agent_field_too_long", 1, Box::new(set_uri(id, &long))),
        (
            "agent_metadata_reserved",
            1,
            Box::new(move |from, nonce| {
                TxKind::SetAgentMetadata(SetAgentMetadata {
                    from,
                    agentId: U256::from(id),
                    metadataKey: "agentWallet".into(),
                    metadataValue: vec![1].into(),
                    nonce,
                    fee: fee(),
                })
            }),
        ),
        (
            "agent_duplicate_metadata",
            3,
            Box::new(|from, nonce| {
                let entry = || MetadataEntry {
                    metadataKey: "k".into(),
                    metadataValue: vec![1].into(),
                };
                TxKind::RegisterAgent(RegisterAgent {
                    from,
                    agentURI: String::new(),
                    metadata: vec![entry(), entry()],
                    nonce,
                    fee: fee(),
                })
            }),
        ),
        (
            "agent_wallet_deadline_passed",
            1,
            Box::new(wallet_tx(id, owner, key(4), now - 1)),
        ),
        (
            "agent_wallet_deadline_too_far",
            1,
            Box::new(wallet_tx(
                id,
                owner,
                key(4),
                now + 1 + MAX_WALLET_DEADLINE_S + 1,
            )),
        ),
        // Signed for another owner: recovers to someone else.
        (
            "agent_wallet_wrong_signer",
            1,
            Box::new(wallet_tx(id, key(3).address(), key(4), now + 60)),
        ),
        (
            "agent_transfer_to_zero",
            1,
            Box::new(move |from, nonce| {
                TxKind::TransferAgent(TransferAgent {
                    from,
                    to: Address::ZERO,
                    agentId: U256::from(id),
                    nonce,
                    fee: fee(),
                })
            }),
        ),
        (
            "feedback_self",
            1,
            Box::new(feedback(id, 100, 0, "", B256::ZERO)),
        ),
        (
            "feedback_self",
            6,
            Box::new(feedback(id, 100, 0, "", B256::ZERO)),
        ),
        (
            "agent_unknown",
            3,
            Box::new(feedback(7, 1, 0, "", B256::ZERO)),
        ),
        (
            "feedback_decimals_too_large",
            3,
            Box::new(feedback(id, 1, 19, "", B256::ZERO)),
        ),
        (
            "feedback_value_out_of_range",
            3,
            Box::new(feedback(id, 10i128.pow(18) + 1, 0, "", B256::ZERO)),
        ),
        (
            "agent_field_control_character",
            3,
            Box::new(feedback(id, 1, 0, "a\nb", B256::ZERO)),
        ),
        // A payment that was never made, one to someone else, one already cited.
        (
            "feedback_payment_unknown",
            3,
            Box::new(feedback(id, 1, 0, "", B256::repeat_byte(0x01))),
        ),
        (
            "feedback_payment_wrong_payee",
            2,
            Box::new(feedback(id, 1, 0, "", B256::repeat_byte(0x02))),
        ),
        (
            "feedback_payment_already_cited",
            2,
            Box::new(feedback(id, 1, 0, "", B256::repeat_byte(0x01))),
        ),
        (
            "feedback_unknown",
            3,
            Box::new(move |from, nonce| {
                TxKind::RevokeFeedback(RevokeFeedback {
                    from,
                    agentId: U256::from(id),
                    feedbackIndex: 1,
                    nonce,
                    fee: fee(),
                })
            }),
        ),
        (
            "feedback_unknown",
            3,
            Box::new(move |from, nonce| {
                TxKind::AppendResponse(AppendResponse {
                    from,
                    agentId: U256::from(id),
                    clientAddress: key(2).address(),
                    feedbackIndex: 0,
                    responseURI: String::new(),
                    responseHash: B256::ZERO,
                    nonce,
                    fee: fee(),
                })
            }),
        ),
    ];
    for (code, who, make) in cases {
        assert_eq!(chain.refused(key(who), make), code);
    }
}

#[test]
fn feedback_is_numbered_revoked_once_answered_and_paid_feedback_is_weighted() {
    let mut chain = Chain::new();
    let id = chain.register(key(1), "u");
    let owner = key(1).address();
    chain.pay(key(2), owner, 3_000_000, 0x0a);
    chain.pay(key(3), owner, 1_000_000, 0x0b);
    // Client 2 paid 3 mUSD and says 90; client 3 paid 1 mUSD and says 50; client 4 paid nothing
    // and says 0.
    let r = chain
        .run(
            key(2),
            feedback(id, 9000, 2, "starred", B256::repeat_byte(0x0a)),
        )
        .unwrap();
    assert!(matches!(
        &r.events[0],
        Event::Agent(AgentEvent::FeedbackGiven {
            index: 1,
            paid: Some(3_000_000),
            ..
        })
    ));
    chain
        .run(
            key(3),
            feedback(id, 50, 0, "starred", B256::repeat_byte(0x0b)),
        )
        .unwrap();
    chain
        .run(key(4), feedback(id, 0, 0, "starred", B256::ZERO))
        .unwrap();
    let second = chain
        .run(key(4), feedback(id, 10, 0, "uptime", B256::ZERO))
        .unwrap();
    assert!(matches!(
        &second.events[0],
        Event::Agent(AgentEvent::FeedbackGiven {
            index: 2,
            paid: None,
            ..
        })
    ));
    let rep = chain.state.agents().reputation(id).unwrap().clone();
    let all = rep.totals(&[], "starred", "");
    assert_eq!(summary_mean(&all, false).0, 3);
    assert_eq!(
        fixed_to_decimal(summary_mean(&all, false).1, 18),
        "46.666666666666666666"
    );
    // Verified only: (90·3 + 50·1) / 4 = 80.
    assert_eq!(fixed_to_decimal(summary_mean(&all, true).1, 18), "80");
    assert_eq!(
        summary_mean(&rep.totals(&[key(4).address()], "", ""), false).1,
        I256::try_from(5).unwrap() * I256::try_from(10u128.pow(18)).unwrap()
    );

    // The agent answers; the author revokes (once).
    chain
        .run(key(1), |from, nonce| {
            TxKind::AppendResponse(AppendResponse {
                from,
                agentId: U256::from(id),
                clientAddress: key(4).address(),
                feedbackIndex: 1,
                responseURI: "https://a.example/r/1".into(),
                responseHash: B256::repeat_byte(0x11),
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    let revoke = |from, nonce| {
        TxKind::RevokeFeedback(RevokeFeedback {
            from,
            agentId: U256::from(id),
            feedbackIndex: 1,
            nonce,
            fee: fee(),
        })
    };
    chain.run(key(4), revoke).unwrap();
    assert_eq!(chain.refused(key(4), revoke), "feedback_already_revoked");
    let rep = chain.state.agents().reputation(id).unwrap();
    assert_eq!(rep.client_feedback(&key(4).address())[0].responses.len(), 1);
    assert!(rep.client_feedback(&key(4).address())[0].revoked);
    assert_eq!(summary_mean(&rep.totals(&[], "starred", ""), false).0, 2);
    assert_eq!(
        rep.clients(),
        &[key(2).address(), key(3).address(), key(4).address()]
    );
}

#[test]
fn agents_survive_a_snapshot_with_the_same_root() {
    let mut chain = Chain::new();
    let id = chain.register(key(1), "u");
    chain.pay(key(2), key(1).address(), 5, 0x01);
    chain
        .run(key(2), feedback(id, -25, 1, "t", B256::repeat_byte(0x01)))
        .unwrap();
    let mut back = State::from_snapshot_bytes(&chain.state.to_snapshot_bytes()).unwrap();
    assert_eq!(back.state_root(), chain.state.state_root());
    assert_eq!(back, chain.state);
}

#[test]
fn fixed_point_prints_as_decimals() {
    let v = |x: i128| I256::try_from(x).unwrap();
    assert_eq!(fixed_to_decimal(v(0), 18), "0");
    assert_eq!(fixed_to_decimal(v(-1_500_000_000_000_000_000), 18), "-1.5");
    assert_eq!(fixed_to_decimal(v(1), 18), "0.000000000000000001");
    assert_eq!(normalize(10i128.pow(18), 0), Some(v(10i128.pow(36))));
    assert_eq!(normalize(10i128.pow(18) + 1, 0), None);
    assert_eq!(normalize(-(10i128.pow(20)), 2), Some(-v(10i128.pow(36))));
    assert_eq!(normalize(i128::MAX, 18), None);
}

/// One feedback action of a random history.
#[derive(Debug, Clone)]
enum Step {
    Give {
        client: usize,
        value: i128,
        decimals: u8,
        tag1: u8,
        tag2: u8,
    },
    Revoke {
        client: usize,
        index: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (2usize..6, -1_000_000i128..1_000_000, 0u8..4, 0u8..3, 0u8..3).prop_map(
            |(client, value, decimals, tag1, tag2)| Step::Give { client, value, decimals, tag1, tag2 }
        ),
        1 => (2usize..6, 1u64..4).prop_map(|(client, index)| Step::Revoke { client, index }),
    ]
}

fn tag(i: u8) -> String {
    ["", "starred", "uptime"][i as usize].to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The running totals equal a scan of the stored feedback, for every client set and tag
    /// filter; a refused step changes nothing (checked by `refused`).
    #[test]
    fn running_totals_equal_a_scan(steps in prop::collection::vec(step(), 1..24)) {
        let mut chain = Chain::new();
        let id = chain.register(key(1), "u");
        for s in steps {
            match s {
                Step::Give { client, value, decimals, tag1, tag2 } => {
                    let (t1, t2) = (tag(tag1), tag(tag2));
                    chain.run(key(client), move |from, nonce| {
                        TxKind::GiveFeedback(GiveFeedback {
                            from, agentId: U256::from(id), value, valueDecimals: decimals,
                            tag1: t1, tag2: t2, endpoint: String::new(),
                            feedbackURI: String::new(), feedbackHash: B256::ZERO,
                            paymentNonce: B256::ZERO, nonce, fee: fee(),
                        })
                    }).unwrap();
                }
                Step::Revoke { client, index } => {
                    let exists = chain.state.agents().reputation(id).is_some_and(|r| {
                        r.client_feedback(&key(client).address())
                            .get(index as usize - 1)
                            .is_some_and(|f| !f.revoked)
                    });
                    let revoke = move |from, nonce| TxKind::RevokeFeedback(RevokeFeedback {
                        from, agentId: U256::from(id), feedbackIndex: index, nonce, fee: fee(),
                    });
                    if exists {
                        chain.run(key(client), revoke).unwrap();
                    } else {
                        let code = chain.refused(key(client), revoke);
                        prop_assert!(code == "feedback_unknown" || code == "feedback_already_revoked");
                    }
                }
            }
        }
        let Some(rep) = chain.state.agents().reputation(id) else { return Ok(()); };
        let client_sets: Vec<Vec<Address>> = vec![
            vec![],
            vec![key(2).address()],
            vec![key(3).address(), key(5).address(), key(3).address()],
        ];
        for clients in &client_sets {
            for t1 in 0..3u8 {
                for t2 in 0..3u8 {
                    let (f1, f2) = (tag(t1), tag(t2));
                    let mut count = 0u64;
                    let mut sum = I256::ZERO;
                    for client in rep.clients() {
                        if !clients.is_empty() && !clients.contains(client) {
                            continue;
                        }
                        for f in rep.client_feedback(client) {
                            if f.revoked || (!f1.is_empty() && f.tag1 != f1) || (!f2.is_empty() && f.tag2 != f2) {
                                continue;
                            }
                            count += 1;
                            sum += normalize(f.value, f.value_decimals).unwrap();
                        }
                    }
                    let totals = rep.totals(clients, &f1, &f2);
                    prop_assert_eq!((totals.count, totals.sum), (count, sum), "clients {:?} tags {:?}/{:?}", clients, f1, f2);
                }
            }
        }
    }
}

fn validation_request(
    agent: u64,
    validator: Address,
    hash: u8,
) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::ValidationRequest(mycel_types::tx::ValidationRequest {
            from,
            validator,
            agentId: U256::from(agent),
            requestURI: "https://agent.example/answers/1.json".into(),
            requestHash: B256::repeat_byte(hash),
            nonce,
            fee: fee(),
        })
    }
}

fn validation_response(hash: u8, response: u8) -> impl FnOnce(Address, u64) -> TxKind {
    move |from, nonce| {
        TxKind::ValidationResponse(mycel_types::tx::ValidationResponse {
            from,
            requestHash: B256::repeat_byte(hash),
            response,
            responseURI: "https://validator.example/reports/1".into(),
            responseHash: B256::repeat_byte(0x77),
            tag: "inference-rerun".into(),
            nonce,
            fee: fee(),
        })
    }
}

#[test]
fn validations_are_asked_by_the_agent_and_answered_only_by_the_named_validator() {
    let mut chain = Chain::new();
    let id = chain.register(key(1), "u");
    let validator = key(4).address();
    assert_eq!(
        chain.refused(key(2), validation_request(id, validator, 0x01)),
        "agent_not_authorized"
    );
    assert_eq!(
        chain.refused(key(1), validation_request(id, Address::ZERO, 0x01)),
        "validation_no_validator"
    );
    chain
        .run(key(1), validation_request(id, validator, 0x01))
        .unwrap();
    assert_eq!(
        chain.refused(key(1), validation_request(id, validator, 0x01)),
        "validation_exists"
    );
    assert_eq!(
        chain.refused(key(3), validation_response(0x01, 100)),
        "validation_not_validator"
    );
    assert_eq!(
        chain.refused(key(4), validation_response(0x01, 101)),
        "validation_response_out_of_range"
    );
    assert_eq!(
        chain.refused(key(4), validation_response(0x02, 100)),
        "validation_unknown"
    );
    chain.run(key(4), validation_response(0x01, 0)).unwrap();
    chain.run(key(4), validation_response(0x01, 100)).unwrap();
    let v = chain
        .state
        .agents()
        .validation(&B256::repeat_byte(0x01))
        .unwrap();
    assert_eq!(
        (v.response, v.responses, v.tag.as_str()),
        (Some(100), 2, "inference-rerun")
    );
    assert_eq!(
        chain.state.agents().agent_validations(id),
        &[B256::repeat_byte(0x01)]
    );
    assert_eq!(chain.state.agents().validator_requests(&validator).len(), 1);
}

#[test]
fn a_completed_job_backs_one_review_by_its_client() {
    use mycel_types::tx::{CompleteJob, CreateJob, FundJob, SetJobBudget, SubmitJob};
    let mut chain = Chain::new();
    let id = chain.register(key(1), "u");
    let (client, provider, evaluator) = (key(2), key(1), key(3));
    let expires = chain.time_ms / 1000 + 3600;
    chain
        .run(client, |from, nonce| {
            TxKind::CreateJob(CreateJob {
                from,
                provider: provider.address(),
                evaluator: evaluator.address(),
                expiredAt: expires,
                disputeWindow: 0,
                description: String::new(),
                platform: Address::ZERO,
                platformFeeBps: 0,
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    let job = 1u64;
    chain
        .run(client, |from, nonce| {
            TxKind::SetJobBudget(SetJobBudget {
                from,
                jobId: job,
                amount: U256::from(900u64),
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    // Not completed yet: nothing to cite.
    assert_eq!(
        chain.refused(client, feedback(id, 80, 0, "", cite_job(job))),
        "feedback_payment_unknown"
    );
    chain
        .run(client, |from, nonce| {
            TxKind::FundJob(FundJob {
                from,
                jobId: job,
                expectedBudget: U256::from(900u64),
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    chain
        .run(provider, |from, nonce| {
            TxKind::SubmitJob(SubmitJob {
                from,
                jobId: job,
                deliverable: B256::repeat_byte(1),
                deliverableURI: String::new(),
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    chain
        .run(evaluator, |from, nonce| {
            TxKind::CompleteJob(CompleteJob {
                from,
                jobId: job,
                reason: B256::ZERO,
                nonce,
                fee: fee(),
            })
        })
        .unwrap();
    // Only its client may cite it, and only once.
    assert_eq!(
        chain.refused(key(4), feedback(id, 80, 0, "", cite_job(job))),
        "feedback_payment_unknown"
    );
    let r = chain
        .run(client, feedback(id, 80, 0, "", cite_job(job)))
        .unwrap();
    assert!(matches!(
        &r.events[0],
        Event::Agent(AgentEvent::FeedbackGiven {
            paid: Some(900),
            ..
        })
    ));
    assert_eq!(
        chain.refused(client, feedback(id, 80, 0, "", cite_job(job))),
        "feedback_payment_already_cited"
    );
    assert_eq!(job_citation(&B256::repeat_byte(0x01)), None);
}
