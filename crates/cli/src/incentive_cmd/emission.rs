//! `mycel metagraph` and `mycel emission`: a subnet's UIDs, and where the emission went.

use super::*;

pub fn run_metagraph(args: MetagraphArgs) -> Result<()> {
    let node = args.client.connect()?;
    let graph = node.metagraph(args.netuid)?;
    if args.client.json {
        return print_json(&graph);
    }
    let mut table = Table::new(&[
        "UID", "HOTKEY", "COLDKEY", "ALPHA", "VP", "CONS", "INCENT", "DIVS", "VTRUST", "EMISSION",
        "UPDATED", "ENDPOINT",
    ]);
    for n in &graph.neurons {
        table.row(vec![
            n.uid.to_string(),
            short_address(n.hotkey),
            short_address(n.coldkey),
            myc(n.alpha),
            if n.validator_permit { "*" } else { "" }.into(),
            fraction(n.consensus),
            fraction(n.incentive),
            fraction(n.dividends),
            fraction(n.validator_trust),
            myc(n.emission),
            n.last_update.to_string(),
            endpoint_of(n.endpoint.as_ref()),
        ]);
    }
    table.print();
    println!(
        "subnet {}, block {}; alpha and emission in α; full addresses with --json",
        args.netuid, graph.block
    );
    Ok(())
}

#[derive(Debug, Args)]
#[command(
    after_help = "With --json: {\"schedule\": …, \"latest_receipt\": …}, the node's answers to \
    GET /v1/emission and GET /v1/emission/receipts/latest (null before the first subnet exists); \
    docs/node-api.md describes both."
)]
pub struct EmissionArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What `mycel emission --json` prints.
#[derive(Debug, Serialize)]
struct Emission {
    schedule: api::EmissionSchedule,
    latest_receipt: Option<api::EmissionReceipt>,
}

pub fn run_emission(args: EmissionArgs) -> Result<()> {
    let node = args.client.connect()?;
    let emission = Emission {
        schedule: node.emission()?,
        latest_receipt: node.latest_emission_receipt()?,
    };
    if args.client.json {
        return print_json(&emission);
    }
    let schedule = &emission.schedule;
    print_rows(&[
        ("as of block", schedule.height.to_string()),
        ("issuance", format!("{} MYC", myc(schedule.issuance))),
        ("supply cap", format!("{} MYC", myc(schedule.total_supply))),
        (
            "block emission",
            format!("{} MYC", myc(schedule.block_emission)),
        ),
        (
            "halvings so far",
            schedule
                .halvings
                .map_or_else(|| "-".into(), |h| h.to_string()),
        ),
        (
            "next halving at",
            match schedule.next_halving_at {
                None => "never (the cap is reached)".into(),
                Some(at) => format!("{} MYC issued", myc(at)),
            },
        ),
        (
            "subnet lock cost",
            format!("{} MYC", myc(schedule.subnet_lock_cost)),
        ),
    ]);
    let Some(r) = &emission.latest_receipt else {
        println!("\nno emission receipt yet: emission goes to subnets once one exists");
        return Ok(());
    };
    println!();
    println!(
        "block {}: emitted {} MYC, {} MYC to no subnet",
        r.height,
        myc(r.block_emission),
        myc(r.myc_unassigned)
    );
    for s in &r.subnets {
        print_subnet_emission(s);
    }
    for swap in &r.swaps {
        let (input, output) = swap_units(swap.side);
        println!(
            "  {} on subnet {}: {} {input} → {} {output} at {} MYC per α",
            side_name(swap.side),
            swap.netuid,
            myc(swap.amount_in),
            myc(swap.amount_out),
            myc(swap.price)
        );
    }
    Ok(())
}

/// One subnet's line of an emission receipt, and its epoch's payouts if one ran.
fn print_subnet_emission(s: &api::SubnetEmission) {
    println!(
        "  subnet {}: share {} MYC (injected {}, recycled {}), alpha {} α in the pool, {} α emitted: owner cut {}, pending {}",
        s.netuid,
        myc(s.myc_share),
        myc(s.myc_injected),
        myc(s.myc_recycled),
        myc(s.alpha_injected),
        myc(s.alpha_emission),
        myc(s.owner_cut),
        myc(s.pending_added),
    );
    let Some(epoch) = &s.epoch else {
        return;
    };
    println!(
        "    epoch paid {} α: owner {} α, recycled {} α",
        myc(epoch.paid),
        myc(epoch.owner_cut),
        myc(epoch.recycled)
    );
    let mut table = Table::new(&[
        "UID",
        "HOTKEY",
        "INCENTIVE",
        "DIVIDENDS",
        "TAKE",
        "TO STAKERS",
    ]);
    for n in &epoch.neurons {
        table.row(vec![
            n.uid.to_string(),
            short_address(n.hotkey),
            myc(n.incentive),
            myc(n.dividends),
            myc(n.take),
            myc(n.to_stakers),
        ]);
    }
    table.print_indented("    ");
}
