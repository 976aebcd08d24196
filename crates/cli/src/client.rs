//! The commands that read a running node or send it a transfer (docs/node-api.md): `status`,
//! `balance`, `transfer`, `tx`, `block`; and what every command that talks to a node shares: the
//! `--rpc`/`--json` flags, the connection ([`connect`], mycel-client's blocking client), the
//! hints a node's error codes get for the user ([`describe`]), and key-name resolution.
//!
//! Human output turns base units into whole tokens with `format_amount`; `--json` prints the
//! node's answer (its wire type, written back exactly as the node sent it).

use crate::keys::{self, KeystoreArgs};
use crate::send::{self, SendArgs, Sent};
use alloy_primitives::{Address, Bytes, B256, U256};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use mycel_client::api::{BlockTxResult, Event, TxResult, TxState};
use mycel_client::ClientError;
use mycel_types::{format_amount, parse_amount, SignedTx, Token, Transfer, TxKind, MAX_MEMO_BYTES};
use serde::Serialize;

/// The node client of the CLI (mycel-client's blocking front).
pub(crate) type Node = mycel_client::blocking::NodeClient;

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

impl ClientArgs {
    /// A client of the node at `--rpc`.
    pub(crate) fn connect(&self) -> Result<Node> {
        connect(&self.rpc)
    }
}

/// A client of the node at `rpc`.
pub(crate) fn connect(rpc: &str) -> Result<Node> {
    Node::new(rpc).map_err(|e| match e {
        ClientError::BadUrl { reason, .. } => {
            anyhow!("--rpc '{rpc}' is not a URL ({reason}): use e.g. http://127.0.0.1:8545")
        }
        other => other.into(),
    })
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
    #[command(flatten)]
    pub send: SendArgs,
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
    let node = args.client.connect()?;
    let status = node.status()?;
    if args.client.json {
        return print_json(&status);
    }
    print_rows(&[
        ("node", Some(node.base().to_string())),
        ("chain id", Some(status.chain_id.to_string())),
        ("height", Some(status.height.to_string())),
        ("block hash", Some(status.hash.to_string())),
        ("state root", Some(status.state_root.to_string())),
        ("block time", Some(format_time_ms(status.timestamp_ms))),
        ("genesis hash", Some(status.genesis_hash.to_string())),
        ("validators", Some(status.validators.len().to_string())),
        ("mempool", Some(format!("{} pending", status.mempool_size))),
        (
            "min fee",
            Some(format!("{} MYC", format_amount(status.min_fee, Token::Myc))),
        ),
        (
            "max tx size",
            Some(format!("{} bytes", status.max_tx_bytes)),
        ),
    ]);
    Ok(())
}

pub fn run_balance(args: BalanceArgs) -> Result<()> {
    let address = resolve_address(&args.address, &args.keystore)?;
    let node = args.client.connect()?;
    let account = node.account(address)?;
    if args.client.json {
        return print_json(&account);
    }
    let next_nonce = match account.pending() {
        0 => account.next_nonce.to_string(),
        pending => format!("{} ({pending} pending)", account.next_nonce),
    };
    print_rows(&[
        ("address", Some(address.to_checksum(None))),
        (
            "MYC",
            Some(format!("{} MYC", format_amount(account.myc, Token::Myc))),
        ),
        (
            "mUSD",
            Some(format!("{} mUSD", format_amount(account.musd, Token::Musd))),
        ),
        ("next nonce", Some(next_nonce)),
        ("as of block", Some(account.height.to_string())),
    ]);
    Ok(())
}

pub fn run_transfer(args: TransferArgs) -> Result<()> {
    // Everything that can be checked locally is checked before asking for a passphrase or the node.
    let to = resolve_address(&args.to, &args.send.signer.keystore)?;
    let amount = parse_amount(&args.amount, args.token)
        .with_context(|| format!("bad --amount '{}'", args.amount))?;
    let memo = Bytes::from(args.memo.clone().into_bytes());
    if memo.len() > MAX_MEMO_BYTES {
        bail!(
            "the memo is {} bytes, over the {MAX_MEMO_BYTES}-byte limit: shorten it",
            memo.len()
        );
    }
    let signer = args.send.load_signer(false)?;
    let node = args.client.connect()?;
    let json = args.client.json;
    let sent = send::send(&node, &args.send, &signer, json, false, |f| {
        TxKind::Transfer(Transfer {
            from: f.from,
            to,
            token: args.token.address(),
            amount: U256::from(amount),
            memo,
            nonce: f.nonce,
            fee: f.fee,
        })
    })?;
    match sent {
        Sent::Submitted(tx) if json => send::print_submitted(&tx, json),
        Sent::Submitted(tx) => {
            let hash = tx.hash();
            println!("{hash}");
            eprintln!(
                "sent {} {} from {} to {to} (nonce {}, fee {} MYC); see it with `mycel tx {hash}`",
                format_amount(amount, args.token),
                args.token,
                tx.from(),
                tx.nonce(),
                format_amount(tx.kind.fee().saturating_to::<u128>(), Token::Myc),
            );
            Ok(())
        }
        Sent::Applied(_) if json => Ok(()),
        Sent::Applied(applied) => {
            println!("{}", applied.hash);
            Ok(())
        }
    }
}

pub fn run_tx(args: TxArgs) -> Result<()> {
    let node = args.client.connect()?;
    let tx = node.tx(args.hash)?;
    if args.client.json {
        return print_json(&tx);
    }
    let mut rows = vec![("hash", Some(tx.hash.to_string()))];
    match &tx.state {
        TxState::Pending => rows.push(("status", Some("pending".into()))),
        TxState::Finalized {
            height,
            index,
            result,
        } => {
            rows.push(("status", Some("finalized".into())));
            rows.push(("height", Some(height.to_string())));
            rows.push(("index", Some(index.to_string())));
            if let TxResult::Receipt(receipt) = result {
                rows.push(("type", Some(receipt.tx_type.clone())));
                rows.push(("from", Some(receipt.from.to_checksum(None))));
                rows.push(("nonce", Some(receipt.nonce.to_string())));
            }
        }
        TxState::Rejected { error } => {
            rows.push(("status", Some("rejected".into())));
            rows.push(("error", Some(error.to_string())));
        }
    }
    print_rows(&rows);
    if let TxState::Finalized {
        result: TxResult::Receipt(receipt),
        ..
    } = &tx.state
    {
        print_events(&receipt.events, "  ")?;
    }
    Ok(())
}

pub fn run_block(args: BlockArgs) -> Result<()> {
    let node = args.client.connect()?;
    let block = match args.block.parse::<u64>() {
        Ok(height) => node.block(height)?,
        Err(_) => node.latest_block()?,
    };
    if args.client.json {
        return print_json(&block);
    }
    print_rows(&[
        ("height", Some(block.height.to_string())),
        ("hash", Some(block.hash.to_string())),
        ("parent", Some(block.parent.to_string())),
        ("time", Some(format_time_ms(block.timestamp_ms))),
        ("state root", Some(block.state_root.to_string())),
        ("txs", Some(block.tx_count.to_string())),
    ]);
    for entry in &block.txs {
        println!();
        println!("  tx {}", entry.hash);
        let (from, nonce) = match SignedTx::from_json(&entry.tx) {
            Ok(tx) => (tx.from().to_string(), tx.nonce().to_string()),
            Err(_) => (String::new(), String::new()),
        };
        println!("    {} from {from} nonce {nonce}", entry.tx.tx_type);
        match &entry.result {
            Some(BlockTxResult::Err(error)) => println!("    failed: {error}"),
            Some(BlockTxResult::Ok(receipt)) => print_events(&receipt.events, "    ")?,
            None => {}
        }
    }
    Ok(())
}

/// An error for the user: each cause in turn, a node's refusal with what to do about its code,
/// and an unreachable node with where to point instead.
pub(crate) fn describe(err: &anyhow::Error) -> String {
    err.chain()
        .map(|cause| match cause.downcast_ref::<ClientError>() {
            Some(ClientError::Node { code, .. }) => format!("{cause}{}", hint(code)),
            Some(ClientError::Unreachable {
                url,
                timed_out: false,
                ..
            }) => format!(
                "cannot reach the node at {url}: is `mycel up` running? (point elsewhere with --rpc URL or MYCEL_RPC)"
            ),
            _ => cause.to_string(),
        })
        .collect::<Vec<_>>()
        .join(": ")
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

/// Prints `value` as the node writes it: pretty, object keys in sorted order.
pub(crate) fn print_json(value: &impl Serialize) -> Result<()> {
    let value = serde_json::to_value(value)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
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

fn print_events(events: &[Event], indent: &str) -> Result<()> {
    for event in events {
        match event {
            Event::Transfer {
                token,
                from,
                to,
                amount,
            } => println!(
                "{indent}transfer {} {token}  {from} -> {to}",
                format_amount(*amount, *token)
            ),
            Event::FeeBurned { amount, .. } => println!(
                "{indent}fee burned {} MYC",
                format_amount(*amount, Token::Myc)
            ),
            other => println!("{indent}{}", serde_json::to_value(other)?),
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch as UTC `YYYY-MM-DD HH:MM:SS.mmm`.
fn format_time_ms(ms: u64) -> String {
    let t = mycel_types::time::Utc::from_unix(ms / 1000);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03} UTC",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
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
