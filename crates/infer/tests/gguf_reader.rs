//! mycel-tokenizer's GGUF header reader against candle's on the real default model: the same
//! version, tensor count and metadata, key by key and value by value (floats bit for bit).

mod common;

use std::fs::File;
use std::io::BufReader;

use candle_core::quantized::gguf_file::{Content, Value as CandleValue, VersionedMagic};
use mycel_tokenizer::{read_header_file, Value};

/// Whether candle's value and mycel's are the same value of the same type.
fn same(candle: &CandleValue, mycel: &Value) -> bool {
    match (candle, mycel) {
        (CandleValue::U8(a), Value::U8(b)) => a == b,
        (CandleValue::I8(a), Value::I8(b)) => a == b,
        (CandleValue::U16(a), Value::U16(b)) => a == b,
        (CandleValue::I16(a), Value::I16(b)) => a == b,
        (CandleValue::U32(a), Value::U32(b)) => a == b,
        (CandleValue::I32(a), Value::I32(b)) => a == b,
        (CandleValue::U64(a), Value::U64(b)) => a == b,
        (CandleValue::I64(a), Value::I64(b)) => a == b,
        (CandleValue::F32(a), Value::F32(b)) => a.to_bits() == b.to_bits(),
        (CandleValue::F64(a), Value::F64(b)) => a.to_bits() == b.to_bits(),
        (CandleValue::Bool(a), Value::Bool(b)) => a == b,
        (CandleValue::String(a), Value::String(b)) => a == b,
        (CandleValue::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        _ => false,
    }
}

#[test]
fn the_header_reads_as_candle_reads_it() {
    let path = common::default_model_path();
    let candle = Content::read(&mut BufReader::new(File::open(&path).expect("model file")))
        .expect("candle reads the model");
    let mycel = read_header_file(&path).expect("mycel reads the model");

    let candle_version = match candle.magic {
        VersionedMagic::GgufV1 => 1,
        VersionedMagic::GgufV2 => 2,
        VersionedMagic::GgufV3 => 3,
    };
    assert_eq!(mycel.version, candle_version);
    assert_eq!(mycel.tensor_count, candle.tensor_infos.len() as u64);

    let mut candle_keys: Vec<&str> = candle.metadata.keys().map(String::as_str).collect();
    candle_keys.sort_unstable();
    let mycel_keys: Vec<&str> = mycel.metadata.iter().map(|(key, _)| key).collect();
    assert_eq!(mycel_keys, candle_keys);

    let mut values = 0usize;
    for (key, value) in mycel.metadata.iter() {
        assert!(same(&candle.metadata[key], value), "`{key}` differs");
        values += match value {
            Value::Array(items) => items.len(),
            _ => 1,
        };
    }
    // The tokenizer's arrays are there: tokens, types and merges.
    assert!(values > 100_000, "{values} values");
}
