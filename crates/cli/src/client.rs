//! The commands that talk to a running node over its HTTP API (docs/node-api.md): `status`,
//! `balance`, `transfer`, `tx`, `block`.
//!
//! Human output turns base units into whole tokens with `format_amount`; `--json` prints the node's
//! JSON as it came. Every failure names the node URL and the next thing to try.

use crate::keys::{self, KeystoreArgs, PasswordArgs};
use alloy_primitives::{Address, Bytes, B256, U256};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use mycel_types::{
    format_amount, keys::dev_signer, keys::DEV_ACCOUNTS, parse_amount, Amount, SignedTx, Token,
    Transfer, TxKind, MAX_MEMO_BYTES,
};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Where the node is and how to print.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// URL of the node's HTTP API.
    #[arg(
        long,
        value_name = "URL",
        env = "MYCEL_RPC",
        default_value = "http://127.0.0.1:8545"
    )]
    pub rpc: String,
    /// Print the node's JSON answer as it came, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct BalanceArgs {
    /// The account: a 0x address, or the name of a key in the keystore.
    #[arg(value_name = "ADDRESS")]
    pub address: String,
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("signer").required(true).args(["key", "dev_account"])),
    after_help = "Examples:\n  \
      mycel transfer --dev-account 0 --to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --amount 1.5\n  \
      mycel transfer --key alice --to bob --amount 2.5 --token mUSD --memo \"invoice 7\" --wait\n\n\
      Prints the transaction hash on stdout (with --wait once it is finalized). The chain id, the nonce\n\
      and the default fee come from the node. See docs/transactions.md for the format."
)]
pub struct TransferArgs {
    /// Recipient: a 0x address, or the name of a key in the keystore.
    #[arg(long, value_name = "ADDRESS")]
    pub to: String,
    /// How much to send, in whole tokens; decimals allowed ("1.5", "0.000001").
    #[arg(long, value_name = "AMOUNT")]
    pub amount: String,
    /// Which token to send: MYC (the native token) or mUSD (the dollar stablecoin).
    #[arg(long, value_name = "MYC|mUSD", default_value = "MYC")]
    pub token: Token,
    /// A note for your own records, stored on chain as UTF-8 bytes (at most 256 bytes).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub memo: String,
    /// Fee in MYC (burned) [default: the node's minimum fee].
    #[arg(long, value_name = "AMOUNT")]
    pub fee: Option<String>,
    /// Sign with this key: a name in the keystore or the path of a keystore file.
    #[arg(long, value_name = "FILE|NAME")]
    pub key: Option<String>,
    /// Sign with development account N (0-9) of the public devnet mnemonic. Devnets only: anyone
    /// can spend from these accounts.
    #[arg(long, value_name = "N")]
    pub dev_account: Option<u32>,
    /// Use this nonce instead of the account's next nonce from the node.
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Wait until the transaction is finalized (or rejected) and print its block height.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TxArgs {
    /// The transaction hash (0x followed by 64 hex digits).
    #[arg(value_name = "HASH")]
    pub hash: B256,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct BlockArgs {
    /// A block height, or `latest` for the newest finalized block.
    #[arg(value_name = "HEIGHT|latest", value_parser = parse_block_ref)]
    pub block: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn parse_block_ref(s: &str) -> Result<String, String> {
    if s == "latest" || s.parse::<u64>().is_ok() {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is neither a block height (a whole number) nor `latest`"
        ))
    }
}

pub fn run_status(args: StatusArgs) -> Result<()> {
    let node = Node::new(&args.client)?;
    let status = node.get("/v1/status")?;
    if args.client.json {
        return print_json(&status);
    }
    let min_fee =
        amount_field(&status, "min_fee").map(|f| format!("{} MYC", format_amount(f, Token::Myc)));
    let validators = status["validators"].as_array().map(|v| v.len().to_string());
    print_rows(&[
        ("node", Some(node.base.clone())),
        ("chain id", str_of(&status["chain_id"])),
        ("height", str_of(&status["height"])),
        ("block hash", str_of(&status["hash"])),
        ("state root", str_of(&status["state_root"])),
        (
            "block time",
            status["timestamp_ms"].as_u64().map(format_time_ms),
        ),
        ("genesis hash", str_of(&status["genesis_hash"])),
        ("validators", validators),
        (
            "mempool",
            str_of(&status["mempool_size"]).map(|n| format!("{n} pending")),
        ),
        ("min fee", min_fee),
        (
            "max tx size",
            str_of(&status["max_tx_bytes"]).map(|n| format!("{n} bytes")),
        ),
    ]);
    Ok(())
}

pub fn run_balance(args: BalanceArgs) -> Result<()> {
    let address = resolve_address(&args.address, &args.keystore)?;
    let node = Node::new(&args.client)?;
    let account = node.get(&format!("/v1/accounts/{address}"))?;
    if args.client.json {
        return print_json(&account);
    }
    let token_row = |field: &str, token: Token| {
        amount_field(&account, field).map(|a| format!("{} {token}", format_amount(a, token)))
    };
    print_rows(&[
        ("address", Some(address.to_checksum(None))),
        ("MYC", token_row("myc", Token::Myc)),
        ("mUSD", token_row("musd", Token::Musd)),
        ("next nonce", next_nonce_row(&account)),
        ("as of block", str_of(&account["height"])),
    ]);
    Ok(())
}

pub fn run_transfer(args: TransferArgs) -> Result<()> {
    // Everything that can be checked locally is checked before asking for a passphrase or the node.
    let to = resolve_address(&args.to, &args.keystore)?;
    let amount = parse_amount(&args.amount, args.token)
        .with_context(|| format!("bad --amount '{}'", args.amount))?;
    let fee = args
        .fee
        .as_deref()
        .map(|f| {
            parse_amount(f, Token::Myc)
                .with_context(|| format!("bad --fee '{f}' (the fee is in MYC)"))
        })
        .transpose()?;
    let memo = Bytes::from(args.memo.clone().into_bytes());
    if memo.len() > MAX_MEMO_BYTES {
        bail!(
            "the memo is {} bytes, over the {MAX_MEMO_BYTES}-byte limit: shorten it",
            memo.len()
        );
    }
    if args.wait && args.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    let signer = match (&args.key, args.dev_account) {
        (Some(spec), _) => keys::load_signer(&args.keystore, spec, &args.password)?,
        (None, Some(n)) if n < DEV_ACCOUNTS => {
            dev_signer(n).map_err(|e| anyhow!("cannot derive development account {n}: {e}"))?
        }
        (None, Some(n)) => bail!(
            "--dev-account {n} does not exist: development accounts are 0 to {}",
            DEV_ACCOUNTS - 1
        ),
        (None, None) => bail!("say who signs: --key FILE|NAME or --dev-account N"),
    };
    let from = signer.address();

    let node = Node::new(&args.client)?;
    let status = node.get("/v1/status")?;
    let chain_id = status["chain_id"].as_u64().ok_or_else(|| {
        anyhow!(
            "the node's /v1/status has no chain_id: is {} a mycel node?",
            node.base
        )
    })?;
    let fee = match fee {
        Some(fee) => fee,
        None => amount_field(&status, "min_fee")
            .ok_or_else(|| anyhow!("the node's /v1/status has no min_fee: pass --fee AMOUNT"))?,
    };
    let nonce = match args.nonce {
        Some(nonce) => nonce,
        None => {
            // `next_nonce` counts the node's pending transactions from this account, so
            // back-to-back transfers without --wait each get their own nonce.
            let account = node.get(&format!("/v1/accounts/{from}"))?;
            account["next_nonce"]
                .as_u64()
                .or_else(|| account["nonce"].as_u64())
                .ok_or_else(|| {
                    anyhow!("the node did not say the nonce of {from}: pass --nonce N")
                })?
        }
    };

    let kind = TxKind::Transfer(Transfer {
        from,
        to,
        token: args.token.address(),
        amount: U256::from(amount),
        memo,
        nonce,
        fee: U256::from(fee),
    });
    let tx = SignedTx::sign(kind, chain_id, &signer).context("signing the transaction failed")?;
    let body = serde_json::to_value(tx.to_json())?;
    let accepted = node.post("/v1/txs", &body)?;
    let hash = accepted["hash"]
        .as_str()
        .and_then(|h| h.parse::<B256>().ok())
        .unwrap_or_else(|| tx.hash());
    if hash != tx.hash() {
        bail!("the node reported hash {hash} for a transaction whose hash is {}: it encodes transactions differently", tx.hash());
    }

    if !args.wait {
        if args.client.json {
            return print_json(&accepted);
        }
        println!("{hash}");
        eprintln!(
            "sent {} {} from {from} to {to} (nonce {nonce}, fee {} MYC); see it with `mycel tx {hash}`",
            format_amount(amount, args.token),
            args.token,
            format_amount(fee, Token::Myc),
        );
        return Ok(());
    }

    if !args.client.json {
        eprintln!("submitted {hash}, waiting for finalization…");
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let unknown_grace = Instant::now() + Duration::from_secs(args.timeout.min(5));
    loop {
        let status = match node.get(&format!("/v1/txs/{hash}")) {
            Ok(status) => status,
            // A node behind a load balancer may not have seen the tx yet: give it a moment.
            Err(e)
                if e.downcast_ref::<ApiError>()
                    .is_some_and(|a| a.code == "unknown_tx")
                    && Instant::now() < unknown_grace =>
            {
                std::thread::sleep(Duration::from_millis(250));
                continue;
            }
            Err(e) => return Err(e),
        };
        match status["status"].as_str() {
            Some("finalized") => {
                if args.client.json {
                    return print_json(&status);
                }
                println!("{hash}");
                eprintln!(
                    "finalized in block {}",
                    str_of(&status["height"]).unwrap_or_else(|| "?".into())
                );
                return Ok(());
            }
            Some("rejected") => {
                if args.client.json {
                    print_json(&status)?;
                }
                let (code, message) = error_parts(&status["error"]);
                bail!("transaction {hash} was rejected: {message} ({code})");
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            bail!(
                "transaction {hash} is still pending after {}s: check later with `mycel tx {hash}`, or wait longer with --timeout",
                args.timeout
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn run_tx(args: TxArgs) -> Result<()> {
    let node = Node::new(&args.client)?;
    let tx = node.get(&format!("/v1/txs/{}", args.hash))?;
    if args.client.json {
        return print_json(&tx);
    }
    let mut rows = vec![
        ("hash", str_of(&tx["hash"])),
        ("status", str_of(&tx["status"])),
        ("height", str_of(&tx["height"])),
        ("index", str_of(&tx["index"])),
    ];
    let receipt = &tx["receipt"];
    rows.push(("type", str_of(&receipt["type"])));
    rows.push(("from", receipt.get("from").map(checksummed)));
    rows.push(("nonce", str_of(&receipt["nonce"])));
    if tx["status"] == "rejected" {
        let (code, message) = error_parts(&tx["error"]);
        rows.push(("error", Some(format!("{message} ({code})"))));
    }
    print_rows(&rows);
    print_events(&receipt["events"], "  ");
    Ok(())
}

pub fn run_block(args: BlockArgs) -> Result<()> {
    let node = Node::new(&args.client)?;
    let block = node.get(&format!("/v1/blocks/{}", args.block))?;
    if args.client.json {
        return print_json(&block);
    }
    print_rows(&[
        ("height", str_of(&block["height"])),
        ("hash", str_of(&block["hash"])),
        ("parent", str_of(&block["parent"])),
        ("time", block["timestamp_ms"].as_u64().map(format_time_ms)),
        ("state root", str_of(&block["state_root"])),
        ("txs", str_of(&block["tx_count"])),
    ]);
    for entry in block["txs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        println!();
        println!("  tx {}", str_of(&entry["hash"]).unwrap_or_default());
        let message = &entry["tx"]["message"];
        let from = str_of(&message["from"]).unwrap_or_default();
        println!(
            "    {} from {from} nonce {}",
            str_of(&entry["tx"]["type"]).unwrap_or_default(),
            str_of(&message["nonce"]).unwrap_or_default()
        );
        let result = &entry["result"];
        if let Some(err) = result.get("err").or_else(|| result.get("error")) {
            let (code, message) = error_parts(err);
            println!("    failed: {message} ({code})");
        } else {
            print_events(&result["ok"]["events"], "    ");
        }
    }
    Ok(())
}

/// A blocking-style client for one node, on a small runtime of its own.
pub(crate) struct Node {
    pub(crate) base: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Node {
    pub(crate) fn new(args: &ClientArgs) -> Result<Node> {
        let base = args.rpc.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base).map_err(|e| {
            anyhow!(
                "--rpc '{}' is not a URL ({e}): use e.g. http://127.0.0.1:8545",
                args.rpc
            )
        })?;
        if parsed.scheme() != "http" {
            bail!("--rpc '{}': only http:// node URLs are supported (put a TLS proxy's plain side here)", args.rpc);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot set up the HTTP client")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        Ok(Node {
            base,
            http,
            runtime,
        })
    }

    pub(crate) fn get(&self, path: &str) -> Result<Value> {
        self.call(self.http.get(format!("{}{path}", self.base)), path)
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(
            self.http.post(format!("{}{path}", self.base)).json(body),
            path,
        )
    }

    fn call(&self, request: reqwest::RequestBuilder, path: &str) -> Result<Value> {
        let base = &self.base;
        let (status, text) = self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| {
                if e.is_connect() {
                    anyhow!("cannot reach the node at {base}: is `mycel up` running? (point elsewhere with --rpc URL or MYCEL_RPC)")
                } else if e.is_timeout() {
                    anyhow!("the node at {base} did not answer {path} in time: is it overloaded or stuck?")
                } else {
                    anyhow!("request to the node at {base}{path} failed: {e}")
                }
            })?;
            let status = response.status();
            let text = response
                .text()
                .await
                .map_err(|e| anyhow!("reading the node's answer to {path} failed: {e}"))?;
            Ok::<_, anyhow::Error>((status, text))
        })?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return json.ok_or_else(|| {
                anyhow!("the node at {base} answered {path} with something that is not JSON: is it a mycel node?")
            });
        }
        match json.as_ref().map(|j| &j["error"]).filter(|e| e.is_object()) {
            Some(err) => {
                let (code, message) = error_parts(err);
                Err(ApiError { code, message, status: status.as_u16() }.into())
            }
            None => Err(anyhow!(
                "the node at {base} answered {path} with HTTP {status}: is it a mycel node, and is the URL right?"
            )),
        }
    }
}

/// An error the node answered with (`{"error": {"code", "message"}}`).
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) status: u16,
}

impl std::error::Error for ApiError {}

/// The node's error in words, plus what to do where the fix is not obvious from the message.
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ApiError {
            code,
            message,
            status,
        } = self;
        write!(
            f,
            "the node answered: {message} [{code}, HTTP {status}]{}",
            hint(code)
        )
    }
}

fn hint(code: &str) -> &'static str {
    match code {
        "stale_nonce" | "future_nonce" | "nonce_too_far_ahead" | "nonce_taken" => {
            " (drop --nonce to use the account's next nonce)"
        }
        "already_known" => " (the node already has this exact transaction: see `mycel tx HASH`)",
        "sender_full" => {
            " (this account has too many pending transactions: wait for some to finalize)"
        }
        "fee_too_low" => " (raise --fee, or leave it out to pay the node's minimum)",
        "insufficient_balance" => {
            " (check the account with `mycel balance`; its pending transactions count too)"
        }
        "gapped_full" => " (send the missing nonce first, or drop --nonce)",
        "evicted" => " (the mempool was full: resubmit, with a higher --fee if it stays full)",
        "expired" => " (it waited too long in the mempool: resubmit it)",
        "wrong_chain_id" => " (is --rpc pointing at the chain you meant?)",
        "mempool_full" => " (try again in a few seconds, or raise --fee)",
        "unknown_tx" => " (it may not have reached this node; check the hash or --rpc)",
        "unknown_block" => " (it is not finalized yet; see `mycel status` for the height)",
        "unknown_subnet" => " (list the subnets with `mycel subnet list`)",
        "not_owner" => " (sign with the subnet owner's coldkey)",
        "not_registered" | "hotkey_not_neuron" => {
            " (register it with `mycel neuron register`; see `mycel neuron list --netuid N`)"
        }
        "rate_limited" => " (see weights_rate_limit in `mycel subnet show NETUID`)",
        "reveal_too_early" => {
            " (reveal from the block `mycel weights commit` printed; epochs: `mycel subnet show NETUID`)"
        }
        "price_already_beyond_limit" | "price_limit" => {
            " (see the price with `mycel subnet show NETUID`; loosen or drop --limit-price)"
        }
        _ => "",
    }
}

pub(crate) fn error_parts(err: &Value) -> (String, String) {
    let code = err["code"].as_str().unwrap_or("unknown").to_string();
    let message = err["message"].as_str().unwrap_or("no message").to_string();
    (code, message)
}

/// A 0x address, or the name of a key in the keystore whose file records its address.
pub(crate) fn resolve_address(spec: &str, keystore: &KeystoreArgs) -> Result<Address> {
    if spec.starts_with("0x") || spec.starts_with("0X") {
        return spec.parse::<Address>().map_err(|e| {
            anyhow!("'{spec}' is not an address ({e}): expected 0x followed by 40 hex digits")
        });
    }
    keys::address_of(keystore, spec)
        .with_context(|| format!("'{spec}' is not a 0x address, so it was taken as a key name"))
}

fn amount_field(value: &Value, field: &str) -> Option<Amount> {
    match &value[field] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64().map(Amount::from),
        _ => None,
    }
}

fn str_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The nonce to sign with next, and how many of the account's transactions are still pending.
fn next_nonce_row(account: &Value) -> Option<String> {
    let finalized = account["nonce"].as_u64();
    match (account["next_nonce"].as_u64(), finalized) {
        (Some(next), Some(done)) if next > done => {
            Some(format!("{next} ({} pending)", next - done))
        }
        (Some(next), _) => Some(next.to_string()),
        (None, done) => done.map(|n| n.to_string()),
    }
}

/// An address from the node's JSON in checksum form (as given if it does not parse).
fn checksummed(value: &Value) -> String {
    let text = str_of(value).unwrap_or_default();
    text.parse::<Address>()
        .map(|a| a.to_checksum(None))
        .unwrap_or(text)
}

fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_rows(rows: &[(&str, Option<String>)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        if let Some(value) = value {
            println!("{key:<width$}  {value}");
        }
    }
}

fn print_events(events: &Value, indent: &str) {
    for event in events.as_array().map(Vec::as_slice).unwrap_or_default() {
        let amount_of = |token: Token| {
            amount_field(event, "amount")
                .map(|a| format_amount(a, token))
                .unwrap_or_else(|| "?".into())
        };
        match event["event"].as_str() {
            Some("transfer") => {
                let token = event["token"]
                    .as_str()
                    .and_then(|t| t.parse::<Token>().ok())
                    .unwrap_or(Token::Myc);
                println!(
                    "{indent}transfer {} {token}  {} -> {}",
                    amount_of(token),
                    checksummed(&event["from"]),
                    checksummed(&event["to"])
                );
            }
            Some("fee_burned") => println!("{indent}fee burned {} MYC", amount_of(Token::Myc)),
            _ => println!("{indent}{event}"),
        }
    }
}

/// Milliseconds since the Unix epoch as UTC `YYYY-MM-DD HH:MM:SS.mmm`.
fn format_time_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(format_time_ms(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(
            format_time_ms(1_764_072_000_123),
            "2025-11-25 12:00:00.123 UTC"
        );
    }

    #[test]
    fn block_refs() {
        assert!(parse_block_ref("latest").is_ok());
        assert!(parse_block_ref("12").is_ok());
        assert!(parse_block_ref("-1").is_err());
        assert!(parse_block_ref("newest").is_err());
    }
}
