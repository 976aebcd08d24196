//! Payment sessions from MCP (docs/payments.md, "Sessions"): `open_session` deposits mUSD into
//! an escrow channel to the gateway's pay-to address, `chat` with `session` pays each call with
//! a cumulative voucher instead of one x402 payment (no transaction per call), and
//! `close_session` starts the withdraw delay (the unclaimed rest comes back after it, with
//! `mycel session withdraw`).
//!
//! The next voucher's total is the highest of what this server had accepted and what the chain
//! says was claimed, plus the call's price, and never above the deposit.

use crate::{answer, node_refusal, parse, refusal, Progress, Server, ToolResult};
use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use mycel_client::x402::{ExactPrice, PaymentAsk};
use mycel_types::x402::SessionVoucher;
use mycel_types::{
    channel_id, format_amount, parse_amount, Amount, OpenChannel, RequestChannelWithdraw, Token,
    TxKind,
};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

/// The withdraw delay when none is given: an hour.
const DEFAULT_DELAY_S: u64 = 3600;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct OpenSessionArgs {
    /// The deposit, in mUSD (e.g. "1").
    pub amount: String,
    /// Who is paid (0x address) [default: the gateway's pay-to address, read from its price].
    pub to: Option<String>,
    /// Seconds between close_session and the earliest withdraw [default: 3600].
    pub withdraw_delay_s: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SessionArgs {
    /// The channel id (0x + 32 bytes hex) open_session returned.
    pub channel: String,
}

fn refused(code: &str, message: impl Into<String>) -> CallToolResult {
    CallToolResult::structured_error(json!({"code": code, "message": message.into()}))
}

impl Server {
    /// Asks `url` for its price with `body` (the 402 costs nothing).
    pub(crate) async fn quote(
        &self,
        url: &str,
        body: &Value,
    ) -> Result<(PaymentAsk, ExactPrice), CallToolResult> {
        let first = self
            .http
            .post(url)
            .timeout(crate::CHAT_TIMEOUT)
            .json(body)
            .send()
            .await
            .map_err(|e| refused("gateway_unreachable", e.to_string()))?;
        if first.status().as_u16() != 402 {
            let status = first.status();
            let text = first.text().await.unwrap_or_default();
            return Err(refused(
                "not_paywalled",
                format!("{url} answered {status}: {text}"),
            ));
        }
        let ask = PaymentAsk::from_response(first)
            .await
            .map_err(|e| refused("bad_price", e.to_string()))?;
        let price = ask
            .exact()
            .map_err(|e| refused("bad_price", e.to_string()))?;
        Ok((ask, price))
    }

    /// The voucher paying `price` more from `channel`, and its total.
    pub(crate) async fn session_voucher(
        &self,
        signer: &PrivateKeySigner,
        channel: &str,
        price: Amount,
    ) -> Result<(SessionVoucher, Amount), CallToolResult> {
        let id: B256 = parse("session", channel)?;
        let (c, params) = tokio::join!(self.node.channel(id), self.node.chain_params());
        let (c, params) = match (c, params) {
            (Ok(c), Ok(p)) => (c, p),
            (Err(e), _) | (_, Err(e)) => {
                return Err(node_refusal(e).unwrap_or_else(|e| refused("node", e.message)))
            }
        };
        if c.payer != signer.address() {
            return Err(refused(
                "not_your_session",
                format!("channel {id} is paid by {}, not by this key", c.payer),
            ));
        }
        if c.closed || c.withdraw_at_s.is_some() {
            return Err(refused(
                "session_closing",
                format!("channel {id} is closed or closing: open a new one"),
            ));
        }
        let accepted = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
            .unwrap_or(0);
        let cumulative = accepted.max(c.claimed).saturating_add(price);
        if cumulative > c.deposit {
            return Err(refused(
                "session_exhausted",
                format!(
                    "channel {id} has {} mUSD left, the price is {} mUSD: open a new session; \
                     nothing was paid",
                    format_amount(c.deposit.saturating_sub(cumulative - price), Token::Musd),
                    format_amount(price, Token::Musd)
                ),
            ));
        }
        Ok((
            SessionVoucher::sign(signer, params.chain_id, id, cumulative),
            cumulative,
        ))
    }
}

#[tool_router(router = session_router, vis = "pub(crate)")]
impl Server {
    #[tool(
        description = "Open a payment session: deposit mUSD into an escrow channel to the \
                          gateway (needs the server's key). Then chat with `session` pays each \
                          call with a signed voucher: no transaction per call. Returns the \
                          channel id."
    )]
    async fn open_session(
        &self,
        Parameters(a): Parameters<OpenSessionArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let Some(signer) = self.signer.clone() else {
            return crate::no_key();
        };
        let amount = match parse_amount(&a.amount, Token::Musd) {
            Ok(v) if v > 0 => v,
            Ok(_) => return refusal("bad_argument", "the deposit must be above 0"),
            Err(e) => return refusal("bad_argument", format!("amount '{}': {e}", a.amount)),
        };
        let to: Address = match &a.to {
            Some(to) => match parse("to", to) {
                Ok(v) => v,
                Err(e) => return Ok(e),
            },
            None => {
                let Some(gateway) = self.gateway.clone() else {
                    return refusal("no_gateway", "give `to`, or start with --gateway URL");
                };
                let model = match self.first_model(&gateway).await {
                    Ok(m) => m,
                    Err(e) => return refusal("gateway_unreachable", e),
                };
                let body = json!({"model": model, "max_tokens": 1,
                                  "messages": [{"role": "user", "content": "price"}]});
                match self
                    .quote(&format!("{gateway}/v1/chat/completions"), &body)
                    .await
                {
                    Ok((_, price)) => price.pay_to,
                    Err(e) => return Ok(e),
                }
            }
        };
        let delay = a.withdraw_delay_s.unwrap_or(DEFAULT_DELAY_S);
        let salt = B256::random();
        let id = channel_id(signer.address(), to, salt);
        let sent = self
            .send(&Progress::of(&context), |f| {
                TxKind::OpenChannel(OpenChannel {
                    from: f.from,
                    payee: to,
                    amount: U256::from(amount),
                    withdrawDelay: delay,
                    salt,
                    nonce: f.nonce,
                    fee: f.fee,
                })
            })
            .await?;
        if sent.is_error == Some(true) {
            return Ok(sent);
        }
        answer(json!({"channel": id, "payee": to,
                      "deposit_musd": format_amount(amount, Token::Musd),
                      "withdraw_delay_s": delay,
                      "transaction": sent.structured_content}))
    }

    #[tool(
        description = "A payment session as the chain has it: payer, payee, deposit, claimed, \
                          escrowed (mUSD base units), and whether it is closing."
    )]
    async fn session(&self, Parameters(a): Parameters<SessionArgs>) -> ToolResult {
        let id: B256 = match parse("channel", &a.channel) {
            Ok(v) => v,
            Err(e) => return Ok(e),
        };
        self.node
            .channel(id)
            .await
            .map_or_else(node_refusal, answer)
    }

    #[tool(
        description = "Close a payment session: starts its withdraw delay (the gateway can \
                          still claim what it served); after it, `mycel session withdraw` takes \
                          back the rest. Needs the server's key."
    )]
    async fn close_session(
        &self,
        Parameters(a): Parameters<SessionArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        let id: B256 = match parse("channel", &a.channel) {
            Ok(v) => v,
            Err(e) => return Ok(e),
        };
        self.send(&Progress::of(&context), |f| {
            TxKind::RequestChannelWithdraw(RequestChannelWithdraw {
                from: f.from,
                channelId: id,
                nonce: f.nonce,
                fee: f.fee,
            })
        })
        .await
    }
}
