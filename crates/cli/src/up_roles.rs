//! The inference subnet of `mycel up`: its setup on chain (crate::up_subnet), then two miners, a
//! validator and the x402 gateway, run in this process by the same functions `mycel miner`,
//! `mycel validator` and `mycel gateway` call, on a runtime of their own (a validator's re-runs
//! never hold up the node's consensus). Each role logs to its file under `DATA_DIR/subnet/`; the
//! console shows the banner with their URLs, and a warning if one stops.

use crate::http_limits::HttpLimitsArgs;
use crate::logging::{RoleLog, Say};
use crate::{gateway_cmd, miner_cmd, validator_cmd};
use alloy_primitives::U256;
use anyhow::{bail, Context as _, Result};
use mycel_client::api::{AgentEvent, Event, AGENT_REGISTRATION_PATH};
use mycel_types::keys::dev_signer;
use mycel_types::tx::{RegisterAgent, SetAgentURI};
use mycel_types::TxKind;
use std::fs;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

/// The subnet `mycel up` creates: its netuid on a fresh devnet, and its tempo (short, so emissions
/// show within a minute).
pub const SUBNET_NETUID: u16 = 1;
const SUBNET_TEMPO: u64 = 20;
/// Dev accounts of the subnet: the owner's coldkey and hotkey, two miners, the validator, the
/// gateway's facilitator (also the account paid, which pays the miners' shares), and the example
/// payer.
const SUBNET_OWNER: u32 = 0;
const SUBNET_OWNER_HOTKEY: u32 = 9;
const SUBNET_MINERS: [u32; 2] = [1, 2];
const SUBNET_VALIDATOR: u32 = 4;
const GATEWAY_FACILITATOR: u32 = 8;
const EXAMPLE_PAYER: u32 = 5;
/// MYC the validator stakes on itself, so it gets a validator permit.
const VALIDATOR_STAKE_MYC: u128 = 100;
/// The most MYC a devnet registration may burn.
const MAX_BURN_MYC: u128 = 10;
/// How long the roles have to finish what they are answering when the devnet stops.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What `mycel up` starts besides the chain.
#[derive(Debug, Clone)]
pub struct SubnetPlan {
    pub rpc: String,
    /// Logs and the validator's report live here (under the devnet's data dir).
    pub dir: PathBuf,
    pub gateway_addr: SocketAddr,
    /// The HTTP limits each role serves with.
    pub http: HttpLimitsArgs,
}

/// The running subnet; [`Subnet::stop`] stops its roles.
pub struct Subnet {
    stop: watch::Sender<bool>,
    done: std::sync::mpsc::Receiver<()>,
}

/// Starts the subnet on a thread of its own and returns at once; the node goes on meanwhile.
/// If it cannot start, it says why on the console and the chain keeps running.
/// The validator's routes are lent to the node's API through `attached` once it is up.
pub fn start(plan: SubnetPlan, attached: mycel_rpc::Attached) -> Result<Subnet> {
    let (stop, stopping) = watch::channel(false);
    let (finished, done) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mycel-subnet".into())
        .spawn(move || {
            if let Err(e) = run(&plan, stopping, &attached) {
                eprintln!(
                    "error: the inference subnet did not start: {e:#}\n\
                     (the chain keeps running; logs are in {}; `mycel up --chain-only` starts the \
                     chain alone)",
                    plan.dir.display()
                );
            }
            let _ = finished.send(());
        })
        .context("cannot start the subnet's thread")?;
    Ok(Subnet { stop, done })
}

impl Subnet {
    /// Asks every role to stop and waits for them (at most a little over [`STOP_GRACE`]).
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.done.recv_timeout(STOP_GRACE + Duration::from_secs(5));
    }
}

/// Sets the subnet up on chain, starts the roles, and runs them until `stopping`.
fn run(
    plan: &SubnetPlan,
    stopping: watch::Receiver<bool>,
    attached: &mycel_rpc::Attached,
) -> Result<()> {
    fs::create_dir_all(&plan.dir)
        .with_context(|| format!("cannot create {}", plan.dir.display()))?;
    let rpc = plan.rpc.as_str();
    let node = crate::client::connect(rpc)?.with_timeout(Duration::from_secs(10));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while node.status().is_err() {
        if std::time::Instant::now() > deadline {
            bail!("the node's API at {rpc} did not answer within 60 s");
        }
        if *stopping.borrow() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    crate::up_subnet::ensure_on_chain(
        &node,
        &crate::up_subnet::SubnetSetup {
            netuid: SUBNET_NETUID,
            tempo: SUBNET_TEMPO,
            owner: SUBNET_OWNER,
            owner_hotkey: SUBNET_OWNER_HOTKEY,
            validator: SUBNET_VALIDATOR,
            validator_stake: VALIDATOR_STAKE_MYC,
            max_burn: MAX_BURN_MYC,
        },
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mycel-subnet")
        .enable_all()
        .build()
        .context("cannot start the subnet's async runtime")?;
    let result = runtime.block_on(run_roles(plan, stopping, attached));
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn run_roles(
    plan: &SubnetPlan,
    mut stopping: watch::Receiver<bool>,
    attached: &mycel_rpc::Attached,
) -> Result<()> {
    let rpc = plan.rpc.as_str();
    let netuid = SUBNET_NETUID.to_string();
    let http = plan.http.to_args();
    let until_stopped = || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    };
    let mut running = Vec::new();

    eprintln!("starting two miners (the model is downloaded on first use)…");
    let mut miners = Vec::new();
    for i in SUBNET_MINERS {
        let log = RoleLog::create(&plan.dir.join(format!("miner-{i}.log")))?;
        let flags = [
            "--netuid",
            &netuid,
            "--dev-account",
            &i.to_string(),
            "--rpc",
            rpc,
            "--listen",
            "127.0.0.1:0",
        ];
        let role = miner_cmd::plan(parse_flags("miner", &flags, &http)?)?;
        miners.push((i, log, role));
    }
    // Both miners serve one copy of the model: the one their flags name.
    let model_path = miners[0].2.model_path().cloned();
    let model = tokio::task::spawn_blocking(move || {
        miner_cmd::load_model(model_path.as_ref(), &Say::Console)
    })
    .await
    .context("loading the model")??;
    let model = Arc::new(model);
    let starts = miners.into_iter().map(|(i, log, role)| {
        let span = log.span();
        let say = Say::Log(log.clone());
        let started = miner_cmd::start(role, Some(model.clone()), say, until_stopped());
        async move {
            let started = started.instrument(span.clone()).await;
            (i, log, span, started)
        }
    });
    let mut miner_urls = Vec::new();
    for (i, log, span, started) in futures::future::join_all(starts).await {
        let (addr, serving) =
            started.with_context(|| format!("miner {i} (log {})", log.path().display()))?;
        miner_urls.push(format!("http://{addr}"));
        running.push(spawn(format!("miner {i}"), &log, span, serving, &stopping));
    }

    let report = plan.dir.join("validator-report.json");
    let log = RoleLog::create(&plan.dir.join("validator.log"))?;
    let flags = [
        "--netuid",
        &netuid,
        "--dev-account",
        &SUBNET_VALIDATOR.to_string(),
        "--rpc",
        rpc,
        "--listen",
        "127.0.0.1:0",
        "--report",
        &report.display().to_string(),
    ];
    let role = validator_cmd::plan(parse_flags("validator", &flags, &http)?)?;
    let (serving, validating) = validator_cmd::start(
        role,
        Some(model.clone()),
        Say::Log(log.clone()),
        until_stopped(),
    )
    .instrument(log.span())
    .await
    .with_context(|| format!("the validator (log {})", log.path().display()))?;
    attached.attach_validator(serving.routes);
    let validator_status = serving
        .status
        .map(|addr| format!("http://{addr}/status"))
        .unwrap_or_default();
    running.push(spawn(
        "the validator".into(),
        &log,
        log.span(),
        validating,
        &stopping,
    ));

    // The gateway's operator (the facilitator's account) is paid, and pays each serving miner's
    // coldkey its share.
    let log = RoleLog::create(&plan.dir.join("gateway.log"))?;
    let pay_to = dev_signer(GATEWAY_FACILITATOR)?.address().to_string();
    let session_file = plan.dir.join("gateway-sessions.json").display().to_string();
    let flags = [
        "--netuid",
        &netuid,
        "--listen",
        &plan.gateway_addr.to_string(),
        "--rpc",
        rpc,
        "--pay-to",
        &pay_to,
        "--dev-account",
        &GATEWAY_FACILITATOR.to_string(),
        "--sessions",
        "--session-file",
        &session_file,
    ];
    let args = parse_flags("gateway", &flags, &http)?;
    let say = Say::Log(log.clone());
    // Reading the model's tokenizer is file work: off the runtime's threads.
    let role = tokio::task::spawn_blocking(move || gateway_cmd::plan(args, &say))
        .await
        .context("the gateway")??;
    let (addr, serving) = gateway_cmd::start(role, Say::Log(log.clone()), until_stopped())
        .instrument(log.span())
        .await
        .with_context(|| format!("the gateway (log {})", log.path().display()))?;
    let gateway = format!("http://{addr}");
    running.push(spawn(
        "the gateway".into(),
        &log,
        log.span(),
        serving,
        &stopping,
    ));

    // The gateway and the miners are agents too: registered (or, on a restarted devnet, pointed
    // at their new addresses), so a fresh devnet has agents to find, rate and hire.
    let node = mycel_client::NodeClient::new(rpc)?;
    let services = std::iter::once((GATEWAY_FACILITATOR, gateway.clone()))
        .chain(SUBNET_MINERS.into_iter().zip(miner_urls.iter().cloned()));
    let registering = services.map(|(key, base)| {
        let node = node.clone();
        async move {
            let signer = dev_signer(key)?;
            let uri = format!("{base}{AGENT_REGISTRATION_PATH}");
            ensure_agent(&node, &signer, uri)
                .await
                .with_context(|| format!("registering dev account {key} as an agent"))
        }
    });
    let agents = futures::future::try_join_all(registering).await?;

    print_subnet_banner(
        plan,
        &miner_urls,
        &validator_status,
        &report,
        &gateway,
        &agents,
    )?;

    let _ = stopping.wait_for(|stop| *stop).await;
    let all = futures::future::join_all(running);
    if tokio::time::timeout(STOP_GRACE, all).await.is_err() {
        eprintln!(
            "warning: a subnet role did not stop within {} s",
            STOP_GRACE.as_secs()
        );
    }
    Ok(())
}

/// Makes `key` own an agent whose registration file is `uri`: registers one, or points the agent
/// it already owns there (a restarted devnet serves on new ports). Returns the agent's id.
async fn ensure_agent(
    node: &mycel_client::NodeClient,
    key: &alloy_signer_local::PrivateKeySigner,
    uri: String,
) -> Result<u64> {
    let owned = node.agents(Some(key.address()), None, Some(1)).await?;
    let options = mycel_client::SendOptions::default();
    if let Some(agent) = owned.agents.first() {
        if agent.uri != uri {
            let id = agent.agent_id;
            let outcome = node
                .send_and_wait(key, &options, |f| {
                    TxKind::SetAgentURI(SetAgentURI {
                        from: f.from,
                        agentId: U256::from(id),
                        newURI: uri,
                        nonce: f.nonce,
                        fee: f.fee,
                    })
                })
                .await?;
            outcome.applied()?;
        }
        return Ok(agent.agent_id);
    }
    let outcome = node
        .send_and_wait(key, &options, |f| {
            TxKind::RegisterAgent(RegisterAgent {
                from: f.from,
                agentURI: uri,
                metadata: vec![],
                nonce: f.nonce,
                fee: f.fee,
            })
        })
        .await?;
    let applied = outcome.applied()?;
    applied
        .receipt
        .events
        .iter()
        .find_map(|e| match e {
            Event::Agent(AgentEvent::Registered { agent_id, .. }) => Some(*agent_id),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("RegisterAgent applied without a Registered event"))
}

/// Runs a started role in its span; says on the console if it stops before the devnet does.
fn spawn(
    name: String,
    log: &RoleLog,
    span: tracing::Span,
    role: impl Future<Output = Result<()>> + Send + 'static,
    stopping: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    let stopping = stopping.clone();
    let (what, where_) = (name, log.path().to_path_buf());
    tokio::spawn(
        async move {
            let result = role.await;
            if *stopping.borrow() {
                return;
            }
            match result {
                Ok(()) => eprintln!("warning: {what} stopped; its log is {}", where_.display()),
                Err(e) => eprintln!(
                    "warning: {what} stopped: {e:#}; its log is {}",
                    where_.display()
                ),
            }
        }
        .instrument(span),
    )
}

/// A role's flags as `mycel COMMAND FLAGS… HTTP_FLAGS…` would parse them: the same defaults
/// and checks as when it runs as its own command.
fn parse_flags<T: clap::Args + clap::FromArgMatches>(
    command: &'static str,
    flags: &[&str],
    http: &[String],
) -> Result<T> {
    let words = flags
        .iter()
        .map(|s| s.to_string())
        .chain(http.iter().cloned());
    let matches = T::augment_args(clap::Command::new(command).no_binary_name(true))
        .try_get_matches_from(words)
        .with_context(|| format!("the flags of mycel {command}"))?;
    Ok(T::from_arg_matches(&matches)?)
}

fn print_subnet_banner(
    plan: &SubnetPlan,
    miners: &[String],
    validator_status: &str,
    report: &Path,
    gateway: &str,
    agents: &[u64],
) -> anyhow::Result<()> {
    let payer = dev_signer(EXAMPLE_PAYER)?;
    let payer_key = format!("0x{}", hex::encode(payer.to_bytes()));
    let netuid = SUBNET_NETUID;
    let rpc = &plan.rpc;
    let model = "SmolLM2-135M-Instruct.Q4_1";
    let mut out = String::new();
    out.push_str(&format!(
        "\nmycel inference subnet {netuid} is running (tempo {SUBNET_TEMPO} blocks)\n\n"
    ));
    for (i, url) in SUBNET_MINERS.iter().zip(miners) {
        out.push_str(&format!("  miner      {url}/v1   (dev account {i})\n"));
    }
    out.push_str(&format!(
        "  validator  {validator_status}   (dev account {SUBNET_VALIDATOR}; report {})\n",
        report.display()
    ));
    out.push_str(&format!(
        "  gateway    {gateway}/v1   (x402, mUSD; routes to the subnet's miners, paid to dev account \
         {GATEWAY_FACILITATOR}, which pays the serving miner its share)\n"
    ));
    out.push_str(&format!(
        "  agents     {}   (ERC-8004: the gateway, then the miners; mycel agent list --rpc {})\n",
        agents
            .iter()
            .map(|id| format!("#{id}"))
            .collect::<Vec<_>>()
            .join(" "),
        plan.rpc
    ));
    out.push_str(&format!(
        "  catalogue  {gateway}/discovery/resources   (x402 discovery: what the network sells, \
         filtered: ?type=mcp&maxPrice=2000&q=words)\n"
    ));
    out.push_str(&format!("  logs       {}\n", plan.dir.display()));
    out.push_str(&format!(
        "\nmetagraph (emissions every {} blocks): mycel metagraph {netuid} --rpc {rpc}\n",
        mycel_state::subnets::EpochSchedule::new(SUBNET_NETUID, SUBNET_TEMPO).period()
    ));
    out.push_str(&format!(
        "\npay and ask through the gateway (dev account {EXAMPLE_PAYER} pays):\n  \
         mycel chat \"What is the capital of France?\" --gateway {gateway} --dev-account {EXAMPLE_PAYER} --max 0.01\n"
    ));
    out.push_str(&format!(
        "\nor from a session (a deposit once, then a signed voucher per call, claimed in batches):\n  \
         CH=$(mycel session open --to {gateway_pay_to} --amount 1 --dev-account {EXAMPLE_PAYER} --rpc {rpc})\n  \
         mycel chat \"Hi\" --session $CH --gateway {gateway} --dev-account {EXAMPLE_PAYER} --rpc {rpc}\n",
        gateway_pay_to = dev_signer(GATEWAY_FACILITATOR)?.address()
    ));
    out.push_str(&format!(
        "\nwith the npm x402 client (interop/x402-client; `npm ci` there first):\n  \
         PAYER_KEY={payer_key} \\\n    \
         node interop/x402-client/pay.mjs {gateway}/v1/chat/completions \\\n    \
         '{{\"model\":\"{model}\",\"max_tokens\":32,\"messages\":[{{\"role\":\"user\",\"content\":\"Hi\"}}]}}'\n"
    ));
    out.push_str(&format!(
        "\nthe price (a request without payment gets 402):\n  \
         curl -si {gateway}/v1/chat/completions -H 'content-type: application/json' \\\n    \
         -d '{{\"model\":\"{model}\",\"max_tokens\":32,\"messages\":[{{\"role\":\"user\",\"content\":\"Hi\"}}]}}' | head -1\n"
    ));
    out.push_str(&format!(
        "\na miner directly (no payment), with curl and a receipt check:\n  \
         curl -s {m}/v1/chat/completions -H 'content-type: application/json' \\\n    \
         -d '{{\"model\":\"{model}\",\"max_tokens\":32,\"messages\":[{{\"role\":\"user\",\"content\":\"Hi\"}}]}}' > answer.json\n  \
         mycel receipt verify answer.json --rerun\n",
        m = miners[0]
    ));
    out.push_str(&format!(
        "\nwith the Python openai client (pip install openai):\n  \
         python3 -c 'from openai import OpenAI; c = OpenAI(base_url=\"{m}/v1\", api_key=\"unused\"); \
         print(c.chat.completions.create(model=\"{model}\", max_tokens=32, messages=[{{\"role\": \"user\", \"content\": \"Hi\"}}]).choices[0].message.content)'\n",
        m = miners[0]
    ));
    print!("{out}");
    let _ = std::io::stdout().flush();
    Ok(())
}
