//! The update codec of SparseLoCo (arXiv 2508.15706): top-k per chunk, 2-bit values, error
//! feedback, and the byte format a miner's update travels in.
//!
//! A miner's pseudo-gradient Δ = θ − θ_miner is one flat `&[f32]` over all parameters in the
//! model's fixed tensor order. [`ErrorFeedback::compress`] folds Δ into the miner's residual,
//! sends the largest entries of each chunk at 2 bits each and keeps everything it did not send
//! (including the quantization error) for the next round.
//!
//! Guarantees:
//! - **Bit-reproducible.** Compressing and decoding are pure functions of their inputs: sequential
//!   loops in index order, no hash maps, no threads, no clocks, no fused multiply-add (every
//!   `a * b + c` is a rounded multiply then a rounded add), no libm. Any two machines produce the
//!   same bytes and the same decoded floats.
//! - **Conservation.** For every coordinate, after a compress, `e_new = (β·e_old + Δ) − sent`
//!   where `sent` is exactly what [`CompressedUpdate::decode_into`] writes there (0 if unsent).
//!   Coordinates not sent keep `β·e_old + Δ` bit for bit.
//! - **Deterministic choice.** In each chunk the sent coordinates are the `k` largest by `|e|`,
//!   ties going to the lower index.
//! - **Refusal changes nothing.** A refused compress (NaN/inf/too-large input, wrong length, bad
//!   config) leaves the residual untouched. Every value handled is bounded by
//!   [`MAX_ABS_VALUE`] (2^64), so no step here can overflow to infinity.
//! - **Hostile bytes.** [`CompressedUpdate::from_bytes`] never panics, computes the exact expected
//!   length from the 17-byte header and checks it before allocating (so it allocates no more than
//!   the input's length justifies), and accepts only the canonical encoding: any accepted input
//!   re-encodes to the same bytes.
//!
//! Chunking: the paper tiles each 2-D weight into 64×64 chunks; we instead cut the flat vector,
//! in tensor order, into consecutive chunks of `chunk` values (default 4096 = 64·64). The last
//! chunk may be shorter; it sends `min(top_k, its length)` values. Chunks may straddle tensors.
//!
//! 2-bit quantization, per chunk: the scale `s` is the mean of `|v|` over the chunk's chosen
//! values (summed in f32 in ascending index order, then divided by `k as f32`). Each chosen value
//! gets a code: bit 0 = magnitude (1 when `|v| > s`), bit 1 = sign (1 when `v < 0`). Decoding is
//! `±(0.5·s)` for magnitude 0 and `±(1.5·s)` for magnitude 1, so codes 0, 1, 2, 3 decode to
//! `+s/2, +3s/2, −s/2, −3s/2`. A chunk whose chosen values are all zero has `s = 0` and codes 0.
//!
//! Wire format (version 1; all integers little-endian):
//! ```text
//! header, 17 bytes:  b"MSLC" | version u8 = 1 | len u64 | chunk u16 | top_k u16
//! then for each of ceil(len / chunk) chunks, in order:
//!   scale   4 bytes   f32 bits, LE; finite, not sign-negative, ≤ 2^64
//!   bits    ceil(14·k / 8) bytes, one LSB-first bit stream:
//!             k indices × 12 bits (position inside the chunk, strictly increasing, < chunk length)
//!             then k codes × 2 bits (same order as the indices)
//!             then zero bits up to the next whole byte
//! ```
//! LSB-first: bit `j` of the stream is bit `j % 8` (0 = least significant) of byte `j / 8`, and
//! each value is written least significant bit first. `k = min(top_k, chunk length)`;
//! `1 ≤ chunk ≤ 4096` (indices are 12 bits), `1 ≤ top_k ≤ chunk`. No bytes follow the last
//! chunk. A full 4096-chunk with k = 64 takes 4 + 96 + 16 = 116 bytes against 16384 bytes of f32:
//! ≈141× smaller (the paper's 146× counts only the 112 bytes of indices and codes).
//!
//! Does not: choose `chunk`/`top_k` for a subnet (a validator compares [`CompressedUpdate::chunk`]
//! and [`CompressedUpdate::top_k`] with what the subnet requires), judge whether an update is
//! useful (that is scoring), or store the residual across restarts.

/// Largest `|value|` compress accepts and largest scale an encoding may carry: 2^64. Far above
/// any sane pseudo-gradient, far enough below `f32::MAX` that `1.5·s` and sums of many decoded
/// updates stay finite.
pub const MAX_ABS_VALUE: f32 = f32::from_bits(0x5f80_0000);

/// Largest chunk: indices inside a chunk are sent as 12 bits.
pub const MAX_CHUNK: usize = 4096;

/// First bytes of every encoded update.
pub const MAGIC: [u8; 4] = *b"MSLC";

/// The wire format version this module writes and reads.
pub const VERSION: u8 = 1;

/// Bytes before the first chunk: magic, version, len, chunk, top_k.
pub const HEADER_LEN: usize = 4 + 1 + 8 + 2 + 2;

const INDEX_BITS: u32 = 12;
const CODE_BITS: u32 = 2;
const SCALE_BYTES: usize = 4;
const CODE_LARGE: u8 = 0b01;
const CODE_NEGATIVE: u8 = 0b10;

/// How updates are compressed.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SparseLocoConfig {
    /// Values per chunk, 1..=4096 (default 4096 = one 64×64 tile).
    pub chunk: usize,
    /// Values sent per chunk, 1..=chunk (default 64).
    pub top_k: usize,
    /// Decay of the error-feedback residual, 0..=1 (default 0.95).
    pub beta: f32,
}

impl Default for SparseLocoConfig {
    fn default() -> Self {
        Self {
            chunk: MAX_CHUNK,
            top_k: 64,
            beta: 0.95,
        }
    }
}

impl SparseLocoConfig {
    /// Checks every field is in range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_chunk_and_top_k(self.chunk, self.top_k)?;
        if !(0.0..=1.0).contains(&self.beta) {
            return Err(ConfigError::Beta { beta: self.beta });
        }
        Ok(())
    }
}

/// The one rule for chunk and top_k, shared by the config and the decoder.
fn check_chunk_and_top_k(chunk: usize, top_k: usize) -> Result<(), ConfigError> {
    if !(1..=MAX_CHUNK).contains(&chunk) {
        return Err(ConfigError::Chunk { chunk });
    }
    if !(1..=chunk).contains(&top_k) {
        return Err(ConfigError::TopK { top_k, chunk });
    }
    Ok(())
}

/// A [`SparseLocoConfig`] (or an encoded header) out of range.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("chunk size {chunk} is out of range: use 1..=4096 (indices are sent as 12 bits)")]
    Chunk { chunk: usize },
    #[error("top_k {top_k} is out of range: use 1..=chunk ({chunk})")]
    TopK { top_k: usize, chunk: usize },
    #[error("error-feedback beta {beta} is out of range: use a value in 0..=1 (default 0.95)")]
    Beta { beta: f32 },
}

/// Why [`ErrorFeedback::compress`] refused a pseudo-gradient. The residual is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum CompressError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("pseudo-gradient has {actual} values but the model has {expected}")]
    Length { expected: usize, actual: usize },
    #[error(
        "pseudo-gradient value {value} at index {index} is not finite: the inner steps diverged"
    )]
    NonFinite { index: usize, value: f32 },
    #[error("accumulated value {value} at index {index} exceeds 2^64 in magnitude: the inner steps diverged")]
    TooLarge { index: usize, value: f32 },
}

/// A slice whose length does not match the update's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer has {actual} values but the update covers {expected} parameters")]
pub struct LengthMismatch {
    pub expected: u64,
    pub actual: usize,
}

/// Why [`CompressedUpdate::from_bytes`] refused an encoding.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a SparseLoCo update: starts with {found:02x?}, expected \"MSLC\"")]
    Magic { found: Vec<u8> },
    #[error("SparseLoCo update version {found} is not supported (this build reads version 1)")]
    Version { found: u8 },
    #[error("update covers {len} parameters but at most {max_len} are allowed")]
    TooLong { len: u64, max_len: u64 },
    #[error("update header: {0}")]
    Config(#[from] ConfigError),
    #[error("update is truncated: {actual} bytes, its header implies {expected}")]
    Truncated { expected: u128, actual: usize },
    #[error("update has trailing bytes: {actual} bytes, its header implies {expected}")]
    Trailing { expected: u128, actual: usize },
    #[error("chunk {chunk_index} has scale {scale}: it must be finite, non-negative and ≤ 2^64")]
    Scale { chunk_index: usize, scale: f32 },
    #[error("chunk {chunk_index} has index {index} but only {chunk_len} values")]
    IndexOutOfRange {
        chunk_index: usize,
        index: u16,
        chunk_len: usize,
    },
    #[error(
        "chunk {chunk_index} has index {index} after {previous}: indices must strictly increase"
    )]
    IndicesNotIncreasing {
        chunk_index: usize,
        previous: u16,
        index: u16,
    },
    #[error("chunk {chunk_index} has non-zero padding bits")]
    Padding { chunk_index: usize },
}

/// A miner's error-feedback residual `e`, one value per parameter, starting at zero.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorFeedback {
    residual: Vec<f32>,
}

impl ErrorFeedback {
    /// A zero residual for a model of `len` parameters.
    pub fn new(len: usize) -> Self {
        Self {
            residual: vec![0.0; len],
        }
    }

    /// Resumes from a residual kept earlier ([`residual`](Self::residual)).
    pub fn from_residual(residual: Vec<f32>) -> Self {
        Self { residual }
    }

    /// The residual as little-endian `f32`s, to keep on disk.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.residual.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Reads [`to_bytes`](Self::to_bytes) of a residual of `len` values; `None` if the length
    /// differs.
    pub fn from_bytes(bytes: &[u8], len: usize) -> Option<Self> {
        (bytes.len() == 4 * len).then(|| Self {
            residual: bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect(),
        })
    }

    /// What has been accumulated and not yet sent.
    pub fn residual(&self) -> &[f32] {
        &self.residual
    }

    /// `e ← β·e + Δ`, sends the top-k of each chunk of `e` at 2 bits and subtracts what was
    /// sent (as decoded) from `e`. See the module doc for the exact rules.
    pub fn compress(
        &mut self,
        delta: &[f32],
        cfg: &SparseLocoConfig,
    ) -> Result<CompressedUpdate, CompressError> {
        cfg.validate()?;
        self.check_accumulation(delta, cfg.beta)?;
        let len = self.residual.len();
        let nnz = sent_count(len as u64, cfg.chunk, cfg.top_k) as usize;
        let mut update = CompressedUpdate {
            len: len as u64,
            chunk: cfg.chunk,
            top_k: cfg.top_k,
            scales: Vec::with_capacity(len.div_ceil(cfg.chunk)),
            indices: Vec::with_capacity(nnz),
            codes: Vec::with_capacity(nnz),
        };
        let mut order: Vec<u16> = Vec::with_capacity(cfg.chunk);
        for (e, d) in self
            .residual
            .chunks_mut(cfg.chunk)
            .zip(delta.chunks(cfg.chunk))
        {
            for (e, &d) in e.iter_mut().zip(d) {
                *e = cfg.beta * *e + d;
            }
            compress_chunk(e, cfg.top_k, &mut order, &mut update);
        }
        Ok(update)
    }

    /// Plan before writing: every `β·e + Δ` must be finite and within [`MAX_ABS_VALUE`], checked
    /// before the residual changes so a refusal leaves it as it was.
    fn check_accumulation(&self, delta: &[f32], beta: f32) -> Result<(), CompressError> {
        if delta.len() != self.residual.len() {
            return Err(CompressError::Length {
                expected: self.residual.len(),
                actual: delta.len(),
            });
        }
        for (index, (&e, &d)) in self.residual.iter().zip(delta).enumerate() {
            if !d.is_finite() {
                return Err(CompressError::NonFinite { index, value: d });
            }
            let value = beta * e + d;
            if !value.is_finite() || value.abs() > MAX_ABS_VALUE {
                return Err(CompressError::TooLarge { index, value });
            }
        }
        Ok(())
    }
}

/// Chooses, quantizes and subtracts the top-k of one chunk of the residual; appends to `out`.
fn compress_chunk(e: &mut [f32], top_k: usize, order: &mut Vec<u16>, out: &mut CompressedUpdate) {
    debug_assert!(!e.is_empty() && e.len() <= MAX_CHUNK);
    let k = top_k.min(e.len());
    order.clear();
    order.extend(0..e.len() as u16);
    if k < e.len() {
        // A total order (|v| descending, then index ascending) makes the chosen set unique,
        // whatever the selection algorithm does internally.
        order.select_nth_unstable_by(k - 1, |&a, &b| {
            let (va, vb) = (e[usize::from(a)].abs(), e[usize::from(b)].abs());
            vb.total_cmp(&va).then(a.cmp(&b))
        });
        order.truncate(k);
    }
    order.sort_unstable();
    let mut sum = 0.0f32;
    for &i in order.iter() {
        sum += e[usize::from(i)].abs();
    }
    let scale = sum / k as f32;
    for &i in order.iter() {
        let v = e[usize::from(i)];
        let code = quantize(v, scale);
        e[usize::from(i)] = v - dequantize(code, scale);
        out.indices.push(i);
        out.codes.push(code);
    }
    out.scales.push(scale);
}

/// The 2-bit code of `v` under `scale` (module doc: bit 0 magnitude, bit 1 sign).
fn quantize(v: f32, scale: f32) -> u8 {
    // Strict `>`: with scale 0 (all chosen values zero) every code is 0.
    let large = if v.abs() > scale { CODE_LARGE } else { 0 };
    let negative = if v < 0.0 { CODE_NEGATIVE } else { 0 };
    large | negative
}

/// The value a 2-bit code stands for; exact and the same on every machine.
pub fn dequantize(code: u8, scale: f32) -> f32 {
    let magnitude = if code & CODE_LARGE != 0 {
        1.5 * scale
    } else {
        0.5 * scale
    };
    if code & CODE_NEGATIVE != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// One compressed pseudo-gradient. Built only by [`ErrorFeedback::compress`] or
/// [`CompressedUpdate::from_bytes`], so its invariants (valid chunk/top_k, indices strictly
/// increasing and inside their chunk, codes < 4, scales finite in 0..=2^64) always hold.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressedUpdate {
    len: u64,
    chunk: usize,
    top_k: usize,
    /// One per chunk.
    scales: Vec<f32>,
    /// Chunk `c`'s entries start at `c · top_k` (only the last chunk may send fewer than
    /// `top_k`); positions are relative to the chunk's first value.
    indices: Vec<u16>,
    /// Parallel to `indices`.
    codes: Vec<u8>,
}

/// One chunk of an update, as the decoders walk it.
struct ChunkView<'a> {
    /// Position of the chunk's first value in the flat vector.
    base: usize,
    scale: f32,
    indices: &'a [u16],
    codes: &'a [u8],
}

impl CompressedUpdate {
    /// Number of parameters the update covers.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the update covers no parameters.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Values per chunk this update was made with.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// Values sent per (full) chunk.
    pub fn top_k(&self) -> usize {
        self.top_k
    }

    /// Number of values sent.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// The per-chunk scales.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Bytes [`Self::to_bytes`] produces.
    pub fn encoded_len(&self) -> usize {
        // Cannot exceed usize for an update that fits in memory; saturate rather than panic.
        usize::try_from(wire_len(self.len, self.chunk, self.top_k)).unwrap_or(usize::MAX)
    }

    fn chunks(&self) -> impl Iterator<Item = ChunkView<'_>> + '_ {
        self.scales.iter().enumerate().map(move |(c, &scale)| {
            let start = c * self.top_k;
            let end = (start + self.top_k).min(self.indices.len());
            ChunkView {
                base: c * self.chunk,
                scale,
                indices: &self.indices[start..end],
                codes: &self.codes[start..end],
            }
        })
    }

    fn check_len(&self, actual: usize) -> Result<(), LengthMismatch> {
        if actual as u64 != self.len {
            return Err(LengthMismatch {
                expected: self.len,
                actual,
            });
        }
        Ok(())
    }

    /// Writes the dense update: the decoded value at every sent position, 0 elsewhere.
    pub fn decode_into(&self, out: &mut [f32]) -> Result<(), LengthMismatch> {
        self.check_len(out.len())?;
        out.fill(0.0);
        for view in self.chunks() {
            for (&i, &code) in view.indices.iter().zip(view.codes) {
                out[view.base + usize::from(i)] = dequantize(code, view.scale);
            }
        }
        Ok(())
    }

    /// `acc[i] = acc[i] + weight · decoded[i]` at every sent position (a rounded multiply then a
    /// rounded add; unsent positions are left as they are, which equals adding 0).
    pub fn add_into(&self, acc: &mut [f32], weight: f32) -> Result<(), LengthMismatch> {
        self.check_len(acc.len())?;
        for view in self.chunks() {
            for (&i, &code) in view.indices.iter().zip(view.codes) {
                let slot = &mut acc[view.base + usize::from(i)];
                *slot += weight * dequantize(code, view.scale);
            }
        }
        Ok(())
    }

    /// The wire encoding (module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.len.to_le_bytes());
        // Both ≤ 4096 by the type's invariant.
        out.extend_from_slice(&(self.chunk as u16).to_le_bytes());
        out.extend_from_slice(&(self.top_k as u16).to_le_bytes());
        for view in self.chunks() {
            write_chunk(&mut out, view.scale.to_bits(), view.indices, view.codes);
        }
        debug_assert_eq!(out.len(), self.encoded_len());
        out
    }

    /// Reads an encoding from an untrusted source, refusing anything but a canonical encoding
    /// of an update of at most `max_len` parameters.
    pub fn from_bytes(bytes: &[u8], max_len: u64) -> Result<Self, DecodeError> {
        let header = read_header(bytes, max_len)?;
        let expected = wire_len(header.len, header.chunk, header.top_k);
        if (bytes.len() as u128) < expected {
            let actual = bytes.len();
            return Err(DecodeError::Truncated { expected, actual });
        }
        if (bytes.len() as u128) > expected {
            let actual = bytes.len();
            return Err(DecodeError::Trailing { expected, actual });
        }
        // From here every count is bounded by bytes.len(): each chunk takes ≥ 5 bytes and each
        // sent value ≥ 14 bits, so these allocations are justified by the input.
        let len = usize::try_from(header.len).map_err(|_| DecodeError::TooLong {
            len: header.len,
            max_len: usize::MAX as u64,
        })?;
        let chunk_count = len.div_ceil(header.chunk);
        let nnz = sent_count(header.len, header.chunk, header.top_k) as usize;
        let mut update = CompressedUpdate {
            len: header.len,
            chunk: header.chunk,
            top_k: header.top_k,
            scales: Vec::with_capacity(chunk_count),
            indices: Vec::with_capacity(nnz),
            codes: Vec::with_capacity(nnz),
        };
        let mut body = &bytes[HEADER_LEN..];
        for chunk_index in 0..chunk_count {
            let chunk_len = header.chunk.min(len - chunk_index * header.chunk);
            let k = header.top_k.min(chunk_len);
            body = read_chunk(body, chunk_index, chunk_len, k, &mut update)?;
        }
        debug_assert!(body.is_empty());
        Ok(update)
    }
}

/// Number of values an update of `len` parameters sends.
fn sent_count(len: u64, chunk: usize, top_k: usize) -> u64 {
    let (chunk, top_k) = (chunk as u64, top_k as u64);
    let rest = len % chunk;
    (len / chunk) * top_k + rest.min(top_k)
}

/// Bytes of one chunk that sends `k` values.
fn chunk_wire_len(k: u64) -> u128 {
    SCALE_BYTES as u128 + (u128::from(k) * u128::from(INDEX_BITS + CODE_BITS)).div_ceil(8)
}

/// Exact encoded length of an update of `len` values; u128 so a hostile header cannot overflow
/// it.
pub fn wire_len(len: u64, chunk: usize, top_k: usize) -> u128 {
    let (chunk64, top_k64) = (chunk as u64, top_k as u64);
    let full = u128::from(len / chunk64) * chunk_wire_len(top_k64);
    let rest = len % chunk64;
    let last = if rest == 0 {
        0
    } else {
        chunk_wire_len(rest.min(top_k64))
    };
    HEADER_LEN as u128 + full + last
}

struct Header {
    len: u64,
    chunk: usize,
    top_k: usize,
}

fn read_header(bytes: &[u8], max_len: u64) -> Result<Header, DecodeError> {
    let magic = &bytes[..bytes.len().min(MAGIC.len())];
    // A short prefix of the magic is a truncated update, anything else is not an update.
    if !MAGIC.starts_with(magic) {
        return Err(DecodeError::Magic {
            found: magic.to_vec(),
        });
    }
    let Some(header) = bytes.get(..HEADER_LEN) else {
        let (expected, actual) = (HEADER_LEN as u128, bytes.len());
        return Err(DecodeError::Truncated { expected, actual });
    };
    if header[4] != VERSION {
        return Err(DecodeError::Version { found: header[4] });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[5..13]);
    let len = u64::from_le_bytes(len);
    if len > max_len {
        return Err(DecodeError::TooLong { len, max_len });
    }
    let chunk = usize::from(u16::from_le_bytes([header[13], header[14]]));
    let top_k = usize::from(u16::from_le_bytes([header[15], header[16]]));
    check_chunk_and_top_k(chunk, top_k)?;
    Ok(Header { len, chunk, top_k })
}

/// Appends one chunk: scale bits, then the bit stream of indices, codes and zero padding.
fn write_chunk(out: &mut Vec<u8>, scale_bits: u32, indices: &[u16], codes: &[u8]) {
    out.extend_from_slice(&scale_bits.to_le_bytes());
    let mut bits = BitWriter::new(out);
    for &i in indices {
        bits.put(u32::from(i), INDEX_BITS);
    }
    for &code in codes {
        bits.put(u32::from(code), CODE_BITS);
    }
    bits.finish();
}

/// Reads and checks one chunk of `k` values from the front of `body`; returns the rest.
fn read_chunk<'a>(
    body: &'a [u8],
    chunk_index: usize,
    chunk_len: usize,
    k: usize,
    out: &mut CompressedUpdate,
) -> Result<&'a [u8], DecodeError> {
    let stream_len = (k * (INDEX_BITS + CODE_BITS) as usize).div_ceil(8);
    // The total length was checked against the header, so this only fails on a logic error;
    // it still reports rather than panics.
    let truncated = || DecodeError::Truncated {
        expected: (SCALE_BYTES + stream_len) as u128,
        actual: body.len(),
    };
    let (scale, rest) = body.split_at_checked(SCALE_BYTES).ok_or_else(truncated)?;
    let (stream, rest) = rest.split_at_checked(stream_len).ok_or_else(truncated)?;
    let scale = f32::from_bits(u32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]));
    if !scale.is_finite() || scale.is_sign_negative() || scale > MAX_ABS_VALUE {
        return Err(DecodeError::Scale { chunk_index, scale });
    }
    let mut bits = BitReader::new(stream);
    let mut previous: Option<u16> = None;
    for _ in 0..k {
        let index = bits.take(INDEX_BITS).ok_or_else(truncated)? as u16;
        if usize::from(index) >= chunk_len {
            return Err(DecodeError::IndexOutOfRange {
                chunk_index,
                index,
                chunk_len,
            });
        }
        if let Some(previous) = previous.filter(|&p| p >= index) {
            return Err(DecodeError::IndicesNotIncreasing {
                chunk_index,
                previous,
                index,
            });
        }
        previous = Some(index);
        out.indices.push(index);
    }
    for _ in 0..k {
        out.codes
            .push(bits.take(CODE_BITS).ok_or_else(truncated)? as u8);
    }
    if !bits.rest_is_zero() {
        return Err(DecodeError::Padding { chunk_index });
    }
    out.scales.push(scale);
    Ok(rest)
}

/// LSB-first bit packing (module doc).
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    bits: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            acc: 0,
            bits: 0,
        }
    }

    fn put(&mut self, value: u32, width: u32) {
        debug_assert!(width <= 16 && value < (1 << width));
        self.acc |= u64::from(value) << self.bits;
        self.bits += width;
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    /// Pads with zero bits to a whole byte.
    fn finish(self) {
        if self.bits > 0 {
            self.out.push(self.acc as u8);
        }
    }
}

/// Reads what [`BitWriter`] wrote.
struct BitReader<'a> {
    bytes: &'a [u8],
    next: usize,
    acc: u64,
    bits: u32,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            next: 0,
            acc: 0,
            bits: 0,
        }
    }

    /// The next `width` (≤ 16) bits, or `None` past the end.
    fn take(&mut self, width: u32) -> Option<u32> {
        while self.bits < width {
            let byte = *self.bytes.get(self.next)?;
            self.next += 1;
            self.acc |= u64::from(byte) << self.bits;
            self.bits += 8;
        }
        let value = (self.acc & ((1 << width) - 1)) as u32;
        self.acc >>= width;
        self.bits -= width;
        Some(value)
    }

    /// True when every byte was read and the bits left (padding) are zero.
    fn rest_is_zero(&self) -> bool {
        self.next == self.bytes.len() && self.acc == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deterministic pseudo-random values in roughly [-1, 1) (xorshift; no clock, no thread).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 23) as f32) - 1.0
            })
            .collect()
    }

    fn cfg(chunk: usize, top_k: usize) -> SparseLocoConfig {
        SparseLocoConfig {
            chunk,
            top_k,
            ..SparseLocoConfig::default()
        }
    }

    fn decoded(update: &CompressedUpdate) -> Vec<f32> {
        let mut out = vec![f32::NAN; update.len() as usize];
        update.decode_into(&mut out).unwrap();
        out
    }

    /// An encoding built from raw parts, to express malformed inputs.
    fn raw(len: u64, chunk: u16, top_k: u16, chunks: &[(u32, Vec<u16>, Vec<u8>)]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(VERSION);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&chunk.to_le_bytes());
        out.extend_from_slice(&top_k.to_le_bytes());
        for (scale, indices, codes) in chunks {
            write_chunk(&mut out, *scale, indices, codes);
        }
        out
    }

    /// A valid 2-chunk encoding (chunk 8, k 2, len 12) and the same with `scale`/`indices`
    /// replaced in the second chunk.
    fn two_chunks(scale: f32, indices: Vec<u16>) -> Vec<u8> {
        let first = (1.0f32.to_bits(), vec![1, 5], vec![0, 3]);
        raw(12, 8, 2, &[first, (scale.to_bits(), indices, vec![1, 2])])
    }

    #[test]
    fn max_abs_value_is_two_to_the_64() {
        assert_eq!(MAX_ABS_VALUE, 18_446_744_073_709_551_616.0f32);
    }

    #[test]
    fn config_validation() {
        assert_eq!(SparseLocoConfig::default().validate(), Ok(()));
        assert!(matches!(
            cfg(0, 1).validate(),
            Err(ConfigError::Chunk { .. })
        ));
        assert!(matches!(
            cfg(4097, 1).validate(),
            Err(ConfigError::Chunk { .. })
        ));
        assert!(matches!(
            cfg(64, 0).validate(),
            Err(ConfigError::TopK { .. })
        ));
        assert!(matches!(
            cfg(64, 65).validate(),
            Err(ConfigError::TopK { .. })
        ));
        for beta in [-0.1, 1.1, f32::NAN] {
            let bad = SparseLocoConfig {
                beta,
                ..SparseLocoConfig::default()
            };
            assert!(matches!(bad.validate(), Err(ConfigError::Beta { .. })));
        }
    }

    #[test]
    fn bytes_round_trip() {
        for (n, chunk, k) in [
            (10_000, 4096, 64),
            (1000, 64, 7),
            (5, 64, 7),
            (0, 16, 4),
            (33, 1, 1),
        ] {
            let update = ErrorFeedback::new(n)
                .compress(&values(n, 7), &cfg(chunk, k))
                .unwrap();
            let bytes = update.to_bytes();
            assert_eq!(bytes.len(), update.encoded_len());
            let back = CompressedUpdate::from_bytes(&bytes, n as u64).unwrap();
            assert_eq!(back, update);
            assert_eq!(back.to_bytes(), bytes);
        }
    }

    #[test]
    fn decode_is_exact_and_only_at_chosen_positions() {
        let n = 300;
        let update = ErrorFeedback::new(n)
            .compress(&values(n, 3), &cfg(64, 5))
            .unwrap();
        let out = decoded(&update);
        let mut expected = vec![0.0f32; n];
        for view in update.chunks() {
            for (&i, &c) in view.indices.iter().zip(view.codes) {
                expected[view.base + usize::from(i)] = dequantize(c, view.scale);
            }
        }
        assert_eq!(out, expected);
        // 4 full chunks × 5 + last chunk of 44 values × 5.
        assert_eq!(update.nnz(), 25);
        assert!(out.iter().filter(|v| **v != 0.0).count() <= 25);
    }

    #[test]
    fn dequantize_levels() {
        assert_eq!(
            [0, 1, 2, 3].map(|c| dequantize(c, 2.0)),
            [1.0, 3.0, -1.0, -3.0]
        );
        assert_eq!(quantize(2.5, 2.0), 1);
        assert_eq!(quantize(-2.0, 2.0), 2); // |v| = s is "small"
        assert_eq!(quantize(0.0, 0.0), 0);
    }

    #[test]
    fn error_feedback_conserves_every_coordinate() {
        let (n, c) = (1000, cfg(128, 9));
        let mut ef = ErrorFeedback::new(n);
        ef.compress(&values(n, 11), &c).unwrap();
        let e_old = ef.residual().to_vec();
        let delta = values(n, 12);
        let update = ef.compress(&delta, &c).unwrap();
        let sent = decoded(&update);
        let mut chosen = vec![false; n];
        for view in update.chunks() {
            for &i in view.indices {
                chosen[view.base + usize::from(i)] = true;
            }
        }
        for i in 0..n {
            let v = c.beta * e_old[i] + delta[i];
            if chosen[i] {
                assert_eq!(ef.residual()[i], v - sent[i], "index {i}");
                // Adding back what was sent recovers v up to the rounding of two operations.
                let tolerance = 2.0 * f32::EPSILON * (v.abs() + sent[i].abs());
                assert!(
                    (ef.residual()[i] + sent[i] - v).abs() <= tolerance,
                    "index {i}"
                );
            } else {
                assert_eq!(ef.residual()[i], v, "index {i}");
                assert_eq!(sent[i], 0.0);
            }
        }
    }

    #[test]
    fn chosen_set_is_the_true_top_k() {
        let (n, chunk, k) = (1000, 128, 9);
        let delta = values(n, 5);
        let update = ErrorFeedback::new(n)
            .compress(&delta, &cfg(chunk, k))
            .unwrap();
        for view in update.chunks() {
            let part = &delta[view.base..(view.base + chunk).min(n)];
            let mut brute: Vec<u16> = (0..part.len() as u16).collect();
            brute.sort_by(|&a, &b| {
                let (a_abs, b_abs) = (part[usize::from(a)].abs(), part[usize::from(b)].abs());
                b_abs.partial_cmp(&a_abs).unwrap().then(a.cmp(&b))
            });
            brute.truncate(k.min(part.len()));
            brute.sort();
            assert_eq!(view.indices, &brute[..]);
        }
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        let delta = [0.5, -1.0, 1.0, 0.25, -1.0, 1.0, 0.0, 1.0];
        let update = ErrorFeedback::new(8).compress(&delta, &cfg(8, 3)).unwrap();
        assert_eq!(update.indices, vec![1, 2, 4]);
        let zeros = ErrorFeedback::new(8)
            .compress(&[0.0; 8], &cfg(8, 3))
            .unwrap();
        assert_eq!(zeros.indices, vec![0, 1, 2]);
        assert_eq!(zeros.codes, vec![0, 0, 0]);
        assert_eq!(zeros.scales, vec![0.0]);
    }

    #[test]
    fn encoded_size_matches_the_formula() {
        let n = 3 * 4096;
        let update = ErrorFeedback::new(n)
            .compress(&values(n, 9), &SparseLocoConfig::default())
            .unwrap();
        assert_eq!(update.to_bytes().len(), 17 + 3 * (4 + 96 + 16));
        // A short last chunk of 10 values sends 10: 4 + ceil(140 / 8) = 22 bytes.
        let update = ErrorFeedback::new(n + 10)
            .compress(&values(n + 10, 9), &SparseLocoConfig::default())
            .unwrap();
        assert_eq!(update.to_bytes().len(), 17 + 3 * 116 + 22);
    }

    #[test]
    fn non_finite_input_is_refused_and_changes_nothing() {
        let c = cfg(4, 2);
        let mut ef = ErrorFeedback::new(6);
        ef.compress(&values(6, 1), &c).unwrap();
        let before = ef.clone();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut delta = values(6, 2);
            delta[5] = bad;
            let err = ef.compress(&delta, &c).unwrap_err();
            assert!(matches!(err, CompressError::NonFinite { index: 5, .. }));
            assert_eq!(ef, before);
        }
        let mut huge = vec![0.0; 6];
        huge[2] = 1e20;
        assert!(matches!(
            ef.compress(&huge, &c),
            Err(CompressError::TooLarge { index: 2, .. })
        ));
        assert!(matches!(
            ef.compress(&[0.0; 5], &c),
            Err(CompressError::Length { .. })
        ));
        assert!(matches!(
            ef.compress(&[0.0; 6], &cfg(4, 5)),
            Err(CompressError::Config(_))
        ));
        assert_eq!(ef, before);
    }

    #[test]
    fn constant_delta_eventually_sends_every_coordinate() {
        let (n, c) = (256, cfg(64, 4));
        let mut ef = ErrorFeedback::new(n);
        let mut ever_sent = vec![false; n];
        for _ in 0..64 {
            let update = ef.compress(&vec![0.01; n], &c).unwrap();
            for (i, v) in decoded(&update).iter().enumerate() {
                ever_sent[i] |= *v != 0.0;
            }
        }
        assert!(ever_sent.iter().all(|&s| s), "{ever_sent:?}");
    }

    #[test]
    fn length_mismatch_on_decode() {
        let update = ErrorFeedback::new(10)
            .compress(&values(10, 1), &cfg(4, 2))
            .unwrap();
        assert!(update.decode_into(&mut [0.0; 9]).is_err());
        assert!(update.add_into(&mut [0.0; 11], 1.0).is_err());
    }

    #[test]
    fn refuses_bad_header() {
        let good = two_chunks(1.0, vec![0, 3]);
        assert!(CompressedUpdate::from_bytes(&good, 12).is_ok());
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(
            CompressedUpdate::from_bytes(&bad, 12),
            Err(DecodeError::Magic { .. })
        ));
        assert!(matches!(
            CompressedUpdate::from_bytes(b"XS", 12),
            Err(DecodeError::Magic { .. })
        ));
        let err = CompressedUpdate::from_bytes(b"MS", 12);
        assert!(matches!(err, Err(DecodeError::Truncated { .. })));
        let mut bad = good.clone();
        bad[4] = 2;
        let err = CompressedUpdate::from_bytes(&bad, 12);
        assert_eq!(err, Err(DecodeError::Version { found: 2 }));
        let err = CompressedUpdate::from_bytes(&good, 11);
        assert_eq!(
            err,
            Err(DecodeError::TooLong {
                len: 12,
                max_len: 11
            })
        );
        for (chunk, top_k) in [(0, 1), (4097, 1), (8, 0), (8, 9)] {
            let bad = raw(12, chunk, top_k, &[]);
            let err = CompressedUpdate::from_bytes(&bad, 12);
            assert!(
                matches!(err, Err(DecodeError::Config(_))),
                "{chunk} {top_k}: {err:?}"
            );
        }
    }

    #[test]
    fn refuses_wrong_length() {
        let good = two_chunks(1.0, vec![0, 3]);
        for cut in [0, 3, 16, HEADER_LEN + 3, good.len() - 1] {
            let err = CompressedUpdate::from_bytes(&good[..cut], 12);
            assert!(
                matches!(err, Err(DecodeError::Truncated { .. })),
                "{cut}: {err:?}"
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            CompressedUpdate::from_bytes(&long, 12),
            Err(DecodeError::Trailing { .. })
        ));
        // A huge len in the header is refused by length, before any allocation.
        let huge = raw(u64::MAX, 1, 1, &[]);
        let err = CompressedUpdate::from_bytes(&huge, u64::MAX);
        assert!(matches!(err, Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn refuses_bad_chunk_bodies() {
        let decode = |bytes: Vec<u8>| CompressedUpdate::from_bytes(&bytes, 12);
        for scale in [f32::NAN, f32::INFINITY, -1.0, -0.0, 1e20] {
            let err = decode(two_chunks(scale, vec![0, 3]));
            assert!(
                matches!(err, Err(DecodeError::Scale { chunk_index: 1, .. })),
                "{scale}"
            );
        }
        // The second chunk holds only 4 values (len 12, chunk 8).
        let err = decode(two_chunks(1.0, vec![0, 4]));
        assert!(matches!(
            err,
            Err(DecodeError::IndexOutOfRange {
                chunk_index: 1,
                index: 4,
                ..
            })
        ));
        for indices in [vec![2, 2], vec![3, 1]] {
            let err = decode(two_chunks(1.0, indices));
            assert!(matches!(
                err,
                Err(DecodeError::IndicesNotIncreasing { chunk_index: 1, .. })
            ));
        }
        // k = 2 uses 28 of 32 stream bits; set a padding bit of the first chunk.
        let mut bad = two_chunks(1.0, vec![0, 3]);
        bad[HEADER_LEN + 4 + 3] |= 0x80;
        assert_eq!(decode(bad), Err(DecodeError::Padding { chunk_index: 0 }));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn from_bytes_never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(update) = CompressedUpdate::from_bytes(&bytes, 1 << 20) {
                prop_assert_eq!(update.to_bytes(), bytes);
            }
        }

        #[test]
        fn from_bytes_never_panics_on_noise_after_a_valid_header(
            len in 0u64..200, chunk in 0u16..40, top_k in 0u16..40,
            body in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut bytes = raw(len, chunk, top_k, &[]);
            bytes.extend_from_slice(&body);
            if let Ok(update) = CompressedUpdate::from_bytes(&bytes, 1 << 20) {
                prop_assert_eq!(update.to_bytes(), bytes);
            }
        }

        #[test]
        fn from_bytes_never_panics_on_mutated_encodings(
            seed in any::<u64>(), n in 0usize..300, cut in any::<prop::sample::Index>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        ) {
            let c = cfg(16, 3);
            let valid = ErrorFeedback::new(n).compress(&values(n, seed), &c).unwrap().to_bytes();
            let truncated = &valid[..cut.index(valid.len())];
            prop_assert!(CompressedUpdate::from_bytes(truncated, 1 << 20).is_err());
            let mut flipped = valid.clone();
            for (at, mask) in flips {
                flipped[at.index(valid.len())] ^= mask;
            }
            if let Ok(update) = CompressedUpdate::from_bytes(&flipped, 1 << 20) {
                prop_assert_eq!(update.to_bytes(), flipped);
            }
        }
    }
}
