//! `mycel stake`: stake and unstake (swaps in a subnet's pool) and list positions.

use super::*;

pub(super) fn stake_add(args: StakeAddArgs) -> Result<()> {
    let hotkey = args
        .hotkey
        .resolve(&args.send.signer.keystore)?
        .ok_or_else(|| {
            anyhow!("say which hotkey to stake on: --hotkey ADDRESS|NAME or --hotkey-dev-account I")
        })?;
    let amount = parse_myc(&args.amount, "--amount")?;
    let limit = args
        .limit_price
        .as_deref()
        .map(|p| parse_price(p, "--limit-price"))
        .transpose()?
        .unwrap_or(0);
    let signer = args.send.load_signer(true)?;
    let node = args.client.connect()?;
    let netuid = args.netuid;
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::AddStake(AddStake {
                from,
                hotkey,
                netuid,
                amount: U256::from(amount),
                limitPrice: U256::from(limit),
                nonce,
                fee,
            })
        },
    )?;
    if let Some(done) = done.filter(|_| !args.client.json) {
        println!(
            "staked {} MYC on {hotkey} in subnet {netuid}",
            format_amount(amount, Token::Myc)
        );
        let order = Order {
            coldkey: signer.address(),
            hotkey,
            netuid,
            side: Side::Stake,
        };
        print_fill(&node, &done, &order);
        print_position(&node, &order)?;
    }
    Ok(())
}

pub(super) fn stake_remove(args: StakeRemoveArgs) -> Result<()> {
    let hotkey = args
        .hotkey
        .resolve(&args.send.signer.keystore)?
        .ok_or_else(|| {
            anyhow!(
                "say which hotkey to unstake from: --hotkey ADDRESS|NAME or --hotkey-dev-account I"
            )
        })?;
    let amount = match args.amount.as_str() {
        "all" => None,
        a => Some(parse_myc(a, "--amount").context("--amount is in alpha, or `all`")?),
    };
    let limit = args
        .limit_price
        .as_deref()
        .map(|p| parse_price(p, "--limit-price"))
        .transpose()?
        .unwrap_or(0);
    let signer = args.send.load_signer(true)?;
    let node = args.client.connect()?;
    let netuid = args.netuid;
    let order = Order {
        coldkey: signer.address(),
        hotkey,
        netuid,
        side: Side::Unstake,
    };
    let amount = match amount {
        Some(a) => a,
        None => match position(&node, &order)? {
            Some(p) if p.alpha > 0 => p.alpha,
            _ => bail!(
                "{} has no stake on {hotkey} in subnet {netuid}: nothing to unstake",
                order.coldkey
            ),
        },
    };
    if amount == 0 {
        bail!("--amount must be above 0");
    }
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::RemoveStake(RemoveStake {
                from,
                hotkey,
                netuid,
                amount: U256::from(amount),
                limitPrice: U256::from(limit),
                nonce,
                fee,
            })
        },
    )?;
    if let Some(done) = done.filter(|_| !args.client.json) {
        println!(
            "unstaked {} α from {hotkey} in subnet {netuid}",
            format_amount(amount, Token::Myc)
        );
        print_fill(&node, &done, &order);
        print_position(&node, &order)?;
    }
    Ok(())
}

/// The alpha staked on one hotkey of one subnet (`mycel stake list` without `--coldkey`).
#[derive(Debug, Serialize)]
struct HotkeyStake {
    netuid: u16,
    uid: u16,
    hotkey: Address,
    #[serde(with = "api::amount")]
    alpha: Amount,
    #[serde(with = "api::amount")]
    stake: Amount,
}

/// What `mycel stake list --json` prints without `--coldkey`.
#[derive(Debug, Serialize)]
struct HotkeyStakes {
    height: u64,
    hotkeys: Vec<HotkeyStake>,
}

pub(super) fn stake_list(args: StakeListArgs) -> Result<()> {
    let coldkey = match (&args.coldkey, args.dev_account) {
        (Some(spec), _) => Some(resolve_address(spec, &args.keystore)?),
        (None, Some(n)) => Some(dev_address(n)?),
        (None, None) => None,
    };
    let node = args.client.connect()?;
    if let Some(coldkey) = coldkey {
        return print_stakes(&node.stakes(coldkey)?, args.client.json);
    }
    // Every hotkey's total, from each subnet's metagraph.
    let list = node.subnets()?;
    let mut staked = HotkeyStakes {
        height: list.height,
        hotkeys: Vec::new(),
    };
    for s in &list.subnets {
        let graph = node.metagraph(s.netuid)?;
        staked.hotkeys.extend(
            graph
                .neurons
                .iter()
                .filter(|n| n.alpha > 0)
                .map(|n| HotkeyStake {
                    netuid: s.netuid,
                    uid: n.uid,
                    hotkey: n.hotkey,
                    alpha: n.alpha,
                    stake: n.stake,
                }),
        );
    }
    if args.client.json {
        return print_json(&staked);
    }
    if staked.hotkeys.is_empty() {
        println!("nothing is staked (as of block {})", list.height);
        return Ok(());
    }
    let mut table = Table::new(&["NETUID", "UID", "HOTKEY", "ALPHA", "VALUE (MYC)"]);
    for r in &staked.hotkeys {
        table.row(vec![
            r.netuid.to_string(),
            r.uid.to_string(),
            r.hotkey.to_string(),
            myc(r.alpha),
            myc(r.stake),
        ]);
    }
    table.print();
    println!(
        "alpha staked on each hotkey by all coldkeys, as of block {}; one coldkey's positions: --coldkey ADDRESS",
        list.height
    );
    Ok(())
}

/// One coldkey's positions.
fn print_stakes(stakes: &api::Stakes, json: bool) -> Result<()> {
    if json {
        return print_json(stakes);
    }
    let coldkey = stakes.coldkey;
    if stakes.stakes.is_empty() {
        println!("{coldkey} has no stake (as of block {})", stakes.height);
        return Ok(());
    }
    let mut table = Table::new(&["NETUID", "HOTKEY", "ALPHA", "VALUE (MYC)"]);
    for p in &stakes.stakes {
        table.row(vec![
            p.netuid.to_string(),
            p.hotkey.to_string(),
            myc(p.alpha),
            myc(p.value),
        ]);
    }
    table.print();
    println!("coldkey {coldkey}, as of block {}", stakes.height);
    Ok(())
}

/// A stake or unstake order: whose, on which hotkey and subnet, which way.
struct Order {
    coldkey: Address,
    hotkey: Address,
    netuid: u16,
    side: Side,
}

/// The order's coldkey's position on its hotkey and subnet, if it has one.
fn position(node: &Node, order: &Order) -> Result<Option<api::StakePosition>> {
    Ok(node
        .stakes(order.coldkey)?
        .position(order.netuid, order.hotkey)
        .cloned())
}

/// What a stake order filled at, from the emission receipt of its block (which lists the block's
/// fills). Only the latest block's receipt can be read, so this says nothing if the chain has
/// already moved on.
fn print_fill(node: &Node, done: &Applied, order: &Order) {
    let Ok(Some(receipt)) = node.latest_emission_receipt() else {
        return;
    };
    if receipt.height != done.height {
        return;
    }
    let fill = receipt.swaps.iter().find(|f| {
        f.side == order.side
            && f.netuid == order.netuid
            && f.coldkey == order.coldkey
            && f.hotkey == order.hotkey
    });
    if let Some(f) = fill {
        let (input, output) = swap_units(f.side);
        println!(
            "filled in block {}: {} {input} → {} {output} at the batch price {} MYC per α",
            done.height,
            myc(f.amount_in),
            myc(f.amount_out),
            myc(f.price)
        );
    }
}

fn print_position(node: &Node, order: &Order) -> Result<()> {
    match position(node, order)? {
        Some(p) => println!(
            "position now: {} α (worth {} MYC at the spot price)",
            myc(p.alpha),
            myc(p.value)
        ),
        None => println!("position now: none"),
    }
    Ok(())
}
