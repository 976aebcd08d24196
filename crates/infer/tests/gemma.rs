//! Gemma 3 270M (Q4_K_M: Q5_0, Q8_0, Q4_K and Q6_K weights) on mycel's forward pass.

mod common;

use std::ops::ControlFlow;

use mycel_infer::{ChatMessage, SamplingParams};

#[test]
fn gemma_greedy_answer_is_coherent() {
    let model = common::gemma_model();
    let info = model.info();
    assert_eq!(info.architecture, "gemma3");
    let generation = model
        .complete_chat(
            &[ChatMessage::user("What is the capital of France?")],
            &SamplingParams::greedy(24),
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
    eprintln!(
        "prompt {:?}\noutput {:?}\ntext {:?}",
        generation.prompt_tokens, generation.output_tokens, generation.text
    );
    assert!(generation.text.contains("Paris"), "{:?}", generation.text);
}
