//! Fixed-order training kernels: the operations of a training step whose candle versions can give
//! different bits on different CPUs, rewritten so that every CPU computes every value the same way.
//!
//! - **Matrix products** ([`matmul`]): candle's `gemm` picks its SIMD kernel (with fused
//!   multiply-add where the CPU has it) and its cache blocking at run time. Here every output is
//!   one dot product in one order: eight lanes, lane `l` summing the products at positions
//!   `≡ l (mod 8)` in increasing order (each product rounded before it is added, never fused),
//!   then the lanes combined as `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))`. A CPU with AVX runs the
//!   eight lanes in one register, one without in two or eight: the same operations on the same
//!   values, so the same bits. Threads split the output by rows, so their number changes nothing.
//! - **exp and log** ([`softmax_last_dim`], [`log_softmax_last_dim`], [`silu`]): glibc picks an
//!   FMA or a plain `expf`/`logf` at run time; here they are `libm`'s, pure Rust, the same code on
//!   every CPU.
//! - **Sums along a row** ([`rms_norm`], [`mean_all`], the softmaxes' backward passes): candle
//!   sums a contiguous row with AVX2 (eight partial sums) where the CPU has it and one by one
//!   where it does not; here every row sum runs in index order.
//!
//! Backward passes are written with these same kernels and candle's element-wise operations and
//! sums over leading dimensions, which are sequential per value on every CPU.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

type CResult<T> = candle_core::Result<T>;

mod product;

use product::Rows;

/// A·B for A (…, m, k) and B (…, k, n) with the same leading dimensions, in fixed order.
pub fn matmul(a: &Tensor, b: &Tensor) -> CResult<Tensor> {
    rows_or_columns(a)?.apply_op2(&rows_or_columns(b)?, MatMul)
}

/// `t` itself if its last two dimensions are stored row- or column-major over a contiguous
/// buffer (the kernels read both), otherwise a contiguous copy.
fn rows_or_columns(t: &Tensor) -> CResult<Tensor> {
    let r = t.rank();
    if t.is_contiguous() || (r >= 2 && t.transpose(r - 2, r - 1)?.is_contiguous()) {
        Ok(t.clone())
    } else {
        t.contiguous()
    }
}

/// x·wᵀ for x (…, in) and w (out, in): a linear layer.
pub fn linear(x: &Tensor, w: &Tensor) -> CResult<Tensor> {
    let dims = x.dims();
    let inner = dims[dims.len() - 1];
    let rows = x.elem_count() / inner.max(1);
    let out = matmul(&x.reshape((rows, inner))?, &w.t()?)?;
    let mut shape = dims.to_vec();
    let last = shape.len() - 1;
    shape[last] = w.dim(0)?;
    out.reshape(shape)
}

struct MatMul;

fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> CResult<&'a [f32]> {
    let data = match storage {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("mycel-train's exact kernels take f32 tensors"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("mycel-train's exact kernels take contiguous tensors"),
    }
}

/// A product's operand: its values, and whether its last two dimensions are stored
/// column-major (the transpose of a contiguous tensor) rather than row-major.
fn operand<'a>(storage: &'a CpuStorage, layout: &Layout) -> CResult<(&'a [f32], bool)> {
    if layout.is_contiguous() {
        return Ok((f32_slice(storage, layout)?, false));
    }
    let r = layout.dims().len();
    let swapped = match r >= 2 {
        true => layout.transpose(r - 2, r - 1)?,
        false => candle_core::bail!("exact matmul of a tensor of rank {r}"),
    };
    Ok((f32_slice(storage, &swapped)?, true))
}

impl CustomOp2 for MatMul {
    fn name(&self) -> &'static str {
        "exact-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (da, db) = (l1.dims(), l2.dims());
        let r = da.len();
        if r < 2 || db.len() != r || da[..r - 2] != db[..r - 2] || da[r - 1] != db[r - 2] {
            candle_core::bail!("exact matmul of shapes {da:?} and {db:?}");
        }
        let ((a, a_columns), (b, b_columns)) = (operand(s1, l1)?, operand(s2, l2)?);
        let (m, k, n) = (da[r - 2], da[r - 1], db[r - 1]);
        let batch: usize = da[..r - 2].iter().product();
        let mut out = vec![0f32; batch * m * n];
        for i in 0..batch {
            let a = &a[i * m * k..(i + 1) * m * k];
            let b = &b[i * k * n..(i + 1) * k * n];
            // A's rows are its rows when stored row-major; Bᵀ's rows are B's columns, which
            // are rows of the buffer when B is stored column-major
            let a = if a_columns {
                Rows::Transposed(a)
            } else {
                Rows::Direct(a)
            };
            let bt = if b_columns {
                Rows::Direct(b)
            } else {
                Rows::Transposed(b)
            };
            product::product(
                a,
                bt,
                &mut out[i * m * n..(i + 1) * m * n],
                m,
                n,
                k,
                uses_avx(),
            );
        }
        let mut shape = da.to_vec();
        shape[r - 1] = n;
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let r = a.rank();
        let grad_a = matmul(grad, &b.transpose(r - 2, r - 1)?)?;
        // (gradᵀ·a)ᵀ rather than aᵀ·grad: the same products (x·y = y·x) summed in the same
        // order, computed with the long dimension as rows, which the threads split
        let grad_b = matmul(&grad.transpose(r - 2, r - 1)?, a)?.transpose(r - 2, r - 1)?;
        Ok((Some(grad_a), Some(grad_b)))
    }
}

/// Whether the products use AVX: where the CPU has it, unless `MYCEL_TRAIN_SIMD=portable` (read
/// once) asks for the portable code, which the tests compare it with.
pub fn uses_avx() -> bool {
    static AVX: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::env::var("MYCEL_TRAIN_SIMD").as_deref() != Ok("portable")
                && std::arch::is_x86_feature_detected!("avx")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// The fixed-order dot product (see the module's doc): the specification the tiled kernels of
/// [`product`] are tested against.
#[cfg(test)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let whole = a.len() / 8 * 8;
    for (x, y) in a[..whole].chunks_exact(8).zip(b[..whole].chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    for i in whole..a.len() {
        lanes[i % 8] += a[i] * b[i];
    }
    ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
}

/// Applies `f` to every row of the last dimension of a contiguous f32 tensor.
fn map_rows(
    s: &CpuStorage,
    l: &Layout,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) -> CResult<(CpuStorage, Shape)> {
    let x = f32_slice(s, l)?;
    let width = l.dims().last().copied().unwrap_or(1).max(1);
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(width)
        .zip(x.par_chunks(width))
        .for_each(|(o, row)| f(row, o));
    Ok((CpuStorage::F32(out), l.shape().clone()))
}

fn row_max(row: &[f32]) -> f32 {
    row.iter()
        .fold(f32::NEG_INFINITY, |m, v| if *v > m { *v } else { m })
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "exact-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        map_rows(s, l, |row, out| {
            let max = row_max(row);
            let mut sum = 0f32;
            for (o, x) in out.iter_mut().zip(row) {
                *o = libm::expf(x - max);
                sum += *o;
            }
            for o in out.iter_mut() {
                *o /= sum;
            }
        })
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let inner = row_sums(&(grad * y)?)?;
        Ok(Some((grad.broadcast_sub(&inner)? * y)?))
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> CResult<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

struct LogSoftmax;

impl CustomOp1 for LogSoftmax {
    fn name(&self) -> &'static str {
        "exact-log-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        map_rows(s, l, |row, out| {
            let max = row_max(row);
            let sum = row.iter().fold(0f32, |acc, x| acc + libm::expf(x - max));
            let shift = max + libm::logf(sum);
            for (o, x) in out.iter_mut().zip(row) {
                *o = x - shift;
            }
        })
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let softmax = y.contiguous()?.apply_op1_no_bwd(&EXP)?;
        let total = row_sums(grad)?;
        Ok(Some((grad - softmax.broadcast_mul(&total)?)?))
    }
}

/// log softmax over the last dimension.
pub fn log_softmax_last_dim(x: &Tensor) -> CResult<Tensor> {
    x.contiguous()?.apply_op1(LogSoftmax)
}

/// A function applied to every value (no gradient: used inside other operations).
struct Elementwise {
    name: &'static str,
    f: fn(f32) -> f32,
}

const EXP: Elementwise = Elementwise {
    name: "exact-exp",
    f: libm::expf,
};

const SIGMOID: Elementwise = Elementwise {
    name: "exact-sigmoid",
    f: |x| 1.0 / (1.0 + libm::expf(-x)),
};

impl CustomOp1 for Elementwise {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        map_rows(s, l, |row, out| {
            for (o, x) in out.iter_mut().zip(row) {
                *o = (self.f)(*x);
            }
        })
    }
}

/// x·σ(x), differentiable: d/dx = σ(x)·(1 + x·(1 − σ(x))).
pub fn silu(x: &Tensor) -> CResult<Tensor> {
    let x = x.contiguous()?;
    let s = x.detach().apply_op1_no_bwd(&SIGMOID)?;
    // x·s with s held constant would lose σ's own derivative; add it back as a term whose value
    // is zero and whose gradient is x·σ'(x) = x·s·(1 − s).
    let s_prime = (&s * (1.0 - &s)?)?;
    let value = (&x * &s)?;
    let correction = ((&x - x.detach())? * (x.detach() * s_prime)?)?;
    value + correction
}

/// Mean negative log-likelihood of `targets` (u32, n) under logits (n, vocab).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> CResult<Tensor> {
    let log_probs = log_softmax_last_dim(logits)?;
    let picked = log_probs.gather(&targets.unsqueeze(1)?, 1)?;
    mean_all(&picked)?.neg()
}

fn sum_in_order(row: &[f32]) -> f32 {
    row.iter().fold(0f32, |acc, v| acc + v)
}

struct RowSums;

impl CustomOp1 for RowSums {
    fn name(&self) -> &'static str {
        "exact-row-sums"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = f32_slice(s, l)?;
        let width = l.dims().last().copied().unwrap_or(1).max(1);
        let sums: Vec<f32> = x.chunks(width).map(sum_in_order).collect();
        let mut shape = l.dims().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = 1;
        }
        Ok((CpuStorage::F32(sums), Shape::from(shape)))
    }
}

/// Sums over the last dimension, kept as a dimension of one (no gradient: used in backward
/// passes).
fn row_sums(x: &Tensor) -> CResult<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&RowSums)
}

struct MeanAll;

impl CustomOp1 for MeanAll {
    fn name(&self) -> &'static str {
        "exact-mean-all"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = f32_slice(s, l)?;
        let mean = sum_in_order(x) / x.len().max(1) as f32;
        Ok((CpuStorage::F32(vec![mean]), Shape::from(())))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let n = x.elem_count().max(1) as f64;
        Ok(Some((grad.broadcast_as(x.shape())? / n)?))
    }
}

/// The mean of every value, summed in index order.
pub fn mean_all(x: &Tensor) -> CResult<Tensor> {
    x.contiguous()?.apply_op1(MeanAll)
}

/// RMSNorm over the last dimension: y = x · w / √(mean(x²) + eps).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> CResult<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, RmsNorm { eps })
}

struct RmsNorm {
    eps: f32,
}

impl RmsNorm {
    /// 1 / √(mean(row²) + eps), the sum in index order.
    fn inverse_rms(&self, row: &[f32]) -> f32 {
        let squares = row.iter().fold(0f32, |acc, v| acc + v * v);
        1.0 / (squares / row.len() as f32 + self.eps).sqrt()
    }
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "exact-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let w = f32_slice(s2, l2)?.to_vec();
        map_rows(s1, l1, |row, out| {
            let r = self.inverse_rms(row);
            for ((o, x), w) in out.iter_mut().zip(row).zip(&w) {
                *o = x * r * w;
            }
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let x = x.contiguous()?;
        let grad = grad.contiguous()?;
        let dx = x.apply_op3_no_bwd(w, &grad, &RmsNormGradX { eps: self.eps })?;
        let dw = x.apply_op3_no_bwd(w, &grad, &RmsNormGradW { eps: self.eps })?;
        Ok((Some(dx), Some(dw)))
    }
}

/// dx = r·(g·w − x̂·mean(g·w·x̂)), x̂ = x·r, r = 1/rms(x), per row.
struct RmsNormGradX {
    eps: f32,
}

impl candle_core::CustomOp3 for RmsNormGradX {
    fn name(&self) -> &'static str {
        "exact-rms-norm-grad-x"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (x, w, g) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let d = w.len().max(1);
        let norm = RmsNorm { eps: self.eps };
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(d)
            .zip(x.par_chunks(d).zip(g.par_chunks(d)))
            .for_each(|(out, (row, grow))| {
                let r = norm.inverse_rms(row);
                let dot = (0..d).fold(0f32, |acc, i| acc + grow[i] * w[i] * (row[i] * r));
                let mean = dot / d as f32;
                for i in 0..d {
                    out[i] = r * (grow[i] * w[i] - row[i] * r * mean);
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// dw = Σ over rows (in order) of g·x̂.
struct RmsNormGradW {
    eps: f32,
}

impl candle_core::CustomOp3 for RmsNormGradW {
    fn name(&self) -> &'static str {
        "exact-rms-norm-grad-w"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (x, w, g) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let d = w.len().max(1);
        let norm = RmsNorm { eps: self.eps };
        let mut dw = vec![0f32; d];
        for (row, grow) in x.chunks(d).zip(g.chunks(d)) {
            let r = norm.inverse_rms(row);
            for i in 0..d {
                dw[i] += grow[i] * (row[i] * r);
            }
        }
        Ok((CpuStorage::F32(dw), l2.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn tensor(values: usize, shape: &[usize], seed: u32) -> Tensor {
        let data: Vec<f32> = (0..values)
            .map(|i| {
                let x = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(97));
                ((x >> 8) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn matmul_agrees_with_candles_and_does_not_depend_on_threads() {
        for (m, k, n) in [(1, 1, 1), (3, 7, 5), (17, 64, 33), (40, 131, 70)] {
            let a = tensor(2 * m * k, &[2, m, k], 1);
            let b = tensor(2 * k * n, &[2, k, n], 2);
            let ours = matmul(&a, &b).unwrap();
            assert!(
                max_diff(&ours, &a.matmul(&b).unwrap()) < 1e-4,
                "{m}×{k}×{n}"
            );
            let one = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            let single = one.install(|| matmul(&a, &b).unwrap());
            assert_eq!(
                single.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                ours.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            );
        }
    }

    #[test]
    fn the_dot_product_runs_in_the_documented_order() {
        let a: Vec<f32> = (0..11).map(|i| 1.0 + i as f32 * 1e-3).collect();
        let b: Vec<f32> = (0..11).map(|i| 1e4 - i as f32).collect();
        let mut lanes = [0f32; 8];
        for i in 0..11 {
            lanes[i % 8] += a[i] * b[i];
        }
        let want = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
            + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
        assert_eq!(dot(&a, &b).to_bits(), want.to_bits());
    }

    /// Gradients of a small graph through the exact ops against the same graph in candle's ops.
    #[test]
    fn gradients_agree_with_candles() {
        let x = Var::from_tensor(&tensor(6 * 10, &[6, 10], 3)).unwrap();
        let w = Var::from_tensor(&tensor(5 * 10, &[5, 10], 4)).unwrap();
        let g = Var::from_tensor(&(tensor(10, &[10], 5) + 1.5).unwrap()).unwrap();
        let targets = Tensor::new(&[0u32, 4, 2, 1, 3, 3], &Device::Cpu).unwrap();
        let ours = {
            let n = rms_norm(x.as_tensor(), g.as_tensor(), 1e-5).unwrap();
            let h = silu(&linear(&n, w.as_tensor()).unwrap()).unwrap();
            let h = softmax_last_dim(&h).unwrap();
            cross_entropy(&(h * 3.0).unwrap(), &targets).unwrap()
        };
        let theirs = {
            let x = x.as_tensor();
            let ms = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
            let n = x
                .broadcast_div(&(ms + 1e-5).unwrap().sqrt().unwrap())
                .unwrap();
            let n = n.broadcast_mul(g.as_tensor()).unwrap();
            let h = n
                .matmul(&w.as_tensor().t().unwrap())
                .unwrap()
                .silu()
                .unwrap();
            let h = candle_nn::ops::softmax(&h, D::Minus1).unwrap();
            candle_nn::loss::cross_entropy(&(h * 3.0).unwrap(), &targets).unwrap()
        };
        assert!(max_diff(&ours, &theirs) < 1e-5);
        let (g1, g2) = (ours.backward().unwrap(), theirs.backward().unwrap());
        for var in [&x, &w, &g] {
            let (a, b) = (g1.get(var).unwrap(), g2.get(var).unwrap());
            let scale = b
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                max_diff(a, b) <= 1e-4 * scale.max(1e-3),
                "{} vs scale {scale}",
                max_diff(a, b)
            );
        }
    }
}
