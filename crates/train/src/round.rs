//! The aggregator's step at the end of a round: the accepted updates, in hotkey order, averaged
//! and applied by the outer optimizer. Accepted means a score above zero and not a copy: an
//! update whose bytes equal one committed earlier in the round (lower commit index, the order of
//! the commits on chain) is refused, so a verbatim copy earns nothing whatever its loss drop. Validators that recompute it from
//! the same checkpoint, updates and scores get the same bits (see [`crate::outer`]).

use crate::outer::{mean_of_updates, OuterError, OuterOptimizer};
use crate::score::UpdateScore;
use crate::sparseloco::CompressedUpdate;

/// One miner's published update and the score a validator gave it.
pub struct ScoredUpdate<'a> {
    pub hotkey: &'a [u8],
    /// Position of the miner's commit among the round's commits.
    pub commit_index: u64,
    pub update: &'a CompressedUpdate,
    pub score: UpdateScore,
}

/// What the round produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundOutcome {
    /// The next checkpoint.
    pub checkpoint: Vec<f32>,
    /// Hotkeys whose updates were averaged, in the order they were summed.
    pub accepted: Vec<Vec<u8>>,
    /// Hotkeys refused as copies of an earlier commit, in hotkey order.
    pub copies: Vec<Vec<u8>>,
}

/// Averages the updates with a positive score, ordered by hotkey (duplicates refused), and takes
/// the outer step from `checkpoint`. With no accepted update the checkpoint carries over and the
/// optimizer is left as it was.
pub fn aggregate(
    checkpoint: &[f32],
    optimizer: &mut OuterOptimizer,
    updates: &[ScoredUpdate<'_>],
) -> Result<RoundOutcome, OuterError> {
    let copies = copied(updates);
    let mut accepted: Vec<&ScoredUpdate<'_>> = updates
        .iter()
        .filter(|u| u.score.score_micros > 0 && !copies.contains(&u.hotkey))
        .collect();
    accepted.sort_by(|a, b| a.hotkey.cmp(b.hotkey));
    accepted.dedup_by(|a, b| a.hotkey == b.hotkey);
    let mut next = checkpoint.to_vec();
    if !accepted.is_empty() {
        let parts: Vec<&CompressedUpdate> = accepted.iter().map(|u| u.update).collect();
        let mean = mean_of_updates(&parts, checkpoint.len())?;
        optimizer.step(&mut next, &mean)?;
    }
    Ok(RoundOutcome {
        checkpoint: next,
        accepted: accepted.iter().map(|u| u.hotkey.to_vec()).collect(),
        copies: copies.into_iter().map(<[u8]>::to_vec).collect(),
    })
}

/// Hotkeys whose update bytes equal those of an update committed earlier (ties in commit index
/// broken by hotkey), sorted.
fn copied<'a>(updates: &[ScoredUpdate<'a>]) -> Vec<&'a [u8]> {
    let mut by_commit: Vec<(u64, &'a [u8], Vec<u8>)> = updates
        .iter()
        .map(|u| (u.commit_index, u.hotkey, u.update.to_bytes()))
        .collect();
    by_commit.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut seen: std::collections::BTreeSet<&[u8]> = std::collections::BTreeSet::new();
    let mut copies = Vec::new();
    for (_, hotkey, bytes) in &by_commit {
        if !seen.insert(bytes.as_slice()) {
            copies.push(*hotkey);
        }
    }
    copies.sort();
    copies
}
