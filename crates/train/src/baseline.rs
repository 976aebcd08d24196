//! Plain data-parallel training: the baseline whose communication SparseLoCo's is measured
//! against (`benches/communication.rs`).
//!
//! W workers hold the same parameters. Every step each worker computes the gradient of the loss
//! on its own batch of windows, the gradients are averaged (an fp32 all-reduce) and every worker
//! takes the same AdamW step with the inner steps' settings ([`InnerConfig`], candle's `AdamW` as
//! in [`crate::inner`]). The workers take turns in one process: that changes neither the bits
//! nor the bytes counted, only the time.
//!
//! # Guarantees
//! - **A function of its inputs.** Gradients come from [`Model`] on the fixed-order kernels; the
//!   average sums the workers' gradients in worker order and divides by W, so the same start,
//!   batches and config give the same bits.
//! - **Bytes counted one way.** Each step every worker sends its whole gradient once as `f32`:
//!   [`gradient_bytes_per_step`] = 4 × parameter count. A ring all-reduce sends about twice that
//!   per worker; counting once flatters the baseline, not SparseLoCo.
//!
//! # Does not
//! Talk to a network, shard the optimizer state or schedule the learning rate.

use std::ops::ControlFlow;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer};

use crate::inner::{keep_freed_memory, InnerConfig};
use crate::model::{windows_tensor, Model, ModelConfig, Params};
use crate::TrainError;

/// Called with the steps taken and the parameters after them; `Break` stops the run.
pub type EvalHook<'a> = dyn FnMut(u64, &[f32]) -> Result<ControlFlow<()>, TrainError> + 'a;

/// Bytes one worker sends per step: its gradient as `f32`, once.
pub fn gradient_bytes_per_step(model: ModelConfig) -> u64 {
    4 * model.parameter_count() as u64
}

/// W workers training one set of parameters, one averaged gradient per step.
pub struct DataParallel {
    params: Params,
    optimizer: AdamW,
    workers: usize,
    batch: usize,
    steps: u64,
}

/// How [`DataParallel::train_until`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedUntil {
    /// Steps taken in total (including any before the call).
    pub steps: u64,
    /// Whether the evaluation hook stopped the run (otherwise the step cap did).
    pub stopped_by_hook: bool,
    /// Mean training loss over the workers' batches, per step of this call (before its update).
    pub train_losses: Vec<f32>,
}

impl DataParallel {
    /// `workers` workers starting from `start`, each taking `config.batch` windows a step, with
    /// `config`'s AdamW settings (its `steps` is not used: the caller decides how many).
    pub fn new(
        model: ModelConfig,
        start: &[f32],
        config: &InnerConfig,
        workers: usize,
    ) -> Result<Self, TrainError> {
        if workers == 0 || config.batch == 0 {
            return Err(TrainError::Config(format!(
                "data-parallel training needs at least one worker and one window a step \
                 ({workers} workers, batch {})",
                config.batch
            )));
        }
        keep_freed_memory();
        let params = Params::from_flat(model, start)?;
        let optimizer = AdamW::new(params.vars(), config.adamw())?;
        Ok(DataParallel {
            params,
            optimizer,
            workers,
            batch: config.batch,
            steps: 0,
        })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Bytes each worker has sent so far ([`gradient_bytes_per_step`] per step).
    pub fn bytes_sent_per_worker(&self) -> u64 {
        self.steps * gradient_bytes_per_step(self.params.config)
    }

    /// The current parameters in the canonical order.
    pub fn params(&self) -> Result<Vec<f32>, TrainError> {
        self.params.to_flat()
    }

    /// One step: worker `w` computes the gradient on `batches[w]`, the gradients are averaged
    /// in worker order and AdamW applies the mean. Returns the workers' mean loss before the
    /// step.
    pub fn step(&mut self, batches: &[Vec<Vec<u32>>]) -> Result<f32, TrainError> {
        if batches.len() != self.workers || batches.iter().any(|b| b.len() != self.batch) {
            return Err(TrainError::Config(format!(
                "a data-parallel step takes {} batches of {} windows, got {:?}",
                self.workers,
                self.batch,
                batches.iter().map(Vec::len).collect::<Vec<_>>()
            )));
        }
        let vars = self.params.vars();
        let mut sums: Vec<Option<Tensor>> = vec![None; vars.len()];
        let mut loss_sum = 0.0f64;
        let forward = Model::new(&self.params)?;
        for batch in batches {
            let loss = forward.loss(&windows_tensor(batch)?)?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            // Only the parameters' gradients are kept: the store also holds every
            // intermediate's (the logits' alone are tens of megabytes).
            let grads = loss.backward()?;
            for (sum, var) in sums.iter_mut().zip(&vars) {
                let grad = grads
                    .get(var.as_tensor())
                    .ok_or_else(|| TrainError::Config("a parameter received no gradient".into()))?;
                *sum = Some(match sum.take() {
                    None => grad.clone(),
                    Some(acc) => (acc + grad)?,
                });
            }
        }
        let divisor = Tensor::new(self.workers as f32, &Device::Cpu)?;
        let mut mean = GradStore::default();
        for (sum, var) in sums.into_iter().zip(&vars) {
            let sum = sum.ok_or_else(|| TrainError::Config("no worker ran".into()))?;
            mean.insert(var.as_tensor(), sum.broadcast_div(&divisor)?);
        }
        self.optimizer.step(&mean)?;
        self.steps += 1;
        Ok((loss_sum / self.workers as f64) as f32)
    }

    /// Steps until `evaluate` breaks or `max_steps` steps have been taken in total.
    /// `batch_for(step, worker)` gives a worker's windows for a step (0-based, counted over
    /// the whole run); `evaluate(steps, params)` runs after every `eval_every`-th step and after
    /// the last, with the parameters after `steps` steps.
    pub fn train_until(
        &mut self,
        max_steps: u64,
        eval_every: u64,
        batch_for: &mut dyn FnMut(u64, usize) -> Vec<Vec<u32>>,
        evaluate: &mut EvalHook<'_>,
    ) -> Result<TrainedUntil, TrainError> {
        if eval_every == 0 {
            return Err(TrainError::Config("eval_every must be at least 1".into()));
        }
        let mut train_losses = Vec::new();
        while self.steps < max_steps {
            let step = self.steps;
            let batches: Vec<Vec<Vec<u32>>> =
                (0..self.workers).map(|w| batch_for(step, w)).collect();
            train_losses.push(self.step(&batches)?);
            if self.steps.is_multiple_of(eval_every) || self.steps == max_steps {
                if let ControlFlow::Break(()) = evaluate(self.steps, &self.params()?)? {
                    return Ok(TrainedUntil {
                        steps: self.steps,
                        stopped_by_hook: true,
                        train_losses,
                    });
                }
            }
        }
        Ok(TrainedUntil {
            steps: self.steps,
            stopped_by_hook: false,
            train_losses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inner::train_inner;

    /// A model small enough for a unit test (vocabulary 64).
    const MICRO: ModelConfig = ModelConfig {
        vocab: 64,
        dim: 16,
        hidden: 32,
        layers: 1,
        heads: 2,
        context: 8,
    };

    fn windows(count: usize, salt: u32) -> Vec<Vec<u32>> {
        (0..count as u32)
            .map(|w| {
                (0..MICRO.context as u32 + 1)
                    .map(|i| (w * 7 + i * 13 + salt * 29) % MICRO.vocab as u32)
                    .collect()
            })
            .collect()
    }

    fn config(batch: usize) -> InnerConfig {
        InnerConfig {
            steps: 3,
            batch,
            ..InnerConfig::default()
        }
    }

    #[test]
    fn one_worker_is_the_inner_loop() {
        let start = Params::init(MICRO, [3; 32]).unwrap().to_flat().unwrap();
        let data = windows(6, 0);
        let inner = train_inner(MICRO, &start, &config(2), &data, &mut |_, _| {}).unwrap();
        let mut dp = DataParallel::new(MICRO, &start, &config(2), 1).unwrap();
        let mut losses = Vec::new();
        for batch in data.chunks(2) {
            losses.push(dp.step(&[batch.to_vec()]).unwrap());
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        // the same pseudo-gradient, computed the way the inner loop computes it
        let delta: Vec<f32> = start
            .iter()
            .zip(dp.params().unwrap())
            .map(|(s, e)| s - e)
            .collect();
        assert_eq!(bits(&delta), bits(&inner.pseudo_gradient));
        assert_eq!(losses, inner.losses);
        assert_eq!(
            dp.bytes_sent_per_worker(),
            3 * 4 * MICRO.parameter_count() as u64
        );
    }

    #[test]
    fn workers_average_and_the_hook_stops() {
        let start = Params::init(MICRO, [4; 32]).unwrap().to_flat().unwrap();
        let run = |stop_at: u64| {
            let mut dp = DataParallel::new(MICRO, &start, &config(2), 3).unwrap();
            let mut seen = Vec::new();
            let outcome = dp
                .train_until(
                    5,
                    2,
                    &mut |step, worker| windows(2, step as u32 * 3 + worker as u32),
                    &mut |steps, params| {
                        seen.push((steps, params.len()));
                        Ok(match steps >= stop_at {
                            true => ControlFlow::Break(()),
                            false => ControlFlow::Continue(()),
                        })
                    },
                )
                .unwrap();
            (outcome, seen, dp.params().unwrap())
        };
        let n = MICRO.parameter_count();
        let (capped, seen, end) = run(u64::MAX);
        assert_eq!((capped.steps, capped.stopped_by_hook), (5, false));
        assert_eq!(seen, vec![(2, n), (4, n), (5, n)]);
        assert!(capped.train_losses.iter().all(|l| l.is_finite()));
        let (stopped, _, _) = run(3);
        assert_eq!((stopped.steps, stopped.stopped_by_hook), (4, true));
        // the same inputs, the same bits
        let (_, _, again) = run(u64::MAX);
        assert_eq!(end, again);
        assert_ne!(end, start);
    }
}
