//! The mempool's journal: every transaction the mempool accepts is appended to a file before the
//! node answers, so a node that is stopped or killed (`kill -9` included) before its
//! transactions are in a block has them again when it restarts.
//!
//! Format: records of `[length: u32, big-endian][the transaction's canonical encoding]`, in the
//! order they were accepted. A crash in the middle of a write leaves a torn last record, which is
//! ignored. On start the node submits every record again through the mempool's full checks
//! against the finalized state (what was finalized meanwhile is refused as stale and dropped), then
//! rewrites the file with what the mempool holds. While it runs, the file is rewritten the same way
//! whenever it holds more than twice what the mempool does (and at least [`COMPACT_MIN_BYTES`]).
//!
//! Durability: each record is one `write` to the file, which the kernel keeps across a crash of
//! the process; it is not fsynced, so a power loss may lose the last transactions accepted (the
//! finalized chain itself is fsynced, see crate::engine::store).

use mycel_types::SignedTx;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

/// The journal is rewritten only once it is at least this large.
pub(crate) const COMPACT_MIN_BYTES: u64 = 1 << 20;
/// The longest record read back: anything longer is a corrupt length, and the rest is ignored.
const MAX_RECORD_BYTES: usize = 1 << 20;

pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    /// Bytes in the file.
    bytes: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path`; returns it and the transactions it holds, in the
    /// order they were accepted. Records that do not decode are skipped; a torn tail is dropped.
    pub(crate) fn open(path: &Path) -> io::Result<(Journal, Vec<SignedTx>)> {
        let mut raw = Vec::new();
        match File::open(path) {
            Ok(mut file) => {
                file.read_to_end(&mut raw)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let txs = read_records(&raw);
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let bytes = file.metadata()?.len();
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                bytes,
            },
            txs,
        ))
    }

    /// Appends `tx`'s record with one write.
    pub(crate) fn append(&mut self, encoded: &[u8]) -> io::Result<()> {
        let record = record(encoded);
        self.file.write_all(&record)?;
        self.bytes += record.len() as u64;
        Ok(())
    }

    /// Bytes in the file.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Replaces the file with the records of `txs` (written to a temporary file, synced, then
    /// renamed over the journal, so a crash leaves the old or the new one).
    pub(crate) fn rewrite<'a>(
        &mut self,
        txs: impl Iterator<Item = &'a SignedTx>,
    ) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        // Streamed through a small buffer: a full pool is not copied in memory once more.
        let mut file = io::BufWriter::with_capacity(64 * 1024, File::create(&tmp)?);
        let mut bytes = 0u64;
        for tx in txs {
            let encoded = tx.encode();
            file.write_all(&(encoded.len() as u32).to_be_bytes())?;
            file.write_all(&encoded)?;
            bytes += 4 + encoded.len() as u64;
        }
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.bytes = bytes;
        Ok(())
    }
}

fn record(encoded: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(4 + encoded.len());
    record.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    record.extend_from_slice(encoded);
    record
}

/// The transactions of the records in `raw`, up to a torn or corrupt tail.
fn read_records(raw: &[u8]) -> Vec<SignedTx> {
    let mut txs = Vec::new();
    let mut rest = raw;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_RECORD_BYTES || rest.len() < 4 + len {
            break;
        }
        if let Ok(tx) = SignedTx::decode(&rest[4..4 + len]) {
            txs.push(tx);
        }
        rest = &rest[4 + len..];
    }
    txs
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, U256};
    use mycel_types::{keys::dev_signer, Transfer, TxKind};

    fn transfer(nonce: u64) -> SignedTx {
        let signer = dev_signer(3).expect("dev key");
        let kind = TxKind::Transfer(Transfer {
            from: signer.address(),
            to: Address::repeat_byte(7),
            token: Address::ZERO,
            amount: U256::from(nonce + 1),
            memo: Default::default(),
            nonce,
            fee: U256::from(10_000u64),
        });
        SignedTx::sign(kind, 1337, &signer).expect("sign")
    }

    #[test]
    fn records_come_back_in_order_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mempool.journal");
        let txs: Vec<SignedTx> = (0..3).map(transfer).collect();
        {
            let (mut journal, restored) = Journal::open(&path).expect("open");
            assert!(restored.is_empty());
            for tx in &txs {
                journal.append(&tx.encode()).expect("append");
            }
        }
        // A crash in the middle of the fourth record's write.
        let torn = record(&transfer(3).encode());
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&torn[..torn.len() / 2]).expect("write");
        drop(file);
        let (journal, restored) = Journal::open(&path).expect("reopen");
        assert_eq!(restored, txs);
        assert_eq!(journal.bytes(), fs::metadata(&path).expect("meta").len());
    }

    #[test]
    fn a_rewrite_keeps_exactly_the_given_transactions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mempool.journal");
        let (mut journal, _) = Journal::open(&path).expect("open");
        for nonce in 0..5 {
            journal.append(&transfer(nonce).encode()).expect("append");
        }
        let live: Vec<SignedTx> = (3..5).map(transfer).collect();
        journal.rewrite(live.iter()).expect("rewrite");
        journal
            .append(&transfer(5).encode())
            .expect("append after rewrite");
        let (_, restored) = Journal::open(&path).expect("reopen");
        let expected: Vec<SignedTx> = (3..6).map(transfer).collect();
        assert_eq!(restored, expected);
    }

    #[test]
    fn garbage_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mempool.journal");
        let mut bytes = record(b"not a transaction");
        bytes.extend_from_slice(&record(&transfer(0).encode()));
        // A length no record can have: the rest is ignored.
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(&record(&transfer(1).encode()));
        fs::write(&path, bytes).expect("write");
        let (_, restored) = Journal::open(&path).expect("open");
        assert_eq!(restored, vec![transfer(0)]);
    }
}
