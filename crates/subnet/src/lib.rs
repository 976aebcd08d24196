//! mycel-subnet: the roles of an inference subnet.
//!
//! [`miner`] serves a model through an OpenAI-compatible HTTP API and signs a receipt
//! ([`mycel_types::receipt`]) for every completion it returns. [`validator`] challenges the
//! miners of a subnet, checks their receipts, re-executes a sample, and sets weights on chain.
//!
//! # What it guarantees
//! - Every completion the miner returns carries a receipt signed by its hotkey that binds the chain,
//!   the subnet, the model file, the canonical request, the prompt and output token ids, the
//!   determinism profile and the block height; anyone holding the model re-runs the request and
//!   gets the same output tokens.
//! - The model decodes one request at a time per worker, with the protocol's decode schedule
//!   (no batching across requests, so a request's output never depends on what else is running).
//!   Requests wait in a bounded queue; when it is full the miner answers 429 at once with an
//!   OpenAI-style error and `Retry-After`, instead of letting latency grow without bound.
//! - Bad requests get OpenAI-style 4xx errors (`{"error": {"message", "type", "param", "code"}}`)
//!   that name the offending parameter.
//! - The validator gives a miner weight 0 for a round in which any of its answers lacks a valid
//!   receipt signed by its metagraph hotkey for the validator's model and exact request, or is not
//!   reproduced token for token by a local re-run; it weighs only UIDs it challenged.
//!
//! # What it does not do
//! No command-line parsing, no key files (the caller hands over a signer), no consensus.

mod chain;
pub mod miner;
pub mod validator;

pub use chain::ChainError;
