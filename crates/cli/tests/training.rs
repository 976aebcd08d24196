//! The training subnet with real processes (docs/training.md): `mycel up` with its storage
//! nodes, a subnet whose owner starts a run of the tiny model, three `mycel train miner`s and one
//! `mycel train validator` (the aggregator), and a hostile participant signing its own
//! transactions: noise, a copy of another miner's commit, a malformed and an oversized update, a
//! commit for the wrong round and one after the deadline. One miner leaves mid-run and another
//! joins, the validator is killed and restarted; the held-out loss still falls round after round, and the last
//! checkpoint exports as a GGUF that `mycel model` loads.

use alloy_primitives::{keccak256, B256};
use alloy_signer_local::PrivateKeySigner;
use mycel_client::{api, NodeClient};
use mycel_testkit::{dev_address, dev_signer, Devnet, DevnetOptions, Proc, TestDir};
use mycel_train::roles::{self, RoleError};
use mycel_train::run::RunSpec;
use mycel_train::sparseloco::ErrorFeedback;
use mycel_types::tx::{CommitTrainingUpdate, RevealTrainingUpdate};
use mycel_types::TxKind;
use std::time::{Duration, Instant};

const OWNER: u32 = 0;
const OWNER_HOTKEY: u32 = 1;
const HOSTILE: u32 = 2;
const VALIDATOR: u32 = 4;
const COPIER: u32 = 5;
const MINERS: [u32; 3] = [6, 7, 8];
/// A miner that joins in round 1.
const LATE_MINER: u32 = 9;
const ROUND_BLOCKS: u64 = 60;
const REVEAL_BLOCKS: u64 = 10;
const ROUNDS: u64 = 3;

struct Net {
    devnet: Devnet,
    netuid: u16,
    runtime: tokio::runtime::Runtime,
    node: NodeClient,
    dir: TestDir,
}

impl Net {
    fn run(&self) -> api::TrainingRun {
        self.runtime
            .block_on(roles::training_run(&self.node, self.netuid))
            .expect("training run")
            .expect("a run")
    }

    fn height(&self) -> u64 {
        self.devnet.height()
    }

    /// Waits until `done` holds for the run (at most `secs`), showing `procs`' logs if not.
    #[track_caller]
    fn wait(
        &self,
        what: &str,
        secs: u64,
        procs: &[&Proc],
        done: impl Fn(&api::TrainingRun) -> bool,
    ) -> api::TrainingRun {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let run = self.run();
            if done(&run) {
                return run;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = procs
                    .iter()
                    .map(|p| format!("--- {}:\n{}", p.name(), p.log_tail()))
                    .collect();
                panic!(
                    "timed out waiting for {what}: {run:#?}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn role(&self, role: &str, dev: u32, extra: &[String]) -> Proc {
        let mut args: Vec<String> = [
            "train",
            role,
            "--netuid",
            &self.netuid.to_string(),
            "--dev-account",
            &dev.to_string(),
            "--rpc",
            self.devnet.rpc(),
            "--cache",
            &self.dir.join(&format!("cache-{dev}")).display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Four trainers on two cores: one compute thread each.
        args.extend(["--threads".to_string(), "1".to_string()]);
        args.extend(extra.iter().cloned());
        let log = self.dir.join(&format!("{role}-{dev}.log"));
        Proc::mycel(&format!("train {role} {dev}"), &args, "warn", &log)
    }

    fn send(
        &self,
        signer: &PrivateKeySigner,
        kind: impl FnOnce(mycel_client::TxFields) -> TxKind,
    ) -> Result<B256, RoleError> {
        self.runtime.block_on(roles::send(&self.node, signer, kind))
    }

    fn commit(&self, signer: &PrivateKeySigner, round: u64, hash: B256) -> Result<B256, RoleError> {
        let netuid = self.netuid;
        self.send(signer, |f| {
            TxKind::CommitTrainingUpdate(CommitTrainingUpdate {
                from: f.from,
                netuid,
                round,
                updateHash: hash,
                nonce: f.nonce,
                fee: f.fee,
            })
        })
    }

    fn reveal(&self, signer: &PrivateKeySigner, round: u64, blob: B256) {
        let netuid = self.netuid;
        self.send(signer, |f| {
            TxKind::RevealTrainingUpdate(RevealTrainingUpdate {
                from: f.from,
                netuid,
                round,
                blobId: blob,
                nonce: f.nonce,
                fee: f.fee,
            })
        })
        .expect("reveal");
    }

    fn store(&self, signer: &PrivateKeySigner, bytes: &[u8]) -> B256 {
        self.runtime
            .block_on(roles::store_blob(
                &self.node,
                signer,
                bytes,
                &self.dir.join("hostile"),
                2,
            ))
            .expect("store a blob")
    }
}

fn code(result: Result<B256, RoleError>) -> String {
    match result {
        Ok(hash) => panic!("applied ({hash}), expected a refusal"),
        Err(RoleError::Node(e)) => e.code().unwrap_or("none").to_string(),
        Err(e) => panic!("{e}"),
    }
}

/// Noise of an honest update's size: uniform values in ±0.01 (honest pseudo-gradients of the
/// tiny run are of that order), compressed the way miners compress.
fn noise_update(spec: &RunSpec, round: u64) -> Vec<u8> {
    let n = spec.model.parameter_count();
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ round;
    let noise: Vec<f32> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.02
        })
        .collect();
    ErrorFeedback::new(n)
        .compress(&noise, &spec.codec)
        .unwrap()
        .to_bytes()
}

#[test]
fn three_miners_and_a_validator_train_through_bad_updates_a_leaving_miner_and_a_restart() {
    let devnet = Devnet::start_with(DevnetOptions {
        storage_nodes: 4,
        ..DevnetOptions::default()
    });
    devnet.wait_for_storage_committee(4);
    let out = devnet.create_subnet(OWNER, OWNER_HOTKEY, Some(20));
    let netuid: u16 = out
        .split("created subnet ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no netuid in {out}"));
    let n = netuid.to_string();
    devnet.ok(&[
        "subnet",
        "set",
        &n,
        "--weights-rate-limit",
        "0",
        "--dev-account",
        "0",
    ]);
    for dev in [HOSTILE, COPIER] {
        devnet.ok(&[
            "neuron",
            "register",
            "--netuid",
            &n,
            "--dev-account",
            &dev.to_string(),
            "--hotkey-dev-account",
            &dev.to_string(),
        ]);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let node = devnet.async_client();
    let net = Net {
        devnet,
        netuid,
        runtime,
        node,
        dir: TestDir::new(),
    };

    // Before a run exists there is nothing to commit to.
    let hostile = dev_signer(HOSTILE);
    let copier = dev_signer(COPIER);
    assert_eq!(code(net.commit(&hostile, 0, B256::ZERO)), "training_no_run");

    let report = net.dir.join("validator-report.json");
    let validator_args = vec![
        "--report".to_string(),
        report.display().to_string(),
        "--rerun".to_string(),
        "8".to_string(),
    ];
    let mut validator = net.role("validator", VALIDATOR, &validator_args);
    let mut miners: Vec<Proc> = MINERS
        .iter()
        .map(|&dev| net.role("miner", dev, &[]))
        .collect();
    // The roles register and load the corpus, then wait for the run.
    for proc in miners.iter_mut().chain(std::iter::once(&mut validator)) {
        proc.wait_for_log("waiting", Duration::from_secs(120));
    }
    net.devnet.ok(&[
        "train",
        "start",
        "--netuid",
        &n,
        "--dev-account",
        &OWNER.to_string(),
        "--aggregator-dev-account",
        &VALIDATOR.to_string(),
        "--run",
        "tiny",
        "--round-blocks",
        &ROUND_BLOCKS.to_string(),
        "--reveal-blocks",
        &REVEAL_BLOCKS.to_string(),
    ]);
    let spec = RunSpec::tiny();

    // Round 0: noise from the hostile hotkey, and a copy of the first honest commit.
    let run = net.run();
    assert_eq!(run.round, 0);
    assert_eq!(
        code(net.commit(&hostile, 1, B256::ZERO)),
        "training_wrong_round"
    );
    let noise = noise_update(&spec, 0);
    net.commit(&hostile, 0, keccak256(&noise))
        .expect("noise commit (before the deadline)");
    let run = net.wait(
        "an honest commit in round 0",
        240,
        &[&validator, &miners[0]],
        |r| {
            r.round == 0
                && r.updates
                    .iter()
                    .any(|u| MINERS.iter().any(|&m| dev_address(m) == u.hotkey))
        },
    );
    let first = run
        .updates
        .iter()
        .find(|u| MINERS.iter().any(|&m| dev_address(m) == u.hotkey))
        .unwrap()
        .clone();
    net.commit(&copier, 0, first.update_hash)
        .expect("the copier commits the same hash");
    let run = net.wait("round 0's reveals", 120, &[&validator], |r| {
        net.height() > r.deadline
            && r.updates
                .iter()
                .any(|u| u.hotkey == first.hotkey && u.blob_id.is_some())
    });
    assert_eq!(
        code(net.commit(&hostile, 0, B256::repeat_byte(1))),
        "training_commit_closed"
    );
    let honest_blob = run
        .updates
        .iter()
        .find(|u| u.hotkey == first.hotkey)
        .unwrap()
        .blob_id
        .unwrap();
    net.reveal(&copier, 0, honest_blob);
    let noise_blob = net.store(&hostile, &noise);
    net.reveal(&hostile, 0, noise_blob);

    // Round 1: a malformed update (the right size, garbage inside), and one miner leaves.
    net.wait("round 1", 300, &[&validator], |r| r.round == 1);
    miners[2].kill_9();
    miners.push(net.role("miner", LATE_MINER, &[]));
    let mut malformed = noise.clone();
    malformed[0] ^= 0xff;
    net.commit(&hostile, 1, keccak256(&malformed))
        .expect("malformed commit");
    net.wait("round 1's deadline", 120, &[&validator], |r| {
        net.height() > r.deadline
    });
    let blob = net.store(&hostile, &malformed);
    net.reveal(&hostile, 1, blob);

    // Round 2: an oversized update; the validator is killed and restarted, and picks the run up
    // from the chain.
    net.wait("round 2", 300, &[&validator], |r| r.round == 2);
    validator.kill_9();
    let report_after = net.dir.join("validator-report-restarted.json");
    let mut validator = net.role(
        "validator",
        VALIDATOR,
        &[
            "--report".to_string(),
            report_after.display().to_string(),
            "--rerun".to_string(),
            "8".to_string(),
        ],
    );
    let mut oversized = noise.clone();
    oversized.extend_from_slice(&[0u8; 4096]);
    assert!(oversized.len() as u64 > spec.max_update_bytes());
    net.commit(&hostile, 2, keccak256(&oversized))
        .expect("oversized commit");
    net.wait("round 2's deadline", 120, &[&validator], |r| {
        net.height() > r.deadline
    });
    let blob = net.store(&hostile, &oversized);
    net.reveal(&hostile, 2, blob);
    let run = net.wait("round 3", 300, &[&validator, &miners[0], &miners[1]], |r| {
        r.round == ROUNDS
    });
    assert_eq!(run.history.len() as u64, ROUNDS + 1);

    // What the validator decided, round by round.
    let read = |path: &std::path::Path| -> Vec<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let mut reports = read(&report);
    reports.retain(|r| r["round"].as_u64() < Some(2));
    reports.extend(read(&report_after).into_iter().filter(|r| r["round"] == 2));
    eprintln!("{}", serde_json::to_string_pretty(&reports).unwrap());
    assert_eq!(reports.len(), 3, "one report per round: {reports:#?}");
    let update = |round: usize, dev: u32| -> Option<serde_json::Value> {
        reports[round]["updates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| {
                u["hotkey"]
                    .as_str()
                    .unwrap()
                    .eq_ignore_ascii_case(&dev_address(dev).to_string())
            })
            .cloned()
    };
    let verdict = |round: usize, dev: u32| -> String {
        update(round, dev).map_or("absent".to_string(), |u| {
            u["verdict"].as_str().unwrap().to_string()
        })
    };
    // Honest miners: accepted, and re-run to the same bytes (round 1's re-run starts from the
    // residual round 0 left: the residual rule holds end to end).
    for dev in MINERS {
        assert_eq!(verdict(0, dev), "accepted", "round 0, miner {dev}");
        assert_eq!(
            update(0, dev).unwrap()["rerun"],
            true,
            "round 0, miner {dev}"
        );
    }
    for dev in &MINERS[..2] {
        assert_eq!(verdict(1, *dev), "accepted", "round 1, miner {dev}");
        assert_eq!(
            update(1, *dev).unwrap()["rerun"],
            true,
            "round 1, miner {dev}"
        );
        assert_eq!(
            verdict(2, *dev),
            "accepted",
            "round 2 (restarted validator), miner {dev}"
        );
    }
    // Noise and the copy are proved fake by re-running them (a validator that re-runs no one
    // gives them `zero` and `copy`: tests/round.rs in mycel-train).
    assert!(
        verdict(0, HOSTILE).starts_with("fake"),
        "noise: {}",
        verdict(0, HOSTILE)
    );
    assert!(
        verdict(0, COPIER).starts_with("fake"),
        "copy: {}",
        verdict(0, COPIER)
    );
    assert!(
        verdict(1, HOSTILE).starts_with("malformed"),
        "{}",
        verdict(1, HOSTILE)
    );
    assert_eq!(verdict(1, MINERS[2]), "absent", "the miner that left");
    // A miner joining in round 1 starts from a zero residual: accepted, and re-run to its bytes.
    assert_eq!(verdict(1, LATE_MINER), "accepted", "the miner that joined");
    assert_eq!(update(1, LATE_MINER).unwrap()["rerun"], true);
    assert_eq!(verdict(2, LATE_MINER), "accepted");
    assert!(
        verdict(2, HOSTILE).starts_with("unreadable") && verdict(2, HOSTILE).contains("over"),
        "{}",
        verdict(2, HOSTILE)
    );
    // Weights go to accepted updates only.
    let uid = |dev: u32| update(0, dev).and_then(|u| u["uid"].as_u64()).unwrap();
    let weighted: Vec<u64> = reports[0]["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w[0].as_u64().unwrap())
        .collect();
    assert!(
        !weighted.contains(&uid(HOSTILE)) && !weighted.contains(&uid(COPIER)),
        "{weighted:?}"
    );
    assert_eq!(weighted.len(), 3, "{weighted:?}");
    // The held-out loss falls every round, and by at least 0.05 nat over the three.
    let loss = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
    for r in &reports {
        assert!(
            loss(r, "held_out_after") < loss(r, "held_out_before"),
            "{r}"
        );
    }
    let (start, end) = (
        loss(&reports[0], "held_out_before"),
        loss(&reports[2], "held_out_after"),
    );
    eprintln!("held-out loss {start:.4} -> {end:.4} over {ROUNDS} rounds");
    assert!(end < start - 0.05, "held-out loss {start} -> {end}");

    // The last checkpoint exports as a GGUF that mycel's inference loads and runs.
    let gguf = net.dir.join("trained.gguf");
    net.devnet.ok(&[
        "train",
        "export",
        &ROUNDS.to_string(),
        "--netuid",
        &n,
        "-o",
        &gguf.display().to_string(),
        "--cache",
        &net.dir.join("cache-export").display().to_string(),
    ]);
    let model = gguf.display().to_string();
    let info = mycel_testkit::mycel::run(&["model", "info", "--model", &model]);
    assert!(
        info.status.success(),
        "{}",
        mycel_testkit::mycel::stderr(&info)
    );
    assert!(
        mycel_testkit::mycel::stdout(&info).contains("llama"),
        "{info:?}"
    );
    let generated = mycel_testkit::mycel::run(&[
        "model",
        "generate",
        "--model",
        &model,
        "--max-tokens",
        "4",
        "The Congress",
    ]);
    assert!(
        generated.status.success(),
        "{}",
        mycel_testkit::mycel::stderr(&generated)
    );
    validator.terminate(Duration::from_secs(10));
    for m in &mut miners {
        m.terminate(Duration::from_secs(10));
    }
}

/// `mycel up --train`: the devnet's own training subnet runs rounds by itself, its validator
/// accepting both miners' updates and re-running one of them to the same bytes.
#[test]
fn mycel_up_train_runs_rounds_on_its_own() {
    let devnet = Devnet::start_with(DevnetOptions {
        storage_nodes: 4,
        start_timeout: Duration::from_secs(180),
        ..DevnetOptions::default().args(&["--train"])
    });
    // A second validator, not the aggregator: it computes every checkpoint itself and compares
    // it with the published one. It joins once the run exists.
    let dir = TestDir::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !devnet
        .mycel(&["train", "status", "--netuid", "1"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "no training run:\n{}",
            devnet.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let checker_report = dir.join("checker.json");
    let args: Vec<String> = [
        "train",
        "validator",
        "--netuid",
        "1",
        "--dev-account",
        "8",
        "--rpc",
        devnet.rpc(),
        "--threads",
        "1",
        "--rerun",
        "0",
        "--report",
        &checker_report.display().to_string(),
        "--cache",
        &dir.join("cache").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut checker = Proc::mycel("train validator 8", &args, "warn", &dir.join("checker.log"));
    let report = devnet.data_dir().join("train/validator-report.json");
    let deadline = Instant::now() + Duration::from_secs(400);
    let round0 = loop {
        let reports: Vec<serde_json::Value> = std::fs::read(&report)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        if let Some(r) = reports
            .into_iter()
            .find(|r| r["round"] == 0 && r["published"].is_string())
        {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no round published:\n{}",
            devnet.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let updates = round0["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 2, "{round0}");
    assert!(
        updates.iter().all(|u| u["verdict"] == "accepted"),
        "{round0}"
    );
    assert_eq!(
        updates.iter().filter(|u| u["rerun"] == true).count(),
        1,
        "{round0}"
    );
    assert!(
        round0["held_out_after"].as_f64() < round0["held_out_before"].as_f64(),
        "{round0}"
    );
    let status = devnet.ok(&["train", "status", "--netuid", "1"]);
    assert!(status.contains("round        1"), "{status}");
    // The second validator's checkpoint for round 0 is the published one, bit for bit.
    let deadline = Instant::now() + Duration::from_secs(120);
    let checked = loop {
        let reports: Vec<serde_json::Value> = std::fs::read(&checker_report)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        if let Some(r) = reports
            .into_iter()
            .find(|r| r["round"] == 0 && !r["verified"].is_null())
        {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the second validator did not check round 0:\n{}",
            checker.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(checked["verified"], true, "{checked}");
    assert_eq!(
        checked["next_checkpoint_hash"],
        round0["next_checkpoint_hash"]
    );
    checker.terminate(Duration::from_secs(10));
}
