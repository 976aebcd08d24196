//! `mycel epoch --input FILE|-`: one Yuma epoch on data given as JSON, with no chain.
//!
//! For comparing mycel's Yuma with other implementations (subtensor, yuma-simulation). Input:
//!
//! ```json
//! {"yuma": "yuma2"|"yuma3", "stake": [u64…], "weights": [[u16…]…], "bonds": [[u16…]…],
//!  "active": [bool…], "validator_permit": [bool…], "block_at_registration": [u64…],
//!  "last_update": [u64…], "block": u64, "emission": u64, "kappa": u16, "bonds_penalty": u16,
//!  "bonds_moving_average": u64,
//!  "liquid_alpha": {"enabled": bool, "alpha_low": u16, "alpha_high": u16, "steepness": u16}}
//! ```
//!
//! Row i of `weights` is what neuron i set, column j the neuron weighted; `bonds` are the bonds
//! stored by the previous epoch. A row may be `[]` (all zeros) or have one entry per neuron.
//! Optional fields, with their defaults: `tempo` (360), `last_epoch_block` (none: the bond mask
//! then uses `block − tempo`), `max_allowed_validators` (128), `stake_threshold` (0),
//! `owner_uid` (none).
//!
//! Output: `consensus`, `incentive`, `dividends`, `validator_trust` (fractions printed from the
//! 32.32 fixed-point values), `bonds` (n×n, as stored), `emission` (base units per neuron,
//! miner + validator part), and, beyond the issue's list, `server_emission`,
//! `validator_emission`, `validator_permit` (the new permits) and `undistributed`.

use anyhow::{anyhow, Context};
use mycel_state::incentive::{run_epoch, EpochInput, LiquidAlpha, YumaVersion};
use serde::{Deserialize, Serialize};
use std::io::Read;

#[derive(Debug, clap::Args)]
pub struct EpochArgs {
    /// JSON file with the epoch's input, or `-` to read it from standard input.
    #[arg(long, value_name = "FILE")]
    pub input: String,
}

/// The JSON input. Every field of the issue's format is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EpochJson {
    yuma: YumaVersion,
    stake: Vec<u64>,
    weights: Vec<Vec<u16>>,
    bonds: Vec<Vec<u16>>,
    active: Vec<bool>,
    validator_permit: Vec<bool>,
    block_at_registration: Vec<u64>,
    last_update: Vec<u64>,
    block: u64,
    emission: u64,
    kappa: u16,
    bonds_penalty: u16,
    bonds_moving_average: u64,
    liquid_alpha: LiquidAlphaJson,
    #[serde(default = "default_tempo")]
    tempo: u64,
    #[serde(default)]
    last_epoch_block: Option<u64>,
    #[serde(default = "default_max_validators")]
    max_allowed_validators: u16,
    #[serde(default)]
    stake_threshold: u64,
    #[serde(default)]
    owner_uid: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiquidAlphaJson {
    enabled: bool,
    alpha_low: u16,
    alpha_high: u16,
    steepness: u16,
}

fn default_tempo() -> u64 {
    360
}

fn default_max_validators() -> u16 {
    128
}

#[derive(Debug, Serialize)]
struct EpochResultJson {
    consensus: Vec<f64>,
    incentive: Vec<f64>,
    dividends: Vec<f64>,
    validator_trust: Vec<f64>,
    bonds: Vec<Vec<u16>>,
    emission: Vec<u64>,
    server_emission: Vec<u64>,
    validator_emission: Vec<u64>,
    validator_permit: Vec<bool>,
    undistributed: u64,
}

/// A dense `n × n` matrix (rows `[]` allowed) to sparse rows, dropping zeros.
fn to_sparse(field: &str, m: &[Vec<u16>], n: usize) -> anyhow::Result<Vec<Vec<(u16, u16)>>> {
    if m.len() != n {
        return Err(anyhow!(
            "`{field}` has {} rows but `stake` has {n} neurons: give one row per neuron",
            m.len()
        ));
    }
    m.iter()
        .enumerate()
        .map(|(i, row)| {
            if !row.is_empty() && row.len() != n {
                return Err(anyhow!(
                    "`{field}[{i}]` has {} entries: a row must be [] or have one entry per neuron ({n})",
                    row.len()
                ));
            }
            Ok(row.iter().enumerate().filter(|(_, v)| **v != 0).map(|(j, v)| (j as u16, *v)).collect())
        })
        .collect()
}

/// Parse the JSON text into the state crate's epoch input, naming the field on any error.
fn parse_input(text: &str) -> anyhow::Result<EpochInput> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let json: EpochJson = serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        if path == "." {
            anyhow!("bad epoch input: {}", err.inner())
        } else {
            anyhow!("bad epoch input at `{path}`: {}", err.inner())
        }
    })?;
    let n = json.stake.len();
    if n > u16::MAX as usize {
        return Err(anyhow!(
            "`stake` lists {n} neurons; at most 65535 are supported"
        ));
    }
    Ok(EpochInput {
        yuma: json.yuma,
        weights: to_sparse("weights", &json.weights, n)?,
        bonds: to_sparse("bonds", &json.bonds, n)?,
        stake: json.stake,
        active: json.active,
        validator_permit: json.validator_permit,
        block_at_registration: json.block_at_registration,
        last_update: json.last_update,
        block: json.block,
        tempo: json.tempo,
        last_epoch_block: json.last_epoch_block,
        emission: json.emission,
        kappa: json.kappa,
        bonds_penalty: json.bonds_penalty,
        bonds_moving_average: json.bonds_moving_average,
        liquid_alpha: LiquidAlpha {
            enabled: json.liquid_alpha.enabled,
            alpha_low: json.liquid_alpha.alpha_low,
            alpha_high: json.liquid_alpha.alpha_high,
            steepness: json.liquid_alpha.steepness,
        },
        max_allowed_validators: json.max_allowed_validators,
        stake_threshold: json.stake_threshold,
        owner_uid: json.owner_uid,
    })
}

pub fn run(args: EpochArgs) -> anyhow::Result<()> {
    let text = if args.input == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the epoch input from standard input")?;
        s
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("reading the epoch input {}", args.input))?
    };
    let input = parse_input(&text)?;
    let out = run_epoch(&input).map_err(|err| anyhow!("bad epoch input: {err}"))?;
    let n = input.stake.len();
    let frac = |v: &[mycel_state::incentive::I32F32]| {
        v.iter().map(|x| x.to_num::<f64>()).collect::<Vec<f64>>()
    };
    let bonds: Vec<Vec<u16>> = out
        .bonds
        .iter()
        .map(|row| {
            let mut dense = vec![0u16; n];
            for &(j, v) in row {
                dense[j as usize] = v;
            }
            dense
        })
        .collect();
    let result = EpochResultJson {
        consensus: frac(&out.consensus),
        incentive: frac(&out.incentive),
        dividends: frac(&out.dividends),
        validator_trust: frac(&out.validator_trust),
        bonds,
        emission: out.emission(),
        server_emission: out.server_emission,
        validator_emission: out.validator_emission,
        validator_permit: out.validator_permit,
        undistributed: out.undistributed,
    };
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
