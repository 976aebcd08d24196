//! The session scheme: pay per call with a cumulative voucher (`X-MYCEL-SESSION`) on an escrow
//! channel, checked, held and counted by the gateway's [`SessionBook`] ([`crate::session`]).
//!
//! Order: read the voucher header → reserve its range in the book (the channel is read from the
//! chain the first time; refusals are the book's `session_*` codes) → serve → count the voucher
//! (written to the book's file before the answer leaves), answer with `X-MYCEL-SESSION-RESPONSE`,
//! and start a claim if a batch is due. A request that fails releases its range. The scheme adds
//! nothing to a 402's `accepts`: x402 has no session scheme, and a session client reads the
//! price from the `exact` offer.

use std::sync::Arc;
use tracing::Instrument as _;

use alloy_primitives::B256;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use mycel_types::Amount;

use super::{BoxFuture, Committed, Payment, PaymentScheme, Refusal, Reserved};
use crate::answers::payment_key;
use crate::session::{self, SessionBook, SessionRefusal, SESSION_HEADER, SESSION_RESPONSE_HEADER};
use crate::wire::PaymentRequirements;

/// Session vouchers paying the channels of one book.
#[derive(Clone)]
pub struct SessionScheme {
    book: Arc<SessionBook>,
}

impl SessionScheme {
    /// Vouchers checked and claimed by `book`. Spawn [`SessionBook::claim_loop`] beside the
    /// gateway so a quiet channel is claimed too.
    pub fn new(book: Arc<SessionBook>) -> SessionScheme {
        SessionScheme { book }
    }

    pub fn book(&self) -> &Arc<SessionBook> {
        &self.book
    }
}

fn refusal(refused: SessionRefusal) -> Refusal {
    Refusal::new(refused.code(), refused.to_string())
}

impl PaymentScheme for SessionScheme {
    fn name(&self) -> &'static str {
        "session"
    }

    fn accepts(&self, _price: Amount) -> Vec<PaymentRequirements> {
        Vec::new()
    }

    fn read(
        &self,
        headers: &HeaderMap,
        price: Amount,
    ) -> Option<Result<Box<dyn Payment>, Refusal>> {
        let voucher = headers.get(SESSION_HEADER)?;
        Some(match voucher.to_str() {
            Ok(voucher) => Ok(Box::new(SessionPayment {
                book: self.book.clone(),
                voucher: voucher.to_string(),
                price,
            }) as Box<dyn Payment>),
            Err(e) => Err(refusal(SessionRefusal::Malformed(e.to_string()))),
        })
    }
}

/// A voucher header, not yet checked.
struct SessionPayment {
    book: Arc<SessionBook>,
    voucher: String,
    price: Amount,
}

impl Payment for SessionPayment {
    fn answer_key(&self) -> B256 {
        payment_key("session", &[self.voucher.as_bytes()])
    }

    fn used_elsewhere(&self) -> Refusal {
        Refusal::new(
            "session_voucher_used",
            "this voucher already paid for another request; sign the next one",
        )
    }

    fn reserve(self: Box<Self>) -> BoxFuture<'static, Result<Box<dyn Reserved>, Refusal>> {
        Box::pin(async move {
            let reserved = self
                .book
                .reserve(&self.voucher, self.price)
                .await
                .map_err(refusal)?;
            Ok(Box::new(SessionReserved {
                book: self.book,
                reserved: Some(reserved),
            }) as Box<dyn Reserved>)
        })
    }
}

/// A voucher whose range is reserved; released when dropped uncounted (the handler failed, or
/// the client went away before the answer was read), so no range pays for an undelivered answer.
struct SessionReserved {
    book: Arc<SessionBook>,
    reserved: Option<session::Reserved>,
}

impl Drop for SessionReserved {
    fn drop(&mut self) {
        if let Some(reserved) = self.reserved.take() {
            self.book.release(&reserved);
        }
    }
}

impl Reserved for SessionReserved {
    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<Committed, Response>> {
        let reserved = self.reserved.take();
        let book = self.book.clone();
        Box::pin(async move {
            let Some(reserved) = reserved else {
                return Ok(Committed::default());
            };
            let receipt = crate::wire::encode_header(&serde_json::json!({
                "channel": reserved.channel,
                "cumulative": reserved.cumulative.to_string(),
                "price": reserved.price.to_string(),
            }));
            book.commit(&reserved).await;
            if book.claim_due() {
                tokio::spawn(
                    async move {
                        if let Err(e) = book.claim_now().await {
                            tracing::warn!("session claim failed (retried at the next batch): {e}");
                        }
                    }
                    .in_current_span(),
                );
            }
            Ok(Committed {
                paid: Some(reserved.price),
                headers: HeaderValue::from_str(&receipt)
                    .map(|v| (HeaderName::from_static(SESSION_RESPONSE_HEADER), v))
                    .into_iter()
                    .collect(),
            })
        })
    }
}
