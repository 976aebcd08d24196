//! Jobs with escrow end to end on a real devnet (`mycel up --chain-only`), through the CLI: a
//! client creates a job, the provider sets the budget, a fund with a stale expected budget is
//! refused, the funded job shows in the provider's list of funded work, a stranger cannot submit,
//! the provider delivers and the evaluator's completion pays it; a second job expires unsettled
//! and a stranger's refund (refused before the expiry) returns the escrow to the client.

use mycel_testkit::mycel::assert_fails_with;
use mycel_testkit::{dev_address, Devnet};
use std::time::Duration;

const CLIENT: u32 = 1;
const PROVIDER: u32 = 2;
const EVALUATOR: u32 = 3;
const STRANGER: u32 = 6;

#[test]
fn a_job_is_funded_delivered_and_paid_and_an_unsettled_one_is_refunded() {
    let devnet = Devnet::start();
    let (client, provider, evaluator, stranger) = (
        CLIENT.to_string(),
        PROVIDER.to_string(),
        EVALUATOR.to_string(),
        STRANGER.to_string(),
    );
    let provider_address = dev_address(PROVIDER).to_string();
    let id = devnet.ok(&[
        "job",
        "create",
        "--provider",
        &provider_address,
        "--evaluator",
        &dev_address(EVALUATOR).to_string(),
        "--description",
        "summarise the mycel README",
        "--dev-account",
        &client,
    ]);
    assert_eq!(id.trim(), "1");
    devnet.ok(&[
        "job",
        "budget",
        "--job",
        "1",
        "--amount",
        "2.5",
        "--dev-account",
        &provider,
    ]);
    let out = devnet.mycel(&[
        "job",
        "fund",
        "--job",
        "1",
        "--amount",
        "2",
        "--dev-account",
        &client,
    ]);
    assert_fails_with(&out, "job_budget_changed");
    let (client_start, provider_start) = (devnet.musd(CLIENT), devnet.musd(PROVIDER));
    let job = devnet.json(&[
        "job",
        "fund",
        "--job",
        "1",
        "--amount",
        "2.5",
        "--dev-account",
        &client,
    ]);
    assert_eq!(job["status"], "funded");
    assert_eq!(job["escrowed"], "2500000");
    assert_eq!(devnet.musd(CLIENT), client_start - 2_500_000);

    // The provider's funded work, as it would list it after being offline.
    let work = devnet.json(&[
        "job",
        "list",
        "--provider",
        &provider_address,
        "--status",
        "funded",
    ]);
    assert_eq!(work["jobs"].as_array().map(Vec::len), Some(1), "{work:#}");
    assert_eq!(work["jobs"][0]["job_id"], 1);

    let deliverable = format!("0x{}", "d1".repeat(32));
    let out = devnet.mycel(&[
        "job",
        "submit",
        "--job",
        "1",
        "--deliverable",
        &deliverable,
        "--dev-account",
        &stranger,
    ]);
    assert_fails_with(&out, "job_not_provider");
    devnet.ok(&[
        "job",
        "submit",
        "--job",
        "1",
        "--deliverable",
        &deliverable,
        "--uri",
        "https://provider.example/out/1",
        "--dev-account",
        &provider,
    ]);
    let job = devnet.json(&["job", "complete", "--job", "1", "--dev-account", &evaluator]);
    assert_eq!(job["status"], "completed");
    assert_eq!(job["escrowed"], "0");
    assert_eq!(devnet.musd(PROVIDER), provider_start + 2_500_000);

    // Job 2 expires unsettled: refunded to the client by a stranger, not before the expiry.
    devnet.ok(&[
        "job",
        "create",
        "--provider",
        &provider_address,
        "--evaluator",
        &dev_address(EVALUATOR).to_string(),
        "--expires-in",
        "4",
        "--dev-account",
        &client,
    ]);
    devnet.ok(&[
        "job",
        "budget",
        "--job",
        "2",
        "--amount",
        "1",
        "--dev-account",
        &client,
    ]);
    let before = devnet.musd(CLIENT);
    devnet.ok(&[
        "job",
        "fund",
        "--job",
        "2",
        "--amount",
        "1",
        "--dev-account",
        &client,
    ]);
    let out = devnet.mycel(&["job", "refund", "--job", "2", "--dev-account", &stranger]);
    assert_fails_with(&out, "job_not_expired");
    std::thread::sleep(Duration::from_secs(5));
    let job = devnet.json(&["job", "refund", "--job", "2", "--dev-account", &stranger]);
    assert_eq!(job["status"], "expired");
    assert_eq!(devnet.musd(CLIENT), before);
    let all = devnet.json(&[
        "job",
        "list",
        "--client-address",
        &dev_address(CLIENT).to_string(),
    ]);
    assert_eq!(all["jobs"].as_array().map(Vec::len), Some(2));
}
