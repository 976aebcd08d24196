//! The parts of a GGUF file only the runtime needs: what `mycel model info` shows, candle's reading
//! of the tensor descriptions, and typed access to candle's metadata for the forward pass. The
//! header itself (identity, metadata) is read by mycel-tokenizer's bounded reader.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value as CandleValue};
use mycel_tokenizer::gguf::{Field, Value};
use mycel_tokenizer::{ModelId, TokenizerError};
use serde::Serialize;

use crate::error::InferError;

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
    /// Number of tensors per GGML storage type, e.g. `{"Q4_1": 210, "Q8_0": 1, "F32": 61}` or
    /// `{"Q4_K": 27, "Q6_K": 9, ...}`.
    pub tensor_types: BTreeMap<String, usize>,
    pub chat_template: Option<String>,
}

/// Typed access to candle's reading of the metadata, for the forward pass's hyper-parameters,
/// by the same rules and messages as mycel-tokenizer's [`Field`].
pub(crate) struct Metadata<'a>(pub &'a HashMap<String, CandleValue>);

impl Metadata<'_> {
    fn read<T>(
        &self,
        key: &str,
        read: impl FnOnce(Field<'_, '_>) -> Result<T, TokenizerError>,
    ) -> Result<T, TokenizerError> {
        let value = self.0.get(key).map(value_from_candle);
        read(Field::new(key, value.as_ref()))
    }

    pub fn u64(&self, key: &str) -> Result<u64, TokenizerError> {
        self.read(key, |field| field.u64())
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, TokenizerError> {
        self.read(key, |field| field.opt_u64())
    }

    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>, TokenizerError> {
        self.read(key, |field| field.opt_f32())
    }

    pub fn opt_string(&self, key: &str) -> Result<Option<String>, TokenizerError> {
        self.read(key, |field| Ok(field.opt_string()?.map(str::to_string)))
    }
}

/// candle's metadata value as mycel-tokenizer's [`Value`].
fn value_from_candle(value: &CandleValue) -> Value {
    match value {
        CandleValue::U8(v) => Value::U8(*v),
        CandleValue::I8(v) => Value::I8(*v),
        CandleValue::U16(v) => Value::U16(*v),
        CandleValue::I16(v) => Value::I16(*v),
        CandleValue::U32(v) => Value::U32(*v),
        CandleValue::I32(v) => Value::I32(*v),
        CandleValue::U64(v) => Value::U64(*v),
        CandleValue::I64(v) => Value::I64(*v),
        CandleValue::F32(v) => Value::F32(*v),
        CandleValue::F64(v) => Value::F64(*v),
        CandleValue::Bool(v) => Value::Bool(*v),
        CandleValue::String(v) => Value::String(v.clone()),
        CandleValue::Array(items) => Value::Array(items.iter().map(value_from_candle).collect()),
    }
}

/// Collects [`ModelInfo`] from a GGUF file's metadata and candle's tensor descriptions.
/// `vocab_size` comes from the tokenizer.
pub(crate) fn model_info(
    md: &mycel_tokenizer::Metadata,
    content: &Content,
    id: ModelId,
    path: &Path,
    file_size: u64,
    vocab_size: usize,
) -> Result<ModelInfo, TokenizerError> {
    let architecture = md.field("general.architecture").string()?.to_string();
    let arch = architecture.as_str();
    let mut tensor_types = BTreeMap::new();
    for info in content.tensor_infos.values() {
        *tensor_types
            .entry(ggml_type_name(info.ggml_dtype))
            .or_insert(0) += 1;
    }
    Ok(ModelInfo {
        id,
        path: path.display().to_string(),
        file_size,
        name: md.field("general.name").opt_string()?.map(str::to_string),
        architecture: architecture.clone(),
        context_length: md.field(&format!("{arch}.context_length")).u64()?,
        embedding_length: md.field(&format!("{arch}.embedding_length")).u64()?,
        block_count: md.field(&format!("{arch}.block_count")).u64()?,
        head_count: md.field(&format!("{arch}.attention.head_count")).u64()?,
        head_count_kv: md
            .field(&format!("{arch}.attention.head_count_kv"))
            .opt_u64()?
            .unwrap_or(md.field(&format!("{arch}.attention.head_count")).u64()?),
        feed_forward_length: md.field(&format!("{arch}.feed_forward_length")).opt_u64()?,
        rope_freq_base: md.field(&format!("{arch}.rope.freq_base")).opt_f32()?,
        vocab_size,
        tokenizer_model: md.field("tokenizer.ggml.model").string()?.to_string(),
        tokenizer_pre: md
            .field("tokenizer.ggml.pre")
            .opt_string()?
            .unwrap_or("default")
            .to_string(),
        bos_token_id: md.field("tokenizer.ggml.bos_token_id").opt_u32()?,
        eos_token_id: md.field("tokenizer.ggml.eos_token_id").opt_u32()?,
        add_bos_token: md
            .field("tokenizer.ggml.add_bos_token")
            .opt_bool()?
            .unwrap_or(false),
        tensor_count: content.tensor_infos.len(),
        tensor_types,
        chat_template: md
            .field("tokenizer.chat_template")
            .opt_string()?
            .map(str::to_string),
    })
}

/// A tensor type as ggml names it (`Q4_K`, where candle says `Q4K`).
pub(crate) fn ggml_type_name(dtype: candle_core::quantized::GgmlDType) -> String {
    format!("{dtype:?}").replace('K', "_K")
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
