//! Every incentive-layer transaction kind, signed by Python's eth_account from the typed data
//! mycel publishes (`SignedTx::typed_data`), gives the same signature as mycel's own signer: the
//! EIP-712 encoding of their arrays (`string[]`, `uint16[]`, `uint64[]`) and `bytes32` fields is
//! what wallets compute. Runs `python3` (or `$MYCEL_PYTHON`) with eth_account; fails, never skips.

use alloy_primitives::{Address, B256, U256};
use mycel_types::{keys::dev_signer, tx, SignedTx, TxJson, TxKind};
use std::io::Write;
use std::process::{Command, Stdio};

const SIGNER: &str = r#"
import json, sys
from eth_account import Account
req = json.load(sys.stdin)
td = req["typed_data"]
fields = {f["name"]: f["type"] for f in td["types"][td["primaryType"]]}
msg = td["message"]
for name, ty in fields.items():
    if ty.startswith("uint") and not ty.endswith("]") and isinstance(msg[name], str):
        msg[name] = int(msg[name])
signed = Account.sign_typed_data(req["key"], full_message=td)
sig = signed.signature.hex()
print(json.dumps({"signature": sig if sig.startswith("0x") else "0x" + sig}))
"#;

fn eth_account_signature(key: &str, typed_data: &serde_json::Value) -> String {
    let python = std::env::var("MYCEL_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .args(["-c", SIGNER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `{python}` ({e}): this test needs Python 3 with eth_account (pip install eth-account)")
        });
    let request = serde_json::json!({"key": key, "typed_data": typed_data});
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write request");
    let output = child.wait_with_output().expect("python runs");
    assert!(
        output.status.success(),
        "eth_account signer failed: {}\nif eth_account is missing: pip install -r tests/interop/requirements.txt",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    out["signature"].as_str().expect("signature").to_string()
}

fn kinds(from: Address) -> Vec<TxKind> {
    let hot = Address::repeat_byte(0x33);
    let fee = U256::from(10_000u64);
    vec![
        TxKind::RegisterSubnet(tx::RegisterSubnet {
            from,
            hotkey: hot,
            maxLockCost: U256::from(200_000_000_000u64),
            nonce: 0,
            fee,
        }),
        TxKind::SetSubnetParams(tx::SetSubnetParams {
            from,
            netuid: 1,
            names: vec!["tempo".into(), "commit_reveal".into()],
            values: vec![99, 1],
            nonce: 1,
            fee,
        }),
        TxKind::BurnedRegister(tx::BurnedRegister {
            from,
            netuid: 1,
            hotkey: hot,
            maxBurn: U256::from(2_000_000_000u64),
            nonce: 2,
            fee,
        }),
        TxKind::ServeEndpoint(tx::ServeEndpoint {
            from,
            netuid: 1,
            host: "miner.example.org".into(),
            port: 8443,
            protocol: "https".into(),
            nonce: 3,
            fee,
        }),
        TxKind::SetWeights(tx::SetWeights {
            from,
            netuid: 1,
            uids: vec![0, 3, 7],
            values: vec![65535, 100, 1],
            versionKey: 2,
            nonce: 4,
            fee,
        }),
        TxKind::CommitWeights(tx::CommitWeights {
            from,
            netuid: 1,
            commitHash: B256::repeat_byte(0xc0),
            nonce: 5,
            fee,
        }),
        TxKind::RevealWeights(tx::RevealWeights {
            from,
            netuid: 1,
            uids: vec![1, 2],
            values: vec![5, 6],
            salt: B256::repeat_byte(0x5a),
            versionKey: 0,
            nonce: 6,
            fee,
        }),
        TxKind::AddStake(tx::AddStake {
            from,
            hotkey: hot,
            netuid: 1,
            amount: U256::from(10_000_000_000u64),
            limitPrice: U256::from(1_100_000_000u64),
            nonce: 7,
            fee,
        }),
        TxKind::RemoveStake(tx::RemoveStake {
            from,
            hotkey: hot,
            netuid: 1,
            amount: U256::from(5_000_000_000u64),
            limitPrice: U256::ZERO,
            nonce: 8,
            fee,
        }),
    ]
}

#[test]
fn eth_account_signs_every_incentive_kind_like_mycel() {
    let signer = dev_signer(4).expect("dev key");
    let key = format!("0x{}", alloy_primitives::hex::encode(signer.to_bytes()));
    for kind in kinds(signer.address()) {
        let ours = SignedTx::sign(kind.clone(), 1337, &signer).expect("sign");
        let typed = SignedTx::typed_data(&kind, 1337);
        let theirs = eth_account_signature(&key, &typed);
        let mut json: TxJson = ours.to_json();
        json.signature = theirs;
        let from_python = SignedTx::from_json(&json).expect("eth_account's signature parses");
        assert_eq!(
            from_python.recover_signer(),
            Some(signer.address()),
            "{}: eth_account signed different typed data",
            kind.type_name()
        );
        assert_eq!(from_python, ours, "{}", kind.type_name());
    }
}
