//! mycel-gateway: the paid front door of mycel — an x402 paywall in front of an OpenAI-compatible
//! server, and an x402 facilitator that settles on the mycel chain.
//!
//! Contract:
//! - A completion request is read as a miner will read it and its prompt tokenized with the
//!   served model's tokenizer before anything else ([`admission`]): it is priced by its prompt
//!   tokens and the output it may take, a request that cannot fit the context is refused before
//!   payment, and the body forwarded names its output limit, so no more is generated than sold.
//! - A paid route serves only after a payment was checked and held ([`paywall`]), and charges
//!   only after the handler succeeded: if the handler fails, the payment is released, not taken.
//!   The paywall knows no scheme: it asks the payment schemes it was given ([`scheme`]: x402
//!   `exact`, settled per request; `session`, cumulative vouchers on an escrow channel, kept in
//!   the [`session`] book), and a 402 carries every scheme's offer. A client that loses a paid
//!   answer gets it again by resending the same request with the same payment, whatever the
//!   scheme ([`answers`]).
//! - A gateway is put together in one place, [`GatewayBuilder`] (config, facilitator, schemes,
//!   miner router, revenue share); `mycel gateway`, `mycel up` (which runs `mycel gateway`),
//!   the tests and the benchmark all use it.
//! - Settlement executes the payer's EIP-3009 authorization on mUSD through the node's HTTP API
//!   and waits for finality ([`facilitator::Facilitator::settle`]). It is idempotent on the
//!   authorization `(from, nonce)`: concurrent and repeated settles of one payment submit at most
//!   one transaction and all get its result; the chain refuses a used `(from, nonce)` anyway.
//! - Every refusal has a stable reason code, the reference facilitator's where it has one
//!   ([`facilitator::reason`]); docs/payments.md lists them.
//! - With `--netuid`, requests go to the subnet's miners ([`router`]): chosen by incentive,
//!   health and latency, failed over on miner errors, each answer's receipt checked against the
//!   miner's hotkey; a share of each settled price goes to the serving miner's coldkey
//!   ([`revenue`]).
//!
//! Assumes: the node's HTTP API (docs/node-api.md) is reachable — through `mycel-client`, the
//! only client of it — and the facilitator's key holds MYC for fees. Does not: hold payers' keys,
//! persist settlements across restarts (the chain's record of used authorizations is the source
//! of truth), or link the model runtime: prompts are counted with mycel-tokenizer and receipts
//! checked with mycel-types, never with mycel-infer.
//!
//! Why not the `x402-types` / `x402-axum` crates (x402-rs, 2.0.2, checked with `cargo info` in
//! November 2026): both need Rust 1.93 and edition 2024 (this workspace promises 1.85);
//! `x402-types` pulls `rust_decimal`, `serde_with` and `async-trait` for types that are ~200 lines
//! of serde here; `x402-axum`'s dynamic price callback sees only the headers and URI, not the
//! body, so it cannot price a request by its `max_tokens`; and its price tags come from
//! `x402-chain-eip155`, which settles over Ethereum JSON-RPC that mycel's chain does not speak.
//! So the wire types are written in `mycel_types::x402` (named here as [`wire`]; the payer in
//! `mycel-client` builds its headers with the same types) after the x402 v2 specification and
//! the `@x402/core` types, and checked against the spec's examples and the real npm client
//! (interop/x402-client, crates/cli/tests/gateway.rs).

pub mod admission;
pub mod answers;
pub mod discovery;
pub mod facilitator;
pub mod paywall;
pub mod revenue;
pub mod router;
pub mod scheme;
pub mod server;
pub mod session;
pub mod wire;

pub use admission::{Admission, WorkTimeout};
pub use answers::PaidAnswers;
pub use discovery::Catalogue;
pub use facilitator::{
    Asset, Clock, Facilitator, FacilitatorConfig, FixedClock, SetupError, SystemClock,
};
pub use paywall::{ModelPrice, Paywall, Pricing};
pub use revenue::{RevenueConfig, RevenueShare};
pub use router::{MinerRouter, RoutingConfig};
pub use scheme::{ExactScheme, PaymentScheme, SessionScheme};
pub use server::{GatewayBuilder, GatewayConfig};
pub use session::{SessionBook, SessionVoucher};
