//! Every incentive-layer, agent, job and allowance transaction kind, signed by Python's eth_account from the typed
//! data mycel publishes (`SignedTx::typed_data`), gives the same signature as mycel's own signer:
//! the EIP-712 encoding of their arrays (`string[]`, `uint16[]`, `uint64[]`, a `MetadataEntry[]`
//! of nested structs), `int128`, `bool` and `bytes32` fields is what wallets compute. ERC-8004's
//! `AgentWalletSet` consent, built by Python from its own copy of the standard's types and domain,
//! gives the same signature byte for byte. Runs `python3` (or `$MYCEL_PYTHON`) with eth_account;
//! fails, never skips.

use alloy_primitives::{Address, B256, U256};
use alloy_signer::SignerSync;
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
    if (ty.startswith("uint") or ty.startswith("int")) and not ty.endswith("]") and isinstance(msg[name], str):
        msg[name] = int(msg[name])
signed = Account.sign_typed_data(req["key"], full_message=td)
sig = signed.signature.hex()
print(json.dumps({"signature": sig if sig.startswith("0x") else "0x" + sig}))
"#;

fn eth_account_signature(key: &str, typed_data: &serde_json::Value) -> String {
    let request = serde_json::json!({"key": key, "typed_data": typed_data});
    let out = run_python(SIGNER, &request);
    out["signature"].as_str().expect("signature").to_string()
}

/// Runs `script` with `request` as JSON on stdin and reads its JSON answer.
fn run_python(script: &str, request: &serde_json::Value) -> serde_json::Value {
    let python = std::env::var("MYCEL_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `{python}` ({e}): this test needs Python 3 with eth_account (pip install eth-account)")
        });
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
    serde_json::from_slice(&output.stdout).expect("JSON")
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

fn job_kinds(from: Address) -> Vec<TxKind> {
    let other = Address::repeat_byte(0x55);
    let fee = U256::from(10_000u64);
    vec![
        TxKind::CreateJob(tx::CreateJob {
            from,
            provider: other,
            evaluator: Address::repeat_byte(0x66),
            expiredAt: 1_765_000_000,
            disputeWindow: 600,
            description: "translate the README into French".into(),
            platform: Address::repeat_byte(0x77),
            platformFeeBps: 250,
            nonce: 10,
            fee,
        }),
        TxKind::SetJobProvider(tx::SetJobProvider {
            from,
            jobId: 4,
            provider: other,
            nonce: 11,
            fee,
        }),
        TxKind::SetJobBudget(tx::SetJobBudget {
            from,
            jobId: 4,
            amount: U256::from(2_500_000u64),
            nonce: 12,
            fee,
        }),
        TxKind::FundJob(tx::FundJob {
            from,
            jobId: 4,
            expectedBudget: U256::from(2_500_000u64),
            nonce: 13,
            fee,
        }),
        TxKind::SubmitJob(tx::SubmitJob {
            from,
            jobId: 4,
            deliverable: B256::repeat_byte(0xd1),
            deliverableURI: "https://provider.example/out/4".into(),
            nonce: 14,
            fee,
        }),
        TxKind::CompleteJob(tx::CompleteJob {
            from,
            jobId: 4,
            reason: B256::repeat_byte(0x01),
            nonce: 15,
            fee,
        }),
        TxKind::RejectJob(tx::RejectJob {
            from,
            jobId: 4,
            reason: B256::repeat_byte(0x02),
            nonce: 16,
            fee,
        }),
        TxKind::DisputeJob(tx::DisputeJob {
            from,
            jobId: 4,
            netuid: 1,
            validator: Address::repeat_byte(0x44),
            nonce: 18,
            fee,
        }),
        TxKind::ClaimJobRefund(tx::ClaimJobRefund {
            from,
            jobId: 4,
            nonce: 17,
            fee,
        }),
    ]
}

fn allowance_kinds(from: Address) -> Vec<TxKind> {
    let fee = U256::from(10_000u64);
    vec![
        TxKind::GrantAllowance(tx::GrantAllowance {
            from,
            agent: Address::repeat_byte(0x88),
            tokens: vec![Address::ZERO, mycel_types::amount::MUSD_ADDRESS],
            periodBudgets: vec![U256::from(5_000_000_000u64), U256::from(10_000_000u64)],
            maxPerTx: vec![U256::from(1_000_000_000u64), U256::from(1_000_000u64)],
            periodBlocks: 86_400,
            recipients: vec![Address::repeat_byte(0x99)],
            kinds: vec!["TransferWithAuthorization".into()],
            expiresAt: 1_000_000,
            nonce: 20,
            fee,
        }),
        TxKind::RevokeAllowance(tx::RevokeAllowance {
            from,
            agent: Address::repeat_byte(0x88),
            nonce: 21,
            fee,
        }),
    ]
}

fn agent_kinds(from: Address) -> Vec<TxKind> {
    let other = Address::repeat_byte(0x44);
    let fee = U256::from(10_000u64);
    let id = U256::from(3u64);
    vec![
        TxKind::RegisterAgent(tx::RegisterAgent {
            from,
            agentURI: "https://agent.example/.well-known/agent-registration.json".into(),
            metadata: vec![
                tx::MetadataEntry {
                    metadataKey: "model".into(),
                    metadataValue: b"smollm2".to_vec().into(),
                },
                tx::MetadataEntry {
                    metadataKey: "x402".into(),
                    metadataValue: vec![1, 0, 0xff].into(),
                },
            ],
            nonce: 0,
            fee,
        }),
        TxKind::SetAgentURI(tx::SetAgentURI {
            from,
            agentId: id,
            newURI: "ipfs://bafy".into(),
            nonce: 1,
            fee,
        }),
        TxKind::SetAgentMetadata(tx::SetAgentMetadata {
            from,
            agentId: id,
            metadataKey: "region".into(),
            metadataValue: b"eu".to_vec().into(),
            nonce: 2,
            fee,
        }),
        TxKind::SetAgentWallet(tx::SetAgentWallet {
            from,
            agentId: id,
            newWallet: other,
            deadline: U256::from(1_700_000_300u64),
            signature: vec![7u8; 65].into(),
            nonce: 3,
            fee,
        }),
        TxKind::TransferAgent(tx::TransferAgent {
            from,
            to: other,
            agentId: id,
            nonce: 4,
            fee,
        }),
        TxKind::ApproveAgent(tx::ApproveAgent {
            from,
            approved: other,
            agentId: id,
            nonce: 5,
            fee,
        }),
        TxKind::SetAgentOperator(tx::SetAgentOperator {
            from,
            operator: other,
            approved: true,
            nonce: 6,
            fee,
        }),
        TxKind::GiveFeedback(tx::GiveFeedback {
            from,
            agentId: id,
            value: -12_345,
            valueDecimals: 2,
            tag1: "starred".into(),
            tag2: "week".into(),
            endpoint: "https://agent.example/v1/chat/completions".into(),
            feedbackURI: "ipfs://feedback".into(),
            feedbackHash: B256::repeat_byte(0xfe),
            paymentNonce: B256::repeat_byte(0x01),
            nonce: 7,
            fee,
        }),
        TxKind::RevokeFeedback(tx::RevokeFeedback {
            from,
            agentId: id,
            feedbackIndex: 2,
            nonce: 8,
            fee,
        }),
        TxKind::ValidationRequest(tx::ValidationRequest {
            from,
            validator: other,
            agentId: id,
            requestURI: "https://agent.example/answers/9.json".into(),
            requestHash: B256::repeat_byte(0x99),
            nonce: 18,
            fee,
        }),
        TxKind::ValidationResponse(tx::ValidationResponse {
            from,
            requestHash: B256::repeat_byte(0x99),
            response: 100,
            responseURI: "https://validator.example/reports/9".into(),
            responseHash: B256::repeat_byte(0x98),
            tag: "inference-rerun".into(),
            nonce: 19,
            fee,
        }),
        TxKind::AppendResponse(tx::AppendResponse {
            from,
            agentId: id,
            clientAddress: other,
            feedbackIndex: 1,
            responseURI: "https://agent.example/r/1".into(),
            responseHash: B256::repeat_byte(0xab),
            nonce: 9,
            fee,
        }),
    ]
}

#[test]
fn eth_account_signs_every_incentive_agent_job_and_allowance_kind_like_mycel() {
    let signer = dev_signer(4).expect("dev key");
    let key = format!("0x{}", alloy_primitives::hex::encode(signer.to_bytes()));
    let kinds = kinds(signer.address())
        .into_iter()
        .chain(agent_kinds(signer.address()))
        .chain(job_kinds(signer.address()))
        .chain(allowance_kinds(signer.address()));
    for kind in kinds {
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

/// ERC-8004's wallet consent, typed by Python from the standard's text (not from mycel's JSON).
const WALLET_CONSENT: &str = r#"
import json, sys
from eth_account import Account
req = json.load(sys.stdin)
td = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "AgentWalletSet": [
            {"name": "agentId", "type": "uint256"},
            {"name": "newWallet", "type": "address"},
            {"name": "owner", "type": "address"},
            {"name": "deadline", "type": "uint256"},
        ],
    },
    "primaryType": "AgentWalletSet",
    "domain": {"name": "ERC8004IdentityRegistry", "version": "1", "chainId": req["chainId"],
               "verifyingContract": req["registry"]},
    "message": {"agentId": req["agentId"], "newWallet": Account.from_key(req["key"]).address,
                "owner": req["owner"], "deadline": req["deadline"]},
}
signed = Account.sign_typed_data(req["key"], full_message=td)
sig = signed.signature.hex()
print(json.dumps({"signature": sig if sig.startswith("0x") else "0x" + sig}))
"#;

#[test]
fn eth_account_signs_the_erc8004_wallet_consent_like_mycel() {
    let wallet = dev_signer(5).expect("dev key");
    let key = format!("0x{}", alloy_primitives::hex::encode(wallet.to_bytes()));
    let owner = Address::repeat_byte(0x12);
    let consent = tx::AgentWalletSet {
        agentId: U256::from(42u64),
        newWallet: wallet.address(),
        owner,
        deadline: U256::from(1_765_000_000u64),
    };
    let ours = wallet
        .sign_hash_sync(&consent.signing_hash(1337))
        .expect("sign");
    let request = serde_json::json!({
        "key": key, "chainId": 1337, "agentId": 42, "deadline": 1_765_000_000u64,
        "owner": owner.to_checksum(None),
        "registry": tx::IDENTITY_REGISTRY.to_checksum(None),
    });
    let theirs = run_python(WALLET_CONSENT, &request);
    let theirs = alloy_primitives::hex::decode(theirs["signature"].as_str().expect("signature"))
        .expect("hex");
    assert_eq!(
        theirs,
        ours.as_bytes().to_vec(),
        "eth_account signed another consent"
    );
    assert_eq!(consent.recover_signer(1337, &theirs), Ok(wallet.address()));
}

#[test]
fn every_kind_round_trips_through_bytes_and_json() {
    let signer = dev_signer(4).expect("dev key");
    let all = kinds(signer.address())
        .into_iter()
        .chain(agent_kinds(signer.address()))
        .chain(job_kinds(signer.address()))
        .chain(allowance_kinds(signer.address()));
    for kind in all {
        let signed = SignedTx::sign(kind, 1337, &signer).expect("sign");
        let name = signed.kind.type_name();
        assert_eq!(
            SignedTx::decode(&signed.encode()).as_ref(),
            Ok(&signed),
            "{name}: binary"
        );
        assert_eq!(
            SignedTx::from_json(&signed.to_json()).as_ref(),
            Ok(&signed),
            "{name}: JSON"
        );
        assert!(
            TxKind::TYPE_NAMES.contains(&name),
            "{name} is not in the table of kinds"
        );
    }
}
