//! `mycel provider`: rent this machine out on the compute market (docs/compute.md).
//!
//! It registers the machine (attributes and capacity) and then, every `--every` seconds:
//! - **bids** on every open order it has not bid on that fits its free capacity and region, at
//!   the price of its pricing hook (a command given the order as JSON on stdin that prints a
//!   price in mUSD per block, or nothing to decline; 5 s at most) or of its built-in rule
//!   (`--price-per-core` × the cores asked, at most the order's max price);
//! - **serves** each lease it won: fetches the deployment's model from blob storage (checked
//!   against its blob id), starts `mycel miner` on it (receipts signed by the provider's key) on
//!   the next free port from `--first-port`, and publishes the miner's URL on the lease
//!   (`SetLeaseEndpoint`); a lease paused for lack of funds is stopped (nothing deleted) and its
//!   endpoint withdrawn, and served again when it resumes; a lease that ends is stopped;
//! - **withdraws** what each lease earned, every `--withdraw-every` blocks.
//!
//! The chain holds the capacity: a lease is accepted only if the provider's free capacity holds
//! it, so the daemon never serves more than `--cores` / `--memory-mib` / `--disk-mib`.

use crate::signer::SignerArgs;
use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::{anyhow, Context as _, Result};
use clap::Args;
use mycel_client::{NodeClient, SendOptions};
use mycel_types::market::{Deployment, DeploymentState};
use mycel_types::tx::{PlaceBid, RegisterProvider, SetLeaseEndpoint, WithdrawLease};
use mycel_types::{format_amount, parse_amount, Token, TxKind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// How long a pricing hook may take.
const HOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Blocks a bid just placed is remembered before the order on chain is trusted to show it.
const BID_SHOWS_BLOCKS: u64 = 3;
/// The most pages of deployments read in one look (a page is up to the node's limit).
const MAX_PAGES: usize = 100;

#[derive(Debug, Args)]
pub struct ProviderArgs {
    /// The URL this provider registers (where its leases' miners are reached from, by default
    /// http://HOST:FIRST_PORT).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The host its miners listen on and are published at.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The first port for leases' miners (one port per lease, upwards).
    #[arg(long, value_name = "PORT", default_value_t = 8200)]
    pub first_port: u16,
    #[arg(long, default_value = "")]
    pub region: String,
    /// Cores offered [default: this machine's].
    #[arg(long)]
    pub cores: Option<u64>,
    #[arg(long, value_name = "MIB", default_value_t = 4096)]
    pub memory_mib: u64,
    #[arg(long, value_name = "MIB", default_value_t = 20_000)]
    pub disk_mib: u64,
    /// The built-in price: mUSD per block per core asked (at most the order's max price).
    #[arg(long, value_name = "MUSD", default_value = "0.0005")]
    pub price_per_core: String,
    /// A command that prices an order instead: the order as JSON on stdin, a price in mUSD per
    /// block (or nothing, to decline) on stdout, within 5 s.
    #[arg(long, value_name = "COMMAND")]
    pub pricing_hook: Option<String>,
    /// MYC each bid locks [default: the chain's minimum].
    #[arg(long, value_name = "MYC")]
    pub deposit: Option<String>,
    /// Blocks each bid stays open.
    #[arg(long, value_name = "BLOCKS", default_value_t = 300)]
    pub bid_ttl: u64,
    /// Blocks between withdrawals of each lease's earnings.
    #[arg(long, value_name = "BLOCKS", default_value_t = 30)]
    pub withdraw_every: u64,
    /// Seconds between looks at the market.
    #[arg(long, value_name = "SECONDS", default_value_t = 2)]
    pub every: u64,
    /// Where models and miners' logs are kept.
    #[arg(long, value_name = "DIR", default_value = "./mycel-provider")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub signer: SignerArgs,
    #[command(flatten)]
    pub client: crate::client::ClientArgs,
}

/// A lease being served.
struct Served {
    child: tokio::process::Child,
    endpoint: String,
}

struct Provider {
    args: ProviderArgs,
    chain: NodeClient,
    signer: PrivateKeySigner,
    price_per_core: u128,
    deposit: u128,
    /// Orders bid on, with the height the bid expires.
    bid: BTreeMap<u64, u64>,
    served: BTreeMap<u64, Served>,
    withdrawn_at: BTreeMap<u64, u64>,
}

pub fn run(args: ProviderArgs) -> Result<()> {
    crate::logging::init(crate::logging::NODE);
    let signer = args.signer.load()?;
    let chain = NodeClient::new(&args.client.rpc).map_err(|e| anyhow!("--rpc: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let price_per_core = crate::session_cmd::musd(&args.price_per_core, "--price-per-core")?;
        // The node may still be starting (`mycel up` starts its providers with it): 60 s.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let market = loop {
            match chain.market().await {
                Ok(market) => break market,
                Err(mycel_client::ClientError::Unreachable { .. })
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let deposit = match &args.deposit {
            Some(d) => parse_amount(d, Token::Myc).map_err(|e| anyhow!("--deposit {d:?}: {e}"))?,
            None => market.params.min_bid_deposit,
        };
        std::fs::create_dir_all(args.dir.join("models"))
            .with_context(|| format!("cannot create {}", args.dir.display()))?;
        let mut p = Provider {
            args,
            chain,
            signer,
            price_per_core,
            deposit,
            bid: BTreeMap::new(),
            served: BTreeMap::new(),
            withdrawn_at: BTreeMap::new(),
        };
        p.register().await?;
        let every = Duration::from_secs(p.args.every.max(1));
        let mut stop = std::pin::pin!(crate::node_cmd::shutdown_signal());
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = p.round().await {
                tracing::warn!("provider round failed (retrying): {e:#}");
            }
        }
        eprintln!("stopping {} served lease(s)", p.served.len());
        for (id, mut s) in std::mem::take(&mut p.served) {
            let _ = s.child.kill().await;
            let _ = p.set_endpoint(id, String::new()).await;
        }
        Ok(())
    })
}

impl Provider {
    async fn send(&self, build: impl FnOnce(Address, u64, U256) -> TxKind) -> Result<()> {
        self.chain
            .send_and_wait(
                &self.signer,
                &SendOptions::timeout(Duration::from_secs(60)),
                |f| build(f.from, f.nonce, f.fee),
            )
            .await?
            .applied()?;
        Ok(())
    }

    async fn register(&self) -> Result<()> {
        let (model, machine_cores) = crate::market_cmd::this_cpu();
        let cores = self.args.cores.unwrap_or(machine_cores);
        let endpoint = self
            .args
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}", self.args.host, self.args.first_port));
        let (region, memory, disk) = (
            self.args.region.clone(),
            self.args.memory_mib,
            self.args.disk_mib,
        );
        let me = self.signer.address();
        let registered = self.chain.providers(None).await?;
        let same = registered.providers.iter().any(|p| {
            p.address == me
                && p.endpoint == endpoint
                && p.region == region
                && p.cpu_model == model
                && p.capacity.cores as u64 == cores
                && p.capacity.memory_mib == memory
                && p.capacity.disk_mib == disk
        });
        if !same {
            self.send(|from, nonce, fee| {
                TxKind::RegisterProvider(RegisterProvider {
                    from,
                    endpoint,
                    region,
                    cpuModel: model,
                    cores,
                    memoryMib: memory,
                    diskMib: disk,
                    nonce,
                    fee,
                })
            })
            .await?;
        }
        eprintln!(
            "provider {me}: {cores} cores, {memory} MiB, {disk} MiB disk offered; bidding {}",
            match &self.args.pricing_hook {
                Some(h) => format!("with the pricing hook `{h}`"),
                None => format!(
                    "{} mUSD per core per block",
                    format_amount(self.price_per_core, Token::Musd)
                ),
            }
        );
        Ok(())
    }

    /// One look at the market: bid, serve, withdraw.
    async fn round(&mut self) -> Result<()> {
        let me = self.signer.address();
        let height = self.chain.market().await?.height;
        let open = self.chain.all_deployments("state=open", MAX_PAGES).await?;
        self.bid.retain(|_, expires| *expires > height);
        for d in &open {
            // An order reopened (its lease ended) has lost every earlier bid: bid again.
            if self.bid.contains_key(&d.id) || d.bids.iter().any(|b| b.provider == me) {
                continue;
            }
            match self.price(d).await {
                Ok(Some(price)) => match self.place_bid(d.id, price).await {
                    Ok(()) => {
                        eprintln!(
                            "bid {} mUSD per block on deployment {}",
                            format_amount(price, Token::Musd),
                            d.id
                        );
                        // From now the order itself shows the bid (while it is open).
                        self.bid.insert(d.id, height + BID_SHOWS_BLOCKS);
                    }
                    // Refused (over capacity, wrong region, …): not again until it expires.
                    Err(e) => {
                        tracing::info!(deployment = d.id, "not bidding: {e:#}");
                        self.bid.insert(d.id, height + self.args.bid_ttl);
                    }
                },
                Ok(None) => {
                    self.bid.insert(d.id, height + self.args.bid_ttl);
                }
                Err(e) => tracing::warn!(deployment = d.id, "pricing failed: {e:#}"),
            }
        }
        let mine: Vec<Deployment> = self
            .chain
            .all_deployments(&format!("provider={me}"), MAX_PAGES)
            .await?;
        let active: BTreeSet<u64> = mine
            .iter()
            .filter(|d| d.state == DeploymentState::Leased)
            .map(|d| d.id)
            .collect();
        // Stop what is no longer ours to serve (closed, reopened, paused).
        let stale: Vec<u64> = self
            .served
            .keys()
            .filter(|id| !active.contains(id))
            .copied()
            .collect();
        for id in stale {
            if let Some(mut s) = self.served.remove(&id) {
                let _ = s.child.kill().await;
                eprintln!("deployment {id}: stopped serving {}", s.endpoint);
                if mine.iter().any(|d| d.id == id) {
                    let _ = self.set_endpoint(id, String::new()).await;
                }
            }
        }
        for d in mine.iter().filter(|d| active.contains(&d.id)) {
            if !self.served.contains_key(&d.id) {
                if let Err(e) = self.serve(d).await {
                    tracing::warn!(deployment = d.id, "cannot serve: {e:#}");
                }
            }
            let last = self.withdrawn_at.get(&d.id).copied().unwrap_or(0);
            if height >= last + self.args.withdraw_every {
                let id = d.id;
                self.send(|from, nonce, fee| {
                    TxKind::WithdrawLease(WithdrawLease {
                        from,
                        deployment: id,
                        nonce,
                        fee,
                    })
                })
                .await?;
                self.withdrawn_at.insert(id, height);
            }
        }
        Ok(())
    }

    async fn place_bid(&self, id: u64, price: u128) -> Result<()> {
        let (deposit, ttl) = (self.deposit, self.args.bid_ttl);
        self.send(|from, nonce, fee| {
            TxKind::PlaceBid(PlaceBid {
                from,
                deployment: id,
                price: U256::from(price),
                deposit: U256::from(deposit),
                ttl,
                nonce,
                fee,
            })
        })
        .await
    }

    async fn set_endpoint(&self, id: u64, endpoint: String) -> Result<()> {
        self.send(|from, nonce, fee| {
            TxKind::SetLeaseEndpoint(SetLeaseEndpoint {
                from,
                deployment: id,
                endpoint,
                nonce,
                fee,
            })
        })
        .await
    }

    /// The price of order `d` in mUSD per block, or `None` to decline.
    async fn price(&self, d: &Deployment) -> Result<Option<u128>> {
        let Some(hook) = &self.args.pricing_hook else {
            let price = self
                .price_per_core
                .saturating_mul(u128::from(d.resources.cores));
            return Ok((price <= d.max_price).then_some(price.max(1)));
        };
        use tokio::io::AsyncWriteExt as _;
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", hook])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run the pricing hook `{hook}`"))?;
        let order = serde_json::to_vec(d)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&order).await?;
        }
        let out = tokio::time::timeout(HOOK_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| anyhow!("the pricing hook took more than 5 s"))??;
        if !out.status.success() {
            return Err(anyhow!("the pricing hook failed ({})", out.status));
        }
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if text.is_empty() {
            return Ok(None);
        }
        let price = crate::session_cmd::musd(&text, "the pricing hook's price")?;
        Ok((price >= 1 && price <= d.max_price).then_some(price))
    }

    /// Fetches `d`'s model, starts a miner on it and publishes its URL on the lease.
    async fn serve(&mut self, d: &Deployment) -> Result<()> {
        if d.model == B256::ZERO {
            return Err(anyhow!("deployment {} names no model to serve", d.id));
        }
        let path = self
            .args
            .dir
            .join("models")
            .join(format!("{:x}.gguf", d.model));
        if !path.exists() {
            eprintln!("deployment {}: fetching model blob {}", d.id, d.model);
            mycel_blob::publish::get_file(&self.chain, d.model, &path, &|_| {}).await?;
        }
        let used: BTreeSet<u16> = self
            .served
            .values()
            .filter_map(|s| port_of(&s.endpoint))
            .collect();
        let port = (self.args.first_port..=u16::MAX)
            .find(|p| !used.contains(p))
            .ok_or_else(|| anyhow!("no free port from --first-port"))?;
        let listen = format!("{}:{port}", self.args.host);
        let log = std::fs::File::create(self.args.dir.join(format!("miner-{}.log", d.id)))?;
        let mut command = tokio::process::Command::new(std::env::current_exe()?);
        command
            .args(["miner", "--netuid", "0", "--listen", &listen])
            // The miner reads the chain (its id, the heights its receipts bind) but is no
            // subnet's: it neither registers nor announces.
            .args(["--rpc", &self.args.client.rpc, "--no-register"])
            .arg("--model")
            .arg(&path)
            .args(["--threads", &d.resources.cores.to_string()])
            .args(signer_flags(&self.args.signer))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn().context("cannot start a miner")?;
        let endpoint = format!("http://{listen}/v1");
        // Wait until it answers before telling the chain where it is.
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            if http
                .get(format!("http://{listen}/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(anyhow!("the miner for deployment {} did not start", d.id));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.served.insert(
            d.id,
            Served {
                child,
                endpoint: endpoint.clone(),
            },
        );
        self.set_endpoint(d.id, endpoint.clone()).await?;
        eprintln!("deployment {}: serving {endpoint}", d.id);
        Ok(())
    }
}

fn port_of(endpoint: &str) -> Option<u16> {
    endpoint.rsplit(':').next()?.split('/').next()?.parse().ok()
}

/// The flags that name the same signer to a child `mycel miner` (as its receipts' hotkey).
fn signer_flags(s: &SignerArgs) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(n) = s.dev_account {
        flags.extend(["--dev-account".into(), n.to_string()]);
    }
    if let Some(k) = &s.key {
        flags.extend(["--hotkey".into(), k.clone()]);
    }
    if let Some(dir) = &s.keystore.keystore {
        flags.extend(["--keystore".into(), dir.display().to_string()]);
    }
    if let Some(file) = &s.password.password_file {
        flags.extend(["--password-file".into(), file.display().to_string()]);
    }
    flags
}
