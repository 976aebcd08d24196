//! A devnet of a test's own: `mycel up` on fresh loopback ports in a directory of its own.

use crate::process::{start_with_retry, Proc};
use crate::{free_port, TestDir};
use mycel_client::blocking::NodeClient;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// What `mycel up` prints once the chain's ports are bound.
const CHAIN_BANNER: &str = "mycel devnet is running";
/// What `mycel up` (without `--chain-only`) prints once its miners, validator and gateway serve.
const SUBNET_BANNER: &str = "inference subnet 1 is running";

/// How to start a [`Devnet`].
#[derive(Clone, Debug)]
pub struct DevnetOptions {
    /// `--chain-only`: the chain alone, no miners, validator or gateway (default).
    pub chain_only: bool,
    /// More arguments for `mycel up`.
    pub args: Vec<String>,
    /// The node's `RUST_LOG`.
    pub rust_log: String,
    /// How long to wait for the banner (the first start fetches the model without --chain-only).
    pub start_timeout: Duration,
    /// Wait until this height is finalized before handing the devnet to the test.
    pub min_height: u64,
    /// Storage nodes `mycel up` runs (on free ports): none by default, the four of a real
    /// `mycel up` with the subnet.
    pub storage_nodes: u16,
    /// Compute providers `mycel up` runs (dev accounts 6 and 7, on free ports): none by default,
    /// since tests sign with those accounts themselves.
    pub providers: u16,
}

impl Default for DevnetOptions {
    fn default() -> DevnetOptions {
        DevnetOptions {
            chain_only: true,
            args: Vec::new(),
            rust_log: "warn,mycel_chain=info".to_string(),
            start_timeout: Duration::from_secs(90),
            min_height: 1,
            storage_nodes: 0,
            providers: 0,
        }
    }
}

impl DevnetOptions {
    /// The whole stack: chain, inference subnet, miners, validator and the paid gateway.
    pub fn with_subnet() -> DevnetOptions {
        DevnetOptions {
            chain_only: false,
            rust_log: "warn".to_string(),
            start_timeout: Duration::from_secs(600),
            storage_nodes: 4,
            ..DevnetOptions::default()
        }
    }

    /// Adds `mycel up` arguments.
    pub fn args<S: ToString>(mut self, args: &[S]) -> DevnetOptions {
        self.args.extend(args.iter().map(ToString::to_string));
        self
    }
}

/// `mycel up` with its own data directory and ports, stopped when dropped (SIGTERM, so it stops
/// what it started). Its log is `up.log` in [`Devnet::dir`], shown when a wait fails.
pub struct Devnet {
    proc: Proc,
    options: DevnetOptions,
    rpc: String,
    gateway: Option<String>,
    data: PathBuf,
    dir: TestDir,
}

impl Devnet {
    /// `mycel up --chain-only` at height 1 or more.
    #[track_caller]
    pub fn start() -> Devnet {
        Devnet::start_with(DevnetOptions::default())
    }

    /// `mycel up` as `options` say, once it has printed its banner and reached `min_height`.
    #[track_caller]
    pub fn start_with(options: DevnetOptions) -> Devnet {
        let dir = TestDir::new();
        let data = dir.join("devnet");
        let log = dir.join("up.log");
        let (proc, (rpc, gateway)) = start_with_retry(
            "mycel up",
            &log,
            banner(&options),
            options.start_timeout,
            || {
                let (argv, rpc, gateway) = up_argv(&options, &data);
                (up_command(&argv, &options.rust_log), (rpc, gateway))
            },
        );
        let devnet = Devnet {
            proc,
            options,
            rpc,
            gateway,
            data,
            dir,
        };
        devnet.wait_for_height(devnet.options.min_height, Duration::from_secs(90));
        devnet
    }

    /// The node API's URL (`http://127.0.0.1:PORT`).
    pub fn rpc(&self) -> &str {
        &self.rpc
    }

    /// The paid gateway's URL, when the devnet runs the subnet.
    pub fn gateway(&self) -> &str {
        self.gateway
            .as_deref()
            .expect("this devnet runs no gateway (started --chain-only)")
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The test's directory (the data directory and the log are in it).
    pub fn dir(&self) -> &TestDir {
        &self.dir
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }

    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }

    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }

    /// A blocking typed client of the node (not for use inside an async runtime: see
    /// [`Devnet::async_client`]).
    pub fn client(&self) -> NodeClient {
        NodeClient::new(&self.rpc).expect("client of the devnet")
    }

    /// A typed client of the node for async tests.
    pub fn async_client(&self) -> mycel_client::NodeClient {
        mycel_client::NodeClient::new(&self.rpc).expect("client of the devnet")
    }

    /// The finalized height, once it is at least `height`; panics with the log after `timeout`.
    #[track_caller]
    pub fn wait_for_height(&self, height: u64, timeout: Duration) -> u64 {
        wait_for_height(&self.rpc, height, &self.proc, timeout)
    }

    /// `mycel ARGS --rpc <this devnet>`.
    pub fn mycel(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--rpc", &self.rpc]);
        crate::mycel::run(&all)
    }

    /// `mycel ARGS --rpc <this devnet>`, which must succeed; its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.mycel(args);
        if !out.status.success() {
            panic!(
                "mycel {args:?} failed\nstdout: {}\nstderr: {}\nnode log:\n{}",
                crate::mycel::stdout(&out),
                crate::mycel::stderr(&out),
                self.log_tail()
            );
        }
        crate::mycel::stdout(&out)
    }

    /// Creates a subnet owned by dev account `owner` with dev account `hotkey` as its owner
    /// hotkey (UID 0), and sets its tempo if asked; `mycel subnet create`'s output.
    #[track_caller]
    pub fn create_subnet(&self, owner: u32, hotkey: u32, tempo: Option<u64>) -> String {
        let (owner, hotkey) = (owner.to_string(), hotkey.to_string());
        let out = self.ok(&[
            "subnet",
            "create",
            "--dev-account",
            &owner,
            "--hotkey-dev-account",
            &hotkey,
        ]);
        if let Some(tempo) = tempo {
            let netuid = out
                .split("created subnet ")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .unwrap_or_else(|| panic!("no netuid in {out}"))
                .to_string();
            self.ok(&[
                "subnet",
                "set",
                &netuid,
                "--tempo",
                &tempo.to_string(),
                "--dev-account",
                &owner,
            ]);
        }
        out
    }

    /// `mycel storage` signed by dev account `dev_account` on a free port, with `extra` flags,
    /// registered on this devnet (its stake locked) once this returns; its slivers are kept in the
    /// returned directory. Stopped when the [`Proc`] is dropped.
    #[track_caller]
    pub fn start_storage_node(&self, dev_account: u32, extra: &[&str]) -> (Proc, PathBuf) {
        let dir = self.dir.join(&format!("storage-{dev_account}"));
        let listen = format!("127.0.0.1:{}", free_port());
        let args: Vec<String> = [
            "storage",
            "--dev-account",
            &dev_account.to_string(),
            "--dir",
            &dir.display().to_string(),
            "--listen",
            &listen,
            "--rpc",
            &self.rpc,
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
        let log = self.dir.join(&format!("storage-{dev_account}.log"));
        let mut proc = Proc::mycel(&format!("storage node {dev_account}"), &args, "info", &log);
        proc.wait_for_log("storage node 0x", Duration::from_secs(60));
        (proc, dir)
    }

    /// Waits (at most 60 s) until `nodes` storage nodes have registered: `mycel up`'s storage
    /// nodes register on their own after it starts.
    #[track_caller]
    pub fn wait_for_storage_committee(&self, nodes: usize) {
        let client = self.client();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while client.storage().map_or(0, |s| s.members.len()) < nodes {
            assert!(
                std::time::Instant::now() < deadline,
                "the storage nodes did not register:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The finalized height now.
    pub fn height(&self) -> u64 {
        self.client().status().expect("status").height
    }

    /// `mycel ARGS --rpc <this devnet> --json`, which must succeed; its JSON.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.mycel(&all);
        if !out.status.success() {
            panic!(
                "mycel {all:?} failed\nstdout: {}\nstderr: {}\nnode log:\n{}",
                crate::mycel::stdout(&out),
                crate::mycel::stderr(&out),
                self.log_tail()
            );
        }
        crate::mycel::json(&out)
    }

    /// The account's JSON as `mycel balance ADDRESS --json` prints it.
    #[track_caller]
    pub fn account(&self, address: alloy_primitives::Address) -> serde_json::Value {
        self.json(&["balance", &address.to_string()])
    }

    /// Development account `who`'s mUSD, in base units.
    #[track_caller]
    pub fn musd(&self, who: u32) -> u128 {
        self.account(crate::dev_address(who))["musd"]
            .as_str()
            .expect("musd")
            .parse()
            .expect("amount")
    }

    /// The node's own answer to GET `path` (not through the CLI), which must be 200.
    #[track_caller]
    pub fn http_get(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.rpc);
        crate::http::block_on(async {
            let response = reqwest::get(&url).await.expect("GET");
            assert_eq!(response.status().as_u16(), 200, "GET {url}");
            response.json().await.expect("JSON")
        })
    }

    /// POSTs `tx` to the node's /v1/txs (not through the CLI or the client); the HTTP status.
    pub fn http_post_tx(&self, tx: &mycel_types::SignedTx) -> u16 {
        let url = format!("{}/v1/txs", self.rpc);
        crate::http::block_on(async {
            let response = reqwest::Client::new()
                .post(&url)
                .json(&tx.to_json())
                .send()
                .await
                .expect("POST");
            response.status().as_u16()
        })
    }

    /// SIGKILL, as a crash or a power cut would stop it.
    pub fn kill_9(&mut self) {
        self.proc.kill_9();
    }

    /// A clean shutdown (SIGTERM); its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.proc.terminate(Duration::from_secs(20))
    }

    /// Starts it again on the same data directory, after a stop or a kill -9, and waits for the
    /// banner and for `min_height`. The ports are new ones (the old ones may have been taken
    /// meanwhile): read [`Devnet::rpc`] again.
    #[track_caller]
    pub fn restart(&mut self) {
        if self.proc.is_running() {
            self.stop();
        }
        let log = self.proc.log_path().to_path_buf();
        let (options, data) = (&self.options, &self.data);
        let (proc, (rpc, gateway)) = start_with_retry(
            "mycel up",
            &log,
            banner(options),
            options.start_timeout,
            || {
                let (argv, rpc, gateway) = up_argv(options, data);
                (up_command(&argv, &options.rust_log), (rpc, gateway))
            },
        );
        (self.proc, self.rpc, self.gateway) = (proc, rpc, gateway);
        self.wait_for_height(self.options.min_height, Duration::from_secs(90));
    }
}

/// The finalized height of the node at `rpc`, once it is at least `height`; panics with
/// `proc`'s log (the node's, or the process that started it) after `timeout`.
#[track_caller]
pub fn wait_for_height(rpc: &str, height: u64, proc: &Proc, timeout: Duration) -> u64 {
    wait_for_height_or(rpc, height, timeout, || {
        format!("{} at {rpc}; log:\n{}", proc.name(), proc.log_tail())
    })
}

/// The finalized height of the node at `rpc`, once it is at least `height`; after `timeout`
/// panics with what `describe` says (the node and its log).
#[track_caller]
pub fn wait_for_height_or(
    rpc: &str,
    height: u64,
    timeout: Duration,
    describe: impl Fn() -> String,
) -> u64 {
    let client = NodeClient::new(rpc)
        .expect("client of the node")
        .with_timeout(Duration::from_secs(5));
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(status) = client.status() {
            if status.height >= height {
                return status.height;
            }
        }
        assert!(
            Instant::now() < deadline,
            "did not reach height {height} in {timeout:?}: {}",
            describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What `mycel up` prints once it serves what `options` ask for.
fn banner(options: &DevnetOptions) -> &'static str {
    if options.chain_only {
        CHAIN_BANNER
    } else {
        SUBNET_BANNER
    }
}

/// The `mycel up` arguments for `options` on fresh ports, with the URLs they give.
fn up_argv(options: &DevnetOptions, data: &Path) -> (Vec<String>, String, Option<String>) {
    let rpc_addr = format!("127.0.0.1:{}", free_port());
    let mut argv: Vec<String> = vec![
        "up".into(),
        "--data-dir".into(),
        data.display().to_string(),
        "--rpc-addr".into(),
        rpc_addr.clone(),
        "--p2p-addr".into(),
        format!("127.0.0.1:{}", free_port()),
    ];
    let gateway = if options.chain_only {
        argv.push("--chain-only".into());
        None
    } else {
        let gateway_addr = format!("127.0.0.1:{}", free_port());
        argv.extend(["--gateway-addr".into(), gateway_addr.clone()]);
        Some(format!("http://{gateway_addr}"))
    };
    argv.extend(["--storage-nodes".into(), options.storage_nodes.to_string()]);
    if options.storage_nodes > 0 {
        let first = crate::free_port_range(options.storage_nodes);
        argv.extend(["--storage-addr".into(), format!("127.0.0.1:{first}")]);
    }
    argv.extend(["--providers".into(), options.providers.to_string()]);
    if options.providers > 0 {
        let first = crate::free_port_range(10 * options.providers);
        argv.extend(["--provider-port".into(), first.to_string()]);
    }
    argv.extend(options.args.iter().cloned());
    (argv, format!("http://{rpc_addr}"), gateway)
}

fn up_command(argv: &[String], rust_log: &str) -> std::process::Command {
    let mut command = crate::mycel::command(argv);
    command.env("RUST_LOG", rust_log);
    command
}
