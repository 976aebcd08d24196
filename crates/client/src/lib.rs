//! mycel-client: the one typed client of the node API (docs/node-api.md), and the x402 payer.
//!
//! Contract:
//! - [`NodeClient`] has one typed call per route and reads every answer into its wire type
//!   ([`mycel_types::api`], re-exported as [`api`]); nothing above it reads a node answer by
//!   field name. [`blocking::NodeClient`] is the same client for code without an async runtime
//!   (the CLI).
//! - Every failure is a [`ClientError`]: the node unreachable, the node's own refusal with its
//!   stable `code` and `message` (so a caller can act on the code), an answer that is not the
//!   node API, or a transaction that did not end up applied.
//! - [`NodeClient::send_and_wait`] signs (with the node's chain id, minimum fee and the account's
//!   next nonce unless given), submits and follows a transaction until it is final or a timeout
//!   passes, and says which of four things happened ([`Outcome`]): applied in a block, failed in
//!   a block, rejected (on entry or dropped later) with a code, or still pending at the timeout.
//! - The x402 payer ([`x402`]) turns a 402 (v2 `PAYMENT-REQUIRED` header or v1 body) into a
//!   signed exact EIP-3009 payment header, with the wire types the gateway reads
//!   ([`mycel_types::x402`]).
//!
//! Assumes: the node is reached over plain `http://` (put a TLS proxy's plain side in front).
//! Does not: keep keys beyond the call that signs, retry refused transactions, or pick fees.

pub mod agents;
pub mod blocking;
mod error;
mod node;
pub use node::ChainParams;
mod send;
mod sse;
pub mod x402;

pub use error::ClientError;
pub use mycel_types::api;
pub use node::{JobFilter, NodeClient, PreparedTx, POOL_IDLE_TIMEOUT};
pub use send::{Applied, Nonces, Outcome, SendOptions, TxFields};
pub use sse::BlockStream;
