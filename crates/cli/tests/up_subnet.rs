//! `mycel up` with its inference subnet (no `--chain-only`): the real binary starts the chain,
//! creates subnet 1, two miners, a validator and the x402 gateway. A paid request through the
//! gateway is answered by a miner with a receipt; the miners are in the metagraph with their
//! endpoints; the validator scores them and emission reaches them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use mycel_types::keys::dev_signer;
use serde_json::Value;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn dev_address(index: u32) -> Address {
    dev_signer(index).expect("dev key").address()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mycel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mycel"))
        .args(args)
        .env_remove("MYCEL_RPC")
        .env_remove("MYCEL_KEYSTORE")
        .env_remove("MYCEL_PASSWORD")
        .output()
        .expect("run mycel")
}

fn get_json(url: &str) -> Value {
    let url = url.to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            reqwest::get(&url)
                .await
                .expect("GET")
                .json::<Value>()
                .await
                .expect("JSON")
        })
    })
    .join()
    .expect("thread")
}

struct Up {
    child: Child,
    log: PathBuf,
    rpc: String,
    gateway: String,
}

impl Drop for Up {
    fn drop(&mut self) {
        // SIGTERM, so `mycel up` stops its miners, validator and gateway too.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Up {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn start(dir: &Path) -> Up {
        let log = dir.join("up.log");
        let rpc_port = free_port();
        let gateway_port = free_port();
        let file = std::fs::File::create(&log).expect("log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_mycel"));
        command
            .arg("up")
            .arg("--data-dir")
            .arg(dir.join("devnet"))
            .args(["--rpc-addr", &format!("127.0.0.1:{rpc_port}")])
            .args(["--p2p-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--gateway-addr", &format!("127.0.0.1:{gateway_port}")])
            .env("RUST_LOG", "warn")
            .env_remove("MYCEL_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut up = Up {
            child: command.spawn().expect("spawn mycel up"),
            log,
            rpc: format!("http://127.0.0.1:{rpc_port}"),
            gateway: format!("http://127.0.0.1:{gateway_port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let log = up.log();
            if log.contains("inference subnet 1 is running") {
                return up;
            }
            assert!(
                !log.contains("did not start"),
                "the subnet did not start:\n{log}"
            );
            if let Ok(Some(status)) = up.child.try_wait() {
                panic!("mycel up exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "no subnet banner:\n{log}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[test]
fn up_starts_an_inference_subnet_behind_a_paid_gateway() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let up = Up::start(dir.path());
    let banner = up.log();
    // The banner gives the URLs and copy-paste examples.
    for needle in [
        "miner      http://127.0.0.1:",
        "validator  http://127.0.0.1:",
        &format!("gateway    {}/v1", up.gateway),
        "node interop/x402-client/pay.mjs",
        "from openai import OpenAI",
        "mycel chat",
        "curl -s",
    ] {
        assert!(
            banner.contains(needle),
            "banner lacks {needle:?}:\n{banner}"
        );
    }

    // Both miners are in the metagraph with their endpoints.
    let graph = get_json(&format!("{}/v1/subnets/1/metagraph", up.rpc));
    for i in [1u32, 2] {
        let neuron = graph["neurons"]
            .as_array()
            .expect("neurons")
            .iter()
            .find(|n| {
                n["hotkey"].as_str().and_then(|h| h.parse::<Address>().ok()) == Some(dev_address(i))
            })
            .unwrap_or_else(|| panic!("miner {i} not in the metagraph: {graph:#}"))
            .clone();
        assert_eq!(neuron["endpoint"]["host"], "127.0.0.1", "{neuron:#}");
        assert!(neuron["endpoint"]["port"].as_u64().expect("port") > 0);
    }

    // A paid request through the gateway: dev account 5 pays, a miner answers with a receipt.
    let before = get_json(&format!("{}/v1/accounts/{}", up.rpc, dev_address(5)));
    let out = mycel(&[
        "chat",
        "What is the capital of France?",
        "--gateway",
        &up.gateway,
        "--dev-account",
        "5",
        "--max-tokens",
        "8",
        "--max",
        "0.05",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "mycel chat failed\nstdout: {}\nstderr: {}\nup log:\n{}",
        text(&out.stdout),
        text(&out.stderr),
        up.log()
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let answer_file = dir.path().join("answer.json");
    std::fs::write(&answer_file, serde_json::to_vec(&answer).expect("json")).expect("write");
    let receipt_text = answer.to_string();
    assert!(receipt_text.contains("InferenceReceipt"), "{answer:#}");
    let verified = mycel(&[
        "receipt",
        "verify",
        answer_file.to_str().expect("utf-8"),
        "--json",
    ]);
    let verified_text = text(&verified.stdout);
    assert!(
        verified.status.success(),
        "{verified_text}\n{}",
        text(&verified.stderr)
    );
    let report: Value = serde_json::from_str(&verified_text).expect("verify --json");
    let served_by = report["miner"]
        .as_str()
        .and_then(|m| m.parse::<Address>().ok());
    assert!(
        served_by == Some(dev_address(1)) || served_by == Some(dev_address(2)),
        "{report:#}"
    );
    // The payment settled on chain: the payer has less mUSD.
    let after = get_json(&format!("{}/v1/accounts/{}", up.rpc, dev_address(5)));
    let musd = |v: &Value| {
        v["musd"]
            .as_str()
            .and_then(|m| m.parse::<u128>().ok())
            .expect("musd")
    };
    assert!(
        musd(&after) < musd(&before),
        "before {before:#}\nafter {after:#}"
    );

    // The validator scores both miners and emission reaches them.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let graph = get_json(&format!("{}/v1/subnets/1/metagraph", up.rpc));
        let paid = [1u32, 2].iter().all(|&i| {
            graph["neurons"]
                .as_array()
                .expect("neurons")
                .iter()
                .any(|n| {
                    n["hotkey"].as_str().and_then(|h| h.parse::<Address>().ok())
                        == Some(dev_address(i))
                        && n["incentive"].as_u64().unwrap_or(0) > 0
                })
        });
        if paid {
            break;
        }
        let validator_log = std::fs::read_to_string(dir.path().join("devnet/subnet/validator.log"))
            .unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "no incentive for the miners within 180 s: {graph:#}\nvalidator log:\n{validator_log}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("up_subnet test took {:?}", started.elapsed());
}
