//! Single-stream greedy decode of the default model, for scripts/bench-infer: time to first token
//! (prompt prefill + first arg-max) and decode tokens/s over a fixed number of tokens (end-of-
//! generation tokens do not stop it, so every engine decodes the same count).
//!
//! ```sh
//! RAYON_NUM_THREADS=1 cargo bench -p mycel-infer --bench decode -- --engine mycel --tokens 128
//! RAYON_NUM_THREADS=1 cargo bench -p mycel-infer --bench decode -- --repeat 75 --tokens 2
//! ```
//!
//! `--repeat N` asks the question N times in one user message (separated by spaces), for a long
//! prompt: 17 gives ~250 prompt tokens, 75 ~1,000, so TTFT measures prefill. `--prompt-tokens N`
//! cuts (or repeats) the chat prompt to exactly N tokens, as `llama-bench -p N` measures.
//!
//! `--batch N` decodes N sequences of the prompt together (the miner's continuous batching,
//! `Model::step`) and reports the aggregate decode tokens/s.
//!
//! `--model default|gemma3|PATH`: the default model (SmolLM2-135M Q4_1), Gemma 3 270M Q4_K_M
//! (fetched on first use), or any GGUF file mycel runs. Compare with llama.cpp:
//!
//! ```sh
//! RAYON_NUM_THREADS=1 cargo bench -p mycel-infer --bench decode -- --model gemma3 \
//!     --prompt-tokens 251 --tokens 129
//! llama-bench -m ~/.cache/mycel/models/gemma-3-270m-q4_k_m.gguf -p 251 -n 128 -t 1 -r 1 -o json
//! ```
//!
//! Engines: `mycel` (this crate's bit-reproducible kernels, profile `mycel-det-v1`) and `candle`
//! (candle 0.11's quantized llama, the fastest path candle offers on CPU, with run-time SIMD
//! choices that make its logits CPU-dependent). Threads: `RAYON_NUM_THREADS` for both. Prints one
//! JSON object per run.

use std::fs::File;
use std::io::BufReader;
use std::time::Instant;

use candle_core::quantized::gguf_file::Content;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use mycel_infer::{
    default_cache_dir, kernels, ChatMessage, Model, DETERMINISM_PROFILE, GEMMA3_270M,
};

const QUESTION: &str = "Write a long story about a dragon who learns to bake bread.";

struct Args {
    engine: String,
    model: String,
    prompt_tokens: Option<usize>,
    tokens: usize,
    runs: usize,
    repeat: usize,
    batch: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        engine: "mycel".into(),
        model: "default".into(),
        prompt_tokens: None,
        tokens: 128,
        runs: 1,
        repeat: 1,
        batch: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--engine" => args.engine = value()?,
            "--model" => args.model = value()?,
            "--prompt-tokens" => {
                let n = value()?
                    .parse()
                    .map_err(|e| format!("--prompt-tokens: {e}"))?;
                args.prompt_tokens = Some(n);
            }
            "--tokens" => args.tokens = value()?.parse().map_err(|e| format!("--tokens: {e}"))?,
            "--runs" => args.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--repeat" => args.repeat = value()?.parse().map_err(|e| format!("--repeat: {e}"))?,
            "--batch" => args.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            // cargo bench passes --bench to harness-less targets.
            "--bench" => {}
            "--help" | "-h" => {
                return Err(
                    "usage: decode [--engine mycel|candle] [--model default|gemma3|PATH] \
                     [--tokens N] [--runs N] [--repeat N] [--prompt-tokens N] [--batch N]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other}; try --help")),
        }
    }
    if args.repeat == 0 {
        return Err("--repeat must be at least 1".into());
    }
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    if args.tokens < 2 {
        return Err("--tokens must be at least 2".into());
    }
    Ok(args)
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

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time of this process (all threads, user + system) in seconds, from /proc/self/stat: the
/// figure that holds when other work shares the machine.
fn process_cpu_seconds() -> f64 {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let model = match args.model.as_str() {
        "default" => Model::load_default(&default_cache_dir()?, &mut |_| {})?,
        "gemma3" => Model::load_pinned(&GEMMA3_270M, &default_cache_dir()?, &mut |_| {})?,
        path => Model::load(std::path::Path::new(path))?,
    };
    if args.engine == "candle" && args.model != "default" {
        return Err("--engine candle runs only the default model".into());
    }
    let question = vec![QUESTION; args.repeat].join(" ");
    let mut prompt = model.chat_prompt_tokens(&[ChatMessage::user(&question)])?;
    if let Some(n) = args.prompt_tokens {
        prompt = prompt.iter().copied().cycle().take(n.max(1)).collect();
    }
    let threads = candle_core::utils::get_num_threads();
    // candle's weights, loaded only when measuring candle (so mycel's peak memory is its own).
    let candle = if args.engine == "candle" {
        let path = default_cache_dir()?.join("SmolLM2-135M-Instruct.Q4_1.gguf");
        let mut reader = BufReader::new(File::open(&path)?);
        let content = Content::read(&mut reader)?;
        Some(ModelWeights::from_gguf(content, &mut reader, &Device::Cpu)?)
    } else if args.engine == "mycel" {
        None
    } else {
        return Err(format!("unknown engine {}; use mycel or candle", args.engine).into());
    };
    if args.batch > 1 {
        if args.engine != "mycel" {
            return Err("--batch runs the mycel engine only".into());
        }
        return batched(&model, &prompt, &args);
    }
    for run in 0..args.runs {
        let started = Instant::now();
        let mut tokens = Vec::with_capacity(args.tokens);
        let decode_cpu_started;
        let (first_token_s, decode_s) = match &candle {
            None => {
                let mut decoder = model.decoder();
                let logits = decoder.feed(&prompt)?;
                tokens.push(argmax(&logits));
                let first = started.elapsed().as_secs_f64();
                decode_cpu_started = process_cpu_seconds();
                let decode_started = Instant::now();
                while tokens.len() < args.tokens {
                    let logits = decoder.feed(&tokens[tokens.len() - 1..])?;
                    tokens.push(argmax(&logits));
                }
                (first, decode_started.elapsed().as_secs_f64())
            }
            Some(weights) => {
                let mut weights = weights.clone();
                weights.clear_kv_cache();
                let forward = |weights: &mut ModelWeights, ids: &[u32], at: usize| {
                    let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
                    weights.forward(&input, at)?.squeeze(0)?.to_vec1::<f32>()
                };
                tokens.push(argmax(&forward(&mut weights, &prompt, 0)?));
                let first = started.elapsed().as_secs_f64();
                decode_cpu_started = process_cpu_seconds();
                let decode_started = Instant::now();
                while tokens.len() < args.tokens {
                    let at = prompt.len() + tokens.len() - 1;
                    let logits = forward(&mut weights, &tokens[tokens.len() - 1..], at)?;
                    tokens.push(argmax(&logits));
                }
                (first, decode_started.elapsed().as_secs_f64())
            }
        };
        let decode_cpu_s = process_cpu_seconds() - decode_cpu_started;
        let decode_tokens = tokens.len() - 1;
        let report = serde_json::json!({
            "engine": args.engine,
            "model": model.info().name,
            "profile": if candle.is_none() { DETERMINISM_PROFILE } else { "none" },
            "simd": if candle.is_none() { kernels::simd_level().name() } else { "candle-runtime" },
            "threads": threads,
            "run": run,
            "prompt_tokens": prompt.len(),
            "generated_tokens": tokens.len(),
            "ttft_ms": first_token_s * 1e3,
            "decode_tok_s": decode_tokens as f64 / decode_s,
            "decode_cpu_ms_per_token": decode_cpu_s * 1e3 / decode_tokens as f64,
            "peak_rss_mib": peak_rss_kib() as f64 / 1024.0,
            "tokens": &tokens,
        });
        println!("{report}");
    }
    Ok(())
}

/// `--batch N`: N greedy sequences of the same prompt decoded together ([`Model::step`], the
/// miner's continuous batching; the work per step does not depend on the tokens, and equal
/// sequences all run to the same length). Prefills them all, then times the decode steps:
/// aggregate tokens/s over the batch.
fn batched(model: &Model, prompt: &[u32], args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    use mycel_infer::SamplingParams;
    use std::ops::ControlFlow;
    let threads = candle_core::utils::get_num_threads();
    for run in 0..args.runs {
        let mut batch = (0..args.batch)
            .map(|_| model.start(prompt, &SamplingParams::greedy(args.tokens as u32)))
            .collect::<Result<Vec<_>, _>>()?;
        let started = Instant::now();
        let step = |batch: &mut [mycel_infer::Sequence<'_>]| {
            model.step(batch, usize::MAX, &|| false, &mut |_, _| {
                ControlFlow::Continue(())
            })
        };
        step(&mut batch)?;
        let first = started.elapsed().as_secs_f64();
        let cpu_started = process_cpu_seconds();
        let decode_started = Instant::now();
        while batch.iter().any(|s| s.finish_reason().is_none()) {
            step(&mut batch)?;
        }
        let decode_s = decode_started.elapsed().as_secs_f64();
        let decoded: usize = batch.iter().map(|s| s.output_len() - 1).sum();
        let report = serde_json::json!({
            "engine": "mycel",
            "model": model.info().name,
            "profile": DETERMINISM_PROFILE,
            "simd": kernels::simd_level().name(),
            "threads": threads,
            "run": run,
            "batch": args.batch,
            "prompt_tokens": prompt.len(),
            "ttft_ms": first * 1e3,
            "generated_tokens": batch.iter().map(|s| s.output_len()).max(),
            "decode_tok_s": decoded as f64 / decode_s,
            "decode_cpu_ms_per_token": (process_cpu_seconds() - cpu_started) * 1e3 / decoded as f64,
            "peak_rss_mib": peak_rss_kib() as f64 / 1024.0,
        });
        println!("{report}");
    }
    Ok(())
}
