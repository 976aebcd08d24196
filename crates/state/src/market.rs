//! The compute market (Akash's semantics; docs/compute.md): providers offer machines,
//! deployments escrow mUSD and ask for resources, providers bid a price per block, the owner
//! accepts one bid and the lease pays the provider from the escrow, per block, exactly.
//!
//! Rules:
//! - `RegisterProvider`: an `http(s)` endpoint (≤ [`MAX_ENDPOINT_BYTES`]), a region (≤
//!   [`MAX_LABEL_BYTES`]), a CPU model, capacity (cores ≥ 1). Again: new attributes; a change of
//!   region, CPU model or capacity clears the provider's attestations; capacity never below what
//!   its leases hold.
//! - `AttestProvider` (any account but the provider): the sender vouches for the provider's current
//!   attributes.
//! - `CreateDeployment`: resources (cores ≥ 1), `maxPrice` ≥ 1 mUSD base unit per block, at most
//!   [`MAX_AUDITORS`] required auditors, a region or none; `deposit` ≥ `maxPrice` mUSD moves from
//!   the sender into the deployment's escrow. Its order opens (numbered from 1).
//! - `PlaceBid` (a registered provider): on an open order, `1 ≤ price ≤ maxPrice`, `deposit ≥
//!   min_bid_deposit` MYC locked, `1 ≤ ttl ≤ max_bid_ttl`; the provider's free capacity fits the
//!   deployment, its region matches, every required auditor attested it. Bidding again replaces
//!   the provider's bid (the old deposit returned). Expired bids are dropped (deposits returned)
//!   before counting; at most `max_bids_per_order` open bids.
//! - `AcceptBid` (the owner): an unexpired bid whose provider still has room, escrow covering at
//!   least one block. The lease starts: the provider's capacity is held, its deposit stays
//!   locked, every other bid is returned.
//! - **Payment**: a lease costs `price` per block from the block it starts. It is settled lazily
//!   (on `WithdrawLease`, `TopUpDeployment`, a close) and exactly: the full blocks the escrow
//!   covers are paid, never a fraction. When the escrow covers no further block the lease
//!   **pauses** at that height (a step at the end of the block; the provider stops serving,
//!   nothing is deleted); paused blocks are not paid. A top-up that covers a block resumes it
//!   from the block of the top-up. A lease paused for `grace_blocks` closes for insufficient
//!   funds (deposit back to the provider, the escrow's rest to the owner). When the escrow covers
//!   fewer than `low_balance_blocks` more blocks the deployment notes it once per funding.
//! - `TopUpDeployment` (anyone): more escrow, on a deployment not closed.
//! - `WithdrawLease` (the lease's provider): pays what the lease earned to this block.
//! - `CloseDeployment` (the owner): the lease is paid to this block and its deposit returned, open
//!   bids returned, the rest of the escrow refunded; closed for good.
//! - `CloseLease` (the lease's provider): paid to this block, deposit returned, capacity freed;
//!   the order reopens for bids.
//! - `SetLeaseEndpoint` (the lease's provider): where it serves the deployment (`http(s)`, or
//!   empty while it does not).
//! - `ReportLeaseHealth` (the owner, on a lease that is not paused): its health check. A report
//!   of it down marks the lease down from that block; a report of it down again
//!   `failure_blocks` or more later (with no report of it serving in between) ends the lease for
//!   **provider failure**: it is paid to this block (so an owner gains nothing by a false
//!   report), `failure_slash_bps` of its deposit is burned and the rest returned, its capacity
//!   freed, and the order reopens for bids. A report of it serving clears the mark.
//!
//! A closed deployment stays readable for `closed_retention_blocks`, then the chain forgets it
//! (ids are never reused). What the deployments hold in all is kept as they change, not summed
//! per block.
//!
//! Books: the deployments' escrows are in the mUSD books and bid and lease deposits in the MYC
//! books (what a failure burns moves to the burned MYC), asserted after every block. Every
//! deployment keeps its last [`MAX_NOTES`] notes.
//!
//! State root: every applied market transaction and every block step that changed something
//! extends a running digest, folded in as `keccak(0x11 ‖ root ‖ d)`.

use crate::{bank, Account, State, TxError};
use alloy_primitives::{Address, B256, U256};
use mycel_types::market::{
    Bid, CloseReason, Deployment, DeploymentState, Lease, MarketEvent, MarketParams, Note,
    Provider, Resources, MAX_NOTES,
};
use mycel_types::{Amount, Token, TxKind};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The longest provider endpoint in bytes.
pub const MAX_ENDPOINT_BYTES: usize = 256;
/// The longest region or CPU model in bytes.
pub const MAX_LABEL_BYTES: usize = 64;
/// The most auditors a deployment may require.
pub const MAX_AUDITORS: usize = 8;

/// When a deployment's lease next needs the block step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Due {
    /// The height its escrow runs dry (active lease).
    dry: Option<u64>,
    /// The height to note a low balance (once per funding).
    low: Option<u64>,
    /// The height its grace ends (paused lease).
    grace: Option<u64>,
    /// Low balance already noted since the last top-up.
    warned: bool,
}

/// The market.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Market {
    providers: BTreeMap<Address, Provider>,
    deployments: BTreeMap<u64, Deployment>,
    due: BTreeMap<u64, Due>,
    /// `(height, deployment)` for each kind of due step, in the order they run.
    dry_at: BTreeSet<(u64, u64)>,
    low_at: BTreeSet<(u64, u64)>,
    grace_at: BTreeSet<(u64, u64)>,
    /// `(height, deployment)`: closed deployments to forget at that height.
    #[serde(default)]
    prune_at: BTreeSet<(u64, u64)>,
    /// The id the next deployment gets (ids are never reused, also after pruning).
    #[serde(default)]
    next_id: u64,
    digest: crate::merkle::RunningDigest,
    /// mUSD in escrows and MYC in deposits, kept as deployments change (recounted on load).
    #[serde(skip)]
    held: Held,
}

/// What the deployments hold, in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Held {
    escrow: Amount,
    deposits: Amount,
}

impl Held {
    fn of(d: &Deployment) -> Held {
        let bids: Amount = d.bids.iter().map(|b| b.deposit).sum();
        Held {
            escrow: d.escrow,
            deposits: bids + d.lease.as_ref().map_or(0, |l| l.deposit),
        }
    }

    /// `self − before + after`.
    fn changed(self, before: Held, after: Held) -> Held {
        Held {
            escrow: self.escrow - before.escrow + after.escrow,
            deposits: self.deposits - before.deposits + after.deposits,
        }
    }
}

impl Market {
    pub fn provider(&self, address: &Address) -> Option<&Provider> {
        self.providers.get(address)
    }

    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values()
    }

    /// Providers with addresses after `after` (all if `None`), in address order.
    pub fn providers_after(&self, after: Option<Address>) -> impl Iterator<Item = &Provider> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.providers
            .range((start, Bound::Unbounded))
            .map(|(_, p)| p)
    }

    pub fn provider_count(&self) -> usize {
        self.providers.len()
    }

    pub fn deployment(&self, id: u64) -> Option<&Deployment> {
        self.deployments.get(&id)
    }

    /// How many deployments the chain holds (closed ones until their retention ends).
    pub fn deployment_count(&self) -> usize {
        self.deployments.len()
    }

    /// The id the next deployment gets (ids count from 1).
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.max(1)
    }

    /// Deployments with ids after `after`, in id order.
    pub fn deployments_after(&self, after: u64) -> impl Iterator<Item = &Deployment> {
        self.deployments.range(after + 1..).map(|(_, d)| d)
    }

    /// mUSD held in escrow.
    pub fn escrowed(&self) -> Amount {
        self.held.escrow
    }

    /// MYC locked by bids and leases.
    pub fn deposits(&self) -> Amount {
        self.held.deposits
    }

    /// Counts what the deployments hold again (after loading a snapshot, which does not store
    /// it), and the next id of a snapshot written before ids were counted apart.
    pub(crate) fn recount(&mut self) {
        self.held = self.deployments.values().fold(Held::default(), |all, d| {
            all.changed(Held::default(), Held::of(d))
        });
        if let Some((last, _)) = self.deployments.last_key_value() {
            self.next_id = self.next_id.max(last + 1);
        }
    }

    pub(crate) fn fold_root(&self, root: B256) -> B256 {
        self.digest.fold(0x11, root)
    }

    pub(crate) fn apply(
        &mut self,
        write: MarketWrite,
        tx_hash: B256,
        height: u64,
        p: &MarketParams,
    ) {
        if let Some(provider) = write.provider {
            self.providers.insert(provider.address, provider);
        }
        if let Some(deployment) = write.deployment {
            let id = deployment.id;
            let after = Held::of(&deployment);
            let before = self
                .deployments
                .insert(id, deployment)
                .map_or(Held::default(), |d| Held::of(&d));
            self.held = self.held.changed(before, after);
            self.next_id = self.next_id.max(id + 1);
            self.reschedule(id, height, p);
        }
        self.digest.extend(0x12, tx_hash);
    }

    /// Recomputes when deployment `id` next needs the block step.
    fn reschedule(&mut self, id: u64, height: u64, p: &MarketParams) {
        let mut due = self.due.remove(&id).unwrap_or_default();
        for (set, at) in [
            (&mut self.dry_at, due.dry),
            (&mut self.low_at, due.low),
            (&mut self.grace_at, due.grace),
        ] {
            if let Some(at) = at {
                set.remove(&(at, id));
            }
        }
        let d = &self.deployments[&id];
        due.dry = None;
        due.low = None;
        due.grace = None;
        match (d.state, d.lease.as_ref()) {
            (DeploymentState::Leased, Some(lease)) => {
                let dry = dry_height(d.escrow, lease);
                if dry.saturating_sub(height) > p.low_balance_blocks {
                    due.warned = false;
                }
                due.dry = Some(dry);
                if !due.warned {
                    due.low = Some(dry.saturating_sub(p.low_balance_blocks).max(height));
                }
            }
            (DeploymentState::Paused, Some(lease)) => {
                due.grace = lease.paused_at.map(|at| at.saturating_add(p.grace_blocks));
            }
            (DeploymentState::Closed, _) => {
                self.prune_at
                    .insert((height.saturating_add(p.closed_retention_blocks), id));
            }
            _ => {}
        }
        for (set, at) in [
            (&mut self.dry_at, due.dry),
            (&mut self.low_at, due.low),
            (&mut self.grace_at, due.grace),
        ] {
            if let Some(at) = at {
                set.insert((at, id));
            }
        }
        if due != Due::default() {
            self.due.insert(id, due);
        }
    }
}

/// The height from which `escrow` no longer pays `lease`.
fn dry_height(escrow: Amount, lease: &Lease) -> u64 {
    let covered = u64::try_from(escrow / lease.price.max(1)).unwrap_or(u64::MAX);
    lease.settled_to.saturating_add(covered)
}

/// Pays `d`'s active lease from its escrow for the blocks before `to`, as many as the escrow
/// covers; what was paid.
fn settle(d: &mut Deployment, to: u64) -> Amount {
    let Some(lease) = d.lease.as_mut() else {
        return 0;
    };
    if lease.paused_at.is_some() || to <= lease.settled_to {
        return 0;
    }
    let covered = u64::try_from(d.escrow / lease.price).unwrap_or(u64::MAX);
    let blocks = (to - lease.settled_to).min(covered);
    let paid = lease.price * u128::from(blocks);
    d.escrow -= paid;
    lease.settled_to += blocks;
    lease.paid += paid;
    paid
}

fn note(d: &mut Deployment, height: u64, note: Note) {
    if d.notes.len() == MAX_NOTES {
        d.notes.remove(0);
    }
    d.notes.push((height, note));
}

/// Why a market transaction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum MarketError {
    #[error("endpoint `{endpoint}` is not an http(s) URL of at most {MAX_ENDPOINT_BYTES} bytes")]
    BadEndpoint { endpoint: String },
    #[error("{field} is over {MAX_LABEL_BYTES} bytes or has control characters")]
    BadLabel { field: String },
    #[error("resources need at least one core (and fit the chain's limits)")]
    BadResources,
    #[error("capacity {capacity:?} is below what the provider's leases hold ({used:?})")]
    CapacityBelowUsed {
        capacity: Resources,
        used: Resources,
    },
    #[error("{address} is not a registered provider")]
    NotAProvider { address: Address },
    #[error("a provider cannot attest itself")]
    SelfAttestation,
    #[error("auditors must be 0 to {MAX_AUDITORS} addresses of 20 bytes each; got {bytes} bytes")]
    BadAuditors { bytes: usize },
    #[error("maxPrice must be at least 1 mUSD base unit per block")]
    ZeroPrice,
    #[error("the deposit {deposit} must cover at least one block at maxPrice {max_price}")]
    DepositTooSmall { deposit: String, max_price: String },
    #[error("no deployment {deployment}")]
    UnknownDeployment { deployment: u64 },
    #[error("deployment {deployment} is {state:?}: {what}")]
    WrongState {
        deployment: u64,
        state: DeploymentState,
        what: String,
    },
    #[error("{sender} is not the owner of deployment {deployment}")]
    NotOwner { deployment: u64, sender: Address },
    #[error("{sender} is not the provider of deployment {deployment}'s lease")]
    NotLeaseProvider { deployment: u64, sender: Address },
    #[error("price {price} is not between 1 and the deployment's maxPrice {max_price}")]
    PriceOutOfRange { price: String, max_price: String },
    #[error("a bid locks at least {min} MYC base units; got {deposit}")]
    BidDepositTooSmall { deposit: String, min: String },
    #[error("ttl {ttl}: a bid stays open 1 to {max} blocks")]
    BadTtl { ttl: u64, max: u64 },
    #[error("order {deployment} already holds {max} open bids")]
    TooManyBids { deployment: u64, max: u16 },
    #[error("provider {provider} has {free:?} free; the deployment needs {needed:?}")]
    OverCapacity {
        provider: Address,
        free: Resources,
        needed: Resources,
    },
    #[error("provider {provider} is in region `{region}`; the deployment needs `{needed}`")]
    WrongRegion {
        provider: Address,
        region: String,
        needed: String,
    },
    #[error(
        "provider {provider} is not attested by auditor {auditor}, whom the deployment requires"
    )]
    NotAttested { provider: Address, auditor: Address },
    #[error("no open bid of {provider} on deployment {deployment}")]
    NoBid { deployment: u64, provider: Address },
    #[error("the bid of {provider} expired at height {expired_at}")]
    BidExpired { provider: Address, expired_at: u64 },
    #[error("the escrow {escrow} does not cover one block at {price}: top it up first")]
    EscrowShort { escrow: String, price: String },
}

impl MarketError {
    pub fn code(&self) -> &'static str {
        match self {
            MarketError::BadEndpoint { .. } => "market_bad_endpoint",
            MarketError::BadLabel { .. } => "market_bad_label",
            MarketError::BadResources => "market_bad_resources",
            MarketError::CapacityBelowUsed { .. } => "market_capacity_below_used",
            MarketError::NotAProvider { .. } => "market_not_a_provider",
            MarketError::SelfAttestation => "market_self_attestation",
            MarketError::BadAuditors { .. } => "market_bad_auditors",
            MarketError::ZeroPrice => "market_zero_price",
            MarketError::DepositTooSmall { .. } => "market_deposit_too_small",
            MarketError::UnknownDeployment { .. } => "market_unknown_deployment",
            MarketError::WrongState { .. } => "market_wrong_state",
            MarketError::NotOwner { .. } => "market_not_owner",
            MarketError::NotLeaseProvider { .. } => "market_not_lease_provider",
            MarketError::PriceOutOfRange { .. } => "market_price_out_of_range",
            MarketError::BidDepositTooSmall { .. } => "market_bid_deposit_too_small",
            MarketError::BadTtl { .. } => "market_bad_ttl",
            MarketError::TooManyBids { .. } => "market_too_many_bids",
            MarketError::OverCapacity { .. } => "market_over_capacity",
            MarketError::WrongRegion { .. } => "market_wrong_region",
            MarketError::NotAttested { .. } => "market_not_attested",
            MarketError::NoBid { .. } => "market_no_bid",
            MarketError::BidExpired { .. } => "market_bid_expired",
            MarketError::EscrowShort { .. } => "market_escrow_short",
        }
    }
}

/// What a market transaction writes besides accounts.
pub(crate) struct MarketWrite {
    provider: Option<Provider>,
    deployment: Option<Deployment>,
    /// MYC burned (a failed lease's deposit cut).
    pub(crate) burned: Amount,
}

pub(crate) struct MarketPlan {
    pub(crate) writes: Vec<(Address, Account)>,
    pub(crate) event: MarketEvent,
    pub(crate) write: MarketWrite,
}

fn err(e: MarketError) -> TxError {
    TxError::Market(e)
}

fn amount(value: U256) -> Result<Amount, TxError> {
    u128::try_from(value).map_err(|_| TxError::AmountTooLarge(value.to_string()))
}

/// What every market transaction's checks read.
struct Plan<'a> {
    market: &'a Market,
    params: &'a MarketParams,
    sender: Address,
    height: u64,
}

/// Checks a market transaction against `state` and works out what it writes; `payer` is the
/// sender's account after its fee and nonce.
pub(crate) fn plan_tx(
    state: &State,
    sender: Address,
    payer: Account,
    kind: &TxKind,
    delegated_owner: Option<Address>,
) -> Result<MarketPlan, TxError> {
    let mut accounts = bank::Touched::new(state, sender, payer);
    let c = Plan {
        market: state.market(),
        params: &state.params().market,
        sender,
        height: state.height() + 1,
    };
    let (event, write) = match kind {
        TxKind::RegisterProvider(t) => register_provider(&c, t)?,
        TxKind::AttestProvider(t) => attest(&c, t)?,
        TxKind::CreateDeployment(t) => create(&c, &mut accounts, t, c.market.next_id())?,
        TxKind::PlaceBid(t) => place_bid(&c, &mut accounts, t)?,
        TxKind::AcceptBid(t) => accept_bid(&c, &mut accounts, t)?,
        TxKind::TopUpDeployment(t) => top_up(&c, &mut accounts, t, delegated_owner)?,
        TxKind::WithdrawLease(t) => withdraw(&c, &mut accounts, t.deployment)?,
        TxKind::CloseDeployment(t) => close_deployment(&c, &mut accounts, t.deployment)?,
        TxKind::CloseLease(t) => close_lease(&c, &mut accounts, t.deployment)?,
        TxKind::SetLeaseEndpoint(t) => set_endpoint(&c, t)?,
        TxKind::ReportLeaseHealth(t) => report_health(&c, &mut accounts, t)?,
        other => unreachable!("{} is not a market transaction", other.type_name()),
    };
    Ok(MarketPlan {
        writes: accounts.writes(),
        event,
        write,
    })
}

/// An `http(s)` URL of at most [`MAX_ENDPOINT_BYTES`], without whitespace or control characters.
fn check_endpoint(endpoint: &str) -> Result<(), TxError> {
    let url_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
    if !url_ok
        || endpoint.len() > MAX_ENDPOINT_BYTES
        || endpoint
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
    {
        return Err(err(MarketError::BadEndpoint {
            endpoint: endpoint.chars().take(80).collect(),
        }));
    }
    Ok(())
}

fn check_label(field: &str, value: &str) -> Result<(), TxError> {
    if value.len() > MAX_LABEL_BYTES || value.chars().any(char::is_control) {
        return Err(err(MarketError::BadLabel {
            field: field.into(),
        }));
    }
    Ok(())
}

fn resources(cores: u64, memory_mib: u64, disk_mib: u64) -> Result<Resources, TxError> {
    let cores = u32::try_from(cores).map_err(|_| err(MarketError::BadResources))?;
    if cores == 0 {
        return Err(err(MarketError::BadResources));
    }
    Ok(Resources {
        cores,
        memory_mib,
        disk_mib,
    })
}

type Planned = (MarketEvent, MarketWrite);

fn register_provider(
    c: &Plan<'_>,
    t: &mycel_types::tx::RegisterProvider,
) -> Result<Planned, TxError> {
    check_endpoint(&t.endpoint)?;
    check_label("region", &t.region)?;
    check_label("cpuModel", &t.cpuModel)?;
    let capacity = resources(t.cores, t.memoryMib, t.diskMib)?;
    let existing = c.market.providers.get(&c.sender);
    let used = existing.map_or(Resources::default(), |p| p.used);
    if !used.fits(&capacity) {
        return Err(err(MarketError::CapacityBelowUsed { capacity, used }));
    }
    let same_attributes = existing.is_some_and(|p| {
        p.region == t.region && p.cpu_model == t.cpuModel && p.capacity == capacity
    });
    let provider = Provider {
        address: c.sender,
        endpoint: t.endpoint.clone(),
        region: t.region.clone(),
        cpu_model: t.cpuModel.clone(),
        capacity,
        used,
        auditors: match existing {
            Some(p) if same_attributes => p.auditors.clone(),
            _ => Vec::new(),
        },
        registered_height: existing.map_or(c.height, |p| p.registered_height),
    };
    Ok((
        MarketEvent::ProviderRegistered { provider: c.sender },
        MarketWrite {
            provider: Some(provider),
            deployment: None,
            burned: 0,
        },
    ))
}

fn registered<'a>(market: &'a Market, address: &Address) -> Result<&'a Provider, TxError> {
    market
        .providers
        .get(address)
        .ok_or(err(MarketError::NotAProvider { address: *address }))
}

fn attest(c: &Plan<'_>, t: &mycel_types::tx::AttestProvider) -> Result<Planned, TxError> {
    if t.provider == c.sender {
        return Err(err(MarketError::SelfAttestation));
    }
    let mut provider = registered(c.market, &t.provider)?.clone();
    if !provider.auditors.contains(&c.sender) {
        provider.auditors.push(c.sender);
        provider.auditors.sort();
    }
    Ok((
        MarketEvent::ProviderAttested {
            provider: t.provider,
            auditor: c.sender,
        },
        MarketWrite {
            provider: Some(provider),
            deployment: None,
            burned: 0,
        },
    ))
}

fn create(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    t: &mycel_types::tx::CreateDeployment,
    id: u64,
) -> Result<Planned, TxError> {
    let needed = resources(t.cores, t.memoryMib, t.diskMib)?;
    check_label("region", &t.region)?;
    let bytes = t.auditors.len();
    if !bytes.is_multiple_of(20) || bytes / 20 > MAX_AUDITORS {
        return Err(err(MarketError::BadAuditors { bytes }));
    }
    let mut auditors: Vec<Address> = t
        .auditors
        .chunks_exact(20)
        .map(Address::from_slice)
        .collect();
    auditors.sort();
    auditors.dedup();
    let max_price = amount(t.maxPrice)?;
    if max_price == 0 {
        return Err(err(MarketError::ZeroPrice));
    }
    let deposit = amount(t.deposit)?;
    if deposit < max_price {
        return Err(err(MarketError::DepositTooSmall {
            deposit: deposit.to_string(),
            max_price: max_price.to_string(),
        }));
    }
    accounts.debit(c.sender, Token::Musd, deposit)?;
    let mut deployment = Deployment {
        id,
        owner: c.sender,
        manifest: t.manifest,
        model: t.model,
        resources: needed,
        region: t.region.clone(),
        auditors,
        max_price,
        escrow: deposit,
        state: DeploymentState::Open,
        bids: Vec::new(),
        lease: None,
        created_at: c.height,
        notes: Vec::new(),
    };
    note(&mut deployment, c.height, Note::Created);
    Ok((
        MarketEvent::DeploymentCreated { deployment: id },
        MarketWrite {
            provider: None,
            deployment: Some(deployment),
            burned: 0,
        },
    ))
}

fn deployment(market: &Market, id: u64) -> Result<&Deployment, TxError> {
    market
        .deployments
        .get(&id)
        .ok_or(err(MarketError::UnknownDeployment { deployment: id }))
}

fn wrong_state(d: &Deployment, what: &'static str) -> TxError {
    err(MarketError::WrongState {
        deployment: d.id,
        state: d.state,
        what: what.into(),
    })
}

/// Whether `provider` may serve `d`: room, region, attestations.
fn suits(provider: &Provider, d: &Deployment) -> Result<(), TxError> {
    let free = provider.capacity.minus(&provider.used);
    if !d.resources.fits(&free) {
        return Err(err(MarketError::OverCapacity {
            provider: provider.address,
            free,
            needed: d.resources,
        }));
    }
    if !d.region.is_empty() && d.region != provider.region {
        return Err(err(MarketError::WrongRegion {
            provider: provider.address,
            region: provider.region.clone(),
            needed: d.region.clone(),
        }));
    }
    if let Some(auditor) = d.auditors.iter().find(|a| !provider.auditors.contains(a)) {
        return Err(err(MarketError::NotAttested {
            provider: provider.address,
            auditor: *auditor,
        }));
    }
    Ok(())
}

/// Returns the deposits of `bids` to their providers.
fn return_bids(accounts: &mut bank::Touched<'_>, bids: &[Bid]) -> Result<(), TxError> {
    for bid in bids {
        accounts.credit(bid.provider, Token::Myc, bid.deposit)?;
    }
    Ok(())
}

fn place_bid(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    t: &mycel_types::tx::PlaceBid,
) -> Result<Planned, TxError> {
    let provider = registered(c.market, &c.sender)?;
    let mut d = deployment(c.market, t.deployment)?.clone();
    if d.state != DeploymentState::Open {
        return Err(wrong_state(&d, "only an open order takes bids"));
    }
    let price = amount(t.price)?;
    if price == 0 || price > d.max_price {
        return Err(err(MarketError::PriceOutOfRange {
            price: price.to_string(),
            max_price: d.max_price.to_string(),
        }));
    }
    let deposit = amount(t.deposit)?;
    if deposit < c.params.min_bid_deposit {
        return Err(err(MarketError::BidDepositTooSmall {
            deposit: deposit.to_string(),
            min: c.params.min_bid_deposit.to_string(),
        }));
    }
    if t.ttl == 0 || t.ttl > c.params.max_bid_ttl {
        return Err(err(MarketError::BadTtl {
            ttl: t.ttl,
            max: c.params.max_bid_ttl,
        }));
    }
    suits(provider, &d)?;
    // Expired bids and the provider's own earlier bid go back to their providers.
    let (gone, kept): (Vec<Bid>, Vec<Bid>) = d
        .bids
        .iter()
        .partition(|b| b.expires_at <= c.height || b.provider == c.sender);
    return_bids(accounts, &gone)?;
    if kept.len() >= usize::from(c.params.max_bids_per_order) {
        return Err(err(MarketError::TooManyBids {
            deployment: d.id,
            max: c.params.max_bids_per_order,
        }));
    }
    accounts.debit(c.sender, Token::Myc, deposit)?;
    d.bids = kept;
    d.bids.push(Bid {
        provider: c.sender,
        price,
        deposit,
        expires_at: c.height.saturating_add(t.ttl),
    });
    // Cheapest first, then the earlier provider address: the order the owner reads them in.
    d.bids.sort_by_key(|b| (b.price, b.provider));
    Ok((
        MarketEvent::BidPlaced {
            deployment: d.id,
            provider: c.sender,
            price: price.to_string(),
        },
        MarketWrite {
            provider: None,
            deployment: Some(d),
            burned: 0,
        },
    ))
}

fn owned(d: &Deployment, sender: Address) -> Result<(), TxError> {
    if d.owner != sender {
        return Err(err(MarketError::NotOwner {
            deployment: d.id,
            sender,
        }));
    }
    Ok(())
}

fn accept_bid(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    t: &mycel_types::tx::AcceptBid,
) -> Result<Planned, TxError> {
    let mut d = deployment(c.market, t.deployment)?.clone();
    owned(&d, c.sender)?;
    if d.state != DeploymentState::Open {
        return Err(wrong_state(&d, "only an open order can be leased"));
    }
    let bid = *d
        .bids
        .iter()
        .find(|b| b.provider == t.provider)
        .ok_or(err(MarketError::NoBid {
            deployment: d.id,
            provider: t.provider,
        }))?;
    if bid.expires_at <= c.height {
        return Err(err(MarketError::BidExpired {
            provider: bid.provider,
            expired_at: bid.expires_at,
        }));
    }
    let mut provider = registered(c.market, &t.provider)?.clone();
    suits(&provider, &d)?;
    if d.escrow < bid.price {
        return Err(err(MarketError::EscrowShort {
            escrow: d.escrow.to_string(),
            price: bid.price.to_string(),
        }));
    }
    let others: Vec<Bid> = d
        .bids
        .iter()
        .filter(|b| b.provider != bid.provider)
        .copied()
        .collect();
    return_bids(accounts, &others)?;
    provider.used = provider
        .used
        .plus(&d.resources)
        .ok_or(err(MarketError::BadResources))?;
    d.bids.clear();
    d.lease = Some(Lease {
        provider: bid.provider,
        price: bid.price,
        deposit: bid.deposit,
        started_at: c.height,
        settled_to: c.height,
        paused_at: None,
        paid: 0,
        endpoint: String::new(),
        down_since: None,
    });
    d.state = DeploymentState::Leased;
    note(
        &mut d,
        c.height,
        Note::Leased {
            provider: bid.provider,
            price: bid.price.to_string(),
        },
    );
    Ok((
        MarketEvent::LeaseCreated {
            deployment: d.id,
            provider: bid.provider,
            price: bid.price.to_string(),
        },
        MarketWrite {
            provider: Some(provider),
            deployment: Some(d),
            burned: 0,
        },
    ))
}

/// `TopUpDeployment`; `delegated_owner` is whose mUSD a delegated key moves (its allowance
/// checked by the caller), only into that owner's deployments.
fn top_up(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    t: &mycel_types::tx::TopUpDeployment,
    delegated_owner: Option<Address>,
) -> Result<Planned, TxError> {
    let mut d = deployment(c.market, t.deployment)?.clone();
    if d.state == DeploymentState::Closed {
        return Err(wrong_state(&d, "a closed deployment takes no more escrow"));
    }
    if let Some(owner) = delegated_owner {
        owned(&d, owner)?;
    }
    let value = amount(t.amount)?;
    accounts.debit(delegated_owner.unwrap_or(c.sender), Token::Musd, value)?;
    // Pay the lease to now first: the new escrow pays from here on.
    let paid = settle(&mut d, c.height);
    if let Some(lease) = &d.lease {
        accounts.credit(lease.provider, Token::Musd, paid)?;
    }
    d.escrow = d
        .escrow
        .checked_add(value)
        .ok_or_else(|| TxError::AmountTooLarge(value.to_string()))?;
    note(
        &mut d,
        c.height,
        Note::ToppedUp {
            amount: value.to_string(),
        },
    );
    let mut resumed = false;
    if let (DeploymentState::Paused, Some(lease)) = (d.state, d.lease.as_mut()) {
        if d.escrow >= lease.price {
            lease.paused_at = None;
            lease.settled_to = c.height;
            d.state = DeploymentState::Leased;
            resumed = true;
            note(&mut d, c.height, Note::Resumed);
        }
    }
    Ok((
        MarketEvent::ToppedUp {
            deployment: d.id,
            escrow: d.escrow.to_string(),
            resumed,
        },
        MarketWrite {
            provider: None,
            deployment: Some(d),
            burned: 0,
        },
    ))
}

/// The deployment whose lease `sender` provides.
fn lease_of(c: &Plan<'_>, id: u64) -> Result<Deployment, TxError> {
    let d = deployment(c.market, id)?;
    match &d.lease {
        Some(lease) if lease.provider == c.sender => Ok(d.clone()),
        _ => Err(err(MarketError::NotLeaseProvider {
            deployment: id,
            sender: c.sender,
        })),
    }
}

fn withdraw(c: &Plan<'_>, accounts: &mut bank::Touched<'_>, id: u64) -> Result<Planned, TxError> {
    let mut d = lease_of(c, id)?;
    let paid = settle(&mut d, c.height);
    accounts.credit(c.sender, Token::Musd, paid)?;
    Ok((
        MarketEvent::Withdrawn {
            deployment: id,
            provider: c.sender,
            paid: paid.to_string(),
        },
        MarketWrite {
            provider: None,
            deployment: Some(d),
            burned: 0,
        },
    ))
}

/// Ends `d`'s lease (paid to `height`, its deposit back but `cut`, capacity freed); the provider
/// as it is after, and what the lease was paid now.
fn end_lease(
    market: &Market,
    d: &mut Deployment,
    height: u64,
    reason: CloseReason,
    cut: Amount,
    accounts: &mut bank::Touched<'_>,
) -> Result<(Option<Provider>, Amount), TxError> {
    let paid = settle(d, height);
    let Some(lease) = d.lease.take() else {
        return Ok((None, 0));
    };
    accounts.credit(lease.provider, Token::Musd, paid)?;
    accounts.credit(lease.provider, Token::Myc, lease.deposit - cut)?;
    let provider = market.providers.get(&lease.provider).map(|p| Provider {
        used: p.used.minus(&d.resources),
        ..p.clone()
    });
    note(
        d,
        height,
        Note::LeaseClosed {
            provider: lease.provider,
            reason,
        },
    );
    Ok((provider, paid))
}

fn close_deployment(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    id: u64,
) -> Result<Planned, TxError> {
    let mut d = deployment(c.market, id)?.clone();
    owned(&d, c.sender)?;
    if d.state == DeploymentState::Closed {
        return Err(wrong_state(&d, "it is closed already"));
    }
    let (provider, _) = end_lease(c.market, &mut d, c.height, CloseReason::Owner, 0, accounts)?;
    let bids = std::mem::take(&mut d.bids);
    return_bids(accounts, &bids)?;
    let refunded = std::mem::take(&mut d.escrow);
    accounts.credit(d.owner, Token::Musd, refunded)?;
    d.state = DeploymentState::Closed;
    note(
        &mut d,
        c.height,
        Note::Closed {
            reason: CloseReason::Owner,
            refunded: refunded.to_string(),
        },
    );
    Ok((
        MarketEvent::DeploymentClosed {
            deployment: id,
            refunded: refunded.to_string(),
        },
        MarketWrite {
            provider,
            deployment: Some(d),
            burned: 0,
        },
    ))
}

fn close_lease(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    id: u64,
) -> Result<Planned, TxError> {
    let mut d = lease_of(c, id)?;
    let (provider, paid) = end_lease(
        c.market,
        &mut d,
        c.height,
        CloseReason::Provider,
        0,
        accounts,
    )?;
    d.state = DeploymentState::Open;
    Ok((
        MarketEvent::LeaseClosed {
            deployment: id,
            provider: c.sender,
            paid: paid.to_string(),
            reason: CloseReason::Provider,
        },
        MarketWrite {
            provider,
            deployment: Some(d),
            burned: 0,
        },
    ))
}

fn set_endpoint(c: &Plan<'_>, t: &mycel_types::tx::SetLeaseEndpoint) -> Result<Planned, TxError> {
    let mut d = lease_of(c, t.deployment)?;
    // Empty: not served now.
    if !t.endpoint.is_empty() {
        check_endpoint(&t.endpoint)?;
    }
    if let Some(lease) = d.lease.as_mut() {
        lease.endpoint = t.endpoint.clone();
    }
    Ok((
        MarketEvent::EndpointSet {
            deployment: t.deployment,
            endpoint: t.endpoint.clone(),
        },
        MarketWrite {
            provider: None,
            deployment: Some(d),
            burned: 0,
        },
    ))
}

fn report_health(
    c: &Plan<'_>,
    accounts: &mut bank::Touched<'_>,
    t: &mycel_types::tx::ReportLeaseHealth,
) -> Result<Planned, TxError> {
    let mut d = deployment(c.market, t.deployment)?.clone();
    owned(&d, c.sender)?;
    if d.state != DeploymentState::Leased {
        return Err(wrong_state(
            &d,
            "only a lease that is not paused is checked",
        ));
    }
    let lease = d.lease.as_mut().expect("a leased deployment has a lease");
    let provider = lease.provider;
    let failed = match (t.serving, lease.down_since) {
        (true, None) => false,
        (true, Some(_)) => {
            lease.down_since = None;
            note(&mut d, c.height, Note::LeaseUp { provider });
            false
        }
        (false, None) => {
            lease.down_since = Some(c.height);
            note(&mut d, c.height, Note::LeaseDown { provider });
            false
        }
        (false, Some(since)) => c.height.saturating_sub(since) >= c.params.failure_blocks,
    };
    if !failed {
        let down_since = d.lease.as_ref().and_then(|l| l.down_since);
        return Ok((
            MarketEvent::LeaseHealth {
                deployment: d.id,
                provider,
                serving: t.serving,
                down_since,
            },
            MarketWrite {
                provider: None,
                deployment: Some(d),
                burned: 0,
            },
        ));
    }
    let deposit = d.lease.as_ref().map_or(0, |l| l.deposit);
    let burned = deposit * u128::from(c.params.failure_slash_bps.min(10_000)) / 10_000;
    let (provider_after, paid) = end_lease(
        c.market,
        &mut d,
        c.height,
        CloseReason::ProviderFailure,
        burned,
        accounts,
    )?;
    d.state = DeploymentState::Open;
    Ok((
        MarketEvent::LeaseFailed {
            deployment: d.id,
            provider,
            paid: paid.to_string(),
            burned: burned.to_string(),
        },
        MarketWrite {
            provider: provider_after,
            deployment: Some(d),
            burned,
        },
    ))
}

/// Takes the earliest `(height, deployment)` of `set` due by `height`.
fn due_by(set: &mut BTreeSet<(u64, u64)>, height: u64) -> Option<(u64, u64)> {
    set.first()
        .is_some_and(|(at, _)| *at <= height)
        .then(|| set.pop_first())
        .flatten()
}

/// Credits the block step makes: (account, token, amount).
pub(crate) type Credits = Vec<(Address, Token, Amount)>;

/// The end of block `height`: leases whose escrow runs dry at `height` pause (paid to it), low
/// balances are noted, and leases paused for the grace period close for insufficient funds.
pub(crate) fn block_step(market: &mut Market, height: u64, p: &MarketParams) -> Credits {
    let mut credits = Credits::new();
    let mut touched = BTreeSet::new();
    while let Some((at, id)) = due_by(&mut market.dry_at, height) {
        if let Some(due) = market.due.get_mut(&id) {
            due.dry = None;
        }
        market.change(id, |d| {
            let paid = settle(d, at);
            if let Some(lease) = d.lease.as_mut() {
                credits.push((lease.provider, Token::Musd, paid));
                lease.paused_at = Some(at);
                d.state = DeploymentState::Paused;
                note(d, at, Note::Paused);
            }
        });
        touched.insert(id);
    }
    while let Some((_, id)) = due_by(&mut market.low_at, height) {
        market.change(id, |d| {
            if let (DeploymentState::Leased, Some(lease)) = (d.state, d.lease.clone()) {
                let blocks_left = dry_height(d.escrow, &lease).saturating_sub(height);
                note(d, height, Note::LowBalance { blocks_left });
            }
        });
        if let Some(due) = market.due.get_mut(&id) {
            due.low = None;
            due.warned = true;
        }
        touched.insert(id);
    }
    while let Some((_, id)) = due_by(&mut market.grace_at, height) {
        if let Some(due) = market.due.get_mut(&id) {
            due.grace = None;
        }
        let mut freed = None;
        market.change(id, |d| {
            if d.state != DeploymentState::Paused {
                return;
            }
            if let Some(lease) = d.lease.take() {
                credits.push((lease.provider, Token::Myc, lease.deposit));
                freed = Some((lease.provider, d.resources));
                note(
                    d,
                    height,
                    Note::LeaseClosed {
                        provider: lease.provider,
                        reason: CloseReason::InsufficientFunds,
                    },
                );
            }
            let refunded = std::mem::take(&mut d.escrow);
            credits.push((d.owner, Token::Musd, refunded));
            d.state = DeploymentState::Closed;
            note(
                d,
                height,
                Note::Closed {
                    reason: CloseReason::InsufficientFunds,
                    refunded: refunded.to_string(),
                },
            );
        });
        if let Some((address, resources)) = freed {
            if let Some(provider) = market.providers.get_mut(&address) {
                provider.used = provider.used.minus(&resources);
            }
        }
        touched.insert(id);
    }
    // Closed deployments past their retention are forgotten (they hold nothing).
    let mut pruned = Vec::new();
    while let Some((_, id)) = due_by(&mut market.prune_at, height) {
        if let Some(d) = market.deployments.remove(&id) {
            debug_assert_eq!(
                Held::of(&d),
                Held::default(),
                "a closed deployment holds nothing"
            );
            market.due.remove(&id);
            pruned.push(id);
        }
    }
    for id in &touched {
        market.reschedule(*id, height + 1, p);
    }
    for (tag, ids) in [(0x13, touched.into_iter().collect()), (0x14, pruned)] {
        for id in ids {
            let mut input = [0u8; 32];
            input[..8].copy_from_slice(&height.to_be_bytes());
            input[8..16].copy_from_slice(&id.to_be_bytes());
            market.digest.extend(tag, B256::from(input));
        }
    }
    credits.retain(|(_, _, amount)| *amount > 0);
    credits
}

impl Market {
    /// Changes deployment `id` in place (the block step), keeping the totals it holds.
    fn change(&mut self, id: u64, f: impl FnOnce(&mut Deployment)) {
        let d = self
            .deployments
            .get_mut(&id)
            .expect("a scheduled deployment");
        let before = Held::of(d);
        f(d);
        self.held = self.held.changed(before, Held::of(d));
    }
}

#[cfg(test)]
#[path = "market_tests.rs"]
mod tests;
