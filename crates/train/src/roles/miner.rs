//! The training miner: each round it trains the run's checkpoint on its own shard, commits the
//! hash of its compressed update before the deadline, stores the update as a blob after it and
//! reveals the blob's id.
//!
//! The error-feedback residual follows the run's rule, so a validator can re-run a miner and
//! get its update bit for bit ([`super::validator`]): round r starts from the residual left by
//! round r − 1's update if that update was revealed, from zero otherwise. It is kept on disk
//! after each reveal (`residual-ADDRESS.bin` in the cache), so a restarted miner keeps it.

use std::path::PathBuf;
use std::sync::Arc;

use alloy_primitives::{keccak256, B256};
use alloy_signer_local::PrivateKeySigner;
use mycel_client::NodeClient;
use mycel_types::tx::{CommitTrainingUpdate, RevealTrainingUpdate};
use mycel_types::TxKind;

use super::{height, load_checkpoint, send, store_blob, wait_for_run, RoleError, Say};
use crate::corpus::Corpus;
use crate::inner::train_inner;
use crate::sparseloco::ErrorFeedback;

/// What a miner is told.
pub struct MinerConfig {
    pub netuid: u16,
    pub hotkey: PrivateKeySigner,
    /// Checkpoints are kept here, and updates written while they are stored.
    pub cache: PathBuf,
    /// Storage epochs an update is paid for (it is read once, in the round after it).
    pub update_epochs: u64,
    /// Stop after this many rounds with an update revealed [default: run until stopped].
    pub rounds: Option<u64>,
}

/// An update committed and not yet revealed, and the residual it leaves.
struct Pending {
    round: u64,
    bytes: Vec<u8>,
    residual: ErrorFeedback,
}

/// What a miner carries from one look at the chain to the next.
#[derive(Default)]
struct State {
    pending: Option<Pending>,
    done: u64,
    waiting_said: bool,
    skipped_round: Option<u64>,
}

/// Mines until `config.rounds` are done; the caller stops it earlier by dropping the future. A
/// node or storage failure is said and tried again; the update in hand is kept.
pub async fn run(
    node: NodeClient,
    config: MinerConfig,
    corpus: Arc<Corpus>,
    say: Say,
) -> Result<(), RoleError> {
    let mut state = State::default();
    loop {
        match mine(&node, &config, &corpus, &say, &mut state).await {
            Ok(()) => return Ok(()),
            Err(e) => super::after_error(&say, e).await?,
        }
    }
}

async fn mine(
    node: &NodeClient,
    config: &MinerConfig,
    corpus: &Arc<Corpus>,
    say: &Say,
    state: &mut State,
) -> Result<(), RoleError> {
    let me = config.hotkey.address();
    let State {
        pending,
        done,
        waiting_said,
        skipped_round,
    } = state;
    loop {
        let Some(run) = wait_for_run(node, config.netuid, waiting_said, say).await? else {
            continue;
        };
        let now = height(node).await?;
        let mine = run.updates.iter().find(|u| u.hotkey == me);
        if pending.as_ref().is_some_and(|p| p.round != run.round) {
            say("the round ended before this miner's update was revealed".into());
            *pending = None;
        }
        // Reveal: after the deadline, within the window.
        if let Some(p) = pending.as_ref() {
            if mine.is_some_and(|u| u.blob_id.is_some()) {
                // Revealed by an attempt whose answer was lost: the residual carries on.
                save_residual(&config.cache, &me, p.round, &p.residual)?;
                *done += 1;
                *pending = None;
                if config.rounds.is_some_and(|r| *done >= r) {
                    return Ok(());
                }
                continue;
            }
            if now > run.deadline {
                if now > run.reveal_end {
                    say(format!("round {}: the reveal window closed first", p.round));
                    *pending = None;
                    continue;
                }
                let blob_id = store_blob(
                    node,
                    &config.hotkey,
                    &p.bytes,
                    &config.cache,
                    config.update_epochs,
                )
                .await?;
                let round = p.round;
                let netuid = config.netuid;
                match send(node, &config.hotkey, |f| {
                    TxKind::RevealTrainingUpdate(RevealTrainingUpdate {
                        from: f.from,
                        netuid,
                        round,
                        blobId: blob_id,
                        nonce: f.nonce,
                        fee: f.fee,
                    })
                })
                .await
                {
                    Ok(_) => {
                        say(format!(
                            "round {round}: revealed update blob {blob_id} ({} bytes sent)",
                            p.bytes.len()
                        ));
                        save_residual(&config.cache, &me, round, &p.residual)?;
                        *done += 1;
                        *pending = None;
                        if config.rounds.is_some_and(|r| *done >= r) {
                            return Ok(());
                        }
                    }
                    // Refused or not heard back: the next look at the chain tells which.
                    Err(e) => say(format!("round {round}: revealing: {e}")),
                }
            }
            continue;
        }
        // Train: a round this miner has not committed to, before its deadline.
        if mine.is_some() || now > run.deadline || *skipped_round == Some(run.round) {
            continue;
        }
        let checkpoint = load_checkpoint(
            node,
            run.checkpoint,
            run.checkpoint_hash,
            super::MAX_CHECKPOINT_BYTES,
            &config.cache,
        )
        .await?;
        let spec = checkpoint.spec;
        let round = run.round;
        say(format!(
            "round {round}: training {} steps of {} windows from checkpoint {} (deadline block {})",
            spec.inner.steps, spec.inner.batch, run.checkpoint, run.deadline
        ));
        let windows = corpus.shard(
            me.as_slice(),
            round,
            spec.inner.windows_per_round(),
            spec.window(),
        );
        let n = checkpoint.params.len();
        let mut residual = load_residual(&config.cache, &me, round, n);
        let started = std::time::Instant::now();
        let trained = tokio::task::spawn_blocking(move || {
            let outcome = train_inner(
                spec.model,
                &checkpoint.params,
                &spec.inner,
                &windows,
                &mut |_, _| {},
            )?;
            let update = residual
                .compress(&outcome.pseudo_gradient, &spec.codec)
                .map_err(|e| crate::TrainError::Config(e.to_string()))?;
            Ok::<_, crate::TrainError>((outcome.losses, update.to_bytes(), residual))
        })
        .await
        .map_err(|e| RoleError::Run(format!("training panicked: {e}")))??;
        let (losses, bytes, residual) = trained;
        let first = losses.first().copied().unwrap_or(f32::NAN);
        let last = losses.last().copied().unwrap_or(f32::NAN);
        let update_hash: B256 = keccak256(&bytes);
        let netuid = config.netuid;
        match send(node, &config.hotkey, |f| {
            TxKind::CommitTrainingUpdate(CommitTrainingUpdate {
                from: f.from,
                netuid,
                round,
                updateHash: update_hash,
                nonce: f.nonce,
                fee: f.fee,
            })
        })
        .await
        {
            Ok(_) => {
                say(format!(
                    "round {round}: training loss {first:.3} → {last:.3} in {:.1} s; committed update {update_hash} ({} bytes)",
                    started.elapsed().as_secs_f32(),
                    bytes.len()
                ));
                *pending = Some(Pending {
                    round,
                    bytes,
                    residual,
                });
            }
            Err(e) => {
                say(format!(
                    "round {round}: the commit was refused, skipping the round: {e}"
                ));
                *skipped_round = Some(round);
            }
        }
    }
}

fn residual_path(cache: &std::path::Path, hotkey: &alloy_primitives::Address) -> PathBuf {
    cache.join(format!("residual-{hotkey}.bin"))
}

/// Keeps the residual round `round`'s revealed update left: `round` (u64 LE) then the values.
fn save_residual(
    cache: &std::path::Path,
    hotkey: &alloy_primitives::Address,
    round: u64,
    residual: &ErrorFeedback,
) -> Result<(), RoleError> {
    let path = residual_path(cache, hotkey);
    let mut bytes = round.to_le_bytes().to_vec();
    bytes.extend(residual.to_bytes());
    let partial = path.with_extension("partial");
    std::fs::create_dir_all(cache).map_err(|e| crate::TrainError::io("create", cache, e))?;
    std::fs::write(&partial, bytes).map_err(|e| crate::TrainError::io("write", &partial, e))?;
    std::fs::rename(&partial, &path).map_err(|e| crate::TrainError::io("rename", &path, e))?;
    Ok(())
}

/// The residual round `round` starts from: the one round `round − 1`'s revealed update left,
/// else zero.
fn load_residual(
    cache: &std::path::Path,
    hotkey: &alloy_primitives::Address,
    round: u64,
    len: usize,
) -> ErrorFeedback {
    let kept = std::fs::read(residual_path(cache, hotkey))
        .ok()
        .and_then(|bytes| {
            let (head, values) = bytes.split_at_checked(8)?;
            let kept_round = u64::from_le_bytes(head.try_into().ok()?);
            (round > 0 && kept_round == round - 1)
                .then(|| ErrorFeedback::from_bytes(values, len))
                .flatten()
        });
    kept.unwrap_or_else(|| ErrorFeedback::new(len))
}
