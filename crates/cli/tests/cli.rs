//! The real `mycel` binary: argument parsing, error paths, key management round trips, and the
//! client commands against a real devnet (`mycel up`) on loopback.

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_testkit::mycel::{assert_fails_with, assert_ok, stderr, stdout};
use mycel_testkit::{dev_address, units, Devnet};
use mycel_types::{keys::dev_signer, SignedTx, Token, TxKind};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Output, Stdio};

/// `mycel ARGS` with none of the user's MYCEL_* settings.
fn mycel(args: &[&str]) -> Output {
    mycel_testkit::mycel::run(args)
}

const PASSWORD: &str = "correct horse battery staple";

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
    assert_fails_with(
        &mycel(&[
            "miner",
            "--netuid",
            "1",
            "--dev-account",
            "1",
            "--threads",
            "0",
        ]),
        "--threads must be at least 1",
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
    let out = mycel_testkit::mycel::command::<&str>(&[])
        .arg("status")
        .env("MYCEL_RPC", &rpc)
        .output()
        .expect("run");
    assert_fails_with(&out, &rpc);
}

/// A taken port is a clear error before the node starts, for the API and for p2p alike (p2p's
/// listener is bound inside consensus, where a failure used to leave a node without p2p running).
#[test]
fn taken_ports_are_refused_before_the_node_starts() {
    let dir = mycel_testkit::TestDir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("addr").to_string();
    let free = || format!("127.0.0.1:{}", mycel_testkit::ports::free_port());
    let data = dir.path().join("devnet");
    let data = data.to_str().expect("utf-8");
    for (rpc, p2p, needle) in [
        (
            taken.clone(),
            free(),
            format!("cannot listen on {taken} for the HTTP API"),
        ),
        (
            free(),
            taken.clone(),
            format!("cannot listen on {taken} for p2p"),
        ),
    ] {
        let out = mycel(&[
            "up",
            "--chain-only",
            "--data-dir",
            data,
            "--rpc-addr",
            &rpc,
            "--p2p-addr",
            &p2p,
        ]);
        assert_fails_with(&out, &needle);
        assert!(
            !stdout(&out).contains("devnet is running"),
            "{}",
            stdout(&out)
        );
    }
}

/// `--log-format json`: the node's log is one JSON object per line, for log collectors.
#[test]
fn the_node_log_can_be_json_lines() {
    let node =
        Devnet::start_with(mycel_testkit::DevnetOptions::default().args(&["--log-format", "json"]));
    node.wait_for_height(2, std::time::Duration::from_secs(60));
    let log = node.log();
    let events: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let consensus = events
        .iter()
        .find(|e| e["fields"]["message"] == "consensus started")
        .unwrap_or_else(|| panic!("no JSON event for the consensus start:\n{log}"));
    assert_eq!(consensus["level"], "INFO", "{consensus}");
    assert_eq!(consensus["target"], "mycel_chain::engine", "{consensus}");
    assert!(consensus["timestamp"].is_string(), "{consensus}");
    // No text-format log lines mixed in (the banner on stdout is text, and starts otherwise).
    assert!(
        !log.lines().any(|l| l.contains(" INFO mycel_chain")),
        "a text log line in JSON mode:\n{log}"
    );
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
    let out = mycel_testkit::mycel::command::<&str>(&[])
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
    let out = mycel_testkit::mycel::command::<&str>(&[])
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
    let mut child = mycel_testkit::mycel::command::<&str>(&[])
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
    let out = mycel_testkit::mycel::command::<&str>(&[])
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

// ---------------------------------------------------------------- against a real devnet

/// A TransferWithAuthorization that `submitter` (a dev account) sends, moving all `musd` of the
/// dev account `payer` (who signs the authorization) to a fresh address.
fn authorization_of_all_musd(node: &Devnet, payer: u32, submitter: u32, musd: u128) -> SignedTx {
    use alloy_signer::SignerSync as _;
    use mycel_types::eip3009;
    let (payer, submitter) = (dev_signer(payer).unwrap(), dev_signer(submitter).unwrap());
    let auth = eip3009::TransferWithAuthorization {
        from: payer.address(),
        to: Address::repeat_byte(0x3d),
        value: U256::from(musd),
        validAfter: U256::ZERO,
        validBefore: U256::from(u64::MAX),
        nonce: alloy_primitives::B256::repeat_byte(0x3d),
    };
    let signature = payer
        .sign_hash_sync(&auth.signing_hash(&eip3009::musd_domain(1337)))
        .expect("sign authorization");
    let kind = TxKind::TransferWithAuthorization(mycel_types::TransferWithAuthorization {
        from: submitter.address(),
        payer: auth.from,
        to: auth.to,
        value: auth.value,
        validAfter: auth.validAfter,
        validBefore: auth.validBefore,
        authorizationNonce: auth.nonce,
        signature: signature.as_bytes().to_vec().into(),
        nonce: node.account(submitter.address())["next_nonce"]
            .as_u64()
            .expect("next_nonce"),
        fee: U256::from(MIN_FEE),
    });
    SignedTx::sign(kind, 1337, &submitter).expect("sign")
}

/// The value of the row `key` in the CLI's human output (`key   value`).
fn row<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(key)
                .filter(|rest| rest.starts_with("  "))
                .map(str::trim)
        })
        .unwrap_or_else(|| panic!("no row {key:?} in:\n{text}"))
}

/// "YYYY-MM-DD HH:MM:SS.mmm UTC" back to milliseconds since the Unix epoch (the inverse of what
/// the CLI prints, with days-from-civil from Howard Hinnant's date algorithms).
fn parse_utc_ms(text: &str) -> u64 {
    let parse = || -> Option<u64> {
        let (date, time) = text.strip_suffix(" UTC")?.split_once(' ')?;
        let (hms, ms) = time.split_once('.')?;
        let numbers = |s: &str, sep: char| -> Option<Vec<i64>> {
            s.split(sep).map(|p| p.parse().ok()).collect()
        };
        let (d, t) = (numbers(date, '-')?, numbers(hms, ':')?);
        if d.len() != 3 || t.len() != 3 || ms.len() != 3 {
            return None;
        }
        let (year, month, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
        let era = year.div_euclid(400);
        let yoe = year - era * 400;
        let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
        u64::try_from(secs * 1000 + ms.parse::<i64>().ok()?).ok()
    };
    parse().unwrap_or_else(|| panic!("not a UTC time: {text:?}"))
}

/// The transfer the CLI should have built, signed here independently: same fields, same hash
/// (RFC 6979 signatures are deterministic).
fn expected_transfer(
    from: u32,
    to: Address,
    token: Token,
    amount: u128,
    memo: &str,
    nonce: u64,
    fee: u128,
) -> SignedTx {
    let kind = TxKind::Transfer(mycel_types::Transfer {
        from: dev_address(from),
        to,
        token: token.address(),
        amount: U256::from(amount),
        memo: memo.as_bytes().to_vec().into(),
        nonce,
        fee: U256::from(fee),
    });
    SignedTx::sign(kind, 1337, &dev_signer(from).expect("dev key")).expect("sign")
}

const MIN_FEE: u128 = 10_000;
const MYC: u128 = 1_000_000_000;
/// What genesis gives every development account, in MYC base units.
const DEV_MYC: u128 = 1_000_000 * MYC;

#[test]
fn status_and_balance_are_readable() {
    let node = Devnet::start();
    let out = node.mycel(&["status"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert_eq!(row(&text, "chain id"), "1337", "{text}");
    assert_eq!(row(&text, "min fee"), "0.00001 MYC", "{text}");
    assert_eq!(row(&text, "validators"), "1", "{text}");
    assert_eq!(row(&text, "max tx size"), "2048 bytes", "{text}");
    assert!(
        row(&text, "height").parse::<u64>().expect("height") >= 1,
        "{text}"
    );
    // The newest block is from the last minutes.
    let block_time = parse_utc_ms(row(&text, "block time"));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(
        block_time <= now_ms && now_ms - block_time < 600_000,
        "{text}"
    );

    // A block's time in tokens of the calendar is its timestamp_ms to the millisecond.
    let block_one = node.json(&["block", "1"]);
    let out = node.mycel(&["block", "1"]);
    assert_ok(&out);
    assert_eq!(
        Some(parse_utc_ms(row(&stdout(&out), "time"))),
        block_one["timestamp_ms"].as_u64(),
        "{}",
        stdout(&out)
    );

    // --json is the node's answer as it came: the same fields as GET /v1/status, and the same
    // values for everything that does not move with the chain.
    let from_cli = node.json(&["status"]);
    let from_node = node.http_get("/v1/status");
    let keys = |v: &Value| {
        v.as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&from_cli), keys(&from_node));
    for key in [
        "chain_id",
        "genesis_hash",
        "validators",
        "node_key",
        "min_fee",
        "max_tx_bytes",
    ] {
        assert_eq!(from_cli[key], from_node[key], "{key}");
    }
    assert_eq!(from_cli["min_fee"], "10000");

    // A fresh development account, through a URL with a trailing slash.
    let account = dev_address(4);
    let balance = |address: Address| {
        let out = mycel(&[
            "balance",
            &address.to_string(),
            "--rpc",
            &format!("{}/", node.rpc()),
        ]);
        assert_ok(&out);
        stdout(&out)
    };
    let text = balance(account);
    assert_eq!(row(&text, "address"), account.to_checksum(None), "{text}");
    assert_eq!(row(&text, "MYC"), "1000000 MYC", "{text}");
    assert_eq!(row(&text, "mUSD"), "1000000 mUSD", "{text}");
    assert_eq!(row(&text, "next nonce"), "0", "{text}");

    // After a transfer: fractions of a token, and the nonce moved on.
    let to = dev_address(9).to_string();
    let out = node.mycel(&[
        "transfer",
        "--dev-account",
        "4",
        "--to",
        &to,
        "--amount",
        "1.5",
        "--wait",
    ]);
    assert_ok(&out);
    let text = balance(account);
    assert_eq!(row(&text, "MYC"), "999998.49999 MYC", "{text}");
    assert_eq!(row(&text, "next nonce"), "1", "{text}");

    // Pending transactions show in the next nonce. A block comes every second, so the balance
    // read right after a submission nearly always sees it pending; try a few times.
    let mut seen_pending = false;
    for attempt in 0..10u64 {
        let out = node.mycel(&[
            "transfer",
            "--dev-account",
            "4",
            "--to",
            &to,
            "--amount",
            "0.5",
        ]);
        assert_ok(&out);
        let text = balance(account);
        let next_nonce = row(&text, "next nonce");
        if next_nonce == format!("{} (1 pending)", attempt + 2) {
            seen_pending = true;
            break;
        }
        assert_eq!(next_nonce, (attempt + 2).to_string(), "{text}");
    }
    assert!(
        seen_pending,
        "a balance read right after a transfer never saw it pending"
    );
}

#[test]
fn transfer_signs_submits_and_waits() {
    let node = Devnet::start();
    let to = dev_address(1);

    // Back to back without --wait and then with it: the second signs with the next nonce whether
    // or not the first is final yet, since the node's next_nonce counts pending transactions.
    let out = node.mycel(&[
        "transfer",
        "--to",
        &to.to_string(),
        "--amount",
        "1",
        "--dev-account",
        "0",
    ]);
    assert_ok(&out);
    let first = expected_transfer(0, to, Token::Myc, MYC, "", 0, MIN_FEE);
    assert_eq!(stdout(&out).trim(), first.hash().to_string());
    assert!(
        stderr(&out).contains("(nonce 0, fee 0.00001 MYC)"),
        "{}",
        stderr(&out)
    );

    let out = node.mycel(&[
        "transfer",
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
        "60",
    ]);
    assert_ok(&out);
    // The same hash as signing the intended transfer here: chain id 1337 and the fee (the node's
    // min_fee) from the node, the nonce from next_nonce, token, amount and memo from the flags.
    let tx = expected_transfer(0, to, Token::Musd, 2_500_000, "coffee", 1, MIN_FEE);
    let hash = tx.hash().to_string();
    assert_eq!(stdout(&out).trim(), hash);
    let status = node.json(&["tx", &hash]);
    assert_eq!(status["status"], "finalized", "{status}");
    let height = status["height"].as_u64().expect("height");
    assert!(
        stderr(&out).contains(&format!("finalized in block {height}")),
        "{}",
        stderr(&out)
    );
    let receipt = &status["receipt"];
    assert_eq!(receipt["nonce"], 1);
    assert_eq!(
        receipt["from"].as_str().map(str::to_lowercase),
        Some(dev_address(0).to_string().to_lowercase())
    );
    let events = receipt["events"].as_array().expect("events");
    assert_eq!(events[0]["event"], "transfer");
    assert_eq!(events[0]["token"], "mUSD");
    assert_eq!(units(&events[0]["amount"]), 2_500_000);
    assert_eq!(events[1]["event"], "fee_burned");
    assert_eq!(units(&events[1]["amount"]), MIN_FEE);
    let musd = node.account(to)["musd"].clone();
    assert_eq!(units(&musd), 1_000_000 * 1_000_000 + 2_500_000);

    // --json without --wait: the node's answer verbatim; --nonce and --fee override the node.
    let out = node.mycel(&[
        "transfer",
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
    let gapped = expected_transfer(2, to, Token::Myc, MYC, "", 9, 1_000_000);
    assert_eq!(
        answer,
        json!({"hash": gapped.hash().to_string(), "status": "pending"})
    );

    // The node's refusal reaches the user with its reason and a hint.
    let out = node.mycel(&[
        "transfer",
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
    let out = node.mycel(&["tx", &hash]);
    assert_ok(&out);
    let text = stdout(&out);
    assert_eq!(row(&text, "status"), "finalized", "{text}");
    assert_eq!(
        row(&text, "from"),
        dev_address(0).to_checksum(None),
        "{text}"
    );
    assert!(
        text.contains(&format!("transfer 2.5 mUSD  {} -> {}", dev_address(0), to))
            && text.contains("fee burned 0.00001 MYC"),
        "{text}"
    );
    let out = node.mycel(&["block", &height.to_string()]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("tx {hash}")) && text.contains("transfer 2.5 mUSD"),
        "{text}"
    );
    let latest = node.json(&["block", "latest"]);
    assert!(
        latest["height"].as_u64().expect("height") >= height,
        "{latest}"
    );
    let out = node.mycel(&["tx", &gapped.hash().to_string()]);
    assert_ok(&out);
    assert_eq!(row(&stdout(&out), "status"), "pending", "{}", stdout(&out));

    let out = node.mycel(&["block", "999999999"]);
    assert_fails_with(&out, "unknown_block");
    assert!(
        stderr(&out).contains("it is not finalized yet"),
        "{}",
        stderr(&out)
    );
    let out = node.mycel(&[
        "tx",
        "0x0000000000000000000000000000000000000000000000000000000000000001",
    ]);
    assert_fails_with(&out, "unknown_tx");
}

#[test]
fn transfer_with_a_keystore_key_and_a_key_name_as_recipient() {
    let node = Devnet::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let ks = tmp.path().join("keys").to_string_lossy().into_owned();
    let pw = write_password(tmp.path());
    let new_key = |name: &str| {
        let out = mycel(&[
            "key",
            "new",
            "--name",
            name,
            "--keystore",
            &ks,
            "--password-file",
            &pw,
        ]);
        assert_ok(&out);
        stdout(&out).trim().parse::<Address>().expect("address")
    };
    let payer = new_key("payer");
    let payee = new_key("payee");
    let pay = |amount: &str| {
        node.mycel(&[
            "transfer",
            "--to",
            "payee",
            "--amount",
            amount,
            "--key",
            "payer",
            "--keystore",
            &ks,
            "--password-file",
            &pw,
            "--wait",
        ])
    };

    // A new key has nothing: the node refuses, and says where to look.
    let out = pay("0.5");
    assert_fails_with(&out, "is short of the");
    assert!(
        stderr(&out).contains("insufficient_balance") && stderr(&out).contains("mycel balance"),
        "{}",
        stderr(&out)
    );

    // Fund it by key name, then pay by key name.
    let out = node.mycel(&[
        "transfer",
        "--dev-account",
        "6",
        "--to",
        "payer",
        "--keystore",
        &ks,
        "--amount",
        "1",
        "--wait",
    ]);
    assert_ok(&out);
    let out = pay("0.5");
    assert_ok(&out);
    let hash = stdout(&out).trim().to_string();
    let receipt = node.json(&["tx", &hash])["receipt"].clone();
    assert_eq!(
        receipt["from"].as_str().map(str::to_lowercase),
        Some(payer.to_string().to_lowercase())
    );
    assert_eq!(receipt["nonce"], 0);
    let transfer = &receipt["events"][0];
    assert_eq!(transfer["event"], "transfer");
    assert_eq!(
        transfer["to"].as_str().map(str::to_lowercase),
        Some(payee.to_string().to_lowercase())
    );
    assert_eq!(units(&transfer["amount"]), 500_000_000);

    // balance takes key names too.
    let out = node.mycel(&["balance", "payee", "--keystore", &ks]);
    assert_ok(&out);
    assert_eq!(row(&stdout(&out), "MYC"), "0.5 MYC", "{}", stdout(&out));
    assert_eq!(
        units(&node.account(payer)["myc"]),
        MYC - 500_000_000 - MIN_FEE
    );
    assert_eq!(
        units(&node.account(dev_address(6))["myc"]),
        DEV_MYC - MYC - MIN_FEE
    );
}

#[test]
fn waiting_reports_rejection_and_timeout() {
    use std::io::BufRead;
    let node = Devnet::start();
    let to = dev_address(1).to_string();

    // A transfer queued behind a gap is accepted: the account's balance covers it. Then an
    // EIP-3009 authorization, submitted by another account, takes all of the account's mUSD;
    // when it lands the balance no longer covers the queued transfer and the node drops it:
    // --wait reports the rejection with the node's reason.
    let musd = units(&node.account(dev_address(3))["musd"]);
    let everything = mycel_types::format_amount(musd, Token::Musd);
    let mut waiting = mycel_testkit::mycel::command::<&str>(&[])
        .args([
            "transfer",
            "--rpc",
            node.rpc(),
            "--to",
            &to,
            "--amount",
            &everything,
            "--token",
            "mUSD",
            "--nonce",
            "1",
        ])
        .args(["--dev-account", "3", "--wait", "--timeout", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut waiting_stderr = std::io::BufReader::new(waiting.stderr.take().expect("stderr"));
    let mut submitted = String::new();
    waiting_stderr.read_line(&mut submitted).expect("read");
    assert!(submitted.starts_with("submitted 0x"), "{submitted}");
    let drain = authorization_of_all_musd(&node, 3, 4, musd);
    assert_eq!(node.http_post_tx(&drain), 202);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut waiting_stderr, &mut rest).expect("read");
    let status = waiting.wait().expect("wait");
    assert_eq!(status.code(), Some(1), "{submitted}{rest}");
    assert!(
        rest.contains("was rejected: dropped: the account's balance no longer covers"),
        "{rest}"
    );
    assert_eq!(units(&node.account(dev_address(3))["musd"]), 0);
    let dropped = submitted
        .split_whitespace()
        .nth(1)
        .expect("hash")
        .trim_end_matches(',')
        .to_string();

    // tx shows a rejection with its reason.
    let out = node.mycel(&["tx", &dropped]);
    assert_ok(&out);
    let text = stdout(&out);
    assert_eq!(row(&text, "status"), "rejected", "{text}");
    assert!(
        row(&text, "error").contains("no longer covers its queued transactions"),
        "{text}"
    );

    // A transfer behind a nonce gap stays pending: --wait gives up and says how to check later.
    let out = node.mycel(&[
        "transfer",
        "--dev-account",
        "7",
        "--to",
        &to,
        "--amount",
        "1",
        "--nonce",
        "5",
        "--wait",
        "--timeout",
        "1",
    ]);
    assert_fails_with(&out, "still pending after 1s");
    assert!(stderr(&out).contains("mycel tx 0x"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));

    // Without --wait such a transfer is simply submitted, and stays pending.
    let out = node.mycel(&[
        "transfer",
        "--dev-account",
        "7",
        "--to",
        &to,
        "--amount",
        "1",
        "--nonce",
        "6",
    ]);
    assert_ok(&out);
    let stuck = stdout(&out).trim().to_string();
    let out = node.mycel(&["tx", &stuck]);
    assert_ok(&out);
    assert_eq!(row(&stdout(&out), "status"), "pending", "{}", stdout(&out));
    assert_eq!(node.account(dev_address(7))["next_nonce"], 0);
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
