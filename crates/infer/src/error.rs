//! The one error type of the model runtime. Each message says what went wrong and what to do.

use std::path::PathBuf;

use mycel_tokenizer::TokenizerError;

/// Everything that can go wrong while fetching, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// Fetching the model file, reading its header, its tokenizer or chat template, or turning a
    /// request into prompt tokens (mycel-tokenizer).
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),

    // The underlying errors are part of the message and deliberately not `source()`, so that an
    // error chain printer (anyhow's `{:#}`) does not repeat them.
    #[error("cannot {action} {path}: {error}")]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },

    /// candle could not read the tensor descriptions or the tensors.
    #[error("{path} is not a readable GGUF model: {detail}")]
    Gguf { path: PathBuf, detail: String },

    // The weights' own checks (forward.rs); the tokenizer's metadata errors are
    // `TokenizerError`'s, with the same messages.
    #[error("the GGUF metadata has no `{key}`; this file cannot be used as a mycel model")]
    MissingMetadata { key: String },

    #[error("the GGUF metadata `{key}` is invalid: {reason}")]
    BadMetadata { key: String, reason: String },

    #[error("the prompt has {tokens} tokens but the model's context holds {limit}; shorten it")]
    PromptTooLong { tokens: usize, limit: usize },

    #[error("the generation was cancelled (its client went away)")]
    Cancelled,

    #[error("the prompt is empty; give at least one token")]
    EmptyPrompt,

    #[error("invalid sampling setting: {0}")]
    InvalidSampling(String),

    #[error("model computation failed: {0}")]
    Compute(String),
}

impl From<candle_core::Error> for InferError {
    fn from(error: candle_core::Error) -> Self {
        Self::Compute(candle_message(&error))
    }
}

/// candle's message without the backtrace it appends when `RUST_BACKTRACE` is set.
pub(crate) fn candle_message(error: &candle_core::Error) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

impl InferError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        error: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            error,
        }
    }
}
