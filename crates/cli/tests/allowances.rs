//! Spend allowances end to end on a real devnet (`mycel up --chain-only`), through the CLI: an
//! owner grants an agent key a budget per period, a cap per transaction and one allowed
//! recipient; the agent's transfers move the owner's mUSD (its own stays), a transfer over the
//! period's rest and one to another recipient are refused with their codes, the agent works again
//! in the next period, and once revoked it spends only its own account.

use mycel_testkit::mycel::assert_fails_with;
use mycel_testkit::{dev_address, Devnet};
use std::time::Duration;

const OWNER: u32 = 1;
const AGENT: u32 = 7;
const SHOP: u32 = 3;
const PERIOD: u64 = 8;

fn pay(devnet: &Devnet, to: u32, amount: &str) -> std::process::Output {
    devnet.mycel(&[
        "transfer",
        "--to",
        &dev_address(to).to_string(),
        "--amount",
        amount,
        "--token",
        "mUSD",
        "--wait",
        "--dev-account",
        &AGENT.to_string(),
    ])
}

#[test]
fn an_agent_key_spends_its_owners_budget_is_stopped_at_it_and_works_again_next_period() {
    let devnet = Devnet::start();
    let agent = dev_address(AGENT).to_string();
    let shown = devnet.json(&[
        "allowance",
        "grant",
        "--agent",
        &agent,
        "--musd-per-period",
        "1",
        "--musd-per-tx",
        "0.6",
        "--period-blocks",
        &PERIOD.to_string(),
        "--to",
        &dev_address(SHOP).to_string(),
        "--dev-account",
        &OWNER.to_string(),
    ]);
    assert_eq!(
        shown["owner"],
        dev_address(OWNER).to_string().to_lowercase()
    );
    assert_eq!(shown["tokens"][0]["spendable"], "600000", "{shown:#}");
    // The node tells an x402 facilitator what the key may pay.
    let account = devnet.account(dev_address(AGENT));
    assert_eq!(account["spendable_musd"], "600000", "{account:#}");

    // Wait for the start of a period, so the three payments below share one.
    let start = devnet.height();
    devnet.wait_for_height((start / PERIOD + 1) * PERIOD, Duration::from_secs(30));
    let (owner, own, shop) = (devnet.musd(OWNER), devnet.musd(AGENT), devnet.musd(SHOP));
    mycel_testkit::mycel::assert_ok(&pay(&devnet, SHOP, "0.6"));
    assert_eq!(devnet.musd(OWNER), owner - 600_000);
    assert_eq!(devnet.musd(AGENT), own, "the agent's own mUSD stays");
    assert_eq!(devnet.musd(SHOP), shop + 600_000);
    assert_fails_with(&pay(&devnet, SHOP, "0.5"), "allowance_over_period_budget");
    assert_fails_with(
        &pay(&devnet, OWNER + 1, "0.1"),
        "allowance_recipient_not_allowed",
    );
    // The next period has a fresh budget.
    let now = devnet.height();
    devnet.wait_for_height((now / PERIOD + 1) * PERIOD, Duration::from_secs(30));
    mycel_testkit::mycel::assert_ok(&pay(&devnet, SHOP, "0.5"));
    assert_eq!(devnet.musd(OWNER), owner - 1_100_000);

    // Revoked: the key spends its own account again.
    devnet.ok(&[
        "allowance",
        "revoke",
        "--agent",
        &agent,
        "--dev-account",
        &OWNER.to_string(),
    ]);
    mycel_testkit::mycel::assert_ok(&pay(&devnet, SHOP, "0.25"));
    assert_eq!(devnet.musd(OWNER), owner - 1_100_000);
    assert_eq!(devnet.musd(AGENT), own - 250_000);
    let out = devnet.mycel(&["allowance", "show", &agent]);
    assert_fails_with(&out, "no_allowance");
}
