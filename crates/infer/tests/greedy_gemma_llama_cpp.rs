//! mycel's Gemma 3 forward pass (Q5_0, Q8_0, Q4_K and Q6_K products, determinism profile
//! `mycel-det-v1`) against llama.cpp: the same prompt tokens, then the same greedy tokens. The
//! fixture was written by scripts/make-gemma-greedy-fixture.py with llama.cpp's llama-server
//! (1 thread, end-of-generation ignored, so every case runs its full length).
//!
//! The engines round differently: llama.cpp quantizes activations to Q8_0 / Q8_K with f16 block
//! sums, rounds GELU's input to f16 (a lookup table), computes RoPE angles in f32 and stores the
//! KV cache in f16; mycel keeps f32 there. So a near-tie (two tokens within a few hundredths in
//! log-probability) may go either way, and a sequence continues differently from there. mycel's
//! side is bit-reproducible, so the agreement measured here is the same on every machine.

mod common;

use mycel_infer::{ChatMessage, GEMMA3_270M};
use serde_json::Value;

const FIXTURE: &str =
    include_str!("../../../tests/fixtures/tokenizer/gemma3-llama-cpp-greedy.json");

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("an id array")
        .iter()
        .map(|v| v.as_u64().expect("an id") as u32)
        .collect()
}

fn messages(value: &Value) -> Vec<ChatMessage> {
    value
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let content = m["content"].as_str().expect("content");
            match m["role"].as_str().expect("role") {
                "system" => ChatMessage::system(content),
                "assistant" => ChatMessage::assistant(content),
                _ => ChatMessage::user(content),
            }
        })
        .collect()
}

/// `log softmax(logits)[token]`, in f64.
fn log_softmax_of(logits: &[f32], token: u32) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let total: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
    f64::from(logits[token as usize] - max) - total.ln()
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[test]
fn gemma_greedy_tokens_match_llama_cpp() {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    assert_eq!(fixture["model_sha256"], GEMMA3_270M.sha256);
    let model = common::gemma_model();
    let cases = fixture["cases"].as_array().expect("cases");
    let mut report = Vec::new();
    let mut identical = 0;
    let mut worst_deviation = 0f64;
    for (n, case) in cases.iter().enumerate() {
        let prompt = model
            .chat_prompt_tokens(&messages(&case["messages"]))
            .unwrap();
        assert_eq!(
            prompt,
            ids(&case["prompt_ids"]),
            "prompt tokens of case {n}"
        );
        let expected = ids(&case["greedy_ids"]);
        // The protocol's schedule: the prompt in one pass, then one token at a time; the
        // end-of-generation token does not stop it (nor did it llama.cpp).
        let mut decoder = model.decoder();
        let mut logits = decoder.feed(&prompt).unwrap();
        let mut output = Vec::with_capacity(expected.len());
        // While the tokens agree: how far mycel's log-probability of llama.cpp's top token is
        // from llama.cpp's own.
        let mut deviation = 0f64;
        while output.len() < expected.len() {
            let token = argmax(&logits);
            let step = output.len();
            if output[..] == expected[..step] {
                if let Some(theirs) = case["top2_logprobs"][step][0][1].as_f64() {
                    let ours = log_softmax_of(&logits, expected[step]);
                    deviation = deviation.max((ours - theirs).abs());
                    if std::env::var_os("GEMMA_DEBUG").is_some() {
                        eprintln!("case {n} step {step}: ours {ours:.4} theirs {theirs:.4}");
                    }
                }
            }
            output.push(token);
            if output.len() < expected.len() {
                logits = decoder.feed(&[token]).unwrap();
            }
        }
        let agree = output
            .iter()
            .zip(&expected)
            .take_while(|(a, b)| a == b)
            .count();
        identical += usize::from(agree == expected.len());
        let margin = case["top2_logprobs"]
            .get(agree)
            .and_then(|top2| {
                let lp = |i: usize| top2.get(i)?.get(1)?.as_f64();
                Some(lp(0)? - lp(1)?)
            })
            .map_or(String::new(), |m| {
                format!(" (llama.cpp's top-2 log-prob margin there: {m:.3})")
            });
        worst_deviation = worst_deviation.max(deviation);
        report.push(format!(
            "case {n}: {agree}/{} tokens agree{}, log-prob deviation ≤ {deviation:.3}; mycel {:?}",
            expected.len(),
            if agree < expected.len() {
                margin
            } else {
                String::new()
            },
            model.tokenizer().decode(&output, false).unwrap_or_default()
        ));
        assert!(
            agree >= expected.len().min(6),
            "greedy tokens diverge from llama.cpp early:\n{}",
            report.join("\n")
        );
    }
    eprintln!("{}", report.join("\n"));
    // Measured with mycel-det-v1: per step, mycel's log-probability of llama.cpp's token is
    // within ~0.05 of llama.cpp's, up to ~0.7 on low-probability steps (this small model is
    // unsure of its continuations: llama.cpp's own top-2 margins are often under 0.1). A
    // layout or formula error moves them by whole units.
    assert!(
        worst_deviation < 1.0,
        "mycel's log-probabilities stray from llama.cpp's by up to {worst_deviation:.3}:\n{}",
        report.join("\n")
    );
    // Measured: 2 of the 8 continuations are llama.cpp's token for token over 32 tokens; the
    // others agree for 7 to 18 tokens and part where llama.cpp's top-2 margin is 0.03–0.16.
    assert!(
        identical >= 2,
        "only {identical} of {} greedy continuations equal llama.cpp's:\n{}",
        cases.len(),
        report.join("\n")
    );
}
