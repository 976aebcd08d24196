//! `mycel node --follow URL`: a follower. It takes finalized blocks from the nodes it follows over
//! their HTTP API (`/v1/sync/blocks`), checks each batch's finalization certificate against the
//! genesis validators and each block's state root by executing it, and serves the whole node API
//! from its own copy. Transactions sent to it are checked against its state and forwarded.

use crate::node_cmd::shutdown_signal;
use anyhow::{bail, Context as _};
use commonware_runtime::Runner as _;
use futures::future::BoxFuture;
use mycel_chain::{FollowerConfig, SubmitRefusal, Upstream};
use mycel_client::{ClientError, NodeClient};
use mycel_types::{Genesis, SignedTx};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The follower's own settings (`mycel node --follow URL ...`).
#[derive(Debug, Clone, clap::Args)]
pub struct FollowerArgs {
    /// Where the follower keeps its copy of the chain. A second run with the same directory
    /// resumes where it stopped.
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".mycel/follower",
        requires = "follow"
    )]
    pub data_dir: PathBuf,
    /// Address of the follower's HTTP API.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8555",
        requires = "follow"
    )]
    pub rpc_addr: SocketAddr,
    /// The chain's genesis file: its validators are who must sign every block. Without it the
    /// genesis is read from the first node followed (and its hash printed, to compare) and kept
    /// in DIR/genesis.json.
    #[arg(long, value_name = "FILE", requires = "follow")]
    pub genesis: Option<PathBuf>,
    /// Start from a followed node's state snapshot (checked against a certified block's state
    /// root) instead of executing every block from genesis. Blocks and receipts before the
    /// snapshot are then not served by this follower.
    #[arg(long, requires = "follow")]
    pub state_sync: bool,
    /// The most transactions a block of this chain holds (the validators' block_limits).
    #[arg(long, value_name = "N", default_value_t = mycel_chain::BlockLimitsConfig::default().max_block_txs, requires = "follow")]
    pub max_block_txs: usize,
    /// The state is written whole every this many blocks (as on a validator).
    #[arg(long, value_name = "N", default_value_t = 32, requires = "follow")]
    pub snapshot_every_blocks: u64,
}

/// A followed node, through its HTTP API.
struct HttpUpstream(NodeClient);

impl Upstream for HttpUpstream {
    fn name(&self) -> String {
        self.0.base().to_string()
    }

    fn blocks(
        &self,
        from: u64,
        max: u64,
        wait_ms: u64,
    ) -> BoxFuture<'static, Result<Option<Vec<u8>>, String>> {
        let client = self.0.clone();
        Box::pin(async move {
            client
                .sync_blocks(from, max, wait_ms)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn snapshot(&self) -> BoxFuture<'static, Result<Vec<u8>, String>> {
        let client = self.0.clone();
        Box::pin(async move { client.sync_snapshot().await.map_err(|e| e.to_string()) })
    }

    fn submit(&self, tx: SignedTx) -> BoxFuture<'static, Result<(), SubmitRefusal>> {
        let client = self.0.clone();
        Box::pin(async move {
            match client.submit(&tx).await {
                Ok(_) => Ok(()),
                Err(ClientError::Node { code, message, .. }) => {
                    Err(SubmitRefusal::Refused { code, message })
                }
                Err(e) => Err(SubmitRefusal::Unreachable(e.to_string())),
            }
        })
    }
}

/// The genesis to follow: `--genesis`, else the one kept from the first run, else the first
/// followed node's (kept for the next run). Every followed node must be on it.
async fn genesis(args: &FollowerArgs, clients: &[NodeClient]) -> anyhow::Result<Genesis> {
    let kept = args.data_dir.join("genesis.json");
    let read = |path: &Path| -> anyhow::Result<Genesis> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the genesis {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a genesis file", path.display()))
    };
    let genesis = match &args.genesis {
        Some(path) => read(path)?,
        None if kept.exists() => read(&kept)?,
        None => {
            let mut reasons = Vec::new();
            let mut found = None;
            for client in clients {
                match client.genesis().await {
                    Ok(g) => {
                        found = Some(g);
                        break;
                    }
                    Err(e) => reasons.push(e.to_string()),
                }
            }
            let Some(genesis) = found else {
                bail!("no followed node gave its genesis: {}", reasons.join("; "));
            };
            eprintln!(
                "genesis {} read from {} (compare it with the chain's published hash, or pass --genesis FILE)",
                genesis.hash(),
                clients[0].base()
            );
            genesis
        }
    };
    genesis.validate().context("invalid genesis")?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    if !kept.exists() {
        crate::node_cmd::write_json(&kept, &genesis, false)?;
    }
    // Compared by hash (their status), not by fetching a genesis that may hold millions of
    // accounts again.
    let hash = genesis.hash();
    for client in clients {
        if let Ok(status) = client.status().await {
            if status.genesis_hash != hash {
                bail!(
                    "{} runs the chain with genesis {}, not {hash}: follow nodes of one chain",
                    client.base(),
                    status.genesis_hash,
                );
            }
        }
    }
    Ok(genesis)
}

/// Runs a follower of `urls` until Ctrl-C or SIGTERM.
pub fn run(
    urls: &[String],
    args: FollowerArgs,
    limits: mycel_http::ServeLimits,
) -> anyhow::Result<()> {
    if urls.is_empty() {
        bail!("--follow needs the URL of at least one node (its HTTP API)");
    }
    if args.snapshot_every_blocks == 0 {
        bail!("--snapshot-every-blocks must be at least 1");
    }
    let clients = urls
        .iter()
        .map(|u| NodeClient::new(u).with_context(|| format!("--follow {u}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rpc_addr = args.rpc_addr;
    let listener = std::net::TcpListener::bind(rpc_addr).with_context(|| {
        format!("cannot listen on {rpc_addr} for the HTTP API: is another mycel running? pick another with --rpc-addr")
    })?;
    listener.set_nonblocking(true)?;
    let runner =
        commonware_runtime::tokio::Runner::new(mycel_chain::runtime_config(&args.data_dir));
    runner.start(|context| async move {
        let genesis = genesis(&args, &clients).await?;
        let mut block_time_ms = None;
        for client in &clients {
            if let Ok(health) = client.sync_health().await {
                block_time_ms = Some(health.block_time_ms);
                break;
            }
        }
        let config = FollowerConfig {
            data_dir: args.data_dir.clone(),
            genesis: genesis.clone(),
            block_time_ms: block_time_ms.unwrap_or(1_000),
            max_block_txs: args.max_block_txs,
            mempool: mycel_chain::MempoolLimits::default(),
            history: mycel_chain::HistoryConfig::default(),
            snapshot_every_blocks: args.snapshot_every_blocks,
            state_sync: args.state_sync,
            upstreams: clients
                .iter()
                .map(|c| Arc::new(HttpUpstream(c.clone())) as Arc<dyn Upstream>)
                .collect(),
        };
        let node = mycel_chain::start_follower(context, config)
            .await
            .context("the follower could not start")?;
        let status = node.status();
        eprintln!(
            "follower serving http://{rpc_addr} (chain {}, height {}, following {})",
            status.chain_id,
            status.latest_height,
            urls.join(", ")
        );
        let listener = tokio::net::TcpListener::from_std(listener)?;
        mycel_rpc::serve(
            listener,
            node.clone(),
            genesis,
            limits,
            mycel_rpc::Attached::default(),
            shutdown_signal(),
        )
        .await
        .context("the HTTP API stopped")?;
        eprintln!(
            "stopped at finalized height {}",
            node.status().latest_height
        );
        anyhow::Ok(())
    })
}
