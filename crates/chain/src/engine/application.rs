//! The consensus application: builds blocks from the mempool, verifies blocks by re-executing
//! them, and hands finalized blocks to the finalizer.

use super::{
    block::{digest_to_b256, Block, Context},
    Scheme,
};
use crate::node::Shared;
use bytes::Bytes;
use commonware_actor::Feedback;
use commonware_consensus::{
    marshal::{ancestry::Ancestry, Update},
    Heightable, Reporter,
};
use commonware_cryptography::{sha256::Digest, Digested, Digestible};
use commonware_runtime::{Clock, Metrics, Spawner, Storage};
use commonware_utils::{acknowledgement::Exact, SystemTimeExt};
use futures::{channel::mpsc, StreamExt};
use mycel_state::{BlockContext, State, TxError, TxReceipt, VerifiedTx};
use mycel_types::SignedTx;
use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};
use tracing::{debug, info, warn};

/// Block timestamps past this instant (2200-01-01) are invalid, so waiting for a timestamp to
/// come within the skew window is always bounded.
const MAX_BLOCK_TIMESTAMP_MS: u64 = 7_258_118_400_000;

/// A finalized block and the acknowledgement marshal waits for.
pub(crate) type Finalized = (Digested<Block>, Exact);

/// Block-building rules shared by proposer and verifier.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockRules {
    /// Minimum time between a parent's timestamp and its child's (proposal pacing).
    pub block_time_ms: u64,
    pub max_block_txs: usize,
    pub max_block_bytes: usize,
    /// How far ahead of the local clock a block's timestamp may be before verification waits.
    pub max_future_skew_ms: u64,
}

/// A block executed on top of its parent, not yet finalized.
#[derive(Clone)]
pub(crate) struct Executed {
    pub height: u64,
    pub state: State,
    pub results: Vec<Result<TxReceipt, TxError>>,
}

/// How a validator proposes. Production builds know only [`Proposer::Honest`]; the Byzantine
/// simulations (engine/byzantine.rs) make one validator propose invalid blocks through the real
/// engine, to check that honest validators refuse them and the chain moves on.
#[derive(Clone, Debug, Default)]
pub(crate) enum Proposer {
    #[default]
    Honest,
    /// Proposes blocks with `fault`, counting them in the counter.
    #[cfg(test)]
    Byzantine(ProposalFault, Arc<std::sync::atomic::AtomicU64>),
}

/// What a Byzantine proposer gets wrong.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProposalFault {
    /// The block commits to a state root its transactions do not produce.
    WrongStateRoot,
    /// The block carries a well-signed transfer its sender cannot pay (it fails on execution).
    UnpayableTransfer,
    /// The block carries bytes that are not a transaction.
    GarbageTransaction,
}

#[derive(Clone)]
pub(crate) struct Application {
    shared: Arc<Shared>,
    rules: BlockRules,
    finalized: mpsc::UnboundedSender<Finalized>,
    proposer: Proposer,
}

impl Application {
    pub fn new(
        shared: Arc<Shared>,
        rules: BlockRules,
        finalized: mpsc::UnboundedSender<Finalized>,
        proposer: Proposer,
    ) -> Self {
        Self {
            shared,
            rules,
            finalized,
            proposer,
        }
    }

    /// Spoils a proposal as the Byzantine proposer is told to (a no-op for an honest one).
    #[cfg_attr(not(test), allow(unused_mut, unused_variables, clippy::ptr_arg))]
    fn spoil(&self, txs: &mut Vec<Bytes>, state_root: &mut mycel_types::B256) -> bool {
        match &self.proposer {
            Proposer::Honest => false,
            #[cfg(test)]
            Proposer::Byzantine(fault, count) => {
                match fault {
                    ProposalFault::WrongStateRoot => state_root.0[0] ^= 1,
                    ProposalFault::UnpayableTransfer => {
                        let signer = mycel_types::keys::dev_signer(0).expect("dev key");
                        let kind = mycel_types::TxKind::Transfer(mycel_types::Transfer {
                            from: signer.address(),
                            to: alloy_primitives::Address::repeat_byte(0xbb),
                            token: alloy_primitives::Address::ZERO,
                            amount: alloy_primitives::U256::MAX,
                            memo: Default::default(),
                            nonce: u64::MAX,
                            fee: alloy_primitives::U256::from(10_000u64),
                        });
                        let tx = SignedTx::sign(kind, self.shared.chain_id, &signer).expect("sign");
                        txs.push(Bytes::from(tx.encode()));
                    }
                    ProposalFault::GarbageTransaction => {
                        txs.push(Bytes::from_static(b"not a transaction"))
                    }
                }
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                true
            }
        }
    }

    /// The state after `parent`: the finalized state, a cached execution, or a re-execution of the
    /// unfinalized blocks between the finalized tip and `parent` (read from `ancestry`, which must
    /// be positioned just after `parent`). `None` if `parent` cannot extend the finalized chain.
    async fn state_after(
        &self,
        parent: &Digested<Block>,
        mut ancestry: impl Ancestry<Block>,
    ) -> Option<State> {
        let parent_digest = parent.digest();
        if let Some(state) = self.known_state(&parent_digest, parent.height().get()) {
            return state;
        }

        // Walk back to a block whose post-state is known, then replay forward.
        let mut pending = vec![parent.clone()];
        let mut base = loop {
            let ancestor = ancestry.next().await?;
            match self.known_state(&ancestor.digest(), ancestor.height().get()) {
                Some(Some(state)) => break state,
                // Below the finalized tip but not on it: either a fork, or the finalizer applied
                // blocks of this very walk meanwhile (they are the tip now, or cached). Only the
                // fork is hopeless; calling the other one a fork made an honest validator abstain
                // from a valid block forever, which stalled the chain in the Byzantine
                // simulations (an equivocator blocked, one honest validator abstaining).
                Some(None) => {
                    let (known, state) = pending.iter().enumerate().find_map(|(i, block)| {
                        match self.known_state(&block.digest(), block.height().get()) {
                            Some(Some(state)) => Some((i, state)),
                            _ => None,
                        }
                    })?;
                    pending.truncate(known);
                    break state;
                }
                None => pending.push(ancestor),
            }
        };
        for block in pending.iter().rev() {
            let txs = decode_txs(&self.shared, block.inner(), &base).ok()?;
            let executed = execute(&base, block.inner(), &txs).ok()?;
            base = executed.state.clone();
            self.shared.cache_executed(block.digest(), executed);
        }
        debug!(
            height = parent.height().get(),
            replayed = pending.len(),
            "rebuilt parent state"
        );
        Some(base)
    }

    /// `Some(Some(state))` if the post-state of `digest` is known, `Some(None)` if the block cannot
    /// be on the finalized chain, `None` if unknown.
    fn known_state(&self, digest: &Digest, height: u64) -> Option<Option<State>> {
        // The cache first: the finalizer drops a block's entry only after the ledger holds its
        // state. Tip and state are read under one lock, as the finalizer advances them together.
        if let Some(executed) = self.shared.executed(digest) {
            return Some(Some(executed.state));
        }
        let ledger = self.shared.ledger();
        if digest_to_b256(digest) == ledger.tip.hash {
            return Some(Some(ledger.state.clone()));
        }
        if height <= ledger.tip.height {
            return Some(None);
        }
        None
    }
}

/// Decodes and statelessly verifies a block's transactions against `state`'s parameters. A
/// transaction already in the mempool was verified on entry (against the same chain parameters)
/// and is taken from there: no second signature recovery.
pub(crate) fn decode_txs(
    shared: &Shared,
    block: &Block,
    state: &State,
) -> Result<Vec<VerifiedTx>, String> {
    let pooled: Vec<Option<VerifiedTx>> = {
        let pool = shared.mempool();
        block
            .txs
            .iter()
            .map(|bytes| pool.verified(&alloy_primitives::keccak256(bytes)))
            .collect()
    };
    block
        .txs
        .iter()
        .zip(pooled)
        .enumerate()
        .map(|(i, (bytes, pooled))| match pooled {
            Some(verified) => Ok(verified),
            None => {
                let tx =
                    SignedTx::decode(bytes).map_err(|e| format!("tx {i} does not decode: {e}"))?;
                state
                    .verify_stateless(tx)
                    .map_err(|e| format!("tx {i} is invalid: {e}"))
            }
        })
        .collect()
}

/// Executes `block` on a copy of `parent_state`; fails if any transaction fails or the state root
/// differs from the block's.
pub(crate) fn execute(
    parent_state: &State,
    block: &Block,
    txs: &[VerifiedTx],
) -> Result<Executed, String> {
    let mut state = parent_state.clone();
    let ctx = BlockContext {
        height: block.height.get(),
        timestamp_ms: block.timestamp_ms,
    };
    let outcome = state.apply_block(ctx, txs).map_err(|e| e.to_string())?;
    if let Some((i, Err(err))) = outcome.results.iter().enumerate().find(|(_, r)| r.is_err()) {
        return Err(format!("tx {i} fails: {err}"));
    }
    if outcome.state_root != block.state_root {
        return Err(format!(
            "state root {} differs from the block's {}",
            outcome.state_root, block.state_root
        ));
    }
    Ok(Executed {
        height: block.height.get(),
        state,
        results: outcome.results,
    })
}

impl<E> commonware_consensus::Application<E> for Application
where
    E: Clock + Spawner + Metrics + Storage + rand_core::CryptoRng,
{
    type SigningScheme = Scheme;
    type Context = Context;
    type Block = Block;
    type Input = ();

    async fn propose(
        &mut self,
        (runtime, context): (E, Context),
        mut ancestry: impl Ancestry<Block>,
        _input: (),
    ) -> Option<Digested<Block>> {
        let parent = ancestry.next().await?;

        // Pace blocks: wait until the block time has passed since the parent.
        let min_timestamp = parent
            .inner()
            .timestamp_ms
            .checked_add(self.rules.block_time_ms.max(1))?;
        if min_timestamp > MAX_BLOCK_TIMESTAMP_MS {
            warn!(min_timestamp, "parent timestamp too large to build on");
            return None;
        }
        let mut now = runtime.current().epoch_millis();
        if now < min_timestamp {
            runtime
                .sleep_until(SystemTime::UNIX_EPOCH + Duration::from_millis(min_timestamp))
                .await;
            now = runtime.current().epoch_millis();
        }
        let timestamp_ms = now.max(min_timestamp);

        let parent_state = self.state_after(&parent, ancestry).await?;
        let candidates = self.shared.select_txs(
            &parent_state,
            self.rules.max_block_txs,
            self.rules.max_block_bytes,
        );
        let height = parent.height().next();
        let ctx = BlockContext {
            height: height.get(),
            timestamp_ms,
        };

        // Execute; a transaction that fails in the block (it should not, the mempool picked them in
        // sequence) is left out and the block rebuilt.
        let mut txs = candidates;
        let (state, outcome) = loop {
            let mut state = parent_state.clone();
            let outcome = match state.apply_block(ctx, &txs) {
                Ok(outcome) => outcome,
                Err(err) => {
                    warn!(%err, "cannot build on parent");
                    return None;
                }
            };
            if outcome.results.iter().all(Result::is_ok) {
                break (state, outcome);
            }
            let mut keep: Vec<VerifiedTx> = Vec::with_capacity(txs.len());
            for (tx, result) in txs.iter().zip(&outcome.results) {
                match result {
                    Ok(_) => keep.push(tx.clone()),
                    Err(err) => {
                        debug!(hash = %tx.hash, %err, "transaction refused in block, dropped");
                        self.shared.reject_in_block(&tx.hash, err);
                    }
                }
            }
            txs = keep;
        };

        let mut encoded: Vec<Bytes> = txs.iter().map(|tx| Bytes::from(tx.tx.encode())).collect();
        let mut state_root = outcome.state_root;
        let spoiled = self.spoil(&mut encoded, &mut state_root);
        let block = Block::new(
            context,
            parent.digest(),
            height,
            timestamp_ms,
            state_root,
            encoded,
        );
        let digest = block.digest();
        debug!(height = height.get(), txs = txs.len(), "proposed block");
        if spoiled {
            return Some(Digested::precomputed(block, digest));
        }
        self.shared.cache_executed(
            digest,
            Executed {
                height: height.get(),
                state,
                results: outcome.results,
            },
        );
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(
        &mut self,
        (runtime, _context): (E, Context),
        mut ancestry: impl Ancestry<Block>,
    ) -> bool {
        let Some(block) = ancestry.next().await else {
            return false;
        };
        let Some(parent) = ancestry.next().await else {
            return false;
        };
        let digest = block.digest();
        let block: &Block = block.inner();
        let parent_block: &Block = parent.inner();
        // Height and parent digest are checked by marshal before this is called.

        if block.timestamp_ms <= parent_block.timestamp_ms
            || block.timestamp_ms > MAX_BLOCK_TIMESTAMP_MS
        {
            debug!(
                height = block.height.get(),
                "rejecting block: bad timestamp"
            );
            return false;
        }
        if block.txs.len() > self.rules.max_block_txs
            || block.tx_bytes() > self.rules.max_block_bytes
        {
            debug!(
                height = block.height.get(),
                "rejecting block: over the size limits"
            );
            return false;
        }

        // Never reject on the local clock (the verdict must be the same on every honest node):
        // wait until the timestamp is within the allowed skew instead.
        let deadline_ms = block
            .timestamp_ms
            .saturating_sub(self.rules.max_future_skew_ms);
        if runtime.current().epoch_millis() < deadline_ms {
            runtime
                .sleep_until(SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms))
                .await;
        }

        let Some(parent_state) = self.state_after(&parent, ancestry).await else {
            // The parent is not on the finalized chain (or its state cannot be rebuilt): this block
            // can never be finalized. Abstain rather than vote.
            futures::future::pending::<()>().await;
            return false;
        };
        let txs = match decode_txs(&self.shared, block, &parent_state) {
            Ok(txs) => txs,
            Err(reason) => {
                info!(height = block.height.get(), %reason, "rejecting block");
                return false;
            }
        };
        match execute(&parent_state, block, &txs) {
            Ok(executed) => {
                self.shared.cache_executed(digest, executed);
                true
            }
            Err(reason) => {
                info!(height = block.height.get(), %reason, "rejecting block");
                false
            }
        }
    }
}

impl Reporter for Application {
    type Activity = Update<Block>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        match activity {
            Update::Block(block, ack) => {
                // The finalizer applies, persists, and only then acknowledges.
                if self.finalized.unbounded_send((block, ack)).is_err() {
                    warn!("finalizer stopped; block not applied");
                    return Feedback::Closed;
                }
            }
            Update::Tip(_, height, _) => self.shared.set_consensus_tip(height.get()),
        }
        Feedback::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        engine::{genesis_block, public_key_hex},
        ledger::{Ledger, TipMeta},
        mempool::{Mempool, MempoolLimits},
    };
    use alloy_primitives::{Address, U256};
    use commonware_consensus::{
        marshal::ancestry,
        types::{Epoch, Round, View},
        Application as _,
    };
    use commonware_cryptography::{ed25519, Signer};
    use commonware_runtime::{deterministic, Runner as _, Supervisor as _};
    use mycel_types::{keys::dev_signer, Genesis, Transfer, TxKind, B256};

    const RULES: BlockRules = BlockRules {
        block_time_ms: 10,
        max_block_txs: 10,
        max_block_bytes: 64 * 1024,
        max_future_skew_ms: 1_000,
    };

    fn setup() -> (Application, Genesis, Digested<Block>) {
        let key = ed25519::PrivateKey::from_seed(0);
        let genesis = Genesis::devnet(vec![public_key_hex(&key.public_key())], 0).expect("genesis");
        let (block, mut state) = genesis_block(&genesis).expect("genesis block");
        let tip = TipMeta {
            height: 0,
            hash: digest_to_b256(&block.digest()),
            timestamp_ms: 0,
            state_root: state.state_root(),
            receipts_len: 0,
            emission_len: 0,
            epochs_len: 0,
        };
        let shared = Arc::new(Shared::new(
            genesis.chain_id,
            genesis.hash(),
            genesis.validators.clone(),
            public_key_hex(&key.public_key()),
            RULES.block_time_ms,
            Ledger::new(state, tip),
            Mempool::new(MempoolLimits::default()),
        ));
        let (finalized, _) = mpsc::unbounded();
        let digest = block.digest();
        (
            Application::new(shared, RULES, finalized, Proposer::Honest),
            genesis,
            Digested::precomputed(block, digest),
        )
    }

    fn consensus_context(view: u64, parent: &Digested<Block>) -> Context {
        Context {
            round: Round::new(Epoch::zero(), View::new(view)),
            leader: ed25519::PrivateKey::from_seed(0).public_key(),
            parent: (View::new(view - 1), parent.digest()),
        }
    }

    fn rebuild(block: &Block, f: impl FnOnce(&mut Block)) -> Digested<Block> {
        let mut b = block.clone();
        f(&mut b);
        let b = Block::new(
            b.context,
            b.parent,
            b.height,
            b.timestamp_ms,
            b.state_root,
            b.txs,
        );
        let digest = b.digest();
        Digested::precomputed(b, digest)
    }

    #[test]
    fn verify_accepts_proposals_and_rejects_tampering() {
        deterministic::Runner::default().start(|context| async move {
            let (mut app, genesis, parent) = setup();
            let alice = dev_signer(0).expect("key");
            let tx = SignedTx::sign(
                TxKind::Transfer(Transfer {
                    from: alice.address(),
                    to: Address::repeat_byte(3),
                    token: Address::ZERO,
                    amount: U256::from(7u64),
                    memo: Default::default(),
                    nonce: 0,
                    fee: U256::from(10_000u64),
                }),
                genesis.chain_id,
                &alice,
            )
            .expect("sign");
            app.shared.submit(tx.clone()).expect("accepted");

            let proposal = app
                .propose(
                    (context.child("propose"), consensus_context(1, &parent)),
                    ancestry::from_iter([parent.clone()]),
                    (),
                )
                .await
                .expect("proposes");
            assert_eq!(
                proposal.inner().txs.len(),
                1,
                "includes the pending transfer"
            );
            let verify = |block: Digested<Block>| {
                let mut app = app.clone();
                let ctx = context.child("verify");
                let parent = parent.clone();
                async move {
                    let consensus_context = block.inner().context.clone();
                    app.verify(
                        (ctx, consensus_context),
                        ancestry::from_iter([block, parent]),
                    )
                    .await
                }
            };
            assert!(verify(proposal.clone()).await, "a proposal verifies");

            let block = proposal.inner();
            let wrong_root = rebuild(block, |b| b.state_root = B256::repeat_byte(1));
            assert!(!verify(wrong_root).await, "wrong state root");
            let old_time = rebuild(block, |b| b.timestamp_ms = 0);
            assert!(!verify(old_time).await, "timestamp not after the parent's");
            let garbage = rebuild(block, |b| b.txs = vec![Bytes::from_static(b"not a tx")]);
            assert!(!verify(garbage).await, "undecodable transaction");
            let replayed = rebuild(block, |b| {
                b.txs = vec![Bytes::from(tx.encode()), Bytes::from(tx.encode())]
            });
            assert!(
                !verify(replayed).await,
                "a transaction that fails (replayed nonce)"
            );
            let too_many = rebuild(block, |b| {
                b.txs = vec![Bytes::from(tx.encode()); RULES.max_block_txs + 1]
            });
            assert!(!verify(too_many).await, "over the tx cap");
        });
    }
}
