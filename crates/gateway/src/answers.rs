//! Paid answers kept for a retry: a client that paid and lost the answer (it hung up while the
//! payment settled, or the connection broke) sends the same request with the same payment
//! again and gets the same answer, without paying twice.
//!
//! Rule (docs/payments.md, "Retrying a paid request"): an answer is kept from the moment its
//! payment starts to settle (x402) or its voucher is counted (sessions) for [`PaidAnswers::ttl`]
//! (default 10 minutes), under the payment's identity — for x402 the authorization's signer,
//! nonce and signature, for sessions the voucher's channel, cumulative amount and signature —
//! together with the digest of the request body. The same payment with the same body gets the
//! kept answer (waiting for it if it is still settling); the same payment with another body is
//! refused. Only answers whose payment succeeded are kept. The cache holds at most
//! [`PaidAnswers::max_bytes`] of answers, the oldest dropped first. It is in memory: a gateway
//! restart forgets it (the chain still refuses to charge a payment twice).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{keccak256, B256};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tokio::sync::watch;

/// An answer as it was sent.
#[derive(Debug, Clone)]
pub struct StoredAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl StoredAnswer {
    pub fn response(&self) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }

    fn size(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len())
                .sum::<usize>()
    }
}

#[derive(Debug, Clone)]
enum Slot {
    Settling,
    Ready(Arc<StoredAnswer>),
    Failed,
}

struct Entry {
    request: B256,
    slot: watch::Receiver<Slot>,
    size: usize,
    added: Instant,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<B256, Entry>,
    /// Keys in the order they were added, with when.
    order: VecDeque<(Instant, B256)>,
    bytes: usize,
}

/// What a retried payment finds.
pub enum Lookup {
    /// Never seen (or forgotten): serve it normally.
    Vacant,
    /// The payment already paid for this request: here is the answer.
    Answered(Arc<StoredAnswer>),
    /// The payment already paid for another request.
    OtherRequest,
}

/// The cache. One per gateway.
pub struct PaidAnswers {
    inner: Mutex<Inner>,
    /// How long an answer is kept.
    pub ttl: Duration,
    /// Most bytes of answers kept.
    pub max_bytes: usize,
}

impl Default for PaidAnswers {
    fn default() -> Self {
        Self::new(Duration::from_secs(600), 64 << 20)
    }
}

/// The identity of a payment: a digest of its parts (`scheme` separates x402 and sessions).
pub fn payment_key(scheme: &str, parts: &[&[u8]]) -> B256 {
    let mut bytes = scheme.as_bytes().to_vec();
    for part in parts {
        bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
        bytes.extend_from_slice(part);
    }
    keccak256(bytes)
}

/// Fills a slot reserved by [`PaidAnswers::begin`]; dropped unfilled, the slot fails (a
/// waiting retry is then served normally and the payment's own checks decide).
pub struct Pending {
    sender: watch::Sender<Slot>,
    key: B256,
    answers: Arc<PaidAnswers>,
    done: bool,
}

impl Pending {
    /// The payment succeeded: keep `answer` for retries.
    pub fn fulfil(mut self, answer: StoredAnswer) {
        let answer = Arc::new(answer);
        let size = answer.size();
        self.answers.store_size(self.key, size);
        let _ = self.sender.send(Slot::Ready(answer));
        self.done = true;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.sender.send(Slot::Failed);
            self.answers.forget(self.key);
        }
    }
}

impl PaidAnswers {
    pub fn new(ttl: Duration, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            ttl,
            max_bytes,
        }
    }

    /// What the payment `key` already bought, waiting while its payment is still settling.
    pub async fn lookup(&self, key: B256, request: B256) -> Lookup {
        let slot = {
            let mut inner = self.lock();
            self.expire(&mut inner);
            match inner.entries.get(&key) {
                None => return Lookup::Vacant,
                Some(entry) if entry.request != request => return Lookup::OtherRequest,
                Some(entry) => entry.slot.clone(),
            }
        };
        let mut slot = slot;
        loop {
            let current = slot.borrow_and_update().clone();
            match current {
                Slot::Ready(answer) => return Lookup::Answered(answer),
                Slot::Failed => return Lookup::Vacant,
                Slot::Settling => {
                    if slot.changed().await.is_err() {
                        return Lookup::Vacant;
                    }
                }
            }
        }
    }

    /// Reserves the slot of payment `key` for `request` before its payment settles.
    pub fn begin(self: &Arc<Self>, key: B256, request: B256) -> Pending {
        let (sender, receiver) = watch::channel(Slot::Settling);
        let added = Instant::now();
        let mut inner = self.lock();
        self.expire(&mut inner);
        if let Some(old) = inner.entries.insert(
            key,
            Entry {
                request,
                slot: receiver,
                size: 0,
                added,
            },
        ) {
            inner.bytes -= old.size;
        }
        inner.order.push_back((added, key));
        Pending {
            sender,
            key,
            answers: Arc::clone(self),
            done: false,
        }
    }

    /// Bytes of answers held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn store_size(&self, key: B256, size: usize) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get_mut(&key) {
            entry.size = size;
            inner.bytes += size;
        }
        // Oldest first, until the answers fit (the newest one is kept even if alone too big).
        while inner.bytes > self.max_bytes && inner.order.len() > 1 {
            Self::drop_oldest(&mut inner);
        }
    }

    /// Drops the oldest key, unless it was added again since (then its later turn counts).
    fn drop_oldest(inner: &mut Inner) {
        let Some((added, key)) = inner.order.pop_front() else {
            return;
        };
        if inner.entries.get(&key).is_some_and(|e| e.added == added) {
            if let Some(entry) = inner.entries.remove(&key) {
                inner.bytes -= entry.size;
            }
        }
    }

    fn forget(&self, key: B256) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.remove(&key) {
            inner.bytes -= entry.size;
        }
    }

    fn expire(&self, inner: &mut Inner) {
        while inner
            .order
            .front()
            .is_some_and(|(added, _)| added.elapsed() >= self.ttl)
        {
            Self::drop_oldest(inner);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &'static str) -> StoredAnswer {
        StoredAnswer {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[tokio::test]
    async fn a_retry_gets_the_answer_and_waits_while_it_settles() {
        let answers = Arc::new(PaidAnswers::default());
        let (key, request) = (B256::repeat_byte(1), B256::repeat_byte(2));
        assert!(matches!(answers.lookup(key, request).await, Lookup::Vacant));
        let pending = answers.begin(key, request);
        let waiting = {
            let answers = answers.clone();
            tokio::spawn(async move { answers.lookup(key, request).await })
        };
        assert!(matches!(
            answers.lookup(key, B256::repeat_byte(3)).await,
            Lookup::OtherRequest
        ));
        pending.fulfil(answer("the answer"));
        match waiting.await.expect("task") {
            Lookup::Answered(a) => assert_eq!(&a.body[..], b"the answer"),
            _ => panic!("the waiting retry gets the answer"),
        }
        assert_eq!(answers.bytes(), 10);
    }

    #[tokio::test]
    async fn failed_payments_keep_nothing_and_old_answers_make_room() {
        let answers = Arc::new(PaidAnswers::new(Duration::from_secs(600), 25));
        let request = B256::ZERO;
        drop(answers.begin(B256::repeat_byte(1), request));
        assert!(matches!(
            answers.lookup(B256::repeat_byte(1), request).await,
            Lookup::Vacant
        ));
        for i in 0..3u8 {
            answers
                .begin(B256::repeat_byte(10 + i), request)
                .fulfil(answer("ten bytes!"));
        }
        // 30 bytes over a 25-byte budget: the oldest went.
        assert_eq!(answers.bytes(), 20);
        assert!(matches!(
            answers.lookup(B256::repeat_byte(10), request).await,
            Lookup::Vacant
        ));
        assert!(matches!(
            answers.lookup(B256::repeat_byte(12), request).await,
            Lookup::Answered(_)
        ));
    }

    #[tokio::test]
    async fn answers_expire() {
        let answers = Arc::new(PaidAnswers::new(Duration::from_millis(0), 1 << 20));
        answers
            .begin(B256::repeat_byte(1), B256::ZERO)
            .fulfil(answer("x"));
        assert!(matches!(
            answers.lookup(B256::repeat_byte(1), B256::ZERO).await,
            Lookup::Vacant
        ));
    }
}
