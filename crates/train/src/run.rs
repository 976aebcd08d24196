//! A training run's specification and its checkpoints as bytes (the blobs whose ids the chain
//! holds).
//!
//! [`RunSpec`] is everything miners and validators must agree on: the model, the inner steps,
//! the codec, the scoring rule, the outer step, the first checkpoint's seed and how many windows
//! a validator measures on. Its hash (SHA-256 of its JSON) is on chain in `StartTrainingRun`, and
//! every checkpoint carries the spec itself, so a role needs nothing but the checkpoint to start.
//!
//! Checkpoint format (all integers little-endian, like the `f32`s):
//! `"MCKP" ‖ version u8 = 1 ‖ spec length u32 ‖ spec JSON ‖ round u64 ‖ n u64 ‖ θ: n × f32 ‖
//! velocity: n × f32`. The outer optimizer's velocity travels with θ, so any validator (or one
//! restarted) can compute the next checkpoint from this one and the round's updates alone.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::inner::InnerConfig;
use crate::model::{ModelConfig, Params};
use crate::outer::{OuterOptimizer, DEFAULT_OUTER_LR, DEFAULT_OUTER_MOMENTUM};
use crate::score::ScoringRule;
use crate::sparseloco::SparseLocoConfig;
use crate::TrainError;

pub const MAGIC: [u8; 4] = *b"MCKP";
pub const VERSION: u8 = 1;
/// The longest spec a checkpoint may carry.
pub const MAX_SPEC_BYTES: usize = 16 * 1024;

/// What every participant of a run agrees on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub model: ModelConfig,
    pub inner: InnerConfig,
    pub codec: SparseLocoConfig,
    pub scoring: ScoringRule,
    pub outer_lr: f32,
    pub outer_momentum: f32,
    /// The first checkpoint's seed ([`Params::init`]), hex on the wire.
    #[serde(with = "hex_seed")]
    pub seed: [u8; 32],
    /// Held-out windows every update is measured on (the same for the whole run).
    pub held_out_windows: usize,
    /// Random training windows drawn per round to compare with a miner's own shard.
    pub random_windows: usize,
    /// Windows per forward pass when measuring.
    pub eval_batch: usize,
}

impl RunSpec {
    /// The subnet's model (15.8M parameters) with the default inner steps: what `mycel train
    /// start` runs unless told otherwise.
    pub fn subnet() -> RunSpec {
        RunSpec {
            model: ModelConfig::SUBNET,
            inner: InnerConfig::default(),
            codec: SparseLocoConfig::default(),
            scoring: ScoringRule::default(),
            outer_lr: DEFAULT_OUTER_LR,
            outer_momentum: DEFAULT_OUTER_MOMENTUM,
            seed: [0; 32],
            held_out_windows: 32,
            random_windows: 32,
            eval_batch: 8,
        }
    }

    /// The tiny model (3.3M parameters) with short rounds: a devnet's and the tests' run, a few
    /// seconds a round on one core.
    pub fn tiny() -> RunSpec {
        RunSpec {
            model: ModelConfig::TINY,
            inner: InnerConfig {
                steps: 8,
                batch: 4,
                ..InnerConfig::default()
            },
            held_out_windows: 12,
            eval_batch: 4,
            ..RunSpec::subnet()
        }
    }

    /// A spec by name: `tiny` or `subnet`.
    pub fn named(name: &str) -> Result<RunSpec, TrainError> {
        match name {
            "tiny" => Ok(RunSpec::tiny()),
            "subnet" => Ok(RunSpec::subnet()),
            other => Err(TrainError::Config(format!(
                "unknown run '{other}' (known: tiny, subnet)"
            ))),
        }
    }

    /// Checks every part is usable.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.model.validate()?;
        self.codec
            .validate()
            .map_err(|e| TrainError::Config(e.to_string()))?;
        OuterOptimizer::new(0, self.outer_lr, self.outer_momentum)
            .map_err(|e| TrainError::Config(e.to_string()))?;
        if self.inner.steps == 0 || self.inner.batch == 0 {
            return Err(TrainError::Config(
                "a round needs at least one step of one window".into(),
            ));
        }
        if self.held_out_windows == 0 || self.random_windows == 0 || self.eval_batch == 0 {
            return Err(TrainError::Config(
                "held_out_windows, random_windows and eval_batch must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a spec serialises")
    }

    /// SHA-256 of [`to_json`](Self::to_json): what `StartTrainingRun` puts on chain.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.to_json()).into()
    }

    /// Tokens per window: the context and the next token.
    pub fn window(&self) -> usize {
        self.model.context + 1
    }

    /// The largest update a miner may send for this model: every chunk full (the codec's own
    /// size for `n` parameters). Anything longer is refused before it is read.
    pub fn max_update_bytes(&self) -> u64 {
        let n = self.model.parameter_count() as u64;
        crate::sparseloco::wire_len(n, self.codec.chunk, self.codec.top_k) as u64
    }

    /// The held-out windows every update of the run is measured on.
    pub fn held_out(&self, corpus: &crate::corpus::Corpus) -> Vec<Vec<u32>> {
        corpus.held_out_windows(&self.seed, self.held_out_windows, self.window())
    }
}

/// One checkpoint: θ and the outer optimizer's velocity, for round `round` of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub spec: RunSpec,
    /// The round that trains from it.
    pub round: u64,
    pub params: Vec<f32>,
    pub velocity: Vec<f32>,
}

impl Checkpoint {
    /// The run's first checkpoint: θ from the seed, zero velocity.
    pub fn first(spec: RunSpec) -> Result<Checkpoint, TrainError> {
        spec.validate()?;
        let params = Params::init(spec.model, spec.seed)?.to_flat()?;
        let velocity = vec![0.0; params.len()];
        Ok(Checkpoint {
            spec,
            round: 0,
            params,
            velocity,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let spec = self.spec.to_json();
        let n = self.params.len();
        let mut out = Vec::with_capacity(4 + 1 + 4 + spec.len() + 16 + 8 * n);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(spec.len() as u32).to_le_bytes());
        out.extend_from_slice(&spec);
        out.extend_from_slice(&self.round.to_le_bytes());
        out.extend_from_slice(&(n as u64).to_le_bytes());
        for v in self.params.iter().chain(&self.velocity) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Reads a checkpoint, checking its layout, that its spec is valid and that θ has the
    /// spec's parameter count.
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, TrainError> {
        let bad = |why: String| TrainError::Config(format!("not a checkpoint: {why}"));
        let mut at = 0usize;
        let mut take = |len: usize| -> Result<&[u8], TrainError> {
            let end = at
                .checked_add(len)
                .filter(|end| *end <= bytes.len())
                .ok_or_else(|| bad(format!("{} bytes end early", bytes.len())))?;
            let part = &bytes[at..end];
            at = end;
            Ok(part)
        };
        if take(4)? != MAGIC {
            return Err(bad("it does not start with MCKP".into()));
        }
        let version = take(1)?[0];
        if version != VERSION {
            return Err(bad(format!(
                "version {version}, this build reads {VERSION}"
            )));
        }
        let spec_len = u32::from_le_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        if spec_len > MAX_SPEC_BYTES {
            return Err(bad(format!("a {spec_len}-byte spec")));
        }
        let spec: RunSpec = serde_json::from_slice(take(spec_len)?)
            .map_err(|e| bad(format!("its spec does not parse: {e}")))?;
        spec.validate()?;
        let round = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let n = u64::from_le_bytes(take(8)?.try_into().expect("8 bytes"));
        let expected = spec.model.parameter_count() as u64;
        if n != expected {
            return Err(bad(format!("{n} parameters, its model has {expected}")));
        }
        let n = n as usize;
        let floats = take(8 * n)?;
        if at != bytes.len() {
            return Err(bad(format!("{} bytes left over", bytes.len() - at)));
        }
        let mut values = floats
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")));
        let params: Vec<f32> = values.by_ref().take(n).collect();
        let velocity: Vec<f32> = values.collect();
        Ok(Checkpoint {
            spec,
            round,
            params,
            velocity,
        })
    }

    /// SHA-256 of the bytes: what the chain holds beside the blob id.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }

    /// The outer optimizer as this checkpoint left it.
    pub fn optimizer(&self) -> Result<OuterOptimizer, TrainError> {
        OuterOptimizer::resume(
            self.spec.outer_lr,
            self.spec.outer_momentum,
            self.velocity.clone(),
        )
        .map_err(|e| TrainError::Config(e.to_string()))
    }
}

mod hex_seed {
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(seed: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(seed))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(de::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| de::Error::custom("a seed is 32 bytes (64 hex digits)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_and_refuses_damage() {
        let mut first = Checkpoint::first(RunSpec::tiny()).unwrap();
        first.velocity[3] = 0.5;
        first.round = 7;
        let bytes = first.to_bytes();
        assert_eq!(Checkpoint::from_bytes(&bytes).unwrap(), first);
        assert!(Checkpoint::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Checkpoint::from_bytes(&longer).is_err());
        let mut wrong_magic = bytes.clone();
        wrong_magic[0] = b'X';
        assert!(Checkpoint::from_bytes(&wrong_magic).is_err());
        // a spec length past the end is refused, not allocated
        let mut huge = bytes[..5].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Checkpoint::from_bytes(&huge).is_err());
    }

    #[test]
    fn the_largest_update_bound_holds_a_full_update() {
        let spec = RunSpec::tiny();
        let n = spec.model.parameter_count();
        let dense: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) * 1e-3).collect();
        let update = crate::sparseloco::ErrorFeedback::new(n)
            .compress(&dense, &spec.codec)
            .unwrap();
        assert_eq!(update.to_bytes().len() as u64, spec.max_update_bytes());
    }

    #[test]
    fn the_spec_hash_is_stable() {
        assert_eq!(RunSpec::tiny().hash(), RunSpec::tiny().hash());
        assert_ne!(RunSpec::tiny().hash(), RunSpec::subnet().hash());
        let json = RunSpec::tiny().to_json();
        let back: RunSpec = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, RunSpec::tiny());
    }
}
