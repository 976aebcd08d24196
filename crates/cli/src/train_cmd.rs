//! `mycel train`: the training subnet's roles and views (crates/train/src/roles, docs/training.md).

use std::path::PathBuf;
use std::sync::Arc;

use alloy_primitives::Address;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use mycel_client::NodeClient;
use mycel_train::roles::{self, miner, validator, Say};
use mycel_train::run::RunSpec;

use crate::signer::SignerArgs;

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Start a training run on a subnet you own: store its first checkpoint as a blob and put
    /// the run on chain.
    #[command(
        after_help = "Example:\n  mycel train start --netuid 2 --dev-account 0 \
        --aggregator-dev-account 4 --run tiny --round-blocks 40 --reveal-blocks 10"
    )]
    Start(StartArgs),
    /// Train the run's checkpoint each round on this hotkey's shard and send compressed updates.
    Miner(RoleArgs),
    /// Score each round's updates, set weights, and (as the run's aggregator) publish the next
    /// checkpoint.
    Validator(ValidatorArgs),
    /// Show a subnet's training run: round, deadlines, commits, checkpoints.
    Status(StatusArgs),
    /// Draw the held-out loss of a validator's --report file as an SVG chart.
    Plot(PlotArgs),
    /// Write the checkpoint a round trained from (ROUND = rounds done) as a GGUF that
    /// `mycel miner --model` serves.
    Export(ExportArgs),
}

/// Where the node is and which subnet.
#[derive(Debug, Args)]
pub struct Target {
    /// The training subnet.
    #[arg(long, value_name = "N")]
    pub netuid: u16,
    /// A node's HTTP API.
    #[arg(
        long,
        value_name = "URL",
        env = "MYCEL_RPC",
        default_value = "http://127.0.0.1:8545"
    )]
    pub rpc: String,
    /// Checkpoints are cached here [default: $MYCEL_TRAIN_CACHE or ~/.cache/mycel/train].
    #[arg(long, value_name = "DIR", env = "MYCEL_TRAIN_CACHE")]
    pub cache: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub key: SignerArgs,
    /// The run: `tiny` (3.3M parameters, seconds a round) or `subnet` (15.8M).
    #[arg(long, default_value = "tiny")]
    pub run: String,
    /// The first checkpoint's seed (64 hex digits) [default: zeros].
    #[arg(long, value_name = "HEX")]
    pub seed: Option<String>,
    /// Who publishes the checkpoints (a validator's hotkey).
    #[arg(
        long,
        value_name = "ADDRESS",
        conflicts_with = "aggregator_dev_account"
    )]
    pub aggregator: Option<Address>,
    /// Use development account N as the aggregator.
    #[arg(long, value_name = "N")]
    pub aggregator_dev_account: Option<u32>,
    /// Blocks in which a round's updates are committed.
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub round_blocks: u64,
    /// Blocks after the deadline in which updates are revealed.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub reveal_blocks: u64,
    /// Storage epochs the first checkpoint is paid for.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub epochs: u64,
}

#[derive(Debug, Args)]
pub struct RoleArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub key: SignerArgs,
    /// Stop after N rounds [default: run until interrupted].
    #[arg(long, value_name = "N")]
    pub rounds: Option<u64>,
    /// Storage epochs each stored blob is paid for.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub epochs: u64,
    /// Compute threads for training and scoring [default: one per core]. The results are the
    /// same bits at any count.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

#[derive(Debug, Args)]
pub struct ValidatorArgs {
    #[command(flatten)]
    pub role: RoleArgs,
    /// Write every round's verdicts, scores and losses as JSON to FILE after each round.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Miners whose inner steps are re-run every round and compared byte for byte (each costs
    /// one miner's round of compute). 0 scores without re-running.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub rerun: usize,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    /// Print the run as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    /// The JSON report `mycel train validator --report FILE` writes.
    pub report: PathBuf,
    /// The SVG to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The chart's title.
    #[arg(long, default_value = "held-out loss by round")]
    pub title: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Rounds done: 0 is the first checkpoint, N the one N rounds produced.
    pub round: u64,
    #[command(flatten)]
    pub target: Target,
    /// The GGUF to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

pub fn run(command: TrainCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match command {
        TrainCommand::Start(args) => runtime.block_on(start(args)),
        TrainCommand::Miner(args) => {
            crate::logging::init(crate::logging::SUBNET);
            runtime.block_on(interruptible(run_miner(args)))
        }
        TrainCommand::Validator(args) => {
            crate::logging::init(crate::logging::SUBNET);
            runtime.block_on(interruptible(run_validator(args)))
        }
        TrainCommand::Status(args) => runtime.block_on(status(args)),
        TrainCommand::Export(args) => runtime.block_on(export(args)),
        TrainCommand::Plot(args) => plot(args),
    }
}

/// Runs `role` until it ends or Ctrl-C.
async fn interruptible(role: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::select! {
        done = role => done,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            Ok(())
        }
    }
}

fn node(target: &Target) -> Result<NodeClient> {
    NodeClient::new(&target.rpc).map_err(|e| anyhow!("--rpc: {e}"))
}

fn cache(target: &Target) -> Result<PathBuf> {
    let base = match &target.cache {
        Some(dir) => dir.clone(),
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache/mycel/train"))
            .ok_or_else(|| anyhow!("HOME is not set: pass --cache DIR"))?,
    };
    Ok(base.join(format!("subnet-{}", target.netuid)))
}

fn signer(key: &SignerArgs, what: &str) -> Result<alloy_signer_local::PrivateKeySigner> {
    key.load_if_given()?
        .ok_or_else(|| anyhow!("say which key signs as {what}: --key FILE|NAME or --dev-account N"))
}

fn say() -> Say {
    Arc::new(|line| eprintln!("{line}"))
}

async fn start(args: StartArgs) -> Result<()> {
    let owner = signer(&args.key, "the subnet owner")?;
    let aggregator = match (args.aggregator, args.aggregator_dev_account) {
        (Some(a), _) => a,
        (None, Some(n)) => crate::signer::resolve(
            None,
            Some(n),
            "--aggregator-dev-account",
            &args.key.keystore,
            &args.key.password,
        )?
        .expect("a dev account")
        .address(),
        (None, None) => bail!(
            "say who publishes the checkpoints: --aggregator ADDRESS or --aggregator-dev-account N"
        ),
    };
    let mut spec = RunSpec::named(&args.run)?;
    if let Some(seed) = &args.seed {
        let bytes = hex::decode(seed.trim_start_matches("0x")).context("--seed is not hex")?;
        spec.seed = bytes
            .try_into()
            .map_err(|_| anyhow!("--seed must be 32 bytes (64 hex digits)"))?;
    }
    let node = node(&args.target)?;
    node.subnet(args.target.netuid)
        .await
        .map_err(|e| anyhow!("{e} (is the node at {} running?)", args.target.rpc))?;
    let netuid = args.target.netuid;
    let setup = roles::RunSetup {
        aggregator,
        round_blocks: args.round_blocks,
        reveal_blocks: args.reveal_blocks,
        epochs: args.epochs,
    };
    let blob = roles::start_run(
        &node,
        &owner,
        netuid,
        spec,
        setup,
        &cache(&args.target)?,
        &say(),
    )
    .await?;
    println!(
        "training run started on subnet {netuid}: checkpoint blob {blob}, aggregator {aggregator}"
    );
    Ok(())
}

async fn run_miner(args: RoleArgs) -> Result<()> {
    let hotkey = signer(&args.key, "the miner's hotkey")?;
    if let Some(threads) = args.threads {
        roles::use_threads(threads.into())?;
    }
    let node = node(&args.target)?;
    register(&node, args.target.netuid, &hotkey).await?;
    let corpus = load_corpus().await?;
    let config = miner::MinerConfig {
        netuid: args.target.netuid,
        hotkey,
        cache: cache(&args.target)?,
        update_epochs: args.epochs,
        rounds: args.rounds,
    };
    miner::run(node, config, corpus, say()).await?;
    Ok(())
}

async fn run_validator(args: ValidatorArgs) -> Result<()> {
    let role = args.role;
    let hotkey = signer(&role.key, "the validator's hotkey")?;
    if let Some(threads) = role.threads {
        roles::use_threads(threads.into())?;
    }
    let node = node(&role.target)?;
    register(&node, role.target.netuid, &hotkey).await?;
    let corpus = load_corpus().await?;
    let config = validator::ValidatorConfig {
        netuid: role.target.netuid,
        hotkey,
        cache: cache(&role.target)?,
        checkpoint_epochs: role.epochs,
        rounds: role.rounds,
        report: args.report,
        rerun: args.rerun,
    };
    validator::run(node, config, corpus, say()).await?;
    Ok(())
}

/// Registers `hotkey` on the subnet (it pays its own burn) unless it is registered.
async fn register(
    node: &NodeClient,
    netuid: u16,
    hotkey: &alloy_signer_local::PrivateKeySigner,
) -> Result<()> {
    let (uid, new) = mycel_subnet::validator::chain::ensure_registered(
        node,
        netuid,
        hotkey,
        hotkey,
        roles::TX_TIMEOUT,
    )
    .await?;
    if new {
        eprintln!(
            "registered hotkey {} on subnet {netuid} as uid {uid}",
            hotkey.address()
        );
    }
    Ok(())
}

async fn load_corpus() -> Result<Arc<mycel_train::corpus::Corpus>> {
    eprintln!("loading the training corpus (fetched and tokenized on first use)…");
    let loaded = tokio::task::spawn_blocking(mycel_train::corpus::load_default).await??;
    Ok(Arc::new(loaded.corpus))
}

async fn status(args: StatusArgs) -> Result<()> {
    let node = node(&args.target)?;
    let Some(run) = roles::training_run(&node, args.target.netuid).await? else {
        bail!(
            "subnet {} has no training run (start one with `mycel train start`)",
            args.target.netuid
        );
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
        return Ok(());
    }
    let height = roles::height(&node).await?;
    println!("subnet {} training run (spec {})", run.netuid, run.spec);
    println!("  aggregator   {}", run.aggregator);
    println!(
        "  round        {} (began at block {}, now {height})",
        run.round, run.round_start
    );
    println!("  commits      until block {}", run.deadline);
    println!("  reveals      until block {}", run.reveal_end);
    println!("  checkpoint   {}", run.checkpoint);
    println!("  updates      {}", run.updates.len());
    for u in &run.updates {
        let blob = u
            .blob_id
            .map_or("not revealed".to_string(), |b| b.to_string());
        println!("    #{} {} {}", u.commit_index, u.hotkey, blob);
    }
    println!("  checkpoints");
    for c in &run.history {
        println!(
            "    round {:>4}  block {:>8}  {} updates  {}",
            c.round, c.height, c.accepted, c.checkpoint
        );
    }
    Ok(())
}

async fn export(args: ExportArgs) -> Result<()> {
    let node = node(&args.target)?;
    let Some(run) = roles::training_run(&node, args.target.netuid).await? else {
        bail!("subnet {} has no training run", args.target.netuid);
    };
    let entry = run.history.get(args.round as usize).ok_or_else(|| {
        anyhow!(
            "round {} has no checkpoint yet: the run has {} (0 to {})",
            args.round,
            run.history.len(),
            run.history.len() - 1
        )
    })?;
    eprintln!("reading checkpoint {} …", entry.checkpoint);
    let checkpoint = roles::load_checkpoint(
        &node,
        entry.checkpoint,
        entry.checkpoint_hash,
        roles::MAX_CHECKPOINT_BYTES,
        &cache(&args.target)?,
    )
    .await?;
    let out = args.output.clone();
    let name = format!(
        "mycel-train subnet {} round {}",
        args.target.netuid, args.round
    );
    tokio::task::spawn_blocking(move || {
        let loaded = mycel_train::corpus::load_default()?;
        let params =
            mycel_train::model::Params::from_flat(checkpoint.spec.model, &checkpoint.params)?;
        mycel_train::export::export_gguf(&params, &loaded.tokenizer_gguf, &name, &out)
    })
    .await??;
    println!("wrote {}", args.output.display());
    Ok(())
}

fn plot(args: PlotArgs) -> Result<()> {
    let text = std::fs::read(&args.report)
        .with_context(|| format!("cannot read {}", args.report.display()))?;
    let reports: Vec<validator::RoundReport> = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a validator report", args.report.display()))?;
    let svg = roles::curve::loss_curve_svg(&reports, &args.title)
        .ok_or_else(|| anyhow!("{} has no finished round yet", args.report.display()))?;
    std::fs::write(&args.output, svg)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    for (round, loss) in roles::curve::held_out_losses(&reports) {
        println!("round {round:>4}  held-out loss {loss:.4}");
    }
    Ok(())
}
