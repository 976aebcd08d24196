//! `mycel allowance`: give an agent key a budget instead of your key (docs/agents.md). The
//! agent's transfers and the x402 payments it signs then move your tokens, within the limits;
//! anything over a limit is refused with the limit's code.

use crate::client::{print_json, ClientArgs};
use crate::send::{self, SendArgs};
use alloy_primitives::{Address, U256};
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use mycel_client::api;
use mycel_types::tx::{GrantAllowance, RevokeAllowance};
use mycel_types::{format_amount, parse_amount, Token, TxKind};

#[derive(Debug, Subcommand)]
pub enum AllowanceCommand {
    /// Let an agent key spend from your account within limits (replaces an earlier grant).
    Grant(GrantArgs),
    /// Show an agent key's allowance and what it may still spend.
    Show(ShowArgs),
    /// End your grant to an agent key.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The agent key.
    #[arg(long, value_name = "ADDRESS")]
    pub agent: Address,
    /// mUSD the agent may spend per period.
    #[arg(long, value_name = "MUSD")]
    pub musd_per_period: Option<String>,
    /// mUSD per transaction at most [default: the period budget].
    #[arg(long, value_name = "MUSD")]
    pub musd_per_tx: Option<String>,
    /// MYC the agent may spend per period.
    #[arg(long, value_name = "MYC")]
    pub myc_per_period: Option<String>,
    /// MYC per transaction at most [default: the period budget].
    #[arg(long, value_name = "MYC")]
    pub myc_per_tx: Option<String>,
    /// The period, in blocks (86400 is a day of 1 s blocks).
    #[arg(long, value_name = "BLOCKS", default_value_t = 86_400)]
    pub period_blocks: u64,
    /// Only these recipients (repeat) [default: anyone].
    #[arg(long = "to", value_name = "ADDRESS")]
    pub recipients: Vec<Address>,
    /// Only these kinds (repeat): Transfer, TransferWithAuthorization, TopUpDeployment (the
    /// owner's deployments only) [default: the first two].
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,
    /// Stop working this many blocks from now [default: never].
    #[arg(long, value_name = "BLOCKS")]
    pub expires_in: Option<u64>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The agent key.
    pub agent: Address,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[arg(long, value_name = "ADDRESS")]
    pub agent: Address,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run(command: AllowanceCommand) -> Result<()> {
    match command {
        AllowanceCommand::Grant(args) => grant(args),
        AllowanceCommand::Show(args) => show(&args.client, args.agent),
        AllowanceCommand::Revoke(args) => {
            let agent = args.agent;
            send::submit_for_events(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::RevokeAllowance(RevokeAllowance {
                    from,
                    agent,
                    nonce,
                    fee,
                })
            })?;
            if !args.client.json {
                eprintln!("revoked: {agent} spends only its own account from now on");
            }
            Ok(())
        }
    }
}

/// `(per period, per transaction)` of one token from its two flags, if given.
fn limit(
    token: Token,
    per_period: &Option<String>,
    per_tx: &Option<String>,
) -> Result<Option<(Address, U256, U256)>> {
    let parse =
        |text: &str| parse_amount(text, token).map_err(|e| anyhow!("{token} amount '{text}': {e}"));
    match (per_period, per_tx) {
        (None, None) => Ok(None),
        (None, Some(_)) => bail!("a per-transaction cap of {token} needs its per-period budget"),
        (Some(period), tx) => {
            let budget = parse(period)?;
            let cap = tx.as_deref().map(parse).transpose()?.unwrap_or(budget);
            Ok(Some((token.address(), U256::from(budget), U256::from(cap))))
        }
    }
}

fn grant(args: GrantArgs) -> Result<()> {
    let limits: Vec<(Address, U256, U256)> = [
        limit(Token::Musd, &args.musd_per_period, &args.musd_per_tx)?,
        limit(Token::Myc, &args.myc_per_period, &args.myc_per_tx)?,
    ]
    .into_iter()
    .flatten()
    .collect();
    if limits.is_empty() {
        bail!("give a budget: --musd-per-period and/or --myc-per-period");
    }
    let expires_at = match args.expires_in {
        Some(blocks) => args.client.connect()?.status()?.height + blocks,
        None => 0,
    };
    let (agent, period, recipients, kinds) = (
        args.agent,
        args.period_blocks,
        args.recipients.clone(),
        args.kinds.clone(),
    );
    send::submit_for_events(&args.client, &args.send, move |from, nonce, fee| {
        TxKind::GrantAllowance(GrantAllowance {
            from,
            agent,
            tokens: limits.iter().map(|l| l.0).collect(),
            periodBudgets: limits.iter().map(|l| l.1).collect(),
            maxPerTx: limits.iter().map(|l| l.2).collect(),
            periodBlocks: period,
            recipients,
            kinds,
            expiresAt: expires_at,
            nonce,
            fee,
        })
    })?;
    show(&args.client, agent)
}

fn show(client: &ClientArgs, agent: Address) -> Result<()> {
    let a = client.connect()?.allowance(agent)?;
    if client.json {
        return print_json(&a);
    }
    print_allowance(&a);
    Ok(())
}

fn print_allowance(a: &api::Allowance) {
    println!("allowance of {} from {}", a.agent, a.owner);
    for t in &a.tokens {
        let f = |v: u128| format_amount(v, t.token);
        println!(
            "  {:<5} {} per {} blocks, {} per transaction; spent {}, may spend {} now",
            t.token.to_string(),
            f(t.period_budget),
            a.period_blocks,
            f(t.max_per_tx),
            f(t.spent),
            f(t.spendable)
        );
    }
    println!("  next period from block {}", a.next_period);
    if !a.recipients.is_empty() {
        let to: Vec<String> = a.recipients.iter().map(Address::to_string).collect();
        println!("  only to {}", to.join(", "));
    }
    println!("  kinds {}", a.kinds.join(", "));
    if a.expires_at != 0 {
        println!("  expires at block {}", a.expires_at);
    }
}
