//! mycel-train: low-communication training of a language model across miners — DiLoCo rounds
//! with SparseLoCo's compressed updates, scored the way Templar's Gauntlet scores them.
//!
//! # What a round is
//! 1. The subnet's current checkpoint θ is one `f32` vector in the model's canonical parameter
//!    order ([`model::Params`]); the first is drawn from the run's seed ([`model::Params::init`]).
//! 2. Each miner trains a copy for H inner AdamW steps on its shard of the corpus — windows drawn
//!    from its hotkey and the round ([`corpus::Corpus::shard`]) — and takes the pseudo-gradient
//!    Δ = θ − θ_miner ([`inner`]).
//! 3. It compresses Δ with error feedback, top-k per chunk and 2-bit values ([`sparseloco`]) and
//!    publishes the bytes.
//! 4. Validators decode each update, apply it alone to θ and measure the loss it removes on
//!    held-out text and on the miner's own shard against random windows ([`score`]): an update
//!    that helps random data as much as the data it claims to be trained on was not trained on it.
//! 5. The aggregator averages the accepted updates and takes the outer step ([`outer`]); the
//!    result is the next checkpoint.
//!
//! # Guarantees
//! - Every step above is a function of its inputs: the corpus and its split are pinned by hash,
//!   shards and the first checkpoint come from ChaCha20 seeds, parameters have one order, the
//!   codec and the outer step use fixed-order scalar arithmetic, and the inner steps run on
//!   fixed-order kernels ([`exact`]): the same bits at any thread count and on CPUs with or
//!   without AVX (tested under qemu).
//!
//! # Roles
//! [`roles`] runs the miner and the validator against a node and blob storage; [`run`] is a
//! run's specification and its checkpoints as bytes. Nothing here parses flags or prints.

pub mod baseline;
pub mod corpus;
pub mod exact;
pub mod export;

pub mod inner;
pub mod model;
pub mod outer;
mod rng;
pub mod roles;
pub mod round;
pub mod run;
pub mod score;
pub mod sparseloco;

use std::path::{Path, PathBuf};

/// What can go wrong while training, scoring or fetching the corpus.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Config(String),
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("could not {action} {}: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("could not fetch {what}: {detail}")]
    Fetch { what: String, detail: String },
    #[error(transparent)]
    Tokenizer(#[from] mycel_tokenizer::TokenizerError),
}

impl TrainError {
    pub fn io(action: &'static str, path: impl AsRef<Path>, error: std::io::Error) -> Self {
        TrainError::Io {
            action,
            path: path.as_ref().to_path_buf(),
            error,
        }
    }
}
