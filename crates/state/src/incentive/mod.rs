//! The incentive layer's pure math: Yuma consensus and the emission schedule.
//!
//! - [`math`]: fixed-point vector/matrix kernels mirroring subtensor's `epoch/math.rs`.
//! - [`yuma`]: one Yuma epoch of one subnet (classic Yuma 2 and Yuma 3 with liquid alpha), a
//!   pure function from [`yuma::EpochInput`] to [`yuma::EpochOutput`].
//! - [`emission`]: block emission from total issuance, with halvings and the 21M cap.
//!
//! Contract: everything here is deterministic — fixed point (`fixed` crate I32F32 / I64F64, as
//! subtensor uses), integers for amounts, no floats, no hash-map iteration, no randomness, no
//! I/O. Results are meant to be compared number for number with subtensor; where mycel departs
//! from it on purpose (exact emission split without dust, one liquid-alpha EMA meaning for sparse
//! and dense storage) the item's docs say so.
//!
//! Does not: keep state, know about subnets, neurons or transactions (those modules build an
//! [`yuma::EpochInput`] from chain state and apply the output).

pub mod emission;
pub mod math;
pub mod yuma;

pub use fixed::types::{I32F32, I64F64};
pub use yuma::{run_epoch, EpochError, EpochInput, EpochOutput, LiquidAlpha, YumaVersion};
