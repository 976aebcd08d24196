//! A storage node's disk: one directory per blob under `DIR/blobs/`, holding the metadata, the
//! node's assignment (which sliver pair it holds), each sliver as it arrives (`*.partial`), and
//! once checked, the sliver and its leaves.
//!
//! A sliver becomes visible only by an atomic rename after its check, so a crash leaves either
//! a partial upload (resumed or dropped) or a checked sliver, never a half-written one.

use crate::{Axis, BlobError, Metadata, Sliver, SliverCheck};
use alloy_primitives::B256;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Which slivers this node holds of a blob, and for which committee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub committee: u64,
    pub position: usize,
    pub sliver: usize,
}

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("disk: {0}")]
    Io(#[from] io::Error),
    #[error("no metadata for blob {0} on this node yet")]
    NoMetadata(B256),
    #[error("{0}")]
    Blob(#[from] BlobError),
    #[error("segments {from}..{to} are outside the sliver's {segments}")]
    OutOfRange { from: u64, to: u64, segments: u64 },
    #[error("a body of {got} bytes is not a whole number of {part}-byte sliver parts")]
    NotWholeParts { got: usize, part: usize },
    #[error("the {0} sliver is not stored")]
    Missing(&'static str),
}

pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn open(dir: &Path) -> io::Result<Store> {
        let root = dir.join("blobs");
        fs::create_dir_all(&root)?;
        Ok(Store { root })
    }

    fn dir(&self, id: &B256) -> PathBuf {
        self.root.join(format!("{id:x}"))
    }

    /// Every blob with a directory here.
    pub fn blob_ids(&self) -> io::Result<Vec<B256>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            if let Some(id) = entry?
                .file_name()
                .to_str()
                .and_then(|n| format!("0x{n}").parse().ok())
            {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Bytes stored under every blob.
    pub fn bytes(&self) -> io::Result<u64> {
        let mut total = 0;
        for id in self.blob_ids()? {
            for entry in fs::read_dir(self.dir(&id))? {
                total += entry?.metadata()?.len();
            }
        }
        Ok(total)
    }

    pub fn put_metadata(&self, metadata: &Metadata, assignment: Assignment) -> io::Result<()> {
        let dir = self.dir(&metadata.blob_id());
        fs::create_dir_all(&dir)?;
        write_atomic(
            &dir.join("assignment.json"),
            &serde_json::to_vec(&assignment).map_err(io::Error::other)?,
        )?;
        write_atomic(&dir.join("metadata"), &metadata.encode())
    }

    pub fn metadata(&self, id: &B256) -> Result<(Metadata, Assignment), StoreError> {
        let dir = self.dir(id);
        let bytes = fs::read(dir.join("metadata")).map_err(|_| StoreError::NoMetadata(*id))?;
        let metadata = Metadata::decode(&bytes)?;
        let assignment =
            fs::read(dir.join("assignment.json")).map_err(|_| StoreError::NoMetadata(*id))?;
        let assignment =
            serde_json::from_slice(&assignment).map_err(|e| StoreError::Io(io::Error::other(e)))?;
        Ok((metadata, assignment))
    }

    fn part_bytes(metadata: &Metadata, axis: Axis) -> Result<(usize, u64), StoreError> {
        let layout = metadata.layout()?;
        let part = match axis {
            Axis::Primary => layout.primary_segment_bytes(),
            Axis::Secondary => layout.secondary_segment_bytes(),
        };
        Ok((part, layout.segments))
    }

    /// Writes sliver parts `from..` of an upload in progress (a retry overwrites the same bytes).
    pub fn write_parts(
        &self,
        id: &B256,
        axis: Axis,
        from: u64,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let (metadata, _) = self.metadata(id)?;
        let (part, segments) = Self::part_bytes(&metadata, axis)?;
        if body.is_empty() || !body.len().is_multiple_of(part) {
            return Err(StoreError::NotWholeParts {
                got: body.len(),
                part,
            });
        }
        let to = from.saturating_add((body.len() / part) as u64);
        if to > segments {
            return Err(StoreError::OutOfRange { from, to, segments });
        }
        let mut file = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(self.dir(id).join(format!("{}.partial", axis.as_str())))?;
        file.seek(SeekFrom::Start(from * part as u64))?;
        file.write_all(body)?;
        Ok(())
    }

    /// Checks the uploaded sliver against the metadata and keeps it with its leaves.
    pub fn seal(&self, id: &B256, axis: Axis) -> Result<(), StoreError> {
        let (metadata, assignment) = self.metadata(id)?;
        let (part, segments) = Self::part_bytes(&metadata, axis)?;
        let dir = self.dir(id);
        let partial = dir.join(format!("{}.partial", axis.as_str()));
        let sliver = Sliver {
            axis,
            index: assignment.sliver,
        };
        let mut check = SliverCheck::new(&metadata, sliver)?;
        let mut file = fs::File::open(&partial).map_err(|_| StoreError::Missing(axis.as_str()))?;
        if file.metadata()?.len() != segments * part as u64 {
            return Err(StoreError::Blob(BlobError::WrongSliver(
                axis,
                assignment.sliver,
            )));
        }
        let mut buf = vec![0u8; part];
        for _ in 0..segments {
            file.read_exact(&mut buf)?;
            check.push(&buf)?;
        }
        let leaves = check.finish(&metadata)?;
        let flat: Vec<u8> = leaves.iter().flat_map(|l| l.0).collect();
        write_atomic(&dir.join(format!("{}.leaves", axis.as_str())), &flat)?;
        fs::File::open(&partial)?.sync_all()?;
        fs::rename(&partial, dir.join(axis.as_str()))?;
        Ok(())
    }

    pub fn has(&self, id: &B256, axis: Axis) -> bool {
        self.dir(id).join(axis.as_str()).is_file()
    }

    pub fn leaves(&self, id: &B256, axis: Axis) -> Result<Vec<u8>, StoreError> {
        fs::read(self.dir(id).join(format!("{}.leaves", axis.as_str())))
            .map_err(|_| StoreError::Missing(axis.as_str()))
    }

    /// Sliver parts `from..from + count` as stored.
    pub fn read_parts(
        &self,
        id: &B256,
        axis: Axis,
        from: u64,
        count: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let (metadata, _) = self.metadata(id)?;
        let (part, segments) = Self::part_bytes(&metadata, axis)?;
        let to = from.saturating_add(count);
        if count == 0 || to > segments {
            return Err(StoreError::OutOfRange { from, to, segments });
        }
        let mut file = fs::File::open(self.dir(id).join(axis.as_str()))
            .map_err(|_| StoreError::Missing(axis.as_str()))?;
        file.seek(SeekFrom::Start(from * part as u64))?;
        let mut out = vec![0u8; (count as usize) * part];
        file.read_exact(&mut out)?;
        Ok(out)
    }

    /// Drops everything stored for a blob.
    pub fn remove(&self, id: &B256) -> io::Result<()> {
        match fs::remove_dir_all(self.dir(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(tmp, path)
}
