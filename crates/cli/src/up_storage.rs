//! The storage nodes of `mycel up`: N storage nodes (default 4, the fewest a blob can use) run in
//! this process by the function `mycel storage` calls, each with a key of its own kept in
//! `DATA_DIR/storage/node-K.json` (mode 0600), funded from development account
//! [`STORAGE_FUNDER`] and registered with the chain's minimum stake on the first start. Node K
//! serves on the first address's port + K; a resumed devnet keeps them (they are on chain).

use crate::http_limits::HttpLimitsArgs;
use alloy_primitives::{B256, U256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::{Context as _, Result};
use mycel_client::{NodeClient, SendOptions};
use mycel_types::{Transfer, TxKind};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;

/// The development account that funds the storage nodes' stakes.
const STORAGE_FUNDER: u32 = 3;
/// MYC sent to each storage node key: its stake and fees for years of devnet use.
const NODE_FUNDING_MYC: u128 = 1_000;

/// What `mycel up` starts for blob storage.
#[derive(Debug, Clone)]
pub struct StoragePlan {
    pub rpc: String,
    pub dir: PathBuf,
    pub nodes: u16,
    pub first_addr: SocketAddr,
    pub http: HttpLimitsArgs,
}

impl StoragePlan {
    pub fn addr(&self, k: u16) -> Result<SocketAddr> {
        let port = self
            .first_addr
            .port()
            .checked_add(k)
            .context("--storage-addr: the storage nodes' ports run past 65535")?;
        Ok(SocketAddr::new(self.first_addr.ip(), port))
    }
}

/// The running storage nodes.
pub struct Storage {
    stop: watch::Sender<bool>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Storage {
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.done.recv_timeout(Duration::from_secs(15));
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct NodeKey {
    private_key: B256,
}

/// Node K's key, made on the first start.
fn node_key(dir: &Path, k: u16) -> Result<PrivateKeySigner> {
    devnet_key(&dir.join(format!("node-{k}.json")))
}

/// The key kept in `path` (mode 0600), made on the first start: a devnet role's own key.
pub(crate) fn devnet_key(path: &Path) -> Result<PrivateKeySigner> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let key: NodeKey = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a key file", path.display()))?;
        return PrivateKeySigner::from_bytes(&key.private_key)
            .with_context(|| format!("{} holds an invalid key", path.display()));
    }
    let signer = PrivateKeySigner::random();
    crate::node_cmd::write_json(
        path,
        &NodeKey {
            private_key: signer.to_bytes(),
        },
        true,
    )?;
    Ok(signer)
}

/// Starts the storage nodes on a thread of their own and returns at once.
pub fn start(plan: StoragePlan) -> Result<Storage> {
    let (stop, stopping) = watch::channel(false);
    let (finished, done) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mycel-storage".into())
        .spawn(move || {
            if let Err(e) = run(&plan, stopping) {
                eprintln!("error: the storage nodes did not start: {e:#}\n(the chain keeps running; `mycel up --storage-nodes 0` starts none)");
            }
            let _ = finished.send(());
        })
        .context("cannot start the storage nodes' thread")?;
    Ok(Storage { stop, done })
}

fn run(plan: &StoragePlan, stopping: watch::Receiver<bool>) -> Result<()> {
    std::fs::create_dir_all(&plan.dir)
        .with_context(|| format!("cannot create {}", plan.dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("mycel-storage")
        .enable_all()
        .build()
        .context("cannot start the storage nodes' async runtime")?;
    let result = runtime.block_on(run_nodes(plan, stopping));
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn run_nodes(plan: &StoragePlan, mut stopping: watch::Receiver<bool>) -> Result<()> {
    let chain = NodeClient::new(&plan.rpc)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while chain.status().await.is_err() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the node's API at {} did not answer within 60 s",
            plan.rpc
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let keys: Vec<PrivateKeySigner> = (0..plan.nodes)
        .map(|k| node_key(&plan.dir, k))
        .collect::<Result<_>>()?;
    fund(&chain, &keys).await?;
    let limits = plan.http.limits()?;
    let mut starts = Vec::new();
    for (k, signer) in keys.into_iter().enumerate() {
        let mut stop = stopping.clone();
        let config = mycel_blob::node::NodeConfig {
            dir: plan.dir.join(format!("node-{k}")),
            signer,
            chain: chain.clone(),
            listen: plan.addr(k as u16)?,
            endpoint: None,
            stake: None,
            limits,
            maintain_every: None,
            // Node 0 publishes for HTTP clients when it is reachable from this machine only.
            publisher: (k == 0 && plan.first_addr.ip().is_loopback())
                .then(mycel_blob::publisher::PublisherConfig::default),
        };
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        starts.push(mycel_blob::node::start(config, shutdown));
    }
    let mut serving = Vec::new();
    let mut endpoints = Vec::new();
    for started in futures::future::join_all(starts).await {
        let (started, run) = started?;
        endpoints.push(started.endpoint);
        serving.push(tokio::spawn(run));
    }
    eprintln!(
        "\nblob storage: {} storage nodes ({})\n  mycel blob put FILE --dev-account 5 --rpc {}",
        endpoints.len(),
        endpoints.join(", "),
        plan.rpc
    );
    match endpoints.first() {
        Some(first) if plan.first_addr.ip().is_loopback() => eprintln!(
            "  publisher: curl -T FILE '{first}/v1/blobs?epochs=1'   (aggregator: GET {first}/v1/blobs/ID)\n"
        ),
        _ => eprintln!(),
    }
    let _ = stopping.wait_for(|s| *s).await;
    for task in serving {
        let _ = task.await;
    }
    Ok(())
}

/// Sends each node key its funding if it holds less than the stake needs (first start only).
async fn fund(chain: &NodeClient, keys: &[PrivateKeySigner]) -> Result<()> {
    let funder = crate::signer::dev_account(STORAGE_FUNDER, "storage funder")?;
    let info = chain.storage().await?;
    let amount = NODE_FUNDING_MYC * 1_000_000_000;
    let mut unfunded = Vec::new();
    for key in keys {
        let registered = info.members.iter().any(|m| m.address == key.address());
        let balance = chain.account(key.address()).await?.myc;
        if !registered && balance < info.params.min_node_stake + 1_000_000_000 {
            unfunded.push(key.address());
        }
    }
    if unfunded.is_empty() {
        return Ok(());
    }
    // One transfer per key, consecutive nonces, submitted together and followed together.
    let first = chain.next_nonce(funder.address()).await?;
    let mut txs = Vec::new();
    for (i, to) in unfunded.into_iter().enumerate() {
        let options = SendOptions {
            nonce: Some(first + i as u64),
            ..SendOptions::timeout(Duration::from_secs(60))
        };
        txs.push(
            chain
                .sign(&funder, &options, |f| {
                    TxKind::Transfer(Transfer {
                        from: f.from,
                        to,
                        token: mycel_types::Token::Myc.address(),
                        amount: U256::from(amount),
                        memo: Default::default(),
                        nonce: f.nonce,
                        fee: f.fee,
                    })
                })
                .await?,
        );
    }
    let outcomes = futures::future::join_all(
        txs.iter()
            .map(|tx| chain.submit_and_wait(tx, Duration::from_secs(60))),
    )
    .await;
    for outcome in outcomes {
        outcome?.applied()?;
    }
    Ok(())
}
