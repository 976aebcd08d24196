//! How every command sends a transaction: the one set of sending flags ([`SendArgs`]: the signer,
//! `--fee`, `--nonce`, `--wait`/`--no-wait`, `--timeout`) and the one path a transaction takes
//! ([`send`]): signed, submitted and followed by mycel-client's `sign`, `submit` and `wait` (the
//! steps of its `send_and_wait`), with what the user sees on the way.
//!
//! `--wait` and `--no-wait` exist on every command that submits a transaction; the last one given
//! wins. Without either, `transfer` returns once the node accepted the transaction and every
//! other command waits until it is final (so it can say what the chain did).

use crate::client::{print_json, Node};
use crate::signer::SignerArgs;
use alloy_signer_local::PrivateKeySigner;
use anyhow::{bail, Context, Result};
use clap::Args;
use mycel_client::api::{TxResult, TxState, TxStatus};
use mycel_client::{Applied, Outcome, SendOptions, TxFields};
use mycel_types::{parse_amount, SignedTx, Token, TxKind};
use std::time::Duration;

/// Who signs a transaction and how it is sent.
#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub signer: SignerArgs,
    /// Fee in MYC (burned) [default: the node's minimum fee].
    #[arg(long, value_name = "AMOUNT")]
    pub fee: Option<String>,
    /// Use this nonce instead of the account's next nonce from the node.
    #[arg(long)]
    pub nonce: Option<u64>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// Whether to follow a submitted transaction until it is final.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until the transaction is finalized (or rejected) and say what it did [the default,
    /// except for `transfer`].
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Return as soon as the node accepted the transaction and print its hash [the default of
    /// `transfer`].
    #[arg(long, overrides_with = "wait")]
    pub no_wait: bool,
    /// Give up waiting for finalization after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
}

impl WaitArgs {
    /// Whether to wait, given the command's default.
    pub fn waits(&self, by_default: bool) -> bool {
        match (self.wait, self.no_wait) {
            (true, _) => true,
            (_, true) => false,
            _ => by_default,
        }
    }
}

impl SendArgs {
    /// The signer, after the flags that need no passphrase are checked.
    pub fn load_signer(&self, waits_by_default: bool) -> Result<PrivateKeySigner> {
        self.options(waits_by_default)?;
        self.signer.load()
    }

    /// The fee, nonce and timeout to send with.
    fn options(&self, waits_by_default: bool) -> Result<SendOptions> {
        if self.wait.waits(waits_by_default) && self.wait.timeout == 0 {
            bail!("--timeout must be at least 1 second");
        }
        let fee = self
            .fee
            .as_deref()
            .map(|f| {
                parse_amount(f, Token::Myc)
                    .with_context(|| format!("bad --fee '{f}' (the fee is in MYC)"))
            })
            .transpose()?;
        Ok(SendOptions {
            fee,
            nonce: self.nonce,
            timeout: Duration::from_secs(self.wait.timeout.max(1)),
        })
    }
}

/// What became of a transaction that did not fail.
#[derive(Debug)]
pub enum Sent {
    /// Accepted by the node's mempool (the command did not wait).
    Submitted(Box<SignedTx>),
    /// Applied in a finalized block.
    Applied(Applied),
}

/// Signs what `build` makes (sender, nonce, fee) with the flags' signer, submits it to `--rpc`
/// and, unless `--no-wait`, follows it until final ([`send`]); the events of its receipt (none
/// when it was not followed). Prints nothing on stdout: the command prints its answer.
pub fn submit_for_events(
    client: &crate::client::ClientArgs,
    args: &SendArgs,
    build: impl FnOnce(alloy_primitives::Address, u64, alloy_primitives::U256) -> TxKind,
) -> Result<Vec<mycel_client::api::Event>> {
    let signer = args.load_signer(true)?;
    let node = client.connect()?;
    let sent = send(&node, args, &signer, false, true, |f| {
        build(f.from, f.nonce, f.fee)
    })?;
    Ok(match sent {
        Sent::Submitted(tx) => {
            eprintln!("sent {} {}", tx.kind.type_name(), tx.hash());
            Vec::new()
        }
        Sent::Applied(applied) => applied.receipt.events,
    })
}

/// Signs what `build` makes (the fee and nonce from the flags, else the node's minimum fee and
/// the account's next nonce), submits it and, if the command waits (`waits_by_default` unless
/// `--wait`/`--no-wait` say otherwise), follows it until it is final. A transaction that fails,
/// is rejected or is still pending at `--timeout` is an error that says what to do next. With
/// `json`, a followed transaction's final status is printed as the node reports it.
pub fn send(
    node: &Node,
    args: &SendArgs,
    signer: &PrivateKeySigner,
    json: bool,
    waits_by_default: bool,
    build: impl FnOnce(TxFields) -> TxKind,
) -> Result<Sent> {
    let options = args.options(waits_by_default)?;
    let tx = node.sign(signer, &options, build)?;
    let hash = node.submit(&tx)?;
    if !args.wait.waits(waits_by_default) {
        return Ok(Sent::Submitted(Box::new(tx)));
    }
    let type_name = tx.kind.type_name();
    if !json {
        eprintln!("submitted {hash} ({type_name}), waiting for finalization…");
    }
    let outcome = node.wait(hash, options.timeout)?;
    if let (true, Some(status)) = (json, final_status(&outcome)) {
        print_json(&status)?;
    }
    match outcome {
        Outcome::Applied(applied) => {
            if !json {
                eprintln!("finalized in block {}", applied.height);
            }
            Ok(Sent::Applied(applied))
        }
        Outcome::Failed { height, error, .. } => bail!(
            "{type_name} {hash} failed in block {height}: {} ({})",
            error.message,
            error.code
        ),
        Outcome::Rejected { error, .. } => bail!(
            "{type_name} {hash} was rejected: {} ({})",
            error.message,
            error.code
        ),
        Outcome::TimedOut { .. } => bail!(
            "{type_name} {hash} is still pending after {}s: check later with `mycel tx {hash}`, or wait longer with --timeout",
            args.wait.timeout
        ),
    }
}

/// What a command that did not wait prints: the node's answer with `json`, else the hash on
/// stdout and how to follow it on stderr.
pub fn print_submitted(tx: &SignedTx, json: bool) -> Result<()> {
    let hash = tx.hash();
    if json {
        return print_json(&TxStatus {
            hash,
            state: TxState::Pending,
        });
    }
    println!("{hash}");
    eprintln!(
        "sent {} from {} (nonce {}); see it with `mycel tx {hash}`",
        tx.kind.type_name(),
        tx.from(),
        tx.nonce()
    );
    Ok(())
}

/// The node's `GET /v1/txs/{hash}` answer for a final outcome.
fn final_status(outcome: &Outcome) -> Option<TxStatus> {
    let state = match outcome.clone() {
        Outcome::Applied(a) => TxState::Finalized {
            height: a.height,
            index: a.index,
            result: TxResult::Receipt(a.receipt),
        },
        Outcome::Failed {
            height,
            index,
            error,
            ..
        } => TxState::Finalized {
            height,
            index,
            result: TxResult::Error(error),
        },
        Outcome::Rejected { error, .. } => TxState::Rejected { error },
        Outcome::TimedOut { .. } => return None,
    };
    Some(TxStatus {
        hash: outcome.hash(),
        state,
    })
}
