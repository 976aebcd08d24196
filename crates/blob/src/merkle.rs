//! The sliver commitment: a binary BLAKE3 Merkle tree over symbol hashes.
//!
//! leaf(symbol) = blake3(0x00 ‖ symbol); node(l, r) = blake3(0x01 ‖ l ‖ r); an odd node at the
//! end of a level moves up unchanged. The number of leaves is fixed by the blob's layout (which
//! the blob id commits to), so a proof names its index and the leaf count.

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

/// The hash of one symbol.
pub fn leaf(symbol: &[u8]) -> B256 {
    let mut h = blake3::Hasher::new();
    h.update(&[0x00]);
    h.update(symbol);
    B256::from(*h.finalize().as_bytes())
}

fn node(l: &B256, r: &B256) -> B256 {
    let mut h = blake3::Hasher::new();
    h.update(&[0x01]);
    h.update(l.as_slice());
    h.update(r.as_slice());
    B256::from(*h.finalize().as_bytes())
}

fn next_level(level: &[B256]) -> Vec<B256> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [l, r] => node(l, r),
            [one] => *one,
            _ => unreachable!("chunks(2) yields one or two"),
        })
        .collect()
}

/// The root over `leaves` (the zero hash for none).
pub fn root(leaves: &[B256]) -> B256 {
    if leaves.is_empty() {
        return B256::ZERO;
    }
    let mut level = next_level(leaves);
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// The path from one leaf to the root: the sibling at each level where the leaf's ancestor has
/// one (an ancestor that moved up unchanged has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub index: u64,
    pub leaves: u64,
    pub siblings: Vec<B256>,
}

impl Proof {
    /// The proof for leaf `index` of `leaves`.
    pub fn new(leaves: &[B256], index: usize) -> Option<Proof> {
        if index >= leaves.len() {
            return None;
        }
        let mut siblings = Vec::new();
        let mut level = leaves.to_vec();
        let mut at = index;
        while level.len() > 1 {
            let sibling = at ^ 1;
            if sibling < level.len() {
                siblings.push(level[sibling]);
            }
            level = next_level(&level);
            at /= 2;
        }
        Some(Proof {
            index: index as u64,
            leaves: leaves.len() as u64,
            siblings,
        })
    }

    /// Whether `leaf_hash` at this proof's index is under `root`.
    pub fn verifies(&self, leaf_hash: B256, root: B256) -> bool {
        if self.index >= self.leaves || self.siblings.len() > 64 {
            return false;
        }
        let mut hash = leaf_hash;
        let (mut at, mut width) = (self.index, self.leaves);
        let mut siblings = self.siblings.iter();
        while width > 1 {
            let sibling = at ^ 1;
            if sibling < width {
                let Some(s) = siblings.next() else {
                    return false;
                };
                hash = if at % 2 == 0 {
                    node(&hash, s)
                } else {
                    node(s, &hash)
                };
            }
            at /= 2;
            width = width.div_ceil(2);
        }
        siblings.next().is_none() && hash == root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_of_every_width_proves_and_no_other_does() {
        for width in 1..=17usize {
            let leaves: Vec<B256> = (0..width).map(|i| leaf(&[i as u8])).collect();
            let r = root(&leaves);
            for i in 0..width {
                let proof = Proof::new(&leaves, i).expect("in range");
                assert!(proof.verifies(leaves[i], r), "width {width} leaf {i}");
                let wrong = leaf(b"other");
                assert!(!proof.verifies(wrong, r));
                let mut moved = proof.clone();
                moved.index = ((i + 1) % width) as u64;
                assert!(width == 1 || !moved.verifies(leaves[i], r));
            }
            assert!(Proof::new(&leaves, width).is_none());
        }
    }

    #[test]
    fn a_node_is_not_a_leaf() {
        let leaves = [leaf(b"a"), leaf(b"b")];
        let mut joined = vec![0x01u8];
        joined.extend_from_slice(leaves[0].as_slice());
        joined.extend_from_slice(leaves[1].as_slice());
        assert_ne!(leaf(&joined[1..]), root(&leaves));
    }
}
