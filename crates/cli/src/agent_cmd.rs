//! `mycel agent`: ERC-8004 agents on the chain (docs/agents.md): register one, find and show
//! them, rate them (with a payment as proof), answer and revoke feedback, set the agent's
//! verified wallet, hand an agent over, and read an agent's history.
//!
//! Transactions are signed here and followed until final; `--json` prints the node's answers.

use crate::client::{print_json, ClientArgs};
use crate::send::{self, SendArgs};
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_signer::SignerSync;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use mycel_client::api::{self, AgentEvent, Event, AGENT_REGISTRATION_PATH};
use mycel_types::tx::{
    AgentWalletSet, AppendResponse, ApproveAgent, GiveFeedback, MetadataEntry, RegisterAgent,
    RevokeFeedback, SetAgentMetadata, SetAgentOperator, SetAgentURI, SetAgentWallet, TransferAgent,
    ValidationRequest,
};
use mycel_types::{format_amount, Token, TxKind};
use serde::{Deserialize, Serialize};

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Register an agent owned by the signer; prints its id.
    Register(RegisterArgs),
    /// Show an agent: owner, wallet, URI, metadata, feedback count.
    Show(AgentArgs),
    /// List registered agents in id order.
    List(ListArgs),
    /// Set an agent's URI (its registration file).
    SetUri(SetUriArgs),
    /// Set (or with an empty value delete) one metadata entry of an agent.
    SetMetadata(SetMetadataArgs),
    /// As the new wallet: sign consent to be an agent's wallet (prints JSON for `wallet`).
    Consent(ConsentArgs),
    /// Set an agent's verified wallet from a consent, or unset it.
    Wallet(WalletArgs),
    /// Give an agent to another owner (its wallet and approval are cleared).
    Transfer(TransferArgs),
    /// Let an address act for one agent (zero address: nobody).
    Approve(ApproveArgs),
    /// Let an operator act for all the signer's agents, or stop it (--revoke).
    Operator(OperatorArgs),
    /// Rate an agent; --payment-nonce cites an x402 payment you made to it.
    Feedback(FeedbackArgs),
    /// Revoke your feedback number INDEX on an agent.
    Revoke(RevokeArgs),
    /// Append a response to a client's feedback (e.g. the agent answering a review).
    Respond(RespondArgs),
    /// Show an agent's reputation summary (ERC-8004 getSummary) and, with --list, its feedback.
    Reputation(ReputationArgs),
    /// Show the transactions that did something to an agent, oldest first.
    History(HistoryArgs),
    /// Ask a validator to check something your agent did (e.g. an inference answer at --uri);
    /// mycel's subnet validators answer by re-running it. Prints the request hash.
    Validate(ValidateArgs),
    /// Show a validation request and its latest response.
    Validation(ValidationArgs),
    /// List the validation requests about an agent.
    Validations(AgentArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[arg(long, value_name = "ID")]
    pub agent: u64,
    /// The validator asked (e.g. a subnet validator's hotkey).
    #[arg(long, value_name = "ADDRESS")]
    pub validator: Address,
    /// Where the payload is (for an inference: the completion JSON with its receipt).
    #[arg(long, value_name = "URL")]
    pub uri: String,
    /// keccak-256 of the payload [default: fetched from --uri and hashed here].
    #[arg(long, value_name = "HASH")]
    pub hash: Option<B256>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ValidationArgs {
    /// The request hash.
    pub hash: B256,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The URL of the agent's registration file (ERC-8004 registration-v1 JSON).
    #[arg(
        long,
        value_name = "URL",
        default_value = "",
        conflicts_with = "service"
    )]
    pub uri: String,
    /// A running service (a mycel gateway or miner, or any server of ERC-8004 registration files):
    /// its file at URL/.well-known/agent-registration.json is fetched, checked and registered.
    #[arg(long, value_name = "URL")]
    pub service: Option<String>,
    /// A metadata entry KEY=VALUE (VALUE as text, or 0x-hex); repeat for more.
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent id.
    pub agent: u64,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the agents this address owns.
    #[arg(long, value_name = "ADDRESS")]
    pub owner: Option<Address>,
    /// Start from this agent id.
    #[arg(long, value_name = "ID")]
    pub from: Option<u64>,
    /// At most this many (1-100).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SetUriArgs {
    #[arg(long, value_name = "ID")]
    pub agent: u64,
    #[arg(long, value_name = "URL")]
    pub uri: String,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct SetMetadataArgs {
    #[arg(long, value_name = "ID")]
    pub agent: u64,
    /// KEY=VALUE (VALUE as text, or 0x-hex; empty deletes the key).
    #[arg(value_name = "KEY=VALUE")]
    pub entry: String,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ConsentArgs {
    #[arg(long, value_name = "ID")]
    pub agent: u64,
    /// The agent's owner (the consent names it).
    #[arg(long, value_name = "ADDRESS")]
    pub owner: Address,
    /// Seconds the consent stays valid (at most 300, ERC-8004's limit).
    #[arg(long, value_name = "SECONDS", default_value_t = 240)]
    pub valid_for: u64,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct WalletArgs {
    #[arg(long, value_name = "ID")]
    pub agent: u64,
    /// The consent JSON `mycel agent consent` printed (or a file holding it).
    #[arg(long, value_name = "JSON|FILE", conflicts_with = "unset")]
    pub consent: Option<String>,
    /// Unset the wallet instead.
    #[arg(long)]
    pub unset: bool,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    #[arg(long, value_name = "ID")]
    pub agent: u64,
    #[arg(long, value_name = "ADDRESS")]
    pub to: Address,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[arg(long, value_name = "ID")]
    pub agent: u64,
    /// Who may act for the agent (0x000…0: nobody).
    #[arg(long, value_name = "ADDRESS")]
    pub approved: Address,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct OperatorArgs {
    #[arg(long, value_name = "ADDRESS")]
    pub operator: Address,
    /// Take the operator's rights away instead.
    #[arg(long)]
    pub revoke: bool,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct FeedbackArgs {
    #[arg(long, value_name = "ID")]
    pub agent: u64,
    /// The rating, a decimal number (e.g. 87, 99.5, -3).
    #[arg(long, value_name = "NUMBER", allow_hyphen_values = true)]
    pub value: String,
    #[arg(long, default_value = "")]
    pub tag1: String,
    #[arg(long, default_value = "")]
    pub tag2: String,
    /// The endpoint you used.
    #[arg(long, default_value = "")]
    pub endpoint: String,
    /// The URI of a longer feedback file.
    #[arg(long, value_name = "URL", default_value = "")]
    pub feedback_uri: String,
    /// keccak-256 of that file (0x + 32 bytes).
    #[arg(long, value_name = "HASH")]
    pub feedback_hash: Option<B256>,
    /// The EIP-3009 nonce of a payment you made to the agent (x402's `authorization.nonce`):
    /// the chain checks it and marks the feedback as paid.
    #[arg(long, value_name = "NONCE", conflicts_with = "job")]
    pub payment_nonce: Option<B256>,
    /// A completed job of yours the agent did: the chain checks it and marks the feedback as
    /// paid with its budget.
    #[arg(long, value_name = "ID")]
    pub job: Option<u64>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[arg(long, value_name = "ID")]
    pub agent: u64,
    /// Your feedback's number (1, 2, … on this agent).
    #[arg(long, value_name = "INDEX")]
    pub index: u64,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RespondArgs {
    #[arg(long, value_name = "ID")]
    pub agent: u64,
    /// The client whose feedback this answers.
    #[arg(long, value_name = "ADDRESS")]
    pub client_address: Address,
    #[arg(long, value_name = "INDEX")]
    pub index: u64,
    #[arg(long, value_name = "URL", default_value = "")]
    pub response_uri: String,
    #[arg(long, value_name = "HASH")]
    pub response_hash: Option<B256>,
    #[command(flatten)]
    pub send: SendArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ReputationArgs {
    /// The agent id.
    pub agent: u64,
    /// Count only these clients (repeat; ERC-8004 asks callers to name the clients they trust).
    #[arg(long = "from", value_name = "ADDRESS")]
    pub clients: Vec<Address>,
    #[arg(long, default_value = "")]
    pub tag1: String,
    #[arg(long, default_value = "")]
    pub tag2: String,
    /// Only feedback that cites a payment, weighted by the amount paid.
    #[arg(long)]
    pub verified: bool,
    /// Also list the feedback (first page).
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The agent id.
    pub agent: u64,
    /// Start from this position (a previous page's next cursor).
    #[arg(long, value_name = "N")]
    pub cursor: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What `mycel agent consent` prints and `mycel agent wallet --consent` reads.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Consent {
    agent_id: u64,
    new_wallet: Address,
    owner: Address,
    deadline: u64,
    signature: Bytes,
}

pub fn run(command: AgentCommand) -> Result<()> {
    match command {
        AgentCommand::Register(args) => register(args),
        AgentCommand::Show(args) => show(&args.client, args.agent),
        AgentCommand::List(args) => list(args),
        AgentCommand::SetUri(args) => {
            let (id, uri) = (args.agent, args.uri.clone());
            submit(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::SetAgentURI(SetAgentURI {
                    from,
                    agentId: U256::from(id),
                    newURI: uri,
                    nonce,
                    fee,
                })
            })?;
            show(&args.client, id)
        }
        AgentCommand::SetMetadata(args) => {
            let id = args.agent;
            let entry = metadata_entry(&args.entry)?;
            submit(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::SetAgentMetadata(SetAgentMetadata {
                    from,
                    agentId: U256::from(id),
                    metadataKey: entry.metadataKey,
                    metadataValue: entry.metadataValue,
                    nonce,
                    fee,
                })
            })?;
            show(&args.client, id)
        }
        AgentCommand::Consent(args) => consent(args),
        AgentCommand::Wallet(args) => wallet(args),
        AgentCommand::Transfer(args) => {
            let (id, to) = (args.agent, args.to);
            submit(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::TransferAgent(TransferAgent {
                    from,
                    to,
                    agentId: U256::from(id),
                    nonce,
                    fee,
                })
            })?;
            show(&args.client, id)
        }
        AgentCommand::Approve(args) => {
            let (id, approved) = (args.agent, args.approved);
            submit(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::ApproveAgent(ApproveAgent {
                    from,
                    approved,
                    agentId: U256::from(id),
                    nonce,
                    fee,
                })
            })?;
            show(&args.client, id)
        }
        AgentCommand::Operator(args) => {
            let (operator, approved) = (args.operator, !args.revoke);
            submit(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::SetAgentOperator(SetAgentOperator {
                    from,
                    operator,
                    approved,
                    nonce,
                    fee,
                })
            })
            .and_then(|events| print_events(&args.client, &events))
        }
        AgentCommand::Feedback(args) => feedback(args),
        AgentCommand::Revoke(args) => {
            let (id, index) = (args.agent, args.index);
            submit(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::RevokeFeedback(RevokeFeedback {
                    from,
                    agentId: U256::from(id),
                    feedbackIndex: index,
                    nonce,
                    fee,
                })
            })
            .and_then(|events| print_events(&args.client, &events))
        }
        AgentCommand::Respond(args) => {
            let (id, client, index) = (args.agent, args.client_address, args.index);
            let (uri, hash) = (
                args.response_uri.clone(),
                args.response_hash.unwrap_or_default(),
            );
            submit(&args.client, &args.send, move |from, nonce, fee| {
                TxKind::AppendResponse(AppendResponse {
                    from,
                    agentId: U256::from(id),
                    clientAddress: client,
                    feedbackIndex: index,
                    responseURI: uri,
                    responseHash: hash,
                    nonce,
                    fee,
                })
            })
            .and_then(|events| print_events(&args.client, &events))
        }
        AgentCommand::Reputation(args) => reputation(args),
        AgentCommand::History(args) => history(args),
        AgentCommand::Validate(args) => validate(args),
        AgentCommand::Validation(args) => {
            let v = args.client.connect()?.validation(args.hash)?;
            if args.client.json {
                return print_json(&v);
            }
            print_validation(&v);
            Ok(())
        }
        AgentCommand::Validations(args) => {
            let list = args.client.connect()?.agent_validations(args.agent, None)?;
            if args.client.json {
                return print_json(&list);
            }
            for v in &list.validations {
                print_validation(v);
            }
            Ok(())
        }
    }
}

/// Signs, submits and follows what `build` makes ([`send::submit_for_events`]); the agent
/// events of its receipt.
fn submit(
    client: &ClientArgs,
    args: &SendArgs,
    build: impl FnOnce(Address, u64, U256) -> TxKind,
) -> Result<Vec<AgentEvent>> {
    Ok(send::submit_for_events(client, args, build)?
        .into_iter()
        .filter_map(Event::into_agent)
        .collect())
}

/// With `--json`, what the transaction did (its agent events).
fn print_events(client: &ClientArgs, events: &[AgentEvent]) -> Result<()> {
    if client.json {
        print_json(&events)?;
    }
    Ok(())
}

/// `KEY=VALUE`, the value as 0x-hex if it is, else as UTF-8 text.
fn metadata_entry(text: &str) -> Result<MetadataEntry> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("metadata '{text}' is not KEY=VALUE"))?;
    let value = match value.strip_prefix("0x") {
        Some(h) => {
            hex::decode(h).with_context(|| format!("metadata value '{value}' is not hex"))?
        }
        None => value.as_bytes().to_vec(),
    };
    Ok(MetadataEntry {
        metadataKey: key.to_string(),
        metadataValue: value.into(),
    })
}

fn register(args: RegisterArgs) -> Result<()> {
    let metadata = args
        .metadata
        .iter()
        .map(|m| metadata_entry(m))
        .collect::<Result<Vec<_>>>()?;
    let uri = match &args.service {
        Some(base) => {
            let url = format!("{}{AGENT_REGISTRATION_PATH}", base.trim_end_matches('/'));
            let file = fetch_registration(&url)?;
            if !args.client.json {
                eprintln!(
                    "{url}: \"{}\", {} services, x402 {}",
                    file.name,
                    file.services.len(),
                    if file.x402_support { "yes" } else { "no" }
                );
            }
            url
        }
        None => args.uri.clone(),
    };
    let events = submit(&args.client, &args.send, move |from, nonce, fee| {
        TxKind::RegisterAgent(RegisterAgent {
            from,
            agentURI: uri,
            metadata,
            nonce,
            fee,
        })
    })?;
    let id = events.iter().find_map(|e| match e {
        AgentEvent::Registered { agent_id, .. } => Some(*agent_id),
        _ => None,
    });
    match id {
        Some(id) if args.client.json => show(&args.client, id),
        Some(id) => {
            println!("{id}");
            eprintln!("registered agent {id}: see it with `mycel agent show {id}`");
            Ok(())
        }
        None => Ok(()),
    }
}

fn validate(args: ValidateArgs) -> Result<()> {
    let hash = match args.hash {
        Some(h) => h,
        None => alloy_primitives::keccak256(fetch(&args.uri)?),
    };
    let (id, validator, uri) = (args.agent, args.validator, args.uri.clone());
    submit(&args.client, &args.send, move |from, nonce, fee| {
        TxKind::ValidationRequest(ValidationRequest {
            from,
            validator,
            agentId: U256::from(id),
            requestURI: uri,
            requestHash: hash,
            nonce,
            fee,
        })
    })?;
    if args.client.json {
        return print_json(&args.client.connect()?.validation(hash)?);
    }
    println!("{hash}");
    eprintln!(
        "asked {validator} to validate it: see the answer with `mycel agent validation {hash}`"
    );
    Ok(())
}

fn print_validation(v: &api::Validation) {
    println!("validation {} (agent {})", v.request_hash, v.agent_id);
    println!("  validator  {}", v.validator);
    println!("  request    {}", v.request_uri);
    match v.response {
        Some(r) => println!(
            "  response   {r}/100 (answered {} times, tag {:?}) {}",
            v.responses, v.tag, v.response_uri
        ),
        None => println!("  response   none yet"),
    }
}

/// The body at `url` (at most 1 MiB, within 10 s).
fn fetch(url: &str) -> Result<Vec<u8>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = fetch_client()?;
    runtime
        .block_on(mycel_client::agents::fetch_bounded(&http, url, 1 << 20))
        .map_err(|e| anyhow!(e))
}

/// How payloads named by agents are fetched: within 10 s.
fn fetch_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?)
}

/// The registration file at `url`, which must be ERC-8004 `registration-v1` JSON.
fn fetch_registration(url: &str) -> Result<api::AgentRegistration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = fetch_client()?;
    runtime
        .block_on(mycel_client::agents::fetch_registration(
            &http,
            url,
            1 << 20,
        ))
        .map_err(|e| match e {
            mycel_client::agents::RegistrationError::Unreachable(why) => {
                anyhow!(why).context(format!("is the service at {url} running?"))
            }
            other => anyhow!(other),
        })
}

fn show(client: &ClientArgs, id: u64) -> Result<()> {
    let a = client.connect()?.agent(id)?;
    if client.json {
        return print_json(&a);
    }
    print_agent(&a);
    Ok(())
}

fn print_agent(a: &api::Agent) {
    let opt = |a: Option<Address>| a.map_or("-".to_string(), |a| a.to_string());
    println!("agent {} ({})", a.agent_id, a.agent_registry);
    println!("  owner      {}", a.owner);
    println!("  wallet     {}", opt(a.wallet));
    println!("  approved   {}", opt(a.approved));
    println!(
        "  uri        {}",
        if a.uri.is_empty() { "-" } else { &a.uri }
    );
    println!("  registered block {}", a.registered_height);
    println!(
        "  feedback   {} from {} clients",
        a.feedback_count, a.client_count
    );
    for (k, v) in &a.metadata {
        let shown = hex::decode(v.trim_start_matches("0x"))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|s| !s.chars().any(char::is_control))
            .unwrap_or_else(|| v.clone());
        println!("  meta {k} = {shown}");
    }
}

fn list(args: ListArgs) -> Result<()> {
    let page = args
        .client
        .connect()?
        .agents(args.owner, args.from, args.limit)?;
    if args.client.json {
        return print_json(&page);
    }
    if page.agents.is_empty() {
        println!("no agents (register one with `mycel agent register --uri URL`)");
    }
    for a in &page.agents {
        println!(
            "{:>5}  {}  {:>4} feedback  {}",
            a.agent_id,
            a.owner,
            a.feedback_count,
            if a.uri.is_empty() { "-" } else { &a.uri }
        );
    }
    if let Some(next) = page.next_cursor {
        eprintln!("more: mycel agent list --from {next}");
    }
    Ok(())
}

fn consent(args: ConsentArgs) -> Result<()> {
    if args.valid_for > 300 {
        bail!("--valid-for {} is over ERC-8004's 300 s", args.valid_for);
    }
    let signer = args.send.signer.load()?;
    let node = args.client.connect()?;
    let chain_id = node.chain_params()?.chain_id;
    // The deadline counts from the chain's latest block time, which the chain checks it against.
    let now = node.latest_block()?.timestamp_ms / 1000;
    let deadline = now + args.valid_for;
    let message = AgentWalletSet {
        agentId: U256::from(args.agent),
        newWallet: signer.address(),
        owner: args.owner,
        deadline: U256::from(deadline),
    };
    let signature = signer.sign_hash_sync(&message.signing_hash(chain_id))?;
    print_json(&Consent {
        agent_id: args.agent,
        new_wallet: signer.address(),
        owner: args.owner,
        deadline,
        signature: signature.as_bytes().to_vec().into(),
    })
}

fn wallet(args: WalletArgs) -> Result<()> {
    let id = args.agent;
    let (new_wallet, deadline, signature) = match (&args.consent, args.unset) {
        (_, true) => (Address::ZERO, 0, Bytes::new()),
        (Some(text), false) => {
            let body = if text.trim_start().starts_with('{') {
                text.clone()
            } else {
                std::fs::read_to_string(text).with_context(|| format!("cannot read {text}"))?
            };
            let c: Consent = serde_json::from_str(&body)
                .context("--consent is not what `mycel agent consent` prints")?;
            if c.agent_id != id {
                bail!("the consent is for agent {}, not {id}", c.agent_id);
            }
            (c.new_wallet, c.deadline, c.signature)
        }
        (None, false) => bail!("give --consent (from `mycel agent consent`) or --unset"),
    };
    submit(&args.client, &args.send, move |from, nonce, fee| {
        TxKind::SetAgentWallet(SetAgentWallet {
            from,
            agentId: U256::from(id),
            newWallet: new_wallet,
            deadline: U256::from(deadline),
            signature,
            nonce,
            fee,
        })
    })?;
    show(&args.client, id)
}

/// A decimal number as (value, decimals): "99.5" → (995, 1).
fn parse_value(text: &str) -> Result<(i128, u8)> {
    let bad = || anyhow!("--value '{text}' is not a decimal number like 87, 99.5 or -3");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let decimals = u8::try_from(frac.len()).map_err(|_| bad())?;
    if decimals > 18 {
        bail!("--value '{text}' has more than 18 decimals");
    }
    let magnitude: i128 = format!("{whole}{frac}").parse().map_err(|_| bad())?;
    Ok((if negative { -magnitude } else { magnitude }, decimals))
}

fn feedback(args: FeedbackArgs) -> Result<()> {
    let (value, decimals) = parse_value(&args.value)?;
    let id = args.agent;
    let (tag1, tag2, endpoint, uri) = (
        args.tag1.clone(),
        args.tag2.clone(),
        args.endpoint.clone(),
        args.feedback_uri.clone(),
    );
    let (hash, payment) = (
        args.feedback_hash.unwrap_or_default(),
        match args.job {
            Some(job) => mycel_state::agents::cite_job(job),
            None => args.payment_nonce.unwrap_or_default(),
        },
    );
    let events = submit(&args.client, &args.send, move |from, nonce, fee| {
        TxKind::GiveFeedback(GiveFeedback {
            from,
            agentId: U256::from(id),
            value,
            valueDecimals: decimals,
            tag1,
            tag2,
            endpoint,
            feedbackURI: uri,
            feedbackHash: hash,
            paymentNonce: payment,
            nonce,
            fee,
        })
    })?;
    if args.client.json {
        return print_events(&args.client, &events);
    }
    for e in events {
        if let AgentEvent::FeedbackGiven { index, paid, .. } = e {
            if !args.client.json {
                match paid {
                    Some(p) => eprintln!(
                        "feedback {index} on agent {id}, verified payment of {} mUSD",
                        format_amount(p, Token::Musd)
                    ),
                    None => eprintln!("feedback {index} on agent {id}"),
                }
            }
        }
    }
    Ok(())
}

fn reputation(args: ReputationArgs) -> Result<()> {
    let node = args.client.connect()?;
    let s = node.reputation(
        args.agent,
        args.clients.clone(),
        args.tag1.clone(),
        args.tag2.clone(),
        args.verified,
    )?;
    let list = if args.list {
        Some(node.agent_feedback(args.agent, None, None)?)
    } else {
        None
    };
    if args.client.json {
        print_json(&s)?;
        if let Some(list) = list {
            print_json(&list)?;
        }
        return Ok(());
    }
    println!(
        "agent {}: {} feedback{}, average {}{}",
        s.agent_id,
        s.count,
        if s.verified_only {
            " with verified payments"
        } else {
            ""
        },
        s.average,
        if s.verified_only {
            format!(
                " (weighted by {} mUSD paid)",
                format_amount(s.paid_total, Token::Musd)
            )
        } else {
            String::new()
        }
    );
    for f in list.map(|l| l.feedback).unwrap_or_default() {
        let value = fixed_text(&f.value, f.value_decimals);
        println!(
            "  {} #{:<3} {:>8}  {}{}{}{}",
            f.client,
            f.index,
            value,
            [f.tag1.as_str(), f.tag2.as_str()]
                .iter()
                .filter(|t| !t.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("/"),
            f.paid
                .map(|p| format!("  paid {} mUSD", format_amount(p, Token::Musd)))
                .unwrap_or_default(),
            if f.revoked { "  (revoked)" } else { "" },
            if f.responses.is_empty() {
                String::new()
            } else {
                format!("  {} responses", f.responses.len())
            },
        );
    }
    Ok(())
}

/// An integer string with `decimals` decimals as a decimal number ("9950", 2 → "99.5").
fn fixed_text(value: &str, decimals: u8) -> String {
    let (sign, digits) = match value.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", value),
    };
    let d = decimals as usize;
    if d == 0 {
        return value.to_string();
    }
    let padded = format!("{digits:0>width$}", width = d + 1);
    let (whole, frac) = padded.split_at(padded.len() - d);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{frac}")
    }
}

fn history(args: HistoryArgs) -> Result<()> {
    let h = args
        .client
        .connect()?
        .agent_events(args.agent, args.cursor)?;
    if args.client.json {
        return print_json(&h);
    }
    for tx in &h.txs {
        for e in &tx.events {
            println!(
                "block {:>6}  {}  {}",
                tx.height,
                tx.hash,
                serde_json::to_string(e)?
            );
        }
    }
    if let Some(next) = h.next_cursor {
        eprintln!("more: mycel agent history {} --cursor {next}", args.agent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_integer_and_decimals() {
        assert_eq!(parse_value("87").unwrap(), (87, 0));
        assert_eq!(parse_value("99.5").unwrap(), (995, 1));
        assert_eq!(parse_value("-3.25").unwrap(), (-325, 2));
        assert_eq!(parse_value(".5").unwrap(), (5, 1));
        for bad in ["", "-", "1e3", "1.2.3", "x", "1.0000000000000000001"] {
            assert!(parse_value(bad).is_err(), "{bad}");
        }
        assert_eq!(fixed_text("9950", 2), "99.5");
        assert_eq!(fixed_text("-5", 2), "-0.05");
        assert_eq!(fixed_text("100", 2), "1");
        assert_eq!(fixed_text("7", 0), "7");
    }

    #[test]
    fn metadata_reads_text_and_hex() {
        let e = metadata_entry("model=smollm2").unwrap();
        assert_eq!(
            (e.metadataKey.as_str(), e.metadataValue.as_ref()),
            ("model", &b"smollm2"[..])
        );
        assert_eq!(
            metadata_entry("k=0x01ff").unwrap().metadataValue.as_ref(),
            &[1, 255]
        );
        assert!(metadata_entry("novalue").is_err());
    }
}
