//! Talking to one storage node's routes ([`crate::node`]).

use crate::node::{Confirmation, Health};
use crate::{Axis, Metadata};
use alloy_primitives::B256;
use mycel_types::api::ErrorBody;
use std::time::Duration;

/// Why a storage node did not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    #[error("storage node {endpoint} is unreachable: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("storage node {endpoint} refused: {message} [{code}, HTTP {status}]")]
    Refused {
        endpoint: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("storage node {endpoint} answered something unreadable: {reason}")]
    Unexpected { endpoint: String, reason: String },
}

impl NodeError {
    pub fn code(&self) -> Option<&str> {
        match self {
            NodeError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// One storage node, by its endpoint.
#[derive(Debug, Clone)]
pub struct SliverClient {
    http: reqwest::Client,
    endpoint: String,
}

impl SliverClient {
    pub fn new(http: reqwest::Client, endpoint: &str) -> SliverClient {
        SliverClient {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
        }
    }

    /// An HTTP client for storage nodes: a connect timeout and a whole-request timeout long
    /// enough for a [`crate::node::MAX_UPLOAD_BYTES`] body on a slow link.
    pub fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(mycel_client::POOL_IDLE_TIMEOUT)
            .timeout(Duration::from_secs(120))
            .build()
            .expect("a reqwest client with timeouts builds")
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn url(&self, id: &B256, rest: &str) -> String {
        format!("{}/v1/slivers/{id}{rest}", self.endpoint)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, NodeError> {
        let endpoint = self.endpoint.clone();
        let response = request.send().await.map_err(|e| NodeError::Unreachable {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => (e.error.code, e.error.message),
            Err(_) => (
                "http".to_string(),
                String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            ),
        };
        Err(NodeError::Refused {
            endpoint,
            status,
            code,
            message,
        })
    }

    async fn bytes(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, NodeError> {
        let response = self.send(request).await?;
        let body = response.bytes().await.map_err(|e| NodeError::Unreachable {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        })?;
        Ok(body.to_vec())
    }

    fn unexpected(&self, reason: impl ToString) -> NodeError {
        NodeError::Unexpected {
            endpoint: self.endpoint.clone(),
            reason: reason.to_string(),
        }
    }

    pub async fn health(&self) -> Result<Health, NodeError> {
        let body = self
            .bytes(self.http.get(format!("{}/v1/health", self.endpoint)))
            .await?;
        serde_json::from_slice(&body).map_err(|e| self.unexpected(e))
    }

    pub async fn put_metadata(&self, id: &B256, metadata: &Metadata) -> Result<(), NodeError> {
        self.send(
            self.http
                .put(self.url(id, "/metadata"))
                .body(metadata.encode()),
        )
        .await
        .map(drop)
    }

    pub async fn put_parts(
        &self,
        id: &B256,
        axis: Axis,
        from: u64,
        parts: Vec<u8>,
    ) -> Result<(), NodeError> {
        let url = self.url(id, &format!("/{}?from={from}", axis.as_str()));
        self.send(self.http.put(url).body(parts)).await.map(drop)
    }

    pub async fn seal(&self, id: &B256, axis: Axis) -> Result<(), NodeError> {
        self.send(
            self.http
                .post(self.url(id, &format!("/{}/seal", axis.as_str()))),
        )
        .await
        .map(drop)
    }

    pub async fn confirmation(&self, id: &B256) -> Result<Confirmation, NodeError> {
        let body = self
            .bytes(self.http.get(self.url(id, "/confirmation")))
            .await?;
        serde_json::from_slice(&body).map_err(|e| self.unexpected(e))
    }

    /// The blob's metadata as this node holds it, checked to be the blob's.
    pub async fn metadata(&self, id: &B256) -> Result<Metadata, NodeError> {
        let body = self.bytes(self.http.get(self.url(id, "/metadata"))).await?;
        let metadata = Metadata::decode(&body).map_err(|e| self.unexpected(e))?;
        if metadata.blob_id() != *id {
            return Err(
                self.unexpected(format!("metadata of blob {}, not {id}", metadata.blob_id()))
            );
        }
        Ok(metadata)
    }

    pub async fn leaves(&self, id: &B256, axis: Axis) -> Result<Vec<B256>, NodeError> {
        let body = self
            .bytes(
                self.http
                    .get(self.url(id, &format!("/{}/leaves", axis.as_str()))),
            )
            .await?;
        if body.len() % 32 != 0 {
            return Err(self.unexpected("leaves that are not 32-byte hashes"));
        }
        Ok(body.chunks_exact(32).map(B256::from_slice).collect())
    }

    /// The symbols this node's `axis` sliver gives towards rebuilding sliver `target`
    /// ([`crate::recover`]'s wire format).
    pub async fn recovery(
        &self,
        id: &B256,
        axis: Axis,
        target: usize,
        from: u64,
        count: u64,
    ) -> Result<Vec<u8>, NodeError> {
        let url = self.url(
            id,
            &format!(
                "/recovery/{}/{target}?from={from}&count={count}",
                axis.as_str()
            ),
        );
        self.bytes(self.http.get(url)).await
    }

    /// This node's answer to challenge `(segment, symbol)` of blob `id` ([`crate::challenge`]).
    pub async fn challenge(
        &self,
        id: &B256,
        segment: u64,
        symbol: usize,
    ) -> Result<Vec<u8>, NodeError> {
        self.bytes(
            self.http
                .get(self.url(id, &format!("/challenge/{segment}/{symbol}"))),
        )
        .await
    }

    pub async fn parts(
        &self,
        id: &B256,
        axis: Axis,
        from: u64,
        count: u64,
    ) -> Result<Vec<u8>, NodeError> {
        let url = self.url(id, &format!("/{}?from={from}&count={count}", axis.as_str()));
        self.bytes(self.http.get(url)).await
    }
}
