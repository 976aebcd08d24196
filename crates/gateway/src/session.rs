//! The session book: the channels that pay the gateway with cumulative vouchers on an escrow
//! channel (docs/payments.md, "Sessions"), and their claims on chain. The paywall reaches it
//! through the session scheme ([`crate::scheme::session`]); the book knows no HTTP.
//!
//! The client opens a channel (`OpenChannel`) to the gateway's pay-to address, then sends per call
//! `X-MYCEL-SESSION: base64(JSON {"channel", "cumulative", "signature"})`: its EIP-712 signature
//! of `ChannelVoucher(channel, cumulative)` under mUSD's domain. The gateway accepts a voucher when
//! the channel is open, pays its pay-to address, has no withdraw pending, the signature recovers
//! to the channel's payer, and `cumulative ≥ previous + price` and `≤ deposit`. It serves, then
//! keeps the voucher (in memory and in a JSON file, so a restart loses nothing) and claims the
//! latest voucher of each channel in batches with one `ClaimChannel` per channel.
//!
//! Contract: a voucher is counted only when its request succeeded (a failed handler releases it);
//! two requests can never be paid by the same voucher range (each reserves its range before it is
//! served). Refusals are 402 with a reason code (`session_*`).

use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_client::api::code;
use mycel_client::{NodeClient, Outcome};
use mycel_types::{Amount, ChannelVoucher, ClaimChannel, SignedTx, TxKind};
use serde::{Deserialize, Serialize};
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::Mutex,
    time::{Duration, Instant},
};

pub use mycel_types::x402::{SessionVoucher, SESSION_HEADER, SESSION_RESPONSE_HEADER};

/// Why a voucher was refused (a 402 with `code()`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefusal {
    #[error(
        "the X-MYCEL-SESSION header is not base64 JSON {{channel, cumulative, signature}}: {0}"
    )]
    Malformed(String),
    #[error("no open channel {0} on chain")]
    UnknownChannel(B256),
    #[error("channel {0} pays {1}, not this gateway")]
    WrongPayee(B256, Address),
    #[error("channel {0} is closed or has a withdraw pending; open a new one")]
    Closing(B256),
    #[error("voucher signature does not recover to the channel's payer {0}")]
    BadSignature(Address),
    #[error("voucher for {cumulative} is over the channel's deposit {deposit}")]
    OverDeposit { cumulative: Amount, deposit: Amount },
    #[error("voucher for {cumulative} is below the {needed} needed (previous {previous} + price {price})")]
    TooLow {
        cumulative: Amount,
        needed: Amount,
        previous: Amount,
        price: Amount,
    },
    #[error("the chain could not be asked about the channel: {0}")]
    Chain(String),
}

impl SessionRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            SessionRefusal::Malformed(_) => "session_malformed",
            SessionRefusal::UnknownChannel(_) => "session_unknown_channel",
            SessionRefusal::WrongPayee(..) => "session_wrong_payee",
            SessionRefusal::Closing(_) => "session_channel_closing",
            SessionRefusal::BadSignature(_) => "session_bad_signature",
            SessionRefusal::OverDeposit { .. } => "session_over_deposit",
            SessionRefusal::TooLow { .. } => "session_voucher_too_low",
            SessionRefusal::Chain(_) => "session_chain_unreachable",
        }
    }
}

/// What the gateway knows of one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChannelBook {
    payer: Address,
    deposit: Amount,
    /// The highest voucher whose request succeeded, and its signature.
    accepted: Amount,
    signature: String,
    /// The highest cumulative reserved by a request in progress or accepted.
    #[serde(skip)]
    reserved: Amount,
    /// What the chain has paid so far.
    claimed: Amount,
    /// Vouchers accepted since the last claim.
    #[serde(default)]
    unclaimed_vouchers: u64,
}

/// A voucher that passed the checks and reserved its range; give it to
/// [`SessionBook::commit`] once served or [`SessionBook::release`] if serving failed.
#[derive(Debug, Clone)]
pub struct Reserved {
    pub channel: B256,
    pub cumulative: Amount,
    pub price: Amount,
    signature: String,
}

/// The gateway's session book: every channel that paid it, with its latest voucher.
pub struct SessionBook {
    node: NodeClient,
    payee: PrivateKeySigner,
    chain_id: u64,
    fee: Amount,
    file: PathBuf,
    channels: Mutex<BTreeMap<B256, ChannelBook>>,
    /// Version of the book's content (bumped under the `channels` lock), the last version written
    /// to the file, and the writer's turn (requests waiting for it find their version written by
    /// an earlier turn: one file write serves every request that arrived meanwhile).
    version: std::sync::atomic::AtomicU64,
    persisted: std::sync::atomic::AtomicU64,
    writer: tokio::sync::Mutex<()>,
    /// Claim once this many vouchers are unclaimed…
    pub claim_every_vouchers: u64,
    /// …or this long after the last claim.
    pub claim_every: Duration,
    last_claim: Mutex<Instant>,
    claiming: tokio::sync::Mutex<()>,
}

impl SessionBook {
    /// A book for channels paying `payee` (the gateway's pay-to key, which signs the claims),
    /// persisted in `file` (read back if it exists).
    pub fn open(
        node: NodeClient,
        payee: PrivateKeySigner,
        chain_id: u64,
        fee: Amount,
        file: PathBuf,
    ) -> Result<SessionBook, String> {
        let channels = match std::fs::read(&file) {
            Ok(bytes) => {
                let mut map: BTreeMap<B256, ChannelBook> = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("session file {} is unreadable: {e}", file.display()))?;
                for c in map.values_mut() {
                    c.reserved = c.accepted;
                }
                map
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        Ok(SessionBook {
            node,
            payee,
            chain_id,
            fee,
            file,
            channels: Mutex::new(channels),
            version: std::sync::atomic::AtomicU64::new(0),
            persisted: std::sync::atomic::AtomicU64::new(0),
            writer: tokio::sync::Mutex::new(()),
            claim_every_vouchers: 100,
            claim_every: Duration::from_secs(30),
            last_claim: Mutex::new(Instant::now()),
            claiming: tokio::sync::Mutex::new(()),
        })
    }

    pub fn payee(&self) -> Address {
        self.payee.address()
    }

    /// The highest accepted voucher and the claimed amount of `channel`, if it ever paid.
    pub fn channel(&self, channel: &B256) -> Option<(Amount, Amount)> {
        let map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        map.get(channel).map(|c| (c.accepted, c.claimed))
    }

    /// Checks a header value against `price` and reserves its range.
    pub async fn reserve(&self, header: &str, price: Amount) -> Result<Reserved, SessionRefusal> {
        let json = crate::wire::decode_header_json(header)
            .map_err(|e| SessionRefusal::Malformed(e.to_string()))?;
        let voucher: SessionVoucher =
            serde_json::from_value(json).map_err(|e| SessionRefusal::Malformed(e.to_string()))?;
        let cumulative: Amount = voucher.cumulative.parse().map_err(|_| {
            SessionRefusal::Malformed(format!(
                "cumulative '{}' is not a decimal amount",
                voucher.cumulative
            ))
        })?;
        let signature = hex::decode(voucher.signature.trim_start_matches("0x"))
            .map_err(|e| SessionRefusal::Malformed(format!("signature is not hex: {e}")))?;
        let known = {
            let map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            map.get(&voucher.channel).map(|c| c.payer)
        };
        let payer = match known {
            Some(p) => p,
            None => self.learn(voucher.channel).await?,
        };
        let recovered = ChannelVoucher {
            channel: voucher.channel,
            cumulative: U256::from(cumulative),
        }
        .recover_signer(self.chain_id, &signature)
        .map_err(|_| SessionRefusal::BadSignature(payer))?;
        if recovered != payer {
            return Err(SessionRefusal::BadSignature(payer));
        }
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let c = map
            .get_mut(&voucher.channel)
            .ok_or(SessionRefusal::UnknownChannel(voucher.channel))?;
        if cumulative > c.deposit {
            return Err(SessionRefusal::OverDeposit {
                cumulative,
                deposit: c.deposit,
            });
        }
        let needed = c.reserved.saturating_add(price);
        if cumulative < needed {
            return Err(SessionRefusal::TooLow {
                cumulative,
                needed,
                previous: c.reserved,
                price,
            });
        }
        c.reserved = cumulative;
        Ok(Reserved {
            channel: voucher.channel,
            cumulative,
            price,
            signature: voucher.signature,
        })
    }

    /// The request was served: the voucher counts, and is written to the file before this returns.
    pub async fn commit(&self, r: &Reserved) {
        let version = {
            let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            let Some(c) = map.get_mut(&r.channel) else {
                return;
            };
            if r.cumulative > c.accepted {
                c.accepted = r.cumulative;
                c.signature = r.signature.clone();
            }
            c.unclaimed_vouchers += 1;
            self.bump()
        };
        self.persist(version).await;
    }

    /// Serving failed: the range is free again if no later voucher reserved after it.
    pub fn release(&self, r: &Reserved) {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get_mut(&r.channel) {
            if c.reserved == r.cumulative {
                c.reserved = c.accepted;
            }
        }
    }

    /// True when a batch is due (enough vouchers, or enough time since the last claim).
    pub fn claim_due(&self) -> bool {
        let map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let pending: u64 = map
            .values()
            .filter(|c| c.accepted > c.claimed)
            .map(|c| c.unclaimed_vouchers)
            .sum();
        drop(map);
        pending >= self.claim_every_vouchers
            || (pending > 0
                && self
                    .last_claim
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .elapsed()
                    >= self.claim_every)
    }

    /// Claims the latest voucher of every channel with something unclaimed, one `ClaimChannel`
    /// each, and waits until they are final. Returns how much was claimed.
    pub async fn claim_now(&self) -> Result<Amount, String> {
        let _one_at_a_time = self.claiming.lock().await;
        *self.last_claim.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let due: Vec<(B256, Amount, String)> = {
            let map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            map.iter()
                .filter(|(_, c)| c.accepted > c.claimed)
                .map(|(id, c)| (*id, c.accepted, c.signature.clone()))
                .collect()
        };
        let mut total = 0;
        for (id, cumulative, signature) in due {
            let account = self
                .node
                .account(self.payee.address())
                .await
                .map_err(|e| e.to_string())?;
            let kind = TxKind::ClaimChannel(ClaimChannel {
                from: self.payee.address(),
                channelId: id,
                cumulative: U256::from(cumulative),
                voucherSignature: Bytes::from(
                    hex::decode(signature.trim_start_matches("0x")).map_err(|e| e.to_string())?,
                ),
                nonce: account.next_nonce,
                fee: U256::from(self.fee),
            });
            let tx = SignedTx::sign(kind, self.chain_id, &self.payee).map_err(|e| e.to_string())?;
            let outcome = self
                .node
                .submit_and_wait(&tx, Duration::from_secs(60))
                .await
                .map_err(|e| e.to_string())?;
            match outcome {
                Outcome::Applied(_) => {}
                Outcome::Failed { error, .. } => {
                    return Err(format!(
                        "claim of {id} failed: {}: {}",
                        error.code, error.message
                    ))
                }
                Outcome::Rejected { error, .. } => {
                    return Err(format!("claim of {id} rejected: {error}"))
                }
                Outcome::TimedOut { hash, .. } => {
                    return Err(format!("claim {hash} of {id} not final after 60 s"))
                }
            }
            let version = {
                let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(c) = map.get_mut(&id) {
                    total += cumulative.saturating_sub(c.claimed);
                    c.claimed = c.claimed.max(cumulative);
                    if c.accepted == cumulative {
                        c.unclaimed_vouchers = 0;
                    }
                }
                self.bump()
            };
            self.persist(version).await;
        }
        Ok(total)
    }

    /// Runs forever: claims whenever a batch is due (checked every `tick`).
    pub async fn claim_loop(self: std::sync::Arc<Self>, tick: Duration) {
        loop {
            tokio::time::sleep(tick).await;
            if self.claim_due() {
                if let Err(e) = self.claim_now().await {
                    tracing::warn!("session claim failed (retried at the next batch): {e}");
                }
            }
        }
    }

    /// Reads the channel from the chain and adds it to the book.
    async fn learn(&self, id: B256) -> Result<Address, SessionRefusal> {
        let channel = match self.node.channel(id).await {
            Ok(channel) => channel,
            Err(e) if e.is_code(code::UNKNOWN_CHANNEL) => {
                return Err(SessionRefusal::UnknownChannel(id))
            }
            Err(e) => return Err(SessionRefusal::Chain(e.to_string())),
        };
        let (payer, deposit, claimed) = (channel.payer, channel.deposit, channel.claimed);
        if channel.payee != self.payee.address() {
            return Err(SessionRefusal::WrongPayee(id, channel.payee));
        }
        if !channel.is_open() {
            return Err(SessionRefusal::Closing(id));
        }
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let c = map.entry(id).or_insert(ChannelBook {
            payer,
            deposit,
            accepted: claimed,
            signature: String::new(),
            reserved: claimed,
            claimed,
            unclaimed_vouchers: 0,
        });
        Ok(c.payer)
    }

    /// Marks a change (call with the `channels` lock held); returns its version.
    fn bump(&self) -> u64 {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// Returns once the file holds version `version` of the book or a later one (write to a
    /// temporary file, then rename, so the file is always a whole book).
    async fn persist(&self, version: u64) {
        use std::sync::atomic::Ordering;
        let _turn = self.writer.lock().await;
        if self.persisted.load(Ordering::SeqCst) >= version {
            return;
        }
        let (latest, bytes) = {
            let map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            (
                self.version.load(Ordering::SeqCst),
                serde_json::to_vec(&*map).expect("the book serialises"),
            )
        };
        let tmp = self.file.with_extension("tmp");
        let result = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, &self.file));
        match result {
            Ok(()) => self.persisted.store(latest, Ordering::SeqCst),
            Err(e) => {
                tracing::error!("cannot write the session book {}: {e}", self.file.display())
            }
        }
    }
}

impl std::fmt::Debug for SessionBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionBook")
            .field("payee", &self.payee.address())
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}
