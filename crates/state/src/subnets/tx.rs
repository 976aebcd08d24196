//! Incentive-layer transactions: [`plan_tx`] checks everything and says what to write;
//! [`apply_write`] writes it and cannot fail.

use super::pool::{breaks_limit, Side};
use super::*;
use crate::incentive::math::vec_u16_max_upscale_to_u16;
use crate::{debit, to_amount, Account, State, TxError};
use mycel_types::{tx::weights_commit_hash, Token, TxKind};

/// What a planned incentive transaction writes besides the payer's account.
#[derive(Debug, Clone)]
pub(crate) enum IncentiveWrite {
    NewSubnet(Box<Subnet>),
    Params {
        netuid: u16,
        params: HyperParams,
    },
    Register {
        netuid: u16,
        uid: u16,
        neuron: Neuron,
        burned: u128,
    },
    Endpoint {
        netuid: u16,
        uid: u16,
        endpoint: Endpoint,
    },
    Weights {
        netuid: u16,
        uid: u16,
        weights: Vec<(u16, u16)>,
        block: u64,
        /// For a reveal: the index of the commit it consumes (after expired ones are dropped).
        consumed_commit: Option<usize>,
    },
    Commit {
        netuid: u16,
        hotkey: Address,
        commits: Vec<WeightsCommit>,
    },
    Order(Order),
}

impl IncentiveWrite {
    fn netuid(&self) -> u16 {
        match self {
            IncentiveWrite::NewSubnet(s) => s.netuid,
            IncentiveWrite::Params { netuid, .. }
            | IncentiveWrite::Register { netuid, .. }
            | IncentiveWrite::Endpoint { netuid, .. }
            | IncentiveWrite::Weights { netuid, .. }
            | IncentiveWrite::Commit { netuid, .. } => *netuid,
            IncentiveWrite::Order(o) => o.netuid,
        }
    }
}

pub(crate) struct Planned {
    pub payer: Account,
    pub events: Vec<IncentiveEvent>,
    pub write: IncentiveWrite,
}

/// Whether `kind` is a stake or unstake order (settled in the block's batch).
pub(crate) fn is_swap(kind: &TxKind) -> bool {
    matches!(kind, TxKind::AddStake(_) | TxKind::RemoveStake(_))
}

fn err(e: IncentiveError) -> TxError {
    TxError::Incentive(e)
}

fn subnet(state: &State, netuid: u16) -> Result<&Subnet, TxError> {
    state
        .subnets
        .subnets
        .get(&netuid)
        .ok_or(err(IncentiveError::NoSubnet { netuid }))
}

fn neuron_uid(s: &Subnet, hotkey: Address) -> Result<u16, TxError> {
    s.uid_of(&hotkey).ok_or(err(IncentiveError::NotRegistered {
        hotkey,
        netuid: s.netuid,
    }))
}

/// Checks an incentive-layer transaction against `state`; `payer` is the sender's account with
/// the fee already taken and the nonce bumped.
pub(crate) fn plan_tx(
    state: &State,
    sender: Address,
    kind: &TxKind,
    mut payer: Account,
) -> Result<Planned, TxError> {
    let block = state.height + 1;
    let (events, write) = match kind {
        TxKind::RegisterSubnet(t) => {
            let cost = state.subnets.lock_cost(block);
            let max = to_amount(t.maxLockCost)?;
            if cost > max {
                return Err(err(IncentiveError::LockCostAboveMax {
                    cost: cost.to_string(),
                    max: max.to_string(),
                }));
            }
            if state.subnets.subnets.len() >= MAX_SUBNETS {
                return Err(err(IncentiveError::TooManySubnets { max: MAX_SUBNETS }));
            }
            check_hotkey_owner(state, t.hotkey, sender)?;
            let netuid = state
                .subnets
                .next_netuid()
                .ok_or(err(IncentiveError::TooManySubnets { max: MAX_SUBNETS }))?;
            payer.myc = debit(payer.myc, cost, Token::Myc)?;
            let owner_neuron = new_neuron(t.hotkey, sender, block);
            let subnet = Subnet {
                netuid,
                owner: sender,
                owner_hotkey: t.hotkey,
                registered_at: block,
                lock: cost,
                params: HyperParams::default(),
                burn: INITIAL_BURN,
                regs_this_interval: 0,
                pool: Pool {
                    myc: cost,
                    alpha: cost,
                    moving_price_bits: 0,
                },
                alpha_issued: cost,
                pending_alpha: 0,
                pending_owner: 0,
                flow_ema_bits: 0,
                last_epoch: None,
                neurons: vec![owner_neuron],
                stakes: BTreeMap::new(),
                commits: BTreeMap::new(),
                heavy_digest: DigestCache::default(),
            };
            (
                vec![IncentiveEvent::SubnetRegistered {
                    netuid,
                    owner: sender,
                    owner_hotkey: t.hotkey,
                    lock: cost,
                }],
                IncentiveWrite::NewSubnet(Box::new(subnet)),
            )
        }
        TxKind::SetSubnetParams(t) => {
            let s = subnet(state, t.netuid)?;
            if s.owner != sender {
                return Err(err(IncentiveError::NotOwner {
                    netuid: t.netuid,
                    owner: s.owner,
                }));
            }
            if t.names.len() != t.values.len() || t.names.is_empty() {
                return Err(err(IncentiveError::BadParams {
                    reason: format!(
                        "{} names but {} values; give one value per name, at least one",
                        t.names.len(),
                        t.values.len()
                    ),
                }));
            }
            let mut params = s.params.clone();
            for (i, (name, value)) in t.names.iter().zip(&t.values).enumerate() {
                if t.names[..i].contains(name) {
                    return Err(err(IncentiveError::BadParams {
                        reason: format!("'{name}' is given twice"),
                    }));
                }
                params.set(name, *value)?;
            }
            if params.alpha_low >= params.alpha_high {
                return Err(err(IncentiveError::BadParams {
                    reason: format!(
                        "alpha_low {} must be below alpha_high {}",
                        params.alpha_low, params.alpha_high
                    ),
                }));
            }
            if (params.max_uids as usize) < s.neurons.len() {
                return Err(err(IncentiveError::BadParams {
                    reason: format!(
                        "max_uids {} is below the {} neurons registered",
                        params.max_uids,
                        s.neurons.len()
                    ),
                }));
            }
            if params.max_validators > params.max_uids {
                return Err(err(IncentiveError::BadParams {
                    reason: format!(
                        "max_validators {} is above max_uids {}",
                        params.max_validators, params.max_uids
                    ),
                }));
            }
            (
                vec![IncentiveEvent::SubnetParamsSet {
                    netuid: t.netuid,
                    names: t.names.clone(),
                    values: t.values.clone(),
                }],
                IncentiveWrite::Params {
                    netuid: t.netuid,
                    params,
                },
            )
        }
        TxKind::BurnedRegister(t) => {
            let s = subnet(state, t.netuid)?;
            if !s.params.registration_allowed {
                return Err(err(IncentiveError::RegistrationClosed { netuid: t.netuid }));
            }
            let max = to_amount(t.maxBurn)?;
            if s.burn > max {
                return Err(err(IncentiveError::BurnAboveMax {
                    burn: s.burn.to_string(),
                    max: max.to_string(),
                }));
            }
            check_hotkey_owner(state, t.hotkey, sender)?;
            if s.uid_of(&t.hotkey).is_some() {
                return Err(err(IncentiveError::AlreadyRegistered {
                    hotkey: t.hotkey,
                    netuid: t.netuid,
                }));
            }
            let uid = s
                .registration_slot(block)
                .ok_or(err(IncentiveError::SubnetFull { netuid: t.netuid }))?;
            payer.myc = debit(payer.myc, s.burn, Token::Myc)?;
            let replaced = s.neurons.get(uid as usize).map(|n| n.hotkey);
            (
                vec![IncentiveEvent::NeuronRegistered {
                    netuid: t.netuid,
                    uid,
                    hotkey: t.hotkey,
                    coldkey: sender,
                    burned: s.burn,
                    replaced,
                }],
                IncentiveWrite::Register {
                    netuid: t.netuid,
                    uid,
                    neuron: new_neuron(t.hotkey, sender, block),
                    burned: s.burn,
                },
            )
        }
        TxKind::ServeEndpoint(t) => {
            let s = subnet(state, t.netuid)?;
            let uid = neuron_uid(s, sender)?;
            check_endpoint(&t.host, t.port, &t.protocol)?;
            (
                vec![IncentiveEvent::EndpointServed {
                    netuid: t.netuid,
                    uid,
                    host: t.host.clone(),
                    port: t.port,
                    protocol: t.protocol.clone(),
                }],
                IncentiveWrite::Endpoint {
                    netuid: t.netuid,
                    uid,
                    endpoint: Endpoint {
                        host: t.host.clone(),
                        port: t.port,
                        protocol: t.protocol.clone(),
                        block,
                    },
                },
            )
        }
        TxKind::SetWeights(t) => {
            let s = subnet(state, t.netuid)?;
            let uid = neuron_uid(s, sender)?;
            if s.params.commit_reveal {
                return Err(err(IncentiveError::CommitRevealRequired {
                    netuid: t.netuid,
                }));
            }
            check_version_key(s, t.versionKey)?;
            let n = &s.neurons[uid as usize];
            if let Some(at) = n.weights_set_at {
                let next_allowed = at + s.params.weights_rate_limit;
                if block < next_allowed {
                    return Err(err(IncentiveError::RateLimited { next_allowed }));
                }
            }
            let weights = normalise_weights(s, &t.uids, &t.values)?;
            (
                vec![IncentiveEvent::WeightsSet {
                    netuid: t.netuid,
                    uid,
                    count: weights.len(),
                }],
                IncentiveWrite::Weights {
                    netuid: t.netuid,
                    uid,
                    weights,
                    block,
                    consumed_commit: None,
                },
            )
        }
        TxKind::CommitWeights(t) => {
            let s = subnet(state, t.netuid)?;
            let uid = neuron_uid(s, sender)?;
            if !s.params.commit_reveal {
                return Err(err(IncentiveError::CommitRevealDisabled {
                    netuid: t.netuid,
                }));
            }
            let mut commits = live_commits(s, sender, block);
            if commits.len() >= MAX_PENDING_COMMITS {
                return Err(err(IncentiveError::TooManyCommits {
                    max: MAX_PENDING_COMMITS,
                }));
            }
            commits.push(WeightsCommit {
                hash: t.commitHash,
                block,
            });
            (
                vec![IncentiveEvent::WeightsCommitted {
                    netuid: t.netuid,
                    uid,
                    hash: t.commitHash,
                }],
                IncentiveWrite::Commit {
                    netuid: t.netuid,
                    hotkey: sender,
                    commits,
                },
            )
        }
        TxKind::RevealWeights(t) => {
            let s = subnet(state, t.netuid)?;
            let uid = neuron_uid(s, sender)?;
            if !s.params.commit_reveal {
                return Err(err(IncentiveError::CommitRevealDisabled {
                    netuid: t.netuid,
                }));
            }
            check_version_key(s, t.versionKey)?;
            let hash =
                weights_commit_hash(sender, t.netuid, &t.uids, &t.values, t.salt, t.versionKey);
            let commits = live_commits(s, sender, block);
            let index = commits
                .iter()
                .position(|c| c.hash == hash)
                .ok_or(err(IncentiveError::NoMatchingCommit))?;
            let reveal_epoch = s
                .epochs()
                .reveal_epoch(commits[index].block, s.params.reveal_period);
            let epoch = s.epochs().epoch_index(block);
            if epoch < reveal_epoch {
                return Err(err(IncentiveError::RevealTooEarly {
                    block: commits[index].block,
                    reveal_epoch,
                    epoch,
                }));
            }
            let weights = normalise_weights(s, &t.uids, &t.values)?;
            (
                vec![IncentiveEvent::WeightsSet {
                    netuid: t.netuid,
                    uid,
                    count: weights.len(),
                }],
                IncentiveWrite::Weights {
                    netuid: t.netuid,
                    uid,
                    weights,
                    block,
                    consumed_commit: Some(index),
                },
            )
        }
        TxKind::AddStake(t) => {
            let s = subnet(state, t.netuid)?;
            let amount = to_amount(t.amount)?;
            if amount < MIN_STAKE {
                return Err(err(IncentiveError::StakeTooSmall {
                    amount: amount.to_string(),
                    min: MIN_STAKE.to_string(),
                }));
            }
            if s.uid_of(&t.hotkey).is_none() {
                return Err(err(IncentiveError::HotkeyNotNeuron {
                    hotkey: t.hotkey,
                    netuid: t.netuid,
                }));
            }
            let limit = to_amount(t.limitPrice)?;
            check_spot_limit(s, Side::Stake, limit)?;
            payer.myc = debit(payer.myc, amount, Token::Myc)?;
            order(sender, t.hotkey, t.netuid, Side::Stake, amount, limit)
        }
        TxKind::RemoveStake(t) => {
            let s = subnet(state, t.netuid)?;
            let amount = to_amount(t.amount)?;
            if amount == 0 {
                return Err(err(IncentiveError::ZeroAmount));
            }
            let available = s.position(&t.hotkey, &sender);
            if available < amount {
                return Err(err(IncentiveError::InsufficientStake {
                    needed: amount.to_string(),
                    available: available.to_string(),
                }));
            }
            let limit = to_amount(t.limitPrice)?;
            check_spot_limit(s, Side::Unstake, limit)?;
            order(sender, t.hotkey, t.netuid, Side::Unstake, amount, limit)
        }
        other => unreachable!("{} is not an incentive transaction", other.type_name()),
    };
    Ok(Planned {
        payer,
        events,
        write,
    })
}

fn order(
    coldkey: Address,
    hotkey: Address,
    netuid: u16,
    side: Side,
    amount: u128,
    limit_price: u128,
) -> (Vec<IncentiveEvent>, IncentiveWrite) {
    (
        vec![IncentiveEvent::StakeOrdered {
            netuid,
            hotkey,
            side,
            amount,
        }],
        IncentiveWrite::Order(Order {
            netuid,
            coldkey,
            hotkey,
            side,
            amount,
            limit_price,
        }),
    )
}

fn new_neuron(hotkey: Address, coldkey: Address, block: u64) -> Neuron {
    Neuron {
        hotkey,
        coldkey,
        registered_at: block,
        last_update: block,
        weights_set_at: None,
        weights: Vec::new(),
        bonds: Vec::new(),
        validator_permit: false,
        consensus: 0,
        incentive: 0,
        dividends: 0,
        validator_trust: 0,
        emission: 0,
        endpoint: None,
    }
}

fn check_hotkey_owner(state: &State, hotkey: Address, coldkey: Address) -> Result<(), TxError> {
    match state.subnets.hotkey_owner.get(&hotkey) {
        Some(owner) if *owner != coldkey => Err(err(IncentiveError::HotkeyOwnedByOther {
            hotkey,
            owner: *owner,
        })),
        _ => Ok(()),
    }
}

fn check_version_key(s: &Subnet, got: u64) -> Result<(), TxError> {
    if got < s.params.weights_version_key {
        return Err(err(IncentiveError::StaleVersionKey {
            got,
            required: s.params.weights_version_key,
        }));
    }
    Ok(())
}

/// A limit the current pool price already breaks can never fill: refuse it at once (the batch
/// price is checked again at the end of the block).
fn check_spot_limit(s: &Subnet, side: Side, limit: u128) -> Result<(), TxError> {
    if breaks_limit(side, limit, s.pool.myc, s.pool.alpha) {
        return Err(err(IncentiveError::PriceAlreadyBeyondLimit {
            price: price_string(s.pool.myc, s.pool.alpha),
            limit: limit.to_string(),
        }));
    }
    Ok(())
}

/// A price `num/den` per base unit as MYC base units per whole alpha (decimal, floored).
pub fn price_string(num: u128, den: u128) -> String {
    if den == 0 {
        return "0".into();
    }
    pool::mul_div(num, pool::PRICE_SCALE, den).to_string()
}

/// Whether a commit made at `commit_block` can still be revealed at `block`: its reveal epoch
/// ([`EpochSchedule::reveal_epoch`]) has not passed.
fn commit_is_live(s: &Subnet, commit_block: u64, block: u64) -> bool {
    let epochs = s.epochs();
    epochs.reveal_epoch(commit_block, s.params.reveal_period) >= epochs.epoch_index(block)
}

/// Commits of `hotkey` still revealable at `block` (expired ones dropped).
fn live_commits(s: &Subnet, hotkey: Address, block: u64) -> Vec<WeightsCommit> {
    s.commits
        .get(&hotkey)
        .map(|cs| {
            cs.iter()
                .filter(|c| commit_is_live(s, c.block, block))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Drops every expired commit of a subnet (run at its epochs).
pub(crate) fn drop_expired_commits(s: &mut Subnet, block: u64) {
    s.touch();
    let mut commits = std::mem::take(&mut s.commits);
    for list in commits.values_mut() {
        list.retain(|c| commit_is_live(s, c.block, block));
    }
    commits.retain(|_, list| !list.is_empty());
    s.commits = commits;
}

fn check_endpoint(host: &str, port: u16, protocol: &str) -> Result<(), TxError> {
    let bad = |reason: String| err(IncentiveError::BadEndpoint { reason });
    if host.is_empty() || host.len() > MAX_HOST_BYTES {
        return Err(bad(format!(
            "host must be 1 to {MAX_HOST_BYTES} bytes, got {}",
            host.len()
        )));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
    {
        return Err(bad(format!(
            "host '{host}' may hold only letters, digits and - . : [ ] _ (an IP address or DNS name)"
        )));
    }
    if port == 0 {
        return Err(bad("port 0 is not a port".into()));
    }
    if protocol.is_empty()
        || protocol.len() > MAX_PROTOCOL_BYTES
        || !protocol
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
    {
        return Err(bad(format!(
            "protocol '{protocol}' must be 1 to {MAX_PROTOCOL_BYTES} lowercase letters/digits (e.g. http, https)"
        )));
    }
    Ok(())
}

/// Checks weights and turns them into a sorted sparse row, max-upscaled to 65535.
fn normalise_weights(s: &Subnet, uids: &[u16], values: &[u16]) -> Result<Vec<(u16, u16)>, TxError> {
    let bad = |reason: String| err(IncentiveError::BadWeights { reason });
    if uids.len() != values.len() {
        return Err(bad(format!(
            "{} uids but {} values; give one value per uid",
            uids.len(),
            values.len()
        )));
    }
    if uids.is_empty() {
        return Err(bad("no weights given".into()));
    }
    let n = s.neurons.len();
    let mut pairs: Vec<(u16, u16)> = uids.iter().copied().zip(values.iter().copied()).collect();
    pairs.sort_by_key(|p| p.0);
    for w in pairs.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(bad(format!("uid {} is given twice", w[0].0)));
        }
    }
    if let Some((uid, _)) = pairs.iter().find(|(u, _)| *u as usize >= n) {
        return Err(bad(format!(
            "uid {uid} does not exist (subnet {} has {n} uids)",
            s.netuid
        )));
    }
    if pairs.iter().all(|(_, v)| *v == 0) {
        return Err(bad("all weights are 0".into()));
    }
    let raw: Vec<u16> = pairs.iter().map(|p| p.1).collect();
    let scaled = vec_u16_max_upscale_to_u16(&raw);
    Ok(pairs
        .iter()
        .zip(scaled)
        .filter(|(_, v)| *v > 0)
        .map(|((u, _), v)| (*u, v))
        .collect())
}

/// Writes a planned incentive transaction (its payer account is already written).
pub(crate) fn apply_write(state: &mut State, write: IncentiveWrite) {
    let block = state.height + 1;
    let subnets = &mut state.subnets;
    if let Some(s) = subnets.subnets.get_mut(&write.netuid()) {
        s.touch();
    }
    if matches!(
        write,
        IncentiveWrite::NewSubnet(_) | IncentiveWrite::Register { .. }
    ) {
        subnets.owners_digest = DigestCache::default();
    }
    match write {
        IncentiveWrite::NewSubnet(s) => {
            subnets.last_lock = s.lock;
            subnets.last_lock_block = block;
            subnets.hotkey_owner.insert(s.owner_hotkey, s.owner);
            subnets.subnets.insert(s.netuid, *s);
        }
        IncentiveWrite::Params { netuid, params } => {
            let s = subnets.subnets.get_mut(&netuid).expect("planned subnet");
            s.params = params;
        }
        IncentiveWrite::Register {
            netuid,
            uid,
            neuron,
            burned,
        } => {
            subnets.hotkey_owner.insert(neuron.hotkey, neuron.coldkey);
            let s = subnets.subnets.get_mut(&netuid).expect("planned subnet");
            s.regs_this_interval += 1;
            if (uid as usize) < s.neurons.len() {
                // Replacing a pruned neuron: nobody's weights or bonds point at the new one yet.
                for n in s.neurons.iter_mut() {
                    n.weights.retain(|(u, _)| *u != uid);
                    n.bonds.retain(|(u, _)| *u != uid);
                }
                s.neurons[uid as usize] = neuron;
            } else {
                s.neurons.push(neuron);
            }
            state.supply.myc_burned += burned;
        }
        IncentiveWrite::Endpoint {
            netuid,
            uid,
            endpoint,
        } => {
            let s = subnets.subnets.get_mut(&netuid).expect("planned subnet");
            s.neurons[uid as usize].endpoint = Some(endpoint);
        }
        IncentiveWrite::Weights {
            netuid,
            uid,
            weights,
            block,
            consumed_commit,
        } => {
            let s = subnets.subnets.get_mut(&netuid).expect("planned subnet");
            if let Some(index) = consumed_commit {
                let hotkey = s.neurons[uid as usize].hotkey;
                let mut live = live_commits(s, hotkey, block);
                live.remove(index);
                if live.is_empty() {
                    s.commits.remove(&hotkey);
                } else {
                    s.commits.insert(hotkey, live);
                }
            }
            let n = &mut s.neurons[uid as usize];
            n.weights = weights;
            n.last_update = block;
            n.weights_set_at = Some(block);
        }
        IncentiveWrite::Commit {
            netuid,
            hotkey,
            commits,
        } => {
            let s = subnets.subnets.get_mut(&netuid).expect("planned subnet");
            s.commits.insert(hotkey, commits);
        }
        IncentiveWrite::Order(order) => {
            if order.side == Side::Unstake {
                let s = subnets
                    .subnets
                    .get_mut(&order.netuid)
                    .expect("planned subnet");
                s.sub_position(order.hotkey, order.coldkey, order.amount);
            }
            subnets.orders.push(order);
        }
    }
}
