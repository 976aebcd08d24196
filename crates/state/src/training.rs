//! Training runs: a subnet's low-communication training (DiLoCo / SparseLoCo, docs/training.md)
//! as rounds of commit, reveal and checkpoint on chain.
//!
//! Every height below is `h`, the height of the block the transaction is in (the state's height
//! + 1). A run's fields are specified in [`TrainingRun`].
//!
//! Rules:
//! - `StartTrainingRun` (the subnet owner's coldkey): an existing subnet; `roundBlocks` and
//!   `revealBlocks` each 1 to [`MAX_PHASE_BLOCKS`]; the checkpoint a registered, certified blob
//!   (not deleted); the aggregator any address. Starts the run at round 0 (`round_start` = `h`,
//!   `deadline` = `h + roundBlocks`, `reveal_end` = `deadline + revealBlocks`, the checkpoint as
//!   the first entry of `history`), replacing the subnet's earlier run if it had one (a finished
//!   or stalled run is restarted this way).
//! - `CommitTrainingUpdate` (a hotkey): the subnet has a run; the hotkey is a neuron of the
//!   subnet; `round` is the run's round; `h <= deadline`; the hotkey has not committed this
//!   round. Appends the commit (its `commit_index` is its place in the round). At most one commit
//!   per neuron per round, so a round holds at most `max_uids` (a `u16`) commits: no other bound
//!   is needed.
//! - `RevealTrainingUpdate` (the hotkey that committed): `round` is the run's round;
//!   `deadline < h <= reveal_end`; the hotkey committed this round and has not revealed; the
//!   blob is registered (certified or not, not deleted). Records the blob. Nothing binds the
//!   blob's bytes to the committed hash on chain: whoever reads the update checks that its
//!   keccak-256 is `update_hash`.
//! - `PublishTrainingCheckpoint` (the run's aggregator): `round` is the run's round;
//!   `h > reveal_end`; the checkpoint a registered, certified blob (not deleted); `accepted` at
//!   most the number of revealed updates. Appends `{round + 1, checkpoint, hash, h, accepted}` to
//!   `history` and begins round `round + 1` at `h` (new deadline and reveal end), with no
//!   commits.
//!
//! Each transaction pays its fee like any other; nothing else moves tokens, so the books are
//! unchanged. Each refusal has its own code ([`TrainingError::code`]); a refused transaction
//! changes nothing.
//!
//! State root: every applied training transaction extends a running digest,
//! `d' = keccak(0x16 ‖ d ‖ tx hash)`, folded in as `keccak(0x15 ‖ root ‖ d)` once any applied.

use crate::{State, TxError};
use alloy_primitives::{Address, B256};
pub use mycel_types::api::{TrainingCheckpoint, TrainingEvent, TrainingRun, TrainingUpdate};
use mycel_types::TxKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest commit phase and the longest reveal phase of a round, in blocks (a week of
/// 6-second blocks).
pub const MAX_PHASE_BLOCKS: u64 = 100_800;

/// Every subnet's training run, and the digest of everything done to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Training {
    runs: BTreeMap<u16, TrainingRun>,
    digest: crate::merkle::RunningDigest,
}

impl Training {
    /// Subnet `netuid`'s run, if one was started.
    pub fn run(&self, netuid: u16) -> Option<&TrainingRun> {
        self.runs.get(&netuid)
    }

    /// Every run, by netuid.
    pub fn runs(&self) -> impl Iterator<Item = &TrainingRun> {
        self.runs.values()
    }

    pub(crate) fn apply(&mut self, write: TrainingWrite, tx_hash: B256) {
        self.runs.insert(write.run.netuid, write.run);
        self.digest.extend(0x16, tx_hash);
    }

    pub(crate) fn fold_root(&self, root: B256) -> B256 {
        self.digest.fold(0x15, root)
    }
}

/// Why a training transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum TrainingError {
    #[error("subnet {netuid} does not exist")]
    UnknownSubnet { netuid: u16 },
    #[error("{sender} does not own subnet {netuid} (its owner {owner} starts its training runs)")]
    NotOwner {
        netuid: u16,
        sender: Address,
        owner: Address,
    },
    #[error(
        "roundBlocks {round_blocks} and revealBlocks {reveal_blocks} must each be 1 to \
         {MAX_PHASE_BLOCKS}"
    )]
    BadTiming {
        round_blocks: u64,
        reveal_blocks: u64,
    },
    #[error("no blob {blob_id}: register it in storage first (or it expired or was deleted)")]
    UnknownBlob { blob_id: B256 },
    #[error("blob {blob_id} is not certified yet: a checkpoint must be available (CertifyBlob)")]
    BlobNotCertified { blob_id: B256 },
    #[error("subnet {netuid} has no training run (its owner starts one with StartTrainingRun)")]
    NoRun { netuid: u16 },
    #[error("{hotkey} is not a neuron of subnet {netuid}: register it first (BurnedRegister)")]
    NotNeuron { netuid: u16, hotkey: Address },
    #[error("the run of subnet {netuid} is in round {current}, not {got}")]
    WrongRound { netuid: u16, got: u64, current: u64 },
    #[error(
        "commits for round {round} closed at block {deadline} (this is block {height}); commit \
         in the next round"
    )]
    CommitClosed {
        round: u64,
        deadline: u64,
        height: u64,
    },
    #[error("{hotkey} already committed in round {round}: one commit per hotkey per round")]
    AlreadyCommitted { hotkey: Address, round: u64 },
    #[error(
        "reveals for round {round} open after the commit deadline, block {deadline} (this is \
         block {height})"
    )]
    RevealTooEarly {
        round: u64,
        deadline: u64,
        height: u64,
    },
    #[error("reveals for round {round} closed at block {reveal_end} (this is block {height})")]
    RevealClosed {
        round: u64,
        reveal_end: u64,
        height: u64,
    },
    #[error("{hotkey} has no commit in round {round} to reveal")]
    NoCommit { hotkey: Address, round: u64 },
    #[error("{hotkey} already revealed its update of round {round}")]
    AlreadyRevealed { hotkey: Address, round: u64 },
    #[error("{sender} is not the aggregator {aggregator} of subnet {netuid}'s run")]
    NotAggregator {
        netuid: u16,
        sender: Address,
        aggregator: Address,
    },
    #[error(
        "round {round}'s checkpoint can be published from block {from} (after the reveals end at \
         {reveal_end}); this is block {height}"
    )]
    PublishTooEarly {
        round: u64,
        reveal_end: u64,
        from: u64,
        height: u64,
    },
    #[error("accepted {accepted} is more than the {revealed} updates revealed in round {round}")]
    TooManyAccepted {
        round: u64,
        accepted: u64,
        revealed: u64,
    },
}

impl TrainingError {
    pub fn code(&self) -> &'static str {
        match self {
            TrainingError::UnknownSubnet { .. } => "training_unknown_subnet",
            TrainingError::NotOwner { .. } => "training_not_owner",
            TrainingError::BadTiming { .. } => "training_bad_timing",
            TrainingError::UnknownBlob { .. } => "training_unknown_blob",
            TrainingError::BlobNotCertified { .. } => "training_blob_not_certified",
            TrainingError::NoRun { .. } => "training_no_run",
            TrainingError::NotNeuron { .. } => "training_not_neuron",
            TrainingError::WrongRound { .. } => "training_wrong_round",
            TrainingError::CommitClosed { .. } => "training_commit_closed",
            TrainingError::AlreadyCommitted { .. } => "training_already_committed",
            TrainingError::RevealTooEarly { .. } => "training_reveal_too_early",
            TrainingError::RevealClosed { .. } => "training_reveal_closed",
            TrainingError::NoCommit { .. } => "training_no_commit",
            TrainingError::AlreadyRevealed { .. } => "training_already_revealed",
            TrainingError::NotAggregator { .. } => "training_not_aggregator",
            TrainingError::PublishTooEarly { .. } => "training_publish_too_early",
            TrainingError::TooManyAccepted { .. } => "training_too_many_accepted",
        }
    }
}

/// What a training transaction writes: the subnet's run as it is after it.
pub(crate) struct TrainingWrite {
    pub(crate) run: TrainingRun,
}

pub(crate) struct TrainingPlan {
    pub(crate) write: TrainingWrite,
    pub(crate) event: TrainingEvent,
}

fn err(e: TrainingError) -> TxError {
    TxError::Training(e)
}

/// Checks a training transaction of `sender` against `state` and works out what it writes.
pub(crate) fn plan_tx(
    state: &State,
    sender: Address,
    kind: &TxKind,
) -> Result<TrainingPlan, TxError> {
    let height = state.height() + 1;
    match kind {
        TxKind::StartTrainingRun(t) => {
            let subnet = state
                .subnets()
                .get(t.netuid)
                .ok_or(err(TrainingError::UnknownSubnet { netuid: t.netuid }))?;
            if subnet.owner != sender {
                return Err(err(TrainingError::NotOwner {
                    netuid: t.netuid,
                    sender,
                    owner: subnet.owner,
                }));
            }
            let phase = 1..=MAX_PHASE_BLOCKS;
            if !phase.contains(&t.roundBlocks) || !phase.contains(&t.revealBlocks) {
                return Err(err(TrainingError::BadTiming {
                    round_blocks: t.roundBlocks,
                    reveal_blocks: t.revealBlocks,
                }));
            }
            check_blob(state, t.checkpoint, true)?;
            let first = TrainingCheckpoint {
                round: 0,
                checkpoint: t.checkpoint,
                checkpoint_hash: t.checkpointHash,
                height,
                accepted: 0,
            };
            let mut run = TrainingRun {
                netuid: t.netuid,
                owner: sender,
                aggregator: t.aggregator,
                spec: t.spec,
                round_blocks: t.roundBlocks,
                reveal_blocks: t.revealBlocks,
                started_height: height,
                round: 0,
                round_start: height,
                deadline: 0,
                reveal_end: 0,
                checkpoint: t.checkpoint,
                checkpoint_hash: t.checkpointHash,
                updates: Vec::new(),
                history: vec![first],
            };
            begin_round(&mut run, 0, height);
            Ok(TrainingPlan {
                event: TrainingEvent::RunStarted {
                    netuid: t.netuid,
                    checkpoint: t.checkpoint,
                    aggregator: t.aggregator,
                },
                write: TrainingWrite { run },
            })
        }
        TxKind::CommitTrainingUpdate(t) => {
            let run = run_in_round(state, t.netuid, t.round)?;
            let subnet = state
                .subnets()
                .get(t.netuid)
                .ok_or(err(TrainingError::UnknownSubnet { netuid: t.netuid }))?;
            if subnet.uid_of(&sender).is_none() {
                return Err(err(TrainingError::NotNeuron {
                    netuid: t.netuid,
                    hotkey: sender,
                }));
            }
            if height > run.deadline {
                return Err(err(TrainingError::CommitClosed {
                    round: run.round,
                    deadline: run.deadline,
                    height,
                }));
            }
            if run.updates.iter().any(|u| u.hotkey == sender) {
                return Err(err(TrainingError::AlreadyCommitted {
                    hotkey: sender,
                    round: run.round,
                }));
            }
            let mut run = run.clone();
            // At most one commit per neuron: fewer than 2^16.
            let commit_index = u32::try_from(run.updates.len()).expect("commits per round fit u32");
            run.updates.push(TrainingUpdate {
                hotkey: sender,
                commit_index,
                update_hash: t.updateHash,
                committed_height: height,
                blob_id: None,
            });
            Ok(TrainingPlan {
                event: TrainingEvent::UpdateCommitted {
                    netuid: t.netuid,
                    round: run.round,
                    hotkey: sender,
                    update_hash: t.updateHash,
                },
                write: TrainingWrite { run },
            })
        }
        TxKind::RevealTrainingUpdate(t) => {
            let run = run_in_round(state, t.netuid, t.round)?;
            if height <= run.deadline {
                return Err(err(TrainingError::RevealTooEarly {
                    round: run.round,
                    deadline: run.deadline,
                    height,
                }));
            }
            if height > run.reveal_end {
                return Err(err(TrainingError::RevealClosed {
                    round: run.round,
                    reveal_end: run.reveal_end,
                    height,
                }));
            }
            let index = run
                .updates
                .iter()
                .position(|u| u.hotkey == sender)
                .ok_or(err(TrainingError::NoCommit {
                    hotkey: sender,
                    round: run.round,
                }))?;
            if run.updates[index].blob_id.is_some() {
                return Err(err(TrainingError::AlreadyRevealed {
                    hotkey: sender,
                    round: run.round,
                }));
            }
            check_blob(state, t.blobId, false)?;
            let mut run = run.clone();
            run.updates[index].blob_id = Some(t.blobId);
            Ok(TrainingPlan {
                event: TrainingEvent::UpdateRevealed {
                    netuid: t.netuid,
                    round: run.round,
                    hotkey: sender,
                    blob_id: t.blobId,
                },
                write: TrainingWrite { run },
            })
        }
        TxKind::PublishTrainingCheckpoint(t) => {
            let run = state
                .training()
                .run(t.netuid)
                .ok_or(err(TrainingError::NoRun { netuid: t.netuid }))?;
            if sender != run.aggregator {
                return Err(err(TrainingError::NotAggregator {
                    netuid: t.netuid,
                    sender,
                    aggregator: run.aggregator,
                }));
            }
            let run = run_in_round(state, t.netuid, t.round)?;
            if height <= run.reveal_end {
                return Err(err(TrainingError::PublishTooEarly {
                    round: run.round,
                    reveal_end: run.reveal_end,
                    from: run.reveal_end.saturating_add(1),
                    height,
                }));
            }
            check_blob(state, t.checkpoint, true)?;
            let revealed = run.updates.iter().filter(|u| u.blob_id.is_some()).count() as u64;
            if t.accepted > revealed {
                return Err(err(TrainingError::TooManyAccepted {
                    round: run.round,
                    accepted: t.accepted,
                    revealed,
                }));
            }
            let mut run = run.clone();
            let next = run.round + 1;
            run.history.push(TrainingCheckpoint {
                round: next,
                checkpoint: t.checkpoint,
                checkpoint_hash: t.checkpointHash,
                height,
                accepted: t.accepted,
            });
            run.checkpoint = t.checkpoint;
            run.checkpoint_hash = t.checkpointHash;
            run.updates.clear();
            begin_round(&mut run, next, height);
            Ok(TrainingPlan {
                event: TrainingEvent::CheckpointPublished {
                    netuid: t.netuid,
                    round: t.round,
                    checkpoint: t.checkpoint,
                    accepted: t.accepted,
                },
                write: TrainingWrite { run },
            })
        }
        other => unreachable!("{} is not a training transaction", other.type_name()),
    }
}

/// Sets `run` to round `round`, begun at block `height`: the one place the round's deadlines are
/// worked out.
fn begin_round(run: &mut TrainingRun, round: u64, height: u64) {
    run.round = round;
    run.round_start = height;
    run.deadline = height.saturating_add(run.round_blocks);
    run.reveal_end = run.deadline.saturating_add(run.reveal_blocks);
}

/// Subnet `netuid`'s run, if it is in round `round`.
fn run_in_round(state: &State, netuid: u16, round: u64) -> Result<&TrainingRun, TxError> {
    let run = state
        .training()
        .run(netuid)
        .ok_or(err(TrainingError::NoRun { netuid }))?;
    if run.round != round {
        return Err(err(TrainingError::WrongRound {
            netuid,
            got: round,
            current: run.round,
        }));
    }
    Ok(run)
}

/// Refuses a blob that is not registered (or was deleted), and, if `certified`, one that is not
/// certified.
fn check_blob(state: &State, blob_id: B256, certified: bool) -> Result<(), TxError> {
    let blob = state
        .storage()
        .blob(&blob_id)
        .filter(|b| !b.deleted)
        .ok_or(err(TrainingError::UnknownBlob { blob_id }))?;
    if certified && blob.certified_height.is_none() {
        return Err(err(TrainingError::BlobNotCertified { blob_id }));
    }
    Ok(())
}

#[cfg(test)]
#[path = "training_tests.rs"]
mod tests;
