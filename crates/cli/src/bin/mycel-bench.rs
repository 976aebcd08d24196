//! `mycel-bench`: a load generator for a running mycel devnet or localnet (loopback only).
//!
//! It funds `--senders` fresh accounts from the development accounts (so the 64-nonce window per
//! sender does not cap throughput), pre-signs `--txs` MYC transfers among those accounts (so the
//! state does not grow during the run), submits them over HTTP with bounded concurrency (and an
//! optional rate limit), follows every node's `/v1/events/blocks` stream to see when each
//! transaction is finalized, and reports finalized tx/s, submit→finality latency and block fill.
//!
//! Bounded: it sends exactly `--txs` transactions, gives up after `--timeout-secs`, and only talks
//! to loopback addresses. It never touches the node's files; `scripts/bench-chain` does that.

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::{anyhow, bail, Context as _, Result};
use clap::Parser;
use futures::StreamExt;
use mycel_client::api::{Block, BlockEvent, TxState};
use mycel_client::{ClientError, NodeClient, PreparedTx};
use mycel_types::{keys::dev_signer, keys::DEV_ACCOUNTS, SignedTx, Transfer, TxKind};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "mycel-bench",
    about = "Load generator for a local mycel chain: finalized tx/s and submit-to-finality latency"
)]
struct Args {
    /// Node HTTP API(s), comma-separated or repeated. Sender i submits to node i mod n.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8545")]
    rpc: Vec<String>,
    /// Number of transfers to submit.
    #[arg(long, default_value_t = 20_000)]
    txs: usize,
    /// Number of fresh sender accounts (funded from the dev accounts first).
    #[arg(long, default_value_t = 500)]
    senders: usize,
    /// Concurrent in-flight HTTP submissions.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Target submission rate in tx/s (0: as fast as the node accepts them).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Send every transaction to all `--rpc` nodes instead of one (the nodes also relay what they
    /// accept to each other; this measures the node API without relying on the relay).
    #[arg(long)]
    broadcast: bool,
    /// Submit the binary encoding (`{"raw"}`) or the JSON form.
    #[arg(long, value_enum, default_value_t = Form::Raw)]
    form: Form,
    /// Give up waiting for finality this long after the first submission.
    #[arg(long, default_value_t = 180)]
    timeout_secs: u64,
    /// Seed for the sender keys (the same seed gives the same accounts; use a new one per run on
    /// the same chain, or the nonces will be stale).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A label copied into the JSON report.
    #[arg(long, default_value = "")]
    label: String,
    /// Write the report as JSON here.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Form {
    Raw,
    Json,
}

/// A finalized block as the bench saw it first (on any node).
#[derive(Clone, Debug)]
struct SeenBlock {
    height: u64,
    timestamp_ms: u64,
    tx_count: usize,
    bench_txs: usize,
    seen_us: u64,
}

/// Shared between submitters, trackers and the reporter.
struct Run {
    t0: Instant,
    index: HashMap<B256, usize>,
    /// Microseconds since t0 when the submission of tx i started (u64::MAX: not sent).
    submit_us: Vec<AtomicU64>,
    /// Microseconds since t0 when tx i was first seen finalized (u64::MAX: not yet).
    final_us: Vec<AtomicU64>,
    /// Microseconds the node took to answer the submission of tx i.
    rtt_us: Vec<AtomicU64>,
    accepted: AtomicUsize,
    finalized: AtomicUsize,
    rejected: Mutex<BTreeMap<String, usize>>,
    retries: AtomicUsize,
    blocks: Mutex<BTreeMap<u64, SeenBlock>>,
}

impl Run {
    fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.txs == 0 || args.senders == 0 || args.concurrency == 0 {
        bail!("--txs, --senders and --concurrency must be above zero");
    }
    for url in &args.rpc {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| anyhow!("--rpc '{url}' is not a URL: {e}"))?;
        let host = parsed
            .host_str()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback || parsed.scheme() != "http" {
            bail!("--rpc '{url}': mycel-bench only talks to http:// loopback nodes (127.0.0.1, ::1, localhost)");
        }
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let nodes: Vec<NodeClient> = args
        .rpc
        .iter()
        .map(|url| NodeClient::new(url))
        .collect::<std::result::Result<_, _>>()?;
    let status = nodes[0].status().await.context("is the node running?")?;
    let (chain_id, min_fee) = (status.chain_id, status.min_fee);
    let validators = status.validators.len();
    eprintln!(
        "chain {chain_id}, {validators} validator(s), height {}, {} node(s) under load",
        status.height,
        nodes.len()
    );

    // Sender keys: deterministic from the seed, so a run can be reproduced.
    let senders: Vec<PrivateKeySigner> = (0..args.senders)
        .map(|i| {
            let mut key = keccak256(format!("mycel-bench/{}/{}", args.seed, i));
            // A keccak output is a valid secp256k1 key with overwhelming probability; retry if not.
            loop {
                if let Ok(signer) = PrivateKeySigner::from_bytes(&key) {
                    return signer;
                }
                key = keccak256(key);
            }
        })
        .collect();
    let per_sender = args.txs.div_ceil(args.senders);
    let amount: u128 = 1;
    let fee = min_fee;
    // Enough for every transfer plus slack; recipients are other senders, so balances only grow
    // back, but a sender may spend before it receives.
    let funding = (amount + fee) * per_sender as u128 * 2 + 1_000_000;

    let started = Instant::now();
    fund(&nodes[0], chain_id, fee, &senders, funding).await?;
    let funding_secs = started.elapsed().as_secs_f64();
    eprintln!("funded {} senders in {funding_secs:.1}s", senders.len());

    // Pre-sign: tx k is sender (k mod K)'s nonce (k div K), so submission order interleaves senders
    // and every sender's nonces go out in order.
    let started = Instant::now();
    let signed = presign(&senders, args.txs, chain_id, amount, fee);
    let sign_secs = started.elapsed().as_secs_f64();
    eprintln!("signed {} transfers in {sign_secs:.1}s", signed.len());
    // What one signature recovery costs on this machine (the node does at least one per tx).
    let sample = signed.len().min(500);
    let started = Instant::now();
    let recovered = signed[..sample]
        .iter()
        .filter(|(_, tx)| tx.recover_signer() == Some(tx.from()))
        .count();
    let ecrecover_us = started.elapsed().as_secs_f64() * 1e6 / sample as f64;
    if recovered != sample {
        bail!("a pre-signed transfer does not recover to its sender");
    }
    eprintln!("one signature recovery takes {ecrecover_us:.0} µs on this machine (one core)");
    // Request bodies are built before the clock starts: the load generator shares the machine's
    // cores with the node, and what it spends per request is taken from the node.
    let bodies: Vec<(usize, PreparedTx)> = signed
        .iter()
        .map(|(sender, tx)| {
            let body = match args.form {
                Form::Raw => PreparedTx::raw(tx),
                Form::Json => PreparedTx::json(tx),
            };
            (*sender % nodes.len(), body)
        })
        .collect();
    let index: HashMap<B256, usize> = signed
        .iter()
        .enumerate()
        .map(|(i, (_, tx))| (tx.hash(), i))
        .collect();

    let metrics_before = scrape_metrics(&nodes).await;
    let n = signed.len();
    let run = Arc::new(Run {
        t0: Instant::now(),
        index,
        submit_us: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
        final_us: (0..n).map(|_| AtomicU64::new(u64::MAX)).collect(),
        rtt_us: (0..n).map(|_| AtomicU64::new(0)).collect(),
        accepted: AtomicUsize::new(0),
        finalized: AtomicUsize::new(0),
        rejected: Mutex::new(BTreeMap::new()),
        retries: AtomicUsize::new(0),
        blocks: Mutex::new(BTreeMap::new()),
    });

    // Follow finalized blocks on every node before the first submission.
    let mut trackers = Vec::new();
    for node in &nodes {
        trackers.push(tokio::spawn(track_blocks(node.clone(), run.clone())));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let submit_start_us = run.now_us();

    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = run.t0 + Duration::from_secs(args.timeout_secs);
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.min(n) {
        let (nodes, bodies, next, run) = (nodes.clone(), bodies.clone(), next.clone(), run.clone());
        let (rate, broadcast) = (args.rate, args.broadcast);
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= bodies.len() || Instant::now() > deadline {
                    return;
                }
                if rate > 0.0 {
                    let due = Duration::from_micros(submit_start_us)
                        + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until((run.t0 + due).into()).await;
                }
                let to = Submission {
                    nodes: &nodes,
                    broadcast,
                };
                submit(&to, &bodies, i, &run, deadline).await;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let submit_end_us = run.now_us();
    let accepted = run.accepted.load(Ordering::Relaxed);
    eprintln!(
        "submitted {n} ({accepted} accepted) in {:.2}s: {:.0} tx/s accepted",
        (submit_end_us - submit_start_us) as f64 / 1e6,
        accepted as f64 / ((submit_end_us - submit_start_us).max(1) as f64 / 1e6)
    );

    // Wait for every accepted transaction to finalize (or the deadline).
    let mut last_progress = (0usize, Instant::now());
    loop {
        let done = run.finalized.load(Ordering::Relaxed);
        if done >= accepted || Instant::now() > deadline {
            break;
        }
        if done != last_progress.0 {
            last_progress = (done, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(30) {
            eprintln!("no progress for 30s; stopping with {done}/{accepted} finalized");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in &trackers {
        t.abort();
    }
    let metrics_after = scrape_metrics(&nodes).await;

    let report = build_report(
        &args,
        &run,
        validators,
        submit_start_us,
        submit_end_us,
        funding_secs,
        sign_secs,
        ecrecover_us,
        metrics_before,
        metrics_after,
    );
    print_table(&report);
    if let Some(path) = &args.out {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ok();
        }
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Submits `tx`; `Err((http status, error code))` if the node refused it (status 0: no answer).
async fn post_tx(node: &NodeClient, tx: &PreparedTx) -> std::result::Result<(), (u16, String)> {
    match node.submit_prepared(tx).await {
        Ok(_) => Ok(()),
        Err(ClientError::Node { status, code, .. }) => Err((status, code)),
        Err(e) => Err((0, format!("http: {e}"))),
    }
}

/// Where a worker submits: one node per sender, or every node.
struct Submission<'a> {
    nodes: &'a [NodeClient],
    broadcast: bool,
}

/// Error codes that mean "not now": retry the same transaction a little later.
fn retryable(code: &str) -> bool {
    matches!(
        code,
        "mempool_full" | "sender_full" | "gapped_full" | "nonce_too_far_ahead" | "future_nonce"
    )
}

async fn submit(
    to: &Submission<'_>,
    bodies: &[(usize, PreparedTx)],
    i: usize,
    run: &Run,
    deadline: Instant,
) {
    let (node, tx) = &bodies[i];
    let mut first = true;
    loop {
        let start = run.now_us();
        if first {
            run.submit_us[i].store(start, Ordering::Relaxed);
            first = false;
        }
        let result = if to.broadcast {
            let all = futures::future::join_all(to.nodes.iter().map(|n| post_tx(n, tx))).await;
            let ok = all.iter().any(Result::is_ok);
            all.into_iter().find(|r| ok == r.is_ok()).unwrap_or(Ok(()))
        } else {
            post_tx(&to.nodes[*node], tx).await
        };
        match result {
            Ok(()) => {
                run.rtt_us[i].store(run.now_us() - start, Ordering::Relaxed);
                run.accepted.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err((_, code)) if retryable(&code) && Instant::now() < deadline => {
                run.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err((_, code)) => {
                *run.rejected
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(code)
                    .or_default() += 1;
                return;
            }
        }
    }
}

/// Follows `/v1/events/blocks` on one node; records the first time each bench tx is seen final.
/// Reconnects if the stream drops; fetches blocks it missed (a `lagged` event or a height gap).
async fn track_blocks(node: NodeClient, run: Arc<Run>) {
    let rpc = node.base().to_string();
    let mut last_height: Option<u64> = None;
    loop {
        let mut stream = match node.block_events().await {
            Ok(stream) => stream,
            Err(e) => {
                eprintln!("{rpc}: block stream: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        while let Some(Ok(event)) = stream.next().await {
            match event {
                BlockEvent::Block(block) => {
                    if let Some(prev) = last_height {
                        for missing in prev + 1..block.height {
                            if let Ok(block) = node.block(missing).await {
                                record_block(&run, &block);
                            }
                        }
                    }
                    last_height = Some(block.height);
                    record_block(&run, &block);
                }
                BlockEvent::Lagged(_) => {
                    eprintln!("{rpc}: the block stream lagged; fetching missed blocks")
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn record_block(run: &Run, block: &Block) {
    let now = run.now_us();
    let mut bench_txs = 0;
    for tx in &block.txs {
        if let Some(&i) = run.index.get(&tx.hash) {
            bench_txs += 1;
            if run.final_us[i]
                .compare_exchange(u64::MAX, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                run.finalized.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let mut blocks = run.blocks.lock().unwrap_or_else(|e| e.into_inner());
    blocks.entry(block.height).or_insert(SeenBlock {
        height: block.height,
        timestamp_ms: block.timestamp_ms,
        tx_count: block.txs.len(),
        bench_txs,
        seen_us: now,
    });
}

/// Funds every sender with `amount` MYC base units from the dev accounts, at most 60 pending per
/// dev account at a time, and waits until all funding transfers are finalized.
async fn fund(
    node: &NodeClient,
    chain_id: u64,
    fee: u128,
    senders: &[PrivateKeySigner],
    amount: u128,
) -> Result<()> {
    let funders: Vec<PrivateKeySigner> = (0..DEV_ACCOUNTS)
        .map(dev_signer)
        .collect::<std::result::Result<_, _>>()?;
    // Skip senders that already hold enough (a re-run with the same seed).
    let mut todo = underfunded(node, senders.iter().map(|s| s.address()), amount).await?;
    while !todo.is_empty() {
        let mut pending: Vec<B256> = Vec::new();
        for (f, funder) in funders.iter().enumerate() {
            // After the node's own pending transactions (`mycel up` sends some from the dev
            // accounts as it starts its storage nodes).
            let first_nonce = node.account(funder.address()).await?.next_nonce;
            let mine = todo.iter().skip(f).step_by(funders.len()).take(60).copied();
            for (nonce, to) in (first_nonce..).zip(mine) {
                let tx = transfer(funder, to, amount, fee, nonce, chain_id)?;
                node.submit(&tx)
                    .await
                    .context("a funding transfer was refused")?;
                pending.push(tx.hash());
            }
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while !pending.is_empty() {
            if Instant::now() > deadline {
                bail!(
                    "{} funding transfers did not finalize within 120s",
                    pending.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            let mut still = Vec::new();
            for h in pending {
                match node.tx(h).await?.state {
                    TxState::Finalized { .. } => {}
                    TxState::Pending => still.push(h),
                    other => bail!("funding transfer {h} ended {other:?}"),
                }
            }
            pending = still;
        }
        todo = underfunded(node, todo, amount).await?;
    }
    Ok(())
}

/// The accounts of `addresses` holding less than half of `amount` MYC base units.
async fn underfunded(
    node: &NodeClient,
    addresses: impl IntoIterator<Item = Address>,
    amount: u128,
) -> Result<Vec<Address>> {
    let mut short = Vec::new();
    for a in addresses {
        if node.account(a).await?.myc < amount / 2 {
            short.push(a);
        }
    }
    Ok(short)
}

fn transfer(
    signer: &PrivateKeySigner,
    to: Address,
    amount: u128,
    fee: u128,
    nonce: u64,
    chain_id: u64,
) -> Result<SignedTx> {
    let kind = TxKind::Transfer(Transfer {
        from: signer.address(),
        to,
        token: Address::ZERO,
        amount: U256::from(amount),
        memo: Bytes::new(),
        nonce,
        fee: U256::from(fee),
    });
    SignedTx::sign(kind, chain_id, signer).map_err(|e| anyhow!("signing failed: {e}"))
}

/// Signs `count` transfers on all cores: tx k is from sender k mod K with nonce k div K, to the
/// next sender. Returns (sender index, tx) in submission order.
fn presign(
    senders: &[PrivateKeySigner],
    count: usize,
    chain_id: u64,
    amount: u128,
    fee: u128,
) -> Vec<(usize, SignedTx)> {
    let k = senders.len();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let chunk = count.div_ceil(threads);
    let mut out: Vec<(usize, SignedTx)> = Vec::with_capacity(count);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t * chunk..((t + 1) * chunk).min(count))
                        .map(|i| {
                            let (s, nonce) = (i % k, (i / k) as u64);
                            let to = senders[(s + 1) % k].address();
                            let tx = transfer(&senders[s], to, amount, fee, nonce, chain_id)
                                .expect("local signing");
                            (s, tx)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            out.extend(h.join().expect("signing thread"));
        }
    });
    out
}

async fn scrape_metrics(nodes: &[NodeClient]) -> Vec<BTreeMap<String, f64>> {
    let mut all = Vec::new();
    for node in nodes {
        let mut m = BTreeMap::new();
        if let Ok(text) = node.metrics().await {
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let mut parts = line.rsplitn(2, ' ');
                if let (Some(v), Some(k)) = (parts.next(), parts.next()) {
                    if let (true, Ok(v)) = (k.starts_with("mycel_"), v.parse::<f64>()) {
                        m.insert(k.to_string(), v);
                    }
                }
            }
        }
        all.push(m);
    }
    all
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    args: &Args,
    run: &Run,
    validators: usize,
    submit_start_us: u64,
    submit_end_us: u64,
    funding_secs: f64,
    sign_secs: f64,
    ecrecover_us: f64,
    metrics_before: Vec<BTreeMap<String, f64>>,
    metrics_after: Vec<BTreeMap<String, f64>>,
) -> Report {
    let n = run.submit_us.len();
    let accepted = run.accepted.load(Ordering::Relaxed);
    let mut latencies: Vec<u64> = Vec::new();
    let mut rtts: Vec<u64> = Vec::new();
    for i in 0..n {
        let (s, f) = (
            run.submit_us[i].load(Ordering::Relaxed),
            run.final_us[i].load(Ordering::Relaxed),
        );
        if s != u64::MAX && f != u64::MAX {
            latencies.push(f.saturating_sub(s));
        }
        let r = run.rtt_us[i].load(Ordering::Relaxed);
        if r > 0 {
            rtts.push(r);
        }
    }
    latencies.sort_unstable();
    rtts.sort_unstable();
    let finalized = latencies.len();

    // Blocks that carried bench transactions, in height order.
    let blocks: Vec<SeenBlock> = run
        .blocks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter(|b| b.bench_txs > 0)
        .cloned()
        .collect();
    // Steady window: from the first to the last block with bench txs, by block timestamp; the first
    // block's txs were gathered before the window opened, so they are not counted.
    let (steady_tps, window_secs) = if blocks.len() >= 2 {
        let first = &blocks[0];
        let last = &blocks[blocks.len() - 1];
        let txs: usize = blocks[1..].iter().map(|b| b.bench_txs).sum();
        let secs = (last.timestamp_ms.saturating_sub(first.timestamp_ms)) as f64 / 1e3;
        (if secs > 0.0 { txs as f64 / secs } else { 0.0 }, secs)
    } else {
        (0.0, 0.0)
    };
    let last_final_us = run
        .final_us
        .iter()
        .map(|f| f.load(Ordering::Relaxed))
        .filter(|&f| f != u64::MAX)
        .max()
        .unwrap_or(submit_start_us);
    let end_to_end_secs = (last_final_us.saturating_sub(submit_start_us)) as f64 / 1e6;
    let submit_secs = (submit_end_us - submit_start_us) as f64 / 1e6;
    let intervals: Vec<u64> = blocks
        .windows(2)
        .map(|w| w[1].timestamp_ms.saturating_sub(w[0].timestamp_ms))
        .collect();
    let txs_per_block: Vec<usize> = blocks.iter().map(|b| b.bench_txs).collect();
    let ms = |us: u64| us as f64 / 1e3;
    let delta = |key: &str| -> Vec<f64> {
        metrics_before
            .iter()
            .zip(&metrics_after)
            .map(|(b, a)| a.get(key).copied().unwrap_or(0.0) - b.get(key).copied().unwrap_or(0.0))
            .collect()
    };
    let txs_per_block_mean = if blocks.is_empty() {
        0.0
    } else {
        finalized as f64 / blocks.len() as f64
    };
    let interval_ms_mean = if intervals.is_empty() {
        0.0
    } else {
        intervals.iter().sum::<u64>() as f64 / intervals.len() as f64
    };
    Report {
        label: args.label.clone(),
        validators,
        rpcs: args.rpc.clone(),
        params: Params {
            txs: args.txs,
            senders: args.senders,
            concurrency: args.concurrency,
            rate: args.rate,
            broadcast: args.broadcast,
            form: format!("{:?}", args.form).to_lowercase(),
            timeout_secs: args.timeout_secs,
        },
        setup: Setup {
            funding_secs,
            signing_secs: sign_secs,
            ecrecover_us_one_core: ecrecover_us,
        },
        submitted: n,
        accepted,
        rejected: run
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        retries: run.retries.load(Ordering::Relaxed),
        finalized,
        submit: SubmitFigures {
            secs: submit_secs,
            accepted_per_sec: accepted as f64 / submit_secs.max(1e-9),
            rtt_ms_p50: ms(percentile(&rtts, 50.0)),
            rtt_ms_p99: ms(percentile(&rtts, 99.0)),
        },
        throughput: Throughput {
            finalized_tps_steady: steady_tps,
            steady_window_secs: window_secs,
            finalized_tps_end_to_end: finalized as f64 / end_to_end_secs.max(1e-9),
            end_to_end_secs,
        },
        latency_ms: Latency {
            p50: ms(percentile(&latencies, 50.0)),
            p90: ms(percentile(&latencies, 90.0)),
            p99: ms(percentile(&latencies, 99.0)),
            max: ms(latencies.last().copied().unwrap_or(0)),
            min: ms(latencies.first().copied().unwrap_or(0)),
        },
        blocks: BlockFigures {
            count: blocks.len(),
            first_height: blocks.first().map(|b| b.height),
            last_height: blocks.last().map(|b| b.height),
            txs_per_block_mean,
            txs_per_block_max: txs_per_block.iter().max().copied().unwrap_or(0),
            interval_ms_mean,
            interval_ms_max: intervals.iter().max().copied().unwrap_or(0),
            per_block: blocks
                .iter()
                .map(|b| {
                    (
                        b.height,
                        b.timestamp_ms,
                        b.tx_count,
                        b.bench_txs,
                        ms(b.seen_us),
                    )
                })
                .collect(),
        },
        node_metrics_delta: MetricsDelta {
            txs_submitted_total: delta("mycel_txs_submitted_total"),
            txs_rejected_total: delta("mycel_txs_rejected_total"),
            txs_finalized_total: delta("mycel_txs_finalized_total"),
            blocks_finalized_total: delta("mycel_blocks_finalized_total"),
        },
    }
}

/// What a run measured: printed as a table, written as JSON with `--out`.
#[derive(Debug, Serialize)]
struct Report {
    label: String,
    validators: usize,
    rpcs: Vec<String>,
    params: Params,
    setup: Setup,
    submitted: usize,
    accepted: usize,
    /// Refusals by error code.
    rejected: BTreeMap<String, usize>,
    retries: usize,
    finalized: usize,
    submit: SubmitFigures,
    throughput: Throughput,
    latency_ms: Latency,
    blocks: BlockFigures,
    node_metrics_delta: MetricsDelta,
}

#[derive(Debug, Serialize)]
struct Params {
    txs: usize,
    senders: usize,
    concurrency: usize,
    rate: f64,
    broadcast: bool,
    form: String,
    timeout_secs: u64,
}

#[derive(Debug, Serialize)]
struct Setup {
    funding_secs: f64,
    signing_secs: f64,
    ecrecover_us_one_core: f64,
}

#[derive(Debug, Serialize)]
struct SubmitFigures {
    secs: f64,
    accepted_per_sec: f64,
    rtt_ms_p50: f64,
    rtt_ms_p99: f64,
}

#[derive(Debug, Serialize)]
struct Throughput {
    finalized_tps_steady: f64,
    steady_window_secs: f64,
    finalized_tps_end_to_end: f64,
    end_to_end_secs: f64,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    min: f64,
}

#[derive(Debug, Serialize)]
struct BlockFigures {
    count: usize,
    first_height: Option<u64>,
    last_height: Option<u64>,
    txs_per_block_mean: f64,
    txs_per_block_max: usize,
    interval_ms_mean: f64,
    interval_ms_max: u64,
    /// Height, timestamp (ms), transactions, bench transactions, seen at (ms after the start).
    per_block: Vec<(u64, u64, usize, usize, f64)>,
}

#[derive(Debug, Serialize)]
struct MetricsDelta {
    txs_submitted_total: Vec<f64>,
    txs_rejected_total: Vec<f64>,
    txs_finalized_total: Vec<f64>,
    blocks_finalized_total: Vec<f64>,
}

fn print_table(r: &Report) {
    println!();
    println!("mycel-bench {}", r.label);
    println!(
        "  {:<34} {} / {}",
        "validators / nodes under load",
        r.validators,
        r.rpcs.len()
    );
    println!(
        "  {:<34} {} submitted, {} accepted, {} finalized",
        "transactions", r.submitted, r.accepted, r.finalized
    );
    println!(
        "  {:<34} {}  (retries {})",
        "rejected",
        serde_json::to_string(&r.rejected).unwrap_or_default(),
        r.retries
    );
    println!(
        "  {:<34} {:.0} tx/s over {:.2}s (rtt p50 {:.2} ms, p99 {:.2} ms)",
        "submission",
        r.submit.accepted_per_sec,
        r.submit.secs,
        r.submit.rtt_ms_p50,
        r.submit.rtt_ms_p99
    );
    if r.throughput.steady_window_secs > 0.0 {
        println!(
            "  {:<34} {:.0} tx/s over {:.2}s",
            "finalized, steady window",
            r.throughput.finalized_tps_steady,
            r.throughput.steady_window_secs
        );
    } else {
        println!(
            "  {:<34} n/a: all in one block (send more --txs)",
            "finalized, steady window"
        );
    }
    println!(
        "  {:<34} {:.0} tx/s over {:.2}s",
        "finalized, first submit→last final",
        r.throughput.finalized_tps_end_to_end,
        r.throughput.end_to_end_secs
    );
    let l = &r.latency_ms;
    println!(
        "  {:<34} p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        "submit→finality latency", l.p50, l.p90, l.p99, l.max
    );
    let b = &r.blocks;
    println!(
        "  {:<34} {} blocks, {:.0} tx/block mean, {} max, {:.0} ms mean interval",
        "blocks with bench txs",
        b.count,
        b.txs_per_block_mean,
        b.txs_per_block_max,
        b.interval_ms_mean
    );
    println!();
}
