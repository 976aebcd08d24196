//! Reading a GGUF file's header: its identity (SHA-256 of the bytes), its version, tensor count and
//! every metadata key/value — not the tensor descriptions or the tensors.
//!
//! The format (github.com/ggml-org/ggml, docs/gguf.md), all integers little-endian:
//! `"GGUF"`, `u32 version`, `tensor_count`, `metadata_kv_count`, then the key/values: a string
//! key, a `u32` value type and the value. Counts and lengths are `u64` (`u32` in version 1). A
//! string is a length and that many UTF-8 bytes; an array is a `u32` element type, a length and
//! the elements. Value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (one byte, 0 or
//! 1), 8 string, 9 array, 10 u64, 11 i64, 12 f64.
//!
//! The reader is bounded, because a gateway reads files it did not make: no length is trusted
//! before the bytes it claims are known to be in the file, the header may hold at most
//! [`MAX_HEADER_BYTES`] bytes and [`MAX_VALUES`] values, arrays nest at most [`MAX_DEPTH`] deep,
//! and every refusal says where and why. A key given twice is refused. Strings are read as
//! llama.cpp's writers leave them in practice and as candle reads them: trailing NUL bytes are
//! dropped and invalid UTF-8 becomes U+FFFD.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::TokenizerError;

/// The most bytes the header (everything before the tensor descriptions) may take. Real headers
/// take a few MiB (SmolLM2's: 1.6 MiB; a 256k-token vocabulary: about 10 MiB).
pub const MAX_HEADER_BYTES: u64 = 64 << 20;
/// The most metadata values (array elements count one each) a header may hold. A 256k-token
/// vocabulary with its scores, types and merges holds about 1.3 million.
pub const MAX_VALUES: u64 = 1 << 22;
/// How deep arrays of arrays may nest.
pub const MAX_DEPTH: usize = 8;

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
) -> Result<[u8; 32], TokenizerError> {
    let mut file = std::fs::File::open(path).map_err(|e| TokenizerError::io("open", path, e))?;
    let total = file
        .metadata()
        .map_err(|e| TokenizerError::io("read the size of", path, e))?
        .len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| TokenizerError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        on_progress(done, total);
    }
    Ok(hasher.finalize().into())
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    /// The GGUF name of the value's type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F32(_) => "f32",
            Value::F64(_) => "f64",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(_) => "array",
        }
    }

    /// An integer of any width, if it is one and not negative.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
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

    /// An integer of any width, if it is one and fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
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
}

/// What a GGUF header holds besides the tensor descriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    pub version: u32,
    pub tensor_count: u64,
    pub metadata: Metadata,
}

/// Why bytes are not a GGUF header this reader accepts. Positions are byte offsets in the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("it does not start with the GGUF magic (its first bytes are {0:02x?}); it is not a GGUF file")]
    NotGguf([u8; 4]),
    #[error("GGUF version {0} is not supported (versions 1, 2 and 3 are)")]
    Version(u32),
    #[error("the file ends at byte {at}, inside its header: it is truncated; download it again")]
    Truncated { at: u64 },
    #[error(
        "{what} at byte {at} claims {claimed} bytes, more than the {remaining} bytes left of the \
         file's header: the file is corrupt or truncated"
    )]
    Length {
        what: &'static str,
        at: u64,
        claimed: u64,
        remaining: u64,
    },
    #[error("the header is larger than {} MiB; mycel refuses such files", MAX_HEADER_BYTES >> 20)]
    HeaderTooLarge,
    #[error("the header holds more than {MAX_VALUES} metadata values; mycel refuses such files")]
    TooManyValues,
    #[error("arrays nest more than {MAX_DEPTH} deep at byte {at}")]
    TooDeep { at: u64 },
    #[error("unknown value type {code} at byte {at}")]
    ValueType { code: u32, at: u64 },
    #[error("a bool at byte {at} is {value}, not 0 or 1")]
    Bool { value: u8, at: u64 },
    #[error("the metadata key `{0}` is given twice")]
    DuplicateKey(String),
    #[error("reading failed at byte {at}: {error}")]
    Io { at: u64, error: std::io::Error },
}

/// Reads the header of a GGUF file of `file_len` bytes from `reader` (positioned at its start).
pub fn read_header(reader: impl Read, file_len: u64) -> Result<GgufHeader, GgufError> {
    let mut r = HeaderReader {
        inner: reader,
        at: 0,
        file_len,
        values: 0,
        short_lengths: false,
    };
    let magic: [u8; 4] = r.bytes()?;
    if &magic != b"GGUF" {
        return Err(GgufError::NotGguf(magic));
    }
    let version = u32::from_le_bytes(r.bytes()?);
    match version {
        1 => r.short_lengths = true,
        2 | 3 => {}
        other => return Err(GgufError::Version(other)),
    }
    let tensor_count = r.length()?;
    let kv_count = r.length()?;
    // Each key/value takes at least a key length, a type and one byte of value.
    r.claim("the metadata count", kv_count, r.length_size() + 4 + 1)?;
    let mut metadata = BTreeMap::new();
    for _ in 0..kv_count {
        let key = r.string("a metadata key")?;
        let code = u32::from_le_bytes(r.bytes()?);
        let value = r.value(code, 0)?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(GgufError::DuplicateKey(key));
        }
    }
    Ok(GgufHeader {
        version,
        tensor_count,
        metadata: Metadata(metadata),
    })
}

/// Reads the header of the GGUF file at `path`.
pub fn read_header_file(path: &Path) -> Result<GgufHeader, TokenizerError> {
    let file = std::fs::File::open(path).map_err(|e| TokenizerError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| TokenizerError::io("read the size of", path, e))?
        .len();
    read_header(std::io::BufReader::new(file), len).map_err(|error| TokenizerError::Gguf {
        path: path.to_path_buf(),
        error,
    })
}

struct HeaderReader<R> {
    inner: R,
    /// Bytes read so far.
    at: u64,
    file_len: u64,
    /// Values read so far (each array element counts).
    values: u64,
    /// Version 1 writes lengths and counts as `u32`.
    short_lengths: bool,
}

impl<R: Read> HeaderReader<R> {
    /// Bytes of the file the header may still use.
    fn remaining(&self) -> u64 {
        self.file_len.min(MAX_HEADER_BYTES).saturating_sub(self.at)
    }

    /// Refuses `count` items of at least `min_size` bytes each unless they fit in what is left.
    fn claim(&self, what: &'static str, count: u64, min_size: u64) -> Result<(), GgufError> {
        let claimed = count.saturating_mul(min_size);
        if claimed <= self.remaining() {
            return Ok(());
        }
        if self.file_len > MAX_HEADER_BYTES && claimed <= self.file_len.saturating_sub(self.at) {
            return Err(GgufError::HeaderTooLarge);
        }
        Err(GgufError::Length {
            what,
            at: self.at,
            claimed,
            remaining: self.remaining(),
        })
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        if (N as u64) > self.remaining() {
            return Err(match self.file_len > MAX_HEADER_BYTES {
                true => GgufError::HeaderTooLarge,
                false => GgufError::Truncated { at: self.file_len },
            });
        }
        let mut buf = [0u8; N];
        self.fill(&mut buf)?;
        Ok(buf)
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), GgufError> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.at += buf.len() as u64;
                Ok(())
            }
            // The file is shorter than its length said (it changed while being read).
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(GgufError::Truncated { at: self.at })
            }
            Err(error) => Err(GgufError::Io { at: self.at, error }),
        }
    }

    fn length_size(&self) -> u64 {
        if self.short_lengths {
            4
        } else {
            8
        }
    }

    fn length(&mut self) -> Result<u64, GgufError> {
        if self.short_lengths {
            Ok(u32::from_le_bytes(self.bytes()?).into())
        } else {
            Ok(u64::from_le_bytes(self.bytes()?))
        }
    }

    fn string(&mut self, what: &'static str) -> Result<String, GgufError> {
        let len = self.length()?;
        self.claim(what, len, 1)?;
        // Bounded by `claim`: at most what is left of the header.
        let mut bytes = vec![0u8; len as usize];
        self.fill(&mut bytes)?;
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The least number of bytes a value of type `code` takes, or `None` for an unknown type.
    fn min_size(&self, code: u32) -> Option<u64> {
        Some(match code {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => self.length_size(),
            9 => 4 + self.length_size(),
            _ => return None,
        })
    }

    fn value(&mut self, code: u32, depth: usize) -> Result<Value, GgufError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(GgufError::TooManyValues);
        }
        Ok(match code {
            0 => Value::U8(u8::from_le_bytes(self.bytes()?)),
            1 => Value::I8(i8::from_le_bytes(self.bytes()?)),
            2 => Value::U16(u16::from_le_bytes(self.bytes()?)),
            3 => Value::I16(i16::from_le_bytes(self.bytes()?)),
            4 => Value::U32(u32::from_le_bytes(self.bytes()?)),
            5 => Value::I32(i32::from_le_bytes(self.bytes()?)),
            6 => Value::F32(f32::from_le_bytes(self.bytes()?)),
            7 => match u8::from_le_bytes(self.bytes()?) {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                value => {
                    return Err(GgufError::Bool {
                        value,
                        at: self.at - 1,
                    })
                }
            },
            8 => Value::String(self.string("a string")?),
            9 => self.array(depth)?,
            10 => Value::U64(u64::from_le_bytes(self.bytes()?)),
            11 => Value::I64(i64::from_le_bytes(self.bytes()?)),
            12 => Value::F64(f64::from_le_bytes(self.bytes()?)),
            code => {
                return Err(GgufError::ValueType {
                    code,
                    at: self.at - 4,
                })
            }
        })
    }

    fn array(&mut self, depth: usize) -> Result<Value, GgufError> {
        if depth >= MAX_DEPTH {
            return Err(GgufError::TooDeep { at: self.at });
        }
        let code = u32::from_le_bytes(self.bytes()?);
        let min_size = self.min_size(code).ok_or(GgufError::ValueType {
            code,
            at: self.at - 4,
        })?;
        let len = self.length()?;
        self.claim("an array", len, min_size)?;
        let mut items = Vec::new();
        for _ in 0..len {
            items.push(self.value(code, depth + 1)?);
        }
        Ok(Value::Array(items))
    }
}

/// A GGUF file's metadata: keys in byte order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata(BTreeMap<String, Value>);

impl Metadata {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Typed access to `key`, with errors that name it.
    pub fn field<'k>(&self, key: &'k str) -> Field<'_, 'k> {
        Field::new(key, self.0.get(key))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, Value)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(items: I) -> Self {
        Self(items.into_iter().collect())
    }
}

/// One metadata key and its value, if present, read as the type a caller needs. Every refusal is
/// [`TokenizerError::MissingMetadata`] or [`TokenizerError::BadMetadata`] naming the key.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a, 'k> {
    key: &'k str,
    value: Option<&'a Value>,
}

impl<'a, 'k> Field<'a, 'k> {
    pub fn new(key: &'k str, value: Option<&'a Value>) -> Self {
        Self { key, value }
    }

    pub fn value(self) -> Option<&'a Value> {
        self.value
    }

    fn require(self) -> Result<&'a Value, TokenizerError> {
        self.value.ok_or_else(|| TokenizerError::MissingMetadata {
            key: self.key.into(),
        })
    }

    fn bad(self, reason: String) -> TokenizerError {
        TokenizerError::BadMetadata {
            key: self.key.into(),
            reason,
        }
    }

    fn expected(self, what: &str, found: &Value) -> TokenizerError {
        self.bad(format!("expected {what}, found {}", found.type_name()))
    }

    pub fn string(self) -> Result<&'a str, TokenizerError> {
        match self.require()? {
            Value::String(s) => Ok(s),
            other => Err(self.expected("a string", other)),
        }
    }

    pub fn opt_string(self) -> Result<Option<&'a str>, TokenizerError> {
        self.optional(Self::string)
    }

    pub fn u64(self) -> Result<u64, TokenizerError> {
        self.require()?
            .as_u64()
            .ok_or_else(|| self.bad("expected a non-negative integer".into()))
    }

    pub fn opt_u64(self) -> Result<Option<u64>, TokenizerError> {
        self.optional(Self::u64)
    }

    pub fn opt_u32(self) -> Result<Option<u32>, TokenizerError> {
        match self.opt_u64()? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| self.bad(format!("{v} does not fit in 32 bits"))),
        }
    }

    pub fn opt_bool(self) -> Result<Option<bool>, TokenizerError> {
        self.optional(|field| match field.require()? {
            Value::Bool(b) => Ok(*b),
            other => Err(field.expected("a bool", other)),
        })
    }

    pub fn opt_f32(self) -> Result<Option<f32>, TokenizerError> {
        self.optional(|field| match field.require()? {
            Value::F32(v) => Ok(*v),
            Value::F64(v) => Ok(*v as f32),
            other => Err(field.expected("a float", other)),
        })
    }

    pub fn array(self) -> Result<&'a [Value], TokenizerError> {
        match self.require()? {
            Value::Array(items) => Ok(items),
            other => Err(self.expected("an array", other)),
        }
    }

    pub fn opt_array(self) -> Result<Option<&'a [Value]>, TokenizerError> {
        self.optional(Self::array)
    }

    pub fn string_array(self) -> Result<Vec<&'a str>, TokenizerError> {
        self.array()?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                _ => Err(self.bad(format!("element {i} is not a string"))),
            })
            .collect()
    }

    fn optional<T>(
        self,
        read: impl FnOnce(Self) -> Result<T, TokenizerError>,
    ) -> Result<Option<T>, TokenizerError> {
        match self.value {
            None => Ok(None),
            Some(_) => read(self).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds GGUF v3 bytes: a header with these key/values, then `tail` (tensor data stand-in).
    struct Writer(Vec<u8>);

    impl Writer {
        fn new(version: u32, tensors: u64, kvs: u64) -> Self {
            let mut w = Self(b"GGUF".to_vec());
            w.u32(version);
            w.u64(tensors);
            w.u64(kvs);
            w
        }
        fn u32(&mut self, v: u32) -> &mut Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn u64(&mut self, v: u64) -> &mut Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn raw(&mut self, bytes: &[u8]) -> &mut Self {
            self.0.extend_from_slice(bytes);
            self
        }
        fn string(&mut self, s: &str) -> &mut Self {
            self.u64(s.len() as u64).raw(s.as_bytes())
        }
        fn key(&mut self, key: &str, code: u32) -> &mut Self {
            self.string(key).u32(code)
        }
    }

    fn read(bytes: &[u8]) -> Result<GgufHeader, GgufError> {
        read_header(bytes, bytes.len() as u64)
    }

    /// One key of every value type, an array of strings and an array of arrays.
    fn every_type() -> Vec<u8> {
        let mut w = Writer::new(3, 7, 15);
        w.key("u8", 0).raw(&[200]);
        w.key("i8", 1).raw(&[0xff]);
        w.key("u16", 2).raw(&60000u16.to_le_bytes());
        w.key("i16", 3).raw(&(-2i16).to_le_bytes());
        w.key("u32", 4).u32(4_000_000_000);
        w.key("i32", 5).raw(&(-3i32).to_le_bytes());
        w.key("f32", 6).raw(&1.5f32.to_le_bytes());
        w.key("bool", 7).raw(&[1]);
        w.key("string", 8).string("héllo\0\0");
        w.key("u64", 10).u64(u64::MAX);
        w.key("i64", 11).raw(&i64::MIN.to_le_bytes());
        w.key("f64", 12).raw(&(-0.25f64).to_le_bytes());
        w.key("strings", 9).u32(8).u64(2).string("a").string("");
        w.key("nested", 9).u32(9).u64(2);
        w.u32(4).u64(1).u32(7).u32(0).u64(0);
        w.key("bad utf8", 8).u64(2).raw(&[0xff, b'x']);
        w.raw(b"tensor infos and data follow");
        w.0
    }

    #[test]
    fn every_value_type_reads() {
        let header = read(&every_type()).expect("header");
        assert_eq!(header.version, 3);
        assert_eq!(header.tensor_count, 7);
        let md = &header.metadata;
        assert_eq!(md.len(), 15);
        assert_eq!(md.get("u8"), Some(&Value::U8(200)));
        assert_eq!(md.get("i8"), Some(&Value::I8(-1)));
        assert_eq!(md.get("u16"), Some(&Value::U16(60000)));
        assert_eq!(md.get("i16"), Some(&Value::I16(-2)));
        assert_eq!(md.get("u32"), Some(&Value::U32(4_000_000_000)));
        assert_eq!(md.get("i32"), Some(&Value::I32(-3)));
        assert_eq!(md.get("f32"), Some(&Value::F32(1.5)));
        assert_eq!(md.get("bool"), Some(&Value::Bool(true)));
        assert_eq!(md.get("string"), Some(&Value::String("héllo".into())));
        assert_eq!(md.get("u64"), Some(&Value::U64(u64::MAX)));
        assert_eq!(md.get("i64"), Some(&Value::I64(i64::MIN)));
        assert_eq!(md.get("f64"), Some(&Value::F64(-0.25)));
        assert_eq!(md.field("strings").string_array().unwrap(), vec!["a", ""]);
        assert_eq!(
            md.get("nested"),
            Some(&Value::Array(vec![
                Value::Array(vec![Value::U32(7)]),
                Value::Array(vec![]),
            ]))
        );
        assert_eq!(md.get("bad utf8"), Some(&Value::String("\u{fffd}x".into())));
    }

    #[test]
    fn version_one_uses_32_bit_lengths() {
        let mut w = Writer(b"GGUF".to_vec());
        w.u32(1).u32(0).u32(1);
        w.u32(3).raw(b"key").u32(8).u32(2).raw(b"ok");
        let header = read(&w.0).expect("v1 header");
        assert_eq!(header.metadata.field("key").string().unwrap(), "ok");
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let bytes = every_type();
        let header_len = bytes.len() - b"tensor infos and data follow".len();
        for cut in 0..header_len {
            let error = read(&bytes[..cut]).expect_err("a truncated header");
            assert!(
                matches!(
                    error,
                    GgufError::Truncated { .. } | GgufError::Length { .. } | GgufError::NotGguf(_)
                ),
                "cut at {cut}: {error}"
            );
        }
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        // Flip every byte of the header in turn: a refusal or another header, never a panic or
        // an allocation the file cannot back.
        let bytes = every_type();
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[i] ^= flip;
                let _ = read(&corrupt);
            }
        }
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let error = read(b"GGML\x03\0\0\0").unwrap_err();
        assert!(matches!(error, GgufError::NotGguf(_)), "{error}");
        assert!(error.to_string().contains("not a GGUF file"));

        let error = read(&Writer::new(4, 0, 0).0).unwrap_err();
        assert!(matches!(error, GgufError::Version(4)), "{error}");

        // A string that claims more bytes than the file has: refused before allocating.
        let mut w = Writer::new(3, 0, 1);
        w.u64(u64::MAX / 2);
        let error = read(&w.0).unwrap_err();
        assert!(matches!(error, GgufError::Length { .. }), "{error}");
        assert!(error.to_string().contains("claims"), "{error}");

        // An array of 2^40 u64s in a tiny file.
        let mut w = Writer::new(3, 0, 1);
        w.key("a", 9).u32(10).u64(1 << 40);
        assert!(matches!(read(&w.0).unwrap_err(), GgufError::Length { .. }));

        // A metadata count the file cannot hold.
        let error = read(&Writer::new(3, 0, u64::MAX).0).unwrap_err();
        assert!(matches!(error, GgufError::Length { .. }), "{error}");

        let mut w = Writer::new(3, 0, 1);
        w.key("t", 13).u32(0);
        assert!(matches!(
            read(&w.0).unwrap_err(),
            GgufError::ValueType { code: 13, .. }
        ));

        let mut w = Writer::new(3, 0, 1);
        w.key("b", 7).raw(&[2]);
        assert!(matches!(
            read(&w.0).unwrap_err(),
            GgufError::Bool { value: 2, .. }
        ));

        let mut w = Writer::new(3, 0, 2);
        w.key("k", 4).u32(1).key("k", 4).u32(2);
        assert!(matches!(read(&w.0).unwrap_err(), GgufError::DuplicateKey(k) if k == "k"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut w = Writer::new(3, 0, 1);
        w.key("deep", 9);
        for _ in 0..MAX_DEPTH {
            w.u32(9).u64(1);
        }
        w.u32(4).u64(0);
        let error = read(&w.0).unwrap_err();
        assert!(matches!(error, GgufError::TooDeep { .. }), "{error}");
    }

    #[test]
    fn too_many_values_are_refused() {
        let n = MAX_VALUES;
        let mut w = Writer::new(3, 0, 1);
        w.key("bytes", 9).u32(0).u64(n);
        w.0.resize(w.0.len() + n as usize, 0);
        let error = read(&w.0).unwrap_err();
        assert!(matches!(error, GgufError::TooManyValues), "{error}");
    }

    #[test]
    fn a_header_past_the_cap_is_refused() {
        let len = MAX_HEADER_BYTES + 1;
        let mut w = Writer::new(3, 0, 1);
        w.key("s", 8).u64(len);
        // The file is long enough for the string; the header cap is what refuses it.
        let error = read_header(
            std::io::Read::chain(&w.0[..], std::io::repeat(b'a')),
            len + w.0.len() as u64,
        )
        .unwrap_err();
        assert!(matches!(error, GgufError::HeaderTooLarge), "{error}");
    }

    #[test]
    fn fields_name_the_key_in_errors() {
        let header = read(&every_type()).unwrap();
        let md = &header.metadata;
        assert_eq!(md.field("u32").u64().unwrap(), 4_000_000_000);
        assert_eq!(md.field("i8").u64().ok(), None);
        assert_eq!(md.field("missing").opt_u64().unwrap(), None);
        let error = md.field("string").u64().unwrap_err();
        assert!(error.to_string().contains("`string`"), "{error}");
        let error = md.field("missing").string().unwrap_err();
        assert!(matches!(error, TokenizerError::MissingMetadata { .. }));
        assert_eq!(md.field("f64").opt_f32().unwrap(), Some(-0.25));
        assert_eq!(md.field("bool").opt_bool().unwrap(), Some(true));
        assert!(md.field("u64").opt_u32().is_err());
    }
}
