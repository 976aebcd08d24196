//! The commands that run nodes: `mycel up`, `mycel node`, `mycel init`, `mycel localnet`.
//!
//! A node's config file (`node.json`) is a [`NodeFile`]: the chain's [`NodeConfig`] plus the
//! address of the HTTP API. It holds the validator's private key, so it is written 0600.

use crate::http_limits::HttpLimitsArgs;
use anyhow::{bail, Context as _};
use commonware_runtime::Runner as _;
use mycel_chain::{generate_validator_key, NodeConfig, PeerConfig};
use mycel_types::{keys::dev_signer, keys::DEV_ACCOUNTS, keys::DEV_MNEMONIC, Genesis};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// Start only the chain: no inference subnet, miners, validator or gateway (no model needed,
    /// starts in a second).
    #[arg(long)]
    pub chain_only: bool,
    /// Address of the x402 gateway in front of the subnet's miners.
    #[arg(long, default_value = "127.0.0.1:8402")]
    pub gateway_addr: SocketAddr,
    /// How the console log is written: `text` (for people) or `json` (one object per line, for
    /// log collectors).
    #[arg(long, value_enum, default_value = "text", env = "MYCEL_LOG_FORMAT")]
    pub log_format: crate::logging::LogFormat,
    /// Blocks whose emission receipt the node keeps for the API and the explorer
    /// [default: 10000, or what the devnet's node.json says].
    #[arg(long, value_name = "N")]
    pub history_blocks: Option<usize>,
    /// Epochs per subnet whose payouts the node keeps [default: 1000, or node.json's].
    #[arg(long, value_name = "N")]
    pub history_epochs: Option<usize>,
    /// Storage nodes to run (0: none). Blobs need at least 4.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub storage_nodes: u16,
    /// Address of the first storage node; node K serves on its port + K.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7100")]
    pub storage_addr: SocketAddr,
    /// Blocks per storage epoch of a new devnet (blobs are paid for, and nodes paid, by the epoch)
    /// [default: 600]. A resumed devnet keeps its genesis.
    #[arg(long, value_name = "BLOCKS")]
    pub storage_epoch_blocks: Option<u64>,
    /// Compute providers to run (0 to 2): `mycel provider` for development accounts 6 and 7, so
    /// `mycel deploy` gets bids (docs/compute.md).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=2))]
    pub providers: u16,
    /// The first port the providers' leases are served on (provider K from this + 10·K).
    #[arg(long, value_name = "PORT", default_value_t = 8300)]
    pub provider_port: u16,
    /// Also run a training subnet (docs/training.md): a run of the tiny model with one validator
    /// and --train-miners miners, owned by development account 9. Needs the storage nodes.
    #[arg(long)]
    pub train: bool,
    /// Miners of the --train subnet.
    #[arg(long, value_name = "N", default_value_t = 2, requires = "train")]
    pub train_miners: u16,
    /// Followers to run (`mycel node --follow` this devnet): nodes without a validator key that
    /// sync its certified blocks and serve the whole node API, each in DATA_DIR/follower-K.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub followers: u16,
    /// The port of follower 0's node API on 127.0.0.1; follower K serves on this + K.
    #[arg(long, value_name = "PORT", default_value_t = 8555)]
    pub follower_port: u16,
    /// Limits of every HTTP server the devnet runs: the node API, and the miners, validator and
    /// gateway of the subnet.
    #[command(flatten)]
    pub http: HttpLimitsArgs,
}

/// `mycel node`: one validator from a config file written by `mycel init` or `mycel localnet`,
/// or (`--follow URL`) a follower: a node without a validator key that syncs finalized blocks from
/// other nodes, checks every block's certificate and state root, and serves the whole node API.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// The validator's config file.
    #[arg(long, required_unless_present = "follow", conflicts_with = "follow")]
    pub config: Option<PathBuf>,
    /// Run a follower of the node at URL (its HTTP API); repeat or separate with commas for more,
    /// tried in turn. Transactions sent to the follower are checked and forwarded to them.
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub follow: Vec<String>,
    #[command(flatten)]
    pub follower: crate::follow_cmd::FollowerArgs,
    /// How the console log is written: `text` (for people) or `json` (one object per line, for
    /// log collectors).
    #[arg(long, value_enum, default_value = "text", env = "MYCEL_LOG_FORMAT")]
    pub log_format: crate::logging::LogFormat,
    #[command(flatten)]
    pub http: HttpLimitsArgs,
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

/// `mycel localnet`: write (if needed) and start an N-validator network on loopback, and followers
/// of it if asked.
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
    /// How each validator's log (validator-N/node.log) is written: `text` or `json`.
    #[arg(long, value_enum, default_value = "text", env = "MYCEL_LOG_FORMAT")]
    pub log_format: crate::logging::LogFormat,
    /// Give every validator a storage node (`mycel storage`, signed by development account
    /// 6 + N, on port --storage-port + N, its slivers in validator-N/storage). Up to 4 validators.
    #[arg(long)]
    pub storage: bool,
    #[arg(long, default_value_t = 8745)]
    pub storage_port: u16,
    /// Followers to run (`mycel node --follow` every validator): nodes without a validator key
    /// that sync the certified blocks and serve the whole node API, each in DIR/follower-K.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub followers: u16,
    /// The port of follower 0's node API on 127.0.0.1; follower K serves on this + K.
    #[arg(long, value_name = "PORT", default_value_t = 8845)]
    pub follower_port: u16,
}

/// The file `mycel node --config` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeFile {
    /// Where the HTTP API listens.
    pub rpc_addr: SocketAddr,
    #[serde(flatten)]
    pub node: NodeConfig,
}

const NODE_FILE: &str = "node.json";
const GENESIS_FILE: &str = "genesis.json";

pub fn run_up(args: UpArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let limits = args.http.limits()?;
    let config_path = args.data_dir.join(NODE_FILE);
    let mut file = if config_path.exists() {
        let file = read_node_file(&config_path)?;
        eprintln!("resuming the devnet in {}", args.data_dir.display());
        file
    } else {
        fs::create_dir_all(&args.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                args.data_dir.display()
            )
        })?;
        let key = generate_validator_key();
        let mut genesis = Genesis::devnet(vec![key.public_key.clone()], now_ms())?;
        if let Some(blocks) = args.storage_epoch_blocks {
            anyhow::ensure!(blocks > 0, "--storage-epoch-blocks must be at least 1");
            genesis.storage.epoch_blocks = blocks;
        }
        let node = NodeConfig::new(
            &args.data_dir,
            genesis,
            key.private_key,
            args.p2p_addr,
            vec![],
        );
        let file = NodeFile {
            rpc_addr: args.rpc_addr,
            node,
        };
        write_json(&args.data_dir.join(GENESIS_FILE), &file.node.genesis, false)?;
        write_json(&config_path, &file, true)?;
        eprintln!("created a new devnet in {}", args.data_dir.display());
        file
    };
    // Flags given on this run win over the stored addresses.
    file.rpc_addr = args.rpc_addr;
    file.node.p2p_listen = args.p2p_addr;
    file.node.data_dir = args.data_dir.clone();
    if let Some(n) = args.history_blocks {
        file.node.history.blocks = n;
    }
    if let Some(n) = args.history_epochs {
        file.node.history.epochs = n;
    }
    let subnet = (!args.chain_only).then(|| crate::up_roles::SubnetPlan {
        rpc: format!("http://{}", args.rpc_addr),
        dir: args.data_dir.join("subnet"),
        gateway_addr: args.gateway_addr,
        http: args.http.clone(),
    });
    let storage = (args.storage_nodes > 0).then(|| crate::up_storage::StoragePlan {
        rpc: format!("http://{}", args.rpc_addr),
        dir: args.data_dir.join("storage"),
        nodes: args.storage_nodes,
        first_addr: args.storage_addr,
        http: args.http.clone(),
    });
    if args.train && args.storage_nodes == 0 {
        anyhow::bail!(
            "--train stores checkpoints and updates as blobs: it needs --storage-nodes 4 or more"
        );
    }
    let train = args.train.then(|| crate::up_train::TrainPlan {
        rpc: format!("http://{}", args.rpc_addr),
        dir: args.data_dir.join("train"),
        miners: args.train_miners,
        after_subnet: (!args.chain_only).then_some(crate::up_roles::SUBNET_NETUID),
    });
    let providers = crate::up_provider::ProviderPlan {
        rpc: format!("http://{}", args.rpc_addr),
        dir: args.data_dir.clone(),
        providers: args.providers,
        first_port: args.provider_port,
    };
    let genesis = args.data_dir.join(GENESIS_FILE);
    let followers = crate::up_follower::FollowerPlan {
        follow: vec![format!("http://{}", args.rpc_addr)],
        genesis: genesis.exists().then_some(genesis),
        dir: args.data_dir.clone(),
        followers: args.followers,
        first_port: args.follower_port,
        log_format: args.log_format,
    };
    followers.check()?;
    run(
        file,
        Banner::Devnet(Box::new(DevnetRoles {
            subnet,
            storage,
            train,
            providers,
            followers: (args.followers > 0).then_some(followers),
        })),
        limits,
    )
}

pub fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let limits = args.http.limits()?;
    let Some(config) = args.config else {
        return crate::follow_cmd::run(&args.follow, args.follower, limits);
    };
    let file = read_node_file(&config)?;
    run(file, Banner::Node, limits)
}

pub fn run_init(args: InitArgs) -> anyhow::Result<()> {
    init(
        &args.dir,
        args.validators,
        args.chain_id,
        args.host,
        args.p2p_port,
        args.rpc_port,
        args.force,
    )?;
    println!(
        "wrote a {}-validator network to {}",
        args.validators,
        args.dir.display()
    );
    for i in 0..args.validators {
        println!(
            "  mycel node --config {}",
            args.dir
                .join(format!("validator-{i}"))
                .join(NODE_FILE)
                .display()
        );
    }
    Ok(())
}

pub fn run_localnet(args: LocalnetArgs) -> anyhow::Result<()> {
    if args.validators == 0 {
        bail!("--validators must be at least 1");
    }
    if !args.dir.join(GENESIS_FILE).exists() {
        let host = std::net::IpAddr::from([127, 0, 0, 1]);
        init(
            &args.dir,
            args.validators,
            mycel_types::genesis::DEVNET_CHAIN_ID,
            host,
            args.p2p_port,
            args.rpc_port,
            false,
        )?;
        eprintln!(
            "wrote a {}-validator localnet to {}",
            args.validators,
            args.dir.display()
        );
    } else {
        eprintln!("resuming the localnet in {}", args.dir.display());
    }
    if args.storage && args.validators > 4 {
        bail!("--storage gives up to 4 validators a storage node (development accounts 6 to 9 sign them)");
    }
    let mut followers = crate::up_follower::FollowerPlan {
        follow: Vec::new(),
        genesis: Some(args.dir.join(GENESIS_FILE)),
        dir: args.dir.clone(),
        followers: args.followers,
        first_port: args.follower_port,
        log_format: args.log_format,
    };
    followers.check()?;
    let exe = std::env::current_exe().context("cannot find the mycel executable")?;
    let mut children: Vec<Supervised> = Vec::new();
    let started = start_localnet(&args, &exe, &mut followers, &mut children);
    let result = started.and_then(|()| {
        println!("localnet running; Ctrl-C stops it");
        supervise_localnet(&mut children)
    });
    stop_all(&mut children);
    eprintln!("localnet stopped");
    result
}

/// Starts the localnet's validators, their storage nodes and the followers, adding each to
/// `children` as it starts (so a failure part way stops the ones started).
fn start_localnet(
    args: &LocalnetArgs,
    exe: &Path,
    followers: &mut crate::up_follower::FollowerPlan,
    children: &mut Vec<Supervised>,
) -> anyhow::Result<()> {
    for i in 0..args.validators {
        let dir = args.dir.join(format!("validator-{i}"));
        let config = dir.join(NODE_FILE);
        if !config.exists() {
            bail!(
                "{} is missing: the localnet in {} has fewer validators; pick another --dir",
                config.display(),
                args.dir.display()
            );
        }
        let log_path = dir.join("node.log");
        let log = fs::File::create(&log_path)
            .with_context(|| format!("cannot write {}", log_path.display()))?;
        let child = Command::new(exe)
            .arg("node")
            .arg("--config")
            .arg(&config)
            .args(["--log-format", args.log_format.as_flag()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start validator {i}"))?;
        let rpc = read_node_file(&config)?.rpc_addr;
        println!("validator {i}: http://{rpc}  (log: {})", log_path.display());
        children.push(Supervised {
            label: format!("validator {i}"),
            log: log_path,
            child,
        });
        followers.follow.push(format!("http://{rpc}"));
        if args.storage {
            let port = args
                .storage_port
                .checked_add(i as u16)
                .context("--storage-port runs past 65535")?;
            let log_path = dir.join("storage.log");
            let log = fs::File::create(&log_path)
                .with_context(|| format!("cannot write {}", log_path.display()))?;
            let child = Command::new(exe)
                .args([
                    "storage",
                    "--dev-account",
                    &(6 + i).to_string(),
                    "--rpc",
                    &format!("http://{rpc}"),
                ])
                .arg("--dir")
                .arg(dir.join("storage"))
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start storage node {i}"))?;
            println!(
                "storage node {i}: http://127.0.0.1:{port}  (log: {})",
                log_path.display()
            );
            children.push(Supervised {
                label: format!("storage node {i}"),
                log: log_path,
                child,
            });
        }
    }
    for k in 0..followers.followers {
        let addr = followers.addr(k)?;
        let child = followers.spawn(exe, k)?;
        println!(
            "follower {k}: http://{addr}  (log: {})",
            child.log.display()
        );
        children.push(child);
    }
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM (`Ok`), or for a child to exit (an error naming it and its log).
fn supervise_localnet(children: &mut [Supervised]) -> anyhow::Result<()> {
    let stop = signal_flag()?;
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!("stopping…");
            return Ok(());
        }
        if let Some((child, status)) = children
            .iter_mut()
            .find_map(|c| c.exited().map(|status| (c, status)))
        {
            bail!(
                "{} exited ({status}); see {}",
                child.label,
                child.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Writes genesis.json and one validator-i/node.json per validator into `dir`.
fn init(
    dir: &Path,
    validators: u32,
    chain_id: u64,
    host: std::net::IpAddr,
    p2p_port: u16,
    rpc_port: u16,
    force: bool,
) -> anyhow::Result<()> {
    if validators == 0 {
        bail!("--validators must be at least 1");
    }
    if dir.join(GENESIS_FILE).exists() && !force {
        bail!(
            "{} already holds a network; pass --force to overwrite it, or pick another --dir",
            dir.display()
        );
    }
    let port = |base: u16, i: u32| -> anyhow::Result<u16> {
        u16::try_from(base as u32 + i).context("port numbers run past 65535; pick lower base ports")
    };
    let keys: Vec<_> = (0..validators).map(|_| generate_validator_key()).collect();
    let mut genesis = Genesis::devnet(
        keys.iter().map(|k| k.public_key.clone()).collect(),
        now_ms(),
    )?;
    genesis.chain_id = chain_id;
    let peers = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Ok(PeerConfig {
                public_key: k.public_key.clone(),
                address: SocketAddr::new(host, port(p2p_port, i as u32)?),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_json(&dir.join(GENESIS_FILE), &genesis, false)?;
    for (i, key) in keys.into_iter().enumerate() {
        let node_dir = dir.join(format!("validator-{i}"));
        fs::create_dir_all(&node_dir)
            .with_context(|| format!("cannot create {}", node_dir.display()))?;
        let node_dir = fs::canonicalize(&node_dir)?;
        let p2p = SocketAddr::new(host, port(p2p_port, i as u32)?);
        let others = peers
            .iter()
            .filter(|p| p.public_key != key.public_key)
            .cloned()
            .collect();
        let node = NodeConfig::new(&node_dir, genesis.clone(), key.private_key, p2p, others);
        let file = NodeFile {
            rpc_addr: SocketAddr::new(host, port(rpc_port, i as u32)?),
            node,
        };
        file.node.validate()?;
        write_json(&node_dir.join(NODE_FILE), &file, true)?;
    }
    Ok(())
}

enum Banner {
    /// `mycel up`, with the inference subnet unless `--chain-only`, and its storage nodes.
    Devnet(Box<DevnetRoles>),
    Node,
}

/// What `mycel up` runs next to the node.
struct DevnetRoles {
    subnet: Option<crate::up_roles::SubnetPlan>,
    storage: Option<crate::up_storage::StoragePlan>,
    train: Option<crate::up_train::TrainPlan>,
    providers: crate::up_provider::ProviderPlan,
    followers: Option<crate::up_follower::FollowerPlan>,
}

/// Runs a node and its HTTP API until Ctrl-C or SIGTERM.
fn run(file: NodeFile, banner: Banner, limits: mycel_http::ServeLimits) -> anyhow::Result<()> {
    file.node.validate()?;
    let rpc_addr = file.rpc_addr;
    // Bind before starting consensus, so a taken port is a clear error and not a half-started node.
    let listener = std::net::TcpListener::bind(rpc_addr).with_context(|| {
        format!("cannot listen on {rpc_addr} for the HTTP API: is another mycel running? pick another with --rpc-addr")
    })?;
    listener.set_nonblocking(true)?;
    // The p2p listener is bound inside consensus, which cannot say why it failed: try it first.
    let p2p = file.node.p2p_listen;
    drop(std::net::TcpListener::bind(p2p).with_context(|| {
        format!("cannot listen on {p2p} for p2p: is another mycel running? pick another port (`mycel up --p2p-addr`, or p2p_listen in the node config)")
    })?);
    let runner = commonware_runtime::tokio::Runner::new(file.node.runtime_config());
    let genesis = file.node.genesis.clone();
    let data_dir = file.node.data_dir.clone();
    runner.start(|context| async move {
        let node = mycel_chain::start_node(context, file.node)
            .await
            .context("the node could not start")?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let status = node.status();
        let mut subnet = None;
        let mut storage = None;
        let mut providers = None;
        let mut training = None;
        let mut followers = None;
        let attached = mycel_rpc::Attached::default();
        match banner {
            Banner::Devnet(roles) => {
                let DevnetRoles {
                    subnet: plan,
                    storage: storage_plan,
                    train: train_plan,
                    providers: provider_plan,
                    followers: follower_plan,
                } = *roles;
                print_devnet_banner(rpc_addr, &data_dir, &status.node_key, status.latest_height);
                if let Some(plan) = storage_plan {
                    storage = Some(crate::up_storage::start(plan)?);
                }
                providers = Some(crate::up_provider::start(&provider_plan)?);
                if let Some(plan) = train_plan {
                    training = Some(crate::up_train::start(plan)?);
                }
                if let Some(plan) = follower_plan {
                    followers = Some(crate::up_follower::start(&plan)?);
                }
                if let Some(plan) = plan {
                    subnet = Some(crate::up_roles::start(plan, attached.clone())?);
                }
            }
            Banner::Node => eprintln!(
                "node {} serving http://{rpc_addr} (chain {}, height {})",
                status.node_key, status.chain_id, status.latest_height
            ),
        }
        mycel_rpc::serve(
            listener,
            node.clone(),
            genesis,
            limits,
            attached,
            shutdown_signal(),
        )
        .await
        .context("the HTTP API stopped")?;
        if let Some(subnet) = subnet {
            subnet.stop();
        }
        if let Some(training) = training {
            training.stop();
        }
        if let Some(providers) = providers {
            providers.stop();
        }
        if let Some(followers) = followers {
            followers.stop();
        }
        if let Some(storage) = storage {
            storage.stop();
        }
        eprintln!(
            "stopped at finalized height {}",
            node.status().latest_height
        );
        anyhow::Ok(())
    })
}

fn print_devnet_banner(rpc_addr: SocketAddr, data_dir: &Path, node_key: &str, height: u64) {
    let mut out = String::new();
    out.push_str("\nmycel devnet is running\n\n");
    out.push_str(&format!("  RPC        http://{rpc_addr}\n"));
    out.push_str(&format!(
        "  explorer   http://{rpc_addr}/explorer   (open it in a browser)\n"
    ));
    out.push_str(&format!("  data dir   {}\n", data_dir.display()));
    out.push_str(&format!("  validator  {node_key}\n"));
    out.push_str(&format!("  height     {height}\n\n"));
    out.push_str(&format!(
        "dev accounts (1,000,000 MYC and 1,000,000 mUSD each; mnemonic \"{DEV_MNEMONIC}\"):\n"
    ));
    for i in 0..DEV_ACCOUNTS {
        if let Ok(signer) = dev_signer(i) {
            out.push_str(&format!("  ({i}) {}\n", signer.address()));
        }
    }
    out.push_str("\ntry:\n");
    out.push_str(&format!("  mycel status --rpc http://{rpc_addr}\n"));
    out.push_str(&format!(
        "  mycel transfer --rpc http://{rpc_addr} --dev-account 0 --to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --amount 1.5 --wait\n"
    ));
    out.push_str(&format!(
        "\nconnect an AI assistant over MCP (docs/mcp.md): its command line is\n  \
         mycel mcp --rpc http://{rpc_addr} --dev-account 5\n"
    ));
    out.push_str("\nCtrl-C stops the devnet; running `mycel up` again resumes the same chain.\n");
    print!("{out}");
    let _ = std::io::stdout().flush();
}

/// Returns on Ctrl-C or SIGTERM, once it has said so on the console.
pub(crate) async fn shutdown_signal() {
    stop_requested().await;
    eprintln!("stopping…");
}

/// Returns on Ctrl-C or SIGTERM.
async fn stop_requested() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// A flag set on Ctrl-C or SIGTERM, for a blocking supervisor (it says nothing itself).
pub(crate) fn signal_flag() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let set = flag.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(stop_requested());
        set.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    Ok(flag)
}

/// A child process a supervisor runs, named for what it says about it.
pub(crate) struct Supervised {
    /// What it is, for people: `validator 2`, `follower 0`.
    pub label: String,
    /// Where its output goes.
    pub log: PathBuf,
    pub child: Child,
}

impl Supervised {
    /// Its exit status, once it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// SIGTERM to every child still running (a node then stops its API cleanly; finalized data is
/// durable either way), then waits for them all, at most 10 s, and kills the ones left.
pub(crate) fn stop_all(children: &mut [Supervised]) {
    stop_processes(children.iter_mut().map(|s| &mut s.child).collect());
}

/// SIGTERM to every child still running, then waits for them all, at most 10 s, and kills the
/// ones left.
pub(crate) fn stop_processes(mut children: Vec<&mut Child>) {
    for child in children.iter_mut() {
        #[cfg(unix)]
        if matches!(child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on a child this process started and has not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for child in children.iter_mut() {
        while std::time::Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn read_node_file(path: &Path) -> anyhow::Result<NodeFile> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read the node config {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid node config", path.display()))
}

/// Writes JSON atomically (temp file, fsync, rename); `secret` files get mode 0600.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T, secret: bool) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(value)?)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn init_logging(format: crate::logging::LogFormat) {
    crate::logging::init_with(crate::logging::NODE, format);
}
