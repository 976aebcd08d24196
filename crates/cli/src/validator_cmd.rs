//! `mycel validator`: challenge a subnet's miners each tempo, check their receipts, re-execute a
//! sample, and set weights (crates/subnet/src/validator, docs/validator.md).

use mycel_subnet::validator::evaluate::Evaluator;
use mycel_subnet::validator::rerun::Rerunner;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy_signer_local::PrivateKeySigner as Signer;
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use mycel_client::NodeClient;
use mycel_http::ServeLimits;
use mycel_infer::Model;
use mycel_subnet::validator::{Validator, ValidatorConfig};

use crate::keys::{KeystoreArgs, PasswordArgs};
use crate::logging::Say;
use tracing::Instrument as _;

#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("hotkey_source").required(true).args(["hotkey", "dev_account"])),
    after_help = "Each tempo the validator reads the metagraph, sends every miner with an endpoint \
    --challenges requests (shipped and generated prompts, fresh seeds), checks every receipt \
    (signature by the miner's hotkey, model, request hash), re-executes --reruns answers per miner \
    with the same model, scores the miners and sets weights (commit-reveal when the subnet uses it). \
    A wrong output, a bad or missing receipt or signature, or another model scores 0.\n\n\
    Examples:\n  \
      mycel validator --netuid 1 --dev-account 4 --rpc http://127.0.0.1:8545\n  \
      mycel validator --netuid 1 --hotkey my-hotkey --listen 127.0.0.1:9100 --report report.json\n  \
      curl http://127.0.0.1:9100/status\n\n\
    Its weights count once its hotkey has a validator permit: stake on it first, e.g.\n  \
      mycel stake add --netuid 1 --hotkey-dev-account 4 --amount 100 --dev-account 4\n\
    See docs/validator.md."
)]
pub struct ValidatorArgs {
    /// The subnet to validate.
    #[arg(long, value_name = "N")]
    pub netuid: u16,
    /// A node's HTTP API.
    #[arg(
        long,
        value_name = "URL",
        env = "MYCEL_RPC",
        default_value = "http://127.0.0.1:8545"
    )]
    pub rpc: String,
    /// The validator's hotkey, which signs its weights: a key name in the keystore or a keystore
    /// file path.
    #[arg(long, value_name = "FILE|NAME")]
    pub hotkey: Option<String>,
    /// Use development account N (0-9) of the public devnet mnemonic as the hotkey. Devnets only.
    #[arg(long, value_name = "N")]
    pub dev_account: Option<u32>,
    /// The coldkey that pays the registration burn if the hotkey is not registered: a key name or
    /// keystore file [default: the hotkey pays for itself].
    #[arg(long, value_name = "FILE|NAME", conflicts_with = "coldkey_dev_account")]
    pub coldkey: Option<String>,
    /// Use development account N (0-9) as the coldkey that pays the registration burn.
    #[arg(long, value_name = "N")]
    pub coldkey_dev_account: Option<u32>,
    /// The GGUF model the subnet serves, used to re-execute answers [default: SmolLM2-135M-Instruct
    /// Q4_1, downloaded on first use into $MYCEL_MODEL_CACHE].
    #[arg(long, env = "MYCEL_MODEL", value_name = "GGUF")]
    pub model: Option<PathBuf>,
    /// Challenges per miner per round.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub challenges: usize,
    /// Answers per miner re-executed locally per round (chosen at random after they arrive).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub reruns: usize,
    /// max_tokens of each challenge (small keeps rounds short).
    #[arg(long, value_name = "N", default_value_t = 12)]
    pub max_tokens: u32,
    /// Seconds a miner has to answer one challenge before it counts as unanswered.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub request_timeout: u64,
    /// Stop after N rounds [default: run until interrupted].
    #[arg(long, value_name = "N")]
    pub rounds: Option<u64>,
    /// Serve GET /status (the last round's findings as JSON), /metrics (Prometheus), /health,
    /// /reports/{hash} (verdicts put on chain) and POST /rerun (re-run an answer anyone sends:
    /// registered miners' receipts only, one at a time) on this address.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Limits of the --listen status server.
    #[command(flatten)]
    pub http: crate::http_limits::HttpLimitsArgs,
    /// Seconds between looks at the chain for validation requests addressed to the hotkey and
    /// delivered jobs that name it as evaluator (both answered by re-running the inference).
    #[arg(long, value_name = "SECONDS", default_value_t = 2)]
    pub evaluate_interval: u64,
    /// Write the status JSON to this file after every round.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
}

pub fn run(args: ValidatorArgs) -> Result<()> {
    let plan = plan(args)?;
    crate::logging::init(crate::logging::SUBNET);
    crate::run_role(|interrupted| start(plan, None, Say::Console, interrupted))
}

/// A validator's flags, checked, with its keys.
pub struct ValidatorPlan {
    args: ValidatorArgs,
    hotkey: Signer,
    coldkey: Signer,
    limits: ServeLimits,
}

/// Checks the flags and finds the keys (may ask for a keystore passphrase).
pub fn plan(args: ValidatorArgs) -> Result<ValidatorPlan> {
    let limits = args.http.limits()?;
    if args.challenges == 0 {
        bail!("--challenges must be at least 1");
    }
    if args.reruns > args.challenges {
        bail!(
            "--reruns {} is more than --challenges {}: a validator can only re-run answers it got",
            args.reruns,
            args.challenges
        );
    }
    if args.max_tokens == 0 {
        bail!("--max-tokens must be at least 1");
    }
    if args.request_timeout == 0 {
        bail!("--request-timeout must be at least 1 second");
    }
    if args.rounds == Some(0) {
        bail!("--rounds must be at least 1");
    }
    let key = |spec: &Option<String>, dev, flag| {
        crate::signer::resolve(spec.as_deref(), dev, flag, &args.keystore, &args.password)
    };
    let hotkey = key(&args.hotkey, args.dev_account, "--dev-account")?.ok_or_else(|| {
        anyhow!("say which hotkey signs weights: --hotkey FILE|NAME or --dev-account N")
    })?;
    let coldkey = key(
        &args.coldkey,
        args.coldkey_dev_account,
        "--coldkey-dev-account",
    )?
    .unwrap_or_else(|| hotkey.clone());
    Ok(ValidatorPlan {
        args,
        hotkey,
        coldkey,
        limits,
    })
}

/// What a started validator serves: the address of its status server (if it has one), and its
/// routes (`/status`, `/metrics`, `/health`, `/reports/{hash}`, `POST /rerun`) for another server
/// to serve too (`mycel up`'s node, under `/v1/validator/`).
pub struct Serving {
    pub status: Option<SocketAddr>,
    pub routes: axum::Router,
}

/// Starts a validator: checks the subnet, loads `model` (or the one its flags name), serves its
/// status if asked, and says so. Returns what it serves and the future that validates until its
/// rounds are done or `shutdown`.
pub async fn start(
    plan: ValidatorPlan,
    model: Option<Arc<Model>>,
    say: Say,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Serving, impl Future<Output = Result<()>> + Send)> {
    let ValidatorPlan {
        args,
        hotkey,
        coldkey,
        limits,
    } = plan;
    let node = NodeClient::new(&args.rpc).map_err(|e| anyhow!("--rpc: {e}"))?;
    node.subnet(args.netuid)
        .await
        .map_err(|e| anyhow!("{e} (is the node at {} running?)", args.rpc))?;
    let model = match model {
        Some(model) => model,
        None => {
            let (path, progress) = (args.model.clone(), say.clone());
            let loaded = tokio::task::spawn_blocking(move || {
                crate::miner_cmd::load_model(path.as_ref(), &progress)
            })
            .await
            .context("loading the model")??;
            Arc::new(loaded)
        }
    };
    let config = ValidatorConfig {
        netuid: args.netuid,
        challenges: args.challenges,
        reruns: args.reruns,
        max_tokens: args.max_tokens,
        request_timeout: Duration::from_secs(args.request_timeout),
        tx_timeout: Duration::from_secs(60),
        rounds: args.rounds,
        report: args.report.clone(),
    };
    let address = hotkey.address();
    let mut evaluator = Evaluator::new(node.clone(), hotkey.clone(), Arc::clone(&model));
    let rerunner = Rerunner::new(node.clone(), Arc::clone(&model));
    let mut validator = Validator::new(config, node, hotkey, coldkey, Arc::clone(&model));
    let (stop_status, stopped) = tokio::sync::oneshot::channel::<()>();
    // The status server's socket and address, bound before anything serves.
    let listener = match args.listen {
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let bound = listener
                .local_addr()
                .context("cannot read the bound address")?;
            Some((listener, bound))
        }
        None => None,
    };
    if let Some((_, bound)) = &listener {
        evaluator = evaluator.serving_reports_at(format!("http://{bound}"));
    }
    let routes = validator
        .router()
        .merge(evaluator.router())
        .merge(rerunner.router());
    let status = listener.as_ref().map(|(_, bound)| *bound);
    if let Some((listener, bound)) = listener {
        let router = routes.clone();
        tokio::spawn(
            async move {
                let stop = async {
                    let _ = stopped.await;
                };
                if let Err(e) = mycel_http::serve(listener, router, limits, stop).await {
                    tracing::error!(error = %e, "the status server stopped");
                }
            }
            .in_current_span(),
        );
        say.out(&format!("validator status on http://{bound}/status"));
    }
    say.out(&format!(
        "mycel validator on subnet {} (hotkey {}, model 0x{}, node {})",
        args.netuid,
        address.to_checksum(None),
        model.id().to_hex(),
        args.rpc
    ));
    let interval = Duration::from_secs(args.evaluate_interval.max(1));
    let validating = async move {
        let result = tokio::select! {
            result = validator.run() => result.context("validating"),
            () = evaluator.run(interval) => Ok(()),
            () = shutdown => Ok(()),
        };
        let _ = stop_status.send(());
        result
    };
    Ok((Serving { status, routes }, validating.in_current_span()))
}
