//! Agents, jobs and allowances in the state machine: what each new kind costs per transaction
//! next to a transfer, how many state bytes an agent, a feedback and a job take, and how long a
//! reputation summary takes over an agent with 100,000 feedback entries.
//!
//! `cargo bench -p mycel-state --bench agents` (prints a table; `FEEDBACK=N` changes the 100,000).
//!
//! Per-kind cost: blocks of 500 transactions of one kind, signed beforehand, applied with
//! `apply_block` (stateless checks included: signature recovery, as a node does once per
//! transaction), median of 5 blocks per kind, per transaction. State bytes: growth of the state
//! snapshot per item. Summaries: median of 1,000 calls of each query.

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_state::agents::summary_mean;
use mycel_state::{BlockContext, State, VerifiedTx};
use mycel_types::tx::{
    CreateJob, GiveFeedback, GrantAllowance, MetadataEntry, RegisterAgent, SetAgentURI,
};
use mycel_types::{
    genesis::DEFAULT_MIN_FEE, keys::dev_signer, Genesis, SignedTx, Token, Transfer, TxKind,
};
use std::time::Instant;

const BLOCK: usize = 500;
const CLIENTS: usize = 1_000;

struct Chain {
    state: State,
    chain_id: u64,
    time_ms: u64,
}

impl Chain {
    fn block(&mut self, txs: Vec<SignedTx>) -> f64 {
        self.time_ms += 1000;
        let height = self.state.height() + 1;
        let started = Instant::now();
        let verified: Vec<VerifiedTx> = txs
            .into_iter()
            .map(|t| self.state.verify_stateless(t).expect("valid"))
            .collect();
        let outcome = self
            .state
            .apply_block(
                BlockContext {
                    height,
                    timestamp_ms: self.time_ms,
                },
                &verified,
            )
            .expect("block");
        let took = started.elapsed().as_secs_f64();
        let failed = outcome.results.iter().filter(|r| r.is_err()).count();
        assert_eq!(
            failed,
            0,
            "{:?}",
            outcome.results.iter().find(|r| r.is_err())
        );
        took
    }

    fn sign(&self, who: &PrivateKeySigner, kind: TxKind) -> SignedTx {
        SignedTx::sign(kind, self.chain_id, who).expect("sign")
    }
}

fn fee() -> U256 {
    U256::from(DEFAULT_MIN_FEE)
}

fn client(i: usize) -> PrivateKeySigner {
    let mut bytes = [0u8; 32];
    bytes[0] = 0x42;
    bytes[24..].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    PrivateKeySigner::from_bytes(&B256::from(bytes)).expect("key")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn main() {
    let feedback_total: usize = std::env::var("FEEDBACK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let genesis = Genesis::devnet(vec!["ab".repeat(32)], 0).expect("genesis");
    let mut chain = Chain {
        state: State::from_genesis(&genesis),
        chain_id: genesis.chain_id,
        time_ms: 0,
    };
    let funder = dev_signer(0).expect("dev key");
    let clients: Vec<PrivateKeySigner> = (0..CLIENTS).map(client).collect();
    let mut nonces = vec![0u64; CLIENTS];
    let mut funder_nonce = 0;

    // Fund the clients (MYC for fees, mUSD to spend): blocks of transfers, timed as the baseline.
    let mut transfer_times = Vec::new();
    for (round, chunk) in clients.chunks(BLOCK).enumerate() {
        let mut txs = Vec::new();
        for (token, amount) in [
            (Token::Myc, 100_000_000_000u128),
            (Token::Musd, 100_000_000),
        ] {
            for c in chunk {
                txs.push(chain.sign(
                    &funder,
                    TxKind::Transfer(Transfer {
                        from: funder.address(),
                        to: c.address(),
                        token: token.address(),
                        amount: U256::from(amount),
                        memo: Default::default(),
                        nonce: funder_nonce,
                        fee: fee(),
                    }),
                ));
                funder_nonce += 1;
            }
        }
        for half in txs.chunks(BLOCK) {
            let t = chain.block(half.to_vec());
            transfer_times.push(t / half.len() as f64);
        }
        let _ = round;
    }
    let transfer = median(transfer_times);

    let mut rows: Vec<(String, f64)> = vec![("Transfer".into(), transfer)];
    // State bytes per agent: the snapshot before and after 500 agents.
    let before = chain.state.to_snapshot_bytes().len();
    let t = measure(&mut chain, &clients, &mut nonces, &mut |i, nonce| {
        TxKind::RegisterAgent(RegisterAgent {
            from: client_address(i),
            agentURI: format!("https://agent-{i}.example/.well-known/agent-registration.json"),
            metadata: vec![MetadataEntry {
                metadataKey: "model".into(),
                metadataValue: b"smollm2-135m".to_vec().into(),
            }],
            nonce,
            fee: fee(),
        })
    });
    rows.push(("RegisterAgent (1 metadata entry)".into(), t));
    let agents = chain.state.agents().count() as usize;
    let per_agent = (chain.state.to_snapshot_bytes().len() - before) / agents;

    let t = measure(&mut chain, &clients, &mut nonces, &mut |i, nonce| {
        TxKind::SetAgentURI(SetAgentURI {
            from: client_address(i),
            agentId: U256::from(i as u64 + 1),
            newURI: format!("https://agent-{i}.example/v2/agent.json"),
            nonce,
            fee: fee(),
        })
    });
    rows.push(("SetAgentURI".into(), t));

    // Feedback on agent 1 (owned by client 0) from the other clients, until `feedback_total`.
    let before = chain.state.to_snapshot_bytes().len();
    let tags = ["starred", "uptime", "latency"];
    let mut given = 0usize;
    let mut feedback_times = Vec::new();
    while given < feedback_total {
        let txs: Vec<SignedTx> = (0..BLOCK.min(feedback_total - given))
            .map(|j| {
                let i = 1 + (given + j) % (CLIENTS - 1);
                let kind = TxKind::GiveFeedback(GiveFeedback {
                    from: clients[i].address(),
                    agentId: U256::from(1u64),
                    value: ((given + j) % 101) as i128,
                    valueDecimals: 0,
                    tag1: tags[(given + j) % 3].into(),
                    tag2: String::new(),
                    endpoint: "https://agent-0.example/v1/chat/completions".into(),
                    feedbackURI: String::new(),
                    feedbackHash: B256::ZERO,
                    paymentNonce: B256::ZERO,
                    nonce: nonces[i],
                    fee: fee(),
                });
                nonces[i] += 1;
                chain.sign(&clients[i], kind)
            })
            .collect();
        let n = txs.len();
        feedback_times.push(chain.block(txs) / n as f64);
        given += n;
        if given.is_multiple_of(20_000) {
            eprintln!("{given} feedback entries");
        }
    }
    rows.push(("GiveFeedback".into(), median(feedback_times)));
    let per_feedback = (chain.state.to_snapshot_bytes().len() - before) / feedback_total;

    let before = chain.state.to_snapshot_bytes().len();
    let now_s = chain.time_ms / 1000;
    let t = measure(&mut chain, &clients, &mut nonces, &mut |i, nonce| {
        TxKind::CreateJob(CreateJob {
            from: client_address(i),
            provider: client_address((i + 1) % CLIENTS),
            evaluator: client_address((i + 2) % CLIENTS),
            expiredAt: now_s + 86_400,
            disputeWindow: 0,
            description: "summarise ten papers".into(),
            platform: Address::ZERO,
            platformFeeBps: 0,
            nonce,
            fee: fee(),
        })
    });
    rows.push(("CreateJob".into(), t));
    let jobs = chain.state.jobs().count() as usize;
    let per_job = (chain.state.to_snapshot_bytes().len() - before) / jobs;

    let t = measure(&mut chain, &clients, &mut nonces, &mut |i, nonce| {
        TxKind::GrantAllowance(GrantAllowance {
            from: client_address(i),
            agent: client_address(CLIENTS - 1 - i),
            tokens: vec![Token::Musd.address()],
            periodBudgets: vec![U256::from(1_000_000u64)],
            maxPerTx: vec![U256::from(1_000u64)],
            periodBlocks: 86_400,
            recipients: vec![],
            kinds: vec![],
            expiresAt: 0,
            nonce,
            fee: fee(),
        })
    });
    rows.push(("GrantAllowance".into(), t));
    // Clients 999..500 are now delegated keys of clients 0..499: their transfers spend the
    // owners' allowances.
    let mut times = Vec::new();
    for _ in 0..5 {
        let txs: Vec<SignedTx> = (0..BLOCK)
            .map(|i| {
                let agent = CLIENTS - 1 - i;
                let kind = TxKind::Transfer(Transfer {
                    from: clients[agent].address(),
                    to: client_address(0),
                    token: Token::Musd.address(),
                    amount: U256::from(10u64),
                    memo: Default::default(),
                    nonce: nonces[agent],
                    fee: fee(),
                });
                nonces[agent] += 1;
                chain.sign(&clients[agent], kind)
            })
            .collect();
        times.push(chain.block(txs) / BLOCK as f64);
    }
    rows.push((
        "Transfer by a delegated key (allowance)".into(),
        median(times),
    ));

    // Summaries over agent 1's feedback.
    let rep = chain
        .state
        .agents()
        .reputation(1)
        .expect("feedback")
        .clone();
    let named: Vec<Address> = clients[1..101].iter().map(|c| c.address()).collect();
    let time = |f: &dyn Fn() -> u64| {
        let mut v = Vec::new();
        for _ in 0..1_000 {
            let t = Instant::now();
            std::hint::black_box(f());
            v.push(t.elapsed().as_secs_f64());
        }
        median(v)
    };
    let all = time(&|| summary_mean(&rep.totals(&[], "", ""), false).0);
    let tagged = time(&|| summary_mean(&rep.totals(&[], "starred", ""), false).0);
    let hundred = time(&|| summary_mean(&rep.totals(&named, "starred", ""), false).0);
    let verified = time(&|| summary_mean(&rep.totals(&named, "", ""), true).0);

    println!("\n| kind | µs per transaction (block of {BLOCK}) | × transfer |");
    println!("|---|---|---|");
    for (name, t) in &rows {
        println!("| {name} | {:.1} | {:.2} |", t * 1e6, t / transfer);
    }
    println!("\n| state bytes (snapshot growth) | bytes |");
    println!("|---|---|");
    println!("| per agent (URI ~60 B, one metadata entry) | {per_agent} |");
    println!("| per feedback (tag, endpoint ~45 B, no URI) | {per_feedback} |");
    println!("| per job (description 20 B) | {per_job} |");
    println!(
        "\n| summary over {} feedback entries of one agent | µs (median of 1,000) |",
        rep.feedback_count()
    );
    println!("|---|---|");
    println!("| all clients, any tag | {:.2} |", all * 1e6);
    println!("| all clients, tag1 = starred | {:.2} |", tagged * 1e6);
    println!(
        "| 100 named clients, tag1 = starred | {:.2} |",
        hundred * 1e6
    );
    println!(
        "| 100 named clients, verified only (weighted) | {:.2} |",
        verified * 1e6
    );
}

/// The median cost per transaction of 5 blocks of `make(i, nonce)` signed by clients 0..BLOCK.
fn measure(
    chain: &mut Chain,
    clients: &[PrivateKeySigner],
    nonces: &mut [u64],
    make: &mut dyn FnMut(usize, u64) -> TxKind,
) -> f64 {
    let mut times = Vec::new();
    for _ in 0..5 {
        let txs: Vec<SignedTx> = (0..BLOCK)
            .map(|i| {
                let kind = make(i, nonces[i]);
                nonces[i] += 1;
                chain.sign(&clients[i], kind)
            })
            .collect();
        times.push(chain.block(txs) / BLOCK as f64);
    }
    median(times)
}

fn client_address(i: usize) -> Address {
    client(i).address()
}
