//! Generation with the default model: determinism (runs, processes, thread counts), coherence,
//! stop sequences and streaming.

mod common;

use std::ops::ControlFlow;
use std::process::Command;

use mycel_infer::{
    ChatMessage, FinishReason, Generation, SamplingParams, TokenEvent, DEFAULT_MODEL,
};

fn chat(question: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::user(question)]
}

/// A short prompt (no default system prompt) keeps the prefill cheap in the determinism tests.
fn brief(question: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("Be brief."),
        ChatMessage::user(question),
    ]
}

fn run(messages: &[ChatMessage], params: &SamplingParams) -> Generation {
    common::default_model()
        .complete_chat(messages, params, &mut |_| ControlFlow::Continue(()))
        .expect("generation")
}

fn sampled(seed: u64, max_tokens: u32) -> SamplingParams {
    SamplingParams {
        temperature: 0.8,
        top_p: 0.9,
        top_k: 50,
        seed,
        max_tokens,
        stop: Vec::new(),
    }
}

#[test]
fn model_id_is_the_pinned_sha256() {
    let model = common::default_model();
    assert_eq!(model.id().to_hex(), DEFAULT_MODEL.sha256);
    let info = model.info();
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.block_count, 30);
    assert_eq!(info.embedding_length, 576);
    assert_eq!(info.vocab_size, 49152);
    assert_eq!(info.tensor_types.get("Q4_1"), Some(&210));
}

#[test]
fn chat_prompt_uses_the_default_system_prompt() {
    let model = common::default_model();
    let tokens = model.chat_prompt_tokens(&chat("Hi")).unwrap();
    let text = model.tokenizer().decode(&tokens, false).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(tokens[..3], [1, 9690, 198]);
}

#[test]
fn greedy_output_is_coherent() {
    let generation = run(
        &chat("What is the capital city of Germany?"),
        &SamplingParams::greedy(40),
    );
    assert_eq!(generation.finish_reason, FinishReason::EndOfGeneration);
    assert_eq!(generation.text, "The capital city of Germany is Berlin.");
    let generation = run(&chat("What is 2+2?"), &SamplingParams::greedy(40));
    assert!(
        generation.text.contains('4'),
        "greedy answer: {:?}",
        generation.text
    );
    if let Some(rate) = generation.decode_tokens_per_second() {
        eprintln!("greedy decode: {rate:.1} tokens/s");
    }
}

#[test]
fn greedy_and_seeded_generation_repeat_exactly_in_one_process() {
    let messages = brief("Write a poem about mushrooms.");
    let greedy = SamplingParams::greedy(12);
    assert_eq!(
        run(&messages, &greedy).output_tokens,
        run(&messages, &greedy).output_tokens
    );
    let a = run(&messages, &sampled(42, 12));
    let b = run(&messages, &sampled(42, 12));
    assert_eq!(a.output_tokens, b.output_tokens);
    let c = run(&messages, &sampled(43, 12));
    assert_ne!(
        a.output_tokens, c.output_tokens,
        "a different seed should change the sample"
    );
}

/// The child half of `same_tokens_with_one_and_two_threads`: does nothing unless started by it.
#[test]
fn child_generation_for_thread_test() {
    if std::env::var_os("MYCEL_INFER_CHILD").is_none() {
        return;
    }
    let messages = brief("Why is the sky blue?");
    let greedy = run(&messages, &SamplingParams::greedy(16));
    let seeded = run(&messages, &sampled(7, 16));
    println!("GREEDY {:?}", greedy.output_tokens);
    println!("SEEDED {:?}", seeded.output_tokens);
    println!(
        "RATE {:.2}",
        greedy.decode_tokens_per_second().unwrap_or(0.0)
    );
}

fn child_tokens(threads: usize) -> (String, String, f64) {
    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new(exe)
        .args([
            "child_generation_for_thread_test",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MYCEL_INFER_CHILD", "1")
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .expect("run the child test process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = |prefix: &str| {
        stdout
            .lines()
            // libtest prints "test name ... " without a newline, so a line may start with it.
            .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("child printed no {prefix}: {stdout}"))
            .to_string()
    };
    let rate = line("RATE ").trim().parse().unwrap_or(0.0);
    (line("GREEDY "), line("SEEDED "), rate)
}

#[test]
fn same_tokens_with_one_and_two_threads() {
    // Pre-fetch once so that the children do not race to download.
    common::default_model_path();
    let one = child_tokens(1);
    let two = child_tokens(2);
    eprintln!(
        "greedy decode: {:.1} tokens/s on 1 thread, {:.1} on 2 threads",
        one.2, two.2
    );
    assert_eq!(one.0, two.0, "greedy tokens differ between 1 and 2 threads");
    assert_eq!(one.1, two.1, "seeded tokens differ between 1 and 2 threads");
    // Two processes with the same thread count agree too.
    let again = child_tokens(2);
    assert_eq!(two.0, again.0);
    assert_eq!(two.1, again.1);
}

#[test]
fn streamed_text_equals_the_final_text() {
    let model = common::default_model();
    let mut streamed = String::new();
    let mut events: Vec<TokenEvent> = Vec::new();
    let generation = model
        .complete_chat(
            &brief("List three colors."),
            &sampled(1, 20),
            &mut |event| {
                streamed.push_str(&event.text);
                events.push(event.clone());
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert_eq!(streamed, generation.text);
    let streamed_tokens: Vec<u32> = events.iter().map(|e| e.token).collect();
    let expected: Vec<u32> = generation
        .output_tokens
        .iter()
        .copied()
        .filter(|t| !model.end_of_generation_ids().contains(t))
        .collect();
    assert_eq!(streamed_tokens, expected);
}

#[test]
fn max_tokens_and_stop_sequences_end_generation() {
    let messages = chat("Count from 1 to 20, separated by commas.");
    let long = run(&messages, &SamplingParams::greedy(30));
    assert!(
        long.text.contains('5'),
        "expected counting: {:?}",
        long.text
    );

    let short = run(&messages, &SamplingParams::greedy(3));
    assert_eq!(short.output_tokens.len(), 3);
    assert_eq!(short.finish_reason, FinishReason::MaxTokens);

    let mut params = SamplingParams::greedy(30);
    params.stop = vec!["5".into()];
    let mut streamed = String::new();
    let stopped = common::default_model()
        .complete_chat(&messages, &params, &mut |event| {
            streamed.push_str(&event.text);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(stopped.finish_reason, FinishReason::StopSequence);
    assert!(!stopped.text.contains('5'));
    assert!(long.text.starts_with(&stopped.text));
    assert_eq!(streamed, stopped.text);
}

#[test]
fn cancelling_from_the_callback_stops() {
    let mut seen = 0;
    let generation = common::default_model()
        .complete_chat(
            &brief("Tell me a story."),
            &SamplingParams::greedy(50),
            &mut |_| {
                seen += 1;
                if seen == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
    assert_eq!(generation.finish_reason, FinishReason::Cancelled);
    assert_eq!(generation.output_tokens.len(), 2);
}

#[test]
fn bad_requests_are_typed_errors() {
    let model = common::default_model();
    let noop = &mut |_: &TokenEvent| ControlFlow::Continue(());
    assert!(model
        .generate(&[], &SamplingParams::greedy(1), noop)
        .is_err());
    assert!(model
        .generate(&[999_999], &SamplingParams::greedy(1), noop)
        .is_err());
    let too_long = vec![198u32; model.context_limit()];
    assert!(model
        .generate(&too_long, &SamplingParams::greedy(1), noop)
        .is_err());
    let mut bad = SamplingParams::greedy(1);
    bad.top_p = 1.5;
    assert!(model.generate(&[1], &bad, noop).is_err());
}
