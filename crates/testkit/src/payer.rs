//! Paying and the dev accounts: the x402 payer is mycel-client's (the one the CLI and the bench
//! use), re-exported so tests name one harness.

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;

pub use mycel_client::x402::{PayError, Payer, Payment, PaymentAsk};

/// The signer of dev account `index` (the devnet's funded accounts).
pub fn dev_signer(index: u32) -> PrivateKeySigner {
    mycel_types::keys::dev_signer(index).expect("dev account index")
}

/// The address of dev account `index`.
pub fn dev_address(index: u32) -> Address {
    dev_signer(index).address()
}

/// An amount in base units from the node's JSON (amounts travel as decimal strings).
#[track_caller]
pub fn units(value: &serde_json::Value) -> u128 {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an amount: {value}"))
}

/// Seconds since the Unix epoch (payments carry validity windows in seconds).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}
