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

/// An HTTP answer as a test checks it: status, headers, and the body as JSON (`Null` when it is
/// not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Answer {
    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// POSTs `body` as JSON to `url` with `headers`; the answer, whatever its status.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    headers: &[(&str, String)],
) -> Answer {
    let mut request = client.post(url).json(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.json().await.unwrap_or(serde_json::Value::Null),
    }
}

/// An OpenAI-shaped chat server on loopback, run on `runtime`, that answers every chat
/// completion with `content` (the upstream behind a gateway under test, where the model's answer
/// is not what is tested); its base URL.
pub fn fixed_chat_server(runtime: &tokio::runtime::Runtime, content: &'static str) -> String {
    use axum::{routing::post, Json, Router};
    use serde_json::{json, Value};
    runtime.block_on(async {
        let app = Router::new().route(
            "/v1/chat/completions",
            post(move |Json(body): Json<Value>| async move {
                Json(json!({"object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}]}))
            }),
        );
        serve(app).await
    })
}

/// A server on loopback, run on `runtime`, that answers `GET path` with the bytes given for it
/// (404 otherwise): payloads a test puts where a URI on chain points. Its base URL.
pub fn file_server(
    runtime: &tokio::runtime::Runtime,
    files: Vec<(&'static str, Vec<u8>)>,
) -> String {
    use axum::{extract::Path, http::StatusCode, routing::get, Router};
    use std::collections::BTreeMap;
    use std::sync::Arc;
    let files: Arc<BTreeMap<String, Vec<u8>>> = Arc::new(
        files
            .into_iter()
            .map(|(path, body)| (path.trim_start_matches('/').to_string(), body))
            .collect(),
    );
    runtime.block_on(async {
        let app = Router::new().route(
            "/{*path}",
            get(move |Path(path): Path<String>| {
                let files = files.clone();
                async move {
                    match files.get(&path) {
                        Some(body) => Ok(body.clone()),
                        None => Err(StatusCode::NOT_FOUND),
                    }
                }
            }),
        );
        serve(app).await
    })
}

/// A proxy on loopback, run on `runtime`, in front of the node API at `upstream`: it forwards
/// every request and hands each answer's body to `tamper` with the request's path before sending
/// it on (a node that lies to whoever asks it). Its base URL.
pub fn tampering_proxy(
    runtime: &tokio::runtime::Runtime,
    upstream: &str,
    tamper: fn(&str, Vec<u8>) -> Vec<u8>,
) -> String {
    use axum::{body::Bytes, extract::Request, http::StatusCode, response::IntoResponse, Router};
    let upstream = upstream.trim_end_matches('/').to_string();
    let client = reqwest::Client::new();
    runtime.block_on(async {
        let app = Router::new().fallback(move |request: Request| {
            let (client, upstream) = (client.clone(), upstream.clone());
            async move {
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let target = format!(
                    "{upstream}{}",
                    request.uri().path_and_query().map_or("/", |p| p.as_str())
                );
                let content_type = request.headers().get("content-type").cloned();
                let body = axum::body::to_bytes(request.into_body(), 16 << 20)
                    .await
                    .unwrap_or_default();
                let mut forward = client.request(method, target).body(body);
                if let Some(ct) = content_type {
                    forward = forward.header("content-type", ct);
                }
                let Ok(answer) = forward.send().await else {
                    return StatusCode::BAD_GATEWAY.into_response();
                };
                let status = StatusCode::from_u16(answer.status().as_u16())
                    .unwrap_or(StatusCode::BAD_GATEWAY);
                let content_type = answer
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/octet-stream")
                    .to_string();
                let body = answer.bytes().await.unwrap_or_default().to_vec();
                let body = Bytes::from(tamper(&path, body));
                (status, [("content-type", content_type)], body).into_response()
            }
        });
        serve(app).await
    })
}

/// Serves `app` on a free loopback port of the current runtime; its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
