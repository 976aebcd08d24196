//! `mycel subnet` and `mycel neuron`: create and tune subnets, register and announce neurons.

use super::*;

pub(super) fn subnet_create(args: SubnetCreateArgs) -> Result<()> {
    let max_lock = args
        .max_lock_cost
        .as_deref()
        .map(|a| parse_myc(a, "--max-lock-cost"))
        .transpose()?;
    let signer = args.send.load_signer(true)?;
    let hotkey = args
        .hotkey
        .resolve(&args.send.signer.keystore)?
        .unwrap_or(signer.address());
    let node = args.client.connect()?;
    let max_lock = match max_lock {
        Some(max) => max,
        // The node does not publish the lock cost before the fact; the balance bounds what can
        // be paid, and the receipt says what was.
        None => node.account(signer.address())?.myc,
    };
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::RegisterSubnet(RegisterSubnet {
                from,
                hotkey,
                maxLockCost: U256::from(max_lock),
                nonce,
                fee,
            })
        },
    )?;
    let registered = done.filter(|_| !args.client.json).and_then(|done| {
        done.receipt.incentive_events().find_map(|e| match e {
            IncentiveEvent::SubnetRegistered {
                netuid,
                owner,
                owner_hotkey,
                lock,
            } => Some((*netuid, *owner, *owner_hotkey, *lock)),
            _ => None,
        })
    });
    if let Some((netuid, owner, owner_hotkey, lock)) = registered {
        println!(
            "created subnet {netuid}: owner {owner}, owner hotkey {owner_hotkey} (UID 0), locked {} MYC",
            myc(lock),
        );
        println!(
            "next: `mycel subnet set {netuid} --tempo …` to tune it, `mycel neuron register --netuid {netuid}` to join it"
        );
    }
    Ok(())
}

pub(super) fn subnet_list(args: QueryArgs) -> Result<()> {
    let node = args.client.connect()?;
    let list = node.subnets()?;
    if args.client.json {
        return print_json(&list);
    }
    if list.subnets.is_empty() {
        println!(
            "no subnets yet (as of block {}); create one with `mycel subnet create`",
            list.height
        );
        return Ok(());
    }
    let mut table = Table::new(&[
        "NETUID",
        "OWNER",
        "NEURONS",
        "TEMPO",
        "BURN (MYC)",
        "PRICE (MYC/α)",
        "FLOW (MYC/block)",
    ]);
    for s in &list.subnets {
        table.row(vec![
            s.netuid.to_string(),
            s.owner.to_string(),
            format!("{}/{}", s.neurons, s.max_uids),
            s.tempo.to_string(),
            myc(s.burn),
            myc(s.price),
            flow_of(&s.flow_ema),
        ]);
    }
    table.print();
    println!("as of block {}", list.height);
    Ok(())
}

pub(super) fn subnet_show(args: SubnetShowArgs) -> Result<()> {
    let node = args.client.connect()?;
    let s = node.subnet(args.netuid)?;
    if args.client.json {
        return print_json(&s);
    }
    let pool = &s.pool;
    print_rows(&[
        ("netuid", s.netuid.to_string()),
        ("owner", s.owner.to_string()),
        ("owner hotkey", s.owner_hotkey.to_string()),
        ("registered at", format!("block {}", s.registered_at)),
        ("locked", format!("{} MYC", myc(s.lock))),
        ("neurons", format!("{} of {}", s.neurons, s.params.max_uids)),
        ("registration burn", format!("{} MYC", myc(s.burn))),
        (
            "pool",
            format!(
                "{} MYC / {} α, price {} MYC per α",
                myc(pool.myc_reserve),
                myc(pool.alpha_reserve),
                myc(pool.spot_price)
            ),
        ),
        ("moving price", pool.moving_price.clone()),
        ("alpha issued", format!("{} α", myc(pool.alpha_issued))),
        ("alpha staked", format!("{} α", myc(pool.alpha_staked))),
        (
            "flow EMA",
            format!("{} MYC per block", flow_of(&s.flow_ema)),
        ),
        (
            "pending emission",
            format!(
                "{} α for the epoch, {} α owner cut",
                myc(s.pending_alpha),
                myc(s.pending_owner_cut)
            ),
        ),
        (
            "last epoch",
            s.last_epoch
                .map(|b| format!("block {b}"))
                .unwrap_or_else(|| "none yet".into()),
        ),
        ("next epoch", format!("block {}", s.next_epoch_at)),
        ("pending commits", s.pending_commits.to_string()),
        ("as of block", s.height.to_string()),
    ]);
    println!("hyperparameters:");
    // By name, as the node writes them.
    if let serde_json::Value::Object(params) = serde_json::to_value(&s.params)? {
        let width = params.keys().map(String::len).max().unwrap_or(0);
        for (name, value) in params {
            println!("  {name:<width$}  {value}");
        }
    }
    Ok(())
}

pub(super) fn subnet_set(args: SubnetSetArgs) -> Result<()> {
    let params = args.params();
    if params.is_empty() {
        bail!("give at least one hyperparameter to set, e.g. --tempo 99 (see `mycel subnet set --help`)");
    }
    let signer = args.send.load_signer(true)?;
    let node = args.client.connect()?;
    let netuid = args.netuid;
    let names: Vec<String> = params.iter().map(|(n, _)| n.to_string()).collect();
    let values: Vec<u64> = params.iter().map(|(_, v)| *v).collect();
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::SetSubnetParams(SetSubnetParams {
                from,
                netuid,
                names,
                values,
                nonce,
                fee,
            })
        },
    )?;
    if done.is_some() && !args.client.json {
        let list: Vec<String> = params
            .iter()
            .map(|(n, v)| match *n {
                "commit_reveal" | "liquid_alpha" | "yuma3" | "registration_allowed" => {
                    format!("{n} = {}", *v == 1)
                }
                _ => format!("{n} = {v}"),
            })
            .collect();
        println!("subnet {netuid}: {}", list.join(", "));
    }
    Ok(())
}

// ---------------------------------------------------------------- neurons

pub(super) fn neuron_register(args: NeuronRegisterArgs) -> Result<()> {
    let hotkey = args
        .hotkey
        .resolve(&args.send.signer.keystore)?
        .ok_or_else(|| {
            anyhow!("say which hotkey to register: --hotkey ADDRESS|NAME or --hotkey-dev-account I")
        })?;
    let max_burn = args
        .max_burn
        .as_deref()
        .map(|a| parse_myc(a, "--max-burn"))
        .transpose()?;
    let signer = args.send.load_signer(true)?;
    let node = args.client.connect()?;
    let netuid = args.netuid;
    let max_burn = match max_burn {
        Some(max) => max,
        None => node.subnet(netuid)?.burn,
    };
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::BurnedRegister(BurnedRegister {
                from,
                netuid,
                hotkey,
                maxBurn: U256::from(max_burn),
                nonce,
                fee,
            })
        },
    )?;
    let registered = done.filter(|_| !args.client.json).and_then(|done| {
        done.receipt.incentive_events().find_map(|e| match e {
            IncentiveEvent::NeuronRegistered {
                uid,
                hotkey,
                burned,
                replaced,
                ..
            } => Some((*uid, *hotkey, *burned, *replaced)),
            _ => None,
        })
    });
    if let Some((uid, hotkey, burned, replaced)) = registered {
        print!(
            "registered hotkey {hotkey} on subnet {netuid} as UID {uid} (burned {} MYC",
            myc(burned)
        );
        match replaced {
            Some(old) => println!(", replacing {old})"),
            None => println!(")"),
        }
    }
    Ok(())
}

pub(super) fn neuron_list(args: NeuronListArgs) -> Result<()> {
    let node = args.client.connect()?;
    let graph = node.metagraph(args.netuid)?;
    if args.client.json {
        return print_json(&graph);
    }
    let mut table = Table::new(&[
        "UID",
        "HOTKEY",
        "COLDKEY",
        "REGISTERED",
        "ACTIVE",
        "IMMUNE",
        "ENDPOINT",
    ]);
    for n in &graph.neurons {
        table.row(vec![
            n.uid.to_string(),
            n.hotkey.to_string(),
            n.coldkey.to_string(),
            n.registered_at.to_string(),
            yes_no(n.active),
            yes_no(n.immune),
            endpoint_of(n.endpoint.as_ref()),
        ]);
    }
    table.print();
    println!(
        "subnet {}, {} neurons, as of block {}",
        args.netuid,
        graph.neurons.len(),
        graph.block
    );
    Ok(())
}

pub(super) fn neuron_serve(args: NeuronServeArgs) -> Result<()> {
    if args.host.trim().is_empty() {
        bail!("--host is empty: give an IP address or a DNS name");
    }
    if args.port == 0 {
        bail!("--port 0 is not a port clients can reach: give the port the neuron listens on");
    }
    if args.protocol.trim().is_empty() {
        bail!("--protocol is empty: give e.g. http or https");
    }
    let signer = args.send.load_signer(true)?;
    let node = args.client.connect()?;
    let (netuid, host, port, protocol) = (
        args.netuid,
        args.host.clone(),
        args.port,
        args.protocol.clone(),
    );
    let done = send(
        &node,
        &args.send,
        &signer,
        args.client.json,
        |from, nonce, fee| {
            TxKind::ServeEndpoint(ServeEndpoint {
                from,
                netuid,
                host,
                port,
                protocol,
                nonce,
                fee,
            })
        },
    )?;
    let served = done.filter(|_| !args.client.json).and_then(|done| {
        done.receipt.incentive_events().find_map(|e| match e {
            IncentiveEvent::EndpointServed {
                uid,
                host,
                port,
                protocol,
                ..
            } => Some(format!(
                "UID {uid} of subnet {netuid} serves at {protocol}://{host}:{port}"
            )),
            _ => None,
        })
    });
    if let Some(line) = served {
        println!("{line}");
    }
    Ok(())
}
