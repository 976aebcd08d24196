//! The devnet's inference subnet on chain, for `mycel up`: created and tuned by its owner, its
//! validator registered and staked. Each step is a transaction sent with mycel-client's
//! `send_and_wait`, as any client would send it; a step already done (a restarted devnet) is
//! skipped, so running this again changes nothing.

use crate::client::Node;
use alloy_primitives::U256;
use alloy_signer_local::PrivateKeySigner;
use anyhow::{anyhow, Context, Result};
use mycel_client::api::code::UNKNOWN_SUBNET;
use mycel_client::{SendOptions, TxFields};
use mycel_types::keys::dev_signer;
use mycel_types::tx::{AddStake, BurnedRegister, RegisterSubnet, SetSubnetParams};
use mycel_types::{Token, TxKind};
use std::time::Duration;

/// Who runs the subnet and how, by dev account.
pub struct SubnetSetup {
    pub netuid: u16,
    pub tempo: u64,
    pub owner: u32,
    pub owner_hotkey: u32,
    pub validator: u32,
    /// MYC the validator stakes on itself.
    pub validator_stake: u128,
    /// The most MYC a registration may burn.
    pub max_burn: u128,
}

/// Brings the chain to what `setup` describes, sending only what is missing.
pub fn ensure_on_chain(node: &Node, setup: &SubnetSetup) -> Result<()> {
    let netuid = setup.netuid;
    let exists = match node.subnet(netuid) {
        Ok(_) => true,
        Err(e) if e.is_code(UNKNOWN_SUBNET) => false,
        Err(e) => return Err(e.into()),
    };
    if !exists {
        eprintln!(
            "creating inference subnet {netuid} (tempo {})…",
            setup.tempo
        );
        let owner = dev(setup.owner)?;
        let hotkey = dev(setup.owner_hotkey)?.address();
        // The lock cost is not published before the fact: the balance bounds what may be paid.
        let max_lock = node.account(owner.address())?.myc;
        send(node, &owner, "create the subnet", |f| {
            TxKind::RegisterSubnet(RegisterSubnet {
                from: f.from,
                hotkey,
                maxLockCost: U256::from(max_lock),
                nonce: f.nonce,
                fee: f.fee,
            })
        })?;
        send(node, &owner, "set the subnet's tempo", |f| {
            TxKind::SetSubnetParams(SetSubnetParams {
                from: f.from,
                netuid,
                names: vec!["tempo".into(), "weights_rate_limit".into()],
                values: vec![setup.tempo, 0],
                nonce: f.nonce,
                fee: f.fee,
            })
        })?;
    }
    let validator = dev(setup.validator)?;
    let hotkey = validator.address();
    let staked = node.stakes(hotkey)?.position(netuid, hotkey).is_some();
    if staked {
        return Ok(());
    }
    if node.metagraph(netuid)?.neuron(hotkey).is_none() {
        send(node, &validator, "register the validator", |f| {
            TxKind::BurnedRegister(BurnedRegister {
                from: f.from,
                netuid,
                hotkey,
                maxBurn: U256::from(setup.max_burn * myc_unit()),
                nonce: f.nonce,
                fee: f.fee,
            })
        })?;
    }
    send(node, &validator, "stake on the validator", |f| {
        TxKind::AddStake(AddStake {
            from: f.from,
            hotkey,
            netuid,
            amount: U256::from(setup.validator_stake * myc_unit()),
            // No price limit: the devnet's pool is fresh.
            limitPrice: U256::ZERO,
            nonce: f.nonce,
            fee: f.fee,
        })
    })
}

/// MYC base units per MYC.
fn myc_unit() -> u128 {
    10u128.pow(Token::Myc.decimals())
}

fn dev(index: u32) -> Result<PrivateKeySigner> {
    dev_signer(index).map_err(|e| anyhow!("cannot derive development account {index}: {e}"))
}

/// Sends one step and waits until it is applied.
fn send(
    node: &Node,
    signer: &PrivateKeySigner,
    what: &str,
    build: impl FnOnce(TxFields) -> TxKind,
) -> Result<()> {
    let options = SendOptions::timeout(Duration::from_secs(60));
    node.send_and_wait(signer, &options, build)
        .and_then(|outcome| outcome.applied())
        .with_context(|| format!("cannot {what}"))?;
    Ok(())
}
