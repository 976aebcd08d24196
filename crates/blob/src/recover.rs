//! Recovery: a node that lost its slivers of a blob (a wiped disk, a new machine) rebuilds them
//! from one symbol per segment of each of the other nodes, each symbol checked by a Merkle proof
//! in its sender's tree, so it moves about the size of what it lost, not the whole blob.
//!
//! To rebuild its secondary sliver t (column t of F), a node asks n − 2f holders of primary
//! slivers i for F[i][t] (their row extended, position t); to rebuild its primary sliver t (row t),
//! it asks n − f holders of secondary slivers j for F[t][j] (their column extended, position t).
//! F[i][j] is leaf `segment · n + t` of the sender's own tree. The rebuilt sliver is then sealed
//! like an uploaded one (checked against its root).
//!
//! Wire format of `GET /v1/slivers/{id}/recovery/{axis}/{target}?from=S&count=K` (the sender's
//! `axis` sliver helping `target`): for each segment S.., the symbol, then a `u8` count of proof
//! siblings, then the siblings (32 bytes each).

use crate::client::{NodeError, SliverClient};
use crate::merkle::Proof;
use crate::store::{Assignment, Store, StoreError};
use crate::{Axis, BlobError, Codec, Layout, Metadata};
use alloy_primitives::{Address, B256};
use mycel_types::api::BlobInfo;
use mycel_types::storage::sliver_of;

/// The most symbols (with proofs) in one recovery answer.
const MAX_SYMBOLS_PER_ANSWER: u64 = 256;

/// The symbols this node's `axis` sliver gives towards rebuilding sliver `target`, segments
/// `from..from + count`, with their proofs (the helper side).
pub fn helper_symbols(
    store: &Store,
    id: &B256,
    axis: Axis,
    target: usize,
    from: u64,
    count: u64,
) -> Result<Vec<u8>, StoreError> {
    let (metadata, _) = store.metadata(id)?;
    let layout = metadata.layout()?;
    if target >= layout.n() {
        return Err(StoreError::OutOfRange {
            from: target as u64,
            to: target as u64 + 1,
            segments: layout.n() as u64,
        });
    }
    let count = count
        .min(MAX_SYMBOLS_PER_ANSWER)
        .min(layout.segments.saturating_sub(from));
    let parts = store.read_parts(id, axis, from, count)?;
    let leaves: Vec<B256> = store
        .leaves(id, axis)?
        .chunks_exact(32)
        .map(B256::from_slice)
        .collect();
    let mut codec = Codec::new(layout)?;
    let part = parts.len() / count.max(1) as usize;
    let mut out = Vec::new();
    for (k, chunk) in parts.chunks_exact(part).enumerate() {
        let symbol = crate::recovery_symbol(&mut codec, axis, chunk, target)?;
        let leaf = (from as usize + k) * layout.n() + target;
        let proof = Proof::new(&leaves, leaf).ok_or(StoreError::Missing("leaves"))?;
        crate::challenge::write_symbol(&mut out, &symbol, &proof);
    }
    Ok(out)
}

/// Reads a helper's answer: one checked symbol per segment, or why not.
fn read_symbols(
    body: &[u8],
    layout: &Layout,
    root: B256,
    target: usize,
    from: u64,
    count: u64,
) -> Result<Vec<Vec<u8>>, String> {
    let mut at = 0;
    let symbols = (0..count)
        .map(|k| {
            let index = (from + k) * layout.nodes as u64 + target as u64;
            crate::challenge::read_symbol(body, &mut at, layout, index, root)
        })
        .collect::<Result<Vec<_>, String>>()?;
    if at != body.len() {
        return Err("the answer is longer than asked".into());
    }
    Ok(symbols)
}

/// What a recovery moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Bytes fetched from other nodes (symbols and proofs).
    pub fetched: u64,
    /// Bytes of the slivers rebuilt.
    pub rebuilt: u64,
}

/// Why a recovery failed.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Blob(#[from] BlobError),
    #[error("not enough nodes helped rebuild blob {blob_id}: {failures}")]
    NotEnoughHelpers { blob_id: B256, failures: String },
}

/// Rebuilds whatever this node lacks of blob `info` (its metadata, either sliver).
pub async fn recover_blob(
    store: &Store,
    me: Address,
    info: &BlobInfo,
) -> Result<Recovered, RecoverError> {
    let id = info.blob_id;
    let http = SliverClient::http();
    let others: Vec<(usize, SliverClient)> = info
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.address != me)
        .map(|(p, m)| (p, SliverClient::new(http.clone(), &m.endpoint)))
        .collect();
    let nodes = info.members.len() as u16;
    let position = info
        .members
        .iter()
        .position(|m| m.address == me)
        .expect("a member recovers");
    let mut failures = Vec::new();
    let metadata = match store.metadata(&id) {
        Ok((m, _)) => m,
        Err(_) => {
            let mut found = None;
            for (_, c) in &others {
                match c.metadata(&id).await {
                    Ok(m) if m.nodes == nodes && m.length == info.length => {
                        found = Some(m);
                        break;
                    }
                    Ok(_) => failures.push(format!(
                        "{}: metadata does not match the chain",
                        c.endpoint()
                    )),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            let metadata = found.ok_or_else(|| RecoverError::NotEnoughHelpers {
                blob_id: id,
                failures: failures.join("; "),
            })?;
            let assignment = Assignment {
                committee: info.committee,
                position,
                sliver: sliver_of(position, nodes, &id),
            };
            store
                .put_metadata(&metadata, assignment)
                .map_err(StoreError::Io)?;
            metadata
        }
    };
    let layout = metadata.layout()?;
    let target = sliver_of(position, nodes, &id);
    let mut recovered = Recovered::default();
    for axis in [Axis::Primary, Axis::Secondary] {
        if store.has(&id, axis) {
            continue;
        }
        rebuild(
            store,
            &metadata,
            layout,
            &others,
            nodes,
            axis,
            target,
            &mut recovered,
        )
        .await?;
        store.seal(&id, axis)?;
        recovered.rebuilt += match axis {
            Axis::Primary => layout.primary_sliver_bytes(),
            Axis::Secondary => layout.secondary_sliver_bytes(),
        };
    }
    Ok(recovered)
}

/// Rebuilds sliver `target` of `axis` window by window from the helpers' symbols.
#[allow(clippy::too_many_arguments)]
async fn rebuild(
    store: &Store,
    metadata: &Metadata,
    layout: Layout,
    others: &[(usize, SliverClient)],
    nodes: u16,
    axis: Axis,
    target: usize,
    recovered: &mut Recovered,
) -> Result<(), RecoverError> {
    let id = metadata.blob_id();
    // Rebuilding a primary sliver takes the helpers' secondary slivers, and the other way round.
    let (helper_axis, need) = match axis {
        Axis::Primary => (Axis::Secondary, layout.secondary_source()),
        Axis::Secondary => (Axis::Primary, layout.primary_source()),
    };
    let mut helpers: Vec<(usize, &SliverClient)> = others
        .iter()
        .map(|(p, c)| (sliver_of(*p, nodes, &id), c))
        .collect();
    let mut failures: Vec<String> = Vec::new();
    let mut codec = Codec::new(layout)?;
    let mut from = 0;
    while from < layout.segments {
        let count = MAX_SYMBOLS_PER_ANSWER.min(layout.segments - from);
        let mut columns: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
        let mut k = 0;
        while columns.len() < need && k < helpers.len() {
            let (sliver, client) = helpers[k];
            let root = match helper_axis {
                Axis::Primary => metadata.primary_roots[sliver],
                Axis::Secondary => metadata.secondary_roots[sliver],
            };
            let answer = client.recovery(&id, helper_axis, target, from, count).await;
            match answer
                .map_err(|e: NodeError| e.to_string())
                .and_then(|body| {
                    recovered.fetched += body.len() as u64;
                    read_symbols(&body, &layout, root, target, from, count)
                }) {
                Ok(symbols) => {
                    columns.push((sliver, symbols));
                    k += 1;
                }
                Err(why) => {
                    failures.push(format!("{}: {why}", client.endpoint()));
                    helpers.remove(k);
                }
            }
        }
        if columns.len() < need {
            return Err(RecoverError::NotEnoughHelpers {
                blob_id: id,
                failures: failures.join("; "),
            });
        }
        let mut parts = Vec::new();
        for segment in 0..count as usize {
            let symbols: Vec<(usize, Vec<u8>)> = columns
                .iter()
                .map(|(i, s)| (*i, s[segment].clone()))
                .collect();
            parts.extend(match axis {
                Axis::Primary => codec.rebuild_primary(&symbols)?,
                Axis::Secondary => codec.rebuild_secondary(&symbols)?,
            });
        }
        store.write_parts(&id, axis, from, &parts)?;
        from += count;
    }
    Ok(())
}
