//! What an applied transaction did: its receipt and events, in `GET /v1/txs/{hash}`, in every
//! block's transactions and in the block stream.

use super::incentive::Side;
use crate::Token;
use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// The receipt of an applied transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxReceipt {
    pub hash: B256,
    pub from: Address,
    pub nonce: u64,
    /// The transaction type (`Transfer`, `AddStake`, …).
    #[serde(rename = "type")]
    pub tx_type: String,
    /// What it did, in order.
    pub events: Vec<Event>,
}

impl TxReceipt {
    /// The incentive events of the receipt.
    pub fn incentive_events(&self) -> impl Iterator<Item = &IncentiveEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Incentive(i) => Some(i),
            _ => None,
        })
    }

    /// The channel events of the receipt.
    pub fn channel_events(&self) -> impl Iterator<Item = &ChannelEvent> {
        self.events.iter().filter_map(|e| match e {
            Event::Channel(c) => Some(c),
            _ => None,
        })
    }
}

/// Something a transaction did (`event` names which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Transfer {
        token: Token,
        from: Address,
        to: Address,
        #[serde(with = "super::amount")]
        amount: u128,
    },
    FeeBurned {
        from: Address,
        #[serde(with = "super::amount")]
        amount: u128,
    },
    /// Subnets, neurons, weights and stake (`action` says which).
    Incentive(IncentiveEvent),
    /// An EIP-3009 authorization `(authorizer, nonce)` executed and can never execute again.
    AuthorizationUsed { authorizer: Address, nonce: B256 },
    /// A payment channel was opened, topped up, claimed from, or withdrawn (`action`).
    Channel(ChannelEvent),
    /// An agent was registered or changed, or rated (`action`).
    Agent(super::AgentEvent),
    /// A job was created, funded, delivered or settled (`action`).
    Job(super::JobEvent),
    /// An allowance was granted or revoked, or a delegated key spent its owner's tokens.
    Allowance(super::AllowanceEvent),
    /// A storage node or a blob was registered, certified, extended or deleted (`action`).
    Storage(super::StorageEvent),
    /// A provider, deployment, bid or lease of the compute market changed (`action`).
    Market(crate::market::MarketEvent),
    /// A training run was started, an update committed or revealed, or a checkpoint published
    /// (`action`).
    Training(super::TrainingEvent),
}

impl Event {
    /// The agent event, if it is one.
    pub fn into_agent(self) -> Option<super::AgentEvent> {
        match self {
            Event::Agent(a) => Some(a),
            _ => None,
        }
    }

    /// The job event, if it is one.
    pub fn into_job(self) -> Option<super::JobEvent> {
        match self {
            Event::Job(j) => Some(j),
            _ => None,
        }
    }
}

/// Something an incentive-layer transaction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum IncentiveEvent {
    SubnetRegistered {
        netuid: u16,
        owner: Address,
        owner_hotkey: Address,
        /// MYC locked (the pool's first liquidity).
        #[serde(with = "super::amount")]
        lock: u128,
    },
    SubnetParamsSet {
        netuid: u16,
        names: Vec<String>,
        values: Vec<u64>,
    },
    NeuronRegistered {
        netuid: u16,
        uid: u16,
        hotkey: Address,
        coldkey: Address,
        #[serde(with = "super::amount")]
        burned: u128,
        /// The hotkey this registration replaced, if the subnet was full.
        replaced: Option<Address>,
    },
    EndpointServed {
        netuid: u16,
        uid: u16,
        host: String,
        port: u16,
        protocol: String,
    },
    WeightsSet {
        netuid: u16,
        uid: u16,
        count: usize,
    },
    WeightsCommitted {
        netuid: u16,
        uid: u16,
        hash: B256,
    },
    StakeOrdered {
        netuid: u16,
        hotkey: Address,
        side: Side,
        /// MYC for a stake, alpha for an unstake; it fills at the end of the block.
        #[serde(with = "super::amount")]
        amount: u128,
    },
}

/// Something a payment-channel transaction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ChannelEvent {
    Opened {
        channel: B256,
        payer: Address,
        payee: Address,
        #[serde(with = "super::amount")]
        deposit: u128,
    },
    ToppedUp {
        channel: B256,
        #[serde(with = "super::amount")]
        amount: u128,
    },
    Claimed {
        channel: B256,
        /// Paid to the payee by this claim.
        #[serde(with = "super::amount")]
        paid: u128,
        /// Paid to the payee in total.
        #[serde(with = "super::amount")]
        claimed: u128,
    },
    WithdrawRequested {
        channel: B256,
        withdraw_at_s: u64,
    },
    Withdrawn {
        channel: B256,
        #[serde(with = "super::amount")]
        refunded: u128,
    },
}
