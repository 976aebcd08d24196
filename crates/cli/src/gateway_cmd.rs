//! `mycel gateway`: the paid front door — an x402 paywall in front of an OpenAI-compatible server,
//! with a facilitator that settles mUSD payments on the chain (docs/payments.md).

use crate::keys::{self, KeystoreArgs, PasswordArgs};
use alloy_primitives::Address;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use mycel_gateway::{
    router, Facilitator, FacilitatorConfig, GatewayConfig, NodeClient, Pricing, SystemClock,
};
use mycel_types::{format_amount, keys::dev_signer, keys::DEV_ACCOUNTS, parse_amount, Token};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    after_help = "Example (a devnet from `mycel up`, a model server on port 8000):\n  \
    mycel gateway --upstream http://127.0.0.1:8000 --dev-account 0 \\\n      \
    --pay-to 0xa0Ee7A142d267C1f36714E4a8F75612F20a79720\n\n\
Clients pay with x402: a request without payment gets 402 and a PAYMENT-REQUIRED header;\n\
the stock npm client (@x402/fetch + @x402/evm) pays automatically. See docs/payments.md."
)]
pub struct GatewayArgs {
    /// Base URL of the OpenAI-compatible server that answers the requests (a miner).
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8402")]
    pub listen: SocketAddr,
    /// The node's HTTP API, where payments settle.
    #[arg(
        long,
        value_name = "URL",
        env = "MYCEL_RPC",
        default_value = "http://127.0.0.1:8545"
    )]
    pub rpc: String,
    /// Who receives the payments (x402 payTo). Required unless --free.
    #[arg(long, value_name = "ADDRESS")]
    pub pay_to: Option<Address>,
    /// The facilitator's key, which signs settlement transactions and pays their MYC fees: a
    /// name in the keystore or the path of a keystore file.
    #[arg(long, value_name = "FILE|NAME")]
    pub key: Option<String>,
    /// Use development account N (0-9) as the facilitator's key. Devnets only.
    #[arg(long, value_name = "N")]
    pub dev_account: Option<u32>,
    /// Serve without payment (local use): no paywall, no facilitator.
    #[arg(long)]
    pub free: bool,
    /// mUSD charged for every request.
    #[arg(long, value_name = "mUSD", default_value = "0.001")]
    pub price_base: String,
    /// mUSD charged per 1,000 tokens of the request's max_tokens.
    #[arg(long, value_name = "mUSD", default_value = "0.01")]
    pub price_per_1k_tokens: String,
    /// max_tokens assumed for pricing when a request does not say.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub default_max_tokens: u64,
    /// Requests asking for more tokens are refused before payment.
    #[arg(long, value_name = "N", default_value_t = 8192)]
    pub max_tokens_limit: u64,
    /// How long a client's payment authorization should stay valid (x402 maxTimeoutSeconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub max_timeout: u64,
    /// How long settlement waits for finality before answering `settlement_pending`.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub settle_timeout: u64,
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
}

pub fn run(args: GatewayArgs) -> Result<()> {
    let pricing = Pricing {
        base: parse_amount(&args.price_base, Token::Musd)
            .with_context(|| format!("--price-base '{}'", args.price_base))?,
        per_1k_tokens: parse_amount(&args.price_per_1k_tokens, Token::Musd)
            .with_context(|| format!("--price-per-1k-tokens '{}'", args.price_per_1k_tokens))?,
        default_max_tokens: args.default_max_tokens,
        max_tokens_limit: args.max_tokens_limit,
    };
    if args.default_max_tokens > args.max_tokens_limit {
        bail!("--default-max-tokens must not exceed --max-tokens-limit");
    }
    if args.max_timeout < 10 {
        bail!("--max-timeout must be at least 10 seconds: clients need time to pay and the chain to settle");
    }
    if args.settle_timeout == 0 {
        bail!("--settle-timeout must be at least 1 second");
    }
    let upstream = args.upstream.trim_end_matches('/').to_string();
    if !(upstream.starts_with("http://") || upstream.starts_with("https://")) {
        bail!("--upstream '{upstream}' is not an http:// or https:// URL");
    }
    let signer = if args.free {
        None
    } else {
        let pay_to = args.pay_to.ok_or_else(|| {
            anyhow!("say who is paid: --pay-to ADDRESS (or serve without payment with --free)")
        })?;
        let signer = match (&args.key, args.dev_account) {
            (Some(spec), _) => keys::load_signer(&args.keystore, spec, &args.password)?,
            (None, Some(n)) if n < DEV_ACCOUNTS => dev_signer(n)
                .map_err(|e| anyhow!("cannot derive development account {n}: {e}"))?,
            (None, Some(n)) => bail!(
                "--dev-account {n} does not exist: development accounts are 0 to {}",
                DEV_ACCOUNTS - 1
            ),
            (None, None) => bail!(
                "the facilitator needs a key to settle payments: --key FILE|NAME or --dev-account N (or --free)"
            ),
        };
        Some((signer, pay_to))
    };

    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (facilitator, pay_to) = match signer {
            None => (None, Address::ZERO),
            Some((signer, pay_to)) => {
                let node = NodeClient::new(&args.rpc);
                let config = FacilitatorConfig {
                    signer,
                    fee: None,
                    settle_timeout: Duration::from_secs(args.settle_timeout),
                    clock: Arc::new(SystemClock),
                };
                let facilitator = Facilitator::connect(node, config).await.map_err(|e| {
                    anyhow!(
                        "{e}: is the node running (`mycel up`) and is --rpc {} right?",
                        args.rpc
                    )
                })?;
                (Some(Arc::new(facilitator)), pay_to)
            }
        };
        let config = GatewayConfig {
            upstream: upstream.clone(),
            pay_to,
            pricing,
            free: args.free,
            max_timeout_seconds: args.max_timeout,
        };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let local = listener.local_addr()?;
        println!("mycel gateway is running");
        println!("  api        http://{local}/v1/chat/completions  (OpenAI-compatible)");
        println!("  upstream   {upstream}");
        match &facilitator {
            Some(f) => {
                println!(
                    "  payments   x402 v2 and v1, exact scheme, mUSD on {}",
                    f.asset().network()
                );
                println!(
                    "  asset      {} ({} v{})",
                    f.asset().address,
                    f.asset().name,
                    f.asset().version
                );
                println!("  pay to     {pay_to}");
                println!(
                    "  price      {} mUSD + {} mUSD per 1k max_tokens",
                    format_amount(pricing.base, Token::Musd),
                    format_amount(pricing.per_1k_tokens, Token::Musd)
                );
                println!(
                    "  facilitator http://{local}/verify /settle /supported, signer {}",
                    f.signer_address()
                );
                println!("  node       {}", args.rpc);
            }
            None => println!("  payments   none (--free)"),
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        axum::serve(listener, router(config, facilitator))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("the gateway server stopped")
    })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,mycel_gateway=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
