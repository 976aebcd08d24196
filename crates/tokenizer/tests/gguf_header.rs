//! The GGUF header reader on the real default model: it reads the whole header, and every cut of
//! the file inside the header is refused as truncated. (crates/infer compares it with candle's
//! reader, key by key.)

mod common;

use std::io::Read;

use mycel_tokenizer::{read_header, read_header_file, GgufError, Value, DEFAULT_MODEL};

/// The file's first bytes: the whole header and a little of what follows.
fn head() -> (Vec<u8>, u64) {
    let path = common::default_model_path();
    let len = std::fs::metadata(&path).expect("model file").len();
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .expect("model file")
        .take(4 << 20)
        .read_to_end(&mut bytes)
        .expect("read");
    (bytes, len)
}

#[test]
fn the_default_models_header_reads() {
    let header = read_header_file(&common::default_model_path()).expect("header");
    assert_eq!(header.version, 3);
    assert_eq!(header.tensor_count, 272);
    let md = &header.metadata;
    assert_eq!(md.field("general.architecture").string().unwrap(), "llama");
    assert_eq!(md.field("llama.context_length").u64().unwrap(), 8192);
    assert_eq!(
        md.field("tokenizer.ggml.tokens").array().unwrap().len(),
        49152
    );
    assert!(matches!(md.get("tokenizer.ggml.merges"), Some(Value::Array(m)) if m.len() > 40_000));
    assert_eq!(
        DEFAULT_MODEL.size,
        std::fs::metadata(common::default_model_path())
            .unwrap()
            .len()
    );
}

#[test]
fn a_model_cut_inside_its_header_is_refused() {
    let (bytes, _) = head();
    let full = read_header(&bytes[..], bytes.len() as u64).expect("the header fits in 4 MiB");
    // Find where the header ends: the shortest prefix that still reads.
    let (mut lo, mut hi) = (0usize, bytes.len());
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        match read_header(&bytes[..mid], mid as u64) {
            Ok(header) => {
                assert_eq!(header, full);
                hi = mid;
            }
            Err(_) => lo = mid,
        }
    }
    let header_len = hi;
    assert!(
        header_len > 1 << 20,
        "SmolLM2's header is over 1 MiB, got {header_len}"
    );
    for cut in (0..header_len).step_by(header_len / 97) {
        match read_header(&bytes[..cut], cut as u64) {
            Err(GgufError::Truncated { .. } | GgufError::Length { .. }) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn a_file_whose_length_lies_is_refused() {
    // The reader is told the file is longer than the bytes it gets (a file that shrank).
    let (bytes, len) = head();
    let cut = &bytes[..1 << 20];
    let error = read_header(cut, len).unwrap_err();
    assert!(
        matches!(error, GgufError::Truncated { at } if at <= 1 << 20),
        "{error}"
    );
}
