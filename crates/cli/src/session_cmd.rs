//! `mycel session`: pay a gateway per call from an escrow channel (docs/payments.md, "Sessions").
//!
//! `open` deposits mUSD into a channel to the gateway's pay-to address and prints the channel id;
//! `voucher` signs the cumulative voucher of a call and prints the `X-MYCEL-SESSION` header value;
//! `show` reads the channel from the chain; `close` starts the withdraw delay and `withdraw` takes
//! back the unclaimed rest after it. Transactions are signed here and followed until finalized.

use crate::client::ClientArgs;
use crate::incentive_cmd::SendArgs;
use crate::keys;
use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use mycel_gateway::SessionVoucher;
use mycel_types::{
    channel_id, format_amount, keys::dev_signer, keys::DEV_ACCOUNTS, parse_amount, Amount,
    OpenChannel, RequestChannelWithdraw, SignedTx, Token, TopUpChannel, TxKind, WithdrawChannel,
};
use serde_json::Value;
use std::time::{Duration, Instant};

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
            submit(&args.client, &args.send, |from, nonce, fee| {
                TxKind::TopUpChannel(TopUpChannel {
                    from,
                    channelId: id,
                    amount: U256::from(amount),
                    nonce,
                    fee,
                })
            })?;
            show_channel(&args.client, id)
        }
        SessionCommand::Voucher(args) => {
            let signer = signer(&args.send)?;
            let cumulative = musd(&args.cumulative, "--cumulative")?;
            let rpc = Rpc::new(&args.client.rpc)?;
            let chain_id = rpc.chain_id()?;
            let voucher = SessionVoucher::sign(&signer, chain_id, args.channel, cumulative);
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
            submit(&args.client, &args.send, |from, nonce, fee| {
                TxKind::RequestChannelWithdraw(RequestChannelWithdraw {
                    from,
                    channelId: id,
                    nonce,
                    fee,
                })
            })?;
            show_channel(&args.client, id)
        }
        SessionCommand::Withdraw(args) => {
            let id = args.channel;
            submit(&args.client, &args.send, |from, nonce, fee| {
                TxKind::WithdrawChannel(WithdrawChannel {
                    from,
                    channelId: id,
                    nonce,
                    fee,
                })
            })?;
            show_channel(&args.client, id)
        }
    }
}

fn open(args: OpenArgs) -> Result<()> {
    let signer = signer(&args.send)?;
    let amount = musd(&args.amount, "--amount")?;
    let salt = args
        .salt
        .unwrap_or_else(|| B256::from(rand::random::<[u8; 32]>()));
    let id = channel_id(signer.address(), args.to, salt);
    let (to, delay) = (args.to, args.delay);
    submit(&args.client, &args.send, |from, nonce, fee| {
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
        eprintln!("pay a call: -H \"X-MYCEL-SESSION: $(mycel session voucher --channel {id} --cumulative TOTAL ...)\"");
    }
    Ok(())
}

fn show_channel(client: &ClientArgs, id: B256) -> Result<()> {
    let rpc = Rpc::new(&client.rpc)?;
    let c = rpc.get(&format!("/v1/channels/{id}"))?;
    if client.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
        return Ok(());
    }
    let m = |name: &str| -> String {
        c[name]
            .as_str()
            .and_then(|s| s.parse::<Amount>().ok())
            .map(|a| format_amount(a, Token::Musd))
            .unwrap_or_else(|| "?".into())
    };
    eprintln!(
        "channel {id}\n  payer    {}\n  payee    {}\n  deposit  {} mUSD\n  claimed  {} mUSD\n  escrowed {} mUSD\n  delay    {} s\n  withdraw {}\n  closed   {}",
        c["payer"].as_str().unwrap_or("?"),
        c["payee"].as_str().unwrap_or("?"),
        m("deposit"),
        m("claimed"),
        m("escrowed"),
        c["withdraw_delay_s"],
        match c["withdraw_at_s"].as_u64() {
            Some(at) => format!("from block time {at} s"),
            None => "not requested".into(),
        },
        c["closed"],
    );
    Ok(())
}

fn musd(text: &str, flag: &str) -> Result<Amount> {
    parse_amount(text, Token::Musd).map_err(|e| anyhow!("{flag} {text:?}: {e}"))
}

fn signer(args: &SendArgs) -> Result<PrivateKeySigner> {
    match (&args.key, args.dev_account) {
        (Some(_), Some(_)) => bail!("give one signer: --key or --dev-account, not both"),
        (Some(spec), None) => keys::load_signer(&args.keystore, spec, &args.password),
        (None, Some(n)) if n < DEV_ACCOUNTS => {
            dev_signer(n).map_err(|e| anyhow!("cannot derive development account {n}: {e}"))
        }
        (None, Some(n)) => bail!(
            "--dev-account {n} does not exist: development accounts are 0 to {}",
            DEV_ACCOUNTS - 1
        ),
        (None, None) => bail!("say who signs: --key FILE|NAME or --dev-account N"),
    }
}

/// Signs what `build` makes (sender, nonce, fee), submits it, waits until final.
fn submit(
    client: &ClientArgs,
    args: &SendArgs,
    build: impl FnOnce(Address, u64, U256) -> TxKind,
) -> Result<()> {
    let signer = signer(args)?;
    let rpc = Rpc::new(&client.rpc)?;
    let status = rpc.get("/v1/status")?;
    let chain_id = status["chain_id"]
        .as_u64()
        .ok_or_else(|| anyhow!("{} is not a mycel node (no chain_id)", rpc.base))?;
    let fee = match &args.fee {
        Some(f) => parse_amount(f, Token::Myc).map_err(|e| anyhow!("--fee {f:?}: {e}"))?,
        None => status["min_fee"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("the node did not say its min_fee: pass --fee"))?,
    };
    let from = signer.address();
    let nonce = match args.nonce {
        Some(n) => n,
        None => rpc.get(&format!("/v1/accounts/{from}"))?["next_nonce"]
            .as_u64()
            .ok_or_else(|| anyhow!("the node did not say the nonce of {from}: pass --nonce"))?,
    };
    let kind = build(from, nonce, U256::from(fee));
    let type_name = kind.type_name();
    let tx = SignedTx::sign(kind, chain_id, &signer).context("signing failed")?;
    let hash = tx.hash();
    rpc.post("/v1/txs", &serde_json::to_value(tx.to_json())?)?;
    if args.no_wait {
        eprintln!("sent {type_name} {hash}");
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout.max(1));
    loop {
        let s = rpc.get(&format!("/v1/txs/{hash}"))?;
        match s["status"].as_str() {
            Some("finalized") => {
                if let Some(e) = s.get("error").filter(|e| e.is_object()) {
                    bail!(
                        "{type_name} {hash} failed: {} ({})",
                        e["message"].as_str().unwrap_or(""),
                        e["code"].as_str().unwrap_or("")
                    );
                }
                eprintln!("{type_name} {hash} finalized in block {}", s["height"]);
                return Ok(());
            }
            Some("rejected") => bail!("{type_name} {hash} was rejected: {}", s["error"]),
            _ => {}
        }
        if Instant::now() >= deadline {
            bail!(
                "{type_name} {hash} still pending after {} s: see `mycel tx {hash}`",
                args.timeout
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Rpc {
    base: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Rpc {
    fn new(base: &str) -> Result<Rpc> {
        Ok(Rpc {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()?,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    fn chain_id(&self) -> Result<u64> {
        self.get("/v1/status")?["chain_id"]
            .as_u64()
            .ok_or_else(|| anyhow!("{} is not a mycel node (no chain_id)", self.base))
    }

    fn get(&self, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        self.read(self.http.get(&url), &url)
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        self.read(self.http.post(&url).json(body), &url)
    }

    fn read(&self, request: reqwest::RequestBuilder, url: &str) -> Result<Value> {
        self.runtime.block_on(async {
            let response = request.send().await.with_context(|| {
                format!("cannot reach the node at {url} (is it running? --rpc)")
            })?;
            let status = response.status();
            let body: Value = response
                .json()
                .await
                .with_context(|| format!("{url} did not answer JSON"))?;
            if !status.is_success() {
                bail!(
                    "the node answered: {} [{}, HTTP {status}]",
                    body["error"]["message"].as_str().unwrap_or(""),
                    body["error"]["code"].as_str().unwrap_or("error"),
                );
            }
            Ok(body)
        })
    }
}
