//! The tiled matrix product behind [`super::matmul`]: c[i][j] = dot(aᵢ, bⱼ) for the rows aᵢ of A
//! (m × k) and the rows bⱼ of Bᵀ (n × k), every dot product in the module's fixed order.
//!
//! Speed comes only from how the dot products are scheduled, never from how one is summed:
//! - a tile of [`MR`] × [`NR`] outputs runs at once, each output keeping its own eight lanes, so
//!   every vector of A loaded serves [`NR`] outputs and every vector of Bᵀ serves [`MR`];
//! - both operands are packed so that a tile reads one sequential stream of each: Bᵀ once for
//!   all tasks, A per task and block (this also reads operands stored the other way round);
//! - the lanes of four outputs are combined together (`hadd`, `hadd`, then the two halves), which
//!   adds exactly the pairs `((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7))` adds;
//! - a long k is cut into blocks of [`K_BLOCK`] (a multiple of eight) whose lanes are saved and
//!   resumed, so a lane still sums its positions in increasing order;
//! - the last, partial group of eight positions is padded with zeros in both operands: a lane
//!   starts at +0 and round-to-nearest never makes it −0, so adding the +0 products changes
//!   nothing (rows and columns padded to whole tiles are computed and dropped).

use rayon::prelude::*;

/// Rows of outputs in a tile: four outputs' lanes are combined by one `hadd` network.
const MR: usize = 4;
/// Columns of outputs in a tile: 4 × 2 accumulators, two vectors of Bᵀ, one of A and a product
/// stay in the sixteen AVX registers (4 × 3 needs seventeen, and spills).
const NR: usize = 2;
/// The longest k summed in one pass; beyond it, blocks of [`K_BLOCK`] with saved lanes.
const MAX_SINGLE_BLOCK: usize = 2048;
/// Positions per block of a long k: a multiple of eight, so lane `l` keeps positions `≡ l (mod 8)`.
const K_BLOCK: usize = 1024;
/// Bytes of Bᵀ rows (one k block) passed over by every row of a task while they stay in L2.
const PANEL_BYTES: usize = 192 * 1024;

/// How an operand's rows (of length k) are stored.
#[derive(Clone, Copy)]
pub(super) enum Rows<'a> {
    /// Row i is `data[i·k .. (i+1)·k]`.
    Direct(&'a [f32]),
    /// Row i is column i of the (k × rows) row-major matrix `data`.
    Transposed(&'a [f32]),
}

/// c (m × n) = A·Bᵀ for A (m × k) and Bᵀ (n × k) given as [`Rows`]; rows of c split across
/// threads, which changes no output.
pub(super) fn product(a: Rows, b: Rows, c: &mut [f32], m: usize, n: usize, k: usize, avx: bool) {
    if m == 0 || n == 0 {
        return;
    }
    let k_pad = k.next_multiple_of(8);
    let n_pad = n.next_multiple_of(NR);
    // Bᵀ packed once for every task: NR rows at a time, their groups of eight interleaved
    let mut packed_b = vec![0f32; n_pad * k_pad];
    const PACK_COLUMNS: usize = 16 * NR;
    packed_b
        .par_chunks_mut(PACK_COLUMNS * k_pad.max(1))
        .enumerate()
        .for_each(|(chunk, out)| {
            let first = chunk * PACK_COLUMNS;
            let count = PACK_COLUMNS.min(n - first);
            pack(b, first, count, n, k, 0, k, NR, out);
        });
    let threads = rayon::current_num_threads().max(1);
    let rows_per_task = (m / (4 * threads)).clamp(1, 64).next_multiple_of(MR).min(m);
    c.par_chunks_mut(rows_per_task * n)
        .enumerate()
        .for_each(|(task, c_rows)| {
            rows_product(a, task * rows_per_task, m, &packed_b, c_rows, n, k, avx);
        });
}

/// `src` (rows × cols, row-major) transposed.
#[cfg(test)]
pub(super) fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut dst = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
    dst
}

/// Rows `first .. first + count` of an operand with `total` rows, positions `k0 .. k0 + len`,
/// into `out` as tiles of `width` rows: tile t at `t·width·len8`, its group of eight positions
/// s at `s·width·8`, row r of the tile at `r·8` (len8 = len rounded up to eight). What `out`
/// holds past the rows or the positions is left as it is (zeros, by the callers).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pack(
    src: Rows,
    first: usize,
    count: usize,
    total: usize,
    k: usize,
    k0: usize,
    len: usize,
    width: usize,
    out: &mut [f32],
) {
    let len8 = len.next_multiple_of(8);
    let at = |j: usize, p: usize| {
        (j / width) * width * len8 + (p / 8) * width * 8 + (j % width) * 8 + p % 8
    };
    match src {
        Rows::Direct(data) => {
            for j in 0..count {
                let row = &data[(first + j) * k + k0..(first + j) * k + k0 + len];
                for (g, group) in row.chunks(8).enumerate() {
                    let o = at(j, g * 8);
                    out[o..o + group.len()].copy_from_slice(group);
                }
            }
        }
        Rows::Transposed(data) => {
            for p in 0..len {
                let row = &data[(k0 + p) * total + first..(k0 + p) * total + first + count];
                for (j, v) in row.iter().enumerate() {
                    out[at(j, p)] = *v;
                }
            }
        }
    }
}

/// One task: rows `first ..` of c (rows × n) from A (`total` rows) and the packed Bᵀ.
#[allow(clippy::too_many_arguments)]
fn rows_product(
    a: Rows,
    first: usize,
    total: usize,
    packed_b: &[f32],
    c: &mut [f32],
    n: usize,
    k: usize,
    avx: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if avx {
        // SAFETY: `avx` is only set where the CPU has AVX (`super::uses_avx`); the function is
        // the same code compiled for it.
        unsafe { rows_product_avx(a, first, total, packed_b, c, n, k) };
        return;
    }
    let _ = avx;
    rows_product_in::<false>(a, first, total, packed_b, c, n, k);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn rows_product_avx(
    a: Rows,
    first: usize,
    total: usize,
    packed_b: &[f32],
    c: &mut [f32],
    n: usize,
    k: usize,
) {
    rows_product_in::<true>(a, first, total, packed_b, c, n, k)
}

/// What one tile works on: its packed rows of A and of Bᵀ at the block's first position; its
/// lanes saved at `lanes + r·lanes_stride + c·8`; its outputs at `c + r·c_stride + col`, the
/// first `rows` × `cols` of them real.
struct Tile {
    a: *const f32,
    b: *const f32,
    /// Groups of eight positions in this block.
    groups: usize,
    lanes: *mut f32,
    lanes_stride: usize,
    /// Start from the saved lanes (not the first block).
    resume: bool,
    /// Combine the lanes into outputs (the last block); otherwise save them.
    finish: bool,
    c: *mut f32,
    c_stride: usize,
    rows: usize,
    cols: usize,
}

#[inline(always)]
fn rows_product_in<const AVX: bool>(
    a: Rows,
    first: usize,
    total: usize,
    packed_b: &[f32],
    c: &mut [f32],
    n: usize,
    k: usize,
) {
    let rows = c.len() / n;
    let (rows_pad, n_pad, k_pad) = (
        rows.next_multiple_of(MR),
        n.next_multiple_of(NR),
        k.next_multiple_of(8),
    );
    assert!(packed_b.len() >= n_pad * k_pad);
    let kc = if k <= MAX_SINGLE_BLOCK {
        k_pad
    } else {
        K_BLOCK
    };
    let blocks = k.div_ceil(kc.max(1)).max(1);
    let nc_tiles = (PANEL_BYTES / (4 * NR * kc.max(8))).max(1);
    let mut lanes = vec![0f32; if blocks > 1 { rows_pad * n_pad * 8 } else { 0 }];
    let mut packed_a = vec![0f32; rows_pad * kc];
    for block in 0..blocks {
        let k0 = block * kc;
        let len = kc.min(k - k0);
        let len8 = len.next_multiple_of(8);
        if block > 0 {
            packed_a.fill(0.0);
        }
        pack(a, first, rows, total, k, k0, len, MR, &mut packed_a);
        for tj0 in (0..n_pad / NR).step_by(nc_tiles) {
            let tj1 = (tj0 + nc_tiles).min(n_pad / NR);
            for ti in 0..rows_pad / MR {
                for tj in tj0..tj1 {
                    let (i, j) = (ti * MR, tj * NR);
                    let work = Tile {
                        // SAFETY (all four): inside the buffers, whose sizes are checked above.
                        a: unsafe { packed_a.as_ptr().add(ti * MR * len8) },
                        b: unsafe { packed_b.as_ptr().add(tj * NR * k_pad + k0 * NR) },
                        groups: len8 / 8,
                        lanes: if blocks > 1 {
                            unsafe {
                                lanes
                                    .as_mut_ptr()
                                    .add((ti * (n_pad / NR) + tj) * MR * NR * 8)
                            }
                        } else {
                            std::ptr::null_mut()
                        },
                        lanes_stride: NR * 8,
                        resume: block > 0,
                        finish: block + 1 == blocks,
                        c: unsafe { c.as_mut_ptr().add(i * n + j) },
                        c_stride: n,
                        rows: (rows - i).min(MR),
                        cols: (n - j).min(NR),
                    };
                    // SAFETY: the tile's packed rows, lanes and real outputs lie inside the
                    // buffers.
                    unsafe { tile::<AVX>(&work) };
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn tile<const AVX: bool>(t: &Tile) {
    #[cfg(target_arch = "x86_64")]
    if AVX {
        return tile_avx(t);
    }
    tile_portable(t)
}

#[inline(always)]
#[allow(clippy::needless_range_loop)]
unsafe fn tile_portable(t: &Tile) {
    let mut acc = [[[0f32; 8]; NR]; MR];
    if t.resume {
        for (r, row) in acc.iter_mut().enumerate() {
            for (c, lanes) in row.iter_mut().enumerate() {
                *lanes = std::ptr::read_unaligned(
                    t.lanes.add(r * t.lanes_stride + c * 8) as *const [f32; 8]
                );
            }
        }
    }
    for g in 0..t.groups {
        let load =
            |p: *const f32, at: usize| std::ptr::read_unaligned(p.add(at) as *const [f32; 8]);
        let mut b = [[0f32; 8]; NR];
        for (c, v) in b.iter_mut().enumerate() {
            *v = load(t.b, (g * NR + c) * 8);
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let a = load(t.a, (g * MR + r) * 8);
            for (lanes, b) in row.iter_mut().zip(&b) {
                for l in 0..8 {
                    lanes[l] += a[l] * b[l];
                }
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (c, lanes) in row.iter().enumerate() {
            if !t.finish {
                std::ptr::write_unaligned(
                    t.lanes.add(r * t.lanes_stride + c * 8) as *mut [f32; 8],
                    *lanes,
                );
            } else if r < t.rows && c < t.cols {
                *t.c.add(r * t.c_stride + c) = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
                    + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
#[allow(clippy::needless_range_loop)] // the registers of a tile, indexed as such
unsafe fn tile_avx(t: &Tile) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); NR]; MR];
    if t.resume {
        for r in 0..MR {
            for c in 0..NR {
                acc[r][c] = _mm256_loadu_ps(t.lanes.add(r * t.lanes_stride + c * 8));
            }
        }
    }
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.groups {
        let mut bv = [_mm256_setzero_ps(); NR];
        for c in 0..NR {
            bv[c] = _mm256_loadu_ps(b.add(c * 8));
        }
        for r in 0..MR {
            let av = _mm256_loadu_ps(a.add(r * 8));
            for c in 0..NR {
                acc[r][c] = _mm256_add_ps(acc[r][c], _mm256_mul_ps(av, bv[c]));
            }
        }
        a = a.add(MR * 8);
        b = b.add(NR * 8);
    }
    if !t.finish {
        for r in 0..MR {
            for c in 0..NR {
                _mm256_storeu_ps(t.lanes.add(r * t.lanes_stride + c * 8), acc[r][c]);
            }
        }
        return;
    }
    for c in 0..t.cols {
        // [r0: l0+l1, l2+l3, r1: l0+l1, l2+l3 | r0: l4+l5, l6+l7, r1: l4+l5, l6+l7]
        let h01 = _mm256_hadd_ps(acc[0][c], acc[1][c]);
        let h23 = _mm256_hadd_ps(acc[2][c], acc[3][c]);
        // [r0..r3: (l0+l1)+(l2+l3) | r0..r3: (l4+l5)+(l6+l7)]
        let h = _mm256_hadd_ps(h01, h23);
        let sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        let mut out = [0f32; 4];
        _mm_storeu_ps(out.as_mut_ptr(), sums);
        for (r, v) in out.iter().enumerate().take(t.rows) {
            *t.c.add(r * t.c_stride + c) = *v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(count: usize, seed: u32) -> Vec<f32> {
        (0..count)
            .map(|i| {
                let x = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(40_503));
                // spread over magnitudes so that a changed order changes bits
                ((x >> 8) % 20_001) as f32 / 1000.0 - 10.0 + ((x >> 3) % 7) as f32 * 1e-5
            })
            .collect()
    }

    fn paths() -> Vec<bool> {
        let mut paths = vec![false];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            paths.push(true);
        }
        paths
    }

    /// Every output of every tile shape, block count, tail and storage order is the documented
    /// dot product, bit for bit, on both paths.
    #[test]
    fn every_output_is_the_documented_dot_product() {
        let shapes = [
            (1, 1, 1),
            (1, 0, 1),
            (5, 7, 4),
            (9, 64, 11),
            (13, 131, 7),
            (6, MAX_SINGLE_BLOCK + 13, 5),
            (7, 3 * K_BLOCK + MAX_SINGLE_BLOCK, 4),
        ];
        for (m, k, n) in shapes {
            let a = values(m * k, 1);
            let b = values(n * k, 2);
            let want: Vec<u32> = (0..m * n)
                .map(|o| {
                    let (i, j) = (o / n, o % n);
                    super::super::dot(&a[i * k..(i + 1) * k], &b[j * k..(j + 1) * k]).to_bits()
                })
                .collect();
            let (at, bt) = (transpose(&a, m, k), transpose(&b, n, k));
            for avx in paths() {
                for (a_rows, b_rows) in [
                    (Rows::Direct(&a), Rows::Direct(&b)),
                    (Rows::Transposed(&at), Rows::Transposed(&bt)),
                ] {
                    for threads in [1, 3] {
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(threads)
                            .build()
                            .unwrap();
                        let mut c = vec![f32::NAN; m * n];
                        pool.install(|| product(a_rows, b_rows, &mut c, m, n, k, avx));
                        let got: Vec<u32> = c.iter().map(|v| v.to_bits()).collect();
                        assert_eq!(got, want, "{m}×{k}×{n}, avx {avx}, {threads} threads");
                    }
                }
            }
        }
    }
}
