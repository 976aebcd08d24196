//! The commands that run nodes: `mycel up`, `mycel node`, `mycel init`, `mycel localnet`.
//! (Owned by the lead; bodies land with the chain crate.)

use std::net::SocketAddr;
use std::path::PathBuf;

/// `mycel up`: a whole devnet on this machine.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Where the devnet keeps its keys, blocks and state. A second run with the same directory
    /// resumes the same chain.
    #[arg(long, default_value = ".mycel/devnet", env = "MYCEL_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address of the node's HTTP API.
    #[arg(long, default_value = "127.0.0.1:8545")]
    pub rpc_addr: SocketAddr,
    /// Address the validator's p2p listens on.
    #[arg(long, default_value = "127.0.0.1:30300")]
    pub p2p_addr: SocketAddr,
}

/// `mycel node`: one validator from a config file written by `mycel init` or `mycel localnet`.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// The node's config file.
    #[arg(long)]
    pub config: PathBuf,
}

/// `mycel init`: write a genesis and node configs for a new network.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Directory to write into (one sub-directory per validator).
    #[arg(long, default_value = ".mycel/network")]
    pub dir: PathBuf,
    /// Number of validators.
    #[arg(long, default_value_t = 1)]
    pub validators: u32,
    /// Chain id (EIP-155).
    #[arg(long, default_value_t = 1337)]
    pub chain_id: u64,
    /// First p2p port; validator i listens on base + i.
    #[arg(long, default_value_t = 30300)]
    pub p2p_port: u16,
    /// First HTTP API port; validator i serves on base + i.
    #[arg(long, default_value_t = 8545)]
    pub rpc_port: u16,
    /// Host the validators listen on and reach each other at.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Overwrite an existing network in DIR.
    #[arg(long)]
    pub force: bool,
}

/// `mycel localnet`: write (if needed) and start an N-validator network on loopback.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalnetArgs {
    #[arg(long, default_value_t = 4)]
    pub validators: u32,
    #[arg(long, default_value = ".mycel/localnet")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 30400)]
    pub p2p_port: u16,
    #[arg(long, default_value_t = 8645)]
    pub rpc_port: u16,
}

pub fn run_up(_args: UpArgs) -> anyhow::Result<()> {
    anyhow::bail!("mycel up is not wired yet")
}

pub fn run_node(_args: NodeArgs) -> anyhow::Result<()> {
    anyhow::bail!("mycel node is not wired yet")
}

pub fn run_init(_args: InitArgs) -> anyhow::Result<()> {
    anyhow::bail!("mycel init is not wired yet")
}

pub fn run_localnet(_args: LocalnetArgs) -> anyhow::Result<()> {
    anyhow::bail!("mycel localnet is not wired yet")
}
