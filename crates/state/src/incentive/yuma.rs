//! One Yuma consensus epoch of one subnet, as a pure function: [`run_epoch`]`(&EpochInput)`.
//!
//! Follows subtensor's `pallets/subtensor/src/epoch/run_epoch.rs` (`epoch_mechanism`, the sparse
//! epoch; github.com/opentensor/subtensor) step by step, in the order of these numbered steps:
//!
//! 1. **Active**: given by the caller ([`EpochInput::active`]).
//! 2. **Stake**: raw stakes in 64.64, below [`EpochInput::stake_threshold`] → 0 (owner exempt),
//!    normalised in 64.64, then truncated to 32.32.
//! 3. **Validator permits**: the epoch *uses* the permits the previous epoch stored
//!    ([`EpochInput::validator_permit`], the owner always permitted) and *computes* new ones, the
//!    top-k non-zero stakes ([`EpochOutput::validator_permit`]). Active stake = stake masked to
//!    active permitted neurons, renormalised.
//! 4. **Weights**: stored `u16` values; rows of neurons without a permit dropped; self-weights
//!    dropped (except the owner's); weight `(i, j)` dropped when `last_update_i ≤
//!    block_at_registration_j` (set before `j` registered); rows normalised.
//! 5. **Consensus** `C_j`: stake-weighted median of column `j` with majority κ = kappa / 65535.
//! 6. **Clip** `W̄ = min(W, C)`; validator trust = row sums of `W̄`.
//! 7. **Incentive** = normalised ranks `R = W̄ᵀ·S`.
//! 8. **Bond weights** `W̃ = W + β·(W̄ − W)`, β = bonds_penalty / 65535.
//! 9. **Yuma 2 bonds**: previous bonds (raw `u16`), entries of neurons registered since the last
//!    epoch dropped, column-normalised; `ΔB = col_normalise(W̃ ∘ S)`; `B = α·ΔB + (1−α)·B_old`,
//!    α = 1 − bonds_moving_average / 1e6; column-normalised; dividends `D = B·I` normalised;
//!    stored column-max-upscaled as `floor(b · 65535)`.
//! 10. **Yuma 3 bonds**: previous bonds read as `u16 / 65535` (not normalised), same mask;
//!     `B = α·W̃ + (1−α)·B_old` clamped to [0, 1], α either the fixed one above or, with liquid
//!     alpha on and some consensus non-zero, per entry from the sigmoid [`alpha_sigmoid`];
//!     dividends `D_i = S_i · Σ_j (B_ij / Σ_k B_kj) · I_j`, normalised; stored as `floor(b·65535)`.
//!     Liquid alpha applies to Yuma 3 only, as in subtensor.
//! 11. **Emission split**: see [`split_emission`] — exact, no base unit lost.
//!
//! Stored bonds: rows of neurons holding a new permit get their new bonds; every other row is
//! emptied (subtensor clears the bonds of neurons that lost or never had a permit).
//!
//! Commit-reveal masking of weights is not part of this function: the caller passes the weights
//! that count for this epoch.

use super::math::*;
use fixed::types::{I32F32, I64F64};
use serde::{Deserialize, Serialize};

/// Which bond/dividend model the subnet runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum YumaVersion {
    /// Classic Yuma (bonds column-normalised, EMA with one α).
    Yuma2,
    /// Yuma 3 (bonds as absolute proportions, optional liquid alpha, stake-weighted dividends).
    Yuma3,
}

/// Liquid alpha parameters (Yuma 3 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiquidAlpha {
    pub enabled: bool,
    /// Lower bound of α as a `u16` proportion (default 45875 ≈ 0.7).
    pub alpha_low: u16,
    /// Upper bound of α as a `u16` proportion (default 58982 ≈ 0.9).
    pub alpha_high: u16,
    /// Sigmoid steepness; the exponent is `−(steepness / 100)·(diff − 0.5)` (default 1000).
    pub steepness: u16,
}

impl Default for LiquidAlpha {
    fn default() -> Self {
        Self {
            enabled: false,
            alpha_low: 45875,
            alpha_high: 58982,
            steepness: 1000,
        }
    }
}

/// Everything one epoch of one subnet reads. Vectors are indexed by UID and all have length
/// `n = stake.len()`; weight and bond rows are sparse `(uid, value)` lists with strictly
/// increasing UIDs below `n`, one row per UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochInput {
    pub yuma: YumaVersion,
    /// Raw stake per UID (base units).
    pub stake: Vec<u64>,
    /// Stored weights, row i = weights set by UID i, values as stored `u16`.
    pub weights: Vec<Vec<(u16, u16)>>,
    /// Bonds stored by the previous epoch (`u16`).
    pub bonds: Vec<Vec<(u16, u16)>>,
    pub active: Vec<bool>,
    /// Permits stored by the previous epoch.
    pub validator_permit: Vec<bool>,
    pub block_at_registration: Vec<u64>,
    pub last_update: Vec<u64>,
    /// The block the epoch runs in.
    pub block: u64,
    /// The subnet's tempo (blocks between epochs).
    pub tempo: u64,
    /// The block of the previous epoch, if any; bonds to neurons registered at or after the block
    /// following it (else after `block − tempo`) are dropped.
    pub last_epoch_block: Option<u64>,
    /// Base units to distribute in this epoch.
    pub emission: u64,
    pub kappa: u16,
    pub bonds_penalty: u16,
    /// In millionths (default 900_000); at most 1_000_000.
    pub bonds_moving_average: u64,
    pub liquid_alpha: LiquidAlpha,
    pub max_allowed_validators: u16,
    /// Raw stake below which a neuron's stake counts as 0 (the owner is exempt).
    pub stake_threshold: u64,
    /// The subnet owner's UID, if the owner's hotkey is registered.
    pub owner_uid: Option<u16>,
}

/// What one epoch produces. Fractions are 32.32 fixed point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochOutput {
    /// Normalised (threshold-filtered) stake.
    pub stake: Vec<I32F32>,
    /// Stake of active permitted validators, normalised.
    pub active_stake: Vec<I32F32>,
    pub consensus: Vec<I32F32>,
    pub validator_trust: Vec<I32F32>,
    pub incentive: Vec<I32F32>,
    pub dividends: Vec<I32F32>,
    /// Permits for the next epoch.
    pub validator_permit: Vec<bool>,
    /// Bonds as stored for the next epoch.
    pub bonds: Vec<Vec<(u16, u16)>>,
    /// Miner share of the emission per UID (base units).
    pub server_emission: Vec<u64>,
    /// Validator share of the emission per UID (base units).
    pub validator_emission: Vec<u64>,
    /// Emission nobody could receive (no incentive, no dividends and no stake at all). The caller
    /// recycles it. `Σ server + Σ validator + undistributed == emission` always.
    pub undistributed: u64,
}

impl EpochOutput {
    /// Total emission per UID (server + validator).
    pub fn emission(&self) -> Vec<u64> {
        self.server_emission
            .iter()
            .zip(&self.validator_emission)
            .map(|(s, v)| s + v)
            .collect()
    }
}

/// Why an epoch input was refused. Each names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    #[error("`{field}` has {got} entries but `stake` has {expected}: every per-UID vector needs one entry per UID")]
    LengthMismatch {
        field: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("the subnet has {0} UIDs; at most 65535 are supported")]
    TooManyNeurons(usize),
    #[error("`{field}` row {row} names UID {uid}, but UIDs go up to {max}")]
    UidOutOfRange {
        field: &'static str,
        row: usize,
        uid: u16,
        max: usize,
    },
    #[error("`{field}` row {row} lists UID {uid} out of order: UIDs in a row must be strictly increasing")]
    UnsortedRow {
        field: &'static str,
        row: usize,
        uid: u16,
    },
    #[error("`{field}`: {reason}")]
    InvalidParameter { field: &'static str, reason: String },
}

impl EpochInput {
    /// Check shapes and parameter ranges; [`run_epoch`] calls it first.
    pub fn validate(&self) -> Result<(), EpochError> {
        let n = self.stake.len();
        if n > u16::MAX as usize {
            return Err(EpochError::TooManyNeurons(n));
        }
        let lens: [(&'static str, usize); 6] = [
            ("weights", self.weights.len()),
            ("bonds", self.bonds.len()),
            ("active", self.active.len()),
            ("validator_permit", self.validator_permit.len()),
            ("block_at_registration", self.block_at_registration.len()),
            ("last_update", self.last_update.len()),
        ];
        for (field, got) in lens {
            if got != n {
                return Err(EpochError::LengthMismatch {
                    field,
                    expected: n,
                    got,
                });
            }
        }
        for (field, m) in [("weights", &self.weights), ("bonds", &self.bonds)] {
            for (row, entries) in m.iter().enumerate() {
                let mut prev: Option<u16> = None;
                for &(uid, _) in entries {
                    if uid as usize >= n {
                        return Err(EpochError::UidOutOfRange {
                            field,
                            row,
                            uid,
                            max: n.saturating_sub(1),
                        });
                    }
                    if prev.is_some_and(|p| p >= uid) {
                        return Err(EpochError::UnsortedRow { field, row, uid });
                    }
                    prev = Some(uid);
                }
            }
        }
        if self.bonds_moving_average > 1_000_000 {
            return Err(EpochError::InvalidParameter {
                field: "bonds_moving_average",
                reason: format!(
                    "{} is above 1000000 (it is in millionths)",
                    self.bonds_moving_average
                ),
            });
        }
        if self.liquid_alpha.alpha_low > self.liquid_alpha.alpha_high {
            return Err(EpochError::InvalidParameter {
                field: "liquid_alpha.alpha_low",
                reason: format!(
                    "alpha_low {} is above alpha_high {}",
                    self.liquid_alpha.alpha_low, self.liquid_alpha.alpha_high
                ),
            });
        }
        if let Some(owner) = self.owner_uid {
            if owner as usize >= n {
                return Err(EpochError::InvalidParameter {
                    field: "owner_uid",
                    reason: format!("UID {owner} is not below n = {n}"),
                });
            }
        }
        Ok(())
    }
}

/// The bond EMA straight from the stored bonds: for each entry of the union of row `i` of `new`
/// and row `i` of the previous bonds (stored value `v` in column `j` read as `convert(j, v)`,
/// without the entries of neurons registered since the last epoch, `last_tempo ≤
/// block_at_registration`: subtensor's conversion and `scalar_vec_mask_sparse_matrix`), in
/// column order, `entry(j, new_ij, old_ij)`, kept when > 0. The
/// same entries and values as [`mat_ema_sparse`] / [`mat_ema_alpha_sparse`] over the masked
/// bonds, without building them.
fn ema_from_stored_bonds(
    new: &[Vec<(u16, I32F32)>],
    input: &EpochInput,
    last_tempo: u64,
    convert: impl Fn(u16, u16) -> I32F32,
    mut entry: impl FnMut(u16, I32F32, I32F32) -> I32F32,
) -> SparseMatrix {
    ema_rows_from_stored_bonds(new, input, last_tempo, convert, |entries, out| {
        for &(j, n, o) in entries {
            let v = entry(j, n, o);
            if v > I32F32::ZERO {
                out.push((j, v));
            }
        }
    })
}

/// The merge of [`ema_from_stored_bonds`], one row at a time: `row(entries, out)` gets the
/// union entries `(j, new_ij, old_ij)` of row `i` in column order and fills the output row.
fn ema_rows_from_stored_bonds(
    new: &[Vec<(u16, I32F32)>],
    input: &EpochInput,
    last_tempo: u64,
    convert: impl Fn(u16, u16) -> I32F32,
    mut row: impl FnMut(&[(u16, I32F32, I32F32)], &mut Vec<(u16, I32F32)>),
) -> SparseMatrix {
    let mut entries: Vec<(u16, I32F32, I32F32)> = Vec::new();
    let zero = I32F32::ZERO;
    let keep: Vec<bool> = input
        .block_at_registration
        .iter()
        .map(|registered| last_tempo > *registered)
        .collect();
    new.iter()
        .zip(&input.bonds)
        .map(|(nrow, stored)| {
            let mut out = Vec::with_capacity(nrow.len().max(stored.len()));
            entries.clear();
            let mut old = stored
                .iter()
                .filter(|(j, _)| keep[*j as usize])
                .map(|&(j, v)| (j, convert(j, v)))
                .peekable();
            let mut fresh = nrow.iter().copied().peekable();
            loop {
                let (j, n, o) = match (fresh.peek().copied(), old.peek().copied()) {
                    (Some((ja, va)), Some((jb, vb))) => {
                        if ja == jb {
                            fresh.next();
                            old.next();
                            (ja, va, vb)
                        } else if ja < jb {
                            fresh.next();
                            (ja, va, zero)
                        } else {
                            old.next();
                            (jb, zero, vb)
                        }
                    }
                    (Some((ja, va)), None) => {
                        fresh.next();
                        (ja, va, zero)
                    }
                    (None, Some((jb, vb))) => {
                        old.next();
                        (jb, zero, vb)
                    }
                    (None, None) => break,
                };
                entries.push((j, n, o));
            }
            row(&entries, &mut out);
            out
        })
        .collect()
}

/// `row_sum(mat_vec_mul(col_normalize(m), vector))` without building the two intermediate
/// matrices: the same per-entry operations in the same order (a product that is exactly 0, which
/// subtensor drops before summing, adds nothing).
fn col_normalized_matvec(m: &[Vec<(u16, I32F32)>], columns: u16, vector: &[I32F32]) -> Vec<I32F32> {
    let mut col_sum = vec![I32F32::ZERO; columns as usize];
    for row in m {
        for &(j, v) in row {
            col_sum[j as usize] = col_sum[j as usize].saturating_add(v);
        }
    }
    let col_div: Vec<Option<Divisor>> = col_sum
        .iter()
        .map(|d| (*d != I32F32::ZERO).then(|| Divisor::new(*d)))
        .collect();
    m.iter()
        .map(|row| {
            row.iter().fold(I32F32::ZERO, |acc, &(j, v)| {
                let normalized = match col_div[j as usize] {
                    Some(d) => d.div(v),
                    None => v,
                };
                acc.saturating_add(
                    normalized
                        .saturating_mul(vector.get(j as usize).copied().unwrap_or(I32F32::ZERO)),
                )
            })
        })
        .collect()
}

/// Liquid alpha for one bond (subtensor's `alpha_sigmoid`): how far the weight sits above
/// consensus (buying) or below the old bond (selling), through a sigmoid centred on 0.5, mapped
/// into [alpha_low, alpha_high].
pub fn alpha_sigmoid(
    consensus: I32F32,
    weight: I32F32,
    bond: I32F32,
    alpha_low: I32F32,
    alpha_high: I32F32,
    steepness: I32F32,
) -> I32F32 {
    let rate = safe_div(steepness, I32F32::from_num(-100));
    alpha_sigmoid_with_rate(consensus, weight, bond, alpha_low, alpha_high, rate)
}

/// [`alpha_sigmoid`] with `rate = steepness / −100` computed once by the caller.
fn alpha_sigmoid_with_rate(
    consensus: I32F32,
    weight: I32F32,
    bond: I32F32,
    alpha_low: I32F32,
    alpha_high: I32F32,
    rate: I32F32,
) -> I32F32 {
    let exponent = sigmoid_exponent(consensus, weight, bond, rate);
    alpha_from_exp(exp_safe(exponent), alpha_low, alpha_high)
}

/// The exponent of [`alpha_sigmoid`]: `rate · (combined − 0.5)`.
#[inline]
fn sigmoid_exponent(consensus: I32F32, weight: I32F32, bond: I32F32, rate: I32F32) -> I32F32 {
    let zero = I32F32::ZERO;
    let one = I32F32::ONE;
    let diff_buy = clamp_value(weight.saturating_sub(consensus), zero, one);
    let diff_sell = clamp_value(bond.saturating_sub(weight), zero, one);
    let combined = if weight >= bond { diff_buy } else { diff_sell };
    rate.saturating_mul(combined.saturating_sub(I32F32::from_num(0.5)))
}

/// [`alpha_sigmoid`] from `e^exponent`.
#[inline]
fn alpha_from_exp(exp: I32F32, alpha_low: I32F32, alpha_high: I32F32) -> I32F32 {
    let one = I32F32::ONE;
    let sigmoid = safe_div(one, one.saturating_add(exp));
    let alpha =
        alpha_low.saturating_add(sigmoid.saturating_mul(alpha_high.saturating_sub(alpha_low)));
    clamp_value(alpha, alpha_low, alpha_high)
}

/// The liquid-alpha bond entry `min(1, (1 − a)·old + max(0, a·new))` (as
/// [`mat_ema_alpha_sparse`]) with `a` already computed.
#[inline]
fn liquid_ema_entry(a: I32F32, new: I32F32, old: I32F32) -> I32F32 {
    let decayed = I32F32::ONE.saturating_sub(a).saturating_mul(old);
    let inc = a.saturating_mul(new).max(I32F32::ZERO);
    decayed.saturating_add(inc).min(I32F32::ONE)
}

/// The liquid-alpha EMA over the union `(j, new_ij, old_ij)` entries of one row, in order,
/// pushing the entries > 0 to `out`. The alphas are computed four at a time ([`exp_safe4`]),
/// which gives the same bits as one at a time.
fn liquid_ema_row(
    entries: &[(u16, I32F32, I32F32)],
    consensus: &[I32F32],
    (lo, hi, rate): (I32F32, I32F32, I32F32),
    out: &mut Vec<(u16, I32F32)>,
) {
    let consensus_of = |j: u16| consensus.get(j as usize).copied().unwrap_or(I32F32::ZERO);
    let mut chunks = entries.chunks_exact(4);
    for chunk in &mut chunks {
        let mut exponents = [I32F32::ZERO; 4];
        for (e, &(j, n, o)) in exponents.iter_mut().zip(chunk) {
            *e = sigmoid_exponent(consensus_of(j), n, o, rate);
        }
        let exps = exp_safe4(exponents);
        for (&(j, n, o), e) in chunk.iter().zip(exps) {
            let v = liquid_ema_entry(alpha_from_exp(e, lo, hi), n, o);
            if v > I32F32::ZERO {
                out.push((j, v));
            }
        }
    }
    for &(j, n, o) in chunks.remainder() {
        let a = alpha_sigmoid_with_rate(consensus_of(j), n, o, lo, hi, rate);
        let v = liquid_ema_entry(a, n, o);
        if v > I32F32::ZERO {
            out.push((j, v));
        }
    }
}

/// The fixed EMA coefficient `1 − bonds_moving_average / 1e6` (via 64.64, as subtensor).
pub fn bonds_ema_alpha(bonds_moving_average: u64) -> I32F32 {
    let bma = safe_div_64(
        I64F64::from_num(bonds_moving_average),
        I64F64::from_num(1_000_000),
    );
    I32F32::ONE.saturating_sub(fixed64_to_fixed32(bma))
}

/// Run one epoch. Pure and deterministic; refuses malformed input with an [`EpochError`].
pub fn run_epoch(input: &EpochInput) -> Result<EpochOutput, EpochError> {
    input.validate()?;
    let n = input.stake.len();
    let cols = n as u16;
    let owner = input.owner_uid;

    // == Stake ==
    let mut stake64: Vec<I64F64> = input
        .stake
        .iter()
        .enumerate()
        .map(|(uid, &s)| {
            if owner != Some(uid as u16) && s < input.stake_threshold {
                I64F64::ZERO
            } else {
                I64F64::saturating_from_num(s)
            }
        })
        .collect();
    inplace_normalize_64(&mut stake64);
    let stake: Vec<I32F32> = stake64.into_iter().map(fixed64_to_fixed32).collect();

    // == Validator permits ==
    let mut permits = input.validator_permit.clone();
    if let Some(o) = owner {
        permits[o as usize] = true;
    }
    let forbids: Vec<bool> = permits.iter().map(|p| !p).collect();
    let mut new_permits = is_topk_nonzero(&stake, input.max_allowed_validators as usize);
    if let Some(o) = owner {
        new_permits[o as usize] = true;
    }

    // == Active stake ==
    let inactive: Vec<bool> = input.active.iter().map(|a| !a).collect();
    let mut active_stake = stake.clone();
    inplace_mask_vector(&inactive, &mut active_stake);
    inplace_mask_vector(&forbids, &mut active_stake);
    inplace_normalize(&mut active_stake);

    // == Weights ==
    // One pass doing what subtensor does in four (`mask_rows_sparse`, `mask_diag_sparse_except_index`,
    // `vec_mask_sparse_matrix`, conversion): the kept entries and their values are the same.
    let mut weights: SparseMatrix = input
        .weights
        .iter()
        .enumerate()
        .map(|(i, row)| {
            if forbids[i] {
                return Vec::new();
            }
            let updated = input.last_update[i];
            let mut out = Vec::with_capacity(row.len());
            out.extend(
                row.iter()
                    .filter(|(j, _)| i != *j as usize || owner == Some(*j))
                    .filter(|(j, _)| updated > input.block_at_registration[*j as usize])
                    .map(|&(j, v)| (j, u16_to_fixed(v))),
            );
            out
        })
        .collect();
    inplace_row_normalize_sparse(&mut weights);

    // == Consensus, clipping, validator trust ==
    let kappa = u16_proportion_to_fixed(input.kappa);
    let consensus = weighted_median_col_sparse(&active_stake, &weights, cols, kappa);
    let bonds_penalty = u16_proportion_to_fixed(input.bonds_penalty);
    // At β = 1 the bonds use the clipped weights only, so clip the weights in place.
    let clipped = if bonds_penalty == I32F32::ONE {
        inplace_col_clip_sparse(&mut weights, &consensus);
        std::mem::take(&mut weights)
    } else {
        col_clip_sparse(&weights, &consensus)
    };
    let validator_trust = row_sum_sparse(&clipped);

    // == Ranks, incentive ==
    let mut incentive = matmul_sparse(&clipped, &active_stake, cols);
    inplace_normalize(&mut incentive);

    // == Bonds, dividends ==
    // `interpolate_sparse` returns one of its inputs unchanged at β = 1 or 0; neither is needed
    // after this, so take it instead of copying.
    let mut weights_for_bonds: SparseMatrix = if bonds_penalty == I32F32::ONE {
        clipped
    } else if bonds_penalty == I32F32::ZERO {
        weights
    } else {
        interpolate_sparse(&weights, &clipped, bonds_penalty)
    };
    let last_tempo = match input.last_epoch_block {
        Some(b) => b.saturating_add(1),
        None => input.block.saturating_sub(input.tempo),
    };
    let fixed_alpha = bonds_ema_alpha(input.bonds_moving_average);

    let mut dividends: Vec<I32F32>;
    let ema_bonds: SparseMatrix;
    match input.yuma {
        YumaVersion::Yuma3 => {
            // The same entry formulas as `mat_ema_alpha_sparse` and `mat_ema_sparse`, fed the
            // masked stored bonds directly.
            let la = input.liquid_alpha;
            ema_bonds = if la.enabled && consensus.iter().any(|c| *c != I32F32::ZERO) {
                let lo = u16_proportion_to_fixed(la.alpha_low);
                let hi = u16_proportion_to_fixed(la.alpha_high);
                let rate = safe_div(I32F32::from_num(la.steepness), I32F32::from_num(-100));
                let convert = |_, v| u16_proportion_to_fixed(v);
                ema_rows_from_stored_bonds(
                    &weights_for_bonds,
                    input,
                    last_tempo,
                    convert,
                    |row, out| liquid_ema_row(row, &consensus, (lo, hi, rate), out),
                )
            } else {
                let one_minus_alpha = I32F32::ONE.saturating_sub(fixed_alpha);
                let convert = |_, v| u16_proportion_to_fixed(v);
                ema_from_stored_bonds(&weights_for_bonds, input, last_tempo, convert, |_, n, o| {
                    fixed_alpha
                        .saturating_mul(n)
                        .saturating_add(one_minus_alpha.saturating_mul(o))
                })
            };
            let per_validator = col_normalized_matvec(&ema_bonds, cols, &incentive);
            dividends = vec_mul(&per_validator, &active_stake);
            inplace_normalize(&mut dividends);
        }
        YumaVersion::Yuma2 => {
            // ΔB = W̃ ∘ S (subtensor's `row_hadamard_sparse`), in place.
            for (row, s) in weights_for_bonds.iter_mut().zip(&active_stake) {
                for (_, v) in row.iter_mut() {
                    *v = v.saturating_mul(*s);
                }
            }
            let mut delta = weights_for_bonds;
            inplace_col_normalize_sparse(&mut delta, cols);
            // Old bonds: masked, as integers, column-normalised (subtensor's steps), read
            // straight from the stored bonds: column sums first (rows in order, as
            // `inplace_col_normalize_sparse`), then each value divided as it is merged.
            let keep = |j: u16| last_tempo > input.block_at_registration[j as usize];
            let mut col_sum = vec![I32F32::ZERO; n];
            for row in &input.bonds {
                for &(j, v) in row {
                    if keep(j) {
                        col_sum[j as usize] = col_sum[j as usize].saturating_add(u16_to_fixed(v));
                    }
                }
            }
            let col_div: Vec<Option<Divisor>> = col_sum
                .iter()
                .map(|d| (*d != I32F32::ZERO).then(|| Divisor::new(*d)))
                .collect();
            let convert = |j: u16, v: u16| match col_div[j as usize] {
                Some(d) => d.div(u16_to_fixed(v)),
                None => u16_to_fixed(v),
            };
            let one_minus_alpha = I32F32::ONE.saturating_sub(fixed_alpha);
            let mut ema = ema_from_stored_bonds(&delta, input, last_tempo, convert, |_, n, o| {
                fixed_alpha
                    .saturating_mul(n)
                    .saturating_add(one_minus_alpha.saturating_mul(o))
            });
            inplace_col_normalize_sparse(&mut ema, cols);
            dividends = matmul_transpose_sparse(&ema, &incentive);
            inplace_normalize(&mut dividends);
            inplace_col_max_upscale_sparse(&mut ema, cols);
            ema_bonds = ema;
        }
    }

    // == Stored bonds ==
    let bonds: Vec<Vec<(u16, u16)>> = (0..n)
        .map(|i| {
            if new_permits[i] {
                ema_bonds
                    .get(i)
                    .map(|row| {
                        row.iter()
                            .map(|&(j, v)| (j, fixed_proportion_to_u16(v)))
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                Vec::new()
            }
        })
        .collect();

    // == Emission ==
    let (server_emission, validator_emission, undistributed) = split_emission(
        input.emission,
        &incentive,
        &dividends,
        &active_stake,
        &stake,
    );

    Ok(EpochOutput {
        stake,
        active_stake,
        consensus,
        validator_trust,
        incentive,
        dividends,
        validator_permit: new_permits,
        bonds,
        server_emission,
        validator_emission,
        undistributed,
    })
}

/// Split `emission` base units between miners (by incentive) and validators (by dividends).
///
/// Subtensor gives UID i `floor(E · I_i / (ΣI + ΣD))` as miner and `floor(E · D_i / (ΣI + ΣD))` as
/// validator, and drops the remainders. mycel loses nothing: with the 2n weights
/// `w = (I_0 … I_{n−1}, D_0 … D_{n−1})` (their exact 32.32 bit patterns) and `W = Σw`, part k
/// gets `floor(E · w_k / W)` computed exactly in 128-bit integers, and the `L < 2n` units left
/// over go one each to the parts with the largest remainders `E · w_k mod W`, ties to the lower
/// k (miner parts before validator parts, then lower UID). The parts sum to E exactly.
///
/// If ΣI + ΣD = 0 (no weights, outdated weights, only self-weights), validators get everything
/// in proportion to active stake, or to stake if no stake is active — as subtensor. If even the
/// stake is all zero, the whole emission is returned as `undistributed`.
pub fn split_emission(
    emission: u64,
    incentive: &[I32F32],
    dividends: &[I32F32],
    active_stake: &[I32F32],
    stake: &[I32F32],
) -> (Vec<u64>, Vec<u64>, u64) {
    let n = incentive.len();
    let bits = |v: &I32F32| v.to_bits().max(0) as u128;
    let mut w: Vec<u128> = incentive
        .iter()
        .map(bits)
        .chain(dividends.iter().map(bits))
        .collect();
    if w.iter().all(|x| *x == 0) {
        let fallback = if active_stake.iter().any(|s| *s > I32F32::ZERO) {
            active_stake
        } else {
            stake
        };
        w = std::iter::repeat_n(0u128, n)
            .chain(fallback.iter().map(bits))
            .collect();
    }
    let parts = largest_remainder(emission, &w);
    let Some(parts) = parts else {
        return (vec![0; n], vec![0; n], emission);
    };
    let (server, validator) = parts.split_at(n.min(parts.len()));
    (server.to_vec(), validator.to_vec(), 0)
}

/// Apportion `total` in proportion to `weights` by the largest-remainder method (ties to the lower
/// index). `None` when all weights are zero. The parts sum to `total` exactly.
pub fn largest_remainder(total: u64, weights: &[u128]) -> Option<Vec<u64>> {
    // Each weight is < 2^63 and there are < 2^17 of them, so the sum fits in u128, and
    // total · w_k < 2^64 · 2^63 fits too.
    let sum: u128 = weights.iter().fold(0u128, |a, w| a.saturating_add(*w));
    if sum == 0 {
        return None;
    }
    let t = total as u128;
    let mut parts: Vec<u64> = Vec::with_capacity(weights.len());
    let mut rems: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
    let mut given: u128 = 0;
    for (k, w) in weights.iter().enumerate() {
        let prod = t.saturating_mul(*w);
        let q = prod / sum;
        parts.push(q as u64);
        given += q;
        rems.push((prod % sum, k));
    }
    let mut left = t - given;
    // Largest remainder first; equal remainders to the lower index.
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, k) in &rems {
        if left == 0 {
            break;
        }
        parts[k] += 1;
        left -= 1;
    }
    Some(parts)
}

#[cfg(test)]
#[path = "yuma_tests.rs"]
mod tests;
