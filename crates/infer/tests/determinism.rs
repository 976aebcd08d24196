//! Bit-reproducibility of the logits (determinism profile `mycel-det-v1`): across the grouping of
//! tokens into forward passes, across the instruction set of the kernels (AVX2 against portable
//! code in the same process family), and across CPUs — the same test binary run under
//! `qemu-x86_64 -cpu Nehalem`, a CPU without AVX, AVX2 or AVX-512, must print the same SHA-256 of
//! every logit it computed as the native run.

mod common;

use std::process::Command;

use mycel_infer::{kernels, ChatMessage, Model, DETERMINISM_PROFILE};
use sha2::{Digest, Sha256};

fn prompt(model: &Model) -> Vec<u32> {
    model
        .chat_prompt_tokens(&[ChatMessage::system("Be brief."), ChatMessage::user("Hi")])
        .unwrap()
}

fn bits(logits: &[f32]) -> Vec<u32> {
    logits.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn prompt_in_one_pass_equals_token_by_token() {
    let model = common::default_model();
    let prompt = prompt(model);
    let mut whole = model.decoder();
    let mut stepwise = model.decoder();
    let a = whole.feed(&prompt).unwrap();
    let mut b = Vec::new();
    for &token in &prompt {
        b = stepwise.feed(&[token]).unwrap();
    }
    assert_eq!(
        bits(&a),
        bits(&b),
        "logits depend on how the prompt was fed"
    );
    // Split in two uneven passes, and one more token after each.
    let mut split = model.decoder();
    split.feed(&prompt[..5]).unwrap();
    let c = split.feed(&prompt[5..]).unwrap();
    assert_eq!(bits(&a), bits(&c));
    let next = [504u32];
    assert_eq!(
        bits(&whole.feed(&next).unwrap()),
        bits(&split.feed(&next).unwrap())
    );
    assert_eq!(whole.position(), prompt.len() + 1);
}

#[test]
fn decoder_rejects_what_the_model_cannot_run() {
    let model = common::default_model();
    let mut decoder = model.decoder();
    assert!(decoder.feed(&[]).is_err());
    assert!(decoder.feed(&[u32::MAX]).is_err());
    let too_long = vec![198u32; model.context_limit() + 1];
    assert!(decoder.feed(&too_long).is_err());
    assert_eq!(decoder.position(), 0, "a rejected feed changes nothing");
}

/// The child half of the cross-CPU tests: prefill a short chat, decode 3 greedy tokens, print
/// the kernels it used, the tokens and the SHA-256 of all logits. Does nothing unless started by
/// `child_run`; `MYCEL_INFER_DIGEST_CHILD=gemma` runs Gemma 3 270M instead of the default model.
#[test]
fn child_logit_digest() {
    let Some(which) = std::env::var_os("MYCEL_INFER_DIGEST_CHILD") else {
        return;
    };
    let model = match which.to_str() {
        Some("gemma") => common::gemma_model(),
        _ => common::default_model(),
    };
    let mut decoder = model.decoder();
    let mut hasher = Sha256::new();
    let mut logits = decoder.feed(&prompt(model)).unwrap();
    let mut tokens = Vec::new();
    for step in 0..3 {
        for v in &logits {
            hasher.update(v.to_le_bytes());
        }
        // Greedy: the arg-max, ties to the lowest id.
        let mut best = 0;
        for (i, v) in logits.iter().enumerate() {
            if *v > logits[best] {
                best = i;
            }
        }
        tokens.push(best as u32);
        if step < 2 {
            logits = decoder.feed(&[best as u32]).unwrap();
        }
    }
    println!("SIMD {}", kernels::simd_level().name());
    println!("TOKENS {tokens:?}");
    println!("DIGEST {}", hex::encode(hasher.finalize()));
}

struct ChildRun {
    simd: String,
    tokens: String,
    digest: String,
}

/// Runs `child_logit_digest` on the default model in a new process, optionally through a
/// wrapper such as qemu.
fn child_run(wrapper: &[&str], envs: &[(&str, &str)]) -> ChildRun {
    child_run_model("default", wrapper, envs)
}

/// [`child_run`] on `model` (`default` or `gemma`).
fn child_run_model(model: &str, wrapper: &[&str], envs: &[(&str, &str)]) -> ChildRun {
    let exe = std::env::current_exe().expect("test binary path");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    command
        .args([
            "child_logit_digest",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MYCEL_INFER_DIGEST_CHILD", model)
        .envs(envs.iter().copied());
    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "cannot start {:?}: {e}{}",
            command.get_program(),
            if wrapper.is_empty() {
                ""
            } else {
                " — install Debian's qemu-user package (apt-get install qemu-user)"
            }
        )
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| {
                l.split_once(prefix)
                    .map(|(_, rest)| rest.trim().to_string())
            })
            .unwrap_or_else(|| panic!("child printed no {prefix}: {stdout}"))
    };
    ChildRun {
        simd: line("SIMD "),
        tokens: line("TOKENS "),
        digest: line("DIGEST "),
    }
}

#[test]
fn portable_kernels_give_the_same_logits_as_simd_ones() {
    common::default_model_path();
    let native = child_run(&[], &[("RAYON_NUM_THREADS", "2")]);
    let portable = child_run(
        &[],
        &[("RAYON_NUM_THREADS", "1"), ("MYCEL_INFER_SIMD", "portable")],
    );
    assert_eq!(portable.simd, "portable");
    eprintln!(
        "{DETERMINISM_PROFILE}: {} (2 threads) and portable (1 thread) both give tokens {} and \
         logits digest {}",
        native.simd, native.tokens, native.digest
    );
    assert_eq!(native.tokens, portable.tokens);
    assert_eq!(native.digest, portable.digest);
}

/// The same binary on an emulated Nehalem (SSE4.2, no AVX): CPUID tells the kernels there is no
/// AVX2, and every instruction runs in qemu's software floating point.
#[test]
#[cfg(target_arch = "x86_64")]
fn same_logits_on_a_cpu_without_avx2() {
    common::default_model_path();
    let native = child_run(&[], &[("RAYON_NUM_THREADS", "2")]);
    let emulated = child_run(
        &["qemu-x86_64", "-cpu", "Nehalem"],
        &[("RAYON_NUM_THREADS", "1")],
    );
    assert_eq!(
        emulated.simd, "portable",
        "qemu's Nehalem should report no AVX2"
    );
    eprintln!(
        "native ({}) and qemu Nehalem ({}): tokens {} / {}, logits digest {} / {}",
        native.simd, emulated.simd, native.tokens, emulated.tokens, native.digest, emulated.digest
    );
    assert_eq!(native.tokens, emulated.tokens);
    assert_eq!(native.digest, emulated.digest);
}

/// Gemma 3 270M (Q5_0, Q8_0, Q4_K and Q6_K products, GELU, two RoPE tables): AVX2 on 2
/// threads and portable code on 1 give the same logits.
#[test]
fn gemma_portable_kernels_give_the_same_logits_as_simd_ones() {
    common::gemma_model_path();
    let native = child_run_model("gemma", &[], &[("RAYON_NUM_THREADS", "2")]);
    let portable = child_run_model(
        "gemma",
        &[],
        &[("RAYON_NUM_THREADS", "1"), ("MYCEL_INFER_SIMD", "portable")],
    );
    assert_eq!(portable.simd, "portable");
    eprintln!(
        "{DETERMINISM_PROFILE} gemma3: {} (2 threads) and portable (1 thread) both give tokens {} \
         and logits digest {}",
        native.simd, native.tokens, native.digest
    );
    assert_eq!(native.tokens, portable.tokens);
    assert_eq!(native.digest, portable.digest);
    assert_eq!(native.digest, GEMMA_DIGEST, "the pinned Gemma logits");
}

/// Gemma 3 270M on an emulated Nehalem (no AVX): the same logits as natively.
#[test]
#[cfg(target_arch = "x86_64")]
fn gemma_same_logits_on_a_cpu_without_avx2() {
    common::gemma_model_path();
    let emulated = child_run_model(
        "gemma",
        &["qemu-x86_64", "-cpu", "Nehalem"],
        &[("RAYON_NUM_THREADS", "1")],
    );
    assert_eq!(emulated.simd, "portable");
    eprintln!(
        "qemu Nehalem gemma3: tokens {}, logits digest {}",
        emulated.tokens, emulated.digest
    );
    assert_eq!(emulated.digest, GEMMA_DIGEST, "the pinned Gemma logits");
}

/// The SHA-256 of the logits of `child_logit_digest` on Gemma 3 270M (a short chat, then 2
/// greedy tokens), as computed natively with AVX2.
const GEMMA_DIGEST: &str = "35762105b20df003942282e5d5e116cc0af46a6fe950a153a578eebe02077ead";

/// A long chat prompt (~300 tokens): several paragraphs of varied text, so that prefill runs in
/// more than one chunk of the forward pass and attention spans hundreds of positions.
fn long_prompt(model: &Model) -> Vec<u32> {
    let text = (0..4)
        .map(|i| {
            format!(
                "Paragraph {i}: the miller's {i}th apprentice counted {} sacks of flour, then \
                 wrote `fn grind(x: u32) -> u32 {{ x * {} }}` on the wall, sang «été, 夏, лето» \
                 and asked why the river runs east when the wind blows from the {} hills.",
                17 * i + 3,
                i + 2,
                ["northern", "southern", "western"][i % 3]
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    model
        .chat_prompt_tokens(&[ChatMessage::system("Be brief."), ChatMessage::user(&text)])
        .unwrap()
}

/// The logits of a ~300-token prompt and of 2 greedy tokens after it, pinned by their SHA-256 as
/// computed before prefill was optimised: the profile is a protocol, so receipts made by earlier
/// builds must still verify. Fed in one pass and in uneven passes, both must give the pinned bits.
#[test]
fn long_prompt_logits_match_the_pinned_digest() {
    let model = common::default_model();
    let prompt = long_prompt(model);
    assert_eq!(prompt.len(), LONG_PROMPT_TOKENS, "the long prompt's tokens");
    let digest = |feeds: &[&[u32]]| {
        let mut decoder = model.decoder();
        let mut logits = Vec::new();
        for part in feeds {
            logits = decoder.feed(part).unwrap();
        }
        let mut hasher = Sha256::new();
        for step in 0..3 {
            for v in &logits {
                hasher.update(v.to_le_bytes());
            }
            let mut best = 0;
            for (i, v) in logits.iter().enumerate() {
                if *v > logits[best] {
                    best = i;
                }
            }
            if step < 2 {
                logits = decoder.feed(&[best as u32]).unwrap();
            }
        }
        hex::encode(hasher.finalize())
    };
    assert_eq!(digest(&[&prompt]), LONG_PROMPT_DIGEST, "one pass");
    let (a, rest) = prompt.split_at(7);
    let (b, c) = rest.split_at(150);
    assert_eq!(
        digest(&[a, b, c]),
        LONG_PROMPT_DIGEST,
        "three uneven passes"
    );
}

const LONG_PROMPT_TOKENS: usize = 335;
const LONG_PROMPT_DIGEST: &str = "90f65a552d919e4280315d9d3f224597063bc66cd67e8313fed591deef4c61a4";
