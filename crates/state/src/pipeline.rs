//! The block pipeline: the one place that says which step of a block runs when.
//!
//! [`State::apply_block`](crate::State::apply_block) calls this module's `apply_block`, and
//! nothing else runs a block. The steps, in order:
//!
//! 1. **Header**: the height must follow the state's and the time must not go back, else the
//!    block is refused ([`BlockError`]) and nothing changes. The block's time becomes the state's
//!    before the transactions run (EIP-3009 windows are checked against it); transactions see the
//!    block's height as the state's height + 1.
//! 2. **Transactions**, in block order ([`State::apply_verified`]): each is checked fully, then
//!    written; a refused one changes nothing and its result is the error. Stake and unstake
//!    orders take their input at once (MYC from the coldkey's balance, alpha from its position)
//!    into the block's batch.
//! 3. **Batch settlement** per pool, ascending netuid: every order of the block on a pool fills
//!    at one price ([`crate::subnets::pool`] explains it: `p = (y+Y)/(x+X)`, k never falls). If
//!    the price breaks some order's limit, that order is refused: the block's transactions are
//!    applied again from the state before the block without it (a refused transaction changes
//!    nothing), until every remaining order fills within its limit. Each round removes an order,
//!    so this ends. Unstaked MYC is credited to the coldkeys. The state's height becomes the
//!    block's.
//!
//! Steps 4 to 9 are the incentive layer's ([`crate::subnets`]); with no subnets they do nothing
//! (nothing is minted and the block has no emission receipt).
//!
//! 4. **Taoflow**: each subnet's net MYC flow of the block (MYC into its pool minus MYC out,
//!    from swaps) updates `flow_ema ← flow_ema + a·(flow − flow_ema)`, a = 3.209e-6 (I64F64).
//! 5. **Emission**: `E = block_emission(MYC issued − burned)`. Shares `z_i = max(flow_ema_i, 0)`
//!    split E by largest remainder (exact). If every `z_i` is 0, subnets with `flow_ema ≥ 0`
//!    share equally; if there are none (all negative), E is not minted ("recycled"). Subnet i's
//!    MYC `e_i` is injected with alpha at the pool price: `alpha_in = ⌊e_i·x/y⌋`, capped at the
//!    subnet's alpha emission; when capped, only `⌊alpha_in·y/x⌋` MYC is injected and the rest is
//!    recycled (never minted). Then the subnet's alpha emission `block_emission(alpha issued)` is
//!    minted: owner cut 18% (11796/65535) to pending owner alpha, the rest to pending epoch alpha.
//! 6. **Moving price** per pool: `m ← m + α·(min(spot, 1) − m)`, α = 3e-6·b/(b + 201600), b =
//!    blocks since the subnet registered.
//! 7. **Epochs**: every subnet whose epoch falls in this block (the epoch rule,
//!    [`crate::subnets::EpochSchedule::is_epoch_block`]) drops its expired weight commits and
//!    runs Yuma ([`crate::incentive::run_epoch`]) on its pending alpha; the payout rules are in
//!    the subnets' `epoch` module: incentive to miners, dividends to validators (take 18%) and
//!    their stakers, the owner cut to the owner, what nobody can receive recycled.
//! 8. **Burn adjustment**: every `adjustment_interval` blocks after a subnet registered,
//!    `burn' = α·burn + (1−α)·burn·(regs + T)/(2T)`, α = 0.9, within the burn bounds.
//! 9. **Emission receipt**: asserted to account for every base unit of E and of every epoch's
//!    payout, then kept as the latest ([`BlockOutcome::emission`]).
//!    Then **storage**: at the first block of a storage epoch the epoch before it is paid out
//!    of the storage fund to the nodes, and blobs whose paid epochs are over are dropped
//!    ([`crate::storage`]). Then the **market**: leases whose escrow runs dry at this height
//!    pause (paid up to it), low balances are noted, leases paused past their grace close
//!    ([`crate::market`]).
//! 10. **Books** asserted ([`State::assert_books_balance`]): a violation stops the node rather
//!     than let it diverge.
//! 11. **State root** of the new state, into the [`BlockOutcome`].
//!
//! The incentive steps are functions of the subnets' `block` module that change the subnets
//! only and hand back what the rest of the state must change (MYC paid to unstakers, MYC
//! minted); this module writes that, so no step reaches back into [`State`].

use crate::subnets::{self, block as steps, EmissionReceipt, SwapFill};
use crate::{bank, State, TxError, TxReceipt, VerifiedTx};
use alloy_primitives::{Address, B256};
use mycel_types::Token;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The header facts a block gives the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockContext {
    pub height: u64,
    pub timestamp_ms: u64,
}

/// Why a block could not be applied at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block height {got} does not follow the state's height {current}")]
    WrongHeight { current: u64, got: u64 },
    #[error("block timestamp {got} ms is before the previous block's {previous} ms")]
    TimeWentBack { previous: u64, got: u64 },
}

/// What applying a block did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockOutcome {
    pub height: u64,
    /// One entry per transaction, in block order. An `Err` changed nothing.
    pub results: Vec<Result<TxReceipt, TxError>>,
    pub state_root: B256,
    /// Where this block's emission went (none while there are no subnets).
    #[serde(default)]
    pub emission: Option<EmissionReceipt>,
}

/// Applies one block to `state`, steps 1 to 11 in order.
pub(crate) fn apply_block(
    state: &mut State,
    ctx: BlockContext,
    txs: &[VerifiedTx],
) -> Result<BlockOutcome, BlockError> {
    check_header(state, ctx)?;
    state.last_block_time_ms = ctx.timestamp_ms;
    let (results, swaps) = apply_txs(state, txs);
    state.height = ctx.height;
    incentive_steps(state, swaps);
    storage_step(state);
    market_step(state);
    state.assert_books_balance();
    Ok(BlockOutcome {
        height: ctx.height,
        results,
        state_root: state.state_root(),
        emission: state.subnets.latest_receipt().cloned(),
    })
}

/// Step 1.
fn check_header(state: &State, ctx: BlockContext) -> Result<(), BlockError> {
    if ctx.height != state.height + 1 {
        return Err(BlockError::WrongHeight {
            current: state.height,
            got: ctx.height,
        });
    }
    if ctx.timestamp_ms < state.last_block_time_ms {
        return Err(BlockError::TimeWentBack {
            previous: state.last_block_time_ms,
            got: ctx.timestamp_ms,
        });
    }
    Ok(())
}

/// Steps 2 and 3: the transactions, then the batch of stake orders. While the batch price
/// breaks an order's limit, that order's transaction is refused and the transactions are
/// applied again from `state` as it was before them.
fn apply_txs(
    state: &mut State,
    txs: &[VerifiedTx],
) -> (Vec<Result<TxReceipt, TxError>>, Vec<SwapFill>) {
    let before = txs
        .iter()
        .any(|t| subnets::is_swap(&t.tx.kind))
        .then(|| state.clone());
    let pre_existing = state.subnets.orders.len();
    let mut refused: BTreeMap<usize, TxError> = BTreeMap::new();
    loop {
        let (results, order_tx) = apply_each(state, txs, &refused);
        let newly: Vec<(usize, TxError)> = steps::limit_failures(&state.subnets)
            .into_iter()
            .filter(|(order, _)| *order >= pre_existing)
            .map(|(order, e)| (order_tx[order - pre_existing], TxError::Incentive(e)))
            .collect();
        if newly.is_empty() {
            let settled = steps::settle_orders(&mut state.subnets);
            pay_unstaked(state, settled.unstaked);
            return (results, settled.fills);
        }
        refused.extend(newly);
        *state = before.clone().expect("orders come from swap transactions");
    }
}

/// Step 2: every transaction in block order but the `refused` ones (which stay refused with
/// their error). Also returns, for each stake order the block placed, its transaction's index.
fn apply_each(
    state: &mut State,
    txs: &[VerifiedTx],
    refused: &BTreeMap<usize, TxError>,
) -> (Vec<Result<TxReceipt, TxError>>, Vec<usize>) {
    let mut order_tx = Vec::new();
    let results = txs
        .iter()
        .enumerate()
        .map(|(i, tx)| {
            if let Some(e) = refused.get(&i) {
                return Err(e.clone());
            }
            let orders_before = state.subnets.orders.len();
            let result = state.apply_verified(tx);
            let placed = state.subnets.orders.len() - orders_before;
            order_tx.extend(std::iter::repeat_n(i, placed));
            result
        })
        .collect();
    (results, order_tx)
}

/// Step 3, the accounts' part: the MYC of filled unstake orders to their coldkeys.
fn pay_unstaked(state: &mut State, unstaked: Vec<(Address, u128)>) {
    for (coldkey, myc) in unstaked {
        let credited = bank::credit(state.account(&coldkey), Token::Myc, myc)
            .expect("MYC balances stay below the supply");
        state.put_account(coldkey, credited);
    }
}

/// Step 9b: at the first block of a storage epoch, the epoch before it is paid out of the storage
/// fund to the nodes ([`crate::storage`]).
fn storage_step(state: &mut State) {
    let (credits, burned) =
        crate::storage::epoch_step(&mut state.storage, state.height, &state.params.storage);
    state.supply.myc_burned += burned;
    for (node, myc) in credits {
        let credited = bank::credit(state.account(&node), Token::Myc, myc)
            .expect("MYC balances stay below the supply");
        state.put_account(node, credited);
    }
}

/// Step 9c: leases whose escrow ran dry pause, low balances are noted, leases paused past their
/// grace close ([`crate::market`]).
fn market_step(state: &mut State) {
    let credits = crate::market::block_step(&mut state.market, state.height, &state.params.market);
    for (to, token, amount) in credits {
        let credited = bank::credit(state.account(&to), token, amount)
            .expect("balances stay below the supply");
        state.put_account(to, credited);
    }
}

/// Steps 4 to 9 on the block at `state.height`.
fn incentive_steps(state: &mut State, swaps: Vec<SwapFill>) {
    let block = state.height;
    if state.subnets.is_empty() {
        state.subnets.block_flow.clear();
        state.subnets.latest_receipt = None;
        return;
    }
    steps::update_flows(&mut state.subnets);
    let issuance = state
        .supply
        .myc_issued
        .saturating_sub(state.supply.myc_burned);
    let mut receipt = steps::emit(&mut state.subnets, block, issuance, swaps);
    state.supply.myc_issued += receipt.myc_injected();
    steps::update_moving_prices(&mut state.subnets, block);
    steps::run_epochs(&mut state.subnets, block, &mut receipt);
    steps::adjust_burns(&mut state.subnets, block);
    receipt.assert_exact();
    state.subnets.latest_receipt = Some(receipt);
}
