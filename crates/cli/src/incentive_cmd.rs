//! The incentive-layer commands (docs/incentives.md): `subnet`, `neuron`, `stake`, `weights`,
//! `metagraph`, `emission`.
//!
//! Transactions are signed (a keystore key or a development account), submitted and, unless
//! `--no-wait`, followed until finalized the one way every command sends ([`crate::send`]), so the
//! command can say what the chain did (the new netuid, the UID, the stake position). Queries read
//! the node through mycel-client's typed calls (docs/node-api.md); `--json` prints the node's
//! answer as it came.
//!
//! Amounts are whole tokens with decimals (MYC and alpha both have 9); prices are MYC per alpha.

use crate::client::{print_json, resolve_address, ClientArgs, Node};
use crate::keys::KeystoreArgs;
use crate::send::{self, SendArgs, Sent};
use crate::signer::dev_account;
use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use mycel_client::api::{self, IncentiveEvent, Side};
use mycel_client::Applied;
use mycel_types::tx::{
    weights_commit_hash, AddStake, BurnedRegister, CommitWeights, RegisterSubnet, RemoveStake,
    RevealWeights, ServeEndpoint, SetSubnetParams, SetWeights,
};
use mycel_types::{format_amount, parse_amount, Amount, Token, TxKind};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- command line

/// A hotkey named on the command line: an address, a key name, or a development account.
#[derive(Debug, Args)]
pub struct HotkeyArgs {
    /// The hotkey: a 0x address, or the name of a key in the keystore.
    #[arg(
        long,
        value_name = "ADDRESS|NAME",
        conflicts_with = "hotkey_dev_account"
    )]
    pub hotkey: Option<String>,
    /// The hotkey is development account I (0-9).
    #[arg(long, value_name = "I")]
    pub hotkey_dev_account: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum SubnetCommand {
    /// Create a subnet: lock the current lock cost in MYC (it becomes the subnet's pool) and own it.
    Create(SubnetCreateArgs),
    /// List every subnet: owner, neurons, tempo, registration burn, alpha price.
    List(QueryArgs),
    /// Show one subnet: owner, hyperparameters, pool, pending emission, next epoch.
    Show(SubnetShowArgs),
    /// Set hyperparameters of a subnet you own (one flag per hyperparameter).
    Set(Box<SubnetSetArgs>),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mycel subnet create --dev-account 0\n  \
    mycel subnet create --key alice --hotkey alice-hot --max-lock-cost 150\n\n\
    The coldkey that signs pays the lock cost and becomes the owner; the hotkey (default: the\n\
    coldkey's own address) becomes UID 0, which is never pruned. Prints the new netuid.")]
pub struct SubnetCreateArgs {
    #[command(flatten)]
    pub hotkey: HotkeyArgs,
    /// Refuse to pay a lock cost above this many MYC [default: no limit beyond your balance].
    #[arg(long, value_name = "AMOUNT")]
    pub max_lock_cost: Option<String>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SubnetShowArgs {
    /// The subnet's id.
    #[arg(value_name = "NETUID")]
    pub netuid: u16,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mycel subnet set 1 --tempo 99 --weights-rate-limit 0 --dev-account 0\n  \
    mycel subnet set 1 --commit-reveal true --reveal-period 2 --key alice\n\n\
    Only the owner (the coldkey that created the subnet) may set hyperparameters. Every value is\n\
    checked against its bounds by the chain before any is applied; `mycel subnet show NETUID`\n\
    prints the current ones.")]
pub struct SubnetSetArgs {
    /// The subnet's id.
    #[arg(value_name = "NETUID")]
    pub netuid: u16,
    /// Blocks between epochs minus one: the epoch runs when (block + netuid + 1) % (tempo + 1) == 0 [1-65535].
    #[arg(long)]
    pub tempo: Option<u64>,
    /// Stake fraction (x/65535) a weight needs behind it to count as consensus [0-65535].
    #[arg(long)]
    pub kappa: Option<u64>,
    /// Blocks after registration during which a neuron cannot be pruned [0-65535].
    #[arg(long)]
    pub immunity_period: Option<u64>,
    /// Most UIDs the subnet holds; when full a registration prunes the weakest [1-4096].
    #[arg(long)]
    pub max_uids: Option<u64>,
    /// Most validator permits (given to the UIDs with the most stake) [1-4096].
    #[arg(long)]
    pub max_validators: Option<u64>,
    /// Blocks a hotkey must wait between two weight settings [0-65535].
    #[arg(long)]
    pub weights_rate_limit: Option<u64>,
    /// Require weights to be committed (hashed) first and revealed later.
    #[arg(long, value_name = "true|false")]
    pub commit_reveal: Option<bool>,
    /// Epochs after a commit's epoch in which its reveal must come [1-100].
    #[arg(long)]
    pub reveal_period: Option<u64>,
    /// Bonds EMA: the old bonds' share, in millionths (900000 = keep 90%) [0-1000000].
    #[arg(long)]
    pub bonds_moving_average: Option<u64>,
    /// How much clipped weights count in bonds (x/65535) [0-65535].
    #[arg(long)]
    pub bonds_penalty: Option<u64>,
    /// Per-weight bonds EMA rate between --alpha-low and --alpha-high (Yuma 3).
    #[arg(long, value_name = "true|false")]
    pub liquid_alpha: Option<bool>,
    /// Liquid alpha's lower bound (x/65535) [1-65535].
    #[arg(long)]
    pub alpha_low: Option<u64>,
    /// Liquid alpha's upper bound (x/65535) [1-65535].
    #[arg(long)]
    pub alpha_high: Option<u64>,
    /// Steepness of liquid alpha's sigmoid [1-65535].
    #[arg(long)]
    pub alpha_sigmoid_steepness: Option<u64>,
    /// Use Yuma 3 bonds instead of classic Yuma (2).
    #[arg(long, value_name = "true|false")]
    pub yuma3: Option<bool>,
    /// Blocks without setting weights after which a neuron counts as inactive [1-65535].
    #[arg(long)]
    pub activity_cutoff: Option<u64>,
    /// Lowest version key accepted with weights.
    #[arg(long)]
    pub weights_version_key: Option<u64>,
    /// Registrations per adjustment interval the burn steers towards [1-4096].
    #[arg(long)]
    pub target_regs_per_interval: Option<u64>,
    /// Blocks between registration-burn adjustments [1-65535].
    #[arg(long)]
    pub adjustment_interval: Option<u64>,
    /// Whether new neurons may register.
    #[arg(long, value_name = "true|false")]
    pub registration_allowed: Option<bool>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl SubnetSetArgs {
    /// The hyperparameters given, as the chain names them (booleans as 0/1).
    fn params(&self) -> Vec<(&'static str, u64)> {
        let b = |v: Option<bool>| v.map(u64::from);
        [
            ("tempo", self.tempo),
            ("kappa", self.kappa),
            ("immunity_period", self.immunity_period),
            ("max_uids", self.max_uids),
            ("max_validators", self.max_validators),
            ("weights_rate_limit", self.weights_rate_limit),
            ("commit_reveal", b(self.commit_reveal)),
            ("reveal_period", self.reveal_period),
            ("bonds_moving_average", self.bonds_moving_average),
            ("bonds_penalty", self.bonds_penalty),
            ("liquid_alpha", b(self.liquid_alpha)),
            ("alpha_low", self.alpha_low),
            ("alpha_high", self.alpha_high),
            ("alpha_sigmoid_steepness", self.alpha_sigmoid_steepness),
            ("yuma3", b(self.yuma3)),
            ("activity_cutoff", self.activity_cutoff),
            ("weights_version_key", self.weights_version_key),
            ("target_regs_per_interval", self.target_regs_per_interval),
            ("adjustment_interval", self.adjustment_interval),
            ("registration_allowed", b(self.registration_allowed)),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect()
    }
}

#[derive(Debug, Subcommand)]
pub enum NeuronCommand {
    /// Register a hotkey on a subnet by burning the subnet's registration burn (the coldkey pays).
    Register(NeuronRegisterArgs),
    /// List a subnet's UIDs: hotkey, coldkey, registration block, endpoint.
    List(NeuronListArgs),
    /// Announce where a neuron serves (signed by its hotkey), so validators and gateways find it.
    Serve(NeuronServeArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mycel neuron register --netuid 1 --hotkey-dev-account 3 --dev-account 3\n  \
    mycel neuron register --netuid 1 --hotkey miner-hot --key alice --max-burn 2\n\n\
    The signer is the coldkey: it pays the burn and owns the hotkey from then on (a hotkey belongs\n\
    to one coldkey). Prints the UID the hotkey got.")]
pub struct NeuronRegisterArgs {
    /// The subnet to register on.
    #[arg(long, value_name = "NETUID")]
    pub netuid: u16,
    #[command(flatten)]
    pub hotkey: HotkeyArgs,
    /// Refuse to burn more than this many MYC [default: the subnet's burn now].
    #[arg(long, value_name = "AMOUNT")]
    pub max_burn: Option<String>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct NeuronListArgs {
    /// The subnet whose neurons to list.
    #[arg(long, value_name = "NETUID")]
    pub netuid: u16,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    mycel neuron serve --netuid 1 --host 203.0.113.7 --port 8080 --protocol http --dev-account 3\n\n\
    Sign with the neuron's hotkey (--key or --dev-account). The endpoint shows in\n\
    `mycel neuron list` and `mycel metagraph`.")]
pub struct NeuronServeArgs {
    /// The subnet the hotkey is registered on.
    #[arg(long, value_name = "NETUID")]
    pub netuid: u16,
    /// Where the neuron serves: an IP address or a DNS name.
    #[arg(long)]
    pub host: String,
    /// The port it serves on.
    #[arg(long)]
    pub port: u16,
    /// The protocol clients use (for example http or https).
    #[arg(long, default_value = "http")]
    pub protocol: String,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum StakeCommand {
    /// Stake MYC on a hotkey of a subnet: a swap MYC → alpha in the subnet's pool.
    Add(StakeAddArgs),
    /// Unstake alpha from a hotkey of a subnet: a swap alpha → MYC.
    Remove(StakeRemoveArgs),
    /// List a coldkey's stake positions, or without --coldkey the alpha staked on every hotkey.
    List(StakeListArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mycel stake add --netuid 1 --hotkey-dev-account 4 --amount 100 --dev-account 4\n  \
    mycel stake add --netuid 1 --hotkey 0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65 --amount 2.5 --limit-price 1.05 --key alice\n\n\
    All stake and unstake orders of a block on one pool fill at one batch price at the end of\n\
    the block. With --limit-price the order is refused rather than filled above that price.")]
pub struct StakeAddArgs {
    /// The subnet whose alpha to buy.
    #[arg(long, value_name = "NETUID")]
    pub netuid: u16,
    #[command(flatten)]
    pub hotkey: HotkeyArgs,
    /// MYC to stake, in whole tokens; decimals allowed ("1.5").
    #[arg(long, value_name = "MYC")]
    pub amount: String,
    /// Highest price to pay, in MYC per alpha [default: no limit].
    #[arg(long, value_name = "MYC_PER_ALPHA")]
    pub limit_price: Option<String>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    mycel stake remove --netuid 1 --hotkey-dev-account 4 --amount 10 --dev-account 4\n  \
    mycel stake remove --netuid 1 --hotkey 0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65 --amount all --limit-price 0.95 --key alice")]
pub struct StakeRemoveArgs {
    /// The subnet whose alpha to sell.
    #[arg(long, value_name = "NETUID")]
    pub netuid: u16,
    #[command(flatten)]
    pub hotkey: HotkeyArgs,
    /// Alpha to unstake, in whole tokens ("1.5"), or `all` for the whole position.
    #[arg(long, value_name = "ALPHA|all")]
    pub amount: String,
    /// Lowest price to accept, in MYC per alpha [default: no limit].
    #[arg(long, value_name = "MYC_PER_ALPHA")]
    pub limit_price: Option<String>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "With --coldkey, --json prints the node's GET /v1/stakes/{coldkey}; \
    without, {\"height\": …, \"hotkeys\": [{\"netuid\", \"uid\", \"hotkey\", \"alpha\", \"stake\"}]} \
    gathered from every subnet's metagraph (hotkeys with alpha only)."
)]
pub struct StakeListArgs {
    /// The coldkey whose positions to list: a 0x address or a key name [default: the alpha
    /// staked on every hotkey of every subnet].
    #[arg(long, value_name = "ADDRESS|NAME", conflicts_with = "dev_account")]
    pub coldkey: Option<String>,
    /// The coldkey is development account N.
    #[arg(long, value_name = "N")]
    pub dev_account: Option<u32>,
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum WeightsCommand {
    /// Set weights on a subnet's UIDs (signed by a registered hotkey).
    Set(WeightsSetArgs),
    /// Commit to weights (commit-reveal subnets): send their hash now, save them for `reveal`.
    Commit(WeightsCommitArgs),
    /// Reveal weights committed earlier with `mycel weights commit`.
    Reveal(WeightsRevealArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    mycel weights set --netuid 1 --weights 1=0.5,2=0.3,3=0.2 --dev-account 4\n\n\
    Weights are relative: they are scaled so the largest is 65535, as the chain stores them\n\
    (1=1,2=2 and 1=0.5,2=1 are the same). Sign with the validator's hotkey.")]
pub struct WeightsSetArgs {
    /// The subnet.
    #[arg(long, value_name = "NETUID")]
    pub netuid: u16,
    /// UID=WEIGHT pairs, comma separated; weights are non-negative numbers ("1=0.7,2=0.3").
    #[arg(long, value_name = "UID=W,…")]
    pub weights: String,
    /// The weights version key (at least the subnet's weights_version_key).
    #[arg(long, default_value_t = 0)]
    pub version_key: u64,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Where commits wait for their reveal.
#[derive(Debug, Args)]
pub struct CommitsDirArgs {
    /// Directory where `weights commit` saves the weights and salt for `weights reveal`
    /// [default: ~/.mycel/commits].
    #[arg(long, value_name = "DIR", env = "MYCEL_COMMITS")]
    pub commits_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    mycel weights commit --netuid 1 --weights 1=0.5,2=0.5 --dev-account 4\n\n\
    Draws a random 32-byte salt, sends keccak256(abi.encode(hotkey, netuid, uids, values, salt,\n\
    versionKey)) in a CommitWeights transaction, and saves the weights and salt (file mode 0600)\n\
    under --commits-dir as <netuid>-<hotkey>-<hash>.json. `mycel weights reveal` sends them once\n\
    the subnet's reveal period has passed; the command prints the first block it may.")]
pub struct WeightsCommitArgs {
    /// The subnet.
    #[arg(long, value_name = "NETUID")]
    pub netuid: u16,
    /// UID=WEIGHT pairs, comma separated ("1=0.7,2=0.3").
    #[arg(long, value_name = "UID=W,…")]
    pub weights: String,
    /// The weights version key (at least the subnet's weights_version_key).
    #[arg(long, default_value_t = 0)]
    pub version_key: u64,
    #[command(flatten)]
    pub commits: CommitsDirArgs,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    mycel weights reveal --netuid 1 --dev-account 4\n\n\
    Reveals the oldest commit saved for this hotkey and subnet (or the one --hash names) and\n\
    deletes its file once the reveal is finalized.")]
pub struct WeightsRevealArgs {
    /// The subnet.
    #[arg(long, value_name = "NETUID")]
    pub netuid: u16,
    /// Reveal the commit with this hash [default: the oldest saved one].
    #[arg(long, value_name = "HASH")]
    pub hash: Option<B256>,
    #[command(flatten)]
    pub commits: CommitsDirArgs,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Columns: ALPHA is the alpha staked on the hotkey (the stake Yuma uses); \
    CONS, INCENT, DIVS, VTRUST are the last epoch's consensus, incentive, dividends and validator \
    trust as fractions; EMISSION is the alpha the UID earned in the last epoch; VP marks a \
    validator permit; UPDATED is the block of its last weights (or registration)."
)]
pub struct MetagraphArgs {
    /// The subnet.
    #[arg(value_name = "NETUID")]
    pub netuid: u16,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub fn run_subnet(command: SubnetCommand) -> Result<()> {
    match command {
        SubnetCommand::Create(args) => subnet_create(args),
        SubnetCommand::List(args) => subnet_list(args),
        SubnetCommand::Show(args) => subnet_show(args),
        SubnetCommand::Set(args) => subnet_set(*args),
    }
}

pub fn run_neuron(command: NeuronCommand) -> Result<()> {
    match command {
        NeuronCommand::Register(args) => neuron_register(args),
        NeuronCommand::List(args) => neuron_list(args),
        NeuronCommand::Serve(args) => neuron_serve(args),
    }
}

pub fn run_stake(command: StakeCommand) -> Result<()> {
    match command {
        StakeCommand::Add(args) => stake_add(args),
        StakeCommand::Remove(args) => stake_remove(args),
        StakeCommand::List(args) => stake_list(args),
    }
}

pub fn run_weights(command: WeightsCommand) -> Result<()> {
    match command {
        WeightsCommand::Set(args) => weights_set(args),
        WeightsCommand::Commit(args) => weights_commit(args),
        WeightsCommand::Reveal(args) => weights_reveal(args),
    }
}

// ---------------------------------------------------------------- subnets

fn subnet_create(args: SubnetCreateArgs) -> Result<()> {
    let max_lock = args
        .max_lock_cost
        .as_deref()
        .map(|a| parse_myc(a, "--max-lock-cost"))
        .transpose()?;
    let signer = args.send.load_signer(true)?;
    let hotkey = args
        .hotkey
        .resolve(&args.send.signer.keystore)?
        .unwrap_or(signer.address());
    let node = args.client.connect()?;
    let max_lock = match max_lock {
        Some(max) => max,
        // The node does not publish the lock cost before the fact; the balance bounds what can
        // be paid, and the receipt says what was.
        None => node.account(signer.address())?.myc,
    };
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::RegisterSubnet(RegisterSubnet {
                from,
                hotkey,
                maxLockCost: U256::from(max_lock),
                nonce,
                fee,
            })
        },
    )?;
    let registered = done.filter(|_| !args.client.json).and_then(|done| {
        done.receipt.incentive_events().find_map(|e| match e {
            IncentiveEvent::SubnetRegistered {
                netuid,
                owner,
                owner_hotkey,
                lock,
            } => Some((*netuid, *owner, *owner_hotkey, *lock)),
            _ => None,
        })
    });
    if let Some((netuid, owner, owner_hotkey, lock)) = registered {
        println!(
            "created subnet {netuid}: owner {owner}, owner hotkey {owner_hotkey} (UID 0), locked {} MYC",
            myc(lock),
        );
        println!(
            "next: `mycel subnet set {netuid} --tempo …` to tune it, `mycel neuron register --netuid {netuid}` to join it"
        );
    }
    Ok(())
}

fn subnet_list(args: QueryArgs) -> Result<()> {
    let node = args.client.connect()?;
    let list = node.subnets()?;
    if args.client.json {
        return print_json(&list);
    }
    if list.subnets.is_empty() {
        println!(
            "no subnets yet (as of block {}); create one with `mycel subnet create`",
            list.height
        );
        return Ok(());
    }
    let mut table = Table::new(&[
        "NETUID",
        "OWNER",
        "NEURONS",
        "TEMPO",
        "BURN (MYC)",
        "PRICE (MYC/α)",
        "FLOW (MYC/block)",
    ]);
    for s in &list.subnets {
        table.row(vec![
            s.netuid.to_string(),
            s.owner.to_string(),
            format!("{}/{}", s.neurons, s.max_uids),
            s.tempo.to_string(),
            myc(s.burn),
            myc(s.price),
            flow_of(&s.flow_ema),
        ]);
    }
    table.print();
    println!("as of block {}", list.height);
    Ok(())
}

fn subnet_show(args: SubnetShowArgs) -> Result<()> {
    let node = args.client.connect()?;
    let s = node.subnet(args.netuid)?;
    if args.client.json {
        return print_json(&s);
    }
    let pool = &s.pool;
    print_rows(&[
        ("netuid", s.netuid.to_string()),
        ("owner", s.owner.to_string()),
        ("owner hotkey", s.owner_hotkey.to_string()),
        ("registered at", format!("block {}", s.registered_at)),
        ("locked", format!("{} MYC", myc(s.lock))),
        ("neurons", format!("{} of {}", s.neurons, s.params.max_uids)),
        ("registration burn", format!("{} MYC", myc(s.burn))),
        (
            "pool",
            format!(
                "{} MYC / {} α, price {} MYC per α",
                myc(pool.myc_reserve),
                myc(pool.alpha_reserve),
                myc(pool.spot_price)
            ),
        ),
        ("moving price", pool.moving_price.clone()),
        ("alpha issued", format!("{} α", myc(pool.alpha_issued))),
        ("alpha staked", format!("{} α", myc(pool.alpha_staked))),
        (
            "flow EMA",
            format!("{} MYC per block", flow_of(&s.flow_ema)),
        ),
        (
            "pending emission",
            format!(
                "{} α for the epoch, {} α owner cut",
                myc(s.pending_alpha),
                myc(s.pending_owner_cut)
            ),
        ),
        (
            "last epoch",
            s.last_epoch
                .map(|b| format!("block {b}"))
                .unwrap_or_else(|| "none yet".into()),
        ),
        ("next epoch", format!("block {}", s.next_epoch_at)),
        ("pending commits", s.pending_commits.to_string()),
        ("as of block", s.height.to_string()),
    ]);
    println!("hyperparameters:");
    // By name, as the node writes them.
    if let serde_json::Value::Object(params) = serde_json::to_value(&s.params)? {
        let width = params.keys().map(String::len).max().unwrap_or(0);
        for (name, value) in params {
            println!("  {name:<width$}  {value}");
        }
    }
    Ok(())
}

fn subnet_set(args: SubnetSetArgs) -> Result<()> {
    let params = args.params();
    if params.is_empty() {
        bail!("give at least one hyperparameter to set, e.g. --tempo 99 (see `mycel subnet set --help`)");
    }
    let signer = args.send.load_signer(true)?;
    let node = args.client.connect()?;
    let netuid = args.netuid;
    let names: Vec<String> = params.iter().map(|(n, _)| n.to_string()).collect();
    let values: Vec<u64> = params.iter().map(|(_, v)| *v).collect();
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::SetSubnetParams(SetSubnetParams {
                from,
                netuid,
                names,
                values,
                nonce,
                fee,
            })
        },
    )?;
    if done.is_some() && !args.client.json {
        let list: Vec<String> = params
            .iter()
            .map(|(n, v)| match *n {
                "commit_reveal" | "liquid_alpha" | "yuma3" | "registration_allowed" => {
                    format!("{n} = {}", *v == 1)
                }
                _ => format!("{n} = {v}"),
            })
            .collect();
        println!("subnet {netuid}: {}", list.join(", "));
    }
    Ok(())
}

// ---------------------------------------------------------------- neurons

fn neuron_register(args: NeuronRegisterArgs) -> Result<()> {
    let hotkey = args
        .hotkey
        .resolve(&args.send.signer.keystore)?
        .ok_or_else(|| {
            anyhow!("say which hotkey to register: --hotkey ADDRESS|NAME or --hotkey-dev-account I")
        })?;
    let max_burn = args
        .max_burn
        .as_deref()
        .map(|a| parse_myc(a, "--max-burn"))
        .transpose()?;
    let signer = args.send.load_signer(true)?;
    let node = args.client.connect()?;
    let netuid = args.netuid;
    let max_burn = match max_burn {
        Some(max) => max,
        None => node.subnet(netuid)?.burn,
    };
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::BurnedRegister(BurnedRegister {
                from,
                netuid,
                hotkey,
                maxBurn: U256::from(max_burn),
                nonce,
                fee,
            })
        },
    )?;
    let registered = done.filter(|_| !args.client.json).and_then(|done| {
        done.receipt.incentive_events().find_map(|e| match e {
            IncentiveEvent::NeuronRegistered {
                uid,
                hotkey,
                burned,
                replaced,
                ..
            } => Some((*uid, *hotkey, *burned, *replaced)),
            _ => None,
        })
    });
    if let Some((uid, hotkey, burned, replaced)) = registered {
        print!(
            "registered hotkey {hotkey} on subnet {netuid} as UID {uid} (burned {} MYC",
            myc(burned)
        );
        match replaced {
            Some(old) => println!(", replacing {old})"),
            None => println!(")"),
        }
    }
    Ok(())
}

fn neuron_list(args: NeuronListArgs) -> Result<()> {
    let node = args.client.connect()?;
    let graph = node.metagraph(args.netuid)?;
    if args.client.json {
        return print_json(&graph);
    }
    let mut table = Table::new(&[
        "UID",
        "HOTKEY",
        "COLDKEY",
        "REGISTERED",
        "ACTIVE",
        "IMMUNE",
        "ENDPOINT",
    ]);
    for n in &graph.neurons {
        table.row(vec![
            n.uid.to_string(),
            n.hotkey.to_string(),
            n.coldkey.to_string(),
            n.registered_at.to_string(),
            yes_no(n.active),
            yes_no(n.immune),
            endpoint_of(n.endpoint.as_ref()),
        ]);
    }
    table.print();
    println!(
        "subnet {}, {} neurons, as of block {}",
        args.netuid,
        graph.neurons.len(),
        graph.block
    );
    Ok(())
}

fn neuron_serve(args: NeuronServeArgs) -> Result<()> {
    if args.host.trim().is_empty() {
        bail!("--host is empty: give an IP address or a DNS name");
    }
    if args.port == 0 {
        bail!("--port 0 is not a port clients can reach: give the port the neuron listens on");
    }
    if args.protocol.trim().is_empty() {
        bail!("--protocol is empty: give e.g. http or https");
    }
    let signer = args.send.load_signer(true)?;
    let node = args.client.connect()?;
    let (netuid, host, port, protocol) = (
        args.netuid,
        args.host.clone(),
        args.port,
        args.protocol.clone(),
    );
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::ServeEndpoint(ServeEndpoint {
                from,
                netuid,
                host,
                port,
                protocol,
                nonce,
                fee,
            })
        },
    )?;
    let served = done.filter(|_| !args.client.json).and_then(|done| {
        done.receipt.incentive_events().find_map(|e| match e {
            IncentiveEvent::EndpointServed {
                uid,
                host,
                port,
                protocol,
                ..
            } => Some(format!(
                "UID {uid} of subnet {netuid} serves at {protocol}://{host}:{port}"
            )),
            _ => None,
        })
    });
    if let Some(line) = served {
        println!("{line}");
    }
    Ok(())
}

// ---------------------------------------------------------------- stake

fn stake_add(args: StakeAddArgs) -> Result<()> {
    let hotkey = args
        .hotkey
        .resolve(&args.send.signer.keystore)?
        .ok_or_else(|| {
            anyhow!("say which hotkey to stake on: --hotkey ADDRESS|NAME or --hotkey-dev-account I")
        })?;
    let amount = parse_myc(&args.amount, "--amount")?;
    let limit = args
        .limit_price
        .as_deref()
        .map(|p| parse_price(p, "--limit-price"))
        .transpose()?
        .unwrap_or(0);
    let signer = args.send.load_signer(true)?;
    let node = args.client.connect()?;
    let netuid = args.netuid;
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::AddStake(AddStake {
                from,
                hotkey,
                netuid,
                amount: U256::from(amount),
                limitPrice: U256::from(limit),
                nonce,
                fee,
            })
        },
    )?;
    if let Some(done) = done.filter(|_| !args.client.json) {
        println!(
            "staked {} MYC on {hotkey} in subnet {netuid}",
            format_amount(amount, Token::Myc)
        );
        let order = Order {
            coldkey: signer.address(),
            hotkey,
            netuid,
            side: Side::Stake,
        };
        print_fill(&node, &done, &order);
        print_position(&node, &order)?;
    }
    Ok(())
}

fn stake_remove(args: StakeRemoveArgs) -> Result<()> {
    let hotkey = args
        .hotkey
        .resolve(&args.send.signer.keystore)?
        .ok_or_else(|| {
            anyhow!(
                "say which hotkey to unstake from: --hotkey ADDRESS|NAME or --hotkey-dev-account I"
            )
        })?;
    let amount = match args.amount.as_str() {
        "all" => None,
        a => Some(parse_myc(a, "--amount").context("--amount is in alpha, or `all`")?),
    };
    let limit = args
        .limit_price
        .as_deref()
        .map(|p| parse_price(p, "--limit-price"))
        .transpose()?
        .unwrap_or(0);
    let signer = args.send.load_signer(true)?;
    let node = args.client.connect()?;
    let netuid = args.netuid;
    let order = Order {
        coldkey: signer.address(),
        hotkey,
        netuid,
        side: Side::Unstake,
    };
    let amount = match amount {
        Some(a) => a,
        None => match position(&node, &order)? {
            Some(p) if p.alpha > 0 => p.alpha,
            _ => bail!(
                "{} has no stake on {hotkey} in subnet {netuid}: nothing to unstake",
                order.coldkey
            ),
        },
    };
    if amount == 0 {
        bail!("--amount must be above 0");
    }
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::RemoveStake(RemoveStake {
                from,
                hotkey,
                netuid,
                amount: U256::from(amount),
                limitPrice: U256::from(limit),
                nonce,
                fee,
            })
        },
    )?;
    if let Some(done) = done.filter(|_| !args.client.json) {
        println!(
            "unstaked {} α from {hotkey} in subnet {netuid}",
            format_amount(amount, Token::Myc)
        );
        print_fill(&node, &done, &order);
        print_position(&node, &order)?;
    }
    Ok(())
}

/// The alpha staked on one hotkey of one subnet (`mycel stake list` without `--coldkey`).
#[derive(Debug, Serialize)]
struct HotkeyStake {
    netuid: u16,
    uid: u16,
    hotkey: Address,
    #[serde(with = "api::amount")]
    alpha: Amount,
    #[serde(with = "api::amount")]
    stake: Amount,
}

/// What `mycel stake list --json` prints without `--coldkey`.
#[derive(Debug, Serialize)]
struct HotkeyStakes {
    height: u64,
    hotkeys: Vec<HotkeyStake>,
}

fn stake_list(args: StakeListArgs) -> Result<()> {
    let coldkey = match (&args.coldkey, args.dev_account) {
        (Some(spec), _) => Some(resolve_address(spec, &args.keystore)?),
        (None, Some(n)) => Some(dev_address(n)?),
        (None, None) => None,
    };
    let node = args.client.connect()?;
    if let Some(coldkey) = coldkey {
        return print_stakes(&node.stakes(coldkey)?, args.client.json);
    }
    // Every hotkey's total, from each subnet's metagraph.
    let list = node.subnets()?;
    let mut staked = HotkeyStakes {
        height: list.height,
        hotkeys: Vec::new(),
    };
    for s in &list.subnets {
        let graph = node.metagraph(s.netuid)?;
        staked.hotkeys.extend(
            graph
                .neurons
                .iter()
                .filter(|n| n.alpha > 0)
                .map(|n| HotkeyStake {
                    netuid: s.netuid,
                    uid: n.uid,
                    hotkey: n.hotkey,
                    alpha: n.alpha,
                    stake: n.stake,
                }),
        );
    }
    if args.client.json {
        return print_json(&staked);
    }
    if staked.hotkeys.is_empty() {
        println!("nothing is staked (as of block {})", list.height);
        return Ok(());
    }
    let mut table = Table::new(&["NETUID", "UID", "HOTKEY", "ALPHA", "VALUE (MYC)"]);
    for r in &staked.hotkeys {
        table.row(vec![
            r.netuid.to_string(),
            r.uid.to_string(),
            r.hotkey.to_string(),
            myc(r.alpha),
            myc(r.stake),
        ]);
    }
    table.print();
    println!(
        "alpha staked on each hotkey by all coldkeys, as of block {}; one coldkey's positions: --coldkey ADDRESS",
        list.height
    );
    Ok(())
}

/// One coldkey's positions.
fn print_stakes(stakes: &api::Stakes, json: bool) -> Result<()> {
    if json {
        return print_json(stakes);
    }
    let coldkey = stakes.coldkey;
    if stakes.stakes.is_empty() {
        println!("{coldkey} has no stake (as of block {})", stakes.height);
        return Ok(());
    }
    let mut table = Table::new(&["NETUID", "HOTKEY", "ALPHA", "VALUE (MYC)"]);
    for p in &stakes.stakes {
        table.row(vec![
            p.netuid.to_string(),
            p.hotkey.to_string(),
            myc(p.alpha),
            myc(p.value),
        ]);
    }
    table.print();
    println!("coldkey {coldkey}, as of block {}", stakes.height);
    Ok(())
}

/// A stake or unstake order: whose, on which hotkey and subnet, which way.
struct Order {
    coldkey: Address,
    hotkey: Address,
    netuid: u16,
    side: Side,
}

/// The order's coldkey's position on its hotkey and subnet, if it has one.
fn position(node: &Node, order: &Order) -> Result<Option<api::StakePosition>> {
    Ok(node
        .stakes(order.coldkey)?
        .position(order.netuid, order.hotkey)
        .cloned())
}

/// What a stake order filled at, from the emission receipt of its block (which lists the block's
/// fills). Only the latest block's receipt can be read, so this says nothing if the chain has
/// already moved on.
fn print_fill(node: &Node, done: &Applied, order: &Order) {
    let Ok(Some(receipt)) = node.latest_emission_receipt() else {
        return;
    };
    if receipt.height != done.height {
        return;
    }
    let fill = receipt.swaps.iter().find(|f| {
        f.side == order.side
            && f.netuid == order.netuid
            && f.coldkey == order.coldkey
            && f.hotkey == order.hotkey
    });
    if let Some(f) = fill {
        let (input, output) = swap_units(f.side);
        println!(
            "filled in block {}: {} {input} → {} {output} at the batch price {} MYC per α",
            done.height,
            myc(f.amount_in),
            myc(f.amount_out),
            myc(f.price)
        );
    }
}

fn print_position(node: &Node, order: &Order) -> Result<()> {
    match position(node, order)? {
        Some(p) => println!(
            "position now: {} α (worth {} MYC at the spot price)",
            myc(p.alpha),
            myc(p.value)
        ),
        None => println!("position now: none"),
    }
    Ok(())
}

/// What goes into and comes out of a swap.
fn swap_units(side: Side) -> (&'static str, &'static str) {
    match side {
        Side::Stake => ("MYC", "α"),
        Side::Unstake => ("α", "MYC"),
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Stake => "stake",
        Side::Unstake => "unstake",
    }
}

// ---------------------------------------------------------------- weights

/// `UID=W,UID=W` with non-negative decimal weights, scaled so the largest is 65535 (what the
/// chain stores), in integers: w · 65535 / max, rounded half up.
fn parse_weights(text: &str) -> Result<(Vec<u16>, Vec<u16>)> {
    let mut uids = Vec::new();
    let mut raw = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (uid, weight) = part.split_once('=').ok_or_else(|| {
            anyhow!("--weights: '{part}' is not UID=WEIGHT (example: --weights 1=0.7,2=0.3)")
        })?;
        let uid: u16 = uid.trim().parse().map_err(|_| {
            anyhow!(
                "--weights: '{}' is not a UID (a whole number 0-65535)",
                uid.trim()
            )
        })?;
        if uids.contains(&uid) {
            bail!("--weights: UID {uid} is given twice");
        }
        let weight = parse_amount(weight.trim(), Token::Myc).map_err(|_| {
            anyhow!(
                "--weights: '{}' (for UID {uid}) is not a non-negative number with at most 9 decimals",
                weight.trim()
            )
        })?;
        uids.push(uid);
        raw.push(weight);
    }
    if uids.is_empty() {
        bail!("--weights is empty: give UID=WEIGHT pairs, e.g. --weights 1=0.7,2=0.3");
    }
    let max = raw.iter().copied().max().unwrap_or(0);
    if max == 0 {
        bail!("--weights: every weight is 0; give at least one UID a positive weight");
    }
    let values = raw
        .iter()
        .map(|w| ((w * 65_535 * 2 + max) / (max * 2)) as u16)
        .collect();
    Ok((uids, values))
}

fn weights_set(args: WeightsSetArgs) -> Result<()> {
    let (uids, values) = parse_weights(&args.weights)?;
    let signer = args.send.load_signer(true)?;
    let node = args.client.connect()?;
    let (netuid, version_key) = (args.netuid, args.version_key);
    let shown = weights_text(&uids, &values);
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::SetWeights(SetWeights {
                from,
                netuid,
                uids,
                values,
                versionKey: version_key,
                nonce,
                fee,
            })
        },
    )?;
    if let Some(done) = done.filter(|_| !args.client.json) {
        let uid = done.receipt.incentive_events().find_map(|e| match e {
            IncentiveEvent::WeightsSet { uid, .. } => Some(uid.to_string()),
            _ => None,
        });
        println!(
            "UID {} of subnet {netuid} set weights {shown}",
            uid.unwrap_or_else(|| "?".into())
        );
    }
    Ok(())
}

/// What `weights commit` saves for `weights reveal`.
#[derive(Debug, Serialize, Deserialize)]
struct SavedCommit {
    netuid: u16,
    hotkey: Address,
    uids: Vec<u16>,
    values: Vec<u16>,
    salt: B256,
    version_key: u64,
    hash: B256,
    /// The block the commit was finalized in (unknown with --no-wait).
    block: Option<u64>,
}

fn commits_dir(args: &CommitsDirArgs) -> Result<PathBuf> {
    if let Some(dir) = &args.commits_dir {
        return Ok(dir.clone());
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("HOME is not set: pass --commits-dir DIR or set MYCEL_COMMITS"))?;
    Ok(PathBuf::from(home).join(".mycel").join("commits"))
}

fn commit_file(dir: &Path, netuid: u16, hotkey: Address, hash: B256) -> PathBuf {
    dir.join(format!("{netuid}-{}-{hash}.json", hex::encode(hotkey)))
}

/// Writes `bytes` to `path` readable by the owner only (the salt keeps the weights secret).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn weights_commit(args: WeightsCommitArgs) -> Result<()> {
    let (uids, values) = parse_weights(&args.weights)?;
    let dir = commits_dir(&args.commits)?;
    let signer = args.send.load_signer(true)?;
    let hotkey = signer.address();
    let (netuid, version_key) = (args.netuid, args.version_key);
    let salt = B256::from(rand::random::<[u8; 32]>());
    let hash = weights_commit_hash(hotkey, netuid, &uids, &values, salt, version_key);
    let node = args.client.connect()?;
    let subnet = node.subnet(netuid)?;
    if !subnet.params.commit_reveal {
        bail!("subnet {netuid} does not use commit-reveal: set weights directly with `mycel weights set`");
    }
    // Saved before sending: a commit on chain whose salt was lost could never be revealed.
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    let path = commit_file(&dir, netuid, hotkey, hash);
    let mut saved = SavedCommit {
        netuid,
        hotkey,
        uids: uids.clone(),
        values: values.clone(),
        salt,
        version_key,
        hash,
        block: None,
    };
    write_private(&path, &serde_json::to_vec_pretty(&saved)?)?;
    let result = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::CommitWeights(CommitWeights {
                from,
                netuid,
                commitHash: hash,
                nonce,
                fee,
            })
        },
    );
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            // Nothing reached the chain: the saved file would only confuse a later reveal.
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    if let Some(done) = &done {
        saved.block = Some(done.height);
        std::fs::remove_file(&path).ok();
        write_private(&path, &serde_json::to_vec_pretty(&saved)?)?;
    }
    if args.client.json {
        return Ok(());
    }
    println!(
        "committed {hash} on subnet {netuid}: weights {}",
        weights_text(&uids, &values)
    );
    println!("saved the weights and salt to {}", path.display());
    if let Some(block) = saved.block {
        let (tempo, period) = (subnet.params.tempo, subnet.params.reveal_period);
        let window =
            mycel_state::subnets::EpochSchedule::new(netuid, tempo).reveal_window(block, period);
        let (first, last) = (window.start(), window.end());
        println!("reveal with `mycel weights reveal --netuid {netuid}` from block {first} to block {last}");
    }
    Ok(())
}

fn weights_reveal(args: WeightsRevealArgs) -> Result<()> {
    let dir = commits_dir(&args.commits)?;
    let signer = args.send.load_signer(true)?;
    let hotkey = signer.address();
    let netuid = args.netuid;
    let prefix = format!("{netuid}-{}-", hex::encode(hotkey));
    let mut saved = Vec::new();
    if dir.is_dir() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if !(name.starts_with(&prefix) && name.ends_with(".json")) {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let commit: SavedCommit = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a saved commit", path.display()))?;
            saved.push((path, commit));
        }
    }
    if saved.is_empty() {
        bail!(
            "no saved commit of hotkey {hotkey} on subnet {netuid} in {}: commit first with `mycel weights commit` (or point --commits-dir where it saved)",
            dir.display()
        );
    }
    let (path, commit) = match args.hash {
        Some(hash) => saved
            .into_iter()
            .find(|(_, c)| c.hash == hash)
            .ok_or_else(|| {
                anyhow!(
                    "no saved commit has hash {hash} (see the files in {})",
                    dir.display()
                )
            })?,
        None => saved
            .into_iter()
            .min_by_key(|(_, c)| c.block.unwrap_or(u64::MAX))
            .expect("not empty"),
    };
    let node = args.client.connect()?;
    let shown = weights_text(&commit.uids, &commit.values);
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::RevealWeights(RevealWeights {
                from,
                netuid,
                uids: commit.uids.clone(),
                values: commit.values.clone(),
                salt: commit.salt,
                versionKey: commit.version_key,
                nonce,
                fee,
            })
        },
    )?;
    if done.is_some() {
        std::fs::remove_file(&path)
            .with_context(|| format!("revealed, but cannot delete {}", path.display()))?;
        if !args.client.json {
            println!(
                "revealed {} on subnet {netuid}: weights {shown}",
                commit.hash
            );
        }
    }
    Ok(())
}

fn weights_text(uids: &[u16], values: &[u16]) -> String {
    uids.iter()
        .zip(values)
        .map(|(u, v)| format!("{u}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------- metagraph and emission

pub fn run_metagraph(args: MetagraphArgs) -> Result<()> {
    let node = args.client.connect()?;
    let graph = node.metagraph(args.netuid)?;
    if args.client.json {
        return print_json(&graph);
    }
    let mut table = Table::new(&[
        "UID", "HOTKEY", "COLDKEY", "ALPHA", "VP", "CONS", "INCENT", "DIVS", "VTRUST", "EMISSION",
        "UPDATED", "ENDPOINT",
    ]);
    for n in &graph.neurons {
        table.row(vec![
            n.uid.to_string(),
            short_address(n.hotkey),
            short_address(n.coldkey),
            myc(n.alpha),
            if n.validator_permit { "*" } else { "" }.into(),
            fraction(n.consensus),
            fraction(n.incentive),
            fraction(n.dividends),
            fraction(n.validator_trust),
            myc(n.emission),
            n.last_update.to_string(),
            endpoint_of(n.endpoint.as_ref()),
        ]);
    }
    table.print();
    println!(
        "subnet {}, block {}; alpha and emission in α; full addresses with --json",
        args.netuid, graph.block
    );
    Ok(())
}

#[derive(Debug, Args)]
#[command(
    after_help = "With --json: {\"schedule\": …, \"latest_receipt\": …}, the node's answers to \
    GET /v1/emission and GET /v1/emission/receipts/latest (null before the first subnet exists); \
    docs/node-api.md describes both."
)]
pub struct EmissionArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What `mycel emission --json` prints.
#[derive(Debug, Serialize)]
struct Emission {
    schedule: api::EmissionSchedule,
    latest_receipt: Option<api::EmissionReceipt>,
}

pub fn run_emission(args: EmissionArgs) -> Result<()> {
    let node = args.client.connect()?;
    let emission = Emission {
        schedule: node.emission()?,
        latest_receipt: node.latest_emission_receipt()?,
    };
    if args.client.json {
        return print_json(&emission);
    }
    let schedule = &emission.schedule;
    print_rows(&[
        ("as of block", schedule.height.to_string()),
        ("issuance", format!("{} MYC", myc(schedule.issuance))),
        ("supply cap", format!("{} MYC", myc(schedule.total_supply))),
        (
            "block emission",
            format!("{} MYC", myc(schedule.block_emission)),
        ),
        (
            "halvings so far",
            schedule
                .halvings
                .map_or_else(|| "-".into(), |h| h.to_string()),
        ),
        (
            "next halving at",
            match schedule.next_halving_at {
                None => "never (the cap is reached)".into(),
                Some(at) => format!("{} MYC issued", myc(at)),
            },
        ),
        (
            "subnet lock cost",
            format!("{} MYC", myc(schedule.subnet_lock_cost)),
        ),
    ]);
    let Some(r) = &emission.latest_receipt else {
        println!("\nno emission receipt yet: emission goes to subnets once one exists");
        return Ok(());
    };
    println!();
    println!(
        "block {}: emitted {} MYC, {} MYC to no subnet",
        r.height,
        myc(r.block_emission),
        myc(r.myc_unassigned)
    );
    for s in &r.subnets {
        print_subnet_emission(s);
    }
    for swap in &r.swaps {
        let (input, output) = swap_units(swap.side);
        println!(
            "  {} on subnet {}: {} {input} → {} {output} at {} MYC per α",
            side_name(swap.side),
            swap.netuid,
            myc(swap.amount_in),
            myc(swap.amount_out),
            myc(swap.price)
        );
    }
    Ok(())
}

/// One subnet's line of an emission receipt, and its epoch's payouts if one ran.
fn print_subnet_emission(s: &api::SubnetEmission) {
    println!(
        "  subnet {}: share {} MYC (injected {}, recycled {}), alpha {} α in the pool, {} α emitted: owner cut {}, pending {}",
        s.netuid,
        myc(s.myc_share),
        myc(s.myc_injected),
        myc(s.myc_recycled),
        myc(s.alpha_injected),
        myc(s.alpha_emission),
        myc(s.owner_cut),
        myc(s.pending_added),
    );
    let Some(epoch) = &s.epoch else {
        return;
    };
    println!(
        "    epoch paid {} α: owner {} α, recycled {} α",
        myc(epoch.paid),
        myc(epoch.owner_cut),
        myc(epoch.recycled)
    );
    let mut table = Table::new(&[
        "UID",
        "HOTKEY",
        "INCENTIVE",
        "DIVIDENDS",
        "TAKE",
        "TO STAKERS",
    ]);
    for n in &epoch.neurons {
        table.row(vec![
            n.uid.to_string(),
            short_address(n.hotkey),
            myc(n.incentive),
            myc(n.dividends),
            myc(n.take),
            myc(n.to_stakers),
        ]);
    }
    table.print_indented("    ");
}

// ---------------------------------------------------------------- signing and sending

impl HotkeyArgs {
    fn resolve(&self, keystore: &KeystoreArgs) -> Result<Option<Address>> {
        match (&self.hotkey, self.hotkey_dev_account) {
            (Some(spec), _) => resolve_address(spec, keystore)
                .context("bad --hotkey")
                .map(Some),
            (None, Some(n)) => dev_address(n).context("bad --hotkey-dev-account").map(Some),
            (None, None) => Ok(None),
        }
    }
}

fn dev_address(n: u32) -> Result<Address> {
    Ok(dev_account(n, "development account")?.address())
}

/// Sends the transaction `build` makes (given sender, nonce, fee) and, unless `--no-wait`,
/// waits for it (see [`send::send`]). `None` with `--no-wait`, after printing the hash.
fn send(
    node: &Node,
    args: &SendArgs,
    signer: &PrivateKeySigner,
    json: bool,
    build: impl FnOnce(Address, u64, U256) -> TxKind,
) -> Result<Option<Applied>> {
    match send::send(node, args, signer, json, true, |f| {
        build(f.from, f.nonce, f.fee)
    })? {
        Sent::Submitted(tx) => {
            send::print_submitted(&tx, json)?;
            Ok(None)
        }
        Sent::Applied(applied) => Ok(Some(applied)),
    }
}

// ---------------------------------------------------------------- formatting

fn parse_myc(text: &str, flag: &str) -> Result<Amount> {
    parse_amount(text, Token::Myc).with_context(|| format!("bad {flag} '{text}'"))
}

/// A price in MYC per alpha as MYC base units per whole alpha (what the chain compares).
fn parse_price(text: &str, flag: &str) -> Result<Amount> {
    let price = parse_myc(text, flag)?;
    if price == 0 {
        bail!("{flag} 0 would refuse every fill: leave the flag out for no limit");
    }
    Ok(price)
}

/// Base units as whole tokens with 9 decimals (MYC and alpha alike).
fn myc(amount: Amount) -> String {
    format_amount(amount, Token::Myc)
}

/// The Taoflow EMA (a decimal of MYC base units per block, maybe negative) in MYC, to the base
/// unit.
fn flow_of(text: &str) -> String {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let whole = digits.split('.').next().unwrap_or_default();
    match whole.parse::<Amount>() {
        Ok(units) => format!("{sign}{}", format_amount(units, Token::Myc)),
        Err(_) => text.to_string(),
    }
}

/// A `u16` proportion (x/65535) as a decimal with 4 places, rounded.
fn fraction(x: u16) -> String {
    let scaled = (u64::from(x) * 20_000 + 65_535) / (2 * 65_535);
    format!("{}.{:04}", scaled / 10_000, scaled % 10_000)
}

/// `0xAbCd…1234`, for tables.
fn short_address(address: Address) -> String {
    let full = address.to_checksum(None);
    format!("{}…{}", &full[..6], &full[38..])
}

fn endpoint_of(endpoint: Option<&api::Endpoint>) -> String {
    match endpoint {
        Some(e) => format!("{}://{}:{}", e.protocol, e.host, e.port),
        None => "-".into(),
    }
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.into()
}

fn print_rows(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        println!("{key:<width$}  {value}");
    }
}

/// Left-aligned columns separated by two spaces.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn print(&self) {
        self.print_indented("");
    }

    fn print_indented(&self, indent: &str) {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for line in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = line
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            println!("{indent}{}", cells.join("  ").trim_end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_scale_to_the_largest() {
        let (uids, values) = parse_weights("1=0.5, 2=1,3=0").unwrap();
        assert_eq!(uids, vec![1, 2, 3]);
        assert_eq!(values, vec![32768, 65535, 0]);
        let (_, values) = parse_weights("4=65535,5=32767").unwrap();
        assert_eq!(values, vec![65535, 32767]);
        for (bad, needle) in [
            ("1=0", "every weight is 0"),
            ("1=1,1=2", "twice"),
            ("x=1", "not a UID"),
            ("1", "UID=WEIGHT"),
            ("1=-2", "non-negative"),
            ("", "empty"),
        ] {
            let err = parse_weights(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn fractions_and_addresses_print_compactly() {
        assert_eq!(fraction(65535), "1.0000");
        assert_eq!(fraction(0), "0.0000");
        assert_eq!(fraction(32767), "0.5000");
        assert_eq!(myc(1_500_000_000), "1.5");
        assert_eq!(flow_of("481300.5735"), "0.0004813");
        assert_eq!(flow_of("-2000000000.1"), "-2");
        let address: Address = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
            .parse()
            .unwrap();
        assert_eq!(short_address(address), "0xf39F…2266");
    }
}
