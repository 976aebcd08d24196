//! Gemma 3 270M (Q4_K_M: Q5_0, Q8_0, Q4_K and Q6_K weights) loads and runs; files the runtime
//! cannot run are refused with an error naming what it lacks.

mod common;

use std::path::{Path, PathBuf};

use mycel_infer::{Model, GEMMA3_270M};

#[test]
fn gemma_loads_with_its_facts() {
    let model = common::gemma_model();
    assert_eq!(model.id().to_hex(), GEMMA3_270M.sha256);
    let info = model.info();
    assert_eq!(info.architecture, "gemma3");
    assert_eq!(
        (info.block_count, info.embedding_length, info.vocab_size),
        (18, 640, 262_144)
    );
    for (kind, count) in [
        ("Q5_0", 81),
        ("Q4_K", 27),
        ("Q8_0", 10),
        ("Q6_K", 9),
        ("F32", 109),
    ] {
        assert_eq!(info.tensor_types.get(kind), Some(&count), "{kind}");
    }
    let mut decoder = model.decoder();
    let logits = decoder.feed(&[2, 105, 2364, 107]).unwrap();
    assert_eq!(logits.len(), 262_144);
    assert!(logits.iter().all(|v| v.is_finite()));
    // Past the 512-position window of the local layers: still finite, and fed in one pass or
    // in two it gives the same bits.
    // The local layers' caches drop rows no window reaches, at different moments in the two
    // schedules.
    let long: Vec<u32> = (0..1100).map(|i| 1000 + (i * 7919) % 50_000).collect();
    let mut whole = model.decoder();
    let a = whole.feed(&long).unwrap();
    let mut split = model.decoder();
    split.feed(&long[..513]).unwrap();
    split.feed(&long[513..1090]).unwrap();
    let mut b = Vec::new();
    for &token in &long[1090..] {
        b = split.feed(&[token]).unwrap();
    }
    assert!(a.iter().all(|v| v.is_finite()));
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// A copy of the default model's file with `patch` applied to its bytes, in a fresh directory.
fn patched_copy(name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(common::default_model_path()).unwrap();
    patch(&mut bytes);
    let dir = std::env::temp_dir().join(format!("mycel-infer-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The offset of the ggml type of tensor `name` in a GGUF header: its length-prefixed name,
/// then the dimension count and the dimensions.
fn tensor_type_offset(bytes: &[u8], name: &str) -> usize {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the tensor's name")
        + needle.len();
    let dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    at + 4 + 8 * dims
}

fn load_error(path: &Path) -> String {
    let error = Model::load(path).expect_err("the file must be refused");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    error.to_string()
}

#[test]
fn a_tensor_type_without_kernels_is_refused_by_name() {
    let path = patched_copy("q5_1", |bytes| {
        let at = tensor_type_offset(bytes, "blk.0.attn_q.weight");
        assert_eq!(bytes[at..at + 4], 3u32.to_le_bytes(), "SmolLM2's Q4_1");
        // Q5_1 (ggml type 7): 32-value blocks, which mycel has no kernel for.
        bytes[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
    });
    let message = load_error(&path);
    assert!(
        message.contains("blk.0.attn_q.weight") && message.contains("Q5_1"),
        "{message}"
    );
}

#[test]
fn an_unknown_architecture_is_refused_by_name() {
    let path = patched_copy("arch", |bytes| {
        let key = b"general.architecture";
        let at = bytes
            .windows(key.len())
            .position(|w| w == key)
            .expect("the architecture key")
            + key.len();
        // Type (string = 8), length 5, "llama" → "qwen2".
        assert_eq!(&bytes[at + 12..at + 17], b"llama");
        bytes[at + 12..at + 17].copy_from_slice(b"qwen2");
    });
    let message = load_error(&path);
    assert!(message.contains("qwen2"), "{message}");
}
