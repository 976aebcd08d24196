//! Bytes a miner sends against plain data-parallel training (fp32 gradients every step) at equal
//! held-out loss — the figure: at least 146× less (Templar's) — with the loss gap.
//!
//! On the tiny run ([`RunSpec::tiny`]), from its first checkpoint:
//! 1. **SparseLoCo/DiLoCo**: `BENCH_ROUNDS` rounds (default 4) of 3 miners, each H inner steps of
//!    `batch` windows on its own shard, compressed with error feedback; the bytes are decoded as
//!    a validator decodes them, averaged in hotkey order and applied by the DiLoCo outer step
//!    (every update accepted: no scoring). Held-out loss after every round.
//! 2. **Data-parallel** ([`DataParallel`]): 3 workers × `batch` windows a step, the tokens of the
//!    3 miners' inner step. Worker m's step s takes the windows miner m trained on at inner step
//!    s mod H of round ⌊s / H⌋, so the first R·H steps see exactly the SparseLoCo run's tokens.
//!    Held-out loss every `BENCH_EVAL_EVERY` steps (default 1). The first step at which it is ≤
//!    SparseLoCo's final loss sets the bytes at equal loss; the run goes on to R·H steps (equal
//!    tokens) for the loss there, capped at 4·R·H steps.
//! 3. Prints the figures and one JSON line.
//!
//! `CARGO_INCREMENTAL=0 cargo bench -p mycel-train --bench communication`

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Instant;

use mycel_train::baseline::{gradient_bytes_per_step, DataParallel};
use mycel_train::corpus::{load_default, Corpus};
use mycel_train::inner::{evaluate, train_inner};
use mycel_train::outer::mean_of_updates;
use mycel_train::run::{Checkpoint, RunSpec};
use mycel_train::sparseloco::{CompressedUpdate, ErrorFeedback};

const MINERS: [&[u8]; 3] = [b"miner-a", b"miner-b", b"miner-c"];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What the SparseLoCo rounds produced.
struct SparseLocoRun {
    /// Held-out loss at the start and after each round.
    losses: Vec<f32>,
    /// Encoded update length of each miner, per round.
    update_bytes: Vec<Vec<usize>>,
    seconds: f64,
}

impl SparseLocoRun {
    fn bytes_per_miner(&self) -> Vec<u64> {
        (0..MINERS.len())
            .map(|m| self.update_bytes.iter().map(|r| r[m] as u64).sum())
            .collect()
    }

    fn final_loss(&self) -> f32 {
        *self.losses.last().expect("the start loss is always there")
    }
}

/// What the data-parallel run produced.
struct DataParallelRun {
    /// (steps, held-out loss) at each evaluation; step 0 is the start.
    evals: Vec<(u64, f32)>,
    /// The first evaluated step at or below the target, and the seconds it took to get there.
    reached: Option<(u64, f32, f64)>,
    steps: u64,
    seconds: f64,
}

fn sparseloco(
    spec: &RunSpec,
    corpus: &Corpus,
    held_out: &[Vec<u32>],
    rounds: u64,
) -> SparseLocoRun {
    let first = Checkpoint::first(*spec).unwrap();
    let mut checkpoint = first.params.clone();
    let mut optimizer = first.optimizer().unwrap();
    let n = checkpoint.len();
    let mut feedback: Vec<ErrorFeedback> = MINERS.iter().map(|_| ErrorFeedback::new(n)).collect();
    let mut losses = vec![evaluate(spec.model, &checkpoint, held_out, spec.eval_batch).unwrap()];
    let mut update_bytes = Vec::new();
    let started = Instant::now();
    for round in 0..rounds {
        let mut published = Vec::new();
        for (hotkey, feedback) in MINERS.iter().zip(&mut feedback) {
            let windows =
                corpus.shard(hotkey, round, spec.inner.windows_per_round(), spec.window());
            let outcome = train_inner(
                spec.model,
                &checkpoint,
                &spec.inner,
                &windows,
                &mut |_, _| {},
            )
            .unwrap();
            let update = feedback
                .compress(&outcome.pseudo_gradient, &spec.codec)
                .unwrap();
            published.push(update.to_bytes());
        }
        // MINERS is in hotkey order, the order the aggregator sums in
        let decoded: Vec<CompressedUpdate> = published
            .iter()
            .map(|bytes| CompressedUpdate::from_bytes(bytes, n as u64).unwrap())
            .collect();
        let refs: Vec<&CompressedUpdate> = decoded.iter().collect();
        let mean = mean_of_updates(&refs, n).unwrap();
        optimizer.step(&mut checkpoint, &mean).unwrap();
        losses.push(evaluate(spec.model, &checkpoint, held_out, spec.eval_batch).unwrap());
        let sizes: Vec<usize> = published.iter().map(Vec::len).collect();
        println!(
            "sparseloco round {round}: held-out loss {:.4}, update bytes per miner {sizes:?} ({:.1} s so far)",
            losses[losses.len() - 1],
            started.elapsed().as_secs_f64()
        );
        update_bytes.push(sizes);
    }
    SparseLocoRun {
        losses,
        update_bytes,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn data_parallel(
    spec: &RunSpec,
    corpus: &Corpus,
    held_out: &[Vec<u32>],
    target: f32,
    equal_token_steps: u64,
    max_steps: u64,
    eval_every: u64,
) -> DataParallelRun {
    let first = Checkpoint::first(*spec).unwrap();
    let mut dp = DataParallel::new(spec.model, &first.params, &spec.inner, MINERS.len()).unwrap();
    let (h, batch) = (spec.inner.steps as u64, spec.inner.batch);
    let mut shards: HashMap<(usize, u64), Vec<Vec<u32>>> = HashMap::new();
    let mut batch_for = |step: u64, worker: usize| -> Vec<Vec<u32>> {
        let round = step / h;
        let shard = shards.entry((worker, round)).or_insert_with(|| {
            corpus.shard(
                MINERS[worker],
                round,
                spec.inner.windows_per_round(),
                spec.window(),
            )
        });
        let at = (step % h) as usize * batch;
        shard[at..at + batch].to_vec()
    };
    let start_loss = evaluate(spec.model, &first.params, held_out, spec.eval_batch).unwrap();
    let mut evals = vec![(0, start_loss)];
    let mut reached = None;
    let started = Instant::now();
    let mut on_eval = |steps: u64, params: &[f32]| {
        let loss = evaluate(spec.model, params, held_out, spec.eval_batch)?;
        evals.push((steps, loss));
        if reached.is_none() && loss <= target {
            reached = Some((steps, loss, started.elapsed().as_secs_f64()));
            println!("data-parallel step {steps}: held-out loss {loss:.4} ≤ target {target:.4}");
        } else if steps.is_multiple_of(h) {
            println!("data-parallel step {steps}: held-out loss {loss:.4}");
        }
        Ok(match reached.is_some() && steps >= equal_token_steps {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        })
    };
    let outcome = dp
        .train_until(max_steps, eval_every, &mut batch_for, &mut on_eval)
        .unwrap();
    DataParallelRun {
        evals,
        reached,
        steps: outcome.steps,
        seconds: started.elapsed().as_secs_f64(),
    }
}

#[derive(serde::Serialize)]
struct Summary {
    model: &'static str,
    parameters: usize,
    miners: usize,
    rounds: u64,
    inner_steps: usize,
    batch: usize,
    sparseloco_bytes_per_miner: u64,
    sparseloco_update_bytes: usize,
    sparseloco_final_loss: f32,
    sparseloco_losses: Vec<f32>,
    sparseloco_seconds: f64,
    dp_bytes_per_step: u64,
    dp_steps_to_equal_loss: Option<u64>,
    dp_bytes_per_worker_to_equal_loss: Option<u64>,
    dp_loss_at_equal_loss_step: Option<f32>,
    dp_seconds_to_equal_loss: Option<f64>,
    dp_steps_run: u64,
    dp_loss_at_equal_tokens: Option<f32>,
    dp_seconds: f64,
    ratio_at_equal_loss: Option<f64>,
    ratio_lower_bound_if_not_reached: Option<f64>,
    loss_gap: Option<f32>,
    ratio_per_exchange: f64,
    ratio_per_round: f64,
    target_ratio: f64,
}

fn main() {
    let rounds = env_or("BENCH_ROUNDS", 4);
    let eval_every = env_or("BENCH_EVAL_EVERY", 1);
    let spec = RunSpec::tiny();
    let corpus = load_default().expect("corpus").corpus;
    let held_out = spec.held_out(&corpus);
    let n = spec.model.parameter_count();
    let h = spec.inner.steps as u64;
    println!(
        "tiny model: {n} parameters; {} miners/workers × batch {} × {} tokens; H = {h}; {rounds} rounds; {} held-out windows",
        MINERS.len(),
        spec.inner.batch,
        spec.model.context,
        held_out.len()
    );

    let sl = sparseloco(&spec, &corpus, &held_out, rounds);
    let sl_bytes = sl.bytes_per_miner();
    let sl_bytes_per_miner = *sl_bytes.iter().max().expect("three miners");
    let update_bytes = sl.update_bytes[0][0];
    let target = sl.final_loss();

    let equal_token_steps = rounds * h;
    let max_steps = 4 * rounds * h;
    let dp = data_parallel(
        &spec,
        &corpus,
        &held_out,
        target,
        equal_token_steps,
        max_steps,
        eval_every,
    );
    let per_step = gradient_bytes_per_step(spec.model);
    let at_equal_tokens = dp
        .evals
        .iter()
        .find(|(s, _)| *s == equal_token_steps)
        .map(|(_, l)| *l);
    let reached_bytes = dp.reached.map(|(s, _, _)| s * per_step);
    let ratio = reached_bytes.map(|b| b as f64 / sl_bytes_per_miner as f64);
    let lower_bound = match dp.reached {
        None => Some((dp.steps * per_step) as f64 / sl_bytes_per_miner as f64),
        Some(_) => None,
    };
    let ratio_per_exchange = per_step as f64 / update_bytes as f64;
    let ratio_per_round = h as f64 * ratio_per_exchange;

    println!("sparseloco: held-out loss {:?}", sl.losses);
    println!(
        "sparseloco: bytes per miner over {rounds} rounds {sl_bytes:?} (each update {update_bytes} bytes); {:.1} s for {} miner-rounds",
        sl.seconds,
        rounds as usize * MINERS.len()
    );
    match dp.reached {
        Some((steps, loss, seconds)) => {
            println!(
                "data-parallel: held-out loss {loss:.4} ≤ {target:.4} after {steps} steps ({seconds:.1} s): {} bytes per worker ({per_step} a step)",
                steps * per_step
            );
            println!(
                "ratio at equal loss: {:.1}× fewer bytes per miner than per data-parallel worker (target ≥ 146×); loss gap data-parallel − sparseloco = {:+.4}",
                ratio.expect("reached"),
                loss - target
            );
        }
        None => println!(
            "data-parallel: did not reach {target:.4} within {} steps (last loss {:.4}): the ratio is at least {:.1}×",
            dp.steps,
            dp.evals.last().expect("start").1,
            lower_bound.expect("not reached")
        ),
    }
    if let Some(loss) = at_equal_tokens {
        println!(
            "at equal tokens ({equal_token_steps} data-parallel steps = {rounds} rounds): data-parallel {loss:.4}, sparseloco {target:.4}"
        );
    }
    println!(
        "per exchange: {per_step} / {update_bytes} = {ratio_per_exchange:.1}× (compression); per round (H = {h} steps): {ratio_per_round:.1}×"
    );
    println!(
        "wall time: sparseloco {:.1} s, data-parallel {:.1} s ({} steps incl. evaluations)",
        sl.seconds, dp.seconds, dp.steps
    );
    let summary = Summary {
        model: "tiny",
        parameters: n,
        miners: MINERS.len(),
        rounds,
        inner_steps: spec.inner.steps,
        batch: spec.inner.batch,
        sparseloco_bytes_per_miner: sl_bytes_per_miner,
        sparseloco_update_bytes: update_bytes,
        sparseloco_final_loss: target,
        sparseloco_losses: sl.losses.clone(),
        sparseloco_seconds: sl.seconds,
        dp_bytes_per_step: per_step,
        dp_steps_to_equal_loss: dp.reached.map(|r| r.0),
        dp_bytes_per_worker_to_equal_loss: reached_bytes,
        dp_loss_at_equal_loss_step: dp.reached.map(|r| r.1),
        dp_seconds_to_equal_loss: dp.reached.map(|r| r.2),
        dp_steps_run: dp.steps,
        dp_loss_at_equal_tokens: at_equal_tokens,
        dp_seconds: dp.seconds,
        ratio_at_equal_loss: ratio,
        ratio_lower_bound_if_not_reached: lower_bound,
        loss_gap: dp.reached.map(|r| r.1 - target),
        ratio_per_exchange,
        ratio_per_round,
        target_ratio: 146.0,
    };
    println!(
        "{}",
        serde_json::to_string(&summary).expect("a summary serialises")
    );
}
