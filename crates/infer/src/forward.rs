//! The forward passes (llama and Gemma 3) of determinism profile `mycel-det-v1`, built on
//! [`crate::kernels`].
//!
//! Per token, at position `p` (counted from 0 in the generation):
//! 1. `x` = row `token` of `token_embd`, dequantized (Gemma: times `sqrtf(dim)`).
//! 2. Per layer: `h = rms_norm(x, attn_norm)`; `q, k, v` = products of `h`; (Gemma: RMSNorm of
//!    every query and key head with `attn_q_norm` / `attn_k_norm`); RoPE on every head of `q`
//!    and `k` with the angles of position `p` (llama: consecutive pairs; Gemma: pairs `i`,
//!    `i + head/2`, base 10 000 on local layers, the file's base on global ones, every 6th);
//!    `k, v` appended to the layer's cache; per query head `i` (key/value head
//!    `i / (heads / kv_heads)`): `s_j = dot(q_i, k_j) * (1 / sqrt(head_dim))` for every cached
//!    position `j ≤ p` (Gemma's local layers: `p − 512 < j ≤ p`), softmax,
//!    `o = ((0 + a_0·v_0) + a_1·v_1) + …` over positions in order; `x = x + attn_output(o)`
//!    (Gemma: `x + rms_norm(attn_output(o), post_attention_norm)`);
//!    then `h = rms_norm(x, ffn_norm)`, `x = x + ffn_down(silu(ffn_gate(h)) · ffn_up(h))`
//!    (Gemma: GELU-tanh instead of SiLU, and `post_ffw_norm` on the FFN's output).
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
use crate::kernels::{self, QMatrix, QuantizedActivations, WeightFormat, SUPER_BLOCK};

/// The model architectures the forward pass runs (`general.architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Architecture {
    /// llama (SmolLM2 and the like): SiLU-gated FFN, RoPE over consecutive pairs.
    Llama,
    /// Gemma 3: embeddings scaled by √d, RMSNorm of each query and key head, NEOX RoPE (pairs
    /// `i`, `i + head/2`) with base 10 000 on sliding-window layers and the file's base on the
    /// global ones (every 6th), norms after attention and after the FFN, GELU-tanh-gated FFN.
    Gemma3,
}

impl Architecture {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "llama" => Some(Self::Llama),
            "gemma3" => Some(Self::Gemma3),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Gemma3 => "gemma3",
        }
    }
}

/// Gemma 3's local/global pattern: layer `i` is global (full attention, the file's RoPE base)
/// when `i % 6 == 5`, else local (sliding window, base 10 000), as llama.cpp's gemma3 graph.
const GEMMA3_GLOBAL_EVERY: usize = 6;
const GEMMA3_LOCAL_ROPE_BASE: f32 = 10_000.0;

/// Hyper-parameters read from the GGUF metadata.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub arch: Architecture,
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub rms_eps: f32,
    /// RoPE base of full-attention layers (every layer of a llama model).
    pub rope_base: f32,
    /// Gemma 3: the attention window of local layers and their RoPE base.
    pub sliding_window: Option<(usize, f32)>,
    /// `c` of the final logits' soft cap `c · tanh(l / c)`, when the file asks for one.
    pub final_softcap: Option<f32>,
}

impl Config {
    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }

    /// The window (positions `p − window < j ≤ p`) and RoPE base of layer `layer`.
    fn attention_of(&self, layer: usize) -> (Option<usize>, f32) {
        match self.sliding_window {
            Some((window, base)) if layer % GEMMA3_GLOBAL_EVERY != GEMMA3_GLOBAL_EVERY - 1 => {
                (Some(window), base)
            }
            _ => (None, self.rope_base),
        }
    }
}

/// A product whose weights may be of several formats (a Gemma file mixes them within one
/// layer): row ranges of one format each, stacked where adjacent ones share a format, writing
/// side by side into one output table.
#[derive(Debug)]
struct Linear {
    parts: Vec<QMatrix>,
    rows: usize,
}

impl Linear {
    fn new(name: &str, matrices: Vec<QMatrix>) -> Result<Self, InferError> {
        let rows = matrices.iter().map(QMatrix::rows).sum();
        let mut parts: Vec<QMatrix> = Vec::new();
        let mut run: Vec<QMatrix> = Vec::new();
        for m in matrices {
            if run.last().is_some_and(|r| r.format() != m.format()) {
                parts.push(stack(name, std::mem::take(&mut run))?);
            }
            run.push(m);
        }
        if !run.is_empty() {
            parts.push(stack(name, run)?);
        }
        Ok(Self { parts, rows })
    }

    /// `out[t * rows + r]` for every token of `input`.
    fn matmul(&self, input: &mut Input<'_>, out: &mut [f32]) {
        assert_eq!(out.len(), input.tokens * self.rows);
        let mut offset = 0;
        for part in &self.parts {
            let x = input.quantized(part.format());
            part.matmul_columns(kernels::simd_level(), x, out, self.rows, offset);
            offset += part.rows();
        }
    }
}

/// Reusable buffers for the quantized activations of one product input, in blocks of 32 and of
/// 256 (made on demand: only the formats of the product's weights are needed).
#[derive(Debug, Default)]
struct Activations {
    blocks: QuantizedActivations,
    superblocks: QuantizedActivations,
}

impl Activations {
    fn input<'a>(&'a mut self, x: &'a [f32], tokens: usize, width: usize) -> Input<'a> {
        Input {
            x,
            tokens,
            width,
            buffers: self,
            fresh: [false; 2],
        }
    }
}

/// `tokens × width` activations about to be multiplied.
struct Input<'a> {
    x: &'a [f32],
    tokens: usize,
    width: usize,
    buffers: &'a mut Activations,
    fresh: [bool; 2],
}

impl Input<'_> {
    fn quantized(&mut self, format: WeightFormat) -> &QuantizedActivations {
        let superblock = format.block_len() == SUPER_BLOCK;
        let buffer = match superblock {
            true => &mut self.buffers.superblocks,
            false => &mut self.buffers.blocks,
        };
        if !self.fresh[usize::from(superblock)] {
            buffer.quantize_for(format, self.x, self.tokens, self.width);
            self.fresh[usize::from(superblock)] = true;
        }
        buffer
    }
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    /// `attn_q`, `attn_k`, `attn_v` side by side: one product per token.
    qkv: Linear,
    /// Gemma 3: RMSNorm weights of every query and key head.
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    attn_output: Linear,
    /// Gemma 3: RMSNorm of the attention's output before the residual add.
    post_attention_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    /// `ffn_gate` and `ffn_up` side by side.
    gate_up: Linear,
    down: Linear,
    /// Gemma 3: RMSNorm of the FFN's output before the residual add.
    post_ffw_norm: Option<Vec<f32>>,
}

/// The weights of a model in the kernels' layout, and its forward pass.
#[derive(Debug)]
pub(crate) struct Transformer {
    pub(crate) config: Config,
    embedding: QMatrix,
    /// `None`: the embedding doubles as the output head.
    output: Option<QMatrix>,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
}

/// Tokens processed together in one pass of a long prompt (bounds scratch memory; results do
/// not depend on it).
pub(crate) const PREFILL_CHUNK: usize = 128;

impl Transformer {
    pub fn load<R: Read + Seek>(content: &Content, reader: &mut R) -> Result<Self, InferError> {
        let md = Metadata(&content.metadata);
        let arch_name =
            md.opt_string("general.architecture")?
                .ok_or_else(|| InferError::MissingMetadata {
                    key: "general.architecture".into(),
                })?;
        let arch = Architecture::from_name(&arch_name).ok_or_else(|| InferError::BadMetadata {
            key: "general.architecture".into(),
            reason: format!(
                "the `{arch_name}` architecture is not supported by mycel's forward pass; \
                 use a llama or gemma3 GGUF"
            ),
        })?;
        let prefix = arch.name();
        let key = |name: &str| format!("{prefix}.{name}");
        let usize_of =
            |name: &str| -> Result<usize, InferError> { Ok(md.u64(&key(name))? as usize) };
        let dim = usize_of("embedding_length")?;
        let layers = usize_of("block_count")?;
        let heads = usize_of("attention.head_count")?;
        let kv_heads = md
            .opt_u64(&key("attention.head_count_kv"))?
            .map_or(heads, |v| v as usize);
        let key_length = md
            .opt_u64(&key("attention.key_length"))?
            .map(|v| v as usize);
        let value_length = md
            .opt_u64(&key("attention.value_length"))?
            .map(|v| v as usize);
        if heads == 0
            || kv_heads == 0
            || heads % kv_heads != 0
            || (key_length.is_none() && dim % heads != 0)
        {
            return Err(InferError::BadMetadata {
                key: key("attention.head_count"),
                reason: format!(
                    "{heads} heads and {kv_heads} key/value heads do not divide a width of {dim}"
                ),
            });
        }
        let head_dim = key_length.unwrap_or(dim / heads);
        if value_length.is_some_and(|v| v != head_dim) {
            return Err(InferError::BadMetadata {
                key: key("attention.value_length"),
                reason: format!(
                    "{value_length:?}, but mycel needs values as long as keys ({head_dim})"
                ),
            });
        }
        if head_dim % 8 != 0 {
            return Err(InferError::BadMetadata {
                key: key("attention.key_length"),
                reason: format!("the head size {head_dim} is not a multiple of 8"),
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
                reason: "mixture-of-experts models are not supported".into(),
            });
        }
        if md
            .opt_f32(&key("attn_logit_softcapping"))?
            .is_some_and(|c| c != 0.0)
        {
            return Err(InferError::BadMetadata {
                key: key("attn_logit_softcapping"),
                reason: "soft-capped attention scores are not supported".into(),
            });
        }
        let final_softcap = md
            .opt_f32(&key("final_logit_softcapping"))?
            .filter(|&c| c != 0.0);
        let rms_eps = md
            .opt_f32(&key("attention.layer_norm_rms_epsilon"))?
            .ok_or_else(|| InferError::MissingMetadata {
                key: key("attention.layer_norm_rms_epsilon"),
            })?;
        let rope_base = md.opt_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0);
        let sliding_window = match arch {
            Architecture::Llama => None,
            Architecture::Gemma3 => match md.opt_u64(&key("attention.sliding_window"))? {
                Some(window) if window > 0 => {
                    let base = md
                        .opt_f32(&key("rope.freq_base_swa"))?
                        .unwrap_or(GEMMA3_LOCAL_ROPE_BASE);
                    Some((window as usize, base))
                }
                _ => None,
            },
        };
        let gemma = arch == Architecture::Gemma3;

        let mut tensors = TensorReader { content, reader };
        let embedding = tensors.matrix("token_embd.weight", None, Some(dim))?;
        let vocab = embedding.rows();
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => Some(tensors.matrix("output.weight", Some(vocab), Some(dim))?),
            false => None,
        };
        let output_norm = tensors.vector("output_norm.weight", dim)?;
        let (q_dim, kv_dim) = (heads * head_dim, kv_heads * head_dim);
        let mut ffn = 0;
        let mut blocks = Vec::with_capacity(layers);
        for i in 0..layers {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            let q = tensors.matrix(&name("attn_q"), Some(q_dim), Some(dim))?;
            let k = tensors.matrix(&name("attn_k"), Some(kv_dim), Some(dim))?;
            let v = tensors.matrix(&name("attn_v"), Some(kv_dim), Some(dim))?;
            let gate = tensors.matrix(&name("ffn_gate"), None, Some(dim))?;
            ffn = gate.rows();
            let up = tensors.matrix(&name("ffn_up"), Some(ffn), Some(dim))?;
            let mut optional = |t: &str, len: usize| match gemma {
                true => tensors.vector(&name(t), len).map(Some),
                false => Ok(None),
            };
            let q_norm = optional("attn_q_norm", head_dim)?;
            let k_norm = optional("attn_k_norm", head_dim)?;
            let post_attention_norm = optional("post_attention_norm", dim)?;
            let post_ffw_norm = optional("post_ffw_norm", dim)?;
            blocks.push(Layer {
                attn_norm: tensors.vector(&name("attn_norm"), dim)?,
                qkv: Linear::new(&name("attn_qkv"), vec![q, k, v])?,
                q_norm,
                k_norm,
                attn_output: Linear::new(
                    &name("attn_output"),
                    vec![tensors.matrix(&name("attn_output"), Some(dim), Some(q_dim))?],
                )?,
                post_attention_norm,
                ffn_norm: tensors.vector(&name("ffn_norm"), dim)?,
                gate_up: Linear::new(&name("ffn_gate_up"), vec![gate, up])?,
                down: Linear::new(
                    &name("ffn_down"),
                    vec![tensors.matrix(&name("ffn_down"), Some(dim), Some(ffn))?],
                )?,
                post_ffw_norm,
            });
        }
        Ok(Self {
            config: Config {
                arch,
                dim,
                layers,
                heads,
                kv_heads,
                head_dim,
                ffn,
                vocab,
                rms_eps,
                rope_base,
                sliding_window,
                final_softcap,
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
        let chunks = tokens.len().div_ceil(PREFILL_CHUNK);
        let mut logits = Vec::new();
        for (i, chunk) in tokens.chunks(PREFILL_CHUNK).enumerate() {
            let mut segment = [Segment {
                cache: &mut *cache,
                tokens: chunk,
                logits: i + 1 == chunks,
            }];
            let mut out = self.forward_batch(&mut segment, cancelled)?;
            logits = out.pop().flatten().unwrap_or_default();
        }
        Some(logits)
    }

    /// One forward pass over the tokens of several sequences at once (batched decoding): each
    /// segment's tokens run at its cache's next positions, over its own cache. The products read
    /// every weight block once for all the pass's tokens; everything else is per token. Returns,
    /// per segment, the logits after its last token when it asked for them, or `None` for the
    /// whole pass if `cancelled` answered true between two layers.
    ///
    /// A token's values depend only on its own inputs and its sequence's cache: the same bits as
    /// running each segment alone (or one token at a time), whatever else shares the pass.
    pub(crate) fn forward_batch(
        &self,
        segments: &mut [Segment<'_>],
        cancelled: &dyn Fn() -> bool,
    ) -> Option<Vec<Option<Vec<f32>>>> {
        let c = &self.config;
        // Per token of the pass: its segment and its position in that segment's sequence.
        let rows: Vec<(usize, usize)> = segments
            .iter()
            .enumerate()
            .flat_map(|(s, seg)| (0..seg.tokens.len()).map(move |t| (s, seg.cache.len + t)))
            .collect();
        let n = rows.len();
        let (dim, q_dim, kv_dim) = (c.dim, c.q_dim(), c.kv_dim());
        let qkv_width = q_dim + 2 * kv_dim;
        let mut x = vec![0f32; n * dim];
        let tokens = segments.iter().flat_map(|seg| seg.tokens.iter());
        for (row, &token) in x.chunks_exact_mut(dim).zip(tokens) {
            self.embedding.dequantize_row(token as usize, row);
        }
        if c.arch == Architecture::Gemma3 {
            // llama.cpp's `ggml_scale(x, sqrtf(n_embd))`: one f32 product per value.
            let scale = (dim as f32).sqrt();
            x.iter_mut().for_each(|v| *v *= scale);
        }
        let mut h = vec![0f32; n * dim];
        let mut qkv = vec![0f32; n * qkv_width];
        let mut attn = vec![0f32; n * q_dim];
        let mut projected = vec![0f32; n * dim];
        let mut gate_up = vec![0f32; n * 2 * c.ffn];
        let mut act = vec![0f32; n * c.ffn];
        let mut buffers = Activations::default();
        let positions: Vec<usize> = rows.iter().map(|&(_, p)| p).collect();
        let rope = RopeTables::new(c, &positions);

        for (index, layer) in self.layers.iter().enumerate() {
            if cancelled() {
                return None;
            }
            let (window, base) = c.attention_of(index);
            for (xt, ht) in x.chunks_exact(dim).zip(h.chunks_exact_mut(dim)) {
                kernels::rms_norm(xt, &layer.attn_norm, c.rms_eps, ht);
            }
            layer.qkv.matmul(&mut buffers.input(&h, n, dim), &mut qkv);
            for (t, row) in qkv.chunks_exact_mut(qkv_width).enumerate() {
                let (cos, sin) = rope.angles(base, t);
                let (q, kv_row) = row.split_at_mut(q_dim);
                self.position_heads(q, layer.q_norm.as_deref(), cos, sin);
                self.position_heads(&mut kv_row[..kv_dim], layer.k_norm.as_deref(), cos, sin);
                let kv = &mut segments[rows[t].0].cache.layers[index];
                kv.keys.extend_from_slice(&kv_row[..kv_dim]);
                kv.values.extend_from_slice(&kv_row[kv_dim..]);
            }
            let caches: Vec<&LayerCache> = segments
                .iter()
                .map(|seg| &seg.cache.layers[index])
                .collect();
            self.attention(&caches, &rows, &qkv, window, &mut attn);
            layer
                .attn_output
                .matmul(&mut buffers.input(&attn, n, q_dim), &mut projected);
            self.residual_add(&mut x, &mut projected, layer.post_attention_norm.as_deref());

            for (xt, ht) in x.chunks_exact(dim).zip(h.chunks_exact_mut(dim)) {
                kernels::rms_norm(xt, &layer.ffn_norm, c.rms_eps, ht);
            }
            layer
                .gate_up
                .matmul(&mut buffers.input(&h, n, dim), &mut gate_up);
            for (gu, out) in gate_up
                .chunks_exact(2 * c.ffn)
                .zip(act.chunks_exact_mut(c.ffn))
            {
                let (gate, up) = gu.split_at(c.ffn);
                match c.arch {
                    Architecture::Llama => {
                        kernels::silu_mul_with(kernels::simd_level(), gate, up, out)
                    }
                    Architecture::Gemma3 => {
                        kernels::gelu_mul_with(kernels::simd_level(), gate, up, out)
                    }
                }
            }
            layer
                .down
                .matmul(&mut buffers.input(&act, n, c.ffn), &mut projected);
            self.residual_add(&mut x, &mut projected, layer.post_ffw_norm.as_deref());
        }
        for seg in segments.iter_mut() {
            let cache = &mut *seg.cache;
            cache.len += seg.tokens.len();
            for (index, kv) in cache.layers.iter_mut().enumerate() {
                if let (Some(window), _) = c.attention_of(index) {
                    kv.trim(cache.len, window, kv_dim);
                }
            }
        }

        // The output head, for the last token of every segment that asked: one product.
        let mut last = 0;
        let mut wanted = Vec::new();
        for seg in segments.iter() {
            last += seg.tokens.len();
            if seg.logits && !seg.tokens.is_empty() {
                wanted.push(last - 1);
            }
        }
        let mut normed = vec![0f32; wanted.len() * dim];
        for (&t, out) in wanted.iter().zip(normed.chunks_exact_mut(dim)) {
            kernels::rms_norm(&x[t * dim..][..dim], &self.output_norm, c.rms_eps, out);
        }
        let head = self.output.as_ref().unwrap_or(&self.embedding);
        let mut logits = vec![0f32; wanted.len() * c.vocab];
        if !wanted.is_empty() {
            let mut input = buffers.input(&normed, wanted.len(), dim);
            head.matmul(input.quantized(head.format()), &mut logits);
        }
        if let Some(cap) = c.final_softcap {
            for l in &mut logits {
                *l = libm::tanhf(*l / cap) * cap;
            }
        }
        let mut rows_of_logits = logits.chunks_exact(c.vocab);
        Some(
            segments
                .iter()
                .map(|seg| {
                    (seg.logits && !seg.tokens.is_empty())
                        .then(|| rows_of_logits.next().map(<[f32]>::to_vec))
                        .flatten()
                })
                .collect(),
        )
    }

    /// Per head of `heads` (query or key heads of one token): Gemma's RMSNorm, then RoPE.
    fn position_heads(&self, heads: &mut [f32], norm: Option<&[f32]>, cos: &[f32], sin: &[f32]) {
        let c = &self.config;
        let mut normed = vec![0f32; if norm.is_some() { c.head_dim } else { 0 }];
        for head in heads.chunks_exact_mut(c.head_dim) {
            if let Some(weight) = norm {
                kernels::rms_norm(head, weight, c.rms_eps, &mut normed);
                head.copy_from_slice(&normed);
            }
            match c.arch {
                Architecture::Llama => kernels::rope_rotate(head, cos, sin),
                Architecture::Gemma3 => kernels::rope_rotate_halves(head, cos, sin),
            }
        }
    }

    /// `x += out`, after Gemma's RMSNorm of `out` when `norm` is given.
    fn residual_add(&self, x: &mut [f32], out: &mut [f32], norm: Option<&[f32]>) {
        let c = &self.config;
        if let Some(weight) = norm {
            let mut normed = vec![0f32; c.dim];
            for row in out.chunks_exact_mut(c.dim) {
                kernels::rms_norm(row, weight, c.rms_eps, &mut normed);
                row.copy_from_slice(&normed);
            }
        }
        for (a, &b) in x.iter_mut().zip(out.iter()) {
            *a += b;
        }
    }

    /// Causal attention of a pass's tokens (their q in `qkv`; token `t` is at position
    /// `rows[t].1` of sequence `rows[t].0`, whose cache is `caches[rows[t].0]`), over the last
    /// `window` positions only when given.
    fn attention(
        &self,
        caches: &[&LayerCache],
        rows: &[(usize, usize)],
        qkv: &[f32],
        window: Option<usize>,
        out: &mut [f32],
    ) {
        let c = &self.config;
        let (q_dim, kv_dim, head_dim) = (c.q_dim(), c.kv_dim(), c.head_dim);
        let qkv_width = q_dim + 2 * kv_dim;
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let level = kernels::simd_level();
        let one_head = |index: usize, o: &mut [f32]| {
            let (t, head) = (index / c.heads, index % c.heads);
            let (sequence, position) = rows[t];
            let kv = caches[sequence];
            let q = &qkv[t * qkv_width + head * head_dim..][..head_dim];
            let kv_offset = (head / group) * head_dim;
            let end = position + 1;
            let first = window.map_or(0, |w| end.saturating_sub(w));
            // Rows before `kv.start` were dropped; a window never reaches them.
            debug_assert!(first >= kv.start);
            let row = first - kv.start;
            let keys = &kv.keys[row * kv_dim..];
            let values = &kv.values[row * kv_dim..];
            let mut scores = vec![0f32; end - first];
            kernels::attention_scores(level, q, keys, kv_dim, kv_offset, scale, &mut scores);
            kernels::softmax_with(level, &mut scores);
            kernels::weighted_sum(level, &scores, values, kv_dim, kv_offset, o);
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

/// The RoPE angles of the positions of one pass, per RoPE base in use: computed once per pass,
/// the same in every layer with that base.
struct RopeTables {
    half: usize,
    /// `(base, cos, sin)`, `n × half` values each.
    tables: Vec<(f32, Vec<f32>, Vec<f32>)>,
}

impl RopeTables {
    /// The angles of every token of a pass, at `positions` (one per token).
    fn new(c: &Config, positions: &[usize]) -> Self {
        let (half, n) = (c.head_dim / 2, positions.len());
        let mut bases = vec![c.rope_base];
        if let Some((_, local)) = c.sliding_window {
            bases.push(local);
        }
        let tables = bases
            .into_iter()
            .map(|base| {
                let (mut cos, mut sin) = (vec![0f32; n * half], vec![0f32; n * half]);
                for ((cos, sin), &position) in cos
                    .chunks_exact_mut(half)
                    .zip(sin.chunks_exact_mut(half))
                    .zip(positions)
                {
                    kernels::rope_angles(position, half, base, cos, sin);
                }
                (base, cos, sin)
            })
            .collect();
        Self { half, tables }
    }

    fn angles(&self, base: f32, t: usize) -> (&[f32], &[f32]) {
        let (_, cos, sin) = self
            .tables
            .iter()
            .find(|(b, _, _)| b.to_bits() == base.to_bits())
            .expect("a table per base in use");
        (
            &cos[t * self.half..][..self.half],
            &sin[t * self.half..][..self.half],
        )
    }
}

fn stack(name: &str, mut parts: Vec<QMatrix>) -> Result<QMatrix, InferError> {
    if parts.len() == 1 {
        return Ok(parts.remove(0));
    }
    QMatrix::stack(&parts).map_err(|reason| InferError::BadMetadata {
        key: name.into(),
        reason,
    })
}

/// One sequence's share of a batched forward pass ([`Transformer::forward_batch`]).
pub(crate) struct Segment<'a> {
    pub cache: &'a mut KvCache,
    /// Run at positions `cache.len()..`.
    pub tokens: &'a [u32],
    /// Whether to compute the logits after the last of `tokens`.
    pub logits: bool,
}

/// The keys and values of one generation, per layer, for positions `0..len`.
#[derive(Debug)]
pub(crate) struct KvCache {
    len: usize,
    layers: Vec<LayerCache>,
}

#[derive(Debug, Default)]
struct LayerCache {
    /// Position of the first row kept: a sliding-window layer drops the rows no later token can
    /// attend to (positions before `len − (window − 1)`), a few hundred at a time.
    start: usize,
    /// `(len − start) × kv_dim`, RoPE applied.
    keys: Vec<f32>,
    values: Vec<f32>,
}

/// Rows a sliding-window layer lets go stale before dropping them (one move of the rest per this
/// many tokens).
const TRIM_ROWS: usize = 256;

impl LayerCache {
    /// Drops the rows before position `len − (window − 1)` once there are [`TRIM_ROWS`] of them.
    fn trim(&mut self, len: usize, window: usize, kv_dim: usize) {
        let keep_from = len.saturating_sub(window.saturating_sub(1));
        let stale = keep_from.saturating_sub(self.start);
        if stale >= TRIM_ROWS {
            self.keys.drain(..stale * kv_dim);
            self.values.drain(..stale * kv_dim);
            self.start = keep_from;
        }
    }
}

impl KvCache {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            len: 0,
            layers: (0..config.layers).map(|_| LayerCache::default()).collect(),
        }
    }

    /// An empty cache with room for `positions` tokens (a generation's prompt and most output
    /// tokens), so that it never grows by copying; a sliding-window layer needs room for its
    /// window and the rows it lets go stale only.
    pub(crate) fn with_capacity(config: &Config, positions: usize) -> Self {
        let kv_dim = config.kv_dim();
        let layers = (0..config.layers)
            .map(|index| {
                let rows = match config.attention_of(index) {
                    (Some(window), _) => positions.min(window + TRIM_ROWS),
                    (None, _) => positions,
                };
                LayerCache {
                    start: 0,
                    keys: Vec::with_capacity(rows * kv_dim),
                    values: Vec::with_capacity(rows * kv_dim),
                }
            })
            .collect();
        Self { len: 0, layers }
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
            GgmlDType::Q5_0 => WeightFormat::Q5_0,
            GgmlDType::Q8_0 => WeightFormat::Q8_0,
            GgmlDType::Q4K => WeightFormat::Q4_K,
            GgmlDType::Q6K => WeightFormat::Q6_K,
            other => {
                let other = crate::gguf::ggml_type_name(other);
                return Err(bad(format!(
                    "weights of type {other} are not supported by mycel's deterministic \
                     kernels; use a GGUF quantized to Q4_0, Q4_1, Q5_0, Q8_0, Q4_K or Q6_K"
                )));
            }
        };
        let block_len = format.block_len();
        if !k.is_multiple_of(block_len) {
            return Err(bad(format!(
                "{k} columns is not a multiple of {block_len} ({})",
                format.name()
            )));
        }
        // Read and repacked a few MiB at a time: the file's bytes and the repacked matrix are
        // never both in memory whole (the output head alone is 178 MB in Gemma 3 270M).
        let mut matrix = QMatrix::zeroed(format, r, k).map_err(bad)?;
        let rows_per_read = (4 << 20) / matrix.row_bytes().max(1) + 1;
        let info = self.info(name)?;
        let at = self.content.tensor_data_offset + info.offset;
        self.reader
            .seek(SeekFrom::Start(at))
            .map_err(|e| bad(format!("cannot seek to the tensor at offset {at}: {e}")))?;
        let mut buffer = Vec::new();
        let mut row = 0;
        while row < r {
            let n = rows_per_read.min(r - row);
            buffer.resize(n * matrix.row_bytes(), 0);
            self.reader.read_exact(&mut buffer).map_err(|e| {
                bad(format!(
                    "cannot read the tensor's rows {row}..{} at offset {at}: {e}",
                    row + n
                ))
            })?;
            matrix.fill_rows(row, &buffer);
            row += n;
        }
        Ok(matrix)
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
