//! mycel's tokenizer against llama.cpp on the default model's vocabulary.
//! The fixture was written by scripts/make-tokenizer-fixture.py with llama-cpp-python.

mod common;

use mycel_tokenizer::{Tokenizer, DEFAULT_MODEL};
use serde_json::Value;

const FIXTURE: &str = include_str!("../../../tests/fixtures/tokenizer/smollm2-llama-cpp.json");

fn fixture_cases() -> Vec<(String, Vec<u32>)> {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    assert_eq!(
        fixture["model_sha256"], DEFAULT_MODEL.sha256,
        "fixture made from another model"
    );
    fixture["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let text = case["text"].as_str().expect("text").to_string();
            let ids = case["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|id| id.as_u64().expect("id") as u32)
                .collect();
            (text, ids)
        })
        .collect()
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_gguf_file(&common::default_model_path()).expect("tokenizer from GGUF")
}

#[test]
fn tokenizer_matches_llama_cpp_fixture() {
    let tokenizer = tokenizer();
    let cases = fixture_cases();
    assert!(
        cases.len() >= 40,
        "the fixture should cover at least 40 strings"
    );
    let mut mismatches = Vec::new();
    for (text, expected) in &cases {
        let actual = tokenizer.encode(text, true);
        if &actual != expected {
            mismatches.push(format!(
                "{text:?}\n  llama.cpp: {expected:?}\n  mycel:     {actual:?}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} strings tokenized differently:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}

#[test]
fn decoding_the_fixture_ids_gives_back_the_text() {
    let tokenizer = tokenizer();
    for (text, ids) in fixture_cases() {
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);
    }
}

#[test]
fn special_tokens_are_plain_text_unless_parsed() {
    let tokenizer = tokenizer();
    let im_start = tokenizer.token_id("<|im_start|>").unwrap();
    assert_eq!(
        tokenizer.encode("<|im_start|>user\n", true),
        vec![im_start, 4093, 198]
    );
    let plain = tokenizer.encode("<|im_start|>user\n", false);
    assert!(!plain.contains(&im_start));
    assert_eq!(
        tokenizer.decode(&plain, false).unwrap(),
        "<|im_start|>user\n"
    );
}

#[test]
fn smollm2_tokenizer_facts() {
    let tokenizer = tokenizer();
    assert_eq!(tokenizer.vocab_size(), 49152);
    assert_eq!(tokenizer.eos_token_id(), Some(2));
    assert!(!tokenizer.add_bos());
    assert!(tokenizer.end_of_generation_ids().contains(&2));
}
