//! What a service (the gateway, a miner) needs to serve its ERC-8004 registration file: the
//! agents its key owns on chain ([`AgentDirectory`]) and the file itself ([`registration_file`]).

use crate::NodeClient;
use alloy_primitives::Address;
use mycel_types::api::{
    AgentRegistration, AgentRegistrationRef, AgentService, AGENT_REGISTRATION_TYPE,
};
use std::time::{Duration, Instant};

/// How long an answer from the node is reused.
const REFRESH: Duration = Duration::from_secs(5);
/// How long one lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The agents `owner` owns, read from the node at most every 5 s: requests for a registration
/// file, which anyone may send, never become more than one node query per 5 s (one at a time;
/// concurrent readers wait for it). When the node cannot be reached the last answer stands.
pub struct AgentDirectory {
    node: NodeClient,
    owner: Address,
    cache: tokio::sync::Mutex<Option<(Instant, Vec<AgentRegistrationRef>)>>,
}

impl AgentDirectory {
    pub fn new(node: NodeClient, owner: Address) -> AgentDirectory {
        AgentDirectory {
            node: node.with_timeout(LOOKUP_TIMEOUT),
            owner,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The key whose agents these are.
    pub fn owner(&self) -> Address {
        self.owner
    }

    /// The agents the owner owns (the first 100), as registration files list them.
    pub async fn registrations(&self) -> Vec<AgentRegistrationRef> {
        let mut cache = self.cache.lock().await;
        if let Some((at, refs)) = cache.as_ref() {
            if at.elapsed() < REFRESH {
                return refs.clone();
            }
        }
        match self.node.agents(Some(self.owner), None, None).await {
            Ok(list) => {
                let refs: Vec<AgentRegistrationRef> = list
                    .agents
                    .into_iter()
                    .map(|a| AgentRegistrationRef {
                        agent_id: a.agent_id,
                        agent_registry: a.agent_registry,
                    })
                    .collect();
                *cache = Some((Instant::now(), refs.clone()));
                refs
            }
            Err(_) => {
                let refs = cache.as_ref().map(|(_, r)| r.clone()).unwrap_or_default();
                *cache = Some((Instant::now(), refs.clone()));
                refs
            }
        }
    }
}

/// A registration file for a service at `base` (e.g. `http://127.0.0.1:8080`) that serves an
/// OpenAI-compatible API: its services, whether it takes x402 payments, and its registrations.
pub fn registration_file(
    name: &str,
    description: &str,
    base: &str,
    x402: bool,
    registrations: Vec<AgentRegistrationRef>,
) -> AgentRegistration {
    let base = base.trim_end_matches('/');
    AgentRegistration {
        kind: AGENT_REGISTRATION_TYPE.to_string(),
        name: name.to_string(),
        description: description.to_string(),
        image: String::new(),
        services: vec![
            AgentService {
                name: "OpenAI".into(),
                endpoint: format!("{base}/v1/chat/completions"),
                version: Some("v1".into()),
            },
            AgentService {
                name: "web".into(),
                endpoint: base.to_string(),
                version: None,
            },
        ],
        x402_support: x402,
        active: true,
        registrations,
        // Receipts re-run by staked validators: crypto-economic; feedback: reputation.
        supported_trust: vec!["reputation".into(), "crypto-economic".into()],
    }
}

/// The base URL a request reached: `http://<Host header>`, or `fallback` without a usable one.
pub fn request_base(host: Option<&str>, fallback: &str) -> String {
    match host {
        Some(h)
            if !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)) =>
        {
            format!("http://{h}")
        }
        _ => fallback.to_string(),
    }
}

/// Why a registration file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// Not fetched (bad URL, no answer, an error status, over the size limit).
    #[error("{0}")]
    Unreachable(String),
    /// Fetched, but not registration JSON.
    #[error("{url} is not an ERC-8004 registration file: {reason}")]
    NotJson { url: String, reason: String },
    /// Registration-shaped JSON of another `type`.
    #[error("{url} has type '{kind}', not ERC-8004's {AGENT_REGISTRATION_TYPE}")]
    WrongType { url: String, kind: String },
}

/// The ERC-8004 `registration-v1` file at `url`, fetched with [`fetch_bounded`].
pub async fn fetch_registration(
    http: &reqwest::Client,
    url: &str,
    max_bytes: usize,
) -> Result<AgentRegistration, RegistrationError> {
    let body = fetch_bounded(http, url, max_bytes)
        .await
        .map_err(RegistrationError::Unreachable)?;
    let file: AgentRegistration =
        serde_json::from_slice(&body).map_err(|e| RegistrationError::NotJson {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    if file.kind != AGENT_REGISTRATION_TYPE {
        return Err(RegistrationError::WrongType {
            url: url.to_string(),
            kind: file.kind,
        });
    }
    Ok(file)
}

/// The body at `url` (http or https), read with `http` and refused once it passes `max_bytes`
/// (never buffered beyond that): how payloads named on chain (registration files, answers to
/// validate) are fetched.
pub async fn fetch_bounded(
    http: &reqwest::Client,
    url: &str,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("'{url}' is not an http(s) URL"));
    }
    let mut response = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err(format!("{url} is over {max_bytes} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
