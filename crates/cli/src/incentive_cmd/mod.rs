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

mod emission;
mod stake;
mod subnet;
mod weights;

pub use emission::{run_emission, run_metagraph, EmissionArgs};

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
        SubnetCommand::Create(args) => subnet::subnet_create(args),
        SubnetCommand::List(args) => subnet::subnet_list(args),
        SubnetCommand::Show(args) => subnet::subnet_show(args),
        SubnetCommand::Set(args) => subnet::subnet_set(*args),
    }
}

pub fn run_neuron(command: NeuronCommand) -> Result<()> {
    match command {
        NeuronCommand::Register(args) => subnet::neuron_register(args),
        NeuronCommand::List(args) => subnet::neuron_list(args),
        NeuronCommand::Serve(args) => subnet::neuron_serve(args),
    }
}

pub fn run_stake(command: StakeCommand) -> Result<()> {
    match command {
        StakeCommand::Add(args) => stake::stake_add(args),
        StakeCommand::Remove(args) => stake::stake_remove(args),
        StakeCommand::List(args) => stake::stake_list(args),
    }
}

pub fn run_weights(command: WeightsCommand) -> Result<()> {
    match command {
        WeightsCommand::Set(args) => weights::weights_set(args),
        WeightsCommand::Commit(args) => weights::weights_commit(args),
        WeightsCommand::Reveal(args) => weights::weights_reveal(args),
    }
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
    use super::weights::parse_weights;
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
