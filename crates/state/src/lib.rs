//! mycel-state: the deterministic state machine of the mycel chain.
//!
//! Contract:
//! - [`State::apply_block`] is a pure function of the state and the block: no I/O, no clocks, no
//!   floats, no randomness, no hash-map iteration order. Two nodes that apply the same blocks from
//!   the same genesis hold byte-identical states with the same [`State::state_root`].
//! - Every transaction is fully validated before it changes anything. An invalid transaction
//!   changes nothing at all and returns a [`TxError`] saying why (each cause has its own variant and
//!   stable [`TxError::code`]).
//! - After every block the books balance: for MYC, issued = balances + burned + MYC in subnet
//!   pools; for each subnet's alpha, issued = pool + staked + pending ([`subnets`]); for mUSD,
//!   issued = balances + escrow in payment channels ([`sessions`]) + escrow of jobs ([`jobs`]). This is asserted; a
//!   violation stops the node rather than let it diverge.
//! - A block's steps run in one order, written out once in [`pipeline`]: header checks, the
//!   transactions, batch-settled stake orders, then the incentive layer ([`subnets`]: Taoflow,
//!   emission, moving prices, epochs, burn adjustment), the books and the state root.
//!   [`BlockOutcome::emission`] says where every unit of a block's emission went.
//! - Each rule has one home: in which blocks a subnet's epoch runs is
//!   [`subnets::EpochSchedule`], which the node API, the CLI and the benches call too.
//!
//! Does not: decide which transactions go into a block, store anything, or talk to peers (that is
//! `mycel-chain`).

pub mod agents;
pub mod allowances;
mod api;
mod bank;
pub mod incentive;
pub mod jobs;
pub mod market;
mod merkle;
pub mod payments;
pub mod pipeline;
pub mod sessions;
pub mod storage;
pub mod subnets;
pub mod training;

pub use bank::Account;
pub use pipeline::{BlockContext, BlockError, BlockOutcome};

use alloy_primitives::{Address, B256, U256};
use mycel_types::api::AllowanceEvent;
use mycel_types::{
    genesis::amount_string, Amount, Genesis, SignedTx, Token, TxKind, MAX_MEMO_BYTES,
};
use serde::{Deserialize, Serialize};

/// Chain-wide parameters, fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    pub chain_id: u64,
    #[serde(with = "amount_string")]
    pub min_fee: Amount,
    pub max_tx_bytes: u32,
    #[serde(default)]
    pub storage: mycel_types::storage::StorageParams,
    #[serde(default)]
    pub market: mycel_types::market::MarketParams,
}

/// Where every unit of every token is accounted for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supply {
    #[serde(with = "amount_string")]
    pub myc_issued: Amount,
    #[serde(with = "amount_string")]
    pub myc_burned: Amount,
    #[serde(with = "amount_string")]
    pub musd_issued: Amount,
}

/// Why a transaction was refused. Each variant is a distinct cause with a stable [`code`](Self::code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum TxError {
    #[error("transaction is {size} bytes, over the {max}-byte limit")]
    TooLarge { size: usize, max: u32 },
    #[error("transaction is for chain {got}, this chain is {expected}")]
    WrongChainId { expected: u64, got: u64 },
    #[error("signature does not recover to the sender {from}")]
    BadSignature { from: Address },
    #[error("nonce {got} was already used: the next nonce of this account is {expected}")]
    StaleNonce { expected: u64, got: u64 },
    #[error("nonce {got} is ahead of the account's next nonce {expected}")]
    FutureNonce { expected: u64, got: u64 },
    #[error("fee {got} is below the minimum fee {min} (MYC base units)")]
    FeeTooLow { min: String, got: String },
    #[error("{token} balance {available} is short of the {needed} needed (base units)")]
    InsufficientBalance {
        token: Token,
        needed: String,
        available: String,
    },
    #[error("token {0} is not a token of this chain (MYC is 0x0000…0000, mUSD 0x…6d5553)")]
    UnknownToken(Address),
    #[error("amount {0} is larger than any balance can be")]
    AmountTooLarge(String),
    #[error("memo is {size} bytes, over the {max}-byte limit")]
    MemoTooLarge { size: usize, max: usize },
    #[error("{0}")]
    Incentive(subnets::IncentiveError),
    #[error("authorization signature is malformed: {0}")]
    AuthorizationBadSignature(String),
    #[error("authorization is signed by {recovered}, not by its payer {payer} (or a field was changed after signing)")]
    AuthorizationWrongSigner { payer: Address, recovered: Address },
    #[error("authorization is valid only after {valid_after}; block time is {block_time} s")]
    AuthorizationNotYetValid {
        valid_after: String,
        block_time: u64,
    },
    #[error("authorization expired at {valid_before}; block time is {block_time} s")]
    AuthorizationExpired {
        valid_before: String,
        block_time: u64,
    },
    #[error("authorization nonce {nonce} of {payer} was already used")]
    AuthorizationUsed { payer: Address, nonce: B256 },
    #[error("{0}")]
    Session(sessions::SessionError),
    #[error("{0}")]
    Agent(agents::AgentError),
    #[error("{0}")]
    Job(jobs::JobError),
    #[error("{0}")]
    Allowance(allowances::AllowanceError),
    #[error("{0}")]
    Storage(storage::StorageError),
    #[error("{0}")]
    Market(market::MarketError),
    #[error("{0}")]
    Training(training::TrainingError),
}

impl TxError {
    /// A stable machine-readable name for the cause.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::TooLarge { .. } => "too_large",
            TxError::WrongChainId { .. } => "wrong_chain_id",
            TxError::BadSignature { .. } => "bad_signature",
            TxError::StaleNonce { .. } => "stale_nonce",
            TxError::FutureNonce { .. } => "future_nonce",
            TxError::FeeTooLow { .. } => "fee_too_low",
            TxError::InsufficientBalance { .. } => "insufficient_balance",
            TxError::UnknownToken(_) => "unknown_token",
            TxError::AmountTooLarge(_) => "amount_too_large",
            TxError::MemoTooLarge { .. } => "memo_too_large",
            TxError::Incentive(e) => e.code(),
            TxError::AuthorizationBadSignature(_) => "authorization_bad_signature",
            TxError::AuthorizationWrongSigner { .. } => "authorization_wrong_signer",
            TxError::AuthorizationNotYetValid { .. } => "authorization_not_yet_valid",
            TxError::AuthorizationExpired { .. } => "authorization_expired",
            TxError::AuthorizationUsed { .. } => "authorization_used",
            TxError::Session(e) => e.code(),
            TxError::Agent(e) => e.code(),
            TxError::Job(e) => e.code(),
            TxError::Allowance(e) => e.code(),
            TxError::Storage(e) => e.code(),
            TxError::Market(e) => e.code(),
            TxError::Training(e) => e.code(),
        }
    }
}

/// A transaction whose stateless checks (size, chain id, signature) passed, with its sender,
/// hash and size remembered so that they are computed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTx {
    pub tx: SignedTx,
    pub sender: Address,
    pub hash: B256,
    pub encoded_len: usize,
}

/// Something a transaction did, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Transfer {
        token: Token,
        from: Address,
        to: Address,
        #[serde(with = "amount_string")]
        amount: Amount,
    },
    FeeBurned {
        from: Address,
        #[serde(with = "amount_string")]
        amount: Amount,
    },
    /// Subnets, neurons, weights and stake (`action` says which).
    Incentive(subnets::IncentiveEvent),
    /// An EIP-3009 authorization `(authorizer, nonce)` executed and can never execute again.
    AuthorizationUsed { authorizer: Address, nonce: B256 },
    /// A payment channel was opened, topped up, claimed from, or withdrawn ([`sessions`]).
    Channel(sessions::ChannelEvent),
    /// An agent was registered, changed or rated ([`agents`]).
    Agent(mycel_types::api::AgentEvent),
    /// A job was created, funded, delivered or settled ([`jobs`]).
    Job(mycel_types::api::JobEvent),
    /// An allowance was granted or revoked, or a delegated key spent ([`allowances`]).
    Allowance(mycel_types::api::AllowanceEvent),
    /// A storage node or a blob was registered, certified, extended or deleted ([`storage`]).
    Storage(storage::StorageEvent),
    /// A provider, deployment, bid or lease changed ([`market`]).
    Market(mycel_types::market::MarketEvent),
    /// A training run was started, or an update committed or revealed, or a checkpoint
    /// published ([`training`]).
    Training(mycel_types::api::TrainingEvent),
}

/// The outcome of an applied transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReceipt {
    pub hash: B256,
    pub from: Address,
    pub nonce: u64,
    #[serde(rename = "type")]
    pub tx_type: String,
    pub events: Vec<Event>,
}

/// The whole chain state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    params: Params,
    accounts: imbl::OrdMap<Address, Account>,
    supply: Supply,
    height: u64,
    last_block_time_ms: u64,
    #[serde(default)]
    payments: payments::Payments,
    #[serde(default)]
    subnets: subnets::Subnets,
    #[serde(default)]
    sessions: sessions::Sessions,
    #[serde(default)]
    agents: agents::Agents,
    #[serde(default)]
    jobs: jobs::Jobs,
    #[serde(default)]
    allowances: allowances::Allowances,
    #[serde(default)]
    storage: storage::Storage,
    #[serde(default)]
    market: market::Market,
    #[serde(default)]
    training: training::Training,
    #[serde(skip)]
    tree: merkle::AccountsTree,
    /// The sum of all accounts' balances, kept as accounts are written (derived: recounted when a
    /// snapshot is read), so the books are checked after every block without a walk over every
    /// account.
    #[serde(skip)]
    balances: Balances,
}

/// Sums of the accounts' balances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Balances {
    myc: u128,
    musd: u128,
}

impl Balances {
    /// The sums over `accounts`; `None` if they overflow (no valid state's do: they are at most
    /// the supply).
    fn count<'a>(accounts: impl Iterator<Item = &'a Account>) -> Option<Balances> {
        let mut sums = Balances::default();
        for account in accounts {
            sums.myc = sums.myc.checked_add(account.myc)?;
            sums.musd = sums.musd.checked_add(account.musd)?;
        }
        Some(sums)
    }
}

impl State {
    /// The state before the first block. The genesis must already be valid.
    pub fn from_genesis(genesis: &Genesis) -> State {
        let mut accounts = imbl::OrdMap::new();
        let mut supply = Supply::default();
        for a in &genesis.accounts {
            accounts.insert(
                a.address,
                Account {
                    myc: a.myc,
                    musd: a.musd,
                    nonce: 0,
                },
            );
            supply.myc_issued = supply.myc_issued.saturating_add(a.myc);
            supply.musd_issued = supply.musd_issued.saturating_add(a.musd);
        }
        // A valid genesis lists each account once and its supply does not overflow: the balances
        // add up to exactly what was issued.
        let balances = Balances {
            myc: supply.myc_issued,
            musd: supply.musd_issued,
        };
        let state = State {
            params: Params {
                chain_id: genesis.chain_id,
                min_fee: genesis.min_fee,
                max_tx_bytes: genesis.max_tx_bytes,
                storage: genesis.storage.clone(),
                market: genesis.market.clone(),
            },
            accounts,
            supply,
            height: 0,
            last_block_time_ms: genesis.genesis_time_ms,
            payments: payments::Payments::default(),
            subnets: subnets::Subnets::default(),
            sessions: sessions::Sessions::default(),
            agents: agents::Agents::default(),
            jobs: jobs::Jobs::default(),
            allowances: allowances::Allowances::default(),
            storage: storage::Storage::default(),
            market: market::Market::default(),
            training: training::Training::default(),
            tree: merkle::AccountsTree::default(),
            balances,
        };
        state.assert_books_balance();
        state
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn supply(&self) -> &Supply {
        &self.supply
    }

    /// Height of the last applied block (0 before the first).
    pub fn height(&self) -> u64 {
        self.height
    }

    pub fn last_block_time_ms(&self) -> u64 {
        self.last_block_time_ms
    }

    /// The account at `address` (all zero if it never received anything).
    pub fn account(&self, address: &Address) -> Account {
        self.accounts.get(address).copied().unwrap_or_default()
    }

    pub fn next_nonce(&self, address: &Address) -> u64 {
        self.account(address).nonce
    }

    /// EIP-3009 `authorizationState(authorizer, nonce)` of mUSD: true once that authorization
    /// executed (it never can again).
    pub fn authorization_state(&self, authorizer: &Address, nonce: &B256) -> bool {
        self.payments.authorization_state(authorizer, nonce)
    }

    /// The executed EIP-3009 authorizations.
    pub fn payments(&self) -> &payments::Payments {
        &self.payments
    }

    /// The payment channels ([`sessions`]).
    pub fn sessions(&self) -> &sessions::Sessions {
        &self.sessions
    }

    /// The agents and their reputations ([`agents`]).
    pub fn agents(&self) -> &agents::Agents {
        &self.agents
    }

    /// The jobs with escrow ([`jobs`]).
    pub fn jobs(&self) -> &jobs::Jobs {
        &self.jobs
    }

    /// The spend allowances of agent keys ([`allowances`]).
    pub fn allowances(&self) -> &allowances::Allowances {
        &self.allowances
    }

    /// Blob storage: nodes, committees, blobs and the fund ([`storage`]).
    pub fn storage(&self) -> &storage::Storage {
        &self.storage
    }

    /// The compute market: providers, deployments, bids and leases ([`market`]).
    pub fn market(&self) -> &market::Market {
        &self.market
    }

    /// The training runs of subnets ([`training`]).
    pub fn training(&self) -> &training::Training {
        &self.training
    }

    /// Subnet `netuid`'s training run, if one was started.
    pub fn training_run(&self, netuid: u16) -> Option<mycel_types::api::TrainingRun> {
        self.training.run(netuid).cloned()
    }

    /// The payment channel `id`, if it was ever opened.
    pub fn channel(&self, id: &B256) -> Option<sessions::Channel> {
        self.sessions.channel(id).copied()
    }

    /// Number of accounts that hold anything or have sent anything.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// The checks that do not depend on accounts: size, chain id, signature.
    pub fn verify_stateless(&self, tx: SignedTx) -> Result<VerifiedTx, TxError> {
        let encoded = tx.encode();
        let encoded_len = encoded.len();
        if encoded_len > self.params.max_tx_bytes as usize {
            return Err(TxError::TooLarge {
                size: encoded_len,
                max: self.params.max_tx_bytes,
            });
        }
        if tx.chain_id != self.params.chain_id {
            return Err(TxError::WrongChainId {
                expected: self.params.chain_id,
                got: tx.chain_id,
            });
        }
        let from = tx.from();
        if tx.recover_signer() != Some(from) {
            return Err(TxError::BadSignature { from });
        }
        if let TxKind::TransferWithAuthorization(t) = &tx.kind {
            payments::verify_authorization_signature(t, self.params.chain_id)?;
        }
        let hash = alloy_primitives::keccak256(&encoded);
        Ok(VerifiedTx {
            tx,
            sender: from,
            hash,
            encoded_len,
        })
    }

    /// Every check, stateless and stateful, without changing anything. Returns the sender.
    pub fn check_tx(&self, tx: &SignedTx) -> Result<Address, TxError> {
        let verified = self.verify_stateless(tx.clone())?;
        self.check_verified(&verified).map(|_| verified.sender)
    }

    /// The stateful checks (nonce, fee, balances, kind-specific rules) of a transaction whose
    /// stateless checks passed, without changing anything and without recovering its signature
    /// again (recovery is the most expensive step of a transfer).
    pub fn check_verified(&self, tx: &VerifiedTx) -> Result<(), TxError> {
        self.plan(tx).map(|_| ())
    }

    /// Every check of [`check_verified`](Self::check_verified) but the nonce's: the transaction
    /// is checked as if its nonce were the sender's next. Returns what it would take from the
    /// sender's balances if it ran on this state (fee included).
    ///
    /// Why: a mempool holds transactions whose nonce is ahead of the account's next (a client
    /// sends several in a row). Checked only statelessly, they let an account with nothing queue
    /// transactions it could never pay for (an unknown token, an oversized memo, an amount above
    /// its balance); checked this way, they are refused on entry with the same [`TxError`] the
    /// block would give, and the returned [`Spend`] lets the pool make an account's balance
    /// cover everything it queued. Effects of the sender's earlier queued transactions are not
    /// seen: a transaction that needs one (a subnet or channel it creates) waits until that one
    /// is final. A priced kind (a subnet's lock cost, a registration burn) spends the current
    /// price, which the check found within the signed maximum; the maximum itself would refuse
    /// `mycel subnet create`, which signs the whole balance as its maximum.
    pub fn check_ignoring_nonce(&self, tx: &VerifiedTx) -> Result<Spend, TxError> {
        let sender = Account {
            nonce: tx.tx.nonce(),
            ..self.account(&tx.sender)
        };
        let plan = self.plan_from(tx, sender)?;
        let after = plan
            .writes
            .iter()
            .rev()
            .find(|(address, _)| *address == tx.sender)
            .map_or(sender, |(_, account)| *account);
        Ok(Spend {
            myc: sender.myc.saturating_sub(after.myc),
            musd: sender.musd.saturating_sub(after.musd),
        })
    }

    /// Writes an account (and marks its part of the state root for recomputing).
    pub(crate) fn put_account(&mut self, address: Address, account: Account) {
        let old = self.accounts.insert(address, account).unwrap_or_default();
        let sums = &mut self.balances;
        sums.myc = (sums.myc - old.myc)
            .checked_add(account.myc)
            .expect("MYC balances overflow");
        sums.musd = (sums.musd - old.musd)
            .checked_add(account.musd)
            .expect("mUSD balances overflow");
        self.tree.touch(address);
    }

    /// Validates and applies one transaction; an error changes nothing.
    pub fn apply_tx(&mut self, tx: &SignedTx) -> Result<TxReceipt, TxError> {
        let verified = self.verify_stateless(tx.clone())?;
        self.apply_verified(&verified)
    }

    /// Applies a transaction whose stateless checks passed; an error changes nothing.
    pub fn apply_verified(&mut self, tx: &VerifiedTx) -> Result<TxReceipt, TxError> {
        let plan = self.plan(tx)?;
        // Nothing below can fail: every amount was checked by `plan`.
        for (address, account) in &plan.writes {
            self.put_account(*address, *account);
        }
        self.supply.myc_burned += plan.fee;
        if let Some(write) = plan.incentive {
            subnets::apply_write(self, write);
        }
        if let Some(used) = plan.authorization {
            self.payments.record(used);
        }
        if let Some((id, channel)) = plan.channel {
            self.sessions.put(id, channel, tx.hash);
        }
        if let Some(write) = plan.agent {
            self.agents.apply(write, tx.hash);
        }
        if let Some((id, job)) = plan.job {
            self.jobs.put(id, job, tx.hash);
        }
        if let Some((agent, allowance)) = plan.allowance {
            self.allowances.apply(agent, allowance, tx.hash);
        }
        if let Some(write) = plan.storage {
            self.storage.apply(write, tx.hash);
        }
        if let Some(write) = plan.market {
            self.supply.myc_burned += write.burned;
            self.market
                .apply(write, tx.hash, self.height + 1, &self.params.market);
        }
        if let Some(write) = plan.training {
            self.training.apply(write, tx.hash);
        }
        Ok(TxReceipt {
            hash: tx.hash,
            from: tx.sender,
            nonce: tx.tx.nonce(),
            tx_type: tx.tx.kind.type_name().to_string(),
            events: plan.events,
        })
    }

    /// Applies a block: the steps of [`pipeline`], in its order. A transaction that fails is
    /// skipped (it changes nothing); the caller decides whether a block holding one is
    /// acceptable. A block refused as a whole ([`BlockError`]) changes nothing.
    pub fn apply_block(
        &mut self,
        ctx: BlockContext,
        txs: &[VerifiedTx],
    ) -> Result<BlockOutcome, BlockError> {
        pipeline::apply_block(self, ctx, txs)
    }

    /// The authenticated root of the whole state: the accounts' tree ([`merkle`]: the chain
    /// parameters and supply, then every account, bucketed by address) with each other part
    /// folded in.
    pub fn state_root(&mut self) -> B256 {
        let header = merkle::header_leaf(
            &self.params,
            &self.supply,
            self.height,
            self.last_block_time_ms,
        );
        let accounts_root = self.tree.root(header, &self.accounts);
        let root = self.payments.fold_root(accounts_root);
        let root = self.sessions.fold_root(root);
        let root = self.agents.fold_root(root);
        let root = self.jobs.fold_root(root);
        let root = self.allowances.fold_root(root);
        let root = self.storage.fold_root(root);
        let root = self.market.fold_root(root);
        let root = self.training.fold_root(root);
        self.subnets.fold_root(root)
    }

    /// Panics unless every unit is accounted for. Runs after every block.
    pub fn assert_books_balance(&self) {
        self.subnets.assert_alpha_books(self.height);
        // Debug builds (the tests) also walk every account: the running sums must be the sums.
        #[cfg(debug_assertions)]
        assert_eq!(
            Balances::count(self.accounts.values()),
            Some(self.balances),
            "the running balance sums drifted from the accounts"
        );
        let Balances { myc, musd } = self.balances;
        assert_eq!(
            self.supply.myc_issued,
            myc + self.supply.myc_burned
                + self.subnets.myc_held()
                + self.storage.myc_held()
                + self.market.deposits(),
            "books do not balance: MYC issued != balances + burned + pools + storage + market deposits at height {}",
            self.height
        );
        self.storage
            .assert_fund(storage::epoch_of(self.height, &self.params.storage));
        assert_eq!(
            self.supply.musd_issued,
            musd + self.sessions.escrowed() + self.jobs.escrowed() + self.market.escrowed(),
            "books do not balance: mUSD issued != balances + channel escrow + job escrow + market escrow at height {}",
            self.height
        );
    }

    /// The state as bytes, for a node's snapshot file.
    pub fn to_snapshot_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("state serialises")
    }

    /// Reads bytes written by [`to_snapshot_bytes`](Self::to_snapshot_bytes), checking the books.
    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<State, SnapshotError> {
        let mut state: State =
            serde_json::from_slice(bytes).map_err(|e| SnapshotError(e.to_string()))?;
        state.recount_derived()?;
        state.assert_books_balance();
        Ok(state)
    }

    /// Counts again what a snapshot does not store.
    fn recount_derived(&mut self) -> Result<(), SnapshotError> {
        self.market.recount();
        self.sessions.recount();
        self.balances = Balances::count(self.accounts.values())
            .ok_or_else(|| SnapshotError("its balances add up to more than 2^128".into()))?;
        Ok(())
    }

    /// Reads a snapshot that came from a peer, which may lie: it is accepted only if its state
    /// root is `root` (a finalized block's), and only then are the books checked (they balance in
    /// every state the validators finalized).
    pub fn from_peer_snapshot(bytes: &[u8], root: B256) -> Result<State, SnapshotError> {
        let mut state: State =
            serde_json::from_slice(bytes).map_err(|e| SnapshotError(e.to_string()))?;
        let got = state.state_root();
        if got != root {
            return Err(SnapshotError(format!(
                "its state root is {got}, not the finalized block's {root}"
            )));
        }
        state.recount_derived()?;
        state.assert_books_balance();
        Ok(state)
    }

    /// Works out what `tx` would write, without writing it.
    fn plan(&self, tx: &VerifiedTx) -> Result<Plan, TxError> {
        let sender = self.account(&tx.sender);
        let nonce = tx.tx.nonce();
        if nonce < sender.nonce {
            return Err(TxError::StaleNonce {
                expected: sender.nonce,
                got: nonce,
            });
        }
        if nonce > sender.nonce {
            return Err(TxError::FutureNonce {
                expected: sender.nonce,
                got: nonce,
            });
        }
        self.plan_from(tx, sender)
    }

    /// Every check of [`plan`](Self::plan) after the nonce's, with `sender` as the sender's
    /// account.
    fn plan_from(&self, tx: &VerifiedTx, sender: Account) -> Result<Plan, TxError> {
        let fee_u256 = tx.tx.fee();
        let fee =
            u128::try_from(fee_u256).map_err(|_| TxError::AmountTooLarge(fee_u256.to_string()))?;
        if fee < self.params.min_fee {
            return Err(TxError::FeeTooLow {
                min: self.params.min_fee.to_string(),
                got: fee.to_string(),
            });
        }
        let mut payer = sender;
        payer.nonce += 1;
        payer.myc = debit(payer.myc, fee, Token::Myc)?;
        let mut events = Vec::new();
        let mut writes = Vec::with_capacity(2);
        let mut authorization = None;
        let mut incentive = None;
        let mut channel = None;
        let mut agent = None;
        let mut job = None;
        let mut allowance = None;
        let mut storage = None;
        let mut market = None;
        let mut training = None;
        match &tx.tx.kind {
            kind @ (TxKind::RegisterStorageNode(_)
            | TxKind::RegisterBlob(_)
            | TxKind::CertifyBlob(_)
            | TxKind::ExtendBlob(_)
            | TxKind::DeleteBlob(_)
            | TxKind::ReportStorageFailure(_)
            | TxKind::RegisterBatch(_)
            | TxKind::ExtendBatchItem(_)
            | TxKind::DeleteBatchItem(_)) => {
                let planned = storage::plan_tx(self, tx.sender, payer, kind)?;
                writes.extend(planned.writes);
                events.push(Event::Storage(planned.event));
                storage = Some(planned.write);
            }
            kind @ (TxKind::RegisterProvider(_)
            | TxKind::AttestProvider(_)
            | TxKind::CreateDeployment(_)
            | TxKind::PlaceBid(_)
            | TxKind::AcceptBid(_)
            | TxKind::TopUpDeployment(_)
            | TxKind::WithdrawLease(_)
            | TxKind::CloseDeployment(_)
            | TxKind::CloseLease(_)
            | TxKind::SetLeaseEndpoint(_)
            | TxKind::ReportLeaseHealth(_)) => {
                // A delegated key's top-up moves its owner's mUSD, within the grant.
                let delegated = match kind {
                    TxKind::TopUpDeployment(t) => {
                        let owner = self
                            .market
                            .deployment(t.deployment)
                            .map_or(Address::ZERO, |d| d.owner);
                        let value = to_amount(t.amount)?;
                        allowances::delegated_spend(
                            self,
                            tx.sender,
                            "TopUpDeployment",
                            owner,
                            Token::Musd,
                            value,
                        )?
                        .map(|spend| (spend, value))
                    }
                    _ => None,
                };
                let owner = delegated.as_ref().map(|(spend, _)| spend.owner);
                let planned = market::plan_tx(self, tx.sender, payer, kind, owner)?;
                writes.extend(planned.writes);
                events.push(Event::Market(planned.event));
                market = Some(planned.write);
                if let Some((spend, value)) = delegated {
                    events.push(Event::Allowance(AllowanceEvent::Spent {
                        owner: spend.owner,
                        agent: tx.sender,
                        token: Token::Musd,
                        amount: value,
                    }));
                    allowance = Some((tx.sender, Some(spend.allowance)));
                }
            }
            kind @ (TxKind::StartTrainingRun(_)
            | TxKind::CommitTrainingUpdate(_)
            | TxKind::RevealTrainingUpdate(_)
            | TxKind::PublishTrainingCheckpoint(_)) => {
                let planned = training::plan_tx(self, tx.sender, kind)?;
                writes.push((tx.sender, payer));
                events.push(Event::Training(planned.event));
                training = Some(planned.write);
            }
            kind @ (TxKind::GrantAllowance(_) | TxKind::RevokeAllowance(_)) => {
                let (agent, grant) = allowances::plan_tx(self, tx.sender, kind)?;
                writes.push((tx.sender, payer));
                events.push(Event::Allowance(match &grant {
                    Some(_) => AllowanceEvent::Granted {
                        owner: tx.sender,
                        agent,
                    },
                    None => AllowanceEvent::Revoked {
                        owner: tx.sender,
                        agent,
                    },
                }));
                allowance = Some((agent, grant));
            }
            kind @ (TxKind::CreateJob(_)
            | TxKind::SetJobProvider(_)
            | TxKind::SetJobBudget(_)
            | TxKind::FundJob(_)
            | TxKind::SubmitJob(_)
            | TxKind::CompleteJob(_)
            | TxKind::RejectJob(_)
            | TxKind::ClaimJobRefund(_)
            | TxKind::DisputeJob(_)) => {
                let planned = jobs::plan_tx(self, tx.sender, payer, kind)?;
                writes.extend(planned.writes);
                events.push(Event::Job(planned.event));
                job = Some(planned.job);
            }
            kind @ (TxKind::RegisterAgent(_)
            | TxKind::SetAgentURI(_)
            | TxKind::SetAgentMetadata(_)
            | TxKind::SetAgentWallet(_)
            | TxKind::TransferAgent(_)
            | TxKind::ApproveAgent(_)
            | TxKind::SetAgentOperator(_)
            | TxKind::GiveFeedback(_)
            | TxKind::RevokeFeedback(_)
            | TxKind::AppendResponse(_)
            | TxKind::ValidationRequest(_)
            | TxKind::ValidationResponse(_)) => {
                let planned = agents::plan_tx(self, tx.sender, kind)?;
                writes.push((tx.sender, payer));
                events.extend(planned.events.into_iter().map(Event::Agent));
                agent = Some(planned.write);
            }
            kind @ (TxKind::OpenChannel(_)
            | TxKind::TopUpChannel(_)
            | TxKind::ClaimChannel(_)
            | TxKind::RequestChannelWithdraw(_)
            | TxKind::WithdrawChannel(_)) => {
                let planned = sessions::plan_tx(self, tx.sender, payer, kind)?;
                writes.extend(planned.writes);
                events.push(Event::Channel(planned.event));
                channel = Some(planned.channel);
            }
            TxKind::RegisterSubnet(_)
            | TxKind::SetSubnetParams(_)
            | TxKind::BurnedRegister(_)
            | TxKind::ServeEndpoint(_)
            | TxKind::SetWeights(_)
            | TxKind::CommitWeights(_)
            | TxKind::RevealWeights(_)
            | TxKind::AddStake(_)
            | TxKind::RemoveStake(_) => {
                let planned = subnets::plan_tx(self, tx.sender, &tx.tx.kind, payer)?;
                writes.push((tx.sender, planned.payer));
                events.extend(planned.events.into_iter().map(Event::Incentive));
                incentive = Some(planned.write);
            }
            TxKind::Transfer(t) => {
                if t.memo.len() > MAX_MEMO_BYTES {
                    return Err(TxError::MemoTooLarge {
                        size: t.memo.len(),
                        max: MAX_MEMO_BYTES,
                    });
                }
                let token = Token::from_address(&t.token).ok_or(TxError::UnknownToken(t.token))?;
                let amount = to_amount(t.amount)?;
                let delegated =
                    allowances::delegated_spend(self, tx.sender, "Transfer", t.to, token, amount)?;
                let from = match delegated {
                    Some(spend) => {
                        // A delegated key moves its owner's tokens; it pays only its fee.
                        let mut accounts = bank::Touched::new(self, tx.sender, payer);
                        accounts.debit(spend.owner, token, amount)?;
                        accounts.credit(t.to, token, amount)?;
                        writes.extend(accounts.writes());
                        allowance = Some((tx.sender, Some(spend.allowance)));
                        spend.owner
                    }
                    None => {
                        // Check against the balance before the fee, so the error names the real
                        // need.
                        match token {
                            Token::Myc => {
                                let needed = amount
                                    .checked_add(fee)
                                    .ok_or_else(|| TxError::AmountTooLarge(t.amount.to_string()))?;
                                debit(sender.myc, needed, Token::Myc)?;
                                payer.myc -= amount;
                            }
                            Token::Musd => payer.musd = debit(payer.musd, amount, Token::Musd)?,
                        }
                        if t.to == tx.sender {
                            writes.push((tx.sender, bank::credit(payer, token, amount)?));
                        } else {
                            let receiver = bank::credit(self.account(&t.to), token, amount)?;
                            writes.push((tx.sender, payer));
                            writes.push((t.to, receiver));
                        }
                        tx.sender
                    }
                };
                events.push(Event::Transfer {
                    token,
                    from,
                    to: t.to,
                    amount,
                });
                if from != tx.sender {
                    events.push(Event::Allowance(AllowanceEvent::Spent {
                        owner: from,
                        agent: tx.sender,
                        token,
                        amount,
                    }));
                }
            }
            TxKind::TransferWithAuthorization(t) => {
                let planned =
                    payments::plan_transfer_with_authorization(self, tx.sender, payer, t)?;
                writes.extend(planned.writes);
                events.push(planned.event);
                if let Some(spend) = planned.delegated {
                    events.push(Event::Allowance(AllowanceEvent::Spent {
                        owner: spend.owner,
                        agent: t.payer,
                        token: Token::Musd,
                        amount: planned.used.paid.value,
                    }));
                    allowance = Some((t.payer, Some(spend.allowance)));
                }
                events.push(Event::AuthorizationUsed {
                    authorizer: planned.used.authorizer,
                    nonce: planned.used.nonce,
                });
                authorization = Some(planned.used);
            }
        }
        events.push(Event::FeeBurned {
            from: tx.sender,
            amount: fee,
        });
        Ok(Plan {
            writes,
            fee,
            events,
            authorization,
            incentive,
            channel,
            agent,
            job,
            allowance,
            storage,
            market,
            training,
        })
    }
}

/// What a transaction takes from its sender's balances, per token (base units; the fee is in
/// `myc`). A transaction that pays its sender something takes nothing of that token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Spend {
    pub myc: Amount,
    pub musd: Amount,
}

impl Spend {
    /// The two spends together, to total what an account has queued; `None` if a sum overflows
    /// (no balance could cover it).
    pub fn checked_add(self, other: Spend) -> Option<Spend> {
        Some(Spend {
            myc: self.myc.checked_add(other.myc)?,
            musd: self.musd.checked_add(other.musd)?,
        })
    }

    /// The part of this spend in `token`, to compare with [`Account::balance`] of the same token.
    pub fn get(&self, token: Token) -> Amount {
        match token {
            Token::Myc => self.myc,
            Token::Musd => self.musd,
        }
    }
}

struct Plan {
    writes: Vec<(Address, Account)>,
    fee: Amount,
    events: Vec<Event>,
    /// An EIP-3009 authorization to record as used.
    authorization: Option<payments::UsedAuthorization>,
    /// What an incentive-layer transaction writes besides accounts.
    incentive: Option<subnets::IncentiveWrite>,
    /// A payment channel to store ([`sessions`]).
    channel: Option<(B256, sessions::Channel)>,
    /// What an agent transaction writes ([`agents`]).
    agent: Option<agents::AgentWrite>,
    /// A job to store ([`jobs`]).
    job: Option<(u64, jobs::Job)>,
    /// An agent key's grant to store or remove ([`allowances`]).
    allowance: Option<(Address, Option<allowances::Allowance>)>,
    /// A storage node or blob to store ([`storage`]).
    storage: Option<storage::StorageWrite>,
    /// A provider or deployment to store ([`market`]).
    market: Option<market::MarketWrite>,
    /// A subnet's training run to store ([`training`]).
    training: Option<training::TrainingWrite>,
}

fn to_amount(value: U256) -> Result<Amount, TxError> {
    u128::try_from(value).map_err(|_| TxError::AmountTooLarge(value.to_string()))
}

fn debit(balance: Amount, amount: Amount, token: Token) -> Result<Amount, TxError> {
    balance
        .checked_sub(amount)
        .ok_or(TxError::InsufficientBalance {
            token,
            needed: amount.to_string(),
            available: balance.to_string(),
        })
}

/// A snapshot that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state snapshot is unreadable: {0}")]
pub struct SnapshotError(pub String);

#[cfg(test)]
mod test_chain;
#[cfg(test)]
mod tests;
