//! Storage challenges: every storage node, once per storage epoch, asks every other node of its
//! committees for a few seeded symbols of the certified blobs both hold and checks each against
//! the sliver's root; a node that cannot answer (offline, data gone, wrong bytes) is reported on
//! chain (`ReportStorageFailure`). The chain slashes a node 2f + 1 nodes report
//! (`mycel_state::storage`).
//!
//! Seed of epoch e: the hash of the finalized block at height e · epoch_blocks, which no node
//! knows before the epoch starts. Position k of node X: h = keccak(seed ‖ X ‖ k); blob =
//! h[0..8] mod (blobs both hold, in id order), segment = h[8..16] mod segments, symbol =
//! h[16..24] mod (n − f) of X's primary sliver — a stored symbol, so fetching it on demand from
//! other nodes would take a recovery per challenge.
//!
//! Wire format of `GET /v1/slivers/{id}/challenge/{segment}/{symbol}`: the symbol, a `u8` count
//! of proof siblings, the siblings — leaf `segment · n + symbol` of the node's primary tree.

use crate::client::SliverClient;
use crate::merkle::{self, Proof};
use crate::store::{Store, StoreError};
use crate::{Axis, Layout, Metadata};
use alloy_primitives::{keccak256, Address, B256};

/// Symbols asked of each node per epoch. A node missing a fraction p of its symbols escapes
/// with probability about (1 − p)^k.
pub const CHALLENGES_PER_NODE: u64 = 16;

/// Appends `symbol` and its proof in the challenge and recovery wire format.
pub fn write_symbol(out: &mut Vec<u8>, symbol: &[u8], proof: &Proof) {
    out.extend_from_slice(symbol);
    out.push(proof.siblings.len() as u8);
    for s in &proof.siblings {
        out.extend_from_slice(s.as_slice());
    }
}

/// Reads one symbol and its proof from `body` at `*at`; checks it is leaf `index` under `root`.
pub fn read_symbol(
    body: &[u8],
    at: &mut usize,
    layout: &Layout,
    index: u64,
    root: B256,
) -> Result<Vec<u8>, String> {
    let s = layout.symbol_bytes;
    let symbol = body
        .get(*at..*at + s)
        .ok_or("the answer is short")?
        .to_vec();
    *at += s;
    let count = *body.get(*at).ok_or("the answer is short")? as usize;
    *at += 1;
    let bytes = body
        .get(*at..*at + 32 * count)
        .ok_or("the answer is short")?;
    *at += 32 * count;
    let proof = Proof {
        index,
        leaves: layout.leaves_per_sliver(),
        siblings: bytes.chunks_exact(32).map(B256::from_slice).collect(),
    };
    if !proof.verifies(merkle::leaf(&symbol), root) {
        return Err(format!(
            "symbol {index} does not prove against its sliver's root"
        ));
    }
    Ok(symbol)
}

/// The answer to a challenge: stored primary symbol `symbol` of `segment`, with its proof.
pub fn answer(
    store: &Store,
    id: &B256,
    segment: u64,
    symbol: usize,
) -> Result<Vec<u8>, StoreError> {
    let (metadata, _) = store.metadata(id)?;
    let layout = metadata.layout()?;
    if symbol >= layout.secondary_source() {
        return Err(StoreError::OutOfRange {
            from: symbol as u64,
            to: symbol as u64 + 1,
            segments: layout.secondary_source() as u64,
        });
    }
    let part = store.read_parts(id, Axis::Primary, segment, 1)?;
    let s = layout.symbol_bytes;
    let leaves: Vec<B256> = store
        .leaves(id, Axis::Primary)?
        .chunks_exact(32)
        .map(B256::from_slice)
        .collect();
    let proof = Proof::new(&leaves, segment as usize * layout.n() + symbol)
        .ok_or(StoreError::Missing("leaves"))?;
    let mut out = Vec::new();
    write_symbol(&mut out, &part[symbol * s..(symbol + 1) * s], &proof);
    Ok(out)
}

/// Challenge position `k` of `node` among `blobs` (both hold them, in id order).
pub fn position(
    seed: B256,
    node: Address,
    k: u64,
    blobs: &[(B256, Layout)],
) -> (usize, u64, usize) {
    let mut input = Vec::with_capacity(60);
    input.extend_from_slice(seed.as_slice());
    input.extend_from_slice(node.as_slice());
    input.extend_from_slice(&k.to_be_bytes());
    let h = keccak256(&input);
    let word = |i: usize| u64::from_be_bytes(h[i * 8..(i + 1) * 8].try_into().expect("8 bytes"));
    let blob = (word(0) % blobs.len() as u64) as usize;
    let layout = &blobs[blob].1;
    (
        blob,
        word(1) % layout.segments,
        (word(2) % layout.secondary_source() as u64) as usize,
    )
}

/// Asks `node` (serving at `client`, holding primary sliver `sliver_of(blob)` of each blob) for
/// its challenge symbols; `Err` says why it failed.
pub async fn challenge(
    client: &SliverClient,
    seed: B256,
    node: Address,
    blobs: &[(B256, Layout, Metadata, usize)],
) -> Result<(), String> {
    let shapes: Vec<(B256, Layout)> = blobs.iter().map(|(id, l, _, _)| (*id, *l)).collect();
    for k in 0..CHALLENGES_PER_NODE {
        let (b, segment, symbol) = position(seed, node, k, &shapes);
        let (id, layout, metadata, sliver) = &blobs[b];
        let body = client
            .challenge(id, segment, symbol)
            .await
            .map_err(|e| e.to_string())?;
        let index = segment * layout.nodes as u64 + symbol as u64;
        let mut at = 0;
        read_symbol(
            &body,
            &mut at,
            layout,
            index,
            metadata.primary_roots[*sliver],
        )
        .map_err(|why| format!("blob {id}: {why}"))?;
        if at != body.len() {
            return Err(format!("blob {id}: the answer is longer than one symbol"));
        }
    }
    Ok(())
}
