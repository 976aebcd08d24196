//! The emission history's cost (issue "The explorer"): what keeping a block's receipt adds to a
//! finalized block, how many bytes a block's receipt and an epoch of 256 neurons hold, and how
//! long the subnet page's history routes take with 1,000 epochs of 256 neurons kept.
//!
//! `cargo bench -p mycel-chain --bench history` (prints a table). The routes are timed as the
//! node answers them: read under the ledger's lock, copied out, written as JSON.

use mycel_chain::{EmissionHistory, HistoryConfig};
use mycel_types::api;
use std::time::Instant;

const NEURONS: u16 = 256;
const EPOCHS: u64 = 1_000;
const TEMPO: u64 = 10;

fn receipt(height: u64, epoch: bool) -> api::EmissionReceipt {
    let neurons = (0..NEURONS)
        .map(|uid| api::NeuronPayout {
            uid,
            hotkey: alloy_primitives::Address::with_last_byte(uid as u8),
            incentive: 1_000_000 + u128::from(uid) * 7 + u128::from(height),
            dividends: 2_000_000 + u128::from(uid) * 3,
            take: 360_000,
            to_stakers: 1_640_000 + u128::from(uid) * 3,
        })
        .collect();
    api::EmissionReceipt {
        height,
        issuance: 10_000_000_000_000_000 + u128::from(height) * 1_000_000_000,
        block_emission: 1_000_000_000,
        myc_unassigned: 0,
        subnets: vec![api::SubnetEmission {
            netuid: 1,
            flow_ema: "32088.8672732642015370669".into(),
            myc_share: 1_000_000_000,
            myc_injected: 1_000_000_000,
            myc_recycled: 0,
            alpha_injected: 829_437_801,
            alpha_emission: 1_000_000_000,
            owner_cut: 179_995_422,
            pending_added: 820_004_578,
            pool_myc: 2_000_000_000_000,
            pool_alpha: 1_658_875_602_000,
            epoch: epoch.then_some(api::EpochReceipt {
                paid: 8_200_045_780,
                owner_cut: 1_799_954_220,
                neurons,
                recycled: 0,
            }),
        }],
        swaps: vec![],
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let mut history = EmissionHistory::new(HistoryConfig {
        blocks: 10_000,
        epochs: EPOCHS as usize,
        ..HistoryConfig::default()
    });
    // 1,000 epochs of 256 neurons (an epoch every 10 blocks).
    let mut plain = Vec::new();
    let mut with_epoch = Vec::new();
    for height in 1..=EPOCHS * TEMPO {
        let r = receipt(height, height % TEMPO == 0);
        let started = Instant::now();
        history.record(&r);
        let took = started.elapsed().as_secs_f64() * 1e6;
        if height % TEMPO == 0 {
            with_epoch.push(took);
        } else {
            plain.push(took);
        }
    }
    let bytes_plain = serde_json::to_vec(&receipt(1, false)).unwrap().len();
    let bytes_epoch = serde_json::to_vec(&receipt(1, true)).unwrap().len();

    // The subnet page's history route: 50 epochs (limit 50), and the neuron page's (limit 100).
    let mut epochs_route = Vec::new();
    let mut neuron_route = Vec::new();
    let mut receipts_route = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let body =
            serde_json::to_vec(&history.epoch_list(1, u64::MAX, 50, EPOCHS * TEMPO)).unwrap();
        epochs_route.push(started.elapsed().as_secs_f64() * 1e3);
        assert!(body.len() > 1_000);

        let started = Instant::now();
        let body =
            serde_json::to_vec(&history.neuron_emissions(1, 200, u64::MAX, 100, EPOCHS * TEMPO))
                .unwrap();
        neuron_route.push(started.elapsed().as_secs_f64() * 1e3);
        assert!(!body.is_empty());

        let started = Instant::now();
        let body =
            serde_json::to_vec(&history.receipt_list(u64::MAX, 100, EPOCHS * TEMPO)).unwrap();
        receipts_route.push(started.elapsed().as_secs_f64() * 1e3);
        assert!(!body.is_empty());
    }
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| record a block's receipt (1 subnet, no epoch), median | {:.2} µs |",
        median(plain)
    );
    println!(
        "| record an epoch block's receipt (256 neurons), median | {:.2} µs |",
        median(with_epoch)
    );
    println!("| JSON size of a block's receipt, no epoch / with an epoch of 256 neurons | {bytes_plain} B / {bytes_epoch} B |");
    println!(
        "| `/v1/subnets/1/epochs?limit=50` with 1,000 epochs × 256 neurons kept, median | {:.2} ms |",
        median(epochs_route)
    );
    println!(
        "| `/v1/subnets/1/neurons/200/emissions?limit=100`, median | {:.3} ms |",
        median(neuron_route)
    );
    println!(
        "| `/v1/emission/receipts?limit=100` (10 with an epoch), median | {:.2} ms |",
        median(receipts_route)
    );
}
