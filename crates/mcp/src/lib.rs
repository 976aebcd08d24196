//! mycel-mcp: the network as MCP tools for AI assistants (docs/mcp.md).
//!
//! [`Server`] is one MCP server over a node's API (through mycel-client): tools that read the chain
//! (status, balances, transactions, blocks, subnets, metagraphs, emission), find and read agents
//! (ERC-8004: agents ranked by verified reputation, registration files, summaries), jobs, check an
//! inference receipt, and, with a key, transfer and leave feedback. It is served over stdio
//! ([`serve_stdio`], for desktop assistants) or streamable HTTP ([`http_router`]) by the official
//! Rust SDK (`rmcp`), which speaks both protocol generations in use: 2025-11-25 (`initialize`,
//! sessions) and the stateless 2026-07-28.
//!
//! Contract:
//! - Every tool has a JSON schema and a description; its result is structured JSON (and the same
//!   JSON as text). A node's refusal is a tool result with `isError` and `{code, message}`, so an
//!   assistant can read why; malformed arguments are MCP errors.
//! - Amounts go in and out in whole tokens ("1.5"), next to base units where the node gives them.
//! - Write tools refuse without a key and say how to give one; the key may be an agent key with
//!   an allowance (`mycel allowance grant`), so an assistant spends within its owner's limits.
//! - Over HTTP: loopback by default, Host and Origin checked (a foreign Origin gets 403), served
//!   by mycel-http (connection cap, request deadlines).

mod jobs;
pub mod paid;
mod paying;
mod resources;
mod sessions;
mod trade;
pub mod upstream;

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_client::agents::{fetch_registration, RegistrationError};
use mycel_client::api::{self, AgentRegistration};
use mycel_client::x402::Payer;
use mycel_client::{ClientError, JobFilter, NodeClient, Outcome, SendOptions};
use mycel_types::tx::GiveFeedback;
use mycel_types::x402;
use mycel_types::{
    format_amount, parse_amount, ReceiptJson, SignedReceipt, Token, Transfer, TxKind,
};
use paid::{PaidToolsFile, Paywall};
use rmcp::handler::server::{router::tool::ToolRouter, tool::ToolCallContext, wrapper::Parameters};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::{tool, tool_handler, tool_router, ErrorData, ServiceExt};
use rmcp::{Peer, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use upstream::Upstream;

/// The largest registration file or answer read for a tool.
const MAX_FETCH_BYTES: usize = 256 * 1024;
/// How many agents `find_agents` ranks at most.
const MAX_RANKED: usize = 50;

/// The MCP server of one node.
#[derive(Clone)]
pub struct Server {
    node: NodeClient,
    signer: Option<Arc<PrivateKeySigner>>,
    http: reqwest::Client,
    /// The x402 gateway `chat` asks, and the most one call may cost (mUSD base units).
    gateway: Option<String>,
    max_price: u128,
    /// Prices of the tools sold per call (`--paid-tools`), and a third-party server sold.
    paywall: Option<Arc<Paywall>>,
    upstream: Option<Arc<Upstream>>,
    /// The highest voucher total this server had accepted per payment session.
    sessions: Arc<std::sync::Mutex<std::collections::HashMap<B256, u128>>>,
    tool_router: ToolRouter<Server>,
}

/// Progress notifications of one tool call, sent when the client asked for them (a
/// `progressToken` in the request's `_meta`).
pub struct Progress {
    to: Option<(Peer<RoleServer>, ProgressToken)>,
}

impl Progress {
    pub fn of(context: &RequestContext<RoleServer>) -> Progress {
        Progress {
            to: context
                .meta
                .get_progress_token()
                .map(|token| (context.peer.clone(), token)),
        }
    }

    /// Step `n` of `total`, described by `message`.
    pub async fn step(&self, n: u32, total: u32, message: &str) {
        if let Some((peer, token)) = &self.to {
            let note = ProgressNotificationParam::new(token.clone(), f64::from(n))
                .with_total(f64::from(total))
                .with_message(message);
            // A client that went away misses its progress, not its answer.
            let _ = peer.notify_progress(note).await;
        }
    }
}

/// The default cap on one paid call: 0.05 mUSD.
pub const DEFAULT_MAX_PRICE: u128 = 50_000;
/// How long a paid chat may take (the answer is decoded by a miner).
pub(crate) const CHAT_TIMEOUT: Duration = Duration::from_secs(120);

type ToolResult = Result<CallToolResult, ErrorData>;

fn answer(value: impl serde::Serialize) -> ToolResult {
    match serde_json::to_value(value) {
        Ok(v) => Ok(CallToolResult::structured(v)),
        Err(e) => Err(ErrorData::internal_error(e.to_string(), None)),
    }
}

/// A refusal the assistant can read and act on.
fn refusal(code: &str, message: impl Into<String>) -> ToolResult {
    Ok(CallToolResult::structured_error(
        json!({"code": code, "message": message.into()}),
    ))
}

/// Seconds since the Unix epoch (payments' validity windows, catalogue times).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// What a write tool answers for a final transaction.
fn applied_json(applied: &mycel_client::Applied) -> Value {
    json!({
        "status": "finalized",
        "hash": applied.hash,
        "height": applied.height,
        "receipt": applied.receipt,
    })
}

/// The refusal of a write tool on a server without a key.
fn no_key() -> ToolResult {
    refusal(
        "no_key",
        "this tool signs a transaction: start `mycel mcp` with --key NAME (a keystore key) or \
         --dev-account N (devnets); an agent key with an allowance (`mycel allowance grant`) \
         keeps its spending within its owner's limits",
    )
}

fn node_refusal(e: ClientError) -> ToolResult {
    match &e {
        ClientError::Node { code, message, .. } => refusal(code, message.clone()),
        other => refusal(
            other.code().unwrap_or("node_unavailable"),
            other.to_string(),
        ),
    }
}

fn parse<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, CallToolResult> {
    text.parse().map_err(|_| {
        CallToolResult::structured_error(
            json!({"code": "bad_argument", "message": format!("{what} '{text}' does not parse")}),
        )
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddressArgs {
    /// A 0x address (20 bytes, hex).
    pub address: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct HashArgs {
    /// A transaction hash (0x + 32 bytes hex).
    pub hash: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct BlockArgs {
    /// The block height; the latest finalized block if absent.
    pub height: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NetuidArgs {
    /// The subnet id (1 is the inference subnet of a devnet).
    pub netuid: u16,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AgentArgs {
    /// The agent id (1, 2, …).
    pub agent_id: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FindAgentsArgs {
    /// Only feedback with this tag counts (e.g. "starred"); any tag if absent.
    pub tag: Option<String>,
    /// Only the agents this address owns.
    pub owner: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReputationArgs {
    pub agent_id: u64,
    /// Count only these clients (0x addresses); every client if absent.
    pub clients: Option<Vec<String>>,
    pub tag1: Option<String>,
    pub tag2: Option<String>,
    /// Only feedback citing a payment the chain verified, weighted by the amount paid.
    pub verified: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct JobsArgs {
    pub client: Option<String>,
    pub provider: Option<String>,
    pub evaluator: Option<String>,
    /// open, funded, submitted, completed, rejected or expired.
    pub status: Option<String>,
    /// Start from this job id (a previous page's next_cursor).
    pub cursor: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct JobArgs {
    pub job_id: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReceiptArgs {
    /// A miner's completion JSON with its `receipt` (or the receipt JSON alone).
    pub answer: Value,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TransferArgs {
    /// The recipient (0x address).
    pub to: String,
    /// How much, in whole tokens (e.g. "1.5").
    pub amount: String,
    /// "MYC" (the default) or "mUSD".
    pub token: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ChatArgs {
    /// The question or instruction.
    pub prompt: String,
    /// Tokens to generate at most (default 64).
    pub max_tokens: Option<u32>,
    /// The model (default: the first the gateway lists).
    pub model: Option<String>,
    /// The most this call may cost, in mUSD (e.g. "0.01"); at most the server's cap.
    pub max_price: Option<String>,
    /// Pay from this payment session (a channel id from open_session) with a cumulative
    /// voucher instead of one x402 payment.
    pub session: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct FeedbackArgs {
    pub agent_id: u64,
    /// The rating: an integer (0–100 is usual); `value_decimals` gives it decimals.
    pub value: i64,
    pub value_decimals: Option<u8>,
    pub tag1: Option<String>,
    pub tag2: Option<String>,
    /// The EIP-3009 nonce of an x402 payment the key made to the agent (proves the review was
    /// paid for).
    pub payment_nonce: Option<String>,
}

impl Server {
    /// A server over `node`; `signer` signs the write tools (none: they refuse).
    pub fn new(node: NodeClient, signer: Option<PrivateKeySigner>) -> Server {
        Server {
            node,
            signer: signer.map(Arc::new),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            gateway: None,
            max_price: DEFAULT_MAX_PRICE,
            paywall: None,
            upstream: None,
            sessions: Default::default(),
            tool_router: Self::tool_router()
                + Self::trade_router()
                + Self::paying_router()
                + Self::session_router()
                + Self::job_router(),
        }
    }

    /// Lets `chat` ask the x402 gateway at `url`, paying at most `max_price` mUSD base units a
    /// call.
    pub fn with_gateway(mut self, url: String, max_price: u128) -> Server {
        self.gateway = Some(url.trim_end_matches('/').to_string());
        self.max_price = max_price;
        self
    }

    /// Sells the tools `file` prices (its own, or a third-party server's it launches), settled
    /// by the facilitator it names (default: the gateway's).
    pub async fn with_paid_tools(mut self, file: &PaidToolsFile) -> Result<Server, String> {
        let gateway = self.gateway.clone().unwrap_or_default();
        let key = self.signer.as_ref().map(|s| s.address());
        let paywall = Paywall::connect(file, &self.node, key, &gateway).await?;
        if let Some(command) = &file.upstream {
            let own = self.tool_router.clone();
            let upstream = Upstream::spawn(command, |name| {
                paywall.price(name).is_some() && !own.has_route(name)
            })
            .await?;
            self.upstream = Some(Arc::new(upstream));
        }
        for tool in paywall.tools() {
            let upstream = self.upstream.as_ref().is_some_and(|u| u.has(tool));
            if !upstream && !self.tool_router.has_route(tool) {
                return Err(format!(
                    "paid tool {tool}: no such tool here{}",
                    if file.upstream.is_some() {
                        " or upstream"
                    } else {
                        ""
                    }
                ));
            }
        }
        self.paywall = Some(Arc::new(paywall));
        Ok(self)
    }

    /// Signs `build`, submits it and waits until final; the tool's answer.
    async fn send(
        &self,
        progress: &Progress,
        build: impl FnOnce(mycel_client::TxFields) -> TxKind,
    ) -> ToolResult {
        match self.send_applied(progress, build).await {
            Ok(applied) => answer(applied_json(&applied)),
            Err(refused) => refused,
        }
    }

    /// [`Server::send`], keeping the applied transaction for a tool that goes on with it.
    async fn send_applied(
        &self,
        progress: &Progress,
        build: impl FnOnce(mycel_client::TxFields) -> TxKind,
    ) -> Result<mycel_client::Applied, ToolResult> {
        let Some(signer) = &self.signer else {
            return Err(no_key());
        };
        progress
            .step(1, 2, "signed and submitted; waiting until final")
            .await;
        let outcome = self
            .node
            .send_and_wait(signer, &SendOptions::default(), build)
            .await;
        progress.step(2, 2, "done").await;
        match outcome {
            Ok(Outcome::Applied(applied)) => Ok(applied),
            Ok(other) => {
                let code = other.error().map_or("not_applied", |e| e.code.as_str());
                Err(refusal(code, other.to_string()))
            }
            Err(e) => Err(node_refusal(e)),
        }
    }

    /// Agent `id`'s registration file, fetched from its URI (bounded); or a refusal's code and
    /// message.
    async fn registration(&self, id: u64) -> Result<AgentRegistration, (&'static str, String)> {
        let agent = self.node.agent(id).await.map_err(|e| match e {
            ClientError::Node {
                status: 404,
                message,
                ..
            } => ("unknown_agent", message),
            other => ("node_unavailable", other.to_string()),
        })?;
        if agent.uri.is_empty() {
            return Err(("no_uri", format!("agent {id} has no registration URI")));
        }
        fetch_registration(&self.http, &agent.uri, MAX_FETCH_BYTES)
            .await
            .map_err(|e| match e {
                RegistrationError::Unreachable(why) => ("unreachable", why),
                RegistrationError::NotJson { url, reason } => {
                    ("not_a_registration_file", format!("{url}: {reason}"))
                }
                RegistrationError::WrongType { url, kind } => (
                    "not_a_registration_file",
                    format!("{url} has type '{kind}'"),
                ),
            })
    }

    async fn first_model(&self, gateway: &str) -> Result<String, String> {
        let models: Value = self
            .http
            .get(format!("{gateway}/v1/models"))
            .send()
            .await
            .map_err(|e| format!("cannot reach {gateway}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{gateway}/v1/models: {e}"))?;
        models["data"][0]["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{gateway}/v1/models lists no model"))
    }
}

#[tool_router]
impl Server {
    #[tool(
        description = "The chain's status: chain id, finalized height, latest block hash and \
                          time, validators, mempool size."
    )]
    async fn status(&self) -> ToolResult {
        self.node.status().await.map_or_else(node_refusal, answer)
    }

    #[tool(
        description = "An account's MYC and mUSD balances (base units and whole tokens) and \
                          its next nonce; for an agent key with an allowance, what one payment it \
                          may move from its owner (spendable_musd)."
    )]
    async fn balance(&self, Parameters(a): Parameters<AddressArgs>) -> ToolResult {
        let address: Address = match parse("address", &a.address) {
            Ok(v) => v,
            Err(e) => return Ok(e),
        };
        self.node
            .account(address)
            .await
            .map_or_else(node_refusal, answer)
    }

    #[tool(
        description = "A transaction's status (pending, finalized with its receipt and events, \
                          rejected with a code, or unknown)."
    )]
    async fn transaction(&self, Parameters(a): Parameters<HashArgs>) -> ToolResult {
        let hash: B256 = match parse("hash", &a.hash) {
            Ok(v) => v,
            Err(e) => return Ok(e),
        };
        self.node.tx(hash).await.map_or_else(node_refusal, answer)
    }

    #[tool(description = "A finalized block and its transactions (the latest if no height).")]
    async fn block(&self, Parameters(a): Parameters<BlockArgs>) -> ToolResult {
        let block = match a.height {
            Some(h) => self.node.block(h).await,
            None => self.node.latest_block().await,
        };
        block.map_or_else(node_refusal, answer)
    }

    #[tool(description = "Every subnet: netuid, owner, tempo, pool price, emission share.")]
    async fn subnets(&self) -> ToolResult {
        self.node.subnets().await.map_or_else(node_refusal, answer)
    }

    #[tool(
        description = "A subnet's metagraph: every UID's hotkey, stake, validator permit, \
                          consensus, incentive, dividends, emission and endpoint (miners serve \
                          inference at their endpoint)."
    )]
    async fn metagraph(&self, Parameters(a): Parameters<NetuidArgs>) -> ToolResult {
        self.node
            .metagraph(a.netuid)
            .await
            .map_or_else(node_refusal, answer)
    }

    #[tool(
        description = "The MYC emission schedule (per block, halvings) and where the last \
                          block's emission went."
    )]
    async fn emission(&self) -> ToolResult {
        let (schedule, latest) =
            tokio::join!(self.node.emission(), self.node.latest_emission_receipt());
        match (schedule, latest) {
            (Ok(s), Ok(l)) => answer(json!({"schedule": s, "latest_receipt": l})),
            (Err(e), _) | (_, Err(e)) => node_refusal(e),
        }
    }

    #[tool(
        description = "Find ERC-8004 agents, ranked by reputation from verified payments (then \
                          by all feedback): id, owner, registration URI, verified and overall \
                          averages and counts. Looks at the first 50 agents (or an owner's)."
    )]
    async fn find_agents(&self, Parameters(a): Parameters<FindAgentsArgs>) -> ToolResult {
        let owner: Option<Address> = match a.owner.as_deref().map(|o| parse("owner", o)) {
            Some(Ok(o)) => Some(o),
            Some(Err(e)) => return Ok(e),
            None => None,
        };
        let list = match self.node.agents(owner, None, Some(MAX_RANKED)).await {
            Ok(l) => l,
            Err(e) => return node_refusal(e),
        };
        let tag = a.tag.unwrap_or_default();
        let mut ranked = Vec::new();
        for agent in list.agents {
            let id = agent.agent_id;
            let (verified, all) = tokio::join!(
                self.node
                    .reputation(id, vec![], tag.clone(), String::new(), true),
                self.node
                    .reputation(id, vec![], tag.clone(), String::new(), false)
            );
            let (verified, all) = match (verified, all) {
                (Ok(v), Ok(a)) => (v, a),
                (Err(e), _) | (_, Err(e)) => return node_refusal(e),
            };
            ranked.push((agent, verified, all));
        }
        let key = |s: &api::ReputationSummary| {
            (
                s.count > 0,
                s.summary_value.parse::<i128>().unwrap_or(i128::MIN),
            )
        };
        ranked.sort_by(|x, y| {
            key(&y.1)
                .cmp(&key(&x.1))
                .then(key(&y.2).cmp(&key(&x.2)))
                .then(x.0.agent_id.cmp(&y.0.agent_id))
        });
        let agents: Vec<Value> = ranked
            .into_iter()
            .map(|(agent, verified, all)| {
                json!({"agent_id": agent.agent_id, "owner": agent.owner, "uri": agent.uri,
                       "wallet": agent.wallet,
                       "verified": {"count": verified.count, "average": verified.average,
                                    "paid_total_musd": format_amount(verified.paid_total, Token::Musd)},
                       "all": {"count": all.count, "average": all.average}})
            })
            .collect();
        answer(json!({"agents": agents, "total": list.total, "tag": tag}))
    }

    #[tool(
        description = "One ERC-8004 agent: owner, verified wallet, registration URI, metadata, \
                          feedback counts."
    )]
    async fn agent(&self, Parameters(a): Parameters<AgentArgs>) -> ToolResult {
        self.node
            .agent(a.agent_id)
            .await
            .map_or_else(node_refusal, answer)
    }

    #[tool(
        description = "An agent's ERC-8004 registration file, fetched from its URI: its name, \
                          description, services (endpoints), x402 support, registrations."
    )]
    async fn agent_registration(&self, Parameters(a): Parameters<AgentArgs>) -> ToolResult {
        match self.registration(a.agent_id).await {
            Ok(file) => answer(file),
            Err((code, message)) => refusal(code, message),
        }
    }

    #[tool(
        description = "An agent's reputation (ERC-8004 getSummary): count and average of its \
                          feedback, optionally only from named clients, with tags, or only \
                          feedback citing verified payments (weighted by the amount paid)."
    )]
    async fn reputation(&self, Parameters(a): Parameters<ReputationArgs>) -> ToolResult {
        let mut clients = Vec::new();
        for c in a.clients.unwrap_or_default() {
            match parse::<Address>("client", &c) {
                Ok(c) => clients.push(c),
                Err(e) => return Ok(e),
            }
        }
        self.node
            .reputation(
                a.agent_id,
                clients,
                a.tag1.unwrap_or_default(),
                a.tag2.unwrap_or_default(),
                a.verified.unwrap_or(false),
            )
            .await
            .map_or_else(node_refusal, answer)
    }

    #[tool(
        description = "Jobs with escrow (ERC-8183), filtered by client, provider, evaluator and \
                          status; a provider lists its funded work with status \"funded\"."
    )]
    async fn jobs(&self, Parameters(a): Parameters<JobsArgs>) -> ToolResult {
        let party = |v: &Option<String>, what: &str| -> Result<Option<Address>, CallToolResult> {
            v.as_deref().map(|t| parse(what, t)).transpose()
        };
        let filter = match (
            party(&a.client, "client"),
            party(&a.provider, "provider"),
            party(&a.evaluator, "evaluator"),
        ) {
            (Ok(client), Ok(provider), Ok(evaluator)) => JobFilter {
                client,
                provider,
                evaluator,
                status: match a.status.as_deref().map(api::JobStatus::parse) {
                    Some(Some(s)) => Some(s),
                    Some(None) => {
                        return refusal(
                            "bad_argument",
                            "status is open, funded, submitted, completed, rejected or expired",
                        )
                    }
                    None => None,
                },
            },
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Ok(e),
        };
        self.node
            .jobs(filter, a.cursor)
            .await
            .map_or_else(node_refusal, answer)
    }

    #[tool(
        description = "One job: client, provider, evaluator, budget and escrow in mUSD base \
                          units, status, expiry, deliverable."
    )]
    async fn job(&self, Parameters(a): Parameters<JobArgs>) -> ToolResult {
        self.node
            .job(a.job_id)
            .await
            .map_or_else(node_refusal, answer)
    }

    #[tool(
        description = "Check an inference receipt without running the model: it is signed by \
                          the miner it names and binds the request it carries. Pass the miner's \
                          completion JSON (with `receipt`). Re-running it: `mycel receipt verify \
                          FILE --rerun`, or ask a subnet validator (ERC-8004 validation)."
    )]
    async fn verify_receipt(&self, Parameters(a): Parameters<ReceiptArgs>) -> ToolResult {
        let receipt = a.answer.get("receipt").cloned().unwrap_or(a.answer);
        let checked = check_receipt(receipt);
        if checked["valid"] == true {
            answer(checked)
        } else {
            Ok(CallToolResult::structured_error(checked))
        }
    }

    #[tool(
        description = "Send MYC or mUSD (needs the server's key; amounts in whole tokens, e.g. \
                          \"1.5\"). Waits until the transfer is final and returns its receipt. With \
                          an agent key that has an allowance, it spends the owner's tokens within \
                          the allowance's limits."
    )]
    async fn transfer(
        &self,
        Parameters(a): Parameters<TransferArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let to: Address = match parse("to", &a.to) {
            Ok(v) => v,
            Err(e) => return Ok(e),
        };
        let token: Token = match a.token.as_deref().unwrap_or("MYC").parse() {
            Ok(t) => t,
            Err(_) => return refusal("bad_argument", "token is MYC or mUSD"),
        };
        let amount = match parse_amount(&a.amount, token) {
            Ok(v) => v,
            Err(e) => return refusal("bad_argument", format!("amount '{}': {e}", a.amount)),
        };
        self.send(&Progress::of(&context), |f| {
            TxKind::Transfer(Transfer {
                from: f.from,
                to,
                token: token.address(),
                amount: U256::from(amount),
                memo: Default::default(),
                nonce: f.nonce,
                fee: f.fee,
            })
        })
        .await
    }

    #[tool(
        description = "Ask the network's models through the x402 gateway, paying per call in \
                          mUSD from the server's key (or its allowance), refused above the price \
                          cap. Returns the answer, the price paid, the settlement transaction, \
                          the authorization nonce (cite it in give_feedback), the miner's \
                          receipt and its check (signed by the miner that answered, binding this \
                          request). With `session` it pays from a payment session instead."
    )]
    async fn chat(
        &self,
        Parameters(a): Parameters<ChatArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let progress = Progress::of(&context);
        let Some(gateway) = &self.gateway else {
            return refusal(
                "no_gateway",
                "start `mycel mcp` with --gateway URL to use chat",
            );
        };
        let Some(signer) = &self.signer else {
            return refusal(
                "no_key",
                "chat pays per call: start `mycel mcp` with --key NAME or --dev-account N (an \
                 agent key with an allowance keeps it within its owner's limits)",
            );
        };
        let cap = match a.max_price.as_deref().map(|p| parse_amount(p, Token::Musd)) {
            Some(Ok(p)) => p.min(self.max_price),
            Some(Err(e)) => return refusal("bad_argument", format!("max_price: {e}")),
            None => self.max_price,
        };
        let model = match a.model {
            Some(m) => m,
            None => match self.first_model(gateway).await {
                Ok(m) => m,
                Err(e) => return refusal("gateway_unreachable", e),
            },
        };
        let body = json!({"model": model, "max_tokens": a.max_tokens.unwrap_or(64),
                          "messages": [{"role": "user", "content": a.prompt}]});
        let url = format!("{gateway}/v1/chat/completions");
        let send = |header: Option<(&'static str, String)>| {
            let mut request = self.http.post(&url).timeout(CHAT_TIMEOUT).json(&body);
            if let Some((name, value)) = header {
                request = request.header(name, value);
            }
            request.send()
        };
        progress.step(1, 3, "asking the gateway's price").await;
        let (ask, price) = match self.quote(&url, &body).await {
            Ok(quoted) => quoted,
            Err(refused) => return Ok(refused),
        };
        if price.amount > cap {
            return refusal(
                "over_max_price",
                format!(
                    "the gateway asks {} mUSD, over the cap of {} mUSD: nothing was paid",
                    format_amount(price.amount, Token::Musd),
                    format_amount(cap, Token::Musd)
                ),
            );
        }
        let (header, nonce, session) = match a.session.as_deref() {
            Some(channel) => match self.session_voucher(signer, channel, price.amount).await {
                Ok((voucher, cumulative)) => (
                    (x402::SESSION_HEADER, voucher.to_header()),
                    None,
                    Some((voucher.channel, cumulative)),
                ),
                Err(refused) => return Ok(refused),
            },
            None => match Payer::new((**signer).clone()).pay(&ask, unix_now()) {
                Ok(p) => ((p.header, p.value), Some(p.authorization.nonce), None),
                Err(e) => return refusal("cannot_pay", e.to_string()),
            },
        };
        progress
            .step(
                2,
                3,
                &format!(
                    "paying {} mUSD; a miner is decoding the answer",
                    format_amount(price.amount, Token::Musd)
                ),
            )
            .await;
        let paid = match send(Some(header)).await {
            Ok(r) => r,
            Err(e) => return refusal("gateway_unreachable", e.to_string()),
        };
        let status = paid.status();
        let settlement = paid
            .headers()
            .get(x402::PAYMENT_RESPONSE)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| x402::decode_header::<x402::SettleResponse>(h).ok());
        let text = paid.text().await.unwrap_or_default();
        if !status.is_success() {
            return refusal("payment_refused", format!("{status}: {text}"));
        }
        if let Some((channel, cumulative)) = session {
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(channel, cumulative);
        }
        let completion: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let content = completion["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        progress.step(3, 3, "answered; checking the receipt").await;
        let receipt = completion.get("receipt").cloned().unwrap_or(Value::Null);
        let verification = check_receipt(receipt.clone());
        answer(json!({
            "answer": content,
            "model": model,
            "price_musd": format_amount(price.amount, Token::Musd),
            "paid_to": price.pay_to,
            "settlement": settlement.map(|s| json!({"success": s.success, "transaction": s.transaction})),
            "authorization_nonce": nonce,
            "session": session.map(|(channel, cumulative)| json!({
                "channel": channel, "total_musd": format_amount(cumulative, Token::Musd)})),
            "receipt": receipt,
            "verification": verification,
        }))
    }

    #[tool(
        description = "Rate an ERC-8004 agent (needs the server's key; not for your own \
                          agents). Cite an x402 payment you made to it with payment_nonce so the \
                          review counts as verified."
    )]
    async fn give_feedback(
        &self,
        Parameters(a): Parameters<FeedbackArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let payment: B256 = match a
            .payment_nonce
            .as_deref()
            .map(|n| parse("payment_nonce", n))
        {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Ok(e),
            None => B256::ZERO,
        };
        self.send(&Progress::of(&context), |f| {
            TxKind::GiveFeedback(GiveFeedback {
                from: f.from,
                agentId: U256::from(a.agent_id),
                value: i128::from(a.value),
                valueDecimals: a.value_decimals.unwrap_or(0),
                tag1: a.tag1.unwrap_or_default(),
                tag2: a.tag2.unwrap_or_default(),
                endpoint: String::new(),
                feedbackURI: String::new(),
                feedbackHash: B256::ZERO,
                paymentNonce: payment,
                nonce: f.nonce,
                fee: f.fee,
            })
        })
        .await
    }
}

/// What a receipt proves without the model: `{valid, miner, model_id, ...}`, or `{valid: false,
/// code, message}`.
fn check_receipt(receipt: Value) -> Value {
    let invalid =
        |code: &str, message: String| json!({"valid": false, "code": code, "message": message});
    let json: ReceiptJson = match serde_json::from_value(receipt) {
        Ok(j) => j,
        Err(e) => return invalid("bad_receipt", format!("not a receipt: {e}")),
    };
    let signed = match SignedReceipt::from_json(&json) {
        Ok(s) => s,
        Err(e) => return invalid("bad_receipt", e.to_string()),
    };
    let r = &signed.receipt;
    match signed.recover_signer() {
        Ok(signer) if signer == r.miner => json!({
            "valid": true,
            "miner": r.miner,
            "model_id": r.modelId,
            "netuid": r.netuid,
            "request_hash": r.requestHash,
            "output_tokens": r.outputTokenCount,
            "request_included": json.request.is_some(),
        }),
        Ok(signer) => invalid(
            "bad_signature",
            format!("signed by {signer}, not by the miner {} it names", r.miner),
        ),
        Err(e) => invalid("bad_signature", e.to_string()),
    }
}

#[tool_handler(router = self.tool_router)]
impl rmcp::ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .build();
        let mut config = ServerConfig::new(capabilities).with_instructions(
            "mycel: verifiable, pay-per-use AI on its own chain. Read the chain (status, \
             balance, block, transaction), the incentive layer (subnets, metagraph, emission, \
             pools), find and check agents (find_agents, agent, agent_registration, \
             reputation), jobs, and inference receipts (verify_receipt). With a key: chat (ask \
             the network's models, paid per call over x402, receipt checked), call_paid_tool \
             (another MCP server's tool, paid over x402), transfer, stake, unstake and \
             give_feedback. Resources: mycel://subnets, mycel://metagraph/{netuid}, \
             mycel://emission/latest, mycel://agents/{id}/registration. Amounts are in whole \
             tokens unless a field says base units (MYC has 9 decimals, mUSD 6).",
        );
        config.server_info = Implementation::new("mycel", env!("CARGO_PKG_VERSION"));
        config
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = self.offered_tools();
        if let Some(paywall) = &self.paywall {
            for tool in &mut tools {
                if let Some(price) = paywall.price(&tool.name).filter(|p| *p > 0) {
                    let description = tool.description.as_deref().unwrap_or_default();
                    tool.description =
                        Some(format!("{description}{}", paywall.describe(price)).into());
                    // Its result is either its output or a PaymentRequired: no one output
                    // schema holds (clients check structured content against it, even errors).
                    tool.output_schema = None;
                }
            }
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let upstream = self.upstream.clone().filter(|u| u.has(&name));
        let price = self
            .paywall
            .as_ref()
            .and_then(|p| p.price(&name))
            .filter(|p| *p > 0);
        let payment = context
            .meta
            .get(paid::PAYMENT_META)
            .cloned()
            .or_else(|| request.meta.as_ref()?.get(paid::PAYMENT_META).cloned());
        let progress = Progress::of(&context);
        let run = async {
            match &upstream {
                Some(u) => u
                    .call(&name, request.arguments.clone())
                    .await
                    .map(Into::into),
                None => {
                    self.tool_router
                        .call(ToolCallContext::new(self, request, context))
                        .await
                }
            }
        };
        match (price, &self.paywall) {
            (Some(price), Some(paywall)) => {
                paywall
                    .call(&name, price, payment.as_ref(), &progress, run)
                    .await
            }
            _ => run.await,
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, ErrorData> {
        Ok(resources::list())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, ErrorData> {
        Ok(resources::templates())
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, ErrorData> {
        resources::read(self, &request.uri).await.map(Into::into)
    }
}

/// Serves `server` over this process's stdin and stdout until the client closes them.
pub async fn serve_stdio(server: Server) -> std::io::Result<()> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(())
}

impl Server {
    /// Every tool offered: this server's, then the upstream's that are priced.
    fn offered_tools(&self) -> Vec<rmcp::model::Tool> {
        let mut tools = self.tool_router.list_all();
        if let Some(upstream) = &self.upstream {
            tools.extend(upstream.tools().iter().cloned());
        }
        tools
    }

    /// The tools sold per call, as x402 discovery items of the server at `endpoint` (its `/mcp`
    /// URL): type "mcp", the tool's name, description and input schema in the metadata.
    pub fn discovery_items(&self, endpoint: &str) -> Vec<mycel_types::x402::discovery::Item> {
        let Some(paywall) = &self.paywall else {
            return Vec::new();
        };
        let updated = mycel_types::x402::discovery::rfc3339(unix_now());
        let tools = self.offered_tools();
        tools
            .into_iter()
            .filter_map(|tool| {
                let price = paywall.price(&tool.name).filter(|p| *p > 0)?;
                Some(mycel_types::x402::discovery::Item {
                    resource: endpoint.to_string(),
                    kind: "mcp".into(),
                    x402_version: 2,
                    accepts: vec![paywall.requirements(price)],
                    last_updated: updated.clone(),
                    metadata: json!({
                        "tool": tool.name,
                        "description": tool.description,
                        "inputSchema": tool.input_schema,
                        "payment": "x402 over MCP: _meta[\"x402/payment\"]",
                    }),
                })
            })
            .collect()
    }
}

/// `GET /discovery/resources` of an MCP server: its paid tools, filtered and paged.
async fn discovery(
    axum::extract::State(server): axum::extract::State<Server>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(params): axum::extract::Query<std::collections::BTreeMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let query = match mycel_types::x402::discovery::Query::parse(&params) {
        Ok(q) => q,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "bad_query", "message": e})),
            )
                .into_response()
        }
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let base = mycel_client::agents::request_base(host, "http://127.0.0.1");
    axum::Json(query.page(&server.discovery_items(&format!("{base}/mcp")))).into_response()
}

/// The streamable HTTP endpoint at `/mcp` (Host must be one of `hosts`, a present Origin one of
/// `origins`: others get 403), and the paid tools' catalogue at `/discovery/resources`.
pub fn http_router(server: Server, hosts: Vec<String>, origins: Vec<String>) -> axum::Router {
    let mut config = StreamableHttpServerConfig::default();
    config.allowed_hosts = hosts;
    config.allowed_origins = origins;
    let config = config.enforce_origin_validation();
    let catalogue = axum::Router::new()
        .route("/discovery/resources", axum::routing::get(discovery))
        .with_state(server.clone());
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        LocalSessionManager::default().into(),
        config,
    );
    axum::Router::new()
        .nest_service("/mcp", service)
        .merge(catalogue)
}
