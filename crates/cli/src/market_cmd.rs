//! `mycel deploy` (rent a machine for a manifest: escrow, order, bids, lease) and `mycel market`
//! (the market's providers and orders; a provider's registration, bids, withdrawals), docs/compute.md.
//! The rules are the chain's (`mycel_state::market`); this parses flags and manifests, follows the
//! order and prints.

use crate::client::{print_json, ClientArgs};
use crate::send::{self, SendArgs};
use crate::session_cmd::musd;
use alloy_primitives::{Address, B256, U256};
use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, Subcommand};
use mycel_client::api::Event;
use mycel_types::market::{Deployment, MarketEvent, Note};
use mycel_types::tx::{
    AcceptBid, AttestProvider, CloseDeployment, CloseLease, CreateDeployment, PlaceBid,
    RegisterProvider, ReportLeaseHealth, TopUpDeployment, WithdrawLease,
};
use mycel_types::{format_amount, parse_amount, Token, TxKind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The largest manifest read.
const MAX_MANIFEST_BYTES: u64 = 64 << 10;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DeployArgs {
    #[command(subcommand)]
    pub command: Option<DeployCommand>,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// A deployment: its order's bids, its lease, its escrow and what happened to it.
    Status(IdArgs),
    /// Follow a deployment: print what happens to it (bids, lease, low balance, pause) as it
    /// happens, until it closes (or Ctrl-C).
    Watch(WatchArgs),
    /// Add mUSD to a deployment's escrow; resumes a lease paused for lack of funds.
    TopUp(TopUpArgs),
    /// Accept a bid on your deployment's order: a lease.
    Accept(AcceptArgs),
    /// Close your deployment: its lease is paid to this block, the rest of the escrow refunded.
    Close(TxIdArgs),
}

/// `mycel deploy MANIFEST`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The manifest (JSON): {"resources": {"cores", "memory_mib", "disk_mib"}, "max_price"
    /// (mUSD per block), optional "model" (blob id), "region", "auditors", "runtime"}.
    #[arg(required = true, value_name = "MANIFEST")]
    pub manifest: Option<PathBuf>,
    /// mUSD to put in the deployment's escrow (it pays the lease per block).
    #[arg(long, value_name = "MUSD")]
    pub deposit: Option<String>,
    /// Seconds to wait for bids before leaving the order open (0: do not wait).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub wait_bids: u64,
    /// Seconds to keep collecting bids after the first one, before accepting the cheapest.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub collect: u64,
    /// Only print the bids; do not accept one (`mycel deploy accept` later).
    #[arg(long)]
    pub no_accept: bool,
    /// Seconds to wait, after the lease, for the provider to publish where it serves (0: do not
    /// wait).
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub serve_wait: u64,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    pub deployment: u64,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    pub deployment: u64,
    /// Seconds between looks at the chain.
    #[arg(long, value_name = "SECONDS", default_value_t = 1)]
    pub every: u64,
    /// Top the escrow up by this much mUSD whenever it covers fewer than --below blocks, signed
    /// by --key/--dev-account: the owner, or an agent key whose allowance allows
    /// `TopUpDeployment` (it spends the owner's mUSD within its limits).
    #[arg(long, value_name = "MUSD", requires = "below")]
    pub top_up: Option<String>,
    /// With --top-up: the fewest blocks of escrow to keep.
    #[arg(long, value_name = "BLOCKS")]
    pub below: Option<u64>,
    /// Check the lease's endpoint (`GET ENDPOINT/models`, 3 s) at every look and report it on
    /// chain, signed by the owner's --key/--dev-account: a lease reported down for the
    /// market's failure period ends for provider failure (it loses part of its deposit) and
    /// the order reopens.
    #[arg(long)]
    pub health: bool,
    /// While the order is open (new, or reopened after a lease ended), accept the cheapest bid
    /// this many seconds after the first one comes.
    #[arg(long, value_name = "SECONDS")]
    pub accept_after: Option<u64>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TxIdArgs {
    pub deployment: u64,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TopUpArgs {
    pub deployment: u64,
    /// mUSD to add.
    pub amount: String,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct AcceptArgs {
    pub deployment: u64,
    /// The provider whose bid to accept [default: the cheapest open bid].
    pub provider: Option<Address>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum MarketCommand {
    /// The market's parameters and size.
    Info(InfoArgs),
    /// Registered providers: attributes, capacity, what their leases hold, auditors.
    Providers(InfoArgs),
    /// Open orders (deployments waiting for a lease), cheapest bids first.
    Orders(InfoArgs),
    /// Deployments, by owner and state.
    Deployments(ListArgs),
    /// Open bids on the open orders, by order (cheapest first).
    Bids(ListArgs),
    /// Leases: leased and paused deployments, with their provider, price, pay and endpoint.
    Leases(ListArgs),
    /// Offer this key's machine: endpoint, region, CPU model, capacity. Again: new attributes
    /// (which clears its attestations).
    RegisterProvider(RegisterArgs),
    /// Vouch for a provider's current attributes (as an auditor deployments may require).
    Attest(AttestArgs),
    /// As a provider: bid a price per block on an open order, locking a MYC deposit.
    Bid(BidArgs),
    /// As a lease's provider: take what it has earned so far.
    Withdraw(TxIdArgs),
    /// As a lease's provider: end the lease (paid to this block; the order reopens).
    CloseLease(TxIdArgs),
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_name = "ADDRESS")]
    pub owner: Option<Address>,
    /// Only deployments whose lease this provider holds.
    #[arg(long, value_name = "ADDRESS")]
    pub provider: Option<Address>,
    /// open, leased, paused or closed.
    #[arg(long, value_name = "STATE")]
    pub state: Option<String>,
    /// Deployments after this id.
    #[arg(long, value_name = "ID")]
    pub after: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Where this provider is reached (its status and its leases' endpoints).
    #[arg(long, value_name = "URL")]
    pub endpoint: String,
    #[arg(long, default_value = "")]
    pub region: String,
    /// The CPU model [default: this machine's, from /proc/cpuinfo].
    #[arg(long, value_name = "MODEL")]
    pub cpu_model: Option<String>,
    /// Cores offered in all [default: this machine's].
    #[arg(long)]
    pub cores: Option<u64>,
    #[arg(long, value_name = "MIB")]
    pub memory_mib: u64,
    #[arg(long, value_name = "MIB")]
    pub disk_mib: u64,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct AttestArgs {
    pub provider: Address,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct BidArgs {
    pub deployment: u64,
    /// mUSD per block.
    #[arg(long, value_name = "MUSD")]
    pub price: String,
    /// MYC locked while the bid is open and while its lease runs [default: the chain's minimum].
    #[arg(long, value_name = "MYC")]
    pub deposit: Option<String>,
    /// Blocks the bid stays open.
    #[arg(long, value_name = "BLOCKS", default_value_t = 300)]
    pub ttl: u64,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What a deployment runs and needs (the manifest file, JSON).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    name: Option<String>,
    /// The model's blob id.
    #[serde(default)]
    model: Option<B256>,
    resources: ManifestResources,
    /// mUSD per block, decimal.
    max_price: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    auditors: Vec<Address>,
    /// Runtime settings, for the provider (off chain).
    #[serde(default)]
    #[allow(dead_code)]
    runtime: serde_json::Value,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestResources {
    cores: u64,
    memory_mib: u64,
    disk_mib: u64,
}

pub fn run_deploy(args: DeployArgs) -> Result<()> {
    match args.command {
        Some(DeployCommand::Status(a)) => status(&a.client, a.deployment),
        Some(DeployCommand::Watch(a)) => watch(a),
        Some(DeployCommand::TopUp(a)) => top_up(a),
        Some(DeployCommand::Accept(a)) => accept(a),
        Some(DeployCommand::Close(a)) => close(a),
        None => create(args.create),
    }
}

pub fn run_market(command: MarketCommand) -> Result<()> {
    match command {
        MarketCommand::Info(a) => info(a),
        MarketCommand::Providers(a) => providers(a),
        MarketCommand::Orders(a) => list(ListArgs {
            owner: None,
            provider: None,
            state: Some("open".into()),
            after: None,
            client: a.client,
        }),
        MarketCommand::Deployments(a) => list(a),
        MarketCommand::Bids(a) => bids(a),
        MarketCommand::Leases(a) => leases(a),
        MarketCommand::RegisterProvider(a) => register(a),
        MarketCommand::Attest(a) => attest(a),
        MarketCommand::Bid(a) => bid(a),
        MarketCommand::Withdraw(a) => withdraw(a),
        MarketCommand::CloseLease(a) => close_lease(a),
    }
}

fn m(amount: u128) -> String {
    format_amount(amount, Token::Musd)
}

fn read_manifest(path: &std::path::Path) -> Result<(Manifest, B256)> {
    use sha2::Digest as _;
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read the manifest {}", path.display()))?
        .len();
    if size > MAX_MANIFEST_BYTES {
        bail!(
            "{}: a manifest is at most {MAX_MANIFEST_BYTES} bytes",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a deployment manifest", path.display()))?;
    Ok((manifest, B256::from_slice(&sha2::Sha256::digest(&bytes))))
}

fn events(
    client: &ClientArgs,
    args: &SendArgs,
    build: impl FnOnce(Address, u64, U256) -> TxKind,
) -> Result<Vec<MarketEvent>> {
    Ok(send::submit_for_events(client, args, build)?
        .into_iter()
        .filter_map(|e| match e {
            Event::Market(m) => Some(m),
            _ => None,
        })
        .collect())
}

fn create(args: CreateArgs) -> Result<()> {
    let path = args.manifest.as_deref().context("a MANIFEST is needed")?;
    let (manifest, hash) = read_manifest(path)?;
    let deposit = musd(
        args.deposit
            .as_deref()
            .context("--deposit MUSD is needed: the escrow that pays the lease")?,
        "--deposit",
    )?;
    let max_price = musd(&manifest.max_price, "max_price")?;
    let r = &manifest.resources;
    let (cores, memory, disk) = (r.cores, r.memory_mib, r.disk_mib);
    let auditors: Vec<u8> = manifest.auditors.iter().flat_map(|a| a.0 .0).collect();
    let (model, region) = (manifest.model.unwrap_or_default(), manifest.region.clone());
    let created = events(&args.client, &args.send, move |from, nonce, fee| {
        TxKind::CreateDeployment(CreateDeployment {
            from,
            manifest: hash,
            model,
            cores,
            memoryMib: memory,
            diskMib: disk,
            region,
            auditors: auditors.into(),
            maxPrice: U256::from(max_price),
            deposit: U256::from(deposit),
            nonce,
            fee,
        })
    })?;
    let Some(id) = created.iter().find_map(|e| match e {
        MarketEvent::DeploymentCreated { deployment } => Some(*deployment),
        _ => None,
    }) else {
        bail!("the deployment was sent but not applied yet; see `mycel market deployments`");
    };
    if args.client.json && args.wait_bids == 0 {
        return print_json(&serde_json::json!({"deployment": id, "manifest": hash}));
    }
    println!("{id}");
    eprintln!(
        "deployment {id}{}: order open for {cores} cores, {memory} MiB, {disk} MiB disk at most {} mUSD per block; escrow {} mUSD",
        manifest.name.map(|n| format!(" ({n})")).unwrap_or_default(),
        m(max_price),
        m(deposit)
    );
    if args.wait_bids == 0 {
        return Ok(());
    }
    let node = args.client.connect()?;
    let deadline = Instant::now() + Duration::from_secs(args.wait_bids);
    let mut seen = std::collections::BTreeSet::new();
    let mut first_bid: Option<Instant> = None;
    loop {
        let d = node.deployment(id)?;
        for b in &d.bids {
            if seen.insert((b.provider, b.price)) {
                eprintln!("bid: {} mUSD per block from {}", m(b.price), b.provider);
                first_bid.get_or_insert_with(Instant::now);
            }
        }
        let collected = first_bid.is_some_and(|t| t.elapsed() >= Duration::from_secs(args.collect));
        if (collected || Instant::now() >= deadline) && !d.bids.is_empty() {
            if args.no_accept {
                eprintln!("accept one with `mycel deploy accept {id} [PROVIDER]`");
                return Ok(());
            }
            // Bids come cheapest first.
            let provider = d.bids[0].provider;
            let client = args.client.clone();
            accept(AcceptArgs {
                deployment: id,
                provider: Some(provider),
                send: args.send,
                client: args.client,
            })?;
            return wait_endpoint(&client, id, Duration::from_secs(args.serve_wait));
        }
        if Instant::now() >= deadline {
            eprintln!(
                "no bid within {} s; the order stays open (`mycel deploy watch {id}`)",
                args.wait_bids
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until the lease's provider publishes where it serves deployment `id`, and says so.
fn wait_endpoint(client: &ClientArgs, id: u64, wait: Duration) -> Result<()> {
    if wait.is_zero() {
        return Ok(());
    }
    let node = client.connect()?;
    let deadline = Instant::now() + wait;
    eprintln!("waiting for the provider to start serving (it fetches the model first)…");
    loop {
        let d = node.deployment(id)?;
        if let Some(lease) = d.lease.as_ref().filter(|l| !l.endpoint.is_empty()) {
            eprintln!(
                "serving: {} (OpenAI-compatible; every answer carries a receipt signed by {})",
                lease.endpoint, lease.provider
            );
            return Ok(());
        }
        if Instant::now() >= deadline || d.lease.is_none() {
            eprintln!(
                "the provider has not published an endpoint yet; `mycel deploy watch {id}` follows it"
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn accept(args: AcceptArgs) -> Result<()> {
    accept_bid(&args.client, &args.send, args.deployment, args.provider)
}

/// Accepts `provider`'s bid on deployment `id` (the cheapest if `None`) and says so.
fn accept_bid(
    client: &ClientArgs,
    send: &SendArgs,
    id: u64,
    provider: Option<Address>,
) -> Result<()> {
    let node = client.connect()?;
    let provider = match provider {
        Some(p) => p,
        None => {
            let d = node.deployment(id)?;
            d.bids
                .first()
                .map(|b| b.provider)
                .ok_or_else(|| anyhow!("deployment {id} has no open bid"))?
        }
    };
    let leased = events(client, send, move |from, nonce, fee| {
        TxKind::AcceptBid(AcceptBid {
            from,
            deployment: id,
            provider,
            nonce,
            fee,
        })
    })?;
    for e in leased {
        if let MarketEvent::LeaseCreated { price, .. } = e {
            let endpoint = node
                .providers(None)?
                .providers
                .into_iter()
                .find(|p| p.address == provider)
                .map(|p| p.endpoint)
                .unwrap_or_default();
            eprintln!(
                "leased to {provider} at {} mUSD per block; provider endpoint {endpoint}",
                m(price.parse().unwrap_or(0))
            );
        }
    }
    Ok(())
}

fn print_deployment(d: &Deployment) {
    println!("deployment {} ({:?})", d.id, d.state);
    println!("  owner      {}", d.owner);
    println!("  manifest   {}", d.manifest);
    if d.model != B256::ZERO {
        println!("  model      {} (blob)", d.model);
    }
    let r = d.resources;
    println!(
        "  resources  {} cores, {} MiB memory, {} MiB disk",
        r.cores, r.memory_mib, r.disk_mib
    );
    if !d.region.is_empty() {
        println!("  region     {}", d.region);
    }
    println!("  max price  {} mUSD per block", m(d.max_price));
    println!("  escrow     {} mUSD", m(d.escrow));
    if let Some(l) = &d.lease {
        println!(
            "  lease      {} at {} mUSD per block since block {}; paid {} mUSD to block {}{}",
            l.provider,
            m(l.price),
            l.started_at,
            m(l.paid),
            l.settled_to,
            l.paused_at
                .map(|h| format!(", paused at {h}"))
                .unwrap_or_default()
        );
        if !l.endpoint.is_empty() {
            println!("  endpoint   {}", l.endpoint);
        }
    }
    for b in &d.bids {
        println!(
            "  bid        {} mUSD per block from {} (open until block {})",
            m(b.price),
            b.provider,
            b.expires_at
        );
    }
    for (height, n) in &d.notes {
        println!("  {height:>8}   {}", describe(n));
    }
}

fn describe(n: &Note) -> String {
    let amount = |s: &str| m(s.parse().unwrap_or(0));
    match n {
        Note::Created => "created; order open".into(),
        Note::Leased { provider, price } => {
            format!("leased to {provider} at {} mUSD per block", amount(price))
        }
        Note::LowBalance { blocks_left } => format!(
            "low balance: the escrow covers {blocks_left} more blocks (`mycel deploy top-up`)"
        ),
        Note::Paused => "paused: the escrow ran dry (a top-up resumes it)".into(),
        Note::Resumed => "resumed".into(),
        Note::LeaseDown { provider } => {
            format!("the owner's health check found the lease of {provider} not serving")
        }
        Note::LeaseUp { provider } => format!("the lease of {provider} serves again"),
        Note::ToppedUp { amount: a } => format!("topped up {} mUSD", amount(a)),
        Note::LeaseClosed { provider, reason } => {
            format!("lease of {provider} closed ({})", reason.as_str())
        }
        Note::Closed { reason, refunded } => {
            format!(
                "closed ({}); refunded {} mUSD",
                reason.as_str(),
                amount(refunded)
            )
        }
    }
}

fn status(client: &ClientArgs, id: u64) -> Result<()> {
    let d = client.connect()?.deployment(id)?;
    if client.json {
        return print_json(&d);
    }
    print_deployment(&d);
    Ok(())
}

fn watch(args: WatchArgs) -> Result<()> {
    use mycel_types::market::DeploymentState;
    let node = args.client.connect()?;
    let top_up = args
        .top_up
        .as_deref()
        .map(|a| musd(a, "--top-up"))
        .transpose()?;
    let failure_blocks = node.market()?.params.failure_blocks;
    let probe = args.health.then(HealthProbe::new).transpose()?;
    let id = args.deployment;
    let mut seen = std::collections::BTreeSet::new();
    let mut first_bid: Option<Instant> = None;
    loop {
        let d = node.deployment(id)?;
        if let (Some(amount), Some(below)) = (top_up, args.below) {
            let short = match (&d.lease, d.state) {
                (Some(l), DeploymentState::Leased) => d.escrow / l.price.max(1) < u128::from(below),
                (Some(_), DeploymentState::Paused) => true,
                _ => false,
            };
            if short {
                let topped = events(&args.client, &args.send, move |from, nonce, fee| {
                    TxKind::TopUpDeployment(TopUpDeployment {
                        from,
                        deployment: id,
                        amount: U256::from(amount),
                        nonce,
                        fee,
                    })
                });
                match topped {
                    Ok(_) => {
                        println!("  top-up  {} mUSD sent", m(amount));
                        continue;
                    }
                    // Refused (its allowance spent, say): said, and tried again next look.
                    Err(e) => eprintln!("top-up failed: {e:#}"),
                }
            }
        }
        if let (Some(probe), DeploymentState::Leased, Some(lease)) =
            (&probe, d.state, d.lease.as_ref())
        {
            // Only a published endpoint is checked: before it the provider is still starting.
            if !lease.endpoint.is_empty() {
                let serving = probe.serving(&lease.endpoint);
                let height = node.market()?.height;
                let report = match (serving, lease.down_since) {
                    (true, Some(_)) => true,
                    (false, None) => true,
                    // Down already: report again once the failure period has passed.
                    (false, Some(since)) => height >= since.saturating_add(failure_blocks),
                    (true, None) => false,
                };
                if report {
                    match report_health(&args, id, serving) {
                        Ok(()) => continue,
                        Err(e) => eprintln!("health report failed: {e:#}"),
                    }
                }
            }
        }
        // The deployment keeps its last notes, oldest first: print each once.
        for (height, n) in &d.notes {
            if seen.insert((*height, describe(n))) {
                println!("{height:>8}  {}", describe(n));
            }
        }
        for b in &d.bids {
            if seen.insert((0, format!("{} {}", b.provider, b.price))) {
                println!(
                    "     bid  {} mUSD per block from {}",
                    m(b.price),
                    b.provider
                );
            }
        }
        match (d.state, args.accept_after) {
            (DeploymentState::Open, Some(wait)) if !d.bids.is_empty() => {
                let since = *first_bid.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_secs(wait) {
                    first_bid = None;
                    if let Err(e) = accept_bid(&args.client, &args.send, id, None) {
                        eprintln!("accepting a bid failed: {e:#}");
                    }
                    continue;
                }
            }
            _ => first_bid = None,
        }
        if d.state == DeploymentState::Closed {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(args.every.max(1)));
    }
}

/// Sends the owner's health report of deployment `id`'s lease and says what it did.
fn report_health(args: &WatchArgs, id: u64, serving: bool) -> Result<()> {
    let sent = events(&args.client, &args.send, move |from, nonce, fee| {
        TxKind::ReportLeaseHealth(ReportLeaseHealth {
            from,
            deployment: id,
            serving,
            nonce,
            fee,
        })
    })?;
    for e in sent {
        match e {
            MarketEvent::LeaseHealth {
                serving: false,
                down_since: Some(since),
                ..
            } => println!("  health  not serving (reported down since block {since})"),
            MarketEvent::LeaseHealth { serving: true, .. } => {
                println!("  health  serving again")
            }
            MarketEvent::LeaseFailed {
                provider, burned, ..
            } => println!(
                "  health  the lease of {provider} failed: it is ended, {} MYC of its deposit burned; the order reopens",
                format_amount(burned.parse().unwrap_or(0), Token::Myc)
            ),
            _ => {}
        }
    }
    Ok(())
}

/// Checks whether a lease's OpenAI-compatible endpoint answers.
struct HealthProbe {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl HealthProbe {
    fn new() -> Result<HealthProbe> {
        Ok(HealthProbe {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()?,
        })
    }

    /// `GET ENDPOINT/models` answers with a success.
    fn serving(&self, endpoint: &str) -> bool {
        let url = format!("{}/models", endpoint.trim_end_matches('/'));
        self.runtime.block_on(async {
            self.http
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
    }
}

fn top_up(args: TopUpArgs) -> Result<()> {
    let (id, amount) = (args.deployment, musd(&args.amount, "AMOUNT")?);
    for e in events(&args.client, &args.send, move |from, nonce, fee| {
        TxKind::TopUpDeployment(TopUpDeployment {
            from,
            deployment: id,
            amount: U256::from(amount),
            nonce,
            fee,
        })
    })? {
        if let MarketEvent::ToppedUp {
            escrow, resumed, ..
        } = e
        {
            eprintln!(
                "escrow now {} mUSD{}",
                m(escrow.parse().unwrap_or(0)),
                if resumed { "; the lease resumed" } else { "" }
            );
        }
    }
    Ok(())
}

/// Sends the transaction `kind` makes for `args.deployment` (sender, deployment, nonce, fee);
/// its market events.
fn deployment_tx(
    args: TxIdArgs,
    kind: fn(Address, u64, u64, U256) -> TxKind,
) -> Result<Vec<MarketEvent>> {
    let id = args.deployment;
    events(&args.client, &args.send, move |from, nonce, fee| {
        kind(from, id, nonce, fee)
    })
}

fn close(args: TxIdArgs) -> Result<()> {
    for e in deployment_tx(args, |from, deployment, nonce, fee| {
        TxKind::CloseDeployment(CloseDeployment {
            from,
            deployment,
            nonce,
            fee,
        })
    })? {
        if let MarketEvent::DeploymentClosed { refunded, .. } = e {
            eprintln!("closed: refunded {} mUSD", m(refunded.parse().unwrap_or(0)));
        }
    }
    Ok(())
}

fn info(args: InfoArgs) -> Result<()> {
    let i = args.client.connect()?.market()?;
    if args.client.json {
        return print_json(&i);
    }
    let p = &i.params;
    println!("providers    {}", i.providers);
    println!("deployments  {}", i.deployments);
    println!(
        "bid deposit  at least {} MYC; at most {} bids per order, open at most {} blocks",
        format_amount(p.min_bid_deposit, Token::Myc),
        p.max_bids_per_order,
        p.max_bid_ttl
    );
    println!(
        "grace        {} blocks paused before a dry lease closes; low balance under {} blocks",
        p.grace_blocks, p.low_balance_blocks
    );
    Ok(())
}

fn providers(args: InfoArgs) -> Result<()> {
    let list = args.client.connect()?.providers(None)?;
    if args.client.json {
        return print_json(&list);
    }
    for p in &list.providers {
        let free = p.capacity.minus(&p.used);
        println!(
            "{}  {}  region `{}`  {}  free {}/{} cores {}/{} MiB  auditors {}",
            p.address,
            p.endpoint,
            p.region,
            p.cpu_model,
            free.cores,
            p.capacity.cores,
            free.memory_mib,
            p.capacity.memory_mib,
            p.auditors.len()
        );
    }
    Ok(())
}

/// The page of deployments `args` asks for (`state` if it names none).
fn page(args: &ListArgs, state: Option<&str>) -> Result<mycel_types::market::DeploymentList> {
    let mut query = Vec::new();
    if let Some(o) = args.owner {
        query.push(format!("owner={o}"));
    }
    if let Some(p) = args.provider {
        query.push(format!("provider={p}"));
    }
    if let Some(s) = args.state.as_deref().or(state) {
        query.push(format!("state={s}"));
    }
    if let Some(a) = args.after {
        query.push(format!("after={a}"));
    }
    Ok(args.client.connect()?.deployments(&query.join("&"))?)
}

fn bids(args: ListArgs) -> Result<()> {
    let page = page(&args, Some("open"))?;
    let bids: Vec<(u64, &mycel_types::market::Bid)> = page
        .deployments
        .iter()
        .flat_map(|d| d.bids.iter().map(move |b| (d.id, b)))
        .collect();
    if args.client.json {
        let rows: Vec<_> = bids
            .iter()
            .map(|(id, b)| serde_json::json!({"deployment": id, "bid": b}))
            .collect();
        return print_json(&serde_json::json!({"bids": rows, "next": page.next}));
    }
    if bids.is_empty() {
        eprintln!("no open bids");
    }
    for (id, b) in &bids {
        println!(
            "{id:>5}  {}  {} mUSD/block  deposit {}  open to block {}",
            b.provider,
            m(b.price),
            format_amount(b.deposit, Token::Myc),
            b.expires_at
        );
    }
    if let Some(next) = page.next {
        eprintln!("more: add --after {next}");
    }
    Ok(())
}

fn leases(args: ListArgs) -> Result<()> {
    // Leased and paused deployments: two listings unless a state is asked for.
    let states: Vec<Option<&str>> = match args.state {
        Some(_) => vec![None],
        None => vec![Some("leased"), Some("paused")],
    };
    let mut all = Vec::new();
    let mut more = None;
    for state in states {
        let page = page(&args, state)?;
        all.extend(page.deployments.into_iter().filter(|d| d.lease.is_some()));
        more = more.or(page.next);
    }
    all.sort_by_key(|d| d.id);
    if args.client.json {
        return print_json(&serde_json::json!({"deployments": all, "next": more}));
    }
    if all.is_empty() {
        eprintln!("no leases");
    }
    for d in &all {
        let Some(l) = &d.lease else { continue };
        println!(
            "{:>5}  {:<7}  {}  {} mUSD/block  paid {} to block {}  escrow {}  {}{}",
            d.id,
            d.state.as_str(),
            l.provider,
            m(l.price),
            m(l.paid),
            l.settled_to,
            m(d.escrow),
            if l.endpoint.is_empty() {
                "(no endpoint yet)"
            } else {
                &l.endpoint
            },
            l.down_since
                .map(|h| format!("  reported down since block {h}"))
                .unwrap_or_default()
        );
    }
    if let Some(next) = more {
        eprintln!("more: add --after {next}");
    }
    Ok(())
}

fn list(args: ListArgs) -> Result<()> {
    let page = page(&args, None)?;
    if args.client.json {
        return print_json(&page);
    }
    for d in &page.deployments {
        let r = d.resources;
        println!(
            "{:>5}  {:<7}  {} cores {} MiB  max {} mUSD/block  escrow {} mUSD  {} bids{}",
            d.id,
            d.state.as_str(),
            r.cores,
            r.memory_mib,
            m(d.max_price),
            m(d.escrow),
            d.bids.len(),
            d.bids
                .first()
                .map(|b| format!(" (cheapest {})", m(b.price)))
                .unwrap_or_default()
        );
    }
    if let Some(next) = page.next {
        eprintln!("more: add --after {next}");
    }
    Ok(())
}

pub(crate) fn this_cpu() -> (String, u64) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map(|m| m.trim().chars().take(64).collect())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    (model, cores)
}

fn register(args: RegisterArgs) -> Result<()> {
    let (model, cores) = this_cpu();
    let cpu_model = args.cpu_model.unwrap_or(model);
    let cores = args.cores.unwrap_or(cores);
    let (endpoint, region, memory, disk) =
        (args.endpoint, args.region, args.memory_mib, args.disk_mib);
    events(&args.client, &args.send, move |from, nonce, fee| {
        TxKind::RegisterProvider(RegisterProvider {
            from,
            endpoint,
            region,
            cpuModel: cpu_model,
            cores,
            memoryMib: memory,
            diskMib: disk,
            nonce,
            fee,
        })
    })?;
    eprintln!("registered: {cores} cores, {memory} MiB memory, {disk} MiB disk");
    Ok(())
}

fn attest(args: AttestArgs) -> Result<()> {
    let provider = args.provider;
    events(&args.client, &args.send, move |from, nonce, fee| {
        TxKind::AttestProvider(AttestProvider {
            from,
            provider,
            nonce,
            fee,
        })
    })?;
    eprintln!("attested {provider}");
    Ok(())
}

fn bid(args: BidArgs) -> Result<()> {
    let id = args.deployment;
    let price = musd(&args.price, "--price")?;
    let deposit = match &args.deposit {
        Some(d) => parse_amount(d, Token::Myc).map_err(|e| anyhow!("--deposit {d:?}: {e}"))?,
        None => args.client.connect()?.market()?.params.min_bid_deposit,
    };
    let ttl = args.ttl;
    events(&args.client, &args.send, move |from, nonce, fee| {
        TxKind::PlaceBid(PlaceBid {
            from,
            deployment: id,
            price: U256::from(price),
            deposit: U256::from(deposit),
            ttl,
            nonce,
            fee,
        })
    })?;
    eprintln!(
        "bid {} mUSD per block on deployment {id} (open {ttl} blocks)",
        m(price)
    );
    Ok(())
}

fn withdraw(args: TxIdArgs) -> Result<()> {
    for e in deployment_tx(args, |from, deployment, nonce, fee| {
        TxKind::WithdrawLease(WithdrawLease {
            from,
            deployment,
            nonce,
            fee,
        })
    })? {
        if let MarketEvent::Withdrawn { paid, .. } = e {
            eprintln!("withdrew {} mUSD", m(paid.parse().unwrap_or(0)));
        }
    }
    Ok(())
}

fn close_lease(args: TxIdArgs) -> Result<()> {
    for e in deployment_tx(args, |from, deployment, nonce, fee| {
        TxKind::CloseLease(CloseLease {
            from,
            deployment,
            nonce,
            fee,
        })
    })? {
        if let MarketEvent::LeaseClosed { paid, .. } = e {
            eprintln!(
                "lease closed: paid {} mUSD; the order reopens",
                m(paid.parse().unwrap_or(0))
            );
        }
    }
    Ok(())
}
