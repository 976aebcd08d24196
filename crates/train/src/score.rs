//! Scoring an update by the loss it removes (after Templar's Gauntlet).
//!
//! A validator applies one miner's decoded update alone to the round's checkpoint
//! (θ' = θ − Δ, the outer step at learning rate 1 without momentum) and measures mean
//! next-token loss before and after on three sets of windows:
//! - **held-out**: documents no miner trains on — the update's worth;
//! - **own**: the miner's shard for the round, which only it was assigned;
//! - **random**: training windows drawn from a seed the miner could not know.
//!
//! Training on its own shard lowers the loss there more than on random windows of the same
//! text; an update copied from another miner, or made without training, does not. The score is
//! the relative held-out drop when at least [`ScoringRule::own_advantage`] of the own-data drop is
//! the shard's advantage over random data, else zero; an update that raises the held-out loss
//! scores zero.
//! Scores are fixed point (millionths) so the weights a validator sets are integers.

use serde::{Deserialize, Serialize};

use crate::inner::evaluate;
use crate::model::ModelConfig;
use crate::TrainError;

/// How an update's measurements become a score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoringRule {
    /// The own-shard loss drop must be positive, and at least this fraction of it must be the
    /// shard's own advantage (own drop − random drop). Measured on the tiny model, 8 inner steps,
    /// 32 own and 32 random windows (tests/round.rs): honest updates 0.19–0.51; an update
    /// trained on another miner's shard −0.11–0.10. A statistical filter: a verbatim copy is
    /// refused exactly by [`crate::round::aggregate`].
    pub own_advantage: f32,
    /// The least relative held-out drop (millionths) that counts: below it an update is noise
    /// (a shuffled honest update measured 7; honest updates 916 and up).
    pub min_score_micros: u64,
}

impl Default for ScoringRule {
    fn default() -> Self {
        ScoringRule {
            own_advantage: 0.1,
            min_score_micros: 100,
        }
    }
}

/// The windows an update is measured on.
pub struct ScoringSets<'a> {
    pub held_out: &'a [Vec<u32>],
    pub own: &'a [Vec<u32>],
    pub random: &'a [Vec<u32>],
    /// Windows per forward pass.
    pub batch: usize,
}

/// Losses before (on the checkpoint) — computed once per round for held-out and random.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub held_out: f32,
    pub random: f32,
}

/// What a validator measured for one update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UpdateScore {
    pub held_out_before: f32,
    pub held_out_after: f32,
    pub own_drop: f32,
    pub random_drop: f32,
    /// Did the update help its own shard more than random windows?
    pub trained_on_shard: bool,
    /// Relative held-out drop in millionths (0 when refused or harmful).
    pub score_micros: u64,
}

/// The checkpoint's losses on the held-out and random windows.
pub fn baseline(
    model: ModelConfig,
    checkpoint: &[f32],
    sets: &ScoringSets<'_>,
) -> Result<Baseline, TrainError> {
    Ok(Baseline {
        held_out: evaluate(model, checkpoint, sets.held_out, sets.batch)?,
        random: evaluate(model, checkpoint, sets.random, sets.batch)?,
    })
}

/// Scores `update` (a decoded pseudo-gradient) against `checkpoint`.
pub fn score_update(
    model: ModelConfig,
    checkpoint: &[f32],
    update: &[f32],
    base: &Baseline,
    sets: &ScoringSets<'_>,
    rule: &ScoringRule,
) -> Result<UpdateScore, TrainError> {
    if update.len() != checkpoint.len() {
        return Err(TrainError::Config(format!(
            "an update of {} values for a checkpoint of {}",
            update.len(),
            checkpoint.len()
        )));
    }
    let applied: Vec<f32> = checkpoint.iter().zip(update).map(|(t, d)| t - d).collect();
    let own_before = evaluate(model, checkpoint, sets.own, sets.batch)?;
    let own_after = evaluate(model, &applied, sets.own, sets.batch)?;
    let held_out_after = evaluate(model, &applied, sets.held_out, sets.batch)?;
    let random_after = evaluate(model, &applied, sets.random, sets.batch)?;
    let own_drop = own_before - own_after;
    let random_drop = base.random - random_after;
    let trained_on_shard = own_drop.is_finite()
        && own_drop > 0.0
        && own_drop - random_drop > rule.own_advantage * own_drop;
    let relative = (base.held_out - held_out_after) / base.held_out;
    let micros = if relative.is_finite() && relative > 0.0 {
        (relative as f64 * 1e6) as u64
    } else {
        0
    };
    let score_micros = if trained_on_shard && micros >= rule.min_score_micros {
        micros
    } else {
        0
    };
    Ok(UpdateScore {
        held_out_before: base.held_out,
        held_out_after,
        own_drop,
        random_drop,
        trained_on_shard,
        score_micros,
    })
}
