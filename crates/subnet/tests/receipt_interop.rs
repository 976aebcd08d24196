//! An independent verifier agrees with mycel: Python's `eth_account` (which knows nothing about
//! mycel beyond the EIP-712 types in docs/receipts.md) recovers the miner from a signed receipt,
//! computes the same signing hash and the same request hash, and does not recover the miner from
//! an altered or forged receipt.
//!
//! Runs `tests/interop/verify_receipt.py` with `python3` (or `$MYCEL_PYTHON`). It fails, never
//! skips, when Python or eth_account is missing: `pip install -r tests/interop/requirements.txt`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use mycel_types::receipt::{
    token_ids_hash, CanonicalRequest, ChatMessage, InferenceReceipt, SamplingParams, SignedReceipt,
    DETERMINISM_PROFILE,
};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/verify_receipt.py")
}

/// Runs the Python verifier on `json` and returns what it prints.
fn python_verify(json: &serde_json::Value, extra: &[&str]) -> serde_json::Value {
    let python = std::env::var("MYCEL_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .arg(script())
        .arg("-")
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{python}` ({e}): this test needs Python 3 with eth_account \
                 (pip install -r tests/interop/requirements.txt); set MYCEL_PYTHON to use another"
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(json.to_string().as_bytes())
        .expect("write the receipt to python");
    let output = child.wait_with_output().expect("python runs");
    assert!(
        output.status.success(),
        "the eth_account verifier failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the verifier prints JSON")
}

fn miner_key() -> PrivateKeySigner {
    // Any fixed key: the test is about encodings, not about which key.
    PrivateKeySigner::from_slice(&[0x5a; 32]).expect("a valid key")
}

fn request() -> CanonicalRequest {
    CanonicalRequest::chat(
        vec![
            ChatMessage::system("Answer in one word."),
            ChatMessage::user("Capital of France? ✓ «ünïcode»"),
        ],
        &SamplingParams {
            temperature: 0.7,
            top_p: 0.95,
            top_k: 40,
            seed: 18_446_744_073_709_551_615,
            max_tokens: 12,
            stop: vec!["\n".into(), "END".into()],
        },
    )
}

fn receipt(miner: Address, request: &CanonicalRequest) -> InferenceReceipt {
    InferenceReceipt {
        netuid: 65_535,
        miner,
        modelId: B256::repeat_byte(0x42),
        requestHash: request.hash(),
        promptTokensHash: token_ids_hash(&[1, 9690, 198, 49151]),
        outputTokensHash: token_ids_hash(&[4093, 2]),
        promptTokenCount: 4,
        outputTokenCount: 2,
        determinismProfile: DETERMINISM_PROFILE.into(),
        blockHeight: u64::MAX,
    }
}

#[test]
fn eth_account_recovers_the_miner_and_the_hashes() {
    let key = miner_key();
    let request = request();
    let signed = SignedReceipt::sign(receipt(key.address(), &request), 1337, &key).expect("sign");
    let json = serde_json::to_value(signed.to_json(Some(&request))).expect("json");
    let python = python_verify(&json, &["--output-tokens", "4093,2"]);
    assert_eq!(python["signer"], key.address().to_checksum(None));
    assert_eq!(python["signature_valid"], true);
    assert_eq!(python["signing_hash"], signed.signing_hash().to_string());
    assert_eq!(python["request_hash"], request.hash().to_string());
    assert_eq!(python["request_hash_matches"], true);
    assert_eq!(
        python["output_tokens_hash"],
        token_ids_hash(&[4093, 2]).to_string()
    );

    // A completion request (no messages, a prompt), with the defaults a miner fills in.
    let completion = CanonicalRequest::completion(
        "Once upon a time".into(),
        &SamplingParams {
            temperature: 1.0,
            max_tokens: 16,
            ..SamplingParams::default()
        },
    );
    let signed = SignedReceipt::sign(receipt(key.address(), &completion), 1, &key).expect("sign");
    let python = python_verify(
        &serde_json::to_value(signed.to_json(Some(&completion))).expect("json"),
        &[],
    );
    assert_eq!(python["signature_valid"], true);
    assert_eq!(python["request_hash"], completion.hash().to_string());
}

#[test]
fn eth_account_does_not_recover_the_miner_from_altered_receipts() {
    let key = miner_key();
    let request = request();
    let signed = SignedReceipt::sign(receipt(key.address(), &request), 1337, &key).expect("sign");

    // The output hash changed after signing.
    let mut json = serde_json::to_value(signed.to_json(None)).expect("json");
    json["message"]["outputTokensHash"] = token_ids_hash(&[4094, 2]).to_string().into();
    let python = python_verify(&json, &[]);
    assert_eq!(python["signature_valid"], false);
    assert_ne!(python["signer"], key.address().to_checksum(None));

    // Another key signed a receipt that names the miner.
    let forger = PrivateKeySigner::from_slice(&[0x77; 32]).expect("key");
    let forged =
        SignedReceipt::sign(receipt(key.address(), &request), 1337, &forger).expect("sign");
    let python = python_verify(
        &serde_json::to_value(forged.to_json(None)).expect("json"),
        &[],
    );
    assert_eq!(python["signer"], forger.address().to_checksum(None));
    assert_eq!(python["signature_valid"], false);

    // The request does not match the signed hash.
    let mut json = serde_json::to_value(signed.to_json(Some(&request))).expect("json");
    json["request"]["seed"] = 7.into();
    let python = python_verify(&json, &[]);
    assert_eq!(python["signature_valid"], true);
    assert_eq!(python["request_hash_matches"], false);
}

#[test]
fn rust_typed_data_is_what_eth_account_signs() {
    // The typed data mycel publishes (for viem / eth_signTypedData_v4) signs to the same hash in
    // eth_account as the receipt's own signing hash.
    let key = miner_key();
    let request = request();
    let signed = SignedReceipt::sign(receipt(key.address(), &request), 1337, &key).expect("sign");
    let typed = signed.typed_data();
    let python = std::env::var("MYCEL_PYTHON").unwrap_or_else(|_| "python3".into());
    let code = "import json,sys\n\
                from eth_account.messages import encode_typed_data\n\
                from eth_utils import keccak\n\
                td=json.load(sys.stdin)\n\
                for k in ('modelId','requestHash','promptTokensHash','outputTokensHash'):\n    td['message'][k]=bytes.fromhex(td['message'][k][2:])\n\
                s=encode_typed_data(full_message=td)\n\
                print('0x'+keccak(b'\\x19'+s.version+s.header+s.body).hex())\n";
    let mut child = Command::new(&python)
        .args(["-c", code])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(typed.to_string().as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("python");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        signed.signing_hash().to_string()
    );
}
