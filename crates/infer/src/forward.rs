//! The llama forward pass of determinism profile `mycel-det-v1`, built on [`crate::kernels`].
//!
//! Per token, at position `p` (counted from 0 in the generation):
//! 1. `x` = row `token` of `token_embd`, dequantized.
//! 2. Per layer: `h = rms_norm(x, attn_norm)`; `q, k, v` = products of `h`; RoPE on every head of
//!    `q` and `k` with the angles of position `p`; `k, v` appended to the layer's cache;
//!    per query head `i` (key/value head `i / (heads / kv_heads)`):
//!    `s_j = dot(q_i, k_j) * (1 / sqrt(head_dim))` for every cached position `j ≤ p`, softmax,
//!    `o = ((0 + a_0·v_0) + a_1·v_1) + …` over positions in order; `x = x + attn_output(o)`;
//!    then `h = rms_norm(x, ffn_norm)`, `x = x + ffn_down(silu(ffn_gate(h)) · ffn_up(h))`.
//! 3. `logits = output(rms_norm(x, output_norm))`, with `token_embd` as the output matrix when the
//!    file has no `output.weight`.
//!
//! Every value of a token depends only on that token's inputs and the cache, never on how many
//! tokens are processed together: a prompt fed in one pass gives the same bits as fed one token at
//! a time. (The decode schedule is still fixed by the protocol, see the crate docs.)

use std::io::{Read, Seek, SeekFrom};

use candle_core::quantized::gguf_file::{Content, TensorInfo};
use candle_core::quantized::GgmlDType;

use crate::error::InferError;
use crate::gguf::Metadata;
use crate::kernels::{self, QMatrix, QuantizedActivations, WeightFormat};

/// Hyper-parameters read from the GGUF metadata.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
}

impl Config {
    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    /// `attn_q`, `attn_k`, `attn_v` stacked: one product per token.
    qkv: QMatrix,
    attn_output: QMatrix,
    ffn_norm: Vec<f32>,
    /// `ffn_gate` and `ffn_up` stacked.
    gate_up: QMatrix,
    down: QMatrix,
}

/// The weights of a llama model in the kernels' layout.
#[derive(Debug)]
pub(crate) struct Llama {
    pub config: Config,
    embedding: QMatrix,
    /// `None`: the embedding doubles as the output head.
    output: Option<QMatrix>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
}

/// Tokens processed together in one pass of a long prompt (bounds scratch memory; results do
/// not depend on it).
const PREFILL_CHUNK: usize = 128;

impl Llama {
    pub fn load<R: Read + Seek>(content: &Content, reader: &mut R) -> Result<Self, InferError> {
        let md = Metadata(&content.metadata);
        let key = |name: &str| format!("llama.{name}");
        let usize_of =
            |name: &str| -> Result<usize, InferError> { Ok(md.u64(&key(name))? as usize) };
        let dim = usize_of("embedding_length")?;
        let layers = usize_of("block_count")?;
        let heads = usize_of("attention.head_count")?;
        let kv_heads = md
            .opt_u64(&key("attention.head_count_kv"))?
            .map_or(heads, |v| v as usize);
        if heads == 0 || kv_heads == 0 || dim % heads != 0 || heads % kv_heads != 0 {
            return Err(InferError::BadMetadata {
                key: key("attention.head_count"),
                reason: format!(
                    "{heads} heads and {kv_heads} key/value heads do not divide a width of {dim}"
                ),
            });
        }
        let head_dim = dim / heads;
        if head_dim % 2 != 0 {
            return Err(InferError::BadMetadata {
                key: key("embedding_length"),
                reason: format!("the head size {head_dim} is odd; RoPE needs pairs"),
            });
        }
        if let Some(rope_dim) = md.opt_u64(&key("rope.dimension_count"))? {
            if rope_dim as usize != head_dim {
                return Err(InferError::BadMetadata {
                    key: key("rope.dimension_count"),
                    reason: format!(
                        "{rope_dim}, but mycel rotates whole heads of {head_dim} values"
                    ),
                });
            }
        }
        if let Some(scaling) = md.opt_string(&key("rope.scaling.type"))? {
            if scaling != "none" {
                return Err(InferError::BadMetadata {
                    key: key("rope.scaling.type"),
                    reason: format!("RoPE scaling `{scaling}` is not supported"),
                });
            }
        }
        if md.opt_u64(&key("expert_count"))?.unwrap_or(0) > 0 {
            return Err(InferError::BadMetadata {
                key: key("expert_count"),
                reason: "mixture-of-experts llama models are not supported".into(),
            });
        }
        let rms_eps = md
            .opt_f32(&key("attention.layer_norm_rms_epsilon"))?
            .ok_or_else(|| InferError::MissingMetadata {
                key: key("attention.layer_norm_rms_epsilon"),
            })?;
        let rope_base = md.opt_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0);

        let mut tensors = TensorReader { content, reader };
        let embedding = tensors.matrix("token_embd.weight", None, Some(dim))?;
        let vocab = embedding.rows();
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => Some(tensors.matrix("output.weight", Some(vocab), Some(dim))?),
            false => None,
        };
        let output_norm = tensors.vector("output_norm.weight", dim)?;
        let kv_dim = kv_heads * head_dim;
        let mut ffn = 0;
        let mut blocks = Vec::with_capacity(layers);
        for i in 0..layers {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            let q = tensors.matrix(&name("attn_q"), Some(dim), Some(dim))?;
            let k = tensors.matrix(&name("attn_k"), Some(kv_dim), Some(dim))?;
            let v = tensors.matrix(&name("attn_v"), Some(kv_dim), Some(dim))?;
            let gate = tensors.matrix(&name("ffn_gate"), None, Some(dim))?;
            ffn = gate.rows();
            let up = tensors.matrix(&name("ffn_up"), Some(ffn), Some(dim))?;
            blocks.push(Layer {
                attn_norm: tensors.vector(&name("attn_norm"), dim)?,
                qkv: stack(&name("attn_qkv"), &[q, k, v])?,
                attn_output: tensors.matrix(&name("attn_output"), Some(dim), Some(dim))?,
                ffn_norm: tensors.vector(&name("ffn_norm"), dim)?,
                gate_up: stack(&name("ffn_gate_up"), &[gate, up])?,
                down: tensors.matrix(&name("ffn_down"), Some(dim), Some(ffn))?,
            });
        }
        Ok(Self {
            config: Config {
                dim,
                layers,
                heads,
                kv_heads,
                head_dim,
                ffn,
                vocab,
                rms_eps,
                rope_base,
            },
            embedding,
            output,
            output_norm,
            layers: blocks,
        })
    }

    /// Runs `tokens` at positions `cache.len()..` and returns the logits of the last one, or
    /// `None` if `cancelled` answered true between two layers (asked once per layer of every
    /// chunk, so a cancel takes effect within one layer's work).
    pub fn forward(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        cancelled: &dyn Fn() -> bool,
    ) -> Option<Vec<f32>> {
        let mut logits = Vec::new();
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            logits = self.forward_chunk(cache, chunk, cancelled)?;
        }
        Some(logits)
    }

    fn forward_chunk(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        cancelled: &dyn Fn() -> bool,
    ) -> Option<Vec<f32>> {
        let c = &self.config;
        let n = tokens.len();
        let (dim, kv_dim, head_dim) = (c.dim, c.kv_dim(), c.head_dim);
        let qkv_width = dim + 2 * kv_dim;
        let start = cache.len;
        let mut x = vec![0f32; n * dim];
        for (row, &token) in x.chunks_exact_mut(dim).zip(tokens) {
            self.embedding.dequantize_row(token as usize, row);
        }
        let mut h = vec![0f32; n * dim];
        let mut qkv = vec![0f32; n * qkv_width];
        let mut attn = vec![0f32; n * dim];
        let mut projected = vec![0f32; n * dim];
        let mut gate_up = vec![0f32; n * 2 * c.ffn];
        let mut act = vec![0f32; n * c.ffn];
        let mut qa = QuantizedActivations::default();
        let half = head_dim / 2;
        // The RoPE angles of each position, the same in every layer: computed once per pass.
        let (mut cos, mut sin) = (vec![0f32; n * half], vec![0f32; n * half]);
        for (t, (cos, sin)) in cos
            .chunks_exact_mut(half)
            .zip(sin.chunks_exact_mut(half))
            .enumerate()
        {
            kernels::rope_angles(start + t, half, c.rope_base, cos, sin);
        }

        for (layer, kv) in self.layers.iter().zip(cache.layers.iter_mut()) {
            if cancelled() {
                return None;
            }
            for (xt, ht) in x.chunks_exact(dim).zip(h.chunks_exact_mut(dim)) {
                kernels::rms_norm(xt, &layer.attn_norm, c.rms_eps, ht);
            }
            qa.quantize(&h, n, dim);
            layer.qkv.matmul(&qa, &mut qkv);
            for (t, row) in qkv.chunks_exact_mut(qkv_width).enumerate() {
                let (cos, sin) = (&cos[t * half..][..half], &sin[t * half..][..half]);
                for head in row[..dim + kv_dim].chunks_exact_mut(head_dim) {
                    kernels::rope_rotate(head, cos, sin);
                }
                kv.keys.extend_from_slice(&row[dim..dim + kv_dim]);
                kv.values.extend_from_slice(&row[dim + kv_dim..]);
            }
            self.attention(kv, &qkv, start, &mut attn);
            qa.quantize(&attn, n, dim);
            layer.attn_output.matmul(&qa, &mut projected);
            for (a, &b) in x.iter_mut().zip(&projected) {
                *a += b;
            }

            for (xt, ht) in x.chunks_exact(dim).zip(h.chunks_exact_mut(dim)) {
                kernels::rms_norm(xt, &layer.ffn_norm, c.rms_eps, ht);
            }
            qa.quantize(&h, n, dim);
            layer.gate_up.matmul(&qa, &mut gate_up);
            for (gu, out) in gate_up
                .chunks_exact(2 * c.ffn)
                .zip(act.chunks_exact_mut(c.ffn))
            {
                kernels::silu_mul(&gu[..c.ffn], &gu[c.ffn..], out);
            }
            qa.quantize(&act, n, c.ffn);
            layer.down.matmul(&qa, &mut projected);
            for (a, &b) in x.iter_mut().zip(&projected) {
                *a += b;
            }
        }
        cache.len += n;

        let last = &x[(n - 1) * dim..];
        let mut normed = vec![0f32; dim];
        kernels::rms_norm(last, &self.output_norm, c.rms_eps, &mut normed);
        qa.quantize(&normed, 1, dim);
        let head = self.output.as_ref().unwrap_or(&self.embedding);
        let mut logits = vec![0f32; c.vocab];
        head.matmul(&qa, &mut logits);
        Some(logits)
    }

    /// Causal attention of the `n` new tokens (their q in `qkv`) over the cache.
    fn attention(&self, kv: &LayerCache, qkv: &[f32], start: usize, out: &mut [f32]) {
        let c = &self.config;
        let (dim, kv_dim, head_dim) = (c.dim, c.kv_dim(), c.head_dim);
        let qkv_width = dim + 2 * kv_dim;
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let level = kernels::simd_level();
        let one_head = |index: usize, o: &mut [f32]| {
            let (t, head) = (index / c.heads, index % c.heads);
            let q = &qkv[t * qkv_width + head * head_dim..][..head_dim];
            let kv_offset = (head / group) * head_dim;
            let positions = start + t + 1;
            let mut scores = vec![0f32; positions];
            kernels::attention_scores(level, q, &kv.keys, kv_dim, kv_offset, scale, &mut scores);
            kernels::softmax_with(level, &mut scores);
            kernels::weighted_sum(level, &scores, &kv.values, kv_dim, kv_offset, o);
        };
        // One part per (token, head) on the kernels' pool (its workers are awake between the
        // products around it): each writes its own slice of `out`.
        let heads: Vec<std::sync::Mutex<&mut [f32]>> = out
            .chunks_exact_mut(head_dim)
            .map(std::sync::Mutex::new)
            .collect();
        let pool = kernels::pool::Pool::global();
        pool.run(heads.len(), &|i| {
            let mut o = heads[i].lock().unwrap_or_else(|p| p.into_inner());
            one_head(i, &mut o);
        });
    }
}

fn stack(name: &str, parts: &[QMatrix]) -> Result<QMatrix, InferError> {
    QMatrix::stack(parts).map_err(|reason| InferError::BadMetadata {
        key: name.into(),
        reason,
    })
}

/// The keys and values of one generation, per layer, for positions `0..len`.
#[derive(Debug)]
pub(crate) struct KvCache {
    len: usize,
    layers: Vec<LayerCache>,
}

#[derive(Debug, Default)]
struct LayerCache {
    /// `len × kv_dim`, RoPE applied.
    keys: Vec<f32>,
    values: Vec<f32>,
}

impl KvCache {
    pub fn new(config: &Config) -> Self {
        Self {
            len: 0,
            layers: (0..config.layers).map(|_| LayerCache::default()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

struct TensorReader<'a, R> {
    content: &'a Content,
    reader: &'a mut R,
}

impl<R: Read + Seek> TensorReader<'_, R> {
    fn info(&self, name: &str) -> Result<&TensorInfo, InferError> {
        self.content
            .tensor_infos
            .get(name)
            .ok_or_else(|| InferError::BadMetadata {
                key: name.into(),
                reason: "the tensor is missing from the file".into(),
            })
    }

    fn bytes(&mut self, name: &str, len: usize) -> Result<Vec<u8>, InferError> {
        let info = self.info(name)?;
        let at = self.content.tensor_data_offset + info.offset;
        let mut bytes = vec![0u8; len];
        self.reader
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.reader.read_exact(&mut bytes))
            .map_err(|e| InferError::BadMetadata {
                key: name.into(),
                reason: format!("cannot read the tensor's {len} bytes at offset {at}: {e}"),
            })?;
        Ok(bytes)
    }

    fn dims(&self, name: &str) -> Result<Vec<usize>, InferError> {
        Ok(self.info(name)?.shape.dims().to_vec())
    }

    /// A weight matrix, checking its shape (`rows × cols`, rows = outputs) where given.
    fn matrix(
        &mut self,
        name: &str,
        rows: Option<usize>,
        cols: Option<usize>,
    ) -> Result<QMatrix, InferError> {
        let dims = self.dims(name)?;
        let bad = |reason: String| InferError::BadMetadata {
            key: name.into(),
            reason,
        };
        let [r, k] = dims[..] else {
            return Err(bad(format!("expected a matrix, found shape {dims:?}")));
        };
        if rows.is_some_and(|rows| rows != r) || cols.is_some_and(|cols| cols != k) {
            return Err(bad(format!(
                "shape {r}×{k}, expected {}×{}",
                rows.map_or("any".into(), |v| v.to_string()),
                cols.map_or("any".into(), |v| v.to_string())
            )));
        }
        let format = match self.info(name)?.ggml_dtype {
            GgmlDType::Q4_0 => WeightFormat::Q4_0,
            GgmlDType::Q4_1 => WeightFormat::Q4_1,
            GgmlDType::Q8_0 => WeightFormat::Q8_0,
            other => {
                return Err(bad(format!(
                    "weights of type {other:?} are not supported by mycel's deterministic \
                     kernels; use a GGUF quantized to Q4_0, Q4_1 or Q8_0"
                )))
            }
        };
        if !k.is_multiple_of(kernels::BLOCK) {
            return Err(bad(format!("{k} columns is not a multiple of 32")));
        }
        let bytes = self.bytes(name, r * k / kernels::BLOCK * format.block_bytes())?;
        QMatrix::from_gguf_bytes(format, r, k, &bytes).map_err(bad)
    }

    /// A norm weight vector of `len` values (F32, or F16 widened exactly).
    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>, InferError> {
        let dims = self.dims(name)?;
        let bad = |reason: String| InferError::BadMetadata {
            key: name.into(),
            reason,
        };
        if dims != [len] {
            return Err(bad(format!("shape {dims:?}, expected [{len}]")));
        }
        match self.info(name)?.ggml_dtype {
            GgmlDType::F32 => Ok(self
                .bytes(name, 4 * len)?
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()),
            GgmlDType::F16 => Ok(self
                .bytes(name, 2 * len)?
                .chunks_exact(2)
                .map(|b| kernels::f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect()),
            other => Err(bad(format!(
                "a norm of type {other:?}; expected F32 or F16"
            ))),
        }
    }
}
