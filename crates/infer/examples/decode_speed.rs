//! Greedy decode speed of the default model: `cargo run -p mycel-infer --example decode_speed [N]`.
//! Thread count from RAYON_NUM_THREADS.

use std::ops::ControlFlow;

use mycel_infer::{default_cache_dir, ChatMessage, Model, SamplingParams};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tokens: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    let model = Model::load_default(&default_cache_dir()?, &mut |p| eprintln!("{p:?}"))?;
    let messages = [ChatMessage::user(
        "Explain in two sentences why the sky is blue.",
    )];
    let mut params = SamplingParams::greedy(tokens);
    params.stop.clear();
    for round in 0..2 {
        let generation =
            model.complete_chat(&messages, &params, &mut |_| ControlFlow::Continue(()))?;
        println!(
            "round {round}: prompt {} tokens, prefill {:.1} ms, {} output tokens, decode {:.1} tokens/s",
            generation.prompt_tokens.len(),
            generation.prefill_time.as_secs_f64() * 1e3,
            generation.output_tokens.len(),
            generation.decode_tokens_per_second().unwrap_or(0.0)
        );
    }
    Ok(())
}
