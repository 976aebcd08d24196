//! The incentive-layer commands of the real `mycel` binary against a real devnet (`mycel up`) on
//! loopback: a subnet with 3 miners and 2 validators, stake, weights, epochs, and emission that
//! arrives where the metagraph says; commit-reveal; and the error paths.

use alloy_primitives::Address;
use mycel_state::subnets::EpochSchedule;
use mycel_testkit::mycel::{assert_fails_with, assert_ok, stdout};
use mycel_testkit::{dev_address, units, Devnet};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

/// `mycel ARGS` with none of the user's MYCEL_* settings.
fn mycel(args: &[&str]) -> Output {
    mycel_testkit::mycel::run(args)
}

fn same_address(value: &Value, address: Address) -> bool {
    value.as_str().and_then(|s| s.parse::<Address>().ok()) == Some(address)
}

// ---------------------------------------------------------------- the devnet

/// Runs several commands at once on `net` (different signers, so their nonces do not collide);
/// each must succeed. Their stdouts, in order.
fn ok_all(net: &Devnet, commands: &[Vec<String>]) -> Vec<String> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = commands
            .iter()
            .map(|args| {
                scope.spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    net.mycel(&args)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let out = h.join().expect("thread");
                assert_ok(&out);
                stdout(&out)
            })
            .collect()
    })
}

fn args(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

// ---------------------------------------------------------------- no node needed

#[test]
fn help_and_bad_command_lines() {
    let out = mycel(&["--help"]);
    assert_ok(&out);
    for command in [
        "subnet",
        "neuron",
        "stake",
        "weights",
        "metagraph",
        "emission",
    ] {
        assert!(
            stdout(&out).contains(&format!("  {command} ")),
            "--help lacks {command}"
        );
    }
    let out = mycel(&["subnet", "set", "--help"]);
    assert_ok(&out);
    for flag in [
        "--tempo",
        "--kappa",
        "--immunity-period",
        "--max-uids",
        "--max-validators",
        "--weights-rate-limit",
        "--commit-reveal",
        "--reveal-period",
        "--bonds-moving-average",
        "--bonds-penalty",
        "--liquid-alpha",
        "--alpha-low",
        "--alpha-high",
        "--alpha-sigmoid-steepness",
        "--yuma3",
        "--activity-cutoff",
        "--weights-version-key",
        "--target-regs-per-interval",
        "--adjustment-interval",
        "--registration-allowed",
        "--dev-account",
        "--key",
        "--no-wait",
        "--rpc",
        "--json",
    ] {
        assert!(
            stdout(&out).contains(flag),
            "subnet set --help lacks {flag}"
        );
    }
    let out = mycel(&["weights", "commit", "--help"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("--commits-dir") && stdout(&out).contains("MYCEL_COMMITS"));

    // Refused before any node is contacted (nothing listens on port 1).
    let dead = "http://127.0.0.1:1";
    let cases: &[(&[&str], &str)] = &[
        (
            &["subnet", "set", "1", "--dev-account", "0"],
            "at least one hyperparameter",
        ),
        (&["subnet", "create"], "say who signs"),
        (
            &["subnet", "create", "--dev-account", "12"],
            "does not exist",
        ),
        (
            &[
                "subnet",
                "set",
                "1",
                "--commit-reveal",
                "maybe",
                "--dev-account",
                "0",
            ],
            "invalid value 'maybe'",
        ),
        (
            &["neuron", "register", "--netuid", "1", "--dev-account", "1"],
            "which hotkey",
        ),
        (
            &[
                "neuron",
                "register",
                "--netuid",
                "1",
                "--hotkey",
                "0x12",
                "--dev-account",
                "1",
            ],
            "not an address",
        ),
        (
            &[
                "weights",
                "set",
                "--netuid",
                "1",
                "--weights",
                "1=0,2=0",
                "--dev-account",
                "4",
            ],
            "every weight is 0",
        ),
        (
            &[
                "weights",
                "set",
                "--netuid",
                "1",
                "--weights",
                "1=1,1=2",
                "--dev-account",
                "4",
            ],
            "UID 1 is given twice",
        ),
        (
            &[
                "weights",
                "set",
                "--netuid",
                "1",
                "--weights",
                "one=1",
                "--dev-account",
                "4",
            ],
            "not a UID",
        ),
        (
            &[
                "stake",
                "add",
                "--netuid",
                "1",
                "--hotkey-dev-account",
                "4",
                "--amount",
                "1.2.3",
                "--dev-account",
                "4",
            ],
            "bad --amount",
        ),
        (
            &[
                "stake",
                "add",
                "--netuid",
                "1",
                "--hotkey-dev-account",
                "4",
                "--amount",
                "1",
                "--limit-price",
                "0",
                "--dev-account",
                "4",
            ],
            "leave the flag out",
        ),
        (
            &[
                "neuron",
                "serve",
                "--netuid",
                "1",
                "--host",
                "h",
                "--port",
                "0",
                "--dev-account",
                "4",
            ],
            "--port 0",
        ),
        (&["metagraph", "1"], "cannot reach the node"),
    ];
    for (argv, needle) in cases {
        let mut all = argv.to_vec();
        all.extend(["--rpc", dead]);
        assert_fails_with(&mycel(&all), needle);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let commits = dir.path().to_str().expect("utf-8 path");
    assert_fails_with(
        &mycel(&[
            "weights",
            "reveal",
            "--netuid",
            "1",
            "--dev-account",
            "4",
            "--commits-dir",
            commits,
            "--rpc",
            dead,
        ]),
        "no saved commit",
    );
}

// ---------------------------------------------------------------- end to end

/// The block of the last epoch of subnet `netuid` with `tempo` at or before `block`.
fn last_epoch_block(block: u64, netuid: u16, tempo: u64) -> u64 {
    EpochSchedule::new(netuid, tempo)
        .last_epoch_at(block)
        .expect("an epoch ran at or before the block")
}

fn neuron_by_hotkey(graph: &Value, hotkey: Address) -> &Value {
    graph["neurons"]
        .as_array()
        .expect("neurons")
        .iter()
        .find(|n| same_address(&n["hotkey"], hotkey))
        .unwrap_or_else(|| panic!("{hotkey} not in the metagraph: {graph:#}"))
}

#[test]
fn subnet_neurons_stake_weights_and_emission_on_a_devnet() {
    let started = Instant::now();
    let net = Devnet::start();
    const TEMPO: u64 = 4;
    let (owner, owner_hot) = (0u32, 9u32);
    let miners = [1u32, 2, 3];
    let validators = [4u32, 5];

    // A subnet, owned by dev account 0 with hotkey 9 as UID 0.
    let out = net.ok(&[
        "subnet",
        "create",
        "--dev-account",
        &owner.to_string(),
        "--hotkey-dev-account",
        &owner_hot.to_string(),
    ]);
    assert!(out.contains("created subnet 1"), "{out}");
    let list = net.json(&["subnet", "list"]);
    assert_eq!(list["subnets"][0]["netuid"], 1);
    assert!(same_address(
        &list["subnets"][0]["owner"],
        dev_address(owner)
    ));

    // Hyperparameters: only the owner, only within bounds.
    let out = net.ok(&[
        "subnet",
        "set",
        "1",
        "--tempo",
        "4",
        "--weights-rate-limit",
        "0",
        "--dev-account",
        "0",
    ]);
    assert!(out.contains("tempo = 4, weights_rate_limit = 0"), "{out}");
    // --json: the finalized transaction as the node reports it; --no-wait: just the hash.
    let done = net.json(&[
        "subnet",
        "set",
        "1",
        "--activity-cutoff",
        "4000",
        "--dev-account",
        "0",
    ]);
    assert_eq!(done["status"], "finalized", "{done:#}");
    let events = done["receipt"]["events"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e["action"] == "subnet_params_set"),
        "{done:#}"
    );
    let out = net.ok(&[
        "subnet",
        "set",
        "1",
        "--activity-cutoff",
        "5000",
        "--no-wait",
        "--dev-account",
        "0",
    ]);
    let hash = out.trim();
    assert!(hash.starts_with("0x") && hash.len() == 66, "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while net.json(&["subnet", "show", "1"])["params"]["activity_cutoff"] != 5000 {
        assert!(Instant::now() < deadline, "{hash} never applied");
        std::thread::sleep(Duration::from_millis(200));
    }
    let show = net.json(&["subnet", "show", "1"]);
    assert_eq!(show["params"]["tempo"], TEMPO);
    assert_eq!(show["params"]["weights_rate_limit"], 0);
    assert_fails_with(
        &net.mycel(&["subnet", "set", "1", "--tempo", "9", "--dev-account", "1"]),
        "only the owner",
    );
    assert_fails_with(
        &net.mycel(&[
            "subnet",
            "set",
            "1",
            "--kappa",
            "70000",
            "--dev-account",
            "0",
        ]),
        "outside [0, 65535]",
    );
    // Unknown netuids, in queries and transactions.
    assert_fails_with(&net.mycel(&["subnet", "show", "7"]), "unknown_subnet");
    assert_fails_with(&net.mycel(&["metagraph", "7"]), "subnet 7 does not exist");
    assert_fails_with(
        &net.mycel(&[
            "neuron",
            "register",
            "--netuid",
            "7",
            "--hotkey-dev-account",
            "1",
            "--dev-account",
            "1",
        ]),
        "subnet 7 does not exist",
    );

    // Three miners and two validators, each its own coldkey and hotkey, registered at once.
    let registered = ok_all(&net,
        &miners
            .iter()
            .chain(&validators)
            .map(|i| args(&format!("neuron register --netuid 1 --hotkey-dev-account {i} --max-burn 10 --dev-account {i}")))
            .collect::<Vec<_>>(),
    );
    for out in &registered {
        assert!(out.contains("on subnet 1 as UID"), "{out}");
    }
    assert_fails_with(
        &net.mycel(&[
            "neuron",
            "register",
            "--netuid",
            "1",
            "--hotkey-dev-account",
            "1",
            "--dev-account",
            "1",
        ]),
        "already registered",
    );
    let graph = net.json(&["metagraph", "1"]);
    let uid = |i: u32| {
        neuron_by_hotkey(&graph, dev_address(i))["uid"]
            .as_u64()
            .expect("uid")
    };
    assert_eq!(uid(owner_hot), 0);
    let miner_uids: Vec<u64> = miners.iter().map(|&i| uid(i)).collect();

    // Miners announce their endpoints; validators stake (100 and 50 MYC).
    let mut commands: Vec<Vec<String>> = miners
        .iter()
        .map(|i| {
            args(&format!(
                "neuron serve --netuid 1 --host 127.0.0.1 --port {} --protocol http --dev-account {i}",
                9000 + i
            ))
        })
        .collect();
    commands.push(args(
        "stake add --netuid 1 --hotkey-dev-account 4 --amount 100 --dev-account 4",
    ));
    commands.push(args(
        "stake add --netuid 1 --hotkey-dev-account 5 --amount 50 --limit-price 10 --dev-account 5",
    ));
    let outs = ok_all(&net, &commands);
    assert!(
        outs[0].contains("serves at http://127.0.0.1:9001"),
        "{}",
        outs[0]
    );
    assert!(
        outs[3].contains("staked 100 MYC") && outs[3].contains("position now:"),
        "{}",
        outs[3]
    );
    let listed = net.ok(&["neuron", "list", "--netuid", "1"]);
    assert!(listed.contains("http://127.0.0.1:9003"), "{listed}");
    let stakes = net.json(&["stake", "list", "--dev-account", "4"]);
    let staked_alpha = units(&stakes["stakes"][0]["alpha"]);
    assert!(staked_alpha > 0, "{stakes:#}");
    // A limit the pool price already breaks is refused at once.
    assert_fails_with(
        &net.mycel(&[
            "stake",
            "add",
            "--netuid",
            "1",
            "--hotkey-dev-account",
            "4",
            "--amount",
            "1",
            "--limit-price",
            "0.000001",
            "--dev-account",
            "6",
        ]),
        "price_already_beyond_limit",
    );

    // Validators weigh miners 1 and 2 (not 3).
    let (m1, m2, m3) = (miner_uids[0], miner_uids[1], miner_uids[2]);
    let outs = ok_all(
        &net,
        &[
            args(&format!(
                "weights set --netuid 1 --weights {m1}=1,{m2}=0.5 --dev-account 4"
            )),
            args(&format!(
                "weights set --netuid 1 --weights {m1}=1,{m2}=1 --dev-account 5"
            )),
        ],
    );
    assert!(
        outs[0].contains(&format!("{m1}=65535,{m2}=32768")),
        "{}",
        outs[0]
    );
    // Bad weights: a UID that does not exist, a hotkey that is not registered.
    assert_fails_with(
        &net.mycel(&[
            "weights",
            "set",
            "--netuid",
            "1",
            "--weights",
            "99=1",
            "--dev-account",
            "4",
        ]),
        "uid 99 does not exist",
    );
    assert_fails_with(
        &net.mycel(&[
            "weights",
            "set",
            "--netuid",
            "1",
            "--weights",
            "1=1",
            "--dev-account",
            "8",
        ]),
        "is not registered on subnet 1",
    );
    assert_fails_with(
        &net.mycel(&[
            "weights",
            "set",
            "--netuid",
            "7",
            "--weights",
            "1=1",
            "--dev-account",
            "4",
        ]),
        "subnet 7 does not exist",
    );
    let weights_block = net.height();

    // Epoch 1 after the weights gives validator permits (from stake), epoch 2 counts the
    // weights. Then follow one more epoch: between two consecutive epochs nothing but the epoch
    // changes a position, so each UID's alpha grows by exactly the metagraph's emission.
    let first_counted =
        last_epoch_block(weights_block, 1, TEMPO) + 2 * EpochSchedule::new(1, TEMPO).period();
    net.wait_for_height(first_counted, Duration::from_secs(120));
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut before: Option<(u64, Value)> = None;
    let (after_epoch, after) = loop {
        assert!(
            Instant::now() < deadline,
            "no two consecutive epochs seen; log:\n{}",
            net.log_tail()
        );
        let graph = net.json(&["metagraph", "1"]);
        let epoch = last_epoch_block(graph["block"].as_u64().expect("block"), 1, TEMPO);
        match &before {
            Some((e, _)) if epoch == EpochSchedule::new(1, TEMPO).next_epoch_at(*e) => {
                break (epoch, graph)
            }
            Some((e, _)) if epoch == *e => {}
            _ => before = Some((epoch, graph)),
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let (_, before) = before.expect("a snapshot");
    for n in after["neurons"].as_array().expect("neurons") {
        let hotkey: Address = n["hotkey"]
            .as_str()
            .expect("hotkey")
            .parse()
            .expect("address");
        let grew = units(&n["alpha"]) - units(&neuron_by_hotkey(&before, hotkey)["alpha"]);
        if hotkey == dev_address(owner_hot) {
            // The owner's hotkey also collects the epoch's owner cut (18% of the subnet's alpha).
            assert!(grew > units(&n["emission"]), "owner hotkey: {n}");
            continue;
        }
        assert_eq!(
            grew,
            units(&n["emission"]),
            "UID {} at epoch {after_epoch}",
            n["uid"]
        );
    }
    let at = |i: u32| neuron_by_hotkey(&after, dev_address(i));
    for (&i, m) in miners.iter().zip(&miner_uids) {
        let n = at(i);
        if *m == m3 {
            assert_eq!(n["incentive"], 0, "unweighted miner: {n}");
            assert_eq!(units(&n["emission"]), 0, "unweighted miner: {n}");
        } else {
            assert!(
                n["incentive"].as_u64().expect("incentive") > 0,
                "miner: {n}"
            );
            assert!(
                n["consensus"].as_u64().expect("consensus") > 0,
                "miner: {n}"
            );
            assert!(units(&n["emission"]) > 0, "miner: {n}");
            assert!(units(&n["alpha"]) > 0, "miner: {n}");
        }
    }
    // Miner 1 has more weight behind it than miner 2.
    assert!(at(miners[0])["incentive"].as_u64() > at(miners[1])["incentive"].as_u64());
    for &i in &validators {
        let n = at(i);
        assert_eq!(n["validator_permit"], true, "validator: {n}");
        assert!(
            n["dividends"].as_u64().expect("dividends") > 0,
            "validator: {n}"
        );
        assert!(
            n["validator_trust"].as_u64().expect("vtrust") > 0,
            "validator: {n}"
        );
        assert!(units(&n["emission"]) > 0, "validator: {n}");
    }
    // The coldkey's position is the hotkey's whole alpha (it is the only staker).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "no stake list and metagraph of one epoch"
        );
        let stakes = net.json(&["stake", "list", "--dev-account", "4"]);
        let graph = net.json(&["metagraph", "1"]);
        let (h1, h2) = (
            stakes["height"].as_u64().expect("height"),
            graph["block"].as_u64().expect("block"),
        );
        if last_epoch_block(h1, 1, TEMPO) == last_epoch_block(h2, 1, TEMPO) {
            assert_eq!(
                units(&stakes["stakes"][0]["alpha"]),
                units(&neuron_by_hotkey(&graph, dev_address(4))["alpha"])
            );
            assert!(units(&stakes["stakes"][0]["alpha"]) > staked_alpha);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // The emission receipt of an epoch block: every part adds up, and the epoch's payouts are
    // the metagraph's emission.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (receipt, graph) = loop {
        assert!(Instant::now() < deadline, "no epoch receipt seen");
        let emission = net.json(&["emission"]);
        let receipt = emission["latest_receipt"].clone();
        if receipt["subnets"][0]["epoch"].is_object() {
            let graph = net.json(&["metagraph", "1"]);
            let h = receipt["height"].as_u64().expect("height");
            if last_epoch_block(graph["block"].as_u64().expect("block"), 1, TEMPO) == h {
                break (receipt, graph);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let sum = |items: &Value, field: &str| -> u128 {
        items
            .as_array()
            .expect("array")
            .iter()
            .map(|x| units(&x[field]))
            .sum()
    };
    assert_eq!(
        sum(&receipt["subnets"], "myc_share") + units(&receipt["myc_unassigned"]),
        units(&receipt["block_emission"])
    );
    assert!(units(&receipt["block_emission"]) > 0);
    let s = &receipt["subnets"][0];
    assert_eq!(
        units(&s["myc_injected"]) + units(&s["myc_recycled"]),
        units(&s["myc_share"])
    );
    assert_eq!(
        units(&s["owner_cut"]) + units(&s["pending_added"]),
        units(&s["alpha_emission"])
    );
    let epoch = &s["epoch"];
    assert_eq!(
        units(&epoch["owner_cut"])
            + sum(&epoch["neurons"], "incentive")
            + sum(&epoch["neurons"], "dividends")
            + units(&epoch["recycled"]),
        units(&epoch["paid"])
    );
    let mut paid_by_uid = BTreeMap::new();
    for n in epoch["neurons"].as_array().expect("neurons") {
        assert_eq!(
            units(&n["take"]) + units(&n["to_stakers"]),
            units(&n["dividends"]),
            "{n}"
        );
        paid_by_uid.insert(
            n["uid"].as_u64().expect("uid"),
            units(&n["incentive"]) + units(&n["dividends"]),
        );
    }
    for n in graph["neurons"].as_array().expect("neurons") {
        let uid = n["uid"].as_u64().expect("uid");
        assert_eq!(
            paid_by_uid.get(&uid).copied().unwrap_or(0),
            units(&n["emission"]),
            "UID {uid}: receipt {epoch:#} metagraph {n}"
        );
    }
    assert!(paid_by_uid[&m1] > 0 && paid_by_uid[&uid(4)] > 0);

    // The history the node keeps: every epoch adds up, pages go back in time, and miner 1's
    // payouts over all its epochs are its whole alpha (it never staked nor unstaked).
    let epochs = net.http_get("/v1/subnets/1/epochs");
    let list = epochs["epochs"].as_array().expect("epochs");
    assert!(list.len() >= 3, "{epochs}");
    for e in list {
        let epoch = &e["epoch"];
        assert_eq!(
            units(&epoch["owner_cut"])
                + sum(&epoch["neurons"], "incentive")
                + sum(&epoch["neurons"], "dividends")
                + units(&epoch["recycled"]),
            units(&epoch["paid"]),
            "{e}"
        );
        let h = e["height"].as_u64().unwrap();
        assert_eq!(last_epoch_block(h, 1, TEMPO), h, "an epoch block: {h}");
    }
    let heights: Vec<u64> = list.iter().map(|e| e["height"].as_u64().unwrap()).collect();
    assert!(
        heights.windows(2).all(|w| w[0] > w[1]),
        "newest first: {heights:?}"
    );
    let first = net.http_get("/v1/subnets/1/epochs?limit=1");
    let next = first["next_before"].as_u64().expect("next_before");
    assert_eq!(next, heights[0]);
    let second = net.http_get(&format!("/v1/subnets/1/epochs?limit=1&before={next}"));
    assert_eq!(second["epochs"][0]["height"], heights[1]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "no metagraph and history of one epoch"
        );
        let history = net.http_get(&format!("/v1/subnets/1/neurons/{m1}/emissions"));
        let graph = net.json(&["metagraph", "1"]);
        let last = last_epoch_block(graph["block"].as_u64().unwrap(), 1, TEMPO);
        if history["epochs"][0]["height"].as_u64() == Some(last) {
            let paid: u128 = history["epochs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| units(&e["incentive"]) + units(&e["dividends"]))
                .sum();
            assert!(history["next_before"].is_null(), "one page holds them all");
            assert_eq!(
                paid,
                units(&neuron_by_hotkey(&graph, dev_address(miners[0]))["alpha"]),
                "miner 1's payouts add up to its alpha: {history}"
            );
            assert!(paid > 0);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let receipts = net.http_get("/v1/emission/receipts?limit=3");
    let r = receipts["receipts"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    let top = r[0]["height"].as_u64().unwrap();
    assert_eq!(r[2]["height"].as_u64().unwrap(), top - 2, "one a block");
    assert_eq!(net.http_get(&format!("/v1/emission/receipts/{top}")), r[0]);
    let status = mycel_testkit::http::block_on(async {
        reqwest::get(format!("{}/v1/emission/receipts/0", net.rpc()))
            .await
            .expect("GET")
            .status()
            .as_u16()
    });
    assert_eq!(status, 404, "nothing before the first subnet");

    // The people's views.
    let table = net.ok(&["metagraph", "1"]);
    for needle in ["UID", "INCENT", "DIVS", "EMISSION", "http://127.0.0.1:9002"] {
        assert!(table.contains(needle), "metagraph lacks {needle}:\n{table}");
    }
    let text = net.ok(&["emission"]);
    assert!(
        text.contains("block emission") && text.contains("subnet 1: share"),
        "{text}"
    );
    let text = net.ok(&["subnet", "show", "1"]);
    assert!(
        text.contains("next epoch") && text.contains("tempo"),
        "{text}"
    );
    let text = net.ok(&["stake", "list"]);
    assert!(text.contains(&dev_address(4).to_checksum(None)), "{text}");

    // Unstake everything: the position is gone and MYC came back.
    let balance = |i: u32| units(&net.json(&["balance", &dev_address(i).to_string()])["myc"]);
    let myc_before = balance(5);
    let out = net.ok(&[
        "stake",
        "remove",
        "--netuid",
        "1",
        "--hotkey-dev-account",
        "5",
        "--amount",
        "all",
        "--dev-account",
        "5",
    ]);
    assert!(out.contains("position now: none"), "{out}");
    assert!(balance(5) > myc_before);
    assert_fails_with(
        &net.mycel(&[
            "stake",
            "remove",
            "--netuid",
            "1",
            "--hotkey-dev-account",
            "5",
            "--amount",
            "all",
            "--dev-account",
            "5",
        ]),
        "nothing to unstake",
    );
    eprintln!("end to end in {:?}", started.elapsed());
}

#[test]
fn weights_commit_then_reveal_on_a_devnet() {
    let net = Devnet::start();
    let commits = tempfile::tempdir().expect("tempdir");
    let dir = commits.path().to_str().expect("utf-8 path");
    net.ok(&["subnet", "create", "--dev-account", "6"]);
    const TEMPO: u64 = 9;
    net.ok(&[
        "subnet",
        "set",
        "1",
        "--tempo",
        "9",
        "--commit-reveal",
        "true",
        "--reveal-period",
        "1",
        "--dev-account",
        "6",
    ]);
    net.ok(&[
        "neuron",
        "register",
        "--netuid",
        "1",
        "--hotkey-dev-account",
        "7",
        "--dev-account",
        "7",
    ]);
    assert_fails_with(
        &net.mycel(&[
            "weights",
            "set",
            "--netuid",
            "1",
            "--weights",
            "0=1,1=1",
            "--dev-account",
            "7",
        ]),
        "uses commit-reveal",
    );

    // Commit early in an epoch, so there is time to try a reveal before its window opens.
    let deadline = Instant::now() + Duration::from_secs(60);
    let since_epoch = |b: u64| EpochSchedule::new(1, TEMPO).last_epoch_at(b).map(|e| b - e);
    while since_epoch(net.height() + 1).is_none_or(|blocks| blocks > 2) {
        assert!(Instant::now() < deadline, "no epoch start seen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = net.ok(&[
        "weights",
        "commit",
        "--netuid",
        "1",
        "--weights",
        "0=1,1=3",
        "--dev-account",
        "7",
        "--commits-dir",
        dir,
    ]);
    assert!(out.contains("committed 0x"), "{out}");
    let files: Vec<_> = std::fs::read_dir(commits.path()).expect("dir").collect();
    assert_eq!(files.len(), 1);
    let path = files[0].as_ref().expect("entry").path();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    assert_eq!(saved["values"], serde_json::json!([21845, 65535]));
    let first = out
        .split("from block ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no reveal block in:\n{out}"));
    assert_eq!(net.json(&["subnet", "show", "1"])["pending_commits"], 1);

    // Too early: the chain says when.
    if net.height() + 3 < first {
        assert_fails_with(
            &net.mycel(&[
                "weights",
                "reveal",
                "--netuid",
                "1",
                "--dev-account",
                "7",
                "--commits-dir",
                dir,
            ]),
            "can be revealed in epoch",
        );
        assert!(path.exists(), "a failed reveal keeps the saved commit");
    }
    net.wait_for_height(
        first - 1,
        Duration::from_secs(3 * EpochSchedule::new(1, TEMPO).period()),
    );
    let out = net.ok(&[
        "weights",
        "reveal",
        "--netuid",
        "1",
        "--dev-account",
        "7",
        "--commits-dir",
        dir,
    ]);
    assert!(
        out.contains("revealed 0x") && out.contains("0=21845,1=65535"),
        "{out}"
    );
    assert!(!path.exists(), "the revealed commit's file is deleted");
    assert_eq!(net.json(&["subnet", "show", "1"])["pending_commits"], 0);
    let graph = net.json(&["metagraph", "1"]);
    let n = neuron_by_hotkey(&graph, dev_address(7));
    assert!(
        n["last_update"].as_u64().expect("last update") >= first,
        "{n}"
    );
    assert_fails_with(
        &net.mycel(&[
            "weights",
            "reveal",
            "--netuid",
            "1",
            "--dev-account",
            "7",
            "--commits-dir",
            dir,
        ]),
        "no saved commit",
    );
}
