//! Blocking HTTP for tests without an async runtime of their own (and safe inside one: each call
//! runs on a thread and a runtime of its own).

use std::future::Future;

/// Runs `future` to the end on a new thread with a runtime of its own.
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(future)
            })
            .join()
            .expect("the request's thread")
    })
}

/// GET `url`; its body as JSON (whatever the status).
#[track_caller]
pub fn get_json(url: &str) -> serde_json::Value {
    block_on(async {
        reqwest::get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
    })
}

/// GET `url`; its body as text (whatever the status).
#[track_caller]
pub fn get_text(url: &str) -> String {
    block_on(async {
        reqwest::get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    })
}
