//! Batched decoding is batch-invariant: requests decoded together ([`Model::step`] over many
//! sequences, one forward pass per step, requests joining and leaving between steps, prompts
//! prefilled in pieces) sample from logits that are bit for bit those of decoding each request
//! alone. Every logits vector a request samples from is hashed (SHA-256 of its f32 bits, in
//! order); alone and batched, the hashes, the tokens and the text must be equal.

mod common;

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use mycel_infer::{ChatMessage, Model, SamplingParams, Sequence};
use sha2::{Digest, Sha256};

struct Request {
    prompt: Vec<u32>,
    params: SamplingParams,
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    tokens: Vec<u32>,
    text: String,
    /// The text as streamed, piece by piece, joined.
    streamed: String,
    logits_digest: String,
    /// How many logits vectors were hashed (one per sampled token).
    logits_seen: usize,
}

/// `n` requests of varied shapes: short and long prompts (the long ones take several prefill
/// pieces), greedy and seeded sampling, different lengths, one with a stop sequence.
fn requests(model: &Model, n: usize) -> Vec<Request> {
    (0..n)
        .map(|i| {
            let user = match i % 4 {
                0 => format!("What is {i} plus {}?", i * 3),
                1 => format!("Write a haiku about the number {i}."),
                2 => format!(
                    "Summarise this: {}",
                    "the river carried the mill's flour to the sea, sack by sack. ".repeat(12 + i)
                ),
                _ => format!("List {} colours.", 2 + i % 5),
            };
            let prompt = model
                .chat_prompt_tokens(&[ChatMessage::system("Be brief."), ChatMessage::user(&user)])
                .expect("a chat prompt");
            let max_tokens = 4 + (i as u32 * 7) % 21;
            let mut params = match i % 3 {
                0 => SamplingParams::greedy(max_tokens),
                _ => SamplingParams {
                    temperature: 0.8,
                    top_p: 0.95,
                    top_k: 40,
                    seed: 1000 + i as u64,
                    max_tokens,
                    stop: Vec::new(),
                },
            };
            if i % 5 == 4 {
                params.stop = vec![".".into()];
            }
            Request { prompt, params }
        })
        .collect()
}

/// A started sequence whose sampled-from logits are hashed into the returned hasher.
fn start<'m>(model: &'m Model, request: &Request) -> (Sequence<'m>, Arc<Mutex<(Sha256, usize)>>) {
    let mut sequence = model
        .start(&request.prompt, &request.params)
        .expect("a valid request");
    let hasher = Arc::new(Mutex::new((Sha256::new(), 0usize)));
    let sink = Arc::clone(&hasher);
    sequence.observe_logits(move |logits| {
        let mut sink = sink.lock().unwrap();
        sink.0.update(le_bytes(logits));
        sink.1 += 1;
    });
    (sequence, hasher)
}

#[cfg(not(target_endian = "little"))]
compile_error!("le_bytes reads f32 values' memory as their little-endian bytes");

/// The f32 values' little-endian bytes, as one slice (this test binary is not optimised: a
/// per-value loop over 49,152 logits per token would dominate its time).
fn le_bytes(values: &[f32]) -> &[u8] {
    // SAFETY: any f32 is 4 initialised bytes; u8 has no alignment requirement; the length is
    // the slice's size in bytes.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

/// Decodes `requests` with at most `max_batch` in flight: a request joins every `join_every`
/// steps (or at once when nothing runs), prompts are prefilled `prefill_budget` tokens per step
/// in all, finished requests leave. Returns the outcomes in request order and the largest batch
/// seen.
fn run(
    model: &Model,
    requests: &[Request],
    max_batch: usize,
    prefill_budget: usize,
    join_every: usize,
) -> (Vec<Outcome>, usize) {
    struct Slot {
        index: usize,
        hasher: Arc<Mutex<(Sha256, usize)>>,
        streamed: String,
    }
    let mut outcomes: Vec<Option<Outcome>> = (0..requests.len()).map(|_| None).collect();
    let mut slots: Vec<Slot> = Vec::new();
    let mut sequences: Vec<Sequence<'_>> = Vec::new();
    let (mut next, mut step, mut widest) = (0, 0usize, 0);
    while next < requests.len() || !sequences.is_empty() {
        let may_join = sequences.is_empty() || step.is_multiple_of(join_every);
        if may_join && next < requests.len() && sequences.len() < max_batch {
            let (sequence, hasher) = start(model, &requests[next]);
            sequences.push(sequence);
            slots.push(Slot {
                index: next,
                hasher,
                streamed: String::new(),
            });
            next += 1;
        }
        widest = widest.max(sequences.len());
        model
            .step(
                &mut sequences,
                prefill_budget,
                &|| false,
                &mut |i, event| {
                    slots[i].streamed.push_str(&event.text);
                    ControlFlow::Continue(())
                },
            )
            .expect("a step");
        step += 1;
        let mut i = 0;
        while i < sequences.len() {
            if sequences[i].finish_reason().is_none() {
                i += 1;
                continue;
            }
            let mut slot = slots.remove(i);
            let generation = sequences
                .remove(i)
                .into_generation(&mut |event| {
                    slot.streamed.push_str(&event.text);
                    ControlFlow::Continue(())
                })
                .expect("a generation");
            let (hasher, seen) = std::mem::take(&mut *slot.hasher.lock().unwrap());
            outcomes[slot.index] = Some(Outcome {
                tokens: generation.output_tokens,
                text: generation.text,
                streamed: slot.streamed,
                logits_digest: hex::encode(hasher.finalize()),
                logits_seen: seen,
            });
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.expect("every request finished"))
        .collect();
    (outcomes, widest)
}

/// Each request alone (a batch of one; the first ones checked against the plain
/// [`Model::generate`]): the reference.
fn alone(model: &Model, requests: &[Request]) -> Vec<Outcome> {
    requests
        .iter()
        .enumerate()
        .map(|(i, request)| {
            let mut streamed = String::new();
            let (sequence, hasher) = start(model, request);
            let mut batch = [sequence];
            while batch[0].finish_reason().is_none() {
                model
                    .step(&mut batch, 128, &|| false, &mut |_, event| {
                        streamed.push_str(&event.text);
                        ControlFlow::Continue(())
                    })
                    .expect("a step");
            }
            let [sequence] = batch;
            let generation = sequence
                .into_generation(&mut |event| {
                    streamed.push_str(&event.text);
                    ControlFlow::Continue(())
                })
                .expect("a generation");
            if i < 3 {
                let plain = model
                    .generate(&request.prompt, &request.params, &mut |_| {
                        ControlFlow::Continue(())
                    })
                    .expect("generate");
                assert_eq!(plain.output_tokens, generation.output_tokens);
                assert_eq!(plain.text, generation.text);
            }
            let (hasher, seen) = std::mem::take(&mut *hasher.lock().unwrap());
            Outcome {
                tokens: generation.output_tokens,
                text: generation.text,
                streamed,
                logits_digest: hex::encode(hasher.finalize()),
                logits_seen: seen,
            }
        })
        .collect()
}

fn assert_same(reference: &[Outcome], batched: &[Outcome], what: &str) {
    for (i, (a, b)) in reference.iter().zip(batched).enumerate() {
        assert_eq!(a, b, "request {i} differs {what}");
        assert_eq!(a.logits_seen, a.tokens.len());
        assert_eq!(a.text, a.streamed, "request {i}: the streamed text");
    }
}

#[test]
fn batched_decoding_gives_the_bits_of_decoding_alone() {
    let model = common::default_model();
    let requests = requests(model, 16);
    assert!(
        requests.iter().any(|r| r.prompt.len() > 128),
        "a prompt longer than one prefill piece"
    );
    let reference = alone(model, &requests);
    assert!(reference.iter().any(|o| o.tokens.len() > 10));
    // Batches of up to 2, 5 and 16, requests joining every step, every second or every third,
    // prompts in pieces of 128 or 37 tokens per step.
    for (max_batch, budget, join_every) in [(2, 128, 1), (5, 37, 3), (16, 37, 2)] {
        let (batched, widest) = run(model, &requests, max_batch, budget, join_every);
        assert!(widest >= max_batch.min(8), "batches of {widest} only");
        assert_same(
            &reference,
            &batched,
            &format!("in batches of up to {max_batch} (prefill {budget}/step)"),
        );
    }
}

#[test]
fn gemma_batched_decoding_gives_the_bits_of_decoding_alone() {
    let model = common::gemma_model();
    let requests = requests(model, 6);
    let reference = alone(model, &requests);
    let (batched, widest) = run(model, &requests, 6, 64, 1);
    assert!(widest >= 4, "batches of {widest} only");
    assert_same(&reference, &batched, "in Gemma batches");
}

#[test]
fn a_step_with_every_sequence_finished_does_nothing() {
    let model = common::default_model();
    let requests = requests(model, 1);
    let mut batch = [model
        .start(&requests[0].prompt, &SamplingParams::greedy(1))
        .unwrap()];
    let mut events = 0;
    model
        .step(&mut batch, 128, &|| false, &mut |_, _| {
            events += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(
        batch[0].finish_reason().is_some(),
        "one token asked, one sampled"
    );
    model
        .step(&mut batch, 128, &|| false, &mut |_, _| {
            events += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(
        batch[0].output_len(),
        1,
        "a finished sequence is not stepped again"
    );
    assert!(events <= 1);
}
