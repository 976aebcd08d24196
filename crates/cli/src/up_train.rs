//! The training subnet of `mycel up --train`: a subnet owned by development account
//! [`TRAIN_OWNER`] running a run of the tiny model (docs/training.md), with one validator (the
//! run's aggregator, also the subnet's owner hotkey) and N miners, each with a key of its own in
//! `DATA_DIR/train/` (mode 0600) funded from the owner's account. A resumed devnet finds its
//! subnet and run on chain and carries on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::U256;
use alloy_signer_local::PrivateKeySigner;
use anyhow::{bail, Context as _, Result};
use mycel_client::NodeClient;
use mycel_train::roles::{self, miner, validator, RunSetup, Say};
use mycel_train::run::RunSpec;
use mycel_types::tx::{RegisterSubnet, SetSubnetParams};
use mycel_types::{Token, Transfer, TxKind};
use tokio::sync::watch;

/// The development account that owns the training subnet and funds its roles' keys.
const TRAIN_OWNER: u32 = 9;
/// MYC sent to each role's key: registration burns and fees for a long devnet.
const KEY_FUNDING_MYC: u128 = 1_000;
/// Blocks of commits and of reveals per round (1 s blocks): the tiny model's 8 inner steps take
/// 10–40 s on two shared cores, the validator's scoring and re-run about as long again.
const ROUND_BLOCKS: u64 = 60;
const REVEAL_BLOCKS: u64 = 10;

/// What `mycel up --train` starts.
#[derive(Debug, Clone)]
pub struct TrainPlan {
    pub rpc: String,
    pub dir: PathBuf,
    pub miners: u16,
    /// The inference subnet `mycel up` creates first: its netuid is fixed, so the training
    /// subnet is created after it.
    pub after_subnet: Option<u16>,
}

/// The running training roles.
pub struct Training {
    stop: watch::Sender<bool>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Training {
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.done.recv_timeout(Duration::from_secs(15));
    }
}

/// Starts the training subnet on a thread of its own and returns at once.
pub fn start(plan: TrainPlan) -> Result<Training> {
    let (stop, stopping) = watch::channel(false);
    let (finished, done) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mycel-train".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("mycel-train")
                .enable_all()
                .build();
            let result = match runtime {
                Ok(runtime) => {
                    let result = runtime.block_on(run(&plan, stopping));
                    runtime.shutdown_timeout(Duration::from_secs(2));
                    result
                }
                Err(e) => Err(e.into()),
            };
            if let Err(e) = result {
                eprintln!(
                    "error: the training subnet did not start: {e:#}\n(the chain keeps running)"
                );
            }
            let _ = finished.send(());
        })
        .context("cannot start the training subnet's thread")?;
    Ok(Training { stop, done })
}

async fn run(plan: &TrainPlan, mut stopping: watch::Receiver<bool>) -> Result<()> {
    std::fs::create_dir_all(&plan.dir)
        .with_context(|| format!("cannot create {}", plan.dir.display()))?;
    let say: Say = Arc::new(|line| eprintln!("[train] {line}"));
    let node = NodeClient::new(&plan.rpc)?;
    let setup = async {
        wait_for_storage(&node).await?;
        if let Some(netuid) = plan.after_subnet {
            wait_for_subnet(&node, netuid).await?;
        }
        let owner = crate::signer::dev_account(TRAIN_OWNER, "training subnet owner")?;
        let validator_key = crate::up_storage::devnet_key(&plan.dir.join("validator.json"))?;
        let miner_keys = (0..plan.miners)
            .map(|k| crate::up_storage::devnet_key(&plan.dir.join(format!("miner-{k}.json"))))
            .collect::<Result<Vec<_>>>()?;
        for key in std::iter::once(&validator_key).chain(&miner_keys) {
            fund(&node, &owner, key).await?;
        }
        let netuid = ensure_subnet(&node, &owner, &validator_key).await?;
        for key in &miner_keys {
            mycel_subnet::validator::chain::ensure_registered(
                &node,
                netuid,
                key,
                key,
                roles::TX_TIMEOUT,
            )
            .await?;
        }
        say("loading the training corpus (fetched and tokenized on first use)…".into());
        let corpus = Arc::new(
            tokio::task::spawn_blocking(mycel_train::corpus::load_default)
                .await??
                .corpus,
        );
        // The roles are ready before the first round's clock starts.
        if roles::training_run(&node, netuid).await?.is_none() {
            let setup = RunSetup {
                aggregator: validator_key.address(),
                round_blocks: ROUND_BLOCKS,
                reveal_blocks: REVEAL_BLOCKS,
                epochs: 8,
            };
            roles::start_run(
                &node,
                &owner,
                netuid,
                RunSpec::tiny(),
                setup,
                &plan.dir,
                &say,
            )
            .await?;
        }
        anyhow::Ok((netuid, validator_key, miner_keys, corpus))
    };
    let (netuid, validator_key, miner_keys, corpus) = tokio::select! {
        ready = setup => ready?,
        _ = stopping.wait_for(|s| *s) => return Ok(()),
    };
    eprintln!(
        "\ntraining subnet {netuid} is running: 1 validator and {} miners of the tiny model\n  \
         mycel train status --netuid {netuid} --rpc {}\n",
        miner_keys.len(),
        plan.rpc
    );
    let mut roles_running = tokio::task::JoinSet::new();
    roles_running.spawn(validator::run(
        node.clone(),
        validator::ValidatorConfig {
            netuid,
            hotkey: validator_key,
            cache: plan.dir.join("validator"),
            checkpoint_epochs: 8,
            rounds: None,
            report: Some(plan.dir.join("validator-report.json")),
            rerun: 1,
        },
        corpus.clone(),
        say.clone(),
    ));
    for (k, key) in miner_keys.into_iter().enumerate() {
        let (node, corpus, say) = (node.clone(), corpus.clone(), say.clone());
        let config = miner::MinerConfig {
            netuid,
            hotkey: key,
            cache: plan.dir.join(format!("miner-{k}")),
            update_epochs: 2,
            rounds: None,
        };
        roles_running.spawn(async move {
            let prefix: Say = Arc::new(move |line| say(format!("miner {k}: {line}")));
            miner::run(node, config, corpus, prefix)
                .await
                .map(|()| Vec::new())
        });
    }
    tokio::select! {
        _ = stopping.wait_for(|s| *s) => Ok(()),
        Some(ended) = roles_running.join_next() => {
            match ended {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => bail!("a training role stopped: {e}"),
                Err(e) => bail!("a training role panicked: {e}"),
            }
        }
    }
}

/// Waits (at most 60 s) for a storage committee: checkpoints and updates are blobs.
async fn wait_for_storage(node: &NodeClient) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(storage) = node.storage().await {
            if storage.members.len() >= usize::from(mycel_types::storage::MIN_NODES) {
                return Ok(());
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("no storage committee after 60 s: --train needs the storage nodes (--storage-nodes 4)");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits (at most 5 minutes) until subnet `netuid` exists.
async fn wait_for_subnet(node: &NodeClient, netuid: u16) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while node.subnet(netuid).await.is_err() {
        if std::time::Instant::now() > deadline {
            bail!("the inference subnet {netuid} was not created within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Sends `key` its funding if it holds less than a tenth of it.
async fn fund(node: &NodeClient, owner: &PrivateKeySigner, key: &PrivateKeySigner) -> Result<()> {
    let amount = KEY_FUNDING_MYC * 10u128.pow(Token::Myc.decimals());
    if node.account(key.address()).await?.myc >= amount / 10 {
        return Ok(());
    }
    let to = key.address();
    roles::send(node, owner, |f| {
        TxKind::Transfer(Transfer {
            from: f.from,
            to,
            token: Token::Myc.address(),
            amount: U256::from(amount),
            memo: Default::default(),
            nonce: f.nonce,
            fee: f.fee,
        })
    })
    .await?;
    Ok(())
}

/// The subnet the owner runs for training (its owner hotkey is the validator's key), created
/// with weights settable every round if there is none.
async fn ensure_subnet(
    node: &NodeClient,
    owner: &PrivateKeySigner,
    validator: &PrivateKeySigner,
) -> Result<u16> {
    let find = |list: &mycel_client::api::SubnetList| {
        list.subnets
            .iter()
            .find(|s| s.owner == owner.address() && s.owner_hotkey == validator.address())
            .map(|s| s.netuid)
    };
    if let Some(netuid) = find(&node.subnets().await?) {
        return Ok(netuid);
    }
    let max_lock = node.account(owner.address()).await?.myc;
    let hotkey = validator.address();
    roles::send(node, owner, |f| {
        TxKind::RegisterSubnet(RegisterSubnet {
            from: f.from,
            hotkey,
            maxLockCost: U256::from(max_lock),
            nonce: f.nonce,
            fee: f.fee,
        })
    })
    .await?;
    let netuid = find(&node.subnets().await?)
        .context("the training subnet was created but is not listed")?;
    roles::send(node, owner, |f| {
        TxKind::SetSubnetParams(SetSubnetParams {
            from: f.from,
            netuid,
            names: vec!["weights_rate_limit".into()],
            values: vec![0],
            nonce: f.nonce,
            fee: f.fee,
        })
    })
    .await?;
    Ok(netuid)
}
