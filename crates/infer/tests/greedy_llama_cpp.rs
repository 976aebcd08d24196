//! mycel's forward pass (determinism profile `mycel-det-v1`) against llama.cpp: the same prompt
//! tokens and the same greedy tokens. The fixture was written by
//! scripts/make-tokenizer-fixture-greedy.py with llama-cpp-python (1 thread, AVX2/AVX-512 build).
//!
//! Both engines quantize activations to 8 bits before the Q4_1/Q8_0 products, but llama.cpp
//! stores the activation scales as f16 and sums in a CPU-dependent order, so a near-tie late in a
//! sequence may go either way. mycel's side is bit-reproducible, so the agreement measured here is
//! the same on every machine.

mod common;

use std::ops::ControlFlow;

use mycel_infer::{ChatMessage, SamplingParams, DEFAULT_MODEL};
use serde_json::Value;

const FIXTURE: &str =
    include_str!("../../../tests/fixtures/tokenizer/smollm2-llama-cpp-greedy.json");

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("an id array")
        .iter()
        .map(|v| v.as_u64().expect("an id") as u32)
        .collect()
}

#[test]
fn greedy_tokens_match_llama_cpp() {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    assert_eq!(fixture["model_sha256"], DEFAULT_MODEL.sha256);
    let model = common::default_model();
    let mut report = Vec::new();
    let mut identical = 0;
    for case in fixture["cases"].as_array().expect("cases") {
        let question = case["question"].as_str().expect("question");
        let prompt = model
            .chat_prompt_tokens(&[ChatMessage::user(question)])
            .unwrap();
        assert_eq!(
            prompt,
            ids(&case["prompt_ids"]),
            "prompt tokens of {question:?}"
        );
        let expected = ids(&case["greedy_ids"]);
        let generation = model
            .generate(
                &prompt,
                &SamplingParams::greedy(expected.len() as u32),
                &mut |_| ControlFlow::Continue(()),
            )
            .unwrap();
        let agree = generation
            .output_tokens
            .iter()
            .zip(&expected)
            .take_while(|(a, b)| a == b)
            .count();
        identical += usize::from(agree == expected.len() && generation.output_tokens == expected);
        report.push(format!(
            "{question:?}: {agree}/{} tokens agree; mycel {:?}",
            expected.len(),
            generation.text
        ));
        // The start of every answer must agree.
        assert!(
            agree >= expected.len().min(8),
            "greedy tokens diverge from llama.cpp early:\n{}",
            report.join("\n")
        );
    }
    eprintln!("{}", report.join("\n"));
    // Measured with mycel-det-v1: 3 of the 4 answers are token for token llama.cpp's; the 4th
    // diverges at token 16 of 24 (a near-tie), as candle's forward pass did before.
    assert!(
        identical >= 3,
        "only {identical} of 4 greedy answers equal llama.cpp's:\n{}",
        report.join("\n")
    );
}
