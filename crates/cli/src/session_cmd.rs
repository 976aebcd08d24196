//! `mycel session`: pay a gateway per call from an escrow channel (docs/payments.md, "Sessions").
//!
//! `open` deposits mUSD into a channel to the gateway's pay-to address and prints the channel id;
//! `voucher` signs the cumulative voucher of a call and prints the `X-MYCEL-SESSION` header value;
//! `show` reads the channel from the chain; `close` starts the withdraw delay and `withdraw` takes
//! back the unclaimed rest after it. Transactions are signed here and followed until finalized.

use crate::client::{connect, print_json, ClientArgs};
use crate::send::{self, SendArgs, Sent};
use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use mycel_gateway::SessionVoucher;
use mycel_types::{
    channel_id, format_amount, parse_amount, Amount, OpenChannel, RequestChannelWithdraw, Token,
    TopUpChannel, TxKind, WithdrawChannel,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Open a channel: deposit mUSD for a payee (a gateway's pay-to address); prints its id.
    Open(OpenArgs),
    /// Add mUSD to an open channel (not after `close`).
    TopUp(TopUpArgs),
    /// Sign the voucher "the payee may take up to CUMULATIVE mUSD in total" and print the
    /// X-MYCEL-SESSION header value for it.
    Voucher(VoucherArgs),
    /// Show a channel as the chain has it.
    Show(ShowArgs),
    /// Start the withdraw delay of a channel (the payee can still claim during it).
    Close(ChannelTxArgs),
    /// After the delay, take back the unclaimed rest of a channel (closes it).
    Withdraw(ChannelTxArgs),
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// Who is paid: the gateway's pay-to address.
    #[arg(long, value_name = "ADDRESS")]
    pub to: Address,
    /// Deposit, in mUSD (e.g. 1.5).
    #[arg(long, value_name = "MUSD")]
    pub amount: String,
    /// Seconds between `close` and the earliest `withdraw` (at most 30 days).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub delay: u64,
    /// 32-byte 0x-hex salt that makes the channel id unique [default: random].
    #[arg(long, value_name = "HEX")]
    pub salt: Option<B256>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TopUpArgs {
    #[arg(long, value_name = "ID")]
    pub channel: B256,
    /// Amount to add, in mUSD.
    #[arg(long, value_name = "MUSD")]
    pub amount: String,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct VoucherArgs {
    #[arg(long, value_name = "ID")]
    pub channel: B256,
    /// Total the payee may take so far, in mUSD (previous voucher + this call's price).
    #[arg(long, value_name = "MUSD")]
    pub cumulative: String,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The channel id (0x + 32 bytes).
    pub channel: B256,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ChannelTxArgs {
    #[arg(long, value_name = "ID")]
    pub channel: B256,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(command: SessionCommand) -> Result<()> {
    match command {
        SessionCommand::Open(args) => open(args),
        SessionCommand::TopUp(args) => {
            let amount = musd(&args.amount, "--amount")?;
            let id = args.channel;
            submit(
                &args.client,
                &args.send,
                &args.send.load_signer(true)?,
                |from, nonce, fee| {
                    TxKind::TopUpChannel(TopUpChannel {
                        from,
                        channelId: id,
                        amount: U256::from(amount),
                        nonce,
                        fee,
                    })
                },
            )?;
            show_channel(&args.client, id)
        }
        SessionCommand::Voucher(args) => {
            let signer = args.send.signer.load()?;
            let cumulative = musd(&args.cumulative, "--cumulative")?;
            let chain_id = args.client.connect()?.chain_params()?.chain_id;
            let voucher = SessionVoucher::sign(&signer, chain_id, args.channel, cumulative);
            // Keep the highest total signed, so `mycel chat --session` continues from it.
            let recorded = VoucherStore::new().and_then(|store| {
                if cumulative > store.last(args.channel)? {
                    store.record(args.channel, cumulative)?;
                }
                Ok(())
            });
            if let Err(e) = recorded {
                eprintln!("warning: the total was not recorded for `mycel chat --session`: {e:#}");
            }
            if args.client.json {
                println!("{}", serde_json::to_string_pretty(&voucher)?);
            } else {
                println!("{}", voucher.to_header());
            }
            Ok(())
        }
        SessionCommand::Show(args) => show_channel(&args.client, args.channel),
        SessionCommand::Close(args) => {
            let id = args.channel;
            submit(
                &args.client,
                &args.send,
                &args.send.load_signer(true)?,
                |from, nonce, fee| {
                    TxKind::RequestChannelWithdraw(RequestChannelWithdraw {
                        from,
                        channelId: id,
                        nonce,
                        fee,
                    })
                },
            )?;
            show_channel(&args.client, id)
        }
        SessionCommand::Withdraw(args) => {
            let id = args.channel;
            submit(
                &args.client,
                &args.send,
                &args.send.load_signer(true)?,
                |from, nonce, fee| {
                    TxKind::WithdrawChannel(WithdrawChannel {
                        from,
                        channelId: id,
                        nonce,
                        fee,
                    })
                },
            )?;
            show_channel(&args.client, id)
        }
    }
}

fn open(args: OpenArgs) -> Result<()> {
    let signer = args.send.load_signer(true)?;
    let amount = musd(&args.amount, "--amount")?;
    let salt = args
        .salt
        .unwrap_or_else(|| B256::from(rand::random::<[u8; 32]>()));
    let id = channel_id(signer.address(), args.to, salt);
    let (to, delay) = (args.to, args.delay);
    submit(&args.client, &args.send, &signer, |from, nonce, fee| {
        TxKind::OpenChannel(OpenChannel {
            from,
            payee: to,
            amount: U256::from(amount),
            withdrawDelay: delay,
            salt,
            nonce,
            fee,
        })
    })?;
    println!("{id}");
    if !args.client.json {
        eprintln!(
            "opened channel {id}: {} mUSD for {to}, withdraw delay {delay} s",
            format_amount(amount, Token::Musd)
        );
        eprintln!("pay a call: mycel chat PROMPT --session {id} (same key), or by hand -H \"X-MYCEL-SESSION: $(mycel session voucher --channel {id} --cumulative TOTAL ...)\"");
    }
    Ok(())
}

fn show_channel(client: &ClientArgs, id: B256) -> Result<()> {
    let c = client.connect()?.channel(id)?;
    if client.json {
        return print_json(&c);
    }
    let m = |amount: Amount| format_amount(amount, Token::Musd);
    eprintln!(
        "channel {id}\n  payer    {}\n  payee    {}\n  deposit  {} mUSD\n  claimed  {} mUSD\n  escrowed {} mUSD\n  delay    {} s\n  withdraw {}\n  closed   {}",
        c.payer,
        c.payee,
        m(c.deposit),
        m(c.claimed),
        m(c.escrowed),
        c.withdraw_delay_s,
        match c.withdraw_at_s {
            Some(at) => format!("from block time {at} s"),
            None => "not requested".into(),
        },
        c.closed,
    );
    Ok(())
}

pub(crate) fn musd(text: &str, flag: &str) -> Result<Amount> {
    parse_amount(text, Token::Musd).map_err(|e| anyhow!("{flag} {text:?}: {e}"))
}

/// Signs what `build` makes (sender, nonce, fee), submits it and, unless `--no-wait`, waits
/// until it is final (see [`send::send`]).
fn submit(
    client: &ClientArgs,
    args: &SendArgs,
    signer: &PrivateKeySigner,
    build: impl FnOnce(Address, u64, U256) -> TxKind,
) -> Result<()> {
    let node = client.connect()?;
    let sent = send::send(&node, args, signer, false, true, |f| {
        build(f.from, f.nonce, f.fee)
    })?;
    if let Sent::Submitted(tx) = sent {
        eprintln!("sent {} {}", tx.kind.type_name(), tx.hash());
    }
    Ok(())
}

/// What the voucher store keeps per channel.
#[derive(Debug, Serialize, Deserialize)]
struct RecordedVoucher {
    channel: B256,
    #[serde(with = "mycel_client::api::amount")]
    cumulative: Amount,
}

/// The payer's record of the highest cumulative voucher it signed per channel: one file per
/// channel, `<dir>/<channel id>.json`, mode 0600, in `$MYCEL_SESSION_DIR` or `~/.mycel/sessions`.
pub(crate) struct VoucherStore {
    dir: PathBuf,
}

impl VoucherStore {
    pub(crate) fn new() -> Result<VoucherStore> {
        let dir = match std::env::var_os("MYCEL_SESSION_DIR").filter(|d| !d.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(
                std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| anyhow!("HOME is not set: set MYCEL_SESSION_DIR"))?,
            )
            .join(".mycel/sessions"),
        };
        Ok(VoucherStore { dir })
    }

    fn path(&self, channel: B256) -> PathBuf {
        self.dir.join(format!("{channel}.json"))
    }

    /// The highest total signed for `channel` (0 if none was recorded).
    pub(crate) fn last(&self, channel: B256) -> Result<Amount> {
        let path = self.path(channel);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<RecordedVoucher>(&bytes)
                .map(|v| v.cumulative)
                .with_context(|| format!("{} is not a recorded voucher", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    /// Records `cumulative` as the highest total signed for `channel` (written atomically, 0600).
    pub(crate) fn record(&self, channel: B256, cumulative: Amount) -> Result<()> {
        use std::io::Write as _;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = self.path(channel);
        let tmp = path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let body = serde_json::to_vec(&RecordedVoucher {
            channel,
            cumulative,
        })?;
        file.write_all(&body)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

/// Pays calls from one channel: what the chain and the local record say before the call, then
/// [`SessionPayer::voucher`] for the call's price and [`SessionPayer::record`] once it was served.
pub(crate) struct SessionPayer {
    pub channel: B256,
    chain_id: u64,
    signer: PrivateKeySigner,
    deposit: Amount,
    /// The total already owed: the highest of the local record and the chain's claimed amount.
    pub previous: Amount,
    store: VoucherStore,
}

impl SessionPayer {
    /// Reads `channel` from the node at `rpc` and checks that `signer` can pay from it.
    pub(crate) fn prepare(
        rpc: &str,
        signer: PrivateKeySigner,
        channel: B256,
    ) -> Result<SessionPayer> {
        let node = connect(rpc)?;
        let chain_id = node.chain_params()?.chain_id;
        let c = node.channel(channel)?;
        if c.payer != signer.address() {
            bail!(
                "channel {channel} is paid by {}, not by {}: sign with the payer's key",
                c.payer,
                signer.address()
            );
        }
        if c.closed {
            bail!("channel {channel} is closed");
        }
        if c.withdraw_at_s.is_some() {
            bail!("channel {channel} is closing (a withdraw was requested): open a new one");
        }
        let (deposit, claimed) = (c.deposit, c.claimed);
        let store = VoucherStore::new()?;
        let previous = store.last(channel)?.max(claimed);
        Ok(SessionPayer {
            channel,
            chain_id,
            signer,
            deposit,
            previous,
            store,
        })
    }

    /// The voucher for a call costing `price`: the new total is the previous one + `price`.
    pub(crate) fn voucher(&self, price: Amount) -> Result<(SessionVoucher, Amount)> {
        let cumulative = self
            .previous
            .checked_add(price)
            .ok_or_else(|| anyhow!("the total overflows"))?;
        if cumulative > self.deposit {
            bail!(
                "channel {} has {} mUSD left, the price is {} mUSD: top it up (`mycel session top-up`) \
                 or open a new one; nothing was paid",
                self.channel,
                format_amount(self.deposit.saturating_sub(self.previous), Token::Musd),
                format_amount(price, Token::Musd)
            );
        }
        let voucher = SessionVoucher::sign(&self.signer, self.chain_id, self.channel, cumulative);
        Ok((voucher, cumulative))
    }

    /// Records `cumulative` once the gateway accepted it.
    pub(crate) fn record(&self, cumulative: Amount) -> Result<()> {
        self.store.record(self.channel, cumulative)
    }

    /// mUSD left in the channel after `cumulative`.
    pub(crate) fn left(&self, cumulative: Amount) -> Amount {
        self.deposit.saturating_sub(cumulative)
    }
}
