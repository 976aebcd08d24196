//! Byzantine simulations: one of four validators lies while the network drops, delays and
//! partitions messages and the whole network crashes and restarts. Every run checks safety (no two
//! honest validators finalize different blocks, nothing finalized is lost across the crash) and
//! liveness (the honest validators keep finalizing and every transfer sent to them lands).
//!
//! The liar runs the real node. Its faults sit where a malicious operator would put them:
//! - **equivocation**: its vote sender signs, for every notarize and finalize vote, a second vote
//!   for a different block in the same view, and sends one, the other or both to each peer;
//! - **withheld votes**: its vote sender drops everything (it still proposes blocks when it leads);
//! - **invalid proposals**: its proposer commits to a wrong state root, includes a well-signed
//!   transfer that cannot pay, or includes bytes that are not a transaction.
//!
//! A seed fixes everything (the liar, its fault, link quality, the partition, the crash instant),
//! and the deterministic runtime makes a seed replay exactly. `MYCEL_SIM_SEEDS=FROM..TO` picks the
//! seeds (default `0..1000`, spread over [`SHARDS`] tests that nextest runs in parallel);
//! `scripts/sim-byzantine` runs more.

use super::tests::{
    assert_same_chain, engine_config, genesis_for, good, keys, link, lossy, network, register,
    submit_transfers, unlink, wait_finalized, PublicKey, Registration,
};
use super::{
    application::{ProposalFault, Proposer},
    launch, Channels, Scheme,
};
use crate::{Node, TxStatus};
use commonware_actor::{Feedback, Unreliable};
use commonware_codec::{DecodeExt, Encode};
use commonware_consensus::simplex::types::{Finalize, Notarize, Proposal, Vote};
use commonware_cryptography::{
    ed25519,
    sha256::{Digest, Sha256},
    Hasher, Signer,
};
use commonware_p2p::{simulated, CheckedSender, LimitedSender, Recipients};
use commonware_runtime::{
    deterministic::{self, Runner},
    Clock, IoBufs, Runner as _, Supervisor as _,
};
use mycel_types::keys::dev_signer;
use std::{
    ops::Range,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

/// Test functions the default seed range is spread over.
const SHARDS: u64 = 8;

/// What the lying validator does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Equivocate,
    WithholdVotes,
    Propose(ProposalFault),
}

const FAULTS: [Fault; 5] = [
    Fault::Equivocate,
    Fault::WithholdVotes,
    Fault::Propose(ProposalFault::WrongStateRoot),
    Fault::Propose(ProposalFault::UnpayableTransfer),
    Fault::Propose(ProposalFault::GarbageTransaction),
];

/// Everything a seed decides.
#[derive(Clone, Copy, Debug)]
struct Plan {
    #[allow(dead_code)] // read through Debug, in failure messages
    seed: u64,
    liar: usize,
    fault: Fault,
    lossy_links: bool,
    /// The honest validator cut off from everyone for a while, and when (ms after start).
    isolated: usize,
    partition_at_ms: u64,
    partition_ms: u64,
    /// How long after reaching height 4 the whole network crashes (ms).
    crash_after_ms: u64,
}

impl Plan {
    fn of(seed: u64) -> Self {
        // splitmix64: independent-looking choices from consecutive seeds.
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        // Every liar meets every fault within each 20 consecutive seeds.
        let liar = (seed % 4) as usize;
        let fault = FAULTS[((seed / 4) % FAULTS.len() as u64) as usize];
        let isolated = (liar + 1 + (next() % 3) as usize) % 4;
        Plan {
            seed,
            liar,
            fault,
            lossy_links: next() % 2 == 0,
            isolated,
            partition_at_ms: 500 + next() % 3_000,
            partition_ms: 1_000 + next() % 4_000,
            crash_after_ms: next() % 2_000,
        }
    }

    fn honest(&self) -> impl Iterator<Item = usize> + '_ {
        (0..4).filter(move |i| *i != self.liar)
    }
}

/// How a validator's outgoing votes are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Votes {
    Honest,
    Withhold,
    Equivocate,
}

/// A sender that lies about votes as told; other channels pass through it unchanged.
#[derive(Clone)]
struct Liar<S> {
    inner: S,
    votes: Votes,
    scheme: Scheme,
    peers: Vec<PublicKey>,
    /// Conflicting votes signed so far.
    conflicting: Arc<AtomicU64>,
}

struct CheckedLiar<'a, S> {
    liar: &'a mut Liar<S>,
    recipients: Vec<PublicKey>,
}

impl<S> LimitedSender for Liar<S>
where
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
{
    type PublicKey = PublicKey;
    type Checked<'a>
        = CheckedLiar<'a, S>
    where
        Self: 'a;

    fn check(
        &mut self,
        recipients: Recipients<PublicKey>,
    ) -> Result<Self::Checked<'_>, SystemTime> {
        let recipients = match recipients {
            Recipients::All => self.peers.clone(),
            Recipients::Some(peers) => peers,
            Recipients::One(peer) => vec![peer],
        };
        Ok(CheckedLiar {
            liar: self,
            recipients,
        })
    }
}

impl<S> Liar<S>
where
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
{
    fn forward(&mut self, to: Vec<PublicKey>, message: IoBufs, priority: bool) {
        if !to.is_empty() {
            self.inner.send(Recipients::Some(to), message, priority);
        }
    }
}

/// A different block in the same view: what an equivocator signs a second vote for.
fn conflicting(proposal: &Proposal<Digest>) -> Proposal<Digest> {
    let payload = Sha256::hash(&[proposal.payload.as_ref(), b"equivocation"]);
    Proposal::new(proposal.round, proposal.parent, payload)
}

impl<S> CheckedSender for CheckedLiar<'_, S>
where
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
{
    type PublicKey = PublicKey;

    fn recipients(&self) -> Vec<PublicKey> {
        self.recipients.clone()
    }

    fn send(self, message: impl Into<IoBufs> + Send, priority: bool) -> Unreliable<Feedback> {
        let message: IoBufs = message.into();
        let CheckedLiar { liar, recipients } = self;
        match liar.votes {
            Votes::Honest => liar.forward(recipients, message, priority),
            Votes::Withhold => {}
            Votes::Equivocate => {
                let bytes = bytes::Bytes::copy_from_slice(message.clone().coalesce().as_ref());
                let (other, view) = match Vote::<Scheme, Digest>::decode(bytes) {
                    Ok(Vote::Notarize(vote)) => (
                        Notarize::sign(&liar.scheme, conflicting(&vote.proposal))
                            .map(|v| Vote::<Scheme, Digest>::Notarize(v).encode()),
                        vote.proposal.round.view().get(),
                    ),
                    Ok(Vote::Finalize(vote)) => (
                        Finalize::sign(&liar.scheme, conflicting(&vote.proposal))
                            .map(|v| Vote::<Scheme, Digest>::Finalize(v).encode()),
                        vote.proposal.round.view().get(),
                    ),
                    _ => (None, 0),
                };
                let Some(other) = other else {
                    liar.forward(recipients, message, priority);
                    return Unreliable::Outcome(Feedback::Ok);
                };
                liar.conflicting.fetch_add(1, Ordering::Relaxed);
                // Per view and peer: the real vote, the conflicting one, or both.
                let (mut real, mut fake) = (Vec::new(), Vec::new());
                for (i, peer) in recipients.into_iter().enumerate() {
                    match (view + i as u64) % 3 {
                        0 => real.push(peer),
                        1 => fake.push(peer),
                        _ => {
                            real.push(peer.clone());
                            fake.push(peer);
                        }
                    }
                }
                liar.forward(real, message, priority);
                liar.forward(fake, IoBufs::from(other), priority);
            }
        }
        Unreliable::Outcome(Feedback::Ok)
    }
}

type LiarRegistration = Channels<
    Liar<simulated::Sender<PublicKey, deterministic::Context>>,
    simulated::Receiver<PublicKey>,
>;

/// Wraps a validator's channels: only its vote channel lies.
fn wrap(
    registration: Registration,
    votes: Votes,
    scheme: &Scheme,
    peers: &[PublicKey],
    conflicting: &Arc<AtomicU64>,
) -> LiarRegistration {
    let wrap = |(sender, receiver), votes| {
        (
            Liar {
                inner: sender,
                votes,
                scheme: scheme.clone(),
                peers: peers.to_vec(),
                conflicting: conflicting.clone(),
            },
            receiver,
        )
    };
    Channels {
        votes: wrap(registration.votes, votes),
        certificates: wrap(registration.certificates, Votes::Honest),
        resolver: wrap(registration.resolver, Votes::Honest),
        broadcast: wrap(registration.broadcast, Votes::Honest),
        backfill: wrap(registration.backfill, Votes::Honest),
        txs: wrap(registration.txs, Votes::Honest),
    }
}

/// What the liar did over a run, to check each fault was exercised.
#[derive(Default)]
struct Counters {
    conflicting_votes: Arc<AtomicU64>,
    bad_proposals: Arc<AtomicU64>,
}

/// Starts the four validators (the liar with its fault) on a fresh simulated network.
async fn start_network(
    context: &deterministic::Context,
    plan: &Plan,
    keys: &[ed25519::PrivateKey],
    genesis: &mycel_types::Genesis,
    counters: &Counters,
) -> (
    simulated::Oracle<PublicKey, deterministic::Context>,
    Vec<PublicKey>,
    Vec<Node>,
) {
    let mut oracle = network(context, 4);
    let validators: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
    let mut registrations = register(&mut oracle, &validators).await;
    let links = if plan.lossy_links { lossy() } else { good() };
    link(&mut oracle, &validators, links, |_, _| true).await;
    let participants = commonware_utils::ordered::Set::from_iter_dedup(validators.iter().cloned());
    let namespace = super::namespace(genesis);
    let mut nodes = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let registration = registrations.remove(&validators[i]).expect("registered");
        let mut config = engine_config(key.clone(), genesis, i);
        let votes = match plan.fault {
            _ if i != plan.liar => Votes::Honest,
            Fault::Equivocate => Votes::Equivocate,
            Fault::WithholdVotes => Votes::Withhold,
            Fault::Propose(fault) => {
                config.proposer = Proposer::Byzantine(fault, counters.bad_proposals.clone());
                Votes::Honest
            }
        };
        let scheme = Scheme::signer(&namespace, participants.clone(), key.clone()).expect("signer");
        let peers: Vec<PublicKey> = validators
            .iter()
            .filter(|v| **v != validators[i])
            .cloned()
            .collect();
        let channels = wrap(
            registration,
            votes,
            &scheme,
            &peers,
            &counters.conflicting_votes,
        );
        let node = launch(
            context.child("validator").with_attribute("index", i),
            config,
            oracle.manager(),
            oracle.control(validators[i].clone()),
            channels,
        )
        .await
        .expect("node starts");
        nodes.push(node);
    }
    (oracle, validators, nodes)
}

fn height(node: &Node) -> u64 {
    node.status().latest_height
}

/// Waits until every node in `nodes` has finalized `height`, failing the run (with its seed) if
/// that takes longer than `within` of simulated time.
async fn finalize_within(
    context: &deterministic::Context,
    plan: &Plan,
    nodes: &[&Node],
    target: u64,
    within: Duration,
) {
    let deadline = context.current() + within;
    while nodes.iter().any(|n| height(n) < target) {
        assert!(
            context.current() < deadline,
            "{plan:?}: the honest validators stalled below height {target}: {:?}",
            nodes.iter().map(|n| height(n)).collect::<Vec<_>>()
        );
        context.sleep(Duration::from_millis(50)).await;
    }
}

/// Honest validators agree on every block up to the lowest honest tip, and no honest validator
/// blocked another (only the liar may be blocked, and only for equivocating).
async fn check_safety(
    plan: &Plan,
    oracle: &simulated::Oracle<PublicKey, deterministic::Context>,
    validators: &[PublicKey],
    honest: &[&Node],
) -> Vec<(PublicKey, PublicKey)> {
    let common = honest
        .iter()
        .map(|n| height(n))
        .min()
        .expect("honest nodes");
    assert_same_chain(honest, common).await;
    let blocked = oracle.blocked().await.expect("network up");
    for (by, whom) in &blocked {
        assert!(
            *whom == validators[plan.liar] && *by != validators[plan.liar],
            "{plan:?}: {by} blocked {whom}, an honest validator"
        );
    }
    blocked
}

/// One seed: run, crash the whole network mid-flight, restart it, run again. Returns the
/// runtime's audit digest (equal for equal seeds).
fn run_seed(seed: u64) -> String {
    // `MYCEL_SIM_LOG=debug` (an env filter) shows the nodes' logs when replaying a seed.
    if let Ok(filter) = std::env::var("MYCEL_SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let plan = Plan::of(seed);
    let keys = keys(4);
    let genesis = genesis_for(&keys);
    let counters = Arc::new(Counters::default());
    let recipient = dev_signer(9).expect("dev key").address();
    // Each dev account sends in one phase only, so nonces never collide across the crash.
    let (sender_before, sender_after) = (1 + (seed % 4) as u32, 5 + (seed % 4) as u32);

    let (floor, checkpoint) = {
        let (keys, genesis, counters) = (keys.clone(), genesis.clone(), counters.clone());
        Runner::from(
            deterministic::Config::default()
                .with_seed(seed)
                .with_timeout(Some(Duration::from_secs(900))),
        )
        .start_and_recover(|context| async move {
            let (mut oracle, validators, nodes) =
                start_network(&context, &plan, &keys, &genesis, &counters).await;
            let honest: Vec<&Node> = plan.honest().map(|i| &nodes[i]).collect();
            let hashes =
                submit_transfers(&honest, genesis.chain_id, sender_before, recipient, 0, 6);

            // Cut one honest validator off for a while: with the liar, two of four remain, too
            // few to finalize alone; the chain must not fork and must resume once healed.
            context
                .sleep(Duration::from_millis(plan.partition_at_ms))
                .await;
            let isolated = plan.isolated;
            unlink(&mut oracle, &validators, |i, j| {
                i == isolated || j == isolated
            })
            .await;
            context
                .sleep(Duration::from_millis(plan.partition_ms))
                .await;
            let links = if plan.lossy_links { lossy() } else { good() };
            link(&mut oracle, &validators, links, |i, j| {
                i == isolated || j == isolated
            })
            .await;

            wait_finalized(&context, &honest, &hashes).await;
            finalize_within(&context, &plan, &honest, 4, Duration::from_secs(120)).await;
            check_safety(&plan, &oracle, &validators, &honest).await;
            // Crash at an arbitrary instant, not at a quiet point.
            context
                .sleep(Duration::from_millis(plan.crash_after_ms))
                .await;
            nodes.iter().map(height).collect::<Vec<u64>>()
        })
    };

    Runner::from(checkpoint).start(|context| async move {
        let (oracle, validators, nodes) =
            start_network(&context, &plan, &keys, &genesis, &counters).await;
        let honest: Vec<&Node> = plan.honest().map(|i| &nodes[i]).collect();
        for i in plan.honest() {
            assert!(
                height(&nodes[i]) >= floor[i],
                "{plan:?}: validator {i} lost finalized blocks in the crash: {} < {}",
                height(&nodes[i]),
                floor[i]
            );
        }
        let hashes = submit_transfers(&honest, genesis.chain_id, sender_after, recipient, 0, 4);
        let resumed = honest.iter().map(|n| height(n)).max().expect("honest");
        finalize_within(
            &context,
            &plan,
            &honest,
            resumed + 6,
            Duration::from_secs(180),
        )
        .await;
        wait_finalized(&context, &honest, &hashes).await;
        for hash in &hashes {
            assert!(
                matches!(honest[0].tx_status(*hash), TxStatus::Finalized { .. }),
                "{plan:?}: transfer lost"
            );
        }
        let blocked = check_safety(&plan, &oracle, &validators, &honest).await;
        let balances: Vec<u128> = honest.iter().map(|n| n.account(recipient).myc).collect();
        assert!(
            balances.windows(2).all(|w| w[0] == w[1]),
            "{plan:?}: balances differ: {balances:?}"
        );

        eprintln!(
            "seed {seed}: validator {} {:?}: {} conflicting votes, {} invalid proposals, \
             heights {:?}, {} blocked it",
            plan.liar,
            plan.fault,
            counters.conflicting_votes.load(Ordering::Relaxed),
            counters.bad_proposals.load(Ordering::Relaxed),
            nodes.iter().map(height).collect::<Vec<_>>(),
            blocked.len()
        );
        // The fault was exercised, not merely configured.
        match plan.fault {
            Fault::Equivocate => {
                assert!(counters.conflicting_votes.load(Ordering::Relaxed) > 0);
                // Honest validators that saw both votes of a view hold the proof and cut it off.
                assert!(
                    !blocked.is_empty(),
                    "{plan:?}: the equivocator went unnoticed"
                );
            }
            Fault::Propose(_) => {
                assert!(
                    counters.bad_proposals.load(Ordering::Relaxed) > 0,
                    "{plan:?}: the liar never proposed"
                );
                // None of its blocks made it into the chain.
                let liar = super::public_key_hex(&validators[plan.liar]);
                let top = honest.iter().map(|n| height(n)).min().expect("honest");
                for h in 1..=top {
                    let block = honest[0].block(h).await.expect("block");
                    assert_ne!(
                        block.proposer.as_deref(),
                        Some(liar.as_str()),
                        "{plan:?}: block {h} of the invalid proposer was finalized"
                    );
                }
            }
            Fault::WithholdVotes => {}
        }
        context.auditor().state()
    })
}

/// The seeds a sweep runs: `MYCEL_SIM_SEEDS=FROM..TO`, or 0..1000.
fn seeds() -> Range<u64> {
    let Ok(spec) = std::env::var("MYCEL_SIM_SEEDS") else {
        return 0..1_000;
    };
    let (from, to) = spec
        .split_once("..")
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
        .unwrap_or_else(|| panic!("MYCEL_SIM_SEEDS must be FROM..TO, got '{spec}'"));
    from..to
}

/// Runs the shard's seeds; a failing seed is printed with the command that replays it.
fn sweep(shard: u64) {
    let mut ran = 0;
    for seed in seeds().filter(|s| s % SHARDS == shard) {
        let outcome = std::panic::catch_unwind(|| run_seed(seed));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "Byzantine simulation failed at seed {seed} ({:?}): {message}\n\
                 replay: MYCEL_SIM_SEEDS={seed}..{} cargo nextest run -p mycel-chain byzantine_seeds_{shard}",
                Plan::of(seed),
                seed + 1
            );
        }
        ran += 1;
    }
    eprintln!("shard {shard}: {ran} seeds passed");
}

#[test]
fn byzantine_seeds_0() {
    sweep(0)
}
#[test]
fn byzantine_seeds_1() {
    sweep(1)
}
#[test]
fn byzantine_seeds_2() {
    sweep(2)
}
#[test]
fn byzantine_seeds_3() {
    sweep(3)
}
#[test]
fn byzantine_seeds_4() {
    sweep(4)
}
#[test]
fn byzantine_seeds_5() {
    sweep(5)
}
#[test]
fn byzantine_seeds_6() {
    sweep(6)
}
#[test]
fn byzantine_seeds_7() {
    sweep(7)
}

/// Seeds beyond the default range that found bugs, kept as regression tests: 1733 and 2578 crashed
/// the network between two snapshots just after a validator applied a block marshal had not yet
/// recorded as processed, and the restarted validator served a lower height than before.
/// (501 and 740, in the default range, found the abstaining validator: see `state_after`.)
#[test]
fn seeds_that_found_bugs() {
    for seed in [1733, 2578] {
        run_seed(seed);
    }
}

/// A seed replays exactly: same plan, same execution, same audit digest.
#[test]
fn a_byzantine_seed_replays_exactly() {
    assert_eq!(run_seed(42), run_seed(42));
}
