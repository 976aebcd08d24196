//! The compute providers of `mycel up`: `mycel provider` processes for development accounts 6
//! (and 7 with `--providers 2`, bidding dearer), each with capacity for a small model, so that
//! `mycel deploy` finds a bid on a fresh devnet. Their logs are `DATA_DIR/provider-K.log`; they
//! stop (and stop their leases' miners) with the devnet.

use anyhow::{Context as _, Result};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The development accounts `mycel up`'s providers sign with.
const PROVIDER_ACCOUNTS: [u32; 2] = [6, 7];

/// What `mycel up` starts for the compute market.
#[derive(Debug, Clone)]
pub struct ProviderPlan {
    pub rpc: String,
    pub dir: PathBuf,
    pub providers: u16,
    /// Miners of provider K listen from this port + 10·K.
    pub first_port: u16,
}

/// The running providers.
pub struct Providers(Vec<Child>);

pub fn start(plan: &ProviderPlan) -> Result<Providers> {
    let exe = std::env::current_exe().context("cannot find the mycel binary")?;
    let mut children = Vec::new();
    for (k, account) in PROVIDER_ACCOUNTS
        .iter()
        .take(usize::from(plan.providers))
        .enumerate()
    {
        let dir = plan.dir.join(format!("provider-{k}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let log_path = plan.dir.join(format!("provider-{k}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let price = if k == 0 { "0.0005" } else { "0.0006" };
        let child = Command::new(&exe)
            .args(["provider", "--dev-account", &account.to_string()])
            .arg("--dir")
            .arg(&dir)
            .args([
                "--first-port",
                &(plan.first_port + 10 * k as u16).to_string(),
            ])
            .args(["--region", "devnet", "--cores", "2", "--memory-mib", "2048"])
            .args(["--disk-mib", "4096", "--price-per-core", price])
            .args(["--rpc", &plan.rpc])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start mycel provider")?;
        children.push(child);
    }
    if !children.is_empty() {
        eprintln!(
            "compute market: {} provider(s) bidding (logs {}/provider-K.log)\n  mycel deploy MANIFEST --deposit 1 --dev-account 5 --rpc {}   (docs/compute.md)\n",
            children.len(),
            plan.dir.display(),
            plan.rpc
        );
    }
    Ok(Providers(children))
}

impl Providers {
    /// Asks each provider to stop (it stops its miners), then makes sure.
    pub fn stop(mut self) {
        crate::node_cmd::stop_processes(self.0.iter_mut().collect());
    }
}
