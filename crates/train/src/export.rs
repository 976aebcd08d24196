//! A checkpoint as a GGUF llama that `mycel miner` (mycel-infer) and llama.cpp load: the weight
//! matrices quantized to Q8_0 by candle's quantizer, the norms in F32, the embedding tied to the
//! output head (no `output.weight`, as llama.cpp reads tied models), and the tokenizer — every
//! `tokenizer.*` key, chat template included — copied from the SmolLM2 GGUF whose vocabulary the
//! model was trained with.
//!
//! The file is written in a private temporary name beside `out` and renamed into place: a
//! reader never sees half a model.

use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};

use crate::model::{Params, RMS_EPS, ROPE_THETA};
use crate::TrainError;

/// GGUF tensor name of a parameter (llama.cpp's llama names).
fn gguf_name(name: &str) -> Result<String, TrainError> {
    let plain = match name {
        "embed" => return Ok("token_embd.weight".into()),
        "norm" => return Ok("output_norm.weight".into()),
        other => other,
    };
    let rest = plain
        .strip_prefix("layers.")
        .ok_or_else(|| TrainError::Config(format!("no GGUF name for parameter {name}")))?;
    let (layer, weight) = rest
        .split_once('.')
        .ok_or_else(|| TrainError::Config(format!("no GGUF name for parameter {name}")))?;
    let layer: usize = layer
        .parse()
        .map_err(|_| TrainError::Config(format!("no GGUF name for parameter {name}")))?;
    let tensor = match weight {
        "attn_norm" => "attn_norm",
        "wq" => "attn_q",
        "wk" => "attn_k",
        "wv" => "attn_v",
        "wo" => "attn_output",
        "mlp_norm" => "ffn_norm",
        "w_gate" => "ffn_gate",
        "w_up" => "ffn_up",
        "w_down" => "ffn_down",
        _ => {
            return Err(TrainError::Config(format!(
                "no GGUF name for parameter {name}"
            )))
        }
    };
    Ok(format!("blk.{layer}.{tensor}.weight"))
}

/// Writes `params` to `out` as a GGUF llama named `name`, with the tokenizer of the GGUF at
/// `tokenizer_gguf`.
pub fn export_gguf(
    params: &Params,
    tokenizer_gguf: &Path,
    name: &str,
    out: &Path,
) -> Result<(), TrainError> {
    let c = params.config;
    let file = std::fs::File::open(tokenizer_gguf)
        .map_err(|e| TrainError::io("open", tokenizer_gguf, e))?;
    let source = gguf_file::Content::read(&mut BufReader::new(file))?;
    let mut metadata: Vec<(String, Value)> = source
        .metadata
        .into_iter()
        .filter(|(key, _)| key.starts_with("tokenizer."))
        .collect();
    let u32_of = |v: usize| Value::U32(v as u32);
    metadata.extend([
        ("general.architecture".into(), Value::String("llama".into())),
        ("general.name".into(), Value::String(name.into())),
        ("llama.context_length".into(), u32_of(c.context)),
        ("llama.embedding_length".into(), u32_of(c.dim)),
        ("llama.block_count".into(), u32_of(c.layers)),
        ("llama.feed_forward_length".into(), u32_of(c.hidden)),
        ("llama.attention.head_count".into(), u32_of(c.heads)),
        ("llama.attention.head_count_kv".into(), u32_of(c.heads)),
        ("llama.rope.dimension_count".into(), u32_of(c.head_dim())),
        ("llama.rope.freq_base".into(), Value::F32(ROPE_THETA as f32)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(RMS_EPS as f32),
        ),
        ("llama.vocab_size".into(), u32_of(c.vocab)),
    ]);
    metadata.sort_by(|a, b| a.0.cmp(&b.0));
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for (param, tensor) in params.named() {
        let dtype = if tensor.rank() == 1 {
            GgmlDType::F32
        } else {
            GgmlDType::Q8_0
        };
        tensors.push((gguf_name(param)?, QTensor::quantize(tensor, dtype)?));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    write_atomically(out, &metadata, &tensors)
}

fn write_atomically(
    out: &Path,
    metadata: &[(String, Value)],
    tensors: &[(String, QTensor)],
) -> Result<(), TrainError> {
    let staged = out.with_file_name(format!(
        ".{}.{}.partial",
        out.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("model.gguf"),
        std::process::id()
    ));
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let result = (|| -> Result<(), TrainError> {
        let file =
            std::fs::File::create(&staged).map_err(|e| TrainError::io("create", &staged, e))?;
        let mut writer = std::io::BufWriter::new(file);
        gguf_file::write(&mut writer, &metadata, &tensors)?;
        let file = writer
            .into_inner()
            .map_err(|e| TrainError::io("write", &staged, e.into_error()))?;
        file.sync_all()
            .map_err(|e| TrainError::io("sync", &staged, e))?;
        std::fs::rename(&staged, out).map_err(|e| TrainError::io("move into place", out, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_has_a_llama_cpp_name() {
        let names: Vec<String> = crate::model::ModelConfig::TINY
            .parameter_shapes()
            .iter()
            .map(|(n, _)| gguf_name(n).unwrap())
            .collect();
        assert!(names.contains(&"token_embd.weight".to_string()));
        assert!(names.contains(&"blk.1.ffn_down.weight".to_string()));
        assert!(names.contains(&"blk.0.attn_output.weight".to_string()));
        assert_eq!(names.len(), 2 + 9 * 2);
        assert!(gguf_name("layers.x.wq").is_err());
        assert!(gguf_name("bias").is_err());
    }
}
