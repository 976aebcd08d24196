//! Transactions of the training subnet (the rules are in `mycel_state::training`).
//!
//! A subnet's owner starts a **training run** ([`StartTrainingRun`]): the first checkpoint (a
//! certified blob), the hash of the run's specification (model, inner steps, codec, scoring), the
//! aggregator that publishes checkpoints, and the round's timing. Each round then goes:
//! - until the deadline (`roundBlocks` blocks after the round began) a registered hotkey commits
//!   the keccak-256 hash of its compressed update ([`CommitTrainingUpdate`]), once per round;
//! - in the `revealBlocks` blocks after the deadline it names the blob holding the update
//!   ([`RevealTrainingUpdate`]): nobody's update is readable before every commit is in, so
//!   nobody can copy one within the round;
//! - after that the aggregator publishes the next checkpoint ([`PublishTrainingCheckpoint`]),
//!   which begins the next round.

use super::incentive::{field_u16, MessageJson};
use super::{field_address, field_b256, field_u256, field_u64, DecodeError};
use alloy_primitives::Address;
use alloy_sol_types::sol;
use serde_json::{json, Value};

sol! {
    /// The owner `from` of subnet `netuid` starts a training run from checkpoint blob
    /// `checkpoint` (whose bytes hash to `checkpointHash`, SHA-256), with specification hash
    /// `spec`; `aggregator` publishes the checkpoints; a round takes `roundBlocks` blocks of
    /// commits and `revealBlocks` blocks of reveals. Replaces a finished or stalled run of the
    /// subnet.
    #[derive(Debug, PartialEq, Eq)]
    struct StartTrainingRun {
        address from;
        uint16 netuid;
        bytes32 checkpoint;
        bytes32 checkpointHash;
        bytes32 spec;
        address aggregator;
        uint64 roundBlocks;
        uint64 revealBlocks;
        uint64 nonce;
        uint256 fee;
    }

    /// Hotkey `from` commits to its update for round `round` of subnet `netuid`'s run:
    /// `updateHash` is the keccak-256 hash of the update's bytes.
    #[derive(Debug, PartialEq, Eq)]
    struct CommitTrainingUpdate {
        address from;
        uint16 netuid;
        uint64 round;
        bytes32 updateHash;
        uint64 nonce;
        uint256 fee;
    }

    /// Hotkey `from` names the blob `blobId` that holds its committed update for round `round`.
    #[derive(Debug, PartialEq, Eq)]
    struct RevealTrainingUpdate {
        address from;
        uint16 netuid;
        uint64 round;
        bytes32 blobId;
        uint64 nonce;
        uint256 fee;
    }

    /// The run's aggregator publishes the checkpoint that round `round` produced: blob
    /// `checkpoint`, whose bytes hash to `checkpointHash` (SHA-256), built from `accepted`
    /// updates. The next round begins.
    #[derive(Debug, PartialEq, Eq)]
    struct PublishTrainingCheckpoint {
        address from;
        uint16 netuid;
        uint64 round;
        bytes32 checkpoint;
        bytes32 checkpointHash;
        uint64 accepted;
        uint64 nonce;
        uint256 fee;
    }
}

fn addr(a: &Address) -> Value {
    Value::String(a.to_checksum(None))
}

impl MessageJson for StartTrainingRun {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "netuid": self.netuid,
               "checkpoint": self.checkpoint.to_string(),
               "checkpointHash": self.checkpointHash.to_string(), "spec": self.spec.to_string(),
               "aggregator": addr(&self.aggregator), "roundBlocks": self.roundBlocks,
               "revealBlocks": self.revealBlocks, "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(StartTrainingRun {
            from: field_address(m, "from")?,
            netuid: field_u16(m, "netuid")?,
            checkpoint: field_b256(m, "checkpoint")?,
            checkpointHash: field_b256(m, "checkpointHash")?,
            spec: field_b256(m, "spec")?,
            aggregator: field_address(m, "aggregator")?,
            roundBlocks: field_u64(m, "roundBlocks")?,
            revealBlocks: field_u64(m, "revealBlocks")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for CommitTrainingUpdate {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "netuid": self.netuid, "round": self.round,
               "updateHash": self.updateHash.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(CommitTrainingUpdate {
            from: field_address(m, "from")?,
            netuid: field_u16(m, "netuid")?,
            round: field_u64(m, "round")?,
            updateHash: field_b256(m, "updateHash")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for RevealTrainingUpdate {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "netuid": self.netuid, "round": self.round,
               "blobId": self.blobId.to_string(), "nonce": self.nonce,
               "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(RevealTrainingUpdate {
            from: field_address(m, "from")?,
            netuid: field_u16(m, "netuid")?,
            round: field_u64(m, "round")?,
            blobId: field_b256(m, "blobId")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}

impl MessageJson for PublishTrainingCheckpoint {
    fn to_message(&self) -> Value {
        json!({"from": addr(&self.from), "netuid": self.netuid, "round": self.round,
               "checkpoint": self.checkpoint.to_string(),
               "checkpointHash": self.checkpointHash.to_string(), "accepted": self.accepted,
               "nonce": self.nonce, "fee": self.fee.to_string()})
    }
    fn from_message(m: &Value) -> Result<Self, DecodeError> {
        Ok(PublishTrainingCheckpoint {
            from: field_address(m, "from")?,
            netuid: field_u16(m, "netuid")?,
            round: field_u64(m, "round")?,
            checkpoint: field_b256(m, "checkpoint")?,
            checkpointHash: field_b256(m, "checkpointHash")?,
            accepted: field_u64(m, "accepted")?,
            nonce: field_u64(m, "nonce")?,
            fee: field_u256(m, "fee")?,
        })
    }
}
