//! The state machine's records as the node API shows them ([`mycel_types::api`]): receipts and
//! their events, emission receipts, hyperparameters and endpoints.
//!
//! The state keeps its own types (they are also its storage format); these conversions are the
//! one place where they meet the wire types. Every conversion destructures its source in full, so
//! a field added to a state record does not compile until the API says how it looks.

use crate::sessions::ChannelEvent;
use crate::subnets::{
    pool::Side, EmissionReceipt, Endpoint, EpochReceipt, HyperParams, IncentiveEvent, NeuronPayout,
    SubnetEmission, SwapFill,
};
use crate::{Event, TxReceipt};
use mycel_types::api;

impl From<&TxReceipt> for api::TxReceipt {
    fn from(receipt: &TxReceipt) -> Self {
        let TxReceipt {
            hash,
            from,
            nonce,
            tx_type,
            events,
        } = receipt;
        api::TxReceipt {
            hash: *hash,
            from: *from,
            nonce: *nonce,
            tx_type: tx_type.clone(),
            events: events.iter().map(api::Event::from).collect(),
        }
    }
}

impl From<&Event> for api::Event {
    fn from(event: &Event) -> Self {
        match event {
            Event::Transfer {
                token,
                from,
                to,
                amount,
            } => api::Event::Transfer {
                token: *token,
                from: *from,
                to: *to,
                amount: *amount,
            },
            Event::FeeBurned { from, amount } => api::Event::FeeBurned {
                from: *from,
                amount: *amount,
            },
            Event::Incentive(e) => api::Event::Incentive(e.into()),
            Event::AuthorizationUsed { authorizer, nonce } => api::Event::AuthorizationUsed {
                authorizer: *authorizer,
                nonce: *nonce,
            },
            Event::Channel(e) => api::Event::Channel(e.into()),
            Event::Agent(e) => api::Event::Agent(e.clone()),
            Event::Job(e) => api::Event::Job(e.clone()),
            Event::Allowance(e) => api::Event::Allowance(e.clone()),
            Event::Storage(e) => api::Event::Storage(e.clone()),
            Event::Market(e) => api::Event::Market(e.clone()),
            Event::Training(e) => api::Event::Training(e.clone()),
        }
    }
}

impl From<&IncentiveEvent> for api::IncentiveEvent {
    fn from(event: &IncentiveEvent) -> Self {
        match event.clone() {
            IncentiveEvent::SubnetRegistered {
                netuid,
                owner,
                owner_hotkey,
                lock,
            } => api::IncentiveEvent::SubnetRegistered {
                netuid,
                owner,
                owner_hotkey,
                lock,
            },
            IncentiveEvent::SubnetParamsSet {
                netuid,
                names,
                values,
            } => api::IncentiveEvent::SubnetParamsSet {
                netuid,
                names,
                values,
            },
            IncentiveEvent::NeuronRegistered {
                netuid,
                uid,
                hotkey,
                coldkey,
                burned,
                replaced,
            } => api::IncentiveEvent::NeuronRegistered {
                netuid,
                uid,
                hotkey,
                coldkey,
                burned,
                replaced,
            },
            IncentiveEvent::EndpointServed {
                netuid,
                uid,
                host,
                port,
                protocol,
            } => api::IncentiveEvent::EndpointServed {
                netuid,
                uid,
                host,
                port,
                protocol,
            },
            IncentiveEvent::WeightsSet { netuid, uid, count } => {
                api::IncentiveEvent::WeightsSet { netuid, uid, count }
            }
            IncentiveEvent::WeightsCommitted { netuid, uid, hash } => {
                api::IncentiveEvent::WeightsCommitted { netuid, uid, hash }
            }
            IncentiveEvent::StakeOrdered {
                netuid,
                hotkey,
                side,
                amount,
            } => api::IncentiveEvent::StakeOrdered {
                netuid,
                hotkey,
                side: side.into(),
                amount,
            },
        }
    }
}

impl From<&ChannelEvent> for api::ChannelEvent {
    fn from(event: &ChannelEvent) -> Self {
        match *event {
            ChannelEvent::Opened {
                channel,
                payer,
                payee,
                deposit,
            } => api::ChannelEvent::Opened {
                channel,
                payer,
                payee,
                deposit,
            },
            ChannelEvent::ToppedUp { channel, amount } => {
                api::ChannelEvent::ToppedUp { channel, amount }
            }
            ChannelEvent::Claimed {
                channel,
                paid,
                claimed,
            } => api::ChannelEvent::Claimed {
                channel,
                paid,
                claimed,
            },
            ChannelEvent::WithdrawRequested {
                channel,
                withdraw_at_s,
            } => api::ChannelEvent::WithdrawRequested {
                channel,
                withdraw_at_s,
            },
            ChannelEvent::Withdrawn { channel, refunded } => {
                api::ChannelEvent::Withdrawn { channel, refunded }
            }
        }
    }
}

impl From<Side> for api::Side {
    fn from(side: Side) -> Self {
        match side {
            Side::Stake => api::Side::Stake,
            Side::Unstake => api::Side::Unstake,
        }
    }
}

impl From<&HyperParams> for api::HyperParams {
    fn from(params: &HyperParams) -> Self {
        let HyperParams {
            tempo,
            kappa,
            immunity_period,
            max_uids,
            max_validators,
            weights_rate_limit,
            commit_reveal,
            reveal_period,
            bonds_moving_average,
            bonds_penalty,
            liquid_alpha,
            alpha_low,
            alpha_high,
            alpha_sigmoid_steepness,
            yuma3,
            activity_cutoff,
            weights_version_key,
            target_regs_per_interval,
            adjustment_interval,
            registration_allowed,
        } = *params;
        api::HyperParams {
            tempo,
            kappa,
            immunity_period,
            max_uids,
            max_validators,
            weights_rate_limit,
            commit_reveal,
            reveal_period,
            bonds_moving_average,
            bonds_penalty,
            liquid_alpha,
            alpha_low,
            alpha_high,
            alpha_sigmoid_steepness,
            yuma3,
            activity_cutoff,
            weights_version_key,
            target_regs_per_interval,
            adjustment_interval,
            registration_allowed,
        }
    }
}

impl From<&Endpoint> for api::Endpoint {
    fn from(endpoint: &Endpoint) -> Self {
        let Endpoint {
            host,
            port,
            protocol,
            block,
        } = endpoint.clone();
        api::Endpoint {
            host,
            port,
            protocol,
            block,
        }
    }
}

impl From<&EmissionReceipt> for api::EmissionReceipt {
    fn from(receipt: &EmissionReceipt) -> Self {
        let EmissionReceipt {
            height,
            issuance,
            block_emission,
            myc_unassigned,
            subnets,
            swaps,
        } = receipt;
        api::EmissionReceipt {
            height: *height,
            issuance: *issuance,
            block_emission: *block_emission,
            myc_unassigned: *myc_unassigned,
            subnets: subnets.iter().map(api::SubnetEmission::from).collect(),
            swaps: swaps.iter().map(api::SwapFill::from).collect(),
        }
    }
}

impl From<&SubnetEmission> for api::SubnetEmission {
    fn from(emission: &SubnetEmission) -> Self {
        let SubnetEmission {
            netuid,
            flow_ema,
            myc_share,
            myc_injected,
            myc_recycled,
            alpha_injected,
            alpha_emission,
            owner_cut,
            pending_added,
            pool_myc,
            pool_alpha,
            epoch,
        } = emission;
        api::SubnetEmission {
            netuid: *netuid,
            flow_ema: flow_ema.clone(),
            myc_share: *myc_share,
            myc_injected: *myc_injected,
            myc_recycled: *myc_recycled,
            alpha_injected: *alpha_injected,
            alpha_emission: *alpha_emission,
            owner_cut: *owner_cut,
            pending_added: *pending_added,
            pool_myc: *pool_myc,
            pool_alpha: *pool_alpha,
            epoch: epoch.as_ref().map(api::EpochReceipt::from),
        }
    }
}

impl From<&EpochReceipt> for api::EpochReceipt {
    fn from(epoch: &EpochReceipt) -> Self {
        let EpochReceipt {
            paid,
            owner_cut,
            neurons,
            recycled,
        } = epoch;
        api::EpochReceipt {
            paid: *paid,
            owner_cut: *owner_cut,
            neurons: neurons.iter().map(api::NeuronPayout::from).collect(),
            recycled: *recycled,
        }
    }
}

impl From<&NeuronPayout> for api::NeuronPayout {
    fn from(payout: &NeuronPayout) -> Self {
        let NeuronPayout {
            uid,
            hotkey,
            incentive,
            dividends,
            take,
            to_stakers,
        } = *payout;
        api::NeuronPayout {
            uid,
            hotkey,
            incentive,
            dividends,
            take,
            to_stakers,
        }
    }
}

impl From<&SwapFill> for api::SwapFill {
    fn from(fill: &SwapFill) -> Self {
        let SwapFill {
            netuid,
            coldkey,
            hotkey,
            side,
            amount_in,
            amount_out,
            price,
        } = fill;
        api::SwapFill {
            netuid: *netuid,
            coldkey: *coldkey,
            hotkey: *hotkey,
            side: (*side).into(),
            amount_in: *amount_in,
            amount_out: *amount_out,
            // The state writes the batch price as an integer (`tx::price_string`).
            price: api::amount::parse(price).expect("a batch price is an integer"),
        }
    }
}
