//! The finalized ledger: the state after the last finalized block, the index of finalized
//! transactions, and the public views of them (no consensus types here).

use mycel_state::{Event, State, TxError, TxReceipt};
use mycel_types::{api, Address, SignedTx, TxJson, B256};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a finalized transaction did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxOutcome {
    /// Applied; the receipt lists its effects.
    Success { receipt: TxReceipt },
    /// Included but changed nothing (mycel's block rules do not admit these today).
    Failed { code: String, error: String },
}

impl From<Result<TxReceipt, TxError>> for TxOutcome {
    fn from(result: Result<TxReceipt, TxError>) -> Self {
        match result {
            Ok(receipt) => TxOutcome::Success { receipt },
            Err(err) => TxOutcome::Failed {
                code: err.code().to_string(),
                error: err.to_string(),
            },
        }
    }
}

/// Where a transaction ended up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxStatus {
    /// In this node's mempool, waiting for a block.
    Pending,
    /// In the finalized block at `height`, position `index`.
    Finalized {
        height: u64,
        index: u32,
        result: TxOutcome,
    },
    /// Refused on entry or dropped from the mempool later: `code` is the refusal's code, or
    /// `evicted` / `expired` / the code of the check it failed after entering.
    Rejected { code: String, reason: String },
    /// Never seen by this node (or forgotten after a restart, if it was never finalized).
    Unknown,
}

/// One transaction of a finalized block.
#[derive(Clone, Debug, Serialize)]
pub struct TxView {
    pub hash: B256,
    pub index: u32,
    pub tx: TxJson,
    pub result: Option<TxOutcome>,
}

/// A finalized block as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct BlockView {
    pub height: u64,
    pub hash: B256,
    pub parent: B256,
    pub timestamp_ms: u64,
    pub state_root: B256,
    /// The consensus leader that proposed it (ed25519 public key, hex); none for genesis.
    pub proposer: Option<String>,
    /// The consensus view it was proposed in.
    pub view: u64,
    pub txs: Vec<TxView>,
}

/// Node and chain summary.
#[derive(Clone, Debug, Serialize)]
pub struct ChainStatus {
    pub chain_id: u64,
    pub genesis_hash: B256,
    pub latest_height: u64,
    pub latest_hash: B256,
    pub latest_timestamp_ms: u64,
    pub state_root: B256,
    /// The validator set (ed25519 public keys, hex).
    pub validators: Vec<String>,
    /// This node's validator key (hex).
    pub node_key: String,
    pub mempool_size: usize,
}

/// Location and result of a finalized transaction (persisted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
    pub result: TxOutcome,
}

/// The receipts of one finalized block, as persisted in the receipt journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockReceipts {
    pub height: u64,
    pub block_hash: B256,
    /// The block's time (0 in receipts journaled before it was kept).
    #[serde(default)]
    pub timestamp_ms: u64,
    pub txs: Vec<(B256, TxLocation)>,
}

/// Metadata of the finalized tip (persisted next to the state snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TipMeta {
    pub height: u64,
    pub hash: B256,
    pub timestamp_ms: u64,
    pub state_root: B256,
    /// Number of entries in the receipt journal that belong to blocks up to `height`.
    pub receipts_len: u64,
    /// Entries in the emission journals (every block's emission receipt; epoch blocks' receipts)
    /// up to `height`.
    #[serde(default)]
    pub emission_len: u64,
    #[serde(default)]
    pub epochs_len: u64,
}

/// The finalized ledger.
#[derive(Debug)]
pub struct Ledger {
    pub state: State,
    pub tip: TipMeta,
    pub tx_index: HashMap<B256, TxLocation>,
    /// Per agent, the finalized transactions that did something to it, oldest first.
    pub agent_index: BTreeMap<u64, Vec<B256>>,
    /// Emission receipts and epoch payouts of recent blocks.
    pub emission: crate::EmissionHistory,
    /// Per address, the finalized transactions it sent or that paid it, oldest first.
    pub account_index: HashMap<Address, Vec<B256>>,
    /// Every mUSD payment (x402 settlements, channel deposits, claims and refunds, job payouts),
    /// oldest first.
    pub payments: Vec<api::Payment>,
}

impl Ledger {
    /// A ledger at `tip` with no indexed transactions.
    pub fn new(state: State, tip: TipMeta) -> Ledger {
        Ledger {
            state,
            tip,
            tx_index: HashMap::new(),
            agent_index: BTreeMap::new(),
            emission: crate::EmissionHistory::default(),
            account_index: HashMap::new(),
            payments: Vec::new(),
        }
    }

    /// The finalized transactions that did something to agent `id`, oldest first.
    pub fn agent_txs(&self, id: u64) -> &[B256] {
        self.agent_index.get(&id).map_or(&[], Vec::as_slice)
    }

    /// The emission receipt of the block just applied at `height`, if it made one.
    pub fn emission_receipt(state: &State, height: u64) -> Option<api::EmissionReceipt> {
        state
            .latest_emission_receipt()
            .filter(|r| r.height == height)
            .map(Into::into)
    }

    /// Indexes the addresses an applied transaction touched and the payments it made.
    fn index_account_and_payments(
        &mut self,
        hash: B256,
        (height, timestamp_ms): (u64, u64),
        receipt: &TxReceipt,
    ) {
        use mycel_state::sessions::ChannelEvent as C;
        let mut touched: BTreeSet<Address> = BTreeSet::from([receipt.from]);
        let payment = |kind, payer, payee, amount| api::Payment {
            hash,
            height,
            timestamp_ms,
            kind,
            payer,
            payee,
            amount,
            channel: None,
            job_id: None,
        };
        let authorized = receipt
            .events
            .iter()
            .any(|e| matches!(e, Event::AuthorizationUsed { .. }));
        for event in &receipt.events {
            match event {
                Event::Transfer {
                    token,
                    from,
                    to,
                    amount,
                } => {
                    touched.insert(*from);
                    touched.insert(*to);
                    if authorized && *token == mycel_types::Token::Musd {
                        self.payments.push(payment(
                            api::PaymentKind::X402,
                            Some(*from),
                            Some(*to),
                            *amount,
                        ));
                    }
                }
                Event::Channel(c) => {
                    let (kind, channel, amount) = match c {
                        C::Opened {
                            channel, deposit, ..
                        } => (api::PaymentKind::SessionOpened, channel, *deposit),
                        C::ToppedUp { channel, amount } => {
                            (api::PaymentKind::SessionToppedUp, channel, *amount)
                        }
                        C::Claimed { channel, paid, .. } => {
                            (api::PaymentKind::SessionClaimed, channel, *paid)
                        }
                        C::Withdrawn { channel, refunded } => {
                            (api::PaymentKind::SessionRefunded, channel, *refunded)
                        }
                        C::WithdrawRequested { .. } => continue,
                    };
                    let parties = self.state.channel(channel);
                    let (payer, payee) = match (kind, parties) {
                        (api::PaymentKind::SessionRefunded, Some(c)) => {
                            (Some(c.payee), Some(c.payer))
                        }
                        (_, Some(c)) => (Some(c.payer), Some(c.payee)),
                        (_, None) => (None, None),
                    };
                    touched.extend(payer.into_iter().chain(payee));
                    self.payments.push(api::Payment {
                        channel: Some(*channel),
                        ..payment(kind, payer, payee, amount)
                    });
                }
                Event::Job(api::JobEvent::Completed { job_id, paid, .. }) => {
                    let job = self.state.jobs().job(*job_id);
                    let (payer, payee) = (job.map(|j| j.client), job.and_then(|j| j.provider));
                    touched.extend(payee);
                    self.payments.push(api::Payment {
                        job_id: Some(*job_id),
                        ..payment(api::PaymentKind::JobPaid, payer, payee, *paid)
                    });
                }
                _ => {}
            }
        }
        for address in touched {
            self.account_index.entry(address).or_default().push(hash);
        }
    }

    pub fn tx_location(&self, hash: &B256) -> Option<&TxLocation> {
        self.tx_index.get(hash)
    }

    pub fn index_block(&mut self, receipts: &BlockReceipts) {
        for (hash, location) in &receipts.txs {
            if let TxOutcome::Success { receipt } = &location.result {
                self.index_account_and_payments(
                    *hash,
                    (receipts.height, receipts.timestamp_ms),
                    receipt,
                );
                let agents: BTreeSet<u64> = receipt
                    .events
                    .iter()
                    .filter_map(|e| match e {
                        Event::Agent(a) => a.agent_id(),
                        _ => None,
                    })
                    .collect();
                for id in agents {
                    self.agent_index.entry(id).or_default().push(*hash);
                }
            }
            self.tx_index.insert(*hash, location.clone());
        }
    }
}

/// Decodes a block's transactions for display (undecodable ones are skipped; finalized blocks
/// never hold any).
pub(crate) fn tx_views(
    encoded: impl Iterator<Item = impl AsRef<[u8]>>,
    ledger: &Ledger,
) -> Vec<TxView> {
    encoded
        .enumerate()
        .filter_map(|(index, bytes)| {
            let tx = SignedTx::decode(bytes.as_ref()).ok()?;
            let hash = tx.hash();
            Some(TxView {
                hash,
                index: index as u32,
                tx: tx.to_json(),
                result: ledger.tx_location(&hash).map(|l| l.result.clone()),
            })
        })
        .collect()
}
