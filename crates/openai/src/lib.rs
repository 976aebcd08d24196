//! mycel-openai: the OpenAI-compatible request format, read once, the same way by the miner that
//! serves a request and the gateway that prices and routes it.
//!
//! # What it guarantees
//! - **One reading of a request.** [`parse_chat`] and [`parse_completion`] turn a JSON body into
//!   a [`ParsedRequest`] with every setting decided: defaults filled in (OpenAI's where it has one),
//!   `max_completion_tokens` and `max_tokens` read by one rule (both given must agree).
//!   Parameters mycel does not implement are refused with a 400 naming them — never silently
//!   ignored — unless they are given at their no-op value (`tools: []`, `logit_bias: {}`, ...);
//!   unknown parameters are refused as OpenAI refuses them.
//! - **One admission.** [`ParsedRequest::admit`] tokenizes the prompt with the model's
//!   [`mycel_tokenizer::PromptFormat`] (message text is always text: no special tokens from users)
//!   and decides how many tokens the answer may take: the requested `max_tokens` if prompt and
//!   output fit the context, else a 400 `context_length_exceeded`; without a request, the default
//!   cut to what the context has left. Tokenizing stops at the context: a prompt far too long
//!   costs the work of a context's worth of tokens, not of its length.
//! - **What was priced is what runs.** [`Admitted`] is the request as a gateway priced it:
//!   [`Admitted::forward_body`] writes its output limit explicitly into the body sent upstream, so
//!   a miner with other defaults generates at most what was paid for, and its receipt's request
//!   hash is [`Admitted::request`]'s.
//! - Errors in OpenAI's shape ([`ApiError`]): `{"error": {"message", "type", "param", "code"}}`.
//!
//! # What it does not do
//! No I/O, no model execution (it depends on mycel-tokenizer and mycel-types, not on the model
//! runtime), no pricing (the gateway prices [`Admitted`]).

mod error;
mod request;

pub use error::ApiError;
pub use request::{
    parse_chat, parse_completion, Admitted, Limits, ParsedRequest, DEFAULT_COMPLETION_MAX_TOKENS,
    MAX_STOP_SEQUENCES,
};
