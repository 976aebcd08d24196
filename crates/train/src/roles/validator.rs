//! The training validator: after each round's reveal window it reads every revealed update,
//! checks it against its commit, scores it ([`crate::score`]), computes the next checkpoint
//! ([`crate::round::aggregate`]) and sets weights from the scores; the run's aggregator stores
//! the checkpoint and publishes it, every other validator compares the published hash with its
//! own.
//!
//! **Re-running** (`rerun` miners a round): the inner steps give the same bits on every CPU, and a
//! miner's residual follows the run's rule (zero unless its previous round's update was revealed,
//! see [`super::miner`]), so a validator that has followed a miner since its residual was last
//! zero re-runs its round — same checkpoint, same shard, same residual — and compares bytes. A
//! different result proves the update was not made the way the run says (`fake`), whatever it
//! scores. The validator keeps re-running the miners it follows, so their residuals stay known.
//!
//! A verdict for every commit: `accepted`, `copy` (bytes equal to an earlier commit's),
//! `zero` (scored 0: noise, or not trained on its shard), `not revealed`, `unreadable`,
//! `hash mismatch` (the blob is not what was committed), `malformed` (not an update of this
//! run's model and codec).

use std::path::PathBuf;
use std::sync::Arc;

use alloy_primitives::{keccak256, Address, B256};
use alloy_signer_local::PrivateKeySigner;
use mycel_client::{api, NodeClient};
use mycel_types::tx::PublishTrainingCheckpoint;
use mycel_types::TxKind;
use serde::{Deserialize, Serialize};

use super::{
    b256, fetch_blob, height, load_checkpoint, send, store_blob, wait_for_run, RoleError, Say,
    TX_TIMEOUT,
};
use crate::corpus::{shard_seed, Corpus};
use crate::inner::{evaluate, train_inner};
use crate::round::{aggregate, ScoredUpdate};
use crate::run::Checkpoint;
use crate::score::{baseline, score_update, ScoringSets, UpdateScore};
use crate::sparseloco::CompressedUpdate;
use crate::sparseloco::ErrorFeedback;

/// What a validator is told.
pub struct ValidatorConfig {
    pub netuid: u16,
    pub hotkey: PrivateKeySigner,
    /// Checkpoints are kept here.
    pub cache: PathBuf,
    /// Storage epochs a published checkpoint is paid for.
    pub checkpoint_epochs: u64,
    /// Stop after this many rounds [default: run until stopped].
    pub rounds: Option<u64>,
    /// Write the report (every round so far) as JSON here after each round.
    pub report: Option<PathBuf>,
    /// Miners whose inner steps are re-run each round.
    pub rerun: usize,
}

/// What a validator remembers between rounds to re-run miners: who revealed in the last round
/// it validated, and the residuals of the miners it re-ran then.
#[derive(Debug, Default)]
struct Followed {
    round: Option<u64>,
    revealed: Vec<Address>,
    residuals: std::collections::BTreeMap<Address, Vec<f32>>,
}

impl Followed {
    /// The residual `hotkey` starts round `round` from, if this validator knows it.
    fn residual(&self, hotkey: &Address, round: u64, len: usize) -> Option<Vec<f32>> {
        if round == 0 {
            return Some(vec![0.0; len]);
        }
        if self.round != Some(round - 1) {
            return None;
        }
        if !self.revealed.contains(hotkey) {
            return Some(vec![0.0; len]);
        }
        self.residuals.get(hotkey).cloned()
    }
}

/// One commit's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateReport {
    pub hotkey: Address,
    pub uid: Option<u16>,
    pub commit_index: u32,
    pub verdict: String,
    pub score_micros: u64,
    pub bytes: u64,
    pub measured: Option<UpdateScore>,
    /// Re-run this round: `true` if its inner steps gave its bytes exactly, `false` if not.
    pub rerun: Option<bool>,
}

/// One round as this validator saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundReport {
    pub round: u64,
    pub checkpoint: B256,
    /// Held-out loss of the round's checkpoint and of the one it produced.
    pub held_out_before: f32,
    pub held_out_after: f32,
    pub updates: Vec<UpdateReport>,
    pub next_checkpoint_hash: B256,
    /// The published checkpoint's blob (when this validator published it or saw it published).
    pub published: Option<B256>,
    /// Whether the published checkpoint equals this validator's (`None` until it is published).
    pub verified: Option<bool>,
    /// UIDs and weights set.
    pub weights: Vec<(u16, u16)>,
}

/// Validates until `config.rounds` are done; the caller stops it earlier by dropping the future.
pub async fn run(
    node: NodeClient,
    config: ValidatorConfig,
    corpus: Arc<Corpus>,
    say: Say,
) -> Result<Vec<RoundReport>, RoleError> {
    let mut state = State::default();
    loop {
        match validate(&node, &config, &corpus, &say, &mut state).await {
            Ok(()) => return Ok(state.reports),
            Err(e) => super::after_error(&say, e).await?,
        }
    }
}

/// What a validator carries from one look at the chain to the next.
#[derive(Default)]
struct State {
    reports: Vec<RoundReport>,
    followed: Followed,
    waiting_said: bool,
    /// The aggregator's next checkpoint until it is published.
    unpublished: Option<Vec<u8>>,
}

/// Publishes the aggregator's pending checkpoint for the last reported round.
async fn publish_pending(
    node: &NodeClient,
    config: &ValidatorConfig,
    reports: &mut [RoundReport],
    unpublished: &mut Option<Vec<u8>>,
    say: &Say,
) -> Result<(), RoleError> {
    let (Some(last), Some(bytes)) = (reports.last_mut(), unpublished.as_ref()) else {
        return Ok(());
    };
    last.published = Some(publish(node, config, last, bytes, say).await?);
    last.verified = Some(true);
    *unpublished = None;
    write_report(config, reports)
}

async fn validate(
    node: &NodeClient,
    config: &ValidatorConfig,
    corpus: &Arc<Corpus>,
    say: &Say,
    state: &mut State,
) -> Result<(), RoleError> {
    let me = config.hotkey.address();
    let State {
        reports,
        followed,
        waiting_said,
        unpublished,
    } = state;
    loop {
        let Some(run) = wait_for_run(node, config.netuid, waiting_said, say).await? else {
            continue;
        };
        // A round this validator computed and someone else publishes: compare.
        if let Some(last) = reports.last_mut().filter(|r| r.verified.is_none()) {
            if let Some(entry) = run.history.get(last.round as usize + 1) {
                last.published = Some(entry.checkpoint);
                let same = entry.checkpoint_hash == last.next_checkpoint_hash;
                last.verified = Some(same);
                if same {
                    say(format!(
                        "round {}: the published checkpoint is the one computed here",
                        last.round
                    ));
                } else {
                    say(format!(
                        "round {}: the published checkpoint {} differs from the one computed here ({})",
                        last.round, entry.checkpoint_hash, last.next_checkpoint_hash
                    ));
                }
                write_report(config, reports)?;
                if config.rounds.is_some_and(|r| reports.len() as u64 >= r) {
                    return Ok(());
                }
            }
        }
        // A checkpoint computed here and not yet published (the last attempt failed).
        if unpublished.is_some() && reports.last().is_some_and(|r| r.round == run.round) {
            publish_pending(node, config, reports, unpublished, say).await?;
            continue;
        }
        let now = height(node).await?;
        if now <= run.reveal_end || reports.last().is_some_and(|r| r.round >= run.round) {
            continue;
        }
        let (report, next) = validate_round(node, config, &run, corpus, followed, say).await?;
        let aggregator = run.aggregator == me;
        reports.push(report);
        // The report is written before the checkpoint is published: whoever sees the next round
        // begin finds this one's verdicts.
        write_report(config, reports)?;
        if aggregator {
            *unpublished = Some(next);
            publish_pending(node, config, reports, unpublished, say).await?;
        }
        if aggregator && config.rounds.is_some_and(|r| reports.len() as u64 >= r) {
            return Ok(());
        }
    }
}

/// Scores round `run.round` and sets weights; the report and the next checkpoint's bytes.
async fn validate_round(
    node: &NodeClient,
    config: &ValidatorConfig,
    run: &api::TrainingRun,
    corpus: &Arc<Corpus>,
    followed: &mut Followed,
    say: &Say,
) -> Result<(RoundReport, Vec<u8>), RoleError> {
    let round = run.round;
    let checkpoint = load_checkpoint(
        node,
        run.checkpoint,
        run.checkpoint_hash,
        super::MAX_CHECKPOINT_BYTES,
        &config.cache,
    )
    .await?;
    if checkpoint.round != round || b256(checkpoint.spec.hash()) != run.spec {
        return Err(RoleError::Run(format!(
            "checkpoint {} is for round {} of spec {}, the run is at round {round} of spec {}",
            run.checkpoint,
            checkpoint.round,
            b256(checkpoint.spec.hash()),
            run.spec
        )));
    }
    let spec = checkpoint.spec;
    let graph = node.metagraph(config.netuid).await?;
    let uid_of = |hotkey: &Address| {
        graph
            .neurons
            .iter()
            .find(|n| n.hotkey == *hotkey)
            .map(|n| n.uid)
    };
    // Read every revealed update (bounded by the run's largest update before reading).
    let mut reports = Vec::new();
    let mut readable: Vec<(usize, CompressedUpdate, Vec<u8>)> = Vec::new();
    for u in &run.updates {
        let mut report = UpdateReport {
            hotkey: u.hotkey,
            uid: uid_of(&u.hotkey),
            commit_index: u.commit_index,
            verdict: String::new(),
            score_micros: 0,
            bytes: 0,
            measured: None,
            rerun: None,
        };
        report.verdict = match u.blob_id {
            None => "not revealed".into(),
            Some(blob) => match fetch_blob(node, blob, spec.max_update_bytes()).await {
                Err(e) => format!("unreadable: {e}"),
                Ok(bytes) => {
                    report.bytes = bytes.len() as u64;
                    if keccak256(&bytes) != u.update_hash {
                        "hash mismatch".into()
                    } else {
                        match decode(&bytes, &spec) {
                            Err(why) => format!("malformed: {why}"),
                            Ok(update) => {
                                readable.push((reports.len(), update, bytes));
                                String::new()
                            }
                        }
                    }
                }
            },
        };
        reports.push(report);
    }
    // Which miners to re-run: those followed already, then others in an order of this
    // validator's own (keccak of its hotkey and theirs), as long as their residual is known.
    let n = checkpoint.params.len();
    let me = config.hotkey.address();
    let mut candidates: Vec<(bool, B256, usize, Vec<f32>)> = readable
        .iter()
        .enumerate()
        .filter_map(|(i, (at, _, _))| {
            let hotkey = run.updates[*at].hotkey;
            let residual = followed.residual(&hotkey, round, n)?;
            let order = keccak256([me.as_slice(), hotkey.as_slice()].concat());
            Some((
                !followed.residuals.contains_key(&hotkey),
                order,
                i,
                residual,
            ))
        })
        .collect();
    candidates.sort_by_key(|c| (c.0, c.1));
    candidates.truncate(config.rerun);
    let reruns: Vec<(usize, Vec<f32>)> = candidates.into_iter().map(|c| (c.2, c.3)).collect();
    // Re-run, score each readable update alone, then aggregate (CPU work, off the async threads).
    let hotkeys: Vec<Address> = run.updates.iter().map(|u| u.hotkey).collect();
    let commit_index: Vec<u32> = run.updates.iter().map(|u| u.commit_index).collect();
    let corpus = corpus.clone();
    let checkpoint_hash = run.checkpoint_hash;
    let computed = tokio::task::spawn_blocking(move || {
        let window = spec.window();
        let held_out = spec.held_out(&corpus);
        let random = corpus.random_windows(
            &shard_seed(b"mycel-train-random", checkpoint_hash.as_slice(), round),
            spec.random_windows,
            window,
        );
        // Re-runs: the miner's round again, compared byte for byte.
        let mut rerun_results = Vec::new();
        for (i, residual) in reruns {
            let (at, _, bytes) = &readable[i];
            let hotkey = hotkeys[*at];
            let windows = corpus.shard(
                hotkey.as_slice(),
                round,
                spec.inner.windows_per_round(),
                window,
            );
            let outcome = train_inner(
                spec.model,
                &checkpoint.params,
                &spec.inner,
                &windows,
                &mut |_, _| {},
            )?;
            let mut feedback = ErrorFeedback::from_residual(residual);
            let again = feedback
                .compress(&outcome.pseudo_gradient, &spec.codec)
                .map_err(|e| crate::TrainError::Config(e.to_string()))?;
            let same = again.to_bytes() == *bytes;
            rerun_results.push((*at, same, feedback.residual().to_vec()));
        }
        let fake: Vec<usize> = rerun_results.iter().filter(|r| !r.1).map(|r| r.0).collect();
        let mut scores = Vec::new();
        let mut base = None;
        let mut dense = vec![0.0f32; n];
        for (at, update, _) in readable.iter().filter(|(at, _, _)| !fake.contains(at)) {
            let own = corpus.shard(
                hotkeys[*at].as_slice(),
                round,
                spec.inner.windows_per_round(),
                window,
            );
            let sets = ScoringSets {
                held_out: &held_out,
                own: &own,
                random: &random,
                batch: spec.eval_batch,
            };
            let b = match base {
                Some(b) => b,
                None => *base.insert(baseline(spec.model, &checkpoint.params, &sets)?),
            };
            update
                .decode_into(&mut dense)
                .map_err(|e| crate::TrainError::Config(e.to_string()))?;
            let score = score_update(
                spec.model,
                &checkpoint.params,
                &dense,
                &b,
                &sets,
                &spec.scoring,
            )?;
            scores.push((*at, score));
        }
        let held_out_before = match base {
            Some(b) => b.held_out,
            None => evaluate(spec.model, &checkpoint.params, &held_out, spec.eval_batch)?,
        };
        let scored: Vec<ScoredUpdate<'_>> = readable
            .iter()
            .filter(|(at, _, _)| !fake.contains(at))
            .zip(&scores)
            .map(|((at, update, _), (_, score))| ScoredUpdate {
                hotkey: hotkeys[*at].as_slice(),
                commit_index: u64::from(commit_index[*at]),
                update,
                score: *score,
            })
            .collect();
        let mut optimizer = checkpoint.optimizer()?;
        let outcome = aggregate(&checkpoint.params, &mut optimizer, &scored)
            .map_err(|e| crate::TrainError::Config(e.to_string()))?;
        let next = Checkpoint {
            spec,
            round: round + 1,
            velocity: optimizer.velocity().to_vec(),
            params: outcome.checkpoint,
        };
        let held_out_after = evaluate(spec.model, &next.params, &held_out, spec.eval_batch)?;
        let accepted: Vec<Address> = outcome
            .accepted
            .iter()
            .map(|h| Address::from_slice(h))
            .collect();
        let copies: Vec<Address> = outcome
            .copies
            .iter()
            .map(|h| Address::from_slice(h))
            .collect();
        Ok::<_, crate::TrainError>((
            scores,
            accepted,
            copies,
            next,
            held_out_before,
            held_out_after,
            rerun_results,
        ))
    })
    .await
    .map_err(|e| RoleError::Run(format!("scoring panicked: {e}")))??;
    let (scores, accepted, copies, next, held_out_before, held_out_after, rerun_results) = computed;
    // What the next round's re-runs start from.
    followed.round = Some(round);
    followed.revealed = run
        .updates
        .iter()
        .filter(|u| u.blob_id.is_some())
        .map(|u| u.hotkey)
        .collect();
    followed.residuals.clear();
    for (at, same, residual) in rerun_results {
        reports[at].rerun = Some(same);
        if same {
            followed.residuals.insert(run.updates[at].hotkey, residual);
        } else {
            reports[at].verdict = "fake: re-running its inner steps gives other bytes".into();
        }
    }
    for (at, score) in scores {
        let r = &mut reports[at];
        r.measured = Some(score);
        r.score_micros = score.score_micros;
        r.verdict = if copies.contains(&r.hotkey) {
            "copy".into()
        } else if accepted.contains(&r.hotkey) {
            "accepted".into()
        } else {
            "zero".into()
        };
    }
    for r in &reports {
        let rerun = match r.rerun {
            Some(true) => ", re-run: same bytes",
            Some(false) => ", re-run: different bytes",
            None => "",
        };
        say(format!(
            "round {round}: {} (uid {}) {}: {} bytes, score {}{rerun}",
            r.hotkey,
            r.uid.map_or("-".into(), |u| u.to_string()),
            r.verdict,
            r.bytes,
            r.score_micros
        ));
    }
    say(format!(
        "round {round}: held-out loss {held_out_before:.4} → {held_out_after:.4} with {} of {} updates",
        accepted.len(),
        run.updates.len()
    ));
    // Weights: accepted updates by score.
    let weights = weights_of(&reports, &accepted);
    if !weights.is_empty() {
        let (uids, values): (Vec<u16>, Vec<u16>) = weights.iter().copied().unzip();
        let params = mycel_subnet::validator::chain::subnet_params(node, config.netuid).await?;
        if let Err(e) = mycel_subnet::validator::chain::set_weights(
            node,
            config.netuid,
            &config.hotkey,
            &uids,
            &values,
            params.weights_version_key,
            TX_TIMEOUT,
        )
        .await
        {
            say(format!("round {round}: setting weights failed: {e}"));
        }
    }
    let bytes = next.to_bytes();
    let report = RoundReport {
        round,
        checkpoint: run.checkpoint,
        held_out_before,
        held_out_after,
        updates: reports,
        next_checkpoint_hash: b256(sha256(&bytes)),
        published: None,
        verified: None,
        weights,
    };
    Ok((report, bytes))
}

/// Stores the next checkpoint `bytes` as a blob and publishes it (the aggregator's part of
/// round `report.round`); its blob.
async fn publish(
    node: &NodeClient,
    config: &ValidatorConfig,
    report: &RoundReport,
    bytes: &[u8],
    say: &Say,
) -> Result<B256, RoleError> {
    let blob = store_blob(
        node,
        &config.hotkey,
        bytes,
        &config.cache,
        config.checkpoint_epochs,
    )
    .await?;
    let accepted = report
        .updates
        .iter()
        .filter(|u| u.verdict == "accepted")
        .count() as u64;
    let (netuid, round, hash) = (config.netuid, report.round, report.next_checkpoint_hash);
    send(node, &config.hotkey, |f| {
        TxKind::PublishTrainingCheckpoint(PublishTrainingCheckpoint {
            from: f.from,
            netuid,
            round,
            checkpoint: blob,
            checkpointHash: hash,
            accepted,
            nonce: f.nonce,
            fee: f.fee,
        })
    })
    .await?;
    say(format!(
        "round {round}: published checkpoint {blob} for round {}",
        round + 1
    ));
    Ok(blob)
}

/// An update of this run's model and codec, or why not.
fn decode(bytes: &[u8], spec: &crate::run::RunSpec) -> Result<CompressedUpdate, String> {
    let n = spec.model.parameter_count() as u64;
    let update = CompressedUpdate::from_bytes(bytes, n).map_err(|e| e.to_string())?;
    if update.len() != n || update.chunk() != spec.codec.chunk || update.top_k() != spec.codec.top_k
    {
        return Err(format!(
            "{} values in chunks of {} keeping {}; the run's model has {n} in chunks of {} keeping {}",
            update.len(),
            update.chunk(),
            update.top_k(),
            spec.codec.chunk,
            spec.codec.top_k
        ));
    }
    Ok(update)
}

/// UIDs of the accepted updates with weights proportional to their scores (the best 65535).
fn weights_of(reports: &[UpdateReport], accepted: &[Address]) -> Vec<(u16, u16)> {
    let best = reports.iter().map(|r| r.score_micros).max().unwrap_or(0);
    if best == 0 {
        return Vec::new();
    }
    let mut weights: Vec<(u16, u16)> = reports
        .iter()
        .filter(|r| accepted.contains(&r.hotkey))
        .filter_map(|r| {
            let uid = r.uid?;
            let w = (u128::from(r.score_micros) * 65_535 / u128::from(best)) as u16;
            (w > 0).then_some((uid, w))
        })
        .collect();
    weights.sort_unstable();
    weights
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn write_report(config: &ValidatorConfig, reports: &[RoundReport]) -> Result<(), RoleError> {
    let Some(path) = &config.report else {
        return Ok(());
    };
    let json = serde_json::to_vec_pretty(reports).expect("a report serialises");
    let partial = path.with_extension("partial");
    std::fs::write(&partial, json).map_err(|e| crate::TrainError::io("write", &partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| crate::TrainError::io("rename", path, e))?;
    Ok(())
}
