//! The gateway's catalogue: `GET /discovery/resources` in x402's discovery ("Bazaar") shape,
//! filtered and paged on the server ([`mycel_types::x402::discovery::Query`]).
//!
//! It lists:
//! - completions, one item per model the gateway serves (from its `/v1/models`, kept 30 s): the
//!   offers its payment schemes make for the least a call costs (a 1-token prompt, 1 token out),
//!   with the model's per-token prices in `metadata.pricing`;
//! - registered ERC-8004 agents' services ([`Catalogue::follow_agents`], refreshed every
//!   minute by default): each service of an agent whose registration file says `x402Support`, type "mcp",
//!   "a2a" or "http", priced per call by the service itself (`accepts` empty); and for an MCP
//!   service, the paid tools its server lists at `/discovery/resources` on the same origin (as
//!   `mycel mcp --paid-tools` does), with their prices.
//!
//! Registration files and catalogues are fetched bounded (64 KiB / 256 KiB, 5 s each), at most
//! [`MAX_AGENTS`] agents per round, one at a time.

use crate::paywall::Pricing;
use crate::scheme::PaymentScheme;
use mycel_client::agents::{fetch_bounded, fetch_registration};
use mycel_client::NodeClient;
use mycel_types::x402::discovery::{rfc3339, Item, Page};
use serde_json::{json, Value};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How many agents one round of [`Catalogue::follow_agents`] reads at most.
pub const MAX_AGENTS: usize = 500;
const MODELS_TTL: Duration = Duration::from_secs(30);
const MAX_REGISTRATION_BYTES: usize = 64 * 1024;
const MAX_CATALOGUE_BYTES: usize = 256 * 1024;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// What the gateway sells and what the network's agents offer.
#[derive(Default)]
pub struct Catalogue {
    /// How the gateway prices and takes payment, set when it is built.
    terms: std::sync::OnceLock<(Pricing, Vec<Arc<dyn PaymentScheme>>)>,
    models: tokio::sync::Mutex<Option<(Instant, Vec<String>, u64)>>,
    agents: RwLock<Vec<Item>>,
    http: reqwest::Client,
}

impl Catalogue {
    pub fn new() -> Catalogue {
        Catalogue {
            terms: std::sync::OnceLock::new(),
            models: tokio::sync::Mutex::new(None),
            agents: RwLock::new(Vec::new()),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Set once by the gateway's builder: how it prices and takes payment.
    pub(crate) fn set_terms(&self, pricing: Pricing, schemes: Vec<Arc<dyn PaymentScheme>>) {
        let _ = self.terms.set((pricing, schemes));
    }

    /// The models served, read with `list` (the gateway's `/v1/models`) at most every 30 s.
    pub(crate) async fn models<F, Fut>(&self, list: F) -> (Vec<String>, u64)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Vec<String>>,
    {
        let mut cached = self.models.lock().await;
        if let Some((at, models, updated)) = cached.as_ref() {
            if at.elapsed() < MODELS_TTL {
                return (models.clone(), *updated);
            }
        }
        let models = list().await;
        let updated = now_secs();
        *cached = Some((Instant::now(), models.clone(), updated));
        (models, updated)
    }

    /// Every item: the completions of `models` at the gateway reached at `base` (e.g.
    /// `http://127.0.0.1:8402`), then the agents' services other than the gateway's own.
    pub(crate) fn items(&self, base: &str, models: &[String], updated: u64) -> Vec<Item> {
        let mut items = Vec::new();
        let no_terms = (Pricing::default(), Vec::new());
        let (pricing, schemes) = self.terms.get().unwrap_or(&no_terms);
        for model in models {
            let price = pricing.per_model.get(model).unwrap_or(&pricing.default);
            let least = pricing.price_of(model, 1, 1);
            let accepts: Vec<_> = schemes.iter().flat_map(|s| s.accepts(least)).collect();
            let musd = |amount| mycel_types::format_amount(amount, mycel_types::Token::Musd);
            for (path, api) in [
                ("/v1/chat/completions", "chat"),
                ("/v1/completions", "completion"),
            ] {
                items.push(Item {
                    resource: format!("{base}{path}"),
                    kind: "http".into(),
                    x402_version: 2,
                    accepts: accepts.clone(),
                    last_updated: rfc3339(updated),
                    metadata: json!({
                        "description": format!(
                            "OpenAI-compatible {api} completions of {model}, answered by the \
                             subnet's miners with a signed receipt"),
                        "model": model,
                        "method": "POST",
                        "pricing": {
                            "unit": "mUSD",
                            "base": musd(price.base),
                            "per_1k_prompt_tokens": musd(price.per_1k_prompt_tokens),
                            "per_1k_tokens": musd(price.per_1k_tokens),
                            "accepts_amount": "the least a call costs: 1 prompt token, 1 token out",
                        },
                    }),
                });
            }
        }
        items.extend(
            self.agents
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                // The gateway's own services are its completions, listed above.
                .filter(|i| !i.resource.starts_with(base))
                .cloned(),
        );
        items
    }

    /// The page `query` asks for.
    pub(crate) fn page(
        &self,
        query: &mycel_types::x402::discovery::Query,
        base: &str,
        models: &[String],
        updated: u64,
    ) -> Page {
        query.page(&self.items(base, models, updated))
    }

    /// Keeps the agents' services current: reads the registered agents from `node` every
    /// `every` (the gateway's default: a minute) until the task is dropped.
    pub async fn follow_agents(self: Arc<Self>, node: NodeClient, every: Duration) {
        loop {
            match self.read_agents(&node).await {
                Ok(items) => {
                    *self.agents.write().unwrap_or_else(|e| e.into_inner()) = items;
                }
                Err(e) => tracing::warn!("discovery: cannot list agents: {e}"),
            }
            tokio::time::sleep(every).await;
        }
    }

    async fn read_agents(&self, node: &NodeClient) -> Result<Vec<Item>, String> {
        let mut items = Vec::new();
        let mut cursor = None;
        let mut seen = 0;
        while seen < MAX_AGENTS {
            let page = node
                .agents(None, cursor, Some(100))
                .await
                .map_err(|e| e.to_string())?;
            for agent in &page.agents {
                seen += 1;
                if agent.uri.is_empty() {
                    continue;
                }
                match self.agent_items(agent.agent_id, &agent.uri).await {
                    Ok(found) => items.extend(found),
                    Err(e) => tracing::debug!("discovery: agent {}: {e}", agent.agent_id),
                }
            }
            match page.next_cursor {
                Some(next) if !page.agents.is_empty() => cursor = Some(next),
                _ => break,
            }
        }
        Ok(items)
    }

    /// The items of agent `id`, from its registration file at `uri`.
    async fn agent_items(&self, id: u64, uri: &str) -> Result<Vec<Item>, String> {
        let file = fetch_registration(&self.http, uri, MAX_REGISTRATION_BYTES)
            .await
            .map_err(|e| e.to_string())?;
        if !file.x402_support {
            return Ok(Vec::new());
        }
        let updated = rfc3339(now_secs());
        let mut items = Vec::new();
        for service in &file.services {
            let kind = match service.name.as_str() {
                "MCP" => "mcp",
                "A2A" => "a2a",
                _ => "http",
            };
            items.push(Item {
                resource: service.endpoint.clone(),
                kind: kind.into(),
                x402_version: 2,
                accepts: Vec::new(),
                last_updated: updated.clone(),
                metadata: json!({
                    "agentId": id,
                    "agent": file.name,
                    "description": file.description,
                    "service": service.name,
                }),
            });
            if kind == "mcp" {
                items.extend(self.mcp_tools(id, &service.endpoint).await);
            }
        }
        Ok(items)
    }

    /// The paid tools an agent's MCP server lists at `/discovery/resources` on its origin.
    async fn mcp_tools(&self, id: u64, endpoint: &str) -> Vec<Item> {
        let Some(origin) = origin(endpoint) else {
            return Vec::new();
        };
        let url = format!("{origin}/discovery/resources?type=mcp&limit=100");
        let Ok(body) = fetch_bounded(&self.http, &url, MAX_CATALOGUE_BYTES).await else {
            return Vec::new();
        };
        let Ok(page) = serde_json::from_slice::<Page>(&body) else {
            return Vec::new();
        };
        page.items
            .into_iter()
            .filter(|i| i.kind == "mcp" && i.resource.starts_with(&origin))
            .map(|mut i| {
                if let Value::Object(m) = &mut i.metadata {
                    m.insert("agentId".into(), json!(id));
                }
                i
            })
            .collect()
    }
}

/// `scheme://host[:port]` of `url`.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    Some(format!("{scheme}://{host}"))
}
