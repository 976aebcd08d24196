//! What a receipt costs the miner: hashing the canonical request and the token ids, and signing;
//! and what checking one costs a verifier (signature recovery). Compare with the decode time of the
//! tokens it covers (BENCHMARKS.md).

use alloy_primitives::B256;
use alloy_signer_local::PrivateKeySigner;
use criterion::{criterion_group, criterion_main, Criterion};
use mycel_types::receipt::{
    token_ids_hash, CanonicalRequest, ChatMessage, InferenceReceipt, SamplingParams, SignedReceipt,
    DETERMINISM_PROFILE,
};
use std::hint::black_box;

fn request() -> CanonicalRequest {
    CanonicalRequest::chat(
        vec![
            ChatMessage::system("You are a helpful assistant."),
            ChatMessage::user("Explain in two sentences why the sky is blue."),
        ],
        &SamplingParams {
            temperature: 0.7,
            top_p: 0.95,
            top_k: 40,
            seed: 42,
            max_tokens: 256,
            stop: vec!["\n\n".into()],
        },
    )
}

/// Everything the miner does for a receipt after decoding: hashes and one signature.
fn make_receipt(
    key: &PrivateKeySigner,
    request: &CanonicalRequest,
    prompt: &[u32],
    output: &[u32],
) -> SignedReceipt {
    let receipt = InferenceReceipt {
        netuid: 1,
        miner: key.address(),
        modelId: B256::repeat_byte(0xb1),
        requestHash: request.hash(),
        promptTokensHash: token_ids_hash(prompt),
        outputTokensHash: token_ids_hash(output),
        promptTokenCount: prompt.len() as u32,
        outputTokenCount: output.len() as u32,
        determinismProfile: DETERMINISM_PROFILE.into(),
        blockHeight: 1234,
    };
    SignedReceipt::sign(receipt, 1337, key).expect("sign")
}

fn bench(c: &mut Criterion) {
    let key = PrivateKeySigner::from_slice(&[0x5a; 32]).expect("key");
    let request = request();
    let prompt: Vec<u32> = (0..64).map(|i| 1000 + i).collect();
    let output: Vec<u32> = (0..256).map(|i| 2000 + i).collect();
    c.bench_function(
        "receipt: hash request + tokens, sign (64 prompt, 256 output tokens)",
        |b| {
            b.iter(|| {
                make_receipt(
                    &key,
                    black_box(&request),
                    black_box(&prompt),
                    black_box(&output),
                )
            })
        },
    );
    let signed = make_receipt(&key, &request, &prompt, &output);
    c.bench_function("receipt: verify (recover the signer)", |b| {
        b.iter(|| black_box(&signed).verify().expect("valid"))
    });
    c.bench_function("receipt: JSON form with request", |b| {
        b.iter(|| serde_json::to_string(&black_box(&signed).to_json(Some(&request))).expect("json"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
