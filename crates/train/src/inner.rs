//! A miner's inner loop: H AdamW steps from the round's checkpoint on the miner's shard, and the
//! pseudo-gradient Δ = θ_start − θ_end it publishes (DiLoCo's outer gradient).
//!
//! The AdamW moments start at zero every round (candle's `AdamW`, bias-corrected, decoupled
//! weight decay): a round's inner steps are then a function of the checkpoint, the shard and
//! [`InnerConfig`] alone, so a validator can re-run them from what is public, and a miner that
//! joins late needs nothing but the checkpoint.

use candle_core::Tensor;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

use crate::model::{windows_tensor, Kernels, Model, ModelConfig, Params};
use crate::TrainError;

/// The inner optimizer's settings and a round's size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InnerConfig {
    /// H: AdamW steps per round.
    pub steps: usize,
    /// Windows per step.
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for InnerConfig {
    fn default() -> Self {
        InnerConfig {
            steps: 30,
            batch: 8,
            lr: 3e-3,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
        }
    }
}

impl InnerConfig {
    /// candle's AdamW settings for these.
    pub fn adamw(&self) -> ParamsAdamW {
        ParamsAdamW {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
    }

    /// Windows a miner trains on in a round.
    pub fn windows_per_round(&self) -> usize {
        self.steps * self.batch
    }
}

/// What a round of inner steps produced.
#[derive(Debug, Clone)]
pub struct InnerOutcome {
    /// θ_start − θ_end, in the canonical parameter order.
    pub pseudo_gradient: Vec<f32>,
    /// The training loss of each step (before that step's update).
    pub losses: Vec<f32>,
}

/// Makes glibc keep freed memory for reuse instead of returning it to the kernel. A training step
/// allocates and frees tensors of tens of megabytes per operation (logits over a 49,152-token
/// vocabulary); glibc serves each with a fresh `mmap` whose every page then faults in, which took
/// half of a step's time. Process-wide and idempotent; the training roles are processes of their
/// own, so nothing else shares the heap it tunes.
pub fn keep_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; it is called once, before the
        // training allocations it is meant for.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    });
}

/// Runs `config.steps` AdamW steps from `start` on `windows` (`steps × batch` windows of
/// `context + 1` tokens, taken `batch` at a time in order); `on_step(step, loss)` after each.
pub fn train_inner(
    model: ModelConfig,
    start: &[f32],
    config: &InnerConfig,
    windows: &[Vec<u32>],
    on_step: &mut dyn FnMut(usize, f32),
) -> Result<InnerOutcome, TrainError> {
    train_inner_with(model, start, config, windows, Kernels::Exact, on_step)
}

/// [`train_inner`] on the chosen kernels (candle's only to compare speed with).
pub fn train_inner_with(
    model: ModelConfig,
    start: &[f32],
    config: &InnerConfig,
    windows: &[Vec<u32>],
    kernels: Kernels,
    on_step: &mut dyn FnMut(usize, f32),
) -> Result<InnerOutcome, TrainError> {
    if windows.len() != config.windows_per_round() || config.batch == 0 {
        return Err(TrainError::Config(format!(
            "{} windows for {} steps of {}",
            windows.len(),
            config.steps,
            config.batch
        )));
    }
    keep_freed_memory();
    let params = Params::from_flat(model, start)?;
    let mut optimizer = AdamW::new(params.vars(), config.adamw())?;
    let forward = Model::with_kernels(&params, kernels)?;
    let mut losses = Vec::with_capacity(config.steps);
    for (step, batch) in windows.chunks(config.batch).enumerate() {
        let loss = forward.loss(&windows_tensor(batch)?)?;
        let value = loss.to_scalar::<f32>()?;
        optimizer.backward_step(&loss)?;
        losses.push(value);
        on_step(step, value);
    }
    let end = params.to_flat()?;
    let pseudo_gradient = start.iter().zip(&end).map(|(s, e)| s - e).collect();
    Ok(InnerOutcome {
        pseudo_gradient,
        losses,
    })
}

/// Mean loss of `params` over `windows`, `batch` at a time (forward only).
pub fn evaluate(
    model: ModelConfig,
    params: &[f32],
    windows: &[Vec<u32>],
    batch: usize,
) -> Result<f32, TrainError> {
    if windows.is_empty() || batch == 0 {
        return Err(TrainError::Config("no windows to evaluate on".into()));
    }
    keep_freed_memory();
    let params = Params::from_flat(model, params)?;
    let forward = Model::new(&params)?;
    let mut total = 0.0f64;
    for chunk in windows.chunks(batch) {
        let loss: Tensor = forward.loss(&windows_tensor(chunk)?)?;
        total += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
    }
    Ok((total / windows.len() as f64) as f32)
}
