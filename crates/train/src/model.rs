//! The model a training subnet trains: a small llama (RMSNorm, rotary attention, SwiGLU MLP,
//! embeddings tied to the output head), written with candle's differentiable tensor ops so
//! `backward()` gives every parameter's gradient.
//!
//! # Guarantees
//! - **One parameter order.** [`Params`] holds the parameters by name in sorted order; flattening
//!   ([`Params::to_flat`]) and loading ([`Params::from_flat`]) walk that order, so a pseudo-gradient
//!   or a checkpoint is one `f32` vector every node lays out the same way.
//! - **A reproducible start.** [`Params::init`] draws the initial weights from ChaCha20 seeded by
//!   the run's seed, as uniform values from integers (no transcendental functions), so every node
//!   computes the same first checkpoint from the seed.
//! - **llama.cpp's rotary convention** (pairs of adjacent dimensions), so a checkpoint exports to a
//!   GGUF llama without permuting the query and key weights.
//!
//! - **The same bits on every CPU and thread count**: the matrix products, softmaxes and SiLU run
//!   on mycel's fixed-order kernels ([`crate::exact`]); the rest (element-wise operations, row
//!   sums, gathers, the embedding's scatter-add) are candle's sequential CPU loops.
//!   [`Kernels::Candle`] runs the same model on candle's own kernels instead (not reproducible
//!   across CPUs), for comparison.
//!
//! # Assumes
//! - CPU, `f32`.
//!
//! # Does not
//! Sample, serve or quantize: a trained checkpoint is exported and served by mycel-infer.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var, D};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// The architecture's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub vocab: usize,
    pub dim: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    /// Tokens a training window predicts (the model sees `context` tokens, predicts the next of
    /// each).
    pub context: usize,
}

/// RMSNorm's epsilon and the rotary base, as in SmolLM2.
pub const RMS_EPS: f64 = 1e-5;
pub const ROPE_THETA: f64 = 10_000.0;

impl ModelConfig {
    /// The subnet's model: about 15.7M parameters (15,796,480), 12.6M of them the embedding table that
    /// SmolLM2's 49,152-token vocabulary needs at width 256. The body (4 layers, 3.2M; the MLP width 704 is a multiple of 32, as Q8_0 export needs) is as
    /// large as two cores can train through a round of inner steps in minutes; a narrower
    /// embedding would leave the body too small to learn English beyond word frequencies.
    pub const SUBNET: ModelConfig = ModelConfig {
        vocab: 49_152,
        dim: 256,
        hidden: 704,
        layers: 4,
        heads: 4,
        context: 128,
    };

    /// The same architecture made narrow for tests and quick devnets (about 3.3M parameters).
    pub const TINY: ModelConfig = ModelConfig {
        vocab: 49_152,
        dim: 64,
        hidden: 192,
        layers: 2,
        heads: 2,
        context: 64,
    };

    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// Checks the sizes fit together.
    pub fn validate(&self) -> Result<(), TrainError> {
        let ok = self.vocab > 0
            && self.dim > 0
            && self.hidden > 0
            && self.layers > 0
            && self.heads > 0
            && self.context > 0
            && self.dim.is_multiple_of(self.heads)
            && self.head_dim().is_multiple_of(2)
            && self.vocab <= u32::MAX as usize;
        if ok {
            Ok(())
        } else {
            Err(TrainError::Config(format!(
                "model sizes do not fit together: {self:?} (dim must split into heads of an even width)"
            )))
        }
    }

    /// Every parameter's name and shape, in the canonical (sorted by name) order.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, h) = (self.dim, self.hidden);
        let mut shapes = BTreeMap::new();
        shapes.insert("embed".to_string(), vec![self.vocab, d]);
        shapes.insert("norm".to_string(), vec![d]);
        for l in 0..self.layers {
            let p = format!("layers.{l:02}.");
            shapes.insert(format!("{p}attn_norm"), vec![d]);
            shapes.insert(format!("{p}wq"), vec![d, d]);
            shapes.insert(format!("{p}wk"), vec![d, d]);
            shapes.insert(format!("{p}wv"), vec![d, d]);
            shapes.insert(format!("{p}wo"), vec![d, d]);
            shapes.insert(format!("{p}mlp_norm"), vec![d]);
            shapes.insert(format!("{p}w_gate"), vec![h, d]);
            shapes.insert(format!("{p}w_up"), vec![h, d]);
            shapes.insert(format!("{p}w_down"), vec![d, h]);
        }
        shapes.into_iter().collect()
    }

    pub fn parameter_count(&self) -> usize {
        self.parameter_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

/// The trainable parameters, by name in sorted order.
#[derive(Debug)]
pub struct Params {
    pub config: ModelConfig,
    vars: Vec<(String, Var)>,
}

impl Params {
    /// The run's first checkpoint: norms at one, every matrix uniform in ±√3·σ (σ = 0.02 for the
    /// embedding, 1/√fan_in for the others) from ChaCha20 seeded by `seed`.
    pub fn init(config: ModelConfig, seed: [u8; 32]) -> Result<Self, TrainError> {
        config.validate()?;
        let mut stream = crate::rng::UniformStream::new(seed);
        let mut flat = Vec::with_capacity(config.parameter_count());
        for (name, shape) in config.parameter_shapes() {
            let n: usize = shape.iter().product();
            if shape.len() == 1 {
                flat.extend(std::iter::repeat_n(1.0f32, n));
                continue;
            }
            let std = if name == "embed" {
                0.02
            } else {
                1.0 / (shape[1] as f32).sqrt()
            };
            let half_width = 3.0f32.sqrt() * std;
            flat.extend((0..n).map(|_| stream.next_symmetric() * half_width));
        }
        Self::from_flat(config, &flat)
    }

    /// Parameters from one flat vector in the canonical order.
    pub fn from_flat(config: ModelConfig, flat: &[f32]) -> Result<Self, TrainError> {
        config.validate()?;
        if flat.len() != config.parameter_count() {
            return Err(TrainError::Config(format!(
                "a checkpoint of {} values does not fit a model of {} parameters",
                flat.len(),
                config.parameter_count()
            )));
        }
        let mut vars = Vec::new();
        let mut at = 0;
        for (name, shape) in config.parameter_shapes() {
            let n: usize = shape.iter().product();
            let tensor = Tensor::from_slice(&flat[at..at + n], shape.as_slice(), &Device::Cpu)?;
            vars.push((name, Var::from_tensor(&tensor)?));
            at += n;
        }
        Ok(Params { config, vars })
    }

    /// All parameters as one vector in the canonical order.
    pub fn to_flat(&self) -> Result<Vec<f32>, TrainError> {
        let mut flat = Vec::with_capacity(self.config.parameter_count());
        for (_, var) in &self.vars {
            flat.extend(var.as_tensor().flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(flat)
    }

    /// The variables in the canonical order (for the optimizer).
    pub fn vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Name and tensor of each parameter, in the canonical order.
    pub fn named(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.vars.iter().map(|(n, v)| (n.as_str(), v.as_tensor()))
    }

    fn get(&self, name: &str) -> Result<&Tensor, TrainError> {
        self.vars
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map(|i| self.vars[i].1.as_tensor())
            .map_err(|_| TrainError::Config(format!("no parameter named {name}")))
    }
}

/// Rotary tables (cos, sin) for `context` positions, computed in f64 with libm so every machine
/// gets the same bits.
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(config: &ModelConfig) -> Result<Self, TrainError> {
        let half = config.head_dim() / 2;
        let mut cos = Vec::with_capacity(config.context * half);
        let mut sin = Vec::with_capacity(config.context * half);
        for pos in 0..config.context {
            for i in 0..half {
                let freq = 1.0 / libm::pow(ROPE_THETA, (2 * i) as f64 / config.head_dim() as f64);
                let angle = pos as f64 * freq;
                cos.push(libm::cos(angle) as f32);
                sin.push(libm::sin(angle) as f32);
            }
        }
        let shape = (config.context, half, 1);
        Ok(Rotary {
            cos: Tensor::from_vec(cos, shape, &Device::Cpu)?,
            sin: Tensor::from_vec(sin, shape, &Device::Cpu)?,
        })
    }

    /// Rotates adjacent pairs (x[2i], x[2i+1]) of `x`: (batch, heads, time, head_dim).
    fn apply(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        let (b, h, t, hd) = x.dims4()?;
        let pairs = x.reshape((b, h, t, hd / 2, 2))?;
        let x0 = pairs.narrow(4, 0, 1)?;
        let x1 = pairs.narrow(4, 1, 1)?;
        let cos = self.cos.narrow(0, 0, t)?;
        let sin = self.sin.narrow(0, 0, t)?;
        let out0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
        let out1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
        Ok(Tensor::cat(&[out0, out1], 4)?.reshape((b, h, t, hd))?)
    }
}

/// Which kernels run the matrix products, softmaxes and SiLU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// mycel's fixed-order kernels ([`crate::exact`]): the same bits on every CPU.
    Exact,
    /// candle's (`gemm`, glibc's `expf`): for comparison.
    Candle,
}

/// The forward pass over parameters, with what does not change between steps precomputed.
pub struct Model<'p> {
    params: &'p Params,
    /// Fixed-order kernels ([`crate::exact`]) or candle's.
    exact: bool,
    rotary: Rotary,
    /// 0 on and below the diagonal, −∞ above: added to the attention scores.
    causal_mask: Tensor,
}

impl<'p> Model<'p> {
    /// The model on the fixed-order kernels.
    pub fn new(params: &'p Params) -> Result<Self, TrainError> {
        Self::with_kernels(params, Kernels::Exact)
    }

    pub fn with_kernels(params: &'p Params, kernels: Kernels) -> Result<Self, TrainError> {
        let exact = kernels == Kernels::Exact;
        let t = params.config.context;
        let mask: Vec<f32> = (0..t * t)
            .map(|i| {
                if i % t > i / t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        Ok(Model {
            params,
            exact,
            rotary: Rotary::new(&params.config)?,
            causal_mask: Tensor::from_vec(mask, (t, t), &Device::Cpu)?,
        })
    }

    /// Logits (batch, time, vocab) for token ids (batch, time), time ≤ context.
    pub fn logits(&self, tokens: &Tensor) -> Result<Tensor, TrainError> {
        let p = self.params;
        let (b, t) = tokens.dims2()?;
        if t > p.config.context {
            return Err(TrainError::Config(format!(
                "a window of {t} tokens is longer than the model's context of {}",
                p.config.context
            )));
        }
        let embed = p.get("embed")?;
        let mut x = embed
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, p.config.dim))?;
        for l in 0..p.config.layers {
            x = self.block(&x, l)?;
        }
        let x = self.rms_norm(&x, p.get("norm")?)?;
        self.linear(&x, embed)
    }

    /// Mean next-token cross-entropy of windows (batch, context + 1): each window's first
    /// `context` tokens predict its last `context`.
    pub fn loss(&self, windows: &Tensor) -> Result<Tensor, TrainError> {
        let (b, len) = windows.dims2()?;
        let t = len - 1;
        let inputs = windows.narrow(1, 0, t)?;
        let targets = windows.narrow(1, 1, t)?.flatten_all()?;
        let logits = self
            .logits(&inputs)?
            .reshape((b * t, self.params.config.vocab))?;
        Ok(match self.exact {
            true => crate::exact::cross_entropy(&logits, &targets)?,
            false => candle_nn::loss::cross_entropy(&logits, &targets)?,
        })
    }

    fn block(&self, x: &Tensor, layer: usize) -> Result<Tensor, TrainError> {
        let p = self.params;
        let name = |w: &str| format!("layers.{layer:02}.{w}");
        let h = self.rms_norm(x, p.get(&name("attn_norm"))?)?;
        let x = (x + self.attention(&h, layer)?)?;
        let h = self.rms_norm(&x, p.get(&name("mlp_norm"))?)?;
        let gate = self.linear(&h, p.get(&name("w_gate"))?)?;
        let up = self.linear(&h, p.get(&name("w_up"))?)?;
        let gate = match self.exact {
            true => crate::exact::silu(&gate)?,
            false => gate.silu()?,
        };
        let mlp = self.linear(&(gate * up)?, p.get(&name("w_down"))?)?;
        Ok((x + mlp)?)
    }

    fn attention(&self, h: &Tensor, layer: usize) -> Result<Tensor, TrainError> {
        let p = self.params;
        let c = &p.config;
        let (b, t, _) = h.dims3()?;
        let name = |w: &str| format!("layers.{layer:02}.{w}");
        let heads = |w: Tensor| -> Result<Tensor, TrainError> {
            Ok(w.reshape((b, t, c.heads, c.head_dim()))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = self
            .rotary
            .apply(&heads(self.linear(h, p.get(&name("wq"))?)?)?)?;
        let k = self
            .rotary
            .apply(&heads(self.linear(h, p.get(&name("wk"))?)?)?)?;
        let v = heads(self.linear(h, p.get(&name("wv"))?)?)?;
        let scale = 1.0 / (c.head_dim() as f64).sqrt();
        let scores = (self.matmul(&q, &k.t()?.contiguous()?)? * scale)?;
        let mask = self.causal_mask.narrow(0, 0, t)?.narrow(1, 0, t)?;
        let masked = scores.broadcast_add(&mask)?;
        let weights = match self.exact {
            true => crate::exact::softmax_last_dim(&masked)?,
            false => candle_nn::ops::softmax(&masked, D::Minus1)?,
        };
        let out = self
            .matmul(&weights, &v)?
            .transpose(1, 2)?
            .reshape((b, t, c.dim))?;
        self.linear(&out, p.get(&name("wo"))?)
    }

    /// x · wᵀ for x (…, in) and w (out, in).
    fn linear(&self, x: &Tensor, w: &Tensor) -> Result<Tensor, TrainError> {
        Ok(match self.exact {
            true => crate::exact::linear(x, w)?,
            false => x.broadcast_matmul(&w.t()?)?,
        })
    }

    /// RMSNorm over the last dimension.
    fn rms_norm(&self, x: &Tensor, weight: &Tensor) -> Result<Tensor, TrainError> {
        if self.exact {
            return Ok(crate::exact::rms_norm(x, weight, RMS_EPS as f32)?);
        }
        let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = x.broadcast_div(&(mean_square + RMS_EPS)?.sqrt()?)?;
        Ok(normed.broadcast_mul(weight)?)
    }

    fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor, TrainError> {
        Ok(match self.exact {
            true => crate::exact::matmul(a, b)?,
            false => a.matmul(b)?,
        })
    }
}

/// Windows of token ids as the (batch, len) tensor the model takes.
pub fn windows_tensor(windows: &[Vec<u32>]) -> Result<Tensor, TrainError> {
    let len = windows.first().map(|w| w.len()).unwrap_or(0);
    if windows.iter().any(|w| w.len() != len) || len < 2 {
        return Err(TrainError::Config(
            "training windows must all have the same length, at least 2".into(),
        ));
    }
    let flat: Vec<u32> = windows.iter().flatten().copied().collect();
    Ok(Tensor::from_vec(flat, (windows.len(), len), &Device::Cpu)?.to_dtype(DType::U32)?)
}
