//! The matrix–vector products ([`QMatrix::matmul`]): rows split over the persistent workers of
//! [`Pool`] by groups of 8, each group's outputs computed by `avx2.rs` or by the formulas of
//! `spec.rs`. A thread owns whole rows, so the split never changes a result.

use super::pool::Pool;
use super::{
    simd_level, spec, QMatrix, QuantizedActivations, SimdLevel, GROUP, SUPER_BLOCK, TOKEN_TILE,
};

impl QMatrix {
    /// `out[t * rows + r] = row r · activation t` for every token `t` of `x`, on [`Pool::global`]
    /// (at most as many threads as the calling rayon pool has: inside a 1-thread pool it runs on
    /// the calling thread). The split over threads is by groups of rows and never changes a
    /// result.
    pub fn matmul(&self, x: &QuantizedActivations, out: &mut [f32]) {
        self.matmul_with(simd_level(), x, out)
    }

    /// [`QMatrix::matmul`] with a given instruction set (the tests compare them); a level the CPU
    /// lacks runs the portable code.
    pub fn matmul_with(&self, level: SimdLevel, x: &QuantizedActivations, out: &mut [f32]) {
        assert_eq!(out.len(), x.tokens * self.rows);
        self.matmul_columns(level, x, out, self.rows, 0)
    }

    /// [`QMatrix::matmul_with`] into columns `offset..offset + rows` of `out`, a row-major
    /// `tokens × stride` table: products of different formats sharing an input (Gemma's q, k and
    /// v) fill one table.
    pub fn matmul_columns(
        &self,
        level: SimdLevel,
        x: &QuantizedActivations,
        out: &mut [f32],
        stride: usize,
        offset: usize,
    ) {
        let pool = Pool::global();
        let threads = pool.threads().min(rayon::current_num_threads());
        self.matmul_strided(pool, threads, level, x, out, stride, offset)
    }

    /// [`QMatrix::matmul_with`] on `pool`, split for `threads` threads (the tests vary both).
    pub fn matmul_on(
        &self,
        pool: &Pool,
        threads: usize,
        level: SimdLevel,
        x: &QuantizedActivations,
        out: &mut [f32],
    ) {
        assert_eq!(out.len(), x.tokens * self.rows);
        self.matmul_strided(pool, threads, level, x, out, self.rows, 0)
    }

    #[allow(clippy::too_many_arguments)]
    fn matmul_strided(
        &self,
        pool: &Pool,
        threads: usize,
        level: SimdLevel,
        x: &QuantizedActivations,
        out: &mut [f32],
        stride: usize,
        offset: usize,
    ) {
        assert_eq!(
            x.block_len,
            self.format.block_len(),
            "activations quantized for another format"
        );
        assert_eq!(x.blocks, self.blocks, "activation width ≠ matrix width");
        assert!(offset + self.rows <= stride);
        assert!(x.tokens == 0 || out.len() >= (x.tokens - 1) * stride + offset + self.rows);
        let level = level.available();
        let groups = self.rows.div_ceil(GROUP);
        let threads = threads.max(1);
        // One chunk per thread for a small product (a decode step's 576×576 takes ~15 µs, so
        // more chunks would cost more to hand out than they balance); up to 4 per thread for
        // large ones (the output head, a prompt) to even out the load.
        let work = groups * GROUP * self.cols / 32 * x.tokens;
        let chunks = (work / (1 << 15)).clamp(threads, threads * 4);
        let chunk = groups.div_ceil(chunks).max(1);
        let out_ptr = SharedOut(out.as_mut_ptr());
        let run = |first_group: usize| {
            let end = (first_group + chunk).min(groups);
            let mut lanes = [[0f32; GROUP]; TOKEN_TILE];
            for group in first_group..end {
                let mut token = 0;
                while token < x.tokens {
                    let tile = TOKEN_TILE.min(x.tokens - token);
                    self.group_dot(level, group, x, token, tile, &mut lanes);
                    let row0 = group * GROUP;
                    let n = GROUP.min(self.rows - row0);
                    for (t, lanes) in lanes[..tile].iter().enumerate() {
                        for (lane, &value) in lanes[..n].iter().enumerate() {
                            let at = (token + t) * stride + offset + row0 + lane;
                            // SAFETY: `at < (tokens − 1) * stride + offset + rows <= out.len()`
                            // (asserted above); each (token, row) is written by exactly one
                            // chunk, as the rows of different chunks are disjoint, and `out`
                            // outlives the parallel loop.
                            unsafe { out_ptr.write(at, value) };
                        }
                    }
                    token += tile;
                }
            }
        };
        let parts = groups.div_ceil(chunk);
        if parts == 1 || threads == 1 {
            (0..parts).for_each(|i| run(i * chunk));
        } else {
            pool.run(parts, &|i| run(i * chunk));
        }
    }

    /// The 8 outputs of rows `8g..8g+8` for activations `token..token + tile` (`tile` at most
    /// [`TOKEN_TILE`]; a prompt's tokens share each unpacked weight block). `level` has been
    /// through [`SimdLevel::available`].
    fn group_dot(
        &self,
        level: SimdLevel,
        group: usize,
        x: &QuantizedActivations,
        token: usize,
        tile: usize,
        lanes: &mut [[f32; GROUP]; TOKEN_TILE],
    ) {
        debug_assert!(group < self.rows.div_ceil(GROUP) && token + tile <= x.tokens);
        match level {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `level` is `Avx2` only when the CPU reports AVX2 and F16C
            // (`SimdLevel::available`); `group` is a group of the matrix and `token..token + tile`
            // are tokens of `x` with the matrix's width (asserted by `matmul_with`), which is what
            // `avx2::group_dot` reads.
            SimdLevel::Avx2 => unsafe {
                match tile {
                    TOKEN_TILE => {
                        super::avx2::group_dot::<TOKEN_TILE>(self, group, x, token, &mut lanes[..])
                    }
                    _ => {
                        for t in 0..tile {
                            super::avx2::group_dot::<1>(
                                self,
                                group,
                                x,
                                token + t,
                                &mut lanes[t..t + 1],
                            );
                        }
                    }
                }
            },
            _ => {
                for (t, lanes) in lanes[..tile].iter_mut().enumerate() {
                    self.group_dot_portable(group, x, token + t, lanes);
                }
            }
        }
    }

    /// The specification's products for rows `8g..8g+8` and one token: per row, the block terms of
    /// `spec.rs` added to 0 from the left.
    fn group_dot_portable(
        &self,
        group: usize,
        x: &QuantizedActivations,
        token: usize,
        lanes: &mut [f32; GROUP],
    ) {
        let superblocks = self.format.block_len() == SUPER_BLOCK;
        *lanes = [0.0; GROUP];
        for block in 0..self.blocks {
            let at = token * x.blocks + block;
            let a = x.block(token, block);
            let (da, sa, qsum) = (x.d[at], x.s[at], x.qsum[at]);
            let base = (group * self.blocks + block) * GROUP;
            for (lane, acc) in lanes.iter_mut().enumerate() {
                let slot = base + lane;
                let mut buffer = [0u8; super::matrix::MAX_QUANT_BYTES];
                let q = self.slot_quants(slot, &mut buffer);
                let dw = spec::f16_to_f32(self.scales[slot]);
                let mw = match self.format.has_min() {
                    true => spec::f16_to_f32(self.mins[slot]),
                    false => 0.0,
                };
                let term = if superblocks {
                    let sums16 = x.block_sums16(token, block);
                    spec::superblock_term(self.format, dw, mw, da, q, a, sums16)
                } else {
                    let isum = spec::block_isum(self.format, q, a, qsum);
                    spec::block_term(self.format, dw, mw, da, sa, isum)
                };
                *acc += term;
            }
        }
    }
}

/// The output of a product, written from the chunks of one parallel loop.
struct SharedOut(*mut f32);

// SAFETY: the pointer is only written through `write`, at indices no other thread writes during
// the loop (each chunk owns its rows), so sharing it between threads creates no data race.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `index` is in bounds and no other thread writes it during the loop.
    unsafe fn write(&self, index: usize, value: f32) {
        // SAFETY: the caller's contract: in bounds, and written by this thread alone.
        unsafe { *self.0.add(index) = value };
    }
}
