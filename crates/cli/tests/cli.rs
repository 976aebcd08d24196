//! The real `mycel` binary: argument parsing, error paths, key management round trips, and the
//! client commands against a small stand-in node that speaks docs/node-api.md.

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use axum::{
    extract::{Path as UrlPath, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use mycel_types::{keys::dev_signer, SignedTx, Token, TxJson, TxKind};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const PASSWORD: &str = "correct horse battery staple";

fn mycel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mycel"))
        .args(args)
        .env_remove("MYCEL_RPC")
        .env_remove("MYCEL_KEYSTORE")
        .env_remove("MYCEL_PASSWORD")
        .output()
        .expect("run mycel")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "expected success\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

#[track_caller]
fn assert_fails_with(out: &Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1\nstdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    assert!(
        stderr(out).contains(needle),
        "stderr lacks {needle:?}:\n{}",
        stderr(out)
    );
}

/// A loopback URL where nothing listens.
fn dead_rpc() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

// ---------------------------------------------------------------- parsing and help

#[test]
fn help_lists_every_command_and_exits_zero() {
    let out = mycel(&["--help"]);
    assert_ok(&out);
    for command in [
        "up", "node", "init", "localnet", "key", "status", "balance", "transfer", "tx", "block",
    ] {
        assert!(
            stdout(&out).contains(&format!("  {command} ")),
            "--help lacks {command}:\n{}",
            stdout(&out)
        );
    }
    let out = mycel(&["transfer", "--help"]);
    assert_ok(&out);
    for flag in [
        "--to",
        "--amount",
        "--token",
        "--memo",
        "--fee",
        "--key",
        "--dev-account",
        "--nonce",
        "--wait",
        "--timeout",
        "--rpc",
        "--json",
        "MYCEL_RPC",
    ] {
        assert!(stdout(&out).contains(flag), "transfer --help lacks {flag}");
    }
    let out = mycel(&["key", "new", "--help"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("--password-file") && stdout(&out).contains("MYCEL_KEYSTORE"));
    assert_ok(&mycel(&["--version"]));
}

#[test]
fn bad_command_lines_exit_one() {
    assert_fails_with(&mycel(&["frobnicate"]), "unrecognized subcommand");
    assert_fails_with(&mycel(&["balance"]), "ADDRESS");
    assert_fails_with(&mycel(&["block", "newest"]), "neither a block height");
    assert_fails_with(&mycel(&["tx", "0x1234"]), "HASH");
    assert_fails_with(
        &mycel(&[
            "transfer",
            "--to",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "--amount",
            "1",
        ]),
        "--dev-account",
    );
    assert_fails_with(
        &mycel(&[
            "transfer",
            "--to",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "--amount",
            "1",
            "--token",
            "ETH",
            "--dev-account",
            "0",
        ]),
        "use MYC or mUSD",
    );
}

#[test]
fn bad_values_are_refused_before_contacting_the_node() {
    let rpc = dead_rpc();
    let to = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let transfer = |extra: &[&str]| {
        let mut args = vec!["transfer", "--rpc", &rpc, "--to", to];
        args.extend_from_slice(extra);
        mycel(&args)
    };
    assert_fails_with(
        &transfer(&["--amount", "1.5.0", "--dev-account", "0"]),
        "is not an amount",
    );
    assert_fails_with(
        &transfer(&[
            "--amount",
            "0.0000001",
            "--token",
            "mUSD",
            "--dev-account",
            "0",
        ]),
        "more than 6 decimal places",
    );
    assert_fails_with(
        &transfer(&["--amount", "1", "--fee", "lots", "--dev-account", "0"]),
        "bad --fee",
    );
    assert_fails_with(
        &transfer(&["--amount", "1", "--dev-account", "10"]),
        "development accounts are 0 to 9",
    );
    assert_fails_with(
        &transfer(&[
            "--amount",
            "1",
            "--memo",
            &"x".repeat(257),
            "--dev-account",
            "0",
        ]),
        "256-byte limit",
    );
    assert_fails_with(
        &mycel(&[
            "transfer",
            "--rpc",
            &rpc,
            "--to",
            "0x123",
            "--amount",
            "1",
            "--dev-account",
            "0",
        ]),
        "is not an address",
    );
    assert_fails_with(
        &mycel(&["balance", "0xnothex", "--rpc", &rpc]),
        "is not an address",
    );
    assert_fails_with(&mycel(&["status", "--rpc", "not a url"]), "is not a URL");
}

#[test]
fn unreachable_node_says_what_to_do() {
    let rpc = dead_rpc();
    for args in [
        vec!["status", "--rpc", &rpc],
        vec![
            "balance",
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "--rpc",
            &rpc,
        ],
        vec![
            "tx",
            "0x0000000000000000000000000000000000000000000000000000000000000001",
            "--rpc",
            &rpc,
        ],
        vec!["block", "latest", "--rpc", &rpc, "--json"],
        vec![
            "transfer",
            "--rpc",
            &rpc,
            "--to",
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "--amount",
            "1",
            "--dev-account",
            "0",
        ],
    ] {
        let out = mycel(&args);
        assert_fails_with(
            &out,
            &format!("cannot reach the node at {rpc}: is `mycel up` running?"),
        );
    }
    // MYCEL_RPC is the default for --rpc.
    let out = Command::new(env!("CARGO_BIN_EXE_mycel"))
        .arg("status")
        .env("MYCEL_RPC", &rpc)
        .output()
        .expect("run");
    assert_fails_with(&out, &rpc);
}

// ---------------------------------------------------------------- keys

fn write_password(dir: &Path) -> String {
    let path = dir.join("pw");
    std::fs::write(&path, format!("{PASSWORD}\n")).expect("write password");
    path.to_string_lossy().into_owned()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn key_new_list_export_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let keystore = tmp.path().join("keys");
    let ks = keystore.to_string_lossy().into_owned();
    let pw = write_password(tmp.path());

    let out = mycel(&[
        "key",
        "new",
        "--name",
        "alice",
        "--keystore",
        &ks,
        "--password-file",
        &pw,
    ]);
    assert_ok(&out);
    let address: Address = stdout(&out)
        .trim()
        .parse()
        .expect("key new prints an address");
    let file = keystore.join("alice.json");
    #[cfg(unix)]
    {
        assert_eq!(mode(&file), 0o600, "key file mode");
        assert_eq!(mode(&keystore), 0o700, "keystore dir mode");
    }
    // Nothing but the key file is left behind, and no secret was printed.
    let names: Vec<_> = std::fs::read_dir(&keystore)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("alice.json")]);

    // A standard keystore: any Ethereum tool decrypts it.
    let signer = PrivateKeySigner::decrypt_keystore(&file, PASSWORD).expect("standard keystore");
    assert_eq!(signer.address(), address);
    let secret = alloy_primitives::hex::encode(signer.to_bytes());
    assert!(!stdout(&out).contains(&secret) && !stderr(&out).contains(&secret));
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains("\"scrypt\"") && !text.contains(&secret));

    // A second key with the same name is refused; the first is untouched.
    let out = mycel(&[
        "key",
        "new",
        "--name",
        "alice",
        "--keystore",
        &ks,
        "--password-file",
        &pw,
    ]);
    assert_fails_with(&out, "already exists");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), text);

    let out = mycel(&[
        "key",
        "new",
        "--keystore",
        &ks,
        "--password-file",
        &pw,
        "--json",
    ]);
    assert_ok(&out);
    let bob: Value = serde_json::from_str(&stdout(&out)).expect("json");
    let bob_address = bob["address"].as_str().expect("address").to_string();
    assert_eq!(bob["name"], bob_address, "the default name is the address");

    let out = mycel(&["key", "list", "--keystore", &ks]);
    assert_ok(&out);
    let listing = stdout(&out);
    assert!(
        listing.contains("alice") && listing.contains(&address.to_checksum(None)),
        "{listing}"
    );
    assert!(listing.contains(&bob_address), "{listing}");

    let out = mycel(&["key", "list", "--keystore", &ks, "--json"]);
    assert_ok(&out);
    let rows: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(2));

    // export-address by name (env keystore), and by file path.
    let out = Command::new(env!("CARGO_BIN_EXE_mycel"))
        .args(["key", "export-address", "alice"])
        .env("MYCEL_KEYSTORE", &ks)
        .output()
        .expect("run");
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), address.to_checksum(None));
    let out = mycel(&["key", "export-address", &file.to_string_lossy()]);
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), address.to_checksum(None));
    assert_fails_with(
        &mycel(&["key", "export-address", "carol", "--keystore", &ks]),
        "no key named 'carol'",
    );
    assert_fails_with(
        &mycel(&[
            "key",
            "new",
            "--name",
            "../evil",
            "--keystore",
            &ks,
            "--password-file",
            &pw,
        ]),
        "not a valid key name",
    );
}

#[test]
fn key_import_matches_the_dev_account_and_unlocks_only_with_the_passphrase() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ks = tmp.path().join("keys").to_string_lossy().into_owned();
    let pw = write_password(tmp.path());
    let dev = dev_signer(0).expect("dev key");
    let key_file = tmp.path().join("dev0.hex");
    std::fs::write(
        &key_file,
        format!("0x{}\n", alloy_primitives::hex::encode(dev.to_bytes())),
    )
    .expect("write");
    let kf = key_file.to_string_lossy().into_owned();

    let out = mycel(&[
        "key",
        "import",
        "--private-key-file",
        &kf,
        "--name",
        "dev0",
        "--keystore",
        &ks,
        "--password-file",
        &pw,
    ]);
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), dev.address().to_checksum(None));
    #[cfg(unix)]
    assert_eq!(mode(&tmp.path().join("keys/dev0.json")), 0o600);

    // Passphrase through MYCEL_PASSWORD works as well as a file.
    let out = Command::new(env!("CARGO_BIN_EXE_mycel"))
        .args([
            "key",
            "import",
            "--private-key-file",
            &kf,
            "--name",
            "dev0-again",
            "--keystore",
            &ks,
        ])
        .env("MYCEL_PASSWORD", PASSWORD)
        .output()
        .expect("run");
    assert_ok(&out);

    // And through stdin when it is not a terminal.
    let mut child = Command::new(env!("CARGO_BIN_EXE_mycel"))
        .args(["key", "new", "--name", "piped", "--keystore", &ks])
        .env_remove("MYCEL_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"from stdin\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert_ok(&out);
    let piped: Address = stdout(&out).trim().parse().expect("address");
    let signer =
        PrivateKeySigner::decrypt_keystore(tmp.path().join("keys/piped.json"), "from stdin")
            .expect("decrypt");
    assert_eq!(signer.address(), piped);

    // An empty stdin is no passphrase.
    let out = Command::new(env!("CARGO_BIN_EXE_mycel"))
        .args(["key", "new", "--name", "none", "--keystore", &ks])
        .env_remove("MYCEL_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    assert_fails_with(&out, "no passphrase");

    // Signing with the wrong passphrase fails before any node is contacted.
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "nope\n").expect("write");
    let out = mycel(&[
        "transfer",
        "--rpc",
        &dead_rpc(),
        "--to",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "--amount",
        "1",
        "--key",
        "dev0",
        "--keystore",
        &ks,
        "--password-file",
        &wrong.to_string_lossy(),
    ]);
    assert_fails_with(&out, "wrong passphrase");

    // Bad private key files say so without echoing their contents.
    let bad = tmp.path().join("bad.hex");
    std::fs::write(&bad, "deadbeefsecret").expect("write");
    let out = mycel(&[
        "key",
        "import",
        "--private-key-file",
        &bad.to_string_lossy(),
        "--keystore",
        &ks,
        "--password-file",
        &pw,
    ]);
    assert_fails_with(&out, "does not hold a private key");
    assert!(!stderr(&out).contains("deadbeefsecret"));
}

// ---------------------------------------------------------------- against a stand-in node

#[allow(irrefutable_let_patterns)]
fn transfer_of(tx: &SignedTx) -> &mycel_types::Transfer {
    let TxKind::Transfer(t) = &tx.kind else {
        panic!("not a transfer: {tx:?}")
    };
    t
}

#[derive(Clone, Default)]
struct Node {
    txs: Arc<Mutex<Vec<SignedTx>>>,
}

fn status_json() -> Value {
    json!({"chain_id": 1337, "genesis_hash": format!("0x{}", "ab".repeat(32)), "height": 12,
           "hash": format!("0x{}", "cd".repeat(32)), "state_root": format!("0x{}", "ef".repeat(32)),
           "timestamp_ms": 1_764_072_000_000u64, "validators": ["11".repeat(32)], "mempool_size": 0,
           "min_fee": "10000", "max_tx_bytes": 2048})
}

fn api_error(status: StatusCode, code: &str, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
}

async fn submit(State(node): State<Node>, Json(body): Json<TxJson>) -> (StatusCode, Json<Value>) {
    let Ok(tx) = SignedTx::from_json(&body) else {
        return api_error(StatusCode::BAD_REQUEST, "bad_tx", "does not parse");
    };
    if tx.recover_signer() != Some(tx.from()) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad_signature",
            "signature does not recover to the sender",
        );
    }
    if tx.fee() < alloy_primitives::U256::from(10_000u64) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "fee_too_low",
            "fee 1 is below the minimum fee 10000 (MYC base units)",
        );
    }
    let hash = tx.hash();
    node.txs.lock().expect("lock").push(tx);
    (
        StatusCode::ACCEPTED,
        Json(json!({"hash": hash, "status": "pending"})),
    )
}

async fn tx_status(
    State(node): State<Node>,
    UrlPath(hash): UrlPath<String>,
) -> (StatusCode, Json<Value>) {
    let txs = node.txs.lock().expect("lock");
    let Some((index, tx)) = txs
        .iter()
        .enumerate()
        .find(|(_, tx)| tx.hash().to_string() == hash)
    else {
        return api_error(
            StatusCode::NOT_FOUND,
            "unknown_tx",
            "this node has never seen that transaction",
        );
    };
    let t = transfer_of(tx);
    // Memos steer the stand-in: "stuck" never finalizes, "doomed" is rejected.
    match t.memo.as_ref() {
        b"stuck" => {
            return (
                StatusCode::OK,
                Json(json!({"hash": hash, "status": "pending"})),
            )
        }
        b"doomed" => {
            return (
                StatusCode::OK,
                Json(json!({"hash": hash, "status": "rejected",
                    "error": {"code": "insufficient_balance", "message": "MYC balance 0 is short of the 1010000 needed (base units)"}})),
            )
        }
        _ => {}
    }
    let token = if t.token == Token::Musd.address() {
        "mUSD"
    } else {
        "MYC"
    };
    (
        StatusCode::OK,
        Json(
            json!({"hash": hash, "status": "finalized", "height": 13, "index": index,
        "receipt": {"hash": hash, "from": t.from, "nonce": t.nonce, "type": "Transfer",
            "events": [{"event": "transfer", "token": token, "from": t.from, "to": t.to, "amount": t.amount.to_string()},
                       {"event": "fee_burned", "from": t.from, "amount": t.fee.to_string()}]}}),
        ),
    )
}

async fn block(
    State(node): State<Node>,
    UrlPath(height): UrlPath<String>,
) -> (StatusCode, Json<Value>) {
    if height != "latest" && height != "13" {
        return api_error(
            StatusCode::NOT_FOUND,
            "unknown_block",
            "block 99 is above the finalized height 13",
        );
    }
    let txs: Vec<Value> = node
        .txs
        .lock()
        .expect("lock")
        .iter()
        .map(|tx| json!({"hash": tx.hash(), "tx": tx.to_json(), "result": {"ok": {"hash": tx.hash(), "from": tx.from(),
            "nonce": tx.nonce(), "type": "Transfer", "events": [{"event": "fee_burned", "from": tx.from(), "amount": tx.fee().to_string()}]}}}))
        .collect();
    (
        StatusCode::OK,
        Json(
            json!({"height": 13, "hash": format!("0x{}", "13".repeat(32)), "parent": format!("0x{}", "12".repeat(32)),
        "timestamp_ms": 1_764_072_001_000u64, "state_root": format!("0x{}", "aa".repeat(32)), "tx_count": txs.len(), "txs": txs}),
        ),
    )
}

/// Starts the stand-in node on a loopback port; it lives as long as the test process.
fn start_node() -> (String, Node) {
    let node = Node::default();
    let app = Router::new()
        .route("/v1/status", get(|| async { Json(status_json()) }))
        .route(
            "/v1/accounts/{address}",
            get(|UrlPath(address): UrlPath<String>| async move {
                Json(json!({"address": address, "myc": "999998500000000", "musd": "1000000000000", "nonce": 5, "next_nonce": 6,
                            "myc_display": "999998.5", "musd_display": "1000000", "height": 12}))
            }),
        )
        .route("/v1/txs", post(submit))
        .route("/v1/txs/{hash}", get(tx_status))
        .route("/v1/blocks/{height}", get(block))
        .with_state(node.clone());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            sender
                .send(listener.local_addr().expect("addr"))
                .expect("send");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    let addr = receiver.recv().expect("node address");
    (format!("http://{addr}"), node)
}

#[test]
fn status_and_balance_are_readable() {
    let (rpc, _node) = start_node();
    let out = mycel(&["status", "--rpc", &rpc]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.contains("chain id") && text.contains("1337"), "{text}");
    assert!(
        text.contains("min fee") && text.contains("0.00001 MYC"),
        "{text}"
    );
    assert!(text.contains("2025-11-25 12:00:00.000 UTC"), "{text}");

    let out = mycel(&["status", "--rpc", &rpc, "--json"]);
    assert_ok(&out);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&out)).expect("json"),
        status_json()
    );

    let out = mycel(&[
        "balance",
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "--rpc",
        &format!("{rpc}/"),
    ]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("999998.5 MYC") && text.contains("1000000 mUSD"),
        "{text}"
    );
    assert!(
        text.contains("next nonce") && text.contains("6 (1 pending)"),
        "{text}"
    );
}

#[test]
fn transfer_signs_submits_and_waits() {
    let (rpc, node) = start_node();
    let to = dev_signer(1).expect("dev key").address();
    let out = mycel(&[
        "transfer",
        "--rpc",
        &rpc,
        "--to",
        &to.to_string(),
        "--amount",
        "2.5",
        "--token",
        "mUSD",
        "--memo",
        "coffee",
        "--dev-account",
        "0",
        "--wait",
        "--timeout",
        "5",
    ]);
    assert_ok(&out);
    let txs = node.txs.lock().expect("lock").clone();
    assert_eq!(txs.len(), 1);
    let tx = &txs[0];
    assert_eq!(stdout(&out).trim(), tx.hash().to_string());
    assert!(
        stderr(&out).contains("finalized in block 13"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tx.chain_id, 1337);
    assert_eq!(
        tx.recover_signer(),
        Some(dev_signer(0).expect("dev key").address())
    );
    let t = transfer_of(tx);
    assert_eq!(t.to, to);
    assert_eq!(t.token, Token::Musd.address());
    assert_eq!(t.amount, alloy_primitives::U256::from(2_500_000u64));
    assert_eq!(t.memo.as_ref(), b"coffee");
    assert_eq!(
        t.nonce, 6,
        "the nonce is the node's next_nonce (pending txs counted)"
    );
    assert_eq!(
        t.fee,
        alloy_primitives::U256::from(10_000u64),
        "the fee defaults to the node's min_fee"
    );

    // --json without --wait: the node's answer verbatim; --nonce and --fee override the node.
    let out = mycel(&[
        "transfer",
        "--rpc",
        &rpc,
        "--to",
        &to.to_string(),
        "--amount",
        "1",
        "--fee",
        "0.001",
        "--nonce",
        "9",
        "--dev-account",
        "2",
        "--json",
    ]);
    assert_ok(&out);
    let answer: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(answer["status"], "pending");
    let second = node.txs.lock().expect("lock")[1].clone();
    assert_eq!(answer["hash"], second.hash().to_string());
    assert_eq!(second.nonce(), 9);
    assert_eq!(second.fee(), alloy_primitives::U256::from(1_000_000u64));

    // The node's refusal reaches the user with its reason and a hint.
    let out = mycel(&[
        "transfer",
        "--rpc",
        &rpc,
        "--to",
        &to.to_string(),
        "--amount",
        "1",
        "--fee",
        "0.000000001",
        "--dev-account",
        "0",
    ]);
    assert_fails_with(&out, "below the minimum fee");
    assert!(
        stderr(&out).contains("fee_too_low") && stderr(&out).contains("raise --fee"),
        "{}",
        stderr(&out)
    );

    // tx and block show what happened, in tokens.
    let out = mycel(&["tx", &tx.hash().to_string(), "--rpc", &rpc]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("finalized")
            && text.contains("transfer 2.5 mUSD")
            && text.contains("fee burned 0.00001 MYC"),
        "{text}"
    );
    let out = mycel(&["block", "latest", "--rpc", &rpc]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains(&tx.hash().to_string()),
        "{}",
        stdout(&out)
    );
    assert_fails_with(&mycel(&["block", "99", "--rpc", &rpc]), "unknown_block");
    assert_fails_with(
        &mycel(&[
            "tx",
            "0x0000000000000000000000000000000000000000000000000000000000000001",
            "--rpc",
            &rpc,
        ]),
        "unknown_tx",
    );
}

#[test]
fn transfer_with_a_keystore_key_and_a_key_name_as_recipient() {
    let (rpc, node) = start_node();
    let tmp = tempfile::tempdir().expect("tempdir");
    let ks = tmp.path().join("keys").to_string_lossy().into_owned();
    let pw = write_password(tmp.path());
    let out = mycel(&[
        "key",
        "new",
        "--name",
        "payer",
        "--keystore",
        &ks,
        "--password-file",
        &pw,
    ]);
    assert_ok(&out);
    let payer: Address = stdout(&out).trim().parse().expect("address");
    let out = mycel(&[
        "key",
        "new",
        "--name",
        "payee",
        "--keystore",
        &ks,
        "--password-file",
        &pw,
    ]);
    assert_ok(&out);
    let payee: Address = stdout(&out).trim().parse().expect("address");

    let out = mycel(&[
        "transfer",
        "--rpc",
        &rpc,
        "--to",
        "payee",
        "--amount",
        "0.5",
        "--key",
        "payer",
        "--keystore",
        &ks,
        "--password-file",
        &pw,
    ]);
    assert_ok(&out);
    let tx = node.txs.lock().expect("lock")[0].clone();
    assert_eq!(tx.recover_signer(), Some(payer));
    let t = transfer_of(&tx);
    assert_eq!(t.to, payee);
    assert_eq!(t.amount, alloy_primitives::U256::from(500_000_000u64));
}

#[test]
fn waiting_reports_rejection_and_timeout() {
    let (rpc, _node) = start_node();
    let to = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let send = |memo: &str, extra: &[&str]| {
        let mut args = vec![
            "transfer",
            "--rpc",
            &rpc,
            "--to",
            to,
            "--amount",
            "1",
            "--memo",
            memo,
            "--dev-account",
            "0",
        ];
        args.extend_from_slice(extra);
        mycel(&args)
    };
    let out = send("doomed", &["--wait"]);
    assert_fails_with(&out, "was rejected: MYC balance 0 is short");
    assert!(
        stderr(&out).contains("insufficient_balance"),
        "{}",
        stderr(&out)
    );

    let out = send("stuck", &["--wait", "--timeout", "1"]);
    assert_fails_with(&out, "still pending after 1s");
    assert!(stderr(&out).contains("mycel tx 0x"), "{}", stderr(&out));

    // Without --wait a stuck transfer is simply submitted.
    assert_ok(&send("stuck", &[]));

    // tx shows a rejection with its reason.
    let out = send("doomed", &["--json"]);
    assert_ok(&out);
    let hash = serde_json::from_str::<Value>(&stdout(&out)).expect("json")["hash"]
        .as_str()
        .expect("hash")
        .to_string();
    let out = mycel(&["tx", &hash, "--rpc", &rpc]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("rejected") && stdout(&out).contains("short of the 1010000 needed"),
        "{}",
        stdout(&out)
    );
}

#[cfg(unix)]
#[test]
fn an_existing_shared_keystore_dir_is_left_alone_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let pw = write_password(tmp.path());
    let out = mycel(&[
        "key",
        "new",
        "--name",
        "k",
        "--keystore",
        &shared.to_string_lossy(),
        "--password-file",
        &pw,
    ]);
    assert_ok(&out);
    assert!(stderr(&out).contains("chmod 700"), "{}", stderr(&out));
    assert_eq!(mode(&shared), 0o755, "an existing directory keeps its mode");
    assert_eq!(
        mode(&shared.join("k.json")),
        0o600,
        "the key file is still private"
    );
}
