//! The mempool: transactions that passed validation and wait for a block.
//!
//! Guarantees: every transaction in the pool passed the stateless checks (size, chain id,
//! signature) and had a nonce within [`NONCE_WINDOW`] of its sender's next nonce when it entered;
//! the pool never holds more than its configured limits; per sender, transactions are kept in
//! nonce order and at most one per nonce. Does not: persist anything (a restart empties it), or
//! replace a transaction with a higher-fee one for the same nonce.

use alloy_primitives::U256;
use mycel_state::{State, TxError, VerifiedTx};
use mycel_types::{Address, SignedTx, B256};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// How far ahead of an account's next nonce a pooled transaction may be.
pub const NONCE_WINDOW: u64 = 64;

/// How many rejection reasons the pool remembers for [`crate::TxStatus::Rejected`].
const REJECTED_MEMORY: usize = 10_000;

/// Size limits of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolLimits {
    /// Most transactions in the pool.
    pub max_txs: usize,
    /// Most transactions of one sender in the pool.
    pub max_per_sender: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        Self {
            max_txs: 10_000,
            max_per_sender: NONCE_WINDOW as usize,
        }
    }
}

/// Why the mempool refused a transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The transaction failed a check of the state machine (size, chain id, signature, fee,
    /// balance, nonce...).
    #[error("{0}")]
    Invalid(TxError),
    #[error("transaction {0} is already in the mempool")]
    AlreadyKnown(B256),
    #[error("nonce {got} is more than {window} ahead of the account's next nonce {next}; send the earlier transactions first")]
    NonceTooFarAhead { next: u64, got: u64, window: u64 },
    #[error("another transaction with nonce {nonce} from {sender} is already pending")]
    NonceTaken { sender: Address, nonce: u64 },
    #[error("the mempool is full ({0} transactions); retry later")]
    PoolFull(usize),
    #[error("sender {sender} already has {max} pending transactions; wait for some to finalize")]
    SenderFull { sender: Address, max: usize },
}

impl MempoolError {
    /// A stable machine-readable name for the cause.
    pub fn code(&self) -> &'static str {
        match self {
            MempoolError::Invalid(e) => e.code(),
            MempoolError::AlreadyKnown(_) => "already_known",
            MempoolError::NonceTooFarAhead { .. } => "nonce_too_far_ahead",
            MempoolError::NonceTaken { .. } => "nonce_taken",
            MempoolError::PoolFull(_) => "mempool_full",
            MempoolError::SenderFull { .. } => "sender_full",
        }
    }
}

/// A transaction with the checks that need no pool state done: signature recovery and, when its
/// nonce is the sender's next, the full state check. Made without holding the pool's lock, so
/// concurrent submissions verify in parallel.
#[derive(Debug)]
pub struct Prechecked {
    hash: B256,
    verified: Result<VerifiedTx, TxError>,
    next_nonce_check: Option<Result<(), TxError>>,
}

impl Prechecked {
    pub fn new(tx: SignedTx, state: &State) -> Self {
        let hash = tx.hash();
        let verified = state.verify_stateless(tx);
        let next_nonce_check = match &verified {
            Ok(v) if v.tx.nonce() == state.next_nonce(&v.sender) => Some(state.check_verified(v)),
            _ => None,
        };
        Self {
            hash,
            verified,
            next_nonce_check,
        }
    }
}

/// The pool itself. Not thread-safe: the node wraps it in a mutex.
#[derive(Debug)]
pub struct Mempool {
    limits: MempoolLimits,
    by_sender: BTreeMap<Address, BTreeMap<u64, VerifiedTx>>,
    by_hash: HashMap<B256, (Address, u64)>,
    rejected: HashMap<B256, String>,
    rejected_order: VecDeque<B256>,
}

impl Mempool {
    pub fn new(limits: MempoolLimits) -> Self {
        Self {
            limits,
            by_sender: BTreeMap::new(),
            by_hash: HashMap::new(),
            rejected: HashMap::new(),
            rejected_order: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    #[allow(dead_code)]
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn contains(&self, hash: &B256) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// `finalized_next` advanced past the sender's contiguous pending transactions.
    pub fn next_nonce(&self, sender: &Address, finalized_next: u64) -> u64 {
        let mut next = finalized_next;
        if let Some(txs) = self.by_sender.get(sender) {
            while txs.contains_key(&next) {
                next += 1;
            }
        }
        next
    }

    /// Why `hash` was dropped or refused, if the pool still remembers.
    pub fn rejection(&self, hash: &B256) -> Option<&str> {
        self.rejected.get(hash).map(String::as_str)
    }

    /// Validates `tx` against `state` (the latest finalized state) and pending transactions of its
    /// sender, and adds it. Returns its hash.
    #[allow(dead_code)]
    pub fn submit(&mut self, tx: SignedTx, state: &State) -> Result<B256, MempoolError> {
        let prechecked = Prechecked::new(tx, state);
        self.submit_prechecked(prechecked, state)
    }

    /// Adds a transaction whose expensive checks ran before taking the pool's lock. `state` must
    /// be the state `prechecked` was made with.
    pub fn submit_prechecked(
        &mut self,
        prechecked: Prechecked,
        state: &State,
    ) -> Result<B256, MempoolError> {
        let hash = prechecked.hash;
        let result = self.try_submit(prechecked, state);
        if let Err(err) = &result {
            if !matches!(err, MempoolError::AlreadyKnown(_)) {
                self.remember_rejection(hash, err.to_string());
            }
        }
        result
    }

    /// The pooled, already verified transaction `hash`.
    pub fn verified(&self, hash: &B256) -> Option<VerifiedTx> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.by_sender.get(sender)?.get(nonce).cloned()
    }

    fn try_submit(&mut self, prechecked: Prechecked, state: &State) -> Result<B256, MempoolError> {
        let verified = prechecked.verified.map_err(MempoolError::Invalid)?;
        let hash = verified.hash;
        if self.by_hash.contains_key(&hash) {
            return Err(MempoolError::AlreadyKnown(hash));
        }
        let sender = verified.sender;
        let nonce = verified.tx.nonce();
        let next = state.next_nonce(&sender);
        if nonce < next {
            return Err(MempoolError::Invalid(TxError::StaleNonce {
                expected: next,
                got: nonce,
            }));
        }
        if nonce >= next.saturating_add(NONCE_WINDOW) {
            return Err(MempoolError::NonceTooFarAhead {
                next,
                got: nonce,
                window: NONCE_WINDOW,
            });
        }
        let min_fee = U256::from(state.params().min_fee);
        if verified.tx.fee() < min_fee {
            return Err(MempoolError::Invalid(TxError::FeeTooLow {
                min: min_fee.to_string(),
                got: verified.tx.fee().to_string(),
            }));
        }
        let pending = self.by_sender.get(&sender);
        if pending.is_some_and(|p| p.contains_key(&nonce)) {
            return Err(MempoolError::NonceTaken { sender, nonce });
        }
        if pending.map_or(0, BTreeMap::len) >= self.limits.max_per_sender {
            return Err(MempoolError::SenderFull {
                sender,
                max: self.limits.max_per_sender,
            });
        }
        if self.by_hash.len() >= self.limits.max_txs {
            return Err(MempoolError::PoolFull(self.limits.max_txs));
        }

        // Full check against the state this transaction would run on: the finalized state plus the
        // sender's pending transactions before it. With a gap before it, only the stateless checks
        // above apply until the gap fills.
        if nonce == next {
            match prechecked.next_nonce_check {
                Some(result) => result.map_err(MempoolError::Invalid)?,
                None => {
                    state
                        .check_verified(&verified)
                        .map_err(MempoolError::Invalid)?;
                }
            }
        } else if let Some(pending) = pending {
            let before: Vec<&VerifiedTx> = pending.range(next..nonce).map(|(_, tx)| tx).collect();
            if before.len() as u64 == nonce - next {
                let mut scratch = state.clone();
                for tx in before {
                    // A predecessor that no longer applies leaves this one unverifiable for now.
                    if scratch.apply_verified(tx).is_err() {
                        break;
                    }
                }
                if scratch.next_nonce(&sender) == nonce {
                    scratch
                        .check_verified(&verified)
                        .map_err(MempoolError::Invalid)?;
                }
            }
        }

        self.by_hash.insert(hash, (sender, nonce));
        self.by_sender
            .entry(sender)
            .or_default()
            .insert(nonce, verified);
        Ok(hash)
    }

    /// Picks transactions for a block built on `parent_state`: per sender in nonce order starting
    /// at the sender's next nonce, each one applied to a scratch copy so that all picked
    /// transactions are valid in sequence. Stops at `max_txs` transactions or `max_bytes` bytes.
    pub fn select(
        &self,
        parent_state: &State,
        max_txs: usize,
        max_bytes: usize,
    ) -> Vec<VerifiedTx> {
        let mut scratch = parent_state.clone();
        let mut picked = Vec::new();
        let mut bytes = 0usize;
        'senders: for (sender, txs) in &self.by_sender {
            let mut expected = scratch.next_nonce(sender);
            for (nonce, tx) in txs.range(expected..) {
                if *nonce != expected {
                    continue 'senders;
                }
                if picked.len() >= max_txs {
                    break 'senders;
                }
                if bytes + tx.encoded_len > max_bytes {
                    continue 'senders;
                }
                if scratch.apply_verified(tx).is_err() {
                    continue 'senders;
                }
                bytes += tx.encoded_len;
                picked.push(tx.clone());
                expected += 1;
            }
        }
        picked
    }

    /// Removes finalized transactions, then drops what the new finalized `state` made invalid:
    /// stale nonces, and for the senders in `included`, a head transaction that no longer applies
    /// (with everything queued behind it).
    pub fn on_finalized(&mut self, included: &[B256], state: &State) {
        let mut touched = HashSet::new();
        for hash in included {
            if let Some((sender, nonce)) = self.by_hash.remove(hash) {
                touched.insert(sender);
                if let Some(txs) = self.by_sender.get_mut(&sender) {
                    txs.remove(&nonce);
                }
            }
        }
        // A transaction of any sender can be made stale by a different transaction with the same
        // nonce that another node included, so check every sender's stale prefix (cheap: a range).
        let senders: Vec<Address> = self.by_sender.keys().copied().collect();
        for sender in senders {
            let next = state.next_nonce(&sender);
            let mut drops: Vec<(B256, String)> = Vec::new();
            if let Some(txs) = self.by_sender.get_mut(&sender) {
                let stale: Vec<u64> = txs.range(..next).map(|(n, _)| *n).collect();
                for nonce in stale {
                    if let Some(tx) = txs.remove(&nonce) {
                        drops.push((
                            tx.hash,
                            format!("nonce {nonce} was used by another finalized transaction"),
                        ));
                    }
                }
                if touched.contains(&sender) {
                    if let Some(head) = txs.get(&next) {
                        if let Err(err) = state.check_verified(head) {
                            let reason = err.to_string();
                            let dropped: Vec<u64> = txs.range(next..).map(|(n, _)| *n).collect();
                            for nonce in dropped {
                                if let Some(tx) = txs.remove(&nonce) {
                                    drops.push((tx.hash, format!("dropped: {reason}")));
                                }
                            }
                        }
                    }
                }
                if txs.is_empty() {
                    self.by_sender.remove(&sender);
                }
            }
            for (hash, reason) in drops {
                self.by_hash.remove(&hash);
                tracing::debug!(%hash, %reason, "mempool dropped transaction");
                self.remember_rejection(hash, reason);
            }
        }
    }

    /// Drops a transaction that was valid on its own but refused when its block was executed (for
    /// example a stake order whose limit the block's batch price breaks), with every transaction of
    /// the same sender queued behind it. Without this the sender's queue would wait forever: the
    /// transaction would be picked, refused and left out of every block.
    pub fn reject_in_block(&mut self, hash: &B256, reason: &str) {
        let Some((sender, nonce)) = self.by_hash.get(hash).copied() else {
            return;
        };
        let mut drops: Vec<(B256, String)> = Vec::new();
        if let Some(txs) = self.by_sender.get_mut(&sender) {
            let behind: Vec<u64> = txs.range(nonce..).map(|(n, _)| *n).collect();
            for n in behind {
                if let Some(tx) = txs.remove(&n) {
                    let why = if n == nonce {
                        format!("refused in block: {reason}")
                    } else {
                        format!("dropped: nonce {nonce} before it was refused in block: {reason}")
                    };
                    drops.push((tx.hash, why));
                }
            }
            if txs.is_empty() {
                self.by_sender.remove(&sender);
            }
        }
        for (hash, reason) in drops {
            self.by_hash.remove(&hash);
            tracing::debug!(%hash, %reason, "mempool dropped transaction");
            self.remember_rejection(hash, reason);
        }
    }

    fn remember_rejection(&mut self, hash: B256, reason: String) {
        if self.rejected.insert(hash, reason).is_none() {
            self.rejected_order.push_back(hash);
            while self.rejected_order.len() > REJECTED_MEMORY {
                if let Some(old) = self.rejected_order.pop_front() {
                    self.rejected.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U256;
    use alloy_signer_local::PrivateKeySigner;
    use mycel_state::BlockContext;
    use mycel_types::{keys::dev_signer, Genesis, Transfer, TxKind};

    fn genesis() -> Genesis {
        Genesis::devnet(vec![hex::encode([7u8; 32])], 0).expect("genesis")
    }

    fn transfer(signer: &PrivateKeySigner, chain_id: u64, nonce: u64, amount: u128) -> SignedTx {
        SignedTx::sign(
            TxKind::Transfer(Transfer {
                from: signer.address(),
                to: Address::repeat_byte(1),
                token: Address::ZERO,
                amount: U256::from(amount),
                memo: Default::default(),
                nonce,
                fee: U256::from(10_000u64),
            }),
            chain_id,
            signer,
        )
        .expect("sign")
    }

    #[test]
    fn validates_on_entry_with_reasons() {
        let genesis = genesis();
        let state = State::from_genesis(&genesis);
        let alice = dev_signer(0).expect("key");
        let mut pool = Mempool::new(MempoolLimits::default());

        let tx = transfer(&alice, genesis.chain_id, 0, 1);
        let hash = pool.submit(tx.clone(), &state).expect("valid");
        assert_eq!(pool.submit(tx, &state).unwrap_err().code(), "already_known");
        assert!(pool.contains(&hash));

        let wrong_chain = transfer(&alice, genesis.chain_id + 1, 1, 1);
        let err = pool.submit(wrong_chain.clone(), &state).unwrap_err();
        assert_eq!(err.code(), "wrong_chain_id");
        assert!(pool.rejection(&wrong_chain.hash()).is_some());

        let far = transfer(&alice, genesis.chain_id, NONCE_WINDOW + 1, 1);
        assert_eq!(
            pool.submit(far, &state).unwrap_err().code(),
            "nonce_too_far_ahead"
        );

        let other = transfer(&alice, genesis.chain_id, 0, 2);
        assert_eq!(
            pool.submit(other, &state).unwrap_err().code(),
            "nonce_taken"
        );

        // Nonce 1 is checked on top of pending nonce 0: it cannot spend more than is left.
        let balance = state.account(&alice.address()).myc;
        let too_much = transfer(&alice, genesis.chain_id, 1, balance);
        assert_eq!(
            pool.submit(too_much, &state).unwrap_err().code(),
            "insufficient_balance"
        );
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn a_transaction_refused_in_block_is_dropped_with_its_queue_and_a_reason() {
        let genesis = genesis();
        let state = State::from_genesis(&genesis);
        let alice = dev_signer(0).expect("key");
        let bob = dev_signer(1).expect("key");
        let mut pool = Mempool::new(MempoolLimits::default());
        let hashes: Vec<B256> = (0..3u64)
            .map(|n| {
                pool.submit(transfer(&alice, genesis.chain_id, n, 5), &state)
                    .expect("valid")
            })
            .collect();
        let bobs = pool
            .submit(transfer(&bob, genesis.chain_id, 0, 5), &state)
            .expect("valid");

        pool.reject_in_block(&hashes[1], "price_limit");
        assert!(pool.contains(&hashes[0]), "the earlier nonce stays");
        assert!(!pool.contains(&hashes[1]) && !pool.contains(&hashes[2]));
        assert!(pool.contains(&bobs), "other senders are untouched");
        assert!(pool
            .rejection(&hashes[1])
            .unwrap()
            .contains("refused in block: price_limit"));
        assert!(pool.rejection(&hashes[2]).unwrap().contains("nonce 1"));
        // Alice's queue is free again: nonce 1 can be resubmitted.
        pool.submit(transfer(&alice, genesis.chain_id, 1, 6), &state)
            .expect("nonce 1 free again");
        // Unknown hashes are ignored.
        pool.reject_in_block(&B256::ZERO, "x");
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn selects_in_nonce_order_and_cleans_up_after_finalization() {
        let genesis = genesis();
        let mut state = State::from_genesis(&genesis);
        let alice = dev_signer(0).expect("key");
        let bob = dev_signer(1).expect("key");
        let mut pool = Mempool::new(MempoolLimits::default());
        for nonce in [2u64, 0, 1] {
            pool.submit(transfer(&alice, genesis.chain_id, nonce, 5), &state)
                .expect("valid");
        }
        // A gap: nonce 1 missing for bob, so only nonce 0 is selectable.
        pool.submit(transfer(&bob, genesis.chain_id, 0, 5), &state)
            .expect("valid");
        pool.submit(transfer(&bob, genesis.chain_id, 2, 5), &state)
            .expect("valid");

        let picked = pool.select(&state, 100, 1 << 20);
        let alice_nonces: Vec<u64> = picked
            .iter()
            .filter(|t| t.sender == alice.address())
            .map(|t| t.tx.nonce())
            .collect();
        assert_eq!(alice_nonces, vec![0, 1, 2]);
        assert_eq!(
            picked.iter().filter(|t| t.sender == bob.address()).count(),
            1
        );
        assert_eq!(pool.select(&state, 2, 1 << 20).len(), 2, "tx count cap");

        let outcome = state
            .apply_block(
                BlockContext {
                    height: 1,
                    timestamp_ms: 1,
                },
                &picked,
            )
            .expect("applies");
        assert!(outcome.results.iter().all(Result::is_ok));
        let hashes: Vec<B256> = picked.iter().map(|t| t.hash).collect();
        pool.on_finalized(&hashes, &state);
        assert_eq!(pool.len(), 1, "only bob's nonce 2 waits");
        assert_eq!(
            pool.next_nonce(&bob.address(), state.next_nonce(&bob.address())),
            1
        );
    }
}
