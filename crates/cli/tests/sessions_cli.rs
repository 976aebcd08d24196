//! Sessions from the command line: a real devnet (`mycel up`), `mycel gateway --sessions` as a
//! process in front of an OpenAI-shaped server on loopback, a channel opened with `mycel session
//! open`, three calls paid with `mycel chat --session`, and the gateway's claim seen on chain.

use mycel_gateway::Pricing;
use mycel_testkit::http::fixed_chat_server;
use mycel_testkit::process::start_mycel;
use mycel_testkit::units;
use mycel_testkit::{free_port, Devnet, DevnetOptions, TestDir};
use mycel_types::keys::dev_signer;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

const PAYER: u32 = 1;
const PAY_TO: u32 = 9;

fn mycel(envs: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut command = mycel_testkit::mycel::command(args);
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().expect("run mycel")
}

fn get(url: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn gateway_flags_for_sessions_are_checked() {
    let pay_to = dev_signer(PAY_TO).unwrap().address().to_string();
    // Sessions need a paid gateway.
    let out = mycel(
        &[],
        &[
            "gateway",
            "--upstream",
            "http://127.0.0.1:1",
            "--free",
            "--sessions",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--sessions needs a paid gateway"),
        "{}",
        text(&out)
    );
    // The claims are signed by the pay-to key: here no key for it is given.
    let out = mycel(
        &[],
        &[
            "gateway",
            "--upstream",
            "http://127.0.0.1:1",
            "--pay-to",
            &pay_to,
            "--dev-account",
            "0",
            "--sessions",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("claimed by --pay-to") && err.contains("--payout-dev-account"),
        "{}",
        text(&out)
    );
    // A payout key for another account is refused.
    let out = mycel(
        &[],
        &[
            "gateway",
            "--upstream",
            "http://127.0.0.1:1",
            "--pay-to",
            &pay_to,
            "--dev-account",
            "0",
            "--payout-dev-account",
            "3",
            "--sessions",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("but --pay-to is"),
        "{}",
        text(&out)
    );
}

#[test]
fn three_chats_on_a_session_are_claimed_by_the_gateway_process() {
    let dir = TestDir::new();
    let d = dir.path();
    let devnet = Devnet::start_with(DevnetOptions {
        rust_log: "warn".into(),
        ..DevnetOptions::default()
    });
    let rpc = devnet.rpc().to_string();
    let payer = dev_signer(PAYER).unwrap();
    let payee = dev_signer(PAY_TO).unwrap();
    let payee0 = units(&get(&format!("{rpc}/v1/accounts/{}", payee.address()))["musd"]);

    // The model server: OpenAI-shaped, on loopback.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let upstream = fixed_chat_server(&rt, "Paris.");

    // The gateway process, with sessions: claims every 1,000 vouchers or 3 s.
    let book = d.join("gateway-sessions.json");
    let (_gateway, gw_args) = start_mycel(
        d,
        "gateway",
        "sessions   on",
        "warn,mycel_gateway=info",
        || {
            vec![
                "gateway".into(),
                "--upstream".into(),
                upstream.clone(),
                "--listen".into(),
                format!("127.0.0.1:{}", free_port()),
                "--rpc".into(),
                rpc.clone(),
                "--pay-to".into(),
                payee.address().to_string(),
                "--dev-account".into(),
                PAY_TO.to_string(),
                "--sessions".into(),
                "--session-file".into(),
                book.display().to_string(),
                "--claim-every".into(),
                "1000".into(),
                "--claim-interval".into(),
                "3".into(),
            ]
        },
    );
    let gateway = format!("http://{}", gw_args[4]);

    // The client opens a channel: 1 mUSD to the gateway's pay-to address.
    let vouchers = d.join("vouchers");
    let env = [("MYCEL_SESSION_DIR", vouchers.as_path())];
    let out = mycel(
        &env,
        &[
            "session",
            "open",
            "--to",
            &payee.address().to_string(),
            "--amount",
            "1",
            "--delay",
            "3600",
            "--dev-account",
            &PAYER.to_string(),
            "--rpc",
            &rpc,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let channel = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let on_chain = get(&format!("{rpc}/v1/channels/{channel}"));
    assert_eq!(on_chain["payer"], payer.address().to_checksum(None));

    let max_tokens = 16u64;
    let body = json!({"model": "SmolLM2-135M-Instruct.Q4_1", "max_tokens": max_tokens,
                      "messages": [{"role": "user", "content": "Capital of France?"}]});
    let (price, _) = Pricing::default()
        .quote(true, &serde_json::to_vec(&body).unwrap(), &prompt_format())
        .unwrap();
    assert!(price > 0);
    let chat = |max: &str| {
        mycel(
            &env,
            &[
                "chat",
                "Capital of France?",
                "--session",
                &channel,
                "--gateway",
                &gateway,
                "--max-tokens",
                &max_tokens.to_string(),
                "--max",
                max,
                "--dev-account",
                &PAYER.to_string(),
                "--rpc",
                &rpc,
            ],
        )
    };

    // Over --max: refused before anything is signed.
    let out = chat("0.000001");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("over --max"),
        "{}",
        text(&out)
    );
    assert!(!vouchers.join(format!("{channel}.json")).exists());

    for i in 1..=3u128 {
        let out = chat("0.1");
        assert!(out.status.success(), "call {i}: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Paris.");
        let err = String::from_utf8_lossy(&out.stderr);
        let total = mycel_types::format_amount(i * price, mycel_types::Token::Musd);
        assert!(
            err.contains(&format!("{total} mUSD in total")),
            "call {i} should pay {total} in total: {}",
            text(&out)
        );
        // The client's record of its last voucher: the running total, readable by its owner only.
        let record = vouchers.join(format!("{channel}.json"));
        let kept: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
        assert_eq!(units(&kept["cumulative"]), i * price);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&record).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    // After the claim interval the gateway claims the latest voucher: 3 × price on chain.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = get(&format!("{rpc}/v1/channels/{channel}"));
        if units(&c["claimed"]) == 3 * price {
            assert_eq!(units(&c["deposit"]), 1_000_000);
            break;
        }
        assert!(units(&c["claimed"]) < 3 * price, "{c}");
        assert!(
            Instant::now() < deadline,
            "no claim of {} after 60 s: {c}\n{}",
            3 * price,
            std::fs::read_to_string(d.join("gateway.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let payee1 = units(&get(&format!("{rpc}/v1/accounts/{}", payee.address()))["musd"]);
    assert_eq!(payee1 - payee0, 3 * price);
    // A lost record: the next total starts from what the chain says was claimed.
    let record = vouchers.join(format!("{channel}.json"));
    std::fs::remove_file(&record).unwrap();
    let musd = |n: u128| mycel_types::format_amount(n * price, mycel_types::Token::Musd);
    let out = chat("0.1");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{} mUSD in total", musd(4))),
        "{}",
        text(&out)
    );
    // A voucher signed with `mycel session voucher` is recorded too, and chat continues from it.
    let out = mycel(
        &env,
        &[
            "session",
            "voucher",
            "--channel",
            &channel,
            "--cumulative",
            &musd(10),
            "--dev-account",
            &PAYER.to_string(),
            "--rpc",
            &rpc,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = chat("0.1");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{} mUSD in total", musd(11))),
        "{}",
        text(&out)
    );
    let kept: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(units(&kept["cumulative"]), 11 * price);

    // The gateway's book on disk has the latest voucher (11 × price): a request's voucher is
    // written before its answer is sent. (Not the claimed amount: with --claim-interval 3 a
    // second claim may or may not have happened by now.)
    let kept: Value = serde_json::from_slice(&std::fs::read(&book).unwrap()).unwrap();
    let accepted: Vec<String> = kept
        .as_object()
        .expect("the book is a map of channels")
        .values()
        .map(|channel| channel["accepted"].to_string())
        .collect();
    assert_eq!(accepted, vec![(11 * price).to_string()], "{kept}");
}

/// The default model's prompt format (tokenizer, template, context), fetched on first use.
fn prompt_format() -> mycel_infer::PromptFormat {
    let cache = mycel_infer::default_cache_dir().expect("a model cache directory");
    let path = mycel_infer::ensure_default_model(&cache, &mut |_| {}).expect("the default model");
    mycel_infer::PromptFormat::from_gguf_file(&path).expect("its tokenizer")
}
