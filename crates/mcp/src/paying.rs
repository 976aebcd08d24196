//! The client side of x402 over MCP: `call_paid_tool` calls a tool of another MCP server (a
//! URL, or an ERC-8004 agent's registered "MCP" service), and when the tool answers with x402's
//! `PaymentRequired` it pays from the server's key, within the price cap, in the call's
//! `_meta["x402/payment"]`, and returns the result with its settlement.
//!
//! Only mUSD on this node's chain is paid: a price in another token or on another chain is
//! refused unsigned.

use crate::{answer, refusal, Progress, Server, ToolResult};
use alloy_primitives::Address;
use mycel_client::x402::{Payer, PaymentAsk};
use mycel_types::x402::PaymentRequired;
use mycel_types::{format_amount, parse_amount, Token};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolRequestParams, CallToolResult, MetaObject, RequestMetaObject};
use rmcp::service::RequestContext;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{tool, tool_router, RoleServer, ServiceExt};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// How long connecting to the other server may take, and one call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PaidToolArgs {
    /// The MCP server's streamable HTTP URL (e.g. "http://127.0.0.1:8765/mcp"); or give
    /// agent_id.
    pub server: Option<String>,
    /// An ERC-8004 agent whose registration file lists an "MCP" service: its endpoint.
    pub agent_id: Option<u64>,
    /// The tool to call.
    pub tool: String,
    /// Its arguments (an object).
    pub arguments: Option<serde_json::Map<String, Value>>,
    /// The most this call may cost, in mUSD (e.g. "0.01"); at most the server's cap.
    pub max_price: Option<String>,
}

/// The x402 `PaymentRequired` in a tool result, if it is one.
fn payment_required(result: &CallToolResult) -> Option<PaymentRequired> {
    if result.is_error != Some(true) {
        return None;
    }
    let asks = |v: &Value| v.get("x402Version").is_some() && v.get("accepts").is_some();
    let structured = result.structured_content.clone().filter(asks);
    let json = structured.or_else(|| {
        let text = result.content.first()?.as_text()?.text.clone();
        serde_json::from_str::<Value>(&text).ok().filter(asks)
    })?;
    serde_json::from_value(json).ok()
}

fn outcome(result: &CallToolResult) -> Value {
    let text: String = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect();
    json!({"is_error": result.is_error.unwrap_or(false),
           "structured": result.structured_content,
           "text": text})
}

#[tool_router(router = paying_router, vis = "pub(crate)")]
impl Server {
    #[tool(
        description = "Call a tool of another MCP server (its URL, or an ERC-8004 agent's \
                          registered MCP service) and pay for it over x402 if it asks: mUSD from \
                          the server's key (or its allowance), refused above the price cap. \
                          Returns the tool's result, the price paid and the settlement."
    )]
    async fn call_paid_tool(
        &self,
        Parameters(a): Parameters<PaidToolArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let progress = Progress::of(&context);
        let url = match (&a.server, a.agent_id) {
            (Some(url), None) => url.clone(),
            (None, Some(id)) => match self.registration(id).await {
                Ok(file) => match file.services.iter().find(|s| s.name == "MCP") {
                    Some(service) => service.endpoint.clone(),
                    None => {
                        return refusal(
                            "no_mcp_service",
                            format!("agent {id}'s registration lists no MCP service"),
                        )
                    }
                },
                Err((code, message)) => return refusal(code, message),
            },
            _ => return refusal("bad_argument", "give exactly one of server and agent_id"),
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return refusal(
                "bad_argument",
                format!("'{url}' is not an http(s) MCP endpoint"),
            );
        }
        let cap = match a.max_price.as_deref().map(|p| parse_amount(p, Token::Musd)) {
            Some(Ok(p)) => p.min(self.max_price),
            Some(Err(e)) => return refusal("bad_argument", format!("max_price: {e}")),
            None => self.max_price,
        };
        progress.step(1, 3, &format!("connecting to {url}")).await;
        let transport = StreamableHttpClientTransport::from_uri(url.as_str());
        let client = match tokio::time::timeout(CONNECT_TIMEOUT, ().serve(transport)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return refusal("unreachable", format!("{url}: {e}")),
            Err(_) => return refusal("unreachable", format!("{url}: no answer in 10 s")),
        };
        let call = |meta: Option<Value>| {
            let mut params = CallToolRequestParams::new(a.tool.clone());
            params.arguments = a.arguments.clone();
            params.meta = meta.map(|payment| {
                let mut m = MetaObject(Default::default());
                m.0.insert(crate::paid::PAYMENT_META.into(), payment);
                RequestMetaObject(m)
            });
            let peer = client.peer().clone();
            async move { tokio::time::timeout(CALL_TIMEOUT, peer.call_tool(params)).await }
        };
        let first = match call(None).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return refusal("tool_failed", format!("{}: {e}", a.tool)),
            Err(_) => return refusal("tool_failed", format!("{}: no answer in time", a.tool)),
        };
        let Some(required) = payment_required(&first) else {
            let _ = client.cancel().await;
            return answer(json!({"server": url, "tool": a.tool, "paid": false,
                                 "result": outcome(&first)}));
        };
        let Some(signer) = &self.signer else {
            return refusal(
                "no_key",
                "the tool asks for payment: start `mycel mcp` with --key NAME or --dev-account N",
            );
        };
        let ask = PaymentAsk::V2(required);
        let price = match ask.exact() {
            Ok(p) => p,
            Err(e) => return refusal("bad_price", e.to_string()),
        };
        let musd = match self.node.musd().await {
            Ok(m) => m,
            Err(e) => return crate::node_refusal(e),
        };
        if price.chain_id != musd.chain_id || price.asset != musd.asset {
            return refusal(
                "foreign_asset",
                format!(
                    "the tool asks to be paid {} on eip155:{}; this key pays mUSD ({}) on {}: \
                     nothing was signed",
                    price.asset, price.chain_id, musd.asset, musd.network
                ),
            );
        }
        if price.amount > cap {
            return refusal(
                "over_max_price",
                format!(
                    "the tool asks {} mUSD, over the cap of {} mUSD: nothing was paid",
                    format_amount(price.amount, Token::Musd),
                    format_amount(cap, Token::Musd)
                ),
            );
        }
        let payment = match Payer::new((**signer).clone()).pay(&ask, crate::unix_now()) {
            Ok(p) => p,
            Err(e) => return refusal("cannot_pay", e.to_string()),
        };
        progress
            .step(
                2,
                3,
                &format!(
                    "paying {} mUSD to {}",
                    format_amount(price.amount, Token::Musd),
                    price.pay_to
                ),
            )
            .await;
        let paid = call(Some(payment.json.clone())).await;
        let _ = client.cancel().await;
        progress.step(3, 3, "answered").await;
        let paid = match paid {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return refusal("tool_failed", format!("{}: {e}", a.tool)),
            Err(_) => return refusal("tool_failed", format!("{}: no answer in time", a.tool)),
        };
        if let Some(again) = payment_required(&paid) {
            return refusal(
                "payment_refused",
                again
                    .error
                    .unwrap_or_else(|| "the server asked for payment again".into()),
            );
        }
        let settlement = paid
            .meta
            .as_ref()
            .and_then(|m| m.0.get(crate::paid::PAYMENT_RESPONSE_META).cloned());
        let pay_to: Address = price.pay_to;
        answer(json!({
            "server": url,
            "tool": a.tool,
            "paid": true,
            "price_musd": format_amount(price.amount, Token::Musd),
            "paid_to": pay_to,
            "authorization_nonce": payment.authorization.nonce,
            "settlement": settlement,
            "result": outcome(&paid),
        }))
    }
}
