//! The write deadline: a connection whose client reads none of the answer for too long is cut.
//!
//! hyper has no write timeout: a client that stops reading while the server streams an answer
//! (an event stream, a long completion) would hold the connection, its task and its buffered
//! answer for ever. The deadline runs only while a write is stalled (the socket's send buffer is
//! full), so a slow but reading client, or an answer that takes long to produce, is never cut.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::server::Counters;

/// `inner` with an error on any write, flush or shutdown that stays pending for `timeout`.
pub(crate) struct WriteDeadline<T> {
    inner: T,
    timeout: Duration,
    /// Armed when a write first returns pending; disarmed by any write that makes progress.
    stall: Pin<Box<Sleep>>,
    stalled: bool,
    counters: Arc<Counters>,
}

impl<T> WriteDeadline<T> {
    pub(crate) fn new(inner: T, timeout: Duration, counters: Arc<Counters>) -> Self {
        Self {
            inner,
            timeout,
            stall: Box::pin(tokio::time::sleep(timeout)),
            stalled: false,
            counters,
        }
    }

    fn track<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(result) => {
                self.stalled = false;
                Poll::Ready(result)
            }
            Poll::Pending => {
                if !self.stalled {
                    self.stalled = true;
                    self.stall.as_mut().reset(Instant::now() + self.timeout);
                }
                match self.stall.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        self.counters.write_timed_out();
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "the client read nothing of the answer for {} s",
                                self.timeout.as_secs_f64()
                            ),
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.track(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.track(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.track(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.track(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A writer that takes one byte per `gap` (or never, with no gap): a client reading slowly,
    /// or one whose receive window stays full.
    struct Reader {
        gap: Option<Duration>,
        next: Pin<Box<Sleep>>,
    }

    impl Reader {
        fn new(gap: Option<Duration>) -> Self {
            let first = gap.unwrap_or(Duration::ZERO);
            Reader {
                gap,
                next: Box::pin(tokio::time::sleep(first)),
            }
        }
    }

    impl AsyncWrite for Reader {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let Some(gap) = this.gap else {
                return Poll::Pending;
            };
            match this.next.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    this.next.as_mut().reset(Instant::now() + gap);
                    Poll::Ready(Ok(buf.len().min(1)))
                }
            }
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_write_stalled_past_the_timeout_fails_and_is_counted() {
        let counters = Arc::new(Counters::default());
        let timeout = Duration::from_millis(200);
        let mut io = WriteDeadline::new(Reader::new(None), timeout, counters.clone());
        let started = Instant::now();
        let err = io.write_all(b"event: block").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= timeout, "never before the deadline");
        assert_eq!(counters.snapshot().write_timeouts, 1);
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_never_cut() {
        let counters = Arc::new(Counters::default());
        let timeout = Duration::from_secs(1);
        let gap = Duration::from_millis(25);
        let mut io = WriteDeadline::new(Reader::new(Some(gap)), timeout, counters.clone());
        // 60 bytes at one per 25 ms take 1.5 s, longer than the timeout, with progress throughout.
        let started = Instant::now();
        io.write_all(&[b'x'; 60]).await.unwrap();
        assert!(
            started.elapsed() > timeout,
            "the transfer outlasted the write timeout"
        );
        assert_eq!(counters.snapshot().write_timeouts, 0);
    }
}
