//! `mycel pay` and `mycel chat`: call a paid endpoint (a gateway) and pay what it asks, with one
//! x402 payment signed by mycel-client's payer or a voucher from a session channel.

use crate::session_cmd::SessionPayer;
use crate::signer::SignerArgs;
use alloy_signer_local::PrivateKeySigner;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use mycel_client::x402::{ExactPrice, Payer, PaymentAsk};
use mycel_types::{format_amount, parse_amount, x402, Amount, Token};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(after_help = "Example (a paid gateway from `mycel gateway`):\n  \
    mycel pay http://127.0.0.1:8402/v1/chat/completions --dev-account 1 --max 0.01 \\\n      \
    --data '{\"model\":\"smollm2\",\"max_tokens\":64,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'")]
pub struct PayArgs {
    /// The URL to call (POST with --data, else GET).
    #[arg(value_name = "URL")]
    pub url: String,
    /// JSON body to POST.
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    #[command(flatten)]
    pub payment: PaymentArgs,
}

/// How `mycel pay` and `mycel chat` pay: the most they pay, who signs, and from where.
#[derive(Debug, Args)]
pub struct PaymentArgs {
    /// Pay at most this much mUSD; a dearer request is refused before anything is signed.
    #[arg(long, value_name = "mUSD", default_value = "0.1")]
    pub max: String,
    /// Show the price and stop without paying.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub signer: SignerArgs,
    /// Pay from this session channel (`mycel session open`) with a cumulative voucher instead of
    /// one x402 payment: the new total is the last one signed (kept in ~/.mycel/sessions, or
    /// $MYCEL_SESSION_DIR) or the chain's claimed amount, whichever is higher, + the price.
    #[arg(long, value_name = "CHANNEL_ID")]
    pub session: Option<alloy_primitives::B256>,
    /// With --session: the node's HTTP API, where the channel is read.
    #[arg(
        long,
        value_name = "URL",
        env = "MYCEL_RPC",
        default_value = "http://127.0.0.1:8545"
    )]
    pub rpc: String,
}

/// `mycel pay`: calls a URL, and if it asks for an x402 payment in mUSD, shows the price, signs an
/// EIP-3009 authorization for exactly that (within `--max`) and calls again with it.
pub fn run_pay(args: PayArgs) -> Result<()> {
    let body: Option<serde_json::Value> = match &args.data {
        Some(d) => Some(serde_json::from_str(d).context("--data is not JSON")?),
        None => None,
    };
    if let Some(text) = fetch_paying(&args.url, body, &args.payment)? {
        println!("{text}");
    }
    Ok(())
}

/// Calls `url` (POST `body`, else GET); if it asks for an x402 payment, shows the price on
/// stderr, refuses it above `--max`, and pays (from the `--session` channel, or with one exact
/// payment from mycel-client's x402 payer). Returns the answer's body (`None` after a dry run).
fn fetch_paying(
    url: &str,
    body: Option<serde_json::Value>,
    args: &PaymentArgs,
) -> Result<Option<String>> {
    let max =
        parse_amount(&args.max, Token::Musd).with_context(|| format!("--max '{}'", args.max))?;
    let signer = if args.dry_run {
        None
    } else {
        Some(args.signer.load_if_given()?.ok_or_else(|| {
            anyhow!("say who pays: --key FILE|NAME or --dev-account N (or --dry-run)")
        })?)
    };
    // A session payer reads its channel before the call (blocking, outside the runtime below).
    let session = match (&signer, args.session) {
        (Some(signer), Some(channel)) => {
            Some(SessionPayer::prepare(&args.rpc, signer.clone(), channel)?)
        }
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let call = Call {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()
                .context("HTTP client")?,
            url,
            body: body.as_ref(),
        };
        let first = call.send(None).await?;
        if first.status().as_u16() != 402 {
            let status = first.status();
            let text = first.text().await.unwrap_or_default();
            if !status.is_success() {
                bail!(
                    "{} answered {status} (no payment was asked for): {text}",
                    url
                );
            }
            return Ok(Some(text));
        }
        let ask = PaymentAsk::from_response(first).await?;
        let price = ask.exact()?;
        show_price(&price, max)?;
        match (signer, session) {
            (None, _) => Ok(None),
            (Some(_), Some(payer)) => call.pay_by_voucher(&payer, price.amount).await.map(Some),
            (Some(signer), None) => call.pay_exact(&ask, signer).await.map(Some),
        }
    })
}

/// Prints the price asked for, and refuses it above `max`.
fn show_price(price: &ExactPrice, max: Amount) -> Result<()> {
    eprintln!(
        "price: {} {} (asset {}, {}) to {}",
        format_amount(price.amount, Token::Musd),
        if price.token_name == mycel_types::MUSD_EIP712_NAME {
            "mUSD"
        } else {
            price.token_name.as_str()
        },
        price.requirements.asset,
        price.requirements.network,
        price.requirements.pay_to
    );
    if price.amount > max {
        bail!(
            "the price {} mUSD is over --max {} mUSD: nothing was paid",
            format_amount(price.amount, Token::Musd),
            format_amount(max, Token::Musd)
        );
    }
    Ok(())
}

/// One paid call: the same request, sent again with what pays for it.
struct Call<'a> {
    http: reqwest::Client,
    url: &'a str,
    body: Option<&'a serde_json::Value>,
}

impl Call<'_> {
    async fn send(&self, header: Option<(&'static str, String)>) -> Result<reqwest::Response> {
        let mut request = match self.body {
            Some(b) => self.http.post(self.url).json(b),
            None => self.http.get(self.url),
        };
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))
    }

    /// Pays `amount` more from the session channel with a cumulative voucher.
    async fn pay_by_voucher(&self, payer: &SessionPayer, amount: Amount) -> Result<String> {
        let (voucher, cumulative) = payer.voucher(amount)?;
        let paid = self
            .send(Some((
                mycel_gateway::session::SESSION_HEADER,
                voucher.to_header(),
            )))
            .await?;
        let status = paid.status();
        let text = paid.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(self.voucher_refused(status, &text, cumulative));
        }
        payer.record(cumulative)?;
        eprintln!(
            "paid: {} mUSD from channel {}, {} mUSD in total, {} mUSD left",
            format_amount(amount, Token::Musd),
            payer.channel,
            format_amount(cumulative, Token::Musd),
            format_amount(payer.left(cumulative), Token::Musd)
        );
        Ok(text)
    }

    /// Why the gateway did not take a voucher for `cumulative`, and what to do.
    fn voucher_refused(
        &self,
        status: reqwest::StatusCode,
        text: &str,
        cumulative: Amount,
    ) -> anyhow::Error {
        #[derive(Deserialize)]
        struct Refusal {
            error: String,
        }
        let code = serde_json::from_str::<Refusal>(text)
            .map(|r| r.error)
            .unwrap_or_default();
        let url = self.url;
        let total = format_amount(cumulative, Token::Musd);
        if code == "session_voucher_too_low" {
            anyhow!(
                "{url} refused the voucher for {total} mUSD in total ({code}): it holds a higher \
                 total than this machine recorded (a voucher signed elsewhere, or an answer \
                 lost on the way); nothing was paid"
            )
        } else if code.starts_with("session_") {
            anyhow!("{url} refused the voucher for {total} mUSD in total ({code}): {text}")
        } else if status.as_u16() == 402 {
            anyhow!(
                "{url} does not take session vouchers (is the gateway running with \
                 --sessions?): it answered 402 {code}; nothing was paid"
            )
        } else {
            anyhow!("{url} answered {status} (the voucher was not counted): {text}")
        }
    }

    /// Pays what `ask` asks for with one exact EIP-3009 payment signed by `signer`.
    async fn pay_exact(&self, ask: &PaymentAsk, signer: PrivateKeySigner) -> Result<String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let payer = Payer::new(signer);
        let payment = payer.pay(ask, now)?;
        let authorization_nonce = payment.authorization.nonce;
        let paid = self.send(Some((payment.header, payment.value))).await?;
        let status = paid.status();
        let settlement = paid
            .headers()
            .get(x402::PAYMENT_RESPONSE)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| x402::decode_header::<x402::SettleResponse>(h).ok());
        let rejection = paid
            .headers()
            .get(x402::PAYMENT_REQUIRED)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| x402::decode_header::<x402::PaymentRequired>(h).ok())
            .and_then(|r| r.error);
        let text = paid.text().await.unwrap_or_default();
        if !status.is_success() {
            eprintln!("{text}");
        }
        match settlement {
            Some(s) if s.success => {
                eprintln!(
                    "paid: transaction {} on {} by {}, authorization nonce {authorization_nonce} \
                     (cite it in a review: mycel agent feedback --payment-nonce …)",
                    s.transaction,
                    s.network,
                    payer.address()
                );
                Ok(text)
            }
            Some(s) if status.is_success() => {
                eprintln!(
                    "payment on its way ({}): transaction {}",
                    s.error_reason.unwrap_or_default(),
                    s.transaction
                );
                Ok(text)
            }
            Some(s) => bail!(
                "payment not settled: {} {}",
                s.error_reason.unwrap_or_default(),
                s.error_message.unwrap_or_default()
            ),
            None => bail!(
                "{} answered {status}{}",
                self.url,
                rejection
                    .map(|r| format!(": payment refused ({r})"))
                    .unwrap_or_default()
            ),
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Example (a paid gateway from `mycel gateway`):\n  \
    mycel chat \"What is the capital of France?\" --dev-account 1 --max 0.01")]
pub struct ChatArgs {
    /// What to ask.
    #[arg(value_name = "PROMPT")]
    pub prompt: String,
    /// The gateway's base URL.
    #[arg(
        long,
        value_name = "URL",
        env = "MYCEL_GATEWAY",
        default_value = "http://127.0.0.1:8402"
    )]
    pub gateway: String,
    /// The model to ask for.
    #[arg(long, default_value = "SmolLM2-135M-Instruct.Q4_1")]
    pub model: String,
    /// Most tokens to generate (the price grows with it).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_tokens: u64,
    /// Print the whole answer (with its receipt) as JSON instead of the text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub payment: PaymentArgs,
}

/// `mycel chat`: one paid chat completion through a gateway; prints the answer and its receipt.
pub fn run_chat(args: ChatArgs) -> Result<()> {
    let body = serde_json::json!({
        "model": args.model,
        "max_tokens": args.max_tokens,
        "messages": [{"role": "user", "content": args.prompt}],
    });
    let url = format!("{}/v1/chat/completions", args.gateway.trim_end_matches('/'));
    let Some(text) = fetch_paying(&url, Some(body), &args.payment)? else {
        return Ok(());
    };
    let answer: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("the gateway's answer is not JSON: {text}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let content = serde_json::from_value::<ChatAnswer>(answer)
        .ok()
        .and_then(|a| Some((a.choices.into_iter().next()?.message.content?, a.receipt)));
    let Some((content, receipt)) = content else {
        bail!("the answer has no choices[0].message.content: {text}");
    };
    println!("{content}");
    if let Some(ChatReceipt { message: Some(r) }) = receipt {
        eprintln!(
            "receipt: miner {}, model {}, {} output tokens (check it: save --json output, then `mycel receipt verify FILE`)",
            r.miner.as_deref().unwrap_or("?"),
            r.model_id.as_deref().unwrap_or("?"),
            r.output_token_count
        );
    }
    Ok(())
}

/// What `mycel chat` prints of a chat completion: the text, and who answered per its receipt.
#[derive(Debug, Deserialize)]
struct ChatAnswer {
    choices: Vec<ChatChoice>,
    receipt: Option<ChatReceipt>,
}

#[derive(Debug, Deserialize)]
struct ChatChoice {
    message: ChatMessage,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    content: Option<String>,
}

/// The signed receipt's message, the fields shown (`mycel receipt verify` checks it all).
#[derive(Debug, Deserialize)]
struct ChatReceipt {
    #[serde(default)]
    message: Option<ReceiptSummary>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceiptSummary {
    miner: Option<String>,
    model_id: Option<String>,
    #[serde(default)]
    output_token_count: serde_json::Value,
}
