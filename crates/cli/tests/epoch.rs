//! `mycel epoch` through the real binary: subtensor's `test_bonds` vector end to end, stdin input,
//! and input errors that name the field.

use mycel_testkit::mycel;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Output, Stdio};

fn epoch_stdin(input: &Value) -> Output {
    let mut child = mycel::command(&["epoch", "--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mycel");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait mycel")
}

fn epoch_file(input: &Value) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("epoch.json");
    std::fs::write(&path, input.to_string()).expect("write input");
    mycel::run(&["epoch", "--input", path.to_str().expect("utf-8 path")])
}

#[track_caller]
fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "mycel epoch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[track_caller]
fn err_text(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected failure, stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `test_bonds` network: 4 validators (stake 1..4) and 4 miners, tempo 1.
fn test_bonds_input() -> Value {
    let w = vec![0u16, 0, 0, 0, 16383, 32767, 49149, 65535];
    let active = vec![true; 8];
    let registered = vec![0u64; 8];
    json!({
        "yuma": "yuma2",
        "stake": [1, 2, 3, 4, 0, 0, 0, 0],
        "weights": [w, w, w, w, [], [], [], []],
        "bonds": [[], [], [], [], [], [], [], []],
        "active": active,
        "validator_permit": [true, true, true, true, false, false, false, false],
        "block_at_registration": registered,
        "last_update": [1, 1, 1, 1, 0, 0, 0, 0],
        "block": 2,
        "tempo": 1,
        "emission": 1_000_000_000u64,
        "kappa": 32767,
        "bonds_penalty": 65535,
        "bonds_moving_average": 900_000,
        "liquid_alpha": {"enabled": false, "alpha_low": 45875, "alpha_high": 58982, "steepness": 1000}
    })
}

fn col(bonds: &Value, j: usize) -> Vec<u64> {
    (0..4).map(|i| bonds[i][j].as_u64().expect("u16")).collect()
}

#[test]
fn epoch_runs_subtensor_test_bonds_through_the_cli() {
    let mut input = test_bonds_input();
    let out = ok_json(&epoch_file(&input));
    assert_eq!(col(&out["bonds"], 4), [16383, 32767, 49151, 65535]);
    let emission: u64 = out["emission"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_u64().unwrap())
        .sum();
    assert_eq!(emission, 1_000_000_000, "no dust lost");
    let incentive: f64 = out["incentive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_f64().unwrap())
        .sum();
    assert!((incentive - 1.0).abs() < 1e-6);
    let c7 = out["consensus"][7].as_f64().unwrap();
    assert!((c7 - 0.400008545).abs() < 2e-9, "consensus[7] = {c7}");

    // Second epoch: validator 0 only weights itself; carry the stored bonds over.
    input["bonds"] = out["bonds"].clone();
    input["weights"][0] = json!([65535, 0, 0, 0, 0, 0, 0, 0]);
    input["last_update"][0] = json!(2);
    input["block"] = json!(3);
    let out = ok_json(&epoch_stdin(&input));
    assert_eq!(col(&out["bonds"], 4), [14582, 32767, 49151, 65535]);
    assert_eq!(out["validator_trust"][0].as_f64(), Some(0.0));
}

#[test]
fn epoch_names_missing_and_inconsistent_fields() {
    let mut input = test_bonds_input();
    input.as_object_mut().unwrap().remove("kappa");
    let err = err_text(&epoch_stdin(&input));
    assert!(err.contains("kappa"), "{err}");

    let mut input = test_bonds_input();
    input["active"] = json!([true, true]);
    let err = err_text(&epoch_stdin(&input));
    assert!(
        err.contains("`active`") && err.contains("2 entries"),
        "{err}"
    );

    let mut input = test_bonds_input();
    input["weights"][2] = json!([1, 2, 3]);
    let err = err_text(&epoch_stdin(&input));
    assert!(err.contains("weights[2]"), "{err}");

    let mut input = test_bonds_input();
    input["weights"][1][3] = json!(70000);
    let err = err_text(&epoch_stdin(&input));
    assert!(err.contains("weights[1][3]"), "{err}");

    let mut input = test_bonds_input();
    input["liquid_alpha"]["alpha_low"] = json!(60000);
    let err = err_text(&epoch_stdin(&input));
    assert!(err.contains("alpha_low"), "{err}");

    let mut input = test_bonds_input();
    input["yuma"] = json!("yuma4");
    let err = err_text(&epoch_stdin(&input));
    assert!(err.contains("yuma"), "{err}");

    let err = err_text(&epoch_stdin(&json!("not an object")));
    assert!(err.contains("bad epoch input"), "{err}");

    let out = mycel::run(&["epoch", "--input", "/nonexistent/epoch.json"]);
    let err = err_text(&out);
    assert!(err.contains("/nonexistent/epoch.json"), "{err}");
}
