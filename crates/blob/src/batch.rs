//! Batches: many small items in one blob, so a small file does not cost a whole blob's metadata
//! (each blob carries 2n sliver roots and n² leaves per segment, whatever its size).
//!
//! A batch blob is an index followed by its items' bytes, one after another in index order:
//!
//! ```text
//! "MYCBATCH"  u32 count  { u16 name_len  name (UTF-8)  u64 length } × count  item bytes …
//! ```
//!
//! (integers big-endian). Names are 1 to [`MAX_NAME_BYTES`] bytes, unique, without control
//! characters or `/`; 1 to [`MAX_BATCH_ITEMS`] items. The chain registers the batch with one end
//! epoch per item, in index order (`RegisterBatch`), so item k of the index is item k on chain.
//! Reading an item decodes its whole batch (every read re-encodes the blob it read to its id, so
//! an inconsistent writer is caught) and keeps the item's bytes only.

use crate::publish::Sink;
use mycel_types::storage::MAX_BATCH_ITEMS;

/// The first bytes of every batch.
pub const MAGIC: &[u8; 8] = b"MYCBATCH";
/// The longest item name.
pub const MAX_NAME_BYTES: usize = 255;
/// The largest index: every item at the longest name.
pub const MAX_INDEX_BYTES: usize = 12 + MAX_BATCH_ITEMS * (2 + MAX_NAME_BYTES + 8);

/// An item of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub length: u64,
}

/// Why bytes are not a batch index, or an index cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("not a batch (it does not start with the batch index)")]
    NotABatch,
    #[error("a batch holds 1 to {MAX_BATCH_ITEMS} items, not {0}")]
    Count(usize),
    #[error("item name `{0}`: names are 1 to {MAX_NAME_BYTES} bytes of UTF-8 without `/` or control characters")]
    BadName(String),
    #[error("two items are named `{0}`")]
    Duplicate(String),
    #[error("the batch's items add up to more than its length")]
    TooLong,
}

/// A batch's index: its items in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub entries: Vec<Entry>,
}

fn check_name(name: &str) -> Result<(), BatchError> {
    if name.is_empty()
        || name.len() > MAX_NAME_BYTES
        || name.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(BatchError::BadName(name.chars().take(80).collect()));
    }
    Ok(())
}

impl Index {
    /// An index of `entries`, checked.
    pub fn new(entries: Vec<Entry>) -> Result<Index, BatchError> {
        if entries.is_empty() || entries.len() > MAX_BATCH_ITEMS {
            return Err(BatchError::Count(entries.len()));
        }
        let mut names = std::collections::BTreeSet::new();
        for e in &entries {
            check_name(&e.name)?;
            if !names.insert(e.name.as_str()) {
                return Err(BatchError::Duplicate(e.name.clone()));
            }
        }
        Ok(Index { entries })
    }

    /// The index's bytes (what a batch blob starts with).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.entries.len() as u32).to_be_bytes());
        for e in &self.entries {
            out.extend_from_slice(&(e.name.len() as u16).to_be_bytes());
            out.extend_from_slice(e.name.as_bytes());
            out.extend_from_slice(&e.length.to_be_bytes());
        }
        out
    }

    pub fn encoded_len(&self) -> usize {
        12 + self
            .entries
            .iter()
            .map(|e| 10 + e.name.len())
            .sum::<usize>()
    }

    /// The length of the whole batch blob: index and items.
    pub fn blob_len(&self) -> u64 {
        self.encoded_len() as u64 + self.entries.iter().map(|e| e.length).sum::<u64>()
    }

    /// Reads an index from the start of a batch: `Ok(None)` if `bytes` end before it does.
    pub fn parse(bytes: &[u8]) -> Result<Option<Index>, BatchError> {
        let Some(magic) = bytes.get(..8) else {
            return Ok(None);
        };
        if magic != MAGIC {
            return Err(BatchError::NotABatch);
        }
        let Some(count) = bytes.get(8..12) else {
            return Ok(None);
        };
        let count = u32::from_be_bytes(count.try_into().expect("4 bytes")) as usize;
        if count == 0 || count > MAX_BATCH_ITEMS {
            return Err(BatchError::Count(count));
        }
        let mut at = 12;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let Some(len) = bytes.get(at..at + 2) else {
                return Ok(None);
            };
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let Some(entry) = bytes.get(at + 2..at + 2 + len + 8) else {
                return Ok(None);
            };
            let name = std::str::from_utf8(&entry[..len])
                .map_err(|_| BatchError::BadName(String::from_utf8_lossy(&entry[..len]).into()))?;
            let length = u64::from_be_bytes(entry[len..].try_into().expect("8 bytes"));
            entries.push(Entry {
                name: name.to_string(),
                length,
            });
            at += 2 + len + 8;
        }
        Index::new(entries).map(Some)
    }

    /// Where item `name` is: its position in the index and its byte range in the blob.
    pub fn find(&self, name: &str) -> Option<(usize, std::ops::Range<u64>)> {
        let mut offset = self.encoded_len() as u64;
        for (k, e) in self.entries.iter().enumerate() {
            if e.name == name {
                return Some((k, offset..offset + e.length));
            }
            offset += e.length;
        }
        None
    }
}

/// What an [`ItemSink`] found in the batch it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The index has not been read whole yet.
    Reading,
    /// Item `position` of the index, at `range` of the blob.
    Item {
        index: Index,
        position: usize,
        range: std::ops::Range<u64>,
    },
    /// The index was read and names no such item (or none was asked for: a listing).
    Missing { index: Index },
    /// The blob does not start with a batch index.
    Bad(BatchError),
}

/// Told what the index says once it is read; an `Err` refuses the item (nothing is passed on).
pub type OnIndex<'a> = Box<dyn FnMut(&Found) -> Result<(), String> + Send + 'a>;

/// A sink that reads a batch's index as the blob streams through, then passes on one item's bytes
/// only. The item's last bytes are held until [`ItemSink::finish`], which the caller makes after
/// the whole-blob check, so an inconsistent batch never delivers a whole item.
pub struct ItemSink<'a, S> {
    inner: &'a mut S,
    name: Option<String>,
    blob_len: u64,
    /// Bytes of the blob seen so far.
    at: u64,
    head: Vec<u8>,
    held: Option<Vec<u8>>,
    pub found: Found,
    on_index: OnIndex<'a>,
    pub refused: Option<String>,
}

impl<'a, S: Sink> ItemSink<'a, S> {
    /// Passes item `name` (of a batch of `blob_len` bytes) to `inner` unless `on_index` refuses;
    /// `None` reads the index only.
    pub fn new(inner: &'a mut S, name: Option<&str>, blob_len: u64, on_index: OnIndex<'a>) -> Self {
        ItemSink {
            inner,
            name: name.map(str::to_string),
            blob_len,
            at: 0,
            head: Vec::new(),
            held: None,
            found: Found::Reading,
            on_index,
            refused: None,
        }
    }

    /// After the read succeeded: the item's last bytes.
    pub async fn finish(&mut self) -> std::io::Result<()> {
        if let Found::Reading = self.found {
            self.index_read(Index::parse(&self.head).and_then(|i| i.ok_or(BatchError::NotABatch)));
        }
        match self.held.take() {
            Some(last) => self.inner.write(last).await,
            None => Ok(()),
        }
    }

    fn index_read(&mut self, index: Result<Index, BatchError>) {
        self.head = Vec::new();
        self.found = match index {
            Err(e) => Found::Bad(e),
            Ok(index) if index.blob_len() > self.blob_len => Found::Bad(BatchError::TooLong),
            Ok(index) => match self.name.as_deref().and_then(|n| index.find(n)) {
                Some((position, range)) => Found::Item {
                    index,
                    position,
                    range,
                },
                None => Found::Missing { index },
            },
        };
        if let Err(why) = (self.on_index)(&self.found) {
            self.refused = Some(why);
        }
    }
}

impl<S: Sink> Sink for ItemSink<'_, S> {
    async fn write(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        let start = self.at;
        self.at += bytes.len() as u64;
        if let Found::Reading = self.found {
            let want = (MAX_INDEX_BYTES - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..want]);
            match Index::parse(&self.head) {
                Ok(None) if self.head.len() < MAX_INDEX_BYTES => return Ok(()),
                Ok(None) => self.index_read(Err(BatchError::NotABatch)),
                other => self.index_read(other.map(|i| i.expect("parsed"))),
            }
        }
        if self.refused.is_some() {
            // Nothing of this blob is wanted: stop reading it.
            return Err(std::io::Error::other("the item was refused"));
        }
        if let Found::Item { range, .. } = &self.found {
            let from = range.start.clamp(start, self.at);
            let to = range.end.clamp(start, self.at);
            if from < to {
                let slice = bytes[(from - start) as usize..(to - start) as usize].to_vec();
                if let Some(previous) = self.held.replace(slice) {
                    self.inner.write(previous).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Vec<u8>);

    impl Sink for Collect {
        async fn write(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
            self.0.extend_from_slice(&bytes);
            Ok(())
        }
    }

    fn batch(items: &[(&str, &[u8])]) -> (Index, Vec<u8>) {
        let index = Index::new(
            items
                .iter()
                .map(|(n, b)| Entry {
                    name: n.to_string(),
                    length: b.len() as u64,
                })
                .collect(),
        )
        .unwrap();
        let mut blob = index.encode();
        for (_, b) in items {
            blob.extend_from_slice(b);
        }
        assert_eq!(blob.len() as u64, index.blob_len());
        (index, blob)
    }

    /// Streams `blob` through an item sink in `window`-byte writes.
    fn read(blob: &[u8], name: Option<&str>, window: usize) -> (Found, Option<String>, Vec<u8>) {
        let mut out = Collect(Vec::new());
        let mut sink = ItemSink::new(&mut out, name, blob.len() as u64, Box::new(|_| Ok(())));
        let result = futures::executor::block_on(async {
            for w in blob.chunks(window.max(1)) {
                sink.write(w.to_vec()).await?;
            }
            sink.finish().await
        });
        let (found, refused) = (sink.found.clone(), sink.refused.clone());
        drop(sink);
        assert!(result.is_ok() || refused.is_some());
        (found, refused, out.0)
    }

    #[test]
    fn items_come_back_whole_whatever_the_window_and_the_index_round_trips() {
        let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let items: [(&str, &[u8]); 4] = [
            ("a.txt", b"hello"),
            ("empty", b""),
            ("big.bin", &big),
            ("ünïcode name", b"x"),
        ];
        let (index, blob) = batch(&items);
        assert_eq!(Index::parse(&blob).unwrap().unwrap(), index);
        for window in [1, 7, 13, 4096, blob.len()] {
            for (name, bytes) in items {
                let (found, refused, out) = read(&blob, Some(name), window);
                assert!(refused.is_none());
                assert!(matches!(found, Found::Item { .. }), "{name}");
                assert_eq!(out, bytes, "{name} at window {window}");
            }
            let (found, _, out) = read(&blob, None, window);
            assert_eq!(
                found,
                Found::Missing {
                    index: index.clone()
                }
            );
            assert!(out.is_empty());
        }
        let (found, _, out) = read(&blob, Some("nope"), 64);
        assert!(matches!(found, Found::Missing { .. }));
        assert!(out.is_empty());
    }

    #[test]
    fn bad_indexes_and_names_are_refused() {
        assert_eq!(Index::new(vec![]), Err(BatchError::Count(0)));
        for bad in ["", "a/b", "tab\t", &"x".repeat(256)] {
            let e = Index::new(vec![Entry {
                name: bad.into(),
                length: 1,
            }]);
            assert!(matches!(e, Err(BatchError::BadName(_))), "{bad:?}");
        }
        let twice = vec![
            Entry {
                name: "a".into(),
                length: 1,
            };
            2
        ];
        assert_eq!(Index::new(twice), Err(BatchError::Duplicate("a".into())));
        assert_eq!(Index::parse(b"NOTBATCH...."), Err(BatchError::NotABatch));
        assert_eq!(Index::parse(b"MYCB"), Ok(None));
        let mut zero = MAGIC.to_vec();
        zero.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(Index::parse(&zero), Err(BatchError::Count(0)));
        // An index claiming more bytes than the blob has, and a blob too short for any index.
        let (_, mut blob) = batch(&[("a", b"0123456789")]);
        blob.truncate(blob.len() - 1);
        let (found, refused, out) = read(&blob, Some("a"), 5);
        assert_eq!(found, Found::Bad(BatchError::TooLong));
        assert!(refused.is_none() && out.is_empty());
        let (found, _, _) = read(b"MYC", Some("a"), 5);
        assert_eq!(found, Found::Bad(BatchError::NotABatch));
    }
}
