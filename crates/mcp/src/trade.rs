//! Staking tools: the subnets' pool prices, and stake / unstake with slippage protection (a
//! limit price the chain enforces on the block's batch price).

use crate::{answer, no_key, node_refusal, parse, refusal, Progress, Server, ToolResult};
use alloy_primitives::{Address, U256};
use mycel_types::tx::{AddStake, RemoveStake};
use mycel_types::{format_amount, parse_amount, Amount, Token, TxKind};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// The slippage allowed when no limit price is given: 2% (in basis points).
const DEFAULT_SLIPPAGE_BPS: u128 = 200;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EpochsArgs {
    /// The subnet.
    pub netuid: u16,
    /// Only this UID's payouts.
    pub uid: Option<u16>,
    /// Only epochs before this block (a previous page's next_before).
    pub before: Option<u64>,
    /// How many epochs (1–100, default 10).
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StakeArgs {
    /// The subnet to stake in.
    pub netuid: u16,
    /// The hotkey (a validator or miner of the subnet, 0x address) to stake on.
    pub hotkey: String,
    /// For stake: MYC to spend, in whole tokens ("10"). For unstake: alpha to sell, in whole
    /// tokens, or "all".
    pub amount: String,
    /// The worst price to accept, in MYC per alpha (stake: the highest; unstake: the lowest).
    /// Default: the pool's spot price moved by max_slippage_percent against you.
    pub limit_price: Option<String>,
    /// How far the price may move against you when no limit_price is given, in percent
    /// (default 2; "0" for none: the spot price exactly).
    pub max_slippage_percent: Option<String>,
}

enum Side {
    Stake,
    Unstake,
}

#[tool_router(router = trade_router, vis = "pub(crate)")]
impl Server {
    #[tool(
        description = "Every subnet's pool: MYC and alpha reserves, spot price (MYC per alpha, \
                          whole tokens and base units), moving price, alpha issued and staked."
    )]
    async fn pools(&self) -> ToolResult {
        let pools = match self.node.pools().await {
            Ok(p) => p,
            Err(e) => return node_refusal(e),
        };
        let list: Vec<_> = pools
            .pools
            .iter()
            .map(|p| {
                json!({"netuid": p.netuid,
                       "spot_price_myc_per_alpha": format_amount(p.spot_price, Token::Myc),
                       "spot_price": p.spot_price.to_string(),
                       "myc_reserve": format_amount(p.myc_reserve, Token::Myc),
                       "alpha_reserve": format_amount(p.alpha_reserve, Token::Myc),
                       "moving_price": p.moving_price,
                       "alpha_issued": format_amount(p.alpha_issued, Token::Myc),
                       "alpha_staked": format_amount(p.alpha_staked, Token::Myc)})
            })
            .collect();
        answer(json!({"height": pools.height, "pools": list}))
    }

    #[tool(
        description = "Emission per epoch: a subnet's epoch payouts (alpha to each UID: \
                          incentive, dividends, take, to stakers; owner cut; recycled), newest \
                          first, or one UID's payouts per epoch. Base units (alpha has 9 \
                          decimals); the node keeps its recent epochs."
    )]
    async fn epochs(&self, Parameters(a): Parameters<EpochsArgs>) -> ToolResult {
        let limit = a.limit.unwrap_or(10);
        if !(1..=100).contains(&limit) {
            return refusal("bad_argument", "limit is 1 to 100");
        }
        self.node
            .epoch_history(a.netuid, a.uid, a.before, limit)
            .await
            .map_or_else(node_refusal, answer)
    }

    #[tool(
        description = "Stake MYC on a hotkey in a subnet (a swap of MYC for the subnet's alpha \
                          at the block's price; needs the server's key). Refused by the chain, \
                          nothing spent, if the price is above the limit: limit_price, or by \
                          default the spot price plus 2%. Waits until final."
    )]
    async fn stake(
        &self,
        Parameters(a): Parameters<StakeArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        self.trade(Side::Stake, a, &Progress::of(&context)).await
    }

    #[tool(
        description = "Unstake alpha from a hotkey in a subnet (a swap of alpha for MYC at the \
                          block's price; amount in whole alpha or \"all\"; needs the server's \
                          key). Refused by the chain, nothing sold, if the price is below the \
                          limit: limit_price, or by default the spot price minus 2%. Waits until \
                          final."
    )]
    async fn unstake(
        &self,
        Parameters(a): Parameters<StakeArgs>,
        context: RequestContext<RoleServer>,
    ) -> ToolResult {
        self.trade(Side::Unstake, a, &Progress::of(&context)).await
    }
}

impl Server {
    async fn trade(&self, side: Side, a: StakeArgs, progress: &Progress) -> ToolResult {
        let hotkey: Address = match parse("hotkey", &a.hotkey) {
            Ok(h) => h,
            Err(e) => return Ok(e),
        };
        let netuid = a.netuid;
        let limit = match self.limit_price(&side, &a).await {
            Ok(l) => l,
            Err(e) => return e,
        };
        let amount = match (&side, a.amount.as_str()) {
            (Side::Unstake, "all") => {
                let Some(signer) = &self.signer else {
                    return no_key();
                };
                match self.node.stakes(signer.address()).await {
                    Ok(s) => s.position(netuid, hotkey).map_or(0, |p| p.alpha),
                    Err(e) => return node_refusal(e),
                }
            }
            (_, text) => match parse_amount(text, Token::Myc) {
                Ok(v) => v,
                Err(e) => return refusal("bad_argument", format!("amount '{text}': {e}")),
            },
        };
        if amount == 0 {
            return refusal("bad_argument", "nothing to trade: the amount is 0");
        }
        self.send(progress, |f| match side {
            Side::Stake => TxKind::AddStake(AddStake {
                from: f.from,
                hotkey,
                netuid,
                amount: U256::from(amount),
                limitPrice: U256::from(limit),
                nonce: f.nonce,
                fee: f.fee,
            }),
            Side::Unstake => TxKind::RemoveStake(RemoveStake {
                from: f.from,
                hotkey,
                netuid,
                amount: U256::from(amount),
                limitPrice: U256::from(limit),
                nonce: f.nonce,
                fee: f.fee,
            }),
        })
        .await
    }

    /// The limit the chain enforces, in MYC base units per whole alpha.
    async fn limit_price(&self, side: &Side, a: &StakeArgs) -> Result<Amount, ToolResult> {
        if let Some(p) = &a.limit_price {
            return match parse_amount(p, Token::Myc) {
                Ok(0) => Err(refusal(
                    "bad_argument",
                    "limit_price 0 would refuse every fill: leave it out for the default",
                )),
                Ok(v) => Ok(v),
                Err(e) => Err(refusal("bad_argument", format!("limit_price '{p}': {e}"))),
            };
        }
        // Percent with up to two decimals, as basis points.
        let bps = match a.max_slippage_percent.as_deref() {
            None => DEFAULT_SLIPPAGE_BPS,
            // Six decimals (as mUSD's) read as millionths of a percent, floored to basis points.
            Some(p) => match parse_amount(p, Token::Musd).map(|v| v / 10_000) {
                Ok(v) if v <= 10_000 => v,
                _ => {
                    return Err(refusal(
                        "bad_argument",
                        format!("max_slippage_percent '{p}' is a percentage from 0 to 100"),
                    ))
                }
            },
        };
        let pools = self.node.pools().await.map_err(node_refusal)?;
        let Some(pool) = pools.pools.iter().find(|p| p.netuid == a.netuid) else {
            return Err(refusal(
                "unknown_subnet",
                format!("subnet {} has no pool", a.netuid),
            ));
        };
        let spot = pool.spot_price;
        Ok(match side {
            Side::Stake => spot.saturating_mul(10_000 + bps) / 10_000,
            // At least 1 base unit: 0 means "no limit" on chain.
            Side::Unstake => (spot.saturating_mul(10_000 - bps) / 10_000).max(1),
        })
    }
}
