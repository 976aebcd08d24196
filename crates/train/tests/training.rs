//! The training core on the real corpus and SmolLM2's tokenizer: the corpus fetch and split, a
//! miner's inner steps lowering the loss, the same bits at one and two threads, and scoring that
//! tells a trained update from a copied or random one.

use std::sync::OnceLock;

use mycel_train::corpus::{load_default, Corpus, STATE_OF_THE_UNION};
use mycel_train::inner::{evaluate, train_inner, InnerConfig};
use mycel_train::model::{ModelConfig, Params};
use sha2::{Digest, Sha256};

const MODEL: ModelConfig = ModelConfig::TINY;

fn corpus() -> &'static (Corpus, mycel_tokenizer::Tokenizer) {
    static CORPUS: OnceLock<(Corpus, mycel_tokenizer::Tokenizer)> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let loaded = load_default().expect("corpus");
        (loaded.corpus, loaded.tokenizer)
    })
}

fn digest(values: &[f32]) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.to_bits().to_le_bytes());
    }
    hex::encode(h.finalize())
}

fn small_round() -> InnerConfig {
    InnerConfig {
        steps: 12,
        batch: 4,
        ..InnerConfig::default()
    }
}

#[test]
fn the_corpus_is_the_pinned_text_split_into_training_and_held_out_tokens() {
    let (corpus, tokenizer) = corpus();
    assert_eq!(corpus.documents, STATE_OF_THE_UNION.documents);
    let total = corpus.train.len() + corpus.held_out.len();
    assert!((2_000_000..3_000_000).contains(&total), "{total} tokens");
    // 14 of 233 documents are held out: about 6% of the tokens
    let share = corpus.held_out.len() * 1000 / total;
    assert!((30..100).contains(&share), "held out {share}‰");
    let eot = tokenizer.eos_token_id().unwrap();
    assert_eq!(corpus.train.iter().filter(|t| **t == eot).count(), 233 - 14);
    let start = tokenizer.decode(&corpus.train[..12], false).unwrap();
    assert!(
        start.starts_with("Fellow-Citizens of the Senate"),
        "{start}"
    );
}

#[test]
fn inner_steps_lower_the_loss_on_the_shard_and_on_held_out_text() {
    let (corpus, _) = corpus();
    let inner = small_round();
    let start = Params::init(MODEL, [1; 32]).unwrap().to_flat().unwrap();
    let windows = corpus.shard(b"miner-1", 0, inner.windows_per_round(), MODEL.context + 1);
    let held_out = corpus.held_out_windows(&[9; 32], 8, MODEL.context + 1);
    let before = evaluate(MODEL, &start, &held_out, 4).unwrap();
    let outcome = train_inner(MODEL, &start, &inner, &windows, &mut |_, _| {}).unwrap();
    let end: Vec<f32> = start
        .iter()
        .zip(&outcome.pseudo_gradient)
        .map(|(s, d)| s - d)
        .collect();
    let after = evaluate(MODEL, &end, &held_out, 4).unwrap();
    // an untrained model is near uniform over 49,152 tokens: ln 49152 ≈ 10.8
    assert!((10.0..11.5).contains(&before), "{before}");
    assert!(after < before - 1.0, "held-out loss {before} → {after}");
    let (first, last) = (outcome.losses[0], *outcome.losses.last().unwrap());
    assert!(last < first - 1.0, "training loss {first} → {last}");
}

/// The digest of a short round's pseudo-gradient (3 steps of 2 windows).
fn short_round_digest() -> String {
    let (corpus, _) = corpus();
    let inner = InnerConfig {
        steps: 3,
        batch: 2,
        ..InnerConfig::default()
    };
    let start = Params::init(MODEL, [2; 32]).unwrap().to_flat().unwrap();
    let windows = corpus.shard(b"miner-2", 5, inner.windows_per_round(), MODEL.context + 1);
    let outcome = train_inner(MODEL, &start, &inner, &windows, &mut |_, _| {}).unwrap();
    digest(&outcome.pseudo_gradient)
}

#[test]
fn inner_steps_give_the_same_bits_at_one_and_two_threads() {
    let mut runs = Vec::new();
    for threads in [1, 2, 1] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        runs.push(pool.install(short_round_digest));
    }
    assert_eq!(runs[0], runs[1], "1 thread vs 2 threads");
    assert_eq!(runs[0], runs[2], "a second run");
}

/// Not a test on its own: prints the short round's digest when the parent below asks for it.
#[test]
fn child_short_round_digest() {
    if std::env::var_os("MYCEL_TRAIN_DIGEST_CHILD").is_none() {
        return;
    }
    println!("AVX {}", mycel_train::exact::uses_avx());
    println!("DIGEST {}", short_round_digest());
}

fn child_digest(wrapper: &[&str]) -> (String, String) {
    let exe = std::env::current_exe().unwrap();
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(&exe);
            c
        }
        None => std::process::Command::new(&exe),
    };
    command
        .args([
            "child_short_round_digest",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MYCEL_TRAIN_DIGEST_CHILD", "1");
    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "cannot start {:?}: {e} (qemu-x86_64 comes with Debian's qemu-user)",
            command.get_program()
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
            .find_map(|l| l.split_once(prefix).map(|(_, v)| v.trim().to_string()))
            .unwrap_or_else(|| panic!("child printed no {prefix}: {stdout}"))
    };
    (line("AVX "), line("DIGEST "))
}

/// The same round on this CPU (AVX) and on an emulated one without AVX, AVX2 or FMA, where every
/// instruction runs in qemu's software floating point: the same pseudo-gradient, bit for bit.
#[cfg(target_arch = "x86_64")]
#[test]
fn inner_steps_give_the_same_bits_on_a_cpu_without_avx() {
    corpus();
    let (native_avx, native) = child_digest(&[]);
    let (emulated_avx, emulated) = child_digest(&["qemu-x86_64", "-cpu", "Nehalem"]);
    assert_eq!(emulated_avx, "false", "qemu's Nehalem should have no AVX");
    eprintln!("native (AVX {native_avx}) and Nehalem: {native} / {emulated}");
    assert_eq!(native, emulated);
}

#[test]
fn the_first_checkpoint_is_fixed_by_the_seed() {
    let a = Params::init(MODEL, [3; 32]).unwrap().to_flat().unwrap();
    let b = Params::init(MODEL, [3; 32]).unwrap().to_flat().unwrap();
    let c = Params::init(MODEL, [4; 32]).unwrap().to_flat().unwrap();
    assert_eq!(digest(&a), digest(&b));
    assert_ne!(digest(&a), digest(&c));
    assert_eq!(a.len(), MODEL.parameter_count());
    assert_eq!(ModelConfig::SUBNET.parameter_count(), 15_796_480);
}
