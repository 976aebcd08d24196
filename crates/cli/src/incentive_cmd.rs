//! The incentive-layer commands (docs/incentives.md): `subnet`, `neuron`, `stake`, `weights`,
//! `metagraph`, `emission`.
//!
//! Transactions are signed here (a keystore key or a development account), submitted to the node
//! and, unless `--no-wait`, followed until finalized, so the command can say what the chain did
//! (the new netuid, the UID, the stake position). Queries read the node's `/v1/subnets…`,
//! `/v1/pools`, `/v1/emission…` and `/v1/stakes/…` routes (docs/node-api.md); `--json` prints the
//! node's JSON as it came.
//!
//! Amounts are whole tokens with decimals (MYC and alpha both have 9); prices are MYC per alpha.

use crate::client::{error_parts, resolve_address, ApiError, ClientArgs, Node as Rpc};
use crate::keys::{self, KeystoreArgs, PasswordArgs};
use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use mycel_types::tx::{
    weights_commit_hash, AddStake, BurnedRegister, CommitWeights, RegisterSubnet, RemoveStake,
    RevealWeights, ServeEndpoint, SetSubnetParams, SetWeights,
};
use mycel_types::{
    format_amount, keys::dev_signer, keys::DEV_ACCOUNTS, parse_amount, Amount, SignedTx, Token,
    TxKind,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- command line

/// Who signs a transaction and how it is sent.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Sign with this key: a name in the keystore or the path of a keystore file.
    #[arg(long, value_name = "FILE|NAME")]
    pub key: Option<String>,
    /// Sign with development account N (0-9) of the public devnet mnemonic. Devnets only: anyone
    /// can spend from these accounts.
    #[arg(long, value_name = "N")]
    pub dev_account: Option<u32>,
    /// Fee in MYC (burned) [default: the node's minimum fee].
    #[arg(long, value_name = "AMOUNT")]
    pub fee: Option<String>,
    /// Use this nonce instead of the account's next nonce from the node.
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Return as soon as the node accepted the transaction (print its hash) instead of waiting
    /// until it is finalized.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting for finalization after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
}

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
    let signer = load_signer(&args.send)?;
    let hotkey = args
        .hotkey
        .resolve(&args.send.keystore)?
        .unwrap_or(signer.address());
    let node = Rpc::new(&args.client)?;
    let max_lock = match max_lock {
        Some(max) => max,
        // The node does not publish the lock cost before the fact; the balance bounds what can
        // be paid, and the receipt says what was.
        None => amount_of(
            &node.get(&format!("/v1/accounts/{}", signer.address()))?,
            "myc",
        )
        .ok_or_else(|| anyhow!("the node did not say the balance of the signer"))?,
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
    if let Some(done) = done.filter(|_| !args.client.json) {
        if let Some(e) = incentive_event(&done, "subnet_registered") {
            println!(
                "created subnet {}: owner {}, owner hotkey {} (UID 0), locked {} MYC",
                str_of(&e["netuid"]),
                checksummed(&e["owner"]),
                checksummed(&e["owner_hotkey"]),
                myc_of(&e["lock"]),
            );
            println!(
                "next: `mycel subnet set {} --tempo …` to tune it, `mycel neuron register --netuid {}` to join it",
                str_of(&e["netuid"]),
                str_of(&e["netuid"])
            );
        }
    }
    Ok(())
}

fn subnet_list(args: QueryArgs) -> Result<()> {
    let node = Rpc::new(&args.client)?;
    let list = node.get("/v1/subnets")?;
    if args.client.json {
        return print_json(&list);
    }
    let subnets = array(&list["subnets"]);
    if subnets.is_empty() {
        println!(
            "no subnets yet (as of block {}); create one with `mycel subnet create`",
            str_of(&list["height"])
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
    for s in subnets {
        table.row(vec![
            str_of(&s["netuid"]),
            checksummed(&s["owner"]),
            format!("{}/{}", str_of(&s["neurons"]), str_of(&s["max_uids"])),
            str_of(&s["tempo"]),
            myc_of(&s["burn"]),
            myc_of(&s["price"]),
            flow_of(&s["flow_ema"]),
        ]);
    }
    table.print();
    println!("as of block {}", str_of(&list["height"]));
    Ok(())
}

fn subnet_show(args: SubnetShowArgs) -> Result<()> {
    let node = Rpc::new(&args.client)?;
    let s = node.get(&format!("/v1/subnets/{}", args.netuid))?;
    if args.client.json {
        return print_json(&s);
    }
    let pool = &s["pool"];
    print_rows(&[
        ("netuid", str_of(&s["netuid"])),
        ("owner", checksummed(&s["owner"])),
        ("owner hotkey", checksummed(&s["owner_hotkey"])),
        (
            "registered at",
            format!("block {}", str_of(&s["registered_at"])),
        ),
        ("locked", format!("{} MYC", myc_of(&s["lock"]))),
        (
            "neurons",
            format!(
                "{} of {}",
                str_of(&s["neurons"]),
                str_of(&s["params"]["max_uids"])
            ),
        ),
        ("registration burn", format!("{} MYC", myc_of(&s["burn"]))),
        (
            "pool",
            format!(
                "{} MYC / {} α, price {} MYC per α",
                myc_of(&pool["myc_reserve"]),
                myc_of(&pool["alpha_reserve"]),
                myc_of(&pool["spot_price"])
            ),
        ),
        ("moving price", str_of(&pool["moving_price"])),
        (
            "alpha issued",
            format!("{} α", myc_of(&pool["alpha_issued"])),
        ),
        (
            "alpha staked",
            format!("{} α", myc_of(&pool["alpha_staked"])),
        ),
        (
            "flow EMA",
            format!("{} MYC per block", flow_of(&s["flow_ema"])),
        ),
        (
            "pending emission",
            format!(
                "{} α for the epoch, {} α owner cut",
                myc_of(&s["pending_alpha"]),
                myc_of(&s["pending_owner_cut"])
            ),
        ),
        (
            "last epoch",
            s["last_epoch"]
                .as_u64()
                .map(|b| format!("block {b}"))
                .unwrap_or_else(|| "none yet".into()),
        ),
        (
            "next epoch",
            format!("block {}", str_of(&s["next_epoch_at"])),
        ),
        ("pending commits", str_of(&s["pending_commits"])),
        ("as of block", str_of(&s["height"])),
    ]);
    println!("hyperparameters:");
    if let Some(params) = s["params"].as_object() {
        let width = params.keys().map(String::len).max().unwrap_or(0);
        for (name, value) in params {
            println!("  {name:<width$}  {}", str_of(value));
        }
    }
    Ok(())
}

fn subnet_set(args: SubnetSetArgs) -> Result<()> {
    let params = args.params();
    if params.is_empty() {
        bail!("give at least one hyperparameter to set, e.g. --tempo 99 (see `mycel subnet set --help`)");
    }
    let signer = load_signer(&args.send)?;
    let node = Rpc::new(&args.client)?;
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
    let hotkey = args.hotkey.resolve(&args.send.keystore)?.ok_or_else(|| {
        anyhow!("say which hotkey to register: --hotkey ADDRESS|NAME or --hotkey-dev-account I")
    })?;
    let max_burn = args
        .max_burn
        .as_deref()
        .map(|a| parse_myc(a, "--max-burn"))
        .transpose()?;
    let signer = load_signer(&args.send)?;
    let node = Rpc::new(&args.client)?;
    let netuid = args.netuid;
    let max_burn =
        match max_burn {
            Some(max) => max,
            None => amount_of(&node.get(&format!("/v1/subnets/{netuid}"))?, "burn").ok_or_else(
                || anyhow!("the node did not say subnet {netuid}'s burn: pass --max-burn AMOUNT"),
            )?,
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
    if let Some(done) = done.filter(|_| !args.client.json) {
        if let Some(e) = incentive_event(&done, "neuron_registered") {
            print!(
                "registered hotkey {} on subnet {netuid} as UID {} (burned {} MYC",
                checksummed(&e["hotkey"]),
                str_of(&e["uid"]),
                myc_of(&e["burned"])
            );
            match e["replaced"].as_str() {
                Some(old) => println!(", replacing {old})"),
                None => println!(")"),
            }
        }
    }
    Ok(())
}

fn neuron_list(args: NeuronListArgs) -> Result<()> {
    let node = Rpc::new(&args.client)?;
    let graph = node.get(&format!("/v1/subnets/{}/metagraph", args.netuid))?;
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
    for n in array(&graph["neurons"]) {
        table.row(vec![
            str_of(&n["uid"]),
            checksummed(&n["hotkey"]),
            checksummed(&n["coldkey"]),
            str_of(&n["registered_at"]),
            yes_no(&n["active"]),
            yes_no(&n["immune"]),
            endpoint_of(&n["endpoint"]),
        ]);
    }
    table.print();
    println!(
        "subnet {}, {} neurons, as of block {}",
        args.netuid,
        array(&graph["neurons"]).len(),
        str_of(&graph["block"])
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
    let signer = load_signer(&args.send)?;
    let node = Rpc::new(&args.client)?;
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
    if let Some(done) = done.filter(|_| !args.client.json) {
        if let Some(e) = incentive_event(&done, "endpoint_served") {
            println!(
                "UID {} of subnet {netuid} serves at {}://{}:{}",
                str_of(&e["uid"]),
                str_of(&e["protocol"]),
                str_of(&e["host"]),
                str_of(&e["port"])
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- stake

fn stake_add(args: StakeAddArgs) -> Result<()> {
    let hotkey = args.hotkey.resolve(&args.send.keystore)?.ok_or_else(|| {
        anyhow!("say which hotkey to stake on: --hotkey ADDRESS|NAME or --hotkey-dev-account I")
    })?;
    let amount = parse_myc(&args.amount, "--amount")?;
    let limit = args
        .limit_price
        .as_deref()
        .map(|p| parse_price(p, "--limit-price"))
        .transpose()?
        .unwrap_or(0);
    let signer = load_signer(&args.send)?;
    let node = Rpc::new(&args.client)?;
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
        print_fill(&node, &done, signer.address(), hotkey, netuid, "stake")?;
        print_position(&node, signer.address(), hotkey, netuid)?;
    }
    Ok(())
}

fn stake_remove(args: StakeRemoveArgs) -> Result<()> {
    let hotkey = args.hotkey.resolve(&args.send.keystore)?.ok_or_else(|| {
        anyhow!("say which hotkey to unstake from: --hotkey ADDRESS|NAME or --hotkey-dev-account I")
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
    let signer = load_signer(&args.send)?;
    let node = Rpc::new(&args.client)?;
    let netuid = args.netuid;
    let coldkey = signer.address();
    let amount = match amount {
        Some(a) => a,
        None => {
            let alpha = position(&node, coldkey, hotkey, netuid)?.map(|(alpha, _)| alpha);
            match alpha {
                Some(a) if a > 0 => a,
                _ => bail!(
                    "{coldkey} has no stake on {hotkey} in subnet {netuid}: nothing to unstake"
                ),
            }
        }
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
        print_fill(&node, &done, coldkey, hotkey, netuid, "unstake")?;
        print_position(&node, coldkey, hotkey, netuid)?;
    }
    Ok(())
}

fn stake_list(args: StakeListArgs) -> Result<()> {
    let coldkey = match (&args.coldkey, args.dev_account) {
        (Some(spec), _) => Some(resolve_address(spec, &args.keystore)?),
        (None, Some(n)) => Some(dev_address(n)?),
        (None, None) => None,
    };
    let node = Rpc::new(&args.client)?;
    if let Some(coldkey) = coldkey {
        let stakes = node.get(&format!("/v1/stakes/{coldkey}"))?;
        if args.client.json {
            return print_json(&stakes);
        }
        let positions = array(&stakes["stakes"]);
        if positions.is_empty() {
            println!(
                "{coldkey} has no stake (as of block {})",
                str_of(&stakes["height"])
            );
            return Ok(());
        }
        let mut table = Table::new(&["NETUID", "HOTKEY", "ALPHA", "VALUE (MYC)"]);
        for p in positions {
            table.row(vec![
                str_of(&p["netuid"]),
                checksummed(&p["hotkey"]),
                myc_of(&p["alpha"]),
                myc_of(&p["value"]),
            ]);
        }
        table.print();
        println!(
            "coldkey {coldkey}, as of block {}",
            str_of(&stakes["height"])
        );
        return Ok(());
    }
    // Every hotkey's total, from each subnet's metagraph.
    let list = node.get("/v1/subnets")?;
    let mut rows = Vec::new();
    for s in array(&list["subnets"]) {
        let netuid = str_of(&s["netuid"]);
        let graph = node.get(&format!("/v1/subnets/{netuid}/metagraph"))?;
        for n in array(&graph["neurons"]) {
            if amount_of(n, "alpha").unwrap_or(0) > 0 {
                rows.push(
                    json!({"netuid": s["netuid"], "uid": n["uid"], "hotkey": n["hotkey"],
                                 "alpha": n["alpha"], "stake": n["stake"]}),
                );
            }
        }
    }
    if args.client.json {
        return print_json(&json!({"height": list["height"], "hotkeys": rows}));
    }
    if rows.is_empty() {
        println!(
            "nothing is staked (as of block {})",
            str_of(&list["height"])
        );
        return Ok(());
    }
    let mut table = Table::new(&["NETUID", "UID", "HOTKEY", "ALPHA", "VALUE (MYC)"]);
    for r in &rows {
        table.row(vec![
            str_of(&r["netuid"]),
            str_of(&r["uid"]),
            checksummed(&r["hotkey"]),
            myc_of(&r["alpha"]),
            myc_of(&r["stake"]),
        ]);
    }
    table.print();
    println!(
        "alpha staked on each hotkey by all coldkeys, as of block {}; one coldkey's positions: --coldkey ADDRESS",
        str_of(&list["height"])
    );
    Ok(())
}

/// The coldkey's (alpha, value) on `hotkey` in `netuid`, if it has a position.
fn position(
    node: &Rpc,
    coldkey: Address,
    hotkey: Address,
    netuid: u16,
) -> Result<Option<(Amount, Amount)>> {
    let stakes = node.get(&format!("/v1/stakes/{coldkey}"))?;
    Ok(array(&stakes["stakes"]).iter().find_map(|p| {
        let same_hotkey =
            p["hotkey"].as_str().and_then(|h| h.parse::<Address>().ok()) == Some(hotkey);
        (same_hotkey && p["netuid"].as_u64() == Some(u64::from(netuid))).then(|| {
            (
                amount_of(p, "alpha").unwrap_or(0),
                amount_of(p, "value").unwrap_or(0),
            )
        })
    }))
}

/// What a stake order filled at, from the emission receipt of its block (which lists the block's
/// fills). Only the latest block's receipt can be read, so this says nothing if the chain has
/// already moved on.
fn print_fill(
    node: &Rpc,
    done: &Value,
    coldkey: Address,
    hotkey: Address,
    netuid: u16,
    side: &str,
) -> Result<()> {
    let receipt = match node.get("/v1/emission/receipts/latest") {
        Ok(r) => r,
        Err(_) => return Ok(()),
    };
    if receipt["height"] != done["height"] {
        return Ok(());
    }
    let fill = array(&receipt["swaps"]).iter().find(|f| {
        f["side"] == side
            && f["netuid"].as_u64() == Some(u64::from(netuid))
            && f["coldkey"]
                .as_str()
                .and_then(|a| a.parse::<Address>().ok())
                == Some(coldkey)
            && f["hotkey"].as_str().and_then(|a| a.parse::<Address>().ok()) == Some(hotkey)
    });
    if let Some(f) = fill {
        let (input, output) = if side == "stake" {
            ("MYC", "α")
        } else {
            ("α", "MYC")
        };
        println!(
            "filled in block {}: {} {input} → {} {output} at the batch price {} MYC per α",
            str_of(&done["height"]),
            myc_of(&f["amount_in"]),
            myc_of(&f["amount_out"]),
            myc_of(&f["price"])
        );
    }
    Ok(())
}

fn print_position(node: &Rpc, coldkey: Address, hotkey: Address, netuid: u16) -> Result<()> {
    match position(node, coldkey, hotkey, netuid)? {
        Some((alpha, value)) => println!(
            "position now: {} α (worth {} MYC at the spot price)",
            format_amount(alpha, Token::Myc),
            format_amount(value, Token::Myc)
        ),
        None => println!("position now: none"),
    }
    Ok(())
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
    let signer = load_signer(&args.send)?;
    let node = Rpc::new(&args.client)?;
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
        let uid = incentive_event(&done, "weights_set").map(|e| str_of(&e["uid"]));
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
    let signer = load_signer(&args.send)?;
    let hotkey = signer.address();
    let (netuid, version_key) = (args.netuid, args.version_key);
    let salt = B256::from(rand::random::<[u8; 32]>());
    let hash = weights_commit_hash(hotkey, netuid, &uids, &values, salt, version_key);
    let node = Rpc::new(&args.client)?;
    let subnet = node.get(&format!("/v1/subnets/{netuid}"))?;
    if subnet["params"]["commit_reveal"] == json!(false) {
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
        saved.block = done["height"].as_u64();
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
    if let (Some(block), Some(tempo), Some(period)) = (
        saved.block,
        subnet["params"]["tempo"].as_u64(),
        subnet["params"]["reveal_period"].as_u64(),
    ) {
        let window =
            mycel_state::subnets::EpochSchedule::new(netuid, tempo).reveal_window(block, period);
        let (first, last) = (window.start(), window.end());
        println!("reveal with `mycel weights reveal --netuid {netuid}` from block {first} to block {last}");
    }
    Ok(())
}

fn weights_reveal(args: WeightsRevealArgs) -> Result<()> {
    let dir = commits_dir(&args.commits)?;
    let signer = load_signer(&args.send)?;
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
    let node = Rpc::new(&args.client)?;
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
    let node = Rpc::new(&args.client)?;
    let graph = node.get(&format!("/v1/subnets/{}/metagraph", args.netuid))?;
    if args.client.json {
        return print_json(&graph);
    }
    let mut table = Table::new(&[
        "UID", "HOTKEY", "COLDKEY", "ALPHA", "VP", "CONS", "INCENT", "DIVS", "VTRUST", "EMISSION",
        "UPDATED", "ENDPOINT",
    ]);
    for n in array(&graph["neurons"]) {
        table.row(vec![
            str_of(&n["uid"]),
            short_address(&n["hotkey"]),
            short_address(&n["coldkey"]),
            myc_of(&n["alpha"]),
            if n["validator_permit"] == json!(true) {
                "*".into()
            } else {
                String::new()
            },
            fraction(&n["consensus"]),
            fraction(&n["incentive"]),
            fraction(&n["dividends"]),
            fraction(&n["validator_trust"]),
            myc_of(&n["emission"]),
            str_of(&n["last_update"]),
            endpoint_of(&n["endpoint"]),
        ]);
    }
    table.print();
    println!(
        "subnet {}, block {}; alpha and emission in α; full addresses with --json",
        args.netuid,
        str_of(&graph["block"])
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

pub fn run_emission(args: EmissionArgs) -> Result<()> {
    let node = Rpc::new(&args.client)?;
    let schedule = node.get("/v1/emission")?;
    let receipt = match node.get("/v1/emission/receipts/latest") {
        Ok(r) => Some(r),
        Err(e)
            if e.downcast_ref::<ApiError>()
                .is_some_and(|a| a.code == "no_emission_receipt") =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    if args.client.json {
        return print_json(&json!({"schedule": schedule, "latest_receipt": receipt}));
    }
    print_rows(&[
        ("as of block", str_of(&schedule["height"])),
        ("issuance", format!("{} MYC", myc_of(&schedule["issuance"]))),
        (
            "supply cap",
            format!("{} MYC", myc_of(&schedule["total_supply"])),
        ),
        (
            "block emission",
            format!("{} MYC", myc_of(&schedule["block_emission"])),
        ),
        ("halvings so far", str_of(&schedule["halvings"])),
        (
            "next halving at",
            match &schedule["next_halving_at"] {
                Value::Null => "never (the cap is reached)".into(),
                v => format!("{} MYC issued", myc_of(v)),
            },
        ),
        (
            "subnet lock cost",
            format!("{} MYC", myc_of(&schedule["subnet_lock_cost"])),
        ),
    ]);
    let Some(r) = receipt else {
        println!("\nno emission receipt yet: emission goes to subnets once one exists");
        return Ok(());
    };
    println!();
    println!(
        "block {}: emitted {} MYC, {} MYC to no subnet",
        str_of(&r["height"]),
        myc_of(&r["block_emission"]),
        myc_of(&r["myc_unassigned"])
    );
    for s in array(&r["subnets"]) {
        println!(
            "  subnet {}: share {} MYC (injected {}, recycled {}), alpha {} α in the pool, {} α emitted: owner cut {}, pending {}",
            str_of(&s["netuid"]),
            myc_of(&s["myc_share"]),
            myc_of(&s["myc_injected"]),
            myc_of(&s["myc_recycled"]),
            myc_of(&s["alpha_injected"]),
            myc_of(&s["alpha_emission"]),
            myc_of(&s["owner_cut"]),
            myc_of(&s["pending_added"]),
        );
        let epoch = &s["epoch"];
        if epoch.is_object() {
            println!(
                "    epoch paid {} α: owner {} α, recycled {} α",
                myc_of(&epoch["paid"]),
                myc_of(&epoch["owner_cut"]),
                myc_of(&epoch["recycled"])
            );
            let mut table = Table::new(&[
                "UID",
                "HOTKEY",
                "INCENTIVE",
                "DIVIDENDS",
                "TAKE",
                "TO STAKERS",
            ]);
            for n in array(&epoch["neurons"]) {
                table.row(vec![
                    str_of(&n["uid"]),
                    short_address(&n["hotkey"]),
                    myc_of(&n["incentive"]),
                    myc_of(&n["dividends"]),
                    myc_of(&n["take"]),
                    myc_of(&n["to_stakers"]),
                ]);
            }
            table.print_indented("    ");
        }
    }
    for swap in array(&r["swaps"]) {
        let (input, output) = if swap["side"] == "stake" {
            ("MYC", "α")
        } else {
            ("α", "MYC")
        };
        println!(
            "  {} on subnet {}: {} {input} → {} {output} at {} MYC per α",
            str_of(&swap["side"]),
            str_of(&swap["netuid"]),
            myc_of(&swap["amount_in"]),
            myc_of(&swap["amount_out"]),
            myc_of(&swap["price"])
        );
    }
    Ok(())
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
    if n >= DEV_ACCOUNTS {
        bail!(
            "development account {n} does not exist: they are 0 to {}",
            DEV_ACCOUNTS - 1
        );
    }
    Ok(dev_signer(n)
        .map_err(|e| anyhow!("cannot derive development account {n}: {e}"))?
        .address())
}

fn load_signer(args: &SendArgs) -> Result<PrivateKeySigner> {
    if args.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
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

/// Signs the transaction `build` makes (given sender, nonce, fee), submits it and, unless
/// `--no-wait`, waits for it. Returns the finalized transaction's JSON (`None` with
/// `--no-wait`). With `json`, prints the node's answer.
fn send(
    node: &Rpc,
    args: &SendArgs,
    signer: &PrivateKeySigner,
    json: bool,
    build: impl FnOnce(Address, u64, U256) -> TxKind,
) -> Result<Option<Value>> {
    let fee = args
        .fee
        .as_deref()
        .map(|f| parse_myc(f, "--fee"))
        .transpose()?;
    let from = signer.address();
    let status = node.get("/v1/status")?;
    let chain_id = status["chain_id"].as_u64().ok_or_else(|| {
        anyhow!(
            "the node's /v1/status has no chain_id: is {} a mycel node?",
            node.base
        )
    })?;
    let fee = match fee {
        Some(fee) => fee,
        None => amount_of(&status, "min_fee")
            .ok_or_else(|| anyhow!("the node's /v1/status has no min_fee: pass --fee AMOUNT"))?,
    };
    let nonce = match args.nonce {
        Some(n) => n,
        None => {
            let account = node.get(&format!("/v1/accounts/{from}"))?;
            account["next_nonce"]
                .as_u64()
                .or_else(|| account["nonce"].as_u64())
                .ok_or_else(|| {
                    anyhow!("the node did not say the nonce of {from}: pass --nonce N")
                })?
        }
    };
    let kind = build(from, nonce, U256::from(fee));
    let type_name = kind.type_name();
    let tx = SignedTx::sign(kind, chain_id, signer).context("signing the transaction failed")?;
    let hash = tx.hash();
    let accepted = node.post("/v1/txs", &serde_json::to_value(tx.to_json())?)?;
    if args.no_wait {
        if json {
            print_json(&accepted)?;
        } else {
            println!("{hash}");
            eprintln!(
                "sent {type_name} from {from} (nonce {nonce}); see it with `mycel tx {hash}`"
            );
        }
        return Ok(None);
    }
    if !json {
        eprintln!("submitted {type_name} {hash}, waiting for finalization…");
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let status = node.get(&format!("/v1/txs/{hash}"))?;
        match status["status"].as_str() {
            Some("finalized") => {
                if json {
                    print_json(&status)?;
                }
                if let Some(err) = status.get("error").filter(|e| e.is_object()) {
                    let (code, message) = error_parts(err);
                    bail!(
                        "{type_name} {hash} failed in block {}: {message} ({code})",
                        str_of(&status["height"])
                    );
                }
                if !json {
                    eprintln!("finalized in block {}", str_of(&status["height"]));
                }
                return Ok(Some(status));
            }
            Some("rejected") => {
                if json {
                    print_json(&status)?;
                }
                let (code, message) = error_parts(&status["error"]);
                bail!("{type_name} {hash} was rejected: {message} ({code})");
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            bail!(
                "{type_name} {hash} is still pending after {}s: check later with `mycel tx {hash}`, or wait longer with --timeout",
                args.timeout
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The first incentive event named `action` in a finalized transaction's receipt.
fn incentive_event<'a>(done: &'a Value, action: &str) -> Option<&'a Value> {
    array(&done["receipt"]["events"])
        .iter()
        .find(|e| e["action"] == action)
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

fn amount_of(value: &Value, field: &str) -> Option<Amount> {
    match &value[field] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64().map(Amount::from),
        _ => None,
    }
}

/// Base units (a decimal string) as whole tokens with 9 decimals (MYC and alpha alike).
fn myc_of(value: &Value) -> String {
    match value {
        Value::String(s) => s
            .parse::<Amount>()
            .map(|a| format_amount(a, Token::Myc))
            .unwrap_or_else(|_| s.clone()),
        Value::Number(n) => n
            .as_u64()
            .map(|a| format_amount(Amount::from(a), Token::Myc))
            .unwrap_or_else(|| n.to_string()),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The Taoflow EMA (a decimal of MYC base units per block, maybe negative) in MYC, to the base
/// unit.
fn flow_of(value: &Value) -> String {
    let text = str_of(value);
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let whole = digits.split('.').next().unwrap_or_default();
    match whole.parse::<Amount>() {
        Ok(units) => format!("{sign}{}", format_amount(units, Token::Myc)),
        Err(_) => text,
    }
}

/// A `u16` proportion (x/65535) as a decimal with 4 places, rounded.
fn fraction(value: &Value) -> String {
    match value.as_u64() {
        Some(x) => {
            let scaled = (x * 20_000 + 65_535) / (2 * 65_535);
            format!("{}.{:04}", scaled / 10_000, scaled % 10_000)
        }
        None => "-".into(),
    }
}

fn str_of(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn checksummed(value: &Value) -> String {
    let text = str_of(value);
    text.parse::<Address>()
        .map(|a| a.to_checksum(None))
        .unwrap_or(text)
}

/// `0xAbCd…1234`, for tables.
fn short_address(value: &Value) -> String {
    let full = checksummed(value);
    if full.len() == 42 {
        format!("{}…{}", &full[..6], &full[38..])
    } else {
        full
    }
}

fn endpoint_of(value: &Value) -> String {
    if value.is_null() {
        return "-".into();
    }
    format!(
        "{}://{}:{}",
        str_of(&value["protocol"]),
        str_of(&value["host"]),
        str_of(&value["port"])
    )
}

fn yes_no(value: &Value) -> String {
    if *value == json!(true) { "yes" } else { "no" }.into()
}

fn array(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
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
        assert_eq!(fraction(&json!(65535)), "1.0000");
        assert_eq!(fraction(&json!(0)), "0.0000");
        assert_eq!(fraction(&json!(32767)), "0.5000");
        assert_eq!(myc_of(&json!("1500000000")), "1.5");
        assert_eq!(flow_of(&json!("481300.5735")), "0.0004813");
        assert_eq!(flow_of(&json!("-2000000000.1")), "-2");
        assert_eq!(
            short_address(&json!("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266")),
            "0xf39F…2266"
        );
    }
}
