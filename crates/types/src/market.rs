//! The compute market's parameters and shapes (the rules are in `mycel_state::market`):
//! providers offer machines, deployments ask for resources and escrow mUSD, providers bid a price
//! per block, the owner accepts one bid and the lease pays the provider from the escrow per block.

use crate::genesis::amount_string;
use crate::Amount;
use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

/// The chain's market parameters, fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketParams {
    /// The least MYC a bid locks (returned when the bid loses or its lease ends).
    #[serde(with = "amount_string")]
    pub min_bid_deposit: Amount,
    /// Open bids an order holds at most (a provider replacing its own bid does not count twice).
    pub max_bids_per_order: u16,
    /// The longest a bid may stay open, in blocks.
    pub max_bid_ttl: u64,
    /// Blocks a lease whose escrow ran dry stays paused (not closed) for a top-up.
    pub grace_blocks: u64,
    /// A lease notes a low balance when its escrow covers fewer blocks than this.
    pub low_balance_blocks: u64,
    /// A lease its owner reported down ends for provider failure when reported down again this
    /// many blocks (or more) later with no report of it serving in between.
    #[serde(default = "default_failure_blocks")]
    pub failure_blocks: u64,
    /// The part of a failed lease's deposit that is burned, in basis points (the rest goes back
    /// to the provider).
    #[serde(default = "default_failure_slash_bps")]
    pub failure_slash_bps: u16,
    /// Blocks a closed deployment stays readable before the chain forgets it.
    #[serde(default = "default_closed_retention_blocks")]
    pub closed_retention_blocks: u64,
}

fn default_closed_retention_blocks() -> u64 {
    MarketParams::default().closed_retention_blocks
}

fn default_failure_blocks() -> u64 {
    MarketParams::default().failure_blocks
}

fn default_failure_slash_bps() -> u16 {
    MarketParams::default().failure_slash_bps
}

impl Default for MarketParams {
    fn default() -> Self {
        MarketParams {
            min_bid_deposit: 10_000_000_000,
            max_bids_per_order: 20,
            max_bid_ttl: 3_600,
            grace_blocks: 600,
            low_balance_blocks: 600,
            failure_blocks: 20,
            failure_slash_bps: 5_000,
            closed_retention_blocks: 100_000,
        }
    }
}

/// What a deployment needs and a provider offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cores: u32,
    pub memory_mib: u64,
    pub disk_mib: u64,
}

impl Resources {
    /// Whether `self` fits in `room`.
    pub fn fits(&self, room: &Resources) -> bool {
        self.cores <= room.cores
            && self.memory_mib <= room.memory_mib
            && self.disk_mib <= room.disk_mib
    }

    pub fn plus(&self, other: &Resources) -> Option<Resources> {
        Some(Resources {
            cores: self.cores.checked_add(other.cores)?,
            memory_mib: self.memory_mib.checked_add(other.memory_mib)?,
            disk_mib: self.disk_mib.checked_add(other.disk_mib)?,
        })
    }

    /// `self − other` (saturating: never below zero).
    pub fn minus(&self, other: &Resources) -> Resources {
        Resources {
            cores: self.cores.saturating_sub(other.cores),
            memory_mib: self.memory_mib.saturating_sub(other.memory_mib),
            disk_mib: self.disk_mib.saturating_sub(other.disk_mib),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.cores == 0 && self.memory_mib == 0 && self.disk_mib == 0
    }
}

/// Why a lease or a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The owner closed the deployment.
    Owner,
    /// The provider closed the lease (the order reopens).
    Provider,
    /// The escrow ran dry and was not topped up within the grace period.
    InsufficientFunds,
    /// The owner's health checks found the lease down for `failure_blocks` (the order reopens).
    ProviderFailure,
}

impl CloseReason {
    /// Its name in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            CloseReason::Owner => "owner",
            CloseReason::Provider => "provider",
            CloseReason::InsufficientFunds => "insufficient_funds",
            CloseReason::ProviderFailure => "provider_failure",
        }
    }
}

/// A registered provider (`GET /v1/market/providers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    pub address: Address,
    /// Where its leases' endpoints and its status are served (`http://` or `https://`).
    pub endpoint: String,
    pub region: String,
    pub cpu_model: String,
    /// What it offers in all.
    pub capacity: Resources,
    /// What its leases hold now.
    pub used: Resources,
    /// Accounts that attested its current attributes (cleared when they change).
    pub auditors: Vec<Address>,
    pub registered_height: u64,
}

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Its order is open for bids.
    Open,
    /// A lease serves it and is paid per block.
    Leased,
    /// Its escrow ran dry: the provider stops serving, nothing is deleted, a top-up resumes it.
    Paused,
    Closed,
}

/// An open bid on a deployment's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    pub provider: Address,
    /// mUSD base units per block.
    #[serde(with = "amount_string")]
    pub price: Amount,
    /// MYC locked by the bid.
    #[serde(with = "amount_string")]
    pub deposit: Amount,
    /// The first height at which the bid can no longer be accepted.
    pub expires_at: u64,
}

/// The lease of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub provider: Address,
    #[serde(with = "amount_string")]
    pub price: Amount,
    #[serde(with = "amount_string")]
    pub deposit: Amount,
    pub started_at: u64,
    /// Blocks before this height are paid.
    pub settled_to: u64,
    /// Set while paused: the height its escrow ran dry.
    pub paused_at: Option<u64>,
    /// mUSD paid to the provider so far.
    #[serde(with = "amount_string")]
    pub paid: Amount,
    /// Where the provider serves the deployment (set by the provider; empty until then).
    #[serde(default)]
    pub endpoint: String,
    /// Set while its owner reports it down: the height of the first such report.
    #[serde(default)]
    pub down_since: Option<u64>,
}

/// Something that happened to a deployment, kept with it (the last [`MAX_NOTES`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum Note {
    Created,
    Leased {
        provider: Address,
        price: String,
    },
    /// The escrow covers fewer than `low_balance_blocks` more blocks.
    LowBalance {
        blocks_left: u64,
    },
    Paused,
    Resumed,
    /// The owner's health check found the lease not serving.
    LeaseDown {
        provider: Address,
    },
    /// Serving again after a report of it down.
    LeaseUp {
        provider: Address,
    },
    ToppedUp {
        amount: String,
    },
    LeaseClosed {
        provider: Address,
        reason: CloseReason,
    },
    Closed {
        reason: CloseReason,
        refunded: String,
    },
}

/// Notes kept per deployment.
pub const MAX_NOTES: usize = 32;

/// A deployment (`GET /v1/market/deployments/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: u64,
    pub owner: Address,
    /// SHA-256 of its manifest (what to run; the manifest goes to the provider off chain).
    pub manifest: B256,
    /// The model's blob id (zero if none).
    pub model: B256,
    pub resources: Resources,
    /// A region providers must be in (empty: any).
    pub region: String,
    /// Auditors who must all have attested a provider.
    pub auditors: Vec<Address>,
    /// The most it pays per block (mUSD base units).
    #[serde(with = "amount_string")]
    pub max_price: Amount,
    /// mUSD held for its lease.
    #[serde(with = "amount_string")]
    pub escrow: Amount,
    pub state: DeploymentState,
    pub bids: Vec<Bid>,
    pub lease: Option<Lease>,
    pub created_at: u64,
    /// Heights and what happened, oldest first.
    pub notes: Vec<(u64, Note)>,
}

/// What a market transaction did (`action` says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum MarketEvent {
    ProviderRegistered {
        provider: Address,
    },
    ProviderAttested {
        provider: Address,
        auditor: Address,
    },
    DeploymentCreated {
        deployment: u64,
    },
    BidPlaced {
        deployment: u64,
        provider: Address,
        price: String,
    },
    LeaseCreated {
        deployment: u64,
        provider: Address,
        price: String,
    },
    ToppedUp {
        deployment: u64,
        escrow: String,
        resumed: bool,
    },
    Withdrawn {
        deployment: u64,
        provider: Address,
        paid: String,
    },
    LeaseClosed {
        deployment: u64,
        provider: Address,
        paid: String,
        reason: CloseReason,
    },
    /// A lease ended for provider failure: `burned` MYC of its deposit were burned.
    LeaseFailed {
        deployment: u64,
        provider: Address,
        paid: String,
        burned: String,
    },
    DeploymentClosed {
        deployment: u64,
        refunded: String,
    },
    EndpointSet {
        deployment: u64,
        endpoint: String,
    },
    /// The owner's health report; `down_since` is set while it is reported down.
    LeaseHealth {
        deployment: u64,
        provider: Address,
        serving: bool,
        down_since: Option<u64>,
    },
}

/// `GET /v1/market`: the market's parameters and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketInfo {
    pub params: MarketParams,
    pub providers: u64,
    pub deployments: u64,
    /// The height the next transaction runs at.
    pub height: u64,
}

/// `GET /v1/market/providers?after=ADDRESS`: providers in address order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderList {
    pub providers: Vec<Provider>,
    pub next: Option<Address>,
}

/// `GET /v1/market/deployments?after=ID&state=S&owner=A`: deployments in id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentList {
    pub deployments: Vec<Deployment>,
    /// Pass as `after` for the next page (also when a page ends early: the scan is bounded).
    pub next: Option<u64>,
}

impl DeploymentState {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeploymentState::Open => "open",
            DeploymentState::Leased => "leased",
            DeploymentState::Paused => "paused",
            DeploymentState::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<DeploymentState> {
        [
            DeploymentState::Open,
            DeploymentState::Leased,
            DeploymentState::Paused,
            DeploymentState::Closed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}
