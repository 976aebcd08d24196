//! Payment schemes: the ways a client can pay for one admitted request, each behind one
//! interface the paywall ([`crate::paywall`]) calls without knowing which scheme it talks to.
//!
//! A scheme's life with one request, in the paywall's order:
//! 1. [`PaymentScheme::accepts`]: what it offers for the request's price, added to every 402's
//!    `accepts` (x402 `exact` offers its requirements; `session` offers none: the x402
//!    specification has no session scheme, and session clients read the price from the 402).
//! 2. [`PaymentScheme::read`]: the payment the request headers carry for this scheme, read and
//!    checked without I/O, or why it is refused, or `None` (no payment of this scheme).
//! 3. [`Payment::answer_key`]: the payment's identity, under which the paywall keeps the paid
//!    answer for a retry ([`crate::answers`]) — the same for every scheme.
//! 4. [`Payment::reserve`]: the payment is checked against the chain and held for this request
//!    (x402: verified, its authorization in flight; session: the voucher's range reserved).
//! 5. After the handler answered with a 2xx: [`Reserved::commit`] takes the money (x402: settle
//!    on chain; session: count the voucher) in a task the client cannot cancel. A handler that
//!    fails drops the [`Reserved`] instead, which releases it: nothing is charged.
//!
//! Contract: a scheme refuses with a [`Refusal`] (a reason code and a sentence), which the
//! paywall turns into a 402 carrying every scheme's offer; it never charges before
//! [`Reserved::commit`], and a dropped [`Payment`] or [`Reserved`] holds nothing.
//!
//! Why a trait object (`Arc<dyn PaymentScheme>`) and not an enum of the schemes: the paywall
//! then names no scheme at all, a new scheme is a new file and one `GatewayBuilder::scheme` call
//! (no match arm to add in the paywall), and the paywall's own tests run it with a stub scheme
//! and no chain. The price is one boxed future per reserve and per commit, nothing beside a
//! chain round trip. The futures are boxed by hand ([`BoxFuture`]) rather than with
//! `async-trait`, which the workspace does not pull in for ~10 lines.

pub mod exact;
pub mod session;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;

use alloy_primitives::B256;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use mycel_types::Amount;

use crate::wire::PaymentRequirements;

pub use exact::ExactScheme;
pub use session::SessionScheme;

/// A boxed, sendable future: what the scheme traits return from their async steps.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a scheme refused a payment: the paywall answers 402 with `code` as the x402 `error` and
/// `message` for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}

impl Refusal {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Refusal {
        Refusal {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// What a committed payment adds to the answer.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// The amount now paid, for the settled-payment hook (the revenue share); `None` when the
    /// payment is accepted but not final yet (an x402 settlement still pending).
    pub paid: Option<Amount>,
    /// Headers set on the answer (the payment's receipt), replacing any of the same name.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// One way to pay. The paywall asks its schemes in the order they were added
/// (`GatewayBuilder::scheme`); the first that finds its payment in the request handles it.
pub trait PaymentScheme: Send + Sync {
    /// The scheme's name, for logs (`exact`, `session`).
    fn name(&self) -> &'static str;

    /// What this scheme offers in a 402's `accepts` for a request of `price`.
    fn accepts(&self, price: Amount) -> Vec<PaymentRequirements>;

    /// How a client pays with this scheme, for the 402 that asks for payment ("a … header");
    /// `None` to say nothing.
    fn how_to_pay(&self) -> Option<&'static str> {
        None
    }

    /// The payment of this scheme in `headers` for a request of `price`: `None` when there is
    /// none, else the payment read and checked without I/O, or why it is refused.
    fn read(&self, headers: &HeaderMap, price: Amount)
        -> Option<Result<Box<dyn Payment>, Refusal>>;
}

/// A payment read from a request, not yet checked against the chain nor held.
pub trait Payment: Send {
    /// The payment's identity: a paid answer is kept under it for a retry with the same payment
    /// ([`crate::answers::payment_key`], with the scheme's own tag).
    fn answer_key(&self) -> B256;

    /// The refusal for this payment when it already paid for another request.
    fn used_elsewhere(&self) -> Refusal;

    /// Checks the payment can pay and holds it for this request.
    fn reserve(self: Box<Self>) -> BoxFuture<'static, Result<Box<dyn Reserved>, Refusal>>;
}

/// A payment held for a request being served. Dropped without [`Reserved::commit`], it is
/// released and charges nothing.
pub trait Reserved: Send {
    /// The request was served: take the payment. `Err` is the answer to send instead (the
    /// payment failed after serving, e.g. an x402 settlement the chain refused).
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<Committed, Response>>;
}
