//! A cancelled generation stops within a layer, before any token.

mod common;

use std::cell::Cell;

use mycel_infer::{InferError, SamplingParams};

#[test]
fn a_cancelled_generation_stops_during_the_prefill() {
    let model = common::default_model();
    let prompt = model
        .prompt_format()
        .completion_tokens(&"Once upon a time there was a fox. ".repeat(40), usize::MAX)
        .expect("tokens");
    assert!(prompt.len() > 300, "a prompt of several chunks");
    let asked = Cell::new(0u32);
    // Cancel at the 5th question: during the first chunk of the prefill, before any token.
    let cancelled = || {
        asked.set(asked.get() + 1);
        asked.get() >= 5
    };
    let mut tokens = 0;
    let result =
        model.generate_cancellable(&prompt, &SamplingParams::greedy(8), &cancelled, &mut |_| {
            tokens += 1;
            std::ops::ControlFlow::Continue(())
        });
    assert!(matches!(result, Err(InferError::Cancelled)), "{result:?}");
    assert_eq!(asked.get(), 5, "asked once per layer until it said yes");
    assert_eq!(tokens, 0);
}
