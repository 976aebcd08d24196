//! The mempool: transactions that passed validation and wait for a block.
//!
//! Guarantees:
//! - **Checked in full on entry, whatever the nonce**: every pooled transaction passed every check
//!   its block would make except the nonce's (size, chain id, signature, fee, token, memo,
//!   balances, kind-specific rules) against the latest finalized state
//!   ([`State::check_ignoring_nonce`]), and had a nonce within [`NONCE_WINDOW`] of its sender's
//!   next nonce. A transaction that needs an effect of the sender's earlier pooled one (a subnet
//!   or channel it creates) is refused until that one is final.
//! - **Paid for**: per sender and token, what its pooled transactions take (fees, amounts,
//!   deposits, stakes, prices as of entry: [`Spend`]) is at most its finalized balance when each
//!   entered; when a finalized block leaves the balance short, the sender's latest transactions
//!   are dropped until it covers the rest.
//! - **Bounded**: at most `max_txs` transactions, `max_per_sender` per sender, of which at most
//!   `max_gapped_per_sender` wait behind a nonce gap.
//! - **Eviction**: when full, a new transaction replaces the worst evictable one if it is better,
//!   else is refused with `mempool_full`. Only a sender's last transaction is evictable (so each
//!   sender's run stays contiguous), never the new transaction's own sender's. Worst: behind a
//!   gap first, then the lowest fee, then the oldest. Better: not behind a gap where the worst
//!   is, or the same on that and a strictly higher fee.
//! - **Expiry**: a transaction still pooled `ttl_blocks` finalized blocks after it entered is
//!   dropped, with its sender's transactions behind it.
//! - Per sender, transactions are kept in nonce order, at most one per nonce. Every refused or
//!   dropped transaction has a [`Rejection`] (code and reason) the pool remembers (the latest
//!   10,000).
//!
//! Does not: persist anything (a restart empties it), or replace a transaction with a higher-fee
//! one for the same nonce.

use mycel_state::{Account, Spend, State, TxError, VerifiedTx};
use mycel_types::{Address, Amount, SignedTx, Token, B256};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// How far ahead of an account's next nonce a pooled transaction may be.
pub const NONCE_WINDOW: u64 = 64;

/// How many rejection reasons the pool remembers for [`crate::TxStatus::Rejected`].
const REJECTED_MEMORY: usize = 10_000;

/// Size limits of the pool (the `mempool` section of a node's config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MempoolLimits {
    /// Most transactions in the pool.
    pub max_txs: usize,
    /// Most transactions of one sender in the pool.
    pub max_per_sender: usize,
    /// Most transactions of one sender waiting behind a nonce gap (they cannot be included until
    /// the gap fills, so they cost their sender nothing while they wait).
    pub max_gapped_per_sender: usize,
    /// Finalized blocks a transaction may wait in the pool before it is dropped as expired.
    pub ttl_blocks: u64,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        Self {
            max_txs: 10_000,
            max_per_sender: NONCE_WINDOW as usize,
            max_gapped_per_sender: 16,
            ttl_blocks: 120,
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
    #[error("{token} balance {balance} does not cover this transaction's {this} on top of the {queued} already queued by this account (base units); wait until the queued transactions are final, or send less")]
    OverBudget {
        token: Token,
        balance: Amount,
        queued: Amount,
        this: Amount,
    },
    #[error("the mempool is full ({0} transactions) and this transaction pays no more than any it could replace; retry in a few blocks or raise the fee")]
    PoolFull(usize),
    #[error("sender {sender} already has {max} pending transactions; wait for some to finalize")]
    SenderFull { sender: Address, max: usize },
    #[error("sender {sender} already has {max} transactions waiting behind a nonce gap; send the transaction with nonce {missing} first")]
    GappedFull {
        sender: Address,
        max: usize,
        missing: u64,
    },
}

impl MempoolError {
    /// A stable machine-readable name for the cause.
    pub fn code(&self) -> &'static str {
        match self {
            MempoolError::Invalid(e) => e.code(),
            MempoolError::AlreadyKnown(_) => "already_known",
            MempoolError::NonceTooFarAhead { .. } => "nonce_too_far_ahead",
            MempoolError::NonceTaken { .. } => "nonce_taken",
            MempoolError::OverBudget { .. } => "insufficient_balance",
            MempoolError::PoolFull(_) => "mempool_full",
            MempoolError::SenderFull { .. } => "sender_full",
            MempoolError::GappedFull { .. } => "gapped_full",
        }
    }
}

/// Why the pool refused or dropped a transaction: a stable code (a [`MempoolError::code`], or
/// `evicted`, `expired`, ...) and a reason for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub reason: String,
}

impl Rejection {
    fn new(code: &'static str, reason: String) -> Self {
        Self { code, reason }
    }
}

/// A transaction with the checks that need no pool state done: signature recovery and every
/// state check but the nonce's. Made without holding the pool's lock, so concurrent submissions
/// verify in parallel.
#[derive(Debug)]
pub struct Prechecked {
    hash: B256,
    verified: Result<VerifiedTx, TxError>,
    checked: Result<Spend, TxError>,
}

impl Prechecked {
    pub fn new(tx: SignedTx, state: &State) -> Self {
        let hash = tx.hash();
        let verified = state.verify_stateless(tx);
        let checked = match &verified {
            Ok(v) => state.check_ignoring_nonce(v),
            Err(e) => Err(e.clone()),
        };
        Self {
            hash,
            verified,
            checked,
        }
    }
}

/// A pooled transaction and what the pool knows of it.
#[derive(Debug)]
struct Queued {
    tx: VerifiedTx,
    /// What it takes from its sender, as checked on entry.
    spend: Spend,
    fee: Amount,
    /// The finalized height when it entered.
    entered_at: u64,
    /// Entry order (older is smaller).
    seq: u64,
}

/// Eviction candidates sort worst first: behind a gap, then lowest fee, then oldest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct EvictKey {
    contiguous: bool,
    fee: Amount,
    seq: u64,
    sender: Address,
}

/// One sender's pooled transactions.
#[derive(Debug, Default)]
struct SenderQueue {
    /// The sender's next nonce in the finalized state last seen (by a submission or a block).
    next: u64,
    txs: BTreeMap<u64, Queued>,
    /// This sender's entry in [`Mempool::evictable`] (its last transaction).
    evict_key: Option<EvictKey>,
}

impl SenderQueue {
    /// The first nonce from `next` on without a transaction: the ones above it wait behind a gap.
    fn first_missing(&self, next: u64) -> u64 {
        let mut nonce = next;
        while self.txs.contains_key(&nonce) {
            nonce += 1;
        }
        nonce
    }

    /// What the pooled transactions from nonce `next` on take in total (`None`: more than any
    /// balance).
    fn queued_spend(&self, next: u64) -> Option<Spend> {
        self.txs
            .range(next..)
            .try_fold(Spend::default(), |sum, (_, t)| sum.checked_add(t.spend))
    }

    /// Takes out the transactions below `next`: their nonces were used.
    fn take_stale(&mut self, next: u64) -> Vec<Dropped> {
        let current = self.txs.split_off(&next);
        let stale = std::mem::replace(&mut self.txs, current);
        stale
            .into_iter()
            .map(|(nonce, t)| {
                let reason = format!("nonce {nonce} was used by another finalized transaction");
                (t.tx.hash, Rejection::new("stale_nonce", reason))
            })
            .collect()
    }

    /// Takes out everything if the transaction at `next` no longer applies on `state`.
    fn take_if_head_fails(&mut self, next: u64, state: &State) -> Vec<Dropped> {
        let Some(Err(err)) = self
            .txs
            .get(&next)
            .map(|head| state.check_verified(&head.tx))
        else {
            return Vec::new();
        };
        std::mem::take(&mut self.txs)
            .into_iter()
            .map(|(nonce, t)| {
                let reason = if nonce == next {
                    format!("dropped: {err}")
                } else {
                    format!("dropped: nonce {next} before it no longer applies: {err}")
                };
                (t.tx.hash, Rejection::new(err.code(), reason))
            })
            .collect()
    }

    /// Takes out the first transaction that entered `ttl` or more blocks before `height`, with
    /// everything behind it.
    fn take_expired(&mut self, height: u64, ttl: u64) -> Vec<Dropped> {
        let Some((first, entered_at)) = self
            .txs
            .iter()
            .find(|(_, t)| height >= t.entered_at.saturating_add(ttl))
            .map(|(nonce, t)| (*nonce, t.entered_at))
        else {
            return Vec::new();
        };
        self.txs
            .split_off(&first)
            .into_iter()
            .map(|(nonce, t)| {
                let reason = if nonce == first {
                    format!("expired: not included within {ttl} blocks of entering the mempool at height {entered_at}; resubmit it")
                } else {
                    format!("expired: waited behind nonce {first}, which expired; resubmit both")
                };
                (t.tx.hash, Rejection::new("expired", reason))
            })
            .collect()
    }

    /// Takes out the latest transactions until `account` covers the rest.
    fn take_unaffordable(&mut self, next: u64, account: &Account) -> Vec<Dropped> {
        let mut drops = Vec::new();
        while self
            .queued_spend(next)
            .is_none_or(|queued| over_balance(queued, account).is_some())
        {
            let Some((_, t)) = self.txs.pop_last() else {
                break;
            };
            let reason = "dropped: the account's balance no longer covers its queued transactions; resubmit once the earlier ones are final";
            drops.push((
                t.tx.hash,
                Rejection::new("insufficient_balance", reason.into()),
            ));
        }
        drops
    }
}

/// A transaction taken out of the pool, and why.
type Dropped = (B256, Rejection);

/// The pool itself. Not thread-safe: the node wraps it in a mutex.
#[derive(Debug)]
pub struct Mempool {
    limits: MempoolLimits,
    by_sender: BTreeMap<Address, SenderQueue>,
    by_hash: HashMap<B256, (Address, u64)>,
    /// Every sender's last transaction, worst first.
    evictable: BTreeSet<EvictKey>,
    next_seq: u64,
    rejected: HashMap<B256, Rejection>,
    rejected_order: VecDeque<B256>,
    evicted_total: u64,
    expired_total: u64,
}

impl Mempool {
    pub fn new(limits: MempoolLimits) -> Self {
        Self {
            limits,
            by_sender: BTreeMap::new(),
            by_hash: HashMap::new(),
            evictable: BTreeSet::new(),
            next_seq: 0,
            rejected: HashMap::new(),
            rejected_order: VecDeque::new(),
            evicted_total: 0,
            expired_total: 0,
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

    /// Transactions evicted for better ones and expired, since start (for the node's metrics).
    pub fn dropped_totals(&self) -> (u64, u64) {
        (self.evicted_total, self.expired_total)
    }

    /// `finalized_next` advanced past the sender's contiguous pending transactions.
    pub fn next_nonce(&self, sender: &Address, finalized_next: u64) -> u64 {
        let mut next = finalized_next;
        if let Some(queue) = self.by_sender.get(sender) {
            while queue.txs.contains_key(&next) {
                next += 1;
            }
        }
        next
    }

    /// Why `hash` was dropped or refused, if the pool still remembers.
    pub fn rejection(&self, hash: &B256) -> Option<&Rejection> {
        self.rejected.get(hash)
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
                self.remember_rejection(hash, Rejection::new(err.code(), err.to_string()));
            }
        }
        result
    }

    /// Every pooled transaction, by sender and then nonce.
    pub fn transactions(&self) -> impl Iterator<Item = &VerifiedTx> {
        self.by_sender
            .values()
            .flat_map(|queue| queue.txs.values().map(|queued| &queued.tx))
    }

    /// The pooled, already verified transaction `hash`.
    pub fn verified(&self, hash: &B256) -> Option<VerifiedTx> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        let queued = self.by_sender.get(sender)?.txs.get(nonce)?;
        Some(queued.tx.clone())
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
        let no_queue = SenderQueue::default();
        let queue = self.by_sender.get(&sender).unwrap_or(&no_queue);
        if queue.txs.contains_key(&nonce) {
            return Err(MempoolError::NonceTaken { sender, nonce });
        }
        let spend = prechecked.checked.map_err(MempoolError::Invalid)?;
        let queued = queue.queued_spend(next);
        check_budget(queued, spend, &state.account(&sender))?;
        if queue.txs.len() >= self.limits.max_per_sender {
            return Err(MempoolError::SenderFull {
                sender,
                max: self.limits.max_per_sender,
            });
        }
        let missing = queue.first_missing(next);
        let contiguous = nonce == missing;
        if !contiguous && queue.txs.range(missing..).count() >= self.limits.max_gapped_per_sender {
            return Err(MempoolError::GappedFull {
                sender,
                max: self.limits.max_gapped_per_sender,
                missing,
            });
        }
        let fee = u128::try_from(verified.tx.fee()).unwrap_or(Amount::MAX);
        if self.by_hash.len() >= self.limits.max_txs {
            self.make_room(sender, contiguous, fee)?;
        }

        let queued = Queued {
            tx: verified,
            spend,
            fee,
            entered_at: state.height(),
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.by_hash.insert(hash, (sender, nonce));
        let queue = self.by_sender.entry(sender).or_default();
        queue.next = next;
        queue.txs.insert(nonce, queued);
        self.reindex(sender);
        Ok(hash)
    }

    /// Evicts the worst evictable transaction of another sender than `sender` if the new one
    /// (`contiguous`, `fee`) is better; refuses it otherwise.
    fn make_room(
        &mut self,
        sender: Address,
        contiguous: bool,
        fee: Amount,
    ) -> Result<(), MempoolError> {
        let full = MempoolError::PoolFull(self.limits.max_txs);
        let worst = *self
            .evictable
            .iter()
            .find(|k| k.sender != sender)
            .ok_or(full.clone())?;
        if (contiguous, fee) <= (worst.contiguous, worst.fee) {
            return Err(full);
        }
        let Some(queue) = self.by_sender.get_mut(&worst.sender) else {
            return Err(full);
        };
        let Some((_, evicted)) = queue.txs.pop_last() else {
            return Err(full);
        };
        let why = if worst.contiguous {
            "a transaction paying a higher fee took its place"
        } else {
            "it waited behind a nonce gap and a transaction that can be included took its place"
        };
        let reason = format!(
            "evicted: the mempool was full and {why}; resubmit it (with a higher fee if the pool stays full)"
        );
        self.forget(vec![(evicted.tx.hash, Rejection::new("evicted", reason))]);
        self.evicted_total += 1;
        self.reindex(worst.sender);
        Ok(())
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
        'senders: for (sender, queue) in &self.by_sender {
            let mut expected = scratch.next_nonce(sender);
            for (nonce, queued) in queue.txs.range(expected..) {
                let tx = &queued.tx;
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

    /// Removes finalized transactions, then, for every sender, drops what the new finalized
    /// `state` made stale (nonces used), invalid (for the senders in `included`, a head
    /// transaction that no longer applies, with everything queued behind it), expired, or
    /// unaffordable (the sender's latest transactions, until its balance covers the rest).
    pub fn on_finalized(&mut self, included: &[B256], state: &State) {
        let mut touched = BTreeSet::new();
        for hash in included {
            if let Some((sender, nonce)) = self.by_hash.remove(hash) {
                touched.insert(sender);
                if let Some(queue) = self.by_sender.get_mut(&sender) {
                    queue.txs.remove(&nonce);
                }
            }
        }
        // A transaction of any sender can be made stale by a different transaction with the same
        // nonce that another node included, expire, or lose its funding to an authorization, so
        // every sender is looked at (a few map operations each).
        let senders: Vec<Address> = self.by_sender.keys().copied().collect();
        for sender in senders {
            let drops = self.recheck_sender(sender, touched.contains(&sender), state);
            self.forget(drops);
            self.reindex(sender);
        }
    }

    /// Takes out of `sender`'s queue what `state` made stale, invalid, expired or unaffordable,
    /// with the reasons.
    fn recheck_sender(&mut self, sender: Address, touched: bool, state: &State) -> Vec<Dropped> {
        let Some(queue) = self.by_sender.get_mut(&sender) else {
            return Vec::new();
        };
        let next = state.next_nonce(&sender);
        queue.next = next;
        let mut drops = queue.take_stale(next);
        if touched {
            drops.extend(queue.take_if_head_fails(next, state));
        }
        let expired = queue.take_expired(state.height(), self.limits.ttl_blocks);
        self.expired_total += expired.len() as u64;
        drops.extend(expired);
        drops.extend(queue.take_unaffordable(next, &state.account(&sender)));
        drops
    }

    /// Drops a transaction that was valid on its own but refused when its block was executed (for
    /// example a stake order whose limit the block's batch price breaks), with every transaction of
    /// the same sender queued behind it. Without this the sender's queue would wait forever: the
    /// transaction would be picked, refused and left out of every block.
    pub fn reject_in_block(&mut self, hash: &B256, err: &TxError) {
        self.drop_with_followers(hash, err.code(), &format!("refused in block: {err}"));
    }

    /// Drops a transaction a follower accepted but the validators it forwards to refused (or
    /// none could be reached), with every transaction of the same sender queued behind it.
    pub fn refused_upstream(&mut self, hash: &B256, reason: &str) {
        self.drop_with_followers(hash, "refused_upstream", reason);
    }

    /// Drops `hash` (saying `reason`) and the transactions its sender queued behind it.
    fn drop_with_followers(&mut self, hash: &B256, code: &'static str, reason: &str) {
        let Some((sender, nonce)) = self.by_hash.get(hash).copied() else {
            return;
        };
        let Some(queue) = self.by_sender.get_mut(&sender) else {
            return;
        };
        let drops: Vec<Dropped> = queue
            .txs
            .split_off(&nonce)
            .into_iter()
            .map(|(n, t)| {
                let reason = if n == nonce {
                    reason.to_string()
                } else {
                    format!("dropped: nonce {nonce} before it was {reason}")
                };
                (t.tx.hash, Rejection::new(code, reason))
            })
            .collect();
        self.forget(drops);
        self.reindex(sender);
    }

    /// Puts `sender`'s last transaction in [`Self::evictable`] (and removes the sender if it has
    /// none left). Call after any change to its queue or its next nonce.
    fn reindex(&mut self, sender: Address) {
        let Some(queue) = self.by_sender.get_mut(&sender) else {
            return;
        };
        if let Some(old) = queue.evict_key.take() {
            self.evictable.remove(&old);
        }
        let Some((&nonce, last)) = queue.txs.last_key_value() else {
            self.by_sender.remove(&sender);
            return;
        };
        let key = EvictKey {
            contiguous: queue.first_missing(queue.next) > nonce,
            fee: last.fee,
            seq: last.seq,
            sender,
        };
        queue.evict_key = Some(key);
        self.evictable.insert(key);
    }

    /// Forgets transactions already taken out of their sender's queue, remembering why.
    fn forget(&mut self, drops: Vec<Dropped>) {
        for (hash, rejection) in drops {
            self.by_hash.remove(&hash);
            tracing::debug!(%hash, code = rejection.code, reason = %rejection.reason, "mempool dropped transaction");
            self.remember_rejection(hash, rejection);
        }
    }

    fn remember_rejection(&mut self, hash: B256, rejection: Rejection) {
        if self.rejected.insert(hash, rejection).is_none() {
            self.rejected_order.push_back(hash);
            while self.rejected_order.len() > REJECTED_MEMORY {
                if let Some(old) = self.rejected_order.pop_front() {
                    self.rejected.remove(&old);
                }
            }
        }
    }
}

/// The first token in which `spend` is more than `account` holds.
fn over_balance(spend: Spend, account: &Account) -> Option<Token> {
    [Token::Myc, Token::Musd]
        .into_iter()
        .find(|token| spend.get(*token) > account.balance(*token))
}

/// Refuses `spend` unless its sender, with `queued` already pooled, can pay it from `account`.
fn check_budget(
    queued: Option<Spend>,
    spend: Spend,
    account: &Account,
) -> Result<(), MempoolError> {
    let unpayable = Spend {
        myc: Amount::MAX,
        musd: Amount::MAX,
    };
    let queued = queued.unwrap_or(unpayable);
    let total = queued.checked_add(spend).unwrap_or(unpayable);
    match over_balance(total, account) {
        None => Ok(()),
        Some(token) => Err(MempoolError::OverBudget {
            token,
            balance: account.balance(token),
            queued: queued.get(token),
            this: spend.get(token),
        }),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U256;
    use alloy_signer_local::PrivateKeySigner;
    use mycel_state::BlockContext;
    use mycel_types::{keys::dev_signer, Genesis, Transfer, TxKind};

    const FEE: u128 = 10_000;

    fn genesis() -> Genesis {
        Genesis::devnet(vec![hex::encode([7u8; 32])], 0).expect("genesis")
    }

    fn transfer_with(
        signer: &PrivateKeySigner,
        nonce: u64,
        amount: u128,
        edit: impl FnOnce(&mut Transfer),
    ) -> SignedTx {
        let mut t = Transfer {
            from: signer.address(),
            to: Address::repeat_byte(1),
            token: Address::ZERO,
            amount: U256::from(amount),
            memo: Default::default(),
            nonce,
            fee: U256::from(FEE),
        };
        edit(&mut t);
        SignedTx::sign(TxKind::Transfer(t), genesis().chain_id, signer).expect("sign")
    }

    fn transfer(signer: &PrivateKeySigner, nonce: u64, amount: u128) -> SignedTx {
        transfer_with(signer, nonce, amount, |_| {})
    }

    fn paying(signer: &PrivateKeySigner, nonce: u64, fee: u128) -> SignedTx {
        transfer_with(signer, nonce, 1, |t| t.fee = U256::from(fee))
    }

    /// Finalizes a block of `txs` on `state` and tells `pool`.
    fn finalize(pool: &mut Mempool, state: &mut State, txs: &[SignedTx]) {
        let verified: Vec<VerifiedTx> = txs
            .iter()
            .map(|tx| state.verify_stateless(tx.clone()).expect("valid"))
            .collect();
        let height = state.height() + 1;
        let ctx = BlockContext {
            height,
            timestamp_ms: height,
        };
        let outcome = state.apply_block(ctx, &verified).expect("applies");
        assert!(outcome.results.iter().all(Result::is_ok), "{outcome:?}");
        let hashes: Vec<B256> = verified.iter().map(|t| t.hash).collect();
        pool.on_finalized(&hashes, state);
    }

    /// A fresh key holding `myc` MYC base units (sent by dev account 9).
    fn funded(state: &mut State, pool: &mut Mempool, myc: u128) -> PrivateKeySigner {
        let key = PrivateKeySigner::random();
        let bank = dev_signer(9).expect("key");
        let nonce = state.next_nonce(&bank.address());
        let fund = transfer_with(&bank, nonce, myc, |t| t.to = key.address());
        finalize(pool, state, &[fund]);
        key
    }

    fn limits(max_txs: usize) -> MempoolLimits {
        MempoolLimits {
            max_txs,
            ..MempoolLimits::default()
        }
    }

    fn code(pool: &mut Mempool, tx: SignedTx, state: &State) -> &'static str {
        pool.submit(tx, state).expect_err("refused").code()
    }

    #[test]
    fn validates_on_entry_with_reasons() {
        let genesis = genesis();
        let state = State::from_genesis(&genesis);
        let alice = dev_signer(0).expect("key");
        let mut pool = Mempool::new(MempoolLimits::default());

        let tx = transfer(&alice, 0, 1);
        let hash = pool.submit(tx.clone(), &state).expect("valid");
        assert_eq!(code(&mut pool, tx, &state), "already_known");
        assert!(pool.contains(&hash));

        let mut wrong_chain = transfer(&alice, 1, 1);
        wrong_chain = SignedTx::sign(wrong_chain.kind, genesis.chain_id + 1, &alice).unwrap();
        assert_eq!(
            code(&mut pool, wrong_chain.clone(), &state),
            "wrong_chain_id"
        );
        assert_eq!(
            pool.rejection(&wrong_chain.hash()).unwrap().code,
            "wrong_chain_id"
        );

        let far = transfer(&alice, NONCE_WINDOW + 1, 1);
        assert_eq!(code(&mut pool, far, &state), "nonce_too_far_ahead");
        assert_eq!(
            code(&mut pool, transfer(&alice, 0, 2), &state),
            "nonce_taken"
        );
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn a_transaction_behind_a_gap_is_checked_in_full_but_for_the_nonce() {
        let state = State::from_genesis(&genesis());
        let alice = dev_signer(0).expect("key");
        let balance = state.account(&alice.address()).myc;
        let mut pool = Mempool::new(MempoolLimits::default());
        let gapped = |edit: fn(&mut Transfer)| transfer_with(&alice, 5, 1, edit);

        for (tx, expected) in [
            (
                gapped(|t| t.token = Address::repeat_byte(0xee)),
                "unknown_token",
            ),
            (
                gapped(|t| t.memo = vec![0u8; mycel_types::MAX_MEMO_BYTES + 1].into()),
                "memo_too_large",
            ),
            (gapped(|t| t.fee = U256::from(FEE - 1)), "fee_too_low"),
            (transfer(&alice, 5, balance), "insufficient_balance"),
        ] {
            let hash = tx.hash();
            assert_eq!(code(&mut pool, tx, &state), expected);
            assert_eq!(pool.rejection(&hash).unwrap().code, expected);
        }
        // A key that holds nothing queues nothing, at any nonce.
        let empty = PrivateKeySigner::random();
        for nonce in [0, 1, 63] {
            assert_eq!(
                code(&mut pool, transfer(&empty, nonce, 0), &state),
                "insufficient_balance"
            );
        }
        assert!(pool.is_empty());
        assert!(
            pool.by_sender.is_empty(),
            "a refused sender leaves nothing behind"
        );
        pool.submit(transfer(&alice, 5, 1), &state)
            .expect("a valid gapped transfer waits");
    }

    #[test]
    fn an_account_must_cover_everything_it_queued() {
        let mut state = State::from_genesis(&genesis());
        let mut pool = Mempool::new(MempoolLimits::default());
        let key = funded(&mut state, &mut pool, 10 * FEE + 1_000);
        // Fee + 500 twice fits (2 * FEE + 1_000); then only fees, until the balance is used.
        pool.submit(transfer(&key, 0, 500), &state).expect("fits");
        pool.submit(transfer(&key, 3, 500), &state)
            .expect("fits, behind a gap");
        for nonce in [1, 2, 4, 5, 6, 7, 8, 9] {
            pool.submit(transfer(&key, nonce, 0), &state)
                .expect("fee fits");
        }
        let err = pool.submit(transfer(&key, 10, 0), &state).unwrap_err();
        assert_eq!(err.code(), "insufficient_balance");
        assert_eq!(
            err,
            MempoolError::OverBudget {
                token: Token::Myc,
                balance: 10 * FEE + 1_000,
                queued: 10 * FEE + 1_000,
                this: FEE,
            }
        );
        assert!(err.to_string().contains("already queued"), "{err}");
        assert_eq!(pool.len(), 10);

        // mUSD has its own budget.
        let alice = dev_signer(0).expect("key");
        let musd = state.account(&alice.address()).musd;
        let send_musd = |nonce, amount| {
            transfer_with(&alice, nonce, amount, |t| t.token = Token::Musd.address())
        };
        pool.submit(send_musd(0, musd - 10), &state).expect("fits");
        pool.submit(send_musd(1, 10), &state).expect("fits");
        let err = pool.submit(send_musd(2, 1), &state).unwrap_err();
        assert!(
            matches!(
                err,
                MempoolError::OverBudget {
                    token: Token::Musd,
                    this: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_block_that_leaves_the_balance_short_drops_the_latest_transactions() {
        let mut state = State::from_genesis(&genesis());
        let mut pool = Mempool::new(MempoolLimits::default());
        let key = funded(&mut state, &mut pool, 4 * FEE);
        let queued: Vec<B256> = (1..4u64)
            .map(|nonce| pool.submit(transfer(&key, nonce, 0), &state).expect("fits"))
            .collect();
        // Nonce 0, sent through another node, spends half the balance.
        finalize(&mut pool, &mut state, &[transfer(&key, 0, FEE)]);
        // 2 * FEE left: nonces 1 and 2 are covered, nonce 3 is not.
        assert!(pool.contains(&queued[0]) && pool.contains(&queued[1]));
        assert!(!pool.contains(&queued[2]));
        assert_eq!(
            pool.rejection(&queued[2]).unwrap().code,
            "insufficient_balance"
        );
    }

    #[test]
    fn gapped_transactions_are_capped_per_sender() {
        let state = State::from_genesis(&genesis());
        let alice = dev_signer(0).expect("key");
        let mut pool = Mempool::new(MempoolLimits {
            max_gapped_per_sender: 2,
            ..MempoolLimits::default()
        });
        pool.submit(transfer(&alice, 2, 1), &state)
            .expect("gapped 1");
        pool.submit(transfer(&alice, 3, 1), &state)
            .expect("gapped 2");
        let err = pool.submit(transfer(&alice, 5, 1), &state).unwrap_err();
        assert_eq!(err.code(), "gapped_full");
        assert!(err.to_string().contains("nonce 0 first"), "{err}");
        pool.submit(transfer(&alice, 0, 1), &state)
            .expect("contiguous is not capped");
        assert_eq!(
            code(&mut pool, transfer(&alice, 5, 1), &state),
            "gapped_full"
        );
        pool.submit(transfer(&alice, 1, 1), &state)
            .expect("fills the gap");
        pool.submit(transfer(&alice, 5, 1), &state)
            .expect("nothing waits behind a gap now");
    }

    #[test]
    fn a_full_pool_evicts_gapped_then_cheapest_then_oldest_and_never_for_an_equal() {
        let state = State::from_genesis(&genesis());
        let [a, b, c, d, e] = [0, 1, 2, 3, 4].map(|i| dev_signer(i).expect("key"));
        let mut pool = Mempool::new(limits(4));
        let a_gapped = pool.submit(paying(&a, 1, 9 * FEE), &state).expect("a");
        let b_cheap = pool.submit(paying(&b, 0, FEE), &state).expect("b");
        let c_cheap = pool.submit(paying(&c, 0, FEE), &state).expect("c");
        let d_mid = pool.submit(paying(&d, 0, 2 * FEE), &state).expect("d");

        // Full. A transaction behind a gap goes first, whatever it pays.
        pool.submit(paying(&e, 0, FEE), &state)
            .expect("includable beats gapped");
        assert!(!pool.contains(&a_gapped));
        let rejection = pool.rejection(&a_gapped).unwrap();
        assert_eq!(rejection.code, "evicted");
        assert!(
            rejection.reason.contains("nonce gap"),
            "{}",
            rejection.reason
        );
        // Then the lowest fee; an equal one replaces nothing.
        let equal = paying(&a, 0, FEE);
        assert_eq!(code(&mut pool, equal.clone(), &state), "mempool_full");
        assert_eq!(pool.rejection(&equal.hash()).unwrap().code, "mempool_full");
        // Of two lowest, the older goes.
        pool.submit(paying(&a, 0, 2 * FEE), &state)
            .expect("beats b and c");
        assert!(!pool.contains(&b_cheap) && pool.contains(&c_cheap));
        assert_eq!(pool.rejection(&b_cheap).unwrap().code, "evicted");
        pool.submit(paying(&b, 0, 3 * FEE), &state)
            .expect("beats c");
        assert!(!pool.contains(&c_cheap) && pool.contains(&d_mid));
        assert_eq!(pool.len(), 4);
        assert_eq!(pool.dropped_totals(), (3, 0));
    }

    #[test]
    fn eviction_takes_a_senders_last_transaction_and_spares_the_new_ones_sender() {
        let state = State::from_genesis(&genesis());
        let [a, b, c] = [0, 1, 2].map(|i| dev_signer(i).expect("key"));
        let mut pool = Mempool::new(limits(3));
        let a0 = pool.submit(paying(&a, 0, FEE), &state).expect("a0");
        let a1 = pool.submit(paying(&a, 1, 5 * FEE), &state).expect("a1");
        let b0 = pool.submit(paying(&b, 0, 2 * FEE), &state).expect("b0");
        // a0 pays least but is not a sender's last; a's own a1 is spared; b0 goes.
        let a2 = pool
            .submit(paying(&a, 2, 3 * FEE), &state)
            .expect("beats b0");
        assert!(pool.contains(&a0) && pool.contains(&a1) && !pool.contains(&b0));
        // Only a's transactions left: a cannot make room for itself.
        assert_eq!(
            code(&mut pool, paying(&a, 3, 99 * FEE), &state),
            "mempool_full"
        );
        // Another sender takes a's last, and a's run stays contiguous.
        pool.submit(paying(&c, 0, 4 * FEE), &state)
            .expect("beats a2");
        assert!(!pool.contains(&a2) && pool.contains(&a1));
        assert_eq!(pool.next_nonce(&a.address(), 0), 2);
    }

    #[test]
    fn queued_transactions_expire_after_the_ttl_with_everything_behind_them() {
        let mut state = State::from_genesis(&genesis());
        let [a, b] = [0, 1].map(|i| dev_signer(i).expect("key"));
        let mut pool = Mempool::new(MempoolLimits {
            ttl_blocks: 3,
            ..MempoolLimits::default()
        });
        let gapped = pool.submit(transfer(&a, 1, 1), &state).expect("gapped");
        let behind = pool.submit(transfer(&a, 2, 1), &state).expect("behind it");
        finalize(&mut pool, &mut state, &[]);
        let later = pool
            .submit(transfer(&b, 3, 1), &state)
            .expect("entered at height 1");
        finalize(&mut pool, &mut state, &[]);
        assert_eq!(pool.len(), 3, "height 2: nothing is 3 blocks old");
        finalize(&mut pool, &mut state, &[]);
        assert!(!pool.contains(&gapped) && !pool.contains(&behind));
        assert!(pool.contains(&later));
        let rejection = pool.rejection(&gapped).unwrap();
        assert_eq!(rejection.code, "expired");
        assert!(
            rejection.reason.contains("within 3 blocks"),
            "{}",
            rejection.reason
        );
        assert_eq!(pool.rejection(&behind).unwrap().code, "expired");
        finalize(&mut pool, &mut state, &[]);
        assert!(pool.is_empty());
        assert_eq!(pool.dropped_totals(), (0, 3));
        assert!(pool.evictable.is_empty() && pool.by_sender.is_empty());
    }

    #[test]
    fn a_transaction_refused_in_block_is_dropped_with_its_queue_and_a_reason() {
        let state = State::from_genesis(&genesis());
        let alice = dev_signer(0).expect("key");
        let bob = dev_signer(1).expect("key");
        let mut pool = Mempool::new(MempoolLimits::default());
        let hashes: Vec<B256> = (0..3u64)
            .map(|n| pool.submit(transfer(&alice, n, 5), &state).expect("valid"))
            .collect();
        let bobs = pool.submit(transfer(&bob, 0, 5), &state).expect("valid");

        let err = TxError::MemoTooLarge { size: 1, max: 0 };
        pool.reject_in_block(&hashes[1], &err);
        assert!(pool.contains(&hashes[0]), "the earlier nonce stays");
        assert!(!pool.contains(&hashes[1]) && !pool.contains(&hashes[2]));
        assert!(pool.contains(&bobs), "other senders are untouched");
        let refused = pool.rejection(&hashes[1]).unwrap();
        assert_eq!(refused.code, "memo_too_large");
        assert!(
            refused.reason.contains("refused in block"),
            "{}",
            refused.reason
        );
        assert!(pool
            .rejection(&hashes[2])
            .unwrap()
            .reason
            .contains("nonce 1"));
        // Alice's queue is free again: nonce 1 can be resubmitted.
        pool.submit(transfer(&alice, 1, 6), &state)
            .expect("nonce 1 free again");
        // Unknown hashes are ignored.
        pool.reject_in_block(&B256::ZERO, &err);
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn selects_in_nonce_order_and_cleans_up_after_finalization() {
        let mut state = State::from_genesis(&genesis());
        let alice = dev_signer(0).expect("key");
        let bob = dev_signer(1).expect("key");
        let mut pool = Mempool::new(MempoolLimits::default());
        for nonce in [2u64, 0, 1] {
            pool.submit(transfer(&alice, nonce, 5), &state)
                .expect("valid");
        }
        // A gap: nonce 1 missing for bob, so only nonce 0 is selectable.
        pool.submit(transfer(&bob, 0, 5), &state).expect("valid");
        pool.submit(transfer(&bob, 2, 5), &state).expect("valid");

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

        let txs: Vec<SignedTx> = picked.iter().map(|t| t.tx.clone()).collect();
        finalize(&mut pool, &mut state, &txs);
        assert_eq!(pool.len(), 1, "only bob's nonce 2 waits");
        assert_eq!(
            pool.next_nonce(&bob.address(), state.next_nonce(&bob.address())),
            1
        );
    }
}
