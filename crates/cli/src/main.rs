//! `mycel`: the one binary of the mycel network.
//!
//! Node roles (`up`, `node`, `init`, `localnet`) live in `node_cmd`; key management in `keys`;
//! the commands that read a running node over its HTTP API (docs/node-api.md) in `client`, which
//! also holds what every node-facing command shares (the connection through mycel-client, the
//! hints for the node's error codes). Shared flags and setup are defined once: who signs in
//! `signer`, how a transaction is sent and followed in `send`, logging in `logging`.
//!
//! Exit codes: 0 on success, 1 on any error (including a command line that does not parse).
//! Errors go to stderr and say what went wrong and what to do about it.

mod agent_cmd;
mod allowance_cmd;
mod blob_cmd;
mod client;
mod epoch_cmd;
mod follow_cmd;
mod gateway_cmd;
mod http_limits;
mod incentive_cmd;
mod job_cmd;
mod keys;
mod logging;
mod market_cmd;
mod mcp_cmd;
mod miner_cmd;
mod model_cmd;
mod node_cmd;
mod pay_cmd;
mod provider_cmd;
mod receipt_cmd;
mod send;
mod session_cmd;
mod signer;
mod train_cmd;
mod up_follower;
mod up_provider;
mod up_roles;
mod up_storage;
mod up_subnet;
mod up_train;
mod validator_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mycel: an open network for verifiable, pay-per-use AI.
///
/// Start a whole devnet on this machine with `mycel up`, then use the client commands
/// (`status`, `balance`, `transfer`, `tx`, `block`) against it. Keys live in encrypted
/// Ethereum JSON keystores managed by `mycel key`.
#[derive(Debug, Parser)]
#[command(
    name = "mycel",
    version,
    propagate_version = true,
    arg_required_else_help = true,
    after_help = "Get started:\n  \
      mycel up                      # a devnet on this machine, API on http://127.0.0.1:8545\n  \
      mycel status                  # in another terminal\n  \
      mycel transfer --dev-account 0 --to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --amount 1.5 --wait"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a whole devnet on this machine (one validator and its HTTP API) and, unless
    /// --chain-only, an inference subnet: two miners, a validator and the x402 gateway. Prints URLs.
    Up(node_cmd::UpArgs),
    /// Run one validator node from a config file written by `mycel init` or `mycel localnet`, or
    /// with --follow URL a follower that syncs from other nodes and serves the node API.
    Node(node_cmd::NodeArgs),
    /// Write a genesis and node configs for a new network.
    Init(node_cmd::InitArgs),
    /// Write (if needed) and start an N-validator network on loopback, with --followers N
    /// followers of it.
    Localnet(node_cmd::LocalnetArgs),
    /// Create, import and list keys (encrypted Ethereum JSON keystores).
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Show the node's chain id, height, latest block and fee parameters.
    Status(client::StatusArgs),
    /// Show the MYC and mUSD balances and the next nonce of an account.
    Balance(client::BalanceArgs),
    /// Sign a transfer of MYC or mUSD and submit it to the node.
    Transfer(client::TransferArgs),
    /// Show the status and receipt of a transaction.
    Tx(client::TxArgs),
    /// Show a finalized block and its transactions.
    Block(client::BlockArgs),
    /// Run one Yuma consensus epoch on JSON input (no chain) and print the result as JSON.
    Epoch(epoch_cmd::EpochArgs),
    /// Create, list, show and configure subnets (docs/incentives.md).
    #[command(subcommand)]
    Subnet(incentive_cmd::SubnetCommand),
    /// Register neurons (hotkeys) on a subnet, list them, announce their endpoints.
    #[command(subcommand)]
    Neuron(incentive_cmd::NeuronCommand),
    /// Stake MYC on a subnet's hotkeys (a swap into its alpha), unstake, list positions.
    #[command(subcommand)]
    Stake(incentive_cmd::StakeCommand),
    /// Set, commit and reveal a validator's weights on a subnet.
    #[command(subcommand)]
    Weights(incentive_cmd::WeightsCommand),
    /// Show a subnet's metagraph: every UID's stake, consensus, incentive, dividends, emission.
    Metagraph(incentive_cmd::MetagraphArgs),
    /// Show the MYC emission schedule and where the last block's emission went.
    Emission(incentive_cmd::EmissionArgs),
    /// Use a model locally: tokenize, show its metadata and id, generate.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// Serve an OpenAI-compatible API behind an x402 paywall, settling mUSD payments on the chain.
    Gateway(Box<gateway_cmd::GatewayArgs>),
    /// Call a URL that asks for an x402 payment: show the price, pay it in mUSD (within --max).
    Pay(pay_cmd::PayArgs),
    /// Ask a paid gateway one question: shows the price, pays it (within --max), prints the answer.
    Chat(pay_cmd::ChatArgs),
    /// Pay a gateway per call from an escrow channel: open, sign vouchers, show, close, withdraw.
    #[command(subcommand)]
    Session(session_cmd::SessionCommand),
    /// ERC-8004 agents: register, show, list, rate (with a payment as proof), wallets, history.
    #[command(subcommand)]
    Agent(agent_cmd::AgentCommand),
    /// Spend allowances: let an agent key spend from your account within limits.
    #[command(subcommand)]
    Allowance(allowance_cmd::AllowanceCommand),
    /// ERC-8183 jobs with escrow: create, budget, fund, submit, complete, reject, refund, list.
    #[command(subcommand)]
    Job(job_cmd::JobCommand),
    /// Serve the network as MCP tools for AI assistants (stdio, or streamable HTTP with --listen).
    Mcp(mcp_cmd::McpArgs),
    /// Serve a model on an OpenAI-compatible API, signing a receipt for every completion.
    Miner(miner_cmd::MinerArgs),
    /// Check inference receipts: signature, request, and (with --rerun) the output itself.
    #[command(subcommand)]
    Receipt(receipt_cmd::ReceiptCommand),
    /// Challenge a subnet's miners each tempo, check their receipts, re-run a sample, set weights.
    Validator(validator_cmd::ValidatorArgs),
    /// The training subnet: start a run, mine, validate, show its status, export a checkpoint as
    /// a GGUF (docs/training.md).
    #[command(subcommand)]
    Train(train_cmd::TrainCommand),
    /// Run a storage node: keep slivers of the blobs the chain pays for, serve them (docs/storage.md).
    Storage(Box<blob_cmd::StorageArgs>),
    /// Store files as erasure-coded blobs on the storage nodes, read them back, extend, delete.
    #[command(subcommand)]
    Blob(blob_cmd::BlobCommand),
    /// Rent a machine for a manifest: escrow mUSD, open an order, take the cheapest bid as a lease
    /// paid per block; `status|watch|top-up|accept|close` (docs/compute.md).
    Deploy(Box<market_cmd::DeployArgs>),
    /// The compute market: providers, orders, deployments; register a provider, bid, withdraw.
    #[command(subcommand)]
    Market(market_cmd::MarketCommand),
    /// Rent this machine out: register it, bid on orders, serve the leases won (their models
    /// from blob storage, with `mycel miner`), withdraw earnings (docs/compute.md).
    Provider(Box<provider_cmd::ProviderArgs>),
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, which turns `mycel … | head` into a "broken pipe" panic. A command-line
    // tool should simply stop when its reader goes away, as cat and grep do.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version print to stdout and succeed; a bad command line is an error (1).
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", client::describe(&err));
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Up(args) => node_cmd::run_up(args),
        Command::Node(args) => node_cmd::run_node(args),
        Command::Init(args) => node_cmd::run_init(args),
        Command::Localnet(args) => node_cmd::run_localnet(args),
        Command::Key(command) => keys::run(command),
        Command::Status(args) => client::run_status(args),
        Command::Balance(args) => client::run_balance(args),
        Command::Transfer(args) => client::run_transfer(args),
        Command::Tx(args) => client::run_tx(args),
        Command::Block(args) => client::run_block(args),
        Command::Epoch(args) => epoch_cmd::run(args),
        Command::Subnet(command) => incentive_cmd::run_subnet(command),
        Command::Neuron(command) => incentive_cmd::run_neuron(command),
        Command::Stake(command) => incentive_cmd::run_stake(command),
        Command::Weights(command) => incentive_cmd::run_weights(command),
        Command::Metagraph(args) => incentive_cmd::run_metagraph(args),
        Command::Emission(args) => incentive_cmd::run_emission(args),
        Command::Model(command) => model_cmd::run(command),
        Command::Gateway(args) => gateway_cmd::run(*args),
        Command::Pay(args) => pay_cmd::run_pay(args),
        Command::Chat(args) => pay_cmd::run_chat(args),
        Command::Session(command) => session_cmd::run(command),
        Command::Storage(args) => blob_cmd::run_storage(*args),
        Command::Blob(command) => blob_cmd::run(command),
        Command::Deploy(args) => market_cmd::run_deploy(*args),
        Command::Market(command) => market_cmd::run_market(command),
        Command::Provider(args) => provider_cmd::run(*args),
        Command::Agent(command) => agent_cmd::run(command),
        Command::Job(command) => job_cmd::run(command),
        Command::Allowance(command) => allowance_cmd::run(command),
        Command::Mcp(args) => mcp_cmd::run(args),
        Command::Miner(args) => miner_cmd::run(args),
        Command::Receipt(command) => receipt_cmd::run(command),
        Command::Validator(args) => validator_cmd::run(args),
        Command::Train(command) => train_cmd::run(command),
    }
}

/// Runs a miner, validator or gateway as its own command: `start` gets the future that resolves
/// on Ctrl-C and returns what it bound and the future that runs the role; this drives both on a
/// runtime of the role's own until the role ends or is interrupted.
fn run_role<A, Started, Running>(
    start: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Started,
) -> anyhow::Result<()>
where
    Started: std::future::Future<Output = anyhow::Result<(A, Running)>>,
    Running: std::future::Future<Output = anyhow::Result<()>>,
{
    use anyhow::Context as _;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let interrupted = Box::pin(async {
            let _ = tokio::signal::ctrl_c().await;
        });
        let (_, running) = start(interrupted).await?;
        running.await
    })
}
