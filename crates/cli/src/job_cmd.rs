//! `mycel job`: jobs with escrow (ERC-8183, docs/agents.md). A client creates a job for a
//! provider and an evaluator, the budget is agreed, the client funds it (mUSD into escrow), the
//! provider submits its deliverable, the evaluator completes (pays) or rejects (refunds), and after
//! the expiry anyone refunds a job nobody settled. `list` is how a provider finds its work, from a
//! cursor, missing nothing while it was offline.

use crate::client::{print_json, ClientArgs};
use crate::send::{self, SendArgs};
use crate::session_cmd::musd;
use alloy_primitives::{Address, B256, U256};
use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use mycel_client::api::{self, Event, JobEvent, JobStatus};
use mycel_client::JobFilter;
use mycel_types::tx::{
    ClaimJobRefund, CompleteJob, CreateJob, DisputeJob, FundJob, RejectJob, SetJobBudget,
    SetJobProvider, SubmitJob,
};
use mycel_types::{format_amount, Token, TxKind};

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Create a job (you are the client); prints its id.
    Create(CreateArgs),
    /// Name the provider of your open job.
    SetProvider(SetProviderArgs),
    /// Propose the budget of an open job (client or provider).
    Budget(BudgetArgs),
    /// Fund your job: its budget (which must be what you expect) goes into escrow.
    Fund(BudgetArgs),
    /// As the provider: deliver (the deliverable's hash and where to fetch it).
    Submit(SubmitArgs),
    /// As the evaluator: accept the delivery; the provider is paid.
    Complete(DecideArgs),
    /// As the evaluator: reject a funded or delivered job (refunds the client); as the client:
    /// cancel a job you have not funded.
    Reject(DecideArgs),
    /// After the expiry: refund a job nobody settled to its client (anyone may).
    Refund(JobTxArgs),
    /// As the client, within the dispute window after delivery: hand the decision to a subnet
    /// validator, which re-runs the deliverable and completes or rejects the job.
    Dispute(DisputeArgs),
    /// Show a job.
    Show(ShowArgs),
    /// List jobs, e.g. a provider's funded work: --provider ADDRESS --status funded.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Who will do the work (can be set later with set-provider).
    #[arg(long, value_name = "ADDRESS")]
    pub provider: Option<Address>,
    /// Who decides whether the work is accepted.
    #[arg(long, value_name = "ADDRESS")]
    pub evaluator: Address,
    /// Seconds from now (the chain's time) until the job expires.
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    pub expires_in: u64,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Seconds after delivery in which you may hand the decision to a subnet validator's
    /// re-execution (`mycel job dispute`); the evaluator cannot complete the job during them.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub dispute_window: u64,
    /// A platform that takes --platform-fee-bps of the budget on completion.
    #[arg(long, value_name = "ADDRESS", requires = "platform_fee_bps")]
    pub platform: Option<Address>,
    /// The platform's fee in basis points (at most 1000 = 10%).
    #[arg(long, value_name = "BPS")]
    pub platform_fee_bps: Option<u16>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SetProviderArgs {
    #[arg(long, value_name = "ID")]
    pub job: u64,
    #[arg(long, value_name = "ADDRESS")]
    pub provider: Address,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct BudgetArgs {
    #[arg(long, value_name = "ID")]
    pub job: u64,
    /// In mUSD (e.g. 2.5).
    #[arg(long, value_name = "MUSD")]
    pub amount: String,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[arg(long, value_name = "ID")]
    pub job: u64,
    /// The deliverable's hash (0x + 32 bytes), e.g. an inference receipt's hash.
    #[arg(long, value_name = "HASH")]
    pub deliverable: B256,
    /// Where to fetch the deliverable.
    #[arg(long, value_name = "URL", default_value = "")]
    pub uri: String,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    #[arg(long, value_name = "ID")]
    pub job: u64,
    /// A 32-byte reason (e.g. the hash of a report) [default: zero].
    #[arg(long, value_name = "HASH")]
    pub reason: Option<B256>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct JobTxArgs {
    #[arg(long, value_name = "ID")]
    pub job: u64,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct DisputeArgs {
    #[arg(long, value_name = "ID")]
    pub job: u64,
    /// The subnet whose validator decides.
    #[arg(long, value_name = "NETUID", default_value_t = 1)]
    pub netuid: u16,
    /// The validator's hotkey (it must hold a validator permit in the subnet).
    #[arg(long, value_name = "ADDRESS")]
    pub validator: Address,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The job id.
    pub job: u64,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_name = "ADDRESS")]
    pub client_address: Option<Address>,
    #[arg(long, value_name = "ADDRESS")]
    pub provider: Option<Address>,
    #[arg(long, value_name = "ADDRESS")]
    pub evaluator: Option<Address>,
    /// open, funded, submitted, completed, rejected or expired.
    #[arg(long, value_parser = parse_status)]
    pub status: Option<JobStatus>,
    /// Start from this job id (a previous page's next cursor).
    #[arg(long, value_name = "ID")]
    pub cursor: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn parse_status(text: &str) -> Result<JobStatus, String> {
    JobStatus::parse(text).ok_or_else(|| {
        format!("'{text}' is not open, funded, submitted, completed, rejected or expired")
    })
}

fn job_events(
    client: &ClientArgs,
    send: &SendArgs,
    build: impl FnOnce(Address, u64, U256) -> TxKind,
) -> Result<Vec<JobEvent>> {
    Ok(send::submit_for_events(client, send, build)?
        .into_iter()
        .filter_map(Event::into_job)
        .collect())
}

pub fn run(command: JobCommand) -> Result<()> {
    match command {
        JobCommand::Create(args) => create(args),
        JobCommand::SetProvider(args) => {
            let (id, provider) = (args.job, args.provider);
            job_events(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::SetJobProvider(SetJobProvider {
                    from,
                    jobId: id,
                    provider,
                    nonce,
                    fee,
                })
            })?;
            show(&args.client, id)
        }
        JobCommand::Budget(args) => {
            let (id, amount) = (args.job, musd(&args.amount, "--amount")?);
            job_events(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::SetJobBudget(SetJobBudget {
                    from,
                    jobId: id,
                    amount: U256::from(amount),
                    nonce,
                    fee,
                })
            })?;
            show(&args.client, id)
        }
        JobCommand::Fund(args) => {
            let (id, amount) = (args.job, musd(&args.amount, "--amount")?);
            job_events(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::FundJob(FundJob {
                    from,
                    jobId: id,
                    expectedBudget: U256::from(amount),
                    nonce,
                    fee,
                })
            })?;
            show(&args.client, id)
        }
        JobCommand::Submit(args) => {
            let (id, deliverable, uri) = (args.job, args.deliverable, args.uri.clone());
            job_events(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::SubmitJob(SubmitJob {
                    from,
                    jobId: id,
                    deliverable,
                    deliverableURI: uri,
                    nonce,
                    fee,
                })
            })?;
            show(&args.client, id)
        }
        JobCommand::Complete(args) => {
            let (id, reason) = (args.job, args.reason.unwrap_or_default());
            job_events(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::CompleteJob(CompleteJob {
                    from,
                    jobId: id,
                    reason,
                    nonce,
                    fee,
                })
            })?;
            show(&args.client, id)
        }
        JobCommand::Reject(args) => {
            let (id, reason) = (args.job, args.reason.unwrap_or_default());
            job_events(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::RejectJob(RejectJob {
                    from,
                    jobId: id,
                    reason,
                    nonce,
                    fee,
                })
            })?;
            show(&args.client, id)
        }
        JobCommand::Refund(args) => {
            let id = args.job;
            job_events(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::ClaimJobRefund(ClaimJobRefund {
                    from,
                    jobId: id,
                    nonce,
                    fee,
                })
            })?;
            show(&args.client, id)
        }
        JobCommand::Dispute(args) => {
            let (id, netuid, validator) = (args.job, args.netuid, args.validator);
            job_events(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::DisputeJob(DisputeJob {
                    from,
                    jobId: id,
                    netuid,
                    validator,
                    nonce,
                    fee,
                })
            })?;
            show(&args.client, id)
        }
        JobCommand::Show(args) => show(&args.client, args.job),
        JobCommand::List(args) => list(args),
    }
}

fn create(args: CreateArgs) -> Result<()> {
    let node = args.client.connect()?;
    // The expiry counts from the chain's latest block time, which the chain checks it against.
    let now = node.latest_block()?.timestamp_ms / 1000;
    let expired_at = now + args.expires_in;
    let (provider, evaluator) = (args.provider.unwrap_or(Address::ZERO), args.evaluator);
    let dispute_window = args.dispute_window;
    let (platform, bps) = (
        args.platform.unwrap_or(Address::ZERO),
        args.platform_fee_bps.unwrap_or(0),
    );
    let description = args.description.clone();
    let events = job_events(&args.client, &args.send, move |from, nonce, fee| {
        TxKind::CreateJob(CreateJob {
            from,
            provider,
            evaluator,
            expiredAt: expired_at,
            disputeWindow: dispute_window,
            description,
            platform,
            platformFeeBps: bps,
            nonce,
            fee,
        })
    })?;
    let id = events
        .iter()
        .find_map(|e| match e {
            JobEvent::Created { job_id, .. } => Some(*job_id),
            _ => None,
        })
        .ok_or_else(|| anyhow!("the job was not created (its receipt has no Created event)"))?;
    if args.client.json {
        return show(&args.client, id);
    }
    println!("{id}");
    eprintln!("created job {id}: set its budget with `mycel job budget --job {id} --amount MUSD`");
    Ok(())
}

fn show(client: &ClientArgs, id: u64) -> Result<()> {
    let j = client.connect()?.job(id)?;
    if client.json {
        return print_json(&j);
    }
    print_job(&j);
    Ok(())
}

fn print_job(j: &api::Job) {
    let m = |a: u128| format_amount(a, Token::Musd);
    let opt = |a: Option<Address>| a.map_or("-".into(), |a| a.to_string());
    println!("job {} ({})", j.job_id, j.status);
    println!("  client     {}", j.client);
    println!("  provider   {}", opt(j.provider));
    println!("  evaluator  {}", j.evaluator);
    println!(
        "  budget     {} mUSD (escrowed {})",
        m(j.budget),
        m(j.escrowed)
    );
    println!("  expires    block time {} s", j.expired_at_s);
    if let Some(p) = j.platform {
        println!("  platform   {p} ({} bps)", j.platform_fee_bps);
    }
    if let Some(d) = j.deliverable {
        println!("  delivered  {d} {}", j.deliverable_uri);
    }
    match (j.disputed, j.dispute_window_s, j.submitted_at_s) {
        (true, _, _) => println!("  disputed: the validator {} decides", j.evaluator),
        (false, w, Some(at)) if w > 0 => {
            println!("  dispute window until block time {} s", at + w)
        }
        (false, w, None) if w > 0 => println!("  dispute window {w} s after delivery"),
        _ => {}
    }
    if !j.description.is_empty() {
        println!("  {}", j.description);
    }
}

fn list(args: ListArgs) -> Result<()> {
    let filter = JobFilter {
        client: args.client_address,
        provider: args.provider,
        evaluator: args.evaluator,
        status: args.status,
    };
    let page = args.client.connect()?.jobs(filter, args.cursor)?;
    if args.client.json {
        return print_json(&page);
    }
    for j in &page.jobs {
        println!(
            "{:>5}  {:<9}  {:>12} mUSD  client {}  provider {}",
            j.job_id,
            j.status.as_str(),
            format_amount(j.budget, Token::Musd),
            j.client,
            j.provider.map_or("-".into(), |p| p.to_string())
        );
    }
    if let Some(next) = page.next_cursor {
        eprintln!("more: add --cursor {next}");
    }
    Ok(())
}
