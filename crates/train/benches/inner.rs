//! Training speed and update size of a miner's round: inner-step tokens per second at 1 and 2
//! threads for the tiny and the subnet model, on mycel's fixed-order kernels and on candle's
//! (alternated, same process), and the bytes a round's compressed update takes against plain
//! data-parallel training's fp32 gradients every step.
//!
//! `cargo bench -p mycel-train --bench inner` (env: `BENCH_STEPS`, default 4; `BENCH_MODELS`,
//! default `tiny,subnet`). Prints a table and one JSON line per row.

use std::time::Instant;

use mycel_train::corpus::{load_default, Corpus};
use mycel_train::inner::{train_inner_with, InnerConfig};
use mycel_train::model::{Kernels, ModelConfig, Params};
use mycel_train::sparseloco::{ErrorFeedback, SparseLocoConfig};

fn main() {
    let steps: usize = std::env::var("BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let models = std::env::var("BENCH_MODELS").unwrap_or_else(|_| "tiny,subnet".into());
    let corpus = load_default().expect("corpus").corpus;
    println!("| model | params | threads | kernels | batch × tokens | s/step (median of {steps}) | tokens/s | bytes/round (SparseLoCo) | fp32 bytes/round (data-parallel, H=30) | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for name in models.split(',') {
        let model = match name {
            "tiny" => ModelConfig::TINY,
            "subnet" => ModelConfig::SUBNET,
            other => panic!("unknown model {other}: tiny or subnet"),
        };
        for threads in [1usize, 2] {
            // candle's products read the variable; the exact kernels run on the pool installed
            std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for kernels in [Kernels::Exact, Kernels::Candle] {
                pool.install(|| row(name, model, threads, kernels, steps, &corpus));
            }
        }
    }
    // SAFETY: getrusage fills the struct it is given; all-zero is a valid rusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    println!(
        "peak RSS of the bench process: {} MiB",
        usage.ru_maxrss / 1024
    );
}

fn row(
    name: &str,
    model: ModelConfig,
    threads: usize,
    kernels: Kernels,
    steps: usize,
    corpus: &Corpus,
) {
    let inner = InnerConfig {
        steps: 1,
        ..InnerConfig::default()
    };
    let start = Params::init(model, [1; 32]).unwrap().to_flat().unwrap();
    let mut times = Vec::new();
    let mut outcome = None;
    for step in 0..=steps {
        let windows = corpus.shard(
            b"bench",
            step as u64,
            inner.windows_per_round(),
            model.context + 1,
        );
        let t = Instant::now();
        let o = train_inner_with(model, &start, &inner, &windows, kernels, &mut |_, _| {}).unwrap();
        if step > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
        outcome = Some(o);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let per_step = times[times.len() / 2];
    let tokens = inner.batch * model.context;
    let codec = SparseLocoConfig::default();
    let pseudo = outcome.unwrap().pseudo_gradient;
    let sent = ErrorFeedback::new(pseudo.len())
        .compress(&pseudo, &codec)
        .unwrap()
        .to_bytes()
        .len();
    let dense = 30 * 4 * pseudo.len();
    println!(
        "| {name} | {} | {threads} | {kernels:?} | {} × {} | {per_step:.3} | {:.0} | {sent} | {dense} | {:.0}× |",
        model.parameter_count(),
        inner.batch,
        model.context,
        tokens as f64 / per_step,
        dense as f64 / sent as f64
    );
    println!(
        "{{\"model\":\"{name}\",\"threads\":{threads},\"kernels\":\"{kernels:?}\",\"s_per_step\":{per_step:.4},\"tokens_per_s\":{:.1},\"update_bytes\":{sent},\"dense_bytes_per_round\":{dense}}}",
        tokens as f64 / per_step
    );
}
