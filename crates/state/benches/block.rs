//! Block processing with 32 subnets whose epochs all fall in the same block.
//!
//! Each subnet has 256 UIDs, 64 of them validators that weight every UID (dense, worst case) and
//! hold bonds from a previous epoch. The state is built the way a node reads one: a snapshot
//! (`State::from_snapshot_bytes`, books checked), made from a one-subnet chain whose subnet is
//! replicated into netuids 1..=32 with tempos chosen so that every epoch runs in the next block.
//! The timed step is `apply_block` of an empty block (emission, 32 epochs, books, state root).
//!
//! `cargo bench -p mycel-state --bench block`; `BLOCK_CPU_ITERS=N` prints this thread's CPU time
//! per block instead (steadier on a shared machine).

use alloy_primitives::{Address, U256};
use criterion::{criterion_group, BatchSize, Criterion};
use mycel_state::{
    subnets::{AlphaAmount, EpochSchedule, Neuron, Subnet},
    BlockContext, State,
};
use mycel_types::{keys::dev_signer, tx, Genesis, SignedTx, TxKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::hint::black_box;

const SUBNETS: u16 = 32;
const UIDS: usize = 256;
const VALIDATORS: usize = 64;
const TOKEN: u128 = 1_000_000_000;

struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn key(netuid: u16, uid: usize) -> Address {
    let mut b = [0u8; 20];
    b[0] = 0xee;
    b[16..18].copy_from_slice(&netuid.to_be_bytes());
    b[18..20].copy_from_slice(&(uid as u16).to_be_bytes());
    Address::from(b)
}

/// The state one block before every subnet's epoch.
fn fixture() -> State {
    let genesis = Genesis::devnet(vec!["ab".repeat(32)], 0).expect("genesis");
    let mut state = State::from_genesis(&genesis);
    let owner = dev_signer(0).expect("dev key");
    let register = TxKind::RegisterSubnet(tx::RegisterSubnet {
        from: owner.address(),
        hotkey: key(0, 0),
        maxLockCost: U256::from(u128::MAX),
        nonce: 0,
        fee: U256::from(10_000u64),
    });
    let signed = SignedTx::sign(register, genesis.chain_id, &owner).expect("sign");
    let verified = state.verify_stateless(signed).expect("valid");
    state
        .apply_block(
            BlockContext {
                height: 1,
                timestamp_ms: 1000,
            },
            &[verified],
        )
        .expect("block 1");
    let template = state.subnets().get(1).expect("subnet 1").clone();
    let height = state.height();
    let mut snapshot: Value = serde_json::from_slice(&state.to_snapshot_bytes()).expect("json");

    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
    let mut subnets = serde_json::Map::new();
    let mut hotkey_owner = serde_json::Map::new();
    let mut pools_myc: u128 = 0;
    for netuid in 1..=SUBNETS {
        let mut s: Subnet = template.clone();
        s.netuid = netuid;
        s.owner_hotkey = key(netuid, 0);
        // The smallest tempo that puts this subnet's epoch in the next block (the epoch rule).
        s.params.tempo = (1..)
            .find(|tempo| EpochSchedule::new(netuid, *tempo).is_epoch_block(height + 1))
            .expect("some tempo puts the epoch in the next block");
        s.params.max_uids = UIDS as u16;
        s.params.max_validators = VALIDATORS as u16;
        s.pool.myc = 1000 * TOKEN;
        s.pool.alpha = 1000 * TOKEN;
        s.pending_alpha = 300 * TOKEN;
        s.pending_owner = 60 * TOKEN;
        s.last_epoch = Some(0);
        s.neurons.clear();
        s.stakes.clear();
        for uid in 0..UIDS {
            let hotkey = key(netuid, uid);
            let row = |rng: &mut Xorshift| -> Vec<(u16, u16)> {
                (0..UIDS as u16)
                    .map(|j| (j, (rng.next() % 65535) as u16 + 1))
                    .collect()
            };
            let validator = uid < VALIDATORS;
            s.neurons.push(Neuron {
                hotkey,
                coldkey: hotkey,
                registered_at: 0,
                last_update: height,
                weights_set_at: Some(height),
                weights: if validator { row(&mut rng) } else { Vec::new() },
                bonds: if validator { row(&mut rng) } else { Vec::new() },
                validator_permit: validator,
                consensus: 0,
                incentive: 0,
                dividends: 0,
                validator_trust: 0,
                emission: 0,
                endpoint: None,
            });
            if validator {
                let mut by_cold = BTreeMap::new();
                by_cold.insert(
                    hotkey,
                    AlphaAmount(TOKEN + (rng.next() % 1000) as u128 * TOKEN),
                );
                // A few delegators per validator.
                for d in 0..4u8 {
                    by_cold.insert(Address::repeat_byte(d + 1), AlphaAmount(10 * TOKEN));
                }
                s.stakes.insert(hotkey, by_cold);
            }
            hotkey_owner.insert(format!("{hotkey:?}"), json!(hotkey));
        }
        s.alpha_issued = s.pool.alpha + s.staked_alpha() + s.pending_alpha + s.pending_owner;
        pools_myc += s.pool.myc;
        subnets.insert(
            netuid.to_string(),
            serde_json::to_value(&s).expect("subnet json"),
        );
    }
    // The MYC for the pools comes out of the owner's balance (the books must balance).
    let old_pool = template.pool.myc;
    let owner_key = format!("{:?}", owner.address());
    let balance: u128 = snapshot["accounts"][&owner_key]["myc"]
        .as_str()
        .expect("balance")
        .parse()
        .expect("number");
    snapshot["accounts"][&owner_key]["myc"] = json!((balance + old_pool - pools_myc).to_string());
    snapshot["subnets"]["subnets"] = Value::Object(subnets);
    snapshot["subnets"]["hotkey_owner"] = Value::Object(hotkey_owner);
    State::from_snapshot_bytes(&serde_json::to_vec(&snapshot).expect("bytes"))
        .expect("books balance")
}

fn next_block(state: &mut State) {
    let ctx = BlockContext {
        height: state.height() + 1,
        timestamp_ms: state.last_block_time_ms() + 1000,
    };
    let outcome = state.apply_block(ctx, &[]).expect("block applies");
    let receipt = outcome.emission.expect("receipt");
    assert_eq!(
        receipt.subnets.iter().filter(|s| s.epoch.is_some()).count(),
        SUBNETS as usize,
        "every subnet's epoch runs in this block"
    );
}

fn bench_block(c: &mut Criterion) {
    let state = fixture();
    let mut group = c.benchmark_group("block");
    group.sample_size(10);
    group.bench_function("32_subnets_256uids_64validators_all_epochs", |b| {
        b.iter_batched(
            || state.clone(),
            |mut s| {
                next_block(&mut s);
                black_box(s)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_block);

fn thread_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn main() {
    if let Some(iters) = std::env::var("BLOCK_CPU_ITERS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        let state = fixture();
        let mut total = 0u64;
        for _ in 0..iters {
            let mut s = state.clone();
            let start = thread_cpu_ticks().unwrap_or(0);
            next_block(&mut s);
            total += thread_cpu_ticks().unwrap_or(0) - start;
        }
        println!(
            "32 subnets x 256 UIDs x 64 validators, all epochs in one block: {:.1} ms CPU per block ({iters} blocks)",
            total as f64 * 10.0 / iters as f64
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
