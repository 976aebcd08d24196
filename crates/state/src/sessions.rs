//! Payment sessions: escrow channels of mUSD paid out by cumulative vouchers.
//!
//! A payer opens a channel to a payee with a deposit; per call it signs a voucher
//! `(channel, cumulative)` — "the payee may take up to `cumulative` in total" — under mUSD's
//! EIP-712 domain; the payee claims the latest voucher now and then with one transaction.
//!
//! Rules:
//! - `OpenChannel` (payer): moves `amount` (> 0) mUSD from the payer into escrow. The id is
//!   `channel_id(payer, payee, salt)`; an id that was ever used is refused (`channel_exists`).
//!   `withdrawDelay` is at most [`MAX_WITHDRAW_DELAY_S`] seconds.
//! - `TopUpChannel` (payer): adds `amount` (> 0) to the deposit of an open channel whose withdraw
//!   was not requested.
//! - `ClaimChannel` (payee): the voucher's signature must recover to the payer; `cumulative` must
//!   be at most the deposit and above what was already claimed; pays the payee the difference.
//!   So the payee is never paid more than the deposit, and an older voucher changes nothing.
//!   A claim works until the channel is closed, also during the withdraw delay.
//! - `RequestChannelWithdraw` (payer): starts the delay, once; the channel may be withdrawn when
//!   the block time (whole seconds) is at least request time + delay.
//! - `WithdrawChannel` (payer): after the delay, returns deposit − claimed to the payer and closes
//!   the channel (it stays in the state, closed, so its id and vouchers are dead forever).
//!
//! Each refusal has its own code; a refused transaction changes nothing. mUSD in open channels
//! (deposit − claimed) is escrow: the books check `mUSD issued = balances + escrow`.
//!
//! State root: `keccak(0x06 ‖ root ‖ d)` once a channel exists, where `d` is the running digest
//! of the transactions that opened or changed a channel, in execution order: `d' = keccak(0x13 ‖ d
//! ‖ tx hash)` (its cost per block does not grow with the number of channels).

use crate::{bank, Account, State, TxError};
use alloy_primitives::{Address, B256, U256};
use mycel_types::{channel_id, genesis::amount_string, Amount, ClaimChannel, Token, TxKind};
use serde::{Deserialize, Serialize};

/// The longest withdraw delay a channel may have: 30 days.
pub const MAX_WITHDRAW_DELAY_S: u64 = 30 * 24 * 3600;

/// One escrow channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub payer: Address,
    pub payee: Address,
    /// Everything the payer put in (base units of mUSD).
    #[serde(with = "amount_string")]
    pub deposit: Amount,
    /// Everything paid to the payee so far.
    #[serde(with = "amount_string")]
    pub claimed: Amount,
    /// Seconds between a withdraw request and the earliest withdraw.
    pub withdraw_delay_s: u64,
    /// Block time (s) from which the payer may withdraw; `None` until a withdraw is requested.
    pub withdraw_at_s: Option<u64>,
    /// Withdrawn: the rest went back to the payer; nothing more can happen.
    pub closed: bool,
}

impl Channel {
    /// mUSD still held in escrow (0 once closed).
    pub fn escrowed(&self) -> Amount {
        if self.closed {
            0
        } else {
            self.deposit - self.claimed
        }
    }
}

/// Why a session transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SessionError {
    #[error("channel {channel} already exists (choose another salt)")]
    ChannelExists { channel: B256 },
    #[error("no channel {channel}")]
    UnknownChannel { channel: B256 },
    #[error("channel {channel} is closed")]
    ChannelClosed { channel: B256 },
    #[error("amount must be above zero")]
    ZeroAmount,
    #[error("withdraw delay {got} s is over the {max} s limit")]
    DelayTooLong { got: u64, max: u64 },
    #[error("{sender} is not the payer {payer} of this channel")]
    NotPayer { sender: Address, payer: Address },
    #[error("{sender} is not the payee {payee} of this channel")]
    NotPayee { sender: Address, payee: Address },
    #[error("voucher signature is malformed: {message}")]
    VoucherBadSignature { message: String },
    #[error("voucher is signed by {recovered}, not by the channel's payer {payer}")]
    VoucherWrongSigner { payer: Address, recovered: Address },
    #[error("voucher for {cumulative} is over the channel's deposit {deposit}")]
    VoucherOverDeposit { cumulative: String, deposit: String },
    #[error("voucher for {cumulative} is not above the {claimed} already claimed")]
    VoucherStale { cumulative: String, claimed: String },
    #[error("a withdraw of this channel was already requested")]
    WithdrawAlreadyRequested,
    #[error("no withdraw of this channel was requested (send RequestChannelWithdraw first)")]
    WithdrawNotRequested,
    #[error("withdraw is possible from block time {at} s; block time is {now} s")]
    WithdrawTooEarly { at: u64, now: u64 },
}

impl SessionError {
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::ChannelExists { .. } => "channel_exists",
            SessionError::UnknownChannel { .. } => "channel_unknown",
            SessionError::ChannelClosed { .. } => "channel_closed",
            SessionError::ZeroAmount => "channel_zero_amount",
            SessionError::DelayTooLong { .. } => "channel_delay_too_long",
            SessionError::NotPayer { .. } => "channel_not_payer",
            SessionError::NotPayee { .. } => "channel_not_payee",
            SessionError::VoucherBadSignature { .. } => "voucher_bad_signature",
            SessionError::VoucherWrongSigner { .. } => "voucher_wrong_signer",
            SessionError::VoucherOverDeposit { .. } => "voucher_over_deposit",
            SessionError::VoucherStale { .. } => "voucher_stale",
            SessionError::WithdrawAlreadyRequested => "channel_withdraw_already_requested",
            SessionError::WithdrawNotRequested => "channel_withdraw_not_requested",
            SessionError::WithdrawTooEarly { .. } => "channel_withdraw_too_early",
        }
    }
}

/// What a session transaction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ChannelEvent {
    Opened {
        channel: B256,
        payer: Address,
        payee: Address,
        #[serde(with = "amount_string")]
        deposit: Amount,
    },
    ToppedUp {
        channel: B256,
        #[serde(with = "amount_string")]
        amount: Amount,
    },
    Claimed {
        channel: B256,
        #[serde(with = "amount_string")]
        paid: Amount,
        #[serde(with = "amount_string")]
        claimed: Amount,
    },
    WithdrawRequested {
        channel: B256,
        withdraw_at_s: u64,
    },
    Withdrawn {
        channel: B256,
        #[serde(with = "amount_string")]
        refunded: Amount,
    },
}

/// Every channel ever opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sessions {
    /// A persistent map: a copy of the state shares it.
    channels: imbl::OrdMap<B256, Channel>,
    /// The digest of every transaction that opened or changed a channel (its part of the state
    /// root costs the same per block however many channels there are).
    #[serde(default)]
    digest: crate::merkle::RunningDigest,
    /// mUSD escrowed by all channels, kept as they change (derived: [`recount`](Self::recount)
    /// after reading a snapshot).
    #[serde(skip)]
    escrowed: Amount,
}

impl Sessions {
    pub fn channel(&self, id: &B256) -> Option<&Channel> {
        self.channels.get(id)
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// mUSD held in escrow by all open channels.
    pub fn escrowed(&self) -> Amount {
        debug_assert_eq!(
            self.escrowed,
            Self::count(&self.channels),
            "channel escrow drifted"
        );
        self.escrowed
    }

    fn count(channels: &imbl::OrdMap<B256, Channel>) -> Amount {
        channels
            .values()
            .map(Channel::escrowed)
            .fold(0u128, |a, b| a.checked_add(b).expect("escrow overflows"))
    }

    /// Counts the escrow again (after loading a snapshot, which does not store it).
    pub(crate) fn recount(&mut self) {
        self.escrowed = Self::count(&self.channels);
    }

    pub(crate) fn put(&mut self, id: B256, channel: Channel, tx_hash: B256) {
        assert!(
            channel.claimed <= channel.deposit,
            "channel {id} over-claimed"
        );
        let before = self.channels.get(&id).map_or(0, Channel::escrowed);
        self.escrowed = (self.escrowed - before)
            .checked_add(channel.escrowed())
            .expect("escrow overflows");
        self.channels.insert(id, channel);
        self.digest.extend(0x13, tx_hash);
    }

    pub(crate) fn fold_root(&self, root: B256) -> B256 {
        self.digest.fold(0x06, root)
    }
}

/// What a session transaction writes.
pub(crate) struct SessionPlan {
    pub(crate) writes: Vec<(Address, Account)>,
    pub(crate) event: ChannelEvent,
    pub(crate) channel: (B256, Channel),
}

fn err(e: SessionError) -> TxError {
    TxError::Session(e)
}

fn amount(value: U256) -> Result<Amount, TxError> {
    let a = u128::try_from(value).map_err(|_| TxError::AmountTooLarge(value.to_string()))?;
    if a == 0 {
        return Err(err(SessionError::ZeroAmount));
    }
    Ok(a)
}

fn open_channel(state: &State, id: &B256) -> Result<Channel, TxError> {
    let c = state
        .sessions()
        .channel(id)
        .copied()
        .ok_or(err(SessionError::UnknownChannel { channel: *id }))?;
    if c.closed {
        return Err(err(SessionError::ChannelClosed { channel: *id }));
    }
    Ok(c)
}

fn payer_of(c: &Channel, sender: Address) -> Result<(), TxError> {
    if c.payer != sender {
        return Err(err(SessionError::NotPayer {
            sender,
            payer: c.payer,
        }));
    }
    Ok(())
}

fn debit_musd(mut account: Account, value: Amount) -> Result<Account, TxError> {
    account.musd = account
        .musd
        .checked_sub(value)
        .ok_or(TxError::InsufficientBalance {
            token: Token::Musd,
            needed: value.to_string(),
            available: account.musd.to_string(),
        })?;
    Ok(account)
}

/// The stateful checks of a session transaction and what it would write. `sender` is the
/// sender's account after its fee and nonce.
pub(crate) fn plan_tx(
    state: &State,
    sender_address: Address,
    sender: Account,
    kind: &TxKind,
) -> Result<SessionPlan, TxError> {
    let now = state.last_block_time_ms() / 1000;
    match kind {
        TxKind::OpenChannel(t) => {
            let id = channel_id(sender_address, t.payee, t.salt);
            if state.sessions().channel(&id).is_some() {
                return Err(err(SessionError::ChannelExists { channel: id }));
            }
            if t.withdrawDelay > MAX_WITHDRAW_DELAY_S {
                return Err(err(SessionError::DelayTooLong {
                    got: t.withdrawDelay,
                    max: MAX_WITHDRAW_DELAY_S,
                }));
            }
            let deposit = amount(t.amount)?;
            let payer = debit_musd(sender, deposit)?;
            Ok(SessionPlan {
                writes: vec![(sender_address, payer)],
                event: ChannelEvent::Opened {
                    channel: id,
                    payer: sender_address,
                    payee: t.payee,
                    deposit,
                },
                channel: (
                    id,
                    Channel {
                        payer: sender_address,
                        payee: t.payee,
                        deposit,
                        claimed: 0,
                        withdraw_delay_s: t.withdrawDelay,
                        withdraw_at_s: None,
                        closed: false,
                    },
                ),
            })
        }
        TxKind::TopUpChannel(t) => {
            let mut c = open_channel(state, &t.channelId)?;
            payer_of(&c, sender_address)?;
            if c.withdraw_at_s.is_some() {
                return Err(err(SessionError::WithdrawAlreadyRequested));
            }
            let value = amount(t.amount)?;
            let payer = debit_musd(sender, value)?;
            c.deposit = c
                .deposit
                .checked_add(value)
                .ok_or_else(|| TxError::AmountTooLarge(t.amount.to_string()))?;
            Ok(SessionPlan {
                writes: vec![(sender_address, payer)],
                event: ChannelEvent::ToppedUp {
                    channel: t.channelId,
                    amount: value,
                },
                channel: (t.channelId, c),
            })
        }
        TxKind::ClaimChannel(t) => plan_claim(state, sender_address, sender, t),
        TxKind::RequestChannelWithdraw(t) => {
            let mut c = open_channel(state, &t.channelId)?;
            payer_of(&c, sender_address)?;
            if c.withdraw_at_s.is_some() {
                return Err(err(SessionError::WithdrawAlreadyRequested));
            }
            let at = now.saturating_add(c.withdraw_delay_s);
            c.withdraw_at_s = Some(at);
            Ok(SessionPlan {
                writes: vec![(sender_address, sender)],
                event: ChannelEvent::WithdrawRequested {
                    channel: t.channelId,
                    withdraw_at_s: at,
                },
                channel: (t.channelId, c),
            })
        }
        TxKind::WithdrawChannel(t) => {
            let mut c = open_channel(state, &t.channelId)?;
            payer_of(&c, sender_address)?;
            let at = c
                .withdraw_at_s
                .ok_or(err(SessionError::WithdrawNotRequested))?;
            if now < at {
                return Err(err(SessionError::WithdrawTooEarly { at, now }));
            }
            let refunded = c.deposit - c.claimed;
            let payer = bank::credit(sender, Token::Musd, refunded)?;
            c.closed = true;
            Ok(SessionPlan {
                writes: vec![(sender_address, payer)],
                event: ChannelEvent::Withdrawn {
                    channel: t.channelId,
                    refunded,
                },
                channel: (t.channelId, c),
            })
        }
        other => unreachable!("{} is not a session transaction", other.type_name()),
    }
}

fn plan_claim(
    state: &State,
    sender_address: Address,
    sender: Account,
    t: &ClaimChannel,
) -> Result<SessionPlan, TxError> {
    let mut c = open_channel(state, &t.channelId)?;
    if c.payee != sender_address {
        return Err(err(SessionError::NotPayee {
            sender: sender_address,
            payee: c.payee,
        }));
    }
    let recovered = t
        .voucher()
        .recover_signer(state.params().chain_id, &t.voucherSignature)
        .map_err(|e| {
            err(SessionError::VoucherBadSignature {
                message: e.to_string(),
            })
        })?;
    if recovered != c.payer {
        return Err(err(SessionError::VoucherWrongSigner {
            payer: c.payer,
            recovered,
        }));
    }
    let over = || {
        err(SessionError::VoucherOverDeposit {
            cumulative: t.cumulative.to_string(),
            deposit: c.deposit.to_string(),
        })
    };
    let cumulative = u128::try_from(t.cumulative).map_err(|_| over())?;
    if cumulative > c.deposit {
        return Err(over());
    }
    if cumulative <= c.claimed {
        return Err(err(SessionError::VoucherStale {
            cumulative: cumulative.to_string(),
            claimed: c.claimed.to_string(),
        }));
    }
    let paid = cumulative - c.claimed;
    let payee = bank::credit(sender, Token::Musd, paid)?;
    c.claimed = cumulative;
    Ok(SessionPlan {
        writes: vec![(sender_address, payee)],
        event: ChannelEvent::Claimed {
            channel: t.channelId,
            paid,
            claimed: cumulative,
        },
        channel: (t.channelId, c),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlockContext, Event};
    use alloy_primitives::Bytes;
    use alloy_signer::SignerSync;
    use alloy_signer_local::PrivateKeySigner;
    use mycel_types::{
        genesis::DEFAULT_MIN_FEE, keys::dev_signer, ChannelVoucher, Genesis, OpenChannel,
        RequestChannelWithdraw, SignedTx, TopUpChannel, WithdrawChannel,
    };
    use proptest::prelude::*;

    const GENESIS_MS: u64 = 1_700_000_000_000;

    static GENESIS: std::sync::LazyLock<Genesis> =
        std::sync::LazyLock::new(|| Genesis::devnet(vec!["ab".repeat(32)], GENESIS_MS).unwrap());
    static SIGNERS: std::sync::LazyLock<Vec<PrivateKeySigner>> =
        std::sync::LazyLock::new(|| (0..4).map(|i| dev_signer(i).unwrap()).collect());

    fn chain_id() -> u64 {
        GENESIS.chain_id
    }

    fn fee() -> U256 {
        U256::from(DEFAULT_MIN_FEE)
    }

    /// A payer (dev key 1), a payee (dev key 2) and a chain that moves block by block.
    struct Fixture {
        state: State,
        payer: PrivateKeySigner,
        payee: PrivateKeySigner,
        time_ms: u64,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                state: State::from_genesis(&GENESIS),
                payer: SIGNERS[1].clone(),
                payee: SIGNERS[2].clone(),
                time_ms: GENESIS_MS,
            }
        }

        fn sign(&self, kind: TxKind, who: &PrivateKeySigner) -> SignedTx {
            SignedTx::sign(kind, chain_id(), who).unwrap()
        }

        fn nonce(&self, who: &PrivateKeySigner) -> u64 {
            self.state.next_nonce(&who.address())
        }

        fn open(&self, amount: u128, delay: u64, salt: u8) -> SignedTx {
            self.sign(
                TxKind::OpenChannel(OpenChannel {
                    from: self.payer.address(),
                    payee: self.payee.address(),
                    amount: U256::from(amount),
                    withdrawDelay: delay,
                    salt: B256::repeat_byte(salt),
                    nonce: self.nonce(&self.payer),
                    fee: fee(),
                }),
                &self.payer,
            )
        }

        fn id(&self, salt: u8) -> B256 {
            channel_id(
                self.payer.address(),
                self.payee.address(),
                B256::repeat_byte(salt),
            )
        }

        fn voucher_sig(&self, signer: &PrivateKeySigner, id: B256, cumulative: u128) -> Bytes {
            let v = ChannelVoucher {
                channel: id,
                cumulative: U256::from(cumulative),
            };
            let sig = signer.sign_hash_sync(&v.signing_hash(chain_id())).unwrap();
            Bytes::from(sig.as_bytes().to_vec())
        }

        fn claim_signed_by(
            &self,
            signer: &PrivateKeySigner,
            submitter: &PrivateKeySigner,
            id: B256,
            cumulative: u128,
        ) -> SignedTx {
            self.sign(
                TxKind::ClaimChannel(ClaimChannel {
                    from: submitter.address(),
                    channelId: id,
                    cumulative: U256::from(cumulative),
                    voucherSignature: self.voucher_sig(signer, id, cumulative),
                    nonce: self.nonce(submitter),
                    fee: fee(),
                }),
                submitter,
            )
        }

        fn claim(&self, id: B256, cumulative: u128) -> SignedTx {
            self.claim_signed_by(&self.payer, &self.payee, id, cumulative)
        }

        fn request(&self, id: B256) -> SignedTx {
            self.sign(
                TxKind::RequestChannelWithdraw(RequestChannelWithdraw {
                    from: self.payer.address(),
                    channelId: id,
                    nonce: self.nonce(&self.payer),
                    fee: fee(),
                }),
                &self.payer,
            )
        }

        fn withdraw(&self, id: B256) -> SignedTx {
            self.sign(
                TxKind::WithdrawChannel(WithdrawChannel {
                    from: self.payer.address(),
                    channelId: id,
                    nonce: self.nonce(&self.payer),
                    fee: fee(),
                }),
                &self.payer,
            )
        }

        fn top_up(&self, id: B256, amount: u128) -> SignedTx {
            self.sign(
                TxKind::TopUpChannel(TopUpChannel {
                    from: self.payer.address(),
                    channelId: id,
                    amount: U256::from(amount),
                    nonce: self.nonce(&self.payer),
                    fee: fee(),
                }),
                &self.payer,
            )
        }

        /// Applies `tx` alone in a block `advance_s` seconds after the previous one.
        fn block(&mut self, advance_s: u64, tx: &SignedTx) -> Result<crate::TxReceipt, TxError> {
            self.time_ms += advance_s * 1000;
            let verified = self.state.verify_stateless(tx.clone())?;
            let height = self.state.height() + 1;
            let outcome = self
                .state
                .apply_block(
                    BlockContext {
                        height,
                        timestamp_ms: self.time_ms,
                    },
                    &[verified],
                )
                .unwrap();
            outcome.results.into_iter().next().unwrap()
        }

        fn ok(&mut self, tx: &SignedTx) -> crate::TxReceipt {
            self.block(1, tx).unwrap()
        }

        /// Expects a refusal that changes nothing, and that the mempool check agrees.
        fn refused(&mut self, tx: &SignedTx) -> &'static str {
            let before = self.state.clone();
            let root = self.state.state_root();
            let err = self.state.apply_tx(tx).expect_err("tx should be refused");
            assert_eq!(self.state, before, "a refused tx changed the state");
            assert_eq!(self.state.state_root(), root);
            assert_eq!(self.state.check_tx(tx), Err(err.clone()));
            err.code()
        }

        fn musd(&self, who: &PrivateKeySigner) -> u128 {
            self.state.account(&who.address()).musd
        }
    }

    #[test]
    fn open_claim_in_batches_then_withdraw_the_rest_after_the_delay() {
        let mut f = Fixture::new();
        let (payer0, payee0) = (f.musd(&f.payer), f.musd(&f.payee));
        let root0 = f.state.state_root();
        let receipt = f.ok(&f.open(1_000_000, 60, 1));
        let id = f.id(1);
        assert!(receipt
            .events
            .contains(&Event::Channel(ChannelEvent::Opened {
                channel: id,
                payer: f.payer.address(),
                payee: f.payee.address(),
                deposit: 1_000_000,
            })));
        assert_ne!(f.state.state_root(), root0);
        assert_eq!(f.musd(&f.payer), payer0 - 1_000_000);
        assert_eq!(f.state.sessions().escrowed(), 1_000_000);

        // Vouchers 1..=20 at 1_000 each; the payee claims the 7th, then the 20th.
        let r = f.ok(&f.claim(id, 7_000));
        assert!(r.events.contains(&Event::Channel(ChannelEvent::Claimed {
            channel: id,
            paid: 7_000,
            claimed: 7_000,
        })));
        f.ok(&f.claim(id, 20_000));
        assert_eq!(f.musd(&f.payee), payee0 + 20_000);
        assert_eq!(f.state.channel(&id).unwrap().claimed, 20_000);
        // An older voucher, or the same one again, changes nothing.
        assert_eq!(f.refused(&f.claim(id, 7_000)), "voucher_stale");
        assert_eq!(f.refused(&f.claim(id, 20_000)), "voucher_stale");

        // Withdraw: not before a request, not before the delay; a claim during the delay works.
        assert_eq!(f.refused(&f.withdraw(id)), "channel_withdraw_not_requested");
        let request_time = (f.time_ms / 1000) + 1;
        let r = f.ok(&f.request(id));
        assert!(r
            .events
            .contains(&Event::Channel(ChannelEvent::WithdrawRequested {
                channel: id,
                withdraw_at_s: request_time + 60,
            })));
        assert_eq!(
            f.refused(&f.request(id)),
            "channel_withdraw_already_requested"
        );
        assert_eq!(
            f.refused(&f.top_up(id, 5)),
            "channel_withdraw_already_requested"
        );
        assert_eq!(
            f.block(30, &f.withdraw(id)).unwrap_err().code(),
            "channel_withdraw_too_early"
        );
        f.ok(&f.claim(id, 25_000));
        // At request time + 59 s: still too early; at + 60 s: allowed.
        f.time_ms = (request_time + 58) * 1000;
        assert_eq!(
            f.block(1, &f.withdraw(id)).unwrap_err().code(),
            "channel_withdraw_too_early"
        );
        let r = f.block(1, &f.withdraw(id)).unwrap();
        assert!(r.events.contains(&Event::Channel(ChannelEvent::Withdrawn {
            channel: id,
            refunded: 975_000,
        })));
        assert_eq!(f.musd(&f.payer), payer0 - 25_000);
        assert_eq!(f.musd(&f.payee), payee0 + 25_000);
        assert_eq!(f.state.sessions().escrowed(), 0);
        assert!(f.state.channel(&id).unwrap().closed);
        // Closed for good: no claim, no second withdraw, no reopening of the same id.
        assert_eq!(f.refused(&f.claim(id, 30_000)), "channel_closed");
        assert_eq!(f.refused(&f.withdraw(id)), "channel_closed");
        assert_eq!(f.refused(&f.open(10, 60, 1)), "channel_exists");
        f.state.assert_books_balance();
    }

    #[test]
    fn refused_session_txs_change_nothing_and_have_their_own_codes() {
        let mut f = Fixture::new();
        let stranger = SIGNERS[3].clone();
        assert_eq!(f.refused(&f.open(0, 60, 1)), "channel_zero_amount");
        assert_eq!(
            f.refused(&f.open(10, MAX_WITHDRAW_DELAY_S + 1, 1)),
            "channel_delay_too_long"
        );
        let payer_musd = f.musd(&f.payer);
        assert_eq!(
            f.refused(&f.open(payer_musd + 1, 60, 1)),
            "insufficient_balance"
        );
        let id = f.id(1);
        assert_eq!(f.refused(&f.claim(id, 1)), "channel_unknown");
        f.ok(&f.open(10_000, 60, 1));
        f.ok(&f.top_up(id, 5_000));
        assert_eq!(f.state.channel(&id).unwrap().deposit, 15_000);
        assert_eq!(f.refused(&f.top_up(id, 0)), "channel_zero_amount");

        assert_eq!(f.refused(&f.claim(id, 15_001)), "voucher_over_deposit");
        // Signed by someone other than the payer, or submitted by someone other than the payee.
        assert_eq!(
            f.refused(&f.claim_signed_by(&stranger, &f.payee, id, 100)),
            "voucher_wrong_signer"
        );
        assert_eq!(
            f.refused(&f.claim_signed_by(&f.payer, &stranger, id, 100)),
            "channel_not_payee"
        );
        // A voucher for another channel does not work on this one.
        let mut tx = f.claim(id, 100);
        if let TxKind::ClaimChannel(c) = &mut tx.kind {
            c.voucherSignature = f.voucher_sig(&f.payer, f.id(2), 100);
        }
        let tx = f.sign(tx.kind, &f.payee);
        assert_eq!(f.refused(&tx), "voucher_wrong_signer");
        let mut tx = f.claim(id, 100);
        if let TxKind::ClaimChannel(c) = &mut tx.kind {
            c.voucherSignature = Bytes::from(vec![1u8; 64]);
        }
        let tx = f.sign(tx.kind, &f.payee);
        assert_eq!(f.refused(&tx), "voucher_bad_signature");
        // Only the payer requests or withdraws or tops up.
        for kind in [
            TxKind::RequestChannelWithdraw(RequestChannelWithdraw {
                from: stranger.address(),
                channelId: id,
                nonce: 0,
                fee: fee(),
            }),
            TxKind::WithdrawChannel(WithdrawChannel {
                from: stranger.address(),
                channelId: id,
                nonce: 0,
                fee: fee(),
            }),
            TxKind::TopUpChannel(TopUpChannel {
                from: stranger.address(),
                channelId: id,
                amount: U256::from(1),
                nonce: 0,
                fee: fee(),
            }),
        ] {
            let tx = f.sign(kind, &stranger);
            assert_eq!(f.refused(&tx), "channel_not_payer");
        }
        // A voucher signed for another chain recovers someone else.
        let v = ChannelVoucher {
            channel: id,
            cumulative: U256::from(100),
        };
        let sig = f.payer.sign_hash_sync(&v.signing_hash(1)).unwrap();
        let tx = f.sign(
            TxKind::ClaimChannel(ClaimChannel {
                from: f.payee.address(),
                channelId: id,
                cumulative: U256::from(100),
                voucherSignature: Bytes::from(sig.as_bytes().to_vec()),
                nonce: f.nonce(&f.payee),
                fee: fee(),
            }),
            &f.payee,
        );
        assert_eq!(f.refused(&tx), "voucher_wrong_signer");
        f.ok(&f.claim(id, 100));
        f.state.assert_books_balance();
    }

    #[test]
    fn every_refusal_survives_json_as_a_block_outcome_carries_it() {
        let id = B256::repeat_byte(1);
        for e in [
            SessionError::ChannelExists { channel: id },
            SessionError::UnknownChannel { channel: id },
            SessionError::ChannelClosed { channel: id },
            SessionError::ZeroAmount,
            SessionError::DelayTooLong { got: 1, max: 0 },
            SessionError::NotPayer {
                sender: Address::ZERO,
                payer: Address::ZERO,
            },
            SessionError::NotPayee {
                sender: Address::ZERO,
                payee: Address::ZERO,
            },
            SessionError::VoucherBadSignature {
                message: "x".into(),
            },
            SessionError::VoucherWrongSigner {
                payer: Address::ZERO,
                recovered: Address::ZERO,
            },
            SessionError::VoucherOverDeposit {
                cumulative: "2".into(),
                deposit: "1".into(),
            },
            SessionError::VoucherStale {
                cumulative: "1".into(),
                claimed: "1".into(),
            },
            SessionError::WithdrawAlreadyRequested,
            SessionError::WithdrawNotRequested,
            SessionError::WithdrawTooEarly { at: 2, now: 1 },
        ] {
            let tx_error = TxError::Session(e);
            let json = serde_json::to_string(&tx_error).unwrap();
            let back: TxError = serde_json::from_str(&json).unwrap();
            assert_eq!(back, tx_error, "{json}");
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Claim(u128),
        TopUp(u128),
        Request,
        Withdraw,
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u128..40_000).prop_map(Op::Claim),
            1 => (0u128..10_000).prop_map(Op::TopUp),
            1 => Just(Op::Request),
            1 => Just(Op::Withdraw),
            1 => (0u64..100).prop_map(Op::Wait),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever the order of claims (older, newer, over the deposit), top-ups, withdraw
        /// requests and withdraws: the payee never gets more than was deposited, it gets exactly
        /// the highest accepted voucher, a refused tx changes nothing, and the books balance
        /// after every block.
        #[test]
        fn channel_never_pays_out_more_than_deposited(
            deposit in 1u128..30_000,
            delay in 0u64..120,
            ops in proptest::collection::vec(op(), 1..24),
        ) {
            let mut f = Fixture::new();
            let (payer0, payee0) = (f.musd(&f.payer), f.musd(&f.payee));
            f.ok(&f.open(deposit, delay, 9));
            let id = f.id(9);
            let mut deposited = deposit;
            let mut best = 0u128;
            for op in ops {
                let tx = match op {
                    Op::Claim(c) => f.claim(id, c),
                    Op::TopUp(a) => f.top_up(id, a),
                    Op::Request => f.request(id),
                    Op::Withdraw => f.withdraw(id),
                    Op::Wait(s) => { f.time_ms += s * 1000; continue; }
                };
                let before = f.state.clone();
                match f.block(1, &tx) {
                    Ok(_) => {
                        match op {
                            Op::Claim(c) => {
                                prop_assert!(c > best && c <= deposited);
                                best = c;
                            }
                            Op::TopUp(a) => deposited += a,
                            _ => {}
                        }
                    }
                    Err(_) => {
                        // Only the block's height and time moved.
                        let mut expected = before.clone();
                        expected.height = f.state.height();
                        expected.last_block_time_ms = f.state.last_block_time_ms();
                        prop_assert_eq!(&f.state.accounts, &expected.accounts);
                        prop_assert_eq!(&f.state.sessions, &expected.sessions);
                    }
                }
                let c = f.state.channel(&id).unwrap();
                prop_assert_eq!(c.claimed, best);
                prop_assert_eq!(c.deposit, deposited);
                prop_assert!(c.claimed <= c.deposit);
                prop_assert_eq!(f.musd(&f.payee), payee0 + best);
                let refunded = if c.closed { deposited - best } else { 0 };
                prop_assert_eq!(f.musd(&f.payer), payer0 - deposited + refunded);
                f.state.assert_books_balance();
            }
        }
    }
}
