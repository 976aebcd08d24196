//! An independent signer agrees with mycel: transfers signed by Python's `eth_account` (which knows
//! nothing about mycel beyond the EIP-712 types in docs/transactions.md) parse, verify and execute,
//! and are byte-identical to the same transfers signed by mycel's own Rust code.
//!
//! Runs `tests/interop/sign_transfer.py` with `python3` (or `$MYCEL_PYTHON`). It fails, never skips,
//! when Python or eth_account is missing: `pip install eth-account` (pinned in
//! tests/interop/requirements.txt).

use alloy_primitives::{Address, Bytes, U256};
use mycel_state::{Event, State, TxError};
use mycel_types::{
    genesis::{DEV_MUSD, DEV_MYC},
    keys::dev_signer,
    Genesis, SignedTx, Token, Transfer, TxJson, TxKind,
};
use std::path::PathBuf;
use std::process::Command;

const VALIDATOR: &str = "1111111111111111111111111111111111111111111111111111111111111111";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/sign_transfer.py")
}

/// What to sign; every field is passed to the Python script and used for the Rust twin.
struct Spec {
    chain_id: u64,
    to: Address,
    token: Token,
    amount: u128,
    memo: &'static str,
    nonce: u64,
    fee: u128,
}

impl Spec {
    fn kind(&self, from: Address) -> TxKind {
        TxKind::Transfer(Transfer {
            from,
            to: self.to,
            token: self.token.address(),
            amount: U256::from(self.amount),
            memo: Bytes::from(self.memo.as_bytes().to_vec()),
            nonce: self.nonce,
            fee: U256::from(self.fee),
        })
    }
}

/// Runs the Python signer with dev key `key_index` and returns its stdout as JSON.
fn run_python(key_index: u32, spec: &Spec, extra: &[&str]) -> serde_json::Value {
    let private_key = dev_signer(key_index).expect("dev key").to_bytes();
    let python = std::env::var("MYCEL_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .arg(script())
        .args([
            "--private-key",
            &format!("0x{}", alloy_primitives::hex::encode(private_key)),
        ])
        .args(["--chain-id", &spec.chain_id.to_string()])
        .args(["--to", &spec.to.to_checksum(None)])
        .args(["--token", spec.token.symbol()])
        .args(["--amount", &spec.amount.to_string()])
        .args(["--memo", spec.memo])
        .args(["--nonce", &spec.nonce.to_string()])
        .args(["--fee", &spec.fee.to_string()])
        .args(extra)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{python}` ({e}): this test needs Python 3 with eth_account \
                 (pip install eth-account); set MYCEL_PYTHON to use another interpreter"
            )
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the eth_account signer failed ({}): {stderr}\n\
         if eth_account is missing: pip install eth-account (or pip install -r tests/interop/requirements.txt)",
        output.status
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the eth_account signer printed something that is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn python_signed(key_index: u32, spec: &Spec) -> SignedTx {
    let json: TxJson =
        serde_json::from_value(run_python(key_index, spec, &[])).expect("the JSON form of a tx");
    SignedTx::from_json(&json).expect("eth_account's transaction parses")
}

fn devnet() -> State {
    State::from_genesis(
        &Genesis::devnet(vec![VALIDATOR.into()], 1_764_072_000_000).expect("devnet genesis"),
    )
}

fn myc_transfer() -> Spec {
    Spec {
        chain_id: 1337,
        to: dev_signer(1).expect("dev key").address(),
        token: Token::Myc,
        amount: 1_500_000_000,
        memo: "invoice 42 ✓",
        nonce: 0,
        fee: 10_000,
    }
}

#[test]
fn eth_account_signs_the_same_typed_data_as_mycel() {
    let spec = myc_transfer();
    let from = dev_signer(0).expect("dev key").address();
    let python = run_python(0, &spec, &["--typed-data"]);
    let rust = SignedTx::typed_data(&spec.kind(from), spec.chain_id);
    assert_eq!(python["domain"], rust["domain"]);
    assert_eq!(
        python["types"], rust["types"],
        "EIP-712 types differ from docs/transactions.md"
    );
    assert_eq!(python["primaryType"], rust["primaryType"]);
    assert_eq!(python["message"], rust["message"]);
}

#[test]
fn eth_account_transfer_verifies_and_executes() {
    let sender = dev_signer(0).expect("dev key").address();
    let receiver = dev_signer(1).expect("dev key").address();
    let spec = myc_transfer();
    let tx = python_signed(0, &spec);
    assert_eq!(tx.chain_id, 1337);
    assert_eq!(tx.from(), sender);
    assert_eq!(
        tx.recover_signer(),
        Some(sender),
        "eth_account's signature does not recover to the sender"
    );

    let mut state = devnet();
    let receipt = state.apply_tx(&tx).expect("eth_account's transfer applies");
    assert_eq!(receipt.hash, tx.hash());
    assert_eq!(receipt.from, sender);
    assert_eq!(
        receipt.events,
        vec![
            Event::Transfer {
                token: Token::Myc,
                from: sender,
                to: receiver,
                amount: spec.amount
            },
            Event::FeeBurned {
                from: sender,
                amount: spec.fee
            },
        ]
    );
    assert_eq!(state.account(&sender).myc, DEV_MYC - spec.amount - spec.fee);
    assert_eq!(state.account(&receiver).myc, DEV_MYC + spec.amount);
    assert_eq!(state.next_nonce(&sender), 1);
    assert_eq!(state.supply().myc_burned, spec.fee);

    // The same signed bytes cannot be applied twice.
    assert!(matches!(
        state.apply_tx(&tx),
        Err(TxError::StaleNonce {
            expected: 1,
            got: 0
        })
    ));

    // A second, mUSD transfer with the next nonce, to an address that had nothing.
    let fresh = Address::repeat_byte(0x42);
    let musd = Spec {
        to: fresh,
        token: Token::Musd,
        amount: 2_500_000,
        memo: "",
        nonce: 1,
        ..myc_transfer()
    };
    let tx = python_signed(0, &musd);
    state
        .apply_tx(&tx)
        .expect("eth_account's mUSD transfer applies");
    assert_eq!(state.account(&sender).musd, DEV_MUSD - musd.amount);
    assert_eq!(state.account(&fresh).musd, musd.amount);
    assert_eq!(state.next_nonce(&sender), 2);
    state.assert_books_balance();
}

#[test]
fn rust_and_eth_account_signatures_are_identical() {
    // RFC 6979 deterministic nonces with low-s normalisation on both sides: same key, same message,
    // same signature, so the same encoding and the same hash.
    let signer = dev_signer(0).expect("dev key");
    let specs = [
        myc_transfer(),
        Spec {
            token: Token::Musd,
            amount: 1,
            memo: "",
            nonce: 7,
            fee: 123_456_789,
            ..myc_transfer()
        },
        Spec {
            chain_id: 1,
            amount: u128::MAX,
            nonce: u64::MAX,
            ..myc_transfer()
        },
    ];
    for spec in &specs {
        let python = python_signed(0, spec);
        let rust = SignedTx::sign(spec.kind(signer.address()), spec.chain_id, &signer)
            .expect("rust signs");
        assert_eq!(
            python.signature, rust.signature,
            "signatures differ for chain {} nonce {}",
            spec.chain_id, spec.nonce
        );
        assert_eq!(python, rust);
        assert_eq!(python.encode(), rust.encode());
        assert_eq!(python.hash(), rust.hash());
        assert_eq!(
            serde_json::to_value(python.to_json()).expect("json"),
            serde_json::to_value(rust.to_json()).expect("json")
        );
    }
}

#[test]
fn eth_account_signature_for_another_chain_is_refused() {
    let spec = Spec {
        chain_id: 1,
        ..myc_transfer()
    };
    let tx = python_signed(0, &spec);
    let mut state = devnet();
    assert!(matches!(
        state.apply_tx(&tx),
        Err(TxError::WrongChainId {
            expected: 1337,
            got: 1
        })
    ));
    assert_eq!(
        state.next_nonce(&dev_signer(0).expect("dev key").address()),
        0
    );
}
