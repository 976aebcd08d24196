//! The followers of `mycel up --followers N` and `mycel localnet --followers N`: `mycel node
//! --follow` processes that sync the chain's certified blocks from the validators' APIs, serve the
//! whole node API, and forward the transactions sent to them. Follower K keeps its copy of the
//! chain in `DIR/follower-K`, logs to `DIR/follower-K/node.log` and serves on the first port + K;
//! a second run with the same directory resumes where it stopped.
//!
//! `mycel up` watches them on a thread of their own: one that exits early is reported on the
//! console (the chain keeps running), and all get SIGTERM when the devnet stops. `mycel localnet`
//! starts them with [`FollowerPlan::spawn`] and watches them with its validators.

use crate::logging::LogFormat;
use crate::node_cmd::{stop_all, Supervised};
use anyhow::{Context as _, Result};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Where a follower of a machine-local network listens.
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// How often the supervisor looks for a follower that has exited.
const POLL: Duration = Duration::from_millis(200);

/// What to start: `followers` followers of the node APIs `follow`.
#[derive(Debug, Clone)]
pub struct FollowerPlan {
    /// The node APIs (`http://HOST:PORT`) every follower syncs from and forwards to.
    pub follow: Vec<String>,
    /// The chain's genesis file; without it each follower reads the genesis from the first node
    /// it follows.
    pub genesis: Option<PathBuf>,
    /// Follower K lives in `dir/follower-K`.
    pub dir: PathBuf,
    pub followers: u16,
    /// Follower K serves its API on 127.0.0.1:`first_port` + K.
    pub first_port: u16,
    pub log_format: LogFormat,
}

impl FollowerPlan {
    /// Follower K's API address.
    pub fn addr(&self, k: u16) -> Result<SocketAddr> {
        let port = self
            .first_port
            .checked_add(k)
            .context("--follower-port: the followers' ports run past 65535; pick a lower one")?;
        Ok(SocketAddr::new(LOOPBACK, port))
    }

    /// Fails before anything starts if the last follower's port would run past 65535.
    pub fn check(&self) -> Result<()> {
        if let Some(last) = self.followers.checked_sub(1) {
            self.addr(last)?;
        }
        Ok(())
    }

    /// Follower K's data directory.
    pub fn dir(&self, k: u16) -> PathBuf {
        self.dir.join(format!("follower-{k}"))
    }

    /// Starts follower K (`exe node --follow …`), its output in its `node.log`.
    pub fn spawn(&self, exe: &Path, k: u16) -> Result<Supervised> {
        let dir = self.dir(k);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let log_path = dir.join("node.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot write {}", log_path.display()))?;
        let mut command = Command::new(exe);
        command
            .args(["node", "--follow", &self.follow.join(",")])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--rpc-addr", &self.addr(k)?.to_string()])
            .args(["--log-format", self.log_format.as_flag()]);
        if let Some(genesis) = &self.genesis {
            command.arg("--genesis").arg(genesis);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start follower {k}"))?;
        Ok(Supervised {
            label: format!("follower {k}"),
            log: log_path,
            child,
        })
    }
}

/// `mycel up`'s running followers; [`Followers::stop`] stops them.
pub struct Followers {
    stop: mpsc::Sender<()>,
    supervisor: std::thread::JoinHandle<()>,
}

/// Starts the plan's followers, says where they serve, and watches them on a thread of its own.
pub fn start(plan: &FollowerPlan) -> Result<Followers> {
    plan.check()?;
    let exe = std::env::current_exe().context("cannot find the mycel executable")?;
    let mut out = format!(
        "\nfollowers: {} (sync certified blocks from {}, serve the node API, forward transactions)\n",
        plan.followers,
        plan.follow.join(", ")
    );
    let mut children = Vec::new();
    for k in 0..plan.followers {
        let started = plan
            .addr(k)
            .and_then(|addr| plan.spawn(&exe, k).map(|child| (addr, child)));
        match started {
            Ok((addr, child)) => {
                out.push_str(&format!(
                    "  follower {k}  http://{addr}   (log: {})\n",
                    child.log.display()
                ));
                children.push(child);
            }
            Err(e) => {
                stop_all(&mut children);
                return Err(e);
            }
        }
    }
    eprintln!("{out}");
    // Ctrl-C in a terminal reaches the followers too: their exit then is no news.
    let signalled = crate::node_cmd::signal_flag()?;
    let (stop, stopping) = mpsc::channel();
    let supervisor = std::thread::Builder::new()
        .name("mycel-followers".into())
        .spawn(move || supervise(children, stopping, &signalled))
        .context("cannot start the followers' thread")?;
    Ok(Followers { stop, supervisor })
}

impl Followers {
    /// SIGTERM to every follower, then waits for them (SIGKILL to one that does not stop).
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.supervisor.join();
    }
}

/// Reports a follower that exits before the devnet stops; stops the rest when told to.
fn supervise(mut children: Vec<Supervised>, stopping: mpsc::Receiver<()>, signalled: &AtomicBool) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopping.recv_timeout(POLL) {
        children.retain_mut(|child| {
            let Some(status) = child.exited() else {
                return true;
            };
            if !signalled.load(Ordering::Relaxed) {
                eprintln!(
                    "warning: {} stopped ({status}); its log is {}",
                    child.label,
                    child.log.display()
                );
            }
            false
        });
    }
    stop_all(&mut children);
}
