//! Reading a GGUF file: its identity (SHA-256 of the bytes) and the metadata mycel uses.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::InferError;

/// A model's identity: the SHA-256 of its GGUF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId(pub [u8; 32]);

impl ModelId {
    /// Lower-case hex, 64 characters, no `0x`.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters (an optional `0x` prefix is accepted).
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.strip_prefix("0x").unwrap_or(text);
        let bytes = hex::decode(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for ModelId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

/// SHA-256 of a file, read in 1 MiB chunks; `on_progress(done, total)` is called after each chunk.
pub fn sha256_file(
    path: &Path,
    on_progress: &mut dyn FnMut(u64, u64),
) -> Result<[u8; 32], InferError> {
    let mut file = std::fs::File::open(path).map_err(|e| InferError::io("open", path, e))?;
    let total = file
        .metadata()
        .map_err(|e| InferError::io("read the size of", path, e))?
        .len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| InferError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        on_progress(done, total);
    }
    Ok(hasher.finalize().into())
}

/// What `mycel model info` shows: identity, architecture and tokenizer facts of a loaded model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub id: ModelId,
    pub path: String,
    pub file_size: u64,
    pub name: Option<String>,
    pub architecture: String,
    pub context_length: u64,
    pub embedding_length: u64,
    pub block_count: u64,
    pub head_count: u64,
    pub head_count_kv: u64,
    pub feed_forward_length: Option<u64>,
    pub rope_freq_base: Option<f32>,
    pub vocab_size: usize,
    pub tokenizer_model: String,
    pub tokenizer_pre: String,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub add_bos_token: bool,
    pub tensor_count: usize,
    /// Number of tensors per GGML storage type, e.g. `{"Q4_1": 210, "Q8_0": 1, "F32": 61}`.
    pub tensor_types: BTreeMap<String, usize>,
    pub chat_template: Option<String>,
}

/// Typed access to GGUF metadata with errors that name the key.
pub(crate) struct Metadata<'a>(pub &'a HashMap<String, Value>);

impl<'a> Metadata<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key)
    }

    fn require(&self, key: &str) -> Result<&'a Value, InferError> {
        self.0
            .get(key)
            .ok_or_else(|| InferError::MissingMetadata { key: key.into() })
    }

    pub fn string(&self, key: &str) -> Result<&'a str, InferError> {
        match self.require(key)? {
            Value::String(s) => Ok(s),
            other => Err(bad(
                key,
                format!("expected a string, found {:?}", other.value_type()),
            )),
        }
    }

    pub fn opt_string(&self, key: &str) -> Result<Option<&'a str>, InferError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.string(key).map(Some),
        }
    }

    pub fn u64(&self, key: &str) -> Result<u64, InferError> {
        as_u64(self.require(key)?).ok_or_else(|| bad(key, "expected a non-negative integer".into()))
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, InferError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.u64(key).map(Some),
        }
    }

    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>, InferError> {
        match self.opt_u64(key)? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| bad(key, format!("{v} does not fit in 32 bits"))),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, InferError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(bad(
                key,
                format!("expected a bool, found {:?}", other.value_type()),
            )),
        }
    }

    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>, InferError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::F32(v)) => Ok(Some(*v)),
            Some(Value::F64(v)) => Ok(Some(*v as f32)),
            Some(other) => Err(bad(
                key,
                format!("expected a float, found {:?}", other.value_type()),
            )),
        }
    }

    pub fn array(&self, key: &str) -> Result<&'a [Value], InferError> {
        match self.require(key)? {
            Value::Array(items) => Ok(items),
            other => Err(bad(
                key,
                format!("expected an array, found {:?}", other.value_type()),
            )),
        }
    }

    pub fn opt_array(&self, key: &str) -> Result<Option<&'a [Value]>, InferError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.array(key).map(Some),
        }
    }

    pub fn string_array(&self, key: &str) -> Result<Vec<&'a str>, InferError> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                _ => Err(bad(key, format!("element {i} is not a string"))),
            })
            .collect()
    }
}

pub(crate) fn as_u64(value: &Value) -> Option<u64> {
    match *value {
        Value::U8(v) => Some(v.into()),
        Value::U16(v) => Some(v.into()),
        Value::U32(v) => Some(v.into()),
        Value::U64(v) => Some(v),
        Value::I8(v) => u64::try_from(v).ok(),
        Value::I16(v) => u64::try_from(v).ok(),
        Value::I32(v) => u64::try_from(v).ok(),
        Value::I64(v) => u64::try_from(v).ok(),
        _ => None,
    }
}

pub(crate) fn as_i64(value: &Value) -> Option<i64> {
    match *value {
        Value::I8(v) => Some(v.into()),
        Value::I16(v) => Some(v.into()),
        Value::I32(v) => Some(v.into()),
        Value::I64(v) => Some(v),
        Value::U8(v) => Some(v.into()),
        Value::U16(v) => Some(v.into()),
        Value::U32(v) => Some(v.into()),
        Value::U64(v) => i64::try_from(v).ok(),
        _ => None,
    }
}

fn bad(key: &str, reason: String) -> InferError {
    InferError::BadMetadata {
        key: key.into(),
        reason,
    }
}

/// Collects [`ModelInfo`] from parsed GGUF content. `vocab_size` comes from the tokenizer.
pub(crate) fn model_info(
    content: &Content,
    id: ModelId,
    path: &Path,
    file_size: u64,
    vocab_size: usize,
) -> Result<ModelInfo, InferError> {
    let md = Metadata(&content.metadata);
    let architecture = md.string("general.architecture")?.to_string();
    let arch = architecture.as_str();
    let mut tensor_types = BTreeMap::new();
    for info in content.tensor_infos.values() {
        *tensor_types
            .entry(format!("{:?}", info.ggml_dtype))
            .or_insert(0) += 1;
    }
    Ok(ModelInfo {
        id,
        path: path.display().to_string(),
        file_size,
        name: md.opt_string("general.name")?.map(str::to_string),
        architecture: architecture.clone(),
        context_length: md.u64(&format!("{arch}.context_length"))?,
        embedding_length: md.u64(&format!("{arch}.embedding_length"))?,
        block_count: md.u64(&format!("{arch}.block_count"))?,
        head_count: md.u64(&format!("{arch}.attention.head_count"))?,
        head_count_kv: md
            .opt_u64(&format!("{arch}.attention.head_count_kv"))?
            .unwrap_or(md.u64(&format!("{arch}.attention.head_count"))?),
        feed_forward_length: md.opt_u64(&format!("{arch}.feed_forward_length"))?,
        rope_freq_base: md.opt_f32(&format!("{arch}.rope.freq_base"))?,
        vocab_size,
        tokenizer_model: md.string("tokenizer.ggml.model")?.to_string(),
        tokenizer_pre: md
            .opt_string("tokenizer.ggml.pre")?
            .unwrap_or("default")
            .to_string(),
        bos_token_id: md.opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_token_id: md.opt_u32("tokenizer.ggml.eos_token_id")?,
        add_bos_token: md
            .opt_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(false),
        tensor_count: content.tensor_infos.len(),
        tensor_types,
        chat_template: md
            .opt_string("tokenizer.chat_template")?
            .map(str::to_string),
    })
}

/// Reads the header of a GGUF file (metadata and tensor descriptions, not the tensors) with
/// `reader` left after it.
pub(crate) fn read_content<R: std::io::Read + std::io::Seek>(
    path: &std::path::Path,
    reader: &mut R,
) -> Result<Content, InferError> {
    Content::read(reader).map_err(|error| InferError::Gguf {
        path: path.to_path_buf(),
        detail: crate::error::candle_message(&error),
    })
}

/// Reads only the header of the GGUF file at `path`.
pub(crate) fn read_header(path: &std::path::Path) -> Result<Content, InferError> {
    let file = std::fs::File::open(path).map_err(|e| InferError::io("open", path, e))?;
    read_content(path, &mut std::io::BufReader::new(file))
}
