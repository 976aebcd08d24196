//! The training subnet's roles on a running chain: the miner ([`miner`]) and the validator
//! ([`validator`]), and what both do with the chain and blob storage (this module).
//!
//! A round on chain (`mycel_state::training`): the round's checkpoint is a certified blob whose
//! id and SHA-256 the chain holds; miners commit the keccak-256 hash of their update before the
//! deadline, store the update as a blob after it and reveal its id; after the reveal window the
//! aggregator publishes the next checkpoint. Everything a role needs is on chain or in a blob, so
//! a role that restarts picks up where the run is.

pub mod curve;
pub mod miner;
pub mod validator;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::B256;
use alloy_signer_local::PrivateKeySigner;
use mycel_blob::publish::{self, PublishError, Sink};
use mycel_client::{api, ClientError, NodeClient, SendOptions, TxFields};
use mycel_types::TxKind;
use sha2::{Digest, Sha256};

use crate::run::Checkpoint;
use crate::TrainError;

/// What a role says as it works: one line for people per call.
pub type Say = Arc<dyn Fn(String) + Send + Sync>;

/// How long a role waits between looks at the chain.
pub const POLL: Duration = Duration::from_millis(400);
/// How long a role waits for one of its transactions to be final.
pub const TX_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a role stopped.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("{0}")]
    Node(#[from] ClientError),
    #[error("{0}")]
    Blob(#[from] PublishError),
    #[error("{0}")]
    Train(#[from] TrainError),
    #[error("{0}")]
    Chain(#[from] mycel_subnet::validator::chain::ChainError),
    #[error("{0}")]
    Run(String),
}

impl RoleError {
    /// The node or blob storage failed or said no: worth trying again later (a role says so
    /// and goes on, keeping what it holds). Anything else stops the role.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RoleError::Node(_) | RoleError::Blob(_) | RoleError::Chain(_)
        )
    }
}

/// How long a role waits after a transient error before trying again.
pub const RETRY: Duration = Duration::from_secs(2);

/// After a role's error: a transient one is said and waited out ([`RETRY`]) so the role can
/// go on; any other is returned.
pub async fn after_error(say: &Say, error: RoleError) -> Result<(), RoleError> {
    if !error.is_transient() {
        return Err(error);
    }
    say(format!("{error}; trying again in {} s", RETRY.as_secs()));
    tokio::time::sleep(RETRY).await;
    Ok(())
}

/// The subnet's training run, or `None` if it has none yet.
pub async fn training_run(
    node: &NodeClient,
    netuid: u16,
) -> Result<Option<api::TrainingRun>, RoleError> {
    match node.training_run(netuid).await {
        Ok(run) => Ok(Some(run)),
        Err(e) if e.is_code(api::code::NO_TRAINING_RUN) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Trains and measures on `threads` threads (the process's compute pool; call before any
/// training). Results are the same bits at any count.
pub fn use_threads(threads: usize) -> Result<(), RoleError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| RoleError::Run(format!("cannot set up {threads} compute threads: {e}")))
}

/// Waits for the subnet's run, saying once that there is none yet.
pub async fn wait_for_run(
    node: &NodeClient,
    netuid: u16,
    said: &mut bool,
    say: &Say,
) -> Result<Option<api::TrainingRun>, RoleError> {
    tokio::time::sleep(POLL).await;
    let run = training_run(node, netuid).await?;
    if run.is_none() && !*said {
        say(format!(
            "subnet {netuid} has no training run yet; waiting for its owner to start one"
        ));
        *said = true;
    }
    Ok(run)
}

/// The latest finalized height.
pub async fn height(node: &NodeClient) -> Result<u64, RoleError> {
    Ok(node.status().await?.height)
}

/// Signs what `build` makes, sends it and waits until it is applied; its hash.
pub async fn send(
    node: &NodeClient,
    signer: &PrivateKeySigner,
    build: impl FnOnce(TxFields) -> TxKind,
) -> Result<B256, RoleError> {
    let outcome = node
        .send_and_wait(signer, &SendOptions::timeout(TX_TIMEOUT), build)
        .await?;
    Ok(outcome.applied()?.hash)
}

/// Bytes collected in memory (blobs here are bounded before they are read).
struct Bytes(Vec<u8>);

impl Sink for Bytes {
    async fn write(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        self.0.extend_from_slice(&bytes);
        Ok(())
    }
}

/// Reads certified blob `blob_id`, refusing it before reading if the chain says it is longer
/// than `max_len` bytes.
pub async fn fetch_blob(
    node: &NodeClient,
    blob_id: B256,
    max_len: u64,
) -> Result<Vec<u8>, RoleError> {
    let info = publish::certified_blob(node, blob_id).await?;
    if info.length > max_len {
        return Err(RoleError::Run(format!(
            "blob {blob_id} is {} bytes, over the {max_len} bytes it may have",
            info.length
        )));
    }
    let mut sink = Bytes(Vec::with_capacity(info.length as usize));
    publish::read_blob(&info, &mut sink, &|_| {}).await?;
    Ok(sink.0)
}

/// Stores `bytes` as a blob paid for `epochs` storage epochs (a file under `dir` while it is
/// encoded); its id.
pub async fn store_blob(
    node: &NodeClient,
    signer: &PrivateKeySigner,
    bytes: &[u8],
    dir: &Path,
    epochs: u64,
) -> Result<B256, RoleError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io("create", dir, e))?;
    let path = dir.join(format!(
        "upload-{}.bin",
        hex::encode(&Sha256::digest(bytes)[..8])
    ));
    std::fs::write(&path, bytes).map_err(|e| TrainError::io("write", &path, e))?;
    let stored = publish::put_file(node, signer, &path, epochs, &|_| {}).await;
    let _ = std::fs::remove_file(&path);
    Ok(stored?.blob_id)
}

/// The checkpoint `blob_id` whose bytes must hash to `hash`: from `cache` if it is there, else
/// from blob storage (then kept in `cache`). Refused if the hash does not match.
pub async fn load_checkpoint(
    node: &NodeClient,
    blob_id: B256,
    hash: B256,
    max_len: u64,
    cache: &Path,
) -> Result<Checkpoint, RoleError> {
    let path = checkpoint_path(cache, blob_id);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) if B256::from(<[u8; 32]>::from(Sha256::digest(&bytes))) == hash => bytes,
        _ => {
            let bytes = fetch_blob(node, blob_id, max_len).await?;
            let got = B256::from(<[u8; 32]>::from(Sha256::digest(&bytes)));
            if got != hash {
                return Err(RoleError::Run(format!(
                    "checkpoint blob {blob_id} hashes to {got}, the chain says {hash}"
                )));
            }
            std::fs::create_dir_all(cache).map_err(|e| TrainError::io("create", cache, e))?;
            let partial = path.with_extension("partial");
            std::fs::write(&partial, &bytes).map_err(|e| TrainError::io("write", &partial, e))?;
            std::fs::rename(&partial, &path).map_err(|e| TrainError::io("rename", &path, e))?;
            bytes
        }
    };
    Ok(
        tokio::task::spawn_blocking(move || Checkpoint::from_bytes(&bytes))
            .await
            .map_err(|e| RoleError::Run(format!("reading the checkpoint panicked: {e}")))??,
    )
}

fn checkpoint_path(cache: &Path, blob_id: B256) -> PathBuf {
    cache.join(format!("{blob_id}.mckp"))
}

/// The most a checkpoint blob may weigh: θ and velocity of the largest model the roles train,
/// plus the header. Checked against the chain's length before a byte is read.
pub const MAX_CHECKPOINT_BYTES: u64 = 2 * 4 * 64_000_000 + 64 * 1024;

/// `hash` as the chain's B256.
pub fn b256(hash: [u8; 32]) -> B256 {
    B256::from(hash)
}

/// Who publishes a run's checkpoints, how its rounds are timed, and how long its first
/// checkpoint is stored.
#[derive(Debug, Clone, Copy)]
pub struct RunSetup {
    pub aggregator: alloy_primitives::Address,
    pub round_blocks: u64,
    pub reveal_blocks: u64,
    /// Storage epochs the first checkpoint is paid for.
    pub epochs: u64,
}

/// Starts a run of `spec` on subnet `netuid` (signed by its owner): builds the first checkpoint,
/// stores it as a blob under `dir` and sends `StartTrainingRun`. Returns the checkpoint's blob.
pub async fn start_run(
    node: &NodeClient,
    owner: &PrivateKeySigner,
    netuid: u16,
    spec: crate::run::RunSpec,
    setup: RunSetup,
    dir: &Path,
    say: &Say,
) -> Result<B256, RoleError> {
    say(format!(
        "building the first checkpoint ({} parameters)…",
        spec.model.parameter_count()
    ));
    let (bytes, hash) = tokio::task::spawn_blocking(move || {
        Checkpoint::first(spec).map(|c| (c.to_bytes(), c.hash()))
    })
    .await
    .map_err(|e| RoleError::Run(format!("building the checkpoint panicked: {e}")))??;
    say(format!("storing it as a blob ({} bytes)…", bytes.len()));
    let blob = store_blob(node, owner, &bytes, dir, setup.epochs).await?;
    send(node, owner, |f| {
        TxKind::StartTrainingRun(mycel_types::tx::StartTrainingRun {
            from: f.from,
            netuid,
            checkpoint: blob,
            checkpointHash: b256(hash),
            spec: b256(spec.hash()),
            aggregator: setup.aggregator,
            roundBlocks: setup.round_blocks,
            revealBlocks: setup.reveal_blocks,
            nonce: f.nonce,
            fee: f.fee,
        })
    })
    .await?;
    Ok(blob)
}
