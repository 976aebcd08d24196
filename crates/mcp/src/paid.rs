//! Paid tools: x402's MCP transport (the tool-result binding of x402 v2's `transports-v2/mcp.md`).
//!
//! `mycel mcp --paid-tools FILE` sells the tools FILE prices, its own or a third-party MCP
//! server's ([`crate::upstream`]), per call in mUSD:
//! - called without `_meta["x402/payment"]`, a priced tool does not run: the result has `isError`,
//!   `structuredContent` = x402's `PaymentRequired` (resource `mcp://tool/NAME`, one "exact"
//!   requirement) and the same JSON as `content[0].text`;
//! - with a payment: it must be x402 v2 and accept exactly the requirements offered; the
//!   facilitator verifies it, the tool runs, and only if the tool succeeded is the payment
//!   settled; the result carries the `SettleResponse` in `_meta["x402/payment-response"]`;
//! - refused (does not match, fails verification, already in use by a concurrent call, settled
//!   before) or not settled: `PaymentRequired` again with `error` saying why; a tool that fails
//!   charges nothing; a result whose settlement failed is not returned.
//!
//! The facilitator is reached over its HTTP API (mycel's gateway serves it), so the chain checks
//! every nonce once: a replayed payment fails verification.

use crate::Progress;
use alloy_primitives::{Address, B256};
use mycel_client::api;
use mycel_client::x402::FacilitatorClient;
use mycel_client::NodeClient;
use mycel_types::x402::{
    AnyPayment, PaymentRequired, PaymentRequirements, ResourceInfo, SettleResponse,
};
use mycel_types::{format_amount, parse_amount, Amount, Token};
use rmcp::model::{CallToolResponse, CallToolResult, MetaObject};
use rmcp::ErrorData;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::Mutex;

/// The `_meta` key of a payment (client → server).
pub const PAYMENT_META: &str = "x402/payment";
/// The `_meta` key of a settlement (server → client).
pub const PAYMENT_RESPONSE_META: &str = "x402/payment-response";
/// How long a payment signed for a tool stays valid.
const DEFAULT_TIMEOUT_SECS: u64 = 120;

/// The file `--paid-tools` reads (JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaidToolsFile {
    /// Who is paid (a 0x address) [default: the server's key].
    #[serde(default)]
    pub pay_to: Option<String>,
    /// The facilitator that verifies and settles [default: `--gateway`].
    #[serde(default)]
    pub facilitator: Option<String>,
    /// A third-party MCP server to sell the tools of: its command line, launched over stdio.
    /// Only its tools named in `tools` are offered.
    #[serde(default)]
    pub upstream: Option<Vec<String>>,
    /// Tool name → price per call in mUSD ("0.001"); "0" offers a tool for free.
    pub tools: BTreeMap<String, String>,
    /// How long a signed payment stays valid, in seconds [default: 120].
    #[serde(default)]
    pub max_timeout_seconds: Option<u64>,
}

impl PaidToolsFile {
    pub fn read(path: &Path) -> Result<PaidToolsFile, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The paywall in front of priced tools.
pub struct Paywall {
    facilitator: FacilitatorClient,
    prices: BTreeMap<String, Amount>,
    musd: api::Musd,
    pay_to: Address,
    timeout: u64,
    /// Payments `(from, nonce)` whose call is running: a second call with one waits for nothing
    /// and is refused, so one payment never runs a tool twice.
    in_flight: Mutex<HashSet<(Address, B256)>>,
}

impl Paywall {
    /// Reads the prices, finds who is paid and checks the facilitator settles mUSD on this
    /// node's chain.
    pub async fn connect(
        file: &PaidToolsFile,
        node: &NodeClient,
        key: Option<Address>,
        gateway: &str,
    ) -> Result<Paywall, String> {
        let mut prices = BTreeMap::new();
        for (tool, price) in &file.tools {
            let amount = parse_amount(price, Token::Musd)
                .map_err(|e| format!("price of {tool} '{price}': {e}"))?;
            prices.insert(tool.clone(), amount);
        }
        let pay_to = match (&file.pay_to, key) {
            (Some(a), _) => a
                .parse()
                .map_err(|_| format!("pay_to '{a}' is not an address"))?,
            (None, Some(k)) => k,
            (None, None) => {
                return Err(
                    "give pay_to in the paid-tools file or a key (--key, --dev-account) \
                            to be paid to"
                        .into(),
                )
            }
        };
        let facilitator = FacilitatorClient::new(file.facilitator.as_deref().unwrap_or(gateway));
        let musd = node.musd().await.map_err(|e| format!("node: {e}"))?;
        let supported = facilitator.supported().await?;
        if !supported
            .kinds
            .iter()
            .any(|k| k.x402_version == 2 && k.scheme == "exact" && k.network == musd.network)
        {
            return Err(format!(
                "facilitator {} does not settle x402 v2 exact payments on {}",
                facilitator.url(),
                musd.network
            ));
        }
        Ok(Paywall {
            facilitator,
            prices,
            musd,
            pay_to,
            timeout: file.max_timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECS),
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    /// The tools the file names.
    pub fn tools(&self) -> impl Iterator<Item = &str> {
        self.prices.keys().map(String::as_str)
    }

    /// What `tool` costs, if it is sold (0: offered for free).
    pub fn price(&self, tool: &str) -> Option<Amount> {
        self.prices.get(tool).copied()
    }

    /// The sentence a paid tool's description ends with.
    pub fn describe(&self, amount: Amount) -> String {
        format!(
            " Paid: {} mUSD a call over x402 (pay with _meta[\"x402/payment\"]; called without, \
             it answers the PaymentRequired).",
            format_amount(amount, Token::Musd)
        )
    }

    pub(crate) fn requirements(&self, amount: Amount) -> PaymentRequirements {
        PaymentRequirements::exact(
            self.musd.chain_id,
            self.musd.asset,
            (&self.musd.name, &self.musd.version),
            amount,
            self.pay_to,
            self.timeout,
        )
    }

    /// The result that asks for payment, with `error` saying why.
    fn payment_required(&self, tool: &str, amount: Amount, error: String) -> CallToolResult {
        let required = PaymentRequired {
            x402_version: 2,
            error: Some(error),
            resource: ResourceInfo {
                url: format!("mcp://tool/{tool}"),
                description: Some(format!("the MCP tool {tool}")),
                mime_type: Some("application/json".into()),
            },
            accepts: vec![self.requirements(amount)],
        };
        CallToolResult::structured_error(serde_json::to_value(required).unwrap_or(Value::Null))
    }

    /// Runs the priced `tool` (price `amount` > 0) with the payment in `meta`, as the module
    /// says.
    pub async fn call<F>(
        &self,
        tool: &str,
        amount: Amount,
        meta: Option<&Value>,
        progress: &Progress,
        run: F,
    ) -> Result<CallToolResponse, ErrorData>
    where
        F: Future<Output = Result<CallToolResponse, ErrorData>>,
    {
        let ask = |error: String| Ok(self.payment_required(tool, amount, error).into());
        let Some(json) = meta else {
            return ask(format!(
                "payment required: {} mUSD for {tool}",
                format_amount(amount, Token::Musd)
            ));
        };
        let requirements = self.requirements(amount);
        let payment = match AnyPayment::from_json(json) {
            Ok(AnyPayment::V2(p)) => p,
            Ok(AnyPayment::V1(_)) => return ask("x402 over MCP takes x402Version 2".into()),
            Err(e) => return ask(format!("the payment does not parse: {e}")),
        };
        if payment.accepted != requirements {
            return ask("the payment does not accept the requirements offered".into());
        }
        let a = &payment.payload.authorization;
        let (Ok(from), Ok(nonce)) = (a.from.parse::<Address>(), a.nonce.parse::<B256>()) else {
            return ask("the authorization's from or nonce does not parse".into());
        };
        let Some(_held) = InFlight::hold(&self.in_flight, (from, nonce)) else {
            return ask("this payment is already paying for another call".into());
        };
        progress.step(1, 3, "verifying the payment").await;
        match self.facilitator.verify(json, &requirements).await {
            Ok(v) if v.is_valid => {}
            Ok(v) => {
                return ask(format!(
                    "payment refused: {}{}",
                    v.invalid_reason.unwrap_or_default(),
                    v.invalid_message
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ))
            }
            Err(e) => return ask(format!("cannot verify the payment: {e}")),
        }
        progress.step(2, 3, "running the tool").await;
        let result = match run.await? {
            CallToolResponse::Complete(r) if r.is_error != Some(true) => r,
            // Failed or not finished: nothing is charged.
            other => return Ok(other),
        };
        progress.step(3, 3, "settling the payment").await;
        let settled = match self.facilitator.settle(json, &requirements).await {
            Ok(s) => s,
            Err(e) => SettleResponse {
                success: false,
                error_reason: Some("facilitator_unavailable".into()),
                error_message: Some(e),
                payer: Some(from.to_checksum(None)),
                transaction: String::new(),
                network: self.musd.network.clone(),
                amount: None,
            },
        };
        // Submitted but not final yet: the payer will very likely be charged, so it gets what
        // it paid for, with the pending settlement to follow.
        let pending = settled.error_reason.as_deref() == Some("settlement_pending");
        if !settled.success && !pending {
            return ask(format!(
                "settlement failed: {}{}",
                settled.error_reason.unwrap_or_default(),
                settled
                    .error_message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
        let mut meta = result
            .meta
            .clone()
            .unwrap_or_else(|| MetaObject(Default::default()));
        meta.0.insert(
            PAYMENT_RESPONSE_META.into(),
            serde_json::to_value(&settled).unwrap_or(Value::Null),
        );
        Ok(result.with_meta(Some(meta)).into())
    }
}

/// A payment held by one running call; released when the call ends.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<(Address, B256)>>,
    key: (Address, B256),
}

impl<'a> InFlight<'a> {
    fn hold(set: &'a Mutex<HashSet<(Address, B256)>>, key: (Address, B256)) -> Option<Self> {
        let mut held = set.lock().unwrap_or_else(|e| e.into_inner());
        held.insert(key).then_some(InFlight { set, key })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut held = self.set.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(&self.key);
    }
}
